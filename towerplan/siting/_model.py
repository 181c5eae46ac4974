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
from collections.abc import Iterable
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
    multi_operator_moves : bool
        Multi-operator models only: dedicated/shared type swaps in the primal search
        (:func:`~towerplan.siting._heuristics.type_swap_search`) and minimum-spacing pairs
        relaxed with multipliers in the Lagrangian bound (``False``: the method before,
        for side-by-side measurements).
    paired_lns : bool
        The LNS as of issue 9's primal work (default): window MILPs without HiGHS's
        presolve and primal heuristics, and before the second LNS phase a phase of
        *paired* windows (a structure the Lagrangian relaxation would close together with
        a candidate it would open, each with its nearest structures), so structures can
        move between far-apart places.  ``False`` = the former LNS.
    zone_bound : bool
        Single-operator, dedicated-only models too large for the full MILP: after the
        LNS, tighten the certified bound by the zone Lagrangian bound
        (:func:`~towerplan.siting._zones.zone_bound`: zone MILPs' dual bounds, cardinality
        and zone-crossing rows relaxed).  ``False`` = the bound before it.
    type_flex : bool
        Multi-operator models (with ``multi_operator_moves``): moves that change where the
        shared quota is spent (:mod:`~towerplan.siting._multiop`): LNS windows whose
        number of shared structures may change by one, the quotas kept by converting the
        best structure outside the window the other way, and dedicated <-> shared ejection
        chains after the type swaps.  ``False`` = the method before, for side-by-side
        measurements.
    count_flex : bool
        Single-operator, dedicated-only models: LNS windows whose number of structures
        may change by one, ``p`` kept by opening the best candidate (or closing the
        cheapest structure) outside the window
        (:func:`~towerplan.siting._countflex.count_window_solver`).  ``False`` = the
        fixed-count windows before, for side-by-side measurements.
    multiop_count_flex : bool
        Multi-operator models (with ``type_flex``): the type-flexible LNS windows may also
        gain one structure (the far structure of that type losing least is closed) or
        lose one (the far candidate gaining most is opened)
        (:func:`~towerplan.siting._multiop.flex_window_solver`).  Off by default:
        measured, it did not pay (README, *tried, not kept*); ``scripts/bench_siting.py
        --multiop-countflex`` compares it.
    regional_exchange : bool
        Single-operator, dedicated-only models too large for the full MILP, when the gap
        after the zone bound still exceeds ``mip_gap``: rounds of regional exchanges
        (:func:`~towerplan.siting._regional.regional_exchange`: independent windows,
        each solved for its count of structures changed by -2..2, one change per window
        chosen so that ``p`` is kept).  Off by default: measured, it gains too little per
        CPU second (README, *tried, not kept*); ``scripts/bench_siting.py --exchange``
        compares it.  Multi-operator models: after the paired LNS, rounds of regional
        exchange moves (:mod:`~towerplan.siting._mexchange`: independent windows in the
        zones whose relaxed counts differ most from the incumbent's, each re-solved for a
        few ``(dedicated, shared)`` count deltas, one delta a window chosen by
        :func:`~towerplan.siting._exchange.best_exchange`, quotas kept); measured, it did
        not pay either; ``bench_siting.py --mexchange`` compares it.
    threads : int
        Threads of the LNS window solves (>= 1).  1: one window after another in this
        thread (the method before); 2 (default): while a window is solved, the window the
        search reaches next if this one brings no improvement is solved beside it, and its
        result is used only if the window really re-solved is exactly that MILP
        (:mod:`~towerplan.siting._speculate`).  The result is the same bit for bit for any
        value, only the wall time changes; values above 2 use two threads as well.
        Multi-operator models only (single-operator windows are cheap MILPs and the zone
        bound runs beside their LNS).
    """

    solver: str = "auto"
    mip_gap: float = 1e-3
    seed: int = 0
    work_limit: float = 1.0
    max_nodes: int = 2000
    time_limit_s: float = float("inf")
    lagrangian_averaging: float = LAGRANGIAN_AVERAGING
    multi_operator_moves: bool = True
    paired_lns: bool = True
    zone_bound: bool = True
    type_flex: bool = True
    count_flex: bool = True
    multiop_count_flex: bool = False
    regional_exchange: bool = False
    threads: int = 2

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
        t = self.threads
        if isinstance(t, bool) or not isinstance(t, int | np.integer) or t < 1:
            raise ParameterError(
                msgid=N_("threads = {threads!r}: must be a whole number >= 1"),
                threads=t,
            )
        if self.max_nodes < 0:
            raise ParameterError(
                msgid=N_("max_nodes = {max_nodes}: must be a whole number >= 0"),
                max_nodes=self.max_nodes,
            )
        for key in (
            "multi_operator_moves",
            "paired_lns",
            "zone_bound",
            "type_flex",
            "count_flex",
            "multiop_count_flex",
        ):
            if not isinstance(getattr(self, key), bool):
                raise ParameterError(
                    msgid=N_("{origin}: key '{key}' must be true or false, got {value}"),
                    origin="SolveSettings",
                    key=key,
                    value=repr(getattr(self, key)),
                )

    def budget(self, base: int) -> int:
        """``base`` work units scaled by ``work_limit`` (at least 1)."""
        return max(1, round(base * self.work_limit))

    def optional_budget(self, base: int) -> int:
        """``base`` work units of an optional polishing phase scaled by ``work_limit``,
        rounded to the nearest whole unit: 0 (the phase is skipped) below half a unit,
        e.g. for a quick look at ``work_limit`` 0.05."""
        return round(base * self.work_limit)


SWAP_PASSES = 30
"""Swap local-search passes per call (a pass tries every open structure once)."""


LAGRANGIAN_ITERATIONS = 400
"""Subgradient iterations of the Lagrangian bound."""


TYPE_SWAP_MOVES = 60
"""Dedicated/shared type swaps per round (multi-operator models)."""
TYPE_SWAP_ROUNDS = 3
"""Rounds of type swaps followed by swap local search (multi-operator models)."""


LNS_SUBPROBLEMS = 40
"""LNS window re-solves per LNS phase."""
LNS_SECOND_SUBPROBLEMS_ONE_OP = 200
"""Window re-solves of the second LNS phase for one operator with ``count_flex`` (count-
flexible windows keep improving where fixed-count ones had stalled: on the Cần Thơ-scale
city 160 more gained +188 in 7.5 CPU s)."""


LNS_PAIR_SUBPROBLEMS = 40
"""Paired-window re-solves of the paired LNS phase (``SolveSettings.paired_lns``)."""
LNS_PAIR_SUBPROBLEMS_ONE_OP = 160
"""The same for single-operator, dedicated-only models (their windows are MILPs of one
binary per candidate, cheap; measured on the Cần Thơ-scale city: 120 more paired windows
from the default's result gained 391 in 7.3 CPU s, 120 plain windows 142 in 7.1 s)."""


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

    def limits(
        self, max_nodes: int, mip_gap: float, max_checkpoints: int, light_root: bool = False
    ) -> WorkLimits:
        """HiGHS work limits with the time left as the safety stop."""
        return WorkLimits(
            max_nodes=int(max_nodes),
            mip_gap=float(mip_gap),
            time_limit_s=max(self.left(), 0.01),
            max_checkpoints=int(max_checkpoints),
            light_root=light_root,
        )


def _row_keys(A: sp.csr_matrix, seed: int = 12345) -> np.ndarray:
    """Per-row hash key ``(h1, h2, length)`` of the column sets (rows non-empty)."""
    rng = np.random.default_rng(seed)
    m = A.shape[1]
    r1 = rng.integers(1, 2**63 - 1, size=m, dtype=np.uint64)
    r2 = rng.integers(1, 2**63 - 1, size=m, dtype=np.uint64)
    keys = np.empty(A.shape[0], dtype=[("a", np.uint64), ("b", np.uint64), ("c", np.int64)])
    if A.shape[0] == 0:
        return keys
    starts = A.indptr[:-1]
    with np.errstate(over="ignore"):
        keys["a"] = np.add.reduceat(r1[A.indices], starts)
        keys["b"] = np.add.reduceat(r2[A.indices], starts)
    keys["c"] = np.diff(A.indptr)
    return keys


def _group_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(keys, return_index=True, return_inverse=True)[1:]`` for row keys.

    The same groups, numbering (sorted keys) and first indices as ``np.unique`` on the
    structured array, by one stable ``lexsort`` of the three fields (several times
    faster than sorting the structured records).
    """
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.lexsort((keys["c"], keys["b"], keys["a"]))
    ks = keys[order]
    new = np.ones(n, dtype=bool)
    new[1:] = (ks["a"][1:] != ks["a"][:-1]) | (ks["b"][1:] != ks["b"][:-1])
    new[1:] |= ks["c"][1:] != ks["c"][:-1]
    inv = np.empty(n, dtype=np.int64)
    inv[order] = np.cumsum(new) - 1
    return order[new].astype(np.int64), inv


def _rows_differ(A: sp.csr_matrix, rep: np.ndarray) -> np.ndarray:
    """Rows of ``A`` whose column set differs from that of row ``rep[row]`` (same lengths)."""
    lens = np.diff(A.indptr).astype(np.int64)
    pos_row = np.repeat(np.arange(A.shape[0]), lens)
    offs = np.arange(len(A.indices)) - A.indptr[pos_row]
    same = A.indices == A.indices[A.indptr[rep[pos_row]] + offs]
    return np.asarray(np.unique(pos_row[~same]), dtype=np.int64)


def _split_bad(inv: np.ndarray, bad_rows: np.ndarray) -> np.ndarray:
    """Group ids with the rows of a hash collision each in a group of its own."""
    if not len(bad_rows):
        return inv
    warn_user(  # pragma: no cover - probability ~2^-128 (tests force it)
        logger,
        N_("row-merge hash collision on {n} rows; keeping them separate"),
        log_only=True,
        n=len(bad_rows),
    )
    inv = inv.copy()
    inv[bad_rows] = inv.max() + 1 + np.arange(len(bad_rows))
    _, inv = np.unique(inv, return_inverse=True)
    return np.asarray(inv, dtype=np.int64).ravel()


def _row_hash_groups(A: sp.csr_matrix, seed: int = 12345) -> np.ndarray:
    """Group id per row such that rows share an id iff their column sets are identical."""
    if A.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    # rows are all non-empty here (empty rows were dropped before)
    first, inv = _group_keys(_row_keys(A, seed))
    # verify exactly (hash collisions would merge different rows)
    return _split_bad(inv, _rows_differ(A, first[inv]))


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


REDUCE_BLOCK_ROWS = 1 << 17
"""Rows per block when :func:`build_problem` reduces a full coverage matrix."""


@dataclass
class _BlockRows:
    """What the row reduction keeps of the blocks seen so far (see :func:`_reduce_blocks`)."""

    m: int
    n: int = 0
    single_rows: list[np.ndarray] = field(default_factory=list)
    single_cols: list[np.ndarray] = field(default_factory=list)
    multi_rows: list[np.ndarray] = field(default_factory=list)
    keys: list[np.ndarray] = field(default_factory=list)
    src: list[np.ndarray] = field(default_factory=list)
    bad: list[np.ndarray] = field(default_factory=list)
    stored: list[sp.csr_matrix] = field(default_factory=list)
    owner: list[np.ndarray] = field(default_factory=list)
    n_multi: int = 0
    n_stored: int = 0

    def add(self, blk: sp.csr_matrix, wpos: np.ndarray, empty: np.ndarray) -> None:
        """Fold, hash and locally merge one block of consecutive rows (starting at ``n``)."""
        s, nb = self.n, blk.shape[0]
        lens = np.diff(blk.indptr)
        empty[s : s + nb] = lens == 0
        keep = wpos[s : s + nb] & (lens > 0)
        one = np.flatnonzero(keep & (lens == 1))
        self.single_rows.append(s + one)
        self.single_cols.append(blk.indices[blk.indptr[one]])
        multi = np.flatnonzero(keep & (lens > 1))
        sub = blk[multi]
        keys = _row_keys(sub)
        first, inv = _group_keys(keys)
        bad = _rows_differ(sub, first[inv])
        store = np.union1d(first, bad)  # rows kept: the first of each key, and misfits
        src = np.searchsorted(store, first[inv])
        src[bad] = np.searchsorted(store, bad)
        self.multi_rows.append(s + multi)
        self.keys.append(keys)
        self.src.append(self.n_stored + src)
        self.bad.append(self.n_multi + bad)
        self.stored.append(sub[store])
        self.owner.append(self.n_multi + store)
        self.n, self.n_multi, self.n_stored = (
            s + nb,
            self.n_multi + len(multi),
            self.n_stored + len(store),
        )


def _cat(parts: list[np.ndarray], dtype: Any = np.int64) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


def _reduce_blocks(
    blocks: Iterable[sp.spmatrix], W: np.ndarray, m: int
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, dict[str, Any]]:
    """Drop, fold and merge the rows of a coverage matrix given as row blocks.

    Exactly the reduction of the whole matrix at once: rows with zero weight or no
    candidate dropped, single-candidate rows folded into ``C`` (summed in row order),
    identical rows merged (groups numbered by sorted hash key, first row kept, weights
    summed in row order).  Each block is merged locally as it comes, so only one block
    and one row per distinct column set are held; a row is checked against its block's
    representative, and that one against the global one (a hash collision keeps rows
    apart, never merges different rows).
    """
    n, n_op = W.shape
    wpos = W.sum(axis=1) > 0
    empty = np.zeros(n, dtype=bool)
    acc = _BlockRows(m)
    for blk in blocks:
        blk = sp.csr_matrix(blk, dtype=bool)
        blk.sum_duplicates()
        blk.sort_indices()
        if blk.shape[1] != m or acc.n + blk.shape[0] > n:
            raise ParameterError(
                msgid=N_("W has {rows} rows but the coverage matrix has {n}"),
                rows=n,
                n=acc.n + blk.shape[0],
            )
        acc.add(blk, wpos, empty)
    if acc.n != n:
        raise ParameterError(
            msgid=N_("W has {rows} rows but the coverage matrix has {n}"), rows=n, n=acc.n
        )
    C = np.zeros((m, n_op))
    srows, scols = _cat(acc.single_rows), _cat(acc.single_cols)
    for o in range(n_op):
        C[:, o] = np.bincount(scols, weights=W[srows, o], minlength=m)
    stored = (
        sp.vstack(acc.stored, format="csr") if acc.stored else sp.csr_matrix((0, m), dtype=bool)
    )
    keys = np.concatenate(acc.keys) if acc.keys else _row_keys(stored)
    src, owner = _cat(acc.src), _cat(acc.owner)
    first, inv = _group_keys(keys)
    bad_stored = _rows_differ(stored, src[first[inv[owner]]]) if len(owner) else owner
    bad = np.union1d(_cat(acc.bad), np.flatnonzero(np.isin(src, bad_stored)))
    inv = _split_bad(inv, bad)
    ng = int(inv.max()) + 1 if len(inv) else 0
    first = np.full(ng, -1, dtype=np.int64)
    first[inv[::-1]] = np.arange(len(inv))[::-1]
    mrows = _cat(acc.multi_rows)
    Wm = np.zeros((ng, n_op))
    for o in range(n_op):
        Wm[:, o] = np.bincount(inv, weights=W[mrows, o], minlength=ng)
    A = stored[src[first]]
    info = {
        "rows_with_weight": len(srows) + len(mrows),
        "rows_singleton_folded": len(srows),
        "unreachable_weight": float(W[empty].sum()),
    }
    return A, Wm, C, info


def _check_weights(W: np.ndarray) -> np.ndarray:
    W = np.asarray(W, dtype=float)
    if W.ndim == 1:
        W = W[:, None]
    if (W < 0).any() or not np.isfinite(W).all():
        raise ParameterError(msgid=N_("demand weights must be finite and >= 0"))
    return W


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
    remain available to fill the quotas.  The rows are reduced in blocks of
    :data:`REDUCE_BLOCK_ROWS` (:func:`build_problem_blocks`; same result).

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
    A = sp.csr_matrix(A)
    W = np.asarray(W, dtype=float)
    if W.shape[0] != A.shape[0]:
        raise ParameterError(
            msgid=N_("W has {rows} rows but the coverage matrix has {n}"),
            rows=W.shape[0],
            n=A.shape[0],
        )
    step = REDUCE_BLOCK_ROWS
    blocks = (A[s : s + step] for s in range(0, A.shape[0], step))
    return build_problem_blocks(
        blocks,
        W,
        A.shape[1],
        quotas=(n_dedicated, n_shared),
        cap=cap,
        conflicts=conflicts,
        offset=offset,
    )


def build_problem_blocks(
    blocks: Iterable[sp.spmatrix],
    W: np.ndarray,
    m: int,
    *,
    quotas: tuple[int, int],
    cap: np.ndarray | int,
    conflicts: sp.spmatrix | None = None,
    offset: float = 0.0,
) -> MCLPProblem:
    """:func:`build_problem` from the coverage matrix as consecutive row blocks.

    The blocks (e.g. :func:`towerplan.coverage.coverage_blocks`) are reduced one at a
    time, so the full ``n x m`` coverage matrix is never held: with a million demand
    cells only one block and one row per distinct covering set are in memory.  The
    result is identical to :func:`build_problem` on the stacked blocks.

    Parameters
    ----------
    blocks : iterable of sparse (rows_k, m)
        Coverage of consecutive demand rows; together ``n`` rows.
    W : ndarray (n, n_op)
        Uncovered weight per row and operator.
    m : int
        Number of candidates (columns of every block).
    quotas : (int, int)
        ``(n_dedicated, n_shared)``.
    cap, conflicts, offset
        As in :func:`build_problem`.
    """
    t0 = time.perf_counter()
    n_dedicated, n_shared = quotas
    W = _check_weights(W)
    n_op = W.shape[1]
    capv = np.broadcast_to(np.asarray(cap, dtype=np.int64), (m,)).copy()
    _check_quotas(n_dedicated, n_shared, capv, n_op)
    conf = _symmetric_conflicts(conflicts)
    n0 = int(W.shape[0])
    A, W, C, red = _reduce_blocks(blocks, W, m)
    info = {
        "rows_input": n0,
        "rows_with_weight": red["rows_with_weight"],
        "rows_singleton_folded": red["rows_singleton_folded"],
        "rows_after_merge": int(A.shape[0]),
        "candidates": m,
        "candidates_useful": int(((np.diff(A.tocsc().indptr) > 0) | (C.sum(1) > 0)).sum()),
        "unreachable_weight": red["unreachable_weight"],
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
    """Best dedicated value (max over operators) and best shared value (top-cap sum).

    Each row's values are sorted by a compare-exchange network over whole operator
    columns (odd-even transposition sort with ``np.minimum``/``np.maximum``: the same
    values as ``np.sort`` along the short axis, several times faster), and the shared
    value is summed from the best value down, as the ``cumsum`` of the decreasing values
    (the same additions in the same order).
    """
    if G.shape[0] == 0:
        return np.zeros(0), np.zeros(0)
    n_op = G.shape[1]
    if n_op < 2:
        return G.max(axis=1), np.full(G.shape[0], -np.inf)
    cols = list(np.ascontiguousarray(G.T))
    for r in range(n_op):
        for i in range(r % 2, n_op - 1, 2):
            cols[i], cols[i + 1] = (
                np.minimum(cols[i], cols[i + 1]),
                np.maximum(cols[i], cols[i + 1]),
            )
    k = np.minimum(cap, n_op)
    S = np.full(G.shape[0], -np.inf)
    acc = cols[-1]
    for kk in range(2, n_op + 1):
        acc = acc + cols[n_op - kk]
        S = np.where(k == kk, acc, S)
    return cols[-1], S


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
