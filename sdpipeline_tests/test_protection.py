"""Data protection and reliability: identifiers pseudonymised with a key kept out of the
repository, no identifier or free text in any result nor in Dagster's own storage, the report
readable read-only, and identical results from identical deliveries. (Runs killed at several
moments are tried in test_killed_runs.py.)"""

from __future__ import annotations

import hashlib
import hmac
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

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

from .conftest import SHIPPED_RAW, isolate, materialize, publication_masked

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
    for path in (folder / "var" / "reports" / DATASETS).iterdir():
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
    assert all(re.fullmatch(r"\w+(?:-\w+)*", i) for i in identifiers)
    assert not identifiers & _string_cells(warehouse, ("raw", *RESULT_SCHEMAS))
    assert not identifiers & _exported_cells(folder)
    exported = " ".join(
        p.read_bytes().decode("utf-8", "ignore")
        for p in (folder / "var" / "reports" / "tables").rglob("*")
        if p.suffix in (".csv", ".html", ".md")
    )
    assert not identifiers & _words(exported)


def _words(text: str) -> set[str]:
    """Every string that ``\\b…\\b`` finds in ``text`` made of word runs joined by hyphens (as
    every delivered identifier is): each run of a hyphenated chain and each chain of them, so
    that every identifier is looked up once, not searched for through megabytes of text."""
    words = set()
    for chain in re.findall(r"\w+(?:-\w+)*", text):
        parts = chain.split("-")
        words |= {
            "-".join(parts[i:j]) for i in range(len(parts)) for j in range(i + 1, len(parts) + 1)
        }
    return words


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
    reports = first_folder / "var/reports"
    exports = sorted(
        p.relative_to(reports)
        for p in [*(reports / "tables").rglob("*"), *(reports / DATASETS).rglob("*")]
        # these name their run
        if p.is_file() and p.suffix != ".duckdb" and p.name != report_export.MANIFEST
    )
    assert any(p.suffix == ".sav" for p in exports) and any(p.suffix == ".parquet" for p in exports)
    for name in exports:
        first, second = (f / "var/reports" / name for f in (first_folder, folder))
        if name.name == report_export.HTML_REPORT:
            # the run and date of publication are the one element that differs
            a, b = (publication_masked(p.read_bytes()) for p in (first, second))
            assert a[1] != b[1] and a[0] == b[0], name
        else:
            assert sha256_of(first) == sha256_of(second), name


def _stored_text(home: Path) -> str:
    """Every text Dagster's instance under ``home`` holds (runs, events, schedules), read
    through SQLite, with JSON's escapes of non-ASCII letters undone."""
    texts = []
    for path in home.rglob("*.db"):
        with sqlite3.connect(path) as connection:
            tables = connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            for (table,) in tables.fetchall():
                for row in connection.execute(f'SELECT * FROM "{table}"'):
                    texts += [
                        v.decode("utf-8", "ignore") if isinstance(v, bytes) else v
                        for v in row
                        if isinstance(v, str | bytes)
                    ]
    joined = "\n".join(texts).replace('\\"', '"')
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), joined)


def test_dagster_storage_holds_no_free_text_or_identifier(cli_pipeline):
    """Asset metadata (previews above all) lands in Dagster's event log, which the UI shows to
    anyone who reaches it: after a full run it holds no delivered comment, no delivered
    identifier and no pseudonym (nor a design label made of pseudonyms)."""
    stored = _stored_text(cli_pipeline / "var" / "dagster_home")
    assert "dagster/row_count" in stored and "Rīga" in stored  # metadata, letters decoded
    assert not [c for c in COMMENTS if c in stored]
    codebook = default_codebook()
    pseudonyms = set()
    with duckdb.connect(str(cli_pipeline / "var" / "warehouse.duckdb"), read_only=True) as db:
        for instrument in codebook.instruments.values():
            for wave in instrument.files:
                column = instrument.id_variable.sources[wave].variable
                table = f"raw.{instrument.name}_{codebook.waves[wave].year}"
                pseudonyms |= {
                    r[0] for r in db.execute(f'SELECT "{column}" FROM {table}').fetchall()
                }
        comments = db.execute(
            "SELECT count(*) FROM raw.residents_2023 WHERE E1_komentars IS NOT NULL"
        ).fetchone()[0]
    assert comments and len(pseudonyms) > 4000
    tokens = set(re.findall(r"[A-Za-z0-9_-]+", stored))
    assert not tokens & pseudonyms
    long_ids = {i for i in _delivered_identifiers() if len(i) >= 6}
    assert long_ids and not tokens & long_ids
