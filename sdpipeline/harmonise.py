"""Recode each wave's validated table to the harmonised variables, names and codes, inside DuckDB.

Every translation comes from the crosswalk (``recodes.crosswalk``, the codebook's scales as a
table): a source code becomes the harmonised code its source scale says, a missing code
becomes the harmonised code of its kind (hard to say and no answer kept apart), an item the
wave did not ask becomes "not asked". The SQL that does it is generated from the crosswalk and
runs in the warehouse; the rows never pass through Python. A code the codebook does not know
stops the recode with its variable, codes and rows named: it never turns silently into NULL.

Pandas is used where the work is not per row: the geography of each distinct municipality code
(a few hundred), and the weights, which are computed from a few integer columns fetched as
NumPy arrays and joined back by the row number in the file.

Rows are in a canonical order before anything is summed, in the weights and the estimates
alike: by a hash of what any sum reads of them (``canonical_order``), not by the file's row
numbers (a re-export in another order) nor by the pseudonym (another installation has another
key). Floating-point sums depend on their order, and the same delivery with its rows in
another order must give the same weights and published figures to the last digit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from sdpipeline import geography, targets, weighting
from sdpipeline.codebook import Codebook, Instrument, Variable
from sdpipeline.geography import GeographyReport
from sdpipeline.recodes import (
    categorical_sql,
    crosswalk,
    date_formats,
    date_value,
    literal,
    numeric_sql,
    quoted,
    rules_for,
    source_value,
    trimmed,
)
from sdpipeline.reference import ReferenceData
from sdpipeline.weighting import WeightReport

PROVENANCE = ["_source_file", "_source_sha256", "_source_row"]


class HarmonisationError(ValueError):
    """The data hold a value the codebook gives no rule for."""


def missing_column(variable: Variable) -> str:
    """Numeric answers keep the number in the column and the missing kind beside it."""
    return f"{variable.name}_missing"


def text_sql(column: str, kind: str) -> str:
    """Text as delivered without surrounding whitespace, empty as NULL; a whole number
    delivered in a text column without its '.0'."""
    kind = kind.upper()
    if kind in ("DOUBLE", "FLOAT", "REAL"):
        return (
            f"CASE WHEN isnan({column}) THEN NULL WHEN {column} = round({column}) AND "
            f"abs({column}) < 9.2e18 THEN CAST(CAST({column} AS BIGINT) AS VARCHAR) "
            f"ELSE CAST({column} AS VARCHAR) END"
        )
    if kind == "VARCHAR":
        return f"NULLIF({trimmed(column)}, '')"
    return f"NULLIF({trimmed(f'CAST({column} AS VARCHAR)')}, '')"


def wave_columns(
    instrument: Instrument,
    wave: str,
    codebook: Codebook,
    recodes: pd.DataFrame,
    kinds: dict[str, str],
) -> dict[str, str]:
    """Harmonised column → its SQL over one wave's validated table (columns typed ``kinds``)."""
    rules = rules_for(recodes, instrument.name, wave)
    spec = instrument.files[wave]
    columns = {"wave": literal(wave), "year": f"CAST({codebook.waves[wave].year} AS BIGINT)"}
    for variable in instrument.variables:
        source = variable.sources.get(wave)
        raw = quoted(source.variable) if source else "NULL"
        kind = kinds.get(source.variable, "VARCHAR") if source else "VARCHAR"
        if variable.is_categorical:
            value = source_value(source, kinds) if source else "NULL"
            case = categorical_sql(rules[variable.name], value, f"{raw} IS NULL")
            columns[variable.name] = f"CAST({case} AS BIGINT)"
        elif variable.level == "numeric":
            value = source_value(source, kinds) if source else "NULL"
            columns[variable.name], columns[missing_column(variable)] = numeric_sql(
                rules[variable.name], value
            )
        elif source is None:  # not asked: empty, of the type the other waves give it
            empty = "DATE" if variable.level == "date" else "VARCHAR"
            columns[variable.name] = f"CAST(NULL AS {empty})"
        elif variable.level == "date":
            columns[variable.name] = date_value(raw, kind, date_formats(spec))
        else:
            columns[variable.name] = text_sql(raw, kind)
    for column in PROVENANCE:
        columns[column] = quoted(column)
    return columns


def select_sql(columns: dict[str, str], relation: str) -> str:
    listed = ", ".join(f"{sql} AS {quoted(name)}" for name, sql in columns.items())
    return f"SELECT {listed} FROM {relation}"


def _check_recoded(
    connection: duckdb.DuckDBPyConnection,
    instrument: Instrument,
    wave: str,
    columns: dict[str, str],
    relation: str,
) -> None:
    """Stop at a categorical value no rule covers, naming the variable, codes and rows."""
    asked = [v for v in instrument.variables_in(wave) if v.is_categorical]
    if not asked:
        return
    tests = {v.name: f"({columns[v.name]}) IS NULL" for v in asked}
    counts = connection.execute(
        "SELECT "
        + ", ".join(f"count(*) FILTER ({test})" for test in tests.values())
        + f" FROM {relation}"
    ).fetchall()[0]
    for variable, count in zip(asked, counts, strict=True):
        if not count:
            continue
        source = quoted(variable.sources[wave].variable)
        bad = connection.execute(
            f"SELECT CAST({source} AS VARCHAR), _source_row FROM {relation} "
            f"WHERE {tests[variable.name]} ORDER BY _source_row LIMIT 5"
        ).fetchall()
        codes = sorted({str(value) for value, _ in bad})
        raise HarmonisationError(
            f"{variable.instrument}.{variable.name} ({wave}): codes {codes} have no recode in "
            f"the codebook (rows {[int(row) for _, row in bad]})"
        )


def _kinds(connection: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    described = connection.execute(f"DESCRIBE {relation}").fetchall()
    return {str(row[0]): str(row[1]) for row in described}


def harmonise_wave(
    table: pd.DataFrame,
    instrument: Instrument,
    wave: str,
    codebook: Codebook,
    recodes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One wave's table in source names and codes → its harmonised columns, by the same SQL
    as the warehouse runs, for a table held as pandas (a test, a notebook)."""
    recodes = crosswalk(codebook) if recodes is None else recodes
    with duckdb.connect() as connection:
        connection.register("_wave", table)
        columns = wave_columns(instrument, wave, codebook, recodes, _kinds(connection, "_wave"))
        _check_recoded(connection, instrument, wave, columns, "_wave")
        return connection.execute(select_sql(columns, "_wave")).df()


def recode_rule(source, codebook: Codebook) -> str:
    """The rule that produced a harmonised column in one wave, in words (for provenance)."""
    if source is None:
        return f"not asked: every row {codebook.missing_code('not_asked')} (not_asked)"
    missing = ", ".join(
        f"{code:g}→{codebook.missing_code(kind)} ({kind})"
        for code, kind in source.missing_codes.items()
    )
    if source.scale is not None:
        recode = ", ".join(f"{c}→{t}" for c, t in source.scale.recode.items())
        text = f"{source.scale.name}: {recode}"
    elif source.bins is not None:
        text = "bins " + ", ".join(
            f"{lo:g}–{hi:g}→{code}" for code, (lo, hi) in source.bins.items()
        )
    else:
        text = "value as delivered"
    return f"{text}; missing {missing}" if missing else text


def comparability(
    variable: Variable, codebook: Codebook, waves: Iterable[str] | None = None
) -> str:
    """identical: every wave turns the same original codes into the same harmonised codes;
    harmonised: the waves differ (a collapsed scale, an added option, binned ages) and a
    documented rule makes them comparable; one_wave: asked in one wave only. ``waves``: the
    waves compared (default: every wave that asked it)."""
    waves = [w for w in (codebook.waves if waves is None else waves) if variable.asked_in(w)]
    if len(waves) < 2:
        return "one_wave"
    sources = [variable.sources[w] for w in waves]
    if any(s.bins is not None for s in sources):
        return "harmonised"
    recodes = [s.scale.recode if s.scale is not None else None for s in sources]
    return "identical" if all(r == recodes[0] for r in recodes) else "harmonised"


@dataclass(frozen=True)
class Harmonised:
    """One instrument, both waves, in harmonised form in the warehouse, with what made it."""

    table: str
    rows: int
    provenance: pd.DataFrame
    labels: pd.DataFrame
    weights: dict[str, WeightReport]
    geography: dict[str, GeographyReport]
    sources: dict[str, str]


def provenance(instrument: Instrument, codebook: Codebook, files: dict[str, str]) -> pd.DataFrame:
    """One row per harmonised variable and wave: where it came from and by which rule."""
    rows = []
    for variable in instrument.variables:
        for wave in codebook.waves:
            source = variable.sources.get(wave)
            rows.append(
                {
                    "instrument": instrument.name,
                    "variable": variable.name,
                    "wave": wave,
                    "source_file": instrument.files[wave].name
                    if wave in instrument.files
                    else None,
                    "source_sha256": files.get(wave),
                    "source_variable": source.variable if source else None,
                    "source_scale": source.scale.name if source and source.scale else None,
                    "harmonised_scale": variable.scale.name if variable.scale else None,
                    "level": variable.level,
                    "rule": recode_rule(source, codebook),
                    "comparability": comparability(variable, codebook),
                    "comparability_note": variable.comparability,
                    "question_lv": variable.question.lv,
                    "question_en": variable.question.en,
                }
            )
    return pd.DataFrame(rows)


def value_labels(instrument: Instrument, codebook: Codebook) -> pd.DataFrame:
    """Every harmonised code of every categorical variable, missing codes included."""
    rows = []
    for variable in instrument.variables:
        if variable.scale is None:
            continue
        codes = [(c, label) for c, label in variable.scale.codes.items()]
        codes += [(m.code, m.label) for m in codebook.missing_categories.values()]
        rows += [
            {"variable": variable.name, "code": code, "label_lv": label.lv, "label_en": label.en}
            for code, label in codes
        ]
    return pd.DataFrame(rows)


def _design_label(column: str, kind: str) -> str:
    """A design column's value as text, as the design labels have always spelt it."""
    kind = kind.upper()
    if kind in ("DOUBLE", "FLOAT", "REAL"):
        return f"coalesce(CAST({column} AS VARCHAR), 'nan')"
    if kind == "VARCHAR":
        return f"coalesce({column}, 'None')"
    return f"coalesce(CAST({column} AS VARCHAR), '<NA>')"


def canonical_order(
    connection: duckdb.DuckDBPyConnection, relation: str, instrument: Instrument
) -> str:
    """An ORDER BY for a wave's rows that no delivery order or key changes: DuckDB's hash of
    every column a sum reads (answers, codes, geography; not free text, dates, identifiers or
    provenance), then the row number. Rows alike in all of those are alike in every sum, so
    their own order cannot change one."""
    left_out = {v.name for v in instrument.variables if v.level in ("identifier", "text", "date")}
    content = [c for c in _kinds(connection, relation) if c not in left_out | set(PROVENANCE)]
    return f"hash({', '.join(quoted(c) for c in content)}), _source_row"


def _weight_inputs(
    connection: duckdb.DuckDBPyConnection, relation: str, instrument: Instrument, ordered: str
) -> pd.DataFrame:
    """The few columns the weights read, as NumPy arrays in canonical order (``ordered``: each
    row's ``_canonical`` place by ``_source_row``): integer codes, with the municipality as a
    dense integer code (weights only count its rows)."""
    spec = instrument.weighting
    names = {"region"} | {c for margin in spec.margins for c in margin}
    if spec.method == "raking":
        names.add(instrument.design.get("strata", "region"))
    listed = [f"CAST({quoted(n)} AS BIGINT) AS {quoted(n)}" for n in sorted(names)]
    listed.append("dense_rank() OVER (ORDER BY municipality) AS municipality")
    arrays = connection.execute(
        f"SELECT {', '.join(listed)} FROM {relation} JOIN {ordered} USING (_source_row) "
        "ORDER BY _canonical"
    ).fetchnumpy()
    return pd.DataFrame({name: np.asarray(values) for name, values in arrays.items()})


def harmonise_instrument(
    connection: duckdb.DuckDBPyConnection,
    instrument: Instrument,
    codebook: Codebook,
    ref: ReferenceData,
    recodes: pd.DataFrame,
    sources: dict[str, str],
    target: str,
) -> Harmonised:
    """Validated tables of every wave (``sources``: wave → qualified table) → one long
    harmonised table ``target`` with geography, weights and design columns, built in DuckDB."""
    parts, weights, places, files, rows = [], {}, {}, {}, 0
    for position, (wave, relation) in enumerate(sources.items()):
        columns = wave_columns(instrument, wave, codebook, recodes, _kinds(connection, relation))
        _check_recoded(connection, instrument, wave, columns, relation)
        recoded = f"_recoded_{wave}"
        connection.execute(
            f"CREATE OR REPLACE TEMP VIEW {recoded} AS {select_sql(columns, relation)}"
        )
        lookup, places[wave] = geography.places_in(connection, recoded, wave, codebook, ref)
        connection.register(f"_places_{wave}", lookup)
        located = f"_located_{wave}"
        geo = [c for c in lookup.columns if c != "municipality_code"]
        kept = ", ".join(f"p.{quoted(c)}" if c == "region" else f"h.{quoted(c)}" for c in columns)
        added = ", ".join(f"p.{quoted(c)}" for c in geo if c not in columns)
        # a view, not a table: the recodes are computed once, as the harmonised table is
        # written; the weights read only the few columns they need from it
        connection.execute(
            f"CREATE OR REPLACE TEMP VIEW {located} AS SELECT {kept}, {added} FROM {recoded} h "
            f"JOIN _places_{wave} p ON p.municipality_code = h.municipality"
        )
        # each row's place in the canonical order, worked out once: ordering by it again means
        # hashing every recoded column, all the recodes computed afresh, each time
        ordered = f"_canonical_{wave}"
        connection.execute(
            f"CREATE OR REPLACE TEMP TABLE {ordered} AS SELECT _source_row, row_number() OVER "
            f"(ORDER BY {canonical_order(connection, located, instrument)}) AS _canonical "
            f"FROM {located}"
        )
        inputs = _weight_inputs(connection, located, instrument, ordered)
        weight, design_weight, weights[wave] = weighting.weights_for(
            inputs, instrument, wave, codebook, ref
        )
        order = connection.execute(
            f"SELECT _source_row FROM {ordered} ORDER BY _canonical"
        ).fetchnumpy()["_source_row"]
        connection.register(
            f"_weights_{wave}",
            pd.DataFrame(
                {
                    "_source_row": np.asarray(order),
                    "weight": weight.to_numpy(dtype=float),
                    "design_weight": design_weight.to_numpy(dtype=float),
                }
            ),
        )
        kinds = _kinds(connection, located)
        strata = instrument.design.get("strata")
        psu = instrument.design.get("psu") or instrument.id_variable.name
        stratum = (
            f"{literal(wave + ':')} || {_design_label(quoted(strata), kinds[strata])}"
            if strata
            else literal(f"{wave}:all")
        )
        unit = f"{stratum} || ':' || {_design_label('l.' + quoted(psu), kinds[psu])}"
        population = targets.population_sql(instrument, wave, codebook, ref)
        parts.append(
            f"SELECT l.*, w.weight, w.design_weight, {stratum} AS design_stratum, "
            f"{unit} AS design_psu, {population} AS design_population, "
            f"{position} AS _wave_position, o._canonical "
            f"FROM {located} l JOIN _weights_{wave} w USING (_source_row) "
            f"JOIN {ordered} o USING (_source_row)"
        )
        count, sha = connection.execute(
            f"SELECT count(*), any_value(_source_sha256) FROM {relation}"
        ).fetchall()[0]
        rows += count
        if count:
            files[wave] = str(sha)
    # the rows in canonical order, wave by wave, as the weights saw them and the estimates will
    connection.execute(
        f"CREATE OR REPLACE TABLE {target} AS SELECT * EXCLUDE (_wave_position, _canonical) FROM ("
        + " UNION ALL ".join(f"SELECT * FROM ({part})" for part in parts)
        + ") ORDER BY _wave_position, _canonical"
    )
    for wave in sources:
        connection.execute(f"DROP TABLE IF EXISTS _canonical_{wave}")
        connection.execute(f"DROP VIEW IF EXISTS _located_{wave}")
        connection.execute(f"DROP VIEW IF EXISTS _recoded_{wave}")
        connection.unregister(f"_places_{wave}")
        connection.unregister(f"_weights_{wave}")
    delivered = dict(
        connection.execute(f"SELECT DISTINCT _source_file, _source_sha256 FROM {target}").fetchall()
    )
    return Harmonised(
        table=target,
        rows=rows,
        provenance=provenance(instrument, codebook, files),
        labels=value_labels(instrument, codebook),
        weights=weights,
        geography=places,
        sources=delivered,
    )
