"""What a run tells its user: skipped resources, failed workspaces and tables, warnings, rows per
table, where the data is."""

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

import dlt

from segment_source.endpoints import HISTORY_SUFFIX, Endpoint
from segment_source.errors import SegmentSourceError

if TYPE_CHECKING:
    from segment_source.progress import Progress
    from segment_source.reader import WorkspaceReader

# its own logger: the command line prints every skip and failure itself and silences this one
logger = logging.getLogger("segment_source.report")


@dataclass
class RunReport:
    """Filled while a source extracts; read by the caller afterwards.

    Pass one to `segment_source(report=...)` to see what was skipped or failed; the load of
    everything else goes on regardless.
    """

    skipped: List[str] = field(default_factory=list)
    """One line per resource skipped in a workspace (a 403 or 404 on a feature)."""
    failed: Dict[str, str] = field(default_factory=dict)
    """Workspace -> why it failed (a rejected token, an unreachable API...)."""
    failed_tables: List[str] = field(default_factory=list)
    """One line per table (or function type) that failed in a workspace, with why; its rows stay."""
    isolate_tables: bool = True
    """A table that fails costs only itself. False (a source made without a report, whose caller
    could not see `failed_tables`): it fails the run instead of loading silently without it."""
    rows_loaded: Dict[str, int] = field(default_factory=dict)
    """Data table -> rows the run wrote to it (child tables too): set by `load_segment`."""
    readers: List["WorkspaceReader"] = field(default_factory=list)
    progress: Optional["Progress"] = None
    """Shown while the source reads: `tables.py` tells it each page and each finished table."""

    def skip(self, reader: "WorkspaceReader", endpoint: Endpoint, error: Exception) -> None:
        status = getattr(error, "status", None)
        feature = endpoint.feature or endpoint.table
        why = {
            403: "the token's role lacks the permission",
            406: f"Segment does not serve this {endpoint.version} endpoint to the workspace",
        }.get(status or 0, "the workspace does not have the feature")
        line = (
            f"{reader.label}: skipped {endpoint.table}: {why} ({feature}); Segment answered {status}."
            " Everything else was loaded."
        )
        self.skipped.append(line)
        logger.warning(line)

    def fail(self, reader: "WorkspaceReader", error: Exception) -> None:
        self.failed[reader.label] = str(error)
        logger.warning("%s failed and was not loaded: %s", reader.label, error)

    def fail_table(self, reader: "WorkspaceReader", table: str, error: SegmentSourceError) -> None:
        """Record that `table` failed in `reader`'s workspace; raise `error` unless tables are isolated."""
        if not self.isolate_tables:
            raise error
        line = f"{reader.label}: {table}: {error}"
        self.failed_tables.append(line)
        logger.warning("%s failed and keeps what it had; the rest goes on: %s", f"{reader.label}: {table}", error)

    @property
    def warnings(self) -> List[str]:
        """Values, items and listings the run could not take as they came, one line each."""
        return [line for reader in self.readers for line in reader.warnings]

    @property
    def stats(self) -> Dict[str, Any]:
        """Requests, retries and rate-limit waits of every workspace's client, summed."""
        total: Dict[str, Any] = {"requests": 0, "retries": 0, "rate_limited": 0, "waited_seconds": 0.0}
        for reader in self.readers:
            stats = reader.client.stats
            for name in total:
                total[name] += getattr(stats, name)
            total["waited_seconds"] += reader.client.limiter.waited_seconds
        return total


def table_counts(pipeline: dlt.Pipeline, tables: List[str]) -> List[Tuple[str, int, Optional[int]]]:
    """(table, rows in the current-state table, rows in its history or None without one)."""
    existing = set(pipeline.default_schema.data_table_names(seen_data_only=True))
    counts = []
    with pipeline.sql_client() as client:
        for table in tables:
            current = _count(client, table) if table in existing else 0
            history = table + HISTORY_SUFFIX
            versions = _count(client, history) if history in existing else None
            counts.append((table, current, versions))
    return counts


def _count(client: Any, table: str) -> int:
    return client.execute_sql(f"SELECT count(*) FROM {client.make_qualified_table_name(table)}")[0][0]


def describe_location(pipeline: dlt.Pipeline) -> str:
    """Where the loaded tables are, without any password."""
    credentials: Any = pipeline.destination_client().config.credentials  # the destination's own spec
    name = pipeline.destination.destination_name
    dataset = pipeline.dataset_name
    if name == "duckdb":
        return f"DuckDB file {credentials.database}, schema {dataset}"
    if name == "postgres":
        return f"PostgreSQL database {credentials.database} on {credentials.host}:{credentials.port}, schema {dataset}"
    if name == "snowflake":
        return f"Snowflake database {credentials.database} (account {credentials.host}), schema {dataset.upper()}"
    return f"{name}, dataset {dataset}"
