"""Make the GX Data Docs site work offline.

GX's pages load Bootstrap, jQuery, Font Awesome, bootstrap-table and Vega from public CDNs;
without a network they render unstyled and without charts. The assets are vendored beside this
module (``data_docs_vendor/``, with licences and a manifest of the URLs they replace); this
module copies them into the site and points every page at its local copy.
"""

from __future__ import annotations

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


def vendored_assets() -> dict[str, str]:
    """CDN URL → path of its local copy inside the vendor folder."""
    manifest = json.loads((VENDOR_DIR / "MANIFEST.json").read_text(encoding="utf-8"))
    return {url: asset["path"] for url, asset in manifest["assets"].items()}


def _local_image(match: re.Match, prefix: str, images: set[str]) -> str:
    name = match.group(1)
    return f'src="{prefix}/{name}"' if name in images else match.group(0)


def make_offline(site: Path, since: float) -> list[Path]:
    """Copy the vendored assets into ``site`` (unless they are there already) and rewrite the
    pages written at or after ``since`` (a time stamp) to use them."""
    target = site / SITE_VENDOR
    manifest = (VENDOR_DIR / "MANIFEST.json").read_bytes()
    copied = target / "MANIFEST.json"
    if not copied.exists() or copied.read_bytes() != manifest:
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(VENDOR_DIR, target)
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
        if new != text:
            page.write_text(new, encoding="utf-8")
            rewritten.append(page)
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
