"""Design-based estimates: weighted ratios, means and proportions with Taylor-linearised
standard errors.

Domains (a region, a wave, a group) are estimated over the whole design with the variable
zeroed outside the domain, never by dropping rows first: dropping rows would remove primary
sampling units from the variance and understate the standard error (Lumley, *Complex Surveys*,
§2.3; R ``survey::svyby``). Variance is the with-replacement (ultimate cluster) estimator, as
R ``survey`` computes it by default; a stratum with a single PSU contributes nothing
(``survey.lonely.psu = "certainty"``). Confidence intervals use Student's t with the degrees of
freedom of the estimate's own design: the PSUs with at least one row in the estimate minus the
strata with at least one such PSU, as R ``survey``'s ``degf(subset(design, …))`` counts them. A
region's residents have the 20 sampling points of their stratum (19 degrees of freedom), not the
whole table's 228; a wave's estimate counts that wave's PSUs only.

Where an instrument is a census whose target is the finite population (codebook
``design.census.target: finite_population``), the variance carries the finite population
correction 1 − n_h/N_h of each stratum, as R ``svydesign(fpc = …)`` does: a complete census of
that population has no sampling variance. Where the target is the model that generates the
units' answers (``superpopulation``), there is no correction.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd


@functools.cache
def t_quantile(probability: float, df: float) -> float:
    """Student's t quantile, from ``scipy.special`` (the same function ``scipy.stats.t.ppf``
    calls). Imported on first use, and not ``scipy.stats``: importing that took 0.5–1 s of
    every run, for two functions. Cached: thousands of estimates share a handful of (level,
    degrees of freedom) pairs."""
    from scipy import special

    return float(special.stdtrit(df, probability))


def t_two_sided_p(t: float, df: float) -> float:
    from scipy import special

    return float(2 * special.stdtr(df, -abs(t)))


# Residuals smaller than this share of the estimate are floating-point noise, not variation.
RESIDUAL_NOISE = 1e-9


@dataclass(frozen=True)
class Estimate:
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    n: int
    effective_n: float
    weighted_n: float
    df: int
    weighted_base: float  # Σ w·x: the weighted total the estimate is a share or mean of


def _as_array(values: pd.Series | np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=float)


def _labels(values: pd.Series | np.ndarray) -> pd.Series | np.ndarray:
    """Labels to factorise: a Series as it is (Arrow text is factorised in Arrow, with no
    Python string per row), anything else as a NumPy array."""
    return values if isinstance(values, pd.Series) else np.asarray(values)


@dataclass(frozen=True)
class Design:
    """Strata and primary sampling units as integer codes. Factorising the labels once per
    table, and summing PSU totals with ``bincount``, is what keeps hundreds of domain estimates
    over a register-sized table to seconds."""

    unit: np.ndarray
    stratum_of_unit: np.ndarray
    units_in_stratum: np.ndarray
    factor_of_unit: np.ndarray
    df: int

    @classmethod
    def of(
        cls,
        strata: pd.Series | np.ndarray,
        psu: pd.Series | np.ndarray,
        population: pd.Series | np.ndarray | None = None,
    ) -> Design:
        """``population``: each row's number of PSUs in its stratum of the population (R's
        ``fpc``), for a finite population correction; NaN or None where there is none."""
        h, _ = pd.factorize(_labels(strata))
        j, _ = pd.factorize(_labels(psu))
        unit, _ = pd.factorize(h.astype(np.int64) * (int(j.max(initial=0)) + 1) + j)
        stratum_of_unit = np.zeros(int(unit.max(initial=-1)) + 1, dtype=np.int64)
        stratum_of_unit[unit] = h
        n_h = np.bincount(stratum_of_unit)
        factor = np.where(n_h > 1, n_h / np.maximum(n_h - 1, 1), 0.0)
        if population is not None:
            size = np.asarray(population, dtype=float)
            per_stratum = np.full(len(n_h), np.nan)
            per_stratum[h] = size
            if np.any(per_stratum < n_h):
                raise ValueError("a stratum has more sampled PSUs than its population has")
            factor *= np.where(np.isnan(per_stratum), 1.0, 1 - n_h / per_stratum)
        return cls(
            unit=unit,
            stratum_of_unit=stratum_of_unit,
            units_in_stratum=np.maximum(n_h, 1),
            factor_of_unit=factor[stratum_of_unit],
            df=int(len(stratum_of_unit) - np.count_nonzero(n_h)),
        )

    @classmethod
    def of_table(cls, table: pd.DataFrame) -> Design:
        """The design of a harmonised table: ``design_stratum``, ``design_psu`` and, where
        the table has it, ``design_population`` (the finite population correction)."""
        population = table.get("design_population")
        return cls.of(table["design_stratum"], table["design_psu"], population)

    def domain_df(self, rows: np.ndarray | None) -> int:
        """Degrees of freedom of the design restricted to ``rows`` (positions): PSUs with at
        least one of those rows, minus the strata with at least one such PSU."""
        if rows is None:
            return self.df
        units = self.unit[rows]
        present = np.zeros(len(self.stratum_of_unit), dtype=bool)
        present[units] = True
        strata = np.zeros(len(self.units_in_stratum), dtype=bool)
        strata[self.stratum_of_unit[units]] = True  # over the rows, not every unit's flag
        return int(np.count_nonzero(present) - np.count_nonzero(strata))


def linearised_variance(
    z: np.ndarray,
    strata: np.ndarray | None = None,
    psu: np.ndarray | None = None,
    design: Design | None = None,
    rows: np.ndarray | None = None,
) -> tuple[float, int]:
    """Σ_h n_h/(n_h−1) (1 − f_h) Σ_j (z_hj − z̄_h)² over PSU totals z_hj, f_h the sampling
    fraction where the design has a finite population correction; returns (variance, df), df
    the degrees of freedom of the rows ``z`` holds (see ``Design.domain_df``). ``rows``: the
    positions in the design that ``z`` holds, every other row's z being 0."""
    design = design or Design.of(strata, psu)
    unit = design.unit if rows is None else design.unit[rows]
    totals = np.bincount(unit, weights=z, minlength=len(design.stratum_of_unit))
    mean_h = np.bincount(design.stratum_of_unit, weights=totals) / design.units_in_stratum
    centred = totals - mean_h[design.stratum_of_unit]
    variance = float((design.factor_of_unit * centred**2).sum())
    return variance, design.domain_df(rows)


def wilson_interval(
    proportion: float, se: float, n: int, df: float, level: float = 0.95
) -> tuple[float, float]:
    """Interval for a proportion (0–1) from a complex sample: Wilson's score interval on the
    effective sample size p(1 − p)/se² (n where the estimate has no variance, at 0 or 1), with
    Student's t on the design's degrees of freedom (Kott & Carr 1997). The symmetric interval
    p ± t·se covers far less than its level near 0 or 1 in small domains (a region's 20 heads
    of services), and can reach below 0; this one stays within 0–1 and near its level."""
    if not df > 0 or n <= 0 or np.isnan(proportion):
        return float("nan"), float("nan")
    z = t_quantile(0.5 + level / 2, df)
    spread = proportion * (1 - proportion)
    effective = spread / se**2 if se > 0 and spread > 0 else float(n)
    centre = (proportion + z * z / (2 * effective)) / (1 + z * z / effective)
    half = z / (1 + z * z / effective) * np.sqrt(spread / effective + z * z / (4 * effective**2))
    return float(max(centre - half, 0.0)), float(min(centre + half, 1.0))


def welch_df(variance_a: float, df_a: float, variance_b: float, df_b: float) -> float:
    """Welch–Satterthwaite degrees of freedom of a difference of two independent estimates,
    (v_a + v_b)² / (v_a²/df_a + v_b²/df_b): between the smaller df and their sum, nearer the
    df of the estimate with the larger variance. NaN where neither has a variance."""
    varying = [(v, df) for v, df in ((variance_a, df_a), (variance_b, df_b)) if v > 0]
    if not varying or any(df <= 0 for _, df in varying):
        return float("nan")
    return float((variance_a + variance_b) ** 2 / sum(v * v / df for v, df in varying))


def ratio_estimate(
    y: pd.Series | np.ndarray,
    x: pd.Series | np.ndarray,
    weights: pd.Series | np.ndarray,
    strata: pd.Series | np.ndarray | None,
    psu: pd.Series | np.ndarray | None,
    domain: pd.Series | np.ndarray | None = None,
    level: float = 0.95,
    design: Design | None = None,
) -> Estimate:
    """Σ w·y / Σ w·x in ``domain``, linearised as z = w (y − R x) / Σ w x. A mean is the
    ratio with x = 1. NaN in ``y`` or ``x`` puts the row outside the estimate (a missing
    answer), like a row outside the domain, without removing its PSU from the design."""
    y, x, w = _as_array(y), _as_array(x), _as_array(weights)
    inside = ~np.isnan(y) & ~np.isnan(x)
    if domain is not None:
        inside &= np.asarray(domain, dtype=bool)
    return ratio_over_rows(y, x, w, np.flatnonzero(inside), strata, psu, level, design)


def ratio_over_rows(
    y: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    rows: np.ndarray,
    strata: pd.Series | np.ndarray | None = None,
    psu: pd.Series | np.ndarray | None = None,
    level: float = 0.95,
    design: Design | None = None,
) -> Estimate:
    """``ratio_estimate`` over the positions ``rows``: those where y and x are both given and
    the row is in the domain. For the many domains of one indicator's answers, which find the
    answered rows once instead of testing every row's y and x again for each domain."""
    # Rows outside the estimate have z = 0: they count only as the PSUs they belong to, so the
    # sums run over the rows inside and the design places their z among all the PSUs.
    y, x, w = y[rows], x[rows], w[rows]
    total_x = float((w * x).sum())
    n = len(rows)
    if n == 0 or total_x == 0:
        nan = float("nan")
        return Estimate(nan, nan, nan, nan, n, 0.0, float(w.sum()), 0, total_x)
    ratio = float((w * y).sum() / total_x)
    residual = y - ratio * x
    if np.all(np.abs(residual) <= RESIDUAL_NOISE * max(abs(ratio), 1.0) * np.abs(x)):
        # every row has the same y/x: what is left of the residuals is rounding noise, whose
        # "variance" (1e-34) would publish an effective n of 1e32
        residual = np.zeros(len(rows))
    z = w * residual / total_x
    variance, df = linearised_variance(z, strata, psu, design, rows)
    se = float(np.sqrt(variance))
    quantile = t_quantile(0.5 + level / 2, df) if df > 0 else float("nan")
    weighted_n = float(w.sum())
    element_variance = float((w * residual**2).sum() / weighted_n) / (total_x / weighted_n) ** 2
    # undefined without a variance: n where everyone gave one answer would say just that
    effective = element_variance / variance if variance > 0 else float("nan")
    return Estimate(
        estimate=ratio,
        se=se,
        ci_low=ratio - quantile * se,
        ci_high=ratio + quantile * se,
        n=n,
        effective_n=float(effective),
        weighted_n=weighted_n,
        df=df,
        weighted_base=total_x,
    )


def weighted_mean(
    y: pd.Series | np.ndarray,
    weights: pd.Series | np.ndarray,
    strata: pd.Series | np.ndarray,
    psu: pd.Series | np.ndarray,
    domain: pd.Series | np.ndarray | None = None,
    level: float = 0.95,
    design: Design | None = None,
) -> Estimate:
    """Weighted mean (or proportion, for a 0/1 ``y``) in ``domain``; ``design``: the strata
    and PSUs already coded, for many means over one table."""
    return ratio_estimate(
        y, np.ones(len(np.asarray(y))), weights, strata, psu, domain, level, design
    )


def domain_difference(
    y: pd.Series | np.ndarray,
    weights: pd.Series | np.ndarray,
    strata: pd.Series | np.ndarray,
    psu: pd.Series | np.ndarray,
    domain_a: pd.Series | np.ndarray,
    domain_b: pd.Series | np.ndarray,
    level: float = 0.95,
    design: Design | None = None,
) -> tuple[float, float, float, float, float]:
    """Mean in domain A minus mean in domain B of the same sample, with the covariance the two
    share through the design: (difference, se, ci_low, ci_high, p_value). Degrees of freedom:
    those of the rows in either domain."""
    y, w = _as_array(y), _as_array(weights)
    z = np.zeros(len(y))
    means = []
    either = np.zeros(len(y), dtype=bool)
    for domain, sign in ((domain_a, 1.0), (domain_b, -1.0)):
        inside = ~np.isnan(y) & np.asarray(domain, dtype=bool)
        total = float((w * inside).sum())
        mean = float((w * inside * np.where(inside, y, 0.0)).sum() / total)
        z += sign * w * inside * (np.where(inside, y, 0.0) - mean) / total
        means.append(mean)
        either |= inside
    rows = np.flatnonzero(either)
    variance, df = linearised_variance(z[rows], strata, psu, design, rows)
    difference, se = means[0] - means[1], float(np.sqrt(variance))
    quantile = t_quantile(0.5 + level / 2, df)
    p_value = t_two_sided_p(difference / se, df) if se > 0 else float("nan")
    return difference, se, difference - quantile * se, difference + quantile * se, p_value
