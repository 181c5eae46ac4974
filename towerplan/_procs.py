"""Forked worker processes: when it is safe to fork (private).

A forked child inherits the parent's memory (the plan layers are not copied or pickled),
but only the forking thread: a lock held by another thread at that moment stays held in
the child.  :func:`fork_context` allows the fork when this process runs no thread but its
main one and tqdm's progress-bar monitors (they sleep, and the children never draw a
progress bar), the machine has a second core and the platform forks.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from multiprocessing.context import BaseContext

__all__ = ["fork_context"]


def fork_context(*, need_cores: int = 2) -> BaseContext | None:
    """The ``fork`` multiprocessing context when forking is safe and useful, else ``None``.

    Parameters
    ----------
    need_cores : int
        Fork only on a machine with at least this many cores (1: any).

    Returns
    -------
    multiprocessing.context.BaseContext or None
        ``multiprocessing.get_context("fork")``, or ``None`` (work here, or start fresh
        processes).
    """
    if "fork" not in multiprocessing.get_all_start_methods():
        return None
    if (os.cpu_count() or 1) < need_cores:
        return None
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if threading.current_thread() is not threading.main_thread():
        return None
    if any(type(t).__name__ != "TMonitor" for t in others):
        return None
    return multiprocessing.get_context("fork")
