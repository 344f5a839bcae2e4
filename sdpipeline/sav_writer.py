"""SPSS ``.sav`` files written from chunks of a table, several files sharing their cases.

pyreadstat turns every cell into a Python object before writing it: 9 s for the residents'
240,000 rows at ×100 of the sample, minutes at a register's size, with the whole table held as
Python objects. So pyreadstat writes what it is good at, each file's dictionary (variable and
value labels, user-missing values, measures, formats, notes, the UTF-8 encoding), from a
one-case frame, and the cases are written here with NumPy, a block of them at a time laid out,
compressed and appended to every file. A case is a fixed-width row (an 8-byte number per
numeric or date variable, a string padded with spaces to its width in whole 8-byte units),
stored with SPSS's bytecode compression, SPSS's own default, exactly as ReadStat (pyreadstat's
writer) stores it: per case, blocks of eight one-byte codes (a whole number from -99 to 151 as
itself plus 100, 255 system-missing, 254 eight spaces, 253 "the 8 bytes follow"), each block
followed by the 8-byte values its codes do not hold. The datasets are mostly small codes but
also carry identifiers, checksums and names, which stay whole, so a file is about 28 % smaller
than uncompressed (a ×1000 publication 6.1 → 4.5 GB). The tests read the files back with
pyreadstat and compare them, byte for byte, with pyreadstat's own compressed writing of the
same frame.
"""

from __future__ import annotations

import datetime as dt
import struct
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyreadstat
from numpy.lib.stride_tricks import sliding_window_view

from sdpipeline.generator.writers import pin_sav

NUMBER, DATE, TEXT = "number", "date", "text"
SYSMIS = -sys.float_info.max  # SPSS's system-missing value
_GREGORIAN = pd.Timestamp(dt.datetime(1582, 10, 14))  # where SPSS counts dates from, in seconds
_HEADER = struct.Struct("<4s60siiiii")  # record type … ncases, from the file's start
# The extension record that holds the case count as 64 bits (record 7, subtype 16, two 8-byte
# fields: 1, then the count), the count of a file past 2**31 cases, whose header says -1.
_CASES_RECORD = struct.pack("<iiii", 7, 16, 8, 2)
_LONGEST = 255  # longer strings are split into segments, which these files do not need
_BIAS = 100  # a compressed file's small whole numbers are stored as themselves plus this
_RAW, _SPACES, _SYSMIS_CODE, _END = 253, 254, 255, 252  # the other bytecodes
_SYSMIS_BITS = np.array([SYSMIS]).view("<u8")[0]
_EIGHT_SPACES = np.frombuffer(b" " * 8, dtype="<u8")[0]
# cases laid out and compressed at a time: the block (a few hundred bytes a case) and the
# compression's work arrays (about 20 bytes a unit) stay in a core's cache
_BLOCK_ROWS = 2_048
_QUEUED = 16  # compressed blocks waiting for the disk at most (a block: about a megabyte)


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
        row_compress=True,
    )
    pin_sav(path, stamp)
    content = bytearray(path.read_bytes())
    kind, _, _, case_units, compression, _, cases = _HEADER.unpack_from(content)
    (bias,) = struct.unpack_from("<d", content, _HEADER.size)
    (case,) = _cases(variables, widths, _one_case(variables, widths))
    one = compressed(case, _text_slots(variables, widths), last=True).tobytes()
    if (
        (kind, compression, cases, bias) != (b"$FL2", 1, 1, _BIAS)
        or case_units * 8 != sum(_width(v, widths) for v in variables)
        or not content.endswith(one)
    ):
        raise SavError(f"{path.name}: pyreadstat wrote a layout these cases do not fit")
    del content[-len(one) :]
    struct.pack_into("<i", content, _HEADER.size - 4, rows if rows < 2**31 else -1)
    record = content.find(_CASES_RECORD)
    if record < 0 or struct.unpack_from("<qq", content, record + 16) != (1, 1):
        raise SavError(f"{path.name}: pyreadstat wrote no 64-bit case count to set")
    struct.pack_into("<q", content, record + 24, rows)
    # a new file, not pyreadstat's cut back to nothing: ext4 writes a file rewritten after
    # truncation out to disk as it is closed (1.6 s for a ×1000 publication's twelve files)
    path.unlink()
    handle = path.open("xb")
    handle.write(content)
    return handle


def _layout(variables: list[Variable], widths: dict[str, int]) -> np.dtype:
    """A case as one record: an 8-byte number per numeric or date variable, a string per text
    variable at its width."""
    return np.dtype(
        [(v.name, f"S{_width(v, widths)}" if v.kind == TEXT else "<f8") for v in variables]
    )


def _stored(
    variables: list[Variable], widths: dict[str, int], chunk: pd.DataFrame
) -> list[np.ndarray]:
    """Each variable's cells in one chunk as its cases store them, one array per variable:
    numbers and dates as 8-byte numbers (system-missing where empty), strings in UTF-8 padded
    with spaces."""
    columns = []
    for v in variables:
        values = chunk[v.name]
        if v.kind == TEXT:
            columns.append(padded_text(values, v.name, widths[v.name], _width(v, widths)))
            continue
        if v.kind == DATE:
            values = (pd.to_datetime(values) - _GREGORIAN) / pd.Timedelta(seconds=1)
        numbers = values.to_numpy(dtype="float64", na_value=np.nan)
        columns.append(np.where(np.isnan(numbers), SYSMIS, numbers))
    return columns


def _cases(
    variables: list[Variable], widths: dict[str, int], chunk: pd.DataFrame
) -> Iterator[np.ndarray]:
    """One chunk's cases, ``_BLOCK_ROWS`` at a time, each block in the same buffer (used
    before the next is asked for). Cases are rows and the chunk comes in columns: a column
    written across a whole chunk's cases, one 8-byte cell every few hundred bytes, misses the
    cache on every cell (0.45 s for the residents' 240,000 cases at ×100); written a block at a
    time, every column's cells land in memory the core already holds (0.05 s)."""
    columns = _stored(variables, widths, chunk)
    block = np.empty(min(len(chunk), _BLOCK_ROWS), dtype=_layout(variables, widths))
    for start in range(0, len(chunk), _BLOCK_ROWS):
        cases = block[: min(_BLOCK_ROWS, len(chunk) - start)]
        for v, column in zip(variables, columns, strict=True):
            cases[v.name] = column[start : start + len(cases)]
        yield cases


def _text_slots(variables: list[Variable], widths: dict[str, int]) -> np.ndarray:
    """For each 8-byte unit of a case, whether it holds text (else a number)."""
    return np.repeat(
        [v.kind == TEXT for v in variables], [_width(v, widths) // 8 for v in variables]
    )


def compressed(cases: np.ndarray, text: np.ndarray, last: bool) -> np.ndarray:
    """``cases`` (one row of 8-byte units each, ``text`` marking the units that hold text) in
    SPSS's bytecode compression as ReadStat writes it: each case starts a block of codes, and
    ends with the block its last code left unfilled (an empty one when its units fill whole
    blocks), the unused codes 0; after the file's last case, the code 252 ends the data. The
    stream is a sequence of 8-byte words (a block of eight codes, then the units it does not
    hold), so it is built and packed as words, not bytes."""
    rows, units = len(cases), len(text)
    words = cases.view(np.uint8).reshape(rows, units * 8).view("<u8")
    blocks, whole = units // 8 + 1, units // 8
    codes = np.zeros((rows, blocks * 8), dtype=np.uint8)
    numbers = words[:, ~text].view("<f8")
    small = (numbers > -_BIAS) & (numbers < 252 - _BIAS) & (np.trunc(numbers) == numbers)
    number_codes = np.full(numbers.shape, _RAW, dtype=np.uint8)
    number_codes[small] = (numbers[small] + _BIAS).astype(np.uint8)
    number_codes[numbers.view("<u8") == _SYSMIS_BITS] = _SYSMIS_CODE
    codes[:, :units][:, ~text] = number_codes
    codes[:, :units][:, text] = np.where(words[:, text] == _EIGHT_SPACES, _SPACES, _RAW)
    if last and rows:
        codes[-1, units] = _END
    stream = np.zeros((rows, blocks, 9), dtype="<u8")
    stream[:, :, 0] = codes.view("<u8")
    stream[:, :whole, 1:] = words[:, : whole * 8].reshape(rows, whole, 8)
    stream[:, whole, 1 : 1 + units - whole * 8] = words[:, whole * 8 :]
    keep = np.ones((rows, blocks, 9), dtype=bool)
    keep[:, :, 1:] = (codes == _RAW).reshape(rows, blocks, 8)
    return stream[keep]


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
    # each value's first ``width`` bytes, read on into what follows it (the next values, then
    # spaces past the buffer's end) as one copy of a row per value; then spaces past its length
    padded = np.concatenate([data, np.full(width, ord(" "), dtype=np.uint8)])
    cells = sliding_window_view(padded, width)[begins]
    cells[np.arange(width) >= lengths[:, None]] = ord(" ")
    return cells.view(f"S{width}").ravel()[encoded.indices.to_numpy(zero_copy_only=False)]


def _append(handles: list[BinaryIO], stored: np.ndarray) -> None:
    for handle in handles:
        handle.write(stored)


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
    text, written = _text_slots(variables, widths), 0
    try:
        # The disk takes each compressed block on a thread of its own while this one lays out
        # and compresses the next: at ×1000 the two languages' files are 4.5 GB, and writing
        # them waits on the disk once the kernel holds as much unwritten data as it allows.
        with ThreadPoolExecutor(1) as disk:
            queued: deque[Future] = deque()
            try:
                for chunk in chunks:
                    for cases in _cases(variables, widths, chunk):
                        written += len(cases)
                        stored = compressed(cases, text, last=written == rows)
                        queued.append(disk.submit(_append, handles, stored))
                        if len(queued) > _QUEUED:
                            queued.popleft().result()
                for block in queued:
                    block.result()
            except BaseException:
                disk.shutdown(cancel_futures=True)
                raise
    finally:
        for handle in handles:
            handle.close()
    if written != rows:
        raise SavError(f"{written} cases written where the table has {rows}")
