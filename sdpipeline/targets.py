"""What each instrument's confidence intervals are about, from the codebook's design: the
population a sample was drawn from, or, for a census (``design.census``), either the units as
they are (``finite_population``: a finite population correction, so a complete census has no
sampling variance) or the process behind their answers (``superpopulation``: none). The gap it
fills: R ``survey`` takes an ``fpc`` column, but which one applies is a decision about the
study that belongs in the codebook and in the report's words, not in an estimator's default.
"""

from __future__ import annotations

from sdpipeline.codebook import Codebook, Instrument, Label
from sdpipeline.reference import ReferenceData

DESIGNS = {
    "stratified_cluster": Label("stratificēta klasteru izlase", "stratified cluster sample"),
    "stratified_srs": Label("stratificēta vienkārša gadījuma izlase", "stratified random sample"),
    "srs": Label("vienkārša gadījuma izlase", "simple random sample"),
    "quota": Label("kvotu izlase", "quota sample"),
    "census": Label("pilna apsekošana", "census"),
}
QUOTA = Label(
    "Kvotu izlase nav varbūtiska: intervāli pieņem, ka tā atbilst gadījuma izlasei.",
    "A quota sample is not a probability sample: the intervals assume it behaves like one.",
)


def population_counts(
    instrument: Instrument, wave: str, codebook: Codebook, ref: ReferenceData
) -> dict[int | None, int] | None:
    """The number of units in each stratum of the population (R ``survey``'s ``fpc``) where
    the instrument is a census of the finite population: {region: units} when it is stratified
    by region, {None: units} when not; None where there is no correction."""
    census = instrument.census
    if census is None or census.target != "finite_population":
        return None
    units = ref.municipalities[codebook.waves[wave].municipality_vintage]
    if instrument.design.get("strata") == "region":
        return {int(r): int(n) for r, n in units.groupby("region_code").size().items()}
    return {None: len(units)}


def population_sql(
    instrument: Instrument, wave: str, codebook: Codebook, ref: ReferenceData
) -> str:
    """``population_counts`` as the SQL expression of a harmonised row's ``design_population``
    (NULL: no finite population correction)."""
    counts = population_counts(instrument, wave, codebook, ref)
    if counts is None:
        return "CAST(NULL AS DOUBLE)"
    if None in counts:
        return f"CAST({counts[None]} AS DOUBLE)"
    cases = " ".join(f"WHEN {region} THEN {n}" for region, n in sorted(counts.items()))
    return f"CAST(CASE CAST(region AS BIGINT) {cases} END AS DOUBLE)"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def statement(instrument: Instrument) -> Label:
    """One sentence per language: the design and what its intervals are about."""
    design = DESIGNS.get(instrument.design.get("type", ""), Label("izlase", "sample"))
    if instrument.census is not None:
        return Label(
            f"{design.lv.capitalize()}. {instrument.census.reason.lv}",
            f"{design.en.capitalize()}. {instrument.census.reason.en}",
        )
    lv = (
        f"{design.lv.capitalize()}; intervāli attiecas uz visu kopu, no kuras tā izlasīta: "
        f"{_lower_first(instrument.respondents.lv)}."
    )
    en = (
        f"{design.en.capitalize()}; the intervals are about the whole population it was drawn "
        f"from: {_lower_first(instrument.respondents.en)}."
    )
    if instrument.design.get("type") == "quota":
        lv, en = f"{lv} {QUOTA.lv}", f"{en} {QUOTA.en}"
    return Label(lv, en)
