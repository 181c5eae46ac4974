"""Population layers: census polygons and count rasters."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS

from towerplan._validate import DEFAULT_CRS, check_population_array, check_raster_band
from towerplan.errors import (
    N_,
    DataFileError,
    ParameterError,
    PopulationError,
    Text,
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
    encoding: str | None = None,
    max_density_km2: float | None = None,
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
    encoding : str, optional
        Attribute encoding (Shapefile without .cpg), as in :func:`read_vector`.
    max_density_km2 : float, optional
        Plausibility limit (people/km2, scenario ``demand.max_density_km2``).

    Returns
    -------
    GeoDataFrame
        ``population`` (float >= 0), kept columns, geometry in ``crs``.

    Raises
    ------
    PopulationError
        NaN, missing or negative population (message names the rows).
    """
    label = Text(N_("population file {path}"), path=path)
    gdf = read_vector(
        path,
        layer=layer,
        name=label,
        crs=crs,
        source_crs=source_crs,
        repair=repair,
        encoding=encoding,
    )
    _require_geom(gdf, {"Polygon", "MultiPolygon"}, label, Text(N_("polygon")))
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
    if max_density_km2 is not None:
        check_density(out, max_density_km2, label, column)
    logger.info("%s: %d polygons, population %.0f", label, len(out), out["population"].sum())
    return out


def read_population_raster(
    path: str | Path,
    band: int = 1,
    max_check_pixels: int = 50_000_000,
    max_density_km2: float | None = None,
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

    p = _check_file(path, Text(N_("population raster {path}"), path=path))
    label = Text(N_("population raster {path}"), path=p)
    data = None
    try:
        with rasterio.open(p) as src:
            check_raster_band(src, band, label)
            if src.width * src.height <= max_check_pixels:
                data = src.read(band, masked=True).astype("float64").filled(0.0)
                pixel_km2 = _pixel_area_km2(src)
    except RasterioIOError as exc:
        raise DataFileError(
            msgid=N_("{label}: cannot read the raster ({exc}); give a GeoTIFF of people per pixel"),
            label=label,
            exc=exc,
        ) from None
    if data is not None:
        check_population_array(data, label)
        if max_density_km2 is not None:
            _check_pixel_density(data, pixel_km2, max_density_km2, label)
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


DENSITY_FIX = Text(
    N_("fix the values, or raise demand.max_density_km2 in the scenario if they are real")
)


def check_density(
    polygons: gpd.GeoDataFrame, max_density_km2: float, name: str, col: str = "population"
) -> None:
    """Raise :class:`PopulationError` when a polygon's density exceeds ``max_density_km2``.

    The default limit (scenario ``demand.max_density_km2``) is above any density ever
    recorded, so a value beyond it is a unit or data error (e.g. 1e16 people).
    """
    area = polygons.geometry.area.to_numpy() / 1e6
    pop = polygons["population"].to_numpy(float)
    with np.errstate(all="ignore"):
        dens = np.where(area > 0, pop / area, np.where(pop > 0, np.inf, 0.0))
    bad = ~(dens <= max_density_km2)
    if bad.any():
        i = int(np.argmax(np.where(bad, dens, -1)))
        raise PopulationError(
            msgid=N_(
                "{name}: column '{col}' gives {n_bad} polygon(s) a density above "
                "{max_density_km2:,.0f} people/km2 (row {row}: {pop:.4g} people "
                "on {area:.4g} km2), more than anywhere on Earth; {density_fix}"
            ),
            name=name,
            col=col,
            n_bad=int(bad.sum()),
            max_density_km2=max_density_km2,
            row=polygons.index[i],
            pop=pop[i],
            area=area[i],
            density_fix=DENSITY_FIX,
        )


def _pixel_area_km2(src: Any) -> np.ndarray | float:
    """Pixel area (km2): exact for a projected raster, by latitude row for a geographic one."""
    t = src.transform
    if src.crs is not None and src.crs.is_geographic:
        rows = np.arange(src.height)
        lat = np.radians(t.f + (rows + 0.5) * t.e)
        return (abs(t.a) * 111.320 * np.cos(lat) * abs(t.e) * 110.574)[:, None]
    unit = src.crs.linear_units_factor[1] if src.crs is not None else 1.0
    return float(abs(t.a * t.e) * unit * unit / 1e6)


def _check_pixel_density(
    data: np.ndarray, pixel_km2: np.ndarray | float, max_density_km2: float, label: str
) -> None:
    with np.errstate(all="ignore"):
        dens = data / pixel_km2
    bad = dens > max_density_km2
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise PopulationError(
            msgid=N_(
                "{label}: {n_bad} pixel(s) exceed {max_density_km2:,.0f} people/km2 (first at "
                "row {r}, col {c}: {data:.4g} people), more than anywhere on Earth; is the "
                "raster a count per pixel? {density_fix}"
            ),
            label=label,
            n_bad=int(bad.sum()),
            max_density_km2=max_density_km2,
            r=r,
            c=c,
            data=data[r, c],
            density_fix=DENSITY_FIX,
        )


def clip_population(
    polygons: gpd.GeoDataFrame, districts: gpd.GeoDataFrame, name: str
) -> tuple[gpd.GeoDataFrame, float]:
    """Population polygons clipped to the districts; population outside dropped by area.

    Each polygon keeps the share of its population that lies on its part inside
    the districts (people spread evenly over a polygon, as the area-weighted grid
    assumes).  Polygons wholly inside are unchanged.

    Returns
    -------
    (GeoDataFrame, float)
        Clipped polygons (empty parts removed, index kept) and the population dropped.
    """
    area = shapely.union_all(districts.geometry.to_numpy())
    shapely.prepare(area)
    geoms = polygons.geometry.to_numpy()
    inside = np.asarray(shapely.contains(area, geoms))
    if inside.all():
        return polygons, 0.0
    out = polygons.copy()
    part = shapely.intersection(geoms[~inside], area)
    a0 = shapely.area(geoms[~inside])
    with np.errstate(all="ignore"):
        frac = np.where(a0 > 0, shapely.area(part) / a0, 0.0)
    pop = out["population"].to_numpy(float).copy()
    dropped = float((pop[~inside] * (1.0 - frac)).sum())
    pop[~inside] = pop[~inside] * frac
    out["population"] = pop
    geom = out.geometry.to_numpy().copy()
    geom[~inside] = part
    out = out.set_geometry(gpd.GeoSeries(geom, index=out.index, crs=out.crs))
    keep = ~out.geometry.is_empty & (out.geometry.area > 0)
    out = out[keep.to_numpy()]
    out = out[out.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()]
    logger.info("%s: clipped to the districts; %.0f people outside dropped", name, dropped)
    return out, dropped


def raster_population_outside(path: Path, districts: gpd.GeoDataFrame) -> tuple[float, float]:
    """(inside, outside) population of a raster over the districts' bounding box.

    ``outside`` counts the pixels of the box whose centre is outside the districts,
    the part the demand grid leaves out.  A raster much larger than the districts
    is only read over their box.
    """
    import rasterio
    import rasterio.features
    import rasterio.windows
    from rasterio.errors import WindowError

    with rasterio.open(path) as src:
        d = districts.to_crs(src.crs)
        win = rasterio.windows.from_bounds(*d.total_bounds, transform=src.transform)
        try:
            win = (
                win.round_offsets()
                .round_lengths()
                .intersection(rasterio.windows.Window(0, 0, src.width, src.height))
            )
        except WindowError:
            raise PopulationError(
                msgid=N_(
                    "population raster {path}: it does not overlap the districts (raster bounds "
                    "{bounds} in {src_crs}); give a raster that covers data.districts"
                ),
                path=path,
                bounds=tuple(round(v, 3) for v in src.bounds),
                src_crs=src.crs,
            ) from None
        data = src.read(1, window=win, masked=True).astype("float64").filled(0.0)
        t = src.window_transform(win)
    mask = rasterio.features.geometry_mask(
        d.geometry.to_numpy(), out_shape=data.shape, transform=t, invert=True
    )
    return float(data[mask].sum()), float(data[~mask].sum())


BYTES_PER_GRID_CELL = 360
"""Peak bytes per demand-grid cell while the demand grid and its points are built.

Measured (peak RSS growth of ``plan._demand`` on the tests' generated city, every cell
populated): 350 bytes/cell at 1.6 million cells (5 m), 337 at 6.4 million (2.5 m);
rounded up to 360.  Most of it is the point per populated cell."""


def check_grid_memory(
    bounds: Sequence[float], cell_size_m: float, name: str, available: float | None = None
) -> int:
    """Raise :class:`ParameterError` when the demand grid would not fit in memory.

    Estimated before anything is allocated: cells over ``bounds`` times
    :data:`BYTES_PER_GRID_CELL` (a measured peak), against the memory available now (psutil).

    Returns
    -------
    int
        The number of grid cells.
    """
    import psutil

    x0, y0, x1, y1 = bounds
    n = int(np.ceil((x1 - x0) / cell_size_m) * np.ceil((y1 - y0) / cell_size_m))
    need = float(n) * BYTES_PER_GRID_CELL
    avail = float(psutil.virtual_memory().available if available is None else available)
    if need > avail:
        ok = cell_size_m * float(np.sqrt(need / avail)) * 1.05
        raise ParameterError(
            msgid=N_(
                "{name}: demand.cell_size_m = {cell_size_m:g} m gives a demand grid of {n:,} "
                "cells (about {need_gb:,.1f} GB) over {width_km:.1f} x {height_km:.1f} km, but only {avail_gb:.1f} "
                "GB of memory are available; raise demand.cell_size_m to at least {ok:.0f} m "
                "(100 m is the usual choice)"
            ),
            name=name,
            cell_size_m=cell_size_m,
            n=n,
            need_gb=need / 1e9,
            width_km=(x1 - x0) / 1000,
            height_km=(y1 - y0) / 1000,
            avail_gb=avail / 1e9,
            ok=np.ceil(ok),
        )
    return n
