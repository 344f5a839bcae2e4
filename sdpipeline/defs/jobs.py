"""Jobs a data engineer runs by name."""

from __future__ import annotations

import dagster as dg

full_refresh = dg.define_asset_job(
    name="full_refresh",
    selection=dg.AssetSelection.all(),
    description="Materialise every asset from the current delivery: reference data, raw tables "
    "and everything built on them.",
)

JOBS = [full_refresh]
