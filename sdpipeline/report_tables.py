"""The tables of the ministry's report, shaped as printed: one row per line of the table,
bilingual headers, figures rounded for print, disclosure control carried from the estimates."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sdpipeline import disclosure
from sdpipeline.codebook import Codebook
from sdpipeline.estimation import Design, t_quantile, weighted_mean, welch_df
from sdpipeline.indicators import Catalogue

INSTRUMENT_COLUMN = "Instruments / Instrument"
SUPPRESSED = "Neatklāj (n < {n}) / Suppressed (n < {n})"


def _round(value: float, digits: int = 1) -> float:
    """Rounded for print, never to a negative zero: −0.04 prints as 0.0, not "-0,0"."""
    return round(float(value), digits) + 0.0


def _ci(low: float, high: float, digits: int = 1) -> str | None:
    if pd.isna(low) or pd.isna(high):
        return None
    return f"[{_round(low, digits):.{digits}f}; {_round(high, digits):.{digits}f}]"


def _flag(row: pd.Series, catalogue: Catalogue) -> str:
    if row.get("suppressed"):
        return SUPPRESSED.format(n=catalogue.suppress_below)
    if row.get("low_reliability"):
        return f"Zema ticamība (n < {catalogue.low_reliability_below}) / Low reliability"
    return ""


def _waves_and_change(
    ante: pd.Series | None, post: pd.Series | None, change: pd.Series | None, codebook: Codebook
) -> dict[str, object]:
    """The columns every indicator table prints: both waves, the change and its CI."""
    first, last = next(iter(codebook.waves)), list(codebook.waves)[-1]
    return {
        f"{codebook.waves[first].year}": None if ante is None else _round(ante["estimate"], 1),
        f"{codebook.waves[last].year}": None if post is None else _round(post["estimate"], 1),
        "Izmaiņas / Change": None if change is None else _round(change["difference"], 1),
        "95% TI / 95% CI": None if change is None else _ci(change["ci_low"], change["ci_high"]),
    }


def headline(
    estimates: pd.DataFrame, changes: pd.DataFrame, catalogue: Catalogue, codebook: Codebook
) -> pd.DataFrame:
    """Every indicator nationally: both waves, the change, its CI and the verdict."""
    first, last = next(iter(codebook.waves)), list(codebook.waves)[-1]
    national = estimates[estimates["breakdown"] == "national"].set_index(["indicator_id", "wave"])
    moved = changes[changes["breakdown"] == "national"].set_index("indicator_id")
    rows = []
    for number, indicator in enumerate(catalogue.indicators, start=1):
        instrument = codebook.instruments[indicator.instrument]
        ante = (
            national.loc[(indicator.id, first)] if (indicator.id, first) in national.index else None
        )
        post = (
            national.loc[(indicator.id, last)] if (indicator.id, last) in national.index else None
        )
        change = moved.loc[indicator.id] if indicator.id in moved.index else None
        rows.append(
            {
                "Nr.": number,
                "Kods / Code": indicator.id,
                "Rādītājs": indicator.name.lv,
                "Indicator": indicator.name.en,
                INSTRUMENT_COLUMN: f"{instrument.label.lv} / {instrument.label.en}",
                "Mērvienība / Unit": indicator.unit,
                **_waves_and_change(ante, post, change, codebook),
                "p": None
                if change is None or pd.isna(change["p_value"])
                else _round(change["p_value"], 3),
                "Vērtējums": "jautāts tikai vienā vilnī"
                if change is None
                else change["verdict_lv"],
                "Verdict": "asked in one wave only" if change is None else change["verdict_en"],
                "Salīdzināmība / Comparability": None
                if change is None
                else change["comparability"],
                "Piezīmes / Notes": " ".join(
                    flag
                    for flag in (_flag(r, catalogue) for r in (ante, post) if r is not None)
                    if flag
                ),
            }
        )
    return pd.DataFrame(rows)


def by_region(
    estimates: pd.DataFrame, changes: pd.DataFrame, catalogue: Catalogue, codebook: Codebook
) -> pd.DataFrame:
    """Each indicator by statistical region: both waves and the change."""
    first, last = next(iter(codebook.waves)), list(codebook.waves)[-1]
    regional = estimates[estimates["breakdown"] == "region"]
    moved = changes[changes["breakdown"] == "region"].set_index(["indicator_id", "domain"])
    rows = []
    for indicator in catalogue.indicators:
        for domain, group in regional[regional["indicator_id"] == indicator.id].groupby(
            "domain", sort=True
        ):
            by_wave = group.set_index("wave")
            change = (
                moved.loc[(indicator.id, domain)] if (indicator.id, domain) in moved.index else None
            )
            post = by_wave.loc[last] if last in by_wave.index else None
            ante = by_wave.loc[first] if first in by_wave.index else None
            rows.append(
                {
                    "Kods / Code": indicator.id,
                    "Rādītājs": indicator.name.lv,
                    "Indicator": indicator.name.en,
                    "Reģions": group["domain_lv"].iloc[0],
                    "Region": group["domain_en"].iloc[0],
                    **_waves_and_change(ante, post, change, codebook),
                    "Vērtējums / Verdict": None
                    if change is None
                    else f"{change['verdict_lv']} / {change['verdict_en']}",
                    f"n {codebook.waves[last].year}": None if post is None else int(post["n"]),
                    "Piezīmes / Notes": " ".join(
                        f for f in (_flag(r, catalogue) for r in (ante, post) if r is not None) if f
                    ),
                }
            )
    return pd.DataFrame(rows)


def _shares(
    table: pd.DataFrame, variables: list[str], wave: str, catalogue: Catalogue
) -> pd.DataFrame:
    """Weighted share answering 'yes' (code 1) to each variable in one wave, with n."""
    rows = []
    in_wave = (table["wave"] == wave).to_numpy()
    design = Design.of_table(table)
    for name in variables:
        codes = table[name].astype(float)
        y = np.where(codes >= 0, (codes == 1).astype(float), np.nan)
        e = weighted_mean(y, table["weight"], None, None, in_wave, design=design)
        rows.append({"variable": name, "share": e.estimate * 100, "n": e.n})
    return disclosure.protect(
        pd.DataFrame(rows),
        "n",
        ["share"],
        catalogue.suppress_below,
        catalogue.low_reliability_below,
    )


def _question(codebook: Codebook, instrument: str, variable: str) -> tuple[str, str]:
    question = codebook.instruments[instrument].variable(variable).question
    return question.lv, question.en


def barriers_ranked(
    tables: dict[str, pd.DataFrame], catalogue: Catalogue, codebook: Codebook
) -> pd.DataFrame:
    """Barriers named by cooperation partners and municipal leaders, ranked by 2023."""
    barriers = catalogue.groups["barriers"]
    first, last = next(iter(codebook.waves)), list(codebook.waves)[-1]
    columns = {}
    for instrument in ("partners", "leaders"):
        label = codebook.instruments[instrument].label
        for wave in (last, first):
            shares = _shares(tables[instrument], barriers, wave, catalogue).set_index("variable")
            columns[f"{label.lv} {codebook.waves[wave].year} / {label.en} (%)"] = (
                shares["share"].round(1) + 0.0
            )
    frame = pd.DataFrame(columns)
    post = [c for c in frame.columns if str(codebook.waves[last].year) in c]
    frame = frame.assign(_order=frame[post].mean(axis=1)).sort_values("_order", ascending=False)
    labels = [_question(codebook, "partners", b) for b in frame.index]
    frame.insert(0, "Šķērslis", [lv.split(": ")[-1] for lv, _ in labels])
    frame.insert(1, "Barrier", [en.split(": ")[-1] for _, en in labels])
    frame.insert(0, "Vieta / Rank", range(1, len(frame) + 1))
    return frame.drop(columns="_order").reset_index(drop=True)


def services_offered_vs_wanted(
    tables: dict[str, pd.DataFrame], catalogue: Catalogue, codebook: Codebook
) -> pd.DataFrame:
    """Services the heads say they offer against what partners and leaders want expanded (2023)."""
    last = list(codebook.waves)[-1]
    pairs = catalogue.groups["services_offered_vs_wanted"]
    offered = _shares(tables["heads"], [p["offered"] for p in pairs], last, catalogue).set_index(
        "variable"
    )
    partners = _shares(tables["partners"], [p["wanted"] for p in pairs], last, catalogue).set_index(
        "variable"
    )
    leaders = _shares(tables["leaders"], [p["wanted"] for p in pairs], last, catalogue).set_index(
        "variable"
    )
    rows = []
    for pair in pairs:
        lv, en = _question(codebook, "partners", pair["wanted"])
        wanted = np.nanmean(
            [partners.loc[pair["wanted"], "share"], leaders.loc[pair["wanted"], "share"]]
        )
        rows.append(
            {
                "Pakalpojums": lv.split(": ")[-1].replace("… ", ""),
                "Service": en.split(": ")[-1].replace("… ", ""),
                "Nodrošina (vadītāji, %) / Offered (heads, %)": _round(
                    offered.loc[pair["offered"], "share"], 1
                ),
                "Jāpaplašina (partneri, %) / Should expand (partners, %)": _round(
                    partners.loc[pair["wanted"], "share"], 1
                ),
                "Jāpaplašina (pašvaldību vadītāji, %) / Should expand (leaders, %)": _round(
                    leaders.loc[pair["wanted"], "share"], 1
                ),
                "Atšķirība / Gap (pp)": _round(wanted - offered.loc[pair["offered"], "share"], 1),
            }
        )
    return pd.DataFrame(rows)


def specialists_time_use(
    specialists: pd.DataFrame, catalogue: Catalogue, codebook: Codebook
) -> pd.DataFrame:
    """How specialists divide their working time, in both waves."""
    first, last = next(iter(codebook.waves)), list(codebook.waves)[-1]
    rows = []
    weights = specialists["weight"]
    design = Design.of_table(specialists)
    before = (specialists["wave"] == first).to_numpy()
    after = (specialists["wave"] == last).to_numpy()
    for name in catalogue.groups["time_use"]:
        lv, en = _question(codebook, "specialists", name)
        y = specialists[name].to_numpy(dtype=float)
        a = weighted_mean(y, weights, None, None, before, design=design)
        b = weighted_mean(y, weights, None, None, after, design=design)
        se = float(np.hypot(a.se, b.se))
        df = welch_df(a.se**2, a.df, b.se**2, b.df)
        quantile = t_quantile(0.975, df) if df > 0 else np.nan
        rows.append(
            {
                "Darba laiks": lv,
                "Working time": en,
                f"{codebook.waves[first].year} (%)": _round(a.estimate, 1),
                f"{codebook.waves[last].year} (%)": _round(b.estimate, 1),
                "Izmaiņas / Change (pp)": _round(b.estimate - a.estimate, 1),
                "95% TI / 95% CI": _ci(
                    b.estimate - a.estimate - quantile * se, b.estimate - a.estimate + quantile * se
                ),
                "n_ante": a.n,
                "n_post": b.n,
            }
        )
    frame = disclosure.protect(
        pd.DataFrame(rows),
        ["n_ante", "n_post"],
        [
            f"{codebook.waves[first].year} (%)",
            f"{codebook.waves[last].year} (%)",
            "Izmaiņas / Change (pp)",
        ],
        catalogue.suppress_below,
        catalogue.low_reliability_below,
    )
    return frame.drop(columns=["suppressed", "low_reliability", "n_ante", "n_post"])


def project_participation(attribution: pd.DataFrame, catalogue: Catalogue) -> pd.DataFrame:
    """The project's association with the specialists' indicators, and what it cannot show."""
    rows = []
    for row in attribution.itertuples():
        indicator = catalogue.get(row.indicator_id)
        rows.append(
            {
                "Analīze / Analysis": row.analysis,
                "Rādītājs": indicator.name.lv,
                "Indicator": indicator.name.en,
                "Salīdzinājums / Comparison": row.term,
                "Dalībnieki / Participants": None
                if pd.isna(row.participants)
                else _round(row.participants, 1),
                "Pārējie / Others": None if pd.isna(row.others) else _round(row.others, 1),
                "Atšķirība / Difference": None
                if pd.isna(row.estimate)
                else _round(row.estimate, 1),
                "95% TI / 95% CI": _ci(row.ci_low, row.ci_high),
                "p": None if pd.isna(row.p_value) else _round(row.p_value, 3),
                "Vienības / Units": int(row.units),
                "Ierobežojumi / Caveat": row.caveat,
            }
        )
    return pd.DataFrame(rows)


def change_decomposition(decomposition: pd.DataFrame, catalogue: Catalogue) -> pd.DataFrame:
    """How much of each national change comes from who was surveyed rather than from practice."""
    rows = []
    for row in decomposition.itertuples():
        indicator = catalogue.get(row.indicator_id)
        rows.append(
            {
                "Kods / Code": row.indicator_id,
                "Rādītājs": indicator.name.lv,
                "Indicator": indicator.name.en,
                "Izmaiņas / Change": None if pd.isna(row.change) else _round(row.change, 2),
                "Iekšējā daļa / Within groups": None
                if pd.isna(row.within)
                else _round(row.within, 2),
                "Sastāva daļa / Composition": None
                if pd.isna(row.composition)
                else _round(row.composition, 2),
                "Grupas / Groups": row.groups,
            }
        )
    return pd.DataFrame(rows)
