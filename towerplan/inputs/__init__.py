"""Inputs: reading real data, the built-in demo, and the inputs a plan runs on.

Everything that enters towerplan passes through this package and leaves it in the
working metric CRS: :mod:`~towerplan.inputs.readers` (districts, population, sites,
POIs, roads, candidates), :mod:`~towerplan.inputs.demo` (the built-in demo) and
:class:`PlanInputs` (what :func:`towerplan.plan.run_plan` consumes).
"""

from towerplan.inputs._base import DEMO_KIND, DEMO_STAMP, PlanInputs
from towerplan.inputs.readers import load_inputs

__all__ = ["DEMO_KIND", "DEMO_STAMP", "PlanInputs", "load_inputs"]
