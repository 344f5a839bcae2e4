"""The synthetic study's true model (``data/generator/model.yaml``) and the answer
probabilities it implies for each respondent. Pure functions: the same frame rows always give
the same probabilities, which is what lets the generator write exact true values."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from sdpipeline import settings
from sdpipeline.codebook import SourceVariable, Variable


@dataclass(frozen=True)
class TruthModel:
    raw: dict[str, Any]
    digest: str

    @property
    def seed(self) -> int:
        return int(self.raw["seed"])

    def instrument(self, name: str) -> dict[str, Any]:
        return self.raw["instruments"][name]

    def variable_spec(self, variable: Variable, wave: str) -> dict[str, Any]:
        """The wave's spec of a variable, with its wave-independent effects merged in."""
        spec = self.raw.get("variables", {}).get(variable.instrument, {}).get(variable.name)
        if spec is None:
            if variable.scale is None or variable.scale.name not in self.raw["defaults"]:
                raise KeyError(f"model.yaml describes no {variable.instrument}.{variable.name}")
            return dict(self.raw["defaults"][variable.scale.name])
        if "remainder_of" in spec:
            return dict(spec)
        wave_spec = dict(spec[wave])
        effects = {**spec.get("effects", {}), **wave_spec.get("effects", {})}
        wave_spec["effects"] = effects
        return wave_spec


def load_model(path: Path | None = None) -> TruthModel:
    path = path or settings.data_dir() / "generator" / "model.yaml"
    content = path.read_bytes()
    return TruthModel(yaml.safe_load(content), hashlib.sha256(content).hexdigest())


def outcome_keys(variable: Variable, source: SourceVariable, spec: dict[str, Any]) -> list:
    """The outcomes this wave can record: valid harmonised codes its questionnaire offers and
    the missing kinds its codes express, in the model's order (first = favourable)."""
    if source.scale is not None:
        valid = set(source.scale.recode.values())
        kinds = set(source.scale.missing.values())
    else:
        valid = set(source.bins or {})
        kinds = set(source.missing.values())
    keys = [k for k in spec["p"] if (isinstance(k, int) and k in valid) or k in kinds]
    if not keys:
        raise ValueError(f"model gives {variable.instrument}.{variable.name} no possible outcome")
    return keys


def effect_shift(frame: pd.DataFrame, effects: dict[str, dict]) -> np.ndarray:
    """Sum of the effects that apply to each row."""
    shift = np.zeros(len(frame))
    for column, by_value in effects.items():
        if column not in frame:
            raise KeyError(f"effect on {column!r}, which the frame does not have")
        shift += frame[column].map({k: float(v) for k, v in by_value.items()}).fillna(0).to_numpy()
    return shift


def categorical_probabilities(frame: pd.DataFrame, keys: list, spec: dict[str, Any]) -> np.ndarray:
    """Rows × outcomes. The effects move the log-odds of the first outcome; the others keep
    their relative sizes."""
    base = np.array([float(spec["p"][k]) for k in keys])
    base = base / base.sum()
    shift = effect_shift(frame, spec.get("effects", {}))
    first = base[0]
    if len(keys) == 1:
        return np.ones((len(frame), 1))
    odds = np.log(first / (1 - first)) + shift
    new_first = 1 / (1 + np.exp(-odds))
    rest = base[1:] / base[1:].sum()
    return np.column_stack([new_first, np.outer(1 - new_first, rest)])


def numeric_expectation(frame: pd.DataFrame, spec: dict[str, Any]) -> np.ndarray:
    """Each row's expected value: (mean + effects) × the row's multiplier, if any."""
    expected = float(spec["mean"]) + effect_shift(frame, spec.get("effects", {}))
    if "multiply_by" in spec:
        expected = expected * frame[spec["multiply_by"]].to_numpy(dtype=float)
    return expected
