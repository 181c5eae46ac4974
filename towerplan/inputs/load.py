"""All input layers a scenario names (``load_inputs``).

Every layer is read in the working CRS and checked against the same rules:
population clipped to the districts (the part outside reported), operator names
matched to the scenario's operators, points outside the study area refused (or
dropped with ``data.outside: drop``), plausible densities, and a demand grid
that fits in memory.  What was dropped or ignored is counted in
``PlanInputs.report`` (``summary.json``: ``input_report``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import pandas as pd
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from towerplan.errors import (
    N_,
    ColumnError,
    DataFileError,
    PopulationError,
    Text,
    warn_user,
)
from towerplan.inputs._base import PlanInputs
from towerplan.inputs._common import _RASTER_SUFFIXES, _check_file, _first_line, _parse_crs
from towerplan.inputs._points import keep_inside
from towerplan.inputs.candidates import read_candidates
from towerplan.inputs.districts import read_districts
from towerplan.inputs.opencellid import (
    OPENCELLID_COLUMNS,
    _cells_near,
    cluster_cells_to_sites,
    read_opencellid,
)
from towerplan.inputs.operators import match_operators
from towerplan.inputs.pois import read_pois
from towerplan.inputs.population import (
    _district_population,
    check_density,
    check_grid_memory,
    clip_population,
    raster_population_outside,
    read_population_polygons,
    read_population_raster,
)
from towerplan.inputs.roads import graph_from_osm_file, read_roads, roads_from_graph
from towerplan.inputs.sites import read_sites

if TYPE_CHECKING:
    from towerplan.scenario import LayerSource, Scenario

logger = logging.getLogger(__name__)

__all__ = ["load_inputs"]

OUTSIDE_WARN_SHARE = 0.01
"""Population dropped outside the districts above this share of the input is warned."""


# --------------------------------------------------------------------------- scenario inputs


def _is_raster(src: LayerSource, path: Path) -> bool:
    if src.format:
        return src.format.lower() in ("raster", "tif", "tiff", "geotiff")
    return path.suffix.lower() in _RASTER_SUFFIXES


def _sites_format(src: LayerSource, path: Path) -> str:
    if src.format:
        return src.format.lower()
    low = path.name.lower()
    if low.endswith((".csv", ".txt", ".csv.gz")):
        try:
            head = _first_line(path).split(",")
        except (OSError, UnicodeDecodeError, EOFError):
            return "csv"
        if head and (
            head[0].strip().casefold() == "radio"
            or (
                len(head) == len(OPENCELLID_COLUMNS)
                and head[0].strip().upper() in ("GSM", "UMTS", "LTE", "NR", "CDMA")
            )
        ):
            return "opencellid"
        return "csv"
    return "vector"


@dataclass
class _Load:
    """What every step of :func:`load_inputs` shares."""

    scenario: Scenario
    crs: CRS
    notes: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)

    def encoding(self, src: LayerSource) -> str | None:
        return src.encoding or self.scenario.data.encoding

    def reading(self, src: LayerSource) -> dict[str, Any]:
        """Keyword arguments every vector reader takes from ``src`` and the scenario."""
        return {
            "layer": src.layer,
            "crs": self.crs,
            "source_crs": src.crs,
            "repair": self.scenario.data.repair_geometries,
            "encoding": self.encoding(src),
        }

    def reading_points(self, src: LayerSource, study: BaseGeometry) -> dict[str, Any]:
        """:meth:`reading` plus the study area and the rule for points outside it."""
        outside = "drop" if self.outside == "drop" else "error"
        return {**self.reading(src), "study_area": study, "outside": outside}

    @property
    def outside(self) -> str:
        return self.scenario.data.outside


def _empty_layer(columns: Sequence[str], crs: CRS) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({c: [] for c in columns}, geometry=[], crs=crs)


def load_inputs(scenario: Scenario, study_buffer_m: float | None = None) -> PlanInputs:
    """Read every input layer a scenario names, in its working CRS.

    ``kind: demo`` returns :func:`towerplan.inputs.demo.load_demo`.  ``kind: files``
    reads ``data.districts`` (communes are dissolved: see
    :func:`~towerplan.inputs.districts.dissolve_to_districts`), ``data.population``
    (polygons, or a raster path when the suffix is ``.tif``/``.tiff``/... or
    ``format: raster``; default: the district polygons), ``data.existing_sites``
    (``format`` ``csv`` / ``vector`` / ``opencellid``, else sniffed),
    ``data.pois`` (each with its ``category``), ``data.candidates`` and
    ``data.roads`` (lines, or ``.osm``/``.osm.bz2`` -> road graph + roads).

    Points (sites, POIs, candidates) must fall inside the districts buffered by
    ``study_buffer_m`` (default ``data.study_buffer_m``) unless ``data.outside:
    drop``.  Populations are taken as given: no projection to ``scenario.year``.

    Returns
    -------
    PlanInputs
        With ``report``: population outside the districts, points dropped,
        operators ignored, OpenCelliD clustering counts.
    """
    data = scenario.data
    if data.kind == "demo":
        from towerplan.inputs.demo import load_demo

        return load_demo(scenario)
    if data.districts is None:
        raise DataFileError(
            msgid=N_("scenario {scenario_name}: data.districts is missing; name the district file"),
            scenario_name=scenario.name,
        )
    ld = _Load(
        scenario, _parse_crs(scenario.crs, Text(N_("scenario {name}: crs"), name=scenario.name))
    )
    districts = _load_districts(ld)
    buffer = data.study_buffer_m if study_buffer_m is None else study_buffer_m
    study = districts.geometry.buffer(buffer).union_all()
    check_grid_memory(districts.total_bounds, scenario.demand.cell_size_m, "demand grid")
    population, districts = _load_population(ld, districts)
    sites = _load_sites(ld, study)
    pois = _load_pois(ld, study)
    user_cands = _load_candidates(ld, study)
    roads, graph = _load_roads(ld)
    ld.notes.append(
        f"populations taken as given from the input files ({data.label}); no projection to "
        f"{scenario.year}"
    )
    return PlanInputs(
        districts=districts,
        population=population,
        existing_sites=sites,
        pois=pois,
        roads=roads,
        road_graph=graph,
        data_kind=data.label,
        notes=ld.notes,
        sources=ld.sources,
        user_candidates=user_cands,
        report=ld.report,
    )


def _load_districts(ld: _Load) -> gpd.GeoDataFrame:
    src = ld.scenario.data.districts
    assert src is not None
    path = ld.scenario.resolve(src.path)
    data = ld.scenario.data
    districts = read_districts(
        path,
        columns=dict(src.columns),
        urban_values=data.urban_type_values,
        rural_values=data.rural_type_values,
        **ld.reading(src),
    )
    if "population" in districts.columns:
        check_density(
            districts,
            ld.scenario.demand.max_density_km2,
            Text(N_("districts file {path}"), path=path),
            dict(src.columns).get("population", "population"),
        )
    ld.sources["districts"] = str(path)
    return districts


def _load_population(
    ld: _Load, districts: gpd.GeoDataFrame
) -> tuple[gpd.GeoDataFrame | Path, gpd.GeoDataFrame]:
    """Population polygons clipped to the districts, or a checked raster path."""
    data = ld.scenario.data
    max_d = ld.scenario.demand.max_density_km2
    population: gpd.GeoDataFrame | Path
    if data.population is None:
        if "population" not in districts.columns:
            raise ColumnError(
                msgid=N_(
                    "districts file {path}: no population column and no data.population "
                    "source; map columns: {{population: <column>}} or give data.population"
                ),
                path=ld.sources["districts"],
            )
        population = districts[["population", "geometry"]].copy()
        ld.notes.append("population: district totals spread evenly over each district")
        ld.sources["population"] = ld.sources["districts"]
        outside, total, kind = 0.0, float(population["population"].sum()), "districts"
    else:
        src = data.population
        path = ld.scenario.resolve(src.path)
        ld.sources["population"] = str(path)
        if _is_raster(src, _check_file(path, Text(N_("population file {path}"), path=path))):
            population = read_population_raster(path, max_density_km2=max_d)
            inside, outside = raster_population_outside(population, districts)
            total, kind = inside + outside, "raster"
        else:
            polys = read_population_polygons(
                path,
                column=dict(src.columns).get("population", "population"),
                max_density_km2=max_d,
                **ld.reading(src),
            )
            total = float(polys["population"].sum())
            population, outside = clip_population(
                polys, districts, Text(N_("population file {path}"), path=path)
            )
            kind = "polygons"
    _report_outside(ld, outside, total, kind)
    if "population" not in districts.columns:
        districts = districts.copy()
        districts["population"] = _district_population(districts, population, ld.crs)
        ld.notes.append("district populations summed from the population layer")
    return population, districts


def _report_outside(ld: _Load, outside: float, total: float, kind: str) -> None:
    share = outside / total if total > 0 else 0.0
    if total > 0 and total - outside <= 1e-9 * total:
        raise PopulationError(
            msgid=N_(
                "population file {path}: all {total:,.0f} people lie outside the "
                "districts, none inside; check that the population layer and data.districts "
                "cover the same area (and their CRS)"
            ),
            path=ld.sources["population"],
            total=total,
        )
    ld.report["population_outside_districts"] = {
        "population": round(outside, 1),
        "share_of_input": round(share, 4),
        "input": kind,
        "rule": "population outside the districts is left out (clipped), for polygons and "
        "rasters alike",
    }
    if share > OUTSIDE_WARN_SHARE:
        of_what = {
            "districts": Text(N_("districts")),
            "polygons": Text(N_("polygons")),
            "raster": Text(N_("raster over the districts' bounding box")),
        }[kind]
        warn_user(
            logger,
            N_(
                "population file {path}: {outside:.0f} people ({pct} of the {of}) lie "
                "outside the districts and are left out; check that the population layer and "
                "data.districts cover the same area"
            ),
            log_only=True,
            path=ld.sources["population"],
            outside=outside,
            pct=f"{100 * share:.1f} %",
            of=of_what,
        )


def _load_sites(ld: _Load, study: BaseGeometry) -> gpd.GeoDataFrame:
    data = ld.scenario.data
    src = data.existing_sites
    if src is None:
        ld.notes.append("no existing sites given: every site is planned from scratch")
        return _empty_layer(
            ["site_id", "operator", "operators", "n_tenants", "max_tenants", "height_m"], ld.crs
        )
    path = _check_file(ld.scenario.resolve(src.path), Text(N_("sites file {path}"), path=src.path))
    ld.sources["existing_sites"] = str(path)
    fmt = _sites_format(src, path)
    if fmt == "opencellid":
        sites = _load_opencellid(ld, path, study)
    elif fmt in ("csv", "vector", "gpkg", "geojson", "shp"):
        sites = read_sites(
            path,
            columns=dict(src.columns),
            max_tenants=ld.scenario.sites.max_tenants,
            **ld.reading_points(src, study),
        )
        ld.report["existing_sites_outside_dropped"] = int(sites.attrs.get("outside_dropped", 0))
    else:
        raise DataFileError(
            msgid=N_(
                "sites file {path}: unknown format {fmt}; set data.existing_sites.format to "
                "csv, vector or opencellid"
            ),
            path=path,
            fmt=repr(fmt),
        )
    sites, rep = match_operators(
        sites,
        ld.scenario.operators,
        Text(N_("sites file {path}"), path=path),
        policy=data.unknown_operators,
    )
    ld.report["unknown_operators"] = {"policy": data.unknown_operators, **rep}
    return sites


def _load_opencellid(ld: _Load, path: Path, study: BaseGeometry) -> gpd.GeoDataFrame:
    settings = ld.scenario.data.opencellid
    label = Text(N_("OpenCelliD file {path}"), path=path)
    cells = _cells_near(read_opencellid(path), study, ld.crs, label)
    sites = cluster_cells_to_sites(
        cells,
        cluster_distance_m=settings.cluster_distance_m,
        min_cells=settings.min_cells,
        crs=ld.crs,
        max_tenants=ld.scenario.sites.max_tenants,
        name=label,
    )
    stats = dict(sites.attrs.get("opencellid", {}))
    src_xy = (sites["lon"].to_numpy(), sites["lat"].to_numpy())
    sites, n_out = keep_inside(
        sites,
        study,
        label,
        src_xy=src_xy,
        src_crs=CRS.from_epsg(4326),
        labels=sites["site_id"],
        policy="drop",
        what=Text(N_("structures")),
    )
    sites = sites.copy()
    sites["site_id"] = [f"OCID-{i + 1:05d}" for i in range(len(sites))]
    s = ld.scenario.data.opencellid
    ld.report["opencellid"] = {
        **stats,
        "cells_near_study_area": len(cells),
        "structures_outside_study_area_dropped": n_out,
        "structures_kept": len(sites),
        "cluster_distance_m": s.cluster_distance_m,
        "min_cells": s.min_cells,
    }
    ld.notes.append(
        f"existing sites: {len(cells)} OpenCelliD cells clustered into {len(sites)} structures "
        f"(data.opencellid.cluster_distance_m = {s.cluster_distance_m:g} m); positions are "
        "crowd-sourced estimates"
    )
    return sites


def _load_pois(ld: _Load, study: BaseGeometry) -> gpd.GeoDataFrame:
    data = ld.scenario.data
    parts = []
    dropped = 0
    for i, src in enumerate(data.pois):
        path = ld.scenario.resolve(src.path)
        p = read_pois(
            path,
            category=src.category,
            columns=dict(src.columns) or None,
            **ld.reading_points(src, study),
        )
        dropped += int(p.attrs.get("outside_dropped", 0))
        parts.append(p)
        ld.sources[f"pois[{i}]"] = str(path)
    if data.pois:
        ld.report["pois_outside_dropped"] = dropped
    if not parts:
        return _empty_layer(["name", "category", "source", "from_polygon"], ld.crs)
    return gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=ld.crs)


def _load_candidates(ld: _Load, study: BaseGeometry) -> gpd.GeoDataFrame | None:
    data = ld.scenario.data
    src = data.candidates
    if src is None:
        return None
    path = ld.scenario.resolve(src.path)
    ld.sources["candidates"] = str(path)
    cands = read_candidates(
        path,
        columns=dict(src.columns),
        **ld.reading_points(src, study),
    )
    ld.report["candidates_outside_dropped"] = int(cands.attrs.get("outside_dropped", 0))
    return cands


def _load_roads(ld: _Load) -> tuple[gpd.GeoDataFrame | None, Any]:
    data = ld.scenario.data
    src = data.roads
    if src is None:
        return None, None
    path = ld.scenario.resolve(src.path)
    ld.sources["roads"] = str(path)
    low = path.name.lower()
    if (src.format or "").lower() == "osm" or any(
        low.endswith(s) for s in (".osm", ".osm.bz2", ".osm.gz", ".pbf")
    ):
        graph = graph_from_osm_file(path, crs=ld.crs)
        return roads_from_graph(graph), graph
    rc = dict(src.columns)
    roads = read_roads(
        path,
        class_column=rc.get("class") or rc.get("road_class"),
        name_column=rc.get("name"),
        **ld.reading(src),
    )
    return roads, None
