"""The synthetic study's true model (``data/generator/model.yaml``) and the answer
probabilities it implies for each respondent. Pure functions: the same frame rows always give
the same probabilities, which is what lets the generator write exact true values."""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sdpipeline import settings
from sdpipeline.codebook import (
    Codebook,
    DataContractError,
    SourceVariable,
    Variable,
    parse_yaml,
)

MODEL_FILE = "model.yaml"
# Variables whose value is an attribute of the respondent's cell, not an answer to draw.
FRAME_GIVEN = (
    "municipality",
    "region",
    "stratum",
    "sampling_point",
    "sex",
    "age_group",
    "institution_type",
    "position",
    "project_participant",
    "project_participation",
)
# Levels the generator makes up (identifiers, fieldwork dates, comments), and the interview
# mode, drawn from the instrument's ``modes``: none has a variable entry of its own.
NOT_MODELLED = ("identifier", "date", "text")


class ModelError(DataContractError):
    """The true model does not describe a wave the codebook declares."""


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
    """The model, with ``wave_defaults`` applied: a wave without an entry of its own in a
    per-wave setting takes the named wave's (a follow-up repeating the ex-post questionnaire
    answers as ex-post did, except where the model says otherwise)."""
    path = path or settings.data_dir() / "generator" / MODEL_FILE
    content = path.read_bytes()
    raw = parse_yaml(content.decode("utf-8"))
    for wave, like in (raw.get("wave_defaults") or {}).items():
        _inherit(raw, str(wave), str(like))
    return TruthModel(raw, hashlib.sha256(content).hexdigest())


def _inherit(node: Any, wave: str, like: str) -> None:
    """Give every per-wave mapping that has ``like`` but not ``wave`` a copy of its entry."""
    if isinstance(node, dict):
        if like in node and wave not in node:
            node[wave] = copy.deepcopy(node[like])
        for value in list(node.values()):
            _inherit(value, wave, like)
    elif isinstance(node, list):
        for value in node:
            _inherit(value, wave, like)


def _per_wave(value: Any, waves: dict) -> bool:
    return isinstance(value, dict) and any(key in waves for key in value)


def check_model(model: TruthModel, codebook: Codebook) -> None:
    """Refuse, before anything is written, a model that leaves a declared wave out: every
    per-wave setting of an instrument the wave has a file for, and every variable it asks."""
    raw, problems = model.raw, []

    def need(value: Any, wave: str, entry: str) -> None:
        if _per_wave(value, codebook.waves) and wave not in value:
            problems.append(f"{entry} has no {wave} entry")

    for wave in codebook.waves:
        need(raw.get("respondent_ids"), wave, "respondent_ids")
        need(raw["municipalities"]["staffing_per_1000"], wave, "municipalities.staffing_per_1000")
        for instrument in codebook.instruments.values():
            if wave not in instrument.files:
                continue
            spec = raw["instruments"].get(instrument.name)
            if spec is None:
                problems.append(f"instruments.{instrument.name} is missing")
                continue
            where = f"instruments.{instrument.name}"
            need(spec.get("modes"), wave, f"{where}.modes")
            need(spec["sample"].get("per_municipality"), wave, f"{where}.sample.per_municipality")
            for key, value in spec.get("frame", {}).items():
                need(value, wave, f"{where}.frame.{key}")
            described = raw.get("variables", {}).get(instrument.name, {})
            for variable in instrument.variables_in(wave):
                if (
                    variable.level in NOT_MODELLED
                    or variable.name in FRAME_GIVEN
                    or variable.name == "interview_mode"
                ):
                    continue
                entry = described.get(variable.name)
                if entry is None:
                    if variable.scale is None or variable.scale.name not in raw["defaults"]:
                        problems.append(f"variables.{instrument.name}.{variable.name} is missing")
                elif "remainder_of" not in entry and wave not in entry:
                    problems.append(
                        f"variables.{instrument.name}.{variable.name} has no {wave} entry"
                    )
    if problems:
        raise ModelError(
            f"{MODEL_FILE} does not describe every wave the codebook declares (give the wave "
            "its entries, or name a wave it repeats under wave_defaults):\n  "
            + "\n  ".join(dict.fromkeys(problems))
        )


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
