"""A third wave and a one-wave instrument added to a copy of the repository's data the way the
README says a user adds them: YAML entries and generated files, no Python in the pipeline.

The follow-up (``follow_up_2026``) repeats the ex-post questionnaire on the 43 post-reform
municipalities, delivered by the ex-post contractor in the same formats; its planted truth is
the ex-post one (the project's effect on its participants persisting) except that the
specialist shortage eases. The new instrument, family assistants (``assistants``), is asked in
the follow-up only.
"""

from __future__ import annotations

import copy
import datetime as dt
import shutil
from pathlib import Path

import yaml

from sdpipeline import settings

WAVE = "follow_up_2026"
LIKE = "ex_post_2023"
PERSISTENCE = "ex_post_2023_follow_up_2026"
LONG_RUN = "ex_ante_2017_follow_up_2026"
INSTRUMENT = "assistants"


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _dump(path: Path, content: dict) -> None:
    path.write_text(yaml.safe_dump(content, allow_unicode=True, sort_keys=False), encoding="utf-8")


def copy_data(target: Path) -> Path:
    """The repository's data folder, copied to ``target`` / data."""
    data = target / "data"
    shutil.copytree(settings.REPO_ROOT / "data", data)
    return data


def _repeat_wave(variables: list[dict]) -> None:
    """Every variable asked in the ex-post wave is asked again, under the same name."""
    for variable in variables:
        waves = variable.get("waves", {})
        if LIKE in waves:
            waves[WAVE] = copy.deepcopy(waves[LIKE])


def add_study_entries(data: Path) -> None:
    """study.yaml: the wave, its comparisons, the new instrument."""
    path = data / "codebook" / "study.yaml"
    study = _load(path)
    study["waves"].append(
        {
            "id": WAVE,
            "year": 2026,
            "label": {"lv": "Pēcpārbaudes pētījums (2026)", "en": "Follow-up study (2026)"},
            "fieldwork": {"start": dt.date(2026, 2, 2), "end": dt.date(2026, 5, 29)},
            "municipality_vintage": 2021,
            "population_year": 2026,
        }
    )
    study["comparisons"] += [
        {
            "id": PERSISTENCE,
            "before": LIKE,
            "after": WAVE,
            "role": "persistence",
            "label": {
                "lv": "Ex-post 2023 → pēcpārbaude 2026",
                "en": "Ex-post 2023 → follow-up 2026",
            },
        },
        {
            "id": LONG_RUN,
            "before": "ex_ante_2017",
            "after": WAVE,
            "role": "project_effect",
            "label": {
                "lv": "Ex-ante 2017 → pēcpārbaude 2026",
                "en": "Ex-ante 2017 → follow-up 2026",
            },
        },
    ]
    study["instruments"].append(INSTRUMENT)
    _dump(path, study)


def add_blocks(data: Path) -> None:
    path = data / "codebook" / "blocks.yaml"
    blocks = _load(path)
    for variables in blocks["blocks"].values():
        _repeat_wave(variables)
    _dump(path, blocks)


def add_files_and_sources(data: Path) -> None:
    """Each instrument's 2026 file (the ex-post format, 2023 → 2026 in its name) and sources."""
    for path in sorted((data / "codebook" / "instruments").glob("*.yaml")):
        instrument = _load(path)
        spec = copy.deepcopy(instrument["files"][LIKE])
        spec["name"] = spec["name"].replace("2023", "2026")
        instrument["files"][WAVE] = spec
        _repeat_wave([v for v in instrument["variables"] if "block" not in v])
        _dump(path, instrument)


def add_instrument(data: Path) -> None:
    """Family assistants, asked in the follow-up only: a census of the services' assistants."""
    yes_no = {"level": "binary", "scale": "yes_no"}
    instrument = {
        "instrument": INSTRUMENT,
        "label": {"lv": "Ģimenes asistenti", "en": "Family assistants"},
        "respondents": {
            "lv": "Pašvaldību sociālo dienestu ģimenes asistenti",
            "en": "Family assistants of the municipal social services",
        },
        "design": {
            "type": "census",
            "description": "Every family assistant of every service is asked; equal weights.",
            "census": {
                "units": "family assistants",
                "target": "superpopulation",
                "reason": {
                    "lv": "Aptaujāti visi ģimenes asistenti; intervāli attiecas uz procesu.",
                    "en": "Every family assistant is asked; the intervals are about the process.",
                },
            },
            "weighting": {"method": "equal"},
        },
        "minimum_rows": 30,
        "files": {WAVE: {"name": "gimenes_asistenti_2026.xlsx"}},
        "variables": [
            {"block": "respondent_id"},
            {"block": "location"},
            {"block": "interview"},
            {
                "name": "families_supported",
                "level": "numeric",
                "key": True,
                "theme": "caseload",
                "integer": True,
                "range": [0, 60],
                "unit": "families",
                "question": {
                    "lv": "Cik ģimenēm pašlaik sniedzat atbalstu?",
                    "en": "How many families do you support now?",
                },
                "waves": {WAVE: {"variable": "FAMILIES", "missing": {99: "no_answer"}}},
            },
            {
                "name": "assistant_supervised",
                **yes_no,
                "theme": "project_support",
                "question": {
                    "lv": "Vai pēdējo 12 mēnešu laikā saņēmāt supervīziju?",
                    "en": "Did you receive supervision in the last 12 months?",
                },
                "waves": {WAVE: {"variable": "SUPERVISED", "scale": "yes_no_2023"}},
            },
            {
                "name": "assistant_trained",
                **yes_no,
                "theme": "project_support",
                "question": {
                    "lv": "Vai pirms darba uzsākšanas saņēmāt apmācību?",
                    "en": "Were you trained before you started?",
                },
                "waves": {WAVE: {"variable": "TRAINED", "scale": "yes_no_2023"}},
            },
            {
                "name": "assistant_job_satisfaction",
                "level": "ordinal",
                "theme": "job_satisfaction",
                "scale": "satisfaction3",
                "question": {
                    "lv": "Cik apmierināts esat ar savu darbu kopumā?",
                    "en": "How satisfied are you with your job overall?",
                },
                "waves": {WAVE: {"variable": "JOB_SAT", "scale": "satisf5_2023"}},
            },
        ],
    }
    _dump(data / "codebook" / "instruments" / f"{INSTRUMENT}.yaml", instrument)


def add_population_assumptions(data: Path) -> None:
    path = data / "reference" / "population_assumptions.yaml"
    assumptions = _load(path)
    assumptions["national_total"][2026] = {
        "population": 1843000,
        "status": "synthetic assumption for the follow-up wave of the tests",
    }
    assumptions["adult_share"][2026] = 0.81
    assumptions["adult_structure"][2026] = copy.deepcopy(assumptions["adult_structure"][2023])
    _dump(path, assumptions)


def add_model(data: Path) -> None:
    """The follow-up answers as the ex-post wave did, except: more specialists per resident, so
    fewer services short of staff, and heads, partners and leaders name the shortage less."""
    path = data / "generator" / "model.yaml"
    model = _load(path)
    model["wave_defaults"] = {WAVE: LIKE}
    model["municipalities"]["staffing_per_1000"][WAVE] = {"mean": 1.15, "sd": 0.28}
    heads = model["variables"]["heads"]
    heads["specialist_shortage"][WAVE] = {
        "p": {1: 0.42, 2: 0.22, 3: 0.35, "hard_to_say": 0.01},
        "effects": {"shortage": {1: 1.0}},
    }
    heads["vacancies"][WAVE] = {
        "mean": 0.04,
        "distribution": "poisson",
        "multiply_by": "fte",
        "effects": {"shortage": {1: 0.04}},
    }
    for instrument in ("partners", "leaders"):
        model["variables"][instrument]["barrier_staff_shortage"][WAVE] = {"p": {1: 0.5, 0: 0.5}}
    model["instruments"][INSTRUMENT] = {
        "sample": {"plan": "per_municipality", "per_municipality": 3},
        "frame": {"population": "municipalities"},
        "modes": {WAVE: {3: 0.6, 2: 0.4}},
    }
    model["variables"][INSTRUMENT] = {
        "families_supported": {WAVE: {"mean": 9.0, "sd": 3.0, "decimals": 0, "p_missing": 0.02}},
        "assistant_supervised": {WAVE: {"p": {1: 0.72, 0: 0.26, "no_answer": 0.02}}},
        "assistant_trained": {WAVE: {"p": {1: 0.85, 0: 0.14, "no_answer": 0.01}}},
        "assistant_job_satisfaction": {
            WAVE: {"p": {1: 0.7, 2: 0.1, 3: 0.17, "hard_to_say": 0.02, "no_answer": 0.01}}
        },
    }
    _dump(path, model)


def add_indicators(data: Path) -> None:
    path = data / "indicators" / "catalogue.yaml"
    catalogue = _load(path)
    catalogue["indicators"] += [
        {
            "id": "A01",
            "instrument": INSTRUMENT,
            "variable": "assistant_supervised",
            "statistic": "proportion",
            "success": [1],
            "denominator": "answered",
            "direction": "up",
            "theme": "project_support",
            "name": {
                "lv": "Ģimenes asistenti, kas saņēma supervīziju",
                "en": "Family assistants receiving supervision",
            },
        },
        {
            "id": "A02",
            "instrument": INSTRUMENT,
            "variable": "families_supported",
            "statistic": "mean",
            "direction": "none",
            "theme": "caseload",
            "name": {
                "lv": "Ģimenes uz vienu ģimenes asistentu",
                "en": "Families per family assistant",
            },
        },
    ]
    catalogue["report"]["units"]["families"] = {
        "lv": "ģimenes",
        "en": "families",
        "change": {"lv": "ģimenes", "en": "families"},
    }
    _dump(path, catalogue)


def add_third_wave(data: Path) -> None:
    """Every YAML entry the README's "Adding a wave" section lists, for the follow-up and the
    new instrument."""
    add_study_entries(data)
    add_blocks(data)
    add_files_and_sources(data)
    add_instrument(data)
    add_population_assumptions(data)
    add_model(data)
    add_indicators(data)
