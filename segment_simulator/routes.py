"""The routes, the layer above the workspace model: path pattern -> what it serves, its page limit,
rate limit and feature.

Facts per endpoint (items keys, page limits, rate limits) follow `shared/segment-api/endpoints.json`.
A `fetch` gets the workspace, the path parameters and the query parameters; it returns the list
to page through (`items_key` set) or the `data` object, raises `KeyError` for an unknown parent
(404) and `ApiError` (`wire.py`) for any other error answer; `Route.serve` answers a disabled
feature's status first. `/audit-events` is the one list that pages itself with `wire.page` (its
cursor carries the `endTime` of the first page). `find` and `match` find the route of a path.
"""

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from segment_simulator import catalog
from segment_simulator.generate import REGULATION_TYPES, iso
from segment_simulator.wire import MAX_PAGE_SIZE, PAGINATION, ApiError, page
from segment_simulator.workspace import SimulatedWorkspace

AUDIENCES_MAX_PAGE_SIZE = 200
REGULATION_STATUSES = ("FAILED", "FINISHED", "INITIALIZED", "INVALID", "NOT_SUPPORTED", "PARTIAL_SUCCESS", "RUNNING")


Fetch = Callable[[SimulatedWorkspace, Dict[str, str], Dict[str, str]], Any]


@dataclass(frozen=True)
class Route:
    """One GET endpoint: a list (`items_key` set) or a single object."""

    pattern: str
    fetch: Fetch
    items_key: Optional[str] = None
    max_count: int = MAX_PAGE_SIZE
    paginated: bool = True
    """False for lists the API serves whole, without a `pagination` object (`/labels`)."""
    rate_limit: Optional[int] = None
    """The endpoint's own limit, requests per minute per token (endpoints.json)."""
    rate_limit_per_path: bool = False
    """True when the limit counts per concrete path (per warehouse for syncs), not per pattern."""
    feature: Optional[str] = None
    """The plan feature or permission group the endpoint belongs to (see SimulatedWorkspace.disable)."""
    regex: "re.Pattern[str]" = field(init=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.pattern)
        object.__setattr__(self, "regex", re.compile(f"^{regex}$"))

    def serve(self, ws: SimulatedWorkspace, path_params: Dict[str, str], params: Dict[str, str]) -> Any:
        """What `fetch` answers, unless the workspace has the route's feature disabled."""
        status = ws.disabled.get(self.feature) if self.feature else None
        if status is not None:
            kind = {403: "Forbidden", 406: "NotAcceptable"}.get(status, "NotFound")
            raise ApiError(status, kind, f"{self.feature} is not available to this token in this workspace")
        return self.fetch(ws, path_params, params)


def _choice(params: Dict[str, str], name: str, allowed: Sequence[str]) -> Optional[str]:
    """An optional query parameter that takes one of `allowed` values; 422 for any other."""
    return _required_choice(params, name, allowed) if name in params else None


def _required_choice(params: Dict[str, str], name: str, allowed: Sequence[str]) -> str:
    """A query parameter that takes one of `allowed` values; 422 for any other, or none."""
    value = params.get(name)
    if value is None or value not in allowed:
        got = "it is missing" if value is None else f"got {value!r}"
        raise ApiError(422, "ValidationError", f"{name} must be one of {', '.join(allowed)}: {got}", field=name)
    return value


def _time(params: Dict[str, str], name: str) -> Optional[datetime]:
    """An ISO-8601 query parameter; 422 if it is not one."""
    value = params.get(name)
    if value is None:
        return None
    try:
        return _parse_time(value)
    except ValueError:
        raise ApiError(
            422, "ValidationError", f"{name} must be an ISO-8601 timestamp, got {value!r}", field=name
        ) from None


def _parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))  # Python < 3.11 refuses a "Z"
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)  # UTC unless it says otherwise


def _tracking_plans(ws: SimulatedWorkspace, p: Dict[str, str], q: Dict[str, str]) -> List[Dict[str, Any]]:
    plan_type = _choice(q, "type", catalog.TRACKING_PLAN_TYPES)
    return [plan for plan in ws.listing("tracking_plans") if plan_type in (None, plan["type"])]


def _functions(ws: SimulatedWorkspace, p: Dict[str, str], q: Dict[str, str]) -> List[Dict[str, Any]]:
    return ws.functions_of(_required_choice(q, "resourceType", sorted(catalog.FUNCTION_TEMPLATES)))


def _regulations(ws: SimulatedWorkspace, p: Dict[str, str], q: Dict[str, str]) -> List[Dict[str, Any]]:
    status = _choice(q, "status", REGULATION_STATUSES)
    types = [t for t in q.get("regulationTypes", "").split(",") if t]
    for t in types:
        _required_choice({"regulationTypes": t}, "regulationTypes", REGULATION_TYPES)
    return ws.regulations_of(status, types)


def _required(q: Dict[str, str], name: str) -> str:
    if not q.get(name):
        raise ApiError(422, "ValidationError", f"{name} is required", field=name)
    return q[name]


def _event_volume(ws: SimulatedWorkspace, p: Dict[str, str], q: Dict[str, str]) -> List[Dict[str, Any]]:
    """`GET /events/volume`: daily buckets only (the granularity the source asks for)."""
    _required_choice(q, "granularity", ["DAY"])
    start, end = _time(q, "startTime"), _time(q, "endTime")
    if start is None or end is None:
        raise ApiError(422, "ValidationError", "startTime and endTime are required", field="startTime")
    group_by = [g for g in q.get("groupBy", "").split(",") if g]
    for g in group_by:
        _required_choice({"groupBy": g}, "groupBy", ["eventName", "eventType", "source"])
    return ws.event_volume(start, end, group_by)


def _delivery_metrics(ws: SimulatedWorkspace, p: Dict[str, str], q: Dict[str, str]) -> Dict[str, Any]:
    """`GET /destinations/{id}/delivery-metrics`: the summary of a window (daily buckets only, the
    granularity the source asks for; the API's default window for DAY is the last 30 days)."""
    _required_choice(q, "granularity", ["DAY"])
    end = _time(q, "endTime") or datetime.now(timezone.utc)
    start = _time(q, "startTime") or end - timedelta(days=30)
    summary = ws.delivery_metrics(p["destinationId"], _required(q, "sourceId"), start, end)
    return {"deliveryMetricsSummary": summary}


def _period(q: Dict[str, str]) -> datetime:
    """The required `period`: the first moment of a month; 422 otherwise."""
    period = _time(q, "period")
    if period is None or period != period.replace(day=1, hour=0, minute=0, second=0, microsecond=0):
        raise ApiError(
            422, "ValidationError", f"period must be the start of a month, got {q.get('period')!r}", field="period"
        )
    return period


def _usage(
    pattern: str, items_key: str, series: Callable[[SimulatedWorkspace, datetime], List[Dict[str, Any]]]
) -> Route:
    """A usage series, served for the month at the required `period`."""
    return Route(pattern, lambda ws, p, q: series(ws, _period(q)), items_key=items_key, feature="usage")


def _audit_events(ws: SimulatedWorkspace, p: Dict[str, str], q: Dict[str, str]) -> Dict[str, Any]:
    """`GET /audit-events`: newest first. The cursor pins the first page's `endTime` (as the real
    API's does: base64 JSON `{"pageToken", "endTime"}`), so events recorded while a client pages
    do not shift its pages. The pages themselves are `wire.page`'s, on the events up to `endTime`."""
    asked = PAGINATION.read(q)
    params = PAGINATION.without_cursor(q)
    if not asked.cursor:
        end_time = _time(q, "endTime") or ws.audit_clock()
    else:
        params["pagination[cursor]"], end_time = _read_audit_cursor(asked.cursor)
    events = ws.audit_events(_time(q, "startTime"), end_time, q.get("resourceId"), q.get("resourceType"))
    data: Dict[str, Any] = page("events", events, params).body["data"]
    for name in ("current", "previous", "next"):
        if data["pagination"].get(name) is not None:
            data["pagination"][name] = _audit_cursor(data["pagination"][name], end_time)
    return data


def _audit_cursor(page_token: str, end_time: datetime) -> str:
    return base64.b64encode(json.dumps({"pageToken": page_token, "endTime": iso(end_time)}).encode()).decode()


def _read_audit_cursor(cursor: str) -> Tuple[str, datetime]:
    try:
        decoded = json.loads(base64.b64decode(cursor, validate=True))
        page_token, end_time = decoded["pageToken"], _parse_time(decoded["endTime"])
        if not isinstance(page_token, str):
            raise TypeError(page_token)
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise ApiError(
            422, "ValidationError", f"pagination.cursor {cursor!r} is not valid", field="pagination.cursor"
        ) from None
    return page_token, end_time


ROUTES: List[Route] = [
    Route("/", lambda ws, p, q: {"workspace": ws.info()}),
    Route("/sources", lambda ws, p, q: ws.listing("sources"), items_key="sources"),
    Route("/destinations", lambda ws, p, q: ws.listing("destinations"), items_key="destinations"),
    Route("/warehouses", lambda ws, p, q: ws.listing("warehouses"), items_key="warehouses"),
    Route(
        "/warehouses/{warehouseId}/connected-sources",
        lambda ws, p, q: ws.connected_sources(p["warehouseId"]),
        items_key="sources",
    ),
    Route(
        "/warehouses/{warehouseId}/syncs",
        lambda ws, p, q: ws.syncs_of(p["warehouseId"]),
        items_key="reports",
        rate_limit=2,
        rate_limit_per_path=True,
    ),
    Route("/spaces", lambda ws, p, q: ws.listing("spaces"), items_key="spaces", feature="engage"),
    Route(
        "/spaces/{spaceId}/audiences",
        lambda ws, p, q: (
            ws.audiences_with_schedules(p["spaceId"])
            if _choice(q, "include", ["schedules"])
            else ws.audiences_of(p["spaceId"])
        ),
        items_key="audiences",
        max_count=AUDIENCES_MAX_PAGE_SIZE,
        rate_limit=60,
        feature="engage",
    ),
    Route(
        "/spaces/{spaceId}/audiences/{audienceId}/destination-connections",
        lambda ws, p, q: ws.destination_connections(p["spaceId"], p["audienceId"]),
        items_key="connections",
        rate_limit=50,
        feature="engage",
    ),
    Route(
        "/spaces/{spaceId}/audiences/{audienceId}/activations",
        lambda ws, p, q: ws.audience_activations(p["spaceId"], p["audienceId"]),
        items_key="activations",
        rate_limit=60,
        feature="engage",
    ),
    Route(
        "/spaces/{spaceId}/computed-traits",
        lambda ws, p, q: ws.computed_traits_of(p["spaceId"]),
        items_key="computedTraits",
        rate_limit=25,
        feature="engage",
    ),
    Route("/tracking-plans", _tracking_plans, items_key="trackingPlans", feature="protocols"),
    Route(
        "/tracking-plans/{trackingPlanId}/rules",
        lambda ws, p, q: ws.rules(p["trackingPlanId"]),
        items_key="rules",
        rate_limit=200,
        feature="protocols",
    ),
    Route(
        "/tracking-plans/{trackingPlanId}/sources",
        lambda ws, p, q: ws.tracking_plan_sources(p["trackingPlanId"]),
        items_key="sources",
        feature="protocols",
    ),
    Route("/functions", _functions, items_key="functions", feature="functions"),
    Route(
        "/functions/{functionId}/versions",
        lambda ws, p, q: ws.function_versions(p["functionId"]),
        items_key="versions",
        feature="functions",
    ),
    Route(
        "/functions/{functionId}",
        lambda ws, p, q: {"function": ws.get("functions", p["functionId"])},
        feature="functions",
    ),
    Route(
        "/destination/{destinationId}/filters",
        lambda ws, p, q: ws.filters_of(p["destinationId"]),
        items_key="filters",
        feature="destination_filters",
    ),
    Route(
        "/destinations/{destinationId}/subscriptions",
        lambda ws, p, q: ws.subscriptions_of(p["destinationId"]),
        items_key="subscriptions",
    ),
    Route(
        "/destinations/{destinationId}/delivery-metrics",
        _delivery_metrics,
        feature="delivery_metrics",  # beta: a workspace without it answers 404, 403 or 406
    ),
    Route("/transformations", lambda ws, p, q: ws.listing("transformations"), items_key="transformations"),
    Route(
        "/reverse-etl-models",
        lambda ws, p, q: ws.listing("reverse_etl_models"),
        items_key="models",
        feature="reverse_etl",
    ),
    Route("/users", lambda ws, p, q: ws.listing("users"), items_key="users", feature="iam"),
    Route("/groups", lambda ws, p, q: ws.listing("groups"), items_key="userGroups", feature="iam"),
    Route("/roles", lambda ws, p, q: ws.listing("roles"), items_key="roles", feature="iam"),
    Route("/labels", lambda ws, p, q: list(ws.labels), items_key="labels", paginated=False),
    Route("/audit-events", _audit_events, feature="audit_trail"),
    Route("/regulations", _regulations, items_key="regulations", feature="privacy"),
    Route("/suppressions", lambda ws, p, q: list(ws.suppressions), items_key="suppressed", feature="privacy"),
    Route("/credentials", lambda ws, p, q: list(ws.credentials), items_key="credentials", feature="credentials"),
    Route(
        "/insert-function-instances",
        lambda ws, p, q: ws.insert_function_instances(_required(q, "functionId")),
        items_key="instances",
        feature="functions",
    ),
    Route("/events/volume", _event_volume, items_key="result", rate_limit=60, feature="event_volume"),
    _usage("/usage/mtu/sources/daily", "dailyPerSourceMTUUsage", SimulatedWorkspace.mtu_usage),
    _usage("/usage/api-calls/sources/daily", "dailyPerSourceAPICallsUsage", SimulatedWorkspace.api_calls_usage),
    _usage("/usage/mtu/daily", "dailyWorkspaceMTUUsage", SimulatedWorkspace.workspace_mtu_usage),
    _usage("/usage/api-calls/daily", "dailyWorkspaceAPICallsUsage", SimulatedWorkspace.workspace_api_calls_usage),
    Route("/catalog/sources", lambda ws, p, q: list(catalog.SOURCE_METADATA.values()), items_key="sourcesCatalog"),
    Route(
        "/catalog/destinations",
        lambda ws, p, q: list(catalog.DESTINATION_METADATA.values()),
        items_key="destinationsCatalog",
    ),
    Route(
        "/catalog/warehouses", lambda ws, p, q: list(catalog.WAREHOUSE_METADATA.values()), items_key="warehousesCatalog"
    ),
]


def find(path: str, table: Optional[Sequence[Route]] = None) -> Optional[Tuple[Route, Dict[str, str]]]:
    """The route of `table` (default `ROUTES`, read at every call) that serves `path`, and the path's
    parameters; None if no route does."""
    for route in ROUTES if table is None else table:
        found = route.regex.match(path)
        if found:
            return route, found.groupdict()
    return None


def match(path: str, table: Optional[Sequence[Route]] = None) -> Tuple[Route, Dict[str, str]]:
    """What `find` finds; `ApiError` 404 if no route serves `path`."""
    found = find(path, table)
    if found is None:
        raise ApiError(404, "NotFound", f"no resource at {path}")
    return found
