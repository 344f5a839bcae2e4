"""The dataset-level contract, as Great Expectations suites derived from the codebook.

GX holds what only a table as a whole can show: enough respondents once rows are quarantined,
key questions mostly answered, no question where one code takes almost everyone, every wave
present, weights adding up, items present exactly where asked. What each row must keep (types,
codes, ranges, unique identifiers, municipality codes, cross-field rules) is the row contract's
(pandera, ``contracts.py``): it runs first, sets failing rows aside, and records every rule for
every column in the audit trail, so a GX expectation repeating one of them could never fail.

Suites are described here as plain data (expectation type, arguments, severity) so they can be
read and tested without GX; ``gx_runner`` turns them into GX objects. A profile (one row per
question, or per wave, or per item) lets a single expectation cover many questions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from sdpipeline.codebook import Codebook, Instrument
from sdpipeline.validation.contracts import numbers

ERROR = "ERROR"
WARN = "WARN"


@dataclass(frozen=True)
class Expectation:
    type: str
    kwargs: dict[str, Any]
    severity: str
    why: str


@dataclass(frozen=True)
class Suite:
    name: str
    expectations: list[Expectation]
    index_columns: list[str] = field(default_factory=list)

    def columns(self) -> list[str]:
        """Every column an expectation or the failing-row report reads, in order: all a
        validator needs of the table (the row count stays what it was)."""
        named = []
        for expectation in self.expectations:
            kwargs = expectation.kwargs
            named += [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs]
            named += kwargs.get("column_list", [])
        return list(dict.fromkeys([*named, *self.index_columns]))


def table_suite(instrument: Instrument, wave: str, codebook: Codebook, table: str) -> Suite:
    defaults = codebook.validation
    expectations = [
        Expectation(
            "ExpectTableRowCountToBeBetween",
            {"min_value": instrument.minimum_rows},
            ERROR,
            f"the design's minimum is {instrument.minimum_rows} respondents",
        )
    ]
    for variable in instrument.variables_in(wave):
        source = variable.sources[wave]
        no_answer = sorted(c for c, kind in source.missing_codes.items() if kind == "no_answer")
        if variable.key and no_answer:
            expectations.append(
                Expectation(
                    "ExpectColumnValuesToNotBeInSet",
                    {
                        "column": source.variable,
                        "value_set": no_answer,
                        "mostly": round(1 - defaults.max_no_answer_share, 4),
                    },
                    WARN,
                    f"key variable: 'no answer' at most {defaults.max_no_answer_share:.0%}",
                )
            )
    return Suite(name=table, expectations=expectations, index_columns=["_source_row"])


def distribution_profile(
    instrument: Instrument, wave: str, table: pd.DataFrame, min_valid: int
) -> pd.DataFrame:
    """One row per substantive categorical question with at least ``min_valid`` valid answers:
    its most common valid code and that code's share."""
    rows = []
    for variable in instrument.variables_in(wave):
        source = variable.sources[wave]
        if variable.role != "substantive" or source.scale is None or source.variable not in table:
            continue
        values = numbers(table[source.variable])
        valid = values[values.isin(list(source.scale.recode))]
        if len(valid) < min_valid:
            continue
        counts = valid.value_counts()
        rows.append(
            {
                "variable": variable.name,
                "column": source.variable,
                "modal_code": float(counts.index[0]),
                "modal_share": float(counts.iloc[0] / len(valid)),
                "valid_n": len(valid),
            }
        )
    return pd.DataFrame(
        rows, columns=["variable", "column", "modal_code", "modal_share", "valid_n"]
    )


def distribution_suite(codebook: Codebook, table: str) -> Suite:
    defaults = codebook.validation
    return Suite(
        name=f"{table}_distribution",
        expectations=[
            Expectation(
                "ExpectColumnValuesToBeBetween",
                {"column": "modal_share", "max_value": defaults.max_modal_share},
                WARN,
                f"no question where one code takes more than {defaults.max_modal_share:.0%} "
                f"of valid answers (questions with {defaults.min_valid_for_distribution}+ answers)",
            )
        ],
        index_columns=["variable"],
    )


def harmonised_suites(
    instrument: Instrument,
    codebook: Codebook,
    table: pd.DataFrame,
    expected_totals: dict[str, float],
) -> list[tuple[Suite, pd.DataFrame]]:
    """Suites for a harmonised table and the frame each one validates: respondents and weight
    totals per wave (every wave present, weights adding up to its population), and which items
    each wave carries (an item asked must be answered somewhere, one not asked must be 'not
    asked' everywhere)."""
    name = f"{instrument.name}_harmonised"
    in_wave = {wave: (table["wave"] == wave).to_numpy() for wave in expected_totals}
    totals = pd.DataFrame(
        [
            {
                "wave": wave,
                "respondents": int(in_wave[wave].sum()),
                "weight_sum": float(table["weight"].to_numpy()[in_wave[wave]].sum()),
                "expected": expected,
            }
            for wave, expected in expected_totals.items()
        ]
    )
    totals["ratio"] = totals["weight_sum"] / totals["expected"]
    weights = Suite(
        name=f"{name}_weights",
        expectations=[
            Expectation(
                "ExpectColumnValuesToBeBetween",
                {"column": "respondents", "min_value": 1},
                ERROR,
                "every wave of the instrument is present",
            ),
            Expectation(
                "ExpectColumnValuesToBeBetween",
                {"column": "ratio", "min_value": 1 - 1e-6, "max_value": 1 + 1e-6},
                ERROR,
                "each wave's weights add up to its population (residents: adults of the "
                "wave's year; heads: services; leaders: municipalities; others: respondents)",
            ),
        ],
        index_columns=["wave"],
    )
    not_asked = codebook.missing_code("not_asked")
    coverage_rows = []
    for variable in instrument.variables:
        if not variable.is_categorical:
            continue
        answered = (table[variable.name] != not_asked).to_numpy()
        for wave in instrument.files:
            coverage_rows.append(
                {
                    "item": f"{variable.name} @ {wave}",
                    "asked": int(variable.asked_in(wave)),
                    "present": int(bool(answered[in_wave[wave]].any())),
                }
            )
    coverage = Suite(
        name=f"{name}_coverage",
        expectations=[
            Expectation(
                "ExpectColumnPairValuesToBeEqual",
                {"column_A": "asked", "column_B": "present"},
                ERROR,
                "items asked in a wave carry answers there; items not asked are 'not asked'",
            )
        ],
        index_columns=["item"],
    )
    return [(weights, totals), (coverage, pd.DataFrame(coverage_rows))]
