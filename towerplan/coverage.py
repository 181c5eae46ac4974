"""Sparse demand x site coverage.

Coverage is a disc of radius ``r`` around each site (per-site radii allowed), the
radius coming from the scenario (``sites.coverage_radius_m``) or from the link
budget (:func:`towerplan.propagation.max_cell_radius`).  The demand x site
relation is built with KD-trees (:class:`scipy.spatial.cKDTree`) and stored as a
:class:`scipy.sparse.csr_matrix`; a dense ``n x m`` distance matrix is never
formed, so city-scale grids (10^5 cells x 10^4 sites) take a few megabytes.

Public functions
----------------
- :func:`coverage_matrix` : ``n x m`` sparse boolean coverage of demand points by sites.
- :func:`coverage_blocks` : the same, in blocks of demand rows (never the whole matrix).
- :func:`covered_mask` : which demand points are covered by at least one site.
- :func:`operator_coverage` : per-operator coverage of demand cells by sites whose
  ``operators`` column (``;``-joined tenants) contains the operator.
- :func:`population_coverage` : covered population and share per operator, and the
  market-share-weighted share.
- :func:`best_server_raster` : GeoTIFF of predicted path loss / received level and
  serving-site index (best server), written with rasterio.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.spatial import cKDTree

from towerplan._validate import points_xy, require_metric
from towerplan.errors import N_, ColumnError, EmptyInputError, ParameterError

logger = logging.getLogger(__name__)

__all__ = [
    "best_server_raster",
    "coverage_blocks",
    "coverage_matrix",
    "covered_mask",
    "operator_coverage",
    "points_xy",
    "population_coverage",
    "site_operator_sets",
]


def _as_xy(xy: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(xy, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ParameterError(
            msgid=N_(
                "{name}: expected an array of shape (n, 2) of x, y coordinates, got shape {shape}"
            ),
            name=name,
            shape=arr.shape,
        )
    if arr.size and not np.isfinite(arr).all():
        raise ParameterError(
            msgid=N_("{name}: coordinates contain NaN or infinite values; drop those rows"),
            name=name,
        )
    return arr


def _radii(radius: float | np.ndarray, m: int, name: str = "radius") -> np.ndarray:
    r = np.asarray(radius, dtype=float)
    if r.ndim == 0:
        r = np.full(m, float(r))
    if r.shape != (m,):
        raise ParameterError(
            msgid=N_(
                "{name}: expected one radius or one per site ({m}), got an array of shape {shape}"
            ),
            name=name,
            m=m,
            shape=r.shape,
        )
    if m and (not np.isfinite(r).all() or (r <= 0).any()):
        bad = r[~(np.isfinite(r) & (r > 0))][0]
        raise ParameterError(
            msgid=N_(
                "{name} = {bad} m: a coverage radius must be a positive finite number of metres"
            ),
            name=name,
            bad=bad,
        )
    return r


COVERAGE_BLOCK_ROWS = 1 << 17
"""Demand rows per block of :func:`coverage_blocks` (131,072: a few MB of pairs each)."""


def _block_csr(i: np.ndarray, j: np.ndarray, n: int, m: int) -> sp.csr_matrix:
    """Boolean CSR (sorted, no duplicates) of the pairs ``(i, j)`` of an ``n x m`` block."""
    mat = sp.csr_matrix((np.ones(len(i), dtype=bool), (i, j)), shape=(n, m), dtype=bool)
    mat.sum_duplicates()
    mat.sort_indices()
    return mat


def coverage_blocks(
    demand_xy: np.ndarray,
    site_xy: np.ndarray,
    radius: float | np.ndarray,
    *,
    block_rows: int = COVERAGE_BLOCK_ROWS,
) -> Iterator[sp.csr_matrix]:
    """Coverage of demand points by sites, in blocks of consecutive demand rows.

    The blocks stacked vertically are exactly :func:`coverage_matrix` (the same pairs:
    each distance is computed point to point), but only one block's pairs are in memory
    at a time, so a caller that reduces the rows as they come (identical-row merging,
    :func:`towerplan.siting._model.build_problem_blocks`) never holds the full matrix.

    Parameters
    ----------
    demand_xy, site_xy, radius
        As in :func:`coverage_matrix`.
    block_rows : int
        Demand rows per block (> 0).

    Yields
    ------
    scipy.sparse.csr_matrix of shape (rows in the block, m), dtype bool
    """
    dxy = _as_xy(demand_xy, "demand_xy")
    sxy = _as_xy(site_xy, "site_xy")
    n, m = len(dxy), len(sxy)
    r = _radii(radius, m)
    if int(block_rows) < 1:
        raise ParameterError(
            msgid=N_("block_rows = {block_rows}: must be a whole number > 0"),
            block_rows=block_rows,
        )
    # Sites grouped by radius so each group is one C-level sparse_distance_matrix call.
    uniq, inv = np.unique(r, return_inverse=True)
    groups = [np.flatnonzero(inv == k) for k in range(len(uniq))]
    trees = [cKDTree(sxy[idx]) for idx in groups] if n else []
    for s in range(0, n, int(block_rows)):
        blk = dxy[s : s + int(block_rows)]
        if m == 0:
            yield sp.csr_matrix((len(blk), 0), dtype=bool)
            continue
        tree_d = cKDTree(blk)
        rows_l: list[np.ndarray] = []
        cols_l: list[np.ndarray] = []
        for rk, idx, tree_s in zip(uniq, groups, trees, strict=True):
            res = tree_d.sparse_distance_matrix(tree_s, float(rk), output_type="ndarray")
            rows_l.append(res["i"])
            cols_l.append(idx[res["j"]])
        yield _block_csr(np.concatenate(rows_l), np.concatenate(cols_l), len(blk), m)


def coverage_matrix(
    demand_xy: np.ndarray, site_xy: np.ndarray, radius: float | np.ndarray
) -> sp.csr_matrix:
    """Sparse coverage of demand points by sites.

    Built block by block (:func:`coverage_blocks`) and assembled once, so the pair
    lists of the KD-tree query are never all in memory beside the matrix.

    Parameters
    ----------
    demand_xy : ndarray of shape (n, 2)
        Demand point coordinates in a metric CRS.
    site_xy : ndarray of shape (m, 2)
        Site coordinates in the same CRS.
    radius : float or ndarray of shape (m,)
        Coverage radius in metres, one for all sites or one per site (> 0).

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n, m), dtype bool
        Entry ``(i, j)`` is True when demand point ``i`` lies within
        ``radius[j]`` of site ``j`` (distance <= radius).

    Raises
    ------
    ParameterError
        Non-positive or non-finite radius, malformed coordinates.
    """
    dxy = _as_xy(demand_xy, "demand_xy")
    sxy = _as_xy(site_xy, "site_xy")
    n, m = len(dxy), len(sxy)
    _radii(radius, m)
    if n == 0 or m == 0:
        return sp.csr_matrix((n, m), dtype=bool)
    return _stack_blocks(list(coverage_blocks(dxy, sxy, radius)), m)


def _stack_blocks(blocks: Sequence[sp.csr_matrix], m: int) -> sp.csr_matrix:
    """Row blocks of boolean CSR matrices stacked into one (one copy of the indices)."""
    nnz = sum(int(b.nnz) for b in blocks)
    n = sum(int(b.shape[0]) for b in blocks)
    idx_t = np.int32 if max(nnz, m) < np.iinfo(np.int32).max else np.int64
    indptr = np.zeros(n + 1, dtype=idx_t)
    indices = np.empty(nnz, dtype=idx_t)
    r = k = 0
    for b in blocks:
        nb, kb = int(b.shape[0]), int(b.nnz)
        indptr[r + 1 : r + nb + 1] = b.indptr[1:] + k
        indices[k : k + kb] = b.indices
        r, k = r + nb, k + kb
    mat = sp.csr_matrix((np.ones(nnz, dtype=bool), indices, indptr), shape=(n, m))
    mat.has_sorted_indices = True
    return mat


def covered_mask(
    demand_xy: np.ndarray, site_xy: np.ndarray, radius: float | np.ndarray
) -> np.ndarray:
    """Demand points within the radius of at least one site.

    Parameters
    ----------
    demand_xy, site_xy, radius
        As in :func:`coverage_matrix`.

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    dxy = _as_xy(demand_xy, "demand_xy")
    sxy = _as_xy(site_xy, "site_xy")
    r = _radii(radius, len(sxy))
    if len(dxy) == 0 or len(sxy) == 0:
        return np.zeros(len(dxy), dtype=bool)
    if np.all(r == r[0]):
        dist, _ = cKDTree(sxy).query(dxy, k=1, distance_upper_bound=float(r[0]) * (1 + 1e-12))
        return np.asarray(np.isfinite(dist) & (dist <= r[0]))
    mat = coverage_matrix(dxy, sxy, r)
    return np.asarray(mat.getnnz(axis=1) > 0)


def site_operator_sets(sites: pd.DataFrame, name: str = "sites") -> list[list[str]]:
    """Tenant list of each site from ``operators`` (``;``-joined) or ``operator``.

    Parameters
    ----------
    sites : DataFrame
        Sites with ``operators`` or ``operator``.
    name : str
        Name of the layer, used in error messages.

    Returns
    -------
    list of list of str
        Tenants of each site, host first.

    Raises
    ------
    ColumnError
        When neither column is present.
    """
    if "operators" in sites.columns:
        col = sites["operators"]
    elif "operator" in sites.columns:
        col = sites["operator"]
    else:
        raise ColumnError(
            msgid=N_(
                "{name}: needs an 'operators' column (tenants joined with ';') or an "
                "'operator' column; found {columns}"
            ),
            name=name,
            columns=list(sites.columns),
        )
    out: list[list[str]] = []
    for v in col.tolist():
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out.append([])
        else:
            out.append([t.strip() for t in str(v).split(";") if t.strip()])
    return out


def _site_radii(sites: gpd.GeoDataFrame, radius: float | np.ndarray | str) -> np.ndarray:
    if isinstance(radius, str):
        if radius not in sites.columns:
            raise ColumnError(
                msgid=N_("sites: radius column '{radius}' not found; columns are {columns}"),
                radius=radius,
                columns=list(sites.columns),
            )
        return _radii(sites[radius].to_numpy(dtype=float), len(sites), f"sites.{radius}")
    return _radii(radius, len(sites))


def operator_coverage(
    demand: gpd.GeoDataFrame,
    sites: gpd.GeoDataFrame,
    operators: Sequence[str],
    radius: float | np.ndarray | str,
) -> pd.DataFrame:
    """Coverage of demand cells for each operator.

    Parameters
    ----------
    demand : GeoDataFrame
        Demand points (cell centres) in a metric CRS.
    sites : GeoDataFrame
        Sites in the same CRS with ``operators`` (tenants joined by ``;``) or ``operator``.
    operators : sequence of str
        Operators to report, one column each.
    radius : float, ndarray of shape (len(sites),) or str
        Coverage radius in metres, per site, or the name of a column of ``sites``.

    Returns
    -------
    DataFrame
        Index ``demand.index``; one bool column per operator, True where a site
        hosting that operator lies within its radius of the cell.
    """
    dxy = points_xy(demand, "demand")
    out = pd.DataFrame(
        {op: np.zeros(len(demand), dtype=bool) for op in operators}, index=demand.index
    )
    if len(sites) == 0 or len(demand) == 0:
        return out
    sxy = points_xy(sites, "sites")
    r = _site_radii(sites, radius)
    tenants = site_operator_sets(sites)
    mat = coverage_matrix(dxy, sxy, r).tocsc()
    for op in operators:
        cols = np.array([k for k, t in enumerate(tenants) if op in t], dtype=np.int64)
        if len(cols):
            out[op] = np.asarray(mat[:, cols].getnnz(axis=1) > 0)
    unknown = sorted({t for ts in tenants for t in ts} - set(operators))
    if unknown:
        logger.info("operator_coverage: sites name operators not reported: %s", unknown)
    return out


def population_coverage(
    demand: pd.DataFrame,
    covered: pd.DataFrame,
    weights: Mapping[str, float],
    *,
    population_col: str = "population",
) -> dict[str, Any]:
    """Covered population per operator and the market-share-weighted share.

    Parameters
    ----------
    demand : DataFrame
        Demand cells with a population column.
    covered : DataFrame
        Bool coverage per operator (output of :func:`operator_coverage`), same index.
    weights : mapping
        Operator -> market share.  The weighted share is
        ``sum_o w_o * share_o / sum_o w_o``.
    population_col : str
        Name of the population column.

    Returns
    -------
    dict
        ``{"total_population": float, "operators": {op: {"population": float,
        "share": float}}, "weighted_share": float, "weighted_population": float,
        "any_population": float, "any_share": float}``.  ``weighted_population`` is
        ``sum_cells population * sum_o w_o * covered_o`` (the siting objective).
    """
    if population_col not in demand.columns:
        raise ColumnError(
            msgid=N_("demand: column '{population_col}' is missing"), population_col=population_col
        )
    pop = demand[population_col].to_numpy(dtype=float)
    total = float(pop.sum())
    per: dict[str, dict[str, float]] = {}
    num = 0.0
    den = 0.0
    for op, w in weights.items():
        if op not in covered.columns:
            raise ColumnError(
                msgid=N_("covered: no column for operator '{op}'; columns are {columns}"),
                op=op,
                columns=list(covered.columns),
            )
        mask = covered[op].reindex(demand.index).fillna(False).to_numpy(dtype=bool)
        p = float(pop[mask].sum())
        share = p / total if total > 0 else 0.0
        per[op] = {"population": p, "share": share}
        num += float(w) * share
        den += float(w)
    anym = (
        covered.reindex(demand.index).fillna(False).to_numpy(dtype=bool).any(axis=1)
        if len(covered.columns)
        else np.zeros(len(demand), dtype=bool)
    )
    anyp = float(pop[anym].sum())
    ops = list(weights)
    cov = covered[ops].reindex(demand.index).fillna(False).to_numpy(dtype=bool)
    wts = np.array([float(weights[o]) for o in ops])
    return {
        "total_population": total,
        "operators": per,
        "weighted_share": num / den if den > 0 else 0.0,
        "weighted_population": float(((cov * wts).sum(axis=1) * pop).sum()),
        "any_population": anyp,
        "any_share": anyp / total if total > 0 else 0.0,
    }


def _best_server(
    cells: np.ndarray,
    sxy: np.ndarray,
    h_base: np.ndarray,
    *,
    band_mhz: float,
    h_mobile: float,
    clutter: str,
    max_distance_m: float,
    allow_extrapolation: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Lowest path loss (dB, ``inf`` when no site is in range) and its site row per cell.

    Path loss grows with distance for a given antenna height (and is flat below
    the models' 1 km limit), so among sites of one height the best server is the
    nearest one: one KD-tree nearest-neighbour query per distinct height, then the
    heights compared.  Ties go to the nearer site, then to the lower row.
    """
    from towerplan.propagation import path_loss

    best_pl = np.full(len(cells), np.inf)
    best_d = np.full(len(cells), np.inf)
    best_site = np.full(len(cells), -1, dtype=np.int32)
    for h in np.unique(h_base):
        rows = np.flatnonzero(h_base == h)
        # sites on one structure share coordinates: keep the lowest row of each
        _, first = np.unique(sxy[rows], axis=0, return_index=True)
        rows = rows[np.sort(first)]
        d, k = cKDTree(sxy[rows]).query(cells, distance_upper_bound=max_distance_m)
        ok = np.isfinite(d)
        if not ok.any():
            continue
        pl = np.full(len(cells), np.inf)
        pl[ok] = path_loss(
            band_mhz,
            float(h),
            h_mobile,
            np.clip(d[ok] / 1000.0, 1.0, None),
            clutter=clutter,
            allow_extrapolation=allow_extrapolation,
        )
        site = np.where(ok, rows[np.minimum(k, len(rows) - 1)], -1)
        better = ok & (
            (pl < best_pl)
            | ((pl == best_pl) & ((d < best_d) | ((d == best_d) & (site < best_site))))
        )
        best_pl[better], best_d[better], best_site[better] = pl[better], d[better], site[better]
    return best_pl, best_site


def best_server_raster(
    sites: gpd.GeoDataFrame,
    bounds: tuple[float, float, float, float],
    out_path: str | Path,
    *,
    cell_size_m: float = 100.0,
    band_mhz: float = 1800.0,
    eirp_dbm: float = 58.0,
    h_base: float | str = 30.0,
    h_mobile: float = 1.5,
    clutter: str = "urban",
    max_distance_m: float = 5000.0,
    allow_extrapolation: bool = True,
) -> Path:
    """Write a best-server GeoTIFF: received level, path loss and serving site.

    Each raster cell is served by the site of least predicted path loss
    (Okumura-Hata below 1500 MHz, COST-231 Hata above; see
    :func:`towerplan.propagation.path_loss`; ties go to the nearest site).  Distances shorter than 1 km are
    evaluated at 1 km (the models' lower validity limit), which flattens the
    loss near sites; cells beyond ``max_distance_m`` of every site are nodata.

    Parameters
    ----------
    sites : GeoDataFrame
        Sites in a metric CRS.
    bounds : tuple
        ``(minx, miny, maxx, maxy)`` of the raster in the sites' CRS.
    out_path : str or Path
        GeoTIFF to write (3 bands: received level dBm, path loss dB, serving-site
        row position in ``sites``, -1 = none).
    cell_size_m : float
        Raster cell size in metres.
    band_mhz, eirp_dbm, h_mobile, clutter
        Radio parameters (see :mod:`towerplan.propagation`).
    h_base : float or str
        Base antenna height in metres, or a column of ``sites`` (NaN -> 30 m).
    max_distance_m : float
        Search radius around each cell for candidate servers.
    allow_extrapolation : bool
        Passed to the propagation model (heights/frequencies outside the
        nominal range are then extrapolated with a logged warning).

    Returns
    -------
    Path
        The written file.
    """
    import rasterio
    from rasterio.transform import from_origin

    if cell_size_m <= 0:
        raise ParameterError(
            msgid=N_("cell_size_m = {cell_size_m}: must be > 0"), cell_size_m=cell_size_m
        )
    crs = require_metric(sites, "sites")
    if len(sites) == 0:
        raise EmptyInputError(msgid=N_("sites: no sites to compute a best-server raster from"))
    minx, miny, maxx, maxy = bounds
    if not (maxx > minx and maxy > miny):
        raise ParameterError(
            msgid=N_("bounds = {bounds}: need minx < maxx and miny < maxy"), bounds=bounds
        )
    ncol = max(1, int(np.ceil((maxx - minx) / cell_size_m)))
    nrow = max(1, int(np.ceil((maxy - miny) / cell_size_m)))
    xs = minx + (np.arange(ncol) + 0.5) * cell_size_m
    ys = maxy - (np.arange(nrow) + 0.5) * cell_size_m
    gx, gy = np.meshgrid(xs, ys)
    cells = np.column_stack([gx.ravel(), gy.ravel()])
    sxy = points_xy(sites, "sites")
    if isinstance(h_base, str):
        hb = (
            sites[h_base].to_numpy(dtype=float)
            if h_base in sites.columns
            else np.full(len(sites), np.nan)
        )
        hb = np.where(np.isfinite(hb) & (hb > 0), hb, 30.0)
    else:
        hb = np.full(len(sites), float(h_base))
    best_pl, best_site = _best_server(
        cells,
        sxy,
        hb,
        band_mhz=band_mhz,
        h_mobile=h_mobile,
        clutter=clutter,
        max_distance_m=max_distance_m,
        allow_extrapolation=allow_extrapolation,
    )
    nodata = -9999.0
    pl_img = np.where(np.isfinite(best_pl), best_pl, nodata).reshape(nrow, ncol)
    rx_img = np.where(np.isfinite(best_pl), eirp_dbm - best_pl, nodata).reshape(nrow, ncol)
    srv_img = best_site.reshape(nrow, ncol).astype("float64")
    srv_img[srv_img < 0] = nodata
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        out,
        "w",
        driver="GTiff",
        height=nrow,
        width=ncol,
        count=3,
        dtype="float32",
        crs=crs.to_wkt(),
        transform=from_origin(minx, maxy, cell_size_m, cell_size_m),
        nodata=nodata,
        compress="deflate",
    ) as dst:
        dst.write(rx_img.astype("float32"), 1)
        dst.write(pl_img.astype("float32"), 2)
        dst.write(srv_img.astype("float32"), 3)
        dst.set_band_description(1, "received_level_dbm")
        dst.set_band_description(2, "path_loss_db")
        dst.set_band_description(3, "serving_site_index")
    logger.info("best-server raster %s (%d x %d cells)", out, nrow, ncol)
    return out
