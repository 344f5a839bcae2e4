"""Indicators: the catalogue is complete, the estimators match independent computations, the
estimates recover the generator's truth and its planted effects, disclosure control holds in
every output, and the report is published whole or not at all."""

from __future__ import annotations

import json
import weakref

import duckdb
import numpy as np
import openpyxl
import pandas as pd
import pytest

from sdpipeline import coverage, effectiveness, report_export, report_tables
from sdpipeline.attribution import cluster_robust_wls, difference_in_differences
from sdpipeline.codebook import default_codebook
from sdpipeline.defs.indicators.assets import HarmonisedTables
from sdpipeline.defs.resources import Warehouse
from sdpipeline.estimation import ratio_estimate, weighted_mean
from sdpipeline.indicators import CatalogueError, default_catalogue, load_catalogue, scored
from sdpipeline.reference import ReferenceData
from sdpipeline.validation.data_docs import external_references

from . import attacker
from .conftest import SHIPPED_RAW

PROJECT = "ex_ante_2017_ex_post_2023"  # the shipped study's one comparison


def _tables(warehouse, *names):
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return [connection.execute(f"SELECT * FROM {n}").df() for n in names]


def test_catalogue_covers_every_instrument_and_theme(codebook):
    catalogue = default_catalogue()
    assert len(catalogue.indicators) >= 25
    assert {i.instrument for i in catalogue.indicators} == set(codebook.instruments)
    themes = {i.theme for i in catalogue.indicators}
    assert {
        "awareness",
        "opinion",
        "quality_of_life",
        "reputation",
        "satisfaction",
        "problem_solving",
        "time_use",
        "caseload",
        "specialisation",
        "project_support",
        "job_satisfaction",
        "staffing",
        "services",
        "service_role",
        "priorities",
        "barriers",
    } <= themes


def test_catalogue_is_checked_against_the_codebook(codebook, tmp_path):
    path = tmp_path / "catalogue.yaml"
    text = (SHIPPED_RAW.parent / "indicators" / "catalogue.yaml").read_text(encoding="utf-8")
    path.write_text(
        text.replace("variable: aware_service", "variable: awareness"), encoding="utf-8"
    )
    with pytest.raises(CatalogueError, match="R01: residents has no variable 'awareness'"):
        load_catalogue(codebook, path)


def test_analyses_read_only_their_columns_and_never_free_text(pipeline_run, codebook):
    """The analyses read the design columns and what the catalogue names, not whole tables:
    at a register's size the rest is most of the memory. Free text never reaches them."""
    _, warehouse, _ = pipeline_run
    catalogue = default_catalogue()
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        stored = {
            name: len(connection.execute(f"DESCRIBE harmonised.{name}").fetchall())
            for name in codebook.instruments
        }
    resource = Warehouse(database=str(warehouse), connection_config={"access_mode": "READ_ONLY"})
    tables = HarmonisedTables(resource, list(codebook.instruments), codebook, catalogue)
    assert list(tables) == list(codebook.instruments)
    held = None
    for name, instrument in codebook.instruments.items():
        columns = set(tables[name].columns)
        assert {"wave", "weight", "design_stratum", "design_psu", "region"} <= columns
        assert {i.variable for i in catalogue.indicators if i.instrument == name} <= columns
        assert not columns & {v.name for v in instrument.variables if v.level == "text"}
        assert len(columns) < stored[name]
        # one table held at a time: asking for the next lets go of the last
        assert held is None or held() is None
        held = weakref.ref(tables[name])
    assert tables[name] is tables[name]  # asked again without another between: not re-read
    with pytest.raises(KeyError):
        tables["not_an_instrument"]


def test_ratio_estimator_matches_a_hand_computation():
    y = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0])
    x = np.array([10.0, 20.0, 15.0, 5.0, 30.0, 25.0])
    w = np.array([1.0, 2.0, 1.5, 1.0, 2.0, 1.0])
    h = np.array(["a", "a", "a", "b", "b", "b"])
    j = np.array(["1", "2", "3", "4", "5", "6"])
    e = ratio_estimate(y, x, w, h, j)
    ratio = (w * y).sum() / (w * x).sum()
    z = w * (y - ratio * x) / (w * x).sum()
    variance = sum(3 / 2 * ((z[h == s] - z[h == s].mean()) ** 2).sum() for s in ("a", "b"))
    assert e.estimate == pytest.approx(ratio, abs=1e-12)
    assert e.se == pytest.approx(np.sqrt(variance), abs=1e-12)
    mean = weighted_mean(y, w, h, j)
    assert mean.estimate == pytest.approx((w * y).sum() / w.sum(), abs=1e-12)


def test_did_regression_equals_the_difference_of_differences_and_least_squares():
    rng = np.random.default_rng(11)
    units = 40
    treated = np.repeat(rng.random(units) < 0.5, 2).astype(float)
    post = np.tile([0.0, 1.0], units)
    y = 2 + 1.5 * post + 0.7 * treated + 3.0 * post * treated + rng.normal(0, 1, 2 * units)
    x = np.column_stack([np.ones(2 * units), post, treated, post * treated])
    weights = np.ones(2 * units)
    beta, covariance, df = cluster_robust_wls(y, x, weights, np.repeat(np.arange(units), 2))
    cells = pd.DataFrame({"y": y, "t": treated, "p": post}).groupby(["t", "p"])["y"].mean()
    did = (cells[(1, 1)] - cells[(1, 0)]) - (cells[(0, 1)] - cells[(0, 0)])
    assert beta[3] == pytest.approx(did, abs=1e-9)
    lstsq = np.linalg.lstsq(x, y, rcond=None)[0]
    assert np.allclose(beta, lstsq, atol=1e-9)
    assert df == units - 1 and np.all(np.diag(covariance) > 0)


def test_estimates_recover_the_true_values(pipeline_run, codebook):
    _, warehouse, _ = pipeline_run
    (estimates,) = _tables(warehouse, "indicators.estimates")
    truth = json.loads((SHIPPED_RAW / "ground_truth.json").read_text(encoding="utf-8"))["waves"]
    national = estimates[estimates["breakdown"] == "national"].set_index(["indicator_id", "wave"])
    hits = []
    for indicator in default_catalogue().indicators:
        for wave in codebook.waves:
            true = coverage.true_value(
                indicator, truth[wave][indicator.instrument]["variables"], codebook
            )
            if true is None or (indicator.id, wave) not in national.index:
                continue
            row = national.loc[(indicator.id, wave)]
            if not row["suppressed"]:  # a hidden figure publishes no interval
                hits.append(row["ci_low"] <= true <= row["ci_high"])
    assert len(hits) >= 50
    assert np.mean(hits) >= 0.9, np.mean(hits)


def test_planted_effects_come_out_with_the_right_sign_and_verdict(pipeline_run):
    _, warehouse, _ = pipeline_run
    changes, attribution = _tables(warehouse, "indicators.changes", "indicators.attribution")
    national = changes[(changes["breakdown"] == "national") & (changes["comparison"] == PROJECT)]
    verdicts = national.set_index("indicator_id")["verdict_en"]
    for improved in ("S04", "S05", "S06", "S07"):  # specialisation, training, supervision, methods
        assert verdicts[improved] == "improved", improved
    # the specialist shortage grew; the heads' national share is hidden (Latgale's 8 heads in
    # 2023, the Rīga head in 2017 would come back from it by whole numbers), and so its change
    assert verdicts["H04"] == "suppressed"
    tables, ref = attacker.harmonised(warehouse, default_codebook())
    cube = effectiveness.estimate_cube(tables, default_catalogue(), default_codebook(), ref)
    unpublished = effectiveness.changes(
        cube.assign(suppressed=False, suppression="", low_reliability=False),
        default_catalogue(),
        default_codebook(),
    )
    h04 = unpublished[
        (unpublished["breakdown"] == "national") & (unpublished["indicator_id"] == "H04")
    ]
    assert h04["verdict_en"].tolist() == ["worsened"]
    assert verdicts["S02"] == "worsened"  # more time on documentation
    assert verdicts["C01"] == "no significant change"  # client satisfaction held (78 % → 79 %)
    assert verdicts["S09"] == "worsened"  # more intend to leave
    participants = attribution[attribution["analysis"] == "participants_vs_others"].set_index(
        "indicator_id"
    )
    for indicator in ("S04", "S05", "S06", "S07"):
        assert participants.loc[indicator, "ci_low"] > 0, indicator
    did = attribution[
        (attribution["analysis"] == "difference_in_differences")
        & (attribution["term"] == "post × most activities")
    ].set_index("indicator_id")
    assert did.loc["S06", "estimate"] > 0


def test_the_did_has_the_wild_bootstrap_and_the_municipalities_per_group(pipeline_run):
    """CR1 with 4 municipalities in a group is unreliable: every difference-in-differences
    term has the wild cluster bootstrap's p-value and interval beside it, the municipalities
    per participation group, and a caveat naming the group that is too small, in the warehouse
    and in the report's files."""
    folder, warehouse, _ = pipeline_run
    rule = default_catalogue().few_clusters
    (attribution,) = _tables(warehouse, "indicators.attribution")
    did = attribution[attribution["analysis"] == "difference_in_differences"]
    assert set(did["comparison"]) == {PROJECT} and len(did) >= 10
    for row in did.itertuples():
        counts = [int(row.clusters_none), int(row.clusters_some), int(row.clusters_most)]
        assert sum(counts) == row.units
        assert 0 <= row.wcb_p_value <= 1
        assert row.wcb_ci_low <= row.estimate <= row.wcb_ci_high  # the interval inverts p
        small = [n for n in counts if n < rule.minimum_cr1]
        assert (f"CR1 needs {rule.minimum_cr1}" in row.caveat) == bool(small)
        assert ("bootstrap is not reliable" in row.caveat) == any(
            n < rule.minimum_bootstrap for n in small
        )
    # the shipped delivery's reference group is the issue's: 4 municipalities
    assert did["clusters_none"].min() < rule.minimum_bootstrap
    tables = folder / "var" / "reports" / "tables"
    printed = pd.read_csv(
        tables / "project_participation.csv", sep=";", encoding="utf-8-sig", dtype=str
    )
    printed = printed[printed["Analīze / Analysis"] == "difference_in_differences"]
    assert len(printed) == len(did)
    interval = r"\[-?(\d+\.\d|inf); -?(\d+\.\d|inf)\]"
    assert printed[report_tables.BOOTSTRAP_CI].str.fullmatch(interval).all()
    assert printed[report_tables.BOOTSTRAP_P].notna().all()
    assert printed[report_tables.CLUSTERS].str.fullmatch(r"\d+ / \d+ / \d+").all()
    assert printed["Ierobežojumi / Caveat"].str.contains("bootstrap is not reliable").all()
    page = (tables / report_export.HTML_REPORT).read_text(encoding="utf-8")
    assert report_tables.BOOTSTRAP_CI in page and "bootstrap is not reliable" in page


def test_shift_share_parts_add_up_to_the_change(pipeline_run):
    _, warehouse, _ = pipeline_run
    decomposition, changes = _tables(warehouse, "indicators.decomposition", "indicators.changes")
    national = changes[changes["breakdown"] == "national"].set_index(["comparison", "indicator_id"])
    assert set(decomposition["comparison"]) == {PROJECT}
    hidden = national["suppressed"].astype(bool)
    split_hidden = decomposition.set_index(["comparison", "indicator_id"])["suppressed"]
    # a split is hidden where its national change is (heads' H04–H07: secondary suppression)
    assert (hidden.reindex(split_hidden.index) == split_hidden.astype(bool)).all()
    assert split_hidden.sum() >= 4
    for row in decomposition[~decomposition["suppressed"].astype(bool)].itertuples():
        assert row.within + row.composition == pytest.approx(row.change, abs=1e-9)
        difference = national.loc[(row.comparison, row.indicator_id), "difference"]
        assert row.change == pytest.approx(difference, abs=1e-6)


def test_disclosure_control_holds_in_every_output(pipeline_run):
    folder, warehouse, _ = pipeline_run
    estimates, by_region = _tables(warehouse, "indicators.estimates", "report.indicators_by_region")
    small = estimates["n"] < 10
    assert small.any()  # e.g. heads by region: 42 services in 2023
    assert estimates.loc[small, ["estimate", "se", "ci_low", "ci_high"]].isna().all().all()
    published = ~estimates["suppressed"]
    assert estimates.loc[published & (estimates["n"] < 30), "low_reliability"].all()
    hidden = by_region[by_region["n 2023"] < 10]
    assert (
        len(hidden)
        and hidden[["2023", "Izmaiņas / Change 2017→2023", "95% TI / 95% CI 2017→2023"]]
        .isna()
        .all()
        .all()
    )
    out = folder / "var" / "reports" / "tables"
    csv = pd.read_csv(out / "indicators_by_region.csv", sep=";", decimal=",", encoding="utf-8-sig")
    assert csv.loc[csv["n 2023"] < 10, "2023"].isna().all()
    sheet = openpyxl.load_workbook(out / report_export.WORKBOOK)["indicators_by_region"]
    header = [c.value for c in sheet[2]]
    n_col, value_col = header.index("n 2023"), header.index("2023")
    rows = [
        r
        for r in sheet.iter_rows(min_row=3, values_only=True)
        if r[n_col] is not None and r[n_col] < 10
    ]
    assert rows and all(r[value_col] is None for r in rows)


def test_report_is_published_offline_and_in_every_format(pipeline_run):
    folder, warehouse, _ = pipeline_run
    out = folder / "var" / "reports" / "tables"
    book = openpyxl.load_workbook(out / report_export.WORKBOOK)
    titles = default_catalogue().report.tables
    assert set(book.sheetnames) == {*titles, report_export.SOURCES_SHEET}
    assert {p.stem for p in out.glob("*.csv")} == {*titles, report_export.LINEAGE}
    assert book["headline_indicators"]["A1"].value == (
        "Galvenie rādītāji un to izmaiņas / Headline indicators and change"
    )
    page = (out / report_export.HTML_REPORT).read_text(encoding="utf-8")
    assert page.count("<svg") >= 2 and "Speciālisti" in page
    assert external_references(out) == []
    (headline,) = _tables(warehouse, "report.headline_indicators")
    assert len(headline) == len(default_catalogue().indicators)
    assert {
        "Rādītājs",
        "Indicator",
        "2017",
        "2023",
        "Vērtējums 2017→2023",
        "Verdict 2017→2023",
    } <= set(headline.columns)
    assert (
        "<title>Sociālo dienestu efektivitāte: Ex-ante pētījums (2017), Ex-post pētījums (2023)"
        in page
    )


def test_a_failed_export_leaves_the_previous_report_whole(
    pipeline_run, tmp_path, monkeypatch, codebook
):
    _, warehouse, _ = pipeline_run
    out = tmp_path / "tables"
    catalogue = default_catalogue()
    names = list(catalogue.report.tables)
    tables = dict(zip(names, _tables(warehouse, *(f"report.{t}" for t in names)), strict=True))
    text = report_export.ReportText.of(codebook, catalogue, names)
    report_export.export(tables, out, text)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(report_export, "write_html", broken)
    with pytest.raises(OSError):
        report_export.export(tables, out, text)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    store = report_export.publications_dir(out)
    current = report_export.current_link(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [current.name, "tables", store.name]
    assert [p.name for p in store.iterdir()] == [current.resolve().name]  # no staging left


def test_did_with_several_heads_per_municipality_or_no_contrast(pipeline_run, codebook):
    """Scale deliveries have many heads per municipality; a model without contrast (every
    municipality in one participation group) is reported as not estimable, not a crash."""
    _, warehouse, _ = pipeline_run
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        tables = {
            name: connection.execute(f"SELECT * FROM harmonised.{name}").df()
            for name in ("specialists", "heads")
        }
    ref = ReferenceData.from_files(codebook)
    catalogue = default_catalogue()
    twice = dict(tables, heads=pd.concat([tables["heads"]] * 2, ignore_index=True))
    once = difference_in_differences(tables, catalogue, codebook, ref)
    doubled = difference_in_differences(twice, catalogue, codebook, ref)
    pd.testing.assert_series_equal(once["estimate"], doubled["estimate"])

    flat = tables["heads"].assign(project_participation=3)
    result = difference_in_differences(dict(tables, heads=flat), catalogue, codebook, ref)
    assert result["estimate"].isna().all()
    assert result["caveat"].str.startswith("Not estimable").all()


@pytest.mark.parametrize("seed", range(5))
def test_scores_are_looked_up_as_pandas_maps_them(seed):
    """An index indicator's scores per code, NaN for an empty answer and for a code with no
    score (missing codes among them), as ``Series.map`` gives them, without an object per row."""
    generator = np.random.default_rng(seed)
    codes = pd.Series(generator.integers(-3, 8, 1000), dtype="Int64")
    codes[generator.random(1000) < 0.1] = pd.NA
    scores = {int(c): float(s) for c, s in zip(range(1, 6), generator.normal(size=5), strict=True)}
    expected = codes.map(scores).astype(float).to_numpy()
    np.testing.assert_array_equal(scored(codes, scores), expected)


def test_the_cube_estimated_two_at_a_time_is_each_indicator_estimated_alone(pipeline_run, codebook):
    """``estimate_cube`` runs two indicators' estimates at once: every row, to the last bit,
    is what ``estimate_indicator`` gives for that indicator on its own, in the catalogue's
    order."""
    from sdpipeline import effectiveness

    _, warehouse, _ = pipeline_run
    catalogue = default_catalogue()
    tables = {
        name: table
        for name, table in zip(
            codebook.instruments,
            _tables(warehouse, *(f"harmonised.{n}" for n in codebook.instruments)),
            strict=True,
        )
    }
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        ref = ReferenceData.from_warehouse(connection)
    cube = effectiveness.estimate_cube(tables, catalogue, codebook, ref)
    alone = pd.DataFrame(
        [
            row
            for indicator in catalogue.indicators
            for row in effectiveness.estimate_indicator(
                indicator,
                tables[indicator.instrument],
                codebook,
                ref,
                rule=catalogue.disclosure,
            )
        ]
    )
    assert len(cube) > 500
    pd.testing.assert_frame_equal(cube, alone, check_exact=True)
