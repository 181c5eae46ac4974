"""Switching points of the core network: a p-median on fixed-broadband and backhaul demand.

**Demand** (per milestone year): the demand cells' population x
``subscribers.fixed_broadband_per_100 / 100`` fixed-broadband lines, plus
``switching.bts_line_equivalents`` lines for every BTS standing by that year (mobile
backhaul), summed on a lattice of ``switching.grid_m`` (a demand point per lattice cell
with demand).  After the first milestone, demand inside the development zones
(``data.development_zones``, optional) is multiplied by
``switching.development_zone_factor``: the new points of the later milestones are
drawn to the new residential and urban areas (plan 3933, s. 3.2 a).

**Model.**  Candidates are the demand points plus the existing switching points
(``data.switching_points``, locked).  Each milestone opens its new points on top of the
ones already there (locked), minimising the demand-weighted straight-line distance of
every demand point to its nearest open point (p-median; the same objective as PySAL
spopt's ``PMedian``).  Small instances (``n x m <= max_exact_pairs``) are solved exactly
as a MILP in HiGHS; larger ones by greedy addition + vertex substitution (Teitz & Bart)
with a Lagrangian lower bound (assignment constraints relaxed, fixed number of
subgradient steps), so the gap is always certified and the work bounded.

**Backhaul.**  Every new BTS gets a fibre route along the roads to its nearest switching
point (:func:`towerplan.infrastructure.backhaul.fibre_routes`, same routing as the
site-to-site backhaul).

Layer ``switching_points`` (Point): ``switch_id``, ``status`` (``existing`` | ``new``),
``year`` (milestone of a new point), ``district``, ``demand_lines`` (weight served),
``mean_distance_km`` (weighted mean distance of its demand), ``in_development_zone``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.spatial.distance import cdist

from towerplan._validate import points_xy, require_metric
from towerplan.errors import N_, InfeasibleModelError, ParameterError
from towerplan.siting._highs import MilpModel, WorkLimits, solve_model

logger = logging.getLogger(__name__)

__all__ = [
    "PMedianSolution",
    "SwitchingPlan",
    "plan_switching_points",
    "solve_pmedian",
    "summary_keys",
    "switching_demand",
]

MAX_EXACT_PAIRS = 60_000
"""Largest ``n x m`` solved as an exact MILP; above it, heuristic + Lagrangian bound."""
SWAP_ITERATIONS = 500
LAGRANGIAN_ITERATIONS = 300
MIN_LAGRANGIAN_ITERATIONS = 20
"""Fewest subgradient steps of the bound when a work limit below 1 scales them down."""


def lagrangian_iterations(work_limit: float = 1.0) -> int:
    """Subgradient steps of the p-median bound at ``work_limit`` (the plan's
    ``sites.work_limit`` / ``--work-limit``): :data:`LAGRANGIAN_ITERATIONS` at 1 and above,
    scaled down below 1 (at least :data:`MIN_LAGRANGIAN_ITERATIONS`).  Only the certified
    lower bound depends on it, never the points opened."""
    if work_limit >= 1.0:
        return LAGRANGIAN_ITERATIONS
    return max(MIN_LAGRANGIAN_ITERATIONS, int(np.ceil(LAGRANGIAN_ITERATIONS * work_limit)))


@dataclass
class PMedianSolution:
    """Open candidates (indices), assignment, objective and certified lower bound."""

    open: np.ndarray
    assign: np.ndarray
    objective: float
    lower_bound: float
    method: str
    log: dict[str, Any] = field(default_factory=dict)

    @property
    def gap(self) -> float:
        """Relative gap ``(objective - lower_bound) / objective``."""
        if self.objective <= 0:
            return 0.0
        return max(0.0, (self.objective - self.lower_bound) / self.objective)


def _cost(C: np.ndarray, w: np.ndarray, opened: np.ndarray) -> float:
    return float((w * C[:, opened].min(axis=1)).sum()) if len(opened) else float("inf")


class _SortedRows:
    """Each row of a cost matrix ``C`` sorted once: ``order`` (column indices) and ``S``."""

    def __init__(self, C: np.ndarray) -> None:
        self.m = C.shape[1]
        self.order = np.argsort(C, axis=1, kind="stable")
        self.S = np.take_along_axis(C, self.order, axis=1)
        self.o_flat, self.s_flat = self.order.ravel(), self.S.ravel()

    def below(self, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Entries with ``C[i, a] < d[i]``: their row ``i``, column ``a`` and value."""
        rows, flat = _row_prefixes(_count_below(self.S, d), self.m)
        return rows, self.o_flat.take(flat), self.s_flat.take(flat)

    def gain(self, w: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Per column ``a``: ``sum_i w_i * max(d_i - C[i, a], 0)`` (what opening ``a`` saves)."""
        rows, cols, vals = self.below(d)
        return np.bincount(cols, weights=w.take(rows) * (d.take(rows) - vals), minlength=self.m)


def _greedy(
    C: np.ndarray, w: np.ndarray, p: int, locked: np.ndarray, rows: _SortedRows | None = None
) -> np.ndarray:
    """Add the ``p`` points that each lower the weighted distance most (after ``locked``)."""
    rows = rows if rows is not None else _SortedRows(C)
    opened = list(map(int, locked))
    d1 = C[:, opened].min(axis=1) if opened else np.full(C.shape[0], np.inf)
    for _ in range(p):
        if np.isinf(d1).any():  # nothing open yet
            tot = (w[:, None] * np.minimum(C, d1[:, None])).sum(axis=0)
        else:
            tot = float((w * d1).sum()) - rows.gain(w, d1)
        tot[opened] = np.inf
        a = int(np.argmin(tot))
        opened.append(a)
        d1 = np.minimum(d1, C[:, a])
    return np.array(opened, dtype=np.int64)


def _swap(
    C: np.ndarray,
    w: np.ndarray,
    opened: np.ndarray,
    n_locked: int,
    rows: _SortedRows | None = None,
) -> np.ndarray:
    """Vertex substitution: best (add a, drop r) swap until none improves (bounded).

    The cost after adding ``a`` and dropping ``r`` is ``cur - gain_a + loss_r + corr_ar``:
    ``gain_a`` from the rows ``a`` is nearer to than their nearest open point, ``loss_r``
    the rows served by ``r`` moving to their second-nearest, ``corr_ar`` what ``a`` saves
    of that.  Only the entries of ``C`` below each row's second-nearest distance enter
    (rows sorted once, :class:`_SortedRows`), a few per cent of the matrix.
    """
    opened = opened.copy()
    n, m = C.shape
    k = len(opened)
    if k < 2:  # one point: move it to the best place (unless it is locked)
        tot = (w[:, None] * C).sum(axis=0)
        best = int(np.argmin(tot))
        cur = _cost(C, w, opened)
        better = k == 1 and n_locked == 0 and tot[best] < cur - 1e-9 * max(1.0, cur)
        return np.array([best], dtype=np.int64) if better else opened
    rows = rows if rows is not None else _SortedRows(C)
    for _ in range(SWAP_ITERATIONS):
        sub = C[:, opened]
        so = np.argsort(sub, axis=1, kind="stable")
        near = so[:, 0]
        d1 = sub[np.arange(n), near]
        d2 = sub[np.arange(n), so[:, 1]]
        cur = float((w * d1).sum())
        r2, cols, vals = rows.below(d2)
        corr = np.bincount(
            cols * k + near.take(r2),
            weights=w.take(r2) * (np.maximum(vals, d1.take(r2)) - d2.take(r2)),
            minlength=m * k,
        ).reshape(m, k)
        loss = np.bincount(near, weights=w * (d2 - d1), minlength=k)
        drop = (cur - rows.gain(w, d1))[:, None] + loss[None, :] + corr
        drop[:, :n_locked] = np.inf
        drop[opened] = np.inf
        a, r = np.unravel_index(int(np.argmin(drop)), drop.shape)
        if drop[a, r] >= cur - 1e-9 * max(1.0, cur):
            break
        opened[r] = a
    return opened


def _row_prefixes(cnt: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and flat index (into an ``(n, m)`` array) of the first ``cnt[i]`` entries of each row."""
    rows = np.repeat(np.arange(len(cnt)), cnt)
    return rows, rows * m + (np.arange(len(rows)) - np.repeat(np.cumsum(cnt) - cnt, cnt))


def _count_below(S: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Per row ``i`` of the row-sorted ``S``: how many entries are ``< lam[i]`` (bisection)."""
    n, m = S.shape
    flat = S.ravel()
    offset = np.arange(n) * m
    lo = np.zeros(n, dtype=np.int64)
    hi = np.full(n, m, dtype=np.int64)
    for _ in range(int(m).bit_length() + 1):
        mid = (lo + hi) // 2
        less = (flat.take(offset + np.minimum(mid, m - 1)) < lam) & (lo < hi)
        lo = np.where(less, mid + 1, lo)
        hi = np.where(less | (lo >= hi), hi, mid)
    return lo


def _lagrangian(
    C: np.ndarray,
    w: np.ndarray,
    p_total: int,
    locked: np.ndarray,
    ub: float,
    sorted_rows: _SortedRows | None = None,
    iterations: int = LAGRANGIAN_ITERATIONS,
) -> float:
    """Lower bound from relaxing ``sum_j x_ij = 1`` (fixed number of subgradient steps).

    Only the negative reduced costs ``w_i c_ij - lam_i < 0`` enter the bound, so each row
    is sorted once and each step reads just the entries below ``lam_i`` (a few per cent
    of the matrix); they are summed per column in row order, as the dense sum would.
    ``w_i c_ij`` is sorted like ``c_ij`` (rounding is monotone), so the rows sorted for the
    swaps serve here too; which entries enter does not depend on the order of ties.
    """
    n, m = C.shape
    pre = sorted_rows if sorted_rows is not None else _SortedRows(C)
    S = w[:, None] * pre.S
    s_flat, o_flat = S.ravel(), pre.o_flat
    lam = S[:, 0].copy()
    best = -np.inf
    step = 2.0
    is_locked = np.zeros(m, dtype=bool)
    is_locked[locked] = True
    free, fixed = np.flatnonzero(~is_locked), np.flatnonzero(is_locked)
    k = p_total - len(fixed)
    for _ in range(iterations):
        cnt = _count_below(S, lam)
        rows, flat = _row_prefixes(cnt, m)
        cols = o_flat.take(flat)
        rho = np.bincount(cols, weights=s_flat.take(flat) - lam.take(rows), minlength=m)
        pick = free[np.argsort(rho[free], kind="stable")[:k]] if k > 0 else free[:0]
        chosen = np.zeros(m, dtype=bool)
        chosen[fixed] = True
        chosen[pick] = True
        val = float(lam.sum() + rho[np.r_[fixed, pick]].sum())
        best = max(best, val)
        g = 1.0 - np.bincount(rows, weights=chosen.take(cols), minlength=n)
        norm = float(np.square(g).sum())
        if norm == 0:
            break
        lam = lam + step * (ub - val) / norm * g
        step *= 0.985
    return best


def _exact(
    C: np.ndarray,
    w: np.ndarray,
    p_total: int,
    locked: np.ndarray,
    start: np.ndarray,
    max_nodes: int,
) -> tuple[np.ndarray, float, str]:
    """The p-median MILP (assignment ``x_ij <= y_j``) in HiGHS, warm-started from ``start``."""
    n, m = C.shape
    nx = n * m
    ii = np.repeat(np.arange(n), m)
    jj = np.tile(np.arange(m), n)
    rows = [ii, np.arange(nx) + n, np.arange(nx) + n, np.full(m, n + nx)]
    cols = [np.arange(nx), np.arange(nx), nx + jj, nx + np.arange(m)]
    vals = [np.ones(nx), np.ones(nx), -np.ones(nx), np.ones(m)]
    M = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))))
    lo = np.zeros(nx + m)
    lo[nx + locked] = 1.0
    model = MilpModel(
        obj=np.r_[(w[:, None] * C).ravel(), np.zeros(m)],
        lo=lo,
        hi=np.ones(nx + m),
        integ=np.r_[np.zeros(nx, dtype=bool), np.ones(m, dtype=bool)],
        M=M,
        rlo=np.r_[np.ones(n), np.full(nx, -np.inf), p_total],
        rhi=np.r_[np.ones(n), np.zeros(nx), p_total],
        maximize=False,
    )
    x0 = np.zeros(nx + m)
    x0[nx + start] = 1.0
    near = start[np.argmin(C[:, start], axis=1)]
    x0[np.arange(n) * m + near] = 1.0
    res = solve_model(model, WorkLimits(max_nodes=max_nodes, mip_gap=0.0), x0)
    if res.x is None:
        return start, float(res.bound), res.status
    y = np.asarray(res.x[nx:]) > 0.5
    return np.flatnonzero(y), float(res.bound), res.status


def solve_pmedian(
    cost: np.ndarray,
    weights: np.ndarray,
    p: int,
    *,
    locked: np.ndarray | None = None,
    max_exact_pairs: int = MAX_EXACT_PAIRS,
    max_nodes: int = 2000,
    bound_iterations: int = LAGRANGIAN_ITERATIONS,
) -> PMedianSolution:
    """Open ``p`` new facilities (plus the ``locked`` ones) minimising weighted distance.

    Parameters
    ----------
    cost : ndarray (n, m)
        Distance of demand point ``i`` to candidate ``j``.
    weights : ndarray (n,)
        Demand weights (>= 0).
    p : int
        New facilities to open.
    locked : ndarray of int, optional
        Candidates that are open already (kept).
    max_exact_pairs : int
        Solve exactly (HiGHS MILP) when ``n * m`` is at most this.
    max_nodes : int
        Branch-and-bound node limit of the exact MILP (the work bound).
    bound_iterations : int
        Subgradient steps of the Lagrangian lower bound of a large instance (the bound
        only: the points opened do not depend on it).

    Returns
    -------
    PMedianSolution
        ``open`` (locked first, then new), ``assign`` (candidate index per demand point),
        ``objective``, ``lower_bound``, ``method`` (``exact`` | ``heuristic``).
    """
    C = np.asarray(cost, dtype=float)
    w = np.asarray(weights, dtype=float)
    lk = np.unique(np.asarray(locked if locked is not None else [], dtype=np.int64))
    n, m = C.shape
    if len(w) != n or (w < 0).any() or not np.isfinite(C).all():
        raise ParameterError(
            msgid=N_("p-median: weights must be >= 0, one per demand row; finite costs")
        )
    if p < 0 or p + len(lk) > m:
        raise InfeasibleModelError(
            msgid=N_(
                "p-median: {p} new + {locked} locked points but only {m} candidates; lower "
                "switching.new_by_year or switching.grid_m"
            ),
            p=p,
            locked=len(lk),
            m=m,
        )
    rows = _SortedRows(C) if p > 0 else None
    opened = _swap(C, w, _greedy(C, w, p, lk, rows), len(lk), rows) if p > 0 else lk
    obj = _cost(C, w, opened)
    if p == 0 or n * m > max_exact_pairs:
        lb = _lagrangian(C, w, p + len(lk), lk, obj, rows, bound_iterations) if p > 0 else obj
        method = "heuristic"
    else:
        ex, lb, _status = _exact(C, w, p + len(lk), lk, opened, max_nodes)
        if _cost(C, w, ex) < obj - 1e-9 and np.isin(lk, ex).all() and len(ex) == p + len(lk):
            new = np.setdiff1d(ex, lk)
            opened = np.r_[lk, new]
            obj = _cost(C, w, opened)
        method = "exact"
        lb = min(lb, obj) if np.isfinite(lb) else obj
    new_part = [int(j) for j in opened if j not in set(lk.tolist())]
    opened = np.r_[lk, np.array(new_part, dtype=np.int64)].astype(np.int64)
    assign = opened[np.argmin(C[:, opened], axis=1)] if len(opened) else np.zeros(n, np.int64)
    return PMedianSolution(opened, assign, obj, float(min(lb, obj)), method)


def switching_demand(
    demand: gpd.GeoDataFrame,
    bts: gpd.GeoDataFrame,
    years: list[int],
    *,
    fixed_broadband_per_100: float,
    bts_line_equivalents: float,
    grid_m: float,
    zones: gpd.GeoDataFrame | None = None,
    zone_factor: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Demand points on the ``grid_m`` lattice and their weight in each year.

    Parameters
    ----------
    demand : GeoDataFrame
        Demand cells with ``population``.
    bts : GeoDataFrame
        Every BTS with ``build_year`` (NaN = standing from the start).
    years : list of int
        Milestone years (increasing).
    fixed_broadband_per_100, bts_line_equivalents, grid_m, zone_factor : float
        See the module docstring.
    zones : GeoDataFrame, optional
        Development-zone polygons (same CRS).

    Returns
    -------
    (xy, weights, in_zone)
        Lattice-cell centres (n, 2), weights (n, len(years)) in fixed-broadband lines,
        and whether each centre lies in a development zone.
    """
    if grid_m <= 0:
        raise ParameterError(
            msgid=N_("switching.grid_m = {grid_m}: must be > 0"),
            grid_m=grid_m,
        )
    dxy = points_xy(demand, "demand")
    bxy = points_xy(bts, "bts")
    keys = np.floor(np.vstack([dxy, bxy]) / grid_m).astype(np.int64)
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    inv = inv.ravel()
    lines = demand["population"].to_numpy(float) * fixed_broadband_per_100 / 100.0
    by = (
        bts["build_year"].to_numpy(float)
        if "build_year" in bts.columns
        else np.full(len(bts), np.nan)
    )
    W = np.zeros((len(uniq), len(years)))
    for t, y in enumerate(years):
        standing = np.isnan(by) | (by <= y)
        w = np.r_[lines, np.where(standing, bts_line_equivalents, 0.0)]
        np.add.at(W[:, t], inv, w)
    xy = (uniq + 0.5) * grid_m
    in_zone = np.zeros(len(uniq), dtype=bool)
    if zones is not None and len(zones):
        pts = gpd.GeoSeries(gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=demand.crs)
        in_zone = pts.within(zones.geometry.union_all()).to_numpy()
        W[:, 1:] *= np.where(in_zone, zone_factor, 1.0)[:, None]
    keep = W.sum(axis=1) > 0
    return xy[keep], W[keep], in_zone[keep]


@dataclass
class SwitchingPlan:
    """Result of :func:`plan_switching_points`: layer ``switching_points`` and per-year facts."""

    points: gpd.GeoDataFrame
    by_year: dict[int, dict[str, Any]]


def plan_switching_points(
    demand: gpd.GeoDataFrame,
    bts: gpd.GeoDataFrame,
    new_by_year: dict[int, int],
    *,
    fixed_broadband_per_100: float,
    bts_line_equivalents: float = 100.0,
    grid_m: float = 1000.0,
    zones: gpd.GeoDataFrame | None = None,
    zone_factor: float = 2.0,
    existing_points: gpd.GeoDataFrame | None = None,
    max_exact_pairs: int = MAX_EXACT_PAIRS,
    work_limit: float = 1.0,
) -> SwitchingPlan:
    """Site the new switching points of each milestone (nested p-medians).

    Parameters
    ----------
    demand, bts : GeoDataFrame
        See :func:`switching_demand`; metric CRS.
    new_by_year : dict
        New points per milestone year.
    existing_points : GeoDataFrame, optional
        Existing switching points (locked), same CRS; ``name`` kept as ``switch_id``.
    fixed_broadband_per_100, bts_line_equivalents, grid_m, zones, zone_factor
        See :func:`switching_demand`.
    max_exact_pairs : int
        See :func:`solve_pmedian`.
    work_limit : float
        The plan's work limit: below 1, fewer subgradient steps for the lower bound
        (:func:`lagrangian_iterations`); the points opened are the same.

    Returns
    -------
    SwitchingPlan
    """
    crs = require_metric(demand, "demand")
    years = sorted(int(y) for y in new_by_year)
    xy, W, in_zone = switching_demand(
        demand, bts, years, fixed_broadband_per_100=fixed_broadband_per_100,
        bts_line_equivalents=bts_line_equivalents, grid_m=grid_m, zones=zones,
        zone_factor=zone_factor,
    )  # fmt: skip
    ex = existing_points if existing_points is not None else gpd.GeoDataFrame(geometry=[], crs=crs)
    exy = points_xy(ex, "existing_points")
    cand = np.vstack([exy, xy])
    C = cdist(xy, cand) / 1000.0  # km
    locked = np.arange(len(exy), dtype=np.int64)
    year_of: dict[int, int | None] = {int(j): None for j in locked}
    by_year: dict[int, dict[str, Any]] = {}
    for t, y in enumerate(years):
        sol = solve_pmedian(C, W[:, t], int(new_by_year[y]), locked=locked,
                            max_exact_pairs=max_exact_pairs,
                            bound_iterations=lagrangian_iterations(work_limit))  # fmt: skip
        for j in sol.open:
            year_of.setdefault(int(j), y)
        locked = sol.open
        by_year[y] = {
            "new": int(new_by_year[y]),
            "total": len(sol.open),
            "weighted_distance_line_km": round(sol.objective, 1),
            "lower_bound": round(sol.lower_bound, 1),
            "gap": round(sol.gap, 5),
            "method": sol.method,
            "mean_distance_km": round(sol.objective / max(W[:, t].sum(), 1e-12), 3),
            "demand_lines": round(float(W[:, t].sum()), 0),
        }
        last_assign, last_w = sol.assign, W[:, t]
    opened = np.array(list(year_of), dtype=np.int64)
    served = np.array([last_w[last_assign == j].sum() for j in opened])
    dist = np.array([(C[last_assign == j, j] * last_w[last_assign == j]).sum() for j in opened])
    zone_c = np.r_[np.zeros(len(exy), dtype=bool), in_zone]
    names = list(ex["name"].astype(str)) if "name" in ex.columns else []
    ids = [names[j] if j < len(names) else f"SW-{k + 1:03d}" for k, j in enumerate(opened)]
    points = gpd.GeoDataFrame(
        {
            "switch_id": ids,
            "status": ["existing" if year_of[int(j)] is None else "new" for j in opened],
            "year": pd.array([year_of[int(j)] for j in opened], dtype="Int64"),
            "demand_lines": served.round(1),
            "mean_distance_km": np.where(served > 0, dist / np.maximum(served, 1e-12), 0.0).round(
                3
            ),
            "in_development_zone": zone_c[opened],
        },
        geometry=gpd.points_from_xy(cand[opened, 0], cand[opened, 1]),
        crs=crs,
    )
    return SwitchingPlan(points, by_year)


def summary_keys(plan: SwitchingPlan) -> dict[str, Any]:
    """``summary.json`` block ``switching``: per-year facts and development-zone shares."""
    p = plan.points
    later = p[(p["status"] == "new") & (p["year"] > min(plan.by_year))] if plan.by_year else p[:0]
    return {
        "switching_points": len(p),
        "switching_points_new": {str(y): v["new"] for y, v in plan.by_year.items()},
        "by_year": {str(y): v for y, v in plan.by_year.items()},
        "later_points_in_development_zones": int(later["in_development_zone"].sum()),
    }
