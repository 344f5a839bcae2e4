"""The contract of a harmonised table: what harmonisation promises downstream layers.

A failure here is not a bad delivery (those were stopped earlier) but a recode, crosswalk or
weighting that did not do what the codebook says, so every failure is an error. Like the row
contract, its checks are SQL (``sql_checks``) and it runs on the table in the warehouse.
"""

from __future__ import annotations

import pandera.pandas as pa

from sdpipeline.codebook import Codebook, Instrument
from sdpipeline.harmonise import missing_column
from sdpipeline.recodes import literal, quoted
from sdpipeline.reference import ReferenceData
from sdpipeline.validation.sql_checks import sql_check

MUNICIPALITY_TYPES = ["novads", "state_city"]


def _one_of(values: list, name: str, error: str) -> pa.Check:
    listed = ", ".join(literal(v) if isinstance(v, str) else repr(v) for v in values)
    return sql_check(name, error, f"{{col}} IS NOT NULL AND {{col}} NOT IN ({listed})")


def harmonised_contract(
    instrument: Instrument, codebook: Codebook, ref: ReferenceData
) -> pa.DataFrameSchema:
    missing = [m.code for m in codebook.missing_categories.values()]
    kinds = list(codebook.missing_categories)
    regions = list(codebook.harmonised_scales["region6"].codes)
    positive = sql_check(
        "positive", "weight is not positive", "{col} IS NOT NULL AND NOT ({col} > 0)"
    )
    columns: dict[str, pa.Column] = {
        "wave": pa.Column(str, _one_of(list(codebook.waves), "known_wave", "unknown wave")),
        "respondent_id": pa.Column(nullable=False),
        "municipality_2021": pa.Column(
            checks=_one_of(
                list(ref.municipalities[2021]["iso_code"]),
                "mapped_to_2021",
                "not mapped to a 2021 municipality",
            ),
            nullable=False,
        ),
        "region": pa.Column(checks=_one_of(regions, "region", "not a region"), nullable=False),
        "municipality_type": pa.Column(
            checks=_one_of(MUNICIPALITY_TYPES, "type", "unknown municipality type"),
            nullable=False,
        ),
        "weight": pa.Column(float, positive, nullable=False),
        "design_weight": pa.Column(float, positive, nullable=False),
        "design_stratum": pa.Column(nullable=False),
        "design_psu": pa.Column(nullable=False),
        # units in the stratum's population where a census targets the finite population
        "design_population": pa.Column(
            float,
            sql_check(
                "positive", "population is not positive", "{col} IS NOT NULL AND NOT ({col} > 0)"
            ),
            nullable=True,
        ),
    }
    for variable in instrument.variables:
        if variable.is_categorical:
            codes = sorted(set(variable.scale.codes) | set(missing))
            columns[variable.name] = pa.Column(
                checks=_one_of(
                    codes, "harmonised_code", f"not a code of {variable.scale.name} {codes}"
                ),
                nullable=False,
            )
        elif variable.level == "numeric":
            low, high = variable.value_range
            columns[variable.name] = pa.Column(
                float,
                sql_check(
                    "in_range",
                    f"outside {low:g}–{high:g}",
                    f"{{col}} IS NOT NULL AND NOT isnan({{col}}) "
                    f"AND NOT ({{col}} BETWEEN {low!r} AND {high!r})",
                ),
                nullable=True,
            )
            columns[missing_column(variable)] = pa.Column(
                checks=_one_of(kinds, "missing_kind", "unknown missing kind"), nullable=True
            )
    numeric = [v for v in instrument.variables if v.level == "numeric"]
    both_or_neither = " OR ".join(
        f"(({{cols[{v.name}]}} IS NULL OR isnan({{cols[{v.name}]}})) "
        f"= ({{cols[{missing_column(v)}]}} IS NULL))"
        for v in numeric
    )
    return pa.DataFrameSchema(
        columns=columns,
        checks=[
            sql_check(
                "value_or_missing_kind",
                "a numeric answer has both or neither a value and a missing kind",
                both_or_neither or "false",
            ),
            sql_check(
                "one_row_per_respondent",
                "a respondent appears twice in a wave",
                f"{quoted('_n_wave_respondent')} > 1",
                windows={"_n_wave_respondent": "count(*) OVER (PARTITION BY wave, respondent_id)"},
            ),
        ],
        strict=False,
        name=f"{instrument.name}_harmonised",
    )
