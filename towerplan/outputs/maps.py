"""Folium HTML maps of a plan that work offline, in Vietnamese or English.

One self-contained HTML file per theme of the registry
(:data:`towerplan.outputs._themes.THEMES`: ``overview``, ``coverage_gaps``,
``proposed_sites``, ``sharing_candidates``, ``wifi_hotspots``,
``undergrounding``, ``signal_level``) plus one choropleth per district KPI
(``kpi_<name>``; before/after pairs share their class breaks).

What a reader gets
------------------
Every site is drawn (canvas renderer; clustering only above
:data:`CLUSTER_THRESHOLD` features, with its own legend entry).  Existing
sites, new dedicated sites, new shared sites and co-location hosts differ by
shape and colour (Okabe-Ito colour-blind-safe colours; roads are grey).
Popups give lon/lat to 6 decimals and VN-2000 X (northing) / Y (easting) in
the scenario's TM-3 zone to 0.01 m; a panel reads VN-2000 coordinates under
the mouse and finds a site by its ID; panels fold on screens smaller than
1600 x 900; a source/date/CRS line is on every map; the best-server raster is
a toggleable layer.  Labels, legends and popups go through the gettext
catalogues (``lang``), stored values stay codes.

Offline by design
-----------------
Leaflet 1.9.4 and Leaflet.markercluster 1.5.3 (npm registry packages, licences
in ``towerplan/static``) and towerplan's own ``static/towerplan/map.js`` are
embedded inline in every file; folium's default CDN links are dropped.

Safety
------
Every text that comes from data is HTML-escaped in Python before it reaches a
popup, tooltip, label, legend or caption, and the data are serialised with
Jinja's HTML-safe JSON, so a name such as ``<script>alert(1)</script>`` is
shown as text and never executed.

Every map exposes ``window.towerplan = {map, theme, layers}`` where
``layers[key] = [leafletLayer, expectedFeatureCount, label]`` (``key`` a stable
code such as ``proposed_sites:shared``) so that a test can check what was drawn.
"""

from __future__ import annotations

import base64
import html
import io
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

from towerplan._i18n import _, current_language, data_text, fmt_number, fmt_percent, use_language
from towerplan.errors import N_, ColumnError, CRSError, ParameterError
from towerplan.inputs._base import DEMO_KIND
from towerplan.outputs import _assets, _themes
from towerplan.scenario import ExportSettings

logger = logging.getLogger(__name__)

__all__ = [
    "CLUSTER_THRESHOLD",
    "DEFAULT_KPI_COLUMNS",
    "THEMES",
    "build_map",
    "map_html",
    "write_maps",
]

THEMES = tuple(k for k, t in _themes.THEMES.items() if t.maps)
"""Theme maps written by :func:`write_maps` (plus ``kpi_<name>`` choropleths)."""

DEFAULT_KPI_COLUMNS = (
    "total",
    "mean_serving_radius_km",
    "coverage_any_before",
    "coverage_any_after",
    "coverage_weighted_after",
)
"""KPI columns mapped by default when present in the KPI table."""

CLUSTER_THRESHOLD = _themes.CLUSTER_THRESHOLD
"""Point layers with more features than this are drawn with marker clustering."""

MAX_ROAD_FEATURES = 2000
"""Roads above this count are thinned to major classes (map size)."""

MAJOR_ROAD_CLASSES = ("motorway", "trunk", "national", "primary", "provincial", "secondary")

_SIMPLIFY_M = {"districts": 15.0, "underground": 15.0, "coverage_gaps": 75.0, "roads": 5.0}
_POINT_LAYERS = ("existing_sites", "proposed_sites", "wifi_hotspots", "host_structures", "pois")
_MAX_POPUP_FIELDS = 16
_ID_FIELDS = ("site_id", "hotspot_id")
_RASTER_MAX_PX = 900


# --------------------------------------------------------------------------- folium elements


class _Verbatim(Element):
    """Text that joins the page as it is.

    branca's ``Element(text)`` compiles ``text`` as a Jinja template (slow for the inlined
    assets and the layer data, and ``{{ }}`` in user text would be evaluated); this renders
    the same page text (Jinja's rendering drops one trailing newline) without compiling.
    """

    def __init__(self, text: str) -> None:
        super().__init__()
        self._text = text[:-1] if text.endswith("\n") else text

    def render(self, **kwargs: Any) -> str:
        return self._text


class _VerbatimMacro(MacroElement):
    """``MacroElement`` whose rendered header/html/script macros join the page verbatim."""

    def render(self, **kwargs: Any) -> None:  # type: ignore[override]  # as MacroElement
        figure = self.get_root()
        assert isinstance(figure, Figure), "a towerplan map element renders inside a Figure"
        macros = self._template.module.__dict__
        for part in ("header", "html", "script"):
            macro = macros.get(part)
            if macro is not None:
                target = getattr(figure, part)
                target.add_child(_Verbatim(macro(self, kwargs)), name=self.get_name())
        for element in self._children.values():
            element.render(**kwargs)


class _PointLayer(Layer, _VerbatimMacro):
    """Shaped canvas markers from compact rows, clustered only when asked (one Leaflet layer)."""

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
                var m = new L.TpMarker([r[0], r[1]], d.style);
                TP.bind(m, d, r.slice(2));
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


class _VectorLayer(Layer, _VerbatimMacro):
    """Polygons/lines from a GeoJSON dict with per-feature style index and values."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = (function () {
            var d = {{ this.data|tojson }};
            return L.geoJson(d.geojson, {
                style: function (f) { return d.styles[f.properties.s]; },
                onEachFeature: function (f, l) { TP.bind(l, d, f.properties.v); }
            });
        })();
        {% endmacro %}
        """
    )

    def __init__(self, data: dict[str, Any], name: str, show: bool = True):
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "TowerplanVector"
        self.data = data


class _LabelLayer(Layer, _VerbatimMacro):
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


class _ImageLayer(Layer, _VerbatimMacro):
    """A raster as an inline PNG image overlay (EPSG:4326 bounds)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.imageOverlay({{ this.url|tojson }}, {{ this.bounds|tojson }},
            {opacity: 0.7, interactive: false});
        {% endmacro %}
        """
    )

    def __init__(self, url: str, bounds: list[list[float]], name: str, show: bool = True):
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "TowerplanImage"
        self.url = url
        self.bounds = bounds


class _Panel(_VerbatimMacro):
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
                L.DomEvent.disableScrollPropagation(div);
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


class _Tools(_VerbatimMacro):
    """Scale bar, site search, VN-2000 readout and panel folding."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
            var map = {{ this._parent.get_name() }};
            L.control.scale({imperial: false, maxWidth: 160}).addTo(map);
            var s = L.control({position: "topleft"});
            s.onAdd = function () {
                var div = L.DomUtil.create("div", "tp-panel tp-search");
                div.innerHTML = {{ this.search_html|tojson }};
                L.DomEvent.disableClickPropagation(div);
                var inp = div.querySelector("input"), out = div.querySelector("span");
                var go = function () {
                    out.textContent = TP.search(inp.value) ? "" : {{ this.not_found|tojson }};
                };
                div.querySelector("button").onclick = go;
                inp.onkeydown = function (e) { if (e.key === "Enter") { go(); } };
                return div;
            };
            s.addTo(map);
            {% if this.params %}
            var r = L.control({position: "bottomleft"});
            r.onAdd = function () {
                var div = L.DomUtil.create("div", "tp-panel tp-readout");
                div.textContent = {{ this.hint|tojson }};
                TP.readout(map, {{ this.params|tojson }}, div, {{ this.template|tojson }});
                return div;
            };
            r.addTo(map);
            window.towerplan_vn2000 = function (lat, lon) {
                return TP.vn2000(lat, lon, {{ this.params|tojson }});
            };
            {% endif %}
        })();
        {% endmacro %}
        """
    )

    def __init__(self, params: dict[str, float] | None, crs_name: str):
        super().__init__()
        self._name = "TowerplanTools"
        self.params = params
        self.search_html = (
            '<input type="search" placeholder="'
            + _esc(_("Site ID, e.g. NEW-0001"))
            + '"> <button>'
            + _esc(_("Find"))
            + "</button> <span></span>"
        )
        self.not_found = _("not found")
        self.hint = _("Move the mouse over the map for VN-2000 coordinates")
        self.template = f"{crs_name}: X = {{X}} m, Y = {{Y}} m · lat {{lat}}, lon {{lon}}"


class _Registry(_VerbatimMacro):
    """Exposes ``window.towerplan`` with each layer, its expected feature count and label."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        window.towerplan = {map: {{ this._parent.get_name() }}, theme: {{ this.theme|tojson }},
            vn2000: window.towerplan_vn2000 || null,
            layers: {
            {%- for key, var, n, label in this.entries %}
                {{ key|tojson }}: [{{ var }}, {{ n }}, {{ label|tojson }}],
            {%- endfor %}
            }};
        TP.fold(document);
        {% endmacro %}
        """
    )

    def __init__(self, theme: str, entries: list[tuple[str, str, int, str]]):
        super().__init__()
        self._name = "TowerplanRegistry"
        self.theme = theme
        self.entries = entries


# --------------------------------------------------------------------------- values


def _esc(value: Any) -> str:
    """Text HTML-escaped."""
    return html.escape(str(value), quote=True)


def _display(col: str, value: Any) -> str:
    """Display text of one popup value (number formats and code labels), HTML-escaped."""
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return _esc(_themes.value_label(str(bool(value))))
    if isinstance(value, int | np.integer):
        return fmt_number(int(value)) if col not in ("cand_id", "code") else str(int(value))
    if isinstance(value, float | np.floating):
        v = float(value)
        if not math.isfinite(v):
            return ""
        if col in ("lon", "lat"):
            return f"{v:.6f}"
        if col in ("vn2000_x", "vn2000_y"):
            return f"{v:.2f}"
        if _themes.is_share_column(col) and 0.0 <= v <= 1.0:
            return fmt_percent(v)
        a = abs(v)
        return fmt_number(
            v, 0 if a >= 1000 or v.is_integer() else 1 if a >= 10 else 2 if a >= 1 else 3
        )
    if isinstance(value, list | tuple | set):
        value = ", ".join(map(str, value))
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return _esc(_themes.value_label(value))


def _to_wgs84(gdf: gpd.GeoDataFrame, name: str) -> gpd.GeoDataFrame:
    """Clean, simplify (metres) and reproject a layer to EPSG:4326, coordinates to 6 decimals."""
    if gdf.crs is None:
        raise CRSError(
            msgid=N_(
                "{name}: the layer has no CRS; set it (towerplan layers are in the working "
                "CRS, e.g. EPSG:32648) before drawing maps"
            ),
            name=name,
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


def _with_coordinates(gdf: gpd.GeoDataFrame, settings: ExportSettings) -> gpd.GeoDataFrame:
    """Point layer with ``lon``/``lat`` (WGS 84) and ``vn2000_x``/``vn2000_y`` (TM-3) columns."""
    from towerplan.outputs import export

    pts = gdf.geometry.representative_point()
    ll = gpd.GeoSeries(pts, crs=gdf.crs).to_crs(4326)
    tm3 = export.reproject(
        gpd.GeoDataFrame(geometry=pts, crs=gdf.crs),
        export.target_crs("vn2000_tm3", settings),
        settings.vn2000_datum_transformation,
        name="map points",
    ).geometry
    out = gdf.copy()
    out["lon"] = ll.x.round(6).to_numpy()
    out["lat"] = ll.y.round(6).to_numpy()
    out["vn2000_x"] = tm3.y.round(2).to_numpy()
    out["vn2000_y"] = tm3.x.round(2).to_numpy()
    return out


def _fields(gdf: gpd.GeoDataFrame, preferred: Sequence[str]) -> list[str]:
    cols = [c for c in gdf.columns if c != gdf.geometry.name and not str(c).startswith("_")]
    coords = [c for c in ("lon", "lat", "vn2000_x", "vn2000_y") if c in cols]
    first = [c for c in preferred if c in cols and c not in coords]
    rest = [c for c in cols if c not in first and c not in coords]
    return (first + rest)[: _MAX_POPUP_FIELDS - len(coords)] + coords


def _column_display(col: str, values: list[Any]) -> list[str]:
    """:func:`_display` of each value, each distinct (hashable) value formatted once."""
    seen: dict[tuple[type, Any], str] = {}  # keyed with the type: True == 1 == 1.0
    out = []
    for v in values:
        try:
            text = seen.get((type(v), v))
            if text is None:
                text = seen[(type(v), v)] = _display(col, v)
        except TypeError:  # unhashable (a list): format it directly
            text = _display(col, v)
        out.append(text)
    return out


def _values(gdf: gpd.GeoDataFrame, fields: Sequence[str]) -> list[list[str]]:
    cols = [_column_display(f, gdf[f].tolist()) for f in fields]
    return [list(r) for r in zip(*cols, strict=True)] if cols else [[] for _ in range(len(gdf))]


def _style(
    color: str,
    fill: str | None = None,
    radius: float | None = None,
    weight: float = 1.0,
    fill_opacity: float = 0.8,
    dash: str | None = None,
    shape: str | None = None,
) -> dict[str, Any]:
    s: dict[str, Any] = {
        "color": color,
        "weight": weight,
        "opacity": 1.0,
        "fillColor": fill or color,
        "fillOpacity": fill_opacity,
    }
    if radius is not None:
        s["radius"] = radius
    if dash:
        s["dashArray"] = dash
    if shape:
        s["shape"] = shape
    if fill is None and fill_opacity == 0:
        s["fill"] = False
    return s


def _symbol_style(sym: _themes.Symbol, fill: str | None = None) -> dict[str, Any]:
    return _style(
        sym.edge, fill or sym.fill, radius=sym.size, weight=1.0, fill_opacity=0.9, shape=sym.shape
    )


# --------------------------------------------------------------------------- builder


@dataclass
class _MapBuilder:
    """Collects layers, legend entries and the registry of one map."""

    theme: _themes.Theme
    summary: Mapping[str, Any]
    settings: ExportSettings
    offline: bool
    tiles: str | None
    bounds: list[list[float]] | None = None
    cluster_used: bool = False
    entries: list[tuple[str, str, int, str]] = field(default_factory=list)
    legend: list[tuple[str, str, str, str]] = field(default_factory=list)
    extra_notes: list[str] = field(default_factory=list)
    layers: list[Layer] = field(default_factory=list)

    def add(self, layer: Layer, key: str, label: str, n: int) -> None:
        # Leaflet's layer control inserts names with innerHTML: escape data-derived labels
        layer.layer_name = _esc(label)
        self.layers.append(layer)
        self.entries.append((key, layer.get_name(), n, label))

    def key(self, kind: str, color: str, label: str, shape: str = "") -> None:
        row = (kind, color, label, shape)
        if row not in self.legend:
            self.legend.append(row)

    def points(
        self,
        gdf: gpd.GeoDataFrame,
        key: str,
        label: str,
        style: dict[str, Any],
        popup: Sequence[str] = (),
        show: bool = True,
    ) -> None:
        if len(gdf) == 0:
            return
        pts = gdf.geometry.representative_point()
        fields = _fields(gdf, popup)
        vals = _values(gdf, fields)
        rows = [
            [round(float(p.y), 6), round(float(p.x), 6), *v] for p, v in zip(pts, vals, strict=True)
        ]
        tip = [f for f in (*_ID_FIELDS, "name", "operators", "operator") if f in fields][:2]
        data = {
            "fields": [_esc(_themes.column_label(f)) for f in fields],
            "tip": [fields.index(t) for t in tip],
            "id": next((fields.index(f) for f in _ID_FIELDS if f in fields), -1),
            "style": style,
            "rows": rows,
        }
        cluster = len(rows) > CLUSTER_THRESHOLD
        self.cluster_used |= cluster
        text = f"{label} ({fmt_number(len(rows))})"
        self.add(_PointLayer(data, name=text, cluster=cluster, show=show), key, text, len(rows))
        self.key("pt", style["fillColor"], text, style.get("shape", "circle"))
        if cluster:
            self.key(
                "pt",
                "#9ecae1",
                _("{label}: clustered (more than {n} points)").format(
                    label=label, n=fmt_number(CLUSTER_THRESHOLD)
                ),
                "circle",
            )

    def vectors(
        self,
        gdf: gpd.GeoDataFrame,
        key: str,
        label: str,
        styles: list[dict[str, Any]],
        style_index: Sequence[int] | None = None,
        popup: Sequence[str] = (),
        show: bool = True,
    ) -> None:
        if len(gdf) == 0:
            return
        fields = _fields(gdf, popup)
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
        tip = [f for f in ("district", "name", "site_id", "operator") if f in fields][:2]
        data = {
            "fields": [_esc(_themes.column_label(f)) for f in fields],
            "tip": [fields.index(t) for t in tip],
            "id": -1,
            "styles": styles,
            "geojson": {"type": "FeatureCollection", "features": feats},
        }
        self.add(_VectorLayer(data, name=label, show=show), key, label, len(feats))

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
            prefer_canvas=True,
            minZoom=5,
            maxZoom=19,
        )
        m.default_js = []
        m.default_css = []
        root = m.get_root()
        assert isinstance(root, Figure)
        assets = (
            _assets.inline_assets(self.cluster_used)
            if self.offline
            else _assets.linked_assets(self.cluster_used)
        )
        root.header.add_child(_Verbatim(assets), name="towerplan_assets")
        root.header.add_child(_Verbatim(_assets.towerplan_assets()), name="towerplan_js")
        root.title = _esc(f"towerplan - {_themes.theme_title(self.theme)}")
        if self.tiles:
            folium.TileLayer(
                self.tiles, name=_("Online tiles"), attr="tiles: " + _esc(self.tiles)
            ).add_to(m)
        for layer in self.layers:
            layer.add_to(m)
        m.fit_bounds(bounds)
        _Panel(self._caption_html(), "topleft", "tp-caption").add_to(m)
        crs = _crs_name(self.settings)
        _Tools(_helmert_params(self.settings), crs).add_to(m)
        if self.legend:
            _Panel(self._legend_html(), "bottomright", "tp-legend").add_to(m)
        folium.LayerControl(collapsed=True).add_to(m)
        _Registry(self.theme.key, self.entries).add_to(m)
        return m

    def _caption_html(self) -> str:
        s = self.summary
        scen = s.get("scenario_title") or s.get("scenario") or ""
        parts = [f"<h4>{_esc(_themes.theme_title(self.theme))}</h4>"]
        if scen:
            parts.append(f"<div>{_esc(scen)}</div>")
        kind = str(s.get("data_kind", ""))
        if kind == DEMO_KIND:
            demo = _esc(_(_themes.DEMO_STAMP_MSG))
            parts.append(f'<div class="tp-demo">{demo}</div>')
        src = [
            _("Source: {source}").format(source=s.get("plan_source") or s.get("scenario") or "-"),
            _("data: {kind}").format(kind=data_text(kind) or "-"),
            _("date: {date}").format(date=s.get("generated") or pd.Timestamp.now().date()),
            _("map: WGS 84 (EPSG:4326); coordinates also in {crs}").format(
                crs=_crs_name(self.settings)
            ),
        ]
        parts.append(f'<div class="tp-src">{_esc(" · ".join(src))}</div>')
        notes = [*[data_text(str(n)) for n in s.get("notes") or []], *self.extra_notes]
        if notes:
            items = "".join(f"<li>{_esc(n)}</li>" for n in notes[:8])
            head = _esc(_("Notes"))
            parts.append(
                f"<details><summary>{head} ({len(notes[:8])})</summary>"
                f'<ul class="tp-notes">{items}</ul></details>'
            )
        return "".join(parts)

    def _legend_html(self) -> str:
        rows = []
        for kind, color, label, shape in self.legend:
            c = _esc(color)
            if kind in ("ln", "dash"):
                sw = f'<span class="tp-key {kind}" style="border-color:{c}"></span>'
            elif kind == "outline":
                sw = f'<span class="tp-key" style="border-color:{c};border-width:2px"></span>'
            elif kind == "title":
                rows.append(f"<div><b>{_esc(label)}</b></div>")
                continue
            elif kind == "pt" and shape == "triangle":
                sw = f'<span class="tp-key triangle" style="border-bottom-color:{c}"></span>'
            else:
                cls = f"tp-key {shape}" if kind == "pt" else "tp-key"
                sw = f'<span class="{cls}" style="background:{c}"></span>'
            rows.append(f"<div>{sw}{_esc(label)}</div>")
        head = _esc(_("Legend"))
        return (
            f'<details class="tp-fold-small" open><summary>{head}</summary>'
            + "".join(rows)
            + "</details>"
        )


def _crs_name(settings: ExportSettings) -> str:
    from towerplan.outputs import export

    crs = export.target_crs("vn2000_tm3", settings)
    code = crs.to_epsg()
    return f"{crs.name}" + (f" (EPSG:{code})" if code else "")


def _helmert_params(settings: ExportSettings) -> dict[str, float] | None:
    """Parameters of the VN-2000 TM-3 readout (None when the datum operation is not Helmert)."""
    from pyproj.crs import CoordinateOperation

    from towerplan.outputs import export

    try:
        auth, code = settings.vn2000_datum_transformation.split(":", 1)
        op = CoordinateOperation.from_authority(auth, code)
    except Exception:  # a PROJ string or pipeline: no readout
        return None
    method = op.method_name.lower()
    if "coordinate frame" not in method and "position vector" not in method:
        return None
    v = [float(p.value) for p in op.params]
    if len(v) != 7:
        return None
    arcsec = math.pi / 180 / 3600
    crs = export.target_crs("vn2000_tm3", settings)
    ell, conv = crs.ellipsoid, crs.coordinate_operation
    if ell is None or conv is None:
        return None
    tm = {p.name: float(p.value) for p in conv.params}
    return {
        "a": float(ell.semi_major_metre),
        "f": 1.0 / float(ell.inverse_flattening),
        "tx": v[0],
        "ty": v[1],
        "tz": v[2],
        "rx": v[3] * arcsec,
        "ry": v[4] * arcsec,
        "rz": v[5] * arcsec,
        "ds": v[6] * 1e-6,
        "frame": 1.0 if "coordinate frame" in method else 0.0,
        "cm": tm["Longitude of natural origin"],
        "k0": tm["Scale factor at natural origin"],
        "fe": tm["False easting"],
        "fn": tm["False northing"],
    }


# --------------------------------------------------------------------------- preparation


def _prepare(
    layers: Mapping[str, Any],
    summary: Mapping[str, Any],
    kpis: pd.DataFrame | None,
    settings: ExportSettings,
    hotspot_radius_m: float,
    best_server: str | Path | None,
) -> dict[str, Any]:
    src = dict(layers)
    if best_server is not None:
        src["best_server"] = Path(best_server)
    for n, g in src.items():
        if isinstance(g, gpd.GeoDataFrame) and n != "demand" and len(g) and g.crs is None:
            raise CRSError(
                msgid=N_(
                    "{name}: the layer has no CRS; set it (towerplan layers are in the working "
                    "CRS, e.g. EPSG:32648) before drawing maps"
                ),
                name=n,
            )
    if isinstance(src.get("roads"), gpd.GeoDataFrame) and len(src["roads"]) > MAX_ROAD_FEATURES:
        src["roads"] = _thin_roads(src["roads"])
    p = _themes.derive(src, summary, hotspot_radius_m=hotspot_radius_m, kpis=kpis)
    out: dict[str, Any] = {}
    for name, g in p.items():
        if not isinstance(g, gpd.GeoDataFrame):
            out[name] = g
            continue
        if name in _POINT_LAYERS:
            g = _with_coordinates(g, settings)
        w = _to_wgs84(g, name)
        w.attrs = dict(g.attrs)
        out[name] = w
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


def _bounds(p: Mapping[str, Any]) -> list[list[float]] | None:
    frames = {n: g for n, g in p.items() if isinstance(g, gpd.GeoDataFrame) and len(g)}
    for name in ("districts", "existing_sites", "proposed_sites", "coverage_gaps", "roads"):
        if name in frames:
            x0, y0, x1, y1 = frames[name].total_bounds
            return [[float(y0), float(x0)], [float(y1), float(x1)]]
    if not frames:
        return None
    b = np.array([g.total_bounds for g in frames.values()])
    return [
        [float(b[:, 1].min()), float(b[:, 0].min())],
        [float(b[:, 3].max()), float(b[:, 2].max())],
    ]


# --------------------------------------------------------------------------- renderers by kind


def _r_base(b: _MapBuilder, p: Mapping[str, Any], spec: _themes.LayerSpec) -> None:
    """Districts (with labels) and roads: the vector base, always present."""
    if "districts" in p:
        d = p["districts"]
        style = _style(
            "#555555",
            "#ffffff" if spec.fill else None,
            weight=1.5,
            fill_opacity=0.35 if spec.fill else 0,
        )
        label = _("District boundaries")
        b.vectors(
            d,
            "districts",
            label,
            [style],
            popup=("district", "code", "district_type", "population", "area_km2"),
        )
        b.key("outline", "#555555", label)
        if "district" in d.columns:
            pts = d.geometry.representative_point()
            rows = [
                [round(float(q.y), 6), round(float(q.x), 6), _esc(n)]
                for q, n in zip(pts, d["district"], strict=True)
            ]
            b.add(
                _LabelLayer(rows, _("District names")),
                "district_labels",
                _("District names"),
                len(rows),
            )
    if "roads" in p:
        r = p["roads"]
        styles = [_style(_themes.ROAD_OTHER[0], None, weight=_themes.ROAD_OTHER[1], fill_opacity=0)]
        idx = [0] * len(r)
        if "road_class" in r.columns:
            for i, c in enumerate(r["road_class"].astype(str).str.lower()):
                if c in _themes.ROAD_STYLES:
                    color, w = _themes.ROAD_STYLES[c]
                    st = _style(color, None, weight=w, fill_opacity=0)
                    if st not in styles:
                        styles.append(st)
                    idx[i] = styles.index(st)
            for c in ("national", "provincial"):
                if (r["road_class"].astype(str).str.lower() == c).any():
                    b.key("ln", _themes.ROAD_STYLES[c][0], _themes.value_label(c))
        b.vectors(r, "roads", _("Roads"), styles, idx, popup=("name", "road_class"))


def _r_points(b: _MapBuilder, p: Mapping[str, Any], spec: _themes.LayerSpec) -> None:
    for g in _themes.groups(spec, p):
        b.points(g.frame, g.key, g.label, _symbol_style(g.symbol, g.color), spec.popup, spec.show)


def _r_lines(b: _MapBuilder, p: Mapping[str, Any], spec: _themes.LayerSpec) -> None:
    for g in _themes.groups(spec, p):
        text = f"{g.label} ({fmt_number(len(g.frame))})"
        dash = "6 4" if g.dashed else None
        style = _style(g.color, None, weight=2.5, fill_opacity=0, dash=dash)
        b.vectors(g.frame, g.key, text, [style], popup=spec.popup, show=spec.show)
        b.key("dash" if dash else "ln", g.color, text)


def _r_polygons(b: _MapBuilder, p: Mapping[str, Any], spec: _themes.LayerSpec) -> None:
    for g in _themes.groups(spec, p):
        style = _style(g.color, g.color, weight=0.8, fill_opacity=0.3)
        b.vectors(g.frame, g.key, g.label, [style], popup=spec.popup, show=spec.show)
        b.key("fill", g.color, g.label)


def _r_gaps(b: _MapBuilder, p: Mapping[str, Any], spec: _themes.LayerSpec) -> None:
    if spec.layer not in p:
        return
    g = p[spec.layer]
    colors = _themes.operator_colors(p)
    op_col = g["operator"].astype(str) if "operator" in g.columns else pd.Series("-", g.index)
    st_col = g["stage"].astype(str) if "stage" in g.columns else pd.Series("after", g.index)
    ops = sorted(set(op_col))
    shown = _themes.lead_operator(b.summary, ops)
    for stage in ("before", "after"):
        for op in ops:
            sub = g[(st_col == stage) & (op_col == op)]
            col = colors.get(op, "#D55E00")
            st = (
                _style(col, col, weight=1.2, fill_opacity=0.15, dash="4 3")
                if stage == "before"
                else _style(col, col, weight=1.8, fill_opacity=0.55)
            )
            label = _("Coverage gaps {stage}: {operator}").format(
                stage=_themes.value_label(stage), operator=op
            )
            b.vectors(
                sub, f"coverage_gaps:{stage}:{op}", label, [st], popup=spec.popup, show=op == shown
            )
    for op in ops:
        b.key("fill", colors.get(op, "#D55E00"), op)
    b.key("outline", "#555555", _("dashed, light: gap before the plan"))
    b.key("fill", "#777777", _("solid: gap remaining after the plan"))
    if len(ops) > 1:
        b.extra_notes.append(
            _("Showing {operator}; tick other operators in the layer panel.").format(operator=shown)
        )


def _r_choropleth(b: _MapBuilder, p: Mapping[str, Any], spec: _themes.LayerSpec) -> None:
    if spec.layer not in p:
        return
    gdf = p[spec.layer]
    cols = [c for c in spec.columns if c in gdf.columns]
    if not cols:
        return
    share = bool(gdf.attrs.get("share")) or all(_themes.is_share_column(c) for c in cols)
    breaks = _themes.class_breaks([gdf[c] for c in cols], share=share)
    colors = _themes.class_colors(len(breaks) - 1)
    palette = [_style("#333333", c, weight=1.0, fill_opacity=0.75) for c in colors] + [
        _style("#333333", _themes.NO_DATA, weight=1.0, fill_opacity=0.75)
    ]
    for i, col in enumerate(cols):
        cls = _themes.classify(gdf[col], breaks)
        idx = [int(c) if c >= 0 else len(colors) for c in cls]
        b.vectors(
            gdf,
            f"{spec.layer}:{col}",
            _themes.choropleth_label(col, gdf),
            palette,
            idx,
            popup=spec.popup,
            show=i == 0,
        )
    b.key(
        "title",
        "",
        _themes.choropleth_label(cols[0], gdf)
        + (" / " + _themes.choropleth_label(cols[1], gdf) if len(cols) > 1 else ""),
    )
    for c, lo, hi in zip(colors, breaks[:-1], breaks[1:], strict=True):
        b.key("fill", c, _themes.class_text(float(lo), float(hi), share))
    if any((_themes.classify(gdf[c], breaks) < 0).any() for c in cols):
        b.key("fill", _themes.NO_DATA, _("no data"))


def _r_raster(b: _MapBuilder, p: Mapping[str, Any], spec: _themes.LayerSpec) -> None:
    path = p.get(spec.layer)
    if path is None or not Path(path).is_file():
        return
    rgba, bounds = _signal_png(Path(path))
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", optimize=True)
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    label = _(spec.label)
    b.add(_ImageLayer(url, bounds, label, show=spec.show), spec.layer, label, 1)
    b.key("title", "", label)
    for c, t in zip(_themes.SIGNAL_COLORS, _themes.signal_class_labels(), strict=True):
        b.key("fill", c, t)


def _signal_png(path: Path) -> tuple[np.ndarray, list[list[float]]]:
    """Received level (band 1) warped to EPSG:4326, classed, as RGBA with bounds."""
    import rasterio
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    with rasterio.open(path) as src:
        scale = max(1.0, max(src.width, src.height) / _RASTER_MAX_PX)
        w, h = int(src.width / scale), int(src.height / scale)
        tr, ww, hh = calculate_default_transform(
            src.crs, "EPSG:4326", src.width, src.height, *src.bounds, dst_width=w, dst_height=h
        )
        dst = np.full((hh, ww), np.nan, dtype="float32")
        reproject(
            rasterio.band(src, 1),
            dst,
            dst_transform=tr,
            dst_crs="EPSG:4326",
            resampling=Resampling.nearest,
            src_nodata=src.nodata,
            dst_nodata=np.nan,
        )
    cls = np.searchsorted(np.asarray(_themes.SIGNAL_LEVELS), dst, side="right")
    rgba = np.zeros((hh, ww, 4), dtype="uint8")
    for i, c in enumerate(_themes.SIGNAL_COLORS):
        m = (cls == i) & np.isfinite(dst)
        rgba[m] = [int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16), 255]
    west, north = tr.c, tr.f
    east, south = west + tr.a * ww, north + tr.e * hh
    return rgba, [[round(south, 6), round(west, 6)], [round(north, 6), round(east, 6)]]


_RENDERERS = {
    "base": _r_base,
    "points": _r_points,
    "lines": _r_lines,
    "polygons": _r_polygons,
    "gaps": _r_gaps,
    "choropleth": _r_choropleth,
    "raster": _r_raster,
}


# --------------------------------------------------------------------------- public API


def _theme(theme: str, kpis: pd.DataFrame | None, p: Mapping[str, Any]) -> _themes.Theme:
    if theme in _themes.THEMES and _themes.THEMES[theme].maps:
        return _themes.THEMES[theme]
    if theme.startswith("kpi_"):
        col = theme[4:]
        if kpis is None or col not in kpis.columns or "district" not in kpis.columns:
            raise ParameterError(
                msgid=N_(
                    "map theme '{theme}': the KPI table has no column '{col}' (or no "
                    "'district'); use one of {columns}"
                ),
                theme=theme,
                col=col,
                columns=[] if kpis is None else list(kpis.columns),
            )
        if "districts" not in p:
            raise ColumnError(
                msgid=N_("map theme '{theme}': a KPI choropleth needs the 'districts' layer"),
                theme=theme,
            )
        return _themes.kpi_theme(col, _themes.kpi_pairs(kpis.columns).get(col, ()))
    raise ParameterError(
        msgid=N_("unknown map theme '{theme}'; use one of {themes} or 'kpi_<column>'"),
        theme=theme,
        themes=list(THEMES),
    )


def build_map(
    theme: str,
    layers: Mapping[str, gpd.GeoDataFrame | None],
    summary: Mapping[str, Any],
    kpis: pd.DataFrame | None = None,
    *,
    offline: bool = True,
    tiles: str | None = None,
    hotspot_radius_m: float = 100.0,
    lang: str | None = None,
    export_settings: ExportSettings | None = None,
    best_server: str | Path | None = None,
    _prepared: Mapping[str, Any] | None = None,
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
        Plan summary; ``data_kind``, ``scenario`` / ``scenario_title``,
        ``plan_source``, ``notes`` and ``language`` go into the caption.
    kpis : DataFrame, optional
        District KPI table with a ``district`` column (for ``kpi_*`` themes).
    offline : bool
        Embed Leaflet inline (default) instead of linking a CDN.
    tiles : str, optional
        A folium tile name or URL template; the default ``None`` draws only
        the vector base.
    hotspot_radius_m : float
        Coverage-circle radius of Wi-Fi hotspots without a ``radius_m`` column.
    lang : str, optional
        ``vi`` or ``en``; default ``summary['language']``, else English.
    export_settings : ExportSettings, optional
        VN-2000 TM-3 zone and datum transformation of popups and the readout;
        default ``summary['export_settings']``, else Cần Thơ's (105°00′).
    best_server : path, optional
        The plan's ``best_server.tif`` (drawn by the ``signal_level`` theme).

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
    settings = export_settings or _settings_from(summary)
    with use_language(lang or summary.get("language") or current_language()):
        p = (
            dict(_prepared)
            if _prepared is not None
            else _prepare(layers, summary, kpis, settings, hotspot_radius_m, best_server)
        )
        t = _theme(theme, kpis, p)
        b = _MapBuilder(t, summary, settings, offline, tiles, bounds=_bounds(p))
        for spec in t.layers:
            _RENDERERS[spec.kind](b, p, spec)
        if t.needs and t.needs not in p:
            b.extra_notes.append(_("This plan has no {layer} layer.").format(layer=t.needs))
        return b.build()


def _settings_from(summary: Mapping[str, Any]) -> ExportSettings:
    raw = summary.get("export_settings")
    if isinstance(raw, Mapping):
        known = {k: v for k, v in raw.items() if k in ExportSettings.__dataclass_fields__}
        return ExportSettings(**known)
    return ExportSettings()


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
            msgid=N_("KPI maps: columns {missing} are not in the KPI table; use some of {columns}"),
            missing=missing,
            columns=list(kpis.columns),
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
    *,
    lang: str | None = None,
    export_settings: ExportSettings | None = None,
    best_server: str | Path | None = None,
) -> list[Path]:
    """Write one self-contained HTML map per theme and per KPI.

    Parameters
    ----------
    layers : dict of str -> GeoDataFrame
        Plan layers (working CRS); missing/empty ones are skipped and their
        theme maps say so in the caption.
    summary : dict
        Plan summary (``data_kind``, ``scenario``, ``notes``, ``language``...).
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
    lang, export_settings, best_server
        As in :func:`build_map`; the ``signal_level`` map is written only
        with a ``best_server`` raster.

    Returns
    -------
    list of Path
        The HTML files written, in theme order.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = export_settings or _settings_from(summary)
    language = lang or summary.get("language") or current_language()
    with use_language(language):
        prepared = _prepare(layers, summary, kpis, settings, hotspot_radius_m, best_server)
    themes = [t for t in THEMES if t != "signal_level" or "best_server" in prepared]
    if "districts" in prepared:
        themes += [f"kpi_{c}" for c in kpi_columns_for(kpis, kpi_columns)]
    written = []
    for theme in themes:
        m = build_map(
            theme,
            layers,
            summary,
            kpis,
            offline=offline,
            tiles=tiles,
            lang=language,
            export_settings=settings,
            _prepared=prepared,
        )
        path = out / f"{theme}.html"
        path.write_text(map_html(m, offline=offline), encoding="utf-8")
        logger.info("wrote map %s (%.0f kB)", path, path.stat().st_size / 1024)
        written.append(path)
    return written
