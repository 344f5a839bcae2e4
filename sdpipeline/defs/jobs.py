"""Jobs a data engineer runs by name: everything, one wave, or only the results. A job that
reads files observes them first (their checksums), so that what it builds records the version
of each file it read."""

from __future__ import annotations

import dagster as dg

from sdpipeline.codebook import Codebook, default_codebook

full_refresh = dg.define_asset_job(
    name="full_refresh",
    selection=dg.AssetSelection.all(include_sources=True),
    description="Observe every file, then materialise every asset from the current delivery: "
    "reference data, raw, validated and harmonised tables, indicators and the report.",
)

reports_only = dg.define_asset_job(
    name="reports_only",
    selection=dg.AssetSelection.groups("indicators", "report"),
    description="Recompute indicators and the report from the harmonised tables as they are.",
)


def build_jobs(codebook: Codebook) -> list[dg.UnresolvedAssetJobDefinition]:
    waves = [
        dg.define_asset_job(
            name=f"wave_{wave}",
            selection=dg.AssetSelection.tag("wave", wave, include_sources=True).downstream(),
            description=f"Reload the {spec.label.en} delivery and rebuild what depends on it.",
        )
        for wave, spec in codebook.waves.items()
    ]
    return [full_refresh, reports_only, *waves]


@dg.definitions
def jobs() -> dg.Definitions:
    return dg.Definitions(jobs=build_jobs(default_codebook()))
