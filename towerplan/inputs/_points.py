"""One outside-the-area / lon-lat-swap detector for every point layer (private)."""

from __future__ import annotations

import logging
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry

from towerplan.errors import (
    StudyAreaError,
)
from towerplan.inputs._common import (
    _rows_text,
)

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- sites


def _check_inside(
    pts: gpd.GeoSeries,
    x: np.ndarray,
    y: np.ndarray,
    src_crs: CRS,
    area: BaseGeometry,
    labels: pd.Series,
    name: str,
    lonlat_cols: tuple[str, str] | None,
    outside: Literal["raise", "drop", "keep"],
) -> np.ndarray:
    """Mask of points inside ``area``; raise StudyAreaError (with a swap hint) if asked."""
    inside = np.asarray(shapely.contains_xy(area, pts.x.to_numpy(), pts.y.to_numpy()))
    n_out = int((~inside).sum())
    if n_out == 0 or outside != "raise":
        if n_out:
            logger.warning(
                "%s: %d of %d points fall outside the study area (%s)",
                name,
                n_out,
                len(pts),
                outside,
            )
        return inside
    tr = Transformer.from_crs(src_crs, pts.crs, always_xy=True)
    with np.errstate(all="ignore"):
        sx, sy = tr.transform(y[~inside], x[~inside])
    sx, sy = np.asarray(sx, float), np.asarray(sy, float)
    ok = np.isfinite(sx) & np.isfinite(sy)
    k = int(np.asarray(shapely.contains_xy(area, sx[ok], sy[ok])).sum()) if ok.any() else 0
    if k > 0:
        how = (
            f"fix the column mapping, e.g. columns={{'lon': '{lonlat_cols[1]}', 'lat': "
            f"'{lonlat_cols[0]}'}}"
            if lonlat_cols
            else "swap the coordinates in the file"
        )
        hint = f"yes, likely: swapping them would put {k} of these {n_out} inside; {how}"
    else:
        hint = (
            "swapping them would not put them inside either; check the file's CRS "
            "(source_crs=) and that the file covers this study area"
        )
    raise StudyAreaError(
        f"{name}: {n_out} of {len(pts)} points fall outside the study area; are lon and lat "
        f"swapped? {hint} (first outside: {_rows_text(labels[~inside], 5)})"
    )
