"""Outer-plant cable undergrounding: cable-km by district and a trajectory to the targets.

**Cable-length model (stated, not from the plan).**  The outer-plant cable
length of a district is estimated from its road network::

    cable_km(d) = sum over road classes c of
                  road_km(d, c) * road_class_factor[c] * type_factor[type(d)]

with ``type_factor`` = ``cable_km_per_road_km_urban`` (default 2.0) in urban
districts (*quận*) and ``cable_km_per_road_km_rural`` (default 1.0) in rural
ones (*huyện*), and ``road_class_factor`` (default national 1.5, provincial
1.25, local 1.0, other 1.0; classes not listed use ``other``).  Roads are
clipped to the districts (:func:`road_km_by_district`); road length outside
every district is reported in a warning.

**Trajectory.**  Each district starts at its current underground share in
``start_year`` (``current_by_district``, else ``current_urban`` /
``current_rural``).  At each milestone year its share is the target of its
type (``urban_min`` for urban, ``rural_min`` for rural), never lower than the
share already reached (no district digs cables back up).  Between milestones
the share rises linearly, so the km buried per year are constant within each
period: ``(share(m_k) - share(m_{k-1})) * cable_km / (m_k - m_{k-1})``.  Cable
length is held constant over the period (stated simplification).  The fibre
share follows the same rule with the city-wide fibre minimum as the target of
every district.

**City-wide share** = length-weighted mean of the district shares.  With
urban share ``w`` of the cable length, district targets ``u`` (urban) and
``r`` (rural) give a city-wide share ``w*u + (1-w)*r``; it lies in
``[city_min, city_max]`` only for ``w`` in
``[(city_min - r)/(u - r), (city_max - r)/(u - r)]`` - for the Cần Thơ 2020
targets (50 %, 25 %, 30-35 %) that is 20-40 %.  :func:`plan_undergrounding`
states, for each milestone, the city-wide share, the measured ``w``, the
range of ``w`` the targets imply and a verdict ``underground_plan_consistent``.

Layer ``underground_plan`` (district polygons): ``district``, ``code``,
``district_type``, ``road_km``, ``road_km_<class>``, ``cable_km``,
``share_<start_year>`` (current), and for each milestone year ``Y``:
``share_Y``, ``underground_km_Y``, ``bury_km_per_year_to_Y`` (in the period
ending at ``Y``), ``fibre_share_Y``, ``fibre_km_Y``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from towerplan._validate import require_columns, require_metric, require_rows
from towerplan.errors import (
    N_,
    ColumnError,
    CRSError,
    ParameterError,
    ScenarioError,
    warn_user,
)
from towerplan.scenario import FibreTargets, Scenario, UndergroundingTargets

logger = logging.getLogger(__name__)

__all__ = [
    "Milestone",
    "UndergroundPlan",
    "cable_km_by_district",
    "district_columns",
    "implied_urban_share_range",
    "milestones_from_scenarios",
    "plan_undergrounding",
    "road_km_by_district",
    "summary_keys",
    "underground_trajectory",
]


@dataclass(frozen=True)
class Milestone:
    """Undergrounding (and fibre) targets for one milestone year (shares 0-1).

    ``urban_min`` / ``rural_min`` are the district targets by type,
    ``city_min`` / ``city_max`` the city-wide range, ``fibre_min`` /
    ``fibre_max`` the city-wide fibre range (optional), ``fibre_urban_min`` /
    ``fibre_rural_min`` optional fibre targets by district type.
    """

    year: int
    urban_min: float
    rural_min: float
    city_min: float
    city_max: float
    fibre_min: float | None = None
    fibre_max: float | None = None
    fibre_urban_min: float | None = None
    """Fibre target of urban districts (default ``fibre_min``)."""
    fibre_rural_min: float | None = None
    """Fibre target of rural districts (default ``fibre_min``)."""

    def check(self) -> None:
        """Raise :class:`ParameterError` for a share outside 0-1 or min > max."""
        for key in (
            "urban_min",
            "rural_min",
            "city_min",
            "city_max",
            "fibre_min",
            "fibre_max",
            "fibre_urban_min",
            "fibre_rural_min",
        ):
            v = getattr(self, key)
            if v is None:
                continue
            if not np.isfinite(v) or not 0.0 <= v <= 1.0:
                raise ParameterError(
                    msgid=N_(
                        "milestone {year}: {key} = {v} is not a share between 0 and 1 "
                        "(targets above 100 % are impossible); write 50 % as 0.5"
                    ),
                    year=self.year,
                    key=key,
                    v=v,
                )
        if self.city_min > self.city_max:
            raise ParameterError(
                msgid=N_("milestone {year}: city_min {city_min} > city_max {city_max}"),
                year=self.year,
                city_min=self.city_min,
                city_max=self.city_max,
            )
        if (
            self.fibre_min is not None
            and self.fibre_max is not None
            and self.fibre_min > self.fibre_max
        ):
            raise ParameterError(
                msgid=N_("milestone {year}: fibre_min {fibre_min} > fibre_max {fibre_max}"),
                year=self.year,
                fibre_min=self.fibre_min,
                fibre_max=self.fibre_max,
            )


MilestoneLike = Milestone | Sequence[float]


def _as_milestones(milestones: Mapping[int, MilestoneLike]) -> list[Milestone]:
    if not milestones:
        raise ParameterError(
            msgid=N_("milestones: give at least one milestone year with its targets")
        )
    out: list[Milestone] = []
    for year, m in milestones.items():
        if isinstance(m, Milestone):
            ms = m if m.year == int(year) else Milestone(int(year), *_fields(m))
        else:
            vals = tuple(float(v) for v in m)
            if len(vals) not in (4, 6):
                raise ParameterError(
                    msgid=N_(
                        "milestones[{year}]: give (urban_min, rural_min, city_min, city_max) "
                        "[, fibre_min, fibre_max], got {n_vals} values"
                    ),
                    year=year,
                    n_vals=len(vals),
                )
            ms = Milestone(int(year), *vals)
        ms.check()
        out.append(ms)
    return sorted(out, key=lambda x: x.year)


def _fields(m: Milestone) -> tuple[Any, ...]:
    return (
        m.urban_min,
        m.rural_min,
        m.city_min,
        m.city_max,
        m.fibre_min,
        m.fibre_max,
        m.fibre_urban_min,
        m.fibre_rural_min,
    )


def milestones_from_scenarios(*scenarios: Scenario) -> dict[int, Milestone]:
    """Milestones from one or more scenarios (one milestone per scenario year).

    The pipeline builds the full 2016-2030 trajectory with
    ``milestones_from_scenarios(load_scenario("cantho-2020"),
    load_scenario("cantho-2030"))``: each scenario contributes its ``year``
    with ``undergrounding.urban_min / rural_min / city_min / city_max`` and
    ``fibre.min / max``.  Pass the earliest scenario's ``undergrounding`` and
    ``fibre`` sections as the trajectory settings (start year, current shares,
    cable factors)::

        s20, s30 = load_scenario("cantho-2020"), load_scenario("cantho-2030")
        plan = plan_undergrounding(roads, districts, milestones_from_scenarios(s20, s30),
                                   settings=s20.undergrounding, fibre=s20.fibre)

    Returns
    -------
    dict of int -> Milestone
        By year.

    Raises
    ------
    ScenarioError
        No scenario, two scenarios with the same year but different targets,
        or different ``undergrounding.start_year``.
    """
    if not scenarios:
        raise ScenarioError(msgid=N_("milestones_from_scenarios: give at least one scenario"))
    out: dict[int, Milestone] = {}
    starts = {s.undergrounding.start_year for s in scenarios}
    if len(starts) > 1:
        raise ScenarioError(
            msgid=N_(
                "scenarios {names} disagree on undergrounding.start_year ({starts}); use one "
                "start year"
            ),
            names=[s.name for s in scenarios],
            starts=sorted(starts),
        )
    for s in scenarios:
        u = s.undergrounding
        f = s.fibre
        m = Milestone(
            s.year, u.urban_min, u.rural_min, u.city_min, u.city_max, f.min, f.max,
            f.urban_min, f.rural_min,
        )  # fmt: skip
        if s.year in out and out[s.year] != m:
            raise ScenarioError(
                msgid=N_(
                    "scenarios give different undergrounding targets for {year}; keep one "
                    "scenario per year (scenario '{scenario}')"
                ),
                year=s.year,
                scenario=s.name,
            )
        if s.year <= u.start_year:
            raise ScenarioError(
                msgid=N_(
                    "scenario '{scenario}': year {year} is not after "
                    "undergrounding.start_year {start_year}"
                ),
                scenario=s.name,
                year=s.year,
                start_year=u.start_year,
            )
        m.check()
        out[s.year] = m
    return dict(sorted(out.items()))


def implied_urban_share_range(
    urban: float, rural: float, *, city_min: float, city_max: float
) -> tuple[float, float] | None:
    """Range of the urban share ``w`` of cable length for which the district targets
    give a city-wide share in ``[city_min, city_max]``.

    Solves ``city_min <= w*urban + (1-w)*rural <= city_max`` for ``w`` in
    ``[0, 1]``.  Returns ``(w_lo, w_hi)`` or ``None`` when no ``w`` works.
    ``urban == rural`` gives ``(0, 1)`` if that share is in range, else None.

    Parameters
    ----------
    urban : float
        Urban (quận) target share.
    rural : float
        Rural (huyện) target share.
    city_min : float
        Lower city-wide target.
    city_max : float
        Upper city-wide target.

    Returns
    -------
    tuple of float or None
        ``(w_lo, w_hi)``.
    """
    if np.isclose(urban, rural):
        return (0.0, 1.0) if city_min - 1e-12 <= urban <= city_max + 1e-12 else None
    a = (city_min - rural) / (urban - rural)
    b = (city_max - rural) / (urban - rural)
    lo, hi = max(0.0, min(a, b)), min(1.0, max(a, b))
    return (float(lo), float(hi)) if lo <= hi + 1e-12 else None


# --------------------------------------------------------------------------- road / cable km


def _check_districts(districts: gpd.GeoDataFrame) -> None:
    require_metric(districts, "districts")
    require_rows(districts, "districts")
    require_columns(districts, ["district", "district_type"], "districts")
    bad = ~districts["district_type"].isin(["urban", "rural"])
    if bad.any():
        raise ColumnError(
            msgid=N_("districts: district_type must be 'urban' or 'rural'; found {found}"),
            found=sorted(map(str, districts.loc[bad, "district_type"].unique())),
        )


def road_km_by_district(roads: gpd.GeoDataFrame, districts: gpd.GeoDataFrame) -> pd.DataFrame:
    """Road kilometres per district and road class, by clipping the roads to the districts.

    Parameters
    ----------
    roads : GeoDataFrame
        Road lines in a metric CRS; ``road_class`` (blank/missing = ``local``).
    districts : GeoDataFrame
        District polygons (``district``) in the same CRS.

    Returns
    -------
    pandas.DataFrame
        Index ``district`` (every district, in the districts' order), one
        column per road class (km), and ``road_km`` (total).

    Raises
    ------
    CRSError
        Roads or districts without a CRS, geographic, or in different CRSs.

    Warns
    -----
    UserWarning
        When more than 0.5 % of the road length lies outside every district.
    """
    require_metric(roads, "roads")
    _check_districts(districts)
    if roads.crs != districts.crs:
        raise CRSError(
            msgid=N_(
                "roads ({roads_crs}) and districts ({districts_crs}) are in different CRSs; "
                "reproject both to the working CRS"
            ),
            roads_crs=roads.crs,
            districts_crs=districts.crs,
        )
    names = list(districts["district"])
    lines = roads[roads.geometry.notna() & ~roads.geometry.is_empty].copy()
    lines = lines[lines.geom_type.isin(["LineString", "MultiLineString"])]
    if len(lines) < len(roads):
        logger.info("roads: %d non-line or empty features ignored", len(roads) - len(lines))
    cls = (
        lines["road_class"].astype(object)
        if "road_class" in lines.columns
        else pd.Series("local", index=lines.index, dtype=object)
    )
    cls = cls.where(cls.notna(), "local").astype(str).str.strip().str.lower()
    lines = gpd.GeoDataFrame({"road_class": cls.replace("", "local")}, geometry=lines.geometry)
    total_m = float(lines.length.sum())
    if len(lines) == 0:
        out = pd.DataFrame(index=pd.Index(names, name="district"))
        out["road_km"] = 0.0
        return out
    clipped = gpd.overlay(
        lines, districts[["district", "geometry"]], how="intersection", keep_geom_type=True
    )
    clipped["km"] = clipped.length / 1000.0
    table = clipped.pivot_table(
        index="district", columns="road_class", values="km", aggfunc="sum", fill_value=0.0
    )
    table = table.reindex(names).fillna(0.0)
    table.columns = [str(c) for c in table.columns]
    table.index.name = "district"
    table["road_km"] = table.sum(axis=1)
    outside_km = (total_m / 1000.0) - float(table["road_km"].sum())
    if total_m > 0 and outside_km > 0.005 * total_m / 1000.0:
        warn_user(
            logger,
            N_(
                "roads: {out:.1f} km of {total:.1f} km road length lie outside every district "
                "and are not counted; check the districts cover the road layer"
            ),
            stacklevel=2,
            out=outside_km,
            total=total_m / 1000,
        )
    return table


def cable_km_by_district(
    roads: gpd.GeoDataFrame,
    districts: gpd.GeoDataFrame,
    settings: UndergroundingTargets | None = None,
) -> gpd.GeoDataFrame:
    """District polygons with road-km by class, total road-km and estimated cable-km.

    ``cable_km = sum_c road_km_c * road_class_factor[c] * type_factor``
    (module docstring).  Factors from ``settings`` (the scenario's
    ``undergrounding`` section; default :class:`UndergroundingTargets` values).

    Parameters
    ----------
    roads : GeoDataFrame
        Road lines with ``road_class``, metric CRS.
    districts : GeoDataFrame
        ``district``, ``district_type`` polygons, same CRS.
    settings : UndergroundingTargets, optional
        Cable factors.

    Returns
    -------
    GeoDataFrame
        ``district``, ``code`` (when present), ``district_type``,
        ``road_km_<class>``, ``road_km``, ``cable_km``; the districts' index.

    Raises
    ------
    ParameterError
        A negative cable factor.
    """
    st = settings if settings is not None else UndergroundingTargets(0.0, 1.0, 0.0, 0.0)
    factors = {str(k).lower(): float(v) for k, v in st.road_class_factor.items()}
    for key, v in {
        **{f"road_class_factor.{k}": f for k, f in factors.items()},
        "cable_km_per_road_km_urban": st.cable_km_per_road_km_urban,
        "cable_km_per_road_km_rural": st.cable_km_per_road_km_rural,
    }.items():
        if not np.isfinite(v) or v < 0:
            raise ParameterError(
                msgid=N_("undergrounding.{key} = {v}: cable factors must be >= 0"),
                key=key,
                v=v,
            )
    table = road_km_by_district(roads, districts)
    other = factors.get("other", 1.0)
    classes = [c for c in table.columns if c != "road_km"]
    weighted = sum(
        (table[c] * factors.get(c, other) for c in classes),
        start=pd.Series(0.0, index=table.index),
    )
    unknown = sorted(c for c in classes if c not in factors)
    if unknown:
        logger.info("road classes %s use the 'other' cable factor %.2f", unknown, other)
    keep = [c for c in ("district", "code", "district_type") if c in districts.columns]
    out = districts[[*keep, "geometry"]].copy()
    for c in classes:
        out[f"road_km_{c}"] = table[c].reindex(out["district"]).to_numpy()
    out["road_km"] = table["road_km"].reindex(out["district"]).to_numpy()
    type_factor = np.where(
        out["district_type"].eq("urban"),
        st.cable_km_per_road_km_urban,
        st.cable_km_per_road_km_rural,
    )
    out["cable_km"] = weighted.reindex(out["district"]).to_numpy() * type_factor
    return out


# --------------------------------------------------------------------------- trajectory


@dataclass(frozen=True)
class UndergroundPlan:
    """Result of :func:`plan_undergrounding` / :func:`underground_trajectory`.

    Attributes
    ----------
    layer : GeoDataFrame
        Layer ``underground_plan`` (module docstring).
    trajectory : DataFrame
        Long table: ``district``, ``district_type``, ``year``, ``share``,
        ``underground_km``, ``bury_km`` (buried during that year),
        ``fibre_share``, ``fibre_km``; plus rows with ``district`` = ``"city"``.
    checks : DataFrame
        One row per milestone year: targets, ``city_share``,
        ``urban_cable_share`` (measured w), ``w_lo``/``w_hi`` (implied range),
        ``rural_share_for_city_min`` (huyện share that, with quận at target, gives
        ``city_min``; 0 when quận alone reach it), ``city_fibre_share``, ``consistent``.
    consistent : bool
        Every milestone's city-wide share lies in ``[city_min, city_max]``.
    verdict : str
        Human explanation (printed in the summary).
    """

    layer: gpd.GeoDataFrame
    trajectory: pd.DataFrame
    checks: pd.DataFrame
    consistent: bool
    verdict: str
    fibre_consistent: bool | None = None
    """Every milestone's city-wide fibre share lies in its fibre range (None: no fibre target)."""
    fibre_verdict: str = ""

    @property
    def city_share(self) -> dict[int, float]:
        """City-wide underground share per milestone year."""
        return {
            int(y): float(v)
            for y, v in zip(self.checks["year"], self.checks["city_share"], strict=True)
        }


def _current(
    names: pd.Series,
    types: pd.Series,
    urban: float,
    rural: float,
    by_district: Mapping[str, float] | None,
    what: str,
) -> np.ndarray:
    for k, v in (("urban", urban), ("rural", rural)):
        if not np.isfinite(v) or not 0.0 <= v <= 1.0:
            raise ParameterError(
                msgid=N_("{what} current {k} share = {v}: must be a share between 0 and 1"),
                what=what,
                k=k,
                v=v,
            )
    base = np.where(types.eq("urban"), urban, rural).astype(float)
    if by_district:
        unknown = sorted(set(by_district) - set(names))
        if unknown:
            raise ParameterError(
                msgid=N_(
                    "{what} current_by_district names unknown districts {unknown}; use names "
                    "from the districts layer {names}"
                ),
                what=what,
                unknown=unknown,
                names=sorted(map(str, names)),
            )
        for k, v in by_district.items():
            if not np.isfinite(v) or not 0.0 <= v <= 1.0:
                raise ParameterError(
                    msgid=N_(
                        "{what} current_by_district['{k}'] = {v}: must be a share between 0 and 1"
                    ),
                    what=what,
                    k=k,
                    v=v,
                )
        base = np.array(
            [by_district.get(n, b) for n, b in zip(names, base, strict=True)], dtype=float
        )
    return base


def _fibre_target(m: Milestone, urban: np.ndarray, prev: np.ndarray) -> np.ndarray:
    """District fibre targets of a milestone: by type when given, else the city minimum."""
    if m.fibre_min is None and m.fibre_urban_min is None and m.fibre_rural_min is None:
        return prev
    base = m.fibre_min if m.fibre_min is not None else 0.0
    u = m.fibre_urban_min if m.fibre_urban_min is not None else base
    r = m.fibre_rural_min if m.fibre_rural_min is not None else base
    return np.where(urban, u, r)


def _verdict_line(
    what: str, year: int, u: float, r: float, lo: float, hi: float, city: float, w: float
) -> tuple[bool, str]:
    """Whether a city-wide share lies in ``[lo, hi]`` and the sentence that explains it."""
    rng = implied_urban_share_range(u, r, city_min=lo, city_max=hi)
    ok = bool(lo - 1e-9 <= city <= hi + 1e-9)
    rng_txt = f"quận hold {rng[0]:.0%}-{rng[1]:.0%} of the cable length" if rng else (
        "no split of cable length"
    )  # fmt: skip
    line = (
        f"{year}: {what} district targets (quận {u:.0%}, huyện {r:.0%}) give a city-wide share "
        f"of {city:.1%} with quận holding {w:.1%} of the estimated cable length; the city-wide "
        f"range {lo:.0%}-{hi:.0%} follows from these district targets only if {rng_txt} -> "
        + ("consistent." if ok else "INCONSISTENT.")
    )
    return ok, line


def underground_trajectory(
    cable: gpd.GeoDataFrame,
    milestones: Mapping[int, MilestoneLike],
    *,
    settings: UndergroundingTargets | None = None,
    fibre: FibreTargets | None = None,
) -> UndergroundPlan:
    """Year-by-year undergrounding (and fibre) trajectory from the cable-km per district.

    Parameters
    ----------
    cable : GeoDataFrame
        :func:`cable_km_by_district` output (``district``, ``district_type``,
        ``cable_km``).
    milestones : mapping
        ``{year: Milestone}`` or ``{year: (urban_min, rural_min, city_min,
        city_max[, fibre_min, fibre_max])}``; see :func:`milestones_from_scenarios`.
    settings : UndergroundingTargets, optional
        ``start_year``, ``current_urban``, ``current_rural``,
        ``current_by_district``.
    fibre : FibreTargets, optional
        ``current``, ``current_by_district`` (fibre targets come from the
        milestones; a milestone without ``fibre_min`` keeps the fibre share).

    Returns
    -------
    UndergroundPlan

    Raises
    ------
    ParameterError
        Shares outside 0-1 (targets above 100 %), a milestone not after the
        start year, negative cable-km.
    """
    st = settings if settings is not None else UndergroundingTargets(0.0, 1.0, 0.0, 0.0)
    fb = fibre if fibre is not None else FibreTargets(min=0.0)
    ms = _as_milestones(milestones)
    start = int(st.start_year)
    if ms[0].year <= start:
        raise ParameterError(
            msgid=N_(
                "milestone year {year} is not after the start year {start}; milestones must "
                "be later than undergrounding.start_year"
            ),
            year=ms[0].year,
            start=start,
        )
    require_columns(
        cable, ["district", "district_type", "cable_km"], "cable", fix="use cable_km_by_district()"
    )
    km = cable["cable_km"].to_numpy(dtype=float)
    if (~np.isfinite(km)).any() or (km < 0).any():
        raise ParameterError(msgid=N_("cable: cable_km must be finite and >= 0"))
    names, types = cable["district"], cable["district_type"]
    urban = types.eq("urban").to_numpy()
    s0 = _current(
        names, types, st.current_urban, st.current_rural, st.current_by_district, "undergrounding"
    )
    f0 = _current(names, types, fb.current, fb.current, fb.current_by_district, "fibre")

    # share at each knot (start + milestones), never decreasing
    knots = [start] + [m.year for m in ms]
    shares = [s0]
    fshares = [f0]
    for m in ms:
        tgt = np.where(urban, m.urban_min, m.rural_min)
        shares.append(np.maximum(shares[-1], tgt))
        fshares.append(np.maximum(fshares[-1], _fibre_target(m, urban, fshares[-1])))
    share_k = np.vstack(shares)  # (n_knots, n_districts)
    fshare_k = np.vstack(fshares)
    years = np.arange(start, knots[-1] + 1)
    share_y = np.column_stack([np.interp(years, knots, share_k[:, d]) for d in range(len(km))])
    fshare_y = np.column_stack([np.interp(years, knots, fshare_k[:, d]) for d in range(len(km))])
    traj = _trajectory_table(names, types, years, km, share_y, fshare_y)

    layer = cable.copy()
    layer[f"share_{start}"] = s0
    layer[f"fibre_share_{start}"] = f0
    for k, m in enumerate(ms, start=1):
        yr, prev = int(m.year), int(knots[k - 1])
        layer[f"share_{yr}"] = share_k[k]
        layer[f"underground_km_{yr}"] = share_k[k] * km
        layer[f"bury_km_per_year_to_{yr}"] = (share_k[k] - share_k[k - 1]) * km / (yr - prev)
        layer[f"fibre_share_{yr}"] = fshare_k[k]
        layer[f"fibre_km_{yr}"] = fshare_k[k] * km

    check_rows, lines, flines = _milestone_checks(ms, km, urban, share_k, fshare_k)
    checks = pd.DataFrame(check_rows)
    consistent = bool(checks["consistent"].all())
    verdict = (
        "underground plan consistent: " if consistent else "underground plan NOT consistent: "
    ) + " ".join(lines)
    f_all = [v for v in checks["fibre_consistent"] if v is not None]
    fibre_consistent = bool(all(f_all)) if f_all else None
    fibre_verdict = (
        ("fibre plan consistent: " if fibre_consistent else "fibre plan NOT consistent: ")
        + " ".join(flines)
        if flines
        else ""
    )
    logger.info(verdict)
    return UndergroundPlan(
        layer=layer,
        trajectory=traj,
        checks=checks,
        consistent=consistent,
        verdict=verdict,
        fibre_consistent=fibre_consistent,
        fibre_verdict=fibre_verdict,
    )


def _trajectory_table(
    names: pd.Series,
    types: pd.Series,
    years: np.ndarray,
    km: np.ndarray,
    share_y: np.ndarray,
    fshare_y: np.ndarray,
) -> pd.DataFrame:
    """``underground_plan.csv``: one row per district and year, then the city rows."""
    und_km = share_y * km
    bury = np.vstack([np.zeros((1, len(km))), np.diff(und_km, axis=0)])
    total = float(km.sum())
    recs = []
    for d, name in enumerate(names):
        for yi, y in enumerate(years):
            recs.append(
                (
                    name,
                    types.iat[d],
                    int(y),
                    share_y[yi, d],
                    und_km[yi, d],
                    bury[yi, d],
                    fshare_y[yi, d],
                    fshare_y[yi, d] * km[d],
                )
            )
    for yi, y in enumerate(years):
        recs.append(
            (
                "city",
                "city",
                int(y),
                und_km[yi].sum() / total if total else np.nan,
                und_km[yi].sum(),
                bury[yi].sum(),
                (fshare_y[yi] * km).sum() / total if total else np.nan,
                (fshare_y[yi] * km).sum(),
            )
        )
    return pd.DataFrame(
        recs,
        columns=[
            "district",
            "district_type",
            "year",
            "share",
            "underground_km",
            "bury_km",
            "fibre_share",
            "fibre_km",
        ],
    )


def _milestone_checks(
    ms: list[Milestone],
    km: np.ndarray,
    urban: np.ndarray,
    share_k: np.ndarray,
    fshare_k: np.ndarray,
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Per milestone: do the district targets add up to the city-wide ones (and fibre)?"""
    total = float(km.sum())
    w = float(km[urban].sum() / total) if total else float("nan")
    check_rows = []
    lines, flines = [], []
    for k, m in enumerate(ms, start=1):
        city = float((share_k[k] * km).sum() / total) if total else float("nan")
        city_f = float((fshare_k[k] * km).sum() / total) if total else float("nan")
        rng = implied_urban_share_range(
            m.urban_min, m.rural_min, city_min=m.city_min, city_max=m.city_max
        )
        ok, line = _verdict_line(
            "undergrounding", m.year, m.urban_min, m.rural_min, m.city_min, m.city_max, city, w
        )
        lines.append(line)
        f_ok = None
        if m.fibre_min is not None:
            fu, fr = (float(v) for v in _fibre_target(m, np.array([True, False]), np.zeros(2)))
            fmax = m.fibre_max if m.fibre_max is not None else 1.0
            f_ok, fline = _verdict_line("fibre", m.year, fu, fr, m.fibre_min, fmax, city_f, w)
            flines.append(fline)
        r_need = max(0.0, (m.city_min - w * m.urban_min) / (1 - w)) if w < 1 else float("nan")
        check_rows.append(
            {
                "year": m.year,
                "urban_min": m.urban_min,
                "rural_min": m.rural_min,
                "city_min": m.city_min,
                "city_max": m.city_max,
                "city_share": city,
                "urban_cable_share": w,
                "w_lo": rng[0] if rng else np.nan,
                "w_hi": rng[1] if rng else np.nan,
                "rural_share_for_city_min": r_need,
                "city_fibre_share": city_f,
                "fibre_min": m.fibre_min,
                "fibre_max": m.fibre_max,
                "fibre_consistent": f_ok,
                "consistent": ok,
            }
        )
    return check_rows, lines, flines


def plan_undergrounding(
    roads: gpd.GeoDataFrame,
    districts: gpd.GeoDataFrame,
    milestones: Mapping[int, MilestoneLike],
    *,
    settings: UndergroundingTargets | None = None,
    fibre: FibreTargets | None = None,
) -> UndergroundPlan:
    """Cable-km by district from roads, then the trajectory to the milestones.

    ``underground_trajectory(cable_km_by_district(roads, districts, settings),
    milestones, settings=settings, fibre=fibre)``; see those functions.

    Parameters
    ----------
    roads : GeoDataFrame
        Road lines with ``road_class``, metric CRS.
    districts : GeoDataFrame
        ``district``, ``district_type`` polygons, same CRS.
    milestones : mapping
        ``{year: Milestone}`` (:func:`milestones_from_scenarios`).
    settings : UndergroundingTargets, optional
        Start year, current shares, cable factors.
    fibre : FibreTargets, optional
        Current fibre shares.

    Returns
    -------
    UndergroundPlan
        Layer, trajectory, checks and verdicts.
    """
    cable = cable_km_by_district(roads, districts, settings)
    return underground_trajectory(cable, milestones, settings=settings, fibre=fibre)


# --------------------------------------------------------------------------- summary


def summary_keys(plan: UndergroundPlan) -> dict[str, Any]:
    """Keys for ``summary.json``.

    ``underground_share_city`` (``{year: share}`` per milestone),
    ``underground_plan_consistent`` (bool), ``underground_verdict`` (text),
    ``underground_cable_km`` (city total), ``underground_urban_cable_share``
    (measured w), ``fibre_share_city`` (``{year: share}``).

    Parameters
    ----------
    plan : UndergroundPlan
        :func:`plan_undergrounding` output.

    Returns
    -------
    dict
        The keys above.
    """
    c = plan.checks
    return {
        "underground_share_city": {
            str(int(y)): round(float(v), 4) for y, v in zip(c["year"], c["city_share"], strict=True)
        },
        "underground_plan_consistent": plan.consistent,
        "underground_verdict": plan.verdict,
        "underground_cable_km": round(float(plan.layer["cable_km"].sum()), 3),
        "underground_urban_cable_share": round(float(c["urban_cable_share"].to_numpy()[0]), 4),
        "fibre_share_city": {
            str(int(y)): round(float(v), 4)
            for y, v in zip(c["year"], c["city_fibre_share"], strict=True)
        },
        "fibre_plan_consistent": plan.fibre_consistent,
        "fibre_verdict": plan.fibre_verdict,
    }


def district_columns(plan: UndergroundPlan) -> pd.DataFrame:
    """Per-district columns for ``district_kpis.csv`` (index ``district``).

    ``road_km``, ``cable_km`` and, per milestone year ``Y``, ``underground_share_Y``,
    ``underground_km_Y``, ``bury_km_per_year_to_Y``, ``fibre_share_Y``.

    Parameters
    ----------
    plan : UndergroundPlan
        :func:`plan_undergrounding` output.

    Returns
    -------
    DataFrame
        Indexed by district.
    """
    lay = plan.layer.set_index("district")
    out = lay[[c for c in ("road_km", "cable_km") if c in lay.columns]].copy()
    for y in plan.checks["year"]:
        y = int(y)
        out[f"underground_share_{y}"] = lay[f"share_{y}"]
        out[f"underground_km_{y}"] = lay[f"underground_km_{y}"]
        out[f"bury_km_per_year_to_{y}"] = lay[f"bury_km_per_year_to_{y}"]
        out[f"fibre_share_{y}"] = lay[f"fibre_share_{y}"]
    return pd.DataFrame(out)
