"""The one solver wrapper: sparse (MI)LP models solved by HiGHS through highspy (private).

Every optimisation model of towerplan (maximal covering, set covering, co-location,
Wi-Fi) is handed to HiGHS as a :class:`MilpModel` with :class:`WorkLimits` and comes
back as a :class:`MilpResult`.

Reproducibility: HiGHS runs single-threaded with a fixed random seed and is bounded by
deterministic work (branch-and-bound nodes, simplex iterations), so for the same model
the result is the same on any machine under any load.  The wall-clock ``time_limit_s``
is a safety stop only; when it fires the result says so (``time_limited``) and the
caller must report the run as not reproducible.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from towerplan.errors import N_, warn_user

logger = logging.getLogger(__name__)

NO_LIMIT = 2_147_483_647
"""HiGHS's 'unlimited' for integer work limits."""


@dataclass(frozen=True)
class MilpModel:
    """A sparse (mixed-integer) linear programme ``max/min obj @ x + offset``.

    Attributes
    ----------
    obj, lo, hi : ndarray (n_col,)
        Objective coefficients and column bounds.
    integ : ndarray of bool (n_col,)
        Integer columns.
    M : sparse (n_row, n_col)
        Constraint matrix.
    rlo, rhi : ndarray (n_row,)
        Row bounds (``-inf`` / ``inf`` for one-sided rows).
    offset : float
        Constant added to the objective.
    maximize : bool
        Sense of the objective.
    """

    obj: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    integ: np.ndarray
    M: sp.csr_matrix
    rlo: np.ndarray
    rhi: np.ndarray
    offset: float = 0.0
    maximize: bool = True

    @property
    def n_col(self) -> int:
        return len(self.obj)

    @property
    def nnz(self) -> int:
        return int(self.M.nnz)


@dataclass(frozen=True)
class WorkLimits:
    """Deterministic work bounds of one HiGHS run, plus the wall-clock safety stop.

    Attributes
    ----------
    max_nodes : int
        Branch-and-bound nodes (``mip_max_nodes``).
    max_simplex_iterations : int
        Simplex iterations (``simplex_iteration_limit``), for LPs and every LP of a MIP.
    mip_gap : float
        Relative gap at which HiGHS stops the MIP.
    time_limit_s : float
        Safety stop only (``inf`` = none); a run that hits it is not reproducible.
    max_checkpoints : int
        MIP work checkpoints: HiGHS calls its MIP interrupt callback at fixed points of
        its search (each root separation round, each node batch); the run stops after
        this many calls.  This bounds the root node, which no node limit does (root cut
        separation can take tens of seconds), deterministically.
    light_root : bool
        Skip HiGHS's presolve and primal heuristics (for the small, warm-started window
        MILPs of the large-neighbourhood search: the same optimum, measured 1.2-1.8x
        less time, since the start is usually optimal already).  Still exact.
    """

    max_nodes: int = NO_LIMIT
    max_simplex_iterations: int = NO_LIMIT
    mip_gap: float = 1e-4
    time_limit_s: float = math.inf
    max_checkpoints: int = NO_LIMIT
    light_root: bool = False


@dataclass
class MilpResult:
    """Outcome of :func:`solve_model`.

    ``x`` is ``None`` when no feasible solution is known; ``bound`` is the dual bound
    (MIP) or the LP optimum (relaxation); ``time_limited`` is True when the safety
    stop ended the run.
    """

    status: str
    x: np.ndarray | None
    objective: float
    bound: float
    nodes: int = 0
    simplex_iterations: int = 0
    solve_s: float = 0.0
    time_limited: bool = False
    checkpoints: int = 0
    work_stopped: bool = False
    row_dual: np.ndarray | None = None
    log: dict[str, Any] = field(default_factory=dict)


Runner = Callable[[MilpModel, WorkLimits, np.ndarray | None], MilpResult]
"""How a caller has a model solved: ``(model, limits, start) -> result``;
:func:`solve_model` itself, or the speculative LNS's
:meth:`~towerplan.siting._speculate.Speculator.run` (the same result)."""

_BANNER_DONE = False
_BANNER_LOCK = threading.Lock()


def new_highs() -> Any:
    """A silent ``highspy.Highs``; the one-time start-up banner is kept off stdout."""
    import highspy

    if _BANNER_DONE:
        return highspy.Highs()
    with _BANNER_LOCK:  # the banner's stdout redirection is process-wide
        return _first_highs()


def _first_highs() -> Any:
    global _BANNER_DONE
    import highspy

    if _BANNER_DONE:
        return highspy.Highs()
    try:
        sys.stdout.flush()
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        fd = -1
    if fd < 0:
        _BANNER_DONE = True
        return highspy.Highs()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            h = highspy.Highs()
    finally:
        os.dup2(saved, fd)
        os.close(saved)
    _BANNER_DONE = True
    return h


def _configure(h: Any, limits: WorkLimits) -> None:
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("mip_rel_gap", float(limits.mip_gap))
    h.setOptionValue("mip_max_nodes", int(min(limits.max_nodes, NO_LIMIT)))
    h.setOptionValue("simplex_iteration_limit", int(min(limits.max_simplex_iterations, NO_LIMIT)))
    if np.isfinite(limits.time_limit_s):
        h.setOptionValue("time_limit", float(max(limits.time_limit_s, 0.01)))
    if limits.light_root:
        h.setOptionValue("presolve", "off")
        h.setOptionValue("mip_heuristic_effort", 0.0)


def _pass_model(h: Any, model: MilpModel, relax: bool) -> None:
    import highspy

    lp = highspy.HighsLp()
    Mc = sp.csc_matrix(model.M)
    Mc.sort_indices()
    lp.num_col_ = model.n_col
    lp.num_row_ = int(model.M.shape[0])
    lp.col_cost_ = np.asarray(model.obj, dtype=float)
    lp.col_lower_ = np.asarray(model.lo, dtype=float)
    lp.col_upper_ = np.asarray(model.hi, dtype=float)
    lp.row_lower_ = np.asarray(model.rlo, dtype=float)
    lp.row_upper_ = np.asarray(model.rhi, dtype=float)
    lp.offset_ = float(model.offset)
    lp.sense_ = highspy.ObjSense.kMaximize if model.maximize else highspy.ObjSense.kMinimize
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = Mc.indptr.astype(np.int32)
    lp.a_matrix_.index_ = Mc.indices.astype(np.int32)
    lp.a_matrix_.value_ = Mc.data.astype(float)
    if not relax:
        lp.integrality_ = [
            highspy.HighsVarType.kInteger if b else highspy.HighsVarType.kContinuous
            for b in model.integ
        ]
    h.passModel(lp)


def _subscribe_stops(
    h: Any, limits: WorkLimits, relax: bool, cancel: threading.Event | None = None
) -> dict[str, int]:
    """Interrupt callbacks: the work checkpoints (MIP) and the wall-clock safety stop.

    The safety stop fires once the wall clock passes ``time_limit_s`` + 0.5 s (HiGHS
    checks its own ``time_limit`` only at some points).  ``cancel`` (a run whose result
    nobody will read: a discarded speculative LNS window) interrupts the run at the next
    call of a callback subscribed anyway (never subscribes one itself: a run with
    ``cancel`` is configured exactly as one without).  Each ``Highs`` object has its own callbacks and ``state``, so
    runs in several threads do not interfere.  Returns live counters: ``checkpoints``
    (MIP callback calls), ``work_stop`` and ``time_stop`` (1 when fired).
    """
    state = {"checkpoints": 0, "work_stop": 0, "time_stop": 0}
    timed = bool(np.isfinite(limits.time_limit_s))
    deadline = time.perf_counter() + max(limits.time_limit_s, 0.01) + 0.5 if timed else 0.0

    def _time(event: Any) -> None:
        if cancel is not None and cancel.is_set():
            event.interrupt()
        elif timed and time.perf_counter() > deadline:
            state["time_stop"] = 1
            event.interrupt()

    def _mip(event: Any) -> None:
        state["checkpoints"] += 1
        if cancel is not None and cancel.is_set():
            event.interrupt()
        elif state["checkpoints"] > limits.max_checkpoints:
            state["work_stop"] = 1
            event.interrupt()
        else:
            _time(event)

    if timed:
        h.cbSimplexInterrupt.subscribe(_time)
        h.cbIpmInterrupt.subscribe(_time)
    if not relax and (timed or limits.max_checkpoints < NO_LIMIT):
        h.cbMipInterrupt.subscribe(_mip)
    return state


def _run(
    model: MilpModel,
    limits: WorkLimits,
    start: np.ndarray | None,
    relax: bool,
    cancel: threading.Event | None = None,
) -> tuple[Any, dict[str, int], Any]:
    import highspy

    h = new_highs()
    _configure(h, limits)
    _pass_model(h, model, relax)
    if start is not None and not relax:
        hs = highspy.HighsSolution()
        hs.col_value = list(np.asarray(start, dtype=float))
        hs.value_valid = True
        h.setSolution(hs)
    state = _subscribe_stops(h, limits, relax, cancel)
    return h, state, h.run()


def solve_model(
    model: MilpModel,
    limits: WorkLimits,
    start: np.ndarray | None = None,
    *,
    relax: bool = False,
    cancel: threading.Event | None = None,
) -> MilpResult:
    """Solve ``model`` (or its LP relaxation) with HiGHS within ``limits``.

    Parameters
    ----------
    model : MilpModel
    limits : WorkLimits
    start : ndarray, optional
        A feasible start vector (MIP only).
    relax : bool
        Solve the LP relaxation (integrality dropped); ``row_dual`` is returned.
    cancel : threading.Event, optional
        Once set, the MIP stops at its next work checkpoint (for a run whose result will
        be discarded; the result of a cancelled run is meaningless).

    Returns
    -------
    MilpResult
    """
    import highspy

    t0 = time.perf_counter()
    h, state, run_status = _run(model, limits, start, relax, cancel)
    if run_status == highspy.HighsStatus.kError and h.getModelStatus() in (
        highspy.HighsModelStatus.kNotset,
        highspy.HighsModelStatus.kLoadError,
    ):
        # HiGHS refuses threads=1 when another caller in this process started its thread
        # scheduler with more threads: restart the scheduler once and run again
        logger.info("HiGHS did not start (thread scheduler in use); restarting it")
        highspy.Highs.resetGlobalScheduler(True)
        h, state, run_status = _run(model, limits, start, relax, cancel)
    el = time.perf_counter() - t0
    ms = h.getModelStatus()
    status = h.modelStatusToString(ms)
    time_limited = bool(state["time_stop"]) or ms == highspy.HighsModelStatus.kTimeLimit
    if time_limited:
        warn_user(
            logger,
            N_("HiGHS stopped by the wall-clock safety stop after {s:.1f} s"),
            log_only=True,
            s=el,
        )
    if run_status == highspy.HighsStatus.kError:
        warn_user(
            logger, N_("HiGHS returned an error status ({status})"), log_only=True, status=status
        )
    info = h.getInfo()
    out = MilpResult(
        status=status,
        x=None,
        objective=float("nan"),
        bound=float("nan"),
        nodes=int(info.mip_node_count) if not relax else 0,
        simplex_iterations=int(info.simplex_iteration_count),
        solve_s=el,
        time_limited=time_limited,
        checkpoints=state["checkpoints"],
        work_stopped=bool(state["work_stop"]),
    )
    if relax:
        if ms == highspy.HighsModelStatus.kOptimal:
            hsol = h.getSolution()
            out.x = np.asarray(hsol.col_value)
            out.objective = out.bound = float(info.objective_function_value)
            out.row_dual = np.asarray(hsol.row_dual)
        return out
    out.bound = float(info.mip_dual_bound)
    if info.primal_solution_status != 2:  # kSolutionStatusFeasible
        return out
    x = np.asarray(h.getSolution().col_value)
    val = float((model.obj * x).sum()) + float(model.offset)
    reported = float(info.objective_function_value)
    if abs(val - reported) > 1e-6 * max(1.0, abs(reported)):
        # highspy 1.16 can report a better objective than the warm start yet hand back the
        # start vector itself (seen when presolve finishes the MIP): solve again without it
        logger.info(
            "HiGHS returned a stale solution vector (%.6g vs %.6g); re-solving", val, reported
        )
        if start is not None:
            again = solve_model(model, limits, None, cancel=cancel)
            if again.x is not None and _better(model, again.objective, val):
                again.solve_s += el
                again.bound = _tighter(model, again.bound, out.bound)
                return again
        out.x, out.objective = x, val
        return out
    out.x, out.objective = x, reported
    return out


def _better(model: MilpModel, a: float, b: float) -> bool:
    return a >= b - 1e-9 if model.maximize else a <= b + 1e-9


def _tighter(model: MilpModel, a: float, b: float) -> float:
    vals = [v for v in (a, b) if np.isfinite(v)]
    if not vals:
        return float("nan")
    return min(vals) if model.maximize else max(vals)


@dataclass
class IpmResult:
    """Outcome of :func:`solve_relaxation_ipm`: the LP relaxation by interior point.

    ``row_dual`` is HiGHS's last dual iterate (``None`` if it has none); ``objective``
    is its primal objective (not a bound unless ``status`` is ``'Optimal'``).
    """

    status: str
    objective: float
    row_dual: np.ndarray | None
    iterations: int
    solve_s: float
    time_limited: bool


def solve_relaxation_ipm(model: MilpModel, max_iterations: int, time_limit_s: float) -> IpmResult:
    """The LP relaxation of ``model`` by HiGHS's interior-point solver, without crossover.

    Bounded by deterministic work (``ipm_iteration_limit``; one thread), so the dual
    iterate returned is the same on any machine under any load; ``time_limit_s`` is the
    safety stop only.  Callers turn the duals into a bound themselves (an interior
    iterate is not a vertex and may be slightly infeasible).
    """
    import highspy

    h = new_highs()
    _configure(h, WorkLimits(time_limit_s=time_limit_s))
    h.setOptionValue("solver", "ipm")
    h.setOptionValue("run_crossover", "off")
    h.setOptionValue("ipm_iteration_limit", int(max(1, min(max_iterations, NO_LIMIT))))
    _pass_model(h, model, True)
    state = _subscribe_stops(h, WorkLimits(time_limit_s=time_limit_s), True)
    t0 = time.perf_counter()
    h.run()
    ms = h.getModelStatus()
    info = h.getInfo()
    sol = h.getSolution()
    n_row = int(model.M.shape[0])
    dual = np.asarray(sol.row_dual, dtype=float) if len(sol.row_dual) == n_row else None
    return IpmResult(
        status=h.modelStatusToString(ms),
        objective=float(info.objective_function_value),
        row_dual=dual,
        iterations=int(info.ipm_iteration_count),
        solve_s=time.perf_counter() - t0,
        time_limited=bool(state["time_stop"]) or ms == highspy.HighsModelStatus.kTimeLimit,
    )
