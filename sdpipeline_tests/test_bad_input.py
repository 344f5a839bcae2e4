"""Bad deliveries, each a real file through a real materialisation: a clear error or a
quarantine entry naming file, column and row; the code location still loads; nothing already
materialised downstream is replaced by a rejected file."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb
import openpyxl
import pandas as pd
import pyreadstat
import pytest

from sdpipeline.definitions import build_definitions
from sdpipeline.ingest import sha256_of

from .conftest import isolate, materialize


def _csv_lines(path: Path, encoding: str) -> list[str]:
    return path.read_bytes().decode(encoding).splitlines()


def _write_lines(path: Path, lines: list[str], encoding: str) -> None:
    path.write_bytes("\r\n".join(lines).encode(encoding) + b"\r\n")


def _set_csv_cell(path: Path, encoding: str, line: int, column: str, value: str) -> None:
    lines = _csv_lines(path, encoding)
    header = lines[0].lstrip("\ufeff").split(";")
    cells = lines[line - 1].split(";")
    cells[header.index(column)] = value
    lines[line - 1] = ";".join(cells)
    _write_lines(path, lines, encoding)


def utf8_instead_of_windows_1257(path: Path) -> None:
    path.write_bytes(path.read_bytes().decode("cp1257").encode("utf-8"))


def comma_instead_of_semicolon(path: Path) -> None:
    frame = pd.read_csv(path, sep=";", decimal=",", dtype=str, encoding="utf-8-sig")
    frame.to_csv(path, sep=",", index=False, encoding="utf-8-sig")


def drop_column_a1(path: Path) -> None:
    lines = _csv_lines(path, "cp1257")
    drop = lines[0].split(";").index("A1_zina")
    lines = [";".join(f for i, f in enumerate(line.split(";")) if i != drop) for line in lines]
    _write_lines(path, lines, "cp1257")


def duplicate_respondent_id(path: Path) -> None:
    lines = _csv_lines(path, "cp1257")
    _set_csv_cell(path, "cp1257", 5, "resp_id", lines[3].split(";")[0])


def code_outside_labels(path: Path) -> None:
    frame, meta = pyreadstat.read_sav(str(path), user_missing=True)
    frame.loc[9, "k1"] = 7
    pyreadstat.write_sav(
        frame,
        str(path),
        column_labels=meta.column_names_to_labels,
        variable_value_labels=meta.variable_value_labels,
        missing_ranges=meta.missing_ranges,
    )


def text_in_numeric_column(path: Path) -> None:
    _set_csv_cell(path, "utf-8-sig", 4, "STAFF_TOTAL", "daudz")


def empty_file(path: Path) -> None:
    path.write_bytes(b"")


def header_only(path: Path) -> None:
    _write_lines(path, _csv_lines(path, "utf-8")[:1], "utf-8")


def truncated_sav(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:4000])


def xlsx_title_row(path: Path) -> None:
    book = openpyxl.load_workbook(path)
    sheet = book.active
    sheet.insert_rows(1)
    sheet["A1"] = "Klientu aptauja 2023: dati (BISS)"
    book.save(path)


def municipality_of_2017_in_2023(path: Path) -> None:
    _set_csv_cell(path, "cp1257", 8, "municipality_code", "LV-001")


def half_the_rows_invalid(path: Path, every: int = 2) -> None:
    lines = _csv_lines(path, "cp1257")
    column = lines[0].split(";").index("A1_zina")
    for number in range(1, len(lines), every):
        cells = lines[number].split(";")
        cells[column] = "5"
        lines[number] = ";".join(cells)
    _write_lines(path, lines, "cp1257")


@dataclass
class Case:
    table: str
    wave: str
    file: str
    break_it: object
    fails: bool
    words: list[str] = field(default_factory=list)
    quarantined_rows: list[int] = field(default_factory=list)
    quarantined_column: str = ""


CASES = {
    "wrong_encoding": Case(
        "specialists_2017",
        "ex_ante_2017",
        "specialisti_2017.csv",
        utf8_instead_of_windows_1257,
        True,
        ["specialisti_2017.csv", "declared Windows-1257 but the bytes are UTF-8"],
    ),
    "delimiter_mismatch": Case(
        "heads_2023",
        "ex_post_2023",
        "dienestu_vaditaji_2023.csv",
        comma_instead_of_semicolon,
        True,
        ["dienestu_vaditaji_2023.csv", "row 1", "does not split on ';' but on ','"],
    ),
    "missing_required_column": Case(
        "residents_2023",
        "ex_post_2023",
        "iedzivotaji_2023.csv",
        drop_column_a1,
        True,
        ["iedzivotaji_2023.csv", "column 'A1_zina'", "required column is missing"],
    ),
    "duplicate_respondent_id": Case(
        "residents_2023",
        "ex_post_2023",
        "iedzivotaji_2023.csv",
        duplicate_respondent_id,
        False,
        quarantined_rows=[4, 5],
        quarantined_column="resp_id",
    ),
    "code_outside_value_labels": Case(
        "clients_2017",
        "ex_ante_2017",
        "klienti_2017.sav",
        code_outside_labels,
        False,
        quarantined_rows=[10],
        quarantined_column="k1",
    ),
    "text_in_numeric_column": Case(
        "heads_2023",
        "ex_post_2023",
        "dienestu_vaditaji_2023.csv",
        text_in_numeric_column,
        False,
        quarantined_rows=[4],
        quarantined_column="STAFF_TOTAL",
    ),
    "empty_file": Case(
        "partners_2017",
        "ex_ante_2017",
        "partneri_2017.xlsx",
        empty_file,
        True,
        ["partneri_2017.xlsx", "file is empty"],
    ),
    "header_only": Case(
        "leaders_2017",
        "ex_ante_2017",
        "pasvaldibu_vaditaji_2017.csv",
        header_only,
        True,
        ["pasvaldibu_vaditaji_2017.csv", "header but no data rows"],
    ),
    "truncated_sav": Case(
        "specialists_2023",
        "ex_post_2023",
        "specialisti_2023.sav",
        truncated_sav,
        True,
        ["specialisti_2023.sav", "not a readable SPSS file"],
    ),
    "xlsx_extra_title_row": Case(
        "clients_2023",
        "ex_post_2023",
        "klienti_2023.xlsx",
        xlsx_title_row,
        False,
    ),
    "municipality_code_of_2017_in_2023": Case(
        "residents_2023",
        "ex_post_2023",
        "iedzivotaji_2023.csv",
        municipality_of_2017_in_2023,
        False,
        quarantined_rows=[8],
        quarantined_column="municipality_code",
    ),
    "half_the_rows_invalid": Case(
        "residents_2023",
        "ex_post_2023",
        "iedzivotaji_2023.csv",
        half_the_rows_invalid,
        True,
        ["iedzivotaji_2023.csv", "rejected", "600 of 1200 rows", "A1_zina"],
    ),
}


def _table(warehouse: Path, name: str) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return connection.execute(f"SELECT * FROM {name} ORDER BY _source_row").df()


@pytest.mark.parametrize("case_id", list(CASES))
def test_bad_delivery(case_id, pipeline_run, tmp_path, monkeypatch):
    case = CASES[case_id]
    _, baseline, _ = pipeline_run
    folder = isolate(tmp_path, monkeypatch)
    warehouse = folder / "warehouse.duckdb"
    shutil.copy(baseline, warehouse)
    before = _table(warehouse, f"validated.{case.table}")
    path = folder / "raw" / case.wave / case.file
    case.break_it(path)

    build_definitions()  # the code location still loads with the bad file in place
    result = materialize(warehouse, selection=[f"{case.table}_raw", f"{case.table}_validated"])

    if case.fails:
        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure)
        message = failure.step_failure_data.user_failure_data.description
        for word in case.words:
            assert word in message, (word, message)
        assert _table(warehouse, f"validated.{case.table}").equals(before)
        return

    assert result.success, [e.step_failure_data for e in result.all_events if e.is_step_failure]
    after = _table(warehouse, f"validated.{case.table}")
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        quarantine = connection.execute(
            "SELECT source_row, columns, reasons, file_name, file_sha256, file_rejected "
            "FROM audit.quarantine WHERE run_id = ? ORDER BY source_row",
            [result.run_id],
        ).df()
    assert quarantine["source_row"].tolist() == case.quarantined_rows
    assert len(after) == len(before) - len(case.quarantined_rows)
    if case.quarantined_rows:
        assert (quarantine["columns"] == case.quarantined_column).all()
        assert (quarantine["file_name"] == case.file).all()
        assert (quarantine["file_sha256"] == sha256_of(path)).all()
        assert not quarantine["file_rejected"].any()
        contract = next(
            e.asset_check_evaluation_data
            for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
            and e.asset_check_evaluation_data.check_name == "row_contract"
        )
        assert not contract.passed and contract.severity == dg.AssetCheckSeverity.WARN


def test_a_rejected_file_is_recorded_for_auditors(pipeline_run, tmp_path, monkeypatch):
    _, baseline, _ = pipeline_run
    folder = isolate(tmp_path, monkeypatch)
    warehouse = folder / "warehouse.duckdb"
    shutil.copy(baseline, warehouse)
    path = folder / "raw" / "ex_post_2023" / "iedzivotaji_2023.csv"
    half_the_rows_invalid(path)
    result = materialize(warehouse, selection=["residents_2023_raw", "residents_2023_validated"])
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
        archived = connection.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'raw_archive'"
        ).fetchone()[0]
    assert rejected == (600, True, sha256_of(path))
    assert ("valid_code(A1_zina)", 600) in failed_checks
    assert archived == 1  # the previous delivery's raw table is kept under its checksum
    contract = next(
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    )
    assert contract.check_name == "row_contract"
    assert not contract.passed and contract.severity == dg.AssetCheckSeverity.ERROR
