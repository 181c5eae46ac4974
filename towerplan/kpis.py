"""Planning KPIs: serving-radius conventions, plan fidelity and district tables.

The *mean serving radius* of a plan with ``N`` sites over an area ``S`` depends
on the cell shape assumed; plans rarely say which.  Three conventions:

* ``square``:  each site serves a square of side ``2R`` rotated 45 degrees
  (area ``2R**2``), so ``R = sqrt(S / (2 N))``;
* ``circle``:  each site serves a disc, ``R = sqrt(S / (pi N))`` (overlaps ignored);
* ``hexagon``: each site serves a regular hexagon of circumradius ``R``
  (area ``3 sqrt(3) / 2 R**2``), so ``R = sqrt(2 S / (3 sqrt(3) N))``.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd

from towerplan._validate import require_metric
from towerplan.errors import N_, ParameterError

logger = logging.getLogger(__name__)

Convention = Literal["square", "circle", "hexagon"]
CONVENTIONS: tuple[Convention, ...] = ("square", "circle", "hexagon")

__all__ = [
    "CONVENTIONS",
    "district_kpis",
    "plan_fidelity",
    "serving_radius_km",
    "sites_for_radius",
]


def _cell_area_factor(convention: Convention) -> float:
    if convention == "square":
        return 2.0
    if convention == "circle":
        return math.pi
    if convention == "hexagon":
        return 3.0 * math.sqrt(3.0) / 2.0
    raise ParameterError(
        msgid=N_("radius convention {convention} is unknown; use one of {conventions}"),
        convention=repr(convention),
        conventions=list(CONVENTIONS),
    )


def serving_radius_km(area_km2: float, n_sites: float, convention: Convention = "square") -> float:
    """Mean serving radius (km) of ``n_sites`` sites over ``area_km2``.

    Parameters
    ----------
    area_km2 : float
        Served area in km² (> 0).
    n_sites : float
        Number of sites (> 0).
    convention : {'square', 'circle', 'hexagon'}
        Cell-shape convention (see module docstring).

    Returns
    -------
    float
        Radius in km.
    """
    if area_km2 <= 0:
        raise ParameterError(msgid=N_("area_km2 = {area_km2} must be > 0"), area_km2=area_km2)
    if n_sites <= 0:
        raise ParameterError(msgid=N_("n_sites = {n_sites} must be > 0"), n_sites=n_sites)
    return math.sqrt(area_km2 / (_cell_area_factor(convention) * n_sites))


def sites_for_radius(area_km2: float, radius_km: float, convention: Convention = "square") -> float:
    """Number of sites that gives mean serving radius ``radius_km`` over ``area_km2``.

    Parameters
    ----------
    area_km2 : float
        Study area.
    radius_km : float
        Mean serving radius.
    convention : {'square', 'circle', 'hexagon'}
        Radius convention (:data:`CONVENTIONS`).

    Returns
    -------
    float
        Number of sites (not rounded).
    """
    if radius_km <= 0:
        raise ParameterError(msgid=N_("radius_km = {radius_km} must be > 0"), radius_km=radius_km)
    return area_km2 / (_cell_area_factor(convention) * radius_km**2)


def plan_fidelity(
    area_km2: float, total_sites: int, *, existing_sites: int, plan_radius_km: float
) -> dict[str, Any]:
    """Which radius convention reproduces the plan's mean serving radius.

    Parameters
    ----------
    area_km2 : float
        Study area.
    total_sites : int
        Planned total of sites.
    existing_sites : int
        Existing sites.
    plan_radius_km : float
        The plan's mean serving radius.

    Returns
    -------
    dict
        ``radius_km_at_total`` and ``radius_km_at_existing`` per convention,
        ``best_convention`` (closest to ``plan_radius_km`` at ``total_sites``),
        its absolute error, and ``sites_for_plan_radius`` per convention.
    """
    at_total = {c: serving_radius_km(area_km2, total_sites, c) for c in CONVENTIONS}
    at_existing = {
        c: serving_radius_km(area_km2, existing_sites, c) if existing_sites > 0 else float("nan")
        for c in CONVENTIONS
    }
    errors = {c: abs(r - plan_radius_km) for c, r in at_total.items()}
    best = min(errors, key=lambda c: errors[c])
    return {
        "area_km2": round(area_km2, 3),
        "plan_sites": total_sites,
        "plan_radius_km": plan_radius_km,
        "radius_km_at_total": {c: round(v, 4) for c, v in at_total.items()},
        "radius_km_at_existing": {
            c: (round(v, 4) if existing_sites > 0 else None) for c, v in at_existing.items()
        },
        "best_convention": best,
        "best_abs_error_km": round(errors[best], 4),
        "sites_for_plan_radius": {
            c: round(sites_for_radius(area_km2, plan_radius_km, c), 1) for c in CONVENTIONS
        },
    }


def district_kpis(
    districts: gpd.GeoDataFrame,
    demand: gpd.GeoDataFrame,
    existing_sites: gpd.GeoDataFrame,
    proposed_sites: gpd.GeoDataFrame,
    *,
    covered_before: pd.DataFrame,
    covered_after: pd.DataFrame,
    market_shares: dict[str, float],
    convention: Convention = "square",
) -> pd.DataFrame:
    """One row per district: sites, radius and coverage before/after.

    Parameters
    ----------
    districts : GeoDataFrame
        Contract columns ``district``, ``code``, ``district_type``, ``population``.
    demand : GeoDataFrame
        Demand points with ``population`` and ``district``.
    existing_sites, proposed_sites : GeoDataFrame
        With ``district`` (and ``site_type`` for proposed sites).
    covered_before, covered_after : DataFrame
        Boolean coverage per operator, indexed like ``demand``.
    market_shares : dict
        Operator -> share, for the weighted coverage.
    convention : str
        Radius convention for ``mean_serving_radius_km``.

    Returns
    -------
    DataFrame
        Columns ``district, code, district_type, area_km2, population, existing,
        new_dedicated, new_shared, total, mean_serving_radius_km,
        coverage_any_before, coverage_any_after, coverage_weighted_before,
        coverage_weighted_after``.
    """
    require_metric(districts, "districts")
    ops = list(market_shares)
    w = np.array([market_shares[o] for o in ops])
    pop = demand["population"].to_numpy(float)
    rows = []
    for _, d in districts.iterrows():
        name = d["district"]
        in_d = (demand["district"] == name).to_numpy()
        p = pop[in_d]
        ptot = float(p.sum())
        area = float(d.geometry.area) / 1e6
        ex = int((existing_sites["district"] == name).sum()) if len(existing_sites) else 0
        pr = (
            proposed_sites[proposed_sites["district"] == name]
            if len(proposed_sites)
            else proposed_sites
        )
        nd = int((pr["site_type"] == "dedicated").sum()) if len(pr) else 0
        ns = int((pr["site_type"] == "shared").sum()) if len(pr) else 0
        tot = ex + nd + ns

        def shares(
            cov: pd.DataFrame, p: np.ndarray = p, sel: np.ndarray = in_d
        ) -> tuple[float, float]:
            c = cov[ops].to_numpy(bool)[sel]
            if p.sum() <= 0:
                return float("nan"), float("nan")
            anyc = float(p[c.any(axis=1)].sum() / p.sum())
            weighted = float(((c * w).sum(axis=1) * p).sum() / p.sum())
            return anyc, weighted

        ab, wb = shares(covered_before)
        aa, wa = shares(covered_after)
        rows.append(
            {
                "district": name,
                "code": d.get("code", ""),
                "district_type": d.get("district_type", ""),
                "area_km2": round(area, 3),
                "population": round(ptot, 1),
                "existing": ex,
                "new_dedicated": nd,
                "new_shared": ns,
                "total": tot,
                "mean_serving_radius_km": round(serving_radius_km(area, tot, convention), 4)
                if tot > 0
                else float("nan"),
                "coverage_any_before": round(ab, 4),
                "coverage_any_after": round(aa, 4),
                "coverage_weighted_before": round(wb, 4),
                "coverage_weighted_after": round(wa, 4),
            }
        )
    return pd.DataFrame(rows)
