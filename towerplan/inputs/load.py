"""All input layers a scenario names (``load_inputs``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from towerplan.errors import (
    ColumnError,
    DataFileError,
)
from towerplan.inputs._base import PlanInputs
from towerplan.inputs._common import (
    _RASTER_SUFFIXES,
    _check_file,
    _first_line,
    _numeric,
    _parse_crs,
    _require_geom,
)
from towerplan.inputs._points import (
    _check_inside,
)
from towerplan.inputs.districts import (
    read_districts,
)
from towerplan.inputs.opencellid import (
    OPENCELLID_COLUMNS,
    _cells_near,
    cluster_cells_to_sites,
    read_opencellid,
)
from towerplan.inputs.pois import (
    read_pois,
)
from towerplan.inputs.population import (
    _district_population,
    read_population_polygons,
    read_population_raster,
)
from towerplan.inputs.roads import (
    graph_from_osm_file,
    read_roads,
    roads_from_graph,
)
from towerplan.inputs.sites import (
    read_sites,
)
from towerplan.inputs.vector import (
    read_vector,
)

if TYPE_CHECKING:
    from towerplan.scenario import LayerSource, Scenario

logger = logging.getLogger(__name__)


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


def _empty_layer(columns: Sequence[str], crs: CRS) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({c: [] for c in columns}, geometry=[], crs=crs)


def load_inputs(scenario: Scenario, study_buffer_m: float = 2000.0) -> PlanInputs:
    """Read every input layer a scenario names, in its working CRS.

    ``kind: demo`` returns :func:`towerplan.inputs.demo.load_demo`.  ``kind: files``
    reads ``data.districts`` (communes are dissolved when names repeat),
    ``data.population`` (polygons, or a raster path when the suffix is
    ``.tif``/``.tiff``/... or ``format: raster``; default: the district
    polygons), ``data.existing_sites`` (``format`` ``csv`` / ``vector`` /
    ``opencellid``, else sniffed), ``data.pois`` (each with its ``category``) and
    ``data.roads`` (lines, or ``.osm``/``.osm.bz2`` -> road graph + roads).

    Existing sites must fall inside the districts buffered by ``study_buffer_m``
    (OpenCelliD structures outside are dropped, logged).  Populations are taken
    as given: no projection to ``scenario.year`` is applied (a note says so).

    Returns
    -------
    PlanInputs
    """
    data = scenario.data
    if data.kind == "demo":
        from towerplan.inputs.demo import load_demo

        return load_demo(scenario)
    crs = _parse_crs(scenario.crs, f"scenario {scenario.name}: crs")
    notes: list[str] = []
    sources: dict[str, str] = {}
    if data.districts is None:
        raise DataFileError(
            f"scenario {scenario.name}: data.districts is missing; name the district file"
        )

    def _cols(src: LayerSource) -> dict[str, str]:
        return dict(src.columns)

    # districts
    dsrc = data.districts
    dpath = scenario.resolve(dsrc.path)
    dcols = _cols(dsrc)
    districts = read_districts(
        dpath,
        columns=dcols,
        layer=dsrc.layer,
        crs=crs,
        urban_values=data.urban_type_values,
        rural_values=data.rural_type_values,
        source_crs=dsrc.crs,
        repair=data.repair_geometries,
    )
    sources["districts"] = str(dpath)
    study = districts.geometry.buffer(study_buffer_m).union_all()

    # population
    population: gpd.GeoDataFrame | Path
    if data.population is None:
        if "population" not in districts.columns:
            raise ColumnError(
                f"districts file {dpath}: no population column and no data.population source; "
                "map columns: {population: <column>} or give data.population"
            )
        population = districts[["population", "geometry"]].copy()
        notes.append("population: district totals spread evenly over each district (no finer data)")
        sources["population"] = str(dpath)
    else:
        psrc = data.population
        ppath = scenario.resolve(psrc.path)
        sources["population"] = str(ppath)
        if _is_raster(psrc, _check_file(ppath, f"population file {ppath}")):
            population = read_population_raster(ppath)
        else:
            population = read_population_polygons(
                ppath,
                column=_cols(psrc).get("population", "population"),
                layer=psrc.layer,
                crs=crs,
                source_crs=psrc.crs,
                repair=data.repair_geometries,
            )
    if "population" not in districts.columns:
        districts = districts.copy()
        districts["population"] = _district_population(districts, population, crs)
        notes.append("district populations summed from the population layer")

    # existing sites
    if data.existing_sites is not None:
        ssrc = data.existing_sites
        spath = _check_file(scenario.resolve(ssrc.path), f"sites file {ssrc.path}")
        sources["existing_sites"] = str(spath)
        fmt = _sites_format(ssrc, spath)
        if fmt == "opencellid":
            cells = _cells_near(read_opencellid(spath), study, crs, f"OpenCelliD file {spath}")
            sites = cluster_cells_to_sites(
                cells,
                crs=crs,
                max_tenants=scenario.sites.max_tenants,
                name=f"OpenCelliD file {spath}",
            )
            inside = np.asarray(shapely.contains_xy(study, sites.geometry.x, sites.geometry.y))
            if not inside.any():
                _check_inside(
                    sites.geometry,
                    sites["lon"].to_numpy(),
                    sites["lat"].to_numpy(),
                    CRS.from_epsg(4326),
                    study,
                    sites["site_id"],
                    f"OpenCelliD file {spath}",
                    None,
                    "raise",
                )
            if not inside.all():
                logger.warning(
                    "%s: %d structures outside the study area dropped", spath, int((~inside).sum())
                )
            sites = sites[inside].copy()
            sites["site_id"] = [f"OCID-{i + 1:05d}" for i in range(len(sites))]
            notes.append(
                f"existing sites: {len(cells)} OpenCelliD cells clustered into {len(sites)} "
                "structures (DBSCAN 50 m); positions are crowd-sourced estimates"
            )
        elif fmt in ("csv", "vector", "gpkg", "geojson", "shp"):
            sites = read_sites(
                spath,
                columns=_cols(ssrc),
                crs=crs,
                source_crs=ssrc.crs,
                study_area=study,
                repair=data.repair_geometries,
                max_tenants=scenario.sites.max_tenants,
                layer=ssrc.layer,
            )
        else:
            raise DataFileError(
                f"sites file {spath}: unknown format {fmt!r}; use csv, vector or opencellid"
            )
    else:
        sites = _empty_layer(
            ["site_id", "operator", "operators", "n_tenants", "max_tenants", "height_m"], crs
        )
        notes.append("no existing sites given: every site is planned from scratch")

    # POIs
    pois_parts = []
    for i, src in enumerate(data.pois):
        ppath = scenario.resolve(src.path)
        pc = _cols(src)
        pois_parts.append(
            read_pois(
                ppath,
                category=src.category,
                columns=pc or None,
                layer=src.layer,
                crs=crs,
                source_crs=src.crs,
                repair=data.repair_geometries,
            )
        )
        sources[f"pois[{i}]"] = str(ppath)
    if pois_parts:
        pois = gpd.GeoDataFrame(pd.concat(pois_parts, ignore_index=True), crs=crs)
    else:
        pois = _empty_layer(["name", "category", "source", "from_polygon"], crs)

    # user candidate locations
    user_cands: gpd.GeoDataFrame | None = None
    if data.candidates is not None:
        csrc = data.candidates
        cpath = scenario.resolve(csrc.path)
        sources["candidates"] = str(cpath)
        label = f"candidates file {cpath}"
        raw = read_vector(
            cpath,
            layer=csrc.layer,
            name=label,
            crs=crs,
            source_crs=csrc.crs,
            repair=data.repair_geometries,
        )
        _require_geom(raw, {"Point"}, label, "point")
        user_cands = gpd.GeoDataFrame(geometry=raw.geometry.to_numpy(), crs=raw.crs)
        for key in ("cost", "priority", "max_tenants"):
            col = dict(csrc.columns).get(key, key)
            if col in raw.columns:
                user_cands[key] = _numeric(raw[col].reset_index(drop=True), label, col).to_numpy()
            elif key in csrc.columns:
                raise ColumnError(
                    f"{label}: column '{col}' (for {key}) not found; the file has columns "
                    f"{[c for c in raw.columns if c != 'geometry']}"
                )

    # roads
    roads: gpd.GeoDataFrame | None = None
    graph = None
    if data.roads is not None:
        rsrc = data.roads
        rpath = scenario.resolve(rsrc.path)
        sources["roads"] = str(rpath)
        low = rpath.name.lower()
        if (rsrc.format or "").lower() == "osm" or any(
            low.endswith(s) for s in (".osm", ".osm.bz2", ".osm.gz", ".pbf")
        ):
            graph = graph_from_osm_file(rpath, crs=crs)
            roads = roads_from_graph(graph)
        else:
            rc = _cols(rsrc)
            roads = read_roads(
                rpath,
                class_column=rc.get("class") or rc.get("road_class"),
                name_column=rc.get("name"),
                layer=rsrc.layer,
                crs=crs,
                source_crs=rsrc.crs,
                repair=data.repair_geometries,
            )
    notes.append(
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
        notes=notes,
        sources=sources,
        user_candidates=user_cands,
    )
