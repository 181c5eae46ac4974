"""Another city is a scenario file and data, not code: the Testville fixture end to end."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
from _city_fixture import make_city, write_scenario

from towerplan.cli import main


@pytest.fixture(scope="module")
def testville(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("testville")
    scen = make_city(folder)
    # three user candidate locations (e.g. public land offered by the city), with costs
    from shapely.geometry import Point

    gpd.GeoDataFrame(
        {"GIA": [1.5, 0.8, 2.0], "UU_TIEN": [1, 2, 3]},
        geometry=[Point(561_000, 1_111_000), Point(565_000, 1_112_000), Point(568_500, 1_113_500)],
        crs="EPSG:32648",
    ).to_file(folder / "cands.gpkg", driver="GPKG")
    scen["data"]["candidates"] = {
        "path": "cands.gpkg",
        "columns": {"cost": "GIA", "priority": "UU_TIEN"},
    }
    write_scenario(folder, scen)
    out = folder / "out"
    code = main(
        [
            "plan",
            "--scenario",
            str(folder / "scenario.yaml"),
            "--out",
            str(out),
            "--sheets",
            "--exports",
        ]
    )
    assert code == 0
    return {"folder": folder, "out": out}


def test_custom_city_outputs(testville: dict[str, Path]) -> None:
    out = testville["out"]
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert s["scenario"] == "testville-2025"
    assert s["data_kind"] == "testville-fixture"
    assert "caption" not in s
    assert (s["existing_sites"], s["new_dedicated"], s["new_shared"]) == (30, 5, 3)
    pop = gpd.read_file(testville["folder"] / "population.gpkg")["DAN_SO"].sum()
    assert s["population"] == pytest.approx(pop, rel=1e-3)
    assert s["area_km2"] == pytest.approx(40.0, rel=1e-3)
    assert s["operators"] == {"Alpha": 0.6, "Beta": 0.4}
    k = pd.read_csv(out / "district_kpis.csv").set_index("district")
    assert k.loc["Trung Tâm", "district_type"] == "urban"
    assert k.loc["Ngoại Ô", "district_type"] == "rural"
    assert k["existing"].sum() == 30
    p = gpd.read_file(out / "towerplan.gpkg", layer="proposed_sites")
    assert sorted(p["site_type"].value_counts().items()) == [("dedicated", 5), ("shared", 3)]
    assert set(";".join(p["operators"]).split(";")) <= {"Alpha", "Beta"}
    c = gpd.read_file(out / "towerplan.gpkg", layer="candidate_sites")
    user = c[c["source"] == "user"].sort_values("cost")
    assert list(user["cost"]) == [0.8, 1.5, 2.0]
    assert list(user["priority"]) == [2.0, 1.0, 3.0]


def test_custom_city_sheets_and_exports(testville: dict[str, Path]) -> None:
    out = testville["out"]
    pdfs = sorted((out / "sheets").glob("*.pdf"))
    pngs = sorted((out / "sheets").glob("*.png"))
    assert pdfs and len(pdfs) == len(pngs)
    assert all(p.stat().st_size > 10_000 for p in pngs)
    wgs = out / "exports" / "wgs84"
    assert wgs.is_dir()
    kmz = list(wgs.rglob("towerplan.kmz"))  # one styled KMZ of every layer
    assert len(kmz) == 1 and kmz[0].stat().st_size > 1000
    gj = list(wgs.rglob("proposed_sites.geojson"))
    assert len(gpd.read_file(gj[0])) == 8
    vn = [d for d in (out / "exports").iterdir() if d.name.startswith("vn2000")]
    assert len(vn) == 2
    gpkgs = list((out / "exports").rglob("*.gpkg"))
    assert any("proposed_sites" in [r[0] for r in pyogrio.list_layers(g)] for g in gpkgs)


def test_export_command_from_plan_folder(testville: dict[str, Path], tmp_path: Path) -> None:
    dest = tmp_path / "ex"
    code = main(
        ["export", "--from", str(testville["out"]), "--out", str(dest), "--formats", "geojson,csv"]
    )
    assert code == 0
    csvs = list(dest.rglob("proposed_sites.csv"))
    assert len(csvs) == 3  # wgs84, vn2000_utm, vn2000_tm3
    df = pd.read_csv(next(c for c in csvs if "wgs84" in str(c)), encoding="utf-8-sig")
    assert {"lon", "lat"} <= set(df.columns)


def test_need_command_counts_sites_for_a_coverage_target(
    testville: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    scen = str(testville["folder"] / "scenario.yaml")
    args = ["need", "--scenario", scen, "--coverage", "0.99", "--from-scratch"]
    code = main([*args, "--solver", "heuristic"])  # greedy + LP bound: ~1 s
    assert code == 0
    out = capsys.readouterr().out
    assert "beside 0 existing" in out
    reached = float(out.split(": ")[1].split("%")[0])
    n = int(out.split(" needs ")[1].split(" new sites")[0])
    bound = int(out.split("at least ")[1].split()[0])
    assert reached >= 99.0
    # 40 km2 at 600 m radius: a disc covers 1.13 km2, about 0.99 x 40 / 1.13 = 35 discs
    assert 33 <= bound <= n
    assert n <= 1.25 * bound  # greedy + redundancy removal stays near the LP bound here
    code = main(["need", "--scenario", scen, "--coverage", "1.5"])
    assert code == 2
    assert "--coverage 1.5" in capsys.readouterr().err


def test_link_budget_radius_model(testville: dict[str, Path]) -> None:
    """Per-site radii from the link budget by clutter class (no output folder: compute only)."""
    import dataclasses

    from towerplan.plan import run_plan
    from towerplan.propagation import max_cell_radius
    from towerplan.scenario import load_scenario

    base = load_scenario(testville["folder"] / "scenario.yaml")
    st = dataclasses.replace(base.sites, radius_model="link_budget", max_radius_m=2500.0)
    scen = dataclasses.replace(base, sites=st)
    res = run_plan(scen, None, solver="heuristic", time_limit_s=5, progress=False)
    info = res.summary["radius_model"]
    assert info["model"] == "link_budget"
    rb = info["radius_m_by_clutter"]
    expect_urban = 1000 * max_cell_radius(1800.0, "urban", allow_extrapolation=True)
    assert rb["urban"] == pytest.approx(min(expect_urban, 2500.0), abs=0.1)
    assert rb["rural"] == 2500.0  # capped
    assert rb["dense_urban"] < rb["urban"] < rb["suburban"] <= rb["rural"]
    ex = res.layers["existing_sites"]
    assert set(ex["radius_m"].round(1)) <= {round(v, 1) for v in rb.values()}
    # the sparse rural district gets longer radii than the dense centre
    by_d = ex.groupby("district")["radius_m"].mean()
    assert by_d["Ngoại Ô"] > by_d["Trung Tâm"]
    assert res.summary["new_sites"] == 8
    assert res.summary["coverage_share_after"] >= res.summary["coverage_share_before"]
