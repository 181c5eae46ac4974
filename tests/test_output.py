"""Atomic output folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from towerplan.errors import OutputError
from towerplan.outputs.folder import check_out_dir, staged_output


def test_staged_output_moves_into_place(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    with staged_output(out) as tmp:
        assert tmp != out and tmp.parent == out.parent
        (tmp / "x.txt").write_text("1", encoding="utf-8")
        assert not out.exists()
    assert (out / "x.txt").read_text(encoding="utf-8") == "1"
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
    out = tmp_path / "o"
    out.mkdir()
    (out / "old.txt").write_text("old", encoding="utf-8")
    with pytest.raises(OutputError, match="not empty"):
        check_out_dir(out)
    with pytest.raises(RuntimeError), staged_output(out, overwrite=True):
        raise RuntimeError("boom")
    assert (out / "old.txt").exists()
    with staged_output(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new", encoding="utf-8")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_out_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x", encoding="utf-8")
    with pytest.raises(OutputError, match="is a file"):
        check_out_dir(f)


def test_empty_existing_folder_is_fine(tmp_path: Path) -> None:
    (tmp_path / "e").mkdir()
    assert check_out_dir(tmp_path / "e") == tmp_path / "e"
