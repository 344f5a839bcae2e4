"""Any number of waves, and the comparisons between them, declared as data.

The end-to-end case follows the README's "Adding a wave" recipe on a copy of the repository's
data: a follow-up wave and a one-wave instrument added with YAML and generated files only, the
whole pipeline run for real by the command line from the copy, and the results checked against
the two-wave run and against the generator's truth. The other tests show that an incomplete
wave is refused before any step runs, naming the file and the entry to add.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml

from sdpipeline import attribution, coverage, population, settings
from sdpipeline.codebook import CodebookError, _comparisons, load_codebook
from sdpipeline.generator.model import ModelError, check_model, load_model
from sdpipeline.indicators import load_catalogue
from sdpipeline.ingest import sha256_of
from sdpipeline.reference import ReferenceDataError, check_waves

from . import attacker
from . import third_wave as tw
from .conftest import HUNG_SECONDS, SHIPPED_RAW

CLI = [sys.executable, "-m", "sdpipeline"]
PROJECT = "ex_ante_2017_ex_post_2023"
TWO_WAVES = ("ex_ante_2017", "ex_post_2023")


def _true_value(indicator, truth_wave, codebook):
    """The generator's true value of an indicator in one wave (``coverage.true_value``)."""
    return coverage.true_value(indicator, truth_wave[indicator.instrument]["variables"], codebook)


def _env(folder: Path) -> dict[str, str]:
    data = folder / "data"
    return {
        **os.environ,
        "SDPIPELINE_DATA_DIR": str(data),
        "SDPIPELINE_CODEBOOK_DIR": str(data / "codebook"),
        "SDPIPELINE_REFERENCE_DIR": str(data / "reference"),
        "SDPIPELINE_RAW_DIR": str(data / "raw"),
        "SDPIPELINE_VAR_DIR": str(folder / "var"),
        "DAGSTER_HOME": str(folder / "var" / "dagster_home"),
    }


def _cli(folder: Path, *args: str, timeout: int = HUNG_SECONDS) -> subprocess.CompletedProcess:
    return subprocess.run(
        CLI + list(args),
        env=_env(folder),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=settings.REPO_ROOT,
    )


def _edit(path: Path, change) -> None:
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(content)
    path.write_text(yaml.safe_dump(content, allow_unicode=True, sort_keys=False), encoding="utf-8")


@pytest.fixture
def follow_up(tmp_path: Path) -> Path:
    """A copy of the data with the follow-up wave and the new instrument declared (YAML only,
    population not yet derived, nothing generated)."""
    data = tw.copy_data(tmp_path)
    tw.add_third_wave(data)
    return data


# --- an incomplete wave is refused, naming the file and the entry ----------------------------


def _drop_wave(variables: list[dict], names: set[str]) -> None:
    for variable in variables:
        if variable.get("name") in names:
            variable["waves"].pop(tw.WAVE)


INCOMPLETE = {
    "block without the wave": (
        "blocks.yaml",
        lambda c: _drop_wave(c["blocks"]["respondent_id"], {"respondent_id"}),
        r"blocks.yaml: block respondent_id: respondent_id has no source in follow_up_2026, but "
        r"residents has a file in that wave \(iedzivotaji_2026.csv\)",
    ),
    "design variable": (
        "instruments/residents.yaml",
        lambda c: _drop_wave(c["variables"], {"sampling_point"}),
        r"residents.yaml: sampling_point has no source in follow_up_2026.*its role is design",
    ),
    "weighting margin": (
        "blocks.yaml",
        lambda c: _drop_wave(c["blocks"]["person"], {"sex"}),
        r"blocks.yaml: block person: sex has no source in follow_up_2026.*weighting margin",
    ),
    "half a rule": (
        "instruments/specialists.yaml",
        lambda c: _drop_wave(c["variables"], {"time_other_pct"}),
        r"specialists.yaml: rule time_use_sums_to_100 needs .* time_other_pct have no source "
        r"in follow_up_2026",
    ),
    "nothing substantive": (
        "instruments/heads.yaml",
        lambda c: _drop_wave(c["variables"], {v["name"] for v in c["variables"] if "name" in v}),
        r"heads.yaml: heads has a file in follow_up_2026 \(dienestu_vaditaji_2026.csv\) but no "
        r"substantive variable",
    ),
    "a ratio's denominator": (
        "instruments/heads.yaml",
        lambda c: _drop_wave(c["variables"], {"staff_specialists_fte", "staff_total"}),
        None,  # the codebook allows it; the catalogue's ratio H03 does not (below)
    ),
}


@pytest.mark.parametrize("case", list(INCOMPLETE))
def test_an_incomplete_wave_is_refused_naming_file_and_entry(follow_up, case):
    file, change, message = INCOMPLETE[case]
    _edit(follow_up / "codebook" / file, change)
    if message is not None:
        with pytest.raises(CodebookError, match=message):
            load_codebook(follow_up / "codebook")
        return
    codebook = load_codebook(follow_up / "codebook")
    with pytest.raises(
        ValueError,
        match=r"H03: staff_left_12m is asked in follow_up_2026 but its denominator "
        r"staff_specialists_fte is not",
    ):
        load_catalogue(codebook, follow_up / "indicators" / "catalogue.yaml")


def test_an_item_the_wave_did_not_ask_stays_legitimate(follow_up):
    _edit(
        follow_up / "codebook" / "instruments" / "heads.yaml",
        lambda c: _drop_wave(c["variables"], {"ukrainian_clients_pct"}),
    )
    heads = load_codebook(follow_up / "codebook").instruments["heads"]
    assert not heads.variable("ukrainian_clients_pct").asked_in(tw.WAVE)
    assert heads.variable("vacancies").asked_in(tw.WAVE)


def test_a_wave_without_files_is_refused(tmp_path):
    data = tw.copy_data(tmp_path)
    tw.add_study_entries(data)  # the wave, but no instrument file names it
    _edit(data / "codebook" / "study.yaml", lambda c: c["instruments"].remove(tw.INSTRUMENT))
    with pytest.raises(CodebookError, match=r"study.yaml: wave follow_up_2026 has no file"):
        load_codebook(data / "codebook")


COMPARISONS = {
    "unknown wave": (
        {"after": "ex_post_2032"},
        "comparison c: after names unknown wave 'ex_post_2032'",
    ),
    "before is after": ({"after": "ex_ante_2017"}, "before and after are the same wave"),
    "later before earlier": (
        {"before": "ex_post_2023", "after": "ex_ante_2017"},
        r"before \(ex_post_2023, 2023\) must be the earlier wave",
    ),
    "unknown role": ({"role": "effect"}, r"role: 'effect' is not one of \['project_effect'"),
}


@pytest.mark.parametrize("case", list(COMPARISONS))
def test_a_wrong_comparison_is_refused(tmp_path, case):
    data = tw.copy_data(tmp_path)
    fields, message = COMPARISONS[case]
    comparison = {
        "id": "c",
        "before": "ex_ante_2017",
        "after": "ex_post_2023",
        "role": "project_effect",
        "label": {"lv": "c", "en": "c"},
        **fields,
    }
    _edit(data / "codebook" / "study.yaml", lambda c: c.update(comparisons=[comparison]))
    with pytest.raises(CodebookError, match=message):
        load_codebook(data / "codebook")


def test_comparisons_must_agree_with_each_other(follow_up):
    path = follow_up / "codebook" / "study.yaml"
    study = yaml.safe_load(path.read_text(encoding="utf-8"))
    first = study["comparisons"][0]
    for changed, message in (
        ({}, "comparison ex_ante_2017_ex_post_2023: the id is used twice"),
        ({"id": "again"}, "compares the same waves as comparison ex_ante_2017_ex_post_2023"),
        (
            {"id": "shifted", "before": "ex_post_2023", "after": "follow_up_2026"},
            "role project_effect puts ex_post_2023 before the project, but comparison "
            "ex_ante_2017_ex_post_2023 puts it after the project",
        ),
    ):
        _edit(path, lambda c, extra=changed: c.update(comparisons=[first, {**first, **extra}]))
        with pytest.raises(CodebookError, match=re.escape(message)):
            load_codebook(follow_up / "codebook")


def test_a_wave_before_the_project_cannot_follow_one_after_it(codebook):
    """Four waves, each pair consistent on its own, together out of time order."""
    waves = dict(codebook.waves)
    for wave_id, year in (("w2019", 2019), ("w2025", 2025)):
        waves[wave_id] = dataclasses.replace(waves["ex_post_2023"], id=wave_id, year=year)
    label = {"lv": "x", "en": "x"}
    specs = [
        {"id": "a", "before": "ex_ante_2017", "after": "w2019", "role": "persistence"},
        {"id": "b", "before": "ex_post_2023", "after": "w2025", "role": "project_effect"},
    ]
    with pytest.raises(
        CodebookError,
        match=re.escape("comparisons put ex_post_2023 (2023) before the project and ex_ante_2017"),
    ):
        _comparisons([{**s, "label": label} for s in specs], waves)


def test_waves_must_be_listed_in_year_order(follow_up):
    _edit(follow_up / "codebook" / "study.yaml", lambda c: c["waves"].reverse())
    with pytest.raises(CodebookError, match="waves must be listed in the order of their years"):
        load_codebook(follow_up / "codebook")


# --- reference data and the generator's model for any wave ------------------------------------


def test_a_wave_without_its_population_stops_before_any_step(follow_up):
    """Not at run time ("raking did not converge"), but when the definitions load, when the
    docs are checked and before anything is generated: naming the wave, year and file."""
    codebook = load_codebook(follow_up / "codebook")
    expected = (
        "study.yaml: wave follow_up_2026 needs the population of 2026 (population_year) on the "
        "2021 municipalities"
    )
    with pytest.raises(ReferenceDataError, match=re.escape(expected)):
        check_waves(codebook, follow_up / "reference")
    folder = follow_up.parent
    docs = _cli(folder, "docs", "--check", "--out", str(folder / "codebook.md"))
    assert docs.returncode == 2 and expected in docs.stderr
    assert "population_assumptions.yaml (national_total, adult_share" in docs.stderr
    assert "Traceback" not in docs.stderr
    dagster = Path(sys.executable).with_name("dagster")
    (folder / "var" / "dagster_home").mkdir(parents=True)
    validate = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        env=_env(folder),
        capture_output=True,
        text=True,
        timeout=HUNG_SECONDS,
        cwd=settings.REPO_ROOT,
    )
    assert validate.returncode != 0 and expected in validate.stdout + validate.stderr
    run = _cli(folder, "run")
    assert run.returncode == 2 and expected in run.stderr and "Traceback" not in run.stderr
    assert not (folder / "var" / "warehouse.duckdb").exists()  # no step ran


@pytest.mark.parametrize(
    ("missing", "remedy"),
    [
        ("population_totals.csv", "`sdpipeline reference` derives it"),
        ("population_adults.csv", "`sdpipeline reference` derives it"),
        ("municipalities_2017.csv", "it is one of the researched reference files"),
    ],
)
def test_a_missing_reference_file_is_named_before_any_step(tmp_path, missing, remedy):
    """The files the waves' check reads while the definitions load: one gone is named with
    what restores it, not a traceback from pandas' CSV reader, and no step runs."""
    data = tw.copy_data(tmp_path)
    (data / "reference" / missing).unlink()
    for command in ("status", "run"):
        done = _cli(tmp_path, command)
        assert done.returncode == 2, done.stderr
        assert f"{data / 'reference' / missing} is missing: {remedy}" in done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "var" / "warehouse.duckdb").exists()


def test_a_missing_crosswalk_fails_the_run_naming_it(tmp_path):
    """The crosswalk is read only by its table: status shows it missing and what waits for it,
    the run fails naming it with what restores it, and its table is not made."""
    data = tw.copy_data(tmp_path)
    path = data / "reference" / "crosswalk_2017_2021.csv"
    path.unlink()
    status = _cli(tmp_path, "status")
    assert status.returncode == 1
    assert f"reference_files/crosswalk_2017_2021      MISSING  the file {path} is not there" in (
        status.stdout
    )
    run = _cli(tmp_path, "run")
    assert run.returncode == 1 and "FAILED" in run.stdout
    assert (
        f"1 declared file(s) not delivered: reference_files/crosswalk_2017_2021: {path} is not "
        "there (it is one of the researched reference files (SOURCES.md): restore it from git)"
    ) in run.stdout
    with duckdb.connect(str(tmp_path / "var" / "warehouse.duckdb"), read_only=True) as con:
        made = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert "municipality_crosswalk" not in made


def test_population_is_derived_for_any_wave_with_its_method(follow_up):
    codebook = load_codebook(follow_up / "codebook")
    totals, adults = population.derive(follow_up / "reference", codebook)
    shipped = pd.read_csv(settings.reference_dir() / "population_totals.csv")
    two_waves = totals[totals["year"] != 2026].reset_index(drop=True)
    pd.testing.assert_frame_equal(two_waves, shipped, check_dtype=False)
    new = totals[totals["year"] == 2026]
    assert len(new) == 43 and set(new["vintage"]) == {2021}
    assert new["population"].sum() == 1843000  # the declared national total
    assert set(new["method"]) == {
        "published_2023_scaled",
        "published_2022_scaled",
        "carried_from_2023",
    }
    assert len(adults[adults["year"] == 2026]) == 43 * 8

    _edit(
        follow_up / "reference" / "population_assumptions.yaml",
        lambda c: c["adult_structure"].pop(2026),
    )
    with pytest.raises(
        population.PopulationError,
        match=r"population_assumptions.yaml: adult_structure has no 2026, the population year "
        r"of follow_up_2026",
    ):
        population.derive(follow_up / "reference", codebook)


def test_a_model_without_the_wave_is_refused(follow_up):
    codebook = load_codebook(follow_up / "codebook")
    path = follow_up / "generator" / "model.yaml"
    check_model(load_model(path), codebook)  # wave_defaults: the follow-up repeats ex-post
    _edit(path, lambda c: c.pop("wave_defaults"))
    with pytest.raises(ModelError) as refused:
        check_model(load_model(path), codebook)
    assert "respondent_ids has no follow_up_2026 entry" in str(refused.value)
    assert "instruments.residents.modes has no follow_up_2026 entry" in str(refused.value)
    assert "variables.residents.aware_service has no follow_up_2026 entry" in str(refused.value)


# --- three waves, end to end ------------------------------------------------------------------


@pytest.fixture(scope="module")
def three_waves(tmp_path_factory) -> Path:
    """The README's recipe on a copy of the data, then the whole pipeline by the command line:
    `sdpipeline reference`, `docs`, `generate` and `run`, every setting pointing at the copy."""
    folder = tmp_path_factory.mktemp("three_waves")
    data = tw.copy_data(folder)
    tw.add_third_wave(data)
    steps = [
        ("reference",),
        ("docs", "--out", str(folder / "codebook.md")),
        ("docs", "--check", "--out", str(folder / "codebook.md")),
        ("generate", "--out", str(data / "raw")),
        ("run",),
    ]
    for step in steps:
        done = _cli(folder, *step)
        assert done.returncode == 0, (step, done.stdout[-3000:], done.stderr[-3000:])
    return folder


def _read(warehouse: Path, table: str) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return connection.execute(f"SELECT * FROM {table}").df()


def test_every_layer_holds_all_three_waves(three_waves):
    warehouse = three_waves / "var" / "warehouse.duckdb"
    codebook = load_codebook(three_waves / "data" / "codebook")
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        tables = {
            f"{schema}.{name}"
            for schema, name in connection.execute(
                "SELECT schema_name, table_name FROM duckdb_tables()"
            ).fetchall()
        }
        for instrument in codebook.instruments.values():
            for wave in instrument.files:
                year = codebook.waves[wave].year
                assert {f"raw.{instrument.name}_{year}", f"validated.{instrument.name}_{year}"} <= (
                    tables
                )
            waves = {
                w
                for (w,) in connection.execute(
                    f"SELECT DISTINCT wave FROM harmonised.{instrument.name}"
                ).fetchall()
            }
            assert waves == set(instrument.files), instrument.name
    estimates = _read(warehouse, "indicators.estimates")
    assert set(estimates["wave"]) == set(codebook.waves)
    changes = _read(warehouse, "indicators.changes")
    assert set(changes["comparison"]) == set(codebook.comparisons)
    headline = _read(warehouse, "report.headline_indicators")
    assert {"2017", "2023", "2026"} <= set(headline.columns)
    for tag in ("2017→2023", "2023→2026", "2017→2026"):
        assert f"Izmaiņas / Change {tag}" in headline.columns
    # the one-wave instrument: its indicators have a 2026 figure and no change
    assistants = headline.set_index("Kods / Code").loc[["A01", "A02"]]
    assert assistants["2026"].notna().all() and assistants[["2017", "2023"]].isna().all().all()
    assert (assistants["Verdict 2017→2023"] == "not asked in 2017 and 2023").all()
    assert (assistants["Vērtējums 2023→2026"] == "nav jautāts 2023. gadā").all()


def test_the_first_two_waves_are_unchanged(three_waves, pipeline_run):
    """The same 2017 and 2023 files (byte for byte), figures and report cells as the two-wave
    run, wherever the comparison is the same."""
    for wave in TWO_WAVES:
        for path in (SHIPPED_RAW / wave).iterdir():
            assert sha256_of(three_waves / "data" / "raw" / wave / path.name) == sha256_of(path)
    _, two, _ = pipeline_run
    three = three_waves / "var" / "warehouse.duckdb"

    def same(table: str, where: str, keys: list[str]) -> None:
        old = _read(two, f"{table} WHERE {where}").sort_values(keys, ignore_index=True)
        new = _read(three, f"{table} WHERE {where}").sort_values(keys, ignore_index=True)
        assert len(old) > 0
        pd.testing.assert_frame_equal(old, new[old.columns], check_dtype=False)

    waves = "wave IN ('ex_ante_2017', 'ex_post_2023')"
    same("indicators.estimates", waves, ["indicator_id", "wave", "breakdown", "domain"])
    same("indicators.changes", f"comparison = '{PROJECT}'", ["indicator_id", "breakdown", "domain"])
    same("indicators.decomposition", f"comparison = '{PROJECT}'", ["indicator_id"])
    same(
        "indicators.attribution",
        f"comparison = '{PROJECT}' OR wave = 'ex_post_2023'",
        ["analysis", "indicator_id", "term"],
    )
    for name in (
        "headline_indicators",
        "indicators_by_region",
        "services_offered_vs_wanted",
        "specialists_time_use",
    ):
        old, new = _read(two, f"report.{name}"), _read(three, f"report.{name}")
        new = new.iloc[: len(old)]  # the new instrument's indicators come last
        notes = "Piezīmes / Notes"
        if notes in old:  # the three-wave notes add the 2026 flags after the others
            new = new.assign(**{notes: new[notes].str.replace(r"(; )?2026: [^;]*", "", regex=True)})
        pd.testing.assert_frame_equal(old, new[old.columns], check_dtype=False, obj=name)
    for name, key in (("change_decomposition", "Kods / Code"), ("barriers_ranked", "Barrier")):
        old = _read(two, f"report.{name}")
        new = _read(three, f"report.{name}")
        if name == "change_decomposition":
            new = new[new["Vilnis vai salīdzinājums / Wave or comparison"] == "2017→2023"]
        columns = [c for c in old.columns if c != "Vieta / Rank"]  # ranked by the newest wave
        pd.testing.assert_frame_equal(
            old[columns].sort_values(key, ignore_index=True),
            new[columns].sort_values(key, ignore_index=True),
            check_dtype=False,
            obj=name,
        )
    old = _read(two, "report.project_participation")
    new = _read(three, "report.project_participation")
    new = new[new["Vilnis vai salīdzinājums / Wave or comparison"].isin(["2023", "2017→2023"])]
    pd.testing.assert_frame_equal(old, new.reset_index(drop=True), check_dtype=False)


def _truth(three_waves: Path) -> dict:
    path = three_waves / "data" / "raw" / "ground_truth.json"
    return json.loads(path.read_text(encoding="utf-8"))["waves"]


def test_the_follow_up_comparison_has_cis_and_verdicts(three_waves):
    """2023 → 2026 in every table, with CIs that cover the planted true changes and verdicts
    that find the planted easing of the staff shortage."""
    warehouse = three_waves / "var" / "warehouse.duckdb"
    codebook = load_codebook(three_waves / "data" / "codebook")
    catalogue = load_catalogue(codebook, three_waves / "data" / "indicators" / "catalogue.yaml")
    changes = _read(warehouse, "indicators.changes")
    national = changes[changes["breakdown"] == "national"].set_index(["comparison", "indicator_id"])
    truth = _truth(three_waves)
    for comparison in codebook.comparisons.values():
        hits = []
        for indicator in catalogue.indicators:
            before = truth[comparison.before].get(indicator.instrument)
            after = truth[comparison.after].get(indicator.instrument)
            if (
                before is None
                or after is None
                or (comparison.id, indicator.id) not in national.index
            ):
                continue
            a = _true_value(indicator, truth[comparison.before], codebook)
            b = _true_value(indicator, truth[comparison.after], codebook)
            if a is None or b is None:
                continue
            row = national.loc[(comparison.id, indicator.id)]
            if not row["suppressed"]:  # a hidden change publishes no interval to cover
                hits.append(row["ci_low"] <= b - a <= row["ci_high"])
        assert len(hits) >= 25 and np.mean(hits) >= 0.9, (comparison.id, np.mean(hits))
    follow_up = national.loc[tw.PERSISTENCE]
    shown = follow_up[~follow_up["suppressed"].astype(bool)]
    assert len(shown) >= 25
    assert shown["ci_low"].notna().all() and shown["ci_high"].notna().all()
    # the heads' national share of H04 is hidden in 2023 (Latgale's 8 heads would come back
    # from it by whole numbers), and with it its change; the planted easing shows where the
    # change is published
    h04 = follow_up.loc["H04"]
    if h04["suppressed"]:
        assert h04["verdict_en"] == "suppressed" and "2023: secondary" in h04["suppression"]
    else:
        assert h04["verdict_en"] == "improved"  # fewer services short of staff
    assert follow_up.loc["P03", "verdict_en"] == "improved"  # partners name the shortage less
    headline = _read(warehouse, "report.headline_indicators").set_index("Kods / Code")
    assert headline.loc["P03", "Verdict 2023→2026"] == "improved"
    assert headline["95% TI / 95% CI 2023→2026"].str.match(r"\[-?\d").sum() == len(shown)
    page = (three_waves / "var" / "reports" / "tables" / "report.html").read_text(encoding="utf-8")
    assert "Pēcpārbaudes pētījums (2026)</title>" in page
    for tag in ("2017→2023", "2023→2026", "2017→2026"):  # a change section per comparison
        assert f"<h2>Izmaiņas {tag} / Change {tag}</h2>" in page
    assert "2023→2026: Ex-post 2023 → pēcpārbaude 2026 (noturība pēc projekta)" in page


def test_attribution_follows_the_waves_and_roles(three_waves):
    warehouse = three_waves / "var" / "warehouse.duckdb"
    attribution = _read(warehouse, "indicators.attribution")
    participants = attribution[attribution["analysis"] == "participants_vs_others"]
    assert set(participants["wave"]) == {"ex_post_2023", tw.WAVE}
    for wave, year in (("ex_post_2023", 2023), (tw.WAVE, 2026)):
        rows = participants[participants["wave"] == wave].set_index("indicator_id")
        assert (rows["term"] == f"participants − others ({year})").all()
        assert rows["caveat"].str.startswith(f"Association in {year}").all()
        for indicator in ("S04", "S05", "S06", "S07"):  # the effect persists in 2026
            assert rows.loc[indicator, "ci_low"] > 0, (wave, indicator)
    did = attribution[attribution["analysis"] == "difference_in_differences"]
    assert set(did["comparison"]) == {PROJECT, tw.PERSISTENCE, tw.LONG_RUN}
    most = did[did["term"] == "post × most activities"].set_index(["comparison", "indicator_id"])
    persistence = most.loc[tw.PERSISTENCE]
    # the gap between deep and no participation holds after the project: no change
    assert ((persistence["ci_low"] < 0) & (persistence["ci_high"] > 0)).all()
    assert persistence["caveat"].str.startswith("Change after the project in the gap").all()
    # 2023 is the persistence comparison's earlier wave: the same municipalities and answers
    # as the later wave of the project's comparison
    assert (persistence["n_a"] == most.loc[PROJECT, "n_b"]).all()
    report = _read(warehouse, "report.project_participation")
    labels = report["Vilnis vai salīdzinājums / Wave or comparison"]
    assert set(labels) == {"2023", "2026", "2017→2023", "2023→2026", "2017→2026"}


def test_the_third_waves_truth_is_recovered(three_waves):
    warehouse = three_waves / "var" / "warehouse.duckdb"
    codebook = load_codebook(three_waves / "data" / "codebook")
    catalogue = load_catalogue(codebook, three_waves / "data" / "indicators" / "catalogue.yaml")
    estimates = _read(warehouse, "indicators.estimates")
    national = estimates[estimates["breakdown"] == "national"].set_index(["indicator_id", "wave"])
    truth = _truth(three_waves)[tw.WAVE]
    hits = []
    for indicator in catalogue.indicators:
        true = _true_value(indicator, truth, codebook)
        if true is None or (indicator.id, tw.WAVE) not in national.index:
            continue
        row = national.loc[(indicator.id, tw.WAVE)]
        if not row["suppressed"]:  # a hidden figure publishes no interval
            hits.append(row["ci_low"] <= true <= row["ci_high"])
    assert len(hits) >= 25
    assert np.mean(hits) >= 0.9, np.mean(hits)


def test_the_shipped_study_declares_its_comparison():
    codebook = load_codebook()
    assert list(codebook.comparisons) == [PROJECT]
    assert codebook.after_project("ex_ante_2017") is False
    assert codebook.after_project("ex_post_2023") is True


def test_an_outcome_a_wave_did_not_ask_is_said_so_in_the_attribution(tmp_path, pipeline_run):
    """A wave whose questionnaire dropped an outcome (here methodology use, S07, in 2023): its
    rows in the attribution are blank because the question was not asked, and say so. They
    said "the design matrix is singular" (the difference-in-differences) or gave no reason
    beside an empty figure (participants against the rest); the other outcomes keep their
    estimates."""
    data = tw.copy_data(tmp_path)

    def not_asked_in_2023(content: dict) -> None:
        (variable,) = [v for v in content["variables"] if v.get("name") == "methodology_use"]
        variable["waves"].pop("ex_post_2023")

    _edit(data / "codebook" / "instruments" / "specialists.yaml", not_asked_in_2023)
    codebook = load_codebook(data / "codebook")
    catalogue = load_catalogue(codebook, data / "indicators" / "catalogue.yaml")
    _, warehouse, _ = pipeline_run
    tables, ref = attacker.harmonised(warehouse, codebook)
    participants = attribution.participation_effects(
        tables["specialists"], catalogue, codebook, ref
    ).set_index("indicator_id")
    did = attribution.difference_in_differences(tables, catalogue, codebook, ref)
    did = did.set_index("indicator_id")
    for rows in (participants, did):
        assert (
            rows.loc[["S07"], "caveat"] == "Not estimable: the question was not asked in 2023."
        ).all()
        assert rows.loc[["S07"], "estimate"].isna().all()
        assert rows.loc[["S04", "S06"], "estimate"].notna().all()
        assert not rows["caveat"].str.contains("singular").any()


def test_a_catalogue_slip_is_one_line_before_any_step(tmp_path):
    """The indicator catalogue is part of the data contract: a slip in it is named on one
    line, by every command that loads it (docs --check included), with no traceback."""
    data = tw.copy_data(tmp_path)
    path = data / "indicators" / "catalogue.yaml"
    text = path.read_text(encoding="utf-8")
    old = (
        "{id: C01, instrument: clients, variable: satisfaction, statistic: proportion, success: [1]"
    )
    assert old in text
    path.write_text(text.replace(old, old.replace("success: [1]", "success: [4]")), "utf-8")
    expected = "catalogue.yaml: C01: success codes"
    for command in (("status",), ("run",), ("docs", "--check", "--out", str(tmp_path / "cb.md"))):
        done = _cli(tmp_path, *command)
        assert done.returncode == 2, (command, done.stderr[-2000:])
        assert expected in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "var" / "warehouse.duckdb").exists()


def test_a_study_without_comparisons_publishes_its_levels(tmp_path):
    """`comparisons: []` is a study of waves compared with nothing (yet): every level is
    estimated and published; the tables of change have their columns and no rows."""
    data = tw.copy_data(tmp_path)
    _edit(data / "codebook" / "study.yaml", lambda study: study.update(comparisons=[]))
    run = _cli(tmp_path, "run")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    tables = tmp_path / "var" / "reports" / "tables"
    headline = pd.read_csv(tables / "headline_indicators.csv", sep=";", encoding="utf-8-sig")
    assert {"2017", "2023"} <= set(headline.columns) and len(headline) == 36
    assert not any("→" in column for column in headline.columns)
    decomposition = pd.read_csv(tables / "change_decomposition.csv", sep=";", encoding="utf-8-sig")
    assert decomposition.empty and "Izmaiņas / Change" in decomposition.columns
