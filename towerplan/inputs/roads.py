"""Road centre lines and OSM road graphs."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from towerplan._validate import DEFAULT_CRS
from towerplan.errors import (
    N_,
    DataFileError,
    EmptyInputError,
    Text,
)
from towerplan.inputs._common import (
    _check_file,
    _col,
    _norm,
    _parse_crs,
    _require_geom,
)
from towerplan.inputs.vector import (
    read_vector,
)

if TYPE_CHECKING:
    import networkx as nx


logger = logging.getLogger(__name__)


DEFAULT_ROAD_CLASS_MAP: dict[str, str] = {
    "quốc lộ": "national",
    "quoc lo": "national",
    "ql": "national",
    "cao tốc": "national",
    "cao toc": "national",
    "tỉnh lộ": "provincial",
    "tinh lo": "provincial",
    "tl": "provincial",
    "đường tỉnh": "provincial",
    "duong tinh": "provincial",
    "huyện lộ": "local",
    "huyen lo": "local",
    "đường huyện": "local",
    "duong huyen": "local",
    "national": "national",
    "provincial": "provincial",
    "local": "local",
}
"""Road-class values (Vietnamese road categories, normalised lower case) -> class."""

OSM_HIGHWAY_CLASS: dict[str, str] = {
    "motorway": "national",
    "motorway_link": "national",
    "trunk": "national",
    "trunk_link": "national",
    "primary": "provincial",
    "primary_link": "provincial",
    "secondary": "provincial",
    "secondary_link": "provincial",
}
"""OSM ``highway`` tag -> road class; any other highway value is ``local``."""

# --------------------------------------------------------------------------- roads


def read_roads(
    path: str | Path,
    class_column: str | None = None,
    class_map: Mapping[str, str] | None = None,
    name_column: str | None = None,
    layer: str | None = None,
    crs: str | CRS = DEFAULT_CRS,
    source_crs: str | CRS | None = None,
    default_class: str = "local",
    repair: bool = False,
    encoding: str | None = None,
) -> gpd.GeoDataFrame:
    """Read road centre lines with a ``road_class``.

    Parameters
    ----------
    path : str or Path
        Vector file of lines (GeoJSON, GPKG, SHP).
    class_column : str, optional
        Column with the road category (default: ``road_class``, ``highway`` or
        ``loai_duong`` when present).  Values are mapped with ``class_map``
        (default :data:`DEFAULT_ROAD_CLASS_MAP`, and OSM highway values with
        :data:`OSM_HIGHWAY_CLASS`); blank values get ``default_class``; other
        values are kept as they are (normalised lower case).
    class_map : mapping, optional
        Value -> class (matched case-insensitively).
    name_column : str, optional
        Name column (default ``name``, then ``ten_duong``).
    layer, crs, source_crs
        As in :func:`read_vector`.
    default_class : str
        Class of roads with no category.
    repair, encoding
        As in :func:`read_vector`.

    Returns
    -------
    GeoDataFrame
        ``road_class``, ``name`` LineStrings in ``crs`` (multi-lines exploded).
    """
    label = Text(N_("roads file {path}"), path=path)
    gdf = read_vector(
        path,
        layer=layer,
        name=label,
        crs=crs,
        source_crs=source_crs,
        repair=repair,
        encoding=encoding,
    )
    _require_geom(gdf, {"LineString", "MultiLineString"}, label, Text(N_("line")))
    cols = {"class": class_column} if class_column else None
    cls_c = _col(gdf, cols, "class", ("road_class", "highway", "loai_duong"), label, False)
    name_c = _col(
        gdf,
        {"name": name_column} if name_column else None,
        "name",
        ("name", "ten_duong"),
        label,
        False,
    )
    cmap = {_norm(k): v for k, v in {**DEFAULT_ROAD_CLASS_MAP, **OSM_HIGHWAY_CLASS}.items()}
    if class_map:
        cmap.update({_norm(k): v for k, v in class_map.items()})
    if cls_c is not None:
        raw = gdf[cls_c].map(
            lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else _norm(v)
        )
        road_class = raw.map(lambda v: default_class if v == "" else cmap.get(v, v))
    else:
        road_class = pd.Series(default_class, index=gdf.index)
    names = (
        gdf[name_c].fillna("").astype(str).str.strip() if name_c else pd.Series("", index=gdf.index)
    )
    out = gpd.GeoDataFrame(
        {"road_class": road_class.to_numpy(), "name": names.to_numpy()},
        geometry=gdf.geometry.to_numpy(),
        crs=gdf.crs,
    )
    out = out.explode(index_parts=False, ignore_index=True)
    logger.info(
        "%s: %d road segments %s", label, len(out), out["road_class"].value_counts().to_dict()
    )
    return out


def _check_osm_path(path: str | Path) -> Path:
    p = _check_file(path, Text(N_("OSM file {path}"), path=path))
    if p.name.lower().endswith(".pbf"):
        raise DataFileError(
            msgid=N_(
                "OSM file {p}: osmnx reads OSM XML (.osm, .osm.bz2, .osm.gz), not PBF; "
                "convert it first, e.g. `osmium cat {name} -o {osm_name}` (osmium-tool), or "
                "`osmium extract -b <bbox> ...` to cut the study area"
            ),
            p=p,
            name=p.name,
            osm_name=p.name[: -len(".pbf")],
        )
    return p


def graph_from_osm_file(
    path: str | Path,
    crs: str | CRS = DEFAULT_CRS,
    simplify: bool = True,
    retain_all: bool = False,
    bidirectional: bool = False,
) -> nx.MultiDiGraph:
    """Build a routable graph from an OSM XML file with osmnx, projected to ``crs``.

    Parameters
    ----------
    path : str or Path
        ``.osm``, ``.osm.bz2`` or ``.osm.gz`` OSM XML (PBF is refused with the
        command to convert it).
    crs : str or pyproj.CRS
        Working metric CRS.
    simplify, retain_all, bidirectional : bool
        Passed to :func:`osmnx.graph_from_xml`.  Files whose ways carry no
        ``highway`` tag (e.g. a route relation's member ways) need
        ``simplify=False, retain_all=True`` to keep every node.

    Returns
    -------
    networkx.MultiDiGraph
        Projected graph; edge ``length`` in metres.
    """
    p = _check_osm_path(path)
    wcrs = _parse_crs(crs, "working crs")
    import osmnx as ox  # after the checks: a refused file is reported without importing it

    try:
        G = ox.graph_from_xml(
            p, bidirectional=bidirectional, simplify=simplify, retain_all=retain_all
        )
    except Exception as exc:
        raise DataFileError(
            msgid=N_(
                "OSM file {p}: osmnx cannot build a graph ({name}: {exc}); check that it is "
                "OSM XML with ways and nodes (try simplify=False, retain_all=True)"
            ),
            p=p,
            name=type(exc).__name__,
            exc=exc,
        ) from None
    if G.number_of_nodes() == 0:
        raise EmptyInputError(
            msgid=N_("OSM file {p}: the graph has no nodes; the file holds no usable ways"), p=p
        )
    Gp = ox.project_graph(G, to_crs=wcrs)
    logger.info("OSM file %s: %d nodes, %d edges", p, Gp.number_of_nodes(), Gp.number_of_edges())
    return Gp


def graph_from_place_online(
    query: str | BaseGeometry,
    crs: str | CRS = DEFAULT_CRS,
    network_type: str = "drive",
    simplify: bool = True,
    retain_all: bool = False,
    which_result: int | None = None,
) -> nx.MultiDiGraph:
    """Download a road graph from OSM (Nominatim + Overpass via osmnx), projected to ``crs``.

    Parameters
    ----------
    query : str or shapely geometry
        Place name (geocoded with Nominatim) or a polygon in EPSG:4326.
    crs, network_type, simplify, retain_all, which_result
        Working CRS and :func:`osmnx.graph_from_place` / ``graph_from_polygon`` options.

    Returns
    -------
    networkx.MultiDiGraph
        Projected graph.

    Raises
    ------
    DataFileError
        The place cannot be geocoded or Overpass fails (needs internet).
    """
    import osmnx as ox

    wcrs = _parse_crs(crs, "working crs")
    try:
        if isinstance(query, BaseGeometry):
            G = ox.graph_from_polygon(
                query, network_type=network_type, simplify=simplify, retain_all=retain_all
            )
        else:
            G = ox.graph_from_place(
                query,
                network_type=network_type,
                simplify=simplify,
                retain_all=retain_all,
                which_result=which_result,
            )
    except Exception as exc:
        raise DataFileError(
            msgid=N_(
                "OSM download for {place}: {name}: {exc}; check the place name and the "
                "internet connection, or save an OSM XML extract and use graph_from_osm_file"
            ),
            place=query if isinstance(query, str) else "polygon",
            name=type(exc).__name__,
            exc=exc,
        ) from None
    return ox.project_graph(G, to_crs=wcrs)


def roads_from_graph(G: nx.MultiDiGraph, default_class: str = "unknown") -> gpd.GeoDataFrame:
    """Edges of an osmnx graph as road lines with ``road_class`` from the ``highway`` tag.

    ``highway`` values map with :data:`OSM_HIGHWAY_CLASS` (other values:
    ``local``); a list of values (merged by simplification) takes the highest
    class; edges without the tag get ``default_class``.  Each undirected way is
    kept once (reverse duplicates dropped).

    Returns
    -------
    GeoDataFrame
        ``road_class``, ``name``, ``highway``, ``length_m`` (the graph's CRS).
    """
    import osmnx as ox

    edges = ox.graph_to_gdfs(G, nodes=False, fill_edge_geometry=True)
    edges = edges.reset_index()
    key = edges.apply(lambda r: (min(r["u"], r["v"]), max(r["u"], r["v"]), r["key"]), axis=1)
    edges = edges[~key.duplicated()].reset_index(drop=True)
    rank = {"national": 0, "provincial": 1, "local": 2}

    def _cls(h: Any) -> str:
        vals = h if isinstance(h, list) else [h]
        vals = [v for v in vals if isinstance(v, str) and v]
        if not vals:
            return default_class
        classes = [OSM_HIGHWAY_CLASS.get(v, "local") for v in vals]
        return min(classes, key=lambda c: rank.get(c, 3))

    def _txt(v: Any) -> str:
        if isinstance(v, list):
            return ";".join(str(x) for x in v)
        return "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)

    hw = edges["highway"] if "highway" in edges.columns else pd.Series(None, index=edges.index)
    nm = edges["name"] if "name" in edges.columns else pd.Series(None, index=edges.index)
    out = gpd.GeoDataFrame(
        {
            "road_class": hw.map(_cls).to_numpy(),
            "name": nm.map(_txt).to_numpy(),
            "highway": hw.map(_txt).to_numpy(),
            "length_m": edges["length"].to_numpy(dtype=float),
        },
        geometry=edges.geometry.to_numpy(),
        crs=edges.crs,
    )
    return out
