"""matplotlib's PDF writer with the shaping of text remembered for the whole process.

matplotlib (3.11, libraqm) shapes every string twice per PDF: once to measure it (layout,
legends) and once to write it, and a new PDF renderer per figure starts with an empty
measurement cache.  On the map sheets the same strings (title block, footer, legend
entries, statistics, tick labels) come back on every sheet of a paper size; shaping took
about a fifth of the CPU time of the sheets, at roughly 20 µs per character.

:func:`remembered_shaping` makes the PDF backend use :class:`_Renderer` while a figure is
saved: measurements and glyph layouts are looked up by (font object, size, string) and
computed by matplotlib on the first use only, so the files are byte for byte those of
matplotlib.  The glyphs are not loaded into the font while writing (matplotlib loads each
one, but the PDF writer reads only the glyph indices and positions of the layout).
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
_LOCK = threading.Lock()


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
    """A font (set to one size) whose layouts are remembered (see the module docstring)."""

    __slots__ = ("_font", "_size")

    def __init__(self, font: Any, size: float) -> None:
        self._font = font
        self._size = size

    def _layout(
        self, text: str, flags: Any, *, features: Any = None, language: Any = None
    ) -> tuple[_Glyph, ...]:
        key = (self._font, self._size, text, flags, features, language)
        hit = _LAYOUTS.get(key)
        if hit is None:
            hit = tuple(
                _Glyph(_Unloaded(g.ft_object), g.char, g.glyph_index, g.x, g.y, g.prev_kern)
                for g in self._font._layout(text, flags, features=features, language=language)
            )
            _remember(_LAYOUTS, key, hit)
        return hit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._font, name)


def _remember(memo: dict[tuple[Any, ...], Any], key: tuple[Any, ...], value: Any) -> None:
    with _LOCK:
        if len(memo) >= _MAX_ENTRIES:
            memo.clear()
        memo[key] = value


@contextlib.contextmanager
def remembered_shaping() -> Iterator[None]:
    """Within: figures saved as PDF measure and shape their texts through the memo.

    matplotlib versions without the libraqm layout (``FT2Font._layout``, before 3.11) and
    PDFs with core (AFM) fonts are written as usual.
    """
    from matplotlib.backends import backend_pdf
    from matplotlib.ft2font import FT2Font

    if not hasattr(FT2Font, "_layout"):
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
        def get_text_width_height_descent(
            self, s: str, prop: Any, ismath: Any
        ) -> tuple[float, float, float]:
            if ismath or mpl.rcParams["pdf.use14corefonts"]:
                return super().get_text_width_height_descent(s, prop, ismath)  # type: ignore[no-any-return]
            font = super()._get_font_ttf(prop)
            key = (font, prop.get_size_in_points(), s)
            hit = _METRICS.get(key)
            if hit is None:
                hit = super().get_text_width_height_descent(s, prop, ismath)
                _remember(_METRICS, key, hit)
            return hit

        def _get_font_ttf(self, prop: Any) -> Any:
            return _Shaped(super()._get_font_ttf(prop), prop.get_size_in_points())

    _CLASS.append(_Renderer)
    return _Renderer
