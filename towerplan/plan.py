"""The end-to-end plan: scenario + data -> proposed sites, KPIs, layers, maps.

:func:`run_plan` is what ``towerplan plan`` runs.  It is one code path for the
built-in demo and for real data: only :func:`towerplan.inputs.readers.load_inputs` differs.

Steps
-----
1. load inputs (districts, population, existing sites, POIs, roads), all in the
   working metric CRS;
2. demand grid (population on a regular grid, conserved);
3. coverage of existing sites per operator at the scenario's coverage radius;
4. candidates and selection of the new sites (dedicated and shared quotas);
5. coverage after, gaps before/after, district KPIs, plan fidelity;
6. sharing options, undergrounding plan, fibre backhaul, Wi-Fi hotspots;
7. outputs written to a temporary folder, moved into ``out_dir`` when complete.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from towerplan import coverage, demand, kpis, siting
from towerplan._crs import require_metric
from towerplan._gaps import gap_polygons
from towerplan.errors import EmptyInputError
from towerplan.inputs import readers as tio
from towerplan.inputs._base import DEMO_KIND, PlanInputs
from towerplan.outputs.folder import check_out_dir, staged_output
from towerplan.scenario import Scenario

logger = logging.getLogger(__name__)

__all__ = ["PlanResult", "assign_district", "coverage_need", "run_plan"]

_STAGES = (
    "load_inputs",
    "demand_grid",
    "coverage_before",
    "candidates",
    "siting",
    "coverage_after_kpis",
    "sharing_ug_backhaul_wifi",
)


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
    """

    summary: dict[str, Any]
    kpis: pd.DataFrame
    layers: dict[str, gpd.GeoDataFrame]
    out_dir: Path | None = None
    files: list[Path] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def assign_district(points: gpd.GeoDataFrame, districts: gpd.GeoDataFrame) -> pd.Series:
    """District name of each point (containing polygon, else the nearest one).

    Returns a Series indexed like ``points``.
    """
    require_metric(points, "points")
    if len(points) == 0:
        return pd.Series([], index=points.index, dtype=object)
    d = districts[["district", "geometry"]]
    j = gpd.sjoin(points[["geometry"]], d, how="left", predicate="within")
    j = j[~j.index.duplicated(keep="first")]
    out = j["district"].reindex(points.index)
    missing = out.isna()
    if missing.any():
        near = gpd.sjoin_nearest(points.loc[missing, ["geometry"]], d, how="left")
        near = near[~near.index.duplicated(keep="first")]
        out.loc[missing] = near["district"]
    return out.astype(object)


def _lonlat(gdf: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    ll = gdf.geometry.to_crs("EPSG:4326")
    return ll.x.to_numpy().round(6), ll.y.to_numpy().round(6)


def _covered_population(
    pop: np.ndarray, cov: pd.DataFrame, shares: dict[str, float]
) -> dict[str, Any]:
    ops = list(shares)
    c = cov[ops].to_numpy(bool)
    w = np.array([shares[o] for o in ops])
    return {
        "any": float(pop[c.any(axis=1)].sum()),
        "weighted": float(((c * w).sum(axis=1) * pop).sum()),
        "by_operator": {o: float(pop[c[:, k]].sum()) for k, o in enumerate(ops)},
    }


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
    progress: bool | None = None,
) -> PlanResult:
    """Run the whole plan for ``scenario`` and write its outputs to ``out_dir``.

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
    progress : bool, optional
        Show a tqdm bar over the stages (``True``), hide it (``False``), or show
        it only when stderr is a terminal (``None``, default).

    Returns
    -------
    PlanResult
    """
    t0 = time.perf_counter()
    if out_dir is not None:
        check_out_dir(out_dir, overwrite)
    timings: dict[str, float] = {}

    last = [t0]
    # progress over the pipeline's stages (tqdm hides itself when stderr is not a terminal)
    bar = tqdm(
        total=len(_STAGES),
        desc="towerplan plan",
        unit="stage",
        disable=None if progress is None else not progress,
        leave=False,
    )

    def lap(name: str) -> None:
        now = time.perf_counter()
        timings[name] = round(now - last[0], 3)
        last[0] = now
        logger.info("%-22s %.2f s", name, timings[name])
        bar.update(1)
        bar.set_postfix_str(name)

    if inputs is None:
        inputs = tio.load_inputs(scenario)
    crs = scenario.crs
    districts = inputs.districts
    require_metric(districts, "districts")
    lap("load_inputs")

    # -- demand ---------------------------------------------------------------
    grid, dem, conservation = _demand(scenario, inputs)
    cell = scenario.demand.cell_size_m
    xy = np.column_stack([dem.geometry.x.to_numpy(), dem.geometry.y.to_numpy()])
    pop = dem["population"].to_numpy(float)
    lap("demand_grid")

    # -- existing coverage ----------------------------------------------------
    shares = scenario.market_shares
    ops = scenario.operator_names
    radius = scenario.sites.coverage_radius_m
    site_radius, radius_info = _site_radius_model(scenario, dem, xy)
    existing = inputs.existing_sites.copy()
    existing["district"] = assign_district(existing, districts)
    existing["radius_m"] = site_radius(_xy(existing))
    cov_before = coverage.operator_coverage(dem, existing, ops, "radius_m")
    before = _covered_population(pop, cov_before, shares)
    lap("coverage_before")

    # -- siting ---------------------------------------------------------------
    st = scenario.sites
    uncovered_any = np.asarray(~cov_before[ops].to_numpy(bool).all(axis=1), dtype=bool)
    cands = siting.generate_candidates(
        dem,
        spacing_m=st.candidate_spacing_m,
        existing_sites=existing,
        user_candidates=inputs.user_candidates,
        only_uncovered=uncovered_any,
        max_tenants=st.max_tenants,
    )
    cands["district"] = assign_district(cands, districts)
    cands["radius_m"] = site_radius(_xy(cands))
    lap("candidates")
    res = siting.plan_new_sites(
        dem,
        existing,
        cands,
        operators=shares,
        n_dedicated=st.new_dedicated,
        n_shared=st.new_shared,
        radius_m="radius_m",
        max_tenants=st.max_tenants,
        min_spacing_m=st.min_new_site_spacing_m,
        solver=solver or st.solver,  # type: ignore[arg-type]
        time_limit_s=time_limit_s if time_limit_s is not None else st.time_limit_s,
        mip_gap=st.mip_gap,
        seed=seed,
    )
    proposed = res.proposed.copy()
    proposed["district"] = assign_district(proposed, districts)
    proposed["lon"], proposed["lat"] = _lonlat(proposed)
    proposed["radius_m"] = site_radius(_xy(proposed))
    lap("siting")

    # -- coverage after, gaps, KPIs -------------------------------------------
    # existing coverage is already known: add only what the new sites cover
    cov_after = cov_before | coverage.operator_coverage(dem, proposed, ops, "radius_m")
    after = _covered_population(pop, cov_after, shares)
    gaps = []
    shape_rc = grid.population.shape
    for stage, cov in (("before", cov_before), ("after", cov_after)):
        for o in ops:
            gaps.append(
                gap_polygons(
                    xy,
                    pop,
                    ~cov[o].to_numpy(bool),
                    grid.transform,
                    shape_rc,
                    crs,
                    {"operator": o, "stage": stage},
                )
            )
    gaps_gdf = gpd.GeoDataFrame(pd.concat(gaps, ignore_index=True), geometry="geometry", crs=crs)
    conv = st.radius_convention
    kpi = kpis.district_kpis(
        districts, dem, existing, proposed, cov_before, cov_after, shares, conv
    )
    kpi.insert(0, "data_kind", inputs.data_kind)
    cap = siting.capacity_sites_needed(
        kpi.set_index("district")["population"],
        scenario.subscribers.mobile_per_100,
        st.site_capacity_subscribers,
        existing_by_district=kpi.set_index("district")["existing"],
        coverage_sites_by_district=kpi.set_index("district")["total"],
    )
    kpi = kpi.merge(
        cap[["subscribers", "capacity_sites", "capacity_shortfall"]],
        left_on="district",
        right_index=True,
        how="left",
    )
    area_km2 = float(districts.geometry.area.sum() / 1e6)
    n_total = len(existing) + len(proposed)
    fidelity = kpis.plan_fidelity(area_km2, st.total, st.existing, st.mean_serving_radius_km)
    lap("coverage_after_kpis")

    infra_layers, tables, infra_summary, infra_cols, infra_notes = _infrastructure(
        scenario, inputs, districts, existing, proposed
    )
    if len(infra_cols.columns):
        kpi = kpi.merge(infra_cols, left_on="district", right_index=True, how="left")
    lap("sharing_ug_backhaul_wifi")
    bar.close()

    for o in ops:
        dem[f"cov_before_{o}"] = cov_before[o].to_numpy(bool)
        dem[f"cov_after_{o}"] = cov_after[o].to_numpy(bool)

    layers: dict[str, gpd.GeoDataFrame] = {
        "districts": districts,
        "demand": dem,
        "existing_sites": existing,
        "candidate_sites": cands,
        "proposed_sites": proposed,
        "coverage_gaps": gaps_gdf,
    }
    layers.update(infra_layers)
    if len(inputs.pois):
        layers["pois"] = inputs.pois
    if inputs.roads is not None and len(inputs.roads):
        layers["roads"] = inputs.roads

    by_conv = {c: round(kpis.serving_radius_km(area_km2, n_total, c), 4) for c in kpis.CONVENTIONS}
    summary: dict[str, Any] = {
        "data_kind": inputs.data_kind,
        "scenario": scenario.name,
        "scenario_title": scenario.title,
        "plan_source": scenario.source,
        "year": scenario.year,
        "crs": crs,
        "notes": list(inputs.notes) + infra_notes,
        "existing_sites": len(existing),
        "new_sites": len(proposed),
        "new_dedicated": int((proposed["site_type"] == "dedicated").sum()),
        "new_shared": int((proposed["site_type"] == "shared").sum()),
        "total_sites": n_total,
        "area_km2": round(area_km2, 3),
        "mean_serving_radius_km": by_conv[conv],
        "radius_convention": conv,
        "mean_serving_radius_km_by_convention": by_conv,
        "coverage_radius_m": radius,
        "radius_model": radius_info,
        "population": round(float(pop.sum()), 1),
        "population_conservation_rel_error": conservation,
        "demand_cells": len(dem),
        "demand_cell_size_m": cell,
        "candidates": len(cands),
        "population_covered_before": round(before["any"], 1),
        "population_covered_after": round(after["any"], 1),
        "coverage_share_before": round(before["any"] / pop.sum(), 4),
        "coverage_share_after": round(after["any"] / pop.sum(), 4),
        "population_covered_weighted_before": round(before["weighted"], 1),
        "population_covered_weighted_after": round(after["weighted"], 1),
        "population_covered_by_operator_before": before["by_operator"],
        "population_covered_by_operator_after": after["by_operator"],
        "operators": shares,
        "siting": {
            "solver_used": res.solver_used,
            "objective": res.objective,
            "upper_bound": res.upper_bound,
            "gap": res.gap,
            "build_s": res.build_s,
            "solve_s": res.solve_s,
        },
        "plan_fidelity": fidelity,
        "export_settings": dataclasses.asdict(scenario.export),
        "capacity_check": {
            "mobile_subscribers": round(float(cap["subscribers"].sum()), 0),
            "site_capacity_subscribers": st.site_capacity_subscribers,
            "capacity_sites_needed": int(cap["capacity_sites"].sum()),
            "coverage_sites_planned": n_total,
            "capacity_shortfall_sites": int(cap["capacity_shortfall"].sum()),
        },
        "link_budget_cell_radius_km": _radius_table(),
    }
    summary.update(infra_summary)
    if len(existing) != st.existing:
        summary["notes"].append(
            f"the data hold {len(existing)} existing sites, the scenario expects {st.existing}"
        )
        logger.warning(summary["notes"][-1])
    if inputs.data_kind == DEMO_KIND:
        summary["caption"] = (
            "SCHEMATIC DEMO DATA: boundaries, existing sites and population distribution are "
            "schematic, not surveyed; do not use for decisions."
        )

    files: list[Path] = []
    if out_dir is not None:
        with staged_output(out_dir, overwrite) as tmp:
            files = _write_outputs(
                tmp,
                layers,
                tables,
                summary,
                kpi,
                maps=maps,
                sheets=sheets,
                exports=exports,
                best_server=best_server,
                scenario=scenario,
                timings=timings,
                t0=t0,
            )
        out = Path(out_dir)
        files = [out / f.relative_to(tmp) for f in files]
    else:
        timings["total"] = round(time.perf_counter() - t0, 3)
        summary["runtime_s"] = timings["total"]
        summary["timings_s"] = timings
    return PlanResult(
        summary=summary,
        kpis=kpi,
        layers=layers,
        out_dir=Path(out_dir) if out_dir else None,
        files=files,
    )


def _xy(gdf: gpd.GeoDataFrame) -> np.ndarray:
    return np.column_stack([gdf.geometry.x.to_numpy(), gdf.geometry.y.to_numpy()])


def _site_radius_model(
    scenario: Scenario, dem: gpd.GeoDataFrame, dem_xy: np.ndarray
) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, Any]]:
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
        return (lambda xy: np.full(len(xy), r)), {"model": "fixed", "radius_m": r}
    from scipy.spatial import cKDTree

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
    cell_r = np.array([by_clutter[str(c)] for c in clutter])
    tree = cKDTree(dem_xy)

    def radius_at(xy: np.ndarray) -> np.ndarray:
        if len(xy) == 0:
            return np.zeros(0)
        _, idx = tree.query(xy)
        return cell_r[idx]

    info = {
        "model": "link_budget",
        "band_mhz": st.band_mhz,
        "antenna_height_m": st.antenna_height_m,
        "max_radius_m": st.max_radius_m,
        "radius_m_by_clutter": {c: round(v, 1) for c, v in by_clutter.items()},
        "demand_cells_by_clutter": {c: int((clutter == c).sum()) for c in CLUTTER_CLASSES},
    }
    return radius_at, info


def _demand(
    scenario: Scenario, inputs: PlanInputs
) -> tuple[demand.DemandGrid, gpd.GeoDataFrame, float]:
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
            "demand: the population grid has no populated cell inside the districts; check that "
            "the population layer overlaps the district layer"
        )
    grid_total = float(grid.total())
    conservation = abs(grid_total - expected_pop) / expected_pop if expected_pop else 0.0
    return grid, dem, conservation


def coverage_need(
    scenario: Scenario,
    target_fraction: float,
    *,
    radius_m: float | None = None,
    from_scratch: bool = False,
    inputs: PlanInputs | None = None,
    solver: str = "auto",
    time_limit_s: float = 30.0,
) -> dict[str, Any]:
    """Fewest new sites that reach ``target_fraction`` population coverage.

    Answers "how many sites does this city really need for X % coverage at
    this radius?" with the set-covering engine
    (:func:`towerplan.siting.sites_needed_for_coverage`): coverage by any site,
    existing sites kept (unless ``from_scratch``), candidates on the scenario's
    grid over the whole demand.

    Returns
    -------
    dict
        ``new_sites``, ``lower_bound``, ``optimal``, ``existing_sites``,
        ``total_sites``, coverage shares, the radius and the solver used.
    """
    if inputs is None:
        inputs = tio.load_inputs(scenario)
    _, dem, _ = _demand(scenario, inputs)
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
        time_limit_s=time_limit_s,
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
        "existing_coverage": round(float(need.existing_fraction), 4),
        "covered_fraction": round(float(need.covered_fraction), 4),
        "solver_used": need.solver_used,
        "runtime_s": round(float(need.runtime_s), 2),
    }


def _radius_table() -> dict[str, dict[str, float]]:
    """Maximum cell radius (km) per band and clutter class from the default link budget."""
    from towerplan.propagation import cell_radius_table

    t = cell_radius_table()
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


def _infrastructure(
    scenario: Scenario,
    inputs: PlanInputs,
    districts: gpd.GeoDataFrame,
    existing: gpd.GeoDataFrame,
    proposed: gpd.GeoDataFrame,
) -> tuple[
    dict[str, gpd.GeoDataFrame], dict[str, pd.DataFrame], dict[str, Any], pd.DataFrame, list[str]
]:
    """Sharing options, undergrounding plan, fibre backhaul and Wi-Fi hotspots."""
    from towerplan.infrastructure import backhaul, sharing, undergrounding, wifi

    layers: dict[str, gpd.GeoDataFrame] = {}
    tables: dict[str, pd.DataFrame] = {}
    summary: dict[str, Any] = {}
    cols: list[pd.DataFrame] = []
    notes: list[str] = []
    sh = scenario.sharing

    # sharing
    cands = sharing.colocation_candidates(
        proposed, existing, districts, sh.colocation_distance_m, sh.unit_costs_vnd
    )
    coloc = None
    if len(existing) and len(proposed):
        coloc = sharing.cheapest_colocations_to_target(
            proposed,
            existing,
            cands,
            target=sh.target_min,
            unit_costs=sh.unit_costs_vnd,
            objective=sh.colocation_objective,
            allow_add_tenant=sh.allow_add_tenant,
        )
    layers["sharing_candidates"] = cands
    if len(existing):
        summary.update(
            sharing.summary_keys(existing, proposed, sh.target_min, sh.target_max, cands, coloc)
        )
        cols.append(sharing.district_columns(existing, proposed, cands))
    else:
        n_sh = int((proposed["site_type"] == "shared").sum()) if len(proposed) else 0
        summary.update(
            {
                "sharing_rate_before": None,
                "sharing_rate_after": round(n_sh / len(proposed), 4) if len(proposed) else None,
                "sharing_target": [sh.target_min, sh.target_max],
                "colocation_options": 0,
            }
        )
        notes.append("no existing structures: sharing rate before the plan undefined")

    # undergrounding and fibre share of the outer plant
    if inputs.roads is not None and len(inputs.roads):
        milestones = undergrounding.milestones_from_scenarios(*_milestone_scenarios(scenario))
        ug = undergrounding.plan_undergrounding(
            inputs.roads, districts, milestones, scenario.undergrounding, scenario.fibre
        )
        layers["underground_plan"] = ug.layer
        summary.update(undergrounding.summary_keys(ug))
        city = ug.trajectory[ug.trajectory["district"] == "city"]
        summary["underground_trajectory_city"] = {
            str(int(y)): round(float(v), 4)
            for y, v in zip(city["year"].to_numpy(), city["share"].to_numpy(), strict=True)
        }
        tables["underground_plan"] = ug.trajectory
        cols.append(undergrounding.district_columns(ug))
    else:
        notes.append("no road layer: undergrounding and road-routed backhaul not computed")

    # fibre backhaul
    if len(existing) and len(proposed):
        fb = scenario.fibre
        routes = backhaul.fibre_routes(
            proposed,
            existing,
            road_graph=inputs.road_graph,
            roads=inputs.roads,
            districts=districts,
            max_snap_m=fb.backhaul_max_snap_m,
            snap_tolerance_m=fb.backhaul_snap_tolerance_m,
        )
        layers["backhaul_routes"] = routes
        summary.update(backhaul.summary_keys(routes))
        cols.append(backhaul.district_columns(routes))
    else:
        notes.append("no existing sites: no backhaul routes to plan")

    # public Wi-Fi
    w = scenario.wifi
    if len(inputs.pois):
        wp = wifi.place_hotspots(
            inputs.pois,
            districts,
            radius_m=w.hotspot_radius_m,
            categories=w.categories,
            city_centre_radius_m=w.city_centre_radius_m,
            grid_spacing_m=w.city_centre_grid_m,
            solver=w.solver,
            time_limit_s=w.time_limit_s,
        )
        layers["wifi_hotspots"] = wp.hotspots
        summary.update(wifi.summary_keys(wp))
        cols.append(wifi.district_columns(wp, districts))
    else:
        summary["wifi_hotspots"] = 0
        notes.append("no points of interest: no Wi-Fi hotspots placed")

    table = pd.concat([c[~c.index.duplicated()] for c in cols], axis=1) if cols else pd.DataFrame()
    return layers, tables, summary, table, notes


def _write_outputs(
    tmp: Path,
    layers: dict[str, gpd.GeoDataFrame],
    tables: dict[str, pd.DataFrame],
    summary: dict[str, Any],
    kpi: pd.DataFrame,
    *,
    maps: bool,
    sheets: bool,
    exports: bool,
    best_server: bool,
    scenario: Scenario,
    timings: dict[str, float],
    t0: float,
) -> list[Path]:
    from towerplan.outputs import export

    files: list[Path] = []
    t = time.perf_counter()
    files.append(export.write_gpkg(layers, tmp / "towerplan.gpkg"))
    kpi_path = tmp / "district_kpis.csv"
    kpi.to_csv(kpi_path, index=False)
    files.append(kpi_path)
    for name, table in tables.items():
        tp = tmp / f"{name}.csv"
        table.to_csv(tp, index=False)
        files.append(tp)
    timings["write_gpkg_csv"] = round(time.perf_counter() - t, 3)
    if best_server:
        t = time.perf_counter()
        sites = pd.concat(
            [
                layers["existing_sites"][["site_id", "height_m", "geometry"]],
                layers["proposed_sites"][["site_id", "geometry"]],
            ],
            ignore_index=True,
        )
        sites = gpd.GeoDataFrame(sites, geometry="geometry", crs=layers["districts"].crs)
        if len(sites):
            files.append(
                coverage.best_server_raster(
                    sites,
                    tuple(layers["districts"].total_bounds),
                    tmp / "best_server.tif",
                    cell_size_m=scenario.demand.cell_size_m,
                    h_base="height_m",
                )
            )
            summary["best_server_raster"] = {
                "file": "best_server.tif",
                "bands": ["received_level_dbm", "path_loss_db", "serving_site_row"],
                "site_ids": "rows of existing_sites then proposed_sites in towerplan.gpkg",
            }
        timings["best_server_raster"] = round(time.perf_counter() - t, 3)
    if maps:
        from towerplan.outputs import maps as tmaps

        t = time.perf_counter()
        files.extend(
            tmaps.write_maps(
                layers, summary, kpi, tmp / "maps", hotspot_radius_m=scenario.wifi.hotspot_radius_m
            )
        )
        timings["maps"] = round(time.perf_counter() - t, 3)
    if sheets:
        from towerplan.outputs import sheets as tsheets

        t = time.perf_counter()
        files.extend(
            tsheets.write_sheets(
                layers,
                summary,
                kpi,
                tmp / "sheets",
                hotspot_radius_m=scenario.wifi.hotspot_radius_m,
            )
        )
        timings["sheets"] = round(time.perf_counter() - t, 3)
    if exports:
        t = time.perf_counter()
        files.extend(export.export_layers(layers, tmp / "exports", settings=scenario.export))
        timings["exports"] = round(time.perf_counter() - t, 3)
    timings["total"] = round(time.perf_counter() - t0, 3)
    summary["runtime_s"] = timings["total"]
    summary["timings_s"] = timings
    sp = tmp / "summary.json"
    sp.write_text(
        json.dumps(summary, indent=2, ensure_ascii=False, default=_json_default), encoding="utf-8"
    )
    files.append(sp)
    return files


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
