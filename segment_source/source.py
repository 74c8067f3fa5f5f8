"""The dlt source: one resource per endpoint, each filling a current-state table and its history.

Per resource (say `sources`) and per run:
- `sources` holds the current state, merged with `delete-insert` scoped to what this run read
  completely (each workspace whose listing finished; for rules, the tracking plans that
  changed): those rows are replaced, so a deleted object disappears and a renamed one shows its
  new name, while rows of a workspace that failed, or of a feature the token cannot see, stay.
- `sources_history` keeps every version (dlt's `scd2`), with `valid_from` / `valid_to`; the same
  scope retires versions of objects that vanished.
The scope is both the merge's `destination_scope` (which rows may go) and its `source_filter`
(which loaded rows count), so rows of a workspace that failed half-way are discarded. An empty
table marker goes out every run, so a workspace that now has no objects of a kind still gets its
old rows removed. Append-only endpoints (audit events, sync reports) are merged by key instead.
"""

import logging
from datetime import datetime, timezone
from typing import Any, Dict, FrozenSet, Generator, Iterator, List, Optional, Sequence, Union

import dlt
from dlt.common.typing import TSecretValue
from dlt.extract.resource import DltResource

from segment_source import redaction
from segment_source.client import SegmentClient, resolve_base_url
from segment_source.endpoints import ENDPOINTS, HISTORY_SUFFIX, Endpoint, column_name
from segment_source.errors import (
    ConfigurationError,
    MissingTokenError,
    NotFoundError,
    PermissionDeniedError,
    SegmentSourceError,
)
from segment_source.reader import WorkspaceReader, split_tokens
from segment_source.report import RunReport

VALIDITY_COLUMNS = ["valid_from", "valid_to"]
NOTHING = "1 = 0"
"""The merge scope before anything was read completely: delete, retire and insert nothing."""
RATE_LIMITS = [(e.path, e.rate_limit, e.rate_limit_per_parent) for e in ENDPOINTS if e.rate_limit]

logger = logging.getLogger("segment_source")


@dlt.source(name="segment", section="segment_source")
def segment_source(
    api_key: TSecretValue = dlt.secrets.value,
    region: str = "us",
    base_url: Optional[str] = None,
    history: bool = True,
    fingerprint_key: Optional[TSecretValue] = None,
    start_date: Optional[str] = None,
    keep_settings: Optional[Union[str, List[str]]] = None,
    report: Optional[RunReport] = None,
) -> List[DltResource]:
    """A Segment workspace's configuration (or several workspaces'), one resource per object type.

    Args:
        api_key: a Public API token, or several (a list, or comma-separated), one per workspace.
        region: "us" (api.segmentapis.com) or "eu" (eu1.api.segmentapis.com).
        base_url: overrides the region's URL, e.g. the simulator's http://127.0.0.1:<port>.
        history: also keep every version of every object in `<table>_history`.
        fingerprint_key: key of the fingerprints of masked secrets; by default each workspace's key
            is derived from its own token (`redaction.token_key`).
        start_date: where the first run of the audit trail (and sync reports) starts, ISO 8601;
            defaults to 90 days ago, the audit trail's retention.
        keep_settings: settings paths to load unmasked, e.g. `["destinations.settings.region"]`
            (a list, or comma-separated).
        report: collects skipped resources and failed workspaces, for the caller to show.
    """
    tokens = split_tokens(api_key)
    if not tokens:
        raise MissingTokenError()
    url = resolve_base_url(region, base_url)
    start = _parse_start_date(start_date)
    keep = keep_paths(keep_settings, ENDPOINTS, "segment_source")
    readers = [
        WorkspaceReader(
            SegmentClient(url, token, RATE_LIMITS),
            f"workspace {i} of {len(tokens)}",
            fingerprint_key or redaction.token_key(token),
            start,
            keep_settings=keep,
        )
        for i, token in enumerate(tokens, 1)
    ]
    report = report if report is not None else RunReport()
    report.readers = readers
    return [endpoint_resource(endpoint, readers, history, report) for endpoint in ENDPOINTS]


def endpoint_resource(
    endpoint: Endpoint, readers: Sequence[WorkspaceReader], history: bool, report: RunReport
) -> DltResource:
    tables = [endpoint.table, endpoint.table + HISTORY_SUFFIX] if history and endpoint.history else [endpoint.table]

    def extract() -> Iterator[Any]:
        state = dlt.current.resource_state()
        scopes = []
        for reader in readers:
            if reader.failure is not None:
                continue
            try:
                workspace_state = (
                    state.setdefault(reader.workspace_id, {}) if endpoint.incremental or endpoint.refetch_on else {}
                )
                scope = yield from _to_tables(reader.read(endpoint, workspace_state), tables)
            except (PermissionDeniedError, NotFoundError) as ex:
                report.skip(reader, endpoint, ex)
                continue
            except SegmentSourceError as ex:
                reader.failure = ex
                report.fail(reader, ex)
                continue
            if scope:
                scopes.append(scope)
        if all(r.failure is not None for r in readers):
            raise readers[0].failure  # type: ignore[misc]
        if endpoint.incremental or not scopes:
            return
        scope = " OR ".join(f"({s})" for s in scopes)
        for table in tables:
            yield dlt.mark.with_hints(
                dlt.mark.materialize_table_schema(), table_hints(endpoint, table, scope), create_table_variant=True
            )

    resource = dlt.resource(extract, name=endpoint.table, selected=endpoint.default)
    for table in tables:
        resource.apply_hints(create_table_variant=True, **table_hints(endpoint, table, NOTHING))
    return resource


def _to_tables(
    pages: Generator[List[Dict[str, Any]], None, Optional[str]], tables: List[str]
) -> Generator[Any, None, Optional[str]]:
    """Send each page to every table of the resource; return what the read returns (its scope)."""
    while True:
        try:
            page = next(pages)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        for table in tables:
            yield dlt.mark.with_table_name(page, table)


def table_hints(endpoint: Endpoint, table: str, scope: str) -> Dict[str, Any]:
    columns = endpoint.columns
    if endpoint.incremental:
        # append-only: rows are never deleted; a re-read overlap replaces the same keys
        write_disposition: Dict[str, Any] = {"disposition": "merge", "strategy": "delete-insert"}
        return dict(table_name=table, write_disposition=write_disposition, columns=columns, primary_key=endpoint.key)
    if table.endswith(HISTORY_SUFFIX):
        write_disposition = {
            "disposition": "merge",
            "strategy": "scd2",
            "validity_column_names": VALIDITY_COLUMNS,
            "destination_scope": scope,
            "source_filter": scope,
        }
        return dict(table_name=table, write_disposition=write_disposition, columns=columns)
    write_disposition = {
        "disposition": "merge",
        "strategy": "delete-insert",
        "destination_scope": scope,
        "source_filter": scope,
    }
    return dict(table_name=table, write_disposition=write_disposition, columns=columns, primary_key=endpoint.key)


def keep_paths(keep_settings: Any, endpoints: Sequence[Endpoint], section: str) -> FrozenSet[redaction.Path]:
    """`keep_settings` as paths (table, column, keys...); a path outside every settings column is refused."""
    columns = sorted(f"{e.table}.{column_name(f)}" for e in endpoints for f in e.settings_fields)
    paths = []
    for text in split_tokens(keep_settings or ()):
        path = tuple(text.split("."))
        if ".".join(path[:2]) not in columns or len(path) < 3 or not all(path):
            raise ConfigurationError(
                f"keep_settings names {text!r}, which is not a setting inside a settings column. Each entry is"
                " <table>.<column>.<key>[.<key>...], the keys as they appear in the JSON column, e.g."
                f" destinations.settings.region; the columns are {', '.join(columns)}. Fix [sources.{section}]"
                f" keep_settings in .dlt/config.toml (or SOURCES__{section.upper()}__KEEP_SETTINGS)."
            )
        paths.append(path)
    return frozenset(paths)


def _parse_start_date(value: Optional[str]) -> Optional[datetime]:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(
            f"start_date {value!r} is not an ISO 8601 date. Set [sources.segment_source] start_date"
            ' in .dlt/config.toml (or SOURCES__SEGMENT_SOURCE__START_DATE) to e.g. "2026-01-31".'
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
