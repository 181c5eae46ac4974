"""Candidates, multi-operator siting, set covering, capacity check."""

from __future__ import annotations

import itertools

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import CRS
from shapely.geometry import box

from towerplan import siting
from towerplan.coverage import coverage_matrix, operator_coverage, points_xy
from towerplan.errors import (
    CRSError,
    EmptyInputError,
    InfeasibleModelError,
    ParameterError,
    PopulationError,
)


def _demand(n: int = 400, seed: int = 0, extent: float = 4000.0) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    xy = np.vstack(
        [rng.normal(extent / 2, extent / 6, (n // 2, 2)), rng.uniform(0, extent, (n - n // 2, 2))]
    )
    return gpd.GeoDataFrame(
        {
            "cell_id": np.arange(n),
            "population": rng.gamma(2.0, 40.0, n).round(1),
            "district": np.where(xy[:, 0] < extent / 2, "West", "East"),
        },
        geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]),
        crs=CRS,
        index=pd.RangeIndex(10, 10 + n),
    )


def _existing() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "site_id": ["E1", "E2", "E3"],
            "operator": ["A", "B", "A"],
            "operators": ["A", "B;C", "A"],
            "n_tenants": [1, 2, 1],
            "max_tenants": [3, 2, 3],
        },
        geometry=gpd.points_from_xy([2000.0, 1200.0, 3000.0], [2000.0, 2500.0, 800.0]),
        crs=CRS,
    )


OPS = {"A": 0.5, "B": 0.3, "C": 0.2}

# --------------------------------------------------------------------------- candidates


def test_grid_candidates_cover_populated_cells() -> None:
    dem = _demand()
    cand = siting.generate_candidates(dem, 500.0)
    assert list(cand.columns[:4]) == ["cand_id", "source", "cost", "priority"]
    assert cand["cand_id"].tolist() == list(range(len(cand)))
    assert (cand["source"] == "grid").all()
    xy = points_xy(cand, "c")
    assert np.allclose(np.mod(xy, 500.0), 0.0)  # lattice anchored at multiples of the spacing
    # every populated cell has a candidate within half a diagonal
    d = np.hypot(*(points_xy(dem, "d")[:, None, :] - xy[None, :, :]).transpose(2, 0, 1)).min(1)
    assert d.max() <= 500.0 * np.sqrt(2) / 2 + 1e-6
    assert set(cand["district"]) <= {"West", "East"}


def test_hex_candidates_and_only_uncovered_and_boundary() -> None:
    dem = _demand()
    hexc = siting.generate_candidates(dem, 500.0, kind="hex")
    y = np.unique(np.round(points_xy(hexc, "c")[:, 1], 6))
    steps = np.diff(y) / (500.0 * np.sqrt(3) / 2)
    assert np.allclose(steps, np.round(steps), atol=1e-6)
    # alternate rows are offset by half the spacing
    x = points_xy(hexc, "c")
    offs = {round(float(v), 3) for v in np.mod(x[:, 0], 500.0)}
    assert offs == {0.0, 250.0}
    mask = points_xy(dem, "d")[:, 0] < 1000.0
    part = siting.generate_candidates(dem, 500.0, only_uncovered=mask)
    assert points_xy(part, "c")[:, 0].max() <= 1000.0 + 250.0 + 1e-6
    assert len(part) < len(siting.generate_candidates(dem, 500.0))
    bnd = box(0, 0, 2000, 2000)
    inside = siting.generate_candidates(dem, 500.0, boundary=bnd)
    assert (points_xy(inside, "c") <= 2000.0 + 1e-9).all()


def test_colocation_and_user_candidates() -> None:
    dem = _demand()
    user = gpd.GeoDataFrame(
        {"cost": [2.5, np.nan], "priority": [1.0, 3.0]},
        geometry=gpd.points_from_xy([100.0, 200.0], [100.0, 300.0]),
        crs=CRS,
    )
    cand = siting.generate_candidates(dem, 1000.0, existing_sites=_existing(), user_candidates=user)
    co = cand[cand["source"] == "colocation"]
    # E2 is full (2 of 2 tenants): only E1 and E3 offer spare slots (2 each)
    assert co["site_ref"].tolist() == ["E1", "E3"]
    assert co["max_tenants"].tolist() == [2, 2]
    us = cand[cand["source"] == "user"]
    assert us["cost"].tolist() == [2.5, 1.0]
    assert us["priority"].tolist() == [1.0, 3.0]


def test_candidate_errors() -> None:
    dem = _demand()
    with pytest.raises(ParameterError, match="spacing_m = 0"):
        siting.generate_candidates(dem, 0)
    with pytest.raises(EmptyInputError):
        siting.generate_candidates(dem.iloc[:0], 500.0)
    with pytest.raises(CRSError):
        siting.generate_candidates(dem.to_crs(4326), 500.0)
    with pytest.raises(ParameterError, match="kind"):
        siting.generate_candidates(dem, 500.0, kind="tri")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- brute force


def _brute_force(
    dem: gpd.GeoDataFrame,
    ex: gpd.GeoDataFrame | None,
    cand: gpd.GeoDataFrame,
    ops: dict[str, float],
    n_ded: int,
    n_sh: int,
    r: float,
    max_tenants: int,
) -> float:
    """Enumerate every assignment of tenant patterns to candidates (tiny instances only)."""
    names = list(ops)
    w = dem["population"].to_numpy()[:, None] * np.array([ops[o] for o in names])[None, :]
    before = (
        operator_coverage(dem, ex, names, r).to_numpy()
        if ex is not None
        else np.zeros(w.shape, bool)
    )
    A = coverage_matrix(points_xy(dem, "d"), points_xy(cand, "c"), r).toarray()
    caps = (
        cand["max_tenants"].to_numpy() if "max_tenants" in cand else np.full(len(cand), max_tenants)
    )
    pats: list[tuple[int, ...]] = [()]
    for k in range(1, min(max_tenants, len(names)) + 1):
        pats.extend(itertools.combinations(range(len(names)), k))
    best = -1.0
    for choice in itertools.product(range(len(pats)), repeat=len(cand)):
        sizes = [len(pats[c]) for c in choice]
        if sum(s == 1 for s in sizes) != n_ded or sum(s >= 2 for s in sizes) != n_sh:
            continue
        if any(s > min(caps[j], max_tenants) for j, s in enumerate(sizes)):
            continue
        cov = before.copy()
        for j, c in enumerate(choice):
            for o in pats[c]:
                cov[:, o] |= A[:, j]
        best = max(best, float((w * cov).sum()))
    return best


def _tiny(seed: int) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    rng = np.random.default_rng(seed)
    dem = _demand(60, seed, 3000.0)
    cxy = rng.uniform(300, 2700, (5, 2))
    cand = gpd.GeoDataFrame(
        {"cand_id": np.arange(100, 105), "source": "grid", "max_tenants": 3},
        geometry=gpd.points_from_xy(cxy[:, 0], cxy[:, 1]),
        crs=CRS,
    )
    return dem, cand


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_equals_brute_force_multi_operator(seed: int) -> None:
    dem, cand = _tiny(seed)
    ex = _existing()
    res = siting.plan_new_sites(
        dem,
        ex,
        cand,
        operators=OPS,
        n_dedicated=1,
        n_shared=1,
        radius_m=800.0,
        max_tenants=3,
        solver="exact",
    )
    bf = _brute_force(dem, ex, cand, OPS, 1, 1, 800.0, 3)
    assert res.objective == pytest.approx(bf, rel=1e-9)
    assert res.gap <= 1e-3
    assert res.upper_bound >= res.objective - 1e-6


def test_exact_equals_brute_force_single_operator_and_auto_heuristic() -> None:
    dem, cand = _tiny(7)
    ops = {"A": 1.0}
    bf = _brute_force(dem, None, cand, ops, 2, 0, 700.0, 1)
    quotas = {"operators": ops, "n_dedicated": 2, "n_shared": 0, "radius_m": 700.0}
    for solver in ("exact", "auto"):
        res = siting.plan_new_sites(dem, None, cand, **quotas, solver=solver, mip_gap=0.0)  # type: ignore[arg-type]
        assert res.objective == pytest.approx(bf, rel=1e-9)
    heur = siting.plan_new_sites(dem, None, cand, **quotas, solver="heuristic")  # type: ignore[arg-type]
    assert heur.objective <= bf + 1e-6
    assert heur.upper_bound >= bf - 1e-6  # the bound is valid
    assert "heuristic" in heur.solver_used


def test_proposed_contract_and_population_gain() -> None:
    dem = _demand(500, 4)
    ex = _existing()
    cand = siting.generate_candidates(dem, 500.0, existing_sites=ex)
    res = siting.plan_new_sites(
        dem,
        ex,
        cand,
        operators=OPS,
        n_dedicated=4,
        n_shared=3,
        radius_m=650.0,
        min_spacing_m=600.0,
        solver="heuristic",
        seed=1,
        work_limit=0.1,
    )
    p = res.proposed
    for col in (
        "site_id",
        "site_type",
        "operators",
        "district",
        "lon",
        "lat",
        "cand_id",
        "population_gain",
    ):
        assert col in p.columns
    assert p["site_id"].tolist() == [f"NEW-{i:04d}" for i in range(1, 8)]
    assert (p["site_type"] == "dedicated").sum() == 4
    assert (p["site_type"] == "shared").sum() == 3
    ntn = p["operators"].str.split(";").map(len)
    assert (ntn[p["site_type"] == "dedicated"] == 1).all()
    assert ntn[p["site_type"] == "shared"].between(2, 3).all()
    assert (ntn == p["n_tenants"]).all()
    assert p["cand_id"].isin(cand["cand_id"]).all()
    # minimum spacing between new structures
    xy = points_xy(p, "p")
    d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
    assert d[np.triu_indices(len(p), 1)].min() >= 600.0
    # gains add up to the objective; the objective equals an independent evaluation
    assert res.covered_before + p["population_gain"].sum() == pytest.approx(res.objective, rel=1e-9)
    names = list(OPS)
    allsites = pd.concat(
        [ex[["operators", "geometry"]], p[["operators", "geometry"]]], ignore_index=True
    )
    cov = operator_coverage(dem, gpd.GeoDataFrame(allsites, crs=CRS), names, 650.0).to_numpy()
    w = dem["population"].to_numpy()[:, None] * np.array(list(OPS.values()))[None, :]
    assert float((w * cov).sum()) == pytest.approx(res.objective, rel=1e-9)
    back = gpd.GeoSeries(gpd.points_from_xy(p["lon"], p["lat"]), crs=4326).to_crs(CRS)
    assert np.allclose(points_xy(back, "b"), xy, atol=1e-3)
    assert res.build_s >= 0 and res.solve_s >= 0 and res.runtime_s >= res.solve_s


def test_siting_bad_inputs() -> None:
    dem, cand = _tiny(0)
    with pytest.raises(InfeasibleModelError, match="= 6 new structures"):
        siting.plan_new_sites(
            dem, None, cand, operators=OPS, n_dedicated=4, n_shared=2, radius_m=500.0
        )
    with pytest.raises(ParameterError, match="radius_m = 0"):
        siting.plan_new_sites(
            dem, None, cand, operators=OPS, n_dedicated=1, n_shared=0, radius_m=0.0
        )
    with pytest.raises(ParameterError, match="radius_m = -3"):
        siting.plan_new_sites(
            dem, None, cand, operators=OPS, n_dedicated=1, n_shared=0, radius_m=-3.0
        )
    with pytest.raises(EmptyInputError, match="demand"):
        siting.plan_new_sites(
            dem.iloc[:0], None, cand, operators=OPS, n_dedicated=1, n_shared=0, radius_m=500.0
        )
    with pytest.raises(InfeasibleModelError, match="2 operators"):
        siting.plan_new_sites(
            dem, None, cand, operators={"A": 1.0}, n_dedicated=1, n_shared=1, radius_m=500.0
        )
    with pytest.raises(InfeasibleModelError, match="max_tenants = 1"):
        siting.plan_new_sites(
            dem, None, cand, operators=OPS, n_dedicated=1, n_shared=1, radius_m=500.0, max_tenants=1
        )
    with pytest.raises(InfeasibleModelError, match=r"minimum spacing|min_spacing"):
        siting.plan_new_sites(
            dem,
            None,
            cand,
            operators=OPS,
            n_dedicated=3,
            n_shared=0,
            radius_m=500.0,
            min_spacing_m=1e6,
        )
    with pytest.raises(ParameterError, match="n_shared = -1"):
        siting.plan_new_sites(
            dem, None, cand, operators=OPS, n_dedicated=1, n_shared=-1, radius_m=500.0
        )
    with pytest.raises(ParameterError, match="solver"):
        siting.plan_new_sites(
            dem,
            None,
            cand,
            operators=OPS,
            n_dedicated=1,
            n_shared=0,
            radius_m=500.0,
            solver="magic",
        )  # type: ignore[arg-type]
    with pytest.raises(CRSError):
        siting.plan_new_sites(
            dem.to_crs(4326), None, cand, operators=OPS, n_dedicated=1, n_shared=0, radius_m=500.0
        )
    bad = dem.copy()
    bad.loc[bad.index[0], "population"] = -1.0
    with pytest.raises(PopulationError):
        siting.plan_new_sites(
            bad, None, cand, operators=OPS, n_dedicated=1, n_shared=0, radius_m=500.0
        )
    assert dem["population"].min() >= 0  # input not mutated


def test_matches_spopt_mclp_single_operator() -> None:
    spopt_coverage = pytest.importorskip("spopt.locate")
    pulp = pytest.importorskip("pulp")
    rng = np.random.default_rng(11)
    dem = _demand(150, 11, 3000.0)
    cxy = rng.uniform(0, 3000, (30, 2))
    cand = gpd.GeoDataFrame(
        {"cand_id": np.arange(30)}, geometry=gpd.points_from_xy(*cxy.T), crs=CRS
    )
    lxy = rng.uniform(0, 3000, (3, 2))
    locked = gpd.GeoDataFrame(
        {"operators": ["A"] * 3}, geometry=gpd.points_from_xy(*lxy.T), crs=CRS
    )
    r, p = 500.0, 4
    res = siting.plan_new_sites(
        dem,
        locked,
        cand,
        operators={"A": 1.0},
        n_dedicated=p,
        n_shared=0,
        radius_m=r,
        solver="exact",
        mip_gap=0.0,
    )
    allxy = np.vstack([lxy, cxy])
    dxy = points_xy(dem, "d")
    cost = np.hypot(dxy[:, None, 0] - allxy[None, :, 0], dxy[:, None, 1] - allxy[None, :, 1])
    pre = np.zeros(len(allxy), dtype=int)
    pre[:3] = 1
    model = spopt_coverage.MCLP.from_cost_matrix(
        cost, dem["population"].to_numpy(), r, p_facilities=p + 3, predefined_facilities_arr=pre
    )
    model = model.solve(pulp.PULP_CBC_CMD(msg=False))
    spopt_obj = float(pulp.value(model.problem.objective))
    assert res.objective == pytest.approx(spopt_obj, rel=1e-7)


# --------------------------------------------------------------------------- set cover


def test_set_cover_matches_brute_force() -> None:
    rng = np.random.default_rng(2)
    checked = 0
    for _ in range(12):
        n, m = 14, 8
        A = rng.random((n, m)) < 0.3
        A[:, 0] |= rng.random(n) < 0.2
        w = rng.integers(1, 6, n).astype(float)
        tf = float(rng.choice([1.0, 0.8, 0.5]))
        reach = w[A.any(1)].sum() / w.sum()
        if reach < tf:
            with pytest.raises(InfeasibleModelError, match="at most"):
                siting.set_cover(sp.csr_matrix(A), w, tf)
            continue
        best = next(
            k
            for k in range(m + 1)
            for c in itertools.combinations(range(m), k)
            if w[A[:, list(c)].any(1)].sum() >= tf * w.sum() - 1e-9
        )
        res = siting.set_cover(sp.csr_matrix(A), w, tf)
        assert res.n_selected == best and res.optimal and res.gap == 0.0
        assert res.covered_fraction >= tf - 1e-9
        heur = siting.set_cover(sp.csr_matrix(A), w, tf, solver="heuristic")
        assert heur.lower_bound <= best <= heur.n_selected
        checked += 1
    assert checked >= 5


def test_set_cover_bad_target() -> None:
    with pytest.raises(ParameterError, match=r"target_fraction = 1\.5"):
        siting.set_cover(sp.eye(3, format="csr"), None, 1.5)


def test_sites_needed_for_coverage() -> None:
    dem = _demand(600, 3)
    cand = siting.generate_candidates(dem, 500.0)
    ex = _existing()
    lo = siting.sites_needed_for_coverage(dem, cand, ex, 650.0, 0.6)
    hi = siting.sites_needed_for_coverage(dem, cand, ex, 650.0, 0.9)
    assert lo.covered_fraction >= 0.6 and hi.covered_fraction >= 0.9
    assert lo.n_new_sites <= hi.n_new_sites
    assert len(hi.selected) == hi.n_new_sites
    assert lo.lower_bound <= lo.n_new_sites
    # existing coverage counts: a target below it needs no site
    none = siting.sites_needed_for_coverage(dem, cand, ex, 650.0, lo.existing_fraction / 2)
    assert none.n_new_sites == 0
    with pytest.raises(InfeasibleModelError, match="cannot be reached"):
        siting.sites_needed_for_coverage(dem, cand.iloc[:3], None, 100.0, 0.99)
