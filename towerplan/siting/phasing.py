"""Phased build-out: how many sites each later period needs, where, and in what order.

**Need per district** (:func:`sites_needed_by_district`).  After the base phase
(existing sites + the base-year plan, all kept) the final year needs, per district,
``coverage_sites`` = base sites + the set-covering sites that lift population coverage
(any operator, scenario radius) to ``phasing.coverage_target``
(:func:`towerplan.siting.sites_needed_for_coverage`) and ``capacity_sites`` from the
busy-hour traffic (:mod:`towerplan.capacity`); ``sites_needed = max(coverage_sites,
capacity_sites)`` and the district's new structures are ``sites_needed - base sites``.

**Budgets.**  A period's budget is given (``phasing.periods[*].budget``) or, by default,
the final-year need spread over the periods in proportion to their length; the
capacity-driven part of each district's need is a minimum that grows the same way.

**Placement** (:func:`plan_phases`): one multi-period maximal covering model
(:mod:`towerplan.siting._phasing`): a structure once built stays; each period builds
its budget; the value of covering a cell in a period is its population that period
(grown by ``population.annual_growth``) x the period's length x its uncovered share (the
pipeline passes 1 for cells no operator covers after the base phase - the definition of
the coverage target - and 0 elsewhere); a small ``capacity_weight`` x the busy-hour
traffic within a structure's radius places capacity sites at traffic hot spots.
Structures after the base year are planned as neutral-host (``shared``) towers: the
2030 sharing target (50-60 %) points that way.  A structure hosts at most its
``max_tenants`` operators (the candidate's column, else ``sites.max_tenants``): when
there are more operators, those of largest market share x population within its radius
that they do not cover yet (ties: market share, then scenario order) - :func:`tenants`.

**Base plan.**  The base phase is this scenario's own siting of ``sites.new``, or a
finished plan: ``phasing.base_plan`` (CLI ``--base-plan``), a plan output folder read by
:func:`read_base_plan`, or ``phasing.base_scenario``, a scenario the pipeline runs first
with the same seed and work limits (so its sites are those of a separate run of it).
:func:`check_base_plan` refuses a base of another area, CRS, operator set or year.

``proposed_sites`` gains ``build_year``; ``phasing.csv`` (:func:`phasing_table`) lists
new and cumulative sites per district and build year.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from towerplan import capacity
from towerplan._validate import require_metric
from towerplan.coverage import coverage_matrix, points_xy
from towerplan.errors import N_, ColumnError, DataFileError, ParameterError, ScenarioError
from towerplan.scenario import CapacitySettings
from towerplan.siting import _phasing
from towerplan.siting.planner import PROPOSED_COLUMNS, _conflicts, sites_needed_for_coverage

logger = logging.getLogger(__name__)

__all__ = [
    "BasePlan",
    "PhasingResult",
    "auto_budgets",
    "away_from",
    "check_base_plan",
    "phasing_table",
    "plan_phases",
    "read_base_plan",
    "sites_needed_by_district",
    "tenants",
]

BASE_PLAN_COLUMNS = ["site_id", "site_type", "operators", "n_tenants", "geometry"]
"""Columns a base plan's ``proposed_sites`` layer must have."""


@dataclass
class PhasingResult:
    """Result of :func:`plan_phases`.

    Attributes
    ----------
    proposed : GeoDataFrame
        New structures of the periods (``PROPOSED_COLUMNS`` + ``build_year``).
    objective, upper_bound, gap : float
        Model objective, HiGHS dual bound and relative gap.
    method : str
        ``milp`` or ``greedy``.
    log : dict
        Model size, nodes, status, ``stopped_by``.
    """

    proposed: gpd.GeoDataFrame
    objective: float
    upper_bound: float
    gap: float
    method: str
    log: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BasePlan:
    """A finished plan whose new sites are the base phase of a phased plan.

    Attributes
    ----------
    proposed : GeoDataFrame
        Its new sites (``proposed_sites``), all kept.
    siting : dict
        Its ``summary.json`` block ``siting``.
    crs, year, data_kind : str, int, str
        Working CRS, plan year, ``demo`` / ``files``.
    operators : list of str
        Its operators.
    districts : GeoDataFrame
        Its district layer (``district``, geometry).
    origin : str
        How the user named it (scenario key or CLI flag and value), for messages.
    """

    proposed: gpd.GeoDataFrame
    siting: dict[str, Any]
    crs: str
    year: int
    data_kind: str
    operators: list[str]
    districts: gpd.GeoDataFrame
    origin: str


def read_base_plan(path: str | Path, *, origin: str) -> BasePlan:
    """Read a finished plan output folder (``towerplan.gpkg`` + ``summary.json``).

    Parameters
    ----------
    path : str or Path
        The folder, or its ``towerplan.gpkg``.
    origin : str
        Scenario key / CLI flag naming it (for messages).

    Returns
    -------
    BasePlan

    Raises
    ------
    DataFileError
        No ``towerplan.gpkg`` / ``summary.json``, or no usable ``proposed_sites`` layer.
    """
    p = Path(path)
    folder = p.parent if p.suffix.lower() == ".gpkg" else p
    gpkg, summ = folder / "towerplan.gpkg", folder / "summary.json"
    if p.suffix.lower() == ".gpkg":
        gpkg = p
    if not (gpkg.is_file() and summ.is_file()):
        raise DataFileError(
            msgid=N_(
                "{origin}: {folder} holds no towerplan.gpkg and summary.json; give the output "
                "folder of a finished `towerplan plan --out DIR` run"
            ),
            origin=origin,
            folder=str(folder),
        )
    try:
        summary = json.loads(summ.read_text(encoding="utf-8"))
        proposed = gpd.read_file(gpkg, layer="proposed_sites")
        districts = gpd.read_file(gpkg, layer="districts")
    except Exception as exc:  # pyogrio / json raise several types
        raise DataFileError(
            msgid=N_(
                "{origin}: cannot read {gpkg} ({problem}); give the output folder of a "
                "finished `towerplan plan --out DIR` run"
            ),
            origin=origin,
            gpkg=str(gpkg),
            problem=str(exc),
        ) from None
    missing = [c for c in BASE_PLAN_COLUMNS if c not in proposed.columns]
    if missing or "crs" not in summary or "year" not in summary:
        raise DataFileError(
            msgid=N_(
                "{origin}: {gpkg} layer proposed_sites lacks {missing}; give the output folder "
                "of a finished `towerplan plan --out DIR` run"
            ),
            origin=origin,
            gpkg=str(gpkg),
            missing=", ".join(missing) or "summary.json crs/year",
        )
    return BasePlan(
        proposed=proposed,
        siting=dict(summary.get("siting", {})),
        crs=str(summary["crs"]),
        year=int(summary["year"]),
        data_kind=str(summary.get("data_kind", "")),
        operators=list(summary.get("operators", {})),
        districts=districts,
        origin=origin,
    )


def check_base_plan(
    base: BasePlan,
    *,
    crs: str,
    base_year: int,
    operators: list[str],
    districts: gpd.GeoDataFrame,
    data_kind: str,
) -> None:
    """Raise :class:`~towerplan.errors.ScenarioError` when ``base`` does not fit the plan.

    It must share the working CRS, the data kind, the operators and the districts (names
    and total area within 0.1 %), and its year must be ``phasing.base_year``.
    """
    o = base.origin
    if base.crs != crs:
        raise ScenarioError(
            msgid=N_("{origin}: planned in {base_crs}, this scenario in {crs}; set crs: {crs}"),
            origin=o,
            base_crs=base.crs,
            crs=crs,
        )
    if base.year != base_year:
        raise ScenarioError(
            msgid=N_(
                "{origin}: a plan for {year}, not phasing.base_year {base_year}; give a "
                "{base_year} plan or set phasing.base_year: {year}"
            ),
            origin=o,
            year=base.year,
            base_year=base_year,
        )
    if base.data_kind and base.data_kind != data_kind:
        raise ScenarioError(
            msgid=N_(
                "{origin}: built on {base_kind} data, this plan on {kind} data; use the same "
                "data.kind in both"
            ),
            origin=o,
            base_kind=base.data_kind,
            kind=data_kind,
        )
    if sorted(base.operators) != sorted(operators):
        raise ScenarioError(
            msgid=N_(
                "{origin}: operators {base_ops} differ from this scenario's {ops}; use the same "
                "'operators' in both"
            ),
            origin=o,
            base_ops=", ".join(sorted(base.operators)),
            ops=", ".join(sorted(operators)),
        )
    names = set(map(str, districts["district"]))
    bnames = set(map(str, base.districts["district"]))
    area = float(districts.geometry.area.sum())
    barea = float(base.districts.to_crs(districts.crs).geometry.area.sum())
    if names != bnames or abs(barea - area) > 1e-3 * area:
        raise ScenarioError(
            msgid=N_(
                "{origin}: another area ({base_n} districts, {base_km2} km2) than this scenario "
                "({n} districts, {km2} km2); use the same data.districts"
            ),
            origin=o,
            base_n=len(bnames),
            base_km2=f"{barea / 1e6:.1f}",
            n=len(names),
            km2=f"{area / 1e6:.1f}",
        )


def sites_needed_by_district(
    demand: gpd.GeoDataFrame,
    candidates: gpd.GeoDataFrame,
    base_sites: gpd.GeoDataFrame,
    *,
    radius_m: float,
    coverage_target: float,
    mobile_broadband_per_100: float,
    capacity_settings: CapacitySettings,
    time_limit_s: float = 60.0,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Final-year sites per district for coverage and for capacity (module docstring).

    Parameters
    ----------
    demand : GeoDataFrame
        Demand cells (final-year ``population``, ``district``).
    candidates : GeoDataFrame
        New-structure candidates with ``district``.
    base_sites : GeoDataFrame
        Sites kept from the base phase, with ``district``.
    radius_m : float
        Coverage radius of the set-covering count.
    coverage_target : float
        Population share (any operator) the final year must cover.
    mobile_broadband_per_100 : float
        Final-year mobile-broadband subscriptions per 100 people.
    capacity_settings : CapacitySettings
        Final-year capacity assumptions.
    time_limit_s : float
        Set-covering solver limit.

    Returns
    -------
    (DataFrame, dict)
        :func:`towerplan.capacity.capacity_sites_needed` table (index district) plus
        ``new_for_coverage``, ``new_for_capacity``, ``new_needed``; and the
        set-covering facts (coverage before/after, lower bound, optimality).
    """
    need = sites_needed_for_coverage(
        demand, candidates, base_sites, radius_m, coverage_target, time_limit_s=time_limit_s
    )
    pop = demand.groupby("district")["population"].sum()
    base = base_sites.groupby("district").size().reindex(pop.index).fillna(0).astype(np.int64)
    extra = need.selected.groupby("district").size().reindex(pop.index).fillna(0)
    table = capacity.capacity_sites_needed(
        pop,
        mobile_broadband_per_100,
        capacity_settings,
        existing_by_district=base,
        coverage_sites_by_district=base + extra.astype(np.int64),
    )
    table["new_for_coverage"] = extra.astype(np.int64)
    table["new_for_capacity"] = np.maximum(0, table["capacity_sites"] - base).astype(np.int64)
    table["new_needed"] = (table["sites_needed"] - base).clip(lower=0).astype(np.int64)
    facts = {
        "coverage_target": coverage_target,
        "coverage_radius_m": float(radius_m),
        "coverage_share_base": round(float(need.existing_fraction), 4),
        "coverage_share_with_need": round(float(need.covered_fraction), 4),
        "new_for_coverage": int(need.n_new_sites),
        "new_for_coverage_lower_bound": int(need.lower_bound),
        "new_for_coverage_optimal": bool(need.optimal),
        "set_cover_solver": need.solver_used,
    }
    return table, facts


def auto_budgets(
    need_by_district: pd.Series, years: list[int], base_year: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative-share split of a final-year need over the periods.

    Returns ``(budget per period, fraction of the span reached at each period end)``;
    budgets add up to ``need_by_district.sum()``.
    """
    frac = (np.asarray(years, float) - base_year) / (years[-1] - base_year)
    total = int(need_by_district.sum())
    cum = np.floor(total * frac + 1e-9).astype(np.int64)
    cum[-1] = total
    return np.diff(np.r_[0, cum]), frac


def plan_phases(
    demand: gpd.GeoDataFrame,
    candidates: gpd.GeoDataFrame,
    *,
    uncovered_share: np.ndarray,
    years: list[int],
    budgets: np.ndarray,
    base_year: int,
    demand_year: int,
    annual_growth: float,
    radius_m: float | str,
    operators: list[str],
    market_shares: list[float] | None = None,
    operator_uncovered: np.ndarray | None = None,
    max_tenants: int | None = None,
    cell_traffic_mbps: np.ndarray | None = None,
    min_open: pd.DataFrame | None = None,
    min_spacing_m: float = 0.0,
    capacity_weight: float = 0.01,
    mip_gap: float = 1e-3,
    max_nodes: int = 2000,
    time_limit_s: float = 600.0,
    first_number: int = 1,
) -> PhasingResult:
    """Place the new structures of each period (one multi-period model).

    Parameters
    ----------
    demand : GeoDataFrame
        Demand cells with ``population`` (of ``demand_year``), metric CRS.
    candidates : GeoDataFrame
        New-structure candidates (``cand_id``, ``district``), same CRS.
    uncovered_share : ndarray
        Per demand cell, the share of its population still to cover at the start (0-1).
    years : list of int
        End year of each period (increasing, after ``base_year``).
    budgets : ndarray of int
        New structures per period.
    base_year, demand_year : int
        Year the periods start from; year of ``demand['population']``.
    annual_growth : float
        Yearly population growth (scales the value of each period).
    radius_m : float or str
        Coverage radius, or the candidates' radius column.
    operators : list of str
        Every operator (tenants offered on the neutral-host structures).
    market_shares : list of float, optional
        Per operator (default equal): ranks the tenants when ``max_tenants`` is short.
    operator_uncovered : ndarray of bool, optional
        Demand cells x operators: the operator does not cover the cell at the start
        (default: all uncovered).
    max_tenants : int, optional
        Tenants per structure when the candidates have no ``max_tenants`` column
        (default: every operator).
    cell_traffic_mbps : ndarray, optional
        Busy-hour traffic per demand cell (final year) for the capacity tie-break.
    min_open : DataFrame, optional
        Minimum new structures per district (index) by period year (columns).
    min_spacing_m, capacity_weight, mip_gap, max_nodes, time_limit_s
        See :class:`towerplan.scenario.PhasingSettings`.
    first_number : int
        Number of the first ``site_id`` (``NEW-<n>``), after the base-phase sites.

    Returns
    -------
    PhasingResult
    """
    crs = require_metric(demand, "demand")
    require_metric(candidates, "candidates")
    if len(years) != len(budgets) or any(y <= base_year for y in years):
        raise ParameterError(
            msgid=N_("phasing: one budget per period; period years after base_year")
        )
    if "district" not in candidates.columns:
        raise ColumnError(
            msgid=N_("candidates: missing column 'district' (assign districts first)")
        )
    pop = demand["population"].to_numpy(float)
    radius = candidates[radius_m].to_numpy(float) if isinstance(radius_m, str) else radius_m
    A = coverage_matrix(points_xy(demand, "demand"), points_xy(candidates, "candidates"), radius)
    A = A.astype(np.float64).tocsr()
    starts = np.r_[base_year, years[:-1]]
    length = np.asarray(years) - starts
    growth = (1.0 + annual_growth) ** (np.asarray(years, float) - demand_year)
    W = np.outer(pop * np.asarray(uncovered_share, float), growth * length)
    V = np.zeros((len(candidates), len(years)))
    if cell_traffic_mbps is not None and capacity_weight > 0:
        near = np.asarray(A.T @ np.asarray(cell_traffic_mbps, float)).ravel()
        V = capacity_weight * np.outer(near, growth * length)
    group, mins = _district_minimums(candidates, min_open, years)
    conf = _conflicts(points_xy(candidates, "candidates"), min_spacing_m)
    prob = _phasing.PhasingProblem(A, W, V, np.asarray(budgets, np.int64), group, mins, conf)
    sol = _phasing.solve(prob, mip_gap=mip_gap, max_nodes=max_nodes, time_limit_s=time_limit_s)
    out = _built_sites(
        candidates,
        A,
        sol.build_period,
        population=pop,
        uncovered_share=uncovered_share,
        years=years,
        operators=operators,
        market_shares=market_shares,
        operator_uncovered=operator_uncovered,
        max_tenants=max_tenants,
        first_number=first_number,
        crs=crs,
    )
    logger.info(
        "phasing: %d structures over %s (%s), objective %.1f, gap %.4f",
        len(out),
        years,
        sol.method,
        sol.objective,
        sol.gap,
    )
    return PhasingResult(out, sol.objective, sol.upper_bound, sol.gap, sol.method, sol.log)


def _district_minimums(
    candidates: gpd.GeoDataFrame, min_open: pd.DataFrame | None, years: list[int]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """District index of each candidate and minimum new structures (district x period),
    or ``(None, None)`` without ``min_open``."""
    if min_open is None:
        return None, None
    names = pd.Index(sorted(map(str, candidates["district"].dropna().unique())))
    names = names.union(pd.Index(map(str, min_open.index)))
    group = names.get_indexer(candidates["district"].astype(str))
    return group, min_open.reindex(index=names, columns=years).fillna(0).to_numpy(np.int64)


def _built_sites(
    candidates: gpd.GeoDataFrame,
    A: Any,
    build_period: np.ndarray,
    *,
    population: np.ndarray,
    uncovered_share: np.ndarray,
    years: list[int],
    operators: list[str],
    market_shares: list[float] | None,
    operator_uncovered: np.ndarray | None,
    max_tenants: int | None,
    first_number: int,
    crs: Any,
) -> gpd.GeoDataFrame:
    """The built candidates as ``proposed_sites`` rows with ``build_year`` and tenants
    (in build order; see :func:`plan_phases` for the arguments)."""
    built = np.flatnonzero(build_period >= 0)
    built = built[np.lexsort((built, build_period[built]))]
    cand = candidates.iloc[built]
    bp = build_period[built]
    gain = np.asarray(A[:, built].T @ (population * uncovered_share)).ravel()
    limit = (
        cand["max_tenants"].to_numpy(np.int64)
        if "max_tenants" in cand.columns
        else np.full(len(built), len(operators) if max_tenants is None else max_tenants)
    )
    unc = (
        np.ones((len(population), len(operators)), bool)
        if operator_uncovered is None
        else operator_uncovered
    )
    shares = np.ones(len(operators)) if market_shares is None else np.asarray(market_shares, float)
    ten = tenants(A[:, built], population, unc, shares, limit)
    out = gpd.GeoDataFrame(
        {
            "site_id": [f"NEW-{first_number + i:04d}" for i in range(len(built))],
            "site_type": np.where(ten.sum(axis=1) > 1, "shared", "dedicated"),
            "operators": [";".join(np.asarray(operators)[row]) for row in ten],
            "n_tenants": ten.sum(axis=1).astype(np.int64),
            "district": cand["district"].to_numpy(),
            "cand_id": cand["cand_id"].to_numpy() if "cand_id" in cand.columns else built,
            "source": cand["source"].to_numpy() if "source" in cand.columns else "grid",
            "population_gain": gain,
            "build_year": np.asarray(years, dtype=np.int64)[bp],
        },
        geometry=list(cand.geometry.to_numpy()),
        crs=crs,
    )
    ll = out.geometry.to_crs("EPSG:4326")
    out["lon"], out["lat"] = ll.x.to_numpy().round(6), ll.y.to_numpy().round(6)
    return out[[*PROPOSED_COLUMNS, "build_year", "geometry"]]


def tenants(
    A: Any, population: np.ndarray, uncovered: np.ndarray, shares: np.ndarray, limit: np.ndarray
) -> np.ndarray:
    """Operators hosted by each structure: at most ``limit[j]`` (at least one).

    Parameters
    ----------
    A : sparse matrix
        Demand cells x structures coverage.
    population : ndarray
        Per demand cell.
    uncovered : ndarray of bool
        Demand cells x operators: the operator does not cover the cell yet.
    shares : ndarray
        Market share per operator.
    limit : ndarray of int
        Tenant limit per structure.

    Returns
    -------
    ndarray of bool
        Structures x operators; row ``j`` holds the ``limit[j]`` operators of largest
        ``share x uncovered population within reach`` (ties: larger share, then order).
    """
    gain = np.asarray(A.T @ (population[:, None] * uncovered)) * shares[None, :]
    n_ops = len(shares)
    keys = np.arange(n_ops)
    out = np.zeros(gain.shape, dtype=bool)
    for j in range(len(gain)):
        rank = np.lexsort((keys, -shares, -gain[j]))
        out[j, rank[: max(1, min(int(limit[j]), n_ops))]] = True
    return out


def away_from(
    candidates: gpd.GeoDataFrame, sites: gpd.GeoDataFrame, min_spacing_m: float
) -> gpd.GeoDataFrame:
    """Grid and user candidates at least ``min_spacing_m`` from every site (new structures)."""
    keep = candidates["source"].isin(["grid", "user"]).to_numpy().copy()
    if len(sites) and min_spacing_m > 0:
        d, _ = cKDTree(points_xy(sites, "sites")).query(points_xy(candidates, "candidates"))
        keep &= d >= min_spacing_m
    return candidates[keep]


def phasing_table(
    districts: pd.Series,
    existing_by_district: pd.Series,
    proposed: pd.DataFrame,
    years: list[int],
) -> pd.DataFrame:
    """Sites per district per build year (``phasing.csv``).

    Columns ``district``, ``year``, ``new_sites`` (built in that year's period),
    ``cumulative_new``, ``total_sites`` (existing + cumulative new); one row per
    district and year plus ``district = "city"`` rows.  ``new_sites`` sums to
    ``len(proposed)`` over districts and years.
    """
    names = list(map(str, districts))
    dist = proposed["district"].astype(str)
    built = proposed.groupby([dist, "build_year"]).size()
    city = proposed.groupby("build_year").size()
    rows = []
    for name in [*names, "city"]:
        cum = 0
        ex = int(
            existing_by_district.sum() if name == "city" else existing_by_district.get(name, 0)
        )
        for y in years:
            n = int(city.get(y, 0) if name == "city" else built.get((name, y), 0))
            cum += n
            rows.append((name, int(y), n, cum, ex + cum))
    return pd.DataFrame(
        rows, columns=["district", "year", "new_sites", "cumulative_new", "total_sites"]
    )
