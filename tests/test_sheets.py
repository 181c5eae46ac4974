"""Static map sheets: files, paper sizes, stamp, legend, scale bar, KPI pages."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from _layers_fixture import make_layers
from matplotlib.figure import Figure
from matplotlib_scalebar.scalebar import ScaleBar
from PIL import Image

from towerplan.errors import CRSError, ParameterError
from towerplan.inputs._base import DEMO_KIND, DEMO_STAMP
from towerplan.outputs import sheets


def _texts(fig: Figure) -> list[str]:
    return [
        t.get_text()
        for t in fig.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_position"))
    ]


def _cells(fig: Figure) -> list[str]:
    return [
        c.get_text().get_text()
        for ax in fig.axes
        for t in ax.tables
        for c in t.get_celld().values()
    ]


def _legend_labels(fig: Figure) -> list[str]:
    out = []
    for ax in fig.axes:
        leg = ax.get_legend()
        for artist in ax.artists + ([leg] if leg else []):
            if hasattr(artist, "get_texts"):
                out += [t.get_text() for t in artist.get_texts()]
    return out


def test_write_sheets_files_and_pixels(tmp_path: Path) -> None:
    layers, summary, kpis = make_layers(n_existing=30, n_proposed=12)
    paths = sheets.write_sheets(
        layers, summary, kpis, tmp_path, sizes=("A4", "A3"), dpi=40, themes=("overview",)
    )
    names = sorted(p.name for p in paths)
    assert names == sorted(
        [
            "overview_A4.pdf",
            "overview_A4.png",
            "overview_A3.pdf",
            "overview_A3.png",
            "kpi_table_A4_1.pdf",
            "kpi_table_A4_1.png",
            "kpi_table_A4_2.pdf",
            "kpi_table_A4_2.png",
            "kpi_table_A3.pdf",
            "kpi_table_A3.png",
        ]
    )
    for p in paths:
        assert p.stat().st_size > 5000
        if p.suffix == ".pdf":
            assert p.read_bytes()[:5] == b"%PDF-"
    a4 = Image.open(tmp_path / "overview_A4.png")
    a3 = Image.open(tmp_path / "overview_A3.png")
    assert abs(a4.size[0] - 297 / 25.4 * 40) <= 1 and abs(a4.size[1] - 210 / 25.4 * 40) <= 1
    assert abs(a3.size[0] - 420 / 25.4 * 40) <= 1 and abs(a3.size[1] - 297 / 25.4 * 40) <= 1
    px = np.asarray(a4.convert("L"), dtype=float)
    assert px.std() > 20  # not blank
    assert (px < 100).mean() > 0.005  # dark ink: text, points, boundaries


def test_sheet_elements_and_demo_stamp() -> None:
    layers, summary, _ = make_layers(n_existing=30, n_proposed=12)
    fig = sheets.render_sheet("proposed_sites", layers, summary, "A4")
    texts = _texts(fig)
    assert texts.count(DEMO_STAMP) == 2  # header badge + stamp over the map
    assert _texts(fig).count("N") == 1  # north arrow
    assert sum(isinstance(a, ScaleBar) for a in fig.axes[0].artists) == 1
    for name in layers["districts"]["district"]:
        assert name in texts
    pr = layers["proposed_sites"]
    n_ded = int((pr["site_type"] == "dedicated").sum())
    labels = _legend_labels(fig)
    assert f"New dedicated sites ({n_ded})" in labels
    assert f"New shared sites ({len(pr) - n_ded})" in labels
    assert "Existing sites (30)" in labels
    footer = next(t for t in texts if t.startswith("Data: "))
    assert DEMO_KIND in footer and "towerplan" in footer
    assert any("Districts are schematic rectangles" in t for t in texts)
    real = dict(summary, data_kind="user-data", generated="2025-01-31")
    fig2 = sheets.render_sheet("proposed_sites", layers, real, "A4")
    t2 = _texts(fig2)
    assert DEMO_STAMP not in t2
    assert any("Data: user-data" in t and "2025-01-31" in t for t in t2)


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
    assert any("No 'sharing_candidates' layer in this plan." in t for t in _texts(fig))


def test_kpi_pages_split_columns() -> None:
    _, summary, kpis = make_layers(n_existing=10, n_proposed=4)
    a4 = sheets.render_kpi_pages(kpis, summary, "A4")
    a3 = sheets.render_kpi_pages(kpis, summary, "A3")
    n_cols = len(kpis.columns) - 1
    assert len(a4) == -(-n_cols // 11) and len(a3) == -(-n_cols // 15)
    cells = _cells(a3[0])
    assert len(cells) == (len(kpis) + 1) * len(kpis.columns)
    assert "250,000" in cells and "0.61" in cells and "Phong Điền" in cells
    assert _texts(a3[0]).count(DEMO_STAMP) == 1


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
    bad = dict(layers, roads=layers["roads"].set_crs(None, allow_override=True))
    with pytest.raises(CRSError, match="roads"):
        sheets.render_sheet("overview", bad, summary)
