"""The change feed: one row per object version change, derived from the `_history` tables after a load.

`record_changes(pipeline)` reads what the `<table>_history` tables (dlt `scd2`) gained since the last
time it ran, classifies each version and loads the result into the `changes` table of the same
dataset:

- a version whose `valid_from` is T, with an older version of the same key retired at T: `updated`;
  `fields_changed` names the columns that differ, the keys of settings objects (masked secrets
  compare by their fingerprint, so a rotation shows) and the nested lists (`labels`, `permissions`);
- a version whose `valid_from` is T with no predecessor retired at T: `created`;
- a version retired at T with no successor from T: `deleted`.

T, `changed_at`, is the boundary timestamp of the run that saw the change (dlt stamps both ends of a
version with it). Versions of a workspace's first run are `initial_load`: they describe what existed,
so alerts skip them.

Why a watermark kept in `changes` itself (the newest `changed_at` per history table) and not in dlt
state: the feed and its watermark commit in the same load, so a crash leaves both as they were and a
rerun redoes exactly the missing part; the load merges on (workspace, table, object, changed_at), so
nothing is ever doubled. Each run reads only versions that start or end after the watermark, one
history table at a time, and hands each table's changes to dlt before reading the next: memory grows
with the largest table's changes in the run, never with the history (the large simulated
workspace's first feed, 61,719 changes: 111 MiB above the process's start at the peak instead of
161 when the feed was read whole; 86 with `run_settings`' one DuckDB thread).
dlt loads the feed, so its DDL and types are dlt's on DuckDB, PostgreSQL and Snowflake; the reading
SQL here is plain (joins, `NOT EXISTS`, `IN`).

Who did it: a change carries the latest audit event on the same object (or, for links and rules,
the parent the event names: the warehouse, the tracking plan) between the version it replaces and the
run, preferring an event whose verb matches (`Source Modified` for an update). The audit trail is
read incrementally up to the start of the run, so the events are there when the change is recorded.
"""

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from itertools import chain
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import dlt
from dlt.common.schema.typing import TTableSchema
from dlt.common.schema.utils import get_nested_tables

from segment_source.endpoints import ENDPOINTS, HISTORY_SUFFIX, Endpoint

CHANGES_TABLE = "changes"
CHANGE_KEY = ("workspace_id", "table_name", "object_id", "changed_at")
CHANGE_COLUMNS: Dict[str, Dict[str, Any]] = {
    "workspace_id": {"data_type": "text", "nullable": False},
    "table_name": {"data_type": "text", "nullable": False},
    "object_id": {"data_type": "text", "nullable": False},
    "object_name": {"data_type": "text"},
    "change": {"data_type": "text", "nullable": False},
    "changed_at": {"data_type": "timestamp", "nullable": False},
    "fields_changed": {"data_type": "text"},
    "initial_load": {"data_type": "bool", "nullable": False},
    "actor_email": {"data_type": "text"},
    "actor": {"data_type": "text"},
    "audit_type": {"data_type": "text"},
}
# what names an object, in order of preference; a warehouse's name is in its settings
NAME_COLUMNS = ("name", "display_name", "title")
SETTINGS_NAME = "settings"
VERSION_COLUMNS = ("valid_from", "valid_to")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
AUDIT_VERBS = {"created": ("Created", "Connected"), "updated": ("Modified",), "deleted": ("Deleted", "Disconnected")}
BATCH = 500
"""Objects per query when reading full versions, nested rows and audit events (bounded IN lists)."""


@dataclass(frozen=True)
class Change:
    """One row of the `changes` table."""

    workspace_id: str
    table_name: str
    object_id: str
    object_name: Optional[str]
    change: str
    changed_at: datetime
    fields_changed: Tuple[str, ...] = ()
    initial_load: bool = False
    actor_email: Optional[str] = None
    actor: Optional[str] = None
    audit_type: Optional[str] = None

    def row(self) -> Dict[str, Any]:
        """The row to load: `fields_changed` as comma-separated text, which every warehouse filters with LIKE."""
        return dict(self.to_json(), changed_at=self.changed_at, fields_changed=",".join(self.fields_changed) or None)

    def to_json(self) -> Dict[str, Any]:
        return {
            "workspace_id": self.workspace_id,
            "table_name": self.table_name,
            "object_id": self.object_id,
            "object_name": self.object_name,
            "change": self.change,
            "changed_at": self.changed_at.isoformat(),
            "fields_changed": list(self.fields_changed),
            "initial_load": self.initial_load,
            "actor_email": self.actor_email,
            "actor": self.actor,
            "audit_type": self.audit_type,
        }

    def describe(self) -> str:
        name = f" {self.object_name!r}" if self.object_name else ""
        fields = f": {', '.join(self.fields_changed)}" if self.fields_changed else ""
        who = f" by {self.actor_email or self.actor}" if self.actor_email or self.actor else ""
        return f"{self.change} {self.table_name} {self.object_id}{name}{fields}{who}"


@dataclass
class ChangeSummary:
    """What `record_changes` added to the feed. `changes` holds every change that is not part of a
    workspace's first load (those are only counted, in `initial`)."""

    changes: List[Change] = field(default_factory=list)
    initial: int = 0

    def count(self, kind: str) -> int:
        return sum(1 for c in self.changes if c.change == kind)

    @property
    def recorded(self) -> int:
        """Rows added to the `changes` table, a workspace's first load included."""
        return len(self.changes) + self.initial

    @property
    def created(self) -> int:
        return self.count("created")

    @property
    def updated(self) -> int:
        return self.count("updated")

    @property
    def deleted(self) -> int:
        return self.count("deleted")

    def describe(self, first: int = 10) -> str:
        """ "Changes since the last run: N created, M updated, K deleted", then the first few."""
        lines = [f"Changes since the last run: {self.created} created, {self.updated} updated, {self.deleted} deleted"]
        if self.initial:
            lines[0] += f" (and {self.initial} objects recorded as a workspace's first load)"
        lines += [f"  {c.describe()}" for c in self.changes[:first]]
        if len(self.changes) > first:
            lines.append(f"  ... and {len(self.changes) - first} more (SELECT * FROM changes)")
        return "\n".join(lines)

    def to_json(self) -> Dict[str, Any]:
        """`{"created": N, "updated": M, "deleted": K, "initial_load": I, "changes": [...]}`; each
        change has the `changes` table's columns, `changed_at` in ISO 8601 and `fields_changed` a list."""
        return {
            "created": self.created,
            "updated": self.updated,
            "deleted": self.deleted,
            "initial_load": self.initial,
            "changes": [c.to_json() for c in self.changes],
        }


def history_endpoints() -> List[Endpoint]:
    return [e for e in ENDPOINTS if e.history]


def record_changes(pipeline: dlt.Pipeline) -> ChangeSummary:
    """Add to the `changes` table what the history tables gained since the last call; return it.

    Call it after each `pipeline.run(segment_source(...))`. A call that finds nothing new loads
    nothing; calling it after several runs records each run's changes with that run's time.
    """
    schema = pipeline.default_schema
    loaded = set(schema.data_table_names(seen_data_only=True))
    endpoints = [e for e in history_endpoints() if e.table + HISTORY_SUFFIX in loaded]
    if not endpoints:
        return ChangeSummary()
    summary = ChangeSummary()
    with pipeline.sql_client() as client:
        feed = ChangeFeed(client, schema.tables, has_feed=CHANGES_TABLE in loaded)
        rows = _rows(feed.changes_by_table(endpoints, has_audit="audit_events" in loaded), summary)
        first = next(rows, None)
        if first is not None:
            # one table's changes at a time, straight to dlt: a first load (every object) is never
            # held whole, and the load below starts without it
            pipeline.extract(
                chain([first], rows),
                table_name=CHANGES_TABLE,
                write_disposition={"disposition": "merge", "strategy": "delete-insert"},
                primary_key=list(CHANGE_KEY),
                columns=CHANGE_COLUMNS,  # type: ignore[arg-type]  # plain dicts of column hints, as dlt takes them
                schema=schema,
            )
    if first is not None:
        pipeline.normalize()
        pipeline.load()
    summary.changes.sort(key=lambda c: (c.changed_at, c.table_name, c.change, c.object_id))
    return summary


def _rows(tables: Iterable[List[Change]], summary: ChangeSummary) -> Iterator[List[Dict[str, Any]]]:
    """The rows of each table's changes; `summary` keeps the changes that are not a first load's."""
    for changes in tables:
        summary.changes += [c for c in changes if not c.initial_load]
        summary.initial += sum(1 for c in changes if c.initial_load)
        if changes:
            yield [c.row() for c in changes]


class ChangeFeed:
    """Reads history tables through a dlt SQL client (any destination) and turns versions into changes."""

    def __init__(self, client: Any, tables: Dict[str, TTableSchema], has_feed: bool) -> None:
        self.client = client
        self.tables = tables
        self.has_feed = has_feed

    # ---- SQL (plain enough for DuckDB, PostgreSQL and Snowflake) ------------------------------

    def table(self, name: str) -> str:
        return str(self.client.make_qualified_table_name(name))

    def col(self, name: str, alias: Optional[str] = None) -> str:
        quoted = str(self.client.escape_column_name(name))
        return f"{alias}.{quoted}" if alias else quoted

    def columns_of(self, table: str) -> List[str]:
        return list(self.tables[table]["columns"])

    def name_column(self, endpoint: Endpoint) -> Optional[str]:
        """The column that names an object (a warehouse's is inside `settings`), if any."""
        columns = self.columns_of(endpoint.table + HISTORY_SUFFIX)
        names = [c for c in NAME_COLUMNS if c in columns]
        if not names and SETTINGS_NAME in endpoint.settings_fields:
            names = [SETTINGS_NAME]
        return names[0] if names else None

    def label_columns(self, endpoint: Endpoint) -> List[str]:
        """The key, the naming column (if any) and the version's bounds and id."""
        name = self.name_column(endpoint)
        return [*endpoint.key, *([name] if name else []), "valid_from", "valid_to", "_dlt_id"]

    def same_key(self, endpoint: Endpoint, a: str, b: str) -> str:
        return " AND ".join(f"{self.col(k, a)} = {self.col(k, b)}" for k in endpoint.key)

    def new_versions_sql(self, endpoint: Endpoint) -> str:
        """Versions that started after the watermark, with the id and start of the version they replace
        (NULL for a created object)."""
        history = self.table(endpoint.table + HISTORY_SUFFIX)
        select = ", ".join(self.col(c, "n") for c in self.label_columns(endpoint))
        return (
            f"SELECT {select}, {self.col('_dlt_id', 'o')}, {self.col('valid_from', 'o')} FROM {history} n"
            f" LEFT JOIN {history} o ON {self.same_key(endpoint, 'o', 'n')}"
            f" AND {self.col('valid_to', 'o')} = {self.col('valid_from', 'n')}"
            f" WHERE {self.col('valid_from', 'n')} > %s"
        )

    def deleted_versions_sql(self, endpoint: Endpoint) -> str:
        """Versions retired after the watermark that no version of the same key follows."""
        history = self.table(endpoint.table + HISTORY_SUFFIX)
        select = ", ".join(self.col(c, "o") for c in self.label_columns(endpoint))
        return (
            f"SELECT {select} FROM {history} o WHERE {self.col('valid_to', 'o')} > %s"
            f" AND NOT EXISTS (SELECT 1 FROM {history} n WHERE {self.same_key(endpoint, 'n', 'o')}"
            f" AND {self.col('valid_from', 'n')} = {self.col('valid_to', 'o')})"
        )

    def first_loads_sql(self, endpoint: Endpoint) -> str:
        """Per workspace, the first run this history table saw after the watermark."""
        return (
            f"SELECT {self.col('workspace_id')}, min({self.col('valid_from')})"
            f" FROM {self.table(endpoint.table + HISTORY_SUFFIX)} WHERE {self.col('valid_from')} > %s"
            f" GROUP BY {self.col('workspace_id')}"
        )

    def feed_state_sql(self, by: str, aggregate: str) -> str:
        return (
            f"SELECT {self.col(by)}, {aggregate}({self.col('changed_at')})"
            f" FROM {self.table(CHANGES_TABLE)} GROUP BY {self.col(by)}"
        )

    def rows_by_sql(self, table: str, column: str, count: int) -> Tuple[List[str], str]:
        """All data columns of `table` where `column` is one of `count` values, ordered for comparing."""
        columns = [c for c in self.columns_of(table) if c not in VERSION_COLUMNS and c != "_dlt_load_id"]
        order = f" ORDER BY {self.col('_dlt_list_idx')}" if "_dlt_list_idx" in columns else ""
        placeholders = ", ".join(["%s"] * count)
        sql = (
            f"SELECT {', '.join(self.col(c) for c in columns)} FROM {self.table(table)}"
            f" WHERE {self.col(column)} IN ({placeholders}){order}"
        )
        return columns, sql

    def audit_sql(self, count: int) -> str:
        placeholders = ", ".join(["%s"] * count)
        columns = ", ".join(self.col(c) for c in ("resource_id", "timestamp", "actor_email", "actor", "type"))
        return (
            f"SELECT {columns} FROM {self.table('audit_events')}"
            f" WHERE {self.col('workspace_id')} = %s AND {self.col('resource_id')} IN ({placeholders})"
            f" ORDER BY {self.col('timestamp')}"
        )

    # ---- reading and classifying -------------------------------------------------------------

    def query(self, sql: str, *args: Any) -> List[Sequence[Any]]:
        return list(self.client.execute_sql(sql, *args) or [])

    def changes_by_table(self, endpoints: Sequence[Endpoint], has_audit: bool) -> Iterator[List[Change]]:
        """Every change after each table's watermark, one table at a time, marked initial where it is a
        workspace's first load."""
        watermarks: Dict[str, datetime] = {}
        first_loads: Dict[str, datetime] = {}
        if self.has_feed:
            watermarks = {t: at for t, at in self.query(self.feed_state_sql("table_name", "max"))}
            first_loads = {w: at for w, at in self.query(self.feed_state_sql("workspace_id", "min"))}
        # a workspace new to the feed: its first run is the earliest version any table gained since
        for endpoint in endpoints:
            for workspace, at in self.query(self.first_loads_sql(endpoint), self.watermark(endpoint, watermarks)):
                if workspace not in first_loads or at < first_loads[workspace]:
                    first_loads[workspace] = at
        for endpoint in endpoints:
            found = self.table_changes(endpoint, self.watermark(endpoint, watermarks), first_loads)
            if has_audit:
                found = self.with_actors(endpoint, found)
            yield [change for change, _ in found]

    def watermark(self, endpoint: Endpoint, watermarks: Dict[str, datetime]) -> datetime:
        return watermarks.get(endpoint.table, EPOCH)

    def table_changes(
        self, endpoint: Endpoint, watermark: datetime, first_loads: Dict[str, datetime]
    ) -> List[Tuple[Change, Optional[datetime]]]:
        """(change, since when the state it replaces was seen: the audit window) of one table."""
        width = len(self.label_columns(endpoint))
        found: List[Tuple[Change, Optional[datetime]]] = []
        updates: List[Tuple[Change, str, str, datetime]] = []
        for row in self.query(self.new_versions_sql(endpoint), watermark):
            old_id, old_from = row[width], row[width + 1]
            if old_id is None:
                found.append((self.change_of(endpoint, row, "created", first_loads), None))
            else:
                updates.append(
                    (self.change_of(endpoint, row, "updated", first_loads), old_id, row[width - 1], old_from)
                )
        for row in self.query(self.deleted_versions_sql(endpoint), watermark):
            found.append((self.change_of(endpoint, row, "deleted", first_loads), row[width - 3]))
        history = endpoint.table + HISTORY_SUFFIX
        for start in range(0, len(updates), BATCH):
            batch = updates[start : start + BATCH]
            versions = self.versions(history, [i for _, old, new, _ in batch for i in (old, new)])
            for change, old, new, since in batch:
                fields = diff(versions.get(old, {}), versions.get(new, {}), endpoint.settings_fields)
                found.append((replace(change, fields_changed=fields), since))
        return found

    def change_of(self, endpoint: Endpoint, row: Sequence[Any], kind: str, first_loads: Dict[str, datetime]) -> Change:
        """A change from a row of `label_columns`: the new version's (its start is the change's
        time) or, for a deletion, the retired version's (its end is)."""
        keys = len(endpoint.key)
        name_column = self.name_column(endpoint)
        name = row[keys] if name_column else None
        if name_column == SETTINGS_NAME:
            name = _settings_name(name)
        valid_from, valid_to = row[keys + bool(name_column)], row[keys + bool(name_column) + 1]
        changed_at = valid_to if kind == "deleted" else valid_from
        workspace = row[0]
        return Change(
            workspace_id=workspace,
            table_name=endpoint.table,
            object_id=":".join(str(k) for k in row[1:keys]),
            object_name=None if name is None else str(name),
            change=kind,
            changed_at=changed_at,
            initial_load=kind == "created" and first_loads.get(workspace) == changed_at,
        )

    def versions(self, history: str, version_ids: List[str]) -> Dict[str, Dict[str, Any]]:
        """Full versions by `_dlt_id`, with their nested lists (labels, permissions...) as values."""
        columns, sql = self.rows_by_sql(history, "_dlt_id", len(version_ids))
        out = {
            row[columns.index("_dlt_id")]: dict(zip(columns, row, strict=True)) for row in self.query(sql, *version_ids)
        }
        for child, values in self.nested(history, list(out)).items():
            for version_id, content in values.items():
                out[version_id][child] = content
        return out

    def nested(self, parent: str, parent_ids: List[str]) -> Dict[str, Dict[str, List[Any]]]:
        """Direct child table -> parent id -> its rows (each with its own nested rows), in list order."""
        out: Dict[str, Dict[str, List[Any]]] = {}
        if not parent_ids:
            return out
        for child in get_nested_tables(self.tables, parent, max_nesting=1, include_self=False):
            name = str(child["name"])
            columns, sql = self.rows_by_sql(name, "_dlt_parent_id", len(parent_ids))
            rows = [dict(zip(columns, row, strict=True)) for row in self.query(sql, *parent_ids)]
            grandchildren = self.nested(name, [r["_dlt_id"] for r in rows])
            content: Dict[str, List[Any]] = {}
            for r in rows:
                value = {k: v for k, v in r.items() if not k.startswith("_dlt_")}
                for grandchild, by_parent in grandchildren.items():
                    value[grandchild] = by_parent.get(r["_dlt_id"], [])
                content.setdefault(r["_dlt_parent_id"], []).append(value)
            out[name[len(parent) + 2 :]] = content
        return out

    def with_actors(
        self, endpoint: Endpoint, found: List[Tuple[Change, Optional[datetime]]]
    ) -> List[Tuple[Change, Optional[datetime]]]:
        """Each change (not of a first load) with the audit event that most likely made it."""
        out = [item for item in found if item[0].initial_load]
        pending = [item for item in found if not item[0].initial_load]
        for workspace in sorted({c.workspace_id for c, _ in pending}):
            of_workspace = [(c, since) for c, since in pending if c.workspace_id == workspace]
            resources = sorted({r for c, _ in of_workspace for r in audit_resources(c)})
            events: Dict[str, List[Sequence[Any]]] = {}
            for start in range(0, len(resources), BATCH):
                batch = resources[start : start + BATCH]
                for event in self.query(self.audit_sql(len(batch)), workspace, *batch):
                    events.setdefault(event[0], []).append(event)
            for change, since in of_workspace:
                candidates = [
                    e
                    for r in audit_resources(change)
                    for e in events.get(r, [])
                    if e[1] <= change.changed_at and (since is None or e[1] > since)
                ]
                best = best_event(change.change, candidates)
                if best is not None:
                    change = replace(change, actor_email=best[2], actor=best[3], audit_type=best[4])
                out.append((change, since))
        return out


def audit_resources(change: Change) -> List[str]:
    """The resource ids an audit event about this change names: the object, or its parent (the first
    key column: a link's warehouse or tracking plan, a rule's plan)."""
    first = change.object_id.split(":", 1)[0]
    return [change.object_id] if first == change.object_id else [change.object_id, first]


def best_event(kind: str, events: Iterable[Sequence[Any]]) -> Optional[Sequence[Any]]:
    """The latest event whose verb matches the change, else the latest event."""
    ordered = sorted(events, key=lambda e: e[1])
    matching = [e for e in ordered if set(str(e[4]).split(" ")) & set(AUDIT_VERBS[kind])]
    best = matching or ordered
    return best[-1] if best else None


def diff(old: Dict[str, Any], new: Dict[str, Any], settings_fields: Sequence[str]) -> Tuple[str, ...]:
    """Names of what differs between two versions: columns, `settings.<key>` and nested lists."""
    changed: List[str] = []
    for name in sorted(set(old) | set(new)):
        if name.startswith("_dlt_") or name in VERSION_COLUMNS:
            continue
        before, after = old.get(name), new.get(name)
        if name in settings_fields:
            before, after = json_value(before), json_value(after)
            if isinstance(before, dict) and isinstance(after, dict):
                changed += [f"{name}.{k}" for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
                continue
        if before != after:
            changed.append(name)
    return tuple(changed)


def json_value(value: Any) -> Any:
    """A JSON column as Python: DuckDB returns text, PostgreSQL a dict, Snowflake text."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _settings_name(settings: Any) -> Optional[str]:
    value = json_value(settings)
    return value.get("name") if isinstance(value, dict) else None
