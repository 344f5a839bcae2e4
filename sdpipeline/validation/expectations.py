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

import duckdb
import pandas as pd

from sdpipeline.codebook import Codebook, Instrument
from sdpipeline.recodes import literal, number, quoted

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
    connection: duckdb.DuckDBPyConnection,
    relation: str,
    instrument: Instrument,
    wave: str,
    min_valid: int,
) -> pd.DataFrame:
    """One row per substantive categorical question with at least ``min_valid`` valid answers:
    its most common valid code and that code's share. The codes are counted in DuckDB; only
    the counts (a few per question) come back."""
    kinds = {str(r[0]): str(r[1]) for r in connection.execute(f"DESCRIBE {relation}").fetchall()}
    counted = []
    for variable in instrument.variables_in(wave):
        source = variable.sources[wave]
        if variable.role != "substantive" or source.scale is None or source.variable not in kinds:
            continue
        value = number(quoted(source.variable), kinds[source.variable])
        codes = ", ".join(repr(float(c)) for c in source.scale.recode)
        counted.append(
            f"SELECT {literal(variable.name)} AS variable, {literal(source.variable)} AS "
            f'"column", v AS code, count(*) AS n FROM (SELECT {value} AS v FROM {relation}) '
            f"WHERE v IN ({codes}) GROUP BY v"
        )
    if not counted:
        return pd.DataFrame(columns=["variable", "column", "modal_code", "modal_share", "valid_n"])
    # the most common code of each question (the smaller code of two as common), with its share
    profile = connection.execute(
        'SELECT variable, "column", code AS modal_code, n / valid AS modal_share, valid AS valid_n '
        "FROM (SELECT *, sum(n) OVER (PARTITION BY variable) AS valid, row_number() OVER "
        "(PARTITION BY variable ORDER BY n DESC, code) AS rank FROM ("
        + " UNION ALL ".join(counted)
        + f")) WHERE rank = 1 AND valid >= {int(min_valid)}"
    ).df()
    order = {v.name: i for i, v in enumerate(instrument.variables_in(wave))}
    profile = profile.sort_values("variable", key=lambda names: names.map(order))
    profile["valid_n"] = profile["valid_n"].astype(int)
    return profile.reset_index(drop=True)


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


def harmonised_profile(
    connection: duckdb.DuckDBPyConnection,
    relation: str,
    instrument: Instrument,
    codebook: Codebook,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the harmonised suites read, counted in DuckDB: per wave the respondents, the sum of
    the weights and the distinct municipalities; per categorical item and wave whether any
    row carries an answer other than 'not asked'."""
    not_asked = codebook.missing_code("not_asked")
    items = [v for v in instrument.variables if v.is_categorical]
    present = "".join(
        f", bool_or({quoted(v.name)} <> {not_asked}) AS {quoted(v.name)}" for v in items
    )
    waves = connection.execute(
        f"SELECT wave, count(*) AS respondents, sum(weight) AS weight_sum, "
        f"count(DISTINCT municipality) AS municipalities{present} FROM {relation} GROUP BY wave"
    ).df()
    answered = {row["wave"]: row for row in waves.to_dict("records")}
    return waves, pd.DataFrame(
        [
            {
                "item": f"{variable.name} @ {wave}",
                "asked": int(variable.asked_in(wave)),
                "present": int(bool(answered.get(wave, {}).get(variable.name, False))),
            }
            for variable in items
            for wave in instrument.files
        ]
    )


def harmonised_suites(
    instrument: Instrument,
    waves: pd.DataFrame,
    coverage: pd.DataFrame,
    expected_totals: dict[str, float],
) -> list[tuple[Suite, pd.DataFrame]]:
    """Suites for a harmonised table and the frame each one validates (``harmonised_profile``'s
    counts): respondents and weight totals per wave (every wave present, weights adding up to
    its population), and which items each wave carries (an item asked must be answered
    somewhere, one not asked must be 'not asked' everywhere)."""
    name = f"{instrument.name}_harmonised"
    found = waves.set_index("wave")
    totals = pd.DataFrame(
        [
            {
                "wave": wave,
                "respondents": int(found["respondents"].get(wave, 0)),
                "weight_sum": float(found["weight_sum"].get(wave, 0.0)),
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
    coverage_suite = Suite(
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
    return [(weights, totals), (coverage_suite, coverage)]
