"""Tests of ``towerplan batch`` (towerplan.batch) on a LocalCluster and a loopback cluster.

The boundary layer is generated: 3 provinces of 4 overlapping communes (2 districts each),
coarse 150 m cells.  One module-scoped loopback cluster (``dask scheduler`` + two
``dask worker`` processes on 127.0.0.1, always killed) serves several tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import LineString, box

from towerplan import batch
from towerplan._i18n import _, use_language
from towerplan.cli import main
from towerplan.scenario import Scenario, load_scenario

REPO = Path(__file__).resolve().parents[1]
CELL = 150.0
X0, Y0 = 580_000.0, 1_110_000.0  # UTM 48N, near Cần Thơ


def _communes() -> gpd.GeoDataFrame:
    rows = []
    pops = [4000, 9000, 2500, 6000]
    for p in range(3):
        for k in range(4):
            i, j = divmod(k, 2)
            x = X0 + p * 4000 + j * 1500
            y = Y0 + i * 1500
            rows.append(
                {
                    "province_id": str(801 + p),
                    "province_vn": f"Tỉnh {p + 1}",
                    "district_id": f"{801 + p}{i}",
                    "district_vn": ("Quận " if i == 0 else "Huyện ") + f"D{p}{i}",
                    "commune_id": f"{801 + p}{k}",
                    "population": float(pops[k] * (p + 1)),
                    # 40 m overlap with the right neighbour: the partition removes it
                    "geometry": box(x, y, x + 1540, y + 1500),
                }
            )
    return gpd.GeoDataFrame(rows, crs="EPSG:32648").to_crs("EPSG:4326")


@pytest.fixture(scope="module")
def boundaries(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bnd") / "communes.gpkg"
    _communes().to_file(path, driver="GPKG")
    return path


@pytest.fixture(scope="module")
def template() -> Scenario:
    return load_scenario("cantho-2020")


@pytest.fixture(scope="module")
def areas(boundaries: Path) -> list[batch.Area]:
    got, report = batch.areas_from_boundaries(boundaries, by="province")
    assert report["partition"]["overlap_removed_km2"] == pytest.approx(6 * 0.04 * 1.5, rel=0.02)
    return got


TASK = batch.AreaTask(mode="need", coverage=0.95, cell_size_m=CELL, solver="auto")


#: Dask settings of the test clusters: no statistical profiler in the workers and the
#: event-loop tick checked every second (defaults: samples every 10 ms, ticks every 20 ms).
#: Their idle scheduler and workers then use ~1/4 of the CPU; nothing asserted here
#: depends on either.  The LocalCluster's worker processes are forked from the test
#: process (Dask's default, "spawn", starts a fresh interpreter that imports towerplan
#: again: ~3 CPU s each); they are still separate processes with their own memory, and
#: the loopback cluster's workers are fresh interpreters.
QUIET_DASK = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.multiprocessing-method": "fork",
}
QUIET_DASK_ENV = {
    "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False",
    "DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL": "1s",
}


@pytest.fixture(scope="module", autouse=True)
def quiet_dask() -> Iterator[None]:
    """:data:`QUIET_DASK` for the LocalCluster (its worker processes get the client's config)."""
    import dask

    with dask.config.set(QUIET_DASK):
        yield


def _key_figures(records: list[dict]) -> list[tuple]:
    return sorted(
        (r["code"], r["variant"], r["new_sites"], r["coverage_after"], r["population"])
        for r in records
        if r["status"] == "ok"
    )


@pytest.fixture(scope="module")
def loopback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Dask cluster on the loopback interface: scheduler + 2 single-thread workers
    (separate processes, without nanny processes)."""
    folder = tmp_path_factory.mktemp("dask")
    sched_file = folder / "scheduler.json"
    env = {**os.environ, **QUIET_DASK_ENV, "PYTHONPATH": str(REPO)}
    common = ["--no-dashboard"]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dask",
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--scheduler-file",
                str(sched_file),
                *common,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        address = None
        while address is None and time.monotonic() < deadline:
            try:  # the scheduler may still be writing the file
                address = json.loads(sched_file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.2)
        assert address, f"the dask scheduler wrote no address to {sched_file} in 60 s"
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "dask",
                        "worker",
                        address,
                        "--host",
                        "127.0.0.1",
                        "--nthreads",
                        "1",
                        "--memory-limit",
                        "1GB",
                        "--no-nanny",  # one process per worker (no assertion needs a nanny)
                        *common,
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        from distributed import Client

        with Client(address, timeout=30) as c:
            c.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            p.kill()
        for p in procs:
            p.wait(timeout=20)


def _bad_area() -> batch.Area:
    """An area whose one commune is a line, not a polygon (its run fails)."""
    return batch.Area(
        "999",
        "Broken",
        gpd.GeoDataFrame(
            {
                "population": [10.0],
                "district": ["Huyện X"],
                "district_code": ["9990"],
                "district_type": ["rural"],
            },
            geometry=[LineString([(X0, Y0), (X0 + 10, Y0)])],
            crs="EPSG:32648",
        ),
        10.0,
    )


@pytest.fixture(scope="module")
def local_run(
    areas: list[batch.Area], template: Scenario, tmp_path_factory: pytest.TempPathFactory
) -> batch.BatchResult:
    bad = _bad_area()
    out = tmp_path_factory.mktemp("local") / "out"
    return batch.run_batch([*areas, bad], template, [TASK], out, workers=2, progress=False)


def test_local_cluster_batch_outputs(local_run: batch.BatchResult, areas: list) -> None:
    out = local_run.out_dir
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert s["runs"] == 4 and s["runs_ok"] == 3 and s["runs_failed"] == 1
    assert s["workers"] == 2 and s["scheduler"] == "LocalCluster"
    assert s["population"] == pytest.approx(6 * 21_500.0)
    kpis = pd.read_csv(out / "national_kpis.csv", dtype={"code": str})
    assert list(kpis["code"]) == ["801", "802", "803"]
    assert (kpis["coverage_after"] >= 0.95).all() and (kpis["new_sites"] > 0).all()
    assert (kpis["peak_worker_rss_mb"] > 0).all() and (kpis["cpu_s"] > 0).all()
    cpu = s["cpu"]
    assert cpu["client_cpu_s"] > 0 and cpu["tasks_cpu_s"] >= kpis["cpu_s"].sum() - 0.01
    assert cpu["workers_cpu_s"] >= cpu["tasks_cpu_s"] - 0.01
    assert 1.0 <= cpu["amdahl_speedup_2"] <= 2.0
    # the summary rounds the CPU seconds to 0.01 s and the fraction from the exact ones: the
    # fraction lies between the extremes of the rounded seconds +- 0.005 (and its own 5e-5)
    c, t = cpu["client_cpu_s"], cpu["tasks_cpu_s"]
    lo = (c - 0.005) / (c - 0.005 + t + 0.005)
    hi = (c + 0.005) / (c + 0.005 + max(t - 0.005, 0.0))
    assert lo - 5e-5 <= cpu["serial_fraction"] <= hi + 5e-5
    for code in ("801", "802", "803"):
        assert (out / "areas" / code / "need.json").is_file()
        assert (out / "areas" / code / "area.json").is_file()
    layer = gpd.read_file(out / "national.gpkg", layer="areas")
    assert len(layer) == 4 and layer.loc[layer["code"] == "999", "new_sites"].isna().all()
    assert (out / "national_map.png").stat().st_size > 1000
    assert (out / "national_sheet.pdf").stat().st_size > 1000
    assert local_run.dashboard and local_run.dashboard.startswith("http://127.0.0.1:")


def test_failing_area_reported_others_finish(local_run: batch.BatchResult) -> None:
    fail = pd.read_csv(local_run.out_dir / "failures.csv", dtype={"code": str})
    assert list(fail["code"]) == ["999"]
    assert fail["error"].iloc[0].startswith("GeometryError")
    assert not (local_run.out_dir / "areas" / "999").exists()


def test_failed_area_error_in_the_users_language(template: Scenario, tmp_path: Path) -> None:
    """failures.csv names the error class, then the message in the user's language."""
    rec = batch._task(_bad_area(), template, TASK, str(tmp_path))
    assert rec["status"] == "failed" and rec["error"].startswith("GeometryError: ")
    text = rec["error_text"]
    en, vi = dict(rec), dict(rec)
    with use_language("en"):
        batch._localise_error(en)
    with use_language("vi"):
        batch._localise_error(vi)
        expected = " ".join(text.user_message(_, decimal_comma=True).split())
    assert en["error"] == rec["error"] and "error_text" not in en
    assert vi["error"] == f"GeometryError: {expected}" and vi["error"] != en["error"]


def test_batch_equals_single_area_runs(
    local_run: batch.BatchResult, areas: list[batch.Area], template: Scenario, tmp_path: Path
) -> None:
    alone = [
        {**batch.run_area(a, template, TASK, tmp_path / a.code), "status": "ok"} for a in areas
    ]
    assert _key_figures(alone) == _key_figures(local_run.records)


def test_loopback_scheduler_same_results(
    loopback: str,
    areas: list[batch.Area],
    template: Scenario,
    local_run: batch.BatchResult,
    tmp_path: Path,
) -> None:
    res = batch.run_batch(
        areas, template, [TASK], tmp_path / "out", scheduler=loopback, progress=False
    )
    assert res.summary["scheduler"] == loopback and res.summary["workers"] == 2
    assert _key_figures(res.records) == _key_figures(local_run.records)


def test_resume_after_killed_batch(
    loopback: str, boundaries: Path, local_run: batch.BatchResult, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    argv = [
        "batch",
        "--boundaries",
        str(boundaries),
        "--need",
        "0.95",
        "--cell-size",
        str(CELL),
        "--scheduler",
        loopback,
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "towerplan", *argv],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:  # kill the batch as soon as its first area is complete
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not list(out.glob("areas/*/area.json")):
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait(timeout=20)
    assert list(out.glob("areas/*/area.json")), "the batch never completed an area"
    assert not (out / "summary.json").exists()
    assert main(argv) == 2  # a non-empty --out needs --resume or --overwrite
    assert main([*argv, "--resume"]) == 0
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert s["runs_ok"] == 3 and s["runs_resumed"] >= 1
    kpis = pd.read_csv(out / "national_kpis.csv", dtype={"code": str})
    local = pd.read_csv(local_run.out_dir / "national_kpis.csv", dtype={"code": str})
    cols = ["code", "population", "new_sites", "coverage_after"]
    pd.testing.assert_frame_equal(kpis[cols], local[cols])


def test_sweep_tidy_table_and_figure(
    loopback: str, areas: list[batch.Area], template: Scenario, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("radius_m: [500, 800]\ncoverage: [0.9, 0.99]\n", encoding="utf-8")
    tasks = batch.read_sweep(sweep, TASK)
    assert [(t.radius_m, t.coverage) for t in tasks] == [
        (500, 0.9),
        (500, 0.99),
        (800, 0.9),
        (800, 0.99),
    ]
    res = batch.run_batch(
        areas[:1], template, tasks, tmp_path / "out", scheduler=loopback, progress=False
    )
    table = pd.read_csv(tmp_path / "out" / "sweep.csv")
    assert len(table) == 4
    by = table.set_index(["radius_m", "coverage_target"])["new_sites"]
    assert by[(500, 0.99)] >= by[(500, 0.9)] and by[(500, 0.9)] >= by[(800, 0.9)]
    assert (tmp_path / "out" / "sweep.png").stat().st_size > 1000
    assert res.summary["variants"][0] == "need-cov0.9-r500-cell150"


def test_calibration_to_area_totals(boundaries: Path, tmp_path: Path) -> None:
    csv = tmp_path / "totals.csv"
    pd.DataFrame({"province_id": ["801", "802", "803"], "pop": [1, 86_000, 1]}).to_csv(
        csv, index=False
    )
    got, report = batch.areas_from_boundaries(
        boundaries, only=["802"], calibrate=csv, calibrate_column="pop"
    )
    assert [a.code for a in got] == ["802"] and report["calibrated"]
    assert float(got[0].communes["population"].sum()) == pytest.approx(86_000)
    assert got[0].calibration_factor == pytest.approx(2.0)  # package sum 43,000
    assert got[0].population_source == pytest.approx(43_000)
    assert set(got[0].communes["district_type"]) == {"urban", "rural"}


def test_cli_batch_user_error(boundaries: Path, tmp_path: Path, capsys) -> None:
    rc = main(
        ["batch", "--boundaries", str(boundaries), "--areas", "123", "--out", str(tmp_path / "o")]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("towerplan: error: --areas") and "Traceback" not in err
    rc = main(["batch", "--boundaries", str(boundaries), "--sites", str(tmp_path / "no.csv"),
               "--out", str(tmp_path / "o2")])  # fmt: skip
    assert rc == 2
    assert capsys.readouterr().err.startswith("towerplan: error: --sites")


def test_scenario_files_as_areas(loopback: str, tmp_path: Path) -> None:
    from _city_fixture import make_city, write_scenario

    from towerplan.plan import coverage_need

    paths = []
    for seed in (1, 2):
        folder = tmp_path / f"city{seed}"
        scen = make_city(folder, seed=seed)
        scen["name"] = f"testville-{seed}"
        paths.append(write_scenario(folder, scen))
    areas, report = batch.areas_from_scenarios(paths)
    assert len(report["scenarios"]) == 2
    assert [a.code for a in areas] == ["testville-1", "testville-2"]
    task = batch.AreaTask(mode="need", coverage=0.9)
    res = batch.run_batch(
        areas, areas[0].scenario, [task], tmp_path / "out", scheduler=loopback, progress=False
    )
    assert res.summary["runs_ok"] == 2
    for rec, area in zip(res.records, areas, strict=True):
        alone = coverage_need(area.scenario, 0.9, inputs=area.inputs)
        assert rec["existing_sites"] == alone["existing_sites"] > 0  # the city's own sites
        assert rec["new_sites"] == alone["new_sites"]


def test_site_inventory_clipped_per_area(
    areas: list[batch.Area], template: Scenario, tmp_path: Path
) -> None:
    """--sites: a national inventory is split by area (operators kept); need counts them."""
    xy = [(X0 + 700, Y0 + 700), (X0 + 2300, Y0 + 2200), (X0 + 4700, Y0 + 800), (X0 - 9000, Y0)]
    pts = gpd.GeoSeries(gpd.points_from_xy(*zip(*xy, strict=True)), crs="EPSG:32648")
    lonlat = pts.to_crs("EPSG:4326")
    csv = tmp_path / "sites.csv"
    pd.DataFrame(
        {
            "site_id": ["A", "B", "C", "OUT"],
            "lon": lonlat.x,
            "lat": lonlat.y,
            "operator": ["Viettel", "MobiFone", "Viettel", "Viettel"],
            "operators": ["Viettel;MobiFone", "MobiFone", "Viettel", "Viettel"],
        }
    ).to_csv(csv, index=False)
    got, report = batch.attach_sites(areas, csv, template)
    assert report["sites_read"] == 4 and report["sites_outside_areas"] == 1
    assert report["sites_per_area"] == {"801": 2, "802": 1, "803": 0}
    a801 = next(a for a in got if a.code == "801")
    assert a801.sites is not None and sorted(a801.sites["site_id"]) == ["A", "B"]
    assert list(a801.sites.sort_values("site_id")["operators"]) == ["Viettel;MobiFone", "MobiFone"]
    inputs = batch.area_inputs(a801)
    assert inputs.data_kind == "census boundaries and population, existing sites from sites.csv"
    with_sites = batch.run_area(a801, template, TASK, tmp_path / "with")
    scratch = batch.run_area(areas[0], template, TASK, tmp_path / "scratch")
    assert with_sites["existing_sites"] == 2 and scratch["existing_sites"] == 0
    assert with_sites["coverage_before"] > 0.0 == scratch["coverage_before"]
    assert with_sites["new_sites"] < scratch["new_sites"]
    assert with_sites["coverage_after"] >= 0.95


def test_market_share_sweep_variants(
    areas: list[batch.Area], template: Scenario, tmp_path: Path
) -> None:
    """market_share lists in a sweep file: checked against the operators, tidy table + figure."""
    from towerplan.outputs.national import write_national

    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        "radius_m: [500, 800]\nmarket_share:\n  - {Viettel: 0.5, mobifone: 0.23}\n"
        "  - {Viettel: 0.4, MobiFone: 0.33}\n",
        encoding="utf-8",
    )
    tasks = batch.read_sweep(sweep, TASK, template)
    assert len(tasks) == 4 and tasks[1].radius_m == 500
    assert dict(tasks[1].market_share or ()) == {
        "Viettel": 0.4,
        "VNPT-VinaPhone": 0.22,
        "MobiFone": 0.33,
        "Vietnamobile": 0.05,
    }
    assert (
        tasks[1].label()
        == "need-cov0.95-r500-cell150-ms_Viettel0.4_VNPTVinaPhone0.22_MobiFone0.33_Vietnamobile0.05"
    )
    rec = batch.run_area(areas[0], template, tasks[1], tmp_path / "a")
    assert rec["market_share"] == "Viettel=0.4;VNPT-VinaPhone=0.22;MobiFone=0.33;Vietnamobile=0.05"
    for text, msg in (
        ("market_share: [{Viettel: 0.9}]\n", "adding up to 1.400"),
        ("market_share: [{Gmobile: 0.05}]\n", "not operators of the scenario"),
        ("market_share: [0.5]\n", "must be mappings"),
    ):
        sweep.write_text(text, encoding="utf-8")
        with pytest.raises(batch.ParameterError, match=msg):
            batch.read_sweep(sweep, TASK, template)
    # the tidy table and the figure, from records (no cluster needed)
    records = [
        {"code": "801", "name": "T1", "variant": t.label(), "status": "ok", "mode": "need",
         "population": 100.0, "area_km2": 9.0, "radius_m": t.radius_m, "coverage_target": 0.95,
         "market_share": ";".join(f"{n}={v:g}" for n, v in t.market_share or ()),
         "new_sites": 10 + i, "coverage_after": 0.95, "peak_worker_rss_mb": 1.0}
        for i, t in enumerate(tasks)
    ]  # fmt: skip
    summary = {"scenario": "s", "mode": "need", "variants": [t.label() for t in tasks]}
    out = tmp_path / "out"
    (out / "areas").mkdir(parents=True)
    geom = areas[0].communes.geometry.union_all()
    write_national(out, records, [("801", geom, areas[0].communes.crs)], summary, sweep=True)
    table = pd.read_csv(out / "sweep.csv")
    assert table["market_share"].nunique() == 2 and len(table) == 4
    assert (out / "sweep_market_share.png").stat().st_size > 1000
    assert (out / "sweep.png").stat().st_size > 1000


def test_national_outputs_when_every_run_was_resumed(
    areas: list[batch.Area], tmp_path: Path
) -> None:
    """A batch killed after its last area but before summary.json, then resumed: every
    record comes from area.json, without the worker figures (no peak memory to report)."""
    from towerplan.outputs.national import write_national

    records = [
        {"code": a.code, "name": a.name, "variant": TASK.label(), "status": "ok",
         "mode": "need", "population": 100.0 * (k + 1), "area_km2": 9.0, "radius_m": 500.0,
         "new_sites": 10 + k, "covered_population": 95.0 * (k + 1), "coverage_after": 0.95,
         "resumed": True}
        for k, a in enumerate(areas)
    ]  # fmt: skip
    summary = {"scenario": "s", "mode": "need", "variants": [TASK.label()]}
    out = tmp_path / "out"
    (out / "areas").mkdir(parents=True)
    outlines = [(a.code, a.communes.geometry.union_all(), a.communes.crs) for a in areas]
    write_national(out, records, outlines, summary)
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert s["peak_worker_rss_mb"] is None
    assert s["new_sites"] == sum(10 + k for k in range(len(areas)))
    assert s["coverage_after"] == 0.95
