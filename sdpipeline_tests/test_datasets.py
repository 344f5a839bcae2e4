"""The harmonised tables as analysts take them away: each SPSS file read back with pyreadstat
holds the warehouse's values, its labels in the file's language and the missing codes declared
as missing; the Parquet file is the warehouse table, value for value and type for type; free
text is in neither."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import struct
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyreadstat
import pytest

from sdpipeline import harmonised_export, report_export, sav_writer
from sdpipeline.codebook import Codebook
from sdpipeline.columns import harmonised_columns
from sdpipeline.defs.report.assets import DATASETS
from sdpipeline.generator.answers import COMMENTS
from sdpipeline.harmonise import missing_column
from sdpipeline.ingest import sha256_of

STAMP = dt.datetime(2023, 5, 31, 12, 0)
INSTRUMENTS = ["residents", "clients", "heads", "specialists", "partners", "leaders"]
MISSING = [-1.0, -2.0, -3.0]


def _datasets(pipeline_run) -> Path:
    folder, _, _ = pipeline_run
    return folder / "var" / "reports" / DATASETS


def _table(warehouse: Path, instrument: str) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return connection.execute(f"SELECT * FROM harmonised.{instrument}").df()


def _labels(warehouse: Path, instrument: str) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return connection.execute(f"SELECT * FROM harmonised.{instrument}_labels").df()


def test_the_datasets_are_published_apart_from_the_report(pipeline_run):
    """The datasets are microdata (every answer, by municipality, with weights): from them
    every cell the report hides can be counted again. They are published with each report, in
    the same publication switched by the same rename, but never in the report's folder, the
    one handed on; its manifest names them by checksum."""
    folder, _, _ = pipeline_run
    names = sorted(p.name for p in _datasets(pipeline_run).iterdir())
    assert names == sorted(
        f"{i}{suffix}"
        for i in INSTRUMENTS
        for suffix in (".parquet", "_lv.sav", "_en.sav", "_codebook.md")
    )
    report = (folder / "var" / "reports" / "tables").resolve()
    # one publication, switched by one rename: the report and its datasets are of one run
    assert _datasets(pipeline_run).resolve().parent == report.parent
    assert not any(p.is_dir() for p in report.iterdir())
    assert not [p for p in report.rglob("*") if p.suffix in (".parquet", ".sav")]
    manifest = json.loads((report / report_export.MANIFEST).read_text(encoding="utf-8"))
    assert not any(name.startswith(DATASETS) for name in manifest["contents"])
    assert manifest["published_beside"][DATASETS] == {
        name: sha256_of(_datasets(pipeline_run) / name) for name in names
    }


@pytest.mark.parametrize("instrument", INSTRUMENTS)
def test_the_parquet_file_is_the_warehouse_table_less_free_text(
    pipeline_run, codebook: Codebook, instrument
):
    _, warehouse, _ = pipeline_run
    path = _datasets(pipeline_run) / f"{instrument}.parquet"
    free_text = [v.name for v in codebook.instruments[instrument].variables if v.level == "text"]
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        stored = connection.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE "
            "table_schema = 'harmonised' AND table_name = ? ORDER BY ordinal_position",
            [instrument],
        ).fetchall()
        exported = connection.execute(f"DESCRIBE SELECT * FROM '{path}'").fetchall()
        kept = [(n, t) for n, t in stored if n not in free_text]
        assert [(n, t) for n, t, *_ in exported] == kept
        columns = ", ".join(f'"{n}"' for n, _ in kept)
        table = connection.execute(f"SELECT {columns} FROM harmonised.{instrument}").df()
        parquet = connection.execute(f"SELECT * FROM '{path}'").df()
    pd.testing.assert_frame_equal(parquet, table, check_exact=True)
    assert len(table) > 40


@pytest.mark.parametrize("language", ["lv", "en"])
@pytest.mark.parametrize("instrument", INSTRUMENTS)
def test_the_spss_file_holds_the_values_labels_and_missing_codes(
    pipeline_run, codebook: Codebook, instrument, language
):
    _, warehouse, _ = pipeline_run
    spec = codebook.instruments[instrument]
    table = _table(warehouse, instrument)
    labels = _labels(warehouse, instrument)
    path = _datasets(pipeline_run) / f"{instrument}_{language}.sav"
    data, meta = pyreadstat.read_sav(str(path), user_missing=True)
    described = harmonised_columns(spec, codebook)
    assert len(data) == len(table)
    expected_columns, folded = [], 0
    for variable in spec.variables:
        name = variable.name
        if variable.level == "text":
            assert name not in data.columns
            continue
        expected_columns.append(name)
        assert meta.column_names_to_labels[name] == getattr(variable.question, language)
        if variable.scale is not None:
            np.testing.assert_array_equal(data[name], table[name].astype(float))
            assert sorted(meta.missing_ranges[name], key=lambda r: r["lo"]) == [
                {"lo": c, "hi": c} for c in sorted(MISSING)
            ]
            own = labels[labels["variable"] == name]
            assert meta.variable_value_labels[name] == dict(
                zip(own["code"].astype(float), own[f"label_{language}"], strict=True)
            )
        elif variable.level == "numeric":
            # the number where there is one, else the code of the missing kind
            kinds = table[missing_column(variable)]
            codes = kinds.map({m.kind: m.code for m in codebook.missing_categories.values()})
            expected = table[name].where(table[name].notna(), codes).astype(float)
            np.testing.assert_array_equal(data[name], expected)
            folded += int(kinds.notna().sum())
            assert missing_column(variable) not in data.columns
            assert {r["lo"] for r in meta.missing_ranges[name]} == set(MISSING)
            assert meta.variable_value_labels[name] == {
                float(m.code): getattr(m.label, language)
                for m in codebook.missing_categories.values()
            }
            assert meta.readstat_variable_types[name] == "double"
        elif variable.level == "date":
            assert (
                pd.to_datetime(data[name]).dt.date.tolist()
                == pd.to_datetime(table[name]).dt.date.tolist()
            )
            assert meta.original_variable_types[name] == "DATE11"
        else:
            assert data[name].tolist() == table[name].fillna("").tolist()
    for column in ("_source_file", "_source_sha256", "_source_row", "weight", "design_psu"):
        name = column.lstrip("_")
        expected_columns.append(name)
        assert meta.column_names_to_labels[name] == getattr(described[column], language)
        assert data[name].tolist() == table[column].tolist()
    assert set(expected_columns) <= set(data.columns)
    if instrument == "specialists":  # the sample has unanswered caseloads (999 → no answer)
        assert folded > 0
    # SPSS itself sees the missing codes as missing
    plain, _ = pyreadstat.read_sav(str(path), user_missing=False)
    categorical = [v.name for v in spec.variables if v.scale is not None]
    assert not plain[categorical].isin(MISSING).any().any()
    assert plain[categorical].isna().sum().sum() == table[categorical].isin(MISSING).sum().sum()


def test_free_text_reaches_no_exported_file(pipeline_run):
    for path in _datasets(pipeline_run).iterdir():
        if path.suffix == ".sav":
            frame, _ = pyreadstat.read_sav(str(path))
        elif path.suffix == ".parquet":
            frame = duckdb.sql(f"SELECT * FROM '{path}'").df()
        else:
            text = path.read_text(encoding="utf-8")
            assert not any(comment in text for comment in COMMENTS), path.name
            continue
        cells = {str(v) for c in frame.columns for v in frame[c].dropna().unique()}
        assert not any(comment in cell for comment in COMMENTS for cell in cells), path.name


def test_each_dataset_codebook_names_its_files_and_every_column(pipeline_run, codebook):
    _, warehouse, _ = pipeline_run
    for instrument in INSTRUMENTS:
        table = _table(warehouse, instrument)
        text = (_datasets(pipeline_run) / f"{instrument}_codebook.md").read_text(encoding="utf-8")
        for name, sha in table.groupby(["_source_file", "_source_sha256"]).size().index:
            assert f"| {name} | `{sha}` |" in text
        exported = [c for c in table.columns if c != "comment"]
        assert all(f"| `{c}` |" in text for c in exported), instrument
        assert "| `comment` |" not in text


def test_an_answer_whose_range_holds_the_codes_keeps_its_kind_beside_it(pipeline_run, codebook):
    """Should a numeric answer's range include a missing code, the code cannot stand in for
    the number: the number stays system-missing and the kind stays a labelled column."""
    _, warehouse, _ = pipeline_run
    spec = codebook.instruments["specialists"]
    widened = dataclasses.replace(
        spec,
        variables=tuple(
            dataclasses.replace(v, value_range=(-10.0, 500.0)) if v.name == "caseload" else v
            for v in spec.variables
        ),
    )
    table = _table(warehouse, "specialists")
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        types = harmonised_export.exported_columns(connection, widened)
        layout = harmonised_export.SavLayout(types, widened, codebook)
        frame = pd.concat(
            harmonised_export.sav_values(connection, "harmonised.specialists", layout),
            ignore_index=True,
        )
    np.testing.assert_array_equal(frame["caseload"], table["caseload"].astype(float))
    kinds = table["caseload_missing"].map(
        {m.kind: m.code for m in codebook.missing_categories.values()}
    )
    assert kinds.notna().any()
    np.testing.assert_array_equal(frame["caseload_missing"], kinds.astype(float))
    assert layout.columns["caseload_missing"].values[-2.0].en == "No answer"
    assert not layout.columns["caseload"].variable.missing
    assert not layout.columns["caseload_missing"].variable.missing
    assert layout.columns["experience_years"].variable.missing == MISSING  # still folded


@pytest.mark.parametrize("form", ["objects", "arrow", "arrow slice", "arrow chunks"])
def test_text_is_padded_as_spss_stores_it_however_arrow_holds_it(form):
    """Every value its UTF-8 bytes padded with spaces, whether the warehouse's chunk holds the
    column as Python objects or Arrow (a slice of a buffer, or several chunks), and whether
    the values repeat or are all distinct."""
    import pyarrow as pa

    rng = np.random.default_rng(7)
    alphabet = list("aāčžŗ €x")
    values = [
        None if rng.random() < 0.1 else "".join(rng.choice(alphabet, rng.integers(0, 7)))
        for _ in range(400)
    ] + [f"id-{n:05d}" for n in range(300)]  # distinct in every row, as pseudonyms are
    arrow = pa.array(["skipped", *values], type=pa.string())
    series = {
        "objects": pd.Series(values, dtype=object),
        "arrow": pd.Series(pd.arrays.ArrowExtensionArray(arrow[1:].cast(pa.string()))),
        "arrow slice": pd.Series(pd.arrays.ArrowExtensionArray(arrow.slice(1))),
        "arrow chunks": pd.Series(
            pd.arrays.ArrowExtensionArray(pa.chunked_array([arrow[1:250], arrow[250:]]))
        ),
    }[form]
    longest = max(len((v or "").encode()) for v in values)
    width = -(-longest // 8) * 8
    padded = sav_writer.padded_text(series, "t", longest, width)
    assert padded.tolist() == [(v or "").encode().ljust(width, b" ") for v in values]
    with pytest.raises(sav_writer.SavError, match="t: a value longer than its width"):
        sav_writer.padded_text(series, "t", longest - 1, width)


def test_the_sav_writer_writes_every_kind_of_cell_pyreadstat_reads_back(tmp_path):
    """Cases written in chunks, behind the dictionary pyreadstat writes: numbers and missing
    numbers, dates and missing dates, UTF-8 text, repeated text, empty text."""
    variables = [
        sav_writer.Variable("n", sav_writer.NUMBER, [-1.0], "scale"),
        sav_writer.Variable("d", sav_writer.DATE, display="DATE11"),
        sav_writer.Variable("t", sav_writer.TEXT),
        sav_writer.Variable("c", sav_writer.TEXT),
    ]
    chunks = [
        pd.DataFrame(
            {
                "n": [1.5, np.nan, -1.0],
                "d": pd.to_datetime(["2017-03-01", None, "2023-05-31"]),
                "t": ["Ķekava", None, "Rīgas valstspilsēta"],
                "c": ["a", "bb", None],
            }
        ),
        pd.DataFrame(
            {
                "n": [7.0],
                "d": pd.to_datetime(["1999-12-31"]),
                "t": ["x"],
                "c": ["bb"],
            }
        ),
    ]
    widths = {"t": len("Rīgas valstspilsēta".encode()), "c": 2}
    files = {
        tmp_path / f"{language}.sav": sav_writer.Dictionary(
            language, {"n": f"number {language}"}, {"n": {-1.0: f"no {language}"}}, ["note"]
        )
        for language in ("lv", "en")
    }
    sav_writer.write(files, variables, widths, 4, iter(chunks), STAMP)
    for language, path in zip(("lv", "en"), files, strict=True):
        data, meta = pyreadstat.read_sav(str(path), user_missing=True)
        assert meta.number_rows == 4 and meta.file_label == language
        assert meta.column_names_to_labels["n"] == f"number {language}"
        np.testing.assert_array_equal(data["n"], [1.5, np.nan, -1.0, 7.0])
        assert data["t"].tolist() == ["Ķekava", "", "Rīgas valstspilsēta", "x"]
        assert data["c"].tolist() == ["a", "bb", "", "bb"]
        assert [None if pd.isna(d) else str(d) for d in data["d"]] == [
            "2017-03-01",
            None,
            "2023-05-31",
            "1999-12-31",
        ]
        plain, _ = pyreadstat.read_sav(str(path))
        assert plain["n"].isna().tolist() == [False, True, True, False]
        # the 64-bit case count (record 7.16), which readers use past 2**31 cases, was once
        # left at the one case of the frame pyreadstat wrote the dictionary from
        content = path.read_bytes()
        record = content.find(struct.pack("<iiii", 7, 16, 8, 2))
        assert struct.unpack_from("<qq", content, record + 16) == (1, 4)
    with pytest.raises(sav_writer.SavError, match="longer than its width"):
        sav_writer.write(files, variables, {**widths, "c": 1}, 4, iter(chunks), STAMP)
    with pytest.raises(sav_writer.SavError, match="3 cases written where the table has 4"):
        sav_writer.write(files, variables, widths, 4, iter(chunks[:1]), STAMP)


def test_a_table_failing_while_its_sav_files_are_written_stops_the_writing(tmp_path):
    """The table's chunks stop with an error after some cases were handed to the disk: the
    error is the writer's, not a hang or a file claiming every case."""
    variables = [sav_writer.Variable("n", sav_writer.NUMBER)]
    files = {tmp_path / "x.sav": sav_writer.Dictionary("x", {}, {}, [])}
    rows = 3 * sav_writer._BLOCK_ROWS

    def chunks():
        yield pd.DataFrame({"n": np.arange(2 * sav_writer._BLOCK_ROWS, dtype=float)})
        raise duckdb.IOException("the warehouse went away")

    with pytest.raises(duckdb.IOException, match="the warehouse went away"):
        sav_writer.write(files, variables, {}, rows, chunks(), STAMP)
    with pytest.raises(pyreadstat.ReadstatError):
        pyreadstat.read_sav(str(tmp_path / "x.sav"))


FULL_DISK = """
import datetime as dt, resource, signal, sys
from pathlib import Path
import numpy as np, pandas as pd
from sdpipeline import sav_writer
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))
rows = 20 * sav_writer._BLOCK_ROWS
variables = [sav_writer.Variable(f"n{i}", sav_writer.NUMBER) for i in range(4)]
frame = pd.DataFrame({v.name: np.arange(rows) + 0.5 for v in variables})
try:
    sav_writer.write(
        {Path(sys.argv[1]): sav_writer.Dictionary("x", {}, {}, [])},
        variables, {}, rows, iter([frame]), dt.datetime(2026, 1, 1),
    )
except OSError as error:
    print("OSError", error.errno)
else:
    print("written")
"""


def test_a_disk_that_refuses_the_cases_stops_the_sav_writing_with_its_error(tmp_path):
    """The cases go to the disk on a thread of their own: a write the disk refuses (here a
    file size limit, as a full disk would) is the writer's error, in the caller, not a file
    written in part behind a success."""
    import errno
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(tmp_path / "x.sav")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["OSError", str(errno.EFBIG)]


# Whole numbers at and beyond the edges of the one-byte codes (-99 … 151), fractions, signed
# zero, huge and tiny numbers, and system-missing; text that fills whole 8-byte units, text
# whose units are all spaces, and empty text.
EDGE_NUMBERS = [-100.0, -99.0, -1.0, -0.0, 0.0, 0.5, 1.0, 151.0, 151.5, 152.0, 1e300, -1e-300]
EDGE_TEXT = ["", "a", "ab       c", "        x", "12345678", "Ķekava", "        "]


@pytest.mark.parametrize(
    ("numbers", "texts", "rows"),
    [
        (1, 1, 5),
        (7, 0, 40),
        (8, 0, 9),
        (3, 2, 33),
        (15, 1, 17),
        (0, 3, 8),
        # blocks of cases within a chunk, and a chunk ending inside a block
        (3, 2, 2 * sav_writer._BLOCK_ROWS + 5),
    ],
)
def test_the_cases_are_compressed_byte_for_byte_as_pyreadstat_compresses_them(
    tmp_path, numbers, texts, rows
):
    """The cases' units fill part of a block of codes, a whole block, or several; the file's
    last case ends the data; a chunk's cases are laid out a block of cases at a time. Every
    case is compressed as pyreadstat's own writer compresses the same frame, and the two files
    are the same bytes."""
    generator = np.random.default_rng(numbers * 100 + texts * 10 + rows)
    frame = pd.DataFrame(
        {
            **{
                f"n{i}": generator.choice([*EDGE_NUMBERS, np.nan, *range(-3, 200, 7)], rows)
                for i in range(numbers)
            },
            **{f"t{i}": generator.choice(EDGE_TEXT, rows).astype(object) for i in range(texts)},
        }
    )
    frame.iloc[0, numbers:] = "12345678" * 2 * (1 + numbers % 2)  # the width, in whole units
    variables = [sav_writer.Variable(f"n{i}", sav_writer.NUMBER) for i in range(numbers)] + [
        sav_writer.Variable(f"t{i}", sav_writer.TEXT) for i in range(texts)
    ]
    widths = {f"t{i}": 16 * (1 + numbers % 2) for i in range(texts)}
    ours, theirs = tmp_path / "ours.sav", tmp_path / "theirs.sav"
    dictionary = sav_writer.Dictionary("label", {}, {}, [])
    chunks = [frame.iloc[: rows // 3], frame.iloc[rows // 3 :]]
    sav_writer.write({ours: dictionary}, variables, widths, rows, iter(chunks), STAMP)
    pyreadstat.write_sav(
        frame,
        str(theirs),
        file_label="label",
        column_labels={},
        variable_value_labels={},
        missing_ranges={},
        variable_measure={v.name: "unknown" for v in variables},
        variable_format={},
        note=[],
        row_compress=True,
    )
    sav_writer.pin_sav(theirs, STAMP)
    assert ours.read_bytes() == theirs.read_bytes()
    back, _ = pyreadstat.read_sav(str(ours))
    expected = frame.copy()
    for i in range(texts):
        expected[f"t{i}"] = expected[f"t{i}"].str.rstrip()
    pd.testing.assert_frame_equal(back, expected, check_dtype=False)
