"""The row-level contract of a raw table, as a pandera schema derived from the codebook.

Each check is SQL (``sql_checks``): the contract runs inside DuckDB on the raw table, and only
failing rows come back. Checks are tolerant of type: a text cell in a numeric column fails one
named check ("is a number") on its own row instead of breaking every other check of the column,
so that each bad cell is reported with its row. Missing codes (8/9, 98/99, 999 …) are valid
answers, never range violations, and cross-field rules skip rows where a value is one.
"""

from __future__ import annotations

import pandera.pandas as pa

from sdpipeline import reference
from sdpipeline.codebook import Codebook, Instrument, Rule, SourceVariable, Variable
from sdpipeline.readers import EXCEL_ERRORS
from sdpipeline.recodes import WHITESPACE, date_formats, literal
from sdpipeline.validation.sql_checks import sql_check


def _numbers(values) -> str:
    return ", ".join(repr(float(v)) for v in values)


def _texts(values) -> str:
    return ", ".join(literal(str(v)) for v in sorted(values))


def _is_number() -> pa.Check:
    return sql_check("is_number", "not a number", "{col} IS NOT NULL AND {num} IS NULL")


def _column(variable: Variable, source: SourceVariable, codebook: Codebook, wave: str) -> pa.Column:
    checks: list[pa.Check] = []
    missing = sorted(source.missing_codes)
    nullable = variable.level == "text"
    unique = variable.level == "identifier"
    if unique:  # the one value ingest leaves in place of a pseudonym
        checks.append(
            sql_check(
                "not_an_excel_error",
                "an Excel error (a formula that failed), not an identifier",
                f"CAST({{col}} AS VARCHAR) IN ({_texts(EXCEL_ERRORS)})",
            )
        )
    if variable.level == "municipality":
        vintage = codebook.waves[wave].municipality_vintage
        codes = _texts(set(reference.municipalities(vintage, codebook)["iso_code"]))
        checks.append(
            sql_check(
                "municipality_code",
                f"not a municipality code of the {vintage} vintage",
                f"{{col}} IS NOT NULL AND CAST({{col}} AS VARCHAR) NOT IN ({codes}) AND "
                f"trim(CAST({{col}} AS VARCHAR), {literal(WHITESPACE)}) NOT IN ({codes})",
            )
        )
    elif source.scale is not None:
        codes = sorted(source.scale.labels)
        checks += [
            _is_number(),
            sql_check(
                "valid_code",
                f"not a code of {source.scale.name} {codes}",
                f"{{num}} IS NOT NULL AND {{num}} NOT IN ({_numbers(codes)})",
            ),
        ]
    elif source.bins is not None or variable.level == "numeric":
        if source.bins is not None:
            low = min(lo for lo, _ in source.bins.values())
            high = max(hi for _, hi in source.bins.values())
        else:
            low, high = variable.value_range
        in_missing = f" OR {{num}} IN ({_numbers(missing)})" if missing else ""
        checks += [
            _is_number(),
            sql_check(
                "in_range",
                f"outside {low:g}–{high:g} and not a missing code {missing}",
                f"{{num}} IS NOT NULL AND NOT ({{num}} BETWEEN {low!r} AND {high!r}{in_missing})",
            ),
        ]
        if variable.integer or source.bins is not None:
            checks.append(
                sql_check(
                    "whole_number",
                    "not a whole number",
                    "{num} IS NOT NULL AND NOT isinf({num}) AND {num} <> floor({num})",
                )
            )
    elif variable.level == "date":
        spec = codebook.instruments[variable.instrument].files[wave]
        wave_def = codebook.waves[wave]
        start, end = wave_def.fieldwork_start.isoformat(), wave_def.fieldwork_end.isoformat()
        checks += [
            sql_check(
                "is_date",
                f"not a date{f' in the format {spec.date_format}' if spec.date_format else ''}",
                "{col} IS NOT NULL AND {date} IS NULL",
                date_formats=date_formats(spec),
            ),
            sql_check(
                "in_fieldwork",
                f"outside the fieldwork {wave_def.fieldwork_start} – {wave_def.fieldwork_end}",
                f"{{date}} IS NOT NULL AND NOT ({{date}} BETWEEN DATE '{start}' AND DATE '{end}')",
                date_formats=date_formats(spec),
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


def _rule_check(rule: Rule, instrument: Instrument, wave: str) -> pa.Check | None:
    variables = [instrument.variable(name) for name in rule.variables]
    if not all(v.asked_in(wave) for v in variables):
        return None
    columns = [v.sources[wave].variable for v in variables]
    values = [f"{{nums[{c}]}}" for c in columns]
    evaluable = " AND ".join(
        f"{value} IS NOT NULL"
        + (
            f" AND {value} NOT IN ({_numbers(sorted(v.sources[wave].missing_codes))})"
            if v.sources[wave].missing_codes
            else ""
        )
        for value, v in zip(values, variables, strict=True)
    )
    if rule.kind == "sum":
        holds = f"abs(({' + '.join(values)}) - {rule.total!r}) <= {rule.tolerance!r}"
    elif rule.kind == "less_or_equal":
        holds = f"{values[0]} <= {values[1]}"
    else:
        holds = f"{values[0]} = {values[1]}"
    # The description names the columns the rule reads, so a quarantine entry can name them.
    return sql_check(
        rule.name,
        f"{rule.message} ({', '.join(columns)})",
        f"{evaluable} AND NOT ({holds})",
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
    code = f"CAST({{cols[{municipality}]}} AS VARCHAR)"
    whens = " ".join(f"WHEN {literal(c)} THEN {int(r)}" for c, r in sorted(regions.items()))
    expected = (
        f"coalesce(CASE {code} {whens} END, CASE trim({code}, {literal(WHITESPACE)}) {whens} END)"
    )
    given = f"{{nums[{region}]}}"
    return sql_check(
        "region_matches_municipality",
        f"region is not the municipality's statistical region ({region}, {municipality})",
        f"{expected} IS NOT NULL AND {given} IS NOT NULL AND {given} <> {expected}",
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
