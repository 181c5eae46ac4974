"""Speculative parallel LNS (``siting._speculate``): two threads give the sequential result
bit for bit (sites, tenants, types, objective, work counters) for plain, paired,
type-flexible and count-flexible windows, also when consecutive windows interact."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import random_multiop_mclp, random_one_op_mclp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from towerplan.errors import ParameterError
from towerplan.siting import _mclp
from towerplan.siting._countflex import count_window_solver
from towerplan.siting._highs import MilpModel, WorkLimits, solve_model
from towerplan.siting._model import SafetyStop
from towerplan.siting._multiop import flex_window_solver
from towerplan.siting._speculate import SolveRequest, Speculator, same_request


def _fingerprint(sol: _mclp.MCLPSolution) -> tuple[Any, ...]:
    counters = {
        k: v for k, v in sol.log.items() if not k.endswith("_s") and not k.startswith("specul")
    }
    return (
        sol.sites.tolist(),  # in the LNS's own order: the same moves in the same order
        sol.tenants.tolist(),
        sol.shared.tolist(),
        sol.objective,
        sol.time_limited,
        sorted(counters.items()),
    )


def _both(prob: _mclp.MCLPProblem, start: _mclp.MCLPSolution, **kw: Any) -> tuple[Any, Any]:
    """The LNS with one thread and with two; returns the two solutions."""
    make = kw.pop("solver", None)
    seq = _mclp.lns(prob, start, threads=1, window_solver=make and make(prob), **kw)
    par = _mclp.lns(prob, start, threads=2, window_solver=make and make(prob), **kw)
    assert "speculative_hits" not in seq.log
    return seq, par


def _random_start(prob: _mclp.MCLPProblem, seed: int) -> _mclp.MCLPSolution:
    """A random feasible start (no spacing pairs): a poor one, so that many windows
    improve and change the next window's model (speculations miss)."""
    rng = np.random.default_rng(seed)
    n = prob.n_dedicated + prob.n_shared
    sites = rng.choice(np.flatnonzero(prob.cap >= min(2, prob.n_ops)), n, replace=False)
    shared = np.arange(n) >= prob.n_dedicated
    ten = np.zeros((n, prob.n_ops), dtype=bool)
    for i in range(n):
        ten[i, rng.choice(prob.n_ops, 2 if shared[i] else 1, replace=False)] = True
    sol = _mclp.MCLPSolution(sites.astype(np.int64), ten, shared)
    sol.objective = _mclp.evaluate(prob, sol)
    _mclp.check_solution(prob, sol)
    return sol


def _cases() -> list[tuple[str, _mclp.MCLPProblem, _mclp.MCLPSolution, dict[str, Any]]]:
    out = []
    for seed in range(2):
        kw: dict[str, Any] = dict(max_subproblems=7, seed=seed, window=2, light_windows=True)
        prob, _ = random_one_op_mclp(seed, 14, 4, 0.2, False)
        start = _random_start(prob, seed)
        out.append(("one op", prob, start, kw))
        out.append(("count-flex", prob, start, {**kw, "solver": count_window_solver}))
        made = random_multiop_mclp(seed, (3, 2), False, n=90, m=20)
        assert made is not None
        prob = made[0]
        start = _random_start(prob, seed)
        out.append(("multi-op", prob, start, kw))
        out.append(("type-flex", prob, start, {**kw, "solver": flex_window_solver}))
        # with a (generous) safety stop: the requests differ in their seconds left only
        timed = {**kw, "solver": flex_window_solver, "safety": SafetyStop(3600.0)}
        out.append(("type-flex timed", prob, start, timed))
        free = np.setdiff1d(np.arange(prob.n_cand), start.sites)
        pairs = np.column_stack([start.sites[:3], free[:3]])
        out.append(("paired", prob, start, {**kw, "priority_seeds": pairs, "window": 4}))
    return out


def test_two_threads_give_the_sequential_result_and_speculations_miss_and_hit() -> None:
    hits = misses = improved = 0
    kinds = set()
    flex_hits: dict[str, list[int]] = {}
    for kind, prob, start, kw in _cases():
        seq, par = _both(prob, start, **kw)
        flex_hits.setdefault(kind, []).append(par.log["speculative_hits"])
        assert _fingerprint(par) == _fingerprint(seq), kind
        _mclp.check_solution(prob, par)
        hits += par.log["speculative_hits"]
        misses += par.log["speculative_misses"]
        improved += seq.log["lns_improvements"]
        kinds.add(kind)
        # at most one speculation per window after the first
        assert par.log["speculative_hits"] + par.log["speculative_misses"] < max(
            2, seq.log["lns_subproblems"]
        )
    # the seconds left of the safety stop do not turn hits into misses
    assert flex_hits["type-flex timed"] == flex_hits["type-flex"]
    assert kinds == {"one op", "count-flex", "multi-op", "type-flex", "type-flex timed", "paired"}
    # consecutive windows interacted (improvements changed the next window: misses) and
    # the speculation was used where they did not (hits): the check is not vacuous
    assert improved > 5 and misses > 5 and hits > 5


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.booleans())
def test_speculative_lns_is_sequential_lns(seed: int, flex: bool) -> None:
    made = random_multiop_mclp(seed, (3, 2), seed % 2 == 0, n=60, m=16)
    if made is None:
        return
    prob, start = made
    kw: dict[str, Any] = dict(max_subproblems=5, seed=seed, window=2, light_windows=True)
    seq, par = _both(prob, start, solver=flex_window_solver if flex else None, **kw)
    assert _fingerprint(par) == _fingerprint(seq)


def _model(seed: int = 0) -> SolveRequest:
    rng = np.random.default_rng(seed)
    n, m = 12, 30
    A = sp.csr_matrix(rng.random((m, n)) < 0.25, dtype=float)
    M = sp.vstack([sp.hstack([-A, sp.identity(m)]), sp.csr_matrix(np.r_[np.ones(n), np.zeros(m)])])
    model = MilpModel(
        obj=np.r_[np.zeros(n), rng.random(m)],
        lo=np.zeros(n + m),
        hi=np.ones(n + m),
        integ=np.r_[np.ones(n, bool), np.zeros(m, bool)],
        M=M.tocsr(),
        rlo=np.full(m + 1, -np.inf),
        rhi=np.r_[np.zeros(m), [3.0]],
    )
    return SolveRequest(model, WorkLimits(max_nodes=50, max_checkpoints=30), None)


def test_same_request_compares_every_array_not_a_hash() -> None:
    a = _model()
    b = _model()
    assert same_request(a, b)
    # the safety stop's seconds left are not part of the run's identity (a run it cut is
    # not taken), whether there is one is
    timed = replace(a, limits=replace(a.limits, time_limit_s=9.0))
    assert same_request(timed, replace(b, limits=replace(b.limits, time_limit_s=7.0)))
    assert not same_request(a, replace(b, limits=replace(b.limits, time_limit_s=7.0)))
    M = b.model.M.copy()
    M.data[3] += 1e-12
    assert not same_request(a, replace(b, model=replace(b.model, M=M)))
    rhi = b.model.rhi.copy()
    rhi[-1] = 4.0
    assert not same_request(a, replace(b, model=replace(b.model, rhi=rhi)))
    assert not same_request(a, replace(b, limits=replace(b.limits, max_nodes=51)))
    assert not same_request(a, replace(b, start=np.zeros(b.model.n_col)))
    assert not same_request(a, replace(b, model=replace(b.model, offset=1.0)))


def test_speculator_takes_only_an_identical_request() -> None:
    a, other = _model(0), _model(1)
    want = [solve_model(r.model, r.limits, r.start).objective for r in (a, a, other)]
    got = []
    with Speculator(2) as spec:
        for step, (req, ahead) in enumerate([(a, a), (a, a), (other, None)]):
            spec.step = step
            spec.ahead = (lambda r=ahead: r) if ahead is not None else None
            got.append(spec.run(req.model, req.limits, req.start).objective)
    assert got == want
    assert (spec.hits, spec.misses) == (1, 1)  # step 1 took step 0's guess; step 2 did not


def test_threads_setting_is_checked() -> None:
    assert _mclp.SolveSettings().threads == 2
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ParameterError, match="threads"):
            _mclp.SolveSettings(threads=bad)
