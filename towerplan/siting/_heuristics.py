"""Primal heuristics of the MCLP (private): lazy greedy, swap local search, Lagrangian
rounding and large-neighbourhood search; all bounded by deterministic work.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import heapq
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from towerplan.errors import N_, InfeasibleModelError
from towerplan.siting._exact import solve_milp
from towerplan.siting._highs import Runner, WorkLimits, solve_model
from towerplan.siting._model import (
    _TOL,
    LNS_SUB_CHECKPOINTS,
    LNS_SUB_NODES,
    LNS_SUBPROBLEMS,
    SWAP_PASSES,
    MCLPProblem,
    MCLPSolution,
    SafetyStop,
    _gather,
    _pick_tenants,
    _type_values,
    build_problem,
    evaluate,
)
from towerplan.siting._speculate import Captured, SolveRequest, Speculator, capture

logger = logging.getLogger(__name__)


def greedy(prob: MCLPProblem) -> MCLPSolution:
    """Lazy greedy with quotas, tenancy and conflicts.

    Raises
    ------
    InfeasibleModelError
        When the conflicts (minimum spacing) leave too few candidates to fill the quotas.
    """
    t0 = time.perf_counter()
    m, n_op = prob.n_cand, prob.n_ops
    Acsc = prob.A.tocsc()
    Wres = prob.W.copy()
    G = np.asarray(prob.A.T @ Wres) + prob.C if prob.n_rows else prob.C.copy()
    D, S = _type_values(G, prob.cap)
    quota = [prob.n_dedicated, prob.n_shared]
    heap: list[tuple[float, int, int]] = []
    if quota[0]:
        heap.extend((-float(D[j]), j, 0) for j in range(m))
    if quota[1]:
        heap.extend((-float(S[j]), j, 1) for j in range(m) if np.isfinite(S[j]))
    heapq.heapify(heap)
    is_open = np.zeros(m, dtype=bool)
    blocked = np.zeros(m, dtype=bool)
    used_c = np.zeros((m, n_op), dtype=bool)
    sites: list[int] = []
    tenants: list[np.ndarray] = []
    shared: list[bool] = []
    evals = 0
    scale = max(prob.total_weight, 1.0)
    while (quota[0] or quota[1]) and heap:
        _, j, t = heapq.heappop(heap)
        if is_open[j] or blocked[j] or quota[t] == 0:
            continue
        rows = Acsc.indices[Acsc.indptr[j] : Acsc.indptr[j + 1]]
        g = Wres[rows].sum(axis=0) + prob.C[j] * (~used_c[j])
        evals += 1
        tm = _pick_tenants(g, bool(t), int(prob.cap[j]))
        v = float(g[tm].sum())
        if heap and v < -heap[0][0] - _TOL * scale:
            heapq.heappush(heap, (-v, j, t))
            continue
        is_open[j] = True
        sites.append(j)
        tenants.append(tm)
        shared.append(bool(t))
        quota[t] -= 1
        Wres[np.ix_(rows, np.flatnonzero(tm))] = 0.0
        used_c[j] |= tm
        if prob.conflicts is not None:
            blocked[
                prob.conflicts.indices[prob.conflicts.indptr[j] : prob.conflicts.indptr[j + 1]]
            ] = True
    if quota[0] or quota[1]:
        raise InfeasibleModelError(
            msgid=N_(
                "could not place all new structures: {dedicated} dedicated and {shared} "
                "shared left with no admissible candidate (minimum spacing between new sites "
                "or tenancy blocks them); lower min_spacing_m, add candidates or lower the "
                "quotas"
            ),
            dedicated=quota[0],
            shared=quota[1],
        )
    sol = MCLPSolution(
        sites=np.array(sites, dtype=np.int64),
        tenants=np.array(tenants, dtype=bool).reshape(len(sites), n_op),
        shared=np.array(shared, dtype=bool),
        method="greedy",
    )
    sol.objective = evaluate(prob, sol)
    sol.log = {"greedy_s": time.perf_counter() - t0, "greedy_evaluations": evals}
    return sol


_REACH_CACHE_ENTRIES = 20_000_000
"""Coverage entries the swap search keeps per state in its per-candidate reach cache
(``_SwapState.reach``; beyond it the reach of a candidate is recomputed on each use)."""


class _Reach(NamedTuple):
    """What the swap search needs of one candidate's rows (``_SwapState._reach``)."""

    rows: np.ndarray
    """Rows covered by the candidate."""
    W: np.ndarray
    """Their weights ``W[rows]``."""
    uc: np.ndarray
    """The candidates covering one of them (sorted)."""
    bins: np.ndarray
    """Per coverage entry of those rows (row by row, in CSR order) and operator: its
    ``(candidate in uc, operator)`` bin, flattened."""
    pos: np.ndarray
    """Per coverage entry: its row's position in ``rows``."""
    base: np.ndarray
    """``rows * n_ops`` (flat index of each row's first operator)."""
    flat: np.ndarray
    """Flat indices of ``(rows, every operator)``."""
    uc_flat: np.ndarray
    """Flat indices of ``(uc, every operator)`` in ``G``."""


class _SwapState:
    """Mutable bookkeeping of :func:`local_search`: coverage counts, residual weights, values."""

    def __init__(self, prob: MCLPProblem, sol: MCLPSolution) -> None:
        m, n_op = prob.n_cand, prob.n_ops
        self.prob = prob
        self.n_op = n_op
        A = prob.A
        self.Acsc = _csc(prob)
        self.sites = sol.sites.copy()
        self.ten = sol.tenants.copy()
        self.shared = sol.shared.copy()
        sites, ten = self.sites, self.ten
        self.cnt = np.ascontiguousarray(
            np.asarray(A[:, sites].astype(np.int32) @ ten.astype(np.int32)).reshape(
                prob.n_rows, n_op
            )
        )
        self.Wres = prob.W * (self.cnt == 0)
        self.open_ten = np.zeros((m, n_op), dtype=bool)
        self.open_ten[sites] = ten
        self.G = (np.asarray(A.T @ self.Wres) if prob.n_rows else np.zeros((m, n_op))) + prob.C * (
            ~self.open_ten
        )
        self.D, self.S = _type_values(self.G, prob.cap)
        # flat views: 1-D fancy indexing costs less than 2-D (the same elements)
        # (C-contiguous arrays: ravel is a view)
        self.Wres, self.G = np.ascontiguousarray(self.Wres), np.ascontiguousarray(self.G)
        self.cf, self.Wf, self.Gf = self.cnt.ravel(), self.Wres.ravel(), self.G.ravel()
        k = np.minimum(prob.cap, n_op)
        # S: the sum of the k best values, at this column of the right-to-left cumulative
        # sum of the ascending values (-inf where k < 2)
        self.s_col = n_op - np.maximum(k, 1)
        self.s_inf = np.where(k >= 2, 0.0, -np.inf)
        self.is_open = np.zeros(m, dtype=bool)
        self.is_open[sites] = True
        self.nblock = np.zeros(m, dtype=np.int64)
        self.seen = np.zeros(m, dtype=bool)  # scratch of _reach (all False between calls)
        self.where = np.zeros(m, dtype=np.int64)  # scratch of _reach
        self.reach: dict[int, _Reach] = {}
        self.reach_entries = 0
        self.last: tuple[int, _Reach, np.ndarray, np.ndarray] | None = None
        conf = prob.conflicts
        if conf is not None:
            for j in sites:
                self.nblock[conf.indices[conf.indptr[j] : conf.indptr[j + 1]]] += 1
        # 0 where a structure may open (closed, no open spacing neighbour), else -inf:
        # D + pen is np.where(admissible, D, -inf) (adding 0.0 changes no value)
        self.pen = np.where(~self.is_open & (self.nblock == 0), 0.0, -np.inf)

    def col_rows(self, j: int) -> np.ndarray:
        """Rows covered by candidate ``j``."""
        return self.Acsc.indices[self.Acsc.indptr[j] : self.Acsc.indptr[j + 1]]

    def _reach(self, j: int) -> _Reach:
        """The :class:`_Reach` of candidate ``j`` (cached while the budget lasts)."""
        got = self.reach.get(j)
        if got is not None:
            return got
        A, n_op = self.prob.A, self.n_op
        rows = self.col_rows(j)
        pos, cols = _gather(A.indptr, A.indices, rows)
        self.seen[cols] = True  # uc, inv as np.unique(cols, return_inverse=True), no sort
        uc = np.flatnonzero(self.seen)
        self.seen[uc] = False
        self.where[uc] = np.arange(len(uc))
        ops = np.arange(n_op)
        bins = (self.where.take(cols).reshape(-1, 1) * n_op + ops).ravel()
        base = rows.astype(np.int64) * n_op
        got = _Reach(
            rows,
            self.prob.W.take(rows, axis=0),
            uc,
            bins,
            pos,
            base,
            (base.reshape(-1, 1) + ops).ravel(),
            (uc.reshape(-1, 1) * n_op + ops).ravel(),
        )
        if self.reach_entries + len(bins) <= _REACH_CACHE_ENTRIES:
            self.reach[j] = got
            self.reach_entries += len(bins)
        return got

    def block(self, j: int, step: int) -> None:
        """Add ``step`` to the conflict counters of the neighbours of ``j`` (after ``j``
        opened or closed) and update ``pen`` of ``j`` and its neighbours."""
        conf = self.prob.conflicts
        self.pen[j] = -np.inf if self.is_open[j] or self.nblock[j] else 0.0
        if conf is not None and conf.indptr[j + 1] > conf.indptr[j]:
            nb = conf.indices[conf.indptr[j] : conf.indptr[j + 1]]
            self.nblock[nb] += step
            if step > 0:  # all of them blocked now
                self.pen[nb] = -np.inf
            else:
                ok = ~self.is_open.take(nb) & (self.nblock.take(nb) == 0)
                self.pen[nb] = np.where(ok, 0.0, -np.inf)

    def refresh(self, j: int, extra_cols: np.ndarray) -> None:
        """Recompute Wres on the rows of candidate ``j``, G on the candidates sharing one
        (``extra_cols``: G from scratch) and D, S on both.

        One bincount over every coverage entry of those rows: the rows whose residual
        weight did not change add exact zeros, so each (candidate, operator) sum is the
        one over the changed rows alone, in the same order.  The change of G is kept in
        ``last`` (:meth:`undo` reverts it).
        """
        r = self._reach(j)
        rows, uc = r.rows, r.uc
        old = self.Wres.take(rows, axis=0)
        newres = r.W * (self.cnt.take(rows, axis=0) == 0)
        self.Wf[r.flat] = newres.ravel()  # = Wres[rows] = newres
        dW = (newres - old).take(r.pos, axis=0).ravel()
        dG = np.bincount(r.bins, weights=dW, minlength=len(r.uc_flat))
        self.Gf[r.uc_flat] += dG  # = G[uc] += dG (uc unique)
        self.last = (j, r, old, dG)
        self._extra(extra_cols, j, newres)
        self._values(np.concatenate([uc, extra_cols]))

    def undo(self, j: int) -> None:
        """:meth:`refresh` after the rows of ``j`` got back the counts they had before the
        last refresh (same ``j``): Wres restored, G changed by minus the last change (the
        same sums negated, so the same floats as a refresh), ``j``'s G from scratch."""
        last = self.last
        assert last is not None and last[0] == j
        _, r, old, dG = last
        self.Wf[r.flat] = old.ravel()
        self.Gf[r.uc_flat] -= dG
        self.last = None
        extra = np.array([j])
        self._extra(extra, j, old)
        self._values(np.concatenate([r.uc, extra]))

    def _extra(self, cols: np.ndarray, j: int, res_j: np.ndarray) -> None:
        """G of the candidates ``cols`` from scratch (their rows' residual weights;
        ``res_j``: those of candidate ``j``'s rows, already at hand)."""
        G, Wres, C = self.G, self.Wres, self.prob.C
        for c in cols:
            res = res_j if c == j else Wres.take(self.col_rows(int(c)), axis=0)
            G[c] = res.sum(axis=0) + C[c] * (~self.open_ten[c])

    def _values(self, aff: np.ndarray) -> None:
        """D and S of the candidates ``aff`` from G, the values of ``_type_values`` (a
        repeated candidate gets the same values).

        ``_type_values`` sums the values sorted in decreasing order from the left
        (``cumsum``); here the ascending ones from the right, one column at a time: the
        same additions (a + b = b + a exactly), without cumsum's per-call overhead.
        """
        n_op = self.n_op
        g = self.G.take(aff, axis=0)
        if n_op < 2:
            self.D[aff] = g.max(axis=1)
            return
        g.sort(axis=1)
        self.D[aff] = g[:, -1]
        for c in range(n_op - 2, -1, -1):
            g[:, c] += g[:, c + 1]
        S = g.ravel().take(np.arange(len(aff)) * n_op + self.s_col.take(aff))
        self.S[aff] = S + self.s_inf.take(aff)

    def count(self, j: int, ops: np.ndarray, step: int) -> None:
        """Add ``step`` to the coverage counts of operators ``ops`` (mask) on the rows of
        ``j`` (= ``cnt[np.ix_(rows, ops)] += step``, one flat column at a time)."""
        base = self._reach(j).base
        for o in np.flatnonzero(ops).tolist():
            idx = base + o
            self.cf[idx] = self.cf.take(idx) + step

    def place(self, s: int, j: int, rows: np.ndarray, tm: np.ndarray) -> None:
        """Open structure ``s`` at candidate ``j`` (covering ``rows``) with tenants ``tm``."""
        self.count(j, tm, 1)
        self.sites[s] = j
        self.ten[s] = tm
        self.is_open[j] = True
        self.open_ten[j] = tm
        self.block(j, 1)

    def remove(self, s: int) -> tuple[int, np.ndarray, np.ndarray, float]:
        """Tentatively remove structure ``s``: (its candidate, tenants, rows, value lost)."""
        j = int(self.sites[s])
        T = self.ten[s].copy()
        r = self._reach(j)
        rows = r.rows
        Tidx = np.flatnonzero(T)
        Wt = r.W.take(Tidx, axis=1)  # = W[np.ix_(rows, Tidx)]
        loss = float((Wt * (self.cnt.take(rows, axis=0).take(Tidx, axis=1) == 1)).sum())
        loss += float(self.prob.C[j, Tidx].sum())
        self.count(j, T, -1)
        self.is_open[j] = False
        self.open_ten[j] = False
        self.block(j, -1)
        self.refresh(j, np.array([j]))
        return j, T, rows, loss

    def try_move(self, s: int, tol: float) -> float | None:
        """Remove structure ``s`` and re-insert the best one of its type; the gain or ``None``."""
        cap = self.prob.cap
        t_shared = bool(self.shared[s])
        j, T, rows, loss = self.remove(s)
        cand_vals = (self.S if t_shared else self.D) + self.pen
        best = int(np.argmax(cand_vals))
        best_v = float(cand_vals[best])
        if best_v > loss + tol and best != j:
            tm = _pick_tenants(self.G[best], t_shared, int(cap[best]))
            self.place(s, best, self.col_rows(best), tm)
            self.refresh(best, np.array([best, j]))
            return best_v - loss
        # restore j (possibly with better tenants at the same place)
        g = self.G[j]
        tm = _pick_tenants(g, t_shared, int(cap[j]))
        gain_new = float(g[tm].sum())
        if gain_new > loss + tol:
            self.place(s, j, rows, tm)
            self.refresh(j, np.array([j]))
            return gain_new - loss
        self.place(s, j, rows, T)
        self.undo(j)
        return None


def local_search(
    prob: MCLPProblem,
    sol: MCLPSolution,
    max_passes: int = SWAP_PASSES,
    seed: int = 0,
    safety: SafetyStop | None = None,
) -> MCLPSolution:
    """Swap local search from ``sol``: move one structure (same type) while it improves.

    For each open structure (in a seeded random order) the structure is removed and the
    best structure of the same type over all admissible candidates (including its own
    location with re-optimised tenants) is inserted if that strictly improves the
    objective.  Stops at a local optimum (no improving swap in a full pass), after
    ``max_passes`` passes, or when the ``safety`` stop fires (``time_limited``).
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    k = len(sol.sites)
    if k == 0:
        return sol
    st = _SwapState(prob, sol)
    scale = max(prob.total_weight, 1.0)
    moves = 0
    passes = 0
    timed_out = False
    obj = sol.objective if np.isfinite(sol.objective) else evaluate(prob, sol)
    improved = True
    while improved and passes < max_passes:
        improved = False
        passes += 1
        for s in rng.permutation(k):
            if safety is not None and safety.expired():
                timed_out = True
                break
            gain = st.try_move(int(s), 1e-9 * scale)
            if gain is not None:
                obj += gain
                moves += 1
                improved = True
        if timed_out:
            break
    out = MCLPSolution(
        sites=st.sites, tenants=st.ten, shared=st.shared, method=sol.method + "+swap"
    )
    out.time_limited = sol.time_limited or timed_out
    out.objective = evaluate(prob, out)
    if abs(out.objective - obj) > 1e-6 * scale:
        logger.debug("local search bookkeeping drift %.6g vs %.6g", obj, out.objective)
    out.log = dict(sol.log)
    out.log.update(
        {
            "swap_s": time.perf_counter() - t0,
            "swap_moves": moves,
            "swap_passes": passes,
            "swap_local_optimum": not improved,
        }
    )
    return out


def _two_type_select(
    D: np.ndarray, S: np.ndarray, n_d: int, n_s: int
) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint index sets (dedicated, shared) of sizes ``n_d``, ``n_s`` maximising the sum.

    Exchange argument: some optimum has every shared pick ahead of every dedicated pick in
    the order of decreasing ``S - D``; scan the split point with two heaps.
    """
    m = len(D)
    if n_s == 0:
        return np.argsort(-D, kind="stable")[:n_d], np.zeros(0, dtype=np.int64)
    if n_d == 0:
        return np.zeros(0, dtype=np.int64), np.argsort(-S, kind="stable")[:n_s]
    order = np.argsort(-(S - D), kind="stable")
    Ss, Ds = S[order], D[order]
    pre = np.full(m + 1, -np.inf)
    h: list[float] = []
    tot = 0.0
    for t in range(m):
        heapq.heappush(h, float(Ss[t]))
        tot += float(Ss[t])
        if len(h) > n_s:
            tot -= heapq.heappop(h)
        if len(h) == n_s:
            pre[t + 1] = tot
    suf = np.full(m + 1, -np.inf)
    h = []
    tot = 0.0
    for t in range(m - 1, -1, -1):
        heapq.heappush(h, float(Ds[t]))
        tot += float(Ds[t])
        if len(h) > n_d:
            tot -= heapq.heappop(h)
        if len(h) == n_d:
            suf[t] = tot
    split = int(np.argmax(pre + suf))
    head, tail = order[:split], order[split:]
    sh = head[np.argsort(-S[head], kind="stable")[:n_s]]
    de = tail[np.argsort(-D[tail], kind="stable")[:n_d]]
    return de, sh


def lagrangian_start(prob: MCLPProblem) -> MCLPSolution | None:
    """A feasible solution from the best Lagrangian multipliers (``None`` if unavailable).

    Candidates are ranked by their Lagrangian values ``c = A^T lam + C`` and the best
    ``n_dedicated`` / ``n_shared`` structures are picked exactly by value; minimum-spacing
    conflicts are then repaired greedily (a conflicting pick is replaced by the next best
    admissible candidate).
    """
    mult = prob.info.get("_multipliers")
    if mult is None or prob.p == 0:
        return None
    lam, _ = mult
    c = (np.asarray(prob.A.T @ lam) if prob.n_rows else np.zeros_like(prob.C)) + prob.C
    D, S = _type_values(c, prob.cap)
    de, sh = _two_type_select(D, S, prob.n_dedicated, prob.n_shared)
    picks = [(int(j), False) for j in de] + [(int(j), True) for j in sh]
    if prob.conflicts is not None:
        conf = prob.conflicts
        val = np.maximum(D, np.where(np.isfinite(S), S, -np.inf))
        ranked = np.argsort(-val, kind="stable")
        used = np.zeros(prob.n_cand, dtype=bool)
        blocked = np.zeros(prob.n_cand, dtype=bool)
        kept: list[tuple[int, bool]] = []
        missing: list[bool] = []
        for j, t in sorted(picks, key=lambda q: -(S[q[0]] if q[1] else D[q[0]])):
            if blocked[j] or used[j]:
                missing.append(t)
                continue
            kept.append((j, t))
            used[j] = True
            blocked[conf.indices[conf.indptr[j] : conf.indptr[j + 1]]] = True
        for t in missing:
            ok = ranked[~used[ranked] & ~blocked[ranked] & ((prob.cap[ranked] >= 2) | (not t))]
            if len(ok) == 0:
                return None
            j = int(ok[0])
            kept.append((j, t))
            used[j] = True
            blocked[conf.indices[conf.indptr[j] : conf.indptr[j + 1]]] = True
        picks = kept
    sites = np.array([j for j, _ in picks], dtype=np.int64)
    shared = np.array([t for _, t in picks], dtype=bool)
    ten = np.array(
        [_pick_tenants(c[j], t, int(prob.cap[j])) for j, t in picks], dtype=bool
    ).reshape(len(picks), prob.n_ops)
    sol = MCLPSolution(sites, ten, shared, method="Lagrangian rounding")
    sol.objective = evaluate(prob, sol)
    return sol


def _lns_window(prob: MCLPProblem) -> int:
    """Initial LNS window: multi-operator window MILPs are costlier, so start smaller."""
    return 8 if prob.n_ops == 1 or prob.n_shared == 0 else 4


def _lagrangian_seeds(prob: MCLPProblem, sol: MCLPSolution) -> np.ndarray | None:
    """Candidates where ``sol`` disagrees most with the Lagrangian relaxation."""
    mult = prob.info.get("_multipliers")
    if mult is None or prob.p == 0 or prob.p >= prob.n_cand:
        return None
    lam, nu = mult
    c = (np.asarray(prob.A.T @ lam) if prob.n_rows else np.zeros_like(prob.C)) + prob.C
    D, S = _type_values(c, prob.cap)
    val = np.maximum(D, S - nu) if prob.n_shared else D
    mu = float(np.partition(val, prob.n_cand - prob.p)[prob.n_cand - prob.p])
    is_open = np.zeros(prob.n_cand, dtype=bool)
    is_open[sol.sites] = True
    want = np.flatnonzero(~is_open & (val > mu))
    want = want[np.argsort(-(val[want] - mu), kind="stable")]
    drop = np.flatnonzero(is_open & (val < mu))
    drop = drop[np.argsort(-(mu - val[drop]), kind="stable")]
    out = np.empty(len(want) + len(drop), dtype=np.int64)
    n = min(len(want), len(drop))
    out[0 : 2 * n : 2] = want[:n]
    out[1 : 2 * n : 2] = drop[:n]
    out[2 * n :] = np.concatenate([want[n:], drop[n:]])
    return out


def _lagrangian_pairs(prob: MCLPProblem, sol: MCLPSolution) -> np.ndarray | None:
    """Pairs (open structure to close, candidate to open) where ``sol`` and the
    Lagrangian relaxation disagree most, as an ``(n, 2)`` array of candidate indices.

    The ``i``-th structure the relaxation would rather close is paired with the ``i``-th
    candidate it would rather open (both ranked by how far their Lagrangian value is
    from the ``p``-th best); ``None`` without multipliers or disagreement.
    """
    seeds = _lagrangian_seeds(prob, sol)
    if seeds is None:
        return None
    is_open = np.zeros(prob.n_cand, dtype=bool)
    is_open[sol.sites] = True
    drop, want = seeds[is_open[seeds]], seeds[~is_open[seeds]]
    n = min(len(drop), len(want))
    return np.column_stack([drop[:n], want[:n]]) if n else None


def _csc(prob: MCLPProblem) -> sp.csc_matrix:
    """``prob.A`` in CSC form, converted once per problem (cached in ``prob.info``)."""
    got = prob.info.get("_A_csc")
    if isinstance(got, sp.csc_matrix) and got.shape == prob.A.shape and got.nnz == prob.A.nnz:
        return got
    prob.info["_A_csc"] = prob.A.tocsc()
    return prob.info["_A_csc"]


def _adjacency(prob: MCLPProblem) -> sp.csr_matrix:
    """Candidate interaction graph: two candidates are adjacent when they share a row or
    form a spacing pair (``prob.conflicts``)."""
    if "_adjacency" in prob.info and isinstance(prob.info["_adjacency"], sp.csr_matrix):
        return prob.info["_adjacency"]
    A = prob.A.astype(np.float32).tocsc()
    adj = (A.T @ A).tocsr()
    adj.data[:] = 1.0
    adj = adj.astype(bool)
    if prob.conflicts is not None:
        adj = (adj + prob.conflicts).astype(bool).tocsr()
    prob.info["_adjacency"] = adj
    return adj


def _subproblem(
    prob: MCLPProblem,
    region: np.ndarray,
    fixed_sites: np.ndarray,
    fixed_ten: np.ndarray,
    n_ded: int,
    n_sh: int,
) -> tuple[MCLPProblem, np.ndarray]:
    """Restriction of ``prob`` to candidates ``region`` given fixed open structures.

    Returns the sub-problem (offset = 0) and the candidate map (sub index -> ``prob`` index).
    """
    n_op = prob.n_ops
    region = np.asarray(region, dtype=np.int64)
    region = region[~np.isin(region, fixed_sites)]
    if prob.conflicts is not None and len(fixed_sites):
        blocked = np.asarray(prob.conflicts[fixed_sites].sum(axis=0)).ravel() > 0
        region = region[~blocked[region]]
    Acsc = _csc(prob)
    sub_cols = Acsc[:, region]
    rows = np.flatnonzero(np.diff(sub_cols.tocsr().indptr) > 0)
    Ar = prob.A[rows]
    # residual weights of those rows given the fixed structures
    if len(fixed_sites):
        cnt = np.asarray(Ar[:, fixed_sites].astype(np.int32) @ fixed_ten.astype(np.int32))
        Wr = prob.W[rows] * (cnt.reshape(len(rows), n_op) == 0)
    else:
        Wr = prob.W[rows].copy()
    conf = prob.conflicts[region][:, region] if prob.conflicts is not None else None
    sub = build_problem(
        sub_cols.tocsr()[rows],
        Wr,
        n_ded,
        n_sh,
        prob.cap[region],
        conf if conf is not None and conf.nnz else None,
        0.0,
    )
    sub.C = sub.C + prob.C[region]
    return sub, region


def _lns_freed(
    prob: MCLPProblem, adj: sp.csr_matrix, sites: np.ndarray, seed_c: int, window: int
) -> list[int]:
    """Positions of up to ``window`` open structures nearest ``seed_c`` (BFS over ``adj``)."""
    k = len(sites)
    pos_of = {int(j): i for i, j in enumerate(sites)}
    frontier = np.array([seed_c])
    seen = np.zeros(prob.n_cand, dtype=bool)
    seen[frontier] = True
    freed: list[int] = [pos_of[seed_c]] if seed_c in pos_of else []
    while len(freed) < window and len(frontier):
        nb = np.unique(_gather(adj.indptr, adj.indices, frontier)[1])
        nb = nb[~seen[nb]]
        seen[nb] = True
        for j in nb:
            q = pos_of.get(int(j))
            if q is not None and q not in freed:
                freed.append(q)
        frontier = nb
        if seen.sum() > 40 * window * max(1, prob.n_cand // max(1, 10 * k)):
            break
    return freed


def _lns_limits(
    safety: SafetyStop | None, sub_nodes: int, sub_gap: float, light: bool = False
) -> WorkLimits:
    """Work limits of one LNS window MILP (``light``: no HiGHS presolve / heuristics)."""
    if safety is not None:
        return safety.limits(sub_nodes, sub_gap, LNS_SUB_CHECKPOINTS, light_root=light)
    return WorkLimits(
        max_nodes=sub_nodes,
        mip_gap=sub_gap,
        max_checkpoints=LNS_SUB_CHECKPOINTS,
        light_root=light,
    )


def _lns_window_problem(
    prob: MCLPProblem,
    adj: sp.csr_matrix,
    sites: np.ndarray,
    ten: np.ndarray,
    shared: np.ndarray,
    seed_c: int | tuple[int, ...],
    window: int,
) -> tuple[MCLPProblem, np.ndarray, MCLPSolution, np.ndarray] | None:
    """Window sub-problem around ``seed_c``: (sub, candidate map, current solution, kept mask).

    ``seed_c`` is one centre or several (a *paired* window: ``window // len(seed_c)``
    structures around each centre, re-solved together, so structures can move between
    far-apart places).  ``None`` when the window holds no open structure or loses one.
    """
    centres = (seed_c,) if isinstance(seed_c, int | np.integer) else tuple(seed_c)
    per = window if len(centres) == 1 else max(1, window // len(centres))
    freed: list[int] = []
    for c in centres:
        freed.extend(q for q in _lns_freed(prob, adj, sites, int(c), per)[:per] if q not in freed)
    if not freed:
        return None
    freed_idx = np.array(freed[:window], dtype=np.int64)
    fcand = sites[freed_idx]
    cen = np.array(centres, dtype=np.int64)
    region = np.unique(
        np.concatenate(
            [fcand, cen, _gather(adj.indptr, adj.indices, np.concatenate([fcand, cen]))[1]]
        )
    )
    keep_mask = np.ones(len(sites), dtype=bool)
    keep_mask[freed_idx] = False
    sub, cmap = _subproblem(
        prob,
        region,
        sites[keep_mask],
        ten[keep_mask],
        int((~shared[freed_idx]).sum()),
        int(shared[freed_idx].sum()),
    )
    lpos = np.searchsorted(cmap, fcand)
    if not np.array_equal(cmap[np.clip(lpos, 0, len(cmap) - 1)], fcand):
        return None
    cur = MCLPSolution(lpos, ten[freed_idx], shared[freed_idx])
    cur.objective = evaluate(sub, cur)
    return sub, cmap, cur, keep_mask


@dataclass(frozen=True)
class WindowStep:
    """An improving LNS window re-solve: the whole new solution and its exact gain."""

    sites: np.ndarray
    tenants: np.ndarray
    shared: np.ndarray
    gain: float
    typed: bool = False
    """True when the step changed the window's count of shared structures."""


WindowProblem = tuple[MCLPProblem, np.ndarray, MCLPSolution, np.ndarray]
"""A window as built by :func:`_lns_window_problem`: (sub-problem, candidate map, current
window solution, mask of the structures kept outside the window)."""
WindowSolver = Callable[
    [MCLPProblem, WindowProblem, tuple[np.ndarray, np.ndarray, np.ndarray], WorkLimits, Runner],
    tuple["WindowStep | None", bool],
]
"""Re-solves a window: ``(prob, window, (sites, tenants, shared), limits, run) -> (step or
None, time_limited)``.  It builds its MILP from its arguments only (caches keyed by the
state allowed) and solves it by one call of ``run`` (see
:mod:`~towerplan.siting._speculate`)."""


def _plain_window(
    prob: MCLPProblem,
    built: WindowProblem,
    state: tuple[np.ndarray, np.ndarray, np.ndarray],
    limits: WorkLimits,
    run: Runner = solve_model,
) -> tuple[WindowStep | None, bool]:
    """The window MILP with the window's numbers of dedicated and shared structures kept."""
    sub, cmap, cur, keep_mask = built
    sites, ten, shared = state
    try:
        res = solve_milp(sub, limits, start=cur, run=run)
    except InfeasibleModelError:
        return None, False
    step = WindowStep(
        np.concatenate([sites[keep_mask], cmap[res.sites]]),
        np.concatenate([ten[keep_mask], res.tenants]),
        np.concatenate([shared[keep_mask], res.shared]),
        res.objective - cur.objective,
    )
    return step, res.time_limited


@dataclass
class _LnsControl:
    """The LNS loop's control state: window size, windows without improvement, seed queue,
    the seed-order generator and window re-solves so far (copied to look one window
    ahead without touching the real one)."""

    window: int
    stale: int
    queue: list[int | tuple[int, ...]]
    rng: np.random.Generator
    n_sub: int = 0
    timed_out: bool = False

    def ahead(self) -> _LnsControl:
        """A copy in the state after the current window, assuming it brings no improvement."""
        return _LnsControl(
            self.window, self.stale + 1, list(self.queue), copy.deepcopy(self.rng), self.n_sub
        )


@dataclass(frozen=True)
class _LnsSpace:
    """What the LNS loop's control flow reads besides its state: the problem, its
    interaction graph, the number of structures, the largest window, the re-solve budget
    and the safety stop (``None`` when looking ahead: a prediction never stops)."""

    prob: MCLPProblem
    adj: sp.csr_matrix
    k: int
    max_window: int
    max_subproblems: int
    safety: SafetyStop | None


def _next_window(
    ctl: _LnsControl,
    space: _LnsSpace,
    state: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> WindowProblem | None:
    """Advance ``ctl`` to the next window to re-solve and build it, as the LNS loop does
    (windows that hold no structure count as without improvement); ``None`` when the
    loop ends (budget, largest window stale, or the safety stop: ``ctl.timed_out``)."""
    sites, ten, shared = state
    while ctl.n_sub < space.max_subproblems:
        if space.safety is not None and space.safety.expired():
            ctl.timed_out = True
            return None
        if ctl.stale >= space.k:
            if ctl.window >= space.max_window:
                return None
            ctl.window = min(space.max_window, ctl.window + 2)
            ctl.stale = 0
        if not ctl.queue:
            ctl.queue = [int(j) for j in sites[ctl.rng.permutation(space.k)]]
        seed_c = ctl.queue.pop()
        built = _lns_window_problem(space.prob, space.adj, sites, ten, shared, seed_c, ctl.window)
        if built is None:
            ctl.stale += 1
            continue
        ctl.n_sub += 1
        return built
    return None


def _predict(
    ctl: _LnsControl,
    space: _LnsSpace,
    state: tuple[np.ndarray, np.ndarray, np.ndarray],
    limits: WorkLimits,
    solver: WindowSolver,
) -> SolveRequest | None:
    """The solve request of the window after the current one if the current one brings no
    improvement (the loop's control flow run on copies; ``None``: no such window or
    solve)."""
    nxt = ctl.ahead()
    built = _next_window(nxt, replace(space, safety=None), state)
    if built is None:
        return None
    try:
        solver(space.prob, built, state, limits, capture)
    except Captured as got:
        return got.request
    return None


def lns(
    prob: MCLPProblem,
    sol: MCLPSolution,
    max_subproblems: int = LNS_SUBPROBLEMS,
    seed: int = 0,
    window: int = 8,
    sub_nodes: int = LNS_SUB_NODES,
    target: float = float("inf"),
    priority_seeds: np.ndarray | None = None,
    sub_gap: float = 1e-4,
    safety: SafetyStop | None = None,
    light_windows: bool = False,
    window_solver: WindowSolver | None = None,
    threads: int = 1,
) -> MCLPSolution:
    """Large-neighbourhood search: re-optimise windows of nearby structures exactly.

    A window is a seed structure plus the open structures nearest to it in the
    candidate interaction graph (up to ``window``); they are freed together with all
    candidates adjacent to them, everything else stays fixed, and the window is
    re-solved as a small MILP (same numbers of dedicated and shared structures,
    warm-started from the current configuration).  Improvements are accepted; the
    search cycles over seed structures in a seeded random order; after a full cycle
    without improvement the window grows by 2 (up to ``4 * window``).  Each window MILP
    is bounded by ``sub_nodes`` branch-and-bound nodes.  Stops when the largest window
    brings no improvement, the objective reaches ``target``, after ``max_subproblems``
    window re-solves, or when the ``safety`` stop fires (``time_limited``).
    ``priority_seeds`` (candidate indices, open or not) are tried as window centres
    first, e.g. candidates the Lagrangian relaxation would rather open or close than the
    current solution does; a row of an ``(n, 2)`` array is a *paired* window (both
    centres, ``window // 2`` structures around each, see :func:`_lagrangian_pairs`).
    ``light_windows`` solves the window MILPs without HiGHS's presolve and primal
    heuristics (same optima, less time).  ``window_solver`` re-solves a window instead of
    :func:`_plain_window` (e.g. the multi-operator windows of
    :func:`~towerplan.siting._multiop.flex_window_solver`, whose count of shared
    structures may change; ``lns_type_moves`` counts the improvements that changed it).
    ``threads`` >= 2 solves the next window speculatively beside the current one
    (:mod:`~towerplan.siting._speculate`: the same result bit for bit;
    ``speculative_hits`` / ``speculative_misses`` count the speculations used and
    discarded).  ``wall_lns_s`` / ``cpu_lns_s`` add up the LNS phases' wall and CPU
    seconds (all threads of the process).
    """
    t0, c0 = time.perf_counter(), time.process_time()
    k = len(sol.sites)
    if k == 0:
        return sol
    queue: list[int | tuple[int, ...]] = [
        int(j) if np.ndim(j) == 0 else tuple(int(q) for q in j)
        for j in (priority_seeds if priority_seeds is not None else [])
    ]
    queue.reverse()
    ctl = _LnsControl(window, 0, queue, np.random.default_rng(seed))
    space = _LnsSpace(
        prob, _adjacency(prob), k, max(window, min(k, 4 * window)), max_subproblems, safety
    )
    solver = window_solver or _plain_window
    limits = _lns_limits(safety, sub_nodes, sub_gap, light_windows)
    spec = Speculator(2) if threads > 1 else None
    with spec if spec is not None else contextlib.nullcontext():
        state, n_imp, n_typed = _lns_loop(ctl, space, sol, target, solver, limits, spec)
    out = MCLPSolution(*state, method=sol.method + "+LNS")
    out.objective = evaluate(prob, out)
    out.time_limited = sol.time_limited or ctl.timed_out
    out.log = dict(sol.log)
    out.log.update(
        lns_s=time.perf_counter() - t0,
        lns_subproblems=ctl.n_sub,
        lns_improvements=n_imp,
        lns_final_window=ctl.window,
    )
    # all LNS phases of a solve: wall and CPU seconds (every thread), speculations
    out.log["wall_lns_s"] = out.log.get("wall_lns_s", 0.0) + time.perf_counter() - t0
    out.log["cpu_lns_s"] = out.log.get("cpu_lns_s", 0.0) + time.process_time() - c0
    if spec is not None:
        for key, n in (("speculative_hits", spec.hits), ("speculative_misses", spec.misses)):
            out.log[key] = out.log.get(key, 0) + n
    if window_solver is not None:
        out.log["lns_type_moves"] = out.log.get("lns_type_moves", 0) + n_typed
    return out


def _lns_loop(
    ctl: _LnsControl,
    space: _LnsSpace,
    sol: MCLPSolution,
    target: float,
    solver: WindowSolver,
    limits: WorkLimits,
    spec: Speculator | None,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], int, int]:
    """The loop of :func:`lns`: returns the final (sites, tenants, shared) and the numbers
    of improving windows and of those that changed a type count."""
    state = (sol.sites.copy(), sol.tenants.copy(), sol.shared.copy())
    obj = sol.objective
    scale = max(space.prob.total_weight, 1.0)
    n_imp = n_typed = 0
    while obj < target:
        built = _next_window(ctl, space, state)
        if built is None:
            break
        lim = limits
        if space.safety is not None:
            lim = replace(limits, time_limit_s=max(space.safety.left(), 0.01))
        run: Runner = solve_model
        if spec is not None:
            spec.step = ctl.n_sub
            spec.ahead = functools.partial(_predict, ctl, space, state, lim, solver)
            run = spec.run
        step, cut = solver(space.prob, built, state, lim, run)
        if spec is not None:
            spec.ahead = None
        ctl.timed_out = ctl.timed_out or cut
        if step is not None and step.gain > 1e-9 * scale:
            state = (step.sites, step.tenants, step.shared)
            obj += step.gain
            n_imp += 1
            n_typed += int(step.typed)
            ctl.stale = 0
        else:
            ctl.stale += 1
    return state, n_imp, n_typed


def _type_change_values(
    prob: MCLPProblem, sol: MCLPSolution, cnt: np.ndarray, AT: sp.csr_matrix
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per open structure: value lost by making it dedicated, gained by making it shared.

    ``cnt`` is the coverage count per (row, operator), ``AT`` the coverage columns of
    ``sol.sites`` transposed (float CSR, one row per structure).  A shared structure keeps its tenant of largest unique value (``loss``:
    the unique value of the others); a dedicated one adds its best other operators (at
    least one, up to ``cap - 1``; ``gain``: their newly covered value).  ``keep[s]`` is the
    tenant kept or the mask of the new tenants.  Both are exact for one structure alone
    (other structures unchanged).
    """
    k, n_op = sol.tenants.shape
    T = sol.tenants
    Cs = prob.C[sol.sites]
    # only the rows the structures cover: the same products, summed in the same order
    seen = np.zeros(prob.n_rows, dtype=bool)
    seen[AT.indices] = True
    cov = np.flatnonzero(seen)  # = np.unique(AT.indices), without its sort or hash table
    where = np.empty(prob.n_rows, dtype=AT.indices.dtype)
    where[cov] = np.arange(len(cov))
    ATr = sp.csr_matrix((AT.data, where.take(AT.indices), AT.indptr), (k, len(cov)))
    W, cnt = prob.W[cov], cnt[cov]
    u = np.asarray(ATr @ (W * (cnt == 1))).reshape(k, n_op) + Cs
    u = np.where(T, u, -np.inf)
    best_o = np.argmax(u, axis=1)
    rows = np.arange(k)
    loss = np.where(sol.shared, np.where(T, u, 0.0).sum(axis=1) - u[rows, best_o], np.inf)
    g = np.asarray(ATr @ (W * (cnt == 0))).reshape(k, n_op) + Cs * ~T
    g = np.where(T, -np.inf, g)
    order = np.argsort(-g, axis=1, kind="stable")
    gs = np.take_along_axis(g, order, axis=1)
    n_add = np.minimum(prob.cap[sol.sites], n_op) - 1
    take = (np.arange(n_op)[None, :] < n_add[:, None]) & (
        (np.arange(n_op)[None, :] == 0) | (gs > 0)
    )
    ok = ~sol.shared & (n_add >= 1)
    gain = np.where(ok, np.where(take, gs, 0.0).sum(axis=1), -np.inf)
    keep = np.zeros((k, n_op), dtype=bool)
    keep[rows, best_o] = sol.shared
    np.put_along_axis(keep, order, take & ok[:, None], axis=1)
    keep[sol.shared] = False
    keep[sol.shared, best_o[sol.shared]] = True
    return loss, gain, keep


def _pair_delta(
    prob: MCLPProblem,
    Acsc: sp.csc_matrix,
    cnt: np.ndarray,
    drop: tuple[int, np.ndarray],
    add: tuple[int, np.ndarray],
) -> float:
    """Exact objective change of removing tenants ``drop[1]`` at candidate ``drop[0]`` and
    adding tenants ``add[1]`` at candidate ``add[0]`` (``cnt``: coverage count per row and
    operator of the current solution)."""
    (ja, oa), (jb, ob) = drop, add
    ra = Acsc.indices[Acsc.indptr[ja] : Acsc.indptr[ja + 1]]
    rb = Acsc.indices[Acsc.indptr[jb] : Acsc.indptr[jb + 1]]
    R = np.sort(np.concatenate([ra, rb]))  # = np.union1d(ra, rb), without its hash table
    first = np.ones(len(R), dtype=bool)
    first[1:] = R[1:] != R[:-1]
    R = R[first]
    new = cnt[R].copy()
    new[np.ix_(np.searchsorted(R, ra), oa)] -= 1
    new[np.ix_(np.searchsorted(R, rb), ob)] += 1
    WR = prob.W[R]
    d = float((WR * (new > 0)).sum() - (WR * (cnt[R] > 0)).sum())
    return d - float(prob.C[ja, oa].sum()) + float(prob.C[jb, ob].sum())


def _type_swap_applied(
    prob: MCLPProblem,
    Acsc: sp.csc_matrix,
    cnt: np.ndarray,
    sites: np.ndarray,
    changes: tuple[tuple[int, np.ndarray, int], ...],
) -> np.ndarray:
    """Apply tenant changes ``(structure, operators, +1/-1)`` to the coverage counts
    ``cnt`` (in place); returns the structures sharing a row (or a spacing pair) with a
    changed one, the changed ones included (sorted)."""
    adj = _adjacency(prob)
    near = np.zeros(prob.n_cand, dtype=bool)
    for s, ops, step in changes:
        j = int(sites[s])
        rows = Acsc.indices[Acsc.indptr[j] : Acsc.indptr[j + 1]]
        for o in np.flatnonzero(ops):
            cnt[rows, o] += step
        near[adj.indices[adj.indptr[j] : adj.indptr[j + 1]]] = True
        near[j] = True
    return np.flatnonzero(near[sites])


def type_swap_search(
    prob: MCLPProblem, sol: MCLPSolution, max_moves: int = SWAP_PASSES, shortlist: int = 8
) -> MCLPSolution:
    """Multi-operator move: one shared structure becomes dedicated, one dedicated becomes shared.

    Swap local search and LNS keep the type of every structure (and the LNS the number of
    each type in a window), so the split of the shared quota over the city is only chosen
    by the start solution; this move changes it while keeping both quotas.  For each move
    the ``shortlist`` shared structures losing least and the ``shortlist`` dedicated ones
    gaining most (one-structure values of :func:`_type_change_values`) are paired, every
    pair's change is evaluated exactly and the best improving one is applied; stops after
    ``max_moves`` moves or when no pair improves.  Deterministic.  After a move only the
    structures sharing a row with the two changed ones get new values and pair changes
    (the others' are computed from unchanged inputs: the same floats).
    """
    t0 = time.perf_counter()
    if prob.n_shared == 0 or prob.n_dedicated == 0 or len(sol.sites) == 0:
        return sol
    scale = max(prob.total_weight, 1.0)
    sites = sol.sites
    ten, shared = sol.tenants.copy(), sol.shared.copy()
    moves = 0
    evals = 0
    Acsc = _csc(prob)
    A_s = prob.A[:, sites].astype(np.int32)
    AT = A_s.T.tocsr().astype(float)  # the sites never change here, only types and tenants
    cnt = np.asarray(A_s @ ten.astype(np.int32)).reshape(prob.n_rows, prob.n_ops)
    loss, gain, keep = _type_change_values(prob, MCLPSolution(sites, ten, shared), cnt, AT)
    deltas: dict[tuple[int, int], float] = {}  # pair changes still exact
    while moves < max_moves:
        sh = np.flatnonzero(shared)
        de = np.flatnonzero(~shared & np.isfinite(gain))
        sh = sh[np.argsort(loss[sh], kind="stable")[:shortlist]]
        de = de[np.argsort(-gain[de], kind="stable")[:shortlist]]
        best: tuple[float, int, int] | None = None
        for a in sh.tolist():
            for b in de.tolist():
                d = deltas.get((a, b))
                if d is None:
                    d = deltas[(a, b)] = _pair_delta(
                        prob,
                        Acsc,
                        cnt,
                        (int(sites[a]), np.flatnonzero(ten[a] & ~keep[a])),
                        (int(sites[b]), np.flatnonzero(keep[b])),
                    )
                evals += 1
                if d > 1e-9 * scale and (best is None or d > best[0]):
                    best = (d, a, b)
        if best is None:
            break
        _, sa, sb = best
        drop, add = ten[sa] & ~keep[sa], keep[sb] & ~ten[sb]
        ten[sa], shared[sa] = keep[sa], False
        ten[sb], shared[sb] = ten[sb] | keep[sb], True
        moves += 1
        idx = _type_swap_applied(prob, Acsc, cnt, sites, ((sa, drop, -1), (sb, add, 1)))
        changed = MCLPSolution(sites[idx], ten[idx], shared[idx])
        loss[idx], gain[idx], keep[idx] = _type_change_values(prob, changed, cnt, AT[idx])
        near = set(idx.tolist())
        deltas = {k: v for k, v in deltas.items() if k[0] not in near and k[1] not in near}
    out = MCLPSolution(sol.sites, ten, shared, method=sol.method + "+type swaps")
    out.objective = evaluate(prob, out)
    out.time_limited = sol.time_limited
    out.log = dict(sol.log)
    out.log.update(
        type_swap_s=out.log.get("type_swap_s", 0.0) + time.perf_counter() - t0,
        type_swap_moves=out.log.get("type_swap_moves", 0) + moves,
        type_swap_evaluations=out.log.get("type_swap_evaluations", 0) + evals,
    )
    return out
