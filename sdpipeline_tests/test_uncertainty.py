"""Honest uncertainty: each estimate's degrees of freedom are its own design's (wave and
domain), a change's are Welch–Satterthwaite's, a census's intervals say what they are about
(with a finite population correction where that is the finite population), constant answers
have no variance rather than rounding noise, and printed figures are never a negative zero."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import duckdb
import numpy as np
import openpyxl
import pandas as pd
import pyarrow as pa
import pyreadstat
import pytest
import yaml

from sdpipeline import report_export, report_tables, targets
from sdpipeline.codebook import CodebookError, default_codebook, load_codebook
from sdpipeline.estimation import Design, ratio_estimate, weighted_mean, welch_df, wilson_interval
from sdpipeline.ingest import sha256_of
from sdpipeline.settings import REPO_ROOT

from .conftest import SHIPPED_RAW, isolate, materialize
from .test_bad_input import FILE_IDENTITY


def test_a_domain_has_the_degrees_of_freedom_of_its_own_design():
    # stratum a: PSUs a1 a2 a3; stratum b: b1 b2. R: degf(subset(design, domain)) counts the
    # PSUs with a row in the domain minus the strata with such a PSU.
    strata = np.array(["a"] * 6 + ["b"] * 4)
    psu = np.array(["a1", "a1", "a2", "a2", "a3", "a3", "b1", "b1", "b2", "b2"])
    y = np.arange(10, dtype=float)
    w = np.ones(10)
    assert weighted_mean(y, w, strata, psu).df == 5 - 2
    in_a1_a2_b1 = np.array([1, 0, 1, 0, 0, 0, 1, 1, 0, 0], dtype=bool)
    assert weighted_mean(y, w, strata, psu, in_a1_a2_b1).df == 3 - 2
    in_a = np.arange(10) < 6
    assert weighted_mean(y, w, strata, psu, in_a).df == 3 - 1
    # a missing answer is outside the estimate like a row outside the domain
    y_missing = y.copy()
    y_missing[[4, 5]] = np.nan
    assert weighted_mean(y_missing, w, strata, psu, in_a).df == 2 - 1


def test_a_wave_is_not_given_the_other_waves_psus():
    # two waves of 20 PSUs in 2 strata each, stacked as the harmonised tables are
    rng = np.random.default_rng(1)
    wave = np.repeat(["ex_ante", "ex_post"], 200)
    stratum = np.array([f"{w}:{i % 2}" for i, w in enumerate(wave)])
    psu = np.array([f"{s}:{i // 20}" for i, s in enumerate(stratum)])
    y, w = rng.random(400), rng.uniform(1, 2, 400)
    design = Design.of(stratum, psu)
    assert design.df == 40 - 4
    first = ratio_estimate(y, np.ones(400), w, None, None, wave == "ex_ante", design=design)
    assert first.df == 20 - 2
    alone = weighted_mean(y[:200], w[:200], stratum[:200], psu[:200])
    assert first.se == pytest.approx(alone.se, rel=1e-12) and first.df == alone.df


def test_welch_satterthwaite_degrees_of_freedom():
    assert welch_df(1.0, 10, 1.0, 10) == pytest.approx(20)
    assert welch_df(4.0, 19, 0.0, 5) == pytest.approx(19)
    df = welch_df(2.0, 19, 0.5, 114)
    assert 19 < df < 19 + 114
    assert df == pytest.approx(2.5**2 / (2.0**2 / 19 + 0.5**2 / 114))
    assert math.isnan(welch_df(0.0, 10, 0.0, 10))


def test_the_finite_population_correction_is_r_surveys():
    # simple random sample of n from N: var = (1 − n/N) s² / n, as svydesign(fpc = ~N)
    rng = np.random.default_rng(5)
    n, population = 30, 40
    y = rng.normal(10, 3, n)
    strata, psu = np.zeros(n), np.arange(n)
    corrected = weighted_mean(y, np.ones(n), strata, psu, design=Design.of(strata, psu, [40] * n))
    assert corrected.se**2 == pytest.approx((1 - n / population) * y.var(ddof=1) / n)
    plain = weighted_mean(y, np.ones(n), strata, psu)
    assert plain.se**2 == pytest.approx(y.var(ddof=1) / n)
    complete = Design.of(strata, psu, [n] * n)
    assert weighted_mean(y, np.ones(n), strata, psu, design=complete).se == 0
    with pytest.raises(ValueError, match="more sampled PSUs"):
        Design.of(strata, psu, [n - 1] * n)


def test_constant_answers_have_no_variance_and_no_effective_n():
    w = np.array([0.1, 0.7, 1.3, 2.9, 0.3] * 4)
    e = weighted_mean(np.ones(20), w, np.zeros(20), np.arange(20))
    assert e.estimate == pytest.approx(1.0)
    assert e.se == 0.0 and math.isnan(e.effective_n)


def _codebook_copy(tmp_path, edit) -> None:
    folder = tmp_path / "codebook"
    shutil.copytree(REPO_ROOT / "data" / "codebook", folder)
    path = folder / "instruments" / "heads.yaml"
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(spec["design"])
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    return load_codebook(folder)


def test_a_census_is_declared_with_its_target(tmp_path):
    codebook = default_codebook()
    heads, leaders = codebook.instruments["heads"], codebook.instruments["leaders"]
    assert heads.census.target == leaders.census.target == "superpopulation"
    assert codebook.instruments["residents"].census is None
    assert "superpopulation" in targets.statement(heads).en
    assert "quota" in targets.statement(codebook.instruments["partners"]).en
    with pytest.raises(CodebookError, match="design: 'census' is a required property"):
        _codebook_copy(tmp_path / "a", lambda d: d.pop("census"))
    with pytest.raises(CodebookError, match=r"design\.census\.target: 'sample' is not one of"):
        _codebook_copy(tmp_path / "b", lambda d: d["census"].update(target="sample"))
    with pytest.raises(CodebookError, match=r"census\.units: 'family assistants' is not one of"):
        _codebook_copy(
            tmp_path / "c",
            lambda d: d["census"].update(units="family assistants", target="finite_population"),
        )


def test_a_finite_population_census_gets_its_population_per_row(tmp_path):
    from sdpipeline.reference import ReferenceData

    codebook = _codebook_copy(tmp_path, lambda d: d["census"].update(target="finite_population"))
    heads = codebook.instruments["heads"]
    ref = ReferenceData.from_files(codebook)
    assert targets.population_counts(heads, "ex_ante_2017", codebook, ref) == {None: 119}
    assert targets.population_counts(heads, "ex_post_2023", codebook, ref) == {None: 43}
    plain = default_codebook().instruments["heads"]
    assert targets.population_counts(plain, "ex_post_2023", codebook, ref) is None
    with duckdb.connect() as connection:
        row = connection.execute(
            f"SELECT {targets.population_sql(heads, 'ex_post_2023', codebook, ref)}, "
            f"{targets.population_sql(plain, 'ex_post_2023', codebook, ref)}"
        ).fetchone()
    assert row == (43.0, None)
    by_region = _codebook_copy(
        tmp_path / "regions",
        lambda d: d.update(strata="region") or d["census"].update(target="finite_population"),
    ).instruments["heads"]
    counts = targets.population_counts(by_region, "ex_post_2023", codebook, ref)
    assert sum(counts.values()) == 43 and counts[1] == 1  # Rīga is one municipality
    expression = targets.population_sql(by_region, "ex_post_2023", codebook, ref)
    with duckdb.connect() as connection:
        assert connection.execute(f"SELECT {expression} FROM (SELECT 1 AS region)").fetchone() == (
            1.0,
        )


@pytest.mark.parametrize("value", [-0.04, -0.0, -0.049999, 0.04, -1e-17])
def test_printed_figures_are_never_a_negative_zero(value):
    assert math.copysign(1.0, report_tables._round(value, 1)) == 1.0
    assert "-0.0" not in report_tables._ci(value, value)


def test_a_proportions_interval_is_wilsons_on_the_effective_sample_size():
    from statsmodels.stats.proportion import proportion_confint

    se = math.sqrt(0.3 * 0.7 / 50)
    low, high = wilson_interval(0.3, se, 50, 1e9)
    assert (low, high) == pytest.approx(proportion_confint(15, 50, method="wilson"), abs=1e-6)
    # a design effect of 2 is half the sample: as wide as Wilson's for 25 respondents
    wide = wilson_interval(0.3, se * math.sqrt(2), 50, 1e9)
    assert wide == pytest.approx(proportion_confint(7.5, 25, method="wilson"), abs=1e-6)
    # nobody said yes: the interval still has width, and stays within 0–1
    none_low, none_high = wilson_interval(0.0, 0.0, 20, 19)
    assert none_low == 0.0 and 0.1 < none_high < 0.25
    assert all(math.isnan(v) for v in wilson_interval(0.5, 0.1, 20, 0))


def _shuffle_delivery(raw: Path, seed: int) -> None:
    """Every delivered file with its data rows in another order, each in its own format:
    CSV lines as delivered, Excel rows under the header, SPSS cases with their labels and
    missing codes."""
    rng = np.random.default_rng(seed)
    for path in sorted(raw.glob("*/*")):
        if path.suffix == ".csv":
            header, *rows = [line for line in path.read_bytes().split(b"\r\n") if line]
            order = rng.permutation(len(rows))
            path.write_bytes(b"\r\n".join([header, *(rows[i] for i in order)]) + b"\r\n")
        elif path.suffix == ".xlsx":
            book = openpyxl.load_workbook(path)
            sheet = book.active
            rows = list(sheet.iter_rows(min_row=2, values_only=True))
            sheet.delete_rows(2, len(rows))
            for i in rng.permutation(len(rows)):
                sheet.append(rows[i])
            book.save(path)
        elif path.suffix == ".sav":
            frame, meta = pyreadstat.read_sav(str(path), user_missing=True)
            frame = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
            pyreadstat.write_sav(
                frame,
                str(path),
                column_labels=meta.column_labels,
                variable_value_labels=meta.variable_value_labels,
                missing_ranges=meta.missing_ranges,
                variable_measure=meta.variable_measure,
            )


def test_rows_in_another_order_give_byte_identical_report_exports(
    pipeline_run, tmp_path, monkeypatch
):
    first_folder, first_warehouse, _ = pipeline_run
    folder = isolate(tmp_path, monkeypatch)
    # the same pseudonym key: the datasets published with the report carry pseudonyms
    shutil.copytree(first_folder / "var" / "secrets", folder / "var" / "secrets")
    _shuffle_delivery(folder / "raw", seed=11)
    shipped = {p.name: sha256_of(p) for p in SHIPPED_RAW.glob("*/*") if p.suffix != ".json"}
    assert all(sha256_of(p) != shipped[p.name] for p in (folder / "raw").glob("*/*.[cxs]*"))
    warehouse = folder / "warehouse.duckdb"
    assert materialize(warehouse).success
    for table in ("indicators.estimates", "indicators.changes", "indicators.attribution"):
        with (
            duckdb.connect(str(first_warehouse), read_only=True) as a,
            duckdb.connect(str(warehouse), read_only=True) as b,
        ):
            pd.testing.assert_frame_equal(
                a.execute(f"SELECT * FROM {table}").df(),
                b.execute(f"SELECT * FROM {table}").df(),
                check_exact=True,
            )
    exports = first_folder / "var" / "reports" / "tables"
    # the manifest records the run (its id, time, the delivered files' checksums), not figures
    names = sorted(
        p.name
        for p in exports.iterdir()
        if p.is_file() and p.suffix != ".duckdb" and p.name != report_export.MANIFEST
    )
    assert len(names) >= 9
    # what names the files the report was built from differs, as the shuffled files do: the
    # HTML report's provenance block and the cell lineage's checksums
    for name in names:
        first, second = exports / name, folder / "var/reports/tables" / name
        if name == report_export.HTML_REPORT:
            first_page, second_page = (
                re.sub(r'<section id="provenance">.*?</section>', "", p.read_text("utf-8"))
                for p in (first, second)
            )
            assert first_page == second_page, name
        elif name == f"{report_export.LINEAGE}.csv":
            first_cells, second_cells = (
                pd.read_csv(p, sep=";", dtype=str, encoding="utf-8-sig").drop(
                    columns=list(FILE_IDENTITY), errors="ignore"
                )
                for p in (first, second)
            )
            pd.testing.assert_frame_equal(first_cells, second_cells, obj=name)
        else:
            assert sha256_of(first) == sha256_of(second), name
    # the datasets published apart from it hold the same rows in the same order; only where each
    # row was delivered (file checksum, row number) differs
    datasets = sorted((exports.parent / "datasets").glob("*.parquet"))
    assert datasets
    for path in datasets:
        before, after = (
            pd.read_parquet(p).filter(regex=r"^(?!_?source_)")
            for p in (path, folder / "var/reports/datasets" / path.name)
        )
        assert len(before.columns) > 10
        pd.testing.assert_frame_equal(before, after, check_exact=True, obj=path.name)
    # no figure prints as a negative zero; the provenance block holds identifiers, not figures
    # (a run id such as 5055c3bb-0a6d-… would match), so it is left out of this reading
    negative_zero = re.compile(r"(?<![\d.,])-0(?:[.,]0+)?(?![\d.,])")
    for name in names:
        if name.endswith((".csv", ".html")):
            text = re.sub(
                r'<section id="provenance">.*?</section>',
                "",
                (exports / name).read_text(encoding="utf-8-sig"),
                flags=re.S,
            )
            assert not negative_zero.search(text), (name, negative_zero.search(text))
    book = openpyxl.load_workbook(exports / report_export.WORKBOOK, read_only=True)
    for sheet in book.worksheets:
        for row in sheet.iter_rows(values_only=True):
            for value in row:
                if isinstance(value, float):
                    assert math.copysign(1.0, value) == 1.0 or value != 0, (sheet.title, row)
                elif isinstance(value, str):
                    assert not negative_zero.search(value), (sheet.title, value)
    book.close()


def test_the_report_says_what_each_instruments_intervals_are_about(pipeline_run, codebook):
    _, warehouse, _ = pipeline_run
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        frame = report_tables.instrument_notes(connection, codebook).set_index(
            report_tables.INSTRUMENT_COLUMN
        )
        tables = {
            name: connection.execute(f"SELECT * FROM harmonised.{name}").df()
            for name in codebook.instruments
        }
    assert len(frame) == len(codebook.instruments)
    residents = frame.loc[frame.index.str.endswith("/ Residents")].iloc[0]
    assert residents["Brīvības pakāpes / Degrees of freedom"] == "2017: 114; 2023: 114"
    heads = frame.loc[frame.index.str.endswith("/ Heads of social services")].iloc[0]
    assert "superpopulation" in heads["The intervals are about"]
    assert "superpopulācija" in heads["Intervāli attiecas uz"]
    # counted in the warehouse as the estimates' own design counts them, wave by wave
    for name, instrument in codebook.instruments.items():
        table = tables[name]
        design = Design.of_table(table)
        said = frame.loc[f"{instrument.label.lv} / {instrument.label.en}"]
        expected = [
            (spec.year, rows, design.domain_df(rows))
            for wave, spec in codebook.waves.items()
            if len(rows := np.flatnonzero((table["wave"] == wave).to_numpy()))
        ]
        assert said[report_tables.RESPONDENTS] == "; ".join(
            f"{y}: {len(r)}" for y, r, _ in expected
        )
        assert said[report_tables.DEGREES_OF_FREEDOM] == "; ".join(
            f"{y}: {d}" for y, _, d in expected
        )


def test_a_design_of_arrow_text_is_the_design_of_the_same_labels_as_python_strings():
    """The harmonised tables' design labels arrive as Arrow text, and a wave's rows are taken
    and factorised there; the codes, and so every sum over them, are those of the same rows'
    labels as Python strings."""
    generator = np.random.default_rng(7)
    strata = generator.choice(["LV00A", "LV00B", "Rīga", "Ķekava"], 500)
    psu = np.char.add(strata, generator.integers(0, 40, 500).astype(str)).astype(object)
    rows = generator.permutation(500)[:300]
    arrow = [pd.Series(x, dtype=pd.ArrowDtype(pa.string())).take(rows) for x in (strata, psu)]
    from_arrow, from_python = Design.of(*arrow), Design.of(strata[rows], psu[rows])
    for name in ("unit", "stratum_of_unit", "units_in_stratum", "factor_of_unit"):
        np.testing.assert_array_equal(getattr(from_arrow, name), getattr(from_python, name))
    assert from_arrow.df == from_python.df > 0
