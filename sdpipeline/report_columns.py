"""What each column of a report table holds: its kind, the waves (and comparison, survey) its
cells draw on, and its description in Latvian and English.

The headers are ``report_tables``' own; the descriptions are the catalogue's
(``report.columns``), filled with the codebook's wave, comparison and instrument labels. A
column a report table publishes without a meaning here is refused (``ReportColumnError``), so
nothing reaches the report undescribed or without lineage. The UI's column schemas,
``report.cell_lineage`` and the HTML report all read the columns from here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from sdpipeline import report_tables as rt
from sdpipeline.codebook import Codebook, Label
from sdpipeline.indicators import Catalogue


class ReportColumnError(ValueError):
    """A report table has a column this module gives no meaning."""


@dataclass(frozen=True)
class ReportColumn:
    name: str
    kind: str
    """A key of the catalogue's ``report.columns``."""
    description: Label
    waves: tuple[str, ...] = ()
    """The waves whose answers the column's cells are computed from (none: a label)."""
    comparison: str | None = None
    instrument: str | None = None
    """Where the column, not the row, says whose answers a cell is (barriers, services)."""

    @property
    def is_label(self) -> bool:
        """A label names its row (text from the catalogue or codebook); a figure is computed."""
        return not self.waves


# Columns that name the row; their text comes from the catalogue or the codebook.
LABELS = {
    rt.NUMBER: "row_number",
    rt.CODE: "code",
    rt.NAME_LV: "name_lv",
    rt.NAME_EN: "name_en",
    rt.INSTRUMENT_COLUMN: "instrument",
    rt.UNIT: "unit",
    rt.REGION_LV: "region_lv",
    rt.REGION_EN: "region_en",
    rt.BARRIER_LV: "barrier_lv",
    rt.BARRIER_EN: "barrier_en",
    rt.SERVICE_LV: "service_lv",
    rt.SERVICE_EN: "service_en",
    rt.TIME_USE_LV: "time_use_lv",
    rt.TIME_USE_EN: "time_use_en",
    rt.ANALYSIS: "analysis",
    rt.WAVE_OR_COMPARISON: "wave_or_comparison",
    rt.TERM: "term",
    rt.GROUPS: "groups",
    rt.TARGET_LV: "target_lv",
    rt.TARGET_EN: "target_en",
}


class _Columns:
    """Builds a table's possible columns, each described from the catalogue's templates."""

    def __init__(self, codebook: Codebook, catalogue: Catalogue) -> None:
        self.codebook, self.catalogue = codebook, catalogue
        self.templates = catalogue.report.columns

    def column(
        self,
        name: str,
        kind: str,
        waves: Sequence[str] = (),
        comparison: str | None = None,
        instrument: str | None = None,
    ) -> ReportColumn:
        if kind not in self.templates:
            raise ReportColumnError(f"catalogue.yaml: report.columns has no entry for {kind!r}")
        return ReportColumn(
            name,
            kind,
            self._fill(self.templates[kind], waves, comparison, instrument),
            tuple(waves),
            comparison,
            instrument,
        )

    def _fill(
        self, template: Label, waves: Sequence[str], comparison: str | None, instrument: str | None
    ) -> Label:
        texts = {}
        for language in ("lv", "en"):
            values = {
                "suppress": self.catalogue.suppress_below,
                "flag": self.catalogue.low_reliability_below,
                "wave": " / ".join(getattr(self.codebook.waves[w].label, language) for w in waves),
                "comparison": "",
                "instrument": "",
            }
            if comparison is not None:
                spec = self.codebook.comparisons[comparison]
                values["comparison"] = (
                    f"{rt.tag(spec, self.codebook)} ({getattr(spec.label, language)})"
                )
            if instrument is not None:
                values["instrument"] = getattr(
                    self.codebook.instruments[instrument].label, language
                )
            texts[language] = getattr(template, language).format(**values)
        return Label(**texts)

    def labels(self) -> Iterator[ReportColumn]:
        for name, kind in LABELS.items():
            yield self.column(name, kind)

    def per_wave(self, kind: str, header: Callable[[str], str]) -> Iterator[ReportColumn]:
        for wave in self.codebook.waves:
            yield self.column(header(wave), kind, [wave])

    def per_comparison(self, kinds: dict[str, str]) -> Iterator[ReportColumn]:
        """``kinds``: kind → the header's stem, which the comparison's tag follows."""
        for comparison in self.codebook.comparisons.values():
            suffix = rt.tag(comparison, self.codebook)
            for kind, stem in kinds.items():
                yield self.column(
                    rt.header(stem, suffix),
                    kind,
                    [comparison.before, comparison.after],
                    comparison.id,
                )

    def all_waves(self, name: str, kind: str) -> ReportColumn:
        return self.column(name, kind, list(self.codebook.waves))


def _headline(c: _Columns) -> Iterator[ReportColumn]:
    yield from c.labels()
    yield from c.per_wave("estimate", lambda w: rt.year_column(c.codebook, w))
    yield from c.per_comparison(
        {
            "change": rt.CHANGE,
            "interval": rt.CI,
            "p_value": rt.P,
            "verdict_lv": rt.VERDICT_LV,
            "verdict_en": rt.VERDICT,
            "comparability": rt.COMPARABILITY,
        }
    )
    yield c.all_waves(rt.NOTES, "notes")


def _by_region(c: _Columns) -> Iterator[ReportColumn]:
    yield from _headline(c)
    yield from c.per_comparison({"verdict": rt.VERDICT_BOTH})
    yield from c.per_wave("count", lambda w: rt.count_column(c.codebook, w))


def _barriers(c: _Columns) -> Iterator[ReportColumn]:
    yield from c.labels()
    yield c.all_waves(rt.RANK, "rank")
    for instrument in ("partners", "leaders"):
        label = c.codebook.instruments[instrument].label
        for wave in c.codebook.waves:
            yield c.column(
                rt.share_column(label, c.codebook, wave), "share", [wave], instrument=instrument
            )


def _services(c: _Columns) -> Iterator[ReportColumn]:
    yield from c.labels()
    for wave in c.codebook.waves:
        for what in ("heads", "partners", "leaders"):
            kind = "offered" if what == "heads" else "wanted"
            yield c.column(rt.service_column(what, c.codebook, wave), kind, [wave], instrument=what)
        yield c.column(rt.service_column("gap", c.codebook, wave), "gap", [wave])


def _time_use(c: _Columns) -> Iterator[ReportColumn]:
    yield from c.labels()
    yield from c.per_wave("time_use", lambda w: rt.year_column(c.codebook, w, " (%)"))
    yield from c.per_comparison({"time_use_change": rt.TIME_CHANGE, "interval": rt.CI})


def _participation(c: _Columns) -> Iterator[ReportColumn]:
    yield from c.labels()
    for name, kind in (
        (rt.PARTICIPANTS, "participants"),
        (rt.OTHERS, "others"),
        (rt.DIFFERENCE, "difference"),
        (rt.CI, "difference_interval"),
        (rt.P, "difference_p"),
        (rt.BOOTSTRAP_CI, "bootstrap_interval"),
        (rt.BOOTSTRAP_P, "bootstrap_p"),
        (rt.UNITS, "units_count"),
        (rt.CLUSTERS, "clusters_per_group"),
        (rt.CAVEAT, "caveat"),
    ):
        yield c.all_waves(name, kind)


def _decomposition(c: _Columns) -> Iterator[ReportColumn]:
    yield from c.labels()
    for name, kind in (
        (rt.CHANGE, "decomposition_change"),
        (rt.WITHIN, "within"),
        (rt.COMPOSITION, "composition"),
    ):
        yield c.all_waves(name, kind)


def _instrument_notes(c: _Columns) -> Iterator[ReportColumn]:
    yield from c.labels()
    yield c.all_waves(rt.RESPONDENTS, "respondents")
    yield c.all_waves(rt.DEGREES_OF_FREEDOM, "degrees_of_freedom")


TABLES: dict[str, Callable[[_Columns], Iterator[ReportColumn]]] = {
    "headline_indicators": _headline,
    "indicators_by_region": _by_region,
    "barriers_ranked": _barriers,
    "services_offered_vs_wanted": _services,
    "specialists_time_use": _time_use,
    "project_participation": _participation,
    "change_decomposition": _decomposition,
    "instrument_notes": _instrument_notes,
}


def report_columns(
    table: str, columns: Sequence[str], codebook: Codebook, catalogue: Catalogue
) -> list[ReportColumn]:
    """The meaning of each of ``columns`` (a report table's, in order)."""
    if table not in TABLES:
        raise ReportColumnError(f"report.{table}: report_columns knows no such table")
    known: dict[str, ReportColumn] = {}
    for column in TABLES[table](_Columns(codebook, catalogue)):
        known.setdefault(column.name, column)
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise ReportColumnError(
            f"report.{table}: columns {unknown} have no meaning in report_columns; say what "
            "they hold (report_columns.TABLES and the catalogue's report.columns)"
        )
    return [known[c] for c in columns]


def descriptions(
    table: str, columns: Sequence[str], codebook: Codebook, catalogue: Catalogue
) -> dict[str, Label]:
    return {c.name: c.description for c in report_columns(table, columns, codebook, catalogue)}
