"""How well OpenCelliD cells are clustered back into towers, by clustering distance.

Synthetic towers (tests/_ocid_fixture.py): 40 towers, 4 operators, ~27 % shared, 1-6
cells per operator scattered with sigma 30-100 m.  For each clustering distance and tower
spacing, over 20 seeds: mean |structures - towers| / towers, the share of runs within
+-5 %, and the share of runs whose per-operator tenancies are exact.

Run: ``python scripts/bench_opencellid.py`` (a few seconds; no timing claims).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _ocid_fixture import synthetic_towers, tenancies, true_tenancies

from towerplan.inputs.opencellid import cluster_cells_to_sites


def main() -> None:
    print("spacing_m  distance_m  mean_count_err  within_5pct  tenancies_exact")
    for spacing in (300.0, 400.0, 600.0):
        for dist in (100.0, 150.0, 200.0, 250.0, 300.0):
            errs, ok5, exact = [], 0, 0
            for seed in range(20):
                cells, towers = synthetic_towers(spacing_m=spacing, seed=seed)
                s = cluster_cells_to_sites(cells, cluster_distance_m=dist)
                e = abs(len(s) - len(towers)) / len(towers)
                errs.append(e)
                ok5 += e <= 0.05
                exact += tenancies(s["operators"]) == true_tenancies(towers)
            print(
                f"{spacing:9.0f}  {dist:10.0f}  {np.mean(errs):14.3f}  {ok5 / 20:11.2f}  "
                f"{exact / 20:15.2f}"
            )


if __name__ == "__main__":
    main()
