"""The code location: every definition under ``sdpipeline/defs/``, a folder per layer, each
built by factories over the codebook and loaded the way ``dg`` loads a project's defs folder,
each asset with the owners, code version and automation condition of ``defs/policy.py``.

Runs use the in-process executor: DuckDB allows one writing process, and on a 2-core machine
starting a process per step (about two seconds each, for some fifty steps) would cost more than
the steps themselves. Concurrent runs queue on the warehouse lock (``defs/resources.py``).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from sdpipeline.validation import gx_worker


def build_definitions() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)


gx_worker.start_if_run_worker()
defs = build_definitions()
