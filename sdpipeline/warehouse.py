"""The embedded DuckDB warehouse: one schema per layer, tables replaced atomically.

``CREATE OR REPLACE`` inside a transaction means a reader sees either the old table or the new
one, never a half-written one, and a failed load leaves the previous table as it was.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import numpy as np
import pandas as pd

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
ENUM_LIMIT = 4096  # distinct values up to which a text column is read as codes


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


def _enum(values: list[str]) -> str:
    return "ENUM(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


def read_frame(
    connection: duckdb.DuckDBPyConnection,
    schema: str,
    table: str,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """A table's rows as pandas, with each text that repeats down a column made once and
    shared by its rows. DuckDB hands pandas a new string per cell, and a register's provenance,
    codes and design labels repeat a handful of values over millions of rows.

    A text column with up to ``ENUM_LIMIT`` distinct values is read as a DuckDB ENUM, which
    reaches pandas as codes and the distinct values once; a column with more, but still
    repeating, is shared after reading; one of distinct values (identifiers) is left as read."""
    select, distinct, repeating = shared_text_select(connection, schema, table, columns)
    frame = connection.execute(select).df()
    for column in frame.columns:
        values = frame[column]
        if column in distinct:
            codes = values.cat.codes.to_numpy()
            shared = np.asarray(values.cat.categories, dtype=object).take(codes)
            shared[codes < 0] = None
            frame[column] = pd.Series(shared, index=frame.index, dtype="str")
        elif column in repeating:
            codes, repeated = pd.factorize(values, use_na_sentinel=False)
            frame[column] = pd.Series(repeated.take(codes), index=frame.index, dtype=values.dtype)
    return frame


def shared_text_select(
    connection: duckdb.DuckDBPyConnection,
    schema: str,
    table: str,
    columns: list[str] | None = None,
) -> tuple[str, dict[str, list[str]], list[str]]:
    """The query reading ``columns`` (all by default) with each text column of up to
    ``ENUM_LIMIT`` distinct values as a DuckDB ENUM (pandas gets codes and the values once);
    with those columns' values, and the text columns that repeat (half their rows or fewer
    distinct)."""
    name = qualified(schema, table)
    kinds = dict(table_columns(connection, schema, table))
    columns = list(kinds) if columns is None else columns
    text = [c for c in columns if kinds[c] == "VARCHAR"]
    distinct, repeating = {}, []
    if text:
        counts = connection.execute(
            "SELECT count(*), "
            + ", ".join(f"count(DISTINCT {_quoted(c)})" for c in text)
            + f" FROM {name}"
        ).fetchone()
        rows, counts = counts[0], dict(zip(text, counts[1:], strict=True))
        repeating = [c for c in text if 2 * counts[c] <= rows]
        few = [c for c in repeating if 0 < counts[c] <= ENUM_LIMIT]
        if few:
            lists = connection.execute(
                "SELECT " + ", ".join(f"list(DISTINCT {_quoted(c)})" for c in few) + f" FROM {name}"
            ).fetchone()
            distinct = {
                c: [v for v in values if v is not None]
                for c, values in zip(few, lists, strict=True)
            }
    select = ", ".join(
        f"CAST({_quoted(c)} AS {_enum(distinct[c])}) AS {_quoted(c)}"
        if c in distinct
        else _quoted(c)
        for c in columns
    )
    return f"SELECT {select} FROM {name}", distinct, repeating


def table_columns(
    connection: duckdb.DuckDBPyConnection, schema: str, table: str
) -> list[tuple[str, str]]:
    """(column, DuckDB type) as stored, for the column schema shown in the UI."""
    rows = connection.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
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
