"""Great Expectations in a process of its own, started as soon as a run starts.

Importing GX takes about three seconds: longer than the whole raw layer of the sample delivery
takes to load. In a second process the import runs on the machine's other core while Dagster
starts the run and loads the raw files, instead of holding up the first validated table; the
run's own process never loads GX at all. Each table crosses the pipe cut down to the columns its
suite reads, so the worker holds small frames, not copies of the delivery.

A process keeps one worker for every run it executes (the command line runs one; the tests run
many) until a run has published its Data Docs: the audit step does that after every checked
table, so the rest of the run has no use for it, and the next run starts another (``release``).
``sdpipeline run`` starts it before it loads Dagster, ``refresh`` once it knows there is
something to rebuild (a refresh with nothing to do never starts it); a run launched from the
UI, by a sensor or a schedule starts it as its process loads the code location
(``start_if_run_worker``), so that GX's import overlaps Dagster's start-up there too. Each
request carries the caller's ``SDPIPELINE_*`` settings, so the worker writes to the GX project
and Data Docs site the caller would. The worker ends with its process: when the
process exits, or is killed, the pipe closes and the worker stops by itself.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import pickle
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd

from sdpipeline.memory import give_back_freed_memory
from sdpipeline.validation import data_docs, gx_runner
from sdpipeline.validation.audit import CheckContext
from sdpipeline.validation.expectations import Suite

SETTINGS_PREFIX = "SDPIPELINE_"
_worker: GXWorker | None = None


class GXWorkerError(RuntimeError):
    """Great Expectations failed inside the worker, or the worker stopped."""


def _settings() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(SETTINGS_PREFIX)}


def _use_settings(settings: dict[str, str]) -> None:
    for key in [k for k in os.environ if k.startswith(SETTINGS_PREFIX)]:
        del os.environ[key]
    os.environ.update(settings)


class Pending:
    """A request the worker is answering; ``result()`` waits for the answer."""

    def __init__(self, worker: GXWorker, request: str, subject: str) -> None:
        self._worker, self.request, self.subject = worker, request, subject
        self._reply: tuple[str, Any] | None = None

    def result(self) -> Any:
        with self._worker._lock:
            if self._reply is None and self._worker._in_flight is self:
                self._worker._receive()
        if self._reply is None:
            raise GXWorkerError(f"the worker was stopped before it answered {self.subject}")
        status, value = self._reply
        if status == "stopped":
            raise GXWorkerError(value)
        if status == "error":
            raise GXWorkerError(
                f"Great Expectations failed during {self.request} of {self.subject}:\n{value}"
            )
        return value


class GXWorker:
    """The run's side of the pipe: sends a table and a suite, and takes the outcomes when the
    caller asks for them, so that the run can go on with its own work meanwhile. The worker
    answers in order and one request is in flight at a time: a second request first takes the
    answer to the first, so neither side ever waits on a full pipe."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "sdpipeline.validation.gx_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._lock = threading.Lock()
        self._in_flight: Pending | None = None
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self._process.pid

    def alive(self) -> bool:
        return self._process.poll() is None

    def _stopped(self, request: str, subject: str) -> str:
        code = self._process.wait()
        return (
            f"the Great Expectations worker (pid {self.pid}) stopped with exit code {code} "
            f"during {request} of {subject}; its own error, if any, is on the run's stderr"
        )

    def _receive(self) -> None:
        """The answer to the request in flight (the caller holds the lock)."""
        pending, self._in_flight = self._in_flight, None
        try:
            pending._reply = pickle.load(self._process.stdout)
        except EOFError:
            pending._reply = ("stopped", self._stopped(pending.request, pending.subject))
        except BaseException:
            self.kill()  # a reply cut short leaves the pipe out of step
            raise

    def _send(self, request: str, subject: str, *args: Any) -> Pending:
        with self._lock:
            if self._in_flight is not None:
                self._receive()
            try:
                message = (request, _settings(), args)
                pickle.dump(message, self._process.stdin, pickle.HIGHEST_PROTOCOL)
                self._process.stdin.flush()
            except BrokenPipeError as error:
                raise GXWorkerError(self._stopped(request, subject)) from error
            except BaseException:
                self.kill()  # a request cut short leaves the pipe out of step
                raise
            self._in_flight = Pending(self, request, subject)
            return self._in_flight

    def start_suites(
        self, checks: Sequence[tuple[Suite, pd.DataFrame]], checked: CheckContext
    ) -> Pending:
        """``gx_runner.run_suite`` in the worker for each suite and its frame, in one request,
        each frame cut to the columns its suite reads; returns as soon as they are sent, and
        ``result()`` gives the outcomes of every suite in turn. One request, not one a suite:
        the step waits once, after its own work, not for each suite in turn."""
        cut = [
            (suite, frame.loc[:, [c for c in suite.columns() if c in frame.columns]])
            for suite, frame in checks
        ]
        return self._send("run_suites", ", ".join(s.name for s, _ in checks), cut, checked)

    def publish_data_docs(self, run_name: str) -> Path:
        """``data_docs.publish`` in the worker."""
        return self._send("publish_data_docs", run_name, run_name).result()

    def kill(self) -> None:
        """End the worker at once, whatever it is doing."""
        self._process.kill()
        self.close()

    def let_go(self) -> None:
        """End the pipe, and with it the worker, without waiting for it to exit: the run goes
        on meanwhile, and a thread reaps the worker once it has."""
        if not self._process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):  # the worker has stopped already
                self._process.stdin.close()
            threading.Thread(target=self._process.wait, daemon=True).start()

    def close(self, timeout_seconds: float = 60) -> None:
        """Let the worker finish what it is writing, then end it."""
        self.let_go()
        try:
            self._process.wait(timeout_seconds)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process.stdout.close()


def worker() -> GXWorker:
    """This process's worker: started on first use, kept for the process's later runs."""
    global _worker
    if _worker is None or not _worker.alive():
        _worker = GXWorker()
        atexit.register(_worker.close)
    return _worker


def release() -> None:
    """Let this process's worker go (it ends once it has read the end of its pipe): its run
    has no more use for it. After a register's tables it holds 0.4 GB (GX, and what the
    largest checks left behind) while the run's analyses, its largest work, are still to come.
    The next run, or a later check, starts another."""
    global _worker
    if _worker is not None:
        _worker.let_go()
        _worker = None


def _is_run_worker() -> bool:
    """This process executes a run launched by a run launcher: a process the code server
    spawned to run it (it imports Dagster's gRPC run entry point before the code location), or
    ``dagster api execute_run``. The webserver, the daemon and the code server are neither."""
    spawned_for_run = (
        multiprocessing.parent_process() is not None and "dagster._grpc.impl" in sys.modules
    )
    return spawned_for_run or "execute_run" in sys.argv


def start_if_run_worker() -> None:
    """Start this process's worker now if the process is about to execute a run."""
    if _is_run_worker():
        worker()


def _run_suites(
    checks: list[tuple[Suite, pd.DataFrame]], checked: CheckContext
) -> list[gx_runner.ExpectationOutcome]:
    return [o for suite, frame in checks for o in gx_runner.run_suite(suite, frame, checked)]


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """Answer requests until the pipe closes. GX is imported and the project of the settings it
    started with opened before the first request is read: the work the run does not wait for."""
    gx_runner.context()
    handlers = {"run_suites": _run_suites, "publish_data_docs": data_docs.publish}
    while True:
        try:
            request, settings, args = pickle.load(requests)
        except EOFError:
            return
        try:
            _use_settings(settings)
            reply = ("ok", handlers[request](*args))
        except Exception:
            reply = ("error", traceback.format_exc())
        pickle.dump(reply, replies, pickle.HIGHEST_PROTOCOL)
        replies.flush()
        del args, reply  # the request's frame, before its memory is given back
        give_back_freed_memory()


def main() -> None:
    """The worker process. Its stdout is the reply pipe, so anything GX prints goes to stderr."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
