"""Resources shared by every asset."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import PrivateAttr

from sdpipeline import settings
from sdpipeline.defs.runs import record_process
from sdpipeline.validation import gx_worker
from sdpipeline.validation.audit import CheckContext
from sdpipeline.validation.expectations import Suite


class Warehouse(DuckDBResource):
    """The DuckDB warehouse, held exclusively for the length of a run.

    DuckDB allows one writing process per file. A run from the UI, the sensor, the schedule or
    the command line first takes an exclusive lock beside the database file, so a second run
    waits its turn (and says so in its log) instead of failing on DuckDB's own lock.

    The run opens the database once and each step works on its own cursor of it: opening the
    file and checkpointing it on close, some fifty times a run, cost more than many steps did.
    Outside a run (tests, the command line's report) each use opens the file as usual.

    Holding the warehouse, the run also records which process it is (``defs/runs.py``), so that
    a run whose process was killed can be told from one still running.
    """

    lock_timeout_seconds: int = 6 * 3600
    # what DuckDB may hold during a step whose work is DuckDB's alone (``get_connection``)
    sql_memory_limit: str | None = None
    _held: duckdb.DuckDBPyConnection | None = PrivateAttr(default=None)

    @contextmanager
    def get_connection(
        self, memory_limit: str | None = None
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """``memory_limit``: what DuckDB may hold while this connection is in use, for a step
        whose work is DuckDB's alone and which holds no large frames of its own (the recodes,
        the row contracts); the run's cap is back once it is done. The cap is the database's,
        not the cursor's: DuckDB has one buffer for all of them."""
        if self._held is None:
            with super().get_connection() as connection:
                if memory_limit:
                    connection.execute(f"SET memory_limit = '{memory_limit}'")
                yield connection
            return
        cursor = self._held.cursor()
        try:
            if memory_limit:
                cursor.execute(f"SET memory_limit = '{memory_limit}'")
            yield cursor
        finally:
            cursor.close()  # rolls back what a failed step left uncommitted
            if memory_limit:
                cap = self.connection_config["memory_limit"]
                self._held.execute(f"SET memory_limit = '{cap}'")

    def let_go_of_cached_blocks(self) -> None:
        """Empty DuckDB's buffer of the blocks it keeps cached up to the run's cap, and give
        back what they held, before a step holds large frames of its own in Python: a file
        being parsed, a harmonised table being analysed. The cap is kept for the whole run
        (its one database), so what an earlier step wrote or read stays in memory beside them
        otherwise: at ×1000, 0.2 GB of the run's process while a workbook was parsed. Blocks
        a query still holds stay where they are. Outside a run each use opens the file afresh,
        with nothing cached."""
        if self._held is None:
            return
        cap = self.connection_config["memory_limit"]
        try:
            self._held.execute("SET memory_limit = '1MB'")
        except duckdb.OutOfMemoryException:
            pass  # some blocks are in use: the rest were let go
        finally:
            self._held.execute(f"SET memory_limit = '{cap}'")

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[Warehouse]:
        if context.run is not None and context.instance is not None:
            record_process(context.instance, context.run)
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


@dg.definitions
def resources() -> dg.Definitions:
    """The run's warehouse and GX worker, and the in-process executor (see ``definitions``)."""
    return dg.Definitions(
        resources={"warehouse": warehouse_resource(), "great_expectations": GreatExpectations()},
        executor=dg.in_process_executor,
    )


def warehouse_resource(path: Path | None = None) -> Warehouse:
    """The DuckDB warehouse file (``SDPIPELINE_WAREHOUSE``, default ``var/warehouse.duckdb``),
    with DuckDB's memory capped (``SDPIPELINE_DUCKDB_MEMORY_LIMIT``, and for the steps that
    work in DuckDB alone ``SDPIPELINE_DUCKDB_SQL_MEMORY_LIMIT``)."""
    path = path or settings.warehouse_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return Warehouse(
        database=str(path),
        connection_config={"memory_limit": settings.duckdb_memory_limit()},
        sql_memory_limit=settings.duckdb_sql_memory_limit(),
    )


class GreatExpectations(dg.ConfigurableResource):
    """Great Expectations, in a process of its own (``validation/gx_worker.py``) that the run
    starts as it begins, so that GX's three-second import overlaps the run's first steps
    instead of delaying the first validated table.

    A run that checked anything publishes its Data Docs pages as it ends, unless the audit step
    did: a run from the UI of one validated table, or a run that failed before the audit step,
    leaves its pages like any other."""

    _worker: gx_worker.GXWorker | None = PrivateAttr(default=None)
    _in_run: bool = PrivateAttr(default=False)
    _checked: bool = PrivateAttr(default=False)
    _published: bool = PrivateAttr(default=False)

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[GreatExpectations]:
        self._worker = gx_worker.worker()
        self._in_run = True
        self._checked = self._published = False
        age = time.monotonic() - self._worker.started
        context.log.info(
            f"Great Expectations worker: pid {self._worker.pid}, started {age:.1f} s ago"
        )
        try:
            yield self
        finally:
            if self._checked and not self._published and context.run is not None:
                try:
                    self._running().publish_data_docs(context.run.run_id)
                except gx_worker.GXWorkerError as error:
                    context.log.error(f"Data Docs were not published: {error}")
            self._worker, self._in_run = None, False

    def _running(self) -> gx_worker.GXWorker:
        if not self._in_run:
            raise RuntimeError("Great Expectations runs inside a Dagster run, which starts it")
        if self._worker is None:  # let go after the Data Docs; something checks after all
            self._worker = gx_worker.worker()
        return self._worker

    def start_suites(
        self, checks: Sequence[tuple[Suite, pd.DataFrame]], checked: CheckContext
    ) -> gx_worker.Pending:
        """The suites sent to the worker together; the step goes on while GX checks the
        frames on the other core, and takes the outcomes with ``result()``."""
        self._checked = True
        return self._running().start_suites(checks, checked)

    def publish_data_docs(self, run_name: str) -> Path:
        """The run's Data Docs, then the worker let go (``gx_worker.release``): the audit step
        publishes them after every table the run checks, before the analyses."""
        self._published = True
        index = self._running().publish_data_docs(run_name)
        self._worker = None
        gx_worker.release()
        return index
