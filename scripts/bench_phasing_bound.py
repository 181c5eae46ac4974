"""Quality of the phasing bound: greedy and Lagrangian bound against the exact optimum.

On random multi-period maximal covering instances (uniform demand points with log-normal
population, uniform candidates, a fixed radius, two periods) this solves each instance
exactly (HiGHS, :func:`towerplan.siting._phasing.solve` with no column limit), then
measures what the period-by-period greedy loses (``greedy_loss``; after the swap
local search ``greedy_swap_loss``) and how far the
Lagrangian bound lies above the optimum (``bound_excess``) with the current settings
(1,000 steps, factor 2 halved after 20 steps without a better bound) and the former ones
(300 steps, factor 1, decay 0.99).  Writes JSON with the machine load.  Quality, not time: the figures do not
depend on the load.

Usage::

    python scripts/bench_phasing_bound.py --out bound.json [--instances 4]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from towerplan.siting import _phasing as ph


def instance(
    seed: int, rows: int = 4000, cands: int = 500, radius: float = 900.0
) -> ph.PhasingProblem:
    """A random two-period instance on a 20 km square (budgets 30 + 30)."""
    rng = np.random.default_rng(seed)
    dxy = rng.random((rows, 2)) * 20000
    pop = rng.lognormal(3, 1.2, rows)
    cxy = rng.random((cands, 2)) * 20000
    near = cKDTree(cxy).query_ball_point(dxy, radius)
    r = np.repeat(np.arange(rows), [len(n) for n in near])
    c = np.concatenate([np.asarray(n, dtype=np.int64) for n in near])
    A = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(rows, cands))
    W = np.outer(pop, [5 * 1.02, 5 * 1.05])
    return ph.reduce_rows(ph.PhasingProblem(A, W, np.zeros((cands, 2)), np.array([30, 30])))


def main() -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--out", type=Path, required=True, help="JSON result file")
    ap.add_argument("--instances", type=int, default=4)
    args = ap.parse_args()
    rows = []
    for seed in range(args.instances):
        prob = instance(seed)
        exact = ph.solve(prob, max_exact_columns=10**8, max_nodes=2000, mip_gap=1e-6)
        greedy = ph.greedy(prob)
        g = greedy.objective
        sw = ph.swap_improve(prob, greedy).objective
        now = ph.lagrangian_bound(prob, g, iterations=1000)
        old = ph.lagrangian_bound(prob, g, iterations=300, patience=None, decay=0.99)
        opt = exact.objective
        rows.append(
            {
                "seed": seed,
                "optimum": round(opt, 1),
                "proven": bool(exact.gap <= 1e-6),
                "greedy_loss": round((opt - g) / opt, 5),
                "greedy_swap_loss": round((opt - sw) / opt, 5),
                "bound_excess": round((now - opt) / opt, 5),
                "bound_excess_former_rule": round((old - opt) / opt, 5),
                "gap_reported": round((now - sw) / now, 5),
                "gap_reported_former_rule": round((old - g) / old, 5),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    out = {"rows": rows, "load_average": [round(x, 2) for x in os.getloadavg()]}
    args.out.write_text(json.dumps(out, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
