"""SPSS ``.sav`` files written from chunks of a table, several files sharing their cases.

pyreadstat turns every cell into a Python object before writing it: 9 s for the residents'
240,000 rows at ×100 of the sample, minutes at a register's size, with the whole table held
as Python objects. So pyreadstat writes what it is good at, each file's dictionary (variable
and value labels, user-missing values, measures, formats, notes, the UTF-8 encoding), from a
one-case frame, and the cases are written here: an uncompressed file's cases are a fixed-width
block per row after the dictionary (an 8-byte number per numeric or date variable, a string
padded with spaces to its width in whole 8-byte units), so they are built as one numpy array
per chunk and appended to every file. The files are then read back by the tests with
pyreadstat itself.
"""

from __future__ import annotations

import datetime as dt
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyreadstat

from sdpipeline.generator.writers import pin_sav

NUMBER, DATE, TEXT = "number", "date", "text"
SYSMIS = -sys.float_info.max  # SPSS's system-missing value
_GREGORIAN = pd.Timestamp(dt.datetime(1582, 10, 14))  # where SPSS counts dates from, in seconds
_HEADER = struct.Struct("<4s60siiiii")  # record type … ncases, from the file's start
_LONGEST = 255  # longer strings are split into segments, which these files do not need


class SavError(ValueError):
    """The cases cannot be written in the layout pyreadstat gave the dictionary."""


@dataclass(frozen=True)
class Variable:
    """One variable as every file has it: its name, storage, missing values and display."""

    name: str
    kind: str
    missing: list[float] = field(default_factory=list)
    measure: str = "unknown"
    display: str | None = None


@dataclass(frozen=True)
class Dictionary:
    """What differs between the files: labels (by variable name) and the file's own texts."""

    file_label: str
    labels: dict[str, str]
    value_labels: dict[str, dict[float, str]]
    note: list[str]


def _width(variable: Variable, widths: dict[str, int]) -> int:
    """Bytes a variable takes in a case."""
    if variable.kind != TEXT:
        return 8
    return -(-max(widths[variable.name], 1) // 8) * 8


def _one_case(variables: list[Variable], widths: dict[str, int]) -> pd.DataFrame:
    """A case with every string at its full width, so that pyreadstat gives each string
    variable the width the data needs."""
    columns = {}
    for v in variables:
        if v.kind == TEXT:
            columns[v.name] = ["x" * max(widths[v.name], 1)]
        elif v.kind == DATE:
            columns[v.name] = pd.Series([pd.NaT], dtype="datetime64[us]")
        else:
            columns[v.name] = [np.nan]
    return pd.DataFrame(columns)


def _start(
    path: Path,
    variables: list[Variable],
    widths: dict[str, int],
    dictionary: Dictionary,
    rows: int,
    stamp: dt.datetime,
) -> BinaryIO:
    """The file's header (its creation time ``stamp``, its case count) and dictionary; open
    for the cases."""
    pyreadstat.write_sav(
        _one_case(variables, widths),
        str(path),
        file_label=dictionary.file_label,
        column_labels=dictionary.labels,
        variable_value_labels=dictionary.value_labels,
        missing_ranges={v.name: v.missing for v in variables if v.missing},
        variable_measure={v.name: v.measure for v in variables},
        variable_format={v.name: v.display for v in variables if v.display},
        note=dictionary.note,
    )
    pin_sav(path, stamp)
    content = bytearray(path.read_bytes())
    kind, _, _, case_units, compression, _, cases = _HEADER.unpack_from(content)
    case_bytes = sum(_width(v, widths) for v in variables)
    if kind != b"$FL2" or compression != 0 or cases != 1 or case_units * 8 != case_bytes:
        raise SavError(f"{path.name}: pyreadstat wrote a layout these cases do not fit")
    del content[-case_bytes:]
    struct.pack_into("<i", content, _HEADER.size - 4, rows if rows < 2**31 else -1)
    handle = path.open("wb")
    handle.write(content)
    return handle


def _cases(variables: list[Variable], widths: dict[str, int], chunk: pd.DataFrame) -> np.ndarray:
    """One chunk's cases: numbers and dates as 8-byte numbers (system-missing where empty),
    strings in UTF-8 padded with spaces."""
    layout = np.dtype(
        [(v.name, f"S{_width(v, widths)}" if v.kind == TEXT else "<f8") for v in variables]
    )
    cases = np.empty(len(chunk), dtype=layout)
    for v in variables:
        values = chunk[v.name]
        if v.kind == TEXT:
            cases[v.name] = padded_text(values, v.name, widths[v.name], _width(v, widths))
        else:
            if v.kind == DATE:
                values = (pd.to_datetime(values) - _GREGORIAN) / pd.Timedelta(seconds=1)
            numbers = values.to_numpy(dtype="float64", na_value=np.nan)
            cases[v.name] = np.where(np.isnan(numbers), SYSMIS, numbers)
    return cases  # written as it lies in memory: a copy as bytes would double the chunk


def padded_text(values: pd.Series, name: str, longest: int, width: int) -> np.ndarray:
    """Strings as SPSS stores them: UTF-8 padded with spaces to ``width`` bytes (an empty string
    where there is none). Each distinct value is padded once (most columns repeat a few), from
    Arrow's buffers with no Python object per value: identifiers are distinct in every row."""
    text = pa.array(values, type=pa.large_string(), from_pandas=True)
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    encoded = pc.fill_null(text, "").dictionary_encode()
    distinct = encoded.dictionary
    lengths = pc.binary_length(distinct).to_numpy(zero_copy_only=False).astype(np.int64)
    if len(distinct) and lengths.max() > longest:
        raise SavError(f"{name}: a value longer than its width {longest}")
    start = distinct.offset  # a slice's values begin where it starts in the buffers
    offsets = np.frombuffer(distinct.buffers()[1], dtype=np.int64)
    begins = offsets[start : start + len(distinct)]
    data = np.frombuffer(distinct.buffers()[2] or b"\0", dtype=np.uint8)
    cells = np.full((len(distinct), width), ord(" "), dtype=np.uint8)
    for byte in range(int(lengths.max(initial=0))):  # the n-th byte of every value that long
        having = np.flatnonzero(lengths > byte)
        cells[having, byte] = data[begins[having] + byte]
    return cells.view(f"S{width}").ravel()[encoded.indices.to_numpy(zero_copy_only=False)]


def write(
    files: dict[Path, Dictionary],
    variables: list[Variable],
    widths: dict[str, int],
    rows: int,
    chunks: Iterable[pd.DataFrame],
    stamp: dt.datetime,
) -> None:
    """Write ``files``, each with its own dictionary and all with the same cases, from
    ``chunks`` (frames with a column per variable, ``rows`` rows in all). ``widths``: the
    longest value of each string variable, in UTF-8 bytes (at most 255)."""
    too_long = {n: w for n, w in widths.items() if w > _LONGEST}
    if too_long:
        raise SavError(f"strings longer than {_LONGEST} bytes: {too_long}")
    handles = [_start(path, variables, widths, d, rows, stamp) for path, d in files.items()]
    written = 0
    try:
        for chunk in chunks:
            cases = _cases(variables, widths, chunk)
            written += len(chunk)
            for handle in handles:
                handle.write(cases)
    finally:
        for handle in handles:
            handle.close()
    if written != rows:
        raise SavError(f"{written} cases written where the table has {rows}")
