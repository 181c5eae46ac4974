"""CPU of the siting solve: a reference commit's code against the working tree's, alternately.

Usage::

    python scripts/bench_speed.py --ref main --only demo cantho-scale-4op cantho-scale \\
        --rounds 2 --out speed.json
    python scripts/bench_speed.py --phases --only demo cantho-scale-4op --rounds 4 --out p.json

Every towerplan speed-up must leave the results bit-identical (all work is bounded by
counters, never seconds), so this script solves each instance of
``scripts/bench_siting.py`` (default ``SolveSettings``: ``auto``, ``mip_gap`` 1e-3,
``work_limit`` 1) with the code of ``--ref`` (``git archive`` of its ``towerplan``
package into a temporary folder) and with the working tree's (or ``--new``'s), in
separate processes run
alternately (``ref, new`` then ``new, ref``, ...), so both see the same machine load.
Each instance is built once (by the working tree) and pickled for both.  It reports
each run's CPU seconds (the process and its finished children, e.g. the forked zone
bound; this includes any OpenBLAS thread beside the main one) and the main thread's CPU
seconds (HiGHS runs in it: the solve's own work)
beside the wall seconds, the median CPU ratios ``new / ref``, the load average,
and fails if the objective, bound or proposed-sites hash differ between the two codes.

``--phases``: the sped-up functions alone, in one process, the former code (kept in this
script: the Lagrangian bound's loop; in ``scripts/_former_swap.py``: the swap and chain
searches' bookkeeping, the type-change values and the pair deltas of main at 6d57904)
and the current one alternately on the same inputs (the Lagrangian bound from the greedy
value, 400 iterations; swap search, type swaps and type chains from the greedy start),
main-thread CPU seconds, results compared bit for bit.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHILD = r"""
import hashlib, json, pickle, resource, sys, time
import numpy as np
from towerplan.siting import _mclp

def cpu():
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

prob = pickle.load(open(sys.argv[1], "rb"))
c0, t0, m0 = cpu(), time.perf_counter(), time.thread_time()
sol = _mclp.solve(prob, _mclp.SolveSettings())
c1, t1, m1 = cpu(), time.perf_counter(), time.thread_time()
o = np.argsort(sol.sites)
blob = sol.sites[o].tobytes() + sol.tenants[o].tobytes() + sol.shared[o].tobytes()
print(json.dumps({
    "cpu_s": round(c1 - c0, 2), "main_thread_cpu_s": round(m1 - m0, 2),
    "wall_s": round(t1 - t0, 2), "objective": sol.objective,
    "bound": sol.upper_bound, "hash": hashlib.sha256(blob).hexdigest()[:16],
    "work": {k: v for k, v in sol.log.items() if isinstance(v, int) and not isinstance(v, bool)},
}))
"""


def export_ref(ref: str, dest: Path) -> str:
    """Extract ``ref``'s ``towerplan`` package into ``dest`` (created); returns the commit id."""
    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", ref], check=True, capture_output=True, text=True
    ).stdout.strip()
    dest.mkdir(parents=True)
    tar = dest / "code.tar"
    with open(tar, "wb") as fh:
        subprocess.run(["git", "-C", str(ROOT), "archive", sha, "towerplan"], check=True, stdout=fh)
    with tarfile.open(tar) as tf:
        tf.extractall(dest, filter="data")
    return sha


def run_once(code_root: Path, pkl: Path) -> dict[str, Any]:
    """Solve the pickled instance with the ``towerplan`` package under ``code_root``."""
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(pkl)], env=env, check=True, capture_output=True, text=True
    )
    res: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    res["load"] = round(os.getloadavg()[0], 2)
    return res


def bench(name: str, roots: dict[str, Path], cache: Path, rounds: int) -> dict[str, Any]:
    """Both codes on instance ``name``, ``rounds`` times each, alternately (the instance
    pickled into ``cache`` once, reused if there)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from bench_siting import build_instance

    pkl = cache / f"{name}.pkl"
    if not pkl.exists():
        with open(pkl, "wb") as fh:
            pickle.dump(build_instance(name), fh)
    runs: dict[str, list[dict[str, Any]]] = {"ref": [], "new": []}
    for r in range(rounds):
        for which in ("ref", "new") if r % 2 == 0 else ("new", "ref"):
            runs[which].append(run_once(roots[which], pkl))
            print(name, which, runs[which][-1], flush=True)
    same = {
        k: len({json.dumps(x[k]) for x in runs["ref"] + runs["new"]}) == 1
        for k in ("objective", "bound", "hash", "work")
    }
    pairs = list(zip(runs["new"], runs["ref"], strict=True))
    return {
        "instance": name,
        "runs": runs,
        "identical": same,
        "cpu_ratio_new_over_ref": statistics.median(n["cpu_s"] / f["cpu_s"] for n, f in pairs),
        "main_thread_cpu_ratio_new_over_ref": statistics.median(
            n["main_thread_cpu_s"] / f["main_thread_cpu_s"] for n, f in pairs
        ),
    }


# ---------------------------------------------------------------- phases, in one process
# The former code of the hot functions sped up since (``--phases`` runs them alternately
# with the current ones in this process, same inputs, results compared bit for bit).


def _former_lagrangian(prob: Any, lower_bound: float, max_iter: int) -> tuple[Any, ...]:
    """``_bounds.lagrangian_bound`` before the speed-up (CSR ``A^T``, new temporaries; the
    norm by numpy's sums, as since f61d44c), without the safety stop; returns (bound, multipliers, spacing multipliers)."""
    import numpy as np

    from towerplan.siting._bounds import _conflict_edges, _conflict_subgradient, _relaxed

    A = prob.A.astype(float).tocsr()
    AT = A.T.tocsr()
    W, cap, n_op, ns, averaging = prob.W, prob.cap, prob.n_ops, prob.n_shared, 0.1
    lam = W / np.maximum(np.diff(A.indptr), 1).astype(float)[:, None]
    nu, theta, since, best, d, dnu, dmu = 0.0, 1.0, 0, np.inf, None, 0.0, np.zeros(0)
    ea, eb = _conflict_edges(prob)
    mu = np.zeros(len(ea))
    best_lam, best_nu, best_mu = lam, nu, mu
    patience = int(np.clip(max_iter / 40.0, 10, 150))
    for _ in range(max_iter):
        L, c, is_sh, top = _relaxed(prob, AT, lam, nu, (ea, eb, mu))
        if L < best - 1e-12 * abs(best if np.isfinite(best) else 1.0):
            best, best_lam, best_nu, best_mu, since = L, lam, nu, mu, 0
        else:
            since += 1
            if since >= patience:
                theta, since = theta * 0.5, 0
        if best - lower_bound <= 1e-3 * max(best, 1e-12) or theta < 1e-6:
            break
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
        g = np.asarray(AT[top].T @ X)
        g -= 1.0
        g[((lam <= 0) & (g > 0)) | ((lam >= W) & (g < 0))] = 0.0
        gnu = float(ns - int(shr.sum())) if ns > 0 else 0.0
        gmu = _conflict_subgradient(prob.n_cand, top, ea, eb, mu)
        if d is not None:
            g = averaging * g + (1.0 - averaging) * d
            gnu = averaging * gnu + (1.0 - averaging) * dnu
            gmu = averaging * gmu + (1.0 - averaging) * dmu
        d, dnu, dmu = g, gnu, gmu
        # numpy's own sums (as the bound since f61d44c; np.vdot's BLAS sums differ)
        norm2 = float(np.square(g).sum()) + gnu * gnu + float(np.square(gmu).sum())
        if norm2 <= 0:
            break
        step = theta * max(L - lower_bound, 1e-9 * max(abs(L), 1.0)) / norm2
        lam = lam - step * g
        np.clip(lam, 0.0, W, out=lam)
        nu -= step * gnu
        mu = np.maximum(mu - step * gmu, 0.0)
    return best, best_lam, best_nu, best_mu


def _solution_key(sol: Any) -> str:
    import hashlib

    import numpy as np

    o = np.argsort(sol.sites)
    blob = sol.sites[o].tobytes() + sol.tenants[o].tobytes() + sol.shared[o].tobytes()
    return f"{sol.objective!r} {hashlib.sha256(blob).hexdigest()[:16]}"


def _phase_runs(prob: Any) -> dict[str, Any]:
    """Each phase once: a function of ``former`` (True: the former code) returning a key
    that must be the same both ways."""
    import hashlib

    import numpy as np

    from towerplan.siting import _bounds, _heuristics

    start = _heuristics.greedy(prob)

    def lagrangian(former: bool) -> str:
        from _former_swap import former_type_values

        lb = start.objective
        if former:
            saved = _bounds._type_values
            _bounds._type_values = former_type_values
            try:
                ub, lam, nu, mu = _former_lagrangian(prob, lb, 400)
            finally:
                _bounds._type_values = saved
        else:
            ub, _ = _bounds.lagrangian_bound(prob, lb, max_iter=400, target_gap=1e-3)
            lam, nu = prob.info["_multipliers"]
            mu = prob.info["_conflict_multipliers"][2]
        blob = lam.tobytes() + np.float64(nu).tobytes() + mu.tobytes()
        return f"{ub!r} {hashlib.sha256(blob).hexdigest()[:16]}"

    def swaps(former: bool) -> str:
        return _swaps(prob, start, former)

    return {"lagrangian": lagrangian, "swap + type chains": swaps}


def _swaps(prob: Any, start: Any, former: bool) -> str:
    """Swap search (20 passes), type swaps (50 moves) and type chains (20 passes) from
    ``start``; ``former``: with the bookkeeping of ``scripts/_former_swap.py`` (patched
    into the modules for the call)."""
    from _former_swap import (
        FormerChainState,
        FormerSwapState,
        former_pair_delta,
        former_type_change_values,
        former_type_swap_search,
        former_type_values,
    )

    from towerplan.siting import _heuristics, _multiop

    names = {
        (_heuristics, "_SwapState"): FormerSwapState,
        (_multiop, "_SwapState"): FormerSwapState,
        (_multiop, "_ChainState"): FormerChainState,
        (_heuristics, "_type_change_values"): former_type_change_values,
        (_multiop, "_type_change_values"): former_type_change_values,
        (_heuristics, "_pair_delta"): former_pair_delta,
        (_heuristics, "type_swap_search"): former_type_swap_search,
        (_heuristics, "_type_values"): former_type_values,
        (_multiop, "_type_values"): former_type_values,
    }
    saved = {key: getattr(*key) for key in names}
    if former:
        for (mod, name), obj in names.items():
            setattr(mod, name, obj)
    try:
        sol = _heuristics.local_search(prob, start, max_passes=20)
        if prob.n_shared and prob.n_dedicated:
            sol = _heuristics.type_swap_search(prob, sol, max_moves=50)
            sol = _multiop.type_chain_search(prob, sol, max_passes=20)
    finally:
        for (mod, name), obj in saved.items():
            setattr(mod, name, obj)
    return _solution_key(sol)


def run_phases(
    name: str, cache: Path, rounds: int, only: list[str] | None = None
) -> dict[str, Any]:
    """The former and current hot functions alternately in this process, main-thread CPU
    (``only``: these phases)."""
    import time

    sys.path.insert(0, str(ROOT / "scripts"))
    from bench_siting import build_instance

    pkl = cache / f"{name}.pkl"
    if not pkl.exists():
        with open(pkl, "wb") as fh:
            pickle.dump(build_instance(name), fh)
    with open(pkl, "rb") as fh:
        prob = pickle.load(fh)
    out: dict[str, Any] = {"instance": name}
    for phase, fn in _phase_runs(prob).items():
        if only and phase not in only:
            continue
        cpu: dict[bool, list[float]] = {True: [], False: []}
        keys = set()
        for r in range(rounds):
            for former in (True, False) if r % 2 == 0 else (False, True):
                t = time.thread_time()
                keys.add(fn(former))
                cpu[former].append(time.thread_time() - t)
        ratio = statistics.median(n / f for n, f in zip(cpu[False], cpu[True], strict=True))
        out[phase] = {
            "former_cpu_s": [round(x, 2) for x in cpu[True]],
            "current_cpu_s": [round(x, 2) for x in cpu[False]],
            "cpu_ratio_current_over_former": round(ratio, 3),
            "identical": len(keys) == 1,
            "load": round(os.getloadavg()[0], 2),
        }
        print(name, phase, out[phase], flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref", default="main", help="reference commit (git rev)")
    ap.add_argument(
        "--new", default=None, help="commit to compare (default: the working tree's code)"
    )
    ap.add_argument("--only", nargs="+", default=["demo"], help="instances of bench_siting.py")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each code per instance")
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--cache", type=Path, help="folder of pickled instances (kept, reused)")
    ap.add_argument(
        "--phases",
        action="store_true",
        help="instead: the sped-up phases, former and current code alternately in this process",
    )
    ap.add_argument(
        "--phase",
        nargs="+",
        choices=["lagrangian", "swap + type chains"],
        help="with --phases: only these phases",
    )
    args = ap.parse_args(argv)
    if args.phases:
        with tempfile.TemporaryDirectory() as td:
            cache = args.cache or Path(td)
            cache.mkdir(parents=True, exist_ok=True)
            prows = [run_phases(n, cache, args.rounds, args.phase) for n in args.only]
        Path(args.out).write_text(json.dumps({"phases": prows}, indent=1))
        ok = all(v["identical"] for r in prows for v in r.values() if isinstance(v, dict))
        return 0 if ok else 1
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        sha = export_ref(args.ref, tmp / "ref")
        roots = {"ref": tmp / "ref", "new": ROOT}
        new = "working tree"
        if args.new is not None:
            new = export_ref(args.new, tmp / "new")
            roots["new"] = tmp / "new"
        cache = args.cache or tmp
        cache.mkdir(parents=True, exist_ok=True)
        rows = [bench(n, roots, cache, args.rounds) for n in args.only]
    report = {"ref": sha, "new": new, "rows": rows}
    Path(args.out).write_text(json.dumps(report, indent=1))
    for row in rows:
        print(
            f"{row['instance']}: CPU new/ref {row['cpu_ratio_new_over_ref']:.3f} (main "
            f"thread {row['main_thread_cpu_ratio_new_over_ref']:.3f}), "
            f"identical {row['identical']}"
        )
    return 0 if all(all(r["identical"].values()) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
