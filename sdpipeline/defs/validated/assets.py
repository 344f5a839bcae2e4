"""One validated asset per instrument and wave: the raw rows that keep the codebook's row
contract (pandera). Failing rows go to ``audit.quarantine`` with their reasons; a file with
too many of them is rejected whole and the previous validated table stays as it was. The rows
kept are then checked as a whole by Great Expectations (``gx_checks``)."""

import time
from typing import TYPE_CHECKING

import dagster as dg

from sdpipeline.codebook import Codebook, Instrument, default_codebook
from sdpipeline.columns import source_columns
from sdpipeline.defs import keys
from sdpipeline.defs.gx_checks import gx_dataset_contract_spec, start_dataset_contract
from sdpipeline.defs.metadata import (
    NOT_SHOWN,
    in_english,
    preview_columns,
    sources_of,
    table_metadata,
)
from sdpipeline.defs.policy import with_policy
from sdpipeline.defs.resources import GreatExpectations, Warehouse
from sdpipeline.validation import audit
from sdpipeline.warehouse import qualified, replace_table_as

if TYPE_CHECKING:
    from sdpipeline.validation.quarantine import ContractOutcome

SCHEMA = keys.VALIDATED
ROW_CONTRACT = "row_contract"


class ContractConfig(dg.Config):
    """Run-time override of the codebook's quarantine threshold."""

    max_quarantine_share: float | None = None


def _failures_markdown(outcome: "ContractOutcome") -> str:
    failing = outcome.checks[outcome.checks["failing_rows"] > 0]
    if failing.empty and not outcome.file_errors:
        return "Every row keeps every rule."
    lines = [
        "| column | check | failing rows | rows (sample) | values (sample) |",
        "|---|---|---|---|---|",
    ]
    shown = set(preview_columns(failing["column"].astype(str), SCHEMA))
    lines += [
        f"| {r.column} | {r.message} | {r.failing_rows} | {', '.join(map(str, r.sample_rows))} "
        f"| {', '.join(r.sample_values) if r.column in shown else NOT_SHOWN} |"
        for r in failing.itertuples()
    ]
    lines += [f"| (file) | {e} | | | |" for e in outcome.file_errors]
    return "\n".join(lines)


def validated_asset(
    instrument: Instrument, codebook: Codebook, wave_id: str
) -> dg.AssetsDefinition:
    name = keys.wave_table(instrument, codebook, wave_id)
    key = keys.validated(instrument, codebook, wave_id)
    descriptions = in_english(source_columns(instrument, wave_id, codebook))
    check = dg.AssetCheckSpec(
        ROW_CONTRACT,
        asset=key,
        blocking=True,
        description="pandera row contract derived from the codebook: types, codes, ranges, "
        "unique identifiers, municipality codes of the wave's vintage, cross-field rules. "
        "WARN when rows were quarantined, ERROR when the file was rejected.",
    )

    @dg.asset(
        key=key,
        group_name=keys.VALIDATED,
        deps=[keys.raw(instrument, codebook, wave_id)],
        check_specs=[check, gx_dataset_contract_spec(key)],
        kinds={"duckdb", "pandera"},
        tags={"layer": "validated", "instrument": instrument.name, "wave": wave_id},
        description=(
            f"{instrument.label.en}, {codebook.waves[wave_id].label.en}: the delivered rows that "
            "keep the codebook's row contract; the rest are in audit.quarantine with reasons."
        ),
    )
    def _asset(
        context: dg.AssetExecutionContext,
        config: ContractConfig,
        warehouse: Warehouse,
        great_expectations: GreatExpectations,
    ):
        threshold = (
            config.max_quarantine_share
            if config.max_quarantine_share is not None
            else codebook.validation.max_quarantine_share
        )
        # pandera is imported by the step, not by the definitions (a refresh that finds
        # nothing to do loads those alone)
        from sdpipeline.validation.contracts import row_contract
        from sdpipeline.validation.quarantine import apply_contract, kept_rows

        schema = row_contract(instrument, wave_id, codebook)
        raw = qualified(keys.RAW, name)
        with warehouse.get_connection(warehouse.sql_memory_limit) as connection:
            context.log.info(f"{key.to_user_string()}: checking {raw} against the row contract")
            started = time.perf_counter()
            outcome = apply_contract(connection, raw, schema)
            seconds = time.perf_counter() - started
            rejected = outcome.rejected(threshold)
            sources = sources_of(connection, keys.RAW, name)
            file_name, sha256 = connection.execute(
                f"SELECT any_value(_source_file), any_value(_source_sha256) FROM {raw}"
            ).fetchall()[0]
            audit_context = audit.CheckContext(
                run_id=context.run.run_id,
                asset=key.to_user_string(),
                instrument=instrument.name,
                waves=(wave_id,),
                files=sources,
            )
            connection.execute("BEGIN TRANSACTION")
            severity = "ERROR" if rejected else "WARN"
            audit.record_checks(
                connection, audit_context, "pandera", outcome.audit_results(severity)
            )
            audit.record_quarantine(connection, audit_context, outcome.quarantined, rejected)
            connection.execute("COMMIT")
            if not rejected:
                connection.register("_quarantined", outcome.quarantined[["source_row"]])
                kept = kept_rows(
                    connection, raw, schema, "_quarantined" if len(outcome.quarantined) else None
                )
                replace_table_as(connection, SCHEMA, name, kept)
                connection.unregister("_quarantined")
                gx_checked = start_dataset_contract(
                    connection,
                    SCHEMA,
                    name,
                    instrument,
                    wave_id,
                    codebook,
                    great_expectations,
                    audit_context,
                )
                metadata = table_metadata(
                    connection,
                    SCHEMA,
                    name,
                    None,
                    sources_of(connection, SCHEMA, name),
                    descriptions,
                )
        check_metadata = {
            "seconds": round(seconds, 3),
            "rows_checked": outcome.rows,
            "rows_quarantined": len(outcome.quarantined),
            "quarantined_share": round(outcome.quarantined_share, 4),
            "threshold": threshold,
            "file_sha256": sha256 or "",
            "failures": dg.MetadataValue.md(_failures_markdown(outcome)),
        }
        if rejected:
            yield dg.AssetCheckResult(
                check_name=ROW_CONTRACT,
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata=check_metadata,
            )
            raise dg.Failure(
                description=(
                    f"file {file_name}: rejected, {len(outcome.quarantined)} of "
                    f"{outcome.rows} rows ({outcome.quarantined_share:.0%}) break the row "
                    f"contract (threshold {threshold:.0%}). {outcome.summary()}"
                ),
                metadata=check_metadata,
            )
        if len(outcome.quarantined):
            context.log.warning(
                f"{file_name}: {len(outcome.quarantined)} rows quarantined: {outcome.summary()}"
            )
        yield dg.MaterializeResult(
            metadata={**metadata, "rows_quarantined": len(outcome.quarantined)}
        )
        yield dg.AssetCheckResult(
            check_name=ROW_CONTRACT,
            passed=outcome.quarantined.empty,
            severity=dg.AssetCheckSeverity.WARN,
            metadata=check_metadata,
        )
        with warehouse.get_connection() as connection:
            yield gx_checked(connection)

    return _asset


def build_validated_assets(codebook: Codebook) -> list[dg.AssetsDefinition]:
    return [
        validated_asset(instrument, codebook, wave_id)
        for instrument in codebook.instruments.values()
        for wave_id in codebook.waves
        if wave_id in instrument.files
    ]


@dg.definitions
def validated_layer() -> dg.Definitions:
    return dg.Definitions(assets=with_policy(build_validated_assets(default_codebook())))
