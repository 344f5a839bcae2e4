"""The readers on real files in every supported format, encoding and delimiter."""

from __future__ import annotations

import re
import shutil

import openpyxl
import pandas as pd
import pyreadstat
import pytest

from sdpipeline.codebook import FileSpec, default_codebook
from sdpipeline.ingest import load_raw
from sdpipeline.readers import DeliveryError, read_raw_file, sniff_delimiter

from .bad_deliveries.make_corpus import rewrite_sav
from .conftest import SHIPPED_FILES, SHIPPED_RAW


@pytest.mark.parametrize(("instrument", "wave"), SHIPPED_FILES)
def test_every_shipped_file_reads_back(codebook, instrument, wave):
    spec = codebook.instruments[instrument].files[wave]
    variables = codebook.instruments[instrument].variables_in(wave)
    text = [v.sources[wave].variable for v in variables if v.is_text_like]
    raw = read_raw_file(SHIPPED_RAW / wave / spec.name, spec, text)
    assert raw.format == spec.format
    assert len(raw.frame) > 0
    assert raw.row_numbers.is_unique
    if spec.format == "sav":
        assert raw.value_labels and raw.variable_labels


def test_windows_1257_csv_keeps_latvian_letters(tmp_path):
    path = tmp_path / "a.csv"
    text = (
        "id;pasvaldiba;komentars;slodze\r\n"
        "1;LV-052;Ķekava, Ģimenes asistents;12,5\r\n"
        "2;LV-RIX;Žēl;1 234,5\r\n"
    )
    path.write_bytes(text.encode("cp1257"))
    raw = read_raw_file(path, FileSpec(name="a.csv"), ["id", "pasvaldiba", "komentars"])
    assert raw.encoding == "cp1257" and raw.delimiter == ";" and raw.decimal == ","
    assert raw.frame["komentars"].tolist() == ["Ķekava, Ģimenes asistents", "Žēl"]
    assert raw.frame["slodze"].tolist() == [12.5, 1234.5]
    assert raw.frame["id"].tolist() == ["1", "2"]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"])
def test_utf8_with_and_without_bom(tmp_path, encoding):
    path = tmp_path / "a.csv"
    path.write_bytes("ID,vārds,vērtība\n1,Ļoti labi,3.5\n".encode(encoding))
    raw = read_raw_file(path, FileSpec(name="a.csv"))
    assert raw.encoding == encoding
    assert list(raw.frame.columns) == ["ID", "vārds", "vērtība"]
    assert raw.frame.loc[0, "vārds"] == "Ļoti labi" and raw.frame.loc[0, "vērtība"] == 3.5


def test_utf8_bytes_declared_as_windows_1257_are_refused(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes("id;nosaukums\n1;Ķekava\n".encode())
    with pytest.raises(
        DeliveryError, match=re.escape("a.csv: declared Windows-1257 but the bytes are UTF-8")
    ):
        read_raw_file(path, FileSpec(name="a.csv", encoding="cp1257"))


def test_text_in_a_numeric_column_is_kept_for_validation(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("id;slodze\n1;12,5\n2;daudz\n", encoding="utf-8")
    raw = read_raw_file(path, FileSpec(name="a.csv"), ["id"])
    assert raw.frame["slodze"].tolist() == ["12,5", "daudz"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "file empty.csv: file is empty"),
        ("header.csv", b"id;a;b\r\n", "header.csv: file has a header but no data rows"),
        ("fake.xlsx", b"not a workbook", "fake.xlsx: not an .xlsx workbook"),
        ("fake.sav", b"$FL2 truncated", "fake.sav: not a readable SPSS file"),
    ],
)
def test_unreadable_files_name_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DeliveryError, match=re.escape(message)):
        read_raw_file(path, FileSpec(name=name))


def test_truncated_sav_is_refused(tmp_path):
    source = SHIPPED_RAW / "ex_ante_2017" / "iedzivotaji_2017.sav"
    path = tmp_path / "cut.sav"
    path.write_bytes(source.read_bytes()[:5000])
    with pytest.raises(DeliveryError, match=re.escape("cut.sav: not a readable SPSS file")):
        read_raw_file(path, FileSpec(name="cut.sav"))


def test_xlsx_reads_dates_and_text_columns(tmp_path):
    path = tmp_path / "a.xlsx"
    pd.DataFrame(
        {
            "ID": [1001, 1002],
            "kods": ["0320200", "0010000"],
            "datums": pd.to_datetime(["2023-02-01", "2023-03-05"]),
        }
    ).to_excel(path, index=False)
    raw = read_raw_file(path, FileSpec(name="a.xlsx"), ["kods"])
    assert raw.frame["kods"].tolist() == ["0320200", "0010000"]
    assert raw.row_numbers.tolist() == [2, 3]


def test_xlsx_columns_keep_excel_types_whether_read_whole_or_cell_by_cell(tmp_path):
    """Number columns are converted as one array, others cell by cell: both as pandas' own
    Excel reader gives them (whole numbers as integers, blanks missing, codes as text)."""
    path = tmp_path / "a.xlsx"
    pd.DataFrame(
        {
            "ID": [1001, 1002, 1003],
            "whole": [1.0, 2.0, 3.0],
            "gaps": [1.0, None, 3.0],
            "fractions": [1.5, 2.0, 2.25],
            "mixed": ["x", 2, None],
            "kods": ["0320200", None, "0010000"],
        }
    ).to_excel(path, index=False)
    frame = read_raw_file(path, FileSpec(name="a.xlsx"), ["kods"]).frame
    assert frame["whole"].dtype == "int64" and frame["whole"].tolist() == [1, 2, 3]
    assert frame["gaps"].dtype == "float64"
    assert frame["gaps"].isna().tolist() == [False, True, False]
    assert frame["fractions"].tolist() == [1.5, 2.0, 2.25]
    assert frame["mixed"].tolist()[:2] == ["x", 2] and pd.isna(frame["mixed"].iloc[2])
    assert frame["kods"].tolist()[0] == "0320200" and pd.isna(frame["kods"].iloc[1])


def test_delimiter_is_the_one_that_splits_the_header_most():
    assert sniff_delimiter("a;b;c") == ";"
    assert sniff_delimiter('a,"b;c",d') == ","
    assert sniff_delimiter("a\tb\tc") == "\t"


@pytest.mark.parametrize(
    ("encoding", "stray", "declared", "message"),
    [
        ("utf-8", "cp1257", "utf-8", "not valid utf-8"),
        ("cp1257", "utf-8", "cp1257", "UTF-8 inside a Windows-1257 file"),
        ("cp1257", "utf-8", None, "UTF-8 inside a Windows-1257 file"),
    ],
)
def test_a_line_in_another_encoding_is_refused_naming_the_line(
    tmp_path, encoding, stray, declared, message
):
    lines = [("id;komentars", encoding), ("1;Ķekava", encoding), ("2;Ļoti labi", stray)]
    path = tmp_path / "a.csv"
    path.write_bytes(b"".join(text.encode(code) + b"\r\n" for text, code in lines))
    with pytest.raises(DeliveryError, match=message) as error:
        read_raw_file(path, FileSpec(name="a.csv", encoding=declared), ["id", "komentars"])
    assert error.value.row == 3 and "a.csv" in str(error.value)


@pytest.mark.parametrize("declared", ["cp1257", None])
def test_a_byte_windows_1257_leaves_undefined_is_refused_naming_the_first(tmp_path, declared):
    """Two undefined bytes, the later one first in the list of undefined bytes: the file is
    refused at the one nearest its start, on its own line."""
    path = tmp_path / "a.csv"
    path.write_bytes(b"id;komentars\r\n1;\xd0\xe2\r\n2;x\xa5y\r\n3;\x81\r\n")
    with pytest.raises(DeliveryError, match="byte 0xA5 is not Windows-1257") as error:
        read_raw_file(path, FileSpec(name="a.csv", encoding=declared), ["id", "komentars"])
    assert error.value.row == 3 and "a.csv" in str(error.value)


def _workbook(path, seed: int) -> tuple[list[str], list[str]]:
    """A workbook as contractors make them: a title or blank rows above the header, the table
    starting in a later column, numbers, blanks, dates, text codes and columns of mixed cells."""
    import datetime as dt
    import random

    import openpyxl

    rng = random.Random(seed)
    columns = ["ID", "A", "B", "C", "D"]
    kinds = [rng.choice(["int", "float", "text", "date", "mixed"]) for _ in columns]
    top, left = rng.choice([0, 1, 3, 8]), rng.choice([0, 2])
    book = openpyxl.Workbook()
    sheet = book.active
    if top:
        sheet.cell(1, 1 + left, "Aptauja / Survey")
    for j, name in enumerate(columns):
        sheet.cell(top + 1, left + j + 1, name)
    values = {
        "int": lambda: rng.randint(-5, 200),
        "float": lambda: rng.choice([rng.randint(0, 9), rng.random() * 10]),
        "text": lambda: rng.choice(["0320200", "Rīga", "a b"]),
        "date": lambda: dt.date(2023, 5, rng.randint(1, 28)),
        "mixed": lambda: rng.choice([1, 2.5, "n/a", dt.datetime(2021, 3, 4, 5, 6)]),
    }
    for row in range(rng.choice([1, 2, 5, 9])):
        for j, kind in enumerate(kinds):
            if rng.random() > 0.15:
                sheet.cell(top + 2 + row, left + j + 1, values[kind]())
    book.save(path)
    return columns, [c for c, k in zip(columns, kinds, strict=True) if k == "text"]


@pytest.mark.parametrize("seed", range(40))
def test_a_workbook_read_in_chunks_is_the_workbook_read_whole(tmp_path, monkeypatch, seed):
    """A sheet is turned into columns a chunk of rows at a time, a chunk of numbers as one
    array: whatever the chunks (here two rows, so that a column's kinds differ between them),
    every cell comes out as reading the sheet in one piece gives it, with the same types."""
    import python_calamine

    from sdpipeline import readers

    path = tmp_path / "book.xlsx"
    columns, text = _workbook(path, seed)
    sheet = python_calamine.CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0)
    assert list(readers.sheet_rows(sheet)) == sheet.to_python(skip_empty_area=False)
    spec = FileSpec("book.xlsx")
    monkeypatch.setattr(readers, "SHEET_CHUNK_ROWS", 10**9)
    whole = read_raw_file(path, spec, text, columns)
    monkeypatch.setattr(readers, "SHEET_CHUNK_ROWS", 2)
    chunked = read_raw_file(path, spec, text, columns)
    pd.testing.assert_frame_equal(chunked.frame, whole.frame, check_exact=True)
    for column in whole.frame.columns:
        assert list(map(type, chunked.frame[column])) == list(map(type, whole.frame[column]))
    assert chunked.row_numbers.tolist() == whole.row_numbers.tolist()
    assert chunked.header_row == whole.header_row


def test_a_mislabelled_code_names_the_rows_that_hold_it(tmp_path):
    """The value labels' check is about the file's dictionary, but the answers it puts in
    doubt are rows: the error names them (or says that none holds the code)."""
    codebook = default_codebook()
    spec = codebook.instruments["specialists"].files["ex_post_2023"]
    path = tmp_path / spec.name
    shutil.copy(SHIPPED_RAW / "ex_post_2023" / spec.name, path)

    def mislabel(frame, labels):
        labels["JOB_SAT"][6.0] = "Nav skaidrs"
        frame.loc[[3, 8], "JOB_SAT"] = 6.0

    rewrite_sav(path, path, mislabel)
    with pytest.raises(DeliveryError) as raised:
        load_raw(codebook.instruments["specialists"], "ex_post_2023", codebook, path)
    assert "column 'JOB_SAT': code 6 is labelled 'Nav skaidrs'" in str(raised.value)
    assert "(2 rows hold it, rows 4, 9)" in str(raised.value), str(raised.value)


def _text_of(codebook, instrument: str, wave: str) -> list[str]:
    variables = codebook.instruments[instrument].variables_in(wave)
    return [v.sources[wave].variable for v in variables if v.is_text_like]


def _specialists_2017(tmp_path, edit) -> tuple:
    """The shipped specialists' 2017 file (Windows-1257, ';', decimal comma) with ``edit``
    applied to its data lines (index from 0, the header left alone)."""
    spec = default_codebook().instruments["specialists"].files["ex_ante_2017"]
    lines = (SHIPPED_RAW / "ex_ante_2017" / spec.name).read_bytes().split(b"\r\n")
    body = [edit(i, line) if line else line for i, line in enumerate(lines[1:])]
    path = tmp_path / spec.name
    path.write_bytes(b"\r\n".join([lines[0], *body]))
    return path, spec


def test_a_delimiter_ending_every_data_line_is_padding(tmp_path, codebook):
    """Some exports end every data line, but not the header, with the delimiter: one field
    more than the header, empty. pandas then takes the first column for an index and shifts
    every column by one; the file must read as if the delimiters were not there."""
    text = _text_of(codebook, "specialists", "ex_ante_2017")
    path, spec = _specialists_2017(tmp_path, lambda i, line: line + b";")
    padded = read_raw_file(path, spec, text)
    clean = read_raw_file(SHIPPED_RAW / "ex_ante_2017" / spec.name, spec, text)
    pd.testing.assert_frame_equal(padded.frame, clean.frame)
    assert padded.row_numbers.tolist() == clean.row_numbers.tolist()


def test_a_value_after_the_last_named_column_is_refused_naming_its_row(tmp_path, codebook):
    text = _text_of(codebook, "specialists", "ex_ante_2017")
    path, spec = _specialists_2017(tmp_path, lambda i, line: line + (b";7" if i == 0 else b";"))
    with pytest.raises(DeliveryError, match=r"has values but no name in the header") as error:
        read_raw_file(path, spec, text)
    assert error.value.row == 2


def test_a_string_variable_with_relabelled_codes_is_refused_naming_them(tmp_path, codebook):
    """A .sav whose scale question is a string variable ('1' … '5', as some exports store
    codes) with its labels reversed: refused like a numeric one, naming the code and rows, not
    a formatting error about the code being text."""
    name = "partneri_2023.sav"
    frame, meta = pyreadstat.read_sav(str(SHIPPED_RAW / "ex_post_2023" / name), user_missing=True)
    frame["COOP"] = frame["COOP"].map(lambda v: "" if v != v else str(int(v)))
    labels = {k: dict(v) for k, v in meta.variable_value_labels.items()}
    scale = labels["COOP"]
    labels["COOP"] = {str(int(k)): scale[6.0 - k] if k <= 5 else t for k, t in scale.items()}
    pyreadstat.write_sav(
        frame,
        str(tmp_path / name),
        column_labels=meta.column_names_to_labels,
        variable_value_labels=labels,
        missing_ranges={k: v for k, v in meta.missing_ranges.items() if k != "COOP"},
    )
    partners = codebook.instruments["partners"]
    with pytest.raises(DeliveryError, match=r"code 1 is labelled .* rows hold it, rows ") as error:
        load_raw(partners, "ex_post_2023", codebook, tmp_path / name)
    assert error.value.column == "COOP"


def test_excel_true_and_false_are_read_as_excel_shows_them(tmp_path):
    """A code column where a few cells were typed TRUE/FALSE (Excel booleans): kept as the
    text Excel shows, so the row contract quarantines them as not numbers, naming the rows,
    instead of the load failing on a column of numbers and booleans."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["id", "pap_1"])
    for row, value in enumerate([1, True, 0, False, 1], start=1):
        sheet.append([f"P{row}", value])
    path = tmp_path / "a.xlsx"
    book.save(path)
    raw = read_raw_file(path, FileSpec(name="a.xlsx"), ["id"])
    assert raw.frame["pap_1"].tolist() == [1, "TRUE", 0, "FALSE", 1]
    assert raw.row_numbers.tolist() == [2, 3, 4, 5, 6]


def test_rows_after_a_comment_over_two_lines_keep_their_line_numbers(tmp_path, codebook):
    """A quoted comment holding a line break takes two lines of the file: every row after it
    is named by the line it starts on, as an auditor opening the file finds it."""
    spec = codebook.instruments["residents"].files["ex_post_2023"]
    text = _text_of(codebook, "residents", "ex_post_2023")
    lines = (SHIPPED_RAW / "ex_post_2023" / spec.name).read_bytes().split(b"\r\n")
    fields = lines[2].split(b";")
    fields[-1] = b'"Labi; bet\r\nvajag vair\xe2k"'  # Windows-1257: 'vairāk'
    lines[2] = b";".join(fields)
    path = tmp_path / spec.name
    path.write_bytes(b"\r\n".join(lines))
    clean = read_raw_file(SHIPPED_RAW / "ex_post_2023" / spec.name, spec, text)
    edited = read_raw_file(path, spec, text)
    before = clean.row_numbers.tolist()
    assert edited.row_numbers.tolist() == before[:2] + [r + 1 for r in before[2:]]
    assert edited.frame["E1_komentars"][1] == "Labi; bet\r\nvajag vairāk"
    pd.testing.assert_frame_equal(
        edited.frame.drop(columns="E1_komentars"), clean.frame.drop(columns="E1_komentars")
    )


@pytest.mark.parametrize("padding", [b"\r\n", b";;;;\r\n", b"\r\n\r\n"])
def test_empty_lines_above_the_header_are_padding(tmp_path, codebook, padding):
    """An export that starts with an empty line (after its byte-order mark): the header is the
    first line holding names, and every row keeps the number of its line in the file."""
    spec = codebook.instruments["heads"].files["ex_post_2023"]
    text = _text_of(codebook, "heads", "ex_post_2023")
    shipped = SHIPPED_RAW / "ex_post_2023" / spec.name
    content = shipped.read_bytes()
    assert content.startswith(b"\xef\xbb\xbf")
    path = tmp_path / spec.name
    path.write_bytes(b"\xef\xbb\xbf" + padding + content[3:])
    variables = codebook.instruments["heads"].variables_in("ex_post_2023")
    names = [v.sources["ex_post_2023"].variable for v in variables]
    clean = read_raw_file(shipped, spec, text, names)
    for expected in (names, []):  # with the codebook's names to look for, and without
        padded = read_raw_file(path, spec, text, expected)
        pd.testing.assert_frame_equal(padded.frame, clean.frame)
    shift = padding.count(b"\n")
    assert padded.row_numbers.tolist() == [r + shift for r in clean.row_numbers]
    assert padded.header_row == clean.header_row + shift
    bare = tmp_path / "bare.csv"
    bare.write_bytes(padding + b"id;x\r\n1;2\r\n")
    assert read_raw_file(bare, FileSpec(name="bare.csv"), ["id"]).frame["x"].tolist() == [2]


def test_a_workbook_with_its_data_on_another_sheet_names_the_sheet_read(tmp_path, codebook):
    """A notes sheet put before the data: the first sheet is read, and the missing columns are
    reported with which sheet that was and what the others are called."""
    name = "partneri_2017.xlsx"
    book = openpyxl.load_workbook(SHIPPED_RAW / "ex_ante_2017" / name)
    book.active.title = "Dati"
    notes = book.create_sheet("Piezimes", 0)
    for line in ("Aptaujas piezīmes", "Dati: lapā 'Dati'", "Sagatavots 2017. gada novembrī"):
        notes.append([line])
    book.save(tmp_path / name)
    partners = codebook.instruments["partners"]
    with pytest.raises(DeliveryError, match="required column is missing") as error:
        load_raw(partners, "ex_ante_2017", codebook, tmp_path / name)
    assert "read from the workbook's first sheet, 'Piezimes', of 'Piezimes', 'Dati'" in str(
        error.value
    )
