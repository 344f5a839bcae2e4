"""What is behind the delivery on disk, and why: Dagster's own staleness, as the UI shows it,
and the two things it leaves out.

Dagster calls an asset STALE when an input has a newer data version than the one it was built
from (a file's checksum, ``defs/observation.py``) or its code version changed
(``defs/policy.py``), and MISSING when it was never built. That is the answer the UI gives,
read here with Dagster's own resolver. It is not yet the answer to "is the warehouse up to date
with the delivery?", for two reasons this module adds:

- staleness does not travel: when a rejected file leaves ``validated/residents_2023`` stale,
  ``harmonised/residents`` is still FRESH in Dagster's terms (it matches the validated table it
  read), though it is behind the delivery. Everything downstream of an asset that is behind is
  behind too;
- a table whose blocking check failed (too few respondents, say) was written and is FRESH, but
  nothing after it was built from it, and it must not be: it is behind until a run passes it.
  So is a table whose blocking checks never gave a result on it: a step records its table a
  moment before its checks report, and a run killed in between leaves a FRESH table that no
  contract has passed.

A delivered or reference file that is not on disk is behind as well.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    CachingStaleStatusResolver,
    StaleCauseCategory,
    StaleStatus,
)
from dagster._core.event_api import EventLogRecord
from dagster._core.loader import LoadingContext
from dagster._core.storage.asset_check_execution_record import (
    COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES,
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)

from sdpipeline.defs import keys
from sdpipeline.defs.observation import FileVersion
from sdpipeline.defs.outputs import absent_outputs
from sdpipeline.defs.policy import changed_parts
from sdpipeline.defs.runs import run_failure_messages


class _Loading(LoadingContext):
    """The loading context Dagster's resolver asks for (the webserver passes its request's)."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self._instance = instance
        self._loaders: dict = {}

    @property
    def instance(self) -> dg.DagsterInstance:
        return self._instance

    @property
    def loaders(self) -> dict:
        return self._loaders


@dataclass
class AssetState:
    key: dg.AssetKey
    status: str
    """Dagster's own: FRESH, STALE or MISSING, as the UI shows it."""
    causes: list[str] = field(default_factory=list)
    """Dagster's stale causes (and a file missing on disk)."""
    failed_checks: list[str] = field(default_factory=list)
    """Blocking checks that failed on the asset's current table, or never gave it a result."""
    waits_on: list[dg.AssetKey] = field(default_factory=list)
    """Assets upstream that are behind, nearest first."""
    last_failure: str | None = None
    """The last attempt to build it, if it failed after its current table was built."""
    absent: list[str] = field(default_factory=list)
    """What its last materialisation wrote and is no longer there (``outputs``)."""

    @property
    def layer(self) -> str:
        return self.key.path[0]

    @property
    def own_behind(self) -> bool:
        return (
            self.status != StaleStatus.FRESH.value or bool(self.failed_checks) or bool(self.absent)
        )

    @property
    def behind(self) -> bool:
        return self.own_behind or bool(self.waits_on)

    def reasons(self) -> list[str]:
        reasons = list(self.causes) + self.absent + self.failed_checks
        if self.waits_on:
            names = ", ".join(k.to_user_string() for k in self.waits_on[:3])
            more = f" and {len(self.waits_on) - 3} more" if len(self.waits_on) > 3 else ""
            reasons.append(f"upstream is behind: {names}{more}")
        return reasons

    def as_json(self) -> dict[str, object]:
        return {
            "asset": self.key.to_user_string(),
            "layer": self.layer,
            "dagster_status": self.status,
            "behind": self.behind,
            "reasons": self.reasons(),
            "last_failure": self.last_failure,
        }


def loading_context(instance: dg.DagsterInstance) -> LoadingContext:
    return _Loading(instance)


def _cause(cause, graph, key: dg.AssetKey, latest) -> str:
    """Dagster's stale cause; a new code version with what changed (``policy.changed_parts``)
    from the version the asset was built with, which Dagster records on its materialisation."""
    if cause.dependency is not None:
        return f"{cause.reason} ({cause.dependency.asset_key.to_user_string()})"
    if cause.category == StaleCauseCategory.CODE and latest is not None:
        built_with = latest.asset_materialization.tags.get(CODE_VERSION_TAG)
        changed = changed_parts(built_with, graph.get(key).code_version)
        if changed:
            return f"{cause.reason} (changed: {', '.join(changed)})"
    return cause.reason


def _latest_blocking_checks(instance: dg.DagsterInstance, graph) -> dict:
    """The latest execution of every blocking check, by check key, None for a check never
    executed (one query)."""
    check_keys = [k for k in graph.asset_check_keys if graph.get_check_spec(k).blocking]
    if not check_keys:
        return {}
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(check_keys)
    return {k: latest.get(k) for k in check_keys}


def _failed_blocking_checks(
    instance: dg.DagsterInstance, latest: dict, key: dg.AssetKey, built: EventLogRecord | None
) -> list[str]:
    """Blocking checks of ``key`` that did not pass the table built by ``built`` (the asset's
    current materialisation): failed with ERROR on it, or gave it no result at all (the run
    was killed between the table and its checks, or the checks were left out of the run).
    Dagster's own ``latest`` execution is used when it evaluated that table; otherwise the
    latest one that finished is looked up, as an execution still planned (or never finished)
    says nothing about any table."""
    if built is None:
        return []
    failed = []
    mine = {k: r for k, r in latest.items() if k.asset_key == key}
    for check_key, record in sorted(mine.items(), key=lambda item: item[0].name):
        if not _evaluated(record, built):
            finished = instance.event_log_storage.get_asset_check_execution_history(
                check_key, limit=1, status=COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES
            )
            record = finished[0] if finished else None
        if record is None or not _evaluated(record, built):
            failed.append(
                f"blocking check {check_key.name} has given no result on the table built in run "
                f"{built.run_id[:8]} (the run stopped before the check, or ran without it)"
            )
            continue
        if record.status != AssetCheckExecutionRecordStatus.FAILED:
            continue
        evaluation = record.event.dagster_event.asset_check_evaluation_data
        if evaluation.severity == dg.AssetCheckSeverity.ERROR:
            failed.append(
                f"blocking check {check_key.name} failed in run {record.run_id[:8]}: "
                f"{evaluation.description or 'see the check in the UI'}"
            )
    return failed


def _evaluated(record: AssetCheckExecutionRecord | None, built: EventLogRecord) -> bool:
    """Whether ``record`` is a finished evaluation of the table ``built`` made: in the same run,
    or, run on its own later, aimed at that materialisation."""
    if record is None or record.status not in COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES:
        return False
    if record.run_id == built.run_id:
        return True
    target = record.event.dagster_event.asset_check_evaluation_data.target_materialization_data
    return target is not None and target.storage_id == built.storage_id


def unchecked(instance: dg.DagsterInstance, graph, asset_keys: list[dg.AssetKey]) -> list[str]:
    """Of ``asset_keys``, each blocking check that failed on the asset's current table or gave
    it no result, as "asset: reason": what a table built on them must not be published from."""
    checks = _latest_blocking_checks(instance, graph)
    records = instance.get_asset_records(asset_keys)
    entries = {r.asset_entry.asset_key: r.asset_entry for r in records}
    found = []
    for key in sorted(asset_keys, key=lambda k: k.to_user_string()):
        entry = entries.get(key)
        built = entry.last_materialization_record if entry else None
        found += [
            f"{key.to_user_string()}: {reason}"
            for reason in _failed_blocking_checks(instance, checks, key, built)
        ]
    return found


def _when(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def resolve(
    instance: dg.DagsterInstance,
    graph,
    files: list[FileVersion],
    with_failures: bool = True,
) -> dict[dg.AssetKey, AssetState]:
    """Every asset's state, upstream first; ``files``: the files as found now
    (``observation.record_changes``); ``with_failures``: look up each asset's last failed
    attempt too."""
    resolver = CachingStaleStatusResolver(instance, graph, loading_context(instance))
    resolver.instance_queryer.prefetch_asset_records(list(graph.toposorted_asset_keys))
    checks = _latest_blocking_checks(instance, graph)
    missing_files = {v.key: f"the file {v.path} is not there" for v in files if not v.sha256}
    all_keys = list(graph.toposorted_asset_keys)
    records = {r.asset_entry.asset_key: r.asset_entry for r in instance.get_asset_records(all_keys)}
    built = {
        key: entry.last_materialization_record.run_id
        for key, entry in records.items()
        if entry.last_materialization_record is not None
    }
    absent = absent_outputs(graph, built)
    failures_by_run: dict[str, list[str]] = {}
    states: dict[dg.AssetKey, AssetState] = {}
    for key in all_keys:
        status = resolver.get_status(key)
        entry = records.get(key)
        latest = entry.last_materialization_record if entry else None
        causes = [_cause(c, graph, key, latest) for c in resolver.get_stale_causes(key)]
        if key in missing_files:
            causes.append(missing_files[key])
            status = StaleStatus.MISSING
        state = AssetState(
            key,
            status.value,
            causes,
            _failed_blocking_checks(instance, checks, key, latest),
            absent=[absent[key]] if key in absent else [],
        )
        # the last run that planned to build it (SQLite storage keeps only ``last_run_id``)
        attempt = (
            (entry.last_planned_materialization_run_id or entry.last_run_id) if entry else None
        )
        if with_failures and attempt and (latest is None or latest.run_id != attempt):
            run = instance.get_run_record_by_id(attempt)
            if run is not None and run.dagster_run.status in (
                dg.DagsterRunStatus.FAILURE,
                dg.DagsterRunStatus.CANCELED,
            ):
                if attempt not in failures_by_run:
                    failures_by_run[attempt] = run_failure_messages(instance, attempt, graph)
                own = [
                    m for m in failures_by_run[attempt] if m.startswith(f"{key.to_user_string()}:")
                ]
                what = own[0].split(": ", 1)[1] if own else "not built (the run stopped earlier)"
                ended = run.end_time or run.create_timestamp.timestamp()
                state.last_failure = f"run {attempt[:8]} ({_when(ended)}): {what}"
        for parent in sorted(graph.get(key).parent_keys, key=lambda k: k.to_user_string()):
            upstream = states.get(parent)
            if upstream is None:
                continue
            nearest = [parent] if upstream.own_behind else []
            state.waits_on += [k for k in nearest + upstream.waits_on if k not in state.waits_on]
        states[key] = state
    return states


def behind(states: dict[dg.AssetKey, AssetState], graph) -> list[dg.AssetKey]:
    """The assets a refresh rebuilds: every materialisable asset that is behind."""
    return [k for k, s in states.items() if s.behind and graph.get(k).is_materializable]


def layers() -> list[str]:
    """Layers in the order data flows through them."""
    return [
        keys.DELIVERY,
        keys.REFERENCE_FILES,
        keys.REFERENCE,
        keys.RAW,
        keys.VALIDATED,
        keys.HARMONISED,
        keys.INDICATORS,
        keys.REPORT,
        keys.AUDIT,
    ]
