"""A small runner over Great Expectations' own 1.x API (``dagster-ge`` needs GX < 1.0).

One file-backed GX project under ``var/gx`` keeps every suite and every validation result, so
Data Docs show the history, not only the last run. GX is imported on first use: it takes
seconds to import and must not slow down loading the Dagster code location. In a run, these
functions are called in the run's GX worker process (``gx_worker``), not in the run's own.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from sdpipeline import settings
from sdpipeline.validation.audit import CheckContext
from sdpipeline.validation.expectations import ERROR, Suite

DATASOURCE = "sdpipeline"
BATCH = "whole_table"
SITE = "local_site"
FINGERPRINT = "sdpipeline_fingerprint"
# The Data Docs index links the latest results only (about five full runs): GX reads every
# result it links on each rebuild, so an unbounded index would make every run slower than the
# last. Older pages stay in the site; every check of every run is in audit.check_runs.
INDEX_RESULTS = 200
_SEVERITY = {ERROR: "critical"}
# The key of a result's meta that holds what it judged; gx_pages shows it on the result's page.
DELIVERY = "sdpipeline_delivery"
RESULT_PAGES = {
    "module_name": "sdpipeline.validation.gx_pages",
    "class_name": "DeliveryValidationResultsPageRenderer",
}


@dataclass(frozen=True)
class ExpectationOutcome:
    check_name: str
    passed: bool
    severity: str
    failing_count: int | None
    rows_checked: int | None
    details: dict[str, Any]


def audit_results(outcomes: list[ExpectationOutcome]) -> list[dict]:
    """Expectation outcomes as rows of the audit trail."""
    return [
        {
            "check_name": o.check_name,
            "passed": o.passed,
            "failing_count": o.failing_count,
            "rows_checked": o.rows_checked,
            "severity": o.severity,
            "details": o.details,
        }
        for o in outcomes
    ]


def delivery_meta(checked: CheckContext) -> dict[str, Any]:
    """What a suite checks and a result judged: the table, instrument, waves and delivered
    files with their SHA-256."""
    return {
        "asset": checked.asset,
        "instrument": checked.instrument,
        "waves": list(checked.waves),
        "files": [{"name": name, "sha256": sha} for name, sha in checked.files.items()],
    }


def delivery_lines(delivery: dict[str, Any]) -> list[tuple[str, str]]:
    """(title, value) lines naming a delivery, as the result and the suite pages show them."""
    lines = [
        ("Table:", delivery["asset"]),
        ("Instrument:", delivery["instrument"] or "—"),
        ("Wave:" if len(delivery["waves"]) == 1 else "Waves:", ", ".join(delivery["waves"])),
    ]
    for file in delivery["files"]:
        lines += [("File:", file["name"]), ("SHA-256:", file["sha256"])]
    return lines


def _suite_notes(delivery: dict[str, Any]) -> str:
    """The suite page's notes: what the suite checks, and the delivery last checked with it
    (each result page names the delivery it judged)."""
    lines = "  \n".join(f"**{title}** {value}" for title, value in delivery_lines(delivery))
    return f"Last checked against this suite:  \n{lines}"


def gx_root() -> Path:
    return settings.var_dir() / "gx"


def data_docs_dir() -> Path:
    return settings.reports_dir() / "data_docs"


@cache
def _context(root: str, docs: str):
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=root)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.variables.save()
    site = {
        "class_name": "SiteBuilder",
        "site_index_builder": {
            "class_name": "DefaultSiteIndexBuilder",
            "validation_results_limit": INDEX_RESULTS,
        },
        "site_section_builders": {
            "validations": {"renderer": RESULT_PAGES},
            "profiling": "None",  # GX profiling is not used here
        },
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": docs},
    }
    if SITE in context.get_site_names():
        context.update_data_docs_site(SITE, site)
    else:
        context.add_data_docs_site(SITE, site)
    return context


def context():
    """The project's GX context (created on first use, then reused in this process)."""
    return _context(str(gx_root()), str(data_docs_dir()))


def _batch_definition(gx_context, asset_name: str):
    sources = gx_context.data_sources
    source = sources.get(DATASOURCE) if DATASOURCE in sources.all() else None
    source = source or sources.add_pandas(DATASOURCE)
    names = {asset.name for asset in source.assets}
    asset = (
        source.get_asset(asset_name)
        if asset_name in names
        else source.add_dataframe_asset(asset_name)
    )
    existing = {b.name for b in asset.batch_definitions}
    if BATCH in existing:
        return asset.get_batch_definition(BATCH)
    return asset.add_batch_definition_whole_dataframe(BATCH)


def _check_name(config) -> str:
    column = config.kwargs.get("column")
    return f"{config.type}({column})" if column else config.type


def _fingerprint(suite: Suite, notes: str) -> str:
    content = [notes, *[(e.type, e.kwargs, e.why, e.severity) for e in suite.expectations]]
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def _stored(store, name: str):
    """A suite or validation definition already in the GX project, or None."""
    from great_expectations.exceptions import DataContextError

    try:
        return store.get(name)
    except DataContextError:  # GX's not-found errors for suites and validation definitions
        return None


def _release_batches(gx_context) -> None:
    """GX's pandas engine keeps every frame it validated until the process ends. A run
    checks 18 tables with 36 suites, so without this the whole delivery stays in memory."""
    manager = gx_context.data_sources.get(DATASOURCE).get_execution_engine().batch_manager
    manager.reset_batch_cache()
    manager.batch_data_cache.clear()


def run_suite(suite: Suite, frame: pd.DataFrame, checked: CheckContext) -> list[ExpectationOutcome]:
    """Validate ``frame`` against ``suite`` and keep the result in the GX project, under the
    run's id (the Dagster run's, so Data Docs and the audit trail name the same run) and with
    the delivery it judged (``checked``: table, instrument, waves, files and checksums)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    gx_context = context()
    delivery = delivery_meta(checked)
    notes = _suite_notes(delivery)
    fingerprint = _fingerprint(suite, notes)
    stored = _stored(gx_context.suites, suite.name)
    definition = _stored(gx_context.validation_definitions, suite.name)
    if stored is None or stored.meta.get(FINGERPRINT) != fingerprint or definition is None:
        # Writing a suite and its validation definition costs GX about 0.2 s each time, so
        # they are written only when the codebook changed what they hold.
        expectations = [
            getattr(gxe, e.type)(
                **e.kwargs,
                description=e.why,
                severity=_SEVERITY.get(e.severity, "warning"),
                meta={"severity": e.severity},
            )
            for e in suite.expectations
        ]
        gx_suite = gx_context.suites.add_or_update(
            gx.ExpectationSuite(
                name=suite.name,
                expectations=expectations,
                notes=notes,
                meta={FINGERPRINT: fingerprint, DELIVERY: delivery},
            )
        )
        definition = gx_context.validation_definitions.add_or_update(
            gx.ValidationDefinition(
                name=suite.name, data=_batch_definition(gx_context, suite.name), suite=gx_suite
            )
        )
    run_id = RunIdentifier(run_name=checked.run_id)
    try:
        result = definition.run(
            run_id=run_id,
            batch_parameters={"dataframe": frame},
            result_format={
                "result_format": "SUMMARY",
                "unexpected_index_column_names": suite.index_columns,
                "partial_unexpected_count": 10,
            },
        )
    finally:
        _release_batches(gx_context)
    # GX stores the result as it runs, and leaves its meta to the user: stored again with the
    # delivery it judged, for the result's page and for anyone reading the GX project.
    result.meta[DELIVERY] = delivery
    gx_context.validation_results_store.set(
        ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite.name),
            run_id=run_id,
            batch_identifier=result.batch_id,
        ),
        result,
    )
    outcomes = []
    for item in result.results:
        config = item.expectation_config
        details = {
            key: item.result.get(key)
            for key in (
                "observed_value",
                "partial_unexpected_list",
                "partial_unexpected_index_list",
            )
            if item.result.get(key) is not None
        }
        details["why"] = config.description
        if item.exception_info and item.exception_info.get("raised_exception"):
            details["exception"] = item.exception_info.get("exception_message")
        outcomes.append(
            ExpectationOutcome(
                check_name=_check_name(config),
                passed=bool(item.success),
                severity=(config.meta or {}).get("severity", "WARN"),
                failing_count=item.result.get("unexpected_count"),
                rows_checked=item.result.get("element_count", len(frame)),
                details=details,
            )
        )
    return outcomes


def _page_is_stale(suite: str) -> bool:
    """A suite's page needs rendering when the suite was written after it (or it is missing)."""
    page = data_docs_dir() / "expectations" / f"{suite}.html"
    stored = gx_root() / "gx" / "expectations" / f"{suite}.json"
    return not page.exists() or not stored.exists() or page.stat().st_mtime < stored.stat().st_mtime


def build_data_docs(run_name: str) -> Path:
    """Render the Data Docs pages of one run's results, of the suites that changed, and the
    index; returns index.html."""
    gx_context = context()
    results = [
        key
        for key in gx_context.validation_results_store.list_keys()
        if key.run_id.run_name == run_name
    ]
    suites = {
        key.expectation_suite_identifier
        for key in results
        if _page_is_stale(key.expectation_suite_identifier.name)
    }
    if results:  # GX reads no identifiers as "rebuild every page"
        gx_context.build_data_docs(site_names=[SITE], resource_identifiers=[*results, *suites])
    return data_docs_dir() / "index.html"
