"""The effectiveness layer: indicator estimates, their change, the decomposition of change and
the attribution analyses, each a table in the warehouse's ``indicators`` schema."""

from collections.abc import Callable, Iterator, Mapping

import dagster as dg
import duckdb
import pandas as pd

from sdpipeline import attribution, decomposition, effectiveness
from sdpipeline.codebook import Codebook, default_codebook
from sdpipeline.defs import keys
from sdpipeline.defs.metadata import table_metadata
from sdpipeline.defs.policy import with_policy
from sdpipeline.defs.resources import Warehouse
from sdpipeline.indicators import Catalogue, default_catalogue
from sdpipeline.reference import ReferenceData
from sdpipeline.warehouse import qualified, read_frame, replace_table, table_columns

Tables = Mapping[str, pd.DataFrame]
SCHEMA = keys.INDICATORS


# Design, domain and grouping columns the analyses read beside the catalogue's variables.
DESIGN_COLUMNS = (
    "wave",
    "weight",
    "design_stratum",
    "design_psu",
    "design_population",
    "region",
    "municipality_type",
    "municipality",
    "municipality_2021",
    *decomposition.PERSON_GROUPS,
)


def _named(value: object) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*map(_named, value.values())) if value else set()
    if isinstance(value, list | tuple):
        return set().union(*map(_named, value)) if value else set()
    return set()


def analysis_columns(instrument: str, codebook: Codebook, catalogue: Catalogue) -> list[str]:
    """The harmonised columns of ``instrument`` that any analysis reads: design and domain
    columns, and every variable the catalogue's indicators and groups name. Free text is
    never among them: it must not reach an indicator or a report. Most of a table's columns
    are never touched by an analysis; reading only these keeps time and memory in proportion
    to the analyses, not to the questionnaire."""
    variables = {v.name: v for v in codebook.instruments[instrument].variables}
    named = set(DESIGN_COLUMNS) | set(attribution.CONTROLS) | _named(catalogue.groups)
    for indicator in catalogue.indicators:
        if indicator.instrument == instrument:
            named |= {indicator.variable, indicator.denominator_variable}
    structural = [c for c in DESIGN_COLUMNS if c not in variables]
    asked = [n for n, v in variables.items() if n in named and v.level != "text"]
    return structural + asked


class HarmonisedTables(Mapping[str, pd.DataFrame]):
    """The harmonised tables as the analyses use them, only the columns they read, each read
    from the warehouse when an analysis asks for it, and one held at a time. The analyses go
    instrument by instrument, so at a register's size a step holds the largest table, not all
    six side by side (2.4 million residents' rows beside 3.5 million others). A table asked
    for again after another is read again."""

    def __init__(
        self,
        warehouse: Warehouse,
        instruments: list[str],
        codebook: Codebook,
        catalogue: Catalogue,
    ) -> None:
        self._warehouse, self._instruments = warehouse, list(instruments)
        self._codebook, self._catalogue = codebook, catalogue
        self._held: tuple[str, pd.DataFrame] | None = None

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._instruments:
            raise KeyError(name)
        if self._held is None or self._held[0] != name:
            self._held = None  # let go of the last table before the next is read
            with self._warehouse.get_connection() as connection:
                stored = {c for c, _ in table_columns(connection, "harmonised", name)}
                listed = [
                    c
                    for c in analysis_columns(name, self._codebook, self._catalogue)
                    if c in stored
                ]
                self._held = (name, read_frame(connection, "harmonised", name, listed))
            self._warehouse.let_go_of_cached_blocks()  # the table is in Python now
        return self._held[1]

    def __iter__(self) -> Iterator[str]:
        return iter(self._instruments)

    def __len__(self) -> int:
        return len(self._instruments)


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
    table: str,
    description: str,
    instruments: list[str],
    build: Callable[[Tables, ReferenceData, Warehouse], pd.DataFrame],
    codebook: Codebook,
    catalogue: Catalogue,
    extra_deps: tuple[dg.AssetKey, ...] = (),
    reads_rows: bool = True,
) -> dg.AssetsDefinition:
    """``reads_rows``: the analysis needs the harmonised rows, not only their sources."""

    @dg.asset(
        key=keys.indicators(table),
        group_name=keys.INDICATORS,
        deps=[keys.harmonised(i) for i in instruments] + list(extra_deps),
        kinds={"duckdb", "pandas"},
        tags={"layer": "indicators"},
        description=description,
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        tables = HarmonisedTables(warehouse, instruments if reads_rows else [], codebook, catalogue)
        with warehouse.get_connection() as connection:
            ref = ReferenceData.from_warehouse(connection)
            sources = delivered_sources(connection, instruments)
        frame = build(tables, ref, warehouse)
        with warehouse.get_connection() as connection:
            replace_table(connection, SCHEMA, table, frame)
            metadata = table_metadata(connection, SCHEMA, table, frame, sources)
        context.log.info(f"{SCHEMA}.{table}: {len(frame)} rows")
        return dg.MaterializeResult(metadata=metadata)

    return _asset


def _hidden_cells(warehouse: Warehouse) -> list[tuple[str, str, str, str]]:
    """The cells ``indicators.estimates`` hides: (indicator, wave, breakdown, domain)."""
    with warehouse.get_connection() as connection:
        return connection.execute(
            "SELECT indicator_id, wave, breakdown, CAST(domain AS VARCHAR) "
            f"FROM {qualified(SCHEMA, 'estimates')} WHERE suppressed"
        ).fetchall()


def build_indicator_assets(codebook: Codebook, catalogue: Catalogue) -> list[dg.AssetsDefinition]:
    everyone = list(codebook.instruments)

    def estimates(tables: Tables, ref: ReferenceData, warehouse: Warehouse) -> pd.DataFrame:
        return effectiveness.estimate_all(tables, catalogue, codebook, ref)

    def changes(tables: Tables, ref: ReferenceData, warehouse: Warehouse) -> pd.DataFrame:
        with warehouse.get_connection() as connection:
            frame = connection.execute(f"SELECT * FROM {qualified(SCHEMA, 'estimates')}").df()
        return effectiveness.changes(frame, catalogue, codebook)

    def decomposed(tables: Tables, ref: ReferenceData, warehouse: Warehouse) -> pd.DataFrame:
        hidden = _hidden_cells(warehouse)
        return decomposition.decompose_all(tables, catalogue, codebook, ref, hidden)

    def attributed(tables: Tables, ref: ReferenceData, warehouse: Warehouse) -> pd.DataFrame:
        return attribution.attribution(
            tables,
            catalogue,
            codebook,
            ref,
            [(i, w) for i, w, breakdown, _ in _hidden_cells(warehouse) if breakdown == "national"],
        )

    return [
        indicator_asset(
            "estimates",
            f"Every indicator of the catalogue ({len(catalogue.indicators)}) per wave, nationally, "
            "by statistical region and by municipality type: weighted estimate, Taylor-linearised "
            "SE and 95 % CI, unweighted and effective n; cells under "
            f"{catalogue.suppress_below} respondents suppressed, under "
            f"{catalogue.low_reliability_below} flagged.",
            everyone,
            estimates,
            codebook,
            catalogue,
            (keys.reference("population_totals"),),
        ),
        indicator_asset(
            "changes",
            "For every comparison in study.yaml "
            f"({', '.join(codebook.comparisons) or 'none declared'}), the later wave minus the "
            "earlier one for every indicator and domain asked in both: difference, 95 % CI, "
            "t-test p-value, plain-language verdict and comparability class.",
            everyone,
            changes,
            codebook,
            catalogue,
            (keys.indicators("estimates"),),
            reads_rows=False,
        ),
        indicator_asset(
            "decomposition",
            "Shift-share split of each comparison's national change into a composition part "
            "(mix of regions, municipality types, age groups) and a within-group part; hidden "
            "where the indicator tables hide either wave's national figure, or where the "
            "within part would give back a cell they hide.",
            everyone,
            decomposed,
            codebook,
            catalogue,
            (keys.reference("population_totals"), keys.indicators("estimates")),
        ),
        indicator_asset(
            "attribution",
            "Specialists taking part in the project vs the rest, in every wave that asked, and "
            "for every comparison a municipality-level difference-in-differences by depth of "
            "participation with Covid-19, Ukraine and ATR controls; each row states what the "
            "design can and cannot attribute. Participants against the rest is hidden where the "
            "indicator tables hide the national figure the two groups add up to.",
            ["specialists", "heads"],
            attributed,
            codebook,
            catalogue,
            (keys.reference("population_totals"), keys.indicators("estimates")),
        ),
    ]


@dg.definitions
def indicators_layer() -> dg.Definitions:
    codebook = default_codebook()
    return dg.Definitions(assets=with_policy(build_indicator_assets(codebook, default_catalogue())))
