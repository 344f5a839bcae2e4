"""Apply a row contract: keep the rows that pass, set aside the rows that fail with the reason,
and decide whether the file as a whole is acceptable.

Every check of the contract gets a result, including the ones that pass, so an auditor can see
what a file was checked against and not only what went wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa

ROW_COLUMN = "_source_row"
SAMPLE_ROWS = 10


@dataclass(frozen=True)
class ContractOutcome:
    """What a row contract found in one table."""

    rows: int
    valid: pd.DataFrame
    quarantined: pd.DataFrame
    checks: pd.DataFrame
    file_errors: tuple[str, ...]

    @property
    def quarantined_share(self) -> float:
        return len(self.quarantined) / self.rows if self.rows else 0.0

    def rejected(self, max_share: float) -> bool:
        return bool(self.file_errors) or self.quarantined_share > max_share

    def audit_results(self, severity: str) -> list[dict]:
        """One audit row per check of the contract (passing ones too), plus file-level errors;
        ``severity`` is what a failure means for the table the contract guards."""
        results = [
            {
                "check_name": f"{row.check}({row.column})",
                "passed": row.failing_rows == 0,
                "failing_count": row.failing_rows,
                "rows_checked": self.rows,
                "severity": severity,
                "details": {
                    "message": row.message,
                    "sample_rows": row.sample_rows,
                    "sample_values": row.sample_values,
                },
            }
            for row in self.checks.itertuples()
        ]
        results += [
            {
                "check_name": "file_structure",
                "passed": False,
                "severity": "ERROR",
                "details": {"error": e},
            }
            for e in self.file_errors
        ]
        return results

    def summary(self, limit: int = 5) -> str:
        failing = self.checks[self.checks["failing_rows"] > 0]
        parts = [
            f"{row.column} {row.check} ({row.failing_rows} rows, e.g. row {row.sample_rows[0]})"
            if row.sample_rows
            else f"{row.column} {row.check}"
            for row in failing.head(limit).itertuples()
        ]
        return "; ".join(list(self.file_errors) + parts)


def contract_checks(schema: pa.DataFrameSchema) -> list[tuple[str, str, str]]:
    """Every (column, check name, message) the schema applies, passing or not."""
    checks = []
    for name, column in schema.columns.items():
        if not column.nullable:
            checks.append((name, "not_nullable", "value is missing"))
        if column.unique:
            checks.append((name, "unique", "respondent identifier is not unique"))
        checks += [(name, c.name, c.error or c.name) for c in column.checks]
    checks += [(c.description or "(row)", c.name, c.error or c.name) for c in schema.checks]
    return checks


def _check_key(
    failure: pd.Series, names: dict[tuple[str, str], str], rules: dict[str, tuple[str, str]]
) -> tuple[str, str]:
    """(column, check name) of a pandera failure case; for a cross-field rule, the columns it
    reads."""
    check = str(failure["check"])
    if failure["schema_context"] == "DataFrameSchema":
        return rules.get(check, ("(row)", check))
    column = str(failure["column"])
    builtin = {"not_nullable": "not_nullable", "field_uniqueness": "unique"}
    return column, builtin.get(check) or names.get((column, check), check)


def _reason(row: pd.Series) -> str:
    if row["schema_context"] == "DataFrameSchema":
        return f"rule {row['check_name']}: {row['message']}"
    return f"{row['where']} = {row['failure_case']}: {row['message']}"


def apply_contract(table: pd.DataFrame, schema: pa.DataFrameSchema) -> ContractOutcome:
    """Validate lazily (every failure collected) and split the table into valid and quarantined."""
    table = table.reset_index(drop=True)
    try:
        # In place: the contract never coerces, and pandera's defensive copy of the whole table
        # cost a second and the table's size again in memory at a register's scale.
        schema.validate(table, lazy=True, inplace=True)
        failures = pd.DataFrame(
            columns=["schema_context", "column", "check", "failure_case", "index"]
        )
    except pa.errors.SchemaErrors as errors:
        failures = errors.failure_cases
    at_row = failures["index"].notna()
    file_errors = tuple(
        f"{row.column}: {row.check} ({row.failure_case})"
        for row in failures[~at_row].drop_duplicates(["column", "check"]).itertuples()
    )
    declared = contract_checks(schema)
    names = {(column, message): name for column, name, message in declared}
    messages = {(column, name): message for column, name, message in declared}
    located = failures[at_row].copy()
    located["index"] = located["index"].astype(int)
    rules = {c.error or c.name: (c.description or "(row)", c.name) for c in schema.checks}
    keys = [_check_key(f, names, rules) for _, f in located.iterrows()]
    located["where"] = [k[0] for k in keys]
    located["check_name"] = [k[1] for k in keys]
    located["message"] = [messages.get(k, k[1]) for k in keys]
    located = located.drop_duplicates(["index", "where", "check_name"])
    located["source_row"] = table[ROW_COLUMN].to_numpy()[located["index"].to_numpy()]

    results = []
    for column, check, message in declared:
        hits = located[(located["where"] == column) & (located["check_name"] == check)]
        hits = hits.sort_values("source_row")
        results.append(
            {
                "column": column,
                "check": check,
                "message": message,
                "failing_rows": len(hits),
                "sample_rows": hits["source_row"].head(SAMPLE_ROWS).astype(int).tolist(),
                "sample_values": [str(v) for v in hits["failure_case"].head(SAMPLE_ROWS)],
            }
        )
    checks = pd.DataFrame(results)

    bad = sorted(located["index"].unique())
    located["reason"] = [_reason(row) for _, row in located.iterrows()]
    reasons = located.groupby("index").agg(
        columns=("where", lambda s: ", ".join(sorted(set(s)))), reasons=("reason", "; ".join)
    )
    quarantined = table.loc[bad, [ROW_COLUMN]].rename(columns={ROW_COLUMN: "source_row"})
    quarantined["columns"] = reasons.loc[bad, "columns"].to_numpy() if bad else []
    quarantined["reasons"] = reasons.loc[bad, "reasons"].to_numpy() if bad else []
    quarantined["record"] = [
        json.dumps(
            {k: (None if pd.isna(v) else str(v)) for k, v in table.loc[i].items()},
            ensure_ascii=False,
        )
        for i in bad
    ]
    return ContractOutcome(
        rows=len(table),
        valid=table.drop(index=bad).reset_index(drop=True) if bad else table,
        quarantined=quarantined.reset_index(drop=True),
        checks=checks,
        file_errors=file_errors,
    )
