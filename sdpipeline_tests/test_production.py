"""The production profile (deploy/dagster.yaml) against a real PostgreSQL server: a private
cluster started on a loopback port for the test, runs and events stored in it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import dagster as dg
import pytest

from sdpipeline import settings
from sdpipeline.definitions import build_definitions

from .conftest import require

POSTGRES_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the postgres user when we are root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def postgres_url():
    require(
        bool(POSTGRES_BIN) and (POSTGRES_BIN[-1] / "initdb").exists(),
        "PostgreSQL server not installed",
    )
    bin_dir = POSTGRES_BIN[-1]
    # not under pytest's own temp folder: it is private to root, and the server runs as postgres
    root = Path(tempfile.mkdtemp(prefix="sdpipeline-pg-"))
    root.chmod(0o777)
    data = root / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(
        _as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {data}"
    subprocess.run(
        _as_postgres(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(data / "server.log"),
                "-w",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def test_runs_and_events_are_stored_in_postgres(postgres_url, tmp_path, monkeypatch):
    import psycopg2

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(settings.REPO_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv(
        "DAGSTER_PG_URL", postgres_url.replace("postgresql://", "postgresql+psycopg2://")
    )
    monkeypatch.setenv("SDPIPELINE_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    defs = build_definitions()
    reference = [
        dg.AssetKey(["reference", n])
        for n in ("municipalities_2017", "municipalities_2021", "municipality_crosswalk")
    ]
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = defs.resolve_job_def("full_refresh").execute_in_process(
            instance=instance, asset_selection=reference
        )
        assert result.success
        assert instance.get_latest_materialization_event(reference[0]) is not None
    with psycopg2.connect(postgres_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM runs WHERE run_id = %s", (result.run_id,))
        assert cursor.fetchone()[0] == 1
        cursor.execute(
            "SELECT count(*) FROM event_logs "
            "WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
            (result.run_id,),
        )
        assert cursor.fetchone()[0] == 3
