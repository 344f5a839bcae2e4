"""Shared fixtures: the real codebook, the shipped delivery, and an isolated runtime folder so
no test touches the developer's own warehouse or Dagster instance."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import dagster as dg
import pytest
from filelock import FileLock

from sdpipeline import report_html, settings
from sdpipeline.codebook import Codebook, default_codebook
from sdpipeline.definitions import build_definitions
from sdpipeline.defs.resources import GreatExpectations, warehouse_resource

SHIPPED_RAW = settings.REPO_ROOT / "data" / "raw"

# How long a command may run before the test calls it hung. A safety net, not a speed test:
# CI once ran on a machine five times slower than usual, where a whole sample run took minutes.
HUNG_SECONDS = 1800
# How long a run may log nothing before a test waiting on it calls it stuck.
STALLED_SECONDS = 300

T = TypeVar("T")

SHIPPED_FILES = [
    pytest.param(instrument.name, wave, id=f"{instrument.name}-{wave}")
    for instrument in default_codebook().instruments.values()
    for wave in instrument.files
]


# The files that take longest, longest first: pytest-xdist hands whole files to its workers in
# this order as they free up (``--dist loadfile``: a file's tests run in order, on one worker,
# its module-scoped fixtures built once; ``--no-loadscope-reorder``: otherwise it puts the files
# with most tests first, and a one-test file of three minutes last), so that the long scenarios
# start first and the workers end together.
LONGEST_FIRST = (
    "test_automation.py",
    "test_killed_runs.py",
    "test_state.py",
    "test_bad_input.py",
    "test_ui.py",
    "test_cli.py",
    "test_waves.py",
    "test_operations.py",
    "test_protection.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a file is kept


@pytest.fixture(scope="session")
def codebook() -> Codebook:
    return default_codebook()


def isolate(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Runtime outputs and Dagster's instance under ``folder``; a copy of the shipped delivery
    as the raw folder, so a test may break files without touching the repo."""
    var = folder / "var"
    raw = folder / "raw"
    shutil.copytree(SHIPPED_RAW, raw)
    (var / "dagster_home").mkdir(parents=True)
    monkeypatch.setenv("SDPIPELINE_VAR_DIR", str(var))
    monkeypatch.setenv("SDPIPELINE_RAW_DIR", str(raw))
    monkeypatch.setenv("DAGSTER_HOME", str(var / "dagster_home"))
    return folder


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return isolate(tmp_path, monkeypatch)


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory):
    """One full materialisation of the shipped delivery, shared by read-only tests:
    (folder, warehouse path, result)."""
    folder = tmp_path_factory.mktemp("pipeline")
    with pytest.MonkeyPatch.context() as patch:
        isolate(folder, patch)
        warehouse = folder / "warehouse.duckdb"
        result = materialize(warehouse)
        yield folder, warehouse, result


def cli_env(folder: Path, **extra: str) -> dict[str, str]:
    """The environment of a command run on ``folder``'s delivery, warehouse and instance."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("SDPIPELINE_") and key != "DAGSTER_HOME"
    }
    return {
        **env,
        "SDPIPELINE_RAW_DIR": str(folder / "raw"),
        "SDPIPELINE_VAR_DIR": str(folder / "var"),
        "DAGSTER_HOME": str(folder / "var" / "dagster_home"),
        **extra,
    }


def sdpipeline(
    folder: Path, *args: str, timeout: int = HUNG_SECONDS, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``sdpipeline ARGS`` as a user runs it, on ``folder`` (``env``: settings besides)."""
    return subprocess.run(
        [sys.executable, "-m", "sdpipeline", *args],
        env=cli_env(folder, **(env or {})),
        cwd=settings.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def cli_pipeline(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """A folder holding a copy of the shipped delivery (``raw/``) and everything one
    ``sdpipeline run`` made of it (``var/``: warehouse, Dagster instance, report). Tests take
    a copy (``clone``) or only read it, so one folder serves every xdist worker: the first
    worker to need it makes it under a file lock, the others wait and use it (each worker
    making its own cost a minute of a core apiece)."""
    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        root = root.parent  # the run's folder, shared by its workers
    folder = root / "cli_pipeline"
    made = folder / ".made"
    with FileLock(f"{folder}.lock"):
        if not made.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a worker that failed to make it
            shutil.copytree(SHIPPED_RAW, folder / "raw")
            result = sdpipeline(folder, "run")
            assert result.returncode == 0, result.stdout + result.stderr
            made.touch()
    return folder


def clone(source: Path, folder: Path) -> Path:
    """A copy of a ``cli_pipeline`` folder to work on (the report's link stays relative)."""
    for part in ("raw", "var"):
        shutil.copytree(source / part, folder / part, symlinks=True)
    return folder


def materialize(
    warehouse: Path,
    selection: list | None = None,
    run_config: dict | None = None,
    instance: dg.DagsterInstance | None = None,
) -> dg.ExecuteInProcessResult:
    """The project's own assets, checks and warehouse resource, materialised for real into
    ``warehouse``."""
    defs = build_definitions()
    return dg.materialize(
        [*defs.assets, *defs.asset_checks],
        resources={
            "warehouse": warehouse_resource(warehouse),
            "great_expectations": GreatExpectations(),
        },
        selection=selection,
        run_config=run_config,
        instance=instance,
        raise_on_error=False,
    )


def wait_while_progressing(
    done: Callable[[], T | None],
    progress: Callable[[], object],
    explain: Callable[[], str],
    stalled_after: float = STALLED_SECONDS,
    poll: float = 1.0,
) -> T:
    """What ``done`` returns once it returns something other than None, polled every ``poll``
    seconds. Fails only when ``progress`` has stood still for ``stalled_after`` seconds: a test
    waiting on a real run must tell a stuck run from a slow machine, and fixed deadlines failed
    CI on a machine where every step still went on, only five times slower."""
    seen, since = progress(), time.monotonic()
    while (result := done()) is None:
        now = progress()
        if now != seen:
            seen, since = now, time.monotonic()
        elif time.monotonic() - since > stalled_after:
            pytest.fail(f"nothing happened in {stalled_after:.0f} s\n{explain()}")
        time.sleep(poll)
    return result


def logged_events(home: Path, run_ids: Iterable[str]) -> int:
    """How many events the runs have logged in the Dagster instance at ``home``: the progress
    of runs that another process executes."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return sum(len(instance.all_logs(run_id)) for run_id in run_ids)


def stop_session(process: subprocess.Popen, seconds: int = 30) -> None:
    """End a server started with ``start_new_session`` and everything it started (code
    servers, run workers): SIGTERM, then SIGKILL after ``seconds``."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def require(available: bool, reason: str) -> None:
    """Skip a test that needs a system tool on a machine without it, but never under CI:
    CI installs the tool (.ci/run), so a skip there would hide a failure."""
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: .ci/run should have installed it)")
    pytest.skip(reason)


def publication_masked(page: bytes) -> tuple[bytes, bytes]:
    """(the HTML report with its publication element emptied, that element)."""
    pattern = rb'<p id="%s">(.*?)</p>' % report_html.PUBLICATION_ID.encode()
    found = re.findall(pattern, page, re.S)
    assert len(found) == 1
    return re.sub(pattern, b"", page, flags=re.S), found[0]
