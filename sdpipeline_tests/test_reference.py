"""Reference data: both territorial vintages, a complete crosswalk, and population that adds up."""

from __future__ import annotations

import pandas as pd
import yaml

from sdpipeline import population, reference, settings


def test_vintages_have_119_and_43_units(codebook):
    old = reference.municipalities(2017, codebook)
    new = reference.municipalities(2021, codebook)
    assert len(old) == 119 and old["iso_code"].is_unique
    assert len(new) == 43 and new["iso_code"].is_unique
    assert (old["type"] == "republic_city").sum() == 9
    assert (new["type"] == "state_city").sum() == 7
    assert old.groupby("statistical_region").size().to_dict() == {
        "Kurzeme": 20,
        "Latgale": 21,
        "Pierīga": 29,
        "Rīga": 1,
        "Vidzeme": 26,
        "Zemgale": 22,
    }


def test_crosswalk_maps_all_119_onto_all_43(codebook):
    pairs = reference.crosswalk()
    old = set(reference.municipalities(2017, codebook)["iso_code"])
    new = set(reference.municipalities(2021, codebook)["iso_code"])
    assert set(pairs["iso_code_2017"]) == old
    assert set(pairs["iso_code_2021"]) == new
    assert not pairs.duplicated(["iso_code_2017", "iso_code_2021"]).any()
    shares = pairs.groupby("iso_code_2017")["share"].sum()
    assert (shares.round(6) == 1.0).all()


def test_crosswalk_encodes_the_reforms_known_traps():
    pairs = reference.crosswalk().set_index("name_2017")
    split = reference.crosswalk().groupby("iso_code_2017").size()
    assert sorted(split[split > 1].index) == ["LV-001", "LV-037"]  # Aglona, Inčukalns
    assert pairs.loc["Apes novads", "name_2021"] == "Smiltenes novads"
    assert pairs.loc["Strenču novads", "name_2021"] == "Valmieras novads"
    assert pairs.loc["Varakļānu novads", "name_2021"] == "Varakļānu novads"
    assert pairs.loc["Jēkabpils", "name_2021"] == "Jēkabpils novads"
    assert pairs.loc["Valmiera", "name_2021"] == "Valmieras novads"


def test_regions_never_change_across_the_crosswalk(codebook):
    old = reference.municipalities(2017, codebook).set_index("iso_code")["region_code"]
    new = reference.municipalities(2021, codebook).set_index("iso_code")["region_code"]
    pairs = reference.crosswalk()
    assert (pairs["iso_code_2017"].map(old) == pairs["iso_code_2021"].map(new)).all()


def test_population_files_are_what_the_derivation_gives():
    totals, adults = population.derive()
    pd.testing.assert_frame_equal(totals, reference.population_totals(), check_dtype=False)
    pd.testing.assert_frame_equal(adults, reference.population_adults(), check_dtype=False)


def test_population_adds_up_to_the_national_anchors(codebook):
    assumptions = yaml.safe_load(
        (settings.reference_dir() / population.ASSUMPTIONS_FILE).read_text(encoding="utf-8")
    )
    totals = reference.population_totals()
    for year in (2017, 2023):
        assert (
            totals.loc[totals["year"] == year, "population"].sum()
            == (assumptions["national_total"][year]["population"])
        )
    assert set(totals.loc[totals["year"] == 2017, "iso_code"]) == set(
        reference.municipalities(2017, codebook)["iso_code"]
    )
    assert set(totals.loc[totals["year"] == 2023, "iso_code"]) == set(
        reference.municipalities(2021, codebook)["iso_code"]
    )
    assert (totals["population"] > 1000).all()
    adults = reference.population_adults()
    assert len(adults) == (119 + 43) * 8


def test_every_population_figure_says_where_it_came_from():
    totals = reference.population_totals()
    published = {"csb_1jan2017", "published_2023", "published_2022_scaled"}
    assert totals["method"].ne("").all()
    real = totals[totals["method"].isin(published)]
    aizkraukle = totals[(totals["year"] == 2017) & (totals["name"] == "Aizkraukles novads")]
    assert aizkraukle["population"].item() == 8256  # CSB, 1 Jan 2017
    assert len(real) >= 40
