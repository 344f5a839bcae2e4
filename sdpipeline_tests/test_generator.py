"""The generator: deterministic to the byte, reproduces the shipped delivery, and its ground
truth carries the published levels and the planted effects."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from sdpipeline.generator import GROUND_TRUTH_FILE, generate_delivery
from sdpipeline.ingest import load_raw, sha256_of
from sdpipeline.pseudonymise import pseudonym_key, pseudonymise

from .conftest import SHIPPED_RAW


def _hashes(folder):
    return {
        p.relative_to(folder).as_posix(): sha256_of(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("delivery")
    generate_delivery(out)
    return out


def test_same_seed_gives_the_shipped_delivery_byte_for_byte(regenerated):
    assert _hashes(regenerated) == _hashes(SHIPPED_RAW)


def test_another_seed_gives_other_data(tmp_path, regenerated):
    generate_delivery(tmp_path, seed=1)
    other, default = _hashes(tmp_path), _hashes(regenerated)
    assert other.keys() == default.keys()
    assert all(other[k] != default[k] for k in default if k != GROUND_TRUTH_FILE)


def test_scale_multiplies_sample_sizes(tmp_path, codebook):
    truth = generate_delivery(tmp_path, scale=3)
    base = json.loads((SHIPPED_RAW / GROUND_TRUTH_FILE).read_text(encoding="utf-8"))
    for wave in ("ex_ante_2017", "ex_post_2023"):
        assert (
            truth["waves"][wave]["residents"]["respondents"]
            == 3 * base["waves"][wave]["residents"]["respondents"]
        )
        assert truth["waves"][wave]["specialists"]["respondents"] >= 3 * 470


def _truth():
    return json.loads((SHIPPED_RAW / GROUND_TRUTH_FILE).read_text(encoding="utf-8"))["waves"]


def test_published_ex_ante_client_satisfaction_is_the_truth():
    satisfaction = _truth()["ex_ante_2017"]["clients"]["variables"]["satisfaction"]["national"]
    assert satisfaction["1"] == pytest.approx(0.78) and satisfaction["3"] == pytest.approx(0.19)
    assert satisfaction["-1"] == pytest.approx(0.03)


def test_planted_effects_are_in_the_truth():
    truth = _truth()
    post, ante = truth["ex_post_2023"], truth["ex_ante_2017"]
    specialists = post["specialists"]["variables"]
    for name in ("specialised", "supervision_12m", "training_12m"):
        by = specialists[name]["by_project_participant"]
        assert by["1"]["1"] > by["0"]["1"] + 0.1, name
    docs = specialists["time_documentation_pct"]["by_shortage"]
    assert docs["1"] > docs["0"] + 5
    shortage = "specialist_shortage"
    assert (
        post["heads"]["variables"][shortage]["national"]["1"]
        > ante["heads"]["variables"][shortage]["national"]["1"] + 0.15
    )
    direct = (ante, post)
    change = abs(
        direct[1]["specialists"]["variables"]["time_direct_pct"]["national"]
        - direct[0]["specialists"]["variables"]["time_direct_pct"]["national"]
    )
    assert change < 5  # practice mostly unchanged
    assert "covid_delayed_innovations" in post["heads"]["variables"]


def test_the_sample_is_drawn_from_the_truth(codebook):
    clients = codebook.instruments["clients"]
    load = load_raw(
        clients, "ex_ante_2017", codebook, SHIPPED_RAW / "ex_ante_2017" / "klienti_2017.sav"
    )
    satisfied = pd.to_numeric(load.table["k1"]).isin([1, 2]).mean()
    assert satisfied == pytest.approx(0.78, abs=0.05)
    specialists = codebook.instruments["specialists"]
    load = load_raw(
        specialists, "ex_ante_2017", codebook, SHIPPED_RAW / "ex_ante_2017" / "specialisti_2017.csv"
    )
    shares = load.table[["s1_tiesais", "s2_dokumenti", "s3_netiesais", "s4_citi"]].sum(axis=1)
    assert shares.between(99.5, 100.5).mean() > 0.95


def test_residents_sample_needs_weights(codebook):
    """Equal allocation by region and age-related response: the raw sample is not the population."""
    residents = codebook.instruments["residents"]
    load = load_raw(
        residents, "ex_post_2023", codebook, SHIPPED_RAW / "ex_post_2023" / "iedzivotaji_2023.csv"
    )
    riga_share = (load.table["region"] == 1).mean()
    assert riga_share == pytest.approx(1 / 6, abs=0.02)  # Rīga is about a third of adults
    assert (load.table["age_grp"] == 4).mean() > 0.30


def test_identifiers_past_32_bits_are_written_to_spss_and_read_back(isolated, codebook):
    """At ×1000 a 2017 serial has seven digits behind the year (20171200000): more than a
    32-bit integer holds, which SPSS files store as doubles anyway."""
    import pyreadstat

    from sdpipeline.generator.writers import write_delivery_file

    instrument, wave = codebook.instruments["residents"], codebook.waves["ex_ante_2017"]
    spec = instrument.files[wave.id]
    assert spec.format == "sav"
    shipped, _ = pyreadstat.read_sav(str(SHIPPED_RAW / wave.id / spec.name))
    frame = shipped.head(3).astype(object)
    id_column = instrument.id_variable.sources[wave.id].variable
    frame[id_column] = pd.Series([20171199998, 20171199999, 20171200000], dtype=object)
    path = isolated / spec.name
    write_delivery_file(frame, path, spec, list(instrument.variables_in(wave.id)), wave)

    load = load_raw(instrument, wave.id, codebook, path)
    ids = pd.Series([20171199998, 20171199999, 20171200000], dtype=object)
    expected = pseudonymise(ids, instrument.name, wave.id, pseudonym_key())
    assert list(load.table[id_column]) == list(expected)
