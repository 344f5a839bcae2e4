"""Indicator estimates by wave and domain, and their change in every declared comparison.

Every estimate is design-based over the whole sample of its wave (domains are never filtered
first), on that wave's own design: the waves are independent samples, so adding a wave never
moves another wave's figures. Each estimate has the degrees of freedom of its own wave and
domain, and a proportion's interval is Wilson's on the effective sample size
(``estimation.wilson_interval``). A change is the later wave minus the earlier one of a
comparison (``study.yaml``), from two independent samples: its standard error
√(se²_before + se²_after), tested with Student's t on the Welch–Satterthwaite degrees of freedom
of the two estimates (``estimation.welch_df``), and read against the indicator's direction.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sdpipeline import disclosure
from sdpipeline.codebook import Codebook, Comparison
from sdpipeline.estimation import (
    Design,
    ratio_over_rows,
    t_quantile,
    t_two_sided_p,
    welch_df,
    wilson_interval,
)
from sdpipeline.harmonise import comparability
from sdpipeline.indicators import Catalogue, Disclosure, Indicator, values
from sdpipeline.reference import ReferenceData

NATIONAL = {"lv": "Latvija", "en": "Latvia"}
TYPES = {
    "novads": {"lv": "Novadi", "en": "Municipalities (novadi)"},
    "state_city": {"lv": "Valstspilsētas", "en": "State cities"},
}
ALPHA = 0.05
IN_FLIGHT = 3  # indicators whose values are taken and not yet estimated: two running, one ready


def domains(
    table: pd.DataFrame, breakdown: str, codebook: Codebook
) -> list[tuple[str, str, str, np.ndarray]]:
    """(domain code, Latvian label, English label, row mask) for a breakdown."""
    if breakdown == "national":
        return [("LV", NATIONAL["lv"], NATIONAL["en"], np.ones(len(table), dtype=bool))]
    if breakdown == "region":
        labels = codebook.harmonised_scales["region6"].codes
        return [
            (str(code), label.lv, label.en, (table["region"] == code).to_numpy())
            for code, label in labels.items()
        ]
    if breakdown == "municipality_type":
        return [
            (code, label["lv"], label["en"], (table["municipality_type"] == code).to_numpy())
            for code, label in TYPES.items()
        ]
    raise ValueError(f"unknown breakdown {breakdown!r}")


def _scale(indicator: Indicator) -> float:
    return 100.0 if indicator.statistic == "proportion" else 1.0


@dataclass(frozen=True)
class WaveRows:
    """One wave's rows of a table (positions) and the design they make on their own."""

    rows: np.ndarray
    design: Design


def wave_rows(table: pd.DataFrame, wave: str) -> WaveRows:
    """The wave's rows and design. Its strata and sampling units are its own (the harmonised
    design labels carry the wave), so the variance is the one over the whole table, and the
    degrees of freedom are the wave's."""
    rows = np.flatnonzero((table["wave"] == wave).to_numpy())
    population = (
        table["design_population"].to_numpy()[rows] if "design_population" in table else None
    )
    # taken as the table holds them (Arrow text at a register's size: the sampling units are
    # one pseudonym per respondent, 2.4 million Python strings as a NumPy array)
    strata, psu = table["design_stratum"].take(rows), table["design_psu"].take(rows)
    return WaveRows(rows, Design.of(strata, psu, population))


@dataclass
class Layout:
    """A table's waves, their designs and the rows of each domain, worked out once for all the
    indicators of the table: comparing a register's text columns afresh for each of hundreds
    of estimates took longer than the estimates did."""

    table: pd.DataFrame
    codebook: Codebook
    weights: np.ndarray
    _waves: dict[str, WaveRows] = field(default_factory=dict)
    _cells: dict[str, list[tuple[str, str, str, np.ndarray]]] = field(default_factory=dict)
    _wave_cells: dict[tuple[str, str], list[np.ndarray]] = field(default_factory=dict)

    @classmethod
    def of(cls, table: pd.DataFrame, codebook: Codebook) -> Layout:
        return cls(table, codebook, np.asarray(table["weight"], dtype=float))

    def wave(self, wave: str) -> WaveRows:
        if wave not in self._waves:
            self._waves[wave] = wave_rows(self.table, wave)
        return self._waves[wave]

    def cells(self, breakdown: str) -> list[tuple[str, str, str, np.ndarray]]:
        if breakdown not in self._cells:
            self._cells[breakdown] = domains(self.table, breakdown, self.codebook)
        return self._cells[breakdown]

    def prepare(self, breakdowns: Iterable[str]) -> Layout:
        """Every wave's design and every breakdown's domains worked out now, so that the
        estimates only read the layout (``estimate_cube`` runs two at a time)."""
        for wave in self.codebook.waves:
            if len(self.wave(wave).rows):
                for breakdown in breakdowns:
                    self.wave_cells(wave, breakdown)
        return self

    def wave_cells(self, wave: str, breakdown: str) -> list[np.ndarray]:
        """Each domain's mask over the wave's rows, in the order of ``cells``."""
        if (wave, breakdown) not in self._wave_cells:
            own = self.wave(wave).rows
            self._wave_cells[wave, breakdown] = [m[own] for *_, m in self.cells(breakdown)]
        return self._wave_cells[wave, breakdown]


def estimate_indicator(
    indicator: Indicator,
    table: pd.DataFrame,
    codebook: Codebook,
    ref: ReferenceData,
    layout: Layout | None = None,
    rule: Disclosure | None = None,
) -> list[dict]:
    """``layout``: the table's, when already worked out for another indicator; ``rule``: the
    catalogue's disclosure rules, to say which cells of a magnitude indicator a few respondents
    dominate (``dominance``, '' where none or no rule given)."""
    y, x = values(indicator, table, codebook, ref)
    return _estimates(indicator, y, x, layout or Layout.of(table, codebook), codebook, rule)


def _estimates(
    indicator: Indicator,
    y: np.ndarray,
    x: np.ndarray,
    layout: Layout,
    codebook: Codebook,
    rule: Disclosure | None,
) -> list[dict]:
    """The indicator's rows from its values per row (``values``): NumPy work over the
    layout, no pandas, so that two can run at once."""
    magnitude = rule is not None and indicator.statistic in rule.magnitude
    unit = disclosure.answer_unit(indicator, codebook)
    answered = ~np.isnan(y) & ~np.isnan(x)
    rows = []
    for wave in codebook.waves:
        in_wave = layout.wave(wave)
        if not len(in_wave.rows) or not codebook.instruments[indicator.instrument].variable(
            indicator.variable
        ).asked_in(wave):
            continue
        own = in_wave.rows
        # the wave's rows and which of them are answered taken once for all its domains:
        # testing every row's answers again for each domain was a third of an estimate's time
        y_own, x_own, w_own = y[own], x[own], layout.weights[own]
        answered_own = answered[own]
        for breakdown in indicator.breakdowns:
            for (code, label_lv, label_en, mask), in_domain in zip(
                layout.cells(breakdown), layout.wave_cells(wave, breakdown), strict=True
            ):
                inside = np.flatnonzero(answered_own & np.asarray(in_domain, dtype=bool))
                e = ratio_over_rows(y_own, x_own, w_own, inside, design=in_wave.design)
                factor = _scale(indicator)
                low, high = (
                    wilson_interval(e.estimate, e.se, e.n, e.df)
                    if indicator.statistic == "proportion"
                    else (e.ci_low, e.ci_high)
                )
                rows.append(
                    {
                        "indicator_id": indicator.id,
                        "instrument": indicator.instrument,
                        "wave": wave,
                        "year": codebook.waves[wave].year,
                        "breakdown": breakdown,
                        "domain": code,
                        "domain_lv": label_lv,
                        "domain_en": label_en,
                        "estimate": e.estimate * factor,
                        "se": e.se * factor,
                        "ci_low": low * factor,
                        "ci_high": high * factor,
                        "n": e.n,
                        "effective_n": e.effective_n,
                        "weighted_n": e.weighted_n,
                        "weighted_base": e.weighted_base,
                        "df": e.df,
                        "dominance": _dominance(y, layout.weights, own, mask, answered, rule)
                        if magnitude
                        else "",
                        "step": disclosure.grid_step(x_own[inside], w_own[inside], unit) * factor,
                    }
                )
    return rows


def _dominance(
    y: np.ndarray,
    weights: np.ndarray,
    own: np.ndarray,
    mask: np.ndarray,
    answered: np.ndarray,
    rule: Disclosure,
) -> str:
    inside = own[mask[own] & answered[own]]
    return disclosure.dominance(y[inside], weights[inside], rule)


def estimate_cube(
    tables: Mapping[str, pd.DataFrame], catalogue: Catalogue, codebook: Codebook, ref: ReferenceData
) -> pd.DataFrame:
    """Every indicator, wave and domain, before disclosure control, in the catalogue's order.
    Worked out table by table, so that one table's rows and layout are held at a time.

    The estimates are NumPy's work, which lets go of the GIL: two indicators are estimated at
    once, on both cores (×1000: 16.4 → 10.3 s), each exactly as alone. Their values per row are
    taken from the table on this thread, pandas being safe to read from one thread only, and
    at most ``IN_FLIGHT`` indicators' values are held at a time."""
    found: dict[str, list[dict]] = {}
    with ThreadPoolExecutor(2) as pool:
        for name in dict.fromkeys(i.instrument for i in catalogue.indicators):
            table = tables[name]
            own = [i for i in catalogue.indicators if i.instrument == name]
            layout = Layout.of(table, codebook).prepare({b for i in own for b in i.breakdowns})
            pending: deque[tuple[str, Future[list[dict]]]] = deque()
            for indicator in own:
                y, x = values(indicator, table, codebook, ref)
                estimates = pool.submit(
                    _estimates, indicator, y, x, layout, codebook, catalogue.disclosure
                )
                pending.append((indicator.id, estimates))
                if len(pending) >= IN_FLIGHT:
                    key, oldest = pending.popleft()
                    found[key] = oldest.result()
            for key, estimates in pending:
                found[key] = estimates.result()
            del table, layout, pending
    return pd.DataFrame([row for i in catalogue.indicators for row in found[i.id]])


def estimate_all(
    tables: Mapping[str, pd.DataFrame], catalogue: Catalogue, codebook: Codebook, ref: ReferenceData
) -> pd.DataFrame:
    """Every indicator, wave and domain, with disclosure control applied (primary and
    secondary suppression: ``disclosure.suppress_estimates``)."""
    return disclosure.suppress_estimates(
        estimate_cube(tables, catalogue, codebook, ref), catalogue, codebook
    )


def verdict(difference: float, p_value: float, direction: str) -> tuple[str, str]:
    """A plain-language reading of a change: (English, Latvian)."""
    if np.isnan(difference) or np.isnan(p_value):
        return "not estimable", "nav novērtējams"
    if p_value >= ALPHA:
        return "no significant change", "nav būtisku izmaiņu"
    if direction == "none":
        return ("increased", "pieauga") if difference > 0 else ("decreased", "samazinājās")
    better = (difference > 0) == (direction == "up")
    return ("improved", "uzlabojās") if better else ("worsened", "pasliktinājās")


CHANGE_VALUES = [
    "estimate_before",
    "estimate_after",
    "difference",
    "se",
    "df",
    "ci_low",
    "ci_high",
    "p_value",
]


def comparison_changes(
    estimates: pd.DataFrame, comparison: Comparison, catalogue: Catalogue, codebook: Codebook
) -> list[dict]:
    """One comparison's change, later wave minus earlier, for every indicator and domain asked
    in both of its waves."""
    keys = ["indicator_id", "breakdown", "domain"]
    ante = estimates[estimates["wave"] == comparison.before].set_index(keys)
    post = estimates[estimates["wave"] == comparison.after].set_index(keys)
    rows = []
    for key in ante.index.intersection(post.index):
        a, p = ante.loc[key], post.loc[key]
        indicator = catalogue.get(key[0])
        variable = codebook.instruments[indicator.instrument].variable(indicator.variable)
        difference = p["estimate"] - a["estimate"]
        se = float(np.hypot(a["se"], p["se"]))
        df = welch_df(a["se"] ** 2, a["df"], p["se"] ** 2, p["df"])
        quantile = t_quantile(1 - ALPHA / 2, df) if df > 0 else np.nan
        p_value = t_two_sided_p(difference / se, df) if se > 0 and df > 0 else np.nan
        english, latvian = verdict(difference, p_value, indicator.direction)
        rows.append(
            {
                "comparison": comparison.id,
                "wave_before": comparison.before,
                "wave_after": comparison.after,
                "indicator_id": key[0],
                "breakdown": key[1],
                "domain": key[2],
                "domain_lv": a["domain_lv"],
                "domain_en": a["domain_en"],
                "estimate_before": a["estimate"],
                "estimate_after": p["estimate"],
                "difference": difference,
                "se": se,
                "df": df,
                "ci_low": difference - quantile * se,
                "ci_high": difference + quantile * se,
                "p_value": p_value,
                "verdict_en": english,
                "verdict_lv": latvian,
                "comparability": comparability(
                    variable, codebook, (comparison.before, comparison.after)
                ),
                "n_before": int(a["n"]),
                "n_after": int(p["n"]),
                # published only where both waves are, so that it tells nothing of a hidden one
                "suppressed": bool(a["suppressed"] or p["suppressed"]),
                "suppression": "; ".join(
                    f"{codebook.waves[w].year}: {r['suppression']}"
                    for w, r in ((comparison.before, a), (comparison.after, p))
                    if r["suppressed"]
                ),
            }
        )
    return rows


def changes(estimates: pd.DataFrame, catalogue: Catalogue, codebook: Codebook) -> pd.DataFrame:
    """Every declared comparison's changes (``study.yaml``), each row carrying its comparison,
    from the published estimates: a change is hidden whenever either of its waves is."""
    rows = [
        row
        for comparison in codebook.comparisons.values()
        for row in comparison_changes(estimates, comparison, catalogue, codebook)
    ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "comparison",
            "wave_before",
            "wave_after",
            "indicator_id",
            "breakdown",
            "domain",
            "domain_lv",
            "domain_en",
            *CHANGE_VALUES,
            "verdict_en",
            "verdict_lv",
            "comparability",
            "n_before",
            "n_after",
            "suppressed",
            "suppression",
        ],
    )
    hidden = frame["suppressed"].astype(bool)
    for column in CHANGE_VALUES:
        frame[column] = frame[column].astype(float).where(~hidden)
    smallest = frame[["n_before", "n_after"]].min(axis=1)
    frame["low_reliability"] = ~hidden & (smallest < catalogue.low_reliability_below)
    frame.loc[hidden, ["verdict_en", "verdict_lv"]] = ["suppressed", "neatklāj"]
    return frame
