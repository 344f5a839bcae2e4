"""What needs rebuilding: delivered and reference files compared by checksum (never by
modification time) with what their assets last read, and each asset's code version (package,
codebook and indicator catalogue) with the one it was built with. Only the assets that are
behind, and everything downstream of them, are rebuilt; an unchanged delivery rebuilds nothing.
"""

from __future__ import annotations

import hashlib
from typing import Any

import dagster as dg

from sdpipeline import __version__, settings
from sdpipeline.codebook import Codebook, default_codebook
from sdpipeline.defs import keys
from sdpipeline.ingest import delivery_path, sha256_of
from sdpipeline.reference import CROSSWALK_FILE, POPULATION_FILE, TOTALS_FILE, VINTAGE_FILES

REFERENCE_FILES = {
    "municipalities_2017": (VINTAGE_FILES[2017],),
    "municipalities_2021": (VINTAGE_FILES[2021],),
    "municipality_crosswalk": (CROSSWALK_FILE,),
    "population_totals": (TOTALS_FILE, VINTAGE_FILES[2017], VINTAGE_FILES[2021]),
    "population_adults": (POPULATION_FILE,),
}


def code_version(codebook: Codebook) -> str:
    """Changes when the package, the codebook or the indicator catalogue changes."""
    catalogue = (settings.data_dir() / "indicators" / "catalogue.yaml").read_bytes()
    digest = hashlib.sha256(f"{__version__}:{codebook.digest}:".encode() + catalogue)
    return digest.hexdigest()[:16]


def versioned(
    assets: list[dg.AssetsDefinition | dg.AssetSpec],
) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    """The assets with the code version of this package, codebook and catalogue, which Dagster
    compares with the version each materialisation recorded."""
    version = code_version(default_codebook())
    return dg.map_asset_specs(lambda spec: spec.replace_attributes(code_version=version), assets)


def _reference_sources(
    files_by_asset: dict[str, tuple[str, ...]],
) -> dict[dg.AssetKey, dict[str, str]]:
    return {
        keys.reference(table): {name: sha256_of(settings.reference_dir() / name) for name in files}
        for table, files in files_by_asset.items()
    }


def stale_sources(instance: dg.DagsterInstance, codebook: Codebook) -> dict[dg.AssetKey, str]:
    """Assets that read files and are behind them, with the reason."""
    current = code_version(codebook)
    expected: dict[dg.AssetKey, dict[str, str]] = _reference_sources(REFERENCE_FILES)
    for instrument in codebook.instruments.values():
        for wave in instrument.files:
            path = delivery_path(instrument, wave)
            if path.exists():
                expected[keys.raw(instrument, codebook, wave)] = {path.name: sha256_of(path)}
    reasons = {}
    for key, files in expected.items():
        event = instance.get_latest_materialization_event(key)
        if event is None or event.asset_materialization is None:
            reasons[key] = "never materialised"
            continue
        materialization = event.asset_materialization
        recorded = materialization.metadata.get("source_sha256")
        if recorded is None or dict(recorded.value) != files:
            reasons[key] = "file changed"
        elif materialization.tags.get("dagster/code_version") != current:
            reasons[key] = "code, codebook or catalogue changed"
    return reasons


def refresh_selection(graph: Any, stale: dict[dg.AssetKey, str]) -> set[dg.AssetKey]:
    """The stale assets and everything downstream of them in ``graph`` (the code location's
    asset graph)."""
    if not stale:
        return set()
    return dg.AssetSelection.assets(*stale).downstream().resolve(graph)
