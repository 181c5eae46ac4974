"""Time all map sheets of a plan: this checkout against a reference checkout, side by side.

    python scripts/bench_sheets.py --from outputs/cantho-2020 --reference /path/to/old/towerplan

Both write every sheet of the plan in ``--from`` (``write_sheets`` defaults: A4 and A3, PDF
and PNG) into temporary folders, alternating for ``--rounds`` rounds; each runs in a
subprocess with its own ``PYTHONPATH`` (the reference's ``write_sheets`` signature may be
older; ``best_server`` is passed when it takes it, so both write the same sheet set).  The
current code runs twice per round: with its default worker processes (one per core, at
most 4) and with ``workers=1`` (all in one process: the gain that is not parallelism).
Reports the median wall time of each, their ratios, the same for CPU time (all threads and
worker processes; steadier than wall time on a loaded machine), the CPU time of the main
process before its first sheet goes to a worker process (the serial start), the machine,
``uptime`` before and after and the load average of each round.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_LOAD = """
import json, os, sys, time
import geopandas as gpd, pandas as pd, pyogrio
src, out = sys.argv[1], sys.argv[2]
gpkg = f"{src}/towerplan.gpkg"
layers = {str(n): gpd.read_file(gpkg, layer=str(n)) for n, _ in pyogrio.list_layers(gpkg)
          if n not in ("demand", "layer_styles")}
summary = json.load(open(f"{src}/summary.json", encoding="utf-8"))
kpis = pd.read_csv(f"{src}/district_kpis.csv")
from towerplan.outputs import sheets
"""
_CPU = """
def cpu():  # this process (all threads) and its finished worker processes
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system
import concurrent.futures.process as _cfp
_first = {}  # CPU of this process until the first sheet goes to a worker (the serial start)
_submit = _cfp.ProcessPoolExecutor.submit
def _timed_submit(self, *a, **k):
    _first.setdefault("serial_cpu_s", time.process_time() - _c0)
    return _submit(self, *a, **k)
_cfp.ProcessPoolExecutor.submit = _timed_submit
"""
_CURRENT = (
    _LOAD
    + _CPU
    + """
kw = {} if sys.argv[3] == "default" else {"workers": int(sys.argv[3])}
t, c, _c0 = time.perf_counter(), cpu(), time.process_time()
files = sheets.write_sheets(layers, summary, kpis, out, best_server=f"{src}/best_server.tif", **kw)
print(json.dumps({"s": time.perf_counter() - t, "cpu_s": cpu() - c, **_first,
                  "files": len(files), "code": sheets.__file__}))
"""
)
_REFERENCE = (
    _LOAD
    + _CPU
    + """
import inspect
kw = {}
if "best_server" in inspect.signature(sheets.write_sheets).parameters:
    kw["best_server"] = f"{src}/best_server.tif"  # the same sheet set as the current code
t, c, _c0 = time.perf_counter(), cpu(), time.process_time()
files = sheets.write_sheets(layers, summary, kpis, out, **kw)
print(json.dumps({"s": time.perf_counter() - t, "cpu_s": cpu() - c, **_first,
                  "files": len(files), "code": sheets.__file__}))
"""
)


def _run(code: str, pythonpath: Path, src: Path, *args: str) -> dict[str, float]:
    """Run ``code`` in a subprocess; its JSON result (wall and CPU seconds of the sheets)."""
    with tempfile.TemporaryDirectory(prefix="bench-sheets-") as out:
        env = dict(os.environ, PYTHONPATH=str(pythonpath), MPLBACKEND="Agg")
        # cwd = the empty output folder: ``python -c`` puts the cwd first on sys.path, so
        # run from a checkout it would import that checkout instead of PYTHONPATH's
        res = subprocess.run(
            [sys.executable, "-c", code, str(src.resolve()), out, *args],
            cwd=out,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(res.stdout.strip().splitlines()[-1])


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="src", type=Path, required=True, help="plan output folder")
    ap.add_argument("--reference", type=Path, required=True, help="reference checkout")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="write the result as JSON")
    args = ap.parse_args()
    here = Path(__file__).resolve().parents[1]
    uptime0 = _uptime()
    runs: dict[str, list[dict[str, float]]] = {"reference": [], "current": [], "current_1": []}
    loads = []
    for _ in range(args.rounds):
        runs["reference"].append(_run(_REFERENCE, args.reference, args.src))
        runs["current"].append(_run(_CURRENT, here, args.src, "default"))
        runs["current_1"].append(_run(_CURRENT, here, args.src, "1"))
        loads.append(round(os.getloadavg()[0], 2))
        if runs["reference"][-1]["code"] == runs["current"][-1]["code"]:
            raise SystemExit(f"reference and current both import {runs['current'][-1]['code']}")
    wall = {k: [float(r["s"]) for r in v] for k, v in runs.items()}
    cpu = {k: [float(r["cpu_s"]) for r in v] for k, v in runs.items()}
    result: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "uptime_before": uptime0,
        "uptime_after": _uptime(),
        "load_1min_after_each_round": loads,
        "files": {k: int(v[-1]["files"]) for k, v in runs.items()},
    }
    for k in runs:
        result[f"{k}_s"] = [round(x, 2) for x in wall[k]]
        result[f"{k}_cpu_s"] = [round(x, 2) for x in cpu[k]]
        # CPU of the main process before its first sheet went to a worker (None: no workers)
        serial = [r.get("serial_cpu_s") for r in runs[k]]
        result[f"{k}_serial_cpu_s"] = [None if x is None else round(float(x), 2) for x in serial]
    ref, ref_cpu = statistics.median(wall["reference"]), statistics.median(cpu["reference"])
    # wall-time ratios: reference over current (default workers) and over current on 1 process
    result["speedup"] = round(ref / statistics.median(wall["current"]), 2)
    result["speedup_1_worker"] = round(ref / statistics.median(wall["current_1"]), 2)
    result["cpu_speedup"] = round(ref_cpu / statistics.median(cpu["current"]), 2)
    result["cpu_speedup_1_worker"] = round(ref_cpu / statistics.median(cpu["current_1"]), 2)
    result["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
