"""The typed model core of the multi-operator maximal covering problem (private).

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

:class:`MCLPProblem` (reduced instance, built by :func:`build_problem`: empty and
single-candidate rows folded, identical rows merged), :class:`MCLPSolution`,
:class:`SolveSettings` (deterministic work budgets) and :class:`SafetyStop`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from towerplan.errors import (
    N_,
    InfeasibleModelError,
    ParameterError,
    warn_user,
)
from towerplan.siting._highs import WorkLimits

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


LAGRANGIAN_AVERAGING = 0.1
"""Weight of the new subgradient in the averaged step direction of the Lagrangian bound
(1 = plain subgradient; see :func:`~towerplan.siting._bounds.lagrangian_bound`)."""


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
    solver : {'auto', 'exact', 'heuristic', 'benders'}
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
    lagrangian_averaging : float
        Weight in (0, 1] of the new subgradient in the Lagrangian bound's averaged step
        direction (1 = plain subgradient, the method before averaging).
    """

    solver: str = "auto"
    mip_gap: float = 1e-3
    seed: int = 0
    work_limit: float = 1.0
    max_nodes: int = 2000
    time_limit_s: float = float("inf")
    lagrangian_averaging: float = LAGRANGIAN_AVERAGING

    def __post_init__(self) -> None:
        if self.solver not in ("auto", "exact", "heuristic", "benders"):
            raise ParameterError(
                msgid=N_("solver = {solver!r}: use 'auto', 'exact', 'heuristic' or 'benders'"),
                solver=self.solver,
            )
        for name in ("mip_gap", "work_limit", "time_limit_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or np.isnan(v) or v < 0:
                raise ParameterError(
                    msgid=N_("{name} = {v!r}: must be a number >= 0"),
                    name=name,
                    v=v,
                )
        if not self.mip_gap < 1:
            raise ParameterError(
                msgid=N_("mip_gap = {mip_gap}: must be in [0, 1)"),
                mip_gap=self.mip_gap,
            )
        if not (np.isfinite(self.work_limit) and self.work_limit > 0):
            raise ParameterError(
                msgid=N_("work_limit = {work_limit}: must be a finite number > 0"),
                work_limit=self.work_limit,
            )
        a = self.lagrangian_averaging
        if isinstance(a, bool) or not isinstance(a, int | float) or not 0 < a <= 1:
            raise ParameterError(
                msgid=N_(
                    "lagrangian_averaging = {lagrangian_averaging!r}: must be a number in (0, 1]"
                ),
                lagrangian_averaging=a,
            )
        if self.time_limit_s <= 0:
            raise ParameterError(
                msgid=N_("time_limit_s = {time_limit_s}: must be > 0"),
                time_limit_s=self.time_limit_s,
            )
        if isinstance(self.max_nodes, bool) or not isinstance(self.max_nodes, int | np.integer):
            raise ParameterError(
                msgid=N_("max_nodes = {max_nodes!r}: must be a whole number >= 0"),
                max_nodes=self.max_nodes,
            )
        if self.max_nodes < 0:
            raise ParameterError(
                msgid=N_("max_nodes = {max_nodes}: must be a whole number >= 0"),
                max_nodes=self.max_nodes,
            )

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
LNS_SUB_CHECKPOINTS = 60
"""HiGHS MIP work checkpoints per LNS window MILP (bounds the root; see ``WorkLimits``)."""
MILP_CHECKPOINTS = 1000
"""HiGHS MIP work checkpoints of the full MILP (before ``work_limit`` scaling)."""
BENDERS_ROOT_ROUNDS = 40
"""Benders separation rounds at the root of the branch-and-Benders-cut."""
BENDERS_NODE_SHARE = 0.1
"""Branch-and-Benders-cut nodes per ``max_nodes`` unit (a SCIP node re-separates dense
Benders rows, about ten times the work of a HiGHS node of the compact MILP)."""


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

    def limits(self, max_nodes: int, mip_gap: float, max_checkpoints: int) -> WorkLimits:
        """HiGHS work limits with the time left as the safety stop."""
        return WorkLimits(
            max_nodes=int(max_nodes),
            mip_gap=float(mip_gap),
            time_limit_s=max(self.left(), 0.01),
            max_checkpoints=int(max_checkpoints),
        )


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
        warn_user(
            logger,
            N_("row-merge hash collision on {n} rows; keeping them separate"),
            log_only=True,
            n=len(bad_rows),
        )
        inv = inv.copy()
        inv[bad_rows] = inv.max() + 1 + np.arange(len(bad_rows))
        _, inv = np.unique(inv, return_inverse=True)
    return np.asarray(inv, dtype=np.int64)


def _check_quotas(n_dedicated: int, n_shared: int, capv: np.ndarray, n_op: int) -> None:
    """Raise when the quotas are negative or cannot be met by the candidates and operators."""
    m = len(capv)
    if n_dedicated < 0 or n_shared < 0:
        raise ParameterError(
            msgid=N_("n_dedicated = {n_dedicated}, n_shared = {n_shared}: quotas must be >= 0"),
            n_dedicated=n_dedicated,
            n_shared=n_shared,
        )
    p = n_dedicated + n_shared
    if p > m:
        raise InfeasibleModelError(
            msgid=N_(
                "p = n_dedicated + n_shared = {p} new structures but only {m} candidate "
                "sites; add candidates (smaller candidate spacing) or lower the quotas"
            ),
            p=p,
            m=m,
        )
    if n_shared > 0:
        if n_op < 2:
            raise InfeasibleModelError(
                msgid=N_(
                    "n_shared = {n_shared} shared structures need at least 2 operators, got {n_op}"
                ),
                n_shared=n_shared,
                n_op=n_op,
            )
        n_cap2 = int((capv >= 2).sum())
        if n_cap2 < n_shared:
            raise InfeasibleModelError(
                msgid=N_(
                    "n_shared = {n_shared} but only {n_cap2} candidates can host >= 2 tenants"
                    " (max_tenants); raise max_tenants or lower n_shared"
                ),
                n_shared=n_shared,
                n_cap2=n_cap2,
            )
    if (capv < 1).any():
        raise ParameterError(msgid=N_("every candidate must allow at least 1 tenant (cap >= 1)"))


def _symmetric_conflicts(conflicts: sp.spmatrix | None) -> sp.csr_matrix | None:
    """Symmetric boolean conflict matrix without diagonal, or None when it has no pair."""
    if conflicts is None:
        return None
    conf = sp.csr_matrix(conflicts, dtype=bool)
    conf = ((conf + conf.T) > 0).tocsr()
    conf.setdiag(False)
    conf.eliminate_zeros()
    if conf.nnz == 0:
        return None
    return conf


def _fold_singletons(
    A: sp.csr_matrix, W: np.ndarray
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, int]:
    """Fold rows covered by one candidate into its private weight ``C``; drop them from A, W."""
    m, n_op = A.shape[1], W.shape[1]
    lens = np.diff(A.indptr)
    single = lens == 1
    C = np.zeros((m, n_op))
    if single.any():
        cols = A.indices[A.indptr[:-1][single]]
        for o in range(n_op):
            C[:, o] = np.bincount(cols, weights=W[single, o], minlength=m)
    return A[~single], W[~single], C, int(single.sum())


def _merge_rows(A: sp.csr_matrix, W: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """Merge rows with identical covering sets (first row kept, weights summed)."""
    n_op = W.shape[1]
    grp = _row_hash_groups(A)
    ng = int(grp.max()) + 1
    first = np.full(ng, -1, dtype=np.int64)
    first[grp[::-1]] = np.arange(len(grp))[::-1]
    Wm = np.zeros((ng, n_op))
    for o in range(n_op):
        Wm[:, o] = np.bincount(grp, weights=W[:, o], minlength=ng)
    return A[first], Wm


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
        raise ParameterError(
            msgid=N_("W has {rows} rows but the coverage matrix has {n}"),
            rows=W.shape[0],
            n=n,
        )
    if (W < 0).any() or not np.isfinite(W).all():
        raise ParameterError(msgid=N_("demand weights must be finite and >= 0"))
    n_op = W.shape[1]
    capv = np.broadcast_to(np.asarray(cap, dtype=np.int64), (m,)).copy()
    _check_quotas(n_dedicated, n_shared, capv, n_op)
    conf = _symmetric_conflicts(conflicts)
    n0 = n
    keep = (W.sum(axis=1) > 0) & (np.diff(A.indptr) > 0)
    unreachable = float(W[np.diff(A.indptr) == 0].sum())
    A, W, C, n_single = _fold_singletons(A[keep], W[keep])
    if A.shape[0]:
        A, W = _merge_rows(A, W)
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
        raise InfeasibleModelError(msgid=N_("solution opens a candidate twice"))
    nt = sol.tenants.sum(axis=1)
    if int(sol.shared.sum()) != prob.n_shared or int((~sol.shared).sum()) != prob.n_dedicated:
        raise InfeasibleModelError(msgid=N_("solution breaks the dedicated/shared quotas"))
    if (nt[~sol.shared] != 1).any():
        raise InfeasibleModelError(msgid=N_("a dedicated structure does not have exactly 1 tenant"))
    if (nt[sol.shared] < 2).any() or (nt > prob.cap[sol.sites]).any():
        raise InfeasibleModelError(msgid=N_("a shared structure breaks the tenancy bounds"))
    if prob.conflicts is not None and k:
        sub = prob.conflicts[sol.sites][:, sol.sites]
        if sub.nnz:
            raise InfeasibleModelError(
                msgid=N_("solution opens two conflicting candidates (min spacing)")
            )


def _empty_solution(prob: MCLPProblem, method: str) -> MCLPSolution:
    out = MCLPSolution(
        np.zeros(0, np.int64), np.zeros((0, prob.n_ops), bool), np.zeros(0, bool), method=method
    )
    out.objective = prob.offset
    out.upper_bound = prob.offset
    return out
