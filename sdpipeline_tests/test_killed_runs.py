"""A killed run is finished by the next refresh and marked failed, and the published report is
never a mix of two deliveries: ``sdpipeline refresh`` killed with SIGKILL at several moments
while an analyst keeps reading the report."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from sdpipeline import report_export, settings

from .conftest import HUNG_SECONDS, cli_env, clone, sdpipeline, wait_while_progressing
from .state_checks import (
    HEADS_2023,
    LEADERS_2017,
    REPORT_TABLES,
    assert_same_report,
    assert_status_agrees_with_the_ui,
    published,
    set_first_answer,
    status,
    ui_graphql,
)


def _refresh_started(folder: Path) -> subprocess.Popen:
    """`sdpipeline refresh --verbose` on ``folder``, its log readable line by line."""
    return subprocess.Popen(
        [sys.executable, "-m", "sdpipeline", "refresh", "--verbose"],
        env=cli_env(folder),
        cwd=settings.REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _refresh_killed_at(folder: Path, moment: Callable[[str], bool], staging: bool = False) -> str:
    """Start `sdpipeline refresh` and SIGKILL it at ``moment`` (a line of its log), or, with
    ``staging``, as soon as the report's staging folder appears; returns the log read."""
    process = _refresh_started(folder)
    store = report_export.publications_dir(folder / "var" / "reports" / "tables")
    log = []
    if staging:
        threading.Thread(target=lambda: log.extend(process.stdout), daemon=True).start()

        def staging_seen() -> bool | None:
            assert process.poll() is None, "".join(log)
            return any(".partial-" in p.name for p in store.iterdir()) or None

        wait_while_progressing(staging_seen, lambda: len(log), lambda: "".join(log), poll=0.01)
        process.send_signal(signal.SIGKILL)
    else:
        for line in process.stdout:
            log.append(line)
            if moment(line):
                process.send_signal(signal.SIGKILL)
                break
    assert process.wait(timeout=60) == -signal.SIGKILL, "".join(log)[-3000:]
    return "".join(log)


def _nth_step_start(prefix: str, n: int) -> Callable[[str], bool]:
    seen: list[str] = []

    def moment(line: str) -> bool:
        if " - STEP_START - " in line and f" - {prefix}" in line and "exports" not in line:
            seen.append(line)
        return len(seen) == n

    return moment


class Reader(threading.Thread):
    """An analyst reading the published report again and again while runs are killed."""

    def __init__(self, folder: Path) -> None:
        super().__init__(daemon=True)
        self.folder, self.seen, self.errors = folder, [], []
        self.stop = threading.Event()

    def run(self) -> None:
        link = self.folder / "var" / "reports" / "tables"
        while not self.stop.is_set():
            try:
                out = link.resolve()
                manifest = json.loads((out / report_export.MANIFEST).read_text("utf-8"))
                with duckdb.connect(str(out / report_export.DATABASE), read_only=True) as db:
                    files = dict(db.execute("SELECT * FROM report.source_files").fetchall())
                if files != manifest["files"]:
                    self.errors.append(f"{out}: database and manifest disagree")
                self.seen.append(tuple(sorted(files.items())))
            except Exception as error:
                self.errors.append(repr(error))
            time.sleep(0.05)


def test_killed_refreshes_are_finished_and_the_report_is_never_mixed(
    cli_pipeline, tmp_path, monkeypatch
):
    folder = clone(cli_pipeline, tmp_path / "killed")
    reference = clone(cli_pipeline, tmp_path / "uninterrupted")
    before = published(folder)
    for target in (folder, reference):
        set_first_answer(target / "raw" / LEADERS_2017, "q_pabalsti_pct", "7")
    assert sdpipeline(reference, "refresh").returncode == 0
    after = published(reference)
    assert after[0]["files"] != before[0]["files"]
    deliveries = {tuple(sorted(p[0]["files"].items())) for p in (before, after)}

    reader = Reader(folder)
    reader.start()
    moments = {
        "inside the raw layer": (_nth_step_start("raw__", 1), False),
        "between harmonised and indicators": (_nth_step_start("indicators__", 1), False),
        "between two report steps": (_nth_step_start("report__", 2), False),
        "during the exports": (None, True),
    }
    with ui_graphql(folder, monkeypatch) as ui:
        for name, (moment, staging) in moments.items():
            log = _refresh_killed_at(folder, moment, staging)
            assert_same_report(published(folder), before)
            code, report = status(folder)
            assert code == 1, name
            assert report["unfinished_runs"] == [], (name, report["unfinished_runs"])
            assert_status_agrees_with_the_ui(report, ui())
            assert "Traceback" not in log
        finished = sdpipeline(folder, "refresh")
        assert finished.returncode == 0, finished.stdout + finished.stderr
        code, report = status(folder)
        assert code == 0, report
        assert_status_agrees_with_the_ui(report, ui())
    reader.stop.set()
    reader.join()
    assert not reader.errors, reader.errors[:5]
    assert set(reader.seen) <= deliveries and tuple(sorted(before[0]["files"].items())) in set(
        reader.seen
    )
    assert_same_report(published(folder), after)
    with (
        duckdb.connect(str(folder / "var" / "warehouse.duckdb"), read_only=True) as a,
        duckdb.connect(str(reference / "var" / "warehouse.duckdb"), read_only=True) as b,
    ):
        for name in REPORT_TABLES:
            pd.testing.assert_frame_equal(
                a.execute(f"SELECT * FROM report.{name}").df(),
                b.execute(f"SELECT * FROM report.{name}").df(),
            )
    with dg.DagsterInstance.from_config(str(folder / "var" / "dagster_home")) as instance:
        runs = [r.dagster_run for r in instance.get_run_records()]
    killed = [r for r in runs if r.tags.get("sdpipeline/trigger") == "sdpipeline refresh"]
    statuses = [r.status for r in killed]
    assert statuses.count(dg.DagsterRunStatus.FAILURE) == 4, statuses
    assert statuses.count(dg.DagsterRunStatus.SUCCESS) == 1, statuses


def _checked_in(folder: Path, key: dg.AssetKey) -> tuple[str, bool]:
    """The run that built ``key``'s current table, and whether its checks reported in it."""
    with dg.DagsterInstance.from_config(str(folder / "var" / "dagster_home")) as instance:
        built = instance.get_latest_materialization_event(key)
        assert built is not None
        evaluations = instance.all_logs(
            built.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        )
    mine = [e for e in evaluations if e.dagster_event.asset_key == key]
    return built.run_id, bool(mine)


def _killed_before_its_checks(folder: Path, key: dg.AssetKey) -> str:
    """Kill a refresh the moment it records ``key``'s table, until its checks had not reported
    on it (the moment is some tens of milliseconds; a kill can come too late); the run's id."""
    step = f" - {key.to_python_identifier()} - ASSET_MATERIALIZATION - "
    for _ in range(5):
        _refresh_killed_at(folder, lambda line: step in line)
        run_id, checked = _checked_in(folder, key)
        if not checked:
            return run_id
    pytest.fail("five kills all came after the checks had reported")


def test_a_table_its_checks_never_reported_on_is_not_current(cli_pipeline, tmp_path):
    """A step records its table a moment before its blocking checks report. A run killed in
    that moment leaves a table that no contract has passed, FRESH in Dagster's terms: here 20
    heads of service, fewer than the design's minimum of 30. It must stay behind, and the next
    refresh must check it, fail, and publish nothing built on it."""
    folder = clone(cli_pipeline, tmp_path)
    before = published(folder)
    path = folder / "raw" / HEADS_2023
    lines = path.read_bytes().split(b"\r\n")
    path.write_bytes(b"\r\n".join(lines[:21]) + b"\r\n")
    key = dg.AssetKey(["validated", "heads_2023"])

    run_id = _killed_before_its_checks(folder, key)

    code, report = status(folder)
    assert code == 1
    heads = next(a for a in report["assets"] if a["asset"] == "validated/heads_2023")
    assert heads["dagster_status"] == "FRESH" and heads["behind"], heads
    assert any(
        f"has given no result on the table built in run {run_id[:8]}" in reason
        for reason in heads["reasons"]
    ), heads
    behind = {a["asset"] for a in report["assets"] if a["behind"]}
    assert {"harmonised/heads", "report/exports"} <= behind, behind
    for _ in range(2):
        failed = sdpipeline(folder, "refresh")
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "the design's minimum is 30 respondents; observed: 20" in failed.stdout
        assert "nothing changed" not in failed.stdout
    assert_same_report(published(folder), before)


def test_nothing_built_on_an_unchecked_table_is_published(cli_pipeline, tmp_path):
    """The report is published by ``reports_only`` from the warehouse as it is. A harmonised
    table recorded by a run killed before its blocking checks reported has passed no contract:
    the job must refuse to publish, naming it, and leave the report as it was."""
    folder = clone(cli_pipeline, tmp_path)
    before = published(folder)
    set_first_answer(folder / "raw" / LEADERS_2017, "q_pabalsti_pct", "7")
    key = dg.AssetKey(["harmonised", "leaders"])

    run_id = _killed_before_its_checks(folder, key)
    refused = sdpipeline(folder, "run", "--job", "reports_only")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "report/exports: not published: harmonised/leaders: blocking check" in refused.stdout
    assert f"has given no result on the table built in run {run_id[:8]}" in refused.stdout
    assert_same_report(published(folder), before)
    assert sdpipeline(folder, "refresh").returncode == 0
    assert status(folder)[0] == 0


def test_a_refresh_while_another_run_is_going_refuses_to_plan(cli_pipeline, tmp_path):
    """A run still going has written tables its checks have not yet passed: a plan made then
    said "nothing changed" (exit 0) or built them a second time. It now names the run and
    stops (exit 1); once the run has ended, the refresh plans as usual."""
    folder = clone(cli_pipeline, tmp_path / "busy")
    set_first_answer(folder / "raw" / HEADS_2023, "STAFF_TOTAL", "31")
    process = _refresh_started(folder)
    log = []
    for line in process.stdout:
        log.append(line)
        if " - STEP_START - " in line and "harmonised" in line:
            break
    second = sdpipeline(folder, "refresh")
    log.extend(process.stdout)
    assert process.wait(timeout=HUNG_SECONDS) == 0, "".join(log)[-3000:]
    assert second.returncode == 1, second.stdout + second.stderr
    assert "is started; what is behind is known only when it ends" in second.stdout
    assert "nothing changed" not in second.stdout
    after = sdpipeline(folder, "refresh")
    assert after.returncode == 0 and "nothing changed" in after.stdout, after.stdout
