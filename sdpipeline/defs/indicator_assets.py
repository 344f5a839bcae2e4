"""The effectiveness layer: indicator estimates, their change, the decomposition of change and
the attribution analyses, each a table in the warehouse's ``indicators`` schema."""

from collections.abc import Callable

import dagster as dg
import duckdb
import pandas as pd
from dagster_duckdb import DuckDBResource

from sdpipeline import attribution, decomposition, effectiveness
from sdpipeline.codebook import Codebook
from sdpipeline.defs.metadata import table_metadata
from sdpipeline.indicators import Catalogue
from sdpipeline.reference import ReferenceData
from sdpipeline.warehouse import qualified, replace_table

GROUP = "indicators"
Tables = dict[str, pd.DataFrame]
SCHEMA = "indicators"


def harmonised_tables(
    connection: duckdb.DuckDBPyConnection, instruments: list[str], codebook: Codebook
) -> dict[str, pd.DataFrame]:
    """The harmonised tables as the analyses use them: without free text, which must never
    reach an indicator or a report, and without the file provenance columns. At a register's
    size these are also the widest columns to carry through every analysis."""
    tables = {}
    for name in instruments:
        excluded = ["_source_file", "_source_sha256"] + [
            v.name for v in codebook.instruments[name].variables if v.level == "text"
        ]
        listed = ", ".join(f'"{c}"' for c in excluded)
        tables[name] = connection.execute(
            f"SELECT * EXCLUDE ({listed}) FROM {qualified('harmonised', name)}"
        ).df()
    return tables


def delivered_sources(
    connection: duckdb.DuckDBPyConnection, instruments: list[str]
) -> dict[str, str]:
    """The delivered files (by checksum) that the instruments' harmonised tables descend from."""
    union = " UNION ".join(
        f"SELECT DISTINCT _source_file, _source_sha256 FROM {qualified('harmonised', n)}"
        for n in instruments
    )
    return dict(connection.execute(union).fetchall())


def indicator_asset(
    name: str,
    table: str,
    description: str,
    instruments: list[str],
    build: Callable[[dict[str, pd.DataFrame], ReferenceData, DuckDBResource], pd.DataFrame],
    codebook: Codebook,
    extra_deps: tuple[str, ...] = (),
) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        group_name=GROUP,
        deps=[dg.AssetKey(f"{i}_harmonised") for i in instruments]
        + [dg.AssetKey(d) for d in extra_deps],
        kinds={"duckdb", "pandas"},
        tags={"layer": "indicators"},
        description=description,
    )
    def _asset(
        context: dg.AssetExecutionContext, warehouse: DuckDBResource
    ) -> dg.MaterializeResult:
        with warehouse.get_connection() as connection:
            tables = harmonised_tables(connection, instruments, codebook)
            ref = ReferenceData.from_warehouse(connection)
            sources = delivered_sources(connection, instruments)
        frame = build(tables, ref, warehouse)
        with warehouse.get_connection() as connection:
            replace_table(connection, SCHEMA, table, frame)
            metadata = table_metadata(connection, SCHEMA, table, frame, sources)
        context.log.info(f"{SCHEMA}.{table}: {len(frame)} rows")
        return dg.MaterializeResult(metadata=metadata)

    return _asset


def build_indicator_assets(codebook: Codebook, catalogue: Catalogue) -> list[dg.AssetsDefinition]:
    everyone = list(codebook.instruments)

    def estimates(tables: Tables, ref: ReferenceData, warehouse: DuckDBResource) -> pd.DataFrame:
        return effectiveness.estimate_all(tables, catalogue, codebook, ref)

    def changes(tables: Tables, ref: ReferenceData, warehouse: DuckDBResource) -> pd.DataFrame:
        with warehouse.get_connection() as connection:
            frame = connection.execute(f"SELECT * FROM {qualified(SCHEMA, 'estimates')}").df()
        return effectiveness.changes(frame, catalogue, codebook)

    def decomposed(tables: Tables, ref: ReferenceData, warehouse: DuckDBResource) -> pd.DataFrame:
        return decomposition.decompose_all(tables, catalogue, codebook, ref)

    def attributed(tables: Tables, ref: ReferenceData, warehouse: DuckDBResource) -> pd.DataFrame:
        return attribution.attribution(tables, catalogue, codebook, ref)

    return [
        indicator_asset(
            "indicator_estimates",
            "estimates",
            f"Every indicator of the catalogue ({len(catalogue.indicators)}) per wave, nationally, "
            "by statistical region and by municipality type: weighted estimate, Taylor-linearised "
            "SE and 95 % CI, unweighted and effective n; cells under "
            f"{catalogue.suppress_below} respondents suppressed, under "
            f"{catalogue.low_reliability_below} flagged.",
            everyone,
            estimates,
            codebook,
            ("population_totals",),
        ),
        indicator_asset(
            "indicator_changes",
            "changes",
            "Ex-post minus ex-ante for every indicator and domain asked in both waves: difference, "
            "95 % CI, t-test p-value, plain-language verdict and comparability class.",
            everyone,
            changes,
            codebook,
            ("indicator_estimates",),
        ),
        indicator_asset(
            "change_decomposition",
            "decomposition",
            "Shift-share split of each national change into a composition part (mix of regions, "
            "municipality types, age groups) and a within-group part.",
            everyone,
            decomposed,
            codebook,
            ("population_totals",),
        ),
        indicator_asset(
            "project_attribution",
            "attribution",
            "2023 specialists taking part in the project vs the rest, and a municipality-level "
            "difference-in-differences by depth of participation with Covid-19 and Ukraine "
            "controls; each row states what the design can and cannot attribute.",
            ["specialists", "heads"],
            attributed,
            codebook,
            ("population_totals",),
        ),
    ]
