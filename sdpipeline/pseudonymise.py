"""Respondent identifiers replaced on ingest by a keyed hash (HMAC-SHA-256).

The same respondent always gets the same pseudonym under the same key, so duplicates are still
found and rows can still be linked within the project; without the key a pseudonym cannot be
turned back into the contractor's identifier. The key comes from ``SDPIPELINE_PSEUDONYM_KEY`` or
from a local secret file (``var/secrets/pseudonym.key`` by default, created on first use with
owner-only permissions, git-ignored). It is never part of the repository.
"""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from sdpipeline import settings

KEY_VARIABLE = "SDPIPELINE_PSEUDONYM_KEY"
PREFIX = "P"
LENGTH = 24  # hexadecimal digits of the keyed hash kept
BLOCK = 64  # SHA-256 block size in bytes, as HMAC pads its key to


def key_file() -> Path:
    return Path(
        os.environ.get(
            "SDPIPELINE_PSEUDONYM_KEY_FILE", settings.var_dir() / "secrets" / "pseudonym.key"
        )
    )


def pseudonym_key() -> bytes:
    """The key from the environment, else from the local secret file (created if absent)."""
    if os.environ.get(KEY_VARIABLE):
        return os.environ[KEY_VARIABLE].encode()
    path = key_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text(encoding="ascii").strip().encode()


def _plain(value: object) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _plain_column(values: pd.Series) -> pd.Series:
    """``_plain`` of every identifier, as whole columns where the column's type allows: a
    register's identifiers are all distinct, so a Python call per row is a call per row."""
    if pd.api.types.is_integer_dtype(values):
        return values.astype("string")
    if pd.api.types.is_float_dtype(values):
        given = values.dropna()
        if ((given == np.floor(given)) & (given.abs() < 2**53)).all():
            return values.astype("Int64").astype("string")
    elif pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        return values.astype("string").str.strip()
    return values.map(_plain)


@functools.cache
def _hasher() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB per process: starting one took longer than hashing a sample file."""
    return duckdb.connect()


def pseudonymise(values: pd.Series, instrument: str, wave: str, key: bytes) -> pd.Series:
    """Keyed pseudonyms for one instrument and wave (the same id in two instruments or waves
    gives different pseudonyms, so files cannot be linked by identifier alone)."""
    # HMAC (RFC 2104) spelt out as two SHA-256 passes, so that DuckDB hashes a register's
    # identifiers on every core instead of Python one at a time.
    block = (hashlib.sha256(key).digest() if len(key) > BLOCK else key).ljust(BLOCK, b"\0")
    inner = bytes(b ^ 0x36 for b in block) + f"{instrument}|{wave}|".encode()
    outer = bytes(b ^ 0x5C for b in block)
    with _hasher().cursor() as connection:
        connection.register("plain", pd.DataFrame({"plain": _plain_column(values)}))
        hashed = connection.execute(
            "SELECT $prefix || left(sha256($outer || unhex(sha256($inner || encode(plain)))), "
            f"{LENGTH}) AS pseudonym FROM plain",
            {"prefix": PREFIX, "inner": inner, "outer": outer},
        ).df()["pseudonym"]
    return pd.Series(hashed.to_numpy(), index=values.index, dtype="string")
