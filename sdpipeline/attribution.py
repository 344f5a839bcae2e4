"""What the design can attribute to the project, and what it cannot.

1. In every wave that asked the specialists whether they took part in the project's trainings
   or supervision, participants against the rest: a difference of domain means in one sample,
   with the design covariance between the two domains. It shows association, not effect: who
   took part was not randomised.
2. For every declared comparison (``study.yaml``), at municipality level (2021 geography), a
   difference-in-differences of the specialists' indicators between municipalities by depth of
   project participation, the comparison's earlier wave against its later one, with the
   Covid-19 delay, the share of Ukrainian clients and whether the service's reorganisation was
   driven by the ATR as controls on the later wave's change. Depth and controls are the heads'
   answers in the comparison's first wave after the project. The comparison's role says what
   the interaction means: across the project (``project_effect``) the project's effect; between
   two waves after it (``persistence``) whether the gap it left between municipalities held.
   Weighted least squares on municipality means (weight: respondents), standard errors
   clustered by municipality (CR1), and beside them the restricted wild cluster bootstrap's
   p-value and interval (``wild_bootstrap``), with the number of municipalities in each
   participation group: CR1 is unreliable when a group has few, and the row says so whenever
   one has fewer than the catalogue's ``few_clusters`` minimum for the method. The ATR itself
   cannot be separated this way: every municipality went through it.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd

from sdpipeline import disclosure
from sdpipeline.codebook import Codebook, Comparison
from sdpipeline.effectiveness import wave_rows
from sdpipeline.estimation import (
    domain_difference,
    t_quantile,
    t_two_sided_p,
    weighted_mean,
)
from sdpipeline.indicators import Catalogue, FewClusters, values
from sdpipeline.reference import ReferenceData
from sdpipeline.wild_bootstrap import wild_cluster_bootstrap

# Read beside the indicators: who took part (specialists), and the heads' answers that give
# each municipality its depth of participation and its controls.
CONTROLS = (
    "project_participant",
    "project_participation",
    "covid_delayed_innovations",
    "ukrainian_clients_pct",
    "reorganisation_driver",
)
# The heads' answers the difference-in-differences reads in the comparison's first wave after
# the project.
MUNICIPALITY_ANSWERS = CONTROLS[1:]
COLUMNS = [
    "analysis",
    "comparison",
    "wave",
    "indicator_id",
    "term",
    "participants",
    "others",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "p_value",
    "n_a",
    "n_b",
    "units",
    "wcb_p_value",
    "wcb_ci_low",
    "wcb_ci_high",
    "clusters_none",
    "clusters_some",
    "clusters_most",
    "caveat",
    "dominated",
]
# the participation groups of the difference-in-differences: depth code → column of counts
GROUPS = {1: "clusters_none", 2: "clusters_some", 3: "clusters_most"}
# what a row of participants against the rest, or a model not estimated, has in those columns
NO_BOOTSTRAP = dict.fromkeys(["wcb_p_value", "wcb_ci_low", "wcb_ci_high", *GROUPS.values()], np.nan)
CAVEAT_PARTICIPANTS = (
    "Association in {year}, not a causal effect: participation was voluntary and not randomised."
)
CAVEAT_NOT_ESTIMABLE = (
    "Not estimable: the municipalities do not vary in every term of the model (e.g. all in one "
    "participation group), so the design matrix is singular."
)
CAVEAT_NOT_ASKED = (
    "Not estimable: the heads of services were not asked {variables} in {wave}, the "
    "comparison's first wave after the project."
)
CAVEAT_OUTCOME_NOT_ASKED = "Not estimable: the question was not asked in {years}."


def years_not_asked(
    indicator_id: str, waves: list[str], catalogue: Catalogue, codebook: Codebook
) -> str:
    """The years among ``waves`` whose questionnaire did not ask the indicator's question
    ('' when every one did): its figures there are blank for that reason, which the caveat
    must give rather than a model's or a design's."""
    indicator = catalogue.get(indicator_id)
    variable = codebook.instruments[indicator.instrument].variable(indicator.variable)
    years = [str(codebook.waves[w].year) for w in waves if not variable.asked_in(w)]
    return " and ".join(years)


def few_cluster_caveat(counts: dict[int, int], rule: FewClusters) -> str:
    """What the number of municipalities per group allows: '' when both methods have enough."""
    small = {depth: n for depth, n in counts.items() if n < rule.minimum_cr1}
    if not small:
        return ""
    named = ", ".join(f"{n} in group {depth}" for depth, n in sorted(small.items()))
    text = (
        f"Few municipalities ({named}; CR1 needs {rule.minimum_cr1} per group): read the wild "
        "cluster bootstrap's p-value and interval, not CR1's."
    )
    if min(small.values()) < rule.minimum_bootstrap:
        text += (
            f" Fewer than {rule.minimum_bootstrap} in a group: the bootstrap is not reliable "
            "either (it tends to be conservative)."
        )
    return text


CAVEATS_DID = {
    "project_effect": (
        "Difference-in-differences between municipalities by project depth; assumes parallel "
        "trends and cannot separate the ATR, which touched every municipality."
    ),
    "persistence": (
        "Change after the project in the gap between municipalities by project depth: near zero "
        "where the project's effect persisted; assumes the gap would otherwise have held."
    ),
}


def participation_effects(
    specialists: pd.DataFrame, catalogue: Catalogue, codebook: Codebook, ref: ReferenceData
) -> pd.DataFrame:
    """Participants against the rest, in every wave that asked who took part."""
    asked = codebook.instruments["specialists"].variable("project_participant").asked_in
    rows = []
    for wave in codebook.waves:
        if asked(wave):
            rows += _participants_vs_others(specialists, wave, catalogue, codebook, ref)
    return pd.DataFrame(rows, columns=COLUMNS)


def _participants_vs_others(
    specialists: pd.DataFrame,
    wave: str,
    catalogue: Catalogue,
    codebook: Codebook,
    ref: ReferenceData,
) -> list[dict]:
    year = codebook.waves[wave].year
    own = wave_rows(specialists, wave)
    table = specialists.iloc[own.rows]
    part = (table["project_participant"] == 1).to_numpy()
    rest = (table["project_participant"] == 0).to_numpy()
    weights = table["weight"].to_numpy(dtype=float)
    rows = []
    for indicator_id in catalogue.groups["participation_effects"]:
        indicator = catalogue.get(indicator_id)
        absent = years_not_asked(indicator_id, [wave], catalogue, codebook)
        if absent:
            rows.append(
                {
                    "analysis": "participants_vs_others",
                    "comparison": None,
                    "wave": wave,
                    "indicator_id": indicator_id,
                    "term": f"participants − others ({year})",
                    **dict.fromkeys(["participants", "others", "estimate", "se"], np.nan),
                    **dict.fromkeys(["ci_low", "ci_high", "p_value"], np.nan),
                    "n_a": 0,
                    "n_b": 0,
                    "units": 0,
                    **NO_BOOTSTRAP,
                    "dominated": False,
                    "caveat": CAVEAT_OUTCOME_NOT_ASKED.format(years=absent),
                }
            )
            continue
        y, _ = values(indicator, table, codebook, ref)
        factor = 100.0 if indicator.statistic == "proportion" else 1.0
        y = y * factor
        a = weighted_mean(y, weights, None, None, part, design=own.design)
        b = weighted_mean(y, weights, None, None, rest, design=own.design)
        rule, answered = catalogue.disclosure, ~np.isnan(y)
        dominated = indicator.statistic in rule.magnitude and any(
            disclosure.dominance(y[group & answered], weights[group & answered], rule)
            for group in (part, rest)
        )
        difference, se, low, high, p_value = domain_difference(
            y, weights, None, None, part, rest, design=own.design
        )
        rows.append(
            {
                "analysis": "participants_vs_others",
                "comparison": None,
                "wave": wave,
                "indicator_id": indicator_id,
                "term": f"participants − others ({year})",
                "participants": a.estimate,
                "others": b.estimate,
                "estimate": difference,
                "se": se,
                "ci_low": low,
                "ci_high": high,
                "p_value": p_value,
                "n_a": a.n,
                "n_b": b.n,
                "units": a.n + b.n,
                **NO_BOOTSTRAP,
                "dominated": dominated,
                "caveat": CAVEAT_PARTICIPANTS.format(year=year),
            }
        )
    return rows


def cluster_robust_wls(
    y: np.ndarray, x: np.ndarray, weights: np.ndarray, clusters: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """WLS coefficients and CR1 cluster-robust covariance; returns (beta, covariance, df)."""
    w = weights[:, None]
    bread = np.linalg.inv(x.T @ (w * x))
    beta = bread @ (x.T @ (weights * y))
    residual = y - x @ beta
    meat = np.zeros((x.shape[1], x.shape[1]))
    groups = pd.Series(np.arange(len(y))).groupby(clusters).indices
    for rows in groups.values():
        score = x[rows].T @ (weights[rows] * residual[rows])
        meat += np.outer(score, score)
    g, n, k = len(groups), len(y), x.shape[1]
    correction = g / (g - 1) * (n - 1) / (n - k)
    return beta, correction * bread @ meat @ bread, g - 1


def _most_common(values: pd.Series) -> float:
    modes = values.dropna().mode()
    return float(modes.iloc[0]) if len(modes) else np.nan


def attribute_wave(comparison: Comparison) -> str:
    """The comparison's first wave after the project: where the heads' answers give each
    municipality its depth of participation and its controls."""
    return comparison.before if comparison.role == "persistence" else comparison.after


def municipality_panel(
    specialists: pd.DataFrame,
    heads: pd.DataFrame,
    indicator_id: str,
    comparison: Comparison,
    catalogue: Catalogue,
    codebook: Codebook,
    ref: ReferenceData,
) -> pd.DataFrame:
    """Per 2021 municipality and wave of the comparison: the indicator's mean, respondents,
    project depth and the controls."""
    indicator = catalogue.get(indicator_id)
    compared = specialists[specialists["wave"].isin([comparison.before, comparison.after])]
    y, _ = values(indicator, compared, codebook, ref)
    factor = 100.0 if indicator.statistic == "proportion" else 1.0
    frame = compared[["wave", "municipality_2021", "weight"]].assign(y=y * factor).dropna()
    frame["wy"] = frame["y"] * frame["weight"]
    panel = frame.groupby(["municipality_2021", "wave"]).agg(
        wy=("wy", "sum"), w=("weight", "sum"), n=("y", "size")
    )
    panel["y"] = panel["wy"] / panel["w"]
    post_heads = heads[heads["wave"] == attribute_wave(comparison)]
    driver = post_heads["reorganisation_driver"]
    # One head answers per municipality; where several did (a merged municipality's former
    # services), the municipality takes their most common answer and the mean share of
    # Ukrainian clients. Missing answers do not count.
    controls = (
        pd.DataFrame(
            {
                "municipality_2021": post_heads["municipality_2021"],
                "depth": post_heads["project_participation"].where(
                    post_heads["project_participation"] > 0
                ),
                "covid": post_heads["covid_delayed_innovations"].where(
                    post_heads["covid_delayed_innovations"] >= 0
                ),
                "ukraine": post_heads["ukrainian_clients_pct"],
                "atr": driver.isin([2, 3]).astype(float).where(driver > 0),
            }
        )
        .groupby("municipality_2021")
        .agg(
            depth=("depth", _most_common),
            covid=("covid", _most_common),
            ukraine=("ukraine", "mean"),
            atr=("atr", _most_common),
        )
    )
    depth, covid = controls["depth"], controls["covid"]
    ukraine, atr = controls["ukraine"], controls["atr"]
    panel = panel.reset_index()
    panel["post"] = (panel["wave"] == comparison.after).astype(float)
    panel["depth"] = panel["municipality_2021"].map(depth)
    panel["covid_delay"] = panel["municipality_2021"].map(covid)
    panel["ukrainian_clients_pct"] = panel["municipality_2021"].map(ukraine)
    panel["atr_reorganisation"] = panel["municipality_2021"].map(atr)
    return panel.dropna(
        subset=["depth", "covid_delay", "ukrainian_clients_pct", "atr_reorganisation"]
    )


TERMS = [
    "intercept",
    "post",
    "some",
    "most",
    "post × some activities",
    "post × most activities",
    "post × Covid-19 delay",
    "post × Ukrainian clients (+10 pp)",
    "post × ATR-driven reorganisation",
]
REPORTED = (4, 5, 6, 7, 8)


def _did_row(comparison: Comparison, indicator_id: str, index: int, **figures) -> dict:
    return {
        "analysis": "difference_in_differences",
        "comparison": comparison.id,
        "wave": None,
        "indicator_id": indicator_id,
        "term": TERMS[index],
        "participants": np.nan,
        "others": np.nan,
        **figures,
    }


def _not_estimated(comparison: Comparison, indicator_id: str, caveat: str) -> list[dict]:
    """An outcome's reported terms left blank, saying why in ``caveat``."""
    blank = dict.fromkeys(["estimate", "se", "ci_low", "ci_high", "p_value"], np.nan)
    return [
        _did_row(
            comparison,
            indicator_id,
            index,
            **blank,
            **NO_BOOTSTRAP,
            n_a=0,
            n_b=0,
            units=0,
            caveat=caveat,
        )
        for index in REPORTED
    ]


def comparison_did(
    tables: dict[str, pd.DataFrame],
    comparison: Comparison,
    catalogue: Catalogue,
    codebook: Codebook,
    ref: ReferenceData,
) -> list[dict]:
    """The difference-in-differences of every outcome between the comparison's two waves."""
    wave = attribute_wave(comparison)
    heads = codebook.instruments["heads"]
    absent = [n for n in MUNICIPALITY_ANSWERS if not heads.variable(n).asked_in(wave)]
    if absent:
        caveat = CAVEAT_NOT_ASKED.format(variables=", ".join(absent), wave=wave)
        return [
            row
            for indicator_id in catalogue.groups["did_outcomes"]
            for row in _not_estimated(comparison, indicator_id, caveat)
        ]
    rows = []
    for indicator_id in catalogue.groups["did_outcomes"]:
        waves = [comparison.before, comparison.after]
        absent = years_not_asked(indicator_id, waves, catalogue, codebook)
        if absent:
            caveat = CAVEAT_OUTCOME_NOT_ASKED.format(years=absent)
            rows += _not_estimated(comparison, indicator_id, caveat)
            continue
        panel = municipality_panel(
            tables["specialists"],
            tables["heads"],
            indicator_id,
            comparison,
            catalogue,
            codebook,
            ref,
        )
        some = (panel["depth"] == 2).astype(float)
        most = (panel["depth"] == 3).astype(float)
        covid = panel["covid_delay"].astype(float)
        ukraine = (panel["ukrainian_clients_pct"] - panel["ukrainian_clients_pct"].mean()) / 10
        atr = panel["atr_reorganisation"].astype(float)
        post = panel["post"]
        x = np.column_stack(
            [
                np.ones(len(panel)),
                post,
                some,
                most,
                post * some,
                post * most,
                post * covid,
                post * ukraine,
                post * atr,
            ]
        )
        estimable = np.linalg.matrix_rank(x) == x.shape[1]
        if estimable:
            beta, covariance, df = cluster_robust_wls(
                panel["y"].to_numpy(),
                x,
                panel["n"].to_numpy(dtype=float),
                panel["municipality_2021"].to_numpy(),
            )
        else:  # e.g. every municipality in one participation group: no contrast to estimate
            beta, covariance, df = np.full(x.shape[1], np.nan), np.full(x.shape[:1] * 2, np.nan), 0
        quantile = t_quantile(0.975, df) if estimable else np.nan
        units = panel.drop_duplicates("municipality_2021")["depth"].value_counts()
        counts = {depth: int(units.get(depth, 0)) for depth in GROUPS}
        rule = catalogue.few_clusters
        caveat = few_cluster_caveat(counts, rule)
        for index in REPORTED:
            se = float(np.sqrt(covariance[index, index]))
            boot = (
                wild_cluster_bootstrap(
                    panel["y"].to_numpy(),
                    x,
                    panel["n"].to_numpy(dtype=float),
                    panel["municipality_2021"].to_numpy(),
                    index,
                    rule.replications,
                    rule.seed,
                    rule.weights,
                )
                if estimable
                else None
            )
            rows.append(
                _did_row(
                    comparison,
                    indicator_id,
                    index,
                    estimate=float(beta[index]),
                    se=se,
                    ci_low=float(beta[index] - quantile * se),
                    ci_high=float(beta[index] + quantile * se),
                    p_value=t_two_sided_p(beta[index] / se, df) if estimable else np.nan,
                    n_a=int(panel.loc[panel["post"] == 0, "n"].sum()),
                    n_b=int(panel.loc[panel["post"] == 1, "n"].sum()),
                    units=int(panel["municipality_2021"].nunique()),
                    wcb_p_value=np.nan if boot is None else boot.p_value,
                    wcb_ci_low=np.nan if boot is None else boot.ci_low,
                    wcb_ci_high=np.nan if boot is None else boot.ci_high,
                    **{column: counts[depth] for depth, column in GROUPS.items()},
                    caveat=f"{CAVEATS_DID[comparison.role]} {caveat}".strip()
                    if estimable
                    else CAVEAT_NOT_ESTIMABLE,
                )
            )
    return rows


def difference_in_differences(
    tables: dict[str, pd.DataFrame], catalogue: Catalogue, codebook: Codebook, ref: ReferenceData
) -> pd.DataFrame:
    """Every declared comparison's difference-in-differences, each row carrying its comparison."""
    return pd.DataFrame(
        [
            row
            for comparison in codebook.comparisons.values()
            for row in comparison_did(tables, comparison, catalogue, codebook, ref)
        ],
        columns=COLUMNS,
    )


def attribution(
    tables: dict[str, pd.DataFrame],
    catalogue: Catalogue,
    codebook: Codebook,
    ref: ReferenceData,
    hidden: Collection[tuple[str, str]] = (),
) -> pd.DataFrame:
    """Both analyses, with disclosure control: a row under the threshold or dominated by a few
    specialists is hidden, and so is participants against the rest wherever the indicator
    tables hide the national figure (``hidden``: its indicator and wave). The two groups
    partition the same specialists, so their shares and sizes would give the national figure
    back."""
    frame = pd.concat(
        [
            participation_effects(tables["specialists"], catalogue, codebook, ref),
            difference_in_differences(tables, catalogue, codebook, ref),
        ],
        ignore_index=True,
    )
    figures = ["participants", "others", "estimate", "se", "ci_low", "ci_high", "p_value"]
    protected = disclosure.protect(
        frame,
        ["n_a", "n_b"],
        [*figures, "wcb_p_value", "wcb_ci_low", "wcb_ci_high"],
        catalogue.suppress_below,
        catalogue.low_reliability_below,
    )
    # a mean that a few specialists dominate is hidden as a cell under the threshold is
    dominated = protected.pop("dominated").fillna(False).astype(bool)
    hidden = set(hidden)
    national_hidden = [
        analysis == "participants_vs_others" and (indicator_id, wave) in hidden
        for analysis, indicator_id, wave in zip(
            protected["analysis"], protected["indicator_id"], protected["wave"], strict=True
        )
    ]
    withheld = dominated | pd.Series(national_hidden, index=protected.index, dtype=bool)
    protected.loc[withheld, figures] = np.nan
    protected["suppressed"] |= withheld
    protected["low_reliability"] &= ~withheld
    return protected
