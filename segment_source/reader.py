"""Reads one workspace's endpoints into loadable rows.

Rows are the API's items, shaped by their endpoint (catalog metadata reduced, links built),
with secrets masked, the parent's id and `workspaceId` set. Parent lists (warehouses, spaces,
tracking plans, destinations, functions) are fetched once per run and shared with their
children. `read` also says which rows of the destination tables the rows it read replace (the
merge scope): the whole workspace for a full listing, or only the changed parents' children.
"""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, FrozenSet, Generator, Iterator, List, Optional, Sequence, Set, Tuple

from segment_source import redaction
from segment_source.client import SegmentClient
from segment_source.endpoints import ENDPOINTS, Endpoint, Row, column_name
from segment_source.errors import NotFoundError, UnexpectedResponseError

_SQL_SAFE = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")
FEATURE_PROBE = 3
"""A child endpoint whose first requests (up to this many) all answer 404 is missing as a
feature; a 404 after that, or after a success, is a parent deleted mid-run."""

Pages = Generator[List[Row], None, Optional[str]]
"""Yields pages of rows; returns the SQL condition of the rows they replace (None: replace nothing)."""


@dataclass(frozen=True)
class EmbeddedEndpoint(Endpoint):
    """A child endpoint without requests of its own: its items come inside each parent item (the
    legacy Config API's tracking plans carry their rules). `path` is not requested."""

    items_of: Callable[[Row], List[Row]] = lambda item: []
    """The child items inside one parent API item."""


def sql_literal(value: Any) -> str:
    """A string literal for a merge scope. Ids are plain identifiers; anything else is refused,
    which keeps quoting rules (Snowflake treats backslashes as escapes) out of the picture."""
    text = str(value)
    if not _SQL_SAFE.match(text):
        raise UnexpectedResponseError(
            f"Segment returned the id {text[:40]!r}, which is not a plain identifier; please report this."
        )
    return f"'{text}'"


class WorkspaceReader:
    """One workspace, reached with one token."""

    def __init__(
        self,
        client: SegmentClient,
        label: str,
        fingerprint_key: str,
        start_date: Optional[datetime] = None,
        endpoints: Sequence[Endpoint] = ENDPOINTS,
        keep_settings: FrozenSet[redaction.Path] = frozenset(),
    ) -> None:
        self.client = client
        self._by_table = {e.table: e for e in endpoints}
        self._workspace_endpoint = self._by_table["workspace"]
        parents = {e.parent for e in endpoints if e.parent}
        self._parent_tables = frozenset(parents)
        self._children_with_tests = {p: [e for e in endpoints if e.parent == p and e.only_for] for p in parents}
        self._embedded_children = {
            p: [e for e in endpoints if e.parent == p and isinstance(e, EmbeddedEndpoint)] for p in parents
        }
        self.label = label
        """How messages name this workspace before its slug is known ("workspace 2 of 3")."""
        self.failure: Optional[Exception] = None
        """Set when the workspace failed in this run: its other resources are not read."""
        self._fingerprint_key = fingerprint_key
        """Never stored, logged or loaded: with it, anyone could test guesses against fingerprints."""
        self._keep_settings = keep_settings
        self._start_date = start_date or datetime.now(timezone.utc) - timedelta(days=90)
        """Where incremental endpoints start on their first run (the audit trail keeps 90 days)."""
        self._run_started = datetime.now(timezone.utc)
        self._info: Optional[Row] = None
        self._parents: Dict[str, List[Row]] = {}
        self._eligible: Dict[str, Set[str]] = {}
        self._embedded: Dict[str, List[Tuple[Row, List[Row]]]] = {}
        """Embedded child table -> (parent row, child items) of each parent read."""

    @property
    def info(self) -> Row:
        """The workspace object (`GET /`), fetched once."""
        if self._info is None:
            info = self.client.get(self._workspace_endpoint.path, self._workspace_endpoint.data_key)
            if not isinstance(info, dict) or "id" not in info:
                raise UnexpectedResponseError(
                    "GET / answered without a workspace id; the Public API may have changed; please report this."
                )
            sql_literal(info["id"])
            self._info = info
            self.label = f"workspace {info.get('slug') or info['id']}"
        return self._info

    @property
    def workspace_id(self) -> str:
        return str(self.info["id"])

    @property
    def scope(self) -> str:
        return f"workspace_id = {sql_literal(self.workspace_id)}"

    def read(self, endpoint: Endpoint, state: Dict[str, Any]) -> Pages:
        """The endpoint's rows, a page at a time. `state` is this workspace's resource state."""
        if endpoint.table == "workspace":
            yield [self._row(endpoint, self.info, {})]
        elif endpoint.incremental and not endpoint.parent:
            yield from self._read_incremental(endpoint, endpoint.path, state, "cursor", {})
            return None
        elif endpoint.table in self._parent_tables:
            yield self._parent_rows(endpoint)
        elif endpoint.parent:
            return (yield from self._read_children(endpoint, state))
        else:
            for items in self._list(endpoint):
                yield [self._row(endpoint, item, {}) for item in items]
        return self.scope

    def _list(self, endpoint: Endpoint) -> Iterator[List[Row]]:
        """The API items of a top-level list, page by page: one listing per variant (functions per
        resourceType), each item carrying its variant's parameters."""
        for params in endpoint.variants or ({},):
            for items in self.client.pages(endpoint.path, endpoint.data_key, endpoint.page_size, params):
                yield [dict(params, **item) for item in items]

    # ---- parents and children --------------------------------------------------------------

    def _parent_rows(self, endpoint: Endpoint) -> List[Row]:
        if endpoint.table not in self._parents:
            rows = []
            for items in self._list(endpoint):
                for item in items:
                    for child in self._children_with_tests[endpoint.table]:
                        if child.only_for(item):  # type: ignore[misc]
                            self._eligible.setdefault(child.table, set()).add(item["id"])
                    rows.append(self._row(endpoint, item, {}))
                    for embedded in self._embedded_children[endpoint.table]:
                        self._embedded.setdefault(embedded.table, []).append((rows[-1], embedded.items_of(item)))
            self._parents[endpoint.table] = rows
        return self._parents[endpoint.table]

    def _read_children(self, endpoint: Endpoint, state: Dict[str, Any]) -> Pages:
        parents = self._parent_rows(self._by_table[endpoint.parent])  # type: ignore[index]
        if isinstance(endpoint, EmbeddedEndpoint):
            for parent, items in self._embedded.get(endpoint.table, []):
                yield [self._row(endpoint, item, parent) for item in items]
            return self.scope
        if endpoint.only_for:
            eligible = self._eligible.get(endpoint.table, set())
            parents = [p for p in parents if p["id"] in eligible]
        if endpoint.refetch_on:
            return (yield from self._read_changed_children(endpoint, parents, state))
        probe = _FeatureProbe(len(parents))
        for parent in parents:
            path = endpoint.path.format(id=parent["id"])
            if endpoint.incremental:
                pages = self._read_incremental(endpoint, path, state.setdefault("cursors", {}), parent["id"], parent)
            else:
                pages = self._pages(endpoint, path, parent)
            probe.check((yield from self._skip_vanished(pages)))
        return None if endpoint.incremental else self.scope

    def _read_changed_children(self, endpoint: Endpoint, parents: List[Row], state: Dict[str, Any]) -> Pages:
        """Children of the parents whose `refetch_on` field changed since the last run."""
        versions = {str(p["id"]): p.get(endpoint.refetch_on) for p in parents}  # type: ignore[arg-type]
        known: Dict[str, Any] = state.get("versions", {})
        changed = [p for p in parents if str(p["id"]) not in known or known[str(p["id"])] != versions[str(p["id"])]]
        deleted = set(known) - set(versions)
        probe = _FeatureProbe(len(changed))
        for parent in changed:
            vanished = yield from self._skip_vanished(
                self._pages(endpoint, endpoint.path.format(id=parent["id"]), parent)
            )
            probe.check(vanished)
            if vanished:
                versions.pop(str(parent["id"]))  # ask again next run
        state["versions"] = versions
        touched = sorted({str(p["id"]) for p in changed} | deleted)
        if not touched:
            return None
        column = column_name(endpoint.parent_key)  # type: ignore[arg-type]
        return f"{self.scope} AND {column} IN ({', '.join(sql_literal(t) for t in touched)})"

    def _pages(self, endpoint: Endpoint, path: str, parent: Row) -> Iterator[List[Row]]:
        if endpoint.is_object:
            yield [self._row(endpoint, self.client.get(path, endpoint.data_key), parent)]
            return
        for items in self.client.pages(path, endpoint.data_key, endpoint.page_size):
            yield [self._row(endpoint, item, parent) for item in items]

    @staticmethod
    def _skip_vanished(pages: Iterator[List[Row]]) -> Generator[List[Row], None, Optional[NotFoundError]]:
        """Pass pages through; return the 404 if the parent has vanished (None if all went well)."""
        try:
            yield from pages
        except NotFoundError as missing:
            return missing
        return None

    # ---- incremental -----------------------------------------------------------------------

    def _read_incremental(
        self, endpoint: Endpoint, path: str, cursors: Dict[str, Any], key: str, parent: Row
    ) -> Iterator[List[Row]]:
        """Items newer than the last run's newest (minus the overlap); the cursor moves only
        once the whole listing was read."""
        inc = endpoint.incremental
        assert inc is not None
        last = cursors.get(key)
        since = _parse_time(last) - inc.overlap if last else self._start_date
        params: Dict[str, str] = {}
        if inc.start_param:
            params[inc.start_param] = _format_time(since)
        if inc.end_param:
            params[inc.end_param] = _format_time(self._run_started)
        newest = last
        for items in self.client.pages(path, endpoint.data_key, endpoint.page_size, params):
            fresh = [i for i in items if i.get(inc.cursor_field) and _parse_time(i[inc.cursor_field]) > since]
            if fresh:
                top = max(str(i[inc.cursor_field]) for i in fresh)
                newest = top if newest is None or _parse_time(top) > _parse_time(newest) else newest
                yield [self._row(endpoint, item, parent) for item in fresh]
            if not inc.start_param and len(fresh) < len(items):
                break  # newest first: the rest of the listing is older than the cursor
        if newest is not None:
            cursors[key] = newest

    # ---- rows ------------------------------------------------------------------------------

    def _row(self, endpoint: Endpoint, item: Row, parent: Row) -> Row:
        if endpoint.shape is not None:
            item = endpoint.shape(item, parent)
        if endpoint.parent_key and parent:
            item = dict(item)
            item.setdefault(endpoint.parent_key, parent["id"])
        # masked here, before dlt sees the row: nothing plain reaches load packages, staging or state
        row = redaction.redact_item(item, endpoint, self._fingerprint_key, self._keep_settings)
        row.setdefault("workspaceId", self.workspace_id)
        return row


class _FeatureProbe:
    """Tells a feature missing in the workspace (every child 404s) from parents deleted mid-run."""

    def __init__(self, parents: int) -> None:
        self._needed = min(FEATURE_PROBE, parents)
        self._answered = 0

    def check(self, vanished: Optional[NotFoundError]) -> None:
        if vanished is None:
            self._answered = self._needed = -1  # a child answered: the feature exists
        elif self._answered >= 0:
            self._answered += 1
            if self._answered >= self._needed:
                raise vanished


def _parse_time(value: Any) -> datetime:
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _format_time(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def split_tokens(api_key: Any) -> Tuple[str, ...]:
    """One token, or several: a TOML list, a JSON list, or a comma-separated string."""
    import json

    if isinstance(api_key, str) and api_key.strip().startswith("["):
        api_key = json.loads(api_key)
    values = api_key if isinstance(api_key, (list, tuple)) else str(api_key).split(",")
    return tuple(dict.fromkeys(str(v).strip() for v in values if str(v).strip()))
