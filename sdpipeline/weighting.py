"""Survey weights: each instrument weighted the way its design calls for (codebook
``design.weighting``), with a report of what the weights cost in precision.

Residents: a design weight N_h / n_h per stratum, then raking (iterative proportional fitting)
to the wave year's adult population on the codebook's margins, trimming weights above a multiple
of the median and raking again until the margins hold and no weight is trimmed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sdpipeline.codebook import Codebook, Instrument
from sdpipeline.reference import ReferenceData

TOLERANCE = 1e-10
MAX_ITERATIONS = 2000
MAX_TRIM_ROUNDS = 50


class WeightingError(ValueError):
    """The weights cannot be computed as the design says (e.g. an empty raking cell)."""


@dataclass(frozen=True)
class WeightReport:
    method: str
    respondents: int
    total: float
    minimum: float
    maximum: float
    ratio_max_to_median: float
    design_effect: float
    effective_n: float
    raking_iterations: int = 0
    trimming_rounds: int = 0
    max_margin_error: float = 0.0


def kish_design_effect(weights: pd.Series) -> float:
    """Variance inflation from unequal weights alone: n Σw² / (Σw)²."""
    w = weights.to_numpy(dtype=float)
    return float(len(w) * (w**2).sum() / w.sum() ** 2)


def raking_cells(frame: pd.DataFrame, margin: tuple[str, ...]) -> tuple[np.ndarray, list[tuple]]:
    """Each row's raking cell as an integer code, and the cells (tuples of the margin's codes)
    in code order."""
    columns = [frame[c].to_numpy(dtype=np.int64) for c in margin]
    key = np.zeros(len(frame), dtype=np.int64)
    for column in columns:
        codes, values = pd.factorize(column)
        key = key * len(values) + codes
    codes, _ = pd.factorize(key)
    _, first = np.unique(codes, return_index=True)
    return codes, [tuple(int(column[i]) for column in columns) for i in first]


def margin_cells(
    frame: pd.DataFrame, margins: list[tuple[str, ...]], targets: list[pd.Series]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each margin, each row's cell code and each cell's target total, in code order."""
    cells = []
    for margin, target in zip(margins, targets, strict=True):
        codes, present = raking_cells(frame, margin)
        empty = sorted(set(target.index) - set(present))
        if empty:
            raise WeightingError(f"no respondents in raking cells {margin} = {empty}")
        cells.append((codes, target.reindex(present).to_numpy(dtype=float)))
    return cells


def rake(
    frame: pd.DataFrame,
    weights: pd.Series,
    margins: list[tuple[str, ...]],
    targets: list[pd.Series],
    cells: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> tuple[pd.Series, int, float]:
    """Iterative proportional fitting of ``weights`` to ``targets`` (one Series per margin,
    indexed by tuples of the margin's codes). Returns weights, iterations and the largest
    relative margin error left. ``cells``: ``margin_cells`` of the same rows, when already
    worked out for an earlier raking of them."""
    # Cells as integer codes and totals by bincount: raking a register-sized table takes
    # seconds this way, minutes with a groupby over tuples in every iteration.
    if cells is None:
        cells = margin_cells(frame, margins, targets)
    w = weights.to_numpy(dtype=float).copy()
    error = np.inf
    for iteration in range(1, MAX_ITERATIONS + 1):
        for codes, target in cells:
            w = w * (target / np.bincount(codes, weights=w, minlength=len(target)))[codes]
        error = max(
            float(
                np.nanmax(np.abs(np.bincount(codes, weights=w, minlength=len(target)) / target - 1))
            )
            for codes, target in cells
        )
        if error < TOLERANCE:
            return pd.Series(w, index=weights.index), iteration, error
    raise WeightingError(
        f"raking did not converge in {MAX_ITERATIONS} iterations (error {error:.2e})"
    )


def rake_and_trim(
    frame: pd.DataFrame,
    base: pd.Series,
    margins: list[tuple[str, ...]],
    targets: list[pd.Series],
    max_ratio: float | None,
) -> tuple[pd.Series, int, int, float]:
    """Rake; cap weights at ``max_ratio`` × median; rake again; until nothing needs capping.
    The cells are worked out once for every raking (a register's wave is raked a dozen times)."""
    cells = margin_cells(frame, margins, targets)
    w, iterations, error = rake(frame, base, margins, targets, cells)
    rounds = 0
    while max_ratio is not None and rounds < MAX_TRIM_ROUNDS:
        cap = max_ratio * float(w.median())
        if float(w.max()) <= cap * (1 + 1e-6):
            break
        rounds += 1
        w, more, error = rake(frame, w.clip(upper=cap), margins, targets, cells)
        iterations += more
    return w, iterations, rounds, error


def _report(method: str, weights: pd.Series, **extra) -> WeightReport:
    deff = kish_design_effect(weights)
    return WeightReport(
        method=method,
        respondents=len(weights),
        total=float(weights.sum()),
        minimum=float(weights.min()),
        maximum=float(weights.max()),
        ratio_max_to_median=float(weights.max() / weights.median()),
        design_effect=deff,
        effective_n=len(weights) / deff,
        **extra,
    )


def population_margins(
    codebook: Codebook, wave: str, margins: list[tuple[str, ...]], ref: ReferenceData
) -> list[pd.Series]:
    """Adult population of the wave's year on each raking margin (region, sex, age group)."""
    spec = codebook.waves[wave]
    adults = ref.population_adults
    adults = adults[adults["year"] == spec.population_year]
    regions = ref.municipalities[spec.municipality_vintage]
    adults = adults.merge(regions[["iso_code", "region_code"]], on="iso_code", how="left")
    if adults["region_code"].isna().any():
        raise WeightingError(f"population of {spec.population_year} has units outside the vintage")
    adults = adults.rename(columns={"region_code": "region"})
    targets = []
    for margin in margins:
        grouped = adults.groupby(list(margin))["population"].sum().astype(float)
        grouped.index = [k if isinstance(k, tuple) else (k,) for k in grouped.index]
        targets.append(grouped)
    return targets


def weights_for(
    frame: pd.DataFrame, instrument: Instrument, wave: str, codebook: Codebook, ref: ReferenceData
) -> tuple[pd.Series, pd.Series, WeightReport]:
    """(weight, design weight, report) for one wave's harmonised rows with geography."""
    spec = instrument.weighting
    ones = pd.Series(1.0, index=frame.index)
    if spec.method == "equal":
        return ones, ones, _report("equal", ones)
    if spec.method == "per_municipality":
        w = 1.0 / frame.groupby("municipality")["municipality"].transform("size")
        return w, w, _report("per_municipality", w)
    if spec.method == "nonresponse_by_region":
        vintage = codebook.waves[wave].municipality_vintage
        units = ref.municipalities[vintage].groupby("region_code").size()
        responding = frame.groupby("region")["region"].transform("size")
        w = frame["region"].astype(int).map(units) / responding
        return w, w, _report("nonresponse_by_region", w)
    margins = list(spec.margins)
    targets = population_margins(codebook, wave, margins, ref)
    stratum = instrument.design.get("strata", "region")
    population = population_margins(codebook, wave, [("region",)], ref)[0]
    counts = frame.groupby(stratum)[stratum].transform("size")
    per_stratum = pd.Series(population.to_numpy(), index=[key[0] for key in population.index])
    base = frame[stratum].astype(int).map(per_stratum) / counts
    w, iterations, rounds, error = rake_and_trim(
        frame, base, margins, targets, spec.max_ratio_to_median
    )
    report = _report(
        "raking",
        w,
        raking_iterations=iterations,
        trimming_rounds=rounds,
        max_margin_error=error,
    )
    return w, base, report


def expected_total(
    instrument: Instrument,
    wave: str,
    codebook: Codebook,
    ref: ReferenceData,
    respondents: int,
    municipalities: int,
) -> float:
    """What one wave's weights must add up to under the instrument's method, given the wave's
    respondents and the distinct municipalities they are in."""
    method = instrument.weighting.method
    if method == "raking":
        return float(population_margins(codebook, wave, [("region",)], ref)[0].sum())
    if method == "nonresponse_by_region":
        vintage = codebook.waves[wave].municipality_vintage
        return float(len(ref.municipalities[vintage]))
    if method == "per_municipality":
        return float(municipalities)
    return float(respondents)
