"""Speculative parallel LNS window solves with results identical to the sequential LNS
(private).

The large-neighbourhood search (:func:`~towerplan.siting._heuristics.lns`) re-solves one
window MILP after another, each built from the solution the previous ones left.  While
HiGHS solves window ``k`` (it releases the GIL), the window the loop will reach next *if
window k brings no improvement* (the common case) is predicted on copies of the loop's
control state, its MILP is built from the current solution and handed to a second
worker thread.  When the loop really reaches that window it builds the MILP from the
real state as always and takes the speculative result only if the model (every array of
:class:`~towerplan.siting._highs.MilpModel`, the sparse matrix's structure and values),
the start vector and the work limits are exactly equal to the speculated ones (compared,
not hashed); otherwise the result is discarded (its run interrupted) and the window is
solved.  HiGHS runs single-threaded with a fixed seed and deterministic work limits, so
the result is a function of those inputs only: the search makes the same moves, counts
and objective whatever the thread timing; only the wall time changes.  Hits and misses
are decided by model equality alone, so they are reproducible too.

A window solver calls the solve through a :data:`~towerplan.siting._highs.Runner`: the
LNS passes :meth:`Speculator.run`; to predict, it calls the window solver with
:func:`capture`, which stops the solver at its solve (raising :class:`Captured`) and
hands back the request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import scipy.sparse as sp

from towerplan.siting._highs import MilpModel, MilpResult, WorkLimits, solve_model

__all__ = ["Captured", "SolveRequest", "Speculator", "capture", "same_request"]


@dataclass(frozen=True)
class SolveRequest:
    """One HiGHS solve as a window solver asks for it: model, work limits, start vector."""

    model: MilpModel
    limits: WorkLimits
    start: np.ndarray | None


class Captured(Exception):
    """Raised by :func:`capture` to stop a window solver at its solve."""

    def __init__(self, request: SolveRequest) -> None:
        super().__init__("captured solve request")
        self.request = request


def capture(model: MilpModel, limits: WorkLimits, start: np.ndarray | None) -> MilpResult:
    """A :data:`~towerplan.siting._highs.Runner` that solves nothing: it raises
    :class:`Captured` with the request (the window solver's build part has run, its
    result part does not)."""
    raise Captured(SolveRequest(model, limits, start))


def _same_array(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and bool(np.array_equal(a, b))


def _same_matrix(a: sp.spmatrix, b: sp.spmatrix) -> bool:
    """Equal format, shape, structure (index order included) and values."""
    if a.format != b.format or a.shape != b.shape:
        return False
    if a.format not in ("csr", "csc"):
        a, b = a.tocsr(), b.tocsr()
    return all(_same_array(getattr(a, k), getattr(b, k)) for k in ("indptr", "indices", "data"))


def same_request(a: SolveRequest, b: SolveRequest) -> bool:
    """Whether two solves are exactly the same HiGHS run (the wall-clock safety stop
    ``time_limit_s`` aside: a run it cut is never taken, see :meth:`Speculator.run`)."""
    la, lb = a.limits, b.limits
    if any(
        getattr(la, f.name) != getattr(lb, f.name)
        for f in fields(WorkLimits)
        if f.name != "time_limit_s"
    ):
        return False
    if np.isfinite(la.time_limit_s) != np.isfinite(lb.time_limit_s):
        return False
    ma, mb = a.model, b.model
    if ma.maximize != mb.maximize or ma.offset != mb.offset:
        return False
    arrays = ("obj", "lo", "hi", "integ", "rlo", "rhi")
    if not all(_same_array(getattr(ma, k), getattr(mb, k)) for k in arrays):
        return False
    return _same_matrix(ma.M, mb.M) and _same_array(a.start, b.start)


@dataclass
class _Pending:
    """A speculative solve in flight: which window it predicts, its request, its run."""

    step: int
    request: SolveRequest
    future: Future[MilpResult]
    cancel: threading.Event


class Speculator:
    """Runs the LNS window solves on worker threads, one window ahead speculatively.

    Use as a context manager around one LNS phase (the worker threads end with it, so
    no thread outlives the phase: :func:`towerplan._procs.fork_context` may fork later).
    Before a window's solver is called, the LNS sets :attr:`step` (the window's number)
    and :attr:`ahead` (builds the request of the window predicted next, or ``None``).

    Parameters
    ----------
    workers : int
        Worker threads (2: the window's solve and the next window's speculative one).
    """

    def __init__(self, workers: int = 2) -> None:
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="towerplan-lns")
        self.pending: _Pending | None = None
        self.step = 0
        self.ahead: Callable[[], SolveRequest | None] | None = None
        self.hits = 0
        self.misses = 0

    def __enter__(self) -> Speculator:
        return self

    def __exit__(self, *exc: object) -> None:
        self._drop()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _drop(self) -> None:
        """Discard the pending speculation (its run is interrupted at its next checkpoint)."""
        if self.pending is not None:
            self.pending.cancel.set()
            self.pending.future.cancel()
            self.pending = None

    def _submit(self, req: SolveRequest, cancel: threading.Event | None) -> Future[MilpResult]:
        return self.pool.submit(solve_model, req.model, req.limits, req.start, cancel=cancel)

    def _take(self, req: SolveRequest) -> Future[MilpResult] | None:
        """The pending speculation's run if it is exactly this window's solve."""
        pend, self.pending = self.pending, None
        if pend is None:
            return None
        if pend.step > self.step:
            self.pending = pend  # predicts a later window
            return None
        if pend.step == self.step and same_request(pend.request, req):
            return pend.future
        self.misses += 1
        pend.cancel.set()
        pend.future.cancel()
        return None

    def run(self, model: MilpModel, limits: WorkLimits, start: np.ndarray | None) -> MilpResult:
        """The :data:`~towerplan.siting._highs.Runner` of the LNS: this window's result
        (the speculative one when it is exactly this solve), after starting the
        speculative solve of the window predicted next."""
        req = SolveRequest(model, limits, start)
        fut = self._take(req)
        hit = fut is not None
        if fut is None:
            fut = self._submit(req, None)
        if self.ahead is not None:
            ahead, self.ahead = self.ahead, None
            nxt = ahead()
            if nxt is not None:
                self._drop()
                ev = threading.Event()
                self.pending = _Pending(self.step + 1, nxt, self._submit(nxt, ev), ev)
        res = fut.result()
        if hit and res.time_limited:
            # the safety stop cut the speculative run (started earlier): solve this one
            self.misses += 1
            return solve_model(model, limits, start)
        self.hits += int(hit)
        return res
