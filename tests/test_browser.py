"""Headless Chromium opens every HTML map from file:// with networking off.

Checks per map: no SEVERE console message, no resource fetched from anywhere,
every registered layer renders its expected number of features (counted from
the Leaflet objects in the page), SVG paths / markers are in the DOM, at two screen
sizes; and a screenshot of each map (at one of the sizes, alternately) is not blank.  Names carrying ``<script>`` / ``<img onerror>`` are
shown as text and never run.

Skips only when Chromium/chromedriver are absent outside CI; in CI
(``CI`` set) their absence is a failure because ``.ci/run`` installs them.
"""

from __future__ import annotations

import html
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _layers_fixture import EVIL, make_layers, write_signal_raster

from towerplan.inputs._base import DEMO_STAMP
from towerplan.outputs import maps

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

COUNT_JS = """
function leaves(l) {
  if (l.getLayers) { return l.getLayers().reduce(function (a, c) { return a + leaves(c); }, 0); }
  return 1;
}
var tp = window.towerplan, out = {};
for (var k in tp.layers) {
  out[k] = [leaves(tp.layers[k][0]), tp.layers[k][1], tp.map.hasLayer(tp.layers[k][0])];
}
return {
  layers: out,
  canvas: document.querySelectorAll(".leaflet-overlay-pane canvas").length,
  markers: document.querySelectorAll(".leaflet-marker-icon").length,
  clusters: document.querySelectorAll(".marker-cluster").length,
  controlItems: document.querySelectorAll(".leaflet-control-layers-overlays label").length,
  alerts: window.__alerts,
  resources: performance.getEntriesByType("resource").map(function (e) { return e.name; }),
  injected: document.querySelectorAll("body img:not(.leaflet-marker-icon):not(.leaflet-tile)"
    + ":not(.leaflet-image-layer)").length,
  legendOpen: (document.querySelector(".tp-legend details") || {}).open,
  mapSize: [tp.map.getSize().x, tp.map.getSize().y]
};
"""

SIZES = ((1366, 768), (1920, 1080))


def _driver_or_skip() -> Any:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        if os.environ.get("CI"):
            pytest.fail("chromium/chromedriver missing in CI: .ci/run must apt-get install them")
        pytest.skip("chromium and chromedriver not installed (Debian: chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="tp-chrome-")
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--no-first-run",
        "--disable-quic",
        "--proxy-server=127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--window-size=1366,768",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(30)
    drv.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument",
        {"source": "window.__alerts = 0; window.alert = function () { window.__alerts++; };"},
    )
    drv._tp_profile = profile  # type: ignore[attr-defined]
    return drv


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    drv = _driver_or_skip()
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(drv._tp_profile, ignore_errors=True)


@pytest.fixture(scope="module")
def map_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], dict[str, Any]]:
    layers, summary, kpis = make_layers(n_existing=350, n_proposed=40, evil=True)
    out = tmp_path_factory.mktemp("bmaps")
    tif = write_signal_raster(out, layers)
    paths = maps.write_maps(layers, summary, kpis, out / "maps", best_server=tif)
    return paths, layers


def _screenshot_std(drv: Any, path: Path | None = None) -> float:
    from PIL import Image

    png = drv.get_screenshot_as_png()
    if path is not None:
        path.write_bytes(png)
    img = Image.open(io.BytesIO(png)).convert("L")
    return float(np.asarray(img, dtype=float).std())


def test_every_map_renders_offline_at_two_screen_sizes(
    browser: Any, map_files: tuple[list[Path], dict], tmp_path: Path
) -> None:
    paths, layers = map_files
    n_existing = len(layers["existing_sites"])
    results: dict[tuple[str, int], dict] = {}
    for k, (w, h) in enumerate(SIZES):
        browser.set_window_size(w, h)
        for j, path in enumerate(paths):
            browser.get(path.resolve().as_uri())
            r = browser.execute_script(COUNT_JS)
            logs = browser.get_log("browser")
            severe = [e for e in logs if e["level"] == "SEVERE"]
            assert severe == [], (path.name, severe)
            assert r["alerts"] == 0 and r["injected"] == 0, path.name
            assert [u for u in r["resources"] if not u.startswith("data:")] == [], path.name
            assert r["layers"], path.name
            for key, (got, expected, _shown) in r["layers"].items():
                assert got == expected, (path.name, key, got, expected)
            assert r["controlItems"] == len(r["layers"]), path.name
            assert r["canvas"] >= 1, path.name  # canvas renderer
            assert r["clusters"] == 0, path.name  # every site drawn, no cluster bubbles
            # panels fold on the small screen and stay open on the large one
            if r["legendOpen"] is not None:
                assert r["legendOpen"] == (w >= 1600), (path.name, w)
            if (j + k) % 2 == 0:  # each map's screenshot at one size, alternately (~1 s each)
                assert _screenshot_std(browser, tmp_path / f"{path.stem}_{w}.png") > 8.0, path.name
            results[(path.stem, w)] = r
    for w, _h in SIZES:
        ov = results[("overview", w)]["layers"]
        assert ov["existing_sites"][0] == n_existing and ov["existing_sites"][2]
        ps = results[("proposed_sites", w)]["layers"]
        n_ded = int((layers["proposed_sites"]["site_type"] == "dedicated").sum())
        assert ps["proposed_sites:dedicated"][0] == n_ded
        assert ps["proposed_sites:shared"][0] == len(layers["proposed_sites"]) - n_ded
        gaps = results[("coverage_gaps", w)]["layers"]
        assert sum(v[0] for k, v in gaps.items() if k.startswith("coverage_gaps:")) == len(
            layers["coverage_gaps"]
        )
        assert results[("signal_level", w)]["layers"]["best_server"][0] == 1


def test_vn2000_readout_and_site_search(browser: Any, map_files: tuple[list[Path], dict]) -> None:
    from towerplan.outputs import export

    paths, layers = map_files
    browser.get(next(p for p in paths if p.stem == "proposed_sites").resolve().as_uri())
    pts = layers["existing_sites"].to_crs(4326).geometry.iloc[:5]
    got = browser.execute_script(
        "return arguments[0].map(function (p) { return window.towerplan.vn2000(p[1], p[0]); });",
        [[p.x, p.y] for p in pts],
    )
    ref = export.reproject(layers["existing_sites"].iloc[:5], 5897).geometry
    for g, r in zip(got, ref, strict=True):
        assert abs(g["X"] - r.y) < 0.01 and abs(g["Y"] - r.x) < 0.01  # X north, Y east, 1 cm
    sid = layers["proposed_sites"]["site_id"].iloc[3]
    found = browser.execute_script(f"return TP.search({sid.lower()!r});")
    assert found and found.startswith("proposed_sites:")
    popup = browser.execute_script(
        'return document.querySelector(".leaflet-popup-content").textContent;'
    )
    assert sid in popup and "VN-2000 X (northing, m)" in popup
    assert browser.execute_script("return TP.search('NOPE-9');") is None


def test_user_text_is_shown_not_run(
    browser: Any, map_files: tuple[list[Path], dict], tmp_path: Path
) -> None:
    paths, _ = map_files
    page = next(p for p in paths if p.stem == "proposed_sites")
    browser.get(page.resolve().as_uri())
    r = browser.execute_script(
        """
        var g = window.towerplan.layers["proposed_sites:shared"][0];
        var m = g.getLayers()[0];
        m.openPopup();
        m.openTooltip();
        var pop = document.querySelector(".leaflet-popup-content");
        var tip = document.querySelector(".leaflet-tooltip");
        var labels = Array.from(document.querySelectorAll(".tp-label")).map(function (e) {
            return e.textContent; });
        var caption = document.querySelector(".tp-caption").textContent;
        var control = document.querySelector(".leaflet-control-layers-overlays").textContent;
        return {popup: pop.textContent, popupScripts: pop.querySelectorAll("script, img").length,
                tip: tip.textContent, labels: labels, caption: caption, control: control,
                alerts: window.__alerts};
        """
    )
    assert EVIL in r["popup"]  # the operator name, shown literally
    assert r["popupScripts"] == 0
    assert EVIL in r["tip"]
    assert any(EVIL in t for t in r["labels"])
    assert "note with " + EVIL in r["caption"]
    assert DEMO_STAMP in r["caption"]
    assert r["alerts"] == 0
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
    layers, summary, kpis = make_layers(n_existing=10, n_proposed=4, evil=True)
    gaps = layers["coverage_gaps"].copy()
    gaps["operator"] = gaps["operator"].replace({"Viettel": EVIL})
    cg = maps.write_maps(dict(layers, coverage_gaps=gaps), summary, kpis, tmp_path)[1]
    assert cg.stem == "coverage_gaps"
    browser.get(cg.resolve().as_uri())
    control = browser.execute_script(
        'return document.querySelector(".leaflet-control-layers-overlays").textContent;'
    )
    assert "Coverage gaps before the plan: " + EVIL in control
    assert html.escape(EVIL) not in control  # escaped once, displayed as the original text
