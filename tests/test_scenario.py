"""Scenario loading and validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from towerplan.errors import ScenarioError
from towerplan.scenario import builtin_scenarios, load_scenario


def _raw(name: str = "cantho-2020") -> dict:
    from importlib import resources

    return yaml.safe_load(
        (resources.files("towerplan") / "scenarios" / f"{name}.yaml").read_text("utf-8")
    )


def _write(tmp_path: Path, raw: dict) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return p


def test_builtin_scenarios_hold_every_plan_target() -> None:
    assert builtin_scenarios() == ["cantho-2020", "cantho-2030"]
    s = load_scenario("cantho-2020")
    assert (s.sites.total, s.sites.existing, s.sites.new) == (1728, 1114, 614)
    assert (s.sites.new_dedicated, s.sites.new_shared) == (338, 276)
    assert s.sites.mean_serving_radius_km == 0.65
    assert (s.sharing.target_min, s.sharing.target_max) == (0.40, 0.45)
    u = s.undergrounding
    assert (u.city_min, u.city_max, u.urban_min, u.rural_min) == (0.30, 0.35, 0.50, 0.25)
    assert (s.fibre.min, s.fibre.max) == (0.20, 0.30)
    assert s.subscribers.mobile_per_100 == 115
    assert s.subscribers.fixed_broadband_per_100 == 20
    assert s.subscribers.mobile_broadband_per_100 == 40
    assert set(s.wifi.categories) == {
        "tourism",
        "hospital",
        "school",
        "admin_centre",
        "city_centre",
    }
    assert abs(sum(s.market_shares.values()) - 1) < 1e-9
    t = load_scenario("cantho-2030")
    assert t.year == 2030
    assert (t.sharing.target_min, t.sharing.target_max) == (0.50, 0.60)
    u = t.undergrounding
    assert (u.city_min, u.city_max, u.urban_min, u.rural_min) == (0.70, 0.80, 0.85, 0.65)
    assert t.fibre.min == 0.70
    assert (t.subscribers.mobile_per_100, t.subscribers.mobile_broadband_per_100) == (147, 80)
    assert t.subscribers.fixed_broadband_per_100 == 24


def test_custom_yaml_path_loads_and_resolves_relative_paths(tmp_path: Path) -> None:
    raw = _raw()
    raw["name"] = "othercity"
    p = _write(tmp_path, raw)
    s = load_scenario(p)
    assert s.name == "othercity"
    assert s.resolve("data/x.gpkg") == tmp_path.resolve() / "data" / "x.gpkg"


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (
            lambda r: r["sites"].update(new_shared=275),
            "sites.new_dedicated (338) + sites.new_shared (275)",
        ),
        (lambda r: r["sites"].update(existing=1000), "sites.existing (1000) + sites.new (614)"),
        (lambda r: r.update(colour="red"), "unknown key 'colour'"),
        (lambda r: r["sites"].update(radius=1), "unknown key 'sites.radius'"),
        (lambda r: r["sites"].update(total="many"), "'sites.total' must be a whole number"),
        (
            lambda r: r["sites"].update(radius_convention="oval"),
            "'sites.radius_convention' must be one of",
        ),
        (
            lambda r: r["sharing"].update(target_max=45),
            "'sharing.target_max' = 45.0 is not a share",
        ),
        (lambda r: r["undergrounding"].update(urban_min=1.2), "'undergrounding.urban_min' = 1.2"),
        (lambda r: r["operators"][0].update(market_share=0.9), "market shares add up to 1.400"),
        (lambda r: r.pop("sites"), "required key 'sites' is missing"),
        (lambda r: r["sites"].update(coverage_radius_m=0), "'sites.coverage_radius_m' = 0"),
        (lambda r: r.update(crs="EPSG:4326"), "'crs' = 'EPSG:4326' is geographic"),
        (lambda r: r["data"].update(kind="files"), "'data.districts' is missing"),
    ],
)
def test_invalid_scenarios_name_the_key(tmp_path: Path, mutate, needle: str) -> None:
    raw = _raw()
    mutate(raw)
    with pytest.raises(ScenarioError) as ei:
        load_scenario(_write(tmp_path, raw))
    assert needle in str(ei.value)


def test_unknown_scenario_lists_builtins() -> None:
    with pytest.raises(ScenarioError, match=r"unknown scenario 'hanoi-2020'.*cantho-2020"):
        load_scenario("hanoi-2020")


def test_missing_yaml_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="not found"):
        load_scenario(tmp_path / "nope.yaml")


def test_bad_yaml_syntax(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match="invalid YAML"):
        load_scenario(p)
