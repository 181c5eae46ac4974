"""Reading any vector layer into the working CRS."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
from pyproj import CRS

from towerplan._validate import DEFAULT_CRS, to_working_crs
from towerplan.errors import (
    CRSError,
    DataFileError,
    EmptyInputError,
)
from towerplan.inputs._common import (
    _check_file,
    _parse_crs,
    _repair,
)

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- vector


def read_vector(
    path: str | Path,
    layer: str | None = None,
    name: str | None = None,
    crs: str | CRS | None = DEFAULT_CRS,
    source_crs: str | CRS | None = None,
    repair: bool = False,
) -> gpd.GeoDataFrame:
    """Read a vector layer (GeoPackage, GeoJSON, Shapefile, ...) into the working CRS.

    Parameters
    ----------
    path : str or Path
        File to read (anything GDAL/pyogrio reads).
    layer : str, optional
        Layer name for multi-layer files (GeoPackage).
    name : str, optional
        Name of the input used in messages (default: the path).
    crs : str or pyproj.CRS or None
        Working metric CRS to reproject to (None: keep the file's CRS).
    source_crs : str or pyproj.CRS, optional
        CRS to assume when the file has none.  Without it such a file raises.
    repair : bool
        Repair invalid geometries with ``shapely.make_valid`` (logged) instead
        of raising :class:`GeometryError` (scenario key ``data.repair_geometries``).

    Returns
    -------
    GeoDataFrame
        Valid, non-empty geometries in ``crs``; attribute columns as in the file.

    Raises
    ------
    DataFileError
        Missing or unreadable file, or unknown layer.
    CRSError
        The file has no CRS and ``source_crs`` is not given.
    EmptyInputError
        The layer has no features.
    GeometryError
        Empty geometries, or invalid ones that ``shapely.make_valid`` cannot repair.
    """
    p = _check_file(path, name or str(path))
    label = name or str(p)
    import pyogrio

    try:
        gdf = pyogrio.read_dataframe(p, layer=layer)
    except Exception as exc:  # pyogrio.errors.DataSourceError, DataLayerError, ...
        hint = ""
        if layer is not None:
            try:
                hint = f"; layers in the file: {[lyr[0] for lyr in pyogrio.list_layers(p)]}"
            except Exception:
                hint = ""
        raise DataFileError(
            f"{label}: cannot read {p} as a vector file ({type(exc).__name__}: {exc}){hint}; "
            "give a GeoPackage, GeoJSON or Shapefile"
        ) from None
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry is None:
        raise DataFileError(f"{label}: {p} has no geometry column; give a spatial layer")
    if len(gdf) == 0:
        raise EmptyInputError(f"{label}: the layer has no features; give a layer with at least one")
    if gdf.crs is None:
        if source_crs is None:
            raise CRSError(
                f"{label}: {p} has no CRS (no .prj / CRS metadata); add one to the file or give "
                "source_crs= (scenario: 'crs:' of the layer) - towerplan never guesses a CRS"
            )
        gdf = gdf.set_crs(_parse_crs(source_crs, f"{label}: source_crs"))
    gdf = _repair(gdf, label, repair)
    if crs is None:
        return gdf
    return to_working_crs(gdf, _parse_crs(crs, "working crs"), label)
