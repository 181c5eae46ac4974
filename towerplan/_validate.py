"""One place for the input rules every core module checks (private).

- CRS: :func:`require_metric`, :func:`require_same_crs`, :func:`to_working_crs`;
- rows and columns: :func:`require_rows`, :func:`require_columns`;
- point coordinates: :func:`points_xy` (the only place coordinates are read from a layer);
- district of a point: :func:`assign_district` (containing district, else the nearest one);
- population rasters: :func:`check_raster_band`, :func:`check_population_array`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

from towerplan.errors import (
    N_,
    ColumnError,
    CRSError,
    DataFileError,
    EmptyInputError,
    PopulationError,
    Text,
)

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
            msgid=N_(
                "{name}: the layer has no CRS; set it explicitly (e.g. "
                "gdf.set_crs('EPSG:4326')) - towerplan never guesses a CRS"
            ),
            name=name,
        )
    crs = CRS.from_user_input(crs)
    if not crs.is_projected:
        raise CRSError(
            msgid=N_(
                "{name}: CRS {crs} is geographic (degrees); reproject it to a metric "
                "CRS first, e.g. gdf.to_crs('{default_crs}') or "
                "towerplan.inputs.readers.to_working_crs()"
            ),
            name=name,
            crs=crs.to_string(),
            default_crs=DEFAULT_CRS,
        )
    units = {ax.unit_name for ax in crs.axis_info}
    if not units <= {"metre", "meter", "m"}:
        raise CRSError(
            msgid=N_("{name}: CRS {crs} has units {units}; use a CRS in metres"),
            name=name,
            crs=crs.to_string(),
            units=sorted(units),
        )
    return crs


def to_working_crs(gdf: G, crs: str | CRS, name: str) -> G:
    """Return a copy of ``gdf`` reprojected to the working metric CRS.

    Parameters
    ----------
    gdf : GeoDataFrame or GeoSeries
        Layer with a CRS.
    crs : str or pyproj.CRS
        The working (metric) CRS.
    name : str
        Name of the input, used in the error message.

    Returns
    -------
    GeoDataFrame or GeoSeries
        ``gdf`` in ``crs``.

    Raises
    ------
    CRSError
        When ``gdf`` has no CRS (it is never guessed) or ``crs`` is not metric.
    """
    if gdf.crs is None:
        raise CRSError(
            msgid=N_(
                "{name}: the layer has no CRS; add a .prj / CRS to the file or pass crs= "
                "explicitly - towerplan never guesses a CRS"
            ),
            name=name,
        )
    target = CRS.from_user_input(crs)
    if not target.is_projected:
        raise CRSError(
            msgid=N_("working CRS {crs} is geographic; choose a metric CRS"),
            crs=target.to_string(),
        )
    return gdf.to_crs(target)


def require_rows(gdf: gpd.GeoDataFrame | gpd.GeoSeries, name: str) -> None:
    """Raise :class:`EmptyInputError` when ``gdf`` has no rows.

    Parameters
    ----------
    gdf : GeoDataFrame or GeoSeries
        Layer to check.
    name : str
        Name of the input, used in the error message.
    """
    if len(gdf) == 0:
        raise EmptyInputError(
            msgid=N_("{name}: the layer is empty; give a layer with at least one feature"),
            name=name,
        )


def require_same_crs(
    a: gpd.GeoDataFrame | gpd.GeoSeries, b: gpd.GeoDataFrame | gpd.GeoSeries, na: str, nb: str
) -> None:
    """Raise :class:`CRSError` unless ``a`` and ``b`` share one CRS.

    Parameters
    ----------
    a, b : GeoDataFrame or GeoSeries
        Layers to compare.
    na, nb : str
        Their names, used in the error message.
    """
    if a.crs != b.crs:
        raise CRSError(
            msgid=N_(
                "{na} ({a_crs}) and {nb} ({b_crs}) are in different CRSs; reproject both to "
                "the scenario's working CRS"
            ),
            na=na,
            a_crs=a.crs,
            nb=nb,
            b_crs=b.crs,
        )


SEE_DOCS = Text(N_("see docs/ARCHITECTURE.md"))


def require_columns(
    df: pd.DataFrame, columns: Iterable[str], name: str, *, fix: str = SEE_DOCS
) -> None:
    """Raise :class:`ColumnError` naming every column of ``columns`` that ``df`` lacks.

    Parameters
    ----------
    df : DataFrame
        Table or layer to check.
    columns : iterable of str
        Required columns.
    name : str
        Name of the input, used in the error message.
    fix : str
        How to fix it, appended to the message (a :class:`~towerplan.errors.Text` to
        have it translated).

    Examples
    --------
    >>> import pandas as pd
    >>> require_columns(pd.DataFrame({"a": [1]}), ["a", "b"], "sites")
    Traceback (most recent call last):
    ...
    towerplan.errors.ColumnError: sites: missing column(s) ['b']; see docs/ARCHITECTURE.md
    """
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ColumnError(
            msgid=N_("{name}: missing column(s) {missing}; {fix}"),
            name=name,
            missing=missing,
            fix=fix,
        )


def points_xy(gdf: gpd.GeoDataFrame | gpd.GeoSeries, name: str) -> np.ndarray:
    """``(n, 2)`` coordinates of a point layer (centroids for other geometries).

    Parameters
    ----------
    gdf : GeoDataFrame or GeoSeries
        Layer in a metric CRS.
    name : str
        Name of the input, used in the error message.

    Returns
    -------
    ndarray, shape (n, 2)
        x and y in metres.

    Raises
    ------
    CRSError
        Unless the layer is in a metric CRS.

    Examples
    --------
    >>> import geopandas as gpd
    >>> pts = gpd.GeoSeries.from_xy([1.0, 2.0], [3.0, 4.0], crs="EPSG:32648")
    >>> points_xy(pts, "pts").tolist()
    [[1.0, 3.0], [2.0, 4.0]]
    """
    require_metric(gdf, name)
    geom = gdf.geometry if isinstance(gdf, gpd.GeoDataFrame) else gdf
    if len(geom) == 0:
        return np.zeros((0, 2))
    if not (geom.geom_type == "Point").all():
        geom = geom.centroid
    return np.column_stack([geom.x.to_numpy(dtype=float), geom.y.to_numpy(dtype=float)])


def assign_district(
    points: gpd.GeoDataFrame | gpd.GeoSeries,
    districts: gpd.GeoDataFrame,
    *,
    column: str = "district",
    name: str = "points",
) -> pd.Series:
    """The district of each point: the containing polygon, else the nearest one.

    The one rule for every layer (sites, candidates, POIs, hotspots): a point on a
    shared border or inside overlapping polygons gets the first district listed; a
    point outside every polygon gets the nearest district.

    Parameters
    ----------
    points : GeoDataFrame or GeoSeries
        Points (other geometries: their centroids) in a metric CRS.
    districts : GeoDataFrame
        Polygons with ``column``, in the same CRS.
    column : str
        The district attribute to return (``district`` or ``district_type``).
    name : str
        Name of ``points``, used in error messages.

    Returns
    -------
    Series
        Values of ``districts[column]``, indexed like ``points`` (``None`` only when
        ``districts`` is empty).

    Examples
    --------
    >>> import geopandas as gpd
    >>> from shapely.geometry import box
    >>> d = gpd.GeoDataFrame({"district": ["A", "B"]},
    ...                      geometry=[box(0, 0, 10, 10), box(10, 0, 20, 10)], crs="EPSG:32648")
    >>> pts = gpd.GeoSeries.from_xy([5, 15, 30], [5, 5, 5], crs="EPSG:32648")
    >>> assign_district(pts, d).tolist()
    ['A', 'B', 'B']
    """
    xy = points_xy(points, name)
    require_columns(districts, [column], "districts")
    require_same_crs(points, districts, name, "districts")
    out = np.full(len(xy), None, dtype=object)
    if len(xy) and len(districts):
        values = districts[column].to_numpy(object)
        pts = gpd.GeoSeries.from_xy(xy[:, 0], xy[:, 1], crs=districts.crs)
        # intersects: points on a border belong to a district; the first listed wins
        pi, di = districts.sindex.query(pts.to_numpy(), predicate="intersects")
        order = np.lexsort((di, pi))
        pi, di = pi[order], di[order]
        first = np.unique(pi, return_index=True)[1]
        out[pi[first]] = values[di[first]]
        miss = np.flatnonzero(pd.isna(out))
        if len(miss):
            near_p, near_d = districts.sindex.nearest(pts.iloc[miss].to_numpy(), return_all=False)
            out[miss[near_p]] = values[near_d]
    return pd.Series(out, index=points.index, dtype=object)


def check_raster_band(src: Any, band: int, label: str) -> None:
    """Raise unless the open raster ``src`` has a CRS and the band ``band``.

    Parameters
    ----------
    src : rasterio.DatasetReader
        An open raster.
    band : int
        1-based band number.
    label : str
        Name of the raster, used in the error message.

    Raises
    ------
    CRSError
        The raster has no CRS.
    DataFileError
        No such band.
    """
    if src.crs is None:
        raise CRSError(
            msgid=N_(
                "{label}: the raster has no CRS; add one (gdal_edit.py -a_srs EPSG:4326) - "
                "towerplan never guesses a CRS"
            ),
            label=label,
        )
    if band < 1 or band > src.count:
        raise DataFileError(
            msgid=N_("{label}: band {band} does not exist (the raster has {n_bands})"),
            label=label,
            band=band,
            n_bands=src.count,
        )


def check_population_array(data: np.ndarray, label: str) -> None:
    """Raise :class:`PopulationError` on NaN or negative counts (nodata already filled).

    Parameters
    ----------
    data : ndarray
        People per pixel.
    label : str
        Name of the raster, used in the error message.
    """
    bad = ~np.isfinite(data) | (data < 0)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise PopulationError(
            msgid=N_(
                "{label}: {n_bad} pixel(s) are NaN or negative (first at row {r}, col {c}) and "
                "not marked nodata; set the raster's nodata value or fix the pixels"
            ),
            label=label,
            n_bad=int(bad.sum()),
            r=r,
            c=c,
        )
