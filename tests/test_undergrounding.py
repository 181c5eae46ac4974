"""Tests of towerplan.infrastructure.undergrounding: road/cable km, trajectory, consistency verdict."""

from __future__ import annotations

from importlib import resources

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import CRS, X0, Y0, make_districts
from shapely.geometry import LineString

from towerplan.errors import ColumnError, CRSError, ParameterError, ScenarioError
from towerplan.infrastructure import undergrounding as ug
from towerplan.scenario import (
    FibreTargets,
    UndergroundingTargets,
    load_scenario,
    scenario_from_dict,
)

PLAN = {2020: (0.50, 0.25, 0.30, 0.35, 0.20, 0.30), 2030: (0.85, 0.65, 0.70, 0.80, 0.70, 1.0)}


def _districts() -> gpd.GeoDataFrame:
    return make_districts(
        [(0, 0, 1000, 1000), (1000, 0, 3000, 1000)],
        ["U", "R"],
        ["urban", "rural"],
        code=["01", "02"],
    )


def _roads() -> gpd.GeoDataFrame:
    # national road across both (1 km in U, 2 km in R); local street in U (1 km);
    # provincial road in R (1 km)
    return gpd.GeoDataFrame(
        {"road_class": ["national", "local", "provincial"], "name": ["QL", "", "TL"]},
        geometry=[
            LineString([(X0, Y0 + 500), (X0 + 3000, Y0 + 500)]),
            LineString([(X0 + 500, Y0), (X0 + 500, Y0 + 1000)]),
            LineString([(X0 + 1500, Y0 + 200), (X0 + 2500, Y0 + 200)]),
        ],
        crs=CRS,
    )


def test_road_km_by_district_hand_computed() -> None:
    t = ug.road_km_by_district(_roads(), _districts())
    assert t.loc["U", "national"] == pytest.approx(1.0)
    assert t.loc["U", "local"] == pytest.approx(1.0)
    assert t.loc["U", "provincial"] == pytest.approx(0.0)
    assert t.loc["R", "national"] == pytest.approx(2.0)
    assert t.loc["R", "provincial"] == pytest.approx(1.0)
    assert list(t["road_km"]) == pytest.approx([2.0, 3.0])


def test_cable_km_default_factors_hand_computed() -> None:
    c = ug.cable_km_by_district(_roads(), _districts(), UndergroundingTargets(0.3, 0.35, 0.5, 0.25))
    # U: (1*1.5 + 1*1.0) * 2.0 = 5.0 ; R: (2*1.5 + 1*1.25) * 1.0 = 4.25
    assert list(c["cable_km"]) == pytest.approx([5.0, 4.25])
    assert list(c["road_km_national"]) == pytest.approx([1.0, 2.0])
    assert c.crs == _districts().crs
    st = UndergroundingTargets(
        0.3,
        0.35,
        0.5,
        0.25,
        cable_km_per_road_km_urban=3.0,
        cable_km_per_road_km_rural=0.5,
        road_class_factor={"national": 2.0, "other": 0.5},
    )
    c2 = ug.cable_km_by_district(_roads(), _districts(), st)
    # U: (1*2 + 1*0.5) * 3 = 7.5 ; R: (2*2 + 1*0.5) * 0.5 = 2.25
    assert list(c2["cable_km"]) == pytest.approx([7.5, 2.25])


def test_trajectory_hand_computed_and_verdict() -> None:
    st = UndergroundingTargets(0.3, 0.35, 0.5, 0.25)  # current: urban 0.25, rural 0.05
    plan = ug.plan_undergrounding(
        _roads(), _districts(), PLAN, settings=st, fibre=FibreTargets(min=0.2)
    )
    lay = plan.layer.set_index("district")
    assert lay.loc["U", "share_2016"] == 0.25 and lay.loc["R", "share_2016"] == 0.05
    assert lay.loc["U", "share_2020"] == 0.5 and lay.loc["R", "share_2030"] == 0.65
    # km per year 2016->2020: U 0.25*5/4, R 0.20*4.25/4; 2020->2030: U 0.35*5/10
    assert lay.loc["U", "bury_km_per_year_to_2020"] == pytest.approx(0.3125)
    assert lay.loc["R", "bury_km_per_year_to_2020"] == pytest.approx(0.2125)
    assert lay.loc["U", "bury_km_per_year_to_2030"] == pytest.approx(0.175)
    assert lay.loc["U", "underground_km_2030"] == pytest.approx(4.25)
    assert lay.loc["R", "fibre_km_2030"] == pytest.approx(0.7 * 4.25)
    # city-wide: 2020 (0.5*5 + 0.25*4.25) / 9.25 ; 2030 (0.85*5 + 0.65*4.25) / 9.25
    assert plan.city_share[2020] == pytest.approx(3.5625 / 9.25)
    assert plan.city_share[2030] == pytest.approx(7.0125 / 9.25)
    ch = plan.checks.set_index("year")
    assert ch.loc[2020, "urban_cable_share"] == pytest.approx(5 / 9.25)
    assert (ch.loc[2020, "w_lo"], ch.loc[2020, "w_hi"]) == pytest.approx((0.2, 0.4))
    assert (ch.loc[2030, "w_lo"], ch.loc[2030, "w_hi"]) == pytest.approx((0.25, 0.75))
    assert not ch.loc[2020, "consistent"] and ch.loc[2030, "consistent"]
    assert plan.consistent is False
    assert "2020" in plan.verdict and "20%-40%" in plan.verdict and "INCONSISTENT" in plan.verdict
    # year by year: linear within each period, every year present
    tr = plan.trajectory
    u = tr[tr["district"] == "U"].set_index("year")
    assert list(u.index) == list(range(2016, 2031))
    assert u.loc[2018, "share"] == pytest.approx(0.375)
    assert u.loc[2017, "bury_km"] == pytest.approx(0.3125)
    assert u.loc[2025, "bury_km"] == pytest.approx(0.175)
    city = tr[tr["district"] == "city"].set_index("year")
    assert city.loc[2018, "share"] == pytest.approx((0.375 * 5 + 0.15 * 4.25) / 9.25)
    assert city["bury_km"].sum() == pytest.approx(
        city.loc[2030, "underground_km"] - city.loc[2016, "underground_km"]
    )
    assert city.loc[2020, "fibre_share"] == pytest.approx(0.2)


def test_consistent_when_urban_share_in_implied_range() -> None:
    cable = _districts().assign(cable_km=[3.0, 7.0])  # w = 0.3: inside 20-40 % and 25-75 %
    plan = ug.underground_trajectory(
        cable, PLAN, settings=UndergroundingTargets(0.3, 0.35, 0.5, 0.25)
    )
    assert plan.city_share[2020] == pytest.approx(0.3 * 0.5 + 0.7 * 0.25)  # 0.325
    assert plan.city_share[2030] == pytest.approx(0.3 * 0.85 + 0.7 * 0.65)  # 0.71
    assert plan.consistent is True
    assert plan.verdict.startswith("underground plan consistent")
    s = ug.summary_keys(plan)
    assert s["underground_share_city"] == {"2020": 0.325, "2030": 0.71}
    assert s["underground_plan_consistent"] is True
    assert s["underground_cable_km"] == 10.0
    assert s["underground_urban_cable_share"] == 0.3
    d = ug.district_columns(plan)
    assert list(d.index) == ["U", "R"]
    assert d.loc["R", "underground_km_2020"] == pytest.approx(7 * 0.25)
    assert d.loc["R", "bury_km_per_year_to_2030"] == pytest.approx(7 * 0.40 / 10)


def test_rural_share_needed_and_no_decrease_rule() -> None:
    cable = _districts().assign(cable_km=[1.0, 9.0])  # w = 0.1 < 20 %: city 0.275 < 0.30
    plan = ug.underground_trajectory(cable, {2020: (0.5, 0.25, 0.30, 0.35)})
    ch = plan.checks.iloc[0]
    assert ch["city_share"] == pytest.approx(0.275)
    assert not ch["consistent"]
    # huyện share so that 0.1*0.5 + 0.9*r = 0.30
    assert ch["rural_share_for_city_min"] == pytest.approx(0.25 / 0.9)
    # a district already above its target keeps its share (no digging back up)
    st = UndergroundingTargets(0.3, 0.35, 0.5, 0.25, current_by_district={"U": 0.9})
    p2 = ug.underground_trajectory(cable, {2020: (0.5, 0.25, 0.30, 0.35)}, settings=st)
    lay = p2.layer.set_index("district")
    assert lay.loc["U", "share_2020"] == 0.9
    assert lay.loc["U", "bury_km_per_year_to_2020"] == 0.0


def test_implied_urban_share_range() -> None:
    assert ug.implied_urban_share_range(0.5, 0.25, city_min=0.30, city_max=0.35) == pytest.approx(
        (0.2, 0.4)
    )
    assert ug.implied_urban_share_range(0.85, 0.65, city_min=0.70, city_max=0.80) == pytest.approx(
        (0.25, 0.75)
    )
    assert ug.implied_urban_share_range(0.5, 0.5, city_min=0.3, city_max=0.6) == (0.0, 1.0)
    assert ug.implied_urban_share_range(0.5, 0.5, city_min=0.6, city_max=0.7) is None
    assert (
        ug.implied_urban_share_range(0.5, 0.4, city_min=0.9, city_max=0.95) is None
    )  # needs w > 1


def test_milestones_from_scenarios() -> None:
    s20, s30 = load_scenario("cantho-2020"), load_scenario("cantho-2030")
    ms = ug.milestones_from_scenarios(s30, s20)
    assert list(ms) == [2020, 2030]
    assert ms[2020] == ug.Milestone(2020, 0.50, 0.25, 0.30, 0.35, 0.20, 0.30)
    assert ms[2030] == ug.Milestone(2030, 0.85, 0.65, 0.70, 0.80, 0.70, 1.0)
    with pytest.raises(ScenarioError):
        ug.milestones_from_scenarios()
    raw = yaml.safe_load(
        (resources.files("towerplan") / "scenarios" / "cantho-2020.yaml").read_text("utf-8")
    )
    raw["undergrounding"]["urban_min"] = 0.6
    other = scenario_from_dict(raw)
    with pytest.raises(ScenarioError, match="different undergrounding targets for 2020"):
        ug.milestones_from_scenarios(s20, other)


def test_bad_input() -> None:
    roads, d = _roads(), _districts()
    with pytest.raises(CRSError, match="no CRS"):
        ug.road_km_by_district(roads.set_crs(None, allow_override=True), d)
    with pytest.raises(CRSError, match="geographic"):
        ug.road_km_by_district(roads.to_crs(4326), d)
    with pytest.raises(CRSError, match="different CRSs"):
        ug.road_km_by_district(roads.to_crs(3405), d)
    with pytest.raises(ColumnError, match="district_type"):
        ug.road_km_by_district(roads, d.assign(district_type=["quận", "huyện"]))
    cable = d.assign(cable_km=[1.0, 1.0])
    with pytest.raises(ParameterError, match="above 100 %"):
        ug.underground_trajectory(cable, {2020: (1.5, 0.25, 0.3, 0.35)})
    with pytest.raises(ParameterError, match="city_min"):
        ug.underground_trajectory(cable, {2020: (0.5, 0.25, 0.4, 0.35)})
    with pytest.raises(ParameterError, match="not after the start year"):
        ug.underground_trajectory(cable, {2015: (0.5, 0.25, 0.3, 0.35)})
    with pytest.raises(ParameterError, match="got 2 values"):
        ug.underground_trajectory(cable, {2020: (0.5, 0.25)})
    with pytest.raises(ParameterError, match="unknown districts"):
        ug.underground_trajectory(
            cable,
            PLAN,
            settings=UndergroundingTargets(
                0.3, 0.35, 0.5, 0.25, current_by_district={"Nowhere": 0.1}
            ),
        )
    with pytest.raises(ParameterError, match="between 0 and 1"):
        ug.underground_trajectory(
            cable, PLAN, settings=UndergroundingTargets(0.3, 0.35, 0.5, 0.25, 2016, 1.2)
        )
    with pytest.raises(ParameterError, match="cable factors"):
        ug.cable_km_by_district(
            roads, d, UndergroundingTargets(0.3, 0.35, 0.5, 0.25, cable_km_per_road_km_urban=-1)
        )
    # the loader rejects targets above 100 % (ScenarioError)
    raw = yaml.safe_load(
        (resources.files("towerplan") / "scenarios" / "cantho-2030.yaml").read_text("utf-8")
    )
    raw["undergrounding"]["urban_min"] = 1.05
    with pytest.raises(ScenarioError, match=r"undergrounding\.urban_min.*above 100 %"):
        scenario_from_dict(raw)


def test_roads_outside_districts_warn_with_km() -> None:
    roads = pd.concat(
        [
            _roads(),
            gpd.GeoDataFrame(
                {"road_class": ["local"], "name": ["far"]},
                geometry=[LineString([(X0, Y0 + 5000), (X0 + 2000, Y0 + 5000)])],
                crs=CRS,
            ),
        ],
        ignore_index=True,
    )
    with pytest.warns(UserWarning, match=r"2\.0 km of 7\.0 km road length lie outside"):
        t = ug.road_km_by_district(roads, _districts())
    assert t["road_km"].sum() == pytest.approx(5.0)
    # inputs are not mutated; blank road_class counts as local
    r2 = _roads().assign(road_class=[None, "", "provincial"])
    before = r2.copy()
    t2 = ug.road_km_by_district(r2, _districts())
    pd.testing.assert_frame_equal(r2, before)
    assert t2.loc["R", "local"] == pytest.approx(2.0)
    assert np.isclose(t2["road_km"].sum(), 5.0)


def test_fibre_share_by_district_type_gets_the_same_verdict() -> None:
    # w = 0.3 of the cable length in quận; fibre 2030: quận 90 %, huyện 60 % -> city 69 %,
    # below the plan's "over 70 %": the implied range needs quận >= 33 % of the cable length
    cable = _districts().assign(cable_km=[3.0, 7.0])
    ms = {
        2020: ug.Milestone(2020, 0.5, 0.25, 0.3, 0.35, 0.2, 0.3),
        2030: ug.Milestone(2030, 0.85, 0.65, 0.7, 0.8, 0.7, 1.0, 0.9, 0.6),
    }
    plan = ug.underground_trajectory(
        cable, ms, settings=UndergroundingTargets(0.3, 0.35, 0.5, 0.25)
    )
    ch = plan.checks.set_index("year")
    assert ch.loc[2030, "city_fibre_share"] == pytest.approx(0.3 * 0.9 + 0.7 * 0.6)
    assert ch.loc[2020, "fibre_consistent"] and not ch.loc[2030, "fibre_consistent"]
    assert plan.fibre_consistent is False
    assert "fibre plan NOT consistent" in plan.fibre_verdict and "33%-100%" in plan.fibre_verdict
    lay = plan.layer.set_index("district")
    assert (lay.loc["U", "fibre_share_2030"], lay.loc["R", "fibre_share_2030"]) == (0.9, 0.6)
    assert ug.summary_keys(plan)["fibre_plan_consistent"] is False
