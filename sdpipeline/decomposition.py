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

from sdpipeline import disclosure
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
    municipality type, which the tables' suppression (each wave on its own, regions and types
    as wholes) does not see. The gap is filled by linear programs over those cells (``waves``:
    each wave's cells with weight ``w`` and mean ``p``), knowing every cell's weight and every
    published figure of both waves exactly. Whole numbers are not used."""
    from scipy.optimize import linprog  # imported when solving, as in ``suppression``

    first, last = waves
    keys = [
        (wave, *(k if isinstance(k, tuple) else (k,)))
        for wave, cells in waves.items()
        for k in cells.index
    ]
    weight = np.concatenate([cells["w"].to_numpy() for cells in waves.values()])
    truth = np.concatenate([cells["p"].to_numpy() for cells in waves.values()])

    def mean_of(wave: str, breakdown: str, domain: str) -> np.ndarray:
        inside = np.array(
            [
                k[0] == wave
                and (breakdown == "national" or str(k[1 + groups.index(breakdown)]) == domain)
                for k in keys
            ]
        )
        return np.where(inside, weight, 0.0) / weight[inside].sum()

    figures = [
        (wave, breakdown, domain)
        for wave in waves
        for breakdown in ("national", *(g for g in ("region", "municipality_type") if g in groups))
        for domain in sorted(
            {
                "" if breakdown == "national" else str(k[1 + groups.index(breakdown)])
                for k in keys
                if k[0] == wave
            }
        )
    ]
    hidden = {(w, b, d) for w, b, d in hidden if b != "national"}
    unknown = [f for f in figures if f in hidden]
    if not unknown:
        return False
    within = np.zeros(len(keys))
    position = {k: i for i, k in enumerate(keys)}
    total = {wave: weight[[k[0] == wave for k in keys]].sum() for wave in waves}
    for k, i in position.items():
        later = position.get((last, *k[1:]))
        if k[0] == first and later is not None:
            share = (weight[i] / total[first] + weight[later] / total[last]) / 2
            within[i] -= share
            within[later] += share
    equations = np.array([mean_of(*f) for f in figures if f not in hidden] + [within])
    required = min(protection, (bounds[1] - bounds[0]) * (1 - 1e-9))
    for cell in unknown:
        target = mean_of(*cell)
        ends = []
        for sense in (1.0, -1.0):
            result = linprog(
                sense * target,
                A_eq=equations,
                b_eq=equations @ truth,
                bounds=[bounds] * len(keys),
                method="highs",
            )
            if result.status != 0:  # not shown to protect
                return True
            ends.append(sense * result.fun)
        if ends[1] - ends[0] < required - 1e-7 * max(1.0, required):
            return True
    return False


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
