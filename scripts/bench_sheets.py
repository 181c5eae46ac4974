"""Time all map sheets of a plan: this checkout against a reference checkout, side by side.

    python scripts/bench_sheets.py --from outputs/cantho-2020 --reference /path/to/old/towerplan

Both write every sheet of the plan in ``--from`` (``write_sheets`` defaults: A4 and A3, PDF
and PNG) into temporary folders, alternating for ``--rounds`` rounds; the reference runs
in a subprocess with its own ``PYTHONPATH`` (its ``write_sheets`` signature may be older;
``best_server`` is passed when it takes it, so both write the same sheet set).
Reports the median wall time of each, their ratio, the same for CPU time (all threads;
steadier than wall time on a loaded machine), the machine and the load average before and
after.
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
import json, sys, time
import geopandas as gpd, pandas as pd, pyogrio
src, out = sys.argv[1], sys.argv[2]
gpkg = f"{src}/towerplan.gpkg"
layers = {str(n): gpd.read_file(gpkg, layer=str(n)) for n, _ in pyogrio.list_layers(gpkg)
          if n not in ("demand", "layer_styles")}
summary = json.load(open(f"{src}/summary.json", encoding="utf-8"))
kpis = pd.read_csv(f"{src}/district_kpis.csv")
from towerplan.outputs import sheets
"""
_CURRENT = (
    _LOAD
    + """
t, c = time.perf_counter(), time.process_time()
files = sheets.write_sheets(layers, summary, kpis, out, best_server=f"{src}/best_server.tif")
print(json.dumps({"s": time.perf_counter() - t, "cpu_s": time.process_time() - c,
                  "files": len(files), "code": sheets.__file__}))
"""
)
_REFERENCE = (
    _LOAD
    + """
import inspect
kw = {}
if "best_server" in inspect.signature(sheets.write_sheets).parameters:
    kw["best_server"] = f"{src}/best_server.tif"  # the same sheet set as the current code
t, c = time.perf_counter(), time.process_time()
files = sheets.write_sheets(layers, summary, kpis, out, **kw)
print(json.dumps({"s": time.perf_counter() - t, "cpu_s": time.process_time() - c,
                  "files": len(files), "code": sheets.__file__}))
"""
)


def _run(code: str, pythonpath: Path, src: Path) -> dict[str, float]:
    """Run ``code`` in a subprocess; its JSON result (wall and CPU seconds of the sheets)."""
    with tempfile.TemporaryDirectory(prefix="bench-sheets-") as out:
        env = dict(os.environ, PYTHONPATH=str(pythonpath), MPLBACKEND="Agg")
        # cwd = the empty output folder: ``python -c`` puts the cwd first on sys.path, so
        # run from a checkout it would import that checkout instead of PYTHONPATH's
        res = subprocess.run(
            [sys.executable, "-c", code, str(src.resolve()), out],
            cwd=out,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="src", type=Path, required=True, help="plan output folder")
    ap.add_argument("--reference", type=Path, required=True, help="reference checkout")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="write the result as JSON")
    args = ap.parse_args()
    here = Path(__file__).resolve().parents[1]
    load0 = os.getloadavg()
    cur, ref, cur_cpu, ref_cpu = [], [], [], []
    n_cur = n_ref = 0
    for _ in range(args.rounds):
        r = _run(_REFERENCE, args.reference, args.src)
        ref.append(r["s"])
        ref_cpu.append(r["cpu_s"])
        n_ref = int(r["files"])
        c = _run(_CURRENT, here, args.src)
        cur.append(c["s"])
        cur_cpu.append(c["cpu_s"])
        n_cur = int(c["files"])
        if r["code"] == c["code"]:
            raise SystemExit(f"reference and current both import {c['code']}")
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_before": [round(x, 2) for x in load0],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "reference_s": [round(x, 2) for x in ref],
        "current_s": [round(x, 2) for x in cur],
        "reference_files": n_ref,
        "current_files": n_cur,
        "speedup": round(statistics.median(ref) / statistics.median(cur), 2),
        # CPU seconds of the sheet writing (all threads): steadier than wall time under load
        "reference_cpu_s": [round(x, 2) for x in ref_cpu],
        "current_cpu_s": [round(x, 2) for x in cur_cpu],
        "cpu_speedup": round(statistics.median(ref_cpu) / statistics.median(cur_cpu), 2),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
