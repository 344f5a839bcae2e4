"""The floor (``sdpipeline floor``) on real delivered files of each format: what it cannot
interpret stops it, naming the file, the column, the values and the rows as the pipeline
numbers them, instead of falling out of a base; a title row above the header is found."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from sdpipeline.codebook import default_codebook
from sdpipeline.floor import FloorError, floor_indicators
from sdpipeline.indicators import default_catalogue
from sdpipeline.readers import read_raw_file

from .bad_deliveries.make_corpus import rewrite_sav
from .conftest import SHIPPED_RAW, sdpipeline

BOM = b"\xef\xbb\xbf"
CODEBOOK, CATALOGUE = default_codebook(), default_catalogue()


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "raw"
    shutil.copytree(SHIPPED_RAW, folder)
    return folder


def _csv_rows(path: Path, spec) -> tuple[list[list[str]], bool, str]:
    data = path.read_bytes()
    bom = data.startswith(BOM)
    encoding = "cp1257" if spec.encoding == "cp1257" else "utf-8"
    text = data[len(BOM) if bom else 0 :].decode(encoding)
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=spec.delimiter)), bom, encoding


def _write_csv(path: Path, spec, rows: list[list[str]], bom: bool, encoding: str) -> None:
    out = io.StringIO(newline="")
    csv.writer(out, delimiter=spec.delimiter, lineterminator="\r\n").writerows(rows)
    path.write_bytes((BOM if bom else b"") + out.getvalue().encode(encoding))


def _edit(path: Path, spec, column: str, values: dict[int, object]) -> None:
    """Set ``column`` of the data rows ``values`` names (0 = the first under the header)."""
    if spec.format == "csv":
        rows, bom, encoding = _csv_rows(path, spec)
        at = rows[0].index(column)
        for row, value in values.items():
            rows[row + 1][at] = str(value)
        _write_csv(path, spec, rows, bom, encoding)
    elif spec.format == "xlsx":
        book = openpyxl.load_workbook(path)
        sheet = book.active
        at = [c.value for c in sheet[1]].index(column) + 1
        for row, value in values.items():
            sheet.cell(row=row + 2, column=at, value=value)
        book.save(path)
    else:

        def change(frame, labels):
            for row, value in values.items():
                frame.loc[row, column] = value

        rewrite_sav(path, path, change)


def _pipeline_rows(path: Path, spec, column: str, value: object) -> list[int]:
    """The row numbers the pipeline's reader gives the rows holding ``value``."""
    raw = read_raw_file(path, spec, [], [column])
    cells = raw.frame[column]
    hit = cells.astype(str) == str(value) if isinstance(value, str) else cells == value
    return [int(r) for r in raw.row_numbers[hit.to_numpy()]]


@pytest.mark.parametrize(
    ("instrument", "wave", "column"),
    [
        ("residents", "ex_post_2023", "C2_uzticiba"),  # CSV, Windows-1257
        ("clients", "ex_post_2023", "SAT1"),  # Excel
        ("clients", "ex_ante_2017", "k1"),  # SPSS
        ("heads", "ex_ante_2017", "v5_trukums"),  # Excel
    ],
)
def test_a_code_without_a_rule_stops_the_floor_naming_file_column_code_and_rows(
    tmp_path, instrument, wave, column
):
    folder = _copy(tmp_path)
    spec = CODEBOOK.instruments[instrument].files[wave]
    path = folder / wave / spec.name
    _edit(path, spec, column, {2: 77, 4: 77, 9: 77})
    with pytest.raises(FloorError) as raised:
        floor_indicators(folder, CODEBOOK, CATALOGUE)
    message = str(raised.value)
    rows = _pipeline_rows(path, spec, column, 77)
    assert len(rows) == 3
    assert f"file {spec.name}, column '{column}': 3 rows hold values" in message, message
    assert "77" in message
    assert f"(rows {', '.join(map(str, rows))})" in message, (message, rows)


def test_text_where_a_number_belongs_and_an_unknown_municipality_stop_the_floor(tmp_path):
    folder = _copy(tmp_path)
    specialists = CODEBOOK.instruments["specialists"].files["ex_ante_2017"]
    _edit(folder / "ex_ante_2017" / specialists.name, specialists, "s5_lietas", {0: "daudz"})
    heads = CODEBOOK.instruments["heads"].files["ex_post_2023"]
    _edit(folder / "ex_post_2023" / heads.name, heads, "municipality_code", {5: "LV0000000"})
    with pytest.raises(FloorError) as raised:
        floor_indicators(folder, CODEBOOK, CATALOGUE)
    message = str(raised.value)
    assert f"file {specialists.name}, column 's5_lietas': 1 rows hold values" in message
    assert "['daudz'] (rows 2)" in message, message
    assert f"file {heads.name}, column 'municipality_code': 1 rows hold values" in message
    assert "['LV0000000'] (rows 7)" in message, message


def test_a_value_of_spaces_is_an_empty_answer_not_a_problem(tmp_path):
    spec = CODEBOOK.instruments["residents"].files["ex_post_2023"]
    floors = []
    for cell in ("", "   "):
        folder = _copy(tmp_path / repr(cell))
        _edit(folder / "ex_post_2023" / spec.name, spec, "C2_uzticiba", {3: cell})
        floors.append(floor_indicators(folder, CODEBOOK, CATALOGUE))
    pd.testing.assert_frame_equal(*floors)


def test_a_title_row_above_the_header_is_found_as_the_pipeline_finds_it(tmp_path):
    folder = _copy(tmp_path)
    for instrument, wave in (("clients", "ex_post_2023"), ("leaders", "ex_ante_2017")):
        spec = CODEBOOK.instruments[instrument].files[wave]
        path = folder / wave / spec.name
        if spec.format == "xlsx":
            book = openpyxl.load_workbook(path)
            book.active.insert_rows(1)
            book.active["A1"] = "Klientu aptauja 2023"
            book.save(path)
        else:
            rows, bom, encoding = _csv_rows(path, spec)
            _write_csv(path, spec, [["Pašvaldību vadītāju aptauja 2017"], *rows], bom, encoding)
    pd.testing.assert_frame_equal(
        floor_indicators(folder, CODEBOOK, CATALOGUE),
        floor_indicators(SHIPPED_RAW, CODEBOOK, CATALOGUE),
    )


def test_the_floor_command_says_what_it_cannot_interpret_and_exits_1(tmp_path):
    folder = _copy(tmp_path)
    spec = CODEBOOK.instruments["residents"].files["ex_post_2023"]
    _edit(folder / "ex_post_2023" / spec.name, spec, "C2_uzticiba", {0: 5})
    result = sdpipeline(tmp_path, "floor")  # on tmp_path/raw
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert (
        f"sdpipeline floor: file {spec.name}, column 'C2_uzticiba': 1 rows hold values"
        in result.stderr
    ), result.stderr
