"""The dataset-level contract as Dagster asset checks: one Great Expectations check per
validated table, recorded in the audit trail and in the GX Data Docs."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from sdpipeline.codebook import Codebook, Instrument
from sdpipeline.defs.raw_assets import raw_table_name
from sdpipeline.validation import audit, gx_runner
from sdpipeline.validation.expectations import (
    ERROR,
    distribution_profile,
    distribution_suite,
    table_suite,
)
from sdpipeline.warehouse import qualified

CHECK_NAME = "gx_dataset_contract"


def _failures_markdown(outcomes: list[gx_runner.ExpectationOutcome]) -> str:
    failed = [o for o in outcomes if not o.passed]
    if not failed:
        return f"All {len(outcomes)} expectations met."
    lines = ["| expectation | severity | failing | why | sample |", "|---|---|---|---|---|"]
    for o in failed:
        sample = o.details.get("partial_unexpected_index_list") or o.details.get(
            "partial_unexpected_list", o.details.get("observed_value", "")
        )
        lines.append(
            f"| {o.check_name} | {o.severity} | {o.failing_count} | {o.details.get('why')} "
            f"| {str(sample)[:120]} |"
        )
    return "\n".join(lines)


def gx_severity(failed: list[gx_runner.ExpectationOutcome]) -> dg.AssetCheckSeverity:
    """ERROR, which blocks downstream assets, if a critical expectation failed; WARN otherwise."""
    if any(o.severity == ERROR for o in failed):
        return dg.AssetCheckSeverity.ERROR
    return dg.AssetCheckSeverity.WARN


def gx_check(instrument: Instrument, codebook: Codebook, wave_id: str) -> dg.AssetChecksDefinition:
    name = raw_table_name(instrument, codebook, wave_id)
    asset = f"{name}_validated"

    @dg.asset_check(
        asset=asset,
        name=CHECK_NAME,
        blocking=True,
        description="Great Expectations suites derived from the codebook: row count, value sets, "
        "unique identifiers, completeness of key variables, distribution sanity. ERROR if a "
        "critical expectation fails, WARN otherwise.",
    )
    def _check(
        context: dg.AssetCheckExecutionContext, warehouse: DuckDBResource
    ) -> dg.AssetCheckResult:
        with warehouse.get_connection() as connection:
            table = connection.execute(f"SELECT * FROM {qualified('validated', name)}").df()
        outcomes = gx_runner.run_suite(table_suite(instrument, wave_id, codebook, asset), table)
        profile = distribution_profile(
            instrument, wave_id, table, codebook.validation.min_valid_for_distribution
        )
        outcomes += gx_runner.run_suite(distribution_suite(codebook, asset), profile)
        files = table[["_source_file", "_source_sha256"]].drop_duplicates()
        audit_context = audit.CheckContext(
            run_id=context.run.run_id,
            asset=asset,
            instrument=instrument.name,
            wave=wave_id,
            file_name=str(files["_source_file"].iloc[0]) if len(files) else None,
            file_sha256=str(files["_source_sha256"].iloc[0]) if len(files) else None,
        )
        with warehouse.get_connection() as connection:
            audit.record_checks(
                connection,
                audit_context,
                "great_expectations",
                gx_runner.audit_results(outcomes),
            )
        failed = [o for o in outcomes if not o.passed]
        return dg.AssetCheckResult(
            passed=not failed,
            severity=gx_severity(failed),
            metadata={
                "expectations": len(outcomes),
                "failed": len(failed),
                "failures": dg.MetadataValue.md(_failures_markdown(outcomes)),
                "data_docs": dg.MetadataValue.path(str(gx_runner.data_docs_dir() / "index.html")),
                "file_sha256": audit_context.file_sha256 or "",
            },
        )

    return _check


def build_gx_checks(codebook: Codebook) -> list[dg.AssetChecksDefinition]:
    return [
        gx_check(instrument, codebook, wave_id)
        for instrument in codebook.instruments.values()
        for wave_id in codebook.waves
        if wave_id in instrument.files
    ]
