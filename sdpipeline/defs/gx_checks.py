"""Great Expectations' dataset contract as asset checks of the validated and harmonised tables.

They run inside the step that builds the table, on what it has just written: the check neither
reads the whole table back nor costs a step of its own, and being blocking, a failed critical
expectation still stops everything downstream. GX itself runs in the run's GX worker (the
``great_expectations`` resource): a step sends its table's suites in one request as soon as the
table is written, goes on with its own work (metadata, audit rows) while GX checks them on the
other core, and takes the outcomes last. Every outcome goes to the audit trail and the GX Data
Docs."""

import time
from collections.abc import Callable

import dagster as dg
import duckdb

from sdpipeline.codebook import Codebook, Instrument
from sdpipeline.defs.resources import GreatExpectations
from sdpipeline.reference import ReferenceData
from sdpipeline.validation import audit, gx_runner, gx_worker
from sdpipeline.validation.expectations import (
    ERROR,
    distribution_profile,
    distribution_suite,
    harmonised_profile,
    harmonised_suites,
    table_suite,
)
from sdpipeline.warehouse import qualified
from sdpipeline.weighting import expected_total

DATASET_CONTRACT = "gx_dataset_contract"
HARMONISED_CONTRACT = "gx_harmonised_contract"


def gx_dataset_contract_spec(asset: dg.AssetKey) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        DATASET_CONTRACT,
        asset=asset,
        blocking=True,
        description="Great Expectations suites derived from the codebook: enough respondents "
        "once rows are quarantined, key variables mostly answered, no question where one code "
        "takes almost everyone. ERROR if a critical expectation fails, WARN otherwise.",
    )


def gx_harmonised_contract_spec(asset: dg.AssetKey) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        HARMONISED_CONTRACT,
        asset=asset,
        blocking=True,
        description="Great Expectations: every wave present, weights adding up to each wave's "
        "population, items present exactly where asked.",
    )


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


def _failure_description(
    outcomes: list[gx_runner.ExpectationOutcome], file_name: str | None
) -> str | None:
    """What failed, in words: each failed expectation's reason and what GX found."""
    failed = [o for o in outcomes if not o.passed]
    failed.sort(key=lambda o: o.severity != ERROR)
    if not failed:
        return None
    parts = []
    for o in failed:
        found = o.details.get("observed_value")
        if found is None and o.failing_count is not None:
            found = f"{o.failing_count} of {o.rows_checked} rows"
        parts.append(f"{o.details.get('why') or o.check_name}; observed: {found}")
    prefix = f"file {file_name}: " if file_name else ""
    return prefix + "; ".join(parts)


def _result(
    check_name: str,
    outcomes: list[gx_runner.ExpectationOutcome],
    connection: duckdb.DuckDBPyConnection,
    audit_context: audit.CheckContext,
    metadata: dict,
    seconds: float,
) -> dg.AssetCheckResult:
    """Record the outcomes in the audit trail; ERROR (which blocks downstream assets) if a
    critical expectation failed, WARN otherwise."""
    audit.record_checks(
        connection, audit_context, "great_expectations", gx_runner.audit_results(outcomes)
    )
    failed = [o for o in outcomes if not o.passed]
    critical = any(o.severity == ERROR for o in failed)
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=not failed,
        severity=dg.AssetCheckSeverity.ERROR if critical else dg.AssetCheckSeverity.WARN,
        description=_failure_description(outcomes, audit_context.file_name),
        metadata={
            "expectations": len(outcomes),
            "failed": len(failed),
            "seconds": round(seconds, 3),
            "failures": dg.MetadataValue.md(_failures_markdown(outcomes)),
            "data_docs": dg.MetadataValue.path(str(gx_runner.data_docs_dir() / "index.html")),
            **metadata,
        },
    )


def _finishing(
    check_name: str,
    checking: gx_worker.Pending,
    audit_context: audit.CheckContext,
    metadata: dict,
    spent: float,
) -> Callable[[duckdb.DuckDBPyConnection], dg.AssetCheckResult]:
    """What the step calls last: waits for the suites sent (``checking``) and records their
    outcomes; the check's ``seconds`` add the wait to the ``spent`` sending them."""

    def finish(connection: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
        started = time.perf_counter()
        return _result(
            check_name,
            checking.result(),
            connection,
            audit_context,
            metadata,
            spent + time.perf_counter() - started,
        )

    return finish


def start_dataset_contract(
    connection: duckdb.DuckDBPyConnection,
    schema: str,
    table: str,
    instrument: Instrument,
    wave_id: str,
    codebook: Codebook,
    gx: GreatExpectations,
    audit_context: audit.CheckContext,
) -> Callable[[duckdb.DuckDBPyConnection], dg.AssetCheckResult]:
    """The validated table's suites: the table itself and its distribution profile (counted in
    DuckDB). Only the columns the table suite reads leave the warehouse; both suites go to the
    GX worker in one request, which checks them while the step goes on; the function returned
    waits for the outcomes and records them. Its ``seconds`` are the time the step itself
    spent on the check."""
    started = time.perf_counter()
    # GX names its files after suites: the table's warehouse name, not the asset key's path
    suite = audit_context.asset.replace("/", ".")
    table_checks = table_suite(instrument, wave_id, codebook, suite)
    listed = ", ".join(f'"{c}"' for c in table_checks.columns())
    # DuckDB's own conversion, nullable integers kept integers, as GX has always been given them
    columns = connection.execute(f"SELECT {listed} FROM {qualified(schema, table)}").df()
    profile = distribution_profile(
        connection,
        qualified(schema, table),
        instrument,
        wave_id,
        codebook.validation.min_valid_for_distribution,
    )
    checking = gx.start_suites(
        [(table_checks, columns), (distribution_suite(codebook, suite), profile)], audit_context
    )
    return _finishing(
        DATASET_CONTRACT,
        checking,
        audit_context,
        {"file_sha256": audit_context.file_sha256 or ""},
        time.perf_counter() - started,
    )


def start_harmonised_contract(
    relation: str,
    instrument: Instrument,
    codebook: Codebook,
    ref: ReferenceData,
    gx: GreatExpectations,
    connection: duckdb.DuckDBPyConnection,
    audit_context: audit.CheckContext,
) -> Callable[[duckdb.DuckDBPyConnection], dg.AssetCheckResult]:
    """The harmonised table's suites: waves present, weight totals, item coverage, over the
    counts DuckDB makes of the table (``harmonised_profile``), sent to the GX worker in one
    request; the function returned waits for the outcomes and records them, as in
    ``start_dataset_contract``."""
    started = time.perf_counter()
    waves, coverage = harmonised_profile(connection, relation, instrument, codebook)
    found = waves.set_index("wave")
    totals = {
        wave: expected_total(
            instrument,
            wave,
            codebook,
            ref,
            int(found["respondents"].get(wave, 0)),
            int(found["municipalities"].get(wave, 0)),
        )
        for wave in instrument.files
    }
    checking = gx.start_suites(
        harmonised_suites(instrument, waves, coverage, totals), audit_context
    )
    return _finishing(
        HARMONISED_CONTRACT,
        checking,
        audit_context,
        {"weight_totals": dg.MetadataValue.json(totals)},
        time.perf_counter() - started,
    )
