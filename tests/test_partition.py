"""Tests of towerplan._partition: overlapping, gappy polygons -> a partition."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import box

from towerplan._partition import make_partition
from towerplan.demand import grid_from_polygons
from towerplan.errors import CRSError


def _layer() -> gpd.GeoDataFrame:
    # A and B overlap by 10 x 100 m; C leaves a 5 m sliver to A/B (a hole of the union)
    g = gpd.GeoDataFrame(
        {"name": ["A", "B", "C"], "population": [1000.0, 500.0, 250.0]},
        geometry=[box(0, 0, 110, 100), box(100, 0, 200, 100), box(0, 105, 200, 200)],
        crs="EPSG:32648",
        index=[10, 11, 12],
    )
    ring = box(-10, -10, 210, 210).difference(box(0, 0, 200, 200))  # closes the sliver into a hole
    extra = gpd.GeoDataFrame(
        {"name": ["R"], "population": [0.0]}, geometry=[ring], crs="EPSG:32648", index=[13]
    )
    return gpd.GeoDataFrame(gpd.pd.concat([g, extra]), geometry="geometry", crs="EPSG:32648")


def test_overlap_removed_gap_filled_population_kept() -> None:
    layer = _layer()
    out, rep = make_partition(layer)
    assert list(out.index) == [10, 11, 12, 13]
    np.testing.assert_array_equal(out["population"], layer["population"])
    assert rep.overlap_km2 == pytest.approx(1000 / 1e6)  # 10 x 100 m
    assert rep.n_gaps == 1 and rep.gaps_filled_km2 == pytest.approx(1000 / 1e6)  # 200 x 5 m
    geoms = np.asarray(out.geometry)
    assert bool(shapely.coverage_is_valid(geoms))
    union = shapely.union_all(geoms)
    assert shapely.area(geoms).sum() == pytest.approx(union.area)
    assert out.geometry.iloc[0].area == pytest.approx(110 * 100)  # A (first) keeps the overlap
    assert out.geometry.iloc[1].area == pytest.approx(90 * 100)
    # the sliver borders A/B (200 m) and C (200 m) equally long, and R only at its ends
    assert out.geometry.iloc[2].area + out.geometry.iloc[0].area + out.geometry.iloc[1].area == (
        pytest.approx(200 * 200)
    )
    # gridding the partition conserves every unit's population: nobody twice, nobody lost
    grid = grid_from_polygons(out, cell_size=10.0)
    assert grid.total() == pytest.approx(1750.0)
    assert layer.geometry.iloc[0].area == pytest.approx(110 * 100)  # input not mutated


def test_geographic_crs_rejected() -> None:
    with pytest.raises(CRSError):
        make_partition(_layer().to_crs("EPSG:4326"))
