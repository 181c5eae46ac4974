"""Theme logic shared by the HTML maps and the static sheets (private)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import pandas as pd

OPERATOR_PALETTE = ("#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2")
CATEGORY_PALETTE = ("#e6550d", "#de2d26", "#3182bd", "#756bb1", "#31a354", "#636363", "#fd8d3c")
SHARE_BREAKS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)

_SHARE_YEAR = re.compile(r"^share_(\d{4})$")


def palette(values: Iterable[Any], colors: Sequence[str]) -> dict[str, str]:
    """Stable colour per distinct value (sorted names)."""
    names = sorted({str(v) for v in values if v is not None and str(v) != "nan"})
    return {n: colors[i % len(colors)] for i, n in enumerate(names)}


def operator_colors(p: Mapping[str, gpd.GeoDataFrame]) -> dict[str, str]:
    """One colour per operator over all layers that name operators."""
    vals: list[Any] = []
    for name, col in (
        ("existing_sites", "operator"),
        ("coverage_gaps", "operator"),
        ("sharing_candidates", "host_operator"),
        ("sharing_candidates", "operator"),
    ):
        if name in p and col in p[name].columns:
            vals += p[name][col].tolist()
    return palette(vals, OPERATOR_PALETTE)


def lead_operator(summary: Mapping[str, Any], ops: Sequence[str]) -> str:
    """Operator shown first: largest market share in ``summary['operators']``, else first."""
    shares = summary.get("operators")
    if isinstance(shares, Mapping):
        known = [
            (float(v), str(k))
            for k, v in shares.items()
            if str(k) in ops and isinstance(v, int | float) and not isinstance(v, bool)
        ]
        if known:
            return max(known)[1]
    return ops[0] if ops else ""


@dataclass(frozen=True)
class UndergroundColumns:
    """Which ``underground_plan`` columns a map shows."""

    current: str | None
    plan: str
    label_current: str
    label_plan: str
    is_share: bool


def underground_columns(
    u: gpd.GeoDataFrame, summary: Mapping[str, Any]
) -> UndergroundColumns | None:
    """Current and planned underground share columns of an ``underground_plan`` layer.

    ``share_<year>`` columns (towerplan.undergrounding): the first year is the
    current share, the plan column is the scenario year (``summary['year']``)
    when present, else the last milestone.  Otherwise the first numeric column
    with ``share`` in its name (and one with ``target``) is used.
    """
    years = sorted(
        int(m.group(1)) for c in u.columns if (m := _SHARE_YEAR.match(str(c))) is not None
    )
    if years:
        cur = years[0]
        later = years[1:]
        year = summary.get("year")
        plan = year if isinstance(year, int) and year in later else (later[-1] if later else cur)
        return UndergroundColumns(
            current=f"share_{cur}" if plan != cur else None,
            plan=f"share_{plan}",
            label_current=f"underground share {cur} (now)",
            label_plan=f"underground share {plan} (plan)",
            is_share=True,
        )
    numeric = [c for c in u.columns if c != u.geometry.name and pd.api.types.is_numeric_dtype(u[c])]
    value = next((c for c in numeric if "share" in str(c).lower()), None)
    target = next((c for c in numeric if "target" in str(c).lower() and c != value), None)
    if value is None:
        return None
    if target is None:
        return UndergroundColumns(None, value, value, value, _within_01(u[value]))
    return UndergroundColumns(value, target, value, target, _within_01(u[value]))


def _within_01(s: pd.Series) -> bool:
    v = pd.to_numeric(s, errors="coerce").dropna()
    return bool(len(v)) and bool(((v >= 0) & (v <= 1)).all())


def underground_polygons(
    u: gpd.GeoDataFrame, districts: gpd.GeoDataFrame | None
) -> gpd.GeoDataFrame | None:
    """The plan as district polygons (joined on ``district`` when it has none)."""
    if set(u.geom_type) & {"Polygon", "MultiPolygon"}:
        return u
    if districts is None or "district" not in u.columns or "district" not in districts.columns:
        return None
    d = districts[["district", districts.geometry.name]]
    return d.merge(pd.DataFrame(u.drop(columns=u.geometry.name)), on="district", how="inner")
