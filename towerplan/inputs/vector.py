"""Reading any vector layer into the working CRS."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

from towerplan._validate import DEFAULT_CRS, to_working_crs
from towerplan.errors import (
    N_,
    CRSError,
    DataFileError,
    EmptyInputError,
    GeometryError,
    Text,
)
from towerplan.inputs._common import (
    _check_file,
    _parse_crs,
    _repair,
    shapefile_encoding,
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
    encoding: str | None = None,
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
    encoding : str, optional
        Attribute encoding of a Shapefile without ``.cpg`` whose ``.dbf`` is not
        UTF-8 (scenario key ``encoding`` of the layer); such a file without it raises.

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

    enc = shapefile_encoding(p, encoding, label)
    # a named single- or multi-byte encoding: read the bytes losslessly as Latin-1 and
    # decode them in Python (GDAL's own recoding truncates some code pages, e.g. CP1258)
    transport = (
        "ISO-8859-1" if enc and enc.upper().replace("_", "-") not in ("UTF-8", "UTF8") else enc
    )
    try:
        gdf = pyogrio.read_dataframe(p, layer=layer, encoding=transport)
    except Exception as exc:  # pyogrio.errors.DataSourceError, DataLayerError, ...
        hint = ""
        if layer is not None:
            try:
                hint = Text(
                    N_("; layers in the file: {layers}"),
                    layers=[lyr[0] for lyr in pyogrio.list_layers(p)],
                )
            except Exception:
                hint = ""
        raise DataFileError(
            msgid=N_(
                "{label}: cannot read {p} as a vector file ({name}: {exc}){hint}; give a "
                "GeoPackage, GeoJSON or Shapefile"
            ),
            label=label,
            p=p,
            name=type(exc).__name__,
            exc=exc,
            hint=hint,
        ) from None
    if transport != enc and isinstance(gdf, gpd.GeoDataFrame):
        gdf = _recode(gdf, str(enc), label)
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry is None:
        raise DataFileError(
            msgid=N_("{label}: {p} has no geometry column; give a spatial layer"), label=label, p=p
        )
    if len(gdf) == 0:
        raise EmptyInputError(
            msgid=N_("{label}: the layer has no features; give a layer with at least one"),
            label=label,
        )
    if gdf.crs is None:
        if source_crs is None:
            raise CRSError(
                msgid=N_(
                    "{label}: {p} has no CRS (no .prj / CRS metadata); add one to the file or "
                    "set the layer's crs: in the scenario (e.g. crs: EPSG:4326); towerplan never "
                    "guesses a CRS"
                ),
                label=label,
                p=p,
            )
        gdf = gdf.set_crs(_parse_crs(source_crs, Text("{label}: source_crs", label=label)))
    _check_coordinates(gdf, label)
    gdf = _repair(gdf, label, repair)
    if crs is None:
        return gdf
    with np.errstate(all="ignore"):
        out = to_working_crs(gdf, _parse_crs(crs, "working crs"), label)
    if not np.isfinite(np.asarray(out.geometry.bounds, dtype=float)).all():
        raise CRSError(
            msgid=N_(
                "{label}: some coordinates cannot be projected from {crs} to the "
                "working CRS (latitudes beyond 90 degrees?); are lon and lat swapped, or is "
                "the layer's CRS wrong? fix the file or give its real CRS (crs: of the layer)"
            ),
            label=label,
            crs=gdf.crs.to_string(),
        )
    return out


def _check_coordinates(gdf: gpd.GeoDataFrame, label: str) -> None:
    """Coordinates must be finite and, in a geographic CRS, look like degrees."""
    geom = gdf.geometry
    b = np.asarray(geom[~(geom.isna() | geom.is_empty)].bounds, dtype=float).reshape(-1, 4)
    if len(b) == 0:
        return
    if not np.isfinite(b).all():
        raise GeometryError(
            msgid=N_("{label}: some coordinates are not finite numbers (NaN/inf); fix the file"),
            label=label,
        )
    crs = CRS.from_user_input(gdf.crs)
    if crs.is_geographic and (np.abs(b[:, [0, 2]]).max() > 360 or np.abs(b[:, [1, 3]]).max() > 360):
        raise CRSError(
            msgid=N_(
                "{label}: the file says {crs} (degrees) but its coordinates reach "
                "{max_coord:,.0f}, so they are metres or feet; give the layer's real CRS (scenario "
                "key crs: of the layer, e.g. crs: EPSG:32648) or fix the .prj"
            ),
            label=label,
            crs=crs.to_string(),
            max_coord=np.abs(b).max(),
        )


def _recode(gdf: gpd.GeoDataFrame, encoding: str, label: str) -> gpd.GeoDataFrame:
    """Text read as Latin-1 decoded with ``encoding`` (column names and text cells)."""

    def dec(v: object) -> object:
        return v.encode("latin-1").decode(encoding) if isinstance(v, str) else v

    try:
        out = gdf.rename(columns={c: dec(c) for c in gdf.columns if c != gdf.geometry.name})
        for c in out.columns:
            if c != out.geometry.name and (
                out[c].dtype == object or pd.api.types.is_string_dtype(out[c])
            ):
                out[c] = out[c].map(dec)
    except UnicodeError as exc:
        raise DataFileError(
            msgid=N_(
                "{label}: the attributes are not valid {encoding} text ({exc}); set the "
                "layer's encoding: in the scenario to the file's real encoding"
            ),
            label=label,
            encoding=encoding,
            exc=exc,
        ) from None
    return out
