"""Reference tables (municipalities of both vintages, the ATR crosswalk, population) in the
warehouse's ``reference`` schema, so every later layer joins against the same figures. Each
hangs under the files it reads, observable source assets versioned by SHA-256."""

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from sdpipeline import recodes, reference, settings
from sdpipeline.codebook import Codebook, default_codebook
from sdpipeline.defs import keys
from sdpipeline.defs.metadata import table_metadata
from sdpipeline.defs.observation import REFERENCE_FILES, observable_files
from sdpipeline.defs.policy import CODEBOOK_TAG, with_policy
from sdpipeline.ingest import file_facts
from sdpipeline.warehouse import replace_table

SCHEMA = keys.REFERENCE


def _tables(
    codebook: Codebook,
) -> dict[str, tuple[Callable[[], pd.DataFrame], tuple[str, ...], str]]:
    """Table → (how to make it, the reference files it is made from, what it holds)."""

    def waves_on(vintage: int) -> str:
        on = [w.id for w in codebook.waves.values() if w.municipality_vintage == vintage]
        return f"the codes of {', '.join(on)}" if on else "the codes of no wave"

    years = ", ".join(sorted({str(w.population_year) for w in codebook.waves.values()}))
    return {
        "municipalities_2017": (
            lambda: reference.municipalities(2017, codebook),
            (reference.VINTAGE_FILES[2017],),
            "The 119 pre-reform municipalities (110 novadi, 9 republic cities) with ISO code, "
            f"type and statistical region: {waves_on(2017)}.",
        ),
        "municipalities_2021": (
            lambda: reference.municipalities(2021, codebook),
            (reference.VINTAGE_FILES[2021],),
            "The 43 municipalities after the 2021 reform (36 novadi, 7 state cities): "
            f"{waves_on(2021)}, and the geography every harmonised table uses.",
        ),
        "municipality_crosswalk": (
            reference.crosswalk,
            (reference.CROSSWALK_FILE,),
            "Each 2017 municipality's 2021 successor(s) with population shares; Aglonas and "
            "Inčukalna novadi are split. Join on the (2017, 2021) code pair, never one code.",
        ),
        "population_totals": (
            reference.population_totals,
            (reference.TOTALS_FILE, reference.VINTAGE_FILES[2017], reference.VINTAGE_FILES[2021]),
            f"Population by municipality for every wave's population year ({years}); `method` "
            "says whether a figure is published or derived (data/reference/README.md).",
        ),
        "population_adults": (
            reference.population_adults,
            (reference.POPULATION_FILE,),
            f"Adults (18+) by municipality, sex and age group for {years}: the raking "
            "margins. The national sex × age structure is applied to every municipality.",
        ),
    }


def _codebook_files(codebook: Codebook) -> tuple[str, ...]:
    return (
        "study.yaml",
        "scales.yaml",
        "blocks.yaml",
        *(f"instruments/{name}.yaml" for name in codebook.instruments),
    )


def reference_asset(
    name: str,
    load: Callable[[], pd.DataFrame],
    files: tuple[str, ...],
    description: str,
    directory: Callable[[], Path] = settings.reference_dir,
) -> dg.AssetsDefinition:
    @dg.asset(
        key=keys.reference(name),
        group_name=keys.REFERENCE,
        # a table of the codebook hangs under no file: the codebook is its code version
        deps=[keys.reference_file(f) for f in files if f in REFERENCE_FILES],
        kinds={"duckdb", "csv"},
        description=description,
        tags={"layer": "reference", **({} if files[0] in REFERENCE_FILES else CODEBOOK_TAG)},
    )
    def _asset(
        context: dg.AssetExecutionContext, warehouse: DuckDBResource
    ) -> dg.MaterializeResult:
        frame = load()
        sources = {f: file_facts(directory() / f).sha256 for f in files}
        with warehouse.get_connection() as connection:
            replace_table(connection, SCHEMA, name, frame)
            metadata = table_metadata(connection, SCHEMA, name, frame, sources)
        context.log.info(f"{SCHEMA}.{name}: {len(frame)} rows")
        return dg.MaterializeResult(metadata=metadata)

    return _asset


def reference_file_spec(name: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=keys.reference_file(name),
        group_name=keys.REFERENCE_FILES,
        kinds={"csv"},
        description=f"The reference file data/reference/{name} (sources and derivations in "
        "data/reference/README.md).",
    )


def build_reference_assets(codebook: Codebook) -> list[dg.AssetsDefinition]:
    """The reference files (observed in one step) and the tables built from them."""
    sources = [reference_file_spec(name) for name in REFERENCE_FILES]
    return [
        observable_files(sources, codebook, "observe_reference_files"),
        *(
            reference_asset(name, load, files, description)
            for name, (load, files, description) in _tables(codebook).items()
        ),
        reference_asset(
            "recodes",
            lambda: recodes.crosswalk(codebook),
            _codebook_files(codebook),
            "The codebook's recodes as one crosswalk: per instrument, wave, variable and "
            "source code (or range of codes) the harmonised code, missing kind and rule "
            "(recode, bin, missing, blank, not_asked). The harmonised tables are built by SQL "
            "generated from these rows, and so is `sdpipeline floor`.",
            settings.codebook_dir,
        ),
    ]


@dg.definitions
def reference_layer() -> dg.Definitions:
    codebook = default_codebook()
    reference.check_waves(codebook)  # a wave without its population stops here, not mid-run
    return dg.Definitions(assets=with_policy(build_reference_assets(codebook)))
