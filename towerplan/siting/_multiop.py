"""Multi-operator LNS windows whose number of shared structures may change (private).

The LNS of :mod:`~towerplan.siting._heuristics` re-solves a window of nearby structures
with the window's numbers of dedicated and shared structures kept, so where the shared
quota is spent over the city is only changed by in-place type swaps.  A *type-flexible*
window (:func:`flex_window_solver`) may end with one shared structure more or one
fewer; the global quotas are kept by converting one structure outside the window the
other way:

* one more shared structure in the window: the outside shared structure losing least
  when made dedicated (it keeps its tenant of largest unique value) becomes dedicated;
* one fewer: the outside dedicated structure gaining most when made shared (it adds its
  best other operators, up to ``max_tenants``) becomes shared.

Only structures that share no demand row with any candidate of the window (not in the
window's region and not adjacent to it in the interaction graph) are converted, so the
conversion's value is exact and independent of the window's choice.  The window MILP
(pattern formulation) gets two binary columns ``u`` (one more shared, cost: the
conversion loss) and ``v`` (one fewer shared, gain: the conversion gain) on its quota
rows: it picks the best window configuration and compensation jointly and exactly.
With ``u = v = 0`` it is the ordinary window, so a flexible window never does worse.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from towerplan.errors import InfeasibleModelError
from towerplan.siting._exact import _milp_columns, _model_arrays
from towerplan.siting._heuristics import (
    WindowProblem,
    WindowSolver,
    WindowStep,
    _adjacency,
    _csc,
    _plain_window,
    _SwapState,
    _type_change_values,
)
from towerplan.siting._highs import MilpModel, Runner, WorkLimits, solve_model
from towerplan.siting._model import (
    SWAP_PASSES,
    MCLPProblem,
    MCLPSolution,
    _pick_tenants,
    _type_values,
    evaluate,
)

logger = logging.getLogger(__name__)

FLEX_LNS_WINDOW = 6
"""Structures per type-flexible LNS window (``type_flex``; the windows of the multi-operator
LNS before were 4): larger windows improve more per window, so fewer of them are used."""
FLEX_LNS_SUBPROBLEMS = 20
"""Type-flexible window re-solves per LNS phase (instead of ``LNS_SUBPROBLEMS``)."""
FLEX_LNS_PAIR_SUBPROBLEMS = 20
"""Type-flexible paired-window re-solves (instead of ``LNS_PAIR_SUBPROBLEMS``)."""
FLEX_WINDOW_CHECKPOINTS = 20
"""HiGHS MIP work checkpoints per type-flexible window MILP (the plain windows allow
``LNS_SUB_CHECKPOINTS``): nearly every window closes at the root within a few
checkpoints, and the rare one that does not (a long root cut loop) costs ten times a
typical window for no improvement."""


@dataclass(frozen=True)
class _Conversion:
    """The best outside type conversion each way: value, structure position, new tenants."""

    up: float
    """Loss of making an outside shared structure dedicated (``inf``: none)."""
    up_pos: int
    down: float
    """Gain of making an outside dedicated structure shared (``-inf``: none)."""
    down_pos: int
    keep: np.ndarray
    """Per structure: tenant kept (shared -> dedicated) or tenants added (dedicated -> shared)."""


def _near(m: int, adj: sp.csr_matrix, region: np.ndarray) -> np.ndarray:
    """Mask of the candidates in ``region`` or adjacent to it (sharing a row or a pair)."""
    near = np.zeros(m, dtype=bool)
    near[region] = True
    near[adj[region].indices] = True
    return near


class _TypeValues:
    """Per-solution cache of the one-structure type-change values (recomputed on change)."""

    def __init__(self, prob: MCLPProblem) -> None:
        self.prob = prob
        self.Acsc = _csc(prob)
        self.key: tuple[bytes, bytes, bytes] | None = None
        self.vals: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def get(
        self, sites: np.ndarray, ten: np.ndarray, shared: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        key = (sites.tobytes(), ten.tobytes(), shared.tobytes())
        if self.vals is None or key != self.key:
            A_s = self.Acsc[:, sites].astype(np.int32)
            cnt = np.asarray(A_s @ ten.astype(np.int32)).reshape(self.prob.n_rows, -1)
            AT = A_s.T.tocsr().astype(float)
            self.vals = _type_change_values(self.prob, MCLPSolution(sites, ten, shared), cnt, AT)
            self.key = key
        return self.vals

    def conversion(
        self,
        adj: sp.csr_matrix,
        region: np.ndarray,
        state: tuple[np.ndarray, np.ndarray, np.ndarray],
        keep_mask: np.ndarray,
    ) -> _Conversion:
        """Best conversions among the kept structures that share no row with ``region``."""
        sites, ten, shared = state
        loss, gain, keep = self.get(sites, ten, shared)
        near = _near(self.prob.n_cand, adj, region)
        far = keep_mask & ~near[sites]
        sh = np.flatnonzero(far & shared)
        de = np.flatnonzero(far & ~shared & np.isfinite(gain))
        up, up_pos, down, down_pos = np.inf, -1, -np.inf, -1
        if len(sh):
            up_pos = int(sh[np.argmin(loss[sh])])
            up = float(loss[up_pos])
        if len(de):
            down_pos = int(de[np.argmax(gain[de])])
            down = float(gain[down_pos])
        return _Conversion(up, up_pos, down, down_pos, keep)


@dataclass(frozen=True)
class _Shift:
    """The best far removal and insertion of each structure type (count-flexible windows).

    A *far* structure or candidate shares no demand row (and no spacing pair) with the
    window's region, so its value is exact and independent of the window's choice.
    """

    rm_ded: float
    """Loss of closing the far dedicated structure ``rm_ded_pos`` (``inf``: none)."""
    rm_ded_pos: int
    rm_sh: float
    """Loss of closing the far shared structure ``rm_sh_pos`` (``inf``: none)."""
    rm_sh_pos: int
    add_ded: float
    """Gain of opening the far candidate ``add_ded_j`` as dedicated (``-inf``: none)."""
    add_ded_j: int
    add_ded_ten: np.ndarray
    add_sh: float
    """Gain of opening the far candidate ``add_sh_j`` as shared (``-inf``: none)."""
    add_sh_j: int
    add_sh_ten: np.ndarray


class _ShiftValues:
    """Per-solution cache of every structure's removal loss and every candidate's
    insertion gains (recomputed when the solution changes)."""

    def __init__(self, prob: MCLPProblem) -> None:
        self.prob = prob
        self.Acsc = _csc(prob)
        self.AT = prob.A.T.tocsr().astype(float)
        self.key: tuple[bytes, bytes, bytes] | None = None
        self.vals: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def get(
        self, sites: np.ndarray, ten: np.ndarray, shared: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(removal loss per structure, insertion gains ``G`` per candidate and operator,
        candidates that may be opened)."""
        key = (sites.tobytes(), ten.tobytes(), shared.tobytes())
        if self.vals is None or key != self.key:
            prob = self.prob
            A_s = self.Acsc[:, sites].astype(np.int32)
            cnt = np.asarray(A_s @ ten.astype(np.int32)).reshape(prob.n_rows, prob.n_ops)
            R = np.asarray(A_s.T.astype(float) @ (prob.W * (cnt == 1))) + prob.C[sites]
            loss = (R * ten).sum(axis=1)
            G = np.asarray(self.AT @ (prob.W * (cnt == 0))).reshape(prob.n_cand, -1) + prob.C
            free = np.ones(prob.n_cand, dtype=bool)
            free[sites] = False
            if prob.conflicts is not None and len(sites):
                free &= np.asarray(prob.conflicts[sites].sum(axis=0)).ravel() == 0
            self.vals = (loss, G, free)
            self.key = key
        return self.vals

    def shift(
        self,
        adj: sp.csr_matrix,
        region: np.ndarray,
        state: tuple[np.ndarray, np.ndarray, np.ndarray],
        keep_mask: np.ndarray,
    ) -> _Shift:
        """Best far removals among the kept structures and best far insertions."""
        sites, ten, shared = state
        loss, G, free = self.get(sites, ten, shared)
        cap = self.prob.cap
        near = _near(self.prob.n_cand, adj, region)
        far = keep_mask & ~near[sites]
        out: list[Any] = []
        for want_sh in (False, True):
            idx = np.flatnonzero(far & (shared == want_sh))
            pos = int(idx[np.argmin(loss[idx])]) if len(idx) else -1
            out += [float(loss[pos]) if pos >= 0 else np.inf, pos]
        for want_sh in (False, True):
            cand = np.flatnonzero(free & ~near & ((cap >= 2) if want_sh else True))
            if not len(cand):
                out += [-np.inf, -1, np.zeros(self.prob.n_ops, bool)]
                continue
            D, S = _type_values(G[cand], cap[cand])
            v = S if want_sh else D
            j = int(cand[np.argmax(v)])
            t = _pick_tenants(G[j], want_sh, int(cap[j]))
            out += [float(G[j][t].sum()), j, t]
        return _Shift(*out)


def _quota_model(
    sub: MCLPProblem, room: tuple[int, int]
) -> tuple[MilpModel, Any, Any, tuple[int, int], np.ndarray] | None:
    """The window's pattern MILP with both structure types and its two quota rows.

    Both tenant-pattern kinds are built even when the window holds structures of one
    type only, with filler columns for ``room`` = (dedicated, shared) structures (at
    least the window's counts); the quota rows (positions ``(rd, rs)``) hold the
    window's true counts, so a caller may change them.  ``None`` when the model is not
    the pattern formulation (compact model) or no candidate of the window can host a type.
    Returns ``(model, decode, encode, (rd, rs), columns)`` (``columns``: the window
    candidates in the model).
    """
    both = copy.copy(sub)
    both.n_dedicated, both.n_shared = room
    keep = _milp_columns(both)
    try:
        model, (decode, encode) = _model_arrays(both, keep)
    except InfeasibleModelError:  # no candidate of the window can host the other type
        return None
    n_pat_rows = int((sub.W > 0).sum()) + len(keep) * (1 + sub.n_ops)
    rd, rs = n_pat_rows, n_pat_rows + 1
    if model.M.shape[0] < rs + 1 or not (
        model.rlo[rd] == model.rhi[rd] == both.n_dedicated
        and model.rlo[rs] == model.rhi[rs] == both.n_shared
    ):
        return None  # not the pattern layout (compact model)
    rlo, rhi = model.rlo.copy(), model.rhi.copy()
    rlo[rd] = rhi[rd] = sub.n_dedicated
    rlo[rs] = rhi[rs] = sub.n_shared
    return replace(model, rlo=rlo, rhi=rhi), decode, encode, (rd, rs), keep


def _flex_model(
    sub: MCLPProblem, conv: _Conversion, shift: _Shift | None = None
) -> tuple[MilpModel, Any, Any] | None:
    """The window's pattern MILP with the type-flex columns ``u``, ``v`` (or ``None``).

    Both tenant-pattern kinds are built even when the window holds structures of one
    type only (the quota rows keep the window's true counts); ``None`` when the model is
    not the pattern formulation (then the window is solved the ordinary way).  With
    ``shift`` (count-flexible windows) four more columns follow: the window gains one
    dedicated / one shared structure (an outside one of that type is closed) or loses
    one (a far candidate is opened as that type).  At most one column is 1.
    """
    made = _quota_model(sub, (max(sub.n_dedicated, 1), max(sub.n_shared, 1)))
    if made is None:
        return None
    model, decode, encode, (rd, rs), _ = made
    rlo, rhi = model.rlo, model.rhi
    # u: one more shared, one fewer dedicated; v: the reverse (change of the window's
    # dedicated and shared counts, value, allowed)
    can_up = bool(np.isfinite(conv.up) and sub.n_dedicated > 0)
    can_down = bool(np.isfinite(conv.down) and sub.n_shared > 0)
    cols = [
        (-1, 1, -conv.up if can_up else 0.0, can_up),
        (1, -1, conv.down if can_down else 0.0, can_down),
    ]
    if shift is not None:
        cols += [
            (1, 0, -shift.rm_ded, np.isfinite(shift.rm_ded)),
            (0, 1, -shift.rm_sh, np.isfinite(shift.rm_sh)),
            (-1, 0, shift.add_ded, np.isfinite(shift.add_ded) and sub.n_dedicated > 0),
            (0, -1, shift.add_sh, np.isfinite(shift.add_sh) and sub.n_shared > 0),
        ]
    k, nr = len(cols), model.M.shape[0]
    coef = np.array([[-dd, -ds] for dd, ds, _, _ in cols], float).T.ravel()
    add = sp.csr_matrix((coef, (np.repeat([rd, rs], k), np.tile(np.arange(k), 2))), shape=(nr, k))
    add.eliminate_zeros()
    one = sp.csr_matrix((np.ones(k), (np.zeros(k, int), model.n_col + np.arange(k))))
    one.resize(1, model.n_col + k)
    flex = MilpModel(
        obj=np.concatenate([model.obj, [v if ok else 0.0 for _, _, v, ok in cols]]),
        lo=np.concatenate([model.lo, np.zeros(k)]),
        hi=np.concatenate([model.hi, [float(ok) for _, _, _, ok in cols]]),
        integ=np.concatenate([model.integ, np.ones(k, bool)]),
        M=sp.vstack([sp.hstack([model.M, add]), one], format="csr"),
        rlo=np.concatenate([rlo, [-np.inf]]),
        rhi=np.concatenate([rhi, [1.0]]),
        offset=model.offset,
    )
    return flex, decode, encode


def flex_window_solver(prob: MCLPProblem, count_flex: bool = False) -> WindowSolver:
    """A window solver for :func:`~towerplan.siting._heuristics.lns` whose windows may
    gain or lose one shared structure, compensated outside (see the module docstring).

    With ``count_flex`` a window may instead gain one structure of either type (the far
    structure of that type losing least is closed) or lose one (the far candidate
    gaining most is opened as that type): structures drift between regions, each move
    re-packing the whole window.  The returned step's gain is exact (window value change
    plus the compensation's exact value); ``typed`` says whether the window's count of
    shared structures (or of structures) changed.
    """
    cache = _TypeValues(prob)
    moves = _ShiftValues(prob) if count_flex else None
    adj = _adjacency(prob)

    def solve(
        prob: MCLPProblem,
        built: WindowProblem,
        state: tuple[np.ndarray, np.ndarray, np.ndarray],
        limits: WorkLimits,
        run: Runner = solve_model,
    ) -> tuple[WindowStep | None, bool]:
        sub, cmap, cur, keep_mask = built
        conv = cache.conversion(adj, cmap, state, keep_mask)
        shift = moves.shift(adj, cmap, state, keep_mask) if moves is not None else None
        made = _flex_model(sub, conv, shift)
        if made is None:
            return _plain_window(prob, built, state, limits, run)
        model, decode, encode = made
        k = model.n_col - len(encode(cur))
        limits = replace(
            limits, max_checkpoints=min(limits.max_checkpoints, FLEX_WINDOW_CHECKPOINTS)
        )
        res = run(model, limits, np.concatenate([encode(cur), np.zeros(k)]))
        if res.x is None:
            return None, res.time_limited
        w_sites, w_ten, w_sh = decode(res.x)
        on = res.x[-k:] > 0.5
        gain = evaluate(sub, MCLPSolution(w_sites, w_ten, w_sh)) - cur.objective
        step = _flex_step(state, (cmap[w_sites], w_ten, w_sh, gain), keep_mask, conv, shift, on)
        return step, res.time_limited

    return solve


def _flex_step(
    state: tuple[np.ndarray, np.ndarray, np.ndarray],
    window: tuple[np.ndarray, np.ndarray, np.ndarray, float],
    keep_mask: np.ndarray,
    conv: _Conversion,
    shift: _Shift | None,
    on: np.ndarray,
) -> WindowStep:
    """The whole new solution of a flexible window: kept structures (one converted or
    closed), the window's structures and (if any) the far structure opened; ``window``
    ends with the window's exact value change, to which the compensation's is added."""
    sites, ten, shared = state
    ten2, sh2, keep2 = ten.copy(), shared.copy(), keep_mask.copy()
    gain = window[3]
    extra: list[tuple[int, np.ndarray, bool]] = []
    if on[0]:
        gain -= conv.up
        ten2[conv.up_pos], sh2[conv.up_pos] = conv.keep[conv.up_pos], False
    if on[1]:
        gain += conv.down
        ten2[conv.down_pos] = ten[conv.down_pos] | conv.keep[conv.down_pos]
        sh2[conv.down_pos] = True
    if shift is not None and on[2:].any():
        c = int(np.argmax(on[2:]))
        if c < 2:
            gain -= shift.rm_ded if c == 0 else shift.rm_sh
            keep2[shift.rm_ded_pos if c == 0 else shift.rm_sh_pos] = False
        elif c == 2:
            gain += shift.add_ded
            extra.append((shift.add_ded_j, shift.add_ded_ten, False))
        else:
            gain += shift.add_sh
            extra.append((shift.add_sh_j, shift.add_sh_ten, True))
    e_sites = np.array([j for j, _, _ in extra], dtype=sites.dtype)
    e_ten = np.array([t for _, t, _ in extra], dtype=bool).reshape(len(extra), ten.shape[1])
    e_sh = np.array([h for _, _, h in extra], dtype=bool)
    return WindowStep(
        np.concatenate([sites[keep2], window[0], e_sites]),
        np.concatenate([ten2[keep2], window[1], e_ten]),
        np.concatenate([sh2[keep2], window[2], e_sh]),
        gain,
        typed=bool(on.any()),
    )


class _ChainState:
    """Swap-search state plus the one-structure type-change values of every structure."""

    def __init__(self, prob: MCLPProblem, sol: MCLPSolution) -> None:
        self.sw = _SwapState(prob, sol)
        self.adj = _adjacency(prob)
        self.chains = 0
        self.update()

    def update(self, ends: tuple[int, ...] | None = None) -> None:
        """Recompute the type-change values: all, or (after a move) those of the
        structures sharing a row with the candidates ``ends`` (the others are unchanged)."""
        sw = self.sw
        if ends is None:
            idx = np.arange(len(sw.sites))
        else:
            near = np.zeros(sw.prob.n_cand, dtype=bool)
            for j in ends:
                near[self.adj.indices[self.adj.indptr[j] : self.adj.indptr[j + 1]]] = True
                near[j] = True
            idx = np.flatnonzero(near[sw.sites])
        AT = sw.Acsc[:, sw.sites[idx]].T.tocsr().astype(float)
        loss, gain, keep = _type_change_values(
            sw.prob, MCLPSolution(sw.sites[idx], sw.ten[idx], sw.shared[idx]), sw.cnt, AT
        )
        if ends is None:
            self.loss, self.gain, self.keep = loss, gain, keep
        else:
            self.loss[idx], self.gain[idx], self.keep[idx] = loss, gain, keep
        self.ranks: tuple[list[int], list[int]] | None = None

    def compensation(self, s: int, to_shared: bool, ends: tuple[int, int]) -> tuple[float, int]:
        """Best conversion the other way of a structure sharing no row with ``ends``.

        ``to_shared``: a dedicated structure becomes shared (value: its gain); else a
        shared one becomes dedicated (value: minus its loss).  ``(-inf, -1)`` if none.
        Ties go to the first structure (as ``argmax``/``argmin``): the first admissible
        one in :meth:`ranking`.
        """
        sw = self.sw
        near = np.zeros(sw.prob.n_cand, dtype=bool)
        for j in ends:
            near[self.adj.indices[self.adj.indptr[j] : self.adj.indptr[j + 1]]] = True
            near[j] = True
        sites = sw.sites
        for c in self.ranking(to_shared):
            if c != s and not near[sites[c]]:
                return (float(self.gain[c]), c) if to_shared else (-float(self.loss[c]), c)
        return -np.inf, -1

    def ranking(self, to_shared: bool) -> list[int]:
        """The dedicated structures that can become shared by decreasing gain, or the
        shared ones by increasing loss; ties by position (cached until :meth:`update`)."""
        if self.ranks is None:
            sh = self.sw.shared
            de = np.flatnonzero(~sh & np.isfinite(self.gain))
            su = np.flatnonzero(sh)
            self.ranks = (
                de[np.argsort(-self.gain[de], kind="stable")].tolist(),
                su[np.argsort(self.loss[su], kind="stable")].tolist(),
            )
        return self.ranks[0] if to_shared else self.ranks[1]

    def convert(self, c: int) -> None:
        """Apply the type change of structure ``c`` (its tenants from ``keep``)."""
        sw = self.sw
        j = int(sw.sites[c])
        old = sw.ten[c].copy()
        new = self.keep[c].copy() if sw.shared[c] else old | self.keep[c]
        sw.count(j, old & ~new, -1)
        sw.count(j, new & ~old, 1)
        sw.ten[c], sw.shared[c] = new, not sw.shared[c]
        sw.open_ten[j] = new
        sw.refresh(j, np.array([j]))

    def try_move(self, s: int, tol: float) -> float | None:
        """Remove structure ``s``; re-insert the best structure of its type anywhere (a swap)
        or of the *other* type anywhere while one far structure (sharing no row with
        either end) converts the other way (a chain, quotas kept); the better one is
        applied when it gains more than ``tol``; returns the gain or ``None``."""
        sw = self.sw
        was_shared = bool(sw.shared[s])
        j, T, rows, loss = sw.remove(s)
        same = (sw.S if was_shared else sw.D) + sw.pen  # = np.where(admissible, S, -inf)
        other = (sw.D if was_shared else sw.S) + sw.pen
        b1, b2 = int(np.argmax(same)), int(np.argmax(other))
        comp, c = self.compensation(s, was_shared, (j, b2))
        v1 = float(same[b1]) - loss
        v2 = float(other[b2]) - loss + comp if c >= 0 else -np.inf
        if max(v1, v2) <= tol or not np.isfinite(max(v1, v2)):
            sw.place(s, j, rows, T)
            sw.undo(j)
            return None
        chain = v2 > v1
        best = b2 if chain else b1
        shared_now = was_shared != chain
        tm = _pick_tenants(sw.G[best], shared_now, int(sw.prob.cap[best]))
        sw.place(s, best, sw.col_rows(best), tm)
        sw.shared[s] = shared_now
        sw.refresh(best, np.array([best, j]))
        ends = [j, best]
        if chain:
            ends.append(int(sw.sites[c]))
            self.convert(c)
            self.chains += 1
        self.update(tuple(ends))
        return v2 if chain else v1


def type_chain_search(
    prob: MCLPProblem, sol: MCLPSolution, max_passes: int = SWAP_PASSES, seed: int = 0
) -> MCLPSolution:
    """Swap search with dedicated <-> shared ejection chains (multi-operator).

    Swap search (:func:`~towerplan.siting._heuristics.local_search`) moves a structure
    within its type and type swaps change two types in place; here each removal is also
    tried as a *chain*: the structure re-inserted anywhere as the other type while the
    far structure whose type change costs least (sharing no row with either end: its
    value is exact) converts the other way, both quotas kept.  For each structure
    (seeded order) the better of the best swap and the best chain is applied when it
    improves; passes repeat until none does, at most ``max_passes``.  Deterministic;
    the objective is recounted at the end.
    """
    t0 = time.perf_counter()
    if prob.n_shared == 0 or prob.n_dedicated == 0 or len(sol.sites) == 0:
        return sol
    rng = np.random.default_rng(seed)
    state = _ChainState(prob, sol)
    tol = 1e-9 * max(prob.total_weight, 1.0)
    obj = sol.objective if np.isfinite(sol.objective) else evaluate(prob, sol)
    moves = passes = 0
    improved = True
    while improved and passes < max_passes:
        improved = False
        passes += 1
        for s in rng.permutation(len(sol.sites)):
            gain = state.try_move(int(s), tol)
            if gain is not None:
                obj += gain
                moves += 1
                improved = True
    sw = state.sw
    out = MCLPSolution(sw.sites, sw.ten, sw.shared, method=sol.method + "+swap+type chains")
    out.objective = evaluate(prob, out)
    out.time_limited = sol.time_limited
    out.log = dict(sol.log)
    out.log.update(
        type_chain_s=out.log.get("type_chain_s", 0.0) + time.perf_counter() - t0,
        type_chain_moves=out.log.get("type_chain_moves", 0) + state.chains,
        type_chain_swaps=out.log.get("type_chain_swaps", 0) + moves - state.chains,
    )
    if abs(out.objective - obj) > 1e-6 * max(prob.total_weight, 1.0):
        logger.debug("type chain bookkeeping drift %.6g vs %.6g", obj, out.objective)
    return out
