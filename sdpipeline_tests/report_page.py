"""The HTML report as a reader's browser shows it: the system Chromium driven by Playwright
(never a downloaded browser), the page's layout checked from the DOM and from screenshots.

``python -m sdpipeline_tests.report_page REPORT.html OUT.png [SECTION]`` writes the screenshot
of one section (the README's is made so).
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
SCREEN_WIDTH = 1000
# A4 less the page margins of report.css (14 mm top and bottom, 12 mm each side), at 96 px/in;
# the tables print on landscape pages (report.css: #tables, page wide)
PRINTABLE_WIDTH = (210 - 24) / 25.4 * 96
PRINTABLE_HEIGHT = (297 - 28) / 25.4 * 96
LANDSCAPE_WIDTH = (297 - 24) / 25.4 * 96
LANDSCAPE = "#tables"

# Every chart's text: inside its SVG, and apart from every other text of the chart. Text Vega
# hides to avoid an overlap (opacity 0) is not drawn and not counted.
SVG_TEXT = """
() => {
  const problems = [];
  const inside = (r, box) => r.left >= box.left - 0.5 && r.right <= box.right + 0.5
      && r.top >= box.top - 0.5 && r.bottom <= box.bottom + 0.5;
  const overlap = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 0.5
      && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 0.5;
  const charts = [...document.querySelectorAll('svg.chart')];
  charts.forEach((svg, n) => {
    const box = svg.getBoundingClientRect();
    const texts = [...svg.querySelectorAll('text')].filter(t =>
      t.textContent.trim() && Number(getComputedStyle(t).opacity) > 0
      && t.getAttribute('opacity') !== '0');
    const rects = texts.map(t => t.getBoundingClientRect());
    texts.forEach((t, i) => {
      if (!inside(rects[i], box)) problems.push(`chart ${n}: "${t.textContent}" outside its chart`);
      for (let j = 0; j < i; j++) {
        if (overlap(rects[i], rects[j]))
          problems.push(`chart ${n}: "${t.textContent}" overlaps "${texts[j].textContent}"`);
      }
    });
  });
  return {charts: charts.length, problems};
}
"""

# Every piece of page text within its box (nothing overflows or is clipped), and no element
# wider than ``width`` (the page, or the printable width); ``only``: the elements inside it,
# ``not``: those outside it (a selector, or null).
PAGE_TEXT = """
([width, only, not]) => {
  const problems = [];
  const selector = 'h1,h2,h3,h4,p,li,th,td,dt,dd,span.key,code,figure,section,table,svg.chart';
  for (const element of document.querySelectorAll(selector)) {
    if (!element.getClientRects().length) continue;
    if (only && !element.closest(only)) continue;
    if (not && element.closest(not)) continue;
    const r = element.getBoundingClientRect();
    const name = `${element.tagName.toLowerCase()} "${element.textContent.slice(0, 60)}"`;
    if (r.right > width + 0.5 || r.left < -0.5) problems.push(`${name}: ${r.left}–${r.right} px`);
    if (element.tagName !== 'svg' && element.scrollWidth > element.clientWidth + 1
        && getComputedStyle(element).display !== 'inline')
      problems.push(`${name}: ${element.scrollWidth} px of text in ${element.clientWidth} px`);
  }
  if (!only && !not && document.documentElement.scrollWidth > width + 0.5)
    problems.push(`the page is ${document.documentElement.scrollWidth} px wide`);
  return problems;
}
"""


@contextmanager
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def open_report(chromium, report: Path, media: str = "screen", width: int | None = None):
    """The report in a page offline: any request leaving the file fails the page."""
    width = width or (SCREEN_WIDTH if media == "screen" else int(PRINTABLE_WIDTH))
    context = chromium.new_context(viewport={"width": width, "height": 1200}, offline=True)
    page = context.new_page()
    fetched = []
    page.on("request", lambda r: fetched.append(r.url) if not r.url.startswith("file:") else None)
    page.emulate_media(media=media)
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    page.evaluate("document.fonts.ready")
    assert not fetched, f"the report fetched {fetched}"
    return page


def layout_problems(
    page, width: float, only: str | None = None, outside: str | None = None
) -> tuple[int, list[str]]:
    """(charts, problems): text outside its chart or over other text, text overflowing its
    box, elements wider than ``width`` (``only`` those inside that selector, or ``outside``
    it)."""
    charts = page.evaluate(SVG_TEXT)
    return charts["charts"], charts["problems"] + page.evaluate(PAGE_TEXT, [width, only, outside])


def ink_at_edges(png: bytes, strip: int = 2, threshold: int = 200) -> list[str]:
    """Which edges of a screenshot have drawn pixels (darker than ``threshold`` in every
    channel) within ``strip`` pixels: a label cut by its box leaves ink at the edge."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("L")
    width, height = image.size
    edges = {
        "left": (0, 0, strip, height),
        "right": (width - strip, 0, width, height),
        "top": (0, 0, width, strip),
        "bottom": (0, height - strip, width, height),
    }
    return [name for name, box in edges.items() if image.crop(box).getextrema()[0] < threshold]


def section_screenshot(page, selector: str, margin: int = 6) -> bytes:
    """A section with a margin of the page around it, as a reader sees it."""
    box = page.locator(selector).first.bounding_box()
    page.set_viewport_size({"width": SCREEN_WIDTH, "height": int(box["height"]) + 2 * margin + 50})
    box = page.locator(selector).first.bounding_box()
    return page.screenshot(
        clip={
            "x": box["x"] - margin,
            "y": box["y"] - margin,
            "width": box["width"] + 2 * margin,
            "height": box["height"] + 2 * margin,
        },
        full_page=True,
    )


if __name__ == "__main__":
    report, out = Path(sys.argv[1]), Path(sys.argv[2])
    section = sys.argv[3] if len(sys.argv) > 3 else "#instrument-residents"
    with browser() as chromium:
        out.write_bytes(section_screenshot(open_report(chromium, report), section))
