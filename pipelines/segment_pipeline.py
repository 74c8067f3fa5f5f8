"""Load a Segment workspace's configuration into DuckDB, PostgreSQL or Snowflake.

    python pipelines/segment_pipeline.py --demo        # no token needed: the built-in simulator
    python pipelines/segment_pipeline.py               # your workspace -> ./segment_pipeline.duckdb
    python pipelines/segment_pipeline.py --destination postgres --resources sources,destinations
    python pipelines/segment_pipeline.py --config-api  # a legacy Config API token's workspace

The token and destination credentials come from dlt's configuration: .dlt/secrets.toml or
environment variables (see .dlt/example.secrets.toml). Exit code 0 on success, 1 when the load
failed, 2 for a configuration or usage error, 3 when another run of the same pipeline and dataset
is in progress; failures print one paragraph, never a secret.
"""

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

import dlt
from dlt.common.pipeline import LoadInfo
from dlt.common.runtime.collector import NULL_COLLECTOR

from segment_source import DEFAULT_TABLES, ENDPOINTS, RunReport, segment_config_api, segment_source
from segment_source.changes import record_changes
from segment_source.config_api import CONFIG_API_TABLES
from segment_source.errors import ConfigurationError, TableFailures, WorkspaceFailures, explain
from segment_source.lock import run_lock
from segment_source.progress import Progress
from segment_source.recovery import recover_interrupted_load
from segment_source.report import describe_location, table_counts

PIPELINE_NAME = "segment_pipeline"
DEMO_PIPELINE_NAME = "segment_demo"
DATASET_NAME = "segment_data"
DESTINATIONS = ("duckdb", "postgres", "snowflake")
TRY_QUERY = (
    "SELECT s.name AS source, count(d.id) AS destinations\n"
    "  FROM {dataset}.sources s LEFT JOIN {dataset}.destinations d ON d.source_id = s.id\n"
    " GROUP BY s.name ORDER BY destinations DESC LIMIT 10;"
)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
        help="drop this pipeline's tables, history included, and load from scratch",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="load from the built-in Segment simulator instead of your workspace (no token needed)",
    )
    parser.add_argument(
        "--config-api",
        action="store_true",
        help="read the workspace through the legacy Config API ([sources.segment_config_api]) into the same tables: "
        + ",".join(CONFIG_API_TABLES),
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
    return parser.parse_args(argv)


def selected_resources(spec: Optional[str], config_api: bool = False) -> List[str]:
    valid, default = (
        (CONFIG_API_TABLES, CONFIG_API_TABLES) if config_api else ([e.table for e in ENDPOINTS], DEFAULT_TABLES)
    )
    if not spec:
        return list(default)
    names = [name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in names if name not in valid]
    if unknown or not names:
        raise ConfigurationError(
            f"Unknown resource(s) {', '.join(unknown) or repr(spec)} in --resources. Valid names: {', '.join(valid)}."
        )
    return names


@contextlib.contextmanager
def source_settings(demo: bool, config_api: bool = False) -> Iterator[dict]:
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


def run(args: argparse.Namespace) -> LoadInfo:
    resources = selected_resources(args.resources, args.config_api)
    run_report = RunReport()
    pipeline = dlt.pipeline(
        # the Config API's schema and state are its own: its own pipeline (and DuckDB file)
        pipeline_name=(DEMO_PIPELINE_NAME if args.demo else PIPELINE_NAME) + ("_config_api" if args.config_api else ""),
        destination=args.destination,
        dataset_name=args.dataset_name,
        progress=NULL_COLLECTOR if args.quiet else Progress(run_report),
    )
    with run_lock(pipeline, args.wait), source_settings(args.demo, args.config_api) as settings:
        recover_interrupted_load(pipeline)  # under the lock: a running load is not an interrupted one
        make_source = segment_config_api if args.config_api else segment_source
        source = make_source(report=run_report, **settings).with_resources(*resources)
        info = pipeline.run(source, refresh="drop_sources" if args.full_refresh else None)
        changes = record_changes(pipeline)  # a load of its own: under the lock too
    report(pipeline, info, resources, run_report)
    print("\n" + changes.describe())
    if args.changes_json:
        Path(args.changes_json).write_text(json.dumps(changes.to_json(), indent=2) + "\n")
    if run_report.failed:
        raise WorkspaceFailures(run_report.failed)
    if run_report.failed_tables:
        raise TableFailures(run_report.failed_tables)
    return info


def report(pipeline: dlt.Pipeline, info: LoadInfo, resources: List[str], run_report: RunReport) -> None:
    print(info)
    stats = run_report.stats
    print(
        f"Segment API: {stats['requests']} requests, {stats['retries']} retried"
        f" ({stats['rate_limited']} after a 429), {stats['waited_seconds']:.1f} s spent pacing and waiting."
    )
    for line in run_report.skipped + run_report.warnings:
        print(f"Note: {line}")
    print("\nRows per table (current objects / versions in history):")
    for table, current, versions in table_counts(pipeline, resources):
        print(f"  {table:<26} {current:>8} / {'-' if versions is None else versions}")
    print(f"\nYour data: {describe_location(pipeline)}")
    print("Try this query:\n" + TRY_QUERY.format(dataset=pipeline.dataset_name))


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except Exception as ex:  # noqa: BLE001 - every failure gets one readable paragraph
        message, code = explain(ex)
        if message is None:
            raise
        print(f"\nError: {message}", file=sys.stderr)
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
