"""Upper bounds on the MCLP optimum (private): Lagrangian relaxation."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from towerplan.siting._model import (
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
) -> tuple[float, dict[str, Any]]:
    """Upper bound on the optimum by Lagrangian relaxation (subgradient, Polyak steps).

    The covering rows ``z[i,o] <= sum_j A[i,j] x[j,o]`` (multipliers ``0 <= lam <= W``)
    and the shared-quota row (free multiplier ``nu``) are relaxed; minimum-spacing
    conflicts are dropped (a relaxation too).  For fixed multipliers the relaxed
    problem is: cover every row for ``W - lam``, and pick ``p`` structures, each
    dedicated (value ``max_o c[j,o]``) or shared (sum of its best ``cap[j]`` values,
    minus ``nu``), with ``c = A^T lam + C``; a partial sort solves it exactly, so every
    iterate yields a valid bound.  Stops when the bound is within ``target_gap`` of
    ``lower_bound`` (relative), after ``max_iter`` iterations, when the step vanishes,
    or when the ``safety`` stop fires (``lagrangian_time_limited``).  The step is halved
    after ``max_iter / 40`` (10..150) non-improving iterations.

    Returns
    -------
    (bound, info)
    """
    t0 = time.perf_counter()
    A = prob.A.astype(float).tocsr()
    AT = A.T.tocsr()
    W, C, cap = prob.W, prob.C, prob.cap
    n_op = prob.n_ops
    p, ns = prob.p, prob.n_shared
    nr = prob.n_rows
    m = prob.n_cand
    if p == 0:
        return prob.offset, {"lagrangian_iterations": 0, "lagrangian_s": 0.0}
    # start: each row's weight spread over its covering candidates
    deg = np.maximum(np.diff(A.indptr), 1).astype(float)
    lam = W / deg[:, None] if nr else W.copy()
    nu = 0.0
    best = np.inf
    best_lam, best_nu = lam, nu
    theta = 1.0
    since = 0
    patience = int(np.clip(max_iter / 40.0, 10, 150))
    timed_out = False
    it = 0
    ar = np.arange(m)
    wsum = float(W.sum())
    zero_c = np.zeros((m, n_op))
    while it < max_iter:
        it += 1
        c = (np.asarray(AT @ lam) if nr else zero_c) + C
        D, S = _type_values(c, cap)
        if ns > 0:
            Sv = S - nu
            is_sh = Sv > D
            val = np.where(is_sh, Sv, D)
        else:
            is_sh = np.zeros(m, bool)
            val = D
        top = np.argpartition(-val, p - 1)[:p] if p < m else ar
        L = prob.offset + wsum - float(lam.sum()) + float(val[top].sum()) + nu * ns
        if L < best - 1e-12 * abs(best if np.isfinite(best) else 1.0):
            best = L
            best_lam, best_nu = lam, nu
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
        X = np.zeros((len(top), n_op))
        ct = c[top]
        order = np.argsort(-ct, axis=1, kind="stable")
        X[np.arange(len(top)), order[:, 0]] = 1.0
        shr = is_sh[top]
        if shr.any() and n_op >= 2:
            rr = np.flatnonzero(shr)
            X[rr, order[rr, 1]] = 1.0
            for r in range(2, n_op):
                ok = rr[(cap[top[rr]] > r) & (ct[rr, order[rr, r]] > 0)]
                X[ok, order[ok, r]] = 1.0
        g = np.asarray(AT[top].T @ X) if nr else np.zeros((0, n_op))
        g -= 1.0
        # projected direction: lam -= step * g, clipped to [0, W]
        g[((lam <= 0) & (g > 0)) | ((lam >= W) & (g < 0))] = 0.0
        gnu = float(ns - int(shr.sum())) if ns > 0 else 0.0
        norm2 = float(np.vdot(g, g)) + gnu * gnu
        if norm2 <= 0:
            break  # the relaxed solution is feasible and complementary: bound is exact
        step = theta * max(L - lower_bound, 1e-9 * max(abs(L), 1.0)) / norm2
        lam = lam - step * g
        np.clip(lam, 0.0, W, out=lam)
        nu -= step * gnu
    info = {
        "lagrangian_iterations": it,
        "lagrangian_s": time.perf_counter() - t0,
        "lagrangian_bound": best,
        "lagrangian_time_limited": timed_out,
    }
    prob.info["_multipliers"] = (best_lam, best_nu)
    return float(best), info
