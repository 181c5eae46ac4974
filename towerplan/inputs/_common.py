"""Helpers shared by the input readers (private): files, columns, CSV, geometry checks."""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError as _PyprojCRSError
from shapely.geometry.base import BaseGeometry

from towerplan._validate import to_working_crs
from towerplan.errors import (
    N_,
    ColumnError,
    CRSError,
    DataFileError,
    GeometryError,
    ParameterError,
    PopulationError,
    Text,
    warn_user,
)

logger = logging.getLogger(__name__)


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
            msgid=N_(
                "{name}: file {p} not found; check the path (relative paths in a scenario "
                "are resolved against the scenario file's folder)"
            ),
            name=name,
            p=p,
        )
    if p.is_dir() and p.suffix.lower() != ".gdb":
        raise DataFileError(
            msgid=N_("{name}: {p} is a folder, not a data file; give the file itself"),
            name=name,
            p=p,
        )
    return p


def _parse_crs(value: str | CRS, what: str) -> CRS:
    try:
        return CRS.from_user_input(value)
    except _PyprojCRSError:
        raise CRSError(
            msgid=N_("{what}: {value} is not a CRS pyproj knows; give e.g. 'EPSG:4326'"),
            what=what,
            value=repr(value),
        ) from None


def _rows_text(labels: Iterable[Any], limit: int = 10) -> str:
    labels = list(labels)
    text = ", ".join(str(v) for v in labels[:limit])
    if len(labels) <= limit:
        return text
    return Text(N_("{text} ... ({n} in all)"), text=text, n=len(labels))


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
                msgid=N_(
                    "{name}: column '{col}' (mapped to '{key}') not found; the file has columns "
                    "{available}; fix the layer's columns: {{{key}: <column>}} in the scenario"
                ),
                name=name,
                col=col,
                key=key,
                available=available,
            )
        return col
    for cand in defaults:
        if cand in df.columns:
            return cand
    if required:
        raise ColumnError(
            msgid=N_(
                "{name}: required column '{key}' not found (looked for {defaults}); the file "
                "has columns {available}; map it in the scenario with columns: {{{key}: "
                "<column>}}"
            ),
            name=name,
            key=key,
            defaults=list(defaults),
            available=available,
        )
    return None


def _numeric(series: pd.Series, name: str, col: str) -> pd.Series:
    out = pd.to_numeric(series, errors="coerce")
    bad = out.isna() & series.notna() & (series.astype(str).str.strip() != "")
    if bad.any():
        raise ColumnError(
            msgid=N_(
                "{name}: column '{col}' has non-numeric values in rows {rows} (e.g. "
                "{example}); fix the values or map another column"
            ),
            name=name,
            col=col,
            rows=_rows_text(series.index[bad]),
            example=repr(series[bad].iloc[0]),
        )
    return out.astype(float)


def _check_population(values: pd.Series, name: str, col: str) -> pd.Series:
    pop = pd.to_numeric(values, errors="coerce").astype(float)
    bad = ~np.isfinite(pop.to_numpy()) | (pop.to_numpy() < 0)
    if bad.any():
        raise PopulationError(
            msgid=N_(
                "{name}: column '{col}' has missing, NaN or negative population in rows "
                "{rows}; give a number >= 0 for every feature"
            ),
            name=name,
            col=col,
            rows=_rows_text(pop.index[bad]),
        )
    return pop


def _repair(gdf: gpd.GeoDataFrame, name: str, repair: bool = False) -> gpd.GeoDataFrame:
    """Raise on null/empty geometries; invalid ones raise, or are repaired with make_valid."""
    geom = gdf.geometry
    empty = geom.isna() | geom.is_empty
    if empty.any():
        raise GeometryError(
            msgid=N_(
                "{name}: {n} feature(s) have no geometry (rows {rows}); drop them or fix the file"
            ),
            name=name,
            n=int(empty.sum()),
            rows=_rows_text(gdf.index[empty]),
        )
    invalid = ~geom.is_valid
    if not invalid.any():
        return gdf
    if not repair:
        reason = shapely.is_valid_reason(geom[invalid].iloc[0])
        n = int(invalid.sum())
        raise GeometryError(
            msgid=N_(
                "{name}: {n} invalid geometry (rows {rows}; first: {reason}); fix them in a "
                "GIS, or set data.repair_geometries: true in the scenario to repair them with "
                "shapely.make_valid"
            )
            if n == 1
            else N_(
                "{name}: {n} invalid geometries (rows {rows}; first: {reason}); fix them in a "
                "GIS, or set data.repair_geometries: true in the scenario to repair them with "
                "shapely.make_valid"
            ),
            name=name,
            n=n,
            rows=_rows_text(gdf.index[invalid]),
            reason=reason,
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
            msgid=N_(
                "{name}: invalid geometries in rows {rows} could not be repaired "
                "(shapely.make_valid left them empty or invalid); fix them in a GIS"
            ),
            name=name,
            rows=_rows_text(fixed_s.index[still]),
        )
    out.loc[invalid, out.geometry.name] = fixed_s
    warn_user(
        logger,
        N_("{name}: repaired {n} invalid geometry with shapely.make_valid (rows {rows})")
        if invalid.sum() == 1
        else N_("{name}: repaired {n} invalid geometries with shapely.make_valid (rows {rows})"),
        log_only=True,
        name=name,
        n=int(invalid.sum()),
        rows=_rows_text(gdf.index[invalid]),
    )
    return out


def _require_geom(gdf: gpd.GeoDataFrame, kinds: set[str], name: str, what: str) -> None:
    types = set(gdf.geom_type.unique())
    if not types <= kinds:
        raise GeometryError(
            msgid=N_("{name}: expected {what} geometries, found {kinds}; give a {what} layer"),
            name=name,
            what=what,
            kinds=sorted(types - kinds),
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
        msgid=N_(
            "study_area must be a GeoDataFrame, GeoSeries or shapely geometry, got {study_area}"
        ),
        study_area=type(study_area),
    )


ENCODING_FIX = Text(
    N_(
        "set the layer's encoding in the scenario (e.g. encoding: cp1258 for Windows "
        "Vietnamese, or data.encoding for every layer), or save the file as UTF-8"
    )
)


def _read_csv(p: Path, label: str, encoding: str | None = None, **kwargs: Any) -> pd.DataFrame:
    try:
        return pd.read_csv(p, encoding=encoding or "utf-8-sig", **kwargs)
    except UnicodeDecodeError as exc:
        raise DataFileError(
            msgid=N_(
                "{label}: the CSV is not {utf} text (byte {exc_start}: {exc_reason}); "
                "{encoding_fix}"
            ),
            label=label,
            utf=encoding or "UTF-8",
            exc_start=exc.start,
            exc_reason=exc.reason,
            encoding_fix=ENCODING_FIX,
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as exc:
        raise DataFileError(
            msgid=N_("{label}: cannot read the CSV ({name}: {exc}); give a CSV with a header row"),
            label=label,
            name=type(exc).__name__,
            exc=exc,
        ) from None


def _dbf_is_utf8(dbf: Path) -> bool:
    """True when every record of a .dbf decodes as UTF-8 (ASCII included)."""
    with dbf.open("rb") as fh:
        head = fh.read(32)
        if len(head) < 32:
            return True
        header_len = int.from_bytes(head[8:10], "little")
        fh.seek(header_len)
        data = fh.read()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def shapefile_encoding(p: Path, encoding: str | None, label: str) -> str | None:
    """Encoding to read a Shapefile's attributes with (None: the file's .cpg / GDAL default).

    A .shp without .cpg whose .dbf is not valid UTF-8 needs ``encoding``; without it,
    :class:`DataFileError` names the .cpg fix (GDAL would otherwise guess and garble names).
    """
    if p.suffix.lower() != ".shp":
        return encoding
    if encoding:
        return encoding
    if any(p.with_suffix(s).exists() for s in (".cpg", ".CPG")):
        return None
    dbf = next((p.with_suffix(s) for s in (".dbf", ".DBF") if p.with_suffix(s).exists()), None)
    if dbf is None or _dbf_is_utf8(dbf):
        return "UTF-8"
    raise DataFileError(
        msgid=N_(
            "{label}: the attributes (.dbf) are not UTF-8 and there is no {cpg} naming their "
            "encoding; write one next to it holding the encoding (e.g. cp1258), or set this "
            "layer's encoding in the scenario (e.g. encoding: cp1258 for Windows Vietnamese, "
            "or data.encoding for every layer), or save the file as UTF-8"
        ),
        label=label,
        cpg=p.with_suffix(".cpg").name,
    )


def _first_line(p: Path) -> str:
    if p.suffix.lower() == ".gz":
        import gzip

        with gzip.open(p, "rt", encoding="utf-8-sig") as fh:
            return fh.readline().strip()
    with p.open(encoding="utf-8-sig") as fh:
        return fh.readline().strip()
