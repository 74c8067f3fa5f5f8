"""One call for orchestrators: lock, recover, refresh if asked, run, record the changes, and raise
when a workspace or a table failed.

`pipeline.run(segment_source(...))` alone loads every workspace it can and reports the others
only in the `RunReport`: an orchestrator that checks nothing sees success. `load_segment` makes
that a `WorkspaceFailures` (or `TableFailures`) exception, raised after everything else was
loaded; it holds the one-run-at-a-time lock (`lock.py`) for the whole run, finishes or rolls back
what an interrupted run left behind first (`recovery.py`), refuses a full refresh that would
drop history unless told so, loads with the dlt settings of `run_settings.py`, and derives the
change feed (`changes.py`) after the load.

    from segment_source import load_segment

    info, report, changes = load_segment(pipeline)  # every default table; raises on any failure
"""

import logging
from typing import TYPE_CHECKING, Dict, List, NamedTuple, Optional, Sequence

from segment_source.changes import ChangeSummary, record_changes
from segment_source.endpoints import HISTORY_SUFFIX
from segment_source.errors import ConfigurationError, TableFailures, WorkspaceFailures
from segment_source.lock import run_lock
from segment_source.report import RunReport
from segment_source.run_settings import run_settings

logger = logging.getLogger("segment_source")

if TYPE_CHECKING:
    import dlt
    from dlt.common.pipeline import LoadInfo
    from dlt.extract.source import DltSource


class SegmentLoad(NamedTuple):
    info: "LoadInfo"
    report: RunReport
    changes: ChangeSummary


class HistoryDropRefused(ConfigurationError):
    """A full refresh would drop `_history` tables and the caller did not confirm it."""

    def __init__(self, tables: Sequence[str]) -> None:
        history = [t for t in tables if t.endswith(HISTORY_SUFFIX)]
        super().__init__(
            f"--full-refresh would drop these tables and load them again: {', '.join(tables)}. The history"
            f" tables among them ({', '.join(history)}) hold every version seen by earlier runs, which Segment"
            " cannot give back. Add --drop-history to drop them anyway (drop_history=True in Python), or name"
            " only the tables to refresh with --resources. Nothing was dropped or loaded."
        )
        self.tables = list(tables)


def load_segment(
    pipeline: "dlt.Pipeline",
    source: "Optional[DltSource]" = None,
    report: Optional[RunReport] = None,
    *,
    full_refresh: bool = False,
    drop_history: bool = False,
    wait_seconds: float = 0,
) -> SegmentLoad:
    """Load `source` (default: `segment_source()` from dlt's configuration) into `pipeline`.

    Args:
        source: a `segment_source(...)` or `segment_config_api(...)`, with `.with_resources(...)`
            if you like. Build it with `report=report` and pass the same `report` here: it is how
            failed workspaces are seen.
        report: the `RunReport` the source writes to; a new one when `source` is not given.
        full_refresh: drop the selected resources' tables (current and `_history`) and their
            state, then load them from scratch; other tables are kept.
        drop_history: confirm that a full refresh may drop `_history` tables.
        wait_seconds: how long to wait for another run of the same pipeline and dataset to end.

    Returns:
        `SegmentLoad(info, report, changes)`: dlt's `LoadInfo`, what was skipped, and the changes
        this run found (also in the `changes` table).

    Raises:
        RunInProgressError: another run of this pipeline and dataset holds the lock.
        WorkspaceFailures: some workspaces failed; every other one was loaded. The exception
            carries `info` and `report` too.
        TableFailures: some tables failed (their rows stay as they were); every other table was
            loaded. Also with `info` and `report`.
        HistoryDropRefused: `full_refresh` would drop history and `drop_history` is False.
        Anything `pipeline.run` raises (dlt's `PipelineStepFailed`...); `errors.explain`
            turns those a user can fix into one paragraph.
    """
    if source is None:
        from segment_source.source import segment_source

        report = report if report is not None else RunReport()
        source = segment_source(report=report)
    elif report is None:
        raise TypeError("load_segment(pipeline, source, report): build the source with report=report and pass it here")
    with run_lock(pipeline, wait_seconds), run_settings(pipeline):
        info = _run(pipeline, source, full_refresh, drop_history)
        report.rows_loaded = rows_written(pipeline)
        changes = record_changes(pipeline)  # a load of its own, so under the lock too
    if report.failed:
        raise WorkspaceFailures(report.failed, info=info, report=report)
    if report.failed_tables:
        raise TableFailures(report.failed_tables, info=info, report=report)
    return SegmentLoad(info, report, changes)


def _run(pipeline: "dlt.Pipeline", source: "DltSource", full_refresh: bool, drop_history: bool) -> "LoadInfo":
    """Recovery, the refresh check and `pipeline.run`: under the lock, since a running load is
    not an interrupted one."""
    from segment_source.recovery import recover_interrupted_load

    recover_interrupted_load(pipeline)
    if full_refresh:
        tables = tables_to_refresh(pipeline, list(source.selected_resources))
        if not drop_history and any(t.endswith(HISTORY_SUFFIX) for t in tables):
            raise HistoryDropRefused(tables)
        logger.warning("Full refresh: dropping %s, then loading them again.", ", ".join(tables) or "no table yet")
        return pipeline.run(source, refresh="drop_resources")
    return pipeline.run(source)


def rows_written(pipeline: "dlt.Pipeline") -> Dict[str, int]:
    """Rows per data table of the pipeline's last run, as dlt's normalize step counted them."""
    trace = pipeline.last_trace
    written = trace.last_normalize_info.row_counts if trace and trace.last_normalize_info else {}
    return {table: rows for table, rows in written.items() if not table.startswith("_dlt")}


def tables_to_refresh(pipeline: "dlt.Pipeline", resources: List[str]) -> List[str]:
    """The loaded tables a `drop_resources` refresh of `resources` drops (history and child tables too).

    The schema is first synced from the destination, as `pipeline.run` does, so a pipeline
    whose local working directory is new still sees what the destination holds.
    """
    from dlt.common.schema.utils import group_tables_by_resource, has_table_seen_data

    pipeline.sync_destination()
    if not pipeline.default_schema_name:
        return []
    schema = pipeline.default_schema
    by_resource = group_tables_by_resource({t["name"]: t for t in schema.data_tables(include_incomplete=True)})
    return [t["name"] for r in resources for t in by_resource.get(r, []) if has_table_seen_data(t)]
