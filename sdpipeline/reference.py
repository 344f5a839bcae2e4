"""Reference data on Latvian municipalities: a list per territorial vintage, the 2017 → 2021
crosswalk and population per year. Codes are read as text: ISO and ATVK codes are labels, not
numbers. Which vintages and population years are needed follows the codebook's waves; what
exists follows the files under ``data/reference/``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from sdpipeline import settings
from sdpipeline.codebook import Codebook, DataContractError

# The map every harmonised table is on (its ``municipality_2021`` column): the 43 units after
# the 2021 administrative-territorial reform.
MAP_VINTAGE = 2021
# The one crosswalk there is: a wave on the 2017 vintage reaches the map through it. A wave
# may be on either vintage; another vintage would need its own list and crosswalk.
CROSSWALK_VINTAGE = 2017
CROSSWALK_FILE = f"crosswalk_{CROSSWALK_VINTAGE}_{MAP_VINTAGE}.csv"
TOTALS_FILE = "population_totals.csv"
POPULATION_FILE = "population_adults.csv"
ASSUMPTIONS_FILE = "population_assumptions.yaml"


class ReferenceDataError(DataContractError):
    """A wave needs reference data (a municipality list, a crosswalk, a population year) that
    ``data/reference/`` does not have."""


def vintage_file(vintage: int) -> str:
    """The municipality list of a territorial vintage."""
    return f"municipalities_{vintage}.csv"


VINTAGE_FILES = {v: vintage_file(v) for v in (CROSSWALK_VINTAGE, MAP_VINTAGE)}


def _read(name: str, directory: Path | None) -> pd.DataFrame:
    path = (directory or settings.reference_dir()) / name
    if not path.is_file():
        raise ReferenceDataError(f"{path} is missing: {how_to_restore(name)}")
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")


def how_to_restore(name: str) -> str:
    """What brings a reference file back: the derived ones are derived again, the researched
    ones come from the repository."""
    if name in (TOTALS_FILE, POPULATION_FILE):
        return (
            f"`sdpipeline reference` derives it from the municipality lists and {ASSUMPTIONS_FILE}"
        )
    return "it is one of the researched reference files (SOURCES.md): restore it from git"


def region_codes(codebook: Codebook) -> dict[str, int]:
    """Statistical region name (as the reference files spell it) → harmonised region code."""
    return {label.lv: code for code, label in codebook.harmonised_scales["region6"].codes.items()}


def municipalities(vintage: int, codebook: Codebook, directory: Path | None = None) -> pd.DataFrame:
    """The municipalities of one territorial vintage (2017: 119 units, 2021: 43 units)."""
    name = vintage_file(vintage)
    if not ((directory or settings.reference_dir()) / name).exists():
        raise ReferenceDataError(f"no municipality list for vintage {vintage}: {name} is missing")
    frame = _read(name, directory)
    regions = region_codes(codebook)
    unknown = set(frame["statistical_region"]) - set(regions)
    if unknown:
        raise ValueError(f"{name}: unknown statistical regions {sorted(unknown)}")
    return pd.DataFrame(
        {
            "vintage": vintage,
            "iso_code": frame["iso_code"],
            "name": frame["name"],
            "type": frame["type"],
            "statistical_region": frame["statistical_region"],
            "region_code": frame["statistical_region"].map(regions).astype("int64"),
            "atvk_code": frame["atvk_code"].replace("", None),
        }
    )


def crosswalk(directory: Path | None = None) -> pd.DataFrame:
    """One row per (2017 unit, 2021 unit) pair with the share of the old unit's population.

    Join on the pair, never on a code alone: ISO codes are reused for different territories.
    """
    frame = _read(CROSSWALK_FILE, directory)
    frame["share"] = frame["share"].astype(float)
    return frame[["iso_code_2017", "name_2017", "iso_code_2021", "name_2021", "share", "note"]]


def majority_successor(directory: Path | None = None) -> pd.Series:
    """2017 code → the 2021 unit that received the largest share of its population."""
    pairs = crosswalk(directory).sort_values(["iso_code_2017", "share"], ascending=[True, False])
    return pairs.drop_duplicates("iso_code_2017").set_index("iso_code_2017")["iso_code_2021"]


def population_totals(directory: Path | None = None) -> pd.DataFrame:
    """Total population by municipality for each wave's population year, with its method."""
    frame = _read(TOTALS_FILE, directory)
    frame["year"] = frame["year"].astype(int)
    frame["vintage"] = frame["vintage"].astype(int)
    frame["population"] = frame["population"].astype(int)
    return frame


def population_adults(directory: Path | None = None) -> pd.DataFrame:
    """Adults (18+) by municipality, sex and age group: the raking margins and sampling frame."""
    frame = _read(POPULATION_FILE, directory)
    for column in ("year", "vintage", "sex", "age_group", "population"):
        frame[column] = frame[column].astype(int)
    return frame


@dataclass(frozen=True)
class ReferenceData:
    """The reference tables harmonisation needs, from the files or from the warehouse (where
    the reference assets put them), so the lineage graph tells the truth about what was used."""

    municipalities: dict[int, pd.DataFrame]
    crosswalk: pd.DataFrame
    population_adults: pd.DataFrame
    population_totals: pd.DataFrame

    @classmethod
    def from_files(cls, codebook: Codebook, directory: Path | None = None) -> ReferenceData:
        return cls(
            municipalities={v: municipalities(v, codebook, directory) for v in VINTAGE_FILES},
            crosswalk=crosswalk(directory),
            population_adults=population_adults(directory),
            population_totals=population_totals(directory),
        )

    @classmethod
    def from_warehouse(cls, connection: duckdb.DuckDBPyConnection) -> ReferenceData:
        def table(name: str) -> pd.DataFrame:
            return connection.execute(f'SELECT * FROM "reference"."{name}"').df()

        return cls(
            municipalities={v: table(f"municipalities_{v}") for v in VINTAGE_FILES},
            crosswalk=table("municipality_crosswalk"),
            population_adults=table("population_adults"),
            population_totals=table("population_totals"),
        )


def check_waves(codebook: Codebook, directory: Path | None = None) -> None:
    """Refuse, before any step runs, a wave whose reference data is not there: the municipality
    list of its vintage, the crosswalk to the map, and its population year on that vintage in
    both population files. Without them the wave would fail at run time (raking against an
    empty population does not converge) or, worse, be weighted to another year."""
    directory = directory or settings.reference_dir()
    problems = []
    totals = population_totals(directory)
    adults = population_adults(directory)
    cells = adults[["sex", "age_group"]].drop_duplicates()
    for wave in codebook.waves.values():
        vintage, year = wave.municipality_vintage, wave.population_year
        where = f"study.yaml: wave {wave.id}"
        if vintage not in VINTAGE_FILES:
            problems.append(
                f"{where} is on the {vintage} territorial vintage; municipalities reach the "
                f"{MAP_VINTAGE} map only from the {CROSSWALK_VINTAGE} vintage ({CROSSWALK_FILE}): "
                "a wave on another vintage is not supported"
            )
            continue
        units = set(_read(vintage_file(vintage), directory)["iso_code"])
        add = (
            f"add {year} to {directory / ASSUMPTIONS_FILE} (national_total, adult_share, "
            f"adult_structure) and run `sdpipeline reference`, which writes {TOTALS_FILE} "
            f"and {POPULATION_FILE}"
        )
        for name, frame, per_unit in (
            (TOTALS_FILE, totals, 1),
            (POPULATION_FILE, adults, len(cells)),
        ):
            rows = frame[(frame["year"] == year) & (frame["vintage"] == vintage)]
            if rows.empty:
                problems.append(
                    f"{where} needs the population of {year} (population_year) on the "
                    f"{vintage} municipalities, and {directory / name} has none: {add}"
                )
                break
            counts = rows["iso_code"].value_counts()
            short = sorted(units - set(counts[counts == per_unit].index))
            if short:
                problems.append(
                    f"{where}: {directory / name} lacks the {year} population of {len(short)} "
                    f"municipalities of the {vintage} vintage (e.g. {', '.join(short[:3])}): "
                    f"{add}"
                )
                break
    if problems:
        raise ReferenceDataError("\n".join(problems))
