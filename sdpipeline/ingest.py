"""Turn one delivered file into the raw table of its instrument and wave.

The raw table keeps the delivery as it came (codes, labels, text) with its columns named as the
codebook spells them and respondent identifiers replaced by keyed pseudonyms, plus provenance:
which file (by SHA-256) and which row every record came from. Matching is case- and
whitespace-insensitive; an unknown column is kept and reported, a missing required one stops
the load.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sdpipeline import settings
from sdpipeline.codebook import Codebook, Instrument
from sdpipeline.pseudonymise import pseudonym_key, pseudonymise
from sdpipeline.readers import (
    EXCEL_ERRORS,
    DeliveryError,
    RawFile,
    normalise_name,
    read_raw_file,
    sheet_note,
)


@dataclass(frozen=True)
class FileFacts:
    """What identifies a delivered file: an auditor can re-hash it and compare."""

    path: Path
    size_bytes: int
    sha256: str
    modified: dt.datetime

    def as_metadata(self) -> dict[str, object]:
        return {
            "delivered_file": str(self.path),
            "file_size_bytes": self.size_bytes,
            "file_sha256": self.sha256,
            "file_modified_utc": self.modified.isoformat(timespec="seconds"),
        }


@dataclass(frozen=True)
class RawLoad:
    facts: FileFacts
    raw: RawFile
    table: pd.DataFrame
    unknown_columns: tuple[str, ...]
    missing_optional: tuple[str, ...]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_facts(path: Path) -> FileFacts:
    stat = path.stat()
    return FileFacts(
        path=path,
        size_bytes=stat.st_size,
        sha256=sha256_of(path),
        modified=dt.datetime.fromtimestamp(stat.st_mtime, tz=dt.UTC),
    )


def delivery_path(instrument: Instrument, wave_id: str, raw_dir: Path | None = None) -> Path:
    """Where the codebook says this instrument's file for the wave is dropped."""
    return (raw_dir or settings.raw_dir()) / wave_id / instrument.files[wave_id].name


def check_value_labels(raw: RawFile, instrument: Instrument, wave_id: str) -> None:
    """An SPSS file says what its codes mean. If that disagrees with the codebook (a reversed
    scale, a relabelled option, an option the codebook lacks), recoding by code would silently
    turn one answer into another, so the file is refused."""
    labels = {normalise_name(name): codes for name, codes in raw.value_labels.items()}
    for variable in instrument.variables_in(wave_id):
        source = variable.sources[wave_id]
        delivered = labels.get(normalise_name(source.variable))
        if source.scale is None or not delivered:
            continue
        for code, label in sorted(delivered.items(), key=lambda item: str(item[0])):
            number = _as_number(code)  # a string variable's codes are text: '1', or 'a'
            whole = number is not None and number.is_integer()
            expected = source.scale.labels.get(int(number)) if whole else None
            if expected is None and number is not None and number in source.missing_codes:
                continue
            shown = f"{number:g}" if number is not None else repr(code)
            if expected is None:
                problem = f"code {shown} is labelled {label!r} but the codebook has no such code"
            elif normalise_name(label) != normalise_name(expected):
                problem = (
                    f"code {shown} is labelled {label!r} in the file but {expected!r} in the "
                    f"codebook (scale {source.scale.name})"
                )
            else:
                continue
            held = _rows_holding(raw, source.variable, code if number is None else number)
            raise DeliveryError(
                raw.path,
                f"{problem}: the value labels differ from the codebook, so the codes cannot be "
                f"trusted to mean what the codebook says ({held})",
                column=source.variable,
            )


def _as_number(code: str | float) -> float | None:
    try:
        return float(code)
    except (TypeError, ValueError):
        return None


def _rows_holding(raw: RawFile, column: str, code: float | str) -> str:
    """Which rows of the file hold ``code`` in ``column``: where the mislabelled answers are."""
    names = {normalise_name(c): c for c in raw.frame.columns}
    cells = raw.frame.get(names.get(normalise_name(column)))
    if cells is None:
        return "no row holds it"
    found = (
        cells.astype(str).str.strip() == code
        if isinstance(code, str)
        else (pd.to_numeric(cells, errors="coerce") == code)
    )
    held = raw.row_numbers[found.to_numpy()]
    if held.empty:
        return "no row holds it"
    first = ", ".join(str(int(r)) for r in held.head(5))
    return f"{len(held)} rows hold it, rows {first}{' …' if len(held) > 5 else ''}"


def load_raw(
    instrument: Instrument, wave_id: str, codebook: Codebook, path: Path | None = None
) -> RawLoad:
    """Read, identify and shape one delivered file; raises ``DeliveryError`` if it is unusable."""
    path = path or delivery_path(instrument, wave_id)
    if not path.exists():
        raise DeliveryError(path, f"expected {instrument.name} file for {wave_id} is not delivered")
    spec = instrument.files[wave_id]
    variables = instrument.variables_in(wave_id)
    text = [v.sources[wave_id].variable for v in variables if v.is_text_like]
    with ThreadPoolExecutor(1) as pool:  # hashing lets go of the GIL: beside the parsing
        hashed = pool.submit(file_facts, path)
        raw = read_raw_file(path, spec, text, [v.sources[wave_id].variable for v in variables])
        facts = hashed.result()
    expected = {normalise_name(v.sources[wave_id].variable): v for v in variables}
    renames, unknown = {}, []
    for column in raw.frame.columns:
        variable = expected.get(normalise_name(column))
        if variable is None:
            unknown.append(str(column))
        else:
            renames[column] = variable.sources[wave_id].variable
    present = {normalise_name(c) for c in renames}
    absent = [v for key, v in expected.items() if key not in present]
    required = [v.sources[wave_id].variable for v in absent if v.required]
    if required:
        missing = f"required column is missing{sheet_note(raw)}"
        raise DeliveryError(path, missing, column=", ".join(required))
    check_value_labels(raw, instrument, wave_id)
    table = raw.frame.rename(columns=renames)
    identifier = instrument.id_variable.sources[wave_id].variable
    delivered = table[identifier]
    table[identifier] = pseudonymise(delivered, instrument.name, wave_id, pseudonym_key())
    # An Excel error is no one's identifier: kept as it is, for the contract to name it.
    failed = delivered.isin(EXCEL_ERRORS)
    if failed.any():
        table[identifier] = table[identifier].where(~failed, delivered.astype("string"))
    table.insert(0, "_source_row", raw.row_numbers.to_numpy())
    table.insert(0, "_source_sha256", facts.sha256)
    table.insert(0, "_source_file", path.name)
    return RawLoad(
        facts=facts,
        raw=raw,
        table=table.reset_index(drop=True),
        unknown_columns=tuple(unknown),
        missing_optional=tuple(v.sources[wave_id].variable for v in absent if not v.required),
    )
