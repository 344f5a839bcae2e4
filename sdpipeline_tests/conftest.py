"""Shared fixtures: the real codebook, the shipped delivery, and an isolated runtime folder so
no test touches the developer's own warehouse or Dagster instance."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sdpipeline import settings
from sdpipeline.codebook import Codebook, default_codebook

SHIPPED_RAW = settings.REPO_ROOT / "data" / "raw"
SHIPPED_FILES = [
    pytest.param(instrument.name, wave, id=f"{instrument.name}-{wave}")
    for instrument in default_codebook().instruments.values()
    for wave in instrument.files
]


@pytest.fixture(scope="session")
def codebook() -> Codebook:
    return default_codebook()


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Runtime outputs and Dagster's instance under a temp folder; a copy of the shipped
    delivery as the raw folder, so a test may break files without touching the repo."""
    var = tmp_path / "var"
    raw = tmp_path / "raw"
    shutil.copytree(SHIPPED_RAW, raw)
    (var / "dagster_home").mkdir(parents=True)
    monkeypatch.setenv("SDPIPELINE_VAR_DIR", str(var))
    monkeypatch.setenv("SDPIPELINE_RAW_DIR", str(raw))
    monkeypatch.setenv("DAGSTER_HOME", str(var / "dagster_home"))
    return tmp_path
