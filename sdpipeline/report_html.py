"""The HTML report: one self-contained page people read on screen and print to A4.

At the top the provenance block (the run and date of publication, the code version, every
file the report was built from by SHA-256); then the change of every indicator in each
comparison, one chart per unit; a section per survey with its indicators across waves and by
region; the barriers, services, time use and project participation; and every report table
with what each of its columns holds. Everything is bilingual, as the report tables are.

The run and the date are the one part that differs between two runs on the same delivery:
they are the single element ``<p id="publication">``; the rest of the page is the same bytes.
Nothing is fetched: the charts are inline SVG (``report_charts``), the typeface is embedded.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from importlib import resources
from typing import TYPE_CHECKING

import pandas as pd

from sdpipeline import report_charts as charts
from sdpipeline import report_tables as rt
from sdpipeline.codebook import Label
from sdpipeline.report_columns import ReportColumn, report_columns

if TYPE_CHECKING:
    from pathlib import Path

    from sdpipeline.report_export import Provenance, ReportText

PUBLICATION_ID = "publication"
PANEL_WIDTH = 336
"""A regional panel: two side by side within the chart width."""
SUPPRESSED = Label("neatklāts", "suppressed")
NOT_ASKED = Label("nav jautāts", "not asked")
NOT_PUBLISHED = Label("nav publicēts", "not published")
VERDICTS = {
    "improved": Label("uzlabojās", "improved"),
    "worsened": Label("pasliktinājās", "worsened"),
    "increased": Label("pieauga", "increased"),
    "decreased": Label("samazinājās", "decreased"),
    "no significant change": Label("nav būtisku izmaiņu", "no significant change"),
}


RESPONDENTS = Label("% respondentu", "% of respondents")
# The tables of shares and means drawn as one chart each: (table, what it shows, the columns
# that label a row, the kinds of column drawn, the axis)
TABLE_CHARTS = (
    (
        "barriers_ranked",
        Label(
            "Svērtā daļa, kas šķērsli nosauc, % no atbildējušajiem.",
            "Weighted share naming the barrier, % of those who answered.",
        ),
        (rt.BARRIER_LV, rt.BARRIER_EN),
        {"share"},
        RESPONDENTS,
    ),
    (
        "services_offered_vs_wanted",
        Label(
            "Svērtā daļa, % (vadītāji: dienesti, kas nodrošina; partneri un pašvaldību "
            "vadītāji: kas vēlas paplašināt).",
            "Weighted share, % (heads: services offering it; partners and leaders: wanting it "
            "expanded).",
        ),
        (rt.SERVICE_LV, rt.SERVICE_EN),
        {"offered", "wanted"},
        RESPONDENTS,
    ),
    (
        "specialists_time_use",
        Label("Vidējā svērtā darba laika daļa, %.", "Weighted mean share of working time, %."),
        (rt.TIME_USE_LV, rt.TIME_USE_EN),
        {"time_use"},
        Label("% darba laika", "% of working time"),
    ),
)


@dataclass(frozen=True)
class _Wave:
    id: str
    year: str
    label: Label


def _escape(text: object) -> str:
    return html.escape(str(text))


def _both(label: Label) -> str:
    return _escape(label.lv if label.lv == label.en else f"{label.lv} / {label.en}")


def _style() -> str:
    """The page's styles, with the typeface the charts were laid out in."""
    folder = resources.files("sdpipeline") / "report_assets"
    style = (folder / "report.css").read_text(encoding="utf-8")
    for name, file in (("regular", "DejaVuSans.ttf"), ("bold", "DejaVuSans-Bold.ttf")):
        font = base64.b64encode((folder / "dejavu" / file).read_bytes()).decode("ascii")
        style = style.replace(f"{{{name}}}", font)
    return style


class _Page:
    """The report's sections, from the report tables as published."""

    def __init__(
        self, tables: dict[str, pd.DataFrame], text: ReportText, chart_cache: Path | None = None
    ) -> None:
        self.tables, self.text = tables, text
        self.codebook, self.catalogue = text.codebook, text.catalogue
        self.waves = [_Wave(w.id, str(w.year), w.label) for w in self.codebook.waves.values()]
        self.wave_series = charts.series([(w.year, Label(w.year, w.year)) for w in self.waves])
        self.headline = tables["headline_indicators"].set_index(rt.CODE, drop=False)
        self.charts = charts.Batch(cache=chart_cache)

    # --- what a cell says when it holds no figure -----------------------------------------

    @staticmethod
    def _notes(note: object) -> dict[str, str]:
        """A Notes cell's flags by year ('2017: …; 2023: …')."""
        found = {}
        for part in str(note or "").split("; "):
            year, _, flag = part.partition(": ")
            if year.isdigit() and flag:
                found[year] = flag
        return found

    def _asked(self, code: str, wave: str) -> bool:
        indicator = self.catalogue.get(code)
        variable = self.codebook.instruments[indicator.instrument].variable(indicator.variable)
        return variable.asked_in(wave)

    def _wave_cells(self, code: str, row: pd.Series) -> charts.Row:
        """An indicator row (nationally or in a region) as a chart row: its value in each
        wave, flagged where its Notes say something of the wave (low reliability), and a line
        for each wave without one: suppressed, or not asked."""
        notes = self._notes(row.get(rt.NOTES))
        values, flagged, lines = {}, set(), []
        for wave in self.waves:
            value = row.get(wave.year)
            if value is not None and not pd.isna(value):
                values[wave.year] = float(value)
                if wave.year in notes:
                    flagged.add(wave.year)
            elif not self._asked(code, wave.id):
                lines.append(f"{wave.year}: {NOT_ASKED.lv} / {NOT_ASKED.en}")
            else:
                lines.append(f"{wave.year}: {SUPPRESSED.lv} / {SUPPRESSED.en}")
        return charts.Row(Label("", ""), values, tuple(lines), frozenset(flagged))

    def _name_of(self, code: str) -> Label:
        row = self.headline.loc[code]
        return Label(f"{code} {row[rt.NAME_LV]}", row[rt.NAME_EN])

    # --- sections ---------------------------------------------------------------------------

    def changes(self) -> Iterator[str]:
        """Per comparison, each indicator's change with its CI, one chart per unit."""
        for comparison in self.text.comparisons:
            tag = comparison.tag
            yield (
                f'<section id="change-{_slug(tag)}"><h2>Izmaiņas {tag} / Change {tag}</h2>'
                f"<p>{_escape(comparison.label.lv)} ({_escape(comparison.role.lv)}) / "
                f"{_escape(comparison.label.en)} ({_escape(comparison.role.en)}). Punkts: "
                "izmaiņas, līnija: 95 % ticamības intervāls; pa mērvienībām, katrai sava ass. / "
                "Point: the change, line: its 95 % confidence interval; one chart per unit, each "
                "on its own axis.</p>"
            )
            for unit, codes in self._by_unit(list(self.headline.index)).items():
                rows = {code: self._change_row(code, tag) for code in codes}
                verdicts = sorted({r.verdict for r in rows.values() if r.verdict})
                axis = self.catalogue.report.units[unit].change
                yield f"<h3>{_both(axis)}</h3>" + charts.verdict_legend(
                    [(v, VERDICTS.get(v, Label(v, v))) for v in verdicts]
                )
                bounds = [b for r in rows.values() for b in (r.low, r.high) if b is not None]
                domain = (min([0.0, *bounds]), max([0.0, *bounds]))
                by_instrument = self._by_instrument(codes)
                for instrument, own in by_instrument.items():
                    heading = (
                        f"<h4>{_both(self.codebook.instruments[instrument].label)}</h4>"
                        if len(by_instrument) > 1
                        else ""
                    )
                    yield (
                        f"<figure>{heading}"
                        + self.charts.add(
                            charts.change_chart(
                                [rows[code] for code in own],
                                Label(f"Izmaiņas, {axis.lv}", f"Change, {axis.en}"),
                                domain=domain,
                            )
                        )
                        + "</figure>"
                    )
            yield "</section>"

    def _by_instrument(self, codes: list[str]) -> dict[str, list[str]]:
        """A unit's indicators by survey: one figure each, so that none is taller than a
        printed page."""
        surveys: dict[str, list[str]] = {}
        for code in codes:
            surveys.setdefault(self.catalogue.get(code).instrument, []).append(code)
        return surveys

    def _by_unit(self, codes: list[str]) -> dict[str, list[str]]:
        units: dict[str, list[str]] = {}
        for code in codes:
            units.setdefault(self.catalogue.get(code).unit, []).append(code)
        return units

    def _change_row(self, code: str, tag: str) -> charts.Change:
        row = self.headline.loc[code]
        change = row.get(rt.header(rt.CHANGE, tag))
        interval = row.get(rt.header(rt.CI, tag))
        verdict = row.get(rt.header(rt.VERDICT, tag))
        if change is None or pd.isna(change) or not isinstance(interval, str):
            why_lv = row.get(rt.header(rt.VERDICT_LV, tag)) or NOT_PUBLISHED.lv
            why_en = verdict if isinstance(verdict, str) and verdict else NOT_PUBLISHED.en
            return charts.Change(
                self._name_of(code), None, None, None, None, (f"{why_lv} / {why_en}",)
            )
        low, high = (float(x) for x in interval.strip("[]").split(";"))
        return charts.Change(self._name_of(code), float(change), low, high, str(verdict))

    def instruments(self) -> Iterator[str]:
        regional = self.tables["indicators_by_region"]
        for name, instrument in self.codebook.instruments.items():
            codes = [i.id for i in self.catalogue.indicators if i.instrument == name]
            if not codes:
                continue
            yield (
                f'<section id="instrument-{name}"><h2>{_both(instrument.label)}</h2>'
                f"<p>{_both(instrument.respondents)}.</p>"
                "<h3>Rādītāji pa viļņiem / Indicators in each wave</h3>"
                + charts.legend(self.wave_series, flagged=True)
            )
            for unit, own in self._by_unit(codes).items():
                rows = [
                    replace(
                        self._wave_cells(code, self.headline.loc[code]), label=self._name_of(code)
                    )
                    for code in own
                ]
                axis = self.catalogue.report.units[unit].value
                yield (
                    f"<figure><h4>{_both(axis)}</h4>"
                    + self.charts.add(charts.dot_chart(rows, self.wave_series, axis))
                    + "</figure>"
                )
            panels = [self._regions(code, regional) for code in codes]
            panels = [p for p in panels if p]
            if panels:
                yield (
                    "<h3>Pa statistiskajiem reģioniem / By statistical region</h3>"
                    + charts.legend(self.wave_series, flagged=True)
                    + f'<div class="panels">{"".join(panels)}</div>'
                )
            yield "</section>"

    def _regions(self, code: str, regional: pd.DataFrame) -> str:
        rows = regional[regional[rt.CODE] == code]
        if rows.empty:
            return ""
        chart_rows = [
            replace(
                self._wave_cells(code, row),
                label=Label(str(row[rt.REGION_LV]), str(row[rt.REGION_EN])),
            )
            for _, row in rows.iterrows()
        ]
        unit = self.catalogue.report.units[self.catalogue.get(code).unit].value
        label = self._name_of(code)
        return (
            f'<div class="panel"><h4>{_escape(label.lv)}<br>{_escape(label.en)}</h4>'
            + self.charts.add(charts.dot_chart(chart_rows, self.wave_series, unit, PANEL_WIDTH))
            + "</div>"
        )

    def shares(self) -> Iterator[str]:
        """The tables of shares and means, each as one chart in its unit."""
        yield from self._tables_as_charts()
        yield from self._participation()

    def _section(self, table: str, body: str) -> str:
        title = self.text.tables[table]
        return f'<section id="chart-{table}"><h2>{_both(title)}</h2>{body}</section>'

    def _columns(self, table: str) -> list[ReportColumn]:
        frame = self.tables[table]
        return report_columns(table, list(frame.columns), self.codebook, self.catalogue)

    def _figure_chart(
        self, table: str, label: tuple[str, str], kinds: set[str], axis: Label
    ) -> str:
        """A chart of ``table``: a row per table row (labelled by its ``label`` columns),
        a series per column of ``kinds`` (a colour per survey, a shape per wave)."""
        frame = self.tables[table]
        columns = [c for c in self._columns(table) if c.kind in kinds]
        surveys = list(dict.fromkeys(c.instrument for c in columns))
        waves = list(self.codebook.waves)
        keys = charts.series(
            [(c.name, _series_label(c, self.codebook)) for c in columns],
            [(surveys.index(c.instrument), waves.index(c.waves[0])) for c in columns],
        )
        rows = []
        for _, row in frame.iterrows():
            values = {c.name: float(row[c.name]) for c in columns if not pd.isna(row.get(c.name))}
            missing = tuple(
                f"{_series_label(c, self.codebook).en}: {SUPPRESSED.lv} / {SUPPRESSED.en}"
                for c in columns
                if pd.isna(row.get(c.name))
            )
            rows.append(charts.Row(Label(str(row[label[0]]), str(row[label[1]])), values, missing))
        return charts.legend(keys) + self.charts.add(charts.dot_chart(rows, keys, axis))

    def _tables_as_charts(self) -> Iterator[str]:
        for table, intro, label, kinds, axis in TABLE_CHARTS:
            yield self._section(
                table,
                f"<p>{_escape(intro.lv)} / {_escape(intro.en)}</p>"
                + self._figure_chart(table, label, kinds, axis),
            )

    def _participation(self) -> Iterator[str]:
        """Participants against the other specialists, one chart per unit (the table names
        each indicator by its name, which the catalogue holds once per indicator)."""
        frame = self.tables["project_participation"]
        own = frame[frame[rt.ANALYSIS] == "participants_vs_others"]
        if own.empty:
            return
        units = {i.name.en: i.unit for i in self.catalogue.indicators}
        by_unit: dict[str, list[charts.Change]] = {}
        for _, row in own.iterrows():
            by_unit.setdefault(units[row[rt.NAME_EN]], []).append(self._participation_row(row))
        figures = []
        for unit, rows in by_unit.items():
            axis = self.catalogue.report.units[unit].change
            figures.append(
                f"<figure><h4>{_both(axis)}</h4>"
                + self.charts.add(
                    charts.change_chart(
                        rows, Label(f"Atšķirība, {axis.lv}", f"Difference, {axis.en}")
                    )
                )
                + "</figure>"
            )
        yield self._section(
            "project_participation",
            "<p>Projekta dalībnieki mīnus pārējie speciālisti, ar 95 % ticamības intervālu: "
            "saistība, ne cēlonis (dalība bija brīvprātīga). / Project participants minus the "
            "other specialists, with the 95 % confidence interval: an association, not an "
            "effect (taking part was voluntary).</p>" + "".join(figures),
        )

    @staticmethod
    def _participation_row(row: pd.Series) -> charts.Change:
        label = Label(
            f"{row[rt.WAVE_OR_COMPARISON]}: {row[rt.NAME_LV]}",
            f"{row[rt.WAVE_OR_COMPARISON]}: {row[rt.NAME_EN]}",
        )
        interval = row.get(rt.CI)
        if pd.isna(row.get(rt.DIFFERENCE)) or not isinstance(interval, str):
            return charts.Change(
                label, None, None, None, None, (f"{SUPPRESSED.lv} / {SUPPRESSED.en}",)
            )
        low, high = (float(x) for x in interval.strip("[]").split(";"))
        significant = low > 0 or high < 0
        verdict = "increased" if significant and low > 0 else "decreased" if significant else ""
        return charts.Change(label, float(row[rt.DIFFERENCE]), low, high, verdict)

    def tables_section(self) -> Iterator[str]:
        yield '<section id="tables"><h2>Tabulas / Tables</h2>'
        for name, frame in self.tables.items():
            title = self.text.tables[name]
            columns = self._columns(name)
            yield (
                f'<h3 id="table-{name}">{_both(title)}</h3>'
                f"{self._table(name, frame, columns)}"
                '<details><summary>Kolonnas / Columns</summary><dl class="columns">'
                + "".join(
                    f"<dt>{_escape(c.name)}</dt><dd>{_escape(c.description.lv)}<br>"
                    f"{_escape(c.description.en)}</dd>"
                    for c in columns
                )
                + "</dl></details>"
            )
        yield "</section>"

    def _table(self, name: str, frame: pd.DataFrame, columns: list[ReportColumn]) -> str:
        """The table as read: a Latvian column and its English twin beside it share one
        column, Latvian above English, so that the table fits the page."""
        groups = _paired(columns)
        head = "".join(f"<th>{_escape(_header(group))}</th>" for group in groups)
        body = []
        for _, row in frame.iterrows():
            cells = []
            for group in groups:
                texts = [self._cell(name, row, column) for column in group]
                shown = "<br>".join(t for t in texts if t)
                hidden = all(t.startswith("<i>") for t in texts)
                cells.append(f'<td class="hidden">{shown}</td>' if hidden else f"<td>{shown}</td>")
            body.append(f"<tr>{''.join(cells)}</tr>")
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"

    def _cell(self, name: str, row: pd.Series, column: ReportColumn) -> str:
        value = row[column.name]
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return self._blank(name, row, column)
        return _escape(value)

    def _blank(self, table: str, row: pd.Series, column: ReportColumn) -> str:
        """An empty figure cell says why it is empty: suppressed, or not asked in its wave."""
        if column.is_label or column.kind not in ("estimate", "count"):
            return ""
        code, (wave,) = row.get(rt.CODE), column.waves
        if isinstance(code, str) and not self._asked(code, wave):
            return f"<i>{_both(NOT_ASKED)}</i>"
        return f"<i>{_both(SUPPRESSED)}</i>"


def _paired(columns: list[ReportColumn]) -> list[list[ReportColumn]]:
    """The columns, each Latvian one with the English one that follows it (same kind, '_lv'
    then '_en', same comparison)."""
    groups: list[list[ReportColumn]] = []
    for column in columns:
        previous = groups[-1][-1] if groups else None
        if (
            previous is not None
            and len(groups[-1]) == 1
            and previous.kind.endswith("_lv")
            and column.kind == previous.kind[:-3] + "_en"
            and column.comparison == previous.comparison
        ):
            groups[-1].append(column)
        else:
            groups.append([column])
    return groups


def _header(group: list[ReportColumn]) -> str:
    """A paired column's header: 'Rādītājs / Indicator', 'Vērtējums / Verdict 2017→2023'."""
    if len(group) == 1:
        return group[0].name
    lv, en = (c.name for c in group)
    suffix = ""
    if group[0].comparison is not None:
        common = lv.split(" ")[-1]
        if en.endswith(f" {common}"):
            lv, en, suffix = lv[: -len(common) - 1], en[: -len(common) - 1], f" {common}"
    return f"{lv} / {en}{suffix}"


def _series_label(column: ReportColumn, codebook) -> Label:
    """A series of a table chart: whose answers, in which wave."""
    years = " ".join(str(codebook.waves[w].year) for w in column.waves)
    if column.instrument is None:
        return Label(years, years)
    label = codebook.instruments[column.instrument].label
    return Label(f"{label.lv} {years}", f"{label.en} {years}")


def _slug(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "-", text).strip("-")


def provenance_block(text: ReportText, provenance: Provenance | None) -> str:
    """What the report was built from: the run and date (the one element that differs between
    runs), the code version and every file by SHA-256."""
    if provenance is None:
        publication = "Izveidots ārpus Dagster palaišanas / Made outside a Dagster run"
        files: dict[str, str] = {}
    else:
        publication = (
            f"Publicēts / Published: {_escape(provenance.published_utc)} · Dagster run "
            f"<code>{_escape(provenance.run_id)}</code>"
        )
        files = dict(sorted(provenance.files.items()))
    rows = "".join(
        f"<tr><td>{_escape(name)}</td><td><code>{_escape(sha)}</code></td></tr>"
        for name, sha in files.items()
    )
    return (
        '<section id="provenance"><h2>Izcelsme / Provenance</h2>'
        f'<p id="{PUBLICATION_ID}">{publication}</p>'
        f"<p>Koda versija / Code version: {_escape(text.code_version)}</p>"
        "<p>Katra skaitļa izcelsme (rādītājs, harmonizētais mainīgais, likums, avota mainīgais "
        "katrā vilnī, fails un tā SHA-256) ir cell_lineage.csv un report.cell_lineage. / Where "
        "every figure comes from (indicator, harmonised variable, rule, source variable in each "
        "wave, file and its SHA-256) is in cell_lineage.csv and report.cell_lineage.</p>"
        + (
            '<table class="files"><thead><tr><th>Fails / File</th><th>SHA-256</th></tr></thead>'
            f"<tbody>{rows}</tbody></table>"
            if rows
            else ""
        )
        + "</section>"
    )


def page(
    tables: dict[str, pd.DataFrame],
    text: ReportText,
    provenance: Provenance | None = None,
    chart_cache: Path | None = None,
) -> str:
    """The report as one HTML page; ``chart_cache``: a folder keeping the charts drawn, so that
    a refresh draws only those whose figures changed (``report_charts``)."""
    builder = _Page(tables, text, chart_cache)
    sections = [
        *builder.changes(),
        *builder.instruments(),
        *builder.shares(),
        *builder.tables_section(),
    ]
    contents = "".join(
        f'<li><a href="#{anchor}">{title}</a></li>'
        for anchor, title in re.findall(r'<section id="([^"]+)"><h2>(.*?)</h2>', "".join(sections))
    )
    waves = ", ".join(wave.lv for wave in text.waves)
    compared = "".join(
        f"<li>{_escape(c.tag)}: {_escape(c.label.lv)} ({_escape(c.role.lv)}) / "
        f"{_escape(c.label.en)} ({_escape(c.role.en)})</li>"
        for c in text.comparisons
    )
    about = (
        '<section id="about">'
        f"<p>Šūnas ar mazāk nekā {text.suppress_below} respondentiem vai ar dažu respondentu "
        "dominējošu summu netiek publicētas, un arī tik daudz citu, lai tās nevarētu aprēķināt no "
        f"publicētajām; ar mazāk nekā {text.low_reliability_below} – atzīmētas. Cells with fewer "
        f"than {text.suppress_below} respondents or dominated by a few are suppressed, and enough "
        "others that they cannot be worked out from what is published (secondary suppression); "
        f"fewer than {text.low_reliability_below} are flagged. Grafikos neatklāta vai "
        "nejautāta vērtība nav attēlota, un tās rindā rakstīts, kāpēc. / In the charts, a value "
        "suppressed or not asked is not drawn, and its row says why.</p>"
        f"<p>Salīdzinājumi / Comparisons:</p><ul>{compared}</ul></section>"
    )
    return builder.charts.fill(
        '<!DOCTYPE html><html lang="lv"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_escape(text.title.lv)}: {_escape(waves)}</title>"
        f"<style>{_style()}</style></head><body>"
        f"<header><h1>{_escape(text.study.lv)}: rezultāti / results</h1>"
        f"<p>{_both(text.title)} · {_escape(text.study.en)}</p></header>"
        + provenance_block(text, provenance)
        + f"<nav><h2>Saturs / Contents</h2><ol>{contents}</ol></nav>"
        + about
        + "".join(sections)
        + "</body></html>"
    )
