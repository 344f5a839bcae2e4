"""Recode one wave's validated table to the harmonised variables, names and codes.

Every translation comes from the codebook: a source code becomes the harmonised code its
source scale says, a missing code becomes the harmonised code of its kind (hard to say and no
answer kept apart), an item the wave did not ask becomes "not asked". A code the codebook does
not know stops the recode with its variable and rows named: it never turns silently into NA.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sdpipeline import geography, targets, weighting
from sdpipeline.codebook import Codebook, Instrument, SourceVariable, Variable
from sdpipeline.distinct import map_distinct, per_distinct
from sdpipeline.geography import GeographyReport
from sdpipeline.reference import ReferenceData
from sdpipeline.validation.contracts import dates, numbers
from sdpipeline.weighting import WeightReport

PROVENANCE = ["_source_file", "_source_sha256", "_source_row"]


class HarmonisationError(ValueError):
    """The data hold a value the codebook gives no rule for."""


def missing_column(variable: Variable) -> str:
    """Numeric answers keep the number in the column and the missing kind beside it."""
    return f"{variable.name}_missing"


def _unknown(values: pd.Series, mapped: pd.Series, variable: Variable, wave: str, rows: pd.Series):
    bad = mapped.isna() & values.notna()
    if bad.any():
        sample = sorted({str(v) for v in values[bad].head(5)})
        raise HarmonisationError(
            f"{variable.instrument}.{variable.name} ({wave}): codes {sample} have no recode in "
            f"the codebook (rows {rows[bad].head(5).tolist()})"
        )


def recode_categorical(
    values: pd.Series,
    variable: Variable,
    source: SourceVariable,
    codebook: Codebook,
    rows: pd.Series,
) -> pd.Series:
    """Source codes → harmonised codes (missing codes to their kind's code, blanks to 'no
    answer'); ``rows`` are the file's row numbers, named if a code has no rule."""
    numeric = numbers(values)
    if source.bins is not None:
        mapped = pd.Series(pd.NA, index=values.index, dtype="Int64")
        for code, (low, high) in source.bins.items():
            mapped[numeric.between(low, high)] = code
    else:
        mapping = {float(code): to for code, to in source.scale.recode.items()}
        mapped = numeric.map(mapping).astype("Int64")
    for code, kind in source.missing_codes.items():
        mapped[numeric == code] = codebook.missing_code(kind)
    mapped[values.isna()] = codebook.missing_code("no_answer")
    _unknown(values, mapped, variable, source.wave, rows)
    return mapped


def _numeric(values: pd.Series, source: SourceVariable) -> tuple[pd.Series, pd.Series]:
    numeric = numbers(values)
    kind = pd.Series(pd.NA, index=values.index, dtype="string")
    for code, missing in source.missing_codes.items():
        kind[numeric == code] = missing
    kind[numeric.isna()] = "no_answer"
    return numeric.where(kind.isna()), kind


def _as_text(value: object) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip() or None


def _text(values: pd.Series) -> pd.Series:
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        return per_distinct(values, _trimmed)
    return map_distinct(values, _as_text).astype("string")


def _trimmed(values: pd.Series) -> pd.Series:
    return values.astype("string").str.strip().replace("", pd.NA)


def harmonise_wave(
    table: pd.DataFrame, instrument: Instrument, wave: str, codebook: Codebook
) -> pd.DataFrame:
    """A validated table of one wave (source names and codes) → harmonised columns."""
    rows = table["_source_row"]
    spec = instrument.files[wave]
    out = pd.DataFrame(index=table.index)
    out["wave"] = wave
    out["year"] = codebook.waves[wave].year
    not_asked = codebook.missing_code("not_asked")
    for variable in instrument.variables:
        source = variable.sources.get(wave)
        if source is None:
            if variable.is_categorical:
                out[variable.name] = pd.Series(not_asked, index=table.index, dtype="Int64")
            elif variable.level == "numeric":
                out[variable.name] = pd.Series(float("nan"), index=table.index)
                out[missing_column(variable)] = pd.Series(
                    "not_asked", index=table.index, dtype="string"
                )
            else:
                out[variable.name] = pd.Series(pd.NA, index=table.index, dtype="string")
            continue
        values = table[source.variable]
        if variable.is_categorical:
            out[variable.name] = recode_categorical(values, variable, source, codebook, rows)
        elif variable.level == "numeric":
            out[variable.name], out[missing_column(variable)] = _numeric(values, source)
        elif variable.level == "date":
            out[variable.name] = dates(values, spec.date_format).dt.date
        else:
            out[variable.name] = _text(values)
    for column in PROVENANCE:
        out[column] = table[column].to_numpy()
    return out


def recode_rule(source: SourceVariable | None, codebook: Codebook) -> str:
    """The rule that produced a harmonised column in one wave, in words (for provenance)."""
    if source is None:
        return f"not asked: every row {codebook.missing_code('not_asked')} (not_asked)"
    missing = ", ".join(
        f"{code:g}→{codebook.missing_code(kind)} ({kind})"
        for code, kind in source.missing_codes.items()
    )
    if source.scale is not None:
        recode = ", ".join(f"{c}→{t}" for c, t in source.scale.recode.items())
        text = f"{source.scale.name}: {recode}"
    elif source.bins is not None:
        text = "bins " + ", ".join(
            f"{lo:g}–{hi:g}→{code}" for code, (lo, hi) in source.bins.items()
        )
    else:
        text = "value as delivered"
    return f"{text}; missing {missing}" if missing else text


def comparability(
    variable: Variable, codebook: Codebook, waves: Iterable[str] | None = None
) -> str:
    """identical: every wave turns the same original codes into the same harmonised codes;
    harmonised: the waves differ (a collapsed scale, an added option, binned ages) and a
    documented rule makes them comparable; one_wave: asked in one wave only. ``waves``: the
    waves compared (default: every wave that asked it)."""
    waves = [w for w in (codebook.waves if waves is None else waves) if variable.asked_in(w)]
    if len(waves) < 2:
        return "one_wave"
    sources = [variable.sources[w] for w in waves]
    if any(s.bins is not None for s in sources):
        return "harmonised"
    recodes = [s.scale.recode if s.scale is not None else None for s in sources]
    return "identical" if all(r == recodes[0] for r in recodes) else "harmonised"


def canonical_order(frame: pd.DataFrame, instrument: Instrument) -> pd.DataFrame:
    """Rows sorted by a hash of what any sum reads of them (answers, codes, municipality): not
    by the file's row numbers (a re-export in another order) nor by the pseudonym (another
    installation has another key). Rows alike in all of that can come in any order: every sum
    over them is the same sum. Free text, dates and identifiers are left out of the hash; text
    codes enter it as their rank among the column's values, which is what keeps it fast."""
    left_out = {v.name for v in instrument.variables if v.level in ("identifier", "text", "date")}
    content = {}
    for column in frame.columns:
        if column in left_out or column in PROVENANCE:
            continue
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values):
            content[column] = values
        else:
            ranks = pd.Categorical(values, categories=sorted(values.dropna().unique()))
            content[column] = ranks.codes
    digest = pd.util.hash_pandas_object(pd.DataFrame(content), index=False).to_numpy()
    return frame.iloc[np.argsort(digest, kind="stable")].reset_index(drop=True)


@dataclass(frozen=True)
class Harmonised:
    """One instrument, both waves, in harmonised form, with what made it."""

    table: pd.DataFrame
    provenance: pd.DataFrame
    labels: pd.DataFrame
    weights: dict[str, WeightReport]
    geography: dict[str, GeographyReport]


def provenance(instrument: Instrument, codebook: Codebook, files: dict[str, str]) -> pd.DataFrame:
    """One row per harmonised variable and wave: where it came from and by which rule."""
    rows = []
    for variable in instrument.variables:
        for wave in codebook.waves:
            source = variable.sources.get(wave)
            rows.append(
                {
                    "instrument": instrument.name,
                    "variable": variable.name,
                    "wave": wave,
                    "source_file": instrument.files[wave].name
                    if wave in instrument.files
                    else None,
                    "source_sha256": files.get(wave),
                    "source_variable": source.variable if source else None,
                    "source_scale": source.scale.name if source and source.scale else None,
                    "harmonised_scale": variable.scale.name if variable.scale else None,
                    "level": variable.level,
                    "rule": recode_rule(source, codebook),
                    "comparability": comparability(variable, codebook),
                    "comparability_note": variable.comparability,
                    "question_lv": variable.question.lv,
                    "question_en": variable.question.en,
                }
            )
    return pd.DataFrame(rows)


def value_labels(instrument: Instrument, codebook: Codebook) -> pd.DataFrame:
    """Every harmonised code of every categorical variable, missing codes included."""
    rows = []
    for variable in instrument.variables:
        if variable.scale is None:
            continue
        codes = [(c, label) for c, label in variable.scale.codes.items()]
        codes += [(m.code, m.label) for m in codebook.missing_categories.values()]
        rows += [
            {"variable": variable.name, "code": code, "label_lv": label.lv, "label_en": label.en}
            for code, label in codes
        ]
    return pd.DataFrame(rows)


def harmonise_instrument(
    tables: Iterable[tuple[str, pd.DataFrame]],
    instrument: Instrument,
    codebook: Codebook,
    ref: ReferenceData,
) -> Harmonised:
    """Validated tables of every wave → one long harmonised table with geography and weights.
    ``tables`` may read each wave's table only when it is wanted: each is let go once its wave
    is harmonised, so at a register's size one wave's validated table is in memory, not all.

    Each wave's rows are put in a canonical order before anything is summed: floating-point
    sums depend on their order, and the same delivery with its rows in another order must give
    the same weights and the same published figures to the last digit."""
    parts, weights, places, files = [], {}, {}, {}
    for wave, table in tables:
        frame = canonical_order(harmonise_wave(table, instrument, wave, codebook), instrument)
        frame, places[wave] = geography.attach(frame, wave, codebook, ref)
        frame["weight"], frame["design_weight"], weights[wave] = weighting.weights_for(
            frame, instrument, wave, codebook, ref
        )
        frame = pd.concat([frame, weighting.design_columns(frame, instrument, wave)], axis=1)
        frame["design_population"] = targets.fpc_population(frame, instrument, wave, codebook, ref)
        if len(table):
            files[wave] = str(table["_source_sha256"].iloc[0])
        parts.append(frame)
        del table
    stacked = pd.concat(parts, ignore_index=True)
    return Harmonised(
        table=stacked,
        provenance=provenance(instrument, codebook, files),
        labels=value_labels(instrument, codebook),
        weights=weights,
        geography=places,
    )
