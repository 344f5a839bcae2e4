"""Asset keys, built here and nowhere else.

A key is ``<layer>/<table>``: the layer is the asset group and the warehouse schema, the table
the DuckDB table the asset writes, so ``harmonised/residents`` is ``harmonised.residents`` in
the warehouse and in the UI's lineage graph alike. The files stand in the graph upstream of
the tables that read them: the contractor's as ``delivery/<instrument>_<year>``, the reference
files under ``data/reference/`` as ``reference_files/<file name without .csv>``.
"""

from __future__ import annotations

from pathlib import PurePath

import dagster as dg

from sdpipeline.codebook import Codebook, Instrument

DELIVERY = "delivery"
REFERENCE_FILES = "reference_files"
RAW = "raw"
VALIDATED = "validated"
HARMONISED = "harmonised"
REFERENCE = "reference"
INDICATORS = "indicators"
REPORT = "report"
AUDIT = "audit"


def wave_table(instrument: Instrument, codebook: Codebook, wave_id: str) -> str:
    """The table of one instrument's wave, ``<instrument>_<year>``, in the raw and validated
    schemas (waves differ in year: the codebook refuses two waves of one year)."""
    return f"{instrument.name}_{codebook.waves[wave_id].year}"


def delivery(instrument: Instrument, codebook: Codebook, wave_id: str) -> dg.AssetKey:
    return dg.AssetKey([DELIVERY, wave_table(instrument, codebook, wave_id)])


def raw(instrument: Instrument, codebook: Codebook, wave_id: str) -> dg.AssetKey:
    return dg.AssetKey([RAW, wave_table(instrument, codebook, wave_id)])


def validated(instrument: Instrument, codebook: Codebook, wave_id: str) -> dg.AssetKey:
    return dg.AssetKey([VALIDATED, wave_table(instrument, codebook, wave_id)])


def harmonised(instrument: str) -> dg.AssetKey:
    return dg.AssetKey([HARMONISED, instrument])


def reference_file(file_name: str) -> dg.AssetKey:
    return dg.AssetKey([REFERENCE_FILES, PurePath(file_name).stem])


def reference(table: str) -> dg.AssetKey:
    return dg.AssetKey([REFERENCE, table])


def indicators(table: str) -> dg.AssetKey:
    return dg.AssetKey([INDICATORS, table])


def report(table: str) -> dg.AssetKey:
    return dg.AssetKey([REPORT, table])


def audit(table: str) -> dg.AssetKey:
    return dg.AssetKey([AUDIT, table])
