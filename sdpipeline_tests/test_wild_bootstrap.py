"""The wild cluster bootstrap beside CR1: the p-value is the ``wildboottest`` package's own,
the interval is exactly where the package's p-value crosses 1 − level, WLS is handled, and a
seed gives the same result every time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from wildboottest.wildboottest import wildboottest

from sdpipeline.attribution import cluster_robust_wls
from sdpipeline.wild_bootstrap import _run, wild_cluster_bootstrap

B, SEED = 999, 20230918


def _panel(clusters: int = 24, seed: int = 3) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    treated = np.repeat((np.arange(clusters) < clusters // 3).astype(float), 2)
    post = np.tile([0.0, 1.0], clusters)
    effect = rng.normal(0, 1.5, clusters).repeat(2)
    y = 50 + 3 * post + 2 * treated + 4 * post * treated + effect + rng.normal(0, 2, 2 * clusters)
    x = np.column_stack([np.ones(2 * clusters), post, treated, post * treated])
    weights = rng.integers(3, 30, 2 * clusters).astype(float)
    return y, x, weights, np.repeat(np.arange(clusters), 2)


def _package_p(y, x, weights, clusters, column, c=0.0):
    scale = np.sqrt(weights)
    frame = pd.DataFrame(x * scale[:, None], columns=[f"x{i}" for i in range(x.shape[1])])
    target = (y - c * x[:, column]) * scale
    result = wildboottest(
        sm.OLS(target, frame),
        B=B,
        cluster=clusters,
        param=f"x{column}",
        weights_type="webb",
        seed=SEED,
        show=False,
        parallel=False,
    )
    return float(result["p-value"].iloc[0])


def _class_p(y, x, weights, clusters, column, c):
    """The package's bootstrap class run afresh at β_j = c (with our denominator, which the
    first test checks against the package's own)."""
    scale = np.sqrt(weights)
    xs = x * scale[:, None]
    return _run(xs, (y - c * x[:, column]) * scale, clusters, column, B, SEED, "webb").pvalue


def test_the_p_value_is_the_packages_and_the_interval_inverts_it():
    y, x, weights, clusters = _panel()
    result = wild_cluster_bootstrap(y, x, weights, clusters, 3, B, SEED)
    assert result.p_value == pytest.approx(_package_p(y, x, weights, clusters, 3))
    beta, _, _ = cluster_robust_wls(y, x, weights, clusters)
    assert result.ci_low < beta[3] < result.ci_high
    width = result.ci_high - result.ci_low
    for bound, outward in ((result.ci_low, -1), (result.ci_high, 1)):
        assert _class_p(y, x, weights, clusters, 3, bound - outward * 1e-6 * width) > 0.05
        assert _class_p(y, x, weights, clusters, 3, bound + outward * 1e-3 * width) <= 0.05


def test_weighted_least_squares_is_ols_on_scaled_rows():
    y, x, weights, clusters = _panel()
    scale = np.sqrt(weights)
    boot = _run(x * scale[:, None], y * scale, clusters, 3, B, SEED, "webb")
    beta, covariance, _ = cluster_robust_wls(y, x, weights, clusters)
    assert boot.beta_hat == pytest.approx(beta)
    assert boot.ssc * boot.vcov[3, 3] == pytest.approx(covariance[3, 3])


def test_a_seed_gives_the_same_result_and_another_seed_another():
    y, x, weights, clusters = _panel()
    first = wild_cluster_bootstrap(y, x, weights, clusters, 3, B, SEED)
    assert wild_cluster_bootstrap(y, x, weights, clusters, 3, B, SEED) == first
    assert wild_cluster_bootstrap(y, x, weights, clusters, 3, B, SEED + 1) != first


def test_an_interval_that_does_not_close_is_unbounded():
    # four municipalities, one of them treated: nothing can be rejected, however far
    y, x, weights, clusters = _panel(clusters=4, seed=8)
    result = wild_cluster_bootstrap(y, x, weights, clusters, 3, B, SEED)
    assert np.isinf(result.ci_low) and np.isinf(result.ci_high) and result.p_value > 0.05
