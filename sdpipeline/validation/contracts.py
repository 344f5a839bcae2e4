"""The row-level contract of a raw table, as a pandera schema derived from the codebook.

Checks are vectorised and tolerant of type: a text cell in a numeric column fails one named
check ("is a number") on its own row instead of breaking every other check of the column, so
that lazy validation can report each bad cell with its row. Missing codes (8/9, 98/99, 999 …)
are valid answers, never range violations, and cross-field rules skip rows where a value is one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pandas as pd
import pandera.pandas as pa

from sdpipeline import reference
from sdpipeline.codebook import Codebook, Instrument, Rule, SourceVariable, Variable


def numbers(values: pd.Series) -> pd.Series:
    """Numeric view of a column as delivered: decimal commas and text tolerated (→ NaN)."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(float)
    text = values.astype("string").str.strip().str.replace(",", ".", regex=False)
    return pd.to_numeric(text, errors="coerce").astype(float)


def dates(values: pd.Series, date_format: str | None) -> pd.Series:
    """Dates as delivered: native SPSS/Excel dates, or text in the file's declared format."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    if (
        not pd.api.types.is_string_dtype(values)
        and values.map(lambda v: isinstance(v, dt.date)).all()
    ):
        return pd.to_datetime(values, errors="coerce")
    return pd.to_datetime(values.astype("string"), format=date_format, errors="coerce")


def _in_codes(values: pd.Series, codes: set[str]) -> pd.Series:
    """Missing, or one of ``codes`` once surrounding spaces are dropped; only the cells that
    do not match as they are pay for the stripping."""
    found = values.isna() | values.isin(codes)
    if not found.all():
        found |= values.astype("string").str.strip().isin(codes)
    return found


def _check(function: Callable[[pd.Series], pd.Series], name: str, error: str) -> pa.Check:
    return pa.Check(function, name=name, error=error)


def _is_number() -> pa.Check:
    return _check(lambda s: s.isna() | numbers(s).notna(), "is_number", "not a number")


def _column(variable: Variable, source: SourceVariable, codebook: Codebook, wave: str) -> pa.Column:
    checks: list[pa.Check] = []
    missing = sorted(source.missing_codes)
    nullable = variable.level == "text"
    unique = variable.level == "identifier"
    if variable.level == "municipality":
        vintage = codebook.waves[wave].municipality_vintage
        codes = set(reference.municipalities(vintage, codebook)["iso_code"])
        checks.append(
            _check(
                lambda s, c=codes: _in_codes(s, c),
                "municipality_code",
                f"not a municipality code of the {vintage} vintage",
            )
        )
    elif source.scale is not None:
        codes = sorted(source.scale.labels)
        checks += [
            _is_number(),
            _check(
                lambda s, c=codes: numbers(s).isna() | numbers(s).isin(c),
                "valid_code",
                f"not a code of {source.scale.name} {codes}",
            ),
        ]
    elif source.bins is not None or variable.level == "numeric":
        if source.bins is not None:
            low = min(lo for lo, _ in source.bins.values())
            high = max(hi for _, hi in source.bins.values())
        else:
            low, high = variable.value_range
        checks += [
            _is_number(),
            _check(
                lambda s, lo=low, hi=high, m=missing: (
                    numbers(s).isna() | numbers(s).between(lo, hi) | numbers(s).isin(m)
                ),
                "in_range",
                f"outside {low:g}–{high:g} and not a missing code {missing}",
            ),
        ]
        if variable.integer or source.bins is not None:
            checks.append(
                _check(
                    lambda s: numbers(s).isna() | (numbers(s) % 1 == 0),
                    "whole_number",
                    "not a whole number",
                )
            )
    elif variable.level == "date":
        spec = codebook.instruments[variable.instrument].files[wave]
        wave_def = codebook.waves[wave]
        start, end = pd.Timestamp(wave_def.fieldwork_start), pd.Timestamp(wave_def.fieldwork_end)
        checks += [
            _check(
                lambda s, f=spec.date_format: s.isna() | dates(s, f).notna(),
                "is_date",
                f"not a date{f' in the format {spec.date_format}' if spec.date_format else ''}",
            ),
            _check(
                lambda s, f=spec.date_format, a=start, b=end: _unknown_or_between(
                    dates(s, f), a, b
                ),
                "in_fieldwork",
                f"outside the fieldwork {wave_def.fieldwork_start} – {wave_def.fieldwork_end}",
            ),
        ]
    return pa.Column(
        checks=checks,
        nullable=nullable,
        unique=unique,
        required=variable.required,
        title=variable.name,
        description=variable.question.en,
    )


def _unknown_or_between(values: pd.Series, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    return values.isna() | values.between(start, end)


def _evaluable(frame: pd.DataFrame, columns: list[str], missing: list[list[float]]) -> pd.Series:
    mask = pd.Series(True, index=frame.index)
    for column, codes in zip(columns, missing, strict=True):
        values = numbers(frame[column])
        mask &= values.notna() & ~values.isin(codes)
    return mask


def _rule_check(rule: Rule, instrument: Instrument, wave: str) -> pa.Check | None:
    variables = [instrument.variable(name) for name in rule.variables]
    if not all(v.asked_in(wave) for v in variables):
        return None
    columns = [v.sources[wave].variable for v in variables]
    missing = [sorted(v.sources[wave].missing_codes) for v in variables]

    def holds(frame: pd.DataFrame) -> pd.Series:
        ok = ~_evaluable(frame, columns, missing)
        values = [numbers(frame[c]) for c in columns]
        if rule.kind == "sum":
            total = sum(values[1:], values[0])
            return ok | ((total - rule.total).abs() <= rule.tolerance)
        if rule.kind == "less_or_equal":
            return ok | (values[0] <= values[1])
        return ok | (values[0] == values[1])

    # The description names the columns the rule reads, so a quarantine entry can name them.
    return pa.Check(
        holds,
        name=rule.name,
        error=f"{rule.message} ({', '.join(columns)})",
        description=", ".join(columns),
    )


def _region_check(instrument: Instrument, codebook: Codebook, wave: str) -> pa.Check | None:
    """Where a file carries both municipality and region, they must agree."""
    names = {v.name for v in instrument.variables_in(wave)}
    if not {"municipality", "region"} <= names:
        return None
    municipality = instrument.variable("municipality").sources[wave].variable
    region = instrument.variable("region").sources[wave].variable
    vintage = codebook.waves[wave].municipality_vintage
    regions = reference.municipalities(vintage, codebook).set_index("iso_code")["region_code"]

    def agrees(frame: pd.DataFrame) -> pd.Series:
        codes = frame[municipality]
        expected = codes.map(regions)
        unmatched = expected.isna() & codes.notna()
        if unmatched.any():
            expected[unmatched] = codes[unmatched].astype("string").str.strip().map(regions)
        given = numbers(frame[region])
        return expected.isna() | given.isna() | (given == expected)

    return pa.Check(
        agrees,
        name="region_matches_municipality",
        error=f"region is not the municipality's statistical region ({region}, {municipality})",
    )


def row_contract(instrument: Instrument, wave: str, codebook: Codebook) -> pa.DataFrameSchema:
    """The pandera schema of ``raw.<instrument>_<year>`` for one wave, from the codebook."""
    columns = {
        v.sources[wave].variable: _column(v, v.sources[wave], codebook, wave)
        for v in instrument.variables_in(wave)
    }
    wide = [_rule_check(rule, instrument, wave) for rule in instrument.rules]
    wide.append(_region_check(instrument, codebook, wave))
    return pa.DataFrameSchema(
        columns=columns,
        checks=[check for check in wide if check is not None],
        strict=False,
        name=f"{instrument.name}_{codebook.waves[wave].year}",
        description=f"Row-level contract of the {instrument.label.en.lower()} file, {wave}",
    )
