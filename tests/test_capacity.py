"""Capacity-driven demand: arithmetic checked by hand on a two-district fixture."""

from __future__ import annotations

import pandas as pd
import pytest

from towerplan import capacity
from towerplan.errors import ParameterError, ScenarioError
from towerplan.scenario import CapacitySettings, Technology, load_scenario, scenario_from_dict

SETTINGS = CapacitySettings(
    technologies=(
        Technology("4G", 0.5, 20.0, 2.0, 20.0),
        Technology("5G", 0.5, 40.0, 8.0, 100.0),
    ),
    busy_hour_share=0.09,
    days_per_month=30.0,
    sectors_per_site=3,
    max_utilisation=0.5,
)


def test_busy_hour_and_site_capacity_by_hand() -> None:
    # 20 GB x 8e6 kbit / 30 days x 0.09 / 3600 s = 133.33 kbps
    assert capacity.busy_hour_kbps(SETTINGS.technologies[0], SETTINGS) == pytest.approx(400 / 3)
    assert capacity.busy_hour_kbps(SETTINGS.technologies[1], SETTINGS) == pytest.approx(800 / 3)
    # 3 sectors x 2 bit/s/Hz x 20 MHz x 0.5 = 60 Mbps; 3 x 8 x 100 x 0.5 = 1,200 Mbps
    assert capacity.site_capacity_mbps(SETTINGS.technologies[0], SETTINGS) == pytest.approx(60.0)
    assert capacity.site_capacity_mbps(SETTINGS.technologies[1], SETTINGS) == pytest.approx(1200.0)


def test_two_district_capacity_vs_coverage_by_hand() -> None:
    pop = pd.Series({"A": 100_000.0, "B": 9_000.0})
    out = capacity.capacity_sites_needed(
        pop,
        80.0,
        SETTINGS,
        existing_by_district=pd.Series({"A": 40, "B": 20}),
        coverage_sites_by_district=pd.Series({"A": 50, "B": 20}),
    )
    # A: 80,000 subscriptions, half on 4G: 40,000 x 133.33 kbps = 5,333.3 Mbps / 60 -> 89 sites;
    #    5G: 40,000 x 266.67 kbps = 10,666.7 Mbps / 1,200 -> 9 sites; the busier layer decides
    assert out.loc["A", "traffic_mbps_4G"] == pytest.approx(16_000 / 3)
    assert out.loc["A", "traffic_mbps"] == pytest.approx(16_000.0)
    assert out.loc["A", ["capacity_sites_4G", "capacity_sites_5G", "capacity_sites"]].tolist() == [
        89,
        9,
        89,
    ]
    # B: 7,200 subscriptions: 4G 480 Mbps / 60 = exactly 8 sites; 5G 960 / 1,200 -> 1
    assert out.loc["B", ["capacity_sites_4G", "capacity_sites_5G"]].tolist() == [8, 1]
    assert out["sites_needed"].tolist() == [89, 20]
    assert out["capacity_shortfall"].tolist() == [39, 0]
    per_cell = capacity.cell_traffic_mbps(pop, 80.0, SETTINGS)
    assert per_cell["traffic_mbps"].tolist() == pytest.approx(out["traffic_mbps"].tolist())
    keys = capacity.summary_keys(out, SETTINGS)
    assert keys["capacity_sites_needed"] == 97 and keys["sites_needed"] == 109


def test_capacity_bad_input() -> None:
    with pytest.raises(ParameterError, match="population"):
        capacity.capacity_sites_needed(pd.Series({"A": -1.0}), 80.0, SETTINGS)
    with pytest.raises(ParameterError, match="mobile_broadband_per_100"):
        capacity.cell_traffic_mbps(pd.Series([1.0]), -5.0, SETTINGS)


def test_capacity_scenario_validation() -> None:
    raw = load_scenario("cantho-2030").to_dict()
    raw["capacity"]["technologies"][0]["subscriber_share"] = 0.9
    with pytest.raises(ScenarioError, match="subscriber shares add up"):
        scenario_from_dict(raw)
    raw = load_scenario("cantho-2030").to_dict()
    raw["phasing"]["periods"] = [{"year": 2025, "budget": 10}]
    with pytest.raises(ScenarioError, match="scenario year 2030"):
        scenario_from_dict(raw)
