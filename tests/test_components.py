"""Exact component decomposition of the MCLP (towerplan.siting._components)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from towerplan.errors import ParameterError
from towerplan.siting._components import allocate, candidate_components, solve_by_components
from towerplan.siting._mclp import solve
from towerplan.siting._model import SolveSettings, build_problem, check_solution, evaluate


def _clusters(seed: int, n_clusters: int = 3) -> tuple[sp.csr_matrix, np.ndarray]:
    """Disjoint random clusters (rows x candidates) plus two candidates covering nothing."""
    rng = np.random.default_rng(seed)
    blocks = []
    for _ in range(n_clusters):
        n, m = int(rng.integers(8, 15)), int(rng.integers(4, 8))
        blocks.append(sp.random(n, m, density=0.35, random_state=rng, format="csr") > 0)
    A = sp.block_diag(blocks, format="csr")
    A = sp.hstack([A, sp.csr_matrix((A.shape[0], 2), dtype=bool)], format="csr")
    W = rng.uniform(1, 100, size=(A.shape[0], 1))
    return A, W


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("p", [4, 9])
def test_decomposition_equals_full_exact_solve(seed: int, p: int) -> None:
    A, W = _clusters(seed)
    prob = build_problem(A, W, n_dedicated=p, n_shared=0, cap=1)
    settings = SolveSettings(solver="exact", mip_gap=0.0)
    full = solve(prob, settings)
    parts = solve_by_components(prob, settings)
    check_solution(prob, parts)
    assert len(parts.sites) == p
    assert evaluate(prob, parts) == pytest.approx(parts.objective)
    assert parts.objective == pytest.approx(full.objective, rel=1e-9)
    assert parts.gap == pytest.approx(0.0, abs=1e-9)


def test_components_found() -> None:
    A, W = _clusters(5, n_clusters=4)
    prob = build_problem(A, W, n_dedicated=2, n_shared=0, cap=1)
    n, lab = candidate_components(prob)
    assert n <= 4 and (lab == -1).sum() >= 2  # the two empty candidates form the pool


def test_allocate_non_concave_curves() -> None:
    # a convex curve (nothing until 2 sites) must still get its 2 sites
    alloc, value = allocate([np.array([0.0, 0.0, 10.0]), np.array([0.0, 4.0, 5.0])], 2)
    assert alloc.tolist() == [2, 0] and value == 10.0
    alloc, value = allocate([np.array([0.0, 0.0, 10.0]), np.array([0.0, 4.0, 5.0])], 3)
    assert alloc.tolist() == [2, 1] and value == 14.0
    with pytest.raises(ParameterError):
        allocate([np.array([0.0, 1.0])], 2)


def test_shared_structures_rejected() -> None:
    A, W = _clusters(1)
    prob = build_problem(A, np.hstack([W, W]), n_dedicated=1, n_shared=1, cap=2)
    with pytest.raises(ParameterError, match="dedicated"):
        solve_by_components(prob)
