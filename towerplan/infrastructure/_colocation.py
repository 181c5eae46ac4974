"""Matrix-level co-location model: fewest / cheapest moves to a sharing target (private).

With ``S0`` structures and ``M0`` shared ones after the plan, binaries ``x_k``
(relocation option ``k``: proposed dedicated site ``site[k]`` onto existing host
``reloc_host[k]``), ``a_k`` (add a tenant to single-tenant host ``add_host[k]``) and
``y_q`` (single-tenant host ``single[q]`` becomes shared)::

    min  sum c_k x_k + sum c_a a_k
    s.t. sum_{k: site[k] = i} x_k <= 1                 (each site moves once)
         sum_{k -> j} x_k + sum_{k -> j} a_k <= free_j (free tenancy of host j)
         y_q <= sum_{k -> single[q]} (x_k + a_k)       (shared only if it gained a tenant)
         sum y + t * sum x >= t * S0 - M0              (rate (M0 + sum y) / (S0 - sum x) >= t)

solved through the one HiGHS wrapper (:mod:`towerplan.siting._highs`) within
deterministic node / checkpoint limits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from towerplan.siting._highs import MilpModel, MilpResult, WorkLimits, solve_model

MAX_NODES = 20_000
"""Branch-and-bound nodes per co-location MILP (a b-matching: closes at the root in practice)."""


@dataclass(frozen=True)
class ColocationProblem:
    """Options and counts of the co-location model (see the module docstring).

    Attributes
    ----------
    site : ndarray of int (n_reloc,)
        Relocatable proposed site (0..n_sites-1) of each relocation option.
    reloc_host, add_host : ndarray of int
        Existing host structure of each relocation / add-tenant option.
    reloc_dist : ndarray (n_reloc,)
        Distance of each relocation (m), for the tie-breaks.
    single : ndarray of int
        Single-tenant existing structures with free tenancy (can become shared).
    free : ndarray of int (n_existing,)
        Free tenancies per existing structure.
    s0, m0 : int
        Structures and shared structures after the plan, before any move.
    target : float
        Target sharing rate.
    """

    site: np.ndarray
    reloc_host: np.ndarray
    reloc_dist: np.ndarray
    add_host: np.ndarray
    single: np.ndarray
    free: np.ndarray
    s0: int
    m0: int
    target: float

    @property
    def n_vars(self) -> int:
        return len(self.site) + len(self.add_host) + len(self.single)

    @property
    def need(self) -> float:
        """Right-hand side of the rate row, ``t * S0 - M0``."""
        return self.target * self.s0 - self.m0


def _base_rows(p: ColocationProblem) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray]:
    """Site-once, capacity and shared-only-if-gained rows over ``[x, a, y]``."""
    nx_, na, ny = len(p.site), len(p.add_host), len(p.single)
    nvar = p.n_vars
    blocks: list[sparse.csr_matrix] = []
    hi: list[np.ndarray] = []
    if nx_:
        n_sites = int(p.site.max()) + 1
        blocks.append(
            sparse.csr_matrix((np.ones(nx_), (p.site, np.arange(nx_))), shape=(n_sites, nvar))
        )
        hi.append(np.ones(n_sites))
    hosts = np.concatenate([p.reloc_host, p.add_host]).astype(np.int64)
    touched, row = np.unique(hosts, return_inverse=True)
    blocks.append(
        sparse.csr_matrix(
            (np.ones(len(hosts)), (row, np.arange(nx_ + na))), shape=(len(touched), nvar)
        )
    )
    hi.append(p.free[touched].astype(float))
    if ny:
        y_of = -np.ones(len(p.free), dtype=np.int64)
        y_of[p.single] = np.arange(ny)
        gx = y_of[p.reloc_host] >= 0
        rows = np.concatenate([np.arange(ny), y_of[p.reloc_host][gx], y_of[p.add_host]])
        cols = np.concatenate([nx_ + na + np.arange(ny), np.flatnonzero(gx), nx_ + np.arange(na)])
        vals = np.concatenate([np.ones(ny), -np.ones(int(gx.sum()) + na)])
        blocks.append(sparse.csr_matrix((vals, (rows, cols)), shape=(ny, nvar)))
        hi.append(np.zeros(ny))
    M = sparse.vstack(blocks).tocsr()
    rhi = np.concatenate(hi)
    return M, np.full(M.shape[0], -np.inf), rhi


def _model(
    p: ColocationProblem, cost: np.ndarray, with_target: bool, max_moves: float | None
) -> MilpModel:
    M, rlo, rhi = _base_rows(p)
    nx_, na, ny = len(p.site), len(p.add_host), len(p.single)
    rows, lo, hi = [M], [rlo], [rhi]
    if with_target:
        gain = np.concatenate([np.full(nx_, p.target), np.zeros(na), np.ones(ny)])
        rows.append(sparse.csr_matrix(gain[None, :]))
        lo.append(np.array([p.need - 1e-9]))
        hi.append(np.array([np.inf]))
    if max_moves is not None:
        is_move = np.concatenate([np.ones(nx_ + na), np.zeros(ny)])
        rows.append(sparse.csr_matrix(is_move[None, :]))
        lo.append(np.array([-np.inf]))
        hi.append(np.array([max_moves + 1e-9]))
    n = p.n_vars
    return MilpModel(
        obj=np.asarray(cost, dtype=float),
        lo=np.zeros(n),
        hi=np.ones(n),
        integ=np.ones(n, dtype=bool),
        M=sparse.vstack(rows).tocsr(),
        rlo=np.concatenate(lo),
        rhi=np.concatenate(hi),
        maximize=False,
    )


def tie_break_costs(p: ColocationProblem) -> np.ndarray:
    """Least-outlay costs: 1 per move, plus tie-breaks summing to < 0.9 (relocations
    before added tenants, nearer hosts first); 0 for the ``y`` columns."""
    nx_, na, ny = len(p.site), len(p.add_host), len(p.single)
    nn = max(p.n_vars, 1)
    dmax = max(float(p.reloc_dist.max()) if nx_ else 0.0, 1.0)
    cx = 1.0 - 0.5 / nn + 0.4 / nn * np.asarray(p.reloc_dist, dtype=float) / dmax
    return np.concatenate([cx, np.ones(na), np.zeros(ny)])


def solve_colocation(
    p: ColocationProblem,
    cost: np.ndarray,
    *,
    lexicographic: bool,
    time_limit_s: float = math.inf,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Solve the co-location model; returns (relocations, added tenants, status).

    ``lexicographic``: first the fewest moves (an integer objective whose LP bound
    HiGHS rounds up, so optimality is proven fast), then ``cost`` among plans with that
    many moves.  If the target cannot be reached, the rate's linear gain is maximised
    instead (status ``"target unreachable: best possible"``).  ``time_limit_s`` is a
    safety stop only (status ``"time limit"``).
    """
    nx_, na, ny = len(p.site), len(p.add_host), len(p.single)
    limits = WorkLimits(max_nodes=MAX_NODES, mip_gap=0.0, time_limit_s=time_limit_s)
    is_move = np.concatenate([np.ones(nx_ + na), np.zeros(ny)])
    res: MilpResult
    if lexicographic:
        res = solve_model(_model(p, is_move, True, None), limits)
        if res.x is not None:
            second = solve_model(_model(p, cost, True, float(np.round(res.objective))), limits)
            if second.x is not None:
                res = second
    else:
        res = solve_model(_model(p, cost, True, None), limits)
    status = "optimal" if res.status == "Optimal" else "node limit"
    if res.time_limited:
        status = "time limit"
    if res.x is None:
        gain = np.concatenate([np.full(nx_, p.target), np.zeros(na), np.ones(ny)])
        c2 = -gain + 1e-6 * cost / max(float(cost.max()), 1e-9) if cost.size else -gain
        res = solve_model(_model(p, c2, False, None), limits)
        status = "target unreachable: best possible"
    x = np.round(res.x) if res.x is not None else np.zeros(p.n_vars)
    return x[:nx_] > 0.5, x[nx_ : nx_ + na] > 0.5, status
