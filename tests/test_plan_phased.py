"""The phased plan end to end on the Testville fixture: base phase kept, later periods,
capacity beside coverage, switching points (one existing, locked) and phasing.csv."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from _city_fixture import X0, Y0, make_city, write_scenario
from shapely.geometry import Point, box

from towerplan.plan import run_plan
from towerplan.scenario import load_scenario


@pytest.fixture(scope="module")
def phased(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("phased")
    scen = make_city(folder)
    scen["name"], scen["year"] = "testville-2030", 2030
    scen["phasing"] = {"base_year": 2025, "periods": [{"year": 2028}, {"year": 2030}]}
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
    return {"res": res, "out": folder / "out"}


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
