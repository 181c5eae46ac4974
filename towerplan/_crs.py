"""CRS guards and conversions shared by the core modules (private)."""

from __future__ import annotations

from typing import TypeVar

import geopandas as gpd
from pyproj import CRS

from towerplan.errors import CRSError, EmptyInputError

DEFAULT_CRS = "EPSG:32648"
"""Default working CRS: WGS 84 / UTM zone 48N (metres)."""

G = TypeVar("G", gpd.GeoDataFrame, gpd.GeoSeries)


def require_metric(gdf: gpd.GeoDataFrame | gpd.GeoSeries, name: str) -> CRS:
    """Raise unless ``gdf`` has a projected CRS in metres.

    Parameters
    ----------
    gdf : GeoDataFrame or GeoSeries
        Layer to check.
    name : str
        Name of the input, used in the error message.

    Returns
    -------
    pyproj.CRS
        The layer's CRS.

    Raises
    ------
    CRSError
        If the CRS is missing, geographic, or not in metres.
    """
    crs = gdf.crs
    if crs is None:
        raise CRSError(
            f"{name}: the layer has no CRS; set it explicitly (e.g. gdf.set_crs('EPSG:4326')) "
            "- towerplan never guesses a CRS"
        )
    crs = CRS.from_user_input(crs)
    if not crs.is_projected:
        raise CRSError(
            f"{name}: CRS {crs.to_string()} is geographic (degrees); reproject it to a metric CRS "
            f"first, e.g. gdf.to_crs('{DEFAULT_CRS}') or towerplan.inputs.readers.to_working_crs()"
        )
    units = {ax.unit_name for ax in crs.axis_info}
    if not units <= {"metre", "meter", "m"}:
        raise CRSError(
            f"{name}: CRS {crs.to_string()} has units {sorted(units)}; use a CRS in metres"
        )
    return crs


def to_working_crs(gdf: G, crs: str | CRS, name: str) -> G:
    """Return a copy of ``gdf`` reprojected to the working metric CRS.

    Raises :class:`CRSError` when ``gdf`` has no CRS (it is never guessed)
    or when ``crs`` is not metric.
    """
    if gdf.crs is None:
        raise CRSError(
            f"{name}: the layer has no CRS; add a .prj / CRS to the file or pass crs= explicitly "
            "- towerplan never guesses a CRS"
        )
    target = CRS.from_user_input(crs)
    if not target.is_projected:
        raise CRSError(f"working CRS {target.to_string()} is geographic; choose a metric CRS")
    return gdf.to_crs(target)


def require_rows(gdf: gpd.GeoDataFrame | gpd.GeoSeries, name: str) -> None:
    """Raise :class:`EmptyInputError` when ``gdf`` has no rows."""
    if len(gdf) == 0:
        raise EmptyInputError(f"{name}: the layer is empty; give a layer with at least one feature")
