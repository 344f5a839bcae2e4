"""Pandera checks whose rule is SQL, so that a contract runs inside DuckDB.

A contract stays a pandera ``DataFrameSchema`` derived from the codebook: its columns (required,
nullable, unique), its named checks and their messages are the single definition. Each check's
rule is a SQL condition true where a row breaks it (``statistics["fails"]``), written over
placeholders for the column as delivered (``{col}``), as a number (``{num}``) and as a date
(``{date}``), or over any column for a rule across columns (``{cols[NAME]}``,
``{nums[NAME]}``); a check that compares rows with each other names the window columns it
reads (``statistics["windows"]``: name → window expression). ``quarantine.apply_contract``
compiles the schema into queries over the warehouse table; pandera itself, validating a pandas
frame, runs the same SQL through DuckDB.

Gap filled: pandera 0.35's Ibis backend validates DuckDB tables, but it runs several queries per
check, brings each failing check's whole boolean output back into pandas, and turns custom
checks into Python UDFs: a 30-column contract took 7–17 s on the 1,200-row sample. Compiled to
SQL, a whole contract is one aggregate pass over the table, and only failing rows come back.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import pandera.pandas as pa

from sdpipeline.recodes import date_value, number, quoted

FLOAT_TYPES = ("DOUBLE", "FLOAT", "REAL")


def python_text(column: str, kind: str) -> str:
    """A cell as text the way Python's ``str`` spells the value pandas holds (missing: 'nan'
    for numbers, 'None' otherwise; a date as a timestamp at midnight)."""
    kind = kind.upper()
    if kind in FLOAT_TYPES:
        return (
            f"CASE WHEN {column} IS NULL OR isnan({column}) THEN 'nan' "
            f"ELSE CAST({column} AS VARCHAR) END"
        )
    if kind == "DATE":
        return f"coalesce(CAST(CAST({column} AS TIMESTAMP) AS VARCHAR), 'NaT')"
    if kind == "BOOLEAN":
        return f"coalesce(CASE WHEN {column} THEN 'True' ELSE 'False' END, 'None')"
    return f"coalesce(CAST({column} AS VARCHAR), 'None')"


class _Views(dict):
    """Column name → one view of the column, made on first use."""

    def __init__(self, make) -> None:
        super().__init__()
        self._make = make

    def __missing__(self, name: str) -> str:
        self[name] = self._make(name)
        return self[name]


def compile_fails(
    check: pa.Check, column: str | None, kinds: dict[str, str], relation: str = ""
) -> str:
    """The SQL condition of ``check`` (on ``column``, or across columns), for a table whose
    column types are ``kinds``; ``relation`` qualifies the columns when given."""
    statistics = check.statistics or {}
    prefix = f"{relation}." if relation else ""
    formats = statistics.get("date_formats", [])

    def raw(name: str) -> str:
        return prefix + quoted(name)

    cols = _Views(raw)
    nums = _Views(lambda name: number(raw(name), kinds.get(name, "VARCHAR")))
    dates = _Views(lambda name: date_value(raw(name), kinds.get(name, "VARCHAR"), formats))
    own = {}
    if column is not None:
        own = {"col": cols[column], "num": nums[column], "date": dates[column]}
    return "(" + statistics["fails"].format(cols=cols, nums=nums, **own) + ")"


def windows_of(check: pa.Check | None) -> dict[str, str]:
    """The window columns (name → SQL) a check compares rows with."""
    return dict((check.statistics or {}).get("windows", {})) if check is not None else {}


def sql_check(
    name: str, error: str, fails: str, description: str | None = None, **statistics
) -> pa.Check:
    """A pandera check whose rule is the SQL condition ``fails`` (true where a row breaks it).
    Validating pandas, pandera runs the same condition through DuckDB on the frame."""

    def holds(data: pd.Series | pd.DataFrame) -> pd.Series:
        frame = data.to_frame() if isinstance(data, pd.Series) else data
        column = data.name if isinstance(data, pd.Series) else None
        with duckdb.connect() as connection:
            connection.register("_data", frame.reset_index(drop=True))
            kinds = {str(r[0]): str(r[1]) for r in connection.execute("DESCRIBE _data").fetchall()}
            condition = compile_fails(checked, column, kinds)
            windows = "".join(f", {sql} AS {quoted(n)}" for n, sql in windows_of(checked).items())
            broken = connection.execute(
                f"SELECT coalesce({condition}, false) FROM (SELECT *{windows} FROM _data)"
            ).fetchnumpy()
        values = next(iter(broken.values()))
        return pd.Series(~values.astype(bool), index=data.index)

    checked = pa.Check(
        holds,
        name=name,
        error=error,
        description=description,
        statistics={"fails": fails, **statistics},
    )
    return checked
