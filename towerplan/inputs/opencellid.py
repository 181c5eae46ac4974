"""OpenCelliD cell exports and their clustering into physical structures."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry

from towerplan._validate import DEFAULT_CRS
from towerplan.errors import (
    ColumnError,
    DataFileError,
    EmptyInputError,
    ParameterError,
    StudyAreaError,
)
from towerplan.inputs._common import (
    _EARTH_RADIUS_M,
    _check_file,
    _first_line,
    _numeric,
    _parse_crs,
    _read_csv,
    _rows_text,
)

logger = logging.getLogger(__name__)


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
