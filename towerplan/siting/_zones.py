"""Zone Lagrangian bound for the single-operator MCLP (private).

Why.  At city scale the Lagrangian bound (``siting._bounds``) is within a few units of
the LP bound, and in rural areas, where coverage disks barely overlap, the LP spreads
fractional sites and is loose.  A stronger bound needs integrality somewhere.

How.  The candidates are split into *zones* of about ``ZONE_CANDIDATES`` candidates
(:func:`candidate_zones`: breadth-first regions of the candidate interaction graph).  A
demand row is *internal* when every candidate covering it lies in one zone, else
*crossing*.  Relax the cardinality row ``sum x = p`` with one multiplier ``t`` and every
crossing row ``z_i <= sum_j A_ij x_j`` with ``0 <= lam_i <= W_i``; minimum-spacing pairs
are dropped (a relaxation).  What is left splits into independent zone problems::

    U_z(t) = max  sum_{i internal to z} W_i z_i + sum_{j in z} (C_j + sum_{i crossing} A_ij lam_i - t) x_j
             s.t. z_i <= sum_j A_ij x_j,  x binary,  0 <= z <= 1

and for every feasible solution of the MCLP::

    objective <= offset + sum_{i crossing} (W_i - lam_i) + t p + sum_z U_z(t)

(weak duality: ``W_i min(1, A_i x) <= W_i - lam_i + lam_i A_i x`` for ``0 <= lam_i <= W_i``,
and ``t (p - sum x) = 0``).  Any upper bound of ``U_z`` keeps the bound valid, so each zone
MILP is solved by HiGHS within a fixed number of work checkpoints and its *dual bound*
is used (never its incumbent); the zone's own Lagrangian value (internal rows relaxed
with ``lam`` too) caps it.  With the Lagrangian multipliers and ``t`` = the relaxed
problem's ``p``-th best value, the result is never above the Lagrangian bound at the
same multipliers, and the zone integer hulls (HiGHS's root cuts) take it below the LP
bound where the LP is fractional.  Deterministic: the partition depends only on the
problem, the zone MILPs are bounded by work.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import scipy.sparse as sp

from towerplan._procs import fork_context
from towerplan.siting._highs import MilpModel, WorkLimits, solve_model
from towerplan.siting._model import MCLPProblem, SafetyStop

__all__ = ["ZONE_CANDIDATES", "ZONE_CHECKPOINTS", "ZoneJob", "candidate_zones", "zone_bound"]

ZONE_CANDIDATES = 256
"""Target number of candidates per zone of :func:`zone_bound`."""
ZONE_CHECKPOINTS = 30
"""HiGHS MIP work checkpoints per zone MILP (root cut rounds; before ``work_limit`` scaling)."""
ZONE_NODES = 50
"""Branch-and-bound nodes per zone MILP."""
ZONE_FORK = True
"""Whether :class:`ZoneJob` may fork (``False``: always in this process, as before; for
side-by-side measurements)."""


def candidate_zones(adj: sp.csr_matrix, size: int) -> np.ndarray:
    """Zone label per candidate: breadth-first regions of about ``size`` candidates.

    Each zone starts at the lowest-numbered candidate not yet in a zone and grows
    breadth-first over ``adj`` (candidates sharing a demand row), level by level in
    index order, until it holds ``size`` candidates or its component is exhausted.
    Deterministic (depends on ``adj`` only).
    """
    m = adj.shape[0]
    label = np.full(m, -1, dtype=np.int64)
    indptr, indices = adj.indptr, adj.indices
    z = 0
    for s in range(m):
        if label[s] >= 0:
            continue
        label[s] = z
        count = 1
        frontier = np.array([s], dtype=np.int64)
        while count < size and len(frontier):
            nb = np.unique(np.concatenate([indices[indptr[j] : indptr[j + 1]] for j in frontier]))
            nb = nb[label[nb] < 0][: size - count]
            label[nb] = z
            count += len(nb)
            frontier = nb
        z += 1
    return label


def _row_zones(A: sp.csr_matrix, label: np.ndarray) -> np.ndarray:
    """Zone of each row when all its candidates lie in one zone, else ``-1``."""
    n = A.shape[0]
    lo = np.full(n, np.iinfo(np.int64).max)
    hi = np.full(n, -1)
    coo = A.tocoo()
    np.minimum.at(lo, coo.row, label[coo.col])
    np.maximum.at(hi, coo.row, label[coo.col])
    return np.where(lo == hi, lo, -1)


def _rows_by_zone(rz: np.ndarray, n_zones: int) -> tuple[np.ndarray, np.ndarray]:
    """The internal rows (``rz >= 0``) ordered by zone, and each zone's start in that order
    (zone ``z``: ``order[starts[z]:starts[z + 1]]``)."""
    in_rows = np.flatnonzero(rz >= 0)
    order = in_rows[np.argsort(rz[in_rows], kind="stable")]
    return order, np.searchsorted(rz[order], np.arange(n_zones + 1))


@dataclass
class _ZoneTally:
    """Work counters of the zone MILPs of one zone bound."""

    milps: int = 0
    checkpoints: int = 0
    nodes: int = 0
    timed_out: bool = False

    def add(self, res: Any) -> float:
        """Count one solved zone MILP; its dual bound (``inf`` when it has none)."""
        self.milps += 1
        self.checkpoints += res.checkpoints
        self.nodes += res.nodes
        self.timed_out = self.timed_out or res.time_limited
        return float(res.bound) if np.isfinite(res.bound) else np.inf

    def info(self, prefix: str, bound: float, n_zones: int, crossing: int, t0: float) -> dict:
        """The bound's log entries, keys ``<prefix>_bound``, ``<prefix>_count``, …"""
        return {
            f"{prefix}_bound": bound,
            f"{prefix}_count": n_zones,
            f"{prefix}_milps": self.milps,
            f"{prefix}_checkpoints": self.checkpoints,
            f"{prefix}_nodes": self.nodes,
            f"{prefix}_crossing_rows": crossing,
            f"{prefix}_s": time.perf_counter() - t0,
            f"{prefix}_time_limited": self.timed_out,
        }


def _zone_model(Az: sp.csr_matrix, cz: np.ndarray, wz: np.ndarray) -> MilpModel:
    """``max cz x + wz z`` s.t. ``z_i <= Az_i x``, ``x`` binary, ``0 <= z <= 1``."""
    nr, nc = Az.shape
    return MilpModel(
        obj=np.concatenate([cz, wz]),
        lo=np.zeros(nc + nr),
        hi=np.ones(nc + nr),
        integ=np.concatenate([np.ones(nc, bool), np.zeros(nr, bool)]),
        M=sp.hstack([-Az, sp.identity(nr, format="csr")], format="csr"),
        rlo=np.full(nr, -np.inf),
        rhi=np.zeros(nr),
    )


def zone_bound(
    prob: MCLPProblem,
    lam: np.ndarray,
    *,
    label: np.ndarray,
    t: float | None = None,
    checkpoints: int = ZONE_CHECKPOINTS,
    nodes: int = ZONE_NODES,
    safety: SafetyStop | None = None,
) -> tuple[float, dict[str, Any]]:
    """Upper bound on the optimum of a single-operator, dedicated-only MCLP by zones.

    Parameters
    ----------
    prob : MCLPProblem
        One operator, ``n_shared == 0`` (spacing pairs are dropped: still valid).
    lam : ndarray (n_rows,) or (n_rows, 1)
        Multipliers of the crossing rows (clipped to ``[0, W]``); any values are valid.
    label : ndarray (n_cand,)
        Zone of each candidate (:func:`candidate_zones`; any labelling is valid).
    t : float, optional
        Multiplier of the cardinality row; default the ``p``-th largest Lagrangian
        candidate value at ``lam``.
    checkpoints, nodes : int
        Work limits of each zone MILP (its dual bound is used).
    safety : SafetyStop, optional
        Wall-clock safety stop; when it fires the remaining zones use their closed-form
        Lagrangian value (still valid) and ``zone_time_limited`` is set.

    Returns
    -------
    (bound, info)
        ``inf`` (no bound) for a model with several operators or shared structures.
    """
    t0 = time.perf_counter()
    if prob.n_ops != 1 or prob.n_shared != 0:
        return float("inf"), {}
    A = prob.A.tocsr().astype(float)
    W, C = prob.W[:, 0], prob.C[:, 0]
    lam = np.clip(np.asarray(lam, dtype=float).reshape(-1), 0.0, W)
    rz = _row_zones(A, label)
    cross = rz < 0
    c_full = C + A.T @ lam
    if t is None:
        m = prob.n_cand
        t = float(np.partition(c_full, m - prob.p)[m - prob.p]) if prob.p < m else 0.0
    c = C + A.T @ np.where(cross, lam, 0.0)
    bound = prob.offset + float((W - lam)[cross].sum()) + t * prob.p
    # candidates covering no internal row: closed form
    inner = sp.csr_matrix(A[~cross])
    covers_inner = np.zeros(prob.n_cand, bool)
    covers_inner[inner.indices] = True
    bound += float(np.maximum(c_full - t, 0.0)[~covers_inner].sum())
    n_zones = int(label.max()) + 1
    row_order, starts = _rows_by_zone(rz, n_zones)
    tally = _ZoneTally()
    limits = WorkLimits(max_nodes=nodes, mip_gap=1e-6, max_checkpoints=checkpoints, light_root=True)
    for z in range(n_zones):
        rows = row_order[starts[z] : starts[z + 1]]
        cols = np.flatnonzero((label == z) & covers_inner)
        if len(cols) == 0:
            continue
        lag = float((W[rows] - lam[rows]).sum() + np.maximum(c_full[cols] - t, 0.0).sum())
        if safety is not None and safety.expired():
            tally.timed_out = True
            bound += lag
            continue
        if safety is not None:
            limits = safety.limits(nodes, 1e-6, checkpoints, light_root=True)
        res = solve_model(_zone_model(A[rows][:, cols], c[cols] - t, W[rows]), limits)
        bound += min(lag, tally.add(res))
    return bound, tally.info("zone", bound, n_zones, int(cross.sum()), t0)


def _zone_child(send: Any, prob: MCLPProblem, lam: np.ndarray, kw: dict[str, Any]) -> None:
    """Forked child of :class:`ZoneJob`: compute the zone bound and send it (``None`` on error)."""
    try:
        send.send(zone_bound(prob, lam, **kw))
    except Exception:  # the parent computes it itself
        send.send(None)
    finally:
        send.close()


class ZoneJob:
    """:func:`zone_bound` computed beside the caller's own work.

    The zone bound depends only on the problem, the multipliers and the work limits, not
    on the incumbent, so it can run while the LNS improves the incumbent: in a forked
    process when forking is safe and the machine has a second core
    (:func:`towerplan._procs.fork_context`), else in this process on the first
    :meth:`result` call.  Either way the result is the same (deterministic by work).
    """

    def __init__(
        self,
        prob: MCLPProblem,
        lam: np.ndarray,
        *,
        label: np.ndarray,
        checkpoints: int = ZONE_CHECKPOINTS,
        safety: SafetyStop | None = None,
    ) -> None:
        self._args = (prob, lam)
        self._kw: dict[str, Any] = {"label": label, "checkpoints": checkpoints, "safety": safety}
        self._done: tuple[float, dict[str, Any]] | None = None
        self._proc: Any = None
        self._conn: Any = None
        ctx = fork_context() if ZONE_FORK else None
        if ctx is None:
            return
        recv, send = ctx.Pipe(duplex=False)
        proc = cast(Any, ctx).Process(
            target=_zone_child, args=(send, prob, lam, self._kw), daemon=True
        )
        proc.start()
        send.close()
        self._proc, self._conn = proc, recv

    @property
    def forked(self) -> bool:
        """Whether the bound is computed in a forked process."""
        return self._proc is not None

    def result(self) -> tuple[float, dict[str, Any]]:
        """The zone bound and its info (waits for the forked process)."""
        if self._done is None and self._conn is not None:
            try:
                got = self._conn.recv()
            except EOFError:  # the child died: compute here
                got = None
            self._proc.join()
            self._conn.close()
            self._conn = None
            self._done = got
        if self._done is None:
            self._done = zone_bound(*self._args, **self._kw)
        return self._done

    def cancel(self) -> None:
        """Stop the forked process (its result is not needed)."""
        if self._conn is not None:
            self._proc.terminate()
            self._proc.join()
            self._conn.close()
            self._conn = None
