"""Folium HTML maps of a plan that work offline.

One self-contained HTML file per theme (``overview``, ``coverage_gaps``,
``proposed_sites``, ``sharing_candidates``, ``wifi_hotspots``,
``undergrounding``) plus one choropleth per district KPI (``kpi_<name>``).

Offline by design
-----------------
Leaflet 1.9.4 and Leaflet.markercluster 1.5.3 (npm registry packages, licences
in ``towerplan/static``) are embedded inline in every file; folium's default
CDN links (jQuery, Bootstrap, Font Awesome, awesome-markers) are dropped
because nothing here needs them: sites are drawn as circle markers, popups and
legends are plain HTML.  A vector base (districts, roads) is always drawn;
online tiles are optional (``tiles=``) and the map renders without them.

Safety
------
Every text that comes from data (site names, operators, district names,
notes, column names) is HTML-escaped in Python before it reaches a popup,
tooltip, label, legend or caption, and the data are serialised with Jinja's
HTML-safe JSON (``<``, ``>``, ``&``, ``'`` as ``\\u00XX``), so a name such as
``<script>alert(1)</script>`` is shown as text and never executed.

Every map exposes ``window.towerplan = {map, theme, layers}`` where
``layers[label] = [leafletLayer, expectedFeatureCount]`` so that a test (or a
person in the browser console) can check what was drawn.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import Element, Figure, MacroElement
from folium.map import Layer
from folium.template import Template

from towerplan.outputs import _assets, _themes
from towerplan.errors import ColumnError, CRSError, ParameterError
from towerplan.inputs._base import DEMO_KIND, DEMO_STAMP

logger = logging.getLogger(__name__)

__all__ = [
    "CLUSTER_THRESHOLD",
    "DEFAULT_KPI_COLUMNS",
    "THEMES",
    "build_map",
    "map_html",
    "write_maps",
]

THEMES = (
    "overview",
    "coverage_gaps",
    "proposed_sites",
    "sharing_candidates",
    "wifi_hotspots",
    "undergrounding",
)
"""Theme maps written by :func:`write_maps` (plus ``kpi_<name>`` choropleths)."""

DEFAULT_KPI_COLUMNS = (
    "total",
    "mean_serving_radius_km",
    "coverage_any_before",
    "coverage_any_after",
    "coverage_weighted_after",
)
"""KPI columns mapped by default when present in the KPI table."""

CLUSTER_THRESHOLD = 300
"""Point layers with more features than this are drawn with marker clustering."""

MAX_ROAD_FEATURES = 2000
"""Roads above this count are thinned to major classes (map size)."""

MAJOR_ROAD_CLASSES = ("motorway", "trunk", "national", "primary", "provincial", "secondary")

_THEME_TITLES = {
    "overview": "Overview",
    "coverage_gaps": "Coverage gaps before / after the plan",
    "proposed_sites": "Proposed new sites",
    "sharing_candidates": "Co-location options (proposed site → host structure)",
    "wifi_hotspots": "Public Wi-Fi hotspots",
    "undergrounding": "Cable undergrounding by district",
}
_SEQUENTIAL = ("#ffffcc", "#a1dab4", "#41b6c4", "#2c7fb8", "#253494")
_NO_DATA = "#cccccc"
_ROAD_STYLE = {
    "national": ("#b2182b", 3.0),
    "trunk": ("#b2182b", 3.0),
    "motorway": ("#b2182b", 3.5),
    "primary": ("#ef8a62", 2.5),
    "provincial": ("#ef8a62", 2.5),
    "secondary": ("#ef8a62", 2.0),
}
_SIMPLIFY_M = {"districts": 15.0, "underground_plan": 15.0, "coverage_gaps": 75.0, "roads": 5.0}
_MAX_POPUP_FIELDS = 14
_ZOOM: dict[str, Any] = {"minZoom": 5, "maxZoom": 19}
_CSS = """
<style>
.leaflet-container { background: #f3f3ef; }
.tp-label { font: 600 11px/1.1 sans-serif; color: #222; white-space: nowrap;
  text-shadow: 0 0 3px #fff, 0 0 3px #fff, 0 0 3px #fff; pointer-events: none; }
.tp-panel { background: rgba(255,255,255,0.92); padding: 6px 9px; border-radius: 4px;
  font: 12px/1.35 sans-serif; box-shadow: 0 1px 4px rgba(0,0,0,0.35); max-width: 340px; }
.tp-panel h4 { margin: 0 0 3px 0; font-size: 14px; }
.tp-demo { color: #fff; background: #c0392b; font-weight: 700; padding: 2px 6px;
  border-radius: 3px; display: inline-block; margin: 2px 0; letter-spacing: 0.5px; }
.tp-notes { margin: 3px 0 0 14px; padding: 0; color: #444; }
.tp-key { display: inline-block; width: 14px; height: 10px; margin-right: 6px;
  vertical-align: middle; border: 1px solid #555; }
.tp-key.pt { border-radius: 50%; height: 12px; width: 12px; }
.tp-key.ln { height: 0; border-width: 2px 0 0 0; border-style: solid; }
table.tp-popup th { text-align: left; padding-right: 8px; vertical-align: top; }
table.tp-popup td { vertical-align: top; }
</style>
<script>
function tpBind(layer, d, v) {
  if (d.tip.length) {
    var t = d.tip.map(function (i) { return v[i]; }).filter(function (x) { return x; });
    if (t.length) { layer.bindTooltip(t.join(" \\u00b7 ")); }
  }
  var h = '<table class="tp-popup">';
  for (var i = 0; i < d.fields.length; i++) {
    if (v[i] !== "" && v[i] !== null) {
      h += "<tr><th>" + d.fields[i] + "</th><td>" + v[i] + "</td></tr>";
    }
  }
  layer.bindPopup(h + "</table>", {maxWidth: 360});
}
</script>
"""


def _title(theme: str) -> str:
    if theme.startswith("kpi_"):
        return f"District KPI: {theme[4:]}"
    return _THEME_TITLES.get(theme, theme)


# --------------------------------------------------------------------------- folium elements


class _PointLayer(Layer):
    """Circle markers from compact rows, optionally clustered (one Leaflet layer)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = (function () {
            var d = {{ this.data|tojson }};
            var group = {% if this.cluster -%}
                L.markerClusterGroup({showCoverageOnHover: false, maxClusterRadius: 45,
                                      chunkedLoading: true})
            {%- else -%} L.featureGroup() {%- endif %};
            var ms = [];
            for (var i = 0; i < d.rows.length; i++) {
                var r = d.rows[i];
                var m = L.circleMarker([r[0], r[1]], d.styles[r[2]]);
                tpBind(m, d, r.slice(3));
                ms.push(m);
            }
            {% if this.cluster %}group.addLayers(ms);{% else %}
            ms.forEach(function (m) { group.addLayer(m); });{% endif %}
            return group;
        })();
        {% endmacro %}
        """
    )

    def __init__(self, data: dict[str, Any], name: str, cluster: bool, show: bool = True):
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "TowerplanPoints"
        self.data = data
        self.cluster = cluster


class _VectorLayer(Layer):
    """Polygons/lines from a GeoJSON dict with per-feature style index and values."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = (function () {
            var d = {{ this.data|tojson }};
            return L.geoJson(d.geojson, {
                style: function (f) { return d.styles[f.properties.s]; },
                pointToLayer: function (f, ll) { return L.circleMarker(ll, d.styles[f.properties.s]); },
                onEachFeature: function (f, l) { tpBind(l, d, f.properties.v); }
            });
        })();
        {% endmacro %}
        """
    )

    def __init__(self, data: dict[str, Any], name: str, show: bool = True):
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "TowerplanVector"
        self.data = data


class _LabelLayer(Layer):
    """Non-interactive text labels (already escaped)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = (function () {
            var rows = {{ this.rows|tojson }};
            var group = L.featureGroup();
            rows.forEach(function (r) {
                L.marker([r[0], r[1]], {interactive: false, keyboard: false,
                    icon: L.divIcon({className: "tp-label", html: r[2], iconSize: null})
                }).addTo(group);
            });
            return group;
        })();
        {% endmacro %}
        """
    )

    def __init__(self, rows: list[list[Any]], name: str, show: bool = True):
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "TowerplanLabels"
        self.rows = rows


class _Panel(MacroElement):
    """A Leaflet control holding prepared (escaped) HTML."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
            var c = L.control({position: {{ this.position|tojson }}});
            c.onAdd = function () {
                var div = L.DomUtil.create("div", "tp-panel {{ this.css_class }}");
                div.innerHTML = {{ this.html|tojson }};
                L.DomEvent.disableClickPropagation(div);
                return div;
            };
            c.addTo({{ this._parent.get_name() }});
        })();
        {% endmacro %}
        """
    )

    def __init__(self, html_text: str, position: str, css_class: str):
        super().__init__()
        self._name = "TowerplanPanel"
        self.html = html_text
        self.position = position
        self.css_class = css_class


class _Scale(MacroElement):
    """Metric scale bar."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        L.control.scale({imperial: false, maxWidth: 160}).addTo({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self) -> None:
        super().__init__()
        self._name = "TowerplanScale"


class _Registry(MacroElement):
    """Exposes ``window.towerplan`` with each layer and its expected feature count."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        window.towerplan = {map: {{ this._parent.get_name() }}, theme: {{ this.theme|tojson }},
            layers: {
            {%- for label, var, n in this.entries %}
                {{ label|tojson }}: [{{ var }}, {{ n }}],
            {%- endfor %}
            }};
        {% endmacro %}
        """
    )

    def __init__(self, theme: str, entries: list[tuple[str, str, int]]):
        super().__init__()
        self._name = "TowerplanRegistry"
        self.theme = theme
        self.entries = entries


# --------------------------------------------------------------------------- data preparation


def _esc(value: Any) -> str:
    """Display text for a value, HTML-escaped."""
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        if not math.isfinite(float(value)):
            return ""
        v = float(value)
        if v.is_integer() and abs(v) < 1e15:
            return f"{int(v):,}"
        return f"{v:,.4g}" if abs(v) >= 1e4 else f"{v:.4g}"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value)}"
    if isinstance(value, list | tuple | dict | set):
        value = ", ".join(map(str, value)) if not isinstance(value, dict) else str(value)
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return html.escape(str(value), quote=True)


def _to_wgs84(gdf: gpd.GeoDataFrame, name: str) -> gpd.GeoDataFrame:
    """Clean, simplify (metres) and reproject a layer to EPSG:4326, coordinates to 6 decimals."""
    if gdf.crs is None:
        raise CRSError(
            f"{name}: the layer has no CRS; set it (towerplan layers are in the working CRS, "
            "e.g. EPSG:32648) before drawing maps"
        )
    out = gdf[~(gdf.geometry.isna() | gdf.geometry.is_empty)].copy()
    if len(out) == 0:
        return out.to_crs("EPSG:4326")
    if (out.geom_type == "GeometryCollection").any():
        flat = [_themes.flatten_collection(g) for g in out.geometry]
        out = out.set_geometry(gpd.GeoSeries(flat, index=out.index, crs=out.crs))
        out = out[~out.geometry.is_empty]
    tol = _SIMPLIFY_M.get(name)
    if tol:
        metric = out if out.crs.is_projected else out.to_crs(out.estimate_utm_crs())
        simplified = metric.geometry.simplify(tol, preserve_topology=True)
        out = out.set_geometry(gpd.GeoSeries(simplified, crs=metric.crs).to_crs(out.crs))
    out = out.to_crs("EPSG:4326")
    geoms = shapely.transform(out.geometry.to_numpy(), lambda c: np.round(c, 6))
    out = out.set_geometry(gpd.GeoSeries(geoms, index=out.index, crs="EPSG:4326"))
    return out[~(out.geometry.isna() | out.geometry.is_empty)]


def _fields(gdf: gpd.GeoDataFrame, preferred: Sequence[str]) -> list[str]:
    cols = [c for c in gdf.columns if c != gdf.geometry.name and not str(c).startswith("_")]
    first = [c for c in preferred if c in cols]
    rest = [c for c in cols if c not in first]
    return (first + rest)[:_MAX_POPUP_FIELDS]


def _values(gdf: gpd.GeoDataFrame, fields: Sequence[str]) -> list[list[str]]:
    cols = [[_esc(v) for v in gdf[f].tolist()] for f in fields]
    return [list(r) for r in zip(*cols, strict=True)] if cols else [[] for _ in range(len(gdf))]


def _style(
    color: str,
    fill: str | None = None,
    radius: float | None = None,
    weight: float = 1.0,
    fill_opacity: float = 0.8,
    opacity: float = 1.0,
    dash: str | None = None,
) -> dict[str, Any]:
    s: dict[str, Any] = {
        "color": color,
        "weight": weight,
        "opacity": opacity,
        "fillColor": fill or color,
        "fillOpacity": fill_opacity,
    }
    if radius is not None:
        s["radius"] = radius
    if dash:
        s["dashArray"] = dash
    if fill is None and fill_opacity == 0:
        s["fill"] = False
    return s


@dataclass
class _MapBuilder:
    """Collects layers, legend entries and the registry of one map."""

    theme: str
    summary: Mapping[str, Any]
    offline: bool
    tiles: str | None
    bounds: list[list[float]] | None = None
    cluster_used: bool = False
    entries: list[tuple[str, str, int]] = field(default_factory=list)
    legend: list[tuple[str, str, str]] = field(default_factory=list)
    extra_notes: list[str] = field(default_factory=list)
    layers: list[Layer] = field(default_factory=list)

    def add(self, layer: Layer, label: str, n: int, key: tuple[str, str] | None = None) -> None:
        # Leaflet's layer control inserts names with innerHTML: escape data-derived labels
        layer.layer_name = _esc(label)
        self.layers.append(layer)
        self.entries.append((layer.layer_name, layer.get_name(), n))
        if key is not None:
            self.legend.append((key[0], key[1], label))

    def points(
        self,
        gdf: gpd.GeoDataFrame,
        label: str,
        style: dict[str, Any],
        preferred: Sequence[str] = (),
        tip: Sequence[str] = (),
        show: bool = True,
        cluster: bool | None = None,
        key: bool = True,
    ) -> None:
        if len(gdf) == 0:
            return
        pts = gdf.geometry.representative_point()
        fields = _fields(gdf, preferred)
        vals = _values(gdf, fields)
        rows = [
            [round(float(p.y), 6), round(float(p.x), 6), 0, *v]
            for p, v in zip(pts, vals, strict=True)
        ]
        data = {
            "fields": [_esc(f) for f in fields],
            "tip": [fields.index(t) for t in tip if t in fields],
            "styles": [style],
            "rows": rows,
        }
        do_cluster = len(rows) > CLUSTER_THRESHOLD if cluster is None else cluster
        self.cluster_used |= do_cluster
        layer = _PointLayer(data, name=label, cluster=do_cluster, show=show)
        self.add(layer, label, len(rows), ("pt", style["fillColor"]) if key else None)

    def vectors(
        self,
        gdf: gpd.GeoDataFrame,
        label: str,
        styles: list[dict[str, Any]],
        style_index: Sequence[int] | None = None,
        preferred: Sequence[str] = (),
        tip: Sequence[str] = (),
        show: bool = True,
        key: str | None = None,
    ) -> None:
        if len(gdf) == 0:
            return
        fields = _fields(gdf, preferred)
        vals = _values(gdf, fields)
        idx = list(style_index) if style_index is not None else [0] * len(gdf)
        feats = [
            {
                "type": "Feature",
                "geometry": shapely.geometry.mapping(g),
                "properties": {"s": int(s), "v": v},
            }
            for g, s, v in zip(gdf.geometry, idx, vals, strict=True)
        ]
        data = {
            "fields": [_esc(f) for f in fields],
            "tip": [fields.index(t) for t in tip if t in fields],
            "styles": styles,
            "geojson": {"type": "FeatureCollection", "features": feats},
        }
        layer = _VectorLayer(data, name=label, show=show)
        legend_key = None
        if key is not None:
            st0 = styles[0]
            if key == "fill" and st0.get("fill") is False:
                key = "outline"
            legend_key = (key, st0["fillColor"] if key == "fill" else st0["color"])
        self.add(layer, label, len(feats), legend_key)

    def build(self) -> folium.Map:
        bounds = self.bounds or [[-1.0, -1.0], [1.0, 1.0]]
        center = [
            round((bounds[0][0] + bounds[1][0]) / 2, 6),
            round((bounds[0][1] + bounds[1][1]) / 2, 6),
        ]
        m = folium.Map(
            location=center,
            zoom_start=11,
            tiles=None,
            control_scale=False,
            **_ZOOM,
        )
        _Scale().add_to(m)
        m.default_js = []
        m.default_css = []
        root = m.get_root()
        assert isinstance(root, Figure)
        assets = (
            _assets.inline_assets(self.cluster_used)
            if self.offline
            else _assets.linked_assets(self.cluster_used)
        )
        root.header.add_child(Element(assets), name="towerplan_assets")
        root.header.add_child(Element(_CSS), name="towerplan_css")
        root.title = _esc(f"towerplan - {_title(self.theme)}")
        if self.tiles:
            folium.TileLayer(
                self.tiles, name="Online tiles", attr="tiles: " + html.escape(str(self.tiles))
            ).add_to(m)
        for layer in self.layers:
            layer.add_to(m)
        m.fit_bounds(bounds)
        _Panel(self._caption_html(), "topleft", "tp-caption").add_to(m)
        if self.legend:
            _Panel(self._legend_html(), "bottomright", "tp-legend").add_to(m)
        folium.LayerControl(collapsed=len(self.entries) > 12).add_to(m)
        _Registry(self.theme, self.entries).add_to(m)
        return m

    def _caption_html(self) -> str:
        s = self.summary
        title = _title(self.theme)
        scen = s.get("scenario_title") or s.get("scenario") or ""
        parts = [f"<h4>{_esc(title)}</h4>"]
        if scen:
            parts.append(f"<div>{_esc(scen)}</div>")
        kind = str(s.get("data_kind", ""))
        if kind == DEMO_KIND:
            parts.append(f'<div class="tp-demo">{DEMO_STAMP}</div><div>data: {_esc(kind)}</div>')
        elif kind:
            parts.append(f"<div>data: {_esc(kind)}</div>")
        notes = [*list(s.get("notes") or []), *self.extra_notes]
        if notes:
            items = "".join(f"<li>{_esc(n)}</li>" for n in notes[:8])
            parts.append(f'<ul class="tp-notes">{items}</ul>')
        return "".join(parts)

    def _legend_html(self) -> str:
        rows = []
        for kind, color, label in self.legend:
            if kind == "ln":
                sw = f'<span class="tp-key ln" style="border-color:{_esc(color)}"></span>'
            elif kind == "outline":
                sw = f'<span class="tp-key" style="border-color:{_esc(color)}"></span>'
            else:
                cls = "tp-key pt" if kind == "pt" else "tp-key"
                sw = f'<span class="{cls}" style="background:{_esc(color)}"></span>'
            rows.append(f"<div>{sw}{_esc(label)}</div>")
        return "<b>Legend</b>" + "".join(rows)


# --------------------------------------------------------------------------- themes


def _prepare(layers: Mapping[str, gpd.GeoDataFrame | None]) -> dict[str, gpd.GeoDataFrame]:
    out: dict[str, gpd.GeoDataFrame] = {}
    for name, gdf in layers.items():
        if name == "demand" or gdf is None or not isinstance(gdf, gpd.GeoDataFrame):
            continue
        if len(gdf) == 0:
            continue
        if name == "roads" and len(gdf) > MAX_ROAD_FEATURES:
            gdf = _thin_roads(gdf)
        out[name] = _to_wgs84(gdf, name)
        if name == "coverage_gaps":
            allg = _themes.gaps_all_operators(gdf, "after")
            if len(allg):
                out["coverage_gaps_all"] = _to_wgs84(allg, "coverage_gaps")
    return out


def _thin_roads(roads: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    n0 = len(roads)
    if "road_class" in roads.columns:
        major = roads[roads["road_class"].astype(str).str.lower().isin(MAJOR_ROAD_CLASSES)]
        if len(major):
            roads = major
    if len(roads) > MAX_ROAD_FEATURES:
        order = np.argsort(-roads.geometry.length.to_numpy(), kind="stable")[:MAX_ROAD_FEATURES]
        roads = roads.iloc[np.sort(order)]
    logger.info("roads: drawing %d of %d segments (major classes / longest)", len(roads), n0)
    return roads


def _bounds(p: Mapping[str, gpd.GeoDataFrame]) -> list[list[float]] | None:
    for name in ("districts", "existing_sites", "proposed_sites", "coverage_gaps", "roads"):
        if name in p and len(p[name]):
            x0, y0, x1, y1 = p[name].total_bounds
            return [[float(y0), float(x0)], [float(y1), float(x1)]]
    allb = [g.total_bounds for g in p.values() if len(g)]
    if not allb:
        return None
    b = np.array(allb)
    return [
        [float(b[:, 1].min()), float(b[:, 0].min())],
        [float(b[:, 3].max()), float(b[:, 2].max())],
    ]


def _base(b: _MapBuilder, p: Mapping[str, gpd.GeoDataFrame], fill: bool = True) -> None:
    """Vector base: districts (with labels) and roads; always present."""
    if "districts" in p:
        d = p["districts"]
        style = _style(
            "#555555", "#ffffff" if fill else None, weight=1.5, fill_opacity=0.35 if fill else 0
        )
        b.vectors(
            d,
            "Districts",
            [style],
            preferred=("district", "code", "district_type", "population", "area_km2"),
            tip=("district",),
            key="fill",
        )
        if "district" in d.columns:
            pts = d.geometry.representative_point()
            rows = [
                [round(float(q.y), 6), round(float(q.x), 6), _esc(n)]
                for q, n in zip(pts, d["district"], strict=True)
            ]
            b.add(_LabelLayer(rows, "District labels"), "District labels", len(rows))
    if "roads" in p:
        r = p["roads"]
        styles = [_style("#9e9e9e", None, weight=1.2, fill_opacity=0)]
        idx = [0] * len(r)
        if "road_class" in r.columns:
            classes = r["road_class"].astype(str).str.lower().tolist()
            for i, c in enumerate(classes):
                if c in _ROAD_STYLE:
                    color, w = _ROAD_STYLE[c]
                    st = _style(color, None, weight=w, fill_opacity=0)
                    if st not in styles:
                        styles.append(st)
                    idx[i] = styles.index(st)
        b.vectors(
            r, "Roads", styles, idx, preferred=("name", "road_class"), tip=("name",), key="ln"
        )


def _sites(
    b: _MapBuilder,
    p: Mapping[str, gpd.GeoDataFrame],
    colors: Mapping[str, str],
    existing_show: bool = True,
    by_operator: bool = False,
) -> None:
    if "existing_sites" in p:
        ex = p["existing_sites"]
        pref = (
            "site_id",
            "operator",
            "operators",
            "n_tenants",
            "max_tenants",
            "height_m",
            "district",
        )
        if by_operator and "operator" in ex.columns:
            for op, sub in ex.groupby(ex["operator"].astype(str), sort=True):
                col = colors.get(str(op), "#777777")
                b.points(
                    sub,
                    f"Existing sites - {op}",
                    _style("#333333", col, radius=4, weight=0.6),
                    pref,
                    tip=("site_id", "operators"),
                    show=existing_show,
                    key=False,
                )
        else:
            b.points(
                ex,
                "Existing sites",
                _style("#333333", "#8c8c8c", radius=4, weight=0.6),
                pref,
                tip=("site_id", "operators"),
                show=existing_show,
            )


def _proposed(b: _MapBuilder, p: Mapping[str, gpd.GeoDataFrame], show: bool = True) -> None:
    if "proposed_sites" not in p:
        return
    pr = p["proposed_sites"]
    pref = ("site_id", "site_type", "operators", "district", "population_gain", "lon", "lat")
    if "site_type" not in pr.columns:
        b.points(
            pr, "Proposed sites", _style("#000000", "#1f78b4", radius=6), pref, ("site_id",), show
        )
        return
    styles = {
        "dedicated": _style("#08306b", "#1f78b4", radius=6, weight=1.5),
        "shared": _style("#3f007d", "#e7298a", radius=8, weight=2.5),
    }
    for stype, sub in pr.groupby(pr["site_type"].astype(str), sort=True):
        st = styles.get(str(stype), _style("#000000", "#ffff33", radius=6))
        b.points(
            sub,
            f"Proposed sites - {stype}",
            st,
            pref,
            tip=("site_id", "site_type", "operators"),
            show=show,
        )


def _theme_overview(b: _MapBuilder, p: Mapping[str, gpd.GeoDataFrame]) -> None:
    colors = _themes.operator_colors(p)
    _base(b, p)
    if "coverage_gaps_all" in p:
        b.vectors(
            p["coverage_gaps_all"],
            "Not covered by any operator after the plan",
            [_style("#b30000", "#fc8d59", weight=0.8, fill_opacity=0.5)],
            preferred=("stage", "area_km2", "operators"),
            tip=("area_km2",),
            key="fill",
        )
    _sites(b, p, colors)
    _proposed(b, p)
    if "backhaul_routes" in p:
        bh = p["backhaul_routes"]
        straight = (
            (bh["method"].astype(str) == "straight_line").to_numpy()
            if "method" in bh.columns
            else np.zeros(len(bh), bool)
        )
        b.vectors(
            bh,
            "Fibre backhaul routes",
            [
                _style("#00441b", None, weight=2, fill_opacity=0),
                _style("#00441b", None, weight=2, fill_opacity=0, dash="6 4"),
            ],
            straight.astype(int).tolist(),
            preferred=("site_id", "target_site_id", "method", "length_m", "district"),
            tip=("site_id", "method"),
            show=False,
            key="ln",
        )
        if straight.any():
            b.extra_notes.append(
                f"{int(straight.sum())} backhaul route(s) are straight-line fallbacks (dashed)."
            )
    if "wifi_hotspots" in p:
        b.points(
            p["wifi_hotspots"],
            "Wi-Fi hotspots",
            _style("#005a32", "#41ab5d", radius=4),
            ("hotspot_id", "name", "category", "district"),
            tip=("name", "category"),
            show=False,
        )


def _theme_coverage_gaps(b: _MapBuilder, p: Mapping[str, gpd.GeoDataFrame]) -> None:
    colors = _themes.operator_colors(p)
    _base(b, p)
    if "coverage_gaps" not in p:
        b.extra_notes.append("No coverage-gap layer in this plan.")
        return
    g = p["coverage_gaps"]
    op_col = (
        g["operator"].astype(str) if "operator" in g.columns else pd.Series("all", index=g.index)
    )
    st_col = g["stage"].astype(str) if "stage" in g.columns else pd.Series("gaps", index=g.index)
    keys = sorted(set(zip(st_col, op_col, strict=True)), key=lambda k: (k[0] != "before", k))
    ops = sorted(set(op_col))
    shown = _themes.lead_operator(b.summary, ops)
    for stage, op in keys:
        sub = g[(st_col == stage) & (op_col == op)]
        col = colors.get(op, "#b30000")
        if stage == "before":
            st = _style(col, col, weight=1.2, fill_opacity=0.18, dash="4 3")
        else:
            st = _style(col, col, weight=1.8, fill_opacity=0.55)
        b.vectors(
            sub,
            f"Gaps {stage} - {op}",
            [st],
            preferred=("operator", "stage", "population", "area_km2"),
            tip=("operator", "stage"),
            show=op == shown,
        )
    for op in ops:
        b.legend.append(("fill", colors.get(op, "#b30000"), op))
    b.legend.append(("outline", "#555555", "dashed, light: gap before the plan"))
    b.legend.append(("fill", "#777777", "solid: gap remaining after the plan"))
    if len(ops) > 1:
        b.extra_notes.append(f"Showing {shown}; tick other operators in the layer panel.")
    _sites(b, p, colors, existing_show=False, by_operator=True)
    _proposed(b, p, show=False)


def _theme_proposed_sites(b: _MapBuilder, p: Mapping[str, gpd.GeoDataFrame]) -> None:
    colors = _themes.operator_colors(p)
    _base(b, p)
    _sites(b, p, colors)
    if "proposed_sites" not in p:
        b.extra_notes.append("No proposed sites in this plan.")
    _proposed(b, p)


def _theme_sharing(b: _MapBuilder, p: Mapping[str, gpd.GeoDataFrame]) -> None:
    colors = _themes.operator_colors(p)
    _base(b, p)
    _sites(b, p, colors, existing_show=True)
    if "sharing_candidates" not in p:
        b.extra_notes.append("No co-location options in this plan.")
        _proposed(b, p)
        return
    s = _sharing_lines(p["sharing_candidates"], p.get("proposed_sites"))
    host_col = "host_operator" if "host_operator" in s.columns else None
    pref = (
        "site_id",
        "site_type",
        "operator",
        "host_site_id",
        "host_operator",
        "distance_m",
        "tenants_now",
        "tenants_max",
        "estimated_saving_vnd",
        "rank",
    )
    if host_col is None:
        b.vectors(
            s,
            "Co-location options",
            [_style("#6a3d9a", None, weight=2.5, fill_opacity=0)],
            None,
            pref,
            ("site_id",),
            key="ln",
        )
    else:
        for op, sub in s.groupby(s[host_col].astype(str), sort=True):
            st = _style(colors.get(str(op), "#6a3d9a"), None, weight=2.5, fill_opacity=0)
            b.vectors(
                sub,
                f"Co-location on {op} structures",
                [st],
                None,
                pref,
                tip=("site_id", "host_site_id", "host_operator"),
                key="ln",
            )
    _proposed(b, p)


def _sharing_lines(s: gpd.GeoDataFrame, proposed: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame:
    """Lines proposed site -> host; points at the host are joined to the proposed site."""
    types = set(s.geom_type)
    if types <= {"LineString", "MultiLineString"} or proposed is None or "site_id" not in s.columns:
        return s
    pos = dict(zip(proposed["site_id"].astype(str), proposed.geometry, strict=True))
    lines = []
    for sid, g in zip(s["site_id"].astype(str), s.geometry, strict=True):
        a = pos.get(sid)
        if a is None or g.geom_type != "Point":
            lines.append(g)
        else:
            lines.append(shapely.LineString([a.coords[0], g.coords[0]]))
    return s.set_geometry(gpd.GeoSeries(lines, index=s.index, crs=s.crs))


def _theme_wifi(b: _MapBuilder, p: Mapping[str, gpd.GeoDataFrame], radius_m: float) -> None:
    _base(b, p)
    if "pois" in p:
        b.points(
            p["pois"],
            "Points of interest",
            _style("#555555", "#bdbdbd", radius=3, weight=0.5),
            ("name", "category", "source"),
            tip=("name", "category"),
            show=False,
        )
    if "wifi_hotspots" not in p:
        b.extra_notes.append("No Wi-Fi hotspot layer in this plan.")
        return
    w = p["wifi_hotspots"]
    cat = (
        w["category"].astype(str)
        if "category" in w.columns
        else pd.Series("hotspot", index=w.index)
    )
    colors = _themes.palette(cat, _themes.CATEGORY_PALETTE)
    circles = _coverage_circles(w, radius_m)
    for c, idx in cat.groupby(cat, sort=True).groups.items():
        col = colors[str(c)]
        b.vectors(
            circles.loc[idx],
            f"Coverage {c}",
            [_style(col, col, weight=0.8, fill_opacity=0.18)],
            preferred=("name", "category", "radius_m"),
            tip=("name",),
            key=None,
        )
        b.points(
            w.loc[idx],
            f"Hotspots - {c}",
            _style("#222222", col, radius=5, weight=0.8),
            ("hotspot_id", "name", "category", "district", "covers_n", "covers_pois"),
            tip=("name", "category"),
        )


def _coverage_circles(w: gpd.GeoDataFrame, radius_m: float) -> gpd.GeoDataFrame:
    utm = w.estimate_utm_crs()
    metric = w.to_crs(utm)
    r = (
        pd.to_numeric(metric["radius_m"], errors="coerce").fillna(radius_m).to_numpy()
        if "radius_m" in metric.columns
        else np.full(len(metric), radius_m)
    )
    circ = metric.geometry.representative_point().buffer(r, quad_segs=8)
    out = metric.set_geometry(circ).to_crs("EPSG:4326")
    geoms = shapely.transform(out.geometry.to_numpy(), lambda c: np.round(c, 6))
    return out.set_geometry(gpd.GeoSeries(geoms, index=out.index, crs="EPSG:4326"))


def _classify(
    values: pd.Series, k: int = 5, breaks_in: Sequence[float] | None = None, percent: bool = False
) -> tuple[list[int], list[tuple[str, str]]]:
    """Quantile (or fixed) classes -> (style index per row, legend); index k = no data."""
    v = pd.to_numeric(values, errors="coerce").to_numpy(float)
    ok = np.isfinite(v)
    if not ok.any():
        return [k] * len(v), [(_NO_DATA, "no data")]
    if breaks_in is not None:
        breaks = np.asarray(breaks_in, dtype=float)
    else:
        breaks = np.unique(np.quantile(v[ok], np.linspace(0, 1, k + 1)))
    if len(breaks) == 1:
        breaks = np.array([breaks[0], breaks[0]])
    n = len(breaks) - 1
    cls = np.clip(np.searchsorted(breaks, v, side="right") - 1, 0, n - 1)
    colors = [_SEQUENTIAL[round(i * (len(_SEQUENTIAL) - 1) / max(n - 1, 1))] for i in range(n)]
    idx = [int(c) if o else k for c, o in zip(cls, ok, strict=True)]
    if percent:
        legend = [
            (colors[i], f"{100 * breaks[i]:.0f} - {100 * breaks[i + 1]:.0f} %") for i in range(n)
        ]
    else:
        legend = [(colors[i], f"{breaks[i]:.4g} - {breaks[i + 1]:.4g}") for i in range(n)]
    if not ok.all():
        legend.append((_NO_DATA, "no data"))
    return idx, legend


def _choropleth(
    b: _MapBuilder,
    gdf: gpd.GeoDataFrame,
    column: str,
    label: str,
    preferred: Sequence[str],
    outline: Sequence[bool] | None = None,
    show: bool = True,
    shares: bool = False,
    legend_title: str | None = None,
) -> None:
    if shares:
        idx, legend = _classify(gdf[column], breaks_in=_themes.SHARE_BREAKS, percent=True)
    else:
        idx, legend = _classify(gdf[column])
    k = 5
    colors = {i: c for i, (c, lab) in enumerate(legend) if lab != "no data"}
    styles: list[dict[str, Any]] = []
    style_index = []
    for j, i in enumerate(idx):
        fill = colors.get(i, _NO_DATA) if i != k else _NO_DATA
        bad = bool(outline[j]) if outline is not None else False
        st = _style(
            "#b2182b" if bad else "#333333", fill, weight=3.0 if bad else 1.0, fill_opacity=0.75
        )
        if st not in styles:
            styles.append(st)
        style_index.append(styles.index(st))
    b.vectors(gdf, label, styles, style_index, preferred, tip=("district", column), show=show)
    if legend_title != "":
        for c, lab in legend:
            b.legend.append(("fill", c, f"{legend_title or column}: {lab}"))


def _theme_undergrounding(b: _MapBuilder, p: Mapping[str, gpd.GeoDataFrame]) -> None:
    _undergrounding_layer(b, p)
    _base(b, p, fill=False)


def _undergrounding_layer(b: _MapBuilder, p: Mapping[str, gpd.GeoDataFrame]) -> None:
    if "underground_plan" not in p:
        b.extra_notes.append("No undergrounding plan layer in this plan.")
        return
    u = _themes.underground_polygons(p["underground_plan"], p.get("districts"))
    cols = _themes.underground_columns(u, b.summary) if u is not None else None
    if u is None or cols is None:
        b.extra_notes.append("underground_plan has no district polygons / share column to map.")
        return
    extra = [c for c in u.columns if c.startswith(("bury_km_per_year", "cable_km", "road_km"))]
    pref = (
        "district",
        "district_type",
        *([cols.current] if cols.current else []),
        cols.plan,
        *extra,
    )
    below = None
    if cols.current is not None:
        below = (
            pd.to_numeric(u[cols.current], errors="coerce")
            < pd.to_numeric(u[cols.plan], errors="coerce")
        ).tolist()
        _choropleth(
            b,
            u,
            cols.current,
            cols.label_current,
            pref,
            None,
            show=False,
            shares=cols.is_share,
            legend_title="",
        )
    _choropleth(
        b,
        u,
        cols.plan,
        cols.label_plan,
        pref,
        below,
        shares=cols.is_share,
        legend_title="underground share" if cols.is_share else cols.plan,
    )
    if below is not None:
        b.legend.append(("outline", "#b2182b", f"red outline: {cols.label_current} below plan"))


def _theme_kpi(
    b: _MapBuilder, p: Mapping[str, gpd.GeoDataFrame], kpis: pd.DataFrame, col: str
) -> None:
    d = p["districts"][["district", p["districts"].geometry.name]]
    merged = d.merge(kpis, on="district", how="left")
    _choropleth(b, merged, col, f"KPI: {col}", ("district", col))
    _base(b, p, fill=False)


# --------------------------------------------------------------------------- public API


def build_map(
    theme: str,
    layers: Mapping[str, gpd.GeoDataFrame | None],
    summary: Mapping[str, Any],
    kpis: pd.DataFrame | None = None,
    *,
    offline: bool = True,
    tiles: str | None = None,
    hotspot_radius_m: float = 100.0,
    _prepared: Mapping[str, gpd.GeoDataFrame] | None = None,
) -> folium.Map:
    """Build one theme map.

    Parameters
    ----------
    theme : str
        One of :data:`THEMES` or ``kpi_<column>`` (a numeric column of ``kpis``).
    layers : dict of str -> GeoDataFrame
        Plan layers in any CRS that is set (normally the working CRS); missing
        or empty layers are skipped.  ``demand`` is never drawn.
    summary : dict
        Plan summary; ``data_kind``, ``scenario`` / ``scenario_title`` and
        ``notes`` go into the caption.
    kpis : DataFrame, optional
        District KPI table with a ``district`` column (for ``kpi_*`` themes).
    offline : bool
        Embed Leaflet inline (default) instead of linking a CDN.
    tiles : str, optional
        A folium tile name or URL template; the default ``None`` draws only
        the vector base.
    hotspot_radius_m : float
        Coverage-circle radius of Wi-Fi hotspots without a ``radius_m`` column.

    Returns
    -------
    folium.Map

    Raises
    ------
    ParameterError
        Unknown theme or KPI column.
    CRSError
        A layer without CRS.
    """
    p = dict(_prepared) if _prepared is not None else _prepare(layers)
    b = _MapBuilder(theme=theme, summary=summary, offline=offline, tiles=tiles, bounds=_bounds(p))
    if theme == "overview":
        _theme_overview(b, p)
    elif theme == "coverage_gaps":
        _theme_coverage_gaps(b, p)
    elif theme == "proposed_sites":
        _theme_proposed_sites(b, p)
    elif theme == "sharing_candidates":
        _theme_sharing(b, p)
    elif theme == "wifi_hotspots":
        _theme_wifi(b, p, hotspot_radius_m)
    elif theme == "undergrounding":
        _theme_undergrounding(b, p)
    elif theme.startswith("kpi_"):
        col = theme[4:]
        if kpis is None or col not in kpis.columns or "district" not in kpis.columns:
            raise ParameterError(
                f"map theme '{theme}': the KPI table has no column '{col}' (or no 'district'); "
                f"use one of {[] if kpis is None else list(kpis.columns)}"
            )
        if "districts" not in p:
            raise ColumnError(f"map theme '{theme}': a KPI choropleth needs the 'districts' layer")
        _theme_kpi(b, p, kpis, col)
    else:
        raise ParameterError(
            f"unknown map theme '{theme}'; use one of {list(THEMES)} or 'kpi_<column>'"
        )
    return b.build()


def map_html(m: folium.Map, offline: bool = True) -> str:
    """Render a map built by :func:`build_map` to a complete HTML page.

    Raises ``RuntimeError`` if an offline page would still fetch a script,
    stylesheet or image from the network (a towerplan bug, never silent).
    """
    page = m.get_root().render()
    if offline:
        ext = _assets.external_references(page)
        if ext:
            raise RuntimeError(f"offline map still references network resources: {ext}")
    return page


def kpi_columns_for(kpis: pd.DataFrame | None, columns: Sequence[str] | None = None) -> list[str]:
    """KPI columns that get a choropleth: ``columns`` or the present defaults."""
    if kpis is None or "district" not in kpis.columns:
        return []
    wanted = DEFAULT_KPI_COLUMNS if columns is None else tuple(columns)
    missing = [c for c in wanted if c not in kpis.columns] if columns is not None else []
    if missing:
        raise ParameterError(
            f"KPI maps: columns {missing} are not in the KPI table; use some of {list(kpis.columns)}"
        )
    return [c for c in wanted if c in kpis.columns and pd.api.types.is_numeric_dtype(kpis[c])]


def write_maps(
    layers: Mapping[str, gpd.GeoDataFrame | None],
    summary: Mapping[str, Any],
    kpis: pd.DataFrame | None,
    out_dir: str | Path,
    offline: bool = True,
    tiles: str | None = None,
    kpi_columns: Sequence[str] | None = None,
    hotspot_radius_m: float = 100.0,
) -> list[Path]:
    """Write one self-contained HTML map per theme and per KPI.

    Parameters
    ----------
    layers : dict of str -> GeoDataFrame
        Plan layers (working CRS); missing/empty ones are skipped and their
        theme maps say so in the caption.
    summary : dict
        Plan summary (``data_kind``, ``scenario``, ``notes``...).
    kpis : DataFrame or None
        District KPI table (``district`` + numeric KPI columns).
    out_dir : str or Path
        Folder for ``<theme>.html`` (created if needed).
    offline : bool
        Embed Leaflet inline (default, works with no network).
    tiles : str, optional
        Online tile layer (folium name or URL template); default none.
    kpi_columns : sequence of str, optional
        KPI columns to map; default :data:`DEFAULT_KPI_COLUMNS` that are present.
    hotspot_radius_m : float
        Wi-Fi coverage radius when ``wifi_hotspots`` has no ``radius_m``.

    Returns
    -------
    list of Path
        The HTML files written, in theme order.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prepared = _prepare(layers)
    themes = list(THEMES) + [f"kpi_{c}" for c in kpi_columns_for(kpis, kpi_columns)]
    if "districts" not in prepared:
        themes = [t for t in themes if not t.startswith("kpi_")]
    written = []
    for theme in themes:
        m = build_map(
            theme,
            layers,
            summary,
            kpis,
            offline=offline,
            tiles=tiles,
            hotspot_radius_m=hotspot_radius_m,
            _prepared=prepared,
        )
        path = out / f"{theme}.html"
        path.write_text(map_html(m, offline=offline), encoding="utf-8")
        logger.info("wrote map %s (%.0f kB)", path, path.stat().st_size / 1024)
        written.append(path)
    return written
