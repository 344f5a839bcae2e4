"""Leaving it running: the automation is defined and off by default, jobs run by name, and
concurrent runs queue. (What is behind, and what automation and refresh rebuild, is tried in
test_state.py, test_killed_runs.py and test_automation.py.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import dagster as dg
import pytest

from sdpipeline import settings
from sdpipeline.benchmark import CHANGED_FILE, change_one_answer
from sdpipeline.definitions import build_definitions

from .conftest import HUNG_SECONDS, clone, sdpipeline


def test_schedules_sensors_and_jobs_are_defined_and_off_by_default():
    defs = build_definitions()
    for name in ("delivery_files", "delivery_automation"):
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.STOPPED
    schedule = defs.resolve_schedule_def("weekly_full_refresh")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.execution_timezone == "Europe/Riga"
    for name in ("full_refresh", "reports_only", "wave_ex_ante_2017", "wave_ex_post_2023"):
        assert defs.resolve_job_def(name)
    wave = defs.resolve_job_def("wave_ex_ante_2017").asset_layer.executable_asset_keys
    assert dg.AssetKey(["raw", "residents_2017"]) in wave
    assert dg.AssetKey(["raw", "residents_2023"]) not in wave


def test_concurrent_runs_queue_on_the_warehouse_instead_of_failing(pipeline_run, tmp_path):
    _, baseline, _ = pipeline_run
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(baseline, warehouse)
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {
        **os.environ,
        "SDPIPELINE_WAREHOUSE": str(warehouse),
        "SDPIPELINE_VAR_DIR": str(tmp_path / "var"),
        "DAGSTER_HOME": str(home),
    }
    command = [sys.executable, "-m", "sdpipeline", "run", "--job", "reports_only"]
    runs = [
        subprocess.Popen(
            command,
            env=env,
            cwd=settings.REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=HUNG_SECONDS)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert all("job reports_only succeeded" in out for out in outputs)
    assert not any("lock" in out.lower() and "error" in out.lower() for out in outputs)


@pytest.mark.parametrize("job", ["reports_only"])
def test_jobs_run_from_the_command_line(job, pipeline_run, tmp_path):
    _, baseline, _ = pipeline_run
    shutil.copy(baseline, tmp_path / "warehouse.duckdb")
    env = {
        **os.environ,
        "SDPIPELINE_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
        "SDPIPELINE_VAR_DIR": str(tmp_path / "var"),
        "DAGSTER_HOME": str(tmp_path / "home"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "sdpipeline", "run", "--job", job],
        env=env,
        cwd=settings.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=HUNG_SECONDS,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "var" / "reports" / "tables" / "report.html").exists()


def test_a_job_that_leaves_out_the_delivery_says_what_it_left_behind(cli_pipeline, tmp_path):
    """``--job reports_only`` builds the report from the tables as they are: it succeeds, and
    when a delivered file changed since it was taken in, says which assets are behind the
    files on disk instead of letting its success stand for the delivery's."""
    folder = clone(cli_pipeline, tmp_path)
    current = sdpipeline(folder, "run", "--job", "reports_only")
    assert current.returncode == 0, current.stdout + current.stderr
    assert "behind the delivery on disk" not in current.stdout
    change_one_answer(folder / "raw" / CHANGED_FILE[0] / CHANGED_FILE[1], "SHORTAGE", ("1", "2"))
    behind = sdpipeline(folder, "run", "--job", "reports_only")
    assert behind.returncode == 0, behind.stdout + behind.stderr
    assert "job reports_only succeeded" in behind.stdout
    assert (
        "assets are behind the delivery on disk and job reports_only did not rebuild them"
        in behind.stdout
    ), behind.stdout
    assert "  raw/heads_2023: " in behind.stdout
    assert "sdpipeline refresh rebuilds what is behind." in behind.stdout


def test_a_wave_job_names_a_missing_file_of_another_wave_it_left_behind(cli_pipeline, tmp_path):
    """``--job wave_ex_post_2023`` reads the 2023 files only, so a 2017 file missing does not
    fail it; but its note must name that file, not list nothing under "what is behind"."""
    folder = clone(cli_pipeline, tmp_path)
    (folder / "raw" / "ex_ante_2017" / "specialisti_2017.csv").unlink()
    result = sdpipeline(folder, "run", "--job", "wave_ex_post_2023")
    assert result.returncode == 0, result.stdout + result.stderr
    note = result.stdout.split("sdpipeline: note: ", 1)[1]
    assert "  delivery/specialists_2017: the file " in note and "is not there" in note, note
