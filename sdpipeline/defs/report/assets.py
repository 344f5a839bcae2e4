"""The report: one asset per table in the warehouse's ``report`` schema, shaped as the ministry
prints it, and one asset that publishes them all, as one unit, as a workbook, CSV files, an
HTML report and a DuckDB file, with the harmonised tables beside them as Parquet and SPSS
datasets (``report_export``, ``harmonised_export``).

The publishing step publishes only a report that is whole: every report table current with its
own inputs and no harmonised table it exports stale (Dagster's staleness), and all of them
descending from one version of each file (``defs/lineage.py``). A run killed between two
report steps, then a publishing step launched on its own, would otherwise publish tables of two
deliveries side by side."""

import datetime as dt
from collections.abc import Callable

import dagster as dg
import duckdb
import pandas as pd
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus

from sdpipeline import (
    cell_lineage,
    harmonised_export,
    report_columns,
    report_export,
    report_tables,
    settings,
)
from sdpipeline.codebook import Codebook, Label, default_codebook
from sdpipeline.defs import keys
from sdpipeline.defs.incremental import loading_context, unchecked
from sdpipeline.defs.indicators.assets import HarmonisedTables, delivered_sources
from sdpipeline.defs.lineage import lineage
from sdpipeline.defs.metadata import table_metadata
from sdpipeline.defs.observation import file_paths
from sdpipeline.defs.policy import with_policy
from sdpipeline.defs.resources import Warehouse
from sdpipeline.indicators import Catalogue, default_catalogue
from sdpipeline.warehouse import qualified, replace_table

SCHEMA = keys.REPORT
LINEAGE = report_export.LINEAGE
DATASETS = "datasets"  # the harmonised tables for analysts' own tools: microdata, kept apart


def _indicators(connection: duckdb.DuckDBPyConnection, name: str) -> pd.DataFrame:
    return connection.execute(f"SELECT * FROM {qualified('indicators', name)}").df()


def _hidden_national(
    connection: duckdb.DuckDBPyConnection, catalogue: Catalogue
) -> set[tuple[str, str, str]]:
    return report_tables.hidden_national(_indicators(connection, "estimates"), catalogue)


def _report_tables(
    connection: duckdb.DuckDBPyConnection, names: list[str]
) -> dict[str, pd.DataFrame]:
    return {t: connection.execute(f"SELECT * FROM {qualified(SCHEMA, t)}").df() for t in names}


def _provenance(connection: duckdb.DuckDBPyConnection, instruments: list[str]) -> pd.DataFrame:
    """The ``instruments``' harmonised variables' sources per wave, as the harmonised step
    recorded them; only a table's own instruments, whose harmonised steps it follows."""
    return pd.concat(
        [
            connection.execute(
                f"SELECT * FROM {qualified(keys.HARMONISED, f'{name}_provenance')}"
            ).df()
            for name in instruments
        ],
        ignore_index=True,
    )


def _english(labels: dict[str, Label]) -> dict[str, str]:
    return {name: label.en for name, label in labels.items()}


def _column_lineage(lineage: pd.DataFrame) -> dg.TableColumnLineage:
    """Each column's harmonised columns, as Dagster records column lineage."""
    figures = lineage.dropna(subset=["harmonised_variable"])
    pairs = figures[["column_name", "instrument", "harmonised_variable"]].drop_duplicates()
    deps: dict[str, list[dg.TableColumnDep]] = {}
    for column, instrument, variable in pairs.itertuples(index=False):
        deps.setdefault(column, []).append(
            dg.TableColumnDep(asset_key=keys.harmonised(instrument), column_name=variable)
        )
    return dg.TableColumnLineage(deps_by_column=deps)


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
        description=f"{description} Every cell's harmonised variables, source variables, rules "
        "and delivered files (by SHA-256) are on this page (cell_lineage) and in "
        f"{SCHEMA}.cell_lineage; every column is described in the column schema.",
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        with warehouse.get_connection() as connection:
            tables = HarmonisedTables(warehouse, reads, codebook, catalogue)
            frame = build(connection, tables)
            sources = cell_lineage.Sources(_provenance(connection, instruments), codebook)
            lineage = cell_lineage.table_lineage(table, frame, sources, codebook, catalogue)
            replace_table(connection, SCHEMA, table, frame)
            metadata = table_metadata(
                connection,
                SCHEMA,
                table,
                frame,
                delivered_sources(connection, instruments),
                _english(
                    report_columns.descriptions(table, list(frame.columns), codebook, catalogue)
                ),
            )
        return dg.MaterializeResult(
            metadata={
                **metadata,
                "cell_lineage": dg.MetadataValue.md(cell_lineage.lineage_markdown(lineage)),
                "dagster/column_lineage": _column_lineage(lineage),
            }
        )

    return _asset


def whole_report(
    context: dg.AssetExecutionContext,
    tables: list[dg.AssetKey],
    codebook: Codebook,
    exported: list[dg.AssetKey],
) -> report_export.Provenance:
    """What the report to publish is built from; fails, publishing nothing, if it is not whole
    (see the module's docstring). ``exported``: the harmonised tables published beside it,
    refused when Dagster calls them STALE; one Dagster has no record of (``reports_only`` on a
    new instance) is published as it is in the warehouse, as that job promises."""
    # the whole graph: a run of a few assets sees only those in its own job
    from sdpipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    resolver = CachingStaleStatusResolver(
        context.instance, graph, loading_context(context.instance)
    )
    behind = [
        f"{key.to_user_string()} ({resolver.get_status(key).value.lower()})"
        for key in tables
        if resolver.get_status(key) != StaleStatus.FRESH
    ] + [
        f"{key.to_user_string()} (stale)"
        for key in exported
        if resolver.get_status(key) == StaleStatus.STALE
    ]
    if behind:
        raise dg.Failure(
            f"not published: {', '.join(behind)} not current with their inputs; the report "
            "stays as last published. `sdpipeline refresh` rebuilds them and publishes."
        )
    # a table FRESH in Dagster's terms may not have passed its contract (a run killed between
    # a table and its checks): nothing built on it is published
    upstream = {a for key in tables + exported for a in graph.get_ancestor_asset_keys(key)}
    failing = unchecked(context.instance, graph, list({*tables, *exported, *upstream}))
    if failing:
        raise dg.Failure(
            f"not published: {'; '.join(failing)}; the report stays as last published. "
            "`sdpipeline refresh` checks them again and publishes."
        )
    found = lineage(context.instance, tables + exported)
    names = {key: path.name for key, path in file_paths(codebook).items()}
    mixed = found.mixed()
    if mixed:
        listing = "; ".join(
            f"{names.get(k, k.to_user_string())}: {', '.join(sorted(v))}" for k, v in mixed.items()
        )
        raise dg.Failure(
            f"not published: the report tables descend from two versions of a file ({listing}); "
            "the report stays as last published. `sdpipeline refresh` rebuilds them."
        )
    return report_export.Provenance(
        run_id=context.run.run_id,
        published_utc=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        files={names.get(k, k.to_user_string()): next(iter(v)) for k, v in found.files.items()},
        table_runs={
            k.path[-1] if k.path[0] == keys.REPORT else k.to_user_string(): run
            for k, run in sorted(found.runs.items())
        },
    )


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
            [keys.harmonised("partners"), keys.harmonised("leaders"), keys.indicators("estimates")],
            lambda c, t: report_tables.barriers_ranked(
                t, catalogue, codebook, _hidden_national(c, catalogue)
            ),
        ),
        "services_offered_vs_wanted": (
            ["heads", "partners", "leaders"],
            [keys.harmonised(i) for i in ("heads", "partners", "leaders")]
            + [keys.indicators("estimates")],
            lambda c, t: report_tables.services_offered_vs_wanted(
                t, catalogue, codebook, _hidden_national(c, catalogue)
            ),
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
            lambda c, t: report_tables.instrument_notes(c, codebook),
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
        key=keys.report(LINEAGE),
        group_name=keys.REPORT,
        deps=[keys.report(t) for t in specs] + [keys.harmonised(i) for i in everyone],
        kinds={"duckdb"},
        tags={"layer": "report"},
        description="Every published cell of the report tables (table, row, column) taken back "
        "to its indicator, the harmonised variables and wave it is computed from, each with its "
        "source variable in the wave's file, the codebook's recode rule (in words and as JSON) "
        "and the delivered file with its SHA-256: one row per cell, variable and wave (a label "
        "cell: one row, no file). Published with the report in its own DuckDB file.",
    )
    def report_cell_lineage(
        context: dg.AssetExecutionContext, warehouse: Warehouse
    ) -> dg.MaterializeResult:
        with warehouse.get_connection() as connection:
            tables = _report_tables(connection, list(specs))
            frame = cell_lineage.cell_lineage(
                tables, _provenance(connection, list(codebook.instruments)), codebook, catalogue
            )
            replace_table(connection, SCHEMA, LINEAGE, frame)
            metadata = table_metadata(
                connection,
                SCHEMA,
                LINEAGE,
                frame,
                delivered_sources(connection, everyone),
                _english(catalogue.report.lineage),
            )
        context.log.info(f"{SCHEMA}.{LINEAGE}: {len(frame)} rows for {len(tables)} tables")
        return dg.MaterializeResult(
            metadata={
                **metadata,
                "cells": dg.MetadataValue.json(
                    frame.drop_duplicates(["report_table", "row_number", "column_name"])
                    .groupby("report_table", sort=False)
                    .size()
                    .to_dict()
                ),
            }
        )

    @dg.asset(
        key=keys.report("exports"),
        group_name=keys.REPORT,
        deps=[keys.report(t) for t in [*specs, LINEAGE]]
        + [keys.harmonised(i) for i in codebook.instruments],
        kinds={"excel", "csv", "html"},
        tags={"layer": "report"},
        description="The report tables as one formatted workbook (a sheet per table), a CSV per "
        "table and a self-contained HTML report with charts, in var/reports/tables/, with the "
        f"cell lineage ({LINEAGE}.csv) and every table in the report's own DuckDB file; apart "
        f"from them, in var/reports/{DATASETS}/, every harmonised table as Parquet and SPSS "
        "(Latvian and English labels) with its own codebook: microdata for the ministry's "
        "analysts, never inside the report's folder, which is the one handed on.",
    )
    def report_exports(
        context: dg.AssetExecutionContext, warehouse: Warehouse
    ) -> dg.MaterializeResult:
        provenance = whole_report(
            context,
            [keys.report(t) for t in [*specs, LINEAGE]],
            codebook,
            [keys.harmonised(i) for i in codebook.instruments],
        )
        out = settings.reports_dir() / "tables"
        datasets = settings.reports_dir() / DATASETS
        with warehouse.get_connection() as connection:
            tables = _report_tables(connection, list(specs))
            cells = _report_tables(connection, [LINEAGE])[LINEAGE]
            files = report_export.export(
                tables,
                out,
                text,
                cells,
                provenance,
                also=(
                    datasets,
                    lambda staging: harmonised_export.write_datasets(
                        connection, codebook, staging, text.stamp
                    ),
                ),
                chart_cache=settings.var_dir() / "cache" / "charts",
            )
        html = out / report_export.HTML_REPORT
        context.log.info(f"published {len(files)} files in {out} (run {context.run.run_id})")
        return dg.MaterializeResult(
            metadata={
                "source_sha256": dg.MetadataValue.json(dict(sorted(provenance.files.items()))),
                "files": dg.MetadataValue.json([f.name for f in files]),
                "datasets": dg.MetadataValue.path(str(datasets)),
                "workbook": dg.MetadataValue.path(str(out / report_export.WORKBOOK)),
                "html_report": dg.MetadataValue.path(str(html)),
                "headline": dg.MetadataValue.md(
                    tables["headline_indicators"].head(40).to_markdown(index=False)
                ),
            }
        )

    return [*assets, report_cell_lineage, report_exports]


@dg.definitions
def report_layer() -> dg.Definitions:
    codebook = default_codebook()
    return dg.Definitions(assets=with_policy(build_report_assets(codebook, default_catalogue())))
