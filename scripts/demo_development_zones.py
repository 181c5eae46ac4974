"""Development zones on the demo: cantho-2030 switching points with a SYNTHETIC zone layer.

The demo has no map of planned residential/urban areas, so this script makes a synthetic
one - a ring 3-6 km around the densest demand cell (a stand-in for the peri-urban fringe;
not a planning document) - writes it and a copy of ``cantho-2030`` naming it as
``data.development_zones``, runs that scenario's plan up to ``phasing`` once, then the
``switching`` stage with and without the zones, and writes JSON: per variant the
``switching`` summary block and how many 2020 / 2030 points lie in the ring.

Usage::

    python scripts/demo_development_zones.py --out zones.json [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import yaml
from shapely.geometry import Point

from towerplan.plan import PlanState, run_stage, run_stages
from towerplan.scenario import load_scenario

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--out", type=Path, required=True, help="JSON result file")
    ap.add_argument("--work-dir", type=Path, default=None, help="folder for the zone layer")
    args = ap.parse_args()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="towerplan-zones-"))
    work.mkdir(parents=True, exist_ok=True)
    plain = load_scenario("cantho-2030")
    dem = run_stages(PlanState(plain), ["load_inputs", "demand_grid"], progress=False).demand
    c = dem.points.geometry.iloc[int(np.argmax(dem.population))]
    ring = Point(c.x, c.y).buffer(6000).difference(Point(c.x, c.y).buffer(3000))
    gpd.GeoDataFrame(
        {"name": ["SYNTHETIC ring 3-6 km around the densest demand cell"]},
        geometry=[ring],
        crs=plain.crs,
    ).to_file(work / "zones.gpkg", driver="GPKG")
    raw = yaml.safe_load((REPO / "towerplan/scenarios/cantho-2030.yaml").read_text("utf-8"))
    raw["data"]["development_zones"] = {"path": str(work / "zones.gpkg")}
    (work / "cantho-2030-zones.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), "utf-8")
    zoned = load_scenario(work / "cantho-2030-zones.yaml")
    names = ["load_inputs", "demand_grid", "coverage_before", "candidates", "siting", "phasing"]
    state = run_stages(PlanState(zoned), names, progress=False)
    out: dict[str, object] = {"ring_km2": round(ring.area / 1e6, 1)}
    for label, scen in (("with_zones", zoned), ("without_zones", plain)):
        sw = run_stage("switching", dataclasses.replace(state, scenario=scen)).switching
        assert sw is not None
        pts = sw.layers["switching_points"]
        inside = pts.within(ring).to_numpy()
        out[label] = {
            **sw.summary["switching"],
            "points_2020_in_ring": int((inside & (pts["year"] == 2020)).sum()),
            "points_2030_in_ring": int((inside & (pts["year"] == 2030)).sum()),
        }
    out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    args.out.write_text(json.dumps(out, indent=1, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
