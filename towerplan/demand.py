"""Demand: population on a regular grid in the working metric CRS.

A :class:`DemandGrid` holds people per cell on a north-up grid whose origin is
snapped to multiples of the cell size (so grids of the same cell size align).
It is built from census polygons (:func:`grid_from_polygons`) or from a
population-count raster (:func:`grid_from_raster`); both conserve population:
the grid total equals the input total to floating-point precision, and the
relative error is computed and logged (and kept in ``DemandGrid.meta``).

Polygons to grid
    Each polygon is rasterised on its own window at ``supersample`` x the grid
    resolution (sub-cell centres inside the polygon), and its population is
    spread over the sub-cells it covers - evenly (``area_weighted``) or in
    proportion to cell weights (``dasymetric``) - then summed per cell.  The
    shares of one polygon add up to 1, so its population is conserved exactly;
    a polygon too small to contain any sub-cell centre goes to the cell holding
    its representative point.  Overlapping polygons each keep their own total.

Raster to grid
    Every source pixel is split into ``k x k`` sub-points carrying ``1/k^2`` of
    its count (``k`` from the ratio of pixel to cell size), the sub-points are
    projected to the working CRS, clipped to the boundary and summed per cell:
    an explicit conservative resampling (no GDAL ``sum`` semantics involved).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from affine import Affine
from pyproj import CRS, Transformer
from tqdm import tqdm

from towerplan._i18n import _
from towerplan._raster import apply_affine, cell_of, centres, grid_for_bounds, window_of
from towerplan._validate import (
    DEFAULT_CRS,
    check_population_array,
    check_raster_band,
    require_columns,
    require_metric,
    require_rows,
)
from towerplan.errors import (
    N_,
    ColumnError,
    CRSError,
    DataFileError,
    GeometryError,
    ParameterError,
    PopulationError,
    Text,
    warn_user,
)

logger = logging.getLogger(__name__)

__all__ = [
    "DemandGrid",
    "conservation_error",
    "empty_grid",
    "grid_from_polygons",
    "grid_from_raster",
]

WeightsLike = np.ndarray | Callable[[np.ndarray], np.ndarray]


@dataclass
class DemandGrid:
    """People per cell on a regular north-up grid in a metric CRS.

    Attributes
    ----------
    population : numpy.ndarray
        ``rows x cols`` float64 people per cell (>= 0).
    transform : affine.Affine
        Cell -> CRS transform (top-left corner, ``e = -cell_size``).
    crs : str
        Metric CRS (e.g. ``EPSG:32648``).
    cell_size : float
        Cell edge in metres.
    meta : dict
        Provenance: ``input_total``, ``conservation_error``, ``method``...
    """

    population: np.ndarray
    transform: Affine
    crs: str
    cell_size: float
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.population = np.asarray(self.population, dtype="float64")
        if self.population.ndim != 2:
            raise ParameterError(
                msgid=N_("DemandGrid.population must be 2-D (rows x cols), got shape {shape}"),
                shape=self.population.shape,
            )
        crs = CRS.from_user_input(self.crs)
        if not crs.is_projected:
            raise CRSError(
                msgid=N_("DemandGrid: CRS {crs} is geographic; use a metric CRS"), crs=self.crs
            )
        if not self.cell_size > 0:
            raise ParameterError(
                msgid=N_("DemandGrid.cell_size must be > 0, got {cell_size}"),
                cell_size=self.cell_size,
            )

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)``."""
        r, c = self.population.shape
        return int(r), int(c)

    @property
    def cell_area_km2(self) -> float:
        """Area of one cell in km²."""
        return self.cell_size**2 / 1e6

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(minx, miny, maxx, maxy)`` of the grid."""
        rows, cols = self.shape
        x0, y1 = self.transform.c, self.transform.f
        return x0, y1 - rows * self.cell_size, x0 + cols * self.cell_size, y1

    def total(self) -> float:
        """Total population on the grid.

        Returns
        -------
        float
            People on the grid.
        """
        return float(self.population.sum())

    def populated(self) -> np.ndarray:
        """Flat (row-major) indices of cells with population > 0, ascending.

        Returns
        -------
        ndarray of int
            Flat cell indices.
        """
        return np.flatnonzero(self.population.ravel() > 0)

    def xy(self) -> np.ndarray:
        """``n x 2`` centres of the populated cells (order of :meth:`points`).

        Returns
        -------
        ndarray, shape (n, 2)
            Cell centres in the grid's CRS.
        """
        return centres(self.populated(), self.transform, self.shape[1])

    def points(
        self, districts: gpd.GeoDataFrame | None = None, keep_empty: bool = False
    ) -> gpd.GeoDataFrame:
        """Demand points: one Point per populated cell centre.

        Parameters
        ----------
        districts : GeoDataFrame, optional
            Districts (``district``, ``district_type``) in a metric CRS.  Each
            cell goes to the district containing its centre, or to the nearest
            district when its centre lies outside all of them.
        keep_empty : bool
            Also return empty cells whose centre lies inside a district (needs
            ``districts``).

        Returns
        -------
        GeoDataFrame
            ``cell_id`` (flat row-major cell index), ``population``,
            ``density_km2`` and, with districts, ``district`` and
            ``district_type``; in the grid's CRS, ordered by ``cell_id``.
        """
        rows, cols = self.shape
        flat = self.population.ravel()
        idx = self.populated()
        if districts is not None:
            require_metric(districts, "districts")
            for c in ("district", "district_type"):
                if c not in districts.columns:
                    raise ColumnError(
                        msgid=N_(
                            "districts: column '{c}' not found; give districts from "
                            "towerplan.inputs.readers.read_districts (columns district, district_type)"
                        ),
                        c=c,
                    )
            d = districts.to_crs(self.crs) if CRS(districts.crs) != CRS(self.crs) else districts
            if keep_empty:
                area = shapely.union_all(d.geometry.to_numpy())
                r0, r1, c0, c1 = window_of(area.bounds, self.transform, rows, cols)
                rr, cc = np.mgrid[r0:r1, c0:c1]
                cand = (rr * cols + cc).ravel()
                xy = centres(cand, self.transform, cols)
                inside = np.asarray(shapely.contains_xy(area, xy[:, 0], xy[:, 1]))
                idx = np.union1d(idx, cand[inside])
        elif keep_empty:
            raise ParameterError(
                msgid=N_("keep_empty=True needs districts= to know which empty cells to keep")
            )
        xy = centres(idx, self.transform, cols)
        pop = flat[idx]
        out = gpd.GeoDataFrame(
            {"cell_id": idx.astype("int64"), "population": pop},
            geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]),
            crs=self.crs,
        )
        if districts is not None:
            out = _attach_districts(out, d, self)
        out["density_km2"] = out["population"] / self.cell_area_km2
        cols_out = ["cell_id", "population"]
        if districts is not None:
            cols_out += ["district", "district_type"]
        return out[[*cols_out, "density_km2", "geometry"]]

    def to_geotiff(self, path: str | Path) -> Path:
        """Write the grid as a float64 GeoTIFF (people per cell); returns the path.

        Parameters
        ----------
        path : str or Path
            GeoTIFF to write.

        Returns
        -------
        Path
            The file written.
        """
        import rasterio

        p = Path(path)
        rows, cols = self.shape
        with rasterio.open(
            p,
            "w",
            driver="GTiff",
            height=rows,
            width=cols,
            count=1,
            dtype="float64",
            crs=self.crs,
            transform=self.transform,
            compress="deflate",
        ) as dst:
            dst.write(self.population, 1)
            dst.update_tags(units="people per cell", cell_size_m=str(self.cell_size))
        return p

    @classmethod
    def from_geotiff(cls, path: str | Path) -> DemandGrid:
        """Read a grid written by :meth:`to_geotiff` (square cells, metric CRS).

        Parameters
        ----------
        path : str or Path
            GeoTIFF written by :meth:`to_geotiff`.

        Returns
        -------
        DemandGrid
            The grid.
        """
        import rasterio

        with rasterio.open(path) as src:
            if src.crs is None:
                raise CRSError(msgid=N_("grid file {path}: no CRS"), path=path)
            t = src.transform
            if not math.isclose(t.a, -t.e) or t.b or t.d:
                raise DataFileError(
                    msgid=N_("grid file {path}: cells are not square and north-up"), path=path
                )
            arr = src.read(1, masked=True).filled(0.0).astype("float64")
            return cls(arr, t, src.crs.to_string(), float(t.a))


def _attach_districts(
    pts: gpd.GeoDataFrame, districts: gpd.GeoDataFrame, grid: DemandGrid
) -> gpd.GeoDataFrame:
    """District of each cell: the one containing the cell centre, else the nearest."""
    import rasterio.features

    d = districts[["district", "district_type", "geometry"]].reset_index(drop=True)
    rows, cols = grid.shape
    # rasterising labels by cell centre (all_touched=False) is an exact centre-in-polygon
    # test for every cell at once; with overlapping districts the first listed wins
    label = rasterio.features.rasterize(
        [(g, i + 1) for i, g in reversed(list(enumerate(d.geometry)))],
        out_shape=(rows, cols),
        transform=grid.transform,
        fill=0,
        dtype="int32",
    )
    which = label.ravel()[pts["cell_id"].to_numpy()].astype(np.int64) - 1
    miss = np.flatnonzero(which < 0)
    if len(miss):
        near_pt, near_d = d.sindex.nearest(pts.geometry.iloc[miss], return_all=False)
        which[miss[near_pt]] = near_d
    out = pts.copy()
    out["district"] = d["district"].to_numpy()[which]
    out["district_type"] = d["district_type"].to_numpy()[which]
    return out


def _read_raster_window(
    p: Path, band: int, target: CRS, area: Any
) -> tuple[np.ndarray, Affine, Any, Any]:
    """Pixels of ``band`` around ``area`` (+1 pixel; the whole raster when ``area`` is None).

    Returns the values (nodata as 0), the window's transform, the raster CRS and bounds.
    """
    import rasterio
    from rasterio.errors import RasterioIOError
    from rasterio.warp import transform_bounds
    from rasterio.windows import Window

    try:
        with rasterio.open(p) as src:
            check_raster_band(src, band, f"population raster {p}")
            st_full, scrs = src.transform, src.crs
            r0, r1, c0, c1 = 0, src.height, 0, src.width
            if area is not None:
                # read only the window around the boundary (+1 pixel)
                bl, bb, br, bt = transform_bounds(target, scrs, *area.bounds, densify_pts=21)
                inv = ~st_full
                cs_, rs_ = [], []
                for x, y in ((bl, bb), (bl, bt), (br, bb), (br, bt)):
                    c_, r_ = apply_affine(inv, np.array([x]), np.array([y]))
                    cs_.append(float(c_[0]))
                    rs_.append(float(r_[0]))
                r0 = max(0, math.floor(min(rs_)) - 1)
                r1 = min(src.height, math.ceil(max(rs_)) + 1)
                c0 = max(0, math.floor(min(cs_)) - 1)
                c1 = min(src.width, math.ceil(max(cs_)) + 1)
            if r1 > r0 and c1 > c0:
                win = Window(c0, r0, c1 - c0, r1 - r0)  # type: ignore[arg-type]
                data = src.read(band, window=win, masked=True).astype("float64").filled(0.0)
                t = st_full
                x_off, y_off = apply_affine(t, np.array([c0]), np.array([r0]))
                st = Affine(t.a, t.b, float(x_off[0]), t.d, t.e, float(y_off[0]))
            else:
                data = np.zeros((1, 1))
                st = st_full
            sbounds = src.bounds
    except RasterioIOError as exc:
        raise DataFileError(
            msgid=N_(
                "population raster {p}: cannot read the raster ({exc}); give a GeoTIFF of "
                "people per pixel"
            ),
            p=p,
            exc=exc,
        ) from None
    return data, st, scrs, sbounds


def _resample_to_grid(
    data: np.ndarray,
    st: Affine,
    tr: Transformer,
    transform: Affine,
    shape: tuple[int, int],
    area: Any,
    *,
    cell_size: float,
    max_points: int,
) -> tuple[np.ndarray, float, int]:
    """Spread each pixel over k x k sub-points, reproject them and sum them per grid cell.

    Returns the flat grid, the population kept (inside ``area`` and the grid) and ``k``.
    """
    rows, cols = shape
    # pixel size in target units, measured at the raster centre
    cy, cx = data.shape[0] // 2, data.shape[1] // 2
    px = np.array([[cx, cy], [cx + 1, cy], [cx, cy + 1]], dtype=float)
    sx, sy = apply_affine(st, px[:, 0], px[:, 1])
    tx, ty = tr.transform(sx, sy)
    pix = max(math.hypot(tx[1] - tx[0], ty[1] - ty[0]), math.hypot(tx[2] - tx[0], ty[2] - ty[0]))
    k = int(min(32, max(1, math.ceil(2.0 * pix / cell_size))))
    offs = (np.arange(k) + 0.5) / k
    mx, my = np.meshgrid(offs, offs)
    ox, oy = mx.ravel(), my.ravel()
    rr_all, cc_all = np.nonzero(data > 0)
    vals = data[rr_all, cc_all]
    acc = np.zeros(rows * cols, dtype="float64")
    kept = 0.0
    step = max(1, max_points // (k * k))
    for i in range(0, len(vals), step):
        r = rr_all[i : i + step, None] + oy[None, :]
        c = cc_all[i : i + step, None] + ox[None, :]
        v = np.repeat(vals[i : i + step, None] / (k * k), k * k, axis=1).ravel()
        xs, ys = apply_affine(st, c.ravel(), r.ravel())
        x, y = tr.transform(xs, ys)
        x, y = np.asarray(x), np.asarray(y)
        ok = np.isfinite(x) & np.isfinite(y)
        if area is not None:
            ok[ok] = shapely.contains_xy(area, x[ok], y[ok])
        gr, gc = cell_of(x, y, transform)
        ok &= (gr >= 0) & (gr < rows) & (gc >= 0) & (gc < cols)
        kept += float(v[ok].sum())
        acc += np.bincount((gr[ok] * cols + gc[ok]), weights=v[ok], minlength=rows * cols)
    return acc, kept, k


def conservation_error(grid: DemandGrid, expected_total: float) -> float:
    """Relative error ``|grid total - expected| / expected`` (0 when both are 0).

    Parameters
    ----------
    grid : DemandGrid
        The grid.
    expected_total : float
        Population it should hold.

    Returns
    -------
    float
        Relative error (``inf`` when only ``expected_total`` is 0).
    """
    total = grid.total()
    if expected_total == 0:
        return 0.0 if total == 0 else math.inf
    return abs(total - expected_total) / abs(expected_total)


def empty_grid(
    bounds: tuple[float, float, float, float], cell_size: float = 100.0, crs: str = DEFAULT_CRS
) -> DemandGrid:
    """A zero grid covering ``bounds`` (e.g. to build dasymetric weights on it).

    Parameters
    ----------
    bounds : tuple of float
        ``(minx, miny, maxx, maxy)`` in metres.
    cell_size : float
        Cell edge in metres.
    crs : str
        Metric CRS of the grid.

    Returns
    -------
    DemandGrid
        All cells 0.
    """
    t, rows, cols = grid_for_bounds(bounds, cell_size)
    return DemandGrid(np.zeros((rows, cols)), t, CRS.from_user_input(crs).to_string(), cell_size)


def _cell_weights(weights: WeightsLike, transform: Affine, rows: int, cols: int) -> np.ndarray:
    if callable(weights):
        xy = centres(np.arange(rows * cols), transform, cols)
        flat = np.asarray(weights(xy), dtype="float64").reshape(-1)
        if flat.size != rows * cols:
            raise ParameterError(
                msgid=N_(
                    "weights: the callable returned {n_values} values for {n_cells} cell centres"
                ),
                n_values=flat.size,
                n_cells=rows * cols,
            )
        w = flat.reshape(rows, cols)
    else:
        w = np.asarray(weights, dtype="float64")
        if w.shape != (rows, cols):
            raise ParameterError(
                msgid=N_(
                    "weights: shape {w_shape} does not match the grid ({rows}, {cols}); build "
                    "the weights on demand.empty_grid(polys.total_bounds, cell_size) or pass a "
                    "callable"
                ),
                w_shape=w.shape,
                rows=rows,
                cols=cols,
            )
    if not np.isfinite(w).all() or (w < 0).any():
        raise ParameterError(msgid=N_("weights: every weight must be finite and >= 0"))
    return w


def grid_from_polygons(
    polys: gpd.GeoDataFrame,
    column: str = "population",
    *,
    cell_size: float = 100.0,
    method: Literal["area_weighted", "dasymetric"] = "area_weighted",
    weights: WeightsLike | None = None,
    supersample: int = 5,
    bounds: tuple[float, float, float, float] | None = None,
    progress: bool | None = None,
) -> DemandGrid:
    """Spread polygon populations over a regular grid, conserving each polygon's total.

    Parameters
    ----------
    polys : GeoDataFrame
        (Multi)polygons in a metric CRS with a population column.
    column : str
        Population column (numbers >= 0).
    cell_size : float
        Cell edge in metres.
    method : {'area_weighted', 'dasymetric'}
        Spread evenly by area, or in proportion to ``weights`` within each
        polygon (falling back to area where its weights sum to 0).
    weights : array or callable, optional
        Dasymetric weights: a ``rows x cols`` array on the grid of
        :func:`empty_grid` with the same bounds and cell size, or a callable
        mapping ``n x 2`` cell centres to ``n`` weights.
    supersample : int
        Sub-cells per cell edge used to measure polygon/cell overlaps.
    bounds : tuple, optional
        Grid extent (default: the polygons' total bounds).
    progress : bool, optional
        Show a tqdm bar (default: only on a terminal).

    Returns
    -------
    DemandGrid
        With ``meta['conservation_error']`` (relative, < 1e-3 guaranteed).

    Raises
    ------
    CRSError
        Missing or geographic CRS.
    ColumnError, PopulationError, GeometryError, ParameterError
        Missing column, NaN/negative population, non-polygon geometry, bad parameters.
    """
    crs, pop = _check_polygons(polys, column, method, weights, supersample)
    b = tuple(polys.total_bounds) if bounds is None else tuple(bounds)
    transform, rows, cols = grid_for_bounds(b, cell_size)  # type: ignore[arg-type]
    w = None if method == "area_weighted" else _cell_weights(weights, transform, rows, cols)  # type: ignore[arg-type]
    grid = np.zeros((rows, cols), dtype="float64")
    ss = int(supersample)
    n_tiny = n_fallback = 0
    lost = 0.0
    show = progress if progress is not None else None
    geoms = polys.geometry.to_numpy()
    for g, p in tqdm(
        zip(geoms, pop, strict=True),
        total=len(geoms),
        desc=_("rasterising polygons"),
        disable=(not show) if show is not None else None,
        leave=False,
    ):
        if p == 0:
            continue
        outcome = _spread_polygon(grid, g, p, transform, cell_size, ss, w)
        lost += p if outcome in ("lost", "tiny_lost") else 0.0
        n_tiny += outcome in ("tiny", "tiny_lost")
        n_fallback += outcome == "fallback"
    expected = float(pop.sum())
    out = DemandGrid(grid, transform, crs.to_string(), float(cell_size))
    err = conservation_error(out, expected - lost)
    if n_tiny:
        logger.info("%d polygon(s) smaller than a sub-cell assigned to one cell", n_tiny)
    if n_fallback:
        warn_user(
            logger,
            N_("{n} polygon(s) have zero dasymetric weight everywhere; spread by area instead"),
            log_only=True,
            n=n_fallback,
        )
    if lost:
        warn_user(
            logger,
            N_("{lost:.0f} people in polygons outside the grid bounds were not gridded"),
            log_only=True,
            lost=lost,
        )
    if err > 1e-3:  # pragma: no cover - guarded by construction
        raise PopulationError(
            msgid=N_("population grid: conservation error {err:.2e} exceeds 0.1 %"), err=err
        )
    out.meta.update(
        method=method,
        input_total=expected,
        outside_total=lost,
        conservation_error=err,
        supersample=ss,
        n_polygons=len(polys),
    )
    logger.info(
        "population grid %dx%d @ %.0f m: total %.1f, input %.1f, conservation error %.2e",
        rows,
        cols,
        cell_size,
        out.total(),
        expected,
        err,
    )
    return out


def _check_polygons(
    polys: gpd.GeoDataFrame,
    column: str,
    method: str,
    weights: WeightsLike | None,
    supersample: int,
) -> tuple[CRS, np.ndarray]:
    """Validate the inputs of :func:`grid_from_polygons`; the CRS and the populations."""
    crs = require_metric(polys, "population polygons")
    require_rows(polys, "population polygons")
    require_columns(
        polys,
        [column],
        "population polygons",
        fix=Text(
            N_("the layer has {columns}; pass column="),
            columns=[c for c in polys.columns if c != "geometry"],
        ),
    )
    if method not in ("area_weighted", "dasymetric"):
        raise ParameterError(
            msgid=N_("method must be 'area_weighted' or 'dasymetric', got {method}"),
            method=repr(method),
        )
    if method == "dasymetric" and weights is None:
        raise ParameterError(
            msgid=N_("method='dasymetric' needs weights= (an array or a callable)")
        )
    if supersample < 1:
        raise ParameterError(
            msgid=N_("supersample must be >= 1, got {supersample}"), supersample=supersample
        )
    pop = pd.to_numeric(polys[column], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(pop) | (pop < 0)
    if bad.any():
        raise PopulationError(
            msgid=N_(
                "population polygons: column '{column}' is NaN or negative in rows "
                "{rows}; give a number >= 0 for every polygon"
            ),
            column=column,
            rows=list(polys.index[bad][:10]),
        )
    gtypes = set(polys.geom_type.dropna().unique())
    if (
        polys.geometry.isna().any()
        or polys.geometry.is_empty.any()
        or not gtypes
        <= {
            "Polygon",
            "MultiPolygon",
        }
    ):
        raise GeometryError(
            msgid=N_(
                "population polygons: every feature must be a non-empty (Multi)Polygon, "
                "found {gtypes} / empty geometries; fix the layer "
                "(towerplan.inputs.readers.read_vector repairs)"
            ),
            gtypes=sorted(gtypes),
        )
    return crs, pop


def _spread_polygon(
    grid: np.ndarray,
    g: Any,
    p: float,
    transform: Affine,
    cell_size: float,
    ss: int,
    w: np.ndarray | None,
) -> str:
    """Add polygon ``g``'s population ``p`` to ``grid`` by sub-cell overlap (and weights).

    Returns ``"ok"``, ``"fallback"`` (zero weights: spread by area), ``"tiny"`` (smaller
    than a sub-cell: one cell), ``"lost"`` (outside the grid) or ``"tiny_lost"``.
    """
    import rasterio.features

    rows, cols = grid.shape
    r0, r1, c0, c1 = window_of(g.bounds, transform, rows, cols)
    if r1 <= r0 or c1 <= c0:
        return "lost"
    h, wd = r1 - r0, c1 - c0
    fine_t = Affine(
        cell_size / ss,
        0.0,
        transform.c + c0 * cell_size,
        0.0,
        -cell_size / ss,
        transform.f - r0 * cell_size,
    )
    mask = rasterio.features.rasterize(
        [(g, 1)], out_shape=(h * ss, wd * ss), transform=fine_t, fill=0, dtype="uint8"
    )
    counts = mask.reshape(h, ss, wd, ss).sum(axis=(1, 3), dtype=np.int64).astype("float64")
    share, outcome = counts, "ok"
    if w is not None:
        weighted = counts * w[r0:r1, c0:c1]
        if weighted.sum() > 0:
            share = weighted
        else:
            outcome = "fallback"
    s = share.sum()
    if s > 0:
        grid[r0:r1, c0:c1] += p * (share / s)
        return outcome
    rp = g.representative_point()
    rr, cc = cell_of(np.array([rp.x]), np.array([rp.y]), transform)
    if 0 <= rr[0] < rows and 0 <= cc[0] < cols:
        grid[rr[0], cc[0]] += p
        return "tiny"
    return "tiny_lost"


def grid_from_raster(
    path: str | Path,
    *,
    crs: str = DEFAULT_CRS,
    cell_size: float = 100.0,
    boundary: gpd.GeoDataFrame | gpd.GeoSeries | None = None,
    band: int = 1,
    max_points: int = 2_000_000,
) -> DemandGrid:
    """Resample a population-count raster to the working grid, conserving counts.

    Parameters
    ----------
    path : str or Path
        Raster of people per pixel (nodata -> 0), any CRS.
    crs : str
        Working metric CRS.
    cell_size : float
        Cell edge in metres.
    boundary : GeoDataFrame or GeoSeries, optional
        Study area in a metric CRS; population outside it is dropped and the
        grid covers its bounds (default: the raster's bounds).
    band : int
        Raster band.
    max_points : int
        Sub-points processed per chunk (memory bound).

    Returns
    -------
    DemandGrid
        ``meta``: ``source_total`` (raster pixels read: the window around the
        boundary, or the whole raster), ``input_total`` (inside the boundary
        and grid), ``conservation_error``, ``subpixels``.
    """
    from rasterio.warp import transform_bounds

    target = CRS.from_user_input(crs)
    if not target.is_projected:
        raise CRSError(msgid=N_("working CRS {crs} is geographic; choose a metric CRS"), crs=crs)
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataFileError(msgid=N_("population raster {p}: file not found; check the path"), p=p)
    area = None
    if boundary is not None:
        require_metric(boundary, "boundary")
        bnd = boundary.to_crs(target)
        area = shapely.union_all(bnd.geometry.to_numpy())
        shapely.prepare(area)
    data, st, scrs, sbounds = _read_raster_window(p, band, target, area)
    check_population_array(data, Text(N_("population raster {path}"), path=p))
    b = (
        area.bounds
        if area is not None
        else transform_bounds(scrs, target, *sbounds, densify_pts=21)
    )
    transform, rows, cols = grid_for_bounds(b, cell_size)
    tr = Transformer.from_crs(scrs, target, always_xy=True)
    acc, kept, k = _resample_to_grid(
        data, st, tr, transform, (rows, cols), area, cell_size=cell_size, max_points=max_points
    )
    out = DemandGrid(acc.reshape(rows, cols), transform, target.to_string(), float(cell_size))
    err = conservation_error(out, kept)
    source_total = float(data.sum())
    out.meta.update(
        method="raster",
        source_total=source_total,
        input_total=kept,
        conservation_error=err,
        subpixels=k,
    )
    logger.info(
        "population raster %s -> %dx%d grid @ %.0f m: source %.1f, inside %.1f, grid %.1f, "
        "conservation error %.2e (%d x %d sub-points per pixel)",
        p,
        rows,
        cols,
        cell_size,
        source_total,
        kept,
        out.total(),
        err,
        k,
        k,
    )
    return out
