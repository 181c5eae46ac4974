"""The one theme registry that the HTML maps and the static sheets both read (private).

A theme is a :class:`Theme`: a title (an English msgid translated through
:mod:`towerplan._i18n`) and an ordered list of :class:`LayerSpec` entries, each
naming a prepared layer, a drawing *kind* and its symbols.  ``maps`` and
``sheets`` each have one renderer per kind (``base``, ``points``, ``lines``,
``polygons``, ``gaps``, ``choropleth``, ``raster``); neither has a list of
themes of its own.  Adding a theme is one entry in :data:`THEMES` (plus its
strings in the catalogues); a theme over a new layer adds that layer to
:func:`derive` when it is computed from others.

Symbology is shared too: site types differ by shape *and* colour (Okabe-Ito
colour-blind-safe palette), operators get Okabe-Ito colours, and roads are
drawn in greys so that no road colour can be mistaken for an operator or a
site type.  Stored column values stay stable codes (``dedicated``,
``urban``...); :func:`value_label` and :func:`column_label` give their
display text.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from towerplan._i18n import N_, _, fmt_number, fmt_percent

# Okabe & Ito (2008) colour-blind-safe palette; none is a road colour (roads are grey).
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
OPERATOR_PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
CATEGORY_PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
SEQUENTIAL = ("#ffffcc", "#a1dab4", "#41b6c4", "#2c7fb8", "#253494")
NO_DATA = "#cccccc"
SHARE_BREAKS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
COVERAGE_BREAKS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0)

DEMO_STAMP_MSG = N_("DEMO DATA: SYNTHETIC SITES")
"""msgid of ``towerplan.inputs._base.DEMO_STAMP`` (the stamp on every output of the demo)."""

CLUSTER_THRESHOLD = 20_000
"""Point layers above this many features are clustered (with a legend entry saying so)."""

SIGNAL_LEVELS = (-105.0, -95.0, -85.0, -75.0)
"""Received-level class edges in dBm (best server); five classes below/between/above."""
SIGNAL_COLORS = ("#d7191c", "#fdae61", "#ffffbf", "#a6d96a", "#1a9641")


@dataclass(frozen=True)
class Symbol:
    """A point symbol: the same shape and colours on maps (px) and sheets (pt)."""

    label: str
    fill: str
    edge: str = "#222222"
    shape: str = "circle"  # circle | square | diamond | triangle
    size: float = 4.0
    z: int = 10


SITE_SYMBOLS = {
    "existing": Symbol(N_("Existing BTS sites"), "#8c8c8c", "#333333", "circle", 2.5, 8),
    "dedicated": Symbol(N_("New dedicated sites"), "#0072B2", "#00304d", "square", 3.5, 12),
    "shared": Symbol(N_("New shared sites"), "#D55E00", "#5c2000", "diamond", 4.0, 13),
    "host": Symbol(N_("Co-location host structures"), "#CC79A7", "#4d1f3c", "triangle", 4.5, 11),
    "wifi": Symbol(N_("Public Wi-Fi hotspots"), "#009E73", "#00402f", "triangle", 4.0, 11),
    "poi": Symbol(N_("Points of interest"), "#bdbdbd", "#555555", "circle", 2.5, 7),
    "switch": Symbol(N_("Switching points"), "#000000", "#F0E442", "square", 5.5, 14),
}
"""Symbols by site type (``proposed_sites.site_type`` codes and layer roles)."""

ROAD_STYLES = {
    "national": ("#4d4d4d", 2.6),
    "trunk": ("#4d4d4d", 2.6),
    "motorway": ("#4d4d4d", 3.0),
    "primary": ("#7a7a7a", 1.8),
    "provincial": ("#7a7a7a", 1.8),
    "secondary": ("#7a7a7a", 1.5),
}
"""Road colour and width (px) by ``road_class``: greys only; other classes light grey."""
ROAD_OTHER = ("#b5b5b5", 0.8)

COLUMN_LABELS = {
    "site_id": N_("Site ID"),
    "operator": N_("Operator"),
    "operators": N_("Operators"),
    "n_tenants": N_("Tenants"),
    "max_tenants": N_("Max. tenants"),
    "height_m": N_("Height (m)"),
    "district": N_("District"),
    "district_type": N_("District type"),
    "code": N_("Code"),
    "population": N_("Population"),
    "area_km2": N_("Area (km²)"),
    "site_type": N_("Site type"),
    "population_gain": N_("Population newly covered"),
    "cand_id": N_("Candidate ID"),
    "stage": N_("Stage"),
    "name": N_("Name"),
    "category": N_("Category"),
    "source": N_("Source"),
    "hotspot_id": N_("Hotspot ID"),
    "covers_n": N_("POIs covered"),
    "covers_pois": N_("POIs covered (names)"),
    "radius_m": N_("Radius (m)"),
    "host_site_id": N_("Host site ID"),
    "host_operator": N_("Host operator"),
    "distance_m": N_("Distance (m)"),
    "tenants_now": N_("Tenants now"),
    "tenants_max": N_("Max. tenants"),
    "estimated_saving_vnd": N_("Estimated saving (VND)"),
    "rank": N_("Rank"),
    "target_site_id": N_("Backhaul target site"),
    "method": N_("Route method"),
    "length_m": N_("Length (m)"),
    "road_class": N_("Road class"),
    "existing": N_("Existing sites"),
    "new_dedicated": N_("New dedicated"),
    "new_shared": N_("New shared"),
    "total": N_("Total sites"),
    "mean_serving_radius_km": N_("Mean serving radius (km)"),
    "coverage_any_before": N_("Coverage, any operator, before"),
    "coverage_any_after": N_("Coverage, any operator, after"),
    "coverage_weighted_before": N_("Coverage, market-weighted, before"),
    "coverage_weighted_after": N_("Coverage, market-weighted, after"),
    "operators_covering": N_("Operators"),
    "lon": N_("Longitude (WGS 84)"),
    "lat": N_("Latitude (WGS 84)"),
    "vn2000_x": N_("VN-2000 X (northing, m)"),
    "vn2000_y": N_("VN-2000 Y (easting, m)"),
    "data_kind": N_("Data"),
    "sharing_rate_before": N_("Sharing rate before the plan"),
    "sharing_rate_after": N_("Sharing rate after the plan"),
    "underground_plan_consistent": N_("District undergrounding targets add up to the city's"),
    "backhaul_fibre_km": N_("New backhaul fibre (km)"),
    "wifi_hotspots": N_("Public Wi-Fi hotspots"),
    "build_year": N_("Build year"),
    "switch_id": N_("Switching point"),
    "status": N_("Status"),
    "year": N_("Year"),
    "demand_lines": N_("Lines served"),
    "mean_distance_km": N_("Mean distance (km)"),
    "in_development_zone": N_("In a development zone"),
}
"""Display label (msgid) of a column; others are shown as their name."""

VALUE_LABELS = {
    "urban": N_("urban (quận)"),
    "rural": N_("rural (huyện)"),
    "dedicated": N_("new dedicated site"),
    "shared": N_("new shared site"),
    "before": N_("before the plan"),
    "after": N_("after the plan"),
    "tourism": N_("tourism"),
    "hospital": N_("hospital"),
    "school": N_("school"),
    "admin_centre": N_("administrative centre"),
    "city_centre": N_("city centre"),
    "grid": N_("grid candidate"),
    "colocation": N_("co-location candidate"),
    "user": N_("user candidate"),
    "road": N_("along roads"),
    "straight_line": N_("straight line (fallback)"),
    "national": N_("national road"),
    "provincial": N_("provincial road"),
    "local": N_("local road"),
    "True": N_("yes"),
    "False": N_("no"),
}
"""Display label (msgid) of a stored code value."""

SHARE_COLUMN = re.compile(r"^(coverage_|share_|sharing_rate)")


def column_label(col: str) -> str:
    """Display label of a column in the current language."""
    msg = COLUMN_LABELS.get(str(col))
    return _(msg) if msg else str(col)


def value_label(value: Any) -> str:
    """Display label of a stored code value in the current language (others unchanged)."""
    msg = VALUE_LABELS.get(str(value))
    return _(msg) if msg else str(value)


def choropleth_label(col: str, gdf: gpd.GeoDataFrame) -> str:
    """Title of a choropleth column (the underground shares name their years)."""
    years = gdf.attrs.get("years")
    if col == "share_now" and years:
        return _("Underground share {year} (now)").format(year=years[0])
    if col == "share_plan" and years:
        return _("Underground share {year} (plan)").format(year=years[1])
    return column_label(col)


def class_text(lo: float, hi: float, share: bool) -> str:
    """Legend text of a choropleth class ``lo`` – ``hi`` (percentages when ``share``)."""
    if share:
        return f"{fmt_percent(lo, 0)} – {fmt_percent(hi, 0)}"
    d = 0 if max(abs(lo), abs(hi)) >= 100 else 2
    return f"{fmt_number(lo, d)} – {fmt_number(hi, d)}"


def is_share_column(col: str) -> bool:
    """Whether a column holds a 0-1 share shown as a percentage."""
    return bool(SHARE_COLUMN.match(str(col)))


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class LayerSpec:
    """One drawn layer of a theme.

    ``kind`` selects the renderer in ``maps`` and ``sheets``.  ``symbol`` is a
    :data:`SITE_SYMBOLS` key (points), ``by`` a category column drawn as one
    sub-layer per value (colours from ``palette``: ``operator`` or
    ``category``; symbols from :data:`SITE_SYMBOLS` when the value is a key),
    ``columns`` the value columns of a choropleth (which share class breaks).
    """

    layer: str
    kind: str
    label: str = ""
    symbol: str | None = None
    by: str | None = None
    palette: str | None = None
    popup: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    show: bool = True
    fill: bool = True
    on_sheets: bool = True


@dataclass(frozen=True)
class Theme:
    """A map / sheet theme: title and layers, drawn in order (first at the bottom)."""

    key: str
    title: str
    layers: tuple[LayerSpec, ...]
    needs: str | None = None
    inset: bool = False
    small_multiples: str | None = None
    maps: bool = True
    sheets: bool = True


_SITE_POPUP = ("site_id", "operator", "operators", "n_tenants", "max_tenants", "height_m")
_NEW_POPUP = ("site_id", "site_type", "operators", "district", "population_gain")
_BASE = LayerSpec("districts", "base")
_EXISTING = LayerSpec(
    "existing_sites", "points", N_("Existing BTS sites"), "existing", popup=_SITE_POPUP
)
_PROPOSED = LayerSpec("proposed_sites", "points", "", by="site_type", popup=_NEW_POPUP)

THEMES: dict[str, Theme] = {
    t.key: t
    for t in (
        Theme(
            "overview",
            N_("Overview of the mobile BTS site plan"),
            (
                _BASE,
                LayerSpec(
                    "coverage_gaps_all",
                    "polygons",
                    N_("Not covered by any operator after the plan"),
                    popup=("area_km2", "operators"),
                ),
                LayerSpec(
                    "backhaul_routes",
                    "lines",
                    N_("Fibre backhaul routes"),
                    by="method",
                    popup=("site_id", "target_site_id", "method", "length_m"),
                    show=False,
                ),
                _EXISTING,
                _PROPOSED,
                LayerSpec(
                    "wifi_hotspots",
                    "points",
                    N_("Public Wi-Fi hotspots"),
                    "wifi",
                    popup=("hotspot_id", "name", "category", "district"),
                    show=False,
                ),
            ),
            inset=True,
        ),
        Theme(
            "coverage_gaps",
            N_("Coverage gaps before and after the plan, by operator"),
            (
                _BASE,
                LayerSpec(
                    "coverage_gaps",
                    "gaps",
                    by="operator",
                    palette="operator",
                    popup=("operator", "stage", "population", "area_km2"),
                ),
                LayerSpec(
                    "existing_sites",
                    "points",
                    N_("Existing BTS sites"),
                    "existing",
                    popup=_SITE_POPUP,
                    show=False,
                    on_sheets=False,
                ),
            ),
            needs="coverage_gaps",
            small_multiples="operator",
        ),
        Theme(
            "proposed_sites",
            N_("New BTS sites: dedicated and shared"),
            (_BASE, _EXISTING, _PROPOSED),
            needs="proposed_sites",
            inset=True,
        ),
        Theme(
            "sharing_candidates",
            N_("Infrastructure sharing: new site to host structure"),
            (
                _BASE,
                _EXISTING,
                LayerSpec(
                    "sharing_lines",
                    "lines",
                    "",
                    by="host_operator",
                    palette="operator",
                    popup=(
                        "site_id",
                        "host_site_id",
                        "host_operator",
                        "distance_m",
                        "tenants_now",
                        "tenants_max",
                        "estimated_saving_vnd",
                    ),
                ),
                LayerSpec(
                    "host_structures",
                    "points",
                    N_("Co-location host structures"),
                    "host",
                    popup=_SITE_POPUP,
                ),
                _PROPOSED,
            ),
            needs="sharing_candidates",
            inset=True,
        ),
        Theme(
            "wifi_hotspots",
            N_("Public Wi-Fi hotspots by category"),
            (
                _BASE,
                LayerSpec(
                    "pois", "points", N_("Points of interest"), "poi", popup=("name", "category")
                ),
                LayerSpec(
                    "wifi_coverage",
                    "polygons",
                    N_("Hotspot coverage"),
                    by="category",
                    palette="category",
                    popup=("name", "category", "radius_m"),
                ),
                LayerSpec(
                    "wifi_hotspots",
                    "points",
                    N_("Public Wi-Fi hotspots"),
                    "wifi",
                    by="category",
                    palette="category",
                    popup=("hotspot_id", "name", "category", "district", "covers_n"),
                ),
            ),
            needs="wifi_hotspots",
        ),
        Theme(
            "undergrounding",
            N_("Undergrounding of the outside cable plant by district"),
            (
                LayerSpec(
                    "underground",
                    "choropleth",
                    N_("Underground share"),
                    columns=("share_now", "share_plan"),
                    popup=("district", "district_type", "share_now", "share_plan"),
                ),
                LayerSpec("districts", "base", fill=False),
            ),
            needs="underground",
        ),
        Theme(
            "phasing",
            N_("Phased build-out: new sites by build year"),
            (
                _BASE,
                _EXISTING,
                LayerSpec(
                    "proposed_sites",
                    "points",
                    "",
                    by="build_year",
                    palette="category",
                    popup=(*_NEW_POPUP, "build_year"),
                ),
            ),
            needs="proposed_sites",
            small_multiples="build_year",
        ),
        Theme(
            "switching",
            N_("Switching points and the fibre of new BTS to them"),
            (
                _BASE,
                LayerSpec(
                    "switching_backhaul",
                    "lines",
                    N_("Fibre from new BTS to switching points"),
                    by="method",
                    popup=("site_id", "switch_id", "method", "length_m"),
                    show=False,
                ),
                _PROPOSED,
                LayerSpec(
                    "switching_points",
                    "points",
                    N_("Switching points"),
                    "switch",
                    popup=(
                        "switch_id",
                        "status",
                        "year",
                        "district",
                        "demand_lines",
                        "mean_distance_km",
                        "in_development_zone",
                    ),
                ),
            ),
            needs="switching_points",
        ),
        Theme(
            "signal_level",
            N_("Received signal level of the best server"),
            (
                LayerSpec("best_server", "raster", N_("Received level of the best server (dBm)")),
                LayerSpec("districts", "base", fill=False),
                _EXISTING,
                _PROPOSED,
            ),
            needs="best_server",
        ),
    )
}
"""Every theme of the maps and sheets, in output order."""


def kpi_theme(column: str, pair: Sequence[str] = ()) -> Theme:
    """A district choropleth of one KPI column (``pair``: columns sharing its class breaks)."""
    cols = tuple(dict.fromkeys([column, *pair]))
    return Theme(
        f"kpi_{column}",
        N_("District indicator"),
        (
            LayerSpec(
                "kpi_districts",
                "choropleth",
                COLUMN_LABELS.get(column, column),
                columns=cols,
                popup=("district", column),
            ),
            LayerSpec("districts", "base", fill=False),
        ),
        sheets=False,
    )


def theme_title(theme: Theme) -> str:
    """Title of a theme in the current language (KPI themes name their column)."""
    if theme.key.startswith("kpi_"):
        return f"{_(theme.title)}: {column_label(theme.key[4:])}"
    return _(theme.title)


def kpi_pairs(columns: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Column -> its before/after partners (``x_before`` and ``x_after`` share breaks)."""
    cols = [str(c) for c in columns]
    out: dict[str, tuple[str, ...]] = {}
    for c in cols:
        for a, b in (("_before", "_after"), ("_after", "_before")):
            if c.endswith(a) and c[: -len(a)] + b in cols:
                out[c] = (c[: -len(a)] + b,)
    return out


def class_breaks(values: Sequence[pd.Series], *, share: bool, k: int = 5) -> np.ndarray:
    """Class breaks shared by ``values`` (fixed for shares, else quantiles of all of them)."""
    if share:
        allv = np.concatenate([pd.to_numeric(v, errors="coerce").to_numpy(float) for v in values])
        ok = allv[np.isfinite(allv)]
        if len(ok) and ok.min() >= 0.5:
            return np.asarray(COVERAGE_BREAKS)
        return np.asarray(SHARE_BREAKS)
    allv = np.concatenate([pd.to_numeric(v, errors="coerce").to_numpy(float) for v in values])
    ok = allv[np.isfinite(allv)]
    if not len(ok):
        return np.array([0.0, 1.0])
    b = np.unique(np.quantile(ok, np.linspace(0, 1, k + 1)))
    return b if len(b) > 1 else np.array([b[0], b[0] + 1.0])


def class_colors(n: int) -> list[str]:
    """``n`` sequential colours."""
    return [SEQUENTIAL[round(i * (len(SEQUENTIAL) - 1) / max(n - 1, 1))] for i in range(n)]


def classify(values: pd.Series, breaks: np.ndarray) -> np.ndarray:
    """Class index per value (-1: no data)."""
    v = pd.to_numeric(values, errors="coerce").to_numpy(float)
    cls = np.clip(np.searchsorted(breaks, v, side="right") - 1, 0, len(breaks) - 2)
    return np.where(np.isfinite(v), cls, -1)


def signal_class_labels() -> list[str]:
    """Legend labels of the received-level classes, weakest first."""
    e = SIGNAL_LEVELS
    out = [f"< {e[0]:.0f} dBm"]
    out += [f"{lo:.0f} … {hi:.0f} dBm" for lo, hi in itertools.pairwise(e)]
    return [*out, f"≥ {e[-1]:.0f} dBm"]


# --------------------------------------------------------------------------- colours


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


def group_colors(
    spec: LayerSpec, values: pd.Series, p: Mapping[str, gpd.GeoDataFrame]
) -> dict[str, str]:
    """Colour per category value of a ``by`` layer."""
    if spec.palette == "operator":
        ops = operator_colors(p)
        extra = palette([v for v in values if str(v) not in ops], OPERATOR_PALETTE[::-1])
        return {**extra, **ops}
    if spec.palette == "category":
        return palette(values, CATEGORY_PALETTE)
    return palette(values, OKABE_ITO)


@dataclass(frozen=True)
class Group:
    """One drawn sub-layer of a :class:`LayerSpec`: a category value and its symbology."""

    key: str
    value: str | None
    frame: gpd.GeoDataFrame
    label: str
    color: str
    symbol: Symbol
    dashed: bool


_DEFAULT_COLOR = {"points": "#777777", "lines": "#333333", "polygons": "#E69F00"}


def groups(spec: LayerSpec, p: Mapping[str, Any]) -> list[Group]:
    """Sub-layers of a points / lines / polygons spec with labels (current language) and colours.

    One group per value of ``spec.by`` (sorted), or one group.  A value that is a
    :data:`SITE_SYMBOLS` key (``dedicated``, ``shared``) takes that symbol unless the spec
    colours by a palette; ``straight_line`` backhaul is dashed.
    """
    g = p.get(spec.layer)
    if not isinstance(g, gpd.GeoDataFrame) or len(g) == 0:
        return []
    base = SITE_SYMBOLS.get(spec.symbol or "", Symbol("", _DEFAULT_COLOR.get(spec.kind, "#777777")))
    by = spec.by if spec.by and spec.by in g.columns else None
    if by is None:
        return [Group(spec.layer, None, g, _(spec.label), base.fill, base, False)]
    col = g[by].astype(str)
    colors = group_colors(spec, col, p) if spec.palette else {}
    out = []
    for v in sorted(col.unique()):
        sym = SITE_SYMBOLS[v] if v in SITE_SYMBOLS and not spec.palette else base
        if spec.layer == "sharing_lines":
            label = _("Co-location on {operator} structures").format(operator=v)
        elif v in SITE_SYMBOLS and not spec.palette:
            label = _(sym.label)
        else:
            head = _(spec.label) if spec.label else column_label(by)
            label = f"{head}: {value_label(v)}"
        color = colors.get(v, sym.fill) if spec.palette else sym.fill
        out.append(
            Group(
                f"{spec.layer}:{v}",
                v,
                g[(col == v).to_numpy()],
                label,
                color,
                sym,
                v == "straight_line",
            )
        )
    return out


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


# --------------------------------------------------------------------------- derived layers

_SHARE_YEAR = re.compile(r"^share_(\d{4})$")


@dataclass(frozen=True)
class UndergroundColumns:
    """Which ``underground_plan`` columns a map shows."""

    current: str | None
    plan: str
    year_current: str
    year_plan: str
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
            year_current=str(cur),
            year_plan=str(plan),
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


def _underground(
    u0: gpd.GeoDataFrame, districts: gpd.GeoDataFrame | None, summary: Mapping[str, Any]
) -> gpd.GeoDataFrame | None:
    """``underground`` layer: district polygons with ``share_now`` / ``share_plan``."""
    u = underground_polygons(u0, districts)
    cols = underground_columns(u, summary) if u is not None else None
    if u is None or cols is None:
        return None
    keep = [c for c in ("district", "district_type") if c in u.columns]
    out = u[[*keep, u.geometry.name]].copy()
    out["share_plan"] = pd.to_numeric(u[cols.plan], errors="coerce")
    if cols.current is not None:
        out["share_now"] = pd.to_numeric(u[cols.current], errors="coerce")
    out.attrs = {"years": (cols.year_current, cols.year_plan), "share": cols.is_share}
    return out


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


def _sharing_lines(s: gpd.GeoDataFrame, proposed: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame:
    """Lines proposed site -> host; points at the host are joined to the proposed site."""
    import shapely

    lines = s[s.geom_type.isin(["LineString", "MultiLineString"])]
    pts = s[s.geom_type == "Point"]
    if len(pts) == 0 or proposed is None or "site_id" not in s.columns:
        return lines
    pos = dict(zip(proposed["site_id"].astype(str), proposed.geometry, strict=False))
    geoms = []
    for sid, g in zip(pts["site_id"].astype(str), pts.geometry, strict=True):
        a = pos.get(sid)
        geoms.append(g if a is None else shapely.LineString([a.coords[0], g.coords[0]]))
    joined = pts.set_geometry(gpd.GeoSeries(geoms, index=pts.index, crs=s.crs))
    joined = joined[joined.geom_type == "LineString"]
    return pd.concat([lines, joined]) if len(lines) else joined


def _hosts(s: gpd.GeoDataFrame, existing: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame | None:
    if existing is None or "host_site_id" not in s.columns or "site_id" not in existing.columns:
        return None
    ids = set(s["host_site_id"].astype(str))
    return existing[existing["site_id"].astype(str).isin(ids)]


def _wifi_coverage(w: gpd.GeoDataFrame, radius_m: float) -> gpd.GeoDataFrame:
    r = (
        pd.to_numeric(w["radius_m"], errors="coerce").fillna(radius_m).to_numpy()
        if "radius_m" in w.columns
        else np.full(len(w), radius_m)
    )
    out = w.copy()
    out["radius_m"] = r
    metric = w.to_crs(w.estimate_utm_crs()) if not w.crs.is_projected else w
    circles = metric.geometry.representative_point().buffer(r, quad_segs=8).to_crs(w.crs)
    return out.set_geometry(circles)


def derive(
    layers: Mapping[str, Any],
    summary: Mapping[str, Any],
    *,
    hotspot_radius_m: float = 100.0,
    kpis: pd.DataFrame | None = None,
    skip: Iterable[str] = (),
) -> dict[str, Any]:
    """Non-empty layers plus the layers themes draw that are computed from them.

    ``coverage_gaps_all``, ``sharing_lines``, ``host_structures``,
    ``wifi_coverage``, ``underground`` and ``kpi_districts`` (districts joined
    with the KPI table), but none named in ``skip``.  ``demand`` is dropped; a
    non-frame entry (the ``best_server`` raster path) is passed through.  All
    frames stay in their CRS (the caller reprojects).
    """
    p: dict[str, Any] = {}
    for n, g in layers.items():
        if n == "demand" or g is None:
            continue
        if isinstance(g, gpd.GeoDataFrame):
            g = g[~(g.geometry.isna() | g.geometry.is_empty)]
            if len(g):
                p[n] = g
        else:
            p[n] = g
    rules: list[tuple[str, Callable[[], Any]]] = [
        ("coverage_gaps_all", lambda: gaps_all_operators(p["coverage_gaps"], "after")),
        ("sharing_lines", lambda: _sharing_lines(p["sharing_candidates"], p.get("proposed_sites"))),
        ("host_structures", lambda: _hosts(p["sharing_candidates"], p.get("existing_sites"))),
        ("wifi_coverage", lambda: _wifi_coverage(p["wifi_hotspots"], hotspot_radius_m)),
        ("underground", lambda: _underground(p["underground_plan"], p.get("districts"), summary)),
    ]
    needs = {
        "coverage_gaps_all": "coverage_gaps",
        "sharing_lines": "sharing_candidates",
        "host_structures": "sharing_candidates",
        "wifi_coverage": "wifi_hotspots",
        "underground": "underground_plan",
    }
    skipped = set(skip)
    for name, rule in rules:
        if needs[name] in p and name not in skipped:
            g = rule()
            if g is not None and len(g):
                p[name] = g
    if kpis is not None and "districts" in p and "district" in kpis.columns:
        d = p["districts"][["district", p["districts"].geometry.name]]
        p["kpi_districts"] = d.merge(kpis, on="district", how="left")
    return p


@dataclass
class Legend:
    """Legend rows collected while drawing (kind, colour, label, extra)."""

    rows: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)

    def add(self, kind: str, color: str, label: str, **extra: Any) -> None:
        row = (kind, color, label, extra)
        if row not in self.rows:
            self.rows.append(row)
