"""The benchmark's parts: the floor computes the catalogue's indicators the plain way, and the
harness measures real processes. The ×10 end-to-end run is slow-marked: it runs with
``pytest -m slow`` and in the benchmark, not in every test run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from sdpipeline import dagster_floor
from sdpipeline.benchmark import (
    DAGSTER_ALONE,
    OUTSIDE_STEPS,
    Measurement,
    benchmark,
    layers_table,
    projected_mb,
    run_scale,
    run_timings,
    table,
    write,
)
from sdpipeline.cli import INSTANCE_CONFIG
from sdpipeline.codebook import default_codebook
from sdpipeline.floor import floor_indicators
from sdpipeline.indicators import default_catalogue

from .conftest import SHIPPED_RAW, isolate, materialize

# Instruments whose weights are all equal: there the unweighted floor and the pipeline's
# weighted national estimate are the same number.
EQUAL_WEIGHTS = ("clients", "specialists", "partners")


def test_the_floor_agrees_with_the_pipeline_where_weights_are_equal(pipeline_run):
    _, warehouse, _ = pipeline_run
    codebook, catalogue = default_codebook(), default_catalogue()
    floor = floor_indicators(SHIPPED_RAW, codebook, catalogue)
    assert len(floor) == sum(
        1
        for indicator in catalogue.indicators
        for wave in codebook.instruments[indicator.instrument].files
        if codebook.instruments[indicator.instrument].variable(indicator.variable).asked_in(wave)
    )
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        pipeline = connection.execute(
            "SELECT indicator_id, wave, estimate FROM indicators.estimates "
            "WHERE breakdown = 'national' AND list_contains(?, instrument)",
            [list(EQUAL_WEIGHTS)],
        ).fetchall()
    assert len(pipeline) > 20
    estimates = {
        (i, w): e for i, w, e in floor[["indicator", "wave", "estimate"]].itertuples(False)
    }
    for indicator, wave, estimate in pipeline:
        assert estimates[(indicator, wave)] == pytest.approx(estimate, rel=1e-9), (indicator, wave)


def _timed_from_a_fresh_interpreter(code: str, tmp_path) -> tuple[float, float, int, str]:
    """``timed`` run as ``sdpipeline benchmark`` runs it, from a small process: the kernel's
    peak of a child counts what it shared with its parent before ``exec``, and this test's own
    process has run whole pipelines by now."""
    log = str(tmp_path / "log")
    measure = (
        "import json, sys; from pathlib import Path; from sdpipeline.benchmark import timed; "
        f"print(json.dumps(timed([sys.executable, '-c', {code!r}], {{}}, Path({log!r}))))"
    )
    measured = subprocess.run(
        [sys.executable, "-c", measure], capture_output=True, text=True, check=True
    )
    return tuple(json.loads(measured.stdout))


def test_timed_reports_the_child_s_own_peak_memory(tmp_path):
    grow = "x = bytearray(300 * 2**20); print('done')"
    wall, peak, code, output = _timed_from_a_fresh_interpreter(grow, tmp_path)
    assert code == 0 and output.strip() == "done"
    assert 300 < peak < 600
    assert wall > 0


def test_timed_counts_the_processes_a_command_starts(tmp_path):
    child = "import time; x = bytearray(300 * 2**20); time.sleep(1.5)"
    parent = (
        "import subprocess, sys; x = bytearray(200 * 2**20); "
        f"subprocess.run([sys.executable, '-c', {child!r}]); print('done')"
    )
    _, peak, code, output = _timed_from_a_fresh_interpreter(parent, tmp_path)
    assert code == 0 and output.strip() == "done"
    assert 500 < peak < 800  # both at once; either alone is at most 300 MB and change


def test_results_are_written_as_json_and_csv(tmp_path):
    layers = {"raw": 4.0, "validated": 2.5, "harmonised": 3.0, OUTSIDE_STEPS: 3.0}
    results = [
        Measurement(
            1, "full run", 12.5, 800.0, 5869, validation_s=3.0, ratio_to_floor=9.0, layers_s=layers
        ),
        Measurement(1, "floor (plain DuckDB SQL)", 1.4, 200.0, 5869),
    ]
    json_path, csv_path = write(results, tmp_path)
    data = json.loads(json_path.read_text())
    assert data["machine"]["cores"] and data["results"][0]["wall_s"] == 12.5
    assert data["results"][0]["layers_s"] == layers
    assert csv_path.read_text().splitlines()[0].startswith("scale,phase,wall_s,peak_rss_mb")
    assert "layers_s" not in csv_path.read_text()
    assert (tmp_path / "benchmark_layers.csv").read_text().splitlines() == [
        "scale,phase,layer,seconds",
        "1,full run,raw,4.0",
        "1,full run,validated,2.5",
        "1,full run,harmonised,3.0",
        f"1,full run,{OUTSIDE_STEPS},3.0",
    ]
    assert "24 %" in table(results)
    header = layers_table(results).splitlines()[0]
    assert [cell.strip() for cell in header.split("|")[1:-1]] == [
        "scale",
        "phase",
        "raw",
        "validated",
        "harmonised",
        OUTSIDE_STEPS,
        "wall",
    ]


def test_a_run_s_time_is_split_by_layer_from_dagster_s_own_step_timings(tmp_path, monkeypatch):
    folder = isolate(tmp_path, monkeypatch)
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    selection = [
        dg.AssetKey(["reference", name])
        for name in ("municipalities_2017", "municipalities_2021", "municipality_crosswalk")
    ] + [dg.AssetKey(["raw", "heads_2023"]), dg.AssetKey(["validated", "heads_2023"])]
    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        assert materialize(folder / "warehouse.duckdb", selection, instance=instance).success
    wall = time.perf_counter() - started
    validation, layers = run_timings(tmp_path / "home", wall)
    assert set(layers) == {"reference", "raw", "validated", OUTSIDE_STEPS}
    assert all(seconds > 0 for seconds in layers.values())
    assert sum(layers.values()) == pytest.approx(wall, abs=0.05)
    assert 0 < validation < layers["validated"]


def test_dagster_alone_runs_the_pipeline_s_own_graph_with_steps_doing_nothing(tmp_path):
    """The same steps, assets, dependencies and checks as the pipeline, run by the pipeline's
    full_refresh into an instance configured as ``sdpipeline run``'s; nothing is read or
    written but Dagster's own records."""
    from sdpipeline.definitions import defs

    def shape(definitions: dg.Definitions) -> tuple:
        graph = definitions.resolve_asset_graph()
        steps = sorted(a.node_def.name for a in graph.assets_defs if a.is_executable)
        deps = {
            str(k): sorted(map(str, graph.get(k).parent_keys)) for k in graph.get_all_asset_keys()
        }
        job = definitions.resolve_job_def("full_refresh")
        return (
            steps,
            deps,
            sorted(map(str, graph.asset_check_keys)),
            len(job.asset_layer.executable_asset_keys),
        )

    mirrored = dagster_floor.definitions(defs)
    assert shape(mirrored) == shape(defs)
    home = tmp_path / "home"
    done = subprocess.run(
        [sys.executable, "-m", "sdpipeline.dagster_floor"],
        env={**os.environ, "DAGSTER_HOME": str(home), "SDPIPELINE_VAR_DIR": str(tmp_path / "var")},
        capture_output=True,
        text=True,
        check=False,
    )
    steps = len(shape(defs)[0])
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{steps} steps doing nothing" in done.stdout
    assert (home / "dagster.yaml").read_text() == INSTANCE_CONFIG
    graph = defs.resolve_asset_graph()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs()
        records = instance.get_records_for_run(run.run_id, limit=10_000).records
    events = [
        r.event_log_entry.dagster_event for r in records if r.event_log_entry.is_dagster_event
    ]
    assert {e.asset_key for e in events if e.is_step_materialization} == set(
        graph.materializable_asset_keys
    )
    checked = {
        e.event_specific_data.asset_check_key
        for e in events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert checked == set(graph.asset_check_keys)
    assert not (tmp_path / "var" / "warehouse.duckdb").exists()


@pytest.mark.slow
def test_the_x10_delivery_runs_end_to_end(tmp_path):
    cli = [sys.executable, "-m", "sdpipeline"]
    results = {m.phase: m for m in run_scale(10, tmp_path, cli)}
    assert all(m.ok for m in results.values()), results
    assert results["full run"].respondents > 50_000
    assert results["refresh, nothing changed"].assets_recomputed == 0
    assert 0 < results["refresh, one file changed"].assets_recomputed < 40
    for phase, _ in DAGSTER_ALONE:
        assert 0 < results[phase].wall_s < results["full run"].wall_s
    assert 0 < results["full run"].validation_s < results["full run"].wall_s
    layers = results["full run"].layers_s
    assert {"raw", "validated", "harmonised", "indicators", "report", OUTSIDE_STEPS} <= set(layers)
    assert sum(layers.values()) == pytest.approx(results["full run"].wall_s, abs=0.1)


def test_memory_is_projected_from_the_scales_measured_before(tmp_path):
    measured = [
        Measurement(100, "full run", 77.0, 2300.0, 586_814),
        Measurement(300, "full run", 203.0, 6200.0, 1_760_382),
    ]
    assert projected_mb(measured, 1000) == pytest.approx(6200 + 19.5 * 700)
    # one scale cannot separate fixed memory from what grows with the rows: no projection
    assert projected_mb(measured[:1], 1000) is None
    sample = [Measurement(1, "full run", 20.0, 580.0, 5_900)]
    assert projected_mb(sample, 100) is None
    assert projected_mb([], 1000) is None

    skipped = Measurement(1000, "full run skipped (projected peak)", None, 19850.0, 0)
    assert "full run skipped" in table([*measured, skipped])
    json_path, _ = write([*measured, skipped], tmp_path)
    assert json.loads(json_path.read_text())["results"][2]["wall_s"] is None


def test_a_delivery_that_cannot_be_generated_is_recorded_as_failed(tmp_path):
    """A scale whose files cannot be written (as ×1000 once could not) is a failed measurement,
    not a crash that loses the scales already measured."""
    failing = [sys.executable, "-c", "import sys; print('no room'); sys.exit(3)"]
    (measurement,) = run_scale(7, tmp_path, failing)
    assert (measurement.scale, measurement.phase, measurement.ok) == (7, "generate", False)


def test_a_work_folder_that_does_not_exist_yet_is_made(tmp_path):
    work = tmp_path / "scratch" / "bench"
    assert benchmark([], tmp_path / "out", work) == []
    assert work.is_dir() and (tmp_path / "out" / "benchmark.json").exists()


STAND_IN = r"""
import json, pathlib, sys
command = sys.argv[1]
if command == "generate":
    out = pathlib.Path(sys.argv[sys.argv.index("--out") + 1])
    heads = out / "ex_post_2023"
    heads.mkdir(parents=True)
    (heads / "dienestu_vaditaji_2023.csv").write_bytes("ID;SHORTAGE\r\n1;1\r\n".encode("utf-8-sig"))
    truth = {"waves": {"ex_post_2023": {"heads": {"respondents": 1}}}}
    (out / "ground_truth.json").write_text(json.dumps(truth))
elif command == "run":
    print("sdpipeline: job full_refresh FAILED: raw/heads_2023 cannot be read")
    sys.exit(1)
"""


def test_a_failed_measurement_says_why_before_its_logs_are_removed(tmp_path, capsys):
    """The scratch folder goes when the benchmark ends, and a failed phase's log with it: the
    reason is printed as the phase fails, and the phase is recorded as failed."""
    stand_in = tmp_path / "stand_in.py"
    stand_in.write_text(STAND_IN)
    results = {m.phase: m for m in run_scale(3, tmp_path, [sys.executable, str(stand_in)])}
    assert not results["full run"].ok and results["refresh, nothing changed"].ok
    said = capsys.readouterr().out
    assert "×3: full run failed (exit status 1):" in said
    assert "raw/heads_2023 cannot be read" in said


GROWING = r"""
import json, os, pathlib, sys
command, mb = sys.argv[1], 2**20
if command == "generate":
    out = pathlib.Path(sys.argv[sys.argv.index("--out") + 1])
    scale = int(sys.argv[sys.argv.index("--scale") + 1])
    heads = out / "ex_post_2023"
    heads.mkdir(parents=True)
    (heads / "dienestu_vaditaji_2023.csv").write_bytes("ID;SHORTAGE\r\n1;1\r\n".encode("utf-8-sig"))
    (out / "answers.bin").write_bytes(bytes(scale * mb))
    with open(os.environ["SCALES_ON_DISK"], "a") as seen:  # the scales' folders there now
        print(scale, *sorted(p.name for p in out.parent.parent.iterdir()), file=seen)
    truth = {"waves": {"ex_post_2023": {"heads": {"respondents": scale}}}}
    (out / "ground_truth.json").write_text(json.dumps(truth))
elif command in ("run", "refresh"):
    import dagster as dg
    raw, var = (pathlib.Path(os.environ[k]) for k in ("SDPIPELINE_RAW_DIR", "SDPIPELINE_VAR_DIR"))
    store = var / "reports" / "tables.published"
    report = store / f"report-{len(list(store.glob('report-*')))}"
    report.mkdir(parents=True)
    (report / "tables.bin").write_bytes(bytes((raw / "answers.bin").stat().st_size // 2))
    link = var / "reports" / "tables"
    link.unlink(missing_ok=True)
    link.symlink_to(report, target_is_directory=True)
    if command == "run":
        pathlib.Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
        dg.materialize([dg.asset(lambda: 1, name="report")], instance=dg.DagsterInstance.get())
    else:
        print("nothing changed since the last run")
"""


def test_a_scale_the_disk_cannot_hold_is_skipped_before_it_starts(tmp_path, capsys, monkeypatch):
    """A scale's disk (the delivery, the warehouse, the published report, the previous one and
    the one being written) is projected from two scales measured before it; a scale that
    would not fit is skipped and says so, instead of failing halfway through a publication.
    Each scale's folder is removed once measured, so the next one has its room."""
    stand_in = tmp_path / "growing.py"
    stand_in.write_text(GROWING)
    cli, work = [sys.executable, str(stand_in)], tmp_path / "work"
    monkeypatch.setenv("SCALES_ON_DISK", str(tmp_path / "on_disk.txt"))
    free_mb = shutil.disk_usage(tmp_path).free / 2**20
    # room for about 12 MB: ×1 and ×2 are run (no projection from fewer than two scales),
    # ×4 would need about 19 MB
    results = benchmark(
        [1, 2, 4], tmp_path, work, disk_share=12 / free_mb, cli=cli, alone_command=[*cli, "x"]
    )
    runs = [m for m in results if m.phase == "full run"]
    assert [m.ok for m in runs] == [True, True]
    # ×1: 1 MB delivered, six reports of 0.5 MB (two runs, four refreshes) and the run
    # history at rest; at its fullest one report more. ×2 holds twice the files.
    assert 1 + 7 * 0.5 < runs[0].disk_mb < 1 + 7 * 0.5 + 1.5
    assert runs[1].disk_mb - runs[0].disk_mb == pytest.approx(1 + 7 * 0.5, abs=0.2)
    (skipped,) = [m for m in results if m.scale == 4]
    assert skipped.phase == "full run skipped (projected disk)" and skipped.wall_s is None
    assert skipped.disk_mb == pytest.approx(projected_mb(results, 4, "disk_mb"))
    assert skipped.disk_mb == pytest.approx(runs[1].disk_mb + 2 * (1 + 7 * 0.5), abs=0.5)
    said = capsys.readouterr().out
    assert "×4: skipped, it would need about 0.0 GB of disk and" in said
    assert "full run skipped (projected disk)" in table(results)
    assert (tmp_path / "on_disk.txt").read_text() == "1 x1\n2 x2\n"  # ×1 went once measured
    assert list(work.iterdir()) == []


def test_relative_work_and_out_folders_are_taken_as_given_from_the_current_one(
    tmp_path, monkeypatch
):
    """``--work ../scratch --out bench``: the runs are commands with their own DAGSTER_HOME,
    which Dagster takes only as an absolute path (a relative one crashed the benchmark after
    its first full run, losing what it had measured)."""
    stand_in = tmp_path / "growing.py"
    stand_in.write_text(GROWING)
    cli = [sys.executable, str(stand_in)]
    monkeypatch.setenv("SCALES_ON_DISK", str(tmp_path / "on_disk.txt"))
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    results = benchmark([1], Path("bench"), Path("../scratch"), cli=cli, alone_command=[*cli, "x"])
    assert [m.ok for m in results if m.phase == "full run"] == [True]
    assert (tmp_path / "here" / "bench" / "benchmark.json").exists()
    assert (tmp_path / "scratch").is_dir() and list((tmp_path / "scratch").iterdir()) == []
