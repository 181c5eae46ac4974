"""Build the schematic demo layers shipped in ``towerplan/data/demo``.

The demo needs district and ward polygons, but no boundary polygons with a
redistribution licence were found.  This script therefore draws SCHEMATIC
polygons from what the ``vietnamadminunits`` package (MIT) ships: one geocoded
centre point and one bounding box per ward and district (``data/dataset.db``,
table ``admin_units_legacy``).  Real facts enter only through the facts CSV
(district code, name, type, 2009 census population, real area in km²).

Method (deterministic, no random numbers):

1. Ward bounding boxes are projected to a metric UTM CRS, unioned and closed
   (buffer out, buffer in); a further buffer distance is found by bisection so
   that the outer shape's area equals the sum of the real district areas.
2. The outer shape is rasterised on a regular grid (``cell_m``, default 50 m).
3. Districts: cells are assigned by a power diagram (``|x - s|² - w_D``) of
   the ward centre points with one weight ``w_D`` per district; the weights
   are found by damped Newton steps (semi-discrete optimal transport) until
   every district has its real area.  Wards: each district's cells are split
   between its wards like a Voronoi diagram of their points; a ward offset is
   raised only for a ward smaller than 20 % of the district's mean ward size.
   Pieces of a district or ward cut off from its main body go to the nearest
   other one, so every district and ward is one connected piece.
4. Ward regions are vectorised (``rasterio.features.shapes``), simplified as a
   coverage (``shapely.coverage_simplify``, shared edges stay shared),
   reprojected to WGS84 and rounded to 1e-5 degrees; districts are the
   coverage union of their wards.  Simplification moves areas a little, so
   the solve is repeated with rescaled targets and the best result kept.
5. A schematic road network is the Delaunay triangulation of the ward centre
   points, district centres and city centre, without long edges and edges
   leaving the study area; links between districts are ``provincial``, the
   others ``local``.

Usage::

    python scripts/build_demo.py [--province-code 92] [--out towerplan/data/demo]

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
import rasterio.features
import shapely
from affine import Affine
from pyproj import CRS
from scipy import ndimage
from scipy.spatial import Delaunay, cKDTree
from shapely.geometry import box, mapping, shape

logger = logging.getLogger("build_demo")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "towerplan" / "data" / "demo"
FACTS_NAME = "districts_facts.csv"
DEFAULT_CELL_M = 50.0
CLOSING_M = 1500.0
"""Closing distance that merges the ward bounding boxes into one outer shape."""
COORD_DECIMALS = 5
"""Decimals of the WGS84 coordinates written (1e-5 deg ≈ 1.1 m)."""
MAX_ROAD_FACTOR = 2.5
"""Road edges longer than this multiple of the median Delaunay edge are dropped."""
ROAD_OUTSIDE_FRACTION = 0.05
"""Road edges with more than this share of their length outside the study area are dropped."""
SIMPLIFY_CELLS = 3.0
"""Coverage-simplification tolerance in cells (removes the raster staircase)."""
CORRECTION_PASSES = 3
"""Extra solves with targets rescaled by the area change of the simplification."""
AREA_TOL = 0.0005
"""Stop the correction passes when every district is within this relative area error."""
MIN_WARD_SHARE = 0.2
"""Minimum ward size as a share of its district's mean ward size."""
WGS84 = "EPSG:4326"
URBAN_TYPES = ("quận", "thị xã", "thành phố")
RURAL_TYPES = ("huyện",)


@dataclass
class DemoLayers:
    """The built layers (WGS84) and build diagnostics."""

    districts: gpd.GeoDataFrame
    wards: gpd.GeoDataFrame
    admin_centres: gpd.GeoDataFrame
    roads: gpd.GeoDataFrame
    crs: str
    cell_m: float
    iterations: int
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


def parse_bounds(text: str) -> tuple[float, float, float, float]:
    """Parse a package bounds string ``"lat,lon – lat,lon"`` to (minlon, minlat, maxlon, maxlat)."""
    parts = text.replace("–", "|").replace("—", "|").split("|")
    if len(parts) != 2:
        raise ValueError(f"cannot parse bounds {text!r}; expected 'lat,lon – lat,lon'")
    la1, lo1 = (float(v) for v in parts[0].split(","))
    la2, lo2 = (float(v) for v in parts[1].split(","))
    return min(lo1, lo2), min(la1, la2), max(lo1, lo2), max(la1, la2)


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


# --------------------------------------------------------------------------- geometry core


def outer_shape(boxes: Sequence[shapely.Geometry], target_m2: float) -> shapely.Geometry:
    """Closed union of ``boxes`` buffered so that its area equals ``target_m2`` (bisection)."""
    union = shapely.union_all(list(boxes))
    closed = union.buffer(CLOSING_M).buffer(-CLOSING_M)
    polys = list(getattr(closed, "geoms", [closed]))
    base = shapely.Polygon(max(polys, key=lambda g: g.area).exterior)
    scale = math.sqrt(target_m2)
    lo, hi = -0.5 * scale, 0.5 * scale
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if base.buffer(mid).area < target_m2:
            lo = mid
        else:
            hi = mid
    out = base.buffer(0.5 * (lo + hi))
    polys = list(getattr(out, "geoms", [out]))
    return max(polys, key=lambda g: g.area)


def _power_labels(
    cx: np.ndarray, cy: np.ndarray, sx: np.ndarray, sy: np.ndarray, w: np.ndarray
) -> np.ndarray:
    """Index of the site minimising ``|x - s|² - w`` for every cell (chunked)."""
    out = np.empty(cx.size, dtype=np.int32)
    step = 16384
    for i in range(0, cx.size, step):
        dx = cx[i : i + step, None] - sx[None, :]
        dy = cy[i : i + step, None] - sy[None, :]
        out[i : i + step] = np.argmin(dx * dx + dy * dy - w[None, :], axis=1)
    return out


def _orphans(lab: np.ndarray, n_labels: int) -> np.ndarray:
    """Cells of ``lab`` (>= 0) not in the largest 4-connected piece of their label."""
    orphan = np.zeros(lab.shape, dtype=bool)
    shifted = lab + 1
    for k, sl in enumerate(ndimage.find_objects(shifted, max_label=n_labels)):
        if sl is None:
            continue
        m = shifted[sl] == k + 1
        comp, n = ndimage.label(m)
        if n > 1:
            sizes = np.bincount(comp.ravel())
            sizes[0] = 0
            orphan[sl] |= m & (comp != int(np.argmax(sizes)))
    return orphan


def enforce_connectivity(
    lab: np.ndarray, ward_district: np.ndarray, wards: bool = True
) -> np.ndarray:
    """Give cut-off ward/district pieces to the nearest other cell's ward (copy returned).

    ``lab`` holds ward indices, -1 outside the study area.  Afterwards each
    district (and, with ``wards``, each ward) is one 4-connected piece (up to
    10 passes).
    """
    lab = lab.copy()
    inside = lab >= 0
    n_w = int(ward_district.size)
    n_d = int(ward_district.max()) + 1
    for _ in range(10):
        dlab = np.where(inside, ward_district[np.clip(lab, 0, None)], -1)
        orphan = _orphans(dlab, n_d)
        if wards:
            orphan |= _orphans(lab, n_w)
        if not orphan.any():
            break
        _, (iy, ix) = ndimage.distance_transform_edt(
            orphan | ~inside, return_distances=True, return_indices=True
        )
        lab[orphan] = lab[iy[orphan], ix[orphan]]
    return lab


def _boundary_hessian(
    lab: np.ndarray, sites: np.ndarray, ward_district: np.ndarray, n_d: int
) -> np.ndarray:
    """Derivative of district areas (cells) with respect to district power weights.

    Between two adjacent cells of different districts the boundary moves by
    ``dw / (2 |s - t|)`` when the weight difference changes by ``dw`` (``s``,
    ``t``: the two cells' ward sites), so ``dA_D / dw_E`` is minus the sum of
    ``1 / (2 |s - t|)`` over the D-E cell edges (cell units); the diagonal
    makes each row sum to zero.
    """
    h = np.zeros((n_d, n_d))
    for a_lab, b_lab in ((lab[:, :-1], lab[:, 1:]), (lab[:-1, :], lab[1:, :])):
        m = (a_lab >= 0) & (b_lab >= 0)
        wa, wb = a_lab[m], b_lab[m]
        da, db = ward_district[wa], ward_district[wb]
        cross = da != db
        wa, wb, da, db = wa[cross], wb[cross], da[cross], db[cross]
        dist = np.hypot(*(sites[wa] - sites[wb]).T)
        coef = 1.0 / (2.0 * np.maximum(dist, 0.5))
        np.add.at(h, (da, db), -coef)
        np.add.at(h, (db, da), -coef)
    h[np.diag_indices(n_d)] = -h.sum(axis=1)
    return h


def solve_districts(
    inside: np.ndarray,
    sites: np.ndarray,
    ward_district: np.ndarray,
    target_cells: np.ndarray,
    max_iter: int = 40,
    tol: float = 0.001,
) -> tuple[np.ndarray, int]:
    """Split the study area into districts of the target sizes (power diagram).

    Cells go to the ward whose site minimises ``|x - s|² - w_D`` with one
    power weight ``w_D`` per district; the weights are found by damped Newton
    steps on the district areas (semi-discrete optimal transport: a solution
    exists for any targets).  Cut-off district pieces go to the nearest other
    district after each step (:func:`enforce_connectivity`).

    Parameters
    ----------
    inside : ndarray of bool
        Study-area mask (grid rows x cols); cell ``(r, c)`` has its centre at
        ``(c + 0.5, -(r + 0.5))`` in cell units.
    sites : ndarray, shape (k, 2)
        Ward centre points in the same cell units.
    ward_district : ndarray of int
        District index of every ward.
    target_cells : ndarray of float
        Target cell count per district (sums to ``inside.sum()``).
    max_iter : int
        Newton step limit.
    tol : float
        Stop when every district is within ``tol`` (relative) of its target.

    Returns
    -------
    labels : ndarray of int32
        Ward index per grid cell (its district is the cell's district), -1 outside.
    iterations : int
        Newton steps used.
    """
    n_d = int(ward_district.max()) + 1
    rows, cols = np.nonzero(inside)
    cx, cy = cols + 0.5, -(rows + 0.5)
    blank = np.full(inside.shape, -1, dtype=np.int32)

    def evaluate(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = blank.copy()
        out[inside] = _power_labels(cx, cy, sites[:, 0], sites[:, 1], w[ward_district])
        out = enforce_connectivity(out, ward_district, wards=False)
        counts = np.bincount(ward_district[out[inside]], minlength=n_d).astype(float)
        return out, counts, (counts - target_cells) / target_cells

    w = np.zeros(n_d)
    cur, counts, err = evaluate(w)
    it = 0
    for it in range(1, max_iter + 1):
        if float(np.max(np.abs(err))) < tol or float(np.max(np.abs(counts - target_cells))) < 1:
            break
        empty = np.nonzero(counts == 0)[0]
        if empty.size:  # no boundary to move: raise the weight until its sites win their cells
            big = w[ward_district]
            for di in empty:
                own = np.nonzero(ward_district == di)[0]
                rival = ward_district != di
                need = max(
                    float(np.min(np.sum((sites[rival] - sites[i]) ** 2, axis=1) - big[rival]))
                    for i in own
                )
                w[di] = max(w[di], -need) + target_cells[di] / (math.pi * len(own))
            cur, counts, err = evaluate(w)
            continue
        h = _boundary_hessian(cur, sites, ward_district, n_d)
        newton = np.linalg.lstsq(h, target_cells - counts, rcond=None)[0]
        diag = (target_cells - counts) / np.maximum(np.diag(h), 1e-9)
        worst = float(np.sum(err**2))
        found = None
        for step in (newton - newton.mean(), diag - diag.mean()):  # Newton, then Jacobi
            t = 1.0
            while t >= 1e-3:  # backtracking on the sum of squared relative errors
                cand = evaluate(w + t * step)
                if float(np.sum(cand[2] ** 2)) < worst:
                    found = (t, step, cand)
                    break
                t *= 0.5
            if found:
                break
        if found is None:
            break  # no further progress at this grid resolution
        t, step, (cur, counts, err) = found
        w = w + t * step
        logger.debug("newton %d: step %.3g, max |rel error| %.5f", it, t, np.max(np.abs(err)))
    return cur, it


def split_district(mask: np.ndarray, sites: np.ndarray, min_cells: float) -> np.ndarray:
    """Split one district's cells between its wards (Voronoi with a minimum ward size).

    Each ward site is first moved to the centre of its own cell of the
    district (a site outside the district or sharing a cell with another goes
    to the nearest free cell).  Cells go to the site minimising ``|x - s|² - v_i``; ``v_i`` is zero unless
    ward ``i`` would have fewer than ``min_cells`` cells, then it is raised so
    that the ward wins a disc around its site (up to 20 rounds).  Cut-off ward
    pieces go to the nearest other ward of the district.

    Parameters
    ----------
    mask : ndarray of bool
        The district's cells (grid shape).
    sites : ndarray, shape (k, 2)
        The district's ward sites in cell units.
    min_cells : float
        Minimum number of cells per ward.

    Returns
    -------
    ndarray of int32
        Local ward index (0..k-1) of every cell of ``mask``, in ``np.nonzero`` order.
    """
    k = len(sites)
    rows, cols = np.nonzero(mask)
    if k == 1:
        return np.zeros(rows.size, dtype=np.int32)
    cx, cy = cols + 0.5, -(rows + 0.5)
    sites = _distinct_cells(sites, mask)
    v = np.zeros(k)
    local = np.full(mask.shape, -1, dtype=np.int32)
    one = np.zeros(k, dtype=np.int64)
    for _round in range(20):
        local[mask] = _power_labels(cx, cy, sites[:, 0], sites[:, 1], v)
        local = enforce_connectivity(local, one)
        counts = np.bincount(local[mask], minlength=k)
        small = np.nonzero(counts < min_cells)[0]
        if small.size == 0:
            break
        for i in small:  # own power at the site must drop below every rival's, plus a disc
            d2 = np.sum((sites - sites[i]) ** 2, axis=1) - v
            d2[i] = np.inf
            v[i] += max(float(np.min(d2)) + v[i], 0.0) + min_cells / math.pi
    labels = local[mask]
    own = np.array(
        [int(np.argmin((cx - sites[i, 0]) ** 2 + (cy - sites[i, 1]) ** 2)) for i in range(k)]
    )
    for _ in range(k):  # last resort: an empty ward takes the (distinct) cell of its own site
        empty = np.nonzero(np.bincount(labels, minlength=k) == 0)[0]
        if empty.size == 0:
            break
        logger.warning("%d ward(s) of a district still empty: each given its own cell", empty.size)
        labels[own[empty]] = empty
    return labels


def assign_cells(
    inside: np.ndarray,
    sites: np.ndarray,
    ward_district: np.ndarray,
    target_cells: np.ndarray,
    min_ward_share: float = MIN_WARD_SHARE,
) -> tuple[np.ndarray, int]:
    """Assign grid cells to wards: districts of the target sizes, wards nested in them.

    Parameters
    ----------
    inside : ndarray of bool
        Study-area mask (see :func:`solve_districts`).
    sites : ndarray, shape (k, 2)
        Ward centre points in cell units.
    ward_district : ndarray of int
        District index of every ward.
    target_cells : ndarray of float
        Target cell count per district (sums to ``inside.sum()``).
    min_ward_share : float
        Minimum ward size as a share of its district's mean ward size.

    Returns
    -------
    labels : ndarray of int32
        Ward index per grid cell, -1 outside.
    iterations : int
        Newton steps of the district solve.
    """
    lab, its = solve_districts(inside, sites, ward_district, target_cells)
    dlab = np.where(inside, ward_district[np.clip(lab, 0, None)], -1)
    out = np.full(inside.shape, -1, dtype=np.int32)
    for di in range(int(ward_district.max()) + 1):
        wards = np.nonzero(ward_district == di)[0]
        mask = dlab == di
        if not mask.any():
            raise ValueError(
                f"district {di}: no cells left for it; check its area in the facts CSV and its "
                "ward points, or use a finer --cell-m"
            )
        min_cells = max(1.0, min_ward_share * mask.sum() / len(wards))
        out[mask] = wards[split_district(mask, sites[wards], min_cells)]
    return out, its


def _distinct_cells(sites: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Move every site to the centre of its own cell of ``mask``.

    A site outside the mask, or in a cell already taken by an earlier site,
    goes to the nearest free cell instead, so every ward can win at least its
    own cell.
    """
    rows, cols = np.nonzero(mask)
    r = np.floor(-sites[:, 1]).astype(np.int64)
    c = np.floor(sites[:, 0]).astype(np.int64)
    out = sites.copy()
    taken: set[tuple[int, int]] = set()
    for i in range(len(sites)):
        ri, ci = int(r[i]), int(c[i])
        ok = 0 <= ri < mask.shape[0] and 0 <= ci < mask.shape[1] and bool(mask[ri, ci])
        if not ok or (ri, ci) in taken:
            d2 = (cols + 0.5 - sites[i, 0]) ** 2 + (-(rows + 0.5) - sites[i, 1]) ** 2
            for j in np.argsort(d2, kind="stable"):
                if (int(rows[j]), int(cols[j])) not in taken:
                    ri, ci = int(rows[j]), int(cols[j])
                    break
        out[i] = (ci + 0.5, -(ri + 0.5))
        taken.add((ri, ci))
    return out


def _snap_inside(sites: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Move sites lying outside the study-area mask to the nearest inside cell centre."""
    rows, cols = np.nonzero(inside)
    centres = np.column_stack([cols + 0.5, -(rows + 0.5)])
    r = np.floor(-sites[:, 1]).astype(np.int64)
    c = np.floor(sites[:, 0]).astype(np.int64)
    ok = (r >= 0) & (r < inside.shape[0]) & (c >= 0) & (c < inside.shape[1])
    ok[ok] = inside[r[ok], c[ok]]
    if ok.all():
        return sites
    _, idx = cKDTree(centres).query(sites[~ok])
    out = sites.copy()
    out[~ok] = centres[idx]
    logger.info("%d ward point(s) outside the study area moved inside", int((~ok).sum()))
    return out


def _grid(geom: shapely.Geometry, cell_m: float) -> tuple[np.ndarray, Affine]:
    """Rasterise ``geom`` on a grid aligned to multiples of ``cell_m``; keep one filled piece."""
    minx, miny, maxx, maxy = geom.bounds
    x0 = math.floor(minx / cell_m) * cell_m - cell_m
    y1 = math.ceil(maxy / cell_m) * cell_m + cell_m
    width = math.ceil((maxx - x0) / cell_m) + 1
    height = math.ceil((y1 - miny) / cell_m) + 1
    transform = Affine(cell_m, 0.0, x0, 0.0, -cell_m, y1)
    mask = rasterio.features.rasterize(
        [(geom, 1)], out_shape=(height, width), transform=transform, fill=0, dtype="uint8"
    ).astype(bool)
    comp, n = ndimage.label(mask)
    if n > 1:
        sizes = np.bincount(comp.ravel())
        sizes[0] = 0
        mask = comp == int(np.argmax(sizes))
    return ndimage.binary_fill_holes(mask), transform


def _vectorise(lab: np.ndarray, n_labels: int, transform: Affine) -> list[shapely.Geometry]:
    """One polygon per label, as an edge-matched coverage, simplified, in map units."""
    parts: list[list[shapely.Geometry]] = [[] for _ in range(n_labels)]
    for geom, value in rasterio.features.shapes(
        lab, mask=lab >= 0, connectivity=4, transform=Affine.identity()
    ):
        parts[int(value)].append(shape(geom))
    # integer pixel coordinates: segmentize to unit steps so shared edges have identical vertices
    polys = np.array([shapely.segmentize(shapely.union_all(p), 1.0) for p in parts], dtype=object)
    if not bool(shapely.coverage_is_valid(polys)):
        raise RuntimeError("vectorised wards do not form a valid coverage")
    simple = shapely.coverage_simplify(polys, tolerance=SIMPLIFY_CELLS)
    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f

    def to_map(xy: np.ndarray) -> np.ndarray:
        return np.column_stack([a * xy[:, 0] + b * xy[:, 1] + c, d * xy[:, 0] + e * xy[:, 1] + f])

    return [shapely.transform(g, to_map) for g in simple]


def _round_coverage(geoms: Sequence[shapely.Geometry]) -> list[shapely.Geometry]:
    """Round WGS84 coverage coordinates to ``COORD_DECIMALS``; keep each polygon valid."""
    grid = 10.0**-COORD_DECIMALS
    out = []
    for g in geoms:
        r = shapely.set_precision(g, grid)
        if not r.is_valid:
            r = shapely.make_valid(r)
        out.append(r)
    return out


# --------------------------------------------------------------------------- build


def build(
    province_code: str = "92",
    facts: Path | None = None,
    cell_m: float = DEFAULT_CELL_M,
    crs: str | None = None,
    db: Path | None = None,
    correction_passes: int = CORRECTION_PASSES,
) -> DemoLayers:
    """Build the schematic demo layers for one province.

    Parameters
    ----------
    province_code : str
        GSO province code in the package table.
    facts : Path, optional
        District facts CSV; default ``towerplan/data/demo/districts_facts.csv``.
    cell_m : float
        Working grid cell size in metres (50 m for the shipped files; coarser
        is faster).
    crs : str, optional
        Metric working CRS; default: the UTM zone of the province's centre.
    db : Path, optional
        SQLite file; default: the installed ``vietnamadminunits`` data file.
    correction_passes : int
        Extra solves with area targets rescaled by the simplification's area change.

    Returns
    -------
    DemoLayers
        Districts, wards, admin centres and roads in WGS84, with diagnostics.
    """
    units = read_units(province_code, db)
    fact = read_facts(facts or DEFAULT_OUT / FACTS_NAME)
    codes = list(fact["code"])
    pkg_codes = sorted(set(units["districtCode"]))
    if sorted(codes) != pkg_codes:
        raise ValueError(
            f"facts CSV codes {sorted(codes)} differ from the package's districts {pkg_codes} "
            f"of province {province_code}; list exactly the package's districts"
        )
    for code, typ in units.groupby("districtCode")["districtType"].first().items():
        ftyp = fact.loc[fact["code"] == code, "district_type"].iloc[0]
        if district_type_of(str(typ)) != ftyp:
            logger.warning("district %s: package type %s but facts say %s", code, typ, ftyp)
    d_index = {c: i for i, c in enumerate(codes)}
    units = units.assign(d_idx=units["districtCode"].map(d_index))
    ward_district = units["d_idx"].to_numpy(dtype=np.int64)

    if crs is None:
        crs = utm_crs(float(units["wardLon"].mean()), float(units["wardLat"].mean()))
    if not CRS.from_user_input(crs).is_projected:
        raise ValueError(f"crs {crs!r} is geographic; give a metric CRS")

    # ward boxes and points in the working CRS
    bnds = np.array([parse_bounds(s) for s in units["wardBounds"]])
    boxes = gpd.GeoSeries([box(*b) for b in bnds], crs=WGS84).to_crs(crs)
    lon, lat = units["wardLon"].to_numpy(float), units["wardLat"].to_numpy(float)
    dup = pd.DataFrame({"x": lon, "y": lat}).duplicated(keep="first").to_numpy()
    if dup.any():  # two wards geocoded to one point: use their bounding-box centre instead
        logger.info("%d ward(s) share a centre point; using their box centre", int(dup.sum()))
        lon = np.where(dup, 0.5 * (bnds[:, 0] + bnds[:, 2]), lon)
        lat = np.where(dup, 0.5 * (bnds[:, 1] + bnds[:, 3]), lat)
    pts = gpd.GeoSeries(gpd.points_from_xy(lon, lat), crs=WGS84).to_crs(crs)
    px, py = pts.x.to_numpy(), pts.y.to_numpy()

    # targets
    real_m2 = fact["area_km2_real"].to_numpy(float) * 1e6
    outer = outer_shape(list(boxes), float(real_m2.sum()))
    inside, transform = _grid(outer, cell_m)
    n_cells = int(inside.sum())
    d_target_cells = real_m2 / real_m2.sum() * n_cells

    # sites in cell units of the grid (x to the right, y up, origin at the top-left corner)
    sites = np.column_stack([(px - transform.c) / cell_m, (py - transform.f) / cell_m])
    sites = _snap_inside(sites, inside)
    real_km2 = fact["area_km2_real"].to_numpy(float)

    def polygons(targets: np.ndarray) -> tuple[gpd.GeoSeries, list[shapely.Geometry], int]:
        """Solve, vectorise, simplify, reproject and round; districts as coverage unions."""
        lab, its = assign_cells(inside, sites, ward_district, targets)
        geoms = _vectorise(lab, len(units), transform)
        ll = gpd.GeoSeries(geoms, crs=crs).to_crs(WGS84)
        ll = gpd.GeoSeries(_round_coverage(list(ll)), crs=WGS84)
        dist = [
            shapely.coverage_union_all(np.array(list(ll[ward_district == di]), dtype=object))
            for di in range(len(codes))
        ]
        return ll, dist, its

    # simplification moves areas a little: rescale the targets and solve again, keep the best
    adjust = np.ones(len(codes))
    best: tuple[float, gpd.GeoSeries, list[shapely.Geometry]] | None = None
    iterations = 0
    for k in range(correction_passes + 1):
        targets = d_target_cells * adjust
        targets *= n_cells / targets.sum()
        ward_ll, d_geoms, its = polygons(targets)
        iterations += its
        area = gpd.GeoSeries(d_geoms, crs=WGS84).to_crs(crs).area.to_numpy() / 1e6
        err = area / real_km2 - 1.0
        max_err = float(np.max(np.abs(err)))
        logger.info("pass %d: %d Newton steps, max |area error| %.4f %%", k, its, 100 * max_err)
        if best is None or max_err < best[0]:
            best = (max_err, ward_ll, d_geoms)
        if max_err < AREA_TOL:
            break
        adjust = adjust / (1.0 + err)
    assert best is not None
    _, ward_ll, d_geoms = best
    logger.info("power diagram: %d Newton steps on %d cells of %g m", iterations, n_cells, cell_m)

    wards = gpd.GeoDataFrame(
        {
            "ward": units["ward"].to_numpy(),
            "ward_code": units["wardCode"].to_numpy(),
            "ward_type": units["wardType"].to_numpy(),
            "district": fact["district"].to_numpy()[ward_district],
            "code": units["districtCode"].to_numpy(),
        },
        geometry=ward_ll,
        crs=WGS84,
    )
    d_ll = gpd.GeoSeries(d_geoms, crs=WGS84)
    area_km2 = d_ll.to_crs(crs).area.to_numpy() / 1e6
    districts = gpd.GeoDataFrame(
        {
            "district": fact["district"].to_numpy(),
            "code": fact["code"].to_numpy(),
            "district_type": fact["district_type"].to_numpy(),
            "population_2009": fact["population_2009"].to_numpy(dtype=np.int64),
            "area_km2": np.round(area_km2, 3),
            "area_km2_real": fact["area_km2_real"].to_numpy(float),
        },
        geometry=d_ll,
        crs=WGS84,
    )

    admin = _admin_centres(units, fact, d_index)
    for i in np.nonzero((admin["code"] == "").to_numpy())[0]:  # city centre: its schematic district
        hit = np.nonzero(d_ll.contains(admin.geometry.iloc[i]).to_numpy())[0]
        if len(hit):
            admin.loc[admin.index[i], ["district", "code"]] = [
                fact["district"][hit[0]],
                codes[hit[0]],
            ]
    roads = _roads(units, ward_district, pts, admin, districts, crs)
    rel_err = area_km2 / fact["area_km2_real"].to_numpy(float) - 1.0
    diag = {
        "n_cells": n_cells,
        "outer_area_km2": outer.area / 1e6,
        "area_rel_error": dict(zip(codes, rel_err.tolist(), strict=True)),
        "max_abs_area_rel_error": float(np.max(np.abs(rel_err))),
    }
    return DemoLayers(districts, wards, admin, roads, crs, cell_m, iterations, diag)


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
    units: pd.DataFrame,
    ward_district: np.ndarray,
    ward_pts: gpd.GeoSeries,
    admin: gpd.GeoDataFrame,
    districts: gpd.GeoDataFrame,
    crs: str,
) -> gpd.GeoDataFrame:
    """Schematic roads: Delaunay edges between ward, district and city centres."""
    d_proj = districts.to_crs(crs)
    study = shapely.union_all(list(d_proj.geometry))
    a_proj = admin.to_crs(crs)
    names = list(units["ward"]) + list(a_proj["name"])
    xs = list(ward_pts.x) + list(a_proj.geometry.x)
    ys = list(ward_pts.y) + list(a_proj.geometry.y)
    dist_of: list[int] = list(ward_district)
    for g in a_proj.geometry:  # district of an admin/city centre: the schematic polygon holding it
        hit = np.nonzero(d_proj.geometry.contains(g).to_numpy())[0]
        dist_of.append(int(hit[0]) if len(hit) else int(np.argmin(d_proj.geometry.distance(g))))
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
    roads = gpd.GeoDataFrame(rows, geometry="geometry", crs=crs).to_crs(WGS84)
    return roads


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
    for name in ("districts", "wards", "admin_centres", "roads"):
        path = out / f"{name}.geojson"
        path.write_text(geojson_text(getattr(layers, name), name), encoding="utf-8")
        paths[name] = path
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--province-code", default="92", help="GSO province code (default 92)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    ap.add_argument(
        "--facts", type=Path, default=None, help="facts CSV (default OUT/" + FACTS_NAME + ")"
    )
    ap.add_argument("--cell-m", type=float, default=DEFAULT_CELL_M, help="grid cell size (m)")
    ap.add_argument("--crs", default=None, help="metric working CRS (default: UTM zone)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    facts = args.facts or args.out / FACTS_NAME
    if not facts.is_file():
        ap.error(f"facts CSV {facts} not found; write it (see SOURCE.md) or pass --facts PATH")
    t0 = time.perf_counter()
    layers = build(str(args.province_code), facts, args.cell_m, args.crs)
    paths = write_layers(layers, args.out)
    dt = time.perf_counter() - t0
    d = layers.districts
    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(["code", "district", "area_km2", "area_km2_real", "rel_error_pct"])
    for r in d.itertuples():
        w.writerow(
            [
                r.code,
                r.district,
                f"{r.area_km2:.3f}",
                f"{r.area_km2_real:.2f}",
                f"{100 * (r.area_km2 / r.area_km2_real - 1):+.3f}",
            ]
        )
    logger.info(
        "built in %.1f s (%d iterations, crs %s, %g m cells); max |area error| %.3f %%",
        dt,
        layers.iterations,
        layers.crs,
        layers.cell_m,
        100 * layers.diagnostics["max_abs_area_rel_error"],
    )
    for name, p in paths.items():
        logger.info("%s: %d bytes, %d features", p, p.stat().st_size, len(getattr(layers, name)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
