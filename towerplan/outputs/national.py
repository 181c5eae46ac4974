"""National outputs of a batch: merged table, layer, map, sheet and sweep figure.

Written by the client of :func:`towerplan.batch.run_batch` (never by workers):

- ``national_kpis.csv``: one row per area (per area x variant in a sweep);
- ``national.gpkg``: layer ``areas`` (area polygons with the KPIs) and, for
  ``plan`` runs, ``proposed_sites`` merged from every area's ``towerplan.gpkg``;
- ``national_map.png``: choropleths of sites needed per 100 km² and coverage;
- ``national_sheet.pdf``: the map beside the table of sites needed per area;
- ``sweep.csv`` + ``sweep.png`` in a sweep (sites needed vs radius per target);
- ``failures.csv`` and ``summary.json``.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from towerplan._i18n import _, fmt_number, fmt_percent

logger = logging.getLogger(__name__)

__all__ = ["national_table", "write_failures", "write_national", "write_summary"]

_KPI_COLUMNS = (
    "code",
    "name",
    "variant",
    "population",
    "area_km2",
    "radius_m",
    "coverage_target",
    "market_share",
    "new_sites",
    "lower_bound_new_sites",
    "optimal",
    "reproducible",
    "coverage_before",
    "coverage_after",
    "covered_population",
    "sites_per_100km2",
    "calibration_factor",
    "population_source",
    "runtime_s",
    "cpu_s",
    "peak_worker_rss_mb",
)


def write_failures(out: Path, records: Sequence[dict[str, Any]]) -> Path:
    """``OUT/failures.csv``: one line per failed run (code, name, variant, error)."""
    path = out / "failures.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["code", "name", "variant", "error"])
        for r in records:
            if r.get("status") != "ok":
                w.writerow([r["code"], r["name"], r.get("variant", ""), r.get("error", "")])
    return path


def national_table(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Tidy table of the successful runs (one row per area x variant)."""
    df = pd.DataFrame([r for r in records if r.get("status") == "ok"])
    if df.empty:
        return df
    df["covered_population"] = (df["population"] * df["coverage_after"]).round(1)
    return df.drop(columns=[c for c in ("resumed",) if c in df.columns])


def _areas_layer(areas: Sequence[tuple[str, Any, Any]], table: pd.DataFrame) -> gpd.GeoDataFrame:
    crs = areas[0][2]
    layer = gpd.GeoDataFrame(
        {"code": [a[0] for a in areas]}, geometry=[a[1] for a in areas], crs=crs
    )
    if table.empty:
        return layer
    first = table.drop_duplicates("code", keep="first").drop(columns=["name"], errors="ignore")
    return layer.merge(first, on="code", how="left")


def _figure(**kwargs: Any) -> Any:
    """A matplotlib Figure (Agg, outside pyplot) drawn only when saved.

    geopandas draws the whole figure (``canvas.draw_idle``) after every layer it plots;
    on this canvas that is a no-op, so the figure is drawn once, by ``savefig``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    class _SavedOnlyCanvas(FigureCanvasAgg):
        def draw_idle(self, *args: Any, **kw: Any) -> None:
            """Nothing: the figure is drawn when saved."""

    fig = Figure(**kwargs)
    _SavedOnlyCanvas(fig)
    return fig


def _map(layer: gpd.GeoDataFrame, path: Path, title: str) -> Path:
    fig = _figure(figsize=(11, 8))
    axes = fig.subplots(1, 2)
    for ax, col, label in (
        (axes[0], "sites_per_100km2", _("new sites per 100 km²")),
        (axes[1], "coverage_after", _("population coverage after")),
    ):
        if col in layer.columns and layer[col].notna().any():
            layer.plot(
                column=col,
                ax=ax,
                legend=True,
                cmap="viridis",
                edgecolor="white",
                linewidth=0.2,
                missing_kwds={"color": "lightgrey", "label": _("failed")},
            )
        else:
            layer.plot(ax=ax, color="lightgrey")
        ax.set_title(label)
        ax.set_axis_off()
    fig.suptitle(title)
    fig.savefig(path, dpi=120)
    return path


def _sheet(layer: gpd.GeoDataFrame, table: pd.DataFrame, path: Path, title: str) -> Path:
    from matplotlib.backends.backend_pdf import PdfPages

    with PdfPages(path) as pdf:
        fig = _figure(figsize=(16.5, 11.7))
        ax, tx = fig.subplots(1, 2, width_ratios=[1, 1.1])
        if "new_sites" in layer.columns and layer["new_sites"].notna().any():
            layer.plot(
                column="new_sites",
                ax=ax,
                legend=True,
                cmap="magma_r",
                edgecolor="grey",
                linewidth=0.2,
                missing_kwds={"color": "lightgrey"},
            )
        else:
            layer.plot(ax=ax, color="lightgrey")
        ax.set_title(_("sites needed"))
        ax.set_axis_off()
        tx.set_axis_off()
        if not table.empty:
            rows = table.sort_values("code").head(70)
            text = [
                f"{str(n)[:24]:<24} {fmt_number(p):>11} {fmt_number(k):>7} {fmt_percent(c):>8}"
                for n, p, k, c in zip(
                    rows["name"],
                    rows["population"],
                    rows["new_sites"],
                    rows["coverage_after"],
                    strict=True,
                )
            ]
            labels = (_("area"), _("population"), _("sites"), _("cov."))
            head = f"{labels[0]:<24} {labels[1]:>11} {labels[2]:>7} {labels[3]:>8}"
            tx.text(0, 1, "\n".join([head, *text]), family="monospace", fontsize=6.5, va="top")
        fig.suptitle(title)
        pdf.savefig(fig)
    return path


def _sweep_figure(table: pd.DataFrame, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    shares = "market_share" in table.columns and table["market_share"].nunique() > 1
    keys = ["coverage_target", *(["market_share"] if shares else [])]
    nat = table.groupby([*keys, "radius_m"], as_index=False)["new_sites"].sum()
    labels = [
        _("{pct} coverage").format(pct=fmt_percent(float(c), 0)) + (f" ({m})" if shares else "")
        for c, m in zip(
            nat["coverage_target"], nat["market_share"] if shares else nat["radius_m"], strict=True
        )
    ]
    nat["label"] = labels
    for label in dict.fromkeys(labels):
        grp = nat[nat["label"] == label].sort_values(by="radius_m")
        ax.plot(grp["radius_m"], grp["new_sites"], marker="o", label=label)
    ax.set_xlabel(_("site radius (m)"))
    ax.set_ylabel(_("sites needed (sum over areas)"))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _share_figure(table: pd.DataFrame, path: Path) -> Path:
    """Sites needed (sum over areas) per market-share variant, one bar group per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rest = [c for c in ("radius_m", "coverage_target") if c in table.columns]
    rest = [c for c in rest if table[c].nunique(dropna=True) > 1]
    nat = table.groupby(["market_share", *rest], as_index=False, dropna=False)["new_sites"].sum()
    if rest:
        nat["series"] = [
            " / ".join(str(x) for x in row) for row in nat[rest].itertuples(index=False)
        ]
        wide = nat.pivot(index="market_share", columns="series", values="new_sites")
    else:
        wide = nat.set_index("market_share")[["new_sites"]]
    fig, ax = plt.subplots(figsize=(8, 5))
    wide.plot.barh(ax=ax, legend=bool(rest))
    ax.set_xlabel(_("sites needed (sum over areas)"))
    ax.set_ylabel(_("market shares"))
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_national(
    out: Path,
    records: Sequence[dict[str, Any]],
    areas: Sequence[tuple[str, Any, Any]],
    summary: dict[str, Any],
    *,
    sweep: bool = False,
) -> list[Path]:
    """Write the national outputs of a batch into ``out``; return the files written.

    ``areas`` are (code, outline geometry, CRS) triples; ``records`` one dict per run.
    """
    files = [write_failures(out, records)]
    table = national_table(records)
    cols = [c for c in _KPI_COLUMNS if c in table.columns]
    table = table[cols] if not table.empty else pd.DataFrame(columns=list(_KPI_COLUMNS))
    title = f"{summary['scenario']}: {summary['mode']} ({', '.join(summary['variants'][:3])})"
    if sweep:
        table.to_csv(out / "sweep.csv", index=False)
        files.append(out / "sweep.csv")
        if not table.empty and "coverage_target" in table.columns:
            files.append(_sweep_figure(table, out / "sweep.png"))
        if not table.empty and table.get("market_share", pd.Series()).nunique() > 1:
            files.append(_share_figure(table, out / "sweep_market_share.png"))
    else:
        table.to_csv(out / "national_kpis.csv", index=False)
        files.append(out / "national_kpis.csv")
    layer = _areas_layer(areas, table)
    gpkg = out / "national.gpkg"
    layer.to_file(gpkg, layer="areas", driver="GPKG")
    if summary["mode"] == "plan":
        parts = []
        for r in records:
            g = out / "areas" / str(r["code"]) / "towerplan.gpkg"
            if r.get("status") == "ok" and g.is_file():
                sites = gpd.read_file(g, layer="proposed_sites")
                parts.append(sites.assign(area=str(r["code"])))
        if parts:
            merged = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=parts[0].crs)
            merged.to_file(gpkg, layer="proposed_sites", driver="GPKG")
    files.append(gpkg)
    files.append(_map(layer, out / "national_map.png", title))
    files.append(_sheet(layer, table, out / "national_sheet.pdf", title))
    if not table.empty:
        first = table.drop_duplicates("code", keep="first")
        pop = float(first["population"].sum())
        summary["population"] = round(pop, 1)
        summary["new_sites"] = int(first["new_sites"].sum())
        summary["covered_population"] = round(float(first["covered_population"].sum()), 1)
        summary["coverage_after"] = round(summary["covered_population"] / pop, 4) if pop else None
        summary["area_km2"] = round(float(first["area_km2"].sum()), 1)
        # resumed runs (read back from area.json) have no worker figures: a batch resumed
        # after every area was done has none at all
        peak = pd.to_numeric(table.get("peak_worker_rss_mb", pd.Series(dtype=float))).max()
        summary["peak_worker_rss_mb"] = None if pd.isna(peak) else float(peak)
    summary["failures"] = [
        {"code": r["code"], "variant": r.get("variant", ""), "error": r.get("error", "")}
        for r in records
        if r.get("status") != "ok"
    ]
    files.append(write_summary(out, summary))
    return files


def write_summary(out: Path, summary: dict[str, Any]) -> Path:
    """``OUT/summary.json`` (rewritten when the summary grows)."""
    path = out / "summary.json"
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str), "utf-8")
    return path
