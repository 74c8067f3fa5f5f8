"""The dlt source: one resource per endpoint, each filling a current-state table and its history.

Per resource (say `sources`) and per run:
- `sources` holds the current state. It is merged with `delete-insert` scoped to the workspaces
  read completely in this run: their old rows are replaced, so a deleted object disappears and a
  renamed one shows its new name, while rows of a workspace that failed stay untouched.
- `sources_history` keeps every version (dlt's `scd2`), with `valid_from` / `valid_to`; the same
  scope retires versions of objects that vanished, and only in workspaces read completely.
An empty table marker goes out every run, so a workspace that now has no objects of a kind
still gets its old rows removed.
"""

from typing import Any, Dict, Iterator, List, Optional, Sequence

import dlt
from dlt.common.typing import TSecretStrValue
from dlt.extract.resource import DltResource

from segment_source.client import SegmentClient, resolve_base_url
from segment_source.endpoints import ENDPOINTS, Endpoint
from segment_source.reader import WorkspaceReader

HISTORY_SUFFIX = "_history"
VALIDITY_COLUMNS = ["valid_from", "valid_to"]
NOTHING = "1 = 0"
"""The merge scope before any workspace is read completely: delete and retire nothing."""


@dlt.source(name="segment", section="segment_source")
def segment_source(
    api_key: TSecretStrValue = dlt.secrets.value,
    region: str = "us",
    base_url: Optional[str] = None,
    history: bool = True,
    fingerprint_key: Optional[TSecretStrValue] = None,
) -> List[DltResource]:
    """A Segment workspace's configuration, one resource per object type.

    Args:
        api_key: the workspace's Public API token (`[sources.segment_source] api_key`).
        region: "us" (api.segmentapis.com) or "eu" (eu1.api.segmentapis.com).
        base_url: overrides the region's URL, e.g. the simulator's http://127.0.0.1:<port>.
        history: also keep every version of every object in `<table>_history`.
        fingerprint_key: key of the fingerprints of masked secrets; defaults to the workspace id.
    """
    readers = [WorkspaceReader(SegmentClient(resolve_base_url(region, base_url), api_key), fingerprint_key)]
    return [endpoint_resource(endpoint, readers, history) for endpoint in ENDPOINTS]


def endpoint_resource(endpoint: Endpoint, readers: Sequence[WorkspaceReader], history: bool) -> DltResource:
    tables = [endpoint.table, endpoint.table + HISTORY_SUFFIX] if history else [endpoint.table]

    def extract() -> Iterator[Any]:
        complete: List[str] = []
        for reader in readers:
            for rows in reader.pages(endpoint):
                for table in tables:
                    yield dlt.mark.with_table_name(rows, table)
            complete.append(reader.workspace_id)
        if complete:
            for table in tables:
                hints = table_hints(endpoint, table, workspace_scope(complete))
                yield dlt.mark.with_hints(dlt.mark.materialize_table_schema(), hints, create_table_variant=True)

    resource = dlt.resource(extract, name=endpoint.table, columns={"workspace_id": {"data_type": "text"}})
    for table in tables:
        resource.apply_hints(create_table_variant=True, **table_hints(endpoint, table, NOTHING))
    return resource


def table_hints(endpoint: Endpoint, table: str, scope: str) -> Dict[str, Any]:
    columns: Dict[str, Any] = {"workspace_id": {"data_type": "text", "nullable": False}, **endpoint.columns}
    if table.endswith(HISTORY_SUFFIX):
        write_disposition = {
            "disposition": "merge",
            "strategy": "scd2",
            "validity_column_names": VALIDITY_COLUMNS,
            "destination_scope": scope,
        }
        return dict(table_name=table, write_disposition=write_disposition, columns=columns)
    write_disposition = {"disposition": "merge", "strategy": "delete-insert", "destination_scope": scope}
    return dict(table_name=table, write_disposition=write_disposition, columns=columns, primary_key=endpoint.primary_key)


def workspace_scope(workspace_ids: Sequence[str]) -> str:
    """SQL selecting the rows of these workspaces; ids are plain identifiers (checked on read)."""
    return "workspace_id IN ({})".format(", ".join(f"'{w}'" for w in workspace_ids))
