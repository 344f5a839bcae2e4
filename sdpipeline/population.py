"""Population by municipality, sex and age group, derived openly from incomplete sources.

The researched reference files give real figures for some municipalities only. The rest is
derived by stated rules, and every row says which rule produced it (`method`), so that an
analyst can tell a published figure from an estimate and replace the estimate when a better
source is read. Every wave's population year is derived, on the wave's territorial vintage,
from the municipality lists and ``population_assumptions.yaml``. `sdpipeline reference`
rewrites the derived files.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from sdpipeline import reference, settings
from sdpipeline.codebook import Codebook, DataContractError, default_codebook, parse_yaml

ASSUMPTIONS_FILE = reference.ASSUMPTIONS_FILE


class PopulationError(DataContractError):
    """A population year cannot be derived from the declared sources and assumptions."""


def _assumptions(directory: Path) -> dict:
    path = directory / ASSUMPTIONS_FILE
    try:
        return parse_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise PopulationError(f"{path}: not valid YAML: {error}") from error


def _to_int(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series.str.replace(r"\s", "", regex=True), errors="coerce")


def census_and_register(directory: Path, year: int, vintage: int, national: int) -> pd.DataFrame:
    """Totals from a CSB figure where read; else the register count scaled to CSB; else a
    residual (the researched 2017 sources: CSB on 1 January, the PMLP register on 3 February).

    The register (PMLP) counts people registered, including emigrants, so it runs higher than
    CSB's usual-resident estimate; the ratio comes from the units that have both. Units with
    neither figure share the residual to the national total: first by what their 2021
    successor's later figure leaves after its known constituents, then equally.
    """
    raw = pd.read_csv(directory / reference.vintage_file(vintage), dtype=str, keep_default_na=False)
    csb = _to_int(raw[f"population_{year}_csb"])
    register = _to_int(raw[f"population_{year}_registered"])
    both = csb.notna() & register.notna()
    ratio = csb[both].sum() / register[both].sum()
    frame = pd.DataFrame({"iso_code": raw["iso_code"], "name": raw["name"]})
    frame["population"] = np.where(csb.notna(), csb, register * ratio)
    frame["method"] = np.where(
        csb.notna(),
        f"csb_1jan{year}",
        np.where(register.notna(), f"register_3feb{year}_x{ratio:.4f}", "residual"),
    )
    unknown = frame["method"] == "residual"
    residual = national - frame.loc[~unknown, "population"].sum()
    if residual <= 0:
        raise PopulationError(f"known {year} figures exceed the national total: check the sources")
    hint = _successor_hint(directory, frame)
    hint = hint.where(hint > 0, np.nan)
    share = hint[unknown].fillna(hint[unknown].median())
    frame.loc[unknown, "population"] = residual * share / share.sum()
    frame.loc[unknown, "method"] = np.where(
        hint[unknown].notna(), "residual_by_successor_2022_2023", "residual_equal_share"
    )
    frame["population"] = frame["population"].round().astype(int)
    frame["population"] += _rounding_fix(frame["population"], unknown, national)
    return frame


def _successor_hint(directory: Path, frame: pd.DataFrame) -> pd.Series:
    """For an unknown 2017 unit: its successor's later figure minus the known constituents,
    divided among the successor's unknown constituents. Only a relative size. The later
    figures are the 2023 and 2022 ones the method is named after (residual_by_successor_2022_2023),
    whatever later years the list gains: a new year must not move the 2017 figures."""
    new = pd.read_csv(
        directory / reference.vintage_file(reference.MAP_VINTAGE), dtype=str, keep_default_na=False
    )
    later = _to_int(new["population_2023"]).fillna(_to_int(new["population_2022"]))
    later.index = new["iso_code"]
    pairs = reference.crosswalk(directory)
    known = frame.set_index("iso_code")["population"].where(
        frame.set_index("iso_code")["method"] != "residual"
    )
    pairs["known"] = pairs["iso_code_2017"].map(known) * pairs["share"]
    hint = pd.Series(np.nan, index=frame.index)
    for successor, group in pairs.groupby("iso_code_2021"):
        if pd.isna(later.get(successor)):
            continue
        open_units = group[group["known"].isna()]
        left = later[successor] - group["known"].sum()
        if len(open_units) and left > 0:
            for _, row in open_units.iterrows():
                position = frame.index[frame["iso_code"] == row["iso_code_2017"]][0]
                hint[position] = left / len(open_units) / row["share"]
    return hint


def _rounding_fix(population: pd.Series, adjustable: pd.Series, national: int) -> pd.Series:
    """Put the rounding difference on the largest adjustable unit, so totals add up exactly."""
    fix = pd.Series(0, index=population.index)
    gap = national - int(population.sum())
    if gap:
        fix[population.where(adjustable).idxmax()] = gap
    return fix


def _published(raw: pd.DataFrame, year: int) -> dict[int, pd.Series]:
    """A list's published figures by year (columns ``population_<year>``), up to ``year``."""
    found = (re.fullmatch(r"population_(\d{4})", column) for column in raw.columns)
    return {
        int(match.group(1)): _to_int(raw[match.group(0)])
        for match in found
        if match and int(match.group(1)) <= year
    }


def _carried(directory: Path, previous: tuple[int, int, pd.DataFrame], vintage: int) -> pd.Series:
    """The previous derived year's figures on this vintage: as they are on the same vintage,
    through the crosswalk's population shares from the 2017 units to their 2021 successors."""
    _, old_vintage, frame = previous
    figures = frame.set_index("iso_code")["population"]
    if old_vintage == vintage:
        return figures.astype(float)
    if (old_vintage, vintage) != (reference.CROSSWALK_VINTAGE, reference.MAP_VINTAGE):
        raise PopulationError(
            f"cannot carry the {old_vintage} municipalities' population to the {vintage} "
            f"vintage: the only crosswalk is {reference.CROSSWALK_FILE}"
        )
    pairs = reference.crosswalk(directory)
    pairs["carried"] = pairs["iso_code_2017"].map(figures) * pairs["share"]
    return pairs.groupby("iso_code_2021")["carried"].sum()


def published_or_carried(
    directory: Path,
    year: int,
    vintage: int,
    nationals: dict[int, int],
    previous: tuple[int, int, pd.DataFrame] | None,
) -> pd.DataFrame:
    """Totals for ``year`` on the ``vintage`` units: a figure published for that year; else the
    latest earlier published figure scaled by the national change since; else the previous
    derived year carried forward (through the crosswalk where the vintage changed); then the
    carried units are scaled so the country adds up to the national total."""
    raw = pd.read_csv(directory / reference.vintage_file(vintage), dtype=str, keep_default_na=False)
    frame = pd.DataFrame({"iso_code": raw["iso_code"], "name": raw["name"]})
    population = pd.Series(np.nan, index=frame.index)
    method = pd.Series(None, index=frame.index, dtype=object)
    for published_year, figures in sorted(_published(raw, year).items(), reverse=True):
        take = population.isna() & figures.notna()
        if not take.any():
            continue
        if published_year == year:
            population[take], method[take] = figures[take], f"published_{year}"
            continue
        national = _national(nationals, published_year, directory, f"scaling to {year}")
        population[take] = figures[take] * nationals[year] / national
        method[take] = f"published_{published_year}_scaled"
    carried_rows = population.isna()
    if carried_rows.any():
        if previous is None:
            missing = frame.loc[carried_rows, "iso_code"].tolist()[:3]
            raise PopulationError(
                f"{reference.vintage_file(vintage)}: no {year} figure for {missing}… and no "
                f"earlier population year to carry forward"
            )
        population[carried_rows] = frame.loc[carried_rows, "iso_code"].map(
            _carried(directory, previous, vintage)
        )
        method[carried_rows] = f"carried_from_{previous[0]}"
        fixed = population[~carried_rows].sum()
        population[carried_rows] *= (nationals[year] - fixed) / population[carried_rows].sum()
    frame["population"] = population.round().astype(int)
    frame["method"] = method
    if carried_rows.any():
        frame["population"] += _rounding_fix(frame["population"], carried_rows, nationals[year])
    return frame


def _national(nationals: dict[int, int], year: int, directory: Path, needed_for: str) -> int:
    if year not in nationals:
        raise PopulationError(
            f"{directory / ASSUMPTIONS_FILE}: national_total has no {year} ({needed_for})"
        )
    return nationals[year]


def totals(
    directory: Path,
    year: int,
    vintage: int,
    nationals: dict[int, int],
    previous: tuple[int, int, pd.DataFrame] | None,
) -> pd.DataFrame:
    """One year's totals on one vintage, by the method its sources allow: a census and register
    count where the list has them for that year, else published figures and carried ones."""
    columns = pd.read_csv(directory / reference.vintage_file(vintage), nrows=0).columns
    if {f"population_{year}_csb", f"population_{year}_registered"} <= set(columns):
        return census_and_register(directory, year, vintage, nationals[year])
    return published_or_carried(directory, year, vintage, nationals, previous)


def derive(
    directory: Path | None = None, codebook: Codebook | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Totals per municipality and adults by sex × age group, for every wave's population year
    on its territorial vintage (``study.yaml``), earliest year first: a later year may carry an
    earlier one forward."""
    directory = directory or settings.reference_dir()
    codebook = codebook or default_codebook()
    assumptions = _assumptions(directory)
    nationals = {int(y): int(v["population"]) for y, v in assumptions["national_total"].items()}
    needed: dict[tuple[int, int], list[str]] = {}
    for wave in codebook.waves.values():
        needed.setdefault((wave.population_year, wave.municipality_vintage), []).append(wave.id)
    derived: list[tuple[int, int, pd.DataFrame]] = []
    cells = []
    for (year, vintage), waves in sorted(needed.items()):
        if vintage not in reference.VINTAGE_FILES:
            raise PopulationError(
                f"{', '.join(waves)} (study.yaml): no municipality list and crosswalk for the "
                f"{vintage} territorial vintage"
            )
        for key in ("national_total", "adult_share", "adult_structure"):
            if year not in {int(y) for y in assumptions.get(key, {})}:
                raise PopulationError(
                    f"{directory / ASSUMPTIONS_FILE}: {key} has no {year}, the population year "
                    f"of {', '.join(waves)} (study.yaml): add it"
                )
        frame = totals(directory, year, vintage, nationals, derived[-1] if derived else None)
        derived.append((year, vintage, frame))
        adult_share = float(assumptions["adult_share"][year])
        for sex, ages in assumptions["adult_structure"][year].items():
            for age_group, share in ages.items():
                cells.append(
                    pd.DataFrame(
                        {
                            "year": year,
                            "vintage": vintage,
                            "iso_code": frame["iso_code"],
                            "sex": int(sex),
                            "age_group": int(age_group),
                            "population": (frame["population"] * adult_share * float(share))
                            .round()
                            .astype(int),
                            "method": "total_x_national_adult_structure",
                        }
                    )
                )
    totals_frame = pd.concat(
        [frame.assign(year=year, vintage=vintage) for year, vintage, frame in derived],
        ignore_index=True,
    )[["year", "vintage", "iso_code", "name", "population", "method"]]
    adults = pd.concat(cells, ignore_index=True).sort_values(
        ["year", "iso_code", "sex", "age_group"], ignore_index=True
    )
    return totals_frame, adults


def write(directory: Path | None = None, codebook: Codebook | None = None) -> list[Path]:
    """Re-derive and write the population files beside their sources."""
    directory = directory or settings.reference_dir()
    totals_frame, adults = derive(directory, codebook)
    paths = [directory / reference.TOTALS_FILE, directory / reference.POPULATION_FILE]
    totals_frame.to_csv(paths[0], index=False, encoding="utf-8", lineterminator="\n")
    adults.to_csv(paths[1], index=False, encoding="utf-8", lineterminator="\n")
    return paths
