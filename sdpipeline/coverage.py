"""The coverage study: how often the 95 % intervals the report publishes cover the truth.

Each replicate draws a new delivery from the generator's true model with its own seed, reads
and harmonises it with the pipeline's own functions (readers, pseudonyms, recodes, geography,
weights: what the assets call, in a DuckDB database in memory, without Dagster or the
validation contracts, which a generated delivery keeps by construction), estimates every
indicator of the catalogue by wave and domain, and checks each interval against the true value
in ``ground_truth.json``. A method whose intervals are honest covers about 95 % of the truths,
nationally and in every region, for every instrument. Cells that disclosure control would not
publish (fewer than the catalogue's ``suppress_below`` respondents) are counted apart: no
interval of theirs is printed.

Indicators whose truth the generator does not write as such (ratios of two answers, e.g.
specialists per 1,000 residents) are left out and named in the summary.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from sdpipeline import effectiveness
from sdpipeline.codebook import Codebook, default_codebook
from sdpipeline.generator import generate_delivery
from sdpipeline.harmonise import harmonise_instrument
from sdpipeline.indicators import Catalogue, Indicator, default_catalogue
from sdpipeline.ingest import load_raw
from sdpipeline.recodes import crosswalk
from sdpipeline.reference import ReferenceData
from sdpipeline.warehouse import qualified, replace_table

LEVELS = {"national": "national", "region": "by region"}
# What honest 95 % intervals cover, allowing for the study's own Monte Carlo error.
TARGET = (93.0, 97.0)


def true_value(
    indicator: Indicator, variables: dict, codebook: Codebook, region: str | None = None
) -> float | None:
    """The generator's true value of an indicator (in published units) nationally or in one
    region, from the true distribution of its variable; None where the truth is not written."""
    truth = variables.get(indicator.variable)
    if truth is None or indicator.statistic == "ratio":
        return None
    value = truth["national"] if region is None else truth.get("by_region", {}).get(region)
    if value is None:
        return None
    if indicator.statistic == "mean":
        return float(value)
    missing = {m.kind: str(m.code) for m in codebook.missing_categories.values()}
    excluded = {missing["no_answer"], missing["not_asked"]}
    if indicator.denominator == "valid" or indicator.statistic == "index":
        excluded.add(missing["hard_to_say"])
    base = {code: p for code, p in value.items() if code not in excluded}
    if indicator.statistic == "proportion":
        return 100 * sum(base.get(str(c), 0.0) for c in indicator.success) / sum(base.values())
    return sum(indicator.scores[int(c)] * p for c, p in base.items()) / sum(base.values())


def harmonised_delivery(
    folder: Path, codebook: Codebook, ref: ReferenceData
) -> dict[str, pd.DataFrame]:
    """Every instrument's harmonised table (all waves, weights, design) from a delivery, by the
    pipeline's own reading and harmonisation, in a DuckDB database in memory."""
    tables = {}
    recodes = crosswalk(codebook)
    with duckdb.connect() as connection:
        connection.execute("CREATE SCHEMA harmonised")
        for instrument in codebook.instruments.values():
            sources = {}
            for wave, spec in instrument.files.items():
                load = load_raw(instrument, wave, codebook, folder / wave / spec.name)
                name = f"{instrument.name}_{codebook.waves[wave].year}"
                sources[wave] = replace_table(connection, "validated", name, load.table)
            target = qualified("harmonised", instrument.name)
            harmonise_instrument(connection, instrument, codebook, ref, recodes, sources, target)
            tables[instrument.name] = connection.execute(f"SELECT * FROM {target}").df()
    return tables


def replicate(
    seed: int, scale: int, codebook: Codebook, catalogue: Catalogue, ref: ReferenceData
) -> pd.DataFrame:
    """One delivery drawn with ``seed``: every estimated cell with its truth and whether its
    95 % interval covers it."""
    folder = Path(tempfile.mkdtemp(prefix=f"sdpipeline-coverage-{seed}-"))
    try:
        truth = generate_delivery(folder, scale=scale, seed=seed, codebook=codebook)
        tables = harmonised_delivery(folder, codebook, ref)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    layouts = {name: effectiveness.Layout.of(table, codebook) for name, table in tables.items()}
    rows = []
    for indicator in catalogue.indicators:
        table = tables[indicator.instrument]
        for row in effectiveness.estimate_indicator(
            indicator, table, codebook, ref, layouts[indicator.instrument]
        ):
            if row["breakdown"] not in LEVELS:
                continue
            variables = truth["waves"][row["wave"]][indicator.instrument]["variables"]
            region = None if row["breakdown"] == "national" else row["domain"]
            true = true_value(indicator, variables, codebook, region)
            if true is not None:
                rows.append({**row, "seed": seed, "truth": true})
    cells = pd.DataFrame(rows)
    cells["covered"] = (cells["ci_low"] <= cells["truth"]) & (cells["truth"] <= cells["ci_high"])
    return cells[
        [
            "seed",
            "instrument",
            "indicator_id",
            "wave",
            "breakdown",
            "domain",
            "n",
            "df",
            "estimate",
            "se",
            "ci_low",
            "ci_high",
            "truth",
            "covered",
        ]
    ]


def _worker(arguments: tuple[int, int]) -> pd.DataFrame:
    seed, scale = arguments
    codebook = default_codebook()
    return replicate(seed, scale, codebook, default_catalogue(), ReferenceData.from_files(codebook))


def study(
    replicates: int, first_seed: int = 1, scale: int = 1, jobs: int = 1
) -> Iterator[pd.DataFrame]:
    """The replicates' cells, one frame per replicate as each finishes (seeds first_seed …
    first_seed + replicates − 1, so a study is reproducible and can be extended)."""
    seeds = [(first_seed + i, scale) for i in range(replicates)]
    if jobs <= 1:
        yield from map(_worker, seeds)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(_worker, seeds)


def summary(cells: pd.DataFrame, suppress_below: int) -> pd.DataFrame:
    """Coverage per instrument, nationally and by region, over the cells that are published
    (n ≥ ``suppress_below``, an interval to print): cells, share covered, and the Monte Carlo
    standard error of that share."""
    published = cells[(cells["n"] >= suppress_below) & cells["ci_low"].notna()]
    rows = []
    for (instrument, breakdown), group in published.groupby(["instrument", "breakdown"]):
        share = float(group["covered"].mean())
        rows.append(
            {
                "instrument": instrument,
                "level": LEVELS[breakdown],
                "replicates": int(group["seed"].nunique()),
                "cells": len(group),
                "coverage_pct": 100 * share,
                "mc_se_pct": 100 * float(np.sqrt(share * (1 - share) / len(group))),
                "lowest_indicator_pct": 100
                * float(group.groupby("indicator_id")["covered"].mean().min()),
                "within_target": TARGET[0] <= 100 * share <= TARGET[1],
                "not_published": int(
                    (cells["instrument"].eq(instrument) & cells["breakdown"].eq(breakdown)).sum()
                    - len(group)
                ),
            }
        )
    return pd.DataFrame(rows)


def by_indicator(cells: pd.DataFrame, suppress_below: int) -> pd.DataFrame:
    """Coverage of each indicator, wave and level over the published cells."""
    published = cells[(cells["n"] >= suppress_below) & cells["ci_low"].notna()]
    grouped = published.groupby(["instrument", "indicator_id", "wave", "breakdown"])
    frame = grouped["covered"].agg(cells="size", coverage_pct="mean").reset_index()
    frame["coverage_pct"] *= 100
    frame["breakdown"] = frame["breakdown"].map(LEVELS)
    return frame.rename(columns={"breakdown": "level"})


def write(
    cells: pd.DataFrame, catalogue: Catalogue, out: Path, facts: dict[str, object]
) -> list[Path]:
    """The study's result in ``out``: ``summary.csv``, ``by_indicator.csv`` and
    ``coverage.md`` (the summary with how it was made)."""
    out.mkdir(parents=True, exist_ok=True)
    table = summary(cells, catalogue.suppress_below)
    detail = by_indicator(cells, catalogue.suppress_below)
    paths = [out / "summary.csv", out / "by_indicator.csv", out / "coverage.md"]
    table.to_csv(paths[0], index=False, float_format="%.2f")
    detail.to_csv(paths[1], index=False, float_format="%.2f")
    lines = [
        "# Coverage of the 95 % confidence intervals",
        "",
        "Written by `sdpipeline coverage`. " + "; ".join(f"{k}: {v}" for k, v in facts.items()),
        "",
        f"Target: {TARGET[0]:g}–{TARGET[1]:g} % of the published intervals cover the truth, "
        "for every instrument, nationally and by region. Published cells only (at least "
        f"{catalogue.suppress_below} respondents); left out, having no written truth: "
        f"{', '.join(left_out(catalogue)) or 'none'}.",
        "",
        table.to_markdown(index=False, floatfmt=".1f"),
        "",
    ]
    paths[2].write_text("\n".join(lines), encoding="utf-8")
    return paths


def left_out(catalogue: Catalogue) -> list[str]:
    """Indicators without a written truth, which the study cannot check."""
    return [i.id for i in catalogue.indicators if i.statistic == "ratio"]
