"""Dagster definitions for the source: one asset per table, a schedule, one partition per workspace.

    pip install "segment-source[dagster]"
    dagster dev -m segment_source.dagster

`defs` (a `dagster.Definitions`) is built from dlt's configuration when first used, so the same
settings as the script apply: `[sources.segment_source]` (or `SOURCES__SEGMENT_SOURCE__API_KEY`,
`..._BASE_URL`, ...) and `[destination.<name>]`, plus `[sources.segment_source.schedule]` for
the destination, dataset, cron and workspace names (see `scheduled.py`, shared with Airflow).

- Assets: one per table a run writes, keyed `segment/<table>`: the current-state tables, their
  `_history`, and the child tables dlt makes of nested lists (`sources__labels`, ...), each
  depending on its parent table, and the change feed `changes`, depending on every `_history`
  table. All are materialized together by one run of `load_segment` (a `multi_asset`), which
  also holds the script's run lock and fails the run when a workspace or a table failed.
- Several tokens: one static partition per workspace, keyed by its name (never the token), each
  with its own dlt pipeline (`segment_pipeline_<name>`, its own state) into the one dataset; the
  schedule starts every partition each tick. One token: no partitions.
- Runs that write the dataset never overlap: every run of these assets takes a slot of the
  Dagster pool `segment_<dataset>` (set its limit to 1, see the README), because partitions of
  one dataset merge into the same tables and share dlt's staging dataset: two merges of one table
  at once would delete each other's staged rows.
- A workspace or table that fails, or a run of the same pipeline in progress elsewhere (cron, a
  manual run), fails the Dagster run with the script's one-paragraph error.

Why not `dagster_dlt.dlt_assets`: it derives asset specs from the source's resources only (the
21 resources; `_history` and child tables, named at run time, stay invisible), it needs a source
instance, so a token, when the definitions load, and its run yields results for resources only.
Child tables are only known from a loaded schema, so they are declared here (`CHILD_TABLES`) and
a test checks the list against what a run on the simulator writes; a table a run writes without
an asset is logged as a warning.
"""

import functools
from typing import Any, Dict, Iterator, List, Optional, Sequence

import dagster as dg

from segment_source import scheduled
from segment_source.changes import CHANGES_TABLE
from segment_source.endpoints import ENDPOINTS, HISTORY_SUFFIX
from segment_source.scheduled import RunFailed, Settings, read_settings

KEY_PREFIX = "segment"
CHILD_TABLES = {
    "sources__labels": "sources",
    "sources__write_keys": "sources",
    "segments__options__filter_by_external_ids": "segments",
    "segments__schedules": "segments",
    "segments__schedules__config__days": "segments__schedules",
    "segments__schedules__config__hours": "segments__schedules",
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


def tables_of(resources: Sequence[str], history: bool) -> Dict[str, List[str]]:
    """Every table the resources write -> the tables it depends on (none for a resource's own; the
    change feed, `changes`, on every `_history` table)."""
    tables: Dict[str, List[str]] = {}
    for endpoint in ENDPOINTS:
        if endpoint.table not in resources:
            continue
        tables[endpoint.table] = []
        roots = [endpoint.table]
        if history and endpoint.history:
            tables[endpoint.table + HISTORY_SUFFIX] = [endpoint.table]
            roots.append(endpoint.table + HISTORY_SUFFIX)
        for child, parent in CHILD_TABLES.items():
            if child.split("__")[0] == endpoint.table:
                for root in roots:  # sources__labels -> sources_history__labels
                    tables[root + child[len(endpoint.table) :]] = [root + parent[len(endpoint.table) :]]
    versioned = [table for table in tables if table.endswith(HISTORY_SUFFIX)]
    if versioned:
        tables[CHANGES_TABLE] = versioned
    return tables


def asset_key(table: str) -> dg.AssetKey:
    return dg.AssetKey([KEY_PREFIX, table])


def build_definitions() -> dg.Definitions:
    """Assets, job and schedule from the current configuration (see the module's docstring)."""
    settings = read_settings()
    tables = tables_of(settings.resources, settings.history)
    partitions = dg.StaticPartitionsDefinition(list(settings.workspaces)) if settings.workspaces else None
    specs = [
        dg.AssetSpec(
            asset_key(table),
            deps=[asset_key(parent) for parent in parents],
            group_name=KEY_PREFIX,
            kinds={"dlt", settings.destination},
            description=f"Segment {table}, table {settings.dataset_name}.{table}",
        )
        for table, parents in tables.items()
    ]

    @dg.multi_asset(specs=specs, name="segment", partitions_def=partitions, pool=settings.pool)
    def segment(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
        workspace = context.partition_key if partitions else None
        row_counts = run(settings, workspace, context.log)
        for table in sorted(set(row_counts) - set(tables)):
            context.log.warning(f"{table} was loaded but has no asset; please report it (segment_source.dagster).")
        for table in tables:
            yield dg.MaterializeResult(
                asset_key=asset_key(table),
                metadata={"rows_loaded": row_counts.get(table, 0), "dataset": settings.dataset_name},
            )

    job = dg.define_asset_job("segment_job", selection=[segment])

    @dg.schedule(job=job, cron_schedule=settings.cron, name="segment_schedule")
    def every_workspace(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest]:
        for key in settings.workspaces or [None]:
            # a run key per tick and workspace: the tick's runs are queued, none is dropped as a duplicate
            yield dg.RunRequest(run_key=f"{context.scheduled_execution_time}:{key}", partition_key=key)

    return dg.Definitions(assets=[segment], jobs=[job], schedules=[every_workspace])


def run(settings: Settings, workspace: Optional[str], log: Any) -> Dict[str, int]:
    """`scheduled.run`, its one-paragraph failure a Dagster failure (the run fails with it)."""
    try:
        return scheduled.run(settings, workspace, log)
    except RunFailed as ex:
        raise dg.Failure(description=str(ex)) from None


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
