"""The audit trail: every check run and every row set aside, in append-only DuckDB tables.

Rows are only ever inserted; no statement in the project updates or deletes them, so a later
run can never rewrite what an earlier one found; a newer version only adds columns. Every row
stands on its own: the files it judged by name and SHA-256, its outcome (passed, tolerated,
failed) and its severity. An auditor answers "which checks did the 2023 specialists file with
checksum X pass on date Y" from ``audit.check_results``, a view of ``audit.check_runs`` that
reads rows recorded before those columns existed in the same terms.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import duckdb
import pandas as pd

SCHEMA = "audit"
CHECK_RUNS = "check_runs"
CHECK_RESULTS = "check_results"  # the view that reads every row of check_runs in today's terms
QUARANTINE = "quarantine"
# How a check came out: nothing failing; failures within the tolerance the check itself
# allows (a Great Expectations `mostly`); or failed, with the severity saying what followed.
PASSED, TOLERATED, FAILED = "passed", "tolerated", "failed"
# A separator for several waves or files in one text column.
JOIN = "; "
_OUTCOME = (
    f"CASE WHEN NOT passed THEN '{FAILED}' "
    f"WHEN coalesce(failing_count, 0) > 0 THEN '{TOLERATED}' ELSE '{PASSED}' END"
)

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
ALTER TABLE {SCHEMA}.{CHECK_RUNS} ADD COLUMN IF NOT EXISTS outcome VARCHAR;
ALTER TABLE {SCHEMA}.{CHECK_RUNS} ADD COLUMN IF NOT EXISTS file_names VARCHAR[];
ALTER TABLE {SCHEMA}.{CHECK_RUNS} ADD COLUMN IF NOT EXISTS file_sha256s VARCHAR[];
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
CREATE OR REPLACE VIEW {SCHEMA}.{CHECK_RESULTS} AS
SELECT * REPLACE (
    coalesce(outcome, {_OUTCOME}) AS outcome,
    coalesce(file_names, CASE WHEN file_name IS NOT NULL THEN [file_name] END) AS file_names,
    coalesce(file_sha256s, CASE WHEN file_sha256 IS NOT NULL THEN [file_sha256] END)
        AS file_sha256s
)
FROM {SCHEMA}.{CHECK_RUNS};
CREATE OR REPLACE VIEW {SCHEMA}.latest_check_results AS
SELECT * FROM {SCHEMA}.{CHECK_RESULTS}
QUALIFY checked_at = max(checked_at) OVER (PARTITION BY asset, tool);
"""


@dataclass(frozen=True)
class CheckContext:
    """Who ran the checks, on what: the columns every audit row shares. ``files`` maps each
    delivered file the checked table descends from to its SHA-256: one file for a wave's
    table, every wave's file for a harmonised one; ``waves`` are the waves those files are."""

    run_id: str
    asset: str
    instrument: str | None
    waves: tuple[str, ...]
    files: Mapping[str, str]
    checked_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def wave(self) -> str | None:
        return JOIN.join(self.waves) or None

    @property
    def file_name(self) -> str | None:
        return JOIN.join(self.files) or None

    @property
    def file_sha256(self) -> str | None:
        return JOIN.join(self.files.values()) or None


# The mark of a database whose audit tables this version made or brought up to date: the
# definitions' digest, as the comment of both views they create.
_VERSION = hashlib.sha256(_DDL.encode()).hexdigest()[:16]
_VIEWS = (CHECK_RESULTS, "latest_check_results")
_UP_TO_DATE = f"""
SELECT (SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database()
        AND schema_name = '{SCHEMA}' AND table_name IN ('{CHECK_RUNS}', '{QUARANTINE}')) = 2
   AND (SELECT count(*) FROM duckdb_views() WHERE database_name = current_database()
        AND schema_name = '{SCHEMA}' AND view_name IN {_VIEWS} AND comment = '{_VERSION}') = 2
"""
_MARK = "".join(f"COMMENT ON VIEW {SCHEMA}.{view} IS '{_VERSION}';" for view in _VIEWS)


def ensure_tables(connection: duckdb.DuckDBPyConnection) -> None:
    """Create the audit tables, or bring those of an earlier version up to date: columns are
    only ever added, so the rows already recorded stay exactly as they were written. Tables
    already up to date are only looked at (1 ms): the definitions rewrite both views, 4 ms,
    and a run records checks some fifty times."""
    if connection.execute(_UP_TO_DATE).fetchall() == [(True,)]:
        return
    connection.execute(_DDL + _MARK)


def _insert(
    connection: duckdb.DuckDBPyConnection,
    table: str,
    frame: pd.DataFrame,
    computed: Mapping[str, str] | None = None,
) -> None:
    """Append ``frame``, with ``computed`` columns (name → SQL over the frame's columns)."""
    if frame.empty:
        return
    computed = computed or {}
    connection.register("_audit_rows", frame)
    try:
        columns = ", ".join([*frame.columns, *computed])
        values = ", ".join([*frame.columns, *computed.values()])
        connection.execute(
            f"INSERT INTO {SCHEMA}.{table} ({columns}) SELECT {values} FROM _audit_rows"
        )
    finally:
        connection.unregister("_audit_rows")


def record_checks(
    connection: duckdb.DuckDBPyConnection,
    context: CheckContext,
    tool: str,
    results: list[dict],
) -> int:
    """Append one row per check result: {check_name, passed, severity, and optionally
    failing_count, rows_checked, details}. ``severity`` is what a failure of the check means
    (ERROR: the table is not built; WARN: it is, with what failed set aside or noted), given
    whether or not it failed; the outcome follows from passed and failing_count."""
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
                "file_names": list(context.files),
                "file_sha256s": list(context.files.values()),
                "check_name": result["check_name"],
                "tool": tool,
                "passed": bool(result["passed"]),
                "failing_count": result.get("failing_count"),
                "rows_checked": result.get("rows_checked"),
                "severity": result["severity"],
                "details": json.dumps(result.get("details", {}), ensure_ascii=False, default=str),
            }
            for result in results
        ]
    )
    _insert(connection, CHECK_RUNS, frame, {"outcome": _OUTCOME})
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
