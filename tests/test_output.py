"""Output folders: staged writes, the overwrite guard (no data loss), stale leftovers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from towerplan.errors import OutputError
from towerplan.outputs.folder import MARKER, check_out_dir, staged_output

REPO = Path(__file__).resolve().parents[1]


def _towerplan_folder(path: Path, content: str = "old") -> Path:
    """A folder as towerplan writes it: outputs plus the marker."""
    path.mkdir(parents=True)
    (path / "summary.json").write_text(content, encoding="utf-8")
    (path / MARKER).write_text(json.dumps({"writer": "towerplan", "pid": 1}), encoding="utf-8")
    return path


def test_staged_output_moves_into_place(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    with staged_output(out) as tmp:
        assert tmp != out and tmp.parent == out.parent
        (tmp / "x.txt").write_text("1", encoding="utf-8")
        assert not out.exists()
    assert (out / "x.txt").read_text(encoding="utf-8") == "1"
    assert (out / MARKER).is_file()
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask
    assert [p.name for p in out.parent.iterdir()] == ["b"]


def test_failure_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "o"
    with pytest.raises(RuntimeError), staged_output(out) as tmp:
        (tmp / "half.txt").write_text("half", encoding="utf-8")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_only_on_success(tmp_path: Path) -> None:
    out = _towerplan_folder(tmp_path / "o")
    with pytest.raises(OutputError, match="not empty"):
        check_out_dir(out)
    with pytest.raises(RuntimeError), staged_output(out, overwrite=True):
        raise RuntimeError("boom")
    assert (out / "summary.json").read_text(encoding="utf-8") == "old"
    with staged_output(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new", encoding="utf-8")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_overwrite_refuses_a_folder_towerplan_did_not_write(tmp_path: Path) -> None:
    out = tmp_path / "city"
    out.mkdir()
    (out / "districts.gpkg").write_bytes(b"precious")
    with pytest.raises(OutputError, match=f"not written by towerplan.*{MARKER}"):
        check_out_dir(out, overwrite=True)
    assert (out / "districts.gpkg").read_bytes() == b"precious"


def test_overwrite_refuses_folder_holding_an_input(tmp_path: Path) -> None:
    out = _towerplan_folder(tmp_path / "city")  # even with the marker
    scen = out / "scenario.yaml"
    scen.write_text("name: x", encoding="utf-8")
    with pytest.raises(OutputError, match="holds the scenario or an input"):
        check_out_dir(out, overwrite=True, protected=[scen])
    with pytest.raises(OutputError, match="holds the scenario or an input"):
        check_out_dir(tmp_path, overwrite=True, protected=[scen])  # an ancestor
    assert check_out_dir(out / "plan", protected=[scen]) == out / "plan"  # a subfolder is fine


def test_refuses_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _towerplan_folder(tmp_path / "w")
    monkeypatch.chdir(tmp_path / "w")
    for out in (Path("."), Path(".."), tmp_path / "w"):
        with pytest.raises(OutputError, match="current directory"):
            check_out_dir(out, overwrite=True)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_out_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x", encoding="utf-8")
    with pytest.raises(OutputError, match="is a file"):
        check_out_dir(f)
    with pytest.raises(OutputError, match="is a file, so no folder"):
        check_out_dir(f / "out")
    with pytest.raises(OutputError, match="is a file, so no folder"):
        check_out_dir(f / "a" / "b")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permissions")
def test_unwritable_parent_and_unrenamable_out(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    _towerplan_folder(ro / "out")
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="cannot be replaced"):
            check_out_dir(ro / "out", overwrite=True)
        with pytest.raises(OutputError, match="not writable"):
            check_out_dir(ro / "new")
    finally:
        ro.chmod(0o755)


def test_empty_existing_folder_is_fine(tmp_path: Path) -> None:
    (tmp_path / "e").mkdir()
    assert check_out_dir(tmp_path / "e") == tmp_path / "e"


def test_failed_swap_restores_the_old_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _towerplan_folder(tmp_path / "o")
    real_rename = Path.rename

    def flaky(self: Path, target: Path) -> Path:  # the 2nd move (partial -> out) fails
        if ".partial-" in self.name:
            raise PermissionError(13, "Permission denied")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", flaky)
    with (
        pytest.raises(OutputError, match="old folder is restored"),
        staged_output(out, overwrite=True) as tmp,
    ):
        (tmp / "new.txt").write_text("new", encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]
    assert (out / "summary.json").read_text(encoding="utf-8") == "old"


def test_stale_leftovers_of_dead_runs_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    pid = int(dead.stdout)
    for name in (".o.partial-abc", ".o.old-def"):
        d = tmp_path / name
        d.mkdir()
        (d / MARKER).write_text(json.dumps({"pid": pid}), encoding="utf-8")
    foreign = tmp_path / ".o.partial-notours"  # no marker: not ours, kept
    foreign.mkdir()
    alive = tmp_path / ".o.partial-alive"  # a live run's staging folder: kept
    alive.mkdir()
    (alive / MARKER).write_text(json.dumps({"pid": os.getppid()}), encoding="utf-8")
    with staged_output(tmp_path / "o") as tmp:
        (tmp / "x").write_text("1", encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".o.partial-alive",
        ".o.partial-notours",
        "o",
    ]


_SLOW_WRITER = """
import sys, time
from towerplan.outputs.folder import staged_output
with staged_output(sys.argv[1], overwrite=True) as tmp:
    (tmp / "half.txt").write_text("half")
    print("staged", flush=True)
    time.sleep(60)
"""


def _start_writer(out: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, str(out)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "staged"
    return proc


def test_sigkill_leftover_is_cleaned_by_the_next_run(tmp_path: Path) -> None:
    out = _towerplan_folder(tmp_path / "o")
    proc = _start_writer(out)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert [p.name for p in tmp_path.glob(".o.partial-*")]  # SIGKILL cannot be caught
    assert (out / "summary.json").read_text(encoding="utf-8") == "old"
    with staged_output(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new", encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_sigterm_during_the_writability_probe_leaves_no_scratch_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGTERM that arrives while the probe folder exists is handled once it is gone (the
    CLI's handler raises; it used to leave ``.towerplan-probe-*`` behind)."""
    from towerplan.outputs import folder

    class Stop(Exception):
        pass

    def handler(signum: int, frame: object) -> None:
        raise Stop

    rename = Path.rename

    def rename_then_signal(self: Path, target: Path) -> Path:
        os.kill(os.getpid(), signal.SIGTERM)  # arrives between mkdtemp and the clean-up
        return rename(self, target)

    old = signal.signal(signal.SIGTERM, handler)
    try:
        monkeypatch.setattr(Path, "rename", rename_then_signal)
        with pytest.raises(Stop):
            folder._probe_rename(tmp_path)
    finally:
        signal.signal(signal.SIGTERM, old)
    assert list(tmp_path.iterdir()) == []


def test_sigterm_through_the_cli_leaves_out_untouched(tmp_path: Path) -> None:
    from _city_fixture import make_city, write_scenario

    folder = tmp_path / "city"
    scen = make_city(folder)
    path = write_scenario(folder, scen)
    out = _towerplan_folder(tmp_path / "out")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "towerplan",
            "-v",
            "plan",
            "--scenario",
            str(path),
            "--out",
            str(out),
            "--overwrite",
            "--no-maps",
            "--no-raster",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    proc.stderr.readline()  # first log line: the SIGTERM handler is installed
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=120)
    err = proc.stderr.read()
    assert code == 143, err
    assert err.strip().splitlines()[-1].startswith("towerplan: terminated")
    assert "Traceback" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["city", "out"]


def test_unrenamable_out_is_refused_before_work(tmp_path: Path) -> None:
    """An immutable parent (chattr +i; works for root too) is found by the pre-check."""
    parent = tmp_path / "locked"
    _towerplan_folder(parent / "out")
    r = subprocess.run(["chattr", "+i", str(parent)], capture_output=True, check=False)
    if r.returncode != 0:
        pytest.skip("chattr +i not available here")
    try:
        with pytest.raises(OutputError, match=r"not writable|cannot be replaced"):
            check_out_dir(parent / "out", overwrite=True)
        with pytest.raises(OutputError, match="not writable"):
            check_out_dir(parent / "new")
    finally:
        subprocess.run(["chattr", "-i", str(parent)], check=True)
    assert sorted(p.name for p in parent.iterdir()) == ["out"]
