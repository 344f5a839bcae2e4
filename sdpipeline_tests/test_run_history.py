"""Dagster's run history held open during a command (``sdpipeline/run_history.py``): the hold
is real (the logs are not checkpointed away after each event), other processes read and write
the same instance meanwhile, and a killed command leaves a history that opens cleanly, holds
every event committed before the kill and shows the run as unfinished."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.event_log import SqliteEventLogStorage

from sdpipeline import settings
from sdpipeline.run_history import ENGINES_KEPT, PooledSqliteEventLogStorage

CHILD = """
import sys

import dagster as dg

from sdpipeline.run_history import held_open
from sdpipeline_tests.test_run_history import first, second

with held_open(sys.argv[1]), dg.DagsterInstance.get() as instance:
    for _ in range(3):
        print(dg.materialize([first, second], instance=instance).run_id, flush=True)
    sys.stdin.readline()  # held open until killed
"""


@dg.asset
def first() -> int:
    return 1


@dg.asset
def second(first: int) -> int:
    return first + 1


def _instance(home: Path, monkeypatch: pytest.MonkeyPatch) -> dg.DagsterInstance:
    """The instance as another process (the UI, the daemon, the next command) opens it."""
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return dg.DagsterInstance.get()


def _databases_intact(home: Path) -> None:
    databases = sorted(home.rglob("*.db"))
    assert databases
    for database in databases:
        with sqlite3.connect(database) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok", database


def _materialised(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    return {
        entry.dagster_event.asset_key.to_user_string()
        for entry in instance.all_logs(run_id)
        if entry.dagster_event is not None and entry.dagster_event.is_step_materialization
    }


def test_history_held_open_is_shared_and_survives_a_kill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home)],
        env={**os.environ, "DAGSTER_HOME": str(home)},
        cwd=settings.REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        run_ids = [child.stdout.readline().strip() for _ in range(3)]
        assert all(run_ids), run_ids
        runs = home / "history" / "runs"
        # held: the logs stay (Dagster's own close of its last connection deletes them)
        assert (runs / "index.db-wal").exists()
        assert all((runs / f"{run_id}.db-wal").exists() for run_id in run_ids)

        # meanwhile another process (the UI, the daemon) reads and writes the same instance
        with _instance(home, monkeypatch) as instance:
            for run_id in run_ids:
                assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
                assert _materialised(instance, run_id) == {"first", "second"}
            assert dg.materialize([first, second], instance=instance).success
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    _databases_intact(home)
    with _instance(home, monkeypatch) as instance:
        finished = instance.get_runs()
        assert len(finished) == 4
        assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in finished)
        for run_id in run_ids:
            assert _materialised(instance, run_id) == {"first", "second"}
        latest = instance.get_latest_materialization_event(dg.AssetKey("second"))
        assert latest is not None


def test_a_killed_pipeline_run_leaves_its_history_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sdpipeline run`` killed mid-run: the next process sees the run unfinished (STARTED, not
    a success) and every materialisation it made before the kill, which refresh reads."""
    home = tmp_path / "home"
    env = {
        **os.environ,
        "SDPIPELINE_VAR_DIR": str(tmp_path / "var"),
        "SDPIPELINE_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
        "DAGSTER_HOME": str(home),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "sdpipeline", "run", "--verbose"],
        env=env,
        cwd=settings.REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    materialised: list[str] = []
    for line in process.stdout:
        if "- ASSET_MATERIALIZATION" in line:
            materialised.append(line.split(" - ASSET_MATERIALIZATION")[0].split(" - ")[-1])
        # the step after a materialisation starts only once its events are stored
        if materialised and "- STEP_START" in line:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL

    _databases_intact(home)
    with _instance(home, monkeypatch) as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.STARTED
        stored = {key.replace("/", "__") for key in _materialised(instance, run.run_id)}
        assert set(materialised) <= stored, (materialised, stored)
        for step in materialised:
            key = dg.AssetKey(step.split("__"))
            event = instance.get_latest_materialization_event(key)
            assert event is not None and event.run_id == run.run_id


def test_the_pooled_event_log_is_dagsters_own_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The project's instance stores events through ``PooledSqliteEventLogStorage``: in the
    same files as Dagster's default storage, which reads them (and writes what it reads back);
    at most ``ENGINES_KEPT`` databases are kept open across many runs, and disposing the
    instance closes every one (SQLite's last close removes each write-ahead log)."""
    pooled, plain = tmp_path / "pooled", tmp_path / "plain"
    monkeypatch.setenv("SDPIPELINE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("DAGSTER_HOME", str(pooled))
    from sdpipeline.cli import _use_project_instance

    assert _use_project_instance() == pooled
    runs = ENGINES_KEPT + 4
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, PooledSqliteEventLogStorage)
        run_ids = [dg.materialize([first, second], instance=instance).run_id for _ in range(runs)]
        assert len(storage._engines) == ENGINES_KEPT
        assert (pooled / "history" / "runs" / f"{run_ids[-1]}.db-wal").exists()
    assert not storage._engines
    assert not list((pooled / "history" / "runs").glob("*-wal"))

    plain.mkdir()
    (plain / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    shutil.copytree(pooled / "history", plain / "history")
    with _instance(plain, monkeypatch) as instance:
        assert type(instance.event_log_storage) is SqliteEventLogStorage
        assert {r.run_id for r in instance.get_runs()} == set(run_ids)
        for run_id in run_ids:
            assert _materialised(instance, run_id) == {"first", "second"}
        latest = dg.materialize([first, second], instance=instance).run_id
    shutil.copytree(plain / "history", pooled / "history", dirs_exist_ok=True)
    # opened from its folder while DAGSTER_HOME names another: the event log is the folder's
    with dg.DagsterInstance.from_config(str(pooled)) as instance:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        event = instance.get_latest_materialization_event(dg.AssetKey("second"))
        assert event is not None and event.run_id == latest
        assert instance.get_run_by_id(latest).status == dg.DagsterRunStatus.SUCCESS
    _databases_intact(pooled)
