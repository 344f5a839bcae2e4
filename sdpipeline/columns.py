"""What each column of a table means, in Latvian and English.

A delivered variable is described by its question in the codebook, the column beside a numeric
answer by the codebook's missing-kind template, and the columns the pipeline adds by
``derived.yaml``: every description comes from the codebook, none is written here. The UI's
column schemas, ``docs/codebook.md`` and the exported datasets' labels all read them from here.
"""

from __future__ import annotations

from sdpipeline.codebook import Codebook, Instrument, Label
from sdpipeline.harmonise import missing_column


def source_columns(instrument: Instrument, wave: str, codebook: Codebook) -> dict[str, Label]:
    """A raw or validated table's columns (named as the wave's file names them): each source
    variable with the harmonised variable it becomes and its question, and the provenance."""
    columns = {
        v.sources[wave].variable: Label(
            lv=f"{v.name}: {v.question.lv}", en=f"{v.name}: {v.question.en}"
        )
        for v in instrument.variables_in(wave)
    }
    return {**columns, **codebook.derived.provenance}


def harmonised_columns(instrument: Instrument, codebook: Codebook) -> dict[str, Label]:
    """Every column of the instrument's harmonised table: its variables by their question, the
    missing kind beside each numeric answer, and the columns harmonisation adds."""
    columns = {}
    for variable in instrument.variables:
        columns[variable.name] = variable.question
        if variable.level == "numeric":
            columns[missing_column(variable)] = codebook.derived.missing_label(variable.name)
    return {**columns, **codebook.derived.provenance, **codebook.derived.harmonised}
