"""Population layers: census polygons and count rasters."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
from pyproj import CRS

from towerplan._validate import DEFAULT_CRS
from towerplan.errors import (
    CRSError,
    DataFileError,
    PopulationError,
)
from towerplan.inputs._common import (
    _check_file,
    _check_population,
    _col,
    _require_geom,
)
from towerplan.inputs.vector import (
    read_vector,
)

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- population


def read_population_polygons(
    path: str | Path,
    column: str = "population",
    layer: str | None = None,
    crs: str | CRS = DEFAULT_CRS,
    source_crs: str | CRS | None = None,
    keep_columns: Sequence[str] = (),
    repair: bool = False,
) -> gpd.GeoDataFrame:
    """Read census polygons with a population count.

    Parameters
    ----------
    path : str or Path
        Vector file of polygons (communes, census blocks).
    column : str
        Population column of the file.
    layer, crs, source_crs
        As in :func:`read_vector`.
    keep_columns : sequence of str
        Other file columns to keep.

    Returns
    -------
    GeoDataFrame
        ``population`` (float >= 0), kept columns, geometry in ``crs``.

    Raises
    ------
    PopulationError
        NaN, missing or negative population (message names the rows).
    """
    label = f"population file {path}"
    gdf = read_vector(path, layer=layer, name=label, crs=crs, source_crs=source_crs, repair=repair)
    _require_geom(gdf, {"Polygon", "MultiPolygon"}, label, "polygon")
    _col(gdf, {"population": column}, "population", (), label, required=True)
    for c in keep_columns:
        _col(gdf, {c: c}, c, (), label, required=True)
    out = gpd.GeoDataFrame(
        {c: gdf[c] for c in keep_columns if c != "population"},
        geometry=gdf.geometry,
        crs=gdf.crs,
        index=gdf.index,
    )
    out.insert(0, "population", _check_population(gdf[column], label, column))
    logger.info("%s: %d polygons, population %.0f", label, len(out), out["population"].sum())
    return out


def check_population_array(data: np.ndarray, label: str) -> None:
    """Raise :class:`PopulationError` on NaN or negative counts (nodata already filled)."""
    bad = ~np.isfinite(data) | (data < 0)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise PopulationError(
            f"{label}: {int(bad.sum())} pixel(s) are NaN or negative (first at row {r}, col {c}) "
            "and not marked nodata; set the raster's nodata value or fix the pixels"
        )


def read_population_raster(
    path: str | Path, band: int = 1, max_check_pixels: int = 50_000_000
) -> Path:
    """Validate a population-count raster and return its path.

    The raster must hold counts (people per pixel), have a CRS and no
    negative values outside ``nodata``; :func:`towerplan.demand.grid_from_raster`
    resamples it to the working grid.  Rasters larger than ``max_check_pixels``
    are only checked for metadata here (their values are checked, window by
    window, when gridded).

    Raises
    ------
    DataFileError
        Missing or unreadable file, or no such band.
    CRSError
        The raster has no CRS.
    PopulationError
        NaN (not declared nodata) or negative counts.
    """
    import rasterio
    from rasterio.errors import RasterioIOError

    p = _check_file(path, f"population raster {path}")
    label = f"population raster {p}"
    data = None
    try:
        with rasterio.open(p) as src:
            if src.crs is None:
                raise CRSError(
                    f"{label}: the raster has no CRS; add one (gdal_edit.py -a_srs EPSG:4326) - "
                    "towerplan never guesses a CRS"
                )
            if band < 1 or band > src.count:
                raise DataFileError(
                    f"{label}: band {band} does not exist (the raster has {src.count})"
                )
            if src.width * src.height <= max_check_pixels:
                data = src.read(band, masked=True).astype("float64").filled(0.0)
    except RasterioIOError as exc:
        raise DataFileError(
            f"{label}: cannot read the raster ({exc}); give a GeoTIFF of people per pixel"
        ) from None
    if data is not None:
        check_population_array(data, label)
        logger.info("%s: total population %.0f", label, float(data.sum()))
    else:
        logger.info("%s: large raster, values checked when gridded", label)
    return p


def _district_population(
    districts: gpd.GeoDataFrame, population: gpd.GeoDataFrame | Path, crs: CRS
) -> np.ndarray:
    """Population per district from polygons (area-weighted overlay) or a raster (grid sum)."""
    if isinstance(population, gpd.GeoDataFrame):
        src = population[["population", "geometry"]].copy()
        src["_area"] = src.geometry.area
        src["_pid"] = np.arange(len(src))
        d = districts[["geometry"]].copy()
        d["_did"] = np.arange(len(d))
        ov = gpd.overlay(src, d, how="intersection", keep_geom_type=True)
        share = ov["population"].to_numpy() * ov.geometry.area.to_numpy() / ov["_area"].to_numpy()
        return np.bincount(ov["_did"].to_numpy(), weights=share, minlength=len(d))
    from towerplan.demand import grid_from_raster

    grid = grid_from_raster(population, crs=crs.to_string(), cell_size=100.0, boundary=districts)
    pts = grid.points(districts=districts)
    by = pts.groupby("district")["population"].sum()
    return districts["district"].map(by).fillna(0.0).to_numpy(dtype=float)
