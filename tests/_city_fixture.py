"""A small generated city ("Testville") with every input file a scenario can name.

Used by the CLI and bad-input tests; nothing here is Cần Thơ data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import yaml
from shapely.geometry import box

CRS = "EPSG:32648"
X0, Y0 = 560_000.0, 1_110_000.0  # somewhere in UTM 48N


def make_city(folder: Path, n_sites: int = 30, seed: int = 1) -> dict[str, Any]:
    """Write districts, population polygons, sites CSV and a scenario YAML into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    d = gpd.GeoDataFrame(
        {
            "TEN": ["Trung Tâm", "Ngoại Ô"],
            "MA": ["001", "002"],
            "LOAI": ["quận", "huyện"],
        },
        geometry=[box(X0, Y0, X0 + 4000, Y0 + 4000), box(X0 + 4000, Y0, X0 + 10000, Y0 + 4000)],
        crs=CRS,
    ).to_crs("EPSG:4326")
    d.to_file(folder / "districts.gpkg", driver="GPKG")
    cells = []
    pops = []
    for i in range(10):
        for j in range(4):
            cells.append(
                box(X0 + i * 1000, Y0 + j * 1000, X0 + (i + 1) * 1000, Y0 + (j + 1) * 1000)
            )
            pops.append(float(rng.integers(200, 3000) if i < 4 else rng.integers(20, 400)))
    p = gpd.GeoDataFrame({"DAN_SO": pops}, geometry=cells, crs=CRS).to_crs("EPSG:4326")
    p.to_file(folder / "population.gpkg", driver="GPKG")
    xs = rng.uniform(X0 + 200, X0 + 9800, n_sites)
    ys = rng.uniform(Y0 + 200, Y0 + 3800, n_sites)
    ll = gpd.GeoSeries(gpd.points_from_xy(xs, ys), crs=CRS).to_crs("EPSG:4326")
    ops = rng.choice(["Alpha", "Beta"], size=n_sites, p=[0.6, 0.4])
    pd.DataFrame(
        {"id": [f"S{i:03d}" for i in range(n_sites)], "lon": ll.x, "lat": ll.y, "op": ops}
    ).to_csv(folder / "sites.csv", index=False)
    scen = {
        "name": "testville-2025",
        "title": "Testville test plan",
        "source": "generated test fixture",
        "year": 2025,
        "crs": CRS,
        "sites": {
            "total": n_sites + 8,
            "existing": n_sites,
            "new": 8,
            "new_dedicated": 5,
            "new_shared": 3,
            "mean_serving_radius_km": 0.9,
            "coverage_radius_m": 600,
            "candidate_spacing_m": 400,
            "min_new_site_spacing_m": 0,
        },
        "operators": [
            {"name": "Alpha", "market_share": 0.6},
            {"name": "Beta", "market_share": 0.4},
        ],
        "sharing": {"target_min": 0.3, "target_max": 0.4},
        "undergrounding": {"city_min": 0.3, "city_max": 0.35, "urban_min": 0.5, "rural_min": 0.25},
        "fibre": {"min": 0.2, "max": 0.3},
        "subscribers": {
            "mobile_per_100": 120,
            "fixed_broadband_per_100": 20,
            "mobile_broadband_per_100": 40,
        },
        "demand": {"cell_size_m": 200},
        "data": {
            "kind": "files",
            "label": "testville-fixture",
            "districts": {
                "path": "districts.gpkg",
                "columns": {"name": "TEN", "code": "MA", "type": "LOAI"},
            },
            "population": {"path": "population.gpkg", "columns": {"population": "DAN_SO"}},
            "existing_sites": {
                "path": "sites.csv",
                "format": "csv",
                "columns": {"site_id": "id", "lon": "lon", "lat": "lat", "operator": "op"},
            },
        },
    }
    (folder / "scenario.yaml").write_text(
        yaml.safe_dump(scen, allow_unicode=True), encoding="utf-8"
    )
    return scen


def write_scenario(folder: Path, scen: dict[str, Any]) -> Path:
    """(Re)write ``folder/scenario.yaml``."""
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(scen, allow_unicode=True), encoding="utf-8")
    return path
