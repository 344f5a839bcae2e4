"""The shipped sample delivery honours the codebook: every source variable is there, every code
is labelled, every municipality code belongs to its wave's vintage and maps across the reform."""

from __future__ import annotations

import pandas as pd
import pytest

from sdpipeline import reference
from sdpipeline.ingest import load_raw

from .conftest import SHIPPED_FILES, SHIPPED_RAW


@pytest.mark.parametrize(("instrument", "wave"), SHIPPED_FILES)
def test_file_matches_the_codebook(codebook, instrument, wave):
    spec = codebook.instruments[instrument]
    load = load_raw(spec, wave, codebook, SHIPPED_RAW / wave / spec.files[wave].name)
    assert load.unknown_columns == ()
    table = load.table
    vintage = codebook.waves[wave].municipality_vintage
    valid_codes = set(reference.municipalities(vintage, codebook)["iso_code"])
    for variable in spec.variables_in(wave):
        source = variable.sources[wave]
        assert source.variable in table.columns, source.variable
        values = table[source.variable]
        if variable.level == "municipality":
            assert set(values) <= valid_codes, set(values) - valid_codes
        elif variable.role == "id":
            assert values.is_unique
        elif source.scale is not None:
            codes = set(pd.to_numeric(values).dropna().astype(int))
            assert codes <= set(source.scale.labels), (
                variable.name,
                codes - set(source.scale.labels),
            )
        elif variable.level == "numeric":
            numbers = pd.to_numeric(values)
            valid = numbers[~numbers.isin(list(source.missing_codes))]
            low, high = variable.value_range
            assert valid.between(low, high).all(), variable.name


def test_every_2017_municipality_in_the_delivery_has_a_successor(codebook):
    pairs = reference.crosswalk()
    seen = set()
    for instrument in codebook.instruments.values():
        spec = instrument.files["ex_ante_2017"]
        load = load_raw(
            instrument, "ex_ante_2017", codebook, SHIPPED_RAW / "ex_ante_2017" / spec.name
        )
        column = instrument.variable("municipality").sources["ex_ante_2017"].variable
        seen |= set(load.table[column])
    assert seen <= set(pairs["iso_code_2017"])
    assert len(seen) > 100


def test_both_waves_of_every_instrument_are_shipped(codebook):
    for instrument in codebook.instruments.values():
        for wave, spec in instrument.files.items():
            assert (SHIPPED_RAW / wave / spec.name).is_file()
    formats = {spec.format for i in codebook.instruments.values() for spec in i.files.values()}
    encodings = {
        spec.encoding
        for i in codebook.instruments.values()
        for spec in i.files.values()
        if spec.format == "csv"
    }
    assert formats == {"sav", "xlsx", "csv"}
    assert {"cp1257", "utf-8-sig"} <= encodings
