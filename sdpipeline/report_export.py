"""Publish the report tables as files: one formatted workbook (a sheet per table), a CSV per
table (as Latvian Excel opens them: UTF-8 with BOM, ';' and decimal comma), one HTML report
with its charts drawn as inline SVG, so it opens offline with nothing else beside it, and the
report schema as a DuckDB file of its own for read-only querying.

Every title, heading and note comes from the codebook (the study, its waves and comparisons)
and the catalogue (the report's and its tables' titles).

A report is published as one unit. Every file is written into a new folder of its own, beside
the published one, and the published path (``var/reports/tables``) is a symbolic link that is
then pointed at the new folder in one rename, which POSIX makes atomic: a reader sees the whole
previous report or the whole new one, whenever a run is killed, and a failed export changes
nothing. What is published with the report (the harmonised datasets, ``export(also=...)``) is
written into the same folder and swapped in with it. The report names the run that published it
and the SHA-256 of every file it was built from (``manifest.json``, the ``report.publication``
and ``report.source_files`` tables, the HTML report's last section and the workbook's last
sheet); ``manifest.json`` also lists the SHA-256 of every file published beside it. The
previous publication is kept, for a reader still holding its files; older ones are removed.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import json
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

from sdpipeline.codebook import Codebook, Label
from sdpipeline.generator.writers import pin_zip
from sdpipeline.indicators import Catalogue
from sdpipeline.ingest import sha256_of
from sdpipeline.report_tables import CHANGE, CI, VERDICT, header, tag

WORKBOOK = "sdpipeline_report.xlsx"
HTML_REPORT = "report.html"
DATABASE = "sdpipeline_report.duckdb"
MANIFEST = "manifest.json"
SOURCES_SHEET = "avoti_sources"
KEEP_PUBLICATIONS = 2
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

    def sources(self) -> pd.DataFrame:
        return pd.DataFrame(sorted(self.files.items()), columns=["Fails / File", "SHA-256"])


def write_workbook(
    tables: dict[str, pd.DataFrame],
    path: Path,
    text: ReportText,
    sources: pd.DataFrame | None = None,
) -> None:
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
    if sources is not None:
        sheet = book.create_sheet(title=SOURCES_SHEET)
        sheet.append(["Avoti: faili, no kuriem ziņojums veidots / Files the report was built from"])
        sheet["A1"].font = Font(bold=True, size=13)
        sheet.append(list(sources.columns))
        for row in sources.itertuples(index=False):
            sheet.append(list(row))
        sheet.column_dimensions["A"].width, sheet.column_dimensions["B"].width = 40, 70
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


def write_database(
    tables: dict[str, pd.DataFrame], path: Path, provenance: Provenance | None = None
) -> None:
    """The report schema alone, in its own DuckDB file: analysts and auditors open it read-only
    at any time, even while a run holds the warehouse. With ``provenance``, also
    ``report.publication`` (run, time, the run behind each table) and ``report.source_files``."""
    extra = {}
    if provenance is not None:
        extra = {
            "publication": pd.DataFrame(
                [
                    {
                        "table_name": table,
                        "built_in_run": run,
                        "published_in_run": provenance.run_id,
                        "published_utc": provenance.published_utc,
                    }
                    for table, run in sorted(provenance.table_runs.items())
                ],
                columns=["table_name", "built_in_run", "published_in_run", "published_utc"],
            ),
            "source_files": provenance.sources().set_axis(["file", "sha256"], axis=1),
        }
    with duckdb.connect(str(path)) as connection:
        connection.execute("CREATE SCHEMA report")
        for name, frame in {**tables, **extra}.items():
            connection.register("_frame", frame)
            connection.execute(f'CREATE TABLE report."{name}" AS SELECT * FROM _frame')
            connection.unregister("_frame")


def write_html(
    tables: dict[str, pd.DataFrame],
    path: Path,
    text: ReportText,
    sources: pd.DataFrame | None = None,
) -> None:
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
    if sources is not None:
        sections.append("<h2>Avoti / Files the report was built from</h2>")
        sections.append(sources.to_html(index=False, escape=True, border=0))
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
    provenance: Provenance | None = None,
    also: Callable[[Path], object] | None = None,
) -> list[Path]:
    """Write every format into a new folder, then publish it as ``out_dir`` in one step (see
    the module's docstring); returns the published files. ``also`` writes what is published
    with the report (the harmonised datasets) into that folder, so that it is swapped in with
    the rest and named by the same manifest."""
    store = publications_dir(out_dir)
    store.mkdir(parents=True, exist_ok=True)
    name = provenance.run_id if provenance else "unnamed"
    folder, again = store / name, 1
    while folder.exists():  # the same run publishing again: never touch what readers may hold
        folder, again = store / f"{name}.{again}", again + 1
    staging = store / f".{folder.name}.partial-{os.getpid()}"
    staging.mkdir()
    sources = provenance.sources() if provenance else None
    try:
        write_workbook(tables, staging / WORKBOOK, text, sources)
        for table, frame in tables.items():
            frame.to_csv(
                staging / f"{table}.csv", sep=";", decimal=",", index=False, encoding="utf-8-sig"
            )
        write_html(tables, staging / HTML_REPORT, text, sources)
        write_database(tables, staging / DATABASE, provenance)
        if also is not None:
            also(staging)
        if provenance is not None:
            manifest = {
                "run_id": provenance.run_id,
                "published_utc": provenance.published_utc,
                "tables": provenance.table_runs,
                "files": dict(sorted(provenance.files.items())),
                "contents": _contents(staging),
            }
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    except BaseException:
        shutil.rmtree(staging)
        raise
    staging.rename(folder)
    _point(out_dir, folder)
    _prune(store, keep=folder)
    return sorted(out_dir.iterdir())


def _contents(folder: Path) -> dict[str, str]:
    """Every file published in ``folder`` (path inside it → SHA-256)."""
    return {
        path.relative_to(folder).as_posix(): sha256_of(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def publications_dir(out_dir: Path) -> Path:
    """Where the publications behind ``out_dir`` are kept."""
    return out_dir.with_name(f"{out_dir.name}.published")


def _point(link: Path, folder: Path) -> None:
    """Make ``link`` point at ``folder`` in one rename. A folder left at ``link`` by an earlier
    version (a real directory, not a link) is moved aside first, once."""
    if link.is_dir() and not link.is_symlink():
        link.rename(publications_dir(link) / f"before-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}")
    temporary = link.with_name(f".{link.name}.link-{os.getpid()}")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(os.path.relpath(folder, link.parent), target_is_directory=True)
    os.replace(temporary, link)


def _prune(store: Path, keep: Path) -> None:
    """Remove all but the latest ``KEEP_PUBLICATIONS`` publications, and what killed runs left
    half-written."""
    finished = sorted(
        (p for p in store.iterdir() if not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    old = [p for p in finished[KEEP_PUBLICATIONS:] if p != keep]
    partial = [p for p in store.iterdir() if p.name.startswith(".") and ".partial-" in p.name]
    for path in old + [p for p in partial if not _writer_alive(p)]:
        shutil.rmtree(path, ignore_errors=True)


def _writer_alive(staging: Path) -> bool:
    pid = int(staging.name.rsplit("-", 1)[1])
    return pid != os.getpid() and Path(f"/proc/{pid}").exists()
