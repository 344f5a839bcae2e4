"""Real materialisations into a real DuckDB file: the raw layer holds the delivery with
provenance, tells the UI what it holds, and a bad file replaces nothing."""

from __future__ import annotations

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from sdpipeline.codebook import default_codebook
from sdpipeline.defs.raw_assets import build_raw_assets
from sdpipeline.defs.reference_assets import build_reference_assets
from sdpipeline.ingest import sha256_of


def _materialize(warehouse, selection=None):
    codebook = default_codebook()
    assets = [*build_reference_assets(codebook), *build_raw_assets(codebook)]
    return dg.materialize(
        assets,
        resources={"warehouse": DuckDBResource(database=str(warehouse))},
        selection=selection,
        raise_on_error=False,
    )


def test_full_materialisation_loads_every_file_with_provenance(isolated):
    warehouse = isolated / "warehouse.duckdb"
    result = _materialize(warehouse)
    assert result.success
    raw_dir = isolated / "raw"
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
        assert sha == sha256_of(raw_dir / "ex_post_2023" / "iedzivotaji_2023.csv")
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


def test_every_materialisation_reports_rows_schema_preview_and_sources(isolated):
    result = _materialize(isolated / "warehouse.duckdb")
    events = result.get_asset_materialization_events()
    assert len(events) == 17
    for event in events:
        metadata = event.materialization.metadata
        assert metadata["dagster/row_count"].value > 0
        assert metadata["dagster/column_schema"].value.columns
        assert "|" in metadata["preview"].value
        assert metadata["source_sha256"].value
    residents = next(e for e in events if e.asset_key == dg.AssetKey("residents_2017_raw"))
    metadata = residents.materialization.metadata
    assert metadata["file_sha256"].value == metadata["source_sha256"].value["iedzivotaji_2017.sav"]
    schema = {c.name: c.description for c in metadata["dagster/column_schema"].value.columns}
    assert schema["q1"].startswith("aware_service: Do you know")


def test_a_file_missing_a_required_column_fails_and_replaces_nothing(isolated):
    warehouse = isolated / "warehouse.duckdb"
    assert _materialize(warehouse).success
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        before = connection.execute("SELECT * FROM raw.residents_2023 ORDER BY _source_row").df()
    path = isolated / "raw" / "ex_post_2023" / "iedzivotaji_2023.csv"
    lines = path.read_bytes().decode("cp1257").splitlines()
    header = lines[0].split(";")
    drop = header.index("A1_zina")
    kept = [";".join(f for i, f in enumerate(line.split(";")) if i != drop) for line in lines]
    path.write_bytes("\r\n".join(kept).encode("cp1257"))
    result = _materialize(warehouse, selection=["residents_2023_raw"])
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.user_failure_data.description
    assert "iedzivotaji_2023.csv" in message and "A1_zina" in message and "missing" in message
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        after = connection.execute("SELECT * FROM raw.residents_2023 ORDER BY _source_row").df()
    assert after.equals(before)


def test_extra_columns_are_kept_and_reported(isolated):
    path = isolated / "raw" / "ex_ante_2017" / "pasvaldibu_vaditaji_2017.csv"
    text = path.read_bytes().decode("utf-8-sig").splitlines()
    text = [text[0] + ";Piezimes"] + [line + ";x" for line in text[1:]]
    path.write_bytes(("\r\n".join(text)).encode("utf-8-sig"))
    result = _materialize(isolated / "warehouse.duckdb", selection=["leaders_2017_raw"])
    assert result.success
    event = result.get_asset_materialization_events()[0]
    assert event.materialization.metadata["unknown_columns"].value == ["Piezimes"]
