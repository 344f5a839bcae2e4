"""The warehouse's own mechanics, on real DuckDB files: tables replaced all or nothing, rows
read back with repeated text shared, and DuckDB's memory capped for a run."""

from __future__ import annotations

import dagster as dg
import duckdb
import pandas as pd
import pytest

from sdpipeline.defs.resources import warehouse_resource
from sdpipeline.warehouse import read_frame, replace_table, replace_table_as


def test_a_table_replaced_by_a_failing_query_stays_as_it_was(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as connection:
        replace_table(connection, "raw", "answers", pd.DataFrame({"code": [1, 2, 3]}))
        replace_table_as(connection, "validated", "answers", "SELECT * FROM raw.answers")
        with pytest.raises(duckdb.Error):
            replace_table_as(
                connection, "validated", "answers", "SELECT code / 0 AS code, error('bad row')"
            )
        kept = connection.execute("SELECT code FROM validated.answers ORDER BY code").fetchall()
    assert kept == [(1,), (2,), (3,)]


def test_read_frame_gives_every_value_with_text_in_arrow_buffers(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as connection:
        connection.execute(
            "CREATE TABLE t AS SELECT i, 'file_' || (i % 3) AS file, "
            "CASE WHEN i % 5 = 0 THEN NULL ELSE 'LV-' || (i % 7) || ''' \"x' END AS code, "
            "'id-' || i AS id, i / 7 AS share FROM range(1000) r(i)"
        )
        plain = connection.execute("SELECT * FROM main.t").fetchall()
        whole = read_frame(connection, "main", "t")
        some = read_frame(connection, "main", "t", ["code", "i"])
    rows = [tuple(None if pd.isna(v) else v for v in row) for row in whole.itertuples(index=False)]
    assert rows == [tuple(row) for row in plain]
    assert list(some.columns) == ["code", "i"] and some["code"].equals(whole["code"])
    assert "pyarrow" in str(whole["file"].dtype.storage)  # no Python object per cell


def test_the_run_warehouse_caps_duckdb_memory(tmp_path, monkeypatch):
    monkeypatch.setenv("SDPIPELINE_DUCKDB_MEMORY_LIMIT", "300MB")
    with warehouse_resource(tmp_path / "w.duckdb").get_connection() as connection:
        limit = connection.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    assert limit == "286.1 MiB"  # DuckDB reports 300 MB in MiB


def test_a_step_of_duckdb_work_alone_raises_the_cap_for_its_own_length(tmp_path, monkeypatch):
    """The recodes and row contracts may use more of DuckDB's buffer than the run's cap; the
    steps after them, which hold frames of their own, have the cap back, after a step that
    failed as after one that did not."""
    monkeypatch.setenv("SDPIPELINE_DUCKDB_MEMORY_LIMIT", "300MB")
    resource = warehouse_resource(tmp_path / "w.duckdb")

    def limit(connection: duckdb.DuckDBPyConnection) -> str:
        return connection.execute("SELECT current_setting('memory_limit')").fetchone()[0]

    with resource.yield_for_execution(dg.build_init_resource_context()) as held:
        with held.get_connection("1GB") as connection:
            assert limit(connection) == "953.6 MiB"
        with held.get_connection() as connection:
            assert limit(connection) == "286.1 MiB"
        with pytest.raises(duckdb.Error), held.get_connection("1GB") as connection:
            connection.execute("BEGIN")
            connection.execute("SELECT error('a step fails mid-transaction')")
        with held.get_connection() as connection:
            assert limit(connection) == "286.1 MiB"
    with resource.get_connection("1GB") as connection:  # outside a run: this use alone
        assert limit(connection) == "953.6 MiB"
    with resource.get_connection() as connection:
        assert limit(connection) == "286.1 MiB"


def test_duckdb_lets_go_of_its_cached_blocks_before_a_step_holds_frames_of_its_own(
    tmp_path, monkeypatch
):
    """What earlier steps wrote and read stays cached in DuckDB's buffer for the whole run, up
    to the run's cap; a step about to hold large frames in Python empties it, and the cap is
    as it was."""
    monkeypatch.setenv("SDPIPELINE_DUCKDB_MEMORY_LIMIT", "300MB")
    resource = warehouse_resource(tmp_path / "w.duckdb")

    def cached_mb(connection: duckdb.DuckDBPyConnection) -> float:
        return connection.execute(
            "SELECT sum(memory_usage_bytes) / 2 ** 20 FROM duckdb_memory()"
        ).fetchone()[0]

    with resource.yield_for_execution(dg.build_init_resource_context()) as held:
        with held.get_connection() as connection:
            connection.execute(
                "CREATE TABLE t AS SELECT i, md5(i::VARCHAR) AS text FROM range(2000000) r(i)"
            )
            connection.execute("CHECKPOINT")
            connection.execute("SELECT count(DISTINCT text) FROM t").fetchall()
            before = cached_mb(connection)
        held.let_go_of_cached_blocks()
        with held.get_connection() as connection:
            after = cached_mb(connection)
            limit = connection.execute("SELECT current_setting('memory_limit')").fetchone()[0]
            assert connection.execute("SELECT count(*) FROM t").fetchone()[0] == 2_000_000
    assert before > 20 and after < 2, (before, after)
    assert limit == "286.1 MiB"
    resource.let_go_of_cached_blocks()  # outside a run there is nothing held to empty
