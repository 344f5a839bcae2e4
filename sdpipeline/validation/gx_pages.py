"""Data Docs result pages that name the delivery they judged.

GX 1.x renders "Data asset: None" on every result page (its header still reads the asset from
the pre-1.0 batch kwargs) and has no place for the files a result is about. ``gx_runner``
keeps the table, instrument, waves and delivered files with their SHA-256 in each result's
``meta`` (the part of a result GX leaves to its user); this renderer, configured as the site's
renderer for validation results, shows them in the page's header, beside the suite and the
status. It is imported by GX itself, in the GX worker, when the pages are built.
"""

from __future__ import annotations

from great_expectations.render.renderer import ValidationResultsPageRenderer

from sdpipeline.validation.gx_runner import DELIVERY, delivery_lines


class DeliveryValidationResultsPageRenderer(ValidationResultsPageRenderer):
    """GX's result page with the data asset's real name and the delivery in its header."""

    @classmethod
    def _render_validation_header(cls, validation_results):
        header = super()._render_validation_header(validation_results)
        template = header.subheader.string_template
        template["params"]["data_asset_name"] = validation_results.asset_name
        delivery = validation_results.meta.get(DELIVERY)
        for i, (title, value) in enumerate(delivery_lines(delivery) if delivery else []):
            template["template"] += f"\n ${{delivery_title_{i}}} ${{delivery_{i}}}"
            template["params"][f"delivery_title_{i}"] = title
            template["params"][f"delivery_{i}"] = value
            template["styling"]["params"][f"delivery_title_{i}"] = {"classes": ["h6"]}
        return header
