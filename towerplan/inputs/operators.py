"""Operator names in the data matched to the scenario's operators.

Names are matched without regard to case, diacritics, spaces and punctuation
(:func:`towerplan.scenario.operator_key`), and through each operator's
``aliases``.  A host or tenant name that still matches no operator is an error
naming the value, the rows and the fix, unless the scenario says
``data.unknown_operators: ignore``: then the name is dropped from the tenant
lists (a site left with no known operator is dropped) and counted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import geopandas as gpd
import numpy as np

from towerplan.errors import (
    N_,
    ScenarioError,
    warn_user,
)
from towerplan.inputs._common import _rows_text
from towerplan.scenario import Operator, operator_key

logger = logging.getLogger(__name__)

__all__ = ["match_operators"]


def _lookup(operators: Sequence[Operator]) -> dict[str, str]:
    out: dict[str, str] = {}
    for o in operators:
        for spelling in (o.name, *o.aliases):
            out[operator_key(spelling)] = o.name
    return out


def match_operators(
    sites: gpd.GeoDataFrame,
    operators: Sequence[Operator],
    name: str,
    *,
    policy: Literal["error", "ignore"] = "error",
    sep: str = ";",
) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """Sites with ``operator`` / ``operators`` spelled as in the scenario.

    Parameters
    ----------
    sites : GeoDataFrame
        ``site_id``, ``operator`` (host), ``operators`` (``sep``-separated
        tenants, host first), ``n_tenants``.
    operators : sequence of Operator
        The scenario's operators (names and aliases).
    name : str
        The input, for messages.
    policy : {'error', 'ignore'}
        Unknown names: raise :class:`ScenarioError`, or drop and count them.
    sep : str
        Tenant-list separator.

    Returns
    -------
    (GeoDataFrame, dict)
        New sites (index kept) and a report: ``unknown_names`` (name -> rows),
        ``tenancies_ignored``, ``sites_dropped``.
    """
    table = _lookup(operators)
    unknown: dict[str, list[Any]] = {}
    lists: list[list[str]] = []
    removed: list[int] = []
    for sid, host, ops in zip(sites["site_id"], sites["operator"], sites["operators"], strict=True):
        raw = [str(host).strip()] + [t.strip() for t in str(ops).split(sep) if t.strip()]
        known: list[str] = []
        n_bad = 0
        for t in dict.fromkeys(raw):
            canon = table.get(operator_key(t))
            if canon is None:
                unknown.setdefault(t, []).append(sid)
                n_bad += 1
            elif canon not in known:
                known.append(canon)
        lists.append(known)
        removed.append(n_bad)
    report: dict[str, Any] = {
        "unknown_names": {k: len(v) for k, v in unknown.items()},
        "tenancies_ignored": int(sum(removed)),
        "sites_dropped": 0,
    }
    if unknown and policy == "error":
        first = next(iter(unknown))
        names = ", ".join(f"'{k}' (sites {_rows_text(v, 3)})" for k, v in list(unknown.items())[:4])
        raise ScenarioError(
            msgid=N_(
                "{name}: operator name(s) {names} match no scenario operator {operators}; "
                "add them as aliases in the scenario, e.g. operators: - {{name: {example}, "
                "aliases: ['{first}']}}, or set data.unknown_operators: ignore to leave them "
                "out (counted in summary.json)"
            ),
            name=name,
            names=names,
            operators=[o.name for o in operators],
            example=operators[0].name,
            first=first,
        )
    out = sites.copy()
    keep = np.array([bool(k) for k in lists])
    out["operator"] = [k[0] if k else "" for k in lists]
    out["operators"] = [sep.join(k) for k in lists]
    n_ten = out["n_tenants"].to_numpy(dtype="int64") - np.asarray(removed, dtype="int64")
    out["n_tenants"] = np.maximum(n_ten, [max(len(k), 1) for k in lists]).astype("int64")
    if unknown:
        report["sites_dropped"] = int((~keep).sum())
        warn_user(
            logger,
            N_(
                "{name}: operator names {names} match no scenario operator; {tenancies} "
                "tenancies and {sites} sites left out (data.unknown_operators: ignore)"
            ),
            log_only=True,
            name=name,
            names=sorted(unknown),
            tenancies=report["tenancies_ignored"],
            sites=report["sites_dropped"],
        )
    return out[keep], report
