"""The embedded DuckDB warehouse: one schema per layer, tables replaced atomically.

``CREATE OR REPLACE`` inside a transaction means a reader sees either the old table or the new
one, never a half-written one, and a failed load leaves the previous table as it was.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pandas as pd

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")


def qualified(schema: str, table: str) -> str:
    for part in (schema, table):
        if not _IDENTIFIER.match(part):
            raise ValueError(f"not a safe warehouse identifier: {part!r}")
    return f'"{schema}"."{table}"'


@contextmanager
def _transaction(connection: duckdb.DuckDBPyConnection, schema: str) -> Iterator[None]:
    connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    connection.execute("BEGIN TRANSACTION")
    try:
        yield
        connection.execute("COMMIT")
    except Exception:
        connection.execute("ROLLBACK")
        raise


def replace_tables(
    connection: duckdb.DuckDBPyConnection, schema: str, frames: dict[str, pd.DataFrame]
) -> list[str]:
    """Replace several tables of ``schema`` in one transaction: all or none of them change."""
    names = [qualified(schema, table) for table in frames]
    with _transaction(connection, schema):
        for name, frame in zip(names, frames.values(), strict=True):
            connection.register("_incoming", frame)
            connection.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _incoming")
            connection.unregister("_incoming")
    return names


def replace_table(
    connection: duckdb.DuckDBPyConnection, schema: str, table: str, frame: pd.DataFrame
) -> str:
    """Replace ``schema.table`` with ``frame`` in one transaction; returns the qualified name."""
    return replace_tables(connection, schema, {table: frame})[0]


def replace_table_as(
    connection: duckdb.DuckDBPyConnection, schema: str, table: str, select: str
) -> str:
    """Replace ``schema.table`` with the rows of a query over the warehouse, in one
    transaction; the rows never pass through Python."""
    name = qualified(schema, table)
    with _transaction(connection, schema):
        connection.execute(f"CREATE OR REPLACE TABLE {name} AS {select}")
    return name


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def read_frame(
    connection: duckdb.DuckDBPyConnection,
    schema: str,
    table: str,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """A table's columns as pandas, through Arrow: text arrives as Arrow-backed strings (one
    buffer per column, not a Python object per cell), numbers as NumPy arrays. For the work
    that is not per row (weighting, estimation) over the columns it reads."""
    listed = "*" if columns is None else ", ".join(_quoted(c) for c in columns)
    relation = connection.sql(f"SELECT {listed} FROM {qualified(schema, table)}")
    return relation.to_arrow_table().to_pandas()


def table_columns(
    connection: duckdb.DuckDBPyConnection, schema: str, table: str
) -> list[tuple[str, str]]:
    """(column, DuckDB type) as stored in the warehouse, for the column schema shown in the
    UI. Read from ``duckdb_columns()``, which ``information_schema.columns`` is a view over:
    the same rows in half the time (a run asks about 120 times)."""
    rows = connection.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = "
        "current_database() AND schema_name = ? AND table_name = ? ORDER BY column_index",
        [schema, table],
    ).fetchall()
    return [(str(name), str(kind)) for name, kind in rows]


def archive_replaced(
    connection: duckdb.DuckDBPyConnection,
    schema: str,
    table: str,
    archive_schema: str,
    new_sha256: str,
) -> str | None:
    """Before a table is replaced by a different delivered file, keep the old version under
    its file checksum, so that a new delivery never makes the previous one unrecoverable."""
    exists = connection.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchone()[0]
    if not exists:
        return None
    old = connection.execute(
        f"SELECT any_value(_source_sha256) FROM {qualified(schema, table)}"
    ).fetchone()[0]
    if old is None or old == new_sha256:
        return None
    target = f"{table}_{old[:12]}"
    connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{archive_schema}"')
    connection.execute(
        f"CREATE TABLE IF NOT EXISTS {qualified(archive_schema, target)} AS "
        f"SELECT * FROM {qualified(schema, table)}"
    )
    return f"{archive_schema}.{target}"
