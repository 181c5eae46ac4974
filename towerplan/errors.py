"""One error hierarchy for towerplan.

Every error is a :class:`ValueError` subclass whose message names the input, the
problem and the fix.  The CLI prints ``towerplan: error: <message>`` on one line
and exits non-zero; it never shows a traceback for these.
"""

from __future__ import annotations

__all__ = [
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
    "TowerplanError",
]


class TowerplanError(ValueError):
    """Base class of every user-facing towerplan error."""


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
