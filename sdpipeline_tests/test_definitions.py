"""The code location loads, lists every asset in its layer, and passes Dagster's own validation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sdpipeline import settings
from sdpipeline.definitions import defs
from sdpipeline.defs import keys


def _keys(group: str) -> set[str]:
    graph = defs.resolve_asset_graph()
    return {
        key.to_user_string()
        for key in graph.get_all_asset_keys()
        if graph.get(key).group_name == group
    }


def test_every_instrument_and_wave_has_a_file_and_a_raw_asset(codebook):
    expected = {f"{i}_{w.year}" for i in codebook.instruments for w in codebook.waves.values()}
    assert _keys("raw") == {f"raw/{name}" for name in expected}
    assert _keys("delivery") == {f"delivery/{name}" for name in expected}
    graph = defs.resolve_asset_graph()
    for instrument in codebook.instruments.values():
        for wave in instrument.files:
            parents = graph.get(keys.raw(instrument, codebook, wave)).parent_keys
            assert parents == {keys.delivery(instrument, codebook, wave)}


def test_keys_name_the_layer_and_the_warehouse_table():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        layer, _ = key.path
        assert graph.get(key).group_name == layer, key


def test_reference_layer(codebook):
    assert _keys("reference") == {
        "reference/municipalities_2017",
        "reference/municipalities_2021",
        "reference/municipality_crosswalk",
        "reference/population_totals",
        "reference/population_adults",
        "reference/recodes",
    }


def test_assets_describe_themselves():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description and len(node.description) > 40, key


def test_full_refresh_job_materialises_every_materialisable_asset():
    job = defs.resolve_job_def("full_refresh")
    graph = defs.resolve_asset_graph()
    materialisable = {k for k in graph.get_all_asset_keys() if graph.get(k).is_materializable}
    assert job.asset_layer.executable_asset_keys == materialisable
    assert len(materialisable) == 6 + 12 + 12 + 6 + 1 + 4 + 9


def test_lineage_runs_on_to_indicators_and_report_tables():
    graph = defs.resolve_asset_graph()
    estimates = graph.get(keys.indicators("estimates"))
    assert {keys.harmonised(n) for n in ("residents", "clients", "heads")} <= (
        estimates.parent_keys
    )
    assert keys.indicators("estimates") in graph.get(keys.report("headline_indicators")).parent_keys
    exports = graph.get(keys.report("exports"))
    # the report's tables, and the harmonised tables it publishes as datasets beside them
    assert {a.to_user_string() for a in exports.parent_keys} == (
        _keys("report") - {"report/exports"}
    ) | _keys("harmonised")


def test_lineage_runs_file_raw_validated_harmonised_for_every_instrument(codebook):
    graph = defs.resolve_asset_graph()
    for name, instrument in codebook.instruments.items():
        harmonised = graph.get(keys.harmonised(name))
        for wave in instrument.files:
            validated = keys.validated(instrument, codebook, wave)
            raw = keys.raw(instrument, codebook, wave)
            assert validated in harmonised.parent_keys
            assert graph.get(validated).parent_keys == {raw}
            assert graph.get(raw).parent_keys == {keys.delivery(instrument, codebook, wave)}
        assert keys.reference("municipality_crosswalk") in harmonised.parent_keys
        assert keys.reference("recodes") in harmonised.parent_keys
        checks = {k.name for k in graph.get_check_keys_for_assets({harmonised.key})}
        assert checks == {"harmonised_contract", "gx_harmonised_contract"}


def test_validated_layer_has_blocking_pandera_and_gx_checks(codebook):
    graph = defs.resolve_asset_graph()
    validated = {
        keys.validated(instrument, codebook, wave): keys.raw(instrument, codebook, wave)
        for instrument in codebook.instruments.values()
        for wave in instrument.files
    }
    assert _keys("validated") == {k.to_user_string() for k in validated}
    for key, raw in validated.items():
        assert graph.get(key).parent_keys == {raw}
        check_keys = graph.get_check_keys_for_assets({key})
        checks = {k.name: graph.get_check_spec(k) for k in check_keys}
        assert set(checks) == {"row_contract", "gx_dataset_contract"}
        assert all(c.blocking for c in checks.values())
    audit = graph.get(keys.audit("check_runs"))
    assert set(validated) <= audit.parent_keys


def test_dagster_definitions_validate(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=settings.REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All code locations passed validation" in result.stdout + result.stderr
