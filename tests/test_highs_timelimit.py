"""The HiGHS wrapper: deterministic work limits and the wall-clock safety stop.

A generated multi-dimensional 0/1 knapsack (250 items, 8 capacity rows) that HiGHS cannot
close quickly is solved (a) with a node limit: twice, identical results, a feasible
incumbent and a valid bound; (b) with a 1 s safety stop: the result says it was cut
(``time_limited``), with a feasible incumbent (or the warm start).
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.sparse as sp

from towerplan.siting._highs import MilpModel, MilpResult, WorkLimits, solve_model


def _hard_knapsack(seed: int = 7) -> MilpModel:
    rng = np.random.default_rng(seed)
    n, m = 250, 8
    A = rng.integers(20, 100, size=(m, n)).astype(float)
    cap = 0.5 * A.sum(axis=1)
    obj = (A.sum(axis=0) + rng.integers(0, 10, n)).astype(float)
    return MilpModel(
        obj=obj,
        lo=np.zeros(n),
        hi=np.ones(n),
        integ=np.ones(n, dtype=bool),
        M=sp.csr_matrix(A),
        rlo=np.full(m, -np.inf),
        rhi=cap,
    )


def _assert_feasible(x: np.ndarray, model: MilpModel) -> None:
    assert np.all(np.abs(x - np.round(x)) < 1e-6)
    assert np.all((x > -1e-6) & (x < 1 + 1e-6))
    assert np.all(model.M @ x <= model.rhi + 1e-6)


def _greedy_start(model: MilpModel) -> np.ndarray:
    A = model.M.toarray()
    x0 = np.zeros(model.n_col)
    load = np.zeros(A.shape[0])
    for j in np.argsort(-model.obj / A.max(axis=0)):
        if np.all(load + A[:, j] <= model.rhi):
            x0[j] = 1.0
            load += A[:, j]
    return x0


LIMITS_100 = WorkLimits(max_nodes=100, mip_gap=0.0)


@functools.cache
def _solved_100() -> MilpResult:
    """The knapsack solved with :data:`LIMITS_100` (once per process; read, never change)."""
    return solve_model(_hard_knapsack(), LIMITS_100)


def test_node_limit_is_deterministic_with_valid_bound() -> None:
    model = _hard_knapsack()
    a = _solved_100()
    b = solve_model(model, LIMITS_100)
    assert not a.time_limited and not b.time_limited
    assert a.nodes == b.nodes and a.nodes >= 100
    assert a.x is not None and b.x is not None
    assert np.array_equal(a.x, b.x) and a.objective == b.objective and a.bound == b.bound
    _assert_feasible(a.x, model)
    assert abs(a.objective - float(model.obj @ a.x)) < 1e-6 * max(1.0, a.objective)
    assert a.bound > a.objective  # not closed in 100 nodes: maximisation bound above
    assert a.objective > 0.9 * a.bound


def test_safety_stop_is_reported_and_keeps_the_start() -> None:
    model = _hard_knapsack()
    x0 = _greedy_start(model)
    res = solve_model(model, WorkLimits(mip_gap=0.0, time_limit_s=1.0), x0)
    assert res.time_limited  # the safety stop, not optimality, ended the solve
    assert res.x is not None
    _assert_feasible(res.x, model)
    assert float(model.obj @ res.x) >= float(model.obj @ x0) - 1e-6
    assert res.bound >= res.objective - 1e-6


def test_lp_relaxation_bound_and_duals() -> None:
    model = _hard_knapsack()
    lp = solve_model(model, WorkLimits(), relax=True)
    mip = _solved_100()  # the branch-and-bound bound after 100 nodes
    assert lp.status == "Optimal" and lp.row_dual is not None
    assert lp.bound >= mip.bound - 1e-6 >= mip.objective - 1e-6


def test_runs_after_another_caller_started_highs_with_more_threads() -> None:
    import highspy

    from towerplan.siting._highs import _pass_model, new_highs

    model = _hard_knapsack()
    other = new_highs()  # e.g. PuLP or spopt in the same process, with more threads
    other.setOptionValue("output_flag", False)
    other.setOptionValue("threads", 2)
    _pass_model(other, model, relax=True)
    other.run()
    res = solve_model(model, WorkLimits(max_nodes=20, mip_gap=0.0))
    assert res.x is not None and res.status != "Not Set"
    _assert_feasible(res.x, model)
    highspy.Highs.resetGlobalScheduler(True)
