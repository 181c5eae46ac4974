"""Existing sites from a CSV (lon/lat) or a point layer."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from towerplan._validate import DEFAULT_CRS, to_working_crs
from towerplan.errors import (
    N_,
    ColumnError,
    DuplicateIDError,
    EmptyInputError,
    ParameterError,
    StudyAreaError,
    Text,
    warn_user,
)
from towerplan.inputs._common import (
    _check_file,
    _col,
    _numeric,
    _parse_crs,
    _read_csv,
    _require_geom,
    _rows_text,
    _study_geometry,
)
from towerplan.inputs._points import keep_inside
from towerplan.inputs.vector import (
    read_vector,
)

logger = logging.getLogger(__name__)


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
                    msgid=N_(
                        "{name}: column '{tenants_col}' must be a whole number of tenants >= 1; bad "
                        "rows {bad}"
                    ),
                    name=name,
                    tenants_col=tenants_col,
                    bad=_rows_text(bad),
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
        warn_user(
            logger,
            N_(
                "{name}: {n} site(s) already have more than max_tenants={max_tenants} tenants; "
                "their max_tenants is raised to their tenant count"
            ),
            log_only=True,
            name=name,
            n=sum(v > max_tenants for v in n),
            max_tenants=max_tenants,
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
    outside: Literal["error", "raise", "drop", "keep"] = "error",
    sep: str = ";",
    repair: bool = False,
    encoding: str | None = None,
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
    outside : {'error', 'drop', 'keep'}
        What to do with points outside ``study_area`` (``raise`` = ``error``);
        the number dropped is in ``attrs['outside_dropped']``.
    sep : str
        Separator of tenant lists.
    encoding : str, optional
        Attribute encoding when not UTF-8 (CSV, Shapefile without .cpg).

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
    p = _check_file(path, Text(N_("sites file {path}"), path=path))
    label = Text(N_("sites file {path}"), path=p)
    wcrs = _parse_crs(crs, "working crs")
    if max_tenants < 1:
        raise ParameterError(
            msgid=N_("max_tenants must be >= 1, got {max_tenants}"), max_tenants=max_tenants
        )
    lonlat_cols: tuple[str, str] | None = None
    if p.suffix.lower() in (".csv", ".txt"):
        df = _read_csv(p, label, encoding=encoding)
        if len(df) == 0:
            raise EmptyInputError(
                msgid=N_("{label}: the file has no rows; give at least one site"), label=label
            )
        gdf, (x, y), scrs, lonlat_cols = _points_from_csv(df, columns, source_crs, label)
        gdf = gdf.to_crs(wcrs)
    else:
        raw = read_vector(
            p,
            layer=layer,
            name=label,
            crs=None,
            source_crs=source_crs,
            repair=repair,
            encoding=encoding,
        )
        _require_geom(raw, {"Point"}, label, Text(N_("point")))
        scrs = CRS.from_user_input(raw.crs)
        x, y = raw.geometry.x.to_numpy(), raw.geometry.y.to_numpy()
        gdf = to_working_crs(raw, wcrs, label)
    out = _site_table(gdf, columns, sep, max_tenants, label)
    area = _study_geometry(study_area, wcrs)
    n_out = 0
    if area is not None:
        out, n_out = keep_inside(
            out,
            area,
            label,
            src_xy=(np.asarray(x), np.asarray(y)),
            src_crs=scrs,
            labels=out["site_id"],
            lonlat_cols=lonlat_cols,
            policy="error" if outside == "raise" else outside,
            what=Text(N_("sites")),
        )
    else:
        _require_projected(out, label, lonlat_cols)
    out.attrs["outside_dropped"] = n_out if outside == "drop" else 0
    if len(out) == 0:
        raise EmptyInputError(msgid=N_("{label}: no sites left inside the study area"), label=label)
    logger.info("%s: %d sites", label, len(out))
    return out


def _require_projected(
    out: gpd.GeoDataFrame, label: Text, lonlat_cols: tuple[str, str] | None
) -> None:
    """Raise when some sites' coordinates did not project (no study area to test against)."""
    bad = ~np.isfinite(out.geometry.x.to_numpy()) | ~np.isfinite(out.geometry.y.to_numpy())
    if bad.any():
        raise StudyAreaError(
            msgid=N_(
                "{label}: {n_bad} of {n_out} sites have coordinates that cannot be projected "
                "(latitude beyond 90 degrees?); are lon and lat swapped? fix the columns: "
                "mapping, e.g. columns: {{lon: {lat}, lat: {lon}}}"
            ),
            label=label,
            n_bad=int(bad.sum()),
            n_out=len(out),
            lat=lonlat_cols[1] if lonlat_cols else "lat",
            lon=lonlat_cols[0] if lonlat_cols else "lon",
        )


def _points_from_csv(
    df: pd.DataFrame,
    columns: Mapping[str, str] | None,
    source_crs: str | CRS | None,
    label: str,
) -> tuple[gpd.GeoDataFrame, tuple[np.ndarray, np.ndarray], CRS, tuple[str, str]]:
    """Points from a CSV's lon/lat columns (in ``source_crs``, default EPSG:4326)."""
    lon_c = _col(df, columns, "lon", ("lon", "longitude", "lng", "x"), label, True)
    lat_c = _col(df, columns, "lat", ("lat", "latitude", "y"), label, True)
    assert lon_c is not None and lat_c is not None
    x = _numeric(df[lon_c], label, lon_c).to_numpy()
    y = _numeric(df[lat_c], label, lat_c).to_numpy()
    miss = ~(np.isfinite(x) & np.isfinite(y))
    if miss.any():
        raise ColumnError(
            msgid=N_(
                "{label}: rows {rows} have no coordinates in '{lon_c}'/'{lat_c}'; fill "
                "them or drop the rows"
            ),
            label=label,
            rows=_rows_text(df.index[miss]),
            lon_c=lon_c,
            lat_c=lat_c,
        )
    scrs = _parse_crs(source_crs or "EPSG:4326", Text("{label}: source_crs", label=label))
    with np.errstate(all="ignore"):
        gdf = gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(x, y), crs=scrs)
    return gdf, (x, y), scrs, (lon_c, lat_c)


def _site_table(
    gdf: gpd.GeoDataFrame,
    columns: Mapping[str, str] | None,
    sep: str,
    max_tenants: int,
    label: str,
) -> gpd.GeoDataFrame:
    """The canonical site columns from a point layer in the working CRS."""
    wcrs = gdf.crs
    op_c = _col(gdf, columns, "operator", ("operator",), label, True)
    assert op_c is not None
    if gdf[op_c].isna().any() or (gdf[op_c].astype(str).str.strip() == "").any():
        bad = gdf.index[gdf[op_c].isna() | (gdf[op_c].astype(str).str.strip() == "")]
        raise ColumnError(
            msgid=N_("{label}: column '{op_c}' is empty in rows {bad}; name the host operator"),
            label=label,
            op_c=op_c,
            bad=_rows_text(bad),
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
                msgid=N_(
                    "{label}: column '{id_c}' repeats site IDs {dup} ({n_dup} rows); give every "
                    "site a unique ID"
                ),
                label=label,
                id_c=id_c,
                dup=sorted(set(dup))[:10],
                n_dup=len(dup),
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
    return out
