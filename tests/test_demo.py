"""Tests of the built-in census demo (towerplan.inputs.demo) and of scripts/build_demo.py."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import io
import math
import re
import sys
from importlib import resources
from pathlib import Path
from types import ModuleType

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree

from towerplan import load_scenario
from towerplan.errors import CRSError
from towerplan.inputs._base import DEMO_KIND, PlanInputs
from towerplan.inputs.demo import (
    CENSUS_YEAR,
    SITE_MIN_SPACING_M,
    _largest_remainder,
    load_demo,
)
from towerplan.scenario import Scenario

REPO = Path(__file__).resolve().parents[1]


def _facts() -> pd.DataFrame:
    text = (resources.files("towerplan") / "data" / "demo" / "districts_facts.csv").read_text(
        encoding="utf-8"
    )
    return pd.read_csv(io.StringIO(text), dtype={"code": str})


def _hamilton(total: int, shares: list[float]) -> list[int]:
    """Independent largest-remainder split (exact arithmetic on the float inputs)."""
    from fractions import Fraction

    fs = [Fraction(s) for s in shares]
    quotas = [total * f / sum(fs) for f in fs]
    base = [math.floor(q) for q in quotas]
    rest = total - sum(base)
    ranked = sorted(range(len(fs)), key=lambda i: (-(quotas[i] - base[i]), i))
    for i in ranked[:rest]:
        base[i] += 1
    return base


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_scenario("cantho-2020")


@pytest.fixture(scope="module")
def demo(scenario: Scenario) -> PlanInputs:
    return load_demo(scenario)


@pytest.fixture(scope="module")
def build_demo() -> ModuleType:
    path = REPO / "scripts" / "build_demo.py"
    spec = importlib.util.spec_from_file_location("build_demo_under_test", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses need the module registered
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------- facts + districts


def test_facts_csv_has_nine_districts_with_sources() -> None:
    f = _facts()
    assert sorted(f["code"]) == ["916", "917", "918", "919", "923", "924", "925", "926", "927"]
    assert (f["district_type"] == "urban").sum() == 5
    assert (f["district_type"] == "rural").sum() == 4
    assert f["district"].str.startswith("Quận").eq(f["district_type"] == "urban").all()
    assert int(f["population_2009"].sum()) == 1_188_455
    assert f["area_km2_real"].sum() == pytest.approx(1414.38)
    assert f["population_source"].str.contains("2009 Population and Housing Census").all()
    assert f["area_source"].str.contains("censusVN2009").all()


def test_district_areas_near_census_areas(demo: PlanInputs) -> None:
    f = _facts().set_index("code")
    d = demo.districts.set_index("code")
    real = f.loc[d.index, "area_km2_real"].to_numpy()
    measured = d.geometry.area.to_numpy() / 1e6
    rel = measured / real - 1.0
    # thinned census polygons vs the census table's areas: Phong Điền -12.6 % (it loses the
    # overlaps with its neighbours of smaller commune id), the others within 9 %
    assert float(np.max(np.abs(rel))) < 0.13, rel
    assert measured.sum() == pytest.approx(1439.38, abs=0.1)
    np.testing.assert_allclose(d["area_km2"].to_numpy(), measured, rtol=1e-12)


def test_districts_layer_contract(demo: PlanInputs, scenario: Scenario) -> None:
    d = demo.districts
    assert len(d) == 9
    assert list(d.columns[:5]) == ["district", "code", "district_type", "population", "area_km2"]
    assert d["district_type"].value_counts().to_dict() == {"urban": 5, "rural": 4}
    assert d["code"].is_unique and d["district"].is_unique
    assert d.crs.to_string() == scenario.crs
    assert d.is_valid.all() and (d.geom_type == "Polygon").all()
    assert demo.data_kind == DEMO_KIND
    assert "census" in DEMO_KIND and "synthetic sites" in DEMO_KIND
    assert demo.road_graph is None
    assert len(demo.notes) == 4
    assert "census" in demo.notes[0] and "GSO" in demo.notes[1]
    assert all("synthetic" in n for n in demo.notes[2:])


def test_population_projected_from_2009(demo: PlanInputs, scenario: Scenario) -> None:
    f = _facts().set_index("code")
    factor = (1 + scenario.population.annual_growth) ** (scenario.year - CENSUS_YEAR)
    expected_total = float(f["population_2009"].sum()) * factor
    pop = demo.population
    assert isinstance(pop, gpd.GeoDataFrame)
    assert float(pop["population"].sum()) == pytest.approx(expected_total, rel=1e-9)
    assert float(demo.districts["population"].sum()) == pytest.approx(expected_total, rel=1e-9)
    # communes keep the census package's shares, scaled to each district's GSO total
    for code, grp in pop.groupby("code"):
        district_pop = float(f.loc[code, "population_2009"]) * factor
        assert float(grp["population"].sum()) == pytest.approx(district_pop, abs=1.0)
    ninh_kieu = pop[pop["code"] == "916"]
    assert len(ninh_kieu) == 13
    assert float(ninh_kieu["population"].sum()) / factor == pytest.approx(242_945, abs=1.0)
    assert expected_total > 1_188_455  # growth is positive in the scenario


def test_communes_partition_the_districts(demo: PlanInputs) -> None:
    pop = demo.population
    assert isinstance(pop, gpd.GeoDataFrame)
    assert len(pop) == 85 and pop["commune_id"].is_unique
    assert pop.is_valid.all()
    geoms = np.asarray(pop.geometry)
    # overlaps of the thinned census polygons removed: residual < 0.01 % of the area
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    pair = left < right
    overlap = shapely.area(shapely.intersection(geoms[left[pair]], geoms[right[pair]])).sum()
    total = shapely.area(geoms).sum()
    assert overlap < 1e-4 * total
    union = shapely.union_all(geoms)
    holes = sum(shapely.Polygon(r).area for p in shapely.get_parts(union) for r in p.interiors)
    assert holes < 1e-4 * total  # 4.8 km2 of slivers filled, a hundredth of a km2 left
    d = demo.districts.set_index("code")
    for code, grp in pop.groupby("code"):
        u = shapely.union_all(np.asarray(grp.geometry))
        diff = u.symmetric_difference(d.loc[code, "geometry"]).area
        assert diff < 1e-4 * u.area, f"district {code}: communes differ by {diff:.1f} m²"
        assert set(grp["district"]) == {d.loc[code, "district"]}


def test_other_metric_crs_and_geographic_crs_rejected(scenario: Scenario) -> None:
    vn2000 = load_demo(dataclasses.replace(scenario, crs="EPSG:3405"))
    assert vn2000.districts.crs.to_epsg() == 3405
    assert vn2000.existing_sites.crs.to_epsg() == 3405
    assert float(vn2000.districts["area_km2"].sum()) == pytest.approx(1439.4, rel=0.01)
    with pytest.raises(CRSError, match="geographic"):
        load_demo(dataclasses.replace(scenario, crs="EPSG:4326"))


# --------------------------------------------------------------------------- sites


def test_exact_site_count_and_columns(demo: PlanInputs, scenario: Scenario) -> None:
    s = demo.existing_sites
    assert len(s) == scenario.sites.existing == 1114
    for col in ("site_id", "operator", "operators", "n_tenants", "max_tenants", "height_m"):
        assert col in s.columns
    assert s["site_id"].is_unique
    assert all(re.fullmatch(r"EX-\d{4}", v) for v in s["site_id"])
    assert s["site_id"].iloc[0] == "EX-0001" and s["site_id"].iloc[-1] == "EX-1114"
    assert (s["max_tenants"] == scenario.sites.max_tenants).all()
    assert (s["n_tenants"] <= s["max_tenants"]).all()
    assert (s.geom_type == "Point").all()
    types = demo.districts.set_index("district")["district_type"]
    expected_h = s["district"].map(types).map({"urban": 30.0, "rural": 45.0})
    np.testing.assert_array_equal(s["height_m"].to_numpy(), expected_h.to_numpy())


def test_owner_counts_follow_market_shares(demo: PlanInputs, scenario: Scenario) -> None:
    s = demo.existing_sites
    expected = _hamilton(len(s), [o.market_share for o in scenario.operators])
    got = s["operator"].value_counts()
    assert [int(got.get(o.name, 0)) for o in scenario.operators] == expected
    assert expected == [557, 245, 256, 56]


def test_shared_structures(demo: PlanInputs, scenario: Scenario) -> None:
    s = demo.existing_sites
    n_shared = math.floor(scenario.sharing.existing_shared_fraction * len(s) + 0.5)
    assert int((s["n_tenants"] == 2).sum()) == n_shared == 223
    assert set(s["n_tenants"]) == {1, 2}
    parts = s["operators"].str.split(";")
    assert (parts.str.len() == s["n_tenants"]).all()
    assert (parts.str[0] == s["operator"]).all()  # host first
    shared = parts[s["n_tenants"] == 2]
    assert (shared.str[0] != shared.str[1]).all()
    assert set(shared.str[1]) <= set(scenario.operator_names)


def test_sites_follow_population(demo: PlanInputs, scenario: Scenario) -> None:
    s = demo.existing_sites
    d = demo.districts
    pop = d["population"] / d["population"].sum()
    area = d["area_km2"] / d["area_km2"].sum()
    expected = _hamilton(len(s), list(0.6 * pop + 0.4 * area))
    got = s["district"].value_counts()
    assert [int(got[n]) for n in d["district"]] == expected
    density = got / d.set_index("district")["area_km2"]
    assert density.idxmax() == "Quận Ninh Kiều"  # the densest district


def test_sites_inside_their_district_and_spaced(demo: PlanInputs) -> None:
    s = demo.existing_sites
    d = demo.districts.set_index("district")
    union = shapely.union_all(np.asarray(d.geometry))
    assert bool(np.all(shapely.covers(union, np.asarray(s.geometry))))
    inside_own = shapely.covers(
        np.asarray(d.loc[s["district"], "geometry"]), np.asarray(s.geometry)
    )
    assert bool(np.all(inside_own))
    xy = np.column_stack([s.geometry.x, s.geometry.y])
    nearest, _ = cKDTree(xy).query(xy, k=2)
    min_spacing = float(nearest[:, 1].min())
    assert min_spacing >= SITE_MIN_SPACING_M, f"closest pair {min_spacing:.1f} m"


def test_seed_reproducible(scenario: Scenario, demo: PlanInputs) -> None:
    again = load_demo(scenario)
    pd.testing.assert_frame_equal(
        pd.DataFrame(again.existing_sites), pd.DataFrame(demo.existing_sites)
    )
    other = load_demo(scenario, seed=7)
    assert len(other.existing_sites) == len(demo.existing_sites)
    moved = ~np.asarray(other.existing_sites.geometry.geom_equals(demo.existing_sites.geometry))
    assert moved.mean() > 0.9


def test_scenario_drives_counts(scenario: Scenario) -> None:
    small = dataclasses.replace(
        scenario,
        year=2030,
        sites=dataclasses.replace(scenario.sites, existing=37, max_tenants=1),
    )
    out = load_demo(small, seed=1)
    assert len(out.existing_sites) == 37
    assert (out.existing_sites["n_tenants"] == 1).all()  # max_tenants 1: no sharing
    factor = (1 + scenario.population.annual_growth) ** (2030 - CENSUS_YEAR)
    assert float(out.districts["population"].sum()) == pytest.approx(1_188_455 * factor)
    none = load_demo(
        dataclasses.replace(scenario, sites=dataclasses.replace(scenario.sites, existing=0))
    )
    assert len(none.existing_sites) == 0 and "site_id" in none.existing_sites.columns


@settings(max_examples=60, deadline=None)
@given(
    total=st.integers(0, 5000),
    weights=st.lists(st.floats(0.0, 10.0, allow_nan=False), min_size=1, max_size=8).filter(
        lambda w: sum(w) > 1e-6
    ),
)
def test_largest_remainder_property(total: int, weights: list[float]) -> None:
    got = _largest_remainder(total, weights)
    assert int(got.sum()) == total
    quota = total * np.asarray(weights) / sum(weights)
    assert np.all(got >= np.floor(quota) - 1e-9) and np.all(got <= np.ceil(quota) + 1e-9)


# --------------------------------------------------------------------------- pois + roads


def test_pois_and_roads(demo: PlanInputs, scenario: Scenario) -> None:
    p = demo.pois
    assert p["category"].value_counts().to_dict() == {"admin_centre": 9, "city_centre": 1}
    assert (p["source"] == "vietnamadminunits").all()
    assert set(p.loc[p["category"] == "admin_centre", "name"]) == set(demo.districts["district"])
    city = p.loc[p["category"] == "city_centre"]
    # the geocoder's province point lies in Bình Thủy, 1 km west of Ninh Kiều
    assert city["district"].iloc[0] == "Quận Bình Thủy"
    binh_thuy = demo.districts.set_index("code").loc["918", "geometry"]
    assert binh_thuy.contains(city.geometry.iloc[0])
    r = demo.roads
    assert r is not None and len(r) > 150
    assert set(r["road_class"]) == {"provincial", "local"}
    assert r.crs.to_string() == scenario.crs
    assert (r.geom_type == "LineString").all()
    study = shapely.union_all(np.asarray(demo.districts.geometry))
    outside = shapely.length(shapely.difference(np.asarray(r.geometry), study))
    assert float(np.max(outside / r.length.to_numpy())) <= 0.05 + 1e-9


# --------------------------------------------------------------------------- build script


def test_committed_files_consistent_with_facts() -> None:
    folder = resources.files("towerplan") / "data" / "demo"
    with resources.as_file(folder / "districts.geojson") as path:
        d = gpd.read_file(path)
    with resources.as_file(folder / "communes.geojson") as path:
        c = gpd.read_file(path)
    f = _facts().set_index("code")
    d = d.set_index("code")
    np.testing.assert_array_equal(d["population_2009"], f.loc[d.index, "population_2009"])
    np.testing.assert_array_equal(d["area_km2_real"], f.loc[d.index, "area_km2_real"])
    pkg = c.groupby("code")["population_census_pkg"].sum()
    np.testing.assert_array_equal(d["population_census_pkg"], pkg.loc[d.index])
    assert int(pkg.sum()) == 1_109_814  # the census package's Cần Thơ total
    calibrated = c.groupby("code")["population_2009"].sum()
    np.testing.assert_allclose(calibrated.loc[d.index], d["population_2009"], atol=1.0)
    measured = d.to_crs("EPSG:32648").area / 1e6
    np.testing.assert_allclose(d["area_km2"], measured, atol=6e-4)
    for name in ("districts", "communes", "admin_centres", "roads"):
        text = (folder / f"{name}.geojson").read_text(encoding="utf-8")
        coords = re.findall(r"-?\d+\.\d+", text.split('"features"', 1)[1])
        assert max(len(v.split(".")[1]) for v in coords) <= 5  # rounded to 1e-5 deg
        assert len(text.encode()) < 100_000


def test_build_helpers(build_demo: ModuleType) -> None:
    assert build_demo.utm_crs(105.7, 10.0) == "EPSG:32648"
    assert build_demo.utm_crs(-70.0, -33.0) == "EPSG:32719"
    assert build_demo.district_type_of("Quận") == "urban"
    assert build_demo.district_type_of("Huyện") == "rural"
    with pytest.raises(ValueError, match="no rows"):
        build_demo.read_units("00")
    communes = pd.DataFrame({"code": ["a", "a", "b", "b"], "population": [1.0, 3.0, 0.0, 0.0]})
    facts = pd.DataFrame({"code": ["a", "b"], "population_2009": [8, 10]})
    np.testing.assert_allclose(build_demo.calibrate(communes, facts), [2.0, 6.0, 5.0, 5.0])


# --------------------------------------------------------------------------- real data


@pytest.mark.realdata
def test_build_script_reproduces_committed_files(build_demo: ModuleType, shared_data: Path) -> None:
    layers = build_demo.build(
        province_code="92",
        census=shared_data / "censusvn2009" / "cantho_communes_2009census.geojson",
    )
    folder = resources.files("towerplan") / "data" / "demo"
    for name in ("districts", "communes", "admin_centres", "roads"):
        text = build_demo.geojson_text(getattr(layers, name), name)
        assert text == (folder / f"{name}.geojson").read_text(encoding="utf-8"), name
    assert layers.diagnostics["partition"]["overlap_removed_km2"] == pytest.approx(4.12, abs=0.01)


@pytest.mark.realdata
def test_facts_match_shared_tables(shared_data: Path) -> None:
    path = shared_data / "population_tables" / "cantho_district_population_2009.csv"
    with path.open(encoding="utf-8") as fh:
        rows = {r["gso_district_code"]: r for r in csv.DictReader(fh)}
    for r in _facts().itertuples():
        src = rows[r.code]
        assert int(src["pop2009_genstar_total"]) == r.population_2009
        assert float(src["area_km2_censusvn2009"]) == pytest.approx(r.area_km2_real)
        assert src["type_2015_plan"] == ("quận" if r.district_type == "urban" else "huyện")
