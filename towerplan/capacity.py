"""Capacity-driven demand: busy-hour traffic per cell and the sites it needs per district.

**Traffic** (stated assumptions, scenario section ``capacity``).  A demand cell
with population ``P`` has ``P * mbb_per_100 / 100`` mobile-broadband
subscriptions (scenario ``subscribers.mobile_broadband_per_100``), of which the
share ``s_t`` is carried on technology ``t`` (4G, 5G, ...).  One subscription
on ``t`` uses ``GB_t`` GB per month, of which the share ``h`` (``busy_hour_share``)
falls in the busy hour of a day::

    busy_hour_kbps_t = GB_t * 8e6 kbit/GB / days_per_month * h / 3600 s
    traffic_t(cell) = P * mbb_per_100 / 100 * s_t * busy_hour_kbps_t / 1000   [Mbps]

**Site capacity.**  Every site carries every technology layer, each on
``sectors_per_site`` sectors of ``bandwidth_mhz`` at a mean spectral
efficiency ``SE_t``, loaded to ``max_utilisation``::

    capacity_t = sectors * SE_t [bit/s/Hz] * bandwidth_t [MHz] * max_utilisation   [Mbps]

**Sites needed** in a district: ``capacity_sites = max_t ceil(traffic_t /
capacity_t)`` (a site serves all its layers at once, so the busiest layer
decides), and ``sites_needed = max(coverage_sites, capacity_sites)`` - the
one rule towerplan uses wherever coverage and capacity meet.  A *site* is a
structure carrying the equipment of all its tenants (``bandwidth_mhz`` is the
spectrum per sector summed over tenants).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from towerplan.errors import N_, ParameterError
from towerplan.scenario import CapacitySettings, Technology

logger = logging.getLogger(__name__)

__all__ = [
    "busy_hour_kbps",
    "capacity_sites_needed",
    "cell_traffic_mbps",
    "site_capacity_mbps",
    "summary_keys",
]

_KBIT_PER_GB = 8e6


def busy_hour_kbps(tech: Technology, settings: CapacitySettings) -> float:
    """Busy-hour throughput of one subscription on ``tech`` (kbit/s).

    ``GB/month * 8e6 / days_per_month * busy_hour_share / 3600``.

    Parameters
    ----------
    tech : Technology
        Radio technology settings.
    settings : CapacitySettings
        Traffic settings.

    Returns
    -------
    float
        kbit/s per subscription.
    """
    return (
        tech.monthly_gb_per_subscriber
        * _KBIT_PER_GB
        / settings.days_per_month
        * settings.busy_hour_share
        / 3600.0
    )


def site_capacity_mbps(tech: Technology, settings: CapacitySettings) -> float:
    """Busy-hour capacity of one site on ``tech`` (Mbit/s).

    ``sectors_per_site * spectral_efficiency * bandwidth_mhz * max_utilisation``.

    Parameters
    ----------
    tech : Technology
        Radio technology settings.
    settings : CapacitySettings
        Capacity settings.

    Returns
    -------
    float
        Mbit/s per site.
    """
    return (
        settings.sectors_per_site
        * tech.spectral_efficiency_bps_hz
        * tech.bandwidth_mhz
        * settings.max_utilisation
    )


def cell_traffic_mbps(
    population: np.ndarray | pd.Series,
    mobile_broadband_per_100: float,
    settings: CapacitySettings,
) -> pd.DataFrame:
    """Busy-hour traffic (Mbit/s) of each demand cell, one column per technology.

    Parameters
    ----------
    population : array or Series
        People per cell (>= 0); a Series keeps its index.
    mobile_broadband_per_100 : float
        Mobile-broadband subscriptions per 100 people.
    settings : CapacitySettings
        The scenario's ``capacity`` section.

    Returns
    -------
    DataFrame
        Columns ``traffic_mbps_<tech>`` and ``traffic_mbps`` (their sum).
    """
    if mobile_broadband_per_100 < 0:
        raise ParameterError(
            msgid=N_(
                "subscribers.mobile_broadband_per_100 = {mobile_broadband_per_100}: must be >= 0"
            ),
            mobile_broadband_per_100=mobile_broadband_per_100,
        )
    idx = population.index if isinstance(population, pd.Series) else None
    pop = np.asarray(population, dtype=float)
    if (~np.isfinite(pop)).any() or (pop < 0).any():
        raise ParameterError(msgid=N_("population: values must be finite numbers >= 0"))
    subs = pop * mobile_broadband_per_100 / 100.0
    cols = {
        f"traffic_mbps_{t.name}": subs * t.subscriber_share * busy_hour_kbps(t, settings) / 1000.0
        for t in settings.technologies
    }
    out = pd.DataFrame(cols, index=idx)
    out["traffic_mbps"] = out.sum(axis=1)
    return out


def capacity_sites_needed(
    population_by_district: pd.Series,
    mobile_broadband_per_100: float,
    settings: CapacitySettings,
    *,
    existing_by_district: pd.Series | None = None,
    coverage_sites_by_district: pd.Series | None = None,
) -> pd.DataFrame:
    """Sites each district needs for capacity, beside the coverage-driven count.

    Parameters
    ----------
    population_by_district : Series
        Population indexed by district name.
    mobile_broadband_per_100 : float
        Scenario ``subscribers.mobile_broadband_per_100``.
    settings : CapacitySettings
        Scenario ``capacity`` section.
    existing_by_district, coverage_sites_by_district : Series, optional
        Sites already there, and the coverage-driven site count (existing + new).

    Returns
    -------
    DataFrame
        Index district; ``population``, ``mbb_subscribers``, ``traffic_mbps_<tech>``,
        ``traffic_mbps``, ``capacity_sites_<tech>``, ``capacity_sites`` and, when given,
        ``existing_sites``, ``coverage_sites``, ``sites_needed``
        (``max(coverage_sites, capacity_sites)``) and ``capacity_shortfall``
        (``max(0, capacity_sites - max(existing, coverage))``).
    """
    pop = pd.to_numeric(population_by_district, errors="coerce").astype(float)
    if pop.isna().any() or (pop < 0).any():
        raise ParameterError(msgid=N_("population_by_district: values must be numbers >= 0"))
    out = pd.DataFrame({"population": pop})
    out["mbb_subscribers"] = pop * mobile_broadband_per_100 / 100.0
    traffic = cell_traffic_mbps(pop, mobile_broadband_per_100, settings)
    out = out.join(traffic)
    need = np.zeros(len(out), dtype=np.int64)
    for t in settings.technologies:
        n = np.ceil(out[f"traffic_mbps_{t.name}"] / site_capacity_mbps(t, settings) - 1e-9)
        out[f"capacity_sites_{t.name}"] = n.astype(np.int64)
        need = np.maximum(need, out[f"capacity_sites_{t.name}"].to_numpy())
    out["capacity_sites"] = need
    have = np.zeros(len(out), dtype=np.int64)
    if existing_by_district is not None:
        out["existing_sites"] = existing_by_district.reindex(out.index).fillna(0).astype(np.int64)
        have = np.maximum(have, out["existing_sites"].to_numpy())
    if coverage_sites_by_district is not None:
        cov = coverage_sites_by_district.reindex(out.index).fillna(0).astype(np.int64)
        out["coverage_sites"] = cov
        out["sites_needed"] = np.maximum(cov.to_numpy(), need)
        have = np.maximum(have, cov.to_numpy())
    if existing_by_district is not None or coverage_sites_by_district is not None:
        out["capacity_shortfall"] = np.maximum(0, need - have).astype(np.int64)
    out.index.name = population_by_district.index.name or "district"
    return out


def summary_keys(table: pd.DataFrame, settings: CapacitySettings) -> dict[str, Any]:
    """``summary.json`` block ``capacity``: assumptions, per-technology figures and totals.

    Parameters
    ----------
    table : DataFrame
        :func:`capacity_sites_needed` per district.
    settings : CapacitySettings
        The assumptions.

    Returns
    -------
    dict
        The ``capacity`` block.
    """
    techs = {
        t.name: {
            "subscriber_share": t.subscriber_share,
            "monthly_gb_per_subscriber": t.monthly_gb_per_subscriber,
            "busy_hour_kbps_per_subscriber": round(busy_hour_kbps(t, settings), 2),
            "site_capacity_mbps": round(site_capacity_mbps(t, settings), 1),
            "traffic_mbps": round(float(table[f"traffic_mbps_{t.name}"].sum()), 1),
            "capacity_sites": int(table[f"capacity_sites_{t.name}"].sum()),
        }
        for t in settings.technologies
    }
    out: dict[str, Any] = {
        "mbb_subscribers": round(float(table["mbb_subscribers"].sum()), 0),
        "busy_hour_traffic_mbps": round(float(table["traffic_mbps"].sum()), 1),
        "technologies": techs,
        "capacity_sites_needed": int(table["capacity_sites"].sum()),
    }
    for key in ("coverage_sites", "sites_needed", "capacity_shortfall"):
        if key in table.columns:
            out[key] = int(table[key].sum())
    return out
