"""Siting: candidate locations and the choice of new sites.

:mod:`~towerplan.siting.planner` is the GeoDataFrame adapter (candidates, the
multi-operator maximal-covering model, set covering, capacity check); the
matrix-level models and solvers live in the private modules ``_mclp`` and
``_setcover``.
"""

from towerplan.siting.planner import (
    CoverageNeed,
    SetCoverResult,
    SitingResult,
    capacity_sites_needed,
    generate_candidates,
    plan_new_sites,
    set_cover,
    sites_needed_for_coverage,
)

__all__ = [
    "CoverageNeed",
    "SetCoverResult",
    "SitingResult",
    "capacity_sites_needed",
    "generate_candidates",
    "plan_new_sites",
    "set_cover",
    "sites_needed_for_coverage",
]
