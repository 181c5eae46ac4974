"""The zone Lagrangian bound (``siting._zones``): valid against brute force, tighter than LP."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from towerplan.siting import _mclp, _zones
from towerplan.siting._bounds import lagrangian_value
from towerplan.siting._heuristics import _adjacency


def _instance(seed: int, n: int, m: int, p: int, density: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    A = rng.random((n, m)) < density
    W = rng.integers(0, 9, (n, 1)).astype(float)
    return A, W


def _brute(A: np.ndarray, W: np.ndarray, p: int, conf: set[tuple[int, int]]) -> float:
    best = -np.inf
    for S in itertools.combinations(range(A.shape[1]), p):
        if any((a, b) in conf for a in S for b in S):
            continue
        best = max(best, float(W[A[:, list(S)].any(axis=1), 0].sum()))
    return best


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, 10_000),
    st.integers(3, 16),
    st.integers(2, 9),
    st.sampled_from([0.15, 0.3, 0.5]),
    st.integers(0, 10_000),
    st.integers(1, 3),
    st.booleans(),
)
def test_zone_bound_is_valid_for_any_zones_and_multipliers(
    seed: int, n: int, m: int, density: float, mseed: int, ck: int, spacing: bool
) -> None:
    A, W = _instance(seed, n, m, 0, density)
    rng = np.random.default_rng(mseed)
    p = int(rng.integers(1, m + 1))
    conf = {(0, 1), (1, 0)} if spacing and p < m else set()
    conf_m = sp.csr_matrix(([True, True], ([0, 1], [1, 0])), shape=(m, m)) if conf else None
    opt = _brute(A, W, p, conf)
    if not np.isfinite(opt):
        return
    prob = _mclp.build_problem(sp.csr_matrix(A), W, p, 0, 1, conf_m, 3.0)
    label = rng.integers(0, 3, prob.n_cand)
    lam = rng.random(prob.n_rows) * 10.0  # clipped to [0, W] inside
    for t in (None, float(rng.normal(3.0, 4.0))):
        bound, info = _zones.zone_bound(prob, lam, label=label, t=t, checkpoints=ck, nodes=ck)
        assert bound >= opt + 3.0 - 1e-6
        assert info["zone_count"] == int(label.max()) + 1
    # never above the Lagrangian bound at the same multipliers (t = the p-th value)
    bound, _ = _zones.zone_bound(prob, lam, label=label)
    assert bound <= lagrangian_value(prob, lam[:, None]) + 1e-6


def test_zones_partition_and_tighten_a_sparse_instance() -> None:
    """A path of candidates: BFS zones are runs of 4, two rows cross, the bound is by hand."""
    # 12 candidates on a line, each row covered by two neighbours: max coverage with p = 3
    m, p = 12, 3
    rows = [[j, j + 1] for j in range(m - 1)]
    A = np.zeros((len(rows), m), bool)
    for i, r in enumerate(rows):
        A[i, r] = True
    W = np.ones((len(rows), 1)) * 5.0
    prob = _mclp.build_problem(sp.csr_matrix(A), W, p, 0, 1)
    label = _zones.candidate_zones(_adjacency(prob), 4)
    assert label.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    opt = _brute(A, W, p, set())
    assert opt == 30.0  # each site covers its two rows
    lam = np.full(prob.n_rows, 2.5)
    bound, info = _zones.zone_bound(prob, lam, label=label, t=10.0)
    assert info["zone_milps"] == 3 and info["zone_crossing_rows"] == 2
    multi = _mclp.build_problem(sp.csr_matrix(A), np.hstack([W, W]), 2, 1, 2)
    assert _zones.zone_bound(multi, lam, label=label) == (np.inf, {})
    assert opt <= bound <= lagrangian_value(prob, lam[:, None]) + 1e-9
    assert bound == pytest.approx(35.0)  # 2 crossing rows at 2.5 + 3 x 10, zones at t = 10 give 0


def test_zone_phase_tightens_the_certified_bound_deterministically() -> None:
    rng = np.random.default_rng(3)
    n, m = 3000, 600
    xy = rng.uniform(0, 30, (n, 2))
    cxy = rng.uniform(0, 30, (m, 2))
    A = sp.csr_matrix((((xy[:, None, :] - cxy[None, :, :]) ** 2).sum(-1)) < 1.2**2)
    W = rng.integers(1, 20, (n, 1)).astype(float)
    runs = []
    for flag in (False, True, True):
        prob = _mclp.build_problem(A, W, 60, 0, 1)
        st_ = _mclp.SolveSettings(solver="heuristic", zone_bound=flag, work_limit=0.05)
        sol = _mclp.solve(prob, st_)
        before = sol.upper_bound
        runs.append((before, _mclp._zone_phase(prob, sol, st_, _mclp.SafetyStop(np.inf))))
    (b0, off), (b1, on), (_, again) = runs
    assert b0 == b1 and off.upper_bound == b0 and "zone_bound" not in off.log
    assert on.log["zone_milps"] > 0
    assert on.objective <= on.upper_bound < b1  # strictly tighter here
    assert (
        again.upper_bound == on.upper_bound
        and again.log["zone_checkpoints"] == on.log["zone_checkpoints"]
    )


def test_zone_job_gives_the_zone_bound_forked_or_not() -> None:
    rng = np.random.default_rng(5)
    A, W = _instance(5, 40, 14, 0, 0.2)
    prob = _mclp.build_problem(sp.csr_matrix(A), W, 4, 0, 1)
    label = _zones.candidate_zones(_adjacency(prob), 5)
    lam = rng.random(prob.n_rows) * 5.0
    want = _zones.zone_bound(prob, lam, label=label)
    job = _zones.ZoneJob(prob, lam, label=label)
    got = job.result()
    assert got[0] == want[0] and got[1]["zone_checkpoints"] == want[1]["zone_checkpoints"]
    assert job.result() is got  # computed once
    spare = _zones.ZoneJob(prob, lam, label=label)
    spare.cancel()  # not needed: stopped, never waited for
    spare.cancel()
