"""Compare two warehouses table by table: the proof that a change to how rows are processed
left every table of every layer as it was.

``python -m sdpipeline.compare_warehouses A.duckdb B.duckdb`` (or ``sdpipeline compare``)
prints, for every table and view of either file, whether it is identical, identical within the float
tolerance, or differs (rows found in one file and not the other, counted as a multiset: row
order is not compared, as SQL tables have none), and any difference of schema (columns only in
one file, types, order). Columns that hold the run itself (run id, time of the check) are left
out, and said so. Exit status 0 when every table is identical (within the tolerance), 1
otherwise.

DuckDB does both sides' work: the two files are attached read-only to one in-memory database
and compared with ``EXCEPT ALL``, so a register-sized table never passes through Python.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from sdpipeline.recodes import is_number_type

RTOL = 1e-9
ATOL = 1e-12
FLOAT_TYPES = ("FLOAT", "DOUBLE", "REAL")
# Columns that say when and in which run a row was written, not what it holds.
RUN_COLUMNS = {
    ("audit", "check_runs"): ("run_id", "checked_at"),
    ("audit", "check_results"): ("run_id", "checked_at"),
    ("audit", "latest_check_results"): ("run_id", "checked_at"),
    ("audit", "quarantine"): ("run_id", "quarantined_at"),
}


@dataclass
class TableComparison:
    schema: str
    table: str
    rows_a: int | None = None
    rows_b: int | None = None
    only_in_a: int = 0
    only_in_b: int = 0
    schema_differences: list[str] = field(default_factory=list)
    max_float_difference: float = 0.0
    ignored: tuple[str, ...] = ()
    samples: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def identical(self) -> bool:
        return (
            self.rows_a is not None
            and self.rows_b is not None
            and not self.only_in_a
            and not self.only_in_b
            and not self.schema_differences
        )

    def verdict(self) -> str:
        if self.rows_a is None:
            return f"only in B ({self.rows_b} rows)"
        if self.rows_b is None:
            return f"only in A ({self.rows_a} rows)"
        if self.only_in_a or self.only_in_b:
            text = (
                f"DIFFERING ROWS: {self.only_in_a} of {self.rows_a} only in A, "
                f"{self.only_in_b} of {self.rows_b} only in B"
            )
        elif self.max_float_difference:
            text = (
                f"identical within tolerance ({self.rows_a} rows; largest relative float "
                f"difference {self.max_float_difference:.3g})"
            )
        else:
            text = f"identical ({self.rows_a} rows)"
        if self.schema_differences:
            rows = text.replace("identical", "the same rows", 1)
            text = "DIFFERING SCHEMA: " + "; ".join(self.schema_differences) + f"; {rows}"
        return text


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _tables(connection: duckdb.DuckDBPyConnection, database: str) -> dict[tuple[str, str], str]:
    """Every table and view of ``database``: a table's definition as "table", a view's as its
    SQL (a view is what analysts query too, and may differ where its tables do not)."""
    return {
        (str(schema), str(table)): str(definition)
        for schema, table, definition in connection.execute(
            "SELECT schema_name, table_name, 'table' FROM duckdb_tables() WHERE database_name = ? "
            "UNION ALL SELECT schema_name, view_name, sql FROM duckdb_views() "
            "WHERE database_name = ? AND NOT internal",
            [database, database],
        ).fetchall()
    }


def _columns(
    connection: duckdb.DuckDBPyConnection, database: str, schema: str, table: str
) -> list[tuple[str, str]]:
    return [
        (str(name), str(kind))
        for name, kind in connection.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = ? "
            "AND schema_name = ? AND table_name = ? ORDER BY column_index",
            [database, schema, table],
        ).fetchall()
    ]


def _is_float(kind: str) -> bool:
    return kind.upper() in FLOAT_TYPES


def _count(connection: duckdb.DuckDBPyConnection, sql: str) -> int:
    return int(connection.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0])


def compare_table(
    connection: duckdb.DuckDBPyConnection,
    schema: str,
    table: str,
    rtol: float = RTOL,
    atol: float = ATOL,
    show: int = 0,
) -> TableComparison:
    """One table present in both attached files (``a`` and ``b``)."""
    result = TableComparison(schema, table)
    ignored = RUN_COLUMNS.get((schema, table), ())
    result.ignored = ignored
    columns_a = dict(_columns(connection, "a", schema, table))
    columns_b = dict(_columns(connection, "b", schema, table))
    for name in columns_a.keys() - columns_b.keys():
        result.schema_differences.append(f"column {name} only in A")
    for name in columns_b.keys() - columns_a.keys():
        result.schema_differences.append(f"column {name} only in B")
    common = [c for c in columns_a if c in columns_b and c not in ignored]
    for name in common:
        if columns_a[name] != columns_b[name]:
            result.schema_differences.append(
                f"column {name} is {columns_a[name]} in A, {columns_b[name]} in B"
            )
    shared_order = [c for c in columns_a if c in columns_b]
    if shared_order != [c for c in columns_b if c in columns_a]:
        result.schema_differences.append("columns in another order")
    a = f"a.{_quoted(schema)}.{_quoted(table)}"
    b = f"b.{_quoted(schema)}.{_quoted(table)}"
    result.rows_a = _count(connection, f"SELECT 1 FROM {a}")
    result.rows_b = _count(connection, f"SELECT 1 FROM {b}")

    def select(names: list[str], source: str) -> str:
        # Types that differ are compared as numbers (5 and 5.0 are one value) when both are
        # numbers, as text otherwise, so the rows are still compared.
        listed = [
            _quoted(c)
            if columns_a[c] == columns_b[c]
            else f"CAST({_quoted(c)} AS DOUBLE) AS {_quoted(c)}"
            if is_number_type(columns_a[c]) and is_number_type(columns_b[c])
            else f"CAST({_quoted(c)} AS VARCHAR) AS {_quoted(c)}"
            for c in names
        ]
        return f"SELECT {', '.join(listed) or '1'} FROM {source}"

    def except_both(names: list[str]) -> tuple[int, int]:
        return (
            _count(connection, f"{select(names, a)} EXCEPT ALL {select(names, b)}"),
            _count(connection, f"{select(names, b)} EXCEPT ALL {select(names, a)}"),
        )

    result.only_in_a, result.only_in_b = except_both(common)
    floats = [c for c in common if _is_float(columns_a[c]) and _is_float(columns_b[c])]
    if (result.only_in_a or result.only_in_b) and floats and result.rows_a == result.rows_b:
        exact = [c for c in common if c not in floats]
        if except_both(exact) == (0, 0):
            # The rows agree but for floats: pair them in the order of every column and
            # measure how far each float is from its partner.
            order = ", ".join(_quoted(c) for c in exact + floats)

            def ranked(source: str) -> str:
                return f"SELECT *, row_number() OVER (ORDER BY {order}) AS _pair FROM {source}"

            same_row = " AND ".join(
                f"x.{_quoted(c)} IS NOT DISTINCT FROM y.{_quoted(c)}" for c in exact
            )
            # a tolerance is for two finite numbers: NaN and infinity pass any ``<=`` in
            # DuckDB (NaN is the largest value there), so they agree only with themselves
            close = " AND ".join(
                f"(x.{q} IS NOT DISTINCT FROM y.{q} OR (isfinite(x.{q}) AND isfinite(y.{q}) "
                f"AND abs(x.{q} - y.{q}) <= {atol!r} + {rtol!r} * greatest(abs(x.{q}), "
                f"abs(y.{q}))))"
                for q in map(_quoted, floats)
            )
            largest = ", ".join(
                f"max(abs(x.{q} - y.{q}) / greatest(abs(x.{q}), abs(y.{q}), {atol!r})) "
                f"FILTER (WHERE isfinite(x.{q}) AND isfinite(y.{q}))"
                for q in map(_quoted, floats)
            )
            paired = (
                f"FROM ({ranked(a)}) x JOIN ({ranked(b)}) y USING (_pair) "
                f"WHERE {same_row or 'true'}"
            )
            agreeing = _count(connection, f"SELECT 1 {paired} AND {close}")
            if agreeing == result.rows_a:
                differences = connection.execute(f"SELECT {largest} {paired}").fetchone()
                result.max_float_difference = max(
                    (float(d) for d in differences if d is not None), default=0.0
                )
                result.only_in_a = result.only_in_b = 0
    if show and (result.only_in_a or result.only_in_b):
        for side, first, second in (("A", a, b), ("B", b, a)):
            rows = connection.execute(
                f"{select(common, first)} EXCEPT ALL {select(common, second)} LIMIT {int(show)}"
            ).fetchall()
            result.samples += [
                f"only in {side}: {dict(zip(common, row, strict=True))}" for row in rows
            ]
    return result


DUCKDB_MAGIC = b"DUCK"  # a DuckDB database file's bytes 8–11


class Unreadable(ValueError):
    """A warehouse to compare cannot be opened."""


def compare(
    path_a: Path, path_b: Path, rtol: float = RTOL, atol: float = ATOL, show: int = 0
) -> list[TableComparison]:
    """Every table of either warehouse, compared; ``Unreadable`` names a warehouse that is
    missing, not a DuckDB database, or held by a run."""
    connection = duckdb.connect()
    for alias, path in (("a", path_a), ("b", path_b)):
        if not Path(path).is_file():
            raise Unreadable(f"{path}: no such file")
        with Path(path).open("rb") as handle:
            if handle.read(12)[8:] != DUCKDB_MAGIC:
                raise Unreadable(f"{path}: not a DuckDB database file")
        literal = str(Path(path).resolve()).replace("'", "''")
        try:
            connection.execute(f"ATTACH '{literal}' AS {alias} (READ_ONLY)")
        except duckdb.Error as error:
            first = str(error).splitlines()[0]
            raise Unreadable(f"{path}: cannot be opened as a DuckDB warehouse: {first}") from error
    in_a, in_b = _tables(connection, "a"), _tables(connection, "b")
    results = []
    for schema, table in sorted(in_a.keys() | in_b.keys()):
        if (schema, table) not in in_b:
            rows = _count(connection, f"SELECT 1 FROM a.{_quoted(schema)}.{_quoted(table)}")
            results.append(TableComparison(schema, table, rows_a=rows))
        elif (schema, table) not in in_a:
            rows = _count(connection, f"SELECT 1 FROM b.{_quoted(schema)}.{_quoted(table)}")
            results.append(TableComparison(schema, table, rows_b=rows))
        else:
            result = compare_table(connection, schema, table, rtol, atol, show)
            a, b = in_a[schema, table], in_b[schema, table]
            if a != b:
                result.schema_differences.append(
                    "a view in one file, a table in the other"
                    if "table" in (a, b)
                    else "the view is defined otherwise"
                )
            results.append(result)
    connection.close()
    return results


def report(results: list[TableComparison], rtol: float = RTOL, atol: float = ATOL) -> str:
    width = max((len(r.name) for r in results), default=10)
    lines = [
        f"floats equal when |a − b| ≤ {atol:g} + {rtol:g}·max(|a|, |b|); rows compared as "
        "multisets (order ignored)"
    ]
    for result in results:
        lines.append(f"{result.name:<{width}}  {result.verdict()}")
        if result.ignored:
            lines.append(f"{'':<{width}}  (run columns not compared: {', '.join(result.ignored)})")
        lines += [f"{'':<{width}}    {sample}" for sample in result.samples]
    same = sum(r.identical for r in results)
    lines.append(f"{same} of {len(results)} tables identical")
    return "\n".join(lines)


def _tolerance(text: str) -> float:
    """A tolerance is a finite number, zero or more: NaN would make every float agree."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of zero or more")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments (``python -m sdpipeline.compare_warehouses``, ``sdpipeline
    compare``)."""
    parser.add_argument("a", type=Path, help="the first warehouse (DuckDB file)")
    parser.add_argument("b", type=Path, help="the second warehouse (DuckDB file)")
    parser.add_argument(
        "--rtol", type=_tolerance, default=RTOL, help=f"relative tolerance ({RTOL:g})"
    )
    parser.add_argument(
        "--atol", type=_tolerance, default=ATOL, help=f"absolute tolerance ({ATOL:g})"
    )
    parser.add_argument("--show", type=int, default=0, help="print up to N differing rows a side")


def run(args: argparse.Namespace) -> int:
    """0: every table identical; 1: a difference; 2: a warehouse could not be read."""
    try:
        results = compare(args.a, args.b, args.rtol, args.atol, args.show)
    except Unreadable as error:
        print(f"sdpipeline compare: {error}", file=sys.stderr)
        return 2
    print(report(results, args.rtol, args.atol))
    return 0 if all(r.identical for r in results) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sdpipeline compare", description="compare two warehouses table by table"
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
