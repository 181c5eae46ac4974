"""Output folders: checked before any work, staged, swapped into place, never data loss.

Outputs are written into a temporary sibling folder (``.OUT.partial-*``) and
moved into place only when complete, so a failed or interrupted run leaves
nothing half-written in ``--out``.  Every output folder holds a marker file
(:data:`MARKER`); ``--overwrite`` replaces only a folder with that marker (one
towerplan wrote) or an empty folder, and never the current directory, a folder
holding the scenario or an input, or an ancestor of one.  Stale staging folders
of an earlier run that was killed (``.OUT.partial-*``, ``.OUT.old-*`` with the
marker of a process that is gone) are removed by the next run on the same OUT.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from towerplan.errors import N_, OutputError, Text

logger = logging.getLogger(__name__)

__all__ = ["MARKER", "check_out_dir", "staged_output"]

MARKER = ".towerplan-output"
"""Name of the marker file written into every output folder towerplan makes."""


def _is_within(path: Path, folder: Path) -> bool:
    """True when ``path`` is ``folder`` or lies inside it (both resolved)."""
    return path == folder or folder in path.parents


def _check_protected(out: Path, resolved: Path, protected: Iterable[str | Path]) -> None:
    cwd = Path.cwd().resolve()
    if _is_within(cwd, resolved):
        raise OutputError(
            msgid=N_(
                "--out {out}: is the current directory or one of its parents; towerplan never "
                "replaces it; give a new subfolder, e.g. --out outputs/plan"
            ),
            out=out,
        )
    for p in protected:
        pr = Path(p).expanduser().resolve()
        if _is_within(pr, resolved):
            raise OutputError(
                msgid=N_(
                    "--out {out}: holds the scenario or an input ({input}); towerplan never "
                    "writes over its inputs; give a new folder, e.g. --out {example}"
                ),
                out=out,
                input=pr,
                example=resolved.parent / (resolved.name + "-out"),
            )


def _first_existing(path: Path) -> Path:
    probe = path
    while not probe.exists() and not probe.is_symlink():
        probe = probe.parent
    return probe


def _check_parent(out: Path, resolved: Path) -> None:
    probe = _first_existing(resolved.parent)
    if not probe.is_dir():
        raise OutputError(
            msgid=N_(
                "--out {out}: {file} is a file, so no folder can be made below it; give another "
                "--out path"
            ),
            out=out,
            file=probe,
        )
    problem: str | None = None
    if not os.access(probe, os.W_OK | os.X_OK):
        problem = Text(N_("permission denied"))
    problem = problem or _probe_rename(probe)
    if problem:
        raise OutputError(
            msgid=N_("--out {out}: {folder} is not writable ({problem}); choose a writable folder"),
            out=out,
            folder=probe,
            problem=problem,
        )


@contextmanager
def _interrupts_held() -> Iterator[None]:
    """SIGINT and SIGTERM that arrive in the block are handled when it ends.

    Their handlers raise (the CLI's SIGTERM handler too); raised between making a scratch
    folder and removing it, they would leave it behind.  Outside the main thread (where
    Python runs signal handlers) the block runs as it is.
    """
    caught: list[tuple[int, Any]] = []

    def hold(signum: int, frame: Any) -> None:
        caught.append((signum, frame))

    try:
        old = {s: signal.signal(s, hold) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        for signum, frame in caught[:1]:
            handler = old[signal.Signals(signum)]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


def _probe_rename(folder: Path) -> str | None:
    """Make and rename a scratch folder in ``folder``; the OS error text if that fails."""
    with _interrupts_held():
        return _probe_rename_now(folder)


def _probe_rename_now(folder: Path) -> str | None:
    """:func:`_probe_rename` without holding the interrupts."""
    try:
        probe = Path(tempfile.mkdtemp(prefix=".towerplan-probe-", dir=folder))
    except OSError as exc:
        return exc.strerror or str(exc)
    moved = probe.with_name(probe.name + "-moved")
    try:
        probe.rename(moved)
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        for q in (probe, moved):
            if q.exists():
                q.rmdir()
    return None


def _check_replaceable(out: Path, resolved: Path) -> None:
    """``resolved`` exists: it must be renamable (parent writable, sticky bit) and emptiable."""
    parent = resolved.parent
    st = parent.stat()
    sticky = bool(st.st_mode & stat.S_ISVTX)
    uid = os.geteuid() if hasattr(os, "geteuid") else 0
    owner = resolved.stat().st_uid
    problem: str | None = None
    if os.path.ismount(resolved):
        problem = Text(N_("it is a mount point"))
    elif not os.access(parent, os.W_OK | os.X_OK) or (
        sticky and uid != 0 and uid not in (owner, st.st_uid)
    ):
        problem = Text(N_("no permission to rename it in {parent}"), parent=parent)
    else:
        problem = _probe_rename(parent)
    if problem:
        raise OutputError(
            msgid=N_(
                "--out {out}: the folder cannot be replaced ({problem}); choose another --out "
                "folder or fix the permissions"
            ),
            out=out,
            problem=problem,
        )
    for sub in (resolved, *[p for p in resolved.rglob("*") if p.is_dir() and not p.is_symlink()]):
        if not os.access(sub, os.W_OK | os.X_OK):
            raise OutputError(
                msgid=N_(
                    "--out {out}: {folder} is not writable, so the old outputs cannot be "
                    "removed; fix the permissions or choose another --out folder"
                ),
                out=out,
                folder=sub,
            )


def check_out_dir(
    out_dir: str | Path, overwrite: bool = False, *, protected: Iterable[str | Path] = ()
) -> Path:
    """Check that ``out_dir`` can receive outputs, before any work is done.

    Parameters
    ----------
    out_dir : str or Path
        The output folder (``--out``).
    overwrite : bool
        Allow replacing an existing folder that towerplan wrote (it holds
        :data:`MARKER`).
    protected : iterable of path
        Scenario folder and input files: ``out_dir`` must not be, or contain, any of them.

    Returns
    -------
    Path
        ``out_dir`` as a Path.

    Raises
    ------
    OutputError
        The folder is the current directory, holds an input, is a file, is not
        empty (without ``overwrite``), was not written by towerplan, or cannot
        be created, renamed or emptied.
    """
    out = Path(out_dir).expanduser()
    resolved = out.resolve()
    _check_protected(out, resolved, protected)
    _check_parent(out, resolved)
    if not resolved.exists():
        return out
    if not resolved.is_dir():
        raise OutputError(
            msgid=N_("--out {out}: exists and is a file; give a folder path"), out=out
        )
    content = [p for p in resolved.iterdir()]
    if not content:
        _check_replaceable(out, resolved)
        return out
    if not overwrite:
        raise OutputError(
            msgid=N_(
                "--out {out}: the folder exists and is not empty; choose a new folder or pass "
                "--overwrite to replace it"
            ),
            out=out,
        )
    if not (resolved / MARKER).is_file():
        raise OutputError(
            msgid=N_(
                "--out {out}: the folder is not empty and was not written by towerplan (no "
                "{marker} file), so --overwrite will not delete it; choose a new folder or empty "
                "this one"
            ),
            out=out,
            marker=MARKER,
        )
    _check_replaceable(out, resolved)
    return out


def _write_marker(folder: Path) -> None:
    (folder / MARKER).write_text(
        json.dumps({"writer": "towerplan", "pid": os.getpid()}) + "\n", encoding="utf-8"
    )


def _owner_alive(folder: Path) -> bool:
    try:
        pid = int(json.loads((folder / MARKER).read_text(encoding="utf-8"))["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(parent: Path, name: str) -> None:
    """Remove ``.NAME.partial-*`` / ``.NAME.old-*`` folders towerplan left behind."""
    for pattern in (f".{name}.partial-*", f".{name}.old-*"):
        for p in parent.glob(pattern):
            if p.is_dir() and (p / MARKER).is_file() and not _owner_alive(p):
                shutil.rmtree(p, ignore_errors=True)
                logger.info("removed %s left by an interrupted earlier run", p)


def _swap(tmp: Path, target: Path, out: Path) -> None:
    """Move ``tmp`` to ``target``, replacing it; on failure leave ``target`` as it was."""
    if not target.exists():
        try:
            tmp.rename(target)
        except OSError as exc:
            raise OutputError(
                msgid=N_(
                    "--out {out}: cannot move the outputs into place ({problem}); choose "
                    "another --out folder"
                ),
                out=out,
                problem=exc.strerror,
            ) from None
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    old.rmdir()
    try:
        target.rename(old)
    except OSError as exc:
        raise OutputError(
            msgid=N_(
                "--out {out}: cannot replace the folder ({problem}); it is unchanged; choose "
                "another --out folder"
            ),
            out=out,
            problem=exc.strerror,
        ) from None
    try:
        tmp.rename(target)
    except OSError as exc:
        old.rename(target)
        raise OutputError(
            msgid=N_(
                "--out {out}: cannot move the outputs into place ({problem}); the old folder "
                "is restored; choose another --out folder"
            ),
            out=out,
            problem=exc.strerror,
        ) from None
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staged_output(
    out_dir: str | Path, overwrite: bool = False, *, protected: Iterable[str | Path] = ()
) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``out_dir`` when the block succeeds.

    The folder is checked first (:func:`check_out_dir`); stale staging folders
    of killed earlier runs on the same ``out_dir`` are removed.  On any
    exception (including ``KeyboardInterrupt`` and SIGTERM) the temporary folder
    is removed and ``out_dir`` is left as it was.
    """
    out = check_out_dir(out_dir, overwrite, protected=protected)
    target = out.resolve()
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(parent, target.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes 0700; give the folder the usual permissions
        _write_marker(tmp)
        yield tmp
        _swap(tmp, target, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("outputs written to %s", target)
