"""Design-based estimates: weighted means and proportions with Taylor-linearised standard errors.

Domains (a region, a wave, a group) are estimated over the whole design with the variable
zeroed outside the domain, never by dropping rows first: dropping rows would remove primary
sampling units from the variance and understate the standard error (Lumley, *Complex Surveys*,
§2.3; R ``survey::svyby``). Variance is the with-replacement (ultimate cluster) estimator, as
R ``survey`` computes it by default; a stratum with a single PSU contributes nothing
(``survey.lonely.psu = "certainty"``). Confidence intervals use Student's t with the design's
degrees of freedom (PSUs minus strata).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats


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


def _as_array(values: pd.Series | np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=float)


def linearised_variance(z: np.ndarray, strata: np.ndarray, psu: np.ndarray) -> tuple[float, int]:
    """Σ_h n_h/(n_h−1) Σ_j (z_hj − z̄_h)² over PSU totals z_hj; returns (variance, df)."""
    frame = pd.DataFrame({"z": z, "h": strata, "j": psu})
    totals = frame.groupby(["h", "j"], sort=False)["z"].sum()
    by_stratum = totals.groupby(level="h")
    n_h = by_stratum.transform("size").to_numpy()
    centred = (totals - by_stratum.transform("mean")).to_numpy()
    factor = np.where(n_h > 1, n_h / np.maximum(n_h - 1, 1), 0.0)
    variance = float((factor * centred**2).sum())
    df = int(len(totals) - totals.index.get_level_values("h").nunique())
    return variance, df


def weighted_mean(
    y: pd.Series | np.ndarray,
    weights: pd.Series | np.ndarray,
    strata: pd.Series | np.ndarray,
    psu: pd.Series | np.ndarray,
    domain: pd.Series | np.ndarray | None = None,
    level: float = 0.95,
) -> Estimate:
    """Weighted mean of ``y`` in ``domain`` (all rows by default); NaN in ``y`` means the row
    is outside the estimate (a missing answer), like a row outside the domain."""
    y = _as_array(y)
    w = _as_array(weights)
    inside = ~np.isnan(y)
    if domain is not None:
        inside &= np.asarray(domain, dtype=bool)
    d = inside.astype(float)
    y0 = np.where(inside, y, 0.0)
    total_w = float((w * d).sum())
    n = int(inside.sum())
    if n == 0 or total_w == 0:
        nan = float("nan")
        return Estimate(nan, nan, nan, nan, 0, 0.0, 0.0, 0)
    mean = float((w * d * y0).sum() / total_w)
    z = w * d * (y0 - mean) / total_w
    variance, df = linearised_variance(z, np.asarray(strata), np.asarray(psu))
    se = float(np.sqrt(variance))
    quantile = stats.t.ppf(0.5 + level / 2, df) if df > 0 else float("nan")
    element_variance = float((w * d * (y0 - mean) ** 2).sum() / total_w)
    effective = element_variance / variance if variance > 0 else float(n)
    return Estimate(
        estimate=mean,
        se=se,
        ci_low=mean - quantile * se,
        ci_high=mean + quantile * se,
        n=n,
        effective_n=float(effective),
        weighted_n=total_w,
        df=df,
    )
