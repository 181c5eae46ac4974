"""towerplan: a planner for mobile towers (BTS) and telecom infrastructure."""

from __future__ import annotations

import logging

from towerplan.errors import TowerplanError
from towerplan.scenario import Scenario, load_scenario

__version__ = "0.1.0"
__all__ = ["Scenario", "TowerplanError", "__version__", "load_scenario"]

logging.getLogger(__name__).addHandler(logging.NullHandler())
