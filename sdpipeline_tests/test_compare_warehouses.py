"""The table-by-table comparison of two warehouses, on real DuckDB files: what it calls
identical, within tolerance, differing, and a schema difference."""

from __future__ import annotations

import subprocess
import sys

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


def test_a_warehouse_that_cannot_be_read_is_named_with_exit_code_2(tmp_path, capsys):
    """Missing, not a database, or held by a run in another process: said on one line naming
    the file, exit 2 (1 is kept for warehouses that differ)."""
    good = tmp_path / "good.duckdb"
    with duckdb.connect(str(good)) as connection:
        connection.execute("CREATE TABLE t AS SELECT 1 AS x")
    text = tmp_path / "export.csv"
    text.write_text("x\n1\n")
    held = tmp_path / "held.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
            "c.execute('CREATE TABLE t AS SELECT 1 AS x'); print('held', flush=True); "
            "sys.stdin.read()",
            str(held),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        cases = {
            tmp_path / "absent.duckdb": "no such file",
            text: "not a DuckDB database file",
            held: "cannot be opened as a DuckDB warehouse",
        }
        for path, message in cases.items():
            assert main([str(path), str(good)]) == 2
            error = capsys.readouterr().err
            assert f"sdpipeline compare: {path}: {message}" in error, error
    finally:
        holder.communicate("")
    assert main([str(held), str(good)]) == 0


def test_a_float_that_became_nan_or_infinite_is_a_difference_at_any_tolerance(tmp_path):
    """NaN passes every ``<=`` in DuckDB, and infinity minus anything is infinite: a finite
    share that became one of them, or an infinity of the other sign, differs however loose
    the tolerance; the same non-finite value on both sides is identical."""
    a, _ = _same(tmp_path)
    for value in ("nan", "inf", "-inf"):
        b = tmp_path / f"b_{value}.duckdb"
        b.write_bytes(a.read_bytes())
        with duckdb.connect(str(b)) as connection:
            connection.execute(f"UPDATE report.t SET share = '{value}'::DOUBLE WHERE id = 1")
        for rtol, atol in ((0.0, 0.0), (1e-9, 1e-12), (1e6, 1e6)):
            table = {r.name: r for r in compare(a, b, rtol=rtol, atol=atol)}["report.t"]
            assert not table.identical, (value, rtol, atol)
            assert table.verdict().startswith("DIFFERING ROWS: 1 of 2"), table.verdict()
        assert main([str(a), str(b), "--rtol", "1e6"]) == 1
        assert all(r.identical for r in compare(b, b))
    assert not {r.name: r for r in compare(tmp_path / "b_inf.duckdb", tmp_path / "b_-inf.duckdb")}[
        "report.t"
    ].identical


def test_a_tolerance_that_is_not_a_finite_number_is_refused(tmp_path, capsys):
    a, b = _same(tmp_path)
    for flag, value in (("--rtol", "nan"), ("--atol", "inf"), ("--rtol", "-1"), ("--atol", "x")):
        try:
            main([str(a), str(b), flag, value])
        except SystemExit as stop:
            assert stop.code == 2
        else:
            raise AssertionError(f"{flag} {value} was taken")
        assert "not a finite number of zero or more" in capsys.readouterr().err


def test_a_table_whose_schema_alone_differs_is_not_called_identical(tmp_path):
    a, b = _same(tmp_path)
    with duckdb.connect(str(b)) as connection:
        connection.execute("ALTER TABLE report.t ALTER share TYPE DECIMAL(9, 2)")
        connection.execute("UPDATE report.t SET share = NULL")
    with duckdb.connect(str(a)) as connection:
        connection.execute("UPDATE report.t SET share = NULL")
    verdict = {r.name: r for r in compare(a, b)}["report.t"].verdict()
    assert verdict.startswith("DIFFERING SCHEMA: column share is DOUBLE in A, DECIMAL(9,2) in B")
    assert "; the same rows (2 rows)" in verdict


def test_a_number_stored_in_another_type_is_a_schema_difference_not_every_row(tmp_path):
    """5 as BIGINT in one file and 5.0 as DOUBLE in the other: the schema differs, the values
    do not (compared as text, every row differed)."""
    a, b = _same(tmp_path)
    with duckdb.connect(str(b)) as connection:
        connection.execute("ALTER TABLE report.t ALTER id TYPE DOUBLE")
    (result,) = [r for r in compare(a, b) if r.name == "report.t"]
    assert not result.identical
    assert result.verdict().startswith("DIFFERING SCHEMA: column id is INTEGER in A, DOUBLE in B")
    assert "the same rows" in result.verdict()


def test_views_are_compared_by_their_rows_and_their_definitions(tmp_path, capsys):
    """Analysts query views too (``audit.latest_check_results``): a view that gives other rows,
    or is defined otherwise, or is missing, is a difference."""
    a, b = _same(tmp_path)
    for path in (a, b):
        with duckdb.connect(str(path)) as connection:
            connection.execute("CREATE VIEW report.v AS SELECT id, label FROM report.t")
            connection.execute("CREATE VIEW report.w AS SELECT id FROM report.t")
    assert main([str(a), str(b)]) == 0
    with duckdb.connect(str(b)) as connection:
        connection.execute(
            "CREATE OR REPLACE VIEW report.v AS SELECT id, label FROM report.t WHERE id = 1"
        )
        connection.execute("CREATE OR REPLACE VIEW report.w AS SELECT id FROM report.t ORDER BY id")
    verdicts = {r.name: r.verdict() for r in compare(a, b)}
    assert "DIFFERING ROWS: 1 of 2 only in A" in verdicts["report.v"]
    assert verdicts["report.w"].startswith("DIFFERING SCHEMA: the view is defined otherwise")
    with duckdb.connect(str(b)) as connection:
        connection.execute("DROP VIEW report.v")
    assert main([str(a), str(b)]) == 1
    assert "report.v" in capsys.readouterr().out
    assert {r.name: r.verdict() for r in compare(a, b)}["report.v"].startswith("only in A")
