"""Tests of towerplan.infrastructure.sharing: co-location candidates, sharing rate, ILP, cost model."""

from __future__ import annotations

import itertools
import math
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import CRS, X0, Y0, make_districts
from shapely.geometry import Point

from towerplan.errors import (
    ColumnError,
    CRSError,
    EmptyInputError,
    ParameterError,
    ScenarioError,
)
from towerplan.infrastructure import sharing as sh
from towerplan.scenario import UnitCosts, load_scenario, scenario_from_dict

UC = UnitCosts()  # 1.2e9 / 1.6e9 / 0.35e9 / 0.15e9 / 0.12e9 per year, 10 years


def _pt(x: float, y: float) -> Point:
    return Point(X0 + x, Y0 + y)


def _existing(e5_max: int = 3) -> gpd.GeoDataFrame:
    rows = [
        # site_id, operator, operators, n, max, x, y, district
        ("E1", "A", "A", 1, 3, 0, 0, "U"),
        ("E2", "B", "B", 1, 3, 1000, 0, "U"),
        ("E3", "A", "A;B", 2, 2, 5000, 0, "R"),  # full
        ("E4", "C", "C", 1, 2, 5600, 0, "R"),
        ("E5", "B", "B", 1, e5_max, 150, 0, "U"),  # same operator as N1
        ("E6", "A", "A;B", 2, 3, 0, 200, "U"),  # N1's operator B already a tenant
    ]
    return gpd.GeoDataFrame(
        {
            "site_id": [r[0] for r in rows],
            "operator": [r[1] for r in rows],
            "operators": [r[2] for r in rows],
            "n_tenants": [r[3] for r in rows],
            "max_tenants": [r[4] for r in rows],
            "district": [r[7] for r in rows],
        },
        geometry=[_pt(r[5], r[6]) for r in rows],
        crs=CRS,
    )


def _proposed() -> gpd.GeoDataFrame:
    rows = [
        ("N1", "dedicated", "B", 100, 0, "U"),
        ("N2", "dedicated", "C", 900, 0, "U"),
        ("N3", "shared", "A;C", 5300, 0, "R"),
        ("N4", "dedicated", "A", 6200, 0, "R"),
    ]
    return gpd.GeoDataFrame(
        {
            "site_id": [r[0] for r in rows],
            "site_type": [r[1] for r in rows],
            "operators": [r[2] for r in rows],
            "district": [r[5] for r in rows],
        },
        geometry=[_pt(r[3], r[4]) for r in rows],
        crs=CRS,
    )


def _districts() -> gpd.GeoDataFrame:
    return make_districts(
        [(-1000, -1000, 2500, 1000), (2500, -1000, 8000, 1000)],
        ["U", "R"],
        ["urban", "rural"],
        code=["01", "02"],
        population=[1000.0, 500.0],
    )


# --------------------------------------------------------------------------- cost model


def test_cost_model_hand_computed() -> None:
    cm = sh.cost_model(2, UC)
    # capex: 2*1.2e9, 1.6e9, 2*0.35e9, 2*0.15e9; opex 2*0.12e9 per year over 10 years
    assert cm.loc["new_dedicated", "capex_vnd"] == pytest.approx(2.4e9)
    assert cm.loc["new_shared", "capex_vnd"] == pytest.approx(1.6e9)
    assert cm.loc["colocation", "capex_vnd"] == pytest.approx(0.7e9)
    assert cm.loc["active_ran_sharing", "capex_vnd"] == pytest.approx(0.3e9)
    assert list(cm["structures"]) == [2, 1, 0, 0]
    assert list(cm["opex_vnd_per_year"]) == pytest.approx([0.24e9] * 4)
    assert list(cm["total_vnd"]) == pytest.approx([4.8e9, 4.0e9, 3.1e9, 2.7e9])
    assert list(cm["per_operator_vnd"]) == pytest.approx([2.4e9, 2.0e9, 1.55e9, 1.35e9])
    assert list(cm["saving_vs_dedicated_vnd"]) == pytest.approx([0.0, 0.8e9, 1.7e9, 2.1e9])
    # capex only
    cm0 = sh.cost_model(3, UC, opex_years=0)
    assert list(cm0["total_vnd"]) == pytest.approx([3.6e9, 1.6e9, 1.05e9, 0.45e9])


def test_cost_model_every_unit_cost_is_a_parameter() -> None:
    uc = UnitCosts(
        new_dedicated_site=10.0,
        new_shared_site=15.0,
        colocation=3.0,
        active_ran_sharing=1.0,
        annual_tenant_opex=2.0,
        opex_years=5.0,
    )
    cm = sh.cost_model(1, uc)
    # 10 + 5*2, 15 + 10, 3 + 10, 1 + 10
    assert list(cm["total_vnd"]) == pytest.approx([20.0, 25.0, 13.0, 11.0])
    assert sh.plan_capex(338, 276, UC) == pytest.approx(338 * 1.2e9 + 276 * 1.6e9)
    assert sh.plan_capex(2, 1, uc, n_colocations=4, n_ran_sharing=3) == pytest.approx(
        2 * 10 + 15 + 4 * 3 + 3 * 1
    )


def test_cost_model_bad_input() -> None:
    with pytest.raises(ParameterError, match="colocation"):
        sh.cost_model(2, UnitCosts(colocation=-1.0))
    with pytest.raises(ParameterError, match="n_operators"):
        sh.cost_model(0, UC)
    with pytest.raises(ParameterError, match="opex_years"):
        sh.cost_model(1, UC, opex_years=-1)
    with pytest.raises(ParameterError, match="n_new_shared"):
        sh.plan_capex(1, -2, UC)


def test_negative_unit_cost_rejected_by_loader() -> None:
    from importlib import resources

    raw = yaml.safe_load(
        (resources.files("towerplan") / "scenarios" / "cantho-2020.yaml").read_text("utf-8")
    )
    raw["sharing"]["unit_costs_vnd"] = {"colocation": -5e8}
    with pytest.raises(ScenarioError, match=r"sharing\.unit_costs_vnd\.colocation"):
        scenario_from_dict(raw)
    raw["sharing"]["unit_costs_vnd"] = {"colocation": 5e8}
    raw["sharing"]["target_max"] = 1.2
    with pytest.raises(ScenarioError, match="above 100 %"):
        scenario_from_dict(raw)


# --------------------------------------------------------------------------- rates


def test_sharing_rate_hand_computed() -> None:
    df = pd.DataFrame({"n_tenants": [1, 2, 3, 1]})
    assert sh.sharing_rate(df) == 0.5
    df2 = pd.DataFrame({"operators": ["A", "A;B", "B", " C ; A ;"]})
    assert sh.sharing_rate(df2) == 0.5
    before, after = sh.sharing_rates(_existing(), _proposed())
    assert before == pytest.approx(2 / 6)  # E3, E6 shared
    assert after == pytest.approx(3 / 10)  # + N3
    with pytest.raises(EmptyInputError):
        sh.sharing_rate(pd.DataFrame({"n_tenants": []}))
    with pytest.raises(ColumnError):
        sh.sharing_rate(pd.DataFrame({"x": [1]}))
    with pytest.raises(ColumnError, match="n_tenants"):
        sh.sharing_rate(pd.DataFrame({"n_tenants": [0, 1]}))


# --------------------------------------------------------------------------- candidates


def test_colocation_candidates_rules() -> None:
    c = sh.colocation_candidates(
        _proposed(), _existing(), districts=_districts(), distance_m={"urban": 300, "rural": 800}
    )
    got = {(r.site_id, r.operator, r.host_site_id) for r in c.itertuples()}
    # N1/B: E1 (A, 100 m); not E5 (own operator B), not E6 (B already tenant).
    # N2/C: E2 (100 m) only (E1 at 900 m > 300 m urban).
    # N3/A: E4 (300 m); N3/C: E4 is C's own, E3 is full.
    # N4/A: E4 at 600 m - only within the rural distance.
    assert got == {("N1", "B", "E1"), ("N2", "C", "E2"), ("N3", "A", "E4"), ("N4", "A", "E4")}
    by = c.set_index(["site_id", "operator"])
    assert by.loc[("N1", "B"), "distance_m"] == pytest.approx(100.0)
    assert by.loc[("N4", "A"), "distance_m"] == pytest.approx(600.0)
    assert by.loc[("N3", "A"), "district_type"] == "rural"
    # saving: dedicated 1.2e9 - 0.35e9; shared with 2 tenants 1.6e9/2 - 0.35e9
    assert by.loc[("N1", "B"), "estimated_saving_vnd"] == pytest.approx(0.85e9)
    assert by.loc[("N3", "A"), "estimated_saving_vnd"] == pytest.approx(0.45e9)
    assert by.loc[("N1", "B"), "tenants_now"] == 1
    assert by.loc[("N1", "B"), "tenants_max"] == 3
    assert by.loc[("N1", "B"), "host_operator"] == "A"
    assert (c["rank"] == 1).all()
    assert c.crs == _existing().crs
    line = c.set_index("site_id").loc["N4", "geometry"]
    assert line.length == pytest.approx(600.0)
    # urban distance 0 -> only the rural options remain
    c0 = sh.colocation_candidates(
        _proposed(), _existing(), districts=_districts(), distance_m={"urban": 0, "rural": 800}
    )
    assert set(c0["site_id"]) == {"N3", "N4"}


def test_colocation_candidates_district_type_by_spatial_join_and_unknown() -> None:
    prop = _proposed().drop(columns="district")
    c = sh.colocation_candidates(
        prop, _existing(), districts=_districts(), distance_m={"urban": 300, "rural": 800}
    )
    assert len(c) == 4
    assert set(c["district"]) == {"U", "R"}
    # no districts: the smaller distance is used for everyone, with a warning
    with pytest.warns(UserWarning, match="4 sites have no known district type"):
        c2 = sh.colocation_candidates(
            prop, _existing(), districts=None, distance_m={"urban": 300, "rural": 800}
        )
    assert set(c2["site_id"]) == {"N1", "N2", "N3"}  # N4 (600 m) drops out


def test_colocation_candidates_inputs_not_mutated_and_bad_input() -> None:
    prop, ex = _proposed(), _existing()
    p0, e0 = prop.copy(), ex.copy()
    sh.colocation_candidates(prop, ex, districts=_districts())
    pd.testing.assert_frame_equal(prop, p0)
    pd.testing.assert_frame_equal(ex, e0)
    with pytest.raises(CRSError, match="no CRS"):
        sh.colocation_candidates(
            prop.set_crs(None, allow_override=True), ex, districts=_districts()
        )
    with pytest.raises(CRSError, match="geographic"):
        sh.colocation_candidates(prop.to_crs(4326), ex.to_crs(4326), districts=_districts())
    with pytest.raises(ColumnError, match="max_tenants"):
        sh.colocation_candidates(prop, ex.drop(columns="max_tenants"), districts=_districts())
    with pytest.raises(ParameterError, match="rural"):
        sh.colocation_candidates(prop, ex, districts=_districts(), distance_m={"urban": 300})
    with pytest.raises(ParameterError, match="urban"):
        sh.colocation_candidates(
            prop, ex, districts=_districts(), distance_m={"urban": -1, "rural": 3}
        )
    with pytest.raises(ParameterError, match="new_dedicated_site"):
        sh.colocation_candidates(
            prop,
            ex,
            districts=_districts(),
            distance_m=None,
            unit_costs=UnitCosts(new_dedicated_site=-1),
        )
    empty = sh.colocation_candidates(prop.iloc[:0], ex, districts=_districts())
    assert len(empty) == 0 and "estimated_saving_vnd" in empty.columns


# --------------------------------------------------------------------------- optimisation


def _cands(ex: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    return sh.colocation_candidates(
        _proposed(),
        ex if ex is not None else _existing(),
        districts=_districts(),
        distance_m={"urban": 300, "rural": 800},
    )


def test_cheapest_colocations_one_relocation_reaches_40() -> None:
    # S0 = 10, M0 = 3: one relocation onto a single-tenant host -> 4 / 9 >= 0.4
    plan = sh.cheapest_colocations_to_target(_proposed(), _existing(), _cands(), 0.40, UC)
    assert plan.reached and plan.status == "optimal"
    assert plan.rate_plan == pytest.approx(0.3)
    assert plan.n_relocations == 1 and plan.n_added_tenants == 0
    assert plan.rate_after == pytest.approx(4 / 9)
    assert plan.moves["distance_m"].iat[0] == pytest.approx(100.0)  # nearest host preferred
    assert plan.outlay_vnd == pytest.approx(0.35e9)
    assert plan.net_cost_vnd == pytest.approx(0.35e9 - 1.2e9)


def test_cheapest_colocations_two_nearest_relocations_for_60() -> None:
    # need sum y + 0.6 sum x >= 6 - 3 = 3: two relocations (2 + 1.2), not 1 + add (2.6)
    plan = sh.cheapest_colocations_to_target(_proposed(), _existing(), _cands(), 0.60, UC)
    assert plan.n_relocations == 2 and plan.n_added_tenants == 0
    assert set(plan.moves["site_id"]) == {"N1", "N2"}  # 100 m each, not N4 at 600 m
    assert plan.rate_after == pytest.approx(5 / 8)
    assert (plan.n_structures, plan.n_shared) == (8, 5)


def test_cheapest_colocations_relocations_plus_added_tenant() -> None:
    # 0.9: three relocations (6/7 = 0.857) are not enough; + a tenant on E5 -> 7/7
    plan = sh.cheapest_colocations_to_target(_proposed(), _existing(), _cands(), 0.90, UC)
    assert plan.reached
    assert plan.n_relocations == 3 and plan.n_added_tenants == 1
    add = plan.moves[plan.moves["move_type"] == "add_tenant"].iloc[0]
    assert add["host_site_id"] == "E5"  # E1, E2, E4 are full after the relocations
    # the tenant: operator not on E5 whose nearest own structure is farthest:
    # A at E1 (150 m), C at N2 (750 m) -> C
    assert add["operator"] == "C"
    assert plan.rate_after == pytest.approx(1.0)
    assert plan.outlay_vnd == pytest.approx(4 * 0.35e9)


def test_cheapest_colocations_unreachable_warns_and_returns_best() -> None:
    ex = _existing(e5_max=1)
    with pytest.warns(UserWarning, match=r"unreachable.*best rate 85\.7%"):
        plan = sh.cheapest_colocations_to_target(_proposed(), ex, _cands(ex), 0.90, UC)
    assert not plan.reached
    assert plan.status == "target unreachable: best possible"
    assert plan.n_relocations == 3
    assert plan.rate_after == pytest.approx(6 / 7)


def test_cheapest_colocations_add_tenant_only_and_switch_off() -> None:
    empty = _cands().iloc[:0]
    plan = sh.cheapest_colocations_to_target(_proposed(), _existing(), empty, 0.40, UC)
    assert plan.n_relocations == 0 and plan.n_added_tenants == 1
    assert plan.rate_after == pytest.approx(0.4)
    m = plan.moves.iloc[0]
    ex = _existing().set_index("site_id")
    assert ex.loc[m["host_site_id"], "n_tenants"] == 1
    assert m["operator"] not in ex.loc[m["host_site_id"], "operators"].split(";")
    with pytest.warns(UserWarning, match="unreachable"):
        off = sh.cheapest_colocations_to_target(
            _proposed(), _existing(), empty, 0.40, UC, allow_add_tenant=False
        )
    assert not off.reached and len(off.moves) == 0 and off.rate_after == pytest.approx(0.3)


def test_cheapest_colocations_target_met_and_net_cost() -> None:
    plan = sh.cheapest_colocations_to_target(_proposed(), _existing(), _cands(), 0.25, UC)
    assert plan.status == "target already met" and len(plan.moves) == 0
    # net cost: every relocation saves 0.85e9, so all three are taken
    net = sh.cheapest_colocations_to_target(
        _proposed(), _existing(), _cands(), 0.25, UC, objective="net_cost"
    )
    assert net.n_relocations == 3 and net.n_added_tenants == 0
    assert net.net_cost_vnd == pytest.approx(3 * (0.35e9 - 1.2e9))
    with pytest.raises(ParameterError, match="above 100 %"):
        sh.cheapest_colocations_to_target(_proposed(), _existing(), _cands(), 1.2, UC)
    with pytest.raises(ParameterError, match="objective"):
        sh.cheapest_colocations_to_target(
            _proposed(),
            _existing(),
            _cands(),
            0.4,
            UC,
            objective="cheap",  # type: ignore[arg-type]
        )


def _brute_force_min_moves(
    ex: gpd.GeoDataFrame, prop: gpd.GeoDataFrame, cands: gpd.GeoDataFrame, t: float
) -> int | None:
    """Fewest moves reaching t by enumeration (relocations + add_tenant on single hosts)."""
    te = ex["n_tenants"].to_numpy()
    cap = (ex["max_tenants"] - ex["n_tenants"]).to_numpy()
    tp = prop["operators"].str.count(";").to_numpy() + 1
    s0, m0 = len(te) + len(tp), int((te >= 2).sum() + (tp >= 2).sum())
    ded = set(prop.loc[prop["site_type"] == "dedicated", "site_id"])
    idx = {s: j for j, s in enumerate(ex["site_id"])}
    moves: list[tuple[str, Any, int]] = [
        ("r", r.site_id, idx[r.host_site_id]) for r in cands.itertuples() if r.site_id in ded
    ]
    moves += [("a", None, j) for j in range(len(te)) if te[j] == 1 and cap[j] >= 1]
    for k in range(len(moves) + 1):
        for combo in itertools.combinations(moves, k):
            sites = [m[1] for m in combo if m[0] == "r"]
            if len(sites) != len(set(sites)):
                continue
            gained = np.zeros(len(te), int)
            for m in combo:
                gained[m[2]] += 1
            if (gained > cap).any():
                continue
            s = s0 - len(sites)
            m = m0 + int(((te == 1) & (gained >= 1)).sum())
            if m >= t * s - 1e-9:
                return k
    return None


@pytest.mark.parametrize("seed", [1, 2, 5, 6])
def test_ilp_matches_brute_force_on_random_instances(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ops = ["A", "B", "C"]
    n_e, n_p = 7, 7
    exy = rng.uniform(0, 1500, size=(n_e, 2))
    pxy = rng.uniform(0, 1500, size=(n_p, 2))
    n_t = rng.integers(1, 3, n_e)
    host = rng.choice(ops, n_e)
    operators = [
        h if n == 1 else f"{h};{next(o for o in ops if o != h)}"
        for h, n in zip(host, n_t, strict=True)
    ]
    ex = gpd.GeoDataFrame(
        {
            "site_id": [f"E{i}" for i in range(n_e)],
            "operator": host,
            "operators": operators,
            "n_tenants": n_t,
            "max_tenants": n_t + rng.integers(0, 2, n_e),
        },
        geometry=[_pt(x, y) for x, y in exy],
        crs=CRS,
    )
    p_ops = [str(rng.choice(ops)) for _ in range(n_p)]
    prop = gpd.GeoDataFrame(
        {
            "site_id": [f"N{i}" for i in range(n_p)],
            "site_type": ["dedicated"] * (n_p - 1) + ["shared"],
            "operators": [*p_ops[:-1], "A;B"],
            "district": "U",
        },
        geometry=[_pt(x, y) for x, y in pxy],
        crs=CRS,
    )
    cands = sh.colocation_candidates(
        prop, ex, districts=_districts(), distance_m={"urban": 900, "rural": 900}
    )
    for t in (0.4, 0.5, 0.6):
        best = _brute_force_min_moves(ex, prop, cands, t)
        if best is None:
            with pytest.warns(UserWarning, match="unreachable"):
                plan = sh.cheapest_colocations_to_target(prop, ex, cands, t, UC)
            assert not plan.reached
        else:
            plan = sh.cheapest_colocations_to_target(prop, ex, cands, t, UC)
            assert plan.reached
            assert len(plan.moves) == best
            assert plan.outlay_vnd == pytest.approx(best * UC.colocation)
            assert plan.rate_after >= t - 1e-9


# --------------------------------------------------------------------------- summary


def test_summary_keys_and_district_columns() -> None:
    c = _cands()
    plan = sh.cheapest_colocations_to_target(_proposed(), _existing(), c, 0.40, UC)
    s = sh.summary_keys(
        _existing(), _proposed(), target_min=0.40, target_max=0.45, candidates=c, plan=plan
    )
    assert s["sharing_rate_before"] == round(2 / 6, 4)
    assert s["sharing_rate_after"] == 0.3
    assert s["sharing_target"] == [0.40, 0.45]
    assert s["sharing_target_met"] is False
    assert s["colocation_options"] == 4 and s["colocation_sites"] == 4
    assert s["sharing_rate_with_colocations"] == round(4 / 9, 4)
    assert s["colocation_relocations"] == 1
    d = sh.district_columns(_existing(), _proposed(), c)
    assert d.loc["U", "sharing_rate_before"] == pytest.approx(1 / 4)  # E6 of E1, E2, E5, E6
    assert d.loc["U", "sharing_rate_after"] == pytest.approx(1 / 6)
    assert d.loc["R", "sharing_rate_after"] == pytest.approx(2 / 4)  # E3, N3 of E3, E4, N3, N4
    assert d.loc["U", "colocation_options"] == 2 and d.loc["R", "colocation_options"] == 2


def test_scenario_sharing_settings_are_used() -> None:
    scen = load_scenario("cantho-2020")
    c = sh.colocation_candidates(
        _proposed(),
        _existing(),
        districts=_districts(),
        distance_m=scen.sharing.colocation_distance_m,
        unit_costs=scen.sharing.unit_costs_vnd,
    )
    assert len(c) == 4  # same as urban 300 / rural 800
    plan = sh.cheapest_colocations_to_target(
        _proposed(),
        _existing(),
        c,
        scen.sharing.target_min,
        scen.sharing.unit_costs_vnd,
        objective=scen.sharing.colocation_objective,
        allow_add_tenant=scen.sharing.allow_add_tenant,
    )
    assert math.isclose(plan.rate_after, 4 / 9)


def test_plan_sharing_stage_uses_the_scenario_settings() -> None:
    """The plan's ``sharing`` stage reads sharing.* from the scenario (run through run_stage)."""
    import dataclasses

    from towerplan import plan
    from towerplan.inputs import PlanInputs
    from towerplan.scenario import ColocationDistance

    scen = load_scenario("cantho-2020")
    inputs = PlanInputs(
        districts=_districts(),
        population=_districts(),
        existing_sites=_existing(),
        pois=gpd.GeoDataFrame(),
    )
    state = plan.PlanState(
        scen,
        load_inputs=inputs,
        coverage_before=plan.CoverageStage(pd.DataFrame(), {}, existing=_existing()),
        siting=plan.SitingStage(result=None, proposed=_proposed()),  # type: ignore[arg-type]
    )
    out = plan.run_stage("sharing", state).sharing
    assert out is not None
    assert out.summary["colocation_options"] == 4  # urban 300 m / rural 800 m
    assert out.summary["sharing_target"] == [0.40, 0.45]
    assert out.summary["sharing_rate_with_colocations"] == round(4 / 9, 4)
    # a 50 m search distance leaves no option; a 0.5 target changes the target keys
    near = dataclasses.replace(
        scen.sharing, colocation_distance_m=ColocationDistance(50.0, 50.0), target_min=0.5
    )
    state2 = dataclasses.replace(state, scenario=dataclasses.replace(scen, sharing=near))
    out2 = plan.run_stage("sharing", state2).sharing
    assert out2 is not None
    assert out2.summary["colocation_options"] == 0
    assert out2.summary["sharing_target"] == [0.5, 0.45]
