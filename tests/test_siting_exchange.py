"""Regional exchange moves: the delta choice (``siting._exchange``) against brute force,
the multi-operator move (``siting._mexchange``) feasible, exact, never worse, deterministic."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import random_multiop_mclp
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from towerplan.siting import _mclp
from towerplan.siting._exchange import best_exchange
from towerplan.siting._mexchange import regional_exchange
from towerplan.siting._multiop import flex_window_solver

_DELTAS_2D = [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1), (1, -1), (-1, 1)]


def _sum(deltas, dim):
    return tuple(sum(d[j] for d in deltas) for j in range(dim))


def _brute(gains, total):
    best = None
    for combo in itertools.product(*[sorted(g.items()) for g in gains]):
        if _sum([d for d, _ in combo], len(total)) == total:
            val = sum(v for _, v in combo)
            best = val if best is None else max(best, val)
    return best


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.dictionaries(st.sampled_from(_DELTAS_2D), st.integers(-20, 20).map(float), min_size=1),
        max_size=5,
    ),
    st.sampled_from([(0, 0), (1, 0), (0, -1), (-1, 1)]),
)
def test_best_exchange_matches_brute_force(gains, total) -> None:
    want = _brute(gains, total)
    if want is None:
        with pytest.raises(ValueError, match="sums to"):
            best_exchange(gains, total=total)
        return
    got, chosen = best_exchange(gains, total=total)
    assert got == pytest.approx(want)
    assert len(chosen) == len(gains)
    assert _sum(chosen, 2) == total
    assert sum(g[d] for g, d in zip(gains, chosen, strict=True)) == pytest.approx(got)
    assert best_exchange(list(reversed(gains)), total=total)[0] == pytest.approx(got)


def test_best_exchange_one_dimension_and_ties() -> None:
    gains = [{(0,): 0.0, (1,): 5.0, (-1,): -1.0}, {(0,): 0.0, (-1,): -2.0, (-2,): -9.0}]
    assert best_exchange(gains, total=(0,)) == (3.0, ((1,), (-1,)))
    # a tie keeps the zero deltas (no needless change)
    tied = [{(0,): 0.0, (1,): 1.0}, {(0,): 0.0, (-1,): -1.0}]
    assert best_exchange(tied, total=(0,)) == (0.0, ((0,), (0,)))
    assert best_exchange([], total=(0, 0)) == (0.0, ())
    with pytest.raises(ValueError, match="entries"):
        best_exchange([{(0, 0): 1.0}], total=(0,))
    with pytest.raises(ValueError, match="allows no delta"):
        best_exchange([{(0,): float("-inf")}], total=(0,))


def _two_region_instance() -> _mclp.MCLPProblem:
    """Region A (candidates 0, 1) holds one dedicated structure too many, region B
    (2, 3, 4) one too few: B re-packed with two structures (0 and 4 instead of 3) gains
    6, A loses 4 without candidate 1; no single swap improves (a structure moved from
    A to B gains 3); region C (5, 6) holds the shared structure."""
    rows = [
        ([0], (10, 0)), ([1], (4, 0)), ([0, 1], (0.5, 0)),
        ([2], (3, 0)), ([2, 3], (5, 0)), ([3, 4], (5, 0)), ([4], (3, 0)),
        ([5], (4, 4)), ([5, 6], (0.5, 0.5)), ([6], (1, 1)),
    ]  # fmt: skip
    A = np.zeros((len(rows), 7), dtype=bool)
    for i, (cols, _) in enumerate(rows):
        A[i, cols] = True
    W = np.array([w for _, w in rows], dtype=float)
    return _mclp.build_problem(sp.csr_matrix(A), W, 3, 1, 2)


def _sol(prob: _mclp.MCLPProblem, sites, ten, shared) -> _mclp.MCLPSolution:
    sol = _mclp.MCLPSolution(np.array(sites), np.array(ten, bool), np.array(shared, bool))
    sol.objective = _mclp.evaluate(prob, sol)
    return sol


def test_only_a_two_window_exchange_finds_the_optimum() -> None:
    prob = _two_region_instance()
    start = _sol(prob, [0, 1, 3, 5], [[1, 0], [1, 0], [1, 0], [1, 1]], [0, 0, 0, 1])
    assert start.objective == pytest.approx(33.5)
    _mclp.lagrangian_bound(prob, start.objective)
    swapped = _mclp.local_search(prob, start)
    assert swapped.objective == pytest.approx(33.5)  # a local optimum of the swaps
    kw = dict(max_subproblems=10, window=6, seed=0, window_solver=flex_window_solver(prob))
    assert _mclp.lns(prob, start, **kw).objective == pytest.approx(33.5)
    out = regional_exchange(prob, start, rounds=2, zone_size=3)
    _mclp.check_solution(prob, out)
    assert out.objective == pytest.approx(35.5)  # A 10.5 + B 16 + C 9
    assert sorted(out.sites.tolist()) == [0, 2, 4, 5]
    assert out.log["exchange_improvements"] == 1 and out.log["exchange_count_moves"] == 2
    exact = _mclp.solve(prob, _mclp.SolveSettings("exact", mip_gap=0.0))
    assert exact.objective == pytest.approx(35.5)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.sampled_from([(3, 3), (4, 2), (2, 4)]), st.booleans())
@example(24, (4, 2), False)  # two windows change their counts (+77.5)
def test_regional_exchange_feasible_exact_never_worse(seed: int, quotas, spaced: bool) -> None:
    made = random_multiop_mclp(seed, quotas, spaced, n=80, m=24, side=12000.0)
    if made is None:
        return
    prob, start = made
    _mclp.lagrangian_bound(prob, start.objective, max_iter=60)
    runs = [regional_exchange(prob, start, rounds=3, windows=4, window=2, zone_size=4)]
    runs.append(regional_exchange(prob, start, rounds=3, windows=4, window=2, zone_size=4))
    for out in runs:
        _mclp.check_solution(prob, out)
        assert out.objective == pytest.approx(_mclp.evaluate(prob, out), abs=1e-9)
        assert out.objective >= start.objective - 1e-9
    assert runs[0].sites.tolist() == runs[1].sites.tolist()
    assert runs[0].tenants.tolist() == runs[1].tenants.tolist()
    assert runs[0].log["exchange_milps"] == runs[1].log["exchange_milps"]


def test_regional_exchange_setting_adds_the_phase() -> None:
    rng = np.random.default_rng(24)
    A = sp.csr_matrix(rng.random((40, 12)) < 0.2)
    W = rng.gamma(2.0, 20.0, (40, 3))
    for on in (False, True):
        prob = _mclp.build_problem(A, W, 3, 2, 3)
        kw = dict(mip_gap=1e-9, work_limit=0.05, regional_exchange=on)
        out = _mclp.solve(prob, _mclp.SolveSettings("heuristic", **kw))
        assert ("regional exchange" in out.method) == on == ("exchange_windows" in out.log)
        assert out.objective == pytest.approx(_mclp.evaluate(prob, out))
        _mclp.check_solution(prob, out)
