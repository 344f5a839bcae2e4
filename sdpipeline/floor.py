"""The floor the pipeline is measured against: the catalogue's indicators computed by one plain
DuckDB SQL pass over the delivered files, with no orchestration, validation, weighting,
geography or variance estimation.

Files are read the fastest way there is (DuckDB's own CSV reader; pyreadstat and calamine
reading only the columns the indicators need, for formats DuckDB cannot read), codes are
recoded inside the SQL by the same SQL the harmonised tables are built with (generated from
the codebook's crosswalk, ``recodes``), and every indicator is an unweighted share, mean or
ratio per wave. It is a lower bound on cost, not a second estimate: the pipeline's
weighted, design-based figures differ from these by design.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pyreadstat
import python_calamine

from sdpipeline import settings
from sdpipeline.codebook import Codebook, Variable
from sdpipeline.indicators import Catalogue, Indicator
from sdpipeline.recodes import (
    categorical_sql,
    crosswalk,
    numeric_sql,
    quoted,
    rules_for,
    source_value,
)


def _needed_columns(catalogue: Catalogue, codebook: Codebook) -> dict[tuple[str, str], set[str]]:
    """(instrument, wave) → the source columns the indicators read."""
    needed: dict[tuple[str, str], set[str]] = {}
    for indicator in catalogue.indicators:
        instrument = codebook.instruments[indicator.instrument]
        names = [indicator.variable, "municipality"]
        if indicator.denominator_variable and indicator.denominator_variable != (
            "municipality_population"
        ):
            names.append(indicator.denominator_variable)
        for wave in instrument.files:
            for name in names:
                variable = instrument.variable(name)
                if variable.asked_in(wave):
                    needed.setdefault((instrument.name, wave), set()).add(
                        variable.sources[wave].variable
                    )
    return needed


def _load(connection: duckdb.DuckDBPyConnection, path: Path, spec, columns: set[str], name: str):
    """One delivered file as a DuckDB view or table holding only ``columns``."""
    listed = sorted(columns)
    if spec.format == "csv":
        # Only codes and municipality codes are read, all ASCII: Latin-1 decodes any
        # Windows-1257 byte without error, so DuckDB's own reader serves every CSV.
        encoding = "latin-1" if (spec.encoding or "").lower() == "cp1257" else "utf-8"
        delimiter = spec.delimiter or ";"
        decimal = spec.decimal or ("," if delimiter == ";" else ".")
        selected = ", ".join(f'"{c}"' for c in listed)
        connection.execute(
            f"CREATE TABLE {name} AS SELECT {selected} FROM read_csv(?, delim = ?, "
            "decimal_separator = ?, header = true, encoding = ?, all_varchar = true)",
            [str(path), delimiter, decimal, encoding],
        )
        for column in listed:
            if column != "municipality_code":
                connection.execute(
                    f"UPDATE {name} SET \"{column}\" = replace(\"{column}\", ' ', '')"
                )
        return
    if spec.format == "sav":
        frame, _ = pyreadstat.read_sav(str(path), usecols=listed, user_missing=True)
    else:
        sheet = python_calamine.CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0)
        rows = sheet.to_python(skip_empty_area=False)
        header = [str(c).strip() for c in rows[0]]
        frame = pd.DataFrame(rows[1:], columns=header)[listed]
    connection.register(f"{name}_frame", frame)
    connection.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_frame")
    connection.unregister(f"{name}_frame")


def _recoded(
    variable: Variable, wave: str, rules: dict[str, list[dict]], kinds: dict[str, str]
) -> str:
    """SQL turning the delivered value into the harmonised one, missing codes included: the
    harmonised tables' own recode (``recodes``), so the floor and the pipeline share one rule."""
    source = variable.sources[wave]
    value = source_value(source, kinds)
    if variable.is_categorical:
        return categorical_sql(rules[variable.name], value, f"{quoted(source.variable)} IS NULL")
    return numeric_sql(rules[variable.name], value)[0]


def _indicator_sql(
    indicator: Indicator,
    table: str,
    wave: str,
    codebook: Codebook,
    year: int,
    rules: dict[str, list[dict]],
    kinds: dict[str, str],
) -> str | None:
    instrument = codebook.instruments[indicator.instrument]
    variable = instrument.variable(indicator.variable)
    if not variable.asked_in(wave):
        return None
    value = _recoded(variable, wave, rules, kinds)
    missing = {m.kind: m.code for m in codebook.missing_categories.values()}
    excluded = [missing["no_answer"], missing["not_asked"]]
    if indicator.denominator == "valid" or indicator.statistic == "index":
        excluded.append(missing["hard_to_say"])
    base = f"v IS NOT NULL AND v NOT IN ({', '.join(map(str, excluded))})"
    if indicator.statistic == "proportion":
        success = ", ".join(map(str, indicator.success))
        estimate = f"100 * avg(CASE WHEN v IN ({success}) THEN 1 ELSE 0 END) FILTER ({base})"
        source = f"SELECT {value} AS v FROM {table}"
    elif indicator.statistic == "index":
        scores = " ".join(f"WHEN {c} THEN {s}" for c, s in indicator.scores.items())
        estimate = f"avg(CASE v {scores} END) FILTER ({base})"
        source = f"SELECT {value} AS v FROM {table}"
    elif indicator.statistic == "mean":
        estimate = "avg(v)"
        source = f"SELECT {value} AS v FROM {table}"
    elif indicator.denominator_variable == "municipality_population":
        municipality = instrument.variable("municipality").sources[wave].variable
        estimate = f"{indicator.scale} * sum(v) / sum(x)"
        source = (
            f"SELECT {value} AS v, p.population AS x FROM {table} t JOIN population p "
            f'ON p.iso_code = t."{municipality}" AND p.year = {year}'
        )
    else:
        other = instrument.variable(indicator.denominator_variable)
        estimate = f"{indicator.scale} * sum(v) / sum(x)"
        other_value = _recoded(other, wave, rules, kinds)
        source = f"SELECT {value} AS v, {other_value} AS x FROM {table}"
    return (
        f"SELECT '{indicator.id}' AS indicator, '{wave}' AS wave, {estimate} AS estimate, "
        f"count(*) AS respondents FROM ({source})"
    )


def floor_indicators(
    raw_dir: Path, codebook: Codebook, catalogue: Catalogue, reference_dir: Path | None = None
) -> pd.DataFrame:
    """Every indicator per wave, unweighted, in one SQL statement over the delivered files."""
    connection = duckdb.connect()
    population = (reference_dir or settings.reference_dir()) / "population_totals.csv"
    connection.execute(
        "CREATE TABLE population AS SELECT * FROM read_csv(?, header = true)", [str(population)]
    )
    kinds = {}
    for (instrument_name, wave), columns in _needed_columns(catalogue, codebook).items():
        spec = codebook.instruments[instrument_name].files[wave]
        name = f"{instrument_name}_{wave}"
        _load(connection, raw_dir / wave / spec.name, spec, columns, name)
        kinds[name] = {
            str(row[0]): str(row[1]) for row in connection.execute(f"DESCRIBE {name}").fetchall()
        }
    recodes = crosswalk(codebook)
    parts = [
        sql
        for indicator in catalogue.indicators
        for wave, info in codebook.waves.items()
        if wave in codebook.instruments[indicator.instrument].files
        and (
            sql := _indicator_sql(
                indicator,
                f"{indicator.instrument}_{wave}",
                wave,
                codebook,
                info.population_year,
                rules_for(recodes, indicator.instrument, wave),
                kinds[f"{indicator.instrument}_{wave}"],
            )
        )
    ]
    return connection.execute(" UNION ALL ".join(parts) + " ORDER BY ALL").df()
