import numpy as np
import pandas as pd
import pytest

from sdpipeline.distinct import map_distinct, per_distinct


def _trim(value: object) -> object:
    return value.strip() if isinstance(value, str) else None


@pytest.mark.parametrize(
    "values",
    [
        pd.Series([" a", "b ", None, " a", "b ", " a"] * 3, dtype="str", index=range(10, 28)),
        pd.Series([" a", pd.NA, " a", "c", "c", " a"], dtype="string"),
        pd.Series([1.0, np.nan, 1.0, 2.5, 2.5, 1.0]),
        pd.Series([1, True, 1.0, "1", 1, 1], dtype=object),
        pd.Series([f"id{i} " for i in range(10)], dtype="str"),
    ],
    ids=["text", "nullable text", "numbers", "mixed objects", "all distinct"],
)
def test_map_distinct_is_map(values):
    for mapper in (_trim, str, {" a": "A", 1.0: "one"}):
        pd.testing.assert_series_equal(map_distinct(values, mapper), values.map(mapper))


@pytest.mark.parametrize("size", [6, 600])
def test_per_distinct_is_the_function_of_the_column(size):
    values = pd.Series([" a ", None, "b", " a "] * (size // 4) + ["c"] * (size % 4), dtype="str")
    trimmed = values.astype("string").str.strip()
    pd.testing.assert_series_equal(
        per_distinct(values, lambda column: column.astype("string").str.strip()), trimmed
    )
