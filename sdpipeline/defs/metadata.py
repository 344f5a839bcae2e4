"""What every asset tells the UI: rows, column schema, a preview and the files it descends from.

Everything here is kept in Dagster's own event log (SQLite, or PostgreSQL in production) and
shown to anyone who reaches the UI, so a preview never shows free text or identifiers
(``preview_columns``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import dagster as dg
import duckdb
import pandas as pd

from sdpipeline.codebook import Codebook, Label, default_codebook
from sdpipeline.defs import keys
from sdpipeline.warehouse import qualified, table_columns

PREVIEW_ROWS = 10
RESPONDENT_LAYERS = (keys.RAW, keys.VALIDATED, keys.HARMONISED)
PROVENANCE_PREFIX = "_source_"
# A respondent sampled on their own is their own primary sampling unit, named by their
# pseudonym (``weighting.design_columns``).
NAMED_BY_IDENTIFIERS = ("design_psu",)
NOT_SHOWN = "(not shown: free text or an identifier)"


def _names(codebook: Codebook) -> tuple[frozenset[str], frozenset[str]]:
    """Every variable's names (harmonised and in each wave's file), case-folded: all of them,
    and those of free text or identifiers."""
    known, hidden = set(), set()
    for instrument in codebook.instruments.values():
        for variable in instrument.variables:
            names = {variable.name, *(s.variable for s in variable.sources.values())}
            names = {n.casefold() for n in names}
            known |= names
            if variable.level in ("text", "identifier") or variable.role == "id":
                hidden |= names
    return frozenset(known), frozenset(hidden)


def preview_columns(
    columns: Iterable[str], schema: str, codebook: Codebook | None = None
) -> list[str]:
    """The columns of a ``schema`` table that a preview may show. In tables with a row per
    respondent (raw, validated, harmonised): never a free-text or identifier variable (level
    ``text`` or ``identifier``, role ``id`` in the codebook), and in raw and validated tables
    nothing the codebook does not describe, since a column a contractor added could hold
    anything; nor a design column named by identifiers. Tables of aggregates (reference,
    indicators, report) hold neither."""
    if schema not in RESPONDENT_LAYERS:
        return list(columns)
    known, hidden = _names(codebook or default_codebook())
    hidden |= set(NAMED_BY_IDENTIFIERS)
    return [
        c
        for c in columns
        if c.casefold() not in hidden
        and (schema == keys.HARMONISED or c.startswith(PROVENANCE_PREFIX) or c.casefold() in known)
    ]


def sources_of(connection: duckdb.DuckDBPyConnection, schema: str, table: str) -> dict[str, str]:
    """The delivered files a warehouse table's rows descend from, by their provenance columns."""
    named = {name for name, _ in table_columns(connection, schema, table)}
    if not {"_source_file", "_source_sha256"} <= named:
        return {}
    return dict(
        connection.execute(
            f"SELECT DISTINCT _source_file, _source_sha256 FROM {qualified(schema, table)}"
        ).fetchall()
    )


def in_english(labels: Mapping[str, Label]) -> dict[str, str]:
    """Column descriptions as the UI shows them: the codebook's English text."""
    return {column: label.en for column, label in labels.items()}


def source_files_markdown(sources: Mapping[str, str]) -> str:
    lines = ["| file | SHA-256 |", "|---|---|"]
    lines += [f"| {name} | `{sha}` |" for name, sha in sorted(sources.items())]
    return "\n".join(lines)


def table_metadata(
    connection: duckdb.DuckDBPyConnection,
    schema: str,
    table: str,
    frame: pd.DataFrame | None,
    sources: Mapping[str, str],
    descriptions: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """``sources``: file name → SHA-256 of every delivered or reference file the table is from.
    ``frame``: the table as written, if it was written from pandas; ``None`` for a table built
    inside the warehouse, whose row count and preview are then read from it."""
    descriptions = descriptions or {}
    described = table_columns(connection, schema, table)
    shown = preview_columns([name for name, _ in described], schema)
    if frame is None:
        name = qualified(schema, table)
        rows = int(connection.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0])
        listed = ", ".join(f'"{column}"' for column in shown) or "NULL AS no_columns"
        head = connection.sql(f"SELECT {listed} FROM {name} LIMIT {PREVIEW_ROWS}")
        preview = head.to_arrow_table().to_pandas()
    else:
        rows, preview = len(frame), frame.loc[:, shown].head(PREVIEW_ROWS)
    columns = [
        dg.TableColumn(name=name, type=kind, description=descriptions.get(name))
        for name, kind in described
    ]
    return {
        "dagster/row_count": rows,
        "dagster/table_name": f"{schema}.{table}",
        "dagster/column_schema": dg.TableSchema(columns=columns),
        "preview": dg.MetadataValue.md(preview.to_markdown(index=False)),
        "source_files": dg.MetadataValue.md(source_files_markdown(sources)),
        "source_sha256": dg.MetadataValue.json(dict(sorted(sources.items()))),
    }
