"""Data protection and reliability: identifiers pseudonymised with a key kept out of the
repository, no identifier or free text in any result, the report readable read-only, identical
results from identical deliveries, and nothing lost when a run is killed."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import shutil
import signal
import subprocess
import sys

import duckdb
import pandas as pd
import pyreadstat
import pytest

from sdpipeline import pseudonymise, report_export, settings
from sdpipeline.codebook import default_codebook
from sdpipeline.defs.report.assets import DATASETS
from sdpipeline.generator.answers import COMMENTS
from sdpipeline.ingest import sha256_of
from sdpipeline.readers import read_raw_file

from .conftest import SHIPPED_RAW, isolate, materialize

RESULT_SCHEMAS = ("harmonised", "indicators", "report")


def _delivered_identifiers() -> set[str]:
    codebook = default_codebook()
    found = set()
    for instrument in codebook.instruments.values():
        for wave, spec in instrument.files.items():
            column = instrument.id_variable.sources[wave].variable
            raw = read_raw_file(SHIPPED_RAW / wave / spec.name, spec, [column], [column])
            found |= {
                str(int(v)) if isinstance(v, float) else str(v) for v in raw.frame[column].dropna()
            }
    return found


def _string_cells(warehouse, schemas) -> set[str]:
    cells = set()
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        tables = connection.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name IN "
            f"({', '.join('?' for _ in schemas)})",
            list(schemas),
        ).fetchall()
        for schema, table in tables:
            frame = connection.execute(f'SELECT * FROM "{schema}"."{table}"').df()
            for column in frame.columns:
                cells |= {str(v) for v in frame[column].dropna().unique()}
    return cells


def _exported_cells(folder) -> set[str]:
    """Every text cell of the exported datasets (SPSS and Parquet), as read back."""
    cells = set()
    for path in (folder / "var" / "reports" / "tables" / DATASETS).iterdir():
        if path.suffix == ".sav":
            frame, _ = pyreadstat.read_sav(str(path))
        elif path.suffix == ".parquet":
            frame = duckdb.sql(f"SELECT * FROM '{path}'").df()
        else:
            continue
        for column in frame.columns:
            cells |= {str(v) for v in frame[column].dropna().unique()}
    return cells


def test_delivered_identifiers_never_reach_a_result(pipeline_run):
    folder, warehouse, _ = pipeline_run
    identifiers = _delivered_identifiers()
    assert len(identifiers) > 4000  # the 2017 contractor numbered each instrument from 1
    assert not identifiers & _string_cells(warehouse, ("raw", *RESULT_SCHEMAS))
    assert not identifiers & _exported_cells(folder)
    exported = " ".join(
        p.read_bytes().decode("utf-8", "ignore")
        for p in (folder / "var" / "reports" / "tables").rglob("*")
        if p.suffix in (".csv", ".html", ".md")
    )
    assert not any(re.search(rf"\b{re.escape(i)}\b", exported) for i in list(identifiers)[:2000])


def test_free_text_never_reaches_indicators_or_the_report(pipeline_run):
    folder, warehouse, _ = pipeline_run
    cells = _string_cells(warehouse, ("indicators", "report")) | _exported_cells(folder)
    assert not any(comment in cell for comment in COMMENTS for cell in cells)
    for path in (folder / "var" / "reports" / "tables").rglob("*"):
        if path.suffix in (".csv", ".html", ".md"):
            text = path.read_text(encoding="utf-8-sig")
            assert not any(comment in text for comment in COMMENTS), path.name


def test_pseudonyms_are_keyed_and_the_key_stays_out_of_the_repository(tmp_path, monkeypatch):
    monkeypatch.setenv("SDPIPELINE_VAR_DIR", str(tmp_path))
    monkeypatch.delenv(pseudonymise.KEY_VARIABLE, raising=False)
    key = pseudonymise.pseudonym_key()
    path = pseudonymise.key_file()
    assert path.exists() and oct(path.stat().st_mode & 0o777) == "0o600"
    assert pseudonymise.pseudonym_key() == key  # stable across calls
    ids = pd.Series(["201700001", "201700001", "201700002"])
    first = pseudonymise.pseudonymise(ids, "residents", "ex_ante_2017", key)
    assert first[0] == first[1] != first[2] and "201700001" not in first[0]
    message = b"residents|ex_ante_2017|201700001"
    assert first[0] == "P" + hmac.new(key, message, hashlib.sha256).hexdigest()[:24]
    other = pseudonymise.pseudonymise(ids, "residents", "ex_ante_2017", b"another key")
    assert other[0] != first[0]
    ignored = subprocess.run(
        [
            "git",
            "check-ignore",
            "-q",
            str(settings.REPO_ROOT / "var" / "secrets" / "pseudonym.key"),
        ],
        cwd=settings.REPO_ROOT,
    )
    assert ignored.returncode == 0


@pytest.mark.parametrize("key", [b"short", b"k" * 64, b"a key longer than a SHA-256 block " * 3])
def test_pseudonyms_are_hmac_sha256_of_the_plain_identifier(key):
    # The pseudonyms are hashed inside DuckDB; they must equal Python's own HMAC for keys
    # shorter than, equal to and longer than the hash's block, with blanks kept blank.
    ids = pd.Series([201700001.0, None, " CLI-7 ", 42, float("nan")], index=[5, 6, 7, 8, 9])
    got = pseudonymise.pseudonymise(ids, "clients", "ex_post_2023", key)
    assert list(got.index) == [5, 6, 7, 8, 9] and str(got.dtype) == "string"
    assert _values(got) == _hmacs(key, ["201700001", None, "CLI-7", "42", None])


@pytest.mark.parametrize(
    ("ids", "plain"),
    [
        (pd.Series([201700001.0, float("nan"), 7.0]), ["201700001", None, "7"]),
        (pd.Series([1.5, 2.0, float("nan")]), ["1.5", "2", None]),
        (pd.Series([3, 40], dtype="int64"), ["3", "40"]),
        (pd.Series([" CLI-7 ", None, ""], dtype="str"), ["CLI-7", None, ""]),
    ],
    ids=["whole floats (SPSS)", "fractions", "integers", "text"],
)
def test_pseudonyms_of_a_typed_identifier_column(ids, plain):
    # Typed columns are made plain as whole columns; the result must be the row-by-row one.
    got = pseudonymise.pseudonymise(ids, "clients", "ex_post_2023", b"key")
    assert _values(got) == _hmacs(b"key", plain)


def _values(series: pd.Series) -> list:
    return [None if pd.isna(v) else v for v in series]


def _hmacs(key: bytes, plain: list) -> list:
    return [
        None
        if p is None
        else "P"
        + hmac.new(key, f"clients|ex_post_2023|{p}".encode(), hashlib.sha256).hexdigest()[:24]
        for p in plain
    ]


def test_the_report_opens_read_only_for_analysts(pipeline_run):
    folder, _, _ = pipeline_run
    database = folder / "var" / "reports" / "tables" / report_export.DATABASE
    with duckdb.connect(str(database), read_only=True) as connection:
        headline = connection.execute("SELECT * FROM report.headline_indicators").df()
        assert len(headline) > 25
        with pytest.raises(duckdb.Error):
            connection.execute("DELETE FROM report.headline_indicators")


def test_two_runs_on_the_same_delivery_give_identical_results(pipeline_run, tmp_path, monkeypatch):
    first_folder, first_warehouse, _ = pipeline_run
    folder = isolate(tmp_path, monkeypatch)
    # the same pseudonym key: the exported datasets carry pseudonyms
    shutil.copytree(first_folder / "var" / "secrets", folder / "var" / "secrets")
    warehouse = folder / "warehouse.duckdb"
    assert materialize(warehouse).success
    for schema_table in (
        "report.headline_indicators",
        "report.indicators_by_region",
        "indicators.estimates",
    ):
        with (
            duckdb.connect(str(first_warehouse), read_only=True) as a,
            duckdb.connect(str(warehouse), read_only=True) as b,
        ):
            pd.testing.assert_frame_equal(
                a.execute(f"SELECT * FROM {schema_table}").df(),
                b.execute(f"SELECT * FROM {schema_table}").df(),
            )
    first_exports = first_folder / "var/reports/tables"
    exports = sorted(
        p.relative_to(first_exports)
        for p in first_exports.rglob("*")
        if p.is_file() and p.suffix != ".duckdb"
    )
    assert any(p.suffix == ".sav" for p in exports) and any(p.suffix == ".parquet" for p in exports)
    for name in exports:
        assert sha256_of(first_exports / name) == sha256_of(folder / "var/reports/tables" / name), (
            name
        )


def _run_until(step: str, env: dict) -> int:
    """Start a full run and SIGKILL it as soon as ``step`` starts; returns the exit status."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sdpipeline", "run", "--verbose"],
        env=env,
        cwd=settings.REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in process.stdout:
        if f"{step} - STEP_START" in line:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    return process.returncode


def test_a_killed_run_loses_nothing_and_a_rerun_matches(pipeline_run, tmp_path):
    _, baseline, _ = pipeline_run
    warehouse = tmp_path / "warehouse.duckdb"
    warehouse.write_bytes(baseline.read_bytes())
    env = {
        **os.environ,
        "SDPIPELINE_WAREHOUSE": str(warehouse),
        "SDPIPELINE_VAR_DIR": str(tmp_path / "var"),
        "DAGSTER_HOME": str(tmp_path / "home"),
    }
    with duckdb.connect(str(baseline), read_only=True) as connection:
        good = connection.execute("SELECT * FROM report.headline_indicators").df()
    for step in ("raw__residents_2023", "harmonised__clients", "report__indicators_by_region"):
        assert _run_until(step, env) == -signal.SIGKILL
        with duckdb.connect(str(warehouse), read_only=True) as connection:  # opens cleanly
            kept = connection.execute("SELECT * FROM report.headline_indicators").df()
        pd.testing.assert_frame_equal(kept, good)
    finished = subprocess.run(
        [sys.executable, "-m", "sdpipeline", "run"],
        env=env,
        cwd=settings.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert finished.returncode == 0, finished.stdout[-2000:]
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        rerun = connection.execute("SELECT * FROM report.headline_indicators").df()
    pd.testing.assert_frame_equal(rerun, good)
