"""Cell lineage: every published cell of the report reaches the delivered files through
``report.cell_lineage``, and cells drawn at random are recomputed from those files' own rows.

The recomputation is independent of the pipeline's readers and harmonisation: each file is read
with the format's own library (pyreadstat, openpyxl, the csv module), each answer recoded with
the rule the lineage gives (its JSON form), weighted with the pipeline's weights joined by the
row's place in the file, and the figure compared with the one the report publishes."""

from __future__ import annotations

import csv
import io
import json
import random
import re
from pathlib import Path

import duckdb
import numpy as np
import openpyxl
import pandas as pd
import pyreadstat
import pytest

from sdpipeline import cell_lineage, report_columns
from sdpipeline.codebook import Codebook
from sdpipeline.indicators import CatalogueError, Indicator, default_catalogue, load_catalogue
from sdpipeline.ingest import sha256_of

# Column kinds whose cells are a weighted figure of the files' rows (the model outputs of
# project_participation and change_decomposition are followed to their files but not refitted
# here).
RECOMPUTED = {
    "estimate",
    "change",
    "count",
    "share",
    "offered",
    "wanted",
    "gap",
    "time_use",
    "time_use_change",
}
CELLS = 5
SEED = 20231016


def _read(warehouse: Path, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return connection.execute(sql).df()


def _delivered(path: Path, codebook: Codebook, instrument: str, wave: str) -> pd.DataFrame:
    """A delivered file as its format's own library reads it, indexed by the row's place in
    the file (SPSS case, CSV record counting blank lines, Excel row), every cell as given."""
    spec = codebook.instruments[instrument].files[wave]
    if path.suffix == ".sav":
        frame, _ = pyreadstat.read_sav(str(path), user_missing=True)
        frame.index = range(1, len(frame) + 1)
        return frame
    if path.suffix == ".xlsx":
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        rows = list(book.worksheets[0].iter_rows(values_only=True))
        book.close()
        header = [str(c).strip() if c is not None else "" for c in rows[spec.header_row]]
        body = rows[spec.header_row + 1 :]
        start = spec.header_row + 2
    else:
        text = path.read_bytes().decode(spec.encoding or "utf-8-sig").lstrip("\ufeff")
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=spec.delimiter or ";"))
        header = [c.strip() for c in rows[spec.header_row]]
        body = rows[spec.header_row + 1 :]
        start = spec.header_row + 2
    records = {
        start + i: dict(zip(header, row, strict=False)) for i, row in enumerate(body) if any(row)
    }
    return pd.DataFrame.from_dict(records, orient="index")


def _number(value: object, decimal: str | None) -> float:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return np.nan
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip().replace("\u00a0", "").replace(" ", "")
    if not text:
        return np.nan
    return float(text.replace(decimal or ".", "."))


def _recode(values: pd.Series, rules: list[dict], decimal: str | None) -> pd.Series:
    """Harmonised codes (or numbers) from delivered values, by the lineage's rules (the rows of
    reference.recodes): recode and bin map codes and ranges, missing codes take their kind's
    code (a number: none), a blank is 'no answer'; a number without recodes stays as it is."""
    numbers = values.map(lambda v: _number(v, decimal))
    mapping = [r for r in rules if r["rule"] in ("recode", "bin")]
    out = pd.Series(np.nan, index=values.index) if mapping else numbers.copy()
    for rule in mapping:
        out[numbers.between(rule["source_low"], rule["source_high"])] = rule["harmonised_code"]
    special = pd.Series(False, index=values.index)
    for rule in rules:
        if rule["rule"] == "missing":
            where = numbers == rule["source_low"]
        elif rule["rule"] == "blank":
            where = numbers.isna()
        elif rule["rule"] == "not_asked":
            where = pd.Series(True, index=values.index)
        else:
            continue
        code = rule["harmonised_code"]
        out[where] = np.nan if code is None else code
        special |= where
    if mapping:  # a categorical answer the codebook has no rule for would be a broken lineage
        assert not (out.isna() & ~special).any(), values[out.isna() & ~special].head()
    return out


class _Files:
    """The delivered files a cell's lineage names, read once each and checked by checksum."""

    def __init__(self, raw: Path, warehouse: Path, codebook: Codebook) -> None:
        self.raw, self.warehouse, self.codebook = raw, warehouse, codebook
        self.files: dict[tuple[str, str], pd.DataFrame] = {}
        self.weights: dict[tuple[str, str], pd.DataFrame] = {}

    def column(self, source: pd.Series) -> pd.Series:
        """One lineage row's variable in its wave: recoded from the delivered file, aligned to
        the harmonised rows of the wave by the row's place in the file."""
        instrument, wave, name = source["instrument"], source["wave"], source["source_file"]
        path = self.raw / wave / name
        assert sha256_of(path) == source["source_sha256"], f"{name} is not the file of the report"
        if (instrument, wave) not in self.files:
            self.files[instrument, wave] = _delivered(path, self.codebook, instrument, wave)
        delivered = self.files[instrument, wave]
        spec = self.codebook.instruments[instrument].files[wave]
        rows = self.rows(instrument, wave)
        values = delivered.reindex(rows.index)[source["source_variable"]]
        recoded = _recode(values, json.loads(source["recode"]), spec.decimal)
        # the harmonised table holds exactly what the rule makes of the delivered answer: the
        # join by row number lines the two up
        variable = source["harmonised_variable"]
        harmonised = rows[variable]
        if self.codebook.instruments[instrument].variable(variable).level in (
            "numeric",
            "binary",
            "ordinal",
            "nominal",
        ):
            np.testing.assert_allclose(
                recoded.to_numpy(float), harmonised.to_numpy(float), equal_nan=True
            )
        return recoded

    def rows(self, instrument: str, wave: str) -> pd.DataFrame:
        """The wave's harmonised rows (the pipeline's weights), indexed by row in the file."""
        if (instrument, wave) not in self.weights:
            frame = _read(
                self.warehouse,
                f"SELECT * FROM harmonised.{instrument} WHERE wave = '{wave}'",
            )
            self.weights[instrument, wave] = frame.set_index("_source_row")
        return self.weights[instrument, wave]

    def text(self, source: pd.Series) -> pd.Series:
        rows = self.rows(source["instrument"], source["wave"])
        delivered = self.files.get((source["instrument"], source["wave"]))
        if delivered is None:
            self.column(source)
            delivered = self.files[source["instrument"], source["wave"]]
        return delivered.reindex(rows.index)[source["source_variable"]].astype(str).str.strip()


def _population(codebook: Codebook, wave: str) -> dict[str, float]:
    totals = pd.read_csv(Path(__file__).parents[1] / "data" / "reference" / "population_totals.csv")
    year = codebook.waves[wave].population_year
    own = totals[totals["year"] == year]
    return dict(zip(own["iso_code"], own["population"].astype(float), strict=True))


def _domain(uses: pd.DataFrame, files: _Files) -> pd.Series:
    """The rows inside the cell's domain: every row nationally, a region's by the delivered
    region answer recoded."""
    domain = str(uses["domain"].iloc[0])
    rows = files.rows(uses["instrument"].iloc[0], uses["wave"].iloc[0])
    if domain == "national":
        return pd.Series(True, index=rows.index)
    region = int(re.fullmatch(r"region = (\d+) \(.*\)", domain).group(1))
    return files.column(_role(uses, "domain")) == region


def _role(uses: pd.DataFrame, role: str) -> pd.Series:
    return uses.loc[uses["variable_role"] == role].iloc[0]


def _indicator_value(
    indicator: Indicator, uses: pd.DataFrame, files: _Files, codebook: Codebook, count: bool
) -> float:
    """One wave's figure of an indicator in the cell's domain, from the delivered rows."""
    answer = _role(uses, "numerator" if indicator.statistic == "ratio" else "answer")
    y = files.column(answer)
    weights = files.rows(answer["instrument"], answer["wave"])["weight"].astype(float)
    x = pd.Series(1.0, index=y.index)
    factor = 1.0
    if indicator.statistic in ("proportion", "index"):
        codes = {m.kind: m.code for m in codebook.missing_categories.values()}
        excluded = [codes["no_answer"], codes["not_asked"]]
        if indicator.denominator == "valid" or indicator.statistic == "index":
            excluded.append(codes["hard_to_say"])
        if indicator.statistic == "proportion":
            y, factor = y.isin(indicator.success).astype(float).where(~y.isin(excluded)), 100.0
        else:
            y = y.map(indicator.scores).where(~y.isin(excluded))
    elif indicator.statistic == "ratio":
        denominator = _role(uses, "denominator")
        if indicator.denominator_variable == "municipality_population":
            x = files.text(denominator).map(_population(codebook, denominator["wave"]))
        else:
            x = files.column(denominator)
        y = y * indicator.scale
    used = _domain(uses, files) & y.notna() & x.astype(float).notna()
    if count:
        return float(used.sum())
    return float((weights[used] * y[used]).sum() / (weights[used] * x[used]).sum() * factor)


def _share(source: pd.Series, files: _Files, codebook: Codebook) -> float:
    """barriers and services: the weighted share answering yes (1) of those who answered 0 or
    1; time use (a number): the weighted mean."""
    y = files.column(source)
    weights = files.rows(source["instrument"], source["wave"])["weight"].astype(float)
    variable = codebook.instruments[source["instrument"]].variable(source["harmonised_variable"])
    if variable.level == "numeric":
        used, values = y.notna(), y
    else:
        used, values = y >= 0, (y == 1).astype(float) * 100
    return float((weights[used] * values[used]).sum() / weights[used].sum())


def _recompute(cell: pd.DataFrame, files: _Files, codebook: Codebook) -> float:
    kind = cell["column_kind"].iloc[0]
    catalogue = default_catalogue()
    if cell["indicator_id"].notna().all():
        indicator = catalogue.get(cell["indicator_id"].iloc[0])
        figures = {
            wave: _indicator_value(indicator, uses, files, codebook, kind == "count")
            for wave, uses in cell.groupby("wave", sort=False)
        }
        if kind in ("estimate", "count"):
            (value,) = figures.values()
            return value
        comparison = codebook.comparisons[_comparison_of(cell, codebook)]
        return figures[comparison.after] - figures[comparison.before]
    shares = {(r["instrument"], r["wave"]): _share(r, files, codebook) for _, r in cell.iterrows()}
    if kind in ("share", "offered", "wanted", "time_use"):
        (value,) = shares.values()
        return value
    if kind == "gap":
        wanted = np.nanmean([v for (i, _), v in shares.items() if i != "heads"])
        return float(wanted - next(v for (i, _), v in shares.items() if i == "heads"))
    comparison = codebook.comparisons[_comparison_of(cell, codebook)]
    by_wave = {w: v for (_, w), v in shares.items()}
    return by_wave[comparison.after] - by_wave[comparison.before]


def _comparison_of(cell: pd.DataFrame, codebook: Codebook) -> str:
    column = report_columns.report_columns(
        cell["report_table"].iloc[0],
        [cell["column_name"].iloc[0]],
        codebook,
        default_catalogue(),
    )[0]
    return column.comparison


def _published(warehouse: Path) -> dict[str, pd.DataFrame]:
    return {
        name: _read(warehouse, f'SELECT * FROM report."{name}"')
        for name in default_catalogue().report.tables
    }


def test_every_published_cell_has_its_lineage(pipeline_run, codebook):
    folder, warehouse, _ = pipeline_run
    lineage = _read(warehouse, "SELECT * FROM report.cell_lineage")
    published = _published(warehouse)
    for name, frame in published.items():
        own = lineage[lineage["report_table"] == name]
        cells = set(zip(own["row_number"], own["column_name"], strict=True))
        expected = {(r, c) for r in range(1, len(frame) + 1) for c in frame.columns}
        assert cells == expected, name
        columns = report_columns.report_columns(
            name, list(frame.columns), codebook, default_catalogue()
        )
        figures = own[own["column_name"].isin([c.name for c in columns if not c.is_label])]
        # every figure reaches a delivered file by checksum, through its source variable
        assert figures["source_sha256"].notna().all(), name
        assert (
            figures["source_variable"].notna() | figures["rule"].str.startswith("not asked")
        ).all()
    files = lineage.dropna(subset=["source_file"])[["wave", "source_file", "source_sha256"]]
    for wave, name, sha in files.drop_duplicates().itertuples(index=False):
        assert sha256_of(folder / "raw" / wave / name) == sha, name
    assert set(files["source_file"]) == {
        spec.name for i in codebook.instruments.values() for spec in i.files.values()
    }


def test_five_random_cells_are_recomputed_from_the_delivered_files(pipeline_run, codebook):
    folder, warehouse, _ = pipeline_run
    lineage = _read(warehouse, "SELECT * FROM report.cell_lineage")
    published = _published(warehouse)
    figures = lineage[lineage["column_kind"].isin(RECOMPUTED)]
    cells = sorted(
        set(
            zip(figures["report_table"], figures["row_number"], figures["column_name"], strict=True)
        )
    )

    def value(cell: tuple[str, int, str]) -> object:
        table, row, column = cell
        return published[table][column].iloc[row - 1]

    # suppressed cells are published blank (and say why): nothing to recompute
    shown = [c for c in cells if not pd.isna(value(c))]
    assert len(shown) > 500
    chosen = random.Random(SEED).sample(shown, CELLS)
    files = _Files(folder / "raw", warehouse, codebook)
    keyed = figures.set_index(["report_table", "row_number", "column_name"]).sort_index()
    for cell in chosen:
        rows = keyed.loc[[cell]].reset_index()
        recomputed = _recompute(rows, files, codebook)
        assert abs(recomputed - float(value(cell))) <= 0.05 + 1e-9, (cell, recomputed)


@pytest.mark.parametrize(
    "table",
    [
        "headline_indicators",
        "indicators_by_region",
        "barriers_ranked",
        "services_offered_vs_wanted",
        "specialists_time_use",
    ],
)
def test_every_kind_of_cell_is_recomputed(pipeline_run, codebook, table):
    """Beyond the random draw: every indicator's statistic (proportion, index, mean, ratio of
    two answers, ratio to the population) in every column kind, nationally and by region; and
    every cell of the tables of shares and means."""
    folder, warehouse, _ = pipeline_run
    lineage = _read(warehouse, "SELECT * FROM report.cell_lineage")
    published = _published(warehouse)[table]
    files = _Files(folder / "raw", warehouse, codebook)
    own = lineage[(lineage["report_table"] == table) & lineage["column_kind"].isin(RECOMPUTED)]
    statistics, kinds = set(), set()
    for (row, column), cell in own.groupby(["row_number", "column_name"], sort=True):
        indicator = cell["indicator_id"].iloc[0]
        statistic = None
        if isinstance(indicator, str):
            found = default_catalogue().get(indicator)
            statistic = (found.statistic, found.denominator_variable)
            if statistic in statistics and (statistic, cell["column_kind"].iloc[0]) in kinds:
                continue
        published_value = published[column].iloc[row - 1]
        if pd.isna(published_value):
            continue
        recomputed = _recompute(cell.reset_index(drop=True), files, codebook)
        assert abs(recomputed - float(published_value)) <= 0.05 + 1e-9, (row, column, recomputed)
        statistics.add(statistic)
        kinds.add((statistic, cell["column_kind"].iloc[0]))
    if table in ("headline_indicators", "indicators_by_region"):
        assert len(statistics) == 5


def test_every_report_asset_describes_its_columns_and_shows_its_lineage(pipeline_run):
    _, _, result = pipeline_run
    catalogue = default_catalogue()
    shown = {}
    for event in result.get_asset_materialization_events():
        key = event.asset_key
        if key.path[0] != "report" or key.path[-1] == "exports":
            continue
        metadata = event.materialization.metadata
        columns = metadata["dagster/column_schema"].value.columns
        assert all(c.description and len(c.description) > 15 for c in columns), key
        if key.path[-1] in catalogue.report.tables:
            shown[key.path[-1]] = metadata["cell_lineage"].value
            assert metadata["dagster/column_lineage"].value.deps_by_column
    assert set(shown) == set(catalogue.report.tables)
    headline = shown["headline_indicators"]
    # R01 back to its question in each wave's file, by checksum
    assert (
        "| R01 | aware_service (answer) | ex_ante_2017 | q1 | iedzivotaji_2017.sav | `" in headline
    )
    assert "| R01 | aware_service (answer) | ex_post_2023 | A1_zina | iedzivotaji_2023.csv |" in (
        headline
    )


def test_a_report_column_without_a_meaning_is_refused(codebook):
    """A column the report tables publish must say what it holds, or nothing is built."""
    catalogue = default_catalogue()
    columns = ["Kods / Code", "2017", "Izmaiņas / Change 2017→2023", "Share of something"]
    with pytest.raises(report_columns.ReportColumnError, match="'Share of something'"):
        report_columns.report_columns("headline_indicators", columns, codebook, catalogue)
    described = report_columns.descriptions("headline_indicators", columns[:3], codebook, catalogue)
    assert described["2017"].en.startswith("Value in Ex-ante study (2017)")
    assert "2017→2023 (Ex-ante 2017 → ex-post 2023)" in described[columns[2]].en


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('"%": {lv: "%", en: "%",', '"%": {lv: "%",', "report.units.%: 'en' is a required"),
        (
            '    days: {lv: "dienas"',
            '    nights: {lv: "dienas"',
            "report.units: no entry for ['days']",
        ),
        ("unit: per_1000_residents, ", "", "indicators[H01]: 'unit' is a required property"),
    ],
)
def test_every_indicator_unit_is_named_in_both_languages(codebook, tmp_path, old, new, message):
    shipped = Path(__file__).parents[1] / "data" / "indicators" / "catalogue.yaml"
    text = shipped.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "catalogue.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    with pytest.raises(CatalogueError, match=re.escape(message)):
        load_catalogue(codebook, path)


def test_the_lineage_shown_groups_a_row_s_columns_per_source_in_the_order_they_come():
    """Label cells (no wave) are left out; one line per row, variable, wave and source with
    the columns computed from it, each once, in the order they come; a missing source, file or
    rule reads "—" (missing as None or as NaN alike), a row without an indicator goes by its
    label, and a "|" inside a value cannot break the table."""
    cell = dict.fromkeys(cell_lineage.COLUMNS)
    answer = {"harmonised_variable": "aware", "variable_role": "answer", "rule": "recode a|b"}

    def sourced(column: str, wave: str, variable: str, file: str, sha: str) -> dict:
        where = {"source_variable": variable, "source_file": file, "source_sha256": sha}
        return cell | answer | where | {"indicator_id": "R01", "column_name": column, "wave": wave}

    region = {"row_label": "Rīga", "harmonised_variable": "region", "variable_role": "domain"}
    rows = [
        cell | {"row_label": "Aware", "indicator_id": "R01", "column_name": "Kods / Code"},
        sourced("2017", "w1", "q1", "a.sav", "ab"),
        sourced("2023", "w2", "A1", "b.csv", "cd"),
        sourced("Δ", "w1", "q1", "a.sav", "ab"),
        sourced("2017", "w1", "q1", "a.sav", "ab"),
        cell | region | {"column_name": "n", "wave": "w1", "rule": float("nan")},
        cell | region | {"column_name": "share", "wave": "w1", "rule": None},
    ]
    shown = cell_lineage.lineage_markdown(pd.DataFrame(rows, columns=cell_lineage.COLUMNS))
    assert shown.splitlines()[2:] == [
        "| R01 | aware (answer) | w1 | q1 | a.sav | `ab` | recode a\\|b | 2017; Δ |",
        "| R01 | aware (answer) | w2 | A1 | b.csv | `cd` | recode a\\|b | 2023 |",
        "| Rīga | region (domain) | w1 | — | — | `—` | — | n; share |",
    ]
