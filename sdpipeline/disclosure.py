"""Statistical disclosure control, applied the same way to every output: a cell based on fewer
respondents than the catalogue's ``suppress_below`` loses its figures, one below
``low_reliability_below`` keeps them with a flag."""

from __future__ import annotations

import pandas as pd


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
