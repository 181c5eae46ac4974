"""The end-to-end plan: scenario + data -> proposed sites, KPIs, layers, maps.

:func:`run_plan` is what ``towerplan plan`` runs.  It is one code path for the
built-in demo and for real data: only :func:`towerplan.inputs.readers.load_inputs`
differs.  The plan is the ordered list :data:`STAGES` of named stage functions:

====================  ==========================================================
stage                 result (a field of :class:`PlanState`)
====================  ==========================================================
``load_inputs``       :class:`~towerplan.inputs.PlanInputs`, working metric CRS
``demand_grid``       :class:`DemandStage`: population on a regular grid
``coverage_before``   :class:`CoverageStage`: existing sites, per-operator coverage
``candidates``        :class:`CandidatesStage`: candidate locations
``siting``            :class:`SitingStage`: the new sites (dedicated and shared)
``phasing``           :class:`PhasingStage`: build years; later periods' sites (phasing)
``coverage_after``    :class:`CoverageStage`: coverage with the new sites, gaps
``kpis``              :class:`KpiStage`: district KPIs, capacity check, fidelity
``sharing``           :class:`StageOutputs`: co-location options, sharing rate
``undergrounding``    :class:`StageOutputs`: cable plant trajectory to the targets
``backhaul``          :class:`StageOutputs`: fibre routes to existing sites
``wifi``              :class:`StageOutputs`: public Wi-Fi hotspots
``switching``         :class:`StageOutputs`: switching points, BTS fibre to them
====================  ==========================================================

Each stage reads the :class:`PlanState` and returns its own result; :func:`run_stage`
stores it in a new state.  The progress bar, the timings and the log lines come from
this list.  A stage whose result is a :class:`StageOutputs` contributes layers, tables,
``summary.json`` keys, district KPI columns and notes to the :class:`PlanResult`
without any other change: adding a stage is one :class:`Stage` appended to
:data:`STAGES` (and one field of :class:`PlanState`).  Another program (the batch
runner) can run one stage at a time with :func:`run_stage`.

The outputs (``towerplan.gpkg``, ``district_kpis.csv``, one CSV per table, the
best-server raster, maps, sheets, exports, ``summary.json``) are written to a
temporary folder and moved into ``out_dir`` when complete.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from towerplan import capacity, coverage, demand, kpis, siting
from towerplan._gaps import gap_polygons
from towerplan._i18n import _, use_language
from towerplan._procs import fork_context
from towerplan._validate import assign_district, points_xy, require_metric
from towerplan.errors import (
    N_,
    EmptyInputError,
    ScenarioError,
    StageError,
    collected_warnings,
    replay_warnings,
    warn_user,
)
from towerplan.inputs import readers as tio
from towerplan.inputs._base import DEMO_KIND, PlanInputs
from towerplan.outputs.folder import check_out_dir, staged_output
from towerplan.scenario import Scenario

logger = logging.getLogger(__name__)

__all__ = [
    "STAGES",
    "CandidatesStage",
    "CoverageStage",
    "DemandStage",
    "KpiStage",
    "PhasingStage",
    "PlanOptions",
    "PlanResult",
    "PlanState",
    "SiteRadius",
    "SitingStage",
    "Stage",
    "StageOutputs",
    "build_layers",
    "build_summary",
    "coverage_need",
    "result_from_state",
    "run_plan",
    "run_stage",
    "run_stages",
]

DEMO_CAPTION = N_(
    "DEMO DATA: real 2009-census boundaries and population (censusVN2009, calibrated to GSO "
    "district totals); the existing sites and roads are synthetic; do not use for decisions."
)


# --------------------------------------------------------------------------- stage results


@dataclass(frozen=True)
class PlanOptions:
    """Run options that are not part of the scenario.

    Attributes
    ----------
    solver : {'auto', 'exact', 'heuristic'} or None
        Overrides ``scenario.sites.solver``.
    seed : int
        Seed for every random step.
    time_limit_s : float or None
        Overrides ``scenario.sites.time_limit_s`` (siting solver time limit).
    work_limit : float or None
        Overrides ``scenario.sites.work_limit`` (multiplier of the siting solver's
        deterministic work budgets).
    """

    solver: str | None = None
    seed: int = 0
    time_limit_s: float | None = None
    work_limit: float | None = None


@dataclass(frozen=True)
class SiteRadius:
    """Coverage radius (m) of a site at given coordinates (picklable).

    ``fixed``: one radius everywhere.  ``link_budget``: the radius of the clutter
    class of the nearest populated demand cell.

    Attributes
    ----------
    fixed_m : float or None
        The radius everywhere (``fixed`` model), else ``None``.
    cell_xy : ndarray, shape (n, 2)
        Demand cell centres (``link_budget`` model).
    cell_radius_m : ndarray, shape (n,)
        Radius at each demand cell (``link_budget`` model).
    info : dict
        The ``radius_model`` block of ``summary.json``.
    """

    fixed_m: float | None
    cell_xy: np.ndarray
    cell_radius_m: np.ndarray
    info: dict[str, Any]

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        """Radius (m) at each row of ``xy`` (shape (k, 2))."""
        if self.fixed_m is not None:
            return np.full(len(xy), self.fixed_m)
        if len(xy) == 0:
            return np.zeros(0)
        from scipy.spatial import cKDTree

        _, idx = cKDTree(self.cell_xy).query(xy)
        return self.cell_radius_m[idx]


@dataclass(frozen=True)
class DemandStage:
    """Result of ``demand_grid``.

    Attributes
    ----------
    grid : DemandGrid
        Population on the regular grid.
    points : GeoDataFrame
        The populated cells (canonical ``demand`` layer, without coverage columns).
    conservation_rel_error : float
        ``|grid total - input total| / input total`` (0 for a raster input).
    """

    grid: demand.DemandGrid
    points: gpd.GeoDataFrame
    conservation_rel_error: float

    @property
    def xy(self) -> np.ndarray:
        """Cell centres, shape (n, 2)."""
        return points_xy(self.points, "demand")

    @property
    def population(self) -> np.ndarray:
        """Population per cell."""
        return self.points["population"].to_numpy(float)


@dataclass(frozen=True)
class CoverageStage:
    """Result of ``coverage_before`` and ``coverage_after``.

    Attributes
    ----------
    coverage : DataFrame
        One bool column per operator, one row per demand cell.
    covered : dict
        :func:`towerplan.coverage.population_coverage` of ``coverage``.
    existing : GeoDataFrame or None
        ``coverage_before``: the existing sites with ``district`` and ``radius_m``.
    radius : SiteRadius or None
        ``coverage_before``: the site radius model.
    gaps : GeoDataFrame or None
        ``coverage_after``: coverage-gap polygons before and after, per operator.
    """

    coverage: pd.DataFrame
    covered: dict[str, Any]
    existing: gpd.GeoDataFrame | None = None
    radius: SiteRadius | None = None
    gaps: gpd.GeoDataFrame | None = None


@dataclass(frozen=True)
class CandidatesStage:
    """Result of ``candidates``: candidate locations with ``district`` and ``radius_m``."""

    candidates: gpd.GeoDataFrame


@dataclass(frozen=True)
class SitingStage:
    """Result of ``siting``.

    Attributes
    ----------
    result : SitingResult or None
        The solver's result (``None`` when a finished base plan was read).
    proposed : GeoDataFrame
        The new sites with ``district``, ``lon``, ``lat`` and ``radius_m``.
    base : dict
        ``phasing.base_plan`` / ``base_scenario``: where the sites come from, and that
        plan's ``summary.json`` block ``siting`` when ``result`` is ``None``.
    """

    result: siting.SitingResult | None
    proposed: gpd.GeoDataFrame
    base: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The ``siting`` block of ``summary.json``."""
        out = self.result.summary() if self.result is not None else dict(self.base["siting"])
        if self.base:
            out["base_plan"] = {k: v for k, v in self.base.items() if k != "siting"}
        return out


@dataclass(frozen=True)
class KpiStage:
    """Result of ``kpis``.

    Attributes
    ----------
    table : DataFrame
        District KPIs with ``data_kind`` and the capacity columns.
    capacity : DataFrame
        :func:`towerplan.capacity.capacity_sites_needed` per district (traffic, capacity
        sites beside the coverage-driven count).
    fidelity : dict
        :func:`towerplan.kpis.plan_fidelity`.
    area_km2 : float
        Study area.
    """

    table: pd.DataFrame
    capacity: pd.DataFrame
    fidelity: dict[str, Any]
    area_km2: float


@dataclass(frozen=True)
class StageOutputs:
    """What an infrastructure-like stage adds to the plan's outputs.

    Attributes
    ----------
    layers : dict of GeoDataFrame
        Layers of ``towerplan.gpkg``.
    tables : dict of DataFrame
        Tables written as ``<name>.csv`` and returned in :attr:`PlanResult.tables`.
    summary : dict
        Keys of ``summary.json``.
    district_columns : DataFrame or None
        Columns of ``district_kpis.csv`` (index ``district``).
    notes : list of str
        Caveats added to ``summary.json``'s ``notes``.
    """

    layers: dict[str, gpd.GeoDataFrame] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    district_columns: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PhasingStage(StageOutputs):
    """Result of ``phasing``: every new site with its ``build_year``, plus its outputs.

    ``proposed`` holds the base-phase sites of ``siting`` and the sites of the later
    periods (:mod:`towerplan.siting.phasing`); :attr:`PlanState.proposed` returns it, so
    the stages after it see the whole build-out.
    """

    proposed: gpd.GeoDataFrame | None = None


@dataclass(frozen=True)
class PlanState:
    """The plan so far: the scenario, the options and one result per stage run.

    A field named after each stage of :data:`STAGES` holds that stage's result
    (``None`` until it has run).  :func:`run_stage` returns a new state; a state is
    never modified in place, and it pickles (the batch runner ships it between
    processes).

    Examples
    --------
    >>> from towerplan.scenario import load_scenario
    >>> state = PlanState(load_scenario("cantho-2020"))
    >>> state.completed()
    []
    """

    scenario: Scenario
    options: PlanOptions = PlanOptions()
    load_inputs: PlanInputs | None = None
    demand_grid: DemandStage | None = None
    coverage_before: CoverageStage | None = None
    candidates: CandidatesStage | None = None
    siting: SitingStage | None = None
    phasing: PhasingStage | None = None
    coverage_after: CoverageStage | None = None
    kpis: KpiStage | None = None
    sharing: StageOutputs | None = None
    undergrounding: StageOutputs | None = None
    backhaul: StageOutputs | None = None
    wifi: StageOutputs | None = None
    switching: StageOutputs | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def inputs(self) -> PlanInputs:
        """The loaded inputs (result of ``load_inputs``)."""
        return self._need("load_inputs")

    @property
    def demand(self) -> DemandStage:
        """Result of ``demand_grid``."""
        return self._need("demand_grid")

    @property
    def before(self) -> CoverageStage:
        """Result of ``coverage_before``."""
        return self._need("coverage_before")

    @property
    def after(self) -> CoverageStage:
        """Result of ``coverage_after``."""
        return self._need("coverage_after")

    @property
    def existing(self) -> gpd.GeoDataFrame:
        """Existing sites with ``district`` and ``radius_m``."""
        ex = self.before.existing
        assert ex is not None
        return ex

    @property
    def proposed(self) -> gpd.GeoDataFrame:
        """The new sites: every period's (``phasing``) once it has run, else ``siting``'s."""
        if self.phasing is not None and self.phasing.proposed is not None:
            return self.phasing.proposed
        return self._need("siting").proposed

    def completed(self) -> list[str]:
        """Names of the stages that have run, in :data:`STAGES` order.

        Returns
        -------
        list of str
            Stage names.
        """
        return [s.name for s in STAGES if getattr(self, s.name) is not None]

    def outputs(self) -> list[StageOutputs]:
        """The :class:`StageOutputs` of the stages that have run, in stage order.

        Returns
        -------
        list of StageOutputs
            In :data:`STAGES` order.
        """
        out = [getattr(self, s.name) for s in STAGES]
        return [o for o in out if isinstance(o, StageOutputs)]

    def _need(self, name: str) -> Any:
        value = getattr(self, name)
        if value is None:
            raise StageError(
                msgid=N_(
                    "plan state: stage {name} has not run; run it first "
                    "(run_stage({name}, state) or run_stages(state))"
                ),
                name=repr(name),
            )
        return value


@dataclass(frozen=True)
class Stage:
    """One named step of the plan.

    Attributes
    ----------
    name : str
        Stage name; also the :class:`PlanState` field that holds its result.
    run : callable
        ``run(state) -> result``.
    needs : tuple of str
        Stages whose results ``run`` reads.
    description : str
        One line for the progress bar and the docs.
    """

    name: str
    run: Callable[[PlanState], Any]
    needs: tuple[str, ...]
    description: str


@dataclass
class PlanResult:
    """Everything a plan produced.

    Attributes
    ----------
    summary : dict
        The content of ``summary.json``.
    kpis : DataFrame
        The district KPI table (``district_kpis.csv``).
    layers : dict of GeoDataFrame
        The layers of ``towerplan.gpkg`` (working CRS).
    out_dir : Path or None
        Where the outputs were written.
    files : list of Path
        The files written.
    tables : dict of DataFrame
        Further tables, each written as ``<name>.csv`` (e.g. ``underground_plan``,
        the year-by-year undergrounding trajectory).
    state : PlanState or None
        The state after the last stage (every stage's typed result).
    """

    summary: dict[str, Any]
    kpis: pd.DataFrame
    layers: dict[str, gpd.GeoDataFrame]
    out_dir: Path | None = None
    files: list[Path] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    state: PlanState | None = None


# --------------------------------------------------------------------------- stages


def _load_inputs(state: PlanState) -> PlanInputs:
    """The inputs given to :class:`PlanState`, else :func:`~towerplan.inputs.load_inputs`."""
    inputs = state.load_inputs or tio.load_inputs(state.scenario)
    require_metric(inputs.districts, "districts")
    return inputs


def _demand_grid(state: PlanState) -> DemandStage:
    """Population on the scenario's grid, populated cells, conservation error."""
    return _demand(state.scenario, state.inputs)


def _coverage_before(state: PlanState) -> CoverageStage:
    """Coverage of the existing sites per operator (at each site's radius)."""
    scenario, inputs, dem = state.scenario, state.inputs, state.demand
    radius = _site_radius_model(scenario, dem.points)
    existing = inputs.existing_sites.copy()
    existing["district"] = assign_district(existing, inputs.districts)
    existing["radius_m"] = radius(points_xy(existing, "existing_sites"))
    cov = coverage.operator_coverage(dem.points, existing, scenario.operator_names, "radius_m")
    covered = coverage.population_coverage(dem.points, cov, scenario.market_shares)
    return CoverageStage(coverage=cov, covered=covered, existing=existing, radius=radius)


def _candidates(state: PlanState) -> CandidatesStage:
    """Candidate locations in demand not covered by every operator, plus co-locations."""
    st, before = state.scenario.sites, state.before
    ops = state.scenario.operator_names
    uncovered_any = np.asarray(~before.coverage[ops].to_numpy(bool).all(axis=1), dtype=bool)
    cands = siting.generate_candidates(
        state.demand.points,
        spacing_m=st.candidate_spacing_m,
        existing_sites=state.existing,
        user_candidates=state.inputs.user_candidates,
        only_uncovered=uncovered_any,
        max_tenants=st.max_tenants,
    )
    cands["district"] = assign_district(cands, state.inputs.districts)
    assert before.radius is not None
    cands["radius_m"] = before.radius(points_xy(cands, "candidates"))
    return CandidatesStage(cands)


def _work_limit(state: PlanState) -> float:
    """``--work-limit`` or ``sites.work_limit``: the multiplier of the solvers' work budgets."""
    opt = state.options.work_limit
    return float(opt if opt is not None else state.scenario.sites.work_limit)


def _siting(state: PlanState) -> SitingStage:
    """The new sites: multi-operator maximal covering with the scenario's quotas, or the
    sites of the base plan (``phasing.base_plan`` / ``phasing.base_scenario``)."""
    ph = state.scenario.phasing
    if ph.base_plan or ph.base_scenario:
        return _base_siting(state)
    st, opt = state.scenario.sites, state.options
    cands = state._need("candidates").candidates
    res = siting.plan_new_sites(
        state.demand.points,
        state.existing,
        cands,
        operators=state.scenario.market_shares,
        n_dedicated=st.new_dedicated,
        n_shared=st.new_shared,
        radius_m="radius_m",
        max_tenants=st.max_tenants,
        min_spacing_m=st.min_new_site_spacing_m,
        solver=opt.solver or st.solver,  # type: ignore[arg-type]
        time_limit_s=opt.time_limit_s if opt.time_limit_s is not None else st.time_limit_s,
        mip_gap=st.mip_gap,
        seed=opt.seed,
        work_limit=_work_limit(state),
        max_nodes=st.max_nodes,
    )
    proposed = res.proposed.copy()
    proposed["district"] = assign_district(proposed, state.inputs.districts)
    proposed["lon"], proposed["lat"] = _lonlat(proposed)
    assert state.before.radius is not None
    proposed["radius_m"] = state.before.radius(points_xy(proposed, "proposed_sites"))
    return SitingStage(result=res, proposed=proposed)


def _base_siting(state: PlanState) -> SitingStage:
    """The base phase from a finished plan folder, else from the base scenario run first
    through the same stages with the same options (= a separate run of it)."""
    from towerplan.siting import phasing

    scenario, ph = state.scenario, state.scenario.phasing
    result = None
    if ph.base_plan:
        origin = f"phasing.base_plan (--base-plan) {ph.base_plan}"
        base = phasing.read_base_plan(scenario.resolve(ph.base_plan), origin=origin)
    else:
        bs = _base_scenario(scenario)
        todo = ["load_inputs", "demand_grid", "coverage_before", "candidates", "siting"]
        bstate = run_stages(PlanState(bs, state.options), todo, progress=False)
        sit = bstate._need("siting")
        result = sit.result
        base = phasing.BasePlan(
            sit.proposed, sit.summary(), bs.crs, bs.year, bstate.inputs.data_kind,
            bs.operator_names, bstate.inputs.districts, f"phasing.base_scenario {bs.name}",
        )  # fmt: skip
    assert ph.base_year is not None
    phasing.check_base_plan(
        base, crs=scenario.crs, base_year=ph.base_year, operators=scenario.operator_names,
        districts=state.inputs.districts, data_kind=state.inputs.data_kind,
    )  # fmt: skip
    proposed = base.proposed.copy()
    if "radius_m" not in proposed.columns:
        assert state.before.radius is not None
        proposed["radius_m"] = state.before.radius(points_xy(proposed, "proposed_sites"))
    info = {"from": base.origin, "sites": len(proposed), "siting": base.siting}
    return SitingStage(result=result, proposed=proposed, base=info)


def _base_scenario(scenario: Scenario) -> Scenario:
    """``phasing.base_scenario`` loaded (a built-in name or a path beside the scenario)."""
    from towerplan.scenario import builtin_scenarios, load_scenario

    ref = str(scenario.phasing.base_scenario)
    base = load_scenario(ref if ref in builtin_scenarios() else scenario.resolve(ref))
    if base.phasing.base_scenario or base.phasing.base_plan:
        raise ScenarioError(
            msgid=N_(
                "phasing.base_scenario {ref}: that scenario has a base plan of its own; name a "
                "scenario without phasing.base_scenario / base_plan"
            ),
            ref=ref,
        )
    return base


def _coverage_after(state: PlanState) -> CoverageStage:
    """Coverage with the new sites, and coverage-gap polygons before and after."""
    scenario, dem, before = state.scenario, state.demand, state.before
    ops = scenario.operator_names
    # existing coverage is already known: add only what the new sites cover
    cov = before.coverage | coverage.operator_coverage(dem.points, state.proposed, ops, "radius_m")
    covered = coverage.population_coverage(dem.points, cov, scenario.market_shares)
    xy, pop = dem.xy, dem.population
    gaps = [
        gap_polygons(
            xy,
            pop,
            ~c[o].to_numpy(bool),
            transform=dem.grid.transform,
            shape_rc=dem.grid.population.shape,
            crs=scenario.crs,
            label={"operator": o, "stage": stage},
        )
        for stage, c in (("before", before.coverage), ("after", cov))
        for o in ops
    ]
    gaps_gdf = gpd.GeoDataFrame(
        pd.concat(gaps, ignore_index=True), geometry="geometry", crs=scenario.crs
    )
    return CoverageStage(coverage=cov, covered=covered, gaps=gaps_gdf)


def _kpis(state: PlanState) -> KpiStage:
    """District KPIs, capacity check and plan fidelity."""
    st, inputs = state.scenario.sites, state.inputs
    districts, proposed = inputs.districts, state.proposed
    kpi = kpis.district_kpis(
        districts,
        state.demand.points,
        state.existing,
        proposed,
        covered_before=state.before.coverage,
        covered_after=state.after.coverage,
        market_shares=state.scenario.market_shares,
        convention=st.radius_convention,
    )
    kpi.insert(0, "data_kind", inputs.data_kind)
    by_district = kpi.set_index("district")
    cap = capacity.capacity_sites_needed(
        by_district["population"],
        state.scenario.subscribers.mobile_broadband_per_100,
        state.scenario.capacity,
        existing_by_district=by_district["existing"],
        coverage_sites_by_district=by_district["total"],
    )
    cols = ["traffic_mbps", "capacity_sites", "coverage_sites", "sites_needed"]
    kpi = kpi.merge(
        cap[[*cols, "capacity_shortfall"]],
        left_on="district",
        right_index=True,
        how="left",
    )
    area_km2 = float(districts.geometry.area.sum() / 1e6)
    fidelity = kpis.plan_fidelity(
        area_km2, st.total, existing_sites=st.existing, plan_radius_km=st.mean_serving_radius_km
    )
    return KpiStage(table=kpi, capacity=cap, fidelity=fidelity, area_km2=area_km2)


def _sharing(state: PlanState) -> StageOutputs:
    """Co-location options per new site, sharing rate, cheapest co-locations to the target."""
    from towerplan.infrastructure import sharing

    sh = state.scenario.sharing
    existing, proposed = state.existing, state.proposed
    cands = sharing.colocation_candidates(
        proposed,
        existing,
        districts=state.inputs.districts,
        distance_m=sh.colocation_distance_m,
        unit_costs=sh.unit_costs_vnd,
    )
    layers = {"sharing_candidates": cands}
    if not len(existing):
        n_sh = int((proposed["site_type"] == "shared").sum()) if len(proposed) else 0
        return StageOutputs(
            layers=layers,
            summary={
                "sharing_rate_before": None,
                "sharing_rate_after": round(n_sh / len(proposed), 4) if len(proposed) else None,
                "sharing_target": [sh.target_min, sh.target_max],
                "colocation_options": 0,
            },
            notes=["no existing structures: sharing rate before the plan undefined"],
        )
    coloc = None
    if len(proposed):
        coloc = sharing.cheapest_colocations_to_target(
            proposed,
            existing,
            cands,
            target=sh.target_min,
            unit_costs=sh.unit_costs_vnd,
            objective=sh.colocation_objective,
            allow_add_tenant=sh.allow_add_tenant,
        )
    return StageOutputs(
        layers=layers,
        summary=sharing.summary_keys(
            existing,
            proposed,
            target_min=sh.target_min,
            target_max=sh.target_max,
            candidates=cands,
            plan=coloc,
        ),
        district_columns=sharing.district_columns(existing, proposed, cands),
    )


def _undergrounding(state: PlanState) -> StageOutputs:
    """Cable-km per district and the year-by-year trajectory to the undergrounding targets."""
    from towerplan.infrastructure import undergrounding

    scenario, inputs = state.scenario, state.inputs
    if inputs.roads is None or not len(inputs.roads):
        return StageOutputs(
            notes=["no road layer: undergrounding and road-routed backhaul not computed"]
        )
    milestones = undergrounding.milestones_from_scenarios(*_milestone_scenarios(scenario))
    ug = undergrounding.plan_undergrounding(
        inputs.roads,
        inputs.districts,
        milestones,
        settings=scenario.undergrounding,
        fibre=scenario.fibre,
    )
    city = ug.trajectory[ug.trajectory["district"] == "city"]
    summary = undergrounding.summary_keys(ug)
    summary["underground_trajectory_city"] = {
        str(int(y)): round(float(v), 4)
        for y, v in zip(city["year"].to_numpy(), city["share"].to_numpy(), strict=True)
    }
    return StageOutputs(
        layers={"underground_plan": ug.layer},
        tables={"underground_plan": ug.trajectory},
        summary=summary,
        district_columns=undergrounding.district_columns(ug),
    )


def _backhaul(state: PlanState) -> StageOutputs:
    """Fibre routes from each new site to the nearest existing site along the roads."""
    from towerplan.infrastructure import backhaul

    existing, proposed, inputs = state.existing, state.proposed, state.inputs
    if not (len(existing) and len(proposed)):
        return StageOutputs(notes=["no existing sites: no backhaul routes to plan"])
    fb = state.scenario.fibre
    routes = backhaul.fibre_routes(
        proposed,
        existing,
        road_graph=inputs.road_graph,
        roads=inputs.roads,
        districts=inputs.districts,
        max_snap_m=fb.backhaul_max_snap_m,
        snap_tolerance_m=fb.backhaul_snap_tolerance_m,
    )
    return StageOutputs(
        layers={"backhaul_routes": routes},
        summary=backhaul.summary_keys(routes),
        district_columns=backhaul.district_columns(routes),
    )


def _wifi(state: PlanState) -> StageOutputs:
    """Public Wi-Fi hotspots covering the points of interest (set covering)."""
    from towerplan.infrastructure import wifi

    inputs, w = state.inputs, state.scenario.wifi
    if not len(inputs.pois):
        return StageOutputs(
            summary={"wifi_hotspots": 0},
            notes=["no points of interest: no Wi-Fi hotspots placed"],
        )
    wp = wifi.place_hotspots(
        inputs.pois,
        inputs.districts,
        radius_m=w.hotspot_radius_m,
        categories=w.categories,
        city_centre_radius_m=w.city_centre_radius_m,
        grid_spacing_m=w.city_centre_grid_m,
        solver=w.solver,
        time_limit_s=w.time_limit_s,
    )
    return StageOutputs(
        layers={"wifi_hotspots": wp.hotspots},
        summary=wifi.summary_keys(wp),
        district_columns=wifi.district_columns(wp, inputs.districts),
    )


def _phasing(state: PlanState) -> PhasingStage:
    """Build years: ``sites.new`` by ``phasing.base_year``, then the later periods' sites."""
    from towerplan.siting import phasing

    scenario, ph = state.scenario, state.scenario.phasing
    base = state._need("siting").proposed.copy()
    base_year = ph.base_year if ph.base_year is not None else scenario.year
    base["build_year"] = base_year
    names, existing = state.inputs.districts["district"], state.existing
    ex_by = existing.groupby("district").size()
    if not ph.periods:
        table = phasing.phasing_table(names, ex_by, base, [base_year])
        return PhasingStage(proposed=base, tables={"phasing": table})
    st, dem = scenario.sites, state.demand.points
    base_sites = gpd.GeoDataFrame(
        pd.concat([existing[["district", "geometry"]], base[["district", "geometry"]]]),
        geometry="geometry",
        crs=scenario.crs,
    )
    cands = _phase_candidates(state, base_sites)
    mbb = scenario.subscribers.mobile_broadband_per_100
    need, facts = phasing.sites_needed_by_district(
        dem, cands, base_sites, radius_m=st.coverage_radius_m, coverage_target=ph.coverage_target,
        mobile_broadband_per_100=mbb, capacity_settings=scenario.capacity,
    )  # fmt: skip
    years = [p.year for p in ph.periods]
    auto, frac = phasing.auto_budgets(need["new_needed"], years, base_year)
    budgets = np.array(
        [auto[i] if p.budget is None else p.budget for i, p in enumerate(ph.periods)]
    )
    cap_new = need["new_for_capacity"]
    min_open = pd.DataFrame(
        {y: np.floor(cap_new * f + 1e-9) for y, f in zip(years, frac, strict=True)}
    )
    ops = scenario.operator_names
    cov = state.before.coverage | coverage.operator_coverage(dem, base, ops, "radius_m")
    # the coverage target counts people covered by any operator: so does the model
    uncovered = (~cov[ops].to_numpy(bool).any(axis=1)).astype(float)
    traffic = capacity.cell_traffic_mbps(dem["population"], mbb, scenario.capacity)
    res = phasing.plan_phases(
        dem, cands, uncovered_share=uncovered,
        years=years, budgets=budgets, base_year=base_year, demand_year=scenario.year,
        annual_growth=scenario.population.annual_growth, radius_m="radius_m", operators=ops,
        market_shares=[scenario.market_shares[o] for o in ops],
        operator_uncovered=~cov[ops].to_numpy(bool), max_tenants=st.max_tenants,
        cell_traffic_mbps=traffic["traffic_mbps"].to_numpy(), min_open=min_open,
        min_spacing_m=st.min_new_site_spacing_m, capacity_weight=ph.capacity_weight,
        mip_gap=ph.mip_gap, max_nodes=ph.max_nodes, time_limit_s=ph.time_limit_s,
        first_number=len(base) + 1,
    )  # fmt: skip
    later = res.proposed.copy()
    assert state.before.radius is not None
    later["radius_m"] = state.before.radius(points_xy(later, "proposed_sites"))
    proposed = gpd.GeoDataFrame(pd.concat([base, later], ignore_index=True), crs=scenario.crs)
    table = phasing.phasing_table(names, ex_by, proposed, [base_year, *years])
    summary = _phasing_summary(state, proposed, need, facts, res, budgets, auto, base_year)
    cols = need[["coverage_sites", "capacity_sites", "sites_needed", "new_for_coverage",
                 "new_for_capacity", "new_needed"]].add_prefix(f"need_{scenario.year}_")  # fmt: skip
    built = table[table["district"] != "city"].pivot(
        index="district", columns="year", values="new_sites"
    )
    cols = cols.join(built.add_prefix("built_"), how="outer")
    return PhasingStage(
        proposed=proposed, tables={"phasing": table}, summary=summary, district_columns=cols
    )


def _phase_candidates(state: PlanState, base_sites: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Grid (and user) candidates over all demand, away from the sites kept from the base."""
    from towerplan.siting import phasing

    st = state.scenario.sites
    cands = siting.generate_candidates(
        state.demand.points,
        spacing_m=st.candidate_spacing_m,
        user_candidates=state.inputs.user_candidates,
        max_tenants=st.max_tenants,
    )
    cands["district"] = assign_district(cands, state.inputs.districts)
    assert state.before.radius is not None
    cands["radius_m"] = state.before.radius(points_xy(cands, "candidates"))
    return phasing.away_from(cands, base_sites, st.min_new_site_spacing_m)


def _phasing_summary(
    state: PlanState,
    proposed: gpd.GeoDataFrame,
    need: pd.DataFrame,
    facts: dict[str, Any],
    res: Any,
    budgets: np.ndarray,
    auto: np.ndarray,
    base_year: int,
) -> dict[str, Any]:
    """``summary.json`` block ``phasing``: need for coverage vs capacity, budgets, solver."""
    scenario, dem = state.scenario, state.demand
    ex = state.existing
    sxy = np.vstack([points_xy(ex, "existing_sites"), points_xy(proposed, "proposed_sites")])
    r = np.r_[ex["radius_m"].to_numpy(float), proposed["radius_m"].to_numpy(float)]
    built = np.r_[np.full(len(ex), -1), proposed["build_year"].to_numpy(int)]
    years = [base_year, *[p.year for p in scenario.phasing.periods]]
    share = {}
    for y in years:
        on = built <= y
        cov = coverage.covered_mask(dem.xy, sxy[on], r[on])
        share[str(y)] = round(float(dem.population[cov].sum() / dem.population.sum()), 4)
    return {
        "phasing": {
            "base_year": base_year,
            "years": years,
            "new_sites_by_year": {str(y): int((proposed["build_year"] == y).sum()) for y in years},
            "budgets": {
                str(p.year): int(b) for p, b in zip(scenario.phasing.periods, budgets, strict=True)
            },
            "budgets_auto": [int(v) for v in auto],
            f"sites_needed_{scenario.year}": {
                "coverage": int(need["coverage_sites"].sum()),
                "capacity": int(need["capacity_sites"].sum()),
                "max_by_district": int(need["sites_needed"].sum()),
                "new_for_coverage": int(need["new_for_coverage"].sum()),
                "new_for_capacity": int(need["new_for_capacity"].sum()),
                "new_needed": int(need["new_needed"].sum()),
            },
            "coverage_need": facts,
            "coverage_share_by_year": share,
            "model": {
                "method": res.method,
                "objective": round(float(res.objective), 1),
                "upper_bound": round(float(res.upper_bound), 1),
                "gap": round(float(res.gap), 6),
                **res.log,
            },
        }
    }


def _switching(state: PlanState) -> StageOutputs:
    """Switching points per milestone (p-median) and each new BTS's fibre to its nearest one."""
    from towerplan.infrastructure import backhaul, switching

    scenario, inputs = state.scenario, state.inputs
    sw = scenario.switching
    if not sw.new_by_year:
        return StageOutputs()
    proposed = state.proposed
    bts = gpd.GeoDataFrame(
        pd.concat([state.existing[["geometry"]], proposed[["geometry"]]], ignore_index=True),
        geometry="geometry",
        crs=scenario.crs,
    )
    by = proposed["build_year"] if "build_year" in proposed.columns else scenario.year
    bts["build_year"] = np.r_[
        np.full(len(state.existing), np.nan), np.asarray(by, float) * np.ones(len(proposed))
    ]
    plan = switching.plan_switching_points(
        state.demand.points, bts, {int(y): n for y, n in sw.new_by_year.items()},
        fixed_broadband_per_100=scenario.subscribers.fixed_broadband_per_100,
        bts_line_equivalents=sw.bts_line_equivalents, grid_m=sw.grid_m,
        zones=_optional_layer(scenario, "development_zones"), zone_factor=sw.development_zone_factor,
        existing_points=_optional_layer(scenario, "switching_points"),
        work_limit=_work_limit(state),
    )  # fmt: skip
    points = plan.points
    points["district"] = assign_district(points, inputs.districts).to_numpy()
    summary = switching.summary_keys(plan)
    layers = {"switching_points": points}
    cols = pd.DataFrame({"switching_points": points.groupby("district").size()})
    if len(proposed):
        fb = scenario.fibre
        routes = backhaul.fibre_routes(
            proposed, points.rename(columns={"switch_id": "site_id"}), road_graph=inputs.road_graph,
            roads=inputs.roads, districts=inputs.districts, max_snap_m=fb.backhaul_max_snap_m,
            snap_tolerance_m=fb.backhaul_snap_tolerance_m,
        ).rename(columns={"target_site_id": "switch_id"})  # fmt: skip
        layers["switching_backhaul"] = routes
        summary.update({f"switching_{k}": v for k, v in backhaul.summary_keys(routes).items()})
        cols["switching_backhaul_km"] = backhaul.fibre_km_by_district(routes)
    return StageOutputs(layers=layers, summary={"switching": summary}, district_columns=cols)


def _optional_layer(scenario: Scenario, key: str) -> gpd.GeoDataFrame | None:
    """An optional ``data.<key>`` vector layer in the working CRS (None when not given)."""
    src = getattr(scenario.data, key)
    if src is None:
        return None
    gdf = tio.read_vector(
        scenario.resolve(src.path), layer=src.layer, name=f"data.{key}", crs=scenario.crs,
        source_crs=src.crs, repair=scenario.data.repair_geometries,
    )  # fmt: skip
    name_col = src.columns.get("name")
    if name_col:
        gdf = gdf.rename(columns={name_col: "name"})
    return gdf


#: The plan, in order.  Append a :class:`Stage` (and add its field to
#: :class:`PlanState`) to add a step; a :class:`StageOutputs` result reaches the
#: outputs on its own.
STAGES: tuple[Stage, ...] = (
    Stage("load_inputs", _load_inputs, (), N_("read the data into the working CRS")),
    Stage("demand_grid", _demand_grid, ("load_inputs",), N_("population on a regular grid")),
    Stage(
        "coverage_before",
        _coverage_before,
        ("load_inputs", "demand_grid"),
        N_("coverage of the existing sites"),
    ),
    Stage(
        "candidates",
        _candidates,
        ("load_inputs", "demand_grid", "coverage_before"),
        N_("candidate locations"),
    ),
    Stage(
        "siting",
        _siting,
        ("load_inputs", "demand_grid", "coverage_before", "candidates"),
        N_("choice of the new sites"),
    ),
    Stage(
        "phasing",
        _phasing,
        ("load_inputs", "demand_grid", "coverage_before", "siting"),
        N_("build years, sites of the later periods"),
    ),
    Stage(
        "coverage_after",
        _coverage_after,
        ("demand_grid", "coverage_before", "siting"),
        N_("coverage with the new sites, gaps"),
    ),
    Stage(
        "kpis",
        _kpis,
        ("load_inputs", "demand_grid", "coverage_before", "siting", "coverage_after"),
        N_("district KPIs, capacity, plan fidelity"),
    ),
    Stage("sharing", _sharing, ("load_inputs", "coverage_before", "siting"), N_("sharing")),
    Stage("undergrounding", _undergrounding, ("load_inputs",), N_("cable undergrounding")),
    Stage(
        "backhaul", _backhaul, ("load_inputs", "coverage_before", "siting"), N_("fibre backhaul")
    ),
    Stage("wifi", _wifi, ("load_inputs",), N_("public Wi-Fi hotspots")),
    Stage(
        "switching",
        _switching,
        ("load_inputs", "demand_grid", "coverage_before", "siting"),
        N_("switching points, BTS fibre to them"),
    ),
)


def _stage(name: str) -> Stage:
    for s in STAGES:
        if s.name == name:
            return s
    known = ", ".join(s.name for s in STAGES)
    raise StageError(
        msgid=N_("plan stage {name} is unknown; use one of: {known}"), name=repr(name), known=known
    )


def run_stage(name: str, state: PlanState) -> PlanState:
    """Run one stage of :data:`STAGES` and return the new state.

    Parameters
    ----------
    name : str
        A stage name (``STAGES[i].name``).
    state : PlanState
        A state holding the results of the stages ``name`` needs.

    Returns
    -------
    PlanState
        A copy of ``state`` with the stage's result and its time (s) in ``timings``.

    Raises
    ------
    StageError
        Unknown stage, or a stage it needs has not run.

    Examples
    --------
    >>> from towerplan.scenario import load_scenario
    >>> state = run_stage("load_inputs", PlanState(load_scenario("cantho-2020")))
    >>> state.completed(), len(state.inputs.districts)
    (['load_inputs'], 9)
    """
    stage = _stage(name)
    for need in stage.needs:
        state._need(need)
    t = time.perf_counter()
    result = stage.run(state)
    dt = round(time.perf_counter() - t, 3)
    logger.info("%-22s %.2f s", name, dt)
    return dataclasses.replace(state, **{name: result, "timings": {**state.timings, name: dt}})


def run_stages(
    state: PlanState, names: Iterable[str] | None = None, *, progress: bool | None = None
) -> PlanState:
    """Run several stages in order (default: every stage of :data:`STAGES`).

    Parameters
    ----------
    state : PlanState
        The starting state.
    names : iterable of str, optional
        Stages to run, in this order (default: all of :data:`STAGES`).
    progress : bool, optional
        Show a tqdm bar (``True``), hide it (``False``), or show it only when
        stderr is a terminal (``None``).

    Returns
    -------
    PlanState
    """
    todo = [s.name for s in STAGES] if names is None else list(names)
    # the bars (this one and those inside the stages) in the plan's language
    with (
        use_language(state.scenario.language),
        tqdm(
            total=len(todo),
            desc=_("towerplan plan"),
            unit=_("stage"),
            disable=None if progress is None else not progress,
            leave=False,
        ) as bar,
    ):
        for name in todo:
            bar.set_postfix_str(_(_stage(name).description))
            state = run_stage(name, state)
            bar.update(1)
    return state


# --------------------------------------------------------------------------- the plan's outputs


def build_layers(state: PlanState) -> dict[str, gpd.GeoDataFrame]:
    """The layers of ``towerplan.gpkg`` from a state whose stages have all run.

    Parameters
    ----------
    state : PlanState
        After the core stages (``load_inputs`` ... ``coverage_after``).

    Returns
    -------
    dict of GeoDataFrame
        ``districts``, ``demand`` (with ``cov_before_<op>`` / ``cov_after_<op>``),
        ``existing_sites``, ``candidate_sites``, ``proposed_sites``, ``coverage_gaps``,
        every :class:`StageOutputs` layer, then ``pois`` and ``roads`` when present.
    """
    inputs = state.inputs
    dem = state.demand.points.copy()
    for o in state.scenario.operator_names:
        dem[f"cov_before_{o}"] = state.before.coverage[o].to_numpy(bool)
        dem[f"cov_after_{o}"] = state.after.coverage[o].to_numpy(bool)
    layers: dict[str, gpd.GeoDataFrame] = {
        "districts": inputs.districts,
        "demand": dem,
        "existing_sites": state.existing,
        "candidate_sites": state._need("candidates").candidates,
        "proposed_sites": state.proposed,
        "coverage_gaps": state.after.gaps,
    }
    for out in state.outputs():
        layers.update(out.layers)
    if len(inputs.pois):
        layers["pois"] = inputs.pois
    if inputs.roads is not None and len(inputs.roads):
        layers["roads"] = inputs.roads
    return layers


def build_kpi_table(state: PlanState) -> pd.DataFrame:
    """``district_kpis.csv``: the ``kpis`` stage's table and every stage's district columns.

    Parameters
    ----------
    state : PlanState
        After the ``kpis`` stage.

    Returns
    -------
    DataFrame
        One row per district.
    """
    kpi = state._need("kpis").table
    cols = [o.district_columns for o in state.outputs() if o.district_columns is not None]
    if not cols:
        return kpi
    table = pd.concat([c[~c.index.duplicated()] for c in cols], axis=1)
    return kpi.merge(table, left_on="district", right_index=True, how="left")


def build_summary(state: PlanState) -> dict[str, Any]:
    """The content of ``summary.json`` (without the run times and the written files).

    Parameters
    ----------
    state : PlanState
        After every stage of :data:`STAGES`.

    Returns
    -------
    dict
        JSON-serialisable summary; keys of every :class:`StageOutputs` included.
    """
    scenario, inputs, st = state.scenario, state.inputs, state.scenario.sites
    dem, before, after = state.demand, state.before, state.after
    existing, proposed = state.existing, state.proposed
    k, sit = state._need("kpis"), state._need("siting")
    pop_total = float(dem.population.sum())
    n_total = len(existing) + len(proposed)
    conv = st.radius_convention
    by_conv = {
        c: round(kpis.serving_radius_km(k.area_km2, n_total, c), 4) for c in kpis.CONVENTIONS
    }
    assert before.radius is not None
    summary: dict[str, Any] = {
        "data_kind": inputs.data_kind,
        "scenario": scenario.name,
        "scenario_title": scenario.title,
        "plan_source": scenario.source,
        "year": scenario.year,
        "crs": scenario.crs,
        "language": scenario.language,
        "title_block": dataclasses.asdict(scenario.title_block),
        "notes": list(inputs.notes) + [n for o in state.outputs() for n in o.notes],
        "existing_sites": len(existing),
        "new_sites": len(proposed),
        "new_dedicated": int((proposed["site_type"] == "dedicated").sum()),
        "new_shared": int((proposed["site_type"] == "shared").sum()),
        "total_sites": n_total,
        "area_km2": round(k.area_km2, 3),
        "mean_serving_radius_km": by_conv[conv],
        "radius_convention": conv,
        "mean_serving_radius_km_by_convention": by_conv,
        "coverage_radius_m": st.coverage_radius_m,
        "radius_model": before.radius.info,
        "population": round(pop_total, 1),
        "population_conservation_rel_error": dem.conservation_rel_error,
        "demand_cells": len(dem.points),
        "demand_cell_size_m": scenario.demand.cell_size_m,
        "candidates": len(state._need("candidates").candidates),
        **_coverage_keys(before.covered, after.covered, pop_total),
        "coverage_measures": COVERAGE_MEASURES,
        "input_report": inputs.report,
        "operators": scenario.market_shares,
        "siting": sit.summary(),
        "plan_fidelity": k.fidelity,
        "export_settings": dataclasses.asdict(scenario.export),
        "capacity_check": capacity.summary_keys(k.capacity, scenario.capacity),
        "link_budget_cell_radius_km": _radius_table(),
    }
    for out in state.outputs():
        summary.update(out.summary)
    if len(existing) != st.existing:
        summary["notes"].append(
            f"the data hold {len(existing)} existing sites, the scenario expects {st.existing}"
        )
    if inputs.data_kind == DEMO_KIND:
        summary["caption"] = DEMO_CAPTION
    return summary


COVERAGE_MEASURES = {
    "coverage_share_before/after, population_covered_before/after": (
        "any operator: population within reach of at least one site of any operator "
        "(what `towerplan need` targets)"
    ),
    "coverage_share_weighted_before/after, population_covered_weighted_before/after": (
        "market-share-weighted: sum over operators of market share x population covered by "
        "that operator's sites (what `towerplan plan` maximises when siting)"
    ),
    "population_covered_by_operator_before/after": "per operator: population each operator covers",
}
"""What each coverage figure of summary.json measures (written beside them)."""


def _coverage_keys(
    before: dict[str, Any], after: dict[str, Any], pop_total: float
) -> dict[str, Any]:
    def by_op(c: dict[str, Any]) -> dict[str, float]:
        return {o: v["population"] for o, v in c["operators"].items()}

    return {
        "population_covered_before": round(before["any_population"], 1),
        "population_covered_after": round(after["any_population"], 1),
        "coverage_share_before": round(before["any_population"] / pop_total, 4),
        "coverage_share_after": round(after["any_population"] / pop_total, 4),
        "coverage_share_weighted_before": round(before["weighted_population"] / pop_total, 4),
        "coverage_share_weighted_after": round(after["weighted_population"] / pop_total, 4),
        "population_covered_weighted_before": round(before["weighted_population"], 1),
        "population_covered_weighted_after": round(after["weighted_population"], 1),
        "population_covered_by_operator_before": by_op(before),
        "population_covered_by_operator_after": by_op(after),
    }


def result_from_state(state: PlanState) -> PlanResult:
    """Assemble the :class:`PlanResult` of a state whose stages have all run (nothing written).

    Parameters
    ----------
    state : PlanState
        After every stage of :data:`STAGES`.

    Returns
    -------
    PlanResult
        ``summary`` without run times, ``kpis``, ``layers``, ``tables`` and ``state``.
    """
    missing = [s.name for s in STAGES if getattr(state, s.name) is None]
    if missing:
        raise StageError(
            msgid=N_(
                "plan state: stages {missing} have not run; run them first (run_stages(state))"
            ),
            missing=missing,
        )
    summary = build_summary(state)
    n_existing, expected = len(state.existing), state.scenario.sites.existing
    if n_existing != expected:
        warn_user(
            logger,
            N_("the data hold {n} existing sites, the scenario expects {expected}"),
            log_only=True,
            n=n_existing,
            expected=expected,
        )
    tables = {name: t for o in state.outputs() for name, t in o.tables.items()}
    return PlanResult(
        summary=summary,
        kpis=build_kpi_table(state),
        layers=build_layers(state),
        tables=tables,
        state=state,
    )


def run_plan(
    scenario: Scenario,
    out_dir: str | Path | None = None,
    *,
    inputs: PlanInputs | None = None,
    overwrite: bool = False,
    solver: str | None = None,
    seed: int = 0,
    maps: bool = True,
    sheets: bool = False,
    exports: bool = False,
    best_server: bool = True,
    time_limit_s: float | None = None,
    work_limit: float | None = None,
    progress: bool | None = None,
    sheets_per_district: bool = False,
    jobs: int | None = None,
) -> PlanResult:
    """Run every stage of :data:`STAGES` for ``scenario`` and write the outputs to ``out_dir``.

    Parameters
    ----------
    scenario : Scenario
        Targets, settings and data sources.
    out_dir : str or Path, optional
        Output folder; must not exist or be empty unless ``overwrite``.
        ``None`` computes without writing.
    inputs : PlanInputs, optional
        Pre-loaded inputs (default: :func:`towerplan.inputs.readers.load_inputs`).
    overwrite : bool
        Replace a non-empty ``out_dir``.
    solver : {'auto', 'exact', 'heuristic'}, optional
        Overrides ``scenario.sites.solver``.
    seed : int
        Seed for every random step.
    maps, sheets, exports, best_server : bool
        Write the HTML maps, the static map sheets, the vector exports, the
        best-server GeoTIFF.
    time_limit_s : float, optional
        Overrides ``scenario.sites.time_limit_s`` (siting solver time limit).
    work_limit : float, optional
        Overrides ``scenario.sites.work_limit`` (e.g. 0.05 for a quick look).
    progress : bool, optional
        Show a tqdm bar over the stages (``True``), hide it (``False``), or show
        it only when stderr is a terminal (``None``, default).
    sheets_per_district : bool
        With ``sheets``, also one sheet of new sites per district.
    jobs : int, optional
        Processes that draw the map sheets (default: one per core, at most 4; the files
        are the same for any number).

    Returns
    -------
    PlanResult
        ``summary`` includes ``runtime_s`` and ``timings_s`` (per stage and per output).

    Examples
    --------
    >>> from towerplan import load_scenario, run_plan
    >>> res = run_plan(load_scenario("cantho-2020"), "outputs/cantho-2020")  # doctest: +SKIP
    >>> res.summary["total_sites"], sorted(res.tables)  # doctest: +SKIP
    (1728, ['underground_plan'])
    """
    t0 = time.perf_counter()
    if out_dir is not None:
        check_out_dir(out_dir, overwrite, protected=scenario.input_paths())
    options = PlanOptions(
        solver=solver, seed=seed, time_limit_s=time_limit_s, work_limit=work_limit
    )
    state = run_stages(PlanState(scenario, options, load_inputs=inputs), progress=progress)
    result = result_from_state(state)
    timings = dict(state.timings)
    extra: dict[str, Any] = {}
    if out_dir is not None:
        with staged_output(out_dir, overwrite, protected=scenario.input_paths()) as tmp:
            files, extra = _write_outputs(
                tmp,
                result,
                scenario,
                maps=maps,
                sheets=sheets,
                exports=exports,
                best_server=best_server,
                sheets_per_district=sheets_per_district,
                jobs=jobs,
                timings=timings,
                t0=t0,
            )
        result.files = [Path(out_dir) / f.relative_to(tmp) for f in files]
        result.out_dir = Path(out_dir)
    else:
        extra = _timing_keys(timings, t0)
    result.summary = {**result.summary, **extra}
    return result


def _timing_keys(timings: dict[str, float], t0: float) -> dict[str, Any]:
    total = round(time.perf_counter() - t0, 3)
    return {"runtime_s": total, "timings_s": {**timings, "total": total}}


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    t = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - t, 3)


def _write_outputs(
    tmp: Path,
    result: PlanResult,
    scenario: Scenario,
    *,
    maps: bool,
    sheets: bool,
    exports: bool,
    best_server: bool,
    timings: dict[str, float],
    t0: float,
    sheets_per_district: bool = False,
    jobs: int | None = None,
) -> tuple[list[Path], dict[str, Any]]:
    """Write every output into ``tmp``; ``summary.json`` last.

    Returns the files written and the keys added to the summary (the best-server
    raster, ``runtime_s``, ``timings_s``); ``result`` is not modified.
    """
    from towerplan.outputs import export

    layers, kpi = result.layers, result.kpis
    extra: dict[str, Any] = {}
    timings["write_gpkg_csv"] = 0.0  # (set below: keeps the order of the timings)
    # the GeoPackage and CSVs on a second core while this process draws the raster and maps
    with _TableWriter(tmp, result, scenario.language, background=maps or best_server) as tables:
        raster = None
        if best_server:
            with _timed(timings, "best_server_raster"):
                raster = _best_server(layers, tmp, scenario)
            if raster is not None:
                extra["best_server_raster"] = {
                    "file": "best_server.tif",
                    "bands": ["received_level_dbm", "path_loss_db", "serving_site_row"],
                    "site_ids": "rows of existing_sites then proposed_sites in towerplan.gpkg",
                }
        summary = {**result.summary, **extra}
        common: dict[str, Any] = {
            "hotspot_radius_m": scenario.wifi.hotspot_radius_m,
            "lang": scenario.language,
            "export_settings": scenario.export,
            "best_server": raster,
        }
        maps_written: list[Path] = []
        if maps:
            from towerplan.outputs import maps as tmaps

            with _timed(timings, "maps"):
                maps_written = tmaps.write_maps(layers, summary, kpi, tmp / "maps", **common)
        written, timings["write_gpkg_csv"] = tables.result()
    files = [*written, *([raster] if raster is not None else []), *maps_written]
    if sheets:
        from towerplan.outputs import sheets as tsheets

        with _timed(timings, "sheets"):
            files.extend(
                tsheets.write_sheets(
                    layers,
                    summary,
                    kpi,
                    tmp / "sheets",
                    per_district=sheets_per_district,
                    workers=jobs,
                    **common,
                )
            )
    if exports:
        with _timed(timings, "exports"):
            files.extend(
                export.export_layers(
                    layers,
                    tmp / "exports",
                    settings=scenario.export,
                    lang=scenario.language,
                    title=scenario.title,
                )
            )
    extra.update(_timing_keys(timings, t0))
    sp = tmp / "summary.json"
    sp.write_text(
        json.dumps({**summary, **extra}, indent=2, ensure_ascii=False, default=_json_default),
        encoding="utf-8",
    )
    files.append(sp)
    return files, extra


class _TableWriter:
    """``towerplan.gpkg`` and the CSV tables of a plan, written in a forked process when
    ``background`` and the machine allows it (a second core, fork, no other thread), else
    here.  :meth:`result` waits: the files and the seconds the writing took.  The files are
    the same either way; warnings of the writer are shown here, once, in the user's language.
    A context manager: leaving it (also on an error elsewhere) waits for the writer process.
    """

    def __init__(self, tmp: Path, result: PlanResult, lang: str, *, background: bool) -> None:
        from concurrent.futures import Future, ProcessPoolExecutor

        job = (tmp, result, lang)
        fork = fork_context() if background else None
        self._pool: ProcessPoolExecutor | None = None
        self._future: Future[Any] | None = None
        self._done: tuple[list[Path], float, list[Any]] | None = None
        logger.debug("tables written %s", "in a forked process" if fork else "here")
        if fork is not None:  # the child inherits the job (nothing is pickled but the file list)
            self._pool = ProcessPoolExecutor(
                1,
                mp_context=fork,
                initializer=_set_table_job,
                initargs=(job,),
            )
            self._future = self._pool.submit(_run_table_job)
        else:
            self._done = _write_tables(*job)

    def __enter__(self) -> _TableWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def result(self) -> tuple[list[Path], float]:
        """The files written and the seconds it took (raises the writer's error)."""
        if self._done is None:
            assert self._future is not None and self._pool is not None
            try:
                self._done = self._future.result()
            finally:
                self._pool.shutdown()
        files, seconds, warned = self._done
        replay_warnings(warned)
        return files, seconds


_TABLE_JOB: list[tuple[Path, PlanResult, str]] = []


def _set_table_job(job: tuple[Path, PlanResult, str]) -> None:
    _TABLE_JOB[:] = [job]


def _run_table_job() -> tuple[list[Path], float, list[Any]]:
    """In the forked writer: :func:`_write_tables` of the job set by :func:`_set_table_job`."""
    return _write_tables(*_TABLE_JOB[0])


def _write_tables(tmp: Path, result: PlanResult, lang: str) -> tuple[list[Path], float, list[Any]]:
    """``towerplan.gpkg``, then one CSV per table; the seconds taken and the warnings."""
    from towerplan.outputs import export

    t0 = time.perf_counter()
    with collected_warnings() as warned:
        files = [export.write_gpkg(result.layers, tmp / "towerplan.gpkg", lang=lang)]
        for name, table in {"district_kpis": result.kpis, **result.tables}.items():
            files.append(tmp / f"{name}.csv")
            export.write_csv(table, files[-1])
    return files, round(time.perf_counter() - t0, 3), warned


def _best_server(layers: dict[str, gpd.GeoDataFrame], tmp: Path, scenario: Scenario) -> Path | None:
    sites = pd.concat(
        [
            layers["existing_sites"][["site_id", "height_m", "geometry"]],
            layers["proposed_sites"][["site_id", "geometry"]],
        ],
        ignore_index=True,
    )
    sites = gpd.GeoDataFrame(sites, geometry="geometry", crs=layers["districts"].crs)
    if not len(sites):
        return None
    return coverage.best_server_raster(
        sites,
        tuple(layers["districts"].total_bounds),
        tmp / "best_server.tif",
        cell_size_m=scenario.demand.cell_size_m,
        h_base="height_m",
    )


# --------------------------------------------------------------------------- helpers


def _lonlat(gdf: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    ll = gdf.geometry.to_crs("EPSG:4326")
    return ll.x.to_numpy().round(6), ll.y.to_numpy().round(6)


def _site_radius_model(scenario: Scenario, dem: gpd.GeoDataFrame) -> SiteRadius:
    """Coverage radius (m) of a site at given coordinates, per ``sites.radius_model``.

    ``fixed``: ``sites.coverage_radius_m`` everywhere.  ``link_budget``: the
    maximum cell radius of the default link budget at ``sites.band_mhz`` for the
    clutter class of the nearest populated demand cell (district type and
    density, :func:`towerplan.propagation.clutter_from_density`), capped at
    ``sites.max_radius_m``.
    """
    st = scenario.sites
    if st.radius_model == "fixed":
        r = float(st.coverage_radius_m)
        return SiteRadius(r, np.zeros((0, 2)), np.zeros(0), {"model": "fixed", "radius_m": r})
    from towerplan.propagation import CLUTTER_CLASSES, clutter_from_density, max_cell_radius

    by_clutter = {
        c: min(
            1000.0
            * max_cell_radius(st.band_mhz, c, h_base=st.antenna_height_m, allow_extrapolation=True),
            st.max_radius_m,
        )
        for c in CLUTTER_CLASSES
    }
    clutter = np.asarray(
        clutter_from_density(
            dem["district_type"].to_numpy(object), dem["density_km2"].to_numpy(float)
        ),
        dtype=object,
    )
    info = {
        "model": "link_budget",
        "band_mhz": st.band_mhz,
        "antenna_height_m": st.antenna_height_m,
        "max_radius_m": st.max_radius_m,
        "radius_m_by_clutter": {c: round(v, 1) for c, v in by_clutter.items()},
        "demand_cells_by_clutter": {c: int((clutter == c).sum()) for c in CLUTTER_CLASSES},
    }
    cell_r = np.array([by_clutter[str(c)] for c in clutter])
    return SiteRadius(None, points_xy(dem, "demand"), cell_r, info)


def _demand(scenario: Scenario, inputs: PlanInputs) -> DemandStage:
    """Demand grid, its populated points and the population conservation error."""
    cell = scenario.demand.cell_size_m
    districts = inputs.districts
    if isinstance(inputs.population, Path | str):
        grid = demand.grid_from_raster(
            Path(inputs.population), crs=scenario.crs, cell_size=cell, boundary=districts
        )
        expected_pop = None
    else:
        grid = demand.grid_from_polygons(
            inputs.population, column="population", cell_size=cell, method=scenario.demand.method
        )
        expected_pop = float(inputs.population["population"].sum())
    dem = grid.points(districts)
    if len(dem) == 0:
        raise EmptyInputError(
            msgid=N_(
                "demand: the population grid has no populated cell inside the districts; "
                "check that the population layer overlaps the district layer"
            )
        )
    grid_total = float(grid.total())
    conservation = abs(grid_total - expected_pop) / expected_pop if expected_pop else 0.0
    return DemandStage(grid=grid, points=dem, conservation_rel_error=conservation)


def coverage_need(
    scenario: Scenario,
    target_fraction: float,
    *,
    radius_m: float | None = None,
    from_scratch: bool = False,
    inputs: PlanInputs | None = None,
    solver: str = "auto",
    time_limit_s: float | None = None,
    work_limit: float = 1.0,
) -> dict[str, Any]:
    """Fewest new sites that reach ``target_fraction`` population coverage.

    Answers "how many sites does this city really need for X % coverage at
    this radius?" with the set-covering engine
    (:func:`towerplan.siting.sites_needed_for_coverage`): coverage by any site,
    existing sites kept (unless ``from_scratch``), candidates on the scenario's
    grid over the whole demand.

    The solve is bounded by deterministic work (``work_limit`` scales the MILP's node
    budget); ``time_limit_s`` is a wall-clock safety stop only (default none).

    Parameters
    ----------
    scenario : Scenario
        Settings and data sources.
    target_fraction : float
        Population coverage to reach (0-1].
    radius_m : float, optional
        Site radius (default: ``sites.coverage_radius_m``).
    from_scratch : bool
        Ignore the existing sites.
    inputs : PlanInputs, optional
        Pre-loaded inputs (default: :func:`~towerplan.inputs.load_inputs`).
    solver : {'auto', 'exact', 'heuristic'}
        Set-covering solver.
    time_limit_s : float, optional
        Wall-clock safety stop (the solve is bounded by work).
    work_limit : float
        Multiplier of the deterministic work budgets.

    Returns
    -------
    dict
        ``new_sites``, ``lower_bound_new_sites`` (proven), ``optimal``, ``stopped_by``,
        ``reproducible``, ``existing_sites``, ``total_sites``, coverage shares, the radius
        and the solver used.
    """
    if inputs is None:
        inputs = tio.load_inputs(scenario)
    dem = _demand(scenario, inputs).points
    radius = float(radius_m) if radius_m is not None else scenario.sites.coverage_radius_m
    existing = inputs.existing_sites.iloc[0:0] if from_scratch else inputs.existing_sites
    cands = siting.generate_candidates(
        dem, spacing_m=scenario.sites.candidate_spacing_m, existing_sites=existing
    )
    need = siting.sites_needed_for_coverage(
        dem,
        cands,
        existing,
        radius,
        target_fraction,
        solver=solver,  # type: ignore[arg-type]
        time_limit_s=time_limit_s if time_limit_s is not None else math.inf,
        work_limit=work_limit,
    )
    return {
        "data_kind": inputs.data_kind,
        "scenario": scenario.name,
        "target_fraction": target_fraction,
        "radius_m": radius,
        "existing_sites": len(existing),
        "new_sites": int(need.n_new_sites),
        "total_sites": len(existing) + int(need.n_new_sites),
        "lower_bound_new_sites": int(need.lower_bound),
        "optimal": bool(need.optimal),
        "stopped_by": need.stopped_by,
        "reproducible": need.stopped_by != "time_limit",
        "existing_coverage": round(float(need.existing_fraction), 4),
        "covered_fraction": round(float(need.covered_fraction), 4),
        "solver_used": need.solver_used,
        "runtime_s": round(float(need.runtime_s), 2),
    }


def _radius_table() -> dict[str, dict[str, float]]:
    """Maximum cell radius (km) per band and clutter class from the default link budget."""
    from towerplan.propagation import cell_radius_table

    # a reference table: its out-of-range (extrapolated) entries are not used by the run,
    # so their warnings would not apply; the run's own radii warn in _site_radius_model
    prop_log = logging.getLogger("towerplan.propagation")
    was = prop_log.disabled
    prop_log.disabled = True
    try:
        t = cell_radius_table()
    finally:
        prop_log.disabled = was
    out: dict[str, dict[str, float]] = {}
    for band, clutter, r in zip(t["band_mhz"], t["clutter"], t["radius_km"], strict=True):
        out.setdefault(f"{int(band)}MHz", {})[str(clutter)] = round(float(r), 3)
    return out


def _milestone_scenarios(scenario: Scenario) -> list[Scenario]:
    from towerplan.scenario import builtin_scenarios, load_scenario

    out = [scenario]
    for ref in scenario.undergrounding.other_milestones:
        other = load_scenario(ref if ref in builtin_scenarios() else scenario.resolve(ref))
        if other.year != scenario.year:
            out.append(other)
    return out


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
