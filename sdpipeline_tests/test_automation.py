"""Automation under the real daemon: each new content of a delivered file triggers exactly one
run of its lineage, and the report it publishes names that content."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from sdpipeline import settings
from sdpipeline.codebook import default_codebook
from sdpipeline.defs.automation import build_automation
from sdpipeline.ingest import sha256_of

from .conftest import cli_env, clone, logged_events, stop_session, wait_while_progressing
from .state_checks import (
    LEADERS_2017,
    SPECIALISTS_2017,
    published,
    set_first_answer,
    status_as_the_ui,
)


def _automation_runs(home: Path) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return [
            r.dagster_run
            for r in instance.get_run_records(
                dg.RunsFilter(tags={"sdpipeline/trigger": "automation"}), ascending=True
            )
        ]


# What the daemon logs as each sensor's tick starts or ends: the file sensor's, and the
# automation condition sensor's
TICKS = ("Checking for new runs for sensor: delivery_files", "Finished auto-materialization tick")


def _ticks(log: Path) -> tuple[int, ...]:
    text = log.read_text()
    return tuple(text.count(tick) for tick in TICKS)


def _three_more_ticks(log: Path) -> None:
    """Wait until each sensor has logged three more ticks than it had (a slow machine's
    ticks are further apart than their interval)."""
    ended = _ticks(log)
    wait_while_progressing(
        lambda: all(n >= e + 3 for n, e in zip(_ticks(log), ended, strict=True)) or None,
        lambda: _ticks(log),
        lambda: log.read_text()[-3000:],
    )


def _daemon(folder: Path, log: Path, interval: int = 3, settle: int = 1) -> subprocess.Popen:
    """The real daemon on ``folder`` with both sensors on, logging to ``log``."""
    env = cli_env(
        folder,
        SDPIPELINE_AUTOMATION="on",
        SDPIPELINE_AUTOMATION_INTERVAL_SECONDS=str(interval),
        SDPIPELINE_AUTOMATION_SETTLE_SECONDS=str(settle),
    )
    with log.open("w") as out:
        return subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", "workspace.yaml"],
            env=env,
            cwd=settings.REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_for_runs(daemon: subprocess.Popen, home: Path, log: Path, count: int) -> list:
    """The automation runs once there are ``count`` and the last has ended."""

    def finished() -> list[dg.DagsterRun] | None:
        assert daemon.poll() is None, log.read_text()[-3000:]
        runs = _automation_runs(home)
        return runs if len(runs) == count and runs[-1].is_finished else None

    return wait_while_progressing(
        finished,
        lambda: logged_events(home, [r.run_id for r in _automation_runs(home)]),
        lambda: log.read_text()[-3000:],
    )


def test_each_correction_of_a_file_triggers_exactly_one_automation_run(
    cli_pipeline, tmp_path, monkeypatch
):
    """The real daemon, with both sensors on: three successive corrections of one file, each
    rebuilt by exactly one run of that file's lineage (the second correction of a file was
    skipped as 'already completed' when the run key did not depend on the content)."""
    folder = clone(cli_pipeline, tmp_path)
    home = folder / "var" / "dagster_home"
    daemon = _daemon(folder, tmp_path / "daemon.log")
    path = folder / "raw" / LEADERS_2017

    try:
        for count, value in enumerate(("11", "22", "33"), start=1):
            set_first_answer(path, "q_pabalsti_pct", value)
            _wait_for_runs(daemon, home, tmp_path / "daemon.log", count)
            _three_more_ticks(tmp_path / "daemon.log")  # no second run for the same content
            runs = _automation_runs(home)
            assert len(runs) == count, [r.run_id for r in runs]
            run = runs[-1]
            assert run.status == dg.DagsterRunStatus.SUCCESS, (tmp_path / "daemon.log").read_text()
            rebuilt = {k.to_user_string() for k in run.asset_selection}
            assert {
                "raw/leaders_2017",
                "validated/leaders_2017",
                "harmonised/leaders",
                "indicators/estimates",
                "report/exports",
            } <= rebuilt
            assert not rebuilt & {"raw/leaders_2023", "raw/residents_2017", "harmonised/clients"}
            assert published(folder)[0]["files"]["pasvaldibu_vaditaji_2017.csv"] == sha256_of(path)
    finally:
        stop_session(daemon, seconds=60)
    code, report = status_as_the_ui(folder, monkeypatch)
    assert code == 0, report


def test_after_a_rejected_file_its_correction_is_published_by_automation(
    cli_pipeline, tmp_path, monkeypatch
):
    """A bad file fails its automation run before the report's blocking check runs, which
    left the check without a passed result; the check waited on its own result, so the
    corrected file's run rebuilt the tables and never the check nor the report (SUCCESS, with
    the old report still published). The correction must be published."""
    folder = clone(cli_pipeline, tmp_path)
    home = folder / "var" / "dagster_home"
    path = folder / "raw" / SPECIALISTS_2017
    good = path.read_bytes()
    bad = Path(__file__).parent / "bad_deliveries" / "wrong_encoding" / SPECIALISTS_2017
    daemon = _daemon(folder, tmp_path / "daemon.log")
    try:
        shutil.copy(bad, path)
        runs = _wait_for_runs(daemon, home, tmp_path / "daemon.log", 1)
        assert runs[-1].status == dg.DagsterRunStatus.FAILURE
        lines = good.split(b"\r\n")
        fields = lines[1].split(b";")
        fields[3] = b"1" if fields[3] != b"1" else b"2"  # a corrected answer: new content
        lines[1] = b";".join(fields)
        path.write_bytes(b"\r\n".join(lines))
        runs = _wait_for_runs(daemon, home, tmp_path / "daemon.log", 2)
        assert runs[-1].status == dg.DagsterRunStatus.SUCCESS
        rebuilt = {k.to_user_string() for k in runs[-1].asset_selection}
        assert "report/exports" in rebuilt, sorted(rebuilt)
        assert published(folder)[0]["files"]["specialisti_2017.csv"] == sha256_of(path)
    finally:
        stop_session(daemon, seconds=60)
    code, report = status_as_the_ui(folder, monkeypatch)
    assert code == 0, report


def test_a_file_still_being_written_is_not_taken_in(cli_pipeline, tmp_path, monkeypatch):
    """The file sensor, evaluated by Dagster on the installation: a file changed a moment ago
    may be half-copied (a slow upload checksummed at 90 % was published as the delivery), so
    it waits until the file has been left unchanged for the settle time, saying why."""
    folder = clone(cli_pipeline, tmp_path)
    for name, value in cli_env(folder, SDPIPELINE_AUTOMATION_SETTLE_SECONDS="60").items():
        if name.startswith("SDPIPELINE_") or name == "DAGSTER_HOME":
            monkeypatch.setenv(name, value)
    sensors, _ = build_automation(default_codebook())
    files = next(s for s in sensors if s.name == "delivery_files")
    path = folder / "raw" / LEADERS_2017
    set_first_answer(path, "q_pabalsti_pct", "44")
    with dg.DagsterInstance.from_config(str(folder / "var" / "dagster_home")) as instance:
        waiting = files(dg.build_sensor_context(instance=instance))
        assert isinstance(waiting, dg.SkipReason), waiting
        assert "1 changed file(s) written less than 60 s ago" in waiting.skip_message
        assert str(path) in waiting.skip_message
        settled = time.time() - 61
        os.utime(path, (settled, settled))
        taken = files(dg.build_sensor_context(instance=instance))
        assert [o.asset_key.to_user_string() for o in taken.asset_events] == [
            "delivery/leaders_2017"
        ]
