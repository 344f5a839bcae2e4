"""Resources shared by every asset."""

from __future__ import annotations

from dagster_duckdb import DuckDBResource

from sdpipeline import settings


def warehouse_resource() -> DuckDBResource:
    """The DuckDB warehouse file (``SDPIPELINE_WAREHOUSE``, default ``var/warehouse.duckdb``)."""
    path = settings.warehouse_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return DuckDBResource(database=str(path))
