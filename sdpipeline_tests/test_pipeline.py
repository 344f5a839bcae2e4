"""Real materialisations into a real DuckDB file: every layer holds what it should, with
provenance, and tells the UI what it holds."""

from __future__ import annotations

import dagster as dg
import duckdb

from sdpipeline.definitions import defs
from sdpipeline.ingest import sha256_of

from .conftest import materialize


def test_full_materialisation_succeeds_and_passes_every_check(pipeline_run):
    _, warehouse, result = pipeline_run
    assert result.success
    evaluations = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    # 2 checks on 12 validated and on 6 harmonised tables, and the report's disclosure audit
    assert len(evaluations) == 37
    assert all(e.passed for e in evaluations), [
        (e.asset_key, e.check_name) for e in evaluations if not e.passed
    ]
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        failed = connection.execute(
            "SELECT count(*) FROM audit.check_runs WHERE NOT passed"
        ).fetchone()
        assert failed[0] == 0
        assert connection.execute("SELECT count(*) FROM audit.quarantine").fetchone()[0] == 0


def test_raw_layer_keeps_the_delivery_with_provenance(pipeline_run):
    folder, warehouse, _ = pipeline_run
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        tables = {
            row[0]
            for row in connection.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'raw' "
                "AND table_name NOT LIKE '%value_labels'"
            ).fetchall()
        }
        assert len(tables) == 12
        rows, sha, first, last = connection.execute(
            "SELECT count(*), any_value(_source_sha256), min(_source_row), max(_source_row) "
            "FROM raw.residents_2023"
        ).fetchone()
        assert (rows, first, last) == (1200, 2, 1201)  # CSV line numbers under the header
        assert sha == sha256_of(folder / "raw" / "ex_post_2023" / "iedzivotaji_2023.csv")
        comments = connection.execute(
            "SELECT count(*) FROM raw.residents_2023 WHERE E1_komentars LIKE '%ģimenes%'"
        ).fetchone()[0]
        assert comments > 0
        labels = connection.execute(
            "SELECT label FROM raw.clients_2017_value_labels WHERE variable = 'k1' AND code = 1"
        ).fetchone()[0]
        assert labels == "Pilnībā apmierināts"
        crosswalk = connection.execute(
            "SELECT count(*) FROM reference.municipality_crosswalk"
        ).fetchone()[0]
        assert crosswalk == 121
        validated = connection.execute("SELECT count(*) FROM validated.residents_2023").fetchone()[
            0
        ]
        assert validated == 1200


def test_every_table_asset_reports_rows_schema_preview_and_sources(pipeline_run):
    _, _, result = pipeline_run
    events = result.get_asset_materialization_events()
    # every asset the code location can materialise, once (the files are observed, not built)
    graph = defs.resolve_asset_graph()
    assert sorted(e.asset_key for e in events) == sorted(graph.materializable_asset_keys)
    for event in events:
        metadata = event.materialization.metadata
        if event.asset_key == dg.AssetKey(["report", "exports"]):
            assert metadata["files"].value  # files, not a table
            continue
        assert metadata["dagster/row_count"].value > 0, event.asset_key
        assert metadata["dagster/column_schema"].value.columns
        if event.asset_key != dg.AssetKey(["audit", "check_runs"]):
            assert "|" in metadata["preview"].value
            assert metadata["source_sha256"].value, event.asset_key
    by_key = {e.asset_key.to_user_string(): e.materialization.metadata for e in events}
    residents = by_key["raw/residents_2017"]
    assert (
        residents["file_sha256"].value == residents["source_sha256"].value["iedzivotaji_2017.sav"]
    )
    schema = {c.name: c.description for c in residents["dagster/column_schema"].value.columns}
    assert schema["q1"].startswith("aware_service: Do you know")
    assert (
        by_key["validated/residents_2017"]["source_sha256"].value
        == residents["source_sha256"].value
    )


def test_extra_columns_are_kept_and_reported(isolated):
    path = isolated / "raw" / "ex_ante_2017" / "pasvaldibu_vaditaji_2017.csv"
    text = path.read_bytes().decode("utf-8-sig").splitlines()
    text = [text[0] + ";Piezimes"] + [line + ";x" for line in text[1:]]
    path.write_bytes(("\r\n".join(text)).encode("utf-8-sig"))
    result = materialize(isolated / "warehouse.duckdb", selection=["raw/leaders_2017"])
    assert result.success
    event = result.get_asset_materialization_events()[0]
    assert event.materialization.metadata["unknown_columns"].value == ["Piezimes"]


def test_every_column_of_every_table_says_what_it_holds(pipeline_run, codebook):
    """Delivered, derived and provenance columns alike are described in the column schema,
    from the codebook; a column one wave did not ask says so, never 'nan'."""
    _, _, result = pipeline_run
    by_key = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    layers = ("raw/", "validated/", "harmonised/")
    checked = 0
    for key, metadata in by_key.items():
        if not key.startswith(layers):
            continue
        for column in metadata["dagster/column_schema"].value.columns:
            assert column.description, (key, column.name)
            assert "nan" not in column.description.split(), (key, column.name)
            checked += 1
    assert checked > 900
    residents = {
        c.name: c.description
        for c in by_key["harmonised/residents"]["dagster/column_schema"].value.columns
    }
    assert residents["weight"] == codebook.derived.harmonised["weight"].en
    assert residents["_source_row"] == codebook.derived.provenance["_source_row"].en
    assert (
        "[one_wave] ex_ante_2017: not asked; ex_post_2023: D1_ATR ("
        in (residents["atr_service_change"])
    )
    specialists = {
        c.name: c.description
        for c in by_key["harmonised/specialists"]["dagster/column_schema"].value.columns
    }
    assert specialists["caseload_missing"] == codebook.derived.missing_label("caseload").en
    raw = by_key["raw/residents_2023"]
    assert raw["delivered_file"].value.endswith("iedzivotaji_2023.csv")
    assert not [k for k in raw if k.startswith("file_file")]
