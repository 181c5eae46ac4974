"""User candidate site locations (``data.candidates``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from towerplan._validate import DEFAULT_CRS
from towerplan.errors import N_, ColumnError, Text
from towerplan.inputs._common import _numeric, _require_geom
from towerplan.inputs._points import OutsidePolicy, keep_inside
from towerplan.inputs.vector import read_vector

logger = logging.getLogger(__name__)

__all__ = ["read_candidates"]


def read_candidates(
    path: str | Path,
    columns: Mapping[str, str] | None = None,
    layer: str | None = None,
    crs: str | CRS = DEFAULT_CRS,
    source_crs: str | CRS | None = None,
    *,
    repair: bool = False,
    encoding: str | None = None,
    study_area: BaseGeometry | None = None,
    outside: OutsidePolicy = "error",
) -> gpd.GeoDataFrame:
    """Read user candidate locations (points) with optional ``cost``, ``priority``, ``max_tenants``.

    Parameters
    ----------
    path : str or Path
        Vector point file.
    columns : mapping, optional
        towerplan name (``cost``, ``priority``, ``max_tenants``) -> file column.
    layer, crs, source_crs, repair, encoding
        As in :func:`towerplan.inputs.vector.read_vector`.
    study_area : shapely geometry, optional
        Area (working CRS) the candidates must fall in.
    outside : {'error', 'drop', 'keep'}
        Candidates outside ``study_area`` (scenario ``data.outside``); the number
        dropped is in ``attrs['outside_dropped']``.

    Returns
    -------
    GeoDataFrame
        Points in ``crs`` with the numeric columns found.
    """
    label = Text(N_("candidates file {path}"), path=path)
    raw = read_vector(
        path,
        layer=layer,
        name=label,
        crs=None,
        source_crs=source_crs,
        repair=repair,
        encoding=encoding,
    )
    _require_geom(raw, {"Point"}, label, Text(N_("point")))
    src_xy = (raw.geometry.x.to_numpy(float), raw.geometry.y.to_numpy(float))
    out = gpd.GeoDataFrame(geometry=raw.geometry.to_numpy(), crs=raw.crs).to_crs(crs)
    cols = dict(columns or {})
    for key in ("cost", "priority", "max_tenants"):
        col = cols.get(key, key)
        if col in raw.columns:
            out[key] = _numeric(raw[col].reset_index(drop=True), label, col).to_numpy()
        elif key in cols:
            raise ColumnError(
                msgid=N_(
                    "{label}: column '{col}' (for {key}) not found; the file has columns "
                    "{columns}; fix columns: {{{key}: ...}}"
                ),
                label=label,
                col=col,
                key=key,
                columns=[c for c in raw.columns if c != "geometry"],
            )
    n_out = 0
    if study_area is not None:
        out, n_out = keep_inside(
            out,
            study_area,
            label,
            src_xy=src_xy,
            src_crs=CRS.from_user_input(raw.crs),
            policy=outside,
            what=Text(N_("candidates")),
        )
        out = out.reset_index(drop=True)
    out.attrs["outside_dropped"] = n_out if outside == "drop" else 0
    logger.info("%s: %d candidate locations", label, len(out))
    return out
