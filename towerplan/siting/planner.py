"""Siting: candidate sites, multi-operator maximal coverage, set covering.

This module is the GeoDataFrame adapter; the optimisation core works on sparse
matrices in :mod:`towerplan.siting._mclp` and :mod:`towerplan.siting._setcover`.

Model (:func:`plan_new_sites`)
------------------------------
Demand cells ``i`` carry population ``pop_i``; operators ``o`` have market shares
``s_o``.  Existing sites are *locked*: each covers, for every operator it hosts
(``operators`` column, ``;``-joined), the cells within ``radius_m``.  The model

* maximises ``sum_i sum_o pop_i * s_o * [cell i covered for operator o]`` — the
  market-share-weighted covered population (with shares summing to 1 this is
  "population-equivalent"), where only gaps of each operator can be gained;
* opens **exactly** ``n_dedicated + n_shared`` new structures at candidate sites:
  ``n_dedicated`` host exactly one operator, ``n_shared`` host 2..``max_tenants``
  operators (per-candidate ``max_tenants`` column when present, e.g. the spare slots
  of a co-location candidate);
* a new structure covers a cell for operator ``o`` only if it hosts ``o``;
* two new structures are never closer than ``min_spacing_m`` (0 = no limit).

Exact reductions before solving: cells with no remaining gap for any operator are
dropped, cells covered by one candidate only become that candidate's private gain,
cells with identical covering candidate sets are merged.  Solvers: lazy greedy with
swap local search certified by a Lagrangian upper bound (``heuristic``), the sparse
MILP through HiGHS (``exact``), and ``auto`` (heuristic first; MILP warm-started from
it when the certified gap exceeds ``mip_gap``).  The result reports objective, upper
bound, gap and which solver was used and why.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.spatial import cKDTree

from towerplan._validate import require_metric
from towerplan.coverage import coverage_matrix, operator_coverage, points_xy
from towerplan.errors import (
    N_,
    ColumnError,
    EmptyInputError,
    InfeasibleModelError,
    ParameterError,
)
from towerplan.siting import _mclp
from towerplan.siting._setcover import SetCoverResult, solve_set_cover

logger = logging.getLogger(__name__)

__all__ = [
    "CoverageNeed",
    "SetCoverResult",
    "SitingResult",
    "generate_candidates",
    "plan_new_sites",
    "set_cover",
    "sites_needed_for_coverage",
]

CANDIDATE_COLUMNS = ["cand_id", "source", "cost", "priority", "max_tenants", "site_ref", "district"]
PROPOSED_COLUMNS = [
    "site_id",
    "site_type",
    "operators",
    "n_tenants",
    "district",
    "lon",
    "lat",
    "cand_id",
    "source",
    "population_gain",
]


@dataclass
class SitingResult:
    """Result of :func:`plan_new_sites`.

    Attributes
    ----------
    proposed : GeoDataFrame
        New structures: ``site_id`` (``NEW-0001``...), ``site_type`` (dedicated|shared),
        ``operators`` (``;``-joined, largest gain first), ``n_tenants``, ``district``,
        ``lon``, ``lat``, ``cand_id``, ``source``, ``population_gain`` (weighted
        population newly covered; a cell-operator pair covered by several new sites is
        split equally among them, so the column sums to ``objective - covered_before``).
    objective : float
        Weighted covered population after the plan (existing coverage included).
    upper_bound : float
        Proven upper bound on the optimum of the model.
    gap : float
        ``(upper_bound - objective) / upper_bound``.
    solver_used : str
        Which solver produced the solution, and why.
    runtime_s, build_s, solve_s : float
        Wall times: total, model build (coverage + reduction), solve.
    covered_before : float
        Weighted population covered by the locked existing sites.
    log : dict
        Reduction sizes, solver statistics.
    stopped_by : str
        ``"gap"`` (certified within ``mip_gap``), ``"work_limit"`` (deterministic work
        budget spent first) or ``"time_limit"`` (the wall-clock safety stop fired).
    """

    proposed: gpd.GeoDataFrame
    objective: float
    upper_bound: float
    gap: float
    solver_used: str
    runtime_s: float
    build_s: float
    solve_s: float
    covered_before: float = 0.0
    log: dict[str, Any] = field(default_factory=dict)
    stopped_by: str = "work_limit"

    @property
    def reproducible(self) -> bool:
        """False when the wall-clock safety stop cut the solve (result depends on load)."""
        return self.stopped_by != "time_limit"

    @property
    def proven_optimal(self) -> bool:
        """True when the bound equals the objective (relative tolerance 1e-9)."""
        return bool(self.upper_bound - self.objective <= 1e-9 * max(abs(self.upper_bound), 1.0))

    def summary(self) -> dict[str, Any]:
        """The ``siting`` section of ``summary.json``: figures, proof status, work, sizes."""
        work_keys = (
            "swap_passes",
            "swap_moves",
            "lagrangian_iterations",
            "lns_subproblems",
            "lns_improvements",
            "lns_pair_subproblems",
            "lns_pair_improvements",
            "milp_nodes",
            "milp_simplex_iterations",
            "milp_checkpoints",
        )
        size_keys = (
            "rows_input",
            "rows_with_weight",
            "rows_singleton_folded",
            "rows_after_merge",
            "candidates",
            "candidates_useful",
            "nnz",
            "min_spacing_conflict_pairs",
        )
        return {
            "solver_used": self.solver_used,
            "objective": self.objective,
            "bound": self.upper_bound,
            "upper_bound": self.upper_bound,
            "gap": self.gap,
            "proven_optimal": self.proven_optimal,
            "stopped_by": self.stopped_by,
            "reproducible": self.reproducible,
            "work": {k: self.log[k] for k in work_keys if self.log.get(k) is not None},
            "presolve": {k: self.log[k] for k in size_keys if k in self.log},
            "build_s": self.build_s,
            "solve_s": self.solve_s,
        }


# --------------------------------------------------------------------------- candidates


def _union_boundary(boundary: Any) -> Any:
    if boundary is None:
        return None
    if isinstance(boundary, gpd.GeoDataFrame | gpd.GeoSeries):
        require_metric(boundary, "boundary")
        return boundary.union_all()
    return boundary


def _lattice(bounds: tuple[float, float, float, float], s: float, kind: str) -> np.ndarray:
    minx, miny, maxx, maxy = bounds
    x0 = math.floor(minx / s) * s - s
    y0 = math.floor(miny / s) * s - s
    if kind == "grid":
        xs = np.arange(x0, maxx + 2 * s, s)
        ys = np.arange(y0, maxy + 2 * s, s)
        gx, gy = np.meshgrid(xs, ys)
        return np.column_stack([gx.ravel(), gy.ravel()])
    dy = s * math.sqrt(3.0) / 2.0
    ys = np.arange(y0, maxy + 2 * dy, dy)
    xs = np.arange(x0, maxx + 2 * s, s)
    pts = []
    for r, y in enumerate(ys):
        off = (s / 2.0) if r % 2 else 0.0
        pts.append(np.column_stack([xs + off, np.full(len(xs), y)]))
    return np.vstack(pts)


def _grid_cells(demand: gpd.GeoDataFrame, only_uncovered: np.ndarray | None) -> np.ndarray:
    """Mask of the demand rows that get grid candidates (populated, optionally uncovered)."""
    pop = (
        demand["population"].to_numpy(dtype=float)
        if "population" in demand.columns
        else np.ones(len(demand))
    )
    rel = pop > 0
    if only_uncovered is not None:
        mask = np.asarray(only_uncovered, dtype=bool)
        if mask.shape != (len(demand),):
            raise ParameterError(
                msgid=N_(
                    "only_uncovered: expected a bool mask of length {n_demand}, got shape {shape}"
                ),
                n_demand=len(demand),
                shape=mask.shape,
            )
        rel &= mask
    return rel


def _grid_frame(
    pts: np.ndarray, spacing_m: float, kind: str, boundary: Any, max_tenants: int
) -> pd.DataFrame:
    """Grid candidates: lattice points nearest to ``pts``, inside ``boundary`` if given."""
    lat = _lattice(
        (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()), spacing_m, kind
    )
    _, near = cKDTree(lat).query(pts, k=1)
    used = lat[np.unique(near)]
    bnd = _union_boundary(boundary)
    if bnd is not None and len(used):
        import shapely

        inside = shapely.covers(bnd, shapely.points(used[:, 0], used[:, 1]))
        used = used[np.asarray(inside, dtype=bool)]
    return pd.DataFrame(
        {
            "x": used[:, 0],
            "y": used[:, 1],
            "source": "grid",
            "cost": 1.0,
            "priority": 0.0,
            "max_tenants": int(max_tenants),
            "site_ref": None,
        }
    )


def _colocation_frame(
    existing_sites: gpd.GeoDataFrame, demand: gpd.GeoDataFrame, max_tenants: int
) -> pd.DataFrame:
    """Co-location candidates: existing structures with spare tenancy slots."""
    if existing_sites.crs is not None and existing_sites.crs != demand.crs:
        require_metric(existing_sites, "existing_sites")
    exy = points_xy(existing_sites, "existing_sites")
    mt = (
        existing_sites["max_tenants"].to_numpy(dtype=float)
        if "max_tenants" in existing_sites.columns
        else np.full(len(existing_sites), float(max_tenants))
    )
    nt = (
        existing_sites["n_tenants"].to_numpy(dtype=float)
        if "n_tenants" in existing_sites.columns
        else np.ones(len(existing_sites))
    )
    spare = np.nan_to_num(mt, nan=float(max_tenants)) - np.nan_to_num(nt, nan=1.0)
    ok = spare >= 1
    ref = (
        existing_sites["site_id"].astype(str).to_numpy()
        if "site_id" in existing_sites.columns
        else existing_sites.index.astype(str).to_numpy()
    )
    return pd.DataFrame(
        {
            "x": exy[ok, 0],
            "y": exy[ok, 1],
            "source": "colocation",
            "cost": 1.0,
            "priority": 0.0,
            "max_tenants": spare[ok].astype(int),
            "site_ref": ref[ok],
        }
    )


def _user_frame(user_candidates: gpd.GeoDataFrame, max_tenants: int) -> pd.DataFrame:
    """User candidates with their optional ``cost``, ``priority`` and ``max_tenants``."""
    require_metric(user_candidates, "user_candidates")
    uxy = points_xy(user_candidates, "user_candidates")

    def col(name: str, default: float) -> np.ndarray:
        if name in user_candidates.columns:
            v = pd.to_numeric(user_candidates[name], errors="coerce").to_numpy(dtype=float)
            return np.where(np.isfinite(v), v, default)
        return np.full(len(user_candidates), default)

    return pd.DataFrame(
        {
            "x": uxy[:, 0],
            "y": uxy[:, 1],
            "source": "user",
            "cost": col("cost", 1.0),
            "priority": col("priority", 0.0),
            "max_tenants": col("max_tenants", float(max_tenants)).astype(int),
            "site_ref": None,
        }
    )


def _candidates_gdf(
    frames: list[pd.DataFrame], demand: gpd.GeoDataFrame, dxy: np.ndarray, crs: Any
) -> gpd.GeoDataFrame:
    """Concatenate the candidate sources, number them and add the nearest cell's district."""
    if not frames:
        df = pd.DataFrame(
            {
                "x": [],
                "y": [],
                "source": [],
                "cost": [],
                "priority": [],
                "max_tenants": [],
                "site_ref": [],
            }
        )
    else:
        df = pd.concat(frames, ignore_index=True)
    df.insert(0, "cand_id", np.arange(len(df), dtype=np.int64))
    if "district" in demand.columns and len(df):
        _, near = cKDTree(dxy).query(df[["x", "y"]].to_numpy(), k=1)
        df["district"] = demand["district"].to_numpy()[near]
    else:
        df["district"] = None
    gdf = gpd.GeoDataFrame(
        df.drop(columns=["x", "y"]),
        geometry=gpd.points_from_xy(df["x"], df["y"]),
        crs=crs,
    )
    gdf["max_tenants"] = gdf["max_tenants"].astype(np.int64)
    return gdf


def generate_candidates(
    demand: gpd.GeoDataFrame,
    spacing_m: float,
    existing_sites: gpd.GeoDataFrame | None = None,
    user_candidates: gpd.GeoDataFrame | None = None,
    boundary: Any = None,
    only_uncovered: np.ndarray | None = None,
    kind: Literal["grid", "hex"] = "grid",
    max_tenants: int = 3,
) -> gpd.GeoDataFrame:
    """Candidate sites for new structures.

    Three sources:

    * ``grid`` — points of a square (``kind='grid'``) or hexagonal (``kind='hex'``)
      lattice of spacing ``spacing_m`` anchored at multiples of the spacing; a lattice
      point is kept when at least one populated demand cell (restricted to
      ``only_uncovered`` when given) has it as nearest lattice point, and when it lies
      inside ``boundary`` (if given);
    * ``colocation`` — existing structures with spare tenancy
      (``max_tenants - n_tenants > 0`` when those columns exist; the spare slots become
      the candidate's ``max_tenants``); choosing one means a new tenancy structure
      entry at that location (drop ``existing_sites`` to exclude them);
    * ``user`` — a user layer of candidate points, with optional ``cost``,
      ``priority`` and ``max_tenants`` columns.

    Parameters
    ----------
    demand : GeoDataFrame
        Demand cells (points) with ``population``, in a metric CRS.
    spacing_m : float
        Lattice spacing in metres (> 0).
    existing_sites, user_candidates : GeoDataFrame, optional
        Same CRS as ``demand``.
    boundary : shapely geometry, GeoSeries or GeoDataFrame, optional
        Study area; grid candidates outside are dropped.
    only_uncovered : ndarray of bool, optional
        Mask over ``demand`` rows; grid candidates are placed only for these cells.
    kind : {'grid', 'hex'}
        Lattice kind.
    max_tenants : int
        Default tenancy limit for grid and user candidates.

    Returns
    -------
    GeoDataFrame
        ``cand_id`` (0..N-1), ``source``, ``cost`` (relative, 1.0 unless given),
        ``priority`` (0.0 unless given), ``max_tenants``, ``site_ref`` (existing
        ``site_id`` for co-location), ``district`` (of the nearest demand cell), in
        ``demand``'s CRS.
    """
    crs = require_metric(demand, "demand")
    if len(demand) == 0:
        raise EmptyInputError(msgid=N_("demand: no demand cells; build the demand grid first"))
    if not (isinstance(spacing_m, int | float) and np.isfinite(spacing_m) and spacing_m > 0):
        raise ParameterError(
            msgid=N_(
                "spacing_m = {spacing_m}: candidate spacing must be a positive number of metres"
            ),
            spacing_m=spacing_m,
        )
    if kind not in ("grid", "hex"):
        raise ParameterError(
            msgid=N_("kind = {kind!r}: use 'grid' or 'hex'"),
            kind=kind,
        )
    dxy = points_xy(demand, "demand")
    rel = _grid_cells(demand, only_uncovered)
    frames: list[pd.DataFrame] = []
    if rel.any():
        frames.append(_grid_frame(dxy[rel], spacing_m, kind, boundary, max_tenants))
    if existing_sites is not None and len(existing_sites):
        frames.append(_colocation_frame(existing_sites, demand, max_tenants))
    if user_candidates is not None and len(user_candidates):
        frames.append(_user_frame(user_candidates, max_tenants))
    gdf = _candidates_gdf(frames, demand, dxy, crs)
    logger.info(
        "candidates: %s",
        gdf["source"].value_counts().to_dict() if len(gdf) else {},
    )
    return gdf


# --------------------------------------------------------------------------- MCLP adapter


def _check_radius(radius_m: float) -> float:
    try:
        r = float(radius_m)
    except (TypeError, ValueError):
        raise ParameterError(
            msgid=N_("radius_m = {radius_m!r}: must be a number of metres"),
            radius_m=radius_m,
        ) from None
    if not np.isfinite(r) or r <= 0:
        raise ParameterError(
            msgid=N_(
                "radius_m = {radius_m}: the coverage radius must be a positive number of metres"
            ),
            radius_m=radius_m,
        )
    return r


def _check_operators(operators: Mapping[str, float]) -> tuple[list[str], np.ndarray]:
    if not operators:
        raise ParameterError(
            msgid=N_("operators: give at least one operator with its market share")
        )
    names = [str(k) for k in operators]
    shares = np.array([float(v) for v in operators.values()])
    if (~np.isfinite(shares)).any() or (shares < 0).any():
        raise ParameterError(
            msgid=N_("operators: market shares must be >= 0, got {operators}"),
            operators=dict(operators),
        )
    return names, shares


def _population(demand: pd.DataFrame) -> np.ndarray:
    if "population" not in demand.columns:
        raise ColumnError(
            msgid=N_("demand: column 'population' is missing; columns are {columns}"),
            columns=list(demand.columns),
        )
    pop = pd.to_numeric(demand["population"], errors="coerce").to_numpy(dtype=float)
    if (~np.isfinite(pop)).any() or (pop < 0).any():
        from towerplan.errors import PopulationError

        raise PopulationError(
            msgid=N_("demand: 'population' has NaN or negative values; fix or drop them")
        )
    return pop


def _conflicts(xy: np.ndarray, min_spacing_m: float) -> sp.csr_matrix | None:
    if min_spacing_m <= 0 or len(xy) < 2:
        return None
    pairs = cKDTree(xy).query_pairs(min_spacing_m * (1 - 1e-9), output_type="ndarray")
    if len(pairs) == 0:
        return None
    m = len(xy)
    data = np.ones(2 * len(pairs), dtype=bool)
    r = np.concatenate([pairs[:, 0], pairs[:, 1]])
    c = np.concatenate([pairs[:, 1], pairs[:, 0]])
    return sp.csr_matrix((data, (r, c)), shape=(m, m))


def _candidate_caps(candidates: pd.DataFrame, max_tenants: int) -> np.ndarray:
    if max_tenants < 1:
        raise ParameterError(
            msgid=N_("max_tenants = {max_tenants}: must be >= 1"),
            max_tenants=max_tenants,
        )
    if "max_tenants" in candidates.columns:
        v = pd.to_numeric(candidates["max_tenants"], errors="coerce").to_numpy(dtype=float)
        v = np.where(np.isfinite(v), v, max_tenants)
        return np.minimum(v, max_tenants).astype(np.int64).clip(min=1)
    return np.full(len(candidates), int(max_tenants), dtype=np.int64)


def _site_radii(
    candidates: gpd.GeoDataFrame, radius_m: float | str
) -> tuple[float | np.ndarray, float | str]:
    """Coverage radii of the candidates and of the existing sites (a number or a column)."""
    if not isinstance(radius_m, str):
        r = _check_radius(radius_m)
        return r, r
    # per-site radii from a column of the candidates (and of the existing sites)
    if radius_m not in candidates.columns:
        raise ColumnError(
            msgid=N_("candidates: radius column '{radius_m}' not found; columns are {columns}"),
            radius_m=radius_m,
            columns=list(candidates.columns),
        )
    r_cand = candidates[radius_m].to_numpy(dtype=float)
    if not (bool(np.all(np.isfinite(r_cand))) and bool(np.all(r_cand > 0))):
        raise ParameterError(
            msgid=N_(
                "candidates.{radius_m}: every coverage radius must be a positive number of metres"
            ),
            radius_m=radius_m,
        )
    return r_cand, radius_m


@dataclass
class _SitingSpec:
    """Validated operators, radii, quotas and limits of :func:`plan_new_sites`."""

    names: list[str]
    shares: np.ndarray
    r_cand: float | np.ndarray
    r_exist: float | str
    n_dedicated: int
    n_shared: int
    max_tenants: int
    min_spacing_m: float


def _siting_spec(
    candidates: gpd.GeoDataFrame,
    *,
    operators: Mapping[str, float],
    n_dedicated: int,
    n_shared: int,
    radius_m: float | str,
    max_tenants: int,
    min_spacing_m: float,
) -> _SitingSpec:
    """Check radii, operators and quota types (in this order) and bundle them."""
    r_cand, r_exist = _site_radii(candidates, radius_m)
    names, shares = _check_operators(operators)
    for nm, v in (("n_dedicated", n_dedicated), ("n_shared", n_shared)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
            raise ParameterError(
                msgid=N_("{nm} = {v!r}: must be a whole number >= 0"),
                nm=nm,
                v=v,
            )
    return _SitingSpec(
        names=names,
        shares=shares,
        r_cand=r_cand,
        r_exist=r_exist,
        n_dedicated=n_dedicated,
        n_shared=n_shared,
        max_tenants=max_tenants,
        min_spacing_m=min_spacing_m,
    )


def _check_feasible(spec: _SitingSpec, n_candidates: int) -> None:
    """Raise when the quotas cannot be met by the candidates, operators or tenancy limit."""
    n_shared, max_tenants, min_spacing_m = spec.n_shared, spec.max_tenants, spec.min_spacing_m
    p = int(spec.n_dedicated) + int(n_shared)
    if p > n_candidates:
        raise InfeasibleModelError(
            msgid=N_(
                "n_dedicated + n_shared = {p} new structures but only {n_candidates} "
                "candidates; generate more candidates (smaller spacing_m) or lower the quotas"
            ),
            p=p,
            n_candidates=n_candidates,
        )
    if not np.isfinite(min_spacing_m) or min_spacing_m < 0:
        raise ParameterError(
            msgid=N_("min_spacing_m = {min_spacing_m}: must be a distance >= 0 (metres)"),
            min_spacing_m=min_spacing_m,
        )
    if n_shared > 0 and len(spec.names) < 2:
        raise InfeasibleModelError(
            msgid=N_(
                "n_shared = {n_shared}: a shared structure needs at least 2 operators, got {names}"
            ),
            n_shared=n_shared,
            names=spec.names,
        )
    if n_shared > 0 and max_tenants < 2:
        raise InfeasibleModelError(
            msgid=N_(
                "n_shared = {n_shared} but max_tenants = {max_tenants}; a shared structure "
                "needs >= 2"
            ),
            n_shared=n_shared,
            max_tenants=max_tenants,
        )


@dataclass
class _SitingModel:
    """The reduced MCLP of :func:`plan_new_sites` with the arrays its result needs."""

    prob: _mclp.MCLPProblem
    A: sp.csr_matrix
    Wres: np.ndarray
    offset: float
    conf: sp.csr_matrix | None


def _siting_model(
    demand: gpd.GeoDataFrame,
    existing_sites: gpd.GeoDataFrame | None,
    candidates: gpd.GeoDataFrame,
    spec: _SitingSpec,
) -> _SitingModel:
    """Coverage, locked existing coverage and residual weights, reduced to an MCLP."""
    names = spec.names
    pop = _population(demand)
    dxy = points_xy(demand, "demand")
    cxy = points_xy(candidates, "candidates")
    if existing_sites is not None and len(existing_sites):
        require_metric(existing_sites, "existing_sites")
        cov_before = operator_coverage(demand, existing_sites, names, spec.r_exist).to_numpy(
            dtype=bool
        )
    else:
        cov_before = np.zeros((len(demand), len(names)), dtype=bool)
    Wfull = pop[:, None] * spec.shares[None, :]
    offset = float((Wfull * cov_before).sum())
    Wres = Wfull * (~cov_before)
    A = coverage_matrix(dxy, cxy, spec.r_cand)
    cap = _candidate_caps(candidates, spec.max_tenants)
    conf = _conflicts(cxy, float(spec.min_spacing_m))
    prob = _mclp.build_problem(
        A, Wres, int(spec.n_dedicated), int(spec.n_shared), cap, conf, offset
    )
    return _SitingModel(prob=prob, A=A, Wres=Wres, offset=offset, conf=conf)


def _siting_result(
    model: _SitingModel,
    sol: _mclp.MCLPSolution,
    proposed: gpd.GeoDataFrame,
    *,
    build_s: float,
    solve_s: float,
    t0: float,
) -> SitingResult:
    """Assemble the :class:`SitingResult` (log merges reduction and solver statistics)."""
    prob, conf = model.prob, model.conf
    runtime = time.perf_counter() - t0
    log = {k: v for k, v in prob.info.items() if not k.startswith("_")}
    log.update({k: v for k, v in sol.log.items() if not k.startswith("_")})
    log["min_spacing_conflict_pairs"] = int(conf.nnz // 2) if conf is not None else 0
    logger.info(
        "siting: %d new structures, objective %.1f (gap %.3f%%) by %s in %.2fs",
        prob.n_dedicated + prob.n_shared,
        sol.objective,
        100 * sol.gap,
        sol.method,
        runtime,
    )
    return SitingResult(
        proposed=proposed,
        objective=float(sol.objective),
        upper_bound=float(sol.upper_bound),
        gap=float(sol.gap),
        solver_used=sol.method,
        runtime_s=runtime,
        build_s=build_s,
        solve_s=solve_s,
        covered_before=model.offset,
        log=log,
        stopped_by=sol.stopped_by,
    )


def plan_new_sites(
    demand: gpd.GeoDataFrame,
    existing_sites: gpd.GeoDataFrame | None,
    candidates: gpd.GeoDataFrame,
    *,
    operators: Mapping[str, float],
    n_dedicated: int,
    n_shared: int,
    radius_m: float | str,
    max_tenants: int = 3,
    min_spacing_m: float = 0.0,
    solver: Literal["auto", "exact", "heuristic", "benders"] = "auto",
    time_limit_s: float = math.inf,
    mip_gap: float = 0.001,
    seed: int = 0,
    work_limit: float = 1.0,
    max_nodes: int = 2000,
) -> SitingResult:
    """Place new dedicated and shared structures to maximise weighted coverage.

    See the module docstring for the model.

    Parameters
    ----------
    demand : GeoDataFrame
        Demand cells (points) with ``population``, metric CRS.
    existing_sites : GeoDataFrame or None
        Locked existing sites with ``operators`` (or ``operator``), same CRS.
    candidates : GeoDataFrame
        Candidate sites (:func:`generate_candidates`), same CRS; ``cand_id`` is
        reported back (row position when absent); optional ``max_tenants``.
    operators : mapping
        Operator name -> market share (weights of the objective).
    n_dedicated, n_shared : int
        Exact numbers of new single-tenant and shared (>= 2 tenants) structures.
    radius_m : float or str
        Coverage radius of every site (existing and new) in metres, or the name
        of a column of ``candidates`` and ``existing_sites`` holding one radius
        per site (e.g. from a link budget by clutter class).
    max_tenants : int
        Maximum tenants per new structure.
    min_spacing_m : float
        Minimum distance between two new structures.
    solver : {'auto', 'exact', 'heuristic', 'benders'}
        See the module docstring; ``'benders'`` is the heuristic followed by the
        branch-and-Benders-cut in SCIP (:mod:`~towerplan.siting._benders`).
    time_limit_s : float
        Wall-clock safety stop of the solve (default none).  The solve is bounded by
        deterministic work; a run cut by this limit reports ``stopped_by = "time_limit"``
        and may differ between runs.
    mip_gap : float
        Relative gap at which a solution counts as optimal.
    seed : int
        Seed of the local search order (same seed, same solution).
    work_limit : float
        Multiplier of every deterministic work budget (swap passes, subgradient
        iterations, LNS re-solves, branch-and-bound nodes); 1.0 = default effort.
    max_nodes : int
        Branch-and-bound nodes of the full MILP (before ``work_limit`` scaling).

    Returns
    -------
    SitingResult

    Raises
    ------
    EmptyInputError
        No demand cells.
    ParameterError
        Non-positive radius, negative quotas, bad solver name or operators.
    InfeasibleModelError
        More new structures than candidates, shared quota without 2 operators or
        without candidates allowing 2 tenants, or minimum spacing that blocks the quotas.
    """
    t0 = time.perf_counter()
    require_metric(demand, "demand")
    require_metric(candidates, "candidates")
    if len(demand) == 0:
        raise EmptyInputError(msgid=N_("demand: no demand cells; build the demand grid first"))
    spec = _siting_spec(
        candidates,
        operators=operators,
        n_dedicated=n_dedicated,
        n_shared=n_shared,
        radius_m=radius_m,
        max_tenants=max_tenants,
        min_spacing_m=min_spacing_m,
    )
    settings = _mclp.SolveSettings(
        solver=solver,
        mip_gap=mip_gap,
        seed=seed,
        work_limit=work_limit,
        max_nodes=max_nodes,
        time_limit_s=time_limit_s,
    )
    _check_feasible(spec, len(candidates))
    model = _siting_model(demand, existing_sites, candidates, spec)
    build_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    sol = _mclp.solve(model.prob, settings)
    _mclp.check_solution(model.prob, sol)
    solve_s = time.perf_counter() - t1
    proposed = _proposed_frame(candidates, sol, spec.names, model.A, model.Wres)
    return _siting_result(model, sol, proposed, build_s=build_s, solve_s=solve_s, t0=t0)


def _proposed_frame(
    candidates: gpd.GeoDataFrame,
    sol: _mclp.MCLPSolution,
    names: list[str],
    A: sp.csr_matrix,
    Wres: np.ndarray,
) -> gpd.GeoDataFrame:
    k = len(sol.sites)
    order = np.argsort(sol.sites, kind="stable")
    sites = sol.sites[order]
    ten = sol.tenants[order]
    shared = sol.shared[order]
    gain = np.zeros(k)
    ten_gain = np.zeros((k, len(names)))
    if k:
        sub = A[:, sites].tocsc().astype(np.float64)
        cnt = np.asarray(sub @ ten.astype(float))
        with np.errstate(divide="ignore", invalid="ignore"):
            per = np.where(cnt > 0, Wres / np.maximum(cnt, 1), 0.0)
        ten_gain = np.asarray(sub.T @ per) * ten
        gain = ten_gain.sum(axis=1)
    ops_str = []
    for s in range(k):
        idx = [o for o in np.argsort(-ten_gain[s], kind="stable") if ten[s, o]]
        ops_str.append(";".join(names[o] for o in idx))
    cand = candidates.iloc[sites]
    cand_id = (
        cand["cand_id"].to_numpy()
        if "cand_id" in cand.columns
        else np.asarray(sites, dtype=np.int64)
    )
    geom = cand.geometry.to_numpy()
    out = gpd.GeoDataFrame(
        {
            "site_id": [f"NEW-{i + 1:04d}" for i in range(k)],
            "site_type": np.where(shared, "shared", "dedicated"),
            "operators": ops_str,
            "n_tenants": ten.sum(axis=1).astype(np.int64),
            "district": cand["district"].to_numpy() if "district" in cand.columns else None,
            "cand_id": cand_id,
            "source": cand["source"].to_numpy() if "source" in cand.columns else "user",
            "population_gain": gain,
        },
        geometry=list(geom),
        crs=candidates.crs,
    )
    if k:
        ll = out.geometry.to_crs("EPSG:4326")
        out["lon"] = ll.x.to_numpy()
        out["lat"] = ll.y.to_numpy()
    else:
        out["lon"] = pd.Series(dtype=float)
        out["lat"] = pd.Series(dtype=float)
    return out[[*PROPOSED_COLUMNS, "geometry"]]


# --------------------------------------------------------------------------- set covering


def set_cover(
    cover: sp.spmatrix,
    weights: np.ndarray | None = None,
    target_fraction: float = 1.0,
    solver: Literal["auto", "exact", "heuristic"] = "auto",
    time_limit_s: float = math.inf,
    *,
    work_limit: float = 1.0,
) -> SetCoverResult:
    """Fewest candidates (columns) covering ``target_fraction`` of the points' weight.

    Parameters
    ----------
    cover : scipy.sparse matrix (n_points x n_candidates)
        Coverage relation (e.g. :func:`towerplan.coverage.coverage_matrix`).
    weights : ndarray (n_points,), optional
        Point weights (population); 1 each by default.
    target_fraction : float
        Share of the total weight to cover, in (0, 1].
    solver : {'auto', 'exact', 'heuristic'}
        ``heuristic``: greedy + redundancy removal with a Lagrangian lower bound; ``exact``:
        HiGHS MILP warm-started from the greedy; ``auto``: exact unless the model is
        very large.
    time_limit_s : float
        Wall-clock safety stop (default none); the MILP is bounded by nodes.
    work_limit : float
        Multiplier of the MILP's node budget (1.0 = default).

    Returns
    -------
    SetCoverResult
        ``selected`` column indices, ``covered_fraction``, ``optimal``, ``gap``,
        ``lower_bound``, ``solver_used``.

    Raises
    ------
    ParameterError
        ``target_fraction`` outside (0, 1], bad weights or solver.
    InfeasibleModelError
        The candidates cannot reach the target (the message gives the reachable share).
    """
    return solve_set_cover(
        cover, weights, target_fraction, solver, time_limit_s, work_limit=work_limit
    )


@dataclass
class CoverageNeed:
    """Result of :func:`sites_needed_for_coverage`.

    Attributes
    ----------
    n_new_sites : int
        New sites needed on top of the existing ones.
    lower_bound : int
        Proven lower bound on that number.
    optimal : bool
    target_fraction, existing_fraction, covered_fraction : float
        Population shares: target, covered by existing sites, covered after.
    selected : GeoDataFrame
        The chosen candidates (rows of ``candidates``).
    solver_used : str
    runtime_s : float
    stopped_by : str
        ``"optimal"``, ``"work_limit"`` or ``"time_limit"`` (safety stop: not reproducible).
    """

    n_new_sites: int
    lower_bound: int
    optimal: bool
    target_fraction: float
    existing_fraction: float
    covered_fraction: float
    selected: gpd.GeoDataFrame
    solver_used: str
    runtime_s: float
    stopped_by: str = "optimal"


def sites_needed_for_coverage(
    demand: gpd.GeoDataFrame,
    candidates: gpd.GeoDataFrame,
    existing_sites: gpd.GeoDataFrame | None,
    radius_m: float,
    target_fraction: float,
    solver: Literal["auto", "exact", "heuristic"] = "auto",
    time_limit_s: float = math.inf,
    *,
    work_limit: float = 1.0,
) -> CoverageNeed:
    """How many new sites reach ``target_fraction`` population coverage at ``radius_m``?

    Coverage here is by any site (operator-agnostic); existing sites are locked and
    their coverage counts towards the target.  Solved as a partial set-covering
    problem (:func:`set_cover`) over the population not yet covered.

    Raises
    ------
    EmptyInputError, ParameterError, InfeasibleModelError
        No demand, non-positive radius or target outside (0, 1], unreachable target.
    """
    t0 = time.perf_counter()
    require_metric(demand, "demand")
    require_metric(candidates, "candidates")
    if len(demand) == 0:
        raise EmptyInputError(msgid=N_("demand: no demand cells; build the demand grid first"))
    r = _check_radius(radius_m)
    if not (0.0 < target_fraction <= 1.0):
        raise ParameterError(
            msgid=N_("target_fraction = {target_fraction}: must be in (0, 1], e.g. 0.95 for 95 %"),
            target_fraction=target_fraction,
        )
    pop = _population(demand)
    total = float(pop.sum())
    dxy = points_xy(demand, "demand")
    if existing_sites is not None and len(existing_sites):
        require_metric(existing_sites, "existing_sites")
        from towerplan.coverage import covered_mask

        cov0 = covered_mask(dxy, points_xy(existing_sites, "existing_sites"), r)
    else:
        cov0 = np.zeros(len(demand), dtype=bool)
    existing = float(pop[cov0].sum()) / total if total > 0 else 1.0
    if existing >= target_fraction - 1e-12 or total <= 0:
        return CoverageNeed(
            0,
            0,
            True,
            target_fraction,
            existing,
            existing,
            candidates.iloc[:0].copy(),
            "existing sites already reach the target",
            time.perf_counter() - t0,
        )
    rest = ~cov0
    A = coverage_matrix(dxy[rest], points_xy(candidates, "candidates"), r)
    need = (target_fraction * total - float(pop[cov0].sum())) / float(pop[rest].sum())
    try:
        res = solve_set_cover(
            A, pop[rest], min(1.0, need), solver, time_limit_s, work_limit=work_limit
        )
    except InfeasibleModelError:
        reach = float(pop[cov0].sum() + pop[rest][np.diff(A.tocsr().indptr) > 0].sum()) / total
        raise InfeasibleModelError(
            msgid=N_(
                "target_fraction = {target_fraction:g} cannot be reached at radius_m = {r:g}:"
                " existing sites and all {n_candidates} candidates cover at most {reach:.4f} "
                "of the population; add candidates, raise the radius or lower the target"
            ),
            target_fraction=target_fraction,
            r=r,
            n_candidates=len(candidates),
            reach=reach,
        ) from None
    covered = (float(pop[cov0].sum()) + res.covered_fraction * float(pop[rest].sum())) / total
    return CoverageNeed(
        n_new_sites=res.n_selected,
        lower_bound=res.lower_bound,
        optimal=res.optimal,
        target_fraction=target_fraction,
        existing_fraction=existing,
        covered_fraction=covered,
        selected=candidates.iloc[res.selected].copy(),
        solver_used=res.solver_used,
        runtime_s=time.perf_counter() - t0,
        stopped_by=res.stopped_by,
    )
