"""What Dagster alone costs this pipeline: the same code location loaded, the same assets,
dependencies, checks and file observations, run by ``full_refresh`` in process into a Dagster
instance of the same kind, with every step doing nothing but report its result. The benchmark
runs it beside the pipeline (``python -m sdpipeline.dagster_floor``), so that a full run's time
splits into what Dagster takes whatever the steps do and what the steps' own work takes: the
floor below which no change inside the steps can bring a run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import dagster as dg


def _doing_nothing(assets: dg.AssetsDefinition) -> dg.AssetsDefinition | dg.AssetChecksDefinition:
    """``assets`` with the same specs and checks under the same step name, its body empty."""
    specs, checks = list(assets.specs), list(assets.check_specs)
    name = assets.node_def.name
    results = [
        dg.AssetCheckResult(asset_key=c.asset_key, check_name=c.name, passed=True) for c in checks
    ]

    if not assets.is_materializable and assets.is_observable:

        @dg.multi_observable_source_asset(specs=specs, name=name)
        def observe() -> Iterator[dg.ObserveResult]:
            for spec in specs:
                yield dg.ObserveResult(asset_key=spec.key, data_version=dg.DataVersion("same"))

        return observe
    if not specs:

        @dg.multi_asset_check(specs=checks, name=name)
        def check() -> Iterator[dg.AssetCheckResult]:
            yield from results

        return check

    @dg.multi_asset(specs=specs, check_specs=checks, name=name)
    def materialise() -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        for spec in specs:
            yield dg.MaterializeResult(asset_key=spec.key, metadata={"rows": 0})
        yield from results

    return materialise


def definitions(pipeline: dg.Definitions) -> dg.Definitions:
    """The pipeline's asset graph with every step doing nothing, and its ``full_refresh``."""
    graph = pipeline.resolve_asset_graph()
    return dg.Definitions(
        assets=[_doing_nothing(a) for a in graph.assets_defs if a.is_executable],
        jobs=[
            dg.define_asset_job(
                "full_refresh", selection=dg.AssetSelection.all(include_sources=True)
            )
        ],
    )


def main() -> int:
    """Load the code location as a run does, then run its graph doing nothing into an
    instance configured as ``sdpipeline run``'s, at ``DAGSTER_HOME``; prints the steps run and
    the seconds taken."""
    started = time.perf_counter()
    from sdpipeline.cli import _open_instance, _use_project_instance
    from sdpipeline.definitions import defs

    job = definitions(defs).resolve_job_def("full_refresh")
    with _open_instance(_use_project_instance()) as instance:
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
        )
    steps = len(result.get_step_success_events())
    print(f"dagster floor: {steps} steps doing nothing in {time.perf_counter() - started:.1f} s")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
