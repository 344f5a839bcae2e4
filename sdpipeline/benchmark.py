"""Measure what a run costs as the delivery grows: the sample ×1 up to ×1000 (a national
register's size). Every measurement is a fresh ``sdpipeline`` process, timed on the wall clock,
its peak memory the kernel's own count (``wait4``'s maximum resident set) or, when larger, the
sampled sum over the process and its Great Expectations worker, so the figures are what an
engineer running the command sees.

For each scale: generate the delivery; a full run into an empty warehouse; three refreshes
with nothing changed, one after another; a refresh after one file changed; the floor
(``sdpipeline floor``: the indicators as one plain DuckDB SQL pass over the files); and Dagster
alone (``dagster_floor``: the same graph with every step doing nothing), twice, as the full and
the warm run find their instance.
Validation's share of a full run comes from the seconds its checks record, and where the rest
of its time goes (per layer, and outside the steps) from Dagster's own step timings.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

# The heads' 2023 file is small and CSV: changing one answer in it is a realistic correction
# that invalidates one raw table and what depends on it.
CHANGED_FILE = ("ex_post_2023", "dienestu_vaditaji_2023.csv")
BENCHMARK_KEY = "benchmark-only-pseudonym-key"
UNCHANGED_REPEATS = 3
DAGSTER_ALONE = (
    ("Dagster alone (steps doing nothing)", "dagster_alone.log"),
    ("Dagster alone, again (warm)", "dagster_alone_again.log"),
)


@dataclass
class Measurement:
    scale: int
    phase: str
    wall_s: float | None
    peak_rss_mb: float
    respondents: int
    assets_recomputed: int | None = None
    validation_s: float | None = None
    ratio_to_floor: float | None = None
    ok: bool = True
    layers_s: dict[str, float] | None = None
    disk_mb: float | None = None


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    cpu = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = re.findall(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        cpu = names[0] if names else ""
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gb": round(memory_gb, 1),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and every process it started, now, in MB (0 where the system
    has no ``/proc``)."""
    total_kb, pending = 0, [pid]
    while pending:
        current = Path("/proc") / str(pending.pop())
        try:
            status = (current / "status").read_text()
            for task in (current / "task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except OSError:  # ended while being read
            continue
        found = re.search(r"VmRSS:\s+(\d+) kB", status)
        total_kb += int(found.group(1)) if found else 0
    return total_kb / 1024


class _TreePeak(threading.Thread):
    """Samples a process tree's resident memory ten times a second, keeping the largest sum."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_mb = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            self.peak_mb = max(self.peak_mb, tree_rss_mb(self.pid))


def timed(command: list[str], env: dict[str, str], log: Path) -> tuple[float, float, int, str]:
    """Run ``command``; (wall seconds, peak RSS in MB, exit code, output). The peak is the
    larger of the kernel's own count for the process and the sampled sum over the process and
    the processes it started (a run's Great Expectations worker)."""
    with log.open("w") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        sampler = _TreePeak(process.pid)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        sampler.done.set()
        sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    peak = max(usage.ru_maxrss / 1024, sampler.peak_mb)
    return wall, peak, process.returncode, log.read_text()


def _recomputed(output: str) -> int | None:
    if "nothing changed since the last run" in output:
        return 0
    found = re.search(r"rebuilding (\d+) assets", output)
    return int(found.group(1)) if found else None


OUTSIDE_STEPS = "outside steps"


@functools.cache
def _layer_of_step() -> dict[str, str]:
    """Step key → the layer (asset group) of the asset it materialises."""
    from sdpipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    return {
        key.to_python_identifier(): graph.get(key).group_name or "default"
        for key in graph.materializable_asset_keys
    }


def run_timings(dagster_home: Path, wall_s: float) -> tuple[float, dict[str, float]]:
    """Of the latest run: the seconds pandera and Great Expectations recorded (checks run
    inside the steps that build their tables, so step times cannot tell), and the seconds its
    steps took per layer, with what the command's ``wall_s`` spent outside any step (start-up,
    loading the code location, Dagster's run bookkeeping, the closing summary)."""
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs(limit=1)
        records = instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, limit=10_000
        ).records
        steps = instance.get_run_step_stats(run.run_id)
    evaluations = [r.event_log_entry.dagster_event.event_specific_data for r in records]
    validation = sum(
        float(e.metadata["seconds"].value) for e in evaluations if "seconds" in e.metadata
    )
    layers: dict[str, float] = {}
    for step in steps:
        if step.start_time is None or step.end_time is None:
            continue
        layer = _layer_of_step().get(step.step_key, "default")
        layers[layer] = layers.get(layer, 0.0) + step.end_time - step.start_time
    layers[OUTSIDE_STEPS] = max(0.0, wall_s - sum(layers.values()))
    return validation, {layer: round(seconds, 2) for layer, seconds in layers.items()}


def change_one_answer(path: Path, column: str, codes: tuple[str, str]) -> None:
    """Switch the first respondent's answer in ``column`` of a delivered CSV between two codes
    (a contractor's correction), keeping the file's encoding and line ends."""
    lines = path.read_bytes().decode("utf-8-sig").splitlines()
    header = lines[0].split(";")
    cells = lines[1].split(";")
    index = header.index(column)
    cells[index] = codes[0] if cells[index] != codes[0] else codes[1]
    lines[1] = ";".join(cells)
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-8-sig"))


def _say_if_failed(scale: int, phase: str, code: int, output: str) -> None:
    """A failed measurement's reason, printed at once: the scratch folder, with every log,
    is removed when the benchmark ends."""
    if code != 0:
        print(f"×{scale}: {phase} failed (exit status {code}):\n{output[-3000:]}", flush=True)


DAGSTER_ALONE_COMMAND = [sys.executable, "-m", "sdpipeline.dagster_floor"]


def run_scale(
    scale: int, work: Path, cli: list[str], alone_command: list[str] = DAGSTER_ALONE_COMMAND
) -> list[Measurement]:
    folder = work / f"x{scale}"
    raw, var = folder / "raw", folder / "var"
    env = {
        **os.environ,
        "SDPIPELINE_RAW_DIR": str(raw),
        "SDPIPELINE_VAR_DIR": str(var),
        "DAGSTER_HOME": str(var / "dagster_home"),
        "SDPIPELINE_PSEUDONYM_KEY": BENCHMARK_KEY,
    }
    env.pop("SDPIPELINE_WAREHOUSE", None)
    folder.mkdir(parents=True, exist_ok=True)
    results: list[Measurement] = []
    wall, peak, code, output = timed(
        [*cli, "generate", "--scale", str(scale), "--out", str(raw)], env, folder / "generate.log"
    )
    if code != 0:  # nothing to measure: say why, and go on with the other scales
        print(f"×{scale}: generating the delivery failed:\n{output[-2000:]}", flush=True)
        return [Measurement(scale, "generate", wall, peak, 0, ok=False)]
    truth = json.loads((raw / "ground_truth.json").read_text())
    respondents = sum(i["respondents"] for w in truth["waves"].values() for i in w.values())
    results.append(Measurement(scale, "generate", wall, peak, respondents))

    def measure(phase: str, command: str, log: str) -> Measurement:
        wall, peak, code, out = timed([*cli, command], env, folder / log)
        measurement = Measurement(scale, phase, wall, peak, respondents, ok=code == 0)
        _say_if_failed(scale, phase, code, out)
        if command == "refresh":
            measurement.assets_recomputed = _recomputed(out)
        if command == "run" and code == 0:
            measurement.validation_s, measurement.layers_s = run_timings(var / "dagster_home", wall)
        results.append(measurement)
        return measurement

    # The first full run also creates the GX project's suites; the second is the steady state
    # of an engineer re-running a delivery on an existing installation.
    pipeline = [
        measure("full run", "run", "full.log"),
        measure("full run again (warm)", "run", "full_again.log"),
    ]
    # A nothing-changed refresh takes seconds, where the machine's other work shows: measured
    # UNCHANGED_REPEATS times in a row so that its spread is seen, not one lucky draw.
    pipeline += [
        measure(
            "refresh, nothing changed" + (f" ({n + 1} of {UNCHANGED_REPEATS})" if n else ""),
            "refresh",
            f"unchanged_{n + 1}.log",
        )
        for n in range(UNCHANGED_REPEATS)
    ]
    change_one_answer(raw.joinpath(*CHANGED_FILE), "SHORTAGE", ("1", "2"))
    pipeline.append(measure("refresh, one file changed", "refresh", "one_changed.log"))
    floor = measure("floor (plain DuckDB SQL)", "floor", "floor.log")
    # Dagster's own share: the same graph, each step doing nothing, into a fresh instance and
    # then again into the one it made, as the full run and the warm run find theirs
    alone = {**env, "DAGSTER_HOME": str(folder / "dagster_alone")}
    for phase, log in DAGSTER_ALONE:
        wall, peak, code, out = timed(alone_command, alone, folder / log)
        results.append(Measurement(scale, phase, wall, peak, respondents, ok=code == 0))
        _say_if_failed(scale, phase, code, out)
    for measurement in pipeline:
        measurement.ratio_to_floor = measurement.wall_s / floor.wall_s
    pipeline[0].disk_mb = disk_needed_mb(folder)
    return results


def folder_mb(folder: Path) -> float:
    """The size of the files under ``folder`` in MB, links not followed (the published
    report is a link to a folder that is counted where it is)."""
    total = 0
    for root, _, files in os.walk(folder):
        total += sum(os.lstat(Path(root) / name).st_size for name in files)
    return total / 2**20


def disk_needed_mb(folder: Path) -> float:
    """What a scale's folder held at its fullest: as the last refresh left it (the delivery,
    the warehouse, the published report and the previous one, kept for its readers) and one
    report more, which that refresh held while it wrote the new one beside them."""
    from sdpipeline.report_export import publications_dir

    store = publications_dir(folder / "var" / "reports" / "tables")
    reports = [folder_mb(p) for p in store.iterdir() if p.is_dir()] if store.is_dir() else []
    return folder_mb(folder) + max(reports, default=0.0)


def write(results: list[Measurement], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    rows = [asdict(m) for m in results]
    json_path, csv_path = out / "benchmark.json", out / "benchmark.csv"
    json_path.write_text(json.dumps({"machine": machine(), "results": rows}, indent=2) + "\n")
    flat = [f.name for f in fields(Measurement) if f.name != "layers_s"]
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=flat, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    with (out / "benchmark_layers.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["scale", "phase", "layer", "seconds"])
        for m in results:
            for layer, seconds in (m.layers_s or {}).items():
                writer.writerow([m.scale, m.phase, layer, seconds])
    return json_path, csv_path


def table(results: list[Measurement]) -> str:
    from tabulate import tabulate

    def number(value: float | None, digits: int = 1) -> str:
        return "" if value is None else f"{value:,.{digits}f}"

    return tabulate(
        [
            [
                f"×{m.scale}",
                f"{m.respondents:,}",
                m.phase + ("" if m.ok else " (FAILED)"),
                number(m.wall_s),
                number(m.peak_rss_mb, 0),
                "" if m.assets_recomputed is None else m.assets_recomputed,
                ""
                if m.validation_s is None or not m.wall_s
                else f"{100 * m.validation_s / m.wall_s:.0f} %",
                number(m.ratio_to_floor),
                "" if m.disk_mb is None else number(m.disk_mb / 1024),
            ]
            for m in results
        ],
        headers=[
            "scale",
            "respondents",
            "phase",
            "wall s",
            "peak MB",
            "assets rebuilt",
            "validation",
            "× floor",
            "disk GB",
        ],
        tablefmt="github",
    )


LAYER_ORDER = ("reference", "raw", "validated", "harmonised", "audit", "indicators", "report")


def layers_table(results: list[Measurement]) -> str:
    """Where each full run's time went: seconds per layer and outside the steps."""
    from tabulate import tabulate

    runs = [m for m in results if m.layers_s]
    if not runs:
        return ""
    seen = {layer for m in runs for layer in m.layers_s}
    layers = [layer for layer in LAYER_ORDER if layer in seen]
    layers += [*sorted(seen - {*layers, OUTSIDE_STEPS}), OUTSIDE_STEPS]
    return tabulate(
        [
            [
                f"×{m.scale}",
                m.phase,
                *(f"{m.layers_s.get(layer, 0.0):.1f}" for layer in layers),
                f"{m.wall_s:.1f}",
            ]
            for m in runs
        ],
        headers=["scale", "phase", *layers, "wall"],
        tablefmt="github",
    )


def projected_mb(results: list[Measurement], scale: int, what: str = "peak_rss_mb") -> float | None:
    """The full run's peak memory (or, ``what="disk_mb"``, the scale's disk) at ``scale``,
    extrapolated linearly from the two largest scales measured so far; ``None`` (no
    projection, the scale is run) with fewer than two. One scale cannot tell a run's fixed
    memory (the interpreter, Dagster, DuckDB) from what grows with the rows: from the sample
    alone, proportion projected 58 GB for ×100."""
    runs = sorted(
        (m.scale, getattr(m, what))
        for m in results
        if m.phase == "full run" and m.ok and getattr(m, what) is not None
    )
    if len(runs) < 2:
        return None
    (s1, p1), (s2, p2) = runs[-2], runs[-1]
    return p2 + (p2 - p1) / (s2 - s1) * (scale - s2)


def benchmark(
    scales: list[int],
    out: Path,
    work: Path | None = None,
    memory_share: float = 0.8,
    disk_share: float = 0.9,
    cli: list[str] | None = None,
    alone_command: list[str] = DAGSTER_ALONE_COMMAND,
) -> list[Measurement]:
    """Run the scales in order, each scale's folder removed once it is measured. A scale whose
    full run would need more than ``memory_share`` of the machine's memory, or more than
    ``disk_share`` of the disk free under the work folder, extrapolated from two scales
    measured before it, is skipped and recorded as skipped: swapping would measure the disk,
    the kernel may kill more than the run, and a full disk fails the run halfway (as a ×1000
    publication once did, beside two other installations of the same size)."""
    cli = cli or [sys.executable, "-m", "sdpipeline"]
    limit_mb = machine()["memory_gb"] * 1024 * memory_share
    results: list[Measurement] = []
    # the runs are commands with their own working folder and a DAGSTER_HOME, which Dagster
    # takes only as an absolute path: a relative folder is made absolute here, once
    out = Path(out).resolve()
    if work is not None:
        work = Path(work).resolve()
        work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sdpipeline-bench-", dir=work) as scratch:
        for scale in sorted(scales):
            free_mb = shutil.disk_usage(scratch).free / 2**20
            disk = projected_mb(results, scale, "disk_mb")
            if disk is not None and disk > free_mb * disk_share:
                skipped = Measurement(scale, "full run skipped (projected disk)", None, 0, 0)
                skipped.disk_mb = disk
                results.append(skipped)
                print(
                    f"×{scale}: skipped, it would need about {disk / 1024:.1f} GB of disk and "
                    f"{free_mb / 1024:.1f} GB is free in {scratch}",
                    flush=True,
                )
                continue
            projected = projected_mb(results, scale)
            if projected is not None and projected > limit_mb:
                skipped = Measurement(
                    scale, "full run skipped (projected peak)", None, projected, 0
                )
                results.append(skipped)
                print(
                    f"×{scale}: skipped, the full run would need about {projected / 1024:.0f} GB "
                    f"(more than {memory_share:.0%} of this machine's memory)",
                    flush=True,
                )
                continue
            results += run_scale(scale, Path(scratch), cli, alone_command)
            shutil.rmtree(Path(scratch) / f"x{scale}")
            write(results, out)
            measured = [m for m in results if m.scale == scale]
            print(f"{table(measured)}\n\n{layers_table(measured)}", flush=True)
    write(results, out)
    return results
