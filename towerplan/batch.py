"""Many areas, one scenario template: ``towerplan batch`` on Dask distributed.

A batch applies one scenario template to many areas -- every province (or
district) of a boundary file with a grouping column -- and runs each area as a
full ``plan`` or a ``need`` (set covering) run, as independent tasks on a Dask
cluster: an embedded ``LocalCluster`` by default, or an existing scheduler
(``tcp://HOST:8786``).  A sweep runs areas x variants (radius, coverage
target, cell size) as one job.

Semantics
---------
- **One task per (area, variant)**, a pure function of its inputs: the area's
  communes, the template and the task options travel with the task; the task
  writes only ``OUT/areas/<code>/`` (``OUT/areas/<code>/<variant>/`` in a sweep)
  through a staged folder that appears complete or not at all, and returns one
  record.  Workers share no writable state; the client alone writes the
  national outputs.  The outputs of a remote cluster's workers must land on a
  file system the client sees (same machine or a shared mount).
- **Deterministic**: a task uses no clock, no global random state and no
  shared state, so a batch gives exactly what each area run alone gives
  (:func:`run_area`), under any number of workers.
- **Robust**: an exception in one area becomes one row of ``OUT/failures.csv``
  and the others finish.  ``resume`` skips areas whose ``area.json`` (written
  last) exists for the same task options.
- **Memory**: one task per worker process at a time (``threads_per_worker=1``);
  the worker's ``memory_limit`` (default 2 GB) bounds it -- Dask pauses, then
  restarts a worker above it, and the area is reported failed.  Each record
  carries the worker's peak RSS.

Boundaries
----------
:func:`areas_from_boundaries` reads a commune layer, turns it into a partition
(:mod:`towerplan._partition`: overlaps removed, interior gaps filled, so that
nobody is counted twice or lost), groups communes into areas and, optionally,
calibrates each area's population to a published total (e.g. GSO 2009 by
province): every commune of the area is scaled by ``target / area sum``; the
factors are reported in ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import pandas as pd
from tqdm.auto import tqdm

from towerplan._i18n import _, current_language
from towerplan._partition import make_partition
from towerplan.errors import (
    N_,
    ColumnError,
    DataFileError,
    OutputError,
    ParameterError,
    Text,
    TowerplanError,
    collected_warnings,
    replay_warnings,
)
from towerplan.inputs._base import PlanInputs
from towerplan.outputs.folder import staged_output
from towerplan.scenario import Scenario

logger = logging.getLogger(__name__)

__all__ = [
    "Area",
    "AreaTask",
    "BatchResult",
    "areas_from_boundaries",
    "attach_sites",
    "read_sweep",
    "run_area",
    "run_batch",
]

BATCH_KIND = "census boundaries and population, no existing sites"
"""``data_kind`` of an area built from a boundary file (no site inventory is known)."""
BATCH_SITES_KIND = "census boundaries and population, existing sites from {source}"
"""``data_kind`` of such an area when a site inventory is given (``--sites``)."""
DEFAULT_MEMORY_LIMIT = "2GB"
"""Default memory limit per worker process (one task at a time per worker)."""
NEIGHBOUR_BUFFER_M = 5000.0
"""Communes this close to a selected area join the partition of a subset run."""
URBAN_PREFIXES = ("Quận", "Thị xã", "Thành phố")
RURAL_PREFIXES = ("Huyện",)
_SWEEP_KEYS = ("radius_m", "coverage", "cell_size_m", "market_share")


@dataclass(frozen=True)
class Area:
    """One area of a batch: its communes (population polygons) in the working CRS.

    ``communes`` has ``population`` (calibrated), ``district``, ``district_code``
    and ``district_type``.  ``sites`` are the existing sites inside the area (from a
    national inventory, :func:`attach_sites`; ``None``: none known).  An area from a scenario file (:func:`areas_from_scenarios`)
    carries its own ``scenario`` and loaded ``inputs`` (with its existing sites);
    ``communes`` is then its district layer.
    """

    code: str
    name: str
    communes: gpd.GeoDataFrame
    population_source: float
    calibration_factor: float = 1.0
    scenario: Scenario | None = None
    inputs: PlanInputs | None = None
    sites: gpd.GeoDataFrame | None = None
    sites_source: str = ""


@dataclass(frozen=True)
class AreaTask:
    """What to run in every area (one variant of a sweep)."""

    mode: Literal["need", "plan"] = "need"
    coverage: float = 0.95
    radius_m: float | None = None
    cell_size_m: float | None = None
    solver: str = "auto"
    time_limit_s: float | None = None
    seed: int = 0
    maps: bool = False
    market_share: tuple[tuple[str, float], ...] | None = None
    """Operator market shares replacing the template's (name, share) pairs; ``None``: as is."""

    def key(self) -> str:
        """Short stable id of the options (folder name in a sweep, resume check)."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:10]

    def label(self) -> str:
        """Human-readable variant name."""
        parts: list[str] = [str(self.mode)]
        if self.mode == "need":
            parts.append(f"cov{self.coverage:g}")
        if self.radius_m is not None:
            parts.append(f"r{self.radius_m:g}")
        if self.cell_size_m is not None:
            parts.append(f"cell{self.cell_size_m:g}")
        if self.market_share is not None:
            parts.append("ms_" + "_".join(f"{_slug(n)}{v:g}" for n, v in self.market_share))
        return "-".join(parts)


def _slug(name: str) -> str:
    """ASCII letters and digits of an operator name (for folder names)."""
    return "".join(ch for ch in name if ch.isascii() and ch.isalnum())


@dataclass
class BatchResult:
    """Records of a batch (one per area x variant) and where its outputs are."""

    records: list[dict[str, Any]]
    out_dir: Path
    summary: dict[str, Any]
    dashboard: str | None = None
    files: list[Path] = field(default_factory=list)


# --------------------------------------------------------------------------- areas


def _district_type(name: str) -> str:
    text = str(name).strip()
    if any(text.startswith(p + " ") for p in URBAN_PREFIXES):
        return "urban"
    if any(text.startswith(p + " ") for p in RURAL_PREFIXES):
        return "rural"
    return "rural"


def _group_columns(gdf: gpd.GeoDataFrame, by: str) -> tuple[str, str]:
    """(code column, name column) for ``by`` (``province`` -> province_id / province_vn)."""
    code = f"{by}_id" if f"{by}_id" in gdf.columns else by
    if code not in gdf.columns:
        raise ColumnError(
            msgid=N_(
                "boundaries: no column '{by}' or '{by}_id' to group by; the layer has "
                "{columns}; pass --by COLUMN"
            ),
            by=by,
            columns=[c for c in gdf.columns if c != "geometry"],
        )
    name = next((c for c in (f"{by}_vn", by) if c in gdf.columns), code)
    return code, name


def _calibration_targets(path: Path, key: str, column: str) -> dict[str, float]:
    table = pd.read_csv(path, dtype={key: str})
    for col in (key, column):
        if col not in table.columns:
            raise ColumnError(
                msgid=N_(
                    "calibration table {path}: column '{col}' not found; it has {columns}; "
                    "pass --calibrate-column"
                ),
                path=path,
                col=col,
                columns=list(table.columns),
            )
    return dict(zip(table[key].astype(str), table[column].astype(float), strict=True))


def areas_from_boundaries(
    path: str | Path,
    *,
    by: str = "province",
    crs: str = "EPSG:32648",
    only: Sequence[str] | None = None,
    calibrate: str | Path | None = None,
    calibrate_column: str = "pop_gso_avg2009",
    district: str = "district",
) -> tuple[list[Area], dict[str, Any]]:
    """Read a commune layer, make it a partition and group it into areas.

    Parameters
    ----------
    path : str or Path
        Polygon layer with ``population`` and the grouping columns
        (e.g. censusVN2009 ``communes_2009census.gpkg``).
    by : str
        Grouping column (``province`` uses ``province_id`` / ``province_vn``).
    crs : str
        Metric working CRS.
    only : sequence of str, optional
        Area codes to keep (default: all).  The partition then covers these
        areas and their neighbours within :data:`NEIGHBOUR_BUFFER_M`.
    calibrate : path, optional
        CSV with the area code column and ``calibrate_column`` (target totals).
    district : str
        District grouping column inside an area (``district_id``/``district_vn``).

    Returns
    -------
    list of Area, dict
        Areas sorted by code, and a report (partition, calibration).
    """
    p = Path(path)
    if not p.is_file():
        raise DataFileError(
            msgid=N_("--boundaries {p}: file not found; give a commune polygon layer"), p=p
        )
    gdf = gpd.read_file(p)
    if "population" not in gdf.columns:
        raise ColumnError(
            msgid=N_("--boundaries {p}: no 'population' column; give census communes"), p=p
        )
    code_col, name_col = _group_columns(gdf, by)
    d_code, d_name = _group_columns(gdf, district)
    gdf = gdf.to_crs(crs)
    gdf["_area"] = gdf[code_col].astype(str)
    if only:
        wanted = [str(c) for c in only]
        unknown = sorted(set(wanted) - set(gdf["_area"]))
        if unknown:
            raise ParameterError(
                msgid=N_("--areas: codes {unknown} not in column '{code_col}'; e.g. {examples}"),
                unknown=unknown,
                code_col=code_col,
                examples=sorted(set(gdf["_area"]))[:5],
            )
        sel = gdf["_area"].isin(wanted)
        near = gdf.geometry.intersects(gdf.loc[sel].union_all().buffer(NEIGHBOUR_BUFFER_M))
        gdf = gdf.loc[sel | near]
    part, prep = make_partition(gdf)
    targets = _calibration_targets(Path(calibrate), code_col, calibrate_column) if calibrate else {}
    areas: list[Area] = []
    for code, grp in part.groupby("_area", sort=True):
        if only and code not in set(map(str, only)):
            continue
        pop = grp["population"].astype(float).to_numpy()
        total = float(pop.sum())
        factor = targets.get(str(code), total) / total if (targets and total > 0) else 1.0
        communes = gpd.GeoDataFrame(
            {
                "population": pop * factor,
                "district": grp[d_name].astype(str).to_numpy(),
                "district_code": grp[d_code].astype(str).to_numpy(),
                "district_type": [_district_type(n) for n in grp[d_name]],
            },
            geometry=grp.geometry.to_numpy(),
            crs=part.crs,
        )
        areas.append(Area(str(code), str(grp[name_col].iloc[0]), communes, total, factor))
    report = {
        "boundaries": str(p),
        "by": code_col,
        "partition": prep.as_dict(),
        "calibrated": bool(targets),
        "calibration_column": calibrate_column if targets else None,
    }
    return areas, report


def areas_from_scenarios(paths: Sequence[str | Path]) -> tuple[list[Area], dict[str, Any]]:
    """One area per scenario file (its own data, existing sites included), read on the client.

    The area code is the scenario's ``name``; codes must be unique.
    """
    from towerplan.inputs.readers import load_inputs
    from towerplan.scenario import load_scenario

    areas: list[Area] = []
    for path in paths:
        scen = load_scenario(str(path))
        inputs = load_inputs(scen)
        d = inputs.districts
        areas.append(
            Area(
                scen.name,
                scen.title or scen.name,
                d.copy(),
                float(d["population"].sum()),
                scenario=scen,
                inputs=inputs,
            )
        )
    codes = [a.code for a in areas]
    if len(set(codes)) != len(codes):
        raise ParameterError(
            msgid=N_("--scenarios: scenario names {codes} repeat; give each a unique name"),
            codes=codes,
        )
    return areas, {"scenarios": [str(p) for p in paths]}


def attach_sites(
    areas: Sequence[Area], path: str | Path, template: Scenario
) -> tuple[list[Area], dict[str, Any]]:
    """Give every area the existing sites of a national inventory that lie inside it.

    The inventory is read once (``read_sites``: CSV with lon/lat, or a point layer;
    operator names matched to the template's operators under its
    ``data.unknown_operators`` policy, tenants kept) and each site goes to the area
    whose communes contain it (a partition: at most one); sites outside every area are
    dropped and counted.

    Returns
    -------
    list of Area, dict
        The areas with ``sites`` set, and a report (sites read, per area, outside).
    """
    from towerplan.inputs.operators import match_operators
    from towerplan.inputs.sites import read_sites

    p = Path(path)
    if not p.is_file():
        raise DataFileError(
            msgid=N_("--sites {p}: file not found; give a site inventory (CSV or points)"), p=p
        )
    crs = areas[0].communes.crs if areas else template.crs
    sites = read_sites(p, crs=crs, max_tenants=template.sites.max_tenants, outside="keep")
    sites, op_report = match_operators(
        sites, template.operators, f"--sites {p}", policy=template.data.unknown_operators
    )
    polys = pd.concat(
        [a.communes[["district", "geometry"]].assign(_area=a.code) for a in areas],
        ignore_index=True,
    )
    polys = gpd.GeoDataFrame(polys, geometry="geometry", crs=crs)
    hit = gpd.sjoin(sites, polys, how="inner", predicate="within")
    hit = hit[~hit.index.duplicated(keep="first")]
    out: list[Area] = []
    counts: dict[str, int] = {}
    for a in areas:
        own = hit[hit["_area"] == a.code]
        mine = gpd.GeoDataFrame(
            sites.loc[own.index].assign(district=own["district"].to_numpy()), crs=crs
        ).reset_index(drop=True)
        counts[a.code] = len(mine)
        out.append(dataclasses.replace(a, sites=mine, sites_source=str(p)))
    report = {
        "sites": str(p),
        "sites_read": len(sites),
        "sites_outside_areas": int(len(sites) - len(hit)),
        "sites_per_area": counts,
        "unknown_operators": op_report,
    }
    return out, report


def area_inputs(area: Area) -> PlanInputs:
    """The plan inputs of one area: districts dissolved from its communes, its sites if known."""
    if area.inputs is not None:
        return area.inputs
    c = area.communes
    d = c.dissolve(
        by="district_code",
        aggfunc={"district": "first", "district_type": "first", "population": "sum"},
        sort=True,
    )
    districts = gpd.GeoDataFrame(
        {
            "district": d["district"].to_numpy(),
            "code": d.index.astype(str).to_numpy(),
            "district_type": d["district_type"].to_numpy(),
            "population": d["population"].to_numpy(dtype=float),
            "area_km2": d.geometry.area.to_numpy() / 1e6,
        },
        geometry=d.geometry.to_numpy(),
        crs=c.crs,
    )
    cols = ["site_id", "operator", "operators", "n_tenants", "max_tenants", "height_m", "district"]
    pois = gpd.GeoDataFrame({"name": [], "category": [], "source": []}, geometry=[], crs=c.crs)
    note = "Boundaries and population: census communes (partition; see batch summary.json); "
    if area.sites is not None:
        sites = area.sites
        kind = BATCH_SITES_KIND.format(source=Path(area.sites_source).name or "a site inventory")
        note += f"existing sites: {len(sites)} from {area.sites_source} (inside the area)."
    else:
        sites = gpd.GeoDataFrame({k: [] for k in cols}, geometry=[], crs=c.crs)
        kind = BATCH_KIND
        note += "no existing sites are known, so every site is counted as new."
    return PlanInputs(
        districts=districts,
        population=c[["population", "district", "geometry"]],
        existing_sites=sites,
        pois=pois,
        data_kind=kind,
        notes=[note],
    )


# --------------------------------------------------------------------------- one area


def _area_scenario(template: Scenario, area: Area, task: AreaTask) -> Scenario:
    base = area.scenario if area.scenario is not None else template
    name = base.name if area.scenario is not None else f"{template.name}-{area.code}"
    demand = base.demand
    if task.cell_size_m is not None:
        demand = dataclasses.replace(demand, cell_size_m=float(task.cell_size_m))
    operators = base.operators
    if task.market_share is not None:
        shares = dict(task.market_share)
        operators = tuple(
            dataclasses.replace(o, market_share=float(shares.get(o.name, o.market_share)))
            for o in base.operators
        )
    return dataclasses.replace(base, name=name, demand=demand, operators=operators)


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def run_area(area: Area, template: Scenario, task: AreaTask, out_dir: str | Path) -> dict[str, Any]:
    """Run one area and write ``out_dir`` (complete or not at all); return its record.

    Exceptions propagate (the batch wrapper turns them into failure records).
    """
    scen = _area_scenario(template, area, task)
    inputs = area_inputs(area)
    area_km2 = float(inputs.districts["area_km2"].sum())
    population = float(area.communes["population"].sum())
    own_sites = area.inputs is not None or area.sites is not None
    rec: dict[str, Any] = {
        "code": area.code,
        "name": area.name,
        "variant": task.label(),
        "mode": task.mode,
        "population": round(population, 1),
        "area_km2": round(area_km2, 3),
        "calibration_factor": round(area.calibration_factor, 6),
        "population_source": area.population_source,
        "market_share": ";".join(f"{o.name}={o.market_share:g}" for o in scen.operators),
    }
    out = Path(out_dir)
    if task.mode == "need":
        from towerplan.plan import coverage_need

        r = coverage_need(
            scen,
            task.coverage,
            radius_m=task.radius_m,
            from_scratch=not own_sites,
            inputs=inputs,
            solver=task.solver,
            time_limit_s=task.time_limit_s,
        )
        rec.update(
            radius_m=r["radius_m"],
            coverage_target=task.coverage,
            existing_sites=r["existing_sites"],
            new_sites=r["new_sites"],
            lower_bound_new_sites=r["lower_bound_new_sites"],
            optimal=r["optimal"],
            coverage_before=r["existing_coverage"],
            coverage_after=r["covered_fraction"],
            solver_used=r["solver_used"],
            reproducible=bool(r.get("reproducible", True)),
        )
        with staged_output(out, overwrite=True) as tmp:
            (tmp / "need.json").write_text(json.dumps(r, indent=2, default=str), encoding="utf-8")
            _write_area_json(tmp, rec, task)
    else:
        from towerplan.plan import run_plan

        res = run_plan(
            scen,
            out,
            inputs=inputs,
            overwrite=True,
            solver=task.solver,
            seed=task.seed,
            maps=task.maps,
            best_server=False,
            time_limit_s=task.time_limit_s,
            progress=False,
        )
        s = res.summary
        rec.update(
            radius_m=s["coverage_radius_m"],
            coverage_target=None,
            existing_sites=s["existing_sites"],
            new_sites=s["new_sites"],
            lower_bound_new_sites=None,
            optimal=None,
            coverage_before=s["coverage_share_before"],
            coverage_after=s["coverage_share_after"],
            solver_used=str(s.get("siting", {}).get("solver_used", "")),
        )
        _write_area_json(out, rec, task)
    rec["sites_per_100km2"] = round(100.0 * rec["new_sites"] / area_km2, 3) if area_km2 else None
    return rec


def _write_area_json(folder: Path, rec: dict[str, Any], task: AreaTask) -> None:
    doc = {"record": rec, "task": dataclasses.asdict(task), "task_key": task.key()}
    (folder / "area.json").write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")


def area_outline(area: Area) -> Any:
    """The area's outline (union of its communes), for the national layer."""
    return area.communes.geometry.union_all()


def _task(area: Area, template: Scenario, task: AreaTask, out_dir: str) -> dict[str, Any]:
    """Dask task: :func:`run_area` with failures turned into records.

    Besides the record fields, returns the task's CPU time (``cpu_s``), the worker
    process's CPU time so far (``worker_cpu_s``, start-up included) and pid, the
    area outline (``outline``, dissolved here so the client does not do it serially) and
    the user warnings of the run (``warnings``, :func:`towerplan.errors.collected_warnings`:
    the client shows them in the user's language).
    """
    t0 = time.perf_counter()
    c0 = time.process_time()
    try:
        with collected_warnings() as warned:
            rec = run_area(area, template, task, out_dir)
        rec["status"] = "ok"
        rec["error"] = ""
    except Exception as exc:  # one failing area must not stop the batch
        logger.debug("area %s failed:\n%s", area.code, traceback.format_exc())
        rec = {
            "code": area.code,
            "name": area.name,
            "variant": task.label(),
            "status": "failed",
            "error": f"{type(exc).__name__}: {' '.join(str(exc).split())}",
            # translatable: the client puts the text in the user's language (_localise_error)
            "error_text": Text(exc.msgid, **exc.params)
            if isinstance(exc, TowerplanError) and exc.msgid
            else None,
        }
    # shown by the client, in the user's language (this process has no CLI log handler)
    rec["warnings"] = warned
    rec["outline"] = area_outline(area)
    rec["runtime_s"] = round(time.perf_counter() - t0, 3)
    rec["cpu_s"] = round(time.process_time() - c0, 3)
    rec["worker_cpu_s"] = round(time.process_time(), 3)
    rec["worker_pid"] = os.getpid()
    rec["peak_worker_rss_mb"] = round(_peak_rss_mb(), 1)
    return rec


def _localise_error(rec: dict[str, Any]) -> None:
    """Put a failed record's ``error`` in the current language (its ``error_text``, dropped).

    The error class name stays first (a stable code, e.g. ``GeometryError: ...``); an error
    raised without a translatable message keeps its English text.
    """
    text = rec.pop("error_text", None)
    if text is not None:
        kind = rec["error"].split(":", 1)[0]
        message = text.user_message(_, decimal_comma=current_language() == "vi")
        rec["error"] = f"{kind}: {' '.join(message.split())}"


# --------------------------------------------------------------------------- sweeps


def read_sweep(
    path: str | Path, base: AreaTask, template: Scenario | None = None
) -> list[AreaTask]:
    """Variants of ``base`` from a YAML sweep file.

    Keys: ``radius_m``, ``coverage``, ``cell_size_m`` (lists of numbers) and
    ``market_share`` (a list of mappings operator -> share; operators not named keep
    the template's share; with ``template`` the names are matched to its operators
    and the shares must add up to 1).

    Returns the Cartesian product in file order (the last key varies fastest).
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise DataFileError(msgid=N_("--sweep {p}: file not found"), p=p)
    doc = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    bad = sorted(set(doc) - set(_SWEEP_KEYS))
    if bad:
        raise ParameterError(
            msgid=N_("--sweep {p}: unknown keys {bad}; allowed: {sweep_keys} (lists of values)"),
            p=p,
            bad=bad,
            sweep_keys=list(_SWEEP_KEYS),
        )
    keys = [k for k in _SWEEP_KEYS if k in doc]
    values: list[list[Any]] = []
    for k in keys:
        vals = doc[k] if isinstance(doc[k], list) else [doc[k]]
        if k == "market_share":
            vals = [_shares(p, v, template) for v in vals]
        else:
            vals = [float(v) for v in vals]
        values.append(vals)
    return [
        dataclasses.replace(base, **dict(zip(keys, combo, strict=True)))
        for combo in itertools.product(*values)
    ]


def _shares(path: Path, value: Any, template: Scenario | None) -> tuple[tuple[str, float], ...]:
    """One ``market_share`` variant as (operator name, share) pairs, checked."""
    if not isinstance(value, dict) or not value:
        raise ParameterError(
            msgid=N_(
                "--sweep {path}: market_share entries must be mappings operator -> share, "
                "e.g. [{{Viettel: 0.5, MobiFone: 0.3, VNPT-VinaPhone: 0.2}}]"
            ),
            path=path,
        )
    pairs = [(str(k), float(v)) for k, v in value.items()]
    if any(not (0.0 <= v <= 1.0) for _, v in pairs):
        raise ParameterError(
            msgid=N_("--sweep {path}: market shares must be in [0, 1], got {value}"),
            path=path,
            value=value,
        )
    if template is None:
        return tuple(pairs)
    from towerplan.scenario import operator_key

    names = {operator_key(s): o.name for o in template.operators for s in (o.name, *o.aliases)}
    unknown = [k for k, _ in pairs if operator_key(k) not in names]
    if unknown:
        raise ParameterError(
            msgid=N_(
                "--sweep {path}: market_share names {unknown} are not operators of the "
                "scenario ({operators})"
            ),
            path=path,
            unknown=unknown,
            operators=[o.name for o in template.operators],
        )
    shares = {names[operator_key(k)]: v for k, v in pairs}
    full = {o.name: shares.get(o.name, o.market_share) for o in template.operators}
    if abs(sum(full.values()) - 1.0) > 0.01:
        raise ParameterError(
            msgid=N_(
                "--sweep {path}: market_share {value} gives shares adding up to {total:.3f} "
                "with the scenario's other operators, not 1"
            ),
            path=path,
            value=value,
            total=sum(full.values()),
        )
    return tuple((n, full[n]) for n in full)


# --------------------------------------------------------------------------- the batch


def _client(scheduler: str | None, workers: int | None, memory_limit: str) -> tuple[Any, Any]:
    from distributed import Client, LocalCluster

    for name in ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.core"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
    if scheduler:
        return Client(scheduler, timeout=30), None
    cluster = LocalCluster(
        n_workers=int(workers or 2),
        threads_per_worker=1,
        processes=True,
        memory_limit=memory_limit,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        silence_logs=logging.WARNING,
    )
    return Client(cluster), cluster


def _done(folder: Path, task: AreaTask) -> dict[str, Any] | None:
    f = folder / "area.json"
    if not f.is_file():
        return None
    try:
        doc = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if doc.get("task_key") != task.key():
        return None
    rec = dict(doc["record"])
    rec.update(status="ok", error="", resumed=True)
    return rec


def run_batch(
    areas: Sequence[Area],
    template: Scenario,
    tasks: Sequence[AreaTask],
    out_dir: str | Path,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    report: Mapping[str, Any] | None = None,
    on_dashboard: Callable[[str], object] | None = None,
) -> BatchResult:
    """Run every area x task on Dask and write the national outputs.

    Parameters
    ----------
    areas : sequence of Area
    template : Scenario
        Scenario template (settings, radius, solver budget).
    tasks : sequence of AreaTask
        One task (a batch) or the variants of a sweep.
    out_dir : str or Path
        ``OUT``: ``areas/<code>/`` per area, national outputs at the top.
    scheduler : str, optional
        Address of an existing Dask scheduler; default: an embedded LocalCluster.
    workers : int, optional
        LocalCluster worker processes (default 2).
    memory_limit : str
        LocalCluster memory limit per worker.
    resume : bool
        Skip areas whose complete output exists for the same task options.
    overwrite : bool
        Allow a non-empty ``out_dir`` without ``resume`` (areas are rewritten).
    progress : bool, optional
        tqdm bar over areas (default: only on a terminal).
    report : mapping, optional
        Preparation report (partition, calibration) for ``summary.json``.
    on_dashboard : callable, optional
        Called with the Dask dashboard address once the cluster is up.

    Returns
    -------
    BatchResult
    """
    c0 = time.process_time()
    out = _prepare_out(areas, tasks, Path(out_dir), resume=resume, overwrite=overwrite)
    sweep = len(tasks) > 1
    jobs, records = _plan_jobs(areas, tasks, out, resume=resume, sweep=sweep)
    t0 = time.perf_counter()
    dashboard: str | None = None
    if jobs:
        n_workers, dashboard = _run_jobs(
            jobs,
            template,
            records,
            scheduler=scheduler,
            workers=workers,
            memory_limit=memory_limit,
            progress=progress,
            on_dashboard=on_dashboard,
        )
    else:
        n_workers = 0
    wall = time.perf_counter() - t0
    from towerplan.outputs.national import write_national, write_summary

    records.sort(key=lambda r: (str(r["code"]), str(r.get("variant", ""))))
    outlines = {str(r["code"]): r.pop("outline") for r in records if "outline" in r}
    summary = {
        "data_kind": _batch_kind(areas),
        "scenario": template.name,
        "mode": tasks[0].mode,
        "variants": [t.label() for t in tasks],
        "areas": len(areas),
        **_run_counts(records),
        "scheduler": scheduler or "LocalCluster",
        "workers": n_workers,
        "memory_limit_per_worker": memory_limit if not scheduler else "set by the cluster",
        "wall_s": round(wall, 2),
        "preparation": dict(report or {}),
    }
    shapes = [
        (a.code, outlines[a.code] if a.code in outlines else area_outline(a), a.communes.crs)
        for a in areas
    ]
    t1 = time.perf_counter()
    files = write_national(out, records, shapes, summary, sweep=sweep)
    cpu = _cpu_report(records, client_cpu_s=time.process_time() - c0)
    cpu["national_outputs_s"] = round(time.perf_counter() - t1, 2)
    summary["cpu"] = cpu
    write_summary(out, summary)
    return BatchResult(records, out, summary, dashboard, files)


def _cpu_report(records: list[dict[str, Any]], *, client_cpu_s: float) -> dict[str, Any]:
    """Client vs task CPU time of this batch, and the Amdahl limit of the speed-up they imply.

    ``client_cpu_s`` is the client process (with a LocalCluster also its scheduler):
    serial work.  ``tasks_cpu_s`` sums the tasks run here (resumed ones excluded);
    ``workers_cpu_s`` sums each worker process's CPU time at its last task (start-up and
    imports included).  ``serial_fraction`` = client / (client + tasks) and
    ``amdahl_speedup_2`` = 1 / (s + (1 - s) / 2) is the best 2 workers can do over 1.
    """
    ran = [r for r in records if "cpu_s" in r]
    tasks = float(sum(r["cpu_s"] for r in ran))
    per_worker: dict[int, float] = {}
    for r in ran:
        pid = int(r["worker_pid"])
        per_worker[pid] = max(per_worker.get(pid, 0.0), float(r["worker_cpu_s"]))
    s = client_cpu_s / (client_cpu_s + tasks) if (client_cpu_s + tasks) > 0 else 0.0
    return {
        "client_cpu_s": round(client_cpu_s, 2),
        "tasks_cpu_s": round(tasks, 2),
        "workers_cpu_s": round(sum(per_worker.values()), 2),
        "serial_fraction": round(s, 4),
        "amdahl_speedup_2": round(1.0 / (s + (1.0 - s) / 2.0), 3),
    }


def _batch_kind(areas: Sequence[Area]) -> str:
    """``data_kind`` of the batch: with the site inventory's name when one was given."""
    src = next((a.sites_source for a in areas if a.sites is not None), None)
    return BATCH_SITES_KIND.format(source=Path(src).name) if src else BATCH_KIND


def _prepare_out(
    areas: Sequence[Area],
    tasks: Sequence[AreaTask],
    out: Path,
    *,
    resume: bool,
    overwrite: bool,
) -> Path:
    """Check the batch arguments and create ``out/areas``; returns ``out``."""
    if not areas:
        raise ParameterError(msgid=N_("batch: no areas to run; check --boundaries/--by/--areas"))
    if not tasks:
        raise ParameterError(msgid=N_("batch: no task variants; check --sweep"))
    if out.exists() and any(out.iterdir()) and not (resume or overwrite):
        raise OutputError(
            msgid=N_(
                "--out {out}: the folder exists and is not empty; pass --resume to continue "
                "a batch there, --overwrite to rerun it, or choose a new folder"
            ),
            out=out,
        )
    (out / "areas").mkdir(parents=True, exist_ok=True)
    return out


def _run_counts(records: list[dict[str, Any]]) -> dict[str, int]:
    """Numbers of runs, ok, failed and resumed for ``summary.json``."""
    return {
        "runs": len(records),
        "runs_ok": sum(r.get("status") == "ok" for r in records),
        "runs_failed": sum(r.get("status") != "ok" for r in records),
        "runs_resumed": sum(bool(r.get("resumed")) for r in records),
    }


def _plan_jobs(
    areas: Sequence[Area],
    tasks: Sequence[AreaTask],
    out: Path,
    *,
    resume: bool,
    sweep: bool,
) -> tuple[list[tuple[Area, AreaTask, Path]], list[dict[str, Any]]]:
    """Jobs still to run (area, task, folder) and the records of resumed ones."""
    jobs: list[tuple[Area, AreaTask, Path]] = []
    records: list[dict[str, Any]] = []
    for area in areas:
        for task in tasks:
            folder = out / "areas" / area.code / (task.label() if sweep else "")
            prev = _done(folder, task) if resume else None
            if prev is not None:
                records.append(prev)
            else:
                jobs.append((area, task, folder))
    return jobs, records


def _run_jobs(
    jobs: list[tuple[Area, AreaTask, Path]],
    template: Scenario,
    records: list[dict[str, Any]],
    *,
    scheduler: str | None,
    workers: int | None,
    memory_limit: str,
    progress: bool | None,
    on_dashboard: Callable[[str], object] | None,
) -> tuple[int, str]:
    """Run ``jobs`` on Dask, appending one record each; returns (workers, dashboard)."""
    from distributed import as_completed

    client, cluster = _client(scheduler, workers, memory_limit)
    try:
        dashboard = str(client.dashboard_link)
        if on_dashboard is not None:
            on_dashboard(dashboard)
        n_workers = len(client.scheduler_info().get("workers", {}))
        # largest areas first (longest-processing-time order: shortest batch wall time);
        # sorted as well as prioritised, since idle workers take the first tasks submitted
        jobs.sort(key=lambda j: -float(j[0].communes.geometry.area.sum()))
        futures = [
            client.submit(
                _task,
                a,
                template,
                t,
                str(f),
                pure=False,
                key=f"area-{a.code}-{t.key()}",
                priority=int(a.communes.geometry.area.sum() // 1e6),
            )
            for a, t, f in jobs
        ]
        bar = tqdm(
            total=len(futures),
            desc=_("towerplan batch"),
            unit=_("area"),
            disable=None if progress is None else not progress,
        )
        for fut in as_completed(futures):
            try:
                rec = fut.result()
                replay_warnings(rec.pop("warnings", ()))  # in the user's language, here
                _localise_error(rec)
                records.append(rec)
            except Exception as exc:  # worker died (e.g. memory limit): the area failed
                a, t, _folder = jobs[futures.index(fut)]
                records.append(
                    {
                        "code": a.code,
                        "name": a.name,
                        "variant": t.label(),
                        "status": "failed",
                        "error": f"{type(exc).__name__}: {exc}",
                    }
                )
            bar.update(1)
        bar.close()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return n_workers, dashboard
