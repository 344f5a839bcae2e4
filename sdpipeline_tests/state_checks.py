"""What the state scenarios share (``test_state``, ``test_killed_runs``, ``test_automation``):
a contractor's correction of a file, ``sdpipeline status`` checked against the UI's GraphQL,
and the published report as a reader finds it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from sdpipeline import report_export, settings
from sdpipeline.defs.report.assets import DATASETS
from sdpipeline.indicators import default_catalogue

from .conftest import cli_env, publication_masked, sdpipeline

LEADERS_2017 = Path("ex_ante_2017") / "pasvaldibu_vaditaji_2017.csv"
HEADS_2023 = Path("ex_post_2023") / "dienestu_vaditaji_2023.csv"
SPECIALISTS_2017 = Path("ex_ante_2017") / "specialisti_2017.csv"
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
    the other files' bytes, with the harmonised datasets published apart from it (under
    ``datasets/``)."""
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
    datasets = (folder / "var" / "reports" / DATASETS).resolve()
    files |= {
        f"{DATASETS}/{p.relative_to(datasets).as_posix()}": p.read_bytes()
        for p in sorted(datasets.rglob("*"))
        if p.is_file()
    }
    return manifest, tables, files


def assert_same_report(a: tuple, b: tuple) -> None:
    assert a[0]["files"] == b[0]["files"]
    assert any(name.startswith("datasets/") and name.endswith(".sav") for name in a[2])
    for name in REPORT_TABLES:
        pd.testing.assert_frame_equal(a[1][name], b[1][name])
    assert a[2].keys() == b[2].keys()
    for name in a[2]:
        if name == report_export.HTML_REPORT:
            # the run and date of publication are the one element in which two runs differ
            assert publication_masked(a[2][name])[0] == publication_masked(b[2][name])[0]
        else:
            assert a[2][name] == b[2][name], name


def shutil_copy(source: Path, raw: Path) -> None:
    target = raw / source.parent.name / source.name
    target.write_bytes(source.read_bytes())
