"""What Dagster needs to own the pipeline's state, decided here once for every asset from its
layer (the key's first part) and its ``instrument`` tag: owners, code version and automation
condition (``with_policy``, which every layer's definitions apply).

**Code versions.** Dagster calls an asset stale ("has a new code version") when the version it
was built with differs from the one defined now. A version is the fingerprint of what the
asset's own code reads: the package's files (any change to its Python code, or to a file it
reads as code such as the report's style sheet, rebuilds what it builds) and the part of the
codebook and catalogue the asset depends on, as parsed, so that a comment or a reformatted
YAML file rebuilds nothing:

- a raw, validated or harmonised table: its instrument's definition (files, variables, scales,
  rules, weighting) and the study's waves, missing categories and thresholds. Editing the
  residents' instrument file rebuilds the residents' raw and validated tables, not the
  clients'; every harmonised table reads ``reference/recodes``, made from the whole codebook,
  so from there on all are rebuilt;
- a reference table: the study's part; one made from the codebook itself (tagged
  ``CODEBOOK_TAG``, such as ``reference/recodes``): the whole codebook;
- indicators and report tables: the whole codebook and the indicator catalogue;
- the audit trail: the package alone.

Files (``delivery/*``, ``reference_files/*``) have no code version: their data version is their
SHA-256 (``defs/observation.py``).

**Automation.** Every materialised asset is rebuilt by Dagster's own declarative automation,
``eager()`` (an input got new data, or the asset is newly missing) and only when every blocking
check upstream passed: a rejected delivery does not flow on. It runs only while the sensor
``delivery_automation`` is on (``defs/automation.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import fields
from functools import cache
from pathlib import Path

import dagster as dg

import sdpipeline
from sdpipeline.codebook import Codebook, default_codebook
from sdpipeline.defs import keys
from sdpipeline.indicators import default_catalogue

OWNERS = {
    keys.DELIVERY: ["team:data-engineering"],
    keys.REFERENCE_FILES: ["team:data-engineering"],
    keys.RAW: ["team:data-engineering"],
    keys.VALIDATED: ["team:data-engineering"],
    keys.REFERENCE: ["team:data-engineering"],
    keys.AUDIT: ["team:data-engineering"],
    keys.HARMONISED: ["team:survey-methodology"],
    keys.INDICATORS: ["team:survey-methodology"],
    keys.REPORT: ["team:evaluation"],
}
FILE_LAYERS = (keys.DELIVERY, keys.REFERENCE_FILES)
INSTRUMENT_LAYERS = (keys.RAW, keys.VALIDATED, keys.HARMONISED)
RESULT_LAYERS = (keys.INDICATORS, keys.REPORT)
CODEBOOK_TAG = {"reads": "codebook"}

AUTOMATION = (
    dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
).with_label("eager, once upstream blocking checks passed")


def check_automation(check: dg.AssetCheckKey) -> dg.AutomationCondition:
    """``AUTOMATION`` for a blocking check that has a condition of its own, less the wait on
    itself: its table is among its deps, so it waited for its own last result to have passed.
    A run that planned the check and stopped before it (a bad file upstream, a kill) left no
    passed result, and automation then never ran the check, nor published, again."""
    own = dg.AutomationCondition.all_checks_match(
        dg.AutomationCondition.check_passed() | dg.AutomationCondition.will_be_requested(),
        blocking_only=True,
    ).ignore(dg.AssetSelection.checks(check))
    return (
        dg.AutomationCondition.eager()
        & dg.AutomationCondition.all_deps_match(own).with_label("all_deps_blocking_checks_passed")
    ).with_label("eager, once upstream blocking checks (but its own last) passed")


def _digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


@cache
def package_fingerprint() -> str:
    """Every file of the package, its Python source and the files it reads as code (the
    report's style sheet and fonts, the Data Docs' scripts): a changed line of either is a new
    code version. Python's own caches are left out."""
    root = Path(sdpipeline.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _study(codebook: Codebook) -> tuple:
    return (
        codebook.waves,
        codebook.missing_categories,
        codebook.validation,
        codebook.split_units,
        codebook.harmonised_scales,
    )


def _whole(codebook: Codebook) -> tuple:
    """Everything the codebook says, as parsed (its file digest would change with a comment)."""
    return tuple(getattr(codebook, f.name) for f in fields(codebook) if f.name != "digest")


def code_basis(key: dg.AssetKey, tags: Mapping[str, str]) -> tuple[str, ...]:
    """What an asset's code version is a fingerprint of (see the module's docstring)."""
    layer = key.path[0]
    if layer in FILE_LAYERS:
        return ()
    if layer in INSTRUMENT_LAYERS:
        return ("package", "study", f"instrument {tags['instrument']}")
    if layer == keys.REFERENCE:
        if tags.get("reads") == CODEBOOK_TAG["reads"]:
            return ("package", "codebook")
        return ("package", "study")
    if layer in RESULT_LAYERS:
        return ("package", "codebook", "catalogue")
    return ("package",)


# What each part of a code basis is, as a person edits it: named when it changed.
PART_SOURCES = {
    "package": "the pipeline's code",
    "study": "study.yaml or the harmonised scales",
    "codebook": "the codebook",
    "catalogue": "data/indicators/catalogue.yaml",
}


def code_version(spec: dg.AssetSpec, codebook: Codebook) -> str | None:
    """The fingerprint of each part of ``code_basis(spec)``, as ``part=digest`` joined by
    ``;``, so that what changed can be named (``changed_parts``); None for a file."""
    parts = {
        "package": package_fingerprint,
        "study": lambda: _study(codebook),
        "codebook": lambda: _whole(codebook),
        "catalogue": default_catalogue,
    }
    basis = code_basis(spec.key, spec.tags)
    if not basis:
        return None
    return ";".join(
        f"{part}="
        + _digest(
            codebook.instruments[part.split(" ", 1)[1]]
            if part.startswith("instrument ")
            else parts[part]()
        )[:12]
        for part in basis
    )


def changed_parts(built_with: str | None, now: str | None) -> list[str]:
    """What changed between two code versions, as a person edits it: the package's code, the
    study's part of the codebook, an instrument's file, the catalogue. Empty where either
    version is not of ``code_version``'s form (one built before it)."""

    def split(version: str | None) -> dict[str, str]:
        pairs = [p.split("=", 1) for p in (version or "").split(";")]
        return dict(p for p in pairs if len(p) == 2)

    before, after = split(built_with), split(now)
    if not before or not after:
        return []
    return [
        PART_SOURCES.get(part)
        or f"instruments/{part.split(' ', 1)[1]}.yaml or a block or scale it uses"
        for part in after
        if before.get(part) != after[part]
    ]


def with_policy(
    assets: list[dg.AssetsDefinition], codebook: Codebook | None = None
) -> list[dg.AssetsDefinition]:
    """``assets`` with their owners, code versions and automation conditions set. Every
    layer's definitions pass their assets through it, so an asset added to a layer gets them
    too."""
    codebook = codebook or default_codebook()
    versions: dict[tuple[str, ...], str | None] = {}  # one fingerprint per basis

    def policy(spec: dg.AssetSpec) -> dg.AssetSpec:
        layer = spec.key.path[0]
        if layer in FILE_LAYERS:
            return spec.replace_attributes(owners=OWNERS[layer])
        basis = code_basis(spec.key, spec.tags)
        if basis not in versions:
            versions[basis] = code_version(spec, codebook)
        return spec.replace_attributes(
            owners=OWNERS[layer], code_version=versions[basis], automation_condition=AUTOMATION
        )

    return dg.map_asset_specs(policy, assets)
