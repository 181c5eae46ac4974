"""Serving-radius conventions and plan fidelity."""

from __future__ import annotations

import math

import pytest

from towerplan.errors import ParameterError
from towerplan.kpis import plan_fidelity, serving_radius_km, sites_for_radius


def test_conventions_match_closed_forms() -> None:
    s, n = 1414.0, 1728
    assert serving_radius_km(s, n, "square") == pytest.approx(math.sqrt(s / (2 * n)))
    assert serving_radius_km(s, n, "circle") == pytest.approx(math.sqrt(s / (math.pi * n)))
    hexa = math.sqrt(2 * s / (3 * math.sqrt(3) * n))
    assert serving_radius_km(s, n, "hexagon") == pytest.approx(hexa)
    # plan checks (../shared/docs/plan-3933-telecom.md): 0.64-0.65 km square, ~0.51 circle, 0.64 at 1,114
    assert serving_radius_km(1409, 1728, "square") == pytest.approx(0.6385, abs=1e-4)
    assert serving_radius_km(1439, 1728, "square") == pytest.approx(0.6453, abs=1e-4)
    assert serving_radius_km(1414, 1728, "circle") == pytest.approx(0.5103, abs=1e-4)
    assert serving_radius_km(1414, 1114, "circle") == pytest.approx(0.6357, abs=1e-4)


def test_sites_for_radius_inverts() -> None:
    for conv in ("square", "circle", "hexagon"):
        n = sites_for_radius(1414.0, 0.65, conv)
        assert serving_radius_km(1414.0, n, conv) == pytest.approx(0.65)


def test_plan_fidelity_picks_square_for_cantho() -> None:
    f = plan_fidelity(1414.0, 1728, existing_sites=1114, plan_radius_km=0.65)
    assert f["best_convention"] == "square"
    assert f["best_abs_error_km"] == pytest.approx(0.65 - math.sqrt(1414 / 3456), abs=1e-4)


@pytest.mark.parametrize(("area", "n"), [(0, 10), (-1, 10), (100, 0)])
def test_bad_arguments(area: float, n: float) -> None:
    with pytest.raises(ParameterError):
        serving_radius_km(area, n)


def test_unknown_convention() -> None:
    with pytest.raises(ParameterError, match="oval"):
        serving_radius_km(100, 10, "oval")  # type: ignore[arg-type]
