"""The warehouse's own mechanics, on real DuckDB files: tables replaced all or nothing, rows
read back with repeated text shared, and DuckDB's memory capped for a run."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from sdpipeline import warehouse
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


def test_read_frame_shares_repeated_text_and_keeps_every_value(tmp_path, monkeypatch):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as connection:
        connection.execute(
            "CREATE TABLE t AS SELECT i, 'file_' || (i % 3) AS file, "
            "CASE WHEN i % 5 = 0 THEN NULL ELSE 'LV-' || (i % 7) || ''' \"x' END AS code, "
            "'id-' || i AS id FROM range(1000) r(i)"
        )
        plain = connection.execute("SELECT * FROM main.t").df()
        shared = read_frame(connection, "main", "t")
        some = read_frame(connection, "main", "t", ["code", "i"])
        monkeypatch.setattr(warehouse, "ENUM_LIMIT", 2)  # 'file' is then shared after reading
        above_limit = read_frame(connection, "main", "t")
    for frame in (shared, above_limit):
        pd.testing.assert_frame_equal(frame, plain)
        files = frame["file"].to_numpy()
        assert len({id(value) for value in files}) == 3  # one string object per distinct value
        assert len({id(value) for value in frame["id"].to_numpy()}) == 1000  # ids untouched
    pd.testing.assert_frame_equal(some, plain[["code", "i"]])


def test_the_run_warehouse_caps_duckdb_memory(tmp_path, monkeypatch):
    monkeypatch.setenv("SDPIPELINE_DUCKDB_MEMORY_LIMIT", "300MB")
    with warehouse_resource(tmp_path / "w.duckdb").get_connection() as connection:
        limit = connection.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    assert limit == "286.1 MiB"  # DuckDB reports 300 MB in MiB
