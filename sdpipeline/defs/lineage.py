"""Which files a table was built from, by Dagster's own record of every materialisation's
inputs: each materialisation notes the data version of each input and the event it came from,
and a file's data version is its SHA-256. Following those notes from a table back to the files
gives the exact checksums it descends from, through every layer.

The report is published only when its tables agree on them (``defs/report/assets.py``): two
checksums of one file among them would be a report that mixes two deliveries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg
from dagster._core.definitions.data_version import DataProvenance

from sdpipeline.defs.policy import FILE_LAYERS


@dataclass
class Lineage:
    files: dict[dg.AssetKey, set[str]] = field(default_factory=dict)
    """Each file the tables descend from → the checksums met on the way."""
    runs: dict[dg.AssetKey, str] = field(default_factory=dict)
    """Each table asked about → the run that built its current version."""

    def mixed(self) -> dict[dg.AssetKey, set[str]]:
        return {key: shas for key, shas in self.files.items() if len(shas) > 1}


def _materialization(
    instance: dg.DagsterInstance, key: dg.AssetKey, storage_id: int | None
) -> dg.EventLogRecord | None:
    """The latest materialisation of ``key``, or the one stored as ``storage_id``."""
    wanted = (
        key
        if storage_id is None
        else dg.AssetRecordsFilter(asset_key=key, storage_ids=[storage_id])
    )
    records = instance.fetch_materializations(wanted, limit=1).records
    return records[0] if records else None


def lineage(instance: dg.DagsterInstance, tables: list[dg.AssetKey]) -> Lineage:
    """The files behind the current versions of ``tables``. Each materialisation's own record
    names its inputs, so no asset graph is needed (a run of a few assets sees only those)."""
    found = Lineage()
    seen: set[tuple[dg.AssetKey, int | None]] = set()
    pending: list[tuple[dg.AssetKey, int | None]] = [(key, None) for key in tables]
    while pending:
        key, storage_id = pending.pop()
        if (key, storage_id) in seen:
            continue
        seen.add((key, storage_id))
        record = _materialization(instance, key, storage_id)
        if record is None:
            continue
        if storage_id is None:
            found.runs[key] = record.run_id
        provenance = DataProvenance.from_tags(record.asset_materialization.tags or {})
        if provenance is None:
            continue
        for parent, version in provenance.input_data_versions.items():
            if parent.path[0] in FILE_LAYERS:
                found.files.setdefault(parent, set()).add(version.value)
            elif provenance.input_storage_ids.get(parent) is not None:
                pending.append((parent, provenance.input_storage_ids[parent]))
    return found
