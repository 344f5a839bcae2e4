"""A failed delivery is not forgotten, tried as a data engineer meets it: through the command
line, against the instance Dagster's UI reads. A rejected file, a file that cannot be read and
a failed blocking check each fail every refresh, naming the file and the reason, until the file
is fixed; ``sdpipeline status`` gives the same answer as the UI throughout. (A killed run:
``test_killed_runs``; automation: ``test_automation``.)"""

from __future__ import annotations

from sdpipeline.ingest import sha256_of

from .conftest import clone, sdpipeline
from .state_checks import (
    HEADS_2023,
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
