"""Languages of everything a user reads: gettext catalogues (private).

Message ids are English; the catalogues ``towerplan/locale/<lang>/LC_MESSAGES/
towerplan.po`` translate them (``vi``: Vietnamese, ``en``: English, msgstr =
msgid).  The compiled ``.mo`` files are committed beside the ``.po`` files and
a test checks that they are up to date.  Workflow (Babel, a dev dependency)::

    pybabel extract -F babel.cfg -o towerplan/locale/towerplan.pot towerplan
    pybabel update -i towerplan/locale/towerplan.pot -d towerplan/locale -D towerplan
    # translate the new entries of towerplan/locale/vi/LC_MESSAGES/towerplan.po
    pybabel compile -d towerplan/locale -D towerplan

Usage in the library::

    from towerplan._i18n import _, N_, use_language

    TITLE = N_("Proposed new sites")      # marked for extraction, translated later
    with use_language("vi"):
        _(TITLE)                          # -> "Trạm BTS xây mới"

The current language is a context variable (thread- and task-safe); the
default is English.  Numbers are formatted with :func:`fmt_number`
(``1.234.567,5`` in Vietnamese, ``1,234,567.5`` in English).
"""

from __future__ import annotations

import gettext
import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from importlib import resources

from towerplan.errors import N_, ParameterError

__all__ = [
    "DOMAIN",
    "LANGUAGES",
    "N_",
    "_",
    "current_language",
    "data_text",
    "fmt_number",
    "use_language",
]

DOMAIN = "towerplan"
LANGUAGES = ("vi", "en")
"""Languages with a catalogue (first: the language of the built-in Cần Thơ scenarios)."""

_LANG: ContextVar[str] = ContextVar("towerplan_language", default="en")


def check_language(lang: str, key: str = "language") -> str:
    """``lang`` if a catalogue exists, else :class:`ParameterError` naming ``key``."""
    if lang not in LANGUAGES:
        raise ParameterError(
            msgid=N_(
                "{key} = {lang}: no catalogue for this language; use one of {langs} "
                "(scenario key 'language' or CLI flag --lang)"
            ),
            key=key,
            lang=repr(lang),
            langs=list(LANGUAGES),
        )
    return lang


@lru_cache(maxsize=len(LANGUAGES))
def _translations(lang: str) -> gettext.NullTranslations:
    mo = resources.files("towerplan") / "locale" / lang / "LC_MESSAGES" / f"{DOMAIN}.mo"
    with mo.open("rb") as fh:
        return gettext.GNUTranslations(fh)


def current_language() -> str:
    """The language set by the innermost :func:`use_language` (default ``en``)."""
    return _LANG.get()


@contextmanager
def use_language(lang: str | None) -> Iterator[str]:
    """Translate with ``lang`` inside the block (``None``: keep the current one)."""
    if lang is None:
        yield _LANG.get()
        return
    token = _LANG.set(check_language(lang))
    try:
        yield lang
    finally:
        _LANG.reset(token)


def _(message: str) -> str:
    """``message`` (an English msgid) in the current language."""
    return _translations(_LANG.get()).gettext(message)


def data_text(text: str) -> str:
    """A text carried in the data (a summary note, ``data_kind``, a caption) in the current
    language when the catalogue has it (its English msgid marked with ``N_`` where it is
    made), else as it is."""
    return _(text) if text else text


def fmt_number(value: float | int, decimals: int = 0) -> str:
    """``value`` with thousands separators of the current language (``-`` when not finite)."""
    v = float(value)
    if not math.isfinite(v):
        return "-"
    text = f"{v:,.{decimals}f}"
    if _LANG.get() == "vi":
        text = text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")
    return text


def fmt_percent(share: float, decimals: int = 1) -> str:
    """A share 0-1 as a percentage in the current language (``76,4 %``)."""
    return f"{fmt_number(100.0 * float(share), decimals)} %"
