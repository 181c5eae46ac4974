"""Multi-period (phased) siting: the matrix model against brute force, sites never removed."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from towerplan.errors import InfeasibleModelError
from towerplan.siting import _phasing as ph


def _instance(seed: int, n: int = 7, rows: int = 14, T: int = 3) -> ph.PhasingProblem:
    rng = np.random.default_rng(seed)
    A = sp.csr_matrix((rng.random((rows, n)) < 0.3).astype(float))
    growth = np.array([1.0, 1.3, 1.7][:T])
    W = np.outer(rng.integers(1, 50, rows).astype(float), growth)
    V = rng.random((n, T)) * 3
    budget = np.array([1, 2, 1][:T])
    group = rng.integers(0, 2, n)
    group[:2] = 0  # the conflicting pair lies in the group without a minimum
    min_open = np.zeros((2, T), dtype=np.int64)
    min_open[1, -1] = min(2, int((group == 1).sum()))
    conf = sp.csr_matrix(([1.0, 1.0], ([0, 1], [1, 0])), shape=(n, n))
    return ph.PhasingProblem(A, W, V, budget, group, min_open, conf)


def _brute_force(prob: ph.PhasingProblem) -> float:
    best = -np.inf
    n = prob.n_cand
    labels = np.concatenate([np.full(int(b), t) for t, b in enumerate(prob.budget)])
    same = [k for k in range(len(labels) - 1) if labels[k] == labels[k + 1]]
    for chosen in itertools.permutations(range(n), len(labels)):
        if any(chosen[k] > chosen[k + 1] for k in same):
            continue  # the same build periods as an ordered choice already evaluated
        bp = np.full(n, -1)
        bp[list(chosen)] = labels
        if ph.is_feasible(prob, bp):
            best = max(best, ph.evaluate(prob, bp))
    return best


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_multi_period_model_equals_brute_force(seed: int) -> None:
    prob = _instance(seed)
    exact = _brute_force(prob)
    sol = ph.solve(prob, mip_gap=0.0)
    assert sol.method == "milp"
    assert ph.is_feasible(prob, sol.build_period)
    assert ph.evaluate(prob, sol.build_period) == pytest.approx(exact)
    assert sol.objective == pytest.approx(exact)
    assert sol.upper_bound >= exact - 1e-6
    greedy = ph.greedy(prob)
    assert ph.is_feasible(prob, greedy.build_period) and greedy.objective <= exact + 1e-9


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000))
def test_built_sites_stay_and_budgets_hold(seed: int) -> None:
    prob = _instance(seed, n=12, rows=30)
    sol = ph.solve(prob)
    bp = sol.build_period
    # one build period per structure: a structure open in period t is open in every later one
    for t in range(1, prob.n_periods):
        assert set(np.flatnonzero((bp >= 0) & (bp <= t - 1))) <= set(
            np.flatnonzero((bp >= 0) & (bp <= t))
        )
    assert [int((bp == t).sum()) for t in range(prob.n_periods)] == prob.budget.tolist()
    assert sol.objective == pytest.approx(ph.evaluate(prob, bp))
    assert sol.objective >= ph.greedy(prob).objective - 1e-9


def test_row_reduction_is_exact() -> None:
    prob = _instance(5)
    red = ph.reduce_rows(prob)
    rng = np.random.default_rng(0)
    for _ in range(5):
        bp = np.full(prob.n_cand, -1)
        bp[rng.permutation(prob.n_cand)[:4]] = [0, 1, 1, 2]
        assert ph.evaluate(red, bp) == pytest.approx(ph.evaluate(prob, bp))


def test_infeasible_budget_is_reported() -> None:
    prob = _instance(0)
    prob.min_open = np.array([[0, 0, 0], [3, 3, 3]])
    with pytest.raises(InfeasibleModelError, match="budget"):
        ph.solve(prob)


def _city() -> tuple:
    """A 6 km x 3 km two-district city: demand cells every 200 m, two existing sites."""
    import geopandas as gpd
    import pandas as pd
    from shapely.geometry import Point

    crs = "EPSG:32648"
    xs, ys = np.meshgrid(np.arange(100, 6000, 200.0), np.arange(100, 3000, 200.0))
    xy = np.column_stack([xs.ravel(), ys.ravel()])
    pop = np.where(xy[:, 0] < 3000, 400.0, 60.0)
    dem = gpd.GeoDataFrame(
        {"population": pop, "district": np.where(xy[:, 0] < 3000, "A", "B")},
        geometry=[Point(p) for p in xy],
        crs=crs,
    )
    sites = gpd.GeoDataFrame(
        {"site_id": ["E1", "E2"], "district": ["A", "B"]},
        geometry=[Point(1500, 1500), Point(4500, 1500)],
        crs=crs,
    )
    gx, gy = np.meshgrid(np.arange(250, 6000, 500.0), np.arange(250, 3000, 500.0))
    gxy = np.column_stack([gx.ravel(), gy.ravel()])
    cands = gpd.GeoDataFrame(
        {
            "cand_id": np.arange(len(gxy)),
            "source": "grid",
            "district": np.where(gxy[:, 0] < 3000, "A", "B"),
        },
        geometry=[Point(p) for p in gxy],
        crs=crs,
    )
    return dem, sites, cands, pd


def test_plan_phases_keeps_sites_and_table_sums_to_totals() -> None:
    from towerplan.scenario import CapacitySettings, Technology
    from towerplan.siting import phasing

    dem, sites, cands, pd = _city()
    cap = CapacitySettings((Technology("4G", 1.0, 3.0, 2.0, 20.0),), max_utilisation=0.5)
    table, facts = phasing.sites_needed_by_district(
        dem, phasing.away_from(cands, sites, 300.0), sites, radius_m=700.0,
        coverage_target=0.9, mobile_broadband_per_100=80.0, capacity_settings=cap,
    )  # fmt: skip
    # capacity by hand: A holds 225 cells x 400 people = 72,000 subscriptions x 17.78 kbps
    # (3 GB x 8e6 / 30 x 0.08 / 3600) = 1,280 Mbps / (3 x 2 x 20 x 0.5 = 60 Mbps) -> 22 sites
    assert table.loc["A", "capacity_sites"] == 22 and table.loc["A", "new_for_capacity"] == 21
    assert (table["sites_needed"] == table[["coverage_sites", "capacity_sites"]].max(axis=1)).all()
    assert facts["coverage_share_with_need"] >= 0.9
    budgets, frac = phasing.auto_budgets(table["new_needed"], [2025, 2030], 2020)
    assert budgets.sum() == table["new_needed"].sum() and frac.tolist() == [0.5, 1.0]
    mins = pd.DataFrame(
        {2025: np.floor(table["new_for_capacity"] * 0.5), 2030: table["new_for_capacity"]}
    )
    res = phasing.plan_phases(
        dem, phasing.away_from(cands, sites, 300.0), uncovered_share=np.ones(len(dem)),
        years=[2025, 2030], budgets=budgets, base_year=2020, demand_year=2030,
        annual_growth=0.01, radius_m=700.0, operators=["X", "Y"], min_open=mins,
        cell_traffic_mbps=dem["population"].to_numpy() * 0.07,
    )  # fmt: skip
    p = res.proposed
    assert len(p) == budgets.sum() and sorted(p["build_year"].unique()) == [2025, 2030]
    assert (p.groupby("district").size() >= table["new_for_capacity"]).all()
    t = phasing.phasing_table(
        pd.Series(["A", "B"]), sites.groupby("district").size(), p, [2025, 2030]
    )
    city = t[t["district"] == "city"]
    assert t.loc[t["district"] != "city", "new_sites"].sum() == len(p) == city["new_sites"].sum()
    assert city["total_sites"].iloc[-1] == len(p) + 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_with_lagrangian_bound_brackets_the_optimum(seed: int) -> None:
    prob = _instance(seed, n=12, rows=40)
    exact = ph.solve(prob, mip_gap=0.0)
    heur = ph.solve(prob, max_exact_columns=0)
    assert heur.method == "greedy+swap" and ph.is_feasible(prob, heur.build_period)
    assert heur.objective >= heur.log["greedy_objective"] - 0.1
    assert heur.objective <= exact.objective + 1e-9 <= heur.upper_bound + 1e-6
    assert 0 <= heur.gap < 1


def test_later_sites_respect_max_tenants() -> None:
    from towerplan.siting import phasing

    dem, sites, cands, _ = _city()
    ops = ["W", "X", "Y", "Z"]
    # W already covers the west half, Z nothing: Z and the larger shares come first
    unc = np.ones((len(dem), 4), dtype=bool)
    unc[dem.geometry.x.to_numpy() < 3000, 0] = False
    kw = dict(
        uncovered_share=np.ones(len(dem)), years=[2025, 2030], budgets=np.array([2, 2]),
        base_year=2020, demand_year=2030, annual_growth=0.0, radius_m=700.0, operators=ops,
        market_shares=[0.4, 0.3, 0.2, 0.1], operator_uncovered=unc,
    )  # fmt: skip
    cands = phasing.away_from(cands, sites, 300.0)
    p = phasing.plan_phases(dem, cands, max_tenants=3, **kw).proposed
    assert (p["n_tenants"] == 3).all() and (p["site_type"] == "shared").all()
    tenant_sets = [set(o.split(";")) for o in p["operators"]]
    assert all(len(t) == 3 for t in tenant_sets)
    west = p.geometry.x.to_numpy() + 700 < 3000
    # in the west W covers everything: W is left out there, kept in the east
    assert all(t == {"X", "Y", "Z"} for t, w in zip(tenant_sets, west, strict=True) if w)
    assert all(t == {"W", "X", "Y"} for t, w in zip(tenant_sets, west, strict=True) if not w)
    # a candidate's own max_tenants column wins; one tenant -> dedicated
    one = phasing.plan_phases(dem, cands.assign(max_tenants=1), max_tenants=3, **kw).proposed
    assert (one["n_tenants"] == 1).all() and (one["site_type"] == "dedicated").all()
    everyone = phasing.plan_phases(dem, cands, **kw).proposed
    assert (everyone["n_tenants"] == 4).all()


def test_tenants_ranks_by_uncovered_gain_then_share() -> None:
    from towerplan.siting.phasing import tenants

    A = sp.csr_matrix(np.array([[1.0, 0.0], [1.0, 1.0]]))
    pop = np.array([100.0, 10.0])
    unc = np.array([[True, False, True], [False, True, True]])
    got = tenants(A, pop, unc, np.array([0.5, 0.3, 0.2]), np.array([2, 2]))
    # site 0: gains 50, 3, 22 -> ops 0, 2; site 1: gains 0, 3, 2 -> ops 1, 2
    assert got.tolist() == [[True, False, True], [False, True, True]]
    tie = tenants(A, pop, np.zeros((2, 3), bool), np.array([0.2, 0.5, 0.3]), np.array([1, 1]))
    assert tie.tolist() == [[False, True, False]] * 2


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_swap_improve_is_feasible_and_never_worse(seed: int) -> None:
    prob = _instance(seed, n=10, rows=30)
    g = ph.greedy(prob)
    s = ph.swap_improve(prob, g)
    assert ph.is_feasible(prob, s.build_period)
    assert s.objective == pytest.approx(ph.evaluate(prob, s.build_period))
    assert g.objective - 1e-9 <= s.objective <= ph.solve(prob, mip_gap=0.0).objective + 1e-9


def test_swap_improve_moves_a_bad_site_to_the_best_one() -> None:
    # rows 0-2 are worth 10 each, row 3 is worth 1; candidate 0 covers row 3, candidate 1
    # rows 0-2: a plan opening 0 in period 0 gains 30 x 2 periods - 1 x 2 by one swap
    A = sp.csr_matrix(np.array([[0, 1], [0, 1], [0, 1], [1, 0]], dtype=float))
    W = np.array([[10.0, 10.0]] * 3 + [[1.0, 1.0]])
    prob = ph.PhasingProblem(A, W, np.zeros((2, 2)), np.array([1, 0]))
    bad = ph.PhasingSolution(np.array([0, -1]), ph.evaluate(prob, np.array([0, -1])))
    got = ph.swap_improve(prob, bad)
    assert bad.objective == 2.0 and got.objective == 60.0
    assert got.build_period.tolist() == [-1, 0] and got.log["swap_moves"] == 1
