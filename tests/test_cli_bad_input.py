"""Bad input through the CLI: one clear line on stderr, exit 2, nothing written anywhere.

Each case breaks one thing in a small generated city ("Testville", tests/_city_fixture.py)
and runs ``towerplan plan ... --overwrite`` in-process over an earlier complete output
folder.  For every case: exit status 2, exactly one stderr line naming the input and the
fix, and the whole folder tree (inputs, the earlier OUT) byte-identical afterwards, with
no staging folder left.  Every case fails while reading the inputs, before heavy work.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import yaml
from _city_fixture import CRS, X0, Y0, make_city, write_scenario
from shapely.geometry import LineString, Point, Polygon, box

from towerplan.cli import main
from towerplan.inputs.readers import OPENCELLID_COLUMNS


@dataclass
class Case:
    """What a breaker may change: files in ``folder``, the scenario, the command line."""

    folder: Path
    scen: dict[str, Any]
    argv: list[str]
    out: Path
    chdir: Path | None = None
    raw_scenario: bytes | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The generated city's files and scenario, made once and copied into each case."""
    folder = tmp_path_factory.mktemp("template") / "city"
    return folder, make_city(folder)


@pytest.fixture(scope="module")
def complete_out(tmp_path_factory: pytest.TempPathFactory, city: tuple[Path, Any]) -> Path:
    """A complete output folder of one real run (maps and raster skipped)."""
    base = tmp_path_factory.mktemp("complete")
    shutil.copytree(city[0], base / "city")
    path = write_scenario(base / "city", copy.deepcopy(city[1]))
    out = base / "out"
    code = main(
        ["-q", "plan", "--scenario", str(path), "--out", str(out), "--no-maps", "--no-raster"]
    )
    assert code == 0
    assert (out / "summary.json").is_file() and (out / ".towerplan-output").is_file()
    return out


# --------------------------------------------------------------------------- fixture files


def _lonlat(x: float, y: float) -> tuple[float, float]:
    p = gpd.GeoSeries([Point(x, y)], crs=CRS).to_crs("EPSG:4326").iloc[0]
    return p.x, p.y


def _districts(c: Case) -> gpd.GeoDataFrame:
    return gpd.read_file(c.folder / "districts.gpkg")


def _write_districts(c: Case, d: gpd.GeoDataFrame, name: str = "districts.gpkg") -> None:
    d.to_file(c.folder / name, driver="GPKG")
    c.scen["data"]["districts"]["path"] = name


def _population(c: Case) -> gpd.GeoDataFrame:
    return gpd.read_file(c.folder / "population.gpkg")


def _sites(c: Case) -> pd.DataFrame:
    return pd.read_csv(c.folder / "sites.csv")


def _pois(c: Case, swap: bool = False, far: bool = False) -> None:
    pts = [Point(X0 + 500, Y0 + 500), Point(X0 + 1500, Y0 + 2500)]
    g = gpd.GeoDataFrame({"name": ["Chợ", "Bệnh viện"]}, geometry=pts, crs=CRS).to_crs(4326)
    if swap:
        g = g.set_geometry(gpd.points_from_xy(g.geometry.y, g.geometry.x), crs=4326)
    if far:
        g = g.set_geometry(g.geometry.translate(3.0, 0.0))
    g.to_file(c.folder / "pois.geojson", driver="GeoJSON")
    c.scen["data"]["pois"] = [{"path": "pois.geojson", "category": "hospital"}]


def _candidates(c: Case, geoms: list[Any], cols: dict[str, Any] | None = None) -> None:
    g = gpd.GeoDataFrame(cols or {"cost": [1.0] * len(geoms)}, geometry=geoms, crs=CRS)
    g.to_crs(4326).to_file(c.folder / "cands.gpkg", driver="GPKG")
    c.scen["data"]["candidates"] = {"path": "cands.gpkg"}


def _cells(c: Case, rows: list[list[Any]], header: bool = True) -> None:
    cols = list(OPENCELLID_COLUMNS)
    pd.DataFrame(rows, columns=cols).to_csv(c.folder / "cells.csv", index=False, header=header)
    c.scen["data"]["existing_sites"] = {"path": "cells.csv", "format": "opencellid"}


def _cell_row(x: float, y: float, net: int) -> list[Any]:
    lon, lat = _lonlat(x, y)
    return ["LTE", 452, net, 1, 7, 0, lon, lat, 500, 3, 1, 0, 0, 0]


# --------------------------------------------------------------------------- breakers


def _scenario_key(path: str, value: Any) -> Callable[[Case], None]:
    def breaker(c: Case) -> None:
        node = c.scen
        keys = path.split(".")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value

    return breaker


def _argv(*replace: tuple[str, str | None]) -> Callable[[Case], None]:
    def breaker(c: Case) -> None:
        for flag, value in replace:
            if flag in c.argv:
                i = c.argv.index(flag)
                del c.argv[i : i + (2 if flag.startswith("--") and flag != "--overwrite" else 1)]
            if value is not None:
                c.argv += [flag, value] if value != "" else [flag]

    return breaker


def _b_non_utf8_yaml(c: Case) -> None:
    text = yaml.safe_dump(c.scen, allow_unicode=True).replace("Testville", "Hóc Môn")
    c.raw_scenario = text.encode("cp1258")


def _b_bad_yaml(c: Case) -> None:
    c.raw_scenario = b"name: [unclosed\nsites: {\n"


def _b_yaml_list(c: Case) -> None:
    c.raw_scenario = b"- just\n- a list\n"


def _b_unknown_scenario(c: Case) -> None:
    c.argv[c.argv.index("--scenario") + 1] = "atlantis-2020"


def _b_missing_scenario(c: Case) -> None:
    c.argv[c.argv.index("--scenario") + 1] = str(c.folder / "nowhere.yaml")


def _b_missing_required(c: Case) -> None:
    del c.scen["sites"]


def _b_same_operator_twice(c: Case) -> None:
    c.scen["operators"][1]["name"] = "ALPHA"


def _b_alias_collides(c: Case) -> None:
    c.scen["operators"][1]["aliases"] = ["alpha"]


def _b_shares_sum(c: Case) -> None:
    c.scen["operators"][0]["market_share"] = 0.9


def _b_out_is_file(c: Case) -> None:
    shutil.rmtree(c.out)
    c.out.write_text("a file", encoding="utf-8")


def _b_out_parent_is_file(c: Case) -> None:
    (c.folder / "f").write_text("a file", encoding="utf-8")
    c.argv[c.argv.index("--out") + 1] = str(c.folder / "f" / "out")


def _b_out_is_scenario_folder(c: Case) -> None:
    (c.folder / ".towerplan-output").write_text("{}", encoding="utf-8")  # even with a marker
    c.argv[c.argv.index("--out") + 1] = str(c.folder)


def _b_out_is_ancestor(c: Case) -> None:
    c.argv[c.argv.index("--out") + 1] = str(c.folder.parent)


def _b_out_is_cwd(c: Case) -> None:
    c.chdir = c.folder
    c.argv[c.argv.index("--out") + 1] = "."


def _b_out_not_empty(c: Case) -> None:
    c.argv.remove("--overwrite")


def _b_out_foreign(c: Case) -> None:
    (c.out / ".towerplan-output").unlink()


def _b_missing_file(c: Case) -> None:
    c.scen["data"]["districts"]["path"] = "no_such_districts.gpkg"


def _b_missing_crs(c: Case) -> None:
    d = _districts(c).to_crs(CRS).set_crs(None, allow_override=True)
    d.to_file(c.folder / "nocrs.shp")
    (c.folder / "nocrs.prj").unlink(missing_ok=True)
    c.scen["data"]["districts"]["path"] = "nocrs.shp"


def _b_metres_labelled_degrees(c: Case) -> None:
    d = _districts(c).to_crs(CRS).set_crs("EPSG:4326", allow_override=True)
    _write_districts(c, d, "metres.gpkg")


def _b_invalid_geometry(c: Case) -> None:
    d = _districts(c)
    x0, y0, x1, y1 = d.geometry.iloc[0].bounds
    d.loc[d.index[0], "geometry"] = Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1), (x0, y0)])
    _write_districts(c, d)


def _b_empty_layer(c: Case) -> None:
    _write_districts(c, _districts(c).iloc[0:0])


def _b_unknown_district_type(c: Case) -> None:
    d = _districts(c)
    d.loc[0, "LOAI"] = "metropolis"
    _write_districts(c, d)


def _b_missing_name_column(c: Case) -> None:
    c.scen["data"]["districts"]["columns"]["name"] = "TEN_HUYEN"


def _b_same_name_separate_areas(c: Case) -> None:
    d = _districts(c).to_crs(CRS)
    far = d.iloc[[0]].copy()
    far["geometry"] = far.geometry.translate(30_000, 0)
    far["MA"] = "009"
    d = pd.concat([d, far], ignore_index=True)
    _write_districts(c, gpd.GeoDataFrame(d, crs=CRS).to_crs(4326))
    del c.scen["data"]["districts"]["columns"]["code"]


def _b_districts_are_points(c: Case) -> None:
    d = _districts(c)
    _write_districts(c, d.set_geometry(d.geometry.centroid))


def _b_cp1258_dbf(c: Case) -> None:
    d = _districts(c)
    d["TEN"] = ["Tân Phú", "Hóc Môn"]  # both in cp1258, not valid UTF-8 there
    d.to_file(c.folder / "d.shp", encoding="cp1258")
    (c.folder / "d.cpg").unlink(missing_ok=True)
    c.scen["data"]["districts"]["path"] = "d.shp"


def _b_garbage_file(c: Case) -> None:
    (c.folder / "districts.gpkg").write_bytes(b"not a geopackage" * 64)


def _b_unknown_layer(c: Case) -> None:
    c.scen["data"]["districts"]["layer"] = "huyen"


def _b_unknown_encoding(c: Case) -> None:
    c.scen["data"]["encoding"] = "klingon-8"


def _set_pop(value: float, row: int = 3) -> Callable[[Case], None]:
    def breaker(c: Case) -> None:
        p = _population(c)
        p.loc[row, "DAN_SO"] = value
        p.to_file(c.folder / "population.gpkg", driver="GPKG")

    return breaker


def _b_pop_column(c: Case) -> None:
    c.scen["data"]["population"]["columns"]["population"] = "DAN_SO_2019"


def _b_district_population_huge(c: Case) -> None:
    d = _districts(c)
    d["DS"] = [1e16, 5.0]
    _write_districts(c, d)
    c.scen["data"]["districts"]["columns"]["population"] = "DS"
    del c.scen["data"]["population"]


def _raster(c: Case, data: np.ndarray, crs: str | None = CRS) -> None:
    import rasterio
    from affine import Affine

    with rasterio.open(
        c.folder / "pop.tif",
        "w",
        driver="GTiff",
        height=data.shape[0],
        width=data.shape[1],
        count=1,
        dtype="float64",
        crs=crs,
        transform=Affine(100, 0, X0, 0, -100, Y0 + 4000),
    ) as dst:
        dst.write(data, 1)
    c.scen["data"]["population"] = {"path": "pop.tif"}


def _b_unreadable_raster(c: Case) -> None:
    (c.folder / "pop.tif").write_bytes(b"this is not a GeoTIFF" * 10)
    c.scen["data"]["population"] = {"path": "pop.tif"}


def _b_raster_no_crs(c: Case) -> None:
    _raster(c, np.full((40, 100), 5.0), None)


def _b_raster_too_dense(c: Case) -> None:
    data = np.full((40, 100), 5.0)
    data[3, 4] = 1e9
    _raster(c, data)


def _b_raster_nan(c: Case) -> None:
    data = np.full((40, 100), 5.0)
    data[3, 4] = np.nan
    _raster(c, data)


def _b_population_elsewhere(c: Case) -> None:
    p = _population(c)
    p.set_geometry(p.geometry.translate(1.0, 0.0)).to_file(c.folder / "population.gpkg")


def _b_raster_elsewhere(c: Case) -> None:
    _raster(c, np.full((40, 100), 5.0))
    import rasterio

    with rasterio.open(c.folder / "pop.tif", "r+") as dst:
        t = dst.transform
        dst.transform = rasterio.Affine(t.a, t.b, t.c + 200_000, t.d, t.e, t.f)


def _sites_edit(fn: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Case], None]:
    def breaker(c: Case) -> None:
        fn(_sites(c)).to_csv(c.folder / "sites.csv", index=False)

    return breaker


def _swap(s: pd.DataFrame) -> pd.DataFrame:
    return s.rename(columns={"lon": "lat", "lat": "lon"})


def _dup_ids(s: pd.DataFrame) -> pd.DataFrame:
    s.loc[1, "id"] = s.loc[0, "id"]
    return s


def _op_unknown(s: pd.DataFrame) -> pd.DataFrame:
    s.loc[2, "op"] = "Gamma"
    return s


def _op_empty(s: pd.DataFrame) -> pd.DataFrame:
    s.loc[2, "op"] = None
    return s


def _lat_text(s: pd.DataFrame) -> pd.DataFrame:
    s["lat"] = s["lat"].astype(object)
    s.loc[4, "lat"] = "10°02'N"
    return s


def _lat_missing(s: pd.DataFrame) -> pd.DataFrame:
    s.loc[4, "lat"] = np.nan
    return s


def _far_away(s: pd.DataFrame) -> pd.DataFrame:
    s.loc[0, "lon"] = s.loc[0, "lon"] + 3.0  # ~330 km east
    return s


def _tenant_unknown(s: pd.DataFrame) -> pd.DataFrame:
    s["tenants"] = "Alpha;Beta"
    s.loc[3, "tenants"] = "Alpha;Delta"
    return s


def _b_tenant_unknown(c: Case) -> None:
    _sites_edit(_tenant_unknown)(c)
    c.scen["data"]["existing_sites"]["columns"]["operators"] = "tenants"


def _b_sites_cp1258(c: Case) -> None:
    s = _sites(c)
    s["ten"] = "Trạm Hóc Môn".replace("ạ", "a")
    s.to_csv(c.folder / "sites.csv", index=False, encoding="cp1258")


def _b_sites_no_rows(c: Case) -> None:
    _sites(c).iloc[0:0].to_csv(c.folder / "sites.csv", index=False)


def _b_sites_unknown_format(c: Case) -> None:
    c.scen["data"]["existing_sites"]["format"] = "xlsx"


def _b_sites_missing_column(c: Case) -> None:
    _sites(c).drop(columns=["op"]).to_csv(c.folder / "sites.csv", index=False)


def _b_cells_wrong_columns(c: Case) -> None:
    pd.DataFrame({"lon": [105.7], "lat": [10.0], "net": [4]}).to_csv(
        c.folder / "cells.csv", index=False
    )
    c.scen["data"]["existing_sites"] = {"path": "cells.csv", "format": "opencellid"}


def _b_cells_swapped(c: Case) -> None:
    rows = [_cell_row(X0 + 1000 * i, Y0 + 1000, 1) for i in range(1, 4)]
    for r in rows:
        r[6], r[7] = r[7], r[6]
    _cells(c, rows)


def _b_cells_unknown_network(c: Case) -> None:
    _cells(c, [_cell_row(X0 + 1000, Y0 + 1000, 1), _cell_row(X0 + 3000, Y0 + 1000, 99)])
    c.scen["operators"] = [
        {"name": "MobiFone", "market_share": 0.6},
        {"name": "Beta", "market_share": 0.4},
    ]


def _b_pois_swapped(c: Case) -> None:
    _pois(c, swap=True)


def _b_pois_far(c: Case) -> None:
    _pois(c, far=True)


def _b_pois_missing(c: Case) -> None:
    c.scen["data"]["pois"] = [{"path": "truong_hoc.geojson", "category": "school"}]


def _b_cands_far(c: Case) -> None:
    _candidates(c, [Point(X0 + 500, Y0 + 500), Point(X0 + 320_000, Y0 + 500)])


def _b_cands_polygons(c: Case) -> None:
    _candidates(c, [box(X0, Y0, X0 + 100, Y0 + 100)])


def _b_cands_column(c: Case) -> None:
    _candidates(c, [Point(X0 + 500, Y0 + 500)])
    c.scen["data"]["candidates"]["columns"] = {"cost": "chi_phi"}


def _b_roads_pbf(c: Case) -> None:
    (c.folder / "roads.osm.pbf").write_bytes(b"\x00\x00\x00\x0dOSMHeader")
    c.scen["data"]["roads"] = {"path": "roads.osm.pbf"}


def _b_roads_points(c: Case) -> None:
    gpd.GeoDataFrame(geometry=[Point(X0, Y0)], crs=CRS).to_file(c.folder / "roads.gpkg")
    c.scen["data"]["roads"] = {"path": "roads.gpkg"}


def _b_roads_no_crs(c: Case) -> None:
    g = gpd.GeoDataFrame(geometry=[LineString([(X0, Y0), (X0 + 900, Y0 + 900)])])
    g.to_file(c.folder / "roads.shp")
    (c.folder / "roads.prj").unlink(missing_ok=True)
    c.scen["data"]["roads"] = {"path": "roads.shp"}


# (id, breaker, what names the input, what names the fix)
CASES: list[tuple[str, Callable[[Case], None], str, str]] = [
    # scenario file
    ("unknown_scenario", _b_unknown_scenario, "atlantis-2020", "built-in"),
    ("missing_scenario_file", _b_missing_scenario, "nowhere.yaml", "existing YAML"),
    ("non_utf8_yaml", _b_non_utf8_yaml, "scenario.yaml", "save it as UTF-8"),
    ("invalid_yaml", _b_bad_yaml, "scenario.yaml", "fix the syntax"),
    ("yaml_not_mapping", _b_yaml_list, "scenario.yaml", "mapping of keys"),
    ("unknown_key", _scenario_key("sites.radius", 5), "sites.radius", "allowed keys"),
    ("missing_required_key", _b_missing_required, "'sites'", "missing"),
    ("wrong_type", _scenario_key("year", "twenty"), "'year'", "whole number"),
    ("inconsistent_targets", _scenario_key("sites.new_shared", 4), "sites.new_shared", "add up"),
    ("total_mismatch", _scenario_key("sites.total", 99), "sites.total", "add up"),
    ("share_as_percent", _scenario_key("sharing.target_min", 30), "sharing.target_min", "0.45"),
    ("shares_not_one", _b_shares_sum, "operators", "fix 'operators'"),
    ("same_operator_twice", _b_same_operator_twice, "ALPHA", "distinct names"),
    ("alias_collides", _b_alias_collides, "alpha", "distinct names"),
    (
        "time_limit_inf",
        _scenario_key("sites.time_limit_s", float("inf")),
        "sites.time_limit_s",
        "finite",
    ),
    ("time_limit_negative", _scenario_key("sites.time_limit_s", -1), "sites.time_limit_s", "> 0"),
    ("cell_size_zero", _scenario_key("demand.cell_size_m", 0), "demand.cell_size_m", "> 0"),
    ("density_limit_zero", _scenario_key("demand.max_density_km2", 0), "max_density_km2", "> 0"),
    ("geographic_crs", _scenario_key("crs", "EPSG:4326"), "'crs'", "metric CRS"),
    ("unknown_crs", _scenario_key("crs", "EPSG:99999999"), "'crs'", "pyproj"),
    (
        "files_without_districts",
        _scenario_key("data.districts", None),
        "data.districts",
        "district file",
    ),
    ("unknown_encoding", _b_unknown_encoding, "data.encoding", "cp1258"),
    (
        "bad_unknown_operators",
        _scenario_key("data.unknown_operators", "maybe"),
        "data.unknown_operators",
        "one of",
    ),
    ("bad_outside_policy", _scenario_key("data.outside", "keep"), "data.outside", "one of"),
    ("min_cells_zero", _scenario_key("data.opencellid.min_cells", 0), "min_cells", ">= 1"),
    (
        "shared_needs_tenants",
        _scenario_key("sites.max_tenants", 1),
        "sites.max_tenants",
        "at least 2",
    ),
    # command line
    ("time_limit_nan_flag", _argv(("--time-limit", "nan")), "--time-limit", "finite number"),
    ("time_limit_neg_flag", _argv(("--time-limit", "-1")), "--time-limit", "> 0"),
    ("time_limit_inf_flag", _argv(("--time-limit", "inf")), "--time-limit", "> 0"),
    ("time_limit_text_flag", _argv(("--time-limit", "soon")), "--time-limit", "seconds"),
    ("bad_solver_flag", _argv(("--solver", "magic")), "--solver", "choose from"),
    ("bad_seed_flag", _argv(("--seed", "x")), "--seed", "--help"),
    ("jobs_zero_flag", _argv(("--jobs", "0")), "--jobs", ">= 1"),
    ("jobs_text_flag", _argv(("--jobs", "two")), "--jobs", "--jobs 2"),
    # output folder
    ("out_is_file", _b_out_is_file, "--out", "folder path"),
    ("out_parent_is_file", _b_out_parent_is_file, "--out", "another --out"),
    ("out_holds_scenario", _b_out_is_scenario_folder, "--out", "new folder"),
    ("out_is_input_ancestor", _b_out_is_ancestor, "--out", "new folder"),
    ("out_is_cwd", _b_out_is_cwd, "--out", "subfolder"),
    ("out_not_empty", _b_out_not_empty, "--out", "--overwrite"),
    ("out_not_written_by_towerplan", _b_out_foreign, "--out", "choose a new folder"),
    # districts
    ("districts_missing_file", _b_missing_file, "no_such_districts.gpkg", "check the path"),
    ("districts_missing_crs", _b_missing_crs, "nocrs.shp", "crs:"),
    ("districts_metres_as_degrees", _b_metres_labelled_degrees, "metres.gpkg", "crs:"),
    ("districts_invalid_geometry", _b_invalid_geometry, "districts", "repair_geometries"),
    ("districts_empty", _b_empty_layer, "districts", "at least one"),
    ("districts_unknown_type", _b_unknown_district_type, "metropolis", "urban_type_values"),
    ("districts_missing_column", _b_missing_name_column, "TEN_HUYEN", "columns"),
    ("districts_same_name_apart", _b_same_name_separate_areas, "Trung Tâm", "province"),
    ("districts_not_polygons", _b_districts_are_points, "districts", "polygon layer"),
    ("districts_cp1258_no_cpg", _b_cp1258_dbf, "d.shp", ".cpg"),
    ("districts_garbage_file", _b_garbage_file, "districts.gpkg", "GeoPackage"),
    ("districts_unknown_layer", _b_unknown_layer, "districts", "layers in the file"),
    ("districts_population_1e16", _b_district_population_huge, "DS", "max_density_km2"),
    # population
    ("population_nan", _set_pop(float("nan")), "DAN_SO", "give a number"),
    ("population_negative", _set_pop(-40.0, 5), "DAN_SO", "give a number"),
    ("population_1e16", _set_pop(1e16), "DAN_SO", "max_density_km2"),
    ("population_1e308", _set_pop(1e308), "DAN_SO", "max_density_km2"),
    ("population_column_missing", _b_pop_column, "DAN_SO_2019", "columns"),
    ("population_raster_unreadable", _b_unreadable_raster, "pop.tif", "GeoTIFF"),
    ("population_raster_no_crs", _b_raster_no_crs, "pop.tif", "gdal_edit"),
    ("population_raster_too_dense", _b_raster_too_dense, "pop.tif", "max_density_km2"),
    ("population_raster_nan", _b_raster_nan, "pop.tif", "nodata"),
    ("population_elsewhere", _b_population_elsewhere, "population.gpkg", "cover the same area"),
    ("population_raster_elsewhere", _b_raster_elsewhere, "pop.tif", "covers data.districts"),
    (
        "demand_grid_too_big",
        _scenario_key("demand.cell_size_m", 0.1),
        "demand.cell_size_m",
        "raise demand.cell_size_m",
    ),
    # existing sites
    ("sites_swapped_lonlat", _sites_edit(_swap), "sites.csv", "columns: {lon: lat, lat: lon}"),
    ("sites_duplicate_ids", _sites_edit(_dup_ids), "sites.csv", "unique ID"),
    ("sites_unknown_operator", _sites_edit(_op_unknown), "Gamma", "aliases"),
    ("sites_empty_operator", _sites_edit(_op_empty), "sites.csv", "host operator"),
    ("sites_text_coordinate", _sites_edit(_lat_text), "sites.csv", "fix the values"),
    ("sites_missing_coordinate", _sites_edit(_lat_missing), "sites.csv", "fill them"),
    ("sites_far_away", _sites_edit(_far_away), "sites.csv", "data.outside: drop"),
    ("sites_unknown_tenant", _b_tenant_unknown, "Delta", "data.unknown_operators"),
    ("sites_cp1258_csv", _b_sites_cp1258, "sites.csv", "encoding: cp1258"),
    ("sites_no_rows", _b_sites_no_rows, "sites.csv", "at least one site"),
    ("sites_unknown_format", _b_sites_unknown_format, "sites.csv", "data.existing_sites.format"),
    ("sites_missing_column", _b_sites_missing_column, "sites.csv", "columns: {operator:"),
    ("cells_wrong_columns", _b_cells_wrong_columns, "cells.csv", "file format"),
    ("cells_swapped", _b_cells_swapped, "cells.csv", "swapped"),
    ("cells_unknown_network", _b_cells_unknown_network, "452-99", "aliases"),
    # POIs, candidates, roads
    ("pois_swapped", _b_pois_swapped, "pois.geojson", "swap the coordinates"),
    ("pois_far_away", _b_pois_far, "pois.geojson", "data.outside: drop"),
    ("pois_missing_file", _b_pois_missing, "truong_hoc.geojson", "check the path"),
    ("candidates_far_away", _b_cands_far, "cands.gpkg", "data.outside: drop"),
    ("candidates_polygons", _b_cands_polygons, "cands.gpkg", "point layer"),
    ("candidates_missing_column", _b_cands_column, "chi_phi", "columns"),
    ("roads_pbf", _b_roads_pbf, "roads.osm.pbf", "osmium"),
    ("roads_points", _b_roads_points, "roads.gpkg", "line layer"),
    ("roads_no_crs", _b_roads_no_crs, "roads.shp", "crs:"),
]


@pytest.mark.parametrize(
    ("name", "breaker", "input_needle", "fix_needle"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_input_gives_one_line_and_changes_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    complete_out: Path,
    city: tuple[Path, dict[str, Any]],
    name: str,
    breaker: Callable[[Case], None],
    input_needle: str,
    fix_needle: str,
) -> None:
    folder = tmp_path / "city"
    shutil.copytree(city[0], folder)
    scen = copy.deepcopy(city[1])
    out = tmp_path / "out"
    shutil.copytree(complete_out, out)
    argv = [
        "plan",
        "--scenario",
        str(folder / "scenario.yaml"),
        "--out",
        str(out),
        "--overwrite",
        "--no-maps",
        "--no-raster",
    ]
    case = Case(folder, scen, argv, out)
    breaker(case)
    if case.raw_scenario is not None:
        (folder / "scenario.yaml").write_bytes(case.raw_scenario)
    else:
        write_scenario(folder, case.scen)
    if case.chdir is not None:
        monkeypatch.chdir(case.chdir)
    before = _snapshot(tmp_path)
    capsys.readouterr()
    code = main(case.argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("towerplan: error: "), line
    assert input_needle.lower() in line.lower(), line
    assert fix_needle.lower() in line.lower(), line
    assert "Traceback" not in err
    assert _snapshot(tmp_path) == before  # inputs and the earlier OUT untouched, no leftovers


def test_suite_is_large_enough() -> None:
    assert len({c[0] for c in CASES}) == len(CASES) >= 60


def test_console_script_prints_no_traceback(tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "towerplan",
            "plan",
            "--scenario",
            "nowhere.yaml",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 2
    assert r.stderr.startswith("towerplan: error: scenario file nowhere.yaml: not found")
    assert "Traceback" not in r.stderr


def test_need_rejects_bad_time_limit(capsys: pytest.CaptureFixture[str]) -> None:
    for value in ("-1", "nan", "inf", "0"):
        code = main(
            ["need", "--scenario", "cantho-2020", "--coverage", "0.9", "--time-limit", value]
        )
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "--time-limit" in err, err


def test_outside_drop_is_counted_and_warned_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """data.outside: drop turns the far-away cases into a counted, warned-once drop."""
    from towerplan.inputs import load_inputs
    from towerplan.scenario import load_scenario

    folder = tmp_path / "city"
    case = Case(folder, make_city(folder), [], tmp_path / "out")
    _b_pois_far(case)
    _b_cands_far(case)
    _sites_edit(_far_away)(case)
    case.scen["data"]["outside"] = "drop"
    path = write_scenario(folder, case.scen)
    with caplog.at_level("WARNING"):
        inp = load_inputs(load_scenario(path))
    rep = inp.report
    assert rep["existing_sites_outside_dropped"] == 1
    assert rep["pois_outside_dropped"] == 2
    assert rep["candidates_outside_dropped"] == 1
    assert len(inp.existing_sites) == 29 and len(inp.pois) == 0
    warned = [r.getMessage() for r in caplog.records if "outside the study area" in r.getMessage()]
    assert len(warned) == 3 and all("data.outside: drop" in w for w in warned)
    assert json.dumps(rep)  # serialisable for summary.json


def test_each_warning_once_as_one_log_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warning raised as UserWarning and logged (as the infrastructure modules do), from
    several places, reaches stderr once, as one log line without a source line."""
    import logging
    import warnings

    import towerplan.cli as cli

    def noisy(args: Any) -> int:
        log = logging.getLogger("towerplan.infrastructure.backhaul")
        for _ in range(3):
            msg = "backhaul: all 8 routes are straight lines (scenario key data.roads)"
            warnings.warn(msg, UserWarning, stacklevel=1)
            log.warning(msg)
        log.warning("another warning")
        return 0

    monkeypatch.setattr(cli, "_cmd_scenarios", noisy)
    assert main(["scenarios"]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("WARNING ")
    assert lines[0].endswith(
        ": backhaul: all 8 routes are straight lines (scenario key data.roads)"
    )
    assert lines[1] == "WARNING towerplan.infrastructure.backhaul: another warning"
    assert main(["-q", "scenarios"]) == 0  # -q: errors only
    assert capsys.readouterr().err == ""


def test_reference_radius_table_emits_no_extrapolation_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The summary's link-budget reference table does not warn about bands the run does not
    use (the nine COST-231 extrapolation warnings of a fixed-radius run)."""
    from towerplan.plan import _radius_table

    with caplog.at_level("WARNING"):
        table = _radius_table()
    assert set(table) == {"900MHz", "1800MHz", "2100MHz"}
    assert [r for r in caplog.records if r.levelname == "WARNING"] == []
