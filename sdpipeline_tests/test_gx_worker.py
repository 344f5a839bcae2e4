"""Great Expectations in its own process: the same outcomes as in the run's process, clear
errors when GX or the worker fails, and no worker outliving its run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from sdpipeline.defs.resources import GreatExpectations
from sdpipeline.validation import gx_runner, gx_worker
from sdpipeline.validation.expectations import Expectation, Suite, table_suite

from .test_validation import checked


def _suite(name: str = "worker_probe") -> Suite:
    return Suite(
        name,
        [
            Expectation("ExpectTableRowCountToBeBetween", {"min_value": 2}, "ERROR", "rows"),
            Expectation(
                "ExpectColumnValuesToBeInSet",
                {"column": "code", "value_set": [1, 2]},
                "WARN",
                "codes of the scale",
            ),
        ],
        index_columns=["_source_row"],
    )


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"_source_row": [1, 2, 3, 4], "code": [1, 2, 9, 2], "comment": ["a", None, "c", "d"]}
    )


def _ended(pid: int, within_seconds: float) -> bool:
    """Gone, or a zombie (an orphan's end is reaped by whatever adopted it, if anything)."""
    deadline = time.monotonic() + within_seconds
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return True
        if "State:\tZ" in status:
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def worker(isolated):
    started = gx_worker.GXWorker()
    yield started
    started.close()


def _outcomes(gx, suite: Suite, frame: pd.DataFrame, run: str) -> list:
    """``suite`` checked on ``frame`` by ``gx`` (a worker or the resource), waited for."""
    return gx.start_suites([(suite, frame)], checked(run)).result()


def test_a_suite_names_every_column_it_reads(codebook):
    suite = table_suite(codebook.instruments["residents"], "ex_post_2023", codebook, "t")
    keys = {e.kwargs["column"] for e in suite.expectations if "column" in e.kwargs}
    assert keys and suite.columns() == [*sorted(keys, key=suite.columns().index), "_source_row"]
    assert _suite().columns() == ["code", "_source_row"]


def test_the_worker_gives_what_gx_gives_in_the_run_s_own_process(worker):
    """The worker sees only the columns the suite reads; the outcomes, down to the failing
    rows GX names, are the same as GX's on the whole table."""
    through_worker = _outcomes(worker, _suite(), _frame(), "run-w")
    in_process = gx_runner.run_suite(_suite(), _frame(), checked("run-p"))
    assert through_worker == in_process
    failing = [o for o in through_worker if not o.passed]
    assert [(o.check_name, o.failing_count) for o in failing] == [
        ("expect_column_values_to_be_in_set(code)", 1)
    ]
    assert failing[0].details["partial_unexpected_index_list"] == [{"_source_row": 3, "code": 9}]
    index = worker.publish_data_docs("run-w")
    assert index == gx_runner.data_docs_dir() / "index.html" and index.exists()


def test_suites_sent_together_are_each_checked_on_their_own_frame_in_turn(worker):
    """A step sends its table's suites in one request: the outcomes are each suite's, in the
    order sent, as GX gives them one suite at a time; each frame is cut to its own suite's
    columns (the second suite reads a column the first does not)."""
    other = Suite(
        "other_probe",
        [Expectation("ExpectColumnValuesToNotBeNull", {"column": "comment"}, "WARN", "said")],
        index_columns=["_source_row"],
    )
    checks = [(_suite(), _frame()), (other, _frame()), (_suite("third_probe"), _frame().head(2))]
    together = worker.start_suites(checks, checked("run-t")).result()
    one_by_one = [o for s, f in checks for o in gx_runner.run_suite(s, f, checked("run-o"))]
    assert repr(together) == repr(one_by_one)  # the missing comment is NaN, unequal to itself
    assert [(o.check_name, o.passed) for o in together] == [
        ("expect_table_row_count_to_be_between", True),
        ("expect_column_values_to_be_in_set(code)", False),
        ("expect_column_values_to_not_be_null(comment)", False),
        ("expect_table_row_count_to_be_between", True),
        ("expect_column_values_to_be_in_set(code)", True),
    ]


def test_a_gx_failure_names_the_suite_and_the_worker_carries_on(worker):
    broken = Suite("broken_probe", [Expectation("ExpectNoSuchThing", {}, "ERROR", "typo")])
    with pytest.raises(gx_worker.GXWorkerError, match="run_suites of broken_probe") as raised:
        _outcomes(worker, broken, _frame(), "run")
    assert "ExpectNoSuchThing" in str(raised.value)
    assert all(o.passed for o in _outcomes(worker, _suite(), _frame().head(2), "run"))


def test_a_started_suite_keeps_its_own_answer_when_the_next_is_sent(worker):
    # The step goes on while GX checks; a second request first takes the first one's answer.
    failing = worker.start_suites([(_suite(), _frame())], checked("run"))
    passing = worker.start_suites([(_suite("second_probe"), _frame().head(2))], checked("run"))
    assert all(o.passed for o in passing.result())
    assert not all(o.passed for o in failing.result())
    assert all(o.passed for o in _outcomes(worker, _suite(), _frame().head(2), "run"))


def test_a_worker_that_died_is_reported_with_its_exit_code(worker):
    _outcomes(worker, _suite(), _frame(), "run")
    os.kill(worker.pid, signal.SIGKILL)
    with pytest.raises(gx_worker.GXWorkerError, match="stopped with exit code -9"):
        _outcomes(worker, _suite(), _frame(), "run")


def test_a_run_takes_the_process_s_worker_and_a_dead_one_is_replaced(isolated):
    resource = GreatExpectations()
    with pytest.raises(RuntimeError, match="inside a Dagster run"):
        _outcomes(resource, _suite(), _frame(), "run")
    with resource.yield_for_execution(dg.build_init_resource_context()) as running:
        first = running._running()
        assert not all(o.passed for o in _outcomes(running, _suite(), _frame(), "run"))
    with resource.yield_for_execution(dg.build_init_resource_context()) as running:
        assert running._running() is first and first.alive()  # kept for the next run
    os.kill(first.pid, signal.SIGKILL)
    # dead once it can be reaped: a process's first thread shows as a zombie while the others
    # are still ending, and on a loaded machine that can take a while
    deadline = time.monotonic() + 60
    while first.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not first.alive()
    with resource.yield_for_execution(dg.build_init_resource_context()) as running:
        assert running._running() is not first
        assert all(o.passed for o in _outcomes(running, _suite(), _frame().head(2), "run"))


def test_the_worker_is_let_go_once_the_run_has_published_its_data_docs(isolated):
    """The audit step publishes the Data Docs after every checked table; the worker, and the
    memory it holds, goes then, not at the end of the analyses. A check after it still runs."""
    resource = GreatExpectations()
    with resource.yield_for_execution(dg.build_init_resource_context()) as running:
        first = running._running()
        _outcomes(running, _suite(), _frame(), "run-p")
        assert running.publish_data_docs("run-p").exists()
        deadline = time.monotonic() + 60  # it ends by itself once its pipe is closed
        while first.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not first.alive()
        assert all(o.passed for o in _outcomes(running, _suite(), _frame().head(2), "run-p"))
        second = running._running()
        assert second is not first and second.alive()
    with resource.yield_for_execution(dg.build_init_resource_context()) as running:
        assert running._running() is second  # kept for the next run, as before


def test_the_worker_writes_where_the_caller_s_settings_say(worker, isolated, monkeypatch):
    _outcomes(worker, _suite("first_place"), _frame(), "run-1")
    first = gx_runner.gx_root()
    monkeypatch.setenv("SDPIPELINE_VAR_DIR", str(isolated / "elsewhere"))
    _outcomes(worker, _suite("second_place"), _frame(), "run-2")
    second = gx_runner.gx_root()
    assert first != second
    stored = {root: {p.stem for p in root.rglob("*.json")} for root in (first, second)}
    assert "first_place" in stored[first] and "first_place" not in stored[second]
    assert "second_place" in stored[second] and "second_place" not in stored[first]


def test_the_worker_ends_by_itself_when_its_run_is_killed(isolated):
    run = (
        "import os; from sdpipeline.validation import gx_worker; "
        "w = gx_worker.GXWorker(); print(w.pid, flush=True); os._exit(0)"
    )
    out = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True, check=True)
    assert _ended(int(out.stdout), within_seconds=60)
