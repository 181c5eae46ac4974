"""Integration tests of towerplan.inputs.readers / towerplan.demand on the real Cần Thơ data in ../shared/data.

Facts used (from the folders' SOURCE.md files): the censusVN2009 communes are 85 units in 9
districts summing to 1,109,814 people (2009 census, with a known deficit in Ninh Kiều and
Bình Thủy); the 2008-era thesis layers hold 29 hospitals, 68 schools, 62 government agencies
and 1,896 road segments (60 "quoc lo", 320 "tinh lo", 1,516 blank).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import geopandas as gpd
import pytest
import yaml

from towerplan import demand
from towerplan.inputs import readers
from towerplan.scenario import scenario_from_dict

pytestmark = pytest.mark.realdata

COMMUNES = "censusvn2009/cantho_communes_2009census.geojson"
THESIS = "cantho_webgis_thesis_2011"
DISTRICTS_2009 = {
    "Ninh Kiều": "urban",
    "Ô Môn": "urban",
    "Bình Thủy": "urban",
    "Cái Răng": "urban",
    "Thốt Nốt": "urban",
    "Vĩnh Thạnh": "rural",
    "Cờ Đỏ": "rural",
    "Thới Lai": "rural",
    "Phong Điền": "rural",
}
CENSUS_COMMUNE_TOTAL = 1_109_814  # censusvn2009/SOURCE.md


@pytest.fixture(scope="module")
def districts(shared_data: Path) -> gpd.GeoDataFrame:
    return readers.read_districts(
        shared_data / COMMUNES,
        columns={"name": "district_vn", "code": "district_id", "population": "population"},
    )


@pytest.fixture(scope="module")
def communes(shared_data: Path) -> gpd.GeoDataFrame:
    return readers.read_population_polygons(
        shared_data / COMMUNES, column="population", keep_columns=["district_vn", "commune_vn"]
    )


def test_dissolve_communes_to_nine_districts(
    shared_data: Path, districts: gpd.GeoDataFrame, communes: gpd.GeoDataFrame
) -> None:
    assert len(communes) == 85
    assert len(districts) == 9
    assert (
        dict(zip(districts["district"], districts["district_type"], strict=True)) == DISTRICTS_2009
    )
    assert districts["population"].sum() == CENSUS_COMMUNE_TOTAL
    assert districts["n_units"].sum() == 85
    assert districts.set_index("district").loc["Ninh Kiều", "n_units"] == 13
    # geometric area vs the file's own 'area' (ha) column: the polygons are a thinned
    # low-resolution version, so only the city total agrees (~1.6 %; per district up to 13 %)
    file_area_km2 = gpd.read_file(shared_data / COMMUNES)["area"].sum() / 100.0
    assert districts["area_km2"].sum() == pytest.approx(file_area_km2, rel=0.025)
    assert districts.crs.to_epsg() == 32648


def test_commune_grid_conserves_population(
    districts: gpd.GeoDataFrame, communes: gpd.GeoDataFrame
) -> None:
    grid = demand.grid_from_polygons(communes, cell_size=100.0)
    err = demand.conservation_error(grid, CENSUS_COMMUNE_TOTAL)
    assert err < 1e-3
    assert grid.meta["conservation_error"] == pytest.approx(err, abs=1e-12)
    pts = grid.points(districts)
    assert pts["population"].sum() == pytest.approx(CENSUS_COMMUNE_TOTAL, rel=1e-9)
    # populated 100 m cells cover the ~1,414 km² city
    assert len(pts) * grid.cell_area_km2 == pytest.approx(districts["area_km2"].sum(), rel=0.03)
    # district totals from the grid are within 1 % of the census (cells on borders move)
    by = pts.groupby("district")["population"].sum()
    for name, pop in zip(districts["district"], districts["population"], strict=True):
        assert by[name] == pytest.approx(pop, rel=0.01), name
    # Ninh Kiều is the densest district
    dens = pts.groupby("district")["population"].sum() / districts.set_index("district")["area_km2"]
    assert dens.idxmax() == "Ninh Kiều"


@pytest.mark.parametrize(
    ("fname", "category", "n"),
    [
        ("benhvien_hospitals.geojson", "hospital", 29),
        ("truong_schools.geojson", "school", 68),
        ("coquan_government_agencies.geojson", "admin_centre", 62),
        ("khachsan_hotels.geojson", "tourism", 34),
    ],
)
def test_thesis_pois(
    shared_data: Path, districts: gpd.GeoDataFrame, fname: str, category: str, n: int
) -> None:
    pois = readers.read_pois(shared_data / THESIS / fname, category=category)
    assert len(pois) == n
    assert set(pois["category"]) == {category}
    assert (pois["name"] != "").mean() > 0.9  # 'ten' column used for names
    assert not pois["from_polygon"].any()
    # all POIs lie in (or within 2 km of) the city's communes -> CRS handled correctly
    city = districts.geometry.buffer(2000).union_all()
    assert pois.within(city).all()


def test_thesis_roads(shared_data: Path) -> None:
    roads = readers.read_roads(shared_data / THESIS / "giaothong_roads.geojson")
    assert len(roads) == 1896
    assert roads["road_class"].value_counts().to_dict() == {
        "local": 1516,
        "provincial": 320,
        "national": 60,
    }
    assert set(roads.geom_type) == {"LineString"}
    assert roads.crs.to_epsg() == 32648
    # national highways (QL1, QL91, ...) run tens of km through the city
    assert roads.length[roads["road_class"] == "national"].sum() > 10_000


def test_thesis_2008_districts_ascii_prefixes(shared_data: Path) -> None:
    path = shared_data / THESIS / "quanhuyen_districts_2008.geojson"
    d = readers.read_districts(path, columns={"name": "Ten", "population": "Dan_so"})
    raw = gpd.read_file(path)
    assert len(d) == 8
    assert d["population"].sum() == raw["Dan_so"].sum()
    assert d.set_index("district").loc["Thot Not", "district_type"] == "rural"  # huyện in 2008
    assert (d["district_type"] == "urban").sum() == 4


def test_graph_from_osm_file_west_oakland(shared_data: Path) -> None:
    G = readers.graph_from_osm_file(shared_data / "osm_xml_test_osmnx/West-Oakland.osm.bz2")
    # osmnx 2.1.1 graph_from_xml defaults (simplify=True, retain_all=False): 47 / 106 (SOURCE.md)
    assert (G.number_of_nodes(), G.number_of_edges()) == (47, 106)
    assert "32648" in str(G.graph["crs"])
    roads = readers.roads_from_graph(G)
    assert len(roads) > 0 and roads["length_m"].gt(0).all()
    assert set(roads["road_class"]) <= {"national", "provincial", "local", "unknown"}


def test_graph_from_osm_file_cantho_bus_route(shared_data: Path) -> None:
    path = shared_data / "osm_cantho_busstops_busmap/cantho_bus_route_17924282.osm"
    # the route's member ways carry no highway tag: keep every node and way
    G = readers.graph_from_osm_file(path, simplify=False, retain_all=True)
    assert (G.number_of_nodes(), G.number_of_edges()) == (710, 1154)  # SOURCE.md
    roads = readers.roads_from_graph(G)
    assert set(roads["road_class"]) == {"unknown"}
    assert len(roads) == 1154 // 2  # untagged ways are two-way: each segment kept once
    # osmnx's spherical great-circle lengths agree with the projected (ellipsoidal, UTM)
    # geometry lengths to within the sphere/ellipsoid difference (< 0.5 % at 10 deg N)
    assert roads["length_m"].sum() == pytest.approx(roads.length.sum(), rel=5e-3)


def test_load_inputs_real_files(shared_data: Path) -> None:
    text = (resources.files("towerplan") / "scenarios" / "cantho-2020.yaml").read_text("utf-8")
    raw = yaml.safe_load(text)
    raw["base_dir"] = str(shared_data)
    raw["data"] = {
        "kind": "files",
        "label": "cantho-census2009-thesis2008",
        "districts": {
            "path": COMMUNES,
            "columns": {"name": "district_vn", "code": "district_id", "population": "population"},
        },
        "population": {"path": COMMUNES, "columns": {"population": "population"}},
        "pois": [
            {"path": f"{THESIS}/benhvien_hospitals.geojson", "category": "hospital"},
            {"path": f"{THESIS}/truong_schools.geojson", "category": "school"},
            {"path": f"{THESIS}/coquan_government_agencies.geojson", "category": "admin_centre"},
        ],
        "roads": {"path": f"{THESIS}/giaothong_roads.geojson"},
    }
    inp = readers.load_inputs(scenario_from_dict(raw))
    assert inp.data_kind == "cantho-census2009-thesis2008"
    assert len(inp.districts) == 9 and inp.districts["population"].sum() == CENSUS_COMMUNE_TOTAL
    assert inp.pois["category"].value_counts().to_dict() == {
        "school": 68,
        "admin_centre": 62,
        "hospital": 29,
    }
    assert inp.roads is not None and len(inp.roads) == 1896 and inp.road_graph is None
    assert len(inp.existing_sites) == 0
