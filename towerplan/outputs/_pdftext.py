"""matplotlib's PDF writer with the shaping of text remembered for the whole process.

matplotlib (3.11, libraqm) shapes every string twice per PDF: once to measure it (layout,
legends) and once to write it, and a new PDF renderer per figure starts with an empty
measurement cache.  On the map sheets the same strings (title block, footer, legend
entries, statistics, tick labels) come back on every sheet of a paper size; shaping took
about a fifth of the CPU time of the sheets, at roughly 20 µs per character.

:func:`remembered_shaping` makes the PDF backend use :class:`_Renderer` while a figure is
saved: measurements, glyph layouts and the line metrics of a font are looked up by (font
properties, the settings that pick the font, string) and computed by matplotlib on the
first use only, so the files are byte for byte those of matplotlib (tested).  The glyphs
are not loaded into the font while writing (matplotlib loads each one, but the PDF writer
reads only the glyph indices and positions of the layout), and the font object is looked
up only when something is not remembered.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any, NamedTuple

_MAX_ENTRIES = 50_000
"""Remembered measurements and layouts, each; both are forgotten when one is full."""
_METRICS: dict[tuple[Any, ...], tuple[float, float, float]] = {}
_LAYOUTS: dict[tuple[Any, ...], tuple[_Glyph, ...]] = {}
_HEIGHTS: dict[tuple[Any, ...], tuple[Any, Any, Any]] = {}
_LOCK = threading.Lock()
_RC_KEYS = (
    "font.family",
    "font.serif",
    "font.sans-serif",
    "font.cursive",
    "font.fantasy",
    "font.monospace",
    "text.hinting_factor",
    "text.kerning_factor",
)
"""Settings that decide which font file and face matplotlib uses for a FontProperties."""


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _table_heights(font: Any, fontsize: float) -> tuple[Any, Any, Any]:
    """Ascent, descent and line gap of ``font`` at ``fontsize`` points on a 72 dpi page,
    computed as matplotlib's text layout does (``Text._get_layout``, matplotlib 3.11)."""
    dpi = 72
    for table_name, gap_key, ascent_key, descent_key in (
        ("OS/2", "sTypoLineGap", "sTypoAscender", "sTypoDescender"),
        ("hhea", "lineGap", "ascent", "descent"),
    ):
        table = font.get_sfnt_table(table_name)
        if table is None:
            continue
        units_per_em = font.get_sfnt_table("head")["unitsPerEm"]
        scale = 1 / units_per_em * fontsize * dpi / 72
        return table[ascent_key] * scale, -table[descent_key] * scale, table[gap_key] * scale
    return None, None, None


class _Glyph(NamedTuple):
    """What the PDF writer reads of a laid-out glyph (the fields of matplotlib's LayoutItem)."""

    ft_object: Any
    char: str
    glyph_index: int
    x: float
    y: float
    prev_kern: float


class _Unloaded:
    """A font whose ``load_glyph`` does nothing (the PDF writer does not read the glyph)."""

    __slots__ = ("_font",)

    def __init__(self, font: Any) -> None:
        self._font = font

    def load_glyph(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._font, name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Unloaded) and other._font is self._font

    def __hash__(self) -> int:
        return hash(self._font)


class _Shaped:
    """A font whose layouts are remembered (see the module docstring); matplotlib's font
    object is looked up (and set to the size) only when a layout is not remembered."""

    __slots__ = ("_font", "_key", "_resolve")

    def __init__(self, key: tuple[Any, ...], resolve: Any) -> None:
        self._key = key
        self._resolve = resolve
        self._font: Any = None

    def _real(self) -> Any:
        if self._font is None:
            self._font = self._resolve()
        return self._font

    def _layout(
        self, text: str, flags: Any, *, features: Any = None, language: Any = None
    ) -> tuple[_Glyph, ...]:
        key = (self._key, text, flags, features, language)
        hit = _LAYOUTS.get(key)
        if hit is None:
            hit = tuple(
                _Glyph(_Unloaded(g.ft_object), g.char, g.glyph_index, g.x, g.y, g.prev_kern)
                for g in self._real()._layout(text, flags, features=features, language=language)
            )
            _remember(_LAYOUTS, key, hit)
        return hit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real(), name)


def _remember(memo: dict[tuple[Any, ...], Any], key: tuple[Any, ...], value: Any) -> None:
    with _LOCK:
        if len(memo) >= _MAX_ENTRIES:
            memo.clear()
        memo[key] = value


VERIFIED_MATPLOTLIB = (3, 11)
"""The matplotlib series whose PDF text path the memo follows (private API, checked by a
byte-for-byte test); other versions write their PDFs as usual."""


def supported() -> bool:
    """Whether this matplotlib is the verified series and has the libraqm layout."""
    import matplotlib as mpl
    from matplotlib.ft2font import FT2Font

    return tuple(mpl.__version_info__[:2]) == VERIFIED_MATPLOTLIB and hasattr(FT2Font, "_layout")


@contextlib.contextmanager
def remembered_shaping() -> Iterator[None]:
    """Within: figures saved as PDF measure and shape their texts through the memo.

    Only on the verified matplotlib series (:func:`supported`); with other versions, and
    for PDFs with core (AFM) fonts, the PDFs are written as usual.
    """
    from matplotlib.backends import backend_pdf

    if not supported():
        yield
        return
    with _LOCK:
        if not _ACTIVE:
            _ACTIVE.append(backend_pdf.RendererPdf)
            backend_pdf.RendererPdf = _renderer_class()  # type: ignore[misc, assignment]
        _ACTIVE.append(None)
    try:
        yield
    finally:
        with _LOCK:
            _ACTIVE.pop()
            if len(_ACTIVE) == 1:  # the last one out puts matplotlib's class back
                backend_pdf.RendererPdf = _ACTIVE.pop()  # type: ignore[misc]


_ACTIVE: list[Any] = []
"""matplotlib's renderer class, then one entry per :func:`remembered_shaping` in progress
(threads may save figures at once)."""
_CLASS: list[type] = []


def _renderer_class() -> type:
    """:class:`matplotlib.backends.backend_pdf.RendererPdf` with the memo (made once)."""
    if _CLASS:
        return _CLASS[0]
    import matplotlib as mpl
    from matplotlib.backends import backend_pdf

    class _Renderer(backend_pdf.RendererPdf):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._rc_key = tuple(_hashable(mpl.rcParams[k]) for k in _RC_KEYS)  # type: ignore[index]

        def _font_key(self, prop: Any) -> tuple[Any, ...]:
            """What decides the font matplotlib picks for ``prop`` and its size."""
            return (
                tuple(prop.get_family()),
                prop.get_style(),
                prop.get_variant(),
                prop.get_weight(),
                prop.get_stretch(),
                prop.get_size_in_points(),
                prop.get_file(),
                self._rc_key,
            )

        def get_text_width_height_descent(
            self, s: str, prop: Any, ismath: Any
        ) -> tuple[float, float, float]:
            if ismath or mpl.rcParams["pdf.use14corefonts"]:
                return super().get_text_width_height_descent(s, prop, ismath)  # type: ignore[no-any-return]
            key = (self._font_key(prop), s)
            hit = _METRICS.get(key)
            if hit is None:
                hit = super().get_text_width_height_descent(s, prop, ismath)
                _remember(_METRICS, key, hit)
            return hit

        def _get_font_height_metrics(self, prop: Any) -> tuple[Any, Any, Any]:
            """The line metrics matplotlib's text layout reads from the font tables (at the
            72 dpi of a PDF), remembered: matplotlib looked the font up for every text."""
            stock = super()._get_font_height_metrics(prop)
            if stock[0] is not None or mpl.rcParams["text.usetex"]:
                return stock  # type: ignore[no-any-return]
            key = self._font_key(prop)
            hit = _HEIGHTS.get(key)
            if hit is None:
                hit = _table_heights(super()._get_font_ttf(prop), prop.get_size_in_points())
                _remember(_HEIGHTS, key, hit)
            return hit

        def _get_font_ttf(self, prop: Any) -> Any:
            return _Shaped(self._font_key(prop), lambda: super(_Renderer, self)._get_font_ttf(prop))

    _CLASS.append(_Renderer)
    return _Renderer
