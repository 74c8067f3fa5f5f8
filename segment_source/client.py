"""The one HTTP layer: auth, the cursor paginator, envelope checks, the status policy, retries, pacing.

Read top to bottom:
- `STATUS_POLICY`: what each answer status means for the run, in one declared table (in the
  spirit of Airbyte's `response_filters`);
- `RetryPolicy`: how long to wait before the next attempt, by that table;
- `SegmentSession`: dlt's requests `Session` whose `send` paces, sends, reads the rate-limit
  headers, turns error statuses into typed errors and retries; every request of a client goes
  through it, whoever builds the request. It prepares a request without body or cookies itself,
  as requests would but in half the CPU;
- `SegmentCursorPaginator`: `pagination[count]` / `pagination[cursor]` in, `data.pagination.next`
  out; it stops with an error on a repeated cursor or a runaway number of pages;
- `SegmentRESTClient`: dlt's `RESTClient` that checks the `{"data": {<key>: [...]}}` envelope of
  every page, so a changed API fails loudly instead of loading nothing;
- `SegmentClient`: one workspace's token, its session, limiter and statistics; `get` and `pages`.

Why not dlt's own retrying client (`dlt.sources.helpers.requests.Client`): its retry reads only
`Retry-After`, which Segment never sends (its 429 says how long to wait in the body,
`msBeforeNext`); it counts 429 waits and 5xx retries against one budget (a long run against a
tight rate limit would give up after 5 waits); and it would retry SSL errors, which never pass.
The token travels only in the `Authorization` header set by `BearerTokenAuth`; it is never part
of a URL, a log line or an error message.
"""

import enum
import json
import logging
import os
import random
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Type
from urllib.parse import urlencode

import orjson
import requests
import urllib3
from dlt.common import logger as dlt_logger
from dlt.common.configuration import resolve_configuration
from dlt.common.configuration.specs import RuntimeConfiguration
from dlt.common.jsonpath import JSONPath, compile_path, find_values
from dlt.sources.helpers.requests.session import Session
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from dlt.sources.helpers.rest_client.paginators import (
    BasePaginator,
    JSONResponseCursorPaginator,
    SinglePagePaginator,
)
from requests.cookies import RequestsCookieJar
from requests.sessions import merge_hooks
from requests.structures import CaseInsensitiveDict

from segment_source import redaction
from segment_source.errors import (
    SECRETS_HINT,
    ApiUnreachableError,
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    SegmentApiError,
    UnexpectedResponseError,
)
from segment_source.ratelimit import RateLimit, RateLimiter, template_regex
from segment_source.settings import SECTION

USER_AGENT = "segment-source (dlt)"
FALLBACK_PAGE_SIZE = 200  # valid under every version of the API docs
MAX_PAGES = 10_000  # 10 million items at 1000 a page: more means the API is looping
MAX_RATE_LIMIT_WAITS = 30
SNIPPET_LENGTH = 160
DEADLINE_FACTOR = 3
"""A request (connect and the whole body) must finish within this many `request_timeout`s: the
timeout alone is per socket read, so a body that trickles in would never time out."""
BODY_CHUNK = 64 * 1024


class DeadlineExceeded(requests.Timeout):
    """A request's body did not arrive completely within its deadline."""


TRANSIENT_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
"""Failures of the transport itself: worth another attempt (SSL errors aside, see `RetryPolicy`)."""

logger = logging.getLogger("segment_source")


# ---- what an answer's status means ---------------------------------------------------------


class Action(enum.Enum):
    FATAL = "the token is rejected: stop the workspace, never retry"
    SKIP = "a feature or object the token cannot see: skip the table, load the rest"
    MEDIA_TYPE = "ask again with the endpoint's versioned media type"
    PAGE_SIZE = "ask again for 200 items from the same cursor, if the error names the page size"
    WAIT = "wait as long as the body's msBeforeNext says, then ask again"
    BACKOFF = "bounded retries with exponential backoff and full jitter"
    FAIL = "the endpoint fails: its table keeps what it had"


@dataclass(frozen=True)
class StatusRule:
    action: Action
    error: Type[SegmentApiError] = SegmentApiError
    """The error raised for the status (the caller decides by its class)."""


STATUS_POLICY: Dict[int, StatusRule] = {
    401: StatusRule(Action.FATAL, AuthenticationError),
    403: StatusRule(Action.SKIP, PermissionDeniedError),
    404: StatusRule(Action.SKIP, NotFoundError),
    406: StatusRule(Action.MEDIA_TYPE),
    422: StatusRule(Action.PAGE_SIZE),
    429: StatusRule(Action.WAIT),
}
SERVER_ERROR_RULE = StatusRule(Action.BACKOFF)
OTHER_ERROR_RULE = StatusRule(Action.FAIL)


def rule_for(status: int) -> StatusRule:
    """The rule of an error status (400 and above)."""
    if status in STATUS_POLICY:
        return STATUS_POLICY[status]
    return SERVER_ERROR_RULE if status >= 500 else OTHER_ERROR_RULE


def raise_for_segment_status(response: requests.Response, token_advice: str) -> None:
    """Turn an error status into its rule's typed error; a 401 ends with `token_advice`."""
    status = response.status_code
    if status < 400:
        return
    endpoint, detail, rule = endpoint_of(response), _error_detail(response), rule_for(status)
    if rule.action is Action.FATAL:
        message = (
            f"Segment at {_host(response)} rejected the API token ({status} {response.reason or ''}: {detail})."
            f" The token is wrong, expired or revoked. {token_advice}"
        )
    elif status == 403:
        message = f"Segment refused {endpoint} (403 Forbidden: {detail})."
    elif status == 404:
        message = f"Segment has nothing at {endpoint} (404 Not Found: {detail})."
    else:
        message = f"Segment answered {status} to {endpoint}: {detail}."
    raise rule.error(message, endpoint, response)


# ---- retries -------------------------------------------------------------------------------


class RetryPolicy:
    """How long to wait before the next attempt after a failure, or whether to give up.

    429 waits and transport/5xx retries have separate budgets: a run against a tight rate limit
    waits as often as Segment asks (up to `MAX_RATE_LIMIT_WAITS`), and still gets every retry
    for a flaky network."""

    def __init__(self, max_attempts: int, backoff_factor: float, max_delay: float) -> None:
        self.max_attempts = max(1, max_attempts)
        self.backoff_factor = backoff_factor
        self.max_delay = max_delay

    def wait(self, failure: BaseException, attempt: int, rate_limited: int) -> Optional[float]:
        """Seconds to wait before retrying after `failure`: the `attempt`-th failure that was not a
        429, after `rate_limited` 429s. None: give up."""
        if isinstance(failure, SegmentApiError):
            action = rule_for(failure.status or 0).action
            if action is Action.WAIT:
                return None if rate_limited > MAX_RATE_LIMIT_WAITS else _ms_before_next(failure.response) / 1000 + 0.05
            if action is not Action.BACKOFF:
                return None
        elif isinstance(failure, requests.exceptions.SSLError):
            return None  # a certificate that fails verification will not pass on a retry
        elif not isinstance(failure, TRANSIENT_ERRORS):
            return None
        if attempt >= self.max_attempts:
            return None
        # exponential backoff with full jitter: retries of many clients do not arrive together
        return random.uniform(0, min(self.max_delay, self.backoff_factor * 2 ** (attempt - 1)))


def _ms_before_next(response: Optional[requests.Response]) -> float:
    """Segment's 429 body: {"errors": [{"data": {"msBeforeNext": 57647, ...}}]}."""
    try:
        for error in response.json().get("errors", []):  # type: ignore[union-attr]  # None: AttributeError below
            value = (error.get("data") or {}).get("msBeforeNext")
            if isinstance(value, (int, float)) and value >= 0:
                return float(value)
    except (ValueError, AttributeError):
        pass
    return 1000.0  # no hint: a short, polite pause


@dataclass
class RequestStats:
    """What one client did: for logs, benchmarks and the fault-run report. Requests of one client
    run in several threads (the fan-out to children): counts change under a lock."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    waited_seconds: float = 0.0
    by_reason: Dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def sent(self) -> None:
        with self._lock:
            self.requests += 1

    def retried(self, reason: str, delay: float) -> None:
        with self._lock:
            self.retries += 1
            self.rate_limited += reason == "429"
            self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
            self.waited_seconds += delay


class MediaTypes:
    """Which versioned media type to ask of an endpoint that refuses `application/json` with 406.

    Every request asks `application/json` first, which Segment forwards to the endpoint's most
    stable version (notes.md 1.2). An endpoint that answers 406 instead is asked once more with its
    declared media type (`Endpoint.version`), and every later request to it asks that directly."""

    def __init__(self, declared: Sequence[Tuple[str, str]] = ()) -> None:
        """`declared`: (path template with `{id}`, media type) per endpoint."""
        self._declared = [(template_regex(template), template, media_type) for template, media_type in declared]
        self._chosen: Dict[str, str] = {}
        """Path template -> media type, once an endpoint has asked for it."""

    def chosen(self, path: str) -> Optional[str]:
        found = self._find(path)
        return self._chosen.get(found[0]) if found else None

    def choose(self, path: str) -> bool:
        """Remember the declared media type of `path`'s endpoint; False if it declares none."""
        found = self._find(path)
        if found is None:
            return False
        self._chosen[found[0]] = found[1]
        return True

    def _find(self, path: str) -> Optional[Tuple[str, str]]:
        for regex, template, media_type in self._declared:
            if regex.match(path):
                return template, media_type
        return None


class SegmentSession(Session):
    """dlt's requests `Session` (timeouts) with Segment's transport policy in `send`: pace, send
    within a deadline, read the rate-limit headers, raise typed errors, retry by `RetryPolicy`."""

    def __init__(
        self,
        policy: RetryPolicy,
        limiter: RateLimiter,
        media_types: "MediaTypes",
        stats: RequestStats,
        timeout: float,
        token_advice: str,
    ) -> None:
        super().__init__(timeout=timeout, raise_for_status=False)
        self.policy, self.limiter, self.stats, self.token_advice = policy, limiter, stats, token_advice
        self.deadline = DEADLINE_FACTOR * timeout
        self.media_types = media_types

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        """requests' own preparation of a request without a body, cookies or environment (the
        client's every request), in about half its CPU; any other request goes through requests.

        requests merges the session's and the request's settings with checks that cost 10-20 µs
        each on Python 3.11 (`isinstance` against a typing `Protocol`) and builds a cookie header
        from an empty jar: 363 µs a request against 190 here, of 1.3-1.5 ms of CPU per fan-out
        request in all (`benchmarks/request_cpu.py`). The result is the same `PreparedRequest` (a
        test compares the two for each kind of request the client sends, and on the wire)."""
        if (
            self.trust_env
            or self.auth is not None
            or self.params
            or len(self.cookies)
            or request.cookies
            or request.data
            or request.files
            or request.json is not None
            or not isinstance(request.params, dict)
            or request.url is None
        ):
            return super().prepare_request(request)
        headers: "CaseInsensitiveDict[Any]" = CaseInsensitiveDict(self.headers)
        headers.update(request.headers or {})
        params = [(k, v) for k, values in request.params.items() for v in _param_values(values) if v is not None]
        prepared = requests.PreparedRequest()
        prepared.prepare_method(request.method)
        prepared.prepare_url(request.url, urlencode(params))
        prepared.prepare_headers({k: v for k, v in headers.items() if v is not None})
        prepared._cookies = RequestsCookieJar()  # what requests keeps for redirects: none here
        prepared.prepare_body(request.data, request.files, request.json)
        prepared.prepare_auth(request.auth, request.url)
        prepared.prepare_hooks(merge_hooks(request.hooks, self.hooks))
        return prepared

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Dict[str, Any]:
        """requests' merge of the send settings (35 µs a request with its `Protocol` checks), for a
        session that does not read the environment; one that does goes through requests."""
        if self.trust_env or not isinstance(proxies, dict) or not isinstance(self.proxies, dict):
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        return {
            "proxies": {k: v for k, v in {**self.proxies, **proxies}.items() if v is not None},
            "stream": self.stream if stream is None else stream,
            "verify": self.verify if verify is None else verify,
            "cert": self.cert if cert is None else cert,
        }

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        attempt, rate_limited = 0, 0
        path = _path(request.url)
        while True:
            attempt += 1
            media_type = self.media_types.chosen(path)
            if media_type:
                request.headers["Accept"] = media_type
            self.limiter.before(request.url or "")
            self.stats.sent()
            try:
                response = self._send_within_deadline(request, **kwargs)
                self.limiter.observe(response.headers)
                raise_for_segment_status(response, self.token_advice)
                return response
            except SegmentApiError as failure:
                if failure.status == 406 and not media_type and self.media_types.choose(path):
                    attempt -= 1  # not a retry: the same request in the form the endpoint speaks
                    logger.info("GET %s answered 406; asking for %s", path, self.media_types.chosen(path))
                    continue
                rate_limited += failure.status == 429
                self._wait_or_raise(request, failure, attempt - rate_limited, rate_limited)
            except TRANSIENT_ERRORS as failure:
                self._wait_or_raise(request, failure, attempt - rate_limited, rate_limited)

    def _send_within_deadline(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Send, then read the body as it arrives until it is complete or the deadline has passed.

        Not `iter_content`: with urllib3 2 each of its chunks blocks until the chunk is full, so a
        body that trickles in would be read to its end before the deadline is looked at. `read1`
        returns what one read brings; its errors become those `iter_content` raises."""
        deadline = time.monotonic() + self.deadline
        kwargs["stream"] = True
        response = super().send(request, **kwargs)
        chunks = []
        try:
            while chunk := response.raw.read1(BODY_CHUNK, decode_content=True):
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise DeadlineExceeded(
                        f"GET {_path(request.url)} sent its body too slowly: not complete within the deadline"
                        f" of {self.deadline:.0f} s"
                    )
        except urllib3.exceptions.ProtocolError as ex:
            raise requests.exceptions.ChunkedEncodingError(ex) from None
        except urllib3.exceptions.DecodeError as ex:
            raise requests.exceptions.ContentDecodingError(ex) from None
        except urllib3.exceptions.ReadTimeoutError as ex:
            raise requests.ConnectionError(ex) from None
        except urllib3.exceptions.SSLError as ex:
            raise requests.exceptions.SSLError(ex) from None
        finally:
            response.close()
        response._content = b"".join(chunks)  # what requests does itself when it reads the body
        return response

    def _wait_or_raise(self, request: requests.PreparedRequest, failure: Exception, attempt: int, limited: int) -> None:
        delay = self.policy.wait(failure, attempt, limited)
        if delay is None:
            raise failure
        reason = f"{failure.status}" if isinstance(failure, SegmentApiError) else type(failure).__name__
        self.stats.retried(reason, delay)
        logger.info("GET %s answered %s; retrying in %.2fs", _path(request.url), reason, delay)
        time.sleep(delay)


def _param_values(values: Any) -> Any:
    """A query parameter's values as requests reads them: a string, or anything not iterable, is one."""
    return [values] if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__") else values


# ---- pages ---------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _compiled(path: str) -> JSONPath:
    # A paginator per listing means thousands per run; jsonpath-ng rebuilds its parser on every
    # parse (20 ms each with jsonpath-ng 1.8, what pip installs on Python 3.10): compile once.
    return compile_path(path)


class SegmentCursorPaginator(JSONResponseCursorPaginator):
    """Segment's cursor pagination, asking for `page_size` items per page (the Public API's
    parameters unless told otherwise: the legacy Config API names them differently).

    The runaway guard counts pages by the items actually served: a server that serves fewer
    items a page than asked for is not taken for one that pages forever."""

    def __init__(
        self,
        page_size: int,
        cursor_path: str = "data.pagination.next",
        cursor_param: str = "pagination[cursor]",
        count_param: str = "pagination[count]",
    ) -> None:
        super().__init__(cursor_path=_compiled(cursor_path), cursor_param=cursor_param)
        self.page_cursor_param = cursor_param
        self.count_param = count_param
        self.page_size = page_size
        self.cursor: Optional[str] = None
        """The cursor of the page being asked for (None for the first)."""
        self.served = 0
        """Items served so far."""
        self.total: Optional[int] = None
        """`totalEntries` as the last page announced it (the API may omit it)."""
        self.totals: Set[int] = set()
        """Every `totalEntries` a page announced: more than one, and the list changed while paged."""
        self._seen_cursors: set = set()
        self._pages = 0

    def init_request(self, request: requests.Request) -> None:
        params: Dict[str, Any] = dict(request.params or {})  # type: ignore[arg-type]  # a dict, as built by RESTClient
        params[self.count_param] = self.page_size
        if self.cursor is not None:
            params[self.page_cursor_param] = self.cursor
        request.params = params

    def update_state(self, response: requests.Response, data: Optional[List[Any]] = None) -> None:
        # `JSONResponseCursorPaginator.update_state` minus its own `response.json()`: the body is parsed once
        body = parse_json(response)
        values = find_values(self.cursor_path, body)
        self._next_reference = values[0] if values and values[0] else None
        self._pages += 1
        self.served += len(data or [])
        total = body.get("data", {}).get("pagination", {}).get("totalEntries")
        self.total = int(total) if isinstance(total, (int, float)) else None
        if self.total is not None:
            self.totals.add(self.total)
        cursor = self._next_reference
        if cursor is None:
            return
        if cursor in self._seen_cursors:
            raise UnexpectedResponseError(
                f"Segment returned the cursor {cursor!r} twice for {endpoint_of(response)}; stopping"
                " instead of paging in a loop. Rerun later; if it persists, report it to Segment."
            )
        if self._pages >= min(MAX_PAGES, self._expected_pages() + 2):
            raise UnexpectedResponseError(
                f"{endpoint_of(response)} kept returning a next page after {self._pages} pages"
                f" ({total if total is not None else 'no'} items announced); stopping instead of paging forever."
                " Rerun later; if it persists, report it to Segment."
            )
        self._seen_cursors.add(cursor)
        self.cursor = cursor

    def _expected_pages(self) -> int:
        """Pages the announced total needs at the page size actually served so far."""
        if self.total is None:
            return MAX_PAGES
        served_per_page = max(1, self.served // self._pages)
        return -(-self.total // served_per_page)


class SegmentRESTClient(RESTClient):
    """`RESTClient` that checks the Public API envelope of every page; `data_selector` is the
    items key under `data`."""

    def extract_response(self, response: requests.Response, data_selector: Any) -> List[Any]:
        data = _data(response)
        items = data.get(data_selector)
        if not isinstance(items, list):
            raise UnexpectedResponseError(
                f"{endpoint_of(response)} answered without a list under data.{data_selector} (data has keys"
                f" {sorted(data)}). The Public API may have changed; please report this."
            )
        return items

    def _log_request(self, request: requests.Request, prepared_url: str) -> None:
        """dlt's line per request, built only when dlt logs at INFO or below: dlt builds it first
        (the URL parsed, its query rewritten) and its logger then drops it, 50 µs a request."""
        if dlt_logger.is_logging() and dlt_logger.LOGGER.isEnabledFor(logging.INFO):
            super()._log_request(request, prepared_url)


@dataclass
class Listing:
    """What one listing read: its items as served and the totals its pages announced."""

    served: int = 0
    total: Optional[int] = None
    totals: Set[int] = field(default_factory=set)

    @property
    def agrees(self) -> bool:
        """Every page announced as many items as were served (or announced none): the list did not
        change while it was paged."""
        return all(total == self.served for total in self.totals)


class SegmentClient:
    """Reads one workspace (one token) of the Segment Public API.

    The envelope and the paginator are the Public API's; a client of another API with the same
    transport policy overrides `rest_client_class`, `paginator` and `unwrap`, and says in its
    messages which settings to fix (`config_section`, `token_advice`).
    """

    rest_client_class: Type[RESTClient] = SegmentRESTClient
    config_section = SECTION
    token_advice = f"Create a new Public API token in Segment and {SECRETS_HINT}."
    """What to do when Segment rejects the token (401)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        limits: Sequence[RateLimit] = (),
        media_types: Sequence[Tuple[str, str]] = (),
        policy: Optional[RetryPolicy] = None,
        max_concurrency: int = 1,
    ) -> None:
        """`limits`: the endpoints' own rate limits; `media_types`: (path template, versioned media
        type) of the endpoints, asked for after a 406."""
        self.base_url = base_url
        self.stats = RequestStats()
        self.limiter = RateLimiter(limits)
        runtime = resolve_configuration(RuntimeConfiguration())
        self.policy = policy or RetryPolicy(
            runtime.request_max_attempts, runtime.request_backoff_factor, runtime.request_max_retry_delay
        )
        session = SegmentSession(
            self.policy, self.limiter, MediaTypes(media_types), self.stats, runtime.request_timeout, self.token_advice
        )
        # requests reads the environment on every request (proxies twice, ~/.netrc once): 2 of every
        # 7 seconds of a medium run's extract in a profile. Every request goes to one host: read it once.
        session.trust_env = False
        session.proxies.update(requests.utils.get_environ_proxies(base_url))
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        # one kept-alive connection per concurrent request (requests keeps 10 per host by default)
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=max(10, max_concurrency))
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        self._rest = self.rest_client_class(
            base_url=base_url,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            auth=BearerTokenAuth(api_key),
            session=session,
        )

    def get(self, path: str, key: str, params: Optional[Mapping[str, str]] = None) -> Any:
        """One object endpoint, e.g. `GET /` -> `data.workspace`."""
        return self.unwrap(self._call(path, lambda: self._rest.get(path, params=dict(params or {}))), key)

    def unwrap(self, response: requests.Response, key: str) -> Any:
        """The object of an object endpoint's answer: `data.<key>`."""
        data = _data(response)
        if key not in data:
            raise UnexpectedResponseError(
                f"{endpoint_of(response)} answered without data.{key} (data has keys {sorted(data)})."
                " The Public API may have changed; please report this."
            )
        return data[key]

    def paginator(self, page_size: Optional[int]) -> BasePaginator:
        """A fresh paginator for one listing; `page_size` None: a single page."""
        return SegmentCursorPaginator(page_size) if page_size else SinglePagePaginator()

    def pages(
        self,
        path: str,
        key: str,
        page_size: Optional[int],
        params: Optional[Mapping[str, str]] = None,
        listing: Optional[Listing] = None,
    ) -> Iterator[List[Dict[str, Any]]]:
        """The pages of a list endpoint (items under `key`), asking for `page_size` items per page.
        `listing`, if given, is filled with what was served and announced.

        A 422 that names the page size (an API that still caps pages at 200) switches to 200
        items and carries on from the same cursor.
        """
        paginator = self.paginator(page_size)
        while True:
            pages = self._rest.paginate(
                path, params=dict(params or {}), paginator=paginator, data_selector=key, hooks={"response": []}
            )
            try:
                while True:
                    page = self._call(path, lambda pages=pages: next(pages, None))
                    if page is None:
                        break
                    if listing is not None:
                        listing.served += len(page)
                    yield list(page)
            except SegmentApiError as ex:
                if not self._smaller_pages(paginator, ex):
                    raise
                paginator.page_size = FALLBACK_PAGE_SIZE  # type: ignore[attr-defined]  # checked just above
                continue
            if listing is not None and isinstance(paginator, SegmentCursorPaginator):
                listing.total, listing.totals = paginator.total, paginator.totals
            return

    @staticmethod
    def _smaller_pages(paginator: BasePaginator, ex: SegmentApiError) -> bool:
        if not (
            rule_for(ex.status or 0).action is Action.PAGE_SIZE
            and isinstance(paginator, SegmentCursorPaginator)
            and paginator.page_size > FALLBACK_PAGE_SIZE
            and "count" in str(ex)
        ):
            return False
        logger.warning(
            "%s refused %s items a page; asking for %s.", ex.endpoint, paginator.page_size, FALLBACK_PAGE_SIZE
        )
        return True

    def _call(self, path: str, fn: Any) -> Any:
        """`fn()`, with what is left of a failure after every retry said in one paragraph."""
        try:
            return fn()
        except SegmentApiError as ex:
            if rule_for(ex.status or 0).action in (Action.WAIT, Action.BACKOFF):
                raise SegmentApiError(
                    f"{ex} Gave up after {self.policy.max_attempts} attempts; rerun later.", ex.endpoint, ex.response
                ) from None
            raise
        except TRANSIENT_ERRORS as ex:
            if isinstance(ex, requests.exceptions.SSLError):
                raise ApiUnreachableError(
                    f"The TLS certificate of {self.base_url} could not be verified, so no request was sent"
                    " with the token. Check base_url; certificate checks cannot be turned off."
                ) from None
            if isinstance(ex, DeadlineExceeded):
                raise ApiUnreachableError(
                    f"{ex}, at each of {self.policy.max_attempts} attempts. Segment or the network is too slow;"
                    f" rerun later, or raise [runtime] request_timeout (the deadline is {DEADLINE_FACTOR} times it)."
                ) from None
            raise ApiUnreachableError(
                f"Could not reach the Segment API at {self.base_url} for GET {path} ({type(ex).__name__})"
                f" after {self.policy.max_attempts} attempts. Check the network connection and the"
                f" configured region or base_url ([sources.{self.config_section}] in .dlt/config.toml)."
            ) from None


# ---- reading answers -----------------------------------------------------------------------


def endpoint_of(response: requests.Response) -> str:
    return f"GET {_path(response.url)}"


def _path(url: Optional[str]) -> str:
    return requests.utils.urlparse(url or "").path


def _host(response: requests.Response) -> str:
    return requests.utils.urlparse(response.url).netloc


_BODY = "_segment_body"


def parse_json(response: requests.Response) -> Any:
    """The body as JSON, parsed once per response: the items, the cursor and the announced total
    are all read from it (a destinations page of the medium workspace is 4 MB; it was parsed three
    times, with three copies of it in memory at once). orjson where it gives what `requests`' parser
    gives, which is parsing a UTF-8 body with no run of 19 digits; `requests` for the rest: orjson
    turns an integer beyond 64 bits (from 19 digits, negative) into a float, silently, refuses some
    of what `requests` accepts (a byte-order mark, a lone surrogate, a number beyond a double), and
    a body in another declared charset must be decoded as declared.
    The parse was the largest cost of the extract after the HTTP exchange itself, 6% of a run's CPU:
    the large workspace's 24,047 responses of five tables took 1.3-1.6 CPU s with orjson against
    1.9 (two runs each; an 840 KB page: 10 ms against 24, most of the rest is per response)."""
    if _BODY in response.__dict__:
        return response.__dict__[_BODY]
    try:
        body = _fast_json(response)
        if body is _NOT_PARSED:
            body = response.json()
    except (ValueError, json.JSONDecodeError):
        raise UnexpectedResponseError(
            f"{endpoint_of(response)} answered with a body that is not JSON ({response.status_code},"
            f" {len(response.content)} bytes): {body_snippet(response)}."
            " Segment may be having an incident; rerun later."
        ) from None
    response.__dict__[_BODY] = body
    return body


_NOT_PARSED = object()
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_WIDE_NUMBER = b"0" * 19
"""A run of 19 digits, found in the body with every digit made a zero: 1 ms for an 840 KB page,
where a regular expression took 38 and orjson's parse takes 9."""


def _fast_json(response: requests.Response) -> Any:
    """`response`'s body parsed by orjson, or `_NOT_PARSED` where `requests`' parser must (see
    `parse_json`)."""
    if (response.encoding or "utf-8").lower().replace("_", "-") not in ("utf-8", "utf8"):
        return _NOT_PARSED
    content = response.content
    if _WIDE_NUMBER in content.translate(_DIGITS_AS_ZERO):
        return _NOT_PARSED
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return _NOT_PARSED


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
            return str(body["error"])[:300]
        messages = [e.get("message") or e.get("type") for e in body.get("errors") if isinstance(e, dict)]
        if messages:
            return "; ".join(str(m) for m in messages)[:300]
    except (ValueError, AttributeError, TypeError):
        pass
    return response.reason or "no details"
