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
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine


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
