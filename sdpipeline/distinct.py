"""Work done once per distinct value of a column instead of once per row.

A register's text columns repeat a handful of values (municipality codes, comments, source
files) over hundreds of thousands of rows, and a function or a lookup applied to every row
spends nearly all its time working out the same few answers again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pandas as pd


def per_distinct(values: pd.Series, function: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """``function(values)`` for an element-wise ``function``, computed on the distinct values
    and given back to their rows; on the column itself when most values are distinct.

    ``function`` must give one answer for every kind of missing value (None, NaN, NA), which
    are one distinct value here, and 1, 1.0 and True are one value too: a column of mixed
    Python objects belongs to ``function`` directly.
    """
    codes, distinct = pd.factorize(values, use_na_sentinel=False)
    if 2 * len(distinct) > len(values):
        return function(values)
    result = function(pd.Series(distinct, dtype=values.dtype))
    return pd.Series(result.array.take(codes), index=values.index, name=values.name)


def map_distinct(
    values: pd.Series, mapper: Callable[[object], object] | Mapping | pd.Series
) -> pd.Series:
    """``values.map(mapper)``, with the mapper applied once per distinct value (row by row
    for a column of mixed Python objects, as ``per_distinct`` says)."""
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) not in (
        "string",
        "empty",
    ):
        return values.map(mapper)
    return per_distinct(values, lambda column: column.map(mapper))
