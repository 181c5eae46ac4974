"""Languages: every user-facing string is in both gettext catalogues, the compiled
catalogues match their sources, and the language switch reaches every output."""

from __future__ import annotations

import dataclasses
import pickle
import re
from importlib import resources
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from conftest import is_marked_message, parse_source

from towerplan import _i18n
from towerplan._i18n import _, fmt_number, fmt_percent, use_language
from towerplan.errors import ParameterError, ScenarioError
from towerplan.scenario import load_scenario, scenario_from_dict

PKG = Path(resources.files("towerplan"))  # type: ignore[arg-type]
LOCALE = PKG / "locale"
PLACEHOLDER = re.compile(r"\{(\w*(?:![rsa])?(?::[^{}]*)?)\}")  # {name}, {name!r}, {name:.1f}


def _catalog(lang: str):  # type: ignore[no-untyped-def]
    with open(LOCALE / lang / "LC_MESSAGES" / "towerplan.po", "rb") as fh:
        return read_po(fh)


def _source_messages() -> set[str]:
    """Every string marked with _() or N_() in the package, extracted as Babel does."""
    msgs = set()
    for _fn, _lineno, message, _comments, _ctx in extract_from_dir(
        str(PKG), method_map=[("**.py", "python")], keywords={"_": None, "N_": None}
    ):
        msgs.add(message if isinstance(message, str) else message[0])
    return msgs


@pytest.fixture(scope="module")
def source_messages() -> set[str]:
    return _source_messages()


@pytest.mark.parametrize("lang", _i18n.LANGUAGES)
def test_every_user_string_is_in_the_catalogue(lang: str, source_messages: set[str]) -> None:
    cat = _catalog(lang)
    translated = {m.id: m.string for m in cat if m.id}
    missing = sorted(m for m in source_messages if not translated.get(m))
    assert missing == [], f"{lang}: untranslated or missing (run the pybabel steps in _i18n.py)"
    stale = sorted(set(translated) - source_messages)
    assert stale == [], f"{lang}: entries no longer used in the code"
    assert not any(m.fuzzy for m in cat if m.id)


def test_vietnamese_translations_keep_placeholders() -> None:
    cat = [m for m in _catalog("vi") if m.id]
    for m in cat:
        assert set(PLACEHOLDER.findall(m.id)) == set(PLACEHOLDER.findall(m.string)), m.id
    assert [m.id for m in cat if m.string == m.id] == []  # every entry really translated


@pytest.mark.parametrize("lang", _i18n.LANGUAGES)
def test_compiled_catalogue_matches_its_source(lang: str) -> None:
    po = {m.id: m.string for m in _catalog(lang) if m.id}
    with open(LOCALE / lang / "LC_MESSAGES" / "towerplan.mo", "rb") as fh:
        mo = {m.id: m.string for m in read_mo(fh) if m.id}
    assert mo == po, "towerplan.mo is stale: pybabel compile -d towerplan/locale -D towerplan"


def test_language_switch_and_number_formats() -> None:
    assert _("Existing BTS sites") == "Existing BTS sites"
    with use_language("vi"):
        assert _("Existing BTS sites") == "Trạm BTS hiện có"
        assert _("New shared sites") == "Trạm xây mới dùng chung"
        assert _("Not covered by any operator after the plan").startswith("Vùng lõm sóng")
        assert fmt_number(1234567.5, 1) == "1.234.567,5"
        assert fmt_percent(0.764) == "76,4 %"
        with use_language("en"):
            assert fmt_number(1234567.5, 1) == "1,234,567.5"
        assert _i18n.current_language() == "vi"
    assert _i18n.current_language() == "en"
    assert fmt_number(float("nan")) == "-"
    with pytest.raises(ParameterError, match="--lang"):
        with use_language("fr"):
            pass


def test_scenario_language_and_title_block() -> None:
    for name in ("cantho-2020", "cantho-2030"):
        s = load_scenario(name)
        assert s.language == "vi"
        assert s.title_block.agency.startswith("Sở Thông tin và Truyền thông")
    raw = load_scenario("cantho-2020").to_dict()
    raw["language"] = "fr"
    with pytest.raises(ScenarioError, match="'language' must be one of"):
        scenario_from_dict(raw)
    raw["language"] = "en"
    raw["title_block"] = {"first_sheet_number": 0}
    with pytest.raises(ScenarioError, match=r"title_block\.first_sheet_number"):
        scenario_from_dict(raw)
    raw["title_block"] = {"first_sheet_number": 5, "sheet_count": 3}
    with pytest.raises(ScenarioError, match=r"title_block\.sheet_count"):
        scenario_from_dict(raw)
    raw["title_block"] = {"prepared_by": 7}
    with pytest.raises(ScenarioError, match=r"title_block\.prepared_by"):
        scenario_from_dict(raw)


def test_locale_files_are_package_data() -> None:
    text = (PKG.parent / "pyproject.toml").read_text(encoding="utf-8")
    assert '"locale/*/LC_MESSAGES/*.mo"' in text and '"babel' in text and '"pypdf' in text


def test_demo_stamp_msgid_matches_the_inputs_constant() -> None:
    from towerplan.inputs._base import DEMO_STAMP
    from towerplan.outputs._themes import DEMO_STAMP_MSG

    assert DEMO_STAMP_MSG == DEMO_STAMP


def test_error_messages_translated_for_the_user_english_in_logs(tmp_path: Path, capsys) -> None:
    from towerplan.cli import main
    from towerplan.errors import OutputError
    from towerplan.scenario import load_scenario

    exc = OutputError(msgid="--out {out}: exists and is a file; give a folder path", out="x")
    assert str(exc) == "--out x: exists and is a file; give a folder path"
    with use_language("vi"):
        assert exc.user_message(_) == "--out x: đã tồn tại và là một tệp; hãy cho đường dẫn thư mục"
    assert OutputError("plain").user_message(_) == "plain"
    argv = ["plan", "--scenario", "nowhere.yaml", "--out", str(tmp_path / "o")]
    assert main([*argv, "--lang", "vi"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("towerplan: error: tệp kịch bản nowhere.yaml: không tìm thấy"), err
    assert main(argv) == 2  # no --lang, no scenario: the environment's language (English here)
    with pytest.raises(ScenarioError, match="not found"):  # the library keeps English
        load_scenario("nowhere.yaml")


def test_demo_notes_caption_and_solver_text_in_vietnamese() -> None:
    from towerplan.cli import _solver_text
    from towerplan.inputs._base import DEMO_KIND
    from towerplan.inputs.demo import NOTES
    from towerplan.plan import DEMO_CAPTION

    with use_language("vi"):
        for text in (*NOTES, DEMO_KIND, DEMO_CAPTION):
            assert _i18n.data_text(text) != text, text
        assert (
            _i18n.data_text("a note from the user's own data") == "a note from the user's own data"
        )
        assert _i18n.data_text("") == ""
        siting = {"solver_used": "auto: heuristic", "gap": 0.069, "stopped_by": "work_limit"}
        text = _solver_text(siting)
        assert "6,90 %" in text and "sites.work_limit" in text and "heuristic" not in text
        assert _solver_text({"solver_used": "exact", "proven_optimal": True}).startswith("tối ưu")
    assert _solver_text(siting) == "auto: heuristic"
    for name in ("cantho-2020", "cantho-2030"):  # Vietnamese scenarios: Vietnamese titles
        s = load_scenario(name)
        assert s.title.startswith("Quy hoạch") and s.source.startswith("Quyết định")


def test_cli_help_and_usage_errors_in_the_chosen_language(capsys, monkeypatch) -> None:
    from towerplan.cli import main

    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(var, raising=False)
    assert main(["plan", "--help", "--lang", "vi"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("cách dùng: towerplan plan")
    assert "thư mục kết quả (mới hoặc rỗng)" in out and "hiện hướng dẫn này rồi thoát" in out
    assert "tùy chọn:" in out and "output folder" not in out
    assert main(["plan", "--lang=vi", "--scenario", "cantho-2020"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "towerplan: error: thiếu các tham số bắt buộc: --out; xem 'towerplan plan --help'\n"
    )
    assert main(["need", "--scenario", "x", "--coverage", "abc", "--lang", "vi"]) == 2
    assert (
        "tham số --coverage: giá trị không hợp lệ 'abc' (cần kiểu float)" in capsys.readouterr().err
    )
    assert main(["plan", "--scenario", "x", "--out", "o", "--work-limit", "0", "--lang", "vi"]) == 2
    assert "'0' phải là số hữu hạn > 0, ví dụ --work-limit 0.1" in capsys.readouterr().err
    # English by default; the environment's language when no --lang is given
    assert main(["plan", "--scenario", "cantho-2020"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "towerplan: error: the following arguments are required: --out; "
        "see 'towerplan plan --help'\n"
    )
    monkeypatch.setenv("LANG", "vi_VN.UTF-8")
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "Quy hoạch trạm thu phát sóng di động (BTS)" in out and "lệnh:" in out


def test_infeasible_quotas_reach_the_cli_in_vietnamese_as_one_line(tmp_path: Path, capsys) -> None:
    """A siting error raised deep in the library (more new sites than candidates) is shown
    in the chosen language on one stderr line, and word for word in English with --lang en."""
    from _city_fixture import make_city, write_scenario

    from towerplan.cli import main

    scen = make_city(tmp_path / "city")
    scen["sites"].update(total=230, new=200, new_dedicated=150, new_shared=50)
    scen["sites"]["candidate_spacing_m"] = 2000
    path = write_scenario(tmp_path / "city", scen)
    argv = ["plan", "--scenario", str(path), "--out", str(tmp_path / "o"), "--no-maps"]
    assert main([*argv, "--no-raster", "--lang", "vi"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(
        "towerplan: error: n_dedicated + n_shared = 200 cột anten mới nhưng chỉ có "
    )
    n = int(err.split("chỉ có ")[1].split()[0])
    assert 0 < n < 200 and err.rstrip().endswith("hoặc giảm hạn mức"), err
    assert not (tmp_path / "o").exists()
    assert main([*argv, "--no-raster", "--lang", "en"]) == 2
    assert capsys.readouterr().err == (
        f"towerplan: error: n_dedicated + n_shared = 200 new structures but only {n} candidates; "
        "generate more candidates (smaller spacing_m) or lower the quotas\n"
    )


def test_infrastructure_and_output_errors_in_vietnamese(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """An infrastructure error translated with its numbers in place, and an output error
    that wraps the GIS library's own text (kept as it is) reaching the CLI on one line in
    the environment's language (``export`` has no --lang)."""
    from towerplan.cli import main
    from towerplan.errors import DataFileError
    from towerplan.infrastructure.undergrounding import Milestone
    from towerplan.outputs.export import export_from_gpkg

    ms = Milestone(year=2030, urban_min=0.5, rural_min=1.25, city_min=0.5, city_max=0.6)
    with pytest.raises(ParameterError) as info:
        ms.check()
    assert str(info.value) == (
        "milestone 2030: rural_min = 1.25 is not a share between 0 and 1 (targets above 100 % "
        "are impossible); write 50 % as 0.5"
    )
    with use_language("vi"):
        assert info.value.user_message(_) == (
            "mốc 2030: rural_min = 1.25 không phải tỷ lệ trong khoảng 0 đến 1 (chỉ tiêu trên "
            "100 % là không thể); hãy viết 50 % thành 0.5"
        )
    src = tmp_path / "run"
    src.mkdir()
    (src / "towerplan.gpkg").write_bytes(b"not a GeoPackage\n" * 8)
    with pytest.raises(DataFileError) as bad:
        export_from_gpkg(src, tmp_path / "x")
    problem = str(bad.value.params["problem"])
    assert problem and str(bad.value).endswith(f"({problem}); is it a .gpkg file?")
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "vi_VN.UTF-8")
    assert main(["export", "--from", str(src), "--out", str(tmp_path / "exp")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(
        f"towerplan: error: {src / 'towerplan.gpkg'}: không đọc được GeoPackage ("
    )
    assert err.endswith("); đây có phải tệp .gpkg không?\n") and " ".join(problem.split()) in err
    assert not (tmp_path / "exp").exists()


TRANSLATED_ERROR_MODULES = (
    "inputs/*.py",
    "scenario.py",
    "demand.py",
    "coverage.py",
    "_validate.py",
    "propagation.py",
    "plan.py",
    "cli.py",
    "kpis.py",
    "capacity.py",
    "_raster.py",
    "batch.py",
    "__init__.py",
    "siting/*.py",
    "infrastructure/*.py",
    "outputs/*.py",
)
"""Modules (globs under towerplan/) whose every ``raise <TowerplanError subclass>(...)``
must carry ``msgid=N_(...)`` so that the CLI can show it in the user's language."""


def _untranslated_raises(source: str) -> list[int]:
    """Line numbers of ``raise XError(...)`` (X a TowerplanError subclass) in ``source``
    without a ``msgid=`` built from ``N_("literal")`` (or a choice between such calls)."""
    import ast

    from towerplan import errors

    names = {
        n
        for n, obj in vars(errors).items()
        if isinstance(obj, type) and issubclass(obj, errors.TowerplanError)
    }

    bad = []
    for node in ast.walk(parse_source(source)):
        if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
            continue
        func = node.exc.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name not in names:
            continue
        msgid = [k.value for k in node.exc.keywords if k.arg == "msgid"]
        if node.exc.args or not msgid or not is_marked_message(msgid[0]):
            bad.append(node.lineno)
    return bad


def test_untranslated_raise_detector_catches_plain_messages() -> None:
    src = (
        "def f(x):\n"
        "    raise ScenarioError(f'{x}: bad')\n"
        "def g(x):\n"
        "    raise errors.ColumnError('plain ' + x)\n"
        "def h(x):\n"
        "    raise ParameterError(msgid=N_('{x}: bad'), x=x)\n"
        "def k(x):\n"
        "    raise ValueError(f'{x}: not a towerplan error')\n"
        "def m(x, text):\n"
        "    raise StageError(msgid=text, x=x)\n"
    )
    assert _untranslated_raises(src) == [2, 4, 10]


def test_every_user_error_in_the_covered_modules_is_translatable() -> None:
    files = sorted({p for pattern in TRANSLATED_ERROR_MODULES for p in PKG.glob(pattern)})
    assert len(files) >= len(TRANSLATED_ERROR_MODULES)
    found = {
        str(p.relative_to(PKG)): lines
        for p in files
        if (lines := _untranslated_raises(p.read_text(encoding="utf-8")))
    }
    assert found == {}, "raise these with msgid=N_('...') and add the msgid to both catalogues"


def test_input_error_with_translated_hint_reaches_the_cli_in_vietnamese(
    tmp_path: Path, capsys
) -> None:
    """An input error whose label, hint and row list are translated parts (errors.Text):
    one Vietnamese stderr line with --lang vi, the unchanged English text with --lang en."""
    from _city_fixture import make_city, write_scenario

    from towerplan.cli import main
    from towerplan.errors import ColumnError, Text
    from towerplan.inputs._common import _rows_text

    scen = make_city(tmp_path / "city")
    scen["data"]["existing_sites"]["columns"].update(lon="lat", lat="lon")  # swapped
    path = write_scenario(tmp_path / "city", scen)
    argv = ["plan", "--scenario", str(path), "--out", str(tmp_path / "o"), "--no-maps"]
    assert main([*argv, "--lang", "vi"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    sites = tmp_path / "city" / "sites.csv"
    assert err.startswith(
        f"towerplan: error: tệp trạm {sites}: 30 trong 30 trạm nằm ngoài vùng nghiên cứu; "
        "có phải lon và lat bị đổi chỗ? có lẽ đúng vậy: đổi chỗ sẽ đưa 30 điểm vào trong; "
        "hãy sửa khai báo cột, ví dụ columns: {lon: lon, lat: lat} (những điểm đầu tiên "
        "nằm ngoài: S000, S001, "
    ), err
    assert err.endswith(
        "S004 ... (tổng cộng 30)); hoặc đặt data.outside: drop trong kịch bản để bỏ chúng\n"
    )
    assert not (tmp_path / "o").exists()
    assert main([*argv, "--lang", "en"]) == 2
    assert capsys.readouterr().err == (
        f"towerplan: error: sites file {sites}: 30 of 30 sites fall outside the study area; "
        "are lon and lat swapped? yes, likely: swapping them would put 30 of them inside; fix "
        "the column mapping, e.g. columns: {lon: lon, lat: lat} (first outside: "
        f"{', '.join(f'S{i:03d}' for i in range(5))} ... (30 in all)); or set data.outside: "
        "drop in the scenario to drop them\n"
    )
    # a Text inside a Text inside an error: each part in the user's language, English str()
    rows = _rows_text(range(12))
    assert isinstance(rows, Text) and rows == "0, 1, 2, 3, 4, 5, 6, 7, 8, 9 ... (12 in all)"
    exc = ColumnError(
        msgid="{name}: missing column(s) {missing}; {fix}",
        name="x",
        missing=["a"],
        fix=Text("see docs/ARCHITECTURE.md"),
    )
    with use_language("vi"):
        assert exc.user_message(_) == "x: thiếu cột ['a']; xem docs/ARCHITECTURE.md"
        assert (
            Text("{text} ... ({n} in all)", text=rows, n=3)
            .user_message(_)
            .endswith("(tổng cộng 12) ... (tổng cộng 3)")
        )
    assert str(exc) == "x: missing column(s) ['a']; see docs/ARCHITECTURE.md"
    # an error crosses a process boundary (batch, sheet workers) with its translatable parts
    hint = Text(
        "fix the column mapping, e.g. columns: {{lon: {lat}, lat: {lon}}}", lat="y", lon="x"
    )
    back = pickle.loads(pickle.dumps(ColumnError(msgid="{label}: {hint}", label=rows, hint=hint)))
    assert str(back) == f"{rows}: fix the column mapping, e.g. columns: {{lon: y, lat: x}}"
    with use_language("vi"):
        assert back.user_message(_) == (
            "0, 1, 2, 3, 4, 5, 6, 7, 8, 9 ... (tổng cộng 12): hãy sửa khai báo cột, ví dụ "
            "columns: {lon: y, lat: x}"
        )


def test_output_folder_problem_translated_with_its_message(tmp_path: Path, monkeypatch) -> None:
    """The reason an --out folder cannot be used is a translated part of the message."""
    from towerplan.errors import OutputError
    from towerplan.outputs import folder

    monkeypatch.setattr(folder.os, "access", lambda *_a, **_k: False)  # as for a non-root user
    with pytest.raises(OutputError) as info:
        folder.check_out_dir(tmp_path / "new" / "out", overwrite=False)
    assert str(info.value) == (
        f"--out {tmp_path / 'new' / 'out'}: {tmp_path} is not writable (permission denied); "
        "choose a writable folder"
    )
    with use_language("vi"):
        assert info.value.user_message(_) == (
            f"--out {tmp_path / 'new' / 'out'}: không ghi được vào {tmp_path} (không có quyền "
            "truy cập); hãy chọn thư mục ghi được"
        )


def test_every_progress_bar_label_is_translated() -> None:
    """``desc`` and ``unit`` of every ``tqdm(...)`` call in the package go through ``_()``."""
    import ast

    calls = 0
    for path in sorted(PKG.rglob("*.py")):
        for node in ast.walk(parse_source(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "tqdm":
                calls += 1
                for kw in node.keywords:
                    if kw.arg in ("desc", "unit"):
                        v = kw.value
                        ok = isinstance(v, ast.Call) and getattr(v.func, "id", None) == "_"
                        assert ok, f"{path.name}:{node.lineno}: tqdm {kw.arg} not through _()"
    assert calls >= 3


def test_plan_progress_bar_in_the_scenarios_language(monkeypatch) -> None:
    from towerplan import plan

    seen: dict[str, object] = {}

    class Bar:
        def __init__(self, **kw: object) -> None:
            seen.update(kw)

        def __enter__(self) -> Bar:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def set_postfix_str(self, text: str) -> None:
            seen["postfix"] = text

        def update(self, n: int) -> None:
            return None

    monkeypatch.setattr(plan, "tqdm", Bar)
    monkeypatch.setattr(plan, "run_stage", lambda name, state: state)
    scen = load_scenario("cantho-2020")
    assert scen.language == "vi"
    plan.run_stages(plan.PlanState(scen), ["siting"])
    assert (seen["desc"], seen["unit"], seen["postfix"]) == (
        "towerplan: lập quy hoạch",
        "bước",
        "chọn vị trí trạm mới",
    )
    plan.run_stages(plan.PlanState(dataclasses.replace(scen, language="en")), ["siting"])
    assert (seen["desc"], seen["unit"], seen["postfix"]) == (
        "towerplan plan",
        "stage",
        "choice of the new sites",
    )
