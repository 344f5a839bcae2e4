"""What every asset tells the UI: rows, column schema, a preview and the files it descends from."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import dagster as dg
import duckdb
import pandas as pd

from sdpipeline.ingest import FileFacts
from sdpipeline.warehouse import table_columns

PREVIEW_ROWS = 10


def source_files_markdown(files: Iterable[FileFacts]) -> str:
    lines = ["| file | SHA-256 | bytes |", "|---|---|---|"]
    lines += [f"| {f.path.name} | `{f.sha256}` | {f.size_bytes} |" for f in files]
    return "\n".join(lines)


def table_metadata(
    connection: duckdb.DuckDBPyConnection,
    schema: str,
    table: str,
    frame: pd.DataFrame,
    sources: Iterable[FileFacts],
    descriptions: Mapping[str, str] | None = None,
) -> dict[str, object]:
    descriptions = descriptions or {}
    sources = list(sources)
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
        "source_sha256": dg.MetadataValue.json({f.path.name: f.sha256 for f in sources}),
    }
