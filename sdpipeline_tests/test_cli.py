"""The command line as a user runs it, in a separate process, and the README's promises."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sdpipeline import settings

CLI = [sys.executable, "-m", "sdpipeline"]


def _run(args, env_dir: Path, **kwargs):
    env = {
        **os.environ,
        "SDPIPELINE_VAR_DIR": str(env_dir / "var"),
        "DAGSTER_HOME": str(env_dir / "var" / "dagster_home"),
    }
    return subprocess.run(
        CLI + args,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=settings.REPO_ROOT,
        **kwargs,
    )


def test_run_materialises_into_the_configured_warehouse_and_instance(tmp_path):
    first = _run(["run"], tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "job full_refresh succeeded" in first.stdout
    assert str(tmp_path / "var" / "warehouse.duckdb") in first.stdout
    assert re.search(r"raw\.residents_2017\s+1200 rows", first.stdout)
    runs = tmp_path / "var" / "dagster_home"
    assert (runs / "dagster.yaml").exists()
    second = _run(["run"], tmp_path)
    assert second.returncode == 0
    assert (runs / "history" / "runs.db").exists()


def test_generate_writes_a_delivery(tmp_path):
    result = _run(["generate", "--out", str(tmp_path / "d"), "--seed", "7"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "d" / "ex_post_2023" / "iedzivotaji_2023.csv").exists()
    assert (tmp_path / "d" / "ground_truth.json").exists()


def test_docs_are_current(tmp_path):
    assert _run(["docs", "--check"], tmp_path).returncode == 0


def _fenced_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```(?:bash|sh)?\n(.*?)```", text, flags=re.S)]


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    readme = (settings.REPO_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = _fenced_blocks(readme)
    run_command, test_command = blocks[0], blocks[1]
    assert "\n" not in run_command and "\n" not in test_command
    assert run_command.endswith("sdpipeline run")
    assert test_command.endswith("pytest")
    ci = (settings.REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci.splitlines()
