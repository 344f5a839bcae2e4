"""The HTML report as people read it: in headless Chromium (the system's, through Playwright),
no text overlaps other text or leaves its box, on screen and printed; every section's
screenshot shows no cut label; it prints to A4; a suppressed cell is shown as suppressed; and
the charts are the same bytes whatever was drawn before them."""

from __future__ import annotations

import html
import re
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from sdpipeline import report_charts, report_export, report_html
from sdpipeline import report_tables as rt
from sdpipeline.codebook import Label
from sdpipeline.indicators import default_catalogue

from .conftest import require
from .report_page import (
    CHROMIUM,
    LANDSCAPE,
    LANDSCAPE_WIDTH,
    PRINTABLE_HEIGHT,
    PRINTABLE_WIDTH,
    SCREEN_WIDTH,
    browser,
    ink_at_edges,
    layout_problems,
    open_report,
    section_screenshot,
)

MARGIN = 6  # pixels of page around a section's screenshot


def _chromium() -> None:
    require(Path(CHROMIUM).exists(), f"{CHROMIUM} (the system's Chromium) is not installed")


@pytest.fixture(scope="module")
def report(pipeline_run) -> Path:
    folder, _, _ = pipeline_run
    return folder / "var" / "reports" / "tables" / report_export.HTML_REPORT


def _tables(warehouse: Path) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return {
            name: connection.execute(f'SELECT * FROM report."{name}"').df()
            for name in default_catalogue().report.tables
        }


def test_no_text_overlaps_or_leaves_its_box_on_screen_or_printed(report):
    _chromium()
    with browser() as chromium:
        # on screen; printed, the charts on portrait pages and the tables on landscape ones
        for media, width, only, outside in (
            ("screen", SCREEN_WIDTH, None, None),
            ("print", PRINTABLE_WIDTH, None, LANDSCAPE),
            ("print", LANDSCAPE_WIDTH, LANDSCAPE, None),
        ):
            page = open_report(chromium, report, media, int(width))
            charts, problems = layout_problems(page, width, only, outside)
            assert charts >= 40, media  # a chart per unit, survey and region panel
            assert problems == [], (media, width, problems[:20])


def test_screenshots_of_the_sections_show_no_cut_label(report, tmp_path):
    """A section's screenshot, with a margin of the page around it, has nothing drawn in that
    margin (text spilling out of its section); a chart's has nothing drawn at its edges (a
    label cut by the chart's box)."""
    _chromium()
    with browser() as chromium:
        page = open_report(chromium, report)
        sections = page.eval_on_selector_all("section[id]", "s => s.map(e => e.id)")
        assert {"provenance", "tables"} <= set(sections)
        assert {f"instrument-{name}" for name in ("residents", "heads", "leaders")} <= set(sections)
        for section in sections:
            png = section_screenshot(page, f"#{section}", MARGIN)
            (tmp_path / f"{section}.png").write_bytes(png)
            assert ink_at_edges(png, strip=MARGIN - 1) == [], section
        page = open_report(chromium, report)
        charts = page.locator("svg.chart")
        for index in range(charts.count()):
            png = charts.nth(index).screenshot()
            assert ink_at_edges(png, strip=2) == [], f"chart {index}"


def test_the_report_prints_to_a4_cleanly(report):
    _chromium()
    with browser() as chromium:
        page = open_report(chromium, report, "print")
        # no chart or figure taller than a page, so none is split across two
        heights = page.eval_on_selector_all(
            "svg.chart, figure, .panel", "es => es.map(e => e.getBoundingClientRect().height)"
        )
        assert max(heights) <= PRINTABLE_HEIGHT
        pdf = page.pdf(format="A4", prefer_css_page_size=True, print_background=True)
    pages = len(re.findall(rb"/Type\s*/Page\b", pdf))
    sections = report.read_text(encoding="utf-8").count("<section id=")
    assert sections <= pages <= 60, pages
    sizes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf)
    shapes = [(round(float(w)), round(float(h))) for w, h in sizes]
    # A4: portrait for the text and charts, landscape for the tables
    assert set(shapes) == {(595, 842), (842, 595)}


def _panels(page: str) -> dict[str, str]:
    """Each regional panel's SVG, by its indicator code."""
    return dict(re.findall(r'<div class="panel"><h4>(\w+) .*?</h4>(<svg.*?</svg>)', page, re.S))


def _points(svg: str) -> int:
    """The points a chart draws: the symbols of its point layers."""
    groups = re.findall(r'<g class="mark-symbol[^"]*"[^>/]*>(.*?)</g>', svg, re.S)
    return sum(group.count("<path") for group in groups)


def _said(svg: str) -> str:
    """A chart's text as read, the lines of its labels joined."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", svg))


def test_a_suppressed_cell_is_shown_as_suppressed(pipeline_run, report, codebook):
    """Every regional panel draws exactly the values the regional table publishes, and each
    region's row names every wave whose value is suppressed: never a point at zero, never a
    silent gap."""
    _, warehouse, _ = pipeline_run
    regional = _tables(warehouse)["indicators_by_region"]
    catalogue = default_catalogue()
    panels = _panels(report.read_text(encoding="utf-8"))
    assert set(panels) == set(regional[rt.CODE])
    hidden = 0
    for code, rows in regional.groupby(rt.CODE):
        indicator = catalogue.get(code)
        variable = codebook.instruments[indicator.instrument].variable(indicator.variable)
        years = [str(w.year) for w in codebook.waves.values() if variable.asked_in(w.id)]
        assert _points(panels[code]) == int(rows[years].notna().sum().sum()), code
        text = _said(panels[code])
        for year in years:
            blank = int(rows[year].isna().sum())
            assert text.count(f"▪ {year}: neatklāts / suppressed") == blank, (code, year)
            hidden += blank
    assert hidden > 0  # the sample delivery has regions too small to publish


def test_a_cell_suppressed_later_is_drawn_nowhere_and_named(pipeline_run, codebook):
    _, warehouse, _ = pipeline_run
    tables = _tables(warehouse)
    headline = tables["headline_indicators"].copy()
    row = headline.index[headline[rt.CODE] == "R01"][0]
    headline.loc[row, "2017"] = None
    headline.loc[row, rt.NOTES] = "2017: Neatklāj (n < 10) / Suppressed (n < 10)"
    text = report_export.ReportText.of(codebook, default_catalogue(), list(tables))
    before = report_html.page(tables, text)
    after = report_html.page(tables | {"headline_indicators": headline}, text)
    residents = re.compile(r'id="instrument-residents">.*?<figure><h4>%</h4>(<svg.*?</svg>)', re.S)
    drawn_before = _points(residents.search(before).group(1))
    chart = residents.search(after).group(1)
    assert _points(chart) == drawn_before - 1
    assert "R01 Iedzīvotāji" in _said(chart)
    assert (
        _said(chart).count("▪ 2017: neatklāts / suppressed")
        == _said(residents.search(before).group(1)).count("▪ 2017: neatklāts / suppressed") + 1
    )
    # and the table says so in the cell itself
    cell = '<td class="hidden"><i>neatklāts / suppressed</i></td>'
    assert after.count(cell) == before.count(cell) + 1


def test_every_chart_holds_one_unit_and_names_it(pipeline_run, codebook):
    """No chart mixes units: every chart's indicators share one unit, which its axis names;
    a unit joining a section that had one (days among the participation effects) gets a
    chart of its own."""
    _, warehouse, _ = pipeline_run
    tables = _tables(warehouse)
    catalogue = default_catalogue()
    participation = tables["project_participation"].copy()
    days = next(i for i in catalogue.indicators if i.unit == "days")
    row = participation.index[participation[rt.ANALYSIS] == "participants_vs_others"][0]
    participation.loc[row, [rt.NAME_LV, rt.NAME_EN]] = [days.name.lv, days.name.en]
    tables["project_participation"] = participation
    page = report_html.page(tables, report_export.ReportText.of(codebook, catalogue, list(tables)))
    codes = {i.id for i in catalogue.indicators}
    charted = 0
    for svg in re.findall(r"<svg.*?</svg>", page, re.S):
        said = html.unescape(_said(svg))
        drawn = {c for c in re.findall(r"\b([A-Z]\d{2}) ", said) if c in codes} | {
            i.id for i in catalogue.indicators if f": {i.name.en}" in said
        }
        units = {catalogue.get(c).unit for c in drawn}
        assert len(units) <= 1, sorted(drawn)
        if units:
            unit = catalogue.report.units[units.pop()]
            assert unit.value.en in said or unit.change.en in said, sorted(drawn)
            charted += 1
    assert charted >= 10
    for code, svg in _panels(page).items():
        assert catalogue.report.units[catalogue.get(code).unit].value.en in _said(svg), code
    section = re.search(r'<section id="chart-project_participation">.*?</section>', page, re.S)
    headings = re.findall(r"<figure><h4>(.*?)</h4>", section.group(0))
    assert len(headings) == 2 and any("days" in h for h in headings), headings


def test_charts_are_the_same_bytes_whatever_was_drawn_before():
    keys = report_charts.series([("2017", Label("2017", "2017")), ("2023", Label("2023", "2023"))])
    rows = [
        report_charts.Row(Label("Rīga", "Riga"), {"2017": 51.5, "2023": 55.0}),
        report_charts.Row(Label("Latgale", "Latgale"), {"2023": 44.0}, ("2017: neatklāts",)),
    ]
    dots = report_charts.dot_chart(rows, keys, Label("%", "%"))
    change = report_charts.Change(Label("x", "x"), 1.0, -1.0, 3.0, "improved")
    first = report_charts.render(dots, "a")
    report_charts.render(report_charts.change_chart([change], Label("pp", "pp")), "b")
    assert report_charts.render(dots, "a") == first
    # drawn two at a time, in a batch, the page is the same as drawn one by one
    batch = report_charts.Batch()
    charts = [dots, report_charts.change_chart([change], Label("pp", "pp")), dots]
    page = "<p>" + "</p><p>".join(batch.add(c) for c in charts) + "</p>"
    one_by_one = "</p><p>".join(
        report_charts.render(c, f"chart{n}") for n, c in enumerate(charts, start=1)
    )
    assert batch.fill(page) == f"<p>{one_by_one}</p>"
    # vl-convert numbers clip paths per process: a chart's ids are made its own
    clipped = report_charts.Chart(
        {
            "data": {"values": [{"x": 1, "y": "a"}]},
            "mark": {"type": "bar", "clip": True},
            "encoding": {"x": {"field": "x", "type": "quantitative"}, "y": {"field": "y"}},
        },
        "clipped",
    )
    one = report_charts.render(clipped, "c")
    report_charts.render(clipped, "d")
    assert report_charts.render(clipped, "c") == one
    ids = re.findall(r'id="([^"]+)"', one)
    assert ids and all(i.startswith("c-") for i in ids)
    assert all(f"url(#{i})" in one for i in ids)


def test_a_chart_drawn_before_is_taken_from_the_cache_and_only_changed_ones_are_drawn(tmp_path):
    keys = report_charts.series([("2017", Label("2017", "2017")), ("2023", Label("2023", "2023"))])

    def chart(value: float) -> report_charts.Chart:
        row = report_charts.Row(Label("Rīga", "Riga"), {"2017": 51.5, "2023": value})
        return report_charts.dot_chart([row], keys, Label("%", "%"))

    def fill(charts: list[report_charts.Chart], cache=None) -> str:
        batch = report_charts.Batch(cache=cache)
        return batch.fill("".join(batch.add(c) for c in charts))

    cache = tmp_path / "charts"
    drawn = [chart(55.0), chart(44.0), chart(55.0)]
    page = fill(drawn, cache)
    assert page == fill(drawn)  # the same page as drawn without a cache
    files = sorted(cache.glob("*.svg"))
    assert len(files) == 2  # one drawing per distinct chart
    # a second page takes the drawings from the cache: a marker put into one comes back
    original = files[0].read_text()
    files[0].write_text(original.replace("<svg ", '<svg data-from-cache="yes" ', 1))
    assert 'data-from-cache="yes"' in fill(drawn, cache)
    files[0].write_text(original)
    # a changed figure is a new drawing; the drawing no page holds any more is removed
    again = fill([chart(55.0), chart(60.0)], cache)
    assert again == fill([chart(55.0), chart(60.0)])
    remaining = sorted(cache.glob("*.svg"))
    assert len(remaining) == 2 and len(set(remaining) & set(files)) == 1
    assert not list(cache.glob(".*"))  # no drawing left half-written


def test_the_page_fetches_nothing_and_embeds_its_typeface(report):
    page = report.read_text(encoding="utf-8")
    assert not re.search(r'(?:src|href)="(?!#)', page)  # no file or address to fetch
    assert set(re.findall(r"url\(([a-z]+):", page)) == {"data"}
    assert page.count("@font-face") == 2
    assert page.count('<p id="publication">') == 1
