"""Undergrounding, backhaul and Wi-Fi on real data.

Thesis roads and POIs of Cần Thơ, census districts, OSM XML graphs.

Data in ``../shared/data`` (never copied into the repo; see each folder's SOURCE.md).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest

from towerplan.infrastructure import backhaul as bh
from towerplan.infrastructure import undergrounding as ug
from towerplan.inputs import readers
from towerplan.scenario import load_scenario

pytestmark = pytest.mark.realdata

THESIS = "cantho_webgis_thesis_2011"
URBAN = {"Ninh Kiều", "Bình Thủy", "Cái Răng", "Ô Môn", "Thốt Nốt"}


@pytest.fixture(scope="module")
def districts(shared_data: Path) -> gpd.GeoDataFrame:
    return readers.read_districts(
        shared_data / "censusvn2009" / "cantho_communes_2009census.geojson",
        columns={"name": "district_vn"},
    )


@pytest.fixture(scope="module")
def roads(shared_data: Path) -> gpd.GeoDataFrame:
    return readers.read_roads(shared_data / THESIS / "giaothong_roads.geojson")


def test_districts_and_roads_read(districts: gpd.GeoDataFrame, roads: gpd.GeoDataFrame) -> None:
    assert len(districts) == 9
    assert set(districts.loc[districts["district_type"] == "urban", "district"]) == URBAN
    assert len(roads) == 1896
    assert roads["road_class"].value_counts().to_dict() == {
        "local": 1516,
        "provincial": 320,
        "national": 60,
    }


def test_road_km_per_district(districts: gpd.GeoDataFrame, roads: gpd.GeoDataFrame) -> None:
    with pytest.warns(UserWarning, match=r"4\.7 km of 515\.4 km road length lie outside"):
        km = ug.road_km_by_district(roads, districts)
    # measured (EPSG:32648), clipped to the 2009-census districts
    expected = {
        "Ninh Kiều": 137.480,
        "Bình Thủy": 108.012,
        "Cái Răng": 80.719,
        "Ô Môn": 43.177,
        "Cờ Đỏ": 42.356,
        "Vĩnh Thạnh": 32.875,
        "Thốt Nốt": 29.035,
        "Phong Điền": 22.542,
        "Thới Lai": 14.518,
    }
    for name, value in expected.items():
        assert km.loc[name, "road_km"] == pytest.approx(value, abs=0.01), name
    # clipping conserves length: inside + outside = total
    assert km["road_km"].sum() == pytest.approx(roads.length.sum() / 1000 - 4.7, abs=0.05)
    # the 2008 thesis digitised local streets in the centre only: none in Thốt Nốt,
    # Vĩnh Thạnh, Thới Lai
    for name in ("Thốt Nốt", "Vĩnh Thạnh", "Thới Lai"):
        assert km.loc[name, "local"] == 0.0
    assert km.loc["Ninh Kiều", "provincial"] == pytest.approx(44.682, abs=0.01)
    assert km.loc["Vĩnh Thạnh", "national"] == pytest.approx(25.474, abs=0.01)


def test_underground_plan_2016_2030(districts: gpd.GeoDataFrame, roads: gpd.GeoDataFrame) -> None:
    s20, s30 = load_scenario("cantho-2020"), load_scenario("cantho-2030")
    ms = ug.milestones_from_scenarios(s20, s30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # 4.7 km outside, tested above
        plan = ug.plan_undergrounding(
            roads, districts, ms, settings=s20.undergrounding, fibre=s20.fibre
        )
    lay = plan.layer.set_index("district")
    # cable-km (default model): Ninh Kiều (88.190 + 4.608*1.5 + 44.682*1.25) * 2
    assert lay.loc["Ninh Kiều", "cable_km"] == pytest.approx(
        (88.190 + 4.608 * 1.5 + 44.682 * 1.25) * 2, abs=0.05
    )
    assert plan.layer["cable_km"].sum() == pytest.approx(1052.1, abs=0.2)
    ch = plan.checks.set_index("year")
    # quận hold 86 % of the cable length in this (centre-heavy) road layer: the district
    # targets then imply 46.5 % city-wide in 2020 (plan: 30-35 %) and 82.2 % in 2030 (70-80 %)
    assert ch.loc[2020, "urban_cable_share"] == pytest.approx(0.861, abs=0.001)
    assert ch.loc[2020, "city_share"] == pytest.approx(0.465, abs=0.001)
    assert ch.loc[2030, "city_share"] == pytest.approx(0.822, abs=0.001)
    assert plan.consistent is False
    assert "20%-40%" in plan.verdict and "25%-75%" in plan.verdict
    # trajectory: 2016-2030 for every district, km buried per year constant per period
    tr = plan.trajectory
    assert set(tr["year"]) == set(range(2016, 2031))
    nk = tr[tr["district"] == "Ninh Kiều"].set_index("year")
    assert nk.loc[2017, "bury_km"] == pytest.approx(nk.loc[2020, "bury_km"])
    assert nk.loc[2020, "share"] == 0.5 and nk.loc[2030, "share"] == 0.85
    s = ug.summary_keys(plan)
    assert s["underground_share_city"] == {"2020": 0.4653, "2030": 0.8222}
    assert s["underground_plan_consistent"] is False


def test_backhaul_on_thesis_roads(
    shared_data: Path, districts: gpd.GeoDataFrame, roads: gpd.GeoDataFrame
) -> None:
    # post offices (VNPT exchanges) stand in for existing sites, schools for new ones
    ex = readers.read_pois(shared_data / THESIS / "buudien_post_offices.geojson", category="x")
    new = readers.read_pois(shared_data / THESIS / "truong_schools.geojson", category="x")
    ex["site_id"] = [f"PO{i:02d}" for i in range(len(ex))]
    new["site_id"] = [f"S{i:02d}" for i in range(len(new))]
    g = bh.road_graph_from_lines(roads)
    assert (g.number_of_nodes(), nx.number_connected_components(g)) == (2712, 1)
    r = bh.fibre_routes(new, ex, road_graph=g, districts=districts)
    assert len(r) == 68 and (r["method"] == "road").all()
    assert r["length_m"].sum() / 1000 == pytest.approx(127.83, abs=0.05)
    assert (r["length_m"] >= r["straight_m"] - 1e-6).all()
    assert np.allclose(r.geometry.length, r["length_m"])
    km = bh.fibre_km_by_district(r)
    assert km["Ninh Kiều"] == pytest.approx(38.39, abs=0.01)
    assert km.sum() == pytest.approx(127.83, abs=0.05)


def _undirected(g: nx.MultiDiGraph) -> nx.Graph:
    u = nx.Graph()
    for a, b, d in g.edges(data=True):
        if a == b:
            continue
        if not u.has_edge(a, b) or d["length"] < u[a][b]["length"]:
            u.add_edge(a, b, length=d["length"])
    return u


@pytest.mark.parametrize(
    ("name", "crs", "n_nodes"),
    [
        ("West-Oakland.osm.bz2", "EPSG:32610", 47),
        ("planet_bavaria_tiny.osm", "EPSG:32632", 21),
    ],
)
def test_backhaul_on_osm_xml_matches_networkx(
    shared_data: Path, name: str, crs: str, n_nodes: int
) -> None:
    g = readers.graph_from_osm_file(shared_data / "osm_xml_test_osmnx" / name, crs)
    assert g.number_of_nodes() == n_nodes
    nodes = sorted(g.nodes)
    rng = np.random.default_rng(0)
    pick = set(rng.choice(len(nodes), size=4, replace=False).tolist())
    ex_nodes = [n for k, n in enumerate(nodes) if k in pick]
    new_nodes = [n for k, n in enumerate(nodes) if k not in pick]

    def sites(ns: list[int], prefix: str) -> gpd.GeoDataFrame:
        return gpd.GeoDataFrame(
            {"site_id": [f"{prefix}{n}" for n in ns]},
            geometry=gpd.points_from_xy(
                [g.nodes[n]["x"] for n in ns], [g.nodes[n]["y"] for n in ns]
            ),
            crs=crs,
        )

    r = bh.fibre_routes(sites(new_nodes, "N"), sites(ex_nodes, "E"), road_graph=g)
    u = _undirected(g)
    dist = nx.multi_source_dijkstra_path_length(u, set(ex_nodes), weight="length")
    assert (r["method"] == "road").all()
    got = r["length_m"].to_numpy()
    want = np.array([dist[n] for n in new_nodes])
    assert np.allclose(got, want, atol=1e-6)
    for row, n in zip(r.itertuples(), new_nodes, strict=True):
        t = int(row.target_site_id[1:])
        assert nx.shortest_path_length(u, n, t, weight="length") == pytest.approx(dist[n])


def test_backhaul_on_cantho_bus_route_osm(shared_data: Path, districts: gpd.GeoDataFrame) -> None:
    folder = shared_data / "osm_cantho_busstops_busmap"
    g = readers.graph_from_osm_file(
        folder / "cantho_bus_route_17924282.osm", "EPSG:32648", simplify=False, retain_all=True
    )
    assert (g.number_of_nodes(), g.number_of_edges()) == (710, 1154)
    stops = gpd.read_file(folder / "cantho_bus_stops.geojson").to_crs("EPSG:32648")
    stops["site_id"] = stops["osm_id"].astype(str)
    ex = stops.iloc[::10]  # every 10th stop as an "existing site"
    new = stops.drop(ex.index)
    r = bh.fibre_routes(new, ex, road_graph=g, districts=districts)
    assert len(r) == 119 and (r["method"] == "road").all()
    assert r["length_m"].sum() / 1000 == pytest.approx(136.75, abs=0.05)
    assert (r["length_m"] >= r["straight_m"] - 1e-6).all()
    assert r["snap_m"].max() < 25.0  # stops lie on the route
    # osmnx lengths are great-circle; the projected geometry agrees within 0.6 %
    assert np.allclose(r.geometry.length, r["length_m"], rtol=0.006)
    # 3 stops lie 8-18 m outside the low-resolution census polygons: they get the nearest
    # district (the one rule of towerplan._validate.assign_district)
    assert r["district"].value_counts().to_dict() == {
        "Phong Điền": 41 + 3,
        "Ô Môn": 39,
        "Ninh Kiều": 23,
        "Bình Thủy": 13,
    }
    assert int(r["district"].isna().sum()) == 0
    d = districts.set_index("district").geometry
    outside = [
        float(d[name].distance(pt))
        for name, pt in zip(r["district"], new.geometry, strict=True)
        if not d[name].intersects(pt)
    ]
    assert len(outside) == 3 and 7.5 < min(outside) and max(outside) < 18.5
    assert "(outside)" not in bh.fibre_km_by_district(r).index


# --------------------------------------------------------------------------- Wi-Fi

POI_FILES = {
    "benhvien_hospitals": "hospital",
    "truong_schools": "school",
    "coquan_government_agencies": "admin_centre",
    "khachsan_hotels": "tourism",
    "cho_markets": "market",
}


@pytest.fixture(scope="module")
def thesis_pois(shared_data: Path) -> gpd.GeoDataFrame:
    parts = [
        readers.read_pois(shared_data / THESIS / f"{f}.geojson", category=c)
        for f, c in POI_FILES.items()
    ]
    return pd.concat(parts, ignore_index=True)


def _packing_lower_bound(xy: np.ndarray, radius: float) -> int:
    """Greedy set of points pairwise > 2r apart: no hotspot covers two of them."""
    chosen: list[np.ndarray] = []
    for p in xy:
        if all(np.hypot(*(p - q)) > 2 * radius for q in chosen):
            chosen.append(p)
    return len(chosen)


def test_wifi_hotspots_on_thesis_pois(
    thesis_pois: gpd.GeoDataFrame, districts: gpd.GeoDataFrame
) -> None:
    from scipy.spatial import cKDTree

    from towerplan.infrastructure import wifi

    counts = thesis_pois["category"].value_counts().to_dict()
    assert counts == {"school": 68, "admin_centre": 62, "market": 44, "tourism": 34, "hospital": 29}
    s = load_scenario("cantho-2020").wifi
    with pytest.warns(UserWarning) as rec:
        plan = wifi.place_hotspots(
            thesis_pois,
            districts,
            radius_m=s.hotspot_radius_m,
            categories=s.categories,
            city_centre_radius_m=s.city_centre_radius_m,
        )
    msgs = [str(w.message) for w in rec]
    assert any("5 of 237 POIs lie outside the study area" in m for m in msgs)
    assert any("no city-centre polygon given" in m for m in msgs)
    assert plan.n_outside == 5  # 2 hospitals, 2 agencies, 1 market beyond the census polygons
    assert plan.n_other_category == 43  # markets are not a plan category
    assert len(plan.pois) == 189 and bool(plan.pois["covered"].all())
    # the densest POI cluster: central Ninh Kiều (Hai Bà Trưng / Coopmart area)
    c = gpd.GeoSeries([plan.city_centre.centroid], crs=districts.crs).to_crs(4326).iat[0]
    assert (c.x, c.y) == pytest.approx((105.7844, 10.0341), abs=0.0005)
    assert plan.n_centre_points == 80
    h = plan.hotspots
    # every served POI and city-centre grid point is within 100 m of a hotspot
    demand = np.column_stack([plan.pois.geometry.x, plan.pois.geometry.y])
    hxy = np.column_stack([h.geometry.x, h.geometry.y])
    d, _ = cKDTree(hxy).query(demand)
    assert (d <= 100 + 1e-6).all()
    lb = _packing_lower_bound(demand, 100.0)
    assert lb <= len(h) <= 189 + 80
    assert lb == 137  # greedy packing of the POIs alone
    # 173 = the proven minimum (scipy.optimize.milp on the same coverage matrix); before the
    # stale-warm-start fix in _mclp._highs_solve, set_cover returned the greedy 177
    assert len(h) == 173
    by_d = wifi.district_columns(plan, districts)
    assert by_d["wifi_hotspots"].sum() == len(h)
    assert by_d.loc["Ninh Kiều", "wifi_hotspots"] == by_d["wifi_hotspots"].max()
    assert (by_d["wifi_hotspots"] >= 1).all()  # every district gets public Wi-Fi
    # markets as an extra category add hotspots
    with pytest.warns(UserWarning):
        plan_m = wifi.place_hotspots(
            thesis_pois,
            districts,
            radius_m=s.hotspot_radius_m,
            categories=[*s.categories, "market"],
            city_centre=plan.city_centre,
        )
    assert plan_m.n_other_category == 0 and len(plan_m.pois) == 189 + 43
    assert len(plan_m.hotspots) > len(h)
