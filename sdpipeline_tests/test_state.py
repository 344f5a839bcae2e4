"""A failed delivery is not forgotten, tried as a data engineer meets it: through the command
line, against the instance Dagster's UI reads. A rejected file, a file that cannot be read and
a failed blocking check each fail every refresh, naming the file and the reason, until the file
is fixed; ``sdpipeline status`` gives the same answer as the UI throughout. (A killed run:
``test_killed_runs``; automation: ``test_automation``.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import sdpipeline as sdpipeline_package
from sdpipeline import settings
from sdpipeline.ingest import sha256_of

from .conftest import HUNG_SECONDS, cli_env, clone, sdpipeline
from .state_checks import (
    HEADS_2023,
    assert_same_report,
    published,
    set_first_answer,
    shutil_copy,
    states,
    status_as_the_ui,
)
from .test_bad_input import lay_over


def test_a_rejected_file_fails_every_refresh_until_it_is_fixed(cli_pipeline, tmp_path, monkeypatch):
    folder = clone(cli_pipeline, tmp_path)
    assert "nothing changed" in sdpipeline(folder, "refresh").stdout
    lay_over("a_tenth_of_the_rows_invalid", folder / "raw")

    for attempt in range(2):
        failed = sdpipeline(folder, "refresh")
        assert failed.returncode == 1, (attempt, failed.stdout + failed.stderr)
        assert (
            "validated/residents_2023: file iedzivotaji_2023.csv: rejected, 120 of 1200 rows"
            in failed.stdout
        ), failed.stdout
        assert "nothing changed" not in failed.stdout
        assert "Traceback" not in failed.stdout + failed.stderr
    code, report = status_as_the_ui(folder, monkeypatch)
    assert code == 1 and not report["current"]
    by_asset = states(report)
    validated = by_asset["validated/residents_2023"]
    assert validated["dagster_status"] == "STALE" and validated["behind"]
    assert "rejected, 120 of 1200 rows" in validated["last_failure"]
    harmonised = by_asset["harmonised/residents"]
    assert harmonised["dagster_status"] == "FRESH" and harmonised["behind"]
    assert by_asset["report/exports"]["behind"]
    assert not by_asset["harmonised/clients"]["behind"]

    # the contractor's corrected file: the original with one answer changed
    shutil_copy(cli_pipeline / "raw" / "ex_post_2023" / "iedzivotaji_2023.csv", folder / "raw")
    set_first_answer(folder / "raw" / "ex_post_2023" / "iedzivotaji_2023.csv", "A1_zina", "2")
    fixed = sdpipeline(folder, "refresh")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    manifest = published(folder)[0]
    assert manifest["files"]["iedzivotaji_2023.csv"] == sha256_of(
        folder / "raw" / "ex_post_2023" / "iedzivotaji_2023.csv"
    )
    again = sdpipeline(folder, "refresh")
    assert again.returncode == 0 and "nothing changed" in again.stdout
    code, report = status_as_the_ui(folder, monkeypatch)
    assert code == 0 and report["current"], report


def test_a_file_that_cannot_be_read_fails_every_refresh_with_its_own_message(
    cli_pipeline, tmp_path
):
    """A raw step's failure is printed as the reader's own words (file, row), without a trace
    and without a validation summary of checks that never ran, every time until fixed."""
    folder = clone(cli_pipeline, tmp_path)
    lay_over("mixed_encodings_in_one_file", folder / "raw")
    for _ in range(2):
        failed = sdpipeline(folder, "refresh")
        assert failed.returncode == 1, failed.stdout + failed.stderr
        message = next(
            line
            for line in failed.stdout.splitlines()
            if line.startswith("  raw/residents_2023: file ")
        )
        assert "iedzivotaji_2023.csv" in message and "row 6" in message, failed.stdout
        assert "UTF-8 inside a Windows-1257 file" in message, failed.stdout
        assert "Validation:" not in failed.stdout and "Traceback" not in failed.stdout
        assert "nothing changed" not in failed.stdout
    shutil_copy(cli_pipeline / "raw" / "ex_post_2023" / "iedzivotaji_2023.csv", folder / "raw")
    assert "nothing changed" in sdpipeline(folder, "refresh").stdout


def test_a_failed_blocking_check_fails_every_refresh_naming_its_reason(
    cli_pipeline, tmp_path, monkeypatch
):
    """20 heads are each a valid row but fewer than the design's minimum of 30: the table is
    written and its blocking GX check fails, so nothing after it is built; the next refresh
    must not build on it either."""
    folder = clone(cli_pipeline, tmp_path)
    path = folder / "raw" / HEADS_2023
    lines = path.read_bytes().split(b"\r\n")
    path.write_bytes(b"\r\n".join(lines[:21]) + b"\r\n")
    for _ in range(2):
        failed = sdpipeline(folder, "refresh")
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert (
            "validated/heads_2023: check gx_dataset_contract failed: file "
            "dienestu_vaditaji_2023.csv: the design's minimum is 30 respondents; observed: 20"
            in failed.stdout
        ), failed.stdout
        assert "Validation:" in failed.stdout and "Traceback" not in failed.stdout
    _, report = status_as_the_ui(folder, monkeypatch)
    heads = states(report)["validated/heads_2023"]
    assert heads["behind"] and any("gx_dataset_contract" in r for r in heads["reasons"])
    assert states(report)["harmonised/heads"]["behind"]

    shutil_copy(cli_pipeline / "raw" / HEADS_2023, folder / "raw")
    assert sdpipeline(folder, "refresh").returncode == 0
    code, report = status_as_the_ui(folder, monkeypatch)
    assert code == 0, report


def test_a_changed_file_the_code_reads_is_a_new_code_version(cli_pipeline, tmp_path):
    """The package's code is more than its Python: the report's style sheet is read as code, so
    a changed rule must rebuild what it builds, as a changed line of Python does. The package
    is run from a copy, its style sheet edited; its Python caches do not count."""
    folder = clone(cli_pipeline, tmp_path / "project")
    package = tmp_path / "code" / "sdpipeline"
    shutil.copytree(
        Path(sdpipeline_package.__file__).parent,
        package,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(settings.REPO_ROOT / "pyproject.toml", package.parent)  # Dagster's project file

    def status_of(copy: Path) -> tuple[int, dict]:
        result = subprocess.run(
            [sys.executable, "-m", "sdpipeline", "status", "--json"],
            env={
                **cli_env(folder),
                "PYTHONPATH": str(copy),
                "SDPIPELINE_DATA_DIR": str(settings.REPO_ROOT / "data"),
            },
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=HUNG_SECONDS,
        )
        assert result.returncode in (0, 1), result.stdout + result.stderr
        return result.returncode, json.loads(result.stdout)

    code, report = status_of(package.parent)
    assert code == 0, report  # the copy, with the caches its run wrote, is the same code
    with (package / "report_assets" / "report.css").open("a", encoding="utf-8") as css:
        css.write("\ntable { border-collapse: separate; }\n")
    code, report = status_of(package.parent)
    assert code == 1
    exports = states(report)["report/exports"]
    assert exports["behind"], exports
    assert "has a new code version (changed: the pipeline's code)" in exports["reasons"], exports


def test_a_new_code_version_names_the_part_of_the_codebook_that_changed(cli_pipeline, tmp_path):
    """A person who edited the codebook learns from `status` what their edit rebuilds and why:
    the instrument file for its instrument's tables, the catalogue for the indicators; the
    other instruments' tables stay current."""
    folder = clone(cli_pipeline, tmp_path / "project")
    data = tmp_path / "data"
    shutil.copytree(settings.REPO_ROOT / "data", data, ignore=shutil.ignore_patterns("raw"))
    env = {
        "SDPIPELINE_DATA_DIR": str(data),
        "SDPIPELINE_CODEBOOK_DIR": str(data / "codebook"),
        "SDPIPELINE_REFERENCE_DIR": str(data / "reference"),
    }

    def reasons() -> dict[str, str]:
        done = sdpipeline(folder, "status", "--json", env=env)
        return {k: "; ".join(v["reasons"]) for k, v in states(json.loads(done.stdout)).items()}

    assert not any(reasons().values())
    (tmp_path / "docs").mkdir()
    shutil.copy(settings.REPO_ROOT / "docs" / "codebook.md", tmp_path / "docs")
    assert "no longer describes" not in sdpipeline(folder, "status", env=env).stdout
    clients = data / "codebook" / "instruments" / "clients.yaml"
    clients.write_text(
        clients.read_text(encoding="utf-8").replace("Cik dienas gaidījāt", "Cik ilgi gaidījāt"),
        encoding="utf-8",
    )
    catalogue = data / "indicators" / "catalogue.yaml"
    catalogue.write_text(
        catalogue.read_text(encoding="utf-8").replace("Gaidīšanas laiks", "Gaidīšanas ilgums"),
        encoding="utf-8",
    )
    now = reasons()
    assert now["raw/clients_2017"] == (
        "has a new code version (changed: instruments/clients.yaml or a block or scale it uses)"
    )
    assert not now["raw/heads_2017"] and not now["reference/municipalities_2021"]
    assert now["indicators/estimates"].startswith(
        "has a new code version (changed: the codebook, data/indicators/catalogue.yaml)"
    )
    note = f"note: {tmp_path / 'docs' / 'codebook.md'} no longer describes the codebook"
    assert note in sdpipeline(folder, "status", env=env).stdout  # a run does not rewrite it


def test_a_declared_file_that_is_not_there_fails_the_run(cli_pipeline, tmp_path):
    """A wave's folder, or one file of it, missing from the delivery: every file the codebook
    declares is read or the run fails, naming each missing file, and the published report and
    tables stay as they were. (It once skipped what reads the file and called the run a
    success.)"""
    folder = clone(cli_pipeline, tmp_path)
    before = published(folder)
    wave = folder / "raw" / "ex_post_2023"
    shutil.move(wave, tmp_path / "away")
    for command in ("run", "refresh"):
        failed = sdpipeline(folder, command)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "succeeded" not in failed.stdout and "Traceback" not in failed.stdout
        named = [
            line
            for line in failed.stdout.splitlines()
            if "is not there" in line or "is not delivered" in line
        ]
        for name in ("iedzivotaji_2023.csv", "klienti_2023.xlsx", "specialisti_2023.sav"):
            assert any(name in line for line in named), (command, failed.stdout)
    assert_same_report(published(folder), before)
    shutil.move(tmp_path / "away", wave)
    (wave / "klienti_2023.xlsx").unlink()
    failed = sdpipeline(folder, "run")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "1 declared file(s) not delivered: delivery/clients_2023: " in failed.stdout
    assert_same_report(published(folder), before)


def test_outputs_removed_outside_dagster_are_behind_and_rebuilt(cli_pipeline, tmp_path):
    """Dagster's staleness compares versions, not what a run wrote: a published file or the
    whole warehouse removed left every asset "current" and refresh said "nothing changed".
    Each is now behind, named, and rebuilt by refresh; a damaged warehouse is said on one
    line before anything runs."""
    folder = clone(cli_pipeline, tmp_path / "project")
    html = folder / "var" / "reports" / "tables" / "report.html"
    html.unlink()
    done = sdpipeline(folder, "status")
    assert done.returncode == 1, done.stdout
    assert f"1 published file(s) its manifest lists are not there: {html}" in done.stdout
    assert sdpipeline(folder, "refresh").returncode == 0 and html.is_file()

    warehouse = folder / "var" / "warehouse.duckdb"
    saved = warehouse.read_bytes()
    warehouse.unlink()
    done = sdpipeline(folder, "status")
    assert done.returncode == 1
    assert f"its table harmonised.residents is not in the warehouse {warehouse}" in done.stdout
    rebuilt = sdpipeline(folder, "refresh")
    assert rebuilt.returncode == 0, rebuilt.stdout[-3000:]
    assert sdpipeline(folder, "status").returncode == 0

    warehouse.write_bytes(saved[: len(saved) // 3])
    for command in ("status", "refresh"):
        done = sdpipeline(folder, command)
        assert done.returncode == 2, done.stdout + done.stderr
        assert f"the warehouse {warehouse} cannot be read" in done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
