"""Leaving it running: Dagster's declarative automation rebuilds what a changed file makes
stale, and a weekly full refresh. Everything here is off until a data engineer turns it on (UI:
Automation; or ``SDPIPELINE_AUTOMATION=on`` for the two sensors) and needs the daemon
(``sdpipeline ui`` runs one; in production ``dagster-daemon``).

- ``delivery_files`` checksums every delivered and reference file each minute and records a
  new checksum in Dagster as an observation of the file (``defs/observation.py``), only when it
  changed, and only once every changed file has been left unchanged for
  ``SDPIPELINE_AUTOMATION_SETTLE_SECONDS`` (a file being copied is not taken in half-written).
- ``delivery_automation`` is Dagster's own automation sensor over every asset: each asset's
  condition (``defs/policy.py``: eager, once upstream blocking checks passed) turns the new
  observation into one run of the file's raw table and everything after it. The run is tagged
  with its trigger; Dagster's evaluation, linked from the run, says which condition fired.
"""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg

from sdpipeline import settings
from sdpipeline.codebook import Codebook, default_codebook
from sdpipeline.defs.jobs import full_refresh
from sdpipeline.defs.observation import changed_observations, current_versions
from sdpipeline.defs.runs import REASON_TAG, TRIGGER_TAG
from sdpipeline.inventory import stray_files


def still_changing(versions: list, changed: set, settle: int) -> list[Path]:
    """The changed files last written less than ``settle`` seconds ago. Nothing in a folder
    says a copy has finished; a file left alone for a while has, unless its writer paused."""
    now = time.time()
    return [
        v.path
        for v in versions
        if v.key in changed and v.path.is_file() and now - v.path.stat().st_mtime < settle
    ]


def build_automation(
    codebook: Codebook,
) -> tuple[list[dg.SensorDefinition], list[dg.ScheduleDefinition]]:
    interval = settings.automation_interval_seconds()
    settle = settings.automation_settle_seconds()
    status = (
        dg.DefaultSensorStatus.RUNNING
        if settings.automation_on()
        else dg.DefaultSensorStatus.STOPPED
    )

    @dg.sensor(
        name="delivery_files",
        minimum_interval_seconds=interval,
        default_status=status,
        description="Checksums every delivered and reference file; records a changed checksum "
        "as a new observation of the file, which delivery_automation turns into a rebuild. "
        "Waits while a wave folder holds a file the codebook does not name.",
    )
    def delivery_files(context: dg.SensorEvaluationContext):
        strays = [s for wave in codebook.waves for s in stray_files(codebook, wave)]
        if strays:
            return dg.SkipReason(
                "the delivery holds files the codebook does not name: "
                + "; ".join(f"{s.path}: {s.reason}" for s in strays)
            )
        versions = current_versions(codebook)
        observations = changed_observations(context.instance, versions)
        if not observations:
            return dg.SkipReason("no delivered or reference file changed")
        unsettled = still_changing(versions, {o.asset_key for o in observations}, settle)
        if unsettled:
            return dg.SkipReason(
                f"{len(unsettled)} changed file(s) written less than {settle} s ago, perhaps "
                f"still being copied: {', '.join(map(str, unsettled))}; taken in once "
                f"unchanged for {settle} s (SDPIPELINE_AUTOMATION_SETTLE_SECONDS)"
            )
        context.log.info(
            "new content: " + ", ".join(o.asset_key.to_user_string() for o in observations)
        )
        return dg.SensorResult(asset_events=observations)

    automation = dg.AutomationConditionSensorDefinition(
        "delivery_automation",
        target=dg.AssetSelection.all(),
        minimum_interval_seconds=interval,
        default_status=status,
        run_tags={
            TRIGGER_TAG: "automation",
            REASON_TAG: "new data upstream (a file's new checksum, or a rebuilt input): the "
            "automation evaluation linked from this run says which",
        },
        description="Dagster's automation: rebuilds each asset whose input got new data (eager), "
        "once every blocking check upstream passed.",
    )

    weekly = dg.ScheduleDefinition(
        name="weekly_full_refresh",
        job=full_refresh,
        cron_schedule="0 3 * * 1",
        execution_timezone="Europe/Riga",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        tags={TRIGGER_TAG: "weekly_full_refresh", REASON_TAG: "the weekly full rebuild"},
        description="Mondays 03:00 Riga time: rebuild everything from the current delivery.",
    )
    return [delivery_files, automation], [weekly]


@dg.definitions
def automation() -> dg.Definitions:
    sensors, schedules = build_automation(default_codebook())
    return dg.Definitions(sensors=sensors, schedules=schedules)
