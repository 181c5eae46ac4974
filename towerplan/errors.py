"""One error hierarchy for towerplan.

Every error is a :class:`ValueError` subclass whose message names the input, the
problem and the fix.  The CLI prints ``towerplan: error: <message>`` on one line
and exits non-zero; it never shows a traceback for these.
"""

from __future__ import annotations

import logging
import numbers
import string
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = [
    "N_",
    "CRSError",
    "ColumnError",
    "DataFileError",
    "DuplicateIDError",
    "EmptyInputError",
    "GeometryError",
    "InfeasibleModelError",
    "OutputError",
    "ParameterError",
    "PopulationError",
    "RangeError",
    "ScenarioError",
    "StageError",
    "StudyAreaError",
    "Text",
    "TowerplanError",
    "TowerplanWarning",
    "collected_warnings",
    "replay_warnings",
    "warn_user",
]


def N_(message: str) -> str:
    """Mark ``message`` for gettext extraction without translating it (translate on use).

    Defined here, the bottom module, so that any module can mark its error messages;
    ``towerplan._i18n`` re-exports it.
    """
    return message


class _DecimalComma(string.Formatter):
    """``str.format`` with Vietnamese number punctuation: ``1.234,5`` for ``1,234.5``.

    Only numbers formatted for display (a format spec such as ``{n:,}`` or ``{x:.1f}``);
    a bare ``{x}`` echoes a value as the user typed it (a key, a flag value) and stays.
    """

    def format_field(self, value: Any, format_spec: str) -> str:
        text = super().format_field(value, format_spec)
        if format_spec and isinstance(value, numbers.Real) and not isinstance(value, bool):
            text = text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")
        return text


def _fill(
    msgid: str,
    params: dict[str, Any],
    translate: Callable[[str], str],
    decimal_comma: bool,
) -> str:
    """``msgid`` translated, then filled with ``params`` (:class:`Text` ones translated)."""
    filled = {
        k: v.user_message(translate, decimal_comma=decimal_comma) if isinstance(v, Text) else v
        for k, v in params.items()
    }
    text = translate(msgid)
    return _DecimalComma().format(text, **filled) if decimal_comma else text.format(**filled)


class Text(str):
    """A translatable part of an error message (a hint, a fix) passed as a parameter.

    ``Text(N_("swapping them would put {k} inside"), k=k)`` is the English text (a
    ``str``, so the English message is unchanged); :meth:`TowerplanError.user_message`
    translates it together with the message that carries it.
    """

    msgid: str
    params: dict[str, Any]

    def __new__(cls, msgid: str, /, **params: Any) -> Text:
        self = super().__new__(cls, msgid.format(**params))
        self.msgid = msgid
        self.params = params
        return self

    def user_message(self, translate: Callable[[str], str], *, decimal_comma: bool = False) -> str:
        """The text in the language of ``translate`` (numbers as ``1.234,5`` with
        ``decimal_comma``, as Vietnamese writes them)."""
        return _fill(self.msgid, self.params, translate, decimal_comma)

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled with its msgid (an error crossing a process boundary); str's default
        # would rebuild it from the English text, whose braces are no format fields
        return (_text, (self.msgid, self.params))


def _text(msgid: str, params: dict[str, Any]) -> Text:
    return Text(msgid, **params)


class TowerplanError(ValueError):
    """Base class of every user-facing towerplan error.

    ``TowerplanError("text")`` carries an English message (logs, ``str(exc)``).  A
    translatable one is raised as ``TowerplanError(msgid=N_("{out}: ... --out"),
    out=out)``: ``str(exc)`` is the English text, and :meth:`user_message` gives it in the
    language of a gettext ``translate`` function (the CLI passes ``towerplan._i18n._``).
    Placeholders are filled after translation, so file names and keys stay as given;
    a parameter that is a :class:`Text` (a hint, a fix) is translated too.
    """

    def __init__(self, message: str = "", /, *args: Any, msgid: str | None = None, **params: Any):
        if msgid is not None:
            message = msgid.format(**params)
        super().__init__(message, *args)
        self.msgid = msgid
        self.params = params

    def user_message(self, translate: Callable[[str], str], *, decimal_comma: bool = False) -> str:
        """The message in the language of ``translate`` (a gettext function); numbers as
        ``1.234,5`` with ``decimal_comma`` (Vietnamese).  A message raised without a
        ``msgid`` is returned as it is (English)."""
        if self.msgid is None:
            return str(self)
        return _fill(self.msgid, self.params, translate, decimal_comma)


class TowerplanWarning(UserWarning):
    """A user-facing warning: ``TowerplanWarning(N_("{n} sites ..."), n=n)``.

    ``str(w)`` is the English text (logs, ``pytest.warns(match=...)``); :meth:`user_message`
    gives it in the language of a gettext ``translate`` function, like
    :meth:`TowerplanError.user_message` (:class:`Text` parameters translated too).  Raise it
    with :func:`warn_user`.
    """

    def __init__(self, msgid: str, /, **params: Any):
        super().__init__(msgid.format(**params))
        self.msgid = msgid
        self.params = params

    def user_message(self, translate: Callable[[str], str], *, decimal_comma: bool = False) -> str:
        """The warning in the language of ``translate`` (numbers as ``1.234,5`` with
        ``decimal_comma``)."""
        return _fill(self.msgid, self.params, translate, decimal_comma)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_warning, (self.msgid, self.params))


def _warning(msgid: str, params: dict[str, Any]) -> TowerplanWarning:
    return TowerplanWarning(msgid, **params)


def warn_user(
    logger: logging.Logger,
    msgid: str,
    /,
    *,
    log_only: bool = False,
    stacklevel: int = 1,
    **params: Any,
) -> TowerplanWarning:
    """Warn the user: a :class:`TowerplanWarning` (Python ``warnings``, shown once per
    call site) and the English text on ``logger`` (``log_only``: the log line only).

    ``msgid`` is marked with ``N_`` at the call site and is in both catalogues; the CLI
    shows the warning in the user's language, logs and ``str()`` stay English.

    Parameters
    ----------
    logger : logging.Logger
        The calling module's logger.
    msgid : str
        English message with ``{name}`` placeholders, ``N_("...")``.
    log_only : bool
        Log only (no Python warning).
    stacklevel : int
        As for :func:`warnings.warn`, counted from the caller of ``warn_user``.
    **params
        Placeholder values (a :class:`Text` is translated with the message).

    Returns
    -------
    TowerplanWarning
        The warning (its ``str`` is the English text).
    """
    w = TowerplanWarning(msgid, **params)
    box = _COLLECTED.get()
    if box is not None:
        if (logger.name, str(w), log_only) not in {(n, str(c), lo) for n, c, lo in box}:
            box.append((logger.name, w, log_only))  # each warning once, as shown
        return w
    if not log_only:
        warnings.warn(w, stacklevel=stacklevel + 1)
    logger.warning("%s", w)
    return w


CollectedWarning = tuple[str, TowerplanWarning, bool]
"""(logger name, warning, log only) of a :func:`warn_user` call inside :func:`collected_warnings`."""

_COLLECTED: ContextVar[list[CollectedWarning] | None] = ContextVar(
    "towerplan_collected_warnings", default=None
)


@contextmanager
def collected_warnings() -> Iterator[list[CollectedWarning]]:
    """Keep the :func:`warn_user` warnings of the block (each once) in the yielded list
    instead of emitting them.

    For work in another process (a sheet worker, a Dask worker of ``towerplan batch``):
    there, no handler knows the user's language (a spawned or Dask worker has no CLI
    log handler; it would print the English text).  The worker returns the list
    (warnings pickle with their msgid and parameters) and the parent process passes it to
    :func:`replay_warnings`, where the CLI shows each in the user's language, once.
    """
    box: list[CollectedWarning] = []
    token = _COLLECTED.set(box)
    try:
        yield box
    finally:
        _COLLECTED.reset(token)


def replay_warnings(collected: Iterable[CollectedWarning]) -> None:
    """Emit warnings kept by :func:`collected_warnings` (in another process) here, as
    :func:`warn_user` would have: a Python warning (unless log only) and the log line on
    the logger that raised it."""
    for name, w, log_only in collected:
        if not log_only:
            warnings.warn(w, stacklevel=2)
        logging.getLogger(name).warning("%s", w)


class DataFileError(TowerplanError):
    """A data file is missing, unreadable or of an unknown format."""


class CRSError(TowerplanError):
    """A layer has no CRS, or a geographic CRS where a metric one is required."""


class ColumnError(TowerplanError):
    """A required column is missing or has the wrong type."""


class GeometryError(TowerplanError):
    """Geometries are invalid, empty or of the wrong type."""


class EmptyInputError(TowerplanError):
    """A layer or array has no rows where some are required."""


class PopulationError(TowerplanError):
    """Population values are missing, NaN or negative."""


class DuplicateIDError(TowerplanError):
    """Identifiers that must be unique are repeated."""


class StudyAreaError(TowerplanError):
    """Features fall outside the study area (e.g. lon/lat swapped)."""


class ScenarioError(TowerplanError):
    """A scenario is unknown, malformed or internally inconsistent."""


class ParameterError(TowerplanError):
    """A numeric parameter is out of its admissible range."""


class RangeError(ParameterError):
    """A model is used outside its validity range (frequency, height, distance)."""


class InfeasibleModelError(TowerplanError):
    """An optimisation model has no feasible solution (quotas, capacity, p)."""


class OutputError(TowerplanError):
    """The output folder cannot be used (exists and is not empty, not writable)."""


class StageError(TowerplanError):
    """A plan stage is unknown, or is run before the stages it needs."""
