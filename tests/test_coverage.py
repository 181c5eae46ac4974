"""Sparse coverage, per-operator coverage, population coverage, best-server raster."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio

from towerplan import coverage as C
from towerplan.errors import CRSError, ParameterError
from towerplan.propagation import path_loss


def _dense(dxy: np.ndarray, sxy: np.ndarray, r: np.ndarray) -> np.ndarray:
    d = np.hypot(dxy[:, None, 0] - sxy[None, :, 0], dxy[:, None, 1] - sxy[None, :, 1])
    return d <= r[None, :]


def test_coverage_matrix_matches_brute_force_with_per_site_radii() -> None:
    rng = np.random.default_rng(3)
    dxy = rng.uniform(0, 3000, (400, 2))
    sxy = rng.uniform(0, 3000, (25, 2))
    r = rng.choice([200.0, 350.0, 600.0], 25)
    mat = C.coverage_matrix(dxy, sxy, r)
    assert mat.shape == (400, 25)
    assert mat.dtype == bool
    ref = _dense(dxy, sxy, r)
    assert np.array_equal(mat.toarray(), ref)
    assert ref.sum() > 50  # the fixture really exercises coverage
    assert np.array_equal(C.covered_mask(dxy, sxy, r), ref.any(axis=1))
    assert np.array_equal(
        C.covered_mask(dxy, sxy, 350.0), _dense(dxy, sxy, np.full(25, 350.0)).any(1)
    )


def test_coverage_boundary_is_inclusive_and_empty_inputs() -> None:
    mat = C.coverage_matrix(
        np.array([[0.0, 0.0], [500.0, 0.0], [500.1, 0.0]]), np.array([[0.0, 0.0]]), 500.0
    )
    assert mat.toarray().ravel().tolist() == [True, True, False]
    assert C.coverage_matrix(np.zeros((0, 2)), np.array([[0.0, 0.0]]), 10.0).shape == (0, 1)
    assert C.coverage_matrix(np.array([[0.0, 0.0]]), np.zeros((0, 2)), 10.0).shape == (1, 0)
    assert not C.covered_mask(np.array([[0.0, 0.0]]), np.zeros((0, 2)), 10.0).any()


@pytest.mark.parametrize("bad", [0.0, -5.0, float("nan")])
def test_non_positive_radius(bad: float) -> None:
    with pytest.raises(ParameterError, match="radius"):
        C.coverage_matrix(np.zeros((3, 2)), np.zeros((2, 2)), bad)


def test_radius_shape_and_xy_shape() -> None:
    with pytest.raises(ParameterError, match="one per site"):
        C.coverage_matrix(np.zeros((3, 2)), np.zeros((2, 2)), np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ParameterError, match="shape"):
        C.coverage_matrix(np.zeros((3, 3)), np.zeros((2, 2)), 5.0)


def test_coverage_grows_with_radius() -> None:
    rng = np.random.default_rng(5)
    dxy = rng.uniform(0, 5000, (800, 2))
    sxy = rng.uniform(0, 5000, (10, 2))
    prev = C.coverage_matrix(dxy, sxy, 100.0)
    for r in (250.0, 500.0, 900.0):
        cur = C.coverage_matrix(dxy, sxy, r)
        assert (prev.astype(int) - cur.astype(int)).max() <= 0  # prev subset of cur
        assert cur.nnz > prev.nnz
        prev = cur


def _layers(crs: str = "EPSG:32648") -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    xs = np.arange(0, 2000, 100.0) + 50
    gx, gy = np.meshgrid(xs, xs)
    dem = gpd.GeoDataFrame(
        {"population": np.arange(gx.size, dtype=float) % 7 + 1.0},
        geometry=gpd.points_from_xy(gx.ravel(), gy.ravel()),
        crs=crs,
        index=pd.RangeIndex(1000, 1000 + gx.size),
    )
    sites = gpd.GeoDataFrame(
        {"site_id": ["S1", "S2", "S3"], "operators": ["A;B", "B", "C"]},
        geometry=gpd.points_from_xy([500.0, 1500.0, 1000.0], [500.0, 1500.0, 1000.0]),
        crs=crs,
    )
    return dem, sites


def test_operator_coverage_per_operator() -> None:
    dem, sites = _layers()
    cov = C.operator_coverage(dem, sites, ["A", "B", "C", "D"], 300.0)
    assert list(cov.columns) == ["A", "B", "C", "D"]
    assert cov.index.equals(dem.index)
    xy = C.points_xy(dem, "demand")
    near = lambda k: np.hypot(*(xy - sites.geometry.iloc[k].coords[0]).T) <= 300.0  # noqa: E731
    assert np.array_equal(cov["A"].to_numpy(), near(0))
    assert np.array_equal(cov["B"].to_numpy(), near(0) | near(1))
    assert np.array_equal(cov["C"].to_numpy(), near(2))
    assert not cov["D"].any()
    # per-site radius from a column
    s2 = sites.assign(r=[100.0, 300.0, 300.0])
    cov2 = C.operator_coverage(dem, s2, ["A"], "r")
    assert cov2["A"].sum() < cov["A"].sum()


def test_operator_coverage_requires_metric_crs() -> None:
    dem, sites = _layers()
    with pytest.raises(CRSError, match="geographic"):
        C.operator_coverage(dem.to_crs(4326), sites, ["A"], 300.0)


def test_population_coverage_numbers() -> None:
    dem = pd.DataFrame({"population": [10.0, 20.0, 30.0, 40.0]})
    cov = pd.DataFrame({"A": [True, True, False, False], "B": [False, False, False, True]})
    out = C.population_coverage(dem, cov, {"A": 0.75, "B": 0.25})
    assert out["total_population"] == 100.0
    assert out["operators"]["A"] == {"population": 30.0, "share": 0.3}
    assert out["operators"]["B"]["share"] == pytest.approx(0.4)
    assert out["weighted_share"] == pytest.approx(0.75 * 0.3 + 0.25 * 0.4)
    assert out["any_share"] == pytest.approx(0.7)
    # the siting objective: population times the market share of each operator covering it
    assert out["weighted_population"] == pytest.approx(0.75 * 30 + 0.25 * 40)


def test_best_server_raster(tmp_path: Path) -> None:
    _, sites = _layers()
    out = C.best_server_raster(
        sites,
        (0.0, 0.0, 4000.0, 3000.0),
        tmp_path / "bs.tif",
        cell_size_m=250.0,
        band_mhz=900.0,
        eirp_dbm=57.0,
        clutter="suburban",
        max_distance_m=3000.0,
    )
    with rasterio.open(out) as src:
        assert src.count == 3
        assert src.crs.to_epsg() == 32648
        rx, pl, srv = src.read(1), src.read(2), src.read(3)
        nodata = src.nodata
        tr = src.transform
    assert rx.shape == (12, 16)
    sxy = C.points_xy(sites, "sites")
    checked = 0
    for row in range(0, 12, 3):
        for col in range(0, 16, 3):
            x, y = tr.c + (col + 0.5) * tr.a, tr.f + (row + 0.5) * tr.e
            d = np.hypot(sxy[:, 0] - x, sxy[:, 1] - y)
            if d.min() > 3000.0:
                assert pl[row, col] == nodata
                continue
            k = int(np.argmin(d))
            assert srv[row, col] == k  # equal heights: best server = nearest site
            ref = path_loss(900.0, 30.0, 1.5, max(d[k] / 1000.0, 1.0), clutter="suburban")
            assert pl[row, col] == pytest.approx(ref, abs=1e-3)
            assert rx[row, col] == pytest.approx(57.0 - ref, abs=1e-3)
            checked += 1
    assert checked > 10
