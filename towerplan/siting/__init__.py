"""Siting: candidate locations and the choice of new sites.

:mod:`~towerplan.siting.planner` is the GeoDataFrame adapter (candidates, the
multi-operator maximal-covering model, set covering) and
:mod:`~towerplan.siting.phasing` (the phased, multi-period build-out); the
matrix-level core is private: ``_model`` (typed MCLP problem, solution, settings),
``_heuristics``, ``_bounds``, ``_exact`` and the orchestration ``_mclp``; ``_setcover``
(partial set covering), ``_phasing`` (the multi-period maximal covering model) and
``_highs`` (the one HiGHS wrapper every model goes through:
``MilpModel`` + deterministic ``WorkLimits`` -> ``MilpResult``).
"""

from towerplan.siting.planner import (
    CoverageNeed,
    SetCoverResult,
    SitingResult,
    generate_candidates,
    plan_new_sites,
    set_cover,
    sites_needed_for_coverage,
)

__all__ = [
    "CoverageNeed",
    "SetCoverResult",
    "SitingResult",
    "generate_candidates",
    "plan_new_sites",
    "set_cover",
    "sites_needed_for_coverage",
]
