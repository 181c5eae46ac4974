"""Regional exchange moves (``siting._exchange``): the delta choice against brute force."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from towerplan.siting._exchange import best_exchange

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
