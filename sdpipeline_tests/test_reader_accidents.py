"""Readers that decided by accident (issue 19): the outcome of a delivered file must not depend
on the order of its rows or on where a cell sits, and what Excel users do to leave cases out is
reported. Real files in each format, run through the same SQL the warehouse runs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import zipfile

import dagster as dg
import duckdb
import openpyxl
import pytest

from sdpipeline.cli import _delivery_notes
from sdpipeline.codebook import FileSpec
from sdpipeline.harmonise import harmonise_wave
from sdpipeline.ingest import load_raw
from sdpipeline.readers import read_raw_file, sheet_marks
from sdpipeline.validation.contracts import row_contract
from sdpipeline.validation.quarantine import check_frame

from .conftest import SHIPPED_RAW, isolate, materialize

HEADS_2017 = ("heads", "ex_ante_2017", "dienestu_vaditaji_2017.xlsx")


def _heads_with_text_dates(tmp_path, codebook, dates: list[str]):
    """The shipped 2017 heads workbook with the first rows' interview dates typed as text."""
    book = openpyxl.load_workbook(SHIPPED_RAW / "ex_ante_2017" / HEADS_2017[2])
    sheet = book.worksheets[0]
    header = [cell.value for cell in sheet[1]]
    column = header.index("int_datums") + 1
    for row, text in enumerate(dates, start=2):
        sheet.cell(row=row, column=column).value = text
        sheet.cell(row=row, column=column).number_format = "@"
    path = tmp_path / HEADS_2017[2]
    book.save(path)
    return path


@pytest.mark.parametrize("order", [["05.03.2017", "15.03.2017"], ["15.03.2017", "05.03.2017"]])
def test_text_dates_in_a_workbook_follow_the_declared_format_whatever_the_order(
    tmp_path, codebook, order
):
    instrument = codebook.instruments["heads"]
    declared = dataclasses.replace(instrument.files["ex_ante_2017"], date_format="%d.%m.%Y")
    instrument = dataclasses.replace(
        instrument, files={**instrument.files, "ex_ante_2017": declared}
    )
    codebook = dataclasses.replace(
        codebook, instruments={**codebook.instruments, "heads": instrument}
    )
    path = _heads_with_text_dates(tmp_path, codebook, order)
    table = load_raw(instrument, "ex_ante_2017", codebook, path).table
    assert table["int_datums"].head(2).tolist() == order  # delivered as text
    outcome = check_frame(table, row_contract(instrument, "ex_ante_2017", codebook))
    assert not outcome.quarantined["source_row"].isin([2, 3]).any(), outcome.summary()
    dates = harmonise_wave(table, instrument, "ex_ante_2017", codebook)["interview_date"]
    expected = {"05.03.2017": dt.date(2017, 3, 5), "15.03.2017": dt.date(2017, 3, 15)}
    assert [d.date() if hasattr(d, "date") else d for d in dates.head(2)] == [
        expected[text] for text in order
    ]


@pytest.mark.parametrize("order", [["05.03.2017", "15.03.2017"], ["15.03.2017", "05.03.2017"]])
def test_text_dates_in_an_undeclared_format_are_refused_whatever_the_order(
    tmp_path, codebook, order
):
    instrument = codebook.instruments["heads"]
    assert instrument.files["ex_ante_2017"].date_format is None  # dates must be Excel dates
    path = _heads_with_text_dates(tmp_path, codebook, order)
    table = load_raw(instrument, "ex_ante_2017", codebook, path).table
    outcome = check_frame(table, row_contract(instrument, "ex_ante_2017", codebook))
    assert outcome.quarantined["source_row"].tolist() == [2, 3]
    assert all("int_datums" in r and "not a date" in r for r in outcome.quarantined["reasons"])


@pytest.mark.parametrize("line", [2, 40])
def test_a_long_comment_reads_the_same_wherever_it_sits(tmp_path, line):
    comment = "garš komentārs " * 14_000  # about 210 KB
    rows = [f"{i};LV-0{i:02d};{'x' if i != line else comment}" for i in range(1, 60)]
    path = tmp_path / "a.csv"
    path.write_text("id;pasvaldiba;komentars\n" + "\n".join(rows) + "\n", encoding="utf-8")
    raw = read_raw_file(
        path, FileSpec(name="a.csv", delimiter=";"), ["id", "pasvaldiba", "komentars"]
    )
    assert len(raw.frame) == 59
    assert raw.frame["komentars"].iloc[line - 1] == comment
    assert raw.row_numbers.iloc[line - 1] == line + 1


def _hide_rows(tmp_path, rows: list[int]):
    book = openpyxl.load_workbook(SHIPPED_RAW / "ex_ante_2017" / HEADS_2017[2])
    for row in rows:
        book.worksheets[0].row_dimensions[row].hidden = True
    path = tmp_path / HEADS_2017[2]
    book.save(path)
    return path


def test_rows_hidden_in_excel_are_found(tmp_path, codebook):
    path = _hide_rows(tmp_path, [4, 9])
    spec = codebook.instruments["heads"].files["ex_ante_2017"]
    assert read_raw_file(path, spec).hidden_rows == (4, 9)
    shipped = read_raw_file(SHIPPED_RAW / "ex_ante_2017" / HEADS_2017[2], spec)
    assert shipped.hidden_rows == ()


def test_rows_hidden_in_excel_are_reported_by_the_raw_asset(tmp_path, monkeypatch):
    folder = isolate(tmp_path, monkeypatch)
    hidden = _hide_rows(tmp_path, [4, 9])
    hidden.replace(folder / "raw" / "ex_ante_2017" / HEADS_2017[2])
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(
            folder / "warehouse.duckdb", selection=["raw/heads_2017"], instance=instance
        )
        assert result.success
        logged = [
            entry.user_message
            for entry in instance.all_logs(result.run_id)
            if entry.level == logging.WARNING
        ]
    (materialization,) = result.asset_materializations_for_node("raw__heads_2017")
    assert materialization.metadata["hidden_rows"].value == [4, 9]
    assert any("2 rows are hidden in Excel (rows 4, 9)" in m for m in logged), logged
    assert _delivery_notes(result) == [
        "  dienestu_vaditaji_2017.xlsx: 2 rows hidden in Excel (rows 4, 9) were read like "
        "every other row"
    ]
    with duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True) as connection:
        rows = connection.execute("SELECT count(*) FROM raw.heads_2017").fetchall()[0][0]
    assert rows == 113  # hidden rows are read like every other row


def _with_errors(source, target, cells: dict[str, str], formula: str | None = None):
    """A workbook with ``cells`` (A1 references) holding Excel errors as Excel stores them
    (``t="e"``); with ``formula``, the first as the failed formula's cached result."""
    book = openpyxl.load_workbook(source)
    for reference, error in cells.items():
        book.worksheets[0][reference] = error  # openpyxl stores an error code as an error
    book.save(target)
    if formula:
        first = next(iter(cells))
        with zipfile.ZipFile(target) as archive:
            parts = {name: archive.read(name) for name in archive.namelist()}
        sheet = "xl/worksheets/sheet1.xml"
        plain = f'<c r="{first}" t="e"><v>'.encode()
        assert plain in parts[sheet]
        parts[sheet] = parts[sheet].replace(plain, plain[:-3] + f"<f>{formula}</f><v>".encode())
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in parts.items():
                archive.writestr(name, data)
    return target


def test_excel_error_cells_are_quarantined_as_the_error_excel_shows(tmp_path, codebook):
    """``#N/A`` from a failed lookup is not a blank answer: calamine gives it as one, so the
    sheet's XML is read for it, and the row contract names the error, its column and row."""
    instrument = codebook.instruments["heads"]
    path = _with_errors(
        SHIPPED_RAW / "ex_ante_2017" / HEADS_2017[2],
        tmp_path / HEADS_2017[2],
        # v6_reorg, pasvaldiba, v1_speciālisti, ID
        {"K5": "#N/A", "B9": "#REF!", "F12": "#DIV/0!", "A14": "#N/A"},
        formula="VLOOKUP(A5,Kodi!A:B,2,FALSE)",
    )
    table = load_raw(instrument, "ex_ante_2017", codebook, path).table
    outcome = check_frame(table, row_contract(instrument, "ex_ante_2017", codebook))
    reasons = dict(
        zip(outcome.quarantined["source_row"], outcome.quarantined["reasons"], strict=True)
    )
    assert sorted(reasons) == [5, 9, 12, 14], outcome.summary()
    assert reasons[14] == "ID = #N/A: an Excel error (a formula that failed), not an identifier"
    for row, column, error in ((5, "v6_reorg", "#N/A"), (9, "pasvaldiba", "#REF!")):
        assert column in reasons[row] and error in reasons[row], reasons[row]
    assert "v1_speciālisti" in reasons[12] and "#DIV/0!" in reasons[12]
    assert not any("not_nullable" in reason for reason in reasons.values())


def test_error_cells_are_found_wherever_the_sheet_xml_is_cut(tmp_path):
    """The sheet's XML is read in blocks of 1 MiB: error cells on every side of a cut, after a
    self-closing error cell (no value) and in a column before the first filled one are found,
    and the cells beside them keep their own values."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append([None, "id", "code", "note"])
    errors = {}
    for row in range(2, 30_002):
        code: object = row % 5
        if row % 997 == 0:
            code = ["#N/A", "#VALUE!", "#NAME?"][row % 3]
            errors[row] = code
        sheet.append([None, f"R{row:06d}", code, "teksts " * 3])
    book.save(tmp_path / "big.xlsx")
    with zipfile.ZipFile(tmp_path / "big.xlsx") as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    xml = parts["xl/worksheets/sheet1.xml"]
    assert len(xml) > 3 << 20  # several blocks
    empty = b'<c r="B40" t="e"/>'  # an error cell with no value, then a cell with one
    xml = xml.replace(b'<c r="B40" t="inlineStr"><is><t>R000040</t></is></c>', empty)
    assert empty + b'<c r="C40" t="n"><v>0</v></c>' in xml
    parts["xl/worksheets/sheet1.xml"] = xml
    with zipfile.ZipFile(tmp_path / "big.xlsx", "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    marks = sheet_marks(tmp_path / "big.xlsx")
    assert marks.errors == [(row, 2, error) for row, error in errors.items()]
    raw = read_raw_file(tmp_path / "big.xlsx", FileSpec(name="big.xlsx"), ["id", "note"])
    codes = dict(zip(raw.row_numbers, raw.frame["code"], strict=True))
    assert {row: codes[row] for row in errors} == errors
    assert codes[40] == 0 and codes[998] == 998 % 5
    assert raw.frame["id"][raw.row_numbers == 40].isna().all()
