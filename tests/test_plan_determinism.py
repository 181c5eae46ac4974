"""Reproducible plan: the same scenario planned twice, the second time beside processes
saturating every core, gives the same proposed sites and the same summary (timings
excluded).  Wall-clock time never decides a result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from _city_fixture import make_city

from tests.conftest import cpu_burner
from towerplan.plan import run_plan
from towerplan.scenario import load_scenario


def _no_timings(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {
            k: _no_timings(v)
            for k, v in obj.items()
            if not (k.endswith("_s") or k in ("runtime", "timings", "stage_timings"))
        }
    if isinstance(obj, list | tuple):
        return [_no_timings(v) for v in obj]
    return obj


def _sites(res: Any) -> list[tuple]:
    p = res.layers["proposed_sites"]
    return list(
        zip(
            p["site_id"],
            np.round(p.geometry.x, 3),
            np.round(p.geometry.y, 3),
            p["site_type"],
            p["operators"],
            strict=True,
        )
    )


def test_same_plan_under_cpu_load(tmp_path: Path) -> None:
    make_city(tmp_path)
    scen = load_scenario(tmp_path / "scenario.yaml")
    kw: dict[str, Any] = {"maps": False, "best_server": False, "progress": False}
    quiet = run_plan(scen, None, **kw)
    with cpu_burner():
        loaded = run_plan(scen, None, **kw)
    assert len(_sites(quiet)) == 8
    assert _sites(quiet) == _sites(loaded)
    s = quiet.summary["siting"]
    assert s["reproducible"] is True and s["stopped_by"] in ("gap", "work_limit")
    assert s["bound"] >= s["objective"]
    assert s["proven_optimal"] == (s["bound"] - s["objective"] <= 1e-9 * s["bound"])
    assert loaded.summary["siting"]["reproducible"] is True  # the safety stop never fired
    assert _no_timings(quiet.summary) == _no_timings(loaded.summary)
