"""Switching points: p-median parity with PySAL spopt, nested milestones, locked points."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pulp
import pytest
from scipy.spatial.distance import cdist
from shapely.geometry import Point, box

from towerplan.infrastructure import switching


def _instance(seed: int, n: int = 40, m: int = 15) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    d = rng.random((n, 2)) * 10
    c = rng.random((m, 2)) * 10
    return cdist(d, c), rng.integers(1, 20, n).astype(float)


@pytest.mark.parametrize("seed,p", [(0, 3), (1, 5), (2, 4)])
def test_pmedian_parity_with_spopt(seed: int, p: int) -> None:
    from spopt.locate import PMedian

    C, w = _instance(seed)
    ref = PMedian.from_cost_matrix(C, w, p_facilities=p).solve(pulp.HiGHS(msg=False))
    exact = switching.solve_pmedian(C, w, p)
    heur = switching.solve_pmedian(C, w, p, max_exact_pairs=0)
    assert exact.method == "exact" and heur.method == "heuristic"
    assert exact.objective == pytest.approx(ref.problem.objective.value(), rel=1e-9)
    # the heuristic (a 1-swap local optimum) is near the optimum; its Lagrangian bound is valid
    assert heur.lower_bound <= exact.objective + 1e-6
    assert exact.objective - 1e-9 <= heur.objective <= exact.objective * 1.05
    assert exact.lower_bound <= exact.objective + 1e-6


def _dense_lagrangian(C: np.ndarray, w: np.ndarray, p_total: int, locked: np.ndarray, ub: float):
    """Oracle: the textbook subgradient on the full reduced-cost matrix (same schedule)."""
    WC = w[:, None] * C
    lam, best, step = WC.min(axis=1), -np.inf, 2.0
    free = np.setdiff1d(np.arange(C.shape[1]), locked)
    for _ in range(switching.LAGRANGIAN_ITERATIONS):
        red = np.minimum(WC - lam[:, None], 0.0)
        rho = red.sum(axis=0)
        chosen = np.r_[locked, free[np.argsort(rho[free], kind="stable")[: p_total - len(locked)]]]
        val = float(lam.sum() + rho[chosen].sum())
        best = max(best, val)
        g = 1.0 - (red[:, chosen] < 0).sum(axis=1)
        if float(g @ g) == 0:
            break
        lam = lam + step * (ub - val) / float(g @ g) * g
        step *= 0.985
    return best


@pytest.mark.parametrize("seed,p,n_locked", [(0, 3, 0), (4, 2, 2), (5, 6, 1)])
def test_sorted_lagrangian_equals_the_dense_subgradient(seed: int, p: int, n_locked: int) -> None:
    C, w = _instance(seed, n=60, m=25)
    locked = np.arange(n_locked, dtype=np.int64)
    ub = switching.solve_pmedian(C, w, p, locked=locked).objective
    got = switching._lagrangian(C, w, p + n_locked, locked, ub)
    assert got == _dense_lagrangian(C, w, p + n_locked, locked, ub)  # same sums, same order
    assert 0 < got <= ub + 1e-9


def _dense_swap(C: np.ndarray, w: np.ndarray, opened: np.ndarray, n_locked: int) -> np.ndarray:
    """Oracle: textbook vertex substitution, every (add, drop) pair costed on the full matrix."""
    opened = opened.copy()
    for _ in range(switching.SWAP_ITERATIONS):
        cur = switching._cost(C, w, opened)
        best, move = cur - 1e-9 * max(1.0, cur), None
        for r in range(n_locked, len(opened)):
            for a in np.setdiff1d(np.arange(C.shape[1]), opened):
                trial = opened.copy()
                trial[r] = a
                if (cost := switching._cost(C, w, trial)) < best:
                    best, move = cost, (r, a)
        if move is None:
            return opened
        opened[move[0]] = move[1]
    return opened


@pytest.mark.parametrize("seed,p,n_locked", [(0, 4, 0), (6, 3, 2), (7, 1, 0), (8, 6, 1)])
def test_sparse_swap_equals_the_dense_vertex_substitution(seed: int, p: int, n_locked: int) -> None:
    """Same moves as costing every pair on the full matrix (no ties: random real costs)."""
    C, w = _instance(seed, n=50, m=20)
    start = np.arange(p + n_locked, dtype=np.int64)  # a poor start: many moves
    got = switching._swap(C, w, start, n_locked)
    want = _dense_swap(C, w, start, n_locked)
    assert got.tolist() == want.tolist() and got[:n_locked].tolist() == list(range(n_locked))
    assert switching._cost(C, w, got) < switching._cost(C, w, start)


def test_work_limit_scales_only_the_bounds_subgradient_steps() -> None:
    """Below work limit 1 the Lagrangian bound takes fewer steps (>= 20): same points
    opened, same objective, a valid bound no tighter than the full one."""
    assert switching.lagrangian_iterations(1.0) == switching.lagrangian_iterations(4.0) == 300
    assert switching.lagrangian_iterations(0.5) == 150
    assert switching.lagrangian_iterations(0.03) == switching.MIN_LAGRANGIAN_ITERATIONS == 20
    C, w = _instance(9, n=60, m=25)
    full = switching.solve_pmedian(C, w, 4, max_exact_pairs=0)
    quick = switching.solve_pmedian(C, w, 4, max_exact_pairs=0, bound_iterations=20)
    assert quick.open.tolist() == full.open.tolist() and quick.objective == full.objective
    assert 0 < quick.lower_bound <= full.lower_bound <= full.objective + 1e-9
    ub = full.objective
    assert quick.lower_bound == switching._lagrangian(C, w, 4, np.array([], np.int64), ub, None, 20)


def test_locked_points_stay_open() -> None:
    C, w = _instance(3)
    sol = switching.solve_pmedian(C, w, 2, locked=np.array([4, 9]))
    assert sol.open[:2].tolist() == [4, 9] and len(set(sol.open.tolist())) == 4


def test_nested_milestones_and_development_zone_bias() -> None:
    crs = "EPSG:32648"
    xs, ys = np.meshgrid(np.arange(250, 10000, 500.0), np.arange(250, 5000, 500.0))
    xy = np.column_stack([xs.ravel(), ys.ravel()])
    dem = gpd.GeoDataFrame(
        {"population": np.full(len(xy), 100.0)}, geometry=[Point(p) for p in xy], crs=crs
    )
    bts = gpd.GeoDataFrame(
        {"build_year": [np.nan, 2030.0]}, geometry=[Point(500, 500), Point(9500, 4500)], crs=crs
    )
    zone = gpd.GeoDataFrame(geometry=[box(8000, 3000, 10000, 5000)], crs=crs)
    plan = switching.plan_switching_points(
        dem, bts, {2020: 3, 2030: 2}, fixed_broadband_per_100=20.0, grid_m=1000.0,
        zones=zone, zone_factor=20.0,
    )  # fmt: skip
    pts = plan.points
    assert len(pts) == 5 and (pts["year"] == 2020).sum() == 3 and (pts["year"] == 2030).sum() == 2
    assert plan.by_year[2030]["total"] == 5
    # 2,000 lines of fixed broadband (10 x 5 km, 100 people per 0.25 km2, 20 %) + 100 per BTS
    assert plan.by_year[2020]["demand_lines"] == pytest.approx(200 * 100 * 0.2 + 100)
    # the heavy development zone draws a 2030 point inside it
    assert pts.loc[pts["year"] == 2030, "in_development_zone"].any()
    assert pts["demand_lines"].sum() == pytest.approx(
        switching.switching_demand(
            dem, bts, [2020, 2030], fixed_broadband_per_100=20.0, bts_line_equivalents=100.0,
            grid_m=1000.0, zones=zone, zone_factor=20.0,
        )[1][:, 1].sum()
    )  # fmt: skip
