"""The phased plan end to end on the Testville fixture: base phase kept (the sites of a
separate base-year run, via phasing.base_scenario or a finished plan folder), later
periods, capacity beside coverage, switching points (one existing, locked), phasing.csv."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import yaml
from _city_fixture import X0, Y0, make_city, write_scenario
from shapely.geometry import Point, box

from towerplan.errors import ScenarioError
from towerplan.plan import PlanState, run_plan, run_stages
from towerplan.scenario import load_scenario

SAME = ["site_id", "site_type", "operators", "n_tenants", "lon", "lat", "cand_id", "district"]


@pytest.fixture(scope="module")
def phased(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("phased")
    scen = make_city(folder)
    (folder / "base.yaml").write_text(yaml.safe_dump(scen, allow_unicode=True), encoding="utf-8")
    base = run_plan(load_scenario(folder / "base.yaml"), folder / "base_out", maps=False,
                    best_server=False)  # fmt: skip
    scen["name"], scen["year"] = "testville-2030", 2030
    scen["phasing"] = {
        "base_year": 2025,
        "base_scenario": "base.yaml",
        "periods": [{"year": 2028}, {"year": 2030}],
    }
    scen["switching"] = {"new_by_year": {"2025": 2, "2030": 1}, "grid_m": 1000}
    gpd.GeoDataFrame(
        {"TEN_KHU": ["Khu đô thị mới"]}, geometry=[box(X0 + 7000, Y0, X0 + 10000, Y0 + 4000)],
        crs="EPSG:32648",
    ).to_file(folder / "zones.gpkg", driver="GPKG")  # fmt: skip
    gpd.GeoDataFrame(
        {"TEN": ["Tổng đài A"]}, geometry=[Point(X0 + 1500, Y0 + 1500)], crs="EPSG:32648"
    ).to_file(folder / "switches.gpkg", driver="GPKG")
    scen["data"]["development_zones"] = {"path": "zones.gpkg"}
    scen["data"]["switching_points"] = {"path": "switches.gpkg", "columns": {"name": "TEN"}}
    res = run_plan(
        load_scenario(write_scenario(folder, scen)), folder / "out", maps=False, best_server=False
    )
    return {"res": res, "out": folder / "out", "base": base, "base_out": folder / "base_out"}


def _xy(gdf: gpd.GeoDataFrame) -> list[tuple[float, float]]:
    return list(zip(gdf.geometry.x, gdf.geometry.y, strict=True))


def test_base_sites_identical_to_a_separate_base_run(phased: dict) -> None:
    # the 2025 sites of the 2030 plan are the separate 2025 plan's, value for value
    sep = gpd.read_file(phased["base_out"] / "towerplan.gpkg", layer="proposed_sites")
    p = gpd.read_file(phased["out"] / "towerplan.gpkg", layer="proposed_sites")
    first = p[p["build_year"] == 2025].reset_index(drop=True)
    assert len(first) == len(sep) == 8
    pd.testing.assert_frame_equal(first[SAME], sep[SAME])
    assert _xy(first) == _xy(sep)
    assert not set(p.loc[p["build_year"] > 2025, "site_id"]) & set(sep["site_id"])
    s = phased["res"].summary["siting"]
    assert s["base_plan"] == {"from": "phasing.base_scenario testville-2025", "sites": 8}
    assert s["objective"] == phased["base"].summary["siting"]["objective"]


def test_base_plan_folder_gives_the_same_sites(phased: dict) -> None:
    scen = phased["res"].state.scenario
    ph = dataclasses.replace(scen.phasing, base_plan=str(phased["base_out"]))
    state = PlanState(dataclasses.replace(scen, phasing=ph))
    state = run_stages(state, ["load_inputs", "demand_grid", "coverage_before", "candidates",
                               "siting"], progress=False)  # fmt: skip
    sep = phased["base"].layers["proposed_sites"]
    got = state.siting.proposed
    pd.testing.assert_frame_equal(got[SAME], sep[SAME].reset_index(drop=True), check_dtype=False)
    assert _xy(got) == _xy(sep)
    assert state.siting.summary()["base_plan"]["from"].startswith("phasing.base_plan")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"crs": "EPSG:32649"}, "set crs: EPSG:32649"),
        ({"year": 2029}, "set phasing.base_year: 2025"),
        ({"operators": ("Alpha",)}, "use the same 'operators'"),
        ({"area": 0.5}, "use the same data.districts"),
    ],
)
def test_base_plan_that_does_not_fit_is_refused(phased: dict, change: dict, message: str) -> None:
    from towerplan.siting.phasing import check_base_plan, read_base_plan

    base = read_base_plan(phased["base_out"], origin="--base-plan X")
    districts = phased["res"].state.inputs.districts
    if "area" in change:
        districts = districts.assign(geometry=districts.geometry.scale(0.5, 0.5))
    kw = {"crs": "EPSG:32648", "base_year": 2025, "operators": ["Beta", "Alpha"],
          "districts": districts, "data_kind": base.data_kind}  # fmt: skip
    if "crs" in change:
        kw["crs"] = change["crs"]
    if "year" in change:
        kw["base_year"] = change["year"]
    if "operators" in change:
        kw["operators"] = list(change["operators"])
    with pytest.raises(ScenarioError, match=re.escape(message)) as err:
        check_base_plan(base, **kw)  # type: ignore[arg-type]
    assert str(err.value).startswith("--base-plan X: ")
    check_base_plan(base, crs="EPSG:32648", base_year=2025, operators=["Beta", "Alpha"],
                    districts=phased["res"].state.inputs.districts, data_kind=base.data_kind)  # fmt: skip


def test_base_plan_folder_missing(tmp_path: Path) -> None:
    from towerplan.errors import DataFileError
    from towerplan.siting.phasing import read_base_plan

    with pytest.raises(DataFileError, match=r"--base-plan: .* holds no towerplan\.gpkg"):
        read_base_plan(tmp_path, origin="--base-plan")


def test_base_phase_kept_and_later_periods_added(phased: dict) -> None:
    res = phased["res"]
    p = res.layers["proposed_sites"]
    base = res.state.siting.proposed
    assert (p["build_year"] == 2025).sum() == len(base) == 8
    assert set(base["cand_id"]) <= set(p.loc[p["build_year"] == 2025, "cand_id"])
    ph = res.summary["phasing"]
    need = ph["sites_needed_2030"]
    # automatic budgets: the later periods build exactly the 2030 need
    assert need["new_needed"] == len(p) - 8 == sum(ph["budgets"].values())
    assert sum(ph["new_sites_by_year"].values()) == len(p)
    assert ph["coverage_share_by_year"]["2025"] <= ph["coverage_share_by_year"]["2030"]
    t = pd.read_csv(phased["out"] / "phasing.csv")
    city = t[t["district"] == "city"]
    assert t.loc[t["district"] != "city", "new_sites"].sum() == city["new_sites"].sum() == len(p)
    assert city["total_sites"].iloc[-1] == res.summary["total_sites"]
    k = pd.read_csv(phased["out"] / "district_kpis.csv")
    assert {"capacity_sites", "coverage_sites", "sites_needed", "need_2030_capacity_sites"} <= set(
        k.columns
    )
    assert (k["sites_needed"] == k[["capacity_sites", "coverage_sites"]].max(axis=1)).all()
    cols = ["need_2030_coverage_sites", "need_2030_capacity_sites"]
    assert (k["need_2030_sites_needed"] == k[cols].max(axis=1)).all()
    need = res.summary["phasing"]["sites_needed_2030"]
    assert need["max_by_district"] == k["need_2030_sites_needed"].sum()


def test_switching_points_locked_and_nested(phased: dict) -> None:
    res = phased["res"]
    sp = res.layers["switching_points"]
    assert len(sp) == 4 and (sp["status"] == "existing").sum() == 1
    ex = sp[sp["status"] == "existing"].iloc[0]
    assert ex["switch_id"] == "Tổng đài A"
    assert (ex.geometry.x, ex.geometry.y) == pytest.approx((X0 + 1500, Y0 + 1500))
    assert sorted(sp["year"].dropna().astype(int).tolist()) == [2025, 2025, 2030]
    routes = res.layers["switching_backhaul"]
    assert len(routes) == len(res.layers["proposed_sites"])
    assert set(routes["switch_id"]) <= set(sp["switch_id"])
    assert res.summary["switching"]["switching_points_new"] == {"2025": 2, "2030": 1}
    assert Path(phased["out"] / "towerplan.gpkg").exists()


def test_phase_and_switching_maps_and_sheets(phased: dict, tmp_path: Path) -> None:
    from towerplan.outputs.maps import write_maps
    from towerplan.outputs.sheets import write_sheets

    res = phased["res"]
    maps = write_maps(res.layers, res.summary, res.kpis, tmp_path / "maps", kpi_columns=[])
    names = {p.name for p in maps}
    assert {"phasing.html", "switching.html"} <= names
    html = (tmp_path / "maps" / "switching.html").read_text(encoding="utf-8")
    import json

    assert "Tổng đài A" in html or json.dumps("Tổng đài A")[1:-1] in html
    sheets = write_sheets(
        res.layers, res.summary, res.kpis, tmp_path / "sheets", sizes=("A4",), dpi=60,
        formats=("png",), themes=("phasing", "switching"),
    )  # fmt: skip
    assert any("phasing" in p.name for p in sheets) and any("switching" in p.name for p in sheets)


def test_cli_base_plan_on_a_one_shot_scenario(
    phased: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from towerplan.cli import main

    base_yaml = phased["base_out"].parent / "base.yaml"
    args = ["plan", "--scenario", str(base_yaml), "--out", str(tmp_path / "o"), "--base-plan",
            str(phased["base_out"])]  # fmt: skip
    assert main(args) != 0
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--base-plan" in err and "phasing.base_year" in err
