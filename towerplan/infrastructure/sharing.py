"""Infrastructure sharing: co-location options, the sharing rate and a cost model.

Three questions an operator or a planner asks of a tower plan:

1. *Where can I co-locate instead of building?*  :func:`colocation_candidates`
   lists, for every proposed site and every operator on it, the existing
   structures of **other** operators within the co-location distance (by the
   urban/rural type of the site's district) that still have a free tenancy.
   Layer ``sharing_candidates``.
2. *Does the plan reach the sharing target?*  :func:`sharing_rate` is the share
   of structures with two or more tenants (the plan's *tỷ lệ sử dụng chung cơ sở
   hạ tầng*); :func:`sharing_rates` gives it before (existing structures) and
   after the plan (existing + proposed).  :func:`cheapest_colocations_to_target`
   finds the cheapest set of co-locations that reaches the target (an integer
   programme, :mod:`towerplan.infrastructure._colocation`, solved through the one HiGHS
   wrapper of :mod:`towerplan.siting._highs` within deterministic work limits).
3. *What does each strategy cost?*  :func:`cost_model` (per location, per
   strategy) and :func:`plan_capex` (the new-site capex of a plan), with every
   unit cost a scenario parameter in VND (:class:`~towerplan.scenario.UnitCosts`).

Layer ``sharing_candidates`` (LineString proposed site -> host structure):
``site_id``, ``site_type``, ``operator``, ``host_site_id``, ``host_operator``,
``distance_m``, ``tenants_now``, ``tenants_max``, ``district``,
``district_type``, ``estimated_saving_vnd``, ``rank`` (1 = nearest host for
that site and operator).

Layer ``colocation_moves`` (from :func:`cheapest_colocations_to_target`):
``move_type`` (``relocate`` | ``add_tenant``), ``site_id`` (proposed site,
empty for ``add_tenant``), ``operator``, ``host_site_id``, ``host_operator``,
``distance_m``, ``outlay_vnd``, ``saving_vnd``, ``net_cost_vnd``, ``district``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy.spatial import cKDTree
from shapely import linestrings

from towerplan._validate import (
    assign_district,
    points_xy,
    require_columns,
    require_metric,
    require_same_crs,
)
from towerplan.errors import N_, ColumnError, EmptyInputError, ParameterError, warn_user
from towerplan.infrastructure import _colocation
from towerplan.scenario import ColocationDistance, UnitCosts

logger = logging.getLogger(__name__)

__all__ = [
    "STRATEGIES",
    "ColocationPlan",
    "cheapest_colocations_to_target",
    "colocation_candidates",
    "cost_model",
    "district_columns",
    "n_tenants",
    "plan_capex",
    "sharing_rate",
    "sharing_rates",
    "summary_keys",
]

STRATEGIES = ("new_dedicated", "new_shared", "colocation", "active_ran_sharing")
"""Strategies of :func:`cost_model`, in table order."""

_CANDIDATE_COLUMNS = [
    "site_id",
    "site_type",
    "operator",
    "host_site_id",
    "host_operator",
    "distance_m",
    "tenants_now",
    "tenants_max",
    "district",
    "district_type",
    "estimated_saving_vnd",
    "rank",
]
_MOVE_COLUMNS = [
    "move_type",
    "site_id",
    "operator",
    "host_site_id",
    "host_operator",
    "distance_m",
    "outlay_vnd",
    "saving_vnd",
    "net_cost_vnd",
    "district",
]


# --------------------------------------------------------------------------- cost model


def check_unit_costs(unit_costs: UnitCosts) -> None:
    """Raise :class:`ParameterError` when a unit cost is negative or not finite.

    Parameters
    ----------
    unit_costs : UnitCosts
        Costs to check.
    """
    for key, value in dataclasses.asdict(unit_costs).items():
        if not np.isfinite(value) or value < 0:
            raise ParameterError(
                msgid=N_(
                    "unit_costs.{key} = {value}: unit costs must be finite and >= 0 VND; fix "
                    "sharing.unit_costs_vnd in the scenario"
                ),
                key=key,
                value=value,
            )


def cost_model(
    n_operators: int, unit_costs: UnitCosts, opex_years: float | None = None
) -> pd.DataFrame:
    """Cost of serving ``n_operators`` operators at one location, per strategy.

    With ``n`` operators, unit costs ``C_ded`` (new_dedicated_site), ``C_sh``
    (new_shared_site), ``C_col`` (colocation), ``C_ran`` (active_ran_sharing),
    ``O`` (annual_tenant_opex) and ``Y`` years of opex (``opex_years``):

    ==================== ============ ================ ==============
    strategy             structures   capex            opex per year
    ==================== ============ ================ ==============
    new_dedicated        n            n * C_ded        n * O
    new_shared           1            C_sh             n * O
    colocation           0            n * C_col        n * O
    active_ran_sharing   0            n * C_ran        n * O
    ==================== ============ ================ ==============

    * ``new_dedicated``: every operator builds its own structure.
    * ``new_shared``: one new structure built for all ``n`` tenants
      (``C_sh`` is the whole shared structure, not a per-tenant price).
    * ``colocation``: every operator installs its own equipment on an
      existing structure of another operator (passive sharing).
    * ``active_ran_sharing``: every operator rides on the radio network of a
      host already on an existing structure (``C_ran`` per guest operator).

    ``annual_tenant_opex`` is charged per operator served in every strategy
    (site rent, power and maintenance of its equipment), so it does not change
    the ranking; it makes ``total_vnd = capex_vnd + Y * opex_vnd_per_year`` a
    life-cycle figure.  ``per_operator_vnd = total_vnd / n`` and
    ``saving_vs_dedicated_vnd`` = total of ``new_dedicated`` - total.

    Parameters
    ----------
    n_operators : int
        Operators to serve at the location (>= 1).
    unit_costs : UnitCosts
        Unit costs in VND (scenario ``sharing.unit_costs_vnd``).
    opex_years : float, optional
        Years of opex in the total; default ``unit_costs.opex_years``.

    Returns
    -------
    pandas.DataFrame
        Index ``strategy`` (:data:`STRATEGIES`); columns ``structures``,
        ``capex_vnd``, ``opex_vnd_per_year``, ``total_vnd``,
        ``per_operator_vnd``, ``saving_vs_dedicated_vnd``.

    Raises
    ------
    ParameterError
        ``n_operators`` < 1, a negative unit cost or negative ``opex_years``.
    """
    check_unit_costs(unit_costs)
    n = int(n_operators)
    if n < 1:
        raise ParameterError(
            msgid=N_("n_operators = {n_operators}: serve at least 1 operator"),
            n_operators=n_operators,
        )
    years = unit_costs.opex_years if opex_years is None else float(opex_years)
    if not np.isfinite(years) or years < 0:
        raise ParameterError(
            msgid=N_("opex_years = {years}: must be a number of years >= 0"),
            years=years,
        )
    uc = unit_costs
    opex = n * uc.annual_tenant_opex
    rows = {
        "new_dedicated": (n, n * uc.new_dedicated_site),
        "new_shared": (1, uc.new_shared_site),
        "colocation": (0, n * uc.colocation),
        "active_ran_sharing": (0, n * uc.active_ran_sharing),
    }
    df = pd.DataFrame(
        {
            "structures": [rows[s][0] for s in STRATEGIES],
            "capex_vnd": [float(rows[s][1]) for s in STRATEGIES],
            "opex_vnd_per_year": [float(opex)] * len(STRATEGIES),
        },
        index=pd.Index(STRATEGIES, name="strategy"),
    )
    df["total_vnd"] = df["capex_vnd"] + years * df["opex_vnd_per_year"]
    df["per_operator_vnd"] = df["total_vnd"] / n
    dedicated_total = float(df["total_vnd"].to_numpy()[0])  # STRATEGIES[0] == "new_dedicated"
    df["saving_vs_dedicated_vnd"] = dedicated_total - df["total_vnd"]
    return df


def plan_capex(
    n_new_dedicated: int,
    n_new_shared: int,
    unit_costs: UnitCosts,
    *,
    n_colocations: int = 0,
    n_ran_sharing: int = 0,
) -> float:
    """Capex (VND) of a plan's new mobile infrastructure.

    ``n_new_dedicated * C_ded + n_new_shared * C_sh + n_colocations * C_col
    + n_ran_sharing * C_ran`` (a new shared structure is priced whole,
    whatever its number of tenants; see :func:`cost_model`).

    Parameters
    ----------
    n_new_dedicated : int
        New single-operator structures.
    n_new_shared : int
        New shared structures.
    unit_costs : UnitCosts
        Unit costs (VND).
    n_colocations : int
        Tenants added to existing structures.
    n_ran_sharing : int
        RAN-sharing agreements.

    Returns
    -------
    float
        Capex (VND).

    Raises
    ------
    ParameterError
        A negative count or unit cost.
    """
    check_unit_costs(unit_costs)
    counts = {
        "n_new_dedicated": n_new_dedicated,
        "n_new_shared": n_new_shared,
        "n_colocations": n_colocations,
        "n_ran_sharing": n_ran_sharing,
    }
    for k, v in counts.items():
        if v < 0:
            raise ParameterError(
                msgid=N_("{k} = {v}: counts must be >= 0"),
                k=k,
                v=v,
            )
    uc = unit_costs
    return float(
        n_new_dedicated * uc.new_dedicated_site
        + n_new_shared * uc.new_shared_site
        + n_colocations * uc.colocation
        + n_ran_sharing * uc.active_ran_sharing
    )


# --------------------------------------------------------------------------- sharing rate


def _split_ops(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return [s.strip() for s in str(value).split(";") if s.strip()]


def n_tenants(structures: pd.DataFrame, name: str = "structures") -> np.ndarray:
    """Tenants per structure: the ``n_tenants`` column, else the count of ``operators``.

    Parameters
    ----------
    structures : DataFrame
        One row per structure.
    name : str
        Name of the layer, used in error messages.

    Returns
    -------
    ndarray of int
        Tenants per structure.

    Raises
    ------
    ColumnError
        Neither column present, or a count below 1.
    """
    if "n_tenants" in structures.columns:
        counts = pd.to_numeric(structures["n_tenants"], errors="coerce").to_numpy(dtype=float)
    elif "operators" in structures.columns:
        counts = np.array([len(_split_ops(v)) for v in structures["operators"]], dtype=float)
    else:
        raise ColumnError(
            msgid=N_(
                "{name}: needs an 'n_tenants' or an 'operators' (';'-separated) column to "
                "count tenants; add one"
            ),
            name=name,
        )
    bad = ~np.isfinite(counts) | (counts < 1)
    if bad.any():
        raise ColumnError(
            msgid=N_(
                "{name}: {n_bad} structures have no valid tenant count (n_tenants must be >= "
                "1); fix the 'n_tenants' / 'operators' columns"
            ),
            name=name,
            n_bad=int(bad.sum()),
        )
    return counts.astype(int)


def sharing_rate(structures: pd.DataFrame) -> float:
    """Share of structures with two or more tenants (0-1).

    Parameters
    ----------
    structures : DataFrame or GeoDataFrame
        One row per structure (tower, rooftop), with ``n_tenants`` or
        ``operators`` (``;``-separated).

    Returns
    -------
    float
        Shared structures / all structures.

    Raises
    ------
    EmptyInputError
        No structures.
    """
    if len(structures) == 0:
        raise EmptyInputError(
            msgid=N_("structures: no rows; the sharing rate needs at least one structure")
        )
    t = n_tenants(structures)
    return float((t >= 2).sum() / len(t))


def sharing_rates(existing: pd.DataFrame, proposed: pd.DataFrame) -> tuple[float, float]:
    """Sharing rate before (existing structures) and after the plan (existing + proposed).

    Every proposed site is one new structure with as many tenants as its
    ``operators``.

    Parameters
    ----------
    existing : DataFrame
        Existing structures.
    proposed : DataFrame
        Proposed sites (``operators``).

    Returns
    -------
    tuple of float
        Rate before and after.
    """
    te = n_tenants(existing, "existing_sites")
    tp = n_tenants(proposed, "proposed_sites") if len(proposed) else np.zeros(0, dtype=int)
    if len(te) == 0:
        raise EmptyInputError(
            msgid=N_("existing_sites: no rows; the sharing rate needs structures")
        )
    before = float((te >= 2).sum() / len(te))
    allt = np.concatenate([te, tp])
    after = float((allt >= 2).sum() / len(allt))
    return before, after


# --------------------------------------------------------------------------- candidates


def _distance_table(distance_m: Mapping[str, float] | ColocationDistance) -> dict[str, float]:
    if isinstance(distance_m, ColocationDistance):
        d = {"urban": distance_m.urban, "rural": distance_m.rural}
    else:
        d = {str(k): float(v) for k, v in distance_m.items()}
    for key in ("urban", "rural"):
        if key not in d:
            raise ParameterError(
                msgid=N_(
                    "distance_m: missing the '{key}' co-location distance; give {{'urban': m,"
                    " 'rural': m}}"
                ),
                key=key,
            )
        if not np.isfinite(d[key]) or d[key] < 0:
            raise ParameterError(
                msgid=N_("distance_m['{key}'] = {distance}: must be a distance >= 0 m"),
                key=key,
                distance=d[key],
            )
    return d


def _district_type_of(
    sites: gpd.GeoDataFrame, districts: gpd.GeoDataFrame | None, name: str
) -> tuple[pd.Series, pd.Series]:
    """District name and type of each site (by column, else by :func:`assign_district`)."""
    none = pd.Series(None, index=sites.index, dtype=object)
    district = sites["district"].astype(object) if "district" in sites.columns else none
    dtype = sites["district_type"].astype(object) if "district_type" in sites.columns else none
    if districts is not None and len(districts):
        require_columns(districts, ["district", "district_type"], "districts")
        lut = dict(zip(districts["district"], districts["district_type"], strict=False))
        dtype = dtype.where(dtype.notna(), district.map(lut))
        todo = dtype.isna() | district.isna()
        if todo.any():
            require_same_crs(sites, districts, name, "districts")
            pts = sites.loc[todo]
            district = district.where(~todo, assign_district(pts, districts, name=name))
            found = assign_district(pts, districts, column="district_type", name=name)
            dtype = dtype.where(dtype.notna(), found.reindex(sites.index))
    return district, dtype


def colocation_candidates(
    proposed: gpd.GeoDataFrame,
    existing: gpd.GeoDataFrame,
    *,
    districts: gpd.GeoDataFrame | None = None,
    distance_m: Mapping[str, float] | ColocationDistance | None = None,
    unit_costs: UnitCosts | None = None,
) -> gpd.GeoDataFrame:
    """Existing structures where an operator of a proposed site could co-locate instead.

    For every proposed site ``i`` and every operator ``o`` in its
    ``operators``, every existing structure ``j`` is a candidate host when

    * ``distance(i, j) <= distance_m[district_type of i]``,
    * ``j``'s host ``operator`` is not ``o`` and ``o`` is not already among
      ``j``'s ``operators`` (a host of **another** operator),
    * ``n_tenants_j < max_tenants_j`` (free tenancy).

    ``estimated_saving_vnd`` is the operator's avoided share of the new build
    minus the co-location cost: ``C_ded - C_col`` for a dedicated site, and
    ``C_sh / k - C_col`` for a shared site with ``k`` tenants (cost split
    equally between tenants; a negative value means co-locating costs more).

    Parameters
    ----------
    proposed : GeoDataFrame
        Proposed sites (``site_id``, ``operators``; ``site_type`` and
        ``district`` / ``district_type`` used when present).
    existing : GeoDataFrame
        Existing structures (``site_id``, ``operator``, ``n_tenants``,
        ``max_tenants``; ``operators`` when present).
    districts : GeoDataFrame, optional
        ``district``, ``district_type``: the type of each proposed site's
        district picks the distance.  Sites whose type stays unknown use the
        smaller distance (with a warning).
    distance_m : mapping or ColocationDistance, optional
        ``{'urban': m, 'rural': m}``; default :class:`ColocationDistance`.
    unit_costs : UnitCosts, optional
        Unit costs in VND; default :class:`UnitCosts`.

    Returns
    -------
    GeoDataFrame
        Layer ``sharing_candidates`` (module docstring), sorted by site,
        operator and distance, in the CRS of the inputs.

    Raises
    ------
    CRSError, ColumnError, ParameterError
    """
    name_p, name_e = "proposed_sites", "existing_sites"
    crs = require_metric(proposed, name_p)
    require_metric(existing, name_e)
    require_same_crs(proposed, existing, name_p, name_e)
    require_columns(proposed, ["site_id", "operators"], name_p)
    require_columns(existing, ["site_id", "operator", "max_tenants"], name_e)
    dist = _distance_table(distance_m if distance_m is not None else ColocationDistance())
    uc = unit_costs if unit_costs is not None else UnitCosts()
    check_unit_costs(uc)

    empty = gpd.GeoDataFrame(
        {c: pd.Series(dtype=object) for c in _CANDIDATE_COLUMNS},
        geometry=gpd.GeoSeries([], crs=crs),
        crs=crs,
    )
    if len(proposed) == 0 or len(existing) == 0:
        return empty

    district, dtype = _district_type_of(proposed, districts, name_p)
    radius = _colocation_radius(dtype, dist, name_p)
    pxy = points_xy(proposed, "proposed")
    exy = points_xy(existing, "existing")
    t_now = n_tenants(existing, name_e)
    t_max = pd.to_numeric(existing["max_tenants"], errors="coerce").to_numpy(dtype=float)
    host_op = existing["operator"].astype(str).to_numpy()
    host_ops = (
        [set(_split_ops(v)) | {h} for v, h in zip(existing["operators"], host_op, strict=True)]
        if "operators" in existing.columns
        else [{h} for h in host_op]
    )
    free = t_now < t_max

    tree = cKDTree(exy)
    neigh = tree.query_ball_point(pxy, r=radius)
    p_ops = [_split_ops(v) for v in proposed["operators"]]
    p_type = (
        proposed["site_type"].astype(str).to_numpy()
        if "site_type" in proposed.columns
        else np.where([len(o) >= 2 for o in p_ops], "shared", "dedicated")
    )
    rows = _colocation_rows(neigh, p_ops, host_op, host_ops, free, pxy, exy, uc)
    if not rows:
        return empty
    gdf = _candidates_frame(
        rows, proposed, existing, p_type, host_op, t_now, t_max, district, dtype, pxy, exy
    )
    logger.info(
        "co-location: %d options for %d of %d proposed sites",
        len(gdf),
        gdf["site_id"].nunique(),
        len(proposed),
    )
    return gdf


def _colocation_radius(dtype: pd.Series, dist: dict[str, float], name: str) -> np.ndarray:
    """Co-location search radius per site by district type (unknown: the smaller one)."""
    unknown = dtype.isna() | ~dtype.isin(["urban", "rural"])
    if unknown.any():
        warn_user(
            logger,
            N_(
                "{name}: {n} sites have no known district type (urban/rural); they use the "
                "smaller co-location distance {d} m. Pass districts= or fill 'district_type' "
                "to fix"
            ),
            stacklevel=3,
            name=name,
            n=int(unknown.sum()),
            d=min(dist["urban"], dist["rural"]),
        )
    return np.where(
        dtype.eq("urban"),
        dist["urban"],
        np.where(dtype.eq("rural"), dist["rural"], min(dist["urban"], dist["rural"])),
    ).astype(float)


def _colocation_rows(
    neigh: Any,
    p_ops: list[list[str]],
    host_op: np.ndarray,
    host_ops: list[set[str]],
    free: np.ndarray,
    pxy: np.ndarray,
    exy: np.ndarray,
    uc: UnitCosts,
) -> list[tuple[Any, ...]]:
    """(proposed row, host row, operator, distance, saving) of every admissible option."""
    rows: list[tuple[Any, ...]] = []
    for i, js in enumerate(neigh):
        if not js:
            continue
        k = max(len(p_ops[i]), 1)
        own_cost = uc.new_dedicated_site if k == 1 else uc.new_shared_site / k
        saving = own_cost - uc.colocation
        for j in js:
            if not free[j]:
                continue
            d = float(np.hypot(*(pxy[i] - exy[j])))
            for op in p_ops[i]:
                if op == host_op[j] or op in host_ops[j]:
                    continue
                rows.append((i, j, op, d, saving))
    return rows


def _candidates_frame(
    rows: list[tuple[Any, ...]],
    proposed: gpd.GeoDataFrame,
    existing: gpd.GeoDataFrame,
    p_type: np.ndarray,
    host_op: np.ndarray,
    t_now: np.ndarray,
    t_max: np.ndarray,
    district: pd.Series,
    dtype: pd.Series,
    pxy: np.ndarray,
    exy: np.ndarray,
) -> gpd.GeoDataFrame:
    """The ``sharing_candidates`` layer from the option rows, ranked by distance."""
    arr_i = np.array([r[0] for r in rows], dtype=int)
    arr_j = np.array([r[1] for r in rows], dtype=int)
    out = pd.DataFrame(
        {
            "site_id": proposed["site_id"].to_numpy()[arr_i],
            "site_type": p_type[arr_i],
            "operator": [r[2] for r in rows],
            "host_site_id": existing["site_id"].to_numpy()[arr_j],
            "host_operator": host_op[arr_j],
            "distance_m": [r[3] for r in rows],
            "tenants_now": t_now[arr_j],
            "tenants_max": t_max[arr_j].astype(int),
            "district": district.to_numpy()[arr_i],
            "district_type": dtype.to_numpy()[arr_i],
            "estimated_saving_vnd": [float(r[4]) for r in rows],
        }
    )
    geom = linestrings(
        np.stack([pxy[arr_i], exy[arr_j]], axis=1)  # (n, 2 points, 2 coords)
    )
    gdf = gpd.GeoDataFrame(out, geometry=geom, crs=proposed.crs)
    gdf = gdf.sort_values(["site_id", "operator", "distance_m"], kind="stable").reset_index(
        drop=True
    )
    gdf["rank"] = gdf.groupby(["site_id", "operator"]).cumcount() + 1
    return gdf[[*_CANDIDATE_COLUMNS, "geometry"]]


# --------------------------------------------------------------------------- optimisation


@dataclass(frozen=True)
class ColocationPlan:
    """Result of :func:`cheapest_colocations_to_target`.

    Attributes
    ----------
    moves : GeoDataFrame
        Layer ``colocation_moves`` (module docstring).
    rate_plan : float
        Sharing rate of existing + proposed structures without the moves.
    rate_after : float
        Sharing rate with the moves.
    target : float
        Target rate.
    reached : bool
        ``rate_after >= target``.
    n_structures, n_shared : int
        Structures and shared structures after the moves.
    outlay_vnd, saving_vnd, net_cost_vnd : float
        Co-location spend, avoided new builds, and ``outlay - saving``.
    status : str
        ``"target already met"``, ``"optimal"``, ``"node limit"``, ``"time limit"`` or
        ``"target unreachable: best possible"``.
    """

    moves: gpd.GeoDataFrame
    rate_plan: float
    rate_after: float
    target: float
    reached: bool
    n_structures: int
    n_shared: int
    outlay_vnd: float
    saving_vnd: float
    net_cost_vnd: float
    status: str

    @property
    def n_relocations(self) -> int:
        """Dedicated new builds replaced by a co-location."""
        return int((self.moves["move_type"] == "relocate").sum())

    @property
    def n_added_tenants(self) -> int:
        """Tenants added to existing single-tenant structures."""
        return int((self.moves["move_type"] == "add_tenant").sum())


def _add_tenant_operator(
    existing: gpd.GeoDataFrame,
    proposed: gpd.GeoDataFrame,
    hosts: np.ndarray,
    host_ops: list[set[str]],
) -> tuple[list[str], np.ndarray]:
    """For each host, the operator not on it whose nearest own structure is farthest."""
    exy = points_xy(existing, "existing")
    all_ops: dict[str, list[np.ndarray]] = {}
    for k, ops in enumerate(host_ops):
        for o in ops:
            all_ops.setdefault(o, []).append(exy[k])
    if len(proposed):
        pxy = points_xy(proposed, "proposed")
        for k, v in enumerate(proposed["operators"]):
            for o in _split_ops(v):
                all_ops.setdefault(o, []).append(pxy[k])
    names = sorted(all_ops)
    if len(names) < 2:
        return [""] * len(hosts), np.zeros(len(hosts))
    dist = np.full((len(hosts), len(names)), -1.0)
    for c, o in enumerate(names):
        d, _ = cKDTree(np.asarray(all_ops[o])).query(exy[hosts])
        for r, h in enumerate(hosts):
            if o not in host_ops[h]:
                dist[r, c] = d[r]
    best = dist.argmax(axis=1)
    chosen = [names[b] if dist[r, b] >= 0 else "" for r, b in enumerate(best)]
    return chosen, dist[np.arange(len(hosts)), best]


@dataclass(frozen=True)
class _Options:
    """Co-location options of a plan: the matrix-level problem and what maps it back."""

    problem: _colocation.ColocationProblem
    reloc: pd.DataFrame
    add_ops: list[str]
    host_op: np.ndarray
    te: np.ndarray
    rate_plan: float


def _colocation_options(
    existing: gpd.GeoDataFrame,
    proposed: gpd.GeoDataFrame,
    candidates: gpd.GeoDataFrame,
    t: float,
    allow_add_tenant: bool,
) -> _Options:
    """Relocation options (dedicated proposed sites only) and add-tenant options."""
    te = n_tenants(existing, "existing_sites")
    tmax = pd.to_numeric(existing["max_tenants"], errors="coerce").to_numpy(dtype=float)
    tp = n_tenants(proposed, "proposed_sites") if len(proposed) else np.zeros(0, dtype=int)
    s0 = len(te) + len(tp)
    m0 = int((te >= 2).sum() + (tp >= 2).sum())
    if s0 == 0:
        raise EmptyInputError(msgid=N_("existing_sites and proposed_sites: no structures at all"))
    host_op = existing["operator"].astype(str).to_numpy()
    host_ops = (
        [set(_split_ops(v)) | {h} for v, h in zip(existing["operators"], host_op, strict=True)]
        if "operators" in existing.columns
        else [{h} for h in host_op]
    )
    sid_to_j = {s: j for j, s in enumerate(existing["site_id"].to_numpy())}
    reloc = pd.DataFrame(columns=["site_id", "operator", "host_site_id", "distance_m"])
    if len(candidates) and len(proposed):
        ptype = (
            proposed.set_index("site_id")["site_type"]
            if "site_type" in proposed.columns
            else pd.Series(np.where(tp >= 2, "shared", "dedicated"), index=proposed["site_id"])
        )
        ded_ids = set(ptype.index[(ptype == "dedicated").to_numpy() & (tp == 1)])
        c = candidates[candidates["site_id"].isin(ded_ids)]
        reloc = c[["site_id", "operator", "host_site_id", "distance_m"]].reset_index(drop=True)
    reloc_j = np.array([sid_to_j[h] for h in reloc["host_site_id"]], dtype=np.int64)
    _, site_idx = np.unique(reloc["site_id"].astype(str).to_numpy(), return_inverse=True)
    cap = np.maximum(tmax - te, 0).astype(int)
    single = np.flatnonzero((te == 1) & (cap >= 1))
    add_ops: list[str] = []
    add_hosts = np.zeros(0, dtype=np.int64)
    if allow_add_tenant and len(single):
        add_ops, _ = _add_tenant_operator(existing, proposed, single, host_ops)
        keep = np.array([o != "" for o in add_ops], dtype=bool)
        add_hosts = single[keep]
        add_ops = [o for o, k in zip(add_ops, keep, strict=True) if k]
    prob = _colocation.ColocationProblem(
        site=np.asarray(site_idx, dtype=np.int64).ravel(),
        reloc_host=reloc_j,
        reloc_dist=reloc["distance_m"].to_numpy(dtype=float),
        add_host=np.asarray(add_hosts, dtype=np.int64),
        single=single,
        free=cap,
        s0=s0,
        m0=m0,
        target=t,
    )
    return _Options(prob, reloc, add_ops, host_op, te, m0 / s0)


def _plan_from_moves(
    opts: _Options,
    existing: gpd.GeoDataFrame,
    proposed: gpd.GeoDataFrame,
    xsel: np.ndarray,
    asel: np.ndarray,
    status: str,
    uc: UnitCosts,
    crs: Any,
) -> ColocationPlan:
    """The :class:`ColocationPlan` of the chosen relocations ``xsel`` and added tenants ``asel``."""
    prob, reloc, te = opts.problem, opts.reloc, opts.te
    xs = np.flatnonzero(xsel)
    as_ = np.flatnonzero(asel)
    gained = np.zeros(len(te), dtype=int)
    np.add.at(gained, prob.reloc_host[xs], 1)
    np.add.at(gained, prob.add_host[as_], 1)
    m = prob.m0 + int(((te == 1) & (gained >= 1)).sum())
    s = prob.s0 - len(xs)
    rate = m / s if s else 0.0
    exy = points_xy(existing, "existing")
    pmap = dict(zip(proposed["site_id"], proposed.geometry, strict=False)) if len(proposed) else {}
    pdist = (
        dict(zip(proposed["site_id"], proposed["district"], strict=False))
        if len(proposed) and "district" in proposed.columns
        else {}
    )
    edist = existing["district"].to_numpy() if "district" in existing.columns else None
    e_sid = existing["site_id"].to_numpy()
    recs: list[dict[str, Any]] = []
    geoms = []
    for k in xs:
        j = int(prob.reloc_host[k])
        sid = reloc["site_id"].iat[int(k)]
        recs.append(
            {
                "move_type": "relocate",
                "site_id": sid,
                "operator": reloc["operator"].iat[int(k)],
                "host_site_id": e_sid[j],
                "host_operator": opts.host_op[j],
                "distance_m": float(prob.reloc_dist[k]),
                "outlay_vnd": uc.colocation,
                "saving_vnd": uc.new_dedicated_site,
                "net_cost_vnd": uc.colocation - uc.new_dedicated_site,
                "district": pdist.get(sid, edist[j] if edist is not None else None),
            }
        )
        pt = pmap[sid]
        geoms.append(linestrings([[pt.x, pt.y], list(exy[j])]))
    for k in as_:
        j = int(prob.add_host[k])
        recs.append(
            {
                "move_type": "add_tenant",
                "site_id": "",
                "operator": opts.add_ops[k],
                "host_site_id": e_sid[j],
                "host_operator": opts.host_op[j],
                "distance_m": 0.0,
                "outlay_vnd": uc.colocation,
                "saving_vnd": 0.0,
                "net_cost_vnd": uc.colocation,
                "district": edist[j] if edist is not None else None,
            }
        )
        geoms.append(existing.geometry.iat[j])
    if recs:
        moves = gpd.GeoDataFrame(pd.DataFrame(recs, columns=_MOVE_COLUMNS), geometry=geoms, crs=crs)
    else:
        moves = gpd.GeoDataFrame(
            {c: pd.Series(dtype=object) for c in _MOVE_COLUMNS},
            geometry=gpd.GeoSeries([], crs=crs),
            crs=crs,
        )
    outlay = float(moves["outlay_vnd"].sum()) if recs else 0.0
    saving = float(moves["saving_vnd"].sum()) if recs else 0.0
    return ColocationPlan(
        moves=moves,
        rate_plan=opts.rate_plan,
        rate_after=rate,
        target=prob.target,
        reached=rate >= prob.target - 1e-12,
        n_structures=s,
        n_shared=m,
        outlay_vnd=outlay,
        saving_vnd=saving,
        net_cost_vnd=outlay - saving,
        status=status,
    )


def cheapest_colocations_to_target(
    proposed: gpd.GeoDataFrame,
    existing: gpd.GeoDataFrame,
    candidates: gpd.GeoDataFrame,
    target: float,
    unit_costs: UnitCosts | None = None,
    objective: Literal["outlay", "net_cost"] = "outlay",
    allow_add_tenant: bool = True,
    time_limit_s: float = math.inf,
) -> ColocationPlan:
    """Cheapest set of co-locations that lifts the sharing rate to ``target``.

    **Moves.**  (a) ``relocate``: the operator of a proposed *dedicated* site
    co-locates on an existing structure of another operator listed in
    ``candidates`` (the new build is cancelled): one structure fewer, and the
    host becomes shared if it had one tenant.  (b) ``add_tenant`` (when
    ``allow_add_tenant``): another operator adds a tenancy (passive
    co-location) on an existing single-tenant structure with free capacity,
    which becomes shared; the tenant named is the operator whose nearest own
    structure is farthest from it (it gains most).  Moving a tenant off a
    proposed *shared* site is never useful (it un-shares that site or at best
    equals an ``add_tenant``) and is not modelled.

    **Integer programme.**  With ``S0`` structures and ``M0`` shared ones after
    the plan, binaries ``x_ij`` (relocate proposed site ``i`` onto host ``j``),
    ``a_j`` (add a tenant to single-tenant host ``j``) and ``y_j`` (single-tenant
    host ``j`` becomes shared)::

        min  sum c_ij x_ij + sum c_a a_j
        s.t. sum_j x_ij <= 1                         (each site moves once)
             sum_i x_ij + a_j <= max_j - n_j         (free tenancy of j)
             y_j <= sum_i x_ij + a_j                 (j shared only if it gained a tenant)
             sum_j y_j + t * sum_ij x_ij >= t*S0 - M0  (rate (M0+sum y)/(S0-sum x) >= t)

    The rate constraint is the linearised ``(M0 + Σy) / (S0 - Σx) >= t``.
    Solved exactly with HiGHS (:mod:`towerplan.infrastructure._colocation`); a greedy is not
    used because which sites can reach which hosts makes it a bipartite
    b-matching where greedy choices are not optimal in general.

    **Objective.**  ``"outlay"`` (default): every move costs ``C_col``, so the
    least co-location spend is the fewest moves - the smallest change to the
    coverage-optimised plan; ties are broken in favour of relocations (they
    also avoid a new build), then of nearer hosts.
    ``"net_cost"``: ``c_ij = C_col - C_ded`` (avoided build), ``c_a = C_col``;
    with the default unit costs every relocation *saves* money, so this
    relocates every dedicated site that has a candidate host, whatever the
    target - use it to see the full saving potential.

    If the target cannot be reached, the moves that maximise the rate are
    returned with ``reached=False`` and a warning.

    Parameters
    ----------
    proposed, existing : GeoDataFrame
        As in :func:`colocation_candidates`.
    candidates : GeoDataFrame
        :func:`colocation_candidates` output.
    target : float
        Target sharing rate (0-1), usually ``scenario.sharing.target_min``.
    unit_costs : UnitCosts, optional
    objective : {"outlay", "net_cost"}
    allow_add_tenant : bool
    time_limit_s : float
        Wall-clock safety stop only (default none; the MILP is bounded by nodes); a run it
        cuts returns the best solution found with ``status`` ``"time limit"``.

    Returns
    -------
    ColocationPlan

    Raises
    ------
    ParameterError
        ``target`` outside 0-1 (a target above 100 % is impossible), bad
        objective or unit costs.
    """
    uc, crs = _check_colocation_args(
        proposed, existing, target, objective=objective, time_limit_s=time_limit_s, uc=unit_costs
    )
    t = float(target)
    opts = _colocation_options(existing, proposed, candidates, t, allow_add_tenant)
    early = _trivial_plan(opts, existing, proposed, objective=objective, uc=uc, crs=crs)
    if early is not None:
        return early
    cost = _colocation_costs(opts.problem, objective, uc)
    xsel, asel, status = _colocation.solve_colocation(
        opts.problem, cost, lexicographic=objective == "outlay", time_limit_s=time_limit_s
    )
    plan = _plan_from_moves(opts, existing, proposed, xsel, asel, status, uc, crs)
    _report_plan(plan, t, status)
    return plan


def _check_colocation_args(
    proposed: gpd.GeoDataFrame,
    existing: gpd.GeoDataFrame,
    target: float,
    *,
    objective: str,
    time_limit_s: float,
    uc: UnitCosts | None,
) -> tuple[UnitCosts, Any]:
    """Validate the arguments of :func:`cheapest_colocations_to_target`; returns (costs, CRS)."""
    if not 0.0 <= float(target) <= 1.0:
        raise ParameterError(
            msgid=N_(
                "target = {target}: the sharing target must be a share between 0 and 1 (a "
                "target above {limit} is impossible); write 45 % as 0.45"
            ),
            target=target,
            limit="100 %",
        )
    if objective not in ("outlay", "net_cost"):
        raise ParameterError(
            msgid=N_("objective = {objective!r}: use 'outlay' or 'net_cost'"),
            objective=objective,
        )
    if math.isnan(time_limit_s) or time_limit_s <= 0:
        raise ParameterError(
            msgid=N_("time_limit_s = {time_limit_s}: must be > 0 (a safety stop)"),
            time_limit_s=time_limit_s,
        )
    uc = uc if uc is not None else UnitCosts()
    check_unit_costs(uc)
    crs = require_metric(existing, "existing_sites")
    if len(proposed):
        require_metric(proposed, "proposed_sites")
    require_columns(existing, ["site_id", "operator", "max_tenants"], "existing_sites")
    return uc, crs


def _trivial_plan(
    opts: _Options,
    existing: gpd.GeoDataFrame,
    proposed: gpd.GeoDataFrame,
    *,
    objective: str,
    uc: UnitCosts,
    crs: Any,
) -> ColocationPlan | None:
    """The plan without a MILP (target already met, or no option at all), else ``None``."""
    prob = opts.problem
    t = prob.target
    nx_, na = len(prob.site), len(prob.add_host)
    if prob.need <= 1e-12 and objective == "outlay":
        logger.info("sharing rate %.3f already meets target %.3f: no moves", opts.rate_plan, t)
        return _plan_from_moves(
            opts,
            existing,
            proposed,
            np.zeros(nx_, bool),
            np.zeros(na, bool),
            "target already met",
            uc,
            crs,
        )
    if prob.n_vars == 0:
        warn_user(
            logger,
            N_(
                "sharing target {t:.1%} unreachable: rate {rate:.1%} and no co-location option "
                "(no free tenancy within the co-location distance)"
            ),
            stacklevel=3,
            t=t,
            rate=opts.rate_plan,
        )
        return _plan_from_moves(
            opts,
            existing,
            proposed,
            np.zeros(0, bool),
            np.zeros(0, bool),
            "target unreachable: best possible",
            uc,
            crs,
        )
    return None


def _colocation_costs(
    prob: _colocation.ColocationProblem, objective: str, uc: UnitCosts
) -> np.ndarray:
    """MILP cost vector of the co-location moves for ``objective``."""
    if objective == "outlay":
        return _colocation.tie_break_costs(prob)
    scale = 1e6  # objective in million VND
    nx_, na = len(prob.site), len(prob.add_host)
    return np.concatenate(
        [
            np.full(nx_, (uc.colocation - uc.new_dedicated_site) / scale),
            np.full(na, uc.colocation / scale),
            np.zeros(len(prob.single)),
        ]
    )


def _report_plan(plan: ColocationPlan, t: float, status: str) -> None:
    """Warn when ``plan`` misses the target ``t``; log its summary."""
    if not plan.reached:
        warn_user(
            logger,
            N_(
                "sharing target {t:.1%} unreachable with the co-location options: best rate "
                "{rate:.1%} ({moves} relocations, {added} added tenants); widen the "
                "co-location distance or raise max_tenants"
            ),
            stacklevel=3,
            t=t,
            rate=plan.rate_after,
            moves=plan.n_relocations,
            added=plan.n_added_tenants,
        )
    logger.info(
        "co-location plan: rate %.3f -> %.3f (target %.3f), %d relocations, %d added tenants, %s",
        plan.rate_plan,
        plan.rate_after,
        t,
        plan.n_relocations,
        plan.n_added_tenants,
        status,
    )


# --------------------------------------------------------------------------- summary


def summary_keys(
    existing: pd.DataFrame,
    proposed: pd.DataFrame,
    *,
    target_min: float,
    target_max: float,
    candidates: pd.DataFrame,
    plan: ColocationPlan | None = None,
) -> dict[str, Any]:
    """Keys for ``summary.json``.

    Parameters
    ----------
    existing : DataFrame
        Existing structures.
    proposed : DataFrame
        Proposed sites.
    target_min : float
        Lower sharing-rate target.
    target_max : float
        Upper sharing-rate target.
    candidates : DataFrame
        :func:`colocation_candidates` output.
    plan : ColocationPlan, optional
        :func:`cheapest_colocations_to_target` output.

    Returns
    -------
    dict
        ``sharing_rate_before`` (existing structures), ``sharing_rate_after``
        (existing + proposed), ``sharing_target`` (``[min, max]``),
        ``sharing_target_met`` (after >= min), ``colocation_options`` (rows of
        ``sharing_candidates``), ``colocation_sites`` (proposed sites with at
        least one option) and, with ``plan``: ``sharing_rate_with_colocations``,
        ``colocation_relocations``, ``colocation_added_tenants``,
        ``colocation_outlay_vnd``, ``colocation_net_cost_vnd``.
    """
    before, after = sharing_rates(existing, proposed)
    out: dict[str, Any] = {
        "sharing_rate_before": round(before, 4),
        "sharing_rate_after": round(after, 4),
        "sharing_target": [float(target_min), float(target_max)],
        "sharing_target_met": bool(after >= target_min - 1e-12),
        "colocation_options": len(candidates),
        "colocation_sites": int(candidates["site_id"].nunique()) if len(candidates) else 0,
    }
    if plan is not None:
        out.update(
            {
                "sharing_rate_with_colocations": round(plan.rate_after, 4),
                "colocation_relocations": plan.n_relocations,
                "colocation_added_tenants": plan.n_added_tenants,
                "colocation_outlay_vnd": plan.outlay_vnd,
                "colocation_net_cost_vnd": plan.net_cost_vnd,
            }
        )
    return out


def district_columns(
    existing: pd.DataFrame,
    proposed: pd.DataFrame,
    candidates: pd.DataFrame,
) -> pd.DataFrame:
    """Per-district columns for ``district_kpis.csv`` (index ``district``).

    ``sharing_rate_before`` and ``sharing_rate_after`` (as in
    :func:`sharing_rates`, by the ``district`` column of the sites) and
    ``colocation_options`` (rows of ``sharing_candidates``).

    Parameters
    ----------
    existing : DataFrame
        Existing structures with ``district``.
    proposed : DataFrame
        Proposed sites with ``district``.
    candidates : DataFrame
        :func:`colocation_candidates` output.

    Returns
    -------
    DataFrame
        Indexed by district.
    """
    require_columns(existing, ["district"], "existing_sites")
    te = pd.Series(n_tenants(existing, "existing_sites"), index=existing.index)
    ex = pd.DataFrame({"district": existing["district"], "shared": te >= 2})
    parts = [ex]
    if len(proposed):
        require_columns(proposed, ["district"], "proposed_sites")
        tp = pd.Series(n_tenants(proposed, "proposed_sites"), index=proposed.index)
        parts.append(pd.DataFrame({"district": proposed["district"], "shared": tp >= 2}))
    both = pd.concat(parts, ignore_index=True)
    out = pd.DataFrame(
        {
            "sharing_rate_before": ex.groupby("district")["shared"].mean(),
            "sharing_rate_after": both.groupby("district")["shared"].mean(),
        }
    )
    opts = candidates.groupby("district").size() if len(candidates) else pd.Series(dtype=float)
    out["colocation_options"] = opts.reindex(out.index).fillna(0).astype(int)
    out.index.name = "district"
    return out
