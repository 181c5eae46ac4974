"""Unit tests of towerplan.inputs.readers on small generated fixtures."""

from __future__ import annotations

import json
import logging
import sys
import types
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import yaml
from shapely.geometry import LineString, Point, Polygon, box

from towerplan.errors import (
    ColumnError,
    CRSError,
    DataFileError,
    DuplicateIDError,
    EmptyInputError,
    GeometryError,
    PopulationError,
    ScenarioError,
    StudyAreaError,
)
from towerplan.inputs import readers
from towerplan.scenario import scenario_from_dict

UTM = "EPSG:32648"
FIXTURES = Path(__file__).parent / "fixtures"
X0, Y0 = 585_000.0, 1_109_000.0  # a spot near 105.78 E, 10.03 N in UTM 48N


def _sq(ix: float, iy: float, size: float = 1000.0) -> Polygon:
    return box(X0 + ix * size, Y0 + iy * size, X0 + (ix + 1) * size, Y0 + (iy + 1) * size)


def _communes() -> gpd.GeoDataFrame:
    """Six 1 km squares: 4 communes of 'Quận Alpha' (urban), 2 of 'Huyện Beta' (rural)."""
    return gpd.GeoDataFrame(
        {
            "district_vn": ["Quận Alpha"] * 4 + ["Huyện Beta"] * 2,
            "commune": [f"c{i}" for i in range(6)],
            "dcode": ["A1"] * 4 + ["B2"] * 2,
            "pop": [1000.0, 2000.0, 3000.0, 4000.0, 500.0, 700.0],
        },
        geometry=[_sq(0, 0), _sq(1, 0), _sq(0, 1), _sq(1, 1), _sq(2, 0), _sq(2, 1)],
        crs=UTM,
    )


def _districts_file(tmp_path: Path) -> Path:
    d = gpd.GeoDataFrame(
        {
            "ten": ["Alpha", "Beta"],
            "loai": ["Quận", "huyện"],
            "ma": ["01", "02"],
            "dan_so": [10_000.0, 1_200.0],
        },
        geometry=[box(X0, Y0, X0 + 2000, Y0 + 2000), box(X0 + 2000, Y0, X0 + 3000, Y0 + 2000)],
        crs=UTM,
    ).to_crs("EPSG:4326")
    p = tmp_path / "districts.gpkg"
    d.to_file(p)
    return p


def _lonlat(x: float, y: float) -> tuple[float, float]:
    p = gpd.GeoSeries([Point(x, y)], crs=UTM).to_crs("EPSG:4326").iloc[0]
    return p.x, p.y


def _sites_csv(tmp_path: Path, rows: list[dict[str, object]], name: str = "sites.csv") -> Path:
    p = tmp_path / name
    pd.DataFrame(rows).to_csv(p, index=False)
    return p


def _site_rows() -> list[dict[str, object]]:
    rows = []
    for i, (x, y) in enumerate([(500, 500), (1500, 800), (2500, 1500)]):
        lon, lat = _lonlat(X0 + x, Y0 + y)
        rows.append(
            {
                "id": f"BTS-{i}",
                "x_lon": lon,
                "y_lat": lat,
                "owner": ["Viettel", "MobiFone", "Viettel"][i],
                "tenants": ["Viettel;MobiFone", "MobiFone", "VNPT-VinaPhone;Viettel"][i],
                "h": [30.0, 42.0, None][i],
            }
        )
    return rows


SITE_COLS = {"lon": "x_lon", "lat": "y_lat", "operator": "owner", "site_id": "id", "height": "h"}


# --------------------------------------------------------------------------- read_vector


def test_read_vector_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gpkg"
    with pytest.raises(DataFileError, match=r"nope\.gpkg") as ei:
        readers.read_vector(missing)
    assert "not found" in str(ei.value)


def test_read_vector_unreadable(tmp_path: Path) -> None:
    bad = tmp_path / "broken.geojson"
    bad.write_text("{ this is not json", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"broken\.geojson"):
        readers.read_vector(bad)


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_read_vector_no_crs_raises_and_source_crs_fixes(tmp_path: Path) -> None:
    g = gpd.GeoDataFrame({"a": [1]}, geometry=[Point(105.78, 10.03)])  # no CRS
    p = tmp_path / "nocrs.gpkg"
    g.to_file(p)
    with pytest.raises(CRSError, match=r"nocrs\.gpkg"):
        readers.read_vector(p)
    out = readers.read_vector(p, source_crs="EPSG:4326")
    assert out.crs.to_epsg() == 32648
    assert out.geometry.iloc[0].x == pytest.approx(585_000, abs=2_000)


def test_read_vector_empty_layer(tmp_path: Path) -> None:
    g = gpd.GeoDataFrame({"a": pd.Series([], dtype=int)}, geometry=[], crs="EPSG:4326")
    p = tmp_path / "empty.gpkg"
    g.to_file(p)
    with pytest.raises(EmptyInputError, match=r"empty\.gpkg"):
        readers.read_vector(p)


def test_read_vector_repairs_bowtie(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bowtie = Polygon([(X0, Y0), (X0 + 100, Y0 + 100), (X0 + 100, Y0), (X0, Y0 + 100)])
    assert not bowtie.is_valid
    p = tmp_path / "bowtie.gpkg"
    gpd.GeoDataFrame({"a": [1]}, geometry=[bowtie], crs=UTM).to_file(p)
    with pytest.raises(
        GeometryError, match=r"1 invalid geometry \(rows 0; first: Self-intersection"
    ):
        readers.read_vector(p)
    with caplog.at_level(logging.WARNING, logger="towerplan.inputs"):
        out = readers.read_vector(p, repair=True)
    assert out.is_valid.all()
    assert out.geometry.iloc[0].area == pytest.approx(5000.0, rel=1e-9)  # two triangles
    assert "make_valid" in caplog.text


def test_read_vector_empty_geometry(tmp_path: Path) -> None:
    p = tmp_path / "holes.gpkg"
    gpd.GeoDataFrame({"a": [1, 2]}, geometry=[_sq(0, 0), Polygon()], crs=UTM).to_file(p)
    with pytest.raises(GeometryError, match="no geometry"):
        readers.read_vector(p)


# --------------------------------------------------------------------------- districts


def test_read_districts_with_type_column(tmp_path: Path) -> None:
    p = _districts_file(tmp_path)
    d = readers.read_districts(
        p, columns={"name": "ten", "type": "loai", "code": "ma"}, population_column="dan_so"
    )
    assert list(d["district"]) == ["Alpha", "Beta"]
    assert list(d["district_type"]) == ["urban", "rural"]
    assert list(d["code"]) == ["01", "02"]
    assert d["population"].tolist() == [10_000.0, 1_200.0]
    assert d["area_km2"].to_numpy() == pytest.approx([4.0, 2.0], rel=1e-3)
    assert d.crs.to_epsg() == 32648


def test_read_districts_unknown_type_value(tmp_path: Path) -> None:
    d = gpd.read_file(_districts_file(tmp_path))
    d["loai"] = ["Quận", "metropolis"]
    p = tmp_path / "bad_type.gpkg"
    d.to_file(p)
    with pytest.raises(ColumnError) as ei:
        readers.read_districts(p, columns={"name": "ten", "type": "loai"})
    msg = str(ei.value)
    assert "metropolis" in msg and "loai" in msg and "huyện" in msg and "bad_type.gpkg" in msg


def test_read_districts_missing_name_column(tmp_path: Path) -> None:
    p = _districts_file(tmp_path)
    with pytest.raises(ColumnError) as ei:
        readers.read_districts(p, columns={"name": "district_name"})
    assert "district_name" in str(ei.value) and "'ten'" in str(ei.value)


def test_read_districts_dissolves_communes_and_reads_type_prefix(tmp_path: Path) -> None:
    p = tmp_path / "communes.geojson"
    _communes().to_crs("EPSG:4326").to_file(p)
    d = readers.read_districts(
        p, columns={"name": "district_vn", "code": "dcode", "population": "pop"}
    )
    assert list(d["district"]) == ["Alpha", "Beta"]
    assert list(d["district_type"]) == ["urban", "rural"]
    assert list(d["code"]) == ["A1", "B2"]
    assert d["population"].tolist() == [10_000.0, 1_200.0]
    assert d["n_units"].tolist() == [4, 2]
    assert d["area_km2"].to_numpy() == pytest.approx([4.0, 2.0], rel=1e-3)
    # dissolved into single polygons
    assert d.geometry.iloc[0].geom_type == "Polygon"


def test_dissolve_to_districts_pure_and_population_checked() -> None:
    c = _communes()
    before = c.copy()
    d = readers.dissolve_to_districts(c, by="district_vn", population="pop")
    assert d["population"].sum() == c["pop"].sum()
    pd.testing.assert_frame_equal(c.drop(columns="geometry"), before.drop(columns="geometry"))
    c.loc[2, "pop"] = -5
    c.loc[4, "pop"] = np.nan
    with pytest.raises(PopulationError, match=r"rows 2, 4"):
        readers.dissolve_to_districts(c, by="district_vn", population="pop")


def test_dissolve_without_type_prefix_asks_for_type_column() -> None:
    c = _communes()
    c["district_vn"] = ["Alpha"] * 4 + ["Beta"] * 2
    with pytest.raises(ColumnError, match="type"):
        readers.dissolve_to_districts(c, by="district_vn", population="pop")
    c["kind"] = ["urban"] * 4 + ["rural"] * 2
    d = readers.dissolve_to_districts(c, by="district_vn", population="pop", type_column="kind")
    assert list(d["district_type"]) == ["urban", "rural"]


def test_dissolve_requires_metric_crs() -> None:
    with pytest.raises(CRSError):
        readers.dissolve_to_districts(_communes().to_crs("EPSG:4326"), by="district_vn")


# --------------------------------------------------------------------------- population


def test_read_population_polygons_rejects_nan_and_negative(tmp_path: Path) -> None:
    c = _communes()
    c.loc[1, "pop"] = np.nan
    c.loc[3, "pop"] = -1.0
    p = tmp_path / "pop.gpkg"
    c.to_file(p)
    with pytest.raises(PopulationError) as ei:
        readers.read_population_polygons(p, column="pop")
    assert "rows 1, 3" in str(ei.value) and "pop.gpkg" in str(ei.value)


def test_read_population_polygons_ok(tmp_path: Path) -> None:
    p = tmp_path / "pop.gpkg"
    _communes().to_file(p)
    out = readers.read_population_polygons(p, column="pop", keep_columns=["commune"])
    assert out["population"].sum() == 11_200.0
    assert list(out.columns) == ["population", "commune", "geometry"]
    with pytest.raises(ColumnError, match="popul"):
        readers.read_population_polygons(p, column="popul")


def _write_raster(path: Path, arr: np.ndarray, crs: str | None, nodata: float | None) -> Path:
    import rasterio
    from affine import Affine

    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=arr.shape[0],
        width=arr.shape[1],
        count=1,
        dtype="float64",
        crs=crs,
        transform=Affine(100.0, 0.0, X0, 0.0, -100.0, Y0 + 1000),
        nodata=nodata,
    ) as dst:
        dst.write(arr, 1)
    return path


def test_read_population_raster_checks(tmp_path: Path) -> None:
    arr = np.full((4, 5), 10.0)
    arr[0, 0] = -9999.0
    ok = _write_raster(tmp_path / "ok.tif", arr, UTM, -9999.0)
    assert readers.read_population_raster(ok) == ok
    with pytest.raises(CRSError, match=r"nocrs\.tif"):
        readers.read_population_raster(_write_raster(tmp_path / "nocrs.tif", arr, None, -9999.0))
    with pytest.raises(PopulationError, match="negative"):
        readers.read_population_raster(_write_raster(tmp_path / "neg.tif", arr, UTM, None))
    with pytest.raises(DataFileError, match=r"missing\.tif"):
        readers.read_population_raster(tmp_path / "missing.tif")
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"not a tiff")
    with pytest.raises(DataFileError, match=r"junk\.tif"):
        readers.read_population_raster(junk)


# --------------------------------------------------------------------------- sites


def _study() -> Polygon:
    return box(X0 - 200, Y0 - 200, X0 + 3200, Y0 + 2200)


def test_read_sites_csv(tmp_path: Path) -> None:
    p = _sites_csv(tmp_path, _site_rows())
    s = readers.read_sites(p, columns=SITE_COLS, study_area=_study(), max_tenants=3)
    assert list(s.columns) == [
        "site_id",
        "operator",
        "operators",
        "n_tenants",
        "max_tenants",
        "height_m",
        "geometry",
    ]
    assert list(s["site_id"]) == ["BTS-0", "BTS-1", "BTS-2"]
    assert list(s["operators"]) == ["Viettel;MobiFone", "MobiFone", "Viettel;VNPT-VinaPhone"]
    assert list(s["n_tenants"]) == [2, 1, 2]
    assert np.isnan(s["height_m"].iloc[2]) and s["height_m"].iloc[1] == 42.0
    assert s.geometry.iloc[1].x == pytest.approx(X0 + 1500, abs=0.01)
    assert s.geometry.iloc[1].y == pytest.approx(Y0 + 800, abs=0.01)


def test_read_sites_tenant_count_and_generated_ids(tmp_path: Path) -> None:
    rows = _site_rows()
    for r, n in zip(rows, [1, 2, 4], strict=True):
        r.pop("id")
        r["tenants"] = n
    p = _sites_csv(tmp_path, rows)
    cols = {k: v for k, v in SITE_COLS.items() if k != "site_id"}
    s = readers.read_sites(p, columns=cols, max_tenants=3)
    assert list(s["site_id"]) == ["S0001", "S0002", "S0003"]
    assert list(s["n_tenants"]) == [1, 2, 4]
    assert list(s["max_tenants"]) == [3, 3, 4]


def test_read_sites_duplicate_ids(tmp_path: Path) -> None:
    rows = _site_rows()
    rows[2]["id"] = "BTS-0"
    p = _sites_csv(tmp_path, rows)
    with pytest.raises(DuplicateIDError) as ei:
        readers.read_sites(p, columns=SITE_COLS)
    assert "BTS-0" in str(ei.value) and "sites.csv" in str(ei.value)


def test_read_sites_missing_column_lists_columns(tmp_path: Path) -> None:
    p = _sites_csv(tmp_path, _site_rows())
    with pytest.raises(ColumnError) as ei:
        readers.read_sites(p, columns={**SITE_COLS, "operator": "carrier"})
    msg = str(ei.value)
    assert "carrier" in msg and "x_lon" in msg and "owner" in msg


def test_read_sites_swapped_lon_lat(tmp_path: Path) -> None:
    p = _sites_csv(tmp_path, _site_rows())
    swapped = {**SITE_COLS, "lon": "y_lat", "lat": "x_lon"}
    with pytest.raises(StudyAreaError) as ei:
        readers.read_sites(p, columns=swapped, study_area=_study(), source_crs="EPSG:4326")
    msg = str(ei.value)
    assert "3 of 3 sites fall outside the study area; are lon and lat swapped?" in msg
    assert "{lon: x_lon, lat: y_lat}" in msg and "sites.csv" in msg
    # |lat| > 90 is caught even without a study area
    with pytest.raises(StudyAreaError, match="swapped"):
        readers.read_sites(p, columns=swapped)


def test_read_sites_swap_hint_where_both_orders_are_valid(tmp_path: Path) -> None:
    # a city at lon 20, lat 30: swapped values are still valid degrees, so the
    # swap is detected geometrically (swapped points fall inside the study area)
    study = gpd.GeoSeries([box(19.9, 29.9, 20.1, 30.1)], crs="EPSG:4326").to_crs("EPSG:3857")
    rows = [
        {"lon": 30.0 + 0.01 * i, "lat": 20.0 + 0.01 * i, "operator": "X", "site_id": i}
        for i in range(4)
    ]
    p = _sites_csv(tmp_path, rows)
    with pytest.raises(StudyAreaError) as ei:
        readers.read_sites(p, crs="EPSG:3857", study_area=study)
    msg = str(ei.value)
    assert "4 of 4 sites fall outside the study area; are lon and lat swapped?" in msg
    assert "swapping them would put 4 of them inside" in msg


def test_read_sites_outside_without_swap_hint(tmp_path: Path) -> None:
    rows = _site_rows()
    rows[1]["x_lon"] = float(str(rows[1]["x_lon"])) + 0.5  # ~55 km east
    p = _sites_csv(tmp_path, rows)
    with pytest.raises(StudyAreaError) as ei:
        readers.read_sites(p, columns=SITE_COLS, study_area=_study())
    msg = str(ei.value)
    assert msg.count("1 of 3 sites fall outside") == 1 and "would not" in msg and "BTS-1" in msg
    kept = readers.read_sites(p, columns=SITE_COLS, study_area=_study(), outside="drop")
    assert list(kept["site_id"]) == ["BTS-0", "BTS-2"]


def test_read_sites_gpkg_points(tmp_path: Path) -> None:
    g = gpd.GeoDataFrame(
        {"site_id": ["a", "b"], "operator": ["Viettel", "MobiFone"], "height_m": [20.0, 35.0]},
        geometry=[Point(X0 + 100, Y0 + 100), Point(X0 + 900, Y0 + 300)],
        crs=UTM,
    ).to_crs("EPSG:4326")
    p = tmp_path / "sites.gpkg"
    g.to_file(p)
    s = readers.read_sites(p, study_area=gpd.GeoSeries([_study()], crs=UTM))
    assert list(s["site_id"]) == ["a", "b"] and list(s["n_tenants"]) == [1, 1]
    assert s.geometry.iloc[1].x == pytest.approx(X0 + 900, abs=0.01)


# --------------------------------------------------------------------------- OpenCelliD


def _cells() -> pd.DataFrame:
    """Three structures: A (3 cells, 2 operators), B (1 cell, 1 km away), C (2 cells, 30 m)."""
    rows = []

    def add(dx: float, dy: float, net: int, radio: str, cell: int) -> None:
        lon, lat = _lonlat(X0 + dx, Y0 + dy)
        rows.append([radio, 452, net, 100, cell, 0, lon, lat, 500, 3, 1, 0, 0, 0])

    add(0, 0, 4, "LTE", 1)  # A Viettel
    add(10, 5, 4, "GSM", 2)  # A Viettel
    add(-8, 12, 1, "LTE", 3)  # A MobiFone
    add(1000, 0, 2, "UMTS", 4)  # B VinaPhone
    add(0, 2000, 5, "GSM", 5)  # C Vietnamobile
    add(30, 2000, 5, "GSM", 6)  # C Vietnamobile
    add(500, 500, 99, "LTE", 7)  # D unknown network
    return pd.DataFrame(rows, columns=list(readers.OPENCELLID_COLUMNS))


@pytest.mark.parametrize("header", [True, False])
def test_read_opencellid(tmp_path: Path, header: bool) -> None:
    p = tmp_path / "cells.csv"
    _cells().to_csv(p, index=False, header=header)
    df = readers.read_opencellid(p)
    assert len(df) == 7 and list(df.columns) == list(readers.OPENCELLID_COLUMNS)
    assert df["net"].tolist() == [4, 4, 1, 2, 5, 5, 99]
    assert df["lat"].iloc[0] == pytest.approx(_cells()["lat"].iloc[0])


def test_read_opencellid_wrong_columns(tmp_path: Path) -> None:
    p = tmp_path / "cells.csv"
    _cells().iloc[:, :10].to_csv(p, index=False)
    with pytest.raises(DataFileError, match="10 columns"):
        readers.read_opencellid(p)


def test_cluster_cells_to_sites() -> None:
    sites = readers.cluster_cells_to_sites(_cells(), cluster_distance_m=50.0)
    assert len(sites) == 4
    a, b, c, d = (sites.iloc[i] for i in range(4))
    assert a["operators"] == "Viettel;MobiFone" and a["operator"] == "Viettel"
    assert a["n_tenants"] == 2 and a["n_cells"] == 3 and a["radios"] == "GSM;LTE"
    assert b["operators"] == "VNPT-VinaPhone" and b["n_cells"] == 1
    assert c["operators"] == "Vietnamobile" and c["n_cells"] == 2
    assert d["operator"] == "452-99"
    # site point = mean of member cells
    assert a.geometry.x == pytest.approx(X0 + (0 + 10 - 8) / 3, abs=0.05)
    assert a.geometry.y == pytest.approx(Y0 + (0 + 5 + 12) / 3, abs=0.05)
    assert c.geometry.x == pytest.approx(X0 + 15, abs=0.05)
    assert sites.crs.to_epsg() == 32648
    assert list(sites["site_id"]) == ["OCID-00001", "OCID-00002", "OCID-00003", "OCID-00004"]


def test_cluster_cells_distance_separates_and_min_cells_drops() -> None:
    # at 10 m the two Vietnamobile cells 30 m apart and A's operators are separate
    s = readers.cluster_cells_to_sites(_cells(), cluster_distance_m=10.0)
    assert s["n_cells"].tolist() == [2, 1, 1, 1, 1, 1]
    # min_cells=2: the single-cell structures B and D are dropped, and counted
    s = readers.cluster_cells_to_sites(_cells(), cluster_distance_m=50.0, min_cells=2)
    assert s["n_cells"].tolist() == [3, 2]
    assert s.attrs["opencellid"] == {
        "cells_read": 7,
        "structures": 2,
        "cells_dropped_min_cells": 2,
    }


def test_cluster_lone_cell_is_a_structure() -> None:
    """The default keeps a single-cell tower (the Vietnamobile tower of the issue)."""
    s = readers.cluster_cells_to_sites(_cells())
    assert "VNPT-VinaPhone" in s["operators"].tolist()
    assert s["n_cells"].tolist() == [3, 1, 2, 1]


def test_cluster_cells_swapped_coordinates() -> None:
    swapped = _cells().rename(columns={"lon": "lat", "lat": "lon"})  # lat holds ~105.78
    with pytest.raises(StudyAreaError, match="7 of 7 cells"):
        readers.cluster_cells_to_sites(swapped)


# --------------------------------------------------------------------------- POIs and roads


def test_read_pois_category_and_polygons(tmp_path: Path) -> None:
    g = gpd.GeoDataFrame(
        {"ten": ["benh vien A", "truong B", "cho C"], "loai": ["BV", "TH", "market"]},
        geometry=[Point(X0, Y0), _sq(1, 1, 100), Point(X0 + 50, Y0)],
        crs=UTM,
    )
    p = tmp_path / "pois.geojson"
    g.to_crs("EPSG:4326").to_file(p)
    out = readers.read_pois(
        p, columns={"category": "loai"}, category_map={"bv": "hospital", "th": "school"}
    )
    assert list(out["category"]) == ["hospital", "school", "market"]
    assert list(out["name"]) == ["benh vien A", "truong B", "cho C"]
    assert list(out["from_polygon"]) == [False, True, False]
    assert set(out.geom_type) == {"Point"}
    assert _sq(1, 1, 100).contains(out.geometry.iloc[1])
    assert set(out["source"]) == {"pois.geojson"}
    fixed = readers.read_pois(p, category="hospital")
    assert set(fixed["category"]) == {"hospital"}
    with pytest.raises(ColumnError, match="category"):
        readers.read_pois(p)


def test_read_roads_classes(tmp_path: Path) -> None:
    g = gpd.GeoDataFrame(
        {
            "loai_duong": ["quoc lo", "Tỉnh lộ", None, "duong dat"],
            "ten_duong": ["QL1", "TL 923", "", "x"],
        },
        geometry=[
            LineString([(X0, Y0), (X0 + 1000, Y0)]),
            LineString([(X0, Y0), (X0, Y0 + 500)]),
            LineString([(X0, Y0), (X0 + 10, Y0 + 10)]),
            LineString([(X0, Y0), (X0 + 20, Y0 + 10)]),
        ],
        crs=UTM,
    )
    p = tmp_path / "roads.gpkg"
    g.to_file(p)
    r = readers.read_roads(p)
    assert list(r["road_class"]) == ["national", "provincial", "local", "duong dat"]
    assert list(r["name"]) == ["QL1", "TL 923", "", "x"]
    r2 = readers.read_roads(p, class_map={"duong dat": "local"})
    assert list(r2["road_class"]) == ["national", "provincial", "local", "local"]
    pts = tmp_path / "pts.gpkg"
    gpd.GeoDataFrame(geometry=[Point(X0, Y0)], crs=UTM).to_file(pts)
    with pytest.raises(GeometryError, match="line"):
        readers.read_roads(pts)


def _osm_xml(path: Path) -> Path:
    """Write the synthetic Overpass fixture as OSM XML."""
    data = json.loads((FIXTURES / "overpass_synthetic_grid.json").read_text())
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6" generator="test">']
    for e in data["elements"]:
        if e["type"] == "node":
            lines.append(f'<node id="{e["id"]}" lat="{e["lat"]}" lon="{e["lon"]}" version="1"/>')
    for e in data["elements"]:
        if e["type"] == "way":
            lines.append(f'<way id="{e["id"]}" version="1">')
            lines += [f'<nd ref="{n}"/>' for n in e["nodes"]]
            lines += [f'<tag k="{k}" v="{v}"/>' for k, v in e["tags"].items()]
            lines.append("</way>")
    lines.append("</osm>")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def test_graph_from_osm_file_and_roads(tmp_path: Path) -> None:
    p = _osm_xml(tmp_path / "grid.osm")
    G = readers.graph_from_osm_file(p, simplify=False)
    assert G.number_of_nodes() == 9
    # 6 ways x 2 segments, two-way except the oneway way: 5*2*2 + 1*2
    assert G.number_of_edges() == 22
    assert "32648" in str(G.graph["crs"])
    roads = readers.roads_from_graph(G)
    assert len(roads) == 12  # each segment once
    counts = roads["road_class"].value_counts().to_dict()
    assert counts == {"national": 2, "provincial": 2, "local": 8}
    # segments are ~220 m long (0.002 deg)
    assert roads["length_m"].between(200, 240).all()
    assert roads.crs.to_epsg() == 32648


def test_graph_from_osm_file_rejects_pbf_and_missing(tmp_path: Path) -> None:
    pbf = tmp_path / "city.osm.pbf"
    pbf.write_bytes(b"\x00")
    with pytest.raises(DataFileError, match="osmium"):
        readers.graph_from_osm_file(pbf)
    with pytest.raises(DataFileError, match="not found"):
        readers.graph_from_osm_file(tmp_path / "none.osm")


def test_graph_from_place_online_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    import osmnx as ox

    overpass = json.loads((FIXTURES / "overpass_synthetic_grid.json").read_text())
    nominatim = json.loads((FIXTURES / "nominatim_synthetic_ward.json").read_text())
    calls: list[str] = []

    def fake_overpass(data: object) -> dict[str, object]:
        calls.append("overpass")
        return overpass

    def fake_nominatim(params: object, request_type: str = "search") -> list[dict[str, object]]:
        calls.append("nominatim")
        return nominatim

    monkeypatch.setattr(ox.settings, "use_cache", False)
    monkeypatch.setattr(ox._overpass, "_overpass_request", fake_overpass)
    monkeypatch.setattr(ox._nominatim, "_nominatim_request", fake_nominatim)
    G = readers.graph_from_place_online("Synthetic Ward", simplify=False, retain_all=True)
    assert calls == ["nominatim", "overpass"]
    assert G.number_of_nodes() == 9 and G.number_of_edges() == 22
    assert "32648" in str(G.graph["crs"])


def test_graph_from_place_online_errors_are_data_file_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import osmnx as ox

    def fail(*a: object, **k: object) -> object:
        raise ConnectionError("no network in tests")

    monkeypatch.setattr(ox.settings, "use_cache", False)
    monkeypatch.setattr(ox._nominatim, "_nominatim_request", fail)
    with pytest.raises(DataFileError, match="graph_from_osm_file"):
        readers.graph_from_place_online("Nowhere")


# --------------------------------------------------------------------------- load_inputs


def _scenario_dict(data: Mapping[str, Any], base_dir: Path) -> dict[str, Any]:
    text = (resources.files("towerplan") / "scenarios" / "cantho-2020.yaml").read_text("utf-8")
    raw = yaml.safe_load(text)
    raw["data"] = data
    raw["base_dir"] = str(base_dir)
    return raw


def test_load_inputs_files(tmp_path: Path) -> None:
    _communes().to_crs("EPSG:4326").to_file(tmp_path / "communes.geojson")
    _sites_csv(tmp_path, _site_rows())
    pois = gpd.GeoDataFrame(
        {"ten": ["BV1", "BV2"]},
        geometry=[Point(X0 + 10, Y0 + 10), Point(X0 + 900, Y0 + 50)],
        crs=UTM,
    )
    pois.to_crs("EPSG:4326").to_file(tmp_path / "hospitals.geojson")
    _osm_xml(tmp_path / "roads.osm")
    data = {
        "kind": "files",
        "label": "test-files",
        "districts": {
            "path": "communes.geojson",
            "columns": {"name": "district_vn", "code": "dcode", "population": "pop"},
        },
        "population": {"path": "communes.geojson", "columns": {"population": "pop"}},
        "existing_sites": {"path": "sites.csv", "columns": SITE_COLS},
        "pois": [{"path": "hospitals.geojson", "category": "hospital"}],
        "roads": {"path": "roads.osm"},
    }
    scen = scenario_from_dict(_scenario_dict(data, tmp_path))
    inp = readers.load_inputs(scen)
    assert inp.data_kind == "test-files"
    assert list(inp.districts["district"]) == ["Alpha", "Beta"]
    assert isinstance(inp.population, gpd.GeoDataFrame)
    assert inp.population["population"].sum() == 11_200.0
    assert list(inp.existing_sites["site_id"]) == ["BTS-0", "BTS-1", "BTS-2"]
    assert list(inp.pois["category"]) == ["hospital", "hospital"]
    assert inp.road_graph is not None and inp.roads is not None and len(inp.roads) > 0
    for layer in (inp.districts, inp.population, inp.existing_sites, inp.pois, inp.roads):
        assert layer.crs.to_epsg() == 32648
    assert set(inp.sources) == {"districts", "population", "existing_sites", "pois[0]", "roads"}
    assert any("taken as given" in n for n in inp.notes)


def test_load_inputs_sites_outside_study_area(tmp_path: Path) -> None:
    _communes().to_crs("EPSG:4326").to_file(tmp_path / "communes.geojson")
    rows = _site_rows()
    rows[0]["x_lon"], rows[0]["y_lat"] = rows[0]["y_lat"], rows[0]["x_lon"]
    _sites_csv(tmp_path, rows)
    data = {
        "kind": "files",
        "districts": {
            "path": "communes.geojson",
            "columns": {"name": "district_vn", "population": "pop"},
        },
        "existing_sites": {"path": "sites.csv", "columns": SITE_COLS},
    }
    scen = scenario_from_dict(_scenario_dict(data, tmp_path))
    with pytest.raises(StudyAreaError, match="1 of 3 sites fall outside"):
        readers.load_inputs(scen)


def test_load_inputs_opencellid_and_raster(tmp_path: Path) -> None:
    _communes().to_crs("EPSG:4326").drop(columns="pop").to_file(tmp_path / "communes.geojson")
    cells = _cells()
    far = cells.iloc[[0]].assign(lon=105.85, lat=21.03)  # a cell in Hanoi: not clustered
    pd.concat([cells, far]).to_csv(tmp_path / "452.csv.gz", index=False, header=False)
    # 300 pixels of 100 m x 2 people over the 3 km x 1 km southern row of communes
    _write_raster(tmp_path / "pop.tif", np.full((10, 30), 2.0), UTM, None)
    data = {
        "kind": "files",
        "districts": {"path": "communes.geojson", "columns": {"name": "district_vn"}},
        "population": {"path": "pop.tif"},
        "existing_sites": {"path": "452.csv.gz"},
    }
    with pytest.raises(ScenarioError, match=r"'452-99'.*data.unknown_operators: ignore"):
        readers.load_inputs(scenario_from_dict(_scenario_dict(data, tmp_path)))
    data["unknown_operators"] = "ignore"
    scen = scenario_from_dict(_scenario_dict(data, tmp_path))
    inp = readers.load_inputs(scen)
    assert isinstance(inp.population, Path)
    # district totals from the raster: Alpha has 2 km x 1 km of raster, Beta 1 km x 1 km
    assert inp.districts["population"].to_numpy() == pytest.approx([400.0, 200.0], rel=1e-9)
    # the four OpenCelliD structures lie within the districts buffered by 2 km; the
    # unknown network's structure is left out and counted
    assert inp.existing_sites["n_cells"].tolist() == [3, 1, 2]
    assert any("7 OpenCelliD cells clustered into 4" in n for n in inp.notes)
    assert inp.report["unknown_operators"]["unknown_names"] == {"452-99": 1}
    assert inp.report["unknown_operators"]["sites_dropped"] == 1
    assert inp.report["opencellid"]["cells_read"] == 7
    assert len(inp.pois) == 0 and inp.roads is None


def test_load_inputs_opencellid_swapped(tmp_path: Path) -> None:
    _communes().to_crs("EPSG:4326").to_file(tmp_path / "communes.geojson")
    swapped = _cells()
    swapped[["lon", "lat"]] = swapped[["lat", "lon"]].to_numpy()
    swapped.to_csv(tmp_path / "cells.csv", index=False)
    data = {
        "kind": "files",
        "districts": {
            "path": "communes.geojson",
            "columns": {"name": "district_vn", "population": "pop"},
        },
        "existing_sites": {"path": "cells.csv"},
    }
    scen = scenario_from_dict(_scenario_dict(data, tmp_path))
    with pytest.raises(StudyAreaError) as ei:
        readers.load_inputs(scen)
    msg = str(ei.value)
    assert "7 of 7 cells fall outside the study area" in msg and "would put 7 inside" in msg


def test_load_inputs_demo_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("towerplan.inputs.demo")
    seen: list[str] = []

    def load_demo(scenario: object) -> str:
        seen.append(getattr(scenario, "name", ""))
        return "demo-inputs"

    fake.load_demo = load_demo  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "towerplan.inputs.demo", fake)
    text = (resources.files("towerplan") / "scenarios" / "cantho-2020.yaml").read_text("utf-8")
    scen = scenario_from_dict(yaml.safe_load(text))
    assert readers.load_inputs(scen) == "demo-inputs"
    assert seen == ["cantho-2020"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_opencellid_recovers_synthetic_towers(seed: int) -> None:
    """40 towers 600 m apart, ~27 % shared; cells scattered with sigma 30-100 m, 1-6 per
    operator: the tower count within +-5 % and every operator's tenancies exactly, with the
    default clustering distance (data.opencellid.cluster_distance_m = 250 m)."""
    from _ocid_fixture import synthetic_towers, tenancies, true_tenancies

    cells, towers = synthetic_towers(n_towers=40, spacing_m=600.0, seed=seed)
    assert 60 <= len(cells) <= 300 and towers["nets"].map(len).gt(1).sum() >= 5
    sites = readers.cluster_cells_to_sites(cells)
    assert abs(len(sites) - len(towers)) <= 0.05 * len(towers)
    assert tenancies(sites["operators"]) == true_tenancies(towers)
    assert int(sites["n_cells"].sum()) == len(cells)  # a lone cell is a structure


def test_population_polygons_clipped_to_districts_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Polygons larger than the districts: the part outside is dropped (area share), reported,
    warned; nothing is handed to the nearest district."""
    c = _communes()
    c[c["district_vn"] == "Huyện Beta"].to_crs("EPSG:4326").to_file(tmp_path / "beta.geojson")
    big = gpd.GeoDataFrame({"pop": [8000.0]}, geometry=[box(X0, Y0, X0 + 4000, Y0 + 2000)], crs=UTM)
    big.to_file(tmp_path / "pop.gpkg")  # 8 km2, of which Beta (1 km x 2 km) holds a quarter
    data = {
        "kind": "files",
        "districts": {"path": "beta.geojson", "columns": {"name": "district_vn"}},
        "population": {"path": "pop.gpkg", "columns": {"population": "pop"}},
    }
    with caplog.at_level(logging.WARNING):
        inp = readers.load_inputs(scenario_from_dict(_scenario_dict(data, tmp_path)))
    assert isinstance(inp.population, gpd.GeoDataFrame)
    assert inp.population["population"].sum() == pytest.approx(2000.0, rel=1e-9)
    assert inp.districts["population"].sum() == pytest.approx(2000.0, rel=1e-9)
    rep = inp.report["population_outside_districts"]
    assert rep["population"] == pytest.approx(6000.0) and rep["share_of_input"] == 0.75
    assert any("6000 people (75.0 %" in r.getMessage() for r in caplog.records)


def test_districts_same_name_kept_apart_by_province(tmp_path: Path) -> None:
    d = gpd.GeoDataFrame(
        {
            "ten": ["Huyện Châu Thành", "Huyện Châu Thành", "Huyện Châu Thành", "Quận Alpha"],
            "tinh": ["Tiền Giang", "Bến Tre", "Tiền Giang", "Bến Tre"],
        },
        geometry=[_sq(0, 0), _sq(5, 0), _sq(1, 0), _sq(5, 1)],
        crs=UTM,
    )
    d.to_file(tmp_path / "d.gpkg")
    with pytest.raises(DuplicateIDError, match=r"covers 2 separate areas.*province"):
        readers.read_districts(tmp_path / "d.gpkg", columns={"name": "ten"})
    out = readers.read_districts(tmp_path / "d.gpkg", columns={"name": "ten", "province": "tinh"})
    assert out["district"].tolist() == [
        "Châu Thành (Tiền Giang)",
        "Châu Thành (Bến Tre)",
        "Alpha",
    ]
    assert out["area_km2"].tolist() == pytest.approx([2.0, 1.0, 1.0])


def test_shapefile_encoding_from_scenario(tmp_path: Path) -> None:
    d = gpd.GeoDataFrame(
        {"ten": ["Hóc Môn", "Tân Thơ"], "loai": ["huyen", "quan"]},
        geometry=[_sq(0, 0), _sq(1, 0)],
        crs=UTM,
    )
    d.to_file(tmp_path / "d.shp", encoding="cp1258")
    (tmp_path / "d.cpg").unlink(missing_ok=True)
    with pytest.raises(DataFileError, match=r"not UTF-8 .*d\.cpg.*cp1258"):
        readers.read_districts(tmp_path / "d.shp", columns={"name": "ten", "type": "loai"})
    out = readers.read_districts(
        tmp_path / "d.shp", columns={"name": "ten", "type": "loai"}, encoding="cp1258"
    )
    assert out["district"].tolist() == ["Hóc Môn", "Tân Thơ"]  # ơ: cp1258 0xF5, not õ


def test_operator_names_case_diacritics_and_aliases() -> None:
    from towerplan.inputs.operators import match_operators
    from towerplan.scenario import Operator

    ops = (
        Operator("Viettel", 0.5),
        Operator("VNPT-VinaPhone", 0.3, aliases=("VNPT", "Vinaphone")),
        Operator("MobiFone", 0.2),
    )
    sites = gpd.GeoDataFrame(
        {
            "site_id": ["a", "b", "c"],
            "operator": ["viettel", "vinaphone", "MOBIFONE"],
            "operators": ["viettel;VNPT", "vinaphone", "MOBIFONE;Gtel"],
            "n_tenants": [2, 1, 2],
        },
        geometry=[Point(0, 0)] * 3,
        crs=UTM,
    )
    with pytest.raises(ScenarioError, match=r"'Gtel' \(sites c\).*aliases"):
        match_operators(sites, ops, "sites")
    out, rep = match_operators(sites, ops, "sites", policy="ignore")
    assert out["operators"].tolist() == ["Viettel;VNPT-VinaPhone", "VNPT-VinaPhone", "MobiFone"]
    assert out["n_tenants"].tolist() == [2, 1, 1]
    assert rep == {"unknown_names": {"Gtel": 1}, "tenancies_ignored": 1, "sites_dropped": 0}
