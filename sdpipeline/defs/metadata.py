"""What every asset tells the UI: rows, column schema, a preview and the files it descends from."""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg
import duckdb
import pandas as pd

from sdpipeline.codebook import Label
from sdpipeline.warehouse import table_columns

PREVIEW_ROWS = 10


def sources_in(frame: pd.DataFrame) -> dict[str, str]:
    """The delivered files a table's rows descend from, by their provenance columns."""
    if not {"_source_file", "_source_sha256"} <= set(frame.columns):
        return {}
    return dict(
        zip(frame["_source_file"].to_numpy(), frame["_source_sha256"].to_numpy(), strict=True)
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
    frame: pd.DataFrame,
    sources: Mapping[str, str],
    descriptions: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """``sources``: file name → SHA-256 of every delivered or reference file the table is from."""
    descriptions = descriptions or {}
    columns = [
        dg.TableColumn(name=name, type=kind, description=descriptions.get(name))
        for name, kind in table_columns(connection, schema, table)
    ]
    return {
        "dagster/row_count": len(frame),
        "dagster/table_name": f"{schema}.{table}",
        "dagster/column_schema": dg.TableSchema(columns=columns),
        "preview": dg.MetadataValue.md(frame.head(PREVIEW_ROWS).to_markdown(index=False)),
        "source_files": dg.MetadataValue.md(source_files_markdown(sources)),
        "source_sha256": dg.MetadataValue.json(dict(sorted(sources.items()))),
    }
