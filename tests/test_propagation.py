"""Okumura-Hata, COST-231 Hata, link budget and cell radius."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from towerplan import propagation as P
from towerplan.errors import ParameterError, RangeError


def _hata_ref(f: float, hb: float, hm: float, d: float, env: str, large: bool) -> float:
    """Okumura-Hata written out from Hata (1980), independently of the module."""
    lf = math.log10(f)
    if large:
        a = (
            8.29 * math.log10(1.54 * hm) ** 2 - 1.1
            if f <= 200
            else 3.2 * math.log10(11.75 * hm) ** 2 - 4.97
        )
    else:
        a = (1.1 * lf - 0.7) * hm - (1.56 * lf - 0.8)
    lu = (
        69.55
        + 26.16 * lf
        - 13.82 * math.log10(hb)
        - a
        + (44.9 - 6.55 * math.log10(hb)) * math.log10(d)
    )
    if env == "suburban":
        return lu - 2 * math.log10(f / 28) ** 2 - 5.4
    if env == "open":
        return lu - 4.78 * lf**2 + 18.33 * lf - 40.94
    return lu


def _cost231_ref(f: float, hb: float, hm: float, d: float, cm: float) -> float:
    lf = math.log10(f)
    a = (1.1 * lf - 0.7) * hm - (1.56 * lf - 0.8)
    return (
        46.3
        + 33.9 * lf
        - 13.82 * math.log10(hb)
        - a
        + (44.9 - 6.55 * math.log10(hb)) * math.log10(d)
        + cm
    )


def test_hata_900mhz_reference_values() -> None:
    # 900 MHz, hb = 30 m, hm = 1.5 m, d = 1 km: 126.40 dB (small/medium city), 126.42 dB (large city)
    assert P.okumura_hata(900, 30, 1.5, 1.0) == pytest.approx(126.40, abs=0.01)
    assert P.okumura_hata(900, 30, 1.5, 1.0, large_city=True) == pytest.approx(126.42, abs=0.01)
    for env in ("urban", "suburban", "open"):
        for d in (1.0, 2.5, 10.0, 20.0):
            for hb, hm in ((30, 1.5), (50, 3.0), (200, 10.0)):
                got = P.okumura_hata(900, hb, hm, d, environment=env)
                assert got == pytest.approx(_hata_ref(900, hb, hm, d, env, False), abs=0.01)
    # suburban and open area are well below urban at 900 MHz
    assert P.okumura_hata(900, 30, 1.5, 5, environment="suburban") == pytest.approx(
        _hata_ref(900, 30, 1.5, 5, "urban", False) - 9.94, abs=0.01
    )
    assert P.okumura_hata(900, 30, 1.5, 5, environment="open") == pytest.approx(
        _hata_ref(900, 30, 1.5, 5, "urban", False) - 28.51, abs=0.01
    )


def test_hata_large_city_low_frequency_branch() -> None:
    got = P.okumura_hata(150, 40, 2.0, 3.0, large_city=True)
    assert got == pytest.approx(_hata_ref(150, 40, 2.0, 3.0, "urban", True), abs=0.01)


def test_hata_vectorised_distance() -> None:
    d = np.array([1.0, 2.0, 4.0, 8.0])
    got = np.asarray(P.okumura_hata(900, 30, 1.5, d))
    slope = 44.9 - 6.55 * math.log10(30)
    assert np.allclose(np.diff(got), slope * math.log10(2), atol=1e-9)


def test_cost231_reference_values() -> None:
    assert P.cost231_hata(1800, 30, 1.5, 1.0) == pytest.approx(
        _cost231_ref(1800, 30, 1.5, 1.0, 0.0), abs=0.01
    )
    assert P.cost231_hata(1800, 30, 1.5, 1.0) == pytest.approx(136.20, abs=0.01)
    assert P.cost231_hata(2000, 45, 1.5, 3.0, metropolitan=True) == pytest.approx(
        _cost231_ref(2000, 45, 1.5, 3.0, 3.0), abs=0.01
    )
    # Cm = 3 dB exactly
    assert P.cost231_hata(1800, 30, 1.5, 2.0, metropolitan=True) - P.cost231_hata(
        1800, 30, 1.5, 2.0
    ) == pytest.approx(3.0, abs=1e-9)


def test_ranges_raise_without_opt_in(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(RangeError, match="f_mhz = 2100"):
        P.cost231_hata(2100, 30, 1.5, 1.0)
    with pytest.raises(RangeError, match="f_mhz = 1800"):
        P.okumura_hata(1800, 30, 1.5, 1.0)
    with pytest.raises(RangeError, match="h_base = 20"):
        P.okumura_hata(900, 20, 1.5, 1.0)
    with pytest.raises(RangeError, match="h_mobile = 12"):
        P.cost231_hata(1800, 30, 12, 1.0)
    with pytest.raises(RangeError, match=r"d_km = 0\.5"):
        P.okumura_hata(900, 30, 1.5, 0.5)
    with pytest.raises(ParameterError):
        P.okumura_hata(900, 30, 1.5, -1.0)
    with caplog.at_level(logging.WARNING, logger="towerplan.propagation"):
        v = P.cost231_hata(2100, 30, 1.5, 1.0, allow_extrapolation=True)
    assert v == pytest.approx(_cost231_ref(2100, 30, 1.5, 1.0, 0.0), abs=0.01)
    assert any("2100" in r.message for r in caplog.records)


def test_link_budget_and_radius_round_trip() -> None:
    b = P.LinkBudget()
    assert b.eirp_dbm == pytest.approx(57.0)
    assert b.max_path_loss("rural") == pytest.approx(57 + 102 - 8 - 3 - 6)
    # 900 MHz rural: the loss at the returned radius equals the budget
    r = P.max_cell_radius(900, "rural", budget=b)
    assert 1.0 <= r <= 20.0
    assert P.path_loss(900, 30, 1.5, r, clutter="rural") == pytest.approx(
        b.max_path_loss("rural"), abs=1e-6
    )
    # urban 1800 MHz radius is below 1 km: only with the explicit opt-in
    with pytest.raises(RangeError, match="d_km"):
        P.max_cell_radius(1800, "urban", budget=b)
    ru = P.max_cell_radius(1800, "urban", budget=b, allow_extrapolation=True)
    assert ru < 1.0
    assert P.path_loss(
        1800, 30, 1.5, ru, clutter="urban", allow_extrapolation=True
    ) == pytest.approx(b.max_path_loss("urban"), abs=1e-6)
    # 2100 MHz needs the opt-in for the frequency itself
    with pytest.raises(RangeError, match="2100"):
        P.max_cell_radius(2100, "rural", budget=b)


def test_radius_ordering_by_band_and_clutter() -> None:
    t = P.cell_radius_table()
    assert len(t) == 12
    rad = {
        (str(c), float(f)): float(v)
        for c, f, v in zip(t.clutter, t.band_mhz, t.radius_km, strict=True)
    }
    for c in P.CLUTTER_CLASSES:
        assert rad[(c, 900.0)] > rad[(c, 1800.0)] > rad[(c, 2100.0)]
    order = ["rural", "suburban", "urban", "dense_urban"]
    for f in (900.0, 1800.0, 2100.0):
        vals = [rad[(c, f)] for c in order]
        assert vals == sorted(vals, reverse=True) and len(set(vals)) == 4
    assert t.loc[t.band_mhz == 2100.0, "extrapolated"].all()
    assert not t.loc[(t.band_mhz == 900.0) & (t.clutter == "rural"), "extrapolated"].any()


def test_more_eirp_gives_larger_radius() -> None:
    lo = P.max_cell_radius(900, "rural", budget=P.LinkBudget(tx_power_dbm=40))
    hi = P.max_cell_radius(900, "rural", budget=P.LinkBudget(tx_power_dbm=43))
    slope = 44.9 - 6.55 * math.log10(30)
    assert hi / lo == pytest.approx(10 ** (3 / slope), rel=1e-9)


def test_clutter_from_density() -> None:
    got = P.clutter_from_density(
        np.array(["urban", "urban", "urban", "urban", "rural", "rural", "rural"]),
        np.array([15000, 5000, 1500, 200, 15000, 5000, 2500]),
    )
    assert list(got) == [
        "dense_urban",
        "urban",
        "suburban",
        "rural",
        "urban",
        "suburban",
        "suburban",
    ]
    assert P.clutter_from_density("rural", 25000) == "dense_urban"
    with pytest.raises(ParameterError, match="district_type"):
        P.clutter_from_density("city", 100)
    with pytest.raises(ParameterError):
        P.clutter_from_density("urban", -5)


def test_unknown_clutter() -> None:
    with pytest.raises(ParameterError, match="clutter"):
        P.path_loss(900, 30, 1.5, 2.0, clutter="jungle")
