"""The files the pipeline reads, as Dagster sees them: observable source assets whose data
version is the file's SHA-256 (never its modification time).

Every delivered file (``delivery/*``) and reference file (``reference_files/*``) is observed:
in every job that reads it (the job's first step), from the UI ("Observe sources"), by the
sensor ``delivery_files`` and by ``sdpipeline run``, ``refresh`` and ``status`` before they
decide. An asset that read a file records the version it read, so Dagster's own staleness
("has a new dependency data version") says which tables are behind a changed file.

The gap filled here: observing a source through Dagster records an observation each time, and
automation counts every observation as new data. The sensor and the command line therefore
record one only when a checksum differs from the last one recorded, so that each new content of
a file triggers exactly one rebuild, however often it is looked at.
"""

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster._core.definitions.data_version import (
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
)

from sdpipeline import settings
from sdpipeline.codebook import Codebook
from sdpipeline.defs import keys
from sdpipeline.ingest import delivery_path, sha256_of
from sdpipeline.reference import (
    CROSSWALK_FILE,
    POPULATION_FILE,
    TOTALS_FILE,
    VINTAGE_FILES,
    how_to_restore,
)

REFERENCE_FILES = (
    VINTAGE_FILES[2017],
    VINTAGE_FILES[2021],
    CROSSWALK_FILE,
    TOTALS_FILE,
    POPULATION_FILE,
)


@dataclass(frozen=True)
class FileVersion:
    """A file as found now: its checksum, or None when it is not there."""

    key: dg.AssetKey
    path: Path
    sha256: str | None


def file_paths(codebook: Codebook) -> dict[dg.AssetKey, Path]:
    """Where each observed file is (read from the settings at the time of asking)."""
    paths = {
        keys.delivery(instrument, codebook, wave): delivery_path(instrument, wave)
        for instrument in codebook.instruments.values()
        for wave in codebook.waves
        if wave in instrument.files
    }
    paths.update(
        {keys.reference_file(name): settings.reference_dir() / name for name in REFERENCE_FILES}
    )
    return paths


def current_versions(codebook: Codebook) -> list[FileVersion]:
    """Every observed file as found now. The files are hashed side by side: hashlib lets go of
    the interpreter while it hashes, so a large delivery is read on every core."""
    paths = file_paths(codebook)
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        sums = pool.map(lambda path: sha256_of(path) if path.is_file() else None, paths.values())
        return [
            FileVersion(key, path, sha256)
            for (key, path), sha256 in zip(paths.items(), sums, strict=True)
        ]


def _metadata(version: FileVersion) -> dict[str, object]:
    return {
        "path": dg.MetadataValue.path(str(version.path)),
        "sha256": version.sha256 or "",
        "size_bytes": version.path.stat().st_size,
    }


def observable_files(
    specs: list[dg.AssetSpec], codebook: Codebook, name: str
) -> dg.AssetsDefinition:
    """One observation step for ``specs`` (files of ``file_paths``). A file the codebook
    declares that is not there fails the step, naming it, once the others are observed: the
    run stops before anything is built, rather than leaving out what reads the file and
    calling the run a success."""

    @dg.multi_observable_source_asset(specs=specs, can_subset=True, name=name)
    def _observe(context: dg.AssetExecutionContext) -> Iterator[dg.ObserveResult]:
        paths = file_paths(codebook)
        missing = []
        for key in sorted(context.selected_asset_keys):
            path = paths[key]
            if not path.is_file():
                remedy = (
                    how_to_restore(path.name)
                    if key.path[0] == keys.REFERENCE_FILES
                    else "the codebook names it; deliver it, or take it out of the codebook"
                )
                missing.append(f"{key.to_user_string()}: {path} is not there ({remedy})")
                continue
            version = FileVersion(key, path, sha256_of(path))
            yield dg.ObserveResult(
                asset_key=key,
                data_version=dg.DataVersion(version.sha256),
                metadata=_metadata(version),
            )
        if missing:
            raise dg.Failure(
                description=f"{len(missing)} declared file(s) not delivered: " + "; ".join(missing)
            )

    return _observe


def recorded_versions(
    instance: dg.DagsterInstance, keys: list[dg.AssetKey]
) -> dict[dg.AssetKey, str | None]:
    """The checksum Dagster last recorded for each file (None if it never observed it). Asked
    file by file: SQLite storage keeps no latest observation in its asset records."""
    recorded: dict[dg.AssetKey, str | None] = {}
    for key in keys:
        record = instance.get_latest_data_version_record(key, is_source=True)
        observation = record.asset_observation if record else None
        recorded[key] = observation.tags.get(DATA_VERSION_TAG) if observation else None
    return recorded


def changed_observations(
    instance: dg.DagsterInstance, versions: list[FileVersion]
) -> list[dg.AssetObservation]:
    """An observation for each file whose checksum (in ``versions``, as found now) differs
    from the one last recorded."""
    recorded = recorded_versions(instance, [v.key for v in versions])
    return [
        dg.AssetObservation(
            asset_key=version.key,
            metadata=_metadata(version),
            tags={DATA_VERSION_TAG: version.sha256, DATA_VERSION_IS_USER_PROVIDED_TAG: "true"},
        )
        for version in versions
        if version.sha256 is not None and version.sha256 != recorded[version.key]
    ]


def record_changes(instance: dg.DagsterInstance, codebook: Codebook) -> list[FileVersion]:
    """Record the changed files' checksums in Dagster (outside any run); returns every file
    as found now, so that nothing is hashed twice."""
    versions = current_versions(codebook)
    for observation in changed_observations(instance, versions):
        instance.report_runless_asset_event(observation)
    return versions
