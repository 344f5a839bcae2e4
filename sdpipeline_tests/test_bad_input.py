"""The bad-delivery corpus (``bad_deliveries/``), each case a set of real malformed files laid
over the good delivery and run through real materialisations: a clear error or a quarantine
entry naming file, column and row; the code location still loads; and nothing already
materialised is replaced by what a bad file would have made of it."""

from __future__ import annotations

import hashlib
import re
import shutil
from collections import Counter
from pathlib import Path

import dagster as dg
import duckdb
import openpyxl
import pandas as pd
import pytest
import yaml

from sdpipeline import report_export, settings
from sdpipeline.definitions import build_definitions
from sdpipeline.defs.report.assets import DATASETS
from sdpipeline.ingest import sha256_of

from .bad_deliveries.make_corpus import CASES as BUILDERS
from .bad_deliveries.make_corpus import build
from .conftest import isolate, materialize

CORPUS = Path(__file__).parent / "bad_deliveries"
CASES = yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))
RESULT_SCHEMAS = ("harmonised", "indicators", "report")
# A file's checksum and a record's line number are what a harmless re-export changes.
FILE_IDENTITY = ("_source_sha256", "source_sha256", "_source_row")


def lay_over(case: str, raw: Path) -> list[Path]:
    """Copy the case's files into the raw folder, as a contractor's re-delivery would."""
    placed = []
    for path in sorted((CORPUS / case).rglob("*")):
        if path.is_file():
            target = raw / path.relative_to(CORPUS / case)
            shutil.copy(path, target)
            placed.append(target)
    return placed


def fingerprints(
    warehouse: Path, ignore: tuple[str, ...] = (), schemas: tuple[str, ...] = RESULT_SCHEMAS
) -> dict[str, str]:
    """A checksum of every result table's content, independent of storage order."""
    prints = {}
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        tables = connection.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() "
            "WHERE list_contains(?, schema_name) ORDER BY ALL",
            [list(schemas)],
        ).fetchall()
        for schema, table in tables:
            columns = [
                row[0]
                for row in connection.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? "
                    "AND table_name = ? ORDER BY column_index",
                    [schema, table],
                ).fetchall()
                if row[0] not in ignore
            ]
            listed = ", ".join(f'"{c}"' for c in columns)
            prints[f"{schema}.{table}"] = connection.execute(
                f"SELECT md5(coalesce(string_agg(r::VARCHAR, '\n' ORDER BY r::VARCHAR), '')) "
                f"FROM (SELECT {listed} FROM {schema}.{table}) r"
            ).fetchone()[0]
    return prints


def exported_files(reports: Path) -> dict[str, object]:
    """Checksums of the published report's content: bytes, except for the report database,
    whose file layout DuckDB does not keep stable, so its tables' content. What names the
    publication and its files is left out (its run, the checksums of the files it was built
    from and of those it holds: the manifest, the sources sheet and tables, the HTML report's
    provenance block, the files' checksums in the cell lineage): a report built from a
    re-delivered file names that file, whatever its content. Keyed by the path under
    ``reports`` (``tables/…``, and ``datasets/…`` published apart from the report)."""
    prints: dict[str, object] = {}
    paths = [*(reports / "tables").rglob("*"), *(reports / DATASETS).rglob("*")]
    for path in sorted(paths):
        name = str(path.relative_to(reports))
        if path.name == report_export.MANIFEST or not path.is_file():
            continue
        if path.suffix == ".duckdb":
            prints[name] = {
                k: v
                for k, v in fingerprints(path, FILE_IDENTITY, schemas=("report",)).items()
                if k not in ("report.publication", "report.source_files")
            }
        elif path.name == report_export.HTML_REPORT:
            page = re.sub(r'<section id="provenance">.*?</section>', "", path.read_text("utf-8"))
            prints[name] = hashlib.sha256(page.encode()).hexdigest()
        elif path.name == f"{report_export.LINEAGE}.csv":
            frame = pd.read_csv(path, sep=";", dtype=str, encoding="utf-8-sig")
            prints[name] = frame.drop(columns=list(FILE_IDENTITY), errors="ignore").to_csv()
        elif path.suffix == ".xlsx":
            book = openpyxl.load_workbook(path)
            prints[name] = {
                sheet.title: [list(row) for row in sheet.iter_rows(values_only=True)]
                for sheet in book.worksheets
                if sheet.title != report_export.SOURCES_SHEET
            }
        else:
            prints[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return prints


def _harmonised_rows(warehouse: Path, instrument: str) -> list[tuple]:
    """The harmonised answers, without weights (a quarantined respondent changes everyone
    else's raking weight) and without the file's checksum and line numbers."""
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        columns = [
            row[0]
            for row in connection.execute(
                "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'harmonised' "
                "AND table_name = ? ORDER BY column_index",
                [instrument],
            ).fetchall()
            if "weight" not in row[0] and row[0] not in FILE_IDENTITY
        ]
        listed = ", ".join(f'"{c}"' for c in columns)
        return connection.execute(
            f"SELECT {listed} FROM harmonised.{instrument} ORDER BY ALL"
        ).fetchall()


def test_the_corpus_is_what_make_corpus_builds_and_cases_yaml_describes(tmp_path):
    assert len(CASES) >= 25
    assert set(CASES) == set(BUILDERS)
    assert {p.name for p in CORPUS.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(
        CASES
    )
    assert {case["outcome"] for case in CASES.values()} == {"fails", "quarantines", "accepted"}
    formats = {p.suffix for case in CASES for p in (CORPUS / case).rglob("*") if p.is_file()}
    assert formats == {".csv", ".xlsx", ".sav"}
    instruments = {table.rsplit("_", 1)[0] for case in CASES.values() for table in case["tables"]}
    assert instruments == {"residents", "clients", "heads", "specialists", "partners", "leaders"}
    rebuilt = tmp_path / "corpus"
    build(rebuilt)
    for path in sorted(rebuilt.rglob("*")):
        if path.is_file():
            committed = CORPUS / path.relative_to(rebuilt)
            assert sha256_of(path) == sha256_of(committed), committed


@pytest.mark.parametrize("case_id", list(CASES))
def test_bad_delivery(case_id, pipeline_run, tmp_path, monkeypatch):
    case = CASES[case_id]
    baseline_folder, baseline, _ = pipeline_run
    folder = isolate(tmp_path, monkeypatch)
    warehouse = folder / "warehouse.duckdb"
    shutil.copy(baseline, warehouse)
    shutil.copytree(baseline_folder / "var" / "reports", settings.reports_dir())
    shutil.copytree(baseline_folder / "var" / "secrets", settings.var_dir() / "secrets")
    results_before = fingerprints(warehouse)
    exports_before = exported_files(settings.reports_dir())
    answers_before = {
        table: _harmonised_rows(warehouse, table.rsplit("_", 1)[0]) for table in case["tables"]
    }
    placed = lay_over(case_id, folder / "raw")

    build_definitions()  # the code location still loads with the bad files in place
    raw_assets = [dg.AssetKey(["raw", table]) for table in case["tables"]]
    if case["outcome"] == "quarantines":
        (table,) = case["tables"]
        instrument = table.rsplit("_", 1)[0]
        selection = [f"raw/{table}", f"validated/{table}", f"harmonised/{instrument}"]
    else:
        selection = dg.AssetSelection.assets(*raw_assets).downstream()
    if case["outcome"] == "accepted":
        # the report is published only whole, from tables this (throwaway) instance has seen
        # built: the report tables of the other instruments are rebuilt too, unchanged
        selection = selection | dg.AssetSelection.groups("report")
    result = materialize(warehouse, selection=selection)

    if case["outcome"] == "fails":
        assert not result.success
        failures = [e for e in result.all_events if e.is_step_failure]
        messages = [f.step_failure_data.user_failure_data.description for f in failures]
        assert any(all(word in m for word in case["words"]) for m in messages), messages
        assert fingerprints(warehouse) == results_before
        assert exported_files(settings.reports_dir()) == exports_before
        return

    assert result.success, [e.step_failure_data for e in result.all_events if e.is_step_failure]
    if case["outcome"] == "accepted":
        assert fingerprints(warehouse, FILE_IDENTITY) == fingerprints(baseline, FILE_IDENTITY)
        # the exported datasets name each row's file by checksum and line, as the harmonised
        # tables do (FILE_IDENTITY): a padded file changes those and nothing else
        datasets = f"{DATASETS}/"
        after = exported_files(settings.reports_dir())
        assert {k: v for k, v in after.items() if not k.startswith(datasets)} == {
            k: v for k, v in exports_before.items() if not k.startswith(datasets)
        }
        return

    (table,) = case["tables"]
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        quarantine = connection.execute(
            "SELECT source_row, columns, file_name, file_sha256, file_rejected "
            "FROM audit.quarantine WHERE run_id = ? ORDER BY source_row",
            [result.run_id],
        ).df()
    (path,) = placed
    assert quarantine["source_row"].tolist() == case["rows"]
    assert (quarantine["columns"] == case["column"]).all(), quarantine["columns"].tolist()
    assert (quarantine["file_name"] == path.name).all()
    assert (quarantine["file_sha256"] == sha256_of(path)).all()
    assert not quarantine["file_rejected"].any()
    contract = next(
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.asset_check_evaluation_data.check_name == "row_contract"
    )
    assert not contract.passed and contract.severity == dg.AssetCheckSeverity.WARN

    answers_after = Counter(_harmonised_rows(warehouse, table.rsplit("_", 1)[0]))
    before = Counter(answers_before[table])
    assert not answers_after - before  # no answer changed
    assert (before - answers_after).total() == len(case["rows"])  # only those rows left
    untouched = {k: v for k, v in fingerprints(warehouse).items() if not k.startswith("harm")}
    assert untouched == {k: v for k, v in results_before.items() if not k.startswith("harm")}


def test_a_rejected_file_is_recorded_for_auditors(pipeline_run, tmp_path, monkeypatch):
    _, baseline, _ = pipeline_run
    folder = isolate(tmp_path, monkeypatch)
    warehouse = folder / "warehouse.duckdb"
    shutil.copy(baseline, warehouse)
    (path,) = lay_over("half_the_rows_invalid", folder / "raw")
    result = materialize(warehouse, selection=["raw/residents_2023", "validated/residents_2023"])
    assert not result.success
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        rejected = connection.execute(
            "SELECT count(*), bool_and(file_rejected), any_value(file_sha256) "
            "FROM audit.quarantine WHERE run_id = ?",
            [result.run_id],
        ).fetchone()
        failed_checks = connection.execute(
            "SELECT check_name, failing_count FROM audit.check_runs "
            "WHERE run_id = ? AND NOT passed",
            [result.run_id],
        ).fetchall()
        # a rejected file's rules are ERROR, passing or not: the table was not built on them
        judged = connection.execute(
            "SELECT DISTINCT outcome, severity, file_names, file_sha256s FROM audit.check_runs "
            "WHERE run_id = ? ORDER BY outcome",
            [result.run_id],
        ).fetchall()
        archived = connection.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'raw_archive'"
        ).fetchone()[0]
    assert rejected == (600, True, sha256_of(path))
    assert ("valid_code(A1_zina)", 600) in failed_checks
    delivered = ([path.name], [sha256_of(path)])
    assert judged == [("failed", "ERROR", *delivered), ("passed", "ERROR", *delivered)]
    assert archived == 1  # the previous delivery's raw table is kept under its checksum
    contract = next(
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    )
    assert contract.check_name == "row_contract"
    assert not contract.passed and contract.severity == dg.AssetCheckSeverity.ERROR
