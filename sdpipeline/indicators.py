"""The indicator catalogue (``data/indicators/catalogue.yaml``) and the per-respondent values
each indicator averages: plain data in, plain frames out."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from sdpipeline import codebook_shape, settings
from sdpipeline.codebook import Codebook, DataContractError, Label, parse_yaml
from sdpipeline.reference import ReferenceData

STATISTICS = codebook_shape.enum("catalogue.yaml", "$defs/statistic")
# The unit of a statistic whose unit the catalogue need not declare; a mean's is its variable's
# codebook unit, where the codebook's "percent" is the report's "%".
DEFAULT_UNITS = {"proportion": "%", "index": "index"}
UNIT_SYNONYMS = {"percent": "%"}
DENOMINATORS = codebook_shape.enum("catalogue.yaml", "$defs/indicator/properties/denominator")
DIRECTIONS = codebook_shape.enum("catalogue.yaml", "$defs/indicator/properties/direction")
BOOTSTRAP_WEIGHTS = codebook_shape.enum(
    "catalogue.yaml", "$defs/few_clusters/properties/bootstrap/properties/weights"
)


class CatalogueError(DataContractError):
    """The indicator catalogue contradicts the codebook or itself."""


@dataclass(frozen=True)
class Indicator:
    id: str
    instrument: str
    variable: str
    statistic: str
    name: Label
    theme: str
    direction: str
    success: tuple[int, ...] = ()
    denominator: str = "answered"
    scores: dict[int, float] = field(default_factory=dict)
    denominator_variable: str | None = None
    scale: float = 1.0
    breakdowns: tuple[str, ...] = ()
    unit: str = "%"
    """A key of the report's ``units``: what the figure is counted in."""
    range: tuple[float, float] | None = None
    """A ratio's known range, for disclosure control (see ``disclosure.bounds``)."""


@dataclass(frozen=True)
class Unit:
    """How the report names a unit: for a value, and for a change (a change of a % is in
    percentage points)."""

    value: Label
    change: Label

    def text(self, label: Label) -> str:
        """One cell's bilingual text, once where both languages write it alike."""
        return label.lv if label.lv == label.en else f"{label.lv} / {label.en}"


@dataclass(frozen=True)
class Disclosure:
    """The catalogue's ``disclosure:``: when a cell is sensitive, and how well hidden cells
    must be protected (see ``disclosure.py``)."""

    suppress_below: int
    low_reliability_below: int
    magnitude: tuple[str, ...]
    dominance_n: int
    dominance_k: float
    p_percent: float
    all_same: bool
    protection: dict[str, float]


@dataclass(frozen=True)
class FewClusters:
    """How the difference-in-differences is inferred with few municipalities per group."""

    replications: int
    weights: str
    seed: int
    minimum_cr1: int
    minimum_bootstrap: int


@dataclass(frozen=True)
class ReportTable:
    title: Label
    description: str


@dataclass(frozen=True)
class Report:
    """What the report calls itself and its tables; the waves and comparisons it shows come
    from the codebook, so no title here names a year."""

    title: Label
    tables: dict[str, ReportTable]
    units: dict[str, Unit]
    columns: dict[str, Label]
    """What each kind of report column holds (templates filled from the codebook)."""
    lineage: dict[str, Label]
    """The columns of ``report.cell_lineage``."""

    def table(self, name: str) -> ReportTable:
        if name not in self.tables:
            raise CatalogueError(f"catalogue.yaml: report.tables has no entry for {name!r}")
        return self.tables[name]


@dataclass(frozen=True)
class Catalogue:
    version: str
    indicators: tuple[Indicator, ...]
    suppress_below: int
    low_reliability_below: int
    groups: dict[str, Any]
    few_clusters: FewClusters
    disclosure: Disclosure
    report: Report

    def get(self, indicator_id: str) -> Indicator:
        return next(i for i in self.indicators if i.id == indicator_id)


def load_catalogue(codebook: Codebook, path: Path | None = None) -> Catalogue:
    path = path or settings.data_dir() / "indicators" / "catalogue.yaml"
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise CatalogueError(f"{path}: not valid YAML: {error}") from error
    wrong = codebook_shape.problem(raw, "catalogue.yaml")
    if wrong:
        raise CatalogueError(f"{path.name}: {wrong}")
    indicators = []
    for spec in raw["indicators"]:
        where = f"{path.name}: {spec.get('id')}"
        instrument = codebook.instruments.get(spec["instrument"])
        if instrument is None:
            raise CatalogueError(f"{where}: unknown instrument {spec['instrument']!r}")
        names = {v.name for v in instrument.variables}
        for key in ("variable", "denominator_variable"):
            name = spec.get(key)
            if name and name not in names and name != "municipality_population":
                raise CatalogueError(f"{where}: {instrument.name} has no variable {name!r}")
        if spec["statistic"] not in STATISTICS or spec.get("direction") not in DIRECTIONS:
            raise CatalogueError(f"{where}: statistic or direction not recognised")
        variable = instrument.variable(spec["variable"])
        denominator = spec.get("denominator_variable")
        if denominator in names:
            lacking = set(variable.sources) - set(instrument.variable(denominator).sources)
            if lacking:
                raise CatalogueError(
                    f"{where}: {variable.name} is asked in {', '.join(sorted(lacking))} but "
                    f"its denominator {denominator} is not"
                )
        success = tuple(int(c) for c in spec.get("success", ()))
        if spec["statistic"] == "proportion":
            if not success or not set(success) <= set(variable.scale.codes):
                raise CatalogueError(f"{where}: success codes not in {variable.scale.name}")
            if spec.get("denominator", "answered") not in DENOMINATORS:
                raise CatalogueError(f"{where}: denominator must be one of {DENOMINATORS}")
        if spec["statistic"] in ("mean", "ratio") and variable.level != "numeric":
            raise CatalogueError(f"{where}: a {spec['statistic']} needs a numeric variable")
        if (spec["statistic"] == "ratio") != ("range" in spec):
            raise CatalogueError(f"{where}: a ratio, and only a ratio, states its range")
        unknown = (
            set(spec.get("breakdowns", ()))
            | set(raw.get("instrument_breakdowns", {}).get(spec["instrument"], ()))
        ) - set(raw["breakdowns"])
        if unknown:
            raise CatalogueError(
                f"{where}: breakdowns {sorted(unknown)} not in {raw['breakdowns']}"
            )
        if spec.get("theme") not in codebook.themes:
            raise CatalogueError(f"{where}: unknown theme {spec.get('theme')!r}")
        unit = spec.get("unit") or DEFAULT_UNITS.get(spec["statistic"])
        if unit is None and spec["statistic"] == "mean":
            unit = UNIT_SYNONYMS.get(variable.unit, variable.unit)
        if unit is None:
            raise CatalogueError(f"{where}: a {spec['statistic']} needs its unit (unit:)")
        indicators.append(
            Indicator(
                id=str(spec["id"]),
                instrument=instrument.name,
                variable=variable.name,
                statistic=spec["statistic"],
                name=Label(**spec["name"]),
                theme=spec["theme"],
                direction=spec["direction"],
                success=success,
                denominator=spec.get("denominator", "answered"),
                scores={int(k): float(v) for k, v in spec.get("scores", {}).items()},
                denominator_variable=spec.get("denominator_variable"),
                scale=float(spec.get("scale", 1.0)),
                range=tuple(float(v) for v in spec["range"]) if "range" in spec else None,
                breakdowns=tuple(
                    spec.get(
                        "breakdowns",
                        raw.get("instrument_breakdowns", {}).get(
                            instrument.name, raw["breakdowns"]
                        ),
                    )
                ),
                unit=unit,
            )
        )
    ids = [i.id for i in indicators]
    if len(set(ids)) != len(ids):
        raise CatalogueError(f"{path.name}: indicator ids repeat")
    return Catalogue(
        version=str(raw["catalogue_version"]),
        indicators=tuple(indicators),
        suppress_below=int(raw["disclosure"]["suppress_below"]),
        low_reliability_below=int(raw["disclosure"]["low_reliability_below"]),
        groups=raw.get("groups", {}),
        report=_report(raw.get("report") or {}, path.name, indicators),
        few_clusters=_few_clusters(raw.get("few_clusters"), path.name),
        disclosure=_disclosure(raw["disclosure"], path.name),
    )


def _disclosure(spec: dict[str, Any], where: str) -> Disclosure:
    dominance, protection = spec.get("dominance"), spec.get("protection")
    if dominance is None or protection is None:
        raise CatalogueError(f"{where}: disclosure needs dominance and protection")
    if set(protection) != set(STATISTICS):
        raise CatalogueError(f"{where}: disclosure protection needs one width per {STATISTICS}")
    magnitude = tuple(dominance["statistics"])
    if not set(magnitude) <= set(STATISTICS):
        raise CatalogueError(f"{where}: dominance statistics must be among {STATISTICS}")
    return Disclosure(
        suppress_below=int(spec["suppress_below"]),
        low_reliability_below=int(spec["low_reliability_below"]),
        magnitude=magnitude,
        dominance_n=int(dominance["n"]),
        dominance_k=float(dominance["k"]),
        p_percent=float(dominance["p"]),
        all_same=bool(dominance["all_same"]),
        protection={k: float(v) for k, v in protection.items()},
    )


def _few_clusters(spec: dict[str, Any] | None, where: str) -> FewClusters:
    if spec is None:
        raise CatalogueError(f"{where}: few_clusters (bootstrap and minimum_clusters) missing")
    bootstrap, minimum = spec["bootstrap"], spec["minimum_clusters"]
    if bootstrap["weights"] not in BOOTSTRAP_WEIGHTS:
        raise CatalogueError(f"{where}: unknown bootstrap weights {bootstrap['weights']!r}")
    return FewClusters(
        replications=int(bootstrap["replications"]),
        weights=str(bootstrap["weights"]),
        seed=int(bootstrap["seed"]),
        minimum_cr1=int(minimum["cr1"]),
        minimum_bootstrap=int(minimum["wild_bootstrap"]),
    )


def _label_of(raw: Any, where: str) -> Label:
    if not isinstance(raw, dict) or not {"lv", "en"} <= set(raw):
        raise CatalogueError(f"{where}: needs lv and en")
    return Label(str(raw["lv"]), str(raw["en"]))


def _report(spec: dict[str, Any], where: str, indicators: list[Indicator]) -> Report:
    where = f"{where}: report"
    tables = {}
    for name, table in (spec.get("tables") or {}).items():
        if not {"lv", "en", "description"} <= set(table or {}):
            raise CatalogueError(f"{where}.tables.{name}: needs lv, en and description")
        tables[name] = ReportTable(Label(table["lv"], table["en"]), str(table["description"]))
    if "title" not in spec:
        raise CatalogueError(f"{where}: needs a title (lv, en)")
    units = {
        str(name): Unit(
            _label_of(unit, f"{where}.units.{name}"),
            _label_of((unit or {}).get("change"), f"{where}.units.{name}.change"),
        )
        for name, unit in (spec.get("units") or {}).items()
    }
    unnamed = sorted({i.unit for i in indicators} - set(units))
    if unnamed:
        raise CatalogueError(f"{where}.units: no entry for {unnamed}")
    columns = {
        str(kind): _label_of(text, f"{where}.columns.{kind}")
        for kind, text in (spec.get("columns") or {}).items()
    }
    lineage = {
        str(name): _label_of(text, f"{where}.lineage.{name}")
        for name, text in (spec.get("lineage") or {}).items()
    }
    return Report(Label(**spec["title"]), tables, units, columns, lineage)


@cache
def default_catalogue() -> Catalogue:
    from sdpipeline.codebook import default_codebook

    return load_catalogue(default_codebook())


def municipality_population(
    table: pd.DataFrame, codebook: Codebook, ref: ReferenceData
) -> pd.Series:
    """Each row's municipality population in its wave's population year (own vintage)."""
    totals = ref.population_totals
    years = table["wave"].map({w: v.population_year for w, v in codebook.waves.items()})
    lookup = totals.set_index(["year", "iso_code"])["population"]
    keys = pd.MultiIndex.from_arrays([years.astype(int), table["municipality"].astype(str)])
    return pd.Series(lookup.reindex(keys).to_numpy(dtype=float), index=table.index)


def scored(codes: pd.Series, scores: dict[int, float]) -> np.ndarray:
    """Each code's score, NaN where the code has none or is empty. A lookup per scored code:
    pandas' ``map`` of a nullable integer column goes through a Python object per row."""
    found = codes.to_numpy(dtype=float, na_value=np.nan)
    y = np.full(len(found), np.nan)
    for code, score in scores.items():
        y[found == code] = float(score)
    return y


def values(
    indicator: Indicator, table: pd.DataFrame, codebook: Codebook, ref: ReferenceData
) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) per row: the indicator is Σ w·y / Σ w·x; NaN where the row is outside its base."""
    column = table[indicator.variable]
    x = np.ones(len(table))
    if indicator.statistic in ("proportion", "index"):
        codes = column.astype("Int64")
        missing = {m.kind: m.code for m in codebook.missing_categories.values()}
        excluded = {missing["no_answer"], missing["not_asked"]}
        if indicator.denominator == "valid" or indicator.statistic == "index":
            excluded.add(missing["hard_to_say"])
        base = ~codes.isin(list(excluded)) & codes.notna()
        if indicator.statistic == "proportion":
            y = codes.isin(list(indicator.success)).astype(float)
        else:
            y = scored(codes, indicator.scores)
        return np.where(base, y, np.nan), x
    y = column.to_numpy(dtype=float)
    if indicator.statistic == "mean":
        return y, x
    if indicator.denominator_variable == "municipality_population":
        x = municipality_population(table, codebook, ref).to_numpy()
    else:
        x = table[indicator.denominator_variable].to_numpy(dtype=float)
    return y * indicator.scale, x
