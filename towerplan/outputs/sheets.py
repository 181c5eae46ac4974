"""Static map sheets (PDF and PNG, A4/A3 landscape) for appraisal documents.

One sheet per theme (``overview``, ``coverage_gaps``, ``proposed_sites``,
``sharing_candidates``, ``wifi_hotspots``, ``undergrounding``) plus KPI
table page(s).  Every sheet has a title, a legend, a scale bar
(matplotlib-scalebar, in the metric working CRS), a north arrow (grid north of
the working CRS; in UTM zone 48N it differs from true north by under 1° in Cần
Thơ), district labels, a data-source-and-date line and, when the plan ran on
the built-in demo, a visible demo stamp (``DEMO_STAMP``).

Rendering uses matplotlib's object API with the Agg/PDF backends (no pyplot
state, no display needed).  Text from data is protected from mathtext (``$``).
"""

from __future__ import annotations

import datetime as _dt
import itertools
import logging
import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib_scalebar.scalebar import ScaleBar

from towerplan import __version__
from towerplan.outputs import _themes
from towerplan.errors import CRSError, ParameterError
from towerplan.inputs._base import DEMO_KIND, DEMO_STAMP

logger = logging.getLogger(__name__)

__all__ = ["PAPER_SIZES", "THEMES", "render_kpi_pages", "render_sheet", "write_sheets"]

PAPER_SIZES = {"A4": (297.0 / 25.4, 210.0 / 25.4), "A3": (420.0 / 25.4, 297.0 / 25.4)}
"""Landscape paper sizes in inches."""

THEMES = (
    "overview",
    "coverage_gaps",
    "proposed_sites",
    "sharing_candidates",
    "wifi_hotspots",
    "undergrounding",
)
_TITLES = {
    "overview": "Overview of the mobile-site plan",
    "coverage_gaps": "Coverage gaps before and after the plan, by operator",
    "proposed_sites": "Proposed new sites: dedicated and shared",
    "sharing_candidates": "Co-location options: proposed site to host structure",
    "wifi_hotspots": "Public Wi-Fi hotspots by category",
    "undergrounding": "Cable undergrounding by district against targets",
    "kpi_table": "District KPI table",
}
_KPI_COLS_PER_PAGE = {"A4": 11, "A3": 15}
_KPI_ROWS_PER_PAGE = 28
_HALO = [patheffects.withStroke(linewidth=2.5, foreground="white")]


def _t(s: Any) -> str:
    """Text from data, safe from mathtext."""
    return str(s).replace("$", r"\$")


def _metric(layers: Mapping[str, gpd.GeoDataFrame | None]) -> dict[str, gpd.GeoDataFrame]:
    """Non-empty layers (no demand) in one metric CRS for drawing."""
    out = {
        n: g
        for n, g in layers.items()
        if n != "demand" and isinstance(g, gpd.GeoDataFrame) and len(g) > 0
    }
    crs = None
    for n, g in out.items():
        if g.crs is None:
            raise CRSError(f"{n}: the layer has no CRS; set it before drawing map sheets")
        if crs is None:
            crs = g.crs
    if crs is None:
        return out
    if not crs.is_projected:
        first = next(iter(out.values()))
        crs = first.estimate_utm_crs()
    return {n: (g if g.crs == crs else g.to_crs(crs)) for n, g in out.items()}


class _Canvas(FigureCanvasAgg):
    """Agg canvas whose ``draw_idle`` does nothing: geopandas calls it after every
    ``plot``, and on Agg that is a full redraw; the figure is drawn once when saved."""

    def draw_idle(self, *args: Any, **kwargs: Any) -> None:
        return None


class _Sheet:
    """One page: title, map axes, side panel, footer, stamp."""

    def __init__(self, theme: str, summary: Mapping[str, Any], size: str, n_maps: int = 1):
        if size not in PAPER_SIZES:
            raise ParameterError(f"sheet size '{size}' unknown; use some of {list(PAPER_SIZES)}")
        w, h = PAPER_SIZES[size]
        self.fig = Figure(figsize=(w, h))
        _Canvas(self.fig)
        self.scale = w / PAPER_SIZES["A4"][0]
        self.summary = summary
        self.theme = theme
        self.handles: list[Any] = []
        fs = 8.5 * self.scale
        self.fs = fs
        title = _TITLES.get(theme, theme)
        self.fig.text(0.02, 0.955, _t(title), fontsize=fs * 2.0, fontweight="bold", va="center")
        sub = summary.get("scenario_title") or summary.get("scenario") or ""
        if sub:
            self.fig.text(0.02, 0.915, _t(sub), fontsize=fs * 1.2, va="center", color="#333333")
        self.demo = str(summary.get("data_kind", "")) == DEMO_KIND
        if self.demo:
            self.fig.text(
                0.98,
                0.955,
                DEMO_STAMP,
                fontsize=fs * 1.6,
                fontweight="bold",
                color="white",
                ha="right",
                va="center",
                bbox={"boxstyle": "round,pad=0.35", "fc": "#c0392b", "ec": "none"},
            )
        self.map_axes: list[Axes] = []
        if n_maps:
            cols = min(n_maps, 2) if n_maps <= 4 else 3
            rows = math.ceil(n_maps / cols)
            gs = self.fig.add_gridspec(
                rows,
                cols,
                left=0.02,
                right=0.70,
                bottom=0.07 if n_maps > 1 else 0.09,
                top=0.88 if n_maps == 1 else 0.83,
                wspace=0.04,
                hspace=0.1 if rows == 1 else 0.3,
            )
            for i in range(n_maps):
                ax = self.fig.add_subplot(gs[i // cols, i % cols])
                ax.set_axis_off()
                ax.set_aspect("equal")
                self.map_axes.append(ax)
        self.panel = self.fig.add_axes((0.72, 0.09, 0.26, 0.79))
        self.panel.set_axis_off()
        self._footer()

    def _footer(self) -> None:
        s = self.summary
        kind = str(s.get("data_kind", "unknown"))
        date = str(s.get("generated", "")) or _dt.date.today().isoformat()
        src = s.get("plan_source") or s.get("source") or ""
        parts = [f"Data: {kind}"]
        if src:
            parts.append(f"plan source: {src}")
        if s.get("crs"):
            parts.append(f"map CRS: {s['crs']}")
        parts.append(f"produced with towerplan {__version__} on {date}")
        self.fig.text(
            0.02, 0.035, _t(". ".join(parts)), fontsize=self.fs * 0.85, color="#333333", va="center"
        )
        notes = [str(n) for n in (s.get("notes") or [])]
        if notes:
            line = "Notes: " + " | ".join(notes)
            self.fig.text(
                0.02,
                0.013,
                _t(textwrap.shorten(line, width=200)),
                fontsize=self.fs * 0.75,
                color="#555555",
                va="center",
            )

    def key(self, handle: Any) -> None:
        self.handles.append(handle)

    def finish(self, stats: list[str] | None = None) -> Figure:
        for ax in self.map_axes:
            self._stamp(ax)
        if self.map_axes:
            ax0 = self.map_axes[0]
            ax0.add_artist(
                ScaleBar(
                    1.0,
                    "m",
                    location="lower left",
                    box_alpha=0.8,
                    font_properties={"size": self.fs},
                    length_fraction=0.25,
                )
            )
            self._north_arrow(ax0)
        if self.handles:
            leg = self.panel.legend(
                handles=self.handles,
                loc="upper left",
                frameon=False,
                fontsize=self.fs,
                title="Legend",
                title_fontsize=self.fs * 1.15,
                alignment="left",
            )
            self.panel.add_artist(leg)
        if stats:
            self.panel.text(
                0.0,
                0.0,
                _t("\n".join(stats)),
                fontsize=self.fs,
                va="bottom",
                ha="left",
                linespacing=1.5,
                transform=self.panel.transAxes,
            )
        return self.fig

    def _stamp(self, ax: Axes) -> None:
        if not self.demo:
            return
        ax.text(
            0.5,
            0.5,
            DEMO_STAMP,
            transform=ax.transAxes,
            fontsize=self.fs * 4.0 / max(1.0, len(self.map_axes) ** 0.5),
            color="#c0392b",
            alpha=0.22,
            rotation=28,
            ha="center",
            va="center",
            fontweight="bold",
            zorder=50,
        )

    def _north_arrow(self, ax: Axes) -> None:
        ax.annotate(
            "N",
            xy=(0.95, 0.96),
            xytext=(0.95, 0.86),
            xycoords="axes fraction",
            ha="center",
            va="center",
            fontsize=self.fs * 1.4,
            fontweight="bold",
            arrowprops={
                "facecolor": "black",
                "width": 4 * self.scale,
                "headwidth": 12 * self.scale,
            },
            zorder=60,
        )


# --------------------------------------------------------------------------- drawing helpers


def _base(sh: _Sheet, ax: Axes, p: Mapping[str, gpd.GeoDataFrame], fill: str = "#f7f7f2") -> None:
    if "districts" in p:
        p["districts"].plot(ax=ax, facecolor=fill, edgecolor="#555555", linewidth=0.8, zorder=1)
        if ax is sh.map_axes[0]:
            sh.key(Patch(facecolor=fill, edgecolor="#555555", label="District boundary"))
    if "roads" in p:
        r = p["roads"]
        major = (
            r["road_class"]
            .astype(str)
            .str.lower()
            .isin(("national", "trunk", "motorway", "primary", "provincial"))
            if "road_class" in r.columns
            else pd.Series(False, index=r.index)
        )
        if (~major).any():
            r[~major].plot(ax=ax, color="#b0b0b0", linewidth=0.4, zorder=2)
        if major.any():
            r[major].plot(ax=ax, color="#d6604d", linewidth=1.0, zorder=2)
        if ax is sh.map_axes[0]:
            sh.key(Line2D([], [], color="#d6604d", lw=1.0, label="Main roads"))
    _frame(ax, p)


def _labels(sh: _Sheet, ax: Axes, p: Mapping[str, gpd.GeoDataFrame]) -> None:
    if "districts" not in p or "district" not in p["districts"].columns:
        return
    d = p["districts"]
    fs = sh.fs * (0.95 if len(sh.map_axes) == 1 else 0.7)
    for pt, name in zip(d.geometry.representative_point(), d["district"], strict=True):
        ax.text(
            pt.x,
            pt.y,
            _t(name),
            fontsize=fs,
            ha="center",
            va="center",
            color="#222222",
            path_effects=_HALO,
            zorder=40,
            clip_on=True,
        )


def _frame(ax: Axes, p: Mapping[str, gpd.GeoDataFrame]) -> None:
    for name in ("districts", "existing_sites", "proposed_sites", "coverage_gaps"):
        if name in p:
            x0, y0, x1, y1 = p[name].total_bounds
            break
    else:
        b = np.array([g.total_bounds for g in p.values()]) if p else np.array([[0, 0, 1, 1]])
        x0, y0, x1, y1 = b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()
    dx, dy = (x1 - x0) or 1000.0, (y1 - y0) or 1000.0
    ax.set_xlim(x0 - 0.04 * dx, x1 + 0.04 * dx)
    ax.set_ylim(y0 - 0.04 * dy, y1 + 0.04 * dy)


def _points(
    sh: _Sheet,
    ax: Axes,
    gdf: gpd.GeoDataFrame,
    color: str,
    label: str,
    size: float = 6.0,
    edge: str = "none",
    zorder: int = 10,
    marker: str = "o",
) -> None:
    if len(gdf) == 0:
        return
    pts = gdf.geometry.representative_point()
    s = size * sh.scale**2 / max(1.0, len(sh.map_axes) ** 0.5)
    ax.scatter(
        pts.x, pts.y, s=s, c=color, edgecolors=edge, linewidths=0.4, marker=marker, zorder=zorder
    )
    if ax is sh.map_axes[0]:
        sh.key(
            Line2D(
                [],
                [],
                marker=marker,
                ls="",
                markerfacecolor=color,
                markeredgecolor=edge if edge != "none" else color,
                markersize=6,
                label=f"{label} ({len(gdf):,})",
            )
        )


def _sites(sh: _Sheet, ax: Axes, p: Mapping[str, gpd.GeoDataFrame], existing: bool = True) -> None:
    if existing and "existing_sites" in p:
        _points(sh, ax, p["existing_sites"], "#8c8c8c", "Existing sites", size=4, zorder=8)
    if "proposed_sites" in p:
        pr = p["proposed_sites"]
        if "site_type" in pr.columns:
            t = pr["site_type"].astype(str)
            _points(
                sh, ax, pr[t == "dedicated"], "#1f78b4", "New dedicated sites", 14, "#08306b", 12
            )
            _points(
                sh, ax, pr[t == "shared"], "#e7298a", "New shared sites", 22, "#3f007d", 13, "D"
            )
            other = pr[~t.isin(["dedicated", "shared"])]
            _points(sh, ax, other, "#ffff33", "New sites (other)", 14, "#000000", 12)
        else:
            _points(sh, ax, pr, "#1f78b4", "New sites", 14, "#08306b", 12)


def _stats(summary: Mapping[str, Any]) -> list[str]:
    s = summary
    out = []

    def num(k: str) -> float | None:
        v = s.get(k)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    if num("existing_sites") is not None:
        out.append(f"Existing sites: {num('existing_sites'):,.0f}")
    if num("new_sites") is not None:
        extra = ""
        if num("new_dedicated") is not None and num("new_shared") is not None:
            extra = f" ({num('new_dedicated'):,.0f} dedicated, {num('new_shared'):,.0f} shared)"
        out.append(f"New sites: {num('new_sites'):,.0f}{extra}")
    pop = num("population")
    if pop:
        out.append(f"Population: {pop:,.0f}")
        for k, lab in (
            ("population_covered_before", "before"),
            ("population_covered_after", "after"),
        ):
            v = num(k)
            if v is not None:
                out.append(f"Covered {lab}: {v:,.0f} ({100 * v / pop:.1f} %)")
    city = s.get("underground_share_city")
    if isinstance(city, Mapping) and city:
        vals = ", ".join(
            f"{y}: {100 * float(v):.0f} %"
            for y, v in city.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        )
        if vals:
            out.append(f"Underground share, city: {vals}")
    if isinstance(s.get("underground_plan_consistent"), bool):
        ok = "yes" if s["underground_plan_consistent"] else "NO"
        out.append(f"District targets consistent with city-wide: {ok}")
    for k, lab, pct in (
        ("sharing_rate_before", "Sharing rate before", True),
        ("sharing_rate_after", "Sharing rate after", True),
        ("backhaul_fibre_km", "New backhaul fibre (km)", False),
        ("wifi_hotspots", "Wi-Fi hotspots", False),
    ):
        v = num(k)
        if v is not None:
            txt = f"{100 * v:.1f} %" if pct else (f"{v:,.0f}" if v.is_integer() else f"{v:,.1f}")
            out.append(f"{lab}: {txt}")
    return out


# --------------------------------------------------------------------------- themes


def _overview(sh: _Sheet, p: Mapping[str, gpd.GeoDataFrame]) -> None:
    ax = sh.map_axes[0]
    _base(sh, ax, p)
    if "coverage_gaps" in p:
        g = _themes.gaps_all_operators(p["coverage_gaps"], "after")
        if len(g):
            g.plot(ax=ax, facecolor="#fc8d59", edgecolor="none", alpha=0.5, zorder=3)
            sh.key(
                Patch(
                    facecolor="#fc8d59",
                    alpha=0.5,
                    label=f"Not covered by any operator after the plan ({g['area_km2'].iloc[0]:,.1f} km²)",
                )
            )
    if "backhaul_routes" in p:
        p["backhaul_routes"].plot(ax=ax, color="#00441b", linewidth=0.8, zorder=5)
        sh.key(Line2D([], [], color="#00441b", lw=0.8, label="Fibre backhaul routes"))
    _sites(sh, ax, p)
    if "wifi_hotspots" in p:
        _points(sh, ax, p["wifi_hotspots"], "#41ab5d", "Wi-Fi hotspots", 8, "#005a32", 11, "^")
    _labels(sh, ax, p)


def _coverage_gaps(sh: _Sheet, p: Mapping[str, gpd.GeoDataFrame], ops: list[str]) -> None:
    colors = _themes.operator_colors(p)
    g = p.get("coverage_gaps")
    for ax, op in zip(sh.map_axes, ops, strict=True):
        _base(sh, ax, p)
        if g is None:
            continue
        sub = g[g["operator"].astype(str) == op] if "operator" in g.columns else g
        col = colors.get(op, "#b30000")
        st = (
            sub["stage"].astype(str)
            if "stage" in sub.columns
            else pd.Series("after", index=sub.index)
        )
        before, after = sub[st == "before"], sub[st != "before"]
        if len(before):
            before.plot(
                ax=ax, facecolor=col, edgecolor=col, alpha=0.2, linewidth=0.3, zorder=3, hatch="///"
            )
        if len(after):
            after.plot(ax=ax, facecolor=col, edgecolor="black", alpha=0.75, linewidth=0.3, zorder=4)
        if "existing_sites" in p and "operator" in p["existing_sites"].columns:
            ex = p["existing_sites"]
            own = ex[ex["operator"].astype(str) == op]
            pts = own.geometry.representative_point()
            ax.scatter(pts.x, pts.y, s=1.5 * sh.scale**2, c="#333333", zorder=8)
        _labels(sh, ax, p)
        pb = before["population"].sum() if "population" in before.columns else float("nan")
        pa = after["population"].sum() if "population" in after.columns else float("nan")
        ax.set_title(
            _t(f"{op}\nuncovered people: {pb:,.0f} before, {pa:,.0f} after"),
            fontsize=sh.fs * 1.0,
            fontweight="bold",
        )
    sh.key(Patch(facecolor="#999999", alpha=0.25, hatch="///", label="Gap before the plan"))
    sh.key(Patch(facecolor="#999999", alpha=0.75, label="Gap remaining after the plan"))
    sh.key(
        Line2D(
            [],
            [],
            marker="o",
            ls="",
            color="#333333",
            markersize=3,
            label="Operator's existing sites",
        )
    )
    for op, c in colors.items():
        if op in ops:
            sh.key(Patch(facecolor=c, label=_t(f"{op}")))


def _proposed(sh: _Sheet, p: Mapping[str, gpd.GeoDataFrame]) -> None:
    ax = sh.map_axes[0]
    _base(sh, ax, p)
    _sites(sh, ax, p)
    _labels(sh, ax, p)


def _sharing(sh: _Sheet, p: Mapping[str, gpd.GeoDataFrame]) -> None:
    ax = sh.map_axes[0]
    _base(sh, ax, p)
    colors = _themes.operator_colors(p)
    if "sharing_candidates" in p:
        s = p["sharing_candidates"]
        lines = s[s.geom_type.isin(["LineString", "MultiLineString"])]
        hosts = s[s.geom_type == "Point"]
        col = "host_operator" if "host_operator" in s.columns else None
        groups = lines.groupby(lines[col].astype(str)) if col else [("co-location", lines)]
        for op, sub in groups:
            c = colors.get(str(op), "#6a3d9a")
            sub.plot(ax=ax, color=c, linewidth=1.4, zorder=9)
            sh.key(Line2D([], [], color=c, lw=1.4, label=_t(f"Co-location on {op} ({len(sub)})")))
        if len(hosts):
            _points(sh, ax, hosts, "#6a3d9a", "Host structures", 16, "black", 11, "s")
    _sites(sh, ax, p)
    _labels(sh, ax, p)


def _wifi(sh: _Sheet, p: Mapping[str, gpd.GeoDataFrame], radius_m: float) -> None:
    ax = sh.map_axes[0]
    _base(sh, ax, p)
    if "wifi_hotspots" in p:
        w = p["wifi_hotspots"]
        cat = (
            w["category"].astype(str)
            if "category" in w.columns
            else pd.Series("hotspot", index=w.index)
        )
        colors = _themes.palette(cat.tolist(), _themes.CATEGORY_PALETTE)
        r = (
            pd.to_numeric(w["radius_m"], errors="coerce").fillna(radius_m).to_numpy()
            if "radius_m" in w.columns
            else np.full(len(w), radius_m)
        )
        circles = w.geometry.representative_point().buffer(r, quad_segs=8)
        for c, col in colors.items():
            m = (cat == c).to_numpy()
            gpd.GeoSeries(circles[m], crs=w.crs).plot(ax=ax, color=col, alpha=0.25, zorder=6)
            _points(sh, ax, w[m], col, c, 10, "black", 12)
        sh.key(
            Patch(
                facecolor="#999999",
                alpha=0.25,
                label=f"Hotspot coverage (radius {radius_m:g} m default)",
            )
        )
    _labels(sh, ax, p)


def _undergrounding(sh: _Sheet, p: Mapping[str, gpd.GeoDataFrame]) -> None:
    ax = sh.map_axes[0]
    _base(sh, ax, p)
    u0 = p.get("underground_plan")
    u = _themes.underground_polygons(u0, p.get("districts")) if u0 is not None else None
    cols = _themes.underground_columns(u, sh.summary) if u is not None else None
    if u is not None and cols is not None and len(u):
        v = pd.to_numeric(u[cols.plan], errors="coerce")
        norm: mpl.colors.Normalize
        if cols.is_share:
            norm = mpl.colors.BoundaryNorm(_themes.SHARE_BREAKS, 256)
        else:
            finite = v[np.isfinite(v)]
            lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
            norm = mpl.colors.Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1.0)
        cmap = mpl.colormaps["YlGnBu"]
        colors = [cmap(norm(x)) if np.isfinite(x) else "#cccccc" for x in v]
        u.plot(ax=ax, color=colors, edgecolor="#333333", linewidth=0.6, zorder=3)
        if cols.is_share:
            b = _themes.SHARE_BREAKS
            for lo_b, hi_b in itertools.pairwise(b):
                sh.key(
                    Patch(
                        facecolor=cmap(norm((lo_b + hi_b) / 2)),
                        edgecolor="#333333",
                        label=f"{cols.label_plan}: {100 * lo_b:.0f}-{100 * hi_b:.0f} %",
                    )
                )
        cur = pd.to_numeric(u[cols.current], errors="coerce") if cols.current else None
        if cur is not None:
            below = u[(cur < v).to_numpy()]
            if len(below):
                below.plot(
                    ax=ax,
                    facecolor="none",
                    edgecolor="#b2182b",
                    linewidth=1.8,
                    hatch="xx",
                    zorder=4,
                )
            sh.key(
                Patch(
                    facecolor="none",
                    edgecolor="#b2182b",
                    hatch="xx",
                    label=f"{cols.label_current} below plan",
                )
            )
        pct = cols.is_share
        for geom, now, plan in zip(
            u.geometry.representative_point(),
            cur if cur is not None else [np.nan] * len(u),
            v,
            strict=True,
        ):
            if not np.isfinite(plan):
                continue
            txt = f"{100 * plan:.0f} %" if pct else f"{plan:.3g}"
            if np.isfinite(now):
                txt = (f"{100 * now:.0f} -> " if pct else f"{now:.3g} -> ") + txt
            ax.annotate(
                txt,
                (geom.x, geom.y),
                xytext=(0, -1.2 * sh.fs),
                textcoords="offset points",
                fontsize=sh.fs * 0.8,
                ha="center",
                va="top",
                path_effects=_HALO,
                zorder=41,
            )
    _labels(sh, ax, p)


# --------------------------------------------------------------------------- public API


def render_sheet(
    theme: str,
    layers: Mapping[str, gpd.GeoDataFrame | None],
    summary: Mapping[str, Any],
    size: str = "A4",
    hotspot_radius_m: float = 100.0,
) -> Figure:
    """Render one theme sheet to a matplotlib Figure (not saved).

    Parameters
    ----------
    theme : str
        One of :data:`THEMES`.
    layers : dict of str -> GeoDataFrame
        Plan layers (metric working CRS); missing/empty ones are skipped.
    summary : dict
        Plan summary (``data_kind``, ``scenario``/``scenario_title``, ``notes``...).
    size : str
        ``"A4"`` or ``"A3"`` (landscape).
    hotspot_radius_m : float
        Wi-Fi coverage radius when ``wifi_hotspots`` has no ``radius_m``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if theme not in THEMES:
        raise ParameterError(f"unknown sheet theme '{theme}'; use one of {list(THEMES)}")
    p = _metric(layers)
    if theme == "coverage_gaps":
        g = p.get("coverage_gaps")
        ops = (
            sorted(g["operator"].astype(str).unique())
            if g is not None and "operator" in g.columns
            else ["all operators"]
        )
        sh = _Sheet(theme, summary, size, n_maps=max(1, len(ops)))
        _coverage_gaps(sh, p, ops)
    else:
        sh = _Sheet(theme, summary, size)
        if theme == "overview":
            _overview(sh, p)
        elif theme == "proposed_sites":
            _proposed(sh, p)
        elif theme == "sharing_candidates":
            _sharing(sh, p)
        elif theme == "wifi_hotspots":
            _wifi(sh, p, hotspot_radius_m)
        else:
            _undergrounding(sh, p)
    missing = {
        "coverage_gaps": "coverage_gaps",
        "sharing_candidates": "sharing_candidates",
        "wifi_hotspots": "wifi_hotspots",
        "undergrounding": "underground_plan",
        "proposed_sites": "proposed_sites",
    }.get(theme)
    stats = _stats(summary)
    if missing and missing not in p:
        stats = [f"No '{missing}' layer in this plan.", *stats]
    return sh.finish(stats)


def render_kpi_pages(
    kpis: pd.DataFrame, summary: Mapping[str, Any], size: str = "A4"
) -> list[Figure]:
    """KPI table page(s): ``district`` on each page; 11 (A4) / 15 (A3) columns, 28 rows per page."""
    if kpis is None or len(kpis) == 0:
        return []
    first = ["district"] if "district" in kpis.columns else []
    rest = [c for c in kpis.columns if c not in first]
    per = _KPI_COLS_PER_PAGE.get(size, 11)
    col_chunks = [rest[i : i + per] for i in range(0, len(rest), per)] or [[]]
    row_chunks = [
        kpis.iloc[i : i + _KPI_ROWS_PER_PAGE] for i in range(0, len(kpis), _KPI_ROWS_PER_PAGE)
    ]
    figs = []
    n_pages = len(col_chunks) * len(row_chunks)
    k = 0
    for rows in row_chunks:
        for cols in col_chunks:
            k += 1
            sh = _Sheet("kpi_table", summary, size, n_maps=0)
            sh.panel.remove()
            ax = sh.fig.add_axes((0.02, 0.09, 0.96, 0.79))
            ax.set_axis_off()
            shown = rows[first + cols]
            cells = [[_t(_fmt(v)) for v in r] for r in shown.itertuples(index=False)]
            header = [_t(textwrap.fill(str(c).replace("_", " "), 14)) for c in shown.columns]
            n_cols = len(shown.columns)
            widths = [1.0 / n_cols] * n_cols
            if first and n_cols > 1:
                widths = [0.16] + [0.84 / (n_cols - 1)] * (n_cols - 1)
            tab = ax.table(
                cellText=cells,
                colLabels=header,
                colWidths=widths,
                loc="upper center",
                cellLoc="right",
            )
            tab.auto_set_font_size(False)
            tab.set_fontsize(sh.fs)
            tab.scale(1.0, 1.6)
            for (r, c), cell in tab.get_celld().items():
                if r == 0:
                    cell.set_facecolor("#e8e8e8")
                    cell.set_height(cell.get_height() * 2.2)
                    cell.get_text().set_fontweight("bold")
                    cell.get_text().set_horizontalalignment("center")
                elif c == 0 and first:
                    cell.get_text().set_horizontalalignment("left")
            if n_pages > 1:
                sh.fig.text(0.98, 0.915, f"page {k} of {n_pages}", ha="right", fontsize=sh.fs)
            figs.append(sh.finish(None))
    return figs


def _fmt(v: Any) -> str:
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, int | np.integer):
        return f"{int(v):,}"
    if isinstance(v, float | np.floating):
        f = float(v)
        if not math.isfinite(f):
            return "-"
        if abs(f) >= 1000:
            return f"{f:,.0f}"
        return f"{f:.4g}"
    return str(v)


def write_sheets(
    layers: Mapping[str, gpd.GeoDataFrame | None],
    summary: Mapping[str, Any],
    kpis: pd.DataFrame | None,
    out_dir: str | Path,
    sizes: Sequence[str] = ("A4", "A3"),
    dpi: int = 300,
    formats: Sequence[str] = ("pdf", "png"),
    themes: Sequence[str] = THEMES,
    hotspot_radius_m: float = 100.0,
) -> list[Path]:
    """Write the map sheets and the KPI table page(s).

    Parameters
    ----------
    layers : dict of str -> GeoDataFrame
        Plan layers in the metric working CRS (``demand`` is not drawn).
    summary : dict
        Plan summary; ``data_kind == DEMO_KIND`` stamps every sheet.
    kpis : DataFrame or None
        District KPI table.
    out_dir : str or Path
        Folder for ``<theme>_<size>.<ext>`` and ``kpi_table_<size>[_<k>].<ext>``.
    sizes : sequence of str
        Paper sizes (``A4``, ``A3``), landscape.
    dpi : int
        PNG resolution (300 for print; PDFs are vector).
    formats : sequence of str
        ``pdf`` and/or ``png``.
    themes : sequence of str
        Theme sheets to draw (default all :data:`THEMES`).
    hotspot_radius_m : float
        Wi-Fi coverage radius when ``wifi_hotspots`` has no ``radius_m``.

    Returns
    -------
    list of Path
        Files written.
    """
    bad = [f for f in formats if f not in ("pdf", "png")]
    if bad:
        raise ParameterError(f"sheet formats {bad} unknown; use 'pdf' and/or 'png'")
    if dpi < 20 or dpi > 1200:
        raise ParameterError(f"sheet dpi = {dpi}: use a value between 20 and 1200 (300 for print)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with mpl.rc_context({"font.family": "DejaVu Sans", "hatch.linewidth": 0.6}):
        for size in sizes:
            figs: list[tuple[str, Figure]] = [
                (f"{t}_{size}", render_sheet(t, layers, summary, size, hotspot_radius_m))
                for t in themes
            ]
            pages = render_kpi_pages(kpis, summary, size) if kpis is not None else []
            for i, f in enumerate(pages):
                figs.append((f"kpi_table_{size}" + (f"_{i + 1}" if len(pages) > 1 else ""), f))
            for stem, fig in figs:
                for fmt in formats:
                    path = out / f"{stem}.{fmt}"
                    fig.savefig(
                        path, dpi=dpi if fmt == "png" else 150, metadata=_metadata(fmt, summary)
                    )
                    written.append(path)
                fig.clear()
            logger.info("wrote %d sheets (%s) to %s", len(figs), size, out)
    return written


def _metadata(fmt: str, summary: Mapping[str, Any]) -> dict[str, str]:
    title = f"towerplan sheets - {summary.get('scenario', '')} ({summary.get('data_kind', '')})"
    if fmt == "pdf":
        return {"Title": title, "Creator": f"towerplan {__version__}"}
    return {"Title": title, "Software": f"towerplan {__version__}"}
