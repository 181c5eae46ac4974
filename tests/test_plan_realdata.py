"""End to end on real Cần Thơ data in ../shared/data (same code path as the demo)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from conftest import DEMO_WORK_LIMIT

from towerplan.cli import main
from towerplan.scenario import load_scenario

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def real_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from importlib import resources

    raw = yaml.safe_load(
        (resources.files("towerplan") / "scenarios" / "cantho-2020.yaml").read_text("utf-8")
    )
    census = shared_data / "censusvn2009" / "cantho_communes_2009census.geojson"
    webgis = shared_data / "cantho_webgis_thesis_2011"
    raw["name"] = "cantho-2020-census2009"
    # no real inventory of existing sites exists in ../shared/data: plan the 614 new sites only
    raw["sites"].update(existing=0, total=614)
    raw["data"] = {
        "kind": "files",
        "label": "censusVN2009 communes + 2008-era WebGIS POIs/roads",
        "districts": {"path": str(census), "columns": {"name": "district_vn"}},
        "population": {"path": str(census), "columns": {"population": "population"}},
        "pois": [
            {
                "path": str(webgis / "benhvien_hospitals.geojson"),
                "category": "hospital",
                "columns": {"name": "ten"},
            },
            {
                "path": str(webgis / "truong_schools.geojson"),
                "category": "school",
                "columns": {"name": "ten"},
            },
            {
                "path": str(webgis / "coquan_government_agencies.geojson"),
                "category": "admin_centre",
                "columns": {"name": "ten"},
            },
            {
                "path": str(webgis / "khachsan_hotels.geojson"),
                "category": "tourism",
                "columns": {"name": "ten"},
            },
        ],
        "roads": {
            "path": str(webgis / "giaothong_roads.geojson"),
            "columns": {"class": "loai_duong", "name": "ten_duong"},
        },
    }
    folder = tmp_path_factory.mktemp("real")
    path = folder / "cantho-census.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    load_scenario(path)
    out = folder / "out"
    # a small siting budget (conftest.DEMO_WORK_LIMIT): the assertions check the data path
    args = ["plan", "--scenario", str(path), "--out", str(out), "--solver", "heuristic"]
    code = main([*args, "--work-limit", str(DEMO_WORK_LIMIT), "--no-raster", "--no-maps"])
    assert code == 0
    return {"out": out, "summary": json.loads((out / "summary.json").read_text(encoding="utf-8"))}


def test_real_districts_population_and_sites(real_run: dict[str, Any]) -> None:
    s = real_run["summary"]
    assert s["data_kind"] == "censusVN2009 communes + 2008-era WebGIS POIs/roads"
    assert "caption" not in s  # real data: no schematic stamp
    assert s["population"] == pytest.approx(1_109_814, rel=1e-3)  # conserved within 0.1 %
    assert s["population_conservation_rel_error"] < 1e-3
    assert s["area_km2"] == pytest.approx(1414, rel=0.02)
    assert (s["new_sites"], s["new_dedicated"], s["new_shared"]) == (614, 338, 276)
    assert s["existing_sites"] == 0
    assert s["coverage_share_before"] == 0.0
    assert s["coverage_share_after"] > 0.3
    k = pd.read_csv(real_run["out"] / "district_kpis.csv")
    assert sorted(k["district"]) == sorted(
        [
            "Ninh Kiều",
            "Ô Môn",
            "Bình Thủy",
            "Cái Răng",
            "Thốt Nốt",
            "Vĩnh Thạnh",
            "Cờ Đỏ",
            "Thới Lai",
            "Phong Điền",
        ]
    )
    assert set(k.loc[k["district_type"] == "urban", "district"]) == {
        "Ninh Kiều",
        "Ô Môn",
        "Bình Thủy",
        "Cái Răng",
        "Thốt Nốt",
    }
    ninh_kieu = k.set_index("district").loc["Ninh Kiều"]
    assert ninh_kieu["population"] == pytest.approx(180_122, rel=5e-3)


def test_real_pois_roads_undergrounding_wifi(real_run: dict[str, Any]) -> None:
    s = real_run["summary"]
    # 29 hospitals + 68 schools + 62 agencies + 34 hotels, 4 of them outside the communes
    assert s["wifi_pois_served"] == 189
    assert s["wifi_pois_outside_study_area"] == 4
    # set covering, solved to proven optimality (scipy.optimize.milp agrees: 173)
    assert s["wifi_hotspots"] == 173
    assert s["wifi_hotspots_by_category"]["hospital"] <= 29
    # cable model on the 1,896 road segments of the 2008-era layer
    assert s["underground_cable_km"] == pytest.approx(1052.1, abs=0.5)
    assert s["underground_urban_cable_share"] == pytest.approx(0.861, abs=0.002)
    assert s["underground_plan_consistent"] is False  # quận hold 86 % of the cable, not 20-40 %
    assert s["underground_share_city"]["2020"] == pytest.approx(0.465, abs=0.002)
    assert s["underground_share_city"]["2030"] == pytest.approx(0.822, abs=0.002)
    k = pd.read_csv(real_run["out"] / "district_kpis.csv").set_index("district")
    assert k.loc["Ninh Kiều", "road_km"] == pytest.approx(137.48, abs=0.05)
    assert k["wifi_hotspots"].sum() == s["wifi_hotspots"]
    traj = pd.read_csv(real_run["out"] / "underground_plan.csv")
    city = traj[traj["district"] == "city"].set_index("year")["share"]
    assert list(city.index) == list(range(2016, 2031))
    assert city.is_monotonic_increasing


def test_osm_xml_roads_through_load_inputs(shared_data: Path) -> None:
    """A scenario naming an OSM XML road file goes through osmnx.graph_from_xml."""
    from towerplan.inputs import readers as tio
    from towerplan.scenario import scenario_from_dict

    census = shared_data / "censusvn2009" / "cantho_communes_2009census.geojson"
    osm = shared_data / "osm_cantho_busstops_busmap" / "cantho_bus_route_17924282.osm"
    from importlib import resources

    raw = yaml.safe_load(
        (resources.files("towerplan") / "scenarios" / "cantho-2020.yaml").read_text("utf-8")
    )
    raw["sites"].update(existing=0, total=614)
    raw["data"] = {
        "kind": "files",
        "label": "census + OSM bus route",
        "districts": {"path": str(census), "columns": {"name": "district_vn"}},
        "roads": {"path": str(osm)},
    }
    inputs = tio.load_inputs(scenario_from_dict(raw))
    g = inputs.road_graph
    # route 09's 84 ways with osmnx's defaults (simplified, largest connected component)
    assert (g.number_of_nodes(), g.number_of_edges()) == (4, 8)
    assert inputs.roads.crs.to_epsg() == 32648
    assert inputs.roads.length.sum() / 1000 == pytest.approx(46.845, abs=0.01)
    assert len(inputs.districts) == 9
