"""Trustworthy state, tried as a data engineer meets it: through the command line, against the
instance Dagster's UI reads. A failed delivery is not forgotten, a killed run is finished by
the next refresh and marked failed, the published report is never a mix of two deliveries, and
`sdpipeline status` gives the same answer as the UI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from sdpipeline import report_export, settings
from sdpipeline.indicators import default_catalogue
from sdpipeline.ingest import sha256_of

from .conftest import cli_env, clone, sdpipeline, stop_session
from .test_bad_input import lay_over

LEADERS_2017 = Path("ex_ante_2017") / "pasvaldibu_vaditaji_2017.csv"
HEADS_2023 = Path("ex_post_2023") / "dienestu_vaditaji_2023.csv"
REPORT_TABLES = list(default_catalogue().report.tables)


def set_first_answer(path: Path, column: str, value: str) -> None:
    """The first respondent's answer in ``column`` of a delivered CSV set to ``value`` (a
    contractor's correction), the file's bytes otherwise as they were."""
    lines = path.read_bytes().split(b"\r\n")
    header, cells = lines[0].split(b";"), lines[1].split(b";")
    index = [h.decode("ascii", "ignore").lstrip("\ufeff") for h in header].index(column)
    cells[index] = value.encode("ascii")
    lines[1] = b";".join(cells)
    path.write_bytes(b"\r\n".join(lines))


def status(folder: Path) -> tuple[int, dict]:
    result = sdpipeline(folder, "status", "--json")
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout)


def states(report: dict) -> dict[str, dict]:
    return {a["asset"]: a for a in report["assets"]}


@contextmanager
def ui_graphql(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], dict]]:
    """The UI's GraphQL (the webserver's own schema and resolvers, over a code server of the
    project's workspace) on ``folder``'s instance: a function giving each asset's stale status
    as the UI shows it."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster_graphql.test.utils import execute_dagster_graphql

    for key, value in cli_env(folder).items():
        if key.startswith("SDPIPELINE_") or key == "DAGSTER_HOME":
            monkeypatch.setenv(key, value)
    target = WorkspaceFileTarget(paths=[str(settings.REPO_ROOT / "workspace.yaml")])
    with (
        dg.DagsterInstance.get() as instance,
        WorkspaceProcessContext(instance, target) as process,
    ):

        def stale() -> dict[str, str]:
            result = execute_dagster_graphql(
                process.create_request_context(),
                "{ assetNodes { assetKey { path } staleStatus } }",
            )
            assert not result.errors, result.errors
            return {
                "/".join(n["assetKey"]["path"]): n["staleStatus"] for n in result.data["assetNodes"]
            }

        yield stale


def assert_status_agrees_with_the_ui(report: dict, ui: dict[str, str]) -> None:
    mine = {a["asset"]: a["dagster_status"] for a in report["assets"]}
    assert mine == ui


def status_as_the_ui(folder: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, dict]:
    """``status``, after checking that it gives every asset the UI's stale status."""
    code, report = status(folder)
    with ui_graphql(folder, monkeypatch) as ui:
        assert_status_agrees_with_the_ui(report, ui())
    return code, report


def published(folder: Path) -> tuple[dict, dict[str, pd.DataFrame], dict[str, bytes]]:
    """The published report as a reader finds it: manifest, the report database's tables, and
    the other files' bytes (the harmonised datasets published with it included)."""
    out = (folder / "var" / "reports" / "tables").resolve()
    manifest = json.loads((out / report_export.MANIFEST).read_text(encoding="utf-8"))
    with duckdb.connect(str(out / report_export.DATABASE), read_only=True) as connection:
        tables = {
            name: connection.execute(f'SELECT * FROM report."{name}"').df()
            for name in REPORT_TABLES
        }
    files = {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in (report_export.MANIFEST, report_export.DATABASE)
    }
    return manifest, tables, files


def assert_same_report(a: tuple, b: tuple) -> None:
    assert a[0]["files"] == b[0]["files"]
    assert any(name.startswith("datasets/") and name.endswith(".sav") for name in a[2])
    for name in REPORT_TABLES:
        pd.testing.assert_frame_equal(a[1][name], b[1][name])
    assert a[2].keys() == b[2].keys()
    for name in a[2]:
        assert a[2][name] == b[2][name], name


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


def shutil_copy(source: Path, raw: Path) -> None:
    target = raw / source.parent.name / source.name
    target.write_bytes(source.read_bytes())


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


def _refresh_killed_at(folder: Path, moment: Callable[[str], bool], staging: bool = False) -> str:
    """Start `sdpipeline refresh` and SIGKILL it at ``moment`` (a line of its log), or, with
    ``staging``, as soon as the report's staging folder appears; returns the log read."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sdpipeline", "refresh", "--verbose"],
        env=cli_env(folder),
        cwd=settings.REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    store = report_export.publications_dir(folder / "var" / "reports" / "tables")
    log = []
    if staging:
        threading.Thread(target=lambda: log.extend(process.stdout), daemon=True).start()
        deadline = time.monotonic() + 300
        while not any(".partial-" in p.name for p in store.iterdir()):
            assert process.poll() is None and time.monotonic() < deadline, "".join(log)
            time.sleep(0.01)
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


def _automation_runs(home: Path) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return [
            r.dagster_run
            for r in instance.get_run_records(
                dg.RunsFilter(tags={"sdpipeline/trigger": "automation"}), ascending=True
            )
        ]


def test_each_correction_of_a_file_triggers_exactly_one_automation_run(
    cli_pipeline, tmp_path, monkeypatch
):
    """The real daemon, with both sensors on: three successive corrections of one file, each
    rebuilt by exactly one run of that file's lineage (the second correction of a file was
    skipped as 'already completed' when the run key did not depend on the content)."""
    folder = clone(cli_pipeline, tmp_path)
    home = folder / "var" / "dagster_home"
    interval = 3
    env = cli_env(
        folder,
        SDPIPELINE_AUTOMATION="on",
        SDPIPELINE_AUTOMATION_INTERVAL_SECONDS=str(interval),
    )
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", "workspace.yaml"],
        env=env,
        cwd=settings.REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    path = folder / "raw" / LEADERS_2017
    try:
        for count, value in enumerate(("11", "22", "33"), start=1):
            set_first_answer(path, "q_pabalsti_pct", value)
            deadline = time.monotonic() + 420
            while True:
                runs = _automation_runs(home)
                if len(runs) == count and runs[-1].is_finished:
                    break
                assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
                assert time.monotonic() < deadline, (tmp_path / "daemon.log").read_text()[-3000:]
                time.sleep(1)
            time.sleep(4 * interval)  # a few more ticks: no second run for the same content
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
        log.close()
    code, report = status_as_the_ui(folder, monkeypatch)
    assert code == 0, report
