"""The validation contracts are derived from the codebook and do what they say; the audit trail
answers an auditor's question and is never rewritten; Data Docs work offline."""

from __future__ import annotations

import datetime as dt
import gc
import re
import shutil
import weakref
from pathlib import Path

import duckdb
import great_expectations
import pandas as pd
import pytest

from sdpipeline.ingest import FileFacts, load_raw, sha256_of
from sdpipeline.validation import audit, data_docs, gx_runner
from sdpipeline.validation.contracts import row_contract
from sdpipeline.validation.expectations import (
    Expectation,
    Suite,
    distribution_profile,
    distribution_suite,
    table_suite,
)
from sdpipeline.validation.quarantine import check_frame

from .conftest import SHIPPED_FILES, SHIPPED_RAW, isolate, materialize
from .test_bad_input import lay_over


def checked(
    run: str, asset: str = "probe_validated", facts: FileFacts | None = None
) -> audit.CheckContext:
    """What a probe's checks judge: one delivered file, by name and checksum."""
    files = {facts.path.name: facts.sha256} if facts else {"probe.sav": "ab" * 32}
    return audit.CheckContext(run, asset, "clients", ("ex_ante_2017",), files)


@pytest.mark.parametrize(("instrument", "wave"), SHIPPED_FILES)
def test_schema_covers_every_variable_and_the_sample_keeps_it(codebook, instrument, wave):
    spec = codebook.instruments[instrument]
    schema = row_contract(spec, wave, codebook)
    assert set(schema.columns) == {v.sources[wave].variable for v in spec.variables_in(wave)}
    identifier = spec.id_variable.sources[wave].variable
    assert schema.columns[identifier].unique
    load = load_raw(spec, wave, codebook, SHIPPED_RAW / wave / spec.files[wave].name)
    outcome = check_frame(load.table, schema)
    assert outcome.quarantined.empty, outcome.summary()
    assert not outcome.file_errors
    assert (outcome.checks["failing_rows"] == 0).all()


def test_cross_field_rules_come_from_the_codebook(codebook):
    specialists = row_contract(codebook.instruments["specialists"], "ex_post_2023", codebook)
    heads = row_contract(codebook.instruments["heads"], "ex_ante_2017", codebook)
    residents = row_contract(codebook.instruments["residents"], "ex_ante_2017", codebook)
    assert {c.name for c in specialists.checks} == {
        "time_use_sums_to_100",
        "region_matches_municipality",
    }
    assert "specialists_within_staff" in {c.name for c in heads.checks}
    assert "stratum_is_region" in {c.name for c in residents.checks}


def _specialists(codebook):
    spec = codebook.instruments["specialists"]
    load = load_raw(
        spec, "ex_post_2023", codebook, SHIPPED_RAW / "ex_post_2023" / "specialisti_2023.sav"
    )
    return spec, load.table.copy()


def test_rules_skip_missing_codes_and_catch_real_breaks(codebook):
    spec, table = _specialists(codebook)
    table.loc[0, "TIME_DIRECT"] = 999  # no answer: the sum rule cannot be judged, not broken
    table.loc[1, "TIME_DIRECT"] = table.loc[1, "TIME_DIRECT"] + 20  # breaks the sum
    table.loc[2, "region"] = 6 if table.loc[2, "region"] != 6 else 5  # wrong region
    outcome = check_frame(table, row_contract(spec, "ex_post_2023", codebook))
    assert outcome.quarantined["source_row"].tolist() == [2, 3]
    reasons = " ".join(outcome.quarantined["reasons"])
    assert "time_use_sums_to_100" in reasons and "region_matches_municipality" in reasons


def test_every_check_is_reported_even_when_it_passes(codebook):
    spec, table = _specialists(codebook)
    table.loc[4, "JOB_SAT"] = 7
    outcome = check_frame(table, row_contract(spec, "ex_post_2023", codebook))
    failing = outcome.checks[outcome.checks["failing_rows"] > 0]
    assert failing[["column", "check", "failing_rows"]].values.tolist() == [
        ["JOB_SAT", "valid_code", 1]
    ]
    assert failing["sample_rows"].iloc[0] == [5]
    assert len(outcome.checks) > 60


def test_audit_trail_is_append_only(tmp_path):
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    context = audit.CheckContext(
        "run-1", "a_validated", "specialists", ("ex_post_2023",), {"f.sav": "abc"}
    )
    check = {"check_name": "x", "passed": True, "severity": "WARN"}
    audit.record_checks(connection, context, "pandera", [check])
    first = connection.execute("SELECT * FROM audit.check_runs").df()
    later = audit.CheckContext(
        "run-2", "a_validated", "specialists", ("ex_post_2023",), {"f.sav": "def"}
    )
    audit.record_checks(connection, later, "pandera", [{**check, "passed": False}])
    both = connection.execute("SELECT * FROM audit.check_runs ORDER BY checked_at").df()
    assert len(both) == 2
    pd.testing.assert_frame_equal(both.iloc[:1], first)


def test_every_audit_row_names_its_files_severity_and_outcome(tmp_path):
    """A row read on its own says what was judged and how it came out: a check over several
    files names them all, a passing check keeps its severity, and a failure the check
    tolerates (GX's ``mostly``) reads as tolerated, not as passed."""
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    files = {"iedzivotaji_2017.sav": "1" * 64, "iedzivotaji_2023.csv": "2" * 64}
    context = audit.CheckContext(
        "run-1", "residents_harmonised", "residents", ("ex_ante_2017", "ex_post_2023"), files
    )
    audit.record_checks(
        connection,
        context,
        "great_expectations",
        [
            {"check_name": "clean", "passed": True, "failing_count": 0, "severity": "ERROR"},
            {"check_name": "mostly", "passed": True, "failing_count": 10, "severity": "WARN"},
            {"check_name": "broken", "passed": False, "failing_count": 3, "severity": "WARN"},
            {"check_name": "no_count", "passed": False, "severity": "ERROR"},
        ],
    )
    rows = connection.execute(
        "SELECT check_name, outcome, severity, wave, file_name, file_sha256, file_names, "
        "file_sha256s FROM audit.check_runs ORDER BY check_name"
    ).fetchall()
    names, shas = list(files), list(files.values())
    common = ("ex_ante_2017; ex_post_2023", "; ".join(names), "; ".join(shas), names, shas)
    assert rows == [
        ("broken", "failed", "WARN", *common),
        ("clean", "passed", "ERROR", *common),
        ("mostly", "tolerated", "WARN", *common),
        ("no_count", "failed", "ERROR", *common),
    ]
    with pytest.raises(KeyError, match="severity"):
        audit.record_checks(connection, context, "pandera", [{"check_name": "x", "passed": True}])


# audit.check_runs as the first version created it, before rows named their outcome and files
_FIRST_VERSION = """
CREATE SCHEMA audit;
CREATE TABLE audit.check_runs (
    run_id VARCHAR NOT NULL, checked_at TIMESTAMPTZ NOT NULL, asset VARCHAR NOT NULL,
    instrument VARCHAR, wave VARCHAR, file_name VARCHAR, file_sha256 VARCHAR,
    check_name VARCHAR NOT NULL, tool VARCHAR NOT NULL, passed BOOLEAN NOT NULL,
    failing_count BIGINT, rows_checked BIGINT, severity VARCHAR, details VARCHAR
);
CREATE VIEW audit.latest_check_results AS SELECT * FROM audit.check_runs
QUALIFY checked_at = max(checked_at) OVER (PARTITION BY asset, tool);
INSERT INTO audit.check_runs VALUES
    ('old', TIMESTAMPTZ '2026-01-05 10:00:00+00', 'specialists_2023_validated', 'specialists',
     'ex_post_2023', 'specialisti_2023.sav', 'aaa', 'expect_column_values_to_not_be_in_set(X)',
     'great_expectations', true, 10, 481, NULL, '{}'),
    ('old', TIMESTAMPTZ '2026-01-05 10:00:00+00', 'specialists_2023_validated', 'specialists',
     'ex_post_2023', 'specialisti_2023.sav', 'aaa', 'unique(resp_id)', 'pandera', false, 2, 481,
     'WARN', '{}'),
    ('old', TIMESTAMPTZ '2026-01-05 10:00:00+00', 'specialists_harmonised', 'specialists', NULL,
     NULL, NULL, 'valid_code(sex)', 'pandera', true, 0, 961, NULL, '{}');
"""


def test_an_audit_trail_of_an_earlier_version_is_extended_in_place(tmp_path):
    """Users' warehouses hold the first version's table: new columns are added, the rows
    already there are left exactly as written, and the views read them in the new terms."""
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    connection.execute(_FIRST_VERSION)
    before = connection.execute("SELECT * FROM audit.check_runs ORDER BY check_name").df()

    context = audit.CheckContext(
        "new", "specialists_2023_validated", "specialists", ("ex_post_2023",), {"s.sav": "bbb"}
    )
    audit.record_checks(
        connection, context, "pandera", [{"check_name": "c", "passed": True, "severity": "WARN"}]
    )

    after = connection.execute(
        "SELECT * FROM audit.check_runs WHERE run_id = 'old' ORDER BY check_name"
    ).df()
    pd.testing.assert_frame_equal(after[before.columns], before)
    assert after[["outcome", "file_names", "file_sha256s"]].isna().all().all()
    read = connection.execute(
        "SELECT check_name, outcome, file_names, file_sha256s FROM audit.check_results "
        "WHERE run_id = 'old' ORDER BY check_name"
    ).fetchall()
    delivered = (["specialisti_2023.sav"], ["aaa"])
    assert read == [
        ("expect_column_values_to_not_be_in_set(X)", "tolerated", *delivered),
        ("unique(resp_id)", "failed", *delivered),
        ("valid_code(sex)", "passed", None, None),
    ]
    latest = connection.execute(
        "SELECT asset, tool, run_id, outcome FROM audit.latest_check_results ORDER BY ALL"
    ).fetchall()
    assert latest == [
        ("specialists_2023_validated", "great_expectations", "old", "tolerated"),
        ("specialists_2023_validated", "pandera", "new", "passed"),
        ("specialists_harmonised", "pandera", "old", "passed"),
    ]


def test_audit_tables_are_redefined_whenever_they_are_not_this_versions(tmp_path):
    """Tables this version made are only looked at; a view another version defined, or a table
    gone missing, and the definitions run again."""
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    audit.ensure_tables(connection)

    def latest_columns() -> set[str]:
        return {r[0] for r in connection.execute("DESCRIBE audit.latest_check_results").fetchall()}

    assert {"asset", "outcome", "file_sha256s"} <= latest_columns()

    def catalogue_entries() -> list[tuple]:
        return connection.execute(
            "SELECT table_name, table_oid FROM duckdb_tables() WHERE schema_name = 'audit' "
            "UNION ALL SELECT view_name, view_oid FROM duckdb_views() "
            "WHERE schema_name = 'audit' ORDER BY ALL"
        ).fetchall()

    made = catalogue_entries()
    audit.ensure_tables(connection)  # up to date: nothing is created or replaced again
    assert catalogue_entries() == made and len(made) == 4
    connection.execute("CREATE OR REPLACE VIEW audit.latest_check_results AS SELECT 1 AS old")
    audit.ensure_tables(connection)
    assert {"asset", "outcome", "file_sha256s"} <= latest_columns()
    connection.execute("DROP VIEW audit.check_results")
    audit.ensure_tables(connection)
    assert connection.execute("SELECT count(*) FROM audit.check_results").fetchall() == [(0,)]
    connection.execute("DROP TABLE audit.quarantine")
    audit.ensure_tables(connection)
    assert connection.execute("SELECT count(*) FROM audit.quarantine").fetchall() == [(0,)]


def test_no_code_rewrites_the_audit_tables():
    package = Path(audit.__file__).parents[1]
    pattern = re.compile(
        r"(UPDATE|DELETE\s+FROM|TRUNCATE|DROP\s+TABLE|CREATE\s+OR\s+REPLACE\s+TABLE)\s+[\"']?audit",
        re.I,
    )
    offenders = [p for p in package.rglob("*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_an_auditor_can_answer_which_checks_a_file_passed_on_a_date(pipeline_run):
    folder, warehouse, _ = pipeline_run
    sha = sha256_of(folder / "raw" / "ex_post_2023" / "specialisti_2023.sav")
    today = dt.datetime.now(dt.UTC).date()
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        rows = connection.execute(
            "SELECT asset, tool, check_name, outcome, severity FROM audit.check_results "
            "WHERE list_contains(file_sha256s, ?) "
            "AND CAST(checked_at AT TIME ZONE 'UTC' AS DATE) = ?",
            [sha, today],
        ).df()
    assert set(rows["asset"]) == {"validated/specialists_2023", "harmonised/specialists"}
    assert set(rows["tool"]) == {"pandera", "great_expectations"}
    assert set(rows["outcome"]) <= {"passed", "tolerated"}
    assert set(rows["severity"]) == {"ERROR", "WARN"}
    assert "time_use_sums_to_100(TIME_DIRECT, TIME_DOCS, TIME_INDIRECT, TIME_OTHER)" in set(
        rows["check_name"]
    )
    assert {"unique(resp_id)", "expect_table_row_count_to_be_between"} <= set(rows["check_name"])


def test_every_check_of_a_run_names_its_files_severity_and_outcome(pipeline_run):
    """Read on its own, each row of a run says which delivered files it judged (both waves'
    for a harmonised table), how it came out and what a failure would have meant."""
    folder, warehouse, result = pipeline_run
    delivered = {p.name: sha256_of(p) for p in (folder / "raw").rglob("*") if p.is_file()}
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        rows = connection.execute(
            "SELECT asset, instrument, wave, file_name, file_sha256, file_names, file_sha256s, "
            "passed, failing_count, outcome, severity FROM audit.check_runs WHERE run_id = ?",
            [result.run_id],
        ).df()
    assert len(rows) > 1000
    assert rows["severity"].isin(["ERROR", "WARN"]).all()
    assert rows["outcome"].isin(["passed", "tolerated"]).all()
    assert (rows["outcome"] == "tolerated").any()  # GX's `mostly`: some 'no answer' allowed
    tolerated = rows[rows["outcome"] == "tolerated"]
    assert tolerated["passed"].all() and (tolerated["failing_count"] > 0).all()
    for row in rows.itertuples():
        files = dict(zip(row.file_names, row.file_sha256s, strict=True))
        assert files and all(delivered[name] == sha for name, sha in files.items()), row
        assert row.file_name == "; ".join(files) and row.file_sha256 == "; ".join(files.values())
        waves = 2 if row.asset.startswith("harmonised/") else 1
        assert len(files) == waves and len(row.wave.split("; ")) == waves, row


def test_data_docs_are_built_and_work_offline(pipeline_run):
    folder, _, _ = pipeline_run
    site = folder / "var" / "reports" / "data_docs"
    index = site / "index.html"
    assert index.exists()
    pages = list(site.rglob("*.html"))
    assert len(pages) >= 25  # index + 24 validation results + suites
    assert data_docs.external_references(site) == []
    for page in pages:
        for ref in re.findall(
            r'(?:src|href)="([^"]*static/vendor/[^"]+)"', page.read_text(encoding="utf-8")
        ):
            assert (page.parent / ref).resolve().exists(), (page, ref)
    assert "validated.residents_2023" in index.read_text(encoding="utf-8")


def test_the_vendored_assets_cover_every_cdn_url_of_the_installed_gx():
    templates = Path(great_expectations.__file__).parent / "render" / "view" / "templates"
    used = set()
    for template in templates.rglob("*.j2"):
        used |= set(
            re.findall(
                r'<(?:script|link)[^>]+(?:src|href)="(https?://[^"]+)"',
                template.read_text(encoding="utf-8"),
            )
        )
    assert used and used <= set(data_docs.vendored_assets())


def test_gx_distribution_rule_names_the_degenerate_question(codebook, isolated):
    spec = codebook.instruments["clients"]
    load = load_raw(
        spec, "ex_ante_2017", codebook, SHIPPED_RAW / "ex_ante_2017" / "klienti_2017.sav"
    )
    table = load.table.copy()
    table["k10"] = 1.0  # everyone would recommend
    with duckdb.connect() as connection:
        connection.register("clients", table)
        profile = distribution_profile(connection, "clients", spec, "ex_ante_2017", 50)
    delivery = checked("test-run", "clients_2017_validated", load.facts)
    outcomes = gx_runner.run_suite(
        distribution_suite(codebook, "clients_2017_validated"), profile, delivery
    )
    assert not outcomes[0].passed and outcomes[0].severity == "WARN"
    assert outcomes[0].details["partial_unexpected_index_list"][0]["variable"] == "would_recommend"
    table_outcomes = gx_runner.run_suite(
        table_suite(spec, "ex_ante_2017", codebook, "clients_2017_validated"),
        load.table,
        delivery,
    )
    assert all(o.passed for o in table_outcomes)


def test_the_quarantine_threshold_is_run_configuration(pipeline_run, tmp_path, monkeypatch):
    _, baseline, _ = pipeline_run
    folder = isolate(tmp_path, monkeypatch)
    warehouse = folder / "warehouse.duckdb"
    shutil.copy(baseline, warehouse)
    lay_over("a_tenth_of_the_rows_invalid", folder / "raw")
    selection = ["raw/residents_2023", "validated/residents_2023"]
    assert not materialize(warehouse, selection).success  # 10 % > the codebook's 5 %
    config = {"ops": {"validated__residents_2023": {"config": {"max_quarantine_share": 0.2}}}}
    assert materialize(warehouse, selection, run_config=config).success
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        count = connection.execute("SELECT count(*) FROM validated.residents_2023").fetchone()[0]
    assert count == 1080


def _heads_2023(pipeline_run, tmp_path, monkeypatch) -> tuple[Path, Path, list[bytes]]:
    """A copy of the sample run's warehouse in an isolated folder, and the heads' 2023 file
    there with its lines, to change."""
    _, baseline, _ = pipeline_run
    folder = isolate(tmp_path, monkeypatch)
    warehouse = folder / "warehouse.duckdb"
    shutil.copy(baseline, warehouse)
    path = folder / "raw" / "ex_post_2023" / "dienestu_vaditaji_2023.csv"
    return warehouse, path, path.read_bytes().split(b"\r\n")


def test_too_few_respondents_keep_every_row_rule_but_fail_the_dataset_contract(
    pipeline_run, tmp_path, monkeypatch
):
    """What only the table as a whole shows is GX's: 20 heads, each a valid row, are fewer than
    the design's minimum of 30. The check runs in the validated step and, being blocking, stops
    the harmonised table from being rebuilt on them."""
    warehouse, path, lines = _heads_2023(pipeline_run, tmp_path, monkeypatch)
    path.write_bytes(b"\r\n".join(lines[:21]) + b"\r\n")
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        before = connection.execute("SELECT count(*) FROM harmonised.heads").fetchone()[0]

    result = materialize(warehouse, ["raw/heads_2023", "validated/heads_2023", "harmonised/heads"])

    assert not result.success
    (evaluation,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "gx_dataset_contract"
    ]
    assert not evaluation.passed and evaluation.severity.value == "ERROR"
    assert "expect_table_row_count_to_be_between" in evaluation.metadata["failures"].value
    assert "harmonised/heads" not in {
        e.asset_key.to_user_string() for e in result.get_asset_materialization_events()
    }
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        assert connection.execute("SELECT count(*) FROM harmonised.heads").fetchone()[0] == before
        failed = connection.execute(
            "SELECT check_name, failing_count FROM audit.check_runs "
            "WHERE run_id = ? AND NOT passed",
            [result.run_id],
        ).fetchall()
    assert failed == [("expect_table_row_count_to_be_between", None)]


def test_a_column_left_as_text_by_one_bad_cell_is_checked_as_the_numbers_it_holds(
    pipeline_run, tmp_path, monkeypatch
):
    """One 'NA' in the heads' vacancies and staff makes the reader keep both columns as
    delivered text. The row goes to quarantine; the rest must be checked as the numbers they
    are: 16 of 41 answers are 999 ("no answer"), which the key-variable expectation must
    count (compared with text it counted none and passed), and '1 050' (a thousands space) is
    1050, as in a column where every cell is a number (it was quarantined as not a number)."""
    warehouse, path, lines = _heads_2023(pipeline_run, tmp_path, monkeypatch)
    header = lines[0].decode("utf-8-sig").split(";")
    vacancies, staff = header.index("VACANCIES"), header.index("STAFF_TOTAL")
    for number in range(2, 19):  # lines 3 … 19
        cells = lines[number].split(b";")
        cells[vacancies] = b"NA" if number == 2 else b"999"
        if number in (2, 3):
            cells[staff] = b"NA" if number == 2 else b"1 050"
        lines[number] = b";".join(cells)
    path.write_bytes(b"\r\n".join(lines))

    result = materialize(warehouse, ["raw/heads_2023", "validated/heads_2023"])

    assert result.success
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        kinds = dict(
            connection.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = "
                "'validated' AND table_name = 'heads_2023'"
            ).fetchall()
        )
        staff_of_line_4 = connection.execute(
            "SELECT STAFF_TOTAL FROM validated.heads_2023 WHERE _source_row = 4"
        ).fetchone()
        failed = connection.execute(
            "SELECT check_name, failing_count, rows_checked FROM audit.check_runs "
            "WHERE run_id = ? AND NOT passed ORDER BY 1",
            [result.run_id],
        ).fetchall()
    assert kinds["VACANCIES"] == "DOUBLE" and kinds["STAFF_TOTAL"] == "DOUBLE"
    assert staff_of_line_4 == (1050.0,)
    assert failed == [
        ("expect_column_values_to_not_be_in_set(VACANCIES)", 16, 41),
        ("is_number(STAFF_TOTAL)", 1, 42),
        ("is_number(VACANCIES)", 1, 42),
    ]


def _codes_suite(name: str, codes: list[int]) -> Suite:
    """A one-expectation suite: column ``code`` holds only ``codes``."""
    return Suite(
        name,
        [
            Expectation(
                "ExpectColumnValuesToBeInSet",
                {"column": "code", "value_set": codes},
                "ERROR",
                "codes of the scale",
            )
        ],
    )


def test_a_changed_suite_is_written_again_and_an_unchanged_one_reused(isolated):
    """GX suites are written only when their content changes (it saves GX's bookkeeping on
    every run); a codebook change must still reach the suite that validates the data."""
    frame = pd.DataFrame({"code": [1, 2, 3]})
    first = _codes_suite("cache_probe", [1, 2, 3])
    assert all(o.passed for o in gx_runner.run_suite(first, frame, checked("test-run")))
    stored = gx_runner.context().suites.get("cache_probe")
    gx_runner.run_suite(first, frame, checked("test-run"))
    assert gx_runner.context().suites.get("cache_probe").id == stored.id

    narrowed = _codes_suite("cache_probe", [1, 2])
    outcomes = gx_runner.run_suite(narrowed, frame, checked("test-run"))
    assert [o.failing_count for o in outcomes] == [1]
    kwargs = gx_runner.context().suites.get("cache_probe").expectations[0].value_set
    assert sorted(kwargs) == [1, 2]


def test_gx_lets_go_of_each_validated_frame(isolated):
    """GX's pandas engine would keep every frame it validated until the process ends: a run
    would hold the whole delivery in memory. Nothing of GX's may keep a frame alive."""
    frame = pd.DataFrame({"code": [1, 2, 3]})
    held = weakref.ref(frame)
    outcomes = gx_runner.run_suite(_codes_suite("release", [1, 2, 3]), frame, checked("run"))
    assert all(o.passed for o in outcomes)
    del frame
    gc.collect()
    assert held() is None


def test_data_docs_render_only_the_runs_own_pages(isolated):
    """Each run adds its result pages and leaves earlier ones as they were: rebuilding the whole
    site every run would make every run slower than the last."""
    suite = _codes_suite("docs_probe", [1, 2])
    frame = pd.DataFrame({"code": [1, 2, 2]})
    site = gx_runner.data_docs_dir()

    def pages(run: str) -> list[Path]:
        return [p for p in (site / "validations").rglob("*.html") if run in p.parts]

    gx_runner.run_suite(suite, frame, checked("run-a"))
    data_docs.publish("run-a")
    (first,) = pages("run-a")
    suite_page = site / "expectations" / "docs_probe.html"
    stamps = {first: first.stat().st_mtime_ns, suite_page: suite_page.stat().st_mtime_ns}

    gx_runner.run_suite(suite, frame, checked("run-b"))
    data_docs.publish("run-b")

    assert len(pages("run-b")) == 1
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert "run-b" in (site / "index.html").read_text(encoding="utf-8")
    assert data_docs.external_references(site) == []


def test_the_summary_names_the_failing_codes_but_never_an_identifier(codebook):
    """The one line a failed run prints names each check's rows and, for codes, numbers and
    dates, the values found; a duplicated respondent identifier is counted, not printed."""
    spec, table = _specialists(codebook)
    table.loc[[4, 9, 11], "JOB_SAT"] = [7, 0, 7]
    table["CASELOAD"] = table["CASELOAD"].astype(object)
    table.loc[6, "CASELOAD"] = "daudz"
    identifier = spec.id_variable.sources["ex_post_2023"].variable
    table.loc[8, identifier] = table.loc[7, identifier]
    outcome = check_frame(table, row_contract(spec, "ex_post_2023", codebook))
    summary = outcome.summary()
    assert "JOB_SAT valid_code (3 rows, e.g. row 5; values 7, 0)" in summary, summary
    assert "CASELOAD is_number (1 rows, e.g. row 7; value daudz)" in summary, summary
    assert f"{identifier} unique (2 rows, e.g. row 8)" in summary, summary
    assert str(table.loc[7, identifier]) not in summary


def test_a_run_without_the_audit_step_still_publishes_its_data_docs(isolated):
    """A run of one validated table (from the UI, say) checks it with GX but has no audit step
    to publish the pages: the run publishes them as it ends, so the auditor finds the table's
    results under the run's id all the same."""
    result = materialize(isolated / "warehouse.duckdb", ["raw/heads_2023", "validated/heads_2023"])
    assert result.success
    site = gx_runner.data_docs_dir()
    pages = [p for p in (site / "validations").rglob("*.html") if result.run_id in p.parts]
    assert sorted(p.relative_to(site / "validations").parts[:2] for p in pages) == [
        ("validated", "heads_2023"),
        ("validated", "heads_2023_distribution"),
    ]
    assert result.run_id in (site / "index.html").read_text(encoding="utf-8")
