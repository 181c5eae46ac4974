"""Public Wi-Fi hotspots at points of interest, placed with the set-covering engine.

**Categories.**  The plan puts public Wi-Fi at tourist areas, hospitals,
schools, district administrative centres and the city centre.  POIs carry a
``category`` (``tourism`` | ``hospital`` | ``school`` | ``admin_centre`` |
``city_centre`` | other); :func:`classify_osm_pois` derives it from OSM tags
(``tourism=*`` -> tourism; ``amenity=hospital|clinic`` -> hospital;
``amenity=school|college|university`` -> school; ``amenity=townhall`` or
``office=government`` -> admin_centre), and vector files get it from a
category mapping (:func:`towerplan.inputs.readers.read_pois`).  Only the categories listed
in the scenario (``wifi.categories``) are served; others are counted and
dropped.

**Study area.**  POIs outside the union of the districts are excluded with a
warning that gives their number (never silently).

**City centre.**  A polygon (``city_centre=``); else the disc of
``city_centre_radius_m`` around every ``city_centre`` POI point; else, when
``city_centre`` is a requested category, :func:`default_city_centre` - the disc
around the POI with the most other POIs within that radius (the densest POI
cluster), a stated assumption announced by a warning.

**Placement.**  Demand points = the POIs of the served categories plus a
square grid (spacing ``grid_spacing_m``, default the hotspot radius) in the
city-centre polygon.  Candidate access-point positions = the POI points
themselves plus the same grid points.  A demand point is covered by an access
point within ``radius_m``.  The smallest set of access points covering every
demand point is chosen with :func:`towerplan.siting.set_cover` (every POI can
host its own access point, so full coverage is always feasible).

Layer ``wifi_hotspots`` (Point): ``hotspot_id`` (``WIFI-0001``...),
``category`` (of the POI the access point stands at; ``city_centre`` for grid
points), ``name``, ``district``, ``covers_n`` (demand points within the
radius), ``covers_pois`` (POIs within the radius), ``source`` (``poi`` |
``city_centre_grid``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.spatial import cKDTree
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from towerplan._validate import (
    assign_district,
    points_xy,
    require_columns,
    require_metric,
    require_rows,
    require_same_crs,
)
from towerplan.errors import N_, CRSError, ParameterError, warn_user

logger = logging.getLogger(__name__)

__all__ = [
    "OSM_CATEGORY_RULES",
    "PLAN_CATEGORIES",
    "WifiPlan",
    "classify_osm_pois",
    "default_city_centre",
    "district_columns",
    "place_hotspots",
    "summary_keys",
]

PLAN_CATEGORIES = ("tourism", "hospital", "school", "admin_centre", "city_centre")
"""Categories of the plan's public Wi-Fi (Decision 3933 s. 3.2 đ)."""

OSM_CATEGORY_RULES: tuple[tuple[str, tuple[str, ...] | None, str], ...] = (
    ("amenity", ("hospital", "clinic"), "hospital"),
    ("amenity", ("school", "college", "university"), "school"),
    ("amenity", ("townhall",), "admin_centre"),
    ("office", ("government",), "admin_centre"),
    ("tourism", None, "tourism"),
)
"""``(tag, values or None for any value, category)``; the first matching rule wins."""

_COLUMNS = ["hotspot_id", "category", "name", "district", "covers_n", "covers_pois", "source"]


def classify_osm_pois(features: gpd.GeoDataFrame, source: str = "osm") -> gpd.GeoDataFrame:
    """Categorise OSM features (e.g. from ``osmnx.features_from_xml``) by their tags.

    Rules (:data:`OSM_CATEGORY_RULES`, first match wins): ``amenity=hospital|
    clinic`` -> hospital, ``amenity=school|college|university`` -> school,
    ``amenity=townhall`` or ``office=government`` -> admin_centre,
    ``tourism=*`` (any value but ``no``) -> tourism.  Features matching no rule
    are dropped (their number is logged).  Polygons become representative
    points (flag ``from_polygon``).

    Parameters
    ----------
    features : GeoDataFrame
        OSM features with their tag columns.
    source : str
        Value of the ``source`` column.

    Returns
    -------
    GeoDataFrame
        ``name``, ``category``, ``source``, ``from_polygon``; index kept.
    """
    cat = pd.Series(None, index=features.index, dtype=object)
    for tag, values, category in OSM_CATEGORY_RULES:
        if tag not in features.columns:
            continue
        v = features[tag].astype(object)
        has = v.notna() & v.astype(str).str.strip().ne("") & v.astype(str).ne("no")
        hit = has if values is None else v.isin(values)
        cat = cat.where(cat.notna() | ~hit, category)
    keep = cat.notna()
    dropped = int((~keep).sum())
    if dropped:
        logger.info("OSM features: %d of %d match no Wi-Fi category", dropped, len(features))
    f = features[keep]
    geom = f.geometry
    is_point = (geom.geom_type == "Point").to_numpy()
    pts = geom.where(is_point, geom.representative_point())
    names = (
        f["name"].astype(object).where(f["name"].notna(), "").astype(str)
        if "name" in f.columns
        else pd.Series("", index=f.index)
    )
    return gpd.GeoDataFrame(
        {
            "name": names.to_numpy(),
            "category": cat[keep].to_numpy(),
            "source": source,
            "from_polygon": ~is_point,
        },
        geometry=pts.to_numpy(),
        crs=features.crs,
        index=f.index,
    )


def default_city_centre(pois: gpd.GeoDataFrame, radius_m: float) -> BaseGeometry:
    """Disc of ``radius_m`` around the POI with the most other POIs within ``radius_m``.

    A stated assumption for when no city-centre polygon is given: the city
    centre is where points of interest are densest.  Ties go to the first POI.

    Parameters
    ----------
    pois : GeoDataFrame
        Points of interest, metric CRS.
    radius_m : float
        Disc radius.

    Returns
    -------
    shapely geometry
        The disc.

    Raises
    ------
    ParameterError
        No POIs or a radius <= 0.
    """
    require_metric(pois, "pois")
    if radius_m <= 0 or not np.isfinite(radius_m):
        raise ParameterError(
            msgid=N_("city_centre_radius_m = {radius_m}: must be > 0 m"),
            radius_m=radius_m,
        )
    if len(pois) == 0:
        raise ParameterError(msgid=N_("pois: no POIs to locate the city centre; give city_centre="))
    xy = points_xy(pois, "pois")
    counts = cKDTree(xy).query_ball_point(xy, r=radius_m, return_length=True)
    k = int(np.argmax(counts))
    return Point(xy[k]).buffer(radius_m, quad_segs=32)


def _as_geometry(obj: Any, crs: Any, name: str) -> BaseGeometry | None:
    if obj is None:
        return None
    if isinstance(obj, gpd.GeoDataFrame | gpd.GeoSeries):
        require_metric(obj, name)
        if obj.crs != crs:
            raise CRSError(
                msgid=N_("{name} ({layer_crs}) and pois ({crs}) are in different CRSs"),
                name=name,
                layer_crs=obj.crs,
                crs=crs,
            )
        return shapely.union_all(obj.geometry.to_numpy()) if len(obj) else None
    if isinstance(obj, BaseGeometry):
        return obj
    raise ParameterError(
        msgid=N_("{name}: give a shapely polygon or a GeoDataFrame, got {type}"),
        name=name,
        type=type(obj),
    )


def _grid_in(poly: BaseGeometry, spacing: float) -> np.ndarray:
    minx, miny, maxx, maxy = poly.bounds
    xs = np.arange(minx + spacing / 2, maxx, spacing)
    ys = np.arange(miny + spacing / 2, maxy, spacing)
    mx, my = np.meshgrid(xs, ys)
    gx, gy = mx.ravel(), my.ravel()
    inside = shapely.contains_xy(poly, gx, gy)
    pts = np.column_stack([gx[inside], gy[inside]])
    if len(pts) == 0:  # a polygon smaller than one grid cell: its representative point
        rp = poly.representative_point()
        return np.array([[rp.x, rp.y]], dtype=float)
    return pts


@dataclass(frozen=True)
class WifiPlan:
    """Result of :func:`place_hotspots`.

    Attributes
    ----------
    hotspots : GeoDataFrame
        Layer ``wifi_hotspots`` (module docstring).
    pois : GeoDataFrame
        The POIs served (inside the study area, of a served category), with
        ``district`` and ``covered`` (bool).
    city_centre : shapely geometry or None
        City-centre polygon used.
    n_outside : int
        POIs excluded because they lie outside the study area.
    n_other_category : int
        POIs excluded because their category is not served.
    n_centre_points : int
        City-centre grid demand points.
    """

    hotspots: gpd.GeoDataFrame
    pois: gpd.GeoDataFrame
    city_centre: BaseGeometry | None
    n_outside: int
    n_other_category: int
    n_centre_points: int


def place_hotspots(
    pois: gpd.GeoDataFrame,
    districts: gpd.GeoDataFrame,
    *,
    radius_m: float = 100.0,
    categories: Sequence[str] = PLAN_CATEGORIES,
    city_centre: Any = None,
    city_centre_radius_m: float = 500.0,
    grid_spacing_m: float | None = None,
    solver: Literal["auto", "exact", "heuristic"] = "auto",
    time_limit_s: float = 30.0,
) -> WifiPlan:
    """Place public Wi-Fi access points covering the POIs and the city centre.

    Parameters
    ----------
    pois : GeoDataFrame
        Points with ``category`` (and ``name`` when known), metric CRS.
    districts : GeoDataFrame
        ``district`` polygons (the study area), same CRS.
    radius_m : float
        Hotspot radius (scenario ``wifi.hotspot_radius_m``).
    categories : sequence of str
        Categories served (scenario ``wifi.categories``).
    city_centre : shapely polygon or GeoDataFrame, optional
        City-centre area; see the module docstring for the defaults.
    city_centre_radius_m : float
        Radius of the city-centre discs built from points.
    grid_spacing_m : float, optional
        City-centre grid spacing; default ``radius_m``.
    solver, time_limit_s
        Passed to :func:`towerplan.siting.set_cover`.

    Returns
    -------
    WifiPlan

    Raises
    ------
    CRSError, ColumnError, ParameterError

    Warns
    -----
    UserWarning
        POIs outside the study area (with their number); the default city
        centre being used.
    """
    from towerplan.coverage import coverage_matrix
    from towerplan.siting import set_cover

    crs, spacing = _check_hotspot_inputs(pois, districts, radius_m, grid_spacing_m)
    cats = [str(c) for c in categories]

    study = shapely.union_all(districts.geometry.to_numpy())
    served, centre_pts, n_out, n_other = _served_pois(pois, study, cats)
    centre = _city_centre_area(
        city_centre, crs, study, cats, centre_pts, served, radius_m=city_centre_radius_m
    )
    grid = _grid_in(centre, spacing) if centre is not None else np.zeros((0, 2))

    names = (
        served["name"].astype(object).where(served["name"].notna(), "").astype(str)
        if "name" in served.columns
        else pd.Series("", index=served.index)
    )
    poi_xy = points_xy(served, "pois")
    demand_xy = np.vstack([poi_xy, grid])
    cand_xy = demand_xy  # POIs themselves + city-centre grid points
    n_poi = len(poi_xy)
    served = served.assign(name=names.to_numpy())
    served["district"] = assign_district(served, districts, name="pois")
    if len(demand_xy) == 0:
        warn_user(
            logger,
            N_("wifi: no POI of the served categories and no city centre: no hotspots"),
            log_only=True,
        )
        return WifiPlan(
            hotspots=gpd.GeoDataFrame(
                {c: pd.Series(dtype=object) for c in _COLUMNS},
                geometry=gpd.GeoSeries([], crs=crs),
                crs=crs,
            ),
            pois=served.assign(covered=pd.Series(dtype=bool)),
            city_centre=centre,
            n_outside=n_out,
            n_other_category=n_other,
            n_centre_points=0,
        )

    cover = coverage_matrix(demand_xy, cand_xy, float(radius_m)).tocsc()
    res = set_cover(cover, target_fraction=1.0, solver=solver, time_limit_s=time_limit_s)
    sel = np.sort(np.asarray(res.selected, dtype=int))
    covered = np.asarray(cover[:, sel].sum(axis=1)).ravel() > 0
    hotspots = _hotspot_layer(cover, sel, cand_xy, served, districts, crs)
    if not covered.all():
        warn_user(
            logger,
            N_("wifi: {n} demand points left uncovered by the solver"),
            log_only=True,
            n=int((~covered).sum()),
        )
    logger.info(
        "wifi: %d hotspots cover %d POIs and %d city-centre points (radius %.0f m)",
        len(hotspots),
        n_poi,
        len(grid),
        radius_m,
    )
    return WifiPlan(
        hotspots=hotspots,
        pois=served.assign(covered=covered[:n_poi]),
        city_centre=centre,
        n_outside=n_out,
        n_other_category=n_other,
        n_centre_points=len(grid),
    )


def _check_hotspot_inputs(
    pois: gpd.GeoDataFrame,
    districts: gpd.GeoDataFrame,
    radius_m: float,
    grid_spacing_m: float | None,
) -> tuple[Any, float]:
    """The checks of :func:`place_hotspots`; returns the CRS and the grid spacing."""
    crs = require_metric(pois, "pois")
    require_metric(districts, "districts")
    require_rows(districts, "districts")
    require_same_crs(pois, districts, "pois", "districts")
    require_columns(pois, ["category"], "pois")
    require_columns(districts, ["district"], "districts")
    if not np.isfinite(radius_m) or radius_m <= 0:
        raise ParameterError(
            msgid=N_("radius_m = {radius_m}: the hotspot radius must be > 0 m"),
            radius_m=radius_m,
        )
    spacing = float(grid_spacing_m) if grid_spacing_m is not None else float(radius_m)
    if not np.isfinite(spacing) or spacing <= 0:
        raise ParameterError(
            msgid=N_("grid_spacing_m = {grid_spacing_m}: must be > 0 m"),
            grid_spacing_m=grid_spacing_m,
        )
    return crs, spacing


def _served_pois(
    pois: gpd.GeoDataFrame, study: BaseGeometry, cats: list[str]
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, int, int]:
    """POIs to serve, city-centre POIs, and the counts of POIs outside / of other categories."""
    pts = pois[pois.geometry.notna() & ~pois.geometry.is_empty]
    pts = pts[pts.geom_type == "Point"]
    if len(pts) < len(pois):
        warn_user(
            logger,
            N_("pois: {n} non-point or empty features ignored"),
            log_only=True,
            n=len(pois) - len(pts),
        )
    pxy = points_xy(pts, "pois")
    inside = shapely.contains_xy(study, pxy[:, 0], pxy[:, 1])
    n_out = int((~inside).sum())
    if n_out:
        warn_user(
            logger,
            N_(
                "pois: {n_out} of {n} POIs lie outside the study area (the districts) and are "
                "excluded from the Wi-Fi plan; check their CRS / lon-lat order if this is "
                "unexpected"
            ),
            stacklevel=3,
            n_out=n_out,
            n=len(pts),
        )
    pts = pts[inside]
    centre_pts = pts[pts["category"] == "city_centre"]
    served = pts[pts["category"].isin([c for c in cats if c != "city_centre"])].copy()
    n_other = int(len(pts) - len(served) - len(centre_pts))
    if n_other:
        other = pts.loc[~pts["category"].isin(cats), "category"].value_counts().to_dict()
        logger.info("pois: %d POIs of categories not served are dropped: %s", n_other, other)
    return served, centre_pts, n_out, n_other


def _city_centre_area(
    city_centre: Any,
    crs: Any,
    study: BaseGeometry,
    cats: list[str],
    centre_pts: gpd.GeoDataFrame,
    served: gpd.GeoDataFrame,
    *,
    radius_m: float,
) -> BaseGeometry | None:
    """The city-centre area inside the study area: given, from city-centre POIs, or assumed."""
    centre = _as_geometry(city_centre, crs, "city_centre")
    if centre is None and "city_centre" in cats:
        if len(centre_pts):
            centre = shapely.union_all(
                centre_pts.geometry.buffer(radius_m, quad_segs=32).to_numpy()
            )
        elif len(served):
            centre = default_city_centre(served, radius_m)
            c = centre.centroid
            warn_user(
                logger,
                N_(
                    "wifi: no city-centre polygon given; assuming the {r:.0f} m disc around the "
                    "densest POI cluster at ({x:.0f}, {y:.0f}); to set it, add a POI of category "
                    "city_centre (data.pois) or change wifi.city_centre_radius_m"
                ),
                stacklevel=3,
                r=radius_m,
                x=c.x,
                y=c.y,
            )
    if centre is not None:
        centre = centre.intersection(study)
        if centre.is_empty:
            centre = None
    return centre


def _hotspot_layer(
    cover: Any,
    sel: np.ndarray,
    cand_xy: np.ndarray,
    served: gpd.GeoDataFrame,
    districts: gpd.GeoDataFrame,
    crs: Any,
) -> gpd.GeoDataFrame:
    """The ``wifi_hotspots`` layer of the selected candidates (POIs first, then grid points)."""
    n_poi = len(served)
    cov_sel = cover[:, sel]
    hot_xy = cand_xy[sel]
    cat_arr = served["category"].to_numpy()
    name_arr = served["name"].to_numpy()
    return gpd.GeoDataFrame(
        {
            "hotspot_id": [f"WIFI-{k + 1:04d}" for k in range(len(sel))],
            "category": [cat_arr[k] if k < n_poi else "city_centre" for k in sel],
            "name": [name_arr[k] if k < n_poi else "city centre" for k in sel],
            "district": assign_district(
                gpd.GeoSeries.from_xy(hot_xy[:, 0], hot_xy[:, 1], crs=crs), districts
            ).to_numpy(),
            "covers_n": np.asarray(cov_sel.sum(axis=0)).ravel().astype(int),
            "covers_pois": np.asarray(cov_sel[:n_poi].sum(axis=0)).ravel().astype(int),
            "source": np.where(sel < n_poi, "poi", "city_centre_grid"),
        },
        geometry=gpd.points_from_xy(hot_xy[:, 0], hot_xy[:, 1]),
        crs=crs,
    )


def summary_keys(plan: WifiPlan) -> dict[str, Any]:
    """Keys for ``summary.json``: ``wifi_hotspots`` (count), ``wifi_hotspots_by_category``,
    ``wifi_pois_served``, ``wifi_pois_outside_study_area``, ``wifi_pois_other_category``,
    ``wifi_city_centre_points``.

    Parameters
    ----------
    plan : WifiPlan
        :func:`place_hotspots` output.

    Returns
    -------
    dict
        The keys above.
    """
    h = plan.hotspots
    return {
        "wifi_hotspots": len(h),
        "wifi_hotspots_by_category": {
            str(k): int(v) for k, v in h["category"].value_counts().sort_index().items()
        },
        "wifi_pois_served": len(plan.pois),
        "wifi_pois_outside_study_area": plan.n_outside,
        "wifi_pois_other_category": plan.n_other_category,
        "wifi_city_centre_points": plan.n_centre_points,
    }


def district_columns(plan: WifiPlan, districts: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-district columns for ``district_kpis.csv`` (index ``district``):
    ``wifi_hotspots`` and ``wifi_pois``; every district of ``districts`` gets a row.

    Parameters
    ----------
    plan : WifiPlan
        :func:`place_hotspots` output.
    districts : DataFrame, optional
        Districts that get a row even without hotspots.

    Returns
    -------
    DataFrame
        Indexed by district.
    """
    h = plan.hotspots.groupby("district").size() if len(plan.hotspots) else pd.Series(dtype=int)
    p = plan.pois.groupby("district").size() if len(plan.pois) else pd.Series(dtype=int)
    idx = (
        pd.Index(districts["district"], name="district")
        if districts is not None
        else pd.Index(sorted(set(h.index) | set(p.index)), name="district")
    )
    return pd.DataFrame(
        {
            "wifi_hotspots": h.reindex(idx).fillna(0).astype(int),
            "wifi_pois": p.reindex(idx).fillna(0).astype(int),
        },
        index=idx,
    )
