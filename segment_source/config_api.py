"""A second source for workspaces that still hold a legacy Config API token.

The Config API (`https://platform.segmentapis.com/v1beta`, notes.md section 5) names objects by
path (`workspaces/acme/sources/ios`), in snake_case, under `/workspaces/{workspace}/...`; Segment
no longer issues its tokens. This source loads it into the tables of `segment_source`, with the
Public API's column names where a field means the same, so the same SQL works on both; a field
with no counterpart keeps its own name. The reading, redaction, current and history tables are
`segment_source`'s own (`WorkspaceReader`, `endpoint_resource`); what differs is here: the client
(envelope, pagination), the catalogue and how items become rows.

The field mapping is in the README ("The legacy Config API").

Every row carries `workspace_id`, the workspace's id. Rules come inside their plans: they cost no
request. Requests: the workspace, the sources (100 a page), one listing per source for its
destinations, the tracking plans.
"""

import re
from typing import Any, Dict, List, Mapping, Optional, Union
from urllib.parse import urlsplit

import dlt
import requests
from dlt.common.typing import TSecretValue
from dlt.extract.resource import DltResource
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.paginators import BasePaginator, SinglePagePaginator

from segment_source import redaction
from segment_source.client import SegmentClient, SegmentCursorPaginator, body_snippet, endpoint_of, parse_json
from segment_source.endpoints import RULE_KEY, EmbeddedEndpoint, Endpoint, Row
from segment_source.errors import ConfigurationError, NotFoundError, PermissionDeniedError, UnexpectedResponseError
from segment_source.ratelimit import RateLimit
from segment_source.reader import WorkspaceReader
from segment_source.report import RunReport
from segment_source.settings import check_base_url, keep_paths, where
from segment_source.tables import endpoint_resource

SECTION = "segment_config_api"
DEFAULT_BASE_URL = "https://platform.segmentapis.com/v1beta"
MAX_PAGE_SIZE = 100
DESTINATIONS_PER_MINUTE = 180
"""Of the token's 200 requests a minute: one listing per source, the rest left for the others."""
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
SETTINGS_HINT = (
    "put them in .dlt/secrets.toml as\n\n"
    "    [sources.segment_config_api]\n"
    '    access_token = "<your Config API token>"\n'
    '    workspace = "<your workspace slug>"\n\n'
    "or set the environment variables SOURCES__SEGMENT_CONFIG_API__ACCESS_TOKEN"
    " and SOURCES__SEGMENT_CONFIG_API__WORKSPACE"
)
NO_NEW_TOKENS = (
    "Segment no longer issues Config API tokens: with a Public API token, load with segment_source"
    " (the script without --config-api) instead."
)

# ---- client ------------------------------------------------------------------------------


class ConfigApiRESTClient(RESTClient):
    """`RESTClient` that checks the Config API's envelope: the items under a top-level key."""

    def extract_response(self, response: requests.Response, data_selector: Any) -> List[Any]:
        key = data_selector  # the items key
        body = parse_json(response)
        items = body.get(key) if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise UnexpectedResponseError(
                f"{endpoint_of(response)} answered without a list under {key}: {body_snippet(response)}."
                " The Config API may have changed; please report this."
            )
        return items


class ConfigApiClient(SegmentClient):
    """Reads one workspace of the Config API: `page_size` / `page_token` in, `next_page_token`
    out (empty on the last page), objects answered bare."""

    rest_client_class = ConfigApiRESTClient
    config_section = SECTION
    token_advice = f"{NO_NEW_TOKENS} To use a Config API token that works, {SETTINGS_HINT}."

    def paginator(self, page_size: Optional[int]) -> BasePaginator:
        if not page_size:
            return SinglePagePaginator()
        return SegmentCursorPaginator(
            page_size, cursor_path="next_page_token", cursor_param="page_token", count_param="page_size"
        )

    def get(self, path: str, key: str, params: Optional[Mapping[str, str]] = None) -> Any:
        """The workspace object (the only one this source asks for): a 404 or 403 there means the
        token sees no workspace of that name."""
        try:
            return super().get(path, key, params)
        except (NotFoundError, PermissionDeniedError) as ex:
            raise ConfigurationError(
                f"The Config API has no workspace {_last(path)!r} for this token ({ex.status}). Set"
                f" {where(SECTION, 'workspace')} to the slug of the token's workspace, as in app.segment.com/<slug>/."
            ) from None

    def unwrap(self, response: requests.Response, key: str) -> Any:
        body = parse_json(response)
        if not isinstance(body, dict):
            raise UnexpectedResponseError(
                f"{endpoint_of(response)} answered without an object: {body_snippet(response)}."
                " The Config API may have changed; please report this."
            )
        return body


# ---- items to rows -----------------------------------------------------------------------


def _name(item: Row) -> str:
    """An item's resource name, which is its id."""
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise UnexpectedResponseError(
            f"The Config API returned an item without a name (keys {sorted(item)}); please report this."
        )
    return name


def _last(name: Any) -> Optional[str]:
    """The last segment of a resource name: `catalog/sources/ios` -> `ios`."""
    return name.rsplit("/", 1)[-1] if isinstance(name, str) and name else None


def config_settings(entries: Any) -> Dict[str, Any]:
    """`[{"name": ".../config/apiKey", "value": v}]` as the Public API's settings `{"apiKey": v}`."""
    named = ((_last(e.get("name")), e.get("value")) for e in entries or [] if isinstance(e, dict))
    return {name: value for name, value in named if name}


def workspace_row(item: Row, parent: Row) -> Row:
    return {
        "id": item["id"],
        "slug": _last(item.get("name")),
        "name": item.get("display_name"),
        "create_time": item.get("create_time"),
    }


def source_row(item: Row, parent: Row) -> Row:
    name = _name(item)
    labels = item.get("labels")
    row = {
        "id": name,
        "slug": _last(name),
        "name": item.get("display_name") or _last(name),
        "metadata": {"slug": _last(item.get("catalog_name"))},
        "write_keys": item.get("write_keys") or [],
        "labels": [{"key": k, "value": v} for k, v in labels.items()] if isinstance(labels, dict) else [],
        "library_config": item.get("library_config"),
        "create_time": item.get("create_time"),
    }
    if item.get("function_config"):
        row["settings"] = config_settings(item["function_config"])
    return row


def destination_row(item: Row, parent: Row) -> Row:
    name = _name(item)
    return {
        "id": name,
        "source_id": item.get("parent") or parent["id"],
        "name": item.get("display_name"),
        "enabled": item.get("enabled"),
        "metadata": {"slug": _last(name)},
        "settings": config_settings(item.get("config")),
        "connection_mode": item.get("connection_mode"),
        "create_time": item.get("create_time"),
        "update_time": item.get("update_time"),
    }


def tracking_plan_row(item: Row, parent: Row) -> Row:
    return {
        "id": _name(item),
        "name": item.get("display_name"),
        "created_at": item.get("create_time"),
        "updated_at": item.get("update_time"),
    }


RULE_SECTIONS = (("global", "COMMON"), ("identify", "IDENTIFY"), ("group", "GROUP"))


def plan_rules(plan: Row) -> List[Row]:
    """A plan's rules as the Public API lists them. The Config API keeps one version of the
    global, identify and group rules; the Public API numbers such a rule 1."""
    rules = plan.get("rules") or {}
    found = [
        {"type": rule_type, "key": "", "version": 1, "json_schema": rules[section]}
        for section, rule_type in RULE_SECTIONS
        if rules.get(section)
    ]
    for event in rules.get("events") or []:
        found.append(
            {
                "type": "TRACK",
                "key": event.get("name") or "",
                "version": event.get("version") or 1,
                "json_schema": event.get("rules"),
                "description": event.get("description"),
            }
        )
    return found


def config_api_endpoints(workspace: str) -> List[Endpoint]:
    """The catalogue for one workspace (its slug is in every path). Destinations are read per
    source: the source's id is its resource name, which is also the path of its destinations."""
    root = f"/workspaces/{workspace}"
    return [
        Endpoint(
            "workspace",
            root,
            "workspace",
            page_size=None,
            is_object=True,
            identifies_workspace=True,
            shape=workspace_row,
        ),
        Endpoint(
            "sources",
            f"{root}/sources",
            "sources",
            page_size=MAX_PAGE_SIZE,
            secret_fields=("write_keys",),
            settings_fields=("settings",),
            shape=source_row,
        ),
        Endpoint(
            "destinations",
            "/{id}/destinations",
            "destinations",
            parent="sources",
            page_size=MAX_PAGE_SIZE,
            settings_fields=("settings",),
            shape=destination_row,
        ),
        Endpoint(
            "tracking_plans",
            f"{root}/tracking-plans",
            "tracking_plans",
            page_size=MAX_PAGE_SIZE,
            shape=tracking_plan_row,
            feature="Protocols",
        ),
        EmbeddedEndpoint(
            "tracking_plan_rules",
            "",
            "rules",
            primary_key=RULE_KEY,
            parent="tracking_plans",
            parent_key="trackingPlanId",
            items_of=plan_rules,
            column_types={"json_schema": "json", "version": "bigint"},
            feature="Protocols",
        ),
    ]


CONFIG_API_TABLES = [e.table for e in config_api_endpoints("workspace")]

# ---- the source --------------------------------------------------------------------------


@dlt.source(name="segment_config_api", section=SECTION)
def segment_config_api(
    access_token: Optional[TSecretValue] = None,
    workspace: Optional[str] = None,
    base_url: Optional[str] = None,
    history: bool = True,
    fingerprint_key: Optional[TSecretValue] = None,
    keep_settings: Optional[Union[str, List[str]]] = None,
    report: Optional[RunReport] = None,
) -> List[DltResource]:
    """A Segment workspace's configuration read through the legacy Config API, into the tables of
    `segment_source` (workspace, sources, destinations, tracking_plans, tracking_plan_rules).

    Args:
        access_token: a Config API access token.
        workspace: the workspace's slug, as in `app.segment.com/<slug>/`.
        base_url: overrides https://platform.segmentapis.com/v1beta, e.g. the simulator's URL.
        history: also keep every version of every object in `<table>_history`.
        fingerprint_key: key of the fingerprints of masked secrets; derived from the token by default.
        keep_settings: settings paths to load unmasked, as for `segment_source`.
        report: collects skipped resources and a failed workspace, for the caller to show.
    """
    token = str(access_token or "").strip()
    if not token:
        raise ConfigurationError(f"No Segment Config API access token is configured; {SETTINGS_HINT}. {NO_NEW_TOKENS}")
    if not workspace:
        raise ConfigurationError(
            f"The Config API needs the workspace's slug (as in app.segment.com/<slug>/); {SETTINGS_HINT}."
        )
    if not _SLUG.match(str(workspace)):
        raise ConfigurationError(
            f"workspace {str(workspace)[:60]!r} is not a workspace slug"
            " (letters, digits, - and _, as in app.segment.com/<slug>/)."
            f' Set {where(SECTION, "workspace")} to e.g. "my-company".'
        )
    otherwise = f"or remove it to use {DEFAULT_BASE_URL}"
    url = check_base_url(base_url, where(SECTION, "base_url"), otherwise) if base_url else DEFAULT_BASE_URL
    endpoints = config_api_endpoints(workspace)
    destinations = f"{urlsplit(url).path}/workspaces/{workspace}/sources/{{source}}/destinations"
    client = ConfigApiClient(url, token, [RateLimit(destinations, DESTINATIONS_PER_MINUTE)])
    key = fingerprint_key or redaction.token_key(token)
    keep = keep_paths(keep_settings, endpoints, SECTION)
    reader = WorkspaceReader(client, f"workspace {workspace}", key, endpoints=endpoints, keep_settings=keep)
    report = report if report is not None else RunReport(isolate_tables=False)
    report.readers = [reader]
    return [endpoint_resource(endpoint, [reader], history, report) for endpoint in endpoints]
