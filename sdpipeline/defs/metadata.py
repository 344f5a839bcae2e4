"""What every asset tells the UI: rows, column schema, a preview and the files it descends from."""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg
import duckdb
import pandas as pd

from sdpipeline.codebook import Label
from sdpipeline.warehouse import qualified, table_columns

PREVIEW_ROWS = 10


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
    if frame is None:
        name = qualified(schema, table)
        rows = int(connection.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0])
        head = connection.sql(f"SELECT * FROM {name} LIMIT {PREVIEW_ROWS}").to_arrow_table()
        preview = head.to_pandas()
    else:
        rows, preview = len(frame), frame.head(PREVIEW_ROWS)
    columns = [
        dg.TableColumn(name=name, type=kind, description=descriptions.get(name))
        for name, kind in table_columns(connection, schema, table)
    ]
    return {
        "dagster/row_count": rows,
        "dagster/table_name": f"{schema}.{table}",
        "dagster/column_schema": dg.TableSchema(columns=columns),
        "preview": dg.MetadataValue.md(preview.to_markdown(index=False)),
        "source_files": dg.MetadataValue.md(source_files_markdown(sources)),
        "source_sha256": dg.MetadataValue.json(dict(sorted(sources.items()))),
    }
