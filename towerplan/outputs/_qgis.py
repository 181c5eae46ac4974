"""QGIS layer styles (QML) from the theme registry's symbology (private).

:func:`qml` writes a QGIS 3 style document for one exported layer: a
categorised renderer when the layer has a category column (site type,
stage, road class, Wi-Fi category, backhaul method, host operator), else one
symbol; district names as labels.  Category labels are translated, the
category values stay the stored codes.  :func:`add_layer_styles` stores the
same documents in a GeoPackage's ``layer_styles`` table (the schema QGIS
reads and writes), marked as default, so every layer opens styled.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

import geopandas as gpd
import numpy as np
import shapely

from towerplan._i18n import _
from towerplan.outputs import _themes

QGIS_VERSION = "3.28.0"


@dataclass(frozen=True)
class _Style:
    geom: str  # marker | line | fill
    color: str
    edge: str = "#333333"
    shape: str = "circle"
    size_mm: float = 2.0
    width_mm: float = 0.3
    dash: bool = False
    fill: bool = True


def _rgba(hex_color: str, alpha: int = 255) -> str:
    h = hex_color.lstrip("#")
    return f"{int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha}"


def _opt(name: str, value: str | float) -> str:
    return f'<Option name="{name}" type="QString" value={quoteattr(str(value))}/>'


def _symbol(i: int, s: _Style) -> str:
    if s.geom == "marker":
        opts = [
            _opt("name", s.shape),
            _opt("color", _rgba(s.color)),
            _opt("outline_color", _rgba(s.edge)),
            _opt("size", s.size_mm),
            _opt("size_unit", "MM"),
            _opt("outline_width", 0.2),
        ]
        cls = "SimpleMarker"
    elif s.geom == "line":
        opts = [
            _opt("line_color", _rgba(s.color)),
            _opt("line_width", s.width_mm),
            _opt("line_width_unit", "MM"),
            _opt("line_style", "dash" if s.dash else "solid"),
        ]
        cls = "SimpleLine"
    else:
        opts = [
            _opt("color", _rgba(s.color, 110 if s.fill else 0)),
            _opt("style", "solid" if s.fill else "no"),
            _opt("outline_color", _rgba(s.edge)),
            _opt("outline_width", s.width_mm),
            _opt("outline_style", "dash" if s.dash else "solid"),
        ]
        cls = "SimpleFill"
    return (
        f'<symbol type="{s.geom}" name="{i}" alpha="1" clip_to_extent="1" force_rhr="0">'
        f'<layer class="{cls}" enabled="1" locked="0" pass="0"><Option type="Map">'
        + "".join(opts)
        + "</Option></layer></symbol>"
    )


def _geom_kind(gdf: gpd.GeoDataFrame) -> str:
    # shapely type ids (one pass over the array; geom_type would build a string per row):
    # 0/4 (Multi)Point, 1/5 (Multi)LineString
    ids = set(np.unique(shapely.get_type_id(gdf.geometry.to_numpy())).tolist())
    if ids & {0, 4}:
        return "marker"
    if ids & {1, 5}:
        return "line"
    return "fill"


def _base_style(kind: str, name: str) -> _Style:
    site = {"existing_sites": "existing", "pois": "poi", "wifi_hotspots": "wifi"}.get(name)
    if kind == "marker":
        sym = _themes.SITE_SYMBOLS.get(site or "", _themes.Symbol("", "#777777", size=2.0))
        return _Style("marker", sym.fill, sym.edge, sym.shape, round(sym.size * 0.6, 2))
    if kind == "line":
        return _Style("line", "#333333", width_mm=0.4)
    if name == "districts":
        return _Style("fill", "#ffffff", "#555555", width_mm=0.5, fill=False)
    return _Style("fill", "#E69F00", "#8a5d00", width_mm=0.2)


_CATEGORY = {
    "proposed_sites": "site_type",
    "coverage_gaps": "stage",
    "roads": "road_class",
    "wifi_hotspots": "category",
    "backhaul_routes": "method",
    "sharing_candidates": "host_operator",
    "candidate_sites": "source",
}


def _category_styles(
    name: str, kind: str, values: list[str], layers: Mapping[str, gpd.GeoDataFrame]
) -> dict[str, _Style]:
    base = _base_style(kind, name)
    out = {}
    ops = _themes.operator_colors(layers)
    cats = _themes.palette(values, _themes.CATEGORY_PALETTE)
    for v in values:
        if v in _themes.SITE_SYMBOLS and kind == "marker":
            sym = _themes.SITE_SYMBOLS[v]
            out[v] = _Style("marker", sym.fill, sym.edge, sym.shape, round(sym.size * 0.6, 2))
        elif name == "roads":
            color, w = _themes.ROAD_STYLES.get(v, _themes.ROAD_OTHER)
            out[v] = _Style("line", color, width_mm=round(w * 0.2, 2))
        elif name == "coverage_gaps":
            out[v] = _Style("fill", "#E69F00", "#8a5d00", dash=v == "before", fill=v != "before")
        elif name == "backhaul_routes":
            out[v] = _Style("line", "#333333", width_mm=0.4, dash=v == "straight_line")
        elif name == "sharing_candidates":
            out[v] = _Style(kind, ops.get(v, "#777777"), base.edge, base.shape, base.size_mm, 0.5)
        else:
            out[v] = _Style(kind, cats[v], base.edge, base.shape, base.size_mm, base.width_mm)
    return out


def qml(
    name: str,
    gdf: gpd.GeoDataFrame,
    layers: Mapping[str, gpd.GeoDataFrame],
    field_names: Mapping[str, str] | None = None,
) -> str:
    """QGIS 3 QML style document of an exported layer.

    Parameters
    ----------
    name : str
        Layer name (``existing_sites``, ``proposed_sites``...).
    gdf : GeoDataFrame
        The layer as exported.
    layers : dict
        All exported layers (operator colours are shared across layers).
    field_names : dict, optional
        Column -> field name in the file (shapefile 10-character names).

    Returns
    -------
    str
        The QML text (UTF-8 XML).
    """
    kind = _geom_kind(gdf)
    fields = dict(field_names or {})
    col = _CATEGORY.get(name)
    if col is not None and col in gdf.columns:
        values = sorted(gdf[col].dropna().astype(str).unique())
        styles = _category_styles(name, kind, values, layers)
        cats = "".join(
            f'<category value={quoteattr(v)} symbol="{i}" '
            f'label={quoteattr(_themes.value_label(v))} render="true"/>'
            for i, v in enumerate(values)
        )
        syms = "".join(_symbol(i, styles[v]) for i, v in enumerate(values))
        attr = fields.get(col, col)
        renderer = (
            f'<renderer-v2 type="categorizedSymbol" attr={quoteattr(attr)} symbollevels="0" '
            f'enableorderby="0" forceraster="0"><categories>{cats}</categories>'
            f"<symbols>{syms}</symbols></renderer-v2>"
        )
    else:
        renderer = (
            '<renderer-v2 type="singleSymbol" symbollevels="0" enableorderby="0" forceraster="0">'
            f"<symbols>{_symbol(0, _base_style(kind, name))}</symbols></renderer-v2>"
        )
    label = ""
    if name == "districts" and "district" in gdf.columns:
        label = (
            '<labeling type="simple"><settings calloutType="simple">'
            f"<text-style fieldName={quoteattr(fields.get('district', 'district'))} "
            'fontSize="9" fontFamily="DejaVu Sans" fontWeight="75" textColor="34,34,34,255">'
            '<text-buffer bufferDraw="1" bufferSize="0.8" bufferColor="255,255,255,255"/>'
            "</text-style></settings></labeling>"
        )
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        f'<qgis version="{QGIS_VERSION}" styleCategories="Symbology|Labeling" '
        f'labelsEnabled="{1 if label else 0}">'
        f"<layerTitle>{_layer_title(name)}</layerTitle>"
        f"{renderer}{label}</qgis>\n"
    )


def _layer_title(name: str) -> str:
    from xml.sax.saxutils import escape

    return escape(layer_title(name))


LAYER_TITLES = {
    "districts": _themes.N_("Administrative districts"),
    "existing_sites": _themes.N_("Existing BTS sites"),
    "proposed_sites": _themes.N_("New BTS sites"),
    "candidate_sites": _themes.N_("Candidate site locations"),
    "coverage_gaps": _themes.N_("Coverage gaps"),
    "sharing_candidates": _themes.N_("Co-location options"),
    "underground_plan": _themes.N_("Undergrounding of the outside cable plant"),
    "backhaul_routes": _themes.N_("Fibre backhaul routes"),
    "wifi_hotspots": _themes.N_("Public Wi-Fi hotspots"),
    "pois": _themes.N_("Points of interest"),
    "roads": _themes.N_("Roads"),
    "demand": _themes.N_("Population demand grid"),
}
"""Display title (msgid) of each plan layer in exports (KMZ folders, QGIS)."""


def layer_title(name: str) -> str:
    """Display title of a plan layer in the current language."""
    msg = LAYER_TITLES.get(name)
    return _(msg) if msg else name


_LAYER_STYLES_SQL = """
CREATE TABLE IF NOT EXISTS layer_styles (
  id INTEGER PRIMARY KEY AUTOINCREMENT, f_table_catalog TEXT(256), f_table_schema TEXT(256),
  f_table_name TEXT(256), f_geometry_column TEXT(256), styleName TEXT(30), styleQML TEXT,
  styleSLD TEXT, useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30),
  update_time DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
)"""


def add_layer_styles(gpkg: str | Path, layers: Mapping[str, gpd.GeoDataFrame]) -> int:
    """Store a default QML style per layer in ``gpkg``'s ``layer_styles`` table.

    Returns the number of styles written.
    """
    con = sqlite3.connect(str(gpkg))
    try:
        geom_cols = dict(
            con.execute("SELECT table_name, column_name FROM gpkg_geometry_columns").fetchall()
        )
        con.execute(_LAYER_STYLES_SQL)
        con.execute("DELETE FROM layer_styles")
        n = 0
        for name, gdf in layers.items():
            if name not in geom_cols:
                continue
            con.execute(
                "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, "
                "f_geometry_column, styleName, styleQML, styleSLD, useAsDefault, description, "
                "owner, ui) VALUES ('', '', ?, ?, ?, ?, '', 1, ?, 'towerplan', '')",
                (name, geom_cols[name], name, qml(name, gdf, layers), layer_title(name)),
            )
            n += 1
        con.execute(
            "INSERT OR REPLACE INTO gpkg_contents (table_name, data_type, identifier, "
            "description, last_change) VALUES ('layer_styles', 'attributes', 'layer_styles', "
            "'QGIS layer styles', strftime('%Y-%m-%dT%H:%M:%fZ','now'))"
        )
        con.commit()
    finally:
        con.close()
    return n
