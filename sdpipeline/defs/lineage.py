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
from dagster._core.definitions.data_version import (
    get_input_data_version_tag,
    get_input_event_pointer_tag,
)

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


def lineage(instance: dg.DagsterInstance, graph, tables: list[dg.AssetKey]) -> Lineage:
    """The files behind the current versions of ``tables`` (in the asset graph ``graph``)."""
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
        tags = record.asset_materialization.tags or {}
        for parent in graph.get(key).parent_keys:
            version = tags.get(get_input_data_version_tag(parent))
            if parent.path[0] in FILE_LAYERS:
                if version is not None:
                    found.files.setdefault(parent, set()).add(version)
                continue
            pointer = tags.get(get_input_event_pointer_tag(parent))
            if pointer and pointer.isdigit():
                pending.append((parent, int(pointer)))
    return found
