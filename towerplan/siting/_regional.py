"""Single-operator regional exchange: structures moved between far-apart regions (private).

Why.  At city scale the LNS windows (:func:`~towerplan.siting._heuristics.lns`, also the
count-flexible ones of :mod:`~towerplan.siting._countflex`) keep, or change by one
against a single far structure, the number of structures of a region.  The zone
relaxation (:mod:`~towerplan.siting._zones`) says the incumbent spends too many
structures in some rural zones and too few elsewhere; moving several structures between
regions at once needs every region re-packed together.

How.  :func:`regional_exchange` picks ``K`` pairwise *independent* LNS windows (no demand
row reached by the candidates of two windows, no spacing pair between them; everything
outside the windows fixed at the incumbent, so the windows' gains add up exactly),
centred where the Lagrangian relaxation's number of structures per zone (at the final
multipliers; :func:`relaxed_counts`) differs most from the incumbent's, both signs (the
zone MILPs' own solutions are not used: at the zone bound's light work they are not
optima, and on ``cantho-scale`` they hold 534 structures, not 614).  Each window MILP is solved
for its count of structures changed by ``d`` in ``EXCHANGE_DELTAS`` (only the right-hand
side of its cardinality row changes; node and checkpoint bounded), giving the window's
exact best gain per delta; :func:`~towerplan.siting._exchange.best_exchange` then picks
one delta per window, the deltas summing to 0 (``p`` kept), with the largest total gain.
The chosen windows' solutions are applied together and the objective is recounted.
Deterministic: windows, deltas and work limits depend only on the problem, the incumbent
and the reference counts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from towerplan.siting._exact import _milp_columns, _model_arrays
from towerplan.siting._exchange import best_exchange
from towerplan.siting._heuristics import (
    WindowProblem,
    _adjacency,
    _lns_limits,
    _lns_window_problem,
)
from towerplan.siting._highs import solve_model
from towerplan.siting._model import (
    LNS_SUB_NODES,
    MCLPProblem,
    MCLPSolution,
    SafetyStop,
    evaluate,
)

__all__ = [
    "EXCHANGE_DELTAS",
    "EXCHANGE_ROUNDS",
    "EXCHANGE_WINDOW",
    "EXCHANGE_WINDOWS",
    "regional_exchange",
    "relaxed_counts",
]

EXCHANGE_DELTAS = (-2, -1, 0, 1, 2)
"""Changes of a window's number of structures that are solved (count deltas)."""
EXCHANGE_WINDOWS = 12
"""Independent windows per exchange round (before ``work_limit`` scaling)."""
EXCHANGE_WINDOW = 10
"""Structures freed per window."""
EXCHANGE_ROUNDS = 2
"""Exchange rounds (before ``work_limit`` scaling)."""


@dataclass(frozen=True)
class _Curve:
    """A window's best solution per count delta: its exact gain and the window's sites
    (candidate indices of ``prob``)."""

    built: WindowProblem
    gain: dict[int, float]
    sites: dict[int, np.ndarray]


def zone_seeds(
    prob: MCLPProblem, sol: MCLPSolution, label: np.ndarray, reference: np.ndarray
) -> np.ndarray:
    """Window centres, zones ordered by ``|reference - incumbent count|`` (largest first).

    In a zone with fewer reference structures than the incumbent's, the centres are its
    open structures, least valuable first (Lagrangian value at the multipliers in
    ``prob.info``, else the structure's own weight); with more, its closed candidates,
    most valuable first; zones with equal counts come last, their open structures first.
    """
    n_z = int(label.max()) + 1 if len(label) else 0
    is_open = np.zeros(prob.n_cand, dtype=bool)
    is_open[sol.sites] = True
    diff = np.asarray(reference, dtype=np.int64) - np.bincount(label[sol.sites], minlength=n_z)
    value = _candidate_values(prob)
    out: list[np.ndarray] = []
    for z in np.lexsort((np.arange(n_z), -np.abs(diff))):
        members = np.flatnonzero(label == z)
        pick = members[~is_open[members]] if diff[z] > 0 else members[is_open[members]]
        sign = -1.0 if diff[z] > 0 else 1.0
        out.append(pick[np.argsort(sign * value[pick], kind="stable")])
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def relaxed_counts(prob: MCLPProblem, label: np.ndarray) -> np.ndarray:
    """Structures per zone in the Lagrangian relaxation's solution: the ``p`` candidates
    of largest :func:`_candidate_values` (ties by index)."""
    value = _candidate_values(prob)
    top = np.lexsort((np.arange(prob.n_cand), -value))[: prob.p]
    return np.bincount(label[top], minlength=int(label.max()) + 1 if len(label) else 0)


def _candidate_values(prob: MCLPProblem) -> np.ndarray:
    """Each candidate's Lagrangian value (``C + A^T lam``) at ``prob.info``'s multipliers,
    else its own weight ``C + A^T W``."""
    mult = prob.info.get("_multipliers")
    lam = mult[0][:, 0] if mult is not None else prob.W[:, 0]
    return np.asarray(prob.C[:, 0] + prob.A.T @ lam, dtype=float)


def independent_windows(
    prob: MCLPProblem, sol: MCLPSolution, seeds: np.ndarray, *, window: int, count: int
) -> list[WindowProblem]:
    """Up to ``count`` LNS windows around ``seeds`` (in order) whose candidate sets share
    no demand row and no spacing pair (no two candidates adjacent in the interaction
    graph), so their gains are additive."""
    adj = _adjacency(prob)
    blocked = np.zeros(prob.n_cand, dtype=bool)
    out: list[WindowProblem] = []
    ten, shared = sol.tenants, sol.shared
    for s in seeds:
        if len(out) >= count:
            break
        if blocked[s]:
            continue
        built = _lns_window_problem(prob, adj, sol.sites, ten, shared, int(s), window)
        if built is None:
            continue
        cmap = built[1]
        if blocked[cmap].any():
            continue
        blocked[cmap] = True
        blocked[adj[cmap].indices] = True
        out.append(built)
    return out


def _shift(sub: MCLPProblem, sites: np.ndarray, keep: np.ndarray, d: int) -> np.ndarray | None:
    """``sites`` (window indices) with ``|d|`` structures greedily removed (least loss) or
    added (largest gain among ``keep``, no spacing conflict): a feasible start for the
    delta ``d`` (``None`` when there is none this way)."""
    A = sub.A.tocsc().astype(float)
    W, C = sub.W[:, 0], sub.C[:, 0]
    cur = np.asarray(sites, dtype=np.int64)
    for _ in range(abs(d)):
        cnt = np.asarray(A[:, cur].sum(axis=1)).ravel()
        if d < 0:
            if not len(cur):
                return None
            loss = C[cur] + A[:, cur].T @ (W * (cnt == 1))
            cur = np.delete(cur, int(np.argmin(loss)))
            continue
        free = keep[~np.isin(keep, cur)]
        if sub.conflicts is not None and len(cur):
            hit = np.asarray(sub.conflicts[cur].sum(axis=0)).ravel() > 0
            free = free[~hit[free]]
        if not len(free):
            return None
        gain = C[free] + A[:, free].T @ (W * (cnt == 0))
        cur = np.append(cur, free[int(np.argmax(gain))])
    return np.sort(cur)


def window_curve(
    prob: MCLPProblem,
    built: WindowProblem,
    *,
    deltas: tuple[int, ...] = EXCHANGE_DELTAS,
    safety: SafetyStop | None = None,
) -> tuple[_Curve, bool]:
    """The window's exact best gain per count delta (the window MILP, its cardinality
    row's right-hand side changed, node/checkpoint bounded, warm-started greedily).

    Returns the curve and whether the safety stop cut a MILP.  A delta the window cannot
    take (too few candidates or structures) is left out.
    """
    sub, cmap, cur, _ = built
    n = len(cur.sites)
    big = replace(sub, n_dedicated=n + max(max(deltas), 0), info={})
    keep = _milp_columns(big)
    model, (decode, encode) = _model_arrays(big, keep)
    card = sub.n_rows  # the cardinality row follows the coverage rows
    gain: dict[int, float] = {}
    sites: dict[int, np.ndarray] = {}
    cut = False
    for d in deltas:
        if n + d < 0 or n + d > len(keep):
            continue
        start = _shift(sub, cur.sites, keep, d)
        if start is None:
            continue
        rlo, rhi = model.rlo.copy(), model.rhi.copy()
        rlo[card] = rhi[card] = n + d
        limits = _lns_limits(safety, LNS_SUB_NODES, 1e-4, light=True)
        x0 = encode(MCLPSolution(start, np.ones((len(start), 1), bool), np.zeros(len(start), bool)))
        res = solve_model(replace(model, rlo=rlo, rhi=rhi), limits, x0)
        cut = cut or res.time_limited
        got = decode(res.x)[0] if res.x is not None else start
        value = evaluate(
            sub, MCLPSolution(got, np.ones((len(got), 1), bool), np.zeros(len(got), bool))
        )
        gain[d] = value - cur.objective
        sites[d] = cmap[got]
    return _Curve(built, gain, sites), cut


def regional_exchange(
    prob: MCLPProblem,
    sol: MCLPSolution,
    *,
    label: np.ndarray,
    reference: np.ndarray | None = None,
    rounds: int = EXCHANGE_ROUNDS,
    windows: int = EXCHANGE_WINDOWS,
    window: int = EXCHANGE_WINDOW,
    target: float = float("inf"),
    safety: SafetyStop | None = None,
) -> MCLPSolution:
    """Rounds of regional exchanges from ``sol`` (one operator, dedicated structures).

    Parameters
    ----------
    prob, sol : MCLPProblem, MCLPSolution
        Single operator, ``n_shared == 0``.
    label : ndarray (n_cand,)
        Zone of each candidate (:func:`~towerplan.siting._zones.candidate_zones`).
    reference : ndarray (n_zones,), optional
        Reference number of structures per zone; default :func:`relaxed_counts`.
    rounds, windows, window : int
        Exchange rounds, independent windows per round, structures per window.
    target : float
        Stop once the objective reaches it.
    safety : SafetyStop, optional
        Wall-clock safety stop (``time_limited`` when it fires).

    Returns
    -------
    MCLPSolution
        Never worse than ``sol``; log ``exchange_rounds``, ``exchange_windows``,
        ``exchange_milps``, ``exchange_improvements``, ``exchange_moved`` (structures
        moved between windows), ``exchange_gain``, ``exchange_s``.
    """
    t0 = time.perf_counter()
    tol = 1e-9 * max(prob.total_weight, 1.0)
    tried = np.zeros(prob.n_cand, dtype=bool)
    if reference is None:
        reference = relaxed_counts(prob, label)
    cur = sol
    n_win = n_milp = n_imp = moved = n_round = 0
    timed_out = False
    for _ in range(rounds):
        if cur.objective >= target or (safety is not None and safety.expired()):
            break
        seeds = zone_seeds(prob, cur, label, reference)
        built = independent_windows(prob, cur, seeds[~tried[seeds]], window=window, count=windows)
        if len(built) < 2:
            break
        n_round += 1
        curves = []
        for b in built:
            tried[b[1]] = True
            c, cut = window_curve(prob, b, safety=safety)
            curves.append(c)
            n_milp += len(c.gain)
            timed_out = timed_out or cut
        n_win += len(built)
        gain, chosen = best_exchange(
            [{(d,): g for d, g in c.gain.items()} for c in curves], total=(0,)
        )
        if gain <= tol:
            continue
        new = _apply(prob, cur, curves, [d[0] for d in chosen])
        if new.objective > cur.objective + tol:
            n_imp += 1
            moved += sum(abs(d[0]) for d in chosen) // 2
            cur = new
    out = replace(cur, log=dict(sol.log), method=sol.method, upper_bound=sol.upper_bound)
    out.time_limited = sol.time_limited or timed_out
    out.log.update(
        exchange_rounds=n_round,
        exchange_windows=n_win,
        exchange_milps=n_milp,
        exchange_improvements=n_imp,
        exchange_moved=moved,
        exchange_gain=out.objective - sol.objective,
        exchange_s=time.perf_counter() - t0,
    )
    return out


def _apply(
    prob: MCLPProblem, sol: MCLPSolution, curves: list[_Curve], chosen: list[int]
) -> MCLPSolution:
    """``sol`` with every window's structures replaced by its chosen delta's solution;
    the objective recounted."""
    keep = np.ones(len(sol.sites), dtype=bool)
    parts = []
    for c, d in zip(curves, chosen, strict=True):
        keep &= c.built[3]
        parts.append(c.sites[d])
    sites = np.concatenate([sol.sites[keep], *parts])
    n = len(sites)
    out = MCLPSolution(sites, np.ones((n, 1), dtype=bool), np.zeros(n, dtype=bool))
    out.objective = evaluate(prob, out)
    return out
