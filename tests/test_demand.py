"""Unit tests of towerplan.demand on generated polygons and rasters."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, Polygon, box

from towerplan import demand
from towerplan.errors import ColumnError, CRSError, GeometryError, ParameterError, PopulationError

UTM = "EPSG:32648"
X0, Y0 = 585_000.0, 1_109_000.0


def _polys(geoms: list[Polygon], pops: list[float]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"population": pops}, geometry=geoms, crs=UTM)


def _districts() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"district": ["West", "East"], "district_type": ["urban", "rural"]},
        geometry=[box(X0, Y0, X0 + 500, Y0 + 1000), box(X0 + 500, Y0, X0 + 1000, Y0 + 1000)],
        crs=UTM,
    )


def test_aligned_square_spreads_evenly() -> None:
    g = demand.grid_from_polygons(
        _polys([box(X0, Y0, X0 + 1000, Y0 + 500)], [5000.0]), cell_size=100
    )
    # 10 x 5 cells of 100 people; the grid may carry an empty margin row/column
    assert g.total() == pytest.approx(5000.0, rel=1e-12)
    nz = g.population[g.population > 0]
    assert nz.size == 50
    assert nz == pytest.approx(np.full(50, 100.0))
    assert g.meta["conservation_error"] < 1e-12


def test_partial_cells_get_area_shares() -> None:
    # a 150 m x 100 m polygon: one full cell and one half cell -> 2/3 and 1/3
    g = demand.grid_from_polygons(
        _polys([box(X0, Y0, X0 + 150, Y0 + 100)], [300.0]), cell_size=100, supersample=10
    )
    vals = np.sort(g.population[g.population > 0])
    assert vals == pytest.approx([100.0, 200.0], rel=1e-9)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 5000),
            st.floats(0, 5000),
            st.floats(1, 1500),
            st.floats(1, 1500),
            # persons: 0 or at least a millionth of one (a subnormal count such as 5e-324
            # cannot be split into cell fractions without underflow; it is no population)
            st.one_of(st.just(0.0), st.floats(1e-6, 1e5)),
            st.integers(3, 9),
        ),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from([50.0, 100.0, 250.0]),
)
def test_population_conserved_on_random_polygons(
    specs: list[tuple[float, float, float, float, float, int]], cell: float
) -> None:
    geoms, pops = [], []
    for x, y, w, h, p, n in specs:
        ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
        cx, cy = X0 + x, Y0 + y
        geoms.append(Polygon(np.column_stack([cx + w * np.cos(ang), cy + h * np.sin(ang)])))
        pops.append(p)
    polys = _polys(geoms, pops)
    g = demand.grid_from_polygons(polys, cell_size=cell)
    expected = float(sum(pops))
    assert demand.conservation_error(g, expected) < 1e-9
    assert (g.population >= 0).all()


def test_tiny_polygon_goes_to_its_cell() -> None:
    tiny = box(X0 + 230, Y0 + 340, X0 + 231, Y0 + 341)  # 1 m², hits no sub-cell centre
    big = box(X0, Y0, X0 + 1000, Y0 + 1000)
    g = demand.grid_from_polygons(_polys([big, tiny], [0.0, 42.0]), cell_size=100)
    assert g.total() == pytest.approx(42.0)
    pts = g.points()
    assert len(pts) == 1
    assert pts.geometry.iloc[0].x == pytest.approx(X0 + 250)
    assert pts.geometry.iloc[0].y == pytest.approx(Y0 + 350)


def test_dasymetric_respects_weights() -> None:
    poly = box(X0, Y0, X0 + 200, Y0 + 200)  # 2 x 2 cells
    base = demand.empty_grid(tuple(_polys([poly], [1.0]).total_bounds), 100.0)
    w = np.zeros(base.shape)
    xy_w = {(X0 + 50, Y0 + 150): 1.0, (X0 + 150, Y0 + 150): 3.0}
    for (x, y), v in xy_w.items():
        r = int((base.transform.f - y) // 100)
        c = int((x - base.transform.c) // 100)
        w[r, c] = v
    g = demand.grid_from_polygons(
        _polys([poly], [1000.0]), cell_size=100, method="dasymetric", weights=w
    )
    pts = g.points()
    got = {(p.x, p.y): v for p, v in zip(pts.geometry, pts["population"], strict=True)}
    assert got == pytest.approx({(X0 + 50, Y0 + 150): 250.0, (X0 + 150, Y0 + 150): 750.0})


def test_dasymetric_callable_and_zero_weight_fallback() -> None:
    a = box(X0, Y0, X0 + 400, Y0 + 100)
    b = box(X0, Y0 + 100, X0 + 400, Y0 + 200)

    def east_only_in_south(xy: np.ndarray) -> np.ndarray:
        return np.where((xy[:, 1] < Y0 + 100) & (xy[:, 0] > X0 + 200), 1.0, 0.0)

    g = demand.grid_from_polygons(
        _polys([a, b], [400.0, 800.0]),
        cell_size=100,
        method="dasymetric",
        weights=east_only_in_south,
    )
    pts = g.points()
    south = pts[pts.geometry.y < Y0 + 100]
    north = pts[pts.geometry.y > Y0 + 100]
    assert sorted(south["population"]) == pytest.approx([200.0, 200.0])  # 2 weighted cells
    assert sorted(north["population"]) == pytest.approx([200.0] * 4)  # fallback: by area
    assert g.total() == pytest.approx(1200.0)


def test_bad_inputs_raise() -> None:
    polys = _polys([box(X0, Y0, X0 + 100, Y0 + 100)], [1.0])
    with pytest.raises(CRSError, match="geographic"):
        demand.grid_from_polygons(polys.to_crs("EPSG:4326"))
    with pytest.raises(CRSError, match="no CRS"):
        demand.grid_from_polygons(polys.set_crs(None, allow_override=True))
    with pytest.raises(ColumnError, match="pop2019"):
        demand.grid_from_polygons(polys, column="pop2019")
    bad = polys.copy()
    bad["population"] = [-3.0]
    with pytest.raises(PopulationError, match="negative"):
        demand.grid_from_polygons(bad)
    with pytest.raises(ParameterError, match="weights"):
        demand.grid_from_polygons(polys, method="dasymetric")
    with pytest.raises(ParameterError, match="shape"):
        demand.grid_from_polygons(polys, method="dasymetric", weights=np.ones((7, 7)))
    pts = gpd.GeoDataFrame({"population": [1.0]}, geometry=[Point(X0, Y0)], crs=UTM)
    with pytest.raises(GeometryError):
        demand.grid_from_polygons(pts)


def test_points_with_districts_and_keep_empty() -> None:
    poly = box(X0 + 300, Y0, X0 + 700, Y0 + 100)  # 4 cells across both districts
    g = demand.grid_from_polygons(
        _polys([poly], [400.0]), cell_size=100, bounds=(X0, Y0, X0 + 1000, Y0 + 1000)
    )
    pts = g.points(_districts())
    assert list(pts.columns) == [
        "cell_id",
        "population",
        "district",
        "district_type",
        "density_km2",
        "geometry",
    ]
    assert pts["population"].tolist() == pytest.approx([100.0] * 4)
    assert pts["district"].tolist() == ["West", "West", "East", "East"]
    assert pts["density_km2"].tolist() == pytest.approx([10_000.0] * 4)
    np.testing.assert_allclose(g.xy(), np.column_stack([pts.geometry.x, pts.geometry.y]))
    full = g.points(_districts(), keep_empty=True)
    assert len(full) == 100 and full["population"].sum() == pytest.approx(400.0)
    assert (full["district"] == "East").sum() == 50
    # cell_id is the flat row-major index
    r, c = np.divmod(pts["cell_id"].to_numpy(), g.shape[1])
    assert g.population[r, c] == pytest.approx(pts["population"].to_numpy())


def test_points_outside_districts_go_to_nearest() -> None:
    poly = box(X0 + 1000, Y0, X0 + 1100, Y0 + 100)  # just east of both districts
    g = demand.grid_from_polygons(_polys([poly], [7.0]), cell_size=100)
    pts = g.points(_districts())
    assert pts["district"].tolist() == ["East"]


def test_geotiff_round_trip_and_raster_regrid(tmp_path: Path) -> None:
    polys = _polys(
        [box(X0, Y0, X0 + 730, Y0 + 410), box(X0 + 730, Y0, X0 + 1200, Y0 + 900)], [1234.0, 567.0]
    )
    g = demand.grid_from_polygons(polys, cell_size=100)
    path = g.to_geotiff(tmp_path / "pop.tif")
    back = demand.DemandGrid.from_geotiff(path)
    np.testing.assert_array_equal(back.population, g.population)
    assert back.transform == g.transform and back.cell_size == 100.0
    again = demand.grid_from_raster(path, crs=UTM, cell_size=100)
    assert again.shape == g.shape
    np.testing.assert_allclose(again.population, g.population, rtol=1e-12, atol=1e-9)
    coarse = demand.grid_from_raster(path, crs=UTM, cell_size=300)
    assert coarse.total() == pytest.approx(g.total(), rel=1e-12)


def _geo_raster(path: Path, arr: np.ndarray, nodata: float | None = None) -> Path:
    t = Affine(0.001, 0.0, 105.70, 0.0, -0.001, 10.10)  # ~110 m pixels
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=arr.shape[0],
        width=arr.shape[1],
        count=1,
        dtype="float64",
        crs="EPSG:4326",
        transform=t,
        nodata=nodata,
    ) as dst:
        dst.write(arr, 1)
    return path


def test_grid_from_geographic_raster_conserves_and_clips(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    arr = rng.gamma(2.0, 20.0, size=(40, 50))
    arr[0, :5] = -1.0  # nodata
    p = _geo_raster(tmp_path / "geo.tif", arr, nodata=-1.0)
    valid_total = float(arr[arr >= 0].sum())
    g = demand.grid_from_raster(p, crs=UTM, cell_size=100)
    assert g.meta["source_total"] == pytest.approx(valid_total)
    assert demand.conservation_error(g, valid_total) < 1e-9
    # clip to the western half (in lon) of the raster
    west = gpd.GeoSeries([box(105.70, 10.06, 105.725, 10.10)], crs="EPSG:4326").to_crs(UTM)
    clipped = demand.grid_from_raster(p, crs=UTM, cell_size=100, boundary=west)
    expected = float(np.where(arr[:, :25] >= 0, arr[:, :25], 0).sum())
    assert clipped.total() == pytest.approx(clipped.meta["input_total"], rel=1e-12)
    assert clipped.total() == pytest.approx(expected, rel=0.02)  # edge pixels split
    with pytest.raises(CRSError):
        demand.grid_from_raster(p, crs="EPSG:4326")


def test_large_raster_values_checked_when_gridded(tmp_path: Path) -> None:
    from towerplan.inputs import readers

    arr = np.full((20, 20), 3.0)
    arr[0, 0] = -5.0  # north-west corner pixel
    p = _geo_raster(tmp_path / "neg.tif", arr)
    with pytest.raises(PopulationError):
        readers.read_population_raster(p)
    assert readers.read_population_raster(p, max_check_pixels=100) == p  # metadata only
    with pytest.raises(PopulationError, match="negative"):
        demand.grid_from_raster(p, crs=UTM)
    # a boundary in the south-east quarter reads a window that avoids the bad pixel
    se = gpd.GeoSeries([box(105.711, 10.081, 105.719, 10.089)], crs="EPSG:4326").to_crs(UTM)
    g = demand.grid_from_raster(p, crs=UTM, boundary=se)
    assert g.meta["source_total"] < 3.0 * 400 / 2  # only a window was read
    assert g.total() == pytest.approx(g.meta["input_total"], rel=1e-12)
    assert g.total() == pytest.approx(3.0 * 64, rel=0.05)  # ~8 x 8 pixels inside


def test_demand_grid_validates() -> None:
    with pytest.raises(CRSError):
        demand.DemandGrid(np.zeros((2, 2)), Affine.identity(), "EPSG:4326", 100.0)
    with pytest.raises(ParameterError):
        demand.DemandGrid(np.zeros(4), Affine.identity(), UTM, 100.0)
    with pytest.raises(ParameterError, match="districts"):
        demand.empty_grid((X0, Y0, X0 + 100, Y0 + 100)).points(keep_empty=True)
