"""The audit trail: every check run and every row set aside, in append-only DuckDB tables.

Rows are only ever inserted; no statement in the project updates or deletes them, so a later
run can never rewrite what an earlier one found. An auditor answers "which checks did the 2023
specialists file with checksum X pass on date Y" from ``audit.check_runs`` alone.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import duckdb
import pandas as pd

SCHEMA = "audit"
CHECK_RUNS = "check_runs"
QUARANTINE = "quarantine"

_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.{CHECK_RUNS} (
    run_id VARCHAR NOT NULL,
    checked_at TIMESTAMPTZ NOT NULL,
    asset VARCHAR NOT NULL,
    instrument VARCHAR,
    wave VARCHAR,
    file_name VARCHAR,
    file_sha256 VARCHAR,
    check_name VARCHAR NOT NULL,
    tool VARCHAR NOT NULL,
    passed BOOLEAN NOT NULL,
    failing_count BIGINT,
    rows_checked BIGINT,
    severity VARCHAR,
    details VARCHAR
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.{QUARANTINE} (
    run_id VARCHAR NOT NULL,
    quarantined_at TIMESTAMPTZ NOT NULL,
    asset VARCHAR NOT NULL,
    instrument VARCHAR,
    wave VARCHAR,
    file_name VARCHAR,
    file_sha256 VARCHAR,
    source_row BIGINT,
    columns VARCHAR,
    reasons VARCHAR,
    file_rejected BOOLEAN NOT NULL,
    record VARCHAR
);
CREATE OR REPLACE VIEW {SCHEMA}.latest_check_results AS
SELECT * FROM {SCHEMA}.{CHECK_RUNS}
QUALIFY checked_at = max(checked_at) OVER (PARTITION BY asset, tool);
"""


@dataclass(frozen=True)
class CheckContext:
    """Who ran the checks, on what: the columns every audit row shares."""

    run_id: str
    asset: str
    instrument: str | None
    wave: str | None
    file_name: str | None
    file_sha256: str | None
    checked_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


def ensure_tables(connection: duckdb.DuckDBPyConnection) -> None:
    connection.execute(_DDL)


def _insert(connection: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    if frame.empty:
        return
    connection.register("_audit_rows", frame)
    try:
        columns = ", ".join(frame.columns)
        connection.execute(
            f"INSERT INTO {SCHEMA}.{table} ({columns}) SELECT {columns} FROM _audit_rows"
        )
    finally:
        connection.unregister("_audit_rows")


def record_checks(
    connection: duckdb.DuckDBPyConnection,
    context: CheckContext,
    tool: str,
    results: list[dict],
) -> int:
    """Append one row per check result: {check_name, passed, failing_count, rows_checked,
    severity, details}."""
    ensure_tables(connection)
    frame = pd.DataFrame(
        [
            {
                "run_id": context.run_id,
                "checked_at": context.checked_at,
                "asset": context.asset,
                "instrument": context.instrument,
                "wave": context.wave,
                "file_name": context.file_name,
                "file_sha256": context.file_sha256,
                "check_name": result["check_name"],
                "tool": tool,
                "passed": bool(result["passed"]),
                "failing_count": result.get("failing_count"),
                "rows_checked": result.get("rows_checked"),
                "severity": result.get("severity") or None,
                "details": json.dumps(result.get("details", {}), ensure_ascii=False, default=str),
            }
            for result in results
        ]
    )
    _insert(connection, CHECK_RUNS, frame)
    return len(frame)


def record_quarantine(
    connection: duckdb.DuckDBPyConnection,
    context: CheckContext,
    quarantined: pd.DataFrame,
    file_rejected: bool,
) -> int:
    """Append the rows a contract set aside, with their reasons and their content as read."""
    ensure_tables(connection)
    frame = quarantined.assign(
        run_id=context.run_id,
        quarantined_at=context.checked_at,
        asset=context.asset,
        instrument=context.instrument,
        wave=context.wave,
        file_name=context.file_name,
        file_sha256=context.file_sha256,
        file_rejected=file_rejected,
    )
    _insert(connection, QUARANTINE, frame)
    return len(frame)
