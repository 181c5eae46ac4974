"""Scenarios: a city's plan targets, settings and data sources, loaded from YAML.

A scenario is the only place where a city enters towerplan.  The built-in
scenarios (``cantho-2020``, ``cantho-2030``) ship inside the package; any other
city is a YAML file with the same keys (``towerplan plan --scenario my.yaml``).

Loading validates strictly: unknown keys, wrong types, out-of-range shares and
inconsistent targets (``new_dedicated + new_shared != new``, ``existing + new
!= total``) raise :class:`~towerplan.errors.ScenarioError` naming the key.
"""

from __future__ import annotations

import codecs
import dataclasses
import functools
import logging
import math
import types
import typing
import unicodedata
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from towerplan.errors import N_, ScenarioError, Text

logger = logging.getLogger(__name__)

__all__ = [
    "BUILTIN_SCENARIOS",
    "Scenario",
    "builtin_scenarios",
    "load_scenario",
    "operator_key",
    "scenario_from_dict",
]


@dataclass(frozen=True)
class Operator:
    """A mobile network operator and its market share (0-1)."""

    name: str
    market_share: float
    aliases: tuple[str, ...] = ()
    """Other spellings of the operator in the data files (matched, like the name, without
    regard to case and diacritics), e.g. ``[VNPT, Vinaphone]`` for ``VNPT-VinaPhone``."""


@dataclass(frozen=True)
class SiteTargets:
    """Mobile-site targets of the plan and siting settings."""

    total: int
    existing: int
    new: int
    new_dedicated: int
    new_shared: int
    mean_serving_radius_km: float
    radius_convention: Literal["square", "circle", "hexagon"] = "square"
    coverage_radius_m: float = 650.0
    candidate_spacing_m: float = 500.0
    min_new_site_spacing_m: float = 300.0
    max_tenants: int = 3
    solver: Literal["auto", "exact", "heuristic"] = "auto"
    time_limit_s: float = 600.0
    """Wall-clock safety stop of the siting solve only; the solve is bounded by deterministic
    work (``work_limit``, ``max_nodes``).  A run it cuts says so (siting.stopped_by)."""
    mip_gap: float = 0.001
    work_limit: float = 1.0
    """Multiplier of every deterministic work budget of the siting solver (1.0 = default);
    below 1 also of the subgradient steps of the switching points' lower bound."""
    max_nodes: int = 2000
    """Branch-and-bound nodes of the full siting MILP (before ``work_limit`` scaling)."""
    radius_model: Literal["fixed", "link_budget"] = "fixed"
    """``fixed``: every site covers ``coverage_radius_m``.  ``link_budget``: each site's
    radius is the link-budget maximum cell radius (towerplan.propagation) for the clutter
    class at the site (from district type and population density), capped at
    ``max_radius_m``."""
    band_mhz: float = 1800.0
    antenna_height_m: float = 30.0
    max_radius_m: float = 3000.0


@dataclass(frozen=True)
class ColocationDistance:
    """Co-location search distance (m) by district type."""

    urban: float = 300.0
    rural: float = 800.0


@dataclass(frozen=True)
class UnitCosts:
    """Unit costs in VND (stated defaults, scenario parameters)."""

    new_dedicated_site: float = 1.2e9
    new_shared_site: float = 1.6e9
    colocation: float = 0.35e9
    active_ran_sharing: float = 0.15e9
    annual_tenant_opex: float = 0.12e9
    opex_years: float = 10.0
    """Years of ``annual_tenant_opex`` counted in life-cycle totals (sharing.cost_model)."""


@dataclass(frozen=True)
class SharingTargets:
    """Infrastructure-sharing targets and co-location settings."""

    target_min: float
    target_max: float
    colocation_distance_m: ColocationDistance = field(default_factory=ColocationDistance)
    unit_costs_vnd: UnitCosts = field(default_factory=UnitCosts)
    existing_shared_fraction: float = 0.2
    allow_add_tenant: bool = True
    """Let sharing.cheapest_colocations_to_target also add tenants to existing single-tenant
    structures (besides moving new dedicated builds onto existing structures)."""
    colocation_objective: Literal["outlay", "net_cost"] = "outlay"
    """What sharing.cheapest_colocations_to_target minimises (see its docstring)."""


@dataclass(frozen=True)
class UndergroundingTargets:
    """Outer-plant cable undergrounding targets (shares 0-1)."""

    city_min: float
    city_max: float
    urban_min: float
    rural_min: float
    start_year: int = 2016
    current_urban: float = 0.25
    current_rural: float = 0.05
    cable_km_per_road_km_urban: float = 2.0
    cable_km_per_road_km_rural: float = 1.0
    road_class_factor: dict[str, float] = field(
        default_factory=lambda: {"national": 1.5, "provincial": 1.25, "local": 1.0, "other": 1.0}
    )
    """Multiplier of the cable-km per road-km by ``road_class`` (stated assumption: trunk
    cables follow the main roads); classes not listed use ``other``."""
    current_by_district: dict[str, float] = field(default_factory=dict)
    """Current underground share by district name; overrides current_urban/current_rural."""
    other_milestones: tuple[str, ...] = ()
    """Other scenarios (built-in names or YAML paths) whose year and undergrounding/fibre
    targets are further milestones of the same trajectory (e.g. cantho-2030 for cantho-2020)."""


@dataclass(frozen=True)
class FibreTargets:
    """Optical-fibre share of the outer plant (0-1)."""

    min: float
    max: float = 1.0
    urban_min: float | None = None
    """Fibre target of urban districts (quận); default ``min`` (the plan gives one city-wide
    range); with ``rural_min`` the city-wide range is checked like undergrounding's."""
    rural_min: float | None = None
    current: float = 0.10
    current_by_district: dict[str, float] = field(default_factory=dict)
    """Current fibre share by district name; overrides ``current``."""
    backhaul_max_snap_m: float = 500.0
    """Sites farther than this from the road graph get a straight-line backhaul (flagged)."""
    backhaul_snap_tolerance_m: float = 1.0
    """Road-line end points closer than this are joined into one graph node."""


@dataclass(frozen=True)
class WifiSettings:
    """Public Wi-Fi hotspot settings."""

    categories: tuple[str, ...] = ("tourism", "hospital", "school", "admin_centre", "city_centre")
    hotspot_radius_m: float = 100.0
    city_centre_radius_m: float = 500.0
    """Radius of the default city-centre disc (wifi.default_city_centre) when no polygon is given."""
    city_centre_grid_m: float | None = None
    """Spacing of the city-centre grid of demand / candidate points; default = hotspot radius."""
    solver: Literal["auto", "exact", "heuristic"] = "auto"
    time_limit_s: float = 300.0
    """Wall-clock safety stop of the hotspot set cover (bounded by nodes otherwise)."""


@dataclass(frozen=True)
class SubscriberTargets:
    """Subscriber densities per 100 people."""

    mobile_per_100: float
    fixed_broadband_per_100: float
    mobile_broadband_per_100: float


@dataclass(frozen=True)
class Technology:
    """A radio-access technology layer of every site (capacity model, :mod:`towerplan.capacity`)."""

    name: str
    subscriber_share: float
    """Share (0-1) of the mobile-broadband subscriptions carried on this technology."""
    monthly_gb_per_subscriber: float
    """Mobile data per subscription per month (GB) on this technology."""
    spectral_efficiency_bps_hz: float
    """Mean downlink spectral efficiency per sector (bit/s/Hz)."""
    bandwidth_mhz: float
    """Spectrum deployed per sector of a site on this technology (MHz, all tenants)."""


@dataclass(frozen=True)
class CapacitySettings:
    """Capacity-driven demand: busy-hour traffic against site capacity (stated assumptions)."""

    technologies: tuple[Technology, ...] = (Technology("4G", 1.0, 8.0, 2.2, 40.0),)
    busy_hour_share: float = 0.08
    """Share of a day's traffic carried in the busy hour."""
    days_per_month: float = 30.0
    sectors_per_site: int = 3
    max_utilisation: float = 0.7
    """Busy-hour load a sector may carry, as a share of its capacity."""


@dataclass(frozen=True)
class PhasePeriod:
    """A build period of the phased plan ending in ``year``."""

    year: int
    budget: int | None = None
    """New structures built in the period; ``None``: the 2030 need spread by period length."""


@dataclass(frozen=True)
class PhasingSettings:
    """Phased build-out after the scenario's site targets (:mod:`towerplan.siting.phasing`).

    ``sites.new`` is built by ``base_year`` (the base phase); the periods after it add
    the structures the final year needs for coverage (``coverage_target``) and capacity.
    """

    base_year: int | None = None
    """Year by which ``sites.new`` are built; ``None``: no phasing (one-shot plan)."""
    periods: tuple[PhasePeriod, ...] = ()
    coverage_target: float = 0.99
    """Population share covered (any operator) in the last period: the coverage-driven need."""
    capacity_weight: float = 0.01
    """Objective value of one Mbps of busy-hour traffic within a new site's radius, per person
    covered (places capacity sites at traffic hot spots)."""
    mip_gap: float = 0.001
    max_nodes: int = 2000
    """Branch-and-bound node limit of the multi-period model (bounds work, not time)."""
    time_limit_s: float = 600.0
    """Safety limit only; a run it cuts says so in summary.json (``phasing.stopped_by``)."""
    base_scenario: str | None = None
    """Scenario (built-in name or path) whose plan is the base phase: run first through the
    same pipeline (same seed and work limits), its sites all kept; ``None``: site
    ``sites.new`` on this scenario's demand."""
    base_plan: str | None = None
    """A finished plan output folder (or its ``towerplan.gpkg``) whose ``proposed_sites``
    are the base phase (CLI ``--base-plan``); wins over ``base_scenario``."""


@dataclass(frozen=True)
class SwitchingSettings:
    """Switching points of the core network (:mod:`towerplan.infrastructure.switching`)."""

    new_by_year: dict[str, int] = field(default_factory=dict)
    """New switching points by milestone year, e.g. ``{"2020": 29, "2030": 24}``."""
    grid_m: float = 1000.0
    """Spacing of the demand aggregation / candidate lattice."""
    bts_line_equivalents: float = 100.0
    """Demand weight of one BTS backhaul, in fixed-broadband lines."""
    development_zone_factor: float = 2.0
    """Demand multiplier inside development zones (``data.development_zones``) for years after
    the first milestone: biases new points to new residential and urban areas."""


@dataclass(frozen=True)
class PopulationSettings:
    """Projection of base-year population to the scenario year."""

    base_year: int = 2009
    annual_growth: float = 0.0


@dataclass(frozen=True)
class DemandSettings:
    """Demand-grid settings."""

    cell_size_m: float = 100.0
    method: Literal["area_weighted", "dasymetric"] = "area_weighted"
    max_density_km2: float = 1.5e6
    """Plausibility limit: population density (people/km2) no input polygon, pixel or grid
    cell may exceed.  Default 1.5 million/km2, above the densest place ever recorded
    (Kowloon Walled City, 1987: about 33,000 people on 2.6 ha, i.e. about 1.3 million/km2;
    source: Wikipedia "Kowloon Walled City", citing the 1987 Hong Kong government survey)."""


@dataclass(frozen=True)
class ExportSettings:
    """Export settings: VN-2000 provincial TM-3 zone (Circular 973/2001/TT-TCĐC)."""

    vn2000_central_meridian: float = 105.0
    vn2000_utm_epsg: int = 3405
    vn2000_datum_transformation: str = "EPSG:6960"
    """VN-2000 -> WGS 84 operation (EPSG:6960: the 7 parameters of Decision 05/2007/QĐ-BTNMT)."""


@dataclass(frozen=True)
class TitleBlock:
    """Title block of the map sheets (hồ sơ thẩm định): who made them, for whom, when."""

    agency: str = ""
    """Issuing agency, e.g. "Sở Thông tin và Truyền thông thành phố Cần Thơ"."""
    project: str = ""
    """Project name; default the scenario title."""
    date: str = ""
    """Date printed on every sheet (free text, e.g. "12/2015"); default the day of the run."""
    prepared_by: str = ""
    checked_by: str = ""
    approved_by: str = ""
    first_sheet_number: int = 1
    """Number of the first sheet of the set (the others follow)."""
    sheet_count: int | None = None
    """Sheets in the whole dossier; default the number of sheets towerplan writes."""


@dataclass(frozen=True)
class LayerSource:
    """A vector or raster file and how to read it.

    ``columns`` maps towerplan's names (e.g. ``name``, ``code``, ``type``,
    ``population``, ``lon``, ``lat``, ``operator``) to the file's column names.
    """

    path: str
    layer: str | None = None
    format: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    category: str | None = None
    crs: str | None = None
    encoding: str | None = None
    """Text encoding of the attributes (Shapefile .dbf without .cpg, CSV) when not UTF-8,
    e.g. ``cp1258`` (Windows Vietnamese); overrides ``data.encoding``."""


@dataclass(frozen=True)
class OpenCellidSettings:
    """How OpenCelliD cells are clustered into physical structures (towerplan.inputs.opencellid).

    Defaults measured on synthetic towers with realistic position error (cells of one
    tower scattered with sigma 30-100 m, 1-6 cells per operator; tests/test_io.py and
    scripts/bench_opencellid.py): see ``cluster_cells_to_sites``."""

    cluster_distance_m: float = 250.0
    """One operator's cells of one tower: Ward linkage at twice this distance; operators'
    cell groups whose centres lie within this distance share one structure."""
    min_cells: int = 1
    """Cells a structure needs; clusters with fewer cells are dropped (counted in the
    summary).  1 keeps a lone cell as a structure."""


@dataclass(frozen=True)
class DataSources:
    """Where the scenario's data come from: the built-in demo, or files."""

    kind: Literal["demo", "files"] = "demo"
    label: str = "user-data"
    districts: LayerSource | None = None
    population: LayerSource | None = None
    existing_sites: LayerSource | None = None
    pois: tuple[LayerSource, ...] = ()
    roads: LayerSource | None = None
    development_zones: LayerSource | None = None
    """Optional polygons of new residential / urban areas (switching points are biased there)."""
    switching_points: LayerSource | None = None
    """Optional points of existing switching points (locked; ``columns`` may map ``name``)."""
    candidates: LayerSource | None = None
    """Optional user file of candidate site locations (points; ``columns`` may map ``cost``,
    ``priority``, ``max_tenants``), added to the grid and co-location candidates."""
    repair_geometries: bool = False
    urban_type_values: tuple[str, ...] = ("quận", "quan", "urban", "thành phố", "thị xã")
    rural_type_values: tuple[str, ...] = ("huyện", "huyen", "rural")
    encoding: str | None = None
    """Text encoding of every layer's attributes when not UTF-8 (``LayerSource.encoding``
    overrides it per layer), e.g. ``cp1258``."""
    unknown_operators: Literal["error", "ignore"] = "error"
    """An operator or tenant name in the data that matches no scenario operator (nor its
    aliases): ``error`` (default) stops with the value and rows; ``ignore`` drops it from
    coverage and sharing and counts it in summary.json."""
    outside: Literal["error", "drop"] = "error"
    """Points (sites, POIs, candidates) outside the study area: ``error`` (default, with a
    lon/lat-swap hint) or ``drop`` (counted in summary.json and warned once)."""
    study_buffer_m: float = 2000.0
    """Points within this distance of the districts count as inside the study area."""
    opencellid: OpenCellidSettings = field(default_factory=OpenCellidSettings)


@dataclass(frozen=True)
class Scenario:
    """A planning scenario: targets, settings and data sources.

    Attributes
    ----------
    name, title, source : str
        Identifier, human title and citation of the plan.
    year : int
        Target year.
    crs : str
        Working metric CRS for all distances and areas.
    base_dir : str
        Folder that relative data paths are resolved against.
    """

    name: str
    title: str
    source: str
    year: int
    sites: SiteTargets
    operators: tuple[Operator, ...]
    sharing: SharingTargets
    undergrounding: UndergroundingTargets
    fibre: FibreTargets
    subscribers: SubscriberTargets
    wifi: WifiSettings = field(default_factory=WifiSettings)
    capacity: CapacitySettings = field(default_factory=CapacitySettings)
    phasing: PhasingSettings = field(default_factory=PhasingSettings)
    switching: SwitchingSettings = field(default_factory=SwitchingSettings)
    population: PopulationSettings = field(default_factory=PopulationSettings)
    demand: DemandSettings = field(default_factory=DemandSettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    data: DataSources = field(default_factory=DataSources)
    language: Literal["vi", "en"] = "en"
    """Language of maps, sheets, exports and CLI summaries (gettext catalogues; CLI --lang)."""
    title_block: TitleBlock = field(default_factory=TitleBlock)
    crs: str = "EPSG:32648"
    base_dir: str = "."

    @property
    def operator_names(self) -> list[str]:
        """Operator names in scenario order."""
        return [o.name for o in self.operators]

    @property
    def market_shares(self) -> dict[str, float]:
        """Operator name -> market share."""
        return {o.name: o.market_share for o in self.operators}

    def resolve(self, path: str) -> Path:
        """Resolve a data path relative to the scenario file's folder.

        Parameters
        ----------
        path : str
            Path as written in the scenario.

        Returns
        -------
        Path
            Absolute path.
        """
        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p

    def input_paths(self) -> list[Path]:
        """The scenario's folder and every data file it names (never to be overwritten).

        Returns
        -------
        list of Path
            Folder and data files.
        """
        out = [Path(self.base_dir)]
        d = self.data
        for src in (d.districts, d.population, d.existing_sites, d.roads, d.candidates, *d.pois):
            if src is not None:
                out.append(self.resolve(src.path))
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (for summary.json).

        Returns
        -------
        dict
            JSON-serialisable settings.
        """
        d = dataclasses.asdict(self)
        d.pop("base_dir", None)
        return d


BUILTIN_SCENARIOS = ("cantho-2020", "cantho-2030")


def builtin_scenarios() -> list[str]:
    """Names of the scenarios shipped with the package.

    Returns
    -------
    list of str
        Sorted names, e.g. ``cantho-2020``.
    """
    files = resources.files("towerplan") / "scenarios"
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".yaml"))


SCENARIO = Text(N_("scenario"))
"""Default name of a scenario given as a mapping, in its error messages."""


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load and validate a scenario by built-in name or YAML path.

    Parameters
    ----------
    name_or_path : str or Path
        A built-in name (``cantho-2020``) or a path to a YAML file.

    Returns
    -------
    Scenario

    Raises
    ------
    ScenarioError
        Unknown scenario, unreadable YAML, unknown keys, wrong types or
        inconsistent targets.
    """
    text: str
    base_dir: Path
    s = str(name_or_path)
    path = Path(s).expanduser()
    if s in builtin_scenarios():
        res = resources.files("towerplan") / "scenarios" / f"{s}.yaml"
        text = res.read_text(encoding="utf-8")
        base_dir = Path.cwd()
        origin = Text(N_("built-in scenario '{name}'"), name=s)
    elif path.suffix.lower() in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ScenarioError(
                msgid=N_(
                    "scenario file {file}: not found; give an existing YAML file or one of the "
                    "built-in scenarios {builtin}"
                ),
                file=s,
                builtin=builtin_scenarios(),
            )
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ScenarioError(
                msgid=N_(
                    "scenario file {file}: not UTF-8 text (byte {byte}: {reason}); save it as "
                    "UTF-8 (most editors: 'Save with encoding' / 'UTF-8')"
                ),
                file=s,
                byte=exc.start,
                reason=exc.reason,
            ) from None
        except OSError as exc:
            raise ScenarioError(
                msgid=N_("scenario file {file}: cannot read it ({problem})"),
                file=s,
                problem=exc.strerror,
            ) from None
        base_dir = path.resolve().parent
        origin = Text(N_("scenario file {file}"), file=s)
    else:
        raise ScenarioError(
            msgid=N_(
                "unknown scenario '{name}'; use one of the built-in scenarios {builtin} or a "
                "path to a YAML file"
            ),
            name=s,
            builtin=builtin_scenarios(),
        )
    try:
        raw = _yaml_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(
            msgid=N_("{origin}: invalid YAML ({problem}); fix the syntax"),
            origin=origin,
            problem=exc,
        ) from None
    if not isinstance(raw, dict):
        raise ScenarioError(
            msgid=N_("{origin}: the file must hold a mapping of keys, got {type}"),
            origin=origin,
            type=type(raw).__name__,
        )
    raw = dict(raw)
    raw.setdefault("base_dir", str(base_dir))
    scen = scenario_from_dict(raw, origin=origin)
    logger.info("loaded %s (%s)", origin, scen.title)
    return scen


def scenario_from_dict(raw: dict[str, Any], origin: str = SCENARIO) -> Scenario:
    """Build and validate a :class:`Scenario` from a plain mapping.

    Parameters
    ----------
    raw : dict
        Parsed YAML.
    origin : str
        Where it came from, used in error messages.

    Returns
    -------
    Scenario
        Validated scenario.
    """
    scen = _build(Scenario, raw, origin, "")
    _check_consistency(scen, origin)
    return scen


# --------------------------------------------------------------------------- internals


def _yaml_load(text: str) -> Any:
    """``yaml.safe_load(text)``, parsed by libyaml when PyYAML has it (the same data, ~10x
    faster); a document libyaml rejects goes to the pure-Python parser, whose error
    message shows the offending line."""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return yaml.load(text, Loader=fast)  # CSafeLoader: a safe loader
        except yaml.YAMLError:
            pass
    return yaml.safe_load(text)


_type_hints = functools.cache(typing.get_type_hints)
"""Resolved annotations of a scenario dataclass (read-only), once per class."""


def _build(cls: type, raw: Any, origin: str, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ScenarioError(
            msgid=N_("{origin}: key '{root}' must be a mapping, got {raw}"),
            origin=origin,
            root=prefix.rstrip(".") or "<root>",
            raw=repr(raw),
        )
    hints = _type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ScenarioError(
            msgid=N_("{origin}: unknown key '{prefix}{unknown}'; allowed keys here: {fields}"),
            origin=origin,
            prefix=prefix,
            unknown=unknown[0],
            fields=sorted(fields),
        )
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = f"{prefix}{name}"
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ScenarioError(
                    msgid=N_("{origin}: required key '{key}' is missing"), origin=origin, key=key
                )
            continue
        kwargs[name] = _convert(hints[name], raw[name], origin, key)
    return cls(**kwargs)


def _convert(tp: Any, value: Any, origin: str, key: str) -> Any:
    """``value`` checked and converted to the type ``tp`` of scenario key ``key``."""
    origin_tp = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin_tp in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        errors: list[ScenarioError] = []
        for a in non_none:
            try:
                return _convert(a, value, origin, key)
            except ScenarioError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
        raise ScenarioError(msgid=N_("{origin}: bad value for '{key}'"), origin=origin, key=key)
    if origin_tp is Literal:
        if value not in args:
            raise ScenarioError(
                msgid=N_("{origin}: key '{key}' must be one of {allowed}, got {value}"),
                origin=origin,
                key=key,
                allowed=list(args),
                value=repr(value),
            )
        return value
    if origin_tp is tuple:
        if not isinstance(value, list | tuple):
            raise ScenarioError(
                msgid=N_("{origin}: key '{key}' must be a list, got {value}"),
                origin=origin,
                key=key,
                value=repr(value),
            )
        return tuple(_convert(args[0], v, origin, f"{key}[{i}]") for i, v in enumerate(value))
    if origin_tp is dict:
        if not isinstance(value, dict):
            raise ScenarioError(
                msgid=N_("{origin}: key '{key}' must be a mapping, got {value}"),
                origin=origin,
                key=key,
                value=repr(value),
            )
        return {str(k): _convert(args[1], v, origin, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, origin, f"{key}.")  # type: ignore[arg-type]
    return _convert_scalar(tp, value, origin, key)


def _convert_scalar(tp: Any, value: Any, origin: str, key: str) -> Any:
    """``value`` checked against the scalar type ``tp`` (bool, int, float, str; others as is)."""
    if tp is bool:
        if not isinstance(value, bool):
            raise ScenarioError(
                msgid=N_("{origin}: key '{key}' must be true or false, got {value}"),
                origin=origin,
                key=key,
                value=repr(value),
            )
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(
                msgid=N_("{origin}: key '{key}' must be a whole number, got {value}"),
                origin=origin,
                key=key,
                value=repr(value),
            )
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ScenarioError(
                msgid=N_("{origin}: key '{key}' must be a number, got {value}"),
                origin=origin,
                key=key,
                value=repr(value),
            )
        if not math.isfinite(value):
            raise ScenarioError(
                msgid=N_(
                    "{origin}: key '{key}' = {value} is not a finite number; give a finite value"
                ),
                origin=origin,
                key=key,
                value=repr(value),
            )
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ScenarioError(
                msgid=N_("{origin}: key '{key}' must be text, got {value}"),
                origin=origin,
                key=key,
                value=repr(value),
            )
        return value
    return value


def operator_key(name: str) -> str:
    """Operator name for matching: case-, diacritic-, space- and punctuation-insensitive.

    Parameters
    ----------
    name : str
        Operator name as written.

    Returns
    -------
    str
        Normalised key.
    """
    text = unicodedata.normalize("NFKD", str(name).replace("đ", "d").replace("Đ", "D"))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def _encodings(s: Scenario) -> list[tuple[str, str]]:
    d = s.data
    out = [("data.encoding", d.encoding)] if d.encoding else []
    named = [("districts", d.districts), ("population", d.population)]
    named += [("existing_sites", d.existing_sites), ("roads", d.roads)]
    named += [("candidates", d.candidates)] + [(f"pois[{i}]", p) for i, p in enumerate(d.pois)]
    for key, src in named:
        if src is not None and src.encoding:
            out.append((f"data.{key}.encoding", src.encoding))
    return out


def _share(origin: str, key: str, v: float) -> None:
    if not 0.0 <= v <= 1.0:
        raise ScenarioError(
            msgid=N_(
                "{origin}: key '{key}' = {v} is not a share between 0 and 1 (targets above "
                "100 % are impossible); write percentages as fractions, e.g. 0.45"
            ),
            origin=origin,
            key=key,
            v=v,
        )


def _check_title_block(s: Scenario, origin: str) -> None:
    tb = s.title_block
    if tb.first_sheet_number < 1:
        raise ScenarioError(
            msgid=N_(
                "{origin}: key 'title_block.first_sheet_number' = {tb_first_sheet_number} "
                "must be >= 1; sheets are numbered from 1"
            ),
            origin=origin,
            tb_first_sheet_number=tb.first_sheet_number,
        )
    if tb.sheet_count is not None and tb.sheet_count < tb.first_sheet_number:
        raise ScenarioError(
            msgid=N_(
                "{origin}: key 'title_block.sheet_count' = {tb_sheet_count} is below "
                "'title_block.first_sheet_number' ({tb_first_sheet_number}); give the number "
                "of sheets in the whole dossier, or leave it out to count the sheets written"
            ),
            origin=origin,
            tb_sheet_count=tb.sheet_count,
            tb_first_sheet_number=tb.first_sheet_number,
        )


def _check_consistency(s: Scenario, origin: str) -> None:
    _check_title_block(s, origin)
    _check_sites(s, origin)
    _check_operators(s, origin)
    _check_shares(s, origin)
    _check_capacity(s, origin)
    _check_phasing(s, origin)
    for key, v in (
        ("demand.cell_size_m", s.demand.cell_size_m),
        ("demand.max_density_km2", s.demand.max_density_km2),
        ("wifi.time_limit_s", s.wifi.time_limit_s),
        ("data.opencellid.cluster_distance_m", s.data.opencellid.cluster_distance_m),
    ):
        if v <= 0:
            raise ScenarioError(
                msgid=N_("{origin}: key '{key}' = {v} must be > 0"), origin=origin, key=key, v=v
            )
    if s.data.opencellid.min_cells < 1:
        raise ScenarioError(
            msgid=N_("{origin}: key 'data.opencellid.min_cells' must be >= 1"), origin=origin
        )
    if s.data.study_buffer_m < 0:
        raise ScenarioError(
            msgid=N_("{origin}: key 'data.study_buffer_m' must be >= 0"), origin=origin
        )
    for src_key, enc in _encodings(s):
        try:
            codecs.lookup(enc)
        except LookupError:
            raise ScenarioError(
                msgid=N_(
                    "{origin}: key '{src_key}' = {enc} is not a text encoding Python knows; give "
                    "e.g. 'cp1258' (Windows Vietnamese), 'utf-8' or 'latin-1'"
                ),
                origin=origin,
                src_key=src_key,
                enc=repr(enc),
            ) from None
    if s.wifi.hotspot_radius_m <= 0:
        raise ScenarioError(
            msgid=N_("{origin}: key 'wifi.hotspot_radius_m' must be > 0"), origin=origin
        )
    if s.data.kind == "files" and s.data.districts is None:
        raise ScenarioError(
            msgid=N_(
                "{origin}: data.kind is 'files' but 'data.districts' is missing; name the "
                "district file"
            ),
            origin=origin,
        )
    from pyproj import CRS
    from pyproj.exceptions import CRSError as _PyprojCRSError

    try:
        crs = CRS.from_user_input(s.crs)
    except _PyprojCRSError:
        raise ScenarioError(
            msgid=N_("{origin}: key 'crs' = {crs} is not a CRS pyproj knows"),
            origin=origin,
            crs=repr(s.crs),
        ) from None
    if not crs.is_projected:
        raise ScenarioError(
            msgid=N_("{origin}: key 'crs' = {crs} is geographic; choose a metric CRS"),
            origin=origin,
            crs=repr(s.crs),
        )


def _check_sites(s: Scenario, origin: str) -> None:
    """The ``sites`` section: counts add up, positive settings, quotas vs tenancy."""
    t = s.sites
    for key in ("total", "existing", "new", "new_dedicated", "new_shared", "max_tenants"):
        if getattr(t, key) < 0:
            raise ScenarioError(
                msgid=N_("{origin}: key 'sites.{key}' = {t} must be >= 0"),
                origin=origin,
                key=key,
                t=getattr(t, key),
            )
    if t.new_dedicated + t.new_shared != t.new:
        raise ScenarioError(
            msgid=N_(
                "{origin}: inconsistent targets: sites.new_dedicated ({t_new_dedicated}) + "
                "sites.new_shared ({t_new_shared}) = {sum} != sites.new ({t_new}); "
                "make them add up"
            ),
            origin=origin,
            t_new_dedicated=t.new_dedicated,
            t_new_shared=t.new_shared,
            sum=t.new_dedicated + t.new_shared,
            t_new=t.new,
        )
    if t.existing + t.new != t.total:
        raise ScenarioError(
            msgid=N_(
                "{origin}: inconsistent targets: sites.existing ({t_existing}) + sites.new "
                "({t_new}) = {sum} != sites.total ({t_total}); make them add up"
            ),
            origin=origin,
            t_existing=t.existing,
            t_new=t.new,
            sum=t.existing + t.new,
            t_total=t.total,
        )
    for key in (
        "mean_serving_radius_km",
        "coverage_radius_m",
        "candidate_spacing_m",
        "time_limit_s",
        "work_limit",
    ):
        v = getattr(t, key)
        if math.isnan(v) or v <= 0 or (key == "work_limit" and math.isinf(v)):
            raise ScenarioError(
                msgid=N_("{origin}: key 'sites.{key}' = {v} must be a finite number > 0")
                if key == "work_limit"
                else N_("{origin}: key 'sites.{key}' = {v} must be a number > 0"),
                origin=origin,
                key=key,
                v=v,
            )
    if t.max_nodes < 0:
        raise ScenarioError(
            msgid=N_("{origin}: key 'sites.max_nodes' = {t_max_nodes} must be >= 0"),
            origin=origin,
            t_max_nodes=t.max_nodes,
        )
    if math.isnan(t.mip_gap) or not 0 <= t.mip_gap < 1:
        raise ScenarioError(
            msgid=N_("{origin}: key 'sites.mip_gap' = {t_mip_gap} must be in [0, 1)"),
            origin=origin,
            t_mip_gap=t.mip_gap,
        )
    if t.max_tenants < 2 and t.new_shared > 0:
        raise ScenarioError(
            msgid=N_(
                "{origin}: sites.max_tenants = {t_max_tenants} but sites.new_shared = "
                "{t_new_shared}; a shared site needs at least 2 tenants"
            ),
            origin=origin,
            t_max_tenants=t.max_tenants,
            t_new_shared=t.new_shared,
        )


def _check_operators(s: Scenario, origin: str) -> None:
    """The ``operators``: distinct names and aliases, market shares adding up to 1."""
    t = s.sites
    if not s.operators:
        raise ScenarioError(
            msgid=N_("{origin}: key 'operators' must list at least one operator"), origin=origin
        )
    seen: dict[str, str] = {}
    for o in s.operators:
        for spelling in (o.name, *o.aliases):
            k = operator_key(spelling)
            if k in seen:
                raise ScenarioError(
                    msgid=N_(
                        "{origin}: key 'operators': '{spelling}' (of {o_name}) is the same name as "
                        "'{seen}' once case and diacritics are ignored; give each operator distinct "
                        "names and aliases"
                    ),
                    origin=origin,
                    spelling=spelling,
                    o_name=o.name,
                    seen=seen[k],
                )
            seen[k] = spelling
    for i, o in enumerate(s.operators):
        _share(origin, f"operators[{i}].market_share", o.market_share)
    total_share = sum(o.market_share for o in s.operators)
    if abs(total_share - 1.0) > 0.01:
        raise ScenarioError(
            msgid=N_(
                "{origin}: operator market shares add up to {total_share:.3f}, not 1; fix "
                "'operators'"
            ),
            origin=origin,
            total_share=total_share,
        )
    if t.new_shared > 0 and len(s.operators) < 2:
        raise ScenarioError(
            msgid=N_(
                "{origin}: sites.new_shared = {t_new_shared} needs at least 2 operators in "
                "'operators'"
            ),
            origin=origin,
            t_new_shared=t.new_shared,
        )


def _check_shares(s: Scenario, origin: str) -> None:
    """Shares of the sharing, undergrounding and fibre sections; unit costs."""
    for sec, keys in (
        ("sharing", ("target_min", "target_max", "existing_shared_fraction")),
        (
            "undergrounding",
            ("city_min", "city_max", "urban_min", "rural_min", "current_urban", "current_rural"),
        ),
        ("fibre", ("min", "max", "current", "urban_min", "rural_min")),
    ):
        obj = getattr(s, sec)
        for k in keys:
            if getattr(obj, k) is not None:
                _share(origin, f"{sec}.{k}", getattr(obj, k))
    for sec, lo, hi in (
        ("sharing", "target_min", "target_max"),
        ("undergrounding", "city_min", "city_max"),
        ("fibre", "min", "max"),
    ):
        obj = getattr(s, sec)
        if getattr(obj, lo) > getattr(obj, hi):
            raise ScenarioError(
                msgid=N_("{origin}: key '{sec}.{lo}' is larger than '{sec}.{hi}'"),
                origin=origin,
                sec=sec,
                lo=lo,
                hi=hi,
            )
    for k, v in dataclasses.asdict(s.sharing.unit_costs_vnd).items():
        if v < 0:
            raise ScenarioError(
                msgid=N_(
                    "{origin}: key 'sharing.unit_costs_vnd.{k}' = {v} is negative; unit costs "
                    "must be >= 0"
                ),
                origin=origin,
                k=k,
                v=v,
            )


def _check_capacity(s: Scenario, origin: str) -> None:
    c = s.capacity
    if not c.technologies:
        raise ScenarioError(
            msgid=N_("{origin}: key 'capacity.technologies' must list a technology"), origin=origin
        )
    for i, t in enumerate(c.technologies):
        key = f"capacity.technologies[{i}]"
        _share(origin, f"{key}.subscriber_share", t.subscriber_share)
        for k in ("monthly_gb_per_subscriber",):
            if getattr(t, k) < 0:
                raise ScenarioError(
                    msgid=N_("{origin}: key '{key}.{k}' = {t} must be >= 0"),
                    origin=origin,
                    key=key,
                    k=k,
                    t=getattr(t, k),
                )
        for k in ("spectral_efficiency_bps_hz", "bandwidth_mhz"):
            if getattr(t, k) <= 0:
                raise ScenarioError(
                    msgid=N_("{origin}: key '{key}.{k}' = {t} must be > 0"),
                    origin=origin,
                    key=key,
                    k=k,
                    t=getattr(t, k),
                )
    total = sum(t.subscriber_share for t in c.technologies)
    if abs(total - 1.0) > 0.01:
        raise ScenarioError(
            msgid=N_(
                "{origin}: capacity.technologies subscriber shares add up to {total:.3f}, "
                "not 1; fix 'capacity.technologies[*].subscriber_share'"
            ),
            origin=origin,
            total=total,
        )
    _share(origin, "capacity.busy_hour_share", c.busy_hour_share)
    if not 0.0 < c.max_utilisation <= 1.0:
        raise ScenarioError(
            msgid=N_(
                "{origin}: key 'capacity.max_utilisation' = {c_max_utilisation} must be in (0, 1]"
            ),
            origin=origin,
            c_max_utilisation=c.max_utilisation,
        )
    if c.sectors_per_site < 1 or c.days_per_month <= 0:
        raise ScenarioError(
            msgid=N_(
                "{origin}: keys 'capacity.sectors_per_site' (>= 1) and "
                "'capacity.days_per_month' (> 0) out of range"
            ),
            origin=origin,
        )


def _check_phasing(s: Scenario, origin: str) -> None:
    ph = s.phasing
    _share(origin, "phasing.coverage_target", ph.coverage_target)
    if ph.base_year is None and ph.periods:
        raise ScenarioError(
            msgid=N_(
                "{origin}: 'phasing.periods' given without 'phasing.base_year'; name the "
                "year by which sites.new are built"
            ),
            origin=origin,
        )
    if ph.base_year is None and (ph.base_scenario or ph.base_plan):
        raise ScenarioError(
            msgid=N_(
                "{origin}: 'phasing.base_scenario' / 'phasing.base_plan' given without "
                "'phasing.base_year'; name the year of the base plan"
            ),
            origin=origin,
        )
    prev = ph.base_year
    for i, p in enumerate(ph.periods):
        if prev is not None and p.year <= prev:
            raise ScenarioError(
                msgid=N_(
                    "{origin}: key 'phasing.periods[{i}].year' = {year} must be after {prev} "
                    "(periods in increasing years after phasing.base_year)"
                ),
                origin=origin,
                i=i,
                year=p.year,
                prev=prev,
            )
        if p.budget is not None and p.budget < 0:
            raise ScenarioError(
                msgid=N_("{origin}: key 'phasing.periods[{i}].budget' must be >= 0"),
                origin=origin,
                i=i,
            )
        prev = p.year
    if ph.periods and ph.periods[-1].year != s.year:
        raise ScenarioError(
            msgid=N_(
                "{origin}: the last phasing period ends in {year}, not the scenario year "
                "{year2}; end 'phasing.periods' with year: {year2}"
            ),
            origin=origin,
            year=ph.periods[-1].year,
            year2=s.year,
        )
    if ph.max_nodes < 0 or ph.mip_gap < 0 or ph.time_limit_s <= 0 or ph.capacity_weight < 0:
        raise ScenarioError(
            msgid=N_(
                "{origin}: keys 'phasing.max_nodes', 'phasing.mip_gap', "
                "'phasing.capacity_weight' must be >= 0 and 'phasing.time_limit_s' > 0"
            ),
            origin=origin,
        )
    sw = s.switching
    for y, n in sw.new_by_year.items():
        if not str(y).isdigit() or n < 0:
            raise ScenarioError(
                msgid=N_(
                    "{origin}: key 'switching.new_by_year.{y}' must map a year to a count >= 0"
                ),
                origin=origin,
                y=y,
            )
    if sw.grid_m <= 0 or sw.bts_line_equivalents < 0 or sw.development_zone_factor <= 0:
        raise ScenarioError(
            msgid=N_(
                "{origin}: keys 'switching.grid_m' (> 0), 'switching.bts_line_equivalents' "
                "(>= 0) and 'switching.development_zone_factor' (> 0) out of range"
            ),
            origin=origin,
        )
