"""Answers for sampled respondents, in the contractor's own codes, and the exact true
population values they were drawn from (size-weighted over the frame, in harmonised codes)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sdpipeline.codebook import Codebook, SourceVariable, Variable, Wave
from sdpipeline.generator.frames import for_wave
from sdpipeline.generator.model import (
    FRAME_GIVEN,
    TruthModel,
    categorical_probabilities,
    numeric_expectation,
    outcome_keys,
)

# Ages in an open-ended bin (65–110) are drawn from its first 25 years, as real samples are.
OPEN_BIN_WIDTH = 24
COMMENTS = (
    "Sociālā darbiniece vienmēr uzklausa un palīdz, paldies!",
    "Rindas ir pārāk garas, jāgaida vairākas nedēļas.",
    "Dienesta telpas ir šauras, nav iespējams runāt konfidenciāli.",
    "Pēc novadu apvienošanas jābrauc uz Ķekavu vai Jēkabpili, tas ir tālu.",
    "Vajadzētu vairāk psihologu un ģimenes asistentu.",
    "Darbinieku ir par maz, viņi ir pārslogoti ar dokumentiem.",
    "Ļoti laipna attieksme, ātri atrisināja manu jautājumu.",
    "Informācija par pabalstiem nav pietiekami skaidra; gribētos vairāk skaidrojumu.",
)


@dataclass
class Simulated:
    """One variable's values for the sample (source codes) and its true population value."""

    values: pd.Series
    truth: dict[str, Any] | None = field(default=None)


def _weighted(values: np.ndarray, size: np.ndarray) -> np.ndarray:
    return (
        (values * size[:, None]).sum(axis=0) / size.sum()
        if values.ndim == 2
        else float((values * size).sum() / size.sum())
    )


def _truth(
    frame: pd.DataFrame, values: np.ndarray, keys: list | None, by: list[str]
) -> dict[str, Any]:
    """National and by-group true values: a distribution over ``keys`` or a mean."""
    size = frame["size"].to_numpy()

    def summarise(mask: np.ndarray) -> Any:
        result = _weighted(values[mask], size[mask])
        if keys is None:
            return round(float(result), 10)
        return {str(k): round(float(v), 10) for k, v in zip(keys, result, strict=True)}

    truth: dict[str, Any] = {"national": summarise(np.ones(len(frame), dtype=bool))}
    for column in by:
        groups = frame[column].to_numpy()
        truth[f"by_{column}"] = {
            str(g): summarise(groups == g) for g in sorted(set(groups.tolist()))
        }
    return truth


def _harmonised_keys(keys: list, codebook: Codebook) -> list[int]:
    return [k if isinstance(k, int) else codebook.missing_code(k) for k in keys]


def _to_source(
    keys: list, outcome: np.ndarray, source: SourceVariable, spec: dict[str, Any], rng
) -> np.ndarray:
    """Harmonised outcomes → the contractor's codes, splitting collapsed codes as the model
    says (e.g. 'satisfied' → 'fully' or 'rather satisfied')."""
    scale = source.scale
    codes = np.zeros(len(outcome), dtype=float)
    for index, key in enumerate(keys):
        rows = np.flatnonzero(outcome == index)
        if isinstance(key, str):
            code = next(c for c, kind in source.missing_codes.items() if kind == key)
            codes[rows] = code
            continue
        candidates = sorted(c for c, h in scale.recode.items() if h == key)
        weights = np.array(spec.get("split", {}).get(key, [1.0] * len(candidates)), dtype=float)
        codes[rows] = rng.choice(candidates, size=len(rows), p=weights / weights.sum())
    return codes


def _draw(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    cumulative = probabilities.cumsum(axis=1)
    draws = rng.random(len(probabilities))[:, None]
    return np.minimum((draws > cumulative).sum(axis=1), probabilities.shape[1] - 1)


def simulate_variable(
    variable: Variable,
    wave: Wave,
    sample: pd.DataFrame,
    frame: pd.DataFrame,
    model: TruthModel,
    codebook: Codebook,
    rng: np.random.Generator,
    done: dict[str, Simulated],
) -> Simulated:
    """One variable for every sampled respondent; ``done`` holds the variables already drawn."""
    source = variable.sources[wave.id]
    if variable.level == "identifier":
        style = for_wave(model.raw["respondent_ids"], wave)
        ids = [
            style.format(n=n, year=wave.year, prefix=variable.instrument[:3].upper())
            for n in range(1, len(sample) + 1)
        ]
        return Simulated(pd.Series([int(i) if i.isdigit() else i for i in ids], dtype=object))
    if variable.level == "date":
        days = (wave.fieldwork_end - wave.fieldwork_start).days
        offsets = rng.integers(0, days + 1, len(sample))
        return Simulated(
            pd.Series(
                [wave.fieldwork_start + dt.timedelta(days=int(d)) for d in offsets], dtype=object
            )
        )
    if variable.level == "text":
        has = rng.random(len(sample)) < 0.12
        picks = rng.integers(0, len(COMMENTS), len(sample))
        return Simulated(
            pd.Series(
                [COMMENTS[p] if h else None for h, p in zip(has, picks, strict=True)], dtype=object
            )
        )
    if variable.name == "interview_mode":
        modes = for_wave(model.instrument(variable.instrument)["modes"], wave)
        keys = [int(k) for k in modes]
        p = np.array(list(modes.values()), dtype=float)
        drawn = rng.choice(keys, size=len(sample), p=p / p.sum())
        return Simulated(pd.Series(_inverse(source, drawn)))
    if variable.name in FRAME_GIVEN:
        return _frame_given(variable, source, sample, frame, codebook, rng)
    spec = model.variable_spec(variable, wave.id)
    by = ["region", *spec.get("effects", {})]
    if variable.level == "numeric":
        return _numeric(variable, source, spec, sample, frame, rng, done, by)
    keys = outcome_keys(variable, source, spec)
    outcome = _draw(categorical_probabilities(sample, keys, spec), rng)
    truth = _truth(
        frame, categorical_probabilities(frame, keys, spec), _harmonised_keys(keys, codebook), by
    )
    return Simulated(pd.Series(_to_source(keys, outcome, source, spec, rng)), truth)


def _inverse(source: SourceVariable, harmonised: np.ndarray) -> np.ndarray:
    first = {}
    for code, target in sorted(source.scale.recode.items()):
        first.setdefault(target, code)
    return np.array([first[int(h)] for h in harmonised], dtype=float)


def _frame_given(variable, source, sample, frame, codebook, rng) -> Simulated:
    values = sample[variable.name].to_numpy()
    truth = None
    if variable.is_categorical:
        keys = sorted(variable.scale.codes)
        onehot = np.column_stack(
            [(frame[variable.name].to_numpy() == k).astype(float) for k in keys]
        )
        truth = _truth(frame, onehot, keys, ["region"])
    if source.bins is not None:
        low = np.array([source.bins[int(v)][0] for v in values])
        high = np.array(
            [min(source.bins[int(v)][1], source.bins[int(v)][0] + OPEN_BIN_WIDTH) for v in values]
        )
        return Simulated(
            pd.Series(np.floor(low + rng.random(len(values)) * (high - low + 1))), truth
        )
    if source.scale is not None:
        return Simulated(pd.Series(_inverse(source, values)), truth)
    return Simulated(pd.Series(values), truth)


def _numeric(variable, source, spec, sample, frame, rng, done, by) -> Simulated:
    """A number per respondent. A remainder share ('other tasks') closes the time-use block to
    100 %; the rare respondent whose drawn shares exceed 100 has them scaled down to 100, which
    moves the true means by well under half a percentage point."""
    if "remainder_of" in spec:
        parts = [done[name] for name in spec["remainder_of"]]
        drawn = np.column_stack([p.values.to_numpy(dtype=float) for p in parts])
        total = drawn.sum(axis=1)
        over = total > 100
        drawn[over] = (drawn[over] * (100 / total[over])[:, None]).round(1)
        for column, part in enumerate(parts):
            part.values[:] = drawn[:, column]
        values = np.clip(100 - drawn.sum(axis=1), 0, 100).round(1)
        truth = {"national": round(100 - sum(p.truth["national"] for p in parts), 10)}
        return Simulated(pd.Series(values), truth)
    expected = numeric_expectation(sample, spec)
    if spec.get("distribution") == "poisson":
        values = rng.poisson(np.maximum(expected, 0)).astype(float)
    else:
        noise = rng.normal(0, float(spec["sd"]), len(sample))
        if "multiply_by" in spec:
            noise = noise * sample[spec["multiply_by"]].to_numpy(dtype=float)
        values = expected + noise
    low, high = variable.value_range
    values = np.clip(values, low, high).round(int(spec.get("decimals", 0)))
    missing = rng.random(len(sample)) < float(spec.get("p_missing", 0))
    no_answer = [c for c, kind in source.missing_codes.items() if kind == "no_answer"]
    values[missing] = no_answer[0] if no_answer else np.nan
    truth = _truth(frame, numeric_expectation(frame, spec), None, [b for b in by if b in frame])
    return Simulated(pd.Series(values), truth)
