"""Make the GX Data Docs site work offline.

GX's pages load Bootstrap, jQuery, Font Awesome, bootstrap-table and Vega from public CDNs;
without a network they render unstyled and without charts. The assets are vendored beside this
module (``data_docs_vendor/``, with licences and a manifest of the URLs they replace); this
module copies them into the site and points every page at its local copy.

GX's tags for Popper and Bootstrap's script carry Subresource Integrity (``integrity`` with
``crossorigin="anonymous"``). A browser checks those with a CORS request, which a page opened
from disk cannot make: Chromium refuses both scripts, and the index's tabs and the pages' "Show
more info" do nothing. The check is made here instead, when a page is pointed at the local
copy (the copy must have the hash GX declares), and the two attributes are dropped.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path

VENDOR_DIR = Path(__file__).parent / "data_docs_vendor"
SITE_VENDOR = Path("static") / "vendor"
SITE_IMAGES = Path("static") / "images"
# GX loads its logo from a remote bucket with the build time and the data context id in the
# query string; the site already holds the same image locally.
_REMOTE_IMAGE = re.compile(
    r'src="https?://[^"]*/([A-Za-z0-9_.-]+\.(?:png|svg|gif|ico))(?:\?[^"]*)?"'
)
_EXTERNAL = re.compile(r'<(?:script|link|img)\b[^>]*?(?:src|href)="(https?://[^"]+)"', re.S)
_TAG = re.compile(r"<(?:script|link)\b[^>]*>", re.S)
_INTEGRITY = re.compile(r'\s+integrity="([^"]*)"')
_CROSSORIGIN = re.compile(r'\s+crossorigin(?:="[^"]*")?')
# What make_offline does to a page, as a version kept in the site: a site whose pages were made
# offline by an earlier version has every page rewritten once (2: integrity checked here and
# dropped, so that the scripts load from disk).
REWRITE_VERSION = "2"
_STAMP = "OFFLINE_VERSION"


class IntegrityError(ValueError):
    """A vendored file is not the one a page declares by its Subresource Integrity hash."""


def vendored_assets() -> dict[str, str]:
    """CDN URL → path of its local copy inside the vendor folder."""
    manifest = json.loads((VENDOR_DIR / "MANIFEST.json").read_text(encoding="utf-8"))
    return {url: asset["path"] for url, asset in manifest["assets"].items()}


def _local_image(match: re.Match, prefix: str, images: set[str]) -> str:
    name = match.group(1)
    return f'src="{prefix}/{name}"' if name in images else match.group(0)


def _digest(path: Path, algorithm: str) -> str:
    return base64.b64encode(hashlib.new(algorithm, path.read_bytes()).digest()).decode()


def _without_integrity(tag: str, page: Path, prefix: str) -> str:
    """A script or stylesheet tag pointing at a vendored copy, less ``integrity`` and
    ``crossorigin``, once the copy is shown to have the hash the tag declares."""
    local = re.search(rf'(?:src|href)="{re.escape(prefix)}/([^"]+)"', tag)
    if local is None:
        return tag
    declared = _INTEGRITY.search(tag)
    if declared:
        path = page.parent / prefix / local.group(1)
        hashes = [h.split("-", 1) for h in declared.group(1).split()]
        if not any(_digest(path, algorithm) == value for algorithm, value in hashes):
            raise IntegrityError(
                f"{page}: the vendored {local.group(1)} does not have the hash the page "
                f"declares ({declared.group(1)})"
            )
    return _CROSSORIGIN.sub("", _INTEGRITY.sub("", tag))


def make_offline(site: Path, since: float) -> list[Path]:
    """Copy the vendored assets into ``site`` (unless they are there already) and rewrite the
    pages written at or after ``since`` (a time stamp) to use them: every page of the site, the
    first time this version of the rewriting meets it."""
    target = site / SITE_VENDOR
    manifest = (VENDOR_DIR / "MANIFEST.json").read_bytes()
    copied = target / "MANIFEST.json"
    if not copied.exists() or copied.read_bytes() != manifest:
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(VENDOR_DIR, target)
    stamp = target / _STAMP
    if not stamp.exists() or stamp.read_text(encoding="utf-8") != REWRITE_VERSION:
        since = 0.0
    assets = sorted(vendored_assets().items(), key=lambda item: -len(item[0]))
    images = {p.name for p in (site / SITE_IMAGES).glob("*")}
    rewritten = []
    for page in site.rglob("*.html"):
        if page.stat().st_mtime < since:
            continue
        text = page.read_text(encoding="utf-8")
        prefix = os.path.relpath(target, page.parent)
        image_prefix = os.path.relpath(site / SITE_IMAGES, page.parent)
        new = text
        for url, path in assets:
            new = new.replace(f'"{url}"', f'"{prefix}/{path}"')
        new = _REMOTE_IMAGE.sub(lambda m, p=image_prefix: _local_image(m, p, images), new)
        new = _TAG.sub(lambda m, p=page, x=prefix: _without_integrity(m.group(0), p, x), new)
        if new != text:
            page.write_text(new, encoding="utf-8")
            rewritten.append(page)
    stamp.write_text(REWRITE_VERSION, encoding="utf-8")
    return rewritten


def external_references(site: Path) -> list[tuple[Path, str]]:
    """Scripts, stylesheets and images a page would still fetch from the network (none)."""
    found = []
    for page in site.rglob("*.html"):
        found += [(page, url) for url in _EXTERNAL.findall(page.read_text(encoding="utf-8"))]
    return found


def publish(run_name: str) -> Path:
    """Render one run's results and the index, and make the new pages work offline. Pages of
    earlier runs are kept as they were, so a run costs the same after a year of history as on
    the first day."""
    from sdpipeline.validation import gx_runner

    # file times come from a coarser clock than time.time(): a margin keeps a page written in
    # the same tick; rewriting a page that is already offline changes nothing
    started = time.time() - 2.0
    index = gx_runner.build_data_docs(run_name)
    make_offline(index.parent, since=started)
    return index
