"""Current state plus history: how one endpoint's reads become a dlt resource and its tables.

Per resource (say `sources`) and per run:
- `sources` holds the current state, merged with `delete-insert` scoped to what this run read
  completely (each workspace whose listing finished; for rules, the tracking plans that
  changed): those rows are replaced, so a deleted object disappears and a renamed one shows its
  new name, while rows of a workspace or a table that failed (a function type that failed), or of
  a feature the token cannot see, stay.
- `sources_history` keeps every version (dlt's `scd2`), with `valid_from` / `valid_to`; the same
  scope retires versions of objects that vanished.
The scope is both the merge's `destination_scope` (which rows may go) and its `source_filter`
(which loaded rows count), so rows of a workspace that failed half-way are discarded; a listing
that changed while it was paged replaces only the keys it read (`Read.keep`). An empty
table marker goes out every run, so a workspace that now has no objects of a kind still gets its
old rows removed. Append-only endpoints (audit events, sync reports) and time series (usage, event
volume) are merged by key instead: a window read again replaces its rows, and nothing is deleted.

Why not dlt's `rest_api_resources`: several tokens feed one table with merges scoped per
workspace; a child that 404s from the start means a missing feature, not a failed run; children
are read again only for parents that changed; one table unions several listings (function
types). Why not `dlt.sources.incremental`: cursors are kept per workspace and per parent (dlt's
is one per resource, dlt#2429), a cursor may move only after a listing was read to its end, and
`endTime` is pinned to the run's start; `WorkspaceReader` keeps them in the resource state.
"""

from typing import Any, Dict, Iterator, List, Optional, Sequence

import dlt
from dlt.extract.hints import make_hints
from dlt.extract.resource import DltResource

from segment_source.endpoints import HISTORY_SUFFIX, Endpoint, Row
from segment_source.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    SegmentApiError,
    SegmentSourceError,
)
from segment_source.reader import WorkspaceReader
from segment_source.report import RunReport

VALIDITY_COLUMNS = ["valid_from", "valid_to"]
BATCH_ROWS = 1000
NOTHING = "1 = 0"
"""The merge scope before anything was read completely: delete, retire and insert nothing."""


def endpoint_resource(
    endpoint: Endpoint, readers: Sequence[WorkspaceReader], history: bool, report: RunReport
) -> DltResource:
    """The resource of one endpoint, read from every workspace, into its current (and history) table.

    What fails costs as little as it can: a 401, or a workspace that cannot be identified (`GET /`),
    costs that workspace; any other error costs this table in that workspace (with variants, only
    the variant), whose rows then stay as they were: its scope is left out of the merge."""
    tables = [endpoint.table, endpoint.table + HISTORY_SUFFIX] if history and endpoint.history else [endpoint.table]

    def extract() -> Iterator[Any]:
        state = dlt.current.resource_state()
        scopes, keeps = [], []
        for reader in readers:
            if reader.failure is not None:
                continue
            try:
                reader.info  # noqa: B018 - the workspace itself: every scope needs its id
                stateful = endpoint.merges_by_key or endpoint.refetch_on
                read = reader.read(endpoint, state.setdefault(reader.workspace_id, {}) if stateful else {})
                for rows in batches(read.pages):
                    if report.progress:
                        report.progress.page(reader, endpoint, len(rows))
                    for table in tables:
                        yield dlt.mark.with_table_name(rows, table)
            except (PermissionDeniedError, NotFoundError) as ex:
                report.skip(reader, endpoint, ex)
                continue
            except SegmentSourceError as ex:
                if isinstance(ex, SegmentApiError) and ex.status == 406 and endpoint.version != "v1":
                    report.skip(reader, endpoint, ex)  # a beta or alpha endpoint not served in its version
                elif isinstance(ex, AuthenticationError) or not reader.identified:
                    reader.failure = ex
                    report.fail(reader, ex)
                else:
                    report.fail_table(reader, endpoint.table, ex)
                continue
            for variant, why in read.failures:
                report.fail_table(reader, f"{endpoint.table} ({variant})", why)
            if read.scope:
                scopes.append(read.scope)
                keeps.append(read.keep or read.scope)
        failures = [r.failure for r in readers]
        if all(failures):
            raise failures[0]  # type: ignore[misc]  # all set: the first is an exception
        if report.progress:
            report.progress.finished(endpoint)
        if endpoint.merges_by_key or not scopes:
            return
        scope, keep = (" OR ".join(f"({s})" for s in conditions) for conditions in (scopes, keeps))
        for table in tables:
            hints = make_hints(**table_hints(endpoint, table, scope, keep))
            yield dlt.mark.with_hints(dlt.mark.materialize_table_schema(), hints, create_table_variant=True)

    resource = dlt.resource(extract, name=endpoint.table, selected=endpoint.default)
    for table in tables:
        resource.apply_hints(create_table_variant=True, **table_hints(endpoint, table, NOTHING))
    return resource


def batches(pages: Iterator[List[Row]], size: int = BATCH_ROWS) -> Iterator[List[Row]]:
    """Pages joined into batches of about `size` rows: the fan-out's pages hold a few rows each,
    and dlt's cost is per item yielded (it computes the table's hints for each)."""
    batch: List[Row] = []
    for page in pages:
        batch.extend(page)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def table_hints(endpoint: Endpoint, table: str, scope: str, keep: Optional[str] = None) -> Dict[str, Any]:
    """dlt hints of `table`: `scope` selects the rows the merge may replace or retire, `keep` (default:
    `scope`) the loaded rows that count."""
    keep = keep or scope
    columns = endpoint.columns
    if endpoint.merges_by_key:
        # append-only: rows are never deleted; a re-read overlap replaces the same keys
        write_disposition: Dict[str, Any] = {"disposition": "merge", "strategy": "delete-insert"}
        return dict(table_name=table, write_disposition=write_disposition, columns=columns, primary_key=endpoint.key)
    if table.endswith(HISTORY_SUFFIX):
        write_disposition = {
            "disposition": "merge",
            "strategy": "scd2",
            "validity_column_names": VALIDITY_COLUMNS,
            "destination_scope": scope,
            "source_filter": keep,
        }
        return dict(table_name=table, write_disposition=write_disposition, columns=columns)
    write_disposition = {
        "disposition": "merge",
        "strategy": "delete-insert",
        "destination_scope": scope,
        "source_filter": keep,
    }
    return dict(table_name=table, write_disposition=write_disposition, columns=columns, primary_key=endpoint.key)
