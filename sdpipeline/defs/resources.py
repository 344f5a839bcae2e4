"""Resources shared by every asset."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import PrivateAttr

from sdpipeline import settings


class Warehouse(DuckDBResource):
    """The DuckDB warehouse, held exclusively for the length of a run.

    DuckDB allows one writing process per file. A run from the UI, the sensor, the schedule or
    the command line first takes an exclusive lock beside the database file, so a second run
    waits its turn (and says so in its log) instead of failing on DuckDB's own lock.

    The run opens the database once and each step works on its own cursor of it: opening the
    file and checkpointing it on close, some fifty times a run, cost more than many steps did.
    Outside a run (tests, the command line's report) each use opens the file as usual.
    """

    lock_timeout_seconds: int = 6 * 3600
    _held: duckdb.DuckDBPyConnection | None = PrivateAttr(default=None)

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._held is None:
            with super().get_connection() as connection:
                yield connection
            return
        cursor = self._held.cursor()
        try:
            yield cursor
        finally:
            cursor.close()  # rolls back what a failed step left uncommitted

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[Warehouse]:
        lock = Path(self.database).with_suffix(".lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        with lock.open("w") as handle:
            started = time.monotonic()
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() - started > self.lock_timeout_seconds:
                        raise
                    if context.log and int(time.monotonic() - started) % 30 == 0:
                        context.log.info(f"waiting for another run to release {self.database}")
                    time.sleep(1)
            try:
                with super().get_connection() as connection:
                    self._held = connection
                    try:
                        yield self
                    finally:
                        self._held = None
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def warehouse_resource() -> Warehouse:
    """The DuckDB warehouse file (``SDPIPELINE_WAREHOUSE``, default ``var/warehouse.duckdb``)."""
    path = settings.warehouse_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return Warehouse(database=str(path))
