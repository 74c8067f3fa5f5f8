"""The Segment Public API surface this package loads: one `Endpoint` per table.

Facts (paths, items keys, page limits, rate limits, secret fields) come from `shared/segment-api`
(endpoints.json, notes.md), API version 73.2.0. Adding a table is adding one entry here.
"""

import re
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from segment_source.ratelimit import RateLimit

MAX_PAGE_SIZE = 1000  # PaginationInput.count: 1..1000 since API 73
AUDIENCES_MAX_PAGE_SIZE = 200  # ListAudiencesPaginationInput.count: 1..200
HISTORY_SUFFIX = "_history"
# Rules have no id; both sources (Public and legacy Config API) merge on this key.
RULE_KEY = ("tracking_plan_id", "type", "key", "version")
FUNCTION_RESOURCE_TYPES = ("DESTINATION", "INSERT_DESTINATION", "INSERT_SOURCE", "INSERT_TRANSFORMATION", "SOURCE")

Row = Dict[str, Any]
"""An API item or a row to load: JSON."""


@dataclass(frozen=True)
class Incremental:
    """An append-only endpoint read from where the last run stopped, per workspace.

    The next run asks for items newer than the newest loaded one minus `overlap`; the overlap is
    read twice and deduplicated by the primary key.
    """

    cursor_field: str
    """Item field that orders the items (ISO-8601 timestamps)."""
    start_param: Optional[str] = None
    """Query parameter for "newer than"; without one, paging stops at the first old item."""
    end_param: Optional[str] = None
    """Query parameter for "older than", pinned to the run's start so pages do not shift."""
    overlap: timedelta = timedelta(minutes=15)
    bucket: Optional[timedelta] = None
    """Windows start at a multiple of this (a day for daily series): the start time is rounded down."""
    lag: timedelta = timedelta(0)
    """How far behind the run's start `end_param` stays (Segment recommends a minute for event volume)."""
    window: Optional[timedelta] = None
    """For an endpoint that sums up [start, end) in one object, not a series: one request per window
    of this size (the last one ends at the run's start), its rows' cursor field set to the window's
    start. The cursor is the last window's start: the next run reads that (partial) window again."""
    first_run: Optional[timedelta] = None
    """How far back a first run goes at most (a later `start_date` wins)."""


@dataclass(frozen=True)
class Monthly:
    """A time series asked for one month at a time (`period=<the month's first day>`), per workspace.

    Every run reads again the current month and the months not final yet (the previous one until
    `final_after` into the new month); final months are never read again. The first run starts at
    the month of `start_date`. Rows replace rows of the same key, so a re-read month never counts twice.
    """

    param: str = "period"
    final_after: timedelta = timedelta(days=3)


@dataclass(frozen=True)
class Endpoint:
    """One Public API endpoint and the table it loads into."""

    table: str
    path: str
    """Path under the base URL. `{id}` is the id of the parent row, for child endpoints."""
    data_key: str
    """Key under `data` that holds the items (or, for object endpoints, the object)."""
    primary_key: Tuple[str, ...] = ("id",)
    """Columns that identify a row within a workspace (the table's key adds `workspace_id`)."""
    parent: Optional[str] = None
    """Table whose rows this endpoint is requested for, one request (series) per parent row."""
    parent_key: Optional[str] = None
    """Item field set to the parent row's id (e.g. `trackingPlanId`)."""
    parent_params: Mapping[str, str] = field(default_factory=dict)
    """Query parameters set to a field of the parent row: `{"functionId": "id"}` for children listed
    by a filter, `{"sourceId": "sourceId"}` for a destination's source."""
    only_for: Optional[Callable[[Row], bool]] = None
    """Ask only for parents whose (API) item passes this test; the others have nothing to give."""
    refetch_on: Optional[str] = None
    """Parent field (e.g. `updatedAt`): ask again only for parents where it changed since the last run."""
    page_size: Optional[int] = MAX_PAGE_SIZE
    """The largest page the endpoint allows; `None` for endpoints that are not paginated."""
    is_object: bool = False
    """The endpoint returns one object under `data_key`, not a list."""
    params: Mapping[str, str] = field(default_factory=dict)
    """Query parameters of every request (`include=schedules`)."""
    variants: Tuple[Mapping[str, str], ...] = ()
    """Query parameters of the listings to union, one listing each (functions per resourceType)."""
    incremental: Optional[Incremental] = None
    monthly: Optional[Monthly] = None
    secret_fields: Tuple[str, ...] = ()
    """Fields that are secrets in full (masked element by element); dotted for nested fields."""
    settings_fields: Tuple[str, ...] = ()
    """Settings-like objects: every string in them is masked unless redaction.py knows it is safe
    (deny by default); each lands as one JSON column."""
    code_fields: Tuple[str, ...] = ()
    """Source code whose string literals are judged like settings values."""
    rows_of: Optional[Callable[[Row], List[Row]]] = None
    """Turns one API item into several (a time series into its data points), before `shape`; for
    incremental endpoints, whose cursor is a field of the data points."""
    shape: Optional[Callable[[Row, Row], Row]] = None
    """Turns an API item (and its parent row) into the row to load."""
    column_types: Mapping[str, str] = field(default_factory=dict)
    """dlt data types of columns that are JSON or may be null in every row of a run."""
    feature: Optional[str] = None
    """The plan feature or permission the endpoint needs, named when it is skipped."""
    rate_limit: Optional[int] = None
    """The endpoint's own limit, requests per minute."""
    rate_limit_per_parent: bool = False
    """The limit counts per parent (per warehouse for syncs), not for the endpoint as a whole."""
    default: bool = True
    """Loaded unless resources are selected explicitly; heavy or slow endpoints are opt-in."""
    history: bool = True
    """Also keep every version in `<table>_history` (not for append-only incremental endpoints)."""
    identifies_workspace: bool = False
    """The object endpoint that identifies the token's workspace (`GET /`): read first, once."""
    version: str = "v1"
    """The endpoint's most stable API version (endpoints.json `versions`), asked for after a 406."""

    @property
    def merges_by_key(self) -> bool:
        """Rows are never deleted: a re-read window replaces the rows of the same key."""
        return self.incremental is not None or self.monthly is not None

    @property
    def media_type(self) -> str:
        return f"application/vnd.segment.{self.version}+json"

    @property
    def columns(self) -> Dict[str, Dict[str, object]]:
        """Column hints: key columns typed (text unless said otherwise) so that a table can be
        created empty, settings and other declared columns with their types."""
        types = {**{column_name(name): "json" for name in self.settings_fields}, **self.column_types}
        columns: Dict[str, Dict[str, object]] = {name: {"data_type": data_type} for name, data_type in types.items()}
        for name in self.key:
            columns[name] = {"data_type": types.get(name, "text"), "nullable": False}
        return columns

    @property
    def key(self) -> Tuple[str, ...]:
        return ("workspace_id", *self.primary_key)


@dataclass(frozen=True)
class EmbeddedEndpoint(Endpoint):
    """A child endpoint without requests of its own: its items come inside each parent item (the
    legacy Config API's tracking plans carry their rules). `path` is not requested."""

    items_of: Callable[[Row], List[Row]] = lambda item: []
    """The child items inside one parent API item."""


def rate_limits(endpoints: Sequence[Endpoint], prefix: str = "") -> List[RateLimit]:
    """The endpoints' own limits, for the client's pacing (`prefix`: the base URL's path)."""
    return [RateLimit(prefix + e.path, e.rate_limit, e.rate_limit_per_parent) for e in endpoints if e.rate_limit]


def media_types(endpoints: Sequence[Endpoint], prefix: str = "") -> List[Tuple[str, str]]:
    """(path template, versioned media type) of every endpoint that makes requests."""
    return [(prefix + e.path, e.media_type) for e in endpoints if not isinstance(e, EmbeddedEndpoint)]


@lru_cache(maxsize=4096)
def column_name(field_name: str) -> str:
    """The column an API field lands in: `hashPropertiesConfiguration` -> `hash_properties_configuration`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", field_name).lower()


def catalog_reference(item: Row, parent: Row) -> Row:
    """Keep only the catalog id, slug and name of the embedded (large) catalog `metadata`."""
    metadata = item.get("metadata")
    if isinstance(metadata, dict):
        item = dict(item, metadata={k: metadata.get(k) for k in ("id", "slug", "name")})
    return item


def link(parent_field: str, child_field: str) -> Callable[[Row, Row], Row]:
    """A link row: the parent's id and the listed item's id."""

    def shape(item: Row, parent: Row) -> Row:
        return {parent_field: parent["id"], child_field: item["id"]}

    return shape


def rule_row(item: Row, parent: Row) -> Row:
    # rules have no id; the key (type, key, version) needs a key even for IDENTIFY/GROUP rules
    return dict(item, key=item.get("key") or "")


def volume_points(item: Row) -> List[Row]:
    """One row per data point of a source's and event type's series."""
    source = item.get("source") or {}
    return [
        {
            "sourceId": source.get("id") or "",
            "sourceSlug": source.get("slug"),
            "eventType": item.get("eventType") or "",
            **point,
        }
        for point in item.get("series") or []
    ]


def delivery_metric_rows(item: Row) -> List[Row]:
    """One row per metric of a window's summary (`successes`, `discarded`, `expired`...)."""
    common = {k: item.get(k) for k in ("sourceId", "destinationMetadataId", "time")}
    return [dict(common, **metric) for metric in item.get("metrics") or []]


def activation_row(item: Row, parent: Row) -> Row:
    # the action the activation triggers, kept beside its mapping (a settings object, masked): it
    # names a catalog action, as `destination_subscriptions.action_id` does
    mapping = item.get("destinationMapping")
    return dict(item, actionId=mapping.get("actionId") if isinstance(mapping, dict) else None)


def is_insert_function(item: Row) -> bool:
    return str(item.get("resourceType", "")).startswith("INSERT_")


def is_actions_destination(item: Row) -> bool:
    """Only Actions destinations (catalog entries with actions) have subscriptions."""
    metadata = item.get("metadata")
    return isinstance(metadata, dict) and bool(metadata.get("actions"))


ENABLED = {"enabled": "bool"}
"""The documented boolean every configurable object has: declared, so that a value that arrives as
text keeps the column boolean (see `reader.WorkspaceReader._loadable`)."""


def suppression_row(item: Row, parent: Row) -> Row:
    # no id: a suppressed subject is its type and ids (one id in practice)
    return dict(item, subjectKey=",".join(sorted(str(i) for i in item.get("subjectIds") or [])))


MTU_COUNTS = ("anonymous", "anonymous_identified", "identified", "never_identified")
API_CALLS = ("api_calls",)


def usage_daily(table: str, path: str, data_key: str, counts: Tuple[str, ...]) -> Endpoint:
    """A usage series read a month at a time: per source per day (`/usage/.../sources/daily`), or the
    whole workspace's total per day (`/usage/.../daily`, its own table keyed by the day: a NULL
    `source_id` could not be part of a key, and a total beside its parts would count twice in a sum)."""
    per_source = "/sources/" in path
    return Endpoint(
        table,
        path,
        data_key,
        primary_key=("source_id", "timestamp") if per_source else ("timestamp",),
        monthly=Monthly(),
        feature="Usage (Workspace Owner)",
        column_types={"timestamp": "timestamp", **{n: "bigint" for n in counts}},  # counts arrive as text
        default=False,
        history=False,
    )


CATALOG_JSON = {
    name: "json"
    for name in (
        "logos",
        "options",
        "actions",
        "presets",
        "components",
        "contacts",
        "categories",
        "previous_names",
        "supported_regions",
        "region_endpoints",
    )
}

ENDPOINTS: List[Endpoint] = [
    Endpoint("workspace", "/", "workspace", page_size=None, is_object=True, identifies_workspace=True),
    Endpoint(
        "sources",
        "/sources",
        "sources",
        secret_fields=("writeKeys",),
        settings_fields=("settings",),
        shape=catalog_reference,
        column_types=ENABLED,
    ),
    Endpoint(
        "destinations",
        "/destinations",
        "destinations",
        settings_fields=("settings",),
        shape=catalog_reference,
        column_types=ENABLED,
    ),
    Endpoint(
        "warehouses",
        "/warehouses",
        "warehouses",
        settings_fields=("settings",),
        shape=catalog_reference,
        column_types=ENABLED,
    ),
    Endpoint(
        "warehouse_sources",
        "/warehouses/{id}/connected-sources",
        "sources",
        primary_key=("warehouse_id", "source_id"),
        parent="warehouses",
        shape=link("warehouseId", "sourceId"),
    ),
    Endpoint("spaces", "/spaces", "spaces", feature="Engage", version="v1alpha"),
    Endpoint(
        "segments",
        "/spaces/{id}/audiences",
        "audiences",
        parent="spaces",
        parent_key="spaceId",
        page_size=AUDIENCES_MAX_PAGE_SIZE,
        params={"include": "schedules"},  # how often each audience computes: `segments__schedules`
        column_types={"definition__target_entity": "text", **ENABLED},
        feature="Engage",
        rate_limit=60,
    ),
    Endpoint(
        "computed_traits",
        "/spaces/{id}/computed-traits",
        "computedTraits",
        parent="spaces",
        parent_key="spaceId",
        column_types=ENABLED,
        feature="Engage",
        rate_limit=25,
        version="v1alpha",
    ),
    Endpoint("tracking_plans", "/tracking-plans", "trackingPlans", feature="Protocols"),
    Endpoint(
        "tracking_plan_rules",
        "/tracking-plans/{id}/rules",
        "rules",
        primary_key=RULE_KEY,
        parent="tracking_plans",
        parent_key="trackingPlanId",
        refetch_on="updatedAt",
        shape=rule_row,
        column_types={"json_schema": "json", "version": "bigint", "deprecated_at": "timestamp"},
        feature="Protocols",
        rate_limit=200,
    ),
    Endpoint(
        "tracking_plan_sources",
        "/tracking-plans/{id}/sources",
        "sources",
        primary_key=("tracking_plan_id", "source_id"),
        parent="tracking_plans",
        shape=link("trackingPlanId", "sourceId"),
        feature="Protocols (Source Read-only and Tracking Plan Read-only)",
    ),
    Endpoint(
        "functions",
        "/functions",
        "functions",
        variants=tuple({"resourceType": t} for t in FUNCTION_RESOURCE_TYPES),
        feature="Functions",
    ),
    Endpoint(
        "destination_filters",
        "/destination/{id}/filters",
        "filters",
        parent="destinations",
        parent_key="destinationId",
        column_types={"actions": "json", **ENABLED},
        feature="Destination Filters",
    ),
    Endpoint(
        "destination_subscriptions",
        "/destinations/{id}/subscriptions",
        "subscriptions",
        parent="destinations",
        parent_key="destinationId",
        only_for=is_actions_destination,
        settings_fields=("settings",),
        column_types={"reverse_etl_schedule": "json", "model_id": "text", **ENABLED},
        feature="Actions destinations",
        version="v1alpha",
    ),
    Endpoint("users", "/users", "users", feature="Access Management (Workspace Owner)"),
    Endpoint("user_groups", "/groups", "userGroups", feature="Access Management (Workspace Owner)"),
    Endpoint("roles", "/roles", "roles", feature="Access Management (Workspace Owner)"),
    Endpoint("labels", "/labels", "labels", primary_key=("key", "value"), page_size=None),
    Endpoint(
        "reverse_etl_models",
        "/reverse-etl-models",
        "models",
        column_types=ENABLED,
        feature="Reverse ETL",
        version="v1alpha",
    ),
    Endpoint(
        "transformations",
        "/transformations",
        "transformations",
        # their configuration: property names and values, FQL, the hashing key ("Optional key to hash with")
        settings_fields=(
            "propertyRenames",
            "propertyValueTransformations",
            "fqlDefinedProperties",
            "allowProperties",
            "hashPropertiesConfiguration",
        ),
        column_types=ENABLED,
    ),
    Endpoint(
        "audit_events",
        "/audit-events",
        "events",
        incremental=Incremental(cursor_field="timestamp", start_param="startTime", end_param="endTime"),
        column_types={"timestamp": "timestamp", "actor_email": "text"},
        feature="Audit Trail (Business tier)",
        history=False,
    ),
    Endpoint(
        "credentials",
        "/credentials",
        "credentials",
        settings_fields=("settings",),
        column_types={"created_at": "timestamp", "updated_at": "timestamp"},
        feature="Credentials (Workspace Owner or an Admin role)",
    ),
    # deletion and suppression requests: Segment keeps 90 days; `regulations_history` keeps the rest
    Endpoint(
        "regulations",
        "/regulations",
        "regulations",
        # the user ids a deletion request is about: personal data its request asks to remove, so
        # kept only as keyed fingerprints (a known id can be checked with the key, never read back)
        secret_fields=("subjects",),
        column_types={"subjects": "json", "created_at": "timestamp", "finished_at": "timestamp"},
        feature="Deletion and Suppression (Workspace Owner)",
    ),
    # ---- opt-in: heavy, slow or sensitive -------------------------------------------------
    Endpoint("catalog_sources", "/catalog/sources", "sourcesCatalog", column_types=CATALOG_JSON, default=False),
    Endpoint(
        "catalog_destinations", "/catalog/destinations", "destinationsCatalog", column_types=CATALOG_JSON, default=False
    ),
    Endpoint(
        "catalog_warehouses", "/catalog/warehouses", "warehousesCatalog", column_types=CATALOG_JSON, default=False
    ),
    Endpoint(
        "warehouse_syncs",
        "/warehouses/{id}/syncs",
        "reports",
        primary_key=("warehouse_id", "source_id", "start"),
        parent="warehouses",
        parent_key="warehouseId",
        incremental=Incremental(cursor_field="start", overlap=timedelta(days=1)),
        column_types={"start": "timestamp", "end": "timestamp", "notices": "json"},
        rate_limit=2,
        rate_limit_per_parent=True,
        default=False,
        history=False,
    ),
    Endpoint(
        "function_code",
        "/functions/{id}",
        "function",
        parent="functions",
        page_size=None,
        is_object=True,
        secret_fields=("previewWebhookUrl",),  # a source function's URL: whoever has it can send events
        settings_fields=("settings",),  # FunctionSettingV1 definitions: names, labels, types
        code_fields=("code",),
        column_types={"deployed_at": "timestamp"},
        feature="Functions",
        default=False,
    ),
    Endpoint(
        "function_versions",
        "/functions/{id}/versions",
        "versions",
        primary_key=("function_id", "id"),
        parent="functions",
        parent_key="functionId",
        code_fields=("code",),  # every saved draft, with the credentials it embeds masked like function_code's
        column_types={"created_at": "timestamp", "updated_at": "timestamp", "deployed_at": "timestamp"},
        feature="Functions",
        version="v1alpha",
        default=False,  # alpha; one request per function, and every draft's code
        history=False,  # a saved version does not change; `is_deployed` moves to the newest deployed one
    ),
    Endpoint(
        "audience_destinations",
        "/spaces/{spaceId}/audiences/{id}/destination-connections",
        "connections",
        primary_key=("audience_id", "id"),
        parent="segments",
        parent_key="audienceId",
        settings_fields=("settings", "connectionSettings"),
        shape=catalog_reference,
        column_types={"created_at": "timestamp", "updated_at": "timestamp"},
        feature="Engage",
        rate_limit=50,
        version="v1alpha",
        default=False,  # one request per audience, 50 a minute: 10 minutes for 480 audiences
    ),
    Endpoint(
        "audience_activations",
        "/spaces/{spaceId}/audiences/{id}/activations",
        "activations",
        primary_key=("audience_id", "id"),
        parent="segments",
        parent_key="audienceId",
        settings_fields=("destinationMapping",),  # the action's field mappings and settings
        shape=activation_row,
        column_types={"personalization": "json", "display_name": "text", "action_id": "text", **ENABLED},
        feature="Engage",
        rate_limit=60,
        version="v1alpha",
        default=False,  # alpha; one request per audience, 60 a minute: 8 minutes for 480 audiences
    ),
    Endpoint(
        "insert_function_instances",
        "/insert-function-instances",
        "instances",
        parent="functions",
        parent_key="classId",
        parent_params={"functionId": "id"},
        only_for=is_insert_function,
        settings_fields=("settings", "encryptedSettings"),
        column_types={"created_at": "timestamp", "updated_at": "timestamp"},
        feature="Functions",
        version="v1alpha",
        default=False,  # alpha; one request per insert function
    ),
    Endpoint(
        "destination_delivery_metrics",
        "/destinations/{id}/delivery-metrics",
        "deliveryMetricsSummary",
        primary_key=("destination_id", "source_id", "time", "metric_name"),
        parent="destinations",
        parent_key="destinationId",
        parent_params={"sourceId": "sourceId"},
        page_size=None,
        is_object=True,
        params={"granularity": "DAY"},
        incremental=Incremental(
            cursor_field="time",
            start_param="startTime",
            end_param="endTime",
            overlap=timedelta(0),
            bucket=timedelta(days=1),
            window=timedelta(days=1),  # the answer is one summary: a day's numbers take a day's window
            first_run=timedelta(days=7),  # 7 requests per destination; Delivery Overview shows two weeks
        ),
        rows_of=delivery_metric_rows,
        column_types={"time": "timestamp", "total": "bigint", "breakdown": "json"},
        feature="Delivery metrics (beta)",
        version="v1beta",
        default=False,  # one request per destination per day read: 2 a run once loaded
        history=False,
    ),
    Endpoint(
        "event_volume",
        "/events/volume",
        "result",
        primary_key=("source_id", "event_type", "time"),
        params={"granularity": "DAY", "groupBy": "source,eventType"},
        incremental=Incremental(
            cursor_field="time",
            start_param="startTime",
            end_param="endTime",
            overlap=timedelta(days=1),  # the newest day was partial: read it again
            bucket=timedelta(days=1),
            lag=timedelta(minutes=1),
        ),
        rows_of=volume_points,
        column_types={"time": "timestamp", "count": "bigint"},
        rate_limit=60,
        default=False,
        history=False,
    ),
    usage_daily("mtu_usage_daily", "/usage/mtu/sources/daily", "dailyPerSourceMTUUsage", MTU_COUNTS),
    usage_daily("api_calls_usage_daily", "/usage/api-calls/sources/daily", "dailyPerSourceAPICallsUsage", API_CALLS),
    usage_daily("workspace_mtu_usage_daily", "/usage/mtu/daily", "dailyWorkspaceMTUUsage", MTU_COUNTS),
    usage_daily("workspace_api_calls_usage_daily", "/usage/api-calls/daily", "dailyWorkspaceAPICallsUsage", API_CALLS),
    Endpoint(
        "suppressions",
        "/suppressions",
        "suppressed",
        primary_key=("subject_type", "subject_key"),
        shape=suppression_row,
        column_types={"subject_ids": "json"},
        feature="Deletion and Suppression (Workspace Owner)",
        default=False,  # user ids: personal data
    ),
]

DEFAULT_TABLES = [e.table for e in ENDPOINTS if e.default]
BY_TABLE: Dict[str, Endpoint] = {e.table: e for e in ENDPOINTS}
"""The endpoint of each table."""
