"""Multi-operator maximal covering: solver orchestration (private).

The model is in :mod:`~towerplan.siting._model`; the phases live in
:mod:`~towerplan.siting._heuristics`, :mod:`~towerplan.siting._bounds` and
:mod:`~towerplan.siting._exact`.

Solvers
-------
* :func:`greedy` — lazy greedy over (candidate, type) pairs; a structure's gain is its
  best tenant set's newly covered weight, which never grows as coverage grows, so stale
  heap values are upper bounds and lazy evaluation gives the exact greedy; quotas,
  tenancy and conflicts respected.
* :func:`local_search` — swap local search: remove one structure and re-insert the best
  structure of the same type anywhere (tenants re-optimised), until no improving swap.
* :func:`type_swap_search` — multi-operator: a shared structure becomes dedicated while a
  dedicated one becomes shared (both quotas kept), alternated with swap local search
  (:func:`_type_polish`).
* :func:`lagrangian_bound` — upper bound from relaxing the covering rows, the
  shared-quota row and the minimum-spacing pairs (averaged subgradient, Polyak steps); for fixed multipliers the relaxed
  problem ("pick ``p`` structures by value, each with its best tenant set") is solved
  exactly by a partial sort, so every iterate is a valid bound (about the LP bound of
  the pattern formulation at convergence).
* :func:`~towerplan.siting._zones.zone_bound` — single operator, too large for the
  MILP: the zone Lagrangian bound (zone MILPs' dual bounds; ``SolveSettings.zone_bound``),
  computed in a forked process beside the LNS on two cores.
* :func:`~towerplan.siting._regional.regional_exchange` — single operator, opt-in
  (``SolveSettings.regional_exchange``): after the zone bound, independent windows
  re-solved for count changes -2..2 and combined with ``p`` kept.
* :func:`lagrangian_start` — rounding of the best multipliers into a feasible solution.
* :func:`lns` — large-neighbourhood search: windows of nearby structures re-solved
  exactly as small MILPs, windows seeded where the solution disagrees with the
  Lagrangian relaxation; *paired* windows join a structure the relaxation would close
  with a far-away candidate it would open (``_paired_lns``).
* :func:`solve_milp` — the exact sparse MILP through HiGHS (highspy), warm-started from
  a heuristic solution, within a node budget, with relative gap and reported dual bound.  With a
  few operators it uses the extended *pattern* formulation (one binary per candidate and
  tenant set; tighter LP), otherwise the compact ``x, d, h`` model above.
* :func:`solve` — ``heuristic`` / ``exact`` / ``auto`` orchestration; every phase is
  bounded by deterministic work (:class:`SolveSettings`), never by seconds.
"""

from __future__ import annotations

import time

import numpy as np

from towerplan.siting import _mexchange
from towerplan.siting._benders import BendersLimits, solve_benders
from towerplan.siting._bounds import lagrangian_bound
from towerplan.siting._countflex import count_window_solver
from towerplan.siting._exact import _milp_columns, solve_milp
from towerplan.siting._heuristics import (
    WindowSolver,
    _adjacency,
    _lagrangian_pairs,
    _lagrangian_seeds,
    _lns_window,
    greedy,
    lagrangian_start,
    lns,
    local_search,
    type_swap_search,
)
from towerplan.siting._model import (
    BENDERS_NODE_SHARE,
    BENDERS_ROOT_ROUNDS,
    LAGRANGIAN_ITERATIONS,
    LNS_PAIR_SUBPROBLEMS,
    LNS_PAIR_SUBPROBLEMS_ONE_OP,
    LNS_SECOND_SUBPROBLEMS_ONE_OP,
    LNS_SUBPROBLEMS,
    MILP_CHECKPOINTS,
    SWAP_PASSES,
    TYPE_SWAP_MOVES,
    TYPE_SWAP_ROUNDS,
    MCLPProblem,
    MCLPSolution,
    SafetyStop,
    SolveSettings,
    _empty_solution,
    _row_hash_groups,
    build_problem,
    check_solution,
    evaluate,
)
from towerplan.siting._multiop import (
    FLEX_LNS_PAIR_SUBPROBLEMS,
    FLEX_LNS_SUBPROBLEMS,
    FLEX_LNS_WINDOW,
    flex_window_solver,
    type_chain_search,
)
from towerplan.siting._regional import EXCHANGE_ROUNDS, regional_exchange
from towerplan.siting._zones import (
    ZONE_CANDIDATES,
    ZONE_CHECKPOINTS,
    ZoneJob,
    candidate_zones,
)

__all__ = [
    "MCLPProblem",
    "MCLPSolution",
    "SolveSettings",
    "_row_hash_groups",
    "build_problem",
    "check_solution",
    "evaluate",
    "greedy",
    "lagrangian_bound",
    "lagrangian_start",
    "lns",
    "local_search",
    "solve",
    "solve_milp",
    "type_swap_search",
]


MILP_MAX_NNZ = 400_000
"""Above this many non-zeros in the reduced MILP, ``auto`` does not hand the model to HiGHS."""
MILP_DIRECT_NNZ = 60_000
"""Up to this many non-zeros ``auto`` skips the LNS and goes from the heuristic start and
the Lagrangian bound straight to the MILP (small models close at the root)."""


def solve(prob: MCLPProblem, settings: SolveSettings | None = None) -> MCLPSolution:
    """Solve with ``settings.solver`` = ``'heuristic'``, ``'exact'``, ``'benders'`` or ``'auto'``.

    * ``heuristic``: lazy greedy, swap local search, Lagrangian bound and rounding, then
      large-neighbourhood search (exact window MILPs) while the certified gap exceeds
      ``mip_gap``, twice the LNS budget; with ``paired_lns`` (default) a phase of paired
      windows after the first LNS phase (``LNS_PAIR_SUBPROBLEMS`` re-solves,
      ``LNS_PAIR_SUBPROBLEMS_ONE_OP`` for one operator and dedicated structures only).
    * ``exact``: the full MILP in HiGHS (``max_nodes`` nodes), warm-started from greedy +
      swaps.
    * ``benders``: the heuristic with one LNS phase, then the branch-and-Benders-cut of
      :mod:`~towerplan.siting._benders` (SCIP) warm-started from it and from the
      Lagrangian multipliers, ``max_nodes * BENDERS_NODE_SHARE`` nodes.
    * ``auto``: the heuristic (stops as soon as the gap is certified within ``mip_gap``;
      no LNS for models up to :data:`MILP_DIRECT_NNZ` non-zeros);
      then, if not certified and the reduced MILP is small enough
      (:data:`MILP_MAX_NNZ`), the MILP warm-started from the heuristic, else a second
      LNS phase and (single operator, ``zone_bound``) the zone Lagrangian bound, started
      beside the LNS as soon as the multipliers are known (:class:`ZoneJob`).
    * single operator, ``count_flex``: LNS windows may change their number of structures
      by one (:mod:`~towerplan.siting._countflex`).
    * single operator, ``regional_exchange`` (opt-in): after the zone bound, while the gap
      exceeds ``mip_gap``, rounds of regional exchanges (:mod:`~towerplan.siting._regional`);
      multi-operator: after the paired LNS (:mod:`~towerplan.siting._mexchange`).

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
    sol = _type_polish(prob, sol, st, safety)
    if st.solver == "exact":
        out = solve_milp(
            prob,
            safety.limits(st.budget(st.max_nodes), st.mip_gap, st.budget(MILP_CHECKPOINTS)),
            start=sol,
        )
        out.method = f"exact MILP (HiGHS) warm-started from greedy + swaps, gap {out.gap:.3%}"
        return _finish(out, st, safety)
    ub, linfo = lagrangian_bound(
        prob,
        sol.objective,
        max_iter=st.budget(LAGRANGIAN_ITERATIONS),
        target_gap=st.mip_gap,
        safety=safety,
        averaging=st.lagrangian_averaging,
        relax_conflicts=st.multi_operator_moves,
    )
    phases = ["greedy", "swap", "Lagrangian bound"]
    sol = _rounded_start(prob, sol, st, safety, phases)
    sol.upper_bound = max(ub, sol.objective)
    sol.log.update(linfo)
    sol.time_limited = sol.time_limited or bool(linfo.get("lagrangian_time_limited"))
    n_lns = st.budget(FLEX_LNS_SUBPROBLEMS if _flex_on(prob, st) else LNS_SUBPROBLEMS)
    keep = _milp_columns(prob)
    est_nnz = prob.A[:, keep].nnz + (prob.A.shape[0] + len(keep)) * prob.n_ops
    direct = st.solver in ("auto", "benders") and est_nnz <= MILP_DIRECT_NNZ
    zone_job = None
    if st.solver == "auto" and est_nnz > MILP_MAX_NNZ and sol.gap > st.mip_gap:
        zone_job = _start_zone_job(prob, st, safety) if _zone_applies(prob, st) else None
    if sol.gap > st.mip_gap and not direct:
        better = _lns_phase(prob, sol, st, safety, n_lns, st.seed, _lagrangian_seeds(prob, sol))
        better = _type_polish(prob, better, st, safety)
        better.upper_bound = max(sol.upper_bound, better.objective)
        sol = better
        phases.append("LNS")
        if st.paired_lns:
            sol = _paired_lns(prob, sol, st, safety)
            phases.append("paired LNS")
        if st.regional_exchange and _flex_on(prob, st) and sol.gap > st.mip_gap:
            rounds = st.budget(_mexchange.EXCHANGE_ROUNDS)
            sol = _mexchange.regional_exchange(prob, sol, rounds=rounds, safety=safety)
            phases.append("regional exchange")
    if st.solver == "heuristic" or sol.gap <= st.mip_gap + 1e-12:
        why = (
            "requested" if st.solver == "heuristic" else f"certified within mip_gap {st.mip_gap:g}"
        )
        sol.method = f"heuristic ({' + '.join(phases)}), {why}; certified gap {sol.gap:.3%}"
        if st.solver == "heuristic" and sol.gap > st.mip_gap:
            sol = _second_lns(prob, sol, st, safety, n_lns)
        if zone_job is not None:
            zone_job.cancel()
        return _finish(sol, st, safety)
    if st.solver == "benders":
        return _finish(_benders_phase(prob, sol, st, safety, phases), st, safety)
    if est_nnz <= MILP_MAX_NNZ:
        out = solve_milp(
            prob,
            safety.limits(st.budget(st.max_nodes), st.mip_gap, st.budget(MILP_CHECKPOINTS)),
            start=sol,
        )
        out.upper_bound = max(min(out.upper_bound, sol.upper_bound), out.objective)
        out.time_limited = out.time_limited or sol.time_limited
        out.method = (
            f"auto: heuristic ({' + '.join(phases)}) certified gap {sol.gap:.3%} > mip_gap "
            f"{st.mip_gap:g}, so exact MILP (HiGHS) warm-started from it; gap {out.gap:.3%}"
        )
        out.log.update(linfo)
        return _finish(out, st, safety)
    sol = _zone_phase(prob, _second_lns(prob, sol, st, safety, n_lns), st, safety, zone_job)
    phases += ["LNS", "zone bound"] if "zone_bound" in sol.log else ["LNS"]
    sol = _exchange_phase(prob, sol, st, safety)
    phases += ["regional exchange"] if "exchange_rounds" in sol.log else []
    sol.method = (
        f"auto: the MILP is too large ({est_nnz:,} non-zeros > {MILP_MAX_NNZ:,}), so "
        f"heuristic ({' + '.join(phases)}); certified gap {sol.gap:.3%}"
    )
    return _finish(sol, st, safety)


LAGRANGIAN_START_MIN_RATIO = 0.95
"""The Lagrangian-rounded start is searched (swaps, type polish) only when its value is at
least this share of the incumbent's: further below, the search did not recover it (demo:
0.88 -> 0.977 in 5.7 CPU s; the bench instances where it wins start at 0.970-0.989)."""


def _rounded_start(
    prob: MCLPProblem, sol: MCLPSolution, st: SolveSettings, safety: SafetyStop, phases: list[str]
) -> MCLPSolution:
    """The better of ``sol`` and the Lagrangian-rounded start after swaps and type polish."""
    alt = lagrangian_start(prob)
    if alt is None or alt.objective < LAGRANGIAN_START_MIN_RATIO * sol.objective:
        sol.log["lagrangian_start_searched"] = False
        return sol
    alt = local_search(prob, alt, max_passes=st.budget(SWAP_PASSES), seed=st.seed, safety=safety)
    alt = _type_polish(prob, alt, st, safety)
    if alt.objective <= sol.objective + 1e-9 * max(prob.total_weight, 1.0):
        sol.log["lagrangian_start_searched"] = True
        return sol
    alt.log = {**sol.log, **{"lagrangian_start_" + k: v for k, v in alt.log.items()}}
    alt.log["lagrangian_start_searched"] = True
    alt.method = "Lagrangian rounding + swap"
    alt.time_limited = alt.time_limited or sol.time_limited
    phases.append("Lagrangian rounding + swap")
    return alt


def _benders_phase(
    prob: MCLPProblem,
    sol: MCLPSolution,
    st: SolveSettings,
    safety: SafetyStop,
    phases: list[str],
) -> MCLPSolution:
    """Branch-and-Benders-cut (SCIP) from the heuristic incumbent and its Lagrangian duals."""
    mult = prob.info.get("_multipliers")
    limits = BendersLimits(
        max_nodes=st.budget(max(1, round(st.max_nodes * BENDERS_NODE_SHARE))),
        mip_gap=st.mip_gap,
        time_limit_s=safety.left(),
        max_root_rounds=st.budget(BENDERS_ROOT_ROUNDS),
    )
    out = solve_benders(prob, limits, start=sol, duals=mult[0] if mult is not None else None)
    out.upper_bound = max(min(out.upper_bound, sol.upper_bound), out.objective)
    out.time_limited = out.time_limited or sol.time_limited
    out.log = {**sol.log, **out.log}
    out.method = (
        f"benders: heuristic ({' + '.join(phases)}) certified gap {sol.gap:.3%}, then "
        f"branch-and-Benders-cut (SCIP) warm-started from it; gap {out.gap:.3%}"
    )
    return out


def _lns_phase(
    prob: MCLPProblem,
    sol: MCLPSolution,
    st: SolveSettings,
    safety: SafetyStop,
    n: int,
    seed: int,
    priority_seeds: np.ndarray | None = None,
) -> MCLPSolution:
    """One LNS phase of ``n`` window re-solves towards ``(1 - mip_gap) * bound``.

    Multi-operator models solve their windows speculatively on ``st.threads`` threads
    (the same result); single-operator, dedicated-only ones on one: their window MILPs
    are cheap, so building the speculative one costs a good share of what it saves,
    and the zone bound already runs on the second core beside the LNS (measured on
    ``cantho-scale`` at load 6: the same hash, 11 % more CPU and 12 % more wall time).
    """
    return lns(
        prob,
        sol,
        max_subproblems=n,
        seed=seed,
        target=(1 - st.mip_gap) * sol.upper_bound,
        window=FLEX_LNS_WINDOW if _flex_on(prob, st) else _lns_window(prob),
        priority_seeds=priority_seeds,
        safety=safety,
        light_windows=st.paired_lns,
        window_solver=_window_solver(prob, st),
        threads=st.threads if prob.n_ops > 1 or prob.n_shared > 0 else 1,
    )


def _flex_on(prob: MCLPProblem, st: SolveSettings) -> bool:
    """Whether the multi-operator moves of ``st.type_flex`` apply to ``prob``."""
    on = st.type_flex and st.multi_operator_moves
    return on and prob.n_shared > 0 and prob.n_dedicated > 0


def _window_solver(prob: MCLPProblem, st: SolveSettings) -> WindowSolver | None:
    """Type-flexible LNS windows (``st.type_flex``, multi-operator models), count-flexible
    ones (``st.count_flex``, one operator, dedicated structures only), else ``None``."""
    if _flex_on(prob, st):
        return flex_window_solver(prob, count_flex=st.multiop_count_flex)
    if st.count_flex and prob.n_ops == 1 and prob.n_shared == 0:
        return count_window_solver(prob)
    return None


def _paired_lns(
    prob: MCLPProblem, sol: MCLPSolution, st: SolveSettings, safety: SafetyStop
) -> MCLPSolution:
    """The paired-window LNS phase (``st.paired_lns``); its own ``lns_pair_*`` counters."""
    if not st.paired_lns or sol.gap <= st.mip_gap:
        return sol
    pairs = _lagrangian_pairs(prob, sol)
    if pairs is None:
        return sol
    first = {k: v for k, v in sol.log.items() if k.startswith("lns_")}
    one_op = prob.n_ops == 1 and prob.n_shared == 0
    n_pairs = st.budget(LNS_PAIR_SUBPROBLEMS_ONE_OP if one_op else LNS_PAIR_SUBPROBLEMS)
    if _flex_on(prob, st):
        n_pairs = st.budget(FLEX_LNS_PAIR_SUBPROBLEMS)
    better = _lns_phase(prob, sol, st, safety, n_pairs, st.seed + 2, pairs[:n_pairs])
    better.upper_bound = max(sol.upper_bound, better.objective)
    better.method = sol.method
    for k in ("lns_s", "lns_subproblems", "lns_improvements"):
        better.log["lns_pair_" + k[4:]] = better.log.pop(k, 0)
    better.log.pop("lns_final_window", None)
    better.log.update(first)
    return better


def _second_lns(
    prob: MCLPProblem, sol: MCLPSolution, st: SolveSettings, safety: SafetyStop, n_lns: int
) -> MCLPSolution:
    """A second LNS phase from ``sol`` (other seed order, no priority seeds;
    :data:`LNS_SECOND_SUBPROBLEMS_ONE_OP` re-solves for one operator with ``count_flex``)."""
    if sol.gap <= st.mip_gap:
        return sol
    if st.count_flex and prob.n_ops == 1 and prob.n_shared == 0:
        n_lns = st.budget(LNS_SECOND_SUBPROBLEMS_ONE_OP)
    first = {k: v for k, v in sol.log.items() if k.startswith("lns_")}
    better = _lns_phase(prob, sol, st, safety, n_lns, st.seed + 1)
    better = _type_polish(prob, better, st, safety)
    better.upper_bound = max(sol.upper_bound, better.objective)
    better.method = sol.method
    for k in ("lns_s", "lns_subproblems", "lns_improvements"):
        if k in first:
            better.log[k] = better.log.get(k, 0) + first[k]
    return better


def _zone_applies(prob: MCLPProblem, st: SolveSettings) -> bool:
    """Whether the zone bound (``st.zone_bound``) applies to ``prob``: single operator,
    dedicated structures only, at least two zones' worth of candidates, Lagrangian
    multipliers known."""
    return (
        st.zone_bound
        and prob.info.get("_multipliers") is not None
        and prob.n_ops == 1
        and prob.n_shared == 0
        and prob.n_cand >= 2 * ZONE_CANDIDATES
    )


def _start_zone_job(prob: MCLPProblem, st: SolveSettings, safety: SafetyStop) -> ZoneJob:
    """The zone bound at the current multipliers, started beside the LNS (a forked process
    on two cores; see :class:`~towerplan.siting._zones.ZoneJob`)."""
    label = candidate_zones(_adjacency(prob), ZONE_CANDIDATES)
    mult = prob.info["_multipliers"]
    return ZoneJob(
        prob, mult[0], label=label, checkpoints=st.budget(ZONE_CHECKPOINTS), safety=safety
    )


def _zone_phase(
    prob: MCLPProblem,
    sol: MCLPSolution,
    st: SolveSettings,
    safety: SafetyStop,
    job: ZoneJob | None = None,
) -> MCLPSolution:
    """Tighten ``sol.upper_bound`` by the zone Lagrangian bound (``st.zone_bound``).

    A no-op unless :func:`_zone_applies` and the gap is above ``mip_gap`` (then a running
    ``job`` is cancelled).  The zone MILPs get ``ZONE_CHECKPOINTS`` work checkpoints each
    (scaled by ``work_limit``); ``job`` is the same bound started earlier
    (:func:`_start_zone_job`), else it is computed here.
    """
    if not _zone_applies(prob, st) or sol.gap <= st.mip_gap or safety.expired():
        if job is not None:
            job.cancel()
        return sol
    if job is None:
        job = _start_zone_job(prob, st, safety)
    ub, info = job.result()
    sol.log.update(info, zone_forked=job.forked)
    sol.upper_bound = max(min(sol.upper_bound, ub), sol.objective)
    sol.time_limited = sol.time_limited or bool(info["zone_time_limited"])
    return sol


def _exchange_phase(
    prob: MCLPProblem, sol: MCLPSolution, st: SolveSettings, safety: SafetyStop
) -> MCLPSolution:
    """Regional exchanges (``st.regional_exchange``, :mod:`~towerplan.siting._regional`)
    while the gap exceeds ``mip_gap``: single operator, dedicated structures, zones of
    :data:`ZONE_CANDIDATES` candidates, Lagrangian multipliers known;
    :data:`EXCHANGE_ROUNDS` rounds scaled by ``work_limit``."""
    one_op = prob.n_ops == 1 and prob.n_shared == 0 and prob.n_cand >= 2 * ZONE_CANDIDATES
    if not (st.regional_exchange and one_op) or sol.gap <= st.mip_gap or safety.expired():
        return sol
    if prob.info.get("_multipliers") is None:
        return sol
    return regional_exchange(
        prob,
        sol,
        label=candidate_zones(_adjacency(prob), ZONE_CANDIDATES),
        rounds=st.budget(EXCHANGE_ROUNDS),
        target=(1 - st.mip_gap) * sol.upper_bound,
        safety=safety,
    )


def _type_polish(
    prob: MCLPProblem, sol: MCLPSolution, st: SolveSettings, safety: SafetyStop
) -> MCLPSolution:
    """Multi-operator: rounds of dedicated/shared type swaps, each followed by swap search
    (with ``type_flex``: swap search with dedicated <-> shared ejection chains).

    A no-op for one operator, one structure type or ``multi_operator_moves=False``;
    bounded by :data:`TYPE_SWAP_ROUNDS` rounds of :data:`TYPE_SWAP_MOVES` moves (both scaled
    by ``work_limit``, like every other phase; no round at ``work_limit`` <= 1/6, where
    the rounds' share of the work rounds to zero).
    """
    if not st.multi_operator_moves or prob.n_shared == 0 or prob.n_dedicated == 0:
        return sol
    tol = 1e-9 * max(prob.total_weight, 1.0)
    for r in range(st.optional_budget(TYPE_SWAP_ROUNDS)):
        if safety.expired():  # reported by _finish (safety.fired)
            break
        ts = type_swap_search(prob, sol, max_moves=st.budget(TYPE_SWAP_MOVES))
        if _flex_on(prob, st):  # swap search with dedicated <-> shared chains
            new = type_chain_search(prob, ts, max_passes=st.budget(SWAP_PASSES), seed=st.seed + r)
        elif ts.objective > sol.objective + tol:
            new = local_search(
                prob, ts, max_passes=st.budget(SWAP_PASSES), seed=st.seed + r, safety=safety
            )
        else:
            break
        if new.objective <= sol.objective + tol:
            break
        new.method = sol.method
        sol = new
    return sol


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
