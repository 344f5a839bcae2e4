"""The ``sdpipeline`` command: what Dagster's own CLI does not do for this project."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

from sdpipeline import compare_warehouses, settings

INSTANCE_CONFIG = """\
# Local default storage (SQLite under this folder); the event log is Dagster's SQLite event log
# reached through one pooled engine per database (sdpipeline/run_history.py), same files.
event_log_storage:
  module: sdpipeline.run_history
  class: PooledSqliteEventLogStorage
telemetry:
  enabled: false
# Fails a run launched from the UI or by automation that never started; a run whose process
# was killed is marked failed by its code server, or by sdpipeline's next command.
run_monitoring:
  enabled: true
  start_timeout_seconds: 300
"""


def _use_project_instance() -> Path:
    """Point Dagster at the project's instance folder unless DAGSTER_HOME says otherwise, so
    that command-line runs and the UI share one run history."""
    home = settings.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_CONFIG)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _open_instance(home: Path):
    """Dagster creates its SQLite tables when an instance is first opened; two runs started
    together on a fresh installation (two timers, a timer and a person) would race to create
    them and one would fail, so opening is serialised by a lock file in the instance folder."""
    import fcntl

    import dagster as dg

    with (home / ".open.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return dg.DagsterInstance.get()


def cmd_generate(args: argparse.Namespace) -> int:
    from sdpipeline.generator import GROUND_TRUTH_FILE, generate_delivery

    out = Path(args.out).resolve() if args.out else settings.raw_dir()
    started = time.perf_counter()
    truth = generate_delivery(out, scale=args.scale, seed=args.seed)
    elapsed = time.perf_counter() - started
    for wave, instruments in truth["waves"].items():
        for name, facts in instruments.items():
            print(f"{wave}/{facts['file']}: {facts['respondents']} respondents ({name})")
    print(f"true population values: {out / GROUND_TRUTH_FILE}")
    print(f"generated in {elapsed:.1f} s (seed {truth['seed']}, scale ×{args.scale})")
    return 0


def _start(home: Path, out=None):
    """The project's instance, after marking failed the runs whose process is gone (said on
    ``out``, standard output by default)."""
    from sdpipeline.defs.runs import mark_killed_runs

    instance = _open_instance(home)
    for run in mark_killed_runs(instance):
        print(
            f"sdpipeline: run {run.run_id} ({run.job_name}) was left unfinished by a process "
            "that is gone (killed, or the machine stopped): marked failed.",
            file=out or sys.stdout,
        )
    return instance


def _strays(codebook) -> list:
    from sdpipeline.inventory import stray_files

    found = [s for wave in codebook.waves for s in stray_files(codebook, wave)]
    once: dict = {}  # a folder no wave names is found from every wave
    for stray in found:
        once.setdefault(stray.path, stray)
    return list(once.values())


def _print_strays(strays: list) -> None:
    # checksums of the known files cannot see these: say so instead of "unchanged"
    print("sdpipeline: the delivery holds files the codebook does not name:")
    for stray in strays:
        print(f"  {stray.path}: {stray.reason}")


def _refresh_plan(instance, defs, codebook) -> tuple[list, str]:
    """What is behind (after recording changed files), and why, in words."""
    from sdpipeline.defs.incremental import behind, resolve
    from sdpipeline.defs.observation import record_changes

    files = record_changes(instance, codebook)
    graph = defs.resolve_asset_graph()
    states = resolve(instance, graph, files, with_failures=False)
    selection = behind(states, graph)
    chosen = set(selection)
    # the files too: a delivered file that is not there is why what reads it is behind
    reasons = [
        f"{key.to_user_string()}: {'; '.join(state.reasons())}"
        for key, state in states.items()
        if state.own_behind and (key in chosen or not graph.get(key).is_materializable)
    ]
    return selection, "\n".join(reasons)


def _damaged_warehouse(command: str) -> bool:
    """A warehouse file DuckDB cannot open: said on one line before anything runs (a run on it
    failed after minutes of retries, with a traceback)."""
    from sdpipeline.defs.outputs import warehouse_problem

    problem = warehouse_problem(settings.warehouse_path())
    if problem:
        print(f"sdpipeline {command}: {problem}", file=sys.stderr)
    return problem is not None


def _refuse_while_running(instance) -> bool:
    """A run still going (another refresh, the automation's): until it ends, what is behind is
    not known. Its tables are written and their checks not yet run, so a plan made now would
    call them current ("nothing changed") or build them a second time. Runs of processes that
    were killed are marked failed when the instance opens (``_start``), so these are alive."""
    import dagster as dg

    from sdpipeline.defs.runs import UNFINISHED

    running = instance.get_run_records(dg.RunsFilter(statuses=UNFINISHED))
    for record in running:
        run = record.dagster_run
        print(
            f"sdpipeline refresh: run {run.run_id} ({run.job_name}) is "
            f"{run.status.value.lower()}; what is behind is known only when it ends: refresh "
            "again then (sdpipeline status shows the runs going)"
        )
    return bool(running)


def _print_left_behind(job: str, behind: list, reasons: str, shown: int = 5) -> None:
    """After a job that left out part of the delivery: what is still behind the files on disk,
    the first reasons, and what to run."""
    lines = reasons.splitlines()
    print(
        f"sdpipeline: note: {len(behind)} assets are behind the delivery on disk and job {job} "
        "did not rebuild them; its tables come from the data as last taken in:"
    )
    for line in lines[:shown]:
        print(f"  {line}")
    if len(lines) > shown:
        print(f"  … and {len(lines) - shown} more (sdpipeline status says why)")
    print("  sdpipeline refresh rebuilds what is behind.")


def _delivery_notes(result) -> list[str]:
    """What the raw steps saw in the delivery that a person should know: rows hidden in an
    Excel file (read like every other row, though often hidden to leave cases out)."""
    notes = []
    for event in result.all_events:
        if event.event_type_value != "ASSET_MATERIALIZATION":
            continue
        materialization = event.event_specific_data.materialization
        hidden = materialization.metadata.get("hidden_rows")
        if hidden is not None and hidden.value:
            rows = list(hidden.value)
            shown = ", ".join(map(str, rows[:20])) + (" …" if len(rows) > 20 else "")
            name = materialization.metadata["delivered_file"].value.rsplit("/", 1)[-1]
            notes.append(
                f"  {name}: {len(rows)} rows hidden in Excel (rows {shown}) were read like "
                "every other row"
            )
    return notes


def cmd_run(args: argparse.Namespace) -> int:
    home = _use_project_instance()
    from sdpipeline.validation import gx_worker

    if args.command != "refresh":
        gx_worker.worker()  # imports GX on the other core while Dagster loads
    from sdpipeline.codebook import default_codebook
    from sdpipeline.definitions import defs
    from sdpipeline.defs.resources import warehouse_resource
    from sdpipeline.defs.runs import (
        REASON_TAG,
        TRIGGER_TAG,
        process_tags,
        run_failure_messages,
        run_warnings,
    )
    from sdpipeline.run_history import held_open

    started = time.perf_counter()
    codebook = default_codebook()
    if _damaged_warehouse(args.command):
        return 2
    with held_open(home), _start(home) as instance:
        job = defs.resolve_job_def(args.job)
        selection = None
        tags = {TRIGGER_TAG: "sdpipeline run", REASON_TAG: f"sdpipeline run --job {args.job}"}
        if args.command == "refresh":
            strays = _strays(codebook)
            if strays:
                _print_strays(strays)
                return 1
            if _refuse_while_running(instance):
                return 1
            selection, reasons = _refresh_plan(instance, defs, codebook)
            if not selection:
                print("sdpipeline: nothing changed since the last run; every asset is current.")
                return 0
            # only now: a refresh that finds nothing to do should not pay for importing GX
            gx_worker.worker()
            print(reasons)
            print(f"sdpipeline: rebuilding {len(selection)} assets")
            job = defs.resolve_implicit_global_asset_job_def()
            tags = {TRIGGER_TAG: "sdpipeline refresh", REASON_TAG: reasons[:2000]}
        # failures and warnings are printed from the run's log once it ends, without traces
        level = "DEBUG" if args.verbose else "CRITICAL"
        run_config: dict = {"loggers": {"console": {"config": {"log_level": level}}}}
        if args.max_quarantine_share is not None:
            graph = defs.resolve_asset_graph()
            run_config["ops"] = {
                key.to_python_identifier(): {
                    "config": {"max_quarantine_share": args.max_quarantine_share}
                }
                for key in selection or job.asset_layer.executable_asset_keys
                if graph.get(key).group_name == "validated"
            }
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config=run_config,
            asset_selection=selection,
            tags={**tags, **process_tags()},
        )
        # a job that does not read the whole delivery says what it left behind the files on
        # disk: its success is the job's, not the delivery's
        left_behind: tuple[list, str] = ([], "")
        if result.success and args.command != "refresh" and args.job != "full_refresh":
            left_behind = _refresh_plan(instance, defs, codebook)
        warnings = run_warnings(instance, result.run_id)
        failures = (
            []
            if result.success
            else run_failure_messages(instance, result.run_id, defs.resolve_asset_graph())
        )
    elapsed = time.perf_counter() - started
    warehouse = settings.warehouse_path()
    name = "refresh" if args.command == "refresh" else f"job {args.job}"
    if warnings and not args.verbose:
        print("Warnings:")
        for warning in warnings:
            print(f"  {warning}")
    notes = _delivery_notes(result)
    if notes:
        print("sdpipeline: the delivery has rows hidden in Excel:")
        print("\n".join(notes))
    if not result.success:
        print(f"sdpipeline: {name} FAILED after {elapsed:.1f} s (run {result.run_id})")
        for message in failures:
            print(f"  {message}")
        print("Nothing downstream of a failed step was replaced; earlier tables are intact.")
        print("The full errors, with their traces, are in the run's log (sdpipeline ui, Runs).")
        _report_validation(warehouse, result.run_id)
        return 1
    print(f"sdpipeline: {name} succeeded in {elapsed:.1f} s (run {result.run_id})")
    if left_behind[0]:
        _print_left_behind(args.job, *left_behind)
    print(f"\nWarehouse (DuckDB): {warehouse}")
    with warehouse_resource().get_connection() as connection:
        rows = connection.execute(
            "SELECT schema_name, table_name, estimated_size FROM duckdb_tables() "
            "WHERE table_name NOT LIKE '%_value_labels' AND schema_name <> 'raw_archive' "
            "ORDER BY 1, 2"
        ).fetchall()
    for schema, table, count in rows:
        print(f"  {schema + '.' + table:<40} {count:>8} rows")
    _report_validation(warehouse, result.run_id)
    print(f"\nDagster instance (run history): {home}")
    print("Open the UI:     .venv/bin/sdpipeline ui    then http://127.0.0.1:3000")
    print(
        'Query the data:  .venv/bin/python -c "import duckdb; print(duckdb.connect('
        f"'{warehouse}', read_only=True).sql('FROM raw.residents_2023 LIMIT 5'))\""
    )
    return 0


def _report_validation(warehouse: Path, run_id: str) -> None:
    """What this run's checks found, and where an auditor looks; nothing when the run stopped
    before any check ran."""
    from sdpipeline.defs.resources import warehouse_resource
    from sdpipeline.validation import audit, gx_runner

    if not warehouse.exists():
        return
    # through the run's own resource: DuckDB refuses a second configuration for one file, and
    # a failed step's connection can outlive it in this process (held by its traceback)
    with warehouse_resource().get_connection() as connection:
        known = connection.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
            [audit.SCHEMA, audit.CHECK_RUNS],
        ).fetchone()[0]
        if not known:
            return
        checks, failed, tolerated = connection.execute(
            f"SELECT count(*), count(*) FILTER (outcome = '{audit.FAILED}'), "
            f"count(*) FILTER (outcome = '{audit.TOLERATED}') "
            f"FROM {audit.SCHEMA}.{audit.CHECK_RESULTS} WHERE run_id = ?",
            [run_id],
        ).fetchone()
        quarantined = connection.execute(
            f"SELECT count(*) FROM {audit.SCHEMA}.{audit.QUARANTINE} WHERE run_id = ?", [run_id]
        ).fetchone()[0]
    if not checks:
        return
    print(
        f"\nValidation: {checks} checks this run, {failed} failed, {quarantined} rows quarantined, "
        f"{tolerated} tolerated (within what the check allows; audit.check_runs, "
        "audit.quarantine)"
    )
    index = gx_runner.data_docs_dir() / "index.html"
    if index.exists():
        print(f"Data Docs (offline): {index}")


def cmd_status(args: argparse.Namespace) -> int:
    """Per layer, what is current with the delivery on disk, what is behind and why, and what
    last failed: Dagster's own staleness, as the UI shows it, after checksumming the files."""
    home = _use_project_instance()
    import dagster as dg

    from sdpipeline.codebook import default_codebook
    from sdpipeline.definitions import defs
    from sdpipeline.defs.incremental import layers, resolve
    from sdpipeline.defs.observation import record_changes
    from sdpipeline.defs.runs import UNFINISHED

    codebook = default_codebook()
    graph = defs.resolve_asset_graph()
    if _damaged_warehouse(args.command):
        return 2
    with _start(home, sys.stderr if args.json else sys.stdout) as instance:
        states = resolve(instance, graph, record_changes(instance, codebook))
        running = instance.get_run_records(dg.RunsFilter(statuses=UNFINISHED))
    strays = _strays(codebook)
    behind = [s for s in states.values() if s.behind]
    doc = _stale_codebook_doc(codebook)
    if args.json:
        print(
            json.dumps(
                {
                    "current": not behind and not strays,
                    "codebook_doc_out_of_date": doc is not None,
                    "stray_files": [f"{s.path}: {s.reason}" for s in strays],
                    "unfinished_runs": [r.dagster_run.run_id for r in running],
                    "assets": [s.as_json() for s in states.values()],
                },
                indent=1,
            )
        )
        return 0 if not behind and not strays else 1
    by_layer: dict[str, list] = {}
    for state in states.values():
        by_layer.setdefault(state.layer, []).append(state)
    for layer in [*layers(), *sorted(set(by_layer) - set(layers()))]:
        members = by_layer.get(layer, [])
        if not members:
            continue
        late = [s for s in members if s.behind]
        print(f"{layer}: {len(members) - len(late)} of {len(members)} current")
        for state in late if not args.all else members:
            why = "; ".join(state.reasons()) or "current"
            print(f"  {state.key.to_user_string():<40} {state.status:<8} {why}")
            if state.last_failure:
                print(f"  {'':<40} {'':<8} last attempt failed: {state.last_failure}")
    if strays:
        _print_strays(strays)
    if doc:
        print(doc)
    for record in running:
        run = record.dagster_run
        print(f"run {run.run_id} ({run.job_name}) is {run.status.value.lower()}")
    if strays:
        print(
            "sdpipeline: `sdpipeline refresh` refuses this delivery until the files above are "
            "moved out of it or named in the codebook"
            + (f"; then it rebuilds the {len(behind)} assets behind it." if behind else ".")
        )
        return 1
    if behind:
        print(
            f"sdpipeline: {len(behind)} assets are behind the delivery on disk; "
            "`sdpipeline refresh` rebuilds them."
        )
        return 1
    print("sdpipeline: every asset is current with the delivery on disk.")
    return 0


def _stale_codebook_doc(codebook) -> str | None:
    """The codebook's document (``docs/codebook.md`` beside ``data/``, as in the repository)
    when it no longer describes the codebook: `sdpipeline docs` makes it, not a run, so a run
    leaves it as it was (the published datasets' own codebooks are made by the run)."""
    from sdpipeline import docs, settings

    path = settings.codebook_dir().parent.parent / "docs" / "codebook.md"  # as in the repository
    if not path.is_file() or path.read_text(encoding="utf-8") == docs.render(codebook):
        return None
    return f"note: {path} no longer describes the codebook; `sdpipeline docs` rewrites it"


def cmd_floor(args: argparse.Namespace) -> int:
    from sdpipeline.codebook import default_codebook
    from sdpipeline.floor import FloorError, floor_indicators
    from sdpipeline.indicators import default_catalogue

    started = time.perf_counter()
    try:
        table = floor_indicators(settings.raw_dir(), default_codebook(), default_catalogue())
    except FloorError as error:
        print(f"sdpipeline floor: {error}", file=sys.stderr)
        return 1
    print(table.to_string(index=False))
    print(f"floor: {len(table)} indicator values in {time.perf_counter() - started:.1f} s")
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    from sdpipeline.benchmark import benchmark, layers_table, table

    out = Path(args.out) if args.out else settings.var_dir() / "benchmark"
    results = benchmark(args.scales, out, Path(args.work) if args.work else None)
    print(f"\n{table(results)}\n\nSeconds per layer of each full run:\n{layers_table(results)}")
    print(f"\nwrote benchmark.json, benchmark.csv and benchmark_layers.csv in {out}")
    return 0 if all(m.ok for m in results) else 1


def cmd_coverage(args: argparse.Namespace) -> int:
    import pandas as pd

    from sdpipeline import coverage
    from sdpipeline.indicators import default_catalogue

    started = time.perf_counter()
    frames = []
    for index, cells in enumerate(
        coverage.study(args.replicates, args.first_seed, args.scale, args.jobs), start=1
    ):
        frames.append(cells)
        if index % 10 == 0 or index == args.replicates:
            print(f"{index}/{args.replicates} replicates ({time.perf_counter() - started:.0f} s)")
    cells = pd.concat(frames, ignore_index=True)
    catalogue = default_catalogue()
    facts = {
        "replicates": args.replicates,
        "seeds": f"{args.first_seed}–{args.first_seed + args.replicates - 1}",
        "scale": f"×{args.scale}",
        "minutes": f"{(time.perf_counter() - started) / 60:.1f} on {args.jobs} process(es)",
    }
    paths = coverage.write(cells, catalogue, Path(args.out), facts)
    summary = coverage.summary(cells, catalogue.suppress_below)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0 if summary["within_target"].all() else 1


def cmd_ui(args: argparse.Namespace) -> int:
    home = _use_project_instance()
    _start(home).dispose()
    dagster = Path(sys.executable).with_name("dagster")
    command = [
        str(dagster),
        "dev",
        "-w",
        str(settings.REPO_ROOT / "workspace.yaml"),
        "-h",
        args.host,
        "-p",
        str(args.port),
    ]
    return subprocess.call(command, cwd=settings.REPO_ROOT)


def cmd_reference(args: argparse.Namespace) -> int:
    from sdpipeline import population

    for path in population.write():
        print(f"wrote {path}")
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    from sdpipeline import docs, reference
    from sdpipeline.codebook import default_codebook
    from sdpipeline.indicators import load_catalogue

    codebook = default_codebook()
    reference.check_waves(codebook)
    load_catalogue(codebook)  # a catalogue that contradicts the codebook is refused here too
    path = Path(args.out).resolve() if args.out else docs.DOC_PATH
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != docs.render(codebook):
            print(f"{path} is out of date: run `sdpipeline docs`")
            return 1
        print(f"{path} matches the codebook")
        return 0
    print(f"wrote {docs.write(codebook, path)}")
    return 0


def _scale(text: str) -> int:
    """A delivery's scale: a whole multiple of the sample, at least 1, refused as the command
    is read (a ×0 benchmark generated nothing and then reported a failed scale)."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="sdpipeline", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="write a synthetic delivery with known truth")
    generate.add_argument("--out", help="folder for the wave folders (default: data/raw)")
    generate.add_argument("--scale", type=_scale, default=1, help="multiply sample sizes (×1)")
    generate.add_argument("--seed", type=int, default=None, help="seed (default: model.yaml)")
    generate.set_defaults(func=cmd_generate)

    run = commands.add_parser("run", help="materialise assets into the warehouse")
    run.add_argument(
        "--job",
        default="full_refresh",
        help="full_refresh (default), reports_only, or wave_<wave id> (one wave's files and "
        "what follows)",
    )
    refresh = commands.add_parser(
        "refresh",
        help="rebuild exactly what is behind the delivery on disk (by checksum), the code or a "
        "failed or killed run",
    )
    status = commands.add_parser(
        "status",
        help="per layer, what is current, what is behind and why, and what last failed "
        "(exit 1 when anything is behind)",
    )
    status.add_argument("--all", action="store_true", help="list current assets too")
    status.add_argument("--json", action="store_true", help="every asset's state as JSON")
    status.set_defaults(func=cmd_status)
    for command in (run, refresh):
        command.add_argument("--verbose", action="store_true", help="print every run event")
        command.add_argument(
            "--max-quarantine-share",
            type=float,
            default=None,
            help="reject a file when more than this share of its rows break the row contract "
            "(default: the codebook's, 0.05)",
        )
        command.set_defaults(func=cmd_run, job="full_refresh")

    floor = commands.add_parser(
        "floor",
        help="the indicators as one plain DuckDB SQL pass (unweighted; the benchmark's floor)",
    )
    floor.set_defaults(func=cmd_floor)

    bench = commands.add_parser("benchmark", help="measure time and memory at growing scales")
    bench.add_argument(
        "--scales",
        type=_scale,
        nargs="+",
        default=[1, 10, 100, 1000],
        help="multiples of the sample delivery to generate and measure (default: 1 10 100 1000)",
    )
    bench.add_argument("--out", help="where benchmark.json and .csv go (default: var/benchmark)")
    bench.add_argument("--work", help="scratch folder for the generated deliveries (default: /tmp)")
    bench.set_defaults(func=cmd_benchmark)

    cover = commands.add_parser(
        "coverage",
        help="draw deliveries with known truth and measure how often the 95 %% intervals cover it",
    )
    cover.add_argument("--replicates", type=int, default=200, help="deliveries to draw (200)")
    cover.add_argument("--first-seed", type=int, default=1, help="seed of the first (1)")
    cover.add_argument("--scale", type=_scale, default=1, help="multiply sample sizes (×1)")
    cover.add_argument("--jobs", type=int, default=2, help="processes (2)")
    cover.add_argument(
        "--out", default=str(settings.REPO_ROOT / "docs" / "coverage"), help="(docs/coverage)"
    )
    cover.set_defaults(func=cmd_coverage)

    compare = commands.add_parser(
        "compare", help="compare two warehouses table by table (identical, differing, schema)"
    )
    compare_warehouses.add_arguments(compare)
    compare.set_defaults(func=compare_warehouses.run)

    ui = commands.add_parser("ui", help="open the Dagster UI on the project's instance")
    ui.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)

    ref = commands.add_parser("reference", help="re-derive the population reference files")
    ref.set_defaults(func=cmd_reference)

    docs = commands.add_parser("docs", help="write docs/codebook.md from the codebook")
    docs.add_argument("--check", action="store_true", help="fail if the file is out of date")
    docs.add_argument("--out", help="the document (default: docs/codebook.md)")
    docs.set_defaults(func=cmd_docs)
    return top


def main(argv: list[str] | None = None) -> int:
    from sdpipeline.codebook import DataContractError

    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as error:
        # the data contract is incomplete or a setting unusable (also when Dagster wraps it
        # while loading the definitions): say what to change, without a traceback
        cause: BaseException | None = error
        while cause is not None and not isinstance(
            cause, DataContractError | settings.SettingError
        ):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        print(f"sdpipeline {args.command}: {cause}", file=sys.stderr)
        return 2


def entry() -> NoReturn:
    """The ``sdpipeline`` command: ``main``, then leave without tearing the interpreter down.
    Once a run has finished, everything it wrote is closed, but unloading Dagster, Great
    Expectations, pandas and their modules one by one took about 1.5 s of every command."""
    code = main()
    logging.shutdown()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        code = code or 1
    os._exit(code)


if __name__ == "__main__":
    entry()
