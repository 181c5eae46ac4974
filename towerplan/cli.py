"""The ``towerplan`` command line.

``towerplan plan --scenario cantho-2020 --out outputs/cantho-2020`` runs the
whole plan on the built-in demo.  User errors (bad files, bad scenarios, an
output folder in use) print one line on stderr and exit with status 2; no
traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import re
import signal
import sys
import typing
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from towerplan import __version__
from towerplan._i18n import (
    LANGUAGES,
    _,
    current_language,
    data_text,
    fmt_number,
    fmt_percent,
    use_language,
)
from towerplan.errors import N_, TowerplanError, TowerplanWarning
from towerplan.outputs._themes import DEMO_STAMP_MSG, column_label, value_label

if typing.TYPE_CHECKING:
    from towerplan.scenario import Scenario

logger = logging.getLogger(__name__)

EXIT_USER_ERROR = 2


class _Terminated(BaseException):
    """Raised by the SIGTERM handler so that staged outputs are cleaned up like on Ctrl-C."""


def _positive(what: str, example: str) -> typing.Callable[[str], float]:
    """argparse type: a finite number > 0 (``what``: a marked msgid, e.g. "number of seconds")."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                _("{text} is not a {what}").format(text=repr(text), what=_(what))
            ) from None
        if not math.isfinite(v) or v <= 0:
            raise argparse.ArgumentTypeError(
                _("{text} must be a finite {what} > 0, e.g. {example}").format(
                    text=repr(text), what=_(what), example=example
                )
            )
        return v

    return parse


SCENARIO_HELP = N_("built-in scenario name (cantho-2020, cantho-2030) or path to a scenario YAML")

_positive_seconds = _positive(N_("number of seconds"), "--time-limit 60")
_positive_factor = _positive(N_("number"), "--work-limit 0.1")


def _positive_count(text: str) -> int:
    """argparse type: a whole number >= 1 (``--jobs``)."""
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(
            _("{text} must be a whole number >= 1, e.g. {example}").format(
                text=repr(text), example="--jobs 2"
            )
        )
    return v


# argparse's own error texts (its gettext domain has no Vietnamese): matched and re-said
# through towerplan's catalogues; anything else passes through unchanged.
_ARGPARSE_ERRORS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"the following arguments are required: (?P<args>.+)"),
        N_("the following arguments are required: {args}"),
    ),
    (re.compile(r"unrecognized arguments: (?P<args>.+)"), N_("unrecognized arguments: {args}")),
    (
        re.compile(
            r"argument (?P<arg>\S+): invalid choice: (?P<value>.+?) \(choose from (?P<choices>.+)\)"
        ),
        N_("argument {arg}: invalid choice: {value} (choose from {choices})"),
    ),
    (
        re.compile(r"argument (?P<arg>\S+): invalid (?P<type>\w+) value: (?P<value>.+)"),
        N_("argument {arg}: invalid value {value} (expected a {type})"),
    ),
    (
        re.compile(r"argument (?P<arg>\S+): expected one argument"),
        N_("argument {arg}: expected one value"),
    ),
    (
        re.compile(r"argument (?P<arg>\S+): not allowed with argument (?P<other>\S+)"),
        N_("argument {arg}: not allowed with argument {other}"),
    ),
    (
        re.compile(r"one of the arguments (?P<args>.+) is required"),
        N_("one of the arguments {args} is required"),
    ),
)


def _argparse_message(message: str) -> str:
    """argparse's error ``message`` in the current language (known texts only)."""
    text = " ".join(message.split())
    for pattern, msgid in _ARGPARSE_ERRORS:
        m = pattern.fullmatch(text)
        if m:
            return _(msgid).format(**m.groupdict())
    return text


class _Formatter(argparse.HelpFormatter):
    """Help layout with a translated ``usage:`` prefix."""

    def add_usage(
        self,
        usage: str | None,
        actions: typing.Iterable[argparse.Action],
        groups: typing.Iterable[argparse._MutuallyExclusiveGroup],
        prefix: str | None = None,
    ) -> None:
        super().add_usage(usage, actions, groups, _("usage: ") if prefix is None else prefix)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``towerplan: error: ...``), like towerplan's own, and
    every text a user reads (help, section titles, usage, errors) through the catalogues."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        kwargs["add_help"] = False
        super().__init__(*args, **kwargs)
        self._positionals.title = _("positional arguments")
        self._optionals.title = _("options")
        self.add_argument(
            "-h",
            "--help",
            action="help",
            default=argparse.SUPPRESS,
            help=_("show this help message and exit"),
        )

    def error(self, message: str) -> typing.NoReturn:
        self.exit(
            EXIT_USER_ERROR,
            "towerplan: error: "
            + _("{message}; see '{prog} --help'").format(
                message=_argparse_message(message), prog=self.prog
            )
            + "\n",
        )


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="towerplan",
        description=_("Plan mobile towers (BTS) and telecom infrastructure from a scenario."),
    )
    p.add_argument(
        "--version",
        action="version",
        version=f"towerplan {__version__}",
        help=_("show the version number and exit"),
    )
    loud = p.add_mutually_exclusive_group()
    loud.add_argument(
        "-v", "--verbose", action="count", default=0, help=_("more log output (-vv: debug)")
    )
    loud.add_argument(
        "-q", "--quiet", action="store_true", help=_("only errors on stderr (no warnings)")
    )
    sub = p.add_subparsers(dest="command", required=True, title=_("commands"), metavar="COMMAND")

    _add_plan_parser(sub)

    ex = sub.add_parser(
        "export", help=_("export a plan's layers (GeoJSON, KML, SHP, CSV; WGS84/VN-2000)")
    )
    ex.add_argument("--from", dest="src", required=True, type=Path, help=_("a plan output folder"))
    ex.add_argument(
        "--out", type=Path, default=None, help=_("export folder (default FROM/exports)")
    )
    ex.add_argument(
        "--scenario", default=None, help=_("scenario for VN-2000 settings (default: the plan's)")
    )
    ex.add_argument(
        "--formats", default="gpkg,geojson,kml,shp,csv", help=_("comma-separated formats")
    )
    ex.add_argument(
        "--crs", default="wgs84,vn2000_utm,vn2000_tm3", help=_("comma-separated CRS targets")
    )
    ex.add_argument("--overwrite", action="store_true", help=_("replace a non-empty export folder"))

    ne = sub.add_parser(
        "need", help=_("fewest new sites for a target population coverage (set covering)")
    )
    ne.add_argument("--scenario", required=True, help=_(SCENARIO_HELP))
    ne.add_argument(
        "--coverage", type=float, required=True, help=_("target population coverage, e.g. 0.95")
    )
    ne.add_argument(
        "--radius", type=float, default=None, help=_("site radius in m (default: scenario)")
    )
    ne.add_argument("--from-scratch", action="store_true", help=_("ignore the existing sites"))
    ne.add_argument(
        "--time-limit",
        type=_positive_seconds,
        default=None,
        help=_("safety stop in seconds (default none; the solve is bounded by work, not time)"),
    )
    ne.add_argument(
        "--solver",
        choices=["auto", "exact", "heuristic"],
        default="auto",
        help=_("auto: exact MILP for small instances, else greedy with a Lagrangian lower bound"),
    )

    _add_batch_parser(sub)

    sc = sub.add_parser("scenarios", help=_("list the built-in scenarios"))
    sc.set_defaults(_noargs=True)

    va = sub.add_parser(
        "validate", help=_("validate a scenario and its input data without planning")
    )
    va.add_argument("--scenario", required=True, help=_(SCENARIO_HELP))
    return p


def _add_plan_parser(sub: Any) -> None:
    pl = sub.add_parser("plan", help=_("run the whole plan and write its outputs"))
    pl.add_argument(
        "--scenario",
        required=True,
        help=_(SCENARIO_HELP),
    )
    pl.add_argument("--out", required=True, type=Path, help=_("output folder (new or empty)"))
    pl.add_argument("--overwrite", action="store_true", help=_("replace a non-empty output folder"))
    pl.add_argument(
        "--solver",
        choices=["auto", "exact", "heuristic"],
        default=None,
        help=_("siting solver (default: the scenario's, 'auto')"),
    )
    pl.add_argument(
        "--time-limit",
        type=_positive_seconds,
        default=None,
        help=_(
            "siting safety stop in seconds (default: the scenario's sites.time_limit_s); the "
            "solve is bounded by deterministic work, a run this stop cuts is reported as not "
            "reproducible"
        ),
    )
    pl.add_argument(
        "--work-limit",
        type=_positive_factor,
        default=None,
        help=_(
            "multiplier of the siting solver's deterministic work budgets, e.g. 0.05 for a "
            "quick look (default: the scenario's sites.work_limit, 1.0)"
        ),
    )
    pl.add_argument("--seed", type=int, default=0, help=_("seed of every random step (default 0)"))
    pl.add_argument(
        "--base-plan",
        type=Path,
        default=None,
        help=_(
            "a finished plan output folder whose new sites are the base phase of a phased "
            "scenario (sets phasing.base_plan)"
        ),
    )
    pl.add_argument("--no-raster", action="store_true", help=_("skip the best-server GeoTIFF"))
    pl.add_argument("--no-maps", action="store_true", help=_("skip the HTML maps"))
    pl.add_argument(
        "--sheets", action="store_true", help=_("also render static PDF/PNG map sheets")
    )
    pl.add_argument(
        "--exports", action="store_true", help=_("also write WGS84/VN-2000 vector exports")
    )
    pl.add_argument(
        "--sheets-per-district",
        action="store_true",
        help=_("with --sheets: also each district's sheets (every theme but the choropleths)"),
    )
    pl.add_argument(
        "--jobs",
        type=_positive_count,
        default=None,
        help=_("with --sheets: processes that draw the sheets (default: one per core, at most 4)"),
    )
    pl.add_argument(
        "--lang",
        choices=list(LANGUAGES),
        default=None,
        help=_("output language (default: scenario's)"),
    )


def _add_batch_parser(sub: Any) -> None:
    ba = sub.add_parser(
        "batch", help=_("one scenario over many areas (provinces/districts) on Dask, or a sweep")
    )
    src = ba.add_mutually_exclusive_group(required=True)
    src.add_argument("--boundaries", type=Path, help=_("commune polygon layer (areas by --by)"))
    src.add_argument("--scenarios", nargs="+", type=Path, help=_("one area per scenario file"))
    ba.add_argument("--by", default="province", help=_("area column (province -> province_id)"))
    ba.add_argument("--areas", default=None, help=_("comma-separated area codes (default: all)"))
    ba.add_argument("--out", required=True, type=Path, help=_("batch output folder"))
    ba.add_argument("--scenario", default="cantho-2020", help=_("scenario template"))
    mode = ba.add_mutually_exclusive_group()
    mode.add_argument("--need", type=float, default=None, help=_("need run at this coverage"))
    mode.add_argument("--plan", action="store_true", help=_("full plan run per area"))
    ba.add_argument("--radius", type=float, default=None, help=_("site radius in m"))
    ba.add_argument("--cell-size", type=float, default=None, help=_("demand cell size in m"))
    ba.add_argument(
        "--sweep",
        type=Path,
        default=None,
        help=_("YAML of radius_m/coverage/cell_size_m/market_share lists"),
    )
    ba.add_argument("--calibrate", type=Path, default=None, help=_("CSV of area population totals"))
    ba.add_argument(
        "--calibrate-column",
        default="pop_gso_avg2009",
        help=_("population column of the --calibrate CSV"),
    )
    ba.add_argument(
        "--sites",
        type=Path,
        default=None,
        help=_("national site inventory (CSV lon/lat or points)"),
    )
    ba.add_argument(
        "--solver",
        choices=["auto", "exact", "heuristic"],
        default="auto",
        help=_("siting solver of every area (default auto)"),
    )
    ba.add_argument(
        "--time-limit", type=float, default=None, help=_("safety stop per area in s (default none)")
    )
    ba.add_argument("--scheduler", default=None, help=_("existing Dask scheduler tcp://HOST:8786"))
    ba.add_argument("--workers", type=int, default=None, help=_("LocalCluster workers (default 2)"))
    ba.add_argument("--memory-limit", default="2GB", help=_("LocalCluster memory per worker"))
    ba.add_argument("--resume", action="store_true", help=_("skip areas already complete"))
    ba.add_argument("--overwrite", action="store_true", help=_("rerun into a non-empty --out"))


class _OncePerMessage(logging.Filter):
    """Let each distinct warning text through once (the same warning from many places)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = " ".join(record.getMessage().split())
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def _warning_to_log(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """Python warnings as one log line (no source line), de-duplicated with the log."""
    name = filename.rsplit("/", 1)[-1].removesuffix(".py")
    text = message if isinstance(message, TowerplanWarning) else " ".join(str(message).split())
    logging.getLogger(f"towerplan.{name}" if "towerplan" in filename else "py.warnings").warning(
        "%s", text
    )


class _UserFormatter(logging.Formatter):
    """``LEVEL logger: message`` on one line; a :class:`TowerplanWarning` (logged as
    ``logger.warning("%s", w)`` by :func:`towerplan.errors.warn_user`) in the language
    ``language()`` returns, asked once, at the first such warning."""

    def __init__(self, language: Callable[[], str]) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self._language = language
        self._lang: str | None = None

    def format(self, record: logging.LogRecord) -> str:
        args = record.args
        if not (isinstance(args, tuple) and len(args) == 1 and record.msg == "%s"):
            return super().format(record)
        w = args[0]
        if not isinstance(w, TowerplanWarning):
            return super().format(record)
        if self._lang is None:
            self._lang = "en"  # a warning while the language is looked up stays English
            self._lang = self._language()
        with use_language(self._lang):
            text = " ".join(w.user_message(_, decimal_comma=self._lang == "vi").split())
        return f"{record.levelname} {record.name}: {text}"


def _setup_logging(
    verbosity: int, quiet: bool, language: Callable[[], str] = lambda: "en"
) -> tuple[logging.Handler, int]:
    """One stderr handler: warnings once each, one line each, translatable ones in
    ``language()``; returns what to undo."""
    if quiet:
        level = logging.ERROR
    else:
        level = (logging.WARNING, logging.INFO)[verbosity] if verbosity < 2 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_UserFormatter(language))
    handler.addFilter(_OncePerMessage())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    return handler, old_level


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated()


def _fidelity_block(summary: dict[str, Any]) -> str:
    f = summary["plan_fidelity"]
    lines = [
        _("Plan fidelity (mean serving radius):"),
        "  "
        + _("plan: {r} km at {n} sites over {a} km2").format(
            r=f["plan_radius_km"], n=f["plan_sites"], a=f["area_km2"]
        ),
    ]
    for conv, r in f["radius_km_at_total"].items():
        at_ex = f["radius_km_at_existing"][conv]
        ex = (
            _("{r} km at the existing sites; ").format(r=f"{at_ex:.3f}")
            if at_ex is not None
            else ""
        )
        lines.append(
            f"  {conv:<8} "
            + _("R = {r} km at {n} sites ({ex}{m} sites would give {p} km)").format(
                r=f"{r:.3f}",
                n=f["plan_sites"],
                ex=ex,
                m=f"{f['sites_for_plan_radius'][conv]:.0f}",
                p=f["plan_radius_km"],
            )
        )
    lines.append(
        "  -> "
        + _("the '{conv}' convention reproduces the plan's radius (off by {m} m)").format(
            conv=f["best_convention"], m=f"{f['best_abs_error_km'] * 1000:.0f}"
        )
    )
    return "\n".join(lines)


def _protected(name_or_path: str, scen: Scenario) -> list[Path]:
    """The scenario file and the inputs it names: --out must never replace them."""
    out = scen.input_paths()
    if Path(name_or_path).expanduser().is_file():
        out.append(Path(name_or_path).expanduser())
    return out


def _cmd_plan(args: argparse.Namespace) -> int:
    from towerplan.outputs.folder import check_out_dir
    from towerplan.plan import run_plan
    from towerplan.scenario import load_scenario

    scen = load_scenario(args.scenario)
    check_out_dir(args.out, args.overwrite, protected=_protected(args.scenario, scen))
    if args.lang:
        scen = dataclasses.replace(scen, language=args.lang)
    if args.base_plan is not None:
        scen = _with_base_plan(scen, args.base_plan)
    res = run_plan(
        scen,
        args.out,
        overwrite=args.overwrite,
        solver=args.solver,
        seed=args.seed,
        maps=not args.no_maps,
        sheets=args.sheets,
        exports=args.exports,
        best_server=not args.no_raster,
        time_limit_s=args.time_limit,
        work_limit=args.work_limit,
        sheets_per_district=args.sheets_per_district,
        jobs=args.jobs,
    )
    with use_language(scen.language):
        _plan_summary(res, args.out)
    return 0


def _with_base_plan(scen: Any, folder: Path) -> Any:
    """``scen`` with ``phasing.base_plan`` = ``folder`` (``--base-plan``)."""
    from towerplan.errors import N_, ScenarioError

    if scen.phasing.base_year is None:
        raise ScenarioError(
            msgid=N_(
                "--base-plan: scenario {name} is not phased; set phasing.base_year and "
                "phasing.periods, or drop --base-plan"
            ),
            name=scen.name,
        )
    ph = dataclasses.replace(scen.phasing, base_plan=str(folder.resolve()))
    return dataclasses.replace(scen, phasing=ph)


def _plan_summary(res: Any, out_dir: Path) -> None:
    from towerplan.inputs import DEMO_KIND

    s = res.summary
    out = sys.stdout
    if not s["siting"].get("reproducible", True):
        sys.stderr.write(
            _(
                "warning: the siting solve was cut by the --time-limit / sites.time_limit_s "
                "safety stop, so this plan may differ between runs; raise the limit or lower "
                "sites.work_limit"
            )
            + "\n"
        )
    if s["data_kind"] == DEMO_KIND:
        stamp = _(DEMO_STAMP_MSG)
        out.write(
            _("*** {stamp} (census boundaries and population; sites not surveyed) ***").format(
                stamp=stamp
            )
            + "\n"
        )
    out.write(
        _(
            "scenario {scenario} ({kind}): {existing} existing + {new} new ({dedicated} "
            "dedicated, {shared} shared) = {total} sites over {area} km2"
        ).format(
            scenario=s["scenario"],
            kind=data_text(s["data_kind"]),
            existing=fmt_number(s["existing_sites"]),
            new=fmt_number(s["new_sites"]),
            dedicated=fmt_number(s["new_dedicated"]),
            shared=fmt_number(s["new_shared"]),
            total=fmt_number(s["total_sites"]),
            area=fmt_number(s["area_km2"], 1),
        )
        + "\n"
    )
    out.write(
        _(
            "population {pop}; coverage (any operator, as `towerplan need`) {before} -> {after}; "
            "market-share-weighted (the siting objective) {wbefore} -> {wafter}; siting: {solver}"
        ).format(
            pop=fmt_number(s["population"]),
            before=fmt_percent(s["coverage_share_before"]),
            after=fmt_percent(s["coverage_share_after"]),
            wbefore=fmt_percent(s["coverage_share_weighted_before"]),
            wafter=fmt_percent(s["coverage_share_weighted_after"]),
            solver=_solver_text(s["siting"]),
        )
        + "\n"
    )
    out.write(_fidelity_block(s) + "\n")
    for key in (
        "sharing_rate_before",
        "sharing_rate_after",
        "underground_plan_consistent",
        "backhaul_fibre_km",
        "wifi_hotspots",
    ):
        if key in s:
            v = s[key]
            text = (
                fmt_percent(v)
                if key.startswith("sharing_rate") and isinstance(v, float)
                else value_label(str(v))
                if isinstance(v, bool)
                else fmt_number(v, 1)
                if isinstance(v, float)
                else str(v)
            )
            out.write(f"{column_label(key)}: {text}\n")
    out.write(
        _("outputs in {out} ({n} files, {s} s)").format(
            out=out_dir, n=len(res.files), s=fmt_number(s["runtime_s"], 1)
        )
        + "\n"
    )


def _cmd_export(args: argparse.Namespace) -> int:
    import json

    from towerplan.errors import DataFileError
    from towerplan.outputs import export
    from towerplan.outputs.folder import staged_output
    from towerplan.scenario import ExportSettings, load_scenario

    gpkg = args.src / "towerplan.gpkg"
    if not gpkg.is_file():
        raise DataFileError(
            msgid=N_("--from {src}: no towerplan.gpkg there; give a plan output folder"),
            src=args.src,
        )
    if args.scenario is not None:
        settings = load_scenario(args.scenario).export
    else:
        sp = args.src / "summary.json"
        stored = (
            json.loads(sp.read_text(encoding="utf-8")).get("export_settings")
            if sp.is_file()
            else None
        )
        settings = ExportSettings(**stored) if stored else ExportSettings()
    out = args.out or (args.src / "exports")
    protected = [gpkg] + ([Path(args.scenario)] if args.scenario else [])
    with staged_output(out, args.overwrite, protected=protected) as tmp:
        files = export.export_from_gpkg(
            gpkg,
            tmp,
            formats=tuple(f.strip() for f in args.formats.split(",") if f.strip()),
            crs_targets=tuple(c.strip() for c in args.crs.split(",") if c.strip()),
            settings=settings,
        )
    with use_language(_message_language(args)):
        sys.stdout.write(
            _("{n} files written to {out}").format(n=fmt_number(len(files)), out=out) + "\n"
        )
    return 0


def _cmd_need(args: argparse.Namespace) -> int:
    from towerplan.errors import ParameterError
    from towerplan.plan import coverage_need
    from towerplan.scenario import load_scenario

    if not 0.0 < args.coverage <= 1.0:
        raise ParameterError(
            msgid=N_("--coverage {coverage}: give a share between 0 and 1, e.g. 0.95 for 95 %"),
            coverage=args.coverage,
        )
    if args.radius is not None and args.radius <= 0:
        raise ParameterError(
            msgid=N_("--radius {radius}: the site radius must be > 0 m"),
            radius=args.radius,
        )
    scen = load_scenario(args.scenario)
    r = coverage_need(
        scen,
        args.coverage,
        radius_m=args.radius,
        from_scratch=args.from_scratch,
        solver=args.solver,
        time_limit_s=args.time_limit,
    )
    with use_language(scen.language):
        _need_summary(r)
    return 0


def _need_summary(r: dict[str, Any]) -> None:
    from towerplan.inputs import DEMO_KIND

    if r["data_kind"] == DEMO_KIND:
        sys.stdout.write(f"*** {_(DEMO_STAMP_MSG)} ***\n")
    if r["optimal"]:
        proof = _("proven minimum")
    else:
        proof = _("not proven minimal: at least {n} are needed (proven lower bound)").format(
            n=r["lower_bound_new_sites"]
        )
    if not r.get("reproducible", True):
        sys.stderr.write(
            _(
                "warning: the set-covering solve was cut by the --time-limit safety stop, so the "
                "answer may differ between runs; raise --time-limit"
            )
            + "\n"
        )
    sys.stdout.write(
        _(
            "{scenario}: {covered} population coverage (any operator) at {radius} m needs "
            "{new} new sites ({proof}) beside {existing} existing (which cover {existing_cov}, "
            "any operator) = {total} sites; {solver}"
        ).format(
            scenario=r["scenario"],
            covered=fmt_percent(r["covered_fraction"]),
            radius=f"{r['radius_m']:.0f}",
            new=r["new_sites"],
            proof=proof,
            existing=r["existing_sites"],
            existing_cov=fmt_percent(r["existing_coverage"]),
            total=r["total_sites"],
            solver=_solver_text(r),
        )
        + "\n  "
        + _(
            "note: any-operator coverage counts a person as covered by a site of any operator; "
            "`towerplan plan` maximises market-share-weighted coverage and reports both "
            "(summary.json coverage_share_after and coverage_share_weighted_after)"
        )
        + "\n"
    )


def _solver_text(siting: dict[str, Any]) -> str:
    """How the siting was solved: the solver's own account in English, else a translated
    summary from the structured fields (proven optimal / certified gap / what stopped it)."""
    used = str(siting.get("solver_used", ""))
    if current_language() == "en":
        return used
    if siting.get("proven_optimal") or siting.get("optimal"):
        text = _("proven optimal")
    elif isinstance(siting.get("gap"), int | float):
        text = _("best plan found, within {gap} of the optimum (certified bound)").format(
            gap=fmt_percent(float(siting["gap"]), 2)
        )
    else:
        text = _("best plan found (heuristic)")
    stop = siting.get("stopped_by")
    if stop == "work_limit":
        text += "; " + _("stopped by the work budget (sites.work_limit), reproducible")
    elif stop == "time_limit":
        text += "; " + _("stopped by the safety time limit (--time-limit), may differ between runs")
    return text


def _cmd_batch(args: argparse.Namespace) -> int:
    # the progress bar, the dashboard line and the summary in the user's language
    with use_language(_message_language(args)):
        return _batch(args)


def _batch(args: argparse.Namespace) -> int:
    from towerplan import batch
    from towerplan.errors import ParameterError
    from towerplan.scenario import load_scenario

    template = load_scenario(args.scenario)
    base = batch.AreaTask(
        mode="plan" if args.plan else "need",
        coverage=args.need if args.need is not None else 0.95,
        radius_m=args.radius,
        cell_size_m=args.cell_size,
        solver=args.solver,
        time_limit_s=args.time_limit,
    )
    tasks = batch.read_sweep(args.sweep, base, template) if args.sweep else [base]
    if args.scenarios:
        if args.sites:
            raise ParameterError(
                msgid=N_(
                    "--sites: not with --scenarios (each scenario file names its own sites); "
                    "drop --sites or use --boundaries"
                )
            )
        areas, report = batch.areas_from_scenarios(args.scenarios)
    else:
        areas, report = batch.areas_from_boundaries(
            args.boundaries,
            by=args.by,
            crs=template.crs,
            only=[c.strip() for c in args.areas.split(",")] if args.areas else None,
            calibrate=args.calibrate,
            calibrate_column=args.calibrate_column,
        )
        if args.sites:
            areas, report["sites"] = batch.attach_sites(areas, args.sites, template)
    res = batch.run_batch(
        areas,
        template,
        tasks,
        args.out,
        scheduler=args.scheduler,
        workers=args.workers,
        memory_limit=args.memory_limit,
        resume=args.resume,
        overwrite=args.overwrite,
        report=report,
        on_dashboard=lambda link: sys.stdout.write(
            _("Dask dashboard: {link}").format(link=link) + "\n"
        ),
    )
    s = res.summary
    sys.stdout.write(
        _(
            "{ok} of {n} runs ok ({failed} failed, {resumed} resumed) over {areas} areas in "
            "{wall} s on {workers} workers; new sites {sites}; outputs in {out}"
        ).format(
            ok=s["runs_ok"],
            n=s["runs"],
            failed=s["runs_failed"],
            resumed=s["runs_resumed"],
            areas=s["areas"],
            wall=f"{s['wall_s']:.1f}",
            workers=s["workers"],
            sites=f"{s.get('new_sites', 0):,}",
            out=args.out,
        )
        + "\n"
    )
    return 0 if s["runs_failed"] == 0 else 1


def _cmd_scenarios(args: argparse.Namespace) -> int:
    from towerplan.scenario import builtin_scenarios, load_scenario

    for name in builtin_scenarios():
        s = load_scenario(name)
        sys.stdout.write(f"{name}\t{s.title}\n")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from towerplan.inputs import readers as tio
    from towerplan.scenario import load_scenario

    scen = load_scenario(args.scenario)
    inputs = tio.load_inputs(scen)
    with use_language(scen.language):
        text = _(
            "scenario {name}: OK ({kind}; {districts} districts, {sites} existing sites, "
            "{pois} POIs)"
        ).format(
            name=scen.name,
            kind=data_text(inputs.data_kind),
            districts=fmt_number(len(inputs.districts)),
            sites=fmt_number(len(inputs.existing_sites)),
            pois=fmt_number(len(inputs.pois)),
        )
    sys.stdout.write(text + "\n")
    return 0


def _run(args: argparse.Namespace) -> int:
    handlers = {
        "plan": _cmd_plan,
        "export": _cmd_export,
        "need": _cmd_need,
        "batch": _cmd_batch,
        "scenarios": _cmd_scenarios,
        "validate": _cmd_validate,
    }
    try:
        return handlers[args.command](args)
    except TowerplanError as exc:
        lang = _message_language(args)
        with use_language(lang):
            msg = " ".join(exc.user_message(_, decimal_comma=lang == "vi").split())
        sys.stderr.write(f"towerplan: error: {msg}\n")
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        with use_language(_message_language(args)):
            sys.stderr.write(
                "towerplan: " + _("interrupted; nothing was written to the output folder") + "\n"
            )
        return 130
    except _Terminated:
        with use_language(_message_language(args)):
            sys.stderr.write(
                "towerplan: " + _("terminated; nothing was written to the output folder") + "\n"
            )
        return 143


def _message_language(args: argparse.Namespace) -> str:
    """Language of an error line: ``--lang``, else the scenario's (when it loads), else the
    environment's (``LANGUAGE`` / ``LC_ALL`` / ``LC_MESSAGES`` / ``LANG`` starting ``vi``).

    The ``towerplan: error:`` prefix stays as it is (scripts match it); the message after it
    is translated when it was raised with a ``msgid``.
    """
    lang = getattr(args, "lang", None)
    if lang:
        return str(lang)
    name = getattr(args, "scenario", None)
    if name:
        from towerplan.scenario import load_scenario

        try:
            return load_scenario(name).language
        except (TowerplanError, OSError):
            pass
    return _env_language()


def _env_language() -> str:
    """``vi`` when the environment's language (``LANGUAGE`` / ``LC_ALL`` / ``LC_MESSAGES`` /
    ``LANG``, the first one set) starts with ``vi``, else ``en``."""
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var, "")
        if value:
            return "vi" if value.lower().startswith("vi") else "en"
    return "en"


def _argv_language(argv: Sequence[str]) -> str:
    """Language of the help and usage errors: ``--lang vi|en`` anywhere in ``argv``, else the
    environment's (the scenario is not read before the arguments parse)."""
    for i, arg in enumerate(argv):
        value = arg[len("--lang=") :] if arg.startswith("--lang=") else None
        if arg == "--lang" and i + 1 < len(argv):
            value = argv[i + 1]
        if value in LANGUAGES:
            return value
    return _env_language()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``towerplan`` console script; returns the exit status.

    SIGTERM is handled like Ctrl-C (exit 143, outputs left untouched); warnings are
    shown once each, as one log line; ``-q`` shows errors only, ``-v``/``-vv`` more.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 on a user error, 130/143 when interrupted.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        with use_language(_argv_language(arguments)):
            args = _build_parser().parse_args(arguments)
    except SystemExit as exc:  # --help, --version, or a one-line usage error (exit 2)
        return exc.code if isinstance(exc.code, int) else 0
    handler, old_level = _setup_logging(args.verbose, args.quiet, lambda: _message_language(args))
    old_term = None
    try:
        old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave signals alone
        old_term = None
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_to_log
            return _run(args)
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(old_level)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
