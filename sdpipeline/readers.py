"""Readers for the formats survey contractors deliver: SPSS ``.sav``, Excel ``.xlsx`` and CSV as
Excel exports it (UTF-8 with or without BOM, or Windows-1257; ``;`` or ``,``; decimal comma).

A reader returns the file as delivered: original column names, original codes, SPSS labels kept.
Recoding is the harmonisation layer's job. Anything unreadable raises ``DeliveryError`` naming
the file and, where it can, the line and column, instead of a stack trace from a parser.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import python_calamine

from sdpipeline.codebook import FileSpec
from sdpipeline.recodes import THOUSANDS_SPACES

DELIMITERS = (";", ",", "\t")
HEADER_SEARCH_ROWS = 10
SHEET_CHUNK_ROWS = 65_536
"""Rows of a workbook turned into columns at a time: a register's sheet as Python objects
would take gigabytes."""
# Python's csv module refuses a field over 128 KB, pandas' C parser has no such limit: with the
# default, a long comment failed a file when it sat in the lines the header is looked for in,
# and passed when it sat lower. The limit is the largest the module takes.
csv.field_size_limit(2**31 - 1)
# Bytes that Windows-1257 leaves undefined: their presence means the file is not Windows-1257.
_CP1257_UNDEFINED = b"\x81\x83\x88\x8a\x8c\x90\x98\x9a\x9c\x9f\xa1\xa5"
# UTF-8 for Latin-1 supplement, Latin Extended-A (every Latvian letter) and Cyrillic. Read as
# Windows-1257 these are 'Ć', 'Ä', 'Å', 'Š' or 'Ń' followed by a symbol, which Latvian text
# never has: a line holding one is UTF-8 inside a Windows-1257 file.
_UTF8_IN_CP1257 = re.compile(rb"[\xC3-\xC5\xD0\xD1][\x80-\xBF]")


class DeliveryError(ValueError):
    """A delivered file cannot be read as the contract says; names file, column and row."""

    def __init__(
        self, path: Path | str, message: str, column: str | None = None, row: int | None = None
    ):
        self.path, self.column, self.row = Path(path), column, row
        where = [f"file {Path(path).name}"]
        if column is not None:
            where.append(f"column {column!r}")
        if row is not None:
            where.append(f"row {row}")
        super().__init__(f"{', '.join(where)}: {message}")


@dataclass
class RawFile:
    """One delivered file as read, with what the reader learnt about it."""

    path: Path
    format: str
    frame: pd.DataFrame
    row_numbers: pd.Series
    value_labels: dict[str, dict[float, str]] = field(default_factory=dict)
    variable_labels: dict[str, str] = field(default_factory=dict)
    encoding: str | None = None
    delimiter: str | None = None
    decimal: str | None = None
    header_row: int = 1
    hidden_rows: tuple[int, ...] = ()
    sheets: tuple[str, ...] = ()
    """A workbook's sheets, in order: the first is the one read."""


def normalise_name(name: object) -> str:
    """Column names match case- and whitespace-insensitively, as contractors vary both."""
    return " ".join(str(name).split()).casefold()


def shown_value(text: str) -> str:
    """A delivered value as a person reads it in the file: a code read as the float 6.0 is 6."""
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def read_raw_file(
    path: Path,
    spec: FileSpec,
    text_columns: Iterable[str] = (),
    expected_columns: Iterable[str] = (),
) -> RawFile:
    """Read one delivered file. ``text_columns`` are kept as text (codes with leading zeros,
    identifiers, free text); other columns become numbers where every value is one. With
    ``expected_columns``, a title row above the header is recognised and skipped."""
    path = Path(path)
    if not path.exists():
        raise DeliveryError(path, "file does not exist")
    if path.stat().st_size == 0:
        raise DeliveryError(path, "file is empty (0 bytes)")
    text = {normalise_name(c) for c in text_columns}
    expected = {normalise_name(c) for c in expected_columns}
    readers = {"csv": _read_csv, "xlsx": _read_xlsx, "sav": _read_sav}
    raw = readers[spec.format](path, spec, text, expected)
    if raw.frame.empty:
        raise DeliveryError(path, f"file has a header but no data rows{sheet_note(raw)}")
    return raw


def sheet_note(raw: RawFile) -> str:
    """Which sheet of a workbook of several was read (the first), and what the others are
    called: the data may be on another."""
    if len(raw.sheets) < 2:
        return ""
    names = ", ".join(repr(name) for name in raw.sheets)
    return f" (read from the workbook's first sheet, {raw.sheets[0]!r}, of {names})"


def detect_encoding(path: Path, data: bytes, declared: str | None) -> str:
    """Honour a declared encoding but check it; otherwise BOM, then strict UTF-8, then
    Windows-1257. Never cp1252: it turns 'Ķekava' into 'Íekava' without an error."""
    has_bom = data.startswith(b"\xef\xbb\xbf")
    if declared:
        name = declared.lower().replace("_", "-")
        if name in ("cp1257", "windows-1257"):
            if _is_multibyte_utf8(data):
                raise DeliveryError(
                    path,
                    "declared Windows-1257 but the bytes are UTF-8 (re-export or fix the contract)",
                )
            return "cp1257"
        if name in ("utf-8", "utf8", "utf-8-sig"):
            return "utf-8-sig" if has_bom or name == "utf-8-sig" else "utf-8"
        return declared
    if has_bom:
        return "utf-8-sig"
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return "cp1257"


def _is_multibyte_utf8(data: bytes) -> bool:
    if data.isascii():
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _decode(path: Path, data: bytes, encoding: str) -> str:
    if encoding == "cp1257":
        utf8 = _UTF8_IN_CP1257.search(data)
        if utf8 is not None:
            line = data[: utf8.start()].count(b"\n") + 1
            offset = utf8.start() - (data.rfind(b"\n", 0, utf8.start()) + 1) + 1
            found = utf8.group().decode("utf-8")
            # the bytes and where they are, not the line around them: a free-text answer's
            # words would reach every place this message is kept (the run's log in Dagster)
            raise DeliveryError(
                path,
                "this line is UTF-8 inside a Windows-1257 file (mixed encodings; re-export the "
                f"whole file in one encoding): at byte {offset} of the line, "
                f"{utf8.group().hex(' ').upper()} (UTF-8 for {found!r})",
                row=line,
            )
        # the first of them: a search for each byte alone runs at memory speed, a regular
        # expression for any of them at 0.2 GB/s (0.6 s of a register's 115 MB file)
        undefined = [at for at in (data.find(bytes((b,))) for b in _CP1257_UNDEFINED) if at >= 0]
        if undefined:
            line = data[: min(undefined)].count(b"\n") + 1
            byte = data[min(undefined)]
            raise DeliveryError(path, f"byte 0x{byte:02X} is not Windows-1257", row=line)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DeliveryError(
            path, f"not valid {encoding} at byte {error.start} (mixed encodings?)", row=line
        ) from error


def find_header(rows: list[list[object]], expected: set[str], declared: int) -> int:
    """The row holding the column names: the declared one, unless a later row among the first
    ten matches the codebook's names better (a title row above the header, as Excel exports
    often have)."""
    if not expected or not rows:
        return declared

    def matches(row: list[object]) -> int:
        return sum(normalise_name(cell) in expected for cell in row if cell is not None)

    best = max(range(min(len(rows), HEADER_SEARCH_ROWS)), key=lambda i: (matches(rows[i]), -i))
    return best if matches(rows[best]) > matches(rows[declared]) else declared


def sniff_delimiter(header: str) -> str:
    """The delimiter that splits the header line into the most fields, outside quotes."""
    counts = {d: len(next(csv.reader([header], delimiter=d))) for d in DELIMITERS}
    return max(counts, key=lambda d: counts[d])


def _read_csv(path: Path, spec: FileSpec, text: set[str], expected: set[str]) -> RawFile:
    data = path.read_bytes()
    encoding = detect_encoding(path, data, spec.encoding)
    content = _decode(path, data, encoding).lstrip("\ufeff")
    lines = [line.rstrip("\r") for line in content.split("\n", HEADER_SEARCH_ROWS)]
    lines = lines[:HEADER_SEARCH_ROWS]
    # The parser reads the checked text as UTF-8 bytes, what it parses in any case: handed the
    # text itself it holds a copy of four bytes a character (a 115 MB file became 0.5 GB).
    del data
    content = content.encode("utf-8")
    # an empty line (or one of delimiters alone) above the header is padding, as below it
    first = next((line for line in lines if line.strip("".join(DELIMITERS) + " \t")), None)
    if first is None:
        raise DeliveryError(path, "file has no header line")
    delimiter = spec.delimiter or sniff_delimiter(first)
    head = []
    for number, line in enumerate(lines, start=1):
        try:
            head.append(next(csv.reader([line], delimiter=delimiter), []))
        except csv.Error as error:
            raise DeliveryError(path, f"line cannot be read as CSV: {error}", row=number) from error
    header = find_header(head, expected, spec.header_row)
    if header < len(lines) and not lines[header].strip("".join(DELIMITERS) + " \t"):
        header = lines.index(first)
    fields = head[header] if header < len(head) else []
    if len(fields) <= 1:
        other = sniff_delimiter(lines[header])
        raise DeliveryError(
            path,
            f"the header does not split on {delimiter!r}"
            + (f" but on {other!r}: wrong delimiter" if other != delimiter else ""),
            row=header + 1,
        )
    _check_names(path, fields, header + 1)
    decimal = spec.decimal or ("," if delimiter == ";" else ".")
    text_positions = [i for i, name in enumerate(fields) if normalise_name(name) in text]
    parsed = _parse_csv(path, content, delimiter, header, fields, decimal, text_positions)
    frame = _without_empty(path, parsed, header + 1)
    _refuse_short_lines(path, content, delimiter, fields, frame)
    # A column the parser could not read as numbers (a text cell, '1 234,5', 'True') is read
    # again as the text it is, and only then made numbers if every cell is one; so is a column
    # of decimals where padding rows were dropped, as those rows may have made integers decimals.
    numeric = (np.int64,) if len(frame) < len(parsed) else (np.int64, np.float64)
    untyped = [
        position
        for position, name in enumerate(fields)
        if position not in text_positions
        and str(name).strip() in frame.columns
        and frame[str(name).strip()].dtype not in numeric
    ]
    if untyped:
        as_text = _parse_csv(path, content, delimiter, header, fields, decimal, None, untyped)
        for column in as_text.columns:
            frame[column] = _numbers_if_all_parse(as_text.loc[frame.index, column], decimal)
    rows = pd.Series(frame.index, name="row")
    return RawFile(
        path,
        "csv",
        frame.reset_index(drop=True),
        rows,
        encoding=encoding,
        delimiter=delimiter,
        decimal=decimal,
        header_row=header + 1,
    )


def _parse_csv(
    path: Path,
    content: bytes,
    delimiter: str,
    header: int,
    fields: list[str],
    decimal: str,
    text_positions: list[int] | None,
    only: list[int] | None = None,
) -> pd.DataFrame:
    """The rows below the header (``content``: the file's text as UTF-8) as pandas' C parser
    reads them: a column of numbers in the file's decimal mark as numbers, ``text_positions``
    (``None``: every column) as text, blanks missing. Indexed by line number in the file,
    columns named as the header spells them (``only``: just those)."""
    options = {
        "encoding": "utf-8",
        "sep": delimiter,
        "usecols": only,
        "dtype": str if text_positions is None else {i: str for i in text_positions},
        "keep_default_na": False,
        "na_values": [""],
        "decimal": decimal,
        "skip_blank_lines": False,
    }
    try:
        frame = pd.read_csv(io.BytesIO(content), header=0, skiprows=header, **options)
        if not isinstance(frame.index, pd.RangeIndex):
            # The lines below the header have a field more than it (a delimiter at the end of
            # each): pandas took the first column for an index. Read as a column without a
            # name, which ``_without_empty`` drops if it is empty and refuses if not.
            fields = [*fields, ""]
            frame = pd.read_csv(
                io.BytesIO(content),
                header=None,
                skiprows=header + 1,
                names=list(range(len(fields))),
                index_col=False,
                **options,
            )
    except (pd.errors.ParserError, csv.Error) as error:
        raise DeliveryError(
            path, f"not a well-formed {delimiter!r}-separated file: {error}"
        ) from error
    names = [str(fields[i]).strip() for i in (only if only is not None else range(len(fields)))]
    if frame.shape[1] != len(names):
        raise DeliveryError(
            path, f"the header has {len(fields)} columns but the parser found {frame.shape[1]}"
        )
    frame.columns = names
    frame.index = _line_numbers(content, delimiter, header, len(frame))
    return frame


def _refuse_short_lines(
    path: Path, content: bytes, delimiter: str, fields: list[str], frame: pd.DataFrame
) -> None:
    """A line with fewer fields than the header names, which pandas pads with blanks. It is a
    line cut short, or a record broken in two by a line break in an unquoted comment: refused,
    like a line with a field too many, rather than quarantined as unanswered questions. Empty
    names ending the header (a delimiter closing it) may be left out. The delimiters of every
    line are counted in one pass over the bytes; only a line that looks short is read again as
    CSV, since a quoted field may hold a delimiter or run on over lines."""
    named = max((i + 1 for i, name in enumerate(fields) if str(name).strip()), default=0)
    if frame.empty or not frame.iloc[:, -1].isna().any():
        return  # a short line leaves the last column blank
    data = np.frombuffer(content, dtype=np.uint8)
    starts = np.concatenate(([0], np.flatnonzero(data == ord("\n")) + 1))
    starts = starts[starts < len(data)]
    delimiters = np.add.reduceat((data == ord(delimiter)).view(np.uint8), starts, dtype=np.int64)
    lines = frame.index.to_numpy() - 1  # each record's first line, from 0
    ends = np.append(lines[1:], len(starts))  # where the next record starts
    suspect = delimiters[lines] + 1 < named
    short = []
    for line, end in zip(lines[suspect], ends[suspect], strict=True):
        record = content[starts[line] : starts[end] if end < len(starts) else len(data)]
        reader = csv.reader(io.StringIO(record.decode("utf-8"), newline=""), delimiter=delimiter)
        found = len(next(reader, []))
        if found < named:
            short.append((int(line) + 1, found))
    if short:
        (first, found), more = short[0], len(short) - 1
        raise DeliveryError(
            path,
            f"the line has {found} field{'s' * (found != 1)} where the header names {named}"
            + (f" (so have {more} more: lines {_some(r for r, _ in short[1:])})" if more else "")
            + ": a line cut short, or a record broken by a line break in an unquoted field",
            column=str(fields[found]).strip(),
            row=first,
        )


def _some(numbers: Iterable[int], shown: int = 5) -> str:
    numbers = list(numbers)
    return ", ".join(map(str, numbers[:shown])) + (" …" if len(numbers) > shown else "")


def _line_numbers(content: bytes, delimiter: str, header: int, records: int) -> pd.Index:
    """The line in the file each record below the header starts on. One line a record unless
    a quoted field holds a line break (a comment written over two lines): then the records are
    counted again by Python's CSV reader, which knows on which line each one ends, so that
    quarantine and errors name the line an auditor finds the row on."""
    lines = content.count(b"\n") + (0 if content.endswith(b"\n") else 1)
    if lines - header - 1 == records:
        return pd.RangeIndex(header + 2, header + 2 + records)
    reader = csv.reader(io.StringIO(content.decode("utf-8"), newline=""), delimiter=delimiter)
    starts, ended = [], 0
    for _ in reader:
        starts.append(ended + 1)
        ended = reader.line_num
    return pd.Index(starts[header + 1 : header + 1 + records])


def _check_names(path: Path, names: list[object], header_row: int) -> None:
    """Two columns with one name would make the codebook's mapping ambiguous."""
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        key = normalise_name(name) if name is not None else ""
        if key and key in seen:
            raise DeliveryError(
                path,
                f"the header names this column twice (columns {seen[key]} and {position})",
                column=str(name).strip(),
                row=header_row,
            )
        seen[key] = position


def _without_empty(path: Path, frame: pd.DataFrame, header_row: int) -> pd.DataFrame:
    """Drop what spreadsheet exports pad files with: rows with no value at all (blank lines,
    ';;;;' lines, formatted but empty rows) and columns with neither a name nor a value. A column
    with values but no name is refused: its data cannot be matched to the codebook. The index
    keeps each row's number in the file."""
    unnamed = [i for i, name in enumerate(frame.columns) if not str(name).strip()]
    for i in unnamed:
        values = frame.iloc[:, i].dropna()
        if len(values):
            raise DeliveryError(
                path,
                f"column {i + 1} has values but no name in the header (row {header_row})",
                row=int(values.index[0]),
            )
    named = sorted(set(range(frame.shape[1])) - set(unnamed))
    frame = frame.iloc[:, named]
    return frame.dropna(how="all")


def _numbers_if_all_parse(values: pd.Series, decimal: str) -> pd.Series:
    """Numbers as Excel writes them for Latvia ('1 234,5'); left as text if any cell is not
    a number, so that validation can report the offending cell instead of losing it. Codes,
    the bulk of every file, parse as they are; only the rest pay for the cleaning."""
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().equals(values.isna()):
        return numbers
    cleaned = values.str.strip()
    for space in THOUSANDS_SPACES:
        cleaned = cleaned.str.replace(space, "", regex=False)
    if decimal != ".":
        cleaned = cleaned.str.replace(decimal, ".", regex=False)
    cleaned = cleaned.replace("", None)
    numbers = pd.to_numeric(cleaned, errors="coerce")
    if numbers.isna().equals(cleaned.isna()):
        return numbers
    return values


def _read_xlsx(path: Path, spec: FileSpec, text: set[str], expected: set[str]) -> RawFile:
    """Cells come as Excel typed them; pandas' own inference would turn the text '0320200'
    into the number 320200, so only non-text columns are inferred. Merged cells in the header
    or the data are refused: Excel keeps the value in the first cell only."""
    if not zipfile.is_zipfile(path):
        raise DeliveryError(path, "not an .xlsx workbook (not a zip container)")
    # The hidden rows and error cells are looked for in the sheet's XML on the other core
    # while calamine, which lets go of the GIL, parses it.
    with ThreadPoolExecutor(1) as pool:
        marks = pool.submit(sheet_marks, path)
        return _read_sheet(path, spec, text, expected, marks)


def _read_sheet(
    path: Path, spec: FileSpec, text: set[str], expected: set[str], marks: Future[SheetMarks]
) -> RawFile:
    with _unreadable(path):
        workbook = python_calamine.CalamineWorkbook.from_path(str(path))
        sheet = workbook.get_sheet_by_index(0)
        rows = sheet_rows(sheet)
        top = list(islice(rows, HEADER_SEARCH_ROWS))
        if not any(value != "" for row in top for value in row):
            rest = list(rows)  # blank to the search's end: the sheet may be blank throughout
            if not any(value != "" for row in rest for value in row):
                raise DeliveryError(path, "the first sheet is empty")
            rows = iter(rest)
    header = find_header([[_cell(v) for v in row] for row in top], expected, spec.header_row)
    _check_merged(path, sheet.merged_cell_ranges or [], header)
    names = ["" if c is None else str(c).strip() for c in map(_cell, top[header])]
    _check_names(path, names, header + 1)
    columns = [_Cells(normalise_name(name) in text) for name in names]
    with _unreadable(path):
        for chunk in _chunks([top[header + 1 :], rows]):
            body = np.array(chunk, dtype=object).reshape(len(chunk), -1)  # rows × columns
            for i, cells in enumerate(columns):
                cells.add(body[:, i])
    frame = pd.DataFrame({i: cells.column() for i, cells in enumerate(columns)})
    frame.columns = names
    frame.index = pd.RangeIndex(header + 2, header + 2 + len(frame))
    _put_errors(frame, marks.result().errors)
    frame = _without_empty(path, frame, header + 1)
    for column in frame.columns:
        if normalise_name(column) in text:
            if frame[column].dtype != "str":
                frame[column] = frame[column].map(_as_text)
        else:
            frame[column] = frame[column].infer_objects()
    rows = pd.Series(frame.index, name="row")
    return RawFile(
        path,
        "xlsx",
        frame.reset_index(drop=True),
        rows,
        header_row=header + 1,
        hidden_rows=tuple(sorted(set(marks.result().hidden) & set(frame.index))),
        sheets=tuple(workbook.sheet_names),
    )


def _put_errors(frame: pd.DataFrame, errors: list[tuple[int, int, str]]) -> None:
    """Excel's error cells as the text Excel shows (``#N/A``), where calamine left blanks: not
    an answer, so the row contract quarantines them as not numbers, naming the value, rather
    than as unanswered."""
    for row, column, value in errors:
        if row in frame.index and column < frame.shape[1]:
            name = frame.columns[column]
            if frame[name].dtype != object:  # numbers as ``_cell`` gives them beside text
                cells = np.empty(len(frame), dtype=object)
                cells[:] = [_cell(value) for value in frame[name].tolist()]
                frame[name] = cells
            frame.iloc[row - frame.index[0], column] = value


@contextmanager
def _unreadable(path: Path) -> Iterator[None]:
    """calamine's errors, while it opens the sheet or later as it gives its rows, as the file's
    own: the first sheet cannot be read."""
    try:
        yield
    except DeliveryError:
        raise
    except (
        ValueError,
        KeyError,
        IndexError,
        zipfile.BadZipFile,
        python_calamine.CalamineError,
    ) as error:
        raise DeliveryError(path, f"cannot read the first sheet: {error}") from error


def sheet_rows(sheet: python_calamine.CalamineSheet) -> Iterator[list[object]]:
    """The sheet's rows from A1 one by one, as ``to_python(skip_empty_area=False)`` gives them
    all at once: calamine's rows start at the first column holding a value, so the columns
    before it are put back as blanks."""
    before = [""] * sheet.start[1] if sheet.start else []
    for row in sheet.iter_rows():
        yield before + row


def _chunks(parts: list[Iterable[list[object]]]) -> Iterator[list[list[object]]]:
    """The rows in lists of at most ``SHEET_CHUNK_ROWS``."""
    chunk: list[list[object]] = []
    for row in (row for part in parts for row in part):
        chunk.append(row)
        if len(chunk) == SHEET_CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _Cells:
    """One column's cells as the sheet streams in, chunk by chunk. A chunk of numbers and
    blanks, the bulk of a workbook, is kept as one array of floats (NaN for a blank) instead of
    a Python object per cell; any other chunk as calamine gave it. ``column`` then makes the
    column exactly as ``_column`` makes it from all its cells at once."""

    def __init__(self, text: bool) -> None:
        self.text = text
        self.parts: list[tuple[np.ndarray, np.ndarray | None]] = []  # (values, blanks if floats)

    def add(self, values: np.ndarray) -> None:
        if not self.text:
            blank = values == ""
            if set(map(type, values[~blank])) <= {float}:
                numbers = values.copy()
                numbers[blank] = np.nan
                self.parts.append((numbers.astype(float), blank))
                return
        self.parts.append((values.copy(), None))  # a view would keep the whole chunk

    def column(self) -> np.ndarray | list | pd.Series:
        if not self.parts:  # a header and no rows
            return pd.Series(dtype=object)
        if not self.text and all(blank is not None for _, blank in self.parts):
            numbers = np.concatenate([n for n, _ in self.parts])
            return _numbers(numbers, np.concatenate([b for _, b in self.parts]))
        return _column(np.concatenate([_as_cells(*part) for part in self.parts]), self.text)


def _as_cells(values: np.ndarray, blank: np.ndarray | None) -> np.ndarray:
    """A chunk as calamine gave it: floats back as Python floats, blanks as ''."""
    if blank is None:
        return values
    cells = values.astype(object)
    cells[blank] = ""
    return cells


# What Excel shows in a cell whose formula failed, and writes as text when it saves a CSV.
EXCEL_ERRORS = (
    "#NULL!",
    "#DIV/0!",
    "#VALUE!",
    "#REF!",
    "#NAME?",
    "#NUM!",
    "#N/A",
    "#GETTING_DATA",
    "#SPILL!",
    "#CALC!",
    "#FIELD!",
    "#BLOCKED!",
    "#CONNECT!",
    "#BUSY!",
    "#UNKNOWN!",
)


@dataclass(frozen=True)
class SheetMarks:
    """What the first sheet's XML says that calamine's values do not: the rows Excel hides
    (how spreadsheet users often set cases aside), and the cells holding an Excel error such
    as ``#N/A`` or ``#DIV/0!`` (a formula that failed), which calamine gives as blanks. Each
    error as (row number, column number from 0, the error's text)."""

    hidden: list[int] = field(default_factory=list)
    errors: list[tuple[int, int, str]] = field(default_factory=list)


def sheet_marks(path: Path) -> SheetMarks:
    """The first sheet's hidden rows and error cells, from its own XML, read in blocks (a
    register's sheet is hundreds of MB); almost every block is one scan of its bytes."""
    marks = SheetMarks()
    with zipfile.ZipFile(path) as archive:
        sheet = _first_sheet_part(archive, set(archive.namelist()))
        if sheet is None:
            return marks
        with archive.open(sheet) as xml:
            pending = b""
            for block in iter(lambda: xml.read(1 << 20), b""):
                text = pending + block
                cut = max(text.rfind(b"<row"), text.rfind(b"<x:row"))  # a row may run on
                if cut <= 0:
                    pending = text
                    continue
                pending, text = text[cut:], text[:cut]
                _marks_in(text, marks)
            _marks_in(pending, marks)
    return marks


def _marks_in(xml: bytes, marks: SheetMarks) -> None:
    """The hidden rows and error cells among whole ``<row>`` elements of sheet XML."""
    if b'hidden="' in xml:
        for tag in _ROW_TAG.finditer(xml):
            attributes = tag.group(1)
            number = _ROW_NUMBER.search(attributes)
            if number and _HIDDEN.search(attributes):
                marks.hidden.append(int(number.group(1)))
    if b't="e"' in xml:
        for cell in _ERROR_CELL.finditer(xml):
            where = _CELL_REFERENCE.search(cell.group(1))
            value = _CELL_VALUE.search(cell.group(2))
            if where and value:
                column = 0
                for letter in where.group(1):
                    column = column * 26 + letter - ord("A") + 1
                text = value.group(1).decode("utf-8", "replace")
                marks.errors.append((int(where.group(2)), column - 1, text))


_ROW_TAG = re.compile(rb"<(?:\w+:)?row\b([^>]*)>")
_HIDDEN = re.compile(rb'\bhidden="(?:1|true)"')
_ROW_NUMBER = re.compile(rb'\br="(\d+)"')
_ERROR_CELL = re.compile(rb'<(?:\w+:)?c\b([^>]*\bt="e"[^>]*?)(?<!/)>(.*?)</(?:\w+:)?c>', re.DOTALL)
_CELL_REFERENCE = re.compile(rb'\br="([A-Z]+)(\d+)"')
_CELL_VALUE = re.compile(rb"<(?:\w+:)?v>([^<]*)</(?:\w+:)?v>")


def _first_sheet_part(archive: zipfile.ZipFile, names: set[str]) -> str | None:
    """The part holding the workbook's first sheet, as ``workbook.xml`` orders the sheets."""
    if "xl/workbook.xml" not in names or "xl/_rels/workbook.xml.rels" not in names:
        return None
    workbook = archive.read("xl/workbook.xml")
    first = re.search(rb'<(?:\w+:)?sheet\b[^>]*\br:id="([^"]+)"', workbook)
    if first is None:
        return None
    relations = archive.read("xl/_rels/workbook.xml.rels")
    for relation in re.finditer(rb"<Relationship\b([^>]*)/?>", relations):
        attributes = relation.group(1)
        if re.search(rb'\bId="' + re.escape(first.group(1)) + rb'"', attributes):
            target = re.search(rb'\bTarget="([^"]+)"', attributes)
            if target is None:
                return None
            part = target.group(1).decode()
            part = part.lstrip("/") if part.startswith("/") else f"xl/{part}"
            return part if part in names else None
    return None


def _column(values: np.ndarray, text: bool) -> np.ndarray | list:
    """One column's cells as ``_cell`` gives them (``text``: as ``_as_text`` then makes them).
    A column of numbers and blanks, the bulk of every workbook, is converted as one array, and
    so is a text column of text or of dates, and blanks; any other column cell by cell."""
    cells = np.array(values, dtype=object)
    blank = cells == ""
    kinds = set(map(type, cells[~blank]))
    if text and kinds <= {str}:
        cells[blank] = None
        return cells
    if text and kinds and kinds <= {dt.date, dt.datetime}:
        cells[blank] = None
        days = pd.to_datetime(cells).to_numpy().astype("datetime64[D]")
        iso = np.datetime_as_string(days).astype(object)
        iso[blank] = None
        return iso
    if not kinds <= {float}:
        return [_cell(value) for value in values]
    cells[blank] = np.nan
    return _numbers(cells.astype(float), blank)


def _numbers(numbers: np.ndarray, blank: np.ndarray) -> np.ndarray:
    """A column of numbers and blanks: integers where every cell holds a whole number."""
    whole = not blank.any() and bool(
        np.all((numbers == np.round(numbers)) & (np.abs(numbers) < 2**53))
    )
    return numbers.astype(np.int64) if whole else numbers


def _cell(value: object) -> object:
    """Calamine's cell values as pandas' own Excel reader gives them: whole floats as integers,
    dates as timestamps, empty cells as missing."""
    if value == "":
        return None
    if isinstance(value, bool):  # Excel's TRUE and FALSE, as Excel shows them: not a code
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dt.date):
        return pd.Timestamp(value)
    return value


def _check_merged(path: Path, merged: list, header: int) -> None:
    """A merge above the header (a title spread over the table) is harmless; one in the
    header or the data hides values."""
    for (first_row, first_col), (last_row, last_col) in merged:
        if last_row < header:
            continue
        span = f"{_cell_name(first_row, first_col)}:{_cell_name(last_row, last_col)}"
        raise DeliveryError(
            path,
            f"cells {span} are merged; Excel keeps a merged value in the first cell only, so "
            "unmerge them and give every column its own header and every row its own values",
            row=first_row + 1,
        )


def _cell_name(row: int, column: int) -> str:
    letters = ""
    column += 1
    while column:
        column, remainder = divmod(column - 1, 26)
        letters = chr(65 + remainder) + letters
    return f"{letters}{row + 1}"


def _as_text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    return str(value)


def _read_sav(path: Path, spec: FileSpec, text: set[str], expected: set[str]) -> RawFile:
    try:
        frame, meta = pyreadstat.read_sav(str(path), user_missing=True, apply_value_formats=False)
    except (pyreadstat.ReadstatError, pyreadstat.PyreadstatError, OSError) as error:
        raise DeliveryError(path, f"not a readable SPSS file: {error}") from error
    rows = pd.Series(range(1, len(frame) + 1), index=frame.index, name="row")
    labels = {k: v for k, v in meta.column_names_to_labels.items() if v}
    return RawFile(
        path,
        "sav",
        frame,
        rows,
        value_labels=dict(meta.variable_value_labels),
        variable_labels=labels,
        encoding=meta.file_encoding,
    )
