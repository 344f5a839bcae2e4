"""An intruder who wants back the figures the report hides, written apart from the pipeline's
own disclosure code so that it checks it rather than repeats it.

It knows what is published (the warehouse's indicator tables, or the report's files), the
weighted base of every cell (an over-strong assumption: the number of services or adults per
region is public, the exact weighted count of those who answered a question is not), and the
range a figure can take. For every hidden cell it solves two linear programs: the smallest and
the largest value consistent with all of that, given that a national weighted total is the sum
of the regions' and of the two municipality types', and that a published change is the later
wave less the earlier.

``attack_whole_numbers`` adds what linear programming cannot see: a share of n respondents who
weigh the same (a census weighted within regions, an unweighted survey) is 100·k/n with k whole.
It tries every k of the hidden cells of a wave against the published national figure.

``attack_shift_share`` adds the split of a national change into its within and composition
parts, which ties the hidden cells of the two waves together through the cells of region ×
municipality type.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from scipy.optimize import linprog

from sdpipeline import effectiveness, report_html
from sdpipeline import report_tables as rt
from sdpipeline.codebook import Codebook
from sdpipeline.indicators import Catalogue, values
from sdpipeline.reference import ReferenceData

PARTS = ("region", "municipality_type")


@dataclass(frozen=True)
class Finding:
    indicator_id: str
    wave: str
    breakdown: str
    domain: str
    true: float
    low: float
    high: float
    required: float

    @property
    def width(self) -> float:
        return self.high - self.low

    @property
    def protected(self) -> bool:
        return self.width >= self.required - 1e-6


class _Tables(HTMLParser):
    """Cell texts of every <table> in a page, row by row (standard library only)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append("\n")

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None


def harmonised(
    warehouse: Path, codebook: Codebook
) -> tuple[dict[str, pd.DataFrame], ReferenceData]:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        tables = {
            name: connection.execute(f"SELECT * FROM harmonised.{name}").df()
            for name in codebook.instruments
        }
        return tables, ReferenceData.from_warehouse(connection)


def truth_and_bases(
    tables: dict[str, pd.DataFrame], catalogue: Catalogue, codebook: Codebook, ref: ReferenceData
) -> pd.DataFrame:
    """Every cell's true value and weighted base (Σ w·x of those in its base), recomputed from
    the harmonised rows, and ``grid``: 100/n for a share of n respondents of equal weight (its
    value is a whole multiple of it), else 0."""
    cube = effectiveness.estimate_cube(tables, catalogue, codebook, ref)
    bases, grids = [], []
    for row in cube.itertuples():
        indicator = catalogue.get(row.indicator_id)
        table = tables[indicator.instrument]
        y, x = values(indicator, table, codebook, ref)
        inside = (table["wave"] == row.wave).to_numpy() & ~np.isnan(y) & ~np.isnan(x)
        if row.breakdown != "national":
            inside &= (table[row.breakdown].astype(str) == str(row.domain)).to_numpy()
        bases.append(float((table["weight"].to_numpy() * x)[inside].sum()))
        weights = table["weight"].to_numpy()[inside]
        same = len(weights) > 0 and bool(np.all(weights == weights[0]))
        grids.append(100.0 / inside.sum() if same and indicator.statistic == "proportion" else 0.0)
    return cube.assign(base=bases, grid=grids, domain=cube["domain"].astype(str))


def known_range(indicator, codebook: Codebook) -> tuple[float, float]:
    if indicator.statistic in ("proportion", "index"):
        return 0.0, 100.0
    if indicator.statistic == "mean":
        return codebook.instruments[indicator.instrument].variable(indicator.variable).value_range
    return indicator.range


def attack(
    levels: dict[tuple[str, str, str, str], float],
    changes: dict[tuple[str, str, str], float],
    cells: pd.DataFrame,
    catalogue: Catalogue,
    codebook: Codebook,
    rounding: float,
) -> list[Finding]:
    """``levels``: (indicator, wave, breakdown, domain) → the published figure, NaN where hidden;
    ``changes``: (indicator, earlier wave, later wave, breakdown, domain) → the published
    change, NaN where hidden; ``cells``: ``truth_and_bases``. Every hidden level with the
    interval the intruder gets."""
    findings = []
    for indicator_id, group in cells[cells["base"] > 0].groupby("indicator_id", sort=False):
        indicator = catalogue.get(indicator_id)
        keys = [(indicator_id, r.wave, r.breakdown, r.domain) for r in group.itertuples()]
        position = {key: i for i, key in enumerate(keys)}
        base = dict(zip(keys, group["base"], strict=True))
        true = dict(zip(keys, group["estimate"], strict=True))
        low, high = known_range(indicator, codebook)
        shown = {key: levels.get(key, np.nan) for key in keys}
        if not any(np.isnan(v) for v in shown.values()):
            continue
        bounds = [
            (low, high)
            if np.isnan(shown[k])
            else (shown[k] - rounding / 2, shown[k] + rounding / 2)
            for k in keys
        ]
        equalities, inequalities, right = [], [], []
        for wave in codebook.waves:
            national = (indicator_id, wave, "national", "LV")
            for part in PARTS:
                members = [k for k in keys if k[1] == wave and k[2] == part]
                if national not in position or not members:
                    continue
                row = np.zeros(len(keys))
                row[position[national]] = base[national]
                for k in members:
                    row[position[k]] -= base[k]
                equalities.append(row / base[national])
        for (change_id, first, last, breakdown, domain), value in changes.items():
            ante, post = (
                (indicator_id, first, breakdown, domain),
                (indicator_id, last, breakdown, domain),
            )
            if (
                change_id != indicator_id
                or np.isnan(value)
                or ante not in position
                or post not in position
            ):
                continue
            row = np.zeros(len(keys))
            row[position[post]], row[position[ante]] = 1.0, -1.0
            inequalities += [row, -row]  # post − ante within the printed change ± half a unit
            right += [value + rounding / 2, -(value - rounding / 2)]
        national_true = {
            w: true.get((indicator_id, w, "national", "LV"), np.nan) for w in codebook.waves
        }
        for key in keys:
            if key not in levels or not np.isnan(shown[key]):
                continue  # published, or not in these tables at all (then only unknown)
            ends = []
            for sense in (1.0, -1.0):
                objective = np.zeros(len(keys))
                objective[position[key]] = sense
                result = linprog(
                    objective,
                    A_eq=np.array(equalities) if equalities else None,
                    b_eq=np.zeros(len(equalities)) if equalities else None,
                    A_ub=np.array(inequalities) if inequalities else None,
                    b_ub=np.array(right) if inequalities else None,
                    bounds=bounds,
                    method="highs",
                )
                assert result.status == 0, (key, result.message)
                ends.append(sense * result.fun)
            width = catalogue.disclosure.protection[indicator.statistic]
            if indicator.statistic in ("mean", "ratio"):
                width *= abs(national_true[key[1]])
            findings.append(
                Finding(
                    *key, true=true[key], low=ends[0], high=ends[1], required=min(width, high - low)
                )
            )
    return findings


def attack_whole_numbers(
    levels: dict[tuple[str, str, str, str], float],
    cells: pd.DataFrame,
    catalogue: Catalogue,
    rounding: float,
    most: int = 5_000_000,
) -> list[Finding]:
    """Every hidden cell of a wave whose hidden domains are all shares on a grid (``cells``'
    ``grid``), with the range of values left once every whole-number combination of them is
    tried against the national figure (as published, or, when hidden, as each breakdown gives
    it, the breakdowns agreeing). At most ``most`` combinations per wave."""
    findings = []
    for (indicator_id, wave), group in cells[cells["base"] > 0].groupby(
        ["indicator_id", "wave"], sort=False
    ):
        keys = [(indicator_id, wave, r.breakdown, r.domain) for r in group.itertuples()]
        rows = dict(zip(keys, group.itertuples(), strict=True))
        hidden = [k for k in keys if k in levels and np.isnan(levels[k])]
        national = (indicator_id, wave, "national", "LV")
        parts = [k for k in hidden if k != national]
        if not parts or national not in rows or any(rows[k].grid <= 0 for k in parts):
            continue
        grids = [rows[k].grid * np.arange(round(100 / rows[k].grid) + 1) for k in parts]
        if np.prod([len(g) for g in grids], dtype=float) > most:
            continue
        combos = np.stack([g.ravel() for g in np.meshgrid(*grids, indexing="ij")], axis=1)
        total = rows[national].base
        through = []  # the national figure each breakdown gives, per combination
        for part in PARTS:
            members = [k for k in keys if k[2] == part]
            if not members:
                continue
            known = sum(rows[k].base * levels[k] for k in members if k not in parts)
            spread = sum(rows[k].base for k in members if k not in parts) * rounding / 2
            weights = np.array([rows[k].base if k[2] == part else 0.0 for k in parts])
            middle = (known + combos @ weights) / total
            through.append((middle - spread / total, middle + spread / total))
        ok = np.ones(len(combos), dtype=bool)
        if national in hidden:
            ok &= (
                np.max([lo for lo, _ in through], axis=0)
                <= np.min([hi for _, hi in through], axis=0) + 1e-9
            )
        else:
            shown = levels[national]
            for lo, hi in through:
                ok &= (lo <= shown + rounding / 2 + 1e-9) & (hi >= shown - rounding / 2 - 1e-9)
        indicator = catalogue.get(indicator_id)
        width = catalogue.disclosure.protection[indicator.statistic]
        for j, key in enumerate(parts):
            findings.append(
                Finding(
                    *key,
                    true=rows[key].estimate,
                    low=combos[ok, j].min(),
                    high=combos[ok, j].max(),
                    required=width,
                )
            )
        if national in hidden:
            ends = np.concatenate([np.stack([lo[ok], hi[ok]]) for lo, hi in through])
            findings.append(
                Finding(
                    *national,
                    true=rows[national].estimate,
                    low=ends.min(),
                    high=ends.max(),
                    required=width,
                )
            )
    return findings


def attack_shift_share(
    tables: dict[str, pd.DataFrame],
    estimates: pd.DataFrame,
    decomposition: pd.DataFrame,
    catalogue: Catalogue,
    codebook: Codebook,
    ref: ReferenceData,
) -> tuple[list[Finding], int]:
    """What the published split of a national change adds. The within part is Σ (p'_c −
    p_c)(s_c + s'_c)/2 over the cells of region × municipality type (× age group), so it ties
    the two waves' hidden cells together. The intruder knows every such cell's weight (more
    than is published), every published figure of both waves and the within part, and solves
    for each hidden regional or type cell its least and greatest value over the cells' values.
    Returns the findings and how many hidden cells the split narrowed."""
    findings, narrowed = [], 0
    shown = estimates.assign(domain=estimates["domain"].astype(str))
    for split in decomposition[~decomposition["suppressed"]].itertuples():
        indicator = catalogue.get(split.indicator_id)
        waves = (split.wave_before, split.wave_after)
        figures = shown[(shown["indicator_id"] == indicator.id) & shown["wave"].isin(waves)]
        hidden = figures[figures["suppressed"] & (figures["breakdown"] != "national")]
        if hidden.empty:
            continue
        table = tables[indicator.instrument]
        groups = split.groups.split(" × ")
        y, _ = values(indicator, table, codebook, ref)
        y = np.asarray(y, dtype=float) * (100.0 if indicator.statistic == "proportion" else 1.0)
        counted = ~np.isnan(y) & table["wave"].isin(waves).to_numpy()
        rows = table.loc[counted, ["wave", *groups]].astype(str)
        rows["w"] = table["weight"].to_numpy(dtype=float)[counted]
        rows["wy"] = rows["w"] * y[counted]
        cells = rows.groupby(["wave", *groups]).sum()
        keys = list(cells.index)
        weight = cells["w"].to_numpy()
        truth = cells["wy"].to_numpy() / weight

        known = [
            (_mean_of(keys, weight, groups, c.wave, c.breakdown, c.domain), c.estimate)
            for c in figures[~figures["suppressed"]].itertuples()
        ]
        total = {w: weight[[k[0] == w for k in keys]].sum() for w in waves}
        within = np.zeros(len(keys))
        for i, k in enumerate(keys):
            later = (waves[1], *k[1:])
            if k[0] == waves[0] and later in keys:
                j = keys.index(later)
                share = (weight[i] / total[waves[0]] + weight[j] / total[waves[1]]) / 2
                within[i] -= share
                within[j] += share
        bounds = [known_range(indicator, codebook)] * len(keys)
        for cell in hidden.itertuples():
            target = _mean_of(keys, weight, groups, cell.wave, cell.breakdown, cell.domain)
            widths = []
            for equations in (known, [*known, (within, split.within)]):
                a = np.array([e for e, _ in equations])
                b = np.array([v for _, v in equations])
                ends = []
                for sense in (1.0, -1.0):
                    result = linprog(sense * target, A_eq=a, b_eq=b, bounds=bounds)
                    assert result.status == 0, (indicator.id, cell, result.message)
                    ends.append(sense * result.fun)
                widths.append(ends)
            narrowed += widths[1][1] - widths[1][0] < widths[0][1] - widths[0][0] - 1e-6
            low, high = widths[1]
            required = catalogue.disclosure.protection[indicator.statistic]
            findings.append(
                Finding(
                    indicator.id,
                    cell.wave,
                    cell.breakdown,
                    cell.domain,
                    float(target @ truth),
                    low,
                    high,
                    min(required, bounds[0][1] - bounds[0][0]),
                )
            )
    return findings, narrowed


def _mean_of(
    keys: list[tuple], weight: np.ndarray, groups: list[str], wave: str, breakdown: str, domain: str
) -> np.ndarray:
    """The coefficients that give a published cell's figure from its cells' values."""
    inside = np.array(
        [
            k[0] == wave and (breakdown == "national" or k[1 + groups.index(breakdown)] == domain)
            for k in keys
        ]
    )
    return np.where(inside, weight, 0.0) / weight[inside].sum()


def from_warehouse(warehouse: Path) -> tuple[dict, dict]:
    """What the warehouse's indicator tables publish: (levels, changes)."""
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        estimates = connection.execute("SELECT * FROM indicators.estimates").df()
        changes = connection.execute("SELECT * FROM indicators.changes").df()
    levels = {
        (r.indicator_id, r.wave, r.breakdown, str(r.domain)): float(r.estimate)
        for r in estimates.itertuples()
    }
    moved = {
        (r.indicator_id, r.wave_before, r.wave_after, r.breakdown, str(r.domain)): float(
            r.difference
        )
        for r in changes.itertuples()
    }
    return levels, moved


def read_csv(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / f"{name}.csv", sep=";", decimal=",", encoding="utf-8-sig")


def from_report(tables: dict[str, pd.DataFrame], codebook: Codebook) -> tuple[dict, dict]:
    """What the report's headline and regional tables publish (as read from a file): a column
    per wave headed by its year, a change column per comparison headed by its years;
    (levels, changes)."""
    years = {str(spec.year): wave for wave, spec in codebook.waves.items()}
    compared = {
        f"Izmaiņas / Change {codebook.waves[c.before].year}→{codebook.waves[c.after].year}": (
            c.before,
            c.after,
        )
        for c in codebook.comparisons.values()
    }
    regions = {
        label.lv: str(code) for code, label in codebook.harmonised_scales["region6"].codes.items()
    }
    levels, moved = {}, {}
    for name, breakdown in (
        ("headline_indicators", "national"),
        ("indicators_by_region", "region"),
    ):
        for row in tables[name].to_dict("records"):
            # the HTML report heads a label's two languages as one column, a line each
            region = row.get(rt.REGION_LV, row.get(f"{rt.REGION_LV} / {rt.REGION_EN}"))
            domain = "LV" if breakdown == "national" else regions[str(region).splitlines()[0]]
            code = row["Kods / Code"]
            for year, wave in years.items():
                if year in row:
                    levels[(code, wave, breakdown, domain)] = _number(row[year])
            for column, (before, after) in compared.items():
                if column in row:
                    moved[(code, before, after, breakdown, domain)] = _number(row[column])
    return levels, moved


# What the HTML report writes in a figure's place when it publishes none.
UNPUBLISHED = {
    f"{label.lv} / {label.en}" for label in (report_html.SUPPRESSED, report_html.NOT_ASKED)
}


def _number(value: object) -> float:
    if value is None or value == "" or (isinstance(value, float) and np.isnan(value)):
        return np.nan
    if value in UNPUBLISHED:
        return np.nan
    return float(str(value).replace(",", "."))


def html_tables(path: Path) -> list[pd.DataFrame]:
    """The <table>s of the HTML report as frames (header row first)."""
    parser = _Tables()
    parser.feed(path.read_text(encoding="utf-8"))
    return [pd.DataFrame(rows[1:], columns=rows[0]) for rows in parser.tables if rows]


def exposed(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if not f.protected]


def count_by(findings: list[Finding]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for finding in findings:
        counts[finding.indicator_id] += 1
    return dict(counts)
