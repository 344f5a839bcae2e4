"""The disclosure audit, a blocking check on the report: before the workbook, the CSV files and
the HTML report are written, every cell the indicator tables hide is solved for by linear
programming against everything they publish, and a share of equally weighted respondents as a
whole number of them (``disclosure.audit_published``); a hidden cell whose range is narrower
than its protection fails the check, and the files are not replaced."""

import dagster as dg
import pandas as pd

from sdpipeline import disclosure, effectiveness
from sdpipeline.codebook import default_codebook
from sdpipeline.defs import keys
from sdpipeline.defs.indicators.assets import HarmonisedTables
from sdpipeline.defs.policy import check_automation
from sdpipeline.defs.resources import Warehouse
from sdpipeline.indicators import default_catalogue
from sdpipeline.reference import ReferenceData
from sdpipeline.warehouse import qualified

AUDITED = keys.report("indicators_by_region")


@dg.asset_check(
    asset=AUDITED,
    name="disclosure_audit",
    blocking=True,
    additional_deps=[keys.indicators("estimates")],
    # requested with the table it audits, so that automation can build the exports after it in
    # the same run: a check without a condition of its own is never "about to run", and the
    # exports' condition (upstream blocking checks passed) would wait for it for ever
    automation_condition=check_automation(dg.AssetCheckKey(AUDITED, "disclosure_audit")),
    description="For every cell the indicator tables hide: the smallest and largest value "
    "consistent with every published figure, the cells' weighted bases and the relations "
    "between them (national = regions, state cities + novadi = national), by linear "
    "programming, and where a hidden cell's respondents weigh the same, with its share a whole "
    "number of them (100·k/n). Fails if any range is narrower than the catalogue's protection.",
)
def disclosure_audit(warehouse: Warehouse) -> dg.AssetCheckResult:
    codebook = default_codebook()
    with warehouse.get_connection() as connection:
        published = connection.execute(f"SELECT * FROM {qualified('indicators', 'estimates')}").df()
        ref = ReferenceData.from_warehouse(connection)
    # the cube afresh from the harmonised rows, of the indicators that hide a cell only
    catalogue = disclosure.audited_catalogue(published, default_catalogue())
    exposures, on_grid = [], 0
    if catalogue.indicators:
        tables = HarmonisedTables(warehouse, list(codebook.instruments), codebook, catalogue)
        cube = effectiveness.estimate_cube(tables, catalogue, codebook, ref)
        exposures = disclosure.audit_published(published, cube, catalogue, codebook)
        columns = ["indicator_id", "wave", "breakdown", "domain"]
        hidden = published.loc[published["suppressed"], columns].astype(str)
        steps = cube.astype(dict.fromkeys(columns, str)).merge(hidden, on=columns)["step"]
        on_grid = int((steps > 0).sum())
    exposed = [e for e in exposures if not e.protected]
    rows = pd.DataFrame(
        [
            {
                "cell": " ".join(map(str, e.key)),
                "low": round(e.low, 3),
                "high": round(e.high, 3),
                "width": round(e.width, 3),
                "required": round(e.required, 3),
            }
            for e in sorted(exposures, key=lambda e: e.width - e.required)[:20]
        ]
    )
    return dg.AssetCheckResult(
        passed=not exposed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "hidden_cells": len(exposures),
            "exposed_cells": len(exposed),
            "whole_number_cells": dg.MetadataValue.int(on_grid),
            "narrowest_margin": float(min((e.width - e.required for e in exposures), default=0)),
            "narrowest": dg.MetadataValue.md(rows.to_markdown(index=False) if len(rows) else "—"),
        },
    )
