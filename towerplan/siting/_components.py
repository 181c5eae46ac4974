"""Exact decomposition of a maximal-covering instance into independent components (private).

The coverage graph links a candidate to the demand rows it covers and to the
candidates it conflicts with (minimum spacing).  Its connected components share
no row and no conflict, so the objective is separable::

    f(p) = offset + max { sum_c f_c(k_c) : sum_c k_c = p, 0 <= k_c <= m_c }

where ``f_c(k)`` is the best value of component ``c`` with ``k`` structures and
``m_c`` its number of candidates.  :func:`solve_by_components` builds every
component's value curve ``f_c(0..K_c)`` with the solver's public matrix-level API
(:func:`towerplan.siting._mclp.solve` on the component's sub-problem), stopping a
curve once the component is fully covered (more sites add nothing), and allocates
``p`` across components by an exact dynamic programme (a multiple-choice
knapsack; curves need not be concave).  Candidates with no row and no conflict
form one pool whose curve is the sorted cumulative sum of their private weights.

What is exact and what is not
-----------------------------
- The split and the allocation are exact: no solution is lost, whatever ``p``.
- The result is optimal when every curve point is (the sub-problems are solved
  to a certified gap; ``upper_bound`` is the same DP over the curves' upper
  bounds, so the reported gap is a certified gap of the whole instance).
- Only dedicated structures (``n_shared == 0``) are decomposed: with shared
  structures the budget is two-dimensional (dedicated, shared) -- not done here;
  :func:`solve_by_components` raises ``ParameterError`` for such instances.
- The price is ``sum_c K_c`` sub-solves; it pays when components are many and
  small (islands, separated towns), not for one connected city.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from towerplan.errors import N_, ParameterError
from towerplan.siting._mclp import solve
from towerplan.siting._model import MCLPProblem, MCLPSolution, SolveSettings

logger = logging.getLogger(__name__)

__all__ = ["allocate", "candidate_components", "solve_by_components"]


def candidate_components(prob: MCLPProblem) -> tuple[int, np.ndarray]:
    """Component label of every candidate (rows join the candidates that cover them).

    Returns
    -------
    int, ndarray (m,)
        Number of components and the label per candidate; label ``-1`` marks a
        candidate with no row and no conflict (the free pool).
    """
    n, m = prob.n_rows, prob.n_cand
    A = sp.csr_matrix(prob.A, dtype=bool)
    blocks = [[None, A], [A.T, prob.conflicts if prob.conflicts is not None else None]]
    if blocks[1][1] is None:
        blocks[1][1] = sp.csr_matrix((m, m), dtype=bool)
    g = sp.bmat(blocks, format="csr")
    _, lab = connected_components(g, directed=False)
    cand = lab[n:]
    degree = np.asarray(A.sum(axis=0)).ravel()
    if prob.conflicts is not None:
        degree = degree + np.asarray((prob.conflicts != 0).sum(axis=0)).ravel()
    cand = np.where(degree > 0, cand, -1)
    used = np.unique(cand[cand >= 0])
    relabel = np.full(lab.max() + 1 if lab.size else 1, -1)
    relabel[used] = np.arange(len(used))
    return len(used), np.where(cand >= 0, relabel[np.maximum(cand, 0)], -1)


def allocate(curves: Sequence[np.ndarray], p: int) -> tuple[np.ndarray, float]:
    """Exact split of ``p`` over components maximising ``sum_c curve_c[k_c]``.

    ``curves[c][k]`` is the value with ``k`` structures (``len - 1`` = capacity).
    Returns the allocation and its value; raises when ``p`` exceeds the capacity.
    """
    if p > sum(len(c) - 1 for c in curves):
        raise ParameterError(
            msgid=N_("p = {p}: more structures than candidates in all components"),
            p=p,
        )
    best = np.full(p + 1, -np.inf)
    best[0] = 0.0
    choice = np.zeros((len(curves), p + 1), dtype=np.int64)
    for c, curve in enumerate(curves):
        new = np.full(p + 1, -np.inf)
        for k in range(min(p, len(curve) - 1) + 1):
            cand = np.full(p + 1, -np.inf)
            cand[k:] = best[: p + 1 - k] + float(curve[k])
            better = cand > new
            new[better] = cand[better]
            choice[c, better] = k
        best = new
    alloc = np.zeros(len(curves), dtype=np.int64)
    b = p
    for c in range(len(curves) - 1, -1, -1):
        alloc[c] = choice[c, b]
        b -= int(alloc[c])
    return alloc, float(best[p])


def _sub(prob: MCLPProblem, cands: np.ndarray, k: int) -> tuple[MCLPProblem, np.ndarray]:
    rows = np.unique(prob.A[:, cands].nonzero()[0])
    conf = None if prob.conflicts is None else sp.csr_matrix(prob.conflicts[cands][:, cands])
    sub = MCLPProblem(
        A=sp.csr_matrix(prob.A[rows][:, cands]),
        W=prob.W[rows],
        C=prob.C[cands],
        n_dedicated=k,
        n_shared=0,
        cap=prob.cap[cands],
        conflicts=conf,
    )
    return sub, rows


def _curve(
    prob: MCLPProblem, cands: np.ndarray, p: int, settings: SolveSettings
) -> tuple[np.ndarray, np.ndarray, list[MCLPSolution]]:
    """Value and upper-bound curves of one component, up to saturation or ``p``."""
    sub, rows = _sub(prob, cands, 0)
    total = float(prob.W[rows].sum() + prob.C[cands].max(axis=1).sum())
    vals, ubs, sols = [0.0], [0.0], [solve(sub, settings)]
    for k in range(1, min(p, len(cands)) + 1):
        sub.n_dedicated = k
        sol = solve(sub, settings)
        vals.append(max(vals[-1], sol.objective))
        ubs.append(max(ubs[-1], min(sol.upper_bound, total)))
        sols.append(sol)
        if vals[-1] >= total - 1e-9 * max(1.0, total):
            break
    # beyond saturation extra structures add nothing (the component has room for them)
    cap = min(p, len(cands))
    pad = cap + 1 - len(vals)
    return np.array(vals + [vals[-1]] * pad), np.array(ubs + [ubs[-1]] * pad), sols


def _fill(prob: MCLPProblem, cands: np.ndarray, chosen: np.ndarray, extra: int) -> np.ndarray:
    """Up to ``extra`` unused local candidates without conflicts (a saturated component)."""
    picked: list[int] = []
    taken = set(int(j) for j in chosen)
    conf = prob.conflicts
    for j in range(len(cands)):
        if len(picked) >= extra:
            break
        if j in taken:
            continue
        if conf is not None:
            row = conf[cands[j]].indices
            if np.isin(row, cands[[*taken, *picked]]).any():
                continue
        picked.append(j)
    if len(picked) < extra:
        raise ParameterError(
            msgid=N_(
                "component of {n_cands} candidates cannot hold {extra} more structures "
                "(minimum spacing); lower the site count or the spacing"
            ),
            n_cands=len(cands),
            extra=extra,
        )
    return np.array(picked, dtype=np.int64)


def solve_by_components(prob: MCLPProblem, settings: SolveSettings | None = None) -> MCLPSolution:
    """Solve a dedicated-only MCLP component by component (see the module docstring)."""
    st = settings if settings is not None else SolveSettings()
    if prob.n_shared:
        raise ParameterError(
            msgid=N_(
                "component decomposition handles dedicated structures only (n_shared = 0); "
                "solve instances with shared structures with the full model"
            )
        )
    p = prob.p
    n_comp, lab = candidate_components(prob)
    groups = [np.flatnonzero(lab == c) for c in range(n_comp)]
    curves, ubs, sols = [], [], []
    for cands in groups:
        v, u, s = _curve(prob, cands, p, st)
        curves.append(v)
        ubs.append(u)
        sols.append(s)
    pool = np.flatnonzero(lab == -1)
    pool_val = prob.C[pool].max(axis=1) if len(pool) else np.zeros(0)
    order = pool[np.argsort(-pool_val, kind="stable")] if len(pool) else pool
    pool_curve = np.concatenate([[0.0], np.cumsum(np.sort(pool_val)[::-1])])[: p + 1]
    alloc, value = allocate([*curves, pool_curve], p)
    _, bound = allocate([*ubs, pool_curve], p)
    sites, tenants = [], []
    for c, cands in enumerate(groups):
        k = int(alloc[c])
        if k == 0:
            continue
        sol = sols[c][min(k, len(sols[c]) - 1)]
        free = _fill(prob, cands, sol.sites, k - len(sol.sites))
        sites.append(cands[np.concatenate([sol.sites, free]).astype(np.int64)])
        ten = np.zeros((len(free), prob.n_ops), dtype=bool)
        ten[:, 0] = True
        tenants.append(np.vstack([sol.tenants, ten]))
    k_pool = int(alloc[-1])
    if k_pool:
        chosen = order[:k_pool]
        t = np.zeros((k_pool, prob.n_ops), dtype=bool)
        t[np.arange(k_pool), prob.C[chosen].argmax(axis=1)] = True
        sites.append(chosen)
        tenants.append(t)
    all_sites = np.concatenate(sites) if sites else np.zeros(0, np.int64)
    all_ten = np.vstack(tenants) if tenants else np.zeros((0, prob.n_ops), bool)
    out = MCLPSolution(all_sites, all_ten, np.zeros(len(all_sites), bool))
    out.objective = prob.offset + value
    out.upper_bound = prob.offset + max(bound, value)
    out.method = f"components: {n_comp} components + pool of {len(pool)}, exact allocation"
    out.log = {"components": n_comp, "allocation": alloc.tolist()}
    logger.info("%s; objective %.1f, bound %.1f", out.method, out.objective, out.upper_bound)
    return out
