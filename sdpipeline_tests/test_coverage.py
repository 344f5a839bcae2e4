"""The coverage study: deliveries drawn with known truth, estimated by the pipeline's own
functions, and the share of 95 % intervals that cover the truth. The full study (200
replicates) is in docs/coverage/; ``pytest -m slow`` runs a small one through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sdpipeline import coverage
from sdpipeline.cli import main
from sdpipeline.indicators import default_catalogue
from sdpipeline.reference import ReferenceData

from .conftest import SHIPPED_RAW


def test_true_values_are_the_generators(codebook):
    truth = json.loads((SHIPPED_RAW / "ground_truth.json").read_text(encoding="utf-8"))
    catalogue = default_catalogue()
    clients = truth["waves"]["ex_ante_2017"]["clients"]["variables"]
    # published: 78 % of clients satisfied (28 % fully, 50 % rather) in 2017
    assert coverage.true_value(catalogue.get("C01"), clients, codebook) == pytest.approx(78.0)
    riga = coverage.true_value(catalogue.get("C01"), clients, codebook, region="1")
    assert 70 < riga < 86
    assert coverage.true_value(catalogue.get("H01"), clients, codebook) is None  # a ratio
    assert coverage.left_out(catalogue) == ["H01", "H03"]


def test_one_replicate_checks_every_instrument_nationally_and_by_region(isolated, codebook):
    catalogue = default_catalogue()
    cells = coverage.replicate(7, 1, codebook, catalogue, ReferenceData.from_files(codebook))
    assert set(cells["instrument"]) == set(codebook.instruments)
    assert set(cells["breakdown"]) == {"national", "region"}
    inside = (cells["ci_low"] <= cells["truth"]) & (cells["truth"] <= cells["ci_high"])
    assert (cells["covered"] == inside).all()
    published = cells[cells["n"] >= catalogue.suppress_below]
    assert 0.85 < published["covered"].mean() <= 1.0
    table = coverage.summary(cells, catalogue.suppress_below)
    assert len(table) == 2 * len(codebook.instruments)
    assert (table["cells"] > 0).all() and table["coverage_pct"].between(0, 100).all()


@pytest.mark.slow
def test_a_small_study_through_the_command(isolated, tmp_path):
    out = tmp_path / "coverage"
    code = main(["coverage", "--replicates", "6", "--first-seed", "300", "--out", str(out)])
    assert code in (0, 1)  # 1: a row outside 93–97 %, which six replicates cannot rule out
    summary = pd.read_csv(out / "summary.csv")
    assert (summary["replicates"] == 6).all()
    assert summary["coverage_pct"].between(85, 100).all(), summary
    pooled = np.average(summary["coverage_pct"], weights=summary["cells"])
    assert 92 <= pooled <= 98
    assert "Coverage of the 95 % confidence intervals" in (out / "coverage.md").read_text()
