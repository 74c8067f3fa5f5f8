"""The workspace model, the layer above generation: one simulated Segment workspace, the edits
tests make between runs, and the audit trail those edits leave.

Items are stored exactly as the Public API serves them (camelCase, full embedded `metadata`), so
the server only pages through them. Items are copy-on-write: an edit replaces an item's dict, so
a listing handed to the server is a consistent snapshot without copying every item. Every
plaintext secret put into an item is recorded in `secrets`, which lets a test prove that none of
them reaches a loaded table. How items are made up is in `generate.py` (`SimulatedWorkspace` is its
`ItemGenerator`); `generate_workspace` and `demo_workspace` make whole workspaces. The model knows
no HTTP: `disabled` says which features are off, and the routes (`routes.py`) answer for them.
"""

import copy
import random
import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple

from segment_simulator import catalog
from segment_simulator.generate import (
    EVENT_TYPES,
    LABELS,
    SIZES,
    ItemGenerator,
    Size,
    audience_activation,
    audience_schedules,
    daily_event_count,
    daily_usage,
    delivery_metrics,
    function_versions,
    iso,
)

# Every kind of item, with what the audit trail calls it: (noun of the event type, resourceType).
KIND_NAMES: Dict[str, Tuple[str, str]] = {
    "sources": ("Source", "source"),
    "destinations": ("Destination", "destination"),
    "warehouses": ("Warehouse", "warehouse"),
    "spaces": ("Space", "space"),
    "audiences": ("Audience", "audience"),
    "tracking_plans": ("Tracking Plan", "tracking_plan"),
    "functions": ("Function", "function"),  # the noun is the function template's: "Source Function"
    "filters": ("Destination Filter", "destination_filter"),
    "subscriptions": ("Destination Subscription", "destination_subscription"),
    "users": ("User", "user"),
    "groups": ("User Group", "user_group"),
    "roles": ("Role", "role"),
    "computed_traits": ("Computed Trait", "computed_trait"),
    "reverse_etl_models": ("Reverse ETL Model", "reverse_etl_model"),
    "transformations": ("Transformation", "transformation"),
}
KINDS = tuple(KIND_NAMES)

# The field that names an item, where it is not `name` (warehouses: `settings.name`).
NAME_FIELDS = {"functions": "displayName", "filters": "title"}

# Deleting an item deletes the items that refer to it in this field, as Segment does.
CASCADES: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "sources": (("destinations", "sourceId"), ("reverse_etl_models", "sourceId"), ("transformations", "sourceId")),
    "destinations": (("filters", "destinationId"), ("subscriptions", "destinationId")),
    "spaces": (("audiences", "spaceId"), ("computed_traits", "spaceId")),
    "reverse_etl_models": (("subscriptions", "modelId"),),
}
# Kinds that permissions name (as their role or one of their resources).
PERMISSION_KINDS = ("roles", "sources", "warehouses", "spaces")

_MILLISECOND = timedelta(milliseconds=1)
MTU_KINDS = ("anonymous", "anonymousIdentified", "identified", "neverIdentified")
WORKSPACE_UNIQUE_USERS = 85
"""Percent of the sum of its sources' users a workspace counts once (users seen by several sources)."""


class SimulatedWorkspace(ItemGenerator):
    """One workspace's configuration, as Segment would serve it to the token that owns it."""

    def __init__(self, slug: str = "acme", name: Optional[str] = None, seed: int = 0) -> None:
        self._rng = random.Random(f"{seed}:{slug}")
        # the audit trail draws from its own generator, so that it shifts no item's draws
        self._audit_rng = random.Random(f"{seed}:{slug}:audit")
        # so do privacy requests, added after the kinds above
        self._privacy_rng = random.Random(f"{seed}:{slug}:privacy")
        self._engage_rng = random.Random(f"{seed}:{slug}:engage")
        self._credentials_rng = random.Random(f"{seed}:{slug}:credentials")
        self.credentials = []
        # function id -> the instances of an insert function
        self.insert_instances = {}
        # audience id -> ids of the destinations it is connected to
        self.audience_destinations = {}
        self._lock = threading.RLock()
        self._clock = datetime(2024, 1, 1, tzinfo=timezone.utc)
        self.secrets = set()
        self.id = self.new_id()
        self.slug = slug
        self.name = name or slug.replace("-", " ").title()
        self.items = {kind: {} for kind in KINDS}
        # warehouse id -> ids of the sources connected to it, in connection order
        self.warehouse_sources = {}
        # tracking plan id -> ids of the sources connected to it; and -> its rules
        self.plan_sources = {}
        self.plan_rules = {}
        # warehouse id -> its sync reports, oldest first
        self.syncs = {}
        # deletion and suppression requests, newest first; suppressed users
        self.regulations = []
        self.suppressions = []
        self.labels = [dict(label) for label in LABELS]
        # the audit trail, oldest first; edits made through this object are the token's
        self.events: List[Dict[str, Any]] = []
        self.token_actor = "public-api-token/" + "".join(
            self._audit_rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(8)
        )
        self._event_number = self._audit_rng.randint(140_000_000, 150_000_000)
        self._last_event_at: Optional[datetime] = None
        # feature (plan feature or permission group) -> the status its endpoints answer with
        self.disabled: Dict[str, int] = {}

    # ---- features --------------------------------------------------------------------------

    def disable(self, feature: str, status: int = 403) -> None:
        """Make the endpoints of `feature` answer `status` (403: the token lacks a permission,
        404: the plan lacks the feature), e.g. `ws.disable("engage", 404)`."""
        self.disabled[feature] = status

    def enable(self, feature: str) -> None:
        self.disabled.pop(feature, None)

    # ---- reading: what each endpoint serves ----------------------------------------------------

    def info(self) -> Dict[str, Any]:
        return {"id": self.id, "slug": self.slug, "name": self.name}

    def listing(self, kind: str) -> List[Dict[str, Any]]:
        """The items of `kind`, in creation order. Treat them as read-only."""
        with self._lock:
            return list(self.items[kind].values())

    def get(self, kind: str, item_id: str) -> Dict[str, Any]:
        try:
            return self.items[kind][item_id]
        except KeyError:
            raise KeyError(f"{kind} has no item {item_id!r}") from None

    def ids(self, kind: str) -> List[str]:
        return list(self.items[kind])

    def connected_sources(self, warehouse_id: str) -> List[Dict[str, Any]]:
        """The sources connected to a warehouse."""
        return self._linked_sources("warehouses", warehouse_id)

    def tracking_plan_sources(self, plan_id: str) -> List[Dict[str, Any]]:
        """The sources connected to a tracking plan."""
        return self._linked_sources("tracking_plans", plan_id)

    def audiences_of(self, space_id: str) -> List[Dict[str, Any]]:
        return self._children("audiences", "spaces", "spaceId", space_id)

    def audiences_with_schedules(self, space_id: str) -> List[Dict[str, Any]]:
        """A space's audiences with their `schedules` (`include=schedules`)."""
        return [dict(a, schedules=audience_schedules(a)) for a in self.audiences_of(space_id)]

    def destination_connections(self, space_id: str, audience_id: str) -> List[Dict[str, Any]]:
        """The destinations an audience goes to (`SimpleDestination`); `KeyError` for an unknown audience."""
        with self._lock:
            audience = self.get("audiences", audience_id)
            if audience["spaceId"] != space_id:
                raise KeyError(f"space {space_id!r} has no audience {audience_id!r}")
            connected = [
                self.items["destinations"][d]
                for d in self.audience_destinations.get(audience_id, [])
                if d in self.items["destinations"]
            ]
        return [
            {
                "id": d["id"],
                "name": d["name"],
                "sourceId": d["sourceId"],
                "enabled": d["enabled"],
                "createdAt": audience["createdAt"],
                "updatedAt": audience["updatedAt"],
                "settings": d["settings"],
                "destinationId": d["id"],
                "metadata": d["metadata"],
                "connectionSettings": {"audienceKey": audience["key"], "syncMode": "ADD_REMOVE"},
            }
            for d in connected
        ]

    def audience_activations(self, space_id: str, audience_id: str) -> List[Dict[str, Any]]:
        """What an audience sends to each of its destinations (`ActivationOutput`), one activation per
        destination connection; `KeyError` for an unknown audience."""
        audience = self.get("audiences", audience_id)
        return [
            audience_activation(self.id, audience, connection["id"])
            for connection in self.destination_connections(space_id, audience_id)
        ]

    def computed_traits_of(self, space_id: str) -> List[Dict[str, Any]]:
        return self._children("computed_traits", "spaces", "spaceId", space_id)

    def filters_of(self, destination_id: str) -> List[Dict[str, Any]]:
        return self._children("filters", "destinations", "destinationId", destination_id)

    def subscriptions_of(self, destination_id: str) -> List[Dict[str, Any]]:
        """A destination's subscriptions: none unless it is an Actions destination."""
        return self._children("subscriptions", "destinations", "destinationId", destination_id)

    def rules(self, plan_id: str) -> List[Dict[str, Any]]:
        """A tracking plan's rules (several versions of one rule are several rules)."""
        with self._lock:
            self.get("tracking_plans", plan_id)
            return list(self.plan_rules[plan_id])

    def functions_of(self, resource_type: str) -> List[Dict[str, Any]]:
        """The functions of one resource type, as the list serves them: summaries, without code
        and settings (`get("functions", id)` is the whole function)."""
        fields = ("id", "resourceType", "createdAt", "createdBy", "displayName", "description", "logoUrl", "catalogId")
        return [{k: f[k] for k in fields} for f in self.listing("functions") if f["resourceType"] == resource_type]

    def function_versions(self, function_id: str) -> List[Dict[str, Any]]:
        """A function's saved versions, newest first; `KeyError` for an unknown function."""
        return function_versions(self.get("functions", function_id))

    def syncs_of(self, warehouse_id: str) -> List[Dict[str, Any]]:
        """A warehouse's sync reports, newest first."""
        with self._lock:
            self.get("warehouses", warehouse_id)
            return self.syncs[warehouse_id][::-1]

    def audit_events(
        self,
        start_time: Optional[datetime] = None,
        end_time: Optional[datetime] = None,
        resource_id: Optional[str] = None,
        resource_type: Optional[str] = None,
    ) -> List[Dict[str, Any]]:
        """The audit trail, newest first: events strictly after `start_time` and strictly before
        `end_time`, of one resource or resource type if given."""
        # timestamps all have the same form, so they compare as strings
        after = iso(start_time) if start_time else ""
        before = iso(end_time) if end_time else "~"
        with self._lock:
            events = self.events[::-1]
        return [
            e
            for e in events
            if after < e["timestamp"] < before
            and resource_id in (None, e["resourceId"])
            and resource_type in (None, e["resourceType"])
        ]

    def regulations_of(self, status: Optional[str] = None, types: Optional[List[str]] = None) -> List[Dict[str, Any]]:
        """The deletion and suppression requests, newest first, of one status and some types if given."""
        with self._lock:
            listed = list(self.regulations)
        return [r for r in listed if status in (None, r["status"]) and (not types or r["regulationType"] in types)]

    def insert_function_instances(self, function_id: str) -> List[Dict[str, Any]]:
        """The instances of an insert function; `KeyError` for an unknown function."""
        with self._lock:
            self.get("functions", function_id)
            return list(self.insert_instances.get(function_id, []))

    def event_volume(self, start: datetime, end: datetime, group_by: List[str]) -> List[Dict[str, Any]]:
        """`SourceEventVolumeV1` per source and event type (as `group_by` asks) of the days that
        start in [start, end) and have begun; each with its daily series."""
        now = datetime.now(timezone.utc)
        first = start.replace(hour=0, minute=0, second=0, microsecond=0)
        first += timedelta(days=1) if first < start else timedelta(0)
        days = [first + timedelta(days=d) for d in range((end - first).days + 1)]
        days = [d for d in days if d < end and d <= now]
        sources = {s["id"]: s for s in self.listing("sources")}
        groups: Dict[Tuple[Optional[str], Optional[str]], Dict[datetime, int]] = {}
        for source_id in sources:
            for event_type in EVENT_TYPES:
                group = (source_id if "source" in group_by else None, event_type if "eventType" in group_by else None)
                series = groups.setdefault(group, {})
                for day in days:
                    series[day] = series.get(day, 0) + daily_event_count(source_id, event_type, day, now)
        result = []
        for (grouped_source, grouped_type), series in groups.items():
            item: Dict[str, Any] = {"total": sum(series.values())}
            if grouped_source:
                s = sources[grouped_source]
                item["source"] = {"id": s["id"], "name": s["name"], "slug": s["slug"]}
            if grouped_type:
                item["eventType"] = grouped_type
            item["series"] = [{"time": d.strftime("%Y-%m-%dT%H:%M:%SZ"), "count": c} for d, c in series.items()]
            result.append(item)
        return result

    def delivery_metrics(self, destination_id: str, source_id: str, start: datetime, end: datetime) -> Dict[str, Any]:
        """`DeliveryMetricsSummaryBeta` of a destination over the days that start in [start, end) and
        have begun; `KeyError` for an unknown destination or one that `source_id` does not feed."""
        destination = self.get("destinations", destination_id)
        if destination["sourceId"] != source_id:
            raise KeyError(f"source {source_id!r} is not linked to destination {destination_id!r}")
        now = datetime.now(timezone.utc)
        first = start.replace(hour=0, minute=0, second=0, microsecond=0)
        first += timedelta(days=1) if first < start else timedelta(0)
        days = [first + timedelta(days=d) for d in range(max((end - first).days + 1, 0))]
        metrics = delivery_metrics(destination_id, [d for d in days if d < end and d <= now], now)
        if not destination["enabled"]:
            metrics = [dict(m, total=0, breakdown=[dict(b, value=0) for b in m.get("breakdown", [])]) for m in metrics]
        return {
            "sourceId": source_id,
            "destinationMetadataId": destination["metadata"]["id"],
            "metrics": metrics,
        }

    def usage_days(self, period: datetime) -> List[datetime]:
        """The days of the month starting at `period` that have usage: up to today."""
        today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        days = [period + timedelta(days=d) for d in range(31)]
        return [d for d in days if d.month == period.month and d <= today]

    def mtu_usage(self, period: datetime) -> List[Dict[str, Any]]:
        """`UsersPerSourceSnapshotV1` of every source and day of the month at `period`, by day."""
        following = (period + timedelta(days=32)).replace(day=1)
        bounds = {"periodStart": int(period.timestamp()), "periodEnd": int(following.timestamp())}
        return [
            {"sourceId": s, **bounds, **{k: str(daily_usage(s, day)[k]) for k in MTU_KINDS}, "timestamp": iso(day)}
            for day in self.usage_days(period)
            for s in self.ids("sources")
        ]

    def workspace_mtu_usage(self, period: datetime) -> List[Dict[str, Any]]:
        """`MtuSnapshotV1` of every day of the month at `period`: the workspace's users, fewer than the
        sum over its sources (a user seen by two sources counts once)."""
        by_day: Dict[str, List[Dict[str, Any]]] = {}
        for row in self.mtu_usage(period):
            by_day.setdefault(row["timestamp"], []).append(row)
        return [
            {
                "periodStart": rows[0]["periodStart"],
                "periodEnd": rows[0]["periodEnd"],
                **{k: str(sum(int(r[k]) for r in rows) * WORKSPACE_UNIQUE_USERS // 100) for k in MTU_KINDS},
                "timestamp": timestamp,
            }
            for timestamp, rows in by_day.items()
        ]

    def workspace_api_calls_usage(self, period: datetime) -> List[Dict[str, Any]]:
        """`APICallSnapshotV1` of every day of the month at `period`: the sum over the sources."""
        days: Dict[str, int] = {}
        for row in self.api_calls_usage(period):
            days[row["timestamp"]] = days.get(row["timestamp"], 0) + int(row["apiCalls"])
        return [{"apiCalls": str(calls), "timestamp": timestamp} for timestamp, calls in days.items()]

    def api_calls_usage(self, period: datetime) -> List[Dict[str, Any]]:
        """`SourceAPICallSnapshotV1` of every source and day of the month at `period`, by day."""
        return [
            {"sourceId": s, "apiCalls": str(daily_usage(s, day)["apiCalls"]), "timestamp": iso(day)}
            for day in self.usage_days(period)
            for s in self.ids("sources")
        ]

    def audit_clock(self) -> datetime:
        """The time the next audit event gets: now, to the millisecond, but after the last event.
        Event times are unique and only increase, so `endTime=audit_clock()` splits the trail
        exactly between the events a client has seen and those recorded after it asked."""
        return self._event_time(datetime.now(timezone.utc))

    # ---- editing: each edit leaves an audit event ------------------------------------------

    def add(self, kind: str, **fields: Any) -> Dict[str, Any]:
        """Create an object of `kind` (generated like the others, `fields` override) and return it.
        Children name their parent: `add("filters", destinationId=...)`, `add("computed_traits",
        spaceId=...)`, `add("audiences", space_id=...)`; `add("subscriptions", ...)` only for an
        Actions destination."""
        with self._lock:
            item = self._insert(kind, **fields)
            self._record(kind, item, "Created")
            return copy.deepcopy(item)

    def rename(self, kind: str, item_id: str, name: str) -> None:
        """Rename an object: its `name` (a function's `displayName`, a filter's `title`, a
        warehouse's `settings.name`)."""
        if kind == "warehouses":
            self.update(kind, item_id, settings=dict(self.get(kind, item_id)["settings"], name=name))
        else:
            self.update(kind, item_id, **{NAME_FIELDS.get(kind, "name"): name})

    def update(self, kind: str, item_id: str, **fields: Any) -> None:
        """Change fields of an object; its `updatedAt`, where it has one, moves on."""
        with self._lock:
            self._record(kind, self._replace(kind, item_id, **fields), "Modified")

    def delete(self, kind: str, item_id: str) -> None:
        """Delete an object and what Segment deletes with it: a source's destinations, Reverse ETL
        models and transformations; a destination's filters and subscriptions; a space's audiences
        and computed traits; a plan's rules; every link to it and every permission on it."""
        with self._lock:
            item = self.get(kind, item_id)
            self._remove(kind, item_id)
            self._record(kind, item, "Deleted")

    def connect(self, warehouse_id: str, source_id: str) -> None:
        """Connect a source to a warehouse."""
        self._link("warehouses", warehouse_id, source_id, connect=True)

    def disconnect(self, warehouse_id: str, source_id: str) -> None:
        self._link("warehouses", warehouse_id, source_id, connect=False)

    def connect_tracking_plan(self, plan_id: str, source_id: str) -> None:
        """Connect a source to a tracking plan. A source has one plan at most: it leaves any other."""
        self._link("tracking_plans", plan_id, source_id, connect=True)

    def disconnect_tracking_plan(self, plan_id: str, source_id: str) -> None:
        self._link("tracking_plans", plan_id, source_id, connect=False)

    def set_rules(self, plan_id: str, rules: List[Dict[str, Any]]) -> None:
        """Replace a tracking plan's rules, as the API's replace-rules call does."""
        self._edit_rules(plan_id, "Tracking Plan Modified", lambda _: [dict(rule) for rule in rules])

    def add_rule(self, plan_id: str, type_: str, key: Optional[str] = None, **fields: Any) -> Dict[str, Any]:
        """Add a rule (`add_rule(plan, "TRACK", "Order Refunded")`); `fields` override, e.g. `jsonSchema`."""
        rule = self._new_rule(type_, key, **fields)
        self._edit_rules(plan_id, "Tracking Plan Rule Created", lambda rules: rules + [rule])
        return dict(rule)

    def update_rule(self, plan_id: str, type_: str, key: Optional[str] = None, **fields: Any) -> None:
        """Change fields of the latest version of a rule, e.g. `jsonSchema=`; its `updatedAt` moves on."""

        def change(rules: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
            latest = _latest_rule(rules, type_, key)
            return [
                {**rule, **fields, "updatedAt": self._tick()} if i == latest else rule for i, rule in enumerate(rules)
            ]

        self._edit_rules(plan_id, "Tracking Plan Rule Modified", change)

    def delete_rule(self, plan_id: str, type_: str, key: Optional[str] = None) -> None:
        """Delete a rule, every version of it."""

        def change(rules: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
            _latest_rule(rules, type_, key)  # a KeyError for a rule the plan does not have
            return [rule for rule in rules if not _is_rule(rule, type_, key)]

        self._edit_rules(plan_id, "Tracking Plan Rule Deleted", change)

    def add_label(self, key: str, value: str, description: Optional[str] = None) -> Dict[str, Any]:
        """Create a label; sources can then carry it (`update("sources", id, labels=[...])`)."""
        with self._lock:
            if any((label["key"], label["value"]) == (key, value) for label in self.labels):
                raise ValueError(f"the label {key}:{value} exists")
            label = {"key": key, "value": value, **({"description": description} if description is not None else {})}
            self.labels.append(label)
            self._audit("Label Created", f"{key}:{value}", "label", f"{key}:{value}")
            return dict(label)

    def delete_label(self, key: str, value: str) -> None:
        """Delete a label; the sources that carry it lose it."""
        with self._lock:
            self.labels = [label for label in self.labels if (label["key"], label["value"]) != (key, value)]
            for source in self.listing("sources"):
                kept = [label for label in source["labels"] if (label["key"], label["value"]) != (key, value)]
                if len(kept) < len(source["labels"]):
                    self.items["sources"][source["id"]] = dict(source, labels=kept)
            self._audit("Label Deleted", f"{key}:{value}", "label", f"{key}:{value}")

    def add_sync(self, warehouse_id: str, source_id: Optional[str] = None, **fields: Any) -> Dict[str, Any]:
        """Record a new (the newest) sync of a warehouse, of `source_id` or its first connected
        source; `fields` override (`status="failed"`). A sync is a run, not an edit: no audit event."""
        with self._lock:
            self.get("warehouses", warehouse_id)
            report = dict(
                self._new_sync(source_id or self.warehouse_sources[warehouse_id][0], datetime.now(timezone.utc)),
                **fields,
            )
            self.syncs[warehouse_id].append(report)
            return dict(report)

    # ---- internals -------------------------------------------------------------------------

    def _insert(self, kind: str, **fields: Any) -> Dict[str, Any]:
        item = getattr(self, f"_new_{kind}")(**fields)
        self.items[kind][item["id"]] = item
        if kind == "warehouses":
            self.warehouse_sources[item["id"]] = []
            self.syncs[item["id"]] = []
        elif kind == "tracking_plans":
            self.plan_sources[item["id"]] = []
            self.plan_rules[item["id"]] = []
        return item

    def _replace(self, kind: str, item_id: str, **fields: Any) -> Dict[str, Any]:
        item = dict(self.get(kind, item_id), **fields)
        if "updatedAt" in item:
            item["updatedAt"] = self._tick()
        self.items[kind][item_id] = item
        return item

    def _remove(self, kind: str, item_id: str) -> None:
        del self.items[kind][item_id]
        for child_kind, parent_field in CASCADES.get(kind, ()):
            for child in [c for c in self.items[child_kind].values() if c.get(parent_field) == item_id]:
                self._remove(child_kind, child["id"])
        # ids are unique across kinds: whatever is keyed by or links to this id goes with it
        for links in (self.warehouse_sources, self.plan_sources):
            links.pop(item_id, None)
            for linked in links.values():
                if item_id in linked:
                    linked.remove(item_id)
        self.plan_rules.pop(item_id, None)
        self.syncs.pop(item_id, None)
        if kind in PERMISSION_KINDS:
            self._drop_permissions_on(item_id)

    def _drop_permissions_on(self, item_id: str) -> None:
        """A permission goes with its role, and with the last resource it applies to."""
        for kind in ("users", "groups"):
            for item in list(self.items[kind].values()):
                permissions = item.get("permissions", [])
                if any(p["roleId"] == item_id or any(r["id"] == item_id for r in p["resources"]) for p in permissions):
                    kept = [
                        dict(p, resources=[r for r in p["resources"] if r["id"] != item_id])
                        for p in permissions
                        if p["roleId"] != item_id
                    ]
                    self.items[kind][item["id"]] = dict(item, permissions=[p for p in kept if p["resources"]])

    def _linked_sources(self, kind: str, parent_id: str) -> List[Dict[str, Any]]:
        with self._lock:
            self.get(kind, parent_id)
            return [self.items["sources"][source_id] for source_id in self._links(kind)[parent_id]]

    def _links(self, kind: str) -> Dict[str, List[str]]:
        return self.warehouse_sources if kind == "warehouses" else self.plan_sources

    def _link(self, kind: str, parent_id: str, source_id: str, connect: bool) -> None:
        with self._lock:
            parent = self.get(kind, parent_id)
            self.get("sources", source_id)
            links = self._links(kind)
            if connect:
                if kind == "tracking_plans":
                    for linked in links.values():
                        if source_id in linked:
                            linked.remove(source_id)
                if source_id not in links[parent_id]:
                    links[parent_id].append(source_id)
            else:
                links[parent_id].remove(source_id)
            noun, resource_type = KIND_NAMES[kind]
            event = f"Source Connected to {noun}" if connect else f"Source Disconnected From {noun}"
            self._audit(event, parent_id, resource_type, _name_of(kind, parent))

    def _children(self, kind: str, parent_kind: str, parent_field: str, parent_id: str) -> List[Dict[str, Any]]:
        with self._lock:
            self.get(parent_kind, parent_id)
            return [item for item in self.items[kind].values() if item[parent_field] == parent_id]

    def _edit_rules(
        self, plan_id: str, event_type: str, change: Callable[[List[Dict[str, Any]]], List[Dict[str, Any]]]
    ) -> None:
        """Change a plan's rules. The plan's `updatedAt` moves on: that is how a client knows to
        read its rules again."""
        with self._lock:
            self.get("tracking_plans", plan_id)
            self.plan_rules[plan_id] = change(self.plan_rules[plan_id])
            plan = self._replace("tracking_plans", plan_id)
            self._audit(event_type, plan_id, KIND_NAMES["tracking_plans"][1], _name_of("tracking_plans", plan))

    def _record(
        self,
        kind: str,
        item: Dict[str, Any],
        verb: str,
        at: Optional[datetime] = None,
        actor: Optional[Tuple[str, Optional[str]]] = None,
    ) -> None:
        """The audit event of `verb` ("Created", "Modified", "Deleted") done to an item."""
        noun, resource_type = KIND_NAMES[kind]
        if kind == "functions":
            noun = catalog.FUNCTION_TEMPLATES[item["resourceType"]].noun
        self._audit(f"{noun} {verb}", item["id"], resource_type, _name_of(kind, item), at, actor)

    def _audit(
        self,
        event_type: str,
        resource_id: str,
        resource_type: str,
        resource_name: str,
        at: Optional[datetime] = None,
        actor: Optional[Tuple[str, Optional[str]]] = None,
    ) -> None:
        """Append an `AuditEventV1`, at `at` (default now) by `actor` ((actor, email); default this
        object's API token, which has no email). Its time is kept after the last event's."""
        with self._lock:
            moment = self._event_time(at or datetime.now(timezone.utc))
            actor_id, actor_email = actor or (self.token_actor, None)
            event = {
                "id": f"events/{self._event_number}",
                "timestamp": iso(moment),
                "type": event_type,
                "actor": actor_id,
            }
            if actor_email:
                event["actorEmail"] = actor_email
            event.update(resourceId=resource_id, resourceType=resource_type, resourceName=resource_name)
            self.events.append(event)
            self._last_event_at = moment
            # event ids increase, with gaps: the numbers are shared with other workspaces
            self._event_number += self._audit_rng.randint(1, 40)

    def _event_time(self, moment: datetime) -> datetime:
        """`moment` to the millisecond, but after the last audit event."""
        moment -= timedelta(microseconds=moment.microsecond % 1000)
        with self._lock:
            return moment if self._last_event_at is None else max(moment, self._last_event_at + _MILLISECOND)


def _name_of(kind: str, item: Dict[str, Any]) -> str:
    if kind == "warehouses":
        return item["settings"].get("name", "")
    return item.get(NAME_FIELDS.get(kind, "name")) or ""


def _is_rule(rule: Dict[str, Any], type_: str, key: Optional[str]) -> bool:
    return rule["type"] == type_ and rule.get("key") == key


def _latest_rule(rules: List[Dict[str, Any]], type_: str, key: Optional[str]) -> int:
    """The index of the latest version of a rule."""
    versions = [i for i, rule in enumerate(rules) if _is_rule(rule, type_, key)]
    if not versions:
        raise KeyError(f"no {type_} rule {key!r}")
    return versions[-1]


def generate_workspace(
    size: "str | Size" = "small", slug: str = "acme", seed: int = 0, name: Optional[str] = None
) -> SimulatedWorkspace:
    """A deterministic workspace: the same arguments always give the same ids, names and secrets
    (the audit trail's timestamps are relative to now)."""
    ws = SimulatedWorkspace(slug=slug, name=name, seed=seed)
    ws.populate(SIZES[size] if isinstance(size, str) else size)
    return ws


def demo_workspace() -> SimulatedWorkspace:
    """The workspace `--demo` serves and the README's sample queries are written against."""
    return generate_workspace("small", slug="demo-workspace", name="Demo Workspace")
