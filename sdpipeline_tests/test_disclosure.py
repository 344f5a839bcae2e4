"""Disclosure control a statistical office would sign: sensitive cells (too few respondents, a
dominant contributor) are hidden, and so are enough others that an intruder holding the
published tables and files cannot work a hidden cell out by linear programming; the published
cells all pass the rules, in the warehouse, the workbook, the CSV files and the HTML report."""

from __future__ import annotations

import shutil

import dagster as dg
import duckdb
import numpy as np
import openpyxl
import pandas as pd
import pytest

from sdpipeline import (
    attribution,
    decomposition,
    disclosure,
    effectiveness,
    report_export,
    report_tables,
)
from sdpipeline.definitions import defs
from sdpipeline.defs import keys
from sdpipeline.defs.indicators.assets import HarmonisedTables
from sdpipeline.defs.resources import warehouse_resource
from sdpipeline.indicators import default_catalogue, values
from sdpipeline.reference import ReferenceData

from . import attacker
from .conftest import isolate, materialize

RULE = default_catalogue().disclosure


@pytest.fixture(scope="module")
def cells(pipeline_run, codebook):
    """Every cell's truth and weighted base, from the run's harmonised tables."""
    _, warehouse, _ = pipeline_run
    tables, ref = attacker.harmonised(warehouse, codebook)
    return attacker.truth_and_bases(tables, default_catalogue(), codebook, ref)


def test_dominance_rules():
    assert disclosure.dominance(np.zeros(12), np.ones(12), RULE) == "all the same amount"
    assert disclosure.dominance(np.full(12, 3.0), np.arange(1, 13), RULE) == "all the same amount"
    vacancies = np.array([59.0, 3, 1] + [0] * 10)
    assert "dominance" in disclosure.dominance(vacancies, np.ones(13), RULE)
    # one contributor's weight makes it dominant though the values alone would not
    assert "dominance" in disclosure.dominance(np.arange(1.0, 13), [1] * 11 + [200], RULE)
    assert disclosure.dominance(np.arange(1.0, 13), np.ones(12), RULE) == ""
    # the p % rule on its own: what is left without the two largest under 10 % of the largest
    p_only = RULE.__class__(**{**RULE.__dict__, "dominance_k": 100.0})
    assert disclosure.dominance([100.0, 50, 5, 4], np.ones(4), p_only) == "p 10 % rule"
    assert disclosure.dominance([100.0, 50, 6, 5], np.ones(4), p_only) == ""


def _cube(values_by_domain, bases, n):
    rows = []
    for (breakdown, domain), value in values_by_domain.items():
        rows.append(
            {
                "indicator_id": "R01",
                "instrument": "residents",
                "wave": "ex_ante_2017",
                "breakdown": breakdown,
                "domain": domain,
                "estimate": value,
                "se": 1.0,
                "ci_low": value - 2,
                "ci_high": value + 2,
                "n": n[(breakdown, domain)],
                "effective_n": 5.0,
                "weighted_n": bases[(breakdown, domain)],
                "weighted_base": bases[(breakdown, domain)],
                "df": 4,
                "dominance": "",
                "step": 0.0,  # raked weights: no grid
            }
        )
    return pd.DataFrame(rows)


def test_a_cube_hides_a_complement_and_keeps_only_the_count(codebook):
    figures = {("national", "LV"): 50.0, ("region", "1"): 100.0, ("region", "2"): 40.0}
    figures[("region", "3")] = (50.0 * 10 - 100.0 * 1 - 40.0 * 4) / 5
    bases = {("national", "LV"): 10.0, ("region", "1"): 1.0, ("region", "2"): 4.0}
    bases[("region", "3")] = 5.0
    n = {("national", "LV"): 100, ("region", "1"): 3, ("region", "2"): 40, ("region", "3"): 57}
    out = disclosure.suppress_estimates(
        _cube(figures, bases, n), default_catalogue(), codebook
    ).set_index("domain")
    assert out.loc["1", "suppression"] == "n < 10" and out.loc["2", "suppression"] == "secondary"
    assert not out.loc["3", "suppressed"] and not out.loc["LV", "suppressed"]
    hidden = out[out["suppressed"]]
    assert hidden[list(disclosure.HIDDEN_COLUMNS)].isna().all().all()
    assert (hidden["n"] == [3, 40]).all()


def test_respondents_without_a_domain_keep_the_relation_binding(codebook):
    """A tenth of a respondent's weight has no region: the regions' bases fall short of the
    national one. The relation still gives region 1 back to within 5 points (the rest moves
    it by 0.1/1 of 0–100, and it is 100), so a complement is hidden and the audit finds it
    protected; were the relation dropped, region 1 would be hidden alone."""
    bases = {("national", "LV"): 10.0, ("region", "1"): 1.0, ("region", "2"): 4.45}
    bases[("region", "3")] = 4.45
    figures = {("region", "1"): 100.0, ("region", "2"): 40.0, ("region", "3"): 60.0}
    figures[("national", "LV")] = (100.0 * 1 + 40.0 * 4.45 + 60.0 * 4.45 + 50.0 * 0.1) / 10
    n = {("national", "LV"): 100, ("region", "1"): 3, ("region", "2"): 48, ("region", "3"): 48}
    cube = _cube(figures, bases, n)
    out = disclosure.suppress_estimates(cube, default_catalogue(), codebook)
    assert out["suppressed"].sum() == 2 and out.set_index("domain").loc["1", "suppressed"]
    exposures = disclosure.audit_published(out, cube, default_catalogue(), codebook)
    assert len(exposures) == 2 and all(e.protected for e in exposures)
    alone = cube.assign(suppressed=cube["domain"] == "1")
    alone["estimate"] = alone["estimate"].where(~alone["suppressed"])
    (region_1,) = disclosure.audit_published(alone, cube, default_catalogue(), codebook)
    assert region_1.width == pytest.approx(5.0) and not region_1.protected  # 95–100
    over = cube.assign(weighted_base=cube["weighted_base"] * [1, 1, 1.2, 1])
    with pytest.raises(ValueError, match="region domains' weighted bases add to"):
        disclosure.suppress_estimates(over, default_catalogue(), codebook)


def test_an_intruder_with_the_warehouse_learns_no_hidden_cell(pipeline_run, cells, codebook):
    _, warehouse, _ = pipeline_run
    levels, changes = attacker.from_warehouse(warehouse)
    findings = attacker.attack(levels, changes, cells, default_catalogue(), codebook, 0.0)
    assert len(findings) >= 40  # heads and leaders by region, partners in Rīga in 2017 …
    for finding in findings:
        assert finding.low - 1e-6 <= finding.true <= finding.high + 1e-6, finding
    assert attacker.exposed(findings) == []


def test_an_intruder_with_the_report_files_learns_no_hidden_cell(pipeline_run, cells, codebook):
    folder, _, _ = pipeline_run
    out = folder / "var" / "reports" / "tables"
    names = ("headline_indicators", "indicators_by_region")
    tables = {name: attacker.read_csv(out, name) for name in names}
    levels, changes = attacker.from_report(tables, codebook)
    findings = attacker.attack(levels, changes, cells, default_catalogue(), codebook, 0.1)
    assert len(findings) >= 30
    assert attacker.exposed(findings) == []
    # the workbook and the HTML page publish the same figures as the CSV files
    book = openpyxl.load_workbook(out / report_export.WORKBOOK)
    pages = {len(t): t for t in attacker.html_tables(out / report_export.HTML_REPORT)}
    for name, frame in tables.items():
        rows = list(book[name].iter_rows(min_row=2, values_only=True))
        sheet = pd.DataFrame(rows[1:], columns=rows[0])
        for other in (sheet, pages[len(frame)]):
            assert _same(attacker.from_report({**tables, name: other}, codebook), (levels, changes))


def _same(a: tuple[dict, dict], b: tuple[dict, dict]) -> bool:
    return all(
        x.keys() == y.keys()
        and all((np.isnan(x[k]) and np.isnan(y[k])) or x[k] == pytest.approx(y[k]) for k in x)
        for x, y in zip(a, b, strict=True)
    )


def _printed(levels: dict, rounding: float) -> dict:
    return {k: v if np.isnan(v) else round(v, 1) for k, v in levels.items()} if rounding else levels


@pytest.mark.parametrize("rounding", [0.0, 0.1])
def test_an_intruder_counting_whole_respondents_learns_no_hidden_cell(
    pipeline_run, cells, codebook, rounding
):
    """A head of service in a region weighs its municipalities over its respondents, so a
    hidden region's share is 100·k/n, k whole, and the national figure may leave one k: the
    intruder tries them all, on the warehouse's figures and on the printed ones."""
    _, warehouse, _ = pipeline_run
    levels, _ = attacker.from_warehouse(warehouse)
    findings = attacker.attack_whole_numbers(
        _printed(levels, rounding), cells, default_catalogue(), rounding
    )
    assert len(findings) >= 20 and {f.indicator_id for f in findings} >= {"H04", "H07"}
    for finding in findings:
        assert finding.low - 1e-6 <= finding.true <= finding.high + 1e-6, finding
    assert attacker.exposed(findings) == []


def test_linear_protection_alone_gives_heads_shares_back_to_whole_numbers(cells, codebook):
    """What the pattern was before whole numbers counted (every cell read as any value in its
    interval): the counting intruder gets hidden shares back, from the warehouse's figures and
    from the printed ones (e.g. Latgale 2023, 9 municipalities over 8 heads)."""
    catalogue = default_catalogue()
    linear = disclosure.suppress_estimates(
        cells.drop(columns=["base", "grid"]).assign(step=0.0), catalogue, codebook
    )
    levels = {
        (r.indicator_id, r.wave, r.breakdown, str(r.domain)): float(r.estimate)
        for r in linear.itertuples()
    }
    exact = attacker.exposed(attacker.attack_whole_numbers(levels, cells, catalogue, 0.0))
    printed = attacker.exposed(
        attacker.attack_whole_numbers(_printed(levels, 0.1), cells, catalogue, 0.1)
    )
    assert len(exact) >= 10 and any(f.width < 1e-6 for f in exact)
    assert any(f.width < 1e-6 and f.wave == "ex_post_2023" for f in printed)


def test_primary_suppression_alone_gives_cells_back(cells, codebook):
    """The same intruder against what the report did before secondary suppression (hide the
    cells under the threshold, publish the rest exactly): it gets hidden cells back."""
    small = cells["n"] < RULE.suppress_below
    levels = {
        (r.indicator_id, r.wave, r.breakdown, r.domain): np.nan if hide else r.estimate
        for r, hide in zip(cells.itertuples(), small, strict=True)
    }
    findings = attacker.attack(levels, {}, cells, default_catalogue(), codebook, 0.0)
    broken = attacker.exposed(findings)
    assert len(broken) >= 10
    assert any(f.width < 1e-6 for f in broken)  # e.g. the single Rīga head's answers


def _respondents(harmonised, cell, catalogue, codebook, ref):
    """n and the dominance verdict of one published cell, recomputed from the rows."""
    indicator = catalogue.get(cell[0])
    table = harmonised[indicator.instrument]
    y, x = values(indicator, table, codebook, ref)
    inside = (table["wave"] == cell[1]).to_numpy() & ~np.isnan(y) & ~np.isnan(x)
    if cell[2] != "national":
        inside &= (table[cell[2]].astype(str) == cell[3]).to_numpy()
    weights = table["weight"].to_numpy()[inside]
    amounts = np.sort(y[inside] * weights)[::-1]
    dominated = False
    if indicator.statistic in RULE.magnitude and len(amounts):
        total = amounts.sum()
        dominated = bool(
            np.all(y[inside] == y[inside][0])
            or (total > 0 and amounts[: RULE.dominance_n].sum() >= RULE.dominance_k / 100 * total)
            or (total > 0 and total - amounts[:2].sum() < RULE.p_percent / 100 * amounts[0])
        )
    return int(inside.sum()), dominated


def test_every_published_cell_passes_the_threshold_and_dominance_rules(pipeline_run, codebook):
    folder, warehouse, _ = pipeline_run
    catalogue = default_catalogue()
    harmonised, ref = attacker.harmonised(warehouse, codebook)
    out = folder / "var" / "reports" / "tables"
    names = ("headline_indicators", "indicators_by_region")
    csv = {name: attacker.read_csv(out, name) for name in names}
    rows = list(
        openpyxl.load_workbook(out / report_export.WORKBOOK)["indicators_by_region"].iter_rows(
            min_row=2, values_only=True
        )
    )
    xlsx = {**csv, "indicators_by_region": pd.DataFrame(rows[1:], columns=rows[0])}
    pages = {len(t): t for t in attacker.html_tables(out / report_export.HTML_REPORT)}
    page = {name: pages[len(frame)] for name, frame in csv.items()}
    published = set()
    for levels, _ in (
        attacker.from_warehouse(warehouse),
        attacker.from_report(csv, codebook),
        attacker.from_report(xlsx, codebook),
        attacker.from_report(page, codebook),
    ):
        published |= {key for key, value in levels.items() if not np.isnan(value)}
    assert len(published) > 400
    for cell in sorted(published):
        n, dominated = _respondents(harmonised, cell, catalogue, codebook, ref)
        assert n >= RULE.suppress_below and not dominated, cell


def test_the_pipelines_own_audit_passes_the_run_and_fails_primary_suppression(
    pipeline_run, cells, codebook
):
    _, warehouse, _ = pipeline_run
    catalogue = default_catalogue()
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        published = connection.execute("SELECT * FROM indicators.estimates").df()
    cube = cells.drop(columns=["base", "grid"])
    exposures = disclosure.audit_published(published, cube, catalogue, codebook)
    assert len(exposures) == int(published["suppressed"].sum()) and exposures
    assert all(e.protected for e in exposures)
    primary_only = cube.assign(suppressed=cube["n"] < RULE.suppress_below)
    primary_only["estimate"] = primary_only["estimate"].where(~primary_only["suppressed"])
    broken = [
        e
        for e in disclosure.audit_published(primary_only, cube, catalogue, codebook)
        if not e.protected
    ]
    assert len(broken) >= 10


def test_acro_flags_no_cell_that_the_report_publishes(pipeline_run, codebook):
    """SACRO's output checker, run on the harmonised rows, as trusted research environments
    use it: every region × wave cell it finds disclosive (under its threshold of 10, its (n, k)
    and p % dominance rules, all values the same) is hidden in ours. acro pins pandas ≤ 2.3.3,
    so it cannot be a dependency of this project, and the lxml it brings changes openpyxl's
    Excel bytes: the test runs in a throwaway environment where it is installed
    (``pip install --no-deps acro lxml rdflib matplotlib``) and is skipped elsewhere."""
    acro = pytest.importorskip("acro")
    _, warehouse, _ = pipeline_run
    catalogue = default_catalogue()
    harmonised, ref = attacker.harmonised(warehouse, codebook)
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        published = connection.execute("SELECT * FROM indicators.estimates").df()
    hidden = set(
        published.loc[published["suppressed"], ["indicator_id", "wave", "domain"]].itertuples(
            index=False, name=None
        )
    )
    checker = acro.ACRO(suppress=False)
    flagged = 0
    for indicator in catalogue.indicators:
        if "region" not in indicator.breakdowns or indicator.statistic == "ratio":
            continue
        table = harmonised[indicator.instrument]
        y, _ = values(indicator, table, codebook, ref)
        rows = table.assign(y=y).dropna(subset=["y"])
        magnitude = indicator.statistic in RULE.magnitude
        checker.crosstab(
            rows["region"].astype(str),
            rows["wave"],
            values=rows["y"] if magnitude else None,
            aggfunc="mean" if magnitude else None,
        )
        output = list(checker.results.results.values())[-1]
        labels = output.output[0]
        for check, cells in output.sdc["cells"].items():
            if check == "PresenceOfLinkedTableCheck":
                continue  # differencing: what our secondary suppression and audit are for
            for row, column in cells:
                key = (indicator.id, labels.columns[column], labels.index[row])
                flagged += 1
                assert key in hidden, (check, key)
    assert flagged >= 20


def test_the_run_audits_the_pattern_in_a_blocking_check(pipeline_run):
    _, _, result = pipeline_run
    (evaluation,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "disclosure_audit"
    ]
    assert evaluation.passed and evaluation.blocking
    assert evaluation.metadata["hidden_cells"].value >= 40
    assert evaluation.metadata["exposed_cells"].value == 0
    assert evaluation.metadata["whole_number_cells"].value >= 20  # heads, leaders, clients …


def test_a_pattern_that_gives_cells_back_stops_the_report(pipeline_run, tmp_path, monkeypatch):
    """Were secondary suppression to regress to primary only, the audit fails, and the
    workbook, CSV files and HTML report are not written."""
    _, warehouse, _ = pipeline_run
    folder = isolate(tmp_path, monkeypatch)
    copy = folder / "warehouse.duckdb"
    shutil.copy(warehouse, copy)
    monkeypatch.setattr(
        disclosure, "cheapest_pattern", lambda problem: {c.key for c in problem.cells if c.primary}
    )
    selection = [
        keys.indicators("estimates"),
        keys.indicators("changes"),
        keys.report("headline_indicators"),
        keys.report("indicators_by_region"),
        keys.report("exports"),
    ]
    result = materialize(copy, selection=selection)
    (evaluation,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "disclosure_audit"
    ]
    assert not evaluation.passed and evaluation.metadata["exposed_cells"].value >= 10
    materialised = {e.asset_key for e in result.get_asset_materialization_events()}
    assert keys.report("exports") not in materialised
    assert not (folder / "var" / "reports" / "tables").exists()


def test_published_time_use_means_pass_the_threshold_and_dominance_rules(pipeline_run, codebook):
    """A magnitude table outside the indicator cube: the specialists' time use."""
    folder, warehouse, _ = pipeline_run
    harmonised, _ = attacker.harmonised(warehouse, codebook)
    specialists = harmonised["specialists"]
    table = attacker.read_csv(folder / "var" / "reports" / "tables", "specialists_time_use")
    variables = default_catalogue().groups["time_use"]
    assert len(table) == len(variables)
    checked = 0
    for name, row in zip(variables, table.to_dict("records"), strict=True):
        for wave, spec in codebook.waves.items():
            if pd.isna(row.get(f"{spec.year} (%)")):
                continue
            rows = specialists[(specialists["wave"] == wave) & specialists[name].notna()]
            amounts = np.sort((rows[name] * rows["weight"]).to_numpy())[::-1]
            assert len(rows) >= RULE.suppress_below
            assert amounts[:2].sum() < RULE.dominance_k / 100 * amounts.sum()
            assert amounts.sum() - amounts[:2].sum() >= RULE.p_percent / 100 * amounts[0]
            assert rows[name].nunique() > 1
            checked += 1
    assert checked == len(variables) * len(codebook.waves)


def test_one_hidden_time_share_does_not_come_back_from_the_others(pipeline_run, codebook):
    """The four time shares add up to 100: a share hidden by the dominance rule would be 100
    less the other three, and its change minus the sum of theirs. Two specialists planted to
    dominate the "other tasks" share of 2017 (60 points each, the rest 0): another share of
    2017 is hidden with it, so no wave and no change shows exactly one hidden share."""
    _, warehouse, _ = pipeline_run
    catalogue = default_catalogue()
    specialists = attacker.harmonised(warehouse, codebook)[0]["specialists"]
    direct, *_, other = catalogue.groups["time_use"]
    rows = specialists.index[(specialists["wave"] == "ex_ante_2017") & specialists[other].notna()]
    specialists.loc[rows, direct] += specialists.loc[rows, other]
    specialists.loc[rows, other] = 0.0
    specialists.loc[rows[:2], other] = 60.0
    table = report_tables.specialists_time_use(specialists, catalogue, codebook)
    column = report_tables.year_column(codebook, "ex_ante_2017", " (%)")
    assert pd.isna(table.loc[len(table) - 1, column])  # "other tasks": dominated
    numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
    for name in numeric:
        assert table[name].isna().sum() != 1, (name, table[name].tolist())
    assert table[column].isna().sum() == 2


def test_a_hidden_national_figure_is_hidden_wherever_the_same_share_is_published(
    pipeline_run, codebook
):
    """The heads offering a family assistant is H05 nationally and a column of the services
    table; the split of a change starts from its two national figures. Where secondary
    suppression hides the national figure, those tables hide it too (and a gap, which would
    give it back from the wanted share beside it), in the warehouse and the printed CSV."""
    folder, warehouse, _ = pipeline_run
    catalogue = default_catalogue()
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        estimates = connection.execute("SELECT * FROM indicators.estimates").df()
        services = connection.execute("SELECT * FROM report.services_offered_vs_wanted").df()
        split = connection.execute("SELECT * FROM indicators.decomposition").df()
    hidden = report_tables.hidden_national(estimates, catalogue)
    assert ("heads", "offers_family_assistant", "ex_post_2023") in hidden
    printed = attacker.read_csv(folder / "var" / "reports" / "tables", "services_offered_vs_wanted")
    pairs = catalogue.groups["services_offered_vs_wanted"]
    for table in (services, printed):
        for wave in ("ex_ante_2017", "ex_post_2023"):
            heads = report_tables.service_column("heads", codebook, wave)
            gap = report_tables.service_column("gap", codebook, wave)
            for row, pair in enumerate(pairs):
                blank = ("heads", pair["offered"], wave) in hidden
                assert pd.isna(table.loc[row, heads]) == blank, (wave, pair)
                assert pd.isna(table.loc[row, gap]) == blank, (wave, pair)
    national_hidden = {
        (r.indicator_id, r.wave)
        for r in estimates.itertuples()
        if r.breakdown == "national" and r.suppressed
    }
    assert {("H04", "ex_ante_2017"), ("H07", "ex_post_2023")} <= national_hidden
    for row in split.itertuples():
        blank = bool(
            national_hidden
            & {(row.indicator_id, row.wave_before), (row.indicator_id, row.wave_after)}
        )
        if blank:
            assert row.suppressed and np.isnan(row.estimate_before) and np.isnan(row.change)


def test_participants_and_others_are_hidden_where_the_national_figure_is(pipeline_run, codebook):
    """Participants and the rest partition the same specialists: their two shares and sizes
    give the national figure back. Wherever the indicator tables hide that figure, the row of
    participants against the rest is hidden too, and nothing else changes."""
    _, warehouse, _ = pipeline_run
    catalogue = default_catalogue()
    tables, ref = attacker.harmonised(warehouse, codebook)
    shown = attribution.attribution(tables, catalogue, codebook, ref)
    rows = shown[(shown["analysis"] == "participants_vs_others") & ~shown["suppressed"]]
    withheld = {(r.indicator_id, r.wave) for r in rows.iloc[[0, -1]].itertuples()}
    hidden = attribution.attribution(tables, catalogue, codebook, ref, [*withheld, ("H04", "x")])
    key = list(zip(hidden["indicator_id"], hidden["wave"], strict=True))
    is_withheld = pd.Series([k in withheld for k in key], index=hidden.index) & (
        hidden["analysis"] == "participants_vs_others"
    )
    assert is_withheld.sum() == len(withheld) == 2
    figures = ["participants", "others", "estimate", "se", "ci_low", "ci_high", "p_value"]
    assert hidden.loc[is_withheld, "suppressed"].all()
    assert hidden.loc[is_withheld, figures].isna().all().all()
    assert not hidden.loc[is_withheld, "low_reliability"].any()
    pd.testing.assert_frame_equal(hidden[~is_withheld], shown[~is_withheld])
    # and the asset reads what the indicator tables hide
    graph = defs.resolve_asset_graph()
    assert keys.indicators("estimates") in graph.get(keys.indicators("attribution")).parent_keys


def test_an_intruder_with_the_split_of_a_change_learns_no_hidden_cell(pipeline_run, codebook):
    """The published within part of a national change ties the two waves' hidden regional and
    type cells together through the cells of region × municipality type. The suppression does
    not model that equation; an intruder who knows every such cell's weight and uses it narrows
    some hidden cells, but none below its protection, on the sample."""
    _, warehouse, _ = pipeline_run
    tables, ref = attacker.harmonised(warehouse, codebook)
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        estimates = connection.execute("SELECT * FROM indicators.estimates").df()
        split = connection.execute("SELECT * FROM indicators.decomposition").df()
    findings, narrowed = attacker.attack_shift_share(
        tables, estimates, split, default_catalogue(), codebook, ref
    )
    assert len(findings) >= 20
    assert narrowed >= 1  # the split is information the intruder uses
    assert attacker.exposed(findings) == []
    assert all(f.low - 1e-6 <= f.true <= f.high + 1e-6 for f in findings)


def _cells(weights: list[float], means: list[float]) -> pd.DataFrame:
    index = pd.MultiIndex.from_tuples(
        [(1, "novads"), (2, "novads")], names=["region", "municipality_type"]
    )
    return pd.DataFrame({"w": weights, "p": means}, index=index)


def test_a_split_whose_within_part_gives_back_a_hidden_cell_exposes_it():
    """Both regions of the earlier wave hidden, the national figure shown: one equation, two
    unknowns. Where the later wave's mix differs, the within part is a second, independent one
    and gives both back; where the mix is the same, it repeats the national figure."""
    hidden = [("a", "region", "1"), ("a", "region", "2")]
    groups = ["region", "municipality_type"]
    before = _cells([1.0, 1.0], [30.0, 70.0])
    assert decomposition.split_exposes(
        {"a": before, "b": _cells([3.0, 1.0], [40.0, 60.0])}, groups, hidden, (0.0, 100.0), 20.0
    )
    assert not decomposition.split_exposes(
        {"a": before, "b": _cells([1.0, 1.0], [40.0, 60.0])}, groups, hidden, (0.0, 100.0), 20.0
    )
    assert not decomposition.split_exposes(
        {"a": before, "b": _cells([3.0, 1.0], [40.0, 60.0])}, groups, [], (0.0, 100.0), 20.0
    )


def test_the_split_is_hidden_where_it_would_expose_a_hidden_cell(pipeline_run, codebook):
    """A region hidden alone beside its published national figure and other regions comes
    back by subtraction: a split of that indicator's change is hidden, the others stay."""
    _, warehouse, _ = pipeline_run
    catalogue = default_catalogue()
    tables, ref = attacker.harmonised(warehouse, codebook)
    shown = decomposition.decompose_all(tables, catalogue, codebook, ref)
    wave = shown.loc[shown["indicator_id"] == "S04", "wave_before"].iloc[0]
    hidden = decomposition.decompose_all(
        tables, catalogue, codebook, ref, [("S04", wave, "region", "1")]
    )
    s04 = hidden["indicator_id"] == "S04"
    assert hidden.loc[s04, "suppressed"].all() and hidden.loc[s04, "within"].isna().all()
    assert not shown.loc[s04, "suppressed"].any()
    pd.testing.assert_frame_equal(hidden[~s04], shown[~s04])


def test_the_audit_estimates_afresh_only_the_indicators_that_hide_a_cell(pipeline_run, codebook):
    """The blocking audit works every hidden cell out again from the harmonised rows: only the
    indicators that hide a cell need it, and their cube is the whole cube's rows exactly, read
    through the same column selection the check uses; its findings are the same."""
    _, warehouse, _ = pipeline_run
    catalogue = default_catalogue()
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        published = connection.execute("SELECT * FROM indicators.estimates").df()
        ref = ReferenceData.from_warehouse(connection)
    hiding = set(published.loc[published["suppressed"], "indicator_id"])
    audited = disclosure.audited_catalogue(published, catalogue)
    assert [i.id for i in audited.indicators] == [
        i.id for i in catalogue.indicators if i.id in hiding
    ]
    assert 0 < len(hiding) < len(catalogue.indicators)
    resource = warehouse_resource(warehouse)

    def cube(chosen):
        tables = HarmonisedTables(resource, list(codebook.instruments), codebook, chosen)
        return effectiveness.estimate_cube(tables, chosen, codebook, ref)

    whole, part = cube(catalogue), cube(audited)
    expected = whole[whole["indicator_id"].isin(hiding)].reset_index(drop=True)
    pd.testing.assert_frame_equal(part, expected, check_exact=True)
    assert disclosure.audit_published(published, part, audited, codebook) == (
        disclosure.audit_published(published, whole, catalogue, codebook)
    )


def test_an_audit_of_tables_hiding_nothing_reads_nothing_and_passes(
    pipeline_run, tmp_path, monkeypatch
):
    """A register-sized delivery hides no cell: the check has nothing to solve, and says so."""
    _, warehouse, _ = pipeline_run
    folder = isolate(tmp_path, monkeypatch)
    copy = folder / "warehouse.duckdb"
    shutil.copy(warehouse, copy)
    with duckdb.connect(str(copy)) as connection:
        connection.execute("UPDATE indicators.estimates SET suppressed = false")
        connection.execute("DROP TABLE harmonised.residents")  # read, the check would fail
    check = dg.AssetCheckKey(keys.report("indicators_by_region"), "disclosure_audit")
    result = materialize(copy, selection=dg.AssetSelection.checks(check))
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed
    assert evaluation.metadata["hidden_cells"].value == 0
    assert evaluation.metadata["exposed_cells"].value == 0
    assert evaluation.metadata["whole_number_cells"].value == 0
