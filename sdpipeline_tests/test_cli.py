"""The command line as a user runs it, in a separate process, and the README's promises."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sdpipeline import settings

from .conftest import HUNG_SECONDS, SHIPPED_RAW
from .test_bad_input import lay_over

CLI = [sys.executable, "-m", "sdpipeline"]


def _run(args, env_dir: Path, raw: Path | None = None):
    env = {
        **os.environ,
        "SDPIPELINE_VAR_DIR": str(env_dir / "var"),
        "DAGSTER_HOME": str(env_dir / "var" / "dagster_home"),
    }
    if raw is not None:
        env["SDPIPELINE_RAW_DIR"] = str(raw)
    return subprocess.run(
        CLI + args,
        env=env,
        capture_output=True,
        text=True,
        timeout=HUNG_SECONDS,
        cwd=settings.REPO_ROOT,
    )


def test_run_reports_a_rejected_file_then_accepts_it_with_a_higher_threshold(tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(SHIPPED_RAW, raw)
    lay_over("a_tenth_of_the_rows_invalid", raw)

    failed = _run(["run"], tmp_path, raw)
    assert failed.returncode == 1
    assert "job full_refresh FAILED" in failed.stdout
    assert (
        "validated/residents_2023: file iedzivotaji_2023.csv: rejected, 120 of 1200"
        in failed.stdout
    )
    assert "Traceback" not in failed.stdout
    # the code found, not only the check it broke (the sample is 10 of the 120 rows)
    assert "A1_zina valid_code (120 rows, e.g. row 2; values such as 5)" in failed.stdout
    assert re.search(
        r"Validation: \d+ checks this run, \d+ failed, 120 rows quarantined", failed.stdout
    )
    assert "Data Docs (offline):" in failed.stdout

    accepted = _run(["run", "--max-quarantine-share", "0.2"], tmp_path, raw)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "job full_refresh succeeded" in accepted.stdout
    assert str(tmp_path / "var" / "warehouse.duckdb") in accepted.stdout
    assert re.search(r"validated\.residents_2023\s+1080 rows", accepted.stdout)
    home = tmp_path / "var" / "dagster_home"
    assert (home / "dagster.yaml").exists() and (home / "history" / "runs.db").exists()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SDPIPELINE_DUCKDB_MEMORY_LIMIT", "lots"),
        ("SDPIPELINE_DUCKDB_SQL_MEMORY_LIMIT", "two GB"),
        ("SDPIPELINE_DUCKDB_SQL_MEMORY_LIMIT", "1GB' ; DROP SCHEMA raw CASCADE ; --"),
        ("SDPIPELINE_AUTOMATION_INTERVAL_SECONDS", "1m"),
        ("SDPIPELINE_AUTOMATION", "yes"),
    ],
)
def test_an_unusable_setting_stops_the_run_before_it_starts_naming_it(
    tmp_path, monkeypatch, variable, value
):
    """A mistyped setting used to fail the steps that read it, one by one, with DuckDB's bare
    parser error, after the raw layer had been replaced: now nothing runs."""
    monkeypatch.setenv(variable, value)
    result = _run(["run"], tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{variable}=" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "var" / "warehouse.duckdb").exists()
    assert not list((tmp_path / "var" / "dagster_home").glob("storage/*"))


def test_a_memory_size_in_any_unit_duckdb_reads_is_taken(monkeypatch):
    for size in ("1.5GiB", "700MB", " 2gb ", "2 gigabytes"):
        monkeypatch.setenv("SDPIPELINE_DUCKDB_SQL_MEMORY_LIMIT", size)
        assert settings.duckdb_sql_memory_limit() == size.strip()


def test_generate_writes_a_delivery(tmp_path):
    result = _run(["generate", "--out", str(tmp_path / "d"), "--seed", "7"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "d" / "ex_post_2023" / "iedzivotaji_2023.csv").exists()
    assert (tmp_path / "d" / "ground_truth.json").exists()


def test_docs_are_current(tmp_path):
    assert _run(["docs", "--check"], tmp_path).returncode == 0


def _fenced_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```(?:bash|sh)?\n(.*?)```", text, flags=re.S)]


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    readme = (settings.REPO_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = _fenced_blocks(readme)
    run_command, test_command = blocks[0], blocks[1]
    assert "\n" not in run_command and "\n" not in test_command
    assert run_command.endswith("sdpipeline run")
    assert test_command.endswith("pytest")
    ci = (settings.REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci.splitlines()


def test_refresh_names_a_file_the_codebook_does_not_know(tmp_path):
    """Checksums of the known files cannot see an extra file; refresh must not call the
    delivery unchanged while one lies in a wave folder."""
    raw = tmp_path / "raw"
    shutil.copytree(SHIPPED_RAW, raw)
    lay_over("unknown_instrument_file", raw)
    result = _run(["refresh"], tmp_path, raw)
    assert result.returncode == 1
    assert "brivpratigie_2023.csv: matches no instrument of wave ex_post_2023" in result.stdout
    assert "nothing changed" not in result.stdout


def test_status_says_refresh_refuses_a_delivery_with_files_the_codebook_does_not_know(tmp_path):
    """``status`` must not promise that refresh rebuilds what it will refuse to touch, and a
    folder no wave names is listed once, not once per wave."""
    raw = tmp_path / "raw"
    shutil.copytree(SHIPPED_RAW, raw)
    shutil.copytree(raw / "ex_post_2023", raw / "ex_post_2023_v2")
    lay_over("unknown_instrument_file", raw)
    result = _run(["status"], tmp_path, raw)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.count("ex_post_2023_v2: folder ex_post_2023_v2/ is not a wave") == 1
    assert "brivpratigie_2023.csv: matches no instrument of wave ex_post_2023" in result.stdout
    last = result.stdout.strip().splitlines()[-1]
    assert "`sdpipeline refresh` refuses this delivery until the files above are moved" in last


@pytest.mark.parametrize(
    "args",
    [
        ["benchmark", "--scales", "1", "0"],
        ["generate", "--scale", "-3"],
        ["coverage", "--scale", "x"],
    ],
)
def test_a_scale_below_one_is_refused_as_the_command_is_read(args, capsys):
    from sdpipeline.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code == 2
    assert "is not a whole number of at least 1" in capsys.readouterr().err
