"""Upper bounds on the MCLP optimum (private): Lagrangian relaxation and LP duals.

* :func:`lagrangian_bound` — averaged-subgradient Lagrangian bound (the default).
* :func:`lagrangian_value` — the exact Lagrangian bound at any given multipliers.
* :func:`lp_dual_bound` — the LP bound from the duals of a capped interior-point run
  (single operator; measured in ``scripts/bench_siting.py --bounds``, not in ``solve``).

Why no two-customer cuts here.  With non-negative weights (all of ours: locked coverage
is folded into the offset) any inequality over the variables of two customers ``i, k``
and their candidates alone cannot cut the LP relaxation: the rows
``z_i <= x(N(i))``, ``z_k <= x(N(k))`` with bounds ``0 <= z, x <= 1`` form a totally
unimodular system (every column has at most two non-zeros, and a column with two has
them in different rows, so the row partition {i}, {k} satisfies Ghouila-Houri), so
their LP polytope is already the integer hull.  A cut must involve the cardinality row
``sum x = p`` (or, as in Lv et al. 2025, negative weights, which this model has not).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from towerplan.siting._model import (
    LAGRANGIAN_AVERAGING,
    LAGRANGIAN_ITERATIONS,
    MCLPProblem,
    SafetyStop,
    _type_values,
)


def lagrangian_bound(
    prob: MCLPProblem,
    lower_bound: float,
    max_iter: int = LAGRANGIAN_ITERATIONS,
    target_gap: float = 0.0,
    safety: SafetyStop | None = None,
    averaging: float = LAGRANGIAN_AVERAGING,
    relax_conflicts: bool = True,
) -> tuple[float, dict[str, Any]]:
    """Upper bound on the optimum by Lagrangian relaxation (averaged subgradient, Polyak steps).

    The covering rows ``z[i,o] <= sum_j A[i,j] x[j,o]`` (multipliers ``0 <= lam <= W``),
    the shared-quota row (free multiplier ``nu``) and, with ``relax_conflicts``, every
    minimum-spacing pair ``y_j + y_k <= 1`` (multiplier ``mu_jk >= 0``) are relaxed;
    without ``relax_conflicts`` the pairs are dropped (a weaker relaxation: the relaxed
    solution may open both sites of a pair).  For fixed multipliers the relaxed
    problem is: cover every row for ``W - lam``, and pick ``p`` structures, each
    dedicated (value ``max_o c[j,o]``) or shared (sum of its best ``cap[j]`` values,
    minus ``nu``), with ``c = A^T lam + C``, less the multipliers ``mu`` of its pairs
    (their sum is added back); a partial sort solves it exactly, so every
    iterate yields a valid bound.  Stops when the bound is within ``target_gap`` of
    ``lower_bound`` (relative), after ``max_iter`` iterations, when the step vanishes,
    or when the ``safety`` stop fires (``lagrangian_time_limited``).  The step is halved
    after ``max_iter / 40`` (10..150) non-improving iterations.  The step direction is
    the exponentially averaged subgradient ``d = a g + (1 - a) d_prev`` with
    ``a = averaging`` (as in the Volume algorithm of Barahona & Anbil, 2000), which damps
    the zig-zag of plain subgradient steps; ``averaging = 1`` is the plain subgradient
    method.  Only the step direction changes: every iterate is still evaluated exactly,
    so the bound stays valid.

    Returns
    -------
    (bound, info)
    """
    t0 = time.perf_counter()
    A = prob.A.astype(float).tocsr()
    AT = A.T  # CSC view: A^T @ lam several times faster than through a CSR copy, same sums
    A_cols = A.tocsc()  # columns of the picked candidates (subgradient)
    W, cap = prob.W, prob.cap
    w_sum = float(W.sum())
    n_op = prob.n_ops
    p, ns = prob.p, prob.n_shared
    nr = prob.n_rows
    if p == 0:
        return prob.offset, {"lagrangian_iterations": 0, "lagrangian_s": 0.0}
    # start: each row's weight spread over its covering candidates
    deg = np.maximum(np.diff(A.indptr), 1).astype(float)
    lam = W / deg[:, None] if nr else W.copy()
    nu = 0.0
    ea, eb = _conflict_edges(prob) if relax_conflicts else (np.zeros(0, np.int64),) * 2
    mu = np.zeros(len(ea))
    best = np.inf
    best_lam, best_nu, best_mu = lam, nu, mu
    theta = 1.0
    since = 0
    patience = int(np.clip(max_iter / 40.0, 10, 150))
    timed_out = False
    it = 0
    d: np.ndarray | None = None
    dnu = 0.0
    dmu = np.zeros(0)
    while it < max_iter:
        it += 1
        L, c, is_sh, top = _relaxed(prob, AT, lam, nu, (ea, eb, mu), w_sum=w_sum)
        if L < best - 1e-12 * abs(best if np.isfinite(best) else 1.0):
            best = L
            best_lam, best_nu, best_mu = lam, nu, mu
            since = 0
        else:
            since += 1
            if since >= patience:
                theta *= 0.5
                since = 0
        if best - lower_bound <= target_gap * max(best, 1e-12) or theta < 1e-6:
            break
        if safety is not None and safety.expired():
            timed_out = True
            break
        # subproblem solution -> subgradient
        shr = is_sh[top]
        X = _relaxed_tenants(c[top], shr, cap[top])
        g = np.asarray(A_cols[:, top] @ X) if nr else np.zeros((0, n_op))
        g -= 1.0
        # projected direction: lam -= step * g, clipped to [0, W]
        np.putmask(g, ((lam <= 0) & (g > 0)) | ((lam >= W) & (g < 0)), 0.0)
        gnu = float(ns - int(shr.sum())) if ns > 0 else 0.0
        gmu = _conflict_subgradient(prob.n_cand, top, ea, eb, mu)
        if d is not None and averaging < 1.0:
            g, gnu, gmu = _averaged((g, gnu, gmu), (d, dnu, dmu), averaging)
        d, dnu, dmu = g, gnu, gmu
        # numpy's own sums, not BLAS: the same bits for any thread count or CPU kernel
        norm2 = float(np.square(g).sum()) + gnu * gnu + float(np.square(gmu).sum())
        if norm2 <= 0:
            break  # the relaxed solution is feasible and complementary: bound is exact
        step = theta * max(L - lower_bound, 1e-9 * max(abs(L), 1.0)) / norm2
        new = g * step  # a new array: best_lam may hold the current one
        np.subtract(lam, new, out=new)
        lam = np.clip(new, 0.0, W, out=new)
        nu -= step * gnu
        mu = np.maximum(mu - step * gmu, 0.0)
    info = {
        "lagrangian_iterations": it,
        "lagrangian_s": time.perf_counter() - t0,
        "lagrangian_bound": best,
        "lagrangian_time_limited": timed_out,
        "lagrangian_conflict_pairs": len(ea),
    }
    prob.info["_multipliers"] = (best_lam, best_nu)
    prob.info["_conflict_multipliers"] = (ea, eb, best_mu)
    return float(best), info


def _relaxed_tenants(ct: np.ndarray, shr: np.ndarray, cap_top: np.ndarray) -> np.ndarray:
    """The relaxed solution's tenants of the picked structures (rows of ``X``).

    ``ct`` holds the picked candidates' values per operator, ``shr`` whether each is
    shared and ``cap_top`` its tenancy: a dedicated structure takes its best operator, a
    shared one its best two and every further operator of positive value up to ``cap``.
    """
    n_top, n_op = ct.shape
    X = np.zeros((n_top, n_op))
    order = np.argsort(-ct, axis=1, kind="stable")
    X[np.arange(n_top), order[:, 0]] = 1.0
    if shr.any() and n_op >= 2:
        rr = np.flatnonzero(shr)
        X[rr, order[rr, 1]] = 1.0
        for r in range(2, n_op):
            ok = rr[(cap_top[rr] > r) & (ct[rr, order[rr, r]] > 0)]
            X[ok, order[ok, r]] = 1.0
    return X


def _averaged(
    g: tuple[np.ndarray, float, np.ndarray],
    prev: tuple[np.ndarray, float, np.ndarray],
    averaging: float,
) -> tuple[np.ndarray, float, np.ndarray]:
    """The averaged direction ``a g + (1 - a) d_prev`` of all three multiplier blocks.

    In place on ``g``'s and ``prev``'s covering arrays (the same products and sums as
    before, so the same bits).
    """
    gl, gnu, gmu = g
    d, dnu, dmu = prev
    gl *= averaging
    d *= 1.0 - averaging
    gl += d
    gnu = averaging * gnu + (1.0 - averaging) * dnu
    gmu = averaging * gmu + (1.0 - averaging) * dmu
    return gl, gnu, gmu


def _conflict_edges(prob: MCLPProblem) -> tuple[np.ndarray, np.ndarray]:
    """The minimum-spacing pairs ``(j, k)``, ``j < k``, as two index arrays."""
    if prob.conflicts is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    tri = sp.triu(prob.conflicts, k=1).tocoo()
    return tri.row.astype(np.int64), tri.col.astype(np.int64)


def _conflict_subgradient(
    m: int, top: np.ndarray, ea: np.ndarray, eb: np.ndarray, mu: np.ndarray
) -> np.ndarray:
    """Projected subgradient ``1 - y_j - y_k`` of the relaxed pairs (``y`` = picked)."""
    if len(ea) == 0:
        return np.zeros(0)
    y = np.zeros(m)
    y[top] = 1.0
    g = 1.0 - y[ea] - y[eb]
    g[(mu <= 0) & (g > 0)] = 0.0
    return g


def _relaxed(
    prob: MCLPProblem,
    AT: sp.csr_matrix,
    lam: np.ndarray,
    nu: float,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    *,
    w_sum: float | None = None,
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """The Lagrangian relaxation at ``(lam, nu, mu)``: value, ``c``, shared flags, picks.

    ``AT`` is ``prob.A.T`` as a float sparse matrix (fastest: the CSC view ``A.T`` of a
    CSR ``A``; any layout sums each candidate's rows in increasing order); ``pairs = (ea, eb, mu)`` are relaxed
    minimum-spacing pairs ``y_ea + y_eb <= 1`` with multipliers ``mu >= 0`` (``None``:
    the pairs are dropped).  For ``0 <= lam <= W``, any ``nu`` and ``mu >= 0`` the value
    is an upper bound on the optimum (see :func:`lagrangian_bound`).  ``w_sum`` is
    ``prob.W.sum()`` if the caller has it.
    """
    m, p, ns = prob.n_cand, prob.p, prob.n_shared
    c = (np.asarray(AT @ lam) if prob.n_rows else np.zeros((m, prob.n_ops))) + prob.C
    D, S = _type_values(c, prob.cap)
    if ns > 0:
        Sv = S - nu
        is_sh = Sv > D
        val = np.where(is_sh, Sv, D)
    else:
        is_sh = np.zeros(m, bool)
        val = D
    mu_sum = 0.0
    if pairs is not None and len(pairs[0]):
        ea, eb, mu = pairs
        val = val - np.bincount(ea, mu, minlength=m) - np.bincount(eb, mu, minlength=m)
        mu_sum = float(mu.sum())
    top = np.argpartition(-val, p - 1)[:p] if p < m else np.arange(m)
    w_sum = float(prob.W.sum()) if w_sum is None else w_sum
    L = prob.offset + w_sum - float(lam.sum()) + float(val[top].sum()) + nu * ns
    return L + mu_sum, c, is_sh, top


def lagrangian_value(
    prob: MCLPProblem, lam: np.ndarray, nu: float = 0.0, *, mu: np.ndarray | None = None
) -> float:
    """Exact Lagrangian upper bound at multipliers ``lam`` (clipped to ``[0, W]``) and ``nu``.

    Valid for *any* multipliers: weak duality holds for every ``0 <= lam <= W`` (covering
    rows), every free ``nu`` (shared-quota row) and every ``mu >= 0`` (minimum-spacing
    pairs in the order of ``_conflict_edges``, clipped at 0; ``None``: pairs dropped), and
    the relaxed problem is solved exactly, so approximate duals from any source (an
    interrupted interior-point run) give a valid bound.
    """
    if prob.p == 0:
        return prob.offset
    lam = np.clip(np.asarray(lam, dtype=float).reshape(prob.W.shape), 0.0, prob.W)
    AT = prob.A.astype(float).tocsr().T
    pairs = None
    if mu is not None:
        ea, eb = _conflict_edges(prob)
        pairs = (ea, eb, np.maximum(np.asarray(mu, dtype=float).reshape(len(ea)), 0.0))
    return _relaxed(prob, AT, lam, float(nu), pairs)[0]


def lp_dual_bound(
    prob: MCLPProblem, max_iterations: int, safety: SafetyStop | None = None
) -> tuple[float, dict[str, Any]]:
    """Upper bound from the duals of the LP relaxation (single operator, dedicated only).

    The LP relaxation of the classic MCLP is solved by HiGHS's interior-point method
    without crossover, for at most ``max_iterations`` iterations (deterministic work); its
    covering-row duals, clipped to ``[0, W]``, are evaluated exactly by
    :func:`lagrangian_value`.  With the cardinality row kept in the relaxed problem the
    Lagrangian dual equals the LP optimum (the relaxed problem "pick ``p`` by value" has
    the integrality property), so a converged run gives the LP bound and an interrupted
    one a valid, weaker bound.  When the result is tighter than the stored multipliers'
    bound they replace them (``prob.info['_multipliers']``) for rounding and LNS seeds.

    Returns
    -------
    (bound, info)
        ``inf`` when the model is not single-operator or no dual iterate exists.
    """
    from towerplan.siting._exact import _milp_columns, _model_arrays
    from towerplan.siting._highs import solve_relaxation_ipm

    if prob.n_ops != 1 or prob.n_shared != 0 or prob.p == 0:
        return float("inf"), {}
    model, _ = _model_arrays(prob, _milp_columns(prob))
    left = safety.left() if safety is not None else float("inf")
    res = solve_relaxation_ipm(model, max_iterations, left)
    info: dict[str, Any] = {
        "lp_ipm_iterations": res.iterations,
        "lp_ipm_status": res.status,
        "lp_ipm_s": res.solve_s,
        "lp_ipm_time_limited": res.time_limited,
    }
    if res.row_dual is None or prob.n_rows == 0:
        return float("inf"), info
    lam = np.abs(res.row_dual[: prob.n_rows])[:, None]
    bound = lagrangian_value(prob, lam)
    info["lp_dual_bound"] = bound
    old = prob.info.get("_multipliers")
    if old is None or bound < lagrangian_value(prob, old[0], old[1]):
        prob.info["_multipliers"] = (np.clip(lam, 0.0, prob.W), 0.0)
    return bound, info
