"""The codebook and delivery contract as a Markdown document, generated from the YAML files so
that the documentation can never say something the pipeline does not do."""

from __future__ import annotations

from pathlib import Path

from sdpipeline import settings
from sdpipeline.codebook import Codebook, SourceVariable, Variable

DOC_PATH = settings.REPO_ROOT / "docs" / "codebook.md"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _source(source: SourceVariable | None) -> str:
    if source is None:
        return "—"
    if source.scale is not None:
        return f"`{source.variable}` ({source.scale.name})"
    if source.bins is not None:
        bins = ", ".join(f"{lo:g}–{hi:g}→{code}" for code, (lo, hi) in source.bins.items())
        return f"`{source.variable}` (bins {bins})"
    missing = ", ".join(f"{code:g}={kind}" for code, kind in source.missing.items())
    return f"`{source.variable}`" + (f" (missing {missing})" if missing else "")


def _variable_row(variable: Variable, waves: list[str]) -> str:
    cells = [
        f"`{variable.name}`",
        variable.level + (f" ({variable.scale.name})" if variable.scale else ""),
        variable.theme,
        _cell(f"{variable.question.lv} / {variable.question.en}"),
        *(_source(variable.sources.get(w)) for w in waves),
        _cell(variable.comparability or ""),
    ]
    return "| " + " | ".join(cells) + " |"


def render(codebook: Codebook) -> str:
    waves = list(codebook.waves)
    lines = [
        "# Codebook and delivery contract",
        "",
        f"Generated from `data/codebook/` (version {codebook.version}, "
        f"digest `{codebook.digest[:12]}`) by `sdpipeline docs`. Do not edit by hand.",
        "",
        f"**{codebook.study.title.en}** ({codebook.study.title.lv}), project no. "
        f"{codebook.study.project_no}; commissioned by {codebook.study.commissioner}.",
        "",
        "## Waves",
        "",
        "| wave | year | fieldwork | municipality codes | population | place in the project |",
        "|---|---|---|---|---|---|",
    ]
    phases = {True: "after the project", False: "before the project", None: "in no comparison"}
    for wave in codebook.waves.values():
        lines.append(
            f"| `{wave.id}` ({wave.label.en}) | {wave.year} | {wave.fieldwork_start} – "
            f"{wave.fieldwork_end} | ISO 3166-2:LV, {wave.municipality_vintage} vintage | "
            f"{wave.population_year} | {phases[codebook.after_project(wave.id)]} |"
        )
    lines += [
        "",
        "## Comparisons",
        "",
        "The changes the report shows, each from the earlier wave to the later one; every "
        "change, decomposition, difference-in-differences and change column of the report is "
        "computed for these and no other pairs of waves.",
        "",
        "| comparison | before | after | role | label |",
        "|---|---|---|---|---|",
    ]
    for comparison in codebook.comparisons.values():
        lines.append(
            f"| `{comparison.id}` | `{comparison.before}` | `{comparison.after}` | "
            f"{comparison.role} | {_cell(comparison.label.lv)} / {_cell(comparison.label.en)} |"
        )
    lines += [
        "",
        "## What a delivery contains",
        "",
        "A delivery is one folder per wave under `data/raw/<wave id>/`, one file per instrument, "
        "named as below. Formats: SPSS `.sav` (variable and value labels kept; user-missing "
        "codes are read as codes), Excel `.xlsx` (first sheet, header in the first row) and CSV "
        "as Excel exports it. For a CSV the encoding, delimiter and decimal mark below are the "
        "contract; where one is not given it is detected (BOM, then strict UTF-8, then "
        "Windows-1257; the delimiter that splits the header most). Column names match the "
        "codebook case- and whitespace-insensitively.",
        "",
        "| instrument | " + " | ".join(waves) + " |",
        "|---|" + "---|" * len(waves),
    ]
    for instrument in codebook.instruments.values():
        cells = []
        for wave in waves:
            spec = instrument.files.get(wave)
            if spec is None:
                cells.append("—")
                continue
            details = [spec.format]
            if spec.format == "csv":
                details += [
                    spec.encoding or "encoding detected",
                    f"delimiter `{spec.delimiter or 'detected'}`",
                    f"decimal `{spec.decimal or 'detected'}`",
                ]
                if spec.date_format:
                    details.append(f"dates `{spec.date_format}`")
            cells.append(f"`{spec.name}` ({', '.join(details)})")
        lines.append(f"| {instrument.name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Missing categories",
        "",
        "Every source missing code maps to one of these harmonised codes; they are never pooled.",
        "",
        "| kind | harmonised code | label |",
        "|---|---|---|",
    ]
    for missing in codebook.missing_categories.values():
        lines.append(
            f"| {missing.kind} | {missing.code} | {missing.label.lv} / {missing.label.en} |"
        )
    derived = codebook.derived
    lines += [
        "",
        "## Columns the pipeline adds",
        "",
        "Beside the delivered variables. Every raw, validated and harmonised table has the "
        "provenance columns; the harmonised tables have the others, and beside each numeric "
        f"answer `<name>` a column `<name>_missing`: {_cell(derived.missing_kind.en)} / "
        f"{_cell(derived.missing_kind.lv)}.",
        "",
        "| column | tables | description (en / lv) |",
        "|---|---|---|",
    ]
    for tables, columns in (
        ("raw, validated, harmonised", derived.provenance),
        ("harmonised", derived.harmonised),
    ):
        lines += [
            f"| `{name}` | {tables} | {_cell(label.en)} / {_cell(label.lv)} |"
            for name, label in columns.items()
        ]
    v = codebook.validation
    lines += [
        "",
        "## Validation thresholds and geography",
        "",
        f"- A file is rejected whole when more than {v.max_quarantine_share:.0%} of its rows "
        "break the row contract (a run may override this).",
        f"- Dataset level: no substantive question where one valid code takes more than "
        f"{v.max_modal_share:.0%} of valid answers (judged with {v.min_valid_for_distribution}+ "
        f"answers); key variables answered 'no answer' by at most {v.max_no_answer_share:.0%}.",
        f"- A 2017 municipality split by the reform goes to its successor by the rule "
        f"`{codebook.split_units}`.",
    ]
    for instrument in codebook.instruments.values():
        weighting = instrument.weighting
        margins = " and ".join(" × ".join(m) for m in weighting.margins)
        lines += [
            "",
            f"## {instrument.label.en} (`{instrument.name}`)",
            "",
            f"{instrument.respondents.en}. Design: {instrument.design.get('type', '')}. "
            + _cell(str(instrument.design.get("description", ""))),
            "",
            *(
                [f"Census of {census.units}, target `{census.target}`: {census.reason.en}", ""]
                if (census := instrument.census)
                else []
            ),
            f"Weighting: `{weighting.method}`"
            + (f", raking margins {margins}" if margins else "")
            + (
                f", weights trimmed at {weighting.max_ratio_to_median:g} × the median"
                if weighting.max_ratio_to_median
                else ""
            )
            + f". At least {instrument.minimum_rows} respondents per wave.",
        ]
        if instrument.rules:
            lines += ["", "Cross-field rules:", ""]
            lines += [
                f"- `{r.name}` ({r.kind} of {', '.join(r.variables)}): {r.message}"
                for r in instrument.rules
            ]
        lines += [
            "",
            "| variable | level (scale) | theme | question (lv / en) | "
            + " | ".join(waves)
            + " | comparability |",
            "|---|---|---|---|" + "---|" * len(waves) + "---|",
        ]
        lines += [_variable_row(v, waves) for v in instrument.variables]
    lines += [
        "",
        "## Source scales and their recodes",
        "",
        "Each row is one original code: its label, and the harmonised code or missing kind it "
        "becomes.",
        "",
        "| source scale | harmonised scale | code | label | becomes |",
        "|---|---|---|---|---|",
    ]
    for scale in codebook.source_scales.values():
        target = codebook.harmonised_scales[scale.harmonised]
        for code, label in scale.labels.items():
            if code in scale.recode:
                to = scale.recode[code]
                becomes = f"{to} ({target.codes[to].en})"
            else:
                kind = scale.missing[code]
                becomes = f"{codebook.missing_code(kind)} ({kind})"
            lines.append(f"| {scale.name} | {scale.harmonised} | {code} | {label} | {becomes} |")
    return "\n".join(lines) + "\n"


def write(codebook: Codebook, path: Path = DOC_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(codebook), encoding="utf-8")
    return path
