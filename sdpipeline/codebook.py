"""The codebook: the data contract every other module derives from.

The YAML files under ``data/codebook/`` are the single source of truth for variables, labels,
wave mappings, recodes and missing codes. This module loads them into frozen objects and refuses
an inconsistent codebook with a message that names the file and the entry, so that a mistake in
the contract is caught before any data is read against it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from sdpipeline import codebook_shape, settings

# The values a key may take are the schemas' (``codebook_schemas/``), read from there.
LEVELS = codebook_shape.enum("common.yaml", "$defs/variable/properties/level")
CATEGORICAL_LEVELS = codebook_shape.enum(
    "common.yaml", "$defs/variable/allOf/0/if/properties/level"
)
ROLES = codebook_shape.enum("common.yaml", "$defs/variable/properties/role")
FILE_FORMATS = {".sav": "sav", ".xlsx": "xlsx", ".csv": "csv"}
RULE_KINDS = codebook_shape.enum("instrument.yaml", "$defs/rule/properties/kind")
WEIGHTING_METHODS = codebook_shape.enum("instrument.yaml", "$defs/weighting/properties/method")
# What a census's intervals are about: the units as they are (finite population, with a finite
# population correction) or the process that generates their answers (superpopulation, none).
CENSUS_TARGETS = codebook_shape.enum("instrument.yaml", "$defs/census/properties/target")
# the units the reference data can count, so the only ones a finite population correction has
CENSUS_COUNTED = codebook_shape.enum("instrument.yaml", "$defs/census/then/properties/units")
SPLIT_UNIT_RULES = codebook_shape.enum("study.yaml", "properties/geography/properties/split_units")
# Where a comparison's two waves stand relative to the project: its effect (the earlier wave
# before the project, the later one after it) or its persistence (both after it).
COMPARISON_ROLES = codebook_shape.enum("study.yaml", "$defs/comparison/properties/role")
# Variables every wave with a file needs, whatever it asks: without them no row can be
# identified, placed on the map or weighted (plus the weighting margins and the design's
# strata and sampling units).
NEEDED_ROLES = ("id", "geography", "design")


class DataContractError(ValueError):
    """The versioned files under ``data/`` do not describe what the pipeline is asked to do
    (the codebook, the reference data, the generator's model): a message of what to add."""


class CodebookError(DataContractError):
    """The codebook contradicts itself or is incomplete."""


@dataclass(frozen=True)
class Label:
    lv: str
    en: str


@dataclass(frozen=True)
class HarmonisedScale:
    name: str
    codes: dict[int, Label]


@dataclass(frozen=True)
class SourceScale:
    """One wave's value set for a question: what the contractor's codes mean and become."""

    name: str
    harmonised: str
    labels: dict[int, str]
    recode: dict[int, int]
    missing: dict[int, str]


@dataclass(frozen=True)
class MissingCategory:
    kind: str
    code: int
    label: Label


@dataclass(frozen=True)
class SourceVariable:
    """Where a harmonised variable sits in one wave's file and how its values translate."""

    wave: str
    variable: str
    scale: SourceScale | None = None
    missing: dict[float, str] = field(default_factory=dict)
    bins: dict[int, tuple[float, float]] | None = None

    @property
    def missing_codes(self) -> dict[float, str]:
        """All source codes that stand for a missing answer, whatever the level."""
        if self.scale is not None:
            return {float(code): kind for code, kind in self.scale.missing.items()}
        return dict(self.missing)


@dataclass(frozen=True)
class Variable:
    name: str
    instrument: str
    level: str
    role: str
    theme: str
    question: Label
    sources: dict[str, SourceVariable]
    scale: HarmonisedScale | None = None
    value_range: tuple[float, float] | None = None
    integer: bool = False
    unit: str | None = None
    comparability: str | None = None
    required: bool = True
    key: bool = False

    @property
    def is_categorical(self) -> bool:
        return self.level in CATEGORICAL_LEVELS

    @property
    def is_text_like(self) -> bool:
        """Stored as text in raw files: reading them as numbers would lose leading zeros."""
        return self.level in ("identifier", "municipality", "text", "date")

    def asked_in(self, wave: str) -> bool:
        return wave in self.sources


@dataclass(frozen=True)
class FileSpec:
    """How one wave's file of one instrument is delivered."""

    name: str
    encoding: str | None = None
    delimiter: str | None = None
    decimal: str | None = None
    date_format: str | None = None
    header_row: int = 0

    @property
    def format(self) -> str:
        return FILE_FORMATS[Path(self.name).suffix.lower()]


@dataclass(frozen=True)
class Rule:
    """A cross-field rule every row must keep (where none of its values is a missing code)."""

    name: str
    kind: str
    variables: tuple[str, ...]
    message: str
    total: float | None = None
    tolerance: float = 0.0


@dataclass(frozen=True)
class Weighting:
    """How an instrument's respondents are weighted to stand for their population."""

    method: str
    margins: tuple[tuple[str, ...], ...] = ()
    max_ratio_to_median: float | None = None


@dataclass(frozen=True)
class Census:
    """An instrument that asks every unit of its population (``design.census``): which units
    (``municipalities``: one per municipality of the wave's territorial vintage, in each
    stratum; or others, in words, when the target is the superpopulation) and what its
    intervals are about (one of ``CENSUS_TARGETS``), with the reason in words for the report."""

    units: str
    target: str
    reason: Label


@dataclass(frozen=True)
class ValidationDefaults:
    max_quarantine_share: float
    max_modal_share: float
    min_valid_for_distribution: int
    max_no_answer_share: float


@dataclass(frozen=True)
class Instrument:
    name: str
    label: Label
    respondents: Label
    design: dict[str, Any]
    files: dict[str, FileSpec]
    variables: tuple[Variable, ...]
    minimum_rows: int = 1
    rules: tuple[Rule, ...] = ()
    weighting: Weighting = Weighting("equal")
    census: Census | None = None

    def variable(self, name: str) -> Variable:
        for variable in self.variables:
            if variable.name == name:
                return variable
        raise KeyError(f"{self.name} has no variable {name!r}")

    def variables_in(self, wave: str) -> tuple[Variable, ...]:
        return tuple(v for v in self.variables if v.asked_in(wave))

    @property
    def id_variable(self) -> Variable:
        return next(v for v in self.variables if v.role == "id")


@dataclass(frozen=True)
class Wave:
    id: str
    year: int
    label: Label
    fieldwork_start: dt.date
    fieldwork_end: dt.date
    municipality_vintage: int
    population_year: int


@dataclass(frozen=True)
class DerivedColumns:
    """The columns the pipeline adds beside the delivered variables (``derived.yaml``)."""

    provenance: dict[str, Label]
    harmonised: dict[str, Label]
    missing_kind: Label

    def missing_label(self, name: str) -> Label:
        """What the column beside numeric answer ``name`` says."""
        return Label(
            lv=self.missing_kind.lv.format(name=name), en=self.missing_kind.en.format(name=name)
        )


@dataclass(frozen=True)
class Comparison:
    """A change the report shows: from the ``before`` wave to the ``after`` wave (the earlier
    and the later one), and what that change is evidence of (``role``)."""

    id: str
    before: str
    after: str
    role: str
    label: Label


@dataclass(frozen=True)
class Study:
    title: Label
    project_no: str
    commissioner: str


@dataclass(frozen=True)
class Codebook:
    version: str
    digest: str
    waves: dict[str, Wave]
    instruments: dict[str, Instrument]
    harmonised_scales: dict[str, HarmonisedScale]
    source_scales: dict[str, SourceScale]
    missing_categories: dict[str, MissingCategory]
    themes: dict[str, Label]
    validation: ValidationDefaults
    derived: DerivedColumns
    study: Study
    comparisons: dict[str, Comparison] = field(default_factory=dict)
    split_units: str = "majority_successor"

    def missing_code(self, kind: str) -> int:
        return self.missing_categories[kind].code

    def after_project(self, wave: str) -> bool | None:
        """Whether the comparisons place ``wave`` after the project (``None``: no comparison
        uses it)."""
        for comparison in self.comparisons.values():
            if wave == comparison.after:
                return True
            if wave == comparison.before:
                return comparison.role == "persistence"
        return None


def _label(raw: Any, where: str) -> Label:
    if isinstance(raw, dict) and {"lv", "en"} <= raw.keys():
        return Label(lv=str(raw["lv"]), en=str(raw["en"]))
    if isinstance(raw, list) and len(raw) == 2:
        return Label(lv=str(raw[0]), en=str(raw[1]))
    raise CodebookError(f"{where}: a label needs Latvian and English text, got {raw!r}")


class _Strict:
    """What PyYAML's safe loader lets through and a codebook must not: a key written twice in
    one mapping (YAML forbids it; PyYAML keeps the last, so a pasted copy of a scale silently
    replaced the first), and YAML 1.1's booleans ``yes``/``no``/``on``/``off`` (an unquoted
    ``Yes`` label became ``True`` in the published SPSS files): only ``true`` and ``false``
    are booleans, as in YAML 1.2."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)  # type: ignore[attr-defined]
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: PyYAML's own error says so
                break
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found the key {key!r} twice (first on line {first.line + 1}); "
                    "YAML keeps only one of them",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)  # type: ignore[misc]


def _strict(base: type) -> type:
    loader = type(f"Strict{base.__name__}", (_Strict, base), {})
    loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in base.yaml_implicit_resolvers.items()
    }
    loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool",
        re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
        list("tTfF"),
    )
    return loader


# libyaml parses the codebook several times faster (every process loads it); its error
# messages lack the pure parser's excerpt, so a file it refuses is parsed again to say why.
_FAST_LOADER = _strict(getattr(yaml, "CSafeLoader", yaml.SafeLoader))
_LOADER = _strict(yaml.SafeLoader)


def parse_yaml(text: str) -> Any:
    """``text`` parsed by libyaml; a ``yaml.YAMLError`` from the pure parser if it is not YAML.
    Both refuse a key written twice and read ``yes``/``no`` as text (``_Strict``)."""
    try:
        return yaml.load(text, Loader=_FAST_LOADER)
    except yaml.YAMLError:
        return yaml.load(text, Loader=_LOADER)


def _read_yaml(path: Path, schema: str) -> dict[str, Any]:
    """A codebook file, refused if it is not YAML or not of the shape ``codebook_schemas/
    <schema>`` describes (``codebook_shape``), naming the file and the entry."""
    try:
        content = parse_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise CodebookError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(content, dict):
        raise CodebookError(f"{path}: expected a mapping at the top level")
    wrong = codebook_shape.problem(content, schema)
    if wrong:
        raise CodebookError(f"{path.name}: {wrong}")
    return content


def _load_scales(
    path: Path, missing_kinds: set[str]
) -> tuple[dict[str, HarmonisedScale], dict[str, SourceScale]]:
    raw = _read_yaml(path, "scales.yaml")
    harmonised = {
        name: HarmonisedScale(
            name=name,
            codes={
                int(code): _label(label, f"{path.name}: harmonised.{name}.{code}")
                for code, label in spec["codes"].items()
            },
        )
        for name, spec in raw["harmonised"].items()
    }
    source: dict[str, SourceScale] = {}
    for name, spec in raw["source"].items():
        where = f"{path.name}: source.{name}"
        target = spec.get("harmonised")
        if target not in harmonised:
            raise CodebookError(f"{where}: unknown harmonised scale {target!r}")
        labels = {int(code): str(text) for code, text in spec["labels"].items()}
        recode = {int(code): int(to) for code, to in spec.get("recode", {}).items()}
        missing = {int(code): str(kind) for code, kind in spec.get("missing", {}).items()}
        for code, to in recode.items():
            if to not in harmonised[target].codes:
                raise CodebookError(f"{where}: code {code} recodes to {to}, not in {target}")
        for code, kind in missing.items():
            if kind not in missing_kinds:
                raise CodebookError(f"{where}: code {code} has unknown missing kind {kind!r}")
        both = sorted(set(recode) & set(missing))
        if both:
            raise CodebookError(
                f"{where}: code {both[0]} is both recoded (to {recode[both[0]]}) and missing "
                f"({missing[both[0]]}): a code is one or the other"
            )
        unmapped = set(labels) - set(recode) - set(missing)
        if unmapped:
            raise CodebookError(
                f"{where}: codes {sorted(unmapped)} are neither recoded nor missing"
            )
        unlabelled = (set(recode) | set(missing)) - set(labels)
        if unlabelled:
            raise CodebookError(f"{where}: codes {sorted(unlabelled)} have no label")
        source[name] = SourceScale(name, target, labels, recode, missing)
    return harmonised, source


def _source_variable(
    spec: dict[str, Any],
    wave: str,
    where: str,
    source_scales: dict[str, SourceScale],
    missing_kinds: set[str],
) -> SourceVariable:
    scale = None
    if "scale" in spec:
        if spec["scale"] not in source_scales:
            raise CodebookError(f"{where}: unknown source scale {spec['scale']!r}")
        scale = source_scales[spec["scale"]]
    missing = {float(code): str(kind) for code, kind in spec.get("missing", {}).items()}
    for kind in missing.values():
        if kind not in missing_kinds:
            raise CodebookError(f"{where}: unknown missing kind {kind!r}")
    both = sorted(set(missing) & set(scale.recode if scale else ()))
    if scale and both:
        raise CodebookError(
            f"{where}: code {both[0]:g} is missing ({missing[both[0]]}) here and recoded (to "
            f"{scale.recode[int(both[0])]}) by {scale.name}: a code is one or the other"
        )
    bins = None
    if "bins" in spec:
        bins = {int(code): (float(lo), float(hi)) for code, (lo, hi) in spec["bins"].items()}
    return SourceVariable(wave, str(spec["variable"]), scale, missing, bins)


def _variable(
    spec: dict[str, Any],
    instrument: str,
    where: str,
    book: dict[str, Any],
    delivered: set[str] | None = None,
) -> Variable:
    """``delivered``: the waves the instrument has files for, when the variable comes from a
    shared block (whose sources for other waves belong to other instruments)."""
    name = spec.get("name")
    where = f"{where}: {name}"
    level = spec.get("level")
    if level not in LEVELS:
        raise CodebookError(f"{where}: level must be one of {LEVELS}, got {level!r}")
    role = spec.get("role", "substantive")
    if role not in ROLES:
        raise CodebookError(f"{where}: role must be one of {ROLES}, got {role!r}")
    theme = spec.get("theme")
    if theme not in book["themes"]:
        raise CodebookError(f"{where}: unknown theme {theme!r}")
    scale = None
    if level in CATEGORICAL_LEVELS:
        if spec.get("scale") not in book["harmonised"]:
            raise CodebookError(f"{where}: a {level} variable needs a harmonised scale")
        scale = book["harmonised"][spec["scale"]]
    sources = {}
    for wave, source_spec in spec.get("waves", {}).items():
        if wave not in book["waves"]:
            raise CodebookError(f"{where}: unknown wave {wave!r}")
        if delivered is not None and wave not in delivered:
            continue
        source = _source_variable(
            source_spec, wave, f"{where}.{wave}", book["source"], book["missing_kinds"]
        )
        if scale is not None:
            if source.scale is None and source.bins is None:
                raise CodebookError(f"{where}.{wave}: needs a source scale or bins")
            if source.scale is not None and source.scale.harmonised != scale.name:
                raise CodebookError(
                    f"{where}.{wave}: source scale {source.scale.name} maps to "
                    f"{source.scale.harmonised}, the variable is {scale.name}"
                )
            if source.bins is not None and set(source.bins) - set(scale.codes):
                raise CodebookError(f"{where}.{wave}: bins give codes outside {scale.name}")
        sources[wave] = source
    if not sources:
        raise CodebookError(f"{where}: asked in no wave")
    value_range = tuple(float(x) for x in spec["range"]) if "range" in spec else None
    if level == "numeric" and value_range is None:
        raise CodebookError(f"{where}: a numeric variable needs a range")
    comparability = spec.get("comparability")
    if len(sources) < len(book["waves"]) and comparability is None:
        asked = ", ".join(w for w in book["waves"] if w in sources)
        comparability = (
            f"Asked only in {asked}: no comparison across waves."
            if len(sources) == 1
            else f"Asked only in {asked}: compared between these waves only."
        )
    return Variable(
        name=str(name),
        instrument=instrument,
        level=level,
        role=role,
        theme=theme,
        question=_label(spec.get("question"), where),
        sources=sources,
        scale=scale,
        value_range=value_range,  # type: ignore[arg-type]
        integer=bool(spec.get("integer", False)),
        unit=spec.get("unit"),
        comparability=comparability,
        required=bool(spec.get("required", True)),
        key=bool(spec.get("key", False)),
    )


def _instrument(path: Path, blocks: dict[str, list[dict]], book: dict[str, Any]) -> Instrument:
    raw = _read_yaml(path, "instrument.yaml")
    name = raw["instrument"]
    where = f"{path.name}"
    specs: list[dict[str, Any]] = []
    origins: list[str] = []  # where each variable is written: the instrument or a block
    for entry in raw["variables"]:
        if "block" in entry:
            if entry["block"] not in blocks:
                raise CodebookError(f"{where}: unknown block {entry['block']!r}")
            specs.extend(blocks[entry["block"]])
            origins += [f"blocks.yaml: block {entry['block']}"] * len(blocks[entry["block"]])
        else:
            specs.append(entry)
            origins.append(where)
    files = {}
    for wave, file_spec in raw["files"].items():
        if wave not in book["waves"]:
            raise CodebookError(f"{where}: file for unknown wave {wave!r}")
        file_spec = FileSpec(**file_spec)
        if Path(file_spec.name).suffix.lower() not in FILE_FORMATS:
            raise CodebookError(f"{where}: {file_spec.name} is not one of {sorted(FILE_FORMATS)}")
        files[wave] = file_spec
    variables = tuple(
        _variable(spec, name, origin, book, None if origin == where else set(files))
        for spec, origin in zip(specs, origins, strict=True)
    )
    names = [v.name for v in variables]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise CodebookError(f"{where}: variables defined twice: {duplicates}")
    if sum(v.role == "id" for v in variables) != 1:
        raise CodebookError(f"{where}: needs exactly one identifier variable")
    for wave in book["waves"]:
        in_wave = [v.sources[wave].variable for v in variables if v.asked_in(wave)]
        if in_wave and wave not in files:
            raise CodebookError(f"{where}: variables asked in {wave} but no file declared")
        folded = [column.strip().casefold() for column in in_wave]
        clashes = sorted({c for c in folded if folded.count(c) > 1})
        if clashes:
            raise CodebookError(f"{where}.{wave}: source columns used twice: {clashes}")
    instrument = Instrument(
        name=name,
        label=_label(raw["label"], where),
        respondents=_label(raw["respondents"], where),
        design=dict(raw.get("design", {})),
        files=files,
        variables=variables,
        minimum_rows=int(raw.get("minimum_rows", 1)),
        rules=tuple(
            _rule(spec, where, {v.name: v for v in variables}) for spec in raw.get("rules", [])
        ),
        weighting=_weighting(raw.get("design", {}).get("weighting", {}), where, variables),
        census=_census(raw.get("design", {}), where),
    )
    _check_waves_complete(instrument, dict(zip(names, origins, strict=True)), where)
    return instrument


def _needed(instrument: Instrument) -> dict[str, str]:
    """The variables a wave with a file cannot do without, with the reason each is needed."""
    needed = {
        v.name: f"its role is {v.role}" for v in instrument.variables if v.role in NEEDED_ROLES
    }
    for key in ("strata", "psu"):
        if instrument.design.get(key) in {v.name for v in instrument.variables}:
            needed.setdefault(instrument.design[key], f"it is the design's {key}")
    for margin in instrument.weighting.margins:
        for column in margin:
            needed.setdefault(column, f"it is a weighting margin ({' × '.join(margin)})")
    return needed


def _check_waves_complete(instrument: Instrument, origins: dict[str, str], where: str) -> None:
    """Refuse a wave the instrument delivers a file for but that misses what every wave needs
    (identifier, geography, design and weighting variables), asks nothing substantive, or asks
    only part of a cross-field rule. A substantive item a wave did not ask stays legitimate:
    it is coded 'not asked' there."""
    for wave, spec in instrument.files.items():
        for name, reason in _needed(instrument).items():
            if not instrument.variable(name).asked_in(wave):
                raise CodebookError(
                    f"{origins[name]}: {name} has no source in {wave}, but {instrument.name} "
                    f"has a file in that wave ({spec.name}) and needs {name} in every wave: "
                    f"{reason}. Add `{wave}: {{variable: …}}` under its waves."
                )
        if not any(v.role == "substantive" for v in instrument.variables_in(wave)):
            raise CodebookError(
                f"{where}: {instrument.name} has a file in {wave} ({spec.name}) but no "
                f"substantive variable with a source in {wave}"
            )
        for rule in instrument.rules:
            asked = [n for n in rule.variables if instrument.variable(n).asked_in(wave)]
            if asked and len(asked) < len(rule.variables):
                absent = [n for n in rule.variables if n not in asked]
                raise CodebookError(
                    f"{where}: rule {rule.name} needs {', '.join(rule.variables)} together, but "
                    f"{', '.join(absent)} have no source in {wave}"
                )


def _census(design: dict[str, Any], where: str) -> Census | None:
    spec = design.get("census")
    if (design.get("type") == "census") != (spec is not None):
        raise CodebookError(f"{where}: a design of type census needs a census entry, and only it")
    if spec is None:
        return None
    if not spec.get("units") or spec.get("target") not in CENSUS_TARGETS:
        raise CodebookError(
            f"{where}: a census names its units and a target, one of {CENSUS_TARGETS}"
        )
    if spec["target"] == "finite_population" and spec["units"] not in CENSUS_COUNTED:
        raise CodebookError(
            f"{where}: a finite population correction needs units the reference data counts "
            f"({', '.join(CENSUS_COUNTED)}), not {spec['units']!r}"
        )
    if design.get("strata") not in (None, "region"):
        raise CodebookError(f"{where}: a census of municipalities is stratified by region or not")
    return Census(spec["units"], spec["target"], _label(spec["reason"], where))


def _weighting(spec: dict[str, Any], where: str, variables: tuple[Variable, ...]) -> Weighting:
    method = spec.get("method", "equal")
    if method not in WEIGHTING_METHODS:
        raise CodebookError(f"{where}: weighting method must be one of {WEIGHTING_METHODS}")
    margins = tuple(tuple(m) for m in spec.get("margins", ()))
    names = {v.name for v in variables}
    unknown = sorted({n for margin in margins for n in margin} - names)
    if unknown:
        raise CodebookError(f"{where}: weighting margins name unknown variables {unknown}")
    if method == "raking" and not margins:
        raise CodebookError(f"{where}: raking needs margins")
    ratio = spec.get("max_ratio_to_median")
    return Weighting(method, margins, float(ratio) if ratio is not None else None)


def _rule(spec: dict[str, Any], where: str, variables: dict[str, Variable]) -> Rule:
    where = f"{where}: rule {spec.get('name')}"
    if spec.get("kind") not in RULE_KINDS:
        raise CodebookError(f"{where}: kind must be one of {RULE_KINDS}")
    names = tuple(spec.get("variables", ()))
    unknown = [n for n in names if n not in variables]
    if unknown or len(names) < 2:
        raise CodebookError(f"{where}: needs two or more known variables, unknown: {unknown}")
    if spec["kind"] == "sum" and "total" not in spec:
        raise CodebookError(f"{where}: a sum rule needs a total")
    return Rule(
        name=str(spec["name"]),
        kind=spec["kind"],
        variables=names,
        message=str(spec.get("message", spec["name"])),
        total=float(spec["total"]) if "total" in spec else None,
        tolerance=float(spec.get("tolerance", 0.0)),
    )


def load_codebook(directory: Path | None = None) -> Codebook:
    """Read and check the codebook under ``directory`` (default: ``data/codebook``)."""
    directory = directory or settings.codebook_dir()
    study_path = directory / "study.yaml"
    study = _read_yaml(study_path, "study.yaml")
    waves = {}
    for spec in study["waves"]:
        waves[spec["id"]] = Wave(
            id=spec["id"],
            year=int(spec["year"]),
            label=_label(spec["label"], f"study.yaml: {spec['id']}"),
            fieldwork_start=spec["fieldwork"]["start"],
            fieldwork_end=spec["fieldwork"]["end"],
            municipality_vintage=int(spec["municipality_vintage"]),
            population_year=int(spec["population_year"]),
        )
    years = [w.year for w in waves.values()]
    if len(set(years)) != len(years):
        raise CodebookError("study.yaml: two waves share a year; asset names use the year")
    if years != sorted(years):
        raise CodebookError(
            "study.yaml: waves must be listed in the order of their years "
            f"(got {', '.join(f'{w.id} {w.year}' for w in waves.values())})"
        )
    missing = {
        kind: MissingCategory(kind, int(spec["code"]), _label(spec, f"study.yaml: {kind}"))
        for kind, spec in study["missing_categories"].items()
    }
    themes = {k: _label(v, f"study.yaml: themes.{k}") for k, v in study["themes"].items()}
    harmonised, source = _load_scales(directory / "scales.yaml", set(missing))
    for scale in harmonised.values():
        clash = sorted((m for m in missing.values() if m.code in scale.codes), key=lambda m: m.code)
        if clash:
            raise CodebookError(
                f"the harmonised scale {scale.name} (scales.yaml) has code {clash[0].code}, "
                f"which study.yaml gives the missing category {clash[0].kind}: a harmonised "
                "code is an answer or a missing category, never both"
            )
    blocks = _read_yaml(directory / "blocks.yaml", "blocks.yaml")["blocks"]
    book = {
        "waves": waves,
        "themes": themes,
        "harmonised": harmonised,
        "source": source,
        "missing_kinds": set(missing),
    }
    instruments = {}
    for name in study["instruments"]:
        path = directory / "instruments" / f"{name}.yaml"
        if not path.exists():
            raise CodebookError(f"study.yaml lists {name!r} but {path} does not exist")
        instrument = _instrument(path, blocks, book)
        if instrument.name != name:
            raise CodebookError(f"{path.name}: declares instrument {instrument.name!r}")
        instruments[name] = instrument
    for wave in waves:
        if not any(wave in i.files for i in instruments.values()):
            raise CodebookError(
                f"study.yaml: wave {wave} has no file in any instrument: add "
                f"`{wave}: {{name: …}}` under files: in instruments/<instrument>.yaml"
            )
    return Codebook(
        version=str(study["codebook_version"]),
        digest=codebook_digest(directory),
        waves=waves,
        instruments=instruments,
        harmonised_scales=harmonised,
        source_scales=source,
        missing_categories=missing,
        themes=themes,
        validation=ValidationDefaults(**study["validation"]),
        derived=_derived(directory / "derived.yaml", instruments),
        study=_study(study.get("study")),
        comparisons=_comparisons(study.get("comparisons") or [], waves),
        split_units=_split_rule(study.get("geography", {})),
    )


def _derived(path: Path, instruments: dict[str, Instrument]) -> DerivedColumns:
    spec = _read_yaml(path, "derived.yaml")
    groups = {
        group: {
            name: _label(label, f"{path.name}: {group}.{name}")
            for name, label in (spec.get(group) or {}).items()
        }
        for group in ("provenance", "harmonised")
    }
    for name in groups["provenance"]:
        if not name.startswith("_"):
            raise CodebookError(f"{path.name}: provenance column {name!r} must start with '_'")
    taken = {v.name for i in instruments.values() for v in i.variables}
    clash = sorted(taken & {*groups["provenance"], *groups["harmonised"]})
    if clash:
        raise CodebookError(f"{path.name}: {clash} are also codebook variables")
    template = _label(spec.get("missing_kind"), f"{path.name}: missing_kind")
    if "{name}" not in template.lv or "{name}" not in template.en:
        raise CodebookError(f"{path.name}: missing_kind must name the answer as {{name}}")
    return DerivedColumns(groups["provenance"], groups["harmonised"], template)


def _study(spec: Any) -> Study:
    where = "study.yaml: study"
    if not isinstance(spec, dict) or "title" not in spec:
        raise CodebookError(f"{where}: needs a title (lv, en), project_no and commissioner")
    return Study(
        title=_label(spec["title"], f"{where}.title"),
        project_no=str(spec.get("project_no", "")),
        commissioner=str(spec.get("commissioner", "")),
    )


def _comparisons(specs: list[Any], waves: dict[str, Wave]) -> dict[str, Comparison]:
    """The comparisons the report makes, each checked against the waves and the others: a
    wave cannot be before the project in one comparison and after it in another."""
    comparisons: dict[str, Comparison] = {}
    phase: dict[str, tuple[str, str]] = {}  # wave -> (before/after the project, said by)
    for number, spec in enumerate(specs, start=1):
        where = f"study.yaml: comparisons[{number}]"
        if not isinstance(spec, dict) or not spec.get("id"):
            raise CodebookError(f"{where}: needs an id, before, after, role and label")
        where = f"study.yaml: comparison {spec['id']}"
        if spec["id"] in comparisons:
            raise CodebookError(f"{where}: the id is used twice")
        before, after, role = spec.get("before"), spec.get("after"), spec.get("role")
        for key, wave in (("before", before), ("after", after)):
            if wave not in waves:
                raise CodebookError(f"{where}: {key} names unknown wave {wave!r}")
        if before == after:
            raise CodebookError(f"{where}: before and after are the same wave ({before})")
        if waves[before].year > waves[after].year:
            raise CodebookError(
                f"{where}: before ({before}, {waves[before].year}) must be the earlier wave "
                f"than after ({after}, {waves[after].year})"
            )
        if role not in COMPARISON_ROLES:
            raise CodebookError(f"{where}: role must be one of {COMPARISON_ROLES}, got {role!r}")
        same = [c.id for c in comparisons.values() if (c.before, c.after) == (before, after)]
        if same:
            raise CodebookError(f"{where}: compares the same waves as comparison {same[0]}")
        phases = {
            before: "after" if role == "persistence" else "before",
            after: "after",
        }
        for wave, side in phases.items():
            known = phase.setdefault(wave, (side, spec["id"]))
            if known[0] != side:
                raise CodebookError(
                    f"{where}: role {role} puts {wave} {side} the project, but comparison "
                    f"{known[1]} puts it {known[0]} the project"
                )
        comparisons[spec["id"]] = Comparison(
            id=str(spec["id"]),
            before=before,
            after=after,
            role=role,
            label=_label(spec.get("label"), f"{where}.label"),
        )
    before = [w for w, (side, _) in phase.items() if side == "before"]
    after = [w for w, (side, _) in phase.items() if side == "after"]
    late = [(b, a) for b in before for a in after if waves[b].year > waves[a].year]
    if late:
        b, a = late[0]
        raise CodebookError(
            f"study.yaml: comparisons put {b} ({waves[b].year}) before the project "
            f"and {a} ({waves[a].year}) after it"
        )
    return comparisons


def _split_rule(spec: dict[str, Any]) -> str:
    rule = spec.get("split_units", "majority_successor")
    if rule not in SPLIT_UNIT_RULES:
        raise CodebookError(f"study.yaml: geography.split_units must be one of {SPLIT_UNIT_RULES}")
    return rule


def codebook_digest(directory: Path) -> str:
    """A fingerprint of every codebook file: a changed contract changes code versions."""
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*.yaml")):
        digest.update(path.relative_to(directory).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@cache
def default_codebook() -> Codebook:
    """The project's codebook, read once per process."""
    return load_codebook()
