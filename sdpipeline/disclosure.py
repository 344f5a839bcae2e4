"""Statistical disclosure control, applied the same way to every output (the catalogue's
``disclosure:``).

* Primary: a cell based on fewer respondents than ``suppress_below`` is sensitive; so is a
  cell of a magnitude indicator (a mean or ratio of amounts) that a few respondents dominate
  ((n, k) and p % rules on the weighted amounts) or where everyone gave the same amount. One
  below ``low_reliability_below`` keeps its figures with a flag.
* Secondary: the indicator tables publish a national figure with its regions and its two
  municipality types, so a hidden cell would come back by subtraction. For each indicator and
  wave the cells and the relations an attacker knows (W·national = Σ W_r·region_r and
  W·national = W_state cities·state cities + W_novadi·novadi, W the weighted bases) go to
  ``suppression.protect``, which hides the cheapest further cells (cost: respondents; national
  figures practically never) so that every hidden cell keeps an interval at least the
  declared protection wide. A change is published only when both its waves are, so it adds no
  relation an attacker could use. A cell of equally weighted respondents goes with its grid
  (``grid_step``: a share of n is a whole multiple of 100/n), which the search and the audit
  respect; a breakdown whose bases fall short of the national one keeps its relation, the
  rest an unpublished cell (``UNALLOCATED``).
* A hidden cell keeps only its count of respondents and why it is hidden: its estimate,
  standard error, interval, effective and weighted n and degrees of freedom are blanked.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from fractions import Fraction
from math import gcd

import numpy as np
import pandas as pd

from sdpipeline.codebook import Codebook
from sdpipeline.indicators import Catalogue, Disclosure, Indicator
from sdpipeline.suppression import Cell, Exposure, Problem, Relation, audit
from sdpipeline.suppression import protect as cheapest_pattern

SECONDARY = "secondary"
NATIONAL_COST = 1e6
# what a hidden cell of the indicator tables may not show beside its count
HIDDEN_COLUMNS = (
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "effective_n",
    "weighted_n",
    "weighted_base",
    "df",
)


def protect(
    frame: pd.DataFrame,
    counts: str | list[str],
    values: list[str],
    suppress_below: int,
    low_reliability_below: int,
) -> pd.DataFrame:
    """Blank ``values`` where any count column is under ``suppress_below``; flag the rest."""
    counts = [counts] if isinstance(counts, str) else counts
    smallest = frame[counts].min(axis=1).fillna(0)
    out = frame.copy()
    out["suppressed"] = smallest < suppress_below
    out["low_reliability"] = ~out["suppressed"] & (smallest < low_reliability_below)
    for column in values:
        out[column] = out[column].astype(float).where(~out["suppressed"])
    return out


def dominance(values: np.ndarray, weights: np.ndarray, rule: Disclosure) -> str:
    """Which magnitude rule a cell breaks ('' if none), from its respondents' amounts ``values``
    and their weights: everyone the same amount; the n largest weighted amounts holding k % or
    more of the total; or the total less the two largest under p % of the largest."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return ""
    if rule.all_same and np.all(values == values[0]):
        return "all the same amount"
    amounts = np.sort(np.abs(values * np.asarray(weights, dtype=float)))[::-1]
    total = float(amounts.sum())
    if total <= 0:
        return ""
    if amounts[: rule.dominance_n].sum() >= rule.dominance_k / 100 * total:
        return f"({rule.dominance_n}, {rule.dominance_k:g}) dominance"
    if total - amounts[:2].sum() < rule.p_percent / 100 * amounts[0]:
        return f"p {rule.p_percent:g} % rule"
    return ""


def answer_unit(indicator: Indicator, codebook: Codebook) -> float:
    """The unit every answer of the indicator is a whole multiple of, as the codebook says and
    so as anyone can tell: 1 for a share (yes is 1) or a mean of a whole-number variable, the
    greatest common divisor of an index's scores; 0 for a ratio or a mean of amounts with
    fractions."""
    if indicator.statistic == "proportion":
        return 1.0
    if indicator.statistic == "mean":
        variable = codebook.instruments[indicator.instrument].variable(indicator.variable)
        return 1.0 if variable.integer else 0.0
    if indicator.statistic != "index":
        return 0.0
    unit = Fraction(0)
    for score in indicator.scores.values():
        fraction = Fraction(float(score)).limit_denominator(1000)
        if abs(float(fraction) - score) > 1e-9 * max(1.0, abs(score)):
            return 0.0
        unit = Fraction(
            gcd(unit.numerator * fraction.denominator, fraction.numerator * unit.denominator),
            unit.denominator * fraction.denominator,
        )
    return float(unit)


def grid_step(x: np.ndarray, weights: np.ndarray, unit: float) -> float:
    """The grid a cell's value lies on for an intruder who knows its count n and that its
    respondents weigh the same (a census weighted within regions, an unweighted survey): a
    mean of n answers, each a whole multiple of ``unit``, is a whole multiple of unit / n. 0
    where there is no unit, the denominators are not all 1 or the weights differ."""
    if unit <= 0 or len(x) == 0 or np.any(x != 1):
        return 0.0
    if np.ptp(weights) > 1e-12 * np.abs(weights).max():
        return 0.0
    return unit / len(x)


def primary_reason(n: int, dominated: str, rule: Disclosure) -> str:
    if n < rule.suppress_below:
        return f"n < {rule.suppress_below}"
    return dominated


def bounds(indicator: Indicator, codebook: Codebook) -> tuple[float, float]:
    """What anyone knows of a cell's value before it is published: 0–100 for a percentage or
    an index, the variable's codebook range for a mean, the catalogue's ``range`` for a ratio."""
    if indicator.statistic in ("proportion", "index"):
        return 0.0, 100.0
    if indicator.statistic == "mean":
        instrument = codebook.instruments[indicator.instrument]
        low, high = instrument.variable(indicator.variable).value_range
        return float(low), float(high)
    return indicator.range


UNALLOCATED = "unallocated"


def _relation(
    cells: list[dict], parts: str, low: float, high: float
) -> tuple[Relation | None, Cell | None]:
    """W·national − Σ W_p·part_p − W_u·unallocated = 0 over a breakdown's domains, on weighted
    bases scaled by the national one; None if the breakdown or the national cell is not there.
    Where the parts' bases fall short of the national one (respondents with no domain, or in a
    domain with no estimate) the rest is a cell of its own, never published and needing no
    protection, so that the relation still binds the parts as far as it does for an intruder:
    dropping it would leave the breakdown without secondary suppression or audit."""
    national = [c for c in cells if c["breakdown"] == "national"]
    members = [c for c in cells if c["breakdown"] == parts]
    if not national or not members:
        return None, None
    total = float(national[0]["weighted_base"])
    if total <= 0:
        return None, None
    terms = [(("national", national[0]["domain"]), 1.0)]
    terms += [((parts, c["domain"]), -c["weighted_base"] / total) for c in members]
    rest = 1 - sum(c["weighted_base"] for c in members) / total
    if rest < -1e-9:
        raise ValueError(
            f"the {parts} domains' weighted bases add to {1 - rest:.6f} of the national one"
        )
    if rest <= 1e-9:
        return Relation(tuple(terms)), None
    value = (
        national[0]["estimate"] - sum(c["weighted_base"] / total * c["estimate"] for c in members)
    ) / rest
    key = (UNALLOCATED, parts)
    unallocated = Cell(key, float(np.clip(value, low, high)), low, high, primary=True, cost=0.0)
    return Relation((*terms, (key, -rest))), unallocated


def cube_problem(
    cells: list[dict], indicator: Indicator, codebook: Codebook, rule: Disclosure
) -> Problem:
    """One indicator in one wave (``cells``: its rows as records): its estimable cells and the
    relations between them."""
    cells = [c for c in cells if not np.isnan(c["estimate"])]
    low, high = bounds(indicator, codebook)
    national = [c["estimate"] for c in cells if c["breakdown"] == "national"]
    width = rule.protection[indicator.statistic]
    if indicator.statistic in ("mean", "ratio"):
        width *= abs(national[0]) if national else high - low
    problem_cells = tuple(
        Cell(
            key=(c["breakdown"], c["domain"]),
            value=float(c["estimate"]),
            lower=low,
            upper=high,
            primary=bool(c["primary"]),
            protection=width,
            cost=NATIONAL_COST if c["breakdown"] == "national" else float(c["n"]),
            step=float(c.get("step", 0.0)),
        )
        for c in cells
    )
    found = [_relation(cells, b, low, high) for b in ("region", "municipality_type")]
    relations = tuple(r for r, _ in found if r is not None)
    return Problem(problem_cells + tuple(c for _, c in found if c is not None), relations)


def suppress_estimates(
    frame: pd.DataFrame, catalogue: Catalogue, codebook: Codebook
) -> pd.DataFrame:
    """Primary and secondary suppression of the indicator cube (``frame``: every indicator,
    wave and domain, with ``n``, ``weighted_base`` and ``dominance``): adds ``suppressed``,
    ``suppression`` (why) and ``low_reliability``, and blanks what a hidden cell may not show."""
    rule = catalogue.disclosure
    out = frame.copy()
    out["suppression"] = [
        primary_reason(int(n), d, rule) for n, d in zip(out["n"], out["dominance"], strict=True)
    ]
    out["primary"] = out["suppression"] != ""
    hidden = out["primary"].to_numpy().copy()
    places, problems = [], []
    for (indicator_id, _), cells in out.groupby(["indicator_id", "wave"], sort=False):
        if not cells["primary"].any():
            continue
        indicator = catalogue.get(indicator_id)
        columns = ["breakdown", "domain", "estimate", "weighted_base", "n", "primary", "step"]
        problems.append(cube_problem(cells[columns].to_dict("records"), indicator, codebook, rule))
        places.append((out.index.get_indexer(cells.index), cells["breakdown"], cells["domain"]))
    # each indicator and wave is a problem of its own, solved on both cores: HiGHS lets go of
    # the GIL while it solves, and each pattern is the one it finds alone (sample: 0.9 → 0.6 s)
    with ThreadPoolExecutor(2) as pool:
        patterns = list(pool.map(cheapest_pattern, problems))
    for (rows, breakdowns, domains), chosen in zip(places, patterns, strict=True):
        keys = zip(breakdowns, domains, strict=True)
        hidden[rows] |= [key in chosen for key in keys]
    out["suppressed"] = hidden
    out.loc[out["suppressed"] & ~out["primary"], "suppression"] = SECONDARY
    out["low_reliability"] = ~out["suppressed"] & (out["n"] < rule.low_reliability_below)
    for column in HIDDEN_COLUMNS:
        if column in out:
            out[column] = out[column].astype(float).where(~out["suppressed"])
    return out.drop(columns=["primary", "dominance", "step"])


def audited_catalogue(published: pd.DataFrame, catalogue: Catalogue) -> Catalogue:
    """The catalogue with only the indicators ``published`` hides a cell of: the only ones
    ``audit_published`` solves (an indicator hiding nothing gives nothing back), and so the
    only ones whose cube the audit estimates afresh. A delivery the size of a register hides no
    cell at all, and its audit then reads no harmonised table."""
    hiding = set(published.loc[published["suppressed"], "indicator_id"])
    return replace(catalogue, indicators=tuple(i for i in catalogue.indicators if i.id in hiding))


def audit_published(
    published: pd.DataFrame, cube: pd.DataFrame, catalogue: Catalogue, codebook: Codebook
) -> list[Exposure]:
    """The audit of what the indicator tables publish: for every hidden cell of ``published``
    (``indicators.estimates`` as stored), the interval an intruder gets from the published
    figures, the cells' weighted bases and the relations, with the true values and bases from
    ``cube`` (``effectiveness.estimate_cube`` of the same harmonised tables)."""
    rule = catalogue.disclosure
    keys = ["indicator_id", "wave", "breakdown", "domain"]
    shown = published.set_index(keys)
    truth = cube.assign(primary=False)  # the audit asks every hidden cell the same
    exposures = []
    for (indicator_id, wave), cells in truth.groupby(["indicator_id", "wave"], sort=False):
        index = pd.MultiIndex.from_frame(cells[keys])
        hidden = shown["suppressed"].reindex(index).fillna(False).to_numpy(dtype=bool)
        if not hidden.any():
            continue
        columns = ["breakdown", "domain", "estimate", "weighted_base", "n", "primary", "step"]
        indicator = catalogue.get(indicator_id)
        problem = cube_problem(cells[columns].to_dict("records"), indicator, codebook, rule)
        figures = shown["estimate"].reindex(index).to_numpy(dtype=float)
        printed = {
            (b, d): v
            for b, d, v, h in zip(cells["breakdown"], cells["domain"], figures, hidden, strict=True)
            if not h
        }
        keys_hidden = [
            (b, d) for b, d, h in zip(cells["breakdown"], cells["domain"], hidden, strict=True) if h
        ] + [c.key for c in problem.cells if c.key[0] == UNALLOCATED]
        exposures += [
            Exposure((indicator_id, wave, *e.key), e.value, e.low, e.high, e.required)
            for e in audit(problem, keys_hidden, published=printed)
            if e.key[0] != UNALLOCATED
        ]
    return exposures
