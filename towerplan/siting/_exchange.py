"""The choice of a regional exchange: one count delta per window, deltas summing to a total (private).

A *regional exchange* re-solves K pairwise independent LNS windows (no demand row and
no spacing pair shared between two of them, the rest of the plan fixed), each for a few
changes of its structure counts (a *delta*: one integer per count, e.g. ``(dedicated,
shared)`` for several operators or ``(structures,)`` for one).  Since the windows are
independent, their gains add up exactly, and the best exchange is the choice of one delta
per window with the deltas summing to ``total`` (``(0, ...)``: the plan's counts kept)
and the total gain maximal.  :func:`best_exchange` finds it exactly by a dynamic
programme over the partial sums of the deltas (the number of partial sums is bounded by
the product of the deltas' ranges, a few hundred for K <= 30 windows and deltas in
-2..2), pruning partial sums the remaining windows cannot bring back to ``total``.

Ties are broken deterministically: a window's deltas are tried zero delta first, then in
sorted order, and a partial sum is replaced only by a strictly larger gain; so the
result depends only on the gains, never on the order of a mapping.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TypeVar

__all__ = ["best_exchange"]

Delta = tuple[int, ...]
D = TypeVar("D", bound=tuple[int, ...])
"""A count delta type: ``tuple[int]``, ``tuple[int, int]``, ..."""


def _ordered(options: Mapping[D, float], dim: int) -> list[tuple[Delta, float, D]]:
    """A window's finite options ``(delta as ints, gain, key)``, the zero delta first and
    the rest sorted."""
    out: list[tuple[Delta, float, D]] = []
    for delta, gain in options.items():
        d = tuple(int(v) for v in delta)
        if len(d) != dim:
            raise ValueError(f"best_exchange: delta {delta!r} has {len(d)} entries, not {dim}")
        if math.isfinite(gain):
            out.append((d, float(gain), delta))
    return sorted(out, key=lambda kv: (any(kv[0]), kv[0]))


def best_exchange(gains: Sequence[Mapping[D, float]], *, total: D) -> tuple[float, tuple[D, ...]]:
    """The best choice of one delta per window with the deltas summing to ``total``.

    Parameters
    ----------
    gains : sequence of mappings
        One mapping per window: count delta (a tuple of ints, all of length
        ``len(total)``) -> the window's exact best gain with that delta.  Deltas missing
        or with a non-finite gain are not allowed for that window.
    total : tuple of int
        The required sum of the chosen deltas (``(0, 0)``: counts kept).

    Returns
    -------
    gain : float
        The maximal total gain (the sum of the chosen deltas' gains; ``0.0`` for no
        windows and a zero ``total``).
    deltas : tuple of tuples
        The chosen delta of each window (a key of its mapping), in the order of ``gains``.

    Raises
    ------
    ValueError
        If no choice of the allowed deltas sums to ``total``, or a delta's length is
        not ``len(total)``.
    """
    dim = len(total)
    options = [_ordered(g, dim) for g in gains]
    k = len(options)
    # lo[i], hi[i]: the range of partial sums windows i.. can still add, per count
    lo = [[0] * dim for _ in range(k + 1)]
    hi = [[0] * dim for _ in range(k + 1)]
    for i in range(k - 1, -1, -1):
        if not options[i]:
            raise ValueError(f"best_exchange: window {i} allows no delta")
        for j in range(dim):
            lo[i][j] = lo[i + 1][j] + min(d[j] for d, _, _ in options[i])
            hi[i][j] = hi[i + 1][j] + max(d[j] for d, _, _ in options[i])
    zero: Delta = (0,) * dim
    layers: list[dict[Delta, tuple[float, Delta, D]]] = []
    states: dict[Delta, float] = {zero: 0.0}
    for i, opts in enumerate(options):
        nxt: dict[Delta, tuple[float, Delta, D]] = {}
        for s in sorted(states):
            base = states[s]
            for d, g, key in opts:
                t = tuple(a + b for a, b in zip(s, d, strict=True))
                if any(not lo[i + 1][j] <= total[j] - t[j] <= hi[i + 1][j] for j in range(dim)):
                    continue
                val = base + g
                old = nxt.get(t)
                if old is None or val > old[0]:
                    nxt[t] = (val, s, key)
        layers.append(nxt)
        states = {t: v[0] for t, v in nxt.items()}
    end = tuple(int(v) for v in total)
    if end not in states:
        raise ValueError(f"best_exchange: no choice of the windows' deltas sums to {end}")
    chosen: list[D] = []
    s = end
    for layer in reversed(layers):
        _, prev, key = layer[s]
        chosen.append(key)
        s = prev
    return states[end], tuple(reversed(chosen))
