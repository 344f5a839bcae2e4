"""Population frames: who could be asked in each wave, as cells with a size.

Every attribute an answer may depend on (region, sex, age group, staffing shortage, project
participation …) is a frame column, so that the true population value of any answer is an
exact size-weighted average over the cells.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sdpipeline import reference
from sdpipeline.codebook import Codebook, Wave
from sdpipeline.generator.model import TruthModel


def municipality_attributes(
    codebook: Codebook, model: TruthModel, wave: Wave, rng_seed: int
) -> pd.DataFrame:
    """Municipalities of the wave's vintage with population, staffing and project depth.

    Project depth belongs to the 2021 units (the project ran through the reform); a 2017 unit
    carries its majority successor's depth, so the two waves agree about who took part.
    """
    spec = model.raw["municipalities"]
    units = reference.municipalities(wave.municipality_vintage, codebook)
    totals = reference.population_totals()
    totals = totals[
        (totals["year"] == wave.population_year) & (totals["vintage"] == wave.municipality_vintage)
    ].set_index("iso_code")["population"]
    units["population"] = units["iso_code"].map(totals)
    if units["population"].isna().any():
        missing = units.loc[units["population"].isna(), "iso_code"].tolist()
        raise ValueError(f"no {wave.population_year} population for {missing}")
    rng = np.random.default_rng([rng_seed, wave.year, 1])
    staffing = for_wave(spec["staffing_per_1000"], wave)
    per_1000 = np.clip(rng.normal(staffing["mean"], staffing["sd"], len(units)), 0.35, 2.5)
    units["staffing_per_1000"] = per_1000
    units["fte"] = np.maximum(units["population"] / 1000 * per_1000, 1.0)
    units["shortage"] = (per_1000 < float(spec["staffing_norm"])).astype(int)
    depth_rng = np.random.default_rng([rng_seed, reference.MAP_VINTAGE, 2])
    new_units = (
        reference.municipalities(reference.MAP_VINTAGE, codebook)["iso_code"]
        .sort_values()
        .to_numpy()
    )
    depths = list(spec["project_depth"])
    chosen = depth_rng.choice(depths, size=len(new_units), p=list(spec["project_depth"].values()))
    depth = pd.Series(chosen, index=new_units)
    if wave.municipality_vintage == reference.MAP_VINTAGE:
        units["project_depth"] = units["iso_code"].map(depth)
    else:
        units["project_depth"] = units["iso_code"].map(reference.majority_successor()).map(depth)
    units["municipality"] = units["iso_code"]
    units["region"] = units["region_code"]
    return units.reset_index(drop=True)


def for_wave(value: Any, wave: Wave) -> Any:
    """A model entry that may be given per wave or once for all waves."""
    return value[wave.id] if isinstance(value, dict) and wave.id in value else value


def _expand(frame: pd.DataFrame, column: str, shares: dict[Any, float]) -> pd.DataFrame:
    """Split every cell by a categorical attribute with the given shares."""
    parts = [
        frame.assign(**{column: int(value)}, size=frame["size"] * float(share))
        for value, share in shares.items()
    ]
    return pd.concat(parts, ignore_index=True)


def build_frame(
    instrument: str, codebook: Codebook, model: TruthModel, wave: Wave, units: pd.DataFrame
) -> pd.DataFrame:
    """The instrument's population in the wave, as cells with ``size`` and ``propensity``."""
    spec = model.instrument(instrument)["frame"]
    kind = spec["population"]
    if kind == "adults":
        adults = reference.population_adults()
        adults = adults[
            (adults["year"] == wave.population_year)
            & (adults["vintage"] == wave.municipality_vintage)
        ]
        frame = adults.rename(columns={"iso_code": "municipality", "population": "size"})[
            ["municipality", "sex", "age_group", "size"]
        ].astype({"size": float})
        frame = frame.merge(
            units.drop(columns=["sex", "age_group"], errors="ignore"), on="municipality"
        )
        for column, factors in spec.get("size_factor", {}).items():
            frame["size"] *= frame[column].map({int(k): float(v) for k, v in factors.items()})
    elif kind == "specialists":
        frame = units.assign(size=units["fte"])
        frame = _expand(frame, "sex", spec["sex"])
        frame = _expand(frame, "age_group", spec["age_group"])
        if codebook.instruments[instrument].variable("project_participant").asked_in(wave.id):
            share = frame["project_depth"].map(spec["participant_by_depth"])
            frame = pd.concat(
                [
                    frame.assign(project_participant=1, size=frame["size"] * share),
                    frame.assign(project_participant=0, size=frame["size"] * (1 - share)),
                ],
                ignore_index=True,
            )
    elif kind == "municipalities":
        frame = units.assign(size=1.0)
        for column in ("institution_type", "position"):
            if column in spec:
                frame = _expand(frame, column, for_wave(spec[column], wave))
    else:
        raise ValueError(f"unknown frame population {kind!r}")
    if "project_depth" in frame:
        frame["project_participation"] = frame["project_depth"]
    propensity = pd.Series(1.0, index=frame.index)
    for column, factors in spec.get("propensity", {}).items():
        propensity *= frame[column].map({int(k): float(v) for k, v in factors.items()})
    frame["propensity"] = propensity
    frame["stratum"] = frame["region"]
    return frame[frame["size"] > 0].reset_index(drop=True)
