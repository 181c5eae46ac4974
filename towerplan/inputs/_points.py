"""One outside-the-area / lon-lat-swap detector for every point layer (private).

Sites, POIs, user candidates and OpenCelliD structures all pass through
:func:`keep_inside`: points outside the study area are an error (with a hint
whether swapping lon and lat would put them inside) unless the scenario says
``data.outside: drop``, which drops them, counts them and warns once.
"""

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
    N_,
    StudyAreaError,
    Text,
    warn_user,
)
from towerplan.inputs._common import _rows_text

logger = logging.getLogger(__name__)

OutsidePolicy = Literal["error", "drop", "keep"]


def _swap_hint(
    x: np.ndarray,
    y: np.ndarray,
    src_crs: CRS,
    work_crs: CRS,
    area: BaseGeometry,
    lonlat_cols: tuple[str, str] | None,
) -> Text:
    """'are lon and lat swapped?' answered by trying the swap."""
    tr = Transformer.from_crs(src_crs, work_crs, always_xy=True)
    with np.errstate(all="ignore"):
        sx, sy = tr.transform(y, x)
    sx, sy = np.asarray(sx, float), np.asarray(sy, float)
    ok = np.isfinite(sx) & np.isfinite(sy)
    k = int(np.asarray(shapely.contains_xy(area, sx[ok], sy[ok])).sum()) if ok.any() else 0
    if k > 0:
        how = (
            Text(
                N_("fix the column mapping, e.g. columns: {{lon: {lat}, lat: {lon}}}"),
                lat=lonlat_cols[1],
                lon=lonlat_cols[0],
            )
            if lonlat_cols
            else Text(N_("swap the coordinates in the file"))
        )
        return Text(
            N_("yes, likely: swapping them would put {k} of them inside; {how}"), k=k, how=how
        )
    return Text(
        N_(
            "swapping them would not put them inside either; check the layer's CRS (scenario "
            "key crs: of the layer) and that the file covers this study area"
        )
    )


POINTS = Text(N_("points"))


def keep_inside(
    layer: gpd.GeoDataFrame,
    area: BaseGeometry,
    name: str,
    *,
    src_xy: tuple[np.ndarray, np.ndarray] | None = None,
    src_crs: CRS | None = None,
    labels: pd.Series | None = None,
    lonlat_cols: tuple[str, str] | None = None,
    policy: OutsidePolicy = "error",
    what: str = POINTS,
) -> tuple[gpd.GeoDataFrame, int]:
    """The points of ``layer`` inside ``area``, and how many fell outside.

    Parameters
    ----------
    layer : GeoDataFrame
        Points in the working CRS (non-finite coordinates count as outside).
    area : shapely geometry
        Study area in the working CRS (districts, buffered).
    name : str
        The input, for messages.
    src_xy, src_crs : optional
        The points' coordinates as read and their CRS, to test a lon/lat swap.
    labels : Series, optional
        Row labels for messages (default: the index).
    lonlat_cols : (str, str), optional
        The lon/lat columns of a CSV, to phrase the fix as a column mapping.
    policy : {'error', 'drop', 'keep'}
        ``error``: raise :class:`StudyAreaError`; ``drop``: drop them and warn
        once; ``keep``: keep them and warn once.
    what : str
        What the points are, for messages.

    Returns
    -------
    (GeoDataFrame, int)
        Kept points (index kept) and the number outside.
    """
    x = layer.geometry.x.to_numpy(float)
    y = layer.geometry.y.to_numpy(float)
    fin = np.isfinite(x) & np.isfinite(y)
    inside = np.zeros(len(layer), dtype=bool)
    inside[fin] = np.asarray(shapely.contains_xy(area, x[fin], y[fin]))
    n_out = int((~inside).sum())
    if n_out == 0:
        return layer, 0
    lab = labels if labels is not None else pd.Series(layer.index, index=layer.index)
    first = _rows_text(lab[~inside], 5)
    if policy == "error":
        hint = Text(N_("check the layer's coordinates and CRS"))
        if src_xy is not None and src_crs is not None:
            sx, sy = (np.asarray(v, float)[~inside] for v in src_xy)
            hint = _swap_hint(sx, sy, src_crs, CRS.from_user_input(layer.crs), area, lonlat_cols)
        raise StudyAreaError(
            msgid=N_(
                "{name}: {n_out} of {n_layer} {what} fall outside the study area; are lon "
                "and lat swapped? {hint} (first outside: {first}); or set data.outside: drop "
                "in the scenario to drop them"
            ),
            name=name,
            n_out=n_out,
            n_layer=len(layer),
            what=what,
            hint=hint,
            first=first,
        )
    warn_user(
        logger,
        N_(
            "{name}: {n_out} of {n_layer} {what} fall outside the study area and are {fate} "
            "(data.outside: {policy}; first: {first})"
        ),
        log_only=True,
        name=name,
        n_out=n_out,
        n_layer=len(layer),
        what=what,
        fate=Text(N_("dropped")) if policy == "drop" else Text(N_("kept")),
        policy=policy,
        first=first,
    )
    return (layer[inside] if policy == "drop" else layer), n_out
