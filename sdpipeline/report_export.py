"""Publish the report tables as files: one formatted workbook (a sheet per table), a CSV per
table (as Latvian Excel opens them: UTF-8 with BOM, ';' and decimal comma), one HTML report
with its charts drawn as inline SVG, so it opens offline with nothing else beside it, and the
report schema as a DuckDB file of its own for read-only querying.

Files are written to a staging folder and swapped in whole: a failed export never leaves a
mixture of old and new files. Every title, heading and note comes from the codebook (the
study, its waves and comparisons) and the catalogue (the report's and its tables' titles).
"""

from __future__ import annotations

import datetime as dt
import html
import io
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import openpyxl
import pandas as pd
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from sdpipeline.codebook import Codebook, Label
from sdpipeline.generator.writers import pin_zip
from sdpipeline.indicators import Catalogue
from sdpipeline.report_tables import CHANGE, CI, VERDICT, header, tag

WORKBOOK = "sdpipeline_report.xlsx"
HTML_REPORT = "report.html"
DATABASE = "sdpipeline_report.duckdb"
ROLES = {
    "project_effect": Label("pārmaiņas projekta laikā", "change over the project"),
    "persistence": Label("noturība pēc projekta", "persistence after the project"),
}


@dataclass(frozen=True)
class Comparison:
    """A comparison as the report names it: its headers' suffix, its label and its role."""

    tag: str
    label: Label
    role: Label


@dataclass(frozen=True)
class ReportText:
    """What the report says about itself, from the codebook and the catalogue."""

    title: Label
    study: Label
    waves: tuple[Label, ...]
    comparisons: tuple[Comparison, ...]
    tables: dict[str, Label]
    region_indicator: str
    region_year: str
    suppress_below: int
    low_reliability_below: int
    # the files' own dates, for stable bytes: the end of the latest fieldwork, at noon
    stamp: dt.datetime

    @classmethod
    def of(cls, codebook: Codebook, catalogue: Catalogue, tables: list[str]) -> ReportText:
        latest = max(codebook.waves.values(), key=lambda w: w.year)
        return cls(
            title=catalogue.report.title,
            study=codebook.study.title,
            waves=tuple(w.label for w in codebook.waves.values()),
            comparisons=tuple(
                Comparison(tag(c, codebook), c.label, ROLES[c.role])
                for c in codebook.comparisons.values()
            ),
            tables={name: catalogue.report.table(name).title for name in tables},
            region_indicator=catalogue.report.region_chart,
            region_year=str(latest.year),
            suppress_below=catalogue.suppress_below,
            low_reliability_below=catalogue.low_reliability_below,
            stamp=dt.datetime.combine(latest.fieldwork_end, dt.time(12, 0)),
        )


def write_workbook(tables: dict[str, pd.DataFrame], path: Path, text: ReportText) -> None:
    book = openpyxl.Workbook()
    book.remove(book.active)
    header_font = Font(bold=True, color="FFFFFF")
    fill = PatternFill("solid", fgColor="1F4E79")
    for name, frame in tables.items():
        sheet = book.create_sheet(title=name[:31])
        title = text.tables[name]
        sheet.append([f"{title.lv} / {title.en}"])
        sheet["A1"].font = Font(bold=True, size=13)
        sheet.append(list(frame.columns))
        for cell in sheet[2]:
            cell.font, cell.fill = header_font, fill
            cell.alignment = Alignment(wrap_text=True, vertical="top")
        for row in frame.itertuples(index=False):
            sheet.append(
                [None if pd.isna(v) else (v.item() if hasattr(v, "item") else v) for v in row]
            )
        for index, column in enumerate(frame.columns, start=1):
            width = max([len(str(column))] + [len(str(v)) for v in frame[column].head(200)])
            sheet.column_dimensions[get_column_letter(index)].width = min(max(width + 2, 8), 60)
            if pd.api.types.is_float_dtype(frame[column]):
                for cell in sheet.iter_rows(min_row=3, min_col=index, max_col=index):
                    cell[0].number_format = "0.0"
        sheet.freeze_panes = "A3"
    book.properties.creator = "sdpipeline"
    book.properties.created = book.properties.modified = text.stamp
    buffer = io.BytesIO()
    book.save(buffer)
    path.write_bytes(pin_zip(buffer.getvalue(), text.stamp))


def _svg_changes(headline: pd.DataFrame, suffix: str) -> str:
    """One comparison's change of every indicator with its 95 % CI, as a dot-and-whisker
    plot; ``suffix``: the comparison's tag, which ends its columns' headers."""
    change_column, ci_column = header(CHANGE, suffix), header(CI, suffix)
    rows = headline.dropna(subset=[change_column, ci_column])
    bounds = [tuple(float(x) for x in ci.strip("[]").split(";")) for ci in rows[ci_column]]
    span = max([abs(v) for pair in bounds for v in pair] + [1.0])
    width, left, line = 760, 330, 18
    height = line * len(rows) + 40
    scale = (width - left - 20) / (2 * span)
    zero = left + span * scale
    colour = {"improved": "#2e7d32", "worsened": "#c62828"}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="Change with 95% confidence intervals">',
        f'<line x1="{zero:.1f}" y1="10" x2="{zero:.1f}" y2="{height - 20}" stroke="#888"/>',
    ]
    for i, (row, (low, high)) in enumerate(zip(rows.itertuples(index=False), bounds, strict=True)):
        y = 20 + i * line
        change = float(row[headline.columns.get_loc(change_column)])
        verdict = row[headline.columns.get_loc(header(VERDICT, suffix))]
        label = html.escape(f"{row[1]} {row[3]}"[:52])
        c = colour.get(verdict, "#555")
        parts += [
            f'<text x="4" y="{y + 4}" font-size="11">{label}</text>',
            f'<line x1="{zero + low * scale:.1f}" y1="{y}" x2="{zero + high * scale:.1f}" '
            f'y2="{y}" stroke="{c}" stroke-width="2"/>',
            f'<circle cx="{zero + change * scale:.1f}" cy="{y}" r="4" fill="{c}"/>',
        ]
    parts.append(
        f'<text x="{zero:.1f}" y="{height - 4}" font-size="10" text-anchor="middle">0</text></svg>'
    )
    return "".join(parts)


def _svg_regions(by_region: pd.DataFrame, code: str, year_column: str) -> str:
    """One indicator's latest value by region, as bars."""
    rows = by_region[by_region["Kods / Code"] == code].dropna(subset=[year_column])
    if rows.empty:
        return "<p>—</p>"
    values = rows[year_column].astype(float).tolist()
    names = rows["Reģions"].astype(str).tolist()
    top = max(max(values), 1.0)
    width, left, bar = 560, 110, 24
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{bar * len(rows) + 20}" role="img">'
    ]
    for i, (name, value) in enumerate(zip(names, values, strict=True)):
        length = (width - left - 60) * value / top
        y = 10 + i * bar
        parts += [
            f'<text x="4" y="{y + 14}" font-size="12">{html.escape(name)}</text>',
            f'<rect x="{left}" y="{y + 2}" width="{length:.1f}" height="{bar - 8}" '
            'fill="#1f4e79"/>',
            f'<text x="{left + length + 4:.1f}" y="{y + 14}" font-size="12">{value:.1f}</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)


def write_database(tables: dict[str, pd.DataFrame], path: Path) -> None:
    """The report schema alone, in its own DuckDB file: analysts and auditors open it read-only
    at any time, even while a run holds the warehouse."""
    with duckdb.connect(str(path)) as connection:
        connection.execute("CREATE SCHEMA report")
        for name, frame in tables.items():
            connection.register("_frame", frame)
            connection.execute(f'CREATE TABLE report."{name}" AS SELECT * FROM _frame')
            connection.unregister("_frame")


def write_html(tables: dict[str, pd.DataFrame], path: Path, text: ReportText) -> None:
    style = (
        "body{font-family:system-ui,Arial,sans-serif;margin:2em;max-width:1200px;color:#222}"
        "table{border-collapse:collapse;font-size:12px;margin:1em 0}"
        "th{background:#1f4e79;color:#fff;padding:4px 6px;text-align:left}"
        "td{border-bottom:1px solid #ddd;padding:3px 6px}h2{margin-top:2em}"
    )
    sections = []
    for comparison in text.comparisons:
        sections += [
            f"<h2>Izmaiņas {comparison.tag} ar 95 % ticamības intervāliem / Change "
            f"{comparison.tag} with 95 % confidence intervals</h2>",
            _svg_changes(tables["headline_indicators"], comparison.tag),
        ]
    region = text.region_indicator
    sections += [
        f"<h2>{html.escape(region)} pa reģioniem, {text.region_year} / by region</h2>",
        _svg_regions(tables["indicators_by_region"], region, text.region_year),
    ]
    for name, frame in tables.items():
        title = text.tables[name]
        sections.append(f"<h2>{html.escape(title.lv)} / {html.escape(title.en)}</h2>")
        sections.append(frame.to_html(index=False, na_rep="", escape=True, border=0))
    waves = ", ".join(wave.lv for wave in text.waves)
    compared = "".join(
        f"<li>{html.escape(c.tag)}: {html.escape(c.label.lv)} ({html.escape(c.role.lv)}) / "
        f"{html.escape(c.label.en)} ({html.escape(c.role.en)})</li>"
        for c in text.comparisons
    )
    page = (
        '<!DOCTYPE html><html lang="lv"><head><meta charset="utf-8">'
        f"<title>{html.escape(text.title.lv)}: {html.escape(waves)}</title>"
        f"<style>{style}</style></head><body>"
        f"<h1>{html.escape(text.study.lv)}: rezultāti / results</h1>"
        f"<p>Šūnas ar mazāk nekā {text.suppress_below} respondentiem vai ar dažu respondentu "
        "dominējošu summu netiek publicētas, un arī tik daudz citu, lai tās nevarētu aprēķināt no "
        f"publicētajām; ar mazāk nekā {text.low_reliability_below} – atzīmētas. Cells with fewer "
        f"than {text.suppress_below} respondents or dominated by a few are suppressed, and enough "
        "others that they cannot be worked out from what is published (secondary suppression); "
        f"fewer than {text.low_reliability_below} are flagged.</p>"
        f"<p>Salīdzinājumi / Comparisons:</p><ul>{compared}</ul>"
        + "".join(sections)
        + "</body></html>"
    )
    path.write_text(page, encoding="utf-8")


def export(
    tables: dict[str, pd.DataFrame],
    out_dir: Path,
    text: ReportText,
    also: Callable[[Path], object] | None = None,
) -> list[Path]:
    """Write every format into a staging folder, then swap it in for ``out_dir`` at once.
    ``also`` writes what is published with the report (the harmonised datasets) into the
    staging folder, so that it is swapped in with the rest."""
    staging = out_dir.with_name(f"{out_dir.name}.partial-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        write_workbook(tables, staging / WORKBOOK, text)
        for name, frame in tables.items():
            frame.to_csv(
                staging / f"{name}.csv", sep=";", decimal=",", index=False, encoding="utf-8-sig"
            )
        write_html(tables, staging / HTML_REPORT, text)
        write_database(tables, staging / DATABASE)
        if also is not None:
            also(staging)
    except Exception:
        shutil.rmtree(staging)
        raise
    previous = out_dir.with_name(f"{out_dir.name}.previous")
    if previous.exists():
        shutil.rmtree(previous)
    if out_dir.exists():
        out_dir.rename(previous)
    staging.rename(out_dir)
    if previous.exists():
        shutil.rmtree(previous)
    return sorted(out_dir.iterdir())
