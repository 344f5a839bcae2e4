"""The UI tested for real: the webserver and daemon as `sdpipeline ui` starts them on
127.0.0.1, the asset graph read through GraphQL, a run launched through it, and the lineage
page rendered in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from sdpipeline import settings
from sdpipeline.definitions import build_definitions

from .conftest import (
    HUNG_SECONDS,
    STALLED_SECONDS,
    logged_events,
    require,
    stop_session,
    wait_while_progressing,
)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(url: str, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.load(response)
    assert "errors" not in body, body
    return body["data"]


@pytest.fixture(scope="module")
def ui(pipeline_run, tmp_path_factory):
    _, baseline, _ = pipeline_run
    folder = tmp_path_factory.mktemp("ui")
    shutil.copy(baseline, folder / "warehouse.duckdb")
    port = _free_port()
    env = {
        **os.environ,
        "SDPIPELINE_WAREHOUSE": str(folder / "warehouse.duckdb"),
        "SDPIPELINE_VAR_DIR": str(folder / "var"),
        "DAGSTER_HOME": str(folder / "dagster_home"),
    }
    log = (folder / "ui.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "sdpipeline", "ui", "--port", str(port)],
        env=env,
        cwd=settings.REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STALLED_SECONDS
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=5):
                    break
            except OSError:
                assert process.poll() is None, (folder / "ui.log").read_text()
                time.sleep(1)
        else:
            pytest.fail(f"the webserver did not come up in {STALLED_SECONDS} s")
        yield url, folder
    finally:
        stop_session(process)
        log.close()


def test_graphql_serves_the_whole_asset_graph_with_checks(ui):
    url, _ = ui
    data = _graphql(
        url,
        "{ assetNodes { assetKey { path } dependencyKeys { path } "
        "assetChecksOrError { ... on AssetChecks { checks { name } } } } }",
    )
    graph = build_definitions().resolve_asset_graph()
    served = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    expected = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert set(served) == expected
    for key in graph.get_all_asset_keys():
        node = served[key.to_user_string()]
        parents = {"/".join(d["path"]) for d in node["dependencyKeys"]}
        assert parents == {p.to_user_string() for p in graph.get(key).parent_keys}, key
    checks = {
        name: {c["name"] for c in node["assetChecksOrError"].get("checks", [])}
        for name, node in served.items()
    }
    assert checks["validated/residents_2023"] == {"row_contract", "gx_dataset_contract"}
    assert checks["harmonised/clients"] == {"harmonised_contract", "gx_harmonised_contract"}


def test_a_run_launched_through_graphql_succeeds(ui):
    url, folder = ui
    launched = _graphql(
        url,
        """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
             ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
        {
            "p": {
                "selector": {
                    "repositoryLocationName": "sdpipeline",
                    "repositoryName": "__repository__",
                    "jobName": "full_refresh",
                },
                "runConfigData": {},
            }
        },
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    run = _wait(url, folder, run_id, lambda r: r["status"] in ("SUCCESS", "FAILURE", "CANCELED"))
    assert run["status"] == "SUCCESS", (folder / "ui.log").read_text()[-3000:]
    assert (folder / "var" / "reports" / "tables" / "report.html").exists()
    # validated in the run worker's own GX worker, into this installation's GX project
    assert (folder / "var" / "reports" / "data_docs" / "index.html").exists()
    assert list((folder / "var" / "gx").rglob(f"*{run_id}*"))


def test_the_lineage_page_renders_asset_nodes_in_chromium(ui):
    require(CHROMIUM is not None, "Chromium is not installed")
    playwright = pytest.importorskip("playwright.sync_api")
    url, folder = ui
    shot = folder / "lineage.png"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(f"{url}/assets/harmonised/residents?view=lineage&lineageDepth=2", timeout=120_000)
        skip = page.get_by_role("button", name="Skip")  # first-visit community dialog
        page.wait_for_timeout(2000)
        if skip.count():
            skip.first.click()
        # nodes are drawn inside their layer's box under the key's last part
        for name in ("residents_2017", "residents_2023", "changes"):
            page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
        page.screenshot(path=str(shot))
        browser.close()
    assert shot.stat().st_size > 30_000


def _launch(url: str, job: str, asset_keys: list[str] | None = None) -> str:
    selector = {
        "repositoryLocationName": "sdpipeline",
        "repositoryName": "__repository__",
        "jobName": job,
    }
    if asset_keys:
        selector["assetSelection"] = [{"path": k.split("/")} for k in asset_keys]
    launched = _graphql(
        url,
        """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
             ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
        {"p": {"selector": selector, "runConfigData": {}}},
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def _run(url: str, run_id: str) -> dict:
    return _graphql(
        url,
        "query($id: ID!) { runOrError(runId: $id) { ... on Run { status tags { key value } } } }",
        {"id": run_id},
    )["runOrError"]


def _wait(url: str, folder, run_id: str, until) -> dict:
    """The run as GraphQL serves it once ``until`` holds; fails only if the run logs nothing
    for a while (it is stuck), not because the machine is slow."""
    return wait_while_progressing(
        lambda: run if until(run := _run(url, run_id)) else None,
        lambda: logged_events(folder / "dagster_home", [run_id]),
        lambda: (
            f"run {run_id}: {_run(url, run_id)['status']}\n"
            + (folder / "ui.log").read_text()[-3000:]
        ),
    )


def _status(folder) -> dict:
    env = {
        **os.environ,
        "SDPIPELINE_WAREHOUSE": str(folder / "warehouse.duckdb"),
        "SDPIPELINE_VAR_DIR": str(folder / "var"),
        "DAGSTER_HOME": str(folder / "dagster_home"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "sdpipeline", "status", "--json"],
        env=env,
        cwd=settings.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=HUNG_SECONDS,
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return json.loads(result.stdout)


def test_status_agrees_with_the_ui_on_every_asset(ui):
    url, folder = ui
    report = _status(folder)
    served = _graphql(url, "{ assetNodes { assetKey { path } staleStatus } }")["assetNodes"]
    ui_status = {"/".join(n["assetKey"]["path"]): n["staleStatus"] for n in served}
    assert {a["asset"]: a["dagster_status"] for a in report["assets"]} == ui_status
    assert report["current"], [a for a in report["assets"] if a["behind"]]


def test_a_ui_run_of_one_validated_table_has_its_gx_worker_early_and_writes_data_docs(ui):
    url, folder = ui
    run_id = _launch(url, "__ASSET_JOB", ["validated/heads_2023"])
    run = _wait(url, folder, run_id, lambda r: r["status"] in ("SUCCESS", "FAILURE", "CANCELED"))
    assert run["status"] == "SUCCESS", (folder / "ui.log").read_text()[-3000:]
    pages = list((folder / "var" / "reports" / "data_docs" / "validations").rglob(f"*{run_id}*"))
    assert pages, "no Data Docs page for the run"
    logs = _graphql(
        url,
        "query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events { "
        "... on MessageEvent { message } } } } }",
        {"id": run_id},
    )["logsForRun"]["events"]
    (started,) = [
        float(m.group(1))
        for e in logs
        if (
            m := re.search(
                r"Great Expectations worker: pid \d+, started ([\d.]+) s ago",
                e.get("message") or "",
            )
        )
    ]
    # started as the run's process loaded the code location, not when the run needed it
    assert started >= 0.3


def test_a_killed_ui_run_is_marked_failed(ui):
    url, folder = ui
    run_id = _launch(url, "reports_only")
    run = _wait(url, folder, run_id, lambda r: any(t["key"] == "sdpipeline/pid" for t in r["tags"]))
    pid = int(next(t["value"] for t in run["tags"] if t["key"] == "sdpipeline/pid"))
    os.kill(pid, signal.SIGKILL)
    run = _wait(url, folder, run_id, lambda r: r["status"] not in ("STARTING", "STARTED"))
    assert run["status"] == "FAILURE"
    assert run_id not in _status(folder)["unfinished_runs"]
