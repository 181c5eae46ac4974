"""Matrix-level (partial) set covering: fewest columns covering a target share (private).

Model: minimise ``sum_j x_j`` subject to ``z_i <= sum_j A[i,j] x_j`` and
``sum_i w_i z_i >= target``, ``x`` binary, ``0 <= z <= 1``.  With a target equal to
the whole coverable weight the covering rows become ``sum_j A[i,j] x_j >= 1``.
Rows with identical covering sets are merged first.

Solvers: greedy (most uncovered weight per column) followed by redundancy removal;
HiGHS MILP warm-started from it (up to :data:`MILP_MAX_NNZ` non-zeros; ``solver="heuristic"``
there: the LP-relaxation bound); above that, a Lagrangian lower bound (rounded up) by a fixed
number of subgradient steps -- the LP, unbounded in work, is not solved at that size.

The Lagrangian bound
--------------------
Relaxing the covering rows ``z_i <= (A x)_i`` with multipliers ``u >= 0`` gives, for
*any* ``u >= 0``::

    L(u) = sum_j min(0, 1 - (A^T u)_j) + min { u.z : w.z >= need, 0 <= z <= 1 }

a valid lower bound on the optimum (weak duality); the inner minimum is a
fractional knapsack (rows by ``u_i / w_i`` ascending).  ``max_u L(u)`` equals the LP
relaxation bound (the subproblem has the integrality property), so the bound
reached after :data:`LAGRANGE_ITERATIONS` steps is at most the LP bound and usually
within 1-2 % of it, at a bounded, deterministic cost of ``O(iterations * nnz)``:
the LP itself (simplex) took more than 10 minutes on a 250 m province grid.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from towerplan.errors import N_, InfeasibleModelError, ParameterError
from towerplan.siting._highs import MilpModel, WorkLimits, solve_model
from towerplan.siting._model import _row_hash_groups

logger = logging.getLogger(__name__)

MILP_MAX_NNZ = 100_000
"""Largest set-covering MILP (non-zeros) that solver="auto" hands to HiGHS: above it HiGHS can
spend tens of seconds in root cut separation, which no time limit or callback interrupts."""

MAX_NODES = 500
"""Branch-and-bound nodes of the set-covering MILP (before ``work_limit`` scaling)."""
MAX_CHECKPOINTS = 150
"""HiGHS MIP work checkpoints of the set-covering MILP (before ``work_limit`` scaling); they
bound the root cut separation, which alone can take tens of seconds on partial covers."""
LAGRANGE_ITERATIONS = 300
"""Subgradient steps of the Lagrangian lower bound (before ``work_limit`` scaling)."""
LAGRANGE_STALL = 20
"""Steps without improvement after which the subgradient step factor is halved."""


@dataclass
class SetCoverResult:
    """Result of :func:`towerplan.siting.set_cover`.

    Attributes
    ----------
    selected : ndarray of int
        Selected column indices (sorted).
    covered_fraction : float
        Covered weight / total weight (all rows, coverable or not).
    optimal : bool
        True when the number of columns is proven minimal.
    gap : float
        ``(n_selected - lower_bound) / n_selected`` (0 when optimal).
    lower_bound : int
        Proven lower bound on the number of columns.
    solver_used : str
        Which solver and why.
    runtime_s : float
    log : dict
    stopped_by : str
        ``"optimal"``, ``"work_limit"`` (node budget spent first, or heuristic only) or
        ``"time_limit"`` (the wall-clock safety stop fired: not reproducible).
    """

    selected: np.ndarray
    covered_fraction: float
    optimal: bool
    gap: float
    lower_bound: int
    solver_used: str
    runtime_s: float
    log: dict[str, Any] = field(default_factory=dict)
    stopped_by: str = "optimal"

    @property
    def n_selected(self) -> int:
        return len(self.selected)


def _reduce(A: sp.csr_matrix, w: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    keep = (w > 0) & (np.diff(A.indptr) > 0)
    A = A[keep]
    w = w[keep]
    if A.shape[0] == 0:
        return A, w
    grp = _row_hash_groups(A)
    ng = int(grp.max()) + 1
    first = np.full(ng, -1, dtype=np.int64)
    first[grp[::-1]] = np.arange(len(grp))[::-1]
    return A[first].tocsr(), np.bincount(grp, weights=w, minlength=ng)


def _greedy(A: sp.csr_matrix, w: np.ndarray, need: float) -> np.ndarray:
    Acsc = A.tocsc()
    wres = w.copy()
    gains = np.asarray(Acsc.T @ wres).ravel()
    heap = [(-float(g), j) for j, g in enumerate(gains) if g > 0]
    heapq.heapify(heap)
    chosen: list[int] = []
    got = 0.0
    tol = 1e-9 * max(float(w.sum()), 1.0)
    while got < need - tol and heap:
        _, j = heapq.heappop(heap)
        rows = Acsc.indices[Acsc.indptr[j] : Acsc.indptr[j + 1]]
        g = float(wres[rows].sum())
        if g <= 0:
            continue
        if heap and g < -heap[0][0] - tol:
            heapq.heappush(heap, (-g, j))
            continue
        chosen.append(j)
        got += g
        wres[rows] = 0.0
    sel = np.array(chosen, dtype=np.int64)
    # redundancy removal: drop columns (last chosen first) while the target still holds
    if len(sel):
        cnt = np.asarray(A[:, sel].sum(axis=1)).ravel()
        covered = float(w[cnt > 0].sum())
        keep = np.ones(len(sel), dtype=bool)
        for q in range(len(sel) - 1, -1, -1):
            rows = Acsc.indices[Acsc.indptr[sel[q]] : Acsc.indptr[sel[q] + 1]]
            lost = float(w[rows][cnt[rows] == 1].sum())
            if covered - lost >= need - tol:
                keep[q] = False
                cnt[rows] -= 1
                covered -= lost
        sel = sel[keep]
    return np.sort(sel)


def _model(A: sp.csr_matrix, w: np.ndarray, need: float, full: bool) -> MilpModel:
    n, m = A.shape
    if full:
        obj = np.ones(m)
        M = A.astype(float).tocsr()
        return MilpModel(
            maximize=False,
            obj=obj,
            lo=np.zeros(m),
            hi=np.ones(m),
            integ=np.ones(m, bool),
            M=M,
            rlo=np.ones(n),
            rhi=np.full(n, np.inf),
        )
    ncol = m + n
    obj = np.concatenate([np.ones(m), np.zeros(n)])
    cov = sp.hstack([-A.astype(float), sp.identity(n, format="csr")], format="csr")
    tgt = sp.csr_matrix(np.concatenate([np.zeros(m), w])[None, :])
    M = sp.vstack([cov, tgt], format="csr")
    return MilpModel(
        maximize=False,
        obj=obj,
        lo=np.zeros(ncol),
        hi=np.ones(ncol),
        integ=np.concatenate([np.ones(m, bool), np.zeros(n, bool)]),
        M=M,
        rlo=np.concatenate([np.full(n, -np.inf), [need]]),
        rhi=np.concatenate([np.zeros(n), [np.inf]]),
    )


def _weight_bound(A: sp.csr_matrix, w: np.ndarray, need: float) -> int:
    """Fewest columns whose weights (each column alone) can add up to ``need``: a valid,
    always positive lower bound (no column covers more than its own weight)."""
    if need <= 0:
        return 0
    colw = np.sort(np.asarray(A.T.astype(float) @ w).ravel())[::-1]
    reach = np.cumsum(colw)
    k = int(np.searchsorted(reach, need * (1 - 1e-12)))
    return min(k + 1, len(colw))


def _knapsack(u: np.ndarray, w: np.ndarray, need: float) -> tuple[float, np.ndarray]:
    """``min u.z`` s.t. ``w.z >= need``, ``0 <= z <= 1`` (``w > 0``): value and ``z``."""
    order = np.argsort(u / w, kind="stable")
    cum = np.cumsum(w[order])
    k = int(np.searchsorted(cum, need))
    z = np.zeros(len(w))
    z[order[:k]] = 1.0
    if k < len(w):
        z[order[k]] = min(1.0, max(0.0, (need - (cum[k - 1] if k else 0.0)) / w[order[k]]))
    return float((u * z).sum()), z


def lagrangian_bound(
    A: sp.csr_matrix, w: np.ndarray, need: float, *, upper: float, iterations: int
) -> tuple[float, int]:
    """Best Lagrangian bound ``L(u)`` (module docstring) over ``iterations`` subgradient steps.

    Parameters
    ----------
    A : csr_matrix (n, m)
        Coverage (rows with ``w > 0`` only).
    w : ndarray (n,)
        Positive row weights.
    need : float
        Weight to cover.
    upper : float
        A known number of columns that reaches ``need`` (the Polyak step target).
    iterations : int
        Subgradient steps (the work bound; no clock involved).

    Returns
    -------
    float, int
        The best bound found (not rounded) and the steps taken.
    """
    Af = A.astype(float).tocsr()
    At = Af.T.tocsr()
    deg = np.asarray(Af.sum(axis=0)).ravel()
    # start: u_i = max over covering columns of 1/deg_j (a classic dual start)
    u = np.asarray(Af.multiply(1.0 / np.maximum(deg, 1.0)[None, :]).max(axis=1).todense()).ravel()
    best, theta, stall, taken = -np.inf, 2.0, 0, 0
    while taken < iterations:
        taken += 1
        red = 1.0 - At @ u
        x = red < 0
        kv, z = _knapsack(u, w, need)
        value = float(red[x].sum()) + kv
        if value > best + 1e-9:
            best, stall = value, 0
        else:
            stall += 1
            if stall >= LAGRANGE_STALL:
                theta, stall = theta / 2.0, 0
        g = z - Af @ x.astype(float)
        gg = float(np.square(g).sum())  # numpy's sum, not BLAS: the same bits anywhere
        if gg <= 0.0 or upper - value <= 1e-9:
            break
        u = np.maximum(0.0, u + theta * (upper - value) / gg * g)
    return float(best), taken


def _check_args(
    solver: str, target_fraction: float, time_limit_s: float, work_limit: float
) -> None:
    """Raise on a bad solver name, target share, time limit or work limit."""
    if solver not in ("auto", "exact", "heuristic"):
        raise ParameterError(
            msgid=N_("solver = {solver!r}: use 'auto', 'exact' or 'heuristic'"),
            solver=solver,
        )
    if not (0.0 < target_fraction <= 1.0):
        raise ParameterError(
            msgid=N_("target_fraction = {target_fraction}: must be in (0, 1], e.g. 0.95 for 95 %"),
            target_fraction=target_fraction,
        )
    for name, v in (("time_limit_s", time_limit_s), ("work_limit", work_limit)):
        if not (isinstance(v, int | float) and not np.isnan(v) and v > 0):
            raise ParameterError(
                msgid=N_("{name} = {v!r}: must be a number > 0"),
                name=name,
                v=v,
            )
    if not np.isfinite(work_limit):
        raise ParameterError(
            msgid=N_("work_limit = {work_limit}: must be finite"),
            work_limit=work_limit,
        )


@dataclass
class _Improved:
    """Selection, lower bound and method after the MILP (or Lagrangian bound) step."""

    sel: np.ndarray
    lb: int
    method: str
    time_limited: bool


def _improve(
    Ar: sp.csr_matrix,
    wr: np.ndarray,
    sel: np.ndarray,
    *,
    need: float,
    full: bool,
    solver: str,
    lb: int,
    log: dict[str, Any],
    time_limit_s: float,
    work_limit: float,
) -> _Improved:
    """Improve the greedy ``sel`` by the warm-started MILP, or bound it (Lagrangian); updates ``log``."""
    m = Ar.shape[1]
    model = _model(Ar, wr, need, full)
    limits = WorkLimits(
        max_nodes=max(1, round(MAX_NODES * work_limit)),
        mip_gap=0.0,
        time_limit_s=time_limit_s,
        max_checkpoints=max(1, round(MAX_CHECKPOINTS * work_limit)),
    )
    time_limited = False
    use_milp = solver == "exact" or (solver == "auto" and model.nnz <= MILP_MAX_NNZ)
    if use_milp and len(sel) > 0:
        x0 = np.zeros(model.n_col)
        x0[sel] = 1.0
        if not full:
            cnt = np.asarray(Ar[:, sel].sum(axis=1)).ravel()
            x0[m:] = (cnt > 0).astype(float)
        res = solve_model(model, limits, x0)
        log.update(
            {
                "milp_status": res.status,
                "milp_nodes": res.nodes,
                "milp_checkpoints": res.checkpoints,
                "milp_solve_s": res.solve_s,
            }
        )
        time_limited = res.time_limited
        if res.x is not None:
            cand = np.flatnonzero(res.x[:m] > 0.5)
            if len(cand) <= len(sel):
                sel = np.sort(cand)
        if np.isfinite(res.bound):
            lb = max(lb, math.ceil(res.bound - 1e-6))
        method = "exact MILP (HiGHS) warm-started from greedy"
    elif len(sel) > 0 and model.nnz <= MILP_MAX_NNZ:  # heuristic requested, small: LP bound
        res = solve_model(model, limits, relax=True)
        time_limited = res.time_limited
        log.update({"lp_status": res.status, "lp_simplex_iterations": res.simplex_iterations})
        if np.isfinite(res.bound):
            lb = max(lb, math.ceil(res.bound - 1e-6))
        method = "greedy + redundancy removal, LP lower bound (requested)"
    elif len(sel) > 0:
        steps = max(1, round(LAGRANGE_ITERATIONS * work_limit))
        value, taken = lagrangian_bound(Ar, wr, need, upper=float(len(sel)), iterations=steps)
        log.update({"lagrange_bound": round(value, 4), "lagrange_iterations": taken})
        if np.isfinite(value):
            lb = max(lb, math.ceil(value - 1e-6))
        method = "greedy + redundancy removal, Lagrangian lower bound" + (
            " (requested)"
            if solver == "heuristic"
            else f" (MILP too large: {model.nnz:,} non-zeros)"
        )
    else:
        method = "greedy"
    return _Improved(sel=sel, lb=lb, method=method, time_limited=time_limited)


def solve_set_cover(
    cover: sp.spmatrix,
    weights: np.ndarray | None = None,
    target_fraction: float = 1.0,
    solver: str = "auto",
    time_limit_s: float = math.inf,
    *,
    work_limit: float = 1.0,
) -> SetCoverResult:
    """Fewest columns of ``cover`` whose union covers ``target_fraction`` of the weight.

    Deterministic: the MILP is bounded by ``MAX_NODES * work_limit`` branch-and-bound
    nodes and ``MAX_CHECKPOINTS * work_limit`` HiGHS work checkpoints; ``time_limit_s``
    is a safety stop only.  See
    :func:`towerplan.siting.set_cover` for the parameters.
    """
    t0 = time.perf_counter()
    _check_args(solver, target_fraction, time_limit_s, work_limit)
    A = sp.csr_matrix(cover, dtype=bool)
    A.sum_duplicates()
    A.sort_indices()
    n, m = A.shape
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (n,):
        raise ParameterError(
            msgid=N_("weights: expected {n} values, got shape {shape}"),
            n=n,
            shape=w.shape,
        )
    if (~np.isfinite(w)).any() or (w < 0).any():
        raise ParameterError(msgid=N_("weights: must be finite and >= 0"))
    total = float(w.sum())
    if total <= 0:
        return SetCoverResult(np.zeros(0, np.int64), 1.0, True, 0.0, 0, "nothing to cover", 0.0)
    coverable = float(w[np.diff(A.indptr) > 0].sum())
    need = target_fraction * total
    tol = 1e-9 * total
    if coverable < need - tol:
        raise InfeasibleModelError(
            msgid=N_(
                "target_fraction = {target_fraction:g} cannot be reached: the candidates can "
                "cover at most {share:.4f} of the weight; add candidates, raise the radius or"
                " lower the target"
            ),
            target_fraction=target_fraction,
            share=coverable / total,
        )
    full = coverable - need <= tol
    Ar, wr = _reduce(A, w)
    # rows covered by no candidate were dropped: the remaining need is unchanged
    sel = _greedy(Ar, wr, need - tol)
    log: dict[str, Any] = {
        "rows": n,
        "rows_reduced": int(Ar.shape[0]),
        "columns": m,
        "greedy": len(sel),
    }
    lb = _weight_bound(Ar, wr, need - tol)
    log["weight_bound"] = lb
    imp = _improve(
        Ar,
        wr,
        sel,
        need=need - tol,
        full=full,
        solver=solver,
        lb=lb,
        log=log,
        time_limit_s=time_limit_s,
        work_limit=work_limit,
    )
    sel, lb = imp.sel, min(imp.lb, len(imp.sel))
    optimal = len(sel) == lb
    gap = 0.0 if optimal else (len(sel) - lb) / max(len(sel), 1)
    cnt_all = np.asarray(A[:, sel].sum(axis=1)).ravel() if len(sel) else np.zeros(n)
    frac = float(w[cnt_all > 0].sum()) / total
    return SetCoverResult(
        selected=np.asarray(sel, dtype=np.int64),
        covered_fraction=frac,
        optimal=bool(optimal),
        gap=float(gap),
        lower_bound=int(lb),
        solver_used=f"{imp.method}; {len(sel)} columns, lower bound {lb}"
        + (" (optimal)" if optimal else f", gap {gap:.1%}"),
        runtime_s=time.perf_counter() - t0,
        log=log,
        stopped_by="time_limit" if imp.time_limited else ("optimal" if optimal else "work_limit"),
    )
