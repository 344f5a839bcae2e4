"""The contract of a harmonised table: what harmonisation promises downstream layers.

A failure here is not a bad delivery (those were stopped earlier) but a recode, crosswalk or
weighting that did not do what the codebook says, so every failure is an error.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa

from sdpipeline.codebook import Codebook, Instrument
from sdpipeline.harmonise import missing_column
from sdpipeline.reference import ReferenceData

MUNICIPALITY_TYPES = ["novads", "state_city"]


def harmonised_contract(
    instrument: Instrument, codebook: Codebook, ref: ReferenceData
) -> pa.DataFrameSchema:
    missing = [m.code for m in codebook.missing_categories.values()]
    kinds = list(codebook.missing_categories)
    regions = list(codebook.harmonised_scales["region6"].codes)
    positive = pa.Check.gt(0, name="positive", error="weight is not positive")
    columns: dict[str, pa.Column] = {
        "wave": pa.Column(
            str, pa.Check.isin(list(codebook.waves), name="known_wave", error="unknown wave")
        ),
        "respondent_id": pa.Column(nullable=False),
        "municipality_2021": pa.Column(
            checks=pa.Check.isin(
                list(ref.municipalities[2021]["iso_code"]),
                name="mapped_to_2021",
                error="not mapped to a 2021 municipality",
            ),
            nullable=False,
        ),
        "region": pa.Column(
            checks=pa.Check.isin(regions, name="region", error="not a region"), nullable=False
        ),
        "municipality_type": pa.Column(
            checks=pa.Check.isin(
                MUNICIPALITY_TYPES, name="type", error="unknown municipality type"
            ),
            nullable=False,
        ),
        "weight": pa.Column(float, positive, nullable=False),
        "design_weight": pa.Column(float, positive, nullable=False),
        "design_stratum": pa.Column(nullable=False),
        "design_psu": pa.Column(nullable=False),
        # units in the stratum's population where a census targets the finite population
        "design_population": pa.Column(
            float,
            pa.Check.gt(0, name="positive", error="population is not positive"),
            nullable=True,
        ),
    }
    for variable in instrument.variables:
        if variable.is_categorical:
            codes = sorted(set(variable.scale.codes) | set(missing))
            columns[variable.name] = pa.Column(
                checks=pa.Check.isin(
                    codes,
                    name="harmonised_code",
                    error=f"not a code of {variable.scale.name} {codes}",
                ),
                nullable=False,
            )
        elif variable.level == "numeric":
            low, high = variable.value_range
            columns[variable.name] = pa.Column(
                float,
                pa.Check.in_range(low, high, name="in_range", error=f"outside {low:g}–{high:g}"),
                nullable=True,
            )
            columns[missing_column(variable)] = pa.Column(
                checks=pa.Check.isin(kinds, name="missing_kind", error="unknown missing kind"),
                nullable=True,
            )
    numeric = [v for v in instrument.variables if v.level == "numeric"]

    def value_xor_missing(frame: pd.DataFrame) -> pd.Series:
        ok = pd.Series(True, index=frame.index)
        for variable in numeric:
            ok &= frame[variable.name].isna() != frame[missing_column(variable)].isna()
        return ok

    def one_row_per_respondent(frame: pd.DataFrame) -> pd.Series:
        return ~frame.duplicated(["wave", "respondent_id"], keep=False)

    return pa.DataFrameSchema(
        columns=columns,
        checks=[
            pa.Check(
                value_xor_missing,
                name="value_or_missing_kind",
                error="a numeric answer has both or neither a value and a missing kind",
            ),
            pa.Check(
                one_row_per_respondent,
                name="one_row_per_respondent",
                error="a respondent appears twice in a wave",
            ),
        ],
        strict=False,
        name=f"{instrument.name}_harmonised",
    )
