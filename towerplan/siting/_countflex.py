"""Single-operator LNS windows whose number of structures may change by one (private).

The LNS of :mod:`~towerplan.siting._heuristics` re-solves a window of nearby structures
with the window's count of structures kept.  Where the incumbent spends one structure
too many (a rural cluster re-packed with one structure fewer loses less than a structure
is worth elsewhere), no fixed-count window finds it.  A *count-flexible* window
(:func:`count_window_solver`) may end with one structure more or one fewer; ``p`` is kept
by a compensating move outside the window:

* one fewer in the window: the candidate outside gaining most when opened is opened;
* one more: the open structure outside losing least when closed is closed.

Only candidates and structures that share no demand row with any candidate of the
window (not in its region, not adjacent to it in the interaction graph, which includes
the minimum-spacing pairs) are used, so the compensation's value is exact and
independent of the window's choice.  The window MILP gets two binary columns ``e``
(one fewer: gain of the best outside insertion) and ``i`` (one more: loss of the
cheapest outside removal) on its cardinality row, ``e + i <= 1``: it picks the window
configuration and the compensation jointly and exactly.  With ``e = i = 0`` it is the
ordinary window, so a count-flexible window never does worse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from towerplan.siting._exact import _model_arrays
from towerplan.siting._heuristics import (
    WindowProblem,
    WindowSolver,
    WindowStep,
    _adjacency,
    _csc,
)
from towerplan.siting._highs import MilpModel, Runner, WorkLimits, solve_model
from towerplan.siting._model import MCLPProblem, MCLPSolution, evaluate

__all__ = ["count_window_solver"]


@dataclass(frozen=True)
class _Values:
    """Exact one-move values at one solution: insertion gain per candidate (``-inf`` for
    open or blocked candidates) and removal loss per open structure."""

    gain: np.ndarray
    loss: np.ndarray


class _MoveValues:
    """Per-solution cache of the one-candidate insertion gains and removal losses."""

    def __init__(self, prob: MCLPProblem) -> None:
        self.prob = prob
        self.Acsc = _csc(prob)
        self.AT = self.Acsc.T.tocsr().astype(float)
        self.key: bytes | None = None
        self.vals: _Values | None = None

    def get(self, sites: np.ndarray) -> _Values:
        key = sites.tobytes()
        if self.vals is not None and key == self.key:
            return self.vals
        prob, W = self.prob, self.prob.W[:, 0]
        cnt = np.asarray(self.Acsc[:, sites].astype(np.int32).sum(axis=1)).ravel()
        gain = prob.C[:, 0] + self.AT @ (W * (cnt == 0))
        gain[sites] = -np.inf
        if prob.conflicts is not None and len(sites):
            blocked = np.asarray(prob.conflicts[sites].sum(axis=0)).ravel() > 0
            gain[blocked] = -np.inf
        loss = prob.C[sites, 0] + self.AT[sites] @ (W * (cnt == 1))
        self.key, self.vals = key, _Values(gain, np.asarray(loss, dtype=float))
        return self.vals


def _count_model(model: MilpModel, m: int, gain: float, loss: float) -> MilpModel:
    """The window's single-operator MILP (``m`` site columns, then one coverage column per
    row; rows: coverage, cardinality, spacing pairs) with the columns ``e`` (one fewer
    structure in the window, worth ``gain`` outside) and ``i`` (one more, costing ``loss``
    outside) on its cardinality row."""
    nr = model.M.shape[0]
    rc = model.n_col - m  # the cardinality row follows the coverage rows
    add = sp.csr_matrix(([1.0, -1.0], ([rc, rc], [0, 1])), shape=(nr, 2))
    one = sp.csr_matrix(
        ([1.0, 1.0], ([0, 0], [model.n_col, model.n_col + 1])), shape=(1, model.n_col + 2)
    )
    can_e, can_i = bool(np.isfinite(gain)), bool(np.isfinite(loss))
    return MilpModel(
        obj=np.concatenate([model.obj, [gain if can_e else 0.0, -loss if can_i else 0.0]]),
        lo=np.concatenate([model.lo, [0.0, 0.0]]),
        hi=np.concatenate([model.hi, [float(can_e), float(can_i)]]),
        integ=np.concatenate([model.integ, [True, True]]),
        M=sp.vstack([sp.hstack([model.M, add]), one], format="csr"),
        rlo=np.concatenate([model.rlo, [-np.inf]]),
        rhi=np.concatenate([model.rhi, [1.0]]),
        offset=model.offset,
    )


def count_window_solver(prob: MCLPProblem) -> WindowSolver:
    """A window solver for :func:`~towerplan.siting._heuristics.lns` (one operator,
    dedicated structures) whose windows may gain or lose one structure, compensated
    outside (see the module docstring).

    The returned step's gain is exact (window value change plus the compensation's exact
    value); ``typed`` says whether the window's count changed.
    """
    cache = _MoveValues(prob)
    adj = _adjacency(prob)

    def solve(
        prob: MCLPProblem,
        built: WindowProblem,
        state: tuple[np.ndarray, np.ndarray, np.ndarray],
        limits: WorkLimits,
        run: Runner = solve_model,
    ) -> tuple[WindowStep | None, bool]:
        sub, cmap, cur, keep_mask = built
        sites = state[0]
        vals = cache.get(sites)
        near = np.zeros(prob.n_cand, dtype=bool)
        near[cmap] = True
        near[adj[cmap].indices] = True
        gain = np.where(near, -np.inf, vals.gain)
        loss = np.where(keep_mask & ~near[sites], vals.loss, np.inf)
        j_in, s_out = int(np.argmax(gain)), int(np.argmin(loss))
        keep = np.arange(sub.n_cand)
        model, (decode, encode) = _model_arrays(sub, keep)
        flex = _count_model(model, len(keep), float(gain[j_in]), float(loss[s_out]))
        res = run(flex, limits, np.concatenate([encode(cur), [0.0, 0.0]]))
        if res.x is None:
            return None, res.time_limited
        w_sites, w_ten, w_sh = decode(res.x)
        e, i = bool(res.x[-2] > 0.5), bool(res.x[-1] > 0.5)
        step_gain = evaluate(sub, MCLPSolution(w_sites, w_ten, w_sh)) - cur.objective
        kept = keep_mask.copy()
        new_sites = [sites[kept]]
        if e:
            step_gain += float(gain[j_in])
            new_sites.append(np.array([j_in], dtype=sites.dtype))
        if i:
            step_gain -= float(loss[s_out])
            kept[s_out] = False
            new_sites[0] = sites[kept]
        all_sites = np.concatenate([*new_sites, cmap[w_sites]])
        n = len(all_sites)
        step = WindowStep(
            all_sites, np.ones((n, 1), dtype=bool), np.zeros(n, dtype=bool), step_gain, e or i
        )
        return step, res.time_limited

    return solve
