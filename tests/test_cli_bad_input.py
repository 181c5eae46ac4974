"""Bad input through the CLI: one clear line on stderr, non-zero exit, nothing half-written."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest
from _city_fixture import make_city, write_scenario
from shapely.geometry import Polygon

from towerplan.cli import main


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def _break_missing_file(folder: Path, scen: dict[str, Any]) -> None:
    scen["data"]["districts"]["path"] = "no_such_districts.gpkg"


def _break_unreadable_raster(folder: Path, scen: dict[str, Any]) -> None:
    (folder / "pop.tif").write_bytes(b"this is not a GeoTIFF" * 10)
    scen["data"]["population"] = {"path": "pop.tif"}


def _break_missing_crs(folder: Path, scen: dict[str, Any]) -> None:
    d = gpd.read_file(folder / "districts.gpkg")
    d = d.set_crs(None, allow_override=True)
    d.to_file(folder / "nocrs.shp")
    (folder / "nocrs.prj").unlink(missing_ok=True)
    scen["data"]["districts"]["path"] = "nocrs.shp"


def _break_swapped_lonlat(folder: Path, scen: dict[str, Any]) -> None:
    s = pd.read_csv(folder / "sites.csv")
    s = s.rename(columns={"lon": "lat", "lat": "lon"})
    s.to_csv(folder / "sites.csv", index=False)


def _break_invalid_geometry(folder: Path, scen: dict[str, Any]) -> None:
    d = gpd.read_file(folder / "districts.gpkg")
    x0, y0, x1, y1 = d.geometry.iloc[0].bounds
    bowtie = Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1), (x0, y0)])
    d.loc[d.index[0], "geometry"] = bowtie
    d.to_file(folder / "districts.gpkg", driver="GPKG")


def _break_empty_layer(folder: Path, scen: dict[str, Any]) -> None:
    d = gpd.read_file(folder / "districts.gpkg")
    d.iloc[0:0].to_file(folder / "districts.gpkg", driver="GPKG")


def _break_nan_population(folder: Path, scen: dict[str, Any]) -> None:
    p = gpd.read_file(folder / "population.gpkg")
    p.loc[3, "DAN_SO"] = float("nan")
    p.to_file(folder / "population.gpkg", driver="GPKG")


def _break_negative_population(folder: Path, scen: dict[str, Any]) -> None:
    p = gpd.read_file(folder / "population.gpkg")
    p.loc[5, "DAN_SO"] = -40.0
    p.to_file(folder / "population.gpkg", driver="GPKG")


def _break_duplicate_ids(folder: Path, scen: dict[str, Any]) -> None:
    s = pd.read_csv(folder / "sites.csv")
    s.loc[1, "id"] = s.loc[0, "id"]
    s.to_csv(folder / "sites.csv", index=False)


def _break_missing_column(folder: Path, scen: dict[str, Any]) -> None:
    s = pd.read_csv(folder / "sites.csv").drop(columns=["op"])
    s.to_csv(folder / "sites.csv", index=False)


def _break_inconsistent_targets(folder: Path, scen: dict[str, Any]) -> None:
    scen["sites"]["new_shared"] = 4


def _break_unknown_district_type(folder: Path, scen: dict[str, Any]) -> None:
    d = gpd.read_file(folder / "districts.gpkg")
    d.loc[0, "LOAI"] = "metropolis"
    d.to_file(folder / "districts.gpkg", driver="GPKG")


CASES: list[tuple[str, Callable[[Path, dict[str, Any]], None], str]] = [
    ("missing_file", _break_missing_file, "no_such_districts.gpkg"),
    ("unreadable_raster", _break_unreadable_raster, "pop.tif"),
    ("missing_crs", _break_missing_crs, "CRS"),
    ("swapped_lonlat", _break_swapped_lonlat, "swapped"),
    ("invalid_geometry", _break_invalid_geometry, "invalid"),
    ("empty_layer", _break_empty_layer, "no features"),
    ("nan_population", _break_nan_population, "DAN_SO"),
    ("negative_population", _break_negative_population, "DAN_SO"),
    ("duplicate_ids", _break_duplicate_ids, "S000"),
    ("missing_column", _break_missing_column, "op"),
    ("inconsistent_targets", _break_inconsistent_targets, "sites.new_shared"),
    ("unknown_district_type", _break_unknown_district_type, "metropolis"),
]


@pytest.mark.parametrize(("name", "breaker", "needle"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_writes_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    breaker: Callable[[Path, dict[str, Any]], None],
    needle: str,
) -> None:
    folder = tmp_path / "city"
    scen = make_city(folder)
    breaker(folder, scen)
    path = write_scenario(folder, scen)
    out = tmp_path / "out"
    code, err = _run(["plan", "--scenario", str(path), "--out", str(out), "--no-maps"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("towerplan: error: ")
    assert needle.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_unknown_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(["plan", "--scenario", "atlantis-2020", "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "unknown scenario 'atlantis-2020'" in err
    assert not (tmp_path / "o").exists()


def test_non_empty_out_folder_is_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("precious", encoding="utf-8")
    code, err = _run(["plan", "--scenario", "cantho-2020", "--out", str(out)], capsys)
    assert code == 2
    assert "exists and is not empty" in err and err.count("\n") == 1
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


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
