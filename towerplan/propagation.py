"""Empirical path-loss models, link budget and maximum cell radius.

Models (log = log10, f in MHz, antenna heights in m, distance d in km):

Okumura-Hata (Hata 1980; valid 150-1500 MHz, base 30-200 m, mobile 1-10 m, 1-20 km)::

    L_urban = 69.55 + 26.16 log f - 13.82 log h_b - a(h_m) + (44.9 - 6.55 log h_b) log d
    a(h_m) small/medium city = (1.1 log f - 0.7) h_m - (1.56 log f - 0.8)
    a(h_m) large city        = 8.29 (log 1.54 h_m)^2 - 1.1    (f <= 300 MHz)
                             = 3.2 (log 11.75 h_m)^2 - 4.97   (f >  300 MHz)
    L_suburban = L_urban - 2 (log(f / 28))^2 - 5.4
    L_open     = L_urban - 4.78 (log f)^2 + 18.33 log f - 40.94

(Hata gives the large-city correction for f <= 200 and f >= 400 MHz; towerplan
switches at 300 MHz.)

COST-231 Hata (COST Action 231, 1999; valid 1500-2000 MHz, base 30-200 m, mobile
1-10 m, 1-20 km)::

    L = 46.3 + 33.9 log f - 13.82 log h_b - a(h_m) + (44.9 - 6.55 log h_b) log d + C_m

with the small/medium-city ``a(h_m)``, ``C_m = 0 dB`` for medium cities and suburban
centres and ``3 dB`` for metropolitan centres.  COST-231 defines no open-area variant;
for ``open`` towerplan applies Hata's open-area correction to the COST-231 urban loss
(a common extension, flagged in the docstring of :func:`cost231_hata`).

**2100 MHz (UMTS band 1) is outside COST-231's nominal range (1500-2000 MHz)**: it
needs ``allow_extrapolation=True``, which logs a warning.  The same opt-in is needed
for any other value outside a model's range (e.g. a serving radius below 1 km, which
is typical of dense urban cells); without it :class:`~towerplan.errors.RangeError`
names the value and the range.

Clutter classes used by towerplan: ``dense_urban`` (Hata large city / COST-231
metropolitan, C_m = 3 dB), ``urban`` (small/medium city), ``suburban``, ``rural``
(open area).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from towerplan.errors import (
    N_,
    ParameterError,
    RangeError,
    Text,
    warn_user,
)

logger = logging.getLogger(__name__)

__all__ = [
    "CLUTTER_CLASSES",
    "LinkBudget",
    "cell_radius_table",
    "clutter_from_density",
    "clutter_from_landcover",
    "cost231_hata",
    "max_cell_radius",
    "okumura_hata",
    "path_loss",
]

CLUTTER_CLASSES = ("dense_urban", "urban", "suburban", "rural")

HATA_RANGE = {
    "f_mhz": (150.0, 1500.0),
    "h_base": (30.0, 200.0),
    "h_mobile": (1.0, 10.0),
    "d_km": (1.0, 20.0),
}
COST231_RANGE = {
    "f_mhz": (1500.0, 2000.0),
    "h_base": (30.0, 200.0),
    "h_mobile": (1.0, 10.0),
    "d_km": (1.0, 20.0),
}

Environment = Literal["urban", "suburban", "open"]

EXTRAPOLATING = N_("{problem}; extrapolating (allow_extrapolation=True)")


def _check_range(
    model: str, ranges: Mapping[str, tuple[float, float]], allow: bool, **values: object
) -> None:
    for key, val in values.items():
        arr = np.asarray(val, dtype=float)
        if arr.size == 0:
            continue
        if not np.isfinite(arr).all() or (arr <= 0).any():
            raise ParameterError(
                msgid=N_("{model}: {key} = {val} must be a positive finite number"),
                model=model,
                key=key,
                val=val,
            )
        lo, hi = ranges[key]
        bad = (arr < lo) | (arr > hi)
        if bad.any():
            v = float(arr[bad].ravel()[0])
            msg = Text(
                N_("{model}: {key} = {v:g} is outside the model's validity range [{lo:g}, {hi:g}]"),
                model=model,
                key=key,
                v=v,
                lo=lo,
                hi=hi,
            )
            if not allow:
                raise RangeError(
                    msgid=N_(
                        "{problem}; use a value inside it, another model, or pass "
                        "allow_extrapolation=True to extrapolate explicitly"
                    ),
                    problem=msg,
                )
            warn_user(logger, EXTRAPOLATING, log_only=True, problem=msg)


def _a_hm_small(f: np.ndarray, hm: np.ndarray) -> np.ndarray:
    lf = np.log10(f)
    return (1.1 * lf - 0.7) * hm - (1.56 * lf - 0.8)


def _a_hm_large(f: np.ndarray, hm: np.ndarray) -> np.ndarray:
    low = 8.29 * np.log10(1.54 * hm) ** 2 - 1.1
    high = 3.2 * np.log10(11.75 * hm) ** 2 - 4.97
    return np.where(f <= 300.0, low, high)


def _env_correction(f: np.ndarray, environment: str) -> np.ndarray:
    lf = np.log10(f)
    if environment == "urban":
        return np.zeros_like(lf)
    if environment == "suburban":
        return -2.0 * np.log10(f / 28.0) ** 2 - 5.4
    if environment == "open":
        return -4.78 * lf**2 + 18.33 * lf - 40.94
    raise ParameterError(
        msgid=N_("environment = {environment}: use 'urban', 'suburban' or 'open'"),
        environment=repr(environment),
    )


def okumura_hata(
    f_mhz: float | np.ndarray,
    h_base: float | np.ndarray,
    h_mobile: float | np.ndarray,
    d_km: float | np.ndarray,
    *,
    environment: Environment = "urban",
    large_city: bool = False,
    allow_extrapolation: bool = False,
) -> np.ndarray | float:
    """Okumura-Hata median path loss in dB.

    Parameters
    ----------
    f_mhz : float or array
        Frequency, MHz (valid 150-1500).
    h_base : float or array
        Base-station antenna height, m (valid 30-200).
    h_mobile : float or array
        Mobile antenna height, m (valid 1-10).
    d_km : float or array
        Distance, km (valid 1-20).
    environment : {'urban', 'suburban', 'open'}
        Propagation environment.
    large_city : bool
        Use the large-city mobile-antenna correction (urban base loss).
    allow_extrapolation : bool
        Evaluate outside the validity ranges (logged warning) instead of raising.

    Returns
    -------
    float or ndarray
        Path loss in dB.

    Raises
    ------
    RangeError
        A value is outside the validity range and extrapolation was not allowed.
    """
    _check_range(
        "Okumura-Hata",
        HATA_RANGE,
        allow_extrapolation,
        f_mhz=f_mhz,
        h_base=h_base,
        h_mobile=h_mobile,
        d_km=d_km,
    )
    f = np.asarray(f_mhz, dtype=float)
    hb = np.asarray(h_base, dtype=float)
    hm = np.asarray(h_mobile, dtype=float)
    d = np.asarray(d_km, dtype=float)
    a = _a_hm_large(f, hm) if large_city else _a_hm_small(f, hm)
    lu = (
        69.55
        + 26.16 * np.log10(f)
        - 13.82 * np.log10(hb)
        - a
        + (44.9 - 6.55 * np.log10(hb)) * np.log10(d)
    )
    out = lu + _env_correction(f, environment)
    return float(out) if np.ndim(out) == 0 else out


def cost231_hata(
    f_mhz: float | np.ndarray,
    h_base: float | np.ndarray,
    h_mobile: float | np.ndarray,
    d_km: float | np.ndarray,
    *,
    environment: Environment = "urban",
    metropolitan: bool = False,
    allow_extrapolation: bool = False,
) -> np.ndarray | float:
    """COST-231 Hata median path loss in dB.

    ``environment='urban'`` and ``'suburban'`` use the model as published
    (``C_m = 3 dB`` if ``metropolitan`` else 0); ``'open'`` applies Hata's open-area
    correction to the urban loss (an extension; COST-231 has no open-area formula).

    Parameters
    ----------
    f_mhz : float or array
        Frequency, MHz (valid 1500-2000; 2100 MHz needs ``allow_extrapolation``).
    h_base, h_mobile, d_km
        As in :func:`okumura_hata` (same ranges).
    environment : {'urban', 'suburban', 'open'}
    metropolitan : bool
        Metropolitan centre (``C_m = 3 dB``).
    allow_extrapolation : bool
        Evaluate outside the validity ranges (logged warning) instead of raising.

    Returns
    -------
    float or ndarray
        Path loss (dB), shaped like the broadcast inputs.

    Raises
    ------
    RangeError
        A value is outside the validity range and extrapolation was not allowed.
    """
    _check_range(
        "COST-231 Hata",
        COST231_RANGE,
        allow_extrapolation,
        f_mhz=f_mhz,
        h_base=h_base,
        h_mobile=h_mobile,
        d_km=d_km,
    )
    if environment not in ("urban", "suburban", "open"):
        raise ParameterError(
            msgid=N_("environment = {environment}: use 'urban', 'suburban' or 'open'"),
            environment=repr(environment),
        )
    f = np.asarray(f_mhz, dtype=float)
    hb = np.asarray(h_base, dtype=float)
    hm = np.asarray(h_mobile, dtype=float)
    d = np.asarray(d_km, dtype=float)
    cm = 3.0 if (metropolitan and environment == "urban") else 0.0
    lu = (
        46.3
        + 33.9 * np.log10(f)
        - 13.82 * np.log10(hb)
        - _a_hm_small(f, hm)
        + (44.9 - 6.55 * np.log10(hb)) * np.log10(d)
        + cm
    )
    if environment == "open":
        lu = lu + _env_correction(f, "open")
    return float(lu) if np.ndim(lu) == 0 else lu


def _clutter_args(clutter: str) -> tuple[Environment, bool]:
    if clutter == "dense_urban":
        return "urban", True
    if clutter == "urban":
        return "urban", False
    if clutter == "suburban":
        return "suburban", False
    if clutter == "rural":
        return "open", False
    raise ParameterError(
        msgid=N_("clutter = {clutter}: use one of {clutter_classes}"),
        clutter=repr(clutter),
        clutter_classes=list(CLUTTER_CLASSES),
    )


def path_loss(
    band_mhz: float,
    h_base: float,
    h_mobile: float,
    d_km: float | np.ndarray,
    *,
    clutter: str = "urban",
    allow_extrapolation: bool = False,
) -> np.ndarray | float:
    """Path loss by band and clutter class: Okumura-Hata up to 1500 MHz, COST-231 above.

    ``dense_urban`` uses Hata's large-city correction / COST-231 ``C_m = 3 dB``;
    ``rural`` uses the open-area formula.

    Parameters
    ----------
    band_mhz : float
        Carrier frequency.
    h_base : float
        Base-station antenna height (m).
    h_mobile : float
        Mobile antenna height (m).
    d_km : float or ndarray
        Distance (km).
    clutter : str
        Clutter class (:data:`CLUTTER_CLASSES`).
    allow_extrapolation : bool
        Allow inputs outside the model's validity range (else :class:`RangeError`).

    Returns
    -------
    float or ndarray
        Path loss (dB).
    """
    env, big = _clutter_args(clutter)
    if band_mhz <= 1500.0:
        return okumura_hata(
            band_mhz,
            h_base,
            h_mobile,
            d_km,
            environment=env,
            large_city=big,
            allow_extrapolation=allow_extrapolation,
        )
    return cost231_hata(
        band_mhz,
        h_base,
        h_mobile,
        d_km,
        environment=env,
        metropolitan=big,
        allow_extrapolation=allow_extrapolation,
    )


def _default_penetration() -> dict[str, float]:
    return {"dense_urban": 20.0, "urban": 15.0, "suburban": 10.0, "rural": 6.0}


@dataclass(frozen=True)
class LinkBudget:
    """Downlink link budget (dB / dBm).

    Defaults are stated assumptions for a macro BTS and an indoor handset user:
    43 dBm transmitter, 17 dBi sector antenna, 3 dB feeder loss (EIRP 57 dBm),
    -102 dBm receiver sensitivity, 0 dBi handset antenna, 8 dB fade margin
    (about 90 % cell-edge reliability with 6-8 dB shadowing), 3 dB body loss, and
    building penetration by clutter (dense urban 20, urban 15, suburban 10, rural 6 dB).

    Attributes
    ----------
    tx_power_dbm, tx_antenna_gain_dbi, tx_cable_loss_db : float
        Transmitter side; ``eirp_dbm`` is their sum.
    rx_sensitivity_dbm, rx_antenna_gain_dbi, rx_cable_loss_db : float
        Receiver side.
    fade_margin_db, body_loss_db : float
        Margins.
    building_penetration_db : dict
        Building penetration loss per clutter class (0 for outdoor planning).
    """

    tx_power_dbm: float = 43.0
    tx_antenna_gain_dbi: float = 17.0
    tx_cable_loss_db: float = 3.0
    rx_sensitivity_dbm: float = -102.0
    rx_antenna_gain_dbi: float = 0.0
    rx_cable_loss_db: float = 0.0
    fade_margin_db: float = 8.0
    body_loss_db: float = 3.0
    building_penetration_db: dict[str, float] = field(default_factory=_default_penetration)

    @property
    def eirp_dbm(self) -> float:
        """Effective isotropic radiated power."""
        return self.tx_power_dbm + self.tx_antenna_gain_dbi - self.tx_cable_loss_db

    def max_path_loss(self, clutter: str) -> float:
        """Maximum allowed path loss (dB) for a clutter class.

        Parameters
        ----------
        clutter : str
            Clutter class (:data:`CLUTTER_CLASSES`).

        Returns
        -------
        float
            Maximum allowed path loss (dB).
        """
        if clutter not in self.building_penetration_db:
            raise ParameterError(
                msgid=N_(
                    "clutter = {clutter}: no building penetration loss given; known classes "
                    "{building_penetration_db}"
                ),
                clutter=repr(clutter),
                building_penetration_db=sorted(self.building_penetration_db),
            )
        return (
            self.eirp_dbm
            + self.rx_antenna_gain_dbi
            - self.rx_cable_loss_db
            - self.rx_sensitivity_dbm
            - self.fade_margin_db
            - self.body_loss_db
            - float(self.building_penetration_db[clutter])
        )


def max_cell_radius(
    band_mhz: float,
    clutter: str,
    *,
    budget: LinkBudget | None = None,
    h_base: float = 30.0,
    h_mobile: float = 1.5,
    allow_extrapolation: bool = False,
) -> float:
    """Maximum cell radius (km) where the path loss equals the link budget's maximum.

    The Hata-family loss is ``L(d) = L(1 km) + B log10 d`` with
    ``B = 44.9 - 6.55 log10 h_base``, so ``d = 10 ** ((L_max - L(1 km)) / B)``.

    Parameters
    ----------
    band_mhz : float
        Band centre frequency (900, 1800, 2100 ...).  2100 MHz is outside COST-231's
        range and needs ``allow_extrapolation=True``.
    clutter : str
        One of :data:`CLUTTER_CLASSES`.
    budget : LinkBudget, optional
        Defaults to ``LinkBudget()``.
    h_base, h_mobile : float
        Antenna heights, m.
    allow_extrapolation : bool
        Accept a frequency, height or resulting radius outside the model's range
        (logged warning).

    Returns
    -------
    float
        Radius in km.

    Raises
    ------
    RangeError
        Frequency/heights outside the model's range, or the resulting radius
        outside 1-20 km, without ``allow_extrapolation``.
    """
    b = budget if budget is not None else LinkBudget()
    lmax = b.max_path_loss(clutter)
    l1 = float(
        path_loss(
            band_mhz,
            h_base,
            h_mobile,
            1.0,
            clutter=clutter,
            allow_extrapolation=allow_extrapolation,
        )
    )
    slope = 44.9 - 6.55 * np.log10(h_base)
    d = float(10.0 ** ((lmax - l1) / slope))
    model = "Okumura-Hata" if band_mhz <= 1500.0 else "COST-231 Hata"
    lo, hi = HATA_RANGE["d_km"]
    if not lo <= d <= hi:
        msg = Text(
            N_(
                "{model}: the link budget gives a cell radius d_km = {d:.3f} at {band_mhz:g} MHz "
                "({clutter}), outside the model's validity range [{lo:g}, {hi:g}] km"
            ),
            model=model,
            d=d,
            band_mhz=band_mhz,
            clutter=clutter,
            lo=lo,
            hi=hi,
        )
        if not allow_extrapolation:
            raise RangeError(
                msgid=N_(
                    "{problem}; pass allow_extrapolation=True to accept the extrapolated radius"
                ),
                problem=msg,
            )
        warn_user(logger, EXTRAPOLATING, log_only=True, problem=msg)
    return d


def cell_radius_table(
    budget: LinkBudget | None = None,
    *,
    bands_mhz: tuple[float, ...] = (900.0, 1800.0, 2100.0),
    clutters: tuple[str, ...] = CLUTTER_CLASSES,
    h_base: float = 30.0,
    h_mobile: float = 1.5,
    allow_extrapolation: bool = True,
) -> pd.DataFrame:
    """Maximum cell radius (km) per band and clutter class, as a tidy table.

    Columns: ``band_mhz``, ``clutter``, ``model``, ``max_path_loss_db``, ``radius_km``,
    ``extrapolated`` (True when frequency or radius is outside the model's range).

    Parameters
    ----------
    budget : LinkBudget, optional
        Link budget (default: :class:`LinkBudget`).
    bands_mhz : tuple of float
        Bands.
    clutters : tuple of str
        Clutter classes.
    h_base : float
        Base-station antenna height (m).
    h_mobile : float
        Mobile antenna height (m).
    allow_extrapolation : bool
        Extrapolate outside the model's validity range.

    Returns
    -------
    DataFrame
        One row per band and clutter class.
    """
    b = budget if budget is not None else LinkBudget()
    rows = []
    for f in bands_mhz:
        for c in clutters:
            r = max_cell_radius(
                f,
                c,
                budget=b,
                h_base=h_base,
                h_mobile=h_mobile,
                allow_extrapolation=allow_extrapolation,
            )
            frange = HATA_RANGE["f_mhz"] if f <= 1500 else COST231_RANGE["f_mhz"]
            ext = not (frange[0] <= f <= frange[1]) or not (1.0 <= r <= 20.0)
            rows.append(
                {
                    "band_mhz": f,
                    "clutter": c,
                    "model": "Okumura-Hata" if f <= 1500 else "COST-231 Hata",
                    "max_path_loss_db": b.max_path_loss(c),
                    "radius_km": r,
                    "extrapolated": ext,
                }
            )
    return pd.DataFrame(rows)


DENSITY_THRESHOLDS = {"dense_urban": 10000.0, "urban": 3000.0, "suburban": 1000.0}
"""People per km2 at or above which a cell is dense urban / urban / suburban (else rural).
In rural districts (huyện) the urban classes need twice the density (town cores)."""


def clutter_from_density(
    district_type: str | np.ndarray | pd.Series,
    density_km2: float | np.ndarray | pd.Series,
    thresholds: Mapping[str, float] | None = None,
) -> np.ndarray | str:
    """Clutter class from district type and population density.

    Stated thresholds (people/km2, :data:`DENSITY_THRESHOLDS`): ``>= 10,000`` dense
    urban, ``>= 3,000`` urban, ``>= 1,000`` suburban, else rural; in ``rural``
    districts the dense-urban and urban thresholds are doubled (rural-district town
    cores are lower-rise).

    Parameters
    ----------
    district_type : str or array
        ``'urban'`` or ``'rural'`` per cell.
    density_km2 : float or array
        Population density per cell.
    thresholds : mapping, optional
        Override of :data:`DENSITY_THRESHOLDS`.

    Returns
    -------
    str or ndarray of str
    """
    th = dict(DENSITY_THRESHOLDS)
    if thresholds:
        th.update(thresholds)
    scalar = np.ndim(density_km2) == 0 and np.ndim(district_type) == 0
    dens = np.atleast_1d(np.asarray(density_km2, dtype=float))
    dt = np.broadcast_to(np.atleast_1d(np.asarray(district_type, dtype=object)), dens.shape)
    if np.isnan(dens).any() or (dens < 0).any():
        raise ParameterError(msgid=N_("density_km2: densities must be >= 0 and not NaN"))
    bad = sorted({str(v) for v in dt if v not in ("urban", "rural")})
    if bad:
        raise ParameterError(
            msgid=N_("district_type: unknown value(s) {bad}; use 'urban' or 'rural'"), bad=bad
        )
    mult = np.where(dt == "rural", 2.0, 1.0)
    out = np.full(dens.shape, "rural", dtype=object)
    out[dens >= th["suburban"]] = "suburban"
    out[dens >= th["urban"] * mult] = "urban"
    out[dens >= th["dense_urban"] * mult] = "dense_urban"
    return str(out[0]) if scalar else out


WORLDCOVER_CLUTTER = {
    10: "rural",
    20: "rural",
    30: "rural",
    40: "rural",
    50: "urban",
    60: "rural",
    70: "rural",
    80: "rural",
    90: "rural",
    95: "rural",
    100: "rural",
}
"""ESA WorldCover 2020/2021 class -> clutter (50 = built-up)."""


def clutter_from_landcover(
    xy: np.ndarray,
    raster_path: str | Path,
    *,
    classes: Mapping[int, str] | None = None,
    density_km2: np.ndarray | None = None,
    default: str = "rural",
) -> np.ndarray:
    """Clutter class per point from a land-cover raster (same CRS as ``xy``).

    Built-up pixels map to ``urban`` (ESA WorldCover mapping by default); when
    ``density_km2`` is given, built-up cells are refined to ``dense_urban`` /
    ``suburban`` with the density thresholds of :func:`clutter_from_density`.
    Pixels outside the raster or of an unmapped class get ``default``.

    Parameters
    ----------
    xy : ndarray, shape (n, 2)
        Points in the raster's CRS.
    raster_path : str or Path
        Land-cover GeoTIFF.
    classes : mapping, optional
        Land-cover code -> clutter class (default: ESA WorldCover).
    density_km2 : ndarray, optional
        Population density per point, refines built-up points.
    default : str
        Class of points outside the raster or of unmapped codes.

    Returns
    -------
    ndarray of str
        Clutter class per point.
    """
    import rasterio

    cls_map = dict(WORLDCOVER_CLUTTER if classes is None else classes)
    pts = np.asarray(xy, dtype=float)
    with rasterio.open(raster_path) as src:
        vals = np.array([v[0] for v in src.sample([tuple(p) for p in pts])])
        nodata = src.nodata
    out = np.array([cls_map.get(int(v), default) for v in vals], dtype=object)
    if nodata is not None:
        out[vals == nodata] = default
    if density_km2 is not None:
        dens = np.asarray(density_km2, dtype=float)
        built = out == "urban"
        out[built & (dens < DENSITY_THRESHOLDS["urban"])] = "suburban"
        out[built & (dens >= DENSITY_THRESHOLDS["dense_urban"])] = "dense_urban"
    return out
