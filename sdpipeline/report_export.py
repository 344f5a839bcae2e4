"""Publish the report tables as files: one formatted workbook (a sheet per table), a CSV per
table (as Latvian Excel opens them: UTF-8 with BOM, ';' and decimal comma), one HTML report
with its charts drawn as inline SVG, so it opens offline with nothing else beside it, and the
report schema as a DuckDB file of its own for read-only querying. The HTML report itself is
``report_html``'s.

Every title, heading and note comes from the codebook (the study, its waves and comparisons)
and the catalogue (the report's and its tables' titles).

A report is published as one unit. Every file is written into a new folder of its own, beside
the published one, and one symbolic link (``var/reports/.tables.current``) is then pointed at
the new folder in one rename, which POSIX makes atomic; the published path
(``var/reports/tables``) is a fixed link through it to the folder's report part. A reader sees
the whole previous report or the whole new one, whenever a run is killed, and a failed export
changes nothing. What is published with the report but not for the public (the harmonised
datasets, microdata for the ministry's analysts, ``export(also=...)``) is the same folder's
other part, reached by its own fixed link (``var/reports/datasets``), never inside the
report's part, which is the one handed on: the same rename switches both, so the report and its
datasets are always of one run. The report names the run that published it and the SHA-256 of
every file it was built from (``manifest.json``, the ``report.publication`` and
``report.source_files`` tables, the HTML report's provenance block at the top and the
workbook's last sheet); ``manifest.json`` also lists the SHA-256 of every file published in its
folder, and of the datasets published with it. The previous publication is kept, for a reader
still holding its files; older ones are removed.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from sdpipeline import __version__, report_html
from sdpipeline.codebook import Codebook, Label
from sdpipeline.generator.writers import pin_zip
from sdpipeline.indicators import Catalogue
from sdpipeline.ingest import sha256_of
from sdpipeline.report_tables import tag

WORKBOOK = "sdpipeline_report.xlsx"
HTML_REPORT = "report.html"
DATABASE = "sdpipeline_report.duckdb"
LINEAGE = "cell_lineage"
REPORT_PART = "report"  # the part of a publication that is the report, beside what goes with it
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

    def sources(self) -> pd.DataFrame:
        return pd.DataFrame(sorted(self.files.items()), columns=["Fails / File", "SHA-256"])


def write_workbook(
    tables: dict[str, pd.DataFrame],
    path: Path,
    text: ReportText,
    sources: pd.DataFrame | None = None,
) -> None:
    # imported when writing: the definitions (and a nothing-changed refresh) load without it
    import openpyxl
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

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
    provenance: Provenance | None = None,
    chart_cache: Path | None = None,
) -> None:
    path.write_text(report_html.page(tables, text, provenance, chart_cache), encoding="utf-8")


def export(
    tables: dict[str, pd.DataFrame],
    out_dir: Path,
    text: ReportText,
    lineage: pd.DataFrame | None = None,
    provenance: Provenance | None = None,
    also: tuple[Path, Callable[[Path], object]] | None = None,
    chart_cache: Path | None = None,
) -> list[Path]:
    """Write every format into a new folder, then publish it as ``out_dir`` in one step (see
    the module's docstring); returns the published files. ``chart_cache``: the HTML report's
    drawn charts, kept between runs (``report_charts``). ``lineage``: ``report.cell_lineage``,
    published beside the tables as a CSV file and in the report's database (not in the
    workbook or the HTML, which are for reading). ``also``: (its path, how to write it) what is
    published with the report but apart from it (the harmonised datasets): a part of the same
    new folder beside the report's, reached by its own path, switched in by the same rename."""
    name = provenance.run_id if provenance else "unnamed"
    folder, whole = _staging(out_dir, name)
    staging = whole / REPORT_PART
    staging.mkdir()
    sources = provenance.sources() if provenance else None
    try:
        write_workbook(tables, staging / WORKBOOK, text, sources)
        for table, frame in tables.items():
            frame.to_csv(
                staging / f"{table}.csv", sep=";", decimal=",", index=False, encoding="utf-8-sig"
            )
        write_html(tables, staging / HTML_REPORT, text, provenance, chart_cache)
        if lineage is not None:
            lineage.to_csv(
                staging / f"{LINEAGE}.csv", sep=";", decimal=",", index=False, encoding="utf-8-sig"
            )
        write_database(
            tables | ({} if lineage is None else {LINEAGE: lineage}), staging / DATABASE, provenance
        )
        if also is not None:
            also[1](whole / also[0].name)
        if provenance is not None:
            manifest = {
                "run_id": provenance.run_id,
                "published_utc": provenance.published_utc,
                "tables": provenance.table_runs,
                "files": dict(sorted(provenance.files.items())),
                "contents": _contents(staging),
            }
            if also is not None:
                manifest["published_beside"] = {also[0].name: _contents(whole / also[0].name)}
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    except BaseException:
        shutil.rmtree(whole)
        raise
    whole.rename(folder)
    current = current_link(out_dir)
    _point(current, folder)  # the one switch, for the report and what is published with it
    for path, part in [(out_dir, REPORT_PART), *([(also[0], also[0].name)] if also else [])]:
        _point_through(path, current / part)
    _prune(publications_dir(out_dir), keep=folder)
    return sorted(out_dir.iterdir())


def publication_problem(out_dir: Path, run_id: str) -> str | None:
    """Why the publication at ``out_dir`` is not the one run ``run_id`` made, whole: not there,
    of another run, or with a file its manifest lists missing (and the parts published beside
    it). Files are looked for, not hashed again: a register's publication is gigabytes."""
    manifest_path = out_dir / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"the published report {out_dir} is not there (no readable {MANIFEST})"
    if manifest.get("run_id") != run_id:
        return (
            f"the published report {out_dir} is of run {manifest.get('run_id')}, not of run "
            f"{run_id}, which built this asset last"
        )
    parts = {out_dir: manifest.get("contents", {})}
    for name, contents in manifest.get("published_beside", {}).items():
        parts[out_dir.with_name(name)] = contents
    for folder, contents in parts.items():
        gone = [name for name in contents if not (folder / name).is_file()]
        if gone:
            return (
                f"{len(gone)} published file(s) its manifest lists are not there: "
                f"{', '.join(str(folder / name) for name in gone[:3])}"
            )
    return None


def current_link(out_dir: Path) -> Path:
    """The link switched to each new publication: ``out_dir`` and the paths published with it
    are fixed links through it, so one rename moves them all."""
    return out_dir.with_name(f".{out_dir.name}.current")


def _point_through(link: Path, target: Path) -> None:
    """Make ``link`` the fixed link to ``target`` (a path through ``current_link``), unless it
    already is: an installation published before had ``link`` point at a run's folder."""
    relative = os.path.relpath(target, link.parent)
    if link.is_symlink() and os.readlink(link) == relative:
        return
    _point(link, target)


def _staging(out_dir: Path, name: str) -> tuple[Path, Path]:
    """A new publication's folder behind ``out_dir`` (named after the run), and the folder it
    is written in until it is whole."""
    store = publications_dir(out_dir)
    store.mkdir(parents=True, exist_ok=True)
    folder, again = store / name, 1
    while folder.exists():  # the same run publishing again: never touch what readers may hold
        folder, again = store / f"{name}.{again}", again + 1
    staging = store / f".{folder.name}.partial-{os.getpid()}"
    staging.mkdir()
    return folder, staging


def _contents(folder: Path) -> dict[str, str]:
    """Every file published in ``folder`` (path inside it → SHA-256). Hashed two at a time:
    hashlib lets go of the GIL, and a register's publication is gigabytes (×1000: 4.5 GB,
    4.8 s on one core)."""
    files = [path for path in sorted(folder.rglob("*")) if path.is_file()]
    with ThreadPoolExecutor(2) as pool:
        digests = pool.map(sha256_of, files)
        return {p.relative_to(folder).as_posix(): d for p, d in zip(files, digests, strict=True)}


def publications_dir(out_dir: Path) -> Path:
    """Where the publications behind ``out_dir`` are kept."""
    return out_dir.with_name(f"{out_dir.name}.published")


def _point(link: Path, folder: Path) -> None:
    """Make ``link`` point at ``folder`` in one rename. A folder left at ``link`` by an earlier
    version (a real directory, not a link) is moved aside first, once."""
    if link.is_dir() and not link.is_symlink():
        publications_dir(link).mkdir(parents=True, exist_ok=True)
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
