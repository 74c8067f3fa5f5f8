"""Dagster definitions for the source: one asset per table, a schedule, one partition per workspace.

    pip install "segment-source[dagster]"
    dagster dev -m segment_source.dagster

`defs` (a `dagster.Definitions`) is built from dlt's configuration when first used, so the same
settings as the script apply: `[sources.segment_source]` (or `SOURCES__SEGMENT_SOURCE__API_KEY`,
`..._BASE_URL`, ...) and `[destination.<name>]`, plus `[sources.segment_source.dagster]`
(`SOURCES__SEGMENT_SOURCE__DAGSTER__<KEY>`): `destination` (duckdb), `dataset_name`
(segment_data), `schedule` (hourly cron), `resources` (the default tables), `partitions` (names
of the workspaces, in the order of the tokens).

- Assets: one per table a run writes, keyed `segment/<table>`: the current-state tables, their
  `_history`, and the child tables dlt makes of nested lists (`sources__labels`, ...), each
  depending on its parent table. All are materialized together by one dlt run (a `multi_asset`).
- Several tokens: one static partition per workspace, keyed by its name (never the token), each
  with its own dlt pipeline (`segment_pipeline_<name>`, its own state, restored from the
  destination) into the one dataset. One token: no partitions, pipeline `segment_pipeline`, the
  script's, so its state carries over.
- Runs that write the dataset never overlap: every run of these assets takes a slot of the
  Dagster pool `segment_<dataset>` (set its limit to 1, see the README), because partitions of
  one dataset merge into the same tables and share dlt's staging dataset: two merges of one table
  at once would delete each other's staged rows.
- A workspace that fails fails the Dagster run with the script's one-paragraph error.

Why not `dagster_dlt.dlt_assets`: it derives asset specs from the source's resources only (the
21 resources; `_history` and child tables, named at run time, stay invisible), it needs a source
instance, so a token, when the definitions load, and its run yields results for resources only.
Child tables are only known from a loaded schema, so they are declared here (`CHILD_TABLES`) and
a test checks the list against what a run on the simulator writes; a table a run writes without
an asset is logged as a warning.
"""

import functools
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import dagster as dg
import dlt
from dlt.common.configuration import with_config

from segment_source.endpoints import DEFAULT_TABLES, ENDPOINTS, HISTORY_SUFFIX
from segment_source.errors import ConfigurationError, WorkspaceFailures, explain
from segment_source.progress import Progress
from segment_source.recovery import recover_interrupted_load
from segment_source.report import RunReport
from segment_source.settings import SECTION, split_tokens, where
from segment_source.source import segment_source

PIPELINE_NAME = "segment_pipeline"
KEY_PREFIX = "segment"
CHILD_TABLES = {
    "sources__labels": "sources",
    "sources__write_keys": "sources",
    "segments__options__filter_by_external_ids": "segments",
    **{
        f"{table}__permissions{nested}": f"{table}{parent}"
        for table in ("users", "user_groups")
        for nested, parent in (
            ("", ""),
            ("__labels", "__permissions"),
            ("__resources", "__permissions"),
            ("__resources__labels", "__permissions__resources"),
        )
    },
}
"""Child table -> its parent: the tables dlt makes of nested lists (each `_history` table has the
same), as the dlt schema of a run on the simulator's medium workspace shows them."""


@dataclass(frozen=True)
class Settings:
    destination: str
    dataset_name: str
    schedule: str
    resources: Tuple[str, ...]
    history: bool
    partitions: Tuple[str, ...]
    """Workspace names, one per token, when several tokens are configured."""

    @property
    def pool(self) -> str:
        return f"segment_{self.dataset_name}"


@with_config(sections=("sources", SECTION, "dagster"))
def read_settings(
    destination: str = "duckdb",
    dataset_name: str = "segment_data",
    schedule: str = "0 * * * *",
    resources: Optional[Sequence[str]] = None,
    partitions: Optional[Sequence[str]] = None,
) -> Settings:
    """`[sources.segment_source.dagster]`, checked, with the workspace names of the configured tokens."""
    tokens = configured_tokens()
    names = tuple(partitions) if partitions else tuple(f"workspace_{i}" for i in range(1, len(tokens) + 1))
    if partitions and len(names) != len(tokens):
        raise ConfigurationError(
            f"{len(names)} partition name(s) for {len(tokens)} token(s)."
            f" Set {where(SECTION + '.dagster', 'partitions')} to one name per token, in the order of the"
            " tokens, or remove it to name them workspace_1, workspace_2..."
        )
    chosen = tuple(resources) if resources else tuple(DEFAULT_TABLES)
    unknown = sorted(set(chosen) - {e.table for e in ENDPOINTS})
    if unknown:
        raise ConfigurationError(
            f"Unknown resource(s) {', '.join(unknown)} in {where(SECTION + '.dagster', 'resources')}."
            f" Valid names: {', '.join(e.table for e in ENDPOINTS)}."
        )
    history = dlt.config.get(f"sources.{SECTION}.history", bool)  # the source's own setting
    return Settings(destination, dataset_name, schedule, chosen, history is not False, names if len(tokens) > 1 else ())


def configured_tokens() -> Tuple[str, ...]:
    return split_tokens(dlt.secrets.get(f"sources.{SECTION}.api_key") or "")


def tables_of(resources: Sequence[str], history: bool) -> Dict[str, Optional[str]]:
    """Every table the resources write -> the table it depends on (None for a resource's own)."""
    tables: Dict[str, Optional[str]] = {}
    for endpoint in ENDPOINTS:
        if endpoint.table not in resources:
            continue
        tables[endpoint.table] = None
        roots = [endpoint.table]
        if history and endpoint.history:
            tables[endpoint.table + HISTORY_SUFFIX] = endpoint.table
            roots.append(endpoint.table + HISTORY_SUFFIX)
        for child, parent in CHILD_TABLES.items():
            if child.split("__")[0] == endpoint.table:
                for root in roots:  # sources__labels -> sources_history__labels
                    tables[root + child[len(endpoint.table) :]] = root + parent[len(endpoint.table) :]
    return tables


def asset_key(table: str) -> dg.AssetKey:
    return dg.AssetKey([KEY_PREFIX, table])


def build_definitions() -> dg.Definitions:
    """Assets, job and schedule from the current configuration (see the module's docstring)."""
    settings = read_settings()
    tables = tables_of(settings.resources, settings.history)
    partitions = dg.StaticPartitionsDefinition(list(settings.partitions)) if settings.partitions else None
    specs = [
        dg.AssetSpec(
            asset_key(table),
            deps=[asset_key(parent)] if parent else [],
            group_name=KEY_PREFIX,
            kinds={"dlt", settings.destination},
            description=f"Segment {table}, table {settings.dataset_name}.{table}",
        )
        for table, parent in tables.items()
    ]

    @dg.multi_asset(specs=specs, name="segment", partitions_def=partitions, pool=settings.pool)
    def segment(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
        workspace = context.partition_key if partitions else None
        row_counts = run_pipeline(settings, workspace, context.log)
        for table in sorted(t for t in set(row_counts) - set(tables) if not t.startswith("_dlt")):
            context.log.warning(f"{table} was loaded but has no asset; please report it (segment_source.dagster).")
        for table in tables:
            yield dg.MaterializeResult(
                asset_key=asset_key(table),
                metadata={"rows_loaded": row_counts.get(table, 0), "dataset": settings.dataset_name},
            )

    job = dg.define_asset_job("segment_job", selection=[segment])

    @dg.schedule(job=job, cron_schedule=settings.schedule, name="segment_schedule")
    def every_workspace(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest]:
        for key in settings.partitions or [None]:
            # a run key per tick and workspace: the tick's runs are queued, none is dropped as a duplicate
            yield dg.RunRequest(run_key=f"{context.scheduled_execution_time}:{key}", partition_key=key)

    return dg.Definitions(assets=[segment], jobs=[job], schedules=[every_workspace])


def run_pipeline(settings: Settings, workspace: Optional[str], log: Any) -> Dict[str, int]:
    """Load every token (or the one of `workspace`); rows loaded per table. Raises on any failure,
    with the script's one-paragraph message."""
    tokens = configured_tokens()
    report = RunReport()
    try:
        if workspace is not None:
            tokens = (tokens[settings.partitions.index(workspace)],)
        pipeline = dlt.pipeline(
            PIPELINE_NAME + (f"_{workspace}" if workspace else ""),
            destination=settings.destination,
            dataset_name=settings.dataset_name,
            progress=Progress(report),
        )
        recover_interrupted_load(pipeline)
        source = segment_source(api_key=list(tokens), report=report).with_resources(*settings.resources)
        info = pipeline.run(source)
        for line in report.skipped:
            log.warning(line)
        if report.failed:
            raise WorkspaceFailures(report.failed)
    except Exception as ex:  # noqa: BLE001 - a user's error becomes one paragraph, a bug stays a trace
        message, _ = explain(ex)
        if message is None:
            raise
        raise dg.Failure(description=message) from None
    log.info(str(info))
    trace = pipeline.last_trace  # rows per table the run wrote, child tables included
    return dict(trace.last_normalize_info.row_counts) if trace and trace.last_normalize_info else {}


@functools.lru_cache(maxsize=None)
def _built() -> dg.Definitions:
    return build_definitions()


def __getattr__(name: str) -> Any:
    """`defs`, built on first use (reading the configuration), then kept."""
    if name != "defs":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return _built()


def __dir__() -> List[str]:
    return sorted([*globals(), "defs"])
