"""Population by municipality, sex and age group, derived openly from incomplete sources.

The researched reference files give real figures for some municipalities only. The rest is
derived by stated rules, and every row says which rule produced it (`method`), so that an
analyst can tell a published figure from an estimate and replace the estimate when a better
source is read. `python -m sdpipeline reference` rewrites the derived files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from sdpipeline import reference, settings

ASSUMPTIONS_FILE = "population_assumptions.yaml"


def _assumptions(directory: Path) -> dict:
    with (directory / ASSUMPTIONS_FILE).open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _to_int(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series.str.replace(r"\s", "", regex=True), errors="coerce")


def totals_2017(directory: Path, national: int) -> pd.DataFrame:
    """2017 totals: CSB where read; else the register count scaled to CSB; else a residual.

    The register (PMLP) counts people registered, including emigrants, so it runs higher than
    CSB's usual-resident estimate; the ratio comes from the units that have both. Units with
    neither figure share the residual to the national total: first by what their 2021
    successor's later figure leaves after its known constituents, then equally.
    """
    raw = pd.read_csv(directory / "municipalities_2017.csv", dtype=str, keep_default_na=False)
    csb, register = _to_int(raw["population_2017_csb"]), _to_int(raw["population_2017_registered"])
    both = csb.notna() & register.notna()
    ratio = csb[both].sum() / register[both].sum()
    frame = pd.DataFrame({"iso_code": raw["iso_code"], "name": raw["name"]})
    frame["population"] = np.where(csb.notna(), csb, register * ratio)
    frame["method"] = np.where(
        csb.notna(),
        "csb_1jan2017",
        np.where(register.notna(), f"register_3feb2017_x{ratio:.4f}", "residual"),
    )
    unknown = frame["method"] == "residual"
    residual = national - frame.loc[~unknown, "population"].sum()
    if residual <= 0:
        raise ValueError("known 2017 figures exceed the national total: check the sources")
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
    divided among the successor's unknown constituents. Only a relative size."""
    new = pd.read_csv(directory / "municipalities_2021.csv", dtype=str, keep_default_na=False)
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


def totals_2023(directory: Path, nationals: dict[int, int], pop2017: pd.DataFrame) -> pd.DataFrame:
    """2023 totals for the 43 post-reform units: a 2023 figure; else 2022 scaled by the national
    change; else the 2017 constituents carried through the crosswalk shares; then the carried
    units are scaled so the country adds up to the 2023 national total."""
    raw = pd.read_csv(directory / "municipalities_2021.csv", dtype=str, keep_default_na=False)
    p2023, p2022 = _to_int(raw["population_2023"]), _to_int(raw["population_2022"])
    pairs = reference.crosswalk(directory)
    pairs["carried"] = (
        pairs["iso_code_2017"].map(pop2017.set_index("iso_code")["population"]) * pairs["share"]
    )
    carried = pairs.groupby("iso_code_2021")["carried"].sum()
    frame = pd.DataFrame({"iso_code": raw["iso_code"], "name": raw["name"]})
    frame["population"] = np.where(
        p2023.notna(),
        p2023,
        np.where(
            p2022.notna(),
            p2022 * nationals[2023] / nationals[2022],
            frame["iso_code"].map(carried),
        ),
    )
    frame["method"] = np.where(
        p2023.notna(),
        "published_2023",
        np.where(p2022.notna(), "published_2022_scaled", "carried_from_2017"),
    )
    carried_rows = frame["method"] == "carried_from_2017"
    fixed = frame.loc[~carried_rows, "population"].sum()
    frame.loc[carried_rows, "population"] *= (nationals[2023] - fixed) / frame.loc[
        carried_rows, "population"
    ].sum()
    frame["population"] = frame["population"].round().astype(int)
    frame["population"] += _rounding_fix(frame["population"], carried_rows, nationals[2023])
    return frame


def derive(directory: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Totals per municipality and adults by sex × age group, for 2017 and 2023."""
    directory = directory or settings.reference_dir()
    assumptions = _assumptions(directory)
    nationals = {int(y): int(v["population"]) for y, v in assumptions["national_total"].items()}
    pop2017 = totals_2017(directory, nationals[2017])
    pop2023 = totals_2023(directory, nationals, pop2017)
    totals = pd.concat(
        [pop2017.assign(year=2017, vintage=2017), pop2023.assign(year=2023, vintage=2021)],
        ignore_index=True,
    )[["year", "vintage", "iso_code", "name", "population", "method"]]
    cells = []
    for year, vintage, frame in ((2017, 2017, pop2017), (2023, 2021, pop2023)):
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
    adults = pd.concat(cells, ignore_index=True).sort_values(
        ["year", "iso_code", "sex", "age_group"], ignore_index=True
    )
    return totals, adults


def write(directory: Path | None = None) -> list[Path]:
    """Re-derive and write the population files beside their sources."""
    directory = directory or settings.reference_dir()
    totals, adults = derive(directory)
    paths = [directory / reference.TOTALS_FILE, directory / reference.POPULATION_FILE]
    totals.to_csv(paths[0], index=False, encoding="utf-8", lineterminator="\n")
    adults.to_csv(paths[1], index=False, encoding="utf-8", lineterminator="\n")
    return paths
