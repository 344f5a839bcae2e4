"""Shared fixtures: the real codebook, the shipped delivery, and an isolated runtime folder so
no test touches the developer's own warehouse or Dagster instance."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg
import pytest

from sdpipeline import settings
from sdpipeline.codebook import Codebook, default_codebook
from sdpipeline.definitions import build_definitions
from sdpipeline.defs.resources import GreatExpectations, warehouse_resource

SHIPPED_RAW = settings.REPO_ROOT / "data" / "raw"
SHIPPED_FILES = [
    pytest.param(instrument.name, wave, id=f"{instrument.name}-{wave}")
    for instrument in default_codebook().instruments.values()
    for wave in instrument.files
]


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


def require(available: bool, reason: str) -> None:
    """Skip a test that needs a system tool on a machine without it, but never under CI:
    CI installs the tool (.ci/run), so a skip there would hide a failure."""
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: .ci/run should have installed it)")
    pytest.skip(reason)
