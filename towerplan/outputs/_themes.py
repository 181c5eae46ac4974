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

    ``share_<year>`` columns (towerplan.infrastructure.undergrounding): the first year is the
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


def gaps_all_operators(gaps: gpd.GeoDataFrame, stage: str = "after") -> gpd.GeoDataFrame:
    """Area no operator covers at ``stage``: intersection of the per-operator gap polygons.

    Returns a one-row frame (``stage``, ``area_km2``, ``operators``) in the
    layer's CRS, or an empty frame when there is no such gap.
    """
    import shapely

    g = gaps
    if "stage" in g.columns:
        g = g[g["stage"].astype(str) == stage]
    g = g[~(g.geometry.isna() | g.geometry.is_empty)]
    empty = gpd.GeoDataFrame(
        {"stage": [], "area_km2": [], "operators": []}, geometry=[], crs=gaps.crs
    )
    if len(g) == 0:
        return empty
    ops = sorted(g["operator"].astype(str).unique()) if "operator" in g.columns else []
    geom = flatten_collection(shapely.intersection_all(shapely.make_valid(g.geometry.to_numpy())))
    if geom is None or geom.is_empty:
        return empty
    metric = gpd.GeoSeries([geom], crs=gaps.crs)
    if gaps.crs is not None and not gaps.crs.is_projected:
        metric = metric.to_crs(metric.estimate_utm_crs())
    return gpd.GeoDataFrame(
        {
            "stage": [stage],
            "area_km2": [round(float(metric.area.iloc[0]) / 1e6, 3)],
            "operators": [";".join(ops)],
        },
        geometry=[geom],
        crs=gaps.crs,
    )


def flatten_collection(geom: Any) -> Any:
    """A GeometryCollection as its highest-dimension parts (Multi*); others unchanged.

    Overlays return collections of polygons, slivers of lines and points;
    Leaflet would draw each part as its own layer.
    """
    import shapely
    from shapely.geometry import MultiLineString, MultiPoint, MultiPolygon

    if geom is None or geom.geom_type != "GeometryCollection":
        return geom
    parts = [q for p in shapely.get_parts(geom) for q in shapely.get_parts(p)]
    polys = [q for q in parts if q.geom_type == "Polygon" and not q.is_empty]
    if polys:
        return MultiPolygon(polys)
    lines = [q for q in parts if q.geom_type in ("LineString", "LinearRing") and not q.is_empty]
    if lines:
        return MultiLineString(lines)
    pts = [q for q in parts if q.geom_type == "Point" and not q.is_empty]
    return MultiPoint(pts) if pts else shapely.geometry.Polygon()
