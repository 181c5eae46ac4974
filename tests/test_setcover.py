"""The Lagrangian lower bound of the partial set cover (towerplan.siting._setcover)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree

from towerplan.siting._highs import WorkLimits, solve_model
from towerplan.siting._setcover import _greedy, _model, _reduce, lagrangian_bound, solve_set_cover


def _grid_instance(cells: int, seed: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """Demand points on a jittered grid, candidates on a coarser lattice, 650 m discs."""
    rng = np.random.default_rng(seed)
    g = np.arange(cells) * 250.0
    dxy = np.array([(x, y) for x in g for y in g]) + rng.normal(0, 20, (cells * cells, 2))
    c = np.arange(0, cells * 250.0, 500.0)
    cxy = np.array([(x, y) for x in c for y in c])
    pairs = cKDTree(dxy).sparse_distance_matrix(cKDTree(cxy), 650.0, output_type="ndarray")
    A = sp.csr_matrix(
        (np.ones(len(pairs), bool), (pairs["i"], pairs["j"])), shape=(len(dxy), len(cxy))
    )
    w = rng.gamma(0.6, 50.0, len(dxy)) + 0.1
    return A, w


def _lp_bound(A: sp.csr_matrix, w: np.ndarray, need: float) -> float:
    limits = WorkLimits(max_nodes=1, mip_gap=0.0, time_limit_s=math.inf, max_checkpoints=1)
    return solve_model(_model(A, w, need, False), limits, relax=True).bound


def test_lagrangian_bound_close_to_lp_and_below_greedy() -> None:
    A, w = _grid_instance(24, seed=1)
    Ar, wr = _reduce(A, w)
    need = 0.95 * float(w.sum())
    sel = _greedy(Ar, wr, need)
    lp = _lp_bound(Ar, wr, need)
    value, steps = lagrangian_bound(Ar, wr, need, upper=float(len(sel)), iterations=300)
    assert steps == 300
    assert value <= lp + 1e-6  # weak duality: never above the LP relaxation
    assert value >= 0.95 * lp  # and close to it after 300 steps
    assert value <= len(sel)
    # deterministic: the same steps give the same bound
    again, _ = lagrangian_bound(Ar, wr, need, upper=float(len(sel)), iterations=300)
    assert again == value


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), tf=st.sampled_from([0.5, 0.8, 0.95, 1.0]))
def test_lagrangian_bound_is_valid(seed: int, tf: float) -> None:
    rng = np.random.default_rng(seed)
    n, m = 12, 7
    A = rng.random((n, m)) < 0.35
    A[np.arange(n), rng.integers(0, m, n)] = True  # every row coverable
    w = rng.integers(1, 9, n).astype(float)
    Ar, wr = _reduce(sp.csr_matrix(A), w)
    need = tf * float(w.sum()) * (1 - 1e-12)
    res = solve_set_cover(sp.csr_matrix(A), w, tf, solver="exact")
    assert res.optimal
    value, _ = lagrangian_bound(Ar, wr, need, upper=float(m), iterations=50)
    assert math.ceil(value - 1e-6) <= res.n_selected
    heur = solve_set_cover(sp.csr_matrix(A), w, tf, solver="heuristic")
    assert heur.lower_bound <= res.n_selected <= heur.n_selected


def test_large_instances_get_the_lagrangian_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    import towerplan.siting._setcover as sc

    A, w = _grid_instance(16, seed=3)
    small = solve_set_cover(A, w, 0.95, solver="heuristic")
    assert "LP lower bound" in small.solver_used
    monkeypatch.setattr(sc, "MILP_MAX_NNZ", 10)  # the same instance counts as large
    large = solve_set_cover(A, w, 0.95, solver="auto")
    assert "Lagrangian lower bound (MILP too large" in large.solver_used
    assert large.log["lagrange_iterations"] == sc.LAGRANGE_ITERATIONS
    assert large.n_selected == small.n_selected  # the same greedy solution
    assert large.lower_bound <= small.lower_bound <= large.n_selected
    assert large.lower_bound >= 0.95 * small.lower_bound
