"""Matrix-level core of the multi-operator maximal covering model (private).

Model
-----
Demand rows ``i`` (after reduction), operators ``o``, candidate structures ``j``.

* ``W[i, o] >= 0``: weight of row ``i`` for operator ``o`` still to be covered
  (population x market share; zero where a locked existing site of ``o`` covers it).
* ``A[i, j]``: candidate ``j`` covers row ``i`` (same for all operators).
* ``C[j, o] >= 0``: weight only ``j`` can cover for ``o`` (rows covered by one
  candidate only, folded into the objective by the reduction).
* a new structure at ``j`` is *dedicated* (exactly one tenant) or *shared*
  (2..``cap[j]`` tenants); exactly ``n_dedicated`` and ``n_shared`` of them;
  ``conflicts[j, k]`` forbids opening both ``j`` and ``k`` (minimum spacing).

maximise ``offset + sum_io W[i,o] z[i,o] + sum_jo C[j,o] x[j,o]`` subject to
``z[i,o] <= sum_j A[i,j] x[j,o]``, ``d_j + h_j <= 1``,
``d_j + 2 h_j <= sum_o x[j,o] <= d_j + cap_j h_j``, ``sum d = n_dedicated``,
``sum h = n_shared``, conflicts, binaries ``x, d, h``, ``0 <= z <= 1``.

Solvers
-------
* :func:`greedy` — lazy greedy over (candidate, type) pairs; a structure's gain is its
  best tenant set's newly covered weight, which never grows as coverage grows, so stale
  heap values are upper bounds and lazy evaluation gives the exact greedy; quotas,
  tenancy and conflicts respected.
* :func:`local_search` — swap local search: remove one structure and re-insert the best
  structure of the same type anywhere (tenants re-optimised), until no improving swap.
* :func:`lagrangian_bound` — upper bound from relaxing the covering rows and the
  shared-quota row (subgradient, Polyak steps); for fixed multipliers the relaxed
  problem ("pick ``p`` structures by value, each with its best tenant set") is solved
  exactly by a partial sort, so every iterate is a valid bound (about the LP bound of
  the pattern formulation at convergence).
* :func:`lagrangian_start` — rounding of the best multipliers into a feasible solution.
* :func:`lns` — large-neighbourhood search: windows of nearby structures re-solved
  exactly as small MILPs, windows seeded where the solution disagrees with the
  Lagrangian relaxation.
* :func:`solve_milp` — the exact sparse MILP through HiGHS (highspy), warm-started from
  a heuristic solution, with time limit, relative gap and reported dual bound.  With a
  few operators it uses the extended *pattern* formulation (one binary per candidate and
  tenant set; tighter LP), otherwise the compact ``x, d, h`` model above.
* :func:`solve` — ``heuristic`` / ``exact`` / ``auto`` orchestration.
"""

from __future__ import annotations

import heapq
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from towerplan.errors import InfeasibleModelError, ParameterError
from towerplan.siting._highs import MilpModel, MilpResult, WorkLimits, solve_model

logger = logging.getLogger(__name__)

_TOL = 1e-9


@dataclass
class MCLPProblem:
    """A (reduced) multi-operator MCLP instance; see the module docstring."""

    A: sp.csr_matrix
    W: np.ndarray
    C: np.ndarray
    n_dedicated: int
    n_shared: int
    cap: np.ndarray
    conflicts: sp.csr_matrix | None = None
    offset: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        return int(self.A.shape[0])

    @property
    def n_cand(self) -> int:
        return int(self.A.shape[1])

    @property
    def n_ops(self) -> int:
        return int(self.W.shape[1])

    @property
    def p(self) -> int:
        return self.n_dedicated + self.n_shared

    @property
    def total_weight(self) -> float:
        return float(self.offset + self.W.sum() + self.C.sum())


@dataclass
class MCLPSolution:
    """Open structures: candidate index, tenant mask per operator, shared flag."""

    sites: np.ndarray
    tenants: np.ndarray
    shared: np.ndarray
    objective: float = float("nan")
    upper_bound: float = float("inf")
    method: str = ""
    log: dict[str, Any] = field(default_factory=dict)
    time_limited: bool = False
    stopped_by: str = ""

    @property
    def gap(self) -> float:
        """Relative gap ``(upper_bound - objective) / upper_bound`` (0 when proven optimal)."""
        if not np.isfinite(self.upper_bound):
            return float("inf")
        if self.upper_bound <= 0:
            return 0.0
        return max(0.0, (self.upper_bound - self.objective) / self.upper_bound)


@dataclass(frozen=True)
class SolveSettings:
    """How :func:`solve` works: solver, target gap, seed and deterministic work budgets.

    Every phase is bounded by work (swap passes, subgradient iterations, LNS window
    re-solves, branch-and-bound nodes), never by seconds, so the same problem and
    settings give the same solution on any machine under any load.  ``work_limit``
    scales all budgets at once (1.0 = default effort).  ``time_limit_s`` is a wall-
    clock safety stop only: a run it cuts short reports ``stopped_by = "time_limit"``
    and is not reproducible.

    Attributes
    ----------
    solver : {'auto', 'exact', 'heuristic'}
    mip_gap : float
        Relative gap at which the search stops (certified).
    seed : int
        Seed of the local-search and LNS orders.
    work_limit : float
        Multiplier of every work budget (> 0).
    max_nodes : int
        Branch-and-bound nodes of the full MILP (``exact`` / ``auto``), before scaling.
    time_limit_s : float
        Safety stop (``inf`` = none).
    """

    solver: str = "auto"
    mip_gap: float = 1e-3
    seed: int = 0
    work_limit: float = 1.0
    max_nodes: int = 2000
    time_limit_s: float = float("inf")

    def __post_init__(self) -> None:
        if self.solver not in ("auto", "exact", "heuristic"):
            raise ParameterError(f"solver = {self.solver!r}: use 'auto', 'exact' or 'heuristic'")
        for name in ("mip_gap", "work_limit", "time_limit_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or np.isnan(v) or v < 0:
                raise ParameterError(f"{name} = {v!r}: must be a number >= 0")
        if not self.mip_gap < 1:
            raise ParameterError(f"mip_gap = {self.mip_gap}: must be in [0, 1)")
        if not (np.isfinite(self.work_limit) and self.work_limit > 0):
            raise ParameterError(f"work_limit = {self.work_limit}: must be a finite number > 0")
        if self.time_limit_s <= 0:
            raise ParameterError(f"time_limit_s = {self.time_limit_s}: must be > 0")
        if isinstance(self.max_nodes, bool) or not isinstance(self.max_nodes, int | np.integer):
            raise ParameterError(f"max_nodes = {self.max_nodes!r}: must be a whole number >= 0")
        if self.max_nodes < 0:
            raise ParameterError(f"max_nodes = {self.max_nodes}: must be a whole number >= 0")

    def budget(self, base: int) -> int:
        """``base`` work units scaled by ``work_limit`` (at least 1)."""
        return max(1, round(base * self.work_limit))


SWAP_PASSES = 30
"""Swap local-search passes per call (a pass tries every open structure once)."""
LAGRANGIAN_ITERATIONS = 400
"""Subgradient iterations of the Lagrangian bound."""
LNS_SUBPROBLEMS = 40
"""LNS window re-solves per LNS phase."""
LNS_SUB_NODES = 200
"""Branch-and-bound nodes per LNS window MILP."""


class SafetyStop:
    """Wall-clock safety stop shared by the phases of one solve (never decides a result
    unless it fires, and then the result says so)."""

    def __init__(self, time_limit_s: float) -> None:
        self.t0 = time.perf_counter()
        self.limit = float(time_limit_s)
        self.fired = False

    def left(self) -> float:
        return self.limit - (time.perf_counter() - self.t0)

    def expired(self) -> bool:
        if self.left() <= 0:
            self.fired = True
        return self.fired

    def limits(self, max_nodes: int, mip_gap: float) -> WorkLimits:
        return WorkLimits(
            max_nodes=int(max_nodes), mip_gap=float(mip_gap), time_limit_s=max(self.left(), 0.01)
        )


# --------------------------------------------------------------------------- building


def _row_hash_groups(A: sp.csr_matrix, seed: int = 12345) -> np.ndarray:
    """Group id per row such that rows share an id iff their column sets are identical."""
    n = A.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    m = A.shape[1]
    r1 = rng.integers(1, 2**63 - 1, size=m, dtype=np.uint64)
    r2 = rng.integers(1, 2**63 - 1, size=m, dtype=np.uint64)
    lens = np.diff(A.indptr).astype(np.int64)
    starts = A.indptr[:-1]
    # rows are all non-empty here (empty rows were dropped before)
    with np.errstate(over="ignore"):
        h1 = np.add.reduceat(r1[A.indices], starts)
        h2 = np.add.reduceat(r2[A.indices], starts)
    keys = np.empty(n, dtype=[("a", np.uint64), ("b", np.uint64), ("c", np.int64)])
    keys["a"], keys["b"], keys["c"] = h1, h2, lens
    _, first, inv = np.unique(keys, return_index=True, return_inverse=True)
    inv = inv.ravel()
    # verify exactly (hash collisions would merge different rows)
    rep = first[inv]
    pos_row = np.repeat(np.arange(n), lens)
    offs = np.arange(len(A.indices)) - A.indptr[pos_row]
    same = A.indices == A.indices[A.indptr[rep[pos_row]] + offs]
    bad_rows = np.unique(pos_row[~same])
    if len(bad_rows):  # pragma: no cover - probability ~2^-128
        logger.warning("row-merge hash collision on %d rows; keeping them separate", len(bad_rows))
        inv = inv.copy()
        inv[bad_rows] = inv.max() + 1 + np.arange(len(bad_rows))
        _, inv = np.unique(inv, return_inverse=True)
    return np.asarray(inv, dtype=np.int64)


def build_problem(
    A: sp.spmatrix,
    W: np.ndarray,
    n_dedicated: int,
    n_shared: int,
    cap: np.ndarray | int,
    conflicts: sp.spmatrix | None = None,
    offset: float = 0.0,
) -> MCLPProblem:
    """Reduce and validate an MCLP instance.

    Reductions (all exact): rows with zero weight or no covering candidate are dropped
    (their weight cannot change); rows covered by a single candidate are folded into that
    candidate's private weight ``C``; rows with identical covering sets are merged
    (weights summed).  Candidates are kept (index-stable) so that zero-value candidates
    remain available to fill the quotas.

    Parameters
    ----------
    A : sparse (n, m)
        Coverage of demand rows by candidates.
    W : ndarray (n, n_op)
        Uncovered weight per row and operator.
    n_dedicated, n_shared : int
        Quotas.
    cap : int or ndarray (m,)
        Maximum tenants per structure.
    conflicts : sparse (m, m) or None
        Symmetric pairs that may not both be opened.
    offset : float
        Weight already covered (locked sites), added to every objective.
    """
    t0 = time.perf_counter()
    A = sp.csr_matrix(A, dtype=bool)
    A.sum_duplicates()
    A.sort_indices()
    W = np.asarray(W, dtype=float)
    if W.ndim == 1:
        W = W[:, None]
    n, m = A.shape
    if W.shape[0] != n:
        raise ParameterError(f"W has {W.shape[0]} rows but the coverage matrix has {n}")
    if (W < 0).any() or not np.isfinite(W).all():
        raise ParameterError("demand weights must be finite and >= 0")
    n_op = W.shape[1]
    capv = np.broadcast_to(np.asarray(cap, dtype=np.int64), (m,)).copy()
    if n_dedicated < 0 or n_shared < 0:
        raise ParameterError(
            f"n_dedicated = {n_dedicated}, n_shared = {n_shared}: quotas must be >= 0"
        )
    p = n_dedicated + n_shared
    if p > m:
        raise InfeasibleModelError(
            f"p = n_dedicated + n_shared = {p} new structures but only {m} candidate sites; "
            "add candidates (smaller candidate spacing) or lower the quotas"
        )
    if n_shared > 0:
        if n_op < 2:
            raise InfeasibleModelError(
                f"n_shared = {n_shared} shared structures need at least 2 operators, got {n_op}"
            )
        n_cap2 = int((capv >= 2).sum())
        if n_cap2 < n_shared:
            raise InfeasibleModelError(
                f"n_shared = {n_shared} but only {n_cap2} candidates can host >= 2 tenants "
                "(max_tenants); raise max_tenants or lower n_shared"
            )
    if (capv < 1).any():
        raise ParameterError("every candidate must allow at least 1 tenant (cap >= 1)")
    conf: sp.csr_matrix | None = None
    if conflicts is not None:
        conf = sp.csr_matrix(conflicts, dtype=bool)
        conf = ((conf + conf.T) > 0).tocsr()
        conf.setdiag(False)
        conf.eliminate_zeros()
        if conf.nnz == 0:
            conf = None
    n0 = n
    keep = (W.sum(axis=1) > 0) & (np.diff(A.indptr) > 0)
    unreachable = float(W[np.diff(A.indptr) == 0].sum())
    A = A[keep]
    W = W[keep]
    lens = np.diff(A.indptr)
    single = lens == 1
    C = np.zeros((m, n_op))
    if single.any():
        cols = A.indices[A.indptr[:-1][single]]
        for o in range(n_op):
            C[:, o] = np.bincount(cols, weights=W[single, o], minlength=m)
    A = A[~single]
    W = W[~single]
    n_single = int(single.sum())
    if A.shape[0]:
        grp = _row_hash_groups(A)
        ng = int(grp.max()) + 1
        first = np.full(ng, -1, dtype=np.int64)
        first[grp[::-1]] = np.arange(len(grp))[::-1]
        Wm = np.zeros((ng, n_op))
        for o in range(n_op):
            Wm[:, o] = np.bincount(grp, weights=W[:, o], minlength=ng)
        A = A[first]
        W = Wm
    info = {
        "rows_input": n0,
        "rows_with_weight": int(keep.sum()),
        "rows_singleton_folded": n_single,
        "rows_after_merge": int(A.shape[0]),
        "candidates": m,
        "candidates_useful": int(((np.diff(A.tocsc().indptr) > 0) | (C.sum(1) > 0)).sum()),
        "unreachable_weight": unreachable,
        "nnz": int(A.nnz),
        "reduce_s": time.perf_counter() - t0,
    }
    logger.debug("MCLP reduction: %s", info)
    return MCLPProblem(
        A=A.tocsr(),
        W=W,
        C=C,
        n_dedicated=int(n_dedicated),
        n_shared=int(n_shared),
        cap=capv,
        conflicts=conf,
        offset=float(offset),
        info=info,
    )


# --------------------------------------------------------------------------- helpers


def _gather(
    indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (into ``rows``) and column indices of the entries of the given CSR rows."""
    rows = np.asarray(rows, dtype=np.int64)
    starts = indptr[rows]
    lens = indptr[rows + 1] - starts
    tot = int(lens.sum())
    if tot == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=indices.dtype)
    pos = np.repeat(np.arange(len(rows)), lens)
    offs = np.arange(tot) - np.repeat(np.cumsum(lens) - lens, lens)
    return pos, indices[np.repeat(starts, lens) + offs]


def _type_values(G: np.ndarray, cap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best dedicated value (max over operators) and best shared value (top-cap sum)."""
    if G.shape[0] == 0:
        return np.zeros(0), np.zeros(0)
    n_op = G.shape[1]
    D = G.max(axis=1)
    if n_op < 2:
        return D, np.full(G.shape[0], -np.inf)
    gs = -np.sort(-G, axis=1)
    cs = np.cumsum(gs, axis=1)
    k = np.minimum(cap, n_op)
    S = cs[np.arange(G.shape[0]), np.maximum(k, 1) - 1]
    S = np.where(k >= 2, S, -np.inf)
    return D, S


def _pick_tenants(g: np.ndarray, shared: bool, cap: int) -> np.ndarray:
    """Tenant mask for a structure with per-operator gains ``g``."""
    n_op = len(g)
    mask = np.zeros(n_op, dtype=bool)
    order = np.argsort(-g, kind="stable")
    if not shared:
        mask[order[0]] = True
        return mask
    k = min(cap, n_op)
    for r, o in enumerate(order[:k]):
        if r < 2 or g[o] > 0:
            mask[o] = True
    return mask


def evaluate(prob: MCLPProblem, sol: MCLPSolution) -> float:
    """Objective value of a solution (offset included)."""
    if len(sol.sites) == 0:
        return prob.offset
    sub = prob.A[:, sol.sites].astype(np.int32)
    cnt = np.asarray(sub @ sol.tenants.astype(np.int32))
    val = float((prob.W * (cnt > 0)).sum())
    val += float((prob.C[sol.sites] * sol.tenants).sum())
    return prob.offset + val


def check_solution(prob: MCLPProblem, sol: MCLPSolution) -> None:
    """Raise AssertionError-like InfeasibleModelError if ``sol`` breaks a constraint."""
    k = len(sol.sites)
    if len(np.unique(sol.sites)) != k:
        raise InfeasibleModelError("solution opens a candidate twice")
    nt = sol.tenants.sum(axis=1)
    if int(sol.shared.sum()) != prob.n_shared or int((~sol.shared).sum()) != prob.n_dedicated:
        raise InfeasibleModelError("solution breaks the dedicated/shared quotas")
    if (nt[~sol.shared] != 1).any():
        raise InfeasibleModelError("a dedicated structure does not have exactly 1 tenant")
    if (nt[sol.shared] < 2).any() or (nt > prob.cap[sol.sites]).any():
        raise InfeasibleModelError("a shared structure breaks the tenancy bounds")
    if prob.conflicts is not None and k:
        sub = prob.conflicts[sol.sites][:, sol.sites]
        if sub.nnz:
            raise InfeasibleModelError("solution opens two conflicting candidates (min spacing)")


# --------------------------------------------------------------------------- greedy


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
            f"could not place all new structures: {quota[0]} dedicated and {quota[1]} shared "
            "left with no admissible candidate (minimum spacing between new sites or tenancy "
            "blocks them); lower min_spacing_m, add candidates or lower the quotas"
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


# --------------------------------------------------------------------------- local search


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
    m, n_op = prob.n_cand, prob.n_ops
    k = len(sol.sites)
    if k == 0:
        return sol
    A = prob.A
    Acsc = A.tocsc()
    W, C, cap = prob.W, prob.C, prob.cap
    sites = sol.sites.copy()
    ten = sol.tenants.copy()
    shared = sol.shared.copy()
    cnt = np.asarray(A[:, sites].astype(np.int32) @ ten.astype(np.int32)).reshape(prob.n_rows, n_op)
    Wres = W * (cnt == 0)
    open_ten = np.zeros((m, n_op), dtype=bool)
    open_ten[sites] = ten
    G = (np.asarray(A.T @ Wres) if prob.n_rows else np.zeros((m, n_op))) + C * (~open_ten)
    D, S = _type_values(G, cap)
    is_open = np.zeros(m, dtype=bool)
    is_open[sites] = True
    conf = prob.conflicts
    nblock = np.zeros(m, dtype=np.int64)
    if conf is not None:
        for j in sites:
            nblock[conf.indices[conf.indptr[j] : conf.indptr[j + 1]]] += 1
    scale = max(prob.total_weight, 1.0)
    moves = 0
    passes = 0
    timed_out = False
    obj = sol.objective if np.isfinite(sol.objective) else evaluate(prob, sol)

    def col_rows(j: int) -> np.ndarray:
        return Acsc.indices[Acsc.indptr[j] : Acsc.indptr[j + 1]]

    def refresh(rows: np.ndarray, extra_cols: np.ndarray) -> None:
        """Recompute Wres on rows and G, D, S on the affected candidates."""
        newres = W[rows] * (cnt[rows] == 0)
        dW = newres - Wres[rows]
        Wres[rows] = newres
        pos, cols = _gather(A.indptr, A.indices, rows)
        if len(cols):
            uc, inv = np.unique(cols, return_inverse=True)
            for o in range(n_op):
                G[uc, o] += np.bincount(inv, weights=dW[pos, o], minlength=len(uc))
        else:
            uc = np.zeros(0, dtype=np.int64)
        for c in extra_cols:
            G[c] = Wres[col_rows(int(c))].sum(axis=0) + C[c] * (~open_ten[c])
        aff = np.unique(np.concatenate([uc, extra_cols]))
        D[aff], S[aff] = _type_values(G[aff], cap[aff])

    improved = True
    while improved and passes < max_passes:
        improved = False
        passes += 1
        for s in rng.permutation(k):
            if safety is not None and safety.expired():
                timed_out = True
                break
            j = int(sites[s])
            T = ten[s]
            t_shared = bool(shared[s])
            rows = col_rows(j)
            Tidx = np.flatnonzero(T)
            loss = float((W[np.ix_(rows, Tidx)] * (cnt[np.ix_(rows, Tidx)] == 1)).sum())
            loss += float(C[j, Tidx].sum())
            # tentative removal
            cnt[np.ix_(rows, Tidx)] -= 1
            is_open[j] = False
            open_ten[j] = False
            if conf is not None:
                nbr = conf.indices[conf.indptr[j] : conf.indptr[j + 1]]
                nblock[nbr] -= 1
            refresh(rows, np.array([j]))
            vals = S if t_shared else D
            elig = (~is_open) & (nblock == 0)
            cand_vals = np.where(elig, vals, -np.inf)
            best = int(np.argmax(cand_vals))
            best_v = float(cand_vals[best])
            if best_v > loss + 1e-9 * scale and best != j:
                g = G[best]
                tm = _pick_tenants(g, t_shared, int(cap[best]))
                brow = col_rows(best)
                cnt[np.ix_(brow, np.flatnonzero(tm))] += 1
                sites[s] = best
                ten[s] = tm
                is_open[best] = True
                open_ten[best] = tm
                if conf is not None:
                    nblock[conf.indices[conf.indptr[best] : conf.indptr[best + 1]]] += 1
                refresh(brow, np.array([best, j]))
                obj += best_v - loss
                moves += 1
                improved = True
            else:
                # restore j (possibly with better tenants at the same place)
                g = G[j]
                tm = _pick_tenants(g, t_shared, int(cap[j]))
                gain_new = float(g[tm].sum())
                if gain_new > loss + 1e-9 * scale:
                    obj += gain_new - loss
                    moves += 1
                    improved = True
                else:
                    tm = T
                cnt[np.ix_(rows, np.flatnonzero(tm))] += 1
                ten[s] = tm
                is_open[j] = True
                open_ten[j] = tm
                if conf is not None:
                    nblock[conf.indices[conf.indptr[j] : conf.indptr[j + 1]]] += 1
                refresh(rows, np.array([j]))
        if timed_out:
            break
    out = MCLPSolution(sites=sites, tenants=ten, shared=shared, method=sol.method + "+swap")
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


# --------------------------------------------------------------------------- exact MILP


def _milp_columns(prob: MCLPProblem) -> np.ndarray:
    """Candidates kept in the MILP: useful ones plus enough zero-value fillers."""
    m = prob.n_cand
    if prob.conflicts is not None:
        return np.arange(m)
    useful = (np.diff(prob.A.tocsc().indptr) > 0) | (prob.C.sum(axis=1) > 0)
    idle = np.flatnonzero(~useful)
    # fillers: prefer those that can host a shared structure, then the rest
    idle = idle[np.argsort(prob.cap[idle] < 2, kind="stable")]
    return np.sort(np.concatenate([np.flatnonzero(useful), idle[: prob.p]]))


def _conflict_pairs(conf: sp.csr_matrix, keep: np.ndarray) -> np.ndarray:
    sub = sp.triu(conf[keep][:, keep], k=1).tocoo()
    return np.column_stack([sub.row, sub.col]).astype(np.int64)


def _coverage_rows(
    A: sp.csr_matrix,
    zi: np.ndarray,
    zo: np.ndarray,
    nr: int,
    n_op: int,
    off_x: int,
    off_z: int,
) -> tuple[
    list[np.ndarray], list[np.ndarray], list[np.ndarray], list[np.ndarray], list[np.ndarray]
]:
    """Rows ``z_io - sum_j A_ij x_jo <= 0`` (one per z variable), as COO pieces.

    ``z`` variables ``k`` cover (row ``zi[k]``, operator ``zo[k]``) and sit at column
    ``off_z + k``; ``x_jo`` sits at column ``off_x + j * n_op + o``.  Returns lists
    (rows, cols, vals, row lower, row upper) that the model builders extend.
    """
    nz = len(zi)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    Acoo = A.tocoo()
    zid = -np.ones((nr, n_op), dtype=np.int64)  # (row i, operator o) -> z index
    zid[zi, zo] = np.arange(nz)
    for o in range(n_op):
        sel = zid[Acoo.row, o] >= 0
        rows.append(zid[Acoo.row[sel], o])
        cols.append(off_x + Acoo.col[sel] * n_op + o)
        vals.append(-np.ones(int(sel.sum())))
    rows.append(np.arange(nz))
    cols.append(off_z + np.arange(nz))
    vals.append(np.ones(nz))
    return rows, cols, vals, [np.full(nz, -np.inf)], [np.zeros(nz)]


def _model_arrays(prob: MCLPProblem, keep: np.ndarray) -> tuple[MilpModel, Any]:
    """Sparse MILP arrays over the kept candidates; returns (arrays, decoder)."""
    A = prob.A[:, keep].tocsr()
    W, C, cap = prob.W, prob.C[keep], prob.cap[keep]
    m, n_op, nr = len(keep), prob.n_ops, prob.n_rows
    pairs = (
        _conflict_pairs(prob.conflicts, keep)
        if prob.conflicts is not None
        else np.zeros((0, 2), dtype=np.int64)
    )
    npair = len(pairs)
    if n_op == 1 and prob.n_shared == 0:
        ncol = m + nr
        obj = np.concatenate([C[:, 0], W[:, 0]])
        lo = np.zeros(ncol)
        hi = np.ones(ncol)
        integ = np.concatenate([np.ones(m, bool), np.zeros(nr, bool)])
        cov = sp.hstack([-A.astype(float), sp.identity(nr, format="csr")], format="csr")
        cnt = sp.csr_matrix(np.concatenate([np.ones(m), np.zeros(nr)])[None, :])
        blocks = [cov, cnt]
        rlo = [np.full(nr, -np.inf), [prob.p]]
        rhi = [np.zeros(nr), [prob.p]]
        if npair:
            pr = np.repeat(np.arange(npair), 2)
            cf = sp.csr_matrix((np.ones(2 * npair), (pr, pairs.ravel())), shape=(npair, ncol))
            blocks.append(cf)
            rlo.append(np.full(npair, -np.inf))
            rhi.append(np.ones(npair))
        M = sp.vstack(blocks, format="csr")

        def decode(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            opened = np.flatnonzero(x[:m] > 0.5)
            return keep[opened], np.ones((len(opened), 1), bool), np.zeros(len(opened), bool)

        def encode(sol: MCLPSolution) -> np.ndarray:
            x = np.zeros(ncol)
            pos = np.searchsorted(keep, sol.sites)
            x[pos] = 1.0
            x[m:] = np.minimum(1.0, np.asarray(A[:, pos].sum(axis=1)).ravel())
            return x

        arrays = MilpModel(
            offset=prob.offset,
            obj=obj,
            lo=lo,
            hi=hi,
            integ=integ,
            M=M,
            rlo=np.concatenate([np.asarray(r, float) for r in rlo]),
            rhi=np.concatenate([np.asarray(r, float) for r in rhi]),
        )
        return arrays, (decode, encode)
    pats = _patterns(n_op, int(cap.max()) if m else 1, prob.n_dedicated > 0, prob.n_shared > 0)
    if len(pats) <= MAX_PATTERNS:
        return _pattern_model(prob, keep, A, W, C, cap, pairs, pats)
    # compact multi-operator model (many operators): x, d, h
    zi, zo = np.nonzero(W > 0)
    nz = len(zi)
    has_h = prob.n_shared > 0
    nx = m * n_op
    off_d = nx
    off_h = nx + m
    off_z = nx + m + (m if has_h else 0)
    ncol = off_z + nz
    obj = np.zeros(ncol)
    obj[:nx] = C.ravel()
    obj[off_z:] = W[zi, zo]
    lo = np.zeros(ncol)
    hi = np.ones(ncol)
    if has_h:
        hi[off_h : off_h + m] = (cap >= 2).astype(float)
    integ = np.zeros(ncol, bool)
    integ[:off_z] = True
    # coverage rows: z_io - sum_j A_ij x_jo <= 0
    rows, cols, vals, rlo_l, rhi_l = _coverage_rows(A, zi, zo, nr, n_op, 0, off_z)
    r0 = nz
    jj = np.arange(m)
    # tenancy: sum_o x_jo - d_j - 2 h_j >= 0 ; sum_o x_jo - d_j - cap_j h_j <= 0
    for lower in (True, False):
        rows.append(np.repeat(jj, n_op) + r0)
        cols.append(np.arange(nx))
        vals.append(np.ones(nx))
        rows.append(jj + r0)
        cols.append(off_d + jj)
        vals.append(-np.ones(m))
        if has_h:
            rows.append(jj + r0)
            cols.append(off_h + jj)
            vals.append(-2.0 * np.ones(m) if lower else -cap.astype(float))
        rlo_l.append(np.zeros(m) if lower else np.full(m, -np.inf))
        rhi_l.append(np.full(m, np.inf) if lower else np.zeros(m))
        r0 += m
    if has_h:
        rows.append(np.concatenate([jj, jj]) + r0)
        cols.append(np.concatenate([off_d + jj, off_h + jj]))
        vals.append(np.ones(2 * m))
        rlo_l.append(np.full(m, -np.inf))
        rhi_l.append(np.ones(m))
        r0 += m
    # quotas
    rows.append(np.full(m, r0))
    cols.append(off_d + jj)
    vals.append(np.ones(m))
    rlo_l.append(np.array([prob.n_dedicated], float))
    rhi_l.append(np.array([prob.n_dedicated], float))
    r0 += 1
    if has_h:
        rows.append(np.full(m, r0))
        cols.append(off_h + jj)
        vals.append(np.ones(m))
        rlo_l.append(np.array([prob.n_shared], float))
        rhi_l.append(np.array([prob.n_shared], float))
        r0 += 1
    if npair:
        pr = np.arange(npair) + r0
        for side in (0, 1):
            rows.append(pr)
            cols.append(off_d + pairs[:, side])
            vals.append(np.ones(npair))
            if has_h:
                rows.append(pr)
                cols.append(off_h + pairs[:, side])
                vals.append(np.ones(npair))
        rlo_l.append(np.full(npair, -np.inf))
        rhi_l.append(np.ones(npair))
        r0 += npair
    M = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(r0, ncol)
    )

    def decode_m(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d = x[off_d : off_d + m] > 0.5
        hh = x[off_h : off_h + m] > 0.5 if has_h else np.zeros(m, bool)
        opened = np.flatnonzero(d | hh)
        ten = x[:nx].reshape(m, n_op)[opened] > 0.5
        return keep[opened], ten, hh[opened]

    def encode_m(sol: MCLPSolution) -> np.ndarray:
        x = np.zeros(ncol)
        pos = np.searchsorted(keep, sol.sites)
        X = np.zeros((m, n_op))
        X[pos] = sol.tenants
        x[:nx] = X.ravel()
        x[off_d + pos[~sol.shared]] = 1.0
        if has_h:
            x[off_h + pos[sol.shared]] = 1.0
        cov = np.asarray(A @ X)
        x[off_z:] = np.minimum(1.0, cov[zi, zo])
        return x

    arrays = MilpModel(
        offset=prob.offset,
        obj=obj,
        lo=lo,
        hi=hi,
        integ=integ,
        M=M,
        rlo=np.concatenate(rlo_l),
        rhi=np.concatenate(rhi_l),
    )
    return arrays, (decode_m, encode_m)


MAX_PATTERNS = 64
"""Up to this many tenant patterns per structure the MILP uses the (tighter) pattern model."""


def _patterns(n_op: int, tmax: int, ded: bool, shr: bool) -> list[tuple[int, ...]]:
    from itertools import combinations

    out: list[tuple[int, ...]] = []
    if ded:
        out.extend((o,) for o in range(n_op))
    if shr:
        for k in range(2, min(tmax, n_op) + 1):
            out.extend(combinations(range(n_op), k))
    return out


def _pattern_model(
    prob: MCLPProblem,
    keep: np.ndarray,
    A: sp.csr_matrix,
    W: np.ndarray,
    C: np.ndarray,
    cap: np.ndarray,
    pairs: np.ndarray,
    pats: list[tuple[int, ...]],
) -> tuple[MilpModel, Any]:
    """Extended formulation: one binary per (candidate, tenant pattern).

    ``y[j,P]`` opens a structure at ``j`` hosting exactly the operators in ``P``
    (singletons are dedicated, larger patterns shared); ``x[j,o] = sum_{P ni o} y[j,P]``
    (continuous, implied integer) links to the covering rows.  Its LP relaxation is the
    convex hull of each location's choices, tighter than the compact x/d/h model.
    """
    m, n_op, nr = len(keep), prob.n_ops, prob.n_rows
    npat = len(pats)
    plen = np.array([len(q) for q in pats])
    is_sh = plen >= 2
    zi, zo = np.nonzero(W > 0)
    nz = len(zi)
    ny = m * npat
    off_x = ny
    off_z = ny + m * n_op
    ncol = off_z + nz
    obj = np.zeros(ncol)
    obj[off_x:off_z] = C.ravel()
    obj[off_z:] = W[zi, zo]
    lo = np.zeros(ncol)
    hi = np.ones(ncol)
    hi[:ny] = (plen[None, :] <= cap[:, None]).astype(float).ravel()
    integ = np.zeros(ncol, bool)
    integ[:ny] = True
    rows, cols, vals, rlo_l, rhi_l = _coverage_rows(A, zi, zo, nr, n_op, off_x, off_z)
    r0 = nz
    jj = np.arange(m)
    # one pattern per location
    rows.append(np.repeat(jj, npat) + r0)
    cols.append(np.arange(ny))
    vals.append(np.ones(ny))
    rlo_l.append(np.full(m, -np.inf))
    rhi_l.append(np.ones(m))
    r0 += m
    # linking: x[j,o] - sum_{P ni o} y[j,P] = 0
    for q, pat in enumerate(pats):
        for o in pat:
            rows.append(jj * n_op + o + r0)
            cols.append(jj * npat + q)
            vals.append(-np.ones(m))
    rows.append(np.arange(m * n_op) + r0)
    cols.append(off_x + np.arange(m * n_op))
    vals.append(np.ones(m * n_op))
    rlo_l.append(np.zeros(m * n_op))
    rhi_l.append(np.zeros(m * n_op))
    r0 += m * n_op
    for flag, quota in ((False, prob.n_dedicated), (True, prob.n_shared)):
        qs = np.flatnonzero(is_sh == flag)
        if len(qs) == 0:
            if quota:
                raise InfeasibleModelError("no tenant pattern for a non-zero quota")
            continue
        rows.append(np.full(m * len(qs), r0))
        cols.append((jj[:, None] * npat + qs[None, :]).ravel())
        vals.append(np.ones(m * len(qs)))
        rlo_l.append(np.array([quota], float))
        rhi_l.append(np.array([quota], float))
        r0 += 1
    npair = len(pairs)
    if npair:
        pr = np.repeat(np.arange(npair), npat) + r0
        for side in (0, 1):
            rows.append(pr)
            cols.append((pairs[:, side][:, None] * npat + np.arange(npat)[None, :]).ravel())
            vals.append(np.ones(npair * npat))
        rlo_l.append(np.full(npair, -np.inf))
        rhi_l.append(np.ones(npair))
        r0 += npair
    M = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(r0, ncol)
    )
    pat_mask = np.zeros((npat, n_op), dtype=bool)
    for q, pat in enumerate(pats):
        pat_mask[q, list(pat)] = True

    def decode_p(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        Y = x[:ny].reshape(m, npat) > 0.5
        opened = np.flatnonzero(Y.any(axis=1))
        q = Y[opened].argmax(axis=1)
        return keep[opened], pat_mask[q], is_sh[q]

    pat_index = {pat: q for q, pat in enumerate(pats)}

    def encode_p(sol: MCLPSolution) -> np.ndarray:
        x = np.zeros(ncol)
        pos = np.searchsorted(keep, sol.sites)
        X = np.zeros((m, n_op))
        X[pos] = sol.tenants
        for p_, t_ in zip(pos, sol.tenants, strict=True):
            x[p_ * npat + pat_index[tuple(np.flatnonzero(t_))]] = 1.0
        x[off_x:off_z] = X.ravel()
        cov = np.asarray(A @ X)
        x[off_z:] = np.minimum(1.0, cov[zi, zo])
        return x

    arrays = MilpModel(
        offset=prob.offset,
        obj=obj,
        lo=lo,
        hi=hi,
        integ=integ,
        M=M,
        rlo=np.concatenate(rlo_l),
        rhi=np.concatenate(rhi_l),
    )
    return arrays, (decode_p, encode_p)


def _empty_solution(prob: MCLPProblem, method: str) -> MCLPSolution:
    out = MCLPSolution(
        np.zeros(0, np.int64), np.zeros((0, prob.n_ops), bool), np.zeros(0, bool), method=method
    )
    out.objective = prob.offset
    out.upper_bound = prob.offset
    return out


def solve_milp(
    prob: MCLPProblem,
    limits: WorkLimits,
    start: MCLPSolution | None = None,
) -> MCLPSolution:
    """Solve the sparse MILP with HiGHS within ``limits``, warm-started from ``start``.

    The returned solution's ``upper_bound`` is HiGHS's dual bound (``inf`` if the
    solver stopped before bounding); ``log`` holds the status, nodes and times, and
    ``time_limited`` whether the wall-clock safety stop ended the run.  If HiGHS finds
    no solution better than ``start`` within the limits, ``start`` is returned with
    HiGHS's bound.
    """
    t0 = time.perf_counter()
    if prob.p == 0:
        return _empty_solution(prob, "nothing to place (no new structures)")
    keep = _milp_columns(prob)
    model, (decode, encode) = _model_arrays(prob, keep)
    build_s = time.perf_counter() - t0
    x0 = encode(start) if start is not None else None
    res: MilpResult = solve_model(model, limits, x0)
    log: dict[str, Any] = {
        "milp_build_s": build_s,
        "milp_solve_s": res.solve_s,
        "milp_status": res.status,
        "milp_nodes": res.nodes,
        "milp_simplex_iterations": res.simplex_iterations,
        "milp_cols": model.n_col,
        "milp_rows": int(model.M.shape[0]),
        "milp_nnz": model.nnz,
    }
    bound = res.bound if np.isfinite(res.bound) else float("inf")
    if res.x is None:
        if start is None:
            raise InfeasibleModelError(
                f"the MILP solver found no feasible solution (status {res.status}); "
                "check the quotas, the tenancy limits and the minimum spacing"
            )
        out = MCLPSolution(start.sites, start.tenants, start.shared, start.objective)
        out.method = start.method + " (MILP found nothing better)"
    else:
        sites, ten, sh = decode(res.x)
        out = MCLPSolution(sites, ten, sh, method="exact MILP (HiGHS)")
        out.objective = evaluate(prob, out)
        if start is not None and start.objective > out.objective + 1e-9 * max(
            prob.total_weight, 1.0
        ):
            out = MCLPSolution(
                start.sites, start.tenants, start.shared, start.objective, method=start.method
            )
    out.upper_bound = max(bound, out.objective)
    out.time_limited = res.time_limited
    out.log = dict(start.log) if start is not None else {}
    out.log.update(log)
    return out


# --------------------------------------------------------------------------- Lagrangian bound


def lagrangian_bound(
    prob: MCLPProblem,
    lower_bound: float,
    max_iter: int = LAGRANGIAN_ITERATIONS,
    target_gap: float = 0.0,
    safety: SafetyStop | None = None,
) -> tuple[float, dict[str, Any]]:
    """Upper bound on the optimum by Lagrangian relaxation (subgradient, Polyak steps).

    The covering rows ``z[i,o] <= sum_j A[i,j] x[j,o]`` (multipliers ``0 <= lam <= W``)
    and the shared-quota row (free multiplier ``nu``) are relaxed; minimum-spacing
    conflicts are dropped (a relaxation too).  For fixed multipliers the relaxed
    problem is: cover every row for ``W - lam``, and pick ``p`` structures, each
    dedicated (value ``max_o c[j,o]``) or shared (sum of its best ``cap[j]`` values,
    minus ``nu``), with ``c = A^T lam + C``; a partial sort solves it exactly, so every
    iterate yields a valid bound.  Stops when the bound is within ``target_gap`` of
    ``lower_bound`` (relative), after ``max_iter`` iterations, when the step vanishes,
    or when the ``safety`` stop fires (``lagrangian_time_limited``).  The step is halved
    after ``max_iter / 40`` (10..150) non-improving iterations.

    Returns
    -------
    (bound, info)
    """
    t0 = time.perf_counter()
    A = prob.A.astype(float).tocsr()
    AT = A.T.tocsr()
    W, C, cap = prob.W, prob.C, prob.cap
    n_op = prob.n_ops
    p, ns = prob.p, prob.n_shared
    nr = prob.n_rows
    m = prob.n_cand
    if p == 0:
        return prob.offset, {"lagrangian_iterations": 0, "lagrangian_s": 0.0}
    # start: each row's weight spread over its covering candidates
    deg = np.maximum(np.diff(A.indptr), 1).astype(float)
    lam = W / deg[:, None] if nr else W.copy()
    nu = 0.0
    best = np.inf
    best_lam, best_nu = lam, nu
    theta = 1.0
    since = 0
    patience = int(np.clip(max_iter / 40.0, 10, 150))
    timed_out = False
    it = 0
    ar = np.arange(m)
    wsum = float(W.sum())
    zero_c = np.zeros((m, n_op))
    while it < max_iter:
        it += 1
        c = (np.asarray(AT @ lam) if nr else zero_c) + C
        D, S = _type_values(c, cap)
        if ns > 0:
            Sv = S - nu
            is_sh = Sv > D
            val = np.where(is_sh, Sv, D)
        else:
            is_sh = np.zeros(m, bool)
            val = D
        top = np.argpartition(-val, p - 1)[:p] if p < m else ar
        L = prob.offset + wsum - float(lam.sum()) + float(val[top].sum()) + nu * ns
        if L < best - 1e-12 * abs(best if np.isfinite(best) else 1.0):
            best = L
            best_lam, best_nu = lam, nu
            since = 0
        else:
            since += 1
            if since >= patience:
                theta *= 0.5
                since = 0
        if best - lower_bound <= target_gap * max(best, 1e-12) or theta < 1e-6:
            break
        if safety is not None and safety.expired():
            timed_out = True
            break
        # subproblem solution -> subgradient
        X = np.zeros((len(top), n_op))
        ct = c[top]
        order = np.argsort(-ct, axis=1, kind="stable")
        X[np.arange(len(top)), order[:, 0]] = 1.0
        shr = is_sh[top]
        if shr.any() and n_op >= 2:
            rr = np.flatnonzero(shr)
            X[rr, order[rr, 1]] = 1.0
            for r in range(2, n_op):
                ok = rr[(cap[top[rr]] > r) & (ct[rr, order[rr, r]] > 0)]
                X[ok, order[ok, r]] = 1.0
        g = np.asarray(AT[top].T @ X) if nr else np.zeros((0, n_op))
        g -= 1.0
        # projected direction: lam -= step * g, clipped to [0, W]
        g[((lam <= 0) & (g > 0)) | ((lam >= W) & (g < 0))] = 0.0
        gnu = float(ns - int(shr.sum())) if ns > 0 else 0.0
        norm2 = float(np.vdot(g, g)) + gnu * gnu
        if norm2 <= 0:
            break  # the relaxed solution is feasible and complementary: bound is exact
        step = theta * max(L - lower_bound, 1e-9 * max(abs(L), 1.0)) / norm2
        lam = lam - step * g
        np.clip(lam, 0.0, W, out=lam)
        nu -= step * gnu
    info = {
        "lagrangian_iterations": it,
        "lagrangian_s": time.perf_counter() - t0,
        "lagrangian_bound": best,
        "lagrangian_time_limited": timed_out,
    }
    prob.info["_multipliers"] = (best_lam, best_nu)
    return float(best), info


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


# --------------------------------------------------------------------------- orchestration

MILP_MAX_NNZ = 400_000
"""Above this many non-zeros in the reduced MILP, ``auto`` does not hand the model to HiGHS."""


def solve(prob: MCLPProblem, settings: SolveSettings | None = None) -> MCLPSolution:
    """Solve with ``settings.solver`` = ``'heuristic'``, ``'exact'`` or ``'auto'``.

    * ``heuristic``: lazy greedy, swap local search, Lagrangian bound and rounding, then
      large-neighbourhood search (exact window MILPs) while the certified gap exceeds
      ``mip_gap``, twice the LNS budget.
    * ``exact``: the full MILP in HiGHS (``max_nodes`` nodes), warm-started from greedy +
      swaps.
    * ``auto``: the heuristic (stops as soon as the gap is certified within ``mip_gap``);
      then, if not certified and the reduced MILP is small enough
      (:data:`MILP_MAX_NNZ`), the MILP warm-started from the heuristic, else a second
      LNS phase.

    Every phase is bounded by deterministic work (see :class:`SolveSettings`).  The
    returned ``method`` says which solver produced the solution and why; ``gap`` is
    certified by the best bound found (Lagrangian or HiGHS dual bound); ``stopped_by``
    is ``"gap"`` (certified within ``mip_gap``), ``"work_limit"`` or ``"time_limit"``
    (the safety stop fired: not reproducible).
    """
    st = settings if settings is not None else SolveSettings()
    if prob.p == 0:
        out = _empty_solution(prob, "nothing to place (no new structures)")
        out.stopped_by = "gap"
        return out
    safety = SafetyStop(st.time_limit_s)
    swaps = st.budget(SWAP_PASSES)
    sol = local_search(prob, greedy(prob), max_passes=swaps, seed=st.seed, safety=safety)
    if st.solver == "exact":
        out = solve_milp(prob, safety.limits(st.budget(st.max_nodes), st.mip_gap), start=sol)
        out.method = f"exact MILP (HiGHS) warm-started from greedy + swaps, gap {out.gap:.3%}"
        return _finish(out, st, safety)
    ub, linfo = lagrangian_bound(
        prob,
        sol.objective,
        max_iter=st.budget(LAGRANGIAN_ITERATIONS),
        target_gap=st.mip_gap,
        safety=safety,
    )
    phases = ["greedy", "swap", "Lagrangian bound"]
    alt = lagrangian_start(prob)
    if alt is not None:
        alt = local_search(prob, alt, max_passes=swaps, seed=st.seed, safety=safety)
        if alt.objective > sol.objective + 1e-9 * max(prob.total_weight, 1.0):
            alt.log = {**sol.log, **{"lagrangian_start_" + k: v for k, v in alt.log.items()}}
            alt.method = "Lagrangian rounding + swap"
            alt.time_limited = alt.time_limited or sol.time_limited
            sol = alt
            phases.append("Lagrangian rounding + swap")
    sol.upper_bound = max(ub, sol.objective)
    sol.log.update(linfo)
    sol.time_limited = sol.time_limited or bool(linfo.get("lagrangian_time_limited"))
    n_lns = st.budget(LNS_SUBPROBLEMS)
    if sol.gap > st.mip_gap:
        better = lns(
            prob,
            sol,
            max_subproblems=n_lns,
            seed=st.seed,
            target=(1 - st.mip_gap) * sol.upper_bound,
            window=_lns_window(prob),
            priority_seeds=_lagrangian_seeds(prob, sol),
            safety=safety,
        )
        better.upper_bound = max(sol.upper_bound, better.objective)
        sol = better
        phases.append("LNS")
    if st.solver == "heuristic" or sol.gap <= st.mip_gap + 1e-12:
        why = (
            "requested" if st.solver == "heuristic" else f"certified within mip_gap {st.mip_gap:g}"
        )
        sol.method = f"heuristic ({' + '.join(phases)}), {why}; certified gap {sol.gap:.3%}"
        if st.solver == "heuristic" and sol.gap > st.mip_gap:
            sol = _second_lns(prob, sol, st, safety, n_lns)
        return _finish(sol, st, safety)
    keep = _milp_columns(prob)
    est_nnz = prob.A[:, keep].nnz + (prob.A.shape[0] + len(keep)) * prob.n_ops
    if est_nnz <= MILP_MAX_NNZ:
        out = solve_milp(prob, safety.limits(st.budget(st.max_nodes), st.mip_gap), start=sol)
        out.upper_bound = max(min(out.upper_bound, sol.upper_bound), out.objective)
        out.time_limited = out.time_limited or sol.time_limited
        out.method = (
            f"auto: heuristic ({' + '.join(phases)}) certified gap {sol.gap:.3%} > mip_gap "
            f"{st.mip_gap:g}, so exact MILP (HiGHS) warm-started from it; gap {out.gap:.3%}"
        )
        out.log.update(linfo)
        return _finish(out, st, safety)
    sol = _second_lns(prob, sol, st, safety, n_lns)
    sol.method = (
        f"auto: the MILP is too large ({est_nnz:,} non-zeros > {MILP_MAX_NNZ:,}), so "
        f"heuristic ({' + '.join(phases)} + LNS); certified gap {sol.gap:.3%}"
    )
    return _finish(sol, st, safety)


def _second_lns(
    prob: MCLPProblem, sol: MCLPSolution, st: SolveSettings, safety: SafetyStop, n_lns: int
) -> MCLPSolution:
    """A second LNS phase from ``sol`` (other seed order, no priority seeds)."""
    if sol.gap <= st.mip_gap:
        return sol
    first = {k: v for k, v in sol.log.items() if k.startswith("lns_")}
    better = lns(
        prob,
        sol,
        max_subproblems=n_lns,
        seed=st.seed + 1,
        target=(1 - st.mip_gap) * sol.upper_bound,
        window=_lns_window(prob),
        safety=safety,
    )
    better.upper_bound = max(sol.upper_bound, better.objective)
    better.method = sol.method
    for k in ("lns_s", "lns_subproblems", "lns_improvements"):
        if k in first:
            better.log[k] = better.log.get(k, 0) + first[k]
    return better


def _finish(sol: MCLPSolution, st: SolveSettings, safety: SafetyStop) -> MCLPSolution:
    """Set ``stopped_by`` and the work counters of a finished solve."""
    sol.time_limited = sol.time_limited or safety.fired
    if sol.time_limited:
        sol.stopped_by = "time_limit"
    elif sol.gap <= st.mip_gap + 1e-12:
        sol.stopped_by = "gap"
    else:
        sol.stopped_by = "work_limit"
    sol.log["solve_s"] = time.perf_counter() - safety.t0
    return sol


# --------------------------------------------------------------------------- LNS


def _adjacency(prob: MCLPProblem) -> sp.csr_matrix:
    """Candidate interaction graph: two candidates are adjacent when they share a row."""
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
    Acsc = prob.A.tocsc()
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
    window re-solves, or when the ``safety`` stop fires (``time_limited``).  ``priority_seeds`` (candidate indices, open or not) are tried as
    window centres first, e.g. candidates the Lagrangian relaxation would rather open or
    close than the current solution does.
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    k = len(sol.sites)
    if k == 0:
        return sol
    adj = _adjacency(prob)
    sites = sol.sites.copy()
    ten = sol.tenants.copy()
    shared = sol.shared.copy()
    obj = sol.objective
    scale = max(prob.total_weight, 1.0)
    n_sub = 0
    n_imp = 0
    stale = 0
    queue: list[int] = [int(j) for j in (priority_seeds if priority_seeds is not None else [])]
    queue.reverse()
    max_window = max(window, min(k, 4 * window))
    timed_out = False
    while n_sub < max_subproblems and obj < target:
        if safety is not None and safety.expired():
            timed_out = True
            break
        if stale >= k:
            if window >= max_window:
                break
            window = min(max_window, window + 2)
            stale = 0
        if not queue:
            queue = [int(j) for j in sites[rng.permutation(k)]]
        seed_c = queue.pop()
        # BFS over the candidate graph from the seed until `window` open sites are found
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
        if not freed:
            stale += 1
            continue
        freed_idx = np.array(freed[:window], dtype=np.int64)
        fcand = sites[freed_idx]
        region = np.unique(
            np.concatenate(
                [fcand, [seed_c], _gather(adj.indptr, adj.indices, np.append(fcand, seed_c))[1]]
            )
        )
        keep_mask = np.ones(k, dtype=bool)
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
            stale += 1
            continue
        cur = MCLPSolution(lpos, ten[freed_idx], shared[freed_idx])
        cur.objective = evaluate(sub, cur)
        n_sub += 1
        try:
            limits = (
                safety.limits(sub_nodes, sub_gap)
                if safety is not None
                else WorkLimits(max_nodes=sub_nodes, mip_gap=sub_gap)
            )
            res = solve_milp(sub, limits, start=cur)
            timed_out = timed_out or res.time_limited
        except InfeasibleModelError:
            stale += 1
            continue
        if res.objective > cur.objective + 1e-9 * scale:
            new_sites = cmap[res.sites]
            sites = np.concatenate([sites[keep_mask], new_sites])
            ten = np.concatenate([ten[keep_mask], res.tenants])
            shared = np.concatenate([shared[keep_mask], res.shared])
            obj += res.objective - cur.objective
            n_imp += 1
            stale = 0
        else:
            stale += 1
    out = MCLPSolution(sites, ten, shared, method=sol.method + "+LNS")
    out.objective = evaluate(prob, out)
    out.time_limited = sol.time_limited or timed_out
    out.log = dict(sol.log)
    out.log.update(
        {
            "lns_s": time.perf_counter() - t0,
            "lns_subproblems": n_sub,
            "lns_improvements": n_imp,
            "lns_final_window": window,
        }
    )
    return out
