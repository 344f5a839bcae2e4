"""Put every respondent of every wave on the 2021 map.

A 2017 municipality reaches its 2021 successor through the crosswalk; a unit the reform split
goes to the successor that took the largest share of its population (the codebook's rule), and
the rows that rule touched are flagged and counted. Region and municipality type come from the
reference lists, never from the respondent's own answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from sdpipeline.codebook import Codebook
from sdpipeline.reference import ReferenceData


@dataclass(frozen=True)
class GeographyReport:
    rows: int
    split_rows: int
    split_units: dict[str, int]


def successors(ref: ReferenceData) -> pd.DataFrame:
    """Per 2017 unit: its 2021 successor under the codebook's rule, the population share that
    went there, and the rule (whole_unit, or split_majority for a unit the reform divided)."""
    pairs = ref.crosswalk
    parts = pairs.groupby("iso_code_2017").size()
    chosen = pairs.sort_values(["iso_code_2017", "share"], ascending=[True, False])
    chosen = chosen.drop_duplicates("iso_code_2017").copy()
    split = chosen["iso_code_2017"].map(parts) > 1
    chosen["crosswalk_rule"] = split.map({True: "split_majority", False: "whole_unit"})
    return chosen.rename(columns={"share": "successor_share"})[
        ["iso_code_2017", "iso_code_2021", "successor_share", "crosswalk_rule"]
    ]


def places_in(
    connection: duckdb.DuckDBPyConnection,
    relation: str,
    wave: str,
    codebook: Codebook,
    ref: ReferenceData,
) -> tuple[pd.DataFrame, GeographyReport]:
    """The 2021 municipality, its name and type, the region and the crosswalk rule of every
    municipality code in ``relation`` (a table or view with a ``municipality`` column), one row
    per distinct code, to be joined to the rows in the warehouse; and what the split rule did."""
    counts = connection.execute(
        f"SELECT municipality, count(*) FROM {relation} GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    codes = pd.Series([code for code, _ in counts], dtype="string")
    table = places(codes, wave, codebook, ref)
    table["municipality_code"] = codes.to_numpy()  # joined on the code as it stands
    rows = pd.Series([n for _, n in counts], dtype="int64")
    split = (table["crosswalk_rule"] == "split_majority").to_numpy()
    stripped = codes.str.strip().to_numpy()
    units: dict[str, int] = {}
    for code, n in zip(stripped[split], rows.to_numpy()[split], strict=True):
        units[code] = units.get(code, 0) + int(n)
    report = GeographyReport(
        rows=int(rows.sum()),
        split_rows=int(rows.to_numpy()[split].sum()),
        split_units=dict(sorted(units.items())),
    )
    return table, report


def places(
    municipality: pd.Series, wave: str, codebook: Codebook, ref: ReferenceData
) -> pd.DataFrame:
    """Geography of each municipality code of ``wave`` (one row per code given); refuses a
    code without a 2021 successor."""
    vintage = codebook.waves[wave].municipality_vintage
    new = ref.municipalities[2021].set_index("iso_code")
    own = ref.municipalities[vintage].set_index("iso_code")
    codes = municipality.str.strip()
    out = pd.DataFrame({"municipality_code": codes})
    if vintage == 2021:
        out["municipality_2021"] = codes
        out["successor_share"] = 1.0
        out["crosswalk_rule"] = "same_unit"
    else:
        links = successors(ref).set_index("iso_code_2017")
        out["municipality_2021"] = codes.map(links["iso_code_2021"])
        out["successor_share"] = codes.map(links["successor_share"])
        out["crosswalk_rule"] = codes.map(links["crosswalk_rule"])
    out["municipality_vintage"] = vintage
    out["municipality_type_at_wave"] = codes.map(own["type"])
    out["municipality_2021_name"] = out["municipality_2021"].map(new["name"])
    out["municipality_type"] = out["municipality_2021"].map(new["type"])
    out["region"] = out["municipality_2021"].map(new["region_code"]).astype("Int64")
    out["region_name"] = out["municipality_2021"].map(new["statistical_region"])
    unmapped = out["municipality_2021"].isna()
    if unmapped.any():
        raise ValueError(
            f"{wave}: municipality codes without a 2021 successor: "
            f"{sorted(set(codes[unmapped].dropna()))}"
        )
    return out
