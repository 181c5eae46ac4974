"""Tests of towerplan.infrastructure.backhaul: fibre routes along the road graph, with flagged fallback."""

from __future__ import annotations

from contextlib import nullcontext

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
from conftest import CRS, X0, Y0
from shapely.geometry import LineString, Point, box

from towerplan.errors import ColumnError, CRSError, EmptyInputError
from towerplan.infrastructure import backhaul as bh


def _p(x: float, y: float) -> Point:
    return Point(X0 + x, Y0 + y)


def _roads() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"road_class": ["local"] * 3},
        geometry=[
            LineString([(X0, Y0), (X0 + 1000, Y0)]),
            LineString([(X0 + 1000, Y0), (X0 + 1000, Y0 + 1000)]),
            LineString([(X0 + 5000, Y0), (X0 + 6000, Y0)]),  # disconnected piece
        ],
        crs=CRS,
    )


def _sites(ids: list[str], xy: list[tuple[float, float]], **cols: list[str]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"site_id": ids, **cols}, geometry=[_p(*c) for c in xy], crs=CRS)


def _existing() -> gpd.GeoDataFrame:
    return _sites(["E1", "E2"], [(0, -10), (1010, 1000)])


def test_routes_hand_computed_with_fallback() -> None:
    new = _sites(
        ["N1", "N2", "N3", "N4"],
        [(600, 20), (1020, 700), (5500, 30), (3000, 3000)],
        district=["A", "A", "B", "B"],
    )
    with pytest.warns(UserWarning, match="2 of 4 new sites cannot reach"):
        r = bh.fibre_routes(new, _existing(), roads=_roads(), max_snap_m=500)
    r = r.set_index("site_id")
    # N1: 20 m to the road, 600 m along it to (0,0), 10 m to E1
    assert r.loc["N1", "target_site_id"] == "E1" and r.loc["N1", "method"] == "road"
    assert r.loc["N1", "length_m"] == pytest.approx(630.0)
    assert r.loc["N1", "network_m"] == pytest.approx(600.0)
    assert r.loc["N1", "snap_m"] == pytest.approx(30.0)
    assert r.loc["N1", "geometry"].length == pytest.approx(630.0)
    # N2: 20 m, 300 m up the road to (1000,1000), 10 m to E2
    assert r.loc["N2", "target_site_id"] == "E2"
    assert r.loc["N2", "length_m"] == pytest.approx(330.0)
    # N3 sits on the disconnected piece; N4 is 2.8 km from any road -> straight lines
    assert r.loc["N3", "method"] == "straight_line" and r.loc["N4", "method"] == "straight_line"
    assert r.loc["N3", "target_site_id"] == "E2"
    assert r.loc["N3", "length_m"] == pytest.approx(np.hypot(4490, 970))
    assert r.loc["N4", "length_m"] == pytest.approx(np.hypot(1990, 2000))
    assert r.loc["N1", "straight_m"] == pytest.approx(np.hypot(600, 30))
    km = bh.fibre_km_by_district(r)
    assert km["A"] == pytest.approx(0.96)
    s = bh.summary_keys(r)
    assert s["backhaul_routes"] == 4 and s["backhaul_straight_line"] == 2
    assert s["backhaul_fibre_km"] == pytest.approx(
        round((630 + 330 + np.hypot(4490, 970) + np.hypot(1990, 2000)) / 1000, 3)
    )
    # road against straight line: N1 and N2 follow the road (630 + 330 m)
    straight = np.hypot(600, 30) + r.loc["N2", "straight_m"]
    assert s["backhaul_road_routed_km"] == pytest.approx(0.96)
    assert s["backhaul_road_routed_straight_km"] == pytest.approx(round(straight / 1000, 3))
    assert s["backhaul_road_detour_factor"] == pytest.approx(round(960 / straight, 4))
    d = bh.district_columns(r)
    assert d.loc["B", "backhaul_routes"] == 2


def test_same_edge_and_route_geometry_follows_road() -> None:
    # both on the first road: run along it directly, not via an end node
    ex = _sites(["E1"], [(800, 5)])
    new = _sites(["N1"], [(300, -5)])
    r = bh.fibre_routes(new, ex, roads=_roads())
    assert r["length_m"].iat[0] == pytest.approx(5 + 500 + 5)
    assert r["geometry"].iat[0].length == pytest.approx(510.0)
    # around the corner: path bends at (1000, 0)
    ex2 = _sites(["E9"], [(1000, 800)])
    new2 = _sites(["N9"], [(700, 0)])
    r2 = bh.fibre_routes(new2, ex2, roads=_roads())
    assert r2["length_m"].iat[0] == pytest.approx(300 + 800)
    assert r2["geometry"].iat[0].distance(_p(1000, 0)) < 1e-6


def test_multidigraph_with_edge_geometry_and_crs() -> None:
    g = nx.MultiDiGraph(crs=CRS)
    g.add_node(1, x=X0, y=Y0)
    g.add_node(2, x=X0 + 1000, y=Y0)
    bend = LineString([(X0, Y0), (X0 + 500, Y0 + 500), (X0 + 1000, Y0)])  # 1414.2 m
    g.add_edge(1, 2, length=bend.length, geometry=bend)  # one-way: used both ways
    g.add_edge(2, 1, length=5000.0)  # longer parallel edge: ignored
    ex = _sites(["E"], [(1000, -1)])
    new = _sites(["N"], [(0, -1)])
    r = bh.fibre_routes(new, ex, road_graph=g)
    assert r["method"].iat[0] == "road"
    assert r["length_m"].iat[0] == pytest.approx(1 + bend.length + 1)
    # geometry follows the bend through (500, 500)
    assert r["geometry"].iat[0].distance(_p(500, 500)) < 1e-6


def test_graph_crs_errors() -> None:
    g = nx.MultiDiGraph()
    g.add_node(1, x=0.0, y=0.0)
    ex, new = _existing(), _sites(["N"], [(0, 0)])
    with pytest.raises(CRSError, match="no 'crs'"):
        bh.fibre_routes(new, ex, road_graph=g)
    g.graph["crs"] = "EPSG:4326"
    with pytest.raises(CRSError, match="geographic"):
        bh.fibre_routes(new, ex, road_graph=g)
    g.graph["crs"] = "EPSG:32610"
    with pytest.raises(CRSError, match="different CRSs"):
        bh.fibre_routes(new, ex, road_graph=g)


def test_multi_source_matches_networkx_on_random_grid() -> None:
    rng = np.random.default_rng(7)
    lines = []
    for i in range(8):
        for j in range(8):
            if i < 7 and rng.random() < 0.8:
                lines.append(
                    LineString([(X0 + 200 * i, Y0 + 200 * j), (X0 + 200 * (i + 1), Y0 + 200 * j)])
                )
            if j < 7 and rng.random() < 0.8:
                lines.append(
                    LineString([(X0 + 200 * i, Y0 + 200 * j), (X0 + 200 * i, Y0 + 200 * (j + 1))])
                )
    roads = gpd.GeoDataFrame({"road_class": ["local"] * len(lines)}, geometry=lines, crs=CRS)
    g = bh.road_graph_from_lines(roads)
    nodes = list(g.nodes)
    pick = rng.choice(len(nodes), size=20, replace=False)
    ex_nodes, new_nodes = [nodes[k] for k in pick[:5]], [nodes[k] for k in pick[5:]]
    xy = {n: (g.nodes[n]["x"] - X0, g.nodes[n]["y"] - Y0) for n in nodes}
    ex = _sites([f"E{n}" for n in ex_nodes], [xy[n] for n in ex_nodes])
    new = _sites([f"N{n}" for n in new_nodes], [xy[n] for n in new_nodes])
    reach = nx.multi_source_dijkstra_path_length(g, set(ex_nodes), weight="length")
    n_cut = sum(n not in reach for n in new_nodes)
    ctx = pytest.warns(UserWarning, match=f"{n_cut} of 15") if n_cut else nullcontext()
    with ctx:
        r = bh.fibre_routes(new, ex, road_graph=g)
    dist, _ = nx.multi_source_dijkstra(g, set(ex_nodes), weight="length")
    for n, row in zip(new_nodes, r.itertuples(), strict=True):
        if n in dist:
            assert row.method == "road"
            assert row.length_m == pytest.approx(dist[n], abs=1e-6)
            t = int(row.target_site_id[1:])
            assert nx.shortest_path_length(g, n, t, weight="length") == pytest.approx(dist[n])
        else:
            assert row.method == "straight_line"


def test_road_graph_from_lines_snapping() -> None:
    lines = gpd.GeoDataFrame(
        geometry=[
            LineString([(X0, Y0), (X0 + 100, Y0)]),
            LineString([(X0 + 100.4, Y0), (X0 + 200, Y0)]),  # 0.4 m gap
        ],
        crs=CRS,
    )
    assert nx.number_connected_components(bh.road_graph_from_lines(lines, 1.0)) == 1
    assert nx.number_connected_components(bh.road_graph_from_lines(lines, 0.1)) == 2
    assert nx.number_connected_components(bh.road_graph_from_lines(lines, 0.0)) == 2
    g = bh.road_graph_from_lines(lines, 1.0)
    assert sum(d["length"] for _, _, d in g.edges(data=True)) == pytest.approx(199.6)


def test_bad_input() -> None:
    new = _sites(["N1"], [(600, 20)])
    with pytest.raises(CRSError, match="no CRS"):
        bh.fibre_routes(new, _existing(), roads=_roads().set_crs(None, allow_override=True))
    with pytest.raises(CRSError, match="no CRS"):
        bh.road_graph_from_lines(_roads().set_crs(None, allow_override=True))
    with pytest.raises(CRSError, match="geographic"):
        bh.fibre_routes(new.to_crs(4326), _existing().to_crs(4326), roads=_roads())
    with pytest.raises(CRSError, match="different CRSs"):
        bh.fibre_routes(new, _existing(), roads=_roads().to_crs(3405))
    with pytest.raises(EmptyInputError):
        bh.fibre_routes(new, _existing().iloc[:0], roads=_roads())
    with pytest.raises(ColumnError, match="site_id"):
        bh.fibre_routes(new.drop(columns="site_id"), _existing(), roads=_roads())
    with pytest.warns(UserWarning, match="no road network given"):
        r = bh.fibre_routes(new, _existing())
    assert (r["method"] == "straight_line").all()
    assert len(bh.fibre_routes(new.iloc[:0], _existing(), roads=_roads())) == 0


def test_district_from_polygons_and_inputs_untouched() -> None:
    new = _sites(["N1", "N2"], [(600, 20), (1020, 700)])
    districts = gpd.GeoDataFrame(
        {"district": ["West", "East"]},
        geometry=[
            box(X0 - 100, Y0 - 100, X0 + 800, Y0 + 1100),
            box(X0 + 800, Y0 - 100, X0 + 2000, Y0 + 1100),
        ],
        crs=CRS,
    )
    before = new.copy()
    r = bh.fibre_routes(new, _existing(), roads=_roads(), districts=districts)
    pd.testing.assert_frame_equal(new, before)
    assert list(r["district"]) == ["West", "East"]
    assert list(r.index) == list(new.index)
