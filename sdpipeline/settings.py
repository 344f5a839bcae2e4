"""Where things live. Every location can be moved with an environment variable.

Defaults keep inputs under ``data/`` and every runtime output under ``var/`` in the repository,
so that the command-line run, the tests and the Dagster UI all find the same warehouse and the
same Dagster instance without any configuration.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


class SettingError(ValueError):
    """An environment variable holds a value sdpipeline cannot use; the message names it."""


def _path(variable: str, default: Path) -> Path:
    value = os.environ.get(variable)
    return Path(value).expanduser().resolve() if value else default


def data_dir() -> Path:
    """Versioned inputs: codebook, reference data, generator model, sample delivery."""
    return _path("SDPIPELINE_DATA_DIR", REPO_ROOT / "data")


def codebook_dir() -> Path:
    return _path("SDPIPELINE_CODEBOOK_DIR", data_dir() / "codebook")


def reference_dir() -> Path:
    return _path("SDPIPELINE_REFERENCE_DIR", data_dir() / "reference")


def raw_dir() -> Path:
    """Where a delivery is dropped: one folder per wave, ``<raw>/<wave id>/``."""
    return _path("SDPIPELINE_RAW_DIR", data_dir() / "raw")


def var_dir() -> Path:
    """Runtime outputs (git-ignored)."""
    return _path("SDPIPELINE_VAR_DIR", REPO_ROOT / "var")


def warehouse_path() -> Path:
    return _path("SDPIPELINE_WAREHOUSE", var_dir() / "warehouse.duckdb")


def dagster_home() -> Path:
    return _path("DAGSTER_HOME", var_dir() / "dagster_home")


def reports_dir() -> Path:
    return _path("SDPIPELINE_REPORTS_DIR", var_dir() / "reports")


def automation_on() -> bool:
    """Whether the automation sensors start switched on (``SDPIPELINE_AUTOMATION=on``, for a
    deployment that wants them on from the first start); otherwise they wait for a data
    engineer to turn them on in the UI."""
    value = os.environ.get("SDPIPELINE_AUTOMATION", "off").strip()
    if value.lower() not in ("on", "off"):
        raise SettingError(f"SDPIPELINE_AUTOMATION={value!r} is neither 'on' nor 'off'")
    return value.lower() == "on"


def automation_interval_seconds() -> int:
    """How often the sensors look for changed files and evaluate automation (seconds)."""
    variable = "SDPIPELINE_AUTOMATION_INTERVAL_SECONDS"
    value = os.environ.get(variable, "60").strip()
    if not value.isdigit() or int(value) < 1:
        raise SettingError(f"{variable}={value!r} is not a whole number of seconds (e.g. 60)")
    return int(value)


def automation_settle_seconds() -> int:
    """How long a changed file must stay unchanged before automation takes it in (seconds):
    a file still being copied (a slow upload) was checksummed half-written, and its run
    published a report of part of the file."""
    variable = "SDPIPELINE_AUTOMATION_SETTLE_SECONDS"
    value = os.environ.get(variable, "120").strip()
    if not value.isdigit():
        raise SettingError(f"{variable}={value!r} is not a whole number of seconds (e.g. 120)")
    return int(value)


def duckdb_memory_limit() -> str:
    """What DuckDB may hold in memory for a run (its default is 80 % of the machine). DuckDB
    keeps the blocks it wrote cached up to its limit, which at a register's size made the
    warehouse alone take gigabytes beside the run's own frames; past the limit it evicts them
    to the database file or spills to a temporary one."""
    return _memory_size("SDPIPELINE_DUCKDB_MEMORY_LIMIT", "512MB")


def duckdb_sql_memory_limit() -> str:
    """What DuckDB may hold in memory during a step whose work is all in DuckDB (the row
    contracts, the recodes): those steps hold no large frames in Python, and under the run's
    cap DuckDB evicted and re-read blocks as it wrote a register's table (×1000: the harmonised
    layer 39 s with 1 GB against 56 s with 512 MB). The run's cap is back after the step."""
    return _memory_size("SDPIPELINE_DUCKDB_SQL_MEMORY_LIMIT", "1GB")


def _memory_size(variable: str, default: str) -> str:
    """The size ``variable`` gives, checked by DuckDB itself as it will read it. A value it
    cannot read failed each step that set it with DuckDB's bare parser error, the steps before
    them having replaced their tables; checked here, when the code location loads, it stops
    the command before a run starts, naming the variable."""
    value = os.environ.get(variable, default).strip()
    problem = _unreadable_size(value)
    if problem:
        raise SettingError(
            f"{variable}={value!r} is not a memory size DuckDB reads (e.g. 512MB, 2GB): {problem}"
        )
    return value


@functools.cache
def _unreadable_size(value: str) -> str | None:
    """Why DuckDB cannot read ``value`` as a memory size, or None; asked once per value (an
    in-memory DuckDB to ask takes 30 ms, and a run loads the setting several times)."""
    import duckdb

    if "'" in value:
        return "it holds a quote"
    try:
        with duckdb.connect() as probe:
            probe.execute(f"SET memory_limit = '{value}'")
    except duckdb.Error as error:
        return str(error).split("\n")[0]
    return None
