"""Static map sheets: VN-2000 TM-3 grid, standard scale, title block, inset, legends,
KPI pages, embedded TrueType fonts, Vietnamese text in the PDFs."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pypdf
import pytest
from _layers_fixture import make_layers, write_signal_raster
from matplotlib.figure import Figure
from matplotlib_scalebar.scalebar import ScaleBar
from PIL import Image
from shapely.geometry import box

from towerplan.errors import CRSError, ParameterError
from towerplan.inputs._base import DEMO_STAMP
from towerplan.outputs import export, sheets


def _texts(fig: Figure) -> list[str]:
    return [
        t.get_text()
        for t in fig.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_position"))
    ]


def _legends(fig: Figure) -> list[Any]:
    return [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)]


def _legend_labels(fig: Figure) -> list[str]:
    return [t.get_text() for leg in _legends(fig) for t in leg.get_texts()]


def _pdf_text(path: Path) -> str:
    """Text of a PDF with line breaks as spaces (wrapped text reads as one line)."""
    return " ".join(" ".join(p.extract_text().split()) for p in pypdf.PdfReader(path).pages)


@pytest.fixture(scope="module")
def vi_sheets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], dict]:
    layers, summary, kpis = make_layers(n_existing=30, n_proposed=12)
    summary = dict(
        summary,
        title_block={
            "agency": "Sở Thông tin và Truyền thông thành phố Cần Thơ",
            "prepared_by": "Nguyễn Văn A",
            "checked_by": "Trần Thị B",
            "approved_by": "Lê Văn C",
            "first_sheet_number": 3,
        },
    )
    out = tmp_path_factory.mktemp("sheets")
    paths = sheets.write_sheets(
        layers,
        summary,
        kpis,
        out,
        sizes=("A4",),
        dpi=40,
        themes=("proposed_sites", "undergrounding", "wifi_hotspots"),
        lang="vi",
        per_district=True,
    )
    paths += sheets.write_sheets(
        layers,
        summary,
        None,
        out,
        sizes=("A3",),
        dpi=20,
        formats=("pdf",),
        themes=("proposed_sites",),
        lang="vi",
    )
    return out, paths, layers


def test_files_pixels_and_numbering(vi_sheets: tuple[Path, list[Path], dict]) -> None:
    out, paths, _ = vi_sheets
    stems = {p.stem for p in paths}
    districts = ["district_ninh_kieu", "district_binh_thuy", "district_phong_dien"]
    assert {"proposed_sites_A4", "undergrounding_A4", "kpi_table_A4"} <= stems
    assert {f"{d}_A4" for d in districts} <= stems
    # every theme per district but the choropleths (undergrounding: one value per district)
    assert {f"{d}_wifi_hotspots_A4" for d in districts} <= stems
    assert not any("_undergrounding" in s for s in stems if s.startswith("district_"))
    assert len(paths) == 2 * (3 + 3 * 2 + 1) + 1
    a4 = Image.open(out / "proposed_sites_A4.png")
    assert abs(a4.size[0] - 297 / 25.4 * 40) <= 1 and abs(a4.size[1] - 210 / 25.4 * 40) <= 1
    a3 = pypdf.PdfReader(out / "proposed_sites_A3.pdf").pages[0].mediabox
    assert (
        abs(float(a3.width) - 420 / 25.4 * 72) < 1 and abs(float(a3.height) - 297 / 25.4 * 72) < 1
    )
    assert np.asarray(a4.convert("L"), dtype=float).std() > 20
    # sheets 3..12 of 12 (first_sheet_number 3, ten sheets per size)
    assert "Tờ 3/12" in _pdf_text(out / "proposed_sites_A4.pdf")
    district = _pdf_text(out / "district_binh_thuy_wifi_hotspots_A4.pdf")
    assert "tại Bình Thủy" in district and "Tờ 9/12" in district
    kpi = _pdf_text(out / "kpi_table_A4.pdf")
    assert "Tờ 12/12" in kpi and "Toàn thành phố" in kpi and "Bảng chỉ tiêu theo quận/huyện" in kpi


def test_pdf_vietnamese_text_scale_and_truetype_fonts(
    vi_sheets: tuple[Path, list[Path], dict],
) -> None:
    out, _, _ = vi_sheets
    pdf = out / "proposed_sites_A3.pdf"
    text = _pdf_text(pdf)
    assert "Trạm BTS xây mới: dùng riêng và dùng chung" in text
    for entry in (
        "Trạm xây mới dùng riêng (8)",
        "Trạm xây mới dùng chung (4)",
        "Trạm BTS hiện có (30)",
        "Ranh giới quận/huyện",
        "Chú giải",
    ):
        assert entry in text, entry
    assert "Tỷ lệ 1:100.000" in text  # numeric scale of the standard series
    assert "Sở Thông tin và Truyền thông thành phố Cần Thơ" in text
    assert "Lập: Nguyễn Văn A" in text and "Duyệt: Lê Văn C" in text
    assert "X (tọa độ bắc, km)" in text and "Y (tọa độ đông, km)" in text
    reader = pypdf.PdfReader(pdf)
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            f = font.get_object()
            assert f["/Subtype"] != "/Type3", f["/BaseFont"]
            desc = f["/DescendantFonts"][0].get_object()
            assert desc["/Subtype"] == "/CIDFontType2"  # TrueType outlines
            assert "/FontFile2" in desc["/FontDescriptor"].get_object()  # embedded
    ug = _pdf_text(out / "undergrounding_A4.pdf")
    assert "Tỷ lệ ngầm hóa năm 2020 (quy hoạch)" in ug and "Tỷ lệ ngầm hóa năm 2016" in ug
    assert "50 %" in ug  # percentages, not fractions


def test_sheet_on_vn2000_tm3_at_a_standard_scale() -> None:
    layers, summary, _ = make_layers(n_existing=30, n_proposed=12)
    fig = sheets.render_sheet("proposed_sites", layers, summary, "A3")
    ax = fig.axes[0]
    d = export.reproject(layers["districts"], export.vn2000_tm3_crs(105.0))
    x0, y0, x1, y1 = d.total_bounds
    (a, b), (c, e) = ax.get_xlim(), ax.get_ylim()
    assert a <= x0 and b >= x1 and c <= y0 and e >= y1  # study area inside, in TM-3 metres
    assert 500_000 < a < 700_000 and 1_000_000 < c < 1_200_000
    box = ax.get_position(original=True)
    fig.canvas.draw()  # the limits fill the whole map box: the aspect rule shrinks nothing
    assert ax.get_position().width == pytest.approx(box.width, rel=1e-3)
    assert ax.get_position().height == pytest.approx(box.height, rel=1e-3)
    w_m = box.width * fig.get_size_inches()[0] * 0.0254
    denominator = (b - a) / w_m
    assert round(denominator) in sheets.STANDARD_SCALES
    texts = _texts(fig)
    assert f"Scale 1:{round(denominator):,}" in texts
    assert sum(isinstance(art, ScaleBar) for art in ax.artists) == 1
    assert texts.count("N") == 1  # north arrow
    ticks = [t.get_text() for t in ax.texts if t.get_text().isdigit()]  # km labels
    assert len(ticks) >= 4 and all(500 < int(t) < 700 or 1000 < int(t) < 1200 for t in ticks)
    assert any(500 < int(t) < 700 for t in ticks) and any(1000 < int(t) < 1200 for t in ticks)
    assert texts.count(DEMO_STAMP) == 2  # badge + stamp over the map
    assert any("Sheet 1 of 1" in t for t in texts) is False  # no number without a set
    assert any(t.startswith("Inset: dense core") for t in texts)
    insets = [a for a in ax.child_axes if a.get_title().startswith("Inset")]
    assert len(insets) == 1
    ix, iy = insets[0].get_xlim(), insets[0].get_ylim()
    ninh_kieu = d.geometry.iloc[0].bounds  # densest district (250,000 people on 32 km²)
    assert ix[0] <= ninh_kieu[0] and ix[1] >= ninh_kieu[2]
    assert iy[0] <= ninh_kieu[1] and iy[1] >= ninh_kieu[3]


def test_legend_never_truncated_and_inside_the_page() -> None:
    layers, summary, _ = make_layers(n_existing=10, n_proposed=4)
    w = layers["wifi_hotspots"]
    w["category"] = [f"category with a rather long descriptive name {i}" for i in range(len(w))]
    fig = sheets.render_sheet("wifi_hotspots", dict(layers, wifi_hotspots=w), summary, "A4")
    labels = [t.replace("\n", " ") for t in _legend_labels(fig)]
    for i in range(len(w)):
        full = f"Public Wi-Fi hotspots: category with a rather long descriptive name {i} (1)"
        assert full in labels  # wrapped, never cut
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    page = fig.bbox
    legends = _legends(fig)
    assert legends
    for leg in legends:
        bb = leg.get_window_extent(renderer)
        assert bb.x0 >= page.x0 and bb.x1 <= page.x1 + 1 and bb.y0 >= page.y0 - 1


def test_coverage_gaps_small_multiples() -> None:
    layers, summary, _ = make_layers(n_existing=30, n_proposed=12)
    fig = sheets.render_sheet("coverage_gaps", layers, summary, "A3")
    ops = sorted(layers["coverage_gaps"]["operator"].unique())
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert [t.split("\n")[0] for t in titles] == ops
    g = layers["coverage_gaps"]
    for op, t in zip(ops, titles, strict=True):
        before = g[(g["operator"] == op) & (g["stage"] == "before")]["population"].sum()
        assert f"{before:,.0f} before" in t


def test_every_theme_renders_with_missing_layers() -> None:
    layers, summary, _ = make_layers(n_existing=10, n_proposed=4)
    minimal = {"districts": layers["districts"], "existing_sites": layers["existing_sites"]}
    for theme in sheets.THEMES:
        fig = sheets.render_sheet(theme, minimal, summary, "A4")  # type: ignore[arg-type]
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=20)
        assert buf.tell() > 1000
    fig = sheets.render_sheet("sharing_candidates", minimal, summary, "A4")  # type: ignore[arg-type]
    assert any("This plan has no sharing_candidates layer." in t for t in _texts(fig))


def test_signal_level_sheet_discrete_scale(tmp_path: Path) -> None:
    layers, summary, _ = make_layers(n_existing=10, n_proposed=4)
    tif = write_signal_raster(tmp_path, layers)
    fig = sheets.render_sheet("signal_level", layers, summary, "A4", best_server=tif)
    labels = _legend_labels(fig)
    assert "≥ -75 dBm" in labels and "< -105 dBm" in labels and "-95 … -85 dBm" in labels
    assert len(fig.axes[0].images) == 1


def test_kpi_pages_percentages_total_row_headers() -> None:
    _, summary, kpis = make_layers(n_existing=10, n_proposed=4)
    kpis = kpis.assign(coverage_any_after=[0.9, 0.95, 0.8])
    (page,) = sheets.render_kpi_pages(kpis, summary, "A3", lang="vi")
    texts = _texts(page)
    assert "Toàn thành phố" in texts  # city total row
    assert "470.000" in texts  # population total, Vietnamese separators
    pop = kpis["population"].to_numpy()
    total_cov = float((kpis["coverage_any_after"] * pop).sum() / pop.sum())
    assert f"{100 * total_cov:.1f} %".replace(".", ",") in texts
    assert "90,0 %" in texts and "0.9" not in texts
    assert any("Dân số" in t for t in texts) and "Phong Điền" in texts
    assert texts.count("DỮ LIỆU MINH HỌA: TRẠM GIẢ LẬP") == 1


def test_mathtext_and_markup_in_names_are_plain_text() -> None:
    layers, summary, _ = make_layers(n_existing=10, n_proposed=4, evil=True)
    layers["districts"] = layers["districts"].assign(
        district=["Quận $x^2$", "50$ & 20%", "<b>bold</b>"]
    )
    fig = sheets.render_sheet("overview", layers, summary, "A4")
    fig.savefig(io.BytesIO(), format="png", dpi=20)  # would raise on broken mathtext
    texts = _texts(fig)
    assert r"Quận \$x^2\$" in texts and "<b>bold</b>" in texts


def test_errors(tmp_path: Path) -> None:
    layers, summary, kpis = make_layers(n_existing=5, n_proposed=3)
    with pytest.raises(ParameterError, match="sheet size"):
        sheets.render_sheet("overview", layers, summary, "Letter")
    with pytest.raises(ParameterError, match="unknown sheet theme"):
        sheets.render_sheet("heat", layers, summary)
    with pytest.raises(ParameterError, match="dpi"):
        sheets.write_sheets(layers, summary, kpis, tmp_path, dpi=5)
    with pytest.raises(ParameterError, match="formats"):
        sheets.write_sheets(layers, summary, kpis, tmp_path, formats=("svg",))
    with pytest.raises(ParameterError, match="language"):
        sheets.render_sheet("overview", layers, summary, lang="fr")
    bad = dict(layers, roads=layers["roads"].set_crs(None, allow_override=True))
    with pytest.raises(CRSError, match="roads"):
        sheets.render_sheet("overview", bad, summary)


def test_worker_processes_write_the_same_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # the PDFs' creation date
    layers, summary, kpis = make_layers(n_existing=10, n_proposed=4)
    gaps = layers["coverage_gaps"].copy()  # an area no operator covers after the plan
    x0, y0, _x1, _y1 = gaps.total_bounds
    after = (gaps["stage"] == "after").to_numpy()
    gaps.loc[after, "geometry"] = gaps.geometry[after].union(box(x0, y0, x0 + 900, y0 + 900))
    layers = dict(layers, coverage_gaps=gaps)
    kw = {"sizes": ("A4",), "dpi": 20, "themes": ("overview",)}
    one = sheets.write_sheets(layers, summary, kpis, tmp_path / "one", workers=1, **kw)
    two = sheets.write_sheets(layers, summary, kpis, tmp_path / "two", workers=2, **kw)
    assert [p.name for p in one] == [p.name for p in two]
    assert [p.name for p in one] == [
        f"{s}_A4.{e}" for s in ("overview", "kpi_table") for e in ("pdf", "png")
    ]
    for a, b in zip(one, two, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    # the overview was drawn by this process, with the all-operator gaps computed while the
    # worker drew the KPI page; with no other sheet the workers draw it, the same
    deferred = sheets._deferred_layers(layers, summary, sheets._settings_from(summary))
    assert len(deferred["coverage_gaps_all"]) == 1
    alone = [
        sheets.write_sheets(layers, summary, None, tmp_path / f"alone{n}", workers=n, **kw)
        for n in (1, 2)
    ]
    assert [[p.read_bytes() for p in files] for files in alone] == [
        [p.read_bytes() for p in alone[0]]
    ] * 2


def test_remembered_shaping_writes_matplotlibs_pdf(monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.backends import backend_pdf

    from towerplan.outputs import _pdftext

    if not _pdftext.supported():
        pytest.skip(f"the memo follows matplotlib {_pdftext.VERIFIED_MATPLOTLIB} only")

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    layers, summary, _ = make_layers(n_existing=10, n_proposed=4)
    fig = sheets.render_sheet("overview", layers, summary, "A4", lang="vi")
    stock = io.BytesIO()
    with mpl.rc_context(sheets._rc()):
        fig.savefig(stock, format="pdf")
        remembered = []
        for _ in range(2):  # the second time from the memo
            buf = io.BytesIO()
            with _pdftext.remembered_shaping():
                assert backend_pdf.RendererPdf is not _pdftext._ACTIVE[0]
                fig.savefig(buf, format="pdf")
            remembered.append(buf.getvalue())
    assert remembered == [stock.getvalue()] * 2
    assert not _pdftext._ACTIVE and backend_pdf.RendererPdf.__module__ == backend_pdf.__name__
    assert "Ranh giới quận/huyện" in " ".join(
        p.extract_text() for p in pypdf.PdfReader(io.BytesIO(remembered[1])).pages
    )


def test_png_writer_round_trip() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    meta = {"Title": "towerplan - Cần Thơ", "Software": "towerplan"}
    img = Image.open(io.BytesIO(sheets._png(rgb[:, ::-1], 150, meta)))  # a strided view
    assert img.mode == "RGB" and img.size == (5, 7)
    assert np.array_equal(np.asarray(img), rgb[:, ::-1])
    assert img.info["Title"] == meta["Title"] and img.info["Software"] == "towerplan"
    assert img.info["dpi"] == pytest.approx((150, 150), abs=0.05)  # pixels per metre


def test_a_zoomed_sheet_draws_only_what_it_shows() -> None:
    layers, summary, _ = make_layers(n_existing=30, n_proposed=12)
    d = export.reproject(layers["districts"], export.vn2000_tm3_crs(105.0))
    ext = d.geometry.iloc[0].bounds
    fig = sheets.render_sheet("proposed_sites", layers, summary, "A4", extent=ext)
    ax = fig.axes[0]
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    mx, my = 0.05 * (x1 - x0), 0.05 * (y1 - y0)
    drawn = np.concatenate([c.get_offsets() for c in ax.collections if len(c.get_offsets()) > 1])
    assert 0 < len(drawn) < len(layers["existing_sites"]) + len(layers["proposed_sites"])
    assert (drawn[:, 0] >= x0 - mx).all() and (drawn[:, 0] <= x1 + mx).all()
    assert (drawn[:, 1] >= y0 - my).all() and (drawn[:, 1] <= y1 + my).all()
    legend = " ".join(_legend_labels(fig))
    assert "(30)" in legend  # the legend still counts the whole layer


def test_other_matplotlib_versions_write_pdfs_as_usual(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside the verified matplotlib series the memo stays out of the way."""
    from matplotlib.backends import backend_pdf

    from towerplan.outputs import _pdftext

    monkeypatch.setattr(_pdftext, "VERIFIED_MATPLOTLIB", (0, 0))
    stock = backend_pdf.RendererPdf
    with _pdftext.remembered_shaping():
        assert backend_pdf.RendererPdf is stock and not _pdftext._ACTIVE
    assert not _pdftext.supported()


def test_plan_jobs_flag_reaches_the_sheet_writer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``towerplan plan --sheets --jobs N`` draws the sheets with N processes."""
    import towerplan.plan as tplan
    from towerplan.cli import main

    seen: dict[str, object] = {}

    def fake_run_plan(*args: object, **kw: object) -> None:
        seen.update(kw)
        raise ParameterError("stop here")

    monkeypatch.setattr(tplan, "run_plan", fake_run_plan)
    argv = ["plan", "--scenario", "cantho-2020", "--out", str(tmp_path / "o"), "--sheets"]
    assert main([*argv, "--jobs", "3"]) == 2
    assert seen["jobs"] == 3 and seen["sheets"] is True
    assert main(argv) == 2 and seen["jobs"] is None
    capsys.readouterr()
