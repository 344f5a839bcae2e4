"""Rebuild the bad-delivery corpus from the shipped sample delivery.

Each case is a folder laid out like the raw folder (``<wave>/<file>``) holding the malformed
files, which a test lays over a copy of the good delivery; ``cases.yaml`` says what each case
must do. The files are committed so that they stay what a contractor could really send even if
this script changes; run it again only when the codebook or the sample changes:

    python -m sdpipeline_tests.bad_deliveries.make_corpus
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import shutil
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pyreadstat

from sdpipeline import settings
from sdpipeline.generator.writers import pin_sav, pin_zip

CORPUS = Path(__file__).resolve().parent
SAMPLE = settings.REPO_ROOT / "data" / "raw"
STAMP = dt.datetime(2024, 1, 15, 9, 0)


def _lines(wave: str, name: str, encoding: str) -> list[str]:
    return (SAMPLE / wave / name).read_bytes().decode(encoding).splitlines()


def _write(target: Path, lines: list[str], encoding: str) -> None:
    target.write_bytes("\r\n".join(lines).encode(encoding) + b"\r\n")


def _set_cell(lines: list[str], line: int, column: str, value: str) -> None:
    header = lines[0].lstrip("\ufeff").split(";")
    cells = lines[line - 1].split(";")
    cells[header.index(column)] = value
    lines[line - 1] = ";".join(cells)


def _one_cell(
    out: Path, wave: str, name: str, encoding: str, line: int, column: str, value: str
) -> None:
    """The delivered CSV with one cell changed: the commonest bad row there is."""
    lines = _lines(wave, name, encoding)
    _set_cell(lines, line, column, value)
    _write(out / wave / name, lines, encoding)


def _save_book(book: openpyxl.Workbook, target: Path) -> None:
    book.properties.created = book.properties.modified = STAMP
    buffer = io.BytesIO()
    book.save(buffer)
    target.write_bytes(pin_zip(buffer.getvalue(), STAMP))


def rewrite_sav(source: Path, target: Path, change: Callable) -> None:
    """A .sav written again with ``change(frame, labels)`` applied, its dictionary kept."""
    frame, meta = pyreadstat.read_sav(str(source), user_missing=True)
    labels = {k: dict(v) for k, v in meta.variable_value_labels.items()}
    change(frame, labels)
    pyreadstat.write_sav(
        frame,
        str(target),
        column_labels=meta.column_names_to_labels,
        variable_value_labels=labels,
        missing_ranges=meta.missing_ranges,
    )
    pin_sav(target, STAMP)


# Residents 2023 and specialists 2017 are Windows-1257 CSV; heads 2023 and leaders 2017 UTF-8
# with BOM; clients 2023, partners 2017, heads 2017 and leaders 2023 .xlsx; the rest .sav.


def wrong_encoding(out: Path) -> None:
    lines = _lines("ex_ante_2017", "specialisti_2017.csv", "cp1257")
    _write(out / "ex_ante_2017" / "specialisti_2017.csv", lines, "utf-8")


def bom_and_semicolon_where_windows_1257_is_contracted(out: Path) -> None:
    lines = _lines("ex_post_2023", "iedzivotaji_2023.csv", "cp1257")
    _write(out / "ex_post_2023" / "iedzivotaji_2023.csv", lines, "utf-8-sig")


def mixed_encodings_in_one_file(out: Path) -> None:
    """Lines 6 and 9 pasted in from a UTF-8 copy of the file."""
    lines = _lines("ex_post_2023", "iedzivotaji_2023.csv", "cp1257")
    _set_cell(lines, 6, "E1_komentars", "Sociālajam dienestam vajag vairāk darbinieku.")
    _set_cell(lines, 9, "E1_komentars", "Ļoti laipni un ātri palīdzēja.")
    data = b"".join(
        line.encode("utf-8" if number in (6, 9) else "cp1257") + b"\r\n"
        for number, line in enumerate(lines, start=1)
    )
    (out / "ex_post_2023" / "iedzivotaji_2023.csv").write_bytes(data)


def delimiter_mismatch(out: Path) -> None:
    lines = _lines("ex_post_2023", "dienestu_vaditaji_2023.csv", "utf-8-sig")
    rows = [line.split(";") for line in lines]
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=",", lineterminator="\r\n").writerows(rows)
    target = out / "ex_post_2023" / "dienestu_vaditaji_2023.csv"
    target.write_bytes(b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8"))


def missing_required_column(out: Path) -> None:
    lines = _lines("ex_post_2023", "iedzivotaji_2023.csv", "cp1257")
    drop = lines[0].split(";").index("A1_zina")
    lines = [";".join(f for i, f in enumerate(line.split(";")) if i != drop) for line in lines]
    _write(out / "ex_post_2023" / "iedzivotaji_2023.csv", lines, "cp1257")


def empty_file(out: Path) -> None:
    (out / "ex_ante_2017" / "partneri_2017.xlsx").write_bytes(b"")


def header_only(out: Path) -> None:
    lines = _lines("ex_ante_2017", "pasvaldibu_vaditaji_2017.csv", "utf-8")
    _write(out / "ex_ante_2017" / "pasvaldibu_vaditaji_2017.csv", lines[:1], "utf-8")


def truncated_sav(out: Path) -> None:
    data = (SAMPLE / "ex_post_2023" / "specialisti_2023.sav").read_bytes()
    (out / "ex_post_2023" / "specialisti_2023.sav").write_bytes(data[:4000])


def _every_nth_row_invalid(out: Path, every: int) -> None:
    lines = _lines("ex_post_2023", "iedzivotaji_2023.csv", "cp1257")
    for number in range(2, len(lines) + 1, every):
        _set_cell(lines, number, "A1_zina", "5")
    _write(out / "ex_post_2023" / "iedzivotaji_2023.csv", lines, "cp1257")


def half_the_rows_invalid(out: Path) -> None:
    _every_nth_row_invalid(out, 2)


def a_tenth_of_the_rows_invalid(out: Path) -> None:
    """Over the codebook's 5 % threshold, under a threshold of 20 % set in run config."""
    _every_nth_row_invalid(out, 10)


def merged_header_cells(out: Path) -> None:
    book = openpyxl.load_workbook(SAMPLE / "ex_post_2023" / "klienti_2023.xlsx")
    book.active.merge_cells("J1:K1")
    _save_book(book, out / "ex_post_2023" / "klienti_2023.xlsx")


def merged_data_cells(out: Path) -> None:
    """Respondents of one region grouped under one merged region cell."""
    book = openpyxl.load_workbook(SAMPLE / "ex_ante_2017" / "dienestu_vaditaji_2017.xlsx")
    book.active.merge_cells("C5:C7")
    _save_book(book, out / "ex_ante_2017" / "dienestu_vaditaji_2017.xlsx")


def sav_value_labels_reversed(out: Path) -> None:
    def reverse(frame, labels):
        scale = labels["k1"]
        valid = sorted(code for code in scale if code < 8)
        labels["k1"] = {
            **scale,
            **{code: scale[mirror] for code, mirror in zip(valid, reversed(valid), strict=True)},
        }

    rewrite_sav(
        SAMPLE / "ex_ante_2017" / "klienti_2017.sav",
        out / "ex_ante_2017" / "klienti_2017.sav",
        reverse,
    )


def sav_option_the_codebook_lacks(out: Path) -> None:
    def add_option(frame, labels):
        labels["COOP"] = {**labels["COOP"], 6.0: "Nevaru novērtēt"}

    rewrite_sav(
        SAMPLE / "ex_post_2023" / "partneri_2023.sav",
        out / "ex_post_2023" / "partneri_2023.sav",
        add_option,
    )


def unknown_instrument_file(out: Path) -> None:
    """A volunteers' survey nobody added to the codebook."""
    lines = ["resp_id;municipality_code;V1", "VOL-2023-00001;LV-RIX;1", "VOL-2023-00002;LV-011;2"]
    _write(out / "ex_post_2023" / "brivpratigie_2023.csv", lines, "utf-8-sig")


def file_in_wrong_wave_folder(out: Path) -> None:
    shutil.copy(SAMPLE / "ex_post_2023" / "klienti_2023.xlsx", out / "ex_ante_2017")


def xlsx_that_is_a_csv(out: Path) -> None:
    lines = ["ID;pasvaldiba", "201700001;LV-RIX"]
    _write(out / "ex_ante_2017" / "partneri_2017.xlsx", lines, "utf-8")


def sav_that_is_a_csv(out: Path) -> None:
    lines = ["ID;pasvaldiba", "201700001;LV-RIX"]
    _write(out / "ex_ante_2017" / "iedzivotaji_2017.sav", lines, "utf-8")


def unterminated_quote(out: Path) -> None:
    lines = _lines("ex_ante_2017", "specialisti_2017.csv", "cp1257")
    _set_cell(lines, 30, "s15_koment", '"Trūkst laika un cilvēku')
    _write(out / "ex_ante_2017" / "specialisti_2017.csv", lines, "cp1257")


def extra_field_in_a_row(out: Path) -> None:
    lines = _lines("ex_ante_2017", "specialisti_2017.csv", "cp1257")
    lines[11] += ";Rīga"
    _write(out / "ex_ante_2017" / "specialisti_2017.csv", lines, "cp1257")


def fields_missing_at_a_line_end(out: Path) -> None:
    lines = _lines("ex_ante_2017", "specialisti_2017.csv", "cp1257")
    lines[14] = ";".join(lines[14].split(";")[:16])  # a line cut short after 16 of 22 fields
    _write(out / "ex_ante_2017" / "specialisti_2017.csv", lines, "cp1257")


def line_break_in_an_unquoted_comment(out: Path) -> None:
    lines = _lines("ex_post_2023", "iedzivotaji_2023.csv", "cp1257")
    assert lines[2].endswith(";Vajadzētu vairāk psihologu un ģimenes asistentu.")
    lines[2] = lines[2].replace(" psihologu un ", " psihologu\r\nun ")
    _write(out / "ex_post_2023" / "iedzivotaji_2023.csv", lines, "cp1257")


def duplicate_column_name(out: Path) -> None:
    lines = _lines("ex_post_2023", "dienestu_vaditaji_2023.csv", "utf-8-sig")
    lines[0] = lines[0].replace(";VACANCIES;", ";STAFF_TOTAL;")
    _write(out / "ex_post_2023" / "dienestu_vaditaji_2023.csv", lines, "utf-8-sig")


def values_in_an_unnamed_column(out: Path) -> None:
    lines = _lines("ex_ante_2017", "pasvaldibu_vaditaji_2017.csv", "utf-8-sig")
    lines[0] += ";"
    lines[3] += ";skat. pielikumu"
    lines[1:] = [
        line if line.count(";") == lines[0].count(";") else line + ";" for line in lines[1:]
    ]
    _write(out / "ex_ante_2017" / "pasvaldibu_vaditaji_2017.csv", lines, "utf-8-sig")


def very_long_file(out: Path) -> None:
    """The contractor's export appended to itself ten times: 12,000 rows, ids repeated."""
    lines = _lines("ex_post_2023", "iedzivotaji_2023.csv", "cp1257")
    _write(out / "ex_post_2023" / "iedzivotaji_2023.csv", lines + lines[1:] * 9, "cp1257")


def duplicate_respondent_id(out: Path) -> None:
    lines = _lines("ex_post_2023", "iedzivotaji_2023.csv", "cp1257")
    _set_cell(lines, 5, "resp_id", lines[3].split(";")[0])
    _write(out / "ex_post_2023" / "iedzivotaji_2023.csv", lines, "cp1257")


def code_outside_value_labels(out: Path) -> None:
    def code_seven(frame, labels):
        frame.loc[9, "k1"] = 7

    rewrite_sav(
        SAMPLE / "ex_ante_2017" / "klienti_2017.sav",
        out / "ex_ante_2017" / "klienti_2017.sav",
        code_seven,
    )


def text_in_numeric_column(out: Path) -> None:
    _one_cell(
        out, "ex_post_2023", "dienestu_vaditaji_2023.csv", "utf-8-sig", 4, "STAFF_TOTAL", "daudz"
    )


def municipality_code_of_2017_in_2023(out: Path) -> None:
    _one_cell(
        out, "ex_post_2023", "iedzivotaji_2023.csv", "cp1257", 8, "municipality_code", "LV-001"
    )


def unknown_municipality_code(out: Path) -> None:
    _one_cell(
        out, "ex_ante_2017", "pasvaldibu_vaditaji_2017.csv", "utf-8-sig", 12, "pasvaldiba", "LV-999"
    )


def interview_date_outside_fieldwork(out: Path) -> None:
    _one_cell(
        out, "ex_post_2023", "iedzivotaji_2023.csv", "cp1257", 10, "interview_date", "10.02.2019"
    )


def cross_field_rule_broken(out: Path) -> None:
    _one_cell(
        out, "ex_post_2023", "dienestu_vaditaji_2023.csv", "utf-8-sig", 6, "STAFF_SW_FTE", "75,5"
    )


def blank_lines_keep_row_numbers(out: Path) -> None:
    """Three blank lines after line 5; the age on what is now line 23 is impossible."""
    lines = _lines("ex_ante_2017", "specialisti_2017.csv", "cp1257")
    lines[5:5] = ["", "", ""]
    _set_cell(lines, 23, "vecums", "250")
    _write(out / "ex_ante_2017" / "specialisti_2017.csv", lines, "cp1257")


def xlsx_title_row_over_a_merged_banner(out: Path) -> None:
    book = openpyxl.load_workbook(SAMPLE / "ex_post_2023" / "klienti_2023.xlsx")
    sheet = book.active
    sheet.insert_rows(1)
    sheet["A1"] = "Klientu aptauja 2023: dati (BISS)"
    sheet.merge_cells("A1:H1")
    _save_book(book, out / "ex_post_2023" / "klienti_2023.xlsx")


def trailing_empty_rows_and_columns(out: Path) -> None:
    """Excel's padding: every line ends in empty fields and 400 ';;;' lines follow the data."""
    lines = _lines("ex_ante_2017", "specialisti_2017.csv", "cp1257")
    width = lines[0].count(";") + 3
    padded = [line + ";" * 3 for line in lines] + [";" * width] * 400
    _write(out / "ex_ante_2017" / "specialisti_2017.csv", padded, "cp1257")


def very_wide_file(out: Path) -> None:
    """2,000 empty columns after the data, as when a sheet's formatting reached column BXX."""
    lines = _lines("ex_ante_2017", "pasvaldibu_vaditaji_2017.csv", "utf-8-sig")
    _write(
        out / "ex_ante_2017" / "pasvaldibu_vaditaji_2017.csv",
        [line + ";" * 2000 for line in lines],
        "utf-8-sig",
    )


CASES: dict[str, Callable[[Path], None]] = {
    builder.__name__: builder
    for builder in (
        wrong_encoding,
        bom_and_semicolon_where_windows_1257_is_contracted,
        mixed_encodings_in_one_file,
        delimiter_mismatch,
        missing_required_column,
        empty_file,
        header_only,
        truncated_sav,
        half_the_rows_invalid,
        a_tenth_of_the_rows_invalid,
        merged_header_cells,
        merged_data_cells,
        sav_value_labels_reversed,
        sav_option_the_codebook_lacks,
        unknown_instrument_file,
        file_in_wrong_wave_folder,
        xlsx_that_is_a_csv,
        sav_that_is_a_csv,
        unterminated_quote,
        extra_field_in_a_row,
        fields_missing_at_a_line_end,
        line_break_in_an_unquoted_comment,
        duplicate_column_name,
        values_in_an_unnamed_column,
        very_long_file,
        duplicate_respondent_id,
        code_outside_value_labels,
        text_in_numeric_column,
        municipality_code_of_2017_in_2023,
        unknown_municipality_code,
        interview_date_outside_fieldwork,
        cross_field_rule_broken,
        blank_lines_keep_row_numbers,
        xlsx_title_row_over_a_merged_banner,
        trailing_empty_rows_and_columns,
        very_wide_file,
    )
}


def build(corpus: Path = CORPUS) -> None:
    for case, builder in CASES.items():
        folder = corpus / case
        shutil.rmtree(folder, ignore_errors=True)
        for wave in ("ex_ante_2017", "ex_post_2023"):
            (folder / wave).mkdir(parents=True)
        builder(folder)
        for wave in ("ex_ante_2017", "ex_post_2023"):
            if not any((folder / wave).iterdir()):
                (folder / wave).rmdir()


if __name__ == "__main__":
    build()
    print(f"{len(CASES)} cases written to {CORPUS}")
