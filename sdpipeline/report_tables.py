"""The tables of the ministry's report, shaped as printed: one row per line of the table,
bilingual headers, figures rounded for print, disclosure control carried from the estimates.

Every indicator table has one column per wave and one block of change columns per declared
comparison (``study.yaml``); the headers name the waves and comparisons by their years, so a
new wave or comparison is a new column or block, never a relabelled one."""

from __future__ import annotations

from collections.abc import Collection

import duckdb
import numpy as np
import pandas as pd

from sdpipeline import disclosure, targets
from sdpipeline.codebook import Codebook, Comparison, Label
from sdpipeline.effectiveness import wave_rows
from sdpipeline.estimation import t_quantile, weighted_mean, welch_df
from sdpipeline.indicators import Catalogue, Indicator
from sdpipeline.warehouse import qualified

# Every header of the report tables, named once: report_columns says what each one holds.
NUMBER = "Nr."
CODE = "Kods / Code"
NAME_LV = "Rādītājs"
NAME_EN = "Indicator"
INSTRUMENT_COLUMN = "Instruments / Instrument"
UNIT = "Mērvienība / Unit"
NOTES = "Piezīmes / Notes"
REGION_LV = "Reģions"
REGION_EN = "Region"
RANK = "Vieta / Rank"
BARRIER_LV = "Šķērslis"
BARRIER_EN = "Barrier"
SERVICE_LV = "Pakalpojums"
SERVICE_EN = "Service"
TIME_USE_LV = "Darba laiks"
TIME_USE_EN = "Working time"
ANALYSIS = "Analīze / Analysis"
TERM = "Salīdzinājums / Comparison"
PARTICIPANTS = "Dalībnieki / Participants"
OTHERS = "Pārējie / Others"
DIFFERENCE = "Atšķirība / Difference"
UNITS = "Vienības / Units"
CAVEAT = "Ierobežojumi / Caveat"
WITHIN = "Iekšējā daļa / Within groups"
COMPOSITION = "Sastāva daļa / Composition"
GROUPS = "Grupas / Groups"
P = "p"
VERDICT_LV = "Vērtējums"
VERDICT_BOTH = "Vērtējums / Verdict"
COMPARABILITY = "Salīdzināmība / Comparability"
SUPPRESSED = "Neatklāj / Suppressed ({reason})"
WAVE_OR_COMPARISON = "Vilnis vai salīdzinājums / Wave or comparison"
CHANGE = "Izmaiņas / Change"
CI = "95% TI / 95% CI"
VERDICT = "Verdict"
TIME_CHANGE = "Izmaiņas / Change (pp)"
# services_offered_vs_wanted: each wave's four columns, by what they hold (the instrument whose
# answers each share is, or the gap between them)
SERVICE_COLUMNS = {
    "heads": "Nodrošina (vadītāji, %) / Offered (heads, %)",
    "partners": "Jāpaplašina (partneri, %) / Should expand (partners, %)",
    "leaders": "Jāpaplašina (pašvaldību vadītāji, %) / Should expand (leaders, %)",
    "gap": "Atšķirība / Gap (pp)",
}
RESPONDENTS = "Respondenti / Respondents"
DEGREES_OF_FREEDOM = "Brīvības pakāpes / Degrees of freedom"
TARGET_LV = "Intervāli attiecas uz"
TARGET_EN = "The intervals are about"
BOOTSTRAP_CI = "95% TI (savvaļas klasteru butstraps) / 95% CI (wild cluster bootstrap)"
BOOTSTRAP_P = "p (butstraps / bootstrap)"
CLUSTERS = "Pašvaldības: maz / dažas / lielākā daļa / Municipalities: little / some / most"


def tag(comparison: Comparison, codebook: Codebook) -> str:
    """How headers and rows name a comparison: its waves' years, earlier first."""
    return f"{codebook.waves[comparison.before].year}→{codebook.waves[comparison.after].year}"


def header(name: str, comparison_tag: str) -> str:
    """A change column's header: the column's name and the comparison it belongs to."""
    return f"{name} {comparison_tag}"


def year_column(codebook: Codebook, wave: str, suffix: str = "") -> str:
    """A wave's column, headed by its year (``suffix``: what the column counts, e.g. " (%)")."""
    return f"{codebook.waves[wave].year}{suffix}"


def count_column(codebook: Codebook, wave: str) -> str:
    return f"n {codebook.waves[wave].year}"


def share_column(label: Label, codebook: Codebook, wave: str) -> str:
    """barriers_ranked: one instrument's share in one wave."""
    return f"{label.lv} {codebook.waves[wave].year} / {label.en} (%)"


def service_column(what: str, codebook: Codebook, wave: str) -> str:
    return f"{SERVICE_COLUMNS[what]} {codebook.waves[wave].year}"


def unit_text(indicator: Indicator, catalogue: Catalogue) -> str:
    unit = catalogue.report.units[indicator.unit]
    return unit.text(unit.value)


def question_tail(codebook: Codebook, instrument: str, variable: str) -> Label:
    """An item of a question block as a row names it: the text after the block's stem."""
    question = codebook.instruments[instrument].variable(variable).question
    return Label(
        question.lv.split(": ")[-1].replace("… ", ""), question.en.split(": ")[-1].replace("… ", "")
    )


def _ci(low: float, high: float, digits: int = 1) -> str | None:
    if pd.isna(low) or pd.isna(high):
        return None
    return f"[{_round(low, digits):.{digits}f}; {_round(high, digits):.{digits}f}]"


def _round(value: float, digits: int = 1) -> float | None:
    """Rounded for print, never to a negative zero: −0.04 prints as 0.0, not "-0,0"."""
    return None if pd.isna(value) else round(float(value), digits) + 0.0


def _flag(row: pd.Series, catalogue: Catalogue) -> str:
    if row.get("suppressed"):
        return SUPPRESSED.format(reason=row.get("suppression") or f"n < {catalogue.suppress_below}")
    if row.get("low_reliability"):
        return f"Zema ticamība (n < {catalogue.low_reliability_below}) / Low reliability"
    return ""


def _notes(by_wave: dict[str, pd.Series | None], catalogue: Catalogue, codebook: Codebook) -> str:
    """Each wave's disclosure flag, named by its year."""
    return "; ".join(
        f"{codebook.waves[wave].year}: {flag}"
        for wave, row in by_wave.items()
        if row is not None and (flag := _flag(row, catalogue))
    )


def _waves(by_wave: dict[str, pd.Series | None], codebook: Codebook) -> dict[str, object]:
    """One column per wave: its estimate, headed by its year."""
    return {
        year_column(codebook, wave): None if row is None else _round(row["estimate"])
        for wave, row in by_wave.items()
    }


def _not_compared(
    variable_waves: set[str], comparison: Comparison, codebook: Codebook
) -> tuple[str, str]:
    """Why a comparison has no change for an indicator, from the comparison's own waves:
    (Latvian, English)."""
    years = [
        str(codebook.waves[w].year)
        for w in (comparison.before, comparison.after)
        if w not in variable_waves
    ]
    if years:
        return f"nav jautāts {'. un '.join(years)}. gadā", f"not asked in {' and '.join(years)}"
    return "nav novērtējams", "not estimable"


def _lookup(frame: pd.DataFrame, key: tuple) -> pd.Series | None:
    return frame.loc[key] if key in frame.index else None


def headline(
    estimates: pd.DataFrame, changes: pd.DataFrame, catalogue: Catalogue, codebook: Codebook
) -> pd.DataFrame:
    """Every indicator nationally: every wave, and each comparison's change, CI and verdict."""
    national = estimates[estimates["breakdown"] == "national"].set_index(["indicator_id", "wave"])
    moved = changes[changes["breakdown"] == "national"].set_index(["comparison", "indicator_id"])
    rows = []
    for number, indicator in enumerate(catalogue.indicators, start=1):
        instrument = codebook.instruments[indicator.instrument]
        asked = set(instrument.variable(indicator.variable).sources)
        by_wave = {w: _lookup(national, (indicator.id, w)) for w in codebook.waves}
        row: dict[str, object] = {
            NUMBER: number,
            CODE: indicator.id,
            NAME_LV: indicator.name.lv,
            NAME_EN: indicator.name.en,
            INSTRUMENT_COLUMN: f"{instrument.label.lv} / {instrument.label.en}",
            UNIT: unit_text(indicator, catalogue),
            **_waves(by_wave, codebook),
        }
        for comparison in codebook.comparisons.values():
            change = _lookup(moved, (comparison.id, indicator.id))
            why_lv, why_en = _not_compared(asked, comparison, codebook)
            suffix = tag(comparison, codebook)
            row |= {
                header(CHANGE, suffix): None if change is None else _round(change["difference"]),
                header(CI, suffix): None
                if change is None
                else _ci(change["ci_low"], change["ci_high"]),
                header(P, suffix): None if change is None else _round(change["p_value"], 3),
                header(VERDICT_LV, suffix): why_lv if change is None else change["verdict_lv"],
                header(VERDICT, suffix): why_en if change is None else change["verdict_en"],
                header(COMPARABILITY, suffix): None if change is None else change["comparability"],
            }
        row[NOTES] = _notes(by_wave, catalogue, codebook)
        rows.append(row)
    return pd.DataFrame(rows)


def by_region(
    estimates: pd.DataFrame, changes: pd.DataFrame, catalogue: Catalogue, codebook: Codebook
) -> pd.DataFrame:
    """Each indicator by statistical region: every wave, each comparison's change, n per wave."""
    regional = estimates[estimates["breakdown"] == "region"]
    moved = changes[changes["breakdown"] == "region"].set_index(
        ["comparison", "indicator_id", "domain"]
    )
    rows = []
    for indicator in catalogue.indicators:
        for domain, group in regional[regional["indicator_id"] == indicator.id].groupby(
            "domain", sort=True
        ):
            indexed = group.set_index("wave")
            by_wave = {w: _lookup(indexed, w) for w in codebook.waves}
            row: dict[str, object] = {
                CODE: indicator.id,
                NAME_LV: indicator.name.lv,
                NAME_EN: indicator.name.en,
                REGION_LV: group["domain_lv"].iloc[0],
                REGION_EN: group["domain_en"].iloc[0],
                **_waves(by_wave, codebook),
            }
            for comparison in codebook.comparisons.values():
                change = _lookup(moved, (comparison.id, indicator.id, domain))
                suffix = tag(comparison, codebook)
                row |= {
                    header(CHANGE, suffix): None
                    if change is None
                    else _round(change["difference"]),
                    header(CI, suffix): None
                    if change is None
                    else _ci(change["ci_low"], change["ci_high"]),
                    header(VERDICT_BOTH, suffix): None
                    if change is None
                    else f"{change['verdict_lv']} / {change['verdict_en']}",
                }
            for wave, estimate in by_wave.items():
                row[count_column(codebook, wave)] = None if estimate is None else int(estimate["n"])
            row[NOTES] = _notes(by_wave, catalogue, codebook)
            rows.append(row)
    return pd.DataFrame(rows)


def hidden_national(estimates: pd.DataFrame, catalogue: Catalogue) -> set[tuple[str, str, str]]:
    """(instrument, variable, wave) of every national figure the indicator tables hide: a
    table that publishes the same share of the same answers hides it too, or it would hand
    back what secondary suppression hid."""
    rows = estimates[(estimates["breakdown"] == "national") & estimates["suppressed"].astype(bool)]
    return {
        (catalogue.get(i).instrument, catalogue.get(i).variable, w)
        for i, w in zip(rows["indicator_id"], rows["wave"], strict=True)
    }


def _shares(
    table: pd.DataFrame,
    variables: list[str],
    wave: str,
    catalogue: Catalogue,
    hidden: Collection[str] = (),
) -> pd.DataFrame:
    """Weighted share answering 'yes' (code 1) to each variable in one wave, with n; blank for
    the ``hidden`` variables (``hidden_national``) as for too few respondents."""
    rows = []
    own = wave_rows(table, wave)
    in_wave = table.iloc[own.rows]
    for name in variables:
        codes = in_wave[name].astype(float)
        y = np.where(codes >= 0, (codes == 1).astype(float), np.nan)
        e = weighted_mean(y, in_wave["weight"], None, None, design=own.design)
        rows.append({"variable": name, "share": e.estimate * 100, "n": e.n})
    shares = disclosure.protect(
        pd.DataFrame(rows),
        "n",
        ["share"],
        catalogue.suppress_below,
        catalogue.low_reliability_below,
    )
    hide = shares["variable"].isin(list(hidden))
    shares.loc[hide, "share"] = np.nan
    shares.loc[hide, "suppressed"] = True
    shares.loc[hide, "low_reliability"] = False
    return shares


def _question(codebook: Codebook, instrument: str, variable: str) -> tuple[str, str]:
    question = codebook.instruments[instrument].variable(variable).question
    return question.lv, question.en


def _asking(codebook: Codebook, instrument: str, variables: list[str]) -> list[str]:
    """The waves (in order) in which ``instrument`` asked every one of ``variables``."""
    spec = codebook.instruments[instrument]
    return [
        wave
        for wave in codebook.waves
        if wave in spec.files and all(spec.variable(v).asked_in(wave) for v in variables)
    ]


def barriers_ranked(
    tables: dict[str, pd.DataFrame],
    catalogue: Catalogue,
    codebook: Codebook,
    hidden: Collection[tuple[str, str, str]] = (),
) -> pd.DataFrame:
    """Barriers named by cooperation partners and municipal leaders in every wave, newest
    first, ranked by the newest wave that asked them; ``hidden``: ``hidden_national``."""
    barriers = catalogue.groups["barriers"]
    columns, newest = {}, {}
    for instrument in ("partners", "leaders"):
        label = codebook.instruments[instrument].label
        for wave in reversed(_asking(codebook, instrument, barriers)):
            shares = _shares(
                tables[instrument], barriers, wave, catalogue, _of(hidden, instrument, wave)
            ).set_index("variable")
            column = share_column(label, codebook, wave)
            columns[column] = shares["share"].round(1) + 0.0
            newest.setdefault(instrument, column)
    frame = pd.DataFrame(columns)
    frame = frame.assign(_order=frame[list(newest.values())].mean(axis=1)).sort_values(
        "_order", ascending=False
    )
    labels = [question_tail(codebook, "partners", b) for b in frame.index]
    frame.insert(0, BARRIER_LV, [label.lv for label in labels])
    frame.insert(1, BARRIER_EN, [label.en for label in labels])
    frame.insert(0, RANK, range(1, len(frame) + 1))
    return frame.drop(columns="_order").reset_index(drop=True)


def _of(hidden: Collection[tuple[str, str, str]], instrument: str, wave: str) -> set[str]:
    return {v for i, v, w in hidden if i == instrument and w == wave}


def services_offered_vs_wanted(
    tables: dict[str, pd.DataFrame],
    catalogue: Catalogue,
    codebook: Codebook,
    hidden: Collection[tuple[str, str, str]] = (),
) -> pd.DataFrame:
    """Services the heads say they offer against what partners and leaders want expanded, in
    every wave that asked all three; ``hidden``: ``hidden_national`` (a gap hides with its
    parts, or it would give a hidden one back)."""
    pairs = catalogue.groups["services_offered_vs_wanted"]
    offered_names = [p["offered"] for p in pairs]
    wanted_names = [p["wanted"] for p in pairs]
    waves = [
        w
        for w in _asking(codebook, "heads", offered_names)
        if w in _asking(codebook, "partners", wanted_names)
        and w in _asking(codebook, "leaders", wanted_names)
    ]
    rows = []
    for pair in pairs:
        label = question_tail(codebook, "partners", pair["wanted"])
        rows.append({SERVICE_LV: label.lv, SERVICE_EN: label.en})
    for wave in waves:
        offered = _shares(
            tables["heads"], offered_names, wave, catalogue, _of(hidden, "heads", wave)
        ).set_index("variable")
        partners = _shares(
            tables["partners"], wanted_names, wave, catalogue, _of(hidden, "partners", wave)
        ).set_index("variable")
        leaders = _shares(
            tables["leaders"], wanted_names, wave, catalogue, _of(hidden, "leaders", wave)
        ).set_index("variable")
        for row, pair in zip(rows, pairs, strict=True):
            wanted = np.nanmean(
                [partners.loc[pair["wanted"], "share"], leaders.loc[pair["wanted"], "share"]]
            )
            row |= {
                service_column("heads", codebook, wave): _round(
                    offered.loc[pair["offered"], "share"], 1
                ),
                service_column("partners", codebook, wave): _round(
                    partners.loc[pair["wanted"], "share"], 1
                ),
                service_column("leaders", codebook, wave): _round(
                    leaders.loc[pair["wanted"], "share"], 1
                ),
                service_column("gap", codebook, wave): _round(
                    wanted - offered.loc[pair["offered"], "share"], 1
                ),
            }
    return pd.DataFrame(rows)


def specialists_time_use(
    specialists: pd.DataFrame, catalogue: Catalogue, codebook: Codebook
) -> pd.DataFrame:
    """How specialists divide their working time in every wave, and each comparison's change."""
    waves = _asking(codebook, "specialists", catalogue.groups["time_use"])
    designs = {wave: wave_rows(specialists, wave) for wave in waves}
    rows = []
    for name in catalogue.groups["time_use"]:
        lv, en = _question(codebook, "specialists", name)
        y = specialists[name].to_numpy(dtype=float)
        weights = specialists["weight"].to_numpy(dtype=float)
        means = {
            wave: weighted_mean(y[own.rows], weights[own.rows], None, None, design=own.design)
            for wave, own in designs.items()
        }
        row: dict[str, object] = {TIME_USE_LV: lv, TIME_USE_EN: en}
        for wave, mean in means.items():
            own = designs[wave].rows
            answered = own[~np.isnan(y[own])]
            dominated = disclosure.dominance(y[answered], weights[answered], catalogue.disclosure)
            row[year_column(codebook, wave, " (%)")] = _round(mean.estimate, 1)
            # a mean a few specialists dominate is hidden as one under the threshold is
            row[f"_n {wave}"] = 0 if dominated else mean.n
        for comparison in codebook.comparisons.values():
            if comparison.before not in means or comparison.after not in means:
                continue
            a, b = means[comparison.before], means[comparison.after]
            se = float(np.hypot(a.se, b.se))
            df = welch_df(a.se**2, a.df, b.se**2, b.df)
            quantile = t_quantile(0.975, df) if df > 0 else np.nan
            difference = b.estimate - a.estimate
            suffix = tag(comparison, codebook)
            row |= {
                header(TIME_CHANGE, suffix): _round(difference, 1),
                header(CI, suffix): _ci(difference - quantile * se, difference + quantile * se),
            }
        rows.append(row)
    frame = pd.DataFrame(rows)
    for wave in waves:
        frame = _hide_complement(frame, wave, year_column(codebook, wave, " (%)"), catalogue)
        frame = _protect(frame, [wave], [year_column(codebook, wave, " (%)")], catalogue)
    for comparison in codebook.comparisons.values():
        suffix = tag(comparison, codebook)
        change = header(TIME_CHANGE, suffix)
        if change in frame:
            waves_compared = [comparison.before, comparison.after]
            frame = _protect(frame, waves_compared, [change, header(CI, suffix)], catalogue)
    return frame.drop(columns=[f"_n {wave}" for wave in waves])


def _hide_complement(
    frame: pd.DataFrame, wave: str, column: str, catalogue: Catalogue
) -> pd.DataFrame:
    """Secondary suppression for parts of a whole: a wave's time shares add up to 100, so one
    hidden share is 100 less the others, and its change is minus the sum of theirs. When
    exactly one share of ``wave`` is hidden, the smallest of the others is hidden with it (its
    level, and every change it enters); the two then give back only their sum."""
    counts = frame[f"_n {wave}"]
    hidden = counts < catalogue.suppress_below
    others = frame.loc[~hidden, column].dropna()
    if hidden.sum() != 1 or others.empty:
        return frame
    frame = frame.copy()
    frame.loc[others.idxmin(), f"_n {wave}"] = 0
    return frame


def _protect(
    frame: pd.DataFrame, waves: list[str], columns: list[str], catalogue: Catalogue
) -> pd.DataFrame:
    """Blank ``columns`` where any of ``waves`` has too few respondents (disclosure rules)."""
    numeric = [c for c in columns if pd.api.types.is_numeric_dtype(frame[c])]
    protected = disclosure.protect(
        frame,
        [f"_n {wave}" for wave in waves],
        numeric,
        catalogue.suppress_below,
        catalogue.low_reliability_below,
    )
    for column in columns:
        if column not in numeric:
            protected[column] = frame[column].where(~protected["suppressed"])
    return protected.drop(columns=["suppressed", "low_reliability"])


def project_participation(
    attribution: pd.DataFrame, catalogue: Catalogue, codebook: Codebook
) -> pd.DataFrame:
    """The project's association with the specialists' indicators, per wave and per
    comparison, and what it cannot show."""
    rows = []
    for row in attribution.itertuples():
        indicator = catalogue.get(row.indicator_id)
        where = (
            tag(codebook.comparisons[row.comparison], codebook)
            if isinstance(row.comparison, str)
            else str(codebook.waves[row.wave].year)
        )
        rows.append(
            {
                ANALYSIS: row.analysis,
                WAVE_OR_COMPARISON: where,
                NAME_LV: indicator.name.lv,
                NAME_EN: indicator.name.en,
                TERM: row.term,
                PARTICIPANTS: _round(row.participants),
                OTHERS: _round(row.others),
                DIFFERENCE: _round(row.estimate),
                CI: _ci(row.ci_low, row.ci_high),
                P: _round(row.p_value, 3),
                BOOTSTRAP_CI: _ci(row.wcb_ci_low, row.wcb_ci_high),
                BOOTSTRAP_P: _round(row.wcb_p_value, 3),
                UNITS: int(row.units),
                CLUSTERS: None
                if pd.isna(row.clusters_none)
                else f"{row.clusters_none:.0f} / {row.clusters_some:.0f} / {row.clusters_most:.0f}",
                CAVEAT: row.caveat,
            }
        )
    return pd.DataFrame(rows)


def change_decomposition(
    decomposition: pd.DataFrame, catalogue: Catalogue, codebook: Codebook
) -> pd.DataFrame:
    """How much of each national change, in each comparison, comes from who was surveyed
    rather than from practice."""
    rows = []
    for row in decomposition.itertuples():
        indicator = catalogue.get(row.indicator_id)
        rows.append(
            {
                WAVE_OR_COMPARISON: tag(codebook.comparisons[row.comparison], codebook),
                CODE: row.indicator_id,
                NAME_LV: indicator.name.lv,
                NAME_EN: indicator.name.en,
                CHANGE: _round(row.change, 2),
                WITHIN: _round(row.within, 2),
                COMPOSITION: _round(row.composition, 2),
                GROUPS: row.groups,
            }
        )
    columns = [WAVE_OR_COMPARISON, CODE, NAME_LV, NAME_EN, CHANGE, WITHIN, COMPOSITION, GROUPS]
    return pd.DataFrame(rows, columns=columns)  # no comparison declared: no rows


def design_counts(
    connection: duckdb.DuckDBPyConnection, instrument: str
) -> dict[str, tuple[int, int]]:
    """Each wave's respondents and the degrees of freedom of its national estimates (PSUs less
    strata, as ``Design.domain_df`` counts them), counted in the warehouse: the whole table
    need not come into Python for a handful of counts (2.4 million residents' rows at a
    register's size)."""
    rows = connection.execute(
        "WITH units AS (SELECT wave, design_stratum, design_psu, count(*) AS respondents "
        f"FROM {qualified('harmonised', instrument)} GROUP BY ALL) "
        "SELECT wave, sum(respondents), count(*) - count(DISTINCT design_stratum) "
        "FROM units GROUP BY wave"
    ).fetchall()
    return {str(wave): (int(n), int(df)) for wave, n, df in rows}


def instrument_notes(connection: duckdb.DuckDBPyConnection, codebook: Codebook) -> pd.DataFrame:
    """The report's table of what each instrument's intervals are about: its design, its
    respondents and the degrees of freedom of its national estimates in each wave (PSUs less
    strata), and the target of its intervals, in both languages."""
    rows = []
    for name, instrument in codebook.instruments.items():
        counted = design_counts(connection, name)
        counts, degrees = [], []
        for wave, spec in codebook.waves.items():
            if wave in counted:
                respondents, df = counted[wave]
                counts.append(f"{spec.year}: {respondents}")
                degrees.append(f"{spec.year}: {df}")
        said = targets.statement(instrument)
        rows.append(
            {
                INSTRUMENT_COLUMN: f"{instrument.label.lv} / {instrument.label.en}",
                RESPONDENTS: "; ".join(counts),
                DEGREES_OF_FREEDOM: "; ".join(degrees),
                TARGET_LV: said.lv,
                TARGET_EN: said.en,
            }
        )
    return pd.DataFrame(rows)
