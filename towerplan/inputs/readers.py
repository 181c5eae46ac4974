"""Reading real data: districts, population, existing sites, POIs and roads.

Every reader returns a new GeoDataFrame in the working metric CRS (default
``EPSG:32648``) with the canonical columns of ``docs/ARCHITECTURE.md``.  A CRS
is never guessed: a layer without one raises :class:`~towerplan.errors.CRSError`
unless ``source_crs`` is given.  Invalid geometries raise
:class:`~towerplan.errors.GeometryError` naming the rows, unless ``repair=True``
(scenario key ``data.repair_geometries``), which repairs them with
:func:`shapely.make_valid` and logs a warning; empty geometries always raise.

Column mappings (``columns=``) map towerplan's names (``name``, ``code``,
``type``, ``population``, ``lon``, ``lat``, ``operator``, ...) to the file's
column names, exactly like :class:`towerplan.scenario.LayerSource.columns`.

Existing sites from OpenCelliD
------------------------------
:func:`read_opencellid` reads OpenCelliD / Mozilla-Location-Service style cell
CSVs and :func:`cluster_cells_to_sites` turns cells into *structures*: cells of
**any** operator within ``eps_m`` of each other (DBSCAN, haversine metric) are
one physical site; its tenants are the distinct operators of its cells (host =
operator with most cells, ties by name), its point is the mean of its cells.
Cell positions in OpenCelliD are estimates (often tens to hundreds of metres
off), so the result is an approximation of the real site list.

Populations are taken as given: :func:`load_inputs` applies no projection to the
scenario year (the files are expected to hold the populations to plan for).

The readers live in one module per layer (:mod:`~towerplan.inputs.vector`,
:mod:`~towerplan.inputs.districts`, :mod:`~towerplan.inputs.population`,
:mod:`~towerplan.inputs.sites`, :mod:`~towerplan.inputs.opencellid`,
:mod:`~towerplan.inputs.pois`, :mod:`~towerplan.inputs.roads`,
:mod:`~towerplan.inputs.candidates`, :mod:`~towerplan.inputs.load`); this module
gathers their public functions under one name.
"""

from __future__ import annotations

from towerplan.inputs.districts import (
    RURAL_VALUES,
    URBAN_VALUES,
    dissolve_to_districts,
    read_districts,
)
from towerplan.inputs.load import load_inputs
from towerplan.inputs.opencellid import (
    OPENCELLID_COLUMNS,
    VN_MCC_MNC_OPERATORS,
    cluster_cells_to_sites,
    read_opencellid,
)
from towerplan.inputs.pois import read_pois
from towerplan.inputs.population import (
    check_population_array,
    read_population_polygons,
    read_population_raster,
)
from towerplan.inputs.roads import (
    DEFAULT_ROAD_CLASS_MAP,
    OSM_HIGHWAY_CLASS,
    graph_from_osm_file,
    graph_from_place_online,
    read_roads,
    roads_from_graph,
)
from towerplan.inputs.sites import read_sites
from towerplan.inputs.vector import read_vector

__all__ = [
    "DEFAULT_ROAD_CLASS_MAP",
    "OPENCELLID_COLUMNS",
    "OSM_HIGHWAY_CLASS",
    "RURAL_VALUES",
    "URBAN_VALUES",
    "VN_MCC_MNC_OPERATORS",
    "check_population_array",
    "cluster_cells_to_sites",
    "dissolve_to_districts",
    "graph_from_osm_file",
    "graph_from_place_online",
    "load_inputs",
    "read_districts",
    "read_opencellid",
    "read_pois",
    "read_population_polygons",
    "read_population_raster",
    "read_roads",
    "read_sites",
    "read_vector",
    "roads_from_graph",
]
