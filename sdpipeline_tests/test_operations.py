"""Leaving it running: nothing is rebuilt when nothing changed, a changed file rebuilds only
what depends on it, the sensor asks for exactly that, and concurrent runs queue."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import dagster as dg
import pytest

from sdpipeline import settings
from sdpipeline.benchmark import change_one_answer
from sdpipeline.codebook import default_codebook
from sdpipeline.definitions import build_definitions
from sdpipeline.defs.incremental import refresh_selection, stale_sources

from .conftest import isolate, materialize


def test_unchanged_delivery_rebuilds_nothing_and_a_changed_file_only_its_lineage(
    tmp_path, monkeypatch
):
    folder = isolate(tmp_path, monkeypatch)
    warehouse = folder / "warehouse.duckdb"
    codebook = default_codebook()
    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    (tmp_path / "instance").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as instance:
        assert len(stale_sources(instance, codebook)) == 17  # nothing materialised yet
        assert materialize(warehouse, instance=instance).success
        assert stale_sources(instance, codebook) == {}
        assert refresh_selection(graph, {}) == set()

        sensor = defs.resolve_sensor_def("delivery_sensor")
        context = dg.build_sensor_context(
            instance=instance, repository_def=defs.get_repository_def()
        )
        assert isinstance(sensor(context), dg.SkipReason)

        change_one_answer(
            folder / "raw" / "ex_ante_2017" / "pasvaldibu_vaditaji_2017.csv",
            "q_pabalsti_pct",
            ("61", "62"),
        )
        stale = stale_sources(instance, codebook)
        assert stale == {dg.AssetKey(["raw", "leaders_2017"]): "file changed"}
        selection = refresh_selection(graph, stale)
        names = {k.to_user_string() for k in selection}
        assert {
            "raw/leaders_2017",
            "validated/leaders_2017",
            "harmonised/leaders",
            "indicators/estimates",
            "report/exports",
        } <= names
        assert not names & {
            "raw/residents_2017",
            "harmonised/residents",
            "validated/clients_2023",
            "raw/leaders_2023",
            "reference/municipality_crosswalk",
        }
        request = sensor(
            dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def())
        )
        assert isinstance(request, dg.RunRequest)
        assert set(request.asset_selection) == selection

        result = materialize(warehouse, selection=sorted(selection), instance=instance)
        assert result.success
        rebuilt = {e.asset_key for e in result.get_asset_materialization_events()}
        assert rebuilt == selection
        assert stale_sources(instance, codebook) == {}


def test_schedules_sensors_and_jobs_are_defined_and_off_by_default():
    defs = build_definitions()
    sensor = defs.resolve_sensor_def("delivery_sensor")
    schedule = defs.resolve_schedule_def("weekly_full_refresh")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
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
    outputs = [run.communicate(timeout=300)[0] for run in runs]
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
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "var" / "reports" / "tables" / "report.html").exists()
