"""Multi-operator regional exchange moves (private).

LNS windows keep their numbers of structures (type-flexible windows move one shared
slot with one far structure), so how many structures, and how many shared ones, each
part of the city gets is fixed by the start.  At city scale the Lagrangian relaxation's
regional counts differ widely from the incumbent's (README, *Multi-operator at city
scale*).  A *regional exchange* moves counts between regions with every region
re-packed:

1. zones of :data:`~towerplan.siting._zones.ZONE_CANDIDATES` candidates are ranked by
   how far the relaxed solution's counts (structures, shared structures) at the current
   multipliers are from the incumbent's, both signs;
2. in that order, up to ``windows`` pairwise *independent* LNS windows are built, one a
   zone, centred where the solution disagrees with the relaxation: no candidate of one
   window shares a demand row or a spacing pair with a candidate of another, and the
   rest of the plan stays fixed, so the windows' gains add up exactly;
3. each window's pattern MILP is solved for those count deltas of
   :data:`EXCHANGE_DELTAS` (``(dedicated, shared)`` added to the window's counts) that
   move its zone towards the relaxation's counts (:func:`_directed`): the quota rows'
   right-hand sides changed, warm-started from one greedy step (:func:`_delta_start`),
   work bounded by checkpoints and nodes, never seconds; the current window is the
   zero delta (gain 0);
4. :func:`~towerplan.siting._exchange.best_exchange` picks one delta per window, the
   deltas summing to ``(0, 0)`` (both quotas kept) and the total gain maximal; the
   chosen windows' solutions are applied together and the objective is recounted
   (a round that does not improve the recount is dropped, so never worse).

Tenancy, quotas and minimum spacing are kept (each window is a restriction of the
model with the outside fixed); deterministic (work counters only).  Opt-in
(``SolveSettings.regional_exchange``): measured on the demo and ``cantho-scale-4op``
it gained less per CPU second than more LNS windows (README, *tried, not kept*).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from towerplan.siting._bounds import _relaxed
from towerplan.siting._exchange import best_exchange
from towerplan.siting._heuristics import (
    WindowProblem,
    _adjacency,
    _lns_window_problem,
    _type_change_values,
)
from towerplan.siting._highs import WorkLimits, solve_model
from towerplan.siting._model import (
    MCLPProblem,
    MCLPSolution,
    SafetyStop,
    _pick_tenants,
    _type_values,
    evaluate,
)
from towerplan.siting._multiop import _near, _quota_model, _ShiftValues
from towerplan.siting._zones import ZONE_CANDIDATES, candidate_zones

__all__ = ["EXCHANGE_DELTAS", "EXCHANGE_ROUNDS", "regional_exchange"]

EXCHANGE_DELTAS: tuple[tuple[int, int], ...] = (
    (0, 0),
    (1, 0),
    (-1, 0),
    (0, 1),
    (0, -1),
    (1, -1),
    (-1, 1),
)
"""Count deltas ``(dedicated, shared)`` each exchange window is solved for."""
EXCHANGE_ROUNDS = 3
"""Exchange rounds of ``SolveSettings.regional_exchange`` (scaled by ``work_limit``)."""
EXCHANGE_WINDOWS = 8
"""Independent windows per exchange round."""
EXCHANGE_WINDOW = 6
"""Structures per exchange window."""
EXCHANGE_CHECKPOINTS = 20
"""HiGHS MIP work checkpoints per exchange window MILP (one per delta)."""
EXCHANGE_NODES = 200
"""Branch-and-bound nodes per exchange window MILP."""

State = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class _Curve:
    """One window's best solutions per count delta: ``delta -> (gain, sites, tenants,
    shared)`` (sites as candidate indices of the whole problem)."""

    keep_mask: np.ndarray
    options: dict[tuple[int, int], tuple[float, np.ndarray, np.ndarray, np.ndarray]]
    solves: int


@dataclass(frozen=True)
class _Relaxed:
    """The relaxed solution at the current multipliers, against the incumbent: per zone
    the relaxed minus the incumbent count of dedicated and of shared structures; per
    candidate its relaxed value and whether the relaxation opens it."""

    gap_ded: np.ndarray
    gap_sh: np.ndarray
    val: np.ndarray
    picked: np.ndarray


def _relaxed_gaps(prob: MCLPProblem, label: np.ndarray, sol: State) -> _Relaxed | None:
    """:class:`_Relaxed` for ``sol`` (``None`` without Lagrangian multipliers)."""
    mult = prob.info.get("_multipliers")
    if mult is None:
        return None
    lam, nu = mult
    AT = prob.A.astype(float).T.tocsr()
    _, c, is_sh, top = _relaxed(prob, AT, lam, float(nu), prob.info.get("_conflict_multipliers"))
    D, S = _type_values(c, prob.cap)
    val = np.where(is_sh, S - nu, D)
    nz = int(label.max()) + 1
    sites, _, shared = sol

    def count(idx: np.ndarray) -> np.ndarray:
        return np.bincount(label[idx], minlength=nz)

    gap_ded = count(top[~is_sh[top]]) - count(sites[~shared])
    gap_sh = count(top[is_sh[top]]) - count(sites[shared])
    picked = np.zeros(prob.n_cand, dtype=bool)
    picked[top] = True
    return _Relaxed(gap_ded, gap_sh, val, picked)


def _directed(gap_ded: int, gap_sh: int) -> list[tuple[int, int]]:
    """The non-zero deltas of :data:`EXCHANGE_DELTAS` that move a zone's counts towards
    the relaxation's: each non-zero entry has the sign of that count's gap."""
    return [
        (dd, ds)
        for dd, ds in EXCHANGE_DELTAS
        if (dd, ds) != (0, 0)
        and dd * gap_ded >= 0
        and ds * gap_sh >= 0
        and (dd == 0 or gap_ded)
        and (ds == 0 or gap_sh)
    ]


def _centre(rel: _Relaxed, in_zone: np.ndarray, is_open: np.ndarray, more: bool) -> int:
    """Window centre in a zone: where the relaxation wants ``more`` structures, the
    best candidate it opens and the incumbent does not (else the best closed one); where
    it wants fewer, the worst structure it closes (else the worst open one); ``-1`` if
    none."""
    if more:
        pool = [in_zone & rel.picked & ~is_open, in_zone & ~is_open]
        sign = -1.0
    else:
        pool = [in_zone & ~rel.picked & is_open, in_zone & is_open]
        sign = 1.0
    for mask in pool:
        idx = np.flatnonzero(mask)
        if len(idx):
            return int(idx[np.argmin(sign * rel.val[idx])])
    return -1


def _exchange_windows(
    prob: MCLPProblem,
    sol: MCLPSolution,
    label: np.ndarray,
    tried: np.ndarray,
    n_windows: int,
    window: int,
) -> list[tuple[WindowProblem, list[tuple[int, int]]]]:
    """Up to ``n_windows`` pairwise independent windows, one a zone, in the zones where
    the relaxed counts differ most from ``sol``'s (zones tried in earlier rounds last),
    each with the deltas towards the relaxation's counts (:func:`_directed`)."""
    state = (sol.sites, sol.tenants, sol.shared)
    rel = _relaxed_gaps(prob, label, state)
    if rel is None:
        return []
    score = np.abs(rel.gap_ded) + np.abs(rel.gap_sh)
    order = np.lexsort((np.arange(len(score)), -score, tried))
    is_open = np.zeros(prob.n_cand, dtype=bool)
    is_open[sol.sites] = True
    adj = _adjacency(prob)
    blocked = np.zeros(prob.n_cand, dtype=bool)
    out: list[tuple[WindowProblem, list[tuple[int, int]]]] = []
    for z in order:
        if len(out) >= n_windows or score[z] == 0:
            break
        more = rel.gap_ded[z] + rel.gap_sh[z] > 0 or (
            rel.gap_ded[z] + rel.gap_sh[z] == 0 and rel.gap_sh[z] > 0
        )
        c = _centre(rel, (label == z) & ~blocked, is_open, bool(more))
        if c < 0:
            continue
        built = _lns_window_problem(prob, adj, *state, c, window)
        if built is None or blocked[built[1]].any():
            continue
        blocked |= _near(prob.n_cand, adj, built[1])
        tried[z] += 1
        out.append((built, _directed(int(rel.gap_ded[z]), int(rel.gap_sh[z]))))
    return out


def _delta_start(
    sub: MCLPProblem, cur: MCLPSolution, delta: tuple[int, int]
) -> MCLPSolution | None:
    """A feasible start of the window with counts changed by ``delta`` (a warm start
    for its MILP): the current window plus one greedy step: the best free candidate
    opened as the type gained, the structure of the type lost that loses least closed,
    or (one of each) the best type conversion.  ``None`` if there is none."""
    dd, ds = delta
    sites, ten, shared = cur.sites, cur.tenants, cur.shared
    if dd and ds:  # a conversion: -1 dedicated +1 shared, or the reverse
        A_s = sub.A[:, sites].astype(np.int32)
        cnt = np.asarray(A_s @ ten.astype(np.int32)).reshape(sub.n_rows, sub.n_ops)
        loss, gain, keep = _type_change_values(sub, cur, cnt, A_s.T.tocsr().astype(float))
        pick = np.where(shared, -loss, -np.inf) if ds < 0 else np.where(~shared, gain, -np.inf)
        c = int(np.argmax(pick))
        if not np.isfinite(pick[c]):
            return None
        ten2, sh2 = ten.copy(), shared.copy()
        ten2[c] = keep[c] if ds < 0 else ten[c] | keep[c]
        sh2[c] = ds > 0
        return MCLPSolution(sites, ten2, sh2)
    loss, G, free = _ShiftValues(sub).get(sites, ten, shared)
    want_sh = ds != 0
    if dd < 0 or ds < 0:
        pick = np.where(shared == want_sh, -loss, -np.inf)
        c = int(np.argmax(pick)) if len(pick) else 0
        if not len(pick) or not np.isfinite(pick[c]):
            return None
        keep_s = np.arange(len(sites)) != c
        return MCLPSolution(sites[keep_s], ten[keep_s], shared[keep_s])
    ok = free & ((sub.cap >= 2) if want_sh else True)
    if not ok.any():
        return None
    D, S = _type_values(G, sub.cap)
    j = int(np.argmax(np.where(ok, S if want_sh else D, -np.inf)))
    t = _pick_tenants(G[j], want_sh, int(sub.cap[j]))
    return MCLPSolution(
        np.append(sites, j), np.vstack([ten, t[None, :]]), np.append(shared, want_sh)
    )


def _window_curve(
    built: WindowProblem, deltas: list[tuple[int, int]], limits: WorkLimits
) -> _Curve | None:
    """The window's best solution for each of ``deltas`` (and the current one, gain 0)."""
    sub, cmap, cur, keep_mask = built
    made = _quota_model(sub, (sub.n_dedicated + 1, sub.n_shared + 1))
    if made is None:
        return None
    model, decode, encode, (rd, rs), keep = made
    options = {(0, 0): (0.0, cmap[cur.sites], cur.tenants, cur.shared)}
    solves = 0
    for dd, ds in deltas:
        nd, ns = sub.n_dedicated + dd, sub.n_shared + ds
        if nd < 0 or ns < 0:
            continue
        rlo, rhi = model.rlo.copy(), model.rhi.copy()
        rlo[rd] = rhi[rd] = nd
        rlo[rs] = rhi[rs] = ns
        start = _delta_start(sub, cur, (dd, ds))
        x0 = encode(start) if start is not None and np.isin(start.sites, keep).all() else None
        res = solve_model(replace(model, rlo=rlo, rhi=rhi), limits, x0)
        solves += 1
        if res.x is None:
            continue
        w_sites, w_ten, w_sh = decode(res.x)
        if int(w_sh.sum()) != ns or int((~w_sh).sum()) != nd:
            continue
        gain = evaluate(sub, MCLPSolution(w_sites, w_ten, w_sh)) - cur.objective
        options[(dd, ds)] = (gain, cmap[w_sites], w_ten, w_sh)
    return _Curve(keep_mask, options, solves)


def _exchange_round(
    prob: MCLPProblem,
    sol: MCLPSolution,
    windows: list[tuple[WindowProblem, list[tuple[int, int]]]],
    limits: WorkLimits,
) -> tuple[MCLPSolution | None, int, int]:
    """Solve the windows' curves, choose the best exchange, apply it and recount:
    (better solution or ``None``, MILPs solved, windows whose counts changed)."""
    curves = [c for c in (_window_curve(w, d, limits) for w, d in windows) if c is not None]
    solves = sum(c.solves for c in curves)
    if not curves:
        return None, solves, 0
    gains = [{d: v[0] for d, v in c.options.items()} for c in curves]
    gain, chosen = best_exchange(gains, total=(0, 0))
    tol = 1e-9 * max(prob.total_weight, 1.0)
    if gain <= tol:
        return None, solves, 0
    keep = np.logical_and.reduce([c.keep_mask for c in curves])
    parts = [(sol.sites[keep], sol.tenants[keep], sol.shared[keep])]
    parts += [c.options[d][1:] for c, d in zip(curves, chosen, strict=True)]
    out = MCLPSolution(
        np.concatenate([p[0] for p in parts]).astype(sol.sites.dtype),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
        method=sol.method,
    )
    out.objective = evaluate(prob, out)
    if out.objective <= sol.objective + tol:
        return None, solves, 0
    return out, solves, sum(d != (0, 0) for d in chosen)


def regional_exchange(
    prob: MCLPProblem,
    sol: MCLPSolution,
    *,
    rounds: int,
    windows: int = EXCHANGE_WINDOWS,
    window: int = EXCHANGE_WINDOW,
    zone_size: int = ZONE_CANDIDATES,
    safety: SafetyStop | None = None,
) -> MCLPSolution:
    """Rounds of regional exchange moves from ``sol`` (see the module docstring).

    Parameters
    ----------
    prob : MCLPProblem
        A multi-operator model with Lagrangian multipliers in ``prob.info`` (else
        ``sol`` is returned unchanged).
    sol : MCLPSolution
        The incumbent (feasible).
    rounds : int
        Exchange rounds (each: up to ``windows`` windows, one MILP per window and delta).
    windows, window : int
        Independent windows per round and structures per window.
    zone_size : int
        Candidates per zone (:func:`~towerplan.siting._zones.candidate_zones`).
    safety : SafetyStop, optional
        The wall-clock safety stop (a run it cuts says ``time_limited``).

    Returns
    -------
    MCLPSolution
        Never worse than ``sol``; objective recounted; ``log`` gains ``exchange_*``
        work counters.
    """
    t0 = time.perf_counter()
    if prob.n_ops < 2 or prob.n_shared == 0 or prob.n_dedicated == 0 or not len(sol.sites):
        return sol
    label = candidate_zones(_adjacency(prob), zone_size)
    tried = np.zeros(int(label.max()) + 1, dtype=np.int64)
    cur = sol
    n_solves = n_moved = n_imp = n_win = 0
    timed_out = False
    for _ in range(rounds):
        if safety is not None and safety.expired():
            timed_out = True
            break
        built = _exchange_windows(prob, cur, label, tried, windows, window)
        if not built:
            break
        n_win += len(built)
        limits = (
            safety.limits(EXCHANGE_NODES, 1e-4, EXCHANGE_CHECKPOINTS, light_root=True)
            if safety is not None
            else WorkLimits(
                max_nodes=EXCHANGE_NODES, max_checkpoints=EXCHANGE_CHECKPOINTS, light_root=True
            )
        )
        better, solves, moved = _exchange_round(prob, cur, built, limits)
        n_solves += solves
        if better is not None:
            n_imp += 1
            n_moved += moved
            cur = better
    out = MCLPSolution(cur.sites, cur.tenants, cur.shared, method=sol.method)
    out.objective = cur.objective
    out.upper_bound = max(sol.upper_bound, out.objective)
    out.time_limited = sol.time_limited or timed_out
    out.log = dict(sol.log)
    out.log.update(
        exchange_s=out.log.get("exchange_s", 0.0) + time.perf_counter() - t0,
        exchange_windows=out.log.get("exchange_windows", 0) + n_win,
        exchange_milps=out.log.get("exchange_milps", 0) + n_solves,
        exchange_improvements=out.log.get("exchange_improvements", 0) + n_imp,
        exchange_count_moves=out.log.get("exchange_count_moves", 0) + n_moved,
    )
    return out
