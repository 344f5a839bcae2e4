"""The HTML report's charts: Vega-Lite specs rendered to static SVG by vl-convert,
so they work offline, print, and need no browser or network to be made.

Each chart has one unit on its one axis, and its rows are labelled in full: a label is
wrapped onto lines, never cut, and a figure the report cannot show (suppressed, not asked)
is said on its row's label rather than drawn as nothing. Legends and titles are the page's
own HTML, which wraps; the SVG holds the plot and its axes, at most ``WIDTH`` pixels wide.

The text is laid out with the report's own typeface (``report_assets/``), which the page
embeds, so the browser draws exactly the glyphs vl-convert measured. Rendering is
deterministic: the same rows give the same bytes, whatever was rendered before in the process
(vl-convert numbers clip paths per process; they are renumbered per chart here).

Drawing is most of the report's time (about 0.14 s of CPU a chart, most of it vl-convert
measuring text in the report's typeface), and a refresh redraws the same charts: what
vl-convert drew is kept in a folder of its own (``Batch(cache=...)``), named by the SHA-256 of
everything that decides its bytes: the full spec with its data, vl-convert's version and the
typeface's files. A chart whose figures changed has a new name and is drawn; charts no longer
on the page are removed from the folder, which so holds one report's charts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

from sdpipeline.codebook import Label

THREADS = 2
FONT = "DejaVu Sans"
FONT_SIZE = 11
LINE_HEIGHT = 14
WIDTH = 680
"""Pixels: A4's printable width at 96 px per inch, less the page's margins (report_html)."""
LABEL_CHARACTERS = 46
"""Characters per line of a row label: the labels take about half of ``WIDTH``."""
# colour and shape of each series, in order; distinguishable in grey print as well
PALETTE = ("#1f4e79", "#c55a11", "#548235", "#7030a0", "#bf9000", "#2e75b6", "#7f7f7f")
SHAPES = ("circle", "square", "triangle-up", "diamond", "cross", "triangle-down", "circle")
VERDICT_COLOURS = {
    "improved": "#2e7d32",
    "worsened": "#c62828",
    "increased": "#1f4e79",
    "decreased": "#1f4e79",
}
NO_VERDICT = "#595959"
SIZES = (130, 60, 25)
"""Areas of the series' symbols, in order (square pixels)."""


@dataclass(frozen=True)
class Series:
    """One set of points in a dot chart (a wave, or a survey in a wave), as its key names it."""

    key: str
    label: Label
    colour: str
    shape: str


def series(
    keys: list[tuple[str, Label]], groups: list[tuple[int, int]] | None = None
) -> list[Series]:
    """The series' colours and shapes: each its own, or by ``groups`` (colour, shape) index
    pairs, e.g. a colour per survey and a shape per wave."""
    groups = groups or [(i, i) for i in range(len(keys))]
    return [
        Series(key, label, PALETTE[c % len(PALETTE)], SHAPES[h % len(SHAPES)])
        for (key, label), (c, h) in zip(keys, groups, strict=True)
    ]


@dataclass(frozen=True)
class Row:
    """A row of a chart: its label (Latvian, English, each wrapped), its values by series,
    why any series has none (one line each, e.g. '2017: suppressed'), and which values are
    flagged (low reliability: drawn hollow)."""

    label: Label
    values: dict[str, float] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    flagged: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Change:
    """A row of a change chart: the change and its 95 % CI, with its verdict, or why not."""

    label: Label
    change: float | None
    low: float | None
    high: float | None
    verdict: str | None
    missing: tuple[str, ...] = ()


def wrap(text: str, width: int = LABEL_CHARACTERS) -> list[str]:
    return textwrap.wrap(text, width, break_long_words=False) or [""]


def label_lines(label: Label, missing: tuple[str, ...] = (), width: int = LABEL_CHARACTERS) -> str:
    """A row's label as the axis draws it: lines joined by newlines, Latvian first, then
    English where it differs, then what the row cannot show."""
    lines = wrap(label.lv, width)
    if label.en != label.lv:
        lines += wrap(label.en, width)
    for reason in missing:
        lines += wrap(f"▪ {reason}", width)
    return "\n".join(lines)


FONT_FOLDER = resources.files("sdpipeline") / "report_assets" / "dejavu"


@cache
def _fonts_registered() -> bool:
    import vl_convert

    vl_convert.register_font_directory(str(FONT_FOLDER))
    return True


@cache
def _renderer() -> str:
    """What besides the spec decides a drawing's bytes: vl-convert's version and the
    typeface's files."""
    from importlib.metadata import version

    fonts = hashlib.sha256()
    for font in sorted(FONT_FOLDER.iterdir(), key=lambda f: f.name):
        if font.name.endswith(".ttf"):
            fonts.update(font.name.encode() + font.read_bytes())
    return f"vl-convert {version('vl-convert-python')}; fonts {fonts.hexdigest()}"


def _axis(labels: bool = True) -> dict:
    return {
        "labelFont": FONT,
        "titleFont": FONT,
        "labelFontSize": FONT_SIZE - 1,
        "titleFontSize": FONT_SIZE,
        "titleFontWeight": "normal",
        "labelLimit": 0,
        "titleLimit": 0,
        "labelLineHeight": LINE_HEIGHT,
        "labels": labels,
    }


@dataclass(frozen=True)
class Chart:
    """A chart to draw: its Vega-Lite spec, and what a screen reader says of it."""

    spec: dict
    title: str


@dataclass
class Batch:
    """The charts of a page, drawn together: each stands in the page as a placeholder until
    ``fill`` puts its SVG there. vl-convert draws outside Python's lock, so two threads draw
    two charts at once (a page's charts take most of the report's time). With a ``cache``
    folder, a chart drawn before is taken from it (see the module's docstring)."""

    charts: list[Chart] = field(default_factory=list)
    cache: Path | None = None

    def add(self, chart: Chart) -> str:
        self.charts.append(chart)
        return f"<!--chart{len(self.charts)}-->"

    def fill(self, page: str) -> str:
        names = [f"chart{number}" for number in range(1, len(self.charts) + 1)]
        with ThreadPoolExecutor(THREADS) as pool:
            svgs = list(pool.map(lambda c, n: render(c, n, self.cache), self.charts, names))
        for name, svg in zip(names, svgs, strict=True):
            page = page.replace(f"<!--{name}-->", svg)
        if self.cache is not None:
            kept = {f"{drawing_key(_full_spec(c))}.svg" for c in self.charts}
            for old in self.cache.glob("*.svg"):
                if old.name not in kept:
                    old.unlink(missing_ok=True)
        return page


def _full_spec(chart: Chart) -> dict:
    return {
        **chart.spec,
        "background": "white",
        # the marks' own descriptions are left out: the chart's title speaks for it, and the
        # figures are in the tables
        "config": {
            "font": FONT,
            "view": {"stroke": None},
            "mark": {"aria": False},
            "axis": {"aria": False},
        },
    }


def drawing_key(spec: dict) -> str:
    """The SHA-256 naming a drawing: of its full spec and of what draws it (``_renderer``)."""
    text = json.dumps(spec, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(f"{_renderer()}\n{text}".encode()).hexdigest()


def draw(spec: dict, cache: Path | None = None) -> str:
    """vl-convert's SVG of ``spec``, from ``cache`` when it was drawn before. A drawing is
    written under a temporary name and renamed, so a killed run leaves no half a chart."""
    path = None if cache is None else cache / f"{drawing_key(spec)}.svg"
    if path is not None and path.exists():
        return path.read_text(encoding="utf-8")
    import vl_convert

    _fonts_registered()
    svg = vl_convert.vegalite_to_svg(spec)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        partial.write_text(svg, encoding="utf-8")
        partial.replace(path)
    return svg


def render(chart: Chart, name: str, cache: Path | None = None) -> str:
    """A chart as an SVG element of the page; ``name`` makes its ids its own."""
    svg = draw(_full_spec(chart), cache)
    ids = dict.fromkeys(re.findall(r'id="([^"]+)"', svg))
    for number, old in enumerate(ids, start=1):
        svg = svg.replace(f'id="{old}"', f'id="{name}-{number}"')
        svg = svg.replace(f"url(#{old})", f"url(#{name}-{number})")
    opening = re.match(r"<svg[^>]*>", svg).group(0)
    attributes = f' role="img" aria-label="{_attribute(chart.title)}" class="chart"'
    own = re.sub(r'\sclass="[^"]*"', "", opening[:-1]) + attributes + ">"
    return own + svg[len(opening) :]


def _attribute(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _step(rows: list[str]) -> int:
    """The band each row gets: as tall as its longest label."""
    lines = max((r.count("\n") + 1 for r in rows), default=1)
    return lines * LINE_HEIGHT + 8


def _rows_axis(labels: list[str]) -> dict:
    """The rows' band axis: every label in full, on as many lines as it has."""
    return {
        "field": "row",
        "type": "nominal",
        "sort": labels,
        "title": None,
        "scale": {"domain": labels},
        "axis": {
            **_axis(),
            "labelExpr": "split(datum.label, '\\n')",
            "labelBaseline": "middle",
            "grid": True,
            "gridColor": "#eeeeee",
            "ticks": False,
        },
    }


def _value_axis(
    field: str, title: Label, zero: bool, width: int, domain: tuple[float, float] | None = None
) -> dict:
    """The value axis: a tick about every 70 pixels, so that no two numbers touch."""
    scale: dict = {"zero": zero, "nice": True}
    if domain is not None:
        scale["domain"] = list(domain)
    return {
        "field": field,
        "type": "quantitative",
        "title": _title(title, width),
        "scale": scale,
        "axis": {
            **_axis(),
            "grid": True,
            "gridColor": "#eeeeee",
            "tickCount": max(2, width // 70),
            "labelOverlap": True,
            "labelFlush": True,
        },
    }


def _view(labels: list[str], width: int, layers: list[dict]) -> dict:
    """Layers over the rows, the whole chart (labels and axis titles included) exactly
    ``width`` wide."""
    return {
        "width": width,
        "height": {"step": _step(labels)},
        "autosize": {"type": "fit-x", "contains": "padding"},
        "layer": layers,
    }


def dot_chart(rows: list[Row], keys: list[Series], axis: Label, width: int = WIDTH) -> Chart:
    """Rows (a label each) against one value axis, a point per series joined by a line; a
    row's missing series are named on its label."""
    labels = [label_lines(r.label, r.missing, _characters(width)) for r in rows]
    points = [
        {
            "row": label,
            "series": s.key,
            "value": float(row.values[s.key]),
            "flagged": s.key in row.flagged,
        }
        for label, row in zip(labels, rows, strict=True)
        for s in keys
        if row.values.get(s.key) is not None
    ]
    y = _rows_axis(labels)
    domain = [s.key for s in keys]
    encoding = {
        "y": y,
        "x": _value_axis("value", axis, zero=False, width=width),
        "color": {
            "field": "series",
            "type": "nominal",
            "scale": {"domain": domain, "range": [s.colour for s in keys]},
            "legend": None,
        },
        "shape": {
            "field": "series",
            "type": "nominal",
            "scale": {"domain": domain, "range": [s.shape for s in keys]},
            "legend": None,
        },
        # each series a size smaller than the one before, drawn over it: equal values show
        # as nested symbols, not one hiding the other
        "size": {
            "field": "series",
            "type": "nominal",
            "scale": {"domain": domain, "range": [SIZES[i % len(SIZES)] for i in range(len(keys))]},
            "legend": None,
        },
    }
    layers = [
        {
            "data": {"values": points},
            "mark": {"type": "rule", "color": "#bbbbbb", "strokeWidth": 1.5},
            "encoding": {
                "y": y,
                "x": {"field": "value", "type": "quantitative", "aggregate": "min"},
                "x2": {"field": "value", "aggregate": "max"},
            },
        },
        {
            "data": {"values": [p for p in points if not p["flagged"]]},
            "mark": {"type": "point", "filled": True, "opacity": 1},
            "encoding": encoding,
        },
        {
            "data": {"values": [p for p in points if p["flagged"]]},
            "mark": {"type": "point", "filled": False, "opacity": 1, "strokeWidth": 2},
            "encoding": encoding,
        },
    ]
    return Chart(_view(labels, width, layers), f"{axis.en}: " + "; ".join(r.label.en for r in rows))


def change_chart(
    rows: list[Change],
    axis: Label,
    width: int = WIDTH,
    domain: tuple[float, float] | None = None,
) -> Chart:
    """Each row's change as a point with its 95 % confidence interval, coloured by its
    verdict, against a line at zero; a row without a change says why on its label.
    ``domain``: the axis's range, for charts in one unit to share it."""
    labels = [label_lines(r.label, r.missing, _characters(width)) for r in rows]
    shown = [
        {
            "row": label,
            "change": float(r.change),
            "low": float(r.low),
            "high": float(r.high),
            "verdict": r.verdict or "",
        }
        for label, r in zip(labels, rows, strict=True)
        if r.change is not None and r.low is not None and r.high is not None
    ]
    verdicts = sorted({p["verdict"] for p in shown}) or [""]
    colour = {
        "field": "verdict",
        "type": "nominal",
        "scale": {
            "domain": verdicts,
            "range": [VERDICT_COLOURS.get(v, NO_VERDICT) for v in verdicts],
        },
        "legend": None,
    }
    y = _rows_axis(labels)
    layers = [
        {
            "data": {"values": [{"row": label} for label in labels]},
            "mark": {"type": "tick", "opacity": 0},
            "encoding": {"y": y},
        },
        {
            "data": {"values": [{"zero": 0.0}]},
            "mark": {"type": "rule", "color": "#7f7f7f"},
            "encoding": {"x": {"field": "zero", "type": "quantitative"}},
        },
        {
            "data": {"values": shown},
            "mark": {"type": "rule", "strokeWidth": 2},
            "encoding": {
                "y": y,
                "x": {"field": "low", "type": "quantitative"},
                "x2": {"field": "high"},
                "color": colour,
            },
        },
        {
            "data": {"values": shown},
            "mark": {"type": "point", "filled": True, "size": 60, "opacity": 1},
            "encoding": {
                "y": y,
                "x": _value_axis("change", axis, zero=True, width=width, domain=domain),
                "color": colour,
            },
        },
    ]
    return Chart(_view(labels, width, layers), f"{axis.en}: " + "; ".join(r.label.en for r in rows))


def _title(title: Label, width: int) -> list[str]:
    """An axis title on lines no wider than the plot under it: Latvian, then English."""
    text = [title.lv] if title.lv == title.en else [title.lv, title.en]
    return [line for part in text for line in wrap(part, _characters(width))]


def _characters(width: int) -> int:
    """Characters per label line for a chart ``width`` pixels wide: labels take at most about
    half of it, at roughly 6.5 pixels a character."""
    return max(12, min(LABEL_CHARACTERS, int(width * 0.45 / 6.5)))


FLAGGED = Label(
    "tukšs simbols: zema ticamība vai cita piezīme", "hollow: low reliability or another note"
)


def legend(keys: list[Series], flagged: bool = False) -> str:
    """The series' key as HTML (it wraps with the page): each symbol as the chart draws it;
    ``flagged``: and what a hollow symbol means."""
    items = [f'<span class="key">{_symbol(s.shape, s.colour)}{_text(s.label)}</span>' for s in keys]
    if flagged:
        items.append(f'<span class="key">{_symbol("circle", "none")}{_text(FLAGGED)}</span>')
    return f'<p class="legend">{"".join(items)}</p>'


def verdict_legend(verdicts: list[tuple[str, Label]]) -> str:
    items = [
        f'<span class="key">{_symbol("circle", VERDICT_COLOURS.get(key, NO_VERDICT))}'
        f"{_text(label)}</span>"
        for key, label in verdicts
    ]
    return f'<p class="legend">{"".join(items)}</p>'


def _text(label: Label) -> str:
    import html

    text = label.lv if label.lv == label.en else f"{label.lv} / {label.en}"
    return html.escape(text)


def _symbol(shape: str, colour: str) -> str:
    paths = {
        "circle": '<circle cx="6" cy="6" r="4.5"/>',
        "square": '<rect x="2" y="2" width="8" height="8"/>',
        "triangle-up": '<path d="M6 1.5L10.5 10H1.5Z"/>',
        "triangle-down": '<path d="M6 10.5L10.5 2H1.5Z"/>',
        "diamond": '<path d="M6 1L11 6L6 11L1 6Z"/>',
        "cross": '<path d="M4.5 1h3v3.5h3.5v3h-3.5v3.5h-3v-3.5h-3.5v-3h3.5Z"/>',
    }
    paint = (
        f'fill="{colour}"' if colour != "none" else 'fill="none" stroke="#555" stroke-width="1.5"'
    )
    return (
        f'<svg class="symbol" width="12" height="12" viewBox="0 0 12 12" aria-hidden="true" '
        f"{paint}>{paths[shape]}</svg>"
    )
