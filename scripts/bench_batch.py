"""Benchmark ``towerplan batch``: 1 vs 2 LocalCluster workers on the national census communes.

Runs the same batch (``need --coverage 0.95`` from scratch, every province, 250 m cells) twice
in one process run, on a LocalCluster with 1 and then 2 worker processes, and writes JSON:
``rows`` (``areas``, ``workers``, ``wall_s``, ``peak_worker_rss_mb``, ``new_sites``,
``same_result_as_1_worker``, and the CPU split: ``client_cpu_s`` (client + LocalCluster
scheduler: serial work), ``tasks_cpu_s`` (sum over tasks), ``workers_cpu_s`` (worker processes
incl. start-up), ``serial_fraction`` and ``amdahl_speedup_2``) and a top-level
``speedup_2_over_1`` beside ``amdahl_speedup_2`` (the limit the serial share allows), with the
machine load.
``--quick`` runs only the 6 largest provinces (also at 250 m cells, the target resolution): a
speed-up needs task work well above the client's fixed serial work (cluster start-up, national
maps; ``client_cpu_s``).  The 4 smallest provinces, the former ``--quick`` set, run in ~9 s of
task CPU beside ~7 s of client CPU, which caps 2 workers over 1 at ~1.4 (``amdahl_speedup_2``).

Usage::

    python scripts/bench_batch.py --out bench.json [--quick] [--boundaries PATH]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

from towerplan import batch
from towerplan.scenario import load_scenario

REPO = Path(__file__).resolve().parents[1]
NATIONAL = REPO.parent / "shared" / "data" / "censusvn2009_national"


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--out", type=Path, required=True, help="JSON result file")
    ap.add_argument("--quick", action="store_true", help="the 6 largest provinces only")
    ap.add_argument("--boundaries", type=Path, default=NATIONAL / "communes_2009census.gpkg")
    ap.add_argument("--cell-size", type=float, default=None, help="cell size (m)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    template = load_scenario("cantho-2020")
    cell = args.cell_size or 250.0
    only = None
    if args.quick:
        import geopandas as gpd

        prov = gpd.read_file(args.boundaries.parent / "provinces_2009census.gpkg")
        largest = prov.sort_values("area_geom_ha", ascending=False)
        only = [str(c) for c in largest["province_id"].head(6)]
    areas, report = batch.areas_from_boundaries(
        args.boundaries,
        by="province",
        crs=template.crs,
        only=only,
        calibrate=NATIONAL / "province_population_check_2009.csv",
    )
    task = batch.AreaTask(mode="need", coverage=0.95, cell_size_m=cell)
    rows = []
    reference: list[tuple] | None = None
    for workers in (1, 2):
        load_before = _load()
        with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
            t0 = time.perf_counter()
            res = batch.run_batch(
                areas, template, [task], Path(tmp) / "out", workers=workers, progress=False
            )
            wall = time.perf_counter() - t0
        figures = sorted(
            (r["code"], r.get("new_sites"), r.get("coverage_after")) for r in res.records
        )
        reference = reference or figures
        ok = [r for r in res.records if r["status"] == "ok"]
        rows.append(
            {
                "areas": len(areas),
                "workers": workers,
                "cell_size_m": cell,
                "wall_s": round(wall, 2),
                "peak_worker_rss_mb": max((r["peak_worker_rss_mb"] for r in ok), default=None),
                "runs_ok": len(ok),
                "new_sites": sum(int(r["new_sites"]) for r in ok),
                "same_result_as_1_worker": figures == reference,
                **{k: res.summary["cpu"][k] for k in res.summary["cpu"]},
                "load_before": load_before,
                "load_after": _load(),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    doc = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "quick": bool(args.quick),
        "preparation": report,
        "rows": rows,
        "speedup_2_over_1": round(rows[0]["wall_s"] / rows[1]["wall_s"], 3),
        "amdahl_speedup_2": rows[1]["amdahl_speedup_2"],
    }
    args.out.write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")
    print(
        f"speedup 2 over 1 worker: {doc['speedup_2_over_1']} "
        f"(Amdahl limit from the client's serial CPU share: {doc['amdahl_speedup_2']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
