"""Styled KMZ of a plan for Google Earth (private).

One ``towerplan.kmz`` (a zip with ``doc.kml`` and the icons in ``files/``)
with a folder per layer, titled in the plan's language: sites as icons whose
shape and colour follow the theme registry (existing, new dedicated, new
shared, Wi-Fi), coloured polygons and lines, coverage gaps named by stage and
operator ("... before the plan - Viettel" / "... after the plan - Viettel"),
and each feature's attributes (translated labels) in its balloon.  KML is
defined in WGS 84 (OGC KML 2.2), so only the ``wgs84`` target gets a KMZ.
"""

from __future__ import annotations

import html
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import simplekml

from towerplan._i18n import _
from towerplan.outputs import _qgis, _themes

_NAME_FIELDS = ("site_id", "hotspot_id", "name", "district", "operator", "cand_id")
_MAX_FIELDS = 14


def _kml_color(hex_color: str, alpha: int = 255) -> str:
    h = hex_color.lstrip("#")
    return f"{alpha:02x}{h[4:6]}{h[2:4]}{h[0:2]}"


def _icon(folder: Path, sym: _themes.Symbol, fill: str) -> str:
    """A 32 px PNG of the symbol's shape; returns its name inside the KMZ."""
    from PIL import Image, ImageDraw

    name = f"{sym.shape}_{fill.lstrip('#')}.png"
    path = folder / name
    if not path.exists():
        img = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
        d = ImageDraw.Draw(img)
        box = [(6, 6), (26, 26)]
        poly = {
            "square": [(6, 6), (26, 6), (26, 26), (6, 26)],
            "diamond": [(16, 3), (29, 16), (16, 29), (3, 16)],
            "triangle": [(16, 3), (29, 27), (3, 27)],
        }.get(sym.shape)
        if poly is None:
            d.ellipse(box, fill=fill, outline=sym.edge, width=2)
        else:
            d.polygon(poly, fill=fill, outline=sym.edge, width=2)
        img.save(path)
    return name


def _describe(row: pd.Series, fields: list[str]) -> str:
    cells = []
    for f in fields:
        v = row[f]
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            continue
        text = _themes.value_label(v) if isinstance(v, str) else str(v)
        cells.append(
            f"<tr><th>{html.escape(_themes.column_label(f))}</th><td>{html.escape(text)}</td></tr>"
        )
    return "<table>" + "".join(cells) + "</table>"


def _add_geometry(container: Any, geom: Any, name: str) -> list[Any]:
    """The placemark of one feature (Multi* geometries as one KML MultiGeometry)."""
    parts = shapely.get_parts(geom)
    if len(parts) > 1:
        multi = container.newmultigeometry(name=name)
        for part in parts:
            _add_geometry(multi, part, name)
        return [multi]
    out = []
    for part in parts:
        if part.geom_type == "Point":
            out.append(container.newpoint(name=name, coords=[part.coords[0][:2]]))
        elif part.geom_type in ("LineString", "LinearRing"):
            out.append(container.newlinestring(name=name, coords=[c[:2] for c in part.coords]))
        elif part.geom_type == "Polygon":
            out.append(
                container.newpolygon(
                    name=name,
                    outerboundaryis=[c[:2] for c in part.exterior.coords],
                    innerboundaryis=[[c[:2] for c in r.coords] for r in part.interiors],
                )
            )
    return out


def _style_for(
    layer: str,
    row: pd.Series,
    kind: str,
    ops: Mapping[str, str],
    icons: Path,
    kml: simplekml.Kml,
    cache: dict[tuple[str, str], simplekml.Style],
) -> simplekml.Style:
    if kind == "point":
        role = {"existing_sites": "existing", "wifi_hotspots": "wifi", "pois": "poi"}.get(layer)
        if layer == "proposed_sites":
            role = str(row.get("site_type", "dedicated"))
        sym = _themes.SITE_SYMBOLS.get(role or "", _themes.Symbol("", "#777777"))
        key = (sym.shape, sym.fill)
    elif layer == "coverage_gaps":
        op = str(row.get("operator", ""))
        key = ("gap-" + str(row.get("stage", "after")), ops.get(op, "#D55E00"))
    elif layer == "sharing_candidates":
        key = ("line", ops.get(str(row.get("host_operator", "")), "#6a3d9a"))
    elif layer == "districts":
        key = ("district", "#555555")
    elif layer == "roads":
        key = (
            "road",
            _themes.ROAD_STYLES.get(str(row.get("road_class", "")), _themes.ROAD_OTHER)[0],
        )
    else:
        key = (kind, "#E69F00" if kind == "polygon" else "#333333")
    if key in cache:
        return cache[key]
    st = simplekml.Style()
    if kind == "point":
        st.iconstyle.icon.href = "files/" + _icon(icons, sym, sym.fill)
        kml.addfile(str(icons / _icon(icons, sym, sym.fill)))
        st.iconstyle.scale = 0.6
        st.labelstyle.scale = 0.0
    elif key[0] == "district":
        st.polystyle.fill = 0
        st.linestyle.color = _kml_color(key[1])
        st.linestyle.width = 2
    elif key[0].startswith("gap-"):
        before = key[0] == "gap-before"
        st.polystyle.color = _kml_color(key[1], 60 if before else 150)
        st.linestyle.color = _kml_color(key[1])
        st.linestyle.width = 1 if before else 2
    else:
        st.linestyle.color = _kml_color(key[1])
        st.linestyle.width = 2
        st.polystyle.color = _kml_color(key[1], 110)
    cache[key] = st
    return st


def _name(layer: str, row: pd.Series) -> str:
    if layer == "coverage_gaps":
        return _("Coverage gap {stage} - {operator}").format(
            stage=_themes.value_label(str(row.get("stage", ""))), operator=row.get("operator", "")
        )
    f = next((c for c in _NAME_FIELDS if c in row.index and pd.notna(row[c])), None)
    return str(row[f]) if f else _qgis.layer_title(layer)


def write_kmz(layers: Mapping[str, gpd.GeoDataFrame], path: Path, title: str = "") -> Path:
    """Write every layer (EPSG:4326) to one styled KMZ at ``path``."""
    kml = simplekml.Kml(name=title or "towerplan")
    ops = _themes.operator_colors(layers)
    cache: dict[tuple[str, str], simplekml.Style] = {}
    with tempfile.TemporaryDirectory(prefix="towerplan-kmz-") as tmp:
        icons = Path(tmp)
        for layer, gdf in layers.items():
            folder = kml.newfolder(name=_qgis.layer_title(layer))
            geom = gdf.geometry.name
            fields = [c for c in gdf.columns if c != geom][:_MAX_FIELDS]
            for _i, row in gdf.iterrows():
                g = row[geom]
                if g is None or g.is_empty:
                    continue
                kind = {
                    "Point": "point",
                    "MultiPoint": "point",
                    "LineString": "line",
                    "MultiLineString": "line",
                }.get(g.geom_type, "polygon")
                style = _style_for(layer, row, kind, ops, icons, kml, cache)
                for item in _add_geometry(folder, g, _name(layer, row)):
                    item.style = style
                    item.description = _describe(row, fields)
        path.parent.mkdir(parents=True, exist_ok=True)
        kml.savekmz(str(path), format=False)
    return path
