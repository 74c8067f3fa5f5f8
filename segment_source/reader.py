"""Reads one workspace's endpoints into loadable rows.

Rows are the API's items, shaped by their endpoint (catalog metadata reduced, links built),
with secrets masked, the parent's id and `workspaceId` set. Parent lists (warehouses, spaces,
tracking plans, destinations, functions) are fetched once per run and shared with their
children. `read` returns a `Read`: the pages, and which rows of the destination tables they
replace (the merge scope): the whole workspace for a full listing, or only the changed parents'
children.

What the reader does not trust (issue 10):
- a listing is read whole before its rows go out; when its items disagree with the
  `totalEntries` its pages announced, or a key repeats, it is read again (`LISTING_REREADS` more
  times); if it still disagrees, the read is *unconfirmed*: its scope shrinks to the keys it read
  (see `Read.keep`), so rows of objects it could not confirm stay, and no version of theirs is
  retired;
- a key is loaded once per table per run (`_fresh`): the same object twice in one load would
  give it two open versions in `<table>_history`;
- an item without its key (or with a null one) is left out, with one warning naming the
  endpoint and the item's position;
- values are made loadable (`loadable_row`): integers beyond 64 bits become text, a declared
  boolean that arrives as text becomes NULL beside a `<field>__raw` text column;
- a variant listing (functions per resourceType) that fails costs only that variant
  (`Read.failures`); a parent listing that failed is not asked again by its children.

Child listings (one per parent) run `max_concurrency` at a time (`_fan_out`): what they share
(keys seen, warnings, a read's counters) changes under the reader's lock.
"""

import logging
import re
import string
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Deque, Dict, FrozenSet, Iterator, List, Mapping, Optional, Sequence, Set, Tuple
from urllib.parse import urlencode

from segment_source import redaction
from segment_source.client import Listing, SegmentClient
from segment_source.endpoints import ENDPOINTS, EmbeddedEndpoint, Endpoint, Incremental, Row, column_name
from segment_source.errors import AuthenticationError, NotFoundError, SegmentSourceError, UnexpectedResponseError

logger = logging.getLogger("segment_source")

Key = Tuple[Any, ...]
"""A row's values in its table's key columns (`Endpoint.key`)."""

_SQL_SAFE = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")
FEATURE_PROBE = 3
"""A child endpoint whose first requests (up to this many) all answer 404 is missing as a
feature; a 404 after that, or after a success, is a parent deleted mid-run."""
LISTING_REREADS = 2
"""A listing whose items disagree with its announced total, or repeat a key, is read this many
more times before the run says so and keeps what it could not confirm."""
INT64 = (-(2**63), 2**63 - 1)
RAW_SUFFIX = "__raw"
"""Column beside a declared boolean that holds a value that arrived as text (`enabled__raw`)."""
TRUTH = {"true": True, "false": False}


@dataclass
class Read:
    """One endpoint of one workspace, as read in this run. `scope`, `keep` and `failures` are
    final once every page was read."""

    pages: Iterator[List[Row]]
    """The rows, a page at a time."""
    scope: Optional[str]
    """SQL condition on the destination tables of the rows these pages replace (the merge's
    `destination_scope`; None: replace nothing; append-only endpoints merge by key). It may use
    dlt's `{staging_table}` placeholder."""
    keep: Optional[str] = None
    """Which loaded rows count (the merge's `source_filter`, no placeholders); None: `scope`."""
    failures: List[Tuple[str, SegmentSourceError]] = field(default_factory=list)
    """Variants that failed ("resourceType=...", why): their rows stay as they were."""
    unconfirmed: int = 0
    """Listings (or parent lists) of this read that could not be confirmed."""


@dataclass(frozen=True)
class _ForChildren:
    """Of a parent's API item, what its children need once the listing was read: the child tables
    whose `only_for` test it passes, and its embedded children's items. The rest of the raw item is
    not kept (a listing of 24,000 destinations kept 170 MB of them until it was read whole)."""

    id: Any
    eligible_for: Tuple[str, ...] = ()
    embedded: Tuple[Tuple[str, List[Row]], ...] = ()


NOTHING_FOR_CHILDREN = _ForChildren(None)


@dataclass
class _Listing:
    """One listing as read: (what children need of the item, row) pairs, and whether it could be confirmed."""

    pairs: List[Tuple[_ForChildren, Row]]
    keys: List[Key]
    """Each pair's row's key, in the same order."""
    confirmed: bool = True


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
        max_concurrency: int = 1,
        keep_settings: FrozenSet[redaction.Path] = frozenset(),
    ) -> None:
        self.client = client
        self.max_concurrency = max(1, max_concurrency)
        """Child requests (one listing per parent) in flight at once."""
        self._keep_settings = keep_settings
        self._lock = threading.Lock()
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
        self._fields_for_children = {p: _fields_for_children([e for e in endpoints if e.parent == p]) for p in parents}
        self.label = label
        """How messages name this workspace before its slug is known ("workspace 2 of 3")."""
        self.failure: Optional[Exception] = None
        """Set when the workspace failed in this run: its other resources are not read."""
        self.warnings: List[str] = []
        """What the run could not take as it came (odd values, items without a key, listings that
        changed while paged), one line each, also logged."""
        self._fingerprint_key = fingerprint_key
        self._start_date = start_date or datetime.now(timezone.utc) - timedelta(days=90)
        """Where incremental endpoints start on their first run (the audit trail keeps 90 days)."""
        self._run_started = datetime.now(timezone.utc)
        self._info: Optional[Row] = None
        self._parents: Dict[str, Tuple[Read, List[Row]]] = {}
        """Parent table -> its read and its rows as its children need them (`_fields_for_children`)."""
        self._own_rows: Dict[str, List[Row]] = {}
        """Parent table -> its whole rows, until its own table takes them."""
        self._parent_failures: Dict[str, SegmentSourceError] = {}
        self._eligible: Dict[str, Set[str]] = {}
        self._embedded: Dict[str, List[Tuple[Row, List[Row]]]] = {}
        """Embedded child table -> (parent row, child items) of each parent read."""
        self._seen: Dict[str, Set[Tuple[Any, ...]]] = {}
        """Table -> keys loaded in this run."""
        self._warned: Set[Tuple[str, str]] = set()

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
    def identified(self) -> bool:
        """The workspace object was read: a later failure costs a table, not the workspace."""
        return self._info is not None

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
            return Read(iter([self._page_rows(endpoint, [self.info], {}, f"GET {endpoint.path}")]), self.scope)
        if endpoint.monthly:
            return Read(self._read_monthly(endpoint, state), None)
        if endpoint.incremental and not endpoint.parent:
            return Read(self._read_incremental(endpoint, endpoint.path, state, "cursor", {}), None)
        if endpoint.table in self._parent_tables:
            return self._parent_read(endpoint)
        if endpoint.parent:
            return self._read_children(endpoint, state)
        read = Read(iter(()), self.scope)
        read.pages = ([row for _, row in pairs] for pairs in self._read_list(endpoint, read))
        return read

    def _read_list(self, endpoint: Endpoint, read: Read) -> Iterator[List[Tuple[_ForChildren, Row]]]:
        """The rows of a top-level list, a listing at a time: one listing per variant (functions per
        resourceType), each item carrying its variant's parameters. A variant that fails costs only
        itself while another is read: its rows stay (`read.scope` leaves them out)."""
        variants, done, confirmed = endpoint.variants or ({},), [], True
        for params in variants:
            try:
                listing = self._listing(endpoint, endpoint.path, params, {})
            except AuthenticationError:
                raise
            except SegmentSourceError as ex:
                if len(variants) == 1:
                    raise
                read.failures.append((", ".join(f"{k}={v}" for k, v in params.items()), ex))
                continue
            done.append(params)
            confirmed = confirmed and listing.confirmed
            yield self._fresh(endpoint, listing)
        if not done:
            raise read.failures[0][1]  # every variant failed: the table fails (or is skipped) as one
        if read.failures:
            read.scope = f"{read.scope} AND {_variant_scope(done)}"
        if not confirmed:
            self._unconfirmed(endpoint, read)

    # ---- listings --------------------------------------------------------------------------

    def _listing(
        self,
        endpoint: Endpoint,
        path: str,
        params: Mapping[str, str],
        parent: Row,
        request_params: Optional[Mapping[str, str]] = None,
    ) -> _Listing:
        """A whole listing, read again (up to `LISTING_REREADS` times) while its items disagree with
        the announced total or repeat a key; unconfirmed if they still do. Items carry `params` (a
        variant's); `request_params` and the endpoint's own `params` only go with the request."""
        where = f"GET {path}" + (f"?{urlencode(params)}" if params else "")
        request = {**endpoint.params, **(request_params or {}), **params}
        for attempt in range(LISTING_REREADS + 1):
            listing, left_out = Listing(), []  # left_out: positions of items without a key
            pairs: List[Tuple[_ForChildren, Row]] = []
            keys: List[Key] = []
            for items in self.client.pages(path, endpoint.data_key, endpoint.page_size, request, listing):
                for position, item in enumerate(items, listing.served - len(items) + 1):
                    keyed = self._keyed_row(endpoint, dict(params, **item), parent)
                    if keyed is None:
                        left_out.append(position)
                    else:
                        pairs.append((self._for_children(endpoint, item), keyed[0]))
                        keys.append(keyed[1])
            repeated = len(keys) - len(set(keys))
            if listing.agrees and not repeated:
                break
            logger.info("%s changed while it was paged (read %s); reading it again", where, attempt + 1)
        for position in left_out:
            self._warn(
                f"{self.label}: left out item {position} of {where} in {endpoint.table}: it has no"
                f" {' / '.join(endpoint.primary_key)}."
            )
        if listing.agrees and not repeated:
            return _Listing(pairs, keys)
        announced = ", ".join(str(t) for t in sorted(listing.totals)) or "no total"
        self._warn(
            f"{self.label}: {endpoint.table}: {where} changed while it was paged, in each of"
            f" {LISTING_REREADS + 1} reads ({listing.served} items served, {announced} announced,"
            f" {repeated} repeated). Rows loaded before for objects this run could not confirm are kept;"
            " the next run reads it again."
        )
        return _Listing(pairs, keys, confirmed=False)

    def _fresh(self, endpoint: Endpoint, listing: _Listing) -> List[Tuple[_ForChildren, Row]]:
        """The listing's pairs whose keys this run has not loaded yet."""
        return [pair for pair, key in zip(listing.pairs, listing.keys, strict=True) if self._is_new(endpoint, key)]

    def _unconfirmed(self, endpoint: Endpoint, read: Read) -> None:
        """Shrink the read's scope to the keys it read: the rows of every other key stay, and none of
        their versions is retired (the loaded rows still count by the original scope)."""
        with self._lock:
            read.unconfirmed += 1
            if read.scope is None or read.keep is not None:
                return
            columns = ", ".join(endpoint.key)
            read.keep = read.scope
            read.scope = f"{read.scope} AND ({columns}) IN (SELECT {columns} FROM {{staging_table}} WHERE {read.scope})"

    # ---- parents and children --------------------------------------------------------------

    def _parent_read(self, endpoint: Endpoint) -> Read:
        """A parent list, read once per run and shared with its children; a failure is remembered,
        so children do not ask again."""
        read, _ = self._parent(endpoint)
        return Read(iter([self._own_rows.pop(endpoint.table, [])]), read.scope, read.keep, read.failures)

    def _parent(self, endpoint: Endpoint) -> Tuple[Read, List[Row]]:
        if endpoint.table in self._parent_failures:
            raise self._parent_failures[endpoint.table]
        if endpoint.table not in self._parents and endpoint.parent:
            # a parent that is a child itself (audiences of spaces): its pages are rows already, and
            # none of its children tests its items
            _, grandparents = self._parent(self._by_table[endpoint.parent])
            read = Read(iter(()), self.scope)
            rows = [row for page in self._each_parent(endpoint, grandparents, read) for row in page]
            self._keep_parent(endpoint, read, rows)
        if endpoint.table not in self._parents:
            read = Read(iter(()), self.scope)
            try:
                pairs = [pair for page in self._read_list(endpoint, read) for pair in page]
            except SegmentSourceError as ex:
                self._parent_failures[endpoint.table] = ex
                raise
            for kept, row in pairs:
                for table in kept.eligible_for:
                    self._eligible.setdefault(table, set()).add(kept.id)
                for table, items in kept.embedded:
                    self._embedded.setdefault(table, []).append((row, items))
            self._keep_parent(endpoint, read, [row for _, row in pairs])
        return self._parents[endpoint.table]

    def _keep_parent(self, endpoint: Endpoint, read: Read, rows: List[Row]) -> None:
        """The whole rows wait for the parent's own table; the children keep only the fields they
        use (2,600 destinations with their settings were held for the whole run before)."""
        fields = self._fields_for_children[endpoint.table]
        self._parents[endpoint.table] = (read, [{k: v for k, v in row.items() if k in fields} for row in rows])
        self._own_rows[endpoint.table] = rows

    def _read_children(self, endpoint: Endpoint, state: Dict[str, Any]) -> Read:
        assert endpoint.parent is not None
        parent_read, parents = self._parent(self._by_table[endpoint.parent])
        if isinstance(endpoint, EmbeddedEndpoint):
            embedded = self._embedded.get(endpoint.table, [])
            pages = (self._page_rows(endpoint, items, parent, "its parent's item") for parent, items in embedded)
            return Read(pages, self.scope)
        if endpoint.only_for:
            eligible = self._eligible.get(endpoint.table, set())
            parents = [p for p in parents if p["id"] in eligible]
        if endpoint.incremental:
            cursors = state.setdefault("cursors", {})
            return Read(self._each_parent(endpoint, parents, Read(iter(()), None), cursors), None)
        if endpoint.refetch_on:
            read = self._read_changed_children(endpoint, parents, state)
        else:
            read = Read(iter(()), self.scope)
            read.pages = self._each_parent(endpoint, parents, read)
        if parent_read.keep is not None or parent_read.failures:
            self._unconfirmed(endpoint, read)  # the children of parents this run did not see stay
        return read

    def _each_parent(
        self, endpoint: Endpoint, parents: List[Row], read: Read, cursors: Optional[Dict[str, Any]] = None
    ) -> Iterator[List[Row]]:
        """The children of every parent, skipping parents deleted mid-run (see `_FeatureProbe`)."""

        def read_one(parent: Row) -> Iterator[List[Row]]:
            path = _child_path(endpoint, parent)
            if cursors is not None:
                return self._read_incremental(endpoint, path, cursors, parent["id"], parent)
            return self._pages(endpoint, path, parent, read)

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
        column = column_name(endpoint.parent_key)
        scope = f"{self.scope} AND {column} IN ({', '.join(sql_literal(t) for t in touched)})" if touched else None
        read = Read(iter(()), scope)

        unconfirmed_parents: Set[str] = set()

        def read_one(parent: Row) -> Iterator[List[Row]]:
            path = _child_path(endpoint, parent)
            return self._pages(endpoint, path, parent, read, lambda: unconfirmed_parents.add(str(parent["id"])))

        def pages() -> Iterator[List[Row]]:
            for parent, rows, vanished in self._fan_out(changed, read_one):
                yield from rows
                if vanished or str(parent["id"]) in unconfirmed_parents:
                    versions.pop(str(parent["id"]))  # ask again next run
            state["versions"] = versions  # only once every changed parent was read

        read.pages = pages()
        return read

    def _pages(
        self, endpoint: Endpoint, path: str, parent: Row, read: Read, on_unconfirmed: Callable[[], None] = lambda: None
    ) -> Iterator[List[Row]]:
        if endpoint.is_object:
            yield self._page_rows(endpoint, [self.client.get(path, endpoint.data_key)], parent, f"GET {path}")
            return
        listing = self._listing(endpoint, path, {}, parent, _parent_params(endpoint, parent))
        if not listing.confirmed:
            on_unconfirmed()
            self._unconfirmed(endpoint, read)
        yield [row for _, row in self._fresh(endpoint, listing)]

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
        if not last and inc.first_run:
            since = max(since, self._run_started - inc.first_run)
        if inc.bucket:
            since = _round_down(since, inc.bucket)
        if inc.window:
            yield from self._read_windows(endpoint, path, since, cursors, key, parent)
            return
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
                yield self._page_rows(endpoint, fresh, parent, f"GET {path}")
            if not inc.start_param and len(fresh) < len(items):
                break  # newest first: the rest of the listing is older than the cursor
        if newest is not None:
            cursors[key] = newest

    def _read_windows(
        self, endpoint: Endpoint, path: str, since: datetime, cursors: Dict[str, Any], key: str, parent: Row
    ) -> Iterator[List[Row]]:
        """One summary per window from `since` to the run's start, each turned into rows dated by its
        window's start; the cursor moves with each window read, to the last (partial) one at the end."""
        inc = endpoint.incremental
        assert inc is not None and inc.window and inc.start_param and inc.end_param
        end = self._run_started - inc.lag
        window = since
        while window < end:
            params = {
                **endpoint.params,
                **_parent_params(endpoint, parent),
                inc.start_param: _format_time(window),
                inc.end_param: _format_time(min(window + inc.window, end)),
            }
            summary = self.client.get(path, endpoint.data_key, params)
            item = dict(summary, **{inc.cursor_field: _format_time(window)})
            items = endpoint.rows_of(item) if endpoint.rows_of else [item]
            yield self._page_rows(endpoint, items, parent, f"GET {path}?{inc.start_param}={params[inc.start_param]}")
            cursors[key] = _format_time(window)
            window += inc.window

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
                    yield self._page_rows(endpoint, items, {}, f"GET {endpoint.path}?{monthly.param}={period}")
                if self._run_started >= following + monthly.final_after:
                    final.append(period)
            month = following

    # ---- rows ------------------------------------------------------------------------------

    def _page_rows(self, endpoint: Endpoint, items: List[Row], parent: Row, where: str) -> List[Row]:
        """The loadable rows of `items`: those without a key left out (with a warning), keys
        already loaded in this run dropped."""
        rows = []
        for position, item in enumerate(items, 1):
            keyed = self._keyed_row(endpoint, item, parent)
            if keyed is None:
                self._warn(
                    f"{self.label}: left out item {position} of {where} in {endpoint.table}: it has no"
                    f" {' / '.join(endpoint.primary_key)}."
                )
            elif self._is_new(endpoint, keyed[1]):
                rows.append(keyed[0])
        return rows

    def _keyed_row(self, endpoint: Endpoint, item: Row, parent: Row) -> Optional[Tuple[Row, Key]]:
        """The row of `item` and its key, or None when it lacks (part of) its key."""
        try:
            row = self._row(endpoint, item, parent)
        except KeyError:  # a shape that needs the missing key (a link row needs the item's id)
            return None
        key = self._key(endpoint, row)
        return None if key is None else (row, key)

    def _for_children(self, endpoint: Endpoint, item: Row) -> _ForChildren:
        tests = self._children_with_tests.get(endpoint.table)
        embedded = self._embedded_children.get(endpoint.table)
        if not tests and not embedded:
            return NOTHING_FOR_CHILDREN
        return _ForChildren(
            item.get("id"),
            tuple(table for table, test in tests or () if test(item)),
            tuple((e.table, e.items_of(item)) for e in embedded or ()),
        )

    @staticmethod
    def _key(endpoint: Endpoint, row: Row) -> Optional[Key]:
        """The row's key (its table's key columns), or None if part of it is missing or null. Of
        two fields in one column (`sourceId`, `source_id`), the later one counts."""
        key_columns = endpoint.key
        values: Dict[str, Any] = {}
        for name, value in row.items():
            column = column_name(name)
            if column in key_columns:
                values[column] = value
        key = tuple(values.get(column) for column in key_columns)
        return None if any(value is None for value in key) else key

    def _is_new(self, endpoint: Endpoint, key: Key) -> bool:
        """True the first time a row's key is seen in this run: a key loaded twice in one load
        would get two open versions in the history."""
        with self._lock:
            seen = self._seen.setdefault(endpoint.table, set())
            if key in seen:
                return False
            seen.add(key)
        return True

    def _row(self, endpoint: Endpoint, item: Row, parent: Row) -> Row:
        if endpoint.shape is not None:
            item = endpoint.shape(item, parent)
        if endpoint.parent_key and parent:
            item = dict(item)
            item.setdefault(endpoint.parent_key, parent["id"])
        # masked here, before dlt sees the row: nothing plain reaches load packages, staging or state
        row = redaction.redact_item(item, endpoint, self._fingerprint_key, self._keep_settings)
        row.setdefault("workspaceId", self.workspace_id)
        return self._loadable(endpoint, row)

    def _loadable(self, endpoint: Endpoint, row: Row) -> Row:
        """`row` with values every destination takes, each change warned about once per field:

        - an integer beyond the signed 64-bit range (top level, or nested in settings) is kept
          exactly, as text: a decimal would round beyond 38 digits, and no JSON library of the
          destinations' loaders takes it as a number;
        - a declared boolean column (`Endpoint.column_types`, e.g. `enabled`) that arrives as text:
          "true" / "false" become the boolean; any other text (`"PAUSED"`) leaves the column NULL and
          is kept in `<field>__raw`, so the column keeps its type and documented queries keep working.
        """
        for name, value in list(row.items()):
            column = column_name(name)
            if endpoint.column_types.get(column) != "bool" or not isinstance(value, str):
                continue
            row[name] = TRUTH.get(value.strip().lower())
            if row[name] is None:
                row[name + RAW_SUFFIX] = value
            how = f"loaded as {row[name]}" if row[name] is not None else f"{column} is NULL, the text in {column}__raw"
            self._warn_once(
                endpoint.table,
                column,
                f"{endpoint.table}.{column} arrived as text ({value[:40]!r}), not a boolean: {how}.",
            )
        wide: List[str] = []
        row = _narrow(row, "", wide)
        for path in wide:
            self._warn_once(
                endpoint.table, path, f"{endpoint.table}.{path} holds an integer beyond 64 bits: kept exactly, as text."
            )
        return row

    def _warn(self, line: str) -> None:
        with self._lock:
            self.warnings.append(line)
        logger.warning(line)

    def _warn_once(self, table: str, field: str, what: str) -> None:
        with self._lock:
            if (table, field) in self._warned:
                return
            self._warned.add((table, field))
        self._warn(f"{self.label}: {what}")


def _narrow(value: Any, path: str, wide: List[str]) -> Any:
    """`value` with every integer outside the signed 64-bit range turned into its decimal text; the
    dotted paths of those integers are added to `wide` (`settings.limit`, `items[].size`).

    `value` itself when it holds none, as nearly every row does: copying every row, with the path
    of each of its values, made this 2.4 times as costly (0.100 against 0.042 ms a row, the medium
    workspace's sources and destinations)."""
    return _narrowed(value, path, wide) if _has_wide(value) else value


def _has_wide(value: Any) -> bool:
    # loops, not any(): a generator per container made the check half as fast again
    if isinstance(value, dict):
        for item in value.values():
            if _has_wide(item):
                return True
        return False
    if isinstance(value, list):
        for item in value:
            if _has_wide(item):
                return True
        return False
    return _is_wide(value)


def _is_wide(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and not INT64[0] <= value <= INT64[1]


def _narrowed(value: Any, path: str, wide: List[str]) -> Any:
    if isinstance(value, dict):
        return {k: _narrowed(v, f"{path}.{k}" if path else str(k), wide) for k, v in value.items()}
    if isinstance(value, list):
        return [_narrowed(v, f"{path}[]", wide) for v in value]
    if _is_wide(value):
        wide.append(path)
        return str(value)
    return value


def _variant_scope(done: List[Mapping[str, str]]) -> str:
    """The rows of the variants read: `resource_type IN ('DESTINATION', ...)`."""
    names = sorted({name for params in done for name in params})
    return " AND ".join(
        f"{column_name(name)} IN ({', '.join(sql_literal(params[name]) for params in done)})" for name in names
    )


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


def _parent_params(endpoint: Endpoint, parent: Row) -> Dict[str, str]:
    """The query parameters a child request takes from its parent (`functionId`, `sourceId`)."""
    return {param: str(parent[name]) for param, name in endpoint.parent_params.items()}


def _fields_for_children(children: Sequence[Endpoint]) -> FrozenSet[str]:
    """The fields of a parent's row that its children read: its id, the names in their paths
    (`{spaceId}`), their parameters taken from it and the field that says it changed."""
    fields = {"id"}
    for child in children:
        fields.update(name for _, name, _, _ in string.Formatter().parse(child.path) if name)
        fields.update(child.parent_params.values())
        if child.refetch_on:
            fields.add(child.refetch_on)
    return frozenset(fields)


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


def _parse_time(value: Any) -> datetime:
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _format_time(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
