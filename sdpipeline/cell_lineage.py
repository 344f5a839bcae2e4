"""Cell lineage: every published cell of the report (table, row, column) taken back to its
indicator, the harmonised variables it is computed from and their rule in each wave, the
source variable in each wave's file, and that file by SHA-256.

Dagster records column lineage (``dagster/column_lineage``) but its open-source UI does not draw
it, and column lineage stops at a column where an analyst asks about a cell. This is the gap it
fills: a table of data (``report.cell_lineage``), and the same grouped as a markdown table on
each report asset's page. Rows are named as the tables name them (indicator code, region,
question text) and resolved against the catalogue and the codebook; the files, source variables
and rules are the harmonised layer's own provenance (``harmonised.<instrument>_provenance``),
the rules for machines the crosswalk the harmonised tables are built from (``reference.recodes``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pandas as pd

from sdpipeline import attribution, recodes
from sdpipeline import report_tables as rt
from sdpipeline.codebook import Codebook
from sdpipeline.indicators import Catalogue, Indicator
from sdpipeline.report_columns import ReportColumn, report_columns

COLUMNS = [
    "report_table",
    "row_number",
    "row_label",
    "column_name",
    "column_kind",
    "indicator_id",
    "domain",
    "computed_as",
    "instrument",
    "harmonised_table",
    "harmonised_variable",
    "variable_role",
    "wave",
    "source_variable",
    "rule",
    "recode",
    "source_file",
    "source_sha256",
]
# Columns the harmonised step derives from a delivered variable rather than reading one.
DERIVED_FROM = {"municipality_type": "municipality", "municipality_2021": "municipality"}
NATIONAL = "national"


class LineageError(ValueError):
    """A report row that the catalogue and codebook cannot name."""


@dataclass(frozen=True)
class Use:
    """One harmonised variable a cell is computed from; ``waves``: in which (None: every wave
    the column draws on)."""

    instrument: str
    variable: str
    role: str
    waves: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Row:
    """What a report row is about."""

    label: str
    uses: tuple[Use, ...]
    indicator: Indicator | None = None
    domain: str = NATIONAL
    computed_as: str = ""
    waves: tuple[str, ...] | None = None
    """The waves the row's figures draw on, where the row rather than the column says."""


def computed_as(indicator: Indicator, codebook: Codebook) -> str:
    """How an indicator is computed from its harmonised variable, in words."""
    codes = {m.kind: m.code for m in codebook.missing_categories.values()}
    if indicator.statistic in ("proportion", "index"):
        excluded = [codes["no_answer"], codes["not_asked"]]
        if indicator.denominator == "valid" or indicator.statistic == "index":
            excluded.append(codes["hard_to_say"])
        base = f"answers other than {', '.join(str(c) for c in sorted(excluded))}"
        if indicator.statistic == "proportion":
            success = ", ".join(str(c) for c in indicator.success)
            return f"weighted share of {base} that are {success} in {indicator.variable}, × 100"
        scores = ", ".join(f"{c}→{s:g}" for c, s in indicator.scores.items())
        return f"weighted mean score of {indicator.variable} ({scores}) over {base}"
    if indicator.statistic == "mean":
        return f"weighted mean of {indicator.variable} (missing answers left out)"
    denominator = indicator.denominator_variable
    if denominator == "municipality_population":
        denominator = "the population of the respondent's municipality in the wave's year"
    return f"Σ weight·{indicator.variable} / Σ weight·{denominator} × {indicator.scale:g}"


RULE_FIELDS = ("rule", "source_low", "source_high", "harmonised_code", "missing_kind")


class Sources:
    """Where each harmonised variable comes from in each wave: the harmonised layer's
    provenance (file, checksum, source variable, rule in words), and for machines its rows of
    the crosswalk the harmonised tables are built from (``reference.recodes``) as JSON."""

    def __init__(self, provenance: pd.DataFrame, codebook: Codebook) -> None:
        key = ("instrument", "variable", "wave")
        self.provenance = {tuple(r[k] for k in key): r for r in provenance.to_dict("records")}
        rules: dict[tuple, list[dict]] = {}
        for row in recodes.crosswalk(codebook).to_dict("records"):
            rules.setdefault(tuple(row[k] for k in key), []).append(
                {k: _plain(row[k]) for k in RULE_FIELDS}
            )
        self.rules = {
            k: json.dumps(v, ensure_ascii=False, sort_keys=True) for k, v in rules.items()
        }
        self.found: dict[tuple[str, str, str, str], dict[str, object]] = {}

    def of(self, use: Use, wave: str) -> dict[str, object]:
        key = (use.instrument, use.variable, wave, use.role)
        if key not in self.found:
            found = self.provenance[key[:3]]
            self.found[key] = {
                "instrument": use.instrument,
                "harmonised_table": f"harmonised.{use.instrument}",
                "harmonised_variable": use.variable,
                "variable_role": use.role,
                "wave": wave,
                "source_variable": _plain(found["source_variable"]),
                "rule": found["rule"],
                "recode": self.rules.get(key[:3]),
                "source_file": _plain(found["source_file"]),
                "source_sha256": _plain(found["source_sha256"]),
            }
        return self.found[key]


def _plain(value: object) -> object:
    """A cell as JSON and DuckDB take it: missing as None, whole codes as int."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return None
    if hasattr(value, "item"):
        value = value.item()
    return value


def _indicator_uses(indicator: Indicator, codebook: Codebook) -> list[Use]:
    if indicator.statistic != "ratio":
        return [Use(indicator.instrument, indicator.variable, "answer")]
    denominator = indicator.denominator_variable
    if denominator == "municipality_population":
        denominator = "municipality"
    return [
        Use(indicator.instrument, indicator.variable, "numerator"),
        Use(indicator.instrument, denominator, "denominator"),
    ]


class _Resolver:
    """Names each row of a report table: its indicator, domain and variables."""

    def __init__(self, codebook: Codebook, catalogue: Catalogue) -> None:
        self.codebook, self.catalogue = codebook, catalogue
        self.by_name = {i.name.en: i for i in catalogue.indicators}
        self.year_waves = {str(w.year): w.id for w in codebook.waves.values()}
        self.tagged = {rt.tag(c, codebook): c for c in codebook.comparisons.values()}

    def indicator(self, code: str) -> Indicator:
        try:
            return self.catalogue.get(code)
        except StopIteration:
            raise LineageError(f"no indicator {code!r} in the catalogue") from None

    def headline(self, row: pd.Series) -> Row:
        indicator = self.indicator(row[rt.CODE])
        return Row(
            indicator.id,
            tuple(_indicator_uses(indicator, self.codebook)),
            indicator,
            computed_as=computed_as(indicator, self.codebook),
        )

    def by_region(self, row: pd.Series) -> Row:
        indicator = self.indicator(row[rt.CODE])
        codes = self.codebook.harmonised_scales["region6"].codes
        region = next((c for c, label in codes.items() if label.lv == row[rt.REGION_LV]), None)
        if region is None:
            raise LineageError(f"no region {row[rt.REGION_LV]!r} in the codebook's region6")
        uses = [*_indicator_uses(indicator, self.codebook)]
        uses.append(Use(indicator.instrument, "region", "domain"))
        return Row(
            f"{indicator.id} {row[rt.REGION_LV]}",
            tuple(uses),
            indicator,
            domain=f"region = {region} ({row[rt.REGION_LV]} / {row[rt.REGION_EN]})",
            computed_as=computed_as(indicator, self.codebook),
        )

    def _item(self, variables: Iterable[str], text: str, instrument: str, what: str) -> str:
        for name in variables:
            if rt.question_tail(self.codebook, instrument, name).en == text:
                return name
        raise LineageError(f"no {what} {text!r} in the codebook")

    def barrier(self, row: pd.Series) -> Row:
        name = self._item(
            self.catalogue.groups["barriers"], row[rt.BARRIER_EN], "partners", "barrier"
        )
        return Row(
            name,
            (Use("partners", name, "answer"), Use("leaders", name, "answer")),
            computed_as=f"weighted share answering 1 (yes) in {name}, of answers 0 or 1, × 100",
        )

    def service(self, row: pd.Series) -> Row:
        pairs = self.catalogue.groups["services_offered_vs_wanted"]
        wanted = self._item([p["wanted"] for p in pairs], row[rt.SERVICE_EN], "partners", "service")
        offered = next(p["offered"] for p in pairs if p["wanted"] == wanted)
        return Row(
            wanted,
            (
                Use("heads", offered, "offered"),
                Use("partners", wanted, "wanted"),
                Use("leaders", wanted, "wanted"),
            ),
            computed_as="weighted share answering 1 (yes), of answers 0 or 1, × 100; the gap: "
            "the mean of the partners' and leaders' shares minus the heads' share",
        )

    def time_use(self, row: pd.Series) -> Row:
        spec = self.codebook.instruments["specialists"]
        name = next(
            (
                v
                for v in self.catalogue.groups["time_use"]
                if spec.variable(v).question.en == row[rt.TIME_USE_EN]
            ),
            None,
        )
        if name is None:
            raise LineageError(f"no time-use question {row[rt.TIME_USE_EN]!r} in the codebook")
        return Row(
            name,
            (Use("specialists", name, "answer"),),
            computed_as=f"weighted mean of {name} (missing answers left out)",
        )

    def participation(self, row: pd.Series) -> Row:
        indicator = self.by_name.get(row[rt.NAME_EN])
        if indicator is None:
            raise LineageError(f"no indicator named {row[rt.NAME_EN]!r} in the catalogue")
        where = str(row[rt.WAVE_OR_COMPARISON])
        outcome = _indicator_uses(indicator, self.codebook)
        if row[rt.ANALYSIS] == "participants_vs_others":
            wave = self.year_waves[where]
            return Row(
                f"{indicator.id} {where} participants vs others",
                (*outcome, Use("specialists", "project_participant", "group")),
                indicator,
                domain="project_participant = 1 against = 0",
                computed_as=computed_as(indicator, self.codebook),
                waves=(wave,),
            )
        comparison = self.tagged[where]
        attributed = attribution.attribute_wave(comparison)
        heads = [
            Use("heads", name, "municipality covariate", (attributed,))
            for name in attribution.MUNICIPALITY_ANSWERS
        ]
        return Row(
            f"{indicator.id} {where} {row[rt.TERM]}",
            (*outcome, Use("specialists", "municipality", "cluster"), *heads),
            indicator,
            domain="municipalities on the 2021 map",
            computed_as="weighted least squares on municipality means of "
            f"{indicator.variable}, clustered by municipality",
            waves=(comparison.before, comparison.after),
        )

    def decomposition(self, row: pd.Series) -> Row:
        indicator = self.indicator(row[rt.CODE])
        comparison = self.tagged[str(row[rt.WAVE_OR_COMPARISON])]
        groups = [g.strip() for g in str(row[rt.GROUPS]).split("×")]
        uses = [*_indicator_uses(indicator, self.codebook)]
        uses += [Use(indicator.instrument, DERIVED_FROM.get(g, g), "group") for g in groups]
        return Row(
            f"{indicator.id} {row[rt.WAVE_OR_COMPARISON]}",
            tuple(uses),
            indicator,
            computed_as=f"shift-share of the change in {indicator.variable} over "
            f"{' × '.join(groups)}",
            waves=(comparison.before, comparison.after),
        )

    def instrument_notes(self, row: pd.Series) -> Row:
        name = next(
            (
                name
                for name, spec in self.codebook.instruments.items()
                if row[rt.INSTRUMENT_COLUMN] == f"{spec.label.lv} / {spec.label.en}"
            ),
            None,
        )
        if name is None:
            raise LineageError(f"no instrument {row[rt.INSTRUMENT_COLUMN]!r} in the codebook")
        instrument = self.codebook.instruments[name]
        design = [instrument.design.get("strata"), instrument.design.get("psu")]
        uses = [Use(name, instrument.id_variable.name, "respondent")]
        uses += [Use(name, v, "design") for v in dict.fromkeys(design) if v]
        return Row(
            instrument.label.en,
            tuple(uses),
            computed_as="respondents: rows of the wave; degrees of freedom: sampling units "
            "(the design's psu, else each respondent) with a respondent, less the strata",
        )


RESOLVERS: dict[str, Callable[[_Resolver], Callable[[pd.Series], Row]]] = {
    "headline_indicators": lambda r: r.headline,
    "indicators_by_region": lambda r: r.by_region,
    "barriers_ranked": lambda r: r.barrier,
    "services_offered_vs_wanted": lambda r: r.service,
    "specialists_time_use": lambda r: r.time_use,
    "project_participation": lambda r: r.participation,
    "change_decomposition": lambda r: r.decomposition,
    "instrument_notes": lambda r: r.instrument_notes,
}


def _newest_shares(columns: list[ReportColumn]) -> dict[str, str]:
    """barriers_ranked: the wave of each instrument's newest column, which the rank reads."""
    newest: dict[str, str] = {}
    for column in columns:
        if column.kind == "share" and column.instrument not in newest:
            newest[column.instrument] = column.waves[0]
    return newest


def _cell_uses(row: Row, column: ReportColumn, columns: list[ReportColumn]) -> list[Use]:
    """The variables and waves one cell is computed from."""
    if column.is_label:
        return []
    waves = column.waves if row.waves is None else row.waves
    uses = []
    for use in row.uses:
        if column.instrument is not None and use.instrument != column.instrument:
            continue
        if column.kind == "rank":
            wave = _newest_shares(columns).get(use.instrument)
            used = (wave,) if wave else ()
        else:
            used = use.waves if use.waves is not None else waves
        uses.append(Use(use.instrument, use.variable, use.role, used))
    return uses


def table_lineage(
    table: str,
    frame: pd.DataFrame,
    sources: Sources,
    codebook: Codebook,
    catalogue: Catalogue,
) -> pd.DataFrame:
    """One row per cell of ``frame`` (report table ``table``) and harmonised variable and wave
    it is computed from; a label cell has one row naming its row, and no file."""
    columns = report_columns(table, list(frame.columns), codebook, catalogue)
    resolve = RESOLVERS[table](_Resolver(codebook, catalogue))
    records = []
    for number, (_, values) in enumerate(frame.iterrows(), start=1):
        row = resolve(values)
        for column in columns:
            cell = {
                "report_table": table,
                "row_number": number,
                "row_label": row.label,
                "column_name": column.name,
                "column_kind": column.kind,
                "indicator_id": row.indicator.id if row.indicator else None,
                "domain": None if column.is_label else row.domain,
                "computed_as": None if column.is_label else row.computed_as,
            }
            uses = _cell_uses(row, column, columns)
            if not uses:
                records.append(cell)
            for use in uses:
                for wave in use.waves:
                    records.append(cell | sources.of(use, wave))
    return pd.DataFrame.from_records(records, columns=COLUMNS).astype({"row_number": "int64"})


def cell_lineage(
    tables: dict[str, pd.DataFrame],
    provenance: pd.DataFrame,
    codebook: Codebook,
    catalogue: Catalogue,
) -> pd.DataFrame:
    """Every report table's cells, in the tables' order."""
    sources = Sources(provenance, codebook)
    return pd.concat(
        [
            table_lineage(name, frame, sources, codebook, catalogue)
            for name, frame in tables.items()
        ],
        ignore_index=True,
    )


_MARKDOWN_KEYS = [
    "harmonised_variable",
    "variable_role",
    "wave",
    "source_variable",
    "source_file",
    "source_sha256",
    "rule",
]


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def lineage_markdown(lineage: pd.DataFrame) -> str:
    """A report table's lineage as the UI shows it: per row (every region of an indicator
    together), each variable and wave with its source variable, rule, file and checksum, and
    the columns computed from it. Grouped in plain Python, in the order the rows come: a
    pandas group-by over Arrow text took a tenth of a second for the sample's largest table."""
    listed = ["indicator_id", "row_label", *_MARKDOWN_KEYS, "column_name"]
    groups: dict[tuple, tuple[tuple, dict[object, None]]] = {}
    for indicator, label, *shown, column in lineage[listed].itertuples(index=False, name=None):
        if _missing(shown[2]):  # a label cell: no wave, no source
            continue
        shown = [label if _missing(indicator) else indicator, *shown]
        key = tuple(None if _missing(v) else v for v in shown)
        groups.setdefault(key, (tuple(shown), {}))[1][column] = None
    lines = [
        "| row | variable (role) | wave | source variable | file | SHA-256 | rule | columns |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (row, variable, role, wave, source, file, sha, rule), names in groups.values():
        lines.append(
            f"| {row} | {variable} ({role}) | {wave} | {_md(source)} | {_md(file)} | "
            f"`{_md(sha)}` | {_md(rule)} | {_md('; '.join(map(str, names)))} |"
        )
    return "\n".join(lines)


def _md(value: object) -> str:
    if _missing(value):
        return "—"
    return str(value).replace("|", "\\|")
