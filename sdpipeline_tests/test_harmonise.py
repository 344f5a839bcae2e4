"""Harmonisation: the same meaning in both waves, every unit on the 2021 map, weights that hit
their population margins, and estimates that recover the generator's truth."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pytest

from sdpipeline import geography
from sdpipeline.estimation import weighted_mean
from sdpipeline.harmonise import HarmonisationError, harmonise_wave
from sdpipeline.ingest import load_raw
from sdpipeline.reference import ReferenceData
from sdpipeline.validation.harmonised_contract import harmonised_contract
from sdpipeline.validation.quarantine import check_frame
from sdpipeline.weighting import population_margins, raking_cells

from .conftest import SHIPPED_RAW


@pytest.fixture(scope="module")
def ref(codebook):
    return ReferenceData.from_files(codebook)


def _rows(codebook, wave, file, n):
    residents = codebook.instruments["residents"]
    return load_raw(residents, wave, codebook, SHIPPED_RAW / wave / file).table.head(n).copy()


def test_renamed_and_rescaled_items_mean_the_same_in_both_waves(codebook):
    residents = codebook.instruments["residents"]
    ante = _rows(codebook, "ex_ante_2017", "iedzivotaji_2017.sav", 6)
    post = _rows(codebook, "ex_post_2023", "iedzivotaji_2023.csv", 7)
    # 4-point 2017 scale (q4) and 5-point 2023 scale (B1_vertejums), each with its missing codes
    ante["q4"] = [1, 2, 3, 4, 8, 9]
    post["B1_vertejums"] = [1, 2, 3, 4, 5, 98, 99]
    # yes/no in 2017 (q14), a 4-point likelihood in 2023 (C4_versties)
    ante["q14"] = [1, 2, 1, 2, 8, 9]
    post["C4_versties"] = [1, 2, 3, 4, 98, 99, 1]
    # age in years in 2017, binned; the group itself in 2023
    ante["vecums"] = [18, 34, 35, 64, 65, 999]
    a = harmonise_wave(ante, residents, "ex_ante_2017", codebook)
    p = harmonise_wave(post, residents, "ex_post_2023", codebook)
    assert a["service_assessment"].tolist() == [1, 1, 3, 3, -1, -2]
    assert p["service_assessment"].tolist() == [1, 1, 2, 3, 3, -1, -2]
    assert a["would_turn_to_service"].tolist() == [1, 0, 1, 0, -1, -2]
    assert p["would_turn_to_service"].tolist() == [1, 1, 0, 0, -1, -2, 1]
    assert a["age_group"].tolist() == [1, 1, 2, 3, 4, -2]
    assert (a["atr_service_change"] == -3).all()  # asked only in 2023: 'not asked' in 2017
    assert a["aware_service"].dtype == p["aware_service"].dtype


def test_numeric_missing_codes_become_a_kind_beside_an_empty_value(codebook):
    clients = codebook.instruments["clients"]
    rows = load_raw(
        clients, "ex_ante_2017", codebook, SHIPPED_RAW / "ex_ante_2017" / "klienti_2017.sav"
    )
    table = rows.table.head(3).copy()
    table["k3_dienas"] = [4, 999, 0]
    out = harmonise_wave(table, clients, "ex_ante_2017", codebook)
    assert out["wait_days"].iloc[0] == 4 and np.isnan(out["wait_days"].iloc[1])
    assert out["wait_days_missing"].isna().tolist() == [True, False, True]
    assert out["wait_days_missing"].iloc[1] == "no_answer"


def test_a_code_without_a_rule_stops_the_recode(codebook):
    residents = codebook.instruments["residents"]
    ante = _rows(codebook, "ex_ante_2017", "iedzivotaji_2017.sav", 3)
    ante["q4"] = [1, 7, 2]
    with pytest.raises(
        HarmonisationError,
        match=r"residents.service_assessment \(ex_ante_2017\): codes \['7'\] .* \(rows \[2\]\)",
    ):
        harmonise_wave(ante, residents, "ex_ante_2017", codebook)


def test_every_2017_municipality_reaches_2021(codebook, ref):
    old = ref.municipalities[2017]["iso_code"]
    with duckdb.connect() as connection:
        connection.register("answers", pd.DataFrame({"municipality": [*old, "LV-001"]}))
        placed, report = geography.places_in(connection, "answers", "ex_ante_2017", codebook, ref)
    assert len(placed) == 119  # one row per distinct code
    assert placed["municipality_2021"].notna().all()
    assert set(placed["municipality_2021"]) == set(ref.municipalities[2021]["iso_code"])
    assert placed["region"].notna().all() and placed["municipality_type"].notna().all()
    assert report.rows == 120
    assert report.split_rows == 3 and report.split_units == {"LV-001": 2, "LV-037": 1}
    split = placed.set_index("municipality_code").loc[["LV-001", "LV-037"]]
    assert split["municipality_2021"].tolist() == ["LV-073", "LV-091"]  # Preiļu, Siguldas
    assert split["successor_share"].round(4).tolist() == [0.5172, 0.5361]


def test_raking_reproduces_the_population_margins(pipeline_run, codebook, ref):
    _, warehouse, _ = pipeline_run
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        table = connection.execute("SELECT * FROM harmonised.residents").df()
    margins = list(codebook.instruments["residents"].weighting.margins)
    for wave in codebook.waves:
        rows = table[table["wave"] == wave]
        for margin, target in zip(
            margins, population_margins(codebook, wave, margins, ref), strict=True
        ):
            achieved = rows.groupby(list(margin))["weight"].sum()
            achieved.index = [k if isinstance(k, tuple) else (k,) for k in achieved.index]
            error = (achieved / target - 1).abs().max()
            assert error < 1e-6, (wave, margin, error)
        assert rows["weight"].max() / rows["weight"].median() <= 5.0 + 1e-3


def test_weighted_resident_estimates_recover_the_truth(pipeline_run, codebook):
    _, warehouse, _ = pipeline_run
    truth = json.loads((SHIPPED_RAW / "ground_truth.json").read_text(encoding="utf-8"))["waves"]
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        table = connection.execute("SELECT * FROM harmonised.residents").df()
    residents = codebook.instruments["residents"]
    covered, biased_unweighted = [], []
    for wave in codebook.waves:
        for name, values in truth[wave]["residents"]["variables"].items():
            if residents.variable(name).role != "substantive":
                continue
            for code, true in values["national"].items():
                y = (table[name].astype(float) == float(code)).astype(float)
                e = weighted_mean(
                    y,
                    table["weight"],
                    table["design_stratum"],
                    table["design_psu"],
                    table["wave"] == wave,
                )
                covered.append(e.ci_low <= true <= e.ci_high)
        for code, true in truth[wave]["residents"]["variables"]["age_group"]["national"].items():
            rows = table[table["wave"] == wave]
            weighted = (
                rows.loc[rows["age_group"] == int(code), "weight"].sum() / rows["weight"].sum()
            )
            assert weighted == pytest.approx(true, abs=1e-3)
            biased_unweighted.append(abs((rows["age_group"] == int(code)).mean() - true))
    assert len(covered) > 150
    assert np.mean(covered) >= 0.9
    assert max(biased_unweighted) > 0.1  # the raw sample is far off: the weights matter


def test_provenance_is_queryable_and_on_the_asset(pipeline_run):
    _, warehouse, result = pipeline_run
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        rows = connection.execute(
            "SELECT wave, source_file, source_variable, rule, comparability "
            "FROM harmonised.clients_provenance WHERE variable = 'satisfaction' ORDER BY wave"
        ).fetchall()
    assert rows[0][:3] == ("ex_ante_2017", "klienti_2017.sav", "k1")
    assert rows[1][:3] == ("ex_post_2023", "klienti_2023.xlsx", "SAT1")
    assert "3→2" in rows[1][3] and rows[0][4] == "harmonised"
    event = next(
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "harmonised/clients"
    )
    lineage = event.materialization.metadata["dagster/column_lineage"].value
    deps = {d.column_name for d in lineage.deps_by_column["satisfaction"]}
    assert deps == {"k1", "SAT1"}
    assert set(event.materialization.metadata["source_sha256"].value) == {
        "klienti_2017.sav",
        "klienti_2023.xlsx",
    }


def test_the_harmonised_contract_catches_a_broken_recode(pipeline_run, codebook, ref):
    _, warehouse, _ = pipeline_run
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        table = connection.execute("SELECT * FROM harmonised.clients").df()
    schema = harmonised_contract(codebook.instruments["clients"], codebook, ref)
    assert check_frame(table, schema).quarantined.empty
    table.loc[3, "satisfaction"] = 5
    table.loc[4, "weight"] = 0.0
    broken = check_frame(table, schema)
    assert set(broken.checks.loc[broken.checks["failing_rows"] > 0, "check"]) == {
        "harmonised_code",
        "positive",
    }


def test_estimator_matches_a_hand_computation():
    # two strata, two PSUs each, one domain; hand-computed below
    y = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    w = np.array([2.0, 2.0, 1.0, 1.0, 3.0, 3.0])
    h = np.array(["a", "a", "a", "b", "b", "b"])
    j = np.array(["a1", "a1", "a2", "b1", "b2", "b2"])
    e = weighted_mean(y, w, h, j)
    mean = (2 + 1 + 1 + 3) / 12
    z = w * (y - mean) / 12
    za = np.array([z[0] + z[1], z[2]])
    zb = np.array([z[3], z[4] + z[5]])
    variance = 2 * ((za - za.mean()) ** 2).sum() + 2 * ((zb - zb.mean()) ** 2).sum()
    assert e.estimate == pytest.approx(mean, abs=1e-12)
    assert e.se == pytest.approx(np.sqrt(variance), abs=1e-12)
    assert e.df == 2 and e.n == 6


def test_domains_are_estimated_over_the_whole_design():
    rng = np.random.default_rng(3)
    n = 400
    strata = np.repeat(["a", "b"], n // 2)
    psu = np.array([f"{s}{i // 10}" for s, i in zip(strata, range(n), strict=True)])
    y = rng.random(n)
    w = rng.uniform(1, 3, n)
    domain = rng.random(n) < 0.2
    whole = weighted_mean(y, w, strata, psu, domain)
    subset = weighted_mean(y[domain], w[domain], strata[domain], psu[domain])
    assert whole.estimate == pytest.approx(subset.estimate)
    assert whole.df > subset.df or whole.se != subset.se


def test_raking_cells_are_coded_once_per_margin():
    frame = pd.DataFrame({"region": [2, 1, 2, 1, 2], "sex": [1, 1, 2, 1, 1]})
    codes, cells = raking_cells(frame, ("region", "sex"))
    assert [cells[c] for c in codes] == list(zip(frame["region"], frame["sex"], strict=True))
    assert sorted(cells) == [(1, 1), (2, 1), (2, 2)]
