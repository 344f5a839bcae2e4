"""Dagster's run history (SQLite files under ``DAGSTER_HOME``) written without a disk flush per
event while a command runs.

Gap filled: Dagster's SQLite storage opens a new connection for every event it stores and
closes it after one insert. Closing the last connection to a WAL database checkpoints it into
the database file, deletes the log and flushes file and folder to disk, so a sample run paid
about 2,800 disk flushes (4.5 s of waiting, measured with strace). While a command runs, one
more connection to each of the instance's databases is held open, so Dagster's own closes are
not the last, and its connections commit with SQLite's ``synchronous=NORMAL``: in WAL mode a
commit is in the log before the next statement, and a killed process loses nothing; only a
power loss or an operating-system crash can take the last commits back (never corrupt the
database). The same sample run now flushes about 250 times. Other processes (the UI, the
daemon) read and write the same files meanwhile as they would otherwise: WAL lets them.
When the block ends the held connections are closed, and the last close checkpoints every
database and flushes it to disk before the command returns, as before.

Gap filled by ``PooledSqliteEventLogStorage``: the same storage builds a new SQLAlchemy engine
for every connection, and an engine's first connection runs the dialect's setup queries: 1,379
engines in one run of the pipeline's graph, 2.5–2.8 s of storing its 430 events where an
engine kept per database, with its connection pooled, takes 0.8–1.1 s. The databases, their
tables and what is written are Dagster's own; only how the connections are opened differs.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine

ENGINES_KEPT = 16  # databases whose engine a process keeps: the run's own, the index, a few more


def _database_file(connection: sqlite3.Connection) -> str:
    for _, name, path in connection.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return str(path)
    return ""


@contextmanager
def held_open(home: Path) -> Iterator[None]:
    """For the length of the block, Dagster's SQLite databases under ``home`` stay open and
    commit without a flush each; closed, checkpointed and flushed when the block ends."""
    root = os.path.realpath(home) + os.sep
    held: dict[str, sqlite3.Connection] = {}
    lock = threading.Lock()

    def on_connect(connection: object, _record: object) -> None:
        if not isinstance(connection, sqlite3.Connection):
            return
        path = os.path.realpath(_database_file(connection))
        if not path.startswith(root):
            return
        connection.execute("PRAGMA synchronous=NORMAL")
        with lock:
            if path in held:
                return
            keeper = sqlite3.connect(path, check_same_thread=False)
            # reading the journal mode opens the log: a connection that has not read does not
            # count as open, and SQLite would still take Dagster's next close for the last one
            if keeper.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                held[path] = keeper
            else:
                # a database Dagster is still creating: it can switch to WAL only with no
                # other connection open, so it is held from a later connection on
                keeper.close()

    event.listen(Engine, "connect", on_connect)
    try:
        yield
    finally:
        event.remove(Engine, "connect", on_connect)
        for connection in held.values():
            connection.close()


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log, in the instance's own folder as by default
    (``history/runs``: a database per run and a cross-run index), each database reached through
    one engine kept for the process with its connection pooled, the most recently used
    ``ENGINES_KEPT`` of them; all closed when the instance is disposed. It takes no
    configuration: the folder is the instance's, learnt when the instance registers it, so an
    instance opened from any folder, or moved, writes where it is."""

    def __init__(self, inst_data: ConfigurableClassData | None = None) -> None:
        self._inst_data = inst_data
        self._engines: OrderedDict[str, Engine] = OrderedDict()

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config_value(  # ty: ignore[invalid-method-override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data)

    def register_instance(self, instance: Any) -> None:
        # Dagster's own set-up, in the folder it would use (it resets the instance link: first)
        super().__init__(os.path.join(instance.root_directory, "history", "runs"), self._inst_data)
        super().register_instance(instance)

    def _engine(self, shard: str) -> Engine:
        """The shard's engine, made (and its database created) on first use; the least
        recently used beyond ``ENGINES_KEPT`` closed."""
        engine = self._engines.pop(shard, None)
        if engine is None:
            # a second connection for the moments Dagster's schema setup opens one inside another
            engine = create_engine(
                self.conn_string_for_shard(shard),
                pool_size=1,
                max_overflow=2,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            )
        self._engines[shard] = engine
        while len(self._engines) > ENGINES_KEPT:
            self._engines.popitem(last=False)[1].dispose()
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock, self._engine(shard).connect() as connection, connection.begin():
            yield connection

    def dispose(self) -> None:
        super().dispose()
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()
