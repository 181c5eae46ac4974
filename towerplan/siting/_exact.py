"""Exact MILP formulations of the MCLP and their solve through HiGHS (private).

The compact ``x, d, h`` model, the tighter *pattern* model (one binary per candidate and
tenant set) and the single-operator model; :func:`solve_milp` solves one warm-started
within deterministic :class:`~towerplan.siting._highs.WorkLimits`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from towerplan.errors import N_, InfeasibleModelError
from towerplan.siting._highs import MilpModel, MilpResult, Runner, WorkLimits, solve_model
from towerplan.siting._model import MCLPProblem, MCLPSolution, _empty_solution, evaluate

logger = logging.getLogger(__name__)


MAX_PATTERNS = 64
"""Up to this many tenant patterns per structure the MILP uses the (tighter) pattern model."""


def _milp_columns(prob: MCLPProblem) -> np.ndarray:
    """Candidates kept in the MILP: useful ones plus enough zero-value fillers."""
    m = prob.n_cand
    if prob.conflicts is not None:
        return np.arange(m)
    useful = (np.diff(prob.A.tocsc().indptr) > 0) | (prob.C.sum(axis=1) > 0)
    idle = np.flatnonzero(~useful)
    # fillers: prefer those that can host a shared structure, then the rest
    idle = idle[np.argsort(prob.cap[idle] < 2, kind="stable")]
    return np.sort(np.concatenate([np.flatnonzero(useful), idle[: prob.p]]))


def _conflict_pairs(conf: sp.csr_matrix, keep: np.ndarray) -> np.ndarray:
    sub = sp.triu(conf[keep][:, keep], k=1).tocoo()
    return np.column_stack([sub.row, sub.col]).astype(np.int64)


def _coverage_rows(
    A: sp.csr_matrix,
    zi: np.ndarray,
    zo: np.ndarray,
    nr: int,
    n_op: int,
    off_x: int,
    off_z: int,
) -> tuple[
    list[np.ndarray], list[np.ndarray], list[np.ndarray], list[np.ndarray], list[np.ndarray]
]:
    """Rows ``z_io - sum_j A_ij x_jo <= 0`` (one per z variable), as COO pieces.

    ``z`` variables ``k`` cover (row ``zi[k]``, operator ``zo[k]``) and sit at column
    ``off_z + k``; ``x_jo`` sits at column ``off_x + j * n_op + o``.  Returns lists
    (rows, cols, vals, row lower, row upper) that the model builders extend.
    """
    nz = len(zi)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    Acoo = A.tocoo()
    zid = -np.ones((nr, n_op), dtype=np.int64)  # (row i, operator o) -> z index
    zid[zi, zo] = np.arange(nz)
    for o in range(n_op):
        sel = zid[Acoo.row, o] >= 0
        rows.append(zid[Acoo.row[sel], o])
        cols.append(off_x + Acoo.col[sel] * n_op + o)
        vals.append(-np.ones(int(sel.sum())))
    rows.append(np.arange(nz))
    cols.append(off_z + np.arange(nz))
    vals.append(np.ones(nz))
    return rows, cols, vals, [np.full(nz, -np.inf)], [np.zeros(nz)]


def _model_arrays(prob: MCLPProblem, keep: np.ndarray) -> tuple[MilpModel, Any]:
    """Sparse MILP arrays over the kept candidates; returns (arrays, decoder)."""
    A = prob.A[:, keep].tocsr()
    W, C, cap = prob.W, prob.C[keep], prob.cap[keep]
    m, n_op = len(keep), prob.n_ops
    pairs = (
        _conflict_pairs(prob.conflicts, keep)
        if prob.conflicts is not None
        else np.zeros((0, 2), dtype=np.int64)
    )
    if n_op == 1 and prob.n_shared == 0:
        return _single_operator_model(prob, keep, A, W, C, pairs)
    pats = _patterns(n_op, int(cap.max()) if m else 1, prob.n_dedicated > 0, prob.n_shared > 0)
    if len(pats) <= MAX_PATTERNS:
        return _pattern_model(prob, keep, A, W, C, cap, pairs, pats)
    return _compact_model(prob, keep, A, W, C, cap, pairs)


def _single_operator_model(
    prob: MCLPProblem,
    keep: np.ndarray,
    A: sp.csr_matrix,
    W: np.ndarray,
    C: np.ndarray,
    pairs: np.ndarray,
) -> tuple[MilpModel, Any]:
    """Classic MCLP arrays (one operator, dedicated structures only); returns (arrays, decoder)."""
    m, nr = len(keep), prob.n_rows
    npair = len(pairs)
    ncol = m + nr
    obj = np.concatenate([C[:, 0], W[:, 0]])
    lo = np.zeros(ncol)
    hi = np.ones(ncol)
    integ = np.concatenate([np.ones(m, bool), np.zeros(nr, bool)])
    cov = sp.hstack([-A.astype(float), sp.identity(nr, format="csr")], format="csr")
    cnt = sp.csr_matrix(np.concatenate([np.ones(m), np.zeros(nr)])[None, :])
    blocks = [cov, cnt]
    rlo = [np.full(nr, -np.inf), [prob.p]]
    rhi = [np.zeros(nr), [prob.p]]
    if npair:
        pr = np.repeat(np.arange(npair), 2)
        cf = sp.csr_matrix((np.ones(2 * npair), (pr, pairs.ravel())), shape=(npair, ncol))
        blocks.append(cf)
        rlo.append(np.full(npair, -np.inf))
        rhi.append(np.ones(npair))
    M = sp.vstack(blocks, format="csr")

    def decode(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        opened = np.flatnonzero(x[:m] > 0.5)
        return keep[opened], np.ones((len(opened), 1), bool), np.zeros(len(opened), bool)

    def encode(sol: MCLPSolution) -> np.ndarray:
        x = np.zeros(ncol)
        pos = np.searchsorted(keep, sol.sites)
        x[pos] = 1.0
        x[m:] = np.minimum(1.0, np.asarray(A[:, pos].sum(axis=1)).ravel())
        return x

    arrays = MilpModel(
        offset=prob.offset,
        obj=obj,
        lo=lo,
        hi=hi,
        integ=integ,
        M=M,
        rlo=np.concatenate([np.asarray(r, float) for r in rlo]),
        rhi=np.concatenate([np.asarray(r, float) for r in rhi]),
    )
    return arrays, (decode, encode)


def _compact_model(
    prob: MCLPProblem,
    keep: np.ndarray,
    A: sp.csr_matrix,
    W: np.ndarray,
    C: np.ndarray,
    cap: np.ndarray,
    pairs: np.ndarray,
) -> tuple[MilpModel, Any]:
    """Compact multi-operator arrays (x, d, h, z columns); returns (arrays, decoder)."""
    m, n_op, nr = len(keep), prob.n_ops, prob.n_rows
    zi, zo = np.nonzero(W > 0)
    nz = len(zi)
    has_h = prob.n_shared > 0
    nx = m * n_op
    off_d = nx
    off_h = nx + m
    off_z = nx + m + (m if has_h else 0)
    ncol = off_z + nz
    obj = np.zeros(ncol)
    obj[:nx] = C.ravel()
    obj[off_z:] = W[zi, zo]
    lo = np.zeros(ncol)
    hi = np.ones(ncol)
    if has_h:
        hi[off_h : off_h + m] = (cap >= 2).astype(float)
    integ = np.zeros(ncol, bool)
    integ[:off_z] = True
    # coverage rows: z_io - sum_j A_ij x_jo <= 0
    rows, cols, vals, rlo_l, rhi_l = _coverage_rows(A, zi, zo, nr, n_op, 0, off_z)
    r0 = _compact_rows(
        (rows, cols, vals, rlo_l, rhi_l),
        prob=prob,
        cap=cap,
        pairs=pairs,
        r0=nz,
        has_h=has_h,
        off_d=off_d,
        off_h=off_h,
    )
    M = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(r0, ncol)
    )

    def decode_m(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d = x[off_d : off_d + m] > 0.5
        hh = x[off_h : off_h + m] > 0.5 if has_h else np.zeros(m, bool)
        opened = np.flatnonzero(d | hh)
        ten = x[:nx].reshape(m, n_op)[opened] > 0.5
        return keep[opened], ten, hh[opened]

    def encode_m(sol: MCLPSolution) -> np.ndarray:
        x = np.zeros(ncol)
        pos = np.searchsorted(keep, sol.sites)
        X = np.zeros((m, n_op))
        X[pos] = sol.tenants
        x[:nx] = X.ravel()
        x[off_d + pos[~sol.shared]] = 1.0
        if has_h:
            x[off_h + pos[sol.shared]] = 1.0
        cov = np.asarray(A @ X)
        x[off_z:] = np.minimum(1.0, cov[zi, zo])
        return x

    arrays = MilpModel(
        offset=prob.offset,
        obj=obj,
        lo=lo,
        hi=hi,
        integ=integ,
        M=M,
        rlo=np.concatenate(rlo_l),
        rhi=np.concatenate(rhi_l),
    )
    return arrays, (decode_m, encode_m)


def _compact_rows(
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[Any], list[Any]],
    *,
    prob: MCLPProblem,
    cap: np.ndarray,
    pairs: np.ndarray,
    r0: int,
    has_h: bool,
    off_d: int,
    off_h: int,
) -> int:
    """Append tenancy, quota and conflict rows of the compact model; returns the row count."""
    rows, cols, vals, rlo_l, rhi_l = parts
    m, n_op, npair = len(cap), prob.n_ops, len(pairs)
    nx = m * n_op
    jj = np.arange(m)
    # tenancy: sum_o x_jo - d_j - 2 h_j >= 0 ; sum_o x_jo - d_j - cap_j h_j <= 0
    for lower in (True, False):
        rows.append(np.repeat(jj, n_op) + r0)
        cols.append(np.arange(nx))
        vals.append(np.ones(nx))
        rows.append(jj + r0)
        cols.append(off_d + jj)
        vals.append(-np.ones(m))
        if has_h:
            rows.append(jj + r0)
            cols.append(off_h + jj)
            vals.append(-2.0 * np.ones(m) if lower else -cap.astype(float))
        rlo_l.append(np.zeros(m) if lower else np.full(m, -np.inf))
        rhi_l.append(np.full(m, np.inf) if lower else np.zeros(m))
        r0 += m
    if has_h:
        rows.append(np.concatenate([jj, jj]) + r0)
        cols.append(np.concatenate([off_d + jj, off_h + jj]))
        vals.append(np.ones(2 * m))
        rlo_l.append(np.full(m, -np.inf))
        rhi_l.append(np.ones(m))
        r0 += m
    # quotas
    rows.append(np.full(m, r0))
    cols.append(off_d + jj)
    vals.append(np.ones(m))
    rlo_l.append(np.array([prob.n_dedicated], float))
    rhi_l.append(np.array([prob.n_dedicated], float))
    r0 += 1
    if has_h:
        rows.append(np.full(m, r0))
        cols.append(off_h + jj)
        vals.append(np.ones(m))
        rlo_l.append(np.array([prob.n_shared], float))
        rhi_l.append(np.array([prob.n_shared], float))
        r0 += 1
    if npair:
        pr = np.arange(npair) + r0
        for side in (0, 1):
            rows.append(pr)
            cols.append(off_d + pairs[:, side])
            vals.append(np.ones(npair))
            if has_h:
                rows.append(pr)
                cols.append(off_h + pairs[:, side])
                vals.append(np.ones(npair))
        rlo_l.append(np.full(npair, -np.inf))
        rhi_l.append(np.ones(npair))
        r0 += npair
    return r0


def _patterns(n_op: int, tmax: int, ded: bool, shr: bool) -> list[tuple[int, ...]]:
    from itertools import combinations

    out: list[tuple[int, ...]] = []
    if ded:
        out.extend((o,) for o in range(n_op))
    if shr:
        for k in range(2, min(tmax, n_op) + 1):
            out.extend(combinations(range(n_op), k))
    return out


def _pattern_rows(
    prob: MCLPProblem,
    m: int,
    npat: int,
    is_sh: np.ndarray,
    pats: list[tuple[int, ...]],
    pairs: np.ndarray,
    r0: int,
) -> tuple[
    list[np.ndarray], list[np.ndarray], list[np.ndarray], list[np.ndarray], list[np.ndarray]
]:
    """The pattern model's rows after the covering rows (which end at row ``r0``).

    One pattern per location, the linking rows ``x[j,o] - sum_{P ni o} y[j,P] = 0``, the
    dedicated and shared quotas and the spacing pairs, as COO pieces plus row bounds.
    """
    n_op = prob.n_ops
    ny, off_x = m * npat, m * npat
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    rlo_l: list[np.ndarray] = []
    rhi_l: list[np.ndarray] = []
    jj = np.arange(m)
    # one pattern per location
    rows.append(np.repeat(jj, npat) + r0)
    cols.append(np.arange(ny))
    vals.append(np.ones(ny))
    rlo_l.append(np.full(m, -np.inf))
    rhi_l.append(np.ones(m))
    r0 += m
    # linking: x[j,o] - sum_{P ni o} y[j,P] = 0
    for q, pat in enumerate(pats):
        for o in pat:
            rows.append(jj * n_op + o + r0)
            cols.append(jj * npat + q)
            vals.append(-np.ones(m))
    rows.append(np.arange(m * n_op) + r0)
    cols.append(off_x + np.arange(m * n_op))
    vals.append(np.ones(m * n_op))
    rlo_l.append(np.zeros(m * n_op))
    rhi_l.append(np.zeros(m * n_op))
    r0 += m * n_op
    for flag, quota in ((False, prob.n_dedicated), (True, prob.n_shared)):
        qs = np.flatnonzero(is_sh == flag)
        if len(qs) == 0:
            if quota:
                raise InfeasibleModelError(msgid=N_("no tenant pattern for a non-zero quota"))
            continue
        rows.append(np.full(m * len(qs), r0))
        cols.append((jj[:, None] * npat + qs[None, :]).ravel())
        vals.append(np.ones(m * len(qs)))
        rlo_l.append(np.array([quota], float))
        rhi_l.append(np.array([quota], float))
        r0 += 1
    npair = len(pairs)
    if npair:
        pr = np.repeat(np.arange(npair), npat) + r0
        for side in (0, 1):
            rows.append(pr)
            cols.append((pairs[:, side][:, None] * npat + np.arange(npat)[None, :]).ravel())
            vals.append(np.ones(npair * npat))
        rlo_l.append(np.full(npair, -np.inf))
        rhi_l.append(np.ones(npair))
    return rows, cols, vals, rlo_l, rhi_l


def _pattern_codec(
    keep: np.ndarray,
    A: sp.csr_matrix,
    pats: list[tuple[int, ...]],
    is_sh: np.ndarray,
    *,
    n_op: int,
    ncol: int,
    zi: np.ndarray,
    zo: np.ndarray,
) -> tuple[Any, Any]:
    """The pattern model's decoder (column values -> sites, tenants, shared) and encoder."""
    m, npat = len(keep), len(pats)
    ny = m * npat
    off_x, off_z = ny, ny + m * n_op
    pat_mask = np.zeros((npat, n_op), dtype=bool)
    for q, pat in enumerate(pats):
        pat_mask[q, list(pat)] = True
    pat_index = {pat: q for q, pat in enumerate(pats)}

    def decode_p(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        Y = x[:ny].reshape(m, npat) > 0.5
        opened = np.flatnonzero(Y.any(axis=1))
        q = Y[opened].argmax(axis=1)
        return keep[opened], pat_mask[q], is_sh[q]

    def encode_p(sol: MCLPSolution) -> np.ndarray:
        x = np.zeros(ncol)
        pos = np.searchsorted(keep, sol.sites)
        X = np.zeros((m, n_op))
        X[pos] = sol.tenants
        for p_, t_ in zip(pos, sol.tenants, strict=True):
            x[p_ * npat + pat_index[tuple(np.flatnonzero(t_))]] = 1.0
        x[off_x:off_z] = X.ravel()
        cov = np.asarray(A @ X)
        x[off_z:] = np.minimum(1.0, cov[zi, zo])
        return x

    return decode_p, encode_p


def _pattern_model(
    prob: MCLPProblem,
    keep: np.ndarray,
    A: sp.csr_matrix,
    W: np.ndarray,
    C: np.ndarray,
    cap: np.ndarray,
    pairs: np.ndarray,
    pats: list[tuple[int, ...]],
) -> tuple[MilpModel, Any]:
    """Extended formulation: one binary per (candidate, tenant pattern).

    ``y[j,P]`` opens a structure at ``j`` hosting exactly the operators in ``P``
    (singletons are dedicated, larger patterns shared); ``x[j,o] = sum_{P ni o} y[j,P]``
    (continuous, implied integer) links to the covering rows.  Its LP relaxation is the
    convex hull of each location's choices, tighter than the compact x/d/h model.
    """
    m, n_op, nr = len(keep), prob.n_ops, prob.n_rows
    npat = len(pats)
    plen = np.array([len(q) for q in pats])
    is_sh = plen >= 2
    zi, zo = np.nonzero(W > 0)
    nz = len(zi)
    ny = m * npat
    off_x = ny
    off_z = ny + m * n_op
    ncol = off_z + nz
    obj = np.zeros(ncol)
    obj[off_x:off_z] = C.ravel()
    obj[off_z:] = W[zi, zo]
    lo = np.zeros(ncol)
    hi = np.ones(ncol)
    hi[:ny] = (plen[None, :] <= cap[:, None]).astype(float).ravel()
    integ = np.zeros(ncol, bool)
    integ[:ny] = True
    rows, cols, vals, rlo_l, rhi_l = _coverage_rows(A, zi, zo, nr, n_op, off_x, off_z)
    more = _pattern_rows(prob, m, npat, is_sh, pats, pairs, nz)
    for acc, part in zip((rows, cols, vals, rlo_l, rhi_l), more, strict=True):
        acc.extend(part)
    r0 = sum(len(b) for b in rlo_l)
    M = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(r0, ncol)
    )
    codec = _pattern_codec(keep, A, pats, is_sh, n_op=n_op, ncol=ncol, zi=zi, zo=zo)
    arrays = MilpModel(
        offset=prob.offset,
        obj=obj,
        lo=lo,
        hi=hi,
        integ=integ,
        M=M,
        rlo=np.concatenate(rlo_l),
        rhi=np.concatenate(rhi_l),
    )
    return arrays, codec


def solve_milp(
    prob: MCLPProblem,
    limits: WorkLimits,
    start: MCLPSolution | None = None,
    *,
    run: Runner = solve_model,
) -> MCLPSolution:
    """Solve the sparse MILP with HiGHS within ``limits``, warm-started from ``start``.

    The returned solution's ``upper_bound`` is HiGHS's dual bound (``inf`` if the
    solver stopped before bounding); ``log`` holds the status, nodes and times, and
    ``time_limited`` whether the wall-clock safety stop ended the run.  If HiGHS finds
    no solution better than ``start`` within the limits, ``start`` is returned with
    HiGHS's bound.  ``run`` solves the model (:func:`solve_model`, or the speculative
    LNS's runner: the same result).
    """
    t0 = time.perf_counter()
    if prob.p == 0:
        return _empty_solution(prob, "nothing to place (no new structures)")
    keep = _milp_columns(prob)
    model, (decode, encode) = _model_arrays(prob, keep)
    build_s = time.perf_counter() - t0
    x0 = encode(start) if start is not None else None
    res: MilpResult = run(model, limits, x0)
    log: dict[str, Any] = {
        "milp_build_s": build_s,
        "milp_solve_s": res.solve_s,
        "milp_status": res.status,
        "milp_nodes": res.nodes,
        "milp_checkpoints": res.checkpoints,
        "milp_simplex_iterations": res.simplex_iterations,
        "milp_cols": model.n_col,
        "milp_rows": int(model.M.shape[0]),
        "milp_nnz": model.nnz,
    }
    bound = res.bound if np.isfinite(res.bound) else float("inf")
    if res.x is None:
        if start is None:
            raise InfeasibleModelError(
                msgid=N_(
                    "the MILP solver found no feasible solution (status {status}); check the "
                    "quotas, the tenancy limits and the minimum spacing"
                ),
                status=res.status,
            )
        out = MCLPSolution(start.sites, start.tenants, start.shared, start.objective)
        out.method = start.method + " (MILP found nothing better)"
    else:
        sites, ten, sh = decode(res.x)
        out = MCLPSolution(sites, ten, sh, method="exact MILP (HiGHS)")
        out.objective = evaluate(prob, out)
        if start is not None and start.objective > out.objective + 1e-9 * max(
            prob.total_weight, 1.0
        ):
            out = MCLPSolution(
                start.sites, start.tenants, start.shared, start.objective, method=start.method
            )
    out.upper_bound = max(bound, out.objective)
    out.time_limited = res.time_limited
    out.log = dict(start.log) if start is not None else {}
    out.log.update(log)
    return out
