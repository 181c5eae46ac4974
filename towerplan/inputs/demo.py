"""The built-in demo: real census districts and communes of one city, synthetic sites.

The demo lets towerplan run end to end without any data file.  Its layers ship
in ``towerplan/data/demo/`` (see ``SOURCE.md`` there):

- district and commune polygons are the real 2009-census units of
  censusVN2009 (MIT), made into a partition (no overlaps, no interior gaps)
  by ``scripts/build_demo.py``;
- commune populations are the census package's, scaled per district to the
  GSO 2009 census district totals (the package is short in the city centre),
  then projected to the scenario year with the scenario's annual growth;
- the existing sites are a seeded synthetic inventory with the scenario's
  site count, operator market shares and shared fraction, placed to follow
  population;
- the roads are a synthetic Delaunay network between commune, district and
  city centres.

Every output made from the demo says ``data_kind`` = :data:`DEMO_KIND`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from importlib import resources

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from towerplan._validate import to_working_crs
from towerplan.errors import (
    N_,
    DataFileError,
    ParameterError,
    warn_user,
)
from towerplan.inputs._base import DEMO_KIND, PlanInputs
from towerplan.scenario import Scenario

logger = logging.getLogger(__name__)

__all__ = [
    "CENSUS_YEAR",
    "DEMO_SEED",
    "SITE_MIN_SPACING_M",
    "SITE_MIX_POPULATION",
    "load_demo",
]

DEMO_SEED = 20151229
"""Default seed of the synthetic site inventory (date of Decision 3933/QĐ-UBND)."""
CENSUS_YEAR = 2009
"""Year of the district populations in the demo files."""
SITE_MIX_POPULATION = 0.6
"""Sites per district are allocated by 0.6 x population share + 0.4 x area share."""
SITE_MIN_SPACING_M = 250.0
"""Minimum distance between two synthetic existing sites (metres)."""
SITE_HEIGHT_M = {"urban": 30.0, "rural": 45.0}
"""Schematic structure height by district type (rooftop/short masts in towns, towers outside)."""
_BATCH = 32
_MAX_BATCHES_PER_WARD = 4
_FALLBACK_CANDIDATES = 256

_DATA_PACKAGE = "towerplan"
_DATA_DIR = ("data", "demo")
_LAYERS = {
    "districts": ("district", "code", "district_type", "population_2009", "area_km2_real"),
    "communes": ("commune", "commune_id", "district", "code", "population_2009"),
    "admin_centres": ("name", "category", "district", "code", "source"),
    "roads": ("road_class", "name"),
}

NOTES = (
    N_(
        "Demo boundaries are the real 2009-census districts and communes of censusVN2009 "
        "(1:250,000 base, thinned; overlaps and slivers between neighbours resolved)."
    ),
    N_(
        "Commune populations are the census package's, scaled per district to the GSO 2009 census "
        "district totals, projected with the scenario's annual growth."
    ),
    N_(
        "Existing sites are a synthetic, seeded inventory with the plan's site count, operator "
        "market shares and shared fraction, placed to follow population; they are not real BTS "
        "locations."
    ),
    N_(
        "Roads are a synthetic network (Delaunay links between commune, district and city "
        "centres), not real roads; provincial = links between districts, local = inside a district."
    ),
)


def load_demo(scenario: Scenario, seed: int = DEMO_SEED) -> PlanInputs:
    """Load the built-in demo (census boundaries and population, synthetic sites) for ``scenario``.

    Parameters
    ----------
    scenario : Scenario
        Gives the working CRS, target year and population growth, existing
        site count, operators with market shares, shared fraction of existing
        sites and maximum tenants per site.
    seed : int
        Seed of the synthetic site inventory (same seed, same sites).

    Returns
    -------
    PlanInputs
        Districts, commune population polygons, existing sites, POIs (admin and
        city centres) and roads, all in ``scenario.crs``; ``data_kind`` is
        :data:`DEMO_KIND` and ``notes`` say what is real and what is synthetic.

    Raises
    ------
    DataFileError
        A packaged demo file is missing or lacks a column.
    CRSError
        ``scenario.crs`` is not a metric CRS.
    ParameterError
        Negative site count.
    """
    crs = scenario.crs
    raw = {name: _read_layer(name) for name in _LAYERS}
    districts_all = to_working_crs(raw["districts"], crs, "demo districts")
    communes_all = to_working_crs(raw["communes"], crs, "demo communes")
    centres = to_working_crs(raw["admin_centres"], crs, "demo admin centres")
    roads_all = to_working_crs(raw["roads"], crs, "demo roads")

    if scenario.population.base_year != CENSUS_YEAR:
        logger.info(
            "demo populations are %d census totals; projecting from %d (scenario base_year %d)",
            CENSUS_YEAR,
            CENSUS_YEAR,
            scenario.population.base_year,
        )
    factor = (1.0 + scenario.population.annual_growth) ** (scenario.year - CENSUS_YEAR)
    districts = _text_columns(
        districts_all,
        ["district", "code", "district_type"],
        population=districts_all["population_2009"].to_numpy(dtype=float) * factor,
        area_km2=districts_all.geometry.area.to_numpy() / 1e6,
    )
    population = _text_columns(
        communes_all,
        ["commune", "commune_id", "district", "code"],
        population=communes_all["population_2009"].to_numpy(dtype=float) * factor,
    )
    sites = _synthetic_sites(scenario, districts, population, seed)
    pois = _text_columns(centres, ["name", "category", "source", "district"])
    roads = _text_columns(roads_all, ["road_class", "name"])
    sources = {layer: text.format(seed=seed) for layer, text in _SOURCES.items()}
    logger.info(
        "demo: %d districts, %d communes, %d existing sites, %d POIs, %d road links (%s)",
        len(districts),
        len(population),
        len(sites),
        len(pois),
        len(roads),
        crs,
    )
    return PlanInputs(
        districts=districts,
        population=population,
        existing_sites=sites,
        pois=pois,
        roads=roads,
        road_graph=None,
        data_kind=DEMO_KIND,
        notes=list(NOTES),
        sources=sources,
    )


# --------------------------------------------------------------------------- internals


_SOURCES = {
    "districts": "censusVN2009 2009-census district polygons (MIT, M. Choisy), union of "
    "their communes; populations: GSO 2009 census district totals",
    "population": "censusVN2009 commune polygons, package populations scaled per district "
    "to the GSO totals",
    "existing_sites": "synthetic inventory, seed {seed}",
    "pois": "vietnamadminunits district centres and province centre",
    "roads": "synthetic Delaunay network",
}
"""Where each demo layer comes from (``PlanInputs.sources``; ``{seed}``: the sites' seed)."""


def _text_columns(
    src: gpd.GeoDataFrame, text: Sequence[str], **values: np.ndarray
) -> gpd.GeoDataFrame:
    """A new frame with ``src``'s ``text`` columns as strings, then ``values``, same geometry."""
    data: dict[str, np.ndarray] = {c: src[c].astype(str).to_numpy() for c in text}
    data.update(values)
    return gpd.GeoDataFrame(data, geometry=src.geometry.to_numpy(), crs=src.crs)


def _read_layer(name: str) -> gpd.GeoDataFrame:
    """Read one packaged demo GeoJSON (WGS84) and check its columns."""
    res = resources.files(_DATA_PACKAGE).joinpath(*_DATA_DIR, f"{name}.geojson")
    if not res.is_file():
        raise DataFileError(
            msgid=N_(
                "demo layer {name}: packaged file {path}.geojson not found; reinstall "
                "towerplan or rebuild it with scripts/build_demo.py"
            ),
            name=name,
            path="/".join((*_DATA_DIR, name)),
        )
    with resources.as_file(res) as path:
        gdf = gpd.read_file(path)
    missing = [c for c in _LAYERS[name] if c not in gdf.columns]
    if missing:
        raise DataFileError(
            msgid=N_(
                "demo layer {name}: columns {missing} missing; rebuild it with "
                "scripts/build_demo.py"
            ),
            name=name,
            missing=missing,
        )
    if gdf.crs is None:
        gdf = gdf.set_crs("EPSG:4326")  # GeoJSON (RFC 7946) is WGS84 by definition
    return gdf


def _largest_remainder(total: int, weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """Split ``total`` into integers proportional to ``weights`` (Hamilton's method).

    Ties of the fractional parts go to the earlier entry.
    """
    w = np.asarray(weights, dtype=float)
    if total < 0 or np.any(w < 0) or w.sum() <= 0:
        raise ParameterError(
            msgid=N_(
                "cannot split {total} by weights {weights}; give a count >= 0 and weights >= "
                "0 with a positive sum"
            ),
            total=total,
            weights=w.tolist(),
        )
    quota = total * w / w.sum()
    base = np.floor(quota).astype(np.int64)
    left = int(total - base.sum())
    order = np.argsort(-(quota - base), kind="stable")
    base[order[:left]] += 1
    return base


def _sample_in(
    rng: np.random.Generator, geom: shapely.Geometry, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random points in ``geom`` (rejection in its bounding box; may return fewer)."""
    minx, miny, maxx, maxy = geom.bounds
    x = rng.uniform(minx, maxx, n)
    y = rng.uniform(miny, maxy, n)
    ok = shapely.contains_xy(geom, x, y)
    return x[ok], y[ok]


def _demo_tenants(scenario: Scenario, n: int, rng: np.random.Generator) -> list[list[str]]:
    """Host operator by market share, then a second tenant on the
    ``sharing.existing_shared_fraction`` of the structures (``n`` existing sites, drawn
    from ``rng`` after the sites' positions)."""
    names = [o.name for o in scenario.operators]
    shares = np.array([o.market_share for o in scenario.operators], dtype=float)
    owners = np.repeat(np.array(names, dtype=object), _largest_remainder(n, shares))
    owners = owners[rng.permutation(n)] if n else owners
    tenants = [[str(o)] for o in owners]
    frac = float(scenario.sharing.existing_shared_fraction)
    max_t = int(scenario.sites.max_tenants)
    n_shared = math.floor(frac * n + 0.5)
    if n_shared and (max_t < 2 or len(names) < 2):
        warn_user(
            logger,
            N_(
                "demo sites: no shared structures although sharing.existing_shared_fraction = "
                "{frac:g} (sites.max_tenants = {max_t}, {n} operator(s))"
            ),
            log_only=True,
            frac=frac,
            max_t=max_t,
            n=len(names),
        )
        n_shared = 0
    for i in np.sort(rng.choice(n, size=n_shared, replace=False)) if n_shared else []:
        host = tenants[int(i)][0]
        others = [j for j, nm in enumerate(names) if nm != host]
        p = shares[others]
        p = p / p.sum() if p.sum() > 0 else np.full(len(others), 1.0 / len(others))
        tenants[int(i)].append(names[int(rng.choice(others, p=p))])
    return tenants


def _synthetic_sites(
    scenario: Scenario,
    districts: gpd.GeoDataFrame,
    units: gpd.GeoDataFrame,
    seed: int,
) -> gpd.GeoDataFrame:
    """Seeded existing-site inventory following population (see module docstring)."""
    n = int(scenario.sites.existing)
    if n < 0:
        raise ParameterError(
            msgid=N_("sites.existing = {n}: the existing site count must be >= 0"), n=n
        )
    rng = np.random.default_rng(seed)
    pop = districts["population"].to_numpy(dtype=float)
    area = districts.geometry.area.to_numpy()
    mix = SITE_MIX_POPULATION * pop / pop.sum() + (1 - SITE_MIX_POPULATION) * area / area.sum()
    per_district = _largest_remainder(n, mix)

    xs: list[float] = []
    ys: list[float] = []
    site_district: list[str] = []
    site_type: list[str] = []
    spacing2 = SITE_MIN_SPACING_M**2
    fallbacks = 0

    for d_row, k in zip(districts.itertuples(index=False), per_district, strict=True):
        code = str(d_row.code)
        in_d = units[units["code"].astype(str) == code]
        geoms = list(in_d.geometry)
        for g in geoms:
            shapely.prepare(g)
        weight = in_d["population"].to_numpy(dtype=float)
        if weight.sum() <= 0:
            weight = np.ones(len(geoms))
        misses = np.zeros(len(geoms), dtype=np.int64)
        for _ in range(int(k)):
            placed = _place_site(rng, geoms, weight, misses, xs, ys, spacing2)
            if not placed:  # district saturated: the candidate farthest from existing sites
                fallbacks += 1
                _place_farthest(rng, d_row.geometry, xs, ys)
            site_district.append(str(d_row.district))
            site_type.append(str(d_row.district_type))
    if fallbacks:
        warn_user(
            logger,
            N_(
                "demo sites: {k} of {n} placed closer than {d:.0f} m to another (districts saturated)"
            ),
            log_only=True,
            k=fallbacks,
            n=n,
            d=SITE_MIN_SPACING_M,
        )

    tenants = _demo_tenants(scenario, n, rng)
    width = max(4, len(str(n)))
    return gpd.GeoDataFrame(
        {
            "site_id": [f"EX-{i + 1:0{width}d}" for i in range(n)],
            "operator": [t[0] for t in tenants],
            "operators": [";".join(t) for t in tenants],
            "n_tenants": np.array([len(t) for t in tenants], dtype=np.int64),
            "max_tenants": np.full(n, int(scenario.sites.max_tenants), dtype=np.int64),
            "height_m": np.array([SITE_HEIGHT_M.get(t, np.nan) for t in site_type], dtype=float),
            "district": site_district,
        },
        geometry=gpd.points_from_xy(xs, ys),
        crs=districts.crs,
        index=pd.RangeIndex(n),
    )


def _min_d2(cx: np.ndarray, cy: np.ndarray, xs: list[float], ys: list[float]) -> np.ndarray:
    """Squared distance of each point ``(cx, cy)`` to the nearest of ``(xs, ys)``."""
    px, py = np.asarray(xs), np.asarray(ys)
    return np.asarray(((cx[:, None] - px[None, :]) ** 2 + (cy[:, None] - py[None, :]) ** 2).min(1))


def _place_site(
    rng: np.random.Generator,
    geoms: list,
    weight: np.ndarray,
    misses: np.ndarray,
    xs: list[float],
    ys: list[float],
    spacing2: float,
) -> bool:
    """Append one site ``spacing2``-clear of the others in a commune drawn by ``weight``.

    ``misses`` counts each commune's failed batches (updated); a commune is dropped after
    ``_MAX_BATCHES_PER_WARD`` of them.  ``False`` when every commune is dropped.
    """
    while True:
        open_w = np.where(misses < _MAX_BATCHES_PER_WARD, weight, 0.0)
        if open_w.sum() <= 0:
            return False
        wi = int(rng.choice(len(geoms), p=open_w / open_w.sum()))
        cx, cy = _sample_in(rng, geoms[wi], _BATCH)
        ok = _min_d2(cx, cy, xs, ys) >= spacing2 if xs else np.ones(cx.size, dtype=bool)
        if ok.any():
            j = int(np.argmax(ok))
            xs.append(float(cx[j]))
            ys.append(float(cy[j]))
            return True
        misses[wi] += 1


def _place_farthest(
    rng: np.random.Generator, district: BaseGeometry, xs: list[float], ys: list[float]
) -> None:
    """Append the one of ``_FALLBACK_CANDIDATES`` random points farthest from the others."""
    cx, cy = _sample_in(rng, district, _FALLBACK_CANDIDATES)
    while cx.size == 0:
        cx, cy = _sample_in(rng, district, _FALLBACK_CANDIDATES)
    j = int(np.argmax(_min_d2(cx, cy, xs, ys)))
    xs.append(float(cx[j]))
    ys.append(float(cy[j]))
