"""End to end: ``towerplan plan --scenario cantho-2020`` on the built-in demo.

The plan runs once per session (``demo_run`` in conftest.py).
"""

from __future__ import annotations

import json
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest

from towerplan._i18n import _, use_language
from towerplan.inputs._base import DEMO_KIND, DEMO_STAMP
from towerplan.scenario import load_scenario


def test_summary_has_the_plan_numbers(demo_run: dict[str, Any]) -> None:
    s = demo_run["summary"]
    assert s["data_kind"] == DEMO_KIND
    assert "synthetic" in s["caption"] and "census" in s["caption"]
    assert s["scenario"] == "cantho-2020"
    assert (s["existing_sites"], s["new_sites"], s["total_sites"]) == (1114, 614, 1728)
    assert (s["new_dedicated"], s["new_shared"]) == (338, 276)
    # the schematic districts match the real areas (1,414.38 km2 in total) within 5 %
    assert s["area_km2"] == pytest.approx(1414.38, rel=0.05)
    # population: 2009 census 1,188,435 projected to 2020 at 0.386 %/yr
    assert s["population"] == pytest.approx(1188455 * 1.00386**11, rel=1e-6)
    assert s["population_conservation_rel_error"] < 1e-3
    assert s["population_covered_after"] > s["population_covered_before"]
    assert 0 < s["coverage_share_before"] < s["coverage_share_after"] <= 1
    by = s["mean_serving_radius_km_by_convention"]
    assert by["square"] == pytest.approx((s["area_km2"] / (2 * 1728)) ** 0.5, abs=1e-4)
    assert s["mean_serving_radius_km"] == by["square"]
    assert s["radius_convention"] == "square"
    assert s["plan_fidelity"]["best_convention"] == "square"
    # run times are reported per stage (never asserted: they depend on the machine's load)
    from towerplan.plan import STAGES

    stage_names = [st.name for st in STAGES]
    assert list(s["timings_s"])[: len(stage_names)] == stage_names
    assert s["runtime_s"] == s["timings_s"]["total"] >= sum(s["timings_s"][n] for n in stage_names)


def test_sharing_undergrounding_backhaul_wifi(demo_run: dict[str, Any]) -> None:
    s = demo_run["summary"]
    # the demo inventory: 20 % of the 1,114 structures host a second operator (223 of 1,114)
    assert s["sharing_rate_before"] == pytest.approx(223 / 1114, abs=1e-4)
    # the plan adds 276 shared of 614 new structures
    assert s["sharing_rate_after"] == pytest.approx((223 + 276) / 1728, abs=1e-4)
    assert s["sharing_target"] == [0.4, 0.45]
    assert s["colocation_options"] > 0
    assert s["sharing_rate_with_colocations"] >= 0.4
    assert set(s["underground_share_city"]) == {"2020", "2030"}
    # 2020 city share = w x quận target (50 %) + (1 - w) x huyện target (25 %), w = the quận
    # share of the cable length; the plan is consistent only if that lies in 30-35 %
    w = s["underground_urban_cable_share"]
    share_2020 = s["underground_share_city"]["2020"]
    assert share_2020 == pytest.approx(0.5 * w + 0.25 * (1 - w), abs=2e-4)
    ok_2020 = 0.30 - 1e-9 <= share_2020 <= 0.35 + 1e-9
    if not ok_2020:
        assert s["underground_plan_consistent"] is False
    consistent = s["underground_plan_consistent"]
    assert s["underground_verdict"].startswith(
        "underground plan consistent" if consistent else "underground plan NOT consistent"
    )
    assert s["backhaul_routes"] == 614
    assert s["backhaul_fibre_km"] > 0
    assert s["wifi_hotspots"] >= 9  # at least the nine district administrative centres
    gpkg = demo_run["out"] / "towerplan.gpkg"
    names = {row[0] for row in pyogrio.list_layers(gpkg)}
    assert {"sharing_candidates", "underground_plan", "backhaul_routes", "wifi_hotspots"} <= names
    k = pd.read_csv(demo_run["out"] / "district_kpis.csv")
    assert {
        "sharing_rate_after",
        "underground_share_2020",
        "backhaul_fibre_km",
        "wifi_hotspots",
    } <= set(k.columns)
    assert k["wifi_hotspots"].sum() == s["wifi_hotspots"]


def test_capacity_check_and_best_server(demo_run: dict[str, Any]) -> None:
    import math

    import rasterio

    s = demo_run["summary"]
    k = pd.read_csv(demo_run["out"] / "district_kpis.csv")
    # one 4G layer: capacity sites = ceil(traffic / site capacity) per district
    cc = s["capacity_check"]
    site_cap = cc["technologies"]["4G"]["site_capacity_mbps"]
    assert (
        k["capacity_sites"] == [math.ceil(v / site_cap - 1e-6) for v in k["traffic_mbps"]]
    ).all()
    assert cc["capacity_sites_needed"] == int(k["capacity_sites"].sum())
    assert cc["coverage_sites"] == 1728
    assert (k["sites_needed"] == k[["capacity_sites", "coverage_sites"]].max(axis=1)).all()
    with rasterio.open(demo_run["out"] / "best_server.tif") as src:
        assert src.count == 3 and src.crs.to_epsg() == 32648
        assert src.res == (100.0, 100.0)
        serving = src.read(3)
    served = serving[serving >= 0]
    # the raster spans the bounding box; every cell within 5 km of a site is served
    assert served.size >= s["demand_cells"]
    assert served.max() < 1728  # rows of existing_sites then proposed_sites
    assert len(set(served.tolist())) > 1000
    lb = s["link_budget_cell_radius_km"]
    assert lb["900MHz"]["rural"] > lb["1800MHz"]["rural"] > lb["2100MHz"]["rural"]


def test_district_kpis(demo_run: dict[str, Any]) -> None:
    k = pd.read_csv(demo_run["out"] / "district_kpis.csv")
    assert len(k) == 9
    assert set(k["data_kind"]) == {DEMO_KIND}
    assert sorted(k["district_type"].value_counts().to_dict().items()) == [
        ("rural", 4),
        ("urban", 5),
    ]
    assert k["existing"].sum() == 1114
    assert k["new_dedicated"].sum() == 338 and k["new_shared"].sum() == 276
    assert (k["total"] == k["existing"] + k["new_dedicated"] + k["new_shared"]).all()
    assert (k["coverage_any_after"] >= k["coverage_any_before"]).all()
    assert k["population"].sum() == pytest.approx(1188455 * 1.00386**11, rel=1e-6)


def test_geopackage_layers(demo_run: dict[str, Any]) -> None:
    gpkg = demo_run["out"] / "towerplan.gpkg"
    names = {row[0] for row in pyogrio.list_layers(gpkg)}
    assert {
        "districts",
        "demand",
        "existing_sites",
        "candidate_sites",
        "proposed_sites",
        "coverage_gaps",
    } <= names
    p = gpd.read_file(gpkg, layer="proposed_sites")
    assert len(p) == 614
    assert set(p["site_type"]) == {"dedicated", "shared"}
    shared = p[p["site_type"] == "shared"]
    assert (shared["operators"].str.split(";").str.len() >= 2).all()
    assert (p.loc[p["site_type"] == "dedicated", "operators"].str.split(";").str.len() == 1).all()
    assert p["site_id"].is_unique
    assert p["lon"].between(105.2, 105.9).all() and p["lat"].between(9.85, 10.4).all()
    assert p["district"].notna().all()
    gaps = gpd.read_file(gpkg, layer="coverage_gaps")
    assert set(gaps["stage"]) == {"before", "after"}
    b = gaps[gaps["stage"] == "before"].set_index("operator")["population"]
    a = gaps[gaps["stage"] == "after"].set_index("operator")["population"]
    assert (a <= b + 1e-6).all()


def test_overview_map_says_demo(demo_run: dict[str, Any]) -> None:
    html = (demo_run["out"] / "maps" / "overview.html").read_text(encoding="utf-8")
    # in the scenario's language (cantho-2020: vi); plain or JSON-escaped in the page
    with use_language(load_scenario("cantho-2020").language):
        stamp = _(DEMO_STAMP)
    assert stamp in html or json.dumps(stamp)[1:-1] in html
    assert "unpkg.com" not in html and "cdn.jsdelivr" not in html


def test_nothing_left_beside_out(demo_run: dict[str, Any]) -> None:
    siblings = [p.name for p in demo_run["out"].parent.iterdir()]
    assert siblings == ["cantho-2020"]
