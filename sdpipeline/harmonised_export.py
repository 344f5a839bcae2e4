"""The harmonised tables for analysts' own tools: SPSS ``.sav`` and Parquet, each table with a
codebook of its own beside it, published with the report.

SPSS keeps one variable label and one set of value labels per variable, so each table is
written twice, with Latvian labels (``<instrument>_lv.sav``) and with English ones
(``<instrument>_en.sav``), the data identical: labels in both languages at once would double
every SPSS output table and run into SPSS's 120-byte limit on a value label. The missing codes
(−1 hard to say, −2 no answer, −3 not asked) are declared SPSS user-missing values and labelled.
A numeric answer holds its number, and where it has none the missing code takes its place, as
SPSS users expect of a delivery; its ``<name>_missing`` column is then left out, having nothing
more to say. Should the codebook ever allow an answer a range that includes the codes, the
number stays system-missing instead and ``<name>_missing`` is kept as a labelled code. SPSS
names cannot begin with '_': the provenance columns are ``source_file``, ``source_sha256`` and
``source_row`` there.

The Parquet file is the warehouse table as it is, written by DuckDB, every type kept.

Free text never leaves the warehouse (README, data protection): free-text columns are in
neither file. Pseudonyms stay: they are keyed hashes, not the delivered identifiers, and they
are what lets an analyst's question about a row reach the ministry, which alone holds the key
(``design_psu`` carries them too, where the design has no clusters).

The SPSS files' values (numbers as SPSS numbers, missing kinds as their codes) are computed by
DuckDB from a SQL expression per variable, read from the warehouse in chunks and written by
``sav_writer`` (pyreadstat writes their dictionaries), so a register-sized table is never whole
in memory. Files are written with fixed creation stamps, so the same table gives the same
bytes.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from sdpipeline import sav_writer
from sdpipeline.codebook import Codebook, Instrument, Label, Variable
from sdpipeline.columns import harmonised_columns
from sdpipeline.harmonise import missing_column
from sdpipeline.recodes import literal, quoted
from sdpipeline.sav_writer import DATE, NUMBER, TEXT
from sdpipeline.warehouse import qualified, table_columns

SCHEMA = "harmonised"
LANGUAGES = ("lv", "en")
FREE_TEXT = "text"
_MEASURES = {"nominal": "nominal", "binary": "nominal", "ordinal": "ordinal"}  # of coded answers
_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT")
_NUMBER_TYPES = (*_INTEGER_TYPES, "FLOAT", "DOUBLE")
_SPSS_NAME = re.compile(r"^[A-Za-z@][A-Za-z0-9_.@#$]*$")
_SPSS_RESERVED = {"ALL", "AND", "BY", "EQ", "GE", "GT", "LE", "LT", "NE", "NOT", "OR", "TO", "WITH"}
_NOTE_BYTES = 80  # an SPSS document line
CHUNK_ROWS = 131_072  # rows read and written at a time to the SPSS files


class ExportError(ValueError):
    """A harmonised table cannot be written as the codebook describes it."""


def exported_columns(
    connection: duckdb.DuckDBPyConnection, instrument: Instrument
) -> dict[str, str]:
    """The harmonised table's columns with their DuckDB types, in its order, less free text."""
    free_text = {v.name for v in instrument.variables if v.level == FREE_TEXT}
    return {
        name: kind
        for name, kind in table_columns(connection, SCHEMA, instrument.name)
        if name not in free_text
    }


def write_parquet(
    connection: duckdb.DuckDBPyConnection, instrument: Instrument, columns: list[str], path: Path
) -> None:
    """``columns`` of the table as the warehouse holds them, in the table's row order."""
    target = str(path).replace("'", "''")
    connection.execute(
        f"COPY (SELECT {_quoted(columns)} FROM {qualified(SCHEMA, instrument.name)}) "
        f"TO '{target}' (FORMAT parquet, COMPRESSION zstd)"
    )


def spss_name(column: str) -> str:
    """The column's name in SPSS: provenance columns lose their leading '_'."""
    name = column.lstrip("_")
    if (
        not _SPSS_NAME.match(name)
        or len(name.encode()) > 64
        or name.endswith(".")
        or name.upper() in _SPSS_RESERVED
    ):
        raise ExportError(f"column {column!r} has no valid SPSS name ({name!r})")
    return name


def _missing_codes(codebook: Codebook) -> dict[int, Label]:
    codes = {m.code: m.label for m in codebook.missing_categories.values()}
    if len(codes) > 3:
        raise ExportError(f"SPSS declares at most 3 missing values; the codebook has {codes}")
    return dict(sorted(codes.items(), reverse=True))


def _folds(variable: Variable, codes: dict[int, Label]) -> bool:
    """A numeric answer can carry the missing codes itself when no answer could equal one."""
    return variable.value_range is not None and variable.value_range[0] > max(codes)


@dataclass(frozen=True)
class SavColumn:
    """One SPSS variable: how it is stored, its label and value labels in both languages, and
    ``sql``, the expression over the warehouse table that gives its values."""

    variable: sav_writer.Variable
    label: Label
    values: dict[float, Label]
    sql: str


class SavLayout:
    """How one harmonised table becomes an SPSS file: its variables, the same in both
    languages but for their labels. ``names`` maps each warehouse column to its SPSS variable
    (a folded ``<name>_missing`` column to the answer that now holds its codes)."""

    def __init__(self, types: dict[str, str], instrument: Instrument, codebook: Codebook) -> None:
        self._described = harmonised_columns(instrument, codebook)
        self.names: dict[str, str] = {}
        self.columns: dict[str, SavColumn] = {}
        codes = _missing_codes(codebook)
        kind_codes = {m.kind: float(m.code) for m in codebook.missing_categories.values()}
        variables = {v.name: v for v in instrument.variables}
        for column, kind in types.items():
            if column in self.names:
                continue
            variable = variables.get(column)
            if variable is not None and variable.scale is not None:
                measure = _MEASURES[variable.level]
                labels = {**variable.scale.codes, **codes}
                self._add(column, _as_numbers(column), NUMBER, measure, "F8.0", labels, codes)
            elif variable is not None and variable.level == "numeric":
                beside = missing_column(variable)
                kinds = _as_codes(beside, kind_codes)
                if _folds(variable, codes):
                    folded = _folded(_as_numbers(column), kinds)
                    self._add(column, folded, NUMBER, "scale", None, codes, codes)
                    self.names[beside] = self.names[column]
                else:
                    self._add(column, _as_numbers(column), NUMBER, "scale")
                    self._add(beside, kinds, NUMBER, "nominal", "F8.0", codes)
            elif kind == "DATE":
                self._add(column, _as_is(column), DATE, "scale", "DATE11")
            elif kind in _NUMBER_TYPES:
                display = "F10.0" if kind in _INTEGER_TYPES else None
                self._add(column, _as_numbers(column), NUMBER, "scale", display)
            elif kind == "VARCHAR":
                self._add(column, _as_is(column), TEXT, "nominal")
            else:
                raise ExportError(f"{instrument.name}.{column}: no SPSS form for type {kind}")

    def _add(
        self,
        column: str,
        sql: str,
        kind: str,
        measure: str,
        display: str | None = None,
        labels: dict[int, Label] | None = None,
        missing: dict[int, Label] | None = None,
    ) -> None:
        name = spss_name(column)
        self.names[column] = name
        self.columns[name] = SavColumn(
            variable=sav_writer.Variable(
                name, kind, [float(c) for c in missing or {}], measure, display
            ),
            label=self._described.get(column, Label(column, column)),
            values={float(code): label for code, label in (labels or {}).items()},
            sql=sql,
        )

    def text_sources(self) -> dict[str, str]:
        """SPSS string variable → the warehouse column it holds."""
        return {
            name: column
            for column, name in self.names.items()
            if self.columns[name].variable.kind == TEXT
        }

    def select(self, table: str) -> str:
        """The query giving the SPSS file's values from the warehouse ``table``, a column per
        variable, named as SPSS names it."""
        values = ", ".join(f"{c.sql} AS {quoted(n)}" for n, c in self.columns.items())
        return f"SELECT {values} FROM {table}"

    def dictionary(
        self, language: str, file_label: Label, note: list[str]
    ) -> sav_writer.Dictionary:
        return sav_writer.Dictionary(
            file_label=getattr(file_label, language),
            labels={name: getattr(c.label, language) for name, c in self.columns.items()},
            value_labels={
                name: {code: getattr(label, language) for code, label in c.values.items()}
                for name, c in self.columns.items()
                if c.values
            },
            note=_note(note),
        )


def _as_is(column: str) -> str:
    return quoted(column)


def _as_numbers(column: str) -> str:
    return f"CAST({quoted(column)} AS DOUBLE)"


def _as_codes(column: str, codes: dict[str, float]) -> str:
    """A missing kind (hard_to_say, …) as its code; NULL where there is none."""
    cases = " ".join(
        f"WHEN {literal(kind)} THEN CAST({code!r} AS DOUBLE)" for kind, code in codes.items()
    )
    return f"CASE {quoted(column)} {cases} END"


def _folded(numbers: str, kinds: str) -> str:
    """The number where there is one (not NULL, not NaN), else its missing kind's code."""
    return f"coalesce(nullif({numbers}, CAST('NaN' AS DOUBLE)), {kinds})"


def _note(lines: list[str]) -> list[str]:
    """Text as SPSS document lines (at most 80 bytes each), split between words."""
    out = []
    for line in lines:
        current = ""
        for word in line.split(" "):
            candidate = f"{current} {word}" if current else word
            if len(candidate.encode()) > _NOTE_BYTES and current:
                out.append(current)
                candidate = word
            current = candidate
        out.append(current)
    if any(len(line.encode()) > _NOTE_BYTES for line in out):
        raise ExportError(f"a word longer than an SPSS note line: {lines}")
    return out


def _select(connection: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    return connection.execute(sql).df()


def _sources(
    connection: duckdb.DuckDBPyConnection, instrument: Instrument, codebook: Codebook
) -> pd.DataFrame:
    """The delivered files the table descends from, in the codebook's wave order."""
    sources = _select(
        connection,
        f"SELECT wave, _source_file AS file, _source_sha256 AS sha256, count(*) AS rows "
        f"FROM {qualified(SCHEMA, instrument.name)} GROUP BY ALL",
    )
    order = {wave: i for i, wave in enumerate(codebook.waves)}
    return sources.sort_values(
        ["wave", "file"], key=lambda c: c.map(order) if c.name == "wave" else c
    )


def _cell(text: object) -> str:
    if text is None or (isinstance(text, float) and pd.isna(text)):
        return ""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _sources_by_wave(provenance: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(variable, wave) → where the variable came from in that wave, and by which rule."""
    return {
        (r.variable, r.wave): "not asked"
        if pd.isna(r.source_variable)
        else f"`{r.source_variable}`: {r.rule}"
        for r in provenance.itertuples()
    }


def codebook_markdown(
    instrument: Instrument,
    codebook: Codebook,
    types: dict[str, str],
    layout: SavLayout,
    sources: pd.DataFrame,
    provenance: pd.DataFrame,
) -> str:
    """The dataset's own codebook: files, rows, missing codes, and every column with its
    labels, values and where it came from in each wave."""
    name = instrument.name
    described = harmonised_columns(instrument, codebook)
    free_text = [f"`{v.name}`" for v in instrument.variables if v.level == FREE_TEXT]
    lines = [
        f"# {instrument.label.lv} / {instrument.label.en}: harmonised dataset `{name}`",
        "",
        f"Written by sdpipeline from the warehouse table `{SCHEMA}.{name}` and the codebook "
        f"(version {codebook.version}, digest `{codebook.digest[:12]}`). One row per respondent "
        "and wave, every wave in the same names, codes and 2021 geography.",
        "",
        f"- `{name}.parquet`: the table as the warehouse holds it, every type kept.",
        f"- `{name}_lv.sav`, `{name}_en.sav`: SPSS, the same data with Latvian or with English "
        "variable and value labels. The missing codes are declared user-missing. A numeric "
        "answer with no number holds its missing code there, and its `_missing` column is left "
        "out. Provenance columns are named without their leading `_`.",
        f"- Left out of both: free text ({', '.join(free_text) or 'none'}), which never leaves "
        "the warehouse.",
        "",
        "## Delivered files",
        "",
        "| wave | file | SHA-256 | rows |",
        "|---|---|---|---:|",
        *[
            f"| {r.wave} | {_cell(r.file)} | `{r.sha256}` | {r.rows} |"
            for r in sources.itertuples()
        ],
        "",
        "## Missing codes",
        "",
        "| code | lv | en |",
        "|---:|---|---|",
        *[f"| {c} | {m.lv} | {m.en} |" for c, m in _missing_codes(codebook).items()],
    ]
    waves = list(codebook.waves)
    comparability = provenance.drop_duplicates("variable").set_index("variable")["comparability"]
    source_in = _sources_by_wave(provenance)
    lines += [
        "",
        "## Columns",
        "",
        "| column | SPSS | type | label (lv / en) | values | "
        + " | ".join(waves)
        + " | comparability |",
        "|---|---|---|---|---|" + "---|" * len(waves) + "---|",
    ]
    for column, kind in types.items():
        sav = layout.names[column]
        label = described.get(column, Label(column, column))
        own = layout.columns[sav].values if sav == spss_name(column) else {}
        values = "; ".join(f"{code:g} = {text.lv} / {text.en}" for code, text in own.items())
        cells = [
            f"`{column}`",
            f"`{sav}`" if sav == spss_name(column) else f"codes in `{sav}`",
            kind,
            f"{label.lv} / {label.en}",
            values,
            *[source_in.get((column, wave), "") for wave in waves],
            comparability.get(column, ""),
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _quoted(columns: list[str]) -> str:
    return ", ".join(map(quoted, columns))


def sav_values(
    connection: duckdb.DuckDBPyConnection, table: str, layout: SavLayout
) -> Iterator[pd.DataFrame]:
    """The SPSS file's values in chunks, computed by DuckDB and read through Arrow (text as
    Arrow buffers, not an object per cell)."""
    for batch in connection.sql(layout.select(table)).to_arrow_reader(CHUNK_ROWS):
        yield batch.to_pandas(date_as_object=False)


def write_sav_files(
    connection: duckdb.DuckDBPyConnection,
    instrument: Instrument,
    codebook: Codebook,
    layout: SavLayout,
    folder: Path,
    sources: pd.DataFrame,
    stamp: dt.datetime,
) -> list[Path]:
    """The table as SPSS, one file per language, read from the warehouse in chunks, with
    ``stamp`` as the files' creation time."""
    name = instrument.name
    table = qualified(SCHEMA, name)
    texts = layout.text_sources()
    longest = ", ".join(f"coalesce(max(strlen({quoted(c)})), 0)" for c in texts.values())
    *lengths, rows = connection.execute(f"SELECT {longest}, count(*) FROM {table}").fetchall()[0]
    widths = dict(zip(texts, lengths, strict=True))
    note = [
        f"sdpipeline: harmonised.{name}, codebook {codebook.version} ({codebook.digest[:12]}).",
        "Missing codes (user-missing): "
        + ", ".join(f"{c} {m.en}" for c, m in _missing_codes(codebook).items())
        + ".",
    ]
    for r in sources.itertuples():
        note += [f"{r.wave}: {r.file}, {r.rows} rows,", f"SHA-256 {r.sha256}"]
    label = Label(
        lv=f"{instrument.label.lv}: harmonizētie dati", en=f"{instrument.label.en}: harmonised"
    )
    files = {
        folder / f"{name}_{language}.sav": layout.dictionary(language, label, note)
        for language in LANGUAGES
    }
    sav_writer.write(
        files,
        [c.variable for c in layout.columns.values()],
        widths,
        rows,
        sav_values(connection, table, layout),
        stamp,
    )
    return list(files)


def write_datasets(
    connection: duckdb.DuckDBPyConnection, codebook: Codebook, folder: Path, stamp: dt.datetime
) -> list[Path]:
    """Every harmonised table as Parquet, SPSS in each language, and its codebook, in
    ``folder`` (a staging folder, published with the report but apart from it); ``stamp``
    is the SPSS files' creation time (the report's, for stable bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    # DuckDB writes the Parquet files on a connection of their own while this thread writes the
    # SPSS files: the one is DuckDB's work, the other mostly Python's (at ×1000 16 s and 35 s)
    with connection.cursor() as parquet, ThreadPoolExecutor(1) as pool:
        copies = [
            pool.submit(
                write_parquet,
                parquet,
                instrument,
                list(exported_columns(connection, instrument)),
                folder / f"{instrument.name}.parquet",
            )
            for instrument in codebook.instruments.values()
        ]
        try:
            written = _write_spss(connection, codebook, folder, stamp)
        except BaseException:
            pool.shutdown(cancel_futures=True)  # the report is not published: stop copying
            raise
        for copy in copies:
            copy.result()
    return written


def _write_spss(
    connection: duckdb.DuckDBPyConnection, codebook: Codebook, folder: Path, stamp: dt.datetime
) -> list[Path]:
    """Every harmonised table's SPSS files and codebook, listed with its Parquet file."""
    written = []
    for instrument in codebook.instruments.values():
        name = instrument.name
        types = exported_columns(connection, instrument)
        layout = SavLayout(types, instrument, codebook)
        sources = _sources(connection, instrument, codebook)
        savs = write_sav_files(connection, instrument, codebook, layout, folder, sources, stamp)
        provenance = _select(
            connection,
            f"SELECT variable, wave, source_variable, rule, comparability "
            f"FROM {qualified(SCHEMA, f'{name}_provenance')}",
        )
        doc = folder / f"{name}_codebook.md"
        doc.write_text(
            codebook_markdown(instrument, codebook, types, layout, sources, provenance),
            encoding="utf-8",
        )
        written += [folder / f"{name}.parquet", *savs, doc]
    return written
