"""`segment-pipeline`: load a Segment workspace's configuration into DuckDB, PostgreSQL or Snowflake.

    segment-pipeline --demo            # no token needed: the built-in simulator
    segment-pipeline                   # your workspace -> ./segment_pipeline.duckdb
    segment-pipeline --destination postgres --resources sources,destinations
    segment-pipeline --config-api      # a legacy Config API token's workspace

The token and destination credentials come from dlt's configuration: .dlt/secrets.toml or
environment variables (see .dlt/example.secrets.toml). Exit codes: 0 success, 1 the load failed,
2 a configuration or usage error, 3 another run of the same pipeline and dataset is in progress,
130 / 143 interrupted (Ctrl-C / SIGTERM); failures print one paragraph, never a secret.

Arguments are parsed before dlt is imported (a second or more on a busy machine), so `--help`
and usage errors answer at once.
"""

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any, ContextManager, Dict, Iterator, List, Optional, Sequence

from segment_source.endpoints import DEFAULT_TABLES, ENDPOINTS

if TYPE_CHECKING:
    import dlt

    from segment_source.report import RunReport

PIPELINE_NAME = "segment_pipeline"
DEMO_PIPELINE_NAME = "segment_demo"
DATASET_NAME = "segment_data"
DESTINATIONS = ("duckdb", "postgres", "snowflake")
PIPELINES_DIR = os.path.join(".dlt", "pipelines")
EXIT_SIGNAL: Dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal, as shells report it
JOIN_QUERY = (
    "SELECT s.name AS source, count(d.id) AS destinations\n"
    "  FROM {dataset}.sources s LEFT JOIN {dataset}.destinations d ON d.source_id = s.id\n"
    " GROUP BY s.name ORDER BY destinations DESC LIMIT 10;"
)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="segment-pipeline",
        description=__doc__.split("\n\n")[0].split(": ", 1)[1],
        epilog="Exit codes: 0 success, 1 the load failed, 2 configuration or usage error, 3 another run in"
        " progress, 130/143 interrupted.",
    )
    parser.add_argument("--destination", choices=DESTINATIONS, default="duckdb", help="where to load (default: duckdb)")
    parser.add_argument(
        "--dataset-name", default=DATASET_NAME, help=f"dataset (schema) to load into (default: {DATASET_NAME})"
    )
    parser.add_argument(
        "--resources",
        help="comma-separated tables to load (default: all but the opt-in catalog_*, warehouse_syncs, function_code): "
        + ",".join(e.table for e in ENDPOINTS),
    )
    parser.add_argument(
        "--full-refresh",
        action="store_true",
        help="drop the selected tables (those of --resources, or the default set) with their _history and child"
        " tables, and load them from scratch; other tables are kept",
    )
    parser.add_argument(
        "--drop-history",
        action="store_true",
        help="confirm that --full-refresh may drop _history tables (the versions of earlier runs are lost)",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=0,
        metavar="SECONDS",
        help="when another run of this pipeline and dataset is in progress, wait up to SECONDS for it (default: 0)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr while the run goes")
    parser.add_argument(
        "--changes-json", metavar="FILE", help="also write the changes this run found as JSON (for alerting)"
    )
    parser.add_argument(
        "--pipelines-dir",
        help=f"dlt's working directory for this pipeline's state (default: {PIPELINES_DIR} in the current"
        " directory, or $DLT_DATA_DIR/pipelines when DLT_DATA_DIR is set)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="load from the built-in Segment simulator instead of your workspace (no token needed)",
    )
    parser.add_argument(
        "--config-api",
        action="store_true",
        help="read the workspace through the legacy Config API ([sources.segment_config_api]) into the same tables:"
        " workspace, sources, destinations, tracking_plans, tracking_plan_rules",
    )
    args = parser.parse_args(argv)
    if args.drop_history and not args.full_refresh:
        parser.error("--drop-history only confirms a --full-refresh")
    return args


def selected_resources(spec: Optional[str], valid: Sequence[str], default: Sequence[str]) -> List[str]:
    from segment_source.errors import ConfigurationError

    if not spec:
        return list(default)
    names = [name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in names if name not in valid]
    if unknown or not names:
        raise ConfigurationError(
            f"Unknown resource(s) {', '.join(unknown) or repr(spec)} in --resources. Valid names: {', '.join(valid)}."
        )
    return names


def open_pipeline(
    name: str, destination: Any, dataset_name: Any = None, explicit_dir: Optional[str] = None, **kwargs: Any
) -> "dlt.Pipeline":
    """A dlt pipeline whose files are where the README says: its DuckDB file in the current directory
    (unless configured), its state in `working_dir`. Every script of the package opens its pipelines here."""
    import dlt

    from segment_source.lock import create_pipeline

    if destination == "duckdb":
        destination = dlt.destinations.duckdb(duckdb_location(name))
    return create_pipeline(
        pipeline_name=name,
        destination=destination,
        dataset_name=dataset_name,
        pipelines_dir=working_dir(explicit_dir),
        **kwargs,
    )


def working_dir(explicit: Optional[str] = None) -> Any:
    """`--pipelines-dir`, else dlt's own default under `DLT_DATA_DIR` when set, else `./.dlt/pipelines`.

    dlt's default is one directory per OS user (~/.dlt/pipelines), where a pipeline remembers the
    directory of its first run: a second checkout would load into the first one's DuckDB file.
    """
    if explicit:
        return os.path.abspath(explicit)
    if os.environ.get("DLT_DATA_DIR"):
        return None
    return os.path.abspath(PIPELINES_DIR)


def duckdb_location(pipeline_name: str) -> Any:
    """The DuckDB file: the configured one, else `<pipeline name>.duckdb` in the current directory.

    Passed to dlt explicitly: dlt otherwise reuses the path it stored on the pipeline's first run,
    and resolves relative paths against that run's directory.
    """
    import dlt

    configured: Any = dlt.config.get("destination.duckdb.credentials")
    if configured is None:
        return os.path.abspath(f"{pipeline_name}.duckdb")
    if isinstance(configured, str) and not configured.startswith((":", "duckdb:")):
        return os.path.abspath(os.path.expanduser(configured))
    return configured  # a connection string or a credentials table: dlt's to resolve


@contextlib.contextmanager
def source_settings(demo: bool, config_api: bool = False) -> Iterator[Dict[str, Any]]:
    """Arguments for the source: the simulator's for --demo, else dlt's configuration."""
    if not demo:
        yield {}
        return
    from segment_simulator import ConfigApiSimulator, SegmentSimulator, demo_workspace

    if config_api:
        with ConfigApiSimulator(demo_workspace()) as sim:
            print(f"Demo: a simulated Segment workspace is serving the legacy Config API at {sim.url}.")
            yield {"access_token": sim.token, "workspace": sim.workspace.slug, "base_url": sim.url}
        return
    with SegmentSimulator(demo_workspace()) as sim:
        print(f"Demo: a simulated Segment workspace is serving the Public API at {sim.url}.")
        yield {"api_key": sim.token, "base_url": sim.url}


def run(args: argparse.Namespace) -> None:
    from dlt.common.runtime.collector import NULL_COLLECTOR

    from segment_source import segment_config_api, segment_source
    from segment_source.config_api import CONFIG_API_TABLES
    from segment_source.errors import PartialLoad
    from segment_source.progress import Progress
    from segment_source.report import RunReport
    from segment_source.runner import load_segment

    if args.config_api:
        resources = selected_resources(args.resources, CONFIG_API_TABLES, CONFIG_API_TABLES)
    else:
        resources = selected_resources(args.resources, [e.table for e in ENDPOINTS], DEFAULT_TABLES)
    # the Config API's schema and state are its own: its own pipeline (and DuckDB file)
    name = (DEMO_PIPELINE_NAME if args.demo else PIPELINE_NAME) + ("_config_api" if args.config_api else "")
    run_report = RunReport()
    progress = NULL_COLLECTOR if args.quiet else Progress(run_report)
    pipeline = open_pipeline(name, args.destination, args.dataset_name, args.pipelines_dir, progress=progress)
    with source_settings(args.demo, args.config_api) as settings:
        make_source = segment_config_api if args.config_api else segment_source
        source = make_source(report=run_report, **settings).with_resources(*resources)
        try:
            info, _, changes = load_segment(
                pipeline,
                source,
                run_report,
                full_refresh=args.full_refresh,
                drop_history=args.drop_history,
                wait_seconds=args.wait,
            )
        except PartialLoad as ex:
            summarize(pipeline, ex.info, resources, run_report)
            raise
    summarize(pipeline, info, resources, run_report)
    print("\n" + changes.describe())
    if args.changes_json:
        with open(args.changes_json, "w") as out:
            json.dump(changes.to_json(), out, indent=2)
            out.write("\n")


def summarize(pipeline: "dlt.Pipeline", info: Any, resources: List[str], run_report: "RunReport") -> None:
    from segment_source.report import describe_location, table_counts

    print(info)
    stats = run_report.stats
    print(
        f"Segment API: {stats['requests']} requests, {stats['retries']} retried"
        f" ({stats['rate_limited']} after a 429), {stats['waited_seconds']:.1f} s spent pacing and waiting."
    )
    for line in run_report.skipped + run_report.warnings:
        print(f"Note: {line}")
    print("\nRows per table (current objects / versions in history):")
    counts = table_counts(pipeline, resources)
    for table, current, versions in counts:
        print(f"  {table:<26} {current:>8} / {'-' if versions is None else versions}")
    print(f"\nYour data: {describe_location(pipeline)}")
    print("Try this query:\n" + try_query(pipeline.dataset_name, {table for table, current, _ in counts if current}))


def try_query(dataset: str, loaded: "set[str]") -> str:
    """The join of sources and destinations when both are loaded, else a look at a loaded table."""
    if {"sources", "destinations"} <= loaded:
        return JOIN_QUERY.format(dataset=dataset)
    return f"SELECT * FROM {dataset}.{min(loaded) if loaded else 'workspace'} LIMIT 10;"


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that the same cleanup runs."""


def _on_sigterm(signum: int, frame: Optional[FrameType]) -> None:
    raise Terminated()


def _stop_at_the_first_signal() -> ContextManager[None]:
    """dlt holds SIGINT and SIGTERM back during normalize and load and looks for one between rounds
    of load jobs; one that arrives after a step's last look is dropped (dlt 1.31's `run_pool`), and
    the run went on to the change feed and exit 0. The script lets them stop it where they land
    instead (dlt still waits for the running load jobs); the next run finishes or rolls back the
    load, as after any interruption. A `[runtime] intercept_signals` of the user's wins."""
    from segment_source.run_settings import env_default

    return env_default("runtime.intercept_signals", False)


def interrupted_by(ex: BaseException) -> Optional[int]:
    """SIGINT or SIGTERM when `ex` (or what it wraps: dlt re-raises them in its steps) is one."""
    from segment_source.errors import causes

    for cause in causes(ex):
        code = getattr(cause, "signal_code", None)  # dlt's SignalReceivedException
        if isinstance(cause, Terminated) or code == signal.SIGTERM:
            return signal.SIGTERM
        if isinstance(cause, KeyboardInterrupt):
            return signal.SIGINT
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    # what the RunReport holds is printed by `summarize` or in the final error: not twice
    logging.getLogger("segment_source.report").setLevel(logging.ERROR)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with _stop_at_the_first_signal():
            run(args)
    except BaseException as ex:  # noqa: BLE001 - every failure gets one readable paragraph
        sig = interrupted_by(ex)
        if sig is not None:
            print(
                f"\nInterrupted ({signal.Signals(sig).name}): the run stopped. What earlier runs loaded is intact;"
                " the next run finishes or rolls back this one's load and reads the workspace again.",
                file=sys.stderr,
            )
            return EXIT_SIGNAL[sig]
        if not isinstance(ex, Exception):
            raise
        from segment_source.errors import explain

        message, code = explain(ex)
        if message is None:
            raise
        print(f"\nError: {message}", file=sys.stderr)
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
