"""The one HTTP layer: auth, the cursor paginator, envelope checks, error mapping, retries.

Built on dlt's `RESTClient` (request loop, paginator protocol) and dlt's retrying requests
session (429/5xx/connection errors, configurable with dlt's `[runtime] request_*` settings).
What Segment needs on top, and dlt lacks, lives here:
- `SegmentCursorPaginator`: `pagination[count]` / `pagination[cursor]` in, `data.pagination.next`
  out, and a stop on a repeated cursor instead of an endless loop;
- `SegmentRESTClient.extract_response`: the `{"data": {<key>: [...]}}` envelope is checked, so a
  changed API fails loudly instead of loading nothing;
- `raise_for_segment_status`: statuses become typed errors with actionable messages.
The token travels only in the `Authorization` header set by `BearerTokenAuth`; it is never part
of a URL, a log line or an error message.
"""

import ipaddress
import json
from typing import Any, Dict, Iterator, List, Optional
from urllib.parse import urlsplit

import requests
from dlt.common.configuration.specs import RuntimeConfiguration
from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator, SinglePagePaginator

from segment_source.errors import (
    SECRETS_HINT,
    ApiUnreachableError,
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    SegmentApiError,
    UnexpectedResponseError,
)

BASE_URLS = {"us": "https://api.segmentapis.com", "eu": "https://eu1.api.segmentapis.com"}
USER_AGENT = "segment-source (dlt)"


def resolve_base_url(region: str, base_url: Optional[str]) -> str:
    """The API root for `region`, or `base_url` when given (https, or http on loopback only)."""
    if base_url:
        parts = urlsplit(base_url)
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ConfigurationError(
                f"base_url {base_url!r} uses plain http to a host that is not on this machine, so"
                " the API token would travel in clear text. Use https:// (plain http is accepted"
                " only for 127.0.0.1/localhost, e.g. the simulator)."
            )
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"base_url {base_url!r} is not an http(s) URL. Set [sources.segment_source] base_url"
                " (or SOURCES__SEGMENT_SOURCE__BASE_URL) to e.g. https://api.segmentapis.com, or"
                " remove it and set region instead."
            )
        return base_url.rstrip("/")
    try:
        return BASE_URLS[str(region).strip().lower()]
    except KeyError:
        raise ConfigurationError(
            f"region {region!r} is not a Segment region. Set [sources.segment_source] region in"
            " .dlt/config.toml (or SOURCES__SEGMENT_SOURCE__REGION) to \"us\" or \"eu\"."
        ) from None


def _is_loopback(host: Optional[str]) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


class SegmentCursorPaginator(JSONResponseCursorPaginator):
    """Segment's cursor pagination, asking for `page_size` items per page."""

    def __init__(self, page_size: int) -> None:
        super().__init__(cursor_path="data.pagination.next", cursor_param="pagination[cursor]")
        self.page_size = page_size
        self._seen_cursors: set = set()

    def init_request(self, request: requests.Request) -> None:
        request.params = dict(request.params or {}, **{"pagination[count]": self.page_size})

    def update_state(self, response: requests.Response, data: Optional[List[Any]] = None) -> None:
        super().update_state(response, data)
        cursor = self._next_reference
        if cursor is not None:
            if cursor in self._seen_cursors:
                raise UnexpectedResponseError(
                    f"Segment returned the cursor {cursor!r} twice for {_endpoint(response)}; stopping"
                    " instead of paging in a loop. Rerun later; if it persists, report it to Segment."
                )
            self._seen_cursors.add(cursor)


class SegmentRESTClient(RESTClient):
    """`RESTClient` that checks the Public API envelope of every page."""

    def extract_response(self, response: requests.Response, data_selector: Any) -> List[Any]:
        key = str(data_selector).split(".", 1)[1]
        data = _data(response)
        items = data.get(key)
        if not isinstance(items, list):
            raise UnexpectedResponseError(
                f"{_endpoint(response)} answered without a list under data.{key} (data has keys"
                f" {sorted(data)}). The Public API may have changed; please report this."
            )
        return items


class SegmentClient:
    """Reads one workspace (one token) of the Segment Public API."""

    def __init__(self, base_url: str, api_key: str, session: Optional[requests.Session] = None) -> None:
        self.base_url = base_url
        self._rest = SegmentRESTClient(
            base_url=base_url,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            auth=BearerTokenAuth(api_key),
            session=session or retrying_session(),
        )

    def get(self, path: str, key: str) -> Any:
        """One object endpoint, e.g. `GET /` -> `data.workspace`."""
        response = self._call(lambda: self._rest.get(path, hooks={"response": [raise_for_segment_status]}))
        data = _data(response)
        if key not in data:
            raise UnexpectedResponseError(
                f"{_endpoint(response)} answered without data.{key} (data has keys {sorted(data)})."
                " The Public API may have changed; please report this."
            )
        return data[key]

    def pages(self, path: str, key: str, page_size: Optional[int]) -> Iterator[List[Dict[str, Any]]]:
        """The pages of a list endpoint, asking for `page_size` items per page."""
        paginator = SegmentCursorPaginator(page_size) if page_size else SinglePagePaginator()
        pages = self._rest.paginate(
            path,
            paginator=paginator,
            data_selector=f"data.{key}",
            hooks={"response": [raise_for_segment_status]},
        )
        while True:
            page = self._call(lambda: next(pages, None))
            if page is None:
                return
            yield list(page)

    def _call(self, fn: Any) -> Any:
        try:
            return fn()
        except SegmentApiError:
            raise
        except (requests.ConnectionError, requests.Timeout) as ex:
            raise ApiUnreachableError(
                f"Could not reach the Segment API at {self.base_url} ({type(ex).__name__}) after"
                " retrying. Check the network connection and the configured region or base_url"
                " ([sources.segment_source] in .dlt/config.toml)."
            ) from None


def retrying_session() -> requests.Session:
    """dlt's retrying session, tuned by dlt's `[runtime] request_*` settings."""
    client = Client(raise_for_status=False)
    client.update_from_config(_runtime_config())
    return client.session


def _runtime_config() -> RuntimeConfiguration:
    from dlt.common.configuration import resolve_configuration

    return resolve_configuration(RuntimeConfiguration())


def raise_for_segment_status(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """Response hook: turn an error status into the matching typed error."""
    status = response.status_code
    if status < 400:
        return
    endpoint = _endpoint(response)
    detail = _error_detail(response)
    host = urlsplit(response.url).netloc
    if status == 401:
        raise AuthenticationError(
            f"Segment at {host} rejected the API token (401 Unauthorized: {detail}). The token is"
            f" wrong, expired or revoked. Create a new Public API token in Segment and {SECRETS_HINT}.",
            endpoint,
            response,
        )
    if status == 403:
        raise PermissionDeniedError(f"Segment refused {endpoint} (403 Forbidden: {detail}).", endpoint, response)
    if status == 404:
        raise NotFoundError(f"Segment has nothing at {endpoint} (404 Not Found: {detail}).", endpoint, response)
    raise SegmentApiError(f"Segment answered {status} to {endpoint}: {detail}.", endpoint, response)


def _endpoint(response: requests.Response) -> str:
    return f"GET {urlsplit(response.url).path}"


def _data(response: requests.Response) -> Dict[str, Any]:
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        raise UnexpectedResponseError(
            f"{_endpoint(response)} answered with a body that is not JSON"
            f" (Content-Type {response.headers.get('Content-Type')!r}, {len(response.content)} bytes)."
            " Segment may be having an incident; rerun later."
        ) from None
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        keys = sorted(body) if isinstance(body, dict) else type(body).__name__
        raise UnexpectedResponseError(
            f"{_endpoint(response)} answered without the Public API's data envelope (top level: {keys})."
            " The Public API may have changed; please report this."
        )
    return data


def _error_detail(response: requests.Response) -> str:
    """Segment's own error messages (`{"errors": [{"message": ...}]}`), or the reason phrase."""
    try:
        errors = response.json().get("errors")
        messages = [e.get("message") or e.get("type") for e in errors if isinstance(e, dict)]
        if messages:
            return "; ".join(str(m) for m in messages)[:300]
    except (ValueError, AttributeError, TypeError):
        pass
    return response.reason or "no details"
