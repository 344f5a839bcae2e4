"""What an auditor opens: the Data Docs site read from disk with no network, in headless
Chromium (the system's own, never a downloaded one), its tabs and "Show more info" working on
every page the site keeps, old pages included."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import great_expectations
import pandas as pd
import pytest

from sdpipeline.ingest import sha256_of
from sdpipeline.validation import audit, data_docs, gx_runner

from .conftest import require
from .test_ui import BROWSER_ARGS, CHROMIUM
from .test_validation import _codes_suite, checked

_SCRIPTS_LOADED = (
    "typeof jQuery === 'function' && typeof jQuery.fn.tab === 'function' "
    "&& typeof jQuery.fn.collapse === 'function' && typeof Popper === 'function'"
)


class OfflinePages:
    """Pages opened from disk in a browser context that lets no request leave the machine:
    every request that is not for a local file is refused and remembered, and every console
    error (a script refused, a file missing) is kept per page."""

    def __init__(self, context) -> None:
        self.context = context
        self.attempted: list[str] = []
        self.errors: dict[str, list[str]] = {}
        context.on("request", self._seen)
        context.route("**/*", self._route)

    def _seen(self, request) -> None:
        if not request.url.startswith("file://"):
            self.attempted.append(request.url)

    @staticmethod
    def _route(route) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            route.abort()

    def open(self, path: Path):
        page = self.context.new_page()
        errors = self.errors.setdefault(str(path), [])
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.resolve().as_uri())
        return page


@contextmanager
def offline_browser() -> Iterator[OfflinePages]:
    require(CHROMIUM is not None, "Chromium is not installed")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            yield OfflinePages(browser.new_context(offline=True))
        finally:
            browser.close()


def _assert_scripts_work(pages: OfflinePages, path: Path) -> None:
    page = pages.open(path)
    assert page.evaluate(_SCRIPTS_LOADED), (path, pages.errors[str(path)])
    assert pages.errors[str(path)] == [], path
    page.close()


def _assert_show_more_info_opens(pages: OfflinePages, path: Path) -> None:
    page = pages.open(path)
    toggle = page.get_by_text("Show more info...")
    target = page.locator(toggle.first.get_attribute("href"))
    assert target.is_hidden()
    toggle.first.click()
    target.wait_for(state="visible", timeout=5_000)
    assert target.get_by_text("Run Name").is_visible()
    page.close()


def test_data_docs_work_from_disk_with_the_network_off(pipeline_run):
    folder, _, _ = pipeline_run
    site = folder / "var" / "reports" / "data_docs"
    results = sorted((site / "validations").rglob("*.html"))
    suites = sorted((site / "expectations").rglob("*.html"))
    assert len(results) >= 36 and len(suites) >= 36
    with offline_browser() as pages:
        index = pages.open(site / "index.html")
        results_pane = index.locator("#Validation-Results")
        suites_pane = index.locator("#Expectation-Suites")
        assert results_pane.is_visible() and suites_pane.is_hidden()
        index.get_by_role("tab", name="Expectation Suites").click()
        suites_pane.wait_for(state="visible", timeout=5_000)
        assert results_pane.is_hidden()
        # the suites' table, drawn by bootstrap-table's script, paged ten at a time
        assert suites_pane.get_by_text(re.compile(r"Showing 1 to 10 of \d+ rows")).is_visible()
        index.get_by_role("tab", name="Validation Results").click()
        results_pane.wait_for(state="visible", timeout=5_000)
        assert suites_pane.is_hidden()
        index.get_by_role("tab", name="Expectation Suites").click()
        suite = suites_pane.locator("tbody td").first
        name = suite.inner_text().strip()
        suite.click()  # a row leads to its suite's page
        index.wait_for_url(f"**/expectations/{name}.html", timeout=5_000)
        index.close()
        # every page of a kind comes from the same template and the same rewriting: three
        # of each in the browser (about half a second a page), and every page read below
        for path in [*results[:3], *suites[:3]]:
            _assert_scripts_work(pages, path)
        for path in results[:3]:
            _assert_show_more_info_opens(pages, path)
    assert pages.attempted == []
    assert {path: errors for path, errors in pages.errors.items() if errors} == {}
    for path in [site / "index.html", *results, *suites]:
        tags = re.findall(r"<(?:script|link)\b[^>]*>", path.read_text(encoding="utf-8"))
        assert not [t for t in tags if "integrity=" in t or "crossorigin" in t], path


def _integrity_gx_declares() -> dict[str, str]:
    """Vendored path → the ``integrity`` and ``crossorigin`` attributes GX's templates give
    the CDN script it replaces."""
    templates = Path(great_expectations.__file__).parent / "render" / "view" / "templates"
    declared = {}
    for template in templates.rglob("*.j2"):
        for url, attributes in re.findall(
            r'<script src="(https?://[^"]+)" (integrity="[^"]+" crossorigin="[^"]+")>',
            template.read_text(encoding="utf-8"),
        ):
            declared[data_docs.vendored_assets()[url]] = attributes
    return declared


def test_the_vendored_scripts_are_the_ones_gx_declares_by_hash():
    declared = _integrity_gx_declares()
    assert set(declared) == {"popper/popper.min.js", "bootstrap/bootstrap.min.js"}
    for path, attributes in declared.items():
        algorithm, value = re.search(r'integrity="([^-]+)-([^"]+)"', attributes).groups()
        content = (data_docs.VENDOR_DIR / path).read_bytes()
        assert base64.b64encode(hashlib.new(algorithm, content).digest()).decode() == value


def _as_an_earlier_version_left_it(page: Path) -> None:
    """The page as sdpipeline's first offline rewriting left it: local scripts, but with GX's
    integrity attributes, which Chromium refuses under file://."""
    text = page.read_text(encoding="utf-8")
    for script, attributes in _integrity_gx_declares().items():
        text, count = re.subn(rf'(src="[^"]*{re.escape(script)}")>', rf"\1 {attributes}>", text)
        assert count == 1
    page.write_text(text, encoding="utf-8")
    os.utime(page, (1_600_000_000, 1_600_000_000))


def test_pages_an_earlier_version_left_are_mended_once(isolated):
    suite = _codes_suite("old_pages_probe", [1, 2])
    frame = pd.DataFrame({"code": [1, 2, 2]})
    site = gx_runner.data_docs_dir()
    gx_runner.run_suite(suite, frame, checked("run-old"))
    data_docs.publish("run-old")
    (old,) = (site / "validations").rglob("*run-old*/**/*.html")
    _as_an_earlier_version_left_it(old)
    (site / data_docs.SITE_VENDOR / "OFFLINE_VERSION").unlink()

    gx_runner.run_suite(suite, frame, checked("run-new"))
    data_docs.publish("run-new")

    assert "integrity=" not in old.read_text(encoding="utf-8")
    stamp = old.stat().st_mtime_ns
    gx_runner.run_suite(suite, frame, checked("run-later"))
    data_docs.publish("run-later")
    assert old.stat().st_mtime_ns == stamp  # mended once, then left alone
    with offline_browser() as pages:
        _assert_scripts_work(pages, old)
        _assert_show_more_info_opens(pages, old)
    assert pages.attempted == []


def test_a_vendored_script_that_is_not_the_declared_one_is_refused(isolated):
    suite = _codes_suite("integrity_probe", [1, 2])
    gx_runner.run_suite(suite, pd.DataFrame({"code": [1]}), checked("run-a"))
    data_docs.publish("run-a")
    site = gx_runner.data_docs_dir()
    (page,) = (site / "validations").rglob("*.html")
    _as_an_earlier_version_left_it(page)
    copy = site / data_docs.SITE_VENDOR / "popper" / "popper.min.js"
    copy.write_text(copy.read_text(encoding="utf-8") + "\n// altered", encoding="utf-8")
    with pytest.raises(data_docs.IntegrityError, match=r"popper/popper\.min\.js"):
        data_docs.make_offline(site, since=0.0)


def _page_text(path: Path) -> str:
    """A page's visible text: tags dropped, entities read, white space collapsed."""
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", path.read_text(encoding="utf-8"), flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())


def test_result_and_suite_pages_name_the_instrument_wave_files_and_checksums(isolated):
    files = {"iedzivotaji_2017.sav": "1" * 64, "iedzivotaji_2023.csv": "2" * 64}
    judged = audit.CheckContext(
        "run-h", "residents_harmonised", "residents", ("ex_ante_2017", "ex_post_2023"), files
    )
    gx_runner.run_suite(_codes_suite("delivery_probe", [1, 2]), pd.DataFrame({"code": [1]}), judged)
    data_docs.publish("run-h")
    site = gx_runner.data_docs_dir()
    (result,) = (site / "validations").rglob("*.html")
    for page in (result, site / "expectations" / "delivery_probe.html"):
        text = _page_text(page)
        assert "Table: residents_harmonised" in text, page
        assert "Instrument: residents" in text and "Waves: ex_ante_2017, ex_post_2023" in text
        for name, sha in files.items():
            assert f"File: {name} SHA-256: {sha}" in text, (page, name)
    assert "Data asset: delivery_probe" in _page_text(result)
    stored = json.loads(next((gx_runner.gx_root() / "gx").rglob("run-h/*/*.json")).read_text())
    assert stored["meta"][gx_runner.DELIVERY]["files"] == [
        {"name": n, "sha256": s} for n, s in files.items()
    ]


def test_every_result_page_of_a_run_names_the_files_it_judged(pipeline_run, codebook):
    folder, _, result = pipeline_run
    delivered = {p.name: sha256_of(p) for p in (folder / "raw").rglob("*") if p.is_file()}
    site = folder / "var" / "reports" / "data_docs"
    pages = sorted((site / "validations").rglob(f"{result.run_id}/*/*.html"))
    assert len(pages) == 36  # 12 validated tables × 2 suites, 6 harmonised × 2
    for page in pages:
        text = _page_text(page)
        named = dict(re.findall(r"File: (\S+) SHA-256: ([0-9a-f]{64})", text))
        assert named and all(delivered[name] == sha for name, sha in named.items()), page
        instrument = re.search(r"Instrument: (\w+)", text).group(1)
        waves = re.search(r"Waves?: ([\w, ]+?) File:", text).group(1).split(", ")
        assert {codebook.instruments[instrument].files[w].name for w in waves} == set(named)
        assert "Data asset: None" not in text
