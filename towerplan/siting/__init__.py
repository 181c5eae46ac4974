"""Siting: candidate locations and the choice of new sites.

:mod:`~towerplan.siting.planner` is the GeoDataFrame adapter (candidates, the
multi-operator maximal-covering model, set covering, capacity check); the
matrix-level core is private: ``_model`` (typed MCLP problem, solution, settings),
``_heuristics``, ``_bounds``, ``_exact`` and the orchestration ``_mclp``; ``_setcover``
(partial set covering) and ``_highs`` (the one HiGHS wrapper every model goes through:
``MilpModel`` + deterministic ``WorkLimits`` -> ``MilpResult``).
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
