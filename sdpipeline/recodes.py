"""Recodes as data: the codebook's scales flattened into one crosswalk, and the SQL made from it.

Every row of the crosswalk says what one source code (or range of codes, for binned ages) of
one variable in one wave becomes: a harmonised code, or a missing kind, and by which rule —
one table of translations in the manner of IPUMS translation tables and retroharmonize's
crosswalks. It is written to ``reference.recodes``, so an analyst can read every translation
as a table, and the SQL that builds each harmonised table is generated from it, as is the SQL
of ``sdpipeline floor``: a rule exists once, in the codebook, and everything else is made from
it.

Rules (the ``rule`` column): ``recode`` a source code to a harmonised code; ``bin`` a range of
source values to a code; ``missing`` a source code to its missing kind (categorical variables
take the kind's harmonised code, numeric ones keep no value and the kind beside it); ``blank``
an empty cell is 'no answer'; ``not_asked`` every row of a wave that did not ask the question.
"""

from __future__ import annotations

import pandas as pd

from sdpipeline.codebook import Codebook, FileSpec, Instrument, SourceVariable, Variable

COLUMNS = {
    "instrument": "VARCHAR",
    "wave": "VARCHAR",
    "variable": "VARCHAR",
    "level": "VARCHAR",
    "source_variable": "VARCHAR",
    "source_scale": "VARCHAR",
    "source_low": "DOUBLE",
    "source_high": "DOUBLE",
    "source_label": "VARCHAR",
    "harmonised_code": "BIGINT",
    "missing_kind": "VARCHAR",
    "rule": "VARCHAR",
}
# Python's str.strip() removes every Unicode whitespace character; DuckDB's trim() only spaces.
WHITESPACE = (
    " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)
ISO_DATE = "%Y-%m-%d"
NUMBER_TYPES = (
    *("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT"),
    *("UBIGINT", "UINTEGER", "USMALLINT", "UTINYINT", "UHUGEINT"),
    *("DOUBLE", "FLOAT", "REAL"),
)


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def trimmed(sql: str) -> str:
    """``sql`` (text) without surrounding whitespace, as Python's ``str.strip`` takes it off.
    Text that begins and ends with a printable ASCII character has nothing to take off and is
    passed as it is: ``trim`` with a set of characters costs some microseconds a row, a
    second per million identifiers, where the test costs almost nothing."""
    edges = f"ord(({sql})[1]) BETWEEN 33 AND 126 AND ord(({sql})[-1]) BETWEEN 33 AND 126"
    return f"CASE WHEN {edges} THEN {sql} ELSE trim({sql}, {literal(WHITESPACE)}) END"


def _rows_of(instrument: Instrument, variable: Variable, wave: str, codebook: Codebook) -> list:
    base = {
        "instrument": instrument.name,
        "wave": wave,
        "variable": variable.name,
        "level": variable.level,
    }
    source = variable.sources.get(wave)
    if source is None:
        not_asked = codebook.missing_code("not_asked") if variable.is_categorical else None
        kind = "not_asked" if variable.is_categorical or variable.level == "numeric" else None
        return [{**base, "harmonised_code": not_asked, "missing_kind": kind, "rule": "not_asked"}]
    if not (variable.is_categorical or variable.level == "numeric"):
        return []
    base |= {
        "source_variable": source.variable,
        "source_scale": source.scale.name if source.scale else None,
    }
    categorical = variable.is_categorical
    rows = [
        {
            **base,
            "harmonised_code": codebook.missing_code("no_answer") if categorical else None,
            "missing_kind": "no_answer",
            "rule": "blank",
        }
    ]
    labels = source.scale.labels if source.scale else {}
    rows += [
        {
            **base,
            "source_low": code,
            "source_high": code,
            "source_label": labels.get(int(code)) if float(code).is_integer() else None,
            "harmonised_code": codebook.missing_code(kind) if categorical else None,
            "missing_kind": kind,
            "rule": "missing",
        }
        for code, kind in source.missing_codes.items()
    ]
    if source.scale is not None:
        rows += [
            {
                **base,
                "source_low": float(code),
                "source_high": float(code),
                "source_label": labels.get(code),
                "harmonised_code": target,
                "rule": "recode",
            }
            for code, target in source.scale.recode.items()
        ]
    if source.bins is not None:
        rows += [
            {**base, "source_low": low, "source_high": high, "harmonised_code": code, "rule": "bin"}
            for code, (low, high) in source.bins.items()
        ]
    return rows


def crosswalk(codebook: Codebook) -> pd.DataFrame:
    """``reference.recodes``: one row per instrument, wave, variable and source code (or range)."""
    rows = [
        row
        for instrument in codebook.instruments.values()
        for variable in instrument.variables
        for wave in instrument.files
        for row in _rows_of(instrument, variable, wave, codebook)
    ]
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["source_low"] = frame["source_low"].astype(float)
    frame["source_high"] = frame["source_high"].astype(float)
    frame["harmonised_code"] = frame["harmonised_code"].astype("Int64")
    return frame


THOUSANDS_SPACES = ("\u00a0", "\u202f", " ")  # as Excel writes '1 234,5' for Latvia


def is_number_type(kind: str) -> bool:
    return kind.upper() in NUMBER_TYPES or kind.upper().startswith("DECIMAL")


def number(column_sql: str, kind: str) -> str:
    """A delivered column as a number: numbers as they are; text with surrounding spaces, the
    spaces that group thousands ('1 050') and a decimal comma tolerated, anything else no
    number (as the reader reads a column whose every cell is a number)."""
    if is_number_type(kind):
        return f"CAST({column_sql} AS DOUBLE)"
    if kind.upper() == "BOOLEAN":
        return f"CAST(CAST({column_sql} AS INTEGER) AS DOUBLE)"
    text = trimmed(f"CAST({column_sql} AS VARCHAR)")
    for space in THOUSANDS_SPACES:
        text = f"replace({text}, {literal(space)}, '')"
    return f"TRY_CAST(replace({text}, ',', '.') AS DOUBLE)"


def date_formats(spec: FileSpec) -> list[str]:
    """The formats a date delivered as text may take: the one the codebook declares (ISO 8601
    where it declares none); in an Excel file also ISO 8601, as the reader writes the cells
    Excel typed as dates. Never a format guessed from the rows: '05.03.2017' would be read
    day-first or month-first depending on which row came first."""
    declared = [spec.date_format] if spec.date_format else []
    if spec.format == "xlsx" or not declared:
        declared += [ISO_DATE] if ISO_DATE not in declared else []
    return declared


def date_value(column: str, kind: str, formats: list[str]) -> str:
    """A delivered date as a DATE: native dates as they are, text in one of ``formats``
    (``date_formats``); text with spaces around it, or in another format, is no date."""
    kind = kind.upper()
    if kind == "DATE":
        return column
    if kind.startswith("TIMESTAMP"):
        return f"CAST({column} AS DATE)"
    text = f"CAST({column} AS VARCHAR)"
    listed = ", ".join(literal(f) for f in formats)
    return (
        f"CASE WHEN {text} = {trimmed(text)} THEN "
        f"CAST(try_strptime({text}, [{listed}]) AS DATE) END"
    )


def _value(code: float) -> str:
    return repr(float(code))


def categorical_sql(rules: list[dict], value: str, blank: str | None = None) -> str:
    """``CASE`` turning the number ``value`` into its harmonised code by the crosswalk rows of
    one variable and wave; NULL where no rule covers the value (an unknown code). ``blank``:
    the condition of an empty cell (default ``value IS NULL``)."""
    by_rule: dict[str, list[dict]] = {}
    for row in rules:
        by_rule.setdefault(row["rule"], []).append(row)
    if "not_asked" in by_rule:
        return str(int(by_rule["not_asked"][0]["harmonised_code"]))
    whens = [
        f"WHEN {blank or f'{value} IS NULL'} THEN {int(row['harmonised_code'])}"
        for row in by_rule.get("blank", [])
    ]
    # a missing code wins over a recode or a bin; of two bins, the later one (as the codebook
    # lists them) wins, as the recode assigned them in order
    whens += [
        f"WHEN {value} = {_value(row['source_low'])} THEN {int(row['harmonised_code'])}"
        for rule in ("missing", "recode")
        for row in by_rule.get(rule, [])
    ]
    whens += [
        f"WHEN {value} BETWEEN {_value(row['source_low'])} AND {_value(row['source_high'])} "
        f"THEN {int(row['harmonised_code'])}"
        for row in reversed(by_rule.get("bin", []))
    ]
    return f"CASE {' '.join(whens)} END"


def numeric_sql(rules: list[dict], value: str) -> tuple[str, str]:
    """(value, missing kind) of a numeric answer: the number unless it is a missing code or
    empty, and the kind of missing beside it."""
    if any(row["rule"] == "not_asked" for row in rules):
        return "CAST(NULL AS DOUBLE)", literal("not_asked")
    missing = [row for row in rules if row["rule"] == "missing"]
    codes = ", ".join(_value(row["source_low"]) for row in missing)
    kept = f"CASE WHEN {value} IN ({codes}) THEN NULL ELSE {value} END" if codes else value
    kinds = " ".join(
        f"WHEN {value} = {_value(row['source_low'])} THEN {literal(row['missing_kind'])}"
        for row in missing
    )
    return kept, f"CASE WHEN {value} IS NULL THEN 'no_answer' {kinds} END"


def rules_for(recodes: pd.DataFrame, instrument: str, wave: str) -> dict[str, list[dict]]:
    """The crosswalk rows of one instrument and wave, by harmonised variable, as records."""
    chosen = (recodes["instrument"] == instrument).to_numpy() & (recodes["wave"] == wave).to_numpy()
    rules: dict[str, list[dict]] = {}
    for row in recodes[chosen].to_dict("records"):
        rules.setdefault(row["variable"], []).append(row)
    return rules


def source_value(source: SourceVariable, kinds: dict[str, str]) -> str:
    """The numeric view of a source column of a table whose column types are ``kinds``."""
    return number(quoted(source.variable), kinds.get(source.variable, "VARCHAR"))
