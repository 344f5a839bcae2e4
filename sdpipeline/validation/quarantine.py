"""Apply a row contract inside the warehouse: find the rows that break it with the reason, and
decide whether the file as a whole is acceptable.

The contract (a pandera schema whose checks are SQL, ``sql_checks``) is compiled into one
aggregate pass over the table that counts every check's failing rows; only for a check that
fails are its rows read, and the reasons of each failing row are put together in SQL, one row
per source row number, ready to be inserted into ``audit.quarantine``. Every check of the
contract gets a result, including the ones that pass, so an auditor can see what a file was
checked against and not only what went wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import duckdb
import pandas as pd
import pandera.pandas as pa

from sdpipeline.readers import shown_value
from sdpipeline.recodes import is_number_type, literal, number, quoted
from sdpipeline.validation.sql_checks import (
    FLOAT_TYPES,
    compile_fails,
    python_text,
    windows_of,
)

ROW_COLUMN = "_source_row"
SAMPLE_ROWS = 10
QUARANTINE_COLUMNS = ["source_row", "columns", "reasons", "record"]
# The checks whose failing values a summary shows: codes, numbers, dates and municipality codes,
# which name no one; an identifier (``unique``) or a free-text cell stays in the audit tables.
VALUES_SHOWN = frozenset(
    {
        "valid_code",
        "is_number",
        "whole_number",
        "in_range",
        "is_date",
        "in_fieldwork",
        "municipality_code",
    }
)
VALUE_SHOWN = 20  # characters of a value shown, as a text cell in a number column may be long


@dataclass(frozen=True)
class ContractOutcome:
    """What a row contract found in one table."""

    rows: int
    quarantined: pd.DataFrame
    checks: pd.DataFrame
    file_errors: tuple[str, ...]

    @property
    def quarantined_share(self) -> float:
        return len(self.quarantined) / self.rows if self.rows else 0.0

    def rejected(self, max_share: float) -> bool:
        return bool(self.file_errors) or self.quarantined_share > max_share

    def audit_results(self, severity: str) -> list[dict]:
        """One audit row per check of the contract (passing ones too), plus file-level errors;
        ``severity`` is what a failure means for the table the contract guards."""
        results = [
            {
                "check_name": f"{row.check}({row.column})",
                "passed": row.failing_rows == 0,
                "failing_count": row.failing_rows,
                "rows_checked": self.rows,
                "severity": severity,
                "details": {
                    "message": row.message,
                    "sample_rows": row.sample_rows,
                    "sample_values": row.sample_values,
                },
            }
            for row in self.checks.itertuples()
        ]
        results += [
            {
                "check_name": "file_structure",
                "passed": False,
                "severity": "ERROR",
                "details": {"error": e},
            }
            for e in self.file_errors
        ]
        return results

    def summary(self, limit: int = 5) -> str:
        """One line for a log or a failure: each failing check with its row count, its first
        row and, where the values are codes, numbers or dates, the values of its sample rows
        (a code read as 6.0 shown as 6); never an identifier or free text."""
        failing = self.checks[self.checks["failing_rows"] > 0]
        parts = []
        for row in failing.head(limit).itertuples():
            if not row.sample_rows:
                parts.append(f"{row.column} {row.check}")
                continue
            shown = ""
            if row.check in VALUES_SHOWN:
                values = [
                    v if len(v) <= VALUE_SHOWN else v[:VALUE_SHOWN] + "…"
                    for v in dict.fromkeys(map(shown_value, row.sample_values))
                ]
                every = row.failing_rows == len(row.sample_values)
                said = ("value" if len(values) == 1 else "values") if every else "values such as"
                shown = f"; {said} {', '.join(values)}"
            parts.append(
                f"{row.column} {row.check} ({row.failing_rows} rows, e.g. row "
                f"{row.sample_rows[0]}{shown})"
            )
        return "; ".join(list(self.file_errors) + parts)


def contract_checks(schema: pa.DataFrameSchema) -> list[tuple[str, str, str]]:
    """Every (column, check name, message) the schema applies, passing or not."""
    return [(column, name, message) for column, name, message, _ in _declared(schema)]


def _declared(schema: pa.DataFrameSchema) -> list[tuple[str, str, str, pa.Check | None]]:
    checks = []
    for name, column in schema.columns.items():
        if not column.nullable:
            checks.append((name, "not_nullable", "value is missing", None))
        if column.unique:
            checks.append((name, "unique", "respondent identifier is not unique", None))
        checks += [(name, c.name, c.error or c.name, c) for c in column.checks]
    checks += [(c.description or "(row)", c.name, c.error or c.name, c) for c in schema.checks]
    return checks


def _kinds(connection: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    return {str(r[0]): str(r[1]) for r in connection.execute(f"DESCRIBE {relation}").fetchall()}


# pandera's data type (by the start of its name) → the DuckDB types that hold it
_DTYPES = {"str": ("VARCHAR",), "float": FLOAT_TYPES, "int": ("BIGINT", "INTEGER")}


def _file_errors(schema: pa.DataFrameSchema, kinds: dict[str, str]) -> list[str]:
    """What pandera reports without a row: a required column absent, a column of a type the
    contract does not allow."""
    errors = []
    for name, column in schema.columns.items():
        if name not in kinds:
            if column.required:
                errors.append(f"{name}: column_in_dataframe ({name})")
            continue
        if column.dtype is not None:
            allowed = next(
                (types for start, types in _DTYPES.items() if str(column.dtype).startswith(start)),
                (),
            )
            if kinds[name].upper() not in allowed:
                errors.append(f"{name}: dtype('{column.dtype}') ({kinds[name]})")
    return errors


def apply_contract(
    connection: duckdb.DuckDBPyConnection, relation: str, schema: pa.DataFrameSchema
) -> ContractOutcome:
    """Check every row of ``relation`` (a warehouse table or view with ``_source_row``) and
    find the rows to set aside, with their reasons and their content as read."""
    kinds = _kinds(connection, relation)
    file_errors = _file_errors(schema, kinds)
    first = next(iter(kinds))
    windows = {
        f"_n_{n}": f"count(*) OVER (PARTITION BY {quoted(n)})"
        for n, c in schema.columns.items()
        if c.unique and n in kinds
    }
    for _, _, _, check in _declared(schema):
        windows |= windows_of(check)
    counted = "".join(f", {sql} AS {quoted(name)}" for name, sql in windows.items())
    base = f"(SELECT *{counted} FROM {relation}) t"
    tests = []  # (position, column, name, message, condition, value shown, is a row rule)
    for position, (column, name, message, check) in enumerate(_declared(schema)):
        row_rule = check is not None and column not in schema.columns
        if not row_rule and column not in kinds:
            tests.append((position, column, name, message, None, None, row_rule))
            continue
        if name == "not_nullable":
            cell = quoted(column)
            condition = f"{cell} IS NULL" + (
                f" OR isnan({cell})" if kinds[column].upper() in FLOAT_TYPES else ""
            )
        elif name == "unique" and check is None:
            condition = f"{quoted('_n_' + column)} > 1"
        else:
            try:
                condition = compile_fails(check, None if row_rule else column, kinds)
            except KeyError as missing:  # a rule over a column the file does not have
                file_errors.append(f"{column}: {name} (column {missing} absent)")
                tests.append((position, column, name, message, None, None, row_rule))
                continue
        shown = python_text(
            quoted(first if row_rule else column), kinds[first if row_rule else column]
        )
        tests.append((position, column, name, message, condition, shown, row_rule))
    live = [t for t in tests if t[4] is not None]
    # Each check a 0/1 column, summed: DuckDB plans this faster than as many FILTER clauses.
    flags = "".join(
        f", CAST(coalesce({t[4]}, false) AS INTEGER) AS f{i}" for i, t in enumerate(live)
    )
    counts = connection.execute(
        "SELECT count(*)"
        + "".join(f", coalesce(sum(f{i}), 0)" for i in range(len(live)))
        + f" FROM (SELECT 1 AS one{flags} FROM {base})"
    ).fetchall()[0]
    rows, failing = int(counts[0]), dict(zip([t[0] for t in live], counts[1:], strict=True))
    results, broken = [], []
    for position, column, name, message, condition, shown, row_rule in tests:
        count = int(failing.get(position, 0))
        sample_rows, sample_values = [], []
        if count:
            broken.append((position, column, name, message, condition, shown, row_rule))
            sample = connection.execute(
                f"SELECT {ROW_COLUMN}, {shown} FROM {base} WHERE coalesce({condition}, false) "
                f"ORDER BY {ROW_COLUMN} LIMIT {SAMPLE_ROWS}"
            ).fetchall()
            sample_rows = [int(r) for r, _ in sample]
            sample_values = [str(v) for _, v in sample]
        results.append(
            {
                "column": column,
                "check": name,
                "message": message,
                "failing_rows": count,
                "sample_rows": sample_rows,
                "sample_values": sample_values,
            }
        )
    return ContractOutcome(
        rows=rows,
        quarantined=_quarantined(connection, base, broken, kinds),
        checks=pd.DataFrame(results),
        file_errors=tuple(file_errors),
    )


def kept_rows(
    connection: duckdb.DuckDBPyConnection,
    relation: str,
    schema: pa.DataFrameSchema,
    quarantined: str | None,
) -> str:
    """The SELECT of the rows the contract keeps: ``relation`` less the source rows listed in
    the relation ``quarantined`` (None: none). A column the contract reads as numbers that
    came as text (one cell such as 'NA' made the reader keep the column as delivered) is
    kept as the numbers the contract accepted, as from a file where every cell was a
    number: checks on the table, such as which codes it holds, see numbers, not text."""
    kinds = _kinds(connection, relation)
    as_text = [
        name
        for name, column in schema.columns.items()
        if name in kinds
        and not is_number_type(kinds[name])
        and any(check.name == "is_number" for check in column.checks)
    ]
    numbers = ", ".join(f"{number(quoted(n), kinds[n])} AS {quoted(n)}" for n in as_text)
    kept = f"SELECT *{f' REPLACE ({numbers})' if numbers else ''} FROM {relation}"
    if quarantined is not None:
        kept += f" WHERE {ROW_COLUMN} NOT IN (SELECT source_row FROM {quarantined})"
    return kept


def _record(kinds: dict[str, str]) -> str:
    """The row as read, as JSON text (every value as text, as ``json.dumps`` writes it)."""
    members = []
    for name, kind in kinds.items():
        text = python_text(quoted(name), kind)
        missing = f"{quoted(name)} IS NULL" + (
            f" OR isnan({quoted(name)})" if kind.upper() in FLOAT_TYPES else ""
        )
        value = f"CASE WHEN {missing} THEN 'null' ELSE to_json({text})::VARCHAR END"
        members.append(f"{literal(json.dumps(name, ensure_ascii=False) + ': ')} || {value}")
    return "'{' || " + " || ', ' || ".join(members) + " || '}'"


def _quarantined(
    connection: duckdb.DuckDBPyConnection, base: str, broken: list, kinds: dict[str, str]
) -> pd.DataFrame:
    """One row per failing source row: the columns it failed on, every reason in the
    contract's order, and its content as read."""
    if not broken:
        return pd.DataFrame(columns=QUARANTINE_COLUMNS)
    parts = []
    for position, column, name, message, condition, shown, row_rule in broken:
        reason = (
            literal(f"rule {name}: {message}")
            if row_rule
            else f"{literal(column + ' = ')} || {shown} || {literal(': ' + message)}"
        )
        parts.append(
            f"SELECT {ROW_COLUMN}, {position} AS position, {literal(column)} AS place, "
            f"{reason} AS reason FROM {base} WHERE coalesce({condition}, false)"
        )
    failures = " UNION ALL ".join(parts)
    original = [c for c in kinds]
    listed = ", ".join(quoted(c) for c in original)
    return connection.execute(
        f"SELECT f.{ROW_COLUMN} AS source_row, "
        "array_to_string(list_sort(list_distinct(list(f.place))), ', ') AS columns, "
        "string_agg(f.reason, '; ' ORDER BY f.position) AS reasons, "
        f"any_value(r.record) AS record FROM ({failures}) f "
        f"JOIN (SELECT {ROW_COLUMN}, {_record(kinds)} AS record "
        f"FROM (SELECT {listed} FROM {base})) r "
        f"USING ({ROW_COLUMN}) GROUP BY f.{ROW_COLUMN} ORDER BY f.{ROW_COLUMN}"
    ).df()


def check_frame(table: pd.DataFrame, schema: pa.DataFrameSchema) -> ContractOutcome:
    """``apply_contract`` on a table held as pandas (a test, a notebook), by the same SQL."""
    with duckdb.connect() as connection:
        connection.register("_table", table)
        return apply_contract(connection, "_table", schema)
