"""One harmonised asset per instrument: both waves stacked in harmonised names and codes, on the
2021 map, with weights; provenance and value labels as tables beside it. Checked by a pandera
contract (inside the step, before the table replaces the previous one), then as a whole by
Great Expectations. The rows are recoded, placed and weighted inside DuckDB (``harmonise``)."""

import time

import dagster as dg
import pandas as pd

from sdpipeline.codebook import Codebook, Instrument, default_codebook
from sdpipeline.columns import harmonised_columns
from sdpipeline.defs import keys
from sdpipeline.defs.gx_checks import gx_harmonised_contract_spec, start_harmonised_contract
from sdpipeline.defs.metadata import in_english, table_metadata
from sdpipeline.defs.policy import with_policy
from sdpipeline.defs.resources import GreatExpectations, Warehouse
from sdpipeline.harmonise import Harmonised, harmonise_instrument, missing_column
from sdpipeline.recodes import crosswalk
from sdpipeline.reference import ReferenceData
from sdpipeline.validation import audit
from sdpipeline.warehouse import qualified

SCHEMA = keys.HARMONISED
CONTRACT = "harmonised_contract"
REFERENCE_DEPS = [
    "municipalities_2017",
    "municipalities_2021",
    "municipality_crosswalk",
    "population_adults",
    "recodes",
]


def _weights_markdown(result: Harmonised) -> str:
    header = "| wave | method | n | Σ weights | deff (Kish) | effective n | max/median | rounds |"
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for wave, r in result.weights.items():
        lines.append(
            f"| {wave} | {r.method} | {r.respondents} | {r.total:,.0f} | {r.design_effect:.3f} "
            f"| {r.effective_n:.0f} | {r.ratio_max_to_median:.2f} "
            f"| {r.raking_iterations} raking, {r.trimming_rounds} trimming |"
        )
    return "\n".join(lines)


def _lineage(instrument: Instrument, codebook: Codebook) -> dg.TableColumnLineage:
    deps = {}
    for variable in instrument.variables:
        columns = [
            dg.TableColumnDep(
                asset_key=keys.validated(instrument, codebook, wave),
                column_name=source.variable,
            )
            for wave, source in variable.sources.items()
        ]
        deps[variable.name] = columns
        if variable.level == "numeric":
            deps[missing_column(variable)] = columns
    return dg.TableColumnLineage(deps_by_column=deps)


def _descriptions(result: Harmonised, instrument: Instrument, codebook: Codebook) -> dict[str, str]:
    """Every column described from the codebook; a variable also says where it came from in
    each wave and by which rule, or that the wave did not ask it."""
    descriptions = in_english(harmonised_columns(instrument, codebook))
    # one pass over the provenance rows (a group at a time took 17 ms a table)
    comparability: dict[str, str] = {}
    rules: dict[str, list[str]] = {}
    for r in result.provenance.itertuples(index=False):
        comparability.setdefault(r.variable, r.comparability)
        rules.setdefault(r.variable, []).append(
            f"{r.wave}: not asked"
            if pd.isna(r.source_variable)
            else f"{r.wave}: {r.source_variable} ({r.rule})"
        )
    for variable, parts in rules.items():
        descriptions[variable] += f" [{comparability[variable]}] {'; '.join(parts)}"
    return descriptions


def harmonised_asset(instrument: Instrument, codebook: Codebook) -> dg.AssetsDefinition:
    waves = [w for w in codebook.waves if w in instrument.files]
    validated = {w: keys.wave_table(instrument, codebook, w) for w in waves}
    key = keys.harmonised(instrument.name)
    name = key.to_user_string()

    @dg.asset(
        key=key,
        group_name=keys.HARMONISED,
        deps=[keys.validated(instrument, codebook, w) for w in waves]
        + [keys.reference(r) for r in REFERENCE_DEPS],
        check_specs=[
            dg.AssetCheckSpec(
                CONTRACT,
                asset=key,
                blocking=True,
                description="pandera contract of the harmonised table: harmonised codes only, "
                "every row on the 2021 map with region and type, positive weights, one row per "
                "respondent and wave, numeric answers with a value or a missing kind.",
            ),
            gx_harmonised_contract_spec(key),
        ],
        kinds={"duckdb", "sql"},
        tags={"layer": "harmonised", "instrument": instrument.name},
        description=(
            f"{instrument.label.en} ({instrument.label.lv}), every wave in one long table: "
            "harmonised names and codes from the codebook (hard to say −1, no answer −2, not "
            "asked −3), the 2021 municipality, region and type, weights and design columns. "
            f"Provenance per column in {SCHEMA}.{instrument.name}_provenance, value labels in "
            f"{SCHEMA}.{instrument.name}_labels."
        ),
    )
    def _asset(
        context: dg.AssetExecutionContext,
        warehouse: Warehouse,
        great_expectations: GreatExpectations,
    ):
        table = qualified(SCHEMA, instrument.name)
        staging = qualified(SCHEMA, f"{instrument.name}__next")
        sources = {w: qualified(keys.VALIDATED, t) for w, t in validated.items()}
        with warehouse.get_connection(warehouse.sql_memory_limit) as connection:
            ref = ReferenceData.from_warehouse(connection)
            connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"')
            context.log.info(f"{name}: harmonising {', '.join(validated)} in the warehouse")
            result = harmonise_instrument(
                connection, instrument, codebook, ref, crosswalk(codebook), sources, staging
            )
            for wave, report in result.weights.items():
                context.log.info(
                    f"{name} {wave}: weights {report.method}, deff {report.design_effect:.2f}, "
                    f"effective n {report.effective_n:.0f}"
                )
            # pandera is imported by the step, as in ``validated``
            from sdpipeline.validation.harmonised_contract import harmonised_contract
            from sdpipeline.validation.quarantine import apply_contract

            started = time.perf_counter()
            outcome = apply_contract(
                connection, staging, harmonised_contract(instrument, codebook, ref)
            )
            seconds = time.perf_counter() - started
            failed = not outcome.quarantined.empty or bool(outcome.file_errors)
            # the files in wave order, as every audit row and result page names them
            order = {instrument.files[w].name: i for i, w in enumerate(validated)}
            files = dict(sorted(result.sources.items(), key=lambda f: order.get(f[0], len(order))))
            audit_context = audit.CheckContext(
                context.run.run_id, name, instrument.name, tuple(validated), files
            )
            audit.record_checks(
                connection, audit_context, "pandera", outcome.audit_results("ERROR")
            )
            if failed:
                connection.execute(f"DROP TABLE IF EXISTS {staging}")
            else:
                # The new table takes the old one's name, with provenance and labels, in one
                # transaction: a reader sees all three old or all three new.
                connection.execute("BEGIN TRANSACTION")
                connection.execute(f"DROP TABLE IF EXISTS {table}")
                connection.execute(f'ALTER TABLE {staging} RENAME TO "{instrument.name}"')
                for suffix, frame in (
                    ("provenance", result.provenance),
                    ("labels", result.labels),
                ):
                    connection.register("_incoming", frame)
                    connection.execute(
                        f"CREATE OR REPLACE TABLE "
                        f"{qualified(SCHEMA, f'{instrument.name}_{suffix}')} "
                        "AS SELECT * FROM _incoming"
                    )
                    connection.unregister("_incoming")
                connection.execute("COMMIT")
                gx_checked = start_harmonised_contract(
                    table, instrument, codebook, ref, great_expectations, connection, audit_context
                )
                metadata = table_metadata(
                    connection,
                    SCHEMA,
                    instrument.name,
                    None,
                    result.sources,
                    _descriptions(result, instrument, codebook),
                )
                by_wave = dict(
                    connection.execute(
                        f"SELECT wave, count(*) FROM {table} GROUP BY wave ORDER BY wave"
                    ).fetchall()
                )
        contract_metadata = {
            "seconds": round(seconds, 3),
            "rows_checked": outcome.rows,
            "rows_failing": len(outcome.quarantined),
            "failures": outcome.summary() or "none",
        }
        if failed:
            yield dg.AssetCheckResult(
                check_name=CONTRACT,
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata=contract_metadata,
            )
            raise dg.Failure(
                description=f"{name}: harmonisation broke its contract: {outcome.summary()}",
                metadata=contract_metadata,
            )
        split = {w: r.split_units for w, r in result.geography.items() if r.split_rows}
        yield dg.MaterializeResult(
            metadata={
                **metadata,
                "dagster/column_lineage": _lineage(instrument, codebook),
                "weights": dg.MetadataValue.md(_weights_markdown(result)),
                "rows_by_wave": dg.MetadataValue.json(by_wave),
                "split_unit_rows": dg.MetadataValue.json(
                    {
                        "rule": codebook.split_units,
                        "rows": sum(r.split_rows for r in result.geography.values()),
                        "by_wave_and_2017_unit": split,
                    }
                ),
                "comparability": dg.MetadataValue.json(
                    result.provenance.drop_duplicates("variable")["comparability"]
                    .value_counts()
                    .to_dict()
                ),
            }
        )
        yield dg.AssetCheckResult(check_name=CONTRACT, passed=True, metadata=contract_metadata)
        with warehouse.get_connection() as connection:
            yield gx_checked(connection)

    return _asset


def build_harmonised(codebook: Codebook) -> list[dg.AssetsDefinition]:
    return [harmonised_asset(i, codebook) for i in codebook.instruments.values()]


@dg.definitions
def harmonised_layer() -> dg.Definitions:
    return dg.Definitions(assets=with_policy(build_harmonised(default_codebook())))
