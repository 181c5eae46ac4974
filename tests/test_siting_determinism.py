"""Reproducibility: the siting solve is bounded by work, never by seconds.

The same instance solved twice, the second time beside processes saturating every core,
gives the same sites, tenants, objective, bound and work counters.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tests.conftest import cpu_burner
from towerplan.siting import _mclp
from towerplan.siting._setcover import solve_set_cover


def _instance(seed: int = 3, n: int = 1200, m: int = 120) -> _mclp.MCLPProblem:
    rng = np.random.default_rng(seed)
    cxy = rng.uniform(0, 10_000, (m, 2))
    dxy = rng.uniform(0, 10_000, (n, 2))
    d2 = ((dxy[:, None, :] - cxy[None, :, :]) ** 2).sum(axis=2)
    A = sp.csr_matrix(d2 < 1400.0**2)
    W = rng.gamma(2.0, 50.0, (n, 1)) * np.array([[0.5, 0.3, 0.2]])
    W[rng.random(W.shape) < 0.2] = 0.0  # covered by a locked site of that operator
    return _mclp.build_problem(A, W, 6, 4, 3, None, 1000.0)


def _fingerprint(sol: _mclp.MCLPSolution) -> tuple:
    order = np.argsort(sol.sites)
    work = {k: v for k, v in sol.log.items() if not k.endswith("_s")}
    return (
        sol.sites[order].tolist(),
        sol.tenants[order].tolist(),
        sol.shared[order].tolist(),
        sol.objective,
        sol.upper_bound,
        sol.stopped_by,
        sol.method,
        sorted(work.items()),
    )


def test_same_solution_under_cpu_load() -> None:
    settings = _mclp.SolveSettings("heuristic", mip_gap=1e-6, work_limit=0.05)
    quiet = _mclp.solve(_instance(), settings)
    with cpu_burner():
        loaded = _mclp.solve(_instance(), settings)
    assert quiet.stopped_by in ("gap", "work_limit")
    assert quiet.log["lns_subproblems"] > 0  # the LNS ran (bounded by re-solves)
    assert _fingerprint(quiet) == _fingerprint(loaded)


def test_benders_same_under_cpu_load() -> None:
    from towerplan.siting._benders import BendersLimits, solve_benders

    prob = _instance(7, 400, 40)
    limits = BendersLimits(max_nodes=30, mip_gap=0.0)
    quiet = solve_benders(prob, limits)
    with cpu_burner():
        loaded = solve_benders(prob, limits)
    assert quiet.log["benders_nodes"] > 0 and quiet.log["benders_cuts"] > 0
    assert _fingerprint(quiet) == _fingerprint(loaded)


def test_set_cover_same_under_cpu_load() -> None:
    prob = _instance(5, 500, 70)
    w = prob.W.sum(axis=1)
    a = solve_set_cover(prob.A, w, 0.9, "exact", work_limit=0.05)
    with cpu_burner():
        b = solve_set_cover(prob.A, w, 0.9, "exact", work_limit=0.05)
    assert a.selected.tolist() == b.selected.tolist()
    assert (a.lower_bound, a.optimal, a.stopped_by) == (b.lower_bound, b.optimal, b.stopped_by)
    assert 0 < a.lower_bound <= a.n_selected


def test_bad_work_limits_are_one_line_errors() -> None:
    import pytest

    from towerplan.errors import ParameterError

    for kw in (
        {"work_limit": float("nan")},
        {"work_limit": float("inf")},
        {"work_limit": -1.0},
        {"time_limit_s": float("nan")},
        {"time_limit_s": -3.0},
        {"max_nodes": -1},
        {"mip_gap": float("nan")},
        {"lagrangian_averaging": 0.0},
        {"lagrangian_averaging": float("nan")},
        {"lagrangian_averaging": 1.5},
    ):
        with pytest.raises(ParameterError) as exc:
            _mclp.SolveSettings(**kw)  # type: ignore[arg-type]
        assert "\n" not in str(exc.value) and next(iter(kw)) in str(exc.value)


def test_bad_scenario_work_limits_name_the_key(tmp_path) -> None:
    import importlib.resources

    import pytest
    import yaml

    from towerplan.errors import ScenarioError
    from towerplan.scenario import load_scenario

    text = (importlib.resources.files("towerplan") / "scenarios" / "cantho-2020.yaml").read_text(
        "utf-8"
    )
    for key, value in (
        ("work_limit", float("nan")),
        ("work_limit", float("inf")),
        ("work_limit", -1.0),
        ("time_limit_s", float("nan")),
        ("time_limit_s", -5.0),
        ("max_nodes", -1),
        ("mip_gap", 1.5),
    ):
        raw = yaml.safe_load(text)
        raw["sites"][key] = value
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
        with pytest.raises(ScenarioError) as exc:
            load_scenario(path)
        msg = str(exc.value)
        assert f"sites.{key}" in msg and "\n" not in msg, msg
