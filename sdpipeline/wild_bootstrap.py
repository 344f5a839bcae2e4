"""Few-cluster inference for a weighted least squares coefficient: the restricted wild
cluster bootstrap (WCR, MacKinnon & Webb 2017) from the ``wildboottest`` package, its p-value
and the confidence interval that inverts it.

Cluster-robust (CR1) standard errors assume many clusters in every group that identifies a
coefficient; the difference-in-differences has a handful of municipalities in some of its
groups. The wild cluster bootstrap with the null imposed and Webb's six-point weights keeps
close to its nominal size where CR1 does not.

What fills a gap in the package: it tests β_j = 0 only, and gives no interval. Testing
β_j = c is testing 0 in the regression of y − c·x_j on X; with the bootstrap weights held fixed
(one seed), each bootstrap numerator is linear and each squared denominator quadratic in c
(Roodman, MacKinnon, Nielsen & Webb 2019, "Fast and wild"), so two runs of the package
(c = 0 and 1) give the p-value for every c exactly, and the interval is where it is above
1 − level. WLS is run as OLS on rows scaled by √weight (the same coefficients and scores).
Its denominator loop is replaced by the same sum written as matrix products: the package
compiles that loop with numba afresh on every call (about a second each).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

# Searched out to this many CR1 standard errors from the estimate before an interval is called
# unbounded (p-values stay above 1 − level however far: too few clusters to reject anything).
SEARCH_SPAN = 50.0
# An interval's ends are found to this share of a CR1 standard error.
TOLERANCE = 1e-4


@dataclass(frozen=True)
class BootstrapResult:
    """p-value of β_j = 0, the interval of every c with p(β_j = c) above 1 − level (±inf where
    it does not close), the number of bootstrap replications and the weights used."""

    p_value: float
    ci_low: float
    ci_high: float
    replications: int
    weights: str


@functools.cache
def _bootstrap_class() -> type:
    """``WildboottestCL`` with its CRV1 denominator as matrix products; imported on first use
    (the package imports numba, which takes a while)."""
    from wildboottest.wildboottest import WildboottestCL

    class Bootstrap(WildboottestCL):
        def get_denom(self) -> None:
            # the package's Σ_g (C_g v_g − Σ_h H_gh v_h)², the same sum without the loop
            row = self.R @ self.tXXinv
            left = np.stack([row @ block for block in self.tXgXg_list])
            h = left @ self.tXXinv @ self.scores_mat
            self.z = self.Cg[:, None] * self.v - h @ self.v
            self.denom = self.ssc * (self.z**2).sum(axis=0)

    return Bootstrap


def _run(
    x: np.ndarray, y: np.ndarray, clusters: np.ndarray, column: int, b: int, seed: int, kind: str
):
    restriction = np.zeros(x.shape[1])
    restriction[column] = 1.0
    boot = _bootstrap_class()(
        X=x, Y=y, cluster=clusters, R=restriction, B=b, seed=seed, parallel=False
    )
    boot.get_scores(bootstrap_type="11", impose_null=True)
    boot.get_weights(weights_type=kind)
    boot.get_numer()
    boot.get_denom()
    boot.get_tboot()
    boot.get_vcov()
    boot.get_tstat()
    boot.get_pvalue(pval_type="two-tailed")
    return boot


def wild_cluster_bootstrap(
    y: np.ndarray,
    x: np.ndarray,
    weights: np.ndarray,
    clusters: np.ndarray,
    column: int,
    replications: int,
    seed: int,
    weights_type: str = "webb",
    level: float = 0.95,
) -> BootstrapResult:
    """WCR p-value of coefficient ``column`` being 0, and its test-inversion interval."""
    scale = np.sqrt(np.asarray(weights, dtype=float))
    xs, ys = x * scale[:, None], np.asarray(y, dtype=float) * scale
    clusters = np.asarray(clusters)
    at_zero, at_one = (
        _run(xs, ys - c * xs[:, column], clusters, column, replications, seed, weights_type)
        for c in (0.0, 1.0)
    )
    beta = float(at_zero.beta_hat[column])
    se = float(np.sqrt(at_zero.ssc * at_zero.vcov[column, column]))
    # every replication's numerator n0 + c·n1 and denominator ssc·Σ_g (z0 + c·z1)²
    n0, n1 = at_zero.numer, at_one.numer - at_zero.numer
    z0, z1 = at_zero.z, at_one.z - at_zero.z
    d0, d1, d2 = (at_zero.ssc * s for s in ((z0**2).sum(0), 2 * (z0 * z1).sum(0), (z1**2).sum(0)))

    def p_value(c: float) -> float:
        """The package's two-tailed p-value of β_j = c: share of |t*| above |t|."""
        boot_t = (n0 + c * n1) / np.sqrt(np.maximum(d0 + c * d1 + c * c * d2, 0.0))
        return float(np.mean(abs((beta - c) / se) < np.abs(boot_t)))

    alpha = 1 - level
    bounds = []
    for direction in (-1.0, 1.0):
        inside, outside = beta, None
        for step in np.arange(1, SEARCH_SPAN + 1):
            c = beta + direction * step * abs(se)
            if p_value(c) <= alpha:
                outside = c
                break
            inside = c
        if outside is None:
            bounds.append(direction * np.inf)
            continue
        while abs(outside - inside) > TOLERANCE * abs(se):
            middle = (inside + outside) / 2
            if p_value(middle) <= alpha:
                outside = middle
            else:
                inside = middle
        bounds.append(inside)
    return BootstrapResult(
        p_value=float(at_zero.pvalue),
        ci_low=float(bounds[0]),
        ci_high=float(bounds[1]),
        replications=int(at_zero.B),
        weights=weights_type,
    )
