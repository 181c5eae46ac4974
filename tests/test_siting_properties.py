"""Invariants of the siting model and solvers (hypothesis, small instances)."""

from __future__ import annotations

import contextlib
import itertools

import geopandas as gpd
import numpy as np
import pytest
import scipy.sparse as sp
from conftest import random_multiop_mclp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from towerplan import siting
from towerplan.coverage import operator_coverage, points_xy
from towerplan.errors import InfeasibleModelError, ParameterError
from towerplan.siting import _bounds as bounds
from towerplan.siting import _mclp
from towerplan.siting._benders import BendersLimits, dominated_candidates, solve_benders
from towerplan.siting._highs import WorkLimits

EXACT = WorkLimits(mip_gap=0.0)
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def instances(draw: st.DrawFn) -> dict:
    seed = draw(st.integers(0, 10_000))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(4, 14))
    m = draw(st.integers(2, 5))
    n_op = draw(st.integers(1, 3))
    A = rng.random((n, m)) < draw(st.sampled_from([0.2, 0.35, 0.5]))
    W = rng.integers(0, 9, (n, n_op)).astype(float)
    W[rng.random((n, n_op)) < 0.2] = 0.0  # some cells already covered for some operator
    cap = rng.integers(1, 4, m)
    n_sh = draw(st.integers(0, 1)) if n_op >= 2 else 0
    n_sh = min(n_sh, int((cap >= 2).sum()))
    n_ded = draw(st.integers(0, m - n_sh))
    conf = None
    if draw(st.booleans()) and m >= 3:
        conf = sp.csr_matrix(([True, True], ([0, 1], [1, 0])), shape=(m, m))
    return {"A": A, "W": W, "cap": cap, "n_ded": n_ded, "n_sh": n_sh, "conf": conf, "offset": 5.0}


def _brute(inst: dict) -> float:
    """Oracle: the best of every assignment of a tenant pattern (set of operators, maybe
    none) to each candidate, enumerated as one array (at most 8^5 rows)."""
    A, W, cap = inst["A"], inst["W"], inst["cap"]
    n_op = W.shape[1]
    pats: list[tuple[int, ...]] = [()]
    for k in range(1, n_op + 1):
        pats.extend(itertools.combinations(range(n_op), k))
    member = np.zeros((len(pats), n_op), dtype=np.int64)
    for i, pat in enumerate(pats):
        member[i, list(pat)] = 1
    choice = np.array(list(itertools.product(range(len(pats)), repeat=A.shape[1])), np.int64)
    choice = choice.reshape(-1, A.shape[1])
    sizes = member.sum(axis=1)[choice]
    ok = ((sizes == 1).sum(axis=1) == inst["n_ded"]) & ((sizes >= 2).sum(axis=1) == inst["n_sh"])
    ok &= ~(sizes > cap).any(axis=1)
    for a, b in _pairs(inst):
        ok &= ~((sizes[:, a] > 0) & (sizes[:, b] > 0))
    if not ok.any():
        return -np.inf
    # cov[k, i, o]: some open candidate j of choice k covers cell i and hosts operator o
    cov = np.einsum("ij,kjo->kio", A.astype(np.int64), member[choice[ok]]) > 0
    return float((W[None] * cov).sum(axis=(1, 2)).max()) + inst["offset"]


def _pairs(inst: dict) -> list[tuple[int, int]]:
    """The minimum-spacing pairs of an instance."""
    if inst["conf"] is None:
        return []
    tri = sp.triu(inst["conf"], k=1).tocoo()
    return list(zip(tri.row.tolist(), tri.col.tolist(), strict=True))


def _problem(inst: dict) -> _mclp.MCLPProblem:
    return _mclp.build_problem(
        sp.csr_matrix(inst["A"]),
        inst["W"],
        inst["n_ded"],
        inst["n_sh"],
        inst["cap"],
        inst["conf"],
        inst["offset"],
    )


def _feasible(inst: dict, sol: _mclp.MCLPSolution) -> None:
    nt = sol.tenants.sum(axis=1)
    assert len(set(sol.sites.tolist())) == len(sol.sites)
    assert int((~sol.shared).sum()) == inst["n_ded"]
    assert int(sol.shared.sum()) == inst["n_sh"]
    assert (nt[~sol.shared] == 1).all()
    assert (nt[sol.shared] >= 2).all()
    assert (nt <= inst["cap"][sol.sites]).all()
    opened = set(sol.sites.tolist())
    assert not any({a, b} <= opened for a, b in _pairs(inst))


def _value(inst: dict, sol: _mclp.MCLPSolution) -> float:
    cov = np.zeros(inst["W"].shape, bool)
    for j, t in zip(sol.sites, sol.tenants, strict=True):
        cov[:, t] |= inst["A"][:, [j]]
    return float((inst["W"] * cov).sum()) + inst["offset"]


def _has_solution(inst: dict) -> bool:
    return np.isfinite(_brute(inst))


@SETTINGS
@given(instances())
def test_exact_equals_brute_force_and_bounds_hold(inst: dict) -> None:
    best = _brute(inst)
    if not np.isfinite(best):
        return
    prob = _problem(inst)
    ex = _mclp.solve_milp(prob, EXACT)
    _feasible(inst, ex)
    assert _value(inst, ex) == pytest.approx(best, abs=1e-6)
    assert ex.objective == pytest.approx(best, abs=1e-6)
    try:
        heur = _mclp.solve(prob, _mclp.SolveSettings("heuristic", mip_gap=0.0))
    except Exception as exc:  # greedy may be blocked by a conflict: must say so clearly
        assert "minimum spacing" in str(exc)
        return
    _feasible(inst, heur)
    assert heur.objective == pytest.approx(_value(inst, heur), abs=1e-6)
    assert heur.objective <= best + 1e-6
    assert heur.upper_bound >= best - 1e-6  # the Lagrangian bound is valid
    assert heur.upper_bound >= heur.objective - 1e-9
    assert heur.stopped_by in ("gap", "work_limit")
    if heur.stopped_by == "gap":  # certified within mip_gap = 0: bound met
        assert heur.upper_bound - heur.objective <= 1e-9 * max(1.0, heur.upper_bound)


@SETTINGS
@given(instances(), st.integers(0, 10_000), st.integers(1, 12))
def test_any_multipliers_and_capped_lp_duals_give_valid_bounds(
    inst: dict, seed: int, ipm_iters: int
) -> None:
    """Weak duality: every ``0 <= lam <= W`` (and any ``nu``) bounds the optimum; so do the
    duals of an interior-point run cut after a few iterations (single operator)."""
    best = _brute(inst)
    if not np.isfinite(best):
        return
    prob = _problem(inst)
    rng = np.random.default_rng(seed)
    lam = rng.random(prob.W.shape) * prob.W * rng.choice([0.0, 0.5, 1.0, 1.5])
    nu = float(rng.normal(0.0, 5.0))
    assert bounds.lagrangian_value(prob, lam, nu) >= best - 1e-6
    mu = rng.random(len(_pairs(inst))) * rng.choice([0.0, 3.0, 30.0])
    assert bounds.lagrangian_value(prob, lam, nu, mu=mu) >= best - 1e-6
    ub, info = bounds.lp_dual_bound(prob, ipm_iters)
    assert ub >= best - 1e-6
    if prob.n_ops == 1 and prob.n_shared == 0 and prob.n_rows and prob.p:
        assert info["lp_ipm_iterations"] <= ipm_iters
    else:
        assert ub == np.inf


@st.composite
def multi_operator_instances(draw: st.DrawFn) -> dict:
    """2-3 operators, both structure types, random minimum-spacing pairs."""
    seed = draw(st.integers(0, 10_000))
    rng = np.random.default_rng(seed)
    n, m, n_op = draw(st.integers(4, 12)), draw(st.integers(3, 4)), draw(st.integers(2, 3))
    A = rng.random((n, m)) < draw(st.sampled_from([0.25, 0.4, 0.6]))
    W = rng.integers(0, 9, (n, n_op)).astype(float)
    W[rng.random((n, n_op)) < 0.2] = 0.0
    cap = rng.integers(2, 4, m)
    n_sh = draw(st.integers(1, 2))
    n_ded = draw(st.integers(1, m - n_sh))
    tri = np.triu(rng.random((m, m)) < draw(st.sampled_from([0.0, 0.2, 0.4])), k=1)
    conf = sp.csr_matrix(tri | tri.T) if tri.any() else None
    return {"A": A, "W": W, "cap": cap, "n_ded": n_ded, "n_sh": n_sh, "conf": conf, "offset": 1.0}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(multi_operator_instances(), st.sampled_from([1.0, 0.1]), st.integers(1, 60))
def test_multi_operator_bound_and_type_swaps(inst: dict, averaging: float, iters: int) -> None:
    """The multi-operator Lagrangian bound (covering rows, shared quota and spacing pairs
    relaxed) is >= the brute-force optimum after any number of iterations; type swaps keep
    the quotas and the tenancy, count their objective exactly and never lose value."""
    best = _brute(inst)
    if not np.isfinite(best):
        return
    prob = _problem(inst)
    for relax in (True, False):
        ub, info = bounds.lagrangian_bound(
            prob, inst["offset"], max_iter=iters, averaging=averaging, relax_conflicts=relax
        )
        assert ub >= best - 1e-6
        mu = prob.info["_conflict_multipliers"][2]
        assert len(mu) == info["lagrangian_conflict_pairs"] == (len(_pairs(inst)) * relax)
        assert (mu >= 0).all()
    try:
        start = _mclp.greedy(prob)
    except InfeasibleModelError:
        return
    out = _mclp.type_swap_search(prob, start)
    _feasible(inst, out)
    assert out.objective == pytest.approx(_value(inst, out), abs=1e-6)
    assert start.objective - 1e-9 <= out.objective <= best + 1e-6


def test_type_swaps_move_sharing_where_it_pays() -> None:
    """Greedy puts the shared structure where one operator's demand is large; the
    type swap moves sharing to the site whose other operators gain more."""
    A = np.zeros((4, 2), bool)
    A[[0, 1], 0] = True
    A[[2, 3], 1] = True
    W = np.array([[10.0, 0.0], [0.0, 1.0], [6.0, 0.0], [0.0, 6.0]])
    prob = _mclp.build_problem(sp.csr_matrix(A), W, 1, 1, 2, None, 0.0)
    start = _mclp.MCLPSolution(
        np.array([0, 1]), np.array([[True, True], [True, False]]), np.array([True, False])
    )
    start.objective = _mclp.evaluate(prob, start)
    assert start.objective == pytest.approx(17.0)
    out = _mclp.type_swap_search(prob, start)
    assert out.objective == pytest.approx(22.0)  # 10 at site 0 dedicated, 6 + 6 shared at 1
    assert out.shared.tolist() == [False, True]
    assert out.log["type_swap_moves"] == 1


@SETTINGS
@given(instances(), st.booleans())
def test_benders_equals_brute_force_and_bound_holds(inst: dict, warm: bool) -> None:
    best = _brute(inst)
    prob = _problem(inst)
    limits = BendersLimits(max_nodes=10_000, mip_gap=0.0, rows_per_block=3)
    if not np.isfinite(best):
        with pytest.raises(InfeasibleModelError):
            solve_benders(prob, limits)
        return
    start = None
    if warm:
        with contextlib.suppress(InfeasibleModelError):  # greedy blocked by a conflict
            start = _mclp.local_search(prob, _mclp.greedy(prob))
    out = solve_benders(prob, limits, start=start)
    _feasible(inst, out)
    assert out.objective == pytest.approx(_value(inst, out), abs=1e-6)
    assert out.objective == pytest.approx(best, abs=1e-6)
    assert out.upper_bound >= out.objective - 1e-9
    assert out.upper_bound == pytest.approx(best, abs=1e-4 * max(1.0, best))


@SETTINGS
@given(st.integers(0, 10_000))
def test_benders_with_dominance_equals_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = 12, 7
    A = rng.random((n, m)) < 0.35
    A[:, 1] = A[:, 0] & (rng.random(n) < 0.5)  # candidate 1 covers a subset of 0's rows
    inst = {"A": A, "W": rng.integers(1, 9, (n, 1)).astype(float), "cap": np.ones(m, int)}
    inst.update({"n_ded": 3, "n_sh": 0, "conf": None, "offset": 0.0})
    prob = _problem(inst)
    dom = dominated_candidates(prob)
    assert dom[1] or prob.C[1, 0] > 0 or not A[:, 1].any()
    out = solve_benders(prob, BendersLimits(max_nodes=10_000, mip_gap=0.0))
    assert out.objective == pytest.approx(_brute(inst), abs=1e-6)
    if (~dom).sum() >= 3:  # enough non-dominated candidates: none of the others is used
        assert not dom[out.sites].any()


@SETTINGS
@given(instances(), st.integers(0, 10_000))
def test_adding_a_candidate_never_lowers_the_optimum(inst: dict, seed: int) -> None:
    if inst["A"].shape[1] >= 5 or not _has_solution(inst):
        return
    rng = np.random.default_rng(seed)
    base = _mclp.solve_milp(_problem(inst), EXACT).objective
    more = dict(inst)
    more["A"] = np.column_stack([inst["A"], rng.random(inst["A"].shape[0]) < 0.4])
    more["cap"] = np.append(inst["cap"], rng.integers(1, 4))
    if inst["conf"] is not None:
        m = more["A"].shape[1]
        more["conf"] = sp.csr_matrix(([True, True], ([0, 1], [1, 0])), shape=(m, m))
    bigger = _mclp.solve_milp(_problem(more), EXACT).objective
    assert bigger >= base - 1e-6


def _geo(seed: int, n: int = 120) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 3000, (n, 2))
    dem = gpd.GeoDataFrame(
        {"population": rng.gamma(2.0, 30.0, n)}, geometry=gpd.points_from_xy(*xy.T), crs=32648
    )
    exy = rng.uniform(0, 3000, (3, 2))
    ex = gpd.GeoDataFrame(
        {"operators": ["A", "B", "A;B"]}, geometry=gpd.points_from_xy(*exy.T), crs=32648
    )
    cand = siting.generate_candidates(dem, 600.0)
    return dem, ex, cand


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 1000))
def test_locked_sites_stay_and_same_seed_same_solution(seed: int) -> None:
    dem, ex, cand = _geo(seed)
    ops = {"A": 0.6, "B": 0.4}
    kw = dict(operators=ops, n_dedicated=2, n_shared=2, radius_m=500.0, solver="heuristic")
    res = siting.plan_new_sites(dem, ex, cand, **kw, seed=seed)  # type: ignore[arg-type]
    again = siting.plan_new_sites(dem, ex, cand, **kw, seed=seed)  # type: ignore[arg-type]
    assert res.proposed[["cand_id", "operators", "site_type"]].equals(
        again.proposed[["cand_id", "operators", "site_type"]]
    )
    before = operator_coverage(dem, ex, list(ops), 500.0).to_numpy()
    sites = gpd.GeoDataFrame(
        {"operators": list(ex["operators"]) + list(res.proposed["operators"])},
        geometry=list(ex.geometry) + list(res.proposed.geometry),
        crs=32648,
    )
    after = operator_coverage(dem, sites, list(ops), 500.0).to_numpy()
    assert (after | ~before).all()  # everything the locked sites covered stays covered
    w = dem["population"].to_numpy()[:, None] * np.array([0.6, 0.4])[None, :]
    assert res.covered_before == pytest.approx(float((w * before).sum()))
    assert res.objective == pytest.approx(float((w * after).sum()))
    assert res.objective >= res.covered_before


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 1000))
def test_optimum_grows_with_radius(seed: int) -> None:
    dem, ex, cand = _geo(seed, 80)
    ops = {"A": 1.0}
    prev = -1.0
    prev_mask = np.zeros(len(dem), bool)
    for r in (200.0, 400.0, 700.0):
        res = siting.plan_new_sites(
            dem,
            ex,
            cand,
            operators=ops,
            n_dedicated=3,
            n_shared=0,
            radius_m=r,
            solver="exact",
            mip_gap=0.0,
        )
        assert res.objective >= prev - 1e-6
        prev = res.objective
        from towerplan.coverage import covered_mask

        mask = covered_mask(points_xy(dem, "d"), points_xy(ex, "e"), r)
        assert (mask | ~prev_mask).all()
        prev_mask = mask


@pytest.mark.parametrize("n_op", [1, 3])
def test_benders_solver_matches_exact_milp(n_op: int) -> None:
    rng = np.random.default_rng(5)
    n, m = 60, 10
    A = sp.csr_matrix(rng.random((n, m)) < 0.12)
    W = rng.gamma(2.0, 5.0, (n, n_op))
    n_sh = 2 if n_op > 1 else 0
    prob = _mclp.build_problem(A, W, 3, n_sh, 3, None, 1.0)
    best = _mclp.solve_milp(prob, EXACT).objective
    out = _mclp.solve(prob, _mclp.SolveSettings("benders", mip_gap=0.0))
    assert out.objective == pytest.approx(best, rel=1e-9)
    assert out.upper_bound >= best - 1e-6
    assert out.stopped_by == "gap"
    # aggregated blocks started from the Lagrangian multipliers: still exact
    ub, _ = _mclp.lagrangian_bound(prob, out.objective, max_iter=50)
    agg = solve_benders(
        prob,
        BendersLimits(max_nodes=10_000, mip_gap=0.0, rows_per_block=25),
        duals=prob.info["_multipliers"][0],
    )
    assert agg.objective == pytest.approx(best, rel=1e-9)
    assert best - 1e-6 <= agg.upper_bound <= ub + 1e-6


def _paired_instance(seed: int, n: int, m: int, n_op: int = 1) -> _mclp.MCLPProblem:
    rng = np.random.default_rng(seed)
    cxy = rng.uniform(0, 6000, (m, 2))
    dxy = rng.uniform(0, 6000, (n, 2))
    A = sp.csr_matrix(((dxy[:, None, :] - cxy[None, :, :]) ** 2).sum(axis=2) < 1200.0**2)
    W = rng.gamma(2.0, 20.0, (n, n_op))
    n_sh = 2 if n_op > 1 else 0
    return _mclp.build_problem(A, W, 4, n_sh, 3 if n_op > 1 else 1, None, 10.0)


@pytest.mark.parametrize(("seed", "n_op"), [(0, 1), (5, 1), (2, 3)])
def test_paired_lns_never_lowers_and_is_deterministic(seed: int, n_op: int) -> None:
    from towerplan.siting._heuristics import _lagrangian_pairs

    prob = _paired_instance(seed, 400 if n_op == 1 else 150, 50 if n_op == 1 else 24, n_op)
    start = _mclp.greedy(prob)
    _mclp.lagrangian_bound(prob, start.objective, max_iter=60)
    pairs = _lagrangian_pairs(prob, start)
    assert pairs is not None and pairs.shape[1] == 2
    is_open = np.isin(np.arange(prob.n_cand), start.sites)
    assert is_open[pairs[:, 0]].all() and not is_open[pairs[:, 1]].any()
    runs = [
        _mclp.lns(
            prob, start, max_subproblems=8, window=4, priority_seeds=pairs, light_windows=True
        )
        for _ in range(2)
    ]
    assert runs[0].objective >= start.objective - 1e-9
    assert runs[0].objective == pytest.approx(_mclp.evaluate(prob, runs[0]), rel=1e-12)
    assert sorted(runs[0].sites.tolist()) == sorted(runs[1].sites.tolist())
    assert runs[0].log["lns_subproblems"] == runs[1].log["lns_subproblems"] > 0
    _mclp.check_solution(prob, runs[0])


def test_paired_window_over_everything_equals_brute_force() -> None:
    # a tiny dense instance: a paired window freeing every structure is the whole problem
    rng = np.random.default_rng(11)
    A = rng.random((14, 7)) < 0.45
    W = rng.integers(1, 9, (14, 1)).astype(float)
    inst = {"A": A, "W": W, "cap": np.ones(7, int), "n_ded": 3, "n_sh": 0}
    inst.update(conf=None, offset=5.0)
    prob = _problem(inst)
    start = _mclp.greedy(prob)
    closed = int(np.setdiff1d(np.arange(prob.n_cand), start.sites)[0])
    out = _mclp.lns(
        prob,
        start,
        max_subproblems=1,
        window=2 * len(start.sites),
        priority_seeds=np.array([[int(start.sites[0]), closed]]),
        light_windows=True,
    )
    assert out.objective == pytest.approx(_brute(inst), rel=1e-12)


def test_light_root_window_milps_reach_the_same_optimum() -> None:
    for seed in range(3):
        prob = _paired_instance(seed, 200, 25, 1 + 2 * (seed == 2))
        start = _mclp.greedy(prob)
        full = _mclp.solve_milp(prob, WorkLimits(mip_gap=0.0), start=start)
        light = _mclp.solve_milp(prob, WorkLimits(mip_gap=0.0, light_root=True), start=start)
        assert light.objective == pytest.approx(full.objective, rel=1e-9)


def test_paired_phase_in_solve_counts_its_work() -> None:
    kw = {"mip_gap": 1e-9, "work_limit": 0.05}
    new = _mclp.solve(_paired_instance(0, 400, 50), _mclp.SolveSettings("heuristic", **kw))
    old = _mclp.solve(
        _paired_instance(0, 400, 50), _mclp.SolveSettings("heuristic", paired_lns=False, **kw)
    )
    assert new.log["lns_pair_subproblems"] > 0 and "lns_pair_subproblems" not in old.log
    assert new.upper_bound >= new.objective and old.upper_bound >= old.objective
    with pytest.raises(ParameterError):
        _mclp.SolveSettings(paired_lns=1)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="multi_operator_moves"):
        _mclp.SolveSettings(multi_operator_moves="yes")  # type: ignore[arg-type]


def _flex_instance() -> tuple[_mclp.MCLPProblem, _mclp.MCLPSolution]:
    """Two far-apart places: a dedicated structure at 0 (where sharing would pay, at the
    neighbouring candidate 2) and a shared one at 1 (where sharing is worth little)."""
    A = np.zeros((4, 3), bool)
    A[0, 0] = A[1, 2] = True  # row 0: only candidate 0; row 1: only candidate 2
    A[3, [0, 2]] = True  # a row both cover: 0 and 2 are neighbours
    A[2, 1] = True  # row 2: only candidate 1, far from both
    W = np.array([[3.0, 0.0], [4.0, 4.0], [5.0, 1.0], [0.5, 0.0]])
    prob = _mclp.build_problem(sp.csr_matrix(A), W, 1, 1, 2, None, 0.0)
    start = _mclp.MCLPSolution(
        np.array([0, 1]), np.array([[True, False], [True, True]]), np.array([False, True])
    )
    start.objective = _mclp.evaluate(prob, start)
    return prob, start


def test_flex_window_moves_a_shared_structure_into_the_window() -> None:
    from towerplan.siting._multiop import flex_window_solver, type_chain_search

    prob, start = _flex_instance()
    assert start.objective == pytest.approx(9.5)
    kw = {"max_subproblems": 1, "window": 1, "priority_seeds": np.array([0])}
    plain = _mclp.lns(prob, start, **kw)  # the window keeps its one dedicated structure
    assert plain.objective == pytest.approx(10.5)
    flex = _mclp.lns(prob, start, window_solver=flex_window_solver(prob), **kw)
    # the window becomes one shared structure at 2 (8.5); the far shared one at 1 turns
    # dedicated and keeps operator 0 (5): 13.5, the optimum
    assert flex.objective == pytest.approx(13.5)
    assert dict(zip(flex.sites.tolist(), flex.shared.tolist(), strict=True)) == {1: False, 2: True}
    assert flex.log["lns_type_moves"] == 1
    _mclp.check_solution(prob, flex)
    # the ejection chain finds the same without a MILP: the dedicated structure moves to 2
    # as a shared one and the far shared structure at 1 turns dedicated
    chain = type_chain_search(prob, start)
    assert chain.objective == pytest.approx(13.5)
    assert chain.log["type_chain_moves"] == 1
    _mclp.check_solution(prob, chain)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.sampled_from([(3, 3), (4, 2), (2, 4)]), st.booleans())
def test_type_flex_feasible_exact_never_worse(seed: int, quotas: tuple, spaced: bool) -> None:
    """Type- and count-flexible windows and type chains keep quotas, tenancy and spacing,
    count their objective exactly and never lower it; a flexible window never does worse
    than the plain window's first step (a count-flexible one than a type-flexible one);
    they repeat themselves."""
    from towerplan.siting._multiop import flex_window_solver, type_chain_search

    made = random_multiop_mclp(seed, quotas, spaced)
    if made is None:
        return
    prob, start = made
    runs = [
        _mclp.lns(prob, start, max_subproblems=4, window=2, seed=seed, window_solver=solver)
        for solver in (
            flex_window_solver(prob),
            flex_window_solver(prob),
            None,
            flex_window_solver(prob, count_flex=True),
            flex_window_solver(prob, count_flex=True),
        )
    ]
    for out in runs:
        _mclp.check_solution(prob, out)
        assert out.objective == pytest.approx(_mclp.evaluate(prob, out), abs=1e-9)
        assert out.objective >= start.objective - 1e-9
    assert runs[0].sites.tolist() == runs[1].sites.tolist()
    assert runs[0].tenants.tolist() == runs[1].tenants.tolist()
    assert runs[3].sites.tolist() == runs[4].sites.tolist()
    first = [
        _mclp.lns(prob, start, max_subproblems=1, window=2, seed=seed, window_solver=solver)
        for solver in (flex_window_solver(prob, count_flex=True), flex_window_solver(prob), None)
    ]
    assert first[0].objective >= first[1].objective - 1e-9 >= first[2].objective - 2e-9
    chain = type_chain_search(prob, start, max_passes=3, seed=seed)
    _mclp.check_solution(prob, chain)
    assert chain.objective == pytest.approx(_mclp.evaluate(prob, chain), abs=1e-9)
    assert chain.objective >= start.objective - 1e-9


def test_flex_setting_switches_the_multi_operator_moves() -> None:
    prob = _paired_instance(2, 150, 24, 3)
    kw = {"solver": "heuristic", "mip_gap": 1e-9, "work_limit": 0.05}
    new = _mclp.solve(prob, _mclp.SolveSettings(**kw))
    old = _mclp.solve(_paired_instance(2, 150, 24, 3), _mclp.SolveSettings(type_flex=False, **kw))
    assert "lns_type_moves" in new.log and "lns_type_moves" not in old.log
    for out in (new, old):
        _mclp.check_solution(prob, out)
        assert out.objective == pytest.approx(_mclp.evaluate(prob, out), rel=1e-12)
        assert out.upper_bound >= out.objective
    with pytest.raises(ParameterError, match="type_flex"):
        _mclp.SolveSettings(type_flex=1)  # type: ignore[arg-type]


def test_flex_window_without_a_shared_host_falls_back_to_the_plain_window() -> None:
    """A type-flex LNS window whose candidates cannot host the other structure type."""
    A = np.array([[1, 0, 0], [1, 1, 0], [1, 0, 0], [0, 1, 1]], bool)
    W = np.array([[4.0, 0, 8], [0, 0, 0], [3, 0, 1], [8, 4, 0]])
    inst = {"A": A, "W": W, "cap": np.array([1, 2, 3]), "n_ded": 2, "n_sh": 1}
    inst.update(conf=None, offset=5.0)
    sol = _mclp.solve(_problem(inst), _mclp.SolveSettings("heuristic", mip_gap=0.0))
    _feasible(inst, sol)
    assert sol.objective == pytest.approx(_brute(inst)) == 26.0


@pytest.mark.parametrize("seed", [0, 3])
def test_rounded_start_searched_only_near_the_incumbent(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Lagrangian-rounded start is searched when its value is at least
    LAGRANGIAN_START_MIN_RATIO of the incumbent's, else skipped; both ways feasible."""
    kw = {"solver": "heuristic", "mip_gap": 1e-9, "work_limit": 0.05}
    runs = {}
    for ratio in (0.0, 2.0):  # always searched / never
        monkeypatch.setattr(_mclp, "LAGRANGIAN_START_MIN_RATIO", ratio)
        prob = _paired_instance(seed, 150, 24, 3)
        runs[ratio] = out = _mclp.solve(prob, _mclp.SolveSettings(**kw))
        _mclp.check_solution(prob, out)
        assert out.objective == pytest.approx(_mclp.evaluate(prob, out), rel=1e-12)
    assert runs[0.0].log["lagrangian_start_searched"] is True
    assert runs[2.0].log["lagrangian_start_searched"] is False
    assert "Lagrangian rounding" not in runs[2.0].method


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(multi_operator_instances(), st.integers(0, 10_000), st.integers(1, 3))
def test_multi_operator_zone_bound_is_valid(inst: dict, mseed: int, n_zones: int) -> None:
    """The multi-operator zone bound is >= the brute-force optimum for any zones and
    multipliers (covering rows, shared quota, spacing pairs), and at the Lagrangian's own
    multipliers it is never above the Lagrangian bound."""
    from towerplan.siting._mzones import multiop_zone_bound

    best = _brute(inst)
    if not np.isfinite(best):
        return
    prob = _problem(inst)
    rng = np.random.default_rng(mseed)
    label = rng.integers(0, n_zones, prob.n_cand)
    ea, eb = bounds._conflict_edges(prob)
    lam = rng.random(prob.W.shape) * 10.0
    nu, mu = float(rng.normal(0.0, 5.0)), rng.random(len(ea)) * 5.0
    ub, info = multiop_zone_bound(prob, lam, nu, label=label, pairs=(ea, eb, mu), checkpoints=2)
    assert ub >= best - 1e-6
    assert info["mzone_count"] == int(label.max()) + 1
    bounds.lagrangian_bound(prob, best, max_iter=20)
    lam, nu = prob.info["_multipliers"]
    mu = prob.info["_conflict_multipliers"][2]
    ub_z, _ = multiop_zone_bound(prob, lam, nu, label=label, pairs=(ea, eb, mu))
    assert best - 1e-6 <= ub_z <= bounds.lagrangian_value(prob, lam, nu, mu=mu) + 1e-6


def test_type_polish_rounds_scale_to_zero_at_a_quick_look(monkeypatch: pytest.MonkeyPatch) -> None:
    """The optional type-polish rounds follow ``work_limit`` down to none (<= 1/6); the
    essential phases keep at least one unit of work."""
    quick, half = (
        _mclp.SolveSettings("heuristic", mip_gap=1e-9, work_limit=w) for w in (0.05, 0.5)
    )
    assert (quick.optional_budget(3), quick.budget(3)) == (0, 1)
    assert (half.optional_budget(3), _mclp.SolveSettings("heuristic").optional_budget(3)) == (2, 3)
    calls: list[int] = []
    chain = _mclp.type_chain_search

    def counted(*args: object, **kw: object) -> _mclp.MCLPSolution:
        calls.append(1)
        return chain(*args, **kw)

    monkeypatch.setattr(_mclp, "type_chain_search", counted)
    prob = _paired_instance(2, 150, 24, 3)  # 3 operators, 4 + 2 structures
    n_calls = []
    for st_ in (quick, half):
        calls.clear()
        _mclp.check_solution(prob, _mclp.solve(prob, st_))
        n_calls.append(len(calls))
    assert n_calls[0] == 0 and n_calls[1] >= 1


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.sampled_from([(3, 3), (5, 1), (2, 4)]), st.booleans())
def test_swap_state_bookkeeping_after_moves_and_undos(
    seed: int, quotas: tuple, spaced: bool
) -> None:
    """The swap and chain searches' incremental state (cached reach, refresh, undo of a
    rejected move) matches a recount after every tried move: coverage counts and residual
    weights exactly, candidate values to rounding, D and S exactly those of G."""
    from towerplan.siting._heuristics import _SwapState
    from towerplan.siting._model import _type_values
    from towerplan.siting._multiop import _ChainState

    made = random_multiop_mclp(seed, quotas, spaced, n=50, m=14)
    if made is None:
        return
    prob, start = made
    tol = 1e-9 * prob.total_weight
    for st_ in (_SwapState(prob, start), _ChainState(prob, start)):
        sw = st_ if isinstance(st_, _SwapState) else st_.sw
        for s in np.random.default_rng(seed).permutation(len(start.sites)).tolist() * 2:
            st_.try_move(int(s), tol)
            cnt = np.asarray(prob.A[:, sw.sites].astype(int) @ sw.ten.astype(int))
            assert (sw.cnt == cnt).all()
            assert (sw.Wres == prob.W * (cnt == 0)).all()
            G = np.asarray(prob.A.T @ sw.Wres) + prob.C * ~sw.open_ten
            assert np.allclose(sw.G, G, rtol=0, atol=1e-9 * prob.total_weight)
            D, S = _type_values(sw.G, prob.cap)
            assert (sw.D == D).all() and (sw.S == S).all()
        _mclp.check_solution(prob, _mclp.MCLPSolution(sw.sites, sw.ten, sw.shared))
