"""District polygons: reading, type from names, dissolving communes into districts."""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from pyproj import CRS
from scipy.sparse.csgraph import connected_components

from towerplan._validate import DEFAULT_CRS, require_metric
from towerplan.errors import (
    N_,
    ColumnError,
    DuplicateIDError,
    EmptyInputError,
    Text,
    warn_user,
)
from towerplan.inputs._common import (
    _check_population,
    _col,
    _norm,
    _require_geom,
    _rows_text,
)
from towerplan.inputs.vector import (
    read_vector,
)

logger = logging.getLogger(__name__)


URBAN_VALUES: tuple[str, ...] = ("quận", "quan", "urban", "thành phố", "thị xã")
RURAL_VALUES: tuple[str, ...] = ("huyện", "huyen", "rural")

# --------------------------------------------------------------------------- districts


def _split_type_prefix(
    name: str, values: Sequence[str]
) -> tuple[str | None, str]:  # (matched value, rest)
    text = unicodedata.normalize("NFC", str(name)).strip()
    for v in sorted((_norm(x) for x in values), key=len, reverse=True):
        head = text[: len(v)]
        if head.casefold() == v and (len(text) == len(v) or text[len(v)] == " "):
            return v, text[len(v) :].strip()
    return None, text


def _district_types(
    df: pd.DataFrame,
    names: pd.Series,
    type_col: str | None,
    urban_values: Sequence[str],
    rural_values: Sequence[str],
    name: str,
    strip_type_prefix: bool,
) -> tuple[pd.Series, pd.Series]:
    """Return (district_type, clean name) per row."""
    urban = {_norm(v) for v in urban_values}
    rural = {_norm(v) for v in rural_values}
    clean = names.map(lambda s: unicodedata.normalize("NFC", str(s)).strip())
    if type_col is not None:
        raw = df[type_col]
        norm = raw.map(_norm)
        out = pd.Series(
            np.where(norm.isin(urban), "urban", np.where(norm.isin(rural), "rural", "")),
            index=df.index,
        )
        bad = out == ""
        if bad.any():
            vals = sorted({str(v) for v in raw[bad]})
            raise ColumnError(
                msgid=N_(
                    "{name}: column '{type_col}' has unknown district type value(s) {vals}; "
                    "allowed values: urban {urban}, rural {rural}; list them in the scenario "
                    "under data.urban_type_values / data.rural_type_values"
                ),
                name=name,
                type_col=type_col,
                vals=vals,
                urban=sorted(urban),
                rural=sorted(rural),
            )
        if strip_type_prefix:
            clean = clean.map(lambda s: _split_type_prefix(s, [*urban, *rural])[1] or s)
        return out, clean
    types: list[str] = []
    rest: list[str] = []
    for s in clean:
        v, r = _split_type_prefix(s, [*urban, *rural])
        types.append("" if v is None else ("urban" if v in urban else "rural"))
        rest.append(r if (v is not None and strip_type_prefix and r) else s)
    inferred = pd.Series(types, index=df.index, dtype=object)
    bad = inferred == ""
    if bad.any():
        raise ColumnError(
            msgid=N_(
                "{name}: no district type column and the type cannot be read from the names "
                "{names} (no prefix among urban {urban} / rural {rural}); map a type column "
                "in the scenario with columns: {{type: <column>}}"
            ),
            name=name,
            names=sorted(set(clean[bad]))[:10],
            urban=sorted(urban),
            rural=sorted(rural),
        )
    return inferred, pd.Series(rest, index=df.index)


def dissolve_to_districts(
    communes: gpd.GeoDataFrame,
    by: str,
    population: str | None = "population",
    code: str | None = None,
    type_column: str | None = None,
    urban_values: Sequence[str] = URBAN_VALUES,
    rural_values: Sequence[str] = RURAL_VALUES,
    strip_type_prefix: bool = True,
    name: str = "communes",
    province: str | None = None,
) -> gpd.GeoDataFrame:
    """Dissolve communes (wards) into districts with the contract columns.

    A district is identified by its code when a ``code`` column is given, else by
    (province, name) when a ``province`` column is given, else by its name; in
    the last case the units of one name must form one contiguous area (within
    :data:`CONTIGUITY_M`), so that same-named districts of different provinces
    are never merged silently.  Districts that share a name keep it with the
    province (or code) in brackets: ``Châu Thành (Tiền Giang)``.

    Parameters
    ----------
    communes : GeoDataFrame
        Commune polygons in a metric CRS.
    by : str
        Column with each commune's district name (e.g. ``district_vn``).
    population : str or None
        Population column summed per district (None: no ``population`` column).
    code : str, optional
        Column with the district code; default: ``D01``, ``D02``... in order of
        first appearance.
    type_column : str, optional
        Column with the district type (e.g. ``quận`` / ``huyện``); default: read
        from a type prefix of the district name (``Quận Ninh Kiều`` -> urban).
    urban_values, rural_values : sequence of str
        Type values (or name prefixes) meaning urban / rural (case-insensitive).
    strip_type_prefix : bool
        Drop a type prefix from the name (``Quận Ninh Kiều`` -> ``Ninh Kiều``).
    name : str
        Name of the input used in messages.
    province : str, optional
        Column with the province (kept as ``province``).

    Returns
    -------
    GeoDataFrame
        One row per district, in order of first appearance: ``district``,
        ``code``, ``district_type``, ``population`` (if given), ``area_km2``,
        ``n_units`` (communes dissolved), ``province`` (if given).

    Raises
    ------
    DuplicateIDError
        Units of one name lie in separate areas and no code/province column tells
        them apart.
    """
    crs = require_metric(communes, name)
    if len(communes) == 0:
        raise EmptyInputError(
            msgid=N_("{name}: the layer is empty; give at least one commune"), name=name
        )
    for col in (by, population, code, type_column, province):
        if col is not None and col not in communes.columns:
            raise ColumnError(
                msgid=N_("{name}: column '{col}' not found; the layer has columns {columns}"),
                name=name,
                col=col,
                columns=[c for c in communes.columns if c != "geometry"],
            )
    df = communes.copy()
    for col in (by, code, province):
        if col is not None and df[col].isna().any():
            raise ColumnError(
                msgid=N_("{name}: column '{col}' is empty in rows {rows}; fill it for every unit"),
                name=name,
                col=col,
                rows=_rows_text(df.index[df[col].isna()]),
            )
    dtype, clean = _district_types(
        df, df[by], type_column, urban_values, rural_values, name, strip_type_prefix
    )
    df["_district"] = clean
    df["_type"] = dtype
    df["_key"] = _identity(df, code, province, name)
    if population is not None:
        df["_pop"] = _check_population(df[population], name, population)
    mixed = df.groupby("_key", sort=False)["_type"].nunique()
    if (mixed > 1).any():
        bad = df.loc[df["_key"].isin(mixed.index[mixed > 1]), "_district"].unique()
        raise ColumnError(
            msgid=N_(
                "{name}: district(s) {bad} have communes of different types; give one type "
                "per district"
            ),
            name=name,
            bad=list(bad),
        )
    out = gpd.GeoDataFrame(
        [
            _district_row(df, k, i, code, population, province, name)
            for i, k in enumerate(dict.fromkeys(df["_key"]))
        ],
        geometry="geometry",
        crs=crs,
    )
    out["district"] = _unique_names(out, province)
    out["area_km2"] = out.geometry.area / 1e6
    cols = ["district", "code", "district_type"]
    cols += ["population"] if population is not None else []
    cols += ["area_km2", "n_units"] + (["province"] if province is not None else [])
    logger.info("%s: dissolved %d units into %d districts", name, len(df), len(out))
    return out[[*cols, "geometry"]]


CONTIGUITY_M = 100.0
"""Units of one district name farther apart than this (with no code or province column
to tell them apart) are taken for different districts: an error, not a silent merge."""


def _identity(df: gpd.GeoDataFrame, code: str | None, province: str | None, name: str) -> pd.Series:
    """The key that identifies each unit's district."""
    if code is not None:
        return df[code].astype(str).str.strip()
    if province is not None:
        return df[province].map(_norm) + "\x1f" + df["_district"].map(_norm)
    key = df["_district"].map(_norm)
    for _k, part in df.groupby(key, sort=False):
        if len(part) < 2:
            continue
        near = part.geometry.buffer(CONTIGUITY_M / 2)
        left, right = near.sindex.query(near.to_numpy(), predicate="intersects")

        g = sp.coo_matrix((np.ones(len(left)), (left, right)), shape=(len(part), len(part)))
        n_comp, _ = connected_components(g, directed=False)
        if n_comp > 1:
            raise DuplicateIDError(
                msgid=N_(
                    "{name}: district name '{district}' covers {n_comp} separate areas (rows "
                    "{rows}), e.g. same-named districts of different provinces; map a "
                    "province or district-code column so they stay apart (columns: {{province: "
                    "<column>}} or {{code: <column>}})"
                ),
                name=name,
                district=part["_district"].iloc[0],
                n_comp=n_comp,
                rows=_rows_text(part.index),
            )
    return key


def _district_row(
    df: gpd.GeoDataFrame,
    key: str,
    i: int,
    code: str | None,
    population: str | None,
    province: str | None,
    name: str,
) -> dict[str, Any]:
    part = df[df["_key"] == key]
    names = list(dict.fromkeys(part["_district"]))
    if len(names) > 1:
        warn_user(
            logger,
            N_("{name}: district code {key} has several names {names}; using the first"),
            log_only=True,
            name=name,
            key=key,
            names=names,
        )
    row: dict[str, Any] = {"district": names[0]}
    row["code"] = str(part[code].iloc[0]).strip() if code is not None else f"D{i + 1:02d}"
    row["district_type"] = part["_type"].iloc[0]
    if population is not None:
        row["population"] = float(part["_pop"].sum())
    row["n_units"] = len(part)
    if province is not None:
        row["province"] = str(part[province].iloc[0]).strip()
    row["geometry"] = shapely.union_all(part.geometry.to_numpy())
    return row


def _unique_names(out: gpd.GeoDataFrame, province: str | None) -> pd.Series:
    """District names, with the province (else the code) added where names repeat."""
    names = out["district"].astype(str)
    dup = names.map(_norm).duplicated(keep=False)
    if not dup.any():
        return names
    extra = out["province"] if province is not None else out["code"]
    return names.where(~dup, names + " (" + extra.astype(str) + ")")


def read_districts(
    path: str | Path,
    columns: Mapping[str, str] | None = None,
    layer: str | None = None,
    crs: str | CRS = DEFAULT_CRS,
    urban_values: Sequence[str] = URBAN_VALUES,
    rural_values: Sequence[str] = RURAL_VALUES,
    population_column: str | None = None,
    source_crs: str | CRS | None = None,
    strip_type_prefix: bool = True,
    dissolve: bool | None = None,
    repair: bool = False,
    encoding: str | None = None,
) -> gpd.GeoDataFrame:
    """Read district polygons (or communes to dissolve) with the contract columns.

    Parameters
    ----------
    path : str or Path
        Vector file of districts, or of communes whose ``name`` column gives
        the district (names repeat -> communes are dissolved).
    columns : mapping, optional
        ``{'name': .., 'code': .., 'type': .., 'population': .., 'province': ..}``
        file columns (a district is identified by code, else (province, name), else
        name: see :func:`dissolve_to_districts`).
        ``name`` defaults to a ``district`` or ``name`` column; without ``type``
        the type is read from a name prefix (``Quận ...`` / ``Huyện ...``).
    layer : str, optional
        Layer of a multi-layer file.
    crs : str or pyproj.CRS
        Working metric CRS.
    urban_values, rural_values : sequence of str
        Type values meaning urban / rural.
    population_column : str, optional
        Population column (overrides ``columns['population']``).
    source_crs : str, optional
        CRS to assume when the file has none.
    strip_type_prefix : bool
        Drop a type prefix from district names.
    dissolve : bool, optional
        Force (True) or forbid (False) dissolving; default: dissolve when names repeat.
    encoding : str, optional
        Attribute encoding (Shapefile without .cpg), as in :func:`read_vector`.

    Returns
    -------
    GeoDataFrame
        ``district``, ``code``, ``district_type``, ``population`` (when known),
        ``area_km2``, ``n_units``, geometry in ``crs``.

    Raises
    ------
    ColumnError
        Missing column, or unknown type value (message lists the allowed values).
    PopulationError
        NaN or negative population.
    """
    label = Text(N_("districts file {path}"), path=path)
    gdf = read_vector(
        path,
        layer=layer,
        name=label,
        crs=crs,
        source_crs=source_crs,
        repair=repair,
        encoding=encoding,
    )
    _require_geom(gdf, {"Polygon", "MultiPolygon"}, label, Text(N_("polygon")))
    name_col = _col(gdf, columns, "name", ("district", "name"), label, required=True)
    assert name_col is not None
    code_col = _col(gdf, columns, "code", ("code",), label, required=False)
    prov_col = _col(gdf, columns, "province", ("province",), label, required=False)
    type_col = _col(gdf, columns, "type", ("district_type", "type"), label, required=False)
    pop_col = population_column or _col(gdf, columns, "population", ("population",), label, False)
    if pop_col is not None and pop_col not in gdf.columns:
        raise ColumnError(
            msgid=N_(
                "{label}: population column '{pop_col}' not found; the file has columns {columns}"
            ),
            label=label,
            pop_col=pop_col,
            columns=[c for c in gdf.columns if c != "geometry"],
        )
    repeats = bool(gdf[name_col].map(_norm).duplicated().any())
    if dissolve is False and repeats:
        dup = gdf[name_col][gdf[name_col].map(_norm).duplicated()].unique()
        raise DuplicateIDError(
            msgid=N_(
                "{label}: district names repeat in column '{name_col}': {dup}; give unique "
                "names or allow dissolving communes into districts"
            ),
            label=label,
            name_col=name_col,
            dup=list(dup)[:10],
        )
    if repeats:
        logger.info("%s: names in '%s' repeat; dissolving units into districts", label, name_col)
    return dissolve_to_districts(
        gdf,
        by=name_col,
        population=pop_col,
        code=code_col,
        type_column=type_col,
        urban_values=urban_values,
        rural_values=rural_values,
        strip_type_prefix=strip_type_prefix,
        name=label,
        province=prov_col,
    )
