"""Forked worker processes (towerplan._procs) and the plan's forked table writer."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import pandas as pd
import pytest
from _layers_fixture import make_layers

from towerplan import _procs, plan

FORKS = "fork" in multiprocessing.get_all_start_methods()


@pytest.mark.skipif(not FORKS, reason="this platform does not fork")
def test_no_fork_beside_another_thread() -> None:
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, name="busy")
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    worker.start()
    try:
        assert _procs.fork_context(need_cores=1) is None
    finally:
        stop.set()
        worker.join()
    if not others:  # (pytest-xdist workers run threads of their own)
        assert _procs.fork_context(need_cores=1) is not None
    assert _procs.fork_context(need_cores=10**6) is None


@pytest.mark.skipif(not FORKS, reason="this platform does not fork")
def test_tables_written_forked_or_here_are_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layers, _summary, kpis = make_layers(n_existing=12, n_proposed=5)
    result = SimpleNamespace(
        layers=layers, kpis=kpis, tables={"underground_plan": pd.DataFrame({"a": [1.5, 2.0]})}
    )
    # forced: under pytest-xdist this process runs execnet's threads (the child needs none)
    monkeypatch.setattr(plan, "fork_context", lambda **_: multiprocessing.get_context("fork"))
    out = {}
    for name, background in (("forked", True), ("here", False)):
        (tmp_path / name).mkdir()
        writer = plan._TableWriter(tmp_path / name, result, "vi", background=background)  # type: ignore[arg-type]
        assert (writer._pool is not None) is background
        files, seconds = writer.result()
        assert seconds >= 0 and all(f.is_file() for f in files)
        out[name] = files
    assert [f.name for f in out["forked"]] == [f.name for f in out["here"]]
    for a, b in zip(out["forked"], out["here"], strict=True):
        if a.suffix == ".csv":
            assert a.read_bytes() == b.read_bytes()
    for layer in ("existing_sites", "proposed_sites", "districts"):
        pd.testing.assert_frame_equal(
            gpd.read_file(out["forked"][0], layer=layer), gpd.read_file(out["here"][0], layer=layer)
        )


@pytest.mark.skipif(not FORKS, reason="this platform does not fork")
def test_an_error_while_drawing_still_waits_for_the_table_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layers, _summary, kpis = make_layers(n_existing=12, n_proposed=5)
    result = SimpleNamespace(layers=layers, kpis=kpis, tables={})
    monkeypatch.setattr(plan, "fork_context", lambda **_: multiprocessing.get_context("fork"))
    with pytest.raises(RuntimeError, match="maps failed"):
        with plan._TableWriter(tmp_path, result, "en", background=True) as writer:  # type: ignore[arg-type]
            raise RuntimeError("maps failed")
    assert writer._pool is not None and writer._pool._shutdown_thread
    assert (tmp_path / "towerplan.gpkg").is_file()  # the writer was waited for, not killed
