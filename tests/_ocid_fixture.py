"""Synthetic OpenCelliD cells around known towers (used by tests and scripts/bench_opencellid.py).

Towers are spread over a city by dart throwing with a minimum spacing; each tower has a
host and, with probability ``p_shared``, one or two more tenants; each tenant has 1-6
cells whose positions scatter around the tower with a Gaussian error of sigma drawn in
[sigma_min, sigma_max] metres per tenant (crowd-sourced positions are estimates).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

OPERATORS = {4: "Viettel", 2: "VNPT-VinaPhone", 1: "MobiFone", 5: "Vietnamobile"}
SHARES = np.array([0.5, 0.25, 0.2, 0.05])
LON0, LAT0 = 105.77, 10.03  # Cần Thơ, only to place the synthetic city
M_PER_DEG_LAT = 110_574.0


def synthetic_towers(
    n_towers: int = 40,
    spacing_m: float = 400.0,
    p_shared: float = 0.275,
    sigma_m: tuple[float, float] = (30.0, 100.0),
    cells_per_operator: tuple[int, int] = (1, 6),
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cells, towers): OpenCelliD-like cell rows and the true towers with their tenants."""
    rng = np.random.default_rng(seed)
    side = spacing_m * np.sqrt(n_towers) * 1.6
    pts: list[np.ndarray] = []
    while len(pts) < n_towers:
        p = rng.uniform(0, side, 2)
        if all(np.hypot(*(p - q)) >= spacing_m for q in pts):
            pts.append(p)
    nets = np.array(list(OPERATORS))
    towers, rows = [], []
    for t, (x, y) in enumerate(pts):
        host = int(rng.choice(nets, p=SHARES))
        tenants = [host]
        if rng.random() < p_shared:
            others = [n for n in nets if n != host]
            k = 1 + int(rng.random() < 0.25)
            tenants += [int(v) for v in rng.choice(others, size=k, replace=False)]
        towers.append({"tower": t, "x": x, "y": y, "nets": tuple(sorted(tenants))})
        for net in tenants:
            sigma = rng.uniform(*sigma_m)
            for _ in range(int(rng.integers(cells_per_operator[0], cells_per_operator[1] + 1))):
                cx, cy = x + rng.normal(0, sigma), y + rng.normal(0, sigma)
                rows.append(
                    {
                        "radio": "LTE",
                        "mcc": 452,
                        "net": net,
                        "area": 1,
                        "cell": int(rng.integers(1, 2**28)),
                        "lon": LON0 + cx / (M_PER_DEG_LAT * np.cos(np.radians(LAT0))),
                        "lat": LAT0 + cy / M_PER_DEG_LAT,
                        "tower": t,
                    }
                )
    return pd.DataFrame(rows), pd.DataFrame(towers)


def tenancies(operators: pd.Series) -> dict[str, int]:
    """Tenancies per operator from ';'-separated tenant lists."""
    out: dict[str, int] = {}
    for ops in operators:
        for o in str(ops).split(";"):
            out[o] = out.get(o, 0) + 1
    return out


def true_tenancies(towers: pd.DataFrame) -> dict[str, int]:
    out: dict[str, int] = {}
    for nets in towers["nets"]:
        for n in nets:
            out[OPERATORS[n]] = out.get(OPERATORS[n], 0) + 1
    return out
