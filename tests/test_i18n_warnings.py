"""User-facing warnings: raised translatable (``errors.warn_user`` with an ``N_`` msgid),
English in logs and ``str()``, in the user's language on the CLI's stderr line."""

from __future__ import annotations

import ast
import logging
import multiprocessing
import pickle
import warnings
from concurrent.futures import ProcessPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from conftest import is_marked_message, parse_source

from towerplan._i18n import _, use_language
from towerplan.errors import (
    N_,
    Text,
    TowerplanWarning,
    collected_warnings,
    replay_warnings,
    warn_user,
)

PKG = Path(resources.files("towerplan"))  # type: ignore[arg-type]

WARN_HELPER_MODULES = ("errors.py", "cli.py")
"""Where ``warnings.warn`` / ``.warning(`` may take a built message: the helper itself and the
CLI handler that shows Python warnings as log lines."""


def _untranslated_warnings(source: str) -> list[int]:
    """Line numbers of ``warnings.warn(...)`` and ``<logger>.warning(...)`` calls (user-facing
    warnings outside :func:`towerplan.errors.warn_user`), and of ``warn_user`` calls whose
    message is not ``N_("literal")`` (or a choice between such, or a module constant set to one).
    Debug and info logs are not user-facing and are not checked."""
    tree = parse_source(source)
    constants = {
        t.id
        for node in tree.body
        if isinstance(node, ast.Assign) and is_marked_message(node.value, set())
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    bad = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name == "warn" and isinstance(func, ast.Attribute):
            bad.append(node.lineno)
        elif name == "warning" and isinstance(func, ast.Attribute):
            bad.append(node.lineno)
        elif name == "warn_user":
            if len(node.args) != 2 or not is_marked_message(node.args[1], constants):
                bad.append(node.lineno)
    return bad


def test_untranslated_warning_detector() -> None:
    src = (
        "MSG = N_('{x}: odd')\n"
        "def f(x):\n"
        "    warnings.warn(f'{x}: odd', UserWarning)\n"
        "    logger.warning('%s: odd', x)\n"
        "    warn_user(logger, N_('{x}: odd'), x=x)\n"
        "    warn_user(logger, f'{x}: odd')\n"
        "    warn_user(logger, N_('a {x}') if x else N_('b {x}'), log_only=True, x=x)\n"
        "    warn_user(logger, MSG, x=x)\n"
        "    logger.info('%s: fine', x)\n"
        "    logger.debug('%s: fine', x)\n"
    )
    assert _untranslated_warnings(src) == [3, 4, 6]


def test_every_user_warning_in_the_package_is_translatable() -> None:
    files = [p for p in sorted(PKG.rglob("*.py")) if "locale" not in p.parts]
    assert len(files) > 50
    found = {
        rel: lines
        for p in files
        if (rel := str(p.relative_to(PKG))) not in WARN_HELPER_MODULES
        and (lines := _untranslated_warnings(p.read_text(encoding="utf-8")))
    }
    assert found == {}, (
        "warn with errors.warn_user(logger, N_('...'), ...); msgid in both catalogues"
    )


def test_warning_english_in_str_and_log_translated_on_request(caplog) -> None:
    logger = logging.getLogger("towerplan.test")
    msgid = N_("backhaul: no road network given (scenario key data.roads); all {n} routes are "
               "straight lines (method='straight_line')")  # fmt: skip
    english = (
        "backhaul: no road network given (scenario key data.roads); all 8 routes are straight "
        "lines (method='straight_line')"
    )
    with pytest.warns(UserWarning, match="no road network given") as rec:
        warn_user(logger, msgid, n=8)
    w = rec[0].message
    assert isinstance(w, TowerplanWarning) and str(w) == english
    assert caplog.messages == [english]
    with use_language("vi"):
        assert w.user_message(_) == (
            "truyền dẫn: chưa có mạng đường giao thông (khóa kịch bản data.roads); cả 8 tuyến "
            "cáp là đường thẳng (method='straight_line')"
        )
    caplog.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # log_only: no Python warning
        warn_user(logger, msgid, log_only=True, n=3)
    assert caplog.messages == [english.replace("8", "3")]
    # a Text parameter is translated with its message; pickling keeps both
    back = pickle.loads(pickle.dumps(TowerplanWarning(
        N_("{name}: {n_out} of {n_layer} {what} fall outside the study area and are {fate} "
           "(data.outside: {policy}; first: {first})"),
        name="pois", n_out=1, n_layer=2, what="POIs", fate=Text(N_("dropped")), policy="drop",
        first="P1",
    )))  # fmt: skip
    assert str(back).endswith("are dropped (data.outside: drop; first: P1)")
    with use_language("vi"):
        assert back.user_message(_) == (
            "pois: 1 trong 2 POIs nằm ngoài vùng nghiên cứu và bị bỏ (data.outside: drop; "
            "những điểm đầu tiên: P1)"
        )


def test_cli_shows_a_library_warning_once_in_the_users_language(tmp_path: Path, capsys) -> None:
    """The backhaul warning of a plan without roads (raised as a Python warning and logged):
    one stderr line, Vietnamese with --lang vi, the unchanged English text with --lang en."""
    from _city_fixture import make_city, write_scenario

    from towerplan.cli import main

    path = write_scenario(tmp_path / "city", make_city(tmp_path / "city"))
    argv = ["plan", "--scenario", str(path), "--no-maps", "--no-raster", "--overwrite"]
    assert main([*argv, "--out", str(tmp_path / "vi"), "--lang", "vi"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert [ln for ln in lines if "data.roads" in ln] == [
        "WARNING towerplan.plan: truyền dẫn: chưa có mạng đường giao thông (khóa kịch bản "
        "data.roads); cả 8 tuyến cáp là đường thẳng (method='straight_line')"
    ], lines
    assert main([*argv, "--out", str(tmp_path / "en"), "--lang", "en"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert [ln for ln in lines if "data.roads" in ln] == [
        "WARNING towerplan.plan: backhaul: no road network given (scenario key data.roads); "
        "all 8 routes are straight lines (method='straight_line')"
    ], lines


def test_validate_line_in_the_scenarios_language(tmp_path: Path, capsys) -> None:
    from _city_fixture import make_city, write_scenario

    from towerplan.cli import main

    scen = make_city(tmp_path / "city")
    path = write_scenario(tmp_path / "city", scen)
    assert main(["validate", "--scenario", str(path)]) == 0
    line = capsys.readouterr().out
    assert line == (
        f"scenario {scen['name']}: OK ({scen['data']['label']}; 2 districts, 30 existing sites, "
        "0 POIs)\n"
    )
    path = write_scenario(tmp_path / "city", {**scen, "language": "vi"})
    assert main(["validate", "--scenario", str(path)]) == 0
    assert capsys.readouterr().out == (
        f"kịch bản {scen['name']}: hợp lệ ({scen['data']['label']}; 2 quận/huyện, 30 trạm hiện có, "
        "0 điểm quan tâm)\n"
    )


def test_vietnamese_messages_write_numbers_with_a_decimal_comma() -> None:
    """Numbers formatted for display (``{n:,}``, ``{x:.1f}``) follow Vietnamese punctuation
    in the Vietnamese message; a bare ``{x}`` (a value as the user typed it) and the English
    text stay as they are; nested translatable parts too."""
    from towerplan.errors import ParameterError

    hint = Text(N_("{km:.1f} km away"), km=1234.56)
    exc = ParameterError(
        msgid=N_("{n:,} sites, {share:.1%} covered, radius_m = {r}; {hint}"),
        n=12345, share=0.5, r=0.5, hint=hint,
    )  # fmt: skip
    assert str(exc) == "12,345 sites, 50.0% covered, radius_m = 0.5; 1234.6 km away"
    same = exc.user_message(lambda m: m)
    assert same == str(exc)
    vi = exc.user_message(lambda m: m, decimal_comma=True)
    assert vi == "12.345 sites, 50,0% covered, radius_m = 0.5; 1234,6 km away"
    w = TowerplanWarning(N_("{lost:,.0f} people"), lost=1234567.0)
    assert str(w) == "1,234,567 people"
    assert w.user_message(lambda m: m, decimal_comma=True) == "1.234.567 people"


_NO_ROADS = N_("backhaul: no road network given (scenario key data.roads); all {n} routes are "
               "straight lines (method='straight_line')")  # fmt: skip
_NO_ROADS_VI = (
    "WARNING towerplan.backhaul: truyền dẫn: chưa có mạng đường giao thông (khóa kịch bản "
    "data.roads); cả 8 tuyến cáp là đường thẳng (method='straight_line')"
)


def _warn_in_worker(n: int) -> list[Any]:
    """What a worker process does: warn (twice, the same) inside ``collected_warnings``."""
    with collected_warnings() as warned:
        for _k in range(2):
            warn_user(logging.getLogger("towerplan.backhaul"), _NO_ROADS, n=n)
    return warned


def test_worker_warnings_are_shown_by_the_parent_in_the_users_language(capsys) -> None:
    """A warning raised in a worker process (a sheet worker, a Dask worker of ``batch``) is
    kept, crosses the process boundary with its msgid, and the parent's CLI log handler
    shows it once, in the user's language (the worker itself prints nothing)."""
    from towerplan.cli import _setup_logging

    methods = multiprocessing.get_all_start_methods()
    mp = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ProcessPoolExecutor(1, mp_context=mp) as ex:
        warned = ex.submit(_warn_in_worker, 8).result()
    assert [(name, w.msgid, w.params, lo) for name, w, lo in warned] == [
        ("towerplan.backhaul", _NO_ROADS, {"n": 8}, False)
    ]
    assert capsys.readouterr().err == ""
    handler, level = _setup_logging(0, False, lambda: "vi")
    try:
        with pytest.warns(TowerplanWarning, match="no road network given"):
            replay_warnings(warned)
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(level)
    assert capsys.readouterr().err.splitlines() == [_NO_ROADS_VI]


def test_sheet_and_batch_workers_return_their_warnings(monkeypatch, tmp_path: Path) -> None:
    """The sheet worker's task and the batch's Dask task return the warnings of their run
    (nothing emitted there); the sheet parent replays them."""
    from towerplan import batch
    from towerplan.outputs import sheets

    def draw(ctx: Any, task: Any) -> list[Any]:
        warn_user(logging.getLogger("towerplan.backhaul"), _NO_ROADS, n=8)
        return []

    monkeypatch.setattr(sheets, "_draw", draw)
    ctx = sheets._Context({}, {}, None, "vi", tmp_path, ("pdf",), 150)
    monkeypatch.setattr(sheets, "_WORKER", ctx)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is emitted in the worker
        files, warned = sheets._run_task(("kpi", "A4", (1, 1)))
    assert files == [] and [str(w) for _n, w, _lo in warned] == [
        str(TowerplanWarning(_NO_ROADS, n=8))
    ]

    def run_area(*args: Any) -> dict[str, Any]:
        warn_user(logging.getLogger("towerplan.backhaul"), _NO_ROADS, n=8)
        return {"code": "801", "new_sites": 1}

    monkeypatch.setattr(batch, "run_area", run_area)
    monkeypatch.setattr(batch, "area_outline", lambda area: None)
    area = batch.Area("801", "A", None, 1.0)  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec = batch._task(area, None, None, str(tmp_path))  # type: ignore[arg-type]
    assert rec["status"] == "ok" and [w.msgid for _n, w, _lo in rec["warnings"]] == [_NO_ROADS]
