"""Vector exports of a plan: GeoPackage, GeoJSON, KML, Shapefile, CSV; WGS84 and VN-2000.

Coordinate reference systems (``crs_targets``)
------------------------------------------------
``wgs84``
    EPSG:4326, longitude/latitude degrees.
``vn2000_utm``
    VN-2000 / UTM zone 48N, EPSG:3405 (``ExportSettings.vn2000_utm_epsg``;
    EPSG:3406 is zone 49N for provinces east of 108°E).
``vn2000_tm3``
    The provincial VN-2000 TM-3 zone of Circular 973/2001/TT-TCĐC: transverse
    Mercator on the VN-2000 datum with the province's central meridian
    (``ExportSettings.vn2000_central_meridian``; 105°00′ for Cần Thơ),
    k0 = 0.9999, false easting 500 000 m, false northing 0.  When EPSG has
    that zone (e.g. EPSG:5897 "VN-2000 / TM-3 zone 482" for 105°00′,
    EPSG:9205-9218 for the other provincial meridians) its EPSG code is used;
    otherwise an equivalent CRS is built on the EPSG:4756 VN-2000 datum.

Datum transformation
--------------------
WGS 84 <-> VN-2000 uses the 7-parameter Helmert transformation EPSG:6960
("VN-2000 to WGS 84 (2)", coordinate-frame rotation): dX = -191.90441429 m,
dY = -39.30318279 m, dZ = -111.45032835 m, rX = -0.00928836″,
rY = 0.01975479″, rZ = -0.00427372″, dS = 0.252906278 ppm - the parameters
published with Decision 05/2007/QĐ-BTNMT.  (PROJ's unprompted choice is
EPSG:5194, a Mekong-delta academic set; the two differ by about 0.8 m.)
The transformation is forced by binding the VN-2000 CRS to WGS 84 with
EPSG:6960; the files are labelled with the plain EPSG CRS.

Formats
-------
``gpkg`` one GeoPackage per CRS with every layer and a QGIS ``layer_styles``
table (layers open styled); ``geojson`` one file per layer (VN-2000 files
carry a legacy ``crs`` member: RFC 7946 readers expect WGS84 and should use
the ``wgs84`` folder); ``kml`` one styled ``towerplan.kmz`` (icons by site
type, coloured polygons, gaps named by stage and operator), WGS84 only,
because KML is defined in WGS84 (OGC KML 2.2) - other targets are skipped
with a log line; ``shp`` with a UTF-8 ``.cpg`` so Vietnamese names survive,
a QGIS ``.qml`` style and a ``<layer>.fields.csv`` mapping full column names
to unique, readable 10-character dBase names (``fibre_km_2020`` ->
``fibkm2020``); ``csv`` (UTF-8 with BOM for spreadsheets) with ``lon``/``lat``
and, in projected targets, ``X_northing_m`` / ``Y_easting_m`` (X = northing,
Y = easting as in Vietnamese survey tables; representative point for
lines/polygons).  Labels, folder names and the README are in the plan's
language (gettext).
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
from pyproj import CRS
from pyproj.crs import BoundCRS, CoordinateOperation, ProjectedCRS
from pyproj.crs.coordinate_operation import TransverseMercatorConversion
from pyproj.database import query_crs_info

from towerplan._i18n import _, use_language
from towerplan.errors import N_, CRSError, DataFileError, ParameterError
from towerplan.outputs import _qgis, _themes
from towerplan.scenario import ExportSettings

logger = logging.getLogger(__name__)

__all__ = [
    "CRS_TARGETS",
    "FORMATS",
    "VN2000_TO_WGS84",
    "export_from_gpkg",
    "export_layers",
    "reproject",
    "target_crs",
    "vn2000_tm3_crs",
    "write_gpkg",
]

FORMATS = ("gpkg", "geojson", "kml", "shp", "csv")
CRS_TARGETS = ("wgs84", "vn2000_utm", "vn2000_tm3")
CSV_X = "X_northing_m"
CSV_Y = "Y_easting_m"
"""Projected CSV coordinate columns: X = northing, Y = easting (Vietnamese survey tables)."""
VN2000_TO_WGS84 = "EPSG:6960"
"""Datum transformation VN-2000 -> WGS 84 used for every VN-2000 export."""

_VN2000_DATUM = "Vietnam 2000"
_VN2000_GEOG = 4756
_TM3_K = 0.9999
_TM3_FE = 500000.0
_EXCLUDE_BY_DEFAULT = ("demand",)
_EXT = {"geojson": "geojson", "shp": "shp", "csv": "csv"}


# --------------------------------------------------------------------------- CRS


def _dms(deg: float) -> str:
    d = int(np.floor(deg + 1e-12))
    m = round((deg - d) * 60.0, 4)
    return f"{d}-{m:02g}" if not float(m).is_integer() else f"{d}-{int(m):02d}"


@lru_cache(maxsize=32)
def vn2000_tm3_crs(central_meridian: float) -> CRS:
    """VN-2000 TM-3 provincial CRS for a central meridian (Circular 973/2001/TT-TCĐC).

    Parameters
    ----------
    central_meridian : float
        Longitude of the central meridian in decimal degrees (105.0 for
        105°00′, 105.75 for 105°45′).

    Returns
    -------
    pyproj.CRS
        The EPSG CRS when EPSG defines a VN-2000 TM-3 zone with this meridian
        (k0 0.9999, FE 500 000, FN 0), else an equivalent CRS on the EPSG:4756
        VN-2000 datum named ``VN-2000 / TM-3 <d>-<mm> (towerplan)``.

    Raises
    ------
    ParameterError
        A meridian outside 100-112 °E (no Vietnamese province).
    """
    cm = float(central_meridian)
    if not 100.0 <= cm <= 112.0:
        raise ParameterError(
            msgid=N_(
                "export.vn2000_central_meridian = {cm}: not a Vietnamese TM-3 meridian "
                "(100-112 °E); give the province's meridian in decimal degrees, e.g. 105.0 "
                "for 105°00′ or 105.75 for 105°45′"
            ),
            cm=cm,
        )
    for info in sorted(query_crs_info(auth_name="EPSG"), key=lambda i: int(i.code)):
        if not info.name.startswith("VN-2000 / TM-3"):
            continue
        crs = CRS.from_epsg(int(info.code))
        if _is_tm3(crs, cm):
            logger.debug("VN-2000 TM-3 %s: EPSG:%s (%s)", cm, info.code, info.name)
            return crs
    return _tm3_custom(cm)


def _tm3_custom(cm: float) -> CRS:
    """TM-3 CRS on the VN-2000 datum built from its parameters (no EPSG lookup)."""
    conv = TransverseMercatorConversion(
        latitude_natural_origin=0.0,
        longitude_natural_origin=cm,
        false_easting=_TM3_FE,
        false_northing=0.0,
        scale_factor_natural_origin=_TM3_K,
    )
    return ProjectedCRS(
        conversion=conv,
        geodetic_crs=CRS.from_epsg(_VN2000_GEOG),
        name=f"VN-2000 / TM-3 {_dms(cm)} (towerplan)",
    )


def _is_tm3(crs: CRS, cm: float) -> bool:
    op = crs.coordinate_operation
    if op is None or crs.datum is None or crs.datum.name != _VN2000_DATUM:
        return False
    params = {p.name: float(p.value) for p in op.params if isinstance(p.value, int | float)}
    return (
        "Transverse Mercator" in op.method_name
        and abs(params.get("Longitude of natural origin", np.nan) - cm) < 1e-9
        and abs(params.get("Latitude of natural origin", np.nan)) < 1e-12
        and abs(params.get("Scale factor at natural origin", np.nan) - _TM3_K) < 1e-12
        and abs(params.get("False easting", np.nan) - _TM3_FE) < 1e-6
        and abs(params.get("False northing", np.nan)) < 1e-6
    )


def target_crs(target: str, settings: ExportSettings | None = None) -> CRS:
    """CRS of an export target name (``wgs84``, ``vn2000_utm``, ``vn2000_tm3``).

    Raises
    ------
    ParameterError
        Unknown target, or a ``vn2000_utm_epsg`` that is not VN-2000.
    """
    s = settings or ExportSettings()
    if target == "wgs84":
        return CRS.from_epsg(4326)
    if target == "vn2000_utm":
        crs = CRS.from_epsg(int(s.vn2000_utm_epsg))
        if not _is_vn2000(crs) or not crs.is_projected:
            raise ParameterError(
                msgid=N_(
                    "export.vn2000_utm_epsg = {epsg} ({crs_name}) is not a projected VN-2000 "
                    "CRS; use 3405 (UTM zone 48N) or 3406 (UTM zone 49N)"
                ),
                epsg=s.vn2000_utm_epsg,
                crs_name=crs.name,
            )
        return crs
    if target == "vn2000_tm3":
        return vn2000_tm3_crs(float(s.vn2000_central_meridian))
    raise ParameterError(
        msgid=N_("unknown export CRS target '{target}'; use some of {targets}"),
        target=target,
        targets=list(CRS_TARGETS),
    )


def _is_vn2000(crs: CRS) -> bool:
    return crs.datum is not None and crs.datum.name == _VN2000_DATUM


@lru_cache(maxsize=32)
def _bound(crs_wkt: str, transformation: str) -> CRS:
    crs = CRS.from_wkt(crs_wkt)
    m = re.fullmatch(r"([A-Za-z]+):(\w+)", transformation.strip())
    op = (
        CoordinateOperation.from_authority(m.group(1), m.group(2))
        if m
        else CoordinateOperation.from_user_input(transformation)
    )
    return BoundCRS(source_crs=crs, target_crs=CRS.from_epsg(4326), transformation=op)


def reproject(
    gdf: gpd.GeoDataFrame,
    crs: CRS | str | int,
    datum_transformation: str = VN2000_TO_WGS84,
    name: str = "layer",
) -> gpd.GeoDataFrame:
    """Reproject a layer, forcing ``datum_transformation`` between VN-2000 and other datums.

    Parameters
    ----------
    gdf : GeoDataFrame
        Layer with a CRS.
    crs : CRS-like
        Target CRS.
    datum_transformation : str
        VN-2000 -> WGS 84 coordinate operation (default EPSG:6960).
    name : str
        Layer name for error messages.

    Returns
    -------
    GeoDataFrame
        A new frame in ``crs`` (labelled with the plain target CRS).

    Raises
    ------
    CRSError
        ``gdf`` has no CRS.
    """
    if gdf.crs is None:
        raise CRSError(
            msgid=N_(
                "{name}: the layer has no CRS; set it before exporting (towerplan never guesses)"
            ),
            name=name,
        )
    src = CRS.from_user_input(gdf.crs)
    dst = CRS.from_user_input(crs)
    if src == dst:
        return gdf.copy()
    if _is_vn2000(src) == _is_vn2000(dst):
        return gdf.to_crs(dst)
    src_b = _bound(src.to_wkt(), datum_transformation) if _is_vn2000(src) else src
    dst_b = _bound(dst.to_wkt(), datum_transformation) if _is_vn2000(dst) else dst
    out = gdf.set_crs(src_b, allow_override=True).to_crs(dst_b)
    return out.set_crs(dst, allow_override=True)


# --------------------------------------------------------------------------- writers


def _serialisable(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Copy with list/dict/set columns as JSON text and other objects as text."""
    out = gdf.copy()
    geom = out.geometry.name
    for col in out.columns:
        if col == geom or out[col].dtype != object:
            continue
        vals = out[col].tolist()
        if any(isinstance(v, list | tuple | dict | set | np.ndarray) for v in vals):
            out[col] = [
                json.dumps(
                    list(v) if isinstance(v, set | np.ndarray | tuple) else v,
                    ensure_ascii=False,
                    default=str,
                )
                if isinstance(v, list | tuple | dict | set | np.ndarray)
                else (None if v is None else str(v))
                for v in vals
            ]
        elif any(v is not None and not isinstance(v, str) for v in vals):
            out[col] = [
                None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                for v in vals
            ]
    return out


def _nonempty(
    layers: Mapping[str, gpd.GeoDataFrame | None], exclude: Sequence[str] = ()
) -> dict[str, gpd.GeoDataFrame]:
    out = {}
    for name, gdf in layers.items():
        if name in exclude or gdf is None or len(gdf) == 0:
            continue
        if not isinstance(gdf, gpd.GeoDataFrame):
            continue
        if gdf.crs is None:
            raise CRSError(
                msgid=N_(
                    "layer '{name}': no CRS; towerplan layers must carry their CRS (the "
                    "working CRS, e.g. EPSG:32648) - set it before exporting"
                ),
                name=name,
            )
        out[name] = gdf
    return out


def write_gpkg(
    layers: Mapping[str, gpd.GeoDataFrame | None],
    path: str | Path,
    *,
    styles: bool = True,
    lang: str | None = None,
) -> Path:
    """Write every non-empty layer to one GeoPackage, in its own CRS, with QGIS styles.

    Parameters
    ----------
    layers : dict of str -> GeoDataFrame
        Layers (normally in the working CRS); ``None`` or empty ones are skipped.
    path : str or Path
        Output ``.gpkg`` (replaced if it exists).
    styles : bool
        Store a default QGIS style per layer in the ``layer_styles`` table.
    lang : str, optional
        Language of the style labels (default the current language).

    Returns
    -------
    Path
        ``path``.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.exists():
        p.unlink()
    todo = _nonempty(layers)
    # no fsync after every statement: the file is complete when this function returns
    pyogrio.set_gdal_config_options({"OGR_SQLITE_SYNCHRONOUS": "OFF"})
    try:
        for name, gdf in todo.items():
            _serialisable(gdf).to_file(p, layer=name, driver="GPKG", engine="pyogrio")
    finally:
        pyogrio.set_gdal_config_options({"OGR_SQLITE_SYNCHRONOUS": None})
    if styles and todo:
        with use_language(lang):
            _qgis.add_layer_styles(p, todo)
    logger.info("wrote %s (%d layers)", p, len(todo))
    return p


_ABBREV = {
    "population": "pop",
    "coverage": "cov",
    "operator": "op",
    "operators": "ops",
    "district": "dist",
    "before": "bef",
    "after": "aft",
    "tenants": "ten",
    "distance": "dst",
    "estimated": "est",
    "saving": "sav",
    "weighted": "w",
    "dedicated": "ded",
    "shared": "shr",
    "existing": "ex",
    "underground": "ug",
    "target": "tgt",
    "share": "sh",
    "length": "len",
    "height": "h",
    "mean": "mn",
    "serving": "srv",
    "radius": "rad",
    "category": "cat",
    "hotspot": "hs",
    "candidate": "cand",
    "source": "src",
    "priority": "prio",
    "method": "mth",
    "cable": "cab",
    "fibre": "fib",
    "fiber": "fib",
    "road": "rd",
    "year": "yr",
    "per": "p",
    "stage": "stg",
    "number": "n",
    "total": "tot",
    "trajectory": "traj",
    "covers": "cov",
    "received": "rx",
    "level": "lvl",
    "capacity": "cap",
    "subscribers": "sub",
    "new": "new",
}
"""Abbreviations of English words in column names for 10-character dBase field names."""


def _short_name(col: str) -> str:
    """A readable field name of at most 10 ASCII characters for ``col``."""
    ascii_name = unicodedata.normalize("NFKD", str(col)).encode("ascii", "ignore").decode()
    tokens = [t for t in re.split(r"[^A-Za-z0-9]+", ascii_name) if t] or ["field"]
    if len("_".join(tokens)) <= 10:
        return "_".join(tokens)
    tokens = [t if t.isdigit() else _ABBREV.get(t.lower(), t) for t in tokens]
    for joiner in ("_", ""):
        if len(joiner.join(tokens)) <= 10:
            return joiner.join(tokens)
    while len("".join(tokens)) > 10:
        alpha = [i for i, t in enumerate(tokens) if not t.isdigit() and len(t) > 1]
        if not alpha:
            break
        i = max(alpha, key=lambda k: len(tokens[k]))
        tokens[i] = tokens[i][:-1]
    return "".join(tokens)[-10:] if tokens[-1].isdigit() else "".join(tokens)[:10]


def _dbf_names(columns: Sequence[str]) -> dict[str, str]:
    """Unique, readable dBase field names (ASCII, <= 10 characters) for ``columns``.

    Words are abbreviated (``fibre_km_2020`` -> ``fibkm2020``, ``coverage_any_before`` ->
    ``covanybef``) keeping years and other numbers whole; a name still taken gets a
    numeric suffix.  ``<layer>.fields.csv`` beside the shapefile keeps the mapping.
    """
    used: set[str] = set()
    out = {}
    for col in columns:
        base = _short_name(str(col))
        cand = base
        k = 1
        while cand.lower() in used:
            suffix = str(k)
            cand = base[: 10 - len(suffix)] + suffix
            k += 1
        used.add(cand.lower())
        out[str(col)] = cand
    return out


def _write_shp(
    gdf: gpd.GeoDataFrame, path: Path, layer: str, all_layers: Mapping[str, gpd.GeoDataFrame]
) -> list[Path]:
    geom = gdf.geometry.name
    cols = [c for c in gdf.columns if c != geom]
    mapping = _dbf_names(cols)
    out = gdf.rename(columns=mapping)
    for c in out.columns:
        if c != geom and out[c].dtype == bool:
            out[c] = out[c].astype("int32")
    out.to_file(path, driver="ESRI Shapefile", engine="pyogrio", encoding="UTF-8")
    cpg = path.with_suffix(".cpg")
    if not cpg.exists() or "UTF-8" not in cpg.read_text(encoding="ascii", errors="replace").upper():
        cpg.write_text("UTF-8", encoding="ascii")
    fields = path.with_name(path.stem + ".fields.csv")
    pd.DataFrame(
        {
            "column": list(mapping),
            "shapefile_field": list(mapping.values()),
            "label": [_themes.column_label(c) for c in mapping],
        }
    ).to_csv(fields, index=False, encoding="utf-8")
    style = path.with_suffix(".qml")
    style.write_text(_qgis.qml(layer, gdf, all_layers, mapping), encoding="utf-8")
    return [path, fields, style]


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""Leading characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection")."""


def write_csv(df: pd.DataFrame, path: Path, **kwargs: Any) -> Path:
    """Write ``df`` as CSV with formula-leading text cells neutralised.

    Text cells starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return
    get a leading ``'`` (as OWASP recommends against CSV injection), so a
    spreadsheet shows them as text instead of running them; numbers are left as
    they are.  ``kwargs`` go to :meth:`pandas.DataFrame.to_csv` (default
    ``index=False``).
    """
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object or pd.api.types.is_string_dtype(out[c]):
            out[c] = out[c].map(
                lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_PREFIXES) else v
            )
    kwargs.setdefault("index", False)
    out.to_csv(path, **kwargs)
    return path


def _write_csv(gdf: gpd.GeoDataFrame, path: Path, projected: bool) -> Path:
    geom = gdf.geometry
    pts = geom.where(geom.geom_type == "Point", geom.representative_point())
    valid = ~(geom.isna() | geom.is_empty)
    df = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    ll = gpd.GeoSeries(pts, crs=gdf.crs)
    ll = reproject(gpd.GeoDataFrame(geometry=ll), 4326).geometry
    df["lon"] = np.where(valid, ll.x, np.nan)
    df["lat"] = np.where(valid, ll.y, np.nan)
    if projected:
        # Vietnamese survey convention: X = northing, Y = easting (named in the header)
        df[CSV_X] = np.where(valid, pts.y, np.nan)
        df[CSV_Y] = np.where(valid, pts.x, np.nan)
    if not (geom.geom_type == "Point").all():
        df["point"] = "representative point of the feature"
    return write_csv(df, path, encoding="utf-8-sig", float_format="%.12g")


def _datum_difference_m(
    layers: Mapping[str, gpd.GeoDataFrame], crs: CRS, transformation: str
) -> tuple[float, str] | None:
    """Horizontal distance (m) between ``transformation`` and PROJ's default at the data centre."""
    frames = [g for g in layers.values() if len(g)]
    if not frames or not _is_vn2000(crs):
        return None
    x0, y0, x1, y1 = np.array([g.to_crs(4326).total_bounds for g in frames[:1]])[0]
    pt = gpd.GeoDataFrame(geometry=gpd.points_from_xy([(x0 + x1) / 2], [(y0 + y1) / 2]), crs=4326)
    forced = reproject(pt, crs, transformation).geometry.iloc[0]
    default = pt.to_crs(crs).geometry.iloc[0]
    from pyproj import Transformer

    tr = Transformer.from_crs(4326, crs, always_xy=True)
    tr.transform((x0 + x1) / 2, (y0 + y1) / 2)
    return float(forced.distance(default)), str(tr.description)


def _readme(
    out: Path,
    targets: dict[str, CRS],
    formats: Sequence[str],
    transformation: str,
    layers: Mapping[str, gpd.GeoDataFrame],
) -> Path:
    lines = [
        _("towerplan vector exports"),
        "=" * 24,
        "",
        _("One folder per coordinate reference system:"),
    ]
    for t, crs in targets.items():
        code = crs.to_epsg()
        lines.append(f"- {t}/ : {crs.name}" + (f" (EPSG:{code})" if code else ""))
        if code is None:
            lines.append(f"    PROJ: {crs.to_proj4()}")
    lines += [
        "",
        _(
            "WGS 84 <-> VN-2000 datum transformation: {op} (7-parameter Helmert, "
            "parameters of Decision 05/2007/QĐ-BTNMT)."
        ).format(op=transformation),
    ]
    vn = next((c for c in targets.values() if _is_vn2000(c)), None)
    diff = _datum_difference_m(layers, vn, transformation) if vn is not None else None
    if diff is not None:
        lines.append(
            _(
                "PROJ's default operation for the same conversion ({default}) gives "
                "coordinates {d} m away at the centre of the data; every VN-2000 file "
                "here uses {op}."
            ).format(default=diff[1], d=f"{diff[0]:.2f}", op=transformation)
        )
    lines += [
        _(
            "KMZ (kml/towerplan.kmz) is written in WGS 84 only (KML is defined in WGS 84); "
            "icons and colours follow the maps."
        ),
        _("GeoJSON outside WGS 84 carries a legacy 'crs' member (RFC 7946 readers expect WGS 84)."),
        _(
            "Shapefiles are UTF-8 (.cpg) with a QGIS style (.qml) beside each; "
            "<layer>.fields.csv maps full column names to the 10-character field names."
        ),
        _("The GeoPackages carry QGIS styles in their layer_styles table."),
        _(
            "CSV files are UTF-8 with BOM; lon/lat are WGS 84 degrees; in projected folders "
            "{x} is the northing (X) and {y} the easting (Y) in metres, as in Vietnamese survey "
            "tables; lines and polygons are given by a representative point."
        ).format(x=CSV_X, y=CSV_Y),
        _(
            "Text cells that start with =, +, -, @, tab or carriage return are prefixed with ' "
            "so that spreadsheets show them as text instead of running them as formulas (OWASP, "
            "CSV injection); remove that leading ' if you need the original text."
        ),
        _("Formats: {formats}.").format(formats=", ".join(formats)),
    ]
    path = out / "README.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def export_layers(
    layers: Mapping[str, gpd.GeoDataFrame | None],
    out_dir: str | Path,
    formats: Sequence[str] = FORMATS,
    crs_targets: Sequence[str] = CRS_TARGETS,
    settings: ExportSettings | None = None,
    include_demand: bool = False,
    datum_transformation: str | None = None,
    *,
    lang: str | None = None,
    title: str = "",
) -> list[Path]:
    """Export layers to vector formats in WGS84 and VN-2000.

    Parameters
    ----------
    layers : dict of str -> GeoDataFrame
        Plan layers with a CRS (normally the working CRS); ``None``/empty skipped.
    out_dir : str or Path
        Output folder; files go to ``out_dir/<target>/<format>/<layer>.<ext>``
        and ``out_dir/<target>/towerplan_<target>.gpkg``.
    formats : sequence of str
        Some of :data:`FORMATS`.
    crs_targets : sequence of str
        Some of :data:`CRS_TARGETS`.
    settings : ExportSettings, optional
        VN-2000 UTM EPSG code and TM-3 central meridian (scenario ``export``).
    include_demand : bool
        Also export the (large) ``demand`` point layer; it is always in the
        plan's working-CRS ``towerplan.gpkg``.
    datum_transformation : str, optional
        VN-2000 -> WGS 84 operation; default the scenario's
        ``export.vn2000_datum_transformation``, else :data:`VN2000_TO_WGS84`.
    lang : str, optional
        Language of the README, KMZ folder names and QGIS category labels
        (``vi``/``en``; default the current language).
    title : str
        Document name of the KMZ.

    Returns
    -------
    list of Path
        Files written (main file of each output, field mappings, README).

    Raises
    ------
    ParameterError
        Unknown format or target.
    CRSError
        A layer without CRS.
    """
    if datum_transformation is None:
        datum_transformation = (
            settings.vn2000_datum_transformation if settings is not None else VN2000_TO_WGS84
        )
    bad_f = [f for f in formats if f not in FORMATS]
    if bad_f:
        raise ParameterError(
            msgid=N_("unknown export format(s) {bad_f}; use some of {formats}"),
            bad_f=bad_f,
            formats=list(FORMATS),
        )
    bad_t = [t for t in crs_targets if t not in CRS_TARGETS]
    if bad_t:
        raise ParameterError(
            msgid=N_("unknown export CRS target(s) {bad_t}; use some of {targets}"),
            bad_t=bad_t,
            targets=list(CRS_TARGETS),
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    todo = _nonempty(layers, () if include_demand else _EXCLUDE_BY_DEFAULT)
    targets = {t: target_crs(t, settings) for t in crs_targets}
    with use_language(lang):
        return _export(todo, out, formats, targets, datum_transformation, title)


def _export(
    todo: Mapping[str, gpd.GeoDataFrame],
    out: Path,
    formats: Sequence[str],
    targets: Mapping[str, CRS],
    datum_transformation: str,
    title: str,
) -> list[Path]:
    written: list[Path] = []
    for t, crs in targets.items():
        tdir = out / t
        tdir.mkdir(exist_ok=True)
        projected = crs.is_projected
        converted = {
            n: _serialisable(reproject(g, crs, datum_transformation, name=n))
            for n, g in todo.items()
        }
        if "gpkg" in formats:
            written.append(write_gpkg(converted, tdir / f"towerplan_{t}.gpkg"))
        for fmt in formats:
            if fmt == "gpkg":
                continue
            if fmt == "kml" and t != "wgs84":
                logger.info("kml: skipped for %s - KML is defined in WGS84 only", t)
                continue
            fdir = tdir / fmt
            fdir.mkdir(exist_ok=True)
            if fmt == "kml":
                from towerplan.outputs import _kmz

                written.append(_kmz.write_kmz(converted, fdir / "towerplan.kmz", title))
                continue
            for n, g in converted.items():
                path = fdir / f"{n}.{_EXT[fmt]}"
                if fmt == "geojson":
                    opts = {"RFC7946": "YES"} if t == "wgs84" else None
                    g.to_file(path, driver="GeoJSON", engine="pyogrio", layer_options=opts)
                    written.append(path)
                elif fmt == "shp":
                    written += _write_shp(g, path, n, converted)
                elif fmt == "csv":
                    written.append(_write_csv(g, path, projected))
        logger.info("exported %d layers to %s (%s)", len(converted), tdir, crs.name)
    written.append(_readme(out, dict(targets), formats, datum_transformation, todo))
    return written


def export_from_gpkg(
    gpkg: str | Path,
    out_dir: str | Path,
    formats: Sequence[str] = FORMATS,
    crs_targets: Sequence[str] = CRS_TARGETS,
    settings: ExportSettings | None = None,
    include_demand: bool = False,
) -> list[Path]:
    """Export every layer of a plan GeoPackage (``towerplan export --from OUT``).

    Parameters
    ----------
    gpkg : str or Path
        A ``towerplan.gpkg`` (or a plan output folder containing one).
    out_dir, formats, crs_targets, settings, include_demand
        As in :func:`export_layers`.

    Returns
    -------
    list of Path

    Raises
    ------
    DataFileError
        The GeoPackage is missing or unreadable.
    """
    p = Path(gpkg)
    if p.is_dir():
        p = p / "towerplan.gpkg"
    if not p.is_file():
        raise DataFileError(
            msgid=N_(
                "{path}: GeoPackage not found; give a plan output folder (with towerplan.gpkg) "
                "or the path of a .gpkg file"
            ),
            path=p,
        )
    try:
        names = [str(r[0]) for r in pyogrio.list_layers(p) if r[0] != "layer_styles"]
    except Exception as exc:  # pyogrio raises DataSourceError and friends
        raise DataFileError(
            msgid=N_("{path}: cannot read the GeoPackage ({problem}); is it a .gpkg file?"),
            path=p,
            problem=exc,
        ) from None
    layers: dict[str, Any] = {}
    for n in names:
        if n == "demand" and not include_demand:
            continue
        layers[n] = gpd.read_file(p, layer=n, engine="pyogrio")
    return export_layers(layers, out_dir, formats, crs_targets, settings, include_demand)
