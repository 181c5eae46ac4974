"""Static map sheets (PDF and PNG, A4/A3 landscape) for appraisal dossiers.

One sheet per theme of the registry (:data:`towerplan.outputs._themes.THEMES`)
plus KPI table page(s), and optionally one sheet per district
(``per_district=True``, CLI ``--sheets-per-district``).  Every sheet is drawn in
the scenario's VN-2000 TM-3 zone (``export.vn2000_central_meridian``; Cần Thơ:
105°00′, k0 = 0.9999, EPSG:5897) through the scenario's datum transformation,
at a numeric scale of the standard series (:data:`STANDARD_SCALES`) printed
beside the scale bar, with a labelled kilometre grid (X = northing, Y =
easting), a north arrow (grid north), a title block (agency, project, sheet
number and count, date, prepared / checked / approved: scenario
``title_block``), an inset of the dense core on site themes, a legend that is
never cut (labels wrap, the font shrinks when entries are many), and, on the
built-in demo, the demo stamp (``DEMO_STAMP``).  Text is in the plan's language
(gettext) and fonts are embedded TrueType (``pdf.fonttype = 42``; DejaVu Sans
has the Vietnamese glyphs).

Rendering uses matplotlib's object API with the Agg/PDF backends (no pyplot
state).  Shapes go to matplotlib as path collections built directly from
shapely (polygons simplified to 0.2 mm on paper).  Text from data is
protected from mathtext (``$``).
"""

from __future__ import annotations

import datetime as _dt
import functools
import gc
import hashlib
import io
import logging
import math
import os
import re
import textwrap
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import geopandas as gpd
import matplotlib as mpl
import numpy as np
import pandas as pd
import shapely
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.markers import TICKDOWN, TICKLEFT, TICKRIGHT, TICKUP, MarkerStyle
from matplotlib.patches import Patch, Rectangle
from matplotlib.path import Path as MplPath
from matplotlib.text import Annotation, Text
from matplotlib.transforms import Bbox, BboxTransformTo, TransformedBbox
from matplotlib_scalebar.scalebar import ScaleBar

from towerplan import __version__
from towerplan._i18n import (
    N_,
    _,
    current_language,
    data_text,
    fmt_number,
    fmt_percent,
    use_language,
)
from towerplan.errors import (
    CollectedWarning,
    CRSError,
    ParameterError,
    collected_warnings,
    replay_warnings,
)
from towerplan.inputs._base import DEMO_KIND
from towerplan.outputs import _pdftext, _themes
from towerplan.scenario import ExportSettings

logger = logging.getLogger(__name__)

__all__ = [
    "PAPER_SIZES",
    "STANDARD_SCALES",
    "THEMES",
    "render_kpi_pages",
    "render_sheet",
    "write_sheets",
]

PAPER_SIZES = {"A4": (297.0 / 25.4, 210.0 / 25.4), "A3": (420.0 / 25.4, 297.0 / 25.4)}
"""Landscape paper sizes in inches."""

STANDARD_SCALES = (
    1_000,
    2_000,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
)
"""Numeric scales of the standard map series; a sheet uses the largest that fits."""

THEMES = tuple(k for k, t in _themes.THEMES.items() if t.sheets)
_KPI_ROWS_PER_PAGE = 28
_PANEL = (0.75, 0.36, 0.235, 0.545)
_TICK: dict[str, Any] = {
    "markersize": 3,
    "markeredgewidth": 0.8,
    "color": "black",
    "linestyle": "none",
    "clip_on": False,
    "zorder": 1.5,
}
"""Kilometre grid ticks: matplotlib's default major ticks, inward, 3 pt long."""
"""The side panel (legend, plan statistics): left, bottom, width, height, figure fraction."""
_HALO = {"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7}
"""Label background (not a path-effect halo: that turns text into paths, unsearchable in PDFs)."""
_SHAPE_MARKER = {"circle": "o", "square": "s", "diamond": "D", "triangle": "^"}
_FONT = "towerplan DejaVu Sans"
_RC = {
    "font.family": [_FONT, "DejaVu Sans"],
    "pdf.fonttype": 42,
    # zlib level 1 for the PDF streams: writing a sheet took 40 % less time than at the
    # default level 6, for PDFs 17 % larger
    "pdf.compression": 1,
    "ps.fonttype": 42,
    "hatch.linewidth": 0.6,
    "path.simplify": True,
}


def _t(s: Any) -> str:
    """Text from data, safe from mathtext, composed (NFC: one glyph per Vietnamese letter)."""
    return unicodedata.normalize("NFC", str(s)).replace("$", r"\$")


_FONT_RANGES = (
    (0x0020, 0x017F),  # Basic Latin, Latin-1, Latin Extended-A (Ă ă Đ đ Ĩ ĩ Ũ ũ)
    (0x01A0, 0x01A1),  # Ơ ơ
    (0x01AF, 0x01B0),  # Ư ư
    (0x0300, 0x0323),  # combining diacritics (the Vietnamese tone marks among them)
    (0x0391, 0x03C9),  # Greek letters (µ, Σ, Ω...)
    (0x1EA0, 0x1EF9),  # precomposed Vietnamese letters
    (0x2010, 0x205E),  # punctuation (– — … ′ ″)
    (0x2070, 0x20BF),  # super/subscripts, currency (₫, €)
    (0x2116, 0x2116),  # №
    (0x2122, 0x2122),  # ™
    (0x2190, 0x2199),  # arrows
    (0x2211, 0x221E),  # ∑ − ∕ √ ∞
    (0x2248, 0x2248),  # ≈
    (0x2260, 0x2265),  # ≠ ≡ ≤ ≥
    (0x25A0, 0x25A1),  # ■ □
    (0x25B2, 0x25B2),  # ▲
    (0x25C6, 0x25C6),  # ◆
    (0x25CF, 0x25CF),  # ●
)
"""Unicode ranges kept in the sheet font (what Vietnamese and English text use, about 700
glyphs: matplotlib subsets the font once per PDF, in time proportional to its glyph count);
other characters fall back to the full DejaVu Sans, the same glyphs."""
_FONT_VERSION = 3
"""Bump when the font preparation changes (the cached copies are keyed on it)."""


def _font_folder() -> Path:
    """A writable folder for the prepared fonts: matplotlib's cache, else a temporary folder."""
    import atexit
    import shutil
    import tempfile

    try:
        folder = Path(mpl.get_cachedir()) / "towerplan-fonts"
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
        return folder
    except OSError:
        tmp = tempfile.mkdtemp(prefix="towerplan-fonts-")
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
        return Path(tmp)


def _prepare_font(src: str, dst: Path, style: str) -> None:
    """Write ``dst``: DejaVu Sans cut to :data:`_FONT_RANGES`, without OpenType layout,
    hinting and glyph-name tables, renamed ``towerplan DejaVu Sans`` (the licence asks a
    modified Bitstream Vera font to change its name)."""
    import tempfile

    import fontTools
    from fontTools import subset
    from fontTools.ttLib import TTFont

    font = TTFont(src)
    opts = subset.Options()
    opts.hinting = False
    opts.glyph_names = False
    opts.layout_features = []
    opts.drop_tables += ["GSUB", "GPOS", "GDEF", "kern", "MATH", "FFTM", "fpgm", "prep", "cvt "]
    opts.name_IDs = ["*"]
    opts.name_languages = ["*"]
    opts.notdef_outline = True
    sub = subset.Subsetter(opts)
    sub.populate(unicodes=[u for a, b in _FONT_RANGES for u in range(a, b + 1)])
    logging.getLogger(fontTools.__name__).setLevel(logging.WARNING)
    sub.subset(font)
    for rec in font["name"].names:
        if rec.nameID in (1, 16):
            rec.string = _FONT
        elif rec.nameID == 4:
            rec.string = f"{_FONT} {style}"
        elif rec.nameID == 6:
            rec.string = f"towerplanDejaVuSans-{style}"
    # written aside and moved: parallel workers may prepare the same file at once
    fd, tmp = tempfile.mkstemp(dir=dst.parent, suffix=".ttf.partial")
    os.close(fd)
    try:
        font.save(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    finally:
        Path(tmp).unlink(missing_ok=True)


@lru_cache(maxsize=1)
def _register_fonts() -> str:
    """DejaVu Sans (regular, bold) prepared for fast PDF embedding, registered as
    ``towerplan DejaVu Sans`` (see :func:`_prepare_font`).

    matplotlib embeds TrueType subsets (Type 42) with fontTools, once per PDF; on the full
    DejaVu Sans (6,000 glyphs, OpenType layout tables) that subsetting took most of the time
    of a sheet.  matplotlib's layout does not use the dropped tables (Vietnamese letters are
    precomposed glyphs).  The prepared copies are cached in matplotlib's cache folder, keyed
    on the source font, fontTools and :data:`_FONT_VERSION`.
    """
    import fontTools
    from matplotlib import font_manager

    folder = _font_folder()
    for weight in ("normal", "bold"):
        src = font_manager.findfont(
            font_manager.FontProperties(family="DejaVu Sans", weight=weight),
            fallback_to_default=False,
        )
        st = os.stat(src)
        key = f"{src}|{st.st_size}|{st.st_mtime_ns}|{fontTools.version}|{_FONT_VERSION}"
        digest = hashlib.sha1(key.encode()).hexdigest()[:12]
        path = folder / f"towerplan-dejavu-{weight}-{digest}.ttf"
        if not path.is_file():
            _prepare_font(src, path, "Bold" if weight == "bold" else "Book")
        font_manager.fontManager.addfont(str(path))
    return _FONT


def _rc() -> Any:
    _register_fonts()
    return _RC


class _Canvas(FigureCanvasAgg):
    """Agg canvas whose ``draw_idle`` does nothing (the figure is drawn once when saved)."""

    def draw_idle(self, *args: Any, **kwargs: Any) -> None:
        return None


# --------------------------------------------------------------------------- layers


def _settings_from(summary: Mapping[str, Any]) -> ExportSettings:
    raw = summary.get("export_settings")
    if isinstance(raw, Mapping):
        known = {k: v for k, v in raw.items() if k in ExportSettings.__dataclass_fields__}
        return ExportSettings(**known)
    return ExportSettings()


def _to_sheet_crs(
    layers: Mapping[str, Any],
    summary: Mapping[str, Any],
    settings: ExportSettings,
    hotspot_radius_m: float,
    best_server: str | Path | None,
    *,
    skip: Sequence[str] = (),
) -> dict[str, Any]:
    """Derived theme layers (but those in ``skip``) in the VN-2000 TM-3 CRS of the scenario."""
    src = dict(layers)
    for n, g in src.items():
        if isinstance(g, gpd.GeoDataFrame) and n != "demand" and len(g) and g.crs is None:
            raise CRSError(
                msgid=N_("{layer}: the layer has no CRS; set it before drawing map sheets"), layer=n
            )
    if best_server is not None:
        src["best_server"] = Path(best_server)
    p = _themes.derive(src, summary, hotspot_radius_m=hotspot_radius_m, skip=skip)
    out = _reprojected(p, settings)
    out["_crs"] = _sheet_crs(settings)
    return out


def _sheet_crs(settings: ExportSettings) -> Any:
    from towerplan.outputs import export

    return export.target_crs("vn2000_tm3", settings)


def _reprojected(p: Mapping[str, Any], settings: ExportSettings) -> dict[str, Any]:
    """The frames of ``p`` in the sheet CRS (their ``attrs`` kept); other entries as they are."""
    from towerplan.outputs import export

    crs = _sheet_crs(settings)
    out: dict[str, Any] = {}
    for n, g in p.items():
        if isinstance(g, gpd.GeoDataFrame):
            r = export.reproject(g, crs, settings.vn2000_datum_transformation, name=n)
            r.attrs = dict(g.attrs)
            out[n] = r
        else:
            out[n] = g
    return out


_DEFERRED = ("coverage_gaps_all",)
"""Derived layers that :func:`write_sheets` computes while its worker processes draw the
sheets that do not need them (the intersection of the operators' gap polygons took 0.7 s,
half of the serial start); this process then draws the sheets that do."""


def _deferred_layers(
    layers: Mapping[str, Any], summary: Mapping[str, Any], settings: ExportSettings
) -> dict[str, Any]:
    """The :data:`_DEFERRED` layers in the sheet CRS (those the plan's layers give)."""
    src = {n: g for n, g in layers.items() if n == "coverage_gaps" and g is not None}
    p = _themes.derive(src, summary)
    return _reprojected({n: p[n] for n in _DEFERRED if n in p}, settings)


def _extent(p: Mapping[str, Any]) -> tuple[float, float, float, float]:
    for name in ("districts", "existing_sites", "proposed_sites", "coverage_gaps"):
        g = p.get(name)
        if isinstance(g, gpd.GeoDataFrame) and len(g):
            x0, y0, x1, y1 = g.total_bounds
            return float(x0), float(y0), float(x1), float(y1)
    frames = [g for g in p.values() if isinstance(g, gpd.GeoDataFrame) and len(g)]
    if not frames:
        return 0.0, 0.0, 1000.0, 1000.0
    b = np.array([g.total_bounds for g in frames])
    return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())


def _dense_core(p: Mapping[str, Any]) -> tuple[float, float, float, float] | None:
    """Bounds of the densest district (population / area), the inset's extent."""
    d = p.get("districts")
    if not isinstance(d, gpd.GeoDataFrame) or len(d) < 2 or "population" not in d.columns:
        return None
    dens = pd.to_numeric(d["population"], errors="coerce") / d.geometry.area
    if not np.isfinite(dens).any():
        return None
    x0, y0, x1, y1 = d.geometry.iloc[int(np.nanargmax(dens.to_numpy()))].bounds
    return x0, y0, x1, y1


# --------------------------------------------------------------------------- geometry drawing


def _compound(coords: np.ndarray, ring_of: np.ndarray, n_rings: int, closed: bool) -> MplPath:
    """One path of many parts: ``coords`` of parts numbered by ``ring_of`` (sorted)."""
    counts = np.bincount(ring_of, minlength=n_rings)
    counts = counts[counts > 0]
    ends = np.cumsum(counts)
    codes = np.full(len(coords), MplPath.LINETO, dtype=MplPath.code_type)
    codes[ends - counts] = MplPath.MOVETO
    if closed:
        codes[ends - 1] = MplPath.CLOSEPOLY
    return MplPath(coords, codes)


_View = tuple[float, float, float, float]


def _view(ax: Axes, margin: float = 0.05) -> _View:
    """What an axes may show of the data: its limits, ``margin`` wider on each side (for
    strokes, markers and labels reaching in from outside).  The inset and the district
    sheets show a small part of the layers: what lies outside is not drawn (it was clipped)."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    return x0 - mx, y0 - my, x1 + mx, y1 + my


def _in_view(geoms: np.ndarray, view: _View) -> np.ndarray:
    """Whether the bounds of each of ``geoms`` meet ``view`` (missing and empty ones: no)."""
    b = shapely.bounds(geoms).reshape(-1, 4)
    return (b[:, 0] <= view[2]) & (b[:, 2] >= view[0]) & (b[:, 1] <= view[3]) & (b[:, 3] >= view[1])


def _poly_path(geoms: Sequence[Any], tol: float, view: _View) -> MplPath | None:
    """The polygons of ``geoms`` in ``view`` as one compound path (simplified to ``tol`` metres).

    Exteriors are oriented counter-clockwise and holes clockwise, so the non-zero fill
    rule of PDF and Agg leaves the holes open; one path is one PDF operator sequence
    instead of one per feature (a sheet drew tens of thousands of paths).
    """
    g = np.asarray(geoms, dtype=object)
    g = g[_in_view(g, view)]
    if tol > 0:
        g = shapely.simplify(g, tol, preserve_topology=True)
    parts = shapely.get_parts(shapely.get_parts(g))
    parts = parts[(shapely.get_type_id(parts) == 3) & _in_view(parts, view)]
    if len(parts) == 0:
        return None
    rings = shapely.get_rings(shapely.orient_polygons(parts))
    coords, idx = shapely.get_coordinates(rings, return_index=True)
    return _compound(coords, idx, len(rings), closed=True)


def _line_path(geoms: Sequence[Any], view: _View) -> MplPath | None:
    """The lines of ``geoms`` (and polygon outlines) in ``view`` as one compound path."""
    g = np.asarray(geoms, dtype=object)
    g = g[_in_view(g, view)]
    parts = shapely.get_parts(shapely.get_parts(g))
    kind = shapely.get_type_id(parts)
    parts = np.concatenate(
        [parts[(kind == 1) | (kind == 2)], shapely.get_exterior_ring(parts[kind == 3])]
    )
    parts = parts[_in_view(parts, view)]
    if len(parts) == 0:
        return None
    coords, idx = shapely.get_coordinates(parts, return_index=True)
    return _compound(coords, idx, len(parts), closed=False)


def _polys(ax: Axes, gdf: gpd.GeoDataFrame, tol: float, colors: Any = None, **kw: Any) -> None:
    if len(gdf) == 0:
        return
    if colors is not None and not isinstance(colors, str):
        for c in dict.fromkeys(colors):
            sel = [x == c for x in colors]
            _polys(ax, gdf[sel], tol, c, **kw)
        return
    path = _poly_path(gdf.geometry.to_numpy(), tol, _view(ax))
    if path is not None:
        if colors is not None:
            kw.setdefault("facecolor", colors)
        ax.add_collection(PathCollection([path], **kw))


def _lines(ax: Axes, gdf: gpd.GeoDataFrame, *, colors: Any, **kw: Any) -> None:
    path = _line_path(gdf.geometry.to_numpy(), _view(ax))
    if path is not None:
        ax.add_collection(PathCollection([path], facecolors="none", edgecolors=colors, **kw))


# --------------------------------------------------------------------------- sheet


class _Sheet:
    """One page: title, map axes at a standard scale with km grid, side panel, title block."""

    def __init__(
        self,
        theme: _themes.Theme | None,
        summary: Mapping[str, Any],
        size: str,
        *,
        n_maps: int = 1,
        extent: tuple[float, float, float, float] | None = None,
        title: str | None = None,
        sheet_no: tuple[int, int] | None = None,
    ):
        w, h = PAPER_SIZES[_check_size(size)]
        self.fig = Figure(figsize=(w, h))
        _Canvas(self.fig)
        self.size = size
        self.scale = w / PAPER_SIZES["A4"][0]
        self.fs = 8.0 * self.scale
        self.summary = summary
        self.theme = theme
        self.handles: list[Any] = []
        self.stats: list[str] = []
        self.sheet_no = sheet_no
        self.denominator = 0
        self.title = title or (_themes.theme_title(theme) if theme else _("District KPI table"))
        self.fig.text(
            0.015, 0.962, _t(self.title), fontsize=self.fs * 1.9, fontweight="bold", va="center"
        )
        sub = summary.get("scenario_title") or summary.get("scenario") or ""
        if sub:
            self.fig.text(
                0.015, 0.927, _t(sub), fontsize=self.fs * 1.15, va="center", color="#333333"
            )
        self.demo = str(summary.get("data_kind", "")) == DEMO_KIND
        if self.demo:
            self.fig.text(
                0.985,
                0.962,
                _(_themes.DEMO_STAMP_MSG),
                fontsize=self.fs * 1.5,
                fontweight="bold",
                color="white",
                ha="right",
                va="center",
                bbox={"boxstyle": "round,pad=0.35", "fc": "#c0392b", "ec": "none"},
            )
        self.map_axes: list[Axes] = []
        if n_maps:
            self._map_axes(n_maps)
        self._footer()
        if n_maps and extent is not None:
            self.frame(extent)

    def _map_axes(self, n_maps: int) -> None:
        cols = min(n_maps, 2) if n_maps <= 4 else 3
        rows = math.ceil(n_maps / cols)
        gs = self.fig.add_gridspec(
            rows,
            cols,
            left=0.04,
            right=0.737,
            bottom=0.085,
            top=0.895 if rows == 1 else 0.865,
            wspace=0.1,
            hspace=0.18 if rows > 1 else 0.1,
        )
        for i in range(n_maps):
            ax = self.fig.add_subplot(gs[i // cols, i % cols])
            ax.set_aspect("equal", adjustable="box")
            self.map_axes.append(ax)

    def frame(self, extent: tuple[float, float, float, float], margin: float = 0.004) -> None:
        """Fit ``extent`` in every map axes at one standard scale (the km grid is drawn by
        :meth:`finish`)."""
        x0, y0, x1, y1 = extent
        dx, dy = max(x1 - x0, 200.0), max(y1 - y0, 200.0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        # the gridspec box (``original``): the active one is already shrunk by the aspect rule
        boxes = [ax.get_position(original=True) for ax in self.map_axes]
        fw, fh = self.fig.get_size_inches()
        pw = min(b.width for b in boxes) * fw * 0.0254
        ph = min(b.height for b in boxes) * fh * 0.0254
        need = max(dx * (1 + 2 * margin) / pw, dy * (1 + 2 * margin) / ph)
        self.denominator = next((s for s in STANDARD_SCALES if s >= need), math.ceil(need))
        for ax, bx in zip(self.map_axes, boxes, strict=True):
            gw = bx.width * fw * 0.0254 * self.denominator
            gh = bx.height * fh * 0.0254 * self.denominator
            ax.set_xlim(cx - gw / 2, cx + gw / 2)
            ax.set_ylim(cy - gh / 2, cy + gh / 2)

    def _grid(self, ax: Axes) -> None:
        """The kilometre grid, inward ticks on the four sides, labels left and below.

        Drawn as a few artists laid out as matplotlib lays out ticks (label pad 3.5 pt, axis
        labels 1 pt beyond the tick labels): matplotlib's own ticks are five artists each,
        built and drawn one by one, about a tenth of the CPU time of a sheet.
        """
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        span_km = (x1 - x0) / 1000
        step = next((s for s in (0.5, 1, 2, 5, 10, 20, 50, 100) if span_km / s <= 8), 200)
        st = step * 1000
        xs = np.arange(math.ceil(x0 / st) * st, x1, st)
        ys = np.arange(math.ceil(y0 / st) * st, y1, st)
        fmt = (lambda v: f"{v / 1000:.0f}") if step >= 1 else (lambda v: f"{v / 1000:.1f}")
        fs = self.fs * (0.8 if len(self.map_axes) == 1 else 0.65)
        ax.set_xticks([])
        ax.set_yticks([])
        lines = [[(x, y0), (x, y1)] for x in xs] + [[(x0, y), (x1, y)] for y in ys]
        ax.add_artist(  # at the zorder of matplotlib's axis grid
            LineCollection(
                lines, colors="#9a9a9a", linewidths=0.3, linestyles=[(0, (4, 3))], zorder=1.5
            )
        )
        xt, yt = ax.get_xaxis_transform(), ax.get_yaxis_transform()
        for pos, marker in ((0.0, TICKUP), (1.0, TICKDOWN)):
            ax.add_artist(
                Line2D(xs, np.full(len(xs), pos), transform=xt, marker=MarkerStyle(marker), **_TICK)
            )
        for pos, marker in ((0.0, TICKRIGHT), (1.0, TICKLEFT)):
            ax.add_artist(
                Line2D(np.full(len(ys), pos), ys, transform=yt, marker=MarkerStyle(marker), **_TICK)
            )
        tr, va, ha = ax.get_xaxis_text1_transform(3.5)
        below = [
            Text(x, 0, fmt(x), fontsize=fs, va=va, ha=ha, transform=tr, clip_on=False) for x in xs
        ]
        tr, va, ha = ax.get_yaxis_text1_transform(3.5)
        left = [
            Text(0, y, fmt(y), fontsize=fs, va=va, ha=ha, transform=tr, clip_on=False) for y in ys
        ]
        for t in below + left:
            ax.add_artist(t)

        def box(labels: list[Text], side: str) -> Callable[[Any], Bbox]:
            """The box of ``labels`` and a spine (measured when drawn)."""
            return lambda r: Bbox.union(
                [t.get_window_extent(r) for t in labels] + [ax.spines[side].get_window_extent(r)]
            )

        ax.add_artist(
            Annotation(
                _("Y (easting, km)"),
                (0.5, 0.0),
                xycoords=(ax.transAxes, box(below, "bottom")),
                xytext=(0.0, -1.0),
                textcoords="offset points",
                fontsize=fs,
                va="top",
                ha="center",
                clip_on=False,
            )
        )
        ax.add_artist(
            Annotation(
                _("X (northing, km)"),
                (0.0, 0.5),
                xycoords=(box(left, "left"), ax.transAxes),
                xytext=(-1.0, 0.0),
                textcoords="offset points",
                fontsize=fs,
                va="bottom",
                ha="center",
                rotation=90,
                rotation_mode="anchor",
                clip_on=False,
            )
        )

    @property
    def tolerance(self) -> float:
        """Simplification tolerance: 0.2 mm on paper, in metres."""
        return 0.0002 * max(self.denominator, 1)

    def _footer(self) -> None:
        s = self.summary
        kind = data_text(str(s.get("data_kind", "unknown")))
        date = str(s.get("generated", "")) or _dt.date.today().isoformat()
        src = s.get("plan_source") or s.get("source") or ""
        parts = [_("Data: {kind}").format(kind=kind)]
        if src:
            parts.append(_("plan source: {source}").format(source=src))
        parts.append(
            _("produced with towerplan {version} on {date}").format(version=__version__, date=date)
        )
        fs = self.fs * 0.8
        self.fig.text(
            0.015,
            0.035,
            _t(textwrap.fill(". ".join(parts), self._chars_per_line(0.97, fs))),
            fontsize=fs,
            color="#333333",
            va="center",
        )
        notes = [data_text(str(n)) for n in (s.get("notes") or [])]
        if notes:
            line = _("Notes: ") + " | ".join(notes)
            self.fig.text(
                0.015,
                0.014,
                _t(textwrap.shorten(line, width=260)),
                fontsize=self.fs * 0.65,
                color="#555555",
                va="center",
            )

    def _chars_per_line(self, width: float, fontsize: float) -> int:
        """Characters of DejaVu Sans (0.6 em each, a safe mean) in ``width`` (figure fraction).

        Wrapping by count instead of matplotlib's ``wrap=True``, which measured the text
        word by word and was a large share of drawing a sheet.
        """
        return max(20, int(width * self.fig.get_size_inches()[0] * 72 / (0.6 * fontsize)))

    def key(self, handle: Any) -> None:
        label = handle.get_label()
        if label not in [h.get_label() for h in self.handles]:
            handle.set_label(textwrap.fill(label, 40))
            self.handles.append(handle)

    def finish(self) -> Figure:
        for ax in self.map_axes:
            if self.denominator:
                self._grid(ax)  # after the layers: drawn over those at its zorder, as matplotlib's
            self._stamp(ax)
        if self.map_axes:
            ax0 = self.map_axes[0]
            ax0.add_artist(
                ScaleBar(
                    1.0,
                    "m",
                    location="lower left",
                    box_alpha=0.85,
                    font_properties={"size": self.fs},
                    length_fraction=0.2,
                )
            )
            self._north_arrow(ax0)
        if self.handles or self.stats:
            self._legend()
        self._title_block()
        return self.fig

    def _legend(self) -> None:
        """Legend and plan statistics in the side panel (:data:`_PANEL`, figure fraction), the
        statistics under the legend (placed when drawn: the legend is measured once, by the
        renderer that writes it)."""
        n = len(self.handles) + sum(s.count("\n") + 1 for s in self.stats) * 0.8
        fs = self.fs * min(1.0, 24.0 / max(n, 1.0))
        x0, y0, _w, h = _PANEL
        anchor: Any = self.fig.transFigure
        top, gap, z = y0 + h, 0.0, 3.0
        if self.handles:
            leg = self.fig.legend(
                handles=self.handles,
                loc="upper left",
                bbox_to_anchor=_PANEL,
                frameon=False,
                fontsize=fs,
                title=_("Legend"),
                title_fontsize=fs * 1.15,
                alignment="left",
                borderaxespad=0.0,
            )
            top, gap = 0.0, 0.025 * h * self.fig.get_size_inches()[1] * 72  # points
            # the box the legend gave its (invisible) frame when drawn: drawn after the legend,
            # the statistics do not lay the legend out a second time
            anchor, z = (lambda r: leg.legendPatch.get_window_extent(r)), leg.get_zorder() + 0.5
        if self.stats:
            lines = [textwrap.fill(x, 46, subsequent_indent="  ") for x in self.stats]
            self.fig.add_artist(
                Annotation(
                    _t("\n".join(lines)),
                    xy=(x0, top),
                    xycoords=(self.fig.transFigure, anchor),
                    xytext=(0.0, -gap),
                    textcoords="offset points",
                    fontsize=fs,
                    va="top",
                    ha="left",
                    linespacing=1.4,
                    zorder=z,
                )
            )

    def _title_block(self) -> None:
        """The title block: lines and texts on the figure in a unit box (no Axes to build)."""
        tb = dict(self.summary.get("title_block") or {})
        box = TransformedBbox(Bbox.from_bounds(0.75, 0.075, 0.235, 0.27), self.fig.transFigure)
        tr = BboxTransformTo(box)
        fs = self.fs * 0.85
        num = ""
        if self.sheet_no:
            num = _("Sheet {n} of {count}").format(n=self.sheet_no[0], count=self.sheet_no[1])
        scale = _("Scale 1:{d}").format(d=fmt_number(self.denominator)) if self.denominator else ""
        date = tb.get("date") or str(self.summary.get("generated") or _dt.date.today())
        rows: list[tuple[str, ...]] = [
            (tb.get("agency") or "",),
            (tb.get("project") or self.summary.get("scenario_title") or "",),
            (self.title,),
            (scale, num, _("Date: {date}").format(date=date)),
            (
                _("Prepared: {name}").format(name=tb.get("prepared_by") or ""),
                _("Checked: {name}").format(name=tb.get("checked_by") or ""),
                _("Approved: {name}").format(name=tb.get("approved_by") or ""),
            ),
        ]
        heights = [0.18, 0.24, 0.22, 0.16, 0.20]
        rules = []
        y = 1.0
        for i, (row, hgt) in enumerate(zip(rows, heights, strict=True)):
            y -= hgt
            rules.append([(0.0, y), (1.0, y)])
            for j, cell in enumerate(row):
                w = 1.0 / len(row)
                if j:
                    rules.append([(j * w, y), (j * w, y + hgt)])
                width = int(50 * w) if len(row) > 1 else (40 if i in (0, 2) else 52)
                self.fig.text(
                    j * w + 0.015,
                    y + hgt / 2,
                    _t(textwrap.fill(str(cell), width)),
                    fontsize=fs * (1.1 if i in (0, 2) else 0.9),
                    va="center",
                    ha="left",
                    fontweight="bold" if i in (0, 2) else "normal",
                    transform=tr,
                )
        self.fig.add_artist(LineCollection(rules, colors="black", linewidths=0.6, transform=tr))
        frame = Rectangle((0, 0), 1, 1, fill=False, ec="black", lw=0.8, transform=tr)
        self.fig.add_artist(frame)
        if self.denominator and self.map_axes:
            self.map_axes[0].text(
                0.01,
                0.075,
                _t(scale),
                transform=self.map_axes[0].transAxes,
                fontsize=self.fs * 1.05,
                fontweight="bold",
                va="bottom",
                ha="left",
                bbox=_HALO,
                zorder=61,
            )

    def _stamp(self, ax: Axes) -> None:
        if not self.demo:
            return
        ax.text(
            0.5,
            0.5,
            _(_themes.DEMO_STAMP_MSG),
            transform=ax.transAxes,
            fontsize=self.fs * 3.6 / max(1.0, len(self.map_axes) ** 0.5),
            color="#c0392b",
            alpha=0.2,
            rotation=28,
            ha="center",
            va="center",
            fontweight="bold",
            zorder=50,
        )

    def _north_arrow(self, ax: Axes) -> None:
        ax.annotate(
            "N",
            xy=(0.035, 0.965),
            xytext=(0.035, 0.87),
            xycoords="axes fraction",
            ha="center",
            va="center",
            fontsize=self.fs * 1.4,
            fontweight="bold",
            arrowprops={
                "facecolor": "black",
                "width": 4 * self.scale,
                "headwidth": 12 * self.scale,
            },
            zorder=60,
        )


# --------------------------------------------------------------------------- renderers by kind


def _marker_size(sh: _Sheet, sym: _themes.Symbol, ax: Axes) -> float:
    inset = ax not in sh.map_axes
    return (
        (sym.size * 1.5) ** 2
        * 0.45
        * sh.scale
        / (1.0 if inset else max(1.0, len(sh.map_axes) ** 0.5))
    )


def _d_base(sh: _Sheet, ax: Axes, p: Mapping[str, Any], spec: _themes.LayerSpec) -> None:
    if "districts" in p:
        fill = "#f7f7f2" if spec.fill else "none"
        _polys(
            ax,
            p["districts"],
            sh.tolerance,
            facecolor=fill,
            edgecolor="#555555",
            linewidth=0.8,
            zorder=1 if spec.fill else 20,
        )
        sh.key(Patch(facecolor=fill, edgecolor="#555555", label=_("District boundaries")))
        _labels(sh, ax, p)
    if "roads" in p:
        r = p["roads"]
        cls = (
            r["road_class"].astype(str).str.lower()
            if "road_class" in r.columns
            else pd.Series("", index=r.index)
        )
        other = ~cls.isin(list(_themes.ROAD_STYLES))
        _lines(ax, r[other.to_numpy()], colors=_themes.ROAD_OTHER[0], linewidths=0.35, zorder=2)
        for c in ("provincial", "national"):
            sel = cls.isin(
                [k for k, v in _themes.ROAD_STYLES.items() if v == _themes.ROAD_STYLES[c]]
            ).to_numpy()
            if sel.any():
                color, w = _themes.ROAD_STYLES[c]
                _lines(ax, r[sel], colors=color, linewidths=w * 0.4, zorder=2)
                sh.key(Line2D([], [], color=color, lw=w * 0.4, label=_themes.value_label(c)))


def _labels(sh: _Sheet, ax: Axes, p: Mapping[str, Any]) -> None:
    d = p["districts"]
    if "district" not in d.columns:
        return
    fs = sh.fs * (0.95 if len(sh.map_axes) == 1 else 0.65)
    if ax not in sh.map_axes:
        fs = sh.fs * 0.7
    pts = d.geometry.representative_point()
    shown = _in_view(pts.to_numpy(), _view(ax, 0.3))  # names centred outside may show in part
    for pt, name in zip(pts[shown], d["district"][shown], strict=True):
        ax.text(
            pt.x,
            pt.y,
            _t(name),
            fontsize=fs,
            ha="center",
            va="center",
            color="#222222",
            bbox=_HALO,
            zorder=40,
            clip_on=True,
        )


def _d_points(sh: _Sheet, ax: Axes, p: Mapping[str, Any], spec: _themes.LayerSpec) -> None:
    for g in _themes.groups(spec, p):
        pts = g.frame.geometry.representative_point()
        pts = pts[_in_view(pts.to_numpy(), _view(ax))]
        marker = _SHAPE_MARKER[g.symbol.shape]
        ax.scatter(
            pts.x,
            pts.y,
            s=_marker_size(sh, g.symbol, ax),
            c=g.color,
            edgecolors=g.symbol.edge,
            linewidths=0.3,
            marker=marker,
            zorder=g.symbol.z,
        )
        sh.key(
            Line2D(
                [],
                [],
                marker=marker,
                ls="",
                markerfacecolor=g.color,
                markeredgecolor=g.symbol.edge,
                markersize=6,
                label=_t(f"{g.label} ({fmt_number(len(g.frame))})"),
            )
        )


def _d_lines(sh: _Sheet, ax: Axes, p: Mapping[str, Any], spec: _themes.LayerSpec) -> None:
    for g in _themes.groups(spec, p):
        ls = "--" if g.dashed else "-"
        _lines(ax, g.frame, colors=g.color, linewidths=0.9, linestyles=ls, zorder=9)
        sh.key(
            Line2D(
                [],
                [],
                color=g.color,
                lw=0.9,
                ls=ls,
                label=_t(f"{g.label} ({fmt_number(len(g.frame))})"),
            )
        )


def _d_polygons(sh: _Sheet, ax: Axes, p: Mapping[str, Any], spec: _themes.LayerSpec) -> None:
    for g in _themes.groups(spec, p):
        _polys(ax, g.frame, sh.tolerance, facecolor=g.color, edgecolor="none", alpha=0.4, zorder=3)
        label = g.label
        if "area_km2" in g.frame.columns and g.value is None:
            label += f" ({fmt_number(float(g.frame['area_km2'].sum()), 1)} km²)"
        sh.key(Patch(facecolor=g.color, alpha=0.4, label=_t(label)))


def _d_gaps(sh: _Sheet, ax: Axes, p: Mapping[str, Any], spec: _themes.LayerSpec) -> None:
    g = p.get(spec.layer)
    if g is None:
        return
    op = getattr(ax, "_tp_group", None)
    colors = _themes.operator_colors(p)
    sub = g[g["operator"].astype(str) == op] if op is not None and "operator" in g.columns else g
    col = colors.get(str(op), "#D55E00")
    st = sub["stage"].astype(str) if "stage" in sub.columns else pd.Series("after", sub.index)
    before, after = sub[(st == "before").to_numpy()], sub[(st != "before").to_numpy()]
    _polys(
        ax,
        before,
        sh.tolerance,
        facecolor="none",
        edgecolor=col,
        linewidth=0.5,
        linestyle="--",
        zorder=3,
    )
    _polys(
        ax,
        after,
        sh.tolerance,
        facecolor=col,
        edgecolor="black",
        linewidth=0.2,
        alpha=0.75,
        zorder=4,
    )
    if op is not None:
        pb = float(before["population"].sum()) if "population" in before.columns else math.nan
        pa = float(after["population"].sum()) if "population" in after.columns else math.nan
        ax.set_title(
            _t(op)
            + "\n"
            + _("people not covered: {before} before, {after} after").format(
                before=fmt_number(pb), after=fmt_number(pa)
            ),
            fontsize=sh.fs,
            fontweight="bold",
        )
        sh.key(Patch(facecolor=col, label=_t(op)))
    sh.key(Patch(facecolor="none", edgecolor="#555555", ls="--", label=_("Gap before the plan")))
    sh.key(Patch(facecolor="#999999", alpha=0.75, label=_("Gap remaining after the plan")))


def _d_choropleth(sh: _Sheet, ax: Axes, p: Mapping[str, Any], spec: _themes.LayerSpec) -> None:
    g = p.get(spec.layer)
    if g is None:
        return
    cols = [c for c in spec.columns if c in g.columns]
    col = getattr(ax, "_tp_group", None) or (cols[0] if cols else None)
    if col is None:
        return
    share = bool(g.attrs.get("share")) or all(_themes.is_share_column(c) for c in cols)
    breaks = _themes.class_breaks([g[c] for c in cols], share=share)
    palette = _themes.class_colors(len(breaks) - 1)
    cls = _themes.classify(g[col], breaks)
    colors = [palette[c] if c >= 0 else _themes.NO_DATA for c in cls]
    _polys(ax, g, sh.tolerance, colors, edgecolor="#333333", linewidth=0.6, zorder=3)
    ax.set_title(_t(_themes.choropleth_label(col, g)), fontsize=sh.fs, fontweight="bold")
    for pt, v in zip(g.geometry.representative_point(), g[col], strict=True):
        if np.isfinite(v):
            txt = fmt_percent(v, 0) if share else fmt_number(v, 2)
            ax.annotate(
                txt,
                (pt.x, pt.y),
                xytext=(0, -1.3 * sh.fs),
                textcoords="offset points",
                fontsize=sh.fs * 0.8,
                ha="center",
                va="top",
                bbox=_HALO,
                zorder=41,
            )
    for c, lo, hi in zip(palette, breaks[:-1], breaks[1:], strict=True):
        sh.key(Patch(facecolor=c, edgecolor="#333333", label=_themes.class_text(lo, hi, share)))


def _d_raster(sh: _Sheet, ax: Axes, p: Mapping[str, Any], spec: _themes.LayerSpec) -> None:
    path = p.get(spec.layer)
    if path is None or not Path(path).is_file():
        return
    import rasterio
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    crs = p["_crs"]
    with rasterio.open(path) as src:
        tr, w, h = calculate_default_transform(
            src.crs, crs.to_wkt(), src.width, src.height, *src.bounds
        )
        dst = np.full((h, w), np.nan, dtype="float32")
        reproject(
            rasterio.band(src, 1),
            dst,
            dst_transform=tr,
            dst_crs=crs.to_wkt(),
            resampling=Resampling.nearest,
            src_nodata=src.nodata,
            dst_nodata=np.nan,
        )
    cmap = mpl.colors.ListedColormap(list(_themes.SIGNAL_COLORS))
    edges = [-1e9, *_themes.SIGNAL_LEVELS, 1e9]
    norm = mpl.colors.BoundaryNorm(edges, cmap.N)
    ext = (tr.c, tr.c + tr.a * w, tr.f + tr.e * h, tr.f)
    ax.imshow(
        np.ma.masked_invalid(dst),
        cmap=cmap,
        norm=norm,
        extent=ext,
        origin="upper",
        interpolation="nearest",
        zorder=1.5,
        alpha=0.85,
    )
    sh.key(Patch(facecolor="none", edgecolor="none", label=_(spec.label)))
    for c, t in zip(_themes.SIGNAL_COLORS[::-1], _themes.signal_class_labels()[::-1], strict=True):
        sh.key(Patch(facecolor=c, label=t))


_DRAWERS = {
    "base": _d_base,
    "points": _d_points,
    "lines": _d_lines,
    "polygons": _d_polygons,
    "gaps": _d_gaps,
    "choropleth": _d_choropleth,
    "raster": _d_raster,
}


def _stats(summary: Mapping[str, Any]) -> list[str]:
    s = summary

    def num(k: str) -> float | None:
        v = s.get(k)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    out = []
    if num("existing_sites") is not None:
        out.append(_("Existing sites: {n}").format(n=fmt_number(num("existing_sites") or 0)))
    if num("new_sites") is not None and num("new_dedicated") is not None:
        out.append(
            _("New sites: {n} ({d} dedicated, {s} shared)").format(
                n=fmt_number(num("new_sites") or 0),
                d=fmt_number(num("new_dedicated") or 0),
                s=fmt_number(num("new_shared") or 0),
            )
        )
    pop = num("population")
    if pop:
        out.append(_("Population: {n}").format(n=fmt_number(pop)))
        for k, lab in (
            ("population_covered_before", _("before the plan")),
            ("population_covered_after", _("after the plan")),
        ):
            v = num(k)
            if v is not None:
                out.append(
                    _("Covered {stage}: {n} ({pct})").format(
                        stage=lab, n=fmt_number(v), pct=fmt_percent(v / pop)
                    )
                )
    for k, lab in (
        ("sharing_rate_before", _("Sharing rate before the plan")),
        ("sharing_rate_after", _("Sharing rate after the plan")),
    ):
        v = num(k)
        if v is not None:
            out.append(f"{lab}: {fmt_percent(v)}")
    if num("backhaul_fibre_km") is not None:
        out.append(
            _("New backhaul fibre: {n} km").format(n=fmt_number(num("backhaul_fibre_km") or 0, 1))
        )
    return out


# --------------------------------------------------------------------------- public API


def _check_size(size: str) -> str:
    if size not in PAPER_SIZES:
        raise ParameterError(
            msgid=N_("sheet size '{size}' unknown; use some of {sizes}"),
            size=size,
            sizes=list(PAPER_SIZES),
        )
    return size


def _theme_of(theme: str) -> _themes.Theme:
    t = _themes.THEMES.get(theme)
    if t is None or not t.sheets:
        raise ParameterError(
            msgid=N_("unknown sheet theme '{theme}'; use one of {themes}"),
            theme=theme,
            themes=list(THEMES),
        )
    return t


def _panels(t: _themes.Theme, p: Mapping[str, Any]) -> list[Any]:
    """Groups drawn as small multiples (operators of the gaps, columns of a choropleth)."""
    if t.small_multiples:
        for spec in t.layers:
            g = p.get(spec.layer)
            if isinstance(g, gpd.GeoDataFrame) and t.small_multiples in g.columns:
                return sorted(g[t.small_multiples].astype(str).unique())
        return [None]
    for spec in t.layers:
        g = p.get(spec.layer)
        if spec.kind == "choropleth" and isinstance(g, gpd.GeoDataFrame):
            cols = [c for c in spec.columns if c in g.columns]
            return cols[::-1] if len(cols) > 1 else [None]
    return [None]


def _render(
    t: _themes.Theme,
    p: Mapping[str, Any],
    summary: Mapping[str, Any],
    size: str,
    extent: tuple[float, float, float, float] | None = None,
    sheet_no: tuple[int, int] | None = None,
    title: str | None = None,
) -> Figure:
    groups = _panels(t, p)
    ext = extent or _extent(p)
    sh = _Sheet(t, summary, size, n_maps=len(groups), extent=ext, sheet_no=sheet_no, title=title)
    for ax, grp in zip(sh.map_axes, groups, strict=True):
        ax._tp_group = grp  # type: ignore[attr-defined]
        for spec in t.layers:
            if spec.on_sheets:
                _DRAWERS[spec.kind](sh, ax, p, spec)
    core = _dense_core(p) if t.inset and extent is None else None
    if core is not None:
        _inset(sh, t, p, core)
    sh.stats = _stats(summary)
    if t.needs and t.needs not in p:
        sh.stats.insert(0, _("This plan has no {layer} layer.").format(layer=t.needs))
    return sh.finish()


def _inset(sh: _Sheet, t: _themes.Theme, p: Mapping[str, Any], core: Any) -> None:
    x0, y0, x1, y1 = core
    ax0 = sh.map_axes[0]
    ax0.add_patch(
        Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="black", lw=1.0, ls="-", zorder=45)
    )
    ins = ax0.inset_axes(_inset_box(ax0, p))
    ins.set_aspect("equal", adjustable="box")
    ins.set_xticks([])
    ins.set_yticks([])
    pad = 0.03 * max(x1 - x0, y1 - y0)
    ins.set_xlim(x0 - pad, x1 + pad)  # first: the drawers leave out what lies outside
    ins.set_ylim(y0 - pad, y1 + pad)
    handles = list(sh.handles)
    for spec in t.layers:
        if spec.on_sheets:
            _DRAWERS[spec.kind](sh, ins, p, spec)
    sh.handles = handles
    ins.set_facecolor("white")
    ins.set_zorder(55)
    ins.set_title(_("Inset: dense core"), fontsize=sh.fs * 0.75, pad=2)


def _inset_box(ax: Axes, p: Mapping[str, Any]) -> tuple[float, float, float, float]:
    """Inset position (axes fraction): the right-hand corner that hides least of the districts."""
    d = p.get("districts")
    boxes = [(0.69, 0.64, 0.30, 0.34), (0.69, 0.01, 0.30, 0.34)]
    if not isinstance(d, gpd.GeoDataFrame):
        return boxes[0]
    union = d.geometry.union_all()
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()

    def hidden(b: tuple[float, float, float, float]) -> float:
        from shapely.geometry import box

        r = box(
            x0 + b[0] * (x1 - x0),
            y0 + b[1] * (y1 - y0),
            x0 + (b[0] + b[2]) * (x1 - x0),
            y0 + (b[1] + b[3]) * (y1 - y0),
        )
        return float(union.intersection(r).area)

    return min(boxes, key=hidden)


def render_sheet(
    theme: str,
    layers: Mapping[str, gpd.GeoDataFrame | None],
    summary: Mapping[str, Any],
    size: str = "A4",
    hotspot_radius_m: float = 100.0,
    *,
    lang: str | None = None,
    export_settings: ExportSettings | None = None,
    best_server: str | Path | None = None,
    extent: tuple[float, float, float, float] | None = None,
    sheet_no: tuple[int, int] | None = None,
    _prepared: Mapping[str, Any] | None = None,
) -> Figure:
    """Render one theme sheet to a matplotlib Figure (not saved).

    Parameters
    ----------
    theme : str
        One of :data:`THEMES`.
    layers : dict of str -> GeoDataFrame
        Plan layers with a CRS (normally the working CRS); missing/empty ones are skipped.
    summary : dict
        Plan summary (``data_kind``, ``scenario_title``, ``notes``, ``language``,
        ``export_settings``, ``title_block``...).
    size : str
        ``"A4"`` or ``"A3"`` (landscape).
    hotspot_radius_m : float
        Wi-Fi coverage radius when ``wifi_hotspots`` has no ``radius_m``.
    lang : str, optional
        ``vi`` or ``en``; default ``summary['language']``, else English.
    export_settings : ExportSettings, optional
        VN-2000 TM-3 zone and datum transformation (default from the summary).
    best_server : path, optional
        ``best_server.tif`` for the ``signal_level`` sheet.
    extent : tuple, optional
        ``(x0, y0, x1, y1)`` in the sheet CRS to draw instead of the study area.
    sheet_no : tuple of int, optional
        ``(number, count)`` for the title block.

    Returns
    -------
    matplotlib.figure.Figure
    """
    t = _theme_of(theme)
    _check_size(size)
    settings = export_settings or _settings_from(summary)
    with use_language(lang or summary.get("language") or current_language()), mpl.rc_context(_rc()):
        p = (
            _prepared
            if _prepared is not None
            else _to_sheet_crs(layers, summary, settings, hotspot_radius_m, best_server)
        )
        return _render(t, p, summary, size, extent, sheet_no)


def _kpi_text(col: str, v: Any) -> str:
    if isinstance(v, bool | np.bool_):
        return _themes.value_label(str(bool(v)))
    if isinstance(v, int | np.integer):
        return fmt_number(int(v)) if col != "code" else str(v)
    if isinstance(v, float | np.floating):
        f = float(v)
        if not math.isfinite(f):
            return "-"
        if _themes.is_share_column(col):
            return fmt_percent(f)
        return fmt_number(f, 0 if abs(f) >= 100 or f.is_integer() else 2)
    return textwrap.fill(_themes.value_label(v), 22)


def _total_row(kpis: pd.DataFrame, summary: Mapping[str, Any]) -> dict[str, Any]:
    """City total: sums of counts, population-weighted shares, the city's serving radius."""
    row: dict[str, Any] = {}
    pop = (
        pd.to_numeric(kpis["population"], errors="coerce") if "population" in kpis.columns else None
    )
    for c in kpis.columns:
        v = kpis[c]
        if c == "district":
            row[c] = _("City total")
        elif not pd.api.types.is_numeric_dtype(v) or c == "code":
            row[c] = ""
        elif _themes.is_share_column(c) and pop is not None and pop.sum() > 0:
            ok = v.notna()
            row[c] = float((v[ok] * pop[ok]).sum() / pop[ok].sum())
        elif c == "mean_serving_radius_km":
            r = summary.get("mean_serving_radius_km")
            row[c] = float(r) if isinstance(r, int | float) else math.nan
        else:
            row[c] = v.sum()
    return row


def render_kpi_pages(
    kpis: pd.DataFrame,
    summary: Mapping[str, Any],
    size: str = "A4",
    *,
    lang: str | None = None,
    first_sheet: tuple[int, int] | None = None,
) -> list[Figure]:
    """KPI table page(s) with translated headers, percentages and a city total row.

    All columns on one page (the font shrinks to fit the width); 28 districts
    per page; the total row is on the last page.  ``first_sheet``: (number of
    the first page, sheet count) for the title block.
    """
    if kpis is None or len(kpis) == 0:
        return []
    with use_language(lang or summary.get("language") or current_language()), mpl.rc_context(_rc()):
        table = pd.concat([kpis, pd.DataFrame([_total_row(kpis, summary)])], ignore_index=True)
        chunks = [
            table.iloc[i : i + _KPI_ROWS_PER_PAGE] for i in range(0, len(table), _KPI_ROWS_PER_PAGE)
        ]
        figs = []
        for k, rows in enumerate(chunks, start=1):
            no = (first_sheet[0] + k - 1, first_sheet[1]) if first_sheet else (k, len(chunks))
            sh = _Sheet(None, summary, size, n_maps=0, sheet_no=no)
            ax = sh.fig.add_axes((0.015, 0.36, 0.68, 0.55))
            ax.set_axis_off()
            _kpi_table(sh, ax, rows, last=k == len(chunks))
            figs.append(sh.finish())
        return figs


def _kpi_table(sh: _Sheet, ax: Axes, rows: pd.DataFrame, last: bool) -> None:
    """The table drawn cell by cell (column widths from the text, wrapped headers)."""
    cols = list(rows.columns)
    cells = [
        [_t(_kpi_text(c, v)) for c, v in zip(cols, r, strict=True)]
        for r in rows.itertuples(index=False)
    ]
    header = [_t(textwrap.fill(_themes.column_label(c), 12)) for c in cols]

    def width(text: str) -> int:
        return max(len(x) for x in text.split("\n"))

    chars = np.array(
        [max([width(header[i])] + [width(r[i]) for r in cells]) + 2 for i in range(len(cols))],
        dtype=float,
    )
    box = ax.get_position()
    fw, fh = sh.fig.get_size_inches()
    # font size at which the widest rendering fits: ~0.6 em per character
    fs = min(sh.fs, box.width * fw * 72 / (0.6 * chars.sum()))
    x = np.concatenate([[0.0], np.cumsum(chars / chars.sum())])
    n_head = max(h.count("\n") + 1 for h in header)
    line = fs * 1.45 / (box.height * fh * 72)
    row_h = [line * n_head + line * 0.4] + [
        line * (max(c.count("\n") for c in r) + 1) + line * 0.4 for r in cells
    ]
    y = 1.0
    rules: list[list[tuple[float, float]]] = []
    for k, (vals, h) in enumerate(zip([header, *cells], row_h, strict=True)):
        bold = k == 0 or (last and k == len(cells))
        if bold:
            ax.add_patch(
                Rectangle(
                    (0, y - h),
                    1,
                    h,
                    fc="#e8e8e8" if k == 0 else "#f3f3f3",
                    ec="none",
                    zorder=0,
                    transform=ax.transAxes,
                )
            )
        for i, v in enumerate(vals):
            left = i == 0 or k == 0
            sh.fig.text(  # on the figure: an Axes text is set up for clipping, cell by cell
                x[i] + 0.004 if i == 0 else (x[i] + x[i + 1]) / 2 if k == 0 else x[i + 1] - 0.004,
                y - h / 2,
                v,
                fontsize=fs,
                ha="left" if i == 0 else "center" if left else "right",
                va="center",
                fontweight="bold" if bold else "normal",
                transform=ax.transAxes,
            )
        rules.append([(0.0, y - h), (1.0, y - h)])
        y -= h
    rules += [[(xi, y), (xi, 1.0)] for xi in x] + [[(0.0, 1.0), (1.0, 1.0)]]
    ax.add_collection(
        LineCollection(
            rules, colors="#777777", linewidths=0.4, capstyle="projecting", transform=ax.transAxes
        ),
        autolim=False,
    )


def _slug(s: str) -> str:
    import unicodedata

    a = unicodedata.normalize("NFKD", s.replace("đ", "d").replace("Đ", "D"))
    return re.sub(r"[^A-Za-z0-9]+", "_", a.encode("ascii", "ignore").decode()).strip("_").lower()


def write_sheets(
    layers: Mapping[str, gpd.GeoDataFrame | None],
    summary: Mapping[str, Any],
    kpis: pd.DataFrame | None,
    out_dir: str | Path,
    sizes: Sequence[str] = ("A4", "A3"),
    dpi: int = 150,
    formats: Sequence[str] = ("pdf", "png"),
    themes: Sequence[str] | None = None,
    hotspot_radius_m: float = 100.0,
    *,
    lang: str | None = None,
    export_settings: ExportSettings | None = None,
    best_server: str | Path | None = None,
    per_district: bool = False,
    workers: int | None = None,
) -> list[Path]:
    """Write the map sheets and the KPI table page(s).

    Parameters
    ----------
    layers : dict of str -> GeoDataFrame
        Plan layers with a CRS (``demand`` is not drawn).
    summary : dict
        Plan summary; ``data_kind == DEMO_KIND`` stamps every sheet;
        ``title_block`` fills the title block.
    kpis : DataFrame or None
        District KPI table.
    out_dir : str or Path
        Folder for ``<theme>_<size>.<ext>``, ``kpi_table_<size>[_<k>].<ext>`` and
        ``district_<name>_<size>.<ext>``.
    sizes : sequence of str
        Paper sizes (``A4``, ``A3``), landscape.
    dpi : int
        PNG resolution (150: screen and dossier previews; PDFs are vector
        with embedded TrueType fonts and are the print product).
    formats : sequence of str
        ``pdf`` and/or ``png``.
    themes : sequence of str, optional
        Theme sheets (default all :data:`THEMES`; ``signal_level`` only with
        ``best_server``).
    hotspot_radius_m : float
        Wi-Fi coverage radius when ``wifi_hotspots`` has no ``radius_m``.
    lang, export_settings, best_server
        As in :func:`render_sheet`.
    per_district : bool
        Also each district's sheets: ``district_<name>_<size>`` (new sites) and
        ``district_<name>_<theme>_<size>`` for every other theme but the choropleths.
    workers : int, optional
        Processes drawing the sheets (default: one per core, at most 4; 1 draws in this
        process).  The files are the same, byte for byte, for any number of workers.

    Returns
    -------
    list of Path
        Files written.
    """
    _check_output_args(formats, dpi)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = export_settings or _settings_from(summary)
    language = lang or summary.get("language") or current_language()
    with use_language(language), mpl.rc_context(_rc()):
        p = _to_sheet_crs(layers, summary, settings, hotspot_radius_m, best_server, skip=_DEFERRED)
        tasks = _tasks(p, kpis, summary, sizes, themes or THEMES, per_district=per_district)
    ctx = _Context(p, summary, kpis, language, out, tuple(formats), dpi)
    n = _n_workers(workers, len(tasks))
    deferred = functools.partial(_deferred_layers, layers, summary, settings)
    if n > 1:
        written = _write_parallel(ctx, tasks, n, deferred)
    else:
        written = [
            f for fs in _write_serial(ctx._replace(p={**p, **deferred()}), tasks) for f in fs
        ]
    for size in sizes:
        logger.info("wrote %d sheets (%s) to %s", sum(t[1] == size for t in tasks), size, out)
    return written


class _Context(NamedTuple):
    """What every sheet of one :func:`write_sheets` call shares (sent once to each worker)."""

    p: Mapping[str, Any]
    summary: Mapping[str, Any]
    kpis: pd.DataFrame | None
    language: str
    out: Path
    formats: tuple[str, ...]
    dpi: int


_Task = tuple[str, str, Any]
"""(kind ``"theme"`` or ``"kpi"``, paper size, arguments): one sheet or the KPI pages."""


def _tasks(
    p: Mapping[str, Any],
    kpis: pd.DataFrame | None,
    summary: Mapping[str, Any],
    sizes: Sequence[str],
    themes: Sequence[str],
    *,
    per_district: bool,
) -> list[_Task]:
    """Every sheet to write, in file order, with its number in the set."""
    jobs = _jobs(p, themes, per_district=per_district)
    tb = summary.get("title_block") or {}
    first = int(tb.get("first_sheet_number") or 1)
    n_kpi = -(-(len(kpis) + 1) // _KPI_ROWS_PER_PAGE) if kpis is not None else 0
    count = int(tb.get("sheet_count") or (first - 1 + len(jobs) + n_kpi))
    tasks: list[_Task] = []
    for size in sizes:
        for i, job in enumerate(jobs, start=first):
            tasks.append(("theme", size, (job, (i, count))))
        if kpis is not None and len(kpis):
            tasks.append(("kpi", size, (first + len(jobs), count)))
    return tasks


def _n_workers(workers: int | None, n_tasks: int) -> int:
    """Worker processes: ``workers``, else one per core (at most 4); 1 inside a daemon process
    (a Dask or multiprocessing worker may not start processes) or for a single sheet."""
    import multiprocessing

    if multiprocessing.current_process().daemon:
        return 1
    n = workers if workers is not None else min(4, os.cpu_count() or 1)
    return max(1, min(int(n), n_tasks))


def _draw(ctx: _Context, task: _Task) -> list[tuple[str, Figure]]:
    """The figure(s) of one task with their file stems (no extension)."""
    kind, size, args = task
    if kind == "kpi":
        assert ctx.kpis is not None
        pages = render_kpi_pages(ctx.kpis, ctx.summary, size, lang=ctx.language, first_sheet=args)
        return [
            (f"kpi_table_{size}" + (f"_{k}" if len(pages) > 1 else ""), fig)
            for k, fig in enumerate(pages, start=1)
        ]
    (theme, stem, ext, title), no = args
    fig = _render(_theme_of(theme), ctx.p, ctx.summary, size, ext, no, title)
    return [(f"{stem}_{size}", fig)]


def _write_serial(ctx: _Context, tasks: Sequence[_Task]) -> list[list[Path]]:
    """All tasks in this process, the files of each; PNGs are rasterized from the PDFs on
    one worker thread (PDFium and zlib release the GIL) while the next sheet is drawn;
    PDFium is only ever called from that thread."""
    written: list[list[Path]] = []
    with (
        use_language(ctx.language),
        mpl.rc_context(_rc()),
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="towerplan-png") as pool,
    ):
        pngs: list[Future[None]] = []
        for task in tasks:
            written.append([])
            for stem, fig in _draw(ctx, task):
                written[-1] += _save(fig, ctx, stem, lambda *a: pngs.append(pool.submit(*a)))
        for f in pngs:
            f.result()  # re-raises a failed rasterization
    return written


_WORKER: _Context | None = None
"""The shared inputs in a worker process of :func:`_write_parallel`."""


def _init_worker(ctx: _Context) -> None:
    global _WORKER
    _WORKER = ctx


def _run_task(task: _Task) -> tuple[list[Path], list[CollectedWarning]]:
    """One task in a worker process: draw, write the PDF and rasterize the PNG; the files
    and the user warnings, which the parent process shows (:func:`collected_warnings`)."""
    ctx = _WORKER
    assert ctx is not None
    written: list[Path] = []
    with use_language(ctx.language), mpl.rc_context(_rc()), collected_warnings() as warned:
        for stem, fig in _draw(ctx, task):
            written += _save(fig, ctx, stem, lambda fn, *a: fn(*a))
    return written, warned


def _result(future: Future[tuple[list[Path], list[CollectedWarning]]]) -> list[Path]:
    """The files of a worker's task, its warnings shown here."""
    written, warned = future.result()
    replay_warnings(warned)
    return written


def _write_parallel(
    ctx: _Context, tasks: Sequence[_Task], n: int, deferred: Callable[[], Mapping[str, Any]]
) -> list[Path]:
    """The tasks on ``n`` worker processes; the files are those of :func:`_write_serial`,
    byte for byte (each sheet depends only on its task and ``ctx``), listed in task order.

    ``ctx.p`` lacks the :data:`_DEFERRED` layers: once the workers have started, this
    process computes them (``deferred()``) and draws the tasks that need them itself.
    Workers are forked when this process runs no other thread (nothing is copied: the
    layers are inherited); otherwise started fresh (``ctx`` is pickled to each once).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from towerplan._procs import fork_context

    fork_ctx = fork_context(need_cores=1)
    fork = fork_ctx is not None
    mp = fork_ctx if fork_ctx is not None else multiprocessing.get_context()
    here = [i for i, t in enumerate(tasks) if _needs_deferred(t)]
    there = [i for i in range(len(tasks)) if i not in here]
    if not there:  # every sheet needs them: the workers get them
        ctx, here, there = ctx._replace(p={**ctx.p, **deferred()}), [], here
    if fork:
        _warm_up()
        # objects made so far are left out of the workers' garbage collections: a collection
        # would touch (copy on write) every page of the inherited heap
        gc.freeze()
    try:
        with ProcessPoolExecutor(n, mp_context=mp, initializer=_init_worker, initargs=(ctx,)) as ex:
            # the slowest sheets first: the last ones to finish are then short
            order = sorted(there, key=lambda i: _cost(tasks[i]), reverse=True)
            futures = {i: ex.submit(_run_task, tasks[i]) for i in order}
            mine: dict[int, list[Path]] = {}
            if here:
                local = ctx._replace(p={**ctx.p, **deferred()})
                mine = dict(zip(here, _write_serial(local, [tasks[i] for i in here]), strict=True))
            return [
                path
                for i in range(len(tasks))
                for path in (mine[i] if i in mine else _result(futures[i]))
            ]
    finally:
        if fork:
            gc.unfreeze()


def _needs_deferred(task: _Task) -> bool:
    """Whether the task draws one of the :data:`_DEFERRED` layers."""
    kind, _size, args = task
    if kind != "theme":
        return False
    (theme, _stem, _ext, _title), _no = args
    return any(spec.layer in _DEFERRED for spec in _theme_of(theme).layers)


def _warm_up() -> None:
    """Import and load here what every sheet needs, so that forked workers inherit it
    instead of each importing it again (about 1 s of CPU per worker)."""
    import matplotlib.backends.backend_pdf  # noqa: F401
    import pypdfium2  # noqa: F401
    import rasterio.warp  # noqa: F401
    from fontTools import subset  # noqa: F401
    from matplotlib import font_manager

    _register_fonts()
    for weight in ("normal", "bold"):
        prop = font_manager.FontProperties(family=_FONT, weight=weight)
        font_manager.get_font(font_manager.findfont(prop))


def _cost(task: _Task) -> float:
    """Rough relative cost of a task (measured on the demo: an A3 sheet takes about 1.4
    times an A4 one, the KPI pages about 1.3 times a map sheet), to start the slow ones
    first."""
    kind, size, args = task
    big = 1.4 if size == "A3" else 1.0
    if kind == "kpi":
        return 1.3 * big
    (_theme, _stem, ext, _title), _no = args
    return big * (1.0 if ext is None else 0.8)


def _check_output_args(formats: Sequence[str], dpi: int) -> None:
    bad = [f for f in formats if f not in ("pdf", "png")]
    if bad:
        raise ParameterError(
            msgid=N_("sheet formats {formats} unknown; use 'pdf' and/or 'png'"), formats=bad
        )
    if dpi < 20 or dpi > 1200:
        raise ParameterError(
            msgid=N_("sheet dpi = {dpi}: use a value between 20 and 1200 (300 for print)"), dpi=dpi
        )


_Job = tuple[str, str, tuple[float, float, float, float] | None, str | None]
"""(theme, file stem, extent or None for the study area, title or None for the theme's)."""


def _zooms_to_a_district(t: _themes.Theme) -> bool:
    """A theme drawn per district: not the choropleths (one value per district)."""
    return all(spec.kind != "choropleth" for spec in t.layers)


def _jobs(p: Mapping[str, Any], themes: Sequence[str], *, per_district: bool) -> list[_Job]:
    """The theme sheets, then (``per_district``) each district's sheets of every theme that
    :func:`_zooms_to_a_district`: ``district_<name>`` (new sites, the first) and
    ``district_<name>_<theme>``."""
    todo = [t for t in themes if t != "signal_level" or "best_server" in p]
    jobs: list[_Job] = [(t, t, None, None) for t in todo]
    d = p.get("districts")
    if not per_district or not isinstance(d, gpd.GeoDataFrame) or "district" not in d.columns:
        return jobs
    zoom = [t for t in todo if _zooms_to_a_district(_theme_of(t))]
    zoom.sort(key=lambda t: t != "proposed_sites")
    for name, geom in zip(d["district"].astype(str), d.geometry, strict=True):
        for t in zoom:
            if t == "proposed_sites":
                title = _("New BTS sites: {district}").format(district=name)
                jobs.append((t, f"district_{_slug(name)}", geom.bounds, title))
            else:
                title = _("{theme} in {district}").format(
                    theme=_themes.theme_title(_theme_of(t)), district=name
                )
                jobs.append((t, f"district_{_slug(name)}_{t}", geom.bounds, title))
    return jobs


def _save(fig: Figure, ctx: _Context, stem: str, submit: Callable[..., Any]) -> list[Path]:
    """Write the figure as PDF; the PNG is that PDF rasterized (PDFium), not a second drawing.

    Drawing a sheet twice (PDF backend, then Agg) cost as much again as the PDF; the PNG
    rendered from the PDF is also exactly the print product.  The PNG job is handed to
    ``submit(function, *args)`` (a worker thread, or called at once).
    """
    buf = io.BytesIO()
    with _pdftext.remembered_shaping():
        fig.savefig(buf, format="pdf", dpi=72, metadata=_metadata("pdf", ctx.summary))
    data = buf.getvalue()
    paths = []
    for fmt in ctx.formats:
        path = ctx.out / f"{stem}.{fmt}"
        if fmt == "pdf":
            path.write_bytes(data)
        else:
            submit(_pdf_to_png, data, path, ctx.dpi, _metadata(fmt, ctx.summary))
        paths.append(path)
    return paths


def _pdf_to_png(data: bytes, path: Path, dpi: int, metadata: Mapping[str, str]) -> None:
    """Rasterize the one-page PDF ``data`` at ``dpi`` to ``path`` (RGB, PNG text chunks)."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(data)
    try:
        page = doc[0]
        w_pt = page.get_width()
        # as wide as matplotlib would draw it: round(inches * dpi) pixels
        scale = round(w_pt / 72 * dpi) / w_pt
        # RGB byte order from PDFium: no BGR -> RGB copy of the bitmap
        bitmap = page.render(scale=scale, draw_annots=False, rev_byteorder=True)
        path.write_bytes(_png(bitmap.to_numpy(), dpi, metadata))  # a view: bitmap kept alive
    finally:
        doc.close()


def _png(rgb: np.ndarray, dpi: int, metadata: Mapping[str, str]) -> bytes:
    """An 8-bit RGB PNG of ``rgb`` (rows x columns x 3): no row filter, zlib level 1.

    Pillow's PNG encoder tries every row filter on every row; on map sheets (flat colours)
    that took 60 % of the encoding time and gave larger files than no filter (1.63 against
    1.42 MB on an A3 sheet at 150 dpi).
    """
    import struct
    import zlib

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    h, w, _ = rgb.shape
    rows = np.zeros((h, 1 + 3 * w), dtype=np.uint8)  # a leading 0 per row: filter "none"
    rows[:, 1:] = rgb.reshape(h, 3 * w)
    ppm = round(dpi / 0.0254)
    parts = [b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))]
    for k, v in metadata.items():
        try:
            parts.append(chunk(b"tEXt", k.encode("latin-1") + b"\0" + v.encode("latin-1")))
        except UnicodeEncodeError:  # international text: iTXt, uncompressed, UTF-8
            parts.append(chunk(b"iTXt", k.encode("latin-1") + b"\0\0\0\0\0" + v.encode()))
    parts += [
        chunk(b"pHYs", struct.pack(">IIB", ppm, ppm, 1)),
        chunk(b"IDAT", zlib.compress(rows.data, 1)),
        chunk(b"IEND", b""),
    ]
    return b"".join(parts)


def _metadata(fmt: str, summary: Mapping[str, Any]) -> dict[str, str]:
    title = f"towerplan - {summary.get('scenario', '')} ({summary.get('data_kind', '')})"
    if fmt == "pdf":
        return {"Title": title, "Creator": f"towerplan {__version__}"}
    return {"Title": title, "Software": f"towerplan {__version__}"}
