"""The one HTTP layer: auth, the cursor paginator, envelope checks, error mapping, retries, pacing.

Built on dlt's `RESTClient` (request loop, paginator protocol) and dlt's requests `Session`
(timeouts). What Segment needs on top, and dlt lacks, lives here:
- `SegmentCursorPaginator`: `pagination[count]` / `pagination[cursor]` in, `data.pagination.next`
  out; stops with an error on a repeated cursor or a runaway number of pages;
- `SegmentRESTClient.extract_response`: the `{"data": {<key>: [...]}}` envelope is checked, so a
  changed API fails loudly instead of loading nothing;
- `RetryPolicy`: dlt's retry reads only `Retry-After`, which Segment never sends; Segment's 429
  says how long to wait in its body (`msBeforeNext`). 5xx answers, dropped connections and
  timeouts get bounded retries with exponential backoff and full jitter; 401 and other 4xx
  answers are never retried;
- `ratelimit.RateLimiter`: pacing before the limit is hit;
- `raise_for_segment_status`: statuses become typed errors with actionable messages.
The token travels only in the `Authorization` header set by `BearerTokenAuth`; it is never part
of a URL, a log line or an error message.
"""

import ipaddress
import json
import logging
import random
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

import requests
from dlt.common.configuration import resolve_configuration
from dlt.common.configuration.specs import RuntimeConfiguration
from dlt.common.jsonpath import JSONPath, compile_path
from dlt.sources.helpers.requests.session import Session
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator, SinglePagePaginator

from segment_source import redaction
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
from segment_source.ratelimit import RateLimiter

BASE_URLS = {"us": "https://api.segmentapis.com", "eu": "https://eu1.api.segmentapis.com"}
USER_AGENT = "segment-source (dlt)"
FALLBACK_PAGE_SIZE = 200  # valid under every version of the API docs
MAX_PAGES = 10_000  # 10 million items at 1000 a page: more means the API is looping
MAX_RATE_LIMIT_WAITS = 30
SNIPPET_LENGTH = 160

logger = logging.getLogger("segment_source")


def resolve_base_url(region: str, base_url: Optional[str]) -> str:
    """The API root for `region`, or `base_url` when given (https, or http on loopback only)."""
    if base_url:
        return check_base_url(
            base_url, "segment_source", "e.g. https://api.segmentapis.com, or remove it and set region instead"
        )
    try:
        return BASE_URLS[str(region).strip().lower()]
    except KeyError:
        raise ConfigurationError(
            f"region {region!r} is not a Segment region. Set [sources.segment_source] region in"
            ' .dlt/config.toml (or SOURCES__SEGMENT_SOURCE__REGION) to "us" or "eu".'
        ) from None


def check_base_url(base_url: str, section: str, otherwise: str) -> str:
    """`base_url` without a trailing slash, if it is https (or http to this machine only).
    Errors name the setting in `[sources.<section>]`; `otherwise` says what else to do."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"base_url {base_url!r} is not an http(s) URL. Set [sources.{section}] base_url"
            f" (or SOURCES__{section.upper()}__BASE_URL) to an https:// URL, {otherwise}."
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigurationError(
            f"base_url {base_url!r} uses plain http to a host that is not this machine, so"
            " the API token would travel in clear text. Use https:// (plain http is accepted"
            " only for 127.0.0.1/localhost, e.g. the simulator)."
        )
    return base_url.rstrip("/")


def _is_loopback(host: Optional[str]) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


@lru_cache(maxsize=None)
def _compiled(path: str) -> JSONPath:
    # A paginator per listing means thousands per run; jsonpath-ng rebuilds its parser on every
    # parse (20 ms each with jsonpath-ng 1.8, what pip installs on Python 3.10), so compile each path once.
    return compile_path(path)


class SegmentCursorPaginator(JSONResponseCursorPaginator):
    """Segment's cursor pagination, asking for `page_size` items per page (the Public API's
    parameters unless told otherwise: the legacy Config API names them differently)."""

    def __init__(
        self,
        page_size: int,
        cursor_path: str = "data.pagination.next",
        cursor_param: str = "pagination[cursor]",
        count_param: str = "pagination[count]",
    ) -> None:
        super().__init__(cursor_path=_compiled(cursor_path), cursor_param=cursor_param)
        self.count_param = count_param
        self.page_size = page_size
        self.cursor: Optional[str] = None
        """The cursor of the page being asked for (None for the first)."""
        self._seen_cursors: set = set()
        self._pages = 0

    def init_request(self, request: requests.Request) -> None:
        request.params = dict(request.params or {}, **{self.count_param: self.page_size})
        if self.cursor is not None:
            request.params[self.cursor_param] = self.cursor

    def update_state(self, response: requests.Response, data: Optional[List[Any]] = None) -> None:
        super().update_state(response, data)
        self._pages += 1
        cursor = self._next_reference
        if cursor is None:
            return
        total = parse_json(response).get("data", {}).get("pagination", {}).get("totalEntries")
        expected_pages = -(-int(total) // self.page_size) if isinstance(total, (int, float)) else MAX_PAGES
        if cursor in self._seen_cursors:
            raise UnexpectedResponseError(
                f"Segment returned the cursor {cursor!r} twice for {endpoint_of(response)}; stopping"
                " instead of paging in a loop. Rerun later; if it persists, report it to Segment."
            )
        if self._pages >= min(MAX_PAGES, expected_pages + 2):
            raise UnexpectedResponseError(
                f"{endpoint_of(response)} kept returning a next page after {self._pages} pages"
                f" ({total if total is not None else 'no'} items announced); stopping instead of paging forever."
                " Rerun later; if it persists, report it to Segment."
            )
        self._seen_cursors.add(cursor)
        self.cursor = cursor


class SegmentRESTClient(RESTClient):
    """`RESTClient` that checks the Public API envelope of every page."""

    def extract_response(self, response: requests.Response, data_selector: Any) -> List[Any]:
        key = str(data_selector).split(".", 1)[1]
        data = _data(response)
        items = data.get(key)
        if not isinstance(items, list):
            raise UnexpectedResponseError(
                f"{endpoint_of(response)} answered without a list under data.{key} (data has keys"
                f" {sorted(data)}). The Public API may have changed; please report this."
            )
        return items


@dataclass
class RequestStats:
    """What one client did: for logs, benchmarks and the fault-run report."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    waited_seconds: float = 0.0
    by_reason: Dict[str, int] = field(default_factory=dict)


class RetryPolicy:
    """Which failures are retried, and how long to wait before the next attempt."""

    def __init__(self, max_attempts: int, backoff_factor: float, max_delay: float) -> None:
        self.max_attempts = max(1, max_attempts)
        self.backoff_factor = backoff_factor
        self.max_delay = max_delay

    def wait(self, failure: BaseException, attempt: int, rate_limited: int) -> Optional[float]:
        """Seconds to wait before retrying after `failure`, or None to give up."""
        if isinstance(failure, SegmentApiError) and failure.status == 429:
            if rate_limited > MAX_RATE_LIMIT_WAITS:
                return None
            return _ms_before_next(failure.response) / 1000 + 0.05
        if isinstance(failure, requests.exceptions.SSLError):
            return None  # a certificate that fails verification will not pass on a retry
        retriable = isinstance(
            failure, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
        )
        retriable = retriable or (isinstance(failure, SegmentApiError) and (failure.status or 0) >= 500)
        if not retriable or attempt >= self.max_attempts:
            return None
        # exponential backoff with full jitter: retries of many clients do not arrive together
        return random.uniform(0, min(self.max_delay, self.backoff_factor * 2 ** (attempt - 1)))


def _ms_before_next(response: Optional[requests.Response]) -> float:
    """Segment's 429 body: {"errors": [{"data": {"msBeforeNext": 57647, ...}}]}."""
    try:
        for error in response.json().get("errors", []):  # type: ignore[union-attr]
            value = (error.get("data") or {}).get("msBeforeNext")
            if isinstance(value, (int, float)) and value >= 0:
                return float(value)
    except (ValueError, AttributeError):
        pass
    return 1000.0  # no hint: a short, polite pause


class SegmentClient:
    """Reads one workspace (one token) of the Segment Public API.

    The envelope and the paginator are the Public API's; a client of another API with the same
    transport policy overrides `rest_client_class`, `paginator` and `unwrap`, and says in its
    messages which settings to fix (`config_section`, `token_advice`).
    """

    rest_client_class = SegmentRESTClient
    config_section = "segment_source"
    token_advice = f"Create a new Public API token in Segment and {SECRETS_HINT}."
    """What to do when Segment rejects the token (401)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        limits: List[Tuple[str, int, bool]] = (),
        policy: Optional[RetryPolicy] = None,
    ) -> None:  # type: ignore[assignment]
        self.base_url = base_url
        self.stats = RequestStats()
        self.limiter = RateLimiter(list(limits))
        runtime = resolve_configuration(RuntimeConfiguration())
        self.policy = policy or RetryPolicy(
            runtime.request_max_attempts, runtime.request_backoff_factor, runtime.request_max_retry_delay
        )
        session = Session(timeout=runtime.request_timeout, raise_for_status=False)
        session.send = self._sender(session.send)  # type: ignore[method-assign]
        self._rest = self.rest_client_class(
            base_url=base_url,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            auth=BearerTokenAuth(api_key),
            session=session,
        )

    def get(self, path: str, key: str) -> Any:
        """One object endpoint, e.g. `GET /` -> `data.workspace`."""
        return self.unwrap(self._call(path, lambda: self._rest.get(path)), key)

    def unwrap(self, response: requests.Response, key: str) -> Any:
        """The object of an object endpoint's answer: `data.<key>`."""
        data = _data(response)
        if key not in data:
            raise UnexpectedResponseError(
                f"{endpoint_of(response)} answered without data.{key} (data has keys {sorted(data)})."
                " The Public API may have changed; please report this."
            )
        return data[key]

    def paginator(self, page_size: Optional[int]) -> Any:
        """A fresh paginator for one listing; `page_size` None: a single page."""
        return SegmentCursorPaginator(page_size) if page_size else SinglePagePaginator()

    def pages(
        self, path: str, key: str, page_size: Optional[int], params: Optional[Mapping[str, str]] = None
    ) -> Iterator[List[Dict[str, Any]]]:
        """The pages of a list endpoint, asking for `page_size` items per page.

        A 422 that names the page size (an API that still caps pages at 200) switches to 200
        items and carries on from the same cursor.
        """
        paginator = self.paginator(page_size)
        while True:
            pages = self._rest.paginate(
                path,
                params=dict(params or {}),
                paginator=paginator,
                data_selector=f"data.{key}",
                hooks={"response": []},
            )
            try:
                while True:
                    page = self._call(path, lambda pages=pages: next(pages, None))
                    if page is None:
                        return
                    yield list(page)
            except SegmentApiError as ex:
                if not (
                    ex.status == 422
                    and isinstance(paginator, SegmentCursorPaginator)
                    and paginator.page_size > FALLBACK_PAGE_SIZE
                    and "count" in str(ex)
                ):
                    raise
                logger.warning(
                    "%s refused %s items a page; asking for %s.", ex.endpoint, paginator.page_size, FALLBACK_PAGE_SIZE
                )
                paginator.page_size = FALLBACK_PAGE_SIZE

    def _sender(self, send: Any) -> Any:
        """Wrap `Session.send`: pace, send, read the rate-limit headers, raise, retry."""

        def send_with_policy(request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            attempt, rate_limited = 0, 0
            while True:
                attempt += 1
                self.limiter.before(request.url)
                self.stats.requests += 1
                try:
                    response = send(request, **kwargs)
                    self.limiter.observe(response.headers)
                    raise_for_segment_status(response, self.token_advice)
                    return response
                except (
                    SegmentApiError,
                    requests.ConnectionError,
                    requests.Timeout,
                    requests.exceptions.ChunkedEncodingError,
                ) as failure:
                    rate_limited += isinstance(failure, SegmentApiError) and failure.status == 429
                    delay = self.policy.wait(failure, attempt - rate_limited, rate_limited)
                    if delay is None:
                        raise
                    reason = f"{failure.status}" if isinstance(failure, SegmentApiError) else type(failure).__name__
                    self.stats.retries += 1
                    self.stats.rate_limited += reason == "429"
                    self.stats.by_reason[reason] = self.stats.by_reason.get(reason, 0) + 1
                    self.stats.waited_seconds += delay
                    logger.info(
                        "%s %s answered %s; retrying in %.2fs",
                        request.method,
                        urlsplit(request.url).path,
                        reason,
                        delay,
                    )
                    time.sleep(delay)

        return send_with_policy

    def _call(self, path: str, fn: Any) -> Any:
        try:
            return fn()
        except SegmentApiError as ex:
            if ex.status == 429 or (ex.status or 0) >= 500:
                raise SegmentApiError(
                    f"{ex} Gave up after {self.policy.max_attempts} attempts; rerun later.", ex.endpoint, ex.response
                ) from None
            raise
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as ex:
            if isinstance(ex, requests.exceptions.SSLError):
                raise ApiUnreachableError(
                    f"The TLS certificate of {self.base_url} could not be verified, so no request was sent"
                    " with the token. Check base_url; certificate checks cannot be turned off."
                ) from None
            raise ApiUnreachableError(
                f"Could not reach the Segment API at {self.base_url} for GET {path} ({type(ex).__name__})"
                f" after {self.policy.max_attempts} attempts. Check the network connection and the"
                f" configured region or base_url ([sources.{self.config_section}] in .dlt/config.toml)."
            ) from None


def raise_for_segment_status(response: requests.Response, token_advice: str = SegmentClient.token_advice) -> None:
    """Turn an error status into the matching typed error; a 401 ends with `token_advice`."""
    status = response.status_code
    if status < 400:
        return
    endpoint = endpoint_of(response)
    detail = _error_detail(response)
    host = urlsplit(response.url).netloc
    if status == 401:
        raise AuthenticationError(
            f"Segment at {host} rejected the API token (401 Unauthorized: {detail}). The token is"
            f" wrong, expired or revoked. {token_advice}",
            endpoint,
            response,
        )
    if status == 403:
        raise PermissionDeniedError(f"Segment refused {endpoint} (403 Forbidden: {detail}).", endpoint, response)
    if status == 404:
        raise NotFoundError(f"Segment has nothing at {endpoint} (404 Not Found: {detail}).", endpoint, response)
    raise SegmentApiError(f"Segment answered {status} to {endpoint}: {detail}.", endpoint, response)


def endpoint_of(response: requests.Response) -> str:
    return f"GET {urlsplit(response.url).path}"


def parse_json(response: requests.Response) -> Any:
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        raise UnexpectedResponseError(
            f"{endpoint_of(response)} answered with a body that is not JSON ({response.status_code},"
            f" {len(response.content)} bytes): {body_snippet(response)}."
            " Segment may be having an incident; rerun later."
        ) from None


def _data(response: requests.Response) -> Dict[str, Any]:
    body = parse_json(response)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise UnexpectedResponseError(
            f"{endpoint_of(response)} answered without the Public API's data envelope: {body_snippet(response)}."
            " The Public API may have changed; please report this."
        )
    return data


def body_snippet(response: requests.Response) -> str:
    """The start of a body, with anything that looks like a secret masked."""
    text = response.content[: SNIPPET_LENGTH * 4].decode("utf-8", "replace")
    text = redaction.redact_text(text)
    return repr(text[:SNIPPET_LENGTH] + ("…" if len(text) > SNIPPET_LENGTH else ""))


def _error_detail(response: requests.Response) -> str:
    """Segment's own error messages (`{"errors": [{"message": ...}]}`; the legacy Config API's
    `{"error": ..., "code": ...}`), or the reason phrase."""
    try:
        body = response.json()
        if isinstance(body.get("error"), str):
            return body["error"][:300]
        messages = [e.get("message") or e.get("type") for e in body.get("errors") if isinstance(e, dict)]
        if messages:
            return "; ".join(str(m) for m in messages)[:300]
    except (ValueError, AttributeError, TypeError):
        pass
    return response.reason or "no details"
