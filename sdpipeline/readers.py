"""Readers for the formats survey contractors deliver: SPSS ``.sav``, Excel ``.xlsx`` and CSV as
Excel exports it (UTF-8 with or without BOM, or Windows-1257; ``;`` or ``,``; decimal comma).

A reader returns the file as delivered: original column names, original codes, SPSS labels kept.
Recoding is the harmonisation layer's job. Anything unreadable raises ``DeliveryError`` naming
the file and, where it can, the line and column, instead of a stack trace from a parser.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyreadstat

from sdpipeline.codebook import FileSpec

DELIMITERS = (";", ",", "\t")
HEADER_SEARCH_ROWS = 10
# Bytes that Windows-1257 leaves undefined: their presence means the file is not Windows-1257.
_CP1257_UNDEFINED = {0x81, 0x83, 0x88, 0x8A, 0x8C, 0x90, 0x98, 0x9A, 0x9C, 0x9F, 0xA1, 0xA5}
_SPACES = ("\u00a0", "\u202f", " ")


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


def normalise_name(name: object) -> str:
    """Column names match case- and whitespace-insensitively, as contractors vary both."""
    return " ".join(str(name).split()).casefold()


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
        raise DeliveryError(path, "file has a header but no data rows")
    return raw


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
        for offset, byte in enumerate(data):
            if byte in _CP1257_UNDEFINED:
                line = data[:offset].count(b"\n") + 1
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
    lines = content.splitlines()
    if not lines or not lines[0].strip():
        raise DeliveryError(path, "file has no header line")
    delimiter = spec.delimiter or sniff_delimiter(lines[0])
    head = [
        next(csv.reader([line], delimiter=delimiter), []) for line in lines[:HEADER_SEARCH_ROWS]
    ]
    header = find_header(head, expected, spec.header_row)
    fields = head[header] if header < len(head) else []
    if len(fields) <= 1:
        other = sniff_delimiter(lines[header])
        raise DeliveryError(
            path,
            f"the header does not split on {delimiter!r}"
            + (f" but on {other!r}: wrong delimiter" if other != delimiter else ""),
            row=header + 1,
        )
    decimal = spec.decimal or ("," if delimiter == ";" else ".")
    try:
        frame = pd.read_csv(
            io.StringIO(content),
            sep=delimiter,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=True,
            skiprows=header,
        )
    except (pd.errors.ParserError, csv.Error) as error:
        raise DeliveryError(
            path, f"not a well-formed {delimiter!r}-separated file: {error}"
        ) from error
    frame.columns = [str(c).strip() for c in frame.columns]
    for column in frame.columns:
        if normalise_name(column) not in text:
            frame[column] = _numbers_if_all_parse(frame[column], decimal)
        else:
            frame[column] = frame[column].replace("", None)
    first = header + 2
    rows = pd.Series(range(first, len(frame) + first), index=frame.index, name="row")
    return RawFile(
        path,
        "csv",
        frame,
        rows,
        encoding=encoding,
        delimiter=delimiter,
        decimal=decimal,
        header_row=header + 1,
    )


def _numbers_if_all_parse(values: pd.Series, decimal: str) -> pd.Series:
    """Numbers as Excel writes them for Latvia ('1 234,5'); left as text if any cell is not
    a number, so that validation can report the offending cell instead of losing it."""
    cleaned = values.str.strip()
    for space in _SPACES:
        cleaned = cleaned.str.replace(space, "", regex=False)
    if decimal != ".":
        cleaned = cleaned.str.replace(decimal, ".", regex=False)
    cleaned = cleaned.replace("", None)
    numbers = pd.to_numeric(cleaned, errors="coerce")
    if numbers.isna().equals(cleaned.isna()):
        return numbers
    return values.replace("", None)


def _read_xlsx(path: Path, spec: FileSpec, text: set[str], expected: set[str]) -> RawFile:
    """Cells come as Excel typed them; pandas' own inference would turn the text '0320200'
    into the number 320200, so only non-text columns are inferred."""
    if not zipfile.is_zipfile(path):
        raise DeliveryError(path, "not an .xlsx workbook (not a zip container)")
    try:
        sheet = pd.read_excel(path, sheet_name=0, header=None, engine="openpyxl", dtype=object)
    except (ValueError, KeyError, zipfile.BadZipFile) as error:
        raise DeliveryError(path, f"cannot read the first sheet: {error}") from error
    if sheet.empty:
        raise DeliveryError(path, "the first sheet is empty")
    cells = sheet.head(HEADER_SEARCH_ROWS).where(sheet.notna(), None).to_numpy().tolist()
    header = find_header(cells, expected, spec.header_row)
    names = [str(c).strip() if c is not None and not pd.isna(c) else "" for c in sheet.iloc[header]]
    frame = sheet.iloc[header + 1 :].copy()
    frame.columns = names
    frame = frame.loc[:, [n != "" for n in names]].dropna(how="all")
    for column in frame.columns:
        if normalise_name(column) in text:
            frame[column] = frame[column].map(_as_text)
        else:
            frame[column] = frame[column].infer_objects()
    rows = pd.Series(frame.index + 1, index=frame.index, name="row")
    return RawFile(
        path,
        "xlsx",
        frame.reset_index(drop=True),
        rows.reset_index(drop=True),
        header_row=header + 1,
    )


def _as_text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
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
