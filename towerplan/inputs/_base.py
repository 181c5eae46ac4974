"""The bundle of input layers a plan runs on (private)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd

from towerplan.errors import N_

DEMO_KIND = N_("demo: census boundaries and population, synthetic sites and roads")
"""``data_kind`` of every output made from the built-in demo."""
DEMO_STAMP = "DEMO DATA: SYNTHETIC SITES"
"""Short stamp on maps, sheets and the console for outputs made from the demo."""


@dataclass
class PlanInputs:
    """Input layers of a plan, all in the working metric CRS.

    Attributes
    ----------
    districts : GeoDataFrame
        ``district``, ``code``, ``district_type`` (urban/rural), ``population``
        (scenario year), ``area_km2``.
    population : GeoDataFrame or Path
        Census polygons with a ``population`` column (scenario year), or a
        path to a population GeoTIFF.
    existing_sites : GeoDataFrame
        ``site_id``, ``operator``, ``operators``, ``n_tenants``, ``max_tenants``,
        ``height_m``.
    pois : GeoDataFrame
        ``name``, ``category``, ``source`` (may be empty).
    roads : GeoDataFrame or None
        ``road_class``, ``name`` lines, when known.
    road_graph : networkx.MultiDiGraph or None
        Routable road graph (osmnx) in the working CRS, when known.
    data_kind : str
        ``DEMO_KIND`` for the built-in demo, else the scenario's label.
    notes : list of str
        Caveats printed on every output (e.g. what is synthetic).
    user_candidates : GeoDataFrame or None
        User candidate site locations (``cost``, ``priority``, ``max_tenants`` when given).
    report : dict
        What the input checks left out or counted (population outside the districts,
        points dropped outside the study area, unknown operators ignored, OpenCelliD
        clustering counts); written to ``summary.json`` as ``input_report``.
    """

    districts: gpd.GeoDataFrame
    population: gpd.GeoDataFrame | Path
    existing_sites: gpd.GeoDataFrame
    pois: gpd.GeoDataFrame
    roads: gpd.GeoDataFrame | None = None
    road_graph: Any = None
    data_kind: str = DEMO_KIND
    notes: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    user_candidates: gpd.GeoDataFrame | None = None
    report: dict[str, Any] = field(default_factory=dict)
