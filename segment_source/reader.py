"""Reads one workspace's endpoints into loadable rows.

Rows are the API's items, shaped by their endpoint (catalog metadata reduced, links built),
with secrets masked, the parent's id and `workspaceId` set. Parent lists (warehouses, spaces,
tracking plans, destinations, functions) are fetched once per run and shared with their
children. `read` returns a `Read`: the pages, and which rows of the destination tables they
replace (the merge scope): the whole workspace for a full listing, or only the changed parents'
children.
"""

import re
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from segment_source import redaction
from segment_source.client import SegmentClient
from segment_source.endpoints import ENDPOINTS, EmbeddedEndpoint, Endpoint, Incremental, Row
from segment_source.errors import NotFoundError, UnexpectedResponseError

_SQL_SAFE = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")
FEATURE_PROBE = 3
"""A child endpoint whose first requests (up to this many) all answer 404 is missing as a
feature; a 404 after that, or after a success, is a parent deleted mid-run."""


@dataclass
class Read:
    """One endpoint of one workspace, as read in this run."""

    pages: Iterator[List[Row]]
    """The rows, a page at a time."""
    scope: Optional[str]
    """SQL condition on the destination tables of the rows these pages replace, once every page was
    read (None: replace nothing; append-only endpoints merge by key)."""


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
        fingerprint_key: Optional[str] = None,
        start_date: Optional[datetime] = None,
        endpoints: Sequence[Endpoint] = ENDPOINTS,
        max_concurrency: int = 1,
    ) -> None:
        self.client = client
        self.max_concurrency = max(1, max_concurrency)
        """Child requests (one listing per parent) in flight at once."""
        self._by_table = {e.table: e for e in endpoints}
        self._workspace_endpoint = next(e for e in endpoints if e.identifies_workspace)
        parents = {e.parent for e in endpoints if e.parent}
        self._parent_tables = frozenset(parents)
        self._children_with_tests = {
            p: [(e.table, e.only_for) for e in endpoints if e.parent == p and e.only_for] for p in parents
        }
        self._embedded_children = {
            p: [e for e in endpoints if e.parent == p and isinstance(e, EmbeddedEndpoint)] for p in parents
        }
        self.label = label
        """How messages name this workspace before its slug is known ("workspace 2 of 3")."""
        self.failure: Optional[Exception] = None
        """Set when the workspace failed in this run: its other resources are not read."""
        self._fingerprint_key = fingerprint_key
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

    def read(self, endpoint: Endpoint, state: Dict[str, Any]) -> Read:
        """The endpoint's rows and their merge scope. `state` is this workspace's resource state.
        Requests start here (the workspace, parent lists) and go on while the pages are read."""
        if endpoint.identifies_workspace:
            return Read(iter([[self._row(endpoint, self.info, {})]]), self.scope)
        if endpoint.monthly:
            return Read(self._read_monthly(endpoint, state), None)
        if endpoint.incremental and not endpoint.parent:
            return Read(self._read_incremental(endpoint, endpoint.path, state, "cursor", {}), None)
        if endpoint.table in self._parent_tables:
            return Read(iter([self._parent_rows(endpoint)]), self.scope)
        if endpoint.parent:
            return self._read_children(endpoint, state)
        return Read((self._rows(endpoint, items, {}) for items in self._list(endpoint)), self.scope)

    def _list(self, endpoint: Endpoint) -> Iterator[List[Row]]:
        """The API items of a top-level list, page by page: one listing per variant (functions per
        resourceType), each item carrying its variant's parameters."""
        for variant in endpoint.variants or ({},):
            params = {**endpoint.params, **variant}
            for items in self.client.pages(endpoint.path, endpoint.data_key, endpoint.page_size, params):
                yield [dict(variant, **item) for item in items]

    # ---- parents and children --------------------------------------------------------------

    def _parent_rows(self, endpoint: Endpoint) -> List[Row]:
        """The rows of a parent table, read once; a parent may itself be a child (audiences of spaces)."""
        if endpoint.table not in self._parents:
            rows = []
            if endpoint.parent:  # its pages are rows already, and it has no child that tests its items
                grandparents = self._parent_rows(self._by_table[endpoint.parent])
                self._parents[endpoint.table] = [
                    row for rows in self._each_parent(endpoint, grandparents) for row in rows
                ]
                return self._parents[endpoint.table]
            for items in self._list(endpoint):
                for item in items:
                    for table, test in self._children_with_tests[endpoint.table]:
                        if test(item):
                            self._eligible.setdefault(table, set()).add(item["id"])
                    rows.append(self._row(endpoint, item, {}))
                    for embedded in self._embedded_children[endpoint.table]:
                        self._embedded.setdefault(embedded.table, []).append((rows[-1], embedded.items_of(item)))
            self._parents[endpoint.table] = rows
        return self._parents[endpoint.table]

    def _read_children(self, endpoint: Endpoint, state: Dict[str, Any]) -> Read:
        assert endpoint.parent is not None
        parents = self._parent_rows(self._by_table[endpoint.parent])
        if isinstance(endpoint, EmbeddedEndpoint):
            embedded = self._embedded.get(endpoint.table, [])
            return Read((self._rows(endpoint, items, parent) for parent, items in embedded), self.scope)
        if endpoint.only_for:
            eligible = self._eligible.get(endpoint.table, set())
            parents = [p for p in parents if p["id"] in eligible]
        if endpoint.refetch_on:
            return self._read_changed_children(endpoint, parents, state)
        if endpoint.incremental:
            cursors = state.setdefault("cursors", {})
            return Read(self._each_parent(endpoint, parents, cursors), None)
        return Read(self._each_parent(endpoint, parents), self.scope)

    def _each_parent(
        self, endpoint: Endpoint, parents: List[Row], cursors: Optional[Dict[str, Any]] = None
    ) -> Iterator[List[Row]]:
        """The children of every parent, skipping parents deleted mid-run (see `_FeatureProbe`)."""

        def read_one(parent: Row) -> Iterator[List[Row]]:
            path = _child_path(endpoint, parent)
            if cursors is not None:
                return self._read_incremental(endpoint, path, cursors, parent["id"], parent)
            return self._pages(endpoint, path, parent)

        for _, pages, _ in self._fan_out(parents, read_one):
            yield from pages

    def _fan_out(
        self, parents: List[Row], read_one: Callable[[Row], Iterator[List[Row]]]
    ) -> Iterator[Tuple[Row, List[List[Row]], Optional[NotFoundError]]]:
        """(parent, its child pages, the 404 if it vanished) for every parent, in parent order.

        Parents are read one at a time until a child answers (so a missing feature costs
        `FEATURE_PROBE` requests, not one per parent), then up to `max_concurrency` at once: the
        requests are independent, and each still goes through the token's pacing and the
        endpoint's own limit. The order of the results does not depend on the concurrency."""

        def attempt(parent: Row) -> Tuple[Row, List[List[Row]], Optional[NotFoundError]]:
            try:
                return parent, list(read_one(parent)), None
            except NotFoundError as missing:
                return parent, [], missing

        probe = _FeatureProbe(len(parents))
        rest = iter(parents)
        for parent in rest:
            result = attempt(parent)
            probe.check(result[2])
            yield result
            if probe.confirmed and self.max_concurrency > 1:
                break
        else:
            return
        pool = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="segment-fan-out")
        in_flight: Deque["Future[Tuple[Row, List[List[Row]], Optional[NotFoundError]]]"] = deque()
        try:
            for parent in rest:
                in_flight.append(pool.submit(attempt, parent))
                if len(in_flight) >= 2 * self.max_concurrency:
                    yield in_flight.popleft().result()
            while in_flight:
                yield in_flight.popleft().result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _read_changed_children(self, endpoint: Endpoint, parents: List[Row], state: Dict[str, Any]) -> Read:
        """Children of the parents whose `refetch_on` field changed since the last run; the scope is
        those parents and the parents deleted since."""
        assert endpoint.refetch_on is not None and endpoint.parent_key is not None
        versions = {str(p["id"]): p.get(endpoint.refetch_on) for p in parents}
        known: Dict[str, Any] = state.get("versions", {})
        changed = [p for p in parents if str(p["id"]) not in known or known[str(p["id"])] != versions[str(p["id"])]]
        touched = sorted({str(p["id"]) for p in changed} | (set(known) - set(versions)))
        column = _snake(endpoint.parent_key)
        scope = f"{self.scope} AND {column} IN ({', '.join(sql_literal(t) for t in touched)})" if touched else None

        def pages() -> Iterator[List[Row]]:
            read_one = lambda parent: self._pages(endpoint, _child_path(endpoint, parent), parent)  # noqa: E731
            for parent, pages, vanished in self._fan_out(changed, read_one):
                yield from pages
                if vanished:
                    versions.pop(str(parent["id"]))  # ask again next run
            state["versions"] = versions  # only once every changed parent was read

        return Read(pages(), scope)

    def _pages(self, endpoint: Endpoint, path: str, parent: Row) -> Iterator[List[Row]]:
        if endpoint.is_object:
            yield [self._row(endpoint, self.client.get(path, endpoint.data_key), parent)]
            return
        params = {**endpoint.params, **({endpoint.parent_param: parent["id"]} if endpoint.parent_param else {})}
        for items in self.client.pages(path, endpoint.data_key, endpoint.page_size, params):
            yield self._rows(endpoint, items, parent)

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
        if inc.bucket:
            since = _round_down(since, inc.bucket)
        params: Dict[str, str] = dict(endpoint.params)
        if inc.start_param:
            params[inc.start_param] = _format_time(since)
        if inc.end_param:
            params[inc.end_param] = _format_time(self._run_started - inc.lag)
        newest = last
        for page in self.client.pages(path, endpoint.data_key, endpoint.page_size, params):
            items = [row for item in page for row in endpoint.rows_of(item)] if endpoint.rows_of else page
            # a bucket starting at `since` lies inside the window; an event at `since` was read before
            fresh = [
                i for i in items if i.get(inc.cursor_field) and _newer(_parse_time(i[inc.cursor_field]), since, inc)
            ]
            if fresh:
                top = max(str(i[inc.cursor_field]) for i in fresh)
                newest = top if newest is None or _parse_time(top) > _parse_time(newest) else newest
                yield self._rows(endpoint, fresh, parent)
            if not inc.start_param and len(fresh) < len(items):
                break  # newest first: the rest of the listing is older than the cursor
        if newest is not None:
            cursors[key] = newest

    def _read_monthly(self, endpoint: Endpoint, state: Dict[str, Any]) -> Iterator[List[Row]]:
        """Every month from `start_date`'s to the current one that is not final yet; a month is
        marked final once it was read whole after its `final_after`."""
        monthly = endpoint.monthly
        assert monthly is not None
        final: List[str] = state.setdefault("final_months", [])
        month = _month_start(self._start_date)
        while month <= self._run_started:
            following = _month_start(month + timedelta(days=32))
            period = _format_time(month)
            if period not in final:
                for items in self.client.pages(
                    endpoint.path, endpoint.data_key, endpoint.page_size, {monthly.param: period}
                ):
                    yield self._rows(endpoint, items, {})
                if self._run_started >= following + monthly.final_after:
                    final.append(period)
            month = following

    # ---- rows ------------------------------------------------------------------------------

    def _rows(self, endpoint: Endpoint, items: List[Row], parent: Row) -> List[Row]:
        return [self._row(endpoint, item, parent) for item in items]

    def _row(self, endpoint: Endpoint, item: Row, parent: Row) -> Row:
        if endpoint.shape is not None:
            item = endpoint.shape(item, parent)
        if endpoint.parent_key and parent:
            item = dict(item)
            item.setdefault(endpoint.parent_key, parent["id"])
        key = self._fingerprint_key or self.workspace_id
        row = redaction.redact_item(item, endpoint.secret_fields, endpoint.settings_fields, key, endpoint.code_fields)
        row.setdefault("workspaceId", self.workspace_id)
        return row


class _FeatureProbe:
    """Tells a feature missing in the workspace (every child 404s) from parents deleted mid-run."""

    def __init__(self, parents: int) -> None:
        self._needed = min(FEATURE_PROBE, parents)
        self._answered = 0

    @property
    def confirmed(self) -> bool:
        """A child answered: the feature exists, and a 404 now means a parent deleted mid-run."""
        return self._answered < 0

    def check(self, vanished: Optional[NotFoundError]) -> None:
        if vanished is None:
            self._answered = self._needed = -1  # a child answered: the feature exists
        elif self._answered >= 0:
            self._answered += 1
            if self._answered >= self._needed:
                raise vanished


def _child_path(endpoint: Endpoint, parent: Row) -> str:
    """The path of a parent's children: `{id}` is the parent's id, other names its fields (`{spaceId}`)."""
    return endpoint.path.format_map({**parent, "id": parent["id"]})


def _newer(moment: datetime, since: datetime, inc: Incremental) -> bool:
    return moment >= since if inc.bucket else moment > since


def _round_down(moment: datetime, bucket: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    return epoch + (moment - epoch) // bucket * bucket


def _month_start(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _parse_time(value: Any) -> datetime:
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _format_time(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
