"""Matrix-level core of the multi-period (dynamic) maximal covering model (private).

Model
-----
Periods ``t = 0..T-1``, candidate structures ``j``, demand rows ``i`` (after reduction).

* ``A[i, j]``: candidate ``j`` covers row ``i``.
* ``W[i, t] >= 0``: value of covering row ``i`` in period ``t`` (population of that
  period x period length x the share of the operators not yet covering it).
* ``V[j, t] >= 0``: value of candidate ``j`` being open in period ``t`` (traffic near it).
* ``budget[t]``: new structures built in period ``t`` (exactly).
* ``group[j]`` / ``min_open[g, t]``: at least ``min_open[g, t]`` structures of group
  ``g`` (a district) open by period ``t`` (capacity-driven requirement).
* ``conflicts[j, k]``: ``j`` and ``k`` never both open (minimum spacing).

maximise ``sum_it W[i,t] z[i,t] + sum_jt V[j,t] y[j,t]`` subject to
``y[j,t-1] <= y[j,t]`` (a structure once built stays), ``sum_j y[j,t] = sum_{s<=t}
budget[s]``, ``z[i,t] <= sum_j A[i,j] y[j,t]``, the group minimums and conflicts;
``y`` binary, ``0 <= z <= 1``.  This is the dynamic maximal covering location problem
(Lamontagne, Carvalho & Atallah, "Accelerated Benders decomposition and local branching
for dynamic maximum covering location problems", 2023) with a fixed number of openings
per period and side constraints; here it is solved as one MILP by HiGHS, warm-started by
a period-by-period greedy, bounded by branch-and-bound nodes, with the dual bound and gap
reported; above ``MAX_EXACT_COLUMNS`` columns (a city) the period-by-period greedy,
improved by a swap local search (:func:`swap_improve`), is certified by a Lagrangian
upper bound instead (:func:`lagrangian_bound`, 1,000 subgradient steps).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from towerplan.errors import N_, InfeasibleModelError, ParameterError
from towerplan.siting._highs import MilpModel, WorkLimits, solve_model
from towerplan.siting._model import _row_hash_groups

logger = logging.getLogger(__name__)


MAX_EXACT_COLUMNS = 20_000
"""Largest multi-period MILP (columns) :func:`solve` hands to HiGHS."""


@dataclass
class PhasingProblem:
    """A multi-period maximal covering instance; see the module docstring."""

    A: sp.csr_matrix
    W: np.ndarray
    V: np.ndarray
    budget: np.ndarray
    group: np.ndarray | None = None
    min_open: np.ndarray | None = None
    conflicts: sp.csr_matrix | None = None

    @property
    def n_cand(self) -> int:
        return int(self.A.shape[1])

    @property
    def n_periods(self) -> int:
        return len(self.budget)


@dataclass
class PhasingSolution:
    """``build_period[j]``: period in which candidate ``j`` is built (-1: never)."""

    build_period: np.ndarray
    objective: float
    upper_bound: float = float("inf")
    method: str = ""
    log: dict[str, Any] = field(default_factory=dict)

    @property
    def gap(self) -> float:
        """Relative gap ``(upper_bound - objective) / upper_bound``."""
        if not np.isfinite(self.upper_bound):
            return float("inf")
        if self.upper_bound <= 0:
            return 0.0
        return max(0.0, (self.upper_bound - self.objective) / self.upper_bound)


def check_problem(prob: PhasingProblem) -> None:
    """Raise for inconsistent shapes, negative values or an infeasible instance."""
    n, T = prob.n_cand, prob.n_periods
    if prob.W.shape != (prob.A.shape[0], T) or prob.V.shape != (n, T):
        raise ParameterError(
            msgid=N_("phasing: W must be (rows, periods) and V (candidates, periods)")
        )
    if (prob.W < 0).any() or (prob.V < 0).any() or (prob.budget < 0).any():
        raise ParameterError(msgid=N_("phasing: weights, values and budgets must be >= 0"))
    total = int(prob.budget.sum())
    if total > n:
        raise InfeasibleModelError(
            msgid=N_(
                "phasing: {total} new structures to build but only {n} candidate locations; "
                "lower phasing.periods[*].budget or the candidate spacing "
                "(sites.candidate_spacing_m)"
            ),
            total=total,
            n=n,
        )
    if prob.min_open is None or prob.group is None:
        return
    cum = np.cumsum(prob.budget)
    need = prob.min_open.sum(axis=0)
    bad = np.flatnonzero(need > cum)
    if len(bad):
        t = int(bad[0])
        raise InfeasibleModelError(
            msgid=N_(
                "phasing: period {t} needs {need} capacity sites but its cumulative budget is"
                " {cum}; raise phasing.periods[{t}].budget"
            ),
            t=t,
            need=int(need[t]),
            cum=int(cum[t]),
        )
    avail = np.bincount(prob.group[prob.group >= 0], minlength=prob.min_open.shape[0])
    short = np.flatnonzero(prob.min_open[:, -1] > avail)
    if len(short):
        g = int(short[0])
        raise InfeasibleModelError(
            msgid=N_(
                "phasing: group {g} needs {min_open} sites but has {avail} candidate "
                "locations; lower sites.candidate_spacing_m"
            ),
            g=g,
            min_open=int(prob.min_open[g, -1]),
            avail=int(avail[g]),
        )


def reduce_rows(prob: PhasingProblem) -> PhasingProblem:
    """Drop rows of zero value or no candidate; merge rows with the same candidate set.

    Exact: the objective of every solution is unchanged.
    """
    A = prob.A.tocsr()
    keep = (prob.W.sum(axis=1) > 0) & (np.diff(A.indptr) > 0)
    A, W = A[keep], prob.W[keep]
    if A.shape[0] == 0:
        return PhasingProblem(A, W, prob.V, prob.budget, prob.group, prob.min_open, prob.conflicts)
    gid = _row_hash_groups(A)
    uniq, first, inv = np.unique(gid, return_index=True, return_inverse=True)
    Wm = np.zeros((len(uniq), W.shape[1]))
    np.add.at(Wm, inv, W)
    return PhasingProblem(
        A[first].tocsr(), Wm, prob.V, prob.budget, prob.group, prob.min_open, prob.conflicts
    )


def evaluate(prob: PhasingProblem, build_period: np.ndarray) -> float:
    """Objective of a build plan (``build_period[j]`` = period built, -1 = never)."""
    bp = np.asarray(build_period)
    val = 0.0
    A = prob.A.tocsc()
    for t in range(prob.n_periods):
        open_t = (bp >= 0) & (bp <= t)
        cov = np.asarray(A[:, open_t].sum(axis=1)).ravel() > 0
        val += float(prob.W[cov, t].sum()) + float(prob.V[open_t, t].sum())
    return val


def is_feasible(prob: PhasingProblem, build_period: np.ndarray) -> bool:
    """Budgets met exactly, group minimums met, no two conflicting structures open."""
    bp = np.asarray(build_period)
    for t in range(prob.n_periods):
        if int((bp == t).sum()) != int(prob.budget[t]):
            return False
        if prob.min_open is not None and prob.group is not None:
            open_t = (bp >= 0) & (bp <= t) & (prob.group >= 0)
            cnt = np.bincount(prob.group[open_t], minlength=prob.min_open.shape[0])
            if (cnt < prob.min_open[:, t]).any():
                return False
    if prob.conflicts is not None:
        on = np.flatnonzero(bp >= 0)
        if prob.conflicts[on][:, on].nnz:
            return False
    return True


def _short_groups(
    prob: PhasingProblem, bp: np.ndarray, t: int, cum: np.ndarray
) -> np.ndarray | None:
    """Groups the next opening in period ``t`` must serve, or None (free choice).

    The first period ``s >= t`` whose remaining openings (cumulative budget to ``s`` minus
    those made) only just cover the group minimums still unmet by ``s`` forces a pick
    in a group short at ``s``.
    """
    if prob.min_open is None or prob.group is None:
        return None
    open_g = np.bincount(prob.group[(bp >= 0) & (prob.group >= 0)], minlength=len(prob.min_open))
    made = int((bp >= 0).sum())
    for s in range(t, prob.n_periods):
        deficit = np.maximum(0, prob.min_open[:, s] - open_g)
        if deficit.sum() > 0 and deficit.sum() >= int(cum[s]) - made:
            return np.flatnonzero(deficit > 0)
    return None


def greedy(prob: PhasingProblem) -> PhasingSolution:
    """Period-by-period greedy: in period ``t`` open, one at a time, the structure of
    largest gain over the remaining periods, in a group whose minimum (now or later)
    would otherwise be missed when the openings left only just cover it, else anywhere
    (conflicts respected)."""
    n, T = prob.n_cand, prob.n_periods
    A = prob.A.tocsc()
    tail_W = np.cumsum(prob.W[:, ::-1], axis=1)[:, ::-1]  # value of row i from t to the end
    tail_V = np.cumsum(prob.V[:, ::-1], axis=1)[:, ::-1]
    covered = np.zeros(prob.A.shape[0], dtype=bool)
    bp = np.full(n, -1, dtype=np.int64)
    blocked = np.zeros(n, dtype=bool)
    conf = prob.conflicts.tocsr() if prob.conflicts is not None else None
    cum = np.cumsum(prob.budget)
    for t in range(T):
        for _ in range(int(prob.budget[t])):
            allowed = (bp < 0) & ~blocked
            short = _short_groups(prob, bp, t, cum)
            if short is not None and prob.group is not None:
                allowed &= np.isin(prob.group, short)
            cand = np.flatnonzero(allowed)
            if len(cand) == 0:
                raise InfeasibleModelError(
                    msgid=N_(
                        "phasing: no candidate left for the budget (conflicts or group "
                        "minimums); lower the budget or sites.min_new_site_spacing_m"
                    )
                )
            w = np.where(covered, 0.0, tail_W[:, t])
            gain = np.asarray(A[:, cand].T @ w).ravel() + tail_V[cand, t]
            j = int(cand[int(np.argmax(gain))])
            bp[j] = t
            covered |= A[:, j].toarray().ravel() > 0
            if conf is not None:
                blocked[conf[j].indices] = True
    return PhasingSolution(bp, evaluate(prob, bp), method="greedy")


def swap_improve(prob: PhasingProblem, sol: PhasingSolution, passes: int = 3) -> PhasingSolution:
    """Swap local search on a build plan: move a structure to the candidate of largest gain.

    Each pass visits every built structure ``j`` (built in period ``t``) once, takes it
    out, and opens instead, from period ``t``, the candidate of largest value over the
    periods ``t..T-1`` given the others (spacing and group minimums respected); the
    move is kept when it raises the objective.  At most ``passes`` passes (deterministic
    work); never worse than ``sol``.
    """
    A = prob.A.tocsc()
    At = A.T.tocsr()
    T = prob.n_periods
    bp = np.asarray(sol.build_period, dtype=np.int64).copy()
    cnt = np.column_stack([A @ ((bp >= 0) & (bp <= t)).astype(float) for t in range(T)])
    conf = prob.conflicts.tocsr() if prob.conflicts is not None else None
    nconf = conf @ (bp >= 0).astype(float) if conf is not None else None
    grouped = prob.group is not None and prob.min_open is not None
    tail_V = np.cumsum(prob.V[:, ::-1], axis=1)[:, ::-1]
    moves = 0
    for _ in range(passes):
        moved = False
        for j in np.flatnonzero(bp >= 0).tolist():
            t = int(bp[j])
            rows = A.indices[A.indptr[j] : A.indptr[j + 1]]
            cnt[rows, t:] -= 1
            loss = float((prob.W[rows, t:] * (cnt[rows, t:] == 0)).sum()) + tail_V[j, t]
            w = (prob.W[:, t:] * (cnt[:, t:] == 0)).sum(axis=1)
            gain = np.asarray(At @ w).ravel() + tail_V[:, t]
            allowed = bp < 0
            if nconf is not None and conf is not None:
                others = nconf - conf[j].toarray().ravel()
                allowed &= others <= 0
            if grouped:
                assert prob.group is not None and prob.min_open is not None
                g = int(prob.group[j])
                if g >= 0:
                    open_g = np.array(
                        [((bp >= 0) & (bp <= s) & (prob.group == g)).sum() for s in range(T)]
                    )
                    if (open_g[t:] - 1 < prob.min_open[g, t:]).any():
                        allowed &= prob.group == g
            gain[~allowed] = -np.inf
            k = int(np.argmax(gain))
            if allowed[k] and gain[k] > loss + 1e-9 * max(1.0, abs(loss)):
                bp[j], bp[k] = -1, t
                rows = A.indices[A.indptr[k] : A.indptr[k + 1]]
                if conf is not None and nconf is not None:
                    nconf -= conf[j].toarray().ravel()
                    nconf += conf[k].toarray().ravel()
                moves += 1
                moved = True
            cnt[rows, t:] += 1
        if not moved:
            break
    val = evaluate(prob, bp)
    if val <= sol.objective:
        return sol
    log = {**sol.log, "swap_moves": moves}
    return PhasingSolution(bp, val, sol.upper_bound, sol.method, log)


def lagrangian_bound(
    prob: PhasingProblem,
    target: float,
    iterations: int = 300,
    *,
    patience: int | None = 20,
    decay: float = 0.99,
) -> float:
    """Upper bound on the optimum: covering rows relaxed with multipliers ``mu >= 0``.

    ``L(mu) = sum_it max(0, W[i,t] - mu[i,t]) + sum_t (sum of the cum_t largest
    V[j,t] + sum_i A[i,j] mu[i,t])``, where ``cum_t`` is the cumulative budget; the
    nesting, group minimums and conflicts are dropped too (dropping constraints of a
    maximisation only raises its optimum), so every iterate is a valid bound.  A fixed
    number of subgradient steps (Polyak step towards ``target``, step factor 2 halved
    after ``patience`` steps without a better bound, the Held-Karp rule;
    ``scripts/bench_phasing_bound.py`` measures it against the exact optimum and the
    former geometric decay): deterministic work.
    """
    A = prob.A.tocsr()
    At = A.T.tocsr()
    cum = np.cumsum(prob.budget).astype(np.int64)
    mu = prob.W.astype(float).copy()
    best = np.inf
    step = 2.0 if patience is not None else 1.0
    since = 0
    for _ in range(iterations):
        val = float(np.maximum(prob.W - mu, 0.0).sum())
        g = -(prob.W > mu).astype(float)
        for t in range(prob.n_periods):
            c = prob.V[:, t] + At @ mu[:, t]
            k = int(min(cum[t], len(c)))
            if k == 0:
                continue
            top = np.argpartition(-c, k - 1)[:k]
            val += float(c[top].sum())
            g[:, t] += np.asarray(A[:, top].sum(axis=1)).ravel()
        since = 0 if val < best else since + 1
        best = min(best, val)
        norm = float((g * g).sum())
        if norm == 0 or best <= target + 1e-9 * max(1.0, abs(target)):
            break
        mu = np.maximum(0.0, mu - step * (val - target) / norm * g)
        if patience is None:
            step *= decay  # the former rule, kept for comparison
        elif since >= patience:
            step, since = step / 2.0, 0
    return best


def _model(prob: PhasingProblem) -> MilpModel:
    """MILP arrays: ``y[j, t]`` at column ``j * T + t``, ``z[k, t]`` after them."""
    n, T, K = prob.n_cand, prob.n_periods, prob.A.shape[0]
    ny = n * T
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    rlo: list[np.ndarray] = []
    rhi: list[np.ndarray] = []
    r0 = 0

    def add(r: np.ndarray, c: np.ndarray, v: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        nonlocal r0
        rows.append(r + r0)
        cols.append(c)
        vals.append(v)
        rlo.append(lo)
        rhi.append(hi)
        r0 += len(lo)

    j = np.arange(n)
    for t in range(1, T):  # y[j, t-1] - y[j, t] <= 0
        add(np.r_[j, j], np.r_[j * T + t - 1, j * T + t], np.r_[np.ones(n), -np.ones(n)],
            np.full(n, -np.inf), np.zeros(n))  # fmt: skip
    cum = np.cumsum(prob.budget).astype(float)
    for t in range(T):  # sum_j y[j, t] = cumulative budget
        add(np.zeros(n, dtype=np.int64), j * T + t, np.ones(n), cum[t : t + 1], cum[t : t + 1])
    Acoo = prob.A.tocoo()
    for t in range(T):  # z[k, t] - sum_j A[k, j] y[j, t] <= 0
        add(np.r_[Acoo.row, np.arange(K)], np.r_[Acoo.col * T + t, ny + np.arange(K) * T + t],
            np.r_[-np.ones(Acoo.nnz), np.ones(K)], np.full(K, -np.inf), np.zeros(K))  # fmt: skip
    if prob.min_open is not None and prob.group is not None:
        ing = np.flatnonzero(prob.group >= 0)
        for t in range(T):
            g_need = np.flatnonzero(prob.min_open[:, t] > 0)
            sel = np.isin(prob.group[ing], g_need)
            gi = np.searchsorted(g_need, prob.group[ing][sel])
            add(gi, ing[sel] * T + t, np.ones(int(sel.sum())),
                prob.min_open[g_need, t].astype(float), np.full(len(g_need), np.inf))  # fmt: skip
    if prob.conflicts is not None:
        pairs = sp.triu(prob.conflicts, k=1).tocoo()
        m = pairs.nnz
        add(np.r_[np.arange(m), np.arange(m)], np.r_[pairs.row * T + T - 1, pairs.col * T + T - 1],
            np.ones(2 * m), np.full(m, -np.inf), np.ones(m))  # fmt: skip
    M = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(r0, ny + K * T)
    )
    return MilpModel(
        obj=np.r_[prob.V.ravel(), prob.W.ravel()],
        lo=np.zeros(ny + K * T),
        hi=np.ones(ny + K * T),
        integ=np.r_[np.ones(ny, dtype=bool), np.zeros(K * T, dtype=bool)],
        M=M,
        rlo=np.concatenate(rlo),
        rhi=np.concatenate(rhi),
    )


def _encode(prob: PhasingProblem, bp: np.ndarray) -> np.ndarray:
    T = prob.n_periods
    y = np.zeros((prob.n_cand, T))
    for t in range(T):
        y[:, t] = (bp >= 0) & (bp <= t)
    cov = (prob.A @ y) > 0
    return np.r_[y.ravel(), np.asarray(cov, dtype=float).ravel()]


def solve(
    prob: PhasingProblem,
    *,
    mip_gap: float = 1e-3,
    max_nodes: int = 2000,
    time_limit_s: float = 600.0,
    max_exact_columns: int = MAX_EXACT_COLUMNS,
) -> PhasingSolution:
    """Solve the multi-period model: exactly (HiGHS, warm-started from :func:`greedy`) when
    it has at most ``max_exact_columns`` columns, else :func:`greedy` improved by
    :func:`swap_improve` and certified by :func:`lagrangian_bound` (the gap states what it
    may lose).

    Parameters
    ----------
    prob : PhasingProblem
    mip_gap : float
        Relative gap at which branch and bound stops.
    max_nodes : int
        Branch-and-bound node limit (the work bound: same result on any machine).
    time_limit_s : float
        Safety stop only; a run it cuts says so in ``log['stopped_by']`` and is not
        reproducible.
    max_exact_columns : int
        Largest MILP (columns) solved exactly; the root LP of larger ones takes minutes.

    Returns
    -------
    PhasingSolution
        ``objective``, ``upper_bound`` (HiGHS dual bound) and ``gap``; ``method``
        ``milp``, ``greedy`` (when HiGHS finds nothing better) or ``greedy+swap`` (large).
    """
    check_problem(prob)
    red = reduce_rows(prob)
    try:
        start: PhasingSolution | None = greedy(red)
    except InfeasibleModelError:
        start = None  # the greedy can paint itself into a corner; the MILP decides
    if start is not None and int(prob.budget.sum()) == 0:
        return PhasingSolution(start.build_period, start.objective, start.objective, "empty")
    n_col = prob.n_cand * prob.n_periods + red.A.shape[0] * prob.n_periods
    if start is not None and n_col > max_exact_columns:
        greedy_obj = start.objective
        start = swap_improve(red, start)
        bound = lagrangian_bound(red, start.objective, iterations=1000)
        log = {
            "columns": n_col,
            "reason": f"model larger than {max_exact_columns} columns",
            "greedy_objective": round(greedy_obj, 1),
            "swap_moves": int(start.log.get("swap_moves", 0)),
        }
        return PhasingSolution(start.build_period, start.objective, bound, "greedy+swap", log)
    model = _model(red)
    x0 = _encode(red, start.build_period) if start is not None else None
    limits = WorkLimits(max_nodes=max_nodes, mip_gap=mip_gap, time_limit_s=time_limit_s)
    res = solve_model(model, limits, x0)
    g_obj = start.objective if start is not None else -np.inf
    log = {
        "status": res.status,
        "nodes": res.nodes,
        "solve_s": round(float(res.solve_s), 3),
        "greedy_objective": g_obj,
        "columns": model.n_col,
        "rows": int(model.M.shape[0]),
        "stopped_by": "time_limit" if res.time_limited else "work_or_gap",
    }
    bound = float(res.bound) if np.isfinite(res.bound) else float("inf")
    x = res.x
    bp = np.full(prob.n_cand, -1, dtype=np.int64)
    if x is not None:
        T = prob.n_periods
        y = np.asarray(x[: prob.n_cand * T]).reshape(prob.n_cand, T) > 0.5
        bp = np.where(y.any(axis=1), np.argmax(y, axis=1), -1).astype(np.int64)
    if x is not None and is_feasible(red, bp) and evaluate(red, bp) >= g_obj - 1e-9:
        val = evaluate(red, bp)
        return PhasingSolution(bp, val, max(bound, val), "milp", log)
    if start is None:
        raise InfeasibleModelError(
            msgid=N_(
                "phasing: no build plan meets the budgets, group minimums and spacing (HiGHS:"
                " {status}); raise phasing.periods[*].budget or lower "
                "sites.min_new_site_spacing_m"
            ),
            status=res.status,
        )
    return PhasingSolution(start.build_period, start.objective, bound, "greedy", log)
