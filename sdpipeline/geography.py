"""Put every respondent of every wave on the 2021 map.

A 2017 municipality reaches its 2021 successor through the crosswalk; a unit the reform split
goes to the successor that took the largest share of its population (the codebook's rule), and
the rows that rule touched are flagged and counted. Region and municipality type come from the
reference lists, never from the respondent's own answer.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def attach(
    frame: pd.DataFrame, wave: str, codebook: Codebook, ref: ReferenceData
) -> tuple[pd.DataFrame, GeographyReport]:
    """Add the 2021 municipality, its name and type, the region and the crosswalk rule. They are
    worked out once per distinct municipality code and then given to its rows."""
    rows, distinct = pd.factorize(frame["municipality"].astype("string"), use_na_sentinel=False)
    places = _places(pd.Series(distinct, dtype="string"), wave, codebook, ref)
    out = frame.copy(deep=False)  # copy-on-write: the caller's frame stays as it was
    for column in places.columns.drop("municipality_code"):
        out[column] = pd.Series(places[column].array.take(rows), index=frame.index)
    split = out["crosswalk_rule"] == "split_majority"
    codes = places["municipality_code"].array.take(rows)
    report = GeographyReport(
        rows=len(out),
        split_rows=int(split.sum()),
        split_units=pd.Series(codes[split.to_numpy()]).value_counts().sort_index().to_dict(),
    )
    return out, report


def _places(
    municipality: pd.Series, wave: str, codebook: Codebook, ref: ReferenceData
) -> pd.DataFrame:
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
