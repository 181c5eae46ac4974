"""Tests of towerplan.infrastructure.wifi: POI categories and hotspots placed by set covering."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from conftest import CRS, X0, Y0, make_districts
from shapely.geometry import Point, Polygon, box

from towerplan.errors import ColumnError, CRSError, ParameterError
from towerplan.infrastructure import wifi


def _p(x: float, y: float) -> Point:
    return Point(X0 + x, Y0 + y)


def _districts() -> gpd.GeoDataFrame:
    return make_districts(
        [(0, 0, 1000, 1000), (1000, 0, 3000, 1000)], ["D1", "D2"], ["urban", "rural"]
    )


def _pois() -> gpd.GeoDataFrame:
    rows = [
        ("H1", "hospital", 100, 100),
        ("S1", "school", 150, 100),  # 50 m from H1: one access point serves both
        ("T1", "tourism", 800, 800),
        ("A1", "admin_centre", 2000, 500),
        ("M1", "market", 2500, 500),  # not a plan category
        ("O1", "hospital", 5000, 5000),  # outside the study area
    ]
    return gpd.GeoDataFrame(
        {"name": [r[0] for r in rows], "category": [r[1] for r in rows], "source": "test"},
        geometry=[_p(r[2], r[3]) for r in rows],
        crs=CRS,
    )


CENTRE = box(X0 + 400, Y0 + 400, X0 + 600, Y0 + 600)  # grid (100 m): 4 points, 2 APs needed


def test_hotspots_hand_computed() -> None:
    with pytest.warns(UserWarning, match="1 of 6 POIs lie outside the study area"):
        plan = wifi.place_hotspots(_pois(), _districts(), radius_m=100, city_centre=CENTRE)
    h = plan.hotspots
    assert plan.n_outside == 1 and plan.n_other_category == 1
    assert plan.n_centre_points == 4
    assert len(h) == 5  # {H1,S1} + T1 + A1 + 2 in the centre
    cats = sorted(h["category"])
    assert cats.count("city_centre") == 2
    assert {"tourism", "admin_centre"} <= set(cats)
    hs = h[h["category"].isin(["hospital", "school"])]
    assert len(hs) == 1 and hs["covers_n"].iat[0] == 2 and hs["covers_pois"].iat[0] == 2
    assert h.set_index("category").loc["admin_centre", "district"] == "D2"
    assert (h.loc[h["source"] == "city_centre_grid", "name"] == "city centre").all()
    assert list(h["hotspot_id"]) == [f"WIFI-{k:04d}" for k in range(1, 6)]
    assert plan.pois["covered"].all() and len(plan.pois) == 4
    # every demand point within 100 m of a hotspot
    hxy = np.column_stack([h.geometry.x, h.geometry.y])
    for pt in plan.pois.geometry:
        assert np.hypot(hxy[:, 0] - pt.x, hxy[:, 1] - pt.y).min() <= 100 + 1e-9
    s = wifi.summary_keys(plan)
    assert s["wifi_hotspots"] == 5
    assert s["wifi_pois_outside_study_area"] == 1
    assert s["wifi_hotspots_by_category"]["city_centre"] == 2
    d = wifi.district_columns(plan, _districts())
    assert d.loc["D1", "wifi_hotspots"] == 4 and d.loc["D2", "wifi_hotspots"] == 1
    assert d.loc["D2", "wifi_pois"] == 1


def test_categories_setting_and_radius() -> None:
    with pytest.warns(UserWarning, match="outside"):
        plan = wifi.place_hotspots(
            _pois(), _districts(), radius_m=100, categories=["hospital", "market"]
        )
    # H1 and M1 only (O1 outside); no city centre requested
    assert sorted(plan.hotspots["category"]) == ["hospital", "market"]
    assert plan.n_centre_points == 0
    with pytest.warns(UserWarning, match="outside"):
        small = wifi.place_hotspots(
            _pois(), _districts(), radius_m=40, categories=["hospital", "school"]
        )
    assert len(small.hotspots) == 2  # 50 m apart > 40 m


def test_city_centre_defaults() -> None:
    pois = _pois().iloc[:5]
    with pytest.warns(UserWarning, match="no city-centre polygon given"):
        plan = wifi.place_hotspots(pois, _districts(), radius_m=100, city_centre_radius_m=60)
    # densest cluster: H1 (S1 within 60 m) -> a 60 m disc around H1
    c = plan.city_centre.centroid
    assert (c.x, c.y) == pytest.approx((X0 + 100, Y0 + 100), abs=1e-6)
    assert plan.city_centre.area == pytest.approx(np.pi * 60**2, rel=0.01)
    # a POI of category city_centre becomes a disc of city_centre_radius_m
    centre_poi = gpd.GeoDataFrame(
        {"name": ["Bến Ninh Kiều"], "category": ["city_centre"], "source": "test"},
        geometry=[_p(500, 500)],
        crs=CRS,
    )
    plan2 = wifi.place_hotspots(
        pd.concat([pois, centre_poi], ignore_index=True),
        _districts(),
        radius_m=100,
        city_centre_radius_m=150,
    )
    assert plan2.city_centre.centroid.distance(_p(500, 500)) < 1e-6
    assert plan2.n_centre_points == 9  # grid x, y in {400, 500, 600}: corners 141 m < 150 m


def test_classify_osm_pois() -> None:
    feats = gpd.GeoDataFrame(
        {
            "amenity": ["hospital", "clinic", "university", "townhall", None, "pharmacy", None],
            "office": [None, None, None, None, "government", None, None],
            "tourism": [None, None, None, None, None, None, "hotel"],
            "name": ["BV", "PK", "ĐH Cần Thơ", "UBND", "Sở TT", "Nhà thuốc", None],
        },
        geometry=[
            _p(0, 0),
            _p(10, 0),
            Polygon([(X0, Y0), (X0 + 100, Y0), (X0 + 100, Y0 + 100)]),
            _p(30, 0),
            _p(40, 0),
            _p(50, 0),
            _p(60, 0),
        ],
        crs=CRS,
    )
    out = wifi.classify_osm_pois(feats)
    assert list(out["category"]) == [
        "hospital",
        "hospital",
        "school",
        "admin_centre",
        "admin_centre",
        "tourism",
    ]
    assert list(out.index) == [0, 1, 2, 3, 4, 6]  # the pharmacy is dropped
    assert out.loc[2, "from_polygon"] and out.loc[2, "geometry"].geom_type == "Point"
    assert out.loc[6, "name"] == ""


def test_bad_input() -> None:
    with pytest.raises(CRSError, match="no CRS"):
        wifi.place_hotspots(_pois().set_crs(None, allow_override=True), _districts())
    with pytest.raises(CRSError, match="geographic"):
        wifi.place_hotspots(_pois().to_crs(4326), _districts())
    with pytest.raises(CRSError, match="different CRSs"):
        wifi.place_hotspots(_pois().to_crs(3405), _districts())
    with pytest.raises(ParameterError, match="radius"):
        wifi.place_hotspots(_pois(), _districts(), radius_m=0)
    with pytest.raises(ColumnError, match="category"):
        wifi.place_hotspots(_pois().drop(columns="category"), _districts())
    with pytest.raises(ParameterError, match="grid_spacing_m"):
        wifi.place_hotspots(_pois(), _districts(), city_centre=CENTRE, grid_spacing_m=-5)
