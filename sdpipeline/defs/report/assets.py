"""The report: one asset per table in the warehouse's ``report`` schema, shaped as the ministry
prints it, and one asset that publishes them all as a workbook, CSV files and an HTML report."""

from collections.abc import Callable

import dagster as dg
import duckdb
import pandas as pd
from dagster_duckdb import DuckDBResource

from sdpipeline import harmonised_export, report_export, report_tables, settings, targets
from sdpipeline.codebook import Codebook, default_codebook
from sdpipeline.defs import keys
from sdpipeline.defs.incremental import versioned
from sdpipeline.defs.indicators.assets import delivered_sources, harmonised_tables
from sdpipeline.defs.metadata import table_metadata
from sdpipeline.indicators import Catalogue, default_catalogue
from sdpipeline.warehouse import qualified, replace_table

SCHEMA = keys.REPORT
DATASETS = "datasets"  # the harmonised tables for analysts' own tools, beside the report


def _indicators(connection: duckdb.DuckDBPyConnection, name: str) -> pd.DataFrame:
    return connection.execute(f"SELECT * FROM {qualified('indicators', name)}").df()


def report_asset(
    table: str,
    description: str,
    instruments: list[str],
    deps: list[dg.AssetKey],
    build: Callable[[object, dict[str, pd.DataFrame]], pd.DataFrame],
    codebook: Codebook,
    catalogue: Catalogue,
) -> dg.AssetsDefinition:
    """A table built from ``deps``; it reads harmonised rows only when those are among them
    (the other tables are shaped from the indicators' own tables)."""
    reads = [i for i in instruments if keys.harmonised(i) in deps]

    @dg.asset(
        key=keys.report(table),
        group_name=keys.REPORT,
        deps=deps,
        kinds={"duckdb"},
        tags={"layer": "report"},
        description=description,
    )
    def _asset(
        context: dg.AssetExecutionContext, warehouse: DuckDBResource
    ) -> dg.MaterializeResult:
        with warehouse.get_connection() as connection:
            tables = harmonised_tables(connection, reads, codebook, catalogue)
            frame = build(connection, tables)
            replace_table(connection, SCHEMA, table, frame)
            metadata = table_metadata(
                connection, SCHEMA, table, frame, delivered_sources(connection, instruments)
            )
        return dg.MaterializeResult(metadata=metadata)

    return _asset


def build_report_assets(codebook: Codebook, catalogue: Catalogue) -> list[dg.AssetsDefinition]:
    everyone = list(codebook.instruments)
    estimated = [keys.indicators("estimates"), keys.indicators("changes")]
    specs = {
        "headline_indicators": (
            everyone,
            estimated,
            lambda c, t: report_tables.headline(
                _indicators(c, "estimates"), _indicators(c, "changes"), catalogue, codebook
            ),
        ),
        "indicators_by_region": (
            everyone,
            estimated,
            lambda c, t: report_tables.by_region(
                _indicators(c, "estimates"), _indicators(c, "changes"), catalogue, codebook
            ),
        ),
        "barriers_ranked": (
            ["partners", "leaders"],
            [keys.harmonised("partners"), keys.harmonised("leaders")],
            lambda c, t: report_tables.barriers_ranked(t, catalogue, codebook),
        ),
        "services_offered_vs_wanted": (
            ["heads", "partners", "leaders"],
            [keys.harmonised(i) for i in ("heads", "partners", "leaders")],
            lambda c, t: report_tables.services_offered_vs_wanted(t, catalogue, codebook),
        ),
        "specialists_time_use": (
            ["specialists"],
            [keys.harmonised("specialists")],
            lambda c, t: report_tables.specialists_time_use(t["specialists"], catalogue, codebook),
        ),
        "project_participation": (
            ["specialists", "heads"],
            [keys.indicators("attribution")],
            lambda c, t: report_tables.project_participation(
                _indicators(c, "attribution"), catalogue, codebook
            ),
        ),
        "change_decomposition": (
            everyone,
            [keys.indicators("decomposition")],
            lambda c, t: report_tables.change_decomposition(
                _indicators(c, "decomposition"), catalogue, codebook
            ),
        ),
        "instrument_notes": (
            everyone,
            [keys.harmonised(i) for i in everyone],
            lambda c, t: targets.notes(t, codebook),
        ),
    }
    text = report_export.ReportText.of(codebook, catalogue, list(specs))
    assets = [
        report_asset(
            table,
            catalogue.report.table(table).description,
            instruments,
            deps,
            build,
            codebook,
            catalogue,
        )
        for table, (instruments, deps, build) in specs.items()
    ]

    @dg.asset(
        key=keys.report("exports"),
        group_name=keys.REPORT,
        deps=[keys.report(t) for t in specs] + [keys.harmonised(i) for i in codebook.instruments],
        kinds={"excel", "csv", "html"},
        tags={"layer": "report"},
        description="The report tables as one formatted workbook (a sheet per table), a CSV per "
        "table and a self-contained HTML report with charts, in var/reports/tables/; beside "
        f"them, in {DATASETS}/, every harmonised table as Parquet and SPSS (Latvian and English "
        "labels) with its own codebook, published with the report.",
    )
    def report_exports(
        context: dg.AssetExecutionContext, warehouse: DuckDBResource
    ) -> dg.MaterializeResult:
        out = settings.reports_dir() / "tables"
        with warehouse.get_connection() as connection:
            tables = {
                t: connection.execute(f"SELECT * FROM {qualified(SCHEMA, t)}").df() for t in specs
            }
            files = report_export.export(
                tables,
                out,
                text,
                also=lambda staging: harmonised_export.write_datasets(
                    connection, codebook, staging / DATASETS, text.stamp
                ),
            )
        html = out / report_export.HTML_REPORT
        return dg.MaterializeResult(
            metadata={
                "files": dg.MetadataValue.json([f.name for f in files]),
                "datasets": dg.MetadataValue.path(str(out / DATASETS)),
                "workbook": dg.MetadataValue.path(str(out / report_export.WORKBOOK)),
                "html_report": dg.MetadataValue.path(str(html)),
                "headline": dg.MetadataValue.md(
                    tables["headline_indicators"].head(40).to_markdown(index=False)
                ),
            }
        )

    return [*assets, report_exports]


@dg.definitions
def report_layer() -> dg.Definitions:
    codebook = default_codebook()
    return dg.Definitions(assets=versioned(build_report_assets(codebook, default_catalogue())))
