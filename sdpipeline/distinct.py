"""Work done once per distinct value of a column instead of once per row.

A register's text columns repeat a handful of values (municipality codes, comments, source
files) over hundreds of thousands of rows, and a Python function or a lookup mapped over the
rows spends nearly all its time working out the same few answers again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pandas as pd


def map_distinct(
    values: pd.Series, mapper: Callable[[object], object] | Mapping | pd.Series
) -> pd.Series:
    """``values.map(mapper)``, with the mapper applied once per distinct value.

    The mapper must give one answer for every kind of missing value (None, NaN, NA), which
    are one distinct value here. A column of mixed Python objects is mapped row by row: 1,
    1.0 and True are one value to a hash table but not to ``str``.
    """
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) not in (
        "string",
        "empty",
    ):
        return values.map(mapper)
    codes, distinct = pd.factorize(values, use_na_sentinel=False)
    if 2 * len(distinct) > len(values):
        return values.map(mapper)
    mapped = pd.Series(distinct, dtype=values.dtype).map(mapper)
    return pd.Series(mapped.array.take(codes), index=values.index, name=values.name)
