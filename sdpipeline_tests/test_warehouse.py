"""The warehouse's own mechanics, on real DuckDB files: tables replaced all or nothing, rows
read back with repeated text shared, and DuckDB's memory capped for a run."""

from __future__ import annotations

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
