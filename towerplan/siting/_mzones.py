"""Zone Lagrangian bound for the multi-operator MCLP (private).

The multi-operator counterpart of :func:`~towerplan.siting._zones.zone_bound`: the
candidates are split into zones; the cardinality row (``t``), the shared-quota row
(``nu``), every zone-crossing covering row ``(i, o)`` (``0 <= lam_io <= W_io``) and
every zone-crossing minimum-spacing pair (``mu >= 0``) are relaxed, so each zone is an
independent penalised MILP in the pattern formulation (one binary per candidate and
tenant set, internal rows and internal spacing pairs kept), whose HiGHS dual bound,
capped by its closed-form Lagrangian value, is summed.  Valid for any zones and
multipliers.  Used to measure how much of the multi-operator gap is the relaxation's
integrality gap (``scripts/bench_siting.py --mzone-checkpoints``), not by ``solve``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from towerplan.siting._highs import MilpModel, WorkLimits, solve_model
from towerplan.siting._model import MCLPProblem, SafetyStop
from towerplan.siting._zones import (
    ZONE_CHECKPOINTS,
    ZONE_NODES,
    _row_zones,
    _rows_by_zone,
    _ZoneTally,
)

__all__ = ["multiop_zone_bound"]


def _zone_pattern_model(
    sub: MCLPProblem, t: float, nu: float, mu_j: np.ndarray
) -> tuple[MilpModel, np.ndarray] | None:
    """The penalised pattern MILP of one multi-operator zone (or ``None``).

    ``sub`` holds the zone's internal rows and candidates (``C`` = the values of the
    relaxed crossing rows); its quota rows are freed and every structure pays ``t``
    (cardinality), a shared one ``nu`` more (shared quota) and ``mu_j`` (its relaxed
    zone-crossing spacing pairs).  Returns the model and the pattern length per pattern.
    """
    from towerplan.errors import InfeasibleModelError
    from towerplan.siting._exact import _model_arrays, _patterns

    try:
        model, _ = _model_arrays(sub, np.arange(sub.n_cand))
    except InfeasibleModelError:
        return None
    pats = _patterns(sub.n_ops, int(sub.cap.max()), sub.n_dedicated > 0, sub.n_shared > 0)
    npat, m = len(pats), sub.n_cand
    plen = np.array([len(q) for q in pats])
    zrows = int((sub.W > 0).sum())
    rq = zrows + m * (1 + sub.n_ops)  # the quota rows (dedicated, then shared if any)
    n_q = int(sub.n_dedicated > 0) + int(sub.n_shared > 0)
    if model.n_col < m * npat or model.M.shape[0] < rq + n_q:
        return None
    rlo, rhi, obj = model.rlo.copy(), model.rhi.copy(), model.obj.copy()
    rlo[rq : rq + n_q], rhi[rq : rq + n_q] = -np.inf, np.inf
    pen = t + nu * (plen >= 2)
    obj[: m * npat] -= (pen[None, :] + mu_j[:, None]).ravel()
    return replace(model, obj=obj, rlo=rlo, rhi=rhi), plen


def multiop_zone_bound(
    prob: MCLPProblem,
    lam: np.ndarray,
    nu: float,
    *,
    label: np.ndarray,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    checkpoints: int = ZONE_CHECKPOINTS,
    nodes: int = ZONE_NODES,
    safety: SafetyStop | None = None,
) -> tuple[float, dict[str, Any]]:
    """Upper bound on a multi-operator MCLP's optimum by zones (pattern zone MILPs).

    As :func:`~towerplan.siting._zones.zone_bound`, for the multi-operator model: the cardinality row (``t``),
    the shared-quota row (``nu``, any sign), every zone-crossing covering row
    ``(i, o)`` (``0 <= lam_io <= W_io``) and every zone-crossing spacing pair
    (``mu >= 0``) are relaxed; each zone is then an independent penalised pattern MILP
    (internal rows, internal pairs kept) whose HiGHS dual bound, capped by its closed-form
    Lagrangian value, is summed::

        bound = offset + sum_cross (W - lam) + t p + nu n_shared + sum_cross-pairs mu
                + sum_z U_z

    Valid for any zones and multipliers.  ``pairs = (ea, eb, mu)``: the spacing pairs in
    the order of :func:`~towerplan.siting._bounds._conflict_edges` with multipliers
    (``None``: zero multipliers); ``t`` is the relaxed problem's ``p``-th best value.

    Returns
    -------
    (bound, info)
    """
    from towerplan.siting._model import _type_values

    t0 = time.perf_counter()
    A = prob.A.tocsr().astype(float)
    W, m = prob.W, prob.n_cand
    lam = np.clip(np.asarray(lam, dtype=float).reshape(W.shape), 0.0, W)
    ea, eb, mu = pairs if pairs is not None else (np.zeros(0, np.int64),) * 2 + (np.zeros(0),)
    mu = np.maximum(np.asarray(mu, dtype=float), 0.0)
    rz = _row_zones(A, label)
    cross = rz < 0
    mu_all = np.bincount(ea, mu, minlength=m) + np.bincount(eb, mu, minlength=m)
    D, S = _type_values(A.T @ lam + prob.C, prob.cap)
    val = np.maximum(D, S - nu if prob.n_shared > 0 else -np.inf) - mu_all
    t = float(np.partition(val, m - prob.p)[m - prob.p]) if prob.p < m else 0.0
    xp = label[ea] != label[eb]
    mu_x = np.bincount(ea[xp], mu[xp], minlength=m) + np.bincount(eb[xp], mu[xp], minlength=m)
    c = prob.C + A.T @ (lam * cross[:, None])
    bound = prob.offset + float((W - lam)[cross].sum()) + t * prob.p + nu * prob.n_shared
    bound += float(mu[xp].sum())
    busy = np.zeros(m, bool)  # candidates covering an internal row or in an internal pair
    busy[sp.csr_matrix(A[~cross]).indices] = True
    busy[ea[~xp]] = busy[eb[~xp]] = True
    bound += float(np.maximum(val - t, 0.0)[~busy].sum())
    conf = prob.conflicts.tocsr() if prob.conflicts is not None else None
    n_zones = int(label.max()) + 1
    row_order, starts = _rows_by_zone(rz, n_zones)
    tally = _ZoneTally()
    limits = WorkLimits(max_nodes=nodes, mip_gap=1e-6, max_checkpoints=checkpoints, light_root=True)
    for z in range(n_zones):
        rows = row_order[starts[z] : starts[z + 1]]
        cols = np.flatnonzero((label == z) & busy)
        if len(cols) == 0:
            continue
        inner = ~xp & (label[ea] == z)
        lag = float((W[rows] - lam[rows]).sum() + np.maximum(val[cols] - t, 0.0).sum())
        lag += float(mu[inner].sum())
        made = None
        if safety is None or not safety.expired():
            capz = prob.cap[cols]
            sub = MCLPProblem(
                A=sp.csr_matrix(A[rows][:, cols]),
                W=W[rows],
                C=c[cols],
                n_dedicated=1,
                n_shared=int(prob.n_shared > 0 and capz.max() >= 2),
                cap=capz,
                conflicts=sp.csr_matrix(conf[cols][:, cols]) if conf is not None else None,
            )
            made = _zone_pattern_model(sub, t, nu, mu_x[cols])
        if made is None:
            tally.timed_out = tally.timed_out or (safety is not None and safety.expired())
            bound += lag
            continue
        if safety is not None:
            limits = safety.limits(nodes, 1e-6, checkpoints, light_root=True)
        bound += min(lag, tally.add(solve_model(made[0], limits)))
    return bound, tally.info("mzone", bound, n_zones, int(cross.sum()), t0)
