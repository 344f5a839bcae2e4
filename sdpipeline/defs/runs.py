"""The runs' own bookkeeping: which process executes each run, so that a killed run is marked
failed; what triggered a run and why; and what each failed step said.

The gap filled: Dagster marks a run failed when its process dies only while something watches
that process. A run launched from the UI or by automation is watched by its code server, which
marks it failed if the run's process dies while the server lives; Dagster's run monitoring
(on in the instance's ``dagster.yaml``) fails runs that never started. Nothing watches a run
that a command executes in its own process, nor a UI run whose code server was killed with it:
such a run stayed STARTED for ever. Every run therefore records its process (host, pid and the
process's start time, so a reused pid is not mistaken for it), and ``sdpipeline run``,
``refresh``, ``status`` and ``ui`` mark a run whose process is gone as failed when they start.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable
from pathlib import Path

import dagster as dg
from dagster._core.errors import DagsterAssetCheckFailedError

TRIGGER_TAG = "sdpipeline/trigger"
REASON_TAG = "sdpipeline/reason"
HOST_TAG = "sdpipeline/host"
PID_TAG = "sdpipeline/pid"
PROCESS_START_TAG = "sdpipeline/process_start"
UNFINISHED = [
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def _start_time(pid: int) -> str | None:
    """When the process started, in clock ticks since boot (``/proc/<pid>/stat``), or None if
    there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def process_tags() -> dict[str, str]:
    """The tags that identify the process executing a run (see the module's docstring)."""
    pid = os.getpid()
    return {
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(pid),
        PROCESS_START_TAG: _start_time(pid) or "",
    }


def record_process(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    """Tag ``run`` with this process, unless it already carries it."""
    tags = process_tags()
    if any(run.tags.get(k) != v for k, v in tags.items()):
        instance.add_run_tags(run.run_id, tags)


def process_gone(run: dg.DagsterRun) -> bool:
    """True when the run's recorded process is known to have ended on this host."""
    pid, started = run.tags.get(PID_TAG), run.tags.get(PROCESS_START_TAG)
    if pid is None or run.tags.get(HOST_TAG) != socket.gethostname():
        return False
    return _start_time(int(pid)) != started


def mark_killed_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """Mark failed every unfinished run whose process is gone; returns those runs."""
    killed = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=UNFINISHED)):
        run = record.dagster_run
        if process_gone(run):
            instance.report_run_failed(
                run,
                f"the run's process (pid {run.tags[PID_TAG]} on {run.tags[HOST_TAG]}) ended "
                "without finishing the run: it was killed or the machine stopped. Marked failed "
                "by sdpipeline; `sdpipeline refresh` rebuilds what it left behind.",
            )
            killed.append(run)
    return killed


def _asset_names(graph) -> dict[str, str]:
    return {key.to_python_identifier(): key.to_user_string() for key in graph.get_all_asset_keys()}


def _innermost(error) -> str:
    while error is not None and error.cause is not None:
        error = error.cause
    return error.message.strip() if error is not None else "unknown error"


def failure_messages(events: Iterable[dg.EventLogEntry], graph) -> list[str]:
    """Each failed step's own message, under its asset's key: a ``Failure``'s description, the
    failed blocking checks' descriptions, or the innermost error's message (never a trace)."""
    names = _asset_names(graph)
    failed_checks: dict[str, list[str]] = {}
    failures = []
    for entry in events:
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.asset_check_evaluation_data
            if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
                failed_checks.setdefault(event.step_key, []).append(
                    f"check {evaluation.check_name} failed: "
                    f"{evaluation.description or 'see the check in the UI'}"
                )
        elif event.is_step_failure:
            failures.append(event)
    messages = []
    for event in failures:
        data = event.step_failure_data
        name = names.get(event.step_key, event.step_key)
        error = data.error
        blocking = error is not None and error.cls_name == DagsterAssetCheckFailedError.__name__
        if blocking and failed_checks.get(event.step_key):
            messages += [f"{name}: {text}" for text in failed_checks[event.step_key]]
            continue
        text = data.user_failure_data.description if data.user_failure_data else None
        messages.append(f"{name}: {text or _innermost(error)}")
    return messages


def run_failure_messages(instance: dg.DagsterInstance, run_id: str, graph) -> list[str]:
    """``failure_messages`` of a run, read from the instance's event log."""
    return failure_messages(
        instance.all_logs(
            run_id,
            of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.ASSET_CHECK_EVALUATION},
        ),
        graph,
    )


def run_warnings(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """What the run's steps logged as warnings (quarantined rows, columns not in the codebook),
    with the step's asset."""
    warnings = []
    for entry in instance.all_logs(run_id):
        if entry.dagster_event is None and entry.level == logging.WARNING and entry.user_message:
            step = entry.step_key or ""
            warnings.append(f"{step.replace('__', '/', 1)}: {entry.user_message}".lstrip(": "))
    return warnings
