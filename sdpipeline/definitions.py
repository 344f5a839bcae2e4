"""The code location: every asset, built by factories over the codebook.

Runs use the in-process executor: DuckDB allows one writing process, and on a 2-core machine
starting a process per step (about two seconds each, for some fifty steps) would cost more than
the steps themselves. Concurrent runs queue on the warehouse lock (``defs/resources.py``).
"""

from __future__ import annotations

import dagster as dg

from sdpipeline import reference
from sdpipeline.codebook import default_codebook
from sdpipeline.defs.audit_assets import build_audit_assets
from sdpipeline.defs.automation import build_automation
from sdpipeline.defs.harmonised_assets import build_harmonised
from sdpipeline.defs.incremental import code_version
from sdpipeline.defs.indicator_assets import build_indicator_assets
from sdpipeline.defs.jobs import build_jobs
from sdpipeline.defs.raw_assets import build_raw_assets
from sdpipeline.defs.reference_assets import build_reference_assets
from sdpipeline.defs.report_assets import build_report_assets
from sdpipeline.defs.resources import GreatExpectations, warehouse_resource
from sdpipeline.defs.validated_assets import build_validated_assets
from sdpipeline.indicators import load_catalogue


def build_definitions() -> dg.Definitions:
    codebook = default_codebook()
    reference.check_waves(codebook)  # a wave without its population stops here, not mid-run
    catalogue = load_catalogue(codebook)
    sensors, schedules = build_automation(codebook)
    version = code_version(codebook)
    assets = dg.map_asset_specs(
        lambda spec: spec.replace_attributes(code_version=version),
        [
            *build_reference_assets(codebook),
            *build_raw_assets(codebook),
            *build_validated_assets(codebook),
            *build_harmonised(codebook),
            *build_audit_assets(codebook),
            *build_indicator_assets(codebook, catalogue),
            *build_report_assets(codebook, catalogue),
        ],
    )
    return dg.Definitions(
        assets=assets,
        jobs=build_jobs(codebook),
        sensors=sensors,
        schedules=schedules,
        resources={"warehouse": warehouse_resource(), "great_expectations": GreatExpectations()},
        executor=dg.in_process_executor,
    )


defs = build_definitions()
