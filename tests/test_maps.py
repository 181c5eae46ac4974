"""Folium maps: files, offline assets, escaping, feature registry (no browser)."""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from _layers_fixture import EVIL, make_layers, write_signal_raster
from shapely.geometry import LineString, Point

from towerplan.errors import CRSError, ParameterError
from towerplan.inputs._base import DEMO_STAMP
from towerplan.outputs import _assets, maps

REGISTRY_RE = re.compile(
    r'^\s*("(?:[^"\\]|\\.)*"): \[(\w+), (\d+), ("(?:[^"\\]|\\.)*")\],$', re.MULTILINE
)


def registry(html_text: str) -> dict[str, int]:
    """Expected feature counts per layer key from ``window.towerplan``."""
    import json

    return {json.loads(k): int(n) for k, _, n, _label in REGISTRY_RE.findall(html_text)}


def labels(html_text: str) -> dict[str, str]:
    """Layer key -> displayed label from ``window.towerplan``."""
    import json

    return {json.loads(k): json.loads(lab) for k, _, _n, lab in REGISTRY_RE.findall(html_text)}


@pytest.fixture(scope="module")
def evil_maps(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], dict, dict]:
    layers, summary, kpis = make_layers(n_existing=40, n_proposed=15, evil=True)
    paths = maps.write_maps(layers, summary, kpis, tmp_path_factory.mktemp("maps"))
    return paths, layers, summary


def test_one_file_per_theme_and_kpi(evil_maps: tuple[list[Path], dict, dict]) -> None:
    paths, _, _ = evil_maps
    names = [p.stem for p in paths]
    themes = [t for t in maps.THEMES if t != "signal_level"]  # no raster given
    assert names[: len(themes)] == themes
    assert names[len(themes) :] == [f"kpi_{c}" for c in maps.DEFAULT_KPI_COLUMNS]
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


def test_every_site_drawn_clustering_only_above_threshold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    layers, summary, kpis = make_layers(n_existing=400, n_proposed=10)
    text = maps.map_html(maps.build_map("proposed_sites", layers, summary, kpis))
    assert maps.CLUSTER_THRESHOLD >= 20_000
    assert "markerClusterGroup" not in text
    assert registry(text)["existing_sites"] == 400  # 400 sites: every one drawn, no bubbles
    assert '"preferCanvas": true' in text
    monkeypatch.setattr(maps, "CLUSTER_THRESHOLD", 300)
    clustered = maps.map_html(maps.build_map("proposed_sites", layers, summary, kpis))
    assert "L.markerClusterGroup(" in clustered
    assert "clustered (more than 300 points)" in clustered  # its own legend entry
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


def test_escaping_of_user_text(evil_maps: tuple[list[Path], dict, dict], tmp_path: Path) -> None:
    paths, _, _ = evil_maps
    clean_layers, clean_summary, clean_kpis = make_layers(n_existing=40, n_proposed=15, evil=False)
    # the same themes without the evil text (write_maps: the layers are prepared once)
    clean_paths = maps.write_maps(clean_layers, clean_summary, clean_kpis, tmp_path)
    assert [c.name for c in clean_paths] == [p.name for p in paths]
    for p, c in zip(paths, clean_paths, strict=True):
        text = p.read_text(encoding="utf-8")
        assert EVIL not in text
        assert "<script>alert" not in text
        assert "alert(1)</script>" not in text
        assert "<img" not in text
        clean = c.read_text(encoding="utf-8")
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
    assert "VN-2000 / TM-3 zone 482 (EPSG:5897)" in demo  # source / date / CRS line
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
        "districts": 3,
        "district_labels": 3,
        "roads": 3,
        "existing_sites": 40,
        "proposed_sites:dedicated": n_ded,
        "proposed_sites:shared": len(pr) - n_ded,
    }
    lab = labels(next(p for p in paths if p.stem == "proposed_sites").read_text(encoding="utf-8"))
    assert lab["proposed_sites:dedicated"] == f"New dedicated sites ({n_ded})"
    assert lab["existing_sites"] == "Existing BTS sites (40)"
    gaps = layers["coverage_gaps"]
    for _, row in gaps.iterrows():
        assert by["coverage_gaps"][f"coverage_gaps:{row['stage']}:{row['operator']}"] == 1
    sharing = layers["sharing_candidates"]
    total_lines = sum(v for k, v in by["sharing_candidates"].items() if k.startswith("sharing_"))
    assert total_lines == len(sharing)
    assert by["sharing_candidates"]["host_structures"] == sharing["host_site_id"].nunique()
    wifi = layers["wifi_hotspots"]
    for cat, n in wifi["category"].value_counts().items():
        assert by["wifi_hotspots"][f"wifi_hotspots:{cat}"] == n
        assert by["wifi_hotspots"][f"wifi_coverage:{cat}"] == n
    assert by["undergrounding"]["underground:share_plan"] == 3
    assert by["undergrounding"]["underground:share_now"] == 3
    assert by["kpi_total"]["kpi_districts:total"] == 3


def test_site_symbols_differ_by_shape_and_colour() -> None:
    from towerplan.outputs import _themes

    layers, summary, kpis = make_layers(n_existing=20, n_proposed=10)
    text = maps.map_html(maps.build_map("sharing_candidates", layers, summary, kpis))
    keys = set()
    for m in re.finditer(r'"style": (\{[^}]*\})', text):
        st = json.loads(m.group(1))
        keys.add((st["shape"], st["fillColor"]))
    assert {k[0] for k in keys} == {"circle", "square", "diamond", "triangle"}
    assert len({k[1] for k in keys}) == 4  # existing / new dedicated / new shared / hosts
    road_colours = {c for c, _ in _themes.ROAD_STYLES.values()} | {_themes.ROAD_OTHER[0]}
    op_colours = set(_themes.operator_colors(layers).values())
    assert not (op_colours & road_colours)
    assert not ({k[1] for k in keys} & road_colours)


def test_popups_coordinates_and_numbers() -> None:
    from towerplan.outputs import export

    layers, summary, kpis = make_layers(n_existing=10, n_proposed=5)
    text = maps.map_html(maps.build_map("proposed_sites", layers, summary, kpis))
    ex = layers["existing_sites"]
    ll = ex.to_crs(4326).geometry.iloc[0]
    tm3 = export.reproject(ex.iloc[[0]], 5897).geometry.iloc[0]
    assert f'"{ll.x:.6f}"' in text and f'"{ll.y:.6f}"' in text  # lon/lat to 6 decimals
    assert f'"{tm3.y:.2f}"' in text and f'"{tm3.x:.2f}"' in text  # VN-2000 X (N) / Y (E)
    assert "VN-2000 X (northing, m)" in text and "VN-2000 Y (easting, m)" in text
    d = maps.map_html(maps.build_map("overview", layers, summary, kpis))
    assert '"250,000"' in d  # district population, not 2.5e+05
    assert "e+05" not in d
    vi = maps.map_html(maps.build_map("overview", layers, summary, kpis, lang="vi"))
    assert '"250.000"' in vi and "Tổng quan quy hoạch trạm BTS" in vi
    assert json.dumps("quận (đô thị)")[1:-1] in vi  # district_type shown with its label


def test_popup_values_formatted_once_per_distinct_value_and_type() -> None:
    # an object column mixing a flag, integers, floats, a list and missing values: each
    # distinct (type, value) is formatted once, and True, 1 and 1.0 keep their own texts
    values = [True, 1, 1.0, 1, True, [2, 3], None, float("nan"), 1234567, 0.25]
    got = maps._column_display("count", values)
    assert got == [maps._display("count", v) for v in values]
    assert got == ["yes", "1", "1", "1", "yes", "2, 3", "", "", "1,234,567", "0.250"]


def test_before_after_choropleths_share_breaks() -> None:
    layers, summary, kpis = make_layers(n_existing=10, n_proposed=5)
    kpis = kpis.assign(
        coverage_any_before=[0.70, 0.75, 0.78], coverage_any_after=[0.90, 0.92, 0.99]
    )
    before = maps.map_html(maps.build_map("kpi_coverage_any_before", layers, summary, kpis))
    after = maps.map_html(maps.build_map("kpi_coverage_any_after", layers, summary, kpis))

    def legend(t: str) -> list[str]:
        return re.findall(r"\d+ % \\u2013 \d+ %|\d+ % – \d+ %", t)

    assert len(legend(before)) >= 3 and legend(before) == legend(after)

    def classes(t: str) -> list[int]:
        for m in re.finditer(r"var d = (\{.*?\});\s*return L\.geoJson", t, re.DOTALL):
            d = json.loads(m.group(1))
            if any(f.startswith("Coverage") for f in d["fields"]):
                return sorted({f["properties"]["s"] for f in d["geojson"]["features"]})
        raise AssertionError("no choropleth layer")

    assert classes(before) == [2] and classes(after) == [4, 5]  # the rise is visible


def test_collapsible_panels_search_and_readout() -> None:
    from towerplan.scenario import ExportSettings

    layers, summary, kpis = make_layers(n_existing=10, n_proposed=5)
    text = maps.map_html(maps.build_map("overview", layers, summary, kpis))
    assert "tp-fold-small" in text and "TP.fold(document)" in text
    assert "TP.search(" in text and "Site ID, e.g. NEW-0001" in text
    assert "TP.readout(map" in text and '"cm": 105.0' in text and '"k0": 0.9999' in text
    # an operation that is not a 7-parameter Helmert: no readout rather than a wrong one
    assert maps._helmert_params(ExportSettings(vn2000_datum_transformation="+proj=noop")) is None
    assert maps._helmert_params(ExportSettings())["tx"] == pytest.approx(-191.90441429)


def test_signal_level_raster_layer(tmp_path: Path) -> None:
    layers, summary, kpis = make_layers(n_existing=10, n_proposed=5)
    tif = write_signal_raster(tmp_path, layers)
    paths = maps.write_maps(layers, summary, kpis, tmp_path / "m", best_server=tif)
    assert "signal_level" in [p.stem for p in paths]
    text = (tmp_path / "m" / "signal_level.html").read_text(encoding="utf-8")
    assert registry(text)["best_server"] == 1
    assert 'L.imageOverlay("data:image/png;base64,' in text
    assert "-75 dBm" in text and "-105 dBm" in text


def test_demand_not_drawn_and_coordinates_rounded() -> None:
    layers, summary, kpis = make_layers(n_existing=10, n_proposed=5)
    with_demand = maps.map_html(maps.build_map("overview", layers, summary, kpis))
    no_demand = {k: v for k, v in layers.items() if k != "demand"}
    without = maps.map_html(maps.build_map("overview", no_demand, summary, kpis))
    strip = re.compile(r"[0-9a-f]{32}")
    assert len(strip.sub("", with_demand)) == len(strip.sub("", without))
    body = with_demand.split("</head>", 1)[1]
    body = re.sub(r"TP\.(readout|vn2000)\(.*?\);", "", body)  # Helmert parameters
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
        assert reg["districts"] == 3
        assert not any(k.startswith("proposed") for k in reg)
    sharing = maps.map_html(maps.build_map("sharing_candidates", minimal, summary, kpis))  # type: ignore[arg-type]
    assert "This plan has no sharing_candidates layer." in sharing
    wifi = maps.map_html(maps.build_map("wifi_hotspots", minimal, summary))  # type: ignore[arg-type]
    assert "This plan has no wifi_hotspots layer." in wifi


def test_sharing_points_become_lines() -> None:
    from towerplan.outputs import _themes

    layers, _, _ = make_layers(n_existing=10, n_proposed=5)
    s = layers["sharing_candidates"].copy()
    s = s.set_geometry([Point(g.coords[-1]) for g in s.geometry])
    lines = _themes._sharing_lines(s, layers["proposed_sites"])
    assert (lines.geom_type == "LineString").all() and len(lines) == len(s)
    pos = dict(
        zip(layers["proposed_sites"]["site_id"], layers["proposed_sites"].geometry, strict=True)
    )
    for sid, g in zip(lines["site_id"], lines.geometry, strict=True):
        assert g.coords[0] == pos[sid].coords[0]


def test_road_thinning(monkeypatch: pytest.MonkeyPatch) -> None:
    layers, summary, _ = make_layers(n_existing=5, n_proposed=3)
    monkeypatch.setattr(maps, "MAX_ROAD_FEATURES", 2)
    reg = registry(maps.map_html(maps.build_map("overview", layers, summary)))
    assert reg["roads"] == 2  # national + provincial kept, local dropped


def test_class_breaks_shared_and_fixed_for_shares() -> None:
    from towerplan.outputs import _themes

    a, b = pd.Series([1.0, 2.0, 3.0]), pd.Series([4.0, 5.0, 6.0, np.nan])
    br = _themes.class_breaks([a, b], share=False)
    assert br[0] == 1.0 and br[-1] == 6.0
    cls = _themes.classify(b, br)
    assert cls[-1] == -1 and list(cls[:3]) == sorted(cls[:3])
    assert list(_themes.class_breaks([pd.Series([0.1, 0.9])], share=True)) == list(
        _themes.SHARE_BREAKS
    )
    assert list(_themes.class_breaks([pd.Series([0.7, 0.99])], share=True)) == list(
        _themes.COVERAGE_BREAKS
    )


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
    assert reg["existing_sites"] == 5
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
    assert reg["coverage_gaps_all"] == 1
    reg2 = registry(maps.map_html(maps.build_map("overview", layers, summary, kpis)))
    assert "coverage_gaps_all" not in reg2


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
    assert reg["coverage_gaps:after:A"] == 1
