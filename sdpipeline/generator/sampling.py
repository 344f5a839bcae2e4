"""Sample designs: draw respondents from a frame the way the study's contractors did.

Respondents are drawn from cells with probability proportional to size × response propensity,
so unequal propensities (older women answer more often) bias an unweighted estimate exactly as
non-response does in the field, and weighting has something real to correct.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sdpipeline.generator.frames import for_wave


def _draw_cells(cells: pd.DataFrame, count: int, rng: np.random.Generator) -> pd.DataFrame:
    weights = (cells["size"] * cells["propensity"]).to_numpy()
    picks = rng.choice(len(cells), size=count, p=weights / weights.sum())
    return cells.iloc[picks]


def draw_sample(
    frame: pd.DataFrame, plan: dict[str, Any], wave, scale: int, rng: np.random.Generator
) -> pd.DataFrame:
    """Respondents (one row each, carrying their cell's attributes) under the given plan."""
    kind = plan["plan"]
    parts: list[pd.DataFrame] = []
    if kind == "cluster":
        regions = sorted(frame["region"].unique())
        per_region = plan["n"] * scale // len(regions)
        cluster_size = int(plan["cluster_size"])
        point = 0
        for region in regions:
            cells = frame[frame["region"] == region]
            sizes = cells.groupby("municipality")["size"].sum()
            points = math.ceil(per_region / cluster_size)
            chosen = rng.choice(
                sizes.index.to_numpy(), size=points, p=(sizes / sizes.sum()).to_numpy()
            )
            for municipality, times in zip(*np.unique(chosen, return_counts=True), strict=True):
                drawn = _draw_cells(
                    cells[cells["municipality"] == municipality], times * cluster_size, rng
                )
                ids = np.repeat(np.arange(point + 1, point + times + 1), cluster_size)
                parts.append(drawn.assign(sampling_point=ids))
                point += times
    elif kind == "stratified":
        total = plan["n"] * scale
        sizes = frame.groupby("region")["size"].sum()
        allocation = (sizes / sizes.sum() * total).round().astype(int)
        for region, count in allocation.items():
            parts.append(_draw_cells(frame[frame["region"] == region], int(count), rng))
    elif kind == "per_municipality":
        per = int(for_wave(plan["per_municipality"], wave))
        rate = float(plan.get("response_rate", 1.0))
        for _, cells in frame.groupby("municipality", sort=True):
            count = int(rng.binomial(per * scale, rate)) if rate < 1 else per * scale
            if count:
                parts.append(_draw_cells(cells, count, rng))
    else:
        raise ValueError(f"unknown sample plan {kind!r}")
    sample = pd.concat(parts, ignore_index=True)
    order = rng.permutation(len(sample))
    return sample.iloc[order].reset_index(drop=True)
