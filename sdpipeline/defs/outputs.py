"""What Dagster cannot see: whether what an asset's last materialisation wrote outside its
event log is still there. Dagster's staleness compares versions, so a warehouse file deleted,
or a published report removed, left every asset "current" and `refresh` said "nothing
changed". This fills that gap for ``status`` and ``refresh``: each table asset's table in the
warehouse, and the report's publication (``report_export.publication_problem``)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb

from sdpipeline import report_export, settings
from sdpipeline.defs import keys

EXPORTS = keys.report("exports")


def warehouse_problem(path: Path) -> str | None:
    """Why the warehouse cannot be opened, if it exists and cannot: a damaged file. A lock
    held by a run writing it is not a problem (that run is listed as going)."""
    if not path.exists():
        return None
    try:
        duckdb.connect(str(path), read_only=True).close()
    except duckdb.Error as error:
        if "lock" in str(error).lower():
            return None
        first = str(error).splitlines()[0]
        return (
            f"the warehouse {path} cannot be read ({first}): restore it from a backup, or move "
            "it aside and run `sdpipeline refresh` to build it again from the delivery"
        )
    return None


def _tables(path: Path) -> set[str] | None:
    """Every table and view in the warehouse as ``schema/table``; None where it cannot be
    read now (held by a run writing it, or damaged: said by ``warehouse_problem``)."""
    if not path.exists():
        return set()
    try:
        with duckdb.connect(str(path), read_only=True) as connection:
            found = connection.execute(
                "SELECT schema_name, table_name FROM duckdb_tables() UNION ALL "
                "SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal"
            ).fetchall()
    except duckdb.Error:
        return None
    return {f"{schema}/{table}" for schema, table in found}


def absent_outputs(graph, built: dict[dg.AssetKey, str]) -> dict[dg.AssetKey, str]:
    """For each asset built before (``built``: key → the run that last built it), why what it
    wrote is not there: its table missing from the warehouse, or the report's publication
    missing, incomplete or of another run."""
    path = settings.warehouse_path()
    tables = _tables(path)
    absent = {}
    for key, run_id in built.items():
        if key == EXPORTS:
            problem = report_export.publication_problem(settings.reports_dir() / "tables", run_id)
            if problem:
                absent[key] = problem
        elif tables is not None and key.to_user_string() not in tables:
            where = key.to_user_string().replace("/", ".")
            absent[key] = f"its table {where} is not in the warehouse {path}"
    return absent
