"""Block-wise coverage and problem building equal the whole-matrix build, exactly."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from towerplan.coverage import coverage_blocks, coverage_matrix
from towerplan.errors import ParameterError
from towerplan.siting import _model

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _grid_instance(seed: int, n_op: int = 1) -> tuple[np.ndarray, ...]:
    """Demand on an integer grid, candidates on a coarser one: many pairs at exactly r."""
    rng = np.random.default_rng(seed)
    gx, gy = np.meshgrid(np.arange(0, 400, 10.0), np.arange(0, 300, 10.0))
    dxy = np.column_stack([gx.ravel(), gy.ravel()])
    cx, cy = np.meshgrid(np.arange(20, 400, 30.0), np.arange(10, 300, 40.0))
    cxy = np.column_stack([cx.ravel(), cy.ravel()])
    W = rng.gamma(2.0, 3.0, (len(dxy), n_op))
    W[rng.random(W.shape) < 0.3] = 0.0
    return dxy, cxy, W


def _same_problem(p: _model.MCLPProblem, q: _model.MCLPProblem) -> None:
    for k in ("indptr", "indices", "data"):
        a, b = getattr(p.A, k), getattr(q.A, k)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert p.A.shape == q.A.shape
    np.testing.assert_array_equal(p.W, q.W)  # same sums in the same order: bit-equal
    np.testing.assert_array_equal(p.C, q.C)
    drop = {"reduce_s"}
    assert {k: v for k, v in p.info.items() if k not in drop} == {
        k: v for k, v in q.info.items() if k not in drop
    }


@pytest.mark.parametrize("block_rows", [17, 10_000])
def test_coverage_blocks_stack_to_coverage_matrix(block_rows: int) -> None:
    dxy, cxy, _ = _grid_instance(0)
    r = np.where(np.arange(len(cxy)) % 3 == 0, 50.0, 30.0)  # per-site radii, ties at 30/50
    full = coverage_matrix(dxy, cxy, r)
    blocks = list(coverage_blocks(dxy, cxy, r, block_rows=block_rows))
    assert [b.shape[0] for b in blocks] == [
        min(block_rows, len(dxy) - s) for s in range(0, len(dxy), block_rows)
    ]
    stacked = sp.vstack(blocks, format="csr")
    assert full.nnz == stacked.nnz > 0
    assert (full != stacked).nnz == 0
    dense = np.hypot(*(dxy[:, None, :] - cxy[None, :, :]).transpose(2, 0, 1)) <= r
    np.testing.assert_array_equal(full.toarray(), dense)
    with pytest.raises(ParameterError, match="block_rows"):
        next(coverage_blocks(dxy, cxy, 30.0, block_rows=0))


@pytest.mark.parametrize("n_op", [1, 3])
@pytest.mark.parametrize("block_rows", [13, 500])
def test_block_build_equals_whole_matrix_build(
    n_op: int, block_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    dxy, cxy, W = _grid_instance(n_op, n_op)
    args = (W, 20, 0, 1, None, 2.5)
    whole = _model.build_problem(coverage_matrix(dxy, cxy, 30.0), *args)
    assert whole.n_rows < whole.info["rows_with_weight"] < len(dxy)
    blocks = coverage_blocks(dxy, cxy, 30.0, block_rows=block_rows)
    _same_problem(
        _model.build_problem_blocks(blocks, W, len(cxy), quotas=(20, 0), cap=1, offset=2.5), whole
    )
    monkeypatch.setattr(_model, "REDUCE_BLOCK_ROWS", block_rows)
    _same_problem(_model.build_problem(coverage_matrix(dxy, cxy, 30.0), *args), whole)


def _reference(A: np.ndarray, W: np.ndarray) -> tuple[dict[tuple[int, ...], float], np.ndarray]:
    """Row reduction by dictionary: merged column sets -> summed weight, private weights."""
    merged: dict[tuple[int, ...], float] = {}
    C = np.zeros(A.shape[1])
    for i in range(A.shape[0]):
        cols = tuple(np.flatnonzero(A[i]).tolist())
        if W[i] <= 0 or not cols:
            continue
        if len(cols) == 1:
            C[cols[0]] += W[i]
        else:
            merged[cols] = merged.get(cols, 0.0) + W[i]
    return merged, C


def _as_dict(p: _model.MCLPProblem) -> dict[tuple[int, ...], float]:
    out: dict[tuple[int, ...], float] = {}
    for i in range(p.n_rows):
        cols = tuple(p.A.indices[p.A.indptr[i] : p.A.indptr[i + 1]].tolist())
        out[cols] = out.get(cols, 0.0) + float(p.W[i, 0])
    return out


@SETTINGS
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 60),
    m=st.integers(1, 6),
    block_rows=st.integers(1, 70),
    collide=st.booleans(),
)
def test_block_reduction_matches_reference(
    seed: int, n: int, m: int, block_rows: int, collide: bool
) -> None:
    """Exact against a dictionary reduction; forced hash collisions never merge wrongly."""
    rng = np.random.default_rng(seed)
    A = rng.random((n, m)) < 0.4
    W = rng.integers(0, 5, n).astype(float)
    ref, C = _reference(A, W)
    blocks = [sp.csr_matrix(A[s : s + block_rows]) for s in range(0, n, block_rows)]
    if collide:  # every row of a length gets the same hash key: only the exact check remains
        real = _model._row_keys

        def keys(a: sp.csr_matrix, seed: int = 0) -> np.ndarray:
            k = real(a)
            k["a"], k["b"] = 7, 11
            return k

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_model, "_row_keys", keys)
            prob = _model.build_problem_blocks(blocks, W, m, quotas=(1, 0), cap=1)
    else:
        prob = _model.build_problem_blocks(blocks, W, m, quotas=(1, 0), cap=1)
        assert prob.n_rows == len(ref)
    assert _as_dict(prob) == pytest.approx(ref)
    np.testing.assert_allclose(prob.C[:, 0], C)
    assert prob.info["unreachable_weight"] == W[~A.any(axis=1)].sum()


def test_block_build_row_count_mismatch() -> None:
    A = sp.csr_matrix(np.eye(4, dtype=bool))
    with pytest.raises(ParameterError, match="W has 5 rows but the coverage matrix has 4"):
        _model.build_problem_blocks([A[:2], A[2:]], np.ones(5), 4, quotas=(1, 0), cap=1)
    with pytest.raises(ParameterError, match="W has 3 rows"):
        _model.build_problem_blocks([A[:2], A[2:]], np.ones(3), 4, quotas=(1, 0), cap=1)
