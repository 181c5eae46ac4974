"""Coverage-gap polygons from a demand grid (private)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import rasterio.features
from affine import Affine
from shapely.geometry import shape
from shapely.ops import unary_union


def gap_polygons(
    xy: np.ndarray,
    population: np.ndarray,
    uncovered: np.ndarray,
    *,
    transform: Affine,
    shape_rc: tuple[int, int],
    crs: str,
    label: dict[str, str],
) -> gpd.GeoDataFrame:
    """Dissolve uncovered populated demand cells into one (multi)polygon.

    Parameters
    ----------
    xy : ndarray (n, 2)
        Cell-centre coordinates of the demand points (working CRS).
    population : ndarray (n,)
        Population of each demand point.
    uncovered : ndarray of bool (n,)
        True where the cell is not covered.
    transform, shape_rc : Affine, (rows, cols)
        The demand grid's geotransform and shape.
    crs : str
        Working CRS.
    label : dict
        Attribute columns of the single output row (e.g. operator, stage).

    Returns
    -------
    GeoDataFrame
        One row with ``population``, ``area_km2``, ``n_cells`` and the label
        columns; empty geometry when nothing is uncovered.
    """
    sel = uncovered & (population > 0)
    inv = ~transform
    x, y = xy[sel, 0], xy[sel, 1]
    c = np.floor(inv.a * x + inv.b * y + inv.c).astype(np.int64)
    r = np.floor(inv.d * x + inv.e * y + inv.f).astype(np.int64)
    ok = (r >= 0) & (r < shape_rc[0]) & (c >= 0) & (c < shape_rc[1])
    mask = np.zeros(shape_rc, dtype=np.uint8)
    mask[r[ok], c[ok]] = 1
    polys = [
        shape(geom)
        for geom, val in rasterio.features.shapes(mask, mask=mask.astype(bool), transform=transform)
        if val == 1
    ]
    geom = unary_union(polys) if polys else None
    row: dict[str, object] = dict(label)
    row.update(
        {
            "population": float(population[sel].sum()),
            "area_km2": float(geom.area / 1e6) if geom is not None else 0.0,
            "n_cells": int(sel.sum()),
        }
    )
    return gpd.GeoDataFrame([row], geometry=[geom], crs=crs)
