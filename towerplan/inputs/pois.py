"""Points of interest."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from towerplan._validate import DEFAULT_CRS
from towerplan.errors import N_, Text
from towerplan.inputs._common import (
    _col,
    _norm,
    _parse_crs,
)
from towerplan.inputs._points import OutsidePolicy, keep_inside
from towerplan.inputs.vector import (
    read_vector,
)

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- POIs


def read_pois(
    path: str | Path,
    category: str | None = None,
    columns: Mapping[str, str] | None = None,
    category_map: Mapping[str, str] | None = None,
    layer: str | None = None,
    crs: str | CRS = DEFAULT_CRS,
    source_crs: str | CRS | None = None,
    source: str | None = None,
    repair: bool = False,
    encoding: str | None = None,
    study_area: BaseGeometry | None = None,
    outside: OutsidePolicy = "error",
) -> gpd.GeoDataFrame:
    """Read points of interest; polygons and lines become representative points.

    Parameters
    ----------
    path : str or Path
        Vector file of POIs.
    category : str, optional
        Category of every feature (e.g. ``hospital``); otherwise read from
        ``columns['category']`` (default column ``category``).
    columns : mapping, optional
        ``{'name': .., 'category': ..}``; ``name`` defaults to ``name`` then
        ``ten`` when present, else names are empty.
    category_map : mapping, optional
        File category value -> towerplan category (matched case-insensitively);
        unmapped values are kept as they are.
    layer, crs, source_crs
        As in :func:`read_vector`.
    source : str, optional
        ``source`` column value (default: the file name).
    repair, encoding
        As in :func:`read_vector`.
    study_area : shapely geometry, optional
        Area (working CRS) the POIs must fall in; see ``outside``.
    outside : {'error', 'drop', 'keep'}
        POIs outside ``study_area``: an error with a lon/lat-swap hint, dropped
        (count in ``attrs['outside_dropped']``) or kept.

    Returns
    -------
    GeoDataFrame
        ``name``, ``category``, ``source``, ``from_polygon`` (bool) points in ``crs``.
    """
    label = Text(N_("POI file {path}"), path=path)
    gdf = read_vector(
        path,
        layer=layer,
        name=label,
        crs=None,
        source_crs=source_crs,
        repair=repair,
        encoding=encoding,
    )
    name_c = _col(gdf, columns, "name", ("name", "ten", "Name", "NAME"), label, False)
    if category is not None:
        cats = pd.Series(category, index=gdf.index, dtype=object)
    else:
        cat_c = _col(gdf, columns, "category", ("category",), label, True)
        assert cat_c is not None
        raw = gdf[cat_c].astype(str)
        if category_map:
            cmap = {_norm(k): v for k, v in category_map.items()}
            cats = raw.map(lambda v: cmap.get(_norm(v), v.strip()))
        else:
            cats = raw.str.strip()
    names = (
        gdf[name_c].fillna("").astype(str).str.strip() if name_c else pd.Series("", index=gdf.index)
    )
    is_point = (gdf.geom_type == "Point").to_numpy()
    geom = gdf.geometry.copy()
    if not is_point.all():
        geom[~is_point] = gdf.geometry[~is_point].representative_point()
    multi = geom.geom_type == "MultiPoint"
    if multi.any():
        geom[multi] = geom[multi].representative_point()
    src_xy = (geom.x.to_numpy(float), geom.y.to_numpy(float))
    with np.errstate(all="ignore"):
        work = geom.to_crs(_parse_crs(crs, "working crs"))
    out = gpd.GeoDataFrame(
        {
            "name": names.to_numpy(),
            "category": cats.to_numpy(),
            "source": source or Path(path).name,
            "from_polygon": ~is_point | multi.to_numpy(),
        },
        geometry=work.to_numpy(),
        crs=work.crs,
        index=gdf.index,
    )
    n_out = 0
    if study_area is not None:
        out, n_out = keep_inside(
            out,
            study_area,
            label,
            src_xy=src_xy,
            src_crs=CRS.from_user_input(gdf.crs),
            labels=names.where(names != "", pd.Series(gdf.index, index=gdf.index).astype(str)),
            policy=outside,
            what=Text(N_("POIs")),
        )
    out.attrs["outside_dropped"] = n_out if outside == "drop" else 0
    logger.info("%s: %d POIs", label, len(out))
    return out
