"""The plan as a list of named stages: one stage at a time, order checks, pickling."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest
from _city_fixture import make_city, write_scenario

from towerplan import plan
from towerplan.errors import StageError
from towerplan.scenario import Scenario, load_scenario


@pytest.fixture(scope="module")
def small_city(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    import geopandas as gpd
    from _city_fixture import CRS, X0, Y0
    from shapely.geometry import LineString

    folder = tmp_path_factory.mktemp("stages")
    scen = make_city(folder)
    # a road grid, so that undergrounding and road-routed backhaul run
    lines = [LineString([(X0, Y0 + y), (X0 + 10_000, Y0 + y)]) for y in (500, 2000, 3500)]
    lines += [LineString([(X0 + x, Y0), (X0 + x, Y0 + 4000)]) for x in range(500, 10_000, 1500)]
    gpd.GeoDataFrame(
        {"road_class": ["provincial"] * 3 + ["local"] * (len(lines) - 3)}, geometry=lines, crs=CRS
    ).to_file(folder / "roads.gpkg", driver="GPKG")
    scen["data"]["roads"] = {"path": "roads.gpkg"}
    write_scenario(folder, scen)
    return load_scenario(folder / "scenario.yaml")


@pytest.fixture(scope="module")
def full_state(small_city: Scenario) -> plan.PlanState:
    opts = plan.PlanOptions(solver="heuristic", time_limit_s=5.0)
    return plan.run_stages(plan.PlanState(small_city, opts), progress=False)


def test_stage_names_are_state_fields_in_order() -> None:
    names = [s.name for s in plan.STAGES]
    assert names[:8] == [
        "load_inputs",
        "demand_grid",
        "coverage_before",
        "candidates",
        "siting",
        "phasing",
        "coverage_after",
        "kpis",
    ]
    fields = {f.name for f in dataclasses.fields(plan.PlanState)}
    assert set(names) <= fields
    # a stage only needs stages listed before it
    for i, s in enumerate(plan.STAGES):
        assert set(s.needs) <= set(names[:i]), s.name


def test_run_stage_checks_order_and_names(small_city: Scenario) -> None:
    state = plan.PlanState(small_city)
    with pytest.raises(StageError, match="stage 'load_inputs' has not run"):
        plan.run_stage("demand_grid", state)
    with pytest.raises(StageError, match="'nope' is unknown; use one of: load_inputs"):
        plan.run_stage("nope", state)
    s1 = plan.run_stage("load_inputs", state)
    assert state.load_inputs is None  # the input state is not modified
    assert s1.completed() == ["load_inputs"] and set(s1.timings) == {"load_inputs"}
    s2 = plan.run_stage("demand_grid", s1)
    assert s2.completed() == ["load_inputs", "demand_grid"]
    assert s2.demand.points["population"].sum() == pytest.approx(
        s2.inputs.population["population"].sum(), rel=1e-3
    )
    with pytest.raises(StageError, match="stages \\['coverage_before'"):
        plan.result_from_state(s2)


def test_state_pickles_and_stages_resume_in_another_process(full_state: plan.PlanState) -> None:
    # what the batch runner does: ship a state, run the next stage elsewhere
    mid = dataclasses.replace(full_state, coverage_after=None, kpis=None)
    again = pickle.loads(pickle.dumps(mid))
    resumed = plan.run_stages(again, ["coverage_after", "kpis"], progress=False)
    assert resumed.after.coverage.equals(full_state.after.coverage)
    assert resumed.kpis is not None and full_state.kpis is not None
    assert resumed.kpis.table.equals(full_state.kpis.table)


def test_result_is_complete_and_summary_not_modified(full_state: plan.PlanState) -> None:
    res = plan.result_from_state(full_state)
    s = res.summary
    assert (s["existing_sites"], s["new_dedicated"], s["new_shared"]) == (30, 5, 3)
    assert "runtime_s" not in s  # run times are added by run_plan, not the summary builder
    # the undergrounding trajectory is returned, one row per district and year plus the city
    ug = res.tables["underground_plan"]
    assert {"district", "year", "share"} <= set(ug.columns)
    assert set(ug["district"]) == set(res.layers["districts"]["district"]) | {"city"}
    # every StageOutputs key reached the summary, every layer the layer dict
    for out in full_state.outputs():
        assert set(out.summary) <= set(s)
        assert set(out.layers) <= set(res.layers)
    before = dict(s)
    plan.build_layers(full_state)
    assert plan.build_summary(full_state) == before
    # demand coverage columns are added to a copy, not to the stage's points
    assert "cov_after_Alpha" in res.layers["demand"].columns
    assert "cov_after_Alpha" not in full_state.demand.points.columns


def test_run_plan_writes_tables_and_does_not_rewrite_summary(
    small_city: Scenario, tmp_path: Path
) -> None:
    res = plan.run_plan(
        small_city,
        tmp_path / "out",
        solver="heuristic",
        time_limit_s=5,
        maps=False,
        best_server=False,
        progress=False,
    )
    assert (tmp_path / "out" / "underground_plan.csv") in res.files
    assert "best_server_raster" not in res.summary
    assert list(res.summary["timings_s"])[: len(plan.STAGES)] == [s.name for s in plan.STAGES]
    assert res.state is not None and res.state.completed() == [s.name for s in plan.STAGES]
