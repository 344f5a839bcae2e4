"""Leaving it running: a sensor that notices changed deliveries by checksum and a weekly full
refresh. Both are off until a data engineer turns them on (UI: Automation, or the daemon)."""

import hashlib

import dagster as dg

from sdpipeline.codebook import Codebook, default_codebook
from sdpipeline.defs.incremental import refresh_selection, stale_sources
from sdpipeline.defs.jobs import full_refresh

SENSOR_INTERVAL_SECONDS = 60


def build_automation(
    codebook: Codebook,
) -> tuple[list[dg.SensorDefinition], list[dg.ScheduleDefinition]]:
    @dg.sensor(
        name="delivery_sensor",
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.STOPPED,
        target=dg.AssetSelection.all(),
        description="Every minute: checksums every delivered and reference file; if one changed "
        "(or the code, codebook or catalogue did), requests a run of just the assets that read "
        "it and everything downstream.",
    )
    def delivery_sensor(context: dg.SensorEvaluationContext):
        stale = stale_sources(context.instance, codebook)
        if not stale:
            return dg.SkipReason("no delivered or reference file changed")
        selection = refresh_selection(context.repository_def.asset_graph, stale)
        fingerprint = hashlib.sha256(
            repr(sorted((k.to_user_string(), r) for k, r in stale.items())).encode()
        ).hexdigest()[:16]
        reasons = ", ".join(f"{k.to_user_string()}: {r}" for k, r in sorted(stale.items()))
        context.log.info(f"rebuilding {len(selection)} assets because {reasons}")
        return dg.RunRequest(
            run_key=fingerprint,
            asset_selection=sorted(selection, key=lambda k: k.to_user_string()),
            tags={"sdpipeline/trigger": "delivery_sensor", "sdpipeline/stale": reasons[:1000]},
        )

    weekly = dg.ScheduleDefinition(
        name="weekly_full_refresh",
        job=full_refresh,
        cron_schedule="0 3 * * 1",
        execution_timezone="Europe/Riga",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Mondays 03:00 Riga time: rebuild everything from the current delivery.",
    )
    return [delivery_sensor], [weekly]


@dg.definitions
def automation() -> dg.Definitions:
    sensors, schedules = build_automation(default_codebook())
    return dg.Definitions(sensors=sensors, schedules=schedules)
