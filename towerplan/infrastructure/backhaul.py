"""Fibre backhaul: a route along the roads from each new site to the nearest existing site.

**Graph.**  Either a routable road graph (an osmnx ``MultiDiGraph`` projected
to the working CRS, e.g. from ``towerplan.inputs.readers.graph_from_osm_file``; node
attributes ``x``, ``y``; edge attribute ``length`` in metres and optional
``geometry``) or road lines, turned into a graph by
:func:`road_graph_from_lines` (every vertex a node; vertices of different lines
closer than ``snap_tolerance_m`` joined).  Fibre is laid in both directions
whatever the traffic rules, so the graph is used undirected (shortest of
parallel edges).

**Routing.**  Every site is snapped to the nearest point of its nearest road
edge (``snap_m`` = straight distance site -> edge); the position along the
edge splits the edge ``length`` between its two end nodes.  One multi-source
Dijkstra (:func:`scipy.sparse.csgraph.dijkstra` from a virtual source joined to
both end nodes of every existing site's edge, with weight = that site's snap
distance + the distance along the edge) gives the network distance from every
node to its nearest existing site, and the path, in one pass - equivalent to
``networkx.multi_source_dijkstra`` with initial offsets, without building the
path of every node.  A new site's route is the best of leaving its edge
through either end node, or running along the edge directly to an existing
site snapped on the same edge::

    length_m = snap(new site) + network distance + snap(existing site)

**Fallback.**  A new site whose node cannot reach any existing site (a
disconnected graph) or that lies farther than ``max_snap_m`` from the graph
gets a straight line to the nearest existing site, flagged
``method = "straight_line"``, and a warning gives their number.

Layer ``backhaul_routes`` (LineString new site -> existing site):
``site_id``, ``target_site_id``, ``method`` (``road`` | ``straight_line``),
``length_m``, ``network_m`` (along the roads), ``snap_m`` (both snap
distances), ``straight_m`` (straight distance to the target), ``district`` (of
the new site).  The geometry follows the road edges; its length equals
``length_m`` when edge ``length`` attributes equal the geometry lengths (graphs
from lines; osmnx lengths may differ slightly).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from scipy import sparse
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree
from shapely import LineString, STRtree, get_coordinates
from shapely.ops import substring

from towerplan._validate import (
    assign_district,
    points_xy,
    require_columns,
    require_metric,
    require_same_crs,
)
from towerplan.errors import (
    N_,
    ColumnError,
    CRSError,
    EmptyInputError,
    ParameterError,
    warn_user,
)

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

    Parameters
    ----------
    roads : GeoDataFrame
        Road lines in a metric CRS.
    snap_tolerance_m : float
        Vertices closer than this become one node.

    Returns
    -------
    networkx.Graph
        Nodes with ``x``/``y``, edges with ``length`` (m).

    Raises
    ------
    CRSError
        Roads without a CRS or in a geographic CRS.
    ParameterError
        Negative ``snap_tolerance_m``.
    """
    crs = require_metric(roads, "roads")
    if not np.isfinite(snap_tolerance_m) or snap_tolerance_m < 0:
        raise ParameterError(
            msgid=N_("snap_tolerance_m = {snap_tolerance_m}: must be >= 0 m"),
            snap_tolerance_m=snap_tolerance_m,
        )
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
            msgid=N_(
                "road_graph: the graph has no 'crs' in graph.graph; build it with osmnx and "
                "project it, e.g. osmnx.project_graph(G, to_crs=scenario.crs)"
            )
        )
    c = CRS.from_user_input(gcrs)
    if not c.is_projected:
        raise CRSError(
            msgid=N_(
                "road_graph: CRS {crs} is geographic; project it first with "
                "osmnx.project_graph(G, to_crs=scenario.crs)"
            ),
            crs=c.to_string(),
        )
    if c != sites_crs:
        raise CRSError(
            msgid=N_(
                "road_graph ({crs}) and the sites ({sites_crs}) are in different CRSs; "
                "project the graph with osmnx.project_graph(G, to_crs=...)"
            ),
            crs=c.to_string(),
            sites_crs=sites_crs.to_string(),
        )


class _Routable:
    """Undirected view of a networkx graph: unique edges (shortest of parallels) with
    geometries oriented from their first to their second end node, and an STRtree."""

    def __init__(self, graph: Any) -> None:
        nodes = list(graph.nodes)
        index = {n: i for i, n in enumerate(nodes)}
        try:
            self.xy = np.array(
                [[float(graph.nodes[n]["x"]), float(graph.nodes[n]["y"])] for n in nodes]
            ).reshape(-1, 2)
        except KeyError:
            raise ColumnError(
                msgid=N_(
                    "road_graph: every node needs 'x' and 'y' attributes (osmnx graphs have them)"
                )
            ) from None
        best: dict[tuple[int, int], tuple[float, np.ndarray]] = {}
        for u, v, data in graph.edges(data=True):
            iu, iv = index[u], index[v]
            if iu == iv:
                continue
            line = data.get("geometry")
            if line is not None:
                c = np.asarray(line.coords)[:, :2]
                if np.hypot(*(c[0] - self.xy[iu])) > np.hypot(*(c[-1] - self.xy[iu])):
                    c = c[::-1]
            else:
                c = np.vstack([self.xy[iu], self.xy[iv]])
            length = data.get("length")
            w = float(length) if length is not None else float(LineString(c).length)
            key, coords = ((iu, iv), c) if iu < iv else ((iv, iu), c[::-1])
            if key not in best or w < best[key][0]:
                best[key] = (w, coords)
        self.n = len(nodes)
        keys = list(best)
        self.eu = np.array([k[0] for k in keys], dtype=int)
        self.ev = np.array([k[1] for k in keys], dtype=int)
        self.elen = np.array([max(best[k][0], 1e-9) for k in keys], dtype=float)
        self.lines = np.array([LineString(best[k][1]) for k in keys], dtype=object)
        self.tree = STRtree(self.lines)

    def snap(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nearest edge of each point, the distance to it and the network distance from
        the edge's first node to the projected point (scaled to the edge ``length``)."""
        pts = shapely.points(xy)
        _, edge = self.tree.query_nearest(pts, return_distance=False, all_matches=False)
        lines = self.lines[edge]
        dist = shapely.distance(pts, lines)
        glen = shapely.length(lines)
        along = shapely.line_locate_point(lines, pts)
        frac = np.where(glen > 0, along / np.where(glen > 0, glen, 1.0), 0.0)
        return edge, dist, frac * self.elen[edge]

    def csr(self, extra_nodes: np.ndarray, extra_w: np.ndarray) -> sparse.csr_matrix:
        """Symmetric graph plus a virtual node (index n) joined to ``extra_nodes``."""
        n = self.n + 1
        a = np.concatenate([self.eu, np.full(len(extra_nodes), self.n)]).astype(int)
        b = np.concatenate([self.ev, extra_nodes]).astype(int)
        w = np.concatenate([self.elen, np.maximum(extra_w, 1e-9)])
        return sparse.csr_matrix((w, (a, b)), shape=(n, n))

    def part(self, edge: int, pos: float, to_first: bool) -> np.ndarray:
        """Coordinates along ``edge`` from the point at network distance ``pos`` (from
        the first node) to the first (``to_first``) or second node."""
        line = self.lines[edge]
        g = line.length * (pos / self.elen[edge]) if self.elen[edge] > 0 else 0.0
        seg = substring(line, g, 0.0) if to_first else substring(line, g, line.length)
        c = np.asarray(seg.coords)[:, :2] if not seg.is_empty else np.zeros((0, 2))
        return c.reshape(-1, 2)

    def between(self, edge: int, p0: float, p1: float) -> np.ndarray:
        """Coordinates along ``edge`` between network positions ``p0`` and ``p1``."""
        line = self.lines[edge]
        s = line.length / self.elen[edge] if self.elen[edge] > 0 else 0.0
        seg = substring(line, p0 * s, p1 * s)
        return np.asarray(seg.coords)[:, :2].reshape(-1, 2)

    def node_path(self, chain: list[int]) -> np.ndarray:
        """Coordinates along a node chain (edge geometries oriented)."""
        pts = [self.xy[chain[0]][None, :]]
        for u, v in itertools.pairwise(chain):
            key = (min(u, v), max(u, v))
            k = self._edge_index(key)
            c = np.asarray(self.lines[k].coords)[:, :2]
            seg = c if u == key[0] else c[::-1]
            pts.append(seg[1:])
        return np.vstack(pts)

    def _edge_index(self, key: tuple[int, int]) -> int:
        if not hasattr(self, "_lut"):
            self._lut = {
                (int(a), int(b)): k for k, (a, b) in enumerate(zip(self.eu, self.ev, strict=True))
            }
        return self._lut[key]


def _districts_of(sites: gpd.GeoDataFrame, districts: gpd.GeoDataFrame | None) -> pd.Series:
    """The ``district`` column where filled, else :func:`assign_district`."""
    base = (
        sites["district"].astype(object)
        if "district" in sites.columns
        else pd.Series(None, index=sites.index, dtype=object)
    )
    todo = base.isna()
    if not todo.any() or districts is None or len(districts) == 0:
        return base
    found = assign_district(sites.loc[todo], districts, name="new_sites")
    return base.where(~todo, found.reindex(sites.index))


def fibre_routes(
    new_sites: gpd.GeoDataFrame,
    existing_sites: gpd.GeoDataFrame,
    *,
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
        Sites farther than this from every road edge are routed straight.
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
    crs = _check_route_inputs(new_sites, existing_sites, max_snap_m)
    if len(new_sites) == 0:
        return gpd.GeoDataFrame(
            {c: pd.Series(dtype=object) for c in _COLUMNS},
            geometry=gpd.GeoSeries([], crs=crs),
            crs=crs,
        )

    nxy = points_xy(new_sites, "new_sites")
    exy = points_xy(existing_sites, "existing_sites")
    n = len(nxy)
    graph = _resolve_graph(road_graph, roads, crs, snap_tolerance_m)
    if graph is None or graph.number_of_nodes() == 0:
        warn_user(
            logger,
            N_(
                "backhaul: no road network given (scenario key data.roads); all {n} routes are "
                "straight lines (method='straight_line')"
            ),
            stacklevel=2,
            n=n,
        )
        r = _RouteArrays.empty(n)
    else:
        r = _road_routes(_Routable(graph), nxy, exy, max_snap_m)
    straight = _straight_fallback(r, nxy, exy)
    if len(straight) and graph is not None and graph.number_of_nodes() > 0:
        warn_user(
            logger,
            N_(
                "backhaul: {k} of {n} new sites cannot reach an existing site on the road graph "
                "(disconnected graph or more than {snap:.0f} m from a road); they get a "
                "straight-line route flagged method='straight_line'"
            ),
            stacklevel=2,
            k=len(straight),
            n=n,
            snap=max_snap_m,
        )
    method = np.full(n, "road", dtype=object)
    method[straight] = "straight_line"
    straight_m = np.hypot(*(nxy - exy[r.target]).T)
    length = np.where(method == "road", r.snap + r.network, straight_m)
    out = gpd.GeoDataFrame(
        {
            "site_id": new_sites["site_id"].to_numpy(),
            "target_site_id": existing_sites["site_id"].to_numpy()[r.target],
            "method": method,
            "length_m": length,
            "network_m": r.network,
            "snap_m": r.snap,
            "straight_m": straight_m,
            "district": _districts_of(new_sites, districts).to_numpy(),
        },
        geometry=r.geoms,
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


def _check_route_inputs(
    new_sites: gpd.GeoDataFrame, existing_sites: gpd.GeoDataFrame, max_snap_m: float
) -> Any:
    """The checks of :func:`fibre_routes`; returns the (metric) CRS of the layers."""
    crs = require_metric(new_sites, "new_sites")
    require_metric(existing_sites, "existing_sites")
    require_same_crs(new_sites, existing_sites, "new_sites", "existing_sites")
    for name, gdf in (("new_sites", new_sites), ("existing_sites", existing_sites)):
        require_columns(gdf, ["site_id"], name)
    if len(existing_sites) == 0:
        raise EmptyInputError(
            msgid=N_("existing_sites: no existing site to connect to; backhaul needs at least one")
        )
    if not np.isfinite(max_snap_m) or max_snap_m < 0:
        raise ParameterError(
            msgid=N_("max_snap_m = {max_snap_m}: must be >= 0 m"),
            max_snap_m=max_snap_m,
        )
    return crs


@dataclass
class _RouteArrays:
    """Per new site: target existing site (-1: none yet), network and snap metres, geometry."""

    target: np.ndarray
    network: np.ndarray
    snap: np.ndarray
    geoms: list[LineString | None]

    @classmethod
    def empty(cls, n: int) -> _RouteArrays:
        return cls(np.full(n, -1, dtype=int), np.full(n, np.nan), np.full(n, np.nan), [None] * n)


def _resolve_graph(
    road_graph: Any, roads: gpd.GeoDataFrame | None, crs: CRS, snap_tolerance_m: float
) -> Any:
    """The routable graph: ``road_graph`` (CRS checked), else one built from ``roads``."""
    if road_graph is None and roads is not None:
        if require_metric(roads, "roads") != crs:
            raise CRSError(
                msgid=N_("roads ({roads_crs}) and new_sites ({crs}) are in different CRSs"),
                roads_crs=roads.crs,
                crs=crs.to_string(),
            )
        return road_graph_from_lines(roads, snap_tolerance_m)
    if road_graph is not None:
        _graph_crs(road_graph, crs)
    return road_graph


def _road_routes(
    rg: _Routable, nxy: np.ndarray, exy: np.ndarray, max_snap_m: float
) -> _RouteArrays:
    """Shortest road route from each new site to its nearest existing site (one Dijkstra)."""
    r = _RouteArrays.empty(len(nxy))
    e_edge, d_e, pos_e = rg.snap(exy)
    n_edge, d_n, pos_n = rg.snap(nxy)
    ok_e = d_e <= max_snap_m
    if not ok_e.any():
        warn_user(
            logger,
            N_("backhaul: no existing site within {snap:.0f} m of the road graph"),
            log_only=True,
            snap=max_snap_m,
        )
        return r
    ke = np.flatnonzero(ok_e)
    # virtual source -> both end nodes of each existing site's edge
    cand = pd.DataFrame(
        {
            "node": np.concatenate([rg.eu[e_edge[ke]], rg.ev[e_edge[ke]]]),
            "w": np.concatenate([d_e[ke] + pos_e[ke], d_e[ke] + (rg.elen[e_edge[ke]] - pos_e[ke])]),
            "site": np.concatenate([ke, ke]),
        }
    )
    cand = cand.sort_values(["node", "w", "site"], kind="stable").drop_duplicates("node")
    site_at_node = dict(zip(cand["node"], cand["site"], strict=True))
    mat = rg.csr(cand["node"].to_numpy(), cand["w"].to_numpy(dtype=float))
    dist, pred = dijkstra(mat, directed=False, indices=rg.n, return_predecessors=True)
    on_edge: dict[int, list[int]] = {}
    for kk in ke.tolist():
        on_edge.setdefault(int(e_edge[kk]), []).append(kk)
    ex_snap = (e_edge, d_e, pos_e)
    for i in range(len(nxy)):
        if d_n[i] > max_snap_m:
            continue
        ed, pi = int(n_edge[i]), float(pos_n[i])
        u, v = int(rg.eu[ed]), int(rg.ev[ed])
        via: list[tuple[float, str]] = [
            (float(pi + dist[u]), "u"),
            (float(rg.elen[ed] - pi + dist[v]), "v"),
        ]
        for kk in on_edge.get(ed, []):
            via.append((float(abs(pi - pos_e[kk]) + d_e[kk]), f"e{kk}"))
        best_d, how = min(via, key=lambda t: t[0])
        if not np.isfinite(best_d):
            continue
        j, mid = _route_path(rg, ed, pi, how, pred, site_at_node, ex_snap)
        r.target[i] = j
        r.snap[i] = d_n[i] + d_e[j]
        r.network[i] = max(float(best_d) - d_e[j], 0.0)
        r.geoms[i] = LineString(np.vstack([nxy[i][None, :], mid, exy[j][None, :]]))
    return r


def _route_path(
    rg: _Routable,
    ed: int,
    pi: float,
    how: str,
    pred: np.ndarray,
    site_at_node: dict[int, int],
    ex_snap: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[int, np.ndarray]:
    """Target site and road polyline of a new site on edge ``ed`` at ``pi``, leaving by ``how``.

    ``how``: ``"u"`` / ``"v"`` (through that end node and the shortest-path tree) or
    ``"e<k>"`` (existing site ``k`` on the same edge).
    """
    e_edge, _, pos_e = ex_snap
    if how.startswith("e"):
        j = int(how[1:])
        return j, rg.between(ed, pi, float(pos_e[j]))
    chain = [int(rg.eu[ed]) if how == "u" else int(rg.ev[ed])]
    while True:
        p = int(pred[chain[-1]])
        if p == rg.n or p < 0:
            break
        chain.append(p)
    j = int(site_at_node[chain[-1]])
    ej = int(e_edge[j])
    head = rg.part(ed, pi, to_first=(how == "u"))
    tail = rg.part(ej, float(pos_e[j]), to_first=(chain[-1] == rg.eu[ej]))[::-1]
    return j, np.vstack([head, rg.node_path(chain), tail])


def _straight_fallback(r: _RouteArrays, nxy: np.ndarray, exy: np.ndarray) -> np.ndarray:
    """Give every site without a road route a straight line to the nearest existing site.

    Fills ``r`` in place and returns the indices of those sites.
    """
    straight = np.flatnonzero(r.target < 0)
    if len(straight):
        _, nearest = cKDTree(exy).query(nxy[straight])
        r.target[straight] = nearest
        for i, jn in zip(straight.tolist(), nearest.tolist(), strict=True):
            r.geoms[i] = LineString([nxy[i], exy[jn]])
        r.snap[straight] = 0.0
        r.network[straight] = 0.0
    return straight


def fibre_km_by_district(routes: gpd.GeoDataFrame) -> pd.Series:
    """New fibre km per district (sum of ``length_m`` / 1000 by ``district``).

    Parameters
    ----------
    routes : GeoDataFrame
        :func:`fibre_routes` output.

    Returns
    -------
    Series
        ``backhaul_fibre_km`` by district (``(outside)`` for routes without one).
    """
    require_columns(routes, ["district", "length_m"], "routes", fix="use fibre_routes()")
    s = routes.groupby(routes["district"].fillna("(outside)"))["length_m"].sum() / 1000.0
    s.name = "backhaul_fibre_km"
    s.index.name = "district"
    return s


def summary_keys(routes: gpd.GeoDataFrame) -> dict[str, Any]:
    """Keys for ``summary.json``: ``backhaul_fibre_km`` (total), ``backhaul_routes``
    (count), ``backhaul_straight_line`` (routes without a road path),
    ``backhaul_mean_length_m``; road against straight line: ``backhaul_road_routed_km``
    (length of the road-routed routes), ``backhaul_road_routed_straight_km`` (the straight
    distances of the same routes) and their ratio ``backhaul_road_detour_factor``.

    Parameters
    ----------
    routes : GeoDataFrame
        :func:`fibre_routes` output.

    Returns
    -------
    dict
        The keys above.
    """
    n = len(routes)
    road = (routes["method"] == "road").to_numpy()
    road_m = float(routes["length_m"].to_numpy(float)[road].sum())
    straight_m = float(routes["straight_m"].to_numpy(float)[road].sum())
    return {
        "backhaul_fibre_km": round(float(routes["length_m"].sum()) / 1000.0, 3),
        "backhaul_routes": n,
        "backhaul_straight_line": int((routes["method"] == "straight_line").sum()),
        "backhaul_mean_length_m": round(float(routes["length_m"].mean()), 1) if n else 0.0,
        "backhaul_road_routed_km": round(road_m / 1000.0, 3),
        "backhaul_road_routed_straight_km": round(straight_m / 1000.0, 3),
        "backhaul_road_detour_factor": round(road_m / straight_m, 4) if straight_m > 0 else None,
    }


def district_columns(routes: gpd.GeoDataFrame) -> pd.DataFrame:
    """Per-district columns for ``district_kpis.csv`` (index ``district``):
    ``backhaul_fibre_km`` and ``backhaul_routes``.

    Parameters
    ----------
    routes : GeoDataFrame
        :func:`fibre_routes` output.

    Returns
    -------
    DataFrame
        Indexed by district.
    """
    km = fibre_km_by_district(routes)
    cnt = routes.groupby(routes["district"].fillna("(outside)")).size()
    return pd.DataFrame({"backhaul_fibre_km": km, "backhaul_routes": cnt.reindex(km.index)})
