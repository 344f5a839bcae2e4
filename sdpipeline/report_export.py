"""Publish the report tables as files: one formatted workbook (a sheet per table), a CSV per
table (as Latvian Excel opens them: UTF-8 with BOM, ';' and decimal comma), one HTML report
with its charts drawn as inline SVG, so it opens offline with nothing else beside it, and the
report schema as a DuckDB file of its own for read-only querying. The HTML report itself is
``report_html``'s.

Files are written to a staging folder and swapped in whole: a failed export never leaves a
mixture of old and new files. Every title, heading and note comes from the codebook (the
study, its waves and comparisons) and the catalogue (the report's and its tables' titles).
"""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import openpyxl
import pandas as pd
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from sdpipeline import __version__, report_html
from sdpipeline.codebook import Codebook, Label
from sdpipeline.generator.writers import pin_zip
from sdpipeline.indicators import Catalogue
from sdpipeline.report_tables import tag

WORKBOOK = "sdpipeline_report.xlsx"
HTML_REPORT = "report.html"
DATABASE = "sdpipeline_report.duckdb"
LINEAGE = "cell_lineage"
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
    suppress_below: int
    low_reliability_below: int
    # the files' own dates, for stable bytes: the end of the latest fieldwork, at noon
    stamp: dt.datetime
    code_version: str
    codebook: Codebook = field(compare=False, repr=False)
    catalogue: Catalogue = field(compare=False, repr=False)

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
            suppress_below=catalogue.suppress_below,
            low_reliability_below=catalogue.low_reliability_below,
            stamp=dt.datetime.combine(latest.fieldwork_end, dt.time(12, 0)),
            code_version=f"sdpipeline {__version__} · kodu grāmata / codebook "
            f"{codebook.version} (SHA-256 {codebook.digest[:12]}) · katalogs / catalogue "
            f"{catalogue.version}",
            codebook=codebook,
            catalogue=catalogue,
        )


@dataclass(frozen=True)
class Provenance:
    """What a publication names: the run that published it, when, the run that built each
    table, and every file (delivered or reference) it descends from, by checksum."""

    run_id: str
    published_utc: str
    files: dict[str, str]
    """file name → SHA-256"""
    table_runs: dict[str, str] = field(default_factory=dict)
    """report table → the run that built it"""


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


def write_database(tables: dict[str, pd.DataFrame], path: Path) -> None:
    """The report schema alone, in its own DuckDB file: analysts and auditors open it read-only
    at any time, even while a run holds the warehouse."""
    with duckdb.connect(str(path)) as connection:
        connection.execute("CREATE SCHEMA report")
        for name, frame in tables.items():
            connection.register("_frame", frame)
            connection.execute(f'CREATE TABLE report."{name}" AS SELECT * FROM _frame')
            connection.unregister("_frame")


def write_html(
    tables: dict[str, pd.DataFrame],
    path: Path,
    text: ReportText,
    provenance: Provenance | None = None,
) -> None:
    path.write_text(report_html.page(tables, text, provenance), encoding="utf-8")


def export(
    tables: dict[str, pd.DataFrame],
    out_dir: Path,
    text: ReportText,
    lineage: pd.DataFrame | None = None,
    provenance: Provenance | None = None,
    also: Callable[[Path], object] | None = None,
) -> list[Path]:
    """Write every format into a staging folder, then swap it in for ``out_dir`` at once.
    ``lineage``: ``report.cell_lineage``, published beside the tables as a CSV file and in the
    report's database (not in the workbook or the HTML, which are for reading). ``also`` writes
    what is published with the report (the harmonised datasets) into the staging folder, so
    that it is swapped in with the rest."""
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
        write_html(tables, staging / HTML_REPORT, text, provenance)
        if lineage is not None:
            lineage.to_csv(
                staging / f"{LINEAGE}.csv", sep=";", decimal=",", index=False, encoding="utf-8-sig"
            )
        write_database(tables | ({} if lineage is None else {LINEAGE: lineage}), staging / DATABASE)
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
