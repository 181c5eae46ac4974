"""Regular-grid helpers for the demand grid (private)."""

from __future__ import annotations

import math

import numpy as np
from affine import Affine

from towerplan.errors import N_, ParameterError


def grid_for_bounds(
    bounds: tuple[float, float, float, float], cell_size: float
) -> tuple[Affine, int, int]:
    """North-up grid covering ``bounds`` with its origin snapped to ``cell_size`` multiples.

    Parameters
    ----------
    bounds : tuple of float
        ``(minx, miny, maxx, maxy)``.
    cell_size : float
        Cell edge.

    Returns
    -------
    (Affine, rows, cols)
        Transform (top-left corner, negative row step) and shape.
    """
    if not (cell_size > 0 and math.isfinite(cell_size)):
        raise ParameterError(
            msgid=N_("cell_size must be a positive number of metres, got {cell_size}"),
            cell_size=cell_size,
        )
    minx, miny, maxx, maxy = (float(b) for b in bounds)
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)) or maxx < minx or maxy < miny:
        raise ParameterError(
            msgid=N_("grid bounds {bounds} are not finite (minx, miny, maxx, maxy)"), bounds=bounds
        )
    x0 = math.floor(minx / cell_size) * cell_size
    y1 = math.ceil(maxy / cell_size) * cell_size
    cols = max(1, math.ceil((maxx - x0) / cell_size))
    rows = max(1, math.ceil((y1 - miny) / cell_size))
    return Affine(cell_size, 0.0, x0, 0.0, -cell_size, y1), rows, cols


def window_of(
    bounds: tuple[float, float, float, float], transform: Affine, rows: int, cols: int
) -> tuple[int, int, int, int]:
    """Row/column window ``(r0, r1, c0, c1)`` of the cells touching ``bounds`` (clipped).

    Parameters
    ----------
    bounds : tuple of float
        ``(minx, miny, maxx, maxy)``.
    transform : Affine
        Grid transform.
    rows : int
        Grid rows.
    cols : int
        Grid columns.

    Returns
    -------
    tuple of int
        ``(r0, r1, c0, c1)``, half-open.
    """
    minx, miny, maxx, maxy = bounds
    cs = transform.a
    x0, y1 = transform.c, transform.f
    c0 = max(0, math.floor((minx - x0) / cs))
    c1 = min(cols, math.floor((maxx - x0) / cs) + 1)
    r0 = max(0, math.floor((y1 - maxy) / cs))
    r1 = min(rows, math.floor((y1 - miny) / cs) + 1)
    return r0, r1, c0, c1


def cell_of(x: np.ndarray, y: np.ndarray, transform: Affine) -> tuple[np.ndarray, np.ndarray]:
    """Row and column index of the cells containing points (may be out of range).

    Parameters
    ----------
    x : ndarray
        x coordinates.
    y : ndarray
        y coordinates.
    transform : Affine
        Grid transform.

    Returns
    -------
    tuple of ndarray
        Rows and columns (int).
    """
    cs = transform.a
    col = np.floor((np.asarray(x, dtype=float) - transform.c) / cs).astype(np.int64)
    row = np.floor((transform.f - np.asarray(y, dtype=float)) / cs).astype(np.int64)
    return row, col


def centres(flat_idx: np.ndarray, transform: Affine, cols: int) -> np.ndarray:
    """``n x 2`` cell-centre coordinates of flat (row-major) cell indices.

    Parameters
    ----------
    flat_idx : ndarray of int
        Row-major cell indices.
    transform : Affine
        Grid transform.
    cols : int
        Grid columns.

    Returns
    -------
    ndarray, shape (n, 2)
        Cell centres.
    """
    r, c = np.divmod(np.asarray(flat_idx, dtype=np.int64), cols)
    x = transform.c + (c + 0.5) * transform.a
    y = transform.f + (r + 0.5) * transform.e
    return np.column_stack([x, y])


def apply_affine(
    transform: Affine, col: np.ndarray, row: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Map (col, row) pixel coordinates to CRS coordinates (no deprecated ``*``).

    Parameters
    ----------
    transform : Affine
        Grid transform.
    col : ndarray
        Pixel columns.
    row : ndarray
        Pixel rows.

    Returns
    -------
    tuple of ndarray
        x and y.
    """
    col = np.asarray(col, dtype=float)
    row = np.asarray(row, dtype=float)
    t = transform
    return t.c + t.a * col + t.b * row, t.f + t.d * col + t.e * row
