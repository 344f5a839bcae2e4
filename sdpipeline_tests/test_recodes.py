"""Recodes as data: the codebook's scales as one crosswalk, and the SQL made from it doing what
the crosswalk says, in the harmonised tables and in the floor alike."""

from __future__ import annotations

import duckdb
import pandas as pd
import pandera.pandas as pa
import pytest

from sdpipeline.floor import _recoded
from sdpipeline.recodes import categorical_sql, crosswalk, rules_for
from sdpipeline.validation.contracts import row_contract
from sdpipeline.validation.quarantine import check_frame

from .test_validation import _specialists


@pytest.fixture(scope="module")
def recodes(codebook):
    return crosswalk(codebook)


def test_every_source_code_of_every_scale_is_a_row(codebook, recodes):
    for instrument in codebook.instruments.values():
        for variable in instrument.variables:
            for wave in instrument.files:
                rows = recodes[
                    (recodes["instrument"] == instrument.name)
                    & (recodes["wave"] == wave)
                    & (recodes["variable"] == variable.name)
                ]
                source = variable.sources.get(wave)
                if source is None:
                    assert rows["rule"].tolist() == ["not_asked"], (variable.name, wave)
                    continue
                if source.scale is not None:
                    recoded = rows[rows["rule"] == "recode"]
                    assert dict(
                        zip(recoded["source_low"], recoded["harmonised_code"], strict=True)
                    ) == {float(c): t for c, t in source.scale.recode.items()}
                missing = rows[rows["rule"] == "missing"]
                assert dict(zip(missing["source_low"], missing["missing_kind"], strict=True)) == (
                    source.missing_codes
                )


def test_the_crosswalk_names_the_2017_age_bins_and_missing_codes(recodes):
    age = recodes[
        (recodes["instrument"] == "residents")
        & (recodes["wave"] == "ex_ante_2017")
        & (recodes["variable"] == "age_group")
    ]
    bins = age[age["rule"] == "bin"][["source_low", "source_high", "harmonised_code"]]
    assert bins.values.tolist() == [[18, 34, 1], [35, 49, 2], [50, 64, 3], [65, 110, 4]]
    assert age.loc[age["rule"] == "missing", ["source_low", "missing_kind"]].values.tolist() == [
        [999.0, "no_answer"]
    ]
    assert age.loc[age["rule"] == "blank", "harmonised_code"].tolist() == [-2]


def test_the_floor_recodes_with_the_harmonised_tables_own_sql(codebook, recodes):
    variable = codebook.instruments["residents"].variable("service_assessment")
    rules = rules_for(recodes, "residents", "ex_ante_2017")
    kinds = {"q4": "DOUBLE"}
    expected = categorical_sql(rules["service_assessment"], 'CAST("q4" AS DOUBLE)', '"q4" IS NULL')
    assert _recoded(variable, "ex_ante_2017", rules, kinds) == expected
    with duckdb.connect() as connection:
        connection.register("t", pd.DataFrame({"q4": [1.0, 2.0, 3.0, 4.0, 8.0, 9.0, None, 7.0]}))
        out = connection.execute(f"SELECT {expected} FROM t").fetchall()
    assert [r[0] for r in out] == [1, 1, 3, 3, -1, -2, -2, None]  # 7: no rule, never a guess


def test_pandera_on_a_frame_and_the_warehouse_find_the_same_rows(codebook):
    spec, table = _specialists(codebook)
    table.loc[1, "TIME_DIRECT"] = table.loc[1, "TIME_DIRECT"] + 20  # breaks the sum rule
    table.loc[4, "JOB_SAT"] = 7  # not a code
    table.loc[6, "region"] = 6 if table.loc[6, "region"] != 6 else 5  # wrong region
    schema = row_contract(spec, "ex_post_2023", codebook)
    in_warehouse = set(check_frame(table, schema).quarantined["source_row"])
    with pytest.raises(pa.errors.SchemaErrors) as errors:
        schema.validate(table, lazy=True)
    found = errors.value.failure_cases["index"].dropna().astype(int)
    assert set(table.loc[sorted(set(found)), "_source_row"]) == in_warehouse == {2, 5, 7}
