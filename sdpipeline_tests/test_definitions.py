"""The code location loads, lists every asset in its layer, matches the snapshot of its asset
specs, and passes Dagster's own tools (``dg check defs``, ``dg list defs``, ``dagster definitions
validate``).

When assets change on purpose, write the snapshot again and review its diff:
``SDPIPELINE_UPDATE_SNAPSHOT=1 .venv/bin/pytest sdpipeline_tests/test_definitions.py -k snapshot``
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sdpipeline import settings
from sdpipeline.definitions import defs
from sdpipeline.defs import keys, policy

from .conftest import HUNG_SECONDS

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_specs.json"


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


def asset_specs() -> dict[str, dict]:
    """What the code location says of every asset, as plain data: the snapshot's content."""
    graph = defs.resolve_asset_graph()
    specs = {}
    for key in sorted(graph.get_all_asset_keys()):
        node = graph.get(key)
        condition = node.automation_condition
        specs[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "owners": list(node.owners),
            "tags": {
                k: v for k, v in sorted(node.tags.items()) if not k.startswith("dagster/kind/")
            },
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "checks": {
                k.name: {"blocking": graph.get_check_spec(k).blocking}
                for k in sorted(graph.get_check_keys_for_assets({key}), key=lambda k: k.name)
            },
            "execution": "materialise" if node.is_materializable else "observe",
            "automation_condition": condition.get_label() if condition else None,
            "code_version_of": list(policy.code_basis(key, node.tags)),
            "has_code_version": node.code_version is not None,
        }
    return specs


def test_asset_specs_match_the_snapshot():
    current = asset_specs()
    if os.environ.get("SDPIPELINE_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=1, ensure_ascii=False) + "\n", "utf-8")
    recorded = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    changed = sorted(
        k for k in current.keys() | recorded.keys() if current.get(k) != recorded.get(k)
    )
    assert not changed, (
        f"asset specs differ from {SNAPSHOT.name} for {changed[:10]}; if on purpose: "
        "SDPIPELINE_UPDATE_SNAPSHOT=1 .venv/bin/pytest sdpipeline_tests/test_definitions.py "
        "-k snapshot"
    )


def test_every_group_has_owners_and_every_built_asset_automation_and_a_code_version():
    for name, spec in asset_specs().items():
        assert spec["owners"] == policy.OWNERS[spec["group"]], name
        if spec["execution"] == "materialise":
            assert spec["automation_condition"] and spec["has_code_version"], name


def test_full_refresh_job_observes_every_file_and_materialises_every_asset():
    job = defs.resolve_job_def("full_refresh")
    graph = defs.resolve_asset_graph()
    assert job.asset_layer.executable_asset_keys == {
        k for k in graph.get_all_asset_keys() if graph.get(k).is_executable
    }


def test_lineage_runs_on_to_indicators_and_report_tables():
    graph = defs.resolve_asset_graph()
    estimates = graph.get(keys.indicators("estimates"))
    assert {keys.harmonised(n) for n in ("residents", "clients", "heads")} <= (
        estimates.parent_keys
    )
    assert keys.indicators("estimates") in graph.get(keys.report("headline_indicators")).parent_keys
    exports = graph.get(keys.report("exports"))
    # the report's tables and the cell lineage, and the harmonised tables it publishes as
    # datasets beside them
    assert keys.report("cell_lineage") in exports.parent_keys
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


def _dagster_tool(command: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """A Dagster command-line tool of the project's environment, run in the repository as a
    data engineer runs it, on an instance of its own."""
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    tool = Path(sys.executable).with_name(command[0])
    result = subprocess.run(
        [str(tool), *command[1:]],
        cwd=settings.REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=HUNG_SECONDS,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (["dg", "check", "defs"], "All definitions loaded successfully"),
        (
            ["dagster", "definitions", "validate", "-w", "workspace.yaml"],
            "All code locations passed validation",
        ),
    ],
    ids=["dg check defs", "dagster definitions validate"],
)
def test_dagster_tools_load_the_definitions(command, said, tmp_path):
    result = _dagster_tool(command, tmp_path)
    assert said in result.stdout + result.stderr


def test_dg_list_defs_lists_every_asset_as_the_snapshot_has_it(tmp_path):
    listed = json.loads(_dagster_tool(["dg", "list", "defs", "--json"], tmp_path).stdout)
    specs = asset_specs()
    assert {
        a["asset_key"]: {
            "group": a["group_name"],
            "owners": [f"team:{o['team']}" for o in a["owners"]],
            "deps": sorted(a["dependency_keys"]),
        }
        for a in listed["assets"]
    } == {
        name: {"group": s["group"], "owners": s["owners"], "deps": s["deps"]}
        for name, s in specs.items()
    }
    assert {c["key"] for c in listed["asset_checks"]} == {
        f"{name}:{check}" for name, s in specs.items() for check in s["checks"]
    }
    assert {s["name"] for s in listed["sensors"]} == {"delivery_automation", "delivery_files"}
    assert {j["name"] for j in listed["jobs"]} >= {"full_refresh"}


def test_loading_the_definitions_leaves_the_steps_libraries_to_the_steps():
    """What a nothing-changed refresh loads is the definitions alone: the libraries only steps
    use (the solver, Excel writing, the row contracts, Great Expectations) come with the steps,
    so that deciding stays a matter of seconds."""
    probe = (
        "import sys\n"
        "from sdpipeline.definitions import defs\n"
        "defs.resolve_asset_graph()\n"
        "heavy = ('scipy', 'openpyxl', 'pandera', 'great_expectations')\n"
        "print(','.join(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=HUNG_SECONDS
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", result.stdout
