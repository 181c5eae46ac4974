"""Build the demo layers shipped in ``towerplan/data/demo`` from the real census units.

The demo's boundaries and populations are the real 2009-census communes and
districts of one province from censusVN2009 (github.com/choisy/censusVN2009,
MIT, Marc Choisy; extraction in ``../shared/data/censusvn2009``).  Only the
existing sites (placed at run time by ``towerplan.inputs.demo``) and the roads
are synthetic.

Method (deterministic, no random numbers):

1. The province's communes are read (WGS84), projected to a metric UTM CRS and
   turned into a partition (``towerplan._partition.make_partition``): each
   commune keeps only what communes with a smaller ``commune_id`` do not hold
   (the thinned polygons overlap by ~0.3 %), and every interior sliver joins
   the commune sharing its longest border.
2. District totals are calibrated to the GSO 2009 census figures of the facts
   CSV: the package's commune populations are short in the city centre (e.g.
   Ninh Kiều 180,122 vs 242,945), so every commune of a district is scaled by
   ``population_2009 (facts) / sum of the district's package populations``.
3. Districts are the union of their communes (so the two layers nest exactly).
4. Admin centres: the district and province centre points of the
   ``vietnamadminunits`` package (MIT).
5. A synthetic road network is the Delaunay triangulation of the commune
   representative points, district centres and city centre, without long
   edges and edges leaving the study area; links between districts are
   ``provincial``, the others ``local``.

Usage::

    python scripts/build_demo.py [--census ../shared/data/censusvn2009/cantho_communes_2009census.geojson]

Running it again with the same arguments rewrites identical files.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from scipy.spatial import Delaunay
from shapely.geometry import mapping

from towerplan._partition import partition_geoms

logger = logging.getLogger("build_demo")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "towerplan" / "data" / "demo"
DEFAULT_CENSUS = (
    REPO.parent / "shared" / "data" / "censusvn2009" / "cantho_communes_2009census.geojson"
)
FACTS_NAME = "districts_facts.csv"
COORD_DECIMALS = 5
"""Decimals of the WGS84 coordinates written (1e-5 deg ≈ 1.1 m)."""
MAX_ROAD_FACTOR = 2.5
"""Road edges longer than this multiple of the median Delaunay edge are dropped."""
ROAD_OUTSIDE_FRACTION = 0.05
"""Road edges with more than this share of their length outside the study area are dropped."""
WGS84 = "EPSG:4326"
URBAN_TYPES = ("quận", "thị xã", "thành phố")
RURAL_TYPES = ("huyện",)
LAYER_NAMES = ("districts", "communes", "admin_centres", "roads")


@dataclass
class DemoLayers:
    """The built layers (WGS84) and build diagnostics."""

    districts: gpd.GeoDataFrame
    communes: gpd.GeoDataFrame
    admin_centres: gpd.GeoDataFrame
    roads: gpd.GeoDataFrame
    crs: str
    diagnostics: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- inputs


def package_db_path() -> Path:
    """Path of the SQLite table shipped inside the ``vietnamadminunits`` package."""
    path = Path(str(resources.files("vietnamadminunits") / "data" / "dataset.db"))
    if not path.is_file():
        raise FileNotFoundError(
            f"vietnamadminunits data file not found at {path}; reinstall the package "
            "(pip install vietnamadminunits)"
        )
    return path


def read_units(province_code: str, db: Path | None = None) -> pd.DataFrame:
    """Read one province's wards from the package's ``admin_units_legacy`` table.

    Parameters
    ----------
    province_code : str
        GSO province code (``"92"`` for Cần Thơ).
    db : Path, optional
        SQLite file; default: the installed package's ``data/dataset.db``.

    Returns
    -------
    DataFrame
        One row per ward, sorted by ward code.
    """
    cols = (
        "province, provinceCode, provinceLat, provinceLon, district, districtCode, "
        "districtType, districtLat, districtLon, districtBounds, ward, wardCode, wardType, "
        "wardLat, wardLon, wardBounds"
    )
    con = sqlite3.connect(f"file:{db or package_db_path()}?mode=ro", uri=True)
    try:
        df = pd.read_sql_query(
            f"SELECT {cols} FROM admin_units_legacy WHERE provinceCode = ?",
            con,
            params=(str(province_code),),
        )
    finally:
        con.close()
    if df.empty:
        raise ValueError(
            f"province code {province_code!r}: no rows in admin_units_legacy; give a GSO "
            "province code such as 92 (Cần Thơ)"
        )
    for c in ("provinceCode", "districtCode", "wardCode"):
        df[c] = df[c].astype(str)
    return df.sort_values("wardCode", kind="stable").reset_index(drop=True)


def read_facts(path: Path) -> pd.DataFrame:
    """Read the district facts CSV (code, district, district_type, population_2009, area_km2_real)."""
    df = pd.read_csv(path, dtype={"code": str}, encoding="utf-8")
    need = {"code", "district", "district_type", "population_2009", "area_km2_real"}
    missing = need - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}; see SOURCE.md for the format")
    bad = sorted(set(df["district_type"]) - {"urban", "rural"})
    if bad:
        raise ValueError(f"{path}: district_type must be 'urban' or 'rural', got {bad}")
    return df.reset_index(drop=True)


def read_census(path: Path, facts: pd.DataFrame) -> gpd.GeoDataFrame:
    """Read the census communes and attach the facts' GSO district code by district name."""
    gdf = gpd.read_file(path)
    need = {"commune_id", "commune_vn", "district_vn", "population"}
    missing = need - set(gdf.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}; give a censusVN2009 layer")
    code_of = dict(zip(facts["district"], facts["code"], strict=True))
    unknown = sorted(set(gdf["district_vn"]) - set(code_of))
    if unknown or set(code_of) - set(gdf["district_vn"]):
        raise ValueError(
            f"{path}: districts {unknown} are not in the facts CSV (or facts districts have no "
            "commune); list exactly the census districts"
        )
    gdf = gdf.assign(code=gdf["district_vn"].map(code_of))
    return gdf.sort_values("commune_id", kind="stable").reset_index(drop=True)


def calibrate(communes: pd.DataFrame, facts: pd.DataFrame) -> np.ndarray:
    """Commune populations scaled so that each district sums to its facts total (step 2)."""
    pkg = communes["population"].to_numpy(dtype=float)
    target = communes["code"].map(facts.set_index("code")["population_2009"]).to_numpy(float)
    d_sum = communes.groupby("code")["population"].transform("sum").to_numpy(dtype=float)
    n = communes.groupby("code")["population"].transform("size").to_numpy(dtype=float)
    # a district whose communes all have population 0 gets equal shares
    return np.where(d_sum > 0, pkg * target / np.where(d_sum > 0, d_sum, 1.0), target / n)


def build(
    province_code: str = "92",
    census: Path = DEFAULT_CENSUS,
    facts: Path | None = None,
    crs: str | None = None,
    db: Path | None = None,
) -> DemoLayers:
    """Build the demo layers for one province (see the module docstring).

    Parameters
    ----------
    province_code : str
        GSO province code in the ``vietnamadminunits`` table (admin centres).
    census : Path
        censusVN2009 communes of the province (WGS84).
    facts : Path, optional
        District facts CSV; default ``towerplan/data/demo/districts_facts.csv``.
    crs : str, optional
        Metric working CRS; default: the UTM zone of the province's centre.
    db : Path, optional
        SQLite file; default: the installed ``vietnamadminunits`` data file.

    Returns
    -------
    DemoLayers
        Districts, communes, admin centres and roads in WGS84, with diagnostics.
    """
    fact = read_facts(facts or DEFAULT_OUT / FACTS_NAME)
    raw = read_census(Path(census), fact)
    if crs is None:
        c = raw.to_crs("EPSG:3857").union_all().centroid
        lon, lat = gpd.GeoSeries([c], crs="EPSG:3857").to_crs(WGS84).iloc[0].coords[0]
        crs = utm_crs(lon, lat)
    if not CRS.from_user_input(crs).is_projected:
        raise ValueError(f"crs {crs!r} is geographic; give a metric CRS")
    # partition in lon/lat on the written precision grid: the files stay a valid coverage
    grid = 10.0**-COORD_DECIMALS
    geoms, report = partition_geoms(raw.geometry.to_numpy(), grid_size=grid, touch=grid)
    ll = raw.copy()
    ll[raw.geometry.name] = gpd.GeoSeries(geoms, index=raw.index, crs=raw.crs)
    part = ll.to_crs(crs)
    calibrated = calibrate(part, fact)
    communes = gpd.GeoDataFrame(
        {
            "commune": part["commune_vn"].astype(str).to_numpy(),
            "commune_id": part["commune_id"].astype(np.int64).to_numpy(),
            "district": part["district_vn"].astype(str).to_numpy(),
            "code": part["code"].to_numpy(),
            "population_census_pkg": part["population"].astype(np.int64).to_numpy(),
            "population_2009": np.round(calibrated, 1),
        },
        geometry=part.geometry.to_numpy(),
        crs=crs,
    )
    d_geoms = [
        shapely.union_all(communes.geometry[communes["code"] == code].to_numpy())
        for code in fact["code"]
    ]
    d_proj = gpd.GeoSeries(d_geoms, crs=crs)
    pkg_sum = communes.groupby("code")["population_census_pkg"].sum()
    districts = gpd.GeoDataFrame(
        {
            "district": fact["district"].to_numpy(),
            "code": fact["code"].to_numpy(),
            "district_type": fact["district_type"].to_numpy(),
            "population_2009": fact["population_2009"].to_numpy(dtype=np.int64),
            "population_census_pkg": pkg_sum.loc[fact["code"]].to_numpy(dtype=np.int64),
            "area_km2": np.round(d_proj.area.to_numpy() / 1e6, 3),
            "area_km2_real": fact["area_km2_real"].to_numpy(float),
        },
        geometry=d_proj.to_numpy(),
        crs=crs,
    )
    units = read_units(province_code, db)
    d_index = {c: i for i, c in enumerate(fact["code"])}
    admin = _admin_centres(units, fact, d_index).to_crs(crs)
    for i in np.nonzero((admin["code"] == "").to_numpy())[0]:  # city centre: its district
        hit = np.nonzero(districts.geometry.contains(admin.geometry.iloc[i]).to_numpy())[0]
        if len(hit):
            admin.loc[admin.index[i], ["district", "code"]] = [
                fact["district"][hit[0]],
                fact["code"][hit[0]],
            ]
    roads = _roads(communes, admin, districts)
    raw_m = raw.to_crs(crs).geometry
    raw_union = shapely.union_all(raw_m.to_numpy()).area
    diag = {
        "partition": {
            "overlap_removed_km2": round((float(raw_m.area.sum()) - raw_union) / 1e6, 3),
            "gaps_filled_km2": round((shapely.union_all(d_geoms).area - raw_union) / 1e6, 3),
            "n_gaps_filled": report.n_gaps,
            "n_units_kept_unclipped": report.n_emptied,
        },
        "calibration": _calibration_table(districts),
    }
    communes_ll = communes.to_crs(WGS84)
    communes_ll[communes_ll.geometry.name] = ll.geometry.to_numpy()
    districts_ll = districts.to_crs(WGS84)
    districts_ll[districts_ll.geometry.name] = [
        shapely.union_all(
            communes_ll.geometry[communes_ll["code"] == code].to_numpy(), grid_size=grid
        )
        for code in districts_ll["code"]
    ]
    districts_ll["area_km2"] = np.round(districts_ll.to_crs(crs).area.to_numpy() / 1e6, 3)
    return DemoLayers(
        districts_ll,
        communes_ll,
        admin.to_crs(WGS84),
        roads.to_crs(WGS84),
        crs,
        diag,
    )


def _calibration_table(districts: gpd.GeoDataFrame) -> dict[str, float]:
    """District code -> calibration factor (GSO total / package sum)."""
    pkg = districts["population_census_pkg"].to_numpy(float)
    gso = districts["population_2009"].to_numpy(float)
    return {
        str(c): round(float(g / p), 4) if p else math.inf
        for c, g, p in zip(districts["code"], gso, pkg, strict=True)
    }


def utm_crs(lon: float, lat: float) -> str:
    """WGS 84 / UTM CRS of the zone holding (lon, lat)."""
    zone = math.floor((lon + 180.0) / 6.0) + 1
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def district_type_of(package_type: str) -> str:
    """Map the package's district type (Quận, Huyện, Thị xã, Thành phố) to urban/rural."""
    t = package_type.strip().lower()
    if t in URBAN_TYPES:
        return "urban"
    if t in RURAL_TYPES:
        return "rural"
    raise ValueError(f"unknown district type {package_type!r}; expected one of Quận/Huyện/Thị xã")


def _admin_centres(
    units: pd.DataFrame, fact: pd.DataFrame, d_index: dict[str, int]
) -> gpd.GeoDataFrame:
    """District centre points (admin_centre) and the province centre (city_centre)."""
    first = units.groupby("districtCode", sort=False).first()
    rows: list[dict[str, Any]] = []
    for code in fact["code"]:
        r = first.loc[code]
        name = fact.loc[d_index[code], "district"]
        rows.append(
            {
                "name": name,
                "category": "admin_centre",
                "district": name,
                "code": code,
                "source": "vietnamadminunits",
                "geometry": shapely.Point(float(r["districtLon"]), float(r["districtLat"])),
            }
        )
    plon, plat = units["provinceLon"].iloc[0], units["provinceLat"].iloc[0]
    if pd.notna(plon) and pd.notna(plat):
        city = shapely.Point(float(plon), float(plat))
        city_district, city_code = "", ""
    else:  # no province point: the centre of the first urban district
        urban = fact[fact["district_type"] == "urban"]
        pick = urban.iloc[0] if len(urban) else fact.iloc[0]
        city = rows[d_index[pick["code"]]]["geometry"]
        city_district, city_code = pick["district"], pick["code"]
    rows.append(
        {
            "name": str(units["province"].iloc[0]),
            "category": "city_centre",
            "district": city_district,
            "code": city_code,
            "source": "vietnamadminunits",
            "geometry": city,
        }
    )
    gdf = gpd.GeoDataFrame(rows, geometry="geometry", crs=WGS84)
    return gdf


def _roads(
    communes: gpd.GeoDataFrame, admin: gpd.GeoDataFrame, districts: gpd.GeoDataFrame
) -> gpd.GeoDataFrame:
    """Synthetic roads: Delaunay edges between commune points and district/city centres."""
    study = shapely.union_all(list(districts.geometry))
    pts = communes.geometry.representative_point()
    code_idx = {c: i for i, c in enumerate(districts["code"])}
    names = list(communes["commune"]) + list(admin["name"])
    xs = list(pts.x) + list(admin.geometry.x)
    ys = list(pts.y) + list(admin.geometry.y)
    dist_of: list[int] = [code_idx[c] for c in communes["code"]]
    for g in admin.geometry:  # district of an admin/city centre: the polygon holding it
        hit = np.nonzero(districts.geometry.contains(g).to_numpy())[0]
        dist_of.append(int(hit[0]) if len(hit) else int(np.argmin(districts.geometry.distance(g))))
    xy = np.column_stack([xs, ys])
    keep = ~pd.DataFrame(np.round(xy / 50.0)).duplicated().to_numpy()  # drop points < ~50 m apart
    idx = np.nonzero(keep)[0]
    tri = Delaunay(xy[idx])
    edges = set()
    for s in tri.simplices:
        for i, j in ((0, 1), (1, 2), (0, 2)):
            a, b = sorted((int(idx[s[i]]), int(idx[s[j]])))
            edges.add((a, b))
    edge_list = sorted(edges)
    lengths = np.array([math.dist(xy[a], xy[b]) for a, b in edge_list])
    limit = MAX_ROAD_FACTOR * float(np.median(lengths))
    rows = []
    for (a, b), length in zip(edge_list, lengths, strict=True):
        if length > limit:
            continue
        line = shapely.LineString([xy[a], xy[b]])
        if line.difference(study).length > ROAD_OUTSIDE_FRACTION * length:
            continue
        cls = "provincial" if dist_of[a] != dist_of[b] else "local"
        rows.append({"road_class": cls, "name": f"{names[a]} – {names[b]}", "geometry": line})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=districts.crs)


# --------------------------------------------------------------------------- output


def _round_coords(obj: Any) -> Any:
    if isinstance(obj, float):
        return round(obj, COORD_DECIMALS)
    if isinstance(obj, list | tuple):
        return [_round_coords(v) for v in obj]
    return obj


def geojson_text(gdf: gpd.GeoDataFrame, name: str) -> str:
    """Compact, deterministic GeoJSON (one feature per line, coordinates rounded)."""
    if gdf.crs is None or CRS.from_user_input(gdf.crs) != CRS.from_user_input(WGS84):
        raise ValueError(f"{name}: GeoJSON output must be WGS84")
    lines = []
    props = [c for c in gdf.columns if c != gdf.geometry.name]
    for rec, geom in zip(gdf[props].to_dict("records"), gdf.geometry, strict=True):
        clean = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in rec.items()}
        gj = mapping(geom)
        feat = {
            "type": "Feature",
            "properties": clean,
            "geometry": {"type": gj["type"], "coordinates": _round_coords(gj["coordinates"])},
        }
        lines.append(json.dumps(feat, ensure_ascii=False, separators=(",", ":")))
    head = json.dumps({"type": "FeatureCollection", "name": name}, ensure_ascii=False)[:-1]
    return head + ', "features": [\n' + ",\n".join(lines) + "\n]}\n"


def write_layers(layers: DemoLayers, out: Path) -> dict[str, Path]:
    """Write the four GeoJSON files into ``out``; return name -> path."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in LAYER_NAMES:
        path = out / f"{name}.geojson"
        path.write_text(geojson_text(getattr(layers, name), name), encoding="utf-8")
        paths[name] = path
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--province-code", default="92", help="GSO province code (default 92)")
    ap.add_argument("--census", type=Path, default=DEFAULT_CENSUS, help="census communes file")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    ap.add_argument(
        "--facts", type=Path, default=None, help="facts CSV (default OUT/" + FACTS_NAME + ")"
    )
    ap.add_argument("--crs", default=None, help="metric working CRS (default: UTM zone)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    facts = args.facts or args.out / FACTS_NAME
    if not facts.is_file():
        ap.error(f"facts CSV {facts} not found; write it (see SOURCE.md) or pass --facts PATH")
    if not args.census.is_file():
        ap.error(f"census communes {args.census} not found; pass --census PATH")
    t0 = time.perf_counter()
    layers = build(str(args.province_code), args.census, facts, args.crs)
    paths = write_layers(layers, args.out)
    d = layers.districts
    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(
        ["code", "district", "population_2009", "population_census_pkg", "factor", "area_km2"]
    )
    for r in d.itertuples():
        w.writerow(
            [
                r.code,
                r.district,
                r.population_2009,
                r.population_census_pkg,
                layers.diagnostics["calibration"][r.code],
                f"{r.area_km2:.3f}",
            ]
        )
    logger.info(
        "built in %.1f s (crs %s); partition %s",
        time.perf_counter() - t0,
        layers.crs,
        json.dumps(layers.diagnostics["partition"]),
    )
    for name, p in paths.items():
        logger.info("%s: %d bytes, %d features", p, p.stat().st_size, len(getattr(layers, name)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
