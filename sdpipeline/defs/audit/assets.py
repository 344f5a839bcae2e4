"""The audit trail as an asset: ``audit.check_runs`` (every check ever run) and the GX Data
Docs site, refreshed after every validated and harmonised table has been checked."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from sdpipeline.codebook import Codebook, default_codebook
from sdpipeline.defs import keys
from sdpipeline.defs.policy import with_policy
from sdpipeline.defs.resources import GreatExpectations
from sdpipeline.validation import audit
from sdpipeline.warehouse import table_columns


def build_audit_assets(codebook: Codebook) -> list[dg.AssetsDefinition]:
    checked = [
        keys.validated(instrument, codebook, wave)
        for instrument in codebook.instruments.values()
        for wave in codebook.waves
        if wave in instrument.files
    ] + [keys.harmonised(name) for name in codebook.instruments]

    @dg.asset(
        key=keys.audit(audit.CHECK_RUNS),
        group_name=keys.AUDIT,
        deps=checked,
        kinds={"duckdb", "html"},
        tags={"layer": "audit"},
        description=(
            "Append-only record of every check run (pandera and Great Expectations): run, time, "
            "asset, wave, file checksum, check, result, failing rows, severity; rows set aside "
            "are in audit.quarantine. Also rebuilds the offline GX Data Docs site."
        ),
    )
    def validation_audit_trail(
        context: dg.AssetExecutionContext,
        warehouse: DuckDBResource,
        great_expectations: GreatExpectations,
    ) -> dg.MaterializeResult:
        with warehouse.get_connection() as connection:
            audit.ensure_tables(connection)
            total = connection.execute(
                f"SELECT count(*) FROM {audit.SCHEMA}.{audit.CHECK_RUNS}"
            ).fetchone()[0]
            this_run = connection.execute(
                f"SELECT tool, count(*) AS checks, count(*) FILTER (outcome = '{audit.FAILED}') "
                f"AS failed, count(*) FILTER (outcome = '{audit.TOLERATED}') AS tolerated "
                f"FROM {audit.SCHEMA}.{audit.CHECK_RESULTS} WHERE run_id = ? "
                "GROUP BY tool ORDER BY tool",
                [context.run.run_id],
            ).df()
            failing = connection.execute(
                f"SELECT asset, check_name, tool, outcome, failing_count, severity "
                f"FROM {audit.SCHEMA}.{audit.CHECK_RESULTS} "
                f"WHERE run_id = ? AND outcome != '{audit.PASSED}' "
                "ORDER BY asset, check_name LIMIT 50",
                [context.run.run_id],
            ).df()
            quarantined = connection.execute(
                f"SELECT count(*) FROM {audit.SCHEMA}.{audit.QUARANTINE} WHERE run_id = ?",
                [context.run.run_id],
            ).fetchone()[0]
            columns = table_columns(connection, audit.SCHEMA, audit.CHECK_RUNS)
        index = great_expectations.publish_data_docs(context.run.run_id)
        context.log.info(f"Data Docs: {index}")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": int(total),
                "dagster/table_name": f"{audit.SCHEMA}.{audit.CHECK_RUNS}",
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(name=n, type=t) for n, t in columns]
                ),
                "checks_this_run": dg.MetadataValue.md(this_run.to_markdown(index=False)),
                "not_passed_this_run": dg.MetadataValue.md(
                    failing.to_markdown(index=False) if len(failing) else "none"
                ),
                "rows_quarantined_this_run": int(quarantined),
                "data_docs": dg.MetadataValue.path(str(index)),
            }
        )

    return [validation_audit_trail]


@dg.definitions
def audit_layer() -> dg.Definitions:
    return dg.Definitions(assets=with_policy(build_audit_assets(default_codebook())))
