"""Folium maps: files, offline assets, escaping, feature registry (no browser)."""

from __future__ import annotations

import hashlib
import html
import re
from importlib import resources
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from _layers_fixture import EVIL, make_layers
from shapely.geometry import LineString, Point

from towerplan.errors import CRSError, ParameterError
from towerplan.inputs._base import DEMO_STAMP
from towerplan.outputs import _assets, maps

REGISTRY_RE = re.compile(r'^\s*("(?:[^"\\]|\\.)*"): \[(\w+), (\d+)\],$', re.MULTILINE)


def registry(html_text: str) -> dict[str, int]:
    """Expected feature counts per layer label from ``window.towerplan``."""
    import json

    return {json.loads(k): int(n) for k, _, n in REGISTRY_RE.findall(html_text)}


@pytest.fixture(scope="module")
def evil_maps(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], dict, dict]:
    layers, summary, kpis = make_layers(n_existing=40, n_proposed=15, evil=True)
    paths = maps.write_maps(layers, summary, kpis, tmp_path_factory.mktemp("maps"))
    return paths, layers, summary


def test_one_file_per_theme_and_kpi(evil_maps: tuple[list[Path], dict, dict]) -> None:
    paths, _, _ = evil_maps
    names = [p.stem for p in paths]
    assert names[: len(maps.THEMES)] == list(maps.THEMES)
    assert names[len(maps.THEMES) :] == [f"kpi_{c}" for c in maps.DEFAULT_KPI_COLUMNS]
    for p in paths:
        assert p.suffix == ".html" and p.stat().st_size > 100_000  # Leaflet embedded


def test_offline_self_contained(evil_maps: tuple[list[Path], dict, dict]) -> None:
    paths, _, _ = evil_maps
    leaflet_js = (resources.files("towerplan") / "static/leaflet/leaflet.js").read_text()
    marker = leaflet_js[200:400]
    for p in paths:
        text = p.read_text(encoding="utf-8")
        assert _assets.external_references(text) == []
        assert marker in text
        for cdn in ("cdn.jsdelivr", "code.jquery", "cdnjs", "bootstrap", "fontawesome", "netdna"):
            assert cdn not in text, (p.name, cdn)
        assert "sourceMappingURL" not in text
        assert "url(images/" not in text  # Leaflet CSS images inlined as data: URIs


def test_cluster_assets_only_when_clustering(tmp_path: Path) -> None:
    layers, summary, kpis = make_layers(n_existing=maps.CLUSTER_THRESHOLD + 20, n_proposed=10)
    m = maps.build_map("proposed_sites", layers, summary, kpis)
    text = maps.map_html(m)
    assert "L.markerClusterGroup(" in text and "MarkerClusterGroup=" in text.replace(" ", "")
    assert registry(text)["Existing sites"] == maps.CLUSTER_THRESHOLD + 20
    m2 = maps.build_map("undergrounding", layers, summary, kpis)
    assert "markerClusterGroup" not in maps.map_html(m2)


def test_online_variant_links_pinned_cdn(tmp_path: Path) -> None:
    layers, summary, kpis = make_layers(n_existing=10, n_proposed=5)
    off = maps.map_html(maps.build_map("overview", layers, summary, kpis))
    on = maps.map_html(
        maps.build_map("overview", layers, summary, kpis, offline=False), offline=False
    )
    assert _assets.external_references(on) == [
        _assets.CDN_CSS["leaflet"],
        _assets.CDN_JS["leaflet"],
    ]
    assert len(off) - len(on) > 140_000


def test_tiles_are_optional_and_not_required(tmp_path: Path) -> None:
    layers, summary, kpis = make_layers(n_existing=10, n_proposed=5)
    plain = maps.map_html(maps.build_map("overview", layers, summary, kpis))
    assert "L.tileLayer" not in plain
    tiled = maps.map_html(maps.build_map("overview", layers, summary, kpis, tiles="OpenStreetMap"))
    assert "L.tileLayer" in tiled
    assert _assets.external_references(tiled) == []  # tiles load from script, page works without


def test_escaping_of_user_text(evil_maps: tuple[list[Path], dict, dict]) -> None:
    paths, _, _ = evil_maps
    clean_layers, clean_summary, clean_kpis = make_layers(n_existing=40, n_proposed=15, evil=False)
    for p in paths:
        text = p.read_text(encoding="utf-8")
        assert EVIL not in text
        assert "<script>alert" not in text
        assert "alert(1)</script>" not in text
        assert "<img" not in text
        clean = maps.map_html(maps.build_map(p.stem, clean_layers, clean_summary, clean_kpis))
        # same page structure: no script element was added by the data
        assert text.count("<script") == clean.count("<script"), p.name
        assert text.count("</script>") == clean.count("</script>"), p.name
    overview = paths[0].read_text(encoding="utf-8")
    # HTML-escaped (so shown as text), then JSON-escaped by Jinja's tojson
    assert "\\u0026lt;script\\u0026gt;alert(1)\\u0026lt;/script\\u0026gt;" in overview
    assert "\\u0026quot;\\u0026#x27;\\u0026amp;" in overview


def test_demo_caption_and_notes() -> None:
    layers, summary, kpis = make_layers(n_existing=10, n_proposed=5)
    demo = maps.map_html(maps.build_map("overview", layers, summary, kpis))
    assert DEMO_STAMP in demo
    assert "Districts are schematic rectangles" in demo
    real = dict(summary, data_kind="cantho-osm-2024", notes=[])
    text = maps.map_html(maps.build_map("overview", layers, real, kpis))
    assert DEMO_STAMP not in text
    assert "data: cantho-osm-2024" in text


def test_registry_counts_match_layers(evil_maps: tuple[list[Path], dict, dict]) -> None:
    paths, layers, _ = evil_maps
    by = {p.stem: registry(p.read_text(encoding="utf-8")) for p in paths}
    pr = layers["proposed_sites"]
    n_ded = int((pr["site_type"] == "dedicated").sum())
    assert by["proposed_sites"] == {
        "Districts": 3,
        "District labels": 3,
        "Roads": 3,
        "Existing sites": 40,
        "Proposed sites - dedicated": n_ded,
        "Proposed sites - shared": len(pr) - n_ded,
    }
    gaps = layers["coverage_gaps"]
    for _, row in gaps.iterrows():
        assert by["coverage_gaps"][f"Gaps {row['stage']} - {row['operator']}"] == 1
    ops = layers["existing_sites"]["operator"].value_counts()
    assert EVIL in ops.index
    for op, n in ops.items():
        assert by["coverage_gaps"][html.escape(f"Existing sites - {op}")] == n
    sharing = layers["sharing_candidates"]
    total_lines = sum(v for k, v in by["sharing_candidates"].items() if k.startswith("Co-location"))
    assert total_lines == len(sharing)
    wifi = layers["wifi_hotspots"]
    for cat, n in wifi["category"].value_counts().items():
        assert by["wifi_hotspots"][f"Hotspots - {cat}"] == n
        assert by["wifi_hotspots"][f"Coverage {cat}"] == n
    assert by["undergrounding"]["underground share 2020 (plan)"] == 3
    assert by["undergrounding"]["underground share 2016 (now)"] == 3
    assert by["kpi_total"]["KPI: total"] == 3


def test_demand_not_drawn_and_coordinates_rounded() -> None:
    layers, summary, kpis = make_layers(n_existing=10, n_proposed=5)
    with_demand = maps.map_html(maps.build_map("overview", layers, summary, kpis))
    no_demand = {k: v for k, v in layers.items() if k != "demand"}
    without = maps.map_html(maps.build_map("overview", no_demand, summary, kpis))
    strip = re.compile(r"[0-9a-f]{32}")
    assert len(strip.sub("", with_demand)) == len(strip.sub("", without))
    body = with_demand.split("</head>", 1)[1]
    assert re.search(r"\d+\.\d{7,}", body) is None
    assert re.search(r"105\.7\d{4}", body) is not None  # lon in degrees (EPSG:4326)


def test_missing_and_empty_layers() -> None:
    layers, summary, kpis = make_layers(n_existing=10, n_proposed=5)
    minimal = {
        "districts": layers["districts"],
        "existing_sites": layers["existing_sites"],
        "proposed_sites": layers["proposed_sites"].iloc[0:0],
        "coverage_gaps": None,
    }
    for theme in maps.THEMES:
        text = maps.map_html(maps.build_map(theme, minimal, summary, kpis))  # type: ignore[arg-type]
        reg = registry(text)
        assert reg["Districts"] == 3
        assert not any(k.startswith("Proposed") for k in reg)
    sharing = maps.map_html(maps.build_map("sharing_candidates", minimal, summary, kpis))  # type: ignore[arg-type]
    assert "No co-location options in this plan." in sharing
    assert "No Wi-Fi hotspot layer" in maps.map_html(
        maps.build_map("wifi_hotspots", minimal, summary)
    )  # type: ignore[arg-type]


def test_sharing_points_become_lines() -> None:
    layers, _, _ = make_layers(n_existing=10, n_proposed=5)
    s = layers["sharing_candidates"].copy()
    s = s.set_geometry([Point(g.coords[-1]) for g in s.geometry])
    lines = maps._sharing_lines(s, layers["proposed_sites"])
    assert (lines.geom_type == "LineString").all()
    pos = dict(
        zip(layers["proposed_sites"]["site_id"], layers["proposed_sites"].geometry, strict=True)
    )
    for sid, g in zip(lines["site_id"], lines.geometry, strict=True):
        assert g.coords[0] == pos[sid].coords[0]


def test_road_thinning(monkeypatch: pytest.MonkeyPatch) -> None:
    layers, summary, _ = make_layers(n_existing=5, n_proposed=3)
    monkeypatch.setattr(maps, "MAX_ROAD_FEATURES", 2)
    reg = registry(maps.map_html(maps.build_map("overview", layers, summary)))
    assert reg["Roads"] == 2  # national + provincial kept, local dropped


def test_classify_quantiles() -> None:
    idx, legend = maps._classify(pd.Series([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, np.nan]))
    assert idx[-1] == 5 and legend[-1][1] == "no data"
    assert idx[:6] == sorted(idx[:6]) and idx[0] == 0 and idx[5] == 4
    idx1, legend1 = maps._classify(pd.Series([2.0, 2.0]))
    assert idx1 == [0, 0] and len(legend1) == 1


def test_errors() -> None:
    layers, summary, kpis = make_layers(n_existing=5, n_proposed=3)
    with pytest.raises(ParameterError, match="unknown map theme"):
        maps.build_map("heatmap", layers, summary, kpis)
    with pytest.raises(ParameterError, match="no column 'nope'"):
        maps.build_map("kpi_nope", layers, summary, kpis)
    with pytest.raises(ParameterError, match="not in the KPI table"):
        maps.write_maps(layers, summary, kpis, "/nonexistent/never", kpi_columns=["nope"])
    bad = dict(layers, roads=layers["roads"].set_crs(None, allow_override=True))
    with pytest.raises(CRSError, match="roads"):
        maps.build_map("overview", bad, summary)


def test_geographic_input_accepted() -> None:
    layers, summary, kpis = make_layers(n_existing=5, n_proposed=3)
    ll = {k: v.to_crs(4326) for k, v in layers.items()}
    reg = registry(maps.map_html(maps.build_map("overview", ll, summary, kpis)))
    assert reg["Existing sites"] == 5
    line = gpd.GeoDataFrame({"name": ["x"]}, geometry=[LineString([(0, 0), (1, 1)])], crs=4326)
    assert len(maps._to_wgs84(line, "roads")) == 1


def test_static_assets_match_source_md() -> None:
    static = resources.files("towerplan") / "static"
    source = (static / "SOURCE.md").read_text(encoding="utf-8")
    entries = re.findall(r"^([0-9a-f]{64})  (\S+)$", source, re.MULTILINE)
    assert len(entries) == 10
    for digest, rel in entries:
        assert hashlib.sha256((static / rel).read_bytes()).hexdigest() == digest, rel
    assert "BSD-2-Clause" in source and "MIT" in source
    assert _assets.LEAFLET_VERSION in source and _assets.MARKERCLUSTER_VERSION in source


def test_gap_not_covered_by_any_operator() -> None:
    from shapely.geometry import box

    from towerplan.outputs import _themes

    layers, summary, kpis = make_layers(n_existing=5, n_proposed=3)
    x0, y0 = layers["districts"].geometry.iloc[0].centroid.coords[0]
    gaps = gpd.GeoDataFrame(
        {
            "operator": ["A", "B", "A", "B"],
            "stage": ["after", "after", "before", "before"],
            "population": [1.0, 1.0, 5.0, 5.0],
        },
        geometry=[
            box(x0, y0, x0 + 1000, y0 + 1000),
            box(x0 + 400, y0, x0 + 1400, y0 + 1000),
            box(x0, y0, x0 + 3000, y0 + 3000),
            box(x0, y0, x0 + 3000, y0 + 3000),
        ],
        crs=layers["districts"].crs,
    )
    allg = _themes.gaps_all_operators(gaps)
    assert allg["area_km2"].iloc[0] == pytest.approx(0.6)  # 600 m x 1000 m overlap
    assert allg["operators"].iloc[0] == "A;B"
    before = _themes.gaps_all_operators(gaps, "before")
    assert before["area_km2"].iloc[0] == pytest.approx(9.0)
    apart = gaps.copy()
    apart.loc[1, "geometry"] = box(x0 + 2000, y0, x0 + 2500, y0 + 500)
    assert len(_themes.gaps_all_operators(apart)) == 0
    reg = registry(
        maps.map_html(maps.build_map("overview", dict(layers, coverage_gaps=gaps), summary, kpis))
    )
    assert reg["Not covered by any operator after the plan"] == 1
    reg2 = registry(maps.map_html(maps.build_map("overview", layers, summary, kpis)))
    assert "Not covered by any operator after the plan" not in reg2


def test_geometry_collections_drawn_as_one_feature() -> None:
    from shapely.geometry import GeometryCollection, box

    layers, summary, _ = make_layers(n_existing=5, n_proposed=3)
    x0, y0 = layers["districts"].geometry.iloc[0].centroid.coords[0]
    gc = GeometryCollection(
        [box(x0, y0, x0 + 500, y0 + 500), LineString([(x0, y0), (x0 - 300, y0)]), Point(x0, y0)]
    )
    gaps = gpd.GeoDataFrame(
        {"operator": ["A"], "stage": ["after"]}, geometry=[gc], crs=layers["districts"].crs
    )
    out = maps._to_wgs84(gaps, "coverage_gaps")
    assert len(out) == 1 and out.geom_type.iloc[0] in ("Polygon", "MultiPolygon")
    reg = registry(
        maps.map_html(maps.build_map("coverage_gaps", dict(layers, coverage_gaps=gaps), summary))
    )
    assert reg["Gaps after - A"] == 1
