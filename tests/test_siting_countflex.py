"""Count-flexible LNS windows (``siting._countflex``): exact, feasible, never worse."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import random_one_op_mclp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from towerplan.siting import _mclp
from towerplan.siting._countflex import count_window_solver


def _solution(prob: _mclp.MCLPProblem, sites: list[int]) -> _mclp.MCLPSolution:
    n = len(sites)
    sol = _mclp.MCLPSolution(
        np.array(sites, dtype=np.int64), np.ones((n, 1), bool), np.zeros(n, bool)
    )
    sol.objective = _mclp.evaluate(prob, sol)
    return sol


def test_a_window_gives_up_a_redundant_structure_to_a_far_candidate() -> None:
    # candidates 0 and 1 share a heavy row; candidate 2 (far away) covers a row alone
    A = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=bool))
    W = np.array([[10.0], [1.0], [1.0], [5.0]])
    prob = _mclp.build_problem(A, W, 2, 0, 1)
    start = _solution(prob, [0, 1])  # 12: both near structures, one of them redundant
    kw = dict(max_subproblems=6, seed=0, window=2, light_windows=True)
    fixed = _mclp.lns(prob, start, **kw)
    assert fixed.objective == pytest.approx(12.0)  # a fixed-count window cannot leave
    flex = _mclp.lns(prob, start, window_solver=count_window_solver(prob), **kw)
    assert flex.objective == pytest.approx(16.0)  # 10 + 1 + 5: the optimum
    assert 2 in flex.sites.tolist() and len(flex.sites) == 2
    assert flex.log["lns_type_moves"] == 1
    _mclp.check_solution(prob, flex)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, 10_000),
    st.integers(5, 10),
    st.integers(1, 4),
    st.sampled_from([0.15, 0.3]),
    st.booleans(),
)
def test_count_flex_windows_feasible_exact_never_worse(
    seed: int, m: int, p: int, density: float, spaced: bool
) -> None:
    prob, best = random_one_op_mclp(seed, m, p, density, spaced)
    start = _mclp.local_search(prob, _mclp.greedy(prob), max_passes=0)
    kw = dict(max_subproblems=4, seed=1, window=2, light_windows=True)
    runs = [_mclp.lns(prob, start, window_solver=count_window_solver(prob), **kw) for _ in range(2)]
    out = runs[0]
    _mclp.check_solution(prob, out)
    assert len(out.sites) == p
    assert out.objective == pytest.approx(_mclp.evaluate(prob, out))
    assert start.objective - 1e-9 <= out.objective <= best + 1e-9
    assert sorted(out.sites.tolist()) == sorted(runs[1].sites.tolist())
