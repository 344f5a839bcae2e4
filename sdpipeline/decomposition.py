"""Shift-share decomposition of a national change: how much comes from a different mix of
respondents (regions, municipality types and, for people, age groups; not least through the
ATR) and how much from change within the same kinds of respondents.

With group shares s and group means p in the two waves, the change Σ s'p' − Σ s p splits
exactly into a within part Σ (p' − p)(s + s')/2 and a composition part Σ (s' − s)(p + p')/2
(the symmetric, order-free split).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sdpipeline import disclosure
from sdpipeline.codebook import Codebook
from sdpipeline.indicators import Catalogue, Indicator, values
from sdpipeline.reference import ReferenceData

PERSON_GROUPS = ("age_group",)


def group_columns(table: pd.DataFrame) -> list[str]:
    columns = ["region", "municipality_type"]
    return columns + [c for c in PERSON_GROUPS if c in table and (table[c] >= 0).all()]


@dataclass(frozen=True)
class Cells:
    """Each row's cell (wave × groups) as an integer, worked out once per table: grouping a
    register's text columns afresh for every indicator took most of the decomposition's time."""

    keys: list[str]
    cell: np.ndarray
    labels: pd.MultiIndex

    @classmethod
    def of(cls, table: pd.DataFrame) -> Cells:
        keys = ["wave", *group_columns(table)]
        groups = table.groupby(keys, sort=True)
        return cls(keys, groups.ngroup().to_numpy(), groups.size().index)


def decompose(
    indicator: Indicator,
    table: pd.DataFrame,
    codebook: Codebook,
    ref: ReferenceData,
    cells: Cells | None = None,
) -> dict | None:
    """``cells``: the table's, when already worked out for another indicator."""
    first, last = next(iter(codebook.waves)), list(codebook.waves)[-1]
    variable = codebook.instruments[indicator.instrument].variable(indicator.variable)
    if not (variable.asked_in(first) and variable.asked_in(last)) or indicator.statistic == "ratio":
        return None
    cells = cells or Cells.of(table)
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
    cells = a.merge(b, left_index=True, right_index=True, how="outer", suffixes=("_a", "_b"))
    cells[["s_a", "s_b"]] = cells[["s_a", "s_b"]].fillna(0.0)
    cells["p_a"] = cells["p_a"].fillna(cells["p_b"])
    cells["p_b"] = cells["p_b"].fillna(cells["p_a"])
    within = float(((cells["p_b"] - cells["p_a"]) * (cells["s_a"] + cells["s_b"]) / 2).sum())
    composition = float(((cells["s_b"] - cells["s_a"]) * (cells["p_a"] + cells["p_b"]) / 2).sum())
    total = float((cells["s_b"] * cells["p_b"]).sum() - (cells["s_a"] * cells["p_a"]).sum())
    return {
        "indicator_id": indicator.id,
        "groups": " × ".join(keys),
        "cells": len(cells),
        "estimate_ante": float((cells["s_a"] * cells["p_a"]).sum()),
        "estimate_post": float((cells["s_b"] * cells["p_b"]).sum()),
        "change": total,
        "within": within,
        "composition": composition,
        "composition_share": composition / total if abs(total) > 1e-12 else np.nan,
        "n_ante": int(cells["n_a"].sum()),
        "n_post": int(cells["n_b"].sum()),
    }


def decompose_all(
    tables: dict[str, pd.DataFrame], catalogue: Catalogue, codebook: Codebook, ref: ReferenceData
) -> pd.DataFrame:
    cells = {name: Cells.of(table) for name, table in tables.items()}
    rows = [
        row
        for indicator in catalogue.indicators
        if (
            row := decompose(
                indicator, tables[indicator.instrument], codebook, ref, cells[indicator.instrument]
            )
        )
        is not None
    ]
    return disclosure.protect(
        pd.DataFrame(rows),
        ["n_ante", "n_post"],
        ["estimate_ante", "estimate_post", "change", "within", "composition", "composition_share"],
        catalogue.suppress_below,
        catalogue.low_reliability_below,
    )
