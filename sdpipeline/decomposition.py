"""Shift-share decomposition of a national change, in every declared comparison: how much
comes from a different mix of respondents (regions, municipality types and, for people, age
groups; not least through the ATR) and how much from change within the same kinds of
respondents.

With group shares s and group means p in the two waves, the change Σ s'p' − Σ s p splits
exactly into a within part Σ (p' − p)(s + s')/2 and a composition part Σ (s' − s)(p + p')/2
(the symmetric, order-free split).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sdpipeline import disclosure, suppression
from sdpipeline.codebook import Codebook, Comparison
from sdpipeline.indicators import Catalogue, Indicator, values
from sdpipeline.reference import ReferenceData

PERSON_GROUPS = ("age_group",)


def group_columns(table: pd.DataFrame, waves: tuple[str, ...]) -> list[str]:
    """The groups of a comparison: a person group only where both its waves answer it."""
    columns = ["region", "municipality_type"]
    compared = table["wave"].isin(waves).to_numpy()
    return columns + [
        c for c in PERSON_GROUPS if c in table and (table[c].to_numpy()[compared] >= 0).all()
    ]


@dataclass(frozen=True)
class Cells:
    """Each row's cell (wave × groups) as an integer, worked out once per table and set of
    groups: grouping a register's text columns afresh for every indicator took most of the
    decomposition's time."""

    keys: list[str]
    cell: np.ndarray
    labels: pd.MultiIndex

    @classmethod
    def of(cls, table: pd.DataFrame, groups: list[str]) -> Cells:
        keys = ["wave", *groups]
        grouped = table.groupby(keys, sort=True)
        return cls(keys, grouped.ngroup().to_numpy(), grouped.size().index)


def decompose(
    indicator: Indicator,
    table: pd.DataFrame,
    comparison: Comparison,
    codebook: Codebook,
    ref: ReferenceData,
    cells: Cells | None = None,
    hidden: Collection[tuple[str, str, str]] = (),
    protection: float = 0.0,
) -> dict | None:
    """``cells``: the table's for this comparison's groups, when already worked out for
    another indicator; ``hidden``: the indicator tables' hidden cells of this indicator (wave,
    breakdown, domain), for ``exposing``: whether the split would narrow one of them below
    ``protection`` (``split_exposes``)."""
    first, last = comparison.before, comparison.after
    variable = codebook.instruments[indicator.instrument].variable(indicator.variable)
    if not (variable.asked_in(first) and variable.asked_in(last)) or indicator.statistic == "ratio":
        return None
    cells = cells or Cells.of(table, group_columns(table, (first, last)))
    y, _ = values(indicator, table, codebook, ref)
    factor = 100.0 if indicator.statistic == "proportion" else 1.0
    y = np.asarray(y, dtype=float) * factor
    counted = ~np.isnan(y) & (cells.cell >= 0)
    cell, w, y = cells.cell[counted], np.asarray(table["weight"], dtype=float)[counted], y[counted]
    size = len(cells.labels)
    grouped = pd.DataFrame(
        {
            "w": np.bincount(cell, weights=w, minlength=size),
            "wy": np.bincount(cell, weights=w * y, minlength=size),
            "n": np.bincount(cell, minlength=size),
        },
        index=cells.labels,
    )
    grouped = grouped[grouped["n"] > 0]
    keys = cells.keys[1:]
    grouped["p"] = grouped["wy"] / grouped["w"]
    grouped["s"] = grouped["w"] / grouped.groupby(level="wave")["w"].transform("sum")
    a = grouped.loc[first]
    b = grouped.loc[last]
    exposing = bool(hidden) and split_exposes(
        {first: a, last: b}, keys, hidden, disclosure.bounds(indicator, codebook), protection
    )
    cells = a.merge(b, left_index=True, right_index=True, how="outer", suffixes=("_a", "_b"))
    cells[["s_a", "s_b"]] = cells[["s_a", "s_b"]].fillna(0.0)
    cells["p_a"] = cells["p_a"].fillna(cells["p_b"])
    cells["p_b"] = cells["p_b"].fillna(cells["p_a"])
    within = float(((cells["p_b"] - cells["p_a"]) * (cells["s_a"] + cells["s_b"]) / 2).sum())
    composition = float(((cells["s_b"] - cells["s_a"]) * (cells["p_a"] + cells["p_b"]) / 2).sum())
    total = float((cells["s_b"] * cells["p_b"]).sum() - (cells["s_a"] * cells["p_a"]).sum())
    return {
        "comparison": comparison.id,
        "wave_before": first,
        "wave_after": last,
        "indicator_id": indicator.id,
        "groups": " × ".join(keys),
        "cells": len(cells),
        "estimate_before": float((cells["s_a"] * cells["p_a"]).sum()),
        "estimate_after": float((cells["s_b"] * cells["p_b"]).sum()),
        "change": total,
        "within": within,
        "composition": composition,
        "composition_share": composition / total if abs(total) > 1e-12 else np.nan,
        "n_before": int(cells["n_a"].sum()),
        "n_after": int(cells["n_b"].sum()),
        "exposing": exposing,
    }


def split_exposes(
    waves: dict[str, pd.DataFrame],
    groups: list[str],
    hidden: Collection[tuple[str, str, str]],
    bounds: tuple[float, float],
    protection: float,
) -> bool:
    """Whether the within part of a change would let an intruder narrow one of the ``hidden``
    cells (wave, breakdown, domain) of the indicator tables below ``protection``.

    The within part is one more linear equation over the two waves' cells of region ×
    municipality type (``waves``: each wave's cells with weight ``w`` and mean ``p``), which
    the tables' suppression, one wave at a time with regions and types as wholes, does not see.
    So the same audit (``suppression.audit``) is run on a problem of those cells, all unknown,
    tied to every figure of both waves and to the within part by their weights: an intruder
    who knows every cell's weight and every published figure exactly. Whole numbers are not
    used."""
    first, last = waves
    cells = [
        (wave, *(k if isinstance(k, tuple) else (k,)))
        for wave, frame in waves.items()
        for k in frame.index
    ]
    weight = np.concatenate([frame["w"].to_numpy() for frame in waves.values()])
    truth = np.concatenate([frame["p"].to_numpy() for frame in waves.values()])
    total = {wave: frame["w"].sum() for wave, frame in waves.items()}
    hidden = {h for h in hidden if h[1] != "national"}
    low, high = bounds
    problem_cells = [
        suppression.Cell(("cell", c), float(v), low, high)
        for c, v in zip(cells, truth, strict=True)
    ]
    relations = []
    for wave in waves:
        for breakdown in ("national", *(g for g in ("region", "municipality_type") if g in groups)):
            domains: dict[str, list[int]] = {}
            for i, c in enumerate(cells):
                if c[0] == wave:
                    domain = "" if breakdown == "national" else str(c[1 + groups.index(breakdown)])
                    domains.setdefault(domain, []).append(i)
            for domain, members in domains.items():
                share = weight[members] / weight[members].sum()
                key = ("figure", wave, breakdown, domain)
                value = float(share @ truth[members])
                problem_cells.append(suppression.Cell(key, value, low, high, protection=protection))
                terms = [(key, 1.0)] + [
                    (("cell", cells[i]), -w) for i, w in zip(members, share, strict=True)
                ]
                relations.append(suppression.Relation(tuple(terms)))
    position = {c: i for i, c in enumerate(cells)}
    within: list[tuple[tuple, float]] = []
    for c, i in position.items():
        later = position.get((last, *c[1:]))
        if c[0] == first and later is not None:
            share = (weight[i] / total[first] + weight[later] / total[last]) / 2
            within += [(("cell", c), share), (("cell", cells[later]), -share)]
    value = -sum(coefficient * truth[position[key[1]]] for key, coefficient in within)
    span = high - low
    problem_cells.append(suppression.Cell(("within",), value, -span, span))
    relations.append(suppression.Relation(((("within",), 1.0), *within)))
    problem = suppression.Problem(tuple(problem_cells), tuple(relations))
    unknown = [c.key for c in problem_cells if c.key[0] == "cell" or c.key[1:] in hidden]
    if len(unknown) == len(cells):
        return False  # no hidden figure among those the split touches
    return any(
        not e.protected
        for e in suppression.audit(problem, unknown, whole_numbers=False)
        if e.key[0] == "figure"
    )


VALUES = ["estimate_before", "estimate_after", "change", "within", "composition"]
COLUMNS = [
    "comparison",
    "wave_before",
    "wave_after",
    "indicator_id",
    "groups",
    "cells",
    *VALUES,
    "composition_share",
    "n_before",
    "n_after",
]


def decompose_all(
    tables: dict[str, pd.DataFrame],
    catalogue: Catalogue,
    codebook: Codebook,
    ref: ReferenceData,
    hidden: Collection[tuple[str, str, str, str]] = (),
) -> pd.DataFrame:
    """Every indicator's national change split, for each declared comparison in turn.
    ``hidden``: the cells the indicator tables hide (indicator, wave, breakdown, domain), by
    secondary suppression too. A split is hidden where either wave's national figure is, as
    its two national figures and their change are its first columns, and where its within
    part would give back one of the others (``split_exposes``)."""
    by_indicator: dict[str, list[tuple[str, str, str]]] = {}
    for indicator_id, wave, breakdown, domain in hidden:
        by_indicator.setdefault(indicator_id, []).append((wave, breakdown, str(domain)))
    cells: dict[tuple[str, tuple[str, ...]], Cells] = {}
    rows = []
    for comparison in codebook.comparisons.values():
        for indicator in catalogue.indicators:
            table = tables[indicator.instrument]
            groups = group_columns(table, (comparison.before, comparison.after))
            key = (indicator.instrument, tuple(groups))
            if key not in cells:
                cells[key] = Cells.of(table, groups)
            row = decompose(
                indicator,
                table,
                comparison,
                codebook,
                ref,
                cells[key],
                by_indicator.get(indicator.id, ()),
                catalogue.disclosure.protection[indicator.statistic],
            )
            if row is not None:
                rows.append(row)
    frame = disclosure.protect(
        pd.DataFrame(rows, columns=[*COLUMNS, "exposing"]),
        ["n_before", "n_after"],
        [*VALUES, "composition_share"],
        catalogue.suppress_below,
        catalogue.low_reliability_below,
    )
    exposing = frame.pop("exposing").fillna(False).astype(bool).to_numpy()
    national = {(i, w) for i, w, b, _ in hidden if b == "national"}
    hide = exposing | np.array(
        [
            (i, a) in national or (i, b) in national
            for i, a, b in zip(
                frame["indicator_id"], frame["wave_before"], frame["wave_after"], strict=True
            )
        ],
        dtype=bool,
    )
    frame.loc[hide, [*VALUES, "composition_share"]] = np.nan
    frame.loc[hide, "suppressed"] = True
    frame.loc[hide, "low_reliability"] = False
    return frame
