"""The legacy Config API (`/v1beta`), the top layer: served from the same simulated workspaces as
the Public API, by the Public API's request handler (`server.py`) with this API's three hooks: its
route table, its error shape and its paging shape.

What it reproduces, from `shared/segment-api/notes.md` section 5:
- `Authorization: Bearer <token>`; each token owns one workspace, whose name in paths is its slug
  (`/v1beta/workspaces/acme/...`); another workspace or an unknown source is a 404.
- errors `{"error": "...", "code": N}` with gRPC codes: 3/400, 16/401, 7/403, 5/404, 8/429,
  13/500, 12/501, 14/503...
- `page_size` (1..100, default 10) / `page_token` in, `next_page_token` out ("" on the last page).
- `GET /workspaces/{ws}`, `/workspaces/{ws}/sources`, `/workspaces/{ws}/sources/{src}/destinations`
  and `/workspaces/{ws}/tracking-plans` (the Protocols feature: `ws.disable("protocols")` works).

Items are rendered from the workspace's Public API items at every request, so an edit shows in
both APIs, and the plaintext secrets are the same ones (`sim.secret_values()`):
- source: `name` "workspaces/<ws>/sources/<slug>", `parent`, `display_name`, `catalog_name`
  "catalog/sources/<catalog slug>", `write_keys`, `labels` ({key: value}), `library_config`, `create_time`;
- destination: `name` "<source name>/destinations/<catalog slug>", `parent`, `display_name`,
  `enabled`, `connection_mode`, `config[]` (one entry per top-level setting: `name`
  "<destination name>/config/<key>", `display_name`, `value`, `type`), `create_time`, `update_time`.
  The Config API allows one destination of a catalog type per source; the simulated workspace may
  hold more, so the second, third... of a type on one source are named "<catalog slug>~2", "~3"
  (in creation order);
- tracking plan: `name` "workspaces/<ws>/tracking-plans/<plan id>", `display_name`,
  `rules{global, events[], identify, group}` from the plan's COMMON, TRACK, IDENTIFY and GROUP
  rules (the latest version of the others; PAGE rules have no place here and are left out),
  `create_time`, `update_time`.
The simulated sources and destinations have no timestamps: `create_time` is derived from the id
(the same every run), and a destination's `update_time` is its `create_time` until this
simulator sees the destination changed, then the time it saw it.

Rate limits and quirks work as on `SegmentSimulator` (global `RateLimits(per_token=200)` is the
Config API's limit), answering in this API's error shape. Injected 5xx faults keep the Public
API's `errors` body; the client reads both.
"""

import hashlib
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from segment_simulator.generate import iso
from segment_simulator.routes import Fetch, Route
from segment_simulator.server import SegmentSimulator
from segment_simulator.wire import ApiError, Paging, Response, encode_cursor
from segment_simulator.workspace import SimulatedWorkspace

BASE_PATH = "/v1beta"
MAX_PAGE_SIZE = 100
PAGING = Paging(("page_size",), ("page_token",), default_count=10)
GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 429: 8, 500: 13, 501: 12, 502: 14, 503: 14, 504: 4}
UNKNOWN_CODE = 2
# (section of a plan's `rules`, the rule type the Public API gives it)
RULE_SECTIONS = (("global", "COMMON"), ("identify", "IDENTIFY"), ("group", "GROUP"))
_CREATED_SINCE = datetime(2019, 1, 1, tzinfo=timezone.utc)


def config_error(status: int, message: str, headers: Optional[Mapping[str, str]] = None) -> Response:
    return Response(status, {"error": message, "code": GRPC_CODES.get(status, UNKNOWN_CODE)}, dict(headers or {}))


def config_page(items_key: str, items: List[Any], params: Mapping[str, str]) -> Response:
    """The page of `items` that `params` ask for, in the Config API's shape; `ApiError` 400 for a
    page size outside 1..100 or a page token that is not one of this list's."""
    asked = PAGING.read(params)
    size, offset = asked.count, asked.offset
    if size is None or not 1 <= size <= MAX_PAGE_SIZE:
        raise ApiError(
            400, "BadRequest", f"page_size must be an integer between 1 and {MAX_PAGE_SIZE}, got {asked.raw_count!r}"
        )
    if offset is None or offset > len(items):
        raise ApiError(400, "BadRequest", f"page_token {asked.cursor!r} is not valid")
    more = offset + size < len(items)
    return Response(
        200, {items_key: items[offset : offset + size], "next_page_token": encode_cursor(offset + size) if more else ""}
    )


def created(item_id: str) -> str:
    """A creation time derived from an id: the same for the same object, every run."""
    seconds = int(hashlib.sha256(item_id.encode()).hexdigest()[:8], 16) % (3 * 365 * 86400)
    return iso(_CREATED_SINCE + timedelta(seconds=seconds))


def workspace_name(ws: SimulatedWorkspace) -> str:
    return f"workspaces/{ws.slug}"


def source_name(ws: SimulatedWorkspace, source: Dict[str, Any]) -> str:
    return f"{workspace_name(ws)}/sources/{source['slug']}"


def workspace_item(ws: SimulatedWorkspace) -> Dict[str, Any]:
    return {"name": workspace_name(ws), "display_name": ws.name, "id": ws.id, "create_time": created(ws.id)}


def source_item(ws: SimulatedWorkspace, source: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "name": source_name(ws, source),
        "parent": workspace_name(ws),
        "display_name": source["name"],
        "catalog_name": f"catalog/sources/{source['metadata']['slug']}",
        "write_keys": list(source["writeKeys"]),
        "labels": {label["key"]: label["value"] for label in source["labels"]},
        "library_config": {
            "metrics_enabled": source["enabled"],
            "retry_queue": True,
            "cross_domain_id_enabled": False,
            "api_host": "",
        },
        "create_time": created(source["id"]),
    }


def destinations_of(ws: SimulatedWorkspace, source: Dict[str, Any]) -> List[Tuple[str, Dict[str, Any]]]:
    """(Config API name, Public API item) of each destination of a source, in creation order."""
    of_type: Counter = Counter()
    named = []
    for destination in ws.listing("destinations"):
        if destination["sourceId"] == source["id"]:
            slug = destination["metadata"]["slug"]
            of_type[slug] += 1
            suffix = f"~{of_type[slug]}" if of_type[slug] > 1 else ""
            named.append((f"{source_name(ws, source)}/destinations/{slug}{suffix}", destination))
    return named


def destination_item(name: str, parent: str, destination: Dict[str, Any], update_time: str) -> Dict[str, Any]:
    components = destination["metadata"].get("components") or []
    return {
        "name": name,
        "parent": parent,
        "display_name": destination["name"],
        "enabled": destination["enabled"],
        "connection_mode": "CLOUD" if any(c.get("type") == "SERVER" for c in components) else "UNSPECIFIED",
        "config": [
            {"name": f"{name}/config/{key}", "display_name": key, "value": value, "type": _setting_type(value)}
            for key, value in destination["settings"].items()
        ],
        "create_time": created(destination["id"]),
        "update_time": update_time,
    }


def tracking_plan_item(ws: SimulatedWorkspace, plan: Dict[str, Any]) -> Dict[str, Any]:
    rules: Dict[str, Any] = {"events": []}
    for rule in ws.rules(plan["id"]):  # oldest first: a later version of a rule wins
        if rule["type"] == "TRACK":
            event = {
                "name": rule["key"],
                "description": rule.get("description", ""),
                "version": rule["version"],
                "rules": rule["jsonSchema"],
            }
            rules["events"].append(event)
        for section, rule_type in RULE_SECTIONS:
            if rule["type"] == rule_type:
                rules[section] = rule["jsonSchema"]
    return {
        "name": f"{workspace_name(ws)}/tracking-plans/{plan['id']}",
        "display_name": plan["name"],
        "rules": rules,
        "create_time": plan["createdAt"],
        "update_time": plan["updatedAt"],
    }


def _setting_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "list"
    return "map" if isinstance(value, dict) else "string"


def _in_workspace(fetch: Fetch) -> Fetch:
    """`fetch`, for the token's own workspace only: another one in the path is a 404."""

    def fetch_in_workspace(ws: SimulatedWorkspace, p: Dict[str, str], q: Dict[str, str]) -> Any:
        if p["workspace"] != ws.slug:
            raise ApiError(404, "NotFound", f"workspace {p['workspace']!r} not found")
        return fetch(ws, p, q)

    return fetch_in_workspace


def _source_by_slug(ws: SimulatedWorkspace, slug: str) -> Dict[str, Any]:
    for source in ws.listing("sources"):
        if source["slug"] == slug:
            return source
    raise ApiError(404, "NotFound", f"source {slug!r} not found")


class ConfigApiSimulator(SegmentSimulator):
    """The legacy Config API on 127.0.0.1, one workspace per token; `url` ends in `/v1beta`.

    >>> with ConfigApiSimulator(generate_workspace("small")) as sim:
    ...     source = segment_config_api(access_token=sim.token, workspace=sim.workspace.slug, base_url=sim.url)
    """

    unsupported_method_status = 501

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seen: Dict[str, Tuple[Dict[str, Any], str]] = {}
        """Public API id -> (the item as last rendered, its update_time)."""
        self._seen_lock = threading.Lock()
        root = f"{BASE_PATH}/workspaces/{{workspace}}"
        self._routes = [
            Route(root, _in_workspace(lambda ws, p, q: workspace_item(ws))),
            Route(
                f"{root}/sources",
                _in_workspace(lambda ws, p, q: [source_item(ws, s) for s in ws.listing("sources")]),
                items_key="sources",
            ),
            Route(
                f"{root}/sources/{{source}}/destinations", _in_workspace(self._destinations), items_key="destinations"
            ),
            Route(
                f"{root}/tracking-plans",
                _in_workspace(lambda ws, p, q: [tracking_plan_item(ws, plan) for plan in ws.listing("tracking_plans")]),
                items_key="tracking_plans",
                feature="protocols",
            ),
        ]

    @property
    def url(self) -> str:
        return super().url + BASE_PATH

    def route_table(self) -> Sequence[Route]:
        return self._routes

    def answer(self, route: Route, data: Any, params: Dict[str, str]) -> Response:
        """Objects bare, lists paged by `page_size` / `page_token`."""
        return Response(200, data) if route.items_key is None else config_page(route.items_key, data, params)

    def shape_errors(self, response: Response) -> Response:
        """Every error answer of the API and of the rate limits and quirks, as `{"error", "code"}`."""
        if "errors" in response.body:
            return config_error(response.status, response.body["errors"][0]["message"], response.headers)
        return response

    def _destinations(self, ws: SimulatedWorkspace, p: Dict[str, str], q: Dict[str, str]) -> List[Dict[str, Any]]:
        source = _source_by_slug(ws, p["source"])
        parent = source_name(ws, source)
        return [destination_item(name, parent, d, self._update_time(d)) for name, d in destinations_of(ws, source)]

    def _update_time(self, item: Dict[str, Any]) -> str:
        """An edit replaces a workspace item's dict: a new dict is a change, seen now."""
        with self._seen_lock:
            last = self._seen.get(item["id"])
            if last is None:
                update_time = created(item["id"])
            elif last[0] is item:
                update_time = last[1]
            else:
                update_time = iso(datetime.now(timezone.utc))
            self._seen[item["id"]] = (item, update_time)
            return update_time
