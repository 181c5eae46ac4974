"""Fibre backhaul: a route along the roads from each new site to the nearest existing site.

**Graph.**  Either a routable road graph (an osmnx ``MultiDiGraph`` projected
to the working CRS, e.g. from ``towerplan.io.graph_from_osm_file``; node
attributes ``x``, ``y``; edge attribute ``length`` in metres and optional
``geometry``) or road lines, turned into a graph by
:func:`road_graph_from_lines` (every vertex a node; vertices of different lines
closer than ``snap_tolerance_m`` joined).  Fibre is laid in both directions
whatever the traffic rules, so the graph is used undirected (shortest of
parallel edges).

**Routing.**  Every site is snapped to its nearest graph node (``snap_m``).
One multi-source Dijkstra (:func:`scipy.sparse.csgraph.dijkstra` from a
virtual source joined to every existing site's node by an edge as long as that
site's snap distance) gives, for every node at once, the network distance to
the nearest existing site and the path.  A new site's route length is::

    length_m = snap(new site) + network distance + snap(existing site)

**Fallback.**  A new site whose node cannot reach any existing site (a
disconnected graph) or that lies farther than ``max_snap_m`` from the graph
gets a straight line to the nearest existing site, flagged
``method = "straight_line"``, and a warning gives their number.

Layer ``backhaul_routes`` (LineString new site -> existing site):
``site_id``, ``target_site_id``, ``method`` (``road`` | ``straight_line``),
``length_m``, ``network_m``, ``snap_m``, ``straight_m`` (straight distance to
the target), ``district`` (of the new site).
"""

from __future__ import annotations

import itertools
import logging
import warnings
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
from pyproj import CRS
from scipy import sparse
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree
from shapely import LineString, get_coordinates

from towerplan._crs import require_metric
from towerplan.errors import ColumnError, CRSError, EmptyInputError, ParameterError

logger = logging.getLogger(__name__)

__all__ = [
    "district_columns",
    "fibre_km_by_district",
    "fibre_routes",
    "road_graph_from_lines",
    "summary_keys",
]

_COLUMNS = [
    "site_id",
    "target_site_id",
    "method",
    "length_m",
    "network_m",
    "snap_m",
    "straight_m",
    "district",
]


def road_graph_from_lines(roads: gpd.GeoDataFrame, snap_tolerance_m: float = 1.0) -> nx.Graph:
    """Undirected road graph from road lines.

    Every line vertex is a node (attributes ``x``, ``y``); consecutive vertices
    are joined by an edge with ``length`` (m).  Vertices closer than
    ``snap_tolerance_m`` (of the same or different lines) are merged into one
    node, which joins lines that meet at a shared or nearly shared vertex.
    Lines that cross without a common vertex are not joined (as in the
    source data).  ``graph.graph['crs']`` is the roads' CRS.

    Raises
    ------
    CRSError
        Roads without a CRS or in a geographic CRS.
    ParameterError
        Negative ``snap_tolerance_m``.
    """
    crs = require_metric(roads, "roads")
    if not np.isfinite(snap_tolerance_m) or snap_tolerance_m < 0:
        raise ParameterError(f"snap_tolerance_m = {snap_tolerance_m}: must be >= 0 m")
    geoms = roads.geometry[roads.geometry.notna() & ~roads.geometry.is_empty]
    geoms = geoms[geoms.geom_type.isin(["LineString", "MultiLineString"])].explode(
        index_parts=False
    )
    g = nx.Graph(crs=crs)
    if len(geoms) == 0:
        return g
    coords, part = get_coordinates(geoms.to_numpy(), return_index=True)
    coords = coords[:, :2]
    # merge vertices within the tolerance (union-find over close pairs)
    parent = np.arange(len(coords))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return int(a)

    if snap_tolerance_m > 0:
        pairs = cKDTree(coords).query_pairs(r=snap_tolerance_m, output_type="ndarray")
        for a, b in pairs:
            ra, rb = find(int(a)), find(int(b))
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    else:
        _, first = np.unique(coords, axis=0, return_index=True)
        _, inv = np.unique(coords, axis=0, return_inverse=True)
        parent = first[inv.ravel()]
    root = np.array([find(i) for i in range(len(coords))])
    for r in np.unique(root):
        g.add_node(int(r), x=float(coords[r, 0]), y=float(coords[r, 1]))
    same_part = part[1:] == part[:-1]
    a, b = root[:-1][same_part], root[1:][same_part]
    seg = np.hypot(*(coords[1:][same_part] - coords[:-1][same_part]).T)
    for u, v, w in zip(a, b, seg, strict=True):
        if u == v:
            continue
        u, v = int(u), int(v)
        if g.has_edge(u, v) and g[u][v]["length"] <= w:
            continue
        g.add_edge(u, v, length=float(w))
    logger.info(
        "road graph from %d lines: %d nodes, %d edges, %d components",
        len(geoms),
        g.number_of_nodes(),
        g.number_of_edges(),
        nx.number_connected_components(g) if g.number_of_nodes() else 0,
    )
    return g


def _graph_crs(graph: Any, sites_crs: CRS) -> None:
    gcrs = graph.graph.get("crs") if hasattr(graph, "graph") else None
    if gcrs is None:
        raise CRSError(
            "road_graph: the graph has no 'crs' in graph.graph; build it with osmnx and project "
            "it, e.g. osmnx.project_graph(G, to_crs=scenario.crs)"
        )
    c = CRS.from_user_input(gcrs)
    if not c.is_projected:
        raise CRSError(
            f"road_graph: CRS {c.to_string()} is geographic; project it first with "
            "osmnx.project_graph(G, to_crs=scenario.crs)"
        )
    if c != sites_crs:
        raise CRSError(
            f"road_graph ({c.to_string()}) and the sites ({sites_crs.to_string()}) are in "
            "different CRSs; project the graph with osmnx.project_graph(G, to_crs=...)"
        )


class _Routable:
    """Undirected CSR view of a networkx graph with edge geometries."""

    def __init__(self, graph: Any) -> None:
        nodes = list(graph.nodes)
        self.index = {n: i for i, n in enumerate(nodes)}
        try:
            self.xy = np.array(
                [[float(graph.nodes[n]["x"]), float(graph.nodes[n]["y"])] for n in nodes]
            ).reshape(-1, 2)
        except KeyError:
            raise ColumnError(
                "road_graph: every node needs 'x' and 'y' attributes (osmnx graphs have them)"
            ) from None
        rows: list[tuple[int, int, float]] = []
        self.geom: dict[tuple[int, int], np.ndarray] = {}
        best: dict[tuple[int, int], float] = {}
        for u, v, data in graph.edges(data=True):
            iu, iv = self.index[u], self.index[v]
            if iu == iv:
                continue
            length = data.get("length")
            line = data.get("geometry")
            if length is None:
                length = (
                    float(line.length)
                    if line is not None
                    else float(np.hypot(*(self.xy[iu] - self.xy[iv])))
                )
            key = (min(iu, iv), max(iu, iv))
            if key in best and best[key] <= float(length):
                continue
            best[key] = float(length)
            if line is not None:
                c = np.asarray(line.coords)[:, :2]
                # orient from key[0] to key[1]
                if np.hypot(*(c[0] - self.xy[key[0]])) > np.hypot(*(c[-1] - self.xy[key[0]])):
                    c = c[::-1]
                self.geom[key] = c
            else:
                self.geom.pop(key, None)
        for (a, b), w in best.items():
            rows.append((a, b, max(w, 1e-9)))
        self.n = len(nodes)
        arr = np.array(rows, dtype=float).reshape(-1, 3)
        self.edges = arr

    def csr(self, extra: np.ndarray) -> sparse.csr_matrix:
        """Symmetric CSR with one virtual node (index n) joined by ``extra`` rows (i, w)."""
        n = self.n + 1
        a = np.concatenate([self.edges[:, 0], np.full(len(extra), self.n)]).astype(int)
        b = np.concatenate([self.edges[:, 1], extra[:, 0]]).astype(int)
        w = np.concatenate([self.edges[:, 2], np.maximum(extra[:, 1], 1e-9)])
        return sparse.csr_matrix((w, (a, b)), shape=(n, n))

    def path_coords(self, chain: list[int]) -> np.ndarray:
        pts = [self.xy[chain[0]]]
        for u, v in itertools.pairwise(chain):
            key = (min(u, v), max(u, v))
            c = self.geom.get(key)
            if c is None:
                pts.append(self.xy[v])
            else:
                seg = c if u == key[0] else c[::-1]
                pts.extend(seg[1:])
        return np.asarray(pts)


def _districts_of(sites: gpd.GeoDataFrame, districts: gpd.GeoDataFrame | None) -> pd.Series:
    if "district" in sites.columns and sites["district"].notna().all():
        return sites["district"].astype(object)
    base = (
        sites["district"].astype(object)
        if "district" in sites.columns
        else pd.Series(None, index=sites.index, dtype=object)
    )
    if districts is None or len(districts) == 0:
        return base
    if "district" not in districts.columns:
        raise ColumnError("districts: missing column 'district'")
    if districts.crs != sites.crs:
        raise CRSError(
            f"districts ({districts.crs}) and new_sites ({sites.crs}) are in different CRSs"
        )
    j = gpd.sjoin(
        sites[["geometry"]], districts[["district", "geometry"]], how="left", predicate="within"
    )
    j = j[~j.index.duplicated(keep="first")]
    return base.where(base.notna(), j["district"].reindex(sites.index))


def fibre_routes(
    new_sites: gpd.GeoDataFrame,
    existing_sites: gpd.GeoDataFrame,
    road_graph: Any = None,
    roads: gpd.GeoDataFrame | None = None,
    districts: gpd.GeoDataFrame | None = None,
    max_snap_m: float = 500.0,
    snap_tolerance_m: float = 1.0,
) -> gpd.GeoDataFrame:
    """Fibre route from every new site to the nearest existing site along the roads.

    Parameters
    ----------
    new_sites : GeoDataFrame
        Points with ``site_id`` (the proposed sites), metric CRS.
    existing_sites : GeoDataFrame
        Points with ``site_id``, same CRS.
    road_graph : networkx graph, optional
        Routable graph in the same CRS (``graph.graph['crs']``), nodes with
        ``x``/``y``; used in preference to ``roads``.
    roads : GeoDataFrame, optional
        Road lines, same CRS; turned into a graph by :func:`road_graph_from_lines`.
    districts : GeoDataFrame, optional
        Fills the ``district`` of new sites that lack one.
    max_snap_m : float
        Sites farther than this from every graph node are routed straight.
    snap_tolerance_m : float
        See :func:`road_graph_from_lines`.

    Returns
    -------
    GeoDataFrame
        Layer ``backhaul_routes`` (module docstring), one row per new site, in
        the order and with the index of ``new_sites``.

    Raises
    ------
    CRSError
        A layer or the graph without a metric CRS, or CRSs that differ.
    EmptyInputError
        No existing sites.
    ParameterError
        Negative ``max_snap_m``.

    Warns
    -----
    UserWarning
        Sites routed by straight line (disconnected graph, far from the roads,
        or no road network given), with their number.
    """
    crs = require_metric(new_sites, "new_sites")
    ecrs = require_metric(existing_sites, "existing_sites")
    if crs != ecrs:
        raise CRSError(
            f"new_sites ({crs.to_string()}) and existing_sites ({ecrs.to_string()}) are in "
            "different CRSs; reproject both to the working CRS"
        )
    for name, gdf in (("new_sites", new_sites), ("existing_sites", existing_sites)):
        if "site_id" not in gdf.columns:
            raise ColumnError(f"{name}: missing column 'site_id'")
    if len(existing_sites) == 0:
        raise EmptyInputError(
            "existing_sites: no existing site to connect to; backhaul needs at least one"
        )
    if not np.isfinite(max_snap_m) or max_snap_m < 0:
        raise ParameterError(f"max_snap_m = {max_snap_m}: must be >= 0 m")
    if len(new_sites) == 0:
        return gpd.GeoDataFrame(
            {c: pd.Series(dtype=object) for c in _COLUMNS},
            geometry=gpd.GeoSeries([], crs=crs),
            crs=crs,
        )

    nxy = np.column_stack([new_sites.geometry.x.to_numpy(), new_sites.geometry.y.to_numpy()])
    exy = np.column_stack(
        [existing_sites.geometry.x.to_numpy(), existing_sites.geometry.y.to_numpy()]
    )
    e_ids = existing_sites["site_id"].to_numpy()
    n = len(nxy)
    target = np.full(n, -1, dtype=int)
    network = np.full(n, np.nan)
    snap = np.full(n, np.nan)
    geoms: list[LineString | None] = [None] * n

    graph = road_graph
    if graph is None and roads is not None:
        if require_metric(roads, "roads") != crs:
            raise CRSError(
                f"roads ({roads.crs}) and new_sites ({crs.to_string()}) are in different CRSs"
            )
        graph = road_graph_from_lines(roads, snap_tolerance_m)
    elif graph is not None:
        _graph_crs(graph, crs)

    if graph is None or graph.number_of_nodes() == 0:
        msg = (
            f"backhaul: no road network given (road_graph / roads); all {n} routes are "
            "straight lines (method='straight_line')"
        )
        warnings.warn(msg, UserWarning, stacklevel=2)
        logger.warning(msg)
    else:
        rg = _Routable(graph)
        tree = cKDTree(rg.xy)
        d_e, node_e = tree.query(exy)
        d_n, node_n = tree.query(nxy)
        ok_e = d_e <= max_snap_m
        if not ok_e.any():
            logger.warning("backhaul: no existing site within %.0f m of the road graph", max_snap_m)
        else:
            # per source node keep the existing site with the smallest snap distance
            src = pd.DataFrame({"node": node_e[ok_e], "d": d_e[ok_e], "site": np.flatnonzero(ok_e)})
            src = src.sort_values(["node", "d", "site"]).drop_duplicates("node")
            site_at_node = dict(zip(src["node"], src["site"], strict=True))
            extra = src[["node", "d"]].to_numpy(dtype=float)
            mat = rg.csr(extra)
            dist, pred = dijkstra(mat, directed=False, indices=rg.n, return_predecessors=True)
            for i in range(n):
                if d_n[i] > max_snap_m or not np.isfinite(dist[node_n[i]]):
                    continue
                chain = [int(node_n[i])]
                while True:
                    p = int(pred[chain[-1]])
                    if p == rg.n or p < 0:
                        break
                    chain.append(p)
                j = site_at_node[chain[-1]]
                target[i] = j
                snap[i] = d_n[i] + d_e[j]
                network[i] = dist[node_n[i]] - d_e[j]
                if network[i] < 0:
                    network[i] = 0.0
                pts = np.vstack([nxy[i][None, :], rg.path_coords(chain), exy[j][None, :]])
                geoms[i] = LineString(pts)

    straight = np.flatnonzero(target < 0)
    method = np.where(target >= 0, "road", "straight_line").astype(object)
    if len(straight):
        _, nearest = cKDTree(exy).query(nxy[straight])
        target[straight] = nearest
        for i, jn in zip(straight.tolist(), nearest.tolist(), strict=True):
            geoms[i] = LineString([nxy[i], exy[jn]])
        snap[straight] = 0.0
        network[straight] = 0.0
        if graph is not None and graph.number_of_nodes() > 0:
            msg = (
                f"backhaul: {len(straight)} of {n} new sites cannot reach an existing site on the "
                f"road graph (disconnected graph or more than {max_snap_m:.0f} m from a road); "
                "they get a straight-line route flagged method='straight_line'"
            )
            warnings.warn(msg, UserWarning, stacklevel=2)
            logger.warning(msg)
    straight_m = np.hypot(*(nxy - exy[target]).T)
    length = np.where(method == "road", snap + network, straight_m)
    out = gpd.GeoDataFrame(
        {
            "site_id": new_sites["site_id"].to_numpy(),
            "target_site_id": e_ids[target],
            "method": method,
            "length_m": length,
            "network_m": network,
            "snap_m": snap,
            "straight_m": straight_m,
            "district": _districts_of(new_sites, districts).to_numpy(),
        },
        geometry=geoms,
        crs=crs,
        index=new_sites.index,
    )
    logger.info(
        "backhaul: %d routes, %.1f km fibre, %d straight-line",
        n,
        out["length_m"].sum() / 1000,
        len(straight),
    )
    return out


def fibre_km_by_district(routes: gpd.GeoDataFrame) -> pd.Series:
    """New fibre km per district (sum of ``length_m`` / 1000 by ``district``)."""
    if "district" not in routes.columns or "length_m" not in routes.columns:
        raise ColumnError("routes: needs 'district' and 'length_m' (use fibre_routes())")
    s = routes.groupby(routes["district"].fillna("(outside)"))["length_m"].sum() / 1000.0
    s.name = "backhaul_fibre_km"
    s.index.name = "district"
    return s


def summary_keys(routes: gpd.GeoDataFrame) -> dict[str, Any]:
    """Keys for ``summary.json``: ``backhaul_fibre_km`` (total), ``backhaul_routes``
    (count), ``backhaul_straight_line`` (routes without a road path),
    ``backhaul_mean_length_m``."""
    n = len(routes)
    return {
        "backhaul_fibre_km": round(float(routes["length_m"].sum()) / 1000.0, 3),
        "backhaul_routes": n,
        "backhaul_straight_line": int((routes["method"] == "straight_line").sum()),
        "backhaul_mean_length_m": round(float(routes["length_m"].mean()), 1) if n else 0.0,
    }


def district_columns(routes: gpd.GeoDataFrame) -> pd.DataFrame:
    """Per-district columns for ``district_kpis.csv`` (index ``district``):
    ``backhaul_fibre_km`` and ``backhaul_routes``."""
    km = fibre_km_by_district(routes)
    cnt = routes.groupby(routes["district"].fillna("(outside)")).size()
    return pd.DataFrame({"backhaul_fibre_km": km, "backhaul_routes": cnt.reindex(km.index)})
