"""The codebook is complete, self-consistent, and makes the waves differ as real waves do."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import duckdb
import pytest
import yaml

from sdpipeline import docs, settings
from sdpipeline.codebook import CodebookError, load_codebook
from sdpipeline.columns import harmonised_columns

WAVES = ("ex_ante_2017", "ex_post_2023")


def test_six_instruments_two_waves(codebook):
    assert list(codebook.instruments) == [
        "residents",
        "clients",
        "heads",
        "specialists",
        "partners",
        "leaders",
    ]
    assert tuple(codebook.waves) == WAVES
    for instrument in codebook.instruments.values():
        assert set(instrument.files) == set(WAVES)


def test_each_instrument_has_10_to_25_substantive_variables(codebook):
    for instrument in codebook.instruments.values():
        substantive = [v for v in instrument.variables if v.role == "substantive"]
        assert 10 <= len(substantive) <= 25, (instrument.name, len(substantive))


def test_every_variable_is_fully_described(codebook):
    for instrument in codebook.instruments.values():
        for variable in instrument.variables:
            assert variable.question.lv and variable.question.en
            assert variable.theme in codebook.themes
            if variable.is_categorical:
                assert variable.scale is not None
                for source in variable.sources.values():
                    assert source.scale is not None or source.bins is not None
            if variable.level == "numeric":
                assert variable.value_range is not None


def test_every_source_code_is_labelled_and_recoded_or_missing(codebook):
    for scale in codebook.source_scales.values():
        assert set(scale.labels) == set(scale.recode) | set(scale.missing), scale.name
        target = codebook.harmonised_scales[scale.harmonised]
        assert set(scale.recode.values()) <= set(target.codes), scale.name


def test_waves_differ_as_real_waves_do(codebook):
    both = [
        v
        for i in codebook.instruments.values()
        for v in i.variables
        if all(v.asked_in(w) for w in WAVES)
    ]
    renamed = [v for v in both if v.sources[WAVES[0]].variable != v.sources[WAVES[1]].variable]
    assert len(renamed) == len(both)
    rescaled = [
        v
        for v in both
        if v.sources[WAVES[0]].scale is not None
        and v.sources[WAVES[1]].scale is not None
        and len(v.sources[WAVES[0]].scale.recode) == 4
        and len(v.sources[WAVES[1]].scale.recode) == 5
    ]
    assert {v.name for v in rescaled} >= {"service_assessment", "satisfaction", "job_satisfaction"}
    added_option = [
        v
        for v in both
        if v.is_categorical
        and v.sources[WAVES[0]].scale is not None
        and set(v.sources[WAVES[1]].scale.recode.values())
        > set(v.sources[WAVES[0]].scale.recode.values())
    ]
    assert {"problem_solved", "info_source", "main_target_group"} <= {v.name for v in added_option}
    only_2023 = {
        v.theme
        for i in codebook.instruments.values()
        for v in i.variables
        if v.asked_in(WAVES[1]) and not v.asked_in(WAVES[0])
    }
    assert {"atr", "covid", "ukraine"} <= only_2023
    missing_codes = {
        w: {
            c for s in codebook.source_scales.values() if s.name.endswith(w[-4:]) for c in s.missing
        }
        for w in WAVES
    }
    assert missing_codes[WAVES[0]] == {8, 9} and missing_codes[WAVES[1]] == {98, 99}


def test_one_wave_items_say_so(codebook):
    for instrument in codebook.instruments.values():
        for variable in instrument.variables:
            if len(variable.sources) < len(WAVES):
                assert variable.comparability


def _broken_copy(tmp_path: Path, edit) -> Path:
    target = tmp_path / "codebook"
    shutil.copytree(settings.codebook_dir(), target)
    edit(target)
    return target


def test_a_code_neither_recoded_nor_missing_is_refused(tmp_path):
    def edit(folder: Path):
        path = folder / "scales.yaml"
        scales = yaml.safe_load(path.read_text(encoding="utf-8"))
        scales["source"]["yes_no_2017"]["labels"][7] = "Cits"
        path.write_text(yaml.safe_dump(scales, allow_unicode=True), encoding="utf-8")

    with pytest.raises(CodebookError, match=r"scales.yaml: source.yes_no_2017: codes \[7\]"):
        load_codebook(_broken_copy(tmp_path, edit))


def test_a_variable_with_the_wrong_scale_is_refused(tmp_path):
    def edit(folder: Path):
        path = folder / "instruments" / "clients.yaml"
        text = path.read_text(encoding="utf-8").replace(
            "{variable: k1, scale: satisf4_2017}", "{variable: k1, scale: agree4_2017}"
        )
        path.write_text(text, encoding="utf-8")

    with pytest.raises(CodebookError, match=re.escape("clients.yaml: satisfaction.ex_ante_2017")):
        load_codebook(_broken_copy(tmp_path, edit))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["harmonised"].update(sex=d["harmonised"]["weight"]), "are also codebook"),
        (lambda d: d["harmonised"]["weight"].pop("lv"), "harmonised.weight: 'lv' is a required"),
        (lambda d: d["provenance"].update(source_file={"lv": "x", "en": "x"}), "start with '_'"),
        (lambda d: d["missing_kind"].update(en="Why no number"), "as {name}"),
    ],
    ids=["a variable's name", "one language", "provenance without _", "no {name}"],
)
def test_a_derived_column_the_codebook_cannot_describe_is_refused(tmp_path, edit, message):
    def broken(folder: Path):
        path = folder / "derived.yaml"
        derived = yaml.safe_load(path.read_text(encoding="utf-8"))
        edit(derived)
        path.write_text(yaml.safe_dump(derived, allow_unicode=True), encoding="utf-8")

    with pytest.raises(CodebookError, match=re.escape(message)):
        load_codebook(_broken_copy(tmp_path, broken))


def test_every_harmonised_column_is_described_in_both_languages(pipeline_run, codebook):
    """The harmonised tables as built: not one column without a Latvian and an English
    description from the codebook."""
    _, warehouse, _ = pipeline_run
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        for instrument in codebook.instruments.values():
            columns = [
                name
                for (name,) in connection.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'harmonised' "
                    "AND table_name = ?",
                    [instrument.name],
                ).fetchall()
            ]
            described = harmonised_columns(instrument, codebook)
            assert set(columns) == set(described), instrument.name
            assert all(label.lv and label.en for label in described.values())


def test_docs_are_generated_from_the_codebook(codebook):
    assert docs.DOC_PATH.read_text(encoding="utf-8") == docs.render(codebook), (
        "docs/codebook.md is stale: run `sdpipeline docs`"
    )


def _text_edit(file: str, old: str, new: str):
    """A slip made in the file as a person edits it: text replaced, not a re-dumped YAML."""

    def edit(folder: Path):
        path = folder / file
        text = path.read_text(encoding="utf-8")
        assert old in text, old
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    return edit


SATISFACTION = (  # satisf4_2017's; assess4_2017 recodes the same way
    "Pilnībā neapmierināts, 8: Grūti pateikt, 9: Nav atbildes}\n"
    "    recode: {1: 1, 2: 1, 3: 3, 4: 3}\n    missing: {8:"
)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            _text_edit(
                "scales.yaml",
                "  trust4_2017:\n",
                "  satisf4_2017:\n    harmonised: satisfaction3\n    labels: {1: a, 2: b, 3: c, "
                "4: d, 8: e, 9: f}\n    recode: {1: 1, 2: 1, 3: 1, 4: 3}\n"
                "    missing: {8: hard_to_say, 9: no_answer}\n  trust4_2017:\n",
            ),
            "found the key 'satisf4_2017' twice (first on line 73)",
        ),
        (
            _text_edit(
                "scales.yaml",
                "recode: {1: 1, 2: 1, 3: 3, 4: 3}",
                "recode: {1: 1, 2: 1, 3: 3, 4: 3, 3: 1}",
            ),
            "found the key 3 twice",
        ),
        (
            _text_edit(
                "scales.yaml", SATISFACTION, SATISFACTION.replace("{8:", "{4: no_answer, 8:")
            ),
            "source.satisf4_2017: code 4 is both recoded (to 3) and missing (no_answer)",
        ),
        (
            _text_edit("scales.yaml", '[Jā, "Yes"], 0: [Nē, "No"]', "[Jā, true], 0: [Nē, false]"),
            "harmonised.yes_no.codes[1][1]: True is not of type 'string': YAML reads it so; put "
            "it in quotes",
        ),
        (
            _text_edit("study.yaml", "hard_to_say: {code: -1,", "hard_to_say: {code: 1,"),
            "the harmonised scale yes_no (scales.yaml) has code 1, which study.yaml gives the "
            "missing category hard_to_say",
        ),
    ],
    ids=[
        "a scale pasted twice",
        "a code twice",
        "recoded and missing",
        "a boolean label",
        "a missing code that is an answer",
    ],
)
def test_a_codebook_slip_is_refused_naming_where(tmp_path, edit, message):
    with pytest.raises(CodebookError, match=re.escape(message)):
        load_codebook(_broken_copy(tmp_path, edit))


def test_yes_and_no_are_labels_not_booleans(tmp_path):
    """YAML 1.1 reads an unquoted Yes as true: the labels would be published as 'True'."""
    edit = _text_edit("scales.yaml", '[Jā, "Yes"], 0: [Nē, "No"]', "[Jā, Yes], 0: [Nē, No]")
    scale = load_codebook(_broken_copy(tmp_path, edit)).harmonised_scales["yes_no"]
    assert (scale.codes[1].en, scale.codes[0].en) == ("Yes", "No")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            _text_edit(
                "instruments/clients.yaml",
                "{variable: k3_dienas, missing: {999: no_answer}}",
                "{variable: k3_dienas, mising: {999: no_answer}}",
            ),
            "clients.yaml: variables[wait_days].waves.ex_ante_2017: unknown key 'mising' (did "
            "you mean 'missing'?)",
        ),
        (
            _text_edit(
                "instruments/clients.yaml", "    range: [0, 365]\n", "    rnage: [0, 365]\n"
            ),
            "clients.yaml: variables[wait_days]: unknown key 'rnage' (did you mean 'range'?)",
        ),
        (
            _text_edit(
                "scales.yaml", "    labels: {1: Pilnībā uzticos", "    lables: {1: Pilnībā uzticos"
            ),
            "scales.yaml: source.trust4_2017: unknown key 'lables' (did you mean 'labels'?)",
        ),
        (
            _text_edit(
                "scales.yaml",
                "recode: {1: 1, 2: 2, 3: 3, 4: 4}",
                "recode: {1: 1, 2: 2, 3: 3, 4: e}",
            ),
            "scales.yaml: source.trust4_2017.recode[4]: 'e' is not of type 'integer'",
        ),
        (
            _text_edit("study.yaml", "    year: 2017\n", ""),
            "study.yaml: waves[ex_ante_2017]: 'year' is a required property",
        ),
        (
            _text_edit("study.yaml", "\ncomparisons:\n", "\ncomparison:\n"),
            "study.yaml: the top level: unknown key 'comparison' (did you mean 'comparisons'?)",
        ),
    ],
    ids=[
        "a misspelt optional key",
        "a misspelt range",
        "a misspelt scale key",
        "a letter for a code",
        "a wave without its year",
        "an unknown key at the top",
    ],
)
def test_a_codebook_file_of_the_wrong_shape_is_refused_naming_the_entry(tmp_path, edit, message):
    """The schemas in sdpipeline/codebook_schemas/: a key the loader would have ignored, or
    failed on with a bare KeyError or ValueError, is named with the entry it is in."""
    with pytest.raises(CodebookError, match=re.escape(message)):
        load_codebook(_broken_copy(tmp_path, edit))


def test_the_shipped_files_are_of_the_shape_their_schemas_describe():
    from sdpipeline import codebook_shape
    from sdpipeline.codebook import parse_yaml

    folder = settings.codebook_dir()
    files = [
        (folder / f"{name}.yaml", f"{name}.yaml")
        for name in ("study", "scales", "blocks", "derived")
    ]
    files += [(path, "instrument.yaml") for path in sorted((folder / "instruments").glob("*.yaml"))]
    files += [(settings.data_dir() / "indicators" / "catalogue.yaml", "catalogue.yaml")]
    for path, schema in files:
        assert codebook_shape.problem(parse_yaml(path.read_text(encoding="utf-8")), schema) is None


def test_every_design_the_schema_allows_is_named_in_the_report():
    """The design types are the instrument schema's; their names in the report are labels
    kept beside the report's other text (targets.DESIGNS): one for each type, no more."""
    from sdpipeline import codebook_shape, targets

    types = codebook_shape.enum("instrument.yaml", "$defs/design/properties/type")
    assert set(targets.DESIGNS) == set(types)
