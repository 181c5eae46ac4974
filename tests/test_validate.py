"""towerplan._validate: the one place for CRS, column, coordinate and district rules."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from conftest import CRS
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, box

from towerplan._validate import (
    assign_district,
    points_xy,
    require_columns,
    require_metric,
    require_same_crs,
)
from towerplan.errors import ColumnError, CRSError


def _districts() -> gpd.GeoDataFrame:
    # A: [0, 10] x [0, 10], B: [10, 20] x [0, 10], C overlaps B: [15, 25] x [0, 10]
    return gpd.GeoDataFrame(
        {"district": ["A", "B", "C"], "district_type": ["urban", "rural", "rural"]},
        geometry=[box(0, 0, 10, 10), box(10, 0, 20, 10), box(15, 0, 25, 10)],
        crs=CRS,
    )


def test_assign_district_inside_border_overlap_outside() -> None:
    pts = gpd.GeoDataFrame(
        {"v": range(6)},
        geometry=[
            Point(5, 5),  # inside A
            Point(10, 5),  # on the A|B border: the first listed (A)
            Point(17, 5),  # inside B and C: the first listed (B)
            Point(24, 5),  # only C
            Point(40, 5),  # outside, nearest C
            Point(-3, 12),  # outside, nearest A
        ],
        crs=CRS,
        index=[10, 11, 12, 13, 14, 15],
    )
    got = assign_district(pts, _districts())
    assert got.index.equals(pts.index)
    assert got.tolist() == ["A", "A", "B", "C", "C", "A"]
    types = assign_district(pts, _districts(), column="district_type")
    assert types.tolist() == ["urban", "urban", "rural", "rural", "rural", "urban"]
    assert assign_district(pts.iloc[:0], _districts()).empty


def test_assign_district_errors() -> None:
    pts = gpd.GeoSeries([Point(1, 1)], crs=CRS)
    with pytest.raises(CRSError, match="geographic"):
        assign_district(pts.to_crs(4326), _districts())
    with pytest.raises(CRSError, match="different CRSs"):
        assign_district(pts, _districts().to_crs("EPSG:32649"))
    with pytest.raises(ColumnError, match=r"districts: missing column\(s\) \['district'\]"):
        assign_district(pts, _districts().drop(columns="district"))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-20, 45, allow_nan=False), st.floats(-20, 30, allow_nan=False)),
        min_size=1,
        max_size=30,
    )
)
def test_assign_district_is_containing_else_nearest(xy: list[tuple[float, float]]) -> None:
    d = _districts()
    pts = gpd.GeoSeries([Point(x, y) for x, y in xy], crs=CRS)
    got = assign_district(pts, d).to_numpy()
    for p, name in zip(pts, got, strict=True):
        containing = [n for n, g in zip(d["district"], d.geometry, strict=True) if g.intersects(p)]
        if containing:
            assert name == containing[0]
        else:
            dist = d.geometry.distance(p).to_numpy()
            assert dist[d["district"].tolist().index(name)] == pytest.approx(dist.min())


def test_points_xy_and_column_checks() -> None:
    g = gpd.GeoDataFrame(
        {"a": [1, 2]}, geometry=[Point(1, 2), box(0, 0, 2, 4)], crs=CRS, index=[5, 3]
    )
    assert np.allclose(points_xy(g, "g"), [[1, 2], [1, 2]])  # centroid of the box
    assert points_xy(g.iloc[:0], "g").shape == (0, 2)
    with pytest.raises(CRSError, match="g: the layer has no CRS"):
        points_xy(g.set_crs(None, allow_override=True), "g")
    require_columns(pd.DataFrame({"a": [1]}), ["a"], "t")
    with pytest.raises(ColumnError, match=r"^t: missing column\(s\) \['b', 'c'\]; use x\(\)$"):
        require_columns(pd.DataFrame({"a": [1]}), ["a", "b", "c"], "t", fix="use x()")
    with pytest.raises(CRSError, match=r"^a \(EPSG:32648\) and b"):
        require_same_crs(g, g.to_crs("EPSG:32649"), "a", "b")
    assert require_metric(g, "g").to_epsg() == 32648
