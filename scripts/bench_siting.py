"""Benchmark towerplan's siting solvers against PySAL spopt's MCLP.

Usage::

    python scripts/bench_siting.py --out bench.json [--quick] [--work-limit 1.0]
        [--determinism clustered-5000x1000]
    python scripts/bench_siting.py --bounds --only cantho-quarter --milp-nodes 1000 --out b.json
    python scripts/bench_siting.py --build-compare --only cantho-scale cantho-1m --out c.json
    python scripts/bench_siting.py --primal --only cantho-scale --out p.json [--mip-gap 1e-4]
    python scripts/bench_siting.py --zones --only cantho-scale cantho-1m --out z.json
    python scripts/bench_siting.py --multiop --only cantho-small-4op demo --out m.json
    python scripts/bench_siting.py --countflex --only cantho-scale cantho-1m --out f.json
    python scripts/bench_siting.py --multiop-countflex --only demo cantho-scale-4op --out mf.json
    python scripts/bench_siting.py --exchange --only cantho-scale --mip-gap 1e-4 --out x.json
    python scripts/bench_siting.py --mexchange --only demo cantho-scale-4op --out mx.json

Instances (all generated here with fixed seeds; nothing is downloaded):

* ``clustered-2000x500``  : 2,000 clustered demand points, 500 candidates, 20 locked, p = 60
* ``clustered-5000x1000`` : 5,000 demand points, 1,000 candidates, 50 locked, p = 150
* ``cantho-scale``        : a Cần Thơ-sized synthetic city (48 x 30 km = 1,440 km2 of
  100 m cells = 144,000 demand cells, population 1.25 M in dense cores, river ribbons and a
  rural base), 10,240 grid candidates (375 m), 1,114 locked sites, p = 614, r = 500 m
* ``cantho-quarter``      : the eastern 24 x 18 km of ``cantho-scale`` (its demand cells,
  candidates and locked sites in that window; 43,200 cells, 3,072 candidates), p = 184
  (614 x the window's share of the candidates): a mid-size instance whose optimum
  HiGHS proves, for measuring how far the incumbent and the bounds are from it
* ``cantho-1m``           : the same city on 37.5 m cells (1,280 x 800 = 1,024,000
  demand cells), same candidates, locked sites, p and r; built block by block
  (``coverage_blocks``): the full coverage matrix is never held.  Its ``benders`` row
  is not run (the B&BC does not finish its root at this size)
* ``cantho-scale-4op``    : the same city with 4 operators (shares 0.50/0.22/0.23/0.05),
  existing sites split among them, 338 dedicated + 276 shared new structures
  (towerplan only: spopt's MCLP has no operators)
* ``cantho-quarter-4op``  : ``cantho-quarter`` with the 4 operators of ``cantho-scale-4op``
  (same shares, host/guest split of its locked sites) and the quotas scaled to p = 184:
  101 dedicated + 83 shared
* ``cantho-small-4op``    : the same 4 operators on a 12 x 9 km window south-west of the
  densest core (10,800 cells, 768 candidates), p = 46 = 25 dedicated + 21 shared (quotas
  scaled by the candidates' share): small enough for HiGHS to prove the multi-operator
  optimum
* ``rural-1op``, ``rural-4op``, ``rural2-4op``, ``mid-4op`` : 12 x 9 km windows of the
  same city away from its cores (19,500 / 21,700 / 113,000 people, 22 / 21 / 99 locked
  sites; 768 candidates), p = 11 (6 + 5 with 4 operators) or 55 (30 + 25): about the
  window's share of the population times 614; for ``--loose-side``
* ``demo``                : the siting model of ``towerplan plan --scenario cantho-2020``
  (built by the plan's own stages: census demand, link-budget radii, minimum spacing)

Every towerplan row solves the instance twice in the same process: the current method
(``exact`` with zero gap on the small instances, ``auto`` on the large ones) and
``solver="benders"`` (heuristic start, then branch-and-Benders-cut in SCIP), so their
gaps and times compare under the same load.

spopt's MCLP is single-operator, so spopt and towerplan are compared on single-operator
instances; towerplan's model with one operator and ``n_dedicated = p, n_shared = 0`` is
the classic MCLP (existing sites = spopt's predefined facilities, counted in its ``p``).
spopt is solved through PuLP with HiGHS and with CBC, both with a zero relative gap.
``--quick`` runs only the two small instances.  Every instance runs in its own process so
that ``peak_rss_mb`` is that run's peak resident memory (``towerplan_build_peak_rss_mb``
after the build, ``towerplan_solve_peak_rss_mb`` after the current solver); CPU seconds
of the process are reported beside wall-clock seconds (the machine may be shared).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
from typing import Any

import numpy as np

_CITY: dict[str, Any] = {"kind": "city", "locked": 1114, "r": 500.0, "seed": 7}
_RURAL, _RURAL2 = (0.0, 12000.0, 21000.0, 30000.0), (12000.0, 24000.0, 0.0, 9000.0)
_MID = (36000.0, 48000.0, 21000.0, 30000.0)
INSTANCES: dict[str, dict[str, Any]] = {
    "clustered-2000x500": {
        "kind": "clustered",
        "n": 2000,
        "m": 500,
        "locked": 20,
        "p": 60,
        "r": 750.0,
        "seed": 1,
    },
    "clustered-5000x1000": {
        "kind": "clustered",
        "n": 5000,
        "m": 1000,
        "locked": 50,
        "p": 150,
        "r": 750.0,
        "seed": 2,
    },
    "cantho-scale": {"kind": "city", "locked": 1114, "p": 614, "r": 500.0, "seed": 7, "ops": 1},
    "cantho-quarter": {
        "kind": "city",
        "locked": 1114,
        "p": 184,
        "r": 500.0,
        "seed": 7,
        "ops": 1,
        "window": (24000.0, 48000.0, 8000.0, 26000.0),
    },
    "cantho-1m": {
        "kind": "city",
        "locked": 1114,
        "p": 614,
        "r": 500.0,
        "seed": 7,
        "ops": 1,
        "cell": 37.5,
        "benders": False,
    },
    "cantho-scale-4op": {"kind": "city", "locked": 1114, "p": 614, "r": 500.0, "seed": 7, "ops": 4},
    "cantho-quarter-4op": {
        "kind": "city",
        "locked": 1114,
        "p": 184,
        "r": 500.0,
        "seed": 7,
        "ops": 4,
        "window": (24000.0, 48000.0, 8000.0, 26000.0),
        "quotas": (101, 83),
    },
    "cantho-small-4op": {
        "kind": "city",
        "locked": 1114,
        "p": 46,
        "r": 500.0,
        "seed": 7,
        "ops": 4,
        "window": (24000.0, 36000.0, 8000.0, 17000.0),
        "quotas": (25, 21),
    },
    "demo": {"kind": "demo", "locked": 1114, "p": 614, "r": 0.0, "seed": 0, "ops": 4},
    "rural-4op": {**_CITY, "p": 11, "ops": 4, "window": _RURAL, "quotas": (6, 5)},
    "rural-1op": {**_CITY, "p": 11, "ops": 1, "window": _RURAL},
    "rural2-4op": {**_CITY, "p": 11, "ops": 4, "window": _RURAL2, "quotas": (6, 5)},
    "mid-4op": {**_CITY, "p": 55, "ops": 4, "window": _MID, "quotas": (30, 25)},
}
WINDOWS = ["rural-1op", "rural-4op", "rural2-4op", "mid-4op"]
"""Sparse windows of ``cantho-scale`` (``--loose-side``), ``p`` about the window's share of
the city's population times 614."""
QUICK = ["clustered-2000x500", "clustered-5000x1000"]
SHARES = [0.50, 0.22, 0.23, 0.05]


# --------------------------------------------------------------------------- instances


def clustered(n: int, m: int, n_locked: int, seed: int) -> tuple[np.ndarray, ...]:
    """Clustered demand in a 20 x 20 km square; candidates and locked sites near demand."""
    rng = np.random.default_rng(seed)
    k = 12
    cores = rng.uniform(2000, 18000, (k, 2))
    spread = rng.uniform(600, 2500, k)
    lab = rng.integers(0, k, n)
    dxy = cores[lab] + rng.normal(0, 1, (n, 2)) * spread[lab, None]
    rural = rng.random(n) < 0.3
    dxy[rural] = rng.uniform(0, 20000, (int(rural.sum()), 2))
    pop = np.round(rng.gamma(2.0, 60.0, n) * np.where(rural, 0.4, 1.0), 1)
    cidx = rng.choice(n, m, replace=False)
    cxy = dxy[cidx] + rng.normal(0, 200, (m, 2))
    lidx = rng.choice(n, n_locked, replace=False, p=pop / pop.sum())
    lxy = dxy[lidx] + rng.normal(0, 150, (n_locked, 2))
    return dxy, pop, cxy, lxy


def city(n_locked: int, seed: int, cell: float = 100.0) -> tuple[np.ndarray, ...]:
    """A Cần Thơ-sized synthetic city: cells of ``cell`` m (144,000 of 100 m), 10,240 grid
    candidates."""
    rng = np.random.default_rng(seed)
    w, h = 48000.0, 30000.0
    gx, gy = np.meshgrid(
        np.arange(w / cell) * cell + cell / 2, np.arange(h / cell) * cell + cell / 2
    )
    dxy = np.column_stack([gx.ravel(), gy.ravel()])
    cores = rng.uniform([0.2 * w, 0.2 * h], [0.8 * w, 0.8 * h], (6, 2))
    cores[0] = [0.75 * w, 0.6 * h]
    sig = rng.uniform(1500, 4000, 6)
    sig[0] = 5000
    amp = rng.uniform(3000, 9000, 6)
    amp[0] = 25000
    dens = np.full(len(dxy), 150.0)
    for c, s, a in zip(cores, sig, amp, strict=True):
        dens += a * np.exp(-((dxy - c) ** 2).sum(1) / (2 * s * s))
    for _ in range(5):  # river ribbons
        y0, sl = rng.uniform(0, h), rng.uniform(-0.4, 0.4)
        dist = np.abs(dxy[:, 1] - (y0 + sl * (dxy[:, 0] - w / 2))) / np.sqrt(1 + sl * sl)
        dens += 1200 * np.exp(-dist / 400)
    dens *= rng.lognormal(0, 0.5, len(dxy))
    pop = dens / dens.sum() * 1_250_000.0
    s = np.sqrt(w * h / 10240)
    cx, cy = np.meshgrid(np.arange(s / 2, w, s), np.arange(s / 2, h, s))
    cxy = np.column_stack([cx.ravel(), cy.ravel()])
    lidx = rng.choice(len(dxy), n_locked, replace=False, p=pop / pop.sum())
    lxy = dxy[lidx] + rng.normal(0, 100, (n_locked, 2))
    return dxy, pop, cxy, lxy


def make(name: str) -> tuple[np.ndarray, ...]:
    spec = INSTANCES[name]
    if spec["kind"] == "clustered":
        return clustered(spec["n"], spec["m"], spec["locked"], spec["seed"])
    pts = city(spec["locked"], spec["seed"], spec.get("cell", 100.0))
    if "window" not in spec:
        return pts
    x0, x1, y0, y1 = spec["window"]
    inside = [
        (xy[:, 0] >= x0) & (xy[:, 0] < x1) & (xy[:, 1] >= y0) & (xy[:, 1] < y1)
        for xy in (pts[0], pts[2], pts[3])
    ]
    return pts[0][inside[0]], pts[1][inside[0]], pts[2][inside[1]], pts[3][inside[2]]


# --------------------------------------------------------------------------- runs


def _peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024.0


def demo_problem() -> Any:
    """The reduced siting model of the demo plan (``cantho-2020``), built by its stages."""
    from towerplan.plan import PlanState, run_stage
    from towerplan.scenario import load_scenario
    from towerplan.siting import planner

    state = PlanState(load_scenario("cantho-2020"))
    for stage in ("load_inputs", "demand_grid", "coverage_before", "candidates"):
        state = run_stage(stage, state)
    sc = state.scenario.sites
    cands = state._need("candidates").candidates
    spec = planner._siting_spec(
        cands,
        operators=state.scenario.market_shares,
        n_dedicated=sc.new_dedicated,
        n_shared=sc.new_shared,
        radius_m="radius_m",
        max_tenants=sc.max_tenants,
        min_spacing_m=sc.min_new_site_spacing_m,
    )
    return planner._siting_model(state.demand.points, state.existing, cands, spec).prob


def build_instance(name: str) -> Any:
    """The reduced MCLP of instance ``name``.

    The coverage is built and reduced block by block (``coverage_blocks`` +
    ``build_problem_blocks``: the full demand x candidate matrix is never held; the same
    problem as ``build_problem(coverage_matrix(...))``).
    """
    from towerplan.coverage import coverage_blocks, coverage_matrix, covered_mask
    from towerplan.siting import _model

    spec = INSTANCES[name]
    if spec["kind"] == "demo":
        return demo_problem()
    dxy, pop, cxy, lxy = make(name)
    r, p = spec["r"], spec["p"]
    n_ops = spec.get("ops", 1)
    if n_ops == 1:
        before = covered_mask(dxy, lxy, r)[:, None]
        W = pop[:, None]
        n_ded, n_sh, cap = p, 0, 1
    else:
        rng = np.random.default_rng(spec["seed"] + 100)
        host = rng.choice(n_ops, len(lxy), p=SHARES)
        A_l = coverage_matrix(dxy, lxy, r).tocsc()
        before = np.zeros((len(dxy), n_ops), bool)
        guest = np.where(rng.random(len(lxy)) < 0.2, rng.integers(0, n_ops, len(lxy)), -1)
        for o in range(n_ops):
            cols = np.flatnonzero((host == o) | (guest == o))
            before[:, o] = np.asarray(A_l[:, cols].getnnz(axis=1) > 0)
        W = pop[:, None] * np.array(SHARES)[None, :]
        n_ded, n_sh = spec.get("quotas", (338, 276))
        cap = 3
    blocks = coverage_blocks(dxy, cxy, r)
    offset = float((W * before).sum())
    return _model.build_problem_blocks(
        blocks, W * ~before, len(cxy), quotas=(n_ded, n_sh), cap=cap, offset=offset
    )


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (the forked zone bound)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime + kids.ru_utime + kids.ru_stime


def _timed_solve(prob: Any, settings: Any, prefix: str) -> tuple[Any, dict[str, Any]]:
    """Solve, check and describe one run (``prefix``-ed keys; MILP assembly is build time)."""
    from towerplan.siting import _mclp

    t0, c0 = time.perf_counter(), _cpu_s()
    sol = _mclp.solve(prob, settings)
    solve, cpu = time.perf_counter() - t0, _cpu_s() - c0
    _mclp.check_solution(prob, sol)
    if abs(_mclp.evaluate(prob, sol) - sol.objective) > 1e-6 * max(1.0, sol.objective):
        raise AssertionError("reported objective differs from the recount")
    milp_build = float(sol.log.get("milp_build_s", 0.0))
    return sol, {
        f"{prefix}_milp_build_s": round(milp_build, 3),
        f"{prefix}_solve_s": round(solve - milp_build, 3),
        f"{prefix}_solve_cpu_s": round(cpu, 2),
        f"{prefix}_objective": sol.objective,
        f"{prefix}_upper_bound": sol.upper_bound,
        f"{prefix}_gap": sol.gap,
        f"{prefix}_solver": sol.method,
        f"{prefix}_stopped_by": sol.stopped_by,
        f"{prefix}_hash": _solution_hash(sol),
        f"{prefix}_lns_wall_s": round(float(sol.log.get("wall_lns_s", 0.0)), 2),
        f"{prefix}_lns_cpu_s": round(float(sol.log.get("cpu_lns_s", 0.0)), 2),
        f"{prefix}_work": {
            k: v for k, v in sol.log.items() if not k.endswith("_s") and isinstance(v, int)
        },
    }


def run_towerplan(name: str, time_limit: float, work_limit: float, benders: bool, q: Any) -> None:
    from towerplan.siting import _mclp

    spec = INSTANCES[name]
    t0, c0 = time.perf_counter(), _cpu_s()
    prob = build_instance(name)
    build, build_cpu = time.perf_counter() - t0, _cpu_s() - c0
    build_peak = _peak_mb()
    t1 = time.perf_counter()
    quick = _mclp.local_search(prob, _mclp.greedy(prob), seed=0)
    quick_s = time.perf_counter() - t1
    small = spec["kind"] == "clustered"
    solver = "exact" if small else "auto"
    gap = 0.0 if small else 1e-3
    nodes = 1_000_000 if small else 2000
    kw = dict(mip_gap=gap, work_limit=work_limit, time_limit_s=time_limit)
    c1 = _cpu_s()
    ex, row = _timed_solve(prob, _mclp.SolveSettings(solver, max_nodes=nodes, **kw), "towerplan")
    row["towerplan_solve_cpu_s"] = round(_cpu_s() - c1, 1)
    row["towerplan_solve_peak_rss_mb"] = round(_peak_mb(), 1)
    if benders and spec.get("benders", True):
        bd, brow = _timed_solve(
            prob,
            _mclp.SolveSettings("benders", max_nodes=nodes if small else 2000, **kw),
            "benders",
        )
        row.update(brow)
        row["benders_vs_current_objective"] = (bd.objective - ex.objective) / ex.objective
    else:
        row["benders_skipped"] = "--no-benders" if not benders else "not run at this size"
    row["towerplan_build_s"] = round(build + row.pop("towerplan_milp_build_s"), 3)
    row.update(
        {
            "load_during": os.getloadavg()[0],
            "towerplan_build_cpu_s": round(build_cpu, 1),
            "towerplan_build_peak_rss_mb": round(build_peak, 1),
            "towerplan_safety_time_limit_s": time_limit,
            "towerplan_work_limit": work_limit,
            "greedy_swap_s": round(quick_s, 3),
            "greedy_swap_objective": quick.objective,
            "greedy_swap_vs_exact": (ex.objective - quick.objective) / ex.objective,
            "rows_with_weight": prob.info["rows_with_weight"],
            "reduced_rows": prob.info["rows_after_merge"],
            "reduced_nnz": prob.info["nnz"],
            "singleton_rows_folded": prob.info["rows_singleton_folded"],
            "peak_rss_mb": round(_peak_mb(), 1),
        }
    )
    q.put(row)


def run_bounds(
    name: str, time_limit: float, work_limit: float, lp_iters: int, milp_nodes: int, q: Any
) -> None:
    """Which side of the gap is loose: incumbents and bounds of one instance, side by side.

    ``auto`` with the former method and with the current default: one operator, the
    former plain-subgradient Lagrangian (``lagrangian_averaging=1``); several operators,
    the former method without dedicated/shared type swaps and spacing multipliers
    (``multi_operator_moves=False``).  Then the LP bound: from the duals of a capped
    interior-point run (one operator), or the pattern formulation's LP solved by HiGHS
    (several operators); and, with ``milp_nodes``, HiGHS's MILP from the better incumbent
    (the optimum when it closes the gap).
    """
    from towerplan.siting import _bounds, _exact, _mclp
    from towerplan.siting._highs import WorkLimits, solve_model

    prob = build_instance(name)
    kw: dict[str, Any] = dict(work_limit=work_limit, time_limit_s=time_limit)
    row: dict[str, Any] = {"load_start": os.getloadavg()[0]}
    former = {"lagrangian_averaging": 1.0} if prob.n_ops == 1 else {"multi_operator_moves": False}
    row["former_settings"] = former
    old, r = _timed_solve(
        dataclasses.replace(prob, info=dict(prob.info)),
        _mclp.SolveSettings("auto", **former, **kw),
        "former",
    )
    row.update(r, former_lagrangian_bound=old.log.get("lagrangian_bound"))
    new, r = _timed_solve(prob, _mclp.SolveSettings("auto", **kw), "auto")
    row.update(r, auto_lagrangian_bound=new.log.get("lagrangian_bound"))
    best = max(old, new, key=lambda s: s.objective)
    if lp_iters > 0 and prob.n_ops == 1:
        t0 = time.perf_counter()
        lp, info = _bounds.lp_dual_bound(prob, lp_iters)
        row.update(info)
        row.update(lp_dual_bound=lp, lp_s=round(time.perf_counter() - t0, 3))
    elif lp_iters > 0:
        t0 = time.perf_counter()
        model, _ = _exact._model_arrays(prob, _exact._milp_columns(prob))
        res = solve_model(model, WorkLimits(time_limit_s=time_limit), relax=True)
        row.update(
            pattern_lp_bound=res.objective,
            pattern_lp_status=res.status,
            pattern_lp_nnz=model.nnz,
            lp_s=round(time.perf_counter() - t0, 3),
        )
    if milp_nodes > 0:
        t0 = time.perf_counter()
        lim = WorkLimits(max_nodes=milp_nodes, mip_gap=1e-6, time_limit_s=time_limit)
        ex = _mclp.solve_milp(prob, lim, start=best)
        row.update(
            milp_objective=ex.objective,
            milp_bound=ex.upper_bound,
            milp_nodes=ex.log.get("milp_nodes"),
            milp_status=ex.log.get("milp_status"),
            milp_time_limited=ex.time_limited,
            milp_s=round(time.perf_counter() - t0, 3),
        )
    row["load_end"] = os.getloadavg()[0]
    row["peak_rss_mb"] = round(_peak_mb(), 1)
    q.put(row)


def run_loose_side(name: str, time_limit: float, milp_nodes: int, q: Any) -> None:
    """Which side of the gap is loose on a window HiGHS can close: the heuristic solver
    (the path ``auto`` takes at city scale: greedy, swaps, Lagrangian bound, LNS; no MILP)
    and HiGHS's MILP warm-started from it (``milp_nodes`` nodes, ``time_limit`` s)."""
    from towerplan.siting import _mclp
    from towerplan.siting._highs import WorkLimits

    prob = build_instance(name)
    row: dict[str, Any] = {"load_start": os.getloadavg()[0]}
    heur, r = _timed_solve(prob, _mclp.SolveSettings("heuristic", mip_gap=1e-3), "heuristic")
    row.update(r)
    t0 = time.perf_counter()
    lim = WorkLimits(max_nodes=milp_nodes, mip_gap=1e-6, time_limit_s=time_limit)
    ex = _mclp.solve_milp(prob, lim, start=heur)
    best, proof = max(ex.objective, heur.objective), min(ex.upper_bound, heur.upper_bound)
    row.update(
        milp_objective=ex.objective,
        milp_bound=ex.upper_bound,
        milp_nodes=ex.log.get("milp_nodes"),
        milp_time_limited=ex.time_limited,
        milp_s=round(time.perf_counter() - t0, 1),
        heuristic_below_best=(best - heur.objective) / best,
        lagrangian_above_milp_bound=(heur.upper_bound - proof) / proof,
        load_end=os.getloadavg()[0],
    )
    q.put(row)


def run_primal(
    name: str,
    time_limit: float,
    work_limit: float,
    mip_gap: float,
    former: str,
    mzone_checkpoints: int,
    q: Any,
) -> None:
    """``auto`` with one feature off (``former``: ``paired_lns`` = the former LNS,
    ``zone_bound`` = the defaults before the zone bound: no zone bound and
    ``LNS_PAIR_SUBPROBLEMS`` paired windows for one operator too, ``type_flex`` = no
    type-flexible windows or dedicated/shared chains, ``count_flex`` = fixed-count
    single-operator windows and the zone bound computed after the LNS, not beside it) and the current ``auto``, side by
    side in one process; ``multiop_count_flex`` / ``regional_exchange`` (off by default):
    the current ``auto`` as the former and ``auto`` with that flag on; ``threads``: the
    LNS windows one after another (``threads=1``) and speculatively two at a time (the
    default), which must give the same hash and work counters."""
    from towerplan.siting import _mclp, _zones

    prob = build_instance(name)
    kw = dict(work_limit=work_limit, time_limit_s=time_limit, mip_gap=mip_gap)
    row: dict[str, Any] = {"load_start": os.getloadavg()[0], "mip_gap": mip_gap, "former": former}
    pairs = _mclp.LNS_PAIR_SUBPROBLEMS_ONE_OP
    if former == "zone_bound":
        _mclp.LNS_PAIR_SUBPROBLEMS_ONE_OP = _mclp.LNS_PAIR_SUBPROBLEMS
    _zones.ZONE_FORK = former != "count_flex"  # former: the zone bound after the LNS
    opt_in = former in ("multiop_count_flex", "regional_exchange")
    off: dict[str, Any] = {} if opt_in else {former: 1 if former == "threads" else False}
    _, r = _timed_solve(prob, _mclp.SolveSettings("auto", **off, **kw), "former")
    _mclp.LNS_PAIR_SUBPROBLEMS_ONE_OP = pairs
    _zones.ZONE_FORK = True
    row.update(r, load_mid=os.getloadavg()[0])
    on = {former: True} if opt_in else {}
    sol, r = _timed_solve(prob, _mclp.SolveSettings("auto", **on, **kw), "auto")
    row.update(r, load_end=os.getloadavg()[0], peak_rss_mb=round(_peak_mb(), 1))
    if mzone_checkpoints and prob.n_ops > 1:
        row.update(_multiop_zones(prob, sol, mzone_checkpoints))
    q.put(row)


def _multiop_zones(prob: Any, sol: Any, checkpoints: int) -> dict[str, Any]:
    """The multi-operator zone bound at the final Lagrangian multipliers (256-candidate
    zones, ``checkpoints`` HiGHS work checkpoints a zone): how much of the gap is the
    relaxation's integrality gap inside zones."""
    from towerplan.siting._heuristics import _adjacency
    from towerplan.siting._mzones import multiop_zone_bound
    from towerplan.siting._zones import candidate_zones

    lam, nu = prob.info["_multipliers"]
    label = candidate_zones(_adjacency(prob), 256)
    c0 = _cpu_s()
    ub, info = multiop_zone_bound(
        prob,
        lam,
        nu,
        label=label,
        pairs=prob.info["_conflict_multipliers"],
        checkpoints=checkpoints,
    )
    out = {k: v for k, v in info.items() if k != "mzone_s"}
    out.update(mzone_cpu_s=round(_cpu_s() - c0, 1), mzone_gap=(ub - sol.objective) / ub)
    return out


def _solution_hash(sol: Any) -> str:
    import hashlib

    order = np.argsort(sol.sites)
    blob = sol.sites[order].tobytes() + sol.tenants[order].tobytes() + sol.shared[order].tobytes()
    return hashlib.sha256(blob).hexdigest()[:16]


def run_determinism(name: str, work_limit: float, solver: str, q: Any) -> None:
    """The same instance solved twice, the second time beside 2 CPU-burning processes."""
    import subprocess

    from towerplan.coverage import coverage_matrix
    from towerplan.siting import _mclp

    spec = INSTANCES[name]
    dxy, pop, cxy, _ = make(name)
    A = coverage_matrix(dxy, cxy, spec["r"])
    settings = _mclp.SolveSettings(solver, work_limit=work_limit)
    out: dict[str, Any] = {"determinism_instance": name, "solver": solver}
    for label, burn in (("quiet", False), ("loaded", True)):
        procs = []
        if burn:
            code = "import time\nt = time.time() + 900\nwhile time.time() < t:\n    pass\n"
            procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(2)]
        try:
            prob = _mclp.build_problem(A, pop[:, None], spec["p"], 0, 1, None, 0.0)
            t0 = time.perf_counter()
            sol = _mclp.solve(prob, settings)
            out[f"{label}_s"] = round(time.perf_counter() - t0, 2)
            out[f"{label}_load"] = os.getloadavg()[0]
        finally:
            for pr in procs:
                pr.kill()
                pr.wait()
        out[f"{label}_hash"] = _solution_hash(sol)
        out[f"{label}_objective"] = sol.objective
        out[f"{label}_stopped_by"] = sol.stopped_by
    out["identical"] = out["quiet_hash"] == out["loaded_hash"]
    q.put(out)


def run_build(name: str, mode: str, q: Any) -> None:
    """Build one single-operator instance's problem the ``whole`` way (``coverage_matrix`` +
    ``build_problem``) or by ``blocks`` (``coverage_blocks`` + ``build_problem_blocks``)."""
    import hashlib

    from towerplan.coverage import coverage_blocks, coverage_matrix, covered_mask
    from towerplan.siting import _model

    spec = INSTANCES[name]
    dxy, pop, cxy, lxy = make(name)
    rss0 = _peak_mb()
    t0, c0 = time.perf_counter(), _cpu_s()
    before = covered_mask(dxy, lxy, spec["r"])
    W, offset = (pop * ~before)[:, None], float(pop[before].sum())
    if mode == "whole":
        A = coverage_matrix(dxy, cxy, spec["r"])
        prob = _model.build_problem(A, W, spec["p"], 0, 1, None, offset)
    else:
        blocks = coverage_blocks(dxy, cxy, spec["r"])
        prob = _model.build_problem_blocks(
            blocks, W, len(cxy), quotas=(spec["p"], 0), cap=1, offset=offset
        )
    blob = b"".join(a.tobytes() for a in (prob.A.indptr, prob.A.indices, prob.W, prob.C))
    q.put(
        {
            f"{mode}_build_s": round(time.perf_counter() - t0, 2),
            f"{mode}_build_cpu_s": round(_cpu_s() - c0, 2),
            f"{mode}_rss_before_build_mb": round(rss0, 1),
            f"{mode}_peak_rss_mb": round(_peak_mb(), 1),
            f"{mode}_problem_hash": hashlib.sha256(blob).hexdigest()[:16],
            f"{mode}_rows_after_merge": prob.n_rows,
        }
    )


def run_spopt(name: str, q: Any) -> None:
    import pulp
    from spopt.locate import MCLP

    spec = INSTANCES[name]
    dxy, pop, cxy, lxy = make(name)
    fxy = np.vstack([lxy, cxy])
    t0 = time.perf_counter()
    cost = np.hypot(dxy[:, None, 0] - fxy[None, :, 0], dxy[:, None, 1] - fxy[None, :, 1])
    pre = np.zeros(len(fxy), dtype=int)
    pre[: len(lxy)] = 1
    model = MCLP.from_cost_matrix(
        cost, pop, spec["r"], p_facilities=spec["p"] + len(lxy), predefined_facilities_arr=pre
    )
    build = time.perf_counter() - t0
    out: dict[str, Any] = {"spopt_build_s": round(build, 3)}
    for key, solver in (
        ("", pulp.HiGHS(msg=False, gapRel=0.0, timeLimit=600)),
        ("_cbc", pulp.PULP_CBC_CMD(msg=False, gapRel=0.0, timeLimit=600)),
    ):
        t1 = time.perf_counter()
        model.solve(solver)
        out[f"spopt{key}_solve_s"] = round(time.perf_counter() - t1, 3)
        out[f"spopt{key}_objective"] = float(pulp.value(model.problem.objective))
        out[f"spopt{key}_status"] = pulp.LpStatus[model.problem.status]
    out["spopt_peak_rss_mb"] = round(_peak_mb(), 1)
    q.put(out)


def _in_child(target: Any, *args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, q))
    proc.start()
    try:
        res = q.get(timeout=3600)
    except Exception as exc:
        res = {"error": repr(exc)}
    proc.join()
    if proc.exitcode not in (0, None) and "error" not in res:
        res["error"] = f"child exited with {proc.exitcode}"
    return res


def spopt_fits(name: str) -> tuple[bool, str]:
    spec = INSTANCES[name]
    if spec["kind"] == "demo":
        return False, "the demo's model has 4 operators, tenancy and minimum spacing"
    if spec.get("ops", 1) != 1:
        return (
            False,
            "spopt's MCLP has no operators/tenancy: multi-operator instance is towerplan-only",
        )
    n = spec.get("n", round(48000 * 30000 / spec.get("cell", 100.0) ** 2))
    m = spec.get("m", 10240) + spec["locked"]
    dense_gb = n * m * 8 * 2 / 1e9  # cost matrix + aij, float64
    terms = n * m
    if dense_gb > 4.0 or terms > 2e8:
        return False, (
            f"skipped: spopt builds a dense {n:,} x {m:,} cost matrix and aij ({dense_gb:.0f} GB) "
            f"and a PuLP model with {terms:,} constraint terms; it cannot fit in this machine's "
            "memory (and the 4 GB target)"
        )
    return True, ""


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, Any]:
    import scipy

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "scipy": scipy.__version__,
        "highspy": _version("highspy"),
        "pyscipopt": _version("pyscipopt"),
    }
    try:
        import psutil

        info["ram_gb"] = round(psutil.virtual_memory().total / 1e9, 1)
    except ImportError:  # pragma: no cover
        pass
    info["spopt"] = _version("spopt")
    info["pulp"] = _version("pulp")
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--quick", action="store_true", help="only the two small instances")
    ap.add_argument("--time-limit", type=float, default=3600.0, help="towerplan safety stop (s)")
    ap.add_argument(
        "--work-limit", type=float, default=1.0, help="towerplan deterministic work multiplier"
    )
    ap.add_argument("--no-spopt", action="store_true", help="skip spopt")
    ap.add_argument("--no-benders", action="store_true", help="skip the benders rows")
    ap.add_argument("--only", nargs="*", help="run only these instances")
    ap.add_argument(
        "--determinism",
        default=None,
        help="also solve this instance twice, the second time beside 2 CPU burners",
    )
    ap.add_argument("--det-solver", default="benders", help="solver of the determinism row")
    ap.add_argument(
        "--bounds",
        action="store_true",
        help="instead of the spopt/benders rows: incumbents and bounds side by side "
        "(former and current auto, LP dual bound, optionally the MILP optimum)",
    )
    ap.add_argument(
        "--primal",
        action="store_true",
        help="instead of the spopt/benders rows: former vs current LNS in auto, side by side",
    )
    ap.add_argument(
        "--zones",
        action="store_true",
        help="instead of the spopt/benders rows: auto before the zone bound (and with 40 "
        "paired windows) and now, side by side",
    )
    ap.add_argument(
        "--multiop",
        action="store_true",
        help="instead of the spopt/benders rows: auto without and with the multi-operator "
        "type-flexible moves (SolveSettings.type_flex), side by side",
    )
    ap.add_argument(
        "--countflex",
        action="store_true",
        help="instead of the spopt/benders rows: auto without the single-operator "
        "count-flexible LNS windows (SolveSettings.count_flex) and the zone bound beside "
        "the LNS, and with both, side by side",
    )
    ap.add_argument(
        "--exchange",
        action="store_true",
        help="instead of the spopt/benders rows: auto (former) and auto with the "
        "single-operator regional exchanges (SolveSettings.regional_exchange), side by side "
        "(they run only while the gap exceeds --mip-gap)",
    )
    ap.add_argument(
        "--multiop-countflex",
        action="store_true",
        help="instead of the spopt/benders rows: auto (former) and auto with the "
        "count-flexible multi-operator windows (SolveSettings.multiop_count_flex), side by side",
    )
    ap.add_argument(
        "--mexchange",
        action="store_true",
        help="instead of the spopt/benders rows: auto (former) and auto with the "
        "multi-operator regional exchange moves (SolveSettings.regional_exchange), side by side",
    )
    ap.add_argument(
        "--loose-side",
        action="store_true",
        help="instead of the spopt/benders rows: the heuristic solver, then HiGHS's MILP "
        "from it (--milp-nodes, --time-limit), on the windows of WINDOWS (or --only): how far "
        "the incumbent and the Lagrangian bound each are from the optimum",
    )
    ap.add_argument(
        "--threads",
        action="store_true",
        help="instead of the spopt/benders rows: auto with the LNS windows solved one after "
        "another (SolveSettings.threads=1) and speculatively two at a time (the default), "
        "side by side (the same hash and work counters expected)",
    )
    ap.add_argument(
        "--mzone-checkpoints",
        type=int,
        default=0,
        help="with --multiop/--multiop-countflex: also the multi-operator zone bound at the "
        "final multipliers, this many HiGHS checkpoints a zone (0 = not computed)",
    )
    ap.add_argument("--mip-gap", type=float, default=1e-3, help="auto's mip_gap (--primal)")
    ap.add_argument("--lp-iterations", type=int, default=100, help="IPM iterations (--bounds)")
    ap.add_argument("--milp-nodes", type=int, default=0, help="MILP nodes (--bounds; 0 = none)")
    ap.add_argument(
        "--build-compare",
        action="store_true",
        help="instead of solving: build each (single-operator) instance the whole-matrix way "
        "and block by block, each in its own process (time, CPU, peak RSS, same problem?)",
    )
    args = ap.parse_args(argv)
    everything = [n for n in INSTANCES if n not in WINDOWS]
    names = args.only if args.only is not None else (QUICK if args.quick else everything)
    rows = []
    if args.determinism:
        print(f"[{args.determinism}] determinism ...", file=sys.stderr, flush=True)
        det = _in_child(run_determinism, args.determinism, args.work_limit, args.det_solver)
        rows.append({"instance": f"determinism: {args.determinism}", **det})
        print(json.dumps(det, indent=1), file=sys.stderr, flush=True)
    for name in names if args.bounds else []:
        print(f"[{name}] bounds ...", file=sys.stderr, flush=True)
        b = _in_child(
            run_bounds, name, args.time_limit, args.work_limit, args.lp_iterations, args.milp_nodes
        )
        rows.append({"instance": name, "mode": "bounds", **b})
        print(json.dumps(rows[-1], indent=1), file=sys.stderr, flush=True)
    for name in (args.only or WINDOWS) if args.loose_side else []:
        print(f"[{name}] loose side ...", file=sys.stderr, flush=True)
        ls = _in_child(run_loose_side, name, args.time_limit, args.milp_nodes or 100_000)
        rows.append({"instance": name, "mode": "loose-side", **ls})
        print(json.dumps(rows[-1], indent=1), file=sys.stderr, flush=True)
    for name in names if args.build_compare else []:
        row = {"instance": name, "mode": "build-compare", "load_before": os.getloadavg()[0]}
        for mode in ("whole", "blocks"):
            row.update(_in_child(run_build, name, mode))
        row["same_problem"] = row.get("whole_problem_hash") == row.get("blocks_problem_hash")
        row["load_after"] = os.getloadavg()[0]
        rows.append(row)
        print(json.dumps(row, indent=1), file=sys.stderr, flush=True)
    compare = [("primal", "paired_lns")] if args.primal else []
    compare += [("zones", "zone_bound")] if args.zones else []
    compare += [("multiop", "type_flex")] if args.multiop else []
    compare += [("countflex", "count_flex")] if args.countflex else []
    compare += [("multiop-countflex", "multiop_count_flex")] if args.multiop_countflex else []
    compare += [("exchange", "regional_exchange")] if args.exchange else []
    compare += [("mexchange", "regional_exchange")] if args.mexchange else []
    compare += [("threads", "threads")] if args.threads else []
    for mode, feature in compare:
        for name in names:
            print(f"[{name}] {mode} ...", file=sys.stderr, flush=True)
            pr = _in_child(
                run_primal,
                name,
                args.time_limit,
                args.work_limit,
                args.mip_gap,
                feature,
                args.mzone_checkpoints,
            )
            rows.append({"instance": name, "mode": mode, **pr})
            print(json.dumps(rows[-1], indent=1), file=sys.stderr, flush=True)
    skip = args.bounds or args.build_compare or args.loose_side or compare
    for name in [] if skip else names:
        spec = INSTANCES[name]
        row: dict[str, Any] = {"instance": name, "p": spec["p"], "operators": spec.get("ops", 1)}
        if spec["kind"] != "demo":
            dxy, _, cxy, lxy = make(name)
            row.update(
                n_demand=len(dxy), n_candidates=len(cxy), locked=len(lxy), radius_m=spec["r"]
            )
        row["load_before"] = os.getloadavg()[0]
        print(f"[{name}] towerplan ...", file=sys.stderr, flush=True)
        row.update(
            _in_child(run_towerplan, name, args.time_limit, args.work_limit, not args.no_benders)
        )
        fits, why = spopt_fits(name)
        if args.no_spopt:
            row["spopt_skipped"] = "--no-spopt"
        elif fits:
            print(f"[{name}] spopt ...", file=sys.stderr, flush=True)
            row.update(_in_child(run_spopt, name))
            if "spopt_objective" in row and "towerplan_objective" in row:
                row["objectives_equal"] = bool(
                    abs(row["spopt_objective"] - row["towerplan_objective"])
                    <= 1e-6 * max(1.0, abs(row["spopt_objective"]))
                )
                row["build_speedup"] = round(
                    row["spopt_build_s"] / max(row["towerplan_build_s"], 1e-9), 1
                )
        else:
            row["spopt_skipped"] = why
        row["load_after"] = os.getloadavg()[0]
        rows.append(row)
        print(json.dumps(row, indent=1), file=sys.stderr, flush=True)
    out = {"machine": machine(), "rows": rows}
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(out, fh, indent=2)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
