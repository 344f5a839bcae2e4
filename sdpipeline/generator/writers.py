"""Writers that produce files the way contractors deliver them, byte-for-byte reproducible.

SPSS and Excel files carry a creation time; the writers pin it (to the end of the wave's
fieldwork) so that the same seed gives files with the same SHA-256, which is what the pipeline
identifies deliveries by.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat

from sdpipeline.codebook import FileSpec, Variable, Wave

_MEASURES = {"nominal": "nominal", "binary": "nominal", "ordinal": "ordinal", "numeric": "scale"}
_SAV_DATE_OFFSET = 92  # "dd mmm yy" then "hh:mm:ss" in the SPSS file header record
_INT32 = 2**31 - 1
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _integers_where_whole(frame: pd.DataFrame) -> pd.DataFrame:
    """Codes and counts are whole numbers: write '3', not '3.0'."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if pd.api.types.is_float_dtype(values) and np.all(np.mod(values.dropna(), 1) == 0):
            out[column] = values.astype("Int64")
    return out


def write_delivery_file(
    frame: pd.DataFrame,
    path: Path,
    spec: FileSpec,
    variables: list[Variable],
    wave: Wave,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.combine(wave.fieldwork_end, dt.time(17, 0))
    {"csv": _write_csv, "xlsx": _write_xlsx, "sav": _write_sav}[spec.format](
        frame, path, spec, variables, wave, stamp
    )


def _write_csv(frame, path, spec, variables, wave, stamp) -> None:
    out = _integers_where_whole(frame)
    date_columns = [v.sources[wave.id].variable for v in variables if v.level == "date"]
    for column in date_columns:
        out[column] = out[column].map(lambda d: d.strftime(spec.date_format or "%Y-%m-%d"))
    text = out.to_csv(
        sep=spec.delimiter or ",",
        decimal=spec.decimal or ".",
        index=False,
        lineterminator="\r\n",
    )
    path.write_bytes(text.encode(spec.encoding or "utf-8"))


def _write_xlsx(frame, path, spec, variables, wave, stamp) -> None:
    import openpyxl  # here: the exporters import this module's pinning, not Excel writing

    out = _integers_where_whole(frame)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Dati"
    sheet.append(list(out.columns))
    for row in out.itertuples(index=False):
        sheet.append(
            [None if pd.isna(v) else (int(v) if isinstance(v, np.integer) else v) for v in row]
        )
    book.properties.creator = "sdpipeline generator"
    book.properties.created = book.properties.modified = stamp
    buffer = io.BytesIO()
    book.save(buffer)
    path.write_bytes(pin_zip(buffer.getvalue(), stamp))


def pin_zip(content: bytes, stamp: dt.datetime) -> bytes:
    """Rewrite a zip container with fixed entry times and fixed document timestamps."""
    iso = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    source = zipfile.ZipFile(io.BytesIO(content))
    target_buffer = io.BytesIO()
    with zipfile.ZipFile(target_buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "docProps/core.xml":
                data = re.sub(
                    rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*", rb"\g<1>" + iso.encode(), data
                )
            info = zipfile.ZipInfo(item.filename, date_time=stamp.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, data)
    return target_buffer.getvalue()


def _wide_integers_as_doubles(frame: pd.DataFrame) -> pd.DataFrame:
    """SPSS keeps every number as a double, but pyreadstat writes a column of Python integers
    as 32-bit ones: identifiers past 2^31 (a serial of six digits or more behind the year, as
    at ×1000 of the sample) go as doubles, which is how SPSS itself stores them."""
    wide = [
        column
        for column in frame.columns
        if frame[column].dtype == object
        and len(present := frame[column].dropna())
        and all(type(v) is int for v in present)
        and max(map(abs, present)) > _INT32
    ]
    return frame.astype(dict.fromkeys(wide, "float64")) if wide else frame


def _write_sav(frame, path, spec, variables, wave, stamp) -> None:
    frame = _wide_integers_as_doubles(frame)
    labels, value_labels, missing, measures = {}, {}, {}, {}
    for variable in variables:
        source = variable.sources[wave.id]
        name = source.variable
        labels[name] = variable.question.lv[:250]
        if variable.level in _MEASURES:
            measures[name] = _MEASURES[variable.level]
        codes = dict(source.scale.labels) if source.scale is not None else {}
        for code, kind in source.missing_codes.items():
            codes.setdefault(
                int(code), {"no_answer": "Nav atbildes", "hard_to_say": "Grūti pateikt"}[kind]
            )
        if codes and frame[name].dtype != object:
            value_labels[name] = {float(k): v for k, v in codes.items()}
        if source.missing_codes and frame[name].dtype != object:
            missing[name] = sorted(source.missing_codes)[:3]
    pyreadstat.write_sav(
        frame,
        str(path),
        column_labels=labels,
        variable_value_labels=value_labels,
        missing_ranges=missing,
        variable_measure=measures,
    )
    pin_sav(path, stamp)


def pin_sav(path: Path, stamp: dt.datetime) -> None:
    """Overwrite the creation time SPSS files carry in their header, for reproducible bytes."""
    header = bytearray(path.read_bytes())
    month = _MONTHS[stamp.month - 1]
    pinned = f"{stamp:%d} {month} {stamp:%y}{stamp:%H:%M:%S}".encode("ascii")
    header[_SAV_DATE_OFFSET : _SAV_DATE_OFFSET + len(pinned)] = pinned
    path.write_bytes(bytes(header))
