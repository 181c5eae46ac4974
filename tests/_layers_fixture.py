"""A small generated fixture of every output layer (maps, sheets, exports tests).

Three schematic districts around lon 105.75, lat 10.03 (Cần Thơ-like) in
EPSG:32648, with sites, gaps, sharing lines, Wi-Fi hotspots, cable plan,
backhaul routes, POIs and roads.  Deterministic (fixed seed).  With
``evil=True`` the user-facing names carry HTML/script and quotes, to prove
escaping.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import Transformer
from shapely.geometry import LineString, Point, box

from towerplan.inputs._base import DEMO_KIND

CRS = "EPSG:32648"
EVIL = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&</script>"
OPERATORS = ("Viettel", "VNPT", "MobiFone")


def _origin() -> tuple[float, float]:
    t = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
    x, y = t.transform(105.75, 10.03)
    return float(x), float(y)


def make_layers(
    n_existing: int = 60, n_proposed: int = 24, evil: bool = False, seed: int = 7
) -> tuple[dict[str, gpd.GeoDataFrame], dict[str, Any], pd.DataFrame]:
    """Return ``(layers, summary, kpis)`` as the pipeline hands them to maps/exports."""
    rng = np.random.default_rng(seed)
    x0, y0 = _origin()
    names = ["Ninh Kiều", "Bình Thủy", "Phong Điền"]
    if evil:
        names[0] = "Ninh Kiều " + EVIL
    w = 4000.0
    geoms = [
        box(x0 - w, y0 - w, x0, y0 + w),
        box(x0, y0 - w, x0 + w, y0 + w),
        box(x0 - w, y0 - 3 * w, x0 + w, y0 - w),
    ]
    districts = gpd.GeoDataFrame(
        {
            "district": names,
            "code": ["916", "918", "926"],
            "district_type": ["urban", "urban", "rural"],
            "population": [250000.0, 120000.0, 100000.0],
            "area_km2": [g.area / 1e6 for g in geoms],
        },
        geometry=geoms,
        crs=CRS,
    )
    bounds = (x0 - w, y0 - 3 * w, x0 + w, y0 + w)

    def pts(n: int) -> list[Point]:
        xs = rng.uniform(bounds[0] + 200, bounds[2] - 200, n)
        ys = rng.uniform(bounds[1] + 200, bounds[3] - 200, n)
        return [Point(float(a), float(b)) for a, b in zip(xs, ys, strict=True)]

    def district_of(geom: Point) -> str:
        for n, g in zip(names, geoms, strict=True):
            if g.covers(geom):
                return n
        return names[-1]

    ex_geom = pts(n_existing)
    ops = [OPERATORS[i % 3] for i in range(n_existing)]
    if evil:
        ops[0] = EVIL
    existing = gpd.GeoDataFrame(
        {
            "site_id": [f"EX-{i:04d}" for i in range(n_existing)],
            "operator": ops,
            "operators": [o if i % 4 else f"{o};VNPT" for i, o in enumerate(ops)],
            "n_tenants": [1 if i % 4 else 2 for i in range(n_existing)],
            "max_tenants": 3,
            "height_m": [np.nan if i % 5 == 0 else 30.0 + i % 20 for i in range(n_existing)],
            "district": [district_of(g) for g in ex_geom],
        },
        geometry=ex_geom,
        crs=CRS,
    )
    pr_geom = pts(n_proposed)
    ll = gpd.GeoSeries(pr_geom, crs=CRS).to_crs("EPSG:4326")
    site_type = ["dedicated" if i % 3 else "shared" for i in range(n_proposed)]
    proposed = gpd.GeoDataFrame(
        {
            "site_id": [f"NEW-{i + 1:04d}" for i in range(n_proposed)],
            "site_type": site_type,
            "operators": [
                OPERATORS[i % 3] if t == "dedicated" else "Viettel;MobiFone"
                for i, t in enumerate(site_type)
            ],
            "district": [district_of(g) for g in pr_geom],
            "lon": ll.x.to_numpy(),
            "lat": ll.y.to_numpy(),
            "cand_id": np.arange(n_proposed) * 3,
            "population_gain": rng.uniform(100, 3000, n_proposed).round(1),
        },
        geometry=pr_geom,
        crs=CRS,
    )
    if evil:
        proposed.loc[0, "operators"] = EVIL
        proposed.loc[1, "site_id"] = "NEW-\"quoted\" 'x'"
    candidates = gpd.GeoDataFrame(
        {
            "cand_id": np.arange(40),
            "source": ["grid"] * 30 + ["colocation"] * 10,
            "cost": 1.2e9,
            "priority": 1.0,
        },
        geometry=pts(40),
        crs=CRS,
    )
    candidates["district"] = [district_of(g) for g in candidates.geometry]
    gaps = []
    for k, op in enumerate(OPERATORS):
        for stage, size in (("before", 1500.0), ("after", 600.0)):
            cx, cy = x0 - 2000 + 1500 * k, y0 - 6000 + 500 * k
            g = box(cx, cy, cx + size, cy + size).union(
                box(cx + 2000, cy + 2000, cx + 2000 + size / 2, cy + 2000 + size / 2)
            )
            gaps.append(
                {
                    "operator": op,
                    "stage": stage,
                    "population": float(size * 3),
                    "area_km2": g.area / 1e6,
                    "geometry": g,
                }
            )
    coverage_gaps = gpd.GeoDataFrame(gaps, geometry="geometry", crs=CRS)
    shared_rows = []
    for i in range(min(8, n_proposed)):
        p = proposed.geometry.iloc[i]
        d = existing.distance(p)
        j = int(d.to_numpy().argmin())
        h = existing.iloc[j]
        shared_rows.append(
            {
                "site_id": proposed["site_id"].iloc[i],
                "site_type": proposed["site_type"].iloc[i],
                "operator": OPERATORS[i % 3],
                "host_site_id": h["site_id"],
                "host_operator": h["operator"],
                "distance_m": float(d.iloc[j]),
                "tenants_now": int(h["n_tenants"]),
                "tenants_max": int(h["max_tenants"]),
                "district": proposed["district"].iloc[i],
                "district_type": "urban",
                "estimated_saving_vnd": 0.85e9,
                "rank": 1,
                "geometry": LineString([p, h.geometry]),
            }
        )
    sharing = gpd.GeoDataFrame(shared_rows, geometry="geometry", crs=CRS)
    cats = ["tourism", "hospital", "school", "admin_centre", "city_centre"]
    poi_geom = pts(15)
    pois = gpd.GeoDataFrame(
        {
            "name": [f"POI {i} – chợ nổi" for i in range(15)],
            "category": [cats[i % 5] for i in range(15)],
            "source": "fixture",
        },
        geometry=poi_geom,
        crs=CRS,
    )
    if evil:
        pois.loc[0, "name"] = EVIL
    wifi = gpd.GeoDataFrame(
        {
            "hotspot_id": [f"WIFI-{i + 1:04d}" for i in range(15)],
            "category": pois["category"].to_numpy(),
            "name": pois["name"].to_numpy(),
            "district": [district_of(g) for g in poi_geom],
            "covers_n": 3,
            "covers_pois": 1,
            "source": "poi",
        },
        geometry=poi_geom,
        crs=CRS,
    )
    ug_rows = []
    for n, g, t in zip(names, geoms, districts["district_type"], strict=True):
        cable = round(g.area / 1e6 * 3.0, 2)
        now, target = (0.25, 0.5) if t == "urban" else (0.05, 0.25)
        ug_rows.append(
            {
                "district": n,
                "district_type": t,
                "road_km": cable / 2,
                "cable_km": cable,
                "share_2016": now,
                "share_2020": target,
                "underground_km_2020": cable * target,
                "bury_km_per_year_to_2020": cable * (target - now) / 4,
                "share_2030": 0.85 if t == "urban" else 0.65,
                "geometry": g,
            }
        )
    underground = gpd.GeoDataFrame(ug_rows, geometry="geometry", crs=CRS)
    bh_rows = []
    for i in range(min(6, n_proposed)):
        p = proposed.geometry.iloc[i]
        q = existing.geometry.iloc[i]
        bh_rows.append(
            {
                "site_id": proposed["site_id"].iloc[i],
                "target_site_id": existing["site_id"].iloc[i],
                "method": "straight_line" if i % 2 else "road",
                "length_m": p.distance(q) * 1.3,
                "district": proposed["district"].iloc[i],
                "geometry": LineString([p, (p.x, q.y), q]),
            }
        )
    backhaul = gpd.GeoDataFrame(bh_rows, geometry="geometry", crs=CRS)
    roads = gpd.GeoDataFrame(
        {
            "road_class": ["national", "provincial", "local"],
            "name": ["QL 91", "ĐT 923", "Đường 30/4"],
        },
        geometry=[
            LineString([(x0 - w, y0 - 3 * w), (x0 + w, y0 + w)]),
            LineString([(x0 - w, y0), (x0 + w, y0 - 500)]),
            LineString([(x0 - 1000, y0 + w), (x0 - 1000, y0 - 3 * w)]),
        ],
        crs=CRS,
    )
    gx, gy = np.meshgrid(np.arange(x0 - w, x0 + w, 500.0), np.arange(y0 - 3 * w, y0 + w, 500.0))
    dem_geom = [Point(a + 250, b + 250) for a, b in zip(gx.ravel(), gy.ravel(), strict=True)]
    demand = gpd.GeoDataFrame(
        {
            "cell_id": np.arange(len(dem_geom)),
            "population": rng.uniform(0, 500, len(dem_geom)).round(1),
            "district": [district_of(g) for g in dem_geom],
            "district_type": "urban",
            "density_km2": 1000.0,
        },
        geometry=dem_geom,
        crs=CRS,
    )
    layers = {
        "districts": districts,
        "demand": demand,
        "existing_sites": existing,
        "candidate_sites": candidates,
        "proposed_sites": proposed,
        "coverage_gaps": coverage_gaps,
        "sharing_candidates": sharing,
        "underground_plan": underground,
        "backhaul_routes": backhaul,
        "wifi_hotspots": wifi,
        "pois": pois,
        "roads": roads,
    }
    summary: dict[str, Any] = {
        "data_kind": DEMO_KIND,
        "scenario": "cantho-2020",
        "scenario_title": "Cần Thơ ICT master plan 3933/QĐ-UBND, 2020",
        "plan_source": "Decision 3933/QĐ-UBND (2015)",
        "year": 2020,
        "crs": CRS,
        "operators": {"Viettel": 0.5, "VNPT": 0.3, "MobiFone": 0.2},
        "existing_sites": n_existing,
        "new_sites": n_proposed,
        "new_dedicated": int((proposed["site_type"] == "dedicated").sum()),
        "new_shared": int((proposed["site_type"] == "shared").sum()),
        "population": 470000.0,
        "population_covered_before": 400000.0,
        "population_covered_after": 460000.0,
        "notes": ["Districts are schematic rectangles, not real boundaries."]
        + ([f"note with {EVIL}"] if evil else []),
    }
    kpis = pd.DataFrame(
        {
            "district": names,
            "code": ["916", "918", "926"],
            "district_type": ["urban", "urban", "rural"],
            "area_km2": districts["area_km2"].round(3),
            "population": districts["population"],
            "existing": [int((existing["district"] == n).sum()) for n in names],
            "new_dedicated": [
                int(((proposed["district"] == n) & (proposed["site_type"] == "dedicated")).sum())
                for n in names
            ],
            "new_shared": [
                int(((proposed["district"] == n) & (proposed["site_type"] == "shared")).sum())
                for n in names
            ],
            "mean_serving_radius_km": [0.61, 0.72, 1.4],
            "coverage_any_before": [0.91, 0.85, 0.62],
            "coverage_any_after": [0.99, 0.97, 0.9],
            "coverage_weighted_before": [0.8, 0.7, 0.5],
            "coverage_weighted_after": [0.95, 0.9, 0.8],
        }
    )
    kpis["total"] = kpis["existing"] + kpis["new_dedicated"] + kpis["new_shared"]
    return layers, summary, kpis


def write_signal_raster(folder: Any, layers: dict[str, gpd.GeoDataFrame]) -> Any:
    """A 40 x 30 best-server GeoTIFF over the districts: received level -120 ... -60 dBm."""
    from pathlib import Path

    import rasterio
    from rasterio.transform import from_origin

    x0, y0, x1, y1 = layers["districts"].total_bounds
    tif = Path(folder) / "best_server.tif"
    with rasterio.open(
        tif,
        "w",
        driver="GTiff",
        width=40,
        height=30,
        count=1,
        dtype="float32",
        crs=CRS,
        transform=from_origin(x0, y1, (x1 - x0) / 40, (y1 - y0) / 30),
        nodata=np.nan,
    ) as dst:
        dst.write(np.linspace(-120, -60, 1200, dtype="float32").reshape(30, 40), 1)
    return tif
