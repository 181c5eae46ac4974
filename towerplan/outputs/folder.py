"""Atomic output folders (private).

Outputs are written into a temporary sibling folder and moved into place only
when complete, so a failed run leaves nothing half-written in ``--out``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from towerplan.errors import OutputError

logger = logging.getLogger(__name__)


def check_out_dir(out_dir: str | Path, overwrite: bool = False) -> Path:
    """Check that ``out_dir`` can receive outputs, before any work is done.

    Raises
    ------
    OutputError
        If it exists and is not an empty folder (unless ``overwrite``), or if its
        parent cannot be written.
    """
    out = Path(out_dir).expanduser()
    if out.exists():
        if not out.is_dir():
            raise OutputError(f"--out {out}: exists and is a file; give a folder path")
        if any(out.iterdir()) and not overwrite:
            raise OutputError(
                f"--out {out}: the folder exists and is not empty; choose a new folder or pass "
                "--overwrite to replace it"
            )
    parent = out.resolve().parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        raise OutputError(f"--out {out}: {probe} is not writable; choose a writable folder")
    return out


@contextmanager
def staged_output(out_dir: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``out_dir`` when the block succeeds.

    On any exception the temporary folder is removed and ``out_dir`` is left as
    it was.
    """
    out = check_out_dir(out_dir, overwrite)
    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes 0700; give the folder the usual permissions
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    target = parent / out.name
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
        old.rmdir()
        target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(target)
    logger.info("outputs written to %s", target)
