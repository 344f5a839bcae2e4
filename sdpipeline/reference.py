"""Reference data on Latvian municipalities: the two territorial vintages, the 2017 → 2021
crosswalk and population. Codes are read as text: ISO and ATVK codes are labels, not numbers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from sdpipeline import settings
from sdpipeline.codebook import Codebook

VINTAGE_FILES = {2017: "municipalities_2017.csv", 2021: "municipalities_2021.csv"}
CROSSWALK_FILE = "crosswalk_2017_2021.csv"
TOTALS_FILE = "population_totals.csv"
POPULATION_FILE = "population_adults.csv"


def _read(name: str, directory: Path | None) -> pd.DataFrame:
    path = (directory or settings.reference_dir()) / name
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")


def region_codes(codebook: Codebook) -> dict[str, int]:
    """Statistical region name (as the reference files spell it) → harmonised region code."""
    return {label.lv: code for code, label in codebook.harmonised_scales["region6"].codes.items()}


def municipalities(vintage: int, codebook: Codebook, directory: Path | None = None) -> pd.DataFrame:
    """The municipalities of one territorial vintage (2017: 119 units, 2021: 43 units)."""
    if vintage not in VINTAGE_FILES:
        raise ValueError(
            f"no municipality list for vintage {vintage}; have {sorted(VINTAGE_FILES)}"
        )
    frame = _read(VINTAGE_FILES[vintage], directory)
    regions = region_codes(codebook)
    unknown = set(frame["statistical_region"]) - set(regions)
    if unknown:
        raise ValueError(f"{VINTAGE_FILES[vintage]}: unknown statistical regions {sorted(unknown)}")
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
