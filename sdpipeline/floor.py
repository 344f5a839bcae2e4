"""The floor the pipeline is measured against: the catalogue's indicators computed by one plain
DuckDB SQL pass over the delivered files, with no orchestration, validation, weighting,
geography or variance estimation.

Files are read the fastest way there is (DuckDB's own CSV reader; pyreadstat and calamine
reading only the columns the indicators need, for formats DuckDB cannot read), codes are
recoded inside the SQL by the same SQL the harmonised tables are built with (generated from
the codebook's crosswalk, ``recodes``), and every indicator is an unweighted share, mean or
ratio per wave. It is a lower bound on cost, not a second estimate: the pipeline's
weighted, design-based figures differ from these by design.

What it reads it must understand: a code the crosswalk has no rule for, text where a number
belongs, or a municipality the population reference lacks would otherwise fall out of a base
without a word (the recode SQL returns NULL for them, and the pipeline's contracts are not
here to catch it), so the floor stops naming the file, the column, the values and the rows.
The header is found as the pipeline's readers find it, below a title row too.
"""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pandas as pd
import pyreadstat
import python_calamine

from sdpipeline import settings
from sdpipeline.codebook import Codebook, Variable
from sdpipeline.indicators import Catalogue, Indicator
from sdpipeline.readers import (
    HEADER_SEARCH_ROWS,
    DeliveryError,
    find_header,
    normalise_name,
    shown_value,
)
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


class FloorError(ValueError):
    """A delivered value the floor cannot interpret, or a file it cannot find its columns in."""


def _header(path: Path, rows: list[list[object]], spec, columns: set[str]) -> int:
    """The index of the header row, as the pipeline's readers find it; it must hold every
    column the indicators read."""
    header = find_header(rows, {normalise_name(c) for c in columns}, spec.header_row)
    found = {normalise_name(c) for c in (rows[header] if header < len(rows) else [])}
    absent = sorted(c for c in columns if normalise_name(c) not in found)
    if absent:
        raise FloorError(
            str(DeliveryError(path, "no header row holds these columns", column=", ".join(absent)))
        )
    return header


def _load(
    connection: duckdb.DuckDBPyConnection, path: Path, spec, columns: set[str], name: str
) -> int:
    """One delivered file as a DuckDB table holding only ``columns``; returns what to add to
    a row's ``rowid`` for its row number in the file (the pipeline's numbering)."""
    listed = sorted(columns)
    if spec.format == "csv":
        # Only codes and municipality codes are read, all ASCII: Latin-1 decodes any
        # Windows-1257 byte without error, so DuckDB's own reader serves every CSV.
        encoding = "latin-1" if (spec.encoding or "").lower() == "cp1257" else "utf-8"
        delimiter = spec.delimiter or ";"
        decimal = spec.decimal or ("," if delimiter == ";" else ".")
        with path.open(encoding=encoding, newline="") as handle:
            head = [
                row
                for _, row in zip(
                    range(HEADER_SEARCH_ROWS), csv.reader(handle, delimiter=delimiter), strict=False
                )
            ]
        if head and head[0]:
            head[0][0] = head[0][0].removeprefix("\ufeff")  # DuckDB's reader drops it too
        header = _header(path, head, spec, columns)
        names = {normalise_name(c): c for c in head[header]}
        # a cell of spaces is an empty one, as the pipeline's reader has it
        selected = ", ".join(
            f"{quoted(names[normalise_name(c)])} AS {quoted(c)}"
            if c == "municipality_code"
            else f"nullif(replace({quoted(names[normalise_name(c)])}, ' ', ''), '') AS {quoted(c)}"
            for c in listed
        )
        connection.execute(
            f"CREATE TABLE {name} AS SELECT {selected} FROM read_csv(?, delim = ?, "
            "decimal_separator = ?, header = true, skip = ?, encoding = ?, all_varchar = true)",
            [str(path), delimiter, decimal, header, encoding],
        )
        return header + 2
    if spec.format == "sav":
        frame, _ = pyreadstat.read_sav(str(path), usecols=listed, user_missing=True)
        offset = 1
    else:
        sheet = python_calamine.CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0)
        rows = sheet.to_python(skip_empty_area=False)
        header = _header(path, rows[:HEADER_SEARCH_ROWS], spec, columns)
        places = {normalise_name(c): i for i, c in enumerate(rows[header])}
        frame = pd.DataFrame(rows[header + 1 :]).iloc[
            :, [places[normalise_name(c)] for c in listed]
        ]
        frame.columns = listed
        frame = frame.replace("", None)  # an empty cell, as calamine gives it
        offset = header + 2
    connection.register(f"{name}_frame", frame)
    connection.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_frame")
    connection.unregister(f"{name}_frame")
    return offset


def _not_understood(
    connection: duckdb.DuckDBPyConnection,
    path: Path,
    checks: dict[str, str],
    table: str,
    offset: int,
) -> list[str]:
    """``checks``: source column → the condition of a value the floor cannot interpret.
    One pass counts them all; only a column with some is listed, by value and row."""
    if not checks:
        return []
    counts = connection.execute(
        "SELECT " + ", ".join(f"count(*) FILTER ({t})" for t in checks.values()) + f" FROM {table}"
    ).fetchone()
    problems = []
    for (column, test), count in zip(checks.items(), counts, strict=True):
        if not count:
            continue
        values, rows = connection.execute(
            f"SELECT list(DISTINCT CAST({quoted(column)} AS VARCHAR) ORDER BY CAST("
            f"{quoted(column)} AS VARCHAR))[1:10], list(rowid + {offset} ORDER BY rowid)[1:5] "
            f"FROM {table} WHERE {test}"
        ).fetchone()
        problems.append(
            str(
                DeliveryError(
                    path,
                    f"{count} rows hold values the codebook has no rule for: "
                    f"{[shown_value(v) for v in values]} "
                    f"(rows {', '.join(map(str, rows))}{' …' if count > len(rows) else ''})",
                    column=column,
                )
            )
        )
    return problems


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


def _not_understood_test(
    variable: Variable, wave: str, rules: dict[str, list[dict]], kinds: dict[str, str]
) -> str:
    """The condition of a delivered value the floor cannot interpret: a categorical value the
    recode gives no code for, or text where a number belongs."""
    source = variable.sources[wave]
    if variable.is_categorical:
        return f"({_recoded(variable, wave, rules, kinds)}) IS NULL"
    text = f"CAST({quoted(source.variable)} AS VARCHAR)"
    return f"({source_value(source, kinds)} IS NULL AND nullif(trim({text}), '') IS NOT NULL)"


def _population_test(municipality: str, year: int) -> str:
    return (
        f"({quoted(municipality)} IS NULL OR {quoted(municipality)} NOT IN "
        f"(SELECT iso_code FROM population WHERE year = {year}))"
    )


def _checks(
    catalogue: Catalogue, codebook: Codebook, rules: dict[str, dict], kinds: dict
) -> dict[tuple[str, str], dict[str, str]]:
    """(instrument, wave) → source column → the condition of a value the indicators read and
    the floor cannot interpret, a municipality without a population included."""
    checks: dict[tuple[str, str], dict[str, str]] = {}
    for indicator in catalogue.indicators:
        instrument = codebook.instruments[indicator.instrument]
        names = [indicator.variable]
        if indicator.denominator_variable not in (None, "municipality_population"):
            names.append(indicator.denominator_variable)
        for wave, info in codebook.waves.items():
            if wave not in instrument.files:
                continue
            table = f"{instrument.name}_{wave}"
            found = checks.setdefault((instrument.name, wave), {})
            for variable in map(instrument.variable, names):
                if variable.asked_in(wave):
                    found[variable.sources[wave].variable] = _not_understood_test(
                        variable, wave, rules[table], kinds[table]
                    )
            if indicator.denominator_variable == "municipality_population":
                municipality = instrument.variable("municipality").sources[wave].variable
                found[municipality] = _population_test(municipality, info.population_year)
    return checks


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
    unread = _not_understood_test(variable, wave, rules, kinds)
    missing = {m.kind: m.code for m in codebook.missing_categories.values()}
    excluded = [missing["no_answer"], missing["not_asked"]]
    if indicator.denominator == "valid" or indicator.statistic == "index":
        excluded.append(missing["hard_to_say"])
    base = f"v IS NOT NULL AND v NOT IN ({', '.join(map(str, excluded))})"
    if indicator.statistic == "proportion":
        success = ", ".join(map(str, indicator.success))
        estimate = f"100 * avg(CASE WHEN v IN ({success}) THEN 1 ELSE 0 END) FILTER ({base})"
        source = f"SELECT {value} AS v, {unread} AS u FROM {table}"
    elif indicator.statistic == "index":
        scores = " ".join(f"WHEN {c} THEN {s}" for c, s in indicator.scores.items())
        estimate = f"avg(CASE v {scores} END) FILTER ({base})"
        source = f"SELECT {value} AS v, {unread} AS u FROM {table}"
    elif indicator.statistic == "mean":
        estimate = "avg(v)"
        source = f"SELECT {value} AS v, {unread} AS u FROM {table}"
    elif indicator.denominator_variable == "municipality_population":
        municipality = instrument.variable("municipality").sources[wave].variable
        # a municipality without a population is counted as not understood, not left out
        estimate = f"{indicator.scale} * sum(v) FILTER (x IS NOT NULL) / sum(x)"
        source = (
            f"SELECT {value} AS v, p.population AS x, {unread} OR p.population IS NULL AS u "
            f"FROM {table} t LEFT JOIN population p "
            f'ON p.iso_code = t."{municipality}" AND p.year = {year}'
        )
    else:
        other = instrument.variable(indicator.denominator_variable)
        estimate = f"{indicator.scale} * sum(v) / sum(x)"
        other_value = _recoded(other, wave, rules, kinds)
        unread += f" OR {_not_understood_test(other, wave, rules, kinds)}"
        source = f"SELECT {value} AS v, {other_value} AS x, {unread} AS u FROM {table}"
    return (
        f"SELECT '{indicator.id}' AS indicator, '{wave}' AS wave, {estimate} AS estimate, "
        f"count(*) AS respondents, count(*) FILTER (u) AS not_understood FROM ({source})"
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
    kinds, offsets = {}, {}
    for (instrument_name, wave), columns in _needed_columns(catalogue, codebook).items():
        spec = codebook.instruments[instrument_name].files[wave]
        name = f"{instrument_name}_{wave}"
        offsets[name] = _load(connection, raw_dir / wave / spec.name, spec, columns, name)
        kinds[name] = {
            str(row[0]): str(row[1]) for row in connection.execute(f"DESCRIBE {name}").fetchall()
        }
    recodes = crosswalk(codebook)
    rules = {
        f"{instrument_name}_{wave}": rules_for(recodes, instrument_name, wave)
        for instrument_name, wave in _needed_columns(catalogue, codebook)
    }
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
                rules[f"{indicator.instrument}_{wave}"],
                kinds[f"{indicator.instrument}_{wave}"],
            )
        )
    ]
    table = connection.execute(" UNION ALL ".join(parts) + " ORDER BY ALL").df()
    if table["not_understood"].any():
        # the figures' own pass counted them; where and which, only now, file by file
        problems = [
            problem
            for (instrument_name, wave), checks in _checks(
                catalogue, codebook, rules, kinds
            ).items()
            for problem in _not_understood(
                connection,
                raw_dir / wave / codebook.instruments[instrument_name].files[wave].name,
                checks,
                f"{instrument_name}_{wave}",
                offsets[f"{instrument_name}_{wave}"],
            )
        ]
        raise FloorError("; ".join(problems))
    return table.drop(columns="not_understood")
