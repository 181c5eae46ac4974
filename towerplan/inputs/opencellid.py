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
    N_,
    ColumnError,
    DataFileError,
    EmptyInputError,
    ParameterError,
    StudyAreaError,
    Text,
    warn_user,
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
    p = _check_file(path, Text(N_("OpenCelliD file {path}"), path=path))
    label = Text(N_("OpenCelliD file {path}"), path=p)
    try:
        first = _first_line(p)
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise DataFileError(
            msgid=N_("{label}: cannot read ({exc}); give a (gzipped) CSV"), label=label, exc=exc
        ) from None
    if not first:
        raise EmptyInputError(
            msgid=N_("{label}: the file is empty; give an OpenCelliD cell CSV"), label=label
        )
    header = first.split(",")[0].strip().casefold() == "radio"
    df = _read_csv(p, label, header=0 if header else None)
    if df.shape[1] != len(OPENCELLID_COLUMNS):
        raise DataFileError(
            msgid=N_(
                "{label}: {n_columns} columns, an OpenCelliD export has "
                "{n_expected} ({expected}); check the file format"
            ),
            label=label,
            n_columns=df.shape[1],
            n_expected=len(OPENCELLID_COLUMNS),
            expected=", ".join(OPENCELLID_COLUMNS),
        )
    df.columns = list(OPENCELLID_COLUMNS)
    if len(df) == 0:
        raise EmptyInputError(msgid=N_("{label}: no cells in the file"), label=label)
    for c in ("mcc", "net", "area", "cell", "lon", "lat"):
        df[c] = _numeric(df[c], label, c)
        if df[c].isna().any():
            raise ColumnError(
                msgid=N_("{label}: column '{c}' is empty in rows {rows}"),
                label=label,
                c=c,
                rows=_rows_text(df.index[df[c].isna()]),
            )
    for c in ("mcc", "net", "area", "cell"):
        df[c] = df[c].astype("int64")
    df["radio"] = df["radio"].astype(str).str.strip().str.upper()
    logger.info("%s: %d cells", label, len(df))
    return df


DEFAULT_CLUSTER_DISTANCE_M = 250.0
"""Default clustering distance (scenario ``data.opencellid.cluster_distance_m``).

Chosen by measurement (``scripts/bench_opencellid.py``, 20 seeds per row): on 40 synthetic
towers 600 m apart whose cells scatter with sigma 30-100 m (1-6 cells per operator), 250 m
recovers the tower count within +-5 % and every operator's tenancies exactly in 20 of 20
runs; 150 m splits towers (count within 5 % in 1 of 20).  With towers 400 m apart the
count stays within 5 % in 19 of 20 runs but tenancies are exact in only 10 of 20: cells
of neighbouring towers of one operator then overlap."""


def _local_xy(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Metres on a local equirectangular plane (accurate to < 0.1 % over a city)."""
    lat0 = np.radians(float(np.mean(lat)))
    k = np.pi / 180.0 * _EARTH_RADIUS_M
    return np.column_stack([(lon - lon.mean()) * k * np.cos(lat0), (lat - lat.mean()) * k])


def _operator_groups(xy: np.ndarray, ops: np.ndarray, dist_m: float) -> np.ndarray:
    """Group label per cell: one operator's cells of one tower.

    Ward linkage with a threshold of ``2 x dist_m`` within each operator's
    single-linkage components at that distance: one operator's cells of one
    tower scatter around it; two of its towers stay apart.
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    labels = np.full(len(xy), -1, dtype=np.int64)
    nxt = 0
    for op in pd.unique(ops):
        idx = np.flatnonzero(ops == op)
        pairs = cKDTree(xy[idx]).query_pairs(2.0 * dist_m, output_type="ndarray")
        g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), (len(idx),) * 2)
        _, comp = connected_components(g, directed=False)
        for c in np.unique(comp):
            members = idx[comp == c]
            if len(members) == 1:
                labels[members] = nxt
                nxt += 1
                continue
            sub = fcluster(linkage(xy[members], "ward"), 2.0 * dist_m, "distance")
            labels[members] = nxt + sub - 1
            nxt += int(sub.max())
    return labels


def _merge_operators(centres: np.ndarray, gops: np.ndarray, dist_m: float) -> np.ndarray:
    """Structure label per operator group: groups of different operators within dist_m.

    Closest pairs first; a structure never holds one operator twice and all its
    group centres stay within ``dist_m`` of each other (complete linkage).
    """
    from scipy.spatial import cKDTree

    n = len(centres)
    parent = np.arange(n)
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    pairs = cKDTree(centres).query_pairs(dist_m, output_type="ndarray")
    if len(pairs):
        d = np.linalg.norm(centres[pairs[:, 0]] - centres[pairs[:, 1]], axis=1)
        for k in np.argsort(d, kind="stable"):
            a, b = int(parent[pairs[k, 0]]), int(parent[pairs[k, 1]])
            if a == b or set(gops[members[a]]) & set(gops[members[b]]):
                continue
            ma, mb = centres[members[a]], centres[members[b]]
            if np.linalg.norm(ma[:, None, :] - mb[None, :, :], axis=2).max() > dist_m:
                continue
            members[a] += members.pop(b)
            parent[members[a]] = a
    _, lab = np.unique(parent, return_inverse=True)
    return lab


def cluster_cells_to_sites(
    cells: pd.DataFrame,
    cluster_distance_m: float = DEFAULT_CLUSTER_DISTANCE_M,
    min_cells: int = 1,
    mcc_mnc_to_operator: Mapping[tuple[int, int], str] | None = None,
    crs: str | CRS = DEFAULT_CRS,
    max_tenants: int = 3,
    name: str = "cells",
) -> gpd.GeoDataFrame:
    """Cluster cell records into physical sites (structures).

    1. Per operator, cells are grouped by Ward linkage with a threshold of
       ``2 x cluster_distance_m``: the cells of one operator on one tower.
    2. Groups of different operators whose centres lie within
       ``cluster_distance_m`` of each other are one shared structure (closest
       first; never two groups of one operator on one structure).
    3. Structures with fewer than ``min_cells`` cells are dropped (counted).

    Its tenants are the operators of its groups, host first (most cells, ties by
    name); its point is the mean of its cells.  A lone cell is a structure
    (``min_cells=1``, the default).

    Parameters
    ----------
    cells : DataFrame
        ``mcc``, ``net``, ``lon``, ``lat``, ``radio`` (e.g. from :func:`read_opencellid`).
    cluster_distance_m : float
        Clustering distance (scenario ``data.opencellid.cluster_distance_m``; default
        :data:`DEFAULT_CLUSTER_DISTANCE_M`, justified there).
    min_cells : int
        Cells a structure needs (scenario ``data.opencellid.min_cells``).
    mcc_mnc_to_operator : mapping, optional
        ``(mcc, mnc) -> operator``; default :data:`VN_MCC_MNC_OPERATORS`.
        Unknown codes become ``"mcc-mnc"`` (matched against the scenario's operators
        and aliases by ``load_inputs``).
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
        ``radios`` (``;``-separated), ``lon``, ``lat`` points in ``crs``;
        ``attrs['opencellid']`` counts cells read, structures formed and cells dropped.
    """
    if not cluster_distance_m > 0:
        raise ParameterError(
            msgid=N_(
                "{name}: data.opencellid.cluster_distance_m must be > 0 metres, got "
                "{cluster_distance_m}"
            ),
            name=name,
            cluster_distance_m=cluster_distance_m,
        )
    if min_cells < 1:
        raise ParameterError(
            msgid=N_("{name}: data.opencellid.min_cells must be >= 1, got {min_cells}"),
            name=name,
            min_cells=min_cells,
        )
    for c in ("mcc", "net", "lon", "lat", "radio"):
        if c not in cells.columns:
            raise ColumnError(
                msgid=N_("{name}: column '{c}' not found; the table has {columns}"),
                name=name,
                c=c,
                columns=list(cells.columns),
            )
    if len(cells) == 0:
        raise EmptyInputError(msgid=N_("{name}: no cells to cluster"), name=name)
    lon = cells["lon"].to_numpy(dtype=float)
    lat = cells["lat"].to_numpy(dtype=float)
    if (np.abs(lat) > 90).any() or (np.abs(lon) > 180).any():
        raise StudyAreaError(
            msgid=N_(
                "{name}: {n_bad} of {n_cells} cells have lat outside [-90, 90] or lon outside "
                "[-180, 180]; are lon and lat swapped?"
            ),
            name=name,
            n_bad=int(((np.abs(lat) > 90) | (np.abs(lon) > 180)).sum()),
            n_cells=len(cells),
        )
    mapping = dict(VN_MCC_MNC_OPERATORS if mcc_mnc_to_operator is None else mcc_mnc_to_operator)
    codes = list(zip(cells["mcc"].astype(int), cells["net"].astype(int), strict=True))
    ops = np.array([mapping.get(c, f"{c[0]}-{c[1]:02d}") for c in codes], dtype=object)
    xy = _local_xy(lon, lat)
    group = _operator_groups(xy, ops, cluster_distance_m)
    n_groups = int(group.max()) + 1
    centres = np.zeros((n_groups, 2))
    np.add.at(centres, group, xy)
    centres /= np.bincount(group, minlength=n_groups)[:, None]
    gops = np.empty(n_groups, dtype=object)
    gops[group] = ops
    labels = _merge_operators(centres, gops, cluster_distance_m)[group]
    return _structures(cells, labels, ops, lon, lat, min_cells, crs, max_tenants, name)


def _structures(
    cells: pd.DataFrame,
    labels: np.ndarray,
    ops: np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
    min_cells: int,
    crs: str | CRS,
    max_tenants: int,
    name: str,
) -> gpd.GeoDataFrame:
    """One row per structure label (first appearance order); small ones dropped."""
    radios = cells["radio"].astype(str).to_numpy()
    rows = []
    dropped = 0
    for lab in pd.unique(labels):
        m = labels == lab
        if int(m.sum()) < min_cells:
            dropped += int(m.sum())
            continue
        vc = pd.Series(ops[m]).value_counts()
        order = sorted(vc.index, key=lambda o: (-vc[o], str(o)))
        rows.append(
            {
                "operator": order[0],
                "operators": ";".join(order),
                "n_tenants": len(order),
                "max_tenants": max(max_tenants, len(order)),
                "height_m": np.nan,
                "n_cells": int(m.sum()),
                "radios": ";".join(sorted(set(radios[m]))),
                "lon": float(lon[m].mean()),
                "lat": float(lat[m].mean()),
            }
        )
    if not rows:
        raise EmptyInputError(
            msgid=N_(
                "{name}: every structure has fewer than data.opencellid.min_cells = "
                "{min_cells} cells; lower data.opencellid.min_cells"
            ),
            name=name,
            min_cells=min_cells,
        )
    if dropped:
        warn_user(
            logger,
            N_(
                "{name}: {n} cells on structures with fewer than {min_cells} cells dropped "
                "(data.opencellid.min_cells)"
            ),
            log_only=True,
            name=name,
            n=dropped,
            min_cells=min_cells,
        )
    out = pd.DataFrame(rows)
    out.insert(0, "site_id", [f"OCID-{i + 1:05d}" for i in range(len(out))])
    gdf = gpd.GeoDataFrame(
        out, geometry=gpd.points_from_xy(out["lon"], out["lat"]), crs="EPSG:4326"
    ).to_crs(_parse_crs(crs, "working crs"))
    gdf["n_tenants"] = gdf["n_tenants"].astype("int64")
    gdf["max_tenants"] = gdf["max_tenants"].astype("int64")
    gdf.attrs["opencellid"] = {
        "cells_read": len(cells),
        "structures": len(gdf),
        "cells_dropped_min_cells": dropped,
    }
    logger.info("%s: %d cells -> %d structures", name, len(cells), len(gdf))
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
            Text(N_("yes, likely: swapping them would put {n} inside"), n=swapped)
            if swapped
            else Text(N_("swapping them would not help; is the file for another area?"))
        )
        raise StudyAreaError(
            msgid=N_(
                "{name}: {n_cells} of {n_cells} cells fall outside the study area (lon "
                "{w:.3f}..{e:.3f}, lat {s:.3f}..{n:.3f}); are lon and lat swapped? {hint}"
            ),
            name=name,
            n_cells=len(cells),
            w=w,
            e=e,
            s=s,
            n=n,
            hint=hint,
        )
    logger.info("%s: %d of %d cells near the study area", name, int(keep.sum()), len(cells))
    return cells[keep].reset_index(drop=True)
