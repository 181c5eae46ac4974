"""Reading real data: districts, population, existing sites, POIs and roads.

Every reader returns a new GeoDataFrame in the working metric CRS (default
``EPSG:32648``) with the canonical columns of ``docs/ARCHITECTURE.md``.  A CRS
is never guessed: a layer without one raises :class:`~towerplan.errors.CRSError`
unless ``source_crs`` is given.  Invalid geometries raise
:class:`~towerplan.errors.GeometryError` naming the rows, unless ``repair=True``
(scenario key ``data.repair_geometries``), which repairs them with
:func:`shapely.make_valid` and logs a warning; empty geometries always raise.

Column mappings (``columns=``) map towerplan's names (``name``, ``code``,
``type``, ``population``, ``lon``, ``lat``, ``operator``, ...) to the file's
column names, exactly like :class:`towerplan.scenario.LayerSource.columns`.

Existing sites from OpenCelliD
------------------------------
:func:`read_opencellid` reads OpenCelliD / Mozilla-Location-Service style cell
CSVs and :func:`cluster_cells_to_sites` turns cells into *structures*: cells of
**any** operator within ``eps_m`` of each other (DBSCAN, haversine metric) are
one physical site; its tenants are the distinct operators of its cells (host =
operator with most cells, ties by name), its point is the mean of its cells.
Cell positions in OpenCelliD are estimates (often tens to hundreds of metres
off), so the result is an approximation of the real site list.

Populations are taken as given: :func:`load_inputs` applies no projection to the
scenario year (the files are expected to hold the populations to plan for).
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError as _PyprojCRSError
from shapely.geometry.base import BaseGeometry

from towerplan._validate import DEFAULT_CRS, require_metric, to_working_crs
from towerplan.errors import (
    ColumnError,
    CRSError,
    DataFileError,
    DuplicateIDError,
    EmptyInputError,
    GeometryError,
    ParameterError,
    PopulationError,
    StudyAreaError,
)
from towerplan.inputs._base import PlanInputs

if TYPE_CHECKING:
    import networkx as nx

    from towerplan.scenario import LayerSource, Scenario

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_ROAD_CLASS_MAP",
    "OPENCELLID_COLUMNS",
    "OSM_HIGHWAY_CLASS",
    "VN_MCC_MNC_OPERATORS",
    "check_population_array",
    "cluster_cells_to_sites",
    "dissolve_to_districts",
    "graph_from_osm_file",
    "graph_from_place_online",
    "load_inputs",
    "read_districts",
    "read_opencellid",
    "read_pois",
    "read_population_polygons",
    "read_population_raster",
    "read_roads",
    "read_sites",
    "read_vector",
    "roads_from_graph",
]

URBAN_VALUES: tuple[str, ...] = ("quận", "quan", "urban", "thành phố", "thị xã")
RURAL_VALUES: tuple[str, ...] = ("huyện", "huyen", "rural")

VN_MCC_MNC_OPERATORS: dict[tuple[int, int], str] = {
    (452, 1): "MobiFone",
    (452, 2): "VNPT-VinaPhone",
    (452, 4): "Viettel",
    (452, 5): "Vietnamobile",
    (452, 7): "Gmobile",
}
"""Vietnamese mobile network codes (MCC 452) -> operator.

Source: ITU-T E.212 "Mobile Network Codes (MNC) for the international
identification plan for public networks and subscriptions", list annexed to
ITU Operational Bulletin (entries for Viet Nam, MCC 452); typed in as facts.
"""

OPENCELLID_COLUMNS: tuple[str, ...] = (
    "radio",
    "mcc",
    "net",
    "area",
    "cell",
    "unit",
    "lon",
    "lat",
    "range",
    "samples",
    "changeable",
    "created",
    "updated",
    "averageSignal",
)
"""Column order of OpenCelliD cell exports (``cell_towers.csv``)."""

DEFAULT_ROAD_CLASS_MAP: dict[str, str] = {
    "quốc lộ": "national",
    "quoc lo": "national",
    "ql": "national",
    "cao tốc": "national",
    "cao toc": "national",
    "tỉnh lộ": "provincial",
    "tinh lo": "provincial",
    "tl": "provincial",
    "đường tỉnh": "provincial",
    "duong tinh": "provincial",
    "huyện lộ": "local",
    "huyen lo": "local",
    "đường huyện": "local",
    "duong huyen": "local",
    "national": "national",
    "provincial": "provincial",
    "local": "local",
}
"""Road-class values (Vietnamese road categories, normalised lower case) -> class."""

OSM_HIGHWAY_CLASS: dict[str, str] = {
    "motorway": "national",
    "motorway_link": "national",
    "trunk": "national",
    "trunk_link": "national",
    "primary": "provincial",
    "primary_link": "provincial",
    "secondary": "provincial",
    "secondary_link": "provincial",
}
"""OSM ``highway`` tag -> road class; any other highway value is ``local``."""

_VECTOR_SUFFIXES = {".gpkg", ".geojson", ".json", ".shp", ".fgb", ".gml", ".kml", ".zip"}
_RASTER_SUFFIXES = {".tif", ".tiff", ".vrt", ".img", ".asc"}
_EARTH_RADIUS_M = 6_371_008.8  # IUGG mean Earth radius


# --------------------------------------------------------------------------- generic helpers


def _norm(value: Any) -> str:
    """Normalised text for matching: NFC, stripped, case-folded."""
    return unicodedata.normalize("NFC", str(value)).strip().casefold()


def _check_file(path: str | Path, name: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise DataFileError(
            f"{name}: file {p} not found; check the path (relative paths in a scenario are "
            "resolved against the scenario file's folder)"
        )
    if p.is_dir() and p.suffix.lower() != ".gdb":
        raise DataFileError(f"{name}: {p} is a folder, not a data file; give the file itself")
    return p


def _parse_crs(value: str | CRS, what: str) -> CRS:
    try:
        return CRS.from_user_input(value)
    except _PyprojCRSError:
        raise CRSError(
            f"{what}: {value!r} is not a CRS pyproj knows; give e.g. 'EPSG:4326'"
        ) from None


def _rows_text(labels: Iterable[Any], limit: int = 10) -> str:
    labels = list(labels)
    text = ", ".join(str(v) for v in labels[:limit])
    return text + (f" ... ({len(labels)} in all)" if len(labels) > limit else "")


def _col(
    df: pd.DataFrame,
    columns: Mapping[str, str] | None,
    key: str,
    defaults: Sequence[str],
    name: str,
    required: bool,
) -> str | None:
    """The file column for towerplan's ``key``: the mapped one or the first default present.

    Raises :class:`ColumnError` when an explicitly mapped column is missing, or when
    a required column is neither mapped nor present under a default name.
    """
    available = [str(c) for c in df.columns if c != "geometry"]
    if columns and key in columns:
        col = columns[key]
        if col not in df.columns:
            raise ColumnError(
                f"{name}: column '{col}' (mapped to '{key}') not found; the file has columns "
                f"{available}; fix columns={{'{key}': ...}}"
            )
        return col
    for cand in defaults:
        if cand in df.columns:
            return cand
    if required:
        raise ColumnError(
            f"{name}: required column '{key}' not found (looked for {list(defaults)}); the file "
            f"has columns {available}; map it with columns={{'{key}': '<column>'}}"
        )
    return None


def _numeric(series: pd.Series, name: str, col: str) -> pd.Series:
    out = pd.to_numeric(series, errors="coerce")
    bad = out.isna() & series.notna() & (series.astype(str).str.strip() != "")
    if bad.any():
        raise ColumnError(
            f"{name}: column '{col}' has non-numeric values in rows {_rows_text(series.index[bad])} "
            f"(e.g. {series[bad].iloc[0]!r}); fix the values or map another column"
        )
    return out.astype(float)


def _check_population(values: pd.Series, name: str, col: str) -> pd.Series:
    pop = pd.to_numeric(values, errors="coerce").astype(float)
    bad = ~np.isfinite(pop.to_numpy()) | (pop.to_numpy() < 0)
    if bad.any():
        raise PopulationError(
            f"{name}: column '{col}' has missing, NaN or negative population in rows "
            f"{_rows_text(pop.index[bad])}; give a number >= 0 for every feature"
        )
    return pop


def _repair(gdf: gpd.GeoDataFrame, name: str, repair: bool = False) -> gpd.GeoDataFrame:
    """Raise on null/empty geometries; invalid ones raise, or are repaired with make_valid."""
    geom = gdf.geometry
    empty = geom.isna() | geom.is_empty
    if empty.any():
        raise GeometryError(
            f"{name}: {int(empty.sum())} feature(s) have no geometry (rows "
            f"{_rows_text(gdf.index[empty])}); drop them or fix the file"
        )
    invalid = ~geom.is_valid
    if not invalid.any():
        return gdf
    if not repair:
        reason = shapely.is_valid_reason(geom[invalid].iloc[0])
        raise GeometryError(
            f"{name}: {int(invalid.sum())} invalid geometr{'y' if invalid.sum() == 1 else 'ies'} "
            f"(rows {_rows_text(gdf.index[invalid])}; first: {reason}); fix them in a GIS, or set "
            "data.repair_geometries: true in the scenario to repair them with shapely.make_valid"
        )
    out = gdf.copy()
    fixed = []
    for g in geom[invalid]:
        r = shapely.make_valid(g)
        if g.geom_type in ("Polygon", "MultiPolygon") and r.geom_type not in (
            "Polygon",
            "MultiPolygon",
        ):
            parts = [p for p in shapely.get_parts(r) if p.geom_type in ("Polygon", "MultiPolygon")]
            r = shapely.union_all(parts) if parts else shapely.Polygon()
        fixed.append(r)
    fixed_s = gpd.GeoSeries(fixed, index=geom.index[invalid], crs=gdf.crs)
    still = fixed_s.is_empty | ~fixed_s.is_valid
    if still.any():
        raise GeometryError(
            f"{name}: invalid geometries in rows {_rows_text(fixed_s.index[still])} could not be "
            "repaired (shapely.make_valid left them empty or invalid); fix them in a GIS"
        )
    out.loc[invalid, out.geometry.name] = fixed_s
    logger.warning(
        "%s: repaired %d invalid geometr%s with shapely.make_valid (rows %s)",
        name,
        int(invalid.sum()),
        "y" if invalid.sum() == 1 else "ies",
        _rows_text(gdf.index[invalid]),
    )
    return out


def _require_geom(gdf: gpd.GeoDataFrame, kinds: set[str], name: str, what: str) -> None:
    types = set(gdf.geom_type.unique())
    if not types <= kinds:
        raise GeometryError(
            f"{name}: expected {what} geometries, found {sorted(types - kinds)}; give a {what} layer"
        )


def _study_geometry(study_area: Any, crs: CRS) -> BaseGeometry | None:
    if study_area is None:
        return None
    if isinstance(study_area, gpd.GeoDataFrame | gpd.GeoSeries):
        sa = to_working_crs(study_area, crs, "study area")
        return shapely.union_all(sa.geometry.to_numpy())
    if isinstance(study_area, BaseGeometry):
        return study_area
    raise ParameterError(
        f"study_area must be a GeoDataFrame, GeoSeries or shapely geometry, got {type(study_area)}"
    )


# --------------------------------------------------------------------------- vector


def read_vector(
    path: str | Path,
    layer: str | None = None,
    name: str | None = None,
    crs: str | CRS | None = DEFAULT_CRS,
    source_crs: str | CRS | None = None,
    repair: bool = False,
) -> gpd.GeoDataFrame:
    """Read a vector layer (GeoPackage, GeoJSON, Shapefile, ...) into the working CRS.

    Parameters
    ----------
    path : str or Path
        File to read (anything GDAL/pyogrio reads).
    layer : str, optional
        Layer name for multi-layer files (GeoPackage).
    name : str, optional
        Name of the input used in messages (default: the path).
    crs : str or pyproj.CRS or None
        Working metric CRS to reproject to (None: keep the file's CRS).
    source_crs : str or pyproj.CRS, optional
        CRS to assume when the file has none.  Without it such a file raises.
    repair : bool
        Repair invalid geometries with ``shapely.make_valid`` (logged) instead
        of raising :class:`GeometryError` (scenario key ``data.repair_geometries``).

    Returns
    -------
    GeoDataFrame
        Valid, non-empty geometries in ``crs``; attribute columns as in the file.

    Raises
    ------
    DataFileError
        Missing or unreadable file, or unknown layer.
    CRSError
        The file has no CRS and ``source_crs`` is not given.
    EmptyInputError
        The layer has no features.
    GeometryError
        Empty geometries, or invalid ones that ``shapely.make_valid`` cannot repair.
    """
    p = _check_file(path, name or str(path))
    label = name or str(p)
    import pyogrio

    try:
        gdf = pyogrio.read_dataframe(p, layer=layer)
    except Exception as exc:  # pyogrio.errors.DataSourceError, DataLayerError, ...
        hint = ""
        if layer is not None:
            try:
                hint = f"; layers in the file: {[lyr[0] for lyr in pyogrio.list_layers(p)]}"
            except Exception:
                hint = ""
        raise DataFileError(
            f"{label}: cannot read {p} as a vector file ({type(exc).__name__}: {exc}){hint}; "
            "give a GeoPackage, GeoJSON or Shapefile"
        ) from None
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry is None:
        raise DataFileError(f"{label}: {p} has no geometry column; give a spatial layer")
    if len(gdf) == 0:
        raise EmptyInputError(f"{label}: the layer has no features; give a layer with at least one")
    if gdf.crs is None:
        if source_crs is None:
            raise CRSError(
                f"{label}: {p} has no CRS (no .prj / CRS metadata); add one to the file or give "
                "source_crs= (scenario: 'crs:' of the layer) - towerplan never guesses a CRS"
            )
        gdf = gdf.set_crs(_parse_crs(source_crs, f"{label}: source_crs"))
    gdf = _repair(gdf, label, repair)
    if crs is None:
        return gdf
    return to_working_crs(gdf, _parse_crs(crs, "working crs"), label)


# --------------------------------------------------------------------------- districts


def _split_type_prefix(
    name: str, values: Sequence[str]
) -> tuple[str | None, str]:  # (matched value, rest)
    text = unicodedata.normalize("NFC", str(name)).strip()
    for v in sorted((_norm(x) for x in values), key=len, reverse=True):
        head = text[: len(v)]
        if head.casefold() == v and (len(text) == len(v) or text[len(v)] == " "):
            return v, text[len(v) :].strip()
    return None, text


def _district_types(
    df: pd.DataFrame,
    names: pd.Series,
    type_col: str | None,
    urban_values: Sequence[str],
    rural_values: Sequence[str],
    name: str,
    strip_type_prefix: bool,
) -> tuple[pd.Series, pd.Series]:
    """Return (district_type, clean name) per row."""
    urban = {_norm(v) for v in urban_values}
    rural = {_norm(v) for v in rural_values}
    clean = names.map(lambda s: unicodedata.normalize("NFC", str(s)).strip())
    if type_col is not None:
        raw = df[type_col]
        norm = raw.map(_norm)
        out = pd.Series(
            np.where(norm.isin(urban), "urban", np.where(norm.isin(rural), "rural", "")),
            index=df.index,
        )
        bad = out == ""
        if bad.any():
            vals = sorted({str(v) for v in raw[bad]})
            raise ColumnError(
                f"{name}: column '{type_col}' has unknown district type value(s) {vals}; allowed "
                f"values: urban {sorted(urban)}, rural {sorted(rural)}; map them with "
                "urban_values= / rural_values= (scenario: data.urban_type_values / "
                "rural_type_values)"
            )
        if strip_type_prefix:
            clean = clean.map(lambda s: _split_type_prefix(s, [*urban, *rural])[1] or s)
        return out, clean
    types: list[str] = []
    rest: list[str] = []
    for s in clean:
        v, r = _split_type_prefix(s, [*urban, *rural])
        types.append("" if v is None else ("urban" if v in urban else "rural"))
        rest.append(r if (v is not None and strip_type_prefix and r) else s)
    inferred = pd.Series(types, index=df.index, dtype=object)
    bad = inferred == ""
    if bad.any():
        raise ColumnError(
            f"{name}: no district type column and the type cannot be read from the names "
            f"{sorted(set(clean[bad]))[:10]} (no prefix among urban {sorted(urban)} / rural "
            f"{sorted(rural)}); map a type column with columns={{'type': '<column>'}}"
        )
    return inferred, pd.Series(rest, index=df.index)


def dissolve_to_districts(
    communes: gpd.GeoDataFrame,
    by: str,
    population: str | None = "population",
    code: str | None = None,
    type_column: str | None = None,
    urban_values: Sequence[str] = URBAN_VALUES,
    rural_values: Sequence[str] = RURAL_VALUES,
    strip_type_prefix: bool = True,
    name: str = "communes",
) -> gpd.GeoDataFrame:
    """Dissolve communes (wards) into districts with the contract columns.

    Parameters
    ----------
    communes : GeoDataFrame
        Commune polygons in a metric CRS.
    by : str
        Column with each commune's district name (e.g. ``district_vn``).
    population : str or None
        Population column summed per district (None: no ``population`` column).
    code : str, optional
        Column with the district code (first value per district); default:
        ``D01``, ``D02``... in order of first appearance.
    type_column : str, optional
        Column with the district type (e.g. ``quận`` / ``huyện``); default: read
        from a type prefix of the district name (``Quận Ninh Kiều`` -> urban).
    urban_values, rural_values : sequence of str
        Type values (or name prefixes) meaning urban / rural (case-insensitive).
    strip_type_prefix : bool
        Drop a type prefix from the name (``Quận Ninh Kiều`` -> ``Ninh Kiều``).
    name : str
        Name of the input used in messages.

    Returns
    -------
    GeoDataFrame
        One row per district, in order of first appearance: ``district``,
        ``code``, ``district_type``, ``population`` (if given), ``area_km2``,
        ``n_units`` (communes dissolved).
    """
    crs = require_metric(communes, name)
    if len(communes) == 0:
        raise EmptyInputError(f"{name}: the layer is empty; give at least one commune")
    for col in (by, population, code, type_column):
        if col is not None and col not in communes.columns:
            raise ColumnError(
                f"{name}: column '{col}' not found; the layer has columns "
                f"{[c for c in communes.columns if c != 'geometry']}"
            )
    df = communes.copy()
    if df[by].isna().any():
        raise ColumnError(
            f"{name}: column '{by}' is empty in rows {_rows_text(df.index[df[by].isna()])}; every "
            "commune needs its district"
        )
    dtype, clean = _district_types(
        df, df[by], type_column, urban_values, rural_values, name, strip_type_prefix
    )
    df["_district"] = clean
    df["_type"] = dtype
    if population is not None:
        df["_pop"] = _check_population(df[population], name, population)
    mixed = df.groupby("_district", sort=False)["_type"].nunique()
    if (mixed > 1).any():
        raise ColumnError(
            f"{name}: district(s) {list(mixed.index[mixed > 1])} have communes of different "
            "types; give one type per district"
        )
    order = list(dict.fromkeys(df["_district"]))
    rows = []
    for i, dname in enumerate(order):
        part = df[df["_district"] == dname]
        row: dict[str, Any] = {"district": dname}
        if code is not None:
            codes = part[code].dropna().astype(str).unique()
            if len(codes) > 1:
                logger.warning(
                    "%s: district %s has several codes %s; using the first", name, dname, codes
                )
            row["code"] = codes[0] if len(codes) else f"D{i + 1:02d}"
        else:
            row["code"] = f"D{i + 1:02d}"
        row["district_type"] = part["_type"].iloc[0]
        if population is not None:
            row["population"] = float(part["_pop"].sum())
        row["n_units"] = len(part)
        row["geometry"] = shapely.union_all(part.geometry.to_numpy())
        rows.append(row)
    out = gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)
    out["area_km2"] = out.geometry.area / 1e6
    cols = ["district", "code", "district_type"]
    cols += ["population"] if population is not None else []
    cols += ["area_km2", "n_units", "geometry"]
    logger.info("%s: dissolved %d units into %d districts", name, len(df), len(out))
    return out[cols]


def read_districts(
    path: str | Path,
    columns: Mapping[str, str] | None = None,
    layer: str | None = None,
    crs: str | CRS = DEFAULT_CRS,
    urban_values: Sequence[str] = URBAN_VALUES,
    rural_values: Sequence[str] = RURAL_VALUES,
    population_column: str | None = None,
    source_crs: str | CRS | None = None,
    strip_type_prefix: bool = True,
    dissolve: bool | None = None,
    repair: bool = False,
) -> gpd.GeoDataFrame:
    """Read district polygons (or communes to dissolve) with the contract columns.

    Parameters
    ----------
    path : str or Path
        Vector file of districts, or of communes whose ``name`` column gives
        the district (names repeat -> communes are dissolved).
    columns : mapping, optional
        ``{'name': .., 'code': .., 'type': .., 'population': ..}`` file columns.
        ``name`` defaults to a ``district`` or ``name`` column; without ``type``
        the type is read from a name prefix (``Quận ...`` / ``Huyện ...``).
    layer : str, optional
        Layer of a multi-layer file.
    crs : str or pyproj.CRS
        Working metric CRS.
    urban_values, rural_values : sequence of str
        Type values meaning urban / rural.
    population_column : str, optional
        Population column (overrides ``columns['population']``).
    source_crs : str, optional
        CRS to assume when the file has none.
    strip_type_prefix : bool
        Drop a type prefix from district names.
    dissolve : bool, optional
        Force (True) or forbid (False) dissolving; default: dissolve when names repeat.

    Returns
    -------
    GeoDataFrame
        ``district``, ``code``, ``district_type``, ``population`` (when known),
        ``area_km2``, ``n_units``, geometry in ``crs``.

    Raises
    ------
    ColumnError
        Missing column, or unknown type value (message lists the allowed values).
    PopulationError
        NaN or negative population.
    """
    label = f"districts file {path}"
    gdf = read_vector(path, layer=layer, name=label, crs=crs, source_crs=source_crs, repair=repair)
    _require_geom(gdf, {"Polygon", "MultiPolygon"}, label, "polygon")
    name_col = _col(gdf, columns, "name", ("district", "name"), label, required=True)
    assert name_col is not None
    code_col = _col(gdf, columns, "code", ("code",), label, required=False)
    type_col = _col(gdf, columns, "type", ("district_type", "type"), label, required=False)
    pop_col = population_column or _col(gdf, columns, "population", ("population",), label, False)
    if pop_col is not None and pop_col not in gdf.columns:
        raise ColumnError(
            f"{label}: population column '{pop_col}' not found; the file has columns "
            f"{[c for c in gdf.columns if c != 'geometry']}"
        )
    repeats = bool(gdf[name_col].map(_norm).duplicated().any())
    if dissolve is False and repeats:
        dup = gdf[name_col][gdf[name_col].map(_norm).duplicated()].unique()
        raise DuplicateIDError(
            f"{label}: district names repeat in column '{name_col}': {list(dup)[:10]}; give "
            "unique names or allow dissolving communes into districts"
        )
    if repeats:
        logger.info("%s: names in '%s' repeat; dissolving units into districts", label, name_col)
    return dissolve_to_districts(
        gdf,
        by=name_col,
        population=pop_col,
        code=code_col,
        type_column=type_col,
        urban_values=urban_values,
        rural_values=rural_values,
        strip_type_prefix=strip_type_prefix,
        name=label,
    )


# --------------------------------------------------------------------------- population


def read_population_polygons(
    path: str | Path,
    column: str = "population",
    layer: str | None = None,
    crs: str | CRS = DEFAULT_CRS,
    source_crs: str | CRS | None = None,
    keep_columns: Sequence[str] = (),
    repair: bool = False,
) -> gpd.GeoDataFrame:
    """Read census polygons with a population count.

    Parameters
    ----------
    path : str or Path
        Vector file of polygons (communes, census blocks).
    column : str
        Population column of the file.
    layer, crs, source_crs
        As in :func:`read_vector`.
    keep_columns : sequence of str
        Other file columns to keep.

    Returns
    -------
    GeoDataFrame
        ``population`` (float >= 0), kept columns, geometry in ``crs``.

    Raises
    ------
    PopulationError
        NaN, missing or negative population (message names the rows).
    """
    label = f"population file {path}"
    gdf = read_vector(path, layer=layer, name=label, crs=crs, source_crs=source_crs, repair=repair)
    _require_geom(gdf, {"Polygon", "MultiPolygon"}, label, "polygon")
    _col(gdf, {"population": column}, "population", (), label, required=True)
    for c in keep_columns:
        _col(gdf, {c: c}, c, (), label, required=True)
    out = gpd.GeoDataFrame(
        {c: gdf[c] for c in keep_columns if c != "population"},
        geometry=gdf.geometry,
        crs=gdf.crs,
        index=gdf.index,
    )
    out.insert(0, "population", _check_population(gdf[column], label, column))
    logger.info("%s: %d polygons, population %.0f", label, len(out), out["population"].sum())
    return out


def check_population_array(data: np.ndarray, label: str) -> None:
    """Raise :class:`PopulationError` on NaN or negative counts (nodata already filled)."""
    bad = ~np.isfinite(data) | (data < 0)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise PopulationError(
            f"{label}: {int(bad.sum())} pixel(s) are NaN or negative (first at row {r}, col {c}) "
            "and not marked nodata; set the raster's nodata value or fix the pixels"
        )


def read_population_raster(
    path: str | Path, band: int = 1, max_check_pixels: int = 50_000_000
) -> Path:
    """Validate a population-count raster and return its path.

    The raster must hold counts (people per pixel), have a CRS and no
    negative values outside ``nodata``; :func:`towerplan.demand.grid_from_raster`
    resamples it to the working grid.  Rasters larger than ``max_check_pixels``
    are only checked for metadata here (their values are checked, window by
    window, when gridded).

    Raises
    ------
    DataFileError
        Missing or unreadable file, or no such band.
    CRSError
        The raster has no CRS.
    PopulationError
        NaN (not declared nodata) or negative counts.
    """
    import rasterio
    from rasterio.errors import RasterioIOError

    p = _check_file(path, f"population raster {path}")
    label = f"population raster {p}"
    data = None
    try:
        with rasterio.open(p) as src:
            if src.crs is None:
                raise CRSError(
                    f"{label}: the raster has no CRS; add one (gdal_edit.py -a_srs EPSG:4326) - "
                    "towerplan never guesses a CRS"
                )
            if band < 1 or band > src.count:
                raise DataFileError(
                    f"{label}: band {band} does not exist (the raster has {src.count})"
                )
            if src.width * src.height <= max_check_pixels:
                data = src.read(band, masked=True).astype("float64").filled(0.0)
    except RasterioIOError as exc:
        raise DataFileError(
            f"{label}: cannot read the raster ({exc}); give a GeoTIFF of people per pixel"
        ) from None
    if data is not None:
        check_population_array(data, label)
        logger.info("%s: total population %.0f", label, float(data.sum()))
    else:
        logger.info("%s: large raster, values checked when gridded", label)
    return p


# --------------------------------------------------------------------------- sites


def _check_inside(
    pts: gpd.GeoSeries,
    x: np.ndarray,
    y: np.ndarray,
    src_crs: CRS,
    area: BaseGeometry,
    labels: pd.Series,
    name: str,
    lonlat_cols: tuple[str, str] | None,
    outside: Literal["raise", "drop", "keep"],
) -> np.ndarray:
    """Mask of points inside ``area``; raise StudyAreaError (with a swap hint) if asked."""
    inside = np.asarray(shapely.contains_xy(area, pts.x.to_numpy(), pts.y.to_numpy()))
    n_out = int((~inside).sum())
    if n_out == 0 or outside != "raise":
        if n_out:
            logger.warning(
                "%s: %d of %d points fall outside the study area (%s)",
                name,
                n_out,
                len(pts),
                outside,
            )
        return inside
    tr = Transformer.from_crs(src_crs, pts.crs, always_xy=True)
    with np.errstate(all="ignore"):
        sx, sy = tr.transform(y[~inside], x[~inside])
    sx, sy = np.asarray(sx, float), np.asarray(sy, float)
    ok = np.isfinite(sx) & np.isfinite(sy)
    k = int(np.asarray(shapely.contains_xy(area, sx[ok], sy[ok])).sum()) if ok.any() else 0
    if k > 0:
        how = (
            f"fix the column mapping, e.g. columns={{'lon': '{lonlat_cols[1]}', 'lat': "
            f"'{lonlat_cols[0]}'}}"
            if lonlat_cols
            else "swap the coordinates in the file"
        )
        hint = f"yes, likely: swapping them would put {k} of these {n_out} inside; {how}"
    else:
        hint = (
            "swapping them would not put them inside either; check the file's CRS "
            "(source_crs=) and that the file covers this study area"
        )
    raise StudyAreaError(
        f"{name}: {n_out} of {len(pts)} points fall outside the study area; are lon and lat "
        f"swapped? {hint} (first outside: {_rows_text(labels[~inside], 5)})"
    )


def _tenant_columns(
    df: pd.DataFrame,
    op: pd.Series,
    tenants_col: str | None,
    operators_col: str | None,
    sep: str,
    max_tenants: int,
    name: str,
) -> pd.DataFrame:
    host = op.astype(str).str.strip()
    lists: list[list[str]] = [[h] for h in host]
    counts: list[int | None] = [None] * len(df)
    list_col = operators_col
    if tenants_col is not None:
        num = pd.to_numeric(df[tenants_col], errors="coerce")
        if num.notna().all():
            if (num < 1).any() or (num % 1 != 0).any():
                bad = df.index[(num < 1) | (num % 1 != 0)]
                raise ColumnError(
                    f"{name}: column '{tenants_col}' must be a whole number of tenants >= 1; bad "
                    f"rows {_rows_text(bad)}"
                )
            counts = [int(v) for v in num]
        elif list_col is None:
            list_col = tenants_col
    if list_col is not None:
        for i, (h, raw) in enumerate(zip(host, df[list_col], strict=True)):
            parts = [] if pd.isna(raw) else [t.strip() for t in str(raw).split(sep) if t.strip()]
            ordered = [h] + [t for t in dict.fromkeys(parts) if t != h]
            lists[i] = ordered
    n = [max(len(lst), c or 0) for lst, c in zip(lists, counts, strict=True)]
    mt = [max(max_tenants, v) for v in n]
    if any(v > max_tenants for v in n):
        logger.warning(
            "%s: %d site(s) already have more than max_tenants=%d tenants; their max_tenants is "
            "raised to their tenant count",
            name,
            sum(v > max_tenants for v in n),
            max_tenants,
        )
    return pd.DataFrame(
        {
            "operator": host.to_numpy(),
            "operators": [sep.join(lst) for lst in lists],
            "n_tenants": np.asarray(n, dtype="int64"),
            "max_tenants": np.asarray(mt, dtype="int64"),
        },
        index=df.index,
    )


def read_sites(
    path: str | Path,
    columns: Mapping[str, str] | None = None,
    crs: str | CRS = DEFAULT_CRS,
    source_crs: str | CRS | None = None,
    study_area: gpd.GeoDataFrame | gpd.GeoSeries | BaseGeometry | None = None,
    max_tenants: int = 3,
    layer: str | None = None,
    outside: Literal["raise", "drop", "keep"] = "raise",
    sep: str = ";",
    repair: bool = False,
) -> gpd.GeoDataFrame:
    """Read existing sites from a CSV (lon/lat) or a point layer (GPKG, GeoJSON, SHP).

    Parameters
    ----------
    path : str or Path
        ``.csv`` (coordinates in columns) or a vector point file.
    columns : mapping, optional
        towerplan name -> file column for ``lon``, ``lat`` (CSV only),
        ``operator`` (required; the host), ``site_id``, ``height``, ``operators``
        (``sep``-separated tenant list) and ``tenants`` (a count, or a list).
        Unmapped optional columns default to ``site_id``, ``height_m``,
        ``operators``, ``tenants`` when present; ``site_id`` defaults to
        ``S0001``...; ``lon``/``lat`` default to ``lon``/``lat`` (or
        ``longitude``/``latitude``, ``x``/``y``).
    crs : str or pyproj.CRS
        Working metric CRS.
    source_crs : str, optional
        CRS of CSV coordinates (default ``EPSG:4326``) or of a vector file without one.
    study_area : GeoDataFrame, GeoSeries or geometry, optional
        Area (geometry in ``crs`` when a bare geometry) the sites must fall in.
    max_tenants : int
        Tenant capacity of each structure.
    layer : str, optional
        Layer of a multi-layer file.
    outside : {'raise', 'drop', 'keep'}
        What to do with points outside ``study_area``.
    sep : str
        Separator of tenant lists.

    Returns
    -------
    GeoDataFrame
        ``site_id``, ``operator``, ``operators``, ``n_tenants``, ``max_tenants``,
        ``height_m`` points in ``crs``.

    Raises
    ------
    ColumnError
        A required column is missing (message lists the file's columns).
    DuplicateIDError
        Repeated site IDs (named).
    StudyAreaError
        Points outside the study area ("N of M points fall outside the study
        area; are lon and lat swapped?").
    """
    p = _check_file(path, f"sites file {path}")
    label = f"sites file {p}"
    wcrs = _parse_crs(crs, "working crs")
    if max_tenants < 1:
        raise ParameterError(f"max_tenants must be >= 1, got {max_tenants}")
    lonlat_cols: tuple[str, str] | None = None
    if p.suffix.lower() in (".csv", ".txt"):
        df = _read_csv(p, label)
        if len(df) == 0:
            raise EmptyInputError(f"{label}: the file has no rows; give at least one site")
        lon_c = _col(df, columns, "lon", ("lon", "longitude", "lng", "x"), label, True)
        lat_c = _col(df, columns, "lat", ("lat", "latitude", "y"), label, True)
        assert lon_c is not None and lat_c is not None
        lonlat_cols = (lon_c, lat_c)
        x = _numeric(df[lon_c], label, lon_c).to_numpy()
        y = _numeric(df[lat_c], label, lat_c).to_numpy()
        miss = ~(np.isfinite(x) & np.isfinite(y))
        if miss.any():
            raise ColumnError(
                f"{label}: rows {_rows_text(df.index[miss])} have no coordinates in '{lon_c}'/"
                f"'{lat_c}'; fill them or drop the rows"
            )
        scrs = _parse_crs(source_crs or "EPSG:4326", f"{label}: source_crs")
        if scrs.is_geographic and (np.abs(y) > 90).any():
            raise StudyAreaError(
                f"{label}: {int((np.abs(y) > 90).sum())} of {len(y)} points fall outside the study "
                f"area; are lon and lat swapped? yes, likely: column '{lat_c}' (lat) has values "
                f"beyond +-90 degrees; fix the mapping, e.g. columns={{'lon': '{lat_c}', "
                f"'lat': '{lon_c}'}}"
            )
        with np.errstate(all="ignore"):
            gdf = gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(x, y), crs=scrs)
        gdf = gdf.to_crs(wcrs)
    else:
        raw = read_vector(
            p, layer=layer, name=label, crs=None, source_crs=source_crs, repair=repair
        )
        _require_geom(raw, {"Point"}, label, "point")
        scrs = CRS.from_user_input(raw.crs)
        x, y = raw.geometry.x.to_numpy(), raw.geometry.y.to_numpy()
        gdf = to_working_crs(raw, wcrs, label)
    op_c = _col(gdf, columns, "operator", ("operator",), label, True)
    assert op_c is not None
    if gdf[op_c].isna().any() or (gdf[op_c].astype(str).str.strip() == "").any():
        bad = gdf.index[gdf[op_c].isna() | (gdf[op_c].astype(str).str.strip() == "")]
        raise ColumnError(
            f"{label}: column '{op_c}' is empty in rows {_rows_text(bad)}; name the host operator"
        )
    id_c = _col(gdf, columns, "site_id", ("site_id",), label, False)
    h_c = _col(gdf, columns, "height", ("height_m", "height"), label, False)
    ops_c = _col(gdf, columns, "operators", ("operators",), label, False)
    ten_c = _col(gdf, columns, "tenants", ("tenants", "n_tenants"), label, False)
    if id_c is not None:
        ids = gdf[id_c].astype(str).str.strip()
        dup = ids[ids.duplicated(keep=False)]
        if len(dup):
            raise DuplicateIDError(
                f"{label}: column '{id_c}' repeats site IDs {sorted(set(dup))[:10]} "
                f"({len(dup)} rows); give every site a unique ID"
            )
    else:
        ids = pd.Series([f"S{i + 1:04d}" for i in range(len(gdf))], index=gdf.index)
    ten = _tenant_columns(gdf, gdf[op_c], ten_c, ops_c, sep, max_tenants, label)
    height = _numeric(gdf[h_c], label, h_c) if h_c else pd.Series(np.nan, index=gdf.index)
    out = gpd.GeoDataFrame(
        {"site_id": ids.to_numpy()}, geometry=gdf.geometry.to_numpy(), crs=wcrs, index=gdf.index
    )
    for c in ten.columns:
        out[c] = ten[c].to_numpy()
    out["height_m"] = height.to_numpy(dtype=float)
    out = out[
        ["site_id", "operator", "operators", "n_tenants", "max_tenants", "height_m", "geometry"]
    ]
    area = _study_geometry(study_area, wcrs)
    if area is not None:
        inside = _check_inside(
            out.geometry,
            np.asarray(x),
            np.asarray(y),
            scrs,
            area,
            out["site_id"],
            label,
            lonlat_cols,
            outside,
        )
        if outside == "drop" and not inside.all():
            out = out[inside]
    if len(out) == 0:
        raise EmptyInputError(f"{label}: no sites left inside the study area")
    logger.info("%s: %d sites", label, len(out))
    return out


def _read_csv(p: Path, label: str, **kwargs: Any) -> pd.DataFrame:
    try:
        return pd.read_csv(p, encoding="utf-8-sig", **kwargs)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as exc:
        raise DataFileError(
            f"{label}: cannot read the CSV ({type(exc).__name__}: {exc}); give a UTF-8 CSV "
            "with a header row"
        ) from None


def _first_line(p: Path) -> str:
    if p.suffix.lower() == ".gz":
        import gzip

        with gzip.open(p, "rt", encoding="utf-8-sig") as fh:
            return fh.readline().strip()
    with p.open(encoding="utf-8-sig") as fh:
        return fh.readline().strip()


def read_opencellid(path: str | Path) -> pd.DataFrame:
    """Read an OpenCelliD cell CSV (with or without its header row).

    Columns: radio, mcc, net, area, cell, unit, lon, lat, range, samples,
    changeable, created, updated, averageSignal (:data:`OPENCELLID_COLUMNS`).
    Gzipped downloads (``452.csv.gz``) are read directly.

    Raises
    ------
    DataFileError
        Missing or unreadable file, or not 14 columns.
    ColumnError
        Non-numeric coordinates or network codes.
    EmptyInputError
        No cells.
    """
    p = _check_file(path, f"OpenCelliD file {path}")
    label = f"OpenCelliD file {p}"
    try:
        first = _first_line(p)
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise DataFileError(f"{label}: cannot read ({exc}); give a (gzipped) CSV") from None
    if not first:
        raise EmptyInputError(f"{label}: the file is empty; give an OpenCelliD cell CSV")
    header = first.split(",")[0].strip().casefold() == "radio"
    df = _read_csv(p, label, header=0 if header else None)
    if df.shape[1] != len(OPENCELLID_COLUMNS):
        raise DataFileError(
            f"{label}: {df.shape[1]} columns, an OpenCelliD export has {len(OPENCELLID_COLUMNS)} "
            f"({', '.join(OPENCELLID_COLUMNS)}); check the file format"
        )
    df.columns = list(OPENCELLID_COLUMNS)
    if len(df) == 0:
        raise EmptyInputError(f"{label}: no cells in the file")
    for c in ("mcc", "net", "area", "cell", "lon", "lat"):
        df[c] = _numeric(df[c], label, c)
        if df[c].isna().any():
            raise ColumnError(
                f"{label}: column '{c}' is empty in rows {_rows_text(df.index[df[c].isna()])}"
            )
    for c in ("mcc", "net", "area", "cell"):
        df[c] = df[c].astype("int64")
    df["radio"] = df["radio"].astype(str).str.strip().str.upper()
    logger.info("%s: %d cells", label, len(df))
    return df


def cluster_cells_to_sites(
    cells: pd.DataFrame,
    eps_m: float = 50.0,
    min_samples: int = 1,
    mcc_mnc_to_operator: Mapping[tuple[int, int], str] | None = None,
    crs: str | CRS = DEFAULT_CRS,
    max_tenants: int = 3,
    name: str = "cells",
) -> gpd.GeoDataFrame:
    """Cluster cell records into physical sites (structures) with DBSCAN.

    A structure is a DBSCAN cluster (haversine metric on radians,
    ``eps = eps_m / 6 371 008.8``) of cells of **any** operator; its tenants are
    the distinct operators of its cells, host first (most cells, ties by name).
    The site point is the mean lon/lat of its cells.  With ``min_samples > 1``
    cells in no cluster (noise) are dropped with a logged warning.

    Parameters
    ----------
    cells : DataFrame
        ``mcc``, ``net``, ``lon``, ``lat``, ``radio`` (e.g. from :func:`read_opencellid`).
    eps_m : float
        Clustering distance in metres.
    min_samples : int
        DBSCAN ``min_samples``.
    mcc_mnc_to_operator : mapping, optional
        ``(mcc, mnc) -> operator``; default :data:`VN_MCC_MNC_OPERATORS`.
        Unknown codes become ``"mcc-mnc"`` (logged).
    crs : str or pyproj.CRS
        Working metric CRS of the result.
    max_tenants : int
        Tenant capacity of each structure (raised to the tenant count if lower).
    name : str
        Name of the input used in messages.

    Returns
    -------
    GeoDataFrame
        ``site_id`` (``OCID-00001``...), ``operator``, ``operators``,
        ``n_tenants``, ``max_tenants``, ``height_m`` (NaN), ``n_cells``,
        ``radios`` (``;``-separated), ``lon``, ``lat`` points in ``crs``.
    """
    from sklearn.cluster import DBSCAN

    if eps_m <= 0:
        raise ParameterError(f"eps_m must be > 0 metres, got {eps_m}")
    if min_samples < 1:
        raise ParameterError(f"min_samples must be >= 1, got {min_samples}")
    for c in ("mcc", "net", "lon", "lat", "radio"):
        if c not in cells.columns:
            raise ColumnError(
                f"{name}: column '{c}' not found; the table has {list(cells.columns)}"
            )
    if len(cells) == 0:
        raise EmptyInputError(f"{name}: no cells to cluster")
    lon = cells["lon"].to_numpy(dtype=float)
    lat = cells["lat"].to_numpy(dtype=float)
    if (np.abs(lat) > 90).any() or (np.abs(lon) > 180).any():
        raise StudyAreaError(
            f"{name}: {int(((np.abs(lat) > 90) | (np.abs(lon) > 180)).sum())} of {len(cells)} "
            "cells have lat outside [-90, 90] or lon outside [-180, 180]; are lon and lat swapped?"
        )
    mapping = dict(VN_MCC_MNC_OPERATORS if mcc_mnc_to_operator is None else mcc_mnc_to_operator)
    codes = list(zip(cells["mcc"].astype(int), cells["net"].astype(int), strict=True))
    ops = np.array([mapping.get(c, f"{c[0]}-{c[1]:02d}") for c in codes], dtype=object)
    unknown = sorted({f"{c[0]}-{c[1]:02d}" for c in codes if c not in mapping})
    if unknown:
        logger.warning("%s: unknown MCC-MNC %s kept as operator names", name, unknown)
    coords = np.radians(np.column_stack([lat, lon]))
    labels = DBSCAN(
        eps=eps_m / _EARTH_RADIUS_M,
        min_samples=min_samples,
        metric="haversine",
        algorithm="ball_tree",
    ).fit_predict(coords)
    noise = labels < 0
    if noise.any():
        logger.warning("%s: %d noise cells (not in any cluster) dropped", name, int(noise.sum()))
    radios = cells["radio"].astype(str).to_numpy()
    rows = []
    for lab in pd.unique(labels[~noise]):
        m = labels == lab
        vc = pd.Series(ops[m]).value_counts()
        order = sorted(vc.index, key=lambda o: (-vc[o], str(o)))
        n = len(order)
        rows.append(
            {
                "operator": order[0],
                "operators": ";".join(order),
                "n_tenants": n,
                "max_tenants": max(max_tenants, n),
                "height_m": np.nan,
                "n_cells": int(m.sum()),
                "radios": ";".join(sorted(set(radios[m]))),
                "lon": float(lon[m].mean()),
                "lat": float(lat[m].mean()),
            }
        )
    if not rows:
        raise EmptyInputError(f"{name}: every cell is noise with min_samples={min_samples}")
    out = pd.DataFrame(rows)
    out.insert(0, "site_id", [f"OCID-{i + 1:05d}" for i in range(len(out))])
    gdf = gpd.GeoDataFrame(
        out, geometry=gpd.points_from_xy(out["lon"], out["lat"]), crs="EPSG:4326"
    ).to_crs(_parse_crs(crs, "working crs"))
    gdf["n_tenants"] = gdf["n_tenants"].astype("int64")
    gdf["max_tenants"] = gdf["max_tenants"].astype("int64")
    logger.info("%s: %d cells -> %d sites (eps %.0f m)", name, int((~noise).sum()), len(gdf), eps_m)
    return gdf


# --------------------------------------------------------------------------- POIs


def read_pois(
    path: str | Path,
    category: str | None = None,
    columns: Mapping[str, str] | None = None,
    category_map: Mapping[str, str] | None = None,
    layer: str | None = None,
    crs: str | CRS = DEFAULT_CRS,
    source_crs: str | CRS | None = None,
    source: str | None = None,
    repair: bool = False,
) -> gpd.GeoDataFrame:
    """Read points of interest; polygons and lines become representative points.

    Parameters
    ----------
    path : str or Path
        Vector file of POIs.
    category : str, optional
        Category of every feature (e.g. ``hospital``); otherwise read from
        ``columns['category']`` (default column ``category``).
    columns : mapping, optional
        ``{'name': .., 'category': ..}``; ``name`` defaults to ``name`` then
        ``ten`` when present, else names are empty.
    category_map : mapping, optional
        File category value -> towerplan category (matched case-insensitively);
        unmapped values are kept as they are.
    layer, crs, source_crs
        As in :func:`read_vector`.
    source : str, optional
        ``source`` column value (default: the file name).

    Returns
    -------
    GeoDataFrame
        ``name``, ``category``, ``source``, ``from_polygon`` (bool) points in ``crs``.
    """
    label = f"POI file {path}"
    gdf = read_vector(path, layer=layer, name=label, crs=crs, source_crs=source_crs, repair=repair)
    name_c = _col(gdf, columns, "name", ("name", "ten", "Name", "NAME"), label, False)
    if category is not None:
        cats = pd.Series(category, index=gdf.index, dtype=object)
    else:
        cat_c = _col(gdf, columns, "category", ("category",), label, True)
        assert cat_c is not None
        raw = gdf[cat_c].astype(str)
        if category_map:
            cmap = {_norm(k): v for k, v in category_map.items()}
            cats = raw.map(lambda v: cmap.get(_norm(v), v.strip()))
        else:
            cats = raw.str.strip()
    names = (
        gdf[name_c].fillna("").astype(str).str.strip() if name_c else pd.Series("", index=gdf.index)
    )
    is_point = (gdf.geom_type == "Point").to_numpy()
    geom = gdf.geometry.copy()
    if not is_point.all():
        geom[~is_point] = gdf.geometry[~is_point].representative_point()
    multi = geom.geom_type == "MultiPoint"
    if multi.any():
        geom[multi] = geom[multi].representative_point()
    out = gpd.GeoDataFrame(
        {
            "name": names.to_numpy(),
            "category": cats.to_numpy(),
            "source": source or Path(path).name,
            "from_polygon": ~is_point | multi.to_numpy(),
        },
        geometry=geom.to_numpy(),
        crs=gdf.crs,
        index=gdf.index,
    )
    logger.info("%s: %d POIs", label, len(out))
    return out


# --------------------------------------------------------------------------- roads


def read_roads(
    path: str | Path,
    class_column: str | None = None,
    class_map: Mapping[str, str] | None = None,
    name_column: str | None = None,
    layer: str | None = None,
    crs: str | CRS = DEFAULT_CRS,
    source_crs: str | CRS | None = None,
    default_class: str = "local",
    repair: bool = False,
) -> gpd.GeoDataFrame:
    """Read road centre lines with a ``road_class``.

    Parameters
    ----------
    path : str or Path
        Vector file of lines (GeoJSON, GPKG, SHP).
    class_column : str, optional
        Column with the road category (default: ``road_class``, ``highway`` or
        ``loai_duong`` when present).  Values are mapped with ``class_map``
        (default :data:`DEFAULT_ROAD_CLASS_MAP`, and OSM highway values with
        :data:`OSM_HIGHWAY_CLASS`); blank values get ``default_class``; other
        values are kept as they are (normalised lower case).
    class_map : mapping, optional
        Value -> class (matched case-insensitively).
    name_column : str, optional
        Name column (default ``name``, then ``ten_duong``).
    layer, crs, source_crs
        As in :func:`read_vector`.
    default_class : str
        Class of roads with no category.

    Returns
    -------
    GeoDataFrame
        ``road_class``, ``name`` LineStrings in ``crs`` (multi-lines exploded).
    """
    label = f"roads file {path}"
    gdf = read_vector(path, layer=layer, name=label, crs=crs, source_crs=source_crs, repair=repair)
    _require_geom(gdf, {"LineString", "MultiLineString"}, label, "line")
    cols = {"class": class_column} if class_column else None
    cls_c = _col(gdf, cols, "class", ("road_class", "highway", "loai_duong"), label, False)
    name_c = _col(
        gdf,
        {"name": name_column} if name_column else None,
        "name",
        ("name", "ten_duong"),
        label,
        False,
    )
    cmap = {_norm(k): v for k, v in {**DEFAULT_ROAD_CLASS_MAP, **OSM_HIGHWAY_CLASS}.items()}
    if class_map:
        cmap.update({_norm(k): v for k, v in class_map.items()})
    if cls_c is not None:
        raw = gdf[cls_c].map(
            lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else _norm(v)
        )
        road_class = raw.map(lambda v: default_class if v == "" else cmap.get(v, v))
    else:
        road_class = pd.Series(default_class, index=gdf.index)
    names = (
        gdf[name_c].fillna("").astype(str).str.strip() if name_c else pd.Series("", index=gdf.index)
    )
    out = gpd.GeoDataFrame(
        {"road_class": road_class.to_numpy(), "name": names.to_numpy()},
        geometry=gdf.geometry.to_numpy(),
        crs=gdf.crs,
    )
    out = out.explode(index_parts=False, ignore_index=True)
    logger.info(
        "%s: %d road segments %s", label, len(out), out["road_class"].value_counts().to_dict()
    )
    return out


def _check_osm_path(path: str | Path) -> Path:
    p = _check_file(path, f"OSM file {path}")
    if p.name.lower().endswith(".pbf"):
        raise DataFileError(
            f"OSM file {p}: osmnx reads OSM XML (.osm, .osm.bz2, .osm.gz), not PBF; convert it "
            f"first, e.g. `osmium cat {p.name} -o {p.name[: -len('.pbf')]}` (osmium-tool), or "
            "`osmium extract -b <bbox> ...` to cut the study area"
        )
    return p


def graph_from_osm_file(
    path: str | Path,
    crs: str | CRS = DEFAULT_CRS,
    simplify: bool = True,
    retain_all: bool = False,
    bidirectional: bool = False,
) -> nx.MultiDiGraph:
    """Build a routable graph from an OSM XML file with osmnx, projected to ``crs``.

    Parameters
    ----------
    path : str or Path
        ``.osm``, ``.osm.bz2`` or ``.osm.gz`` OSM XML (PBF is refused with the
        command to convert it).
    crs : str or pyproj.CRS
        Working metric CRS.
    simplify, retain_all, bidirectional : bool
        Passed to :func:`osmnx.graph_from_xml`.  Files whose ways carry no
        ``highway`` tag (e.g. a route relation's member ways) need
        ``simplify=False, retain_all=True`` to keep every node.

    Returns
    -------
    networkx.MultiDiGraph
        Projected graph; edge ``length`` in metres.
    """
    import osmnx as ox

    p = _check_osm_path(path)
    wcrs = _parse_crs(crs, "working crs")
    try:
        G = ox.graph_from_xml(
            p, bidirectional=bidirectional, simplify=simplify, retain_all=retain_all
        )
    except Exception as exc:
        raise DataFileError(
            f"OSM file {p}: osmnx cannot build a graph ({type(exc).__name__}: {exc}); check that "
            "it is OSM XML with ways and nodes (try simplify=False, retain_all=True)"
        ) from None
    if G.number_of_nodes() == 0:
        raise EmptyInputError(
            f"OSM file {p}: the graph has no nodes; the file holds no usable ways"
        )
    Gp = ox.project_graph(G, to_crs=wcrs)
    logger.info("OSM file %s: %d nodes, %d edges", p, Gp.number_of_nodes(), Gp.number_of_edges())
    return Gp


def graph_from_place_online(
    query: str | BaseGeometry,
    crs: str | CRS = DEFAULT_CRS,
    network_type: str = "drive",
    simplify: bool = True,
    retain_all: bool = False,
    which_result: int | None = None,
) -> nx.MultiDiGraph:
    """Download a road graph from OSM (Nominatim + Overpass via osmnx), projected to ``crs``.

    Parameters
    ----------
    query : str or shapely geometry
        Place name (geocoded with Nominatim) or a polygon in EPSG:4326.
    crs, network_type, simplify, retain_all, which_result
        Working CRS and :func:`osmnx.graph_from_place` / ``graph_from_polygon`` options.

    Returns
    -------
    networkx.MultiDiGraph
        Projected graph.

    Raises
    ------
    DataFileError
        The place cannot be geocoded or Overpass fails (needs internet).
    """
    import osmnx as ox

    wcrs = _parse_crs(crs, "working crs")
    try:
        if isinstance(query, BaseGeometry):
            G = ox.graph_from_polygon(
                query, network_type=network_type, simplify=simplify, retain_all=retain_all
            )
        else:
            G = ox.graph_from_place(
                query,
                network_type=network_type,
                simplify=simplify,
                retain_all=retain_all,
                which_result=which_result,
            )
    except Exception as exc:
        raise DataFileError(
            f"OSM download for {query if isinstance(query, str) else 'polygon'}: "
            f"{type(exc).__name__}: {exc}; check the place name and the internet connection, "
            "or save an OSM XML extract and use graph_from_osm_file"
        ) from None
    return ox.project_graph(G, to_crs=wcrs)


def roads_from_graph(G: nx.MultiDiGraph, default_class: str = "unknown") -> gpd.GeoDataFrame:
    """Edges of an osmnx graph as road lines with ``road_class`` from the ``highway`` tag.

    ``highway`` values map with :data:`OSM_HIGHWAY_CLASS` (other values:
    ``local``); a list of values (merged by simplification) takes the highest
    class; edges without the tag get ``default_class``.  Each undirected way is
    kept once (reverse duplicates dropped).

    Returns
    -------
    GeoDataFrame
        ``road_class``, ``name``, ``highway``, ``length_m`` (the graph's CRS).
    """
    import osmnx as ox

    edges = ox.graph_to_gdfs(G, nodes=False, fill_edge_geometry=True)
    edges = edges.reset_index()
    key = edges.apply(lambda r: (min(r["u"], r["v"]), max(r["u"], r["v"]), r["key"]), axis=1)
    edges = edges[~key.duplicated()].reset_index(drop=True)
    rank = {"national": 0, "provincial": 1, "local": 2}

    def _cls(h: Any) -> str:
        vals = h if isinstance(h, list) else [h]
        vals = [v for v in vals if isinstance(v, str) and v]
        if not vals:
            return default_class
        classes = [OSM_HIGHWAY_CLASS.get(v, "local") for v in vals]
        return min(classes, key=lambda c: rank.get(c, 3))

    def _txt(v: Any) -> str:
        if isinstance(v, list):
            return ";".join(str(x) for x in v)
        return "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)

    hw = edges["highway"] if "highway" in edges.columns else pd.Series(None, index=edges.index)
    nm = edges["name"] if "name" in edges.columns else pd.Series(None, index=edges.index)
    out = gpd.GeoDataFrame(
        {
            "road_class": hw.map(_cls).to_numpy(),
            "name": nm.map(_txt).to_numpy(),
            "highway": hw.map(_txt).to_numpy(),
            "length_m": edges["length"].to_numpy(dtype=float),
        },
        geometry=edges.geometry.to_numpy(),
        crs=edges.crs,
    )
    return out


# --------------------------------------------------------------------------- scenario inputs


def _is_raster(src: LayerSource, path: Path) -> bool:
    if src.format:
        return src.format.lower() in ("raster", "tif", "tiff", "geotiff")
    return path.suffix.lower() in _RASTER_SUFFIXES


def _sites_format(src: LayerSource, path: Path) -> str:
    if src.format:
        return src.format.lower()
    low = path.name.lower()
    if low.endswith((".csv", ".txt", ".csv.gz")):
        try:
            head = _first_line(path).split(",")
        except (OSError, UnicodeDecodeError, EOFError):
            return "csv"
        if head and (
            head[0].strip().casefold() == "radio"
            or (
                len(head) == len(OPENCELLID_COLUMNS)
                and head[0].strip().upper() in ("GSM", "UMTS", "LTE", "NR", "CDMA")
            )
        ):
            return "opencellid"
        return "csv"
    return "vector"


def _cells_near(cells: pd.DataFrame, study: BaseGeometry, crs: CRS, name: str) -> pd.DataFrame:
    """Cells within the study area's lon/lat box (+0.01 deg): clusters only what matters."""
    tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    w, s, e, n = tr.transform_bounds(*study.bounds)
    w, s, e, n = w - 0.01, s - 0.01, e + 0.01, n + 0.01
    lon, lat = cells["lon"].to_numpy(float), cells["lat"].to_numpy(float)
    keep = (lon >= w) & (lon <= e) & (lat >= s) & (lat <= n)
    if not keep.any():
        swapped = int(((lat >= w) & (lat <= e) & (lon >= s) & (lon <= n)).sum())
        hint = (
            f"yes, likely: swapping them would put {swapped} inside"
            if swapped
            else "swapping them would not help; is the file for another area?"
        )
        raise StudyAreaError(
            f"{name}: {len(cells)} of {len(cells)} cells fall outside the study area "
            f"(lon {w:.3f}..{e:.3f}, lat {s:.3f}..{n:.3f}); are lon and lat swapped? {hint}"
        )
    logger.info("%s: %d of %d cells near the study area", name, int(keep.sum()), len(cells))
    return cells[keep].reset_index(drop=True)


def _empty_layer(columns: Sequence[str], crs: CRS) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({c: [] for c in columns}, geometry=[], crs=crs)


def load_inputs(scenario: Scenario, study_buffer_m: float = 2000.0) -> PlanInputs:
    """Read every input layer a scenario names, in its working CRS.

    ``kind: demo`` returns :func:`towerplan.inputs.demo.load_demo`.  ``kind: files``
    reads ``data.districts`` (communes are dissolved when names repeat),
    ``data.population`` (polygons, or a raster path when the suffix is
    ``.tif``/``.tiff``/... or ``format: raster``; default: the district
    polygons), ``data.existing_sites`` (``format`` ``csv`` / ``vector`` /
    ``opencellid``, else sniffed), ``data.pois`` (each with its ``category``) and
    ``data.roads`` (lines, or ``.osm``/``.osm.bz2`` -> road graph + roads).

    Existing sites must fall inside the districts buffered by ``study_buffer_m``
    (OpenCelliD structures outside are dropped, logged).  Populations are taken
    as given: no projection to ``scenario.year`` is applied (a note says so).

    Returns
    -------
    PlanInputs
    """
    data = scenario.data
    if data.kind == "demo":
        from towerplan.inputs.demo import load_demo

        return load_demo(scenario)
    crs = _parse_crs(scenario.crs, f"scenario {scenario.name}: crs")
    notes: list[str] = []
    sources: dict[str, str] = {}
    if data.districts is None:
        raise DataFileError(
            f"scenario {scenario.name}: data.districts is missing; name the district file"
        )

    def _cols(src: LayerSource) -> dict[str, str]:
        return dict(src.columns)

    # districts
    dsrc = data.districts
    dpath = scenario.resolve(dsrc.path)
    dcols = _cols(dsrc)
    districts = read_districts(
        dpath,
        columns=dcols,
        layer=dsrc.layer,
        crs=crs,
        urban_values=data.urban_type_values,
        rural_values=data.rural_type_values,
        source_crs=dsrc.crs,
        repair=data.repair_geometries,
    )
    sources["districts"] = str(dpath)
    study = districts.geometry.buffer(study_buffer_m).union_all()

    # population
    population: gpd.GeoDataFrame | Path
    if data.population is None:
        if "population" not in districts.columns:
            raise ColumnError(
                f"districts file {dpath}: no population column and no data.population source; "
                "map columns: {population: <column>} or give data.population"
            )
        population = districts[["population", "geometry"]].copy()
        notes.append("population: district totals spread evenly over each district (no finer data)")
        sources["population"] = str(dpath)
    else:
        psrc = data.population
        ppath = scenario.resolve(psrc.path)
        sources["population"] = str(ppath)
        if _is_raster(psrc, _check_file(ppath, f"population file {ppath}")):
            population = read_population_raster(ppath)
        else:
            population = read_population_polygons(
                ppath,
                column=_cols(psrc).get("population", "population"),
                layer=psrc.layer,
                crs=crs,
                source_crs=psrc.crs,
                repair=data.repair_geometries,
            )
    if "population" not in districts.columns:
        districts = districts.copy()
        districts["population"] = _district_population(districts, population, crs)
        notes.append("district populations summed from the population layer")

    # existing sites
    if data.existing_sites is not None:
        ssrc = data.existing_sites
        spath = _check_file(scenario.resolve(ssrc.path), f"sites file {ssrc.path}")
        sources["existing_sites"] = str(spath)
        fmt = _sites_format(ssrc, spath)
        if fmt == "opencellid":
            cells = _cells_near(read_opencellid(spath), study, crs, f"OpenCelliD file {spath}")
            sites = cluster_cells_to_sites(
                cells,
                crs=crs,
                max_tenants=scenario.sites.max_tenants,
                name=f"OpenCelliD file {spath}",
            )
            inside = np.asarray(shapely.contains_xy(study, sites.geometry.x, sites.geometry.y))
            if not inside.any():
                _check_inside(
                    sites.geometry,
                    sites["lon"].to_numpy(),
                    sites["lat"].to_numpy(),
                    CRS.from_epsg(4326),
                    study,
                    sites["site_id"],
                    f"OpenCelliD file {spath}",
                    None,
                    "raise",
                )
            if not inside.all():
                logger.warning(
                    "%s: %d structures outside the study area dropped", spath, int((~inside).sum())
                )
            sites = sites[inside].copy()
            sites["site_id"] = [f"OCID-{i + 1:05d}" for i in range(len(sites))]
            notes.append(
                f"existing sites: {len(cells)} OpenCelliD cells clustered into {len(sites)} "
                "structures (DBSCAN 50 m); positions are crowd-sourced estimates"
            )
        elif fmt in ("csv", "vector", "gpkg", "geojson", "shp"):
            sites = read_sites(
                spath,
                columns=_cols(ssrc),
                crs=crs,
                source_crs=ssrc.crs,
                study_area=study,
                repair=data.repair_geometries,
                max_tenants=scenario.sites.max_tenants,
                layer=ssrc.layer,
            )
        else:
            raise DataFileError(
                f"sites file {spath}: unknown format {fmt!r}; use csv, vector or opencellid"
            )
    else:
        sites = _empty_layer(
            ["site_id", "operator", "operators", "n_tenants", "max_tenants", "height_m"], crs
        )
        notes.append("no existing sites given: every site is planned from scratch")

    # POIs
    pois_parts = []
    for i, src in enumerate(data.pois):
        ppath = scenario.resolve(src.path)
        pc = _cols(src)
        pois_parts.append(
            read_pois(
                ppath,
                category=src.category,
                columns=pc or None,
                layer=src.layer,
                crs=crs,
                source_crs=src.crs,
                repair=data.repair_geometries,
            )
        )
        sources[f"pois[{i}]"] = str(ppath)
    if pois_parts:
        pois = gpd.GeoDataFrame(pd.concat(pois_parts, ignore_index=True), crs=crs)
    else:
        pois = _empty_layer(["name", "category", "source", "from_polygon"], crs)

    # user candidate locations
    user_cands: gpd.GeoDataFrame | None = None
    if data.candidates is not None:
        csrc = data.candidates
        cpath = scenario.resolve(csrc.path)
        sources["candidates"] = str(cpath)
        label = f"candidates file {cpath}"
        raw = read_vector(
            cpath,
            layer=csrc.layer,
            name=label,
            crs=crs,
            source_crs=csrc.crs,
            repair=data.repair_geometries,
        )
        _require_geom(raw, {"Point"}, label, "point")
        user_cands = gpd.GeoDataFrame(geometry=raw.geometry.to_numpy(), crs=raw.crs)
        for key in ("cost", "priority", "max_tenants"):
            col = dict(csrc.columns).get(key, key)
            if col in raw.columns:
                user_cands[key] = _numeric(raw[col].reset_index(drop=True), label, col).to_numpy()
            elif key in csrc.columns:
                raise ColumnError(
                    f"{label}: column '{col}' (for {key}) not found; the file has columns "
                    f"{[c for c in raw.columns if c != 'geometry']}"
                )

    # roads
    roads: gpd.GeoDataFrame | None = None
    graph = None
    if data.roads is not None:
        rsrc = data.roads
        rpath = scenario.resolve(rsrc.path)
        sources["roads"] = str(rpath)
        low = rpath.name.lower()
        if (rsrc.format or "").lower() == "osm" or any(
            low.endswith(s) for s in (".osm", ".osm.bz2", ".osm.gz", ".pbf")
        ):
            graph = graph_from_osm_file(rpath, crs=crs)
            roads = roads_from_graph(graph)
        else:
            rc = _cols(rsrc)
            roads = read_roads(
                rpath,
                class_column=rc.get("class") or rc.get("road_class"),
                name_column=rc.get("name"),
                layer=rsrc.layer,
                crs=crs,
                source_crs=rsrc.crs,
                repair=data.repair_geometries,
            )
    notes.append(
        f"populations taken as given from the input files ({data.label}); no projection to "
        f"{scenario.year}"
    )
    return PlanInputs(
        districts=districts,
        population=population,
        existing_sites=sites,
        pois=pois,
        roads=roads,
        road_graph=graph,
        data_kind=data.label,
        notes=notes,
        sources=sources,
        user_candidates=user_cands,
    )


def _district_population(
    districts: gpd.GeoDataFrame, population: gpd.GeoDataFrame | Path, crs: CRS
) -> np.ndarray:
    """Population per district from polygons (area-weighted overlay) or a raster (grid sum)."""
    if isinstance(population, gpd.GeoDataFrame):
        src = population[["population", "geometry"]].copy()
        src["_area"] = src.geometry.area
        src["_pid"] = np.arange(len(src))
        d = districts[["geometry"]].copy()
        d["_did"] = np.arange(len(d))
        ov = gpd.overlay(src, d, how="intersection", keep_geom_type=True)
        share = ov["population"].to_numpy() * ov.geometry.area.to_numpy() / ov["_area"].to_numpy()
        return np.bincount(ov["_did"].to_numpy(), weights=share, minlength=len(d))
    from towerplan.demand import grid_from_raster

    grid = grid_from_raster(population, crs=crs.to_string(), cell_size=100.0, boundary=districts)
    pts = grid.points(districts=districts)
    by = pts.groupby("district")["population"].sum()
    return districts["district"].map(by).fillna(0.0).to_numpy(dtype=float)
