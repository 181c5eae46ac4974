"""Turn overlapping, gappy boundary polygons into a partition (private).

Thinned administrative layers (e.g. censusVN2009, Douglas-Peucker per polygon)
overlap their neighbours and leave slivers between them.  Gridding such a layer
puts the people of an overlap into cells of two units and nobody into the
slivers; a point-in-polygon join can return 0 or 2 units.  :func:`make_partition`
fixes the shapes so that every point of the union belongs to exactly one unit:

- **overlaps**: units are taken in the given order (default: row order); each
  keeps only what no earlier unit holds (``g_i - (g_1 u ... u g_{i-1})``);
- **interior gaps** (holes of the union, not the outer coast or border): each
  gap joins the unit with which it shares the longest border.

Populations are attributes of units, not of shapes: they are not changed, so
no person is counted twice or lost.  Units that lose all their area to earlier
ones keep their original shape (reported), since dropping them would lose people.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely

from towerplan._validate import require_metric
from towerplan.errors import N_, warn_user

logger = logging.getLogger(__name__)

__all__ = ["PartitionReport", "make_partition", "partition_geoms"]

_TOUCH_M = 1.0
"""Border band (m) used to measure the border a gap shares with a unit."""


@dataclass(frozen=True)
class PartitionReport:
    """What :func:`make_partition` changed (areas in km²)."""

    overlap_km2: float
    gaps_filled_km2: float
    n_gaps: int
    n_emptied: int

    def as_dict(self) -> dict[str, float | int]:
        """Plain dict for JSON summaries."""
        return {
            "overlap_removed_km2": round(self.overlap_km2, 3),
            "gaps_filled_km2": round(self.gaps_filled_km2, 3),
            "n_gaps_filled": self.n_gaps,
            "n_units_kept_unclipped": self.n_emptied,
        }


def _polygonal(g: shapely.Geometry, grid: float | None) -> shapely.Geometry:
    """Valid polygonal part of ``g`` (set operations may leave lines or points)."""
    g = shapely.make_valid(g)
    parts = [p for p in shapely.get_parts(g) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts, grid_size=grid) if parts else shapely.Polygon()


def _remove_overlaps(geoms: np.ndarray, grid: float | None) -> tuple[np.ndarray, float, int]:
    """Each unit minus every earlier unit it intersects."""
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    out = geoms.copy()
    removed = 0.0
    emptied = 0
    order = np.argsort(left, kind="stable")
    left, right = left[order], right[order]
    starts = np.searchsorted(left, np.arange(len(geoms)))
    ends = np.searchsorted(left, np.arange(len(geoms)), side="right")
    for i in range(len(geoms)):
        earlier = right[starts[i] : ends[i]]
        earlier = earlier[earlier < i]
        if not len(earlier):
            continue
        earlier_union = shapely.union_all(out[earlier], grid_size=grid)
        clipped = _polygonal(shapely.difference(out[i], earlier_union, grid_size=grid), grid)
        if clipped.is_empty or clipped.area <= 0:
            emptied += 1
            continue
        removed += out[i].area - clipped.area
        out[i] = clipped
    return out, removed, emptied


def _fill_gaps(
    geoms: np.ndarray, grid: float | None, touch: float
) -> tuple[np.ndarray, float, int]:
    """Give every hole of the union to the unit sharing the longest border with it."""
    union = shapely.union_all(geoms, grid_size=grid)
    holes = [shapely.Polygon(ring) for part in shapely.get_parts(union) for ring in part.interiors]
    if not holes:
        return geoms, 0.0, 0
    out = geoms.copy()
    tree = shapely.STRtree(geoms)
    add: dict[int, list[shapely.Geometry]] = {}
    filled = 0.0
    for hole in holes:
        band = hole.buffer(touch)
        cand = tree.query(band, predicate="intersects")
        if not len(cand):
            continue
        shared = shapely.area(shapely.intersection(geoms[cand], band))
        j = int(cand[int(np.argmax(shared))])
        add.setdefault(j, []).append(hole)
        filled += hole.area
    for j, parts in add.items():
        out[j] = _polygonal(shapely.union_all([out[j], *parts], grid_size=grid), grid)
    return out, filled, len(holes)


def partition_geoms(
    geoms: np.ndarray, *, grid_size: float | None = None, touch: float = _TOUCH_M
) -> tuple[np.ndarray, PartitionReport]:
    """Geometry core of :func:`make_partition` (any planar coordinates).

    Parameters
    ----------
    geoms : ndarray of shapely geometries
        (Multi)polygons in priority order.
    grid_size : float, optional
        Precision grid of every overlay (coordinates are snapped to it), so
        that the result stays a valid coverage when written at that precision.
    touch : float
        Width of the border band that measures shared borders of gaps.

    Returns
    -------
    ndarray, PartitionReport
        New geometries; the report's areas are in squared coordinate units / 1e6.
    """
    g = np.asarray(shapely.make_valid(np.asarray(geoms, dtype=object)), dtype=object)
    if grid_size is not None:
        g = shapely.set_precision(g, grid_size)
    g = np.array([_polygonal(x, grid_size) for x in g], dtype=object)
    clean, removed, emptied = _remove_overlaps(g, grid_size)
    clean, filled, n_gaps = _fill_gaps(clean, grid_size, touch)
    if emptied:
        warn_user(
            logger,
            N_("{n} unit(s) lie entirely inside earlier units; kept with their own shape"),
            log_only=True,
            n=emptied,
        )
    return clean, PartitionReport(removed / 1e6, filled / 1e6, n_gaps, emptied)


def make_partition(
    polys: gpd.GeoDataFrame, *, grid_size: float | None = None
) -> tuple[gpd.GeoDataFrame, PartitionReport]:
    """Remove overlaps and fill interior gaps of a polygon layer (see module docstring).

    Parameters
    ----------
    polys : GeoDataFrame
        (Multi)polygons in a metric CRS, in priority order (earlier rows keep
        contested area).
    grid_size : float, optional
        Precision grid (metres) of the overlays.

    Returns
    -------
    GeoDataFrame
        Same rows, index and attributes, new geometries.
    PartitionReport
        Overlap removed and gaps filled (km²).
    """
    require_metric(polys, "boundary polygons")
    clean, report = partition_geoms(polys.geometry.to_numpy(), grid_size=grid_size)
    logger.info(
        "partition: %.3f km2 of overlap removed, %d gaps (%.3f km2) filled",
        report.overlap_km2,
        report.n_gaps,
        report.gaps_filled_km2,
    )
    out = polys.copy()
    out[polys.geometry.name] = gpd.GeoSeries(clean, index=polys.index, crs=polys.crs)
    return out, report
