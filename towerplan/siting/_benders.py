"""Branch-and-Benders-cut for the (multi-operator) MCLP with SCIP (private).

After Cordeau, Furini & Ljubić (EJOR 2019): the demand variables ``z`` are projected
out.  The master problem (solved by SCIP through pyscipopt) keeps one binary per
candidate and tenant pattern, ``y[k]`` (one operator: one per candidate), and one
continuous ``theta[b]`` per block ``b`` of (demand row, operator) pairs; its
objective is ``offset + sum_b theta[b] + sum_k c_k y_k`` (``c`` = weight only that
candidate covers).  For a master point with tenant coverage ``x[j, o]`` (= the sum
of the ``y`` of the patterns of ``j`` that contain ``o``), the covering subproblem
of a pair ``(i, o)`` — ``max W z, z <= 1, z <= sum_j A_ij x_jo`` — has the dual
solution ``u = W, v = 0`` when the row is covered (``sum_j A_ij x_jo >= 1``) and
``u = 0, v = W`` otherwise, so the Benders cut of block ``b`` is, in closed form,

    theta[b] <= sum_{(i,o) in b covered} W_io
                + sum_{(i,o) in b not covered} W_io sum_j A_ij x_jo.

A pyscipopt constraint handler separates these cuts at fractional LP points (root
and tree) and enforces them at integer points (LP and pseudo solutions), so the
method is exact: a solution is accepted only when every ``theta[b]`` equals its
block's true covered weight.  Blocks group rows by their lowest covering candidate
(spatially close rows, so cuts stay sparse).

Presolve on top of :func:`~towerplan.siting._model.build_problem` (identical rows
merged, single-candidate rows folded): candidates whose coverage is a subset of
another candidate's (one operator, no minimum spacing) are removed (dominance),
keeping enough zero-value fillers for the exact count ``p``.  SCIP's reduced-cost
propagator fixes ``y`` from the LP duals and the incumbent; the search starts from the
heuristic incumbent.  SCIP runs single-threaded with a fixed seed and no time-based
decision, bounded by nodes, so the same problem gives the same result under any load.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import scipy.sparse as sp

from towerplan.errors import (
    N_,
    InfeasibleModelError,
    warn_user,
)
from towerplan.siting._model import MCLPProblem, MCLPSolution, _empty_solution, evaluate

logger = logging.getLogger(__name__)

MULTI_CUT_PAIRS = 20_000
"""Up to this many (row, operator) pairs every pair is its own Benders block (multi-cut:
closed the 2,000 x 500 bench instance 2.6x faster than blocks of 5, 20 or 600 pairs);
above, the root LP of the multi-cut master is as large as the full LP, so pairs are
aggregated into blocks of :data:`ROWS_PER_BLOCK`, started from the Lagrangian duals."""
ROWS_PER_BLOCK = 600
"""Pairs per Benders block on large instances (see :data:`MULTI_CUT_PAIRS`)."""
SEPA_ROUNDS_ROOT = 400
"""Benders separation rounds at the root."""
SEPA_ROUNDS_NODE = 5
"""Benders separation rounds at other nodes."""


@dataclass(frozen=True)
class BendersLimits:
    """Deterministic work bounds of one branch-and-Benders-cut run.

    Attributes
    ----------
    max_nodes : int
        Branch-and-bound nodes.
    mip_gap : float
        Relative gap at which the search stops.
    time_limit_s : float
        Wall-clock safety stop (``inf`` = none); a run that hits it is not reproducible.
    rows_per_block : int or None
        Target (row, operator) pairs aggregated into one Benders variable; ``None``:
        1 up to :data:`MULTI_CUT_PAIRS` pairs, else :data:`ROWS_PER_BLOCK`.
    max_root_rounds : int
        Benders separation rounds at the root.
    """

    max_nodes: int = 1000
    mip_gap: float = 1e-4
    time_limit_s: float = float("inf")
    rows_per_block: int | None = None
    max_root_rounds: int = SEPA_ROUNDS_ROOT


@dataclass(frozen=True)
class MasterColumns:
    """Master binaries: candidate, tenant mask and shared flag of each column ``y[k]``.

    ``T`` maps columns to tenant coverage: ``x[j * n_op + o] = (T @ y)``.
    """

    cand: np.ndarray
    mask: np.ndarray
    shared: np.ndarray
    T: sp.csr_matrix


def dominated_candidates(prob: MCLPProblem) -> np.ndarray:
    """Candidates whose covered rows are a subset of another candidate's (bool mask).

    Only for one operator without minimum spacing (otherwise nothing is removed): an
    optimal solution never needs a candidate ``j`` whose rows are covered by ``k`` and
    which covers no row alone (``C[j] = 0``) — swap it for ``k``, or for any unused
    candidate when ``k`` is open (``j`` then adds nothing).  Of
    candidates with identical coverage the lowest index is kept.
    """
    m = prob.n_cand
    out = np.zeros(m, dtype=bool)
    if prob.n_ops != 1 or prob.n_shared or prob.conflicts is not None or prob.n_rows == 0:
        return out
    A = prob.A.astype(np.int32).tocsc()
    deg = np.diff(A.indptr)
    overlap = (A.T @ A).tocoo()
    j, k, cnt = overlap.row, overlap.col, overlap.data
    sub = (j != k) & (cnt == deg[j]) & (prob.C[j, 0] <= 0)
    strict = (deg[k] > deg[j]) | ((deg[k] == deg[j]) & (k < j))
    out[np.unique(j[sub & strict])] = True
    # zero-value candidates (no rows, no private weight) are all interchangeable
    empty = (deg == 0) & (prob.C[:, 0] <= 0)
    out |= empty
    return out


def master_columns(prob: MCLPProblem, keep: np.ndarray) -> MasterColumns:
    """One column per kept candidate and feasible tenant pattern (patterns as in the MILP)."""
    n_op = prob.n_ops
    pats: list[tuple[int, ...]] = []
    if prob.n_dedicated > 0:
        pats.extend((o,) for o in range(n_op))
    if prob.n_shared > 0:
        for t in range(2, min(int(prob.cap.max()), n_op) + 1):
            pats.extend(combinations(range(n_op), t))
    pm = np.zeros((len(pats), n_op), dtype=bool)
    for q, pat in enumerate(pats):
        pm[q, list(pat)] = True
    size = pm.sum(axis=1)
    ok = size[None, :] <= prob.cap[keep][:, None]
    jj, qq = np.nonzero(ok)
    cand = keep[jj]
    mask = pm[qq]
    rows = (cand[:, None] * n_op + np.arange(n_op)[None, :])[mask]
    cols = np.repeat(np.arange(len(cand)), mask.sum(axis=1))
    T = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(prob.n_cand * n_op, len(cand)))
    return MasterColumns(cand=cand, mask=mask, shared=size[qq] >= 2, T=T)


@dataclass
class _CutOracle:
    """Closed-form Benders cuts of all blocks at a master point (matrix level)."""

    A: sp.csr_matrix
    pi: np.ndarray
    po: np.ndarray
    pw: np.ndarray
    block: np.ndarray
    n_blocks: int
    cols: MasterColumns
    n_op: int

    @classmethod
    def build(
        cls, prob: MCLPProblem, cols: MasterColumns, rows_per_block: int | None
    ) -> _CutOracle:
        pi, po = np.nonzero(prob.W > 0)
        if rows_per_block is None:
            rows_per_block = 1 if len(pi) <= MULTI_CUT_PAIRS else ROWS_PER_BLOCK
        pw = prob.W[pi, po]
        A = prob.A.astype(float).tocsr()
        first = A.indices[A.indptr[:-1]] if A.nnz else np.zeros(prob.n_rows, np.int64)
        order = np.lexsort((pi, first[pi], po))
        nb = max(1, int(np.ceil(len(pi) / max(rows_per_block, 1))))
        block = np.empty(len(pi), dtype=np.int64)
        block[order] = (np.arange(len(pi)) * nb) // max(len(pi), 1)
        return cls(A, pi, po, pw, block, nb, cols, prob.n_ops)

    def coverage(self, y: np.ndarray) -> np.ndarray:
        """Tenant coverage ``sum_j A_ij x_jo`` of every pair at master point ``y``."""
        X = np.asarray(self.cols.T @ y).reshape(-1, self.n_op)
        return np.asarray(self.A @ X)[self.pi, self.po]

    def values(self, y: np.ndarray) -> np.ndarray:
        """Right-hand side of each block's cut at ``y`` (= its covered weight at integer ``y``)."""
        cov = self.coverage(y)
        return np.bincount(
            self.block, weights=self.pw * np.minimum(cov, 1.0), minlength=self.n_blocks
        )

    def cuts(self, y: np.ndarray, blocks: np.ndarray) -> tuple[np.ndarray, sp.csr_matrix]:
        """Constants and column coefficients of the cuts of ``blocks`` at ``y``.

        Returns ``(const, G)`` with ``theta[b] <= const[r] + G[r] @ y`` for ``b = blocks[r]``.
        """
        unc = self.coverage(y) < 1.0 - 1e-9
        return self.dual_cuts(np.where(unc, self.pw, 0.0), blocks)

    def dual_cuts(self, v: np.ndarray, blocks: np.ndarray) -> tuple[np.ndarray, sp.csr_matrix]:
        """Cuts of ``blocks`` from covering-row duals ``0 <= v <= W`` (one per pair).

        Any such ``v`` gives the valid cut ``theta[b] <= sum_b (W - v) + sum_b v A x``;
        the closed-form cut is ``v = W`` on uncovered pairs, 0 elsewhere, and the
        Lagrangian multipliers of :func:`~towerplan.siting._bounds.lagrangian_bound`
        give a cut set whose master LP is at most the Lagrangian bound.
        """
        v = np.clip(v, 0.0, self.pw)
        unc = v > 0
        pos = np.full(self.n_blocks, -1, dtype=np.int64)
        pos[blocks] = np.arange(len(blocks))
        sel = pos[self.block] >= 0
        r = pos[self.block[sel]]
        const = np.bincount(r, weights=(self.pw - v)[sel], minlength=len(blocks))
        take = sel & unc
        S = sp.csr_matrix(
            (v[take], (pos[self.block[take]], self.pi[take] * self.n_op + self.po[take])),
            shape=(len(blocks), self.A.shape[0] * self.n_op),
        )
        # (blocks x rows*ops) @ (rows*ops x cand*ops) via per-operator products
        G = sp.csr_matrix((len(blocks), self.A.shape[1] * self.n_op))
        for o in range(self.n_op):
            So = S[:, o :: self.n_op]
            if So.nnz == 0:
                continue
            Go = (So @ self.A).tocoo()
            G = G + sp.csr_matrix((Go.data, (Go.row, Go.col * self.n_op + o)), shape=G.shape)
        return const, (G @ self.cols.T).tocsr()


def _rows_to_add(model: Any, G: sp.csr_matrix, const: np.ndarray, blocks: np.ndarray) -> list[Any]:
    """Encode cut rows ``theta[b] - G[r] @ y <= const[r]`` as (block, cols, coefs, rhs) tuples."""
    out = []
    for r, b in enumerate(blocks):
        lo, hi = G.indptr[r], G.indptr[r + 1]
        out.append((int(b), G.indices[lo:hi], G.data[lo:hi], float(const[r])))
    return out


class _Handler:
    """State and separation logic of the Benders constraint handler (SCIP-agnostic part)."""

    def __init__(self, oracle: _CutOracle, yv: list[Any], tv: list[Any]) -> None:
        self.oracle = oracle
        self.yv = yv
        self.tv = tv
        self.cuts = 0
        self.rounds = 0
        self.core: np.ndarray | None = None
        self.initial: list[np.ndarray] = []
        self.root_rounds = SEPA_ROUNDS_ROOT

    def init_lp(self, model: Any) -> int:
        """Add one cut per block for each initial dual vector (pair-level ``v``) to the LP."""
        blocks = np.arange(self.oracle.n_blocks)
        n = 0
        initial, self.initial = self.initial, []  # SCIP may call this again: add them once
        for v in initial:
            const, G = self.oracle.dual_cuts(v, blocks)
            keep = np.diff(G.indptr) > 0  # rows with no column are bounds already
            self._add_rows(model, G[keep], const[keep], blocks[keep], True, removable=False)
            n += int(keep.sum())
        logger.debug("Benders: %d initial cuts", n)
        return n

    def point(self, model: Any, sol: Any) -> tuple[np.ndarray, np.ndarray]:
        y = np.fromiter((model.getSolVal(sol, v) for v in self.yv), float, len(self.yv))
        th = np.fromiter((model.getSolVal(sol, v) for v in self.tv), float, len(self.tv))
        return np.clip(y, 0.0, 1.0), th

    def violated(self, y: np.ndarray, th: np.ndarray) -> np.ndarray:
        val = self.oracle.values(y)
        return np.flatnonzero(th - val > 1e-6 * np.maximum(1.0, np.abs(val)))

    def separate(self, model: Any, sol: Any, force: bool, stabilise: bool = False) -> int:
        """Add the violated cuts at ``sol`` (``None``: the LP solution) as SCIP rows.

        With ``stabilise`` (root), cuts are computed at the in-out point halfway between
        the LP point and a core point (moved towards the LP point each round); the LP
        point's own cuts are the fallback when none of those is violated.
        """
        y, th = self.point(model, sol)
        blocks = np.zeros(0, dtype=np.int64)
        if stabilise and self.core is not None:
            ysep = 0.5 * (y + self.core)
            self.core = ysep
            const, G = self.oracle.cuts(ysep, np.arange(self.oracle.n_blocks))
            viol = th - (const + G @ y)
            blocks = np.flatnonzero(viol > 1e-6 * np.maximum(1.0, np.abs(const)))
            const, G = const[blocks], G[blocks]
        if len(blocks) == 0:
            blocks = self.violated(y, th)
            if len(blocks) == 0:
                return 0
            const, G = self.oracle.cuts(y, blocks)
        self._add_rows(model, G, const, blocks, force)
        self.rounds += 1
        logger.debug(
            "Benders round %d (depth %d): %d cuts, LP %.1f",
            self.rounds,
            model.getDepth(),
            len(blocks),
            model.getLPObjVal() if sol is None else float("nan"),
        )
        return len(blocks)

    def _add_rows(
        self,
        model: Any,
        G: sp.csr_matrix,
        const: np.ndarray,
        blocks: np.ndarray,
        force: bool,
        removable: bool = True,
    ) -> None:
        for b, cols, coefs, rhs in _rows_to_add(model, G, const, blocks):
            row = model.createEmptyRowUnspec(
                name=f"benders{self.cuts}", lhs=None, rhs=rhs, local=False, removable=removable
            )
            model.cacheRowExtensions(row)
            model.addVarToRow(row, self.tv[b], 1.0)
            for k, c in zip(cols.tolist(), coefs.tolist(), strict=True):
                model.addVarToRow(row, self.yv[k], -c)
            model.flushRowExtensions(row)
            model.addCut(row, forcecut=force)
            model.releaseRow(row)
            self.cuts += 1

    def add_conss(self, model: Any, sol: Any) -> int:
        """Add the violated cuts at ``sol`` as linear constraints (pseudo solutions)."""
        from pyscipopt import quicksum

        y, th = self.point(model, sol)
        blocks = self.violated(y, th)
        if len(blocks) == 0:
            return 0
        const, G = self.oracle.cuts(y, blocks)
        for b, cols, coefs, rhs in _rows_to_add(model, G, const, blocks):
            expr = quicksum(
                c * self.yv[k] for k, c in zip(cols.tolist(), coefs.tolist(), strict=True)
            )
            model.addCons(self.tv[b] - expr <= rhs, removable=True)
            self.cuts += 1
        return len(blocks)


def _scip_handler(state: _Handler) -> Any:
    """A pyscipopt constraint handler enforcing the Benders cuts of ``state``."""
    from pyscipopt import SCIP_RESULT, Conshdlr

    class BendersConshdlr(Conshdlr):  # type: ignore[misc]
        def conscheck(
            self, constraints, solution, checkintegrality, checklprows, printreason, completely
        ):  # type: ignore[no-untyped-def]
            y, th = state.point(self.model, solution)
            ok = len(state.violated(y, th)) == 0
            return {"result": SCIP_RESULT.FEASIBLE if ok else SCIP_RESULT.INFEASIBLE}

        def consenfolp(self, constraints, nusefulconss, solinfeasible):  # type: ignore[no-untyped-def]
            n = state.separate(self.model, None, force=True)
            return {"result": SCIP_RESULT.SEPARATED if n else SCIP_RESULT.FEASIBLE}

        def consenfops(self, constraints, nusefulconss, solinfeasible, objinfeasible):  # type: ignore[no-untyped-def]
            n = state.add_conss(self.model, None)
            return {"result": SCIP_RESULT.CONSADDED if n else SCIP_RESULT.FEASIBLE}

        def conssepalp(self, constraints, nusefulconss):  # type: ignore[no-untyped-def]
            limit = state.root_rounds if self.model.getDepth() == 0 else SEPA_ROUNDS_NODE
            if self.model.getNSepaRounds() >= limit:
                return {"result": SCIP_RESULT.DIDNOTRUN}
            root = self.model.getDepth() == 0
            n = state.separate(self.model, None, force=False, stabilise=root)
            return {"result": SCIP_RESULT.SEPARATED if n else SCIP_RESULT.DIDNOTFIND}

        def consinitlp(self, constraints):  # type: ignore[no-untyped-def]
            state.init_lp(self.model)
            return {}

        def conslock(self, constraint, locktype, nlockspos, nlocksneg):  # type: ignore[no-untyped-def]
            for v in state.yv:
                self.model.addVarLocks(v, nlockspos, nlocksneg)
            for v in state.tv:
                self.model.addVarLocks(v, nlocksneg, nlockspos)

    return BendersConshdlr()


def _master(
    prob: MCLPProblem, cols: MasterColumns, oracle: _CutOracle
) -> tuple[Any, list[Any], list[Any]]:
    """SCIP master problem: column binaries, block variables, quotas, one pattern per site."""
    from pyscipopt import Model, quicksum

    model = Model("towerplan-benders")
    model.hideOutput()
    cval = (prob.C[cols.cand] * cols.mask).sum(axis=1)
    yv = [model.addVar(f"y{k}", vtype="B", obj=float(cval[k])) for k in range(len(cols.cand))]
    ub = np.bincount(oracle.block, weights=oracle.pw, minlength=oracle.n_blocks)
    tv = [
        model.addVar(f"t{b}", vtype="C", lb=0.0, ub=float(ub[b]), obj=1.0) for b in range(len(ub))
    ]
    model.setMaximize()
    model.addObjoffset(prob.offset)
    for flag, quota in ((False, prob.n_dedicated), (True, prob.n_shared)):
        ks = np.flatnonzero(cols.shared == flag)
        if quota and len(ks) < quota:
            raise InfeasibleModelError(
                msgid=N_("not enough candidates for the quota after presolve")
            )
        if len(ks):
            model.addCons(quicksum(yv[k] for k in ks) == quota, name=f"quota{int(flag)}")
    by_cand = sp.csr_matrix(
        (np.ones(len(cols.cand)), (cols.cand, np.arange(len(cols.cand)))),
        shape=(prob.n_cand, len(cols.cand)),
    )
    multi = np.flatnonzero(np.diff(by_cand.indptr) > 1)
    for j in multi:
        ks = by_cand.indices[by_cand.indptr[j] : by_cand.indptr[j + 1]]
        model.addCons(quicksum(yv[k] for k in ks) <= 1)
    if prob.conflicts is not None:
        pairs = sp.triu(prob.conflicts, k=1).tocoo()
        for a, b in zip(pairs.row.tolist(), pairs.col.tolist(), strict=True):
            ks = np.concatenate(
                [
                    by_cand.indices[by_cand.indptr[a] : by_cand.indptr[a + 1]],
                    by_cand.indices[by_cand.indptr[b] : by_cand.indptr[b + 1]],
                ]
            )
            if len(ks) > 1:
                model.addCons(quicksum(yv[k] for k in ks) <= 1)
    return model, yv, tv


_SCIP_SEPARATORS = ("gomory", "aggregation", "zerohalf", "mcf", "clique", "impliedbounds")


def _configure(model: Any, limits: BendersLimits) -> None:
    model.setParam("misc/allowstrongdualreds", False)
    model.setParam("misc/allowweakdualreds", False)
    model.setParam("presolving/maxrestarts", 0)
    model.setParam("lp/threads", 1)
    model.setParam("randomization/randomseedshift", 0)
    model.setParam("limits/nodes", int(max(limits.max_nodes, 1)))
    for name in _SCIP_SEPARATORS:  # dense Benders rows: general-purpose cuts do not pay
        model.setParam(f"separating/{name}/freq", -1)
    model.setParam("limits/gap", float(limits.mip_gap))
    if np.isfinite(limits.time_limit_s):
        model.setParam("limits/time", float(max(limits.time_limit_s, 0.01)))


def _column_of(cols: MasterColumns, sol: MCLPSolution) -> np.ndarray:
    """Master columns of a solution's structures (site and exact tenant mask)."""
    key = {
        (int(c), m.tobytes()): k for k, (c, m) in enumerate(zip(cols.cand, cols.mask, strict=True))
    }
    return np.array(
        [
            key[(int(s), t.astype(bool).tobytes())]
            for s, t in zip(sol.sites, sol.tenants, strict=True)
        ],
        dtype=np.int64,
    )


def _kept_candidates(prob: MCLPProblem, start: MCLPSolution | None) -> np.ndarray:
    """Candidates of the master: not dominated, the start's sites, and at least ``p``.

    Any kept set of at least ``p`` candidates that contains every non-dominated one
    holds an optimal solution (see :func:`dominated_candidates`).
    """
    keep = ~dominated_candidates(prob)
    if start is not None:
        keep[start.sites] = True
    short = prob.p - int(keep.sum())
    if short > 0:
        keep[np.flatnonzero(~keep)[:short]] = True
    return np.flatnonzero(keep)


def solve_benders(
    prob: MCLPProblem,
    limits: BendersLimits,
    start: MCLPSolution | None = None,
    duals: np.ndarray | None = None,
) -> MCLPSolution:
    """Solve the MCLP by branch-and-Benders-cut in SCIP within ``limits``.

    Parameters
    ----------
    prob : MCLPProblem
        Reduced instance (:func:`~towerplan.siting._model.build_problem`).
    limits : BendersLimits
        Node budget, target gap and safety stop.
    start : MCLPSolution, optional
        Feasible warm start (the heuristic incumbent); its closed-form cuts start the LP.
    duals : ndarray (n_rows, n_ops), optional
        Covering-row duals ``0 <= duals <= W`` (e.g. the Lagrangian multipliers); their
        cuts start the master LP at (at most) the Lagrangian bound.

    Returns
    -------
    MCLPSolution
        Best solution found, ``upper_bound`` = SCIP's dual bound; ``log`` holds the
        presolve sizes, nodes, LP iterations, cuts and separation rounds.
    """
    t0 = time.perf_counter()
    if prob.p == 0:
        return _empty_solution(prob, "nothing to place (no new structures)")
    keep = _kept_candidates(prob, start)
    cols = master_columns(prob, keep)
    oracle = _CutOracle.build(prob, cols, limits.rows_per_block)
    model, yv, tv = _master(prob, cols, oracle)
    state = _Handler(oracle, yv, tv)
    init: list[np.ndarray] = []
    if duals is not None and oracle.n_blocks < len(oracle.pi):  # per-row: implied by the rest
        init.append(np.asarray(duals, dtype=float)[oracle.pi, oracle.po])
    if start is not None:
        y0 = np.zeros(len(yv))
        y0[_column_of(cols, start)] = 1.0
        init.append(np.where(oracle.coverage(y0) < 1.0 - 1e-9, oracle.pw, 0.0))
        state.core = y0
    state.initial = init
    state.root_rounds = limits.max_root_rounds
    model.includeConshdlr(
        _scip_handler(state),
        "mclp_benders",
        "Benders cuts of the MCLP",
        sepapriority=1,
        enfopriority=-1,
        chckpriority=-1,
        sepafreq=1,
        propfreq=-1,
        eagerfreq=-1,
        maxprerounds=0,
        delaysepa=False,
        delayprop=False,
        needscons=False,
    )
    _configure(model, limits)
    if start is not None:
        _warm_start(model, cols, oracle, yv, tv, start)
    build_s = time.perf_counter() - t0
    model.optimize()
    out = _extract(prob, model, cols, yv, start)
    out.upper_bound = max(float(model.getDualbound()), out.objective)
    out.time_limited = model.getStatus() == "timelimit"
    out.log = dict(start.log) if start is not None else {}
    out.log.update(
        {
            "benders_build_s": build_s,
            "benders_solve_s": time.perf_counter() - t0 - build_s,
            "benders_status": model.getStatus(),
            "benders_nodes": int(model.getNNodes()),
            "benders_lp_iterations": int(model.getNLPIterations()),
            "benders_cuts": state.cuts,
            "benders_rounds": state.rounds,
            "benders_blocks": oracle.n_blocks,
            "benders_columns": len(cols.cand),
            "candidates_after_dominance": len(keep),
        }
    )
    return out


def _warm_start(
    model: Any,
    cols: MasterColumns,
    oracle: _CutOracle,
    yv: list[Any],
    tv: list[Any],
    start: MCLPSolution,
) -> None:
    """Hand the start to SCIP with its exact block values (a feasible master point)."""
    y = np.zeros(len(yv))
    y[_column_of(cols, start)] = 1.0
    th = oracle.values(y)
    sol = model.createSol()
    for k in np.flatnonzero(y):
        model.setSolVal(sol, yv[k], 1.0)
    for b, v in enumerate(th.tolist()):
        model.setSolVal(sol, tv[b], v)
    if not model.addSol(sol):
        warn_user(logger, N_("SCIP rejected the warm start"), log_only=True)


def _extract(
    prob: MCLPProblem, model: Any, cols: MasterColumns, yv: list[Any], start: MCLPSolution | None
) -> MCLPSolution:
    """Best SCIP solution as an :class:`MCLPSolution` (the start when SCIP has none better)."""
    best = model.getBestSol() if model.getNSols() else None
    if best is None:
        if start is None:
            raise InfeasibleModelError(
                msgid=N_("the Benders master found no feasible solution; check the quotas")
            )
        return MCLPSolution(
            start.sites, start.tenants, start.shared, start.objective, method=start.method
        )
    y = np.fromiter((model.getSolVal(best, v) for v in yv), float, len(yv)) > 0.5
    k = np.flatnonzero(y)
    order = np.argsort(cols.cand[k], kind="stable")
    k = k[order]
    out = MCLPSolution(
        cols.cand[k],
        cols.mask[k].copy(),
        cols.shared[k].copy(),
        method="branch-and-Benders-cut (SCIP)",
    )
    out.objective = evaluate(prob, out)
    if start is not None and start.objective > out.objective + 1e-9 * max(prob.total_weight, 1.0):
        return MCLPSolution(
            start.sites, start.tenants, start.shared, start.objective, method=start.method
        )
    return out
