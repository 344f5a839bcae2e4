"""The table-by-table comparison of two warehouses, on real DuckDB files: what it calls
identical, within tolerance, differing, and a schema difference."""

from __future__ import annotations

import duckdb

from sdpipeline.compare_warehouses import compare, main, report


def _warehouse(path, statements):
    with duckdb.connect(str(path)) as connection:
        for statement in statements:
            connection.execute(statement)
    return path


def _same(tmp_path):
    common = [
        "CREATE SCHEMA report",
        "CREATE SCHEMA audit",
        "CREATE TABLE audit.check_runs "
        "(run_id VARCHAR, checked_at TIMESTAMPTZ, check_name VARCHAR)",
    ]
    a = _warehouse(
        tmp_path / "a.duckdb",
        [
            *common,
            "CREATE TABLE report.t AS SELECT * FROM "
            "(VALUES (1, 'x', 0.1::DOUBLE + 0.2::DOUBLE), (2, 'y', NULL))"
            " v(id, label, share)",
            "INSERT INTO audit.check_runs VALUES ('run-a', now(), 'unique(id)')",
        ],
    )
    b = _warehouse(
        tmp_path / "b.duckdb",
        [
            *common,
            # another order, and a float off in its last bits
            "CREATE TABLE report.t AS SELECT * FROM (VALUES (2, 'y', NULL), (1, 'x', 0.3::DOUBLE))"
            " v(id, label, share)",
            "INSERT INTO audit.check_runs VALUES ('run-b', now(), 'unique(id)')",
        ],
    )
    return a, b


def test_row_order_run_columns_and_float_noise_are_not_differences(tmp_path):
    a, b = _same(tmp_path)
    results = {r.name: r for r in compare(a, b)}
    assert all(r.identical for r in results.values())
    assert 0 < results["report.t"].max_float_difference < 1e-15
    assert results["audit.check_runs"].ignored == ("run_id", "checked_at")
    assert "within tolerance" in results["report.t"].verdict()
    assert main([str(a), str(b)]) == 0


def test_changed_rows_missing_tables_and_schemas_are_reported(tmp_path, capsys):
    a, b = _same(tmp_path)
    with duckdb.connect(str(b)) as connection:
        connection.execute("UPDATE report.t SET label = 'z' WHERE id = 1")
        connection.execute("CREATE TABLE report.extra AS SELECT 1 AS n")
        connection.execute("ALTER TABLE audit.check_runs ADD COLUMN severity VARCHAR")
    with duckdb.connect(str(a)) as connection:
        connection.execute("CREATE TABLE report.old AS SELECT 1.5::DOUBLE AS share")
    results = {r.name: r for r in compare(a, b, show=1)}
    assert (results["report.t"].only_in_a, results["report.t"].only_in_b) == (1, 1)
    assert results["report.extra"].verdict().startswith("only in B")
    assert results["report.old"].verdict().startswith("only in A")
    assert results["audit.check_runs"].schema_differences == ["column severity only in B"]
    assert not results["audit.check_runs"].identical
    text = report(list(results.values()))
    assert "DIFFERING ROWS: 1 of 2 only in A, 1 of 2 only in B" in text
    assert "only in A: {'id': 1, 'label': 'x'" in text
    assert main([str(a), str(b)]) == 1
    assert "0 of 4 tables identical" in capsys.readouterr().out


def test_a_float_beyond_the_tolerance_is_a_difference(tmp_path):
    a, b = _same(tmp_path)
    with duckdb.connect(str(b)) as connection:
        connection.execute("UPDATE report.t SET share = 0.30001 WHERE id = 1")
    results = {r.name: r for r in compare(a, b)}
    assert not results["report.t"].identical
    assert (results["report.t"].only_in_a, results["report.t"].only_in_b) == (1, 1)
    loose = {r.name: r for r in compare(a, b, rtol=1e-3)}
    assert loose["report.t"].identical
