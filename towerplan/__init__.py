"""towerplan: a planner for mobile towers (BTS) and telecom infrastructure.

The public API:

- :func:`load_scenario` -> :class:`Scenario` (targets, settings, data sources);
- :func:`load_inputs` -> :class:`PlanInputs` (the data, in the working metric CRS);
- :func:`run_plan` -> :class:`PlanResult` (every stage, outputs written);
- :data:`STAGES`, :class:`PlanState`, :func:`run_stage`, :func:`run_stages` (one stage at
  a time, e.g. for a batch runner), :func:`coverage_need` ("how many sites for X %?");
- the errors, all :class:`TowerplanError` (a :class:`ValueError`) subclasses.

The plan modules are imported on first use, so ``import towerplan`` stays light.

Examples
--------
>>> import towerplan
>>> scenario = towerplan.load_scenario("cantho-2020")
>>> scenario.sites.total, scenario.sites.new_shared
(1728, 276)
>>> result = towerplan.run_plan(scenario, "outputs/cantho-2020")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from towerplan.errors import (
    ColumnError,
    CRSError,
    DataFileError,
    DuplicateIDError,
    EmptyInputError,
    GeometryError,
    InfeasibleModelError,
    OutputError,
    ParameterError,
    PopulationError,
    RangeError,
    ScenarioError,
    StageError,
    StudyAreaError,
    TowerplanError,
)
from towerplan.scenario import Scenario, load_scenario

if TYPE_CHECKING:
    from towerplan.inputs import DEMO_KIND, PlanInputs, load_inputs
    from towerplan.plan import (
        STAGES,
        PlanResult,
        PlanState,
        coverage_need,
        run_plan,
        run_stage,
        run_stages,
    )

__version__ = "0.1.0"

_LAZY = {
    "DEMO_KIND": "towerplan.inputs",
    "PlanInputs": "towerplan.inputs",
    "load_inputs": "towerplan.inputs",
    "STAGES": "towerplan.plan",
    "PlanResult": "towerplan.plan",
    "PlanState": "towerplan.plan",
    "coverage_need": "towerplan.plan",
    "run_plan": "towerplan.plan",
    "run_stage": "towerplan.plan",
    "run_stages": "towerplan.plan",
}

__all__ = [
    "DEMO_KIND",
    "STAGES",
    "CRSError",
    "ColumnError",
    "DataFileError",
    "DuplicateIDError",
    "EmptyInputError",
    "GeometryError",
    "InfeasibleModelError",
    "OutputError",
    "ParameterError",
    "PlanInputs",
    "PlanResult",
    "PlanState",
    "PopulationError",
    "RangeError",
    "Scenario",
    "ScenarioError",
    "StageError",
    "StudyAreaError",
    "TowerplanError",
    "__version__",
    "coverage_need",
    "load_inputs",
    "load_scenario",
    "run_plan",
    "run_stage",
    "run_stages",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'towerplan' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


logging.getLogger(__name__).addHandler(logging.NullHandler())
