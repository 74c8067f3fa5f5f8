"""Teeth for the simulator, the layer above the routes: rate limits, injected faults and scripted
quirks. All are off by default; the server (`server.py`, the layer above) applies them.

Turn each on with a `SegmentSimulator` keyword argument, or by setting the attribute of the same
name between runs (each request reads the current one once):

    sim = SegmentSimulator(ws, rate_limits=RateLimits(per_token=20, window=2.0),
                           faults=Faults(rate=0.15, seed=1), quirks=Quirks().loop_cursor("/sources"))
    sim.faults = None  # the next request is served cleanly

`RateLimits` - Segment's limiter, per token, in fixed windows (the shape of the 429 body is that of
  the `rate-limiter-flexible` library: `remainingPoints`, `msBeforeNext`, `consumedPoints`).
  - A window opens at the first request of a key and lasts `window` seconds (60: "the minute";
    tests scale it down). Every request in it counts, refused ones too, and the window does not move,
    so waiting `msBeforeNext` is always enough.
  - Keys: the token (the global budget, `per_token` requests per window) and, when a route has its
    own `rate_limit` (requests per minute, read here as per window), the token with the route
    pattern, or with the concrete path when `rate_limit_per_path` is set (per warehouse for syncs).
  - A request beyond a limit gets 429, no `Retry-After`, and
    `{"errors":[{"type":"RequestError","message":"Too many requests","data":{"remainingPoints":0,
    "msBeforeNext":..,"consumedPoints":..}}]}`. `msBeforeNext` is the time, rounded up to the
    millisecond, until every limit that would refuse the next request has opened a new window;
    `consumedPoints` is the count of the window that lifts last.
  - Every other answer to a known token carries `X-RateLimit-Consumed`, `X-RateLimit-Remaining` and
    `X-RateLimit-Reset` (RFC 5322, the end of the global window rounded up to the second).
  - Requests without a valid token are not counted. `refused` counts the 429s by the limit that
    lifts last ("token", a route pattern or a concrete path); they are also in `sim.requests`.

`Faults` - random misbehaviour at a given `rate`, reproducible with a `seed`, plus fixed `latency_ms`.
  - The draw for a request depends only on (seed, method, path and query, how many times that same
    target was asked before), so the faults do not depend on how a parallel client interleaves.
  - Kinds (`FAULT_KINDS`): "500", "502", "503", "504" (an `errors` body; the request never reaches
    the API: no rate-limit count, no quirk), "drop" (the socket closes without any answer; the
    client sees a connection error), "slow" (the real answer, sent after `slow_seconds`: a client
    with a shorter timeout sees a timeout), "malformed" (status 200, the real body cut in half) and
    "envelope" (status 200, the real body wrapped as `{"result": ...}`: no `data` key).
  - Every injected fault is kept in `injected` (kind, method, path); `counts` counts them per kind;
    `sim.requests` marks the request with the fault (status 0 for "drop": nothing was sent).
  - Faults never touch a workspace: a faulty answer is made from a copy or instead of the real one.

`Quirks` - scripted misbehaviour for specific tests; each method returns the `Quirks`, so they chain.
  A pattern is a route pattern (`/spaces/{spaceId}/audiences`) or a concrete path (`/sources`).
  - `limit_page_size(pattern, 200)`: a page size above the limit gets 422
    "pagination.count must be between 1 and 200", field "pagination.count".
  - `loop_cursor(pattern)`: every page's `next` is its own `current`, forever.
  - `runaway_pages(pattern)`: every cursor gets a page (the first page's items again) and a new `next`.
  - `fail_next(n, status, pattern=None)`: the next n requests (matching the pattern) get `status`
    (a 429 gets the rate-limit body with `msBeforeNext` 0).
  - `refuse(pattern, status, params=None)`: every request (whose query has `params`) gets `status`,
    e.g. `refuse("/functions", 422, {"resourceType": "INSERT_DESTINATION"})`.
  - `require_media_type(pattern, media_type)`: 406 unless the request's `Accept` is `media_type`.
  - `serve_fewer(pattern, k)`: k items a page, whatever `pagination[count]` asks (the cursors follow).
  - `insert_during_paging(pattern, n, times=1)` / `delete_during_paging(pattern, n, times=1)`: right
    after a first page (no cursor) of the listing is answered, n new objects appear at the front of
    it, or its first n objects are deleted; `times` such first pages each get the change. The kind
    is the pattern's first segment (`/sources` -> sources).
  - `trickle(pattern, bytes_per_second)`: the transport sends the answer's body that slowly.
  Odd items need no quirk: edit the workspace (`ws.update(kind, id, enabled="PAUSED")`, or replace
  `ws.items[kind][id]` with an item without `id`).

Order for one request: fixed latency, then a fault "500".."504"/"drop", then the rate limits, then the
quirks, then the API; "slow", "malformed" and "envelope" then spoil the answer.
"""

import math
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime
from http import HTTPStatus
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from segment_simulator.routes import Route
from segment_simulator.wire import PAGINATION, Headers, Response, error, pagination
from segment_simulator.workspace import SimulatedWorkspace

FAULT_KINDS = ("500", "502", "503", "504", "drop", "slow", "malformed", "envelope")
SERVER_ERRORS = ("500", "502", "503", "504")


def too_many_requests(ms_before_next: int, consumed: int) -> Response:
    """Segment's 429: no Retry-After header, the wait is in the body."""
    data = {"remainingPoints": 0, "msBeforeNext": ms_before_next, "consumedPoints": consumed}
    return Response(429, {"errors": [{"type": "RequestError", "message": "Too many requests", "data": data}]})


def error_status(status: int, message: str) -> Response:
    """An `errors` answer with the status's own name as type, e.g. 503 -> "ServiceUnavailable"."""
    if status == 429:
        return too_many_requests(0, 0)
    return error(status, HTTPStatus(status).phrase.replace(" ", ""), message)


@dataclass
class _Window:
    end: float
    consumed: int = 0


class RateLimits:
    """Per-token budgets in fixed windows: the global one and each route's own (see the module doc)."""

    def __init__(self, per_token: int = 600, *, window: float = 60.0, per_route: bool = True) -> None:
        self.per_token = per_token
        self.window = window
        self.per_route = per_route
        self.refused: Counter = Counter()
        self._windows: Dict[Tuple[str, str], _Window] = {}
        self._lock = threading.Lock()

    def consume(self, token: str, route: Optional[Route], path: str) -> Tuple[Dict[str, str], Optional[Response]]:
        """Count one request of `token`. Returns the X-RateLimit headers and, if it is over a limit, the 429."""
        limits = {"token": self.per_token}
        if self.per_route and route is not None and route.rate_limit is not None:
            limits[path if route.rate_limit_per_path else route.pattern] = route.rate_limit
        with self._lock:
            now = time.monotonic()
            windows = {}
            for name in limits:
                window = self._windows.get((token, name))
                if window is None or now >= window.end:
                    window = self._windows[(token, name)] = _Window(now + self.window)
                window.consumed += 1
                windows[name] = window
            if all(windows[name].consumed <= limit for name, limit in limits.items()):
                return self._headers(windows["token"], now), None
            blocking = [name for name, limit in limits.items() if windows[name].consumed >= limit]
            last = max(blocking, key=lambda name: windows[name].end)
            self.refused[last] += 1
            return {}, too_many_requests(math.ceil((windows[last].end - now) * 1000), windows[last].consumed)

    def _headers(self, window: _Window, now: float) -> Dict[str, str]:
        reset = datetime.fromtimestamp(math.ceil(time.time() + window.end - now), timezone.utc)
        return {
            "X-RateLimit-Consumed": str(window.consumed),
            "X-RateLimit-Remaining": str(max(0, self.per_token - window.consumed)),
            "X-RateLimit-Reset": format_datetime(reset, usegmt=True),
        }


@dataclass(frozen=True)
class InjectedFault:
    kind: str
    method: str
    path: str


class Faults:
    """Random faults at `rate` among `kinds`, reproducible with `seed`, and a fixed latency (see the module doc)."""

    def __init__(
        self,
        rate: float = 0.0,
        *,
        seed: int = 0,
        kinds: Sequence[str] = FAULT_KINDS,
        slow_seconds: float = 2.0,
        latency_ms: float = 0.0,
    ) -> None:
        unknown = set(kinds) - set(FAULT_KINDS)
        if unknown or not kinds:
            raise ValueError(f"fault kinds must be some of {FAULT_KINDS}, got {list(kinds)}")
        self.rate, self.seed, self.kinds = rate, seed, tuple(kinds)
        self.slow_seconds, self.latency_ms = slow_seconds, latency_ms
        self.injected: List[InjectedFault] = []
        self._asked: Counter = Counter()
        self._lock = threading.Lock()

    @property
    def counts(self) -> Counter:
        """Injected faults per kind."""
        with self._lock:
            return Counter(fault.kind for fault in self.injected)

    def draw(self, method: str, target: str) -> Optional[str]:
        """The fault for this request, if any (recorded in `injected`)."""
        with self._lock:
            nth = self._asked[(method, target)]
            self._asked[(method, target)] += 1
            rng = random.Random(f"{self.seed}:{method}:{target}:{nth}")
            if rng.random() >= self.rate:
                return None
            kind = rng.choice(self.kinds)
            self.injected.append(InjectedFault(kind, method, target.split("?", 1)[0]))
            return kind

    @staticmethod
    def apply(kind: Optional[str], respond: Callable[[], Response]) -> Response:
        """The answer under fault `kind`: a 5xx instead of `respond()`, or `respond()` itself, rewrapped
        for "envelope", as a 200 for "malformed" (the transport cuts its body; it also acts out "drop"
        and "slow")."""
        if kind in SERVER_ERRORS:
            return error_status(int(kind), f"Injected fault: {HTTPStatus(int(kind)).phrase}")
        response = respond()
        if kind == "envelope":
            return Response(200, {"result": response.body}, response.headers)
        if kind == "malformed":
            return Response(200, response.body, response.headers)
        return response


Answer = Callable[[Dict[str, str]], Response]


@dataclass
class _Failure:
    pattern: Optional[str]
    status: int
    left: int


@dataclass
class _Refusal:
    pattern: str
    status: int
    params: Dict[str, str]


@dataclass
class _Mutation:
    """Objects inserted at the front of a listing (`insert`) or deleted from it, between its pages."""

    pattern: str
    n: int
    insert: bool
    left: int


class Quirks:
    """Scripted misbehaviour per path pattern, for specific tests (see the module doc)."""

    def __init__(self) -> None:
        self.page_size_limits: Dict[str, int] = {}
        self.looping: List[str] = []
        self.runaway: List[str] = []
        self.failures: List[_Failure] = []
        self.refusals: List[_Refusal] = []
        self.media_types: Dict[str, str] = {}
        self.fewer: Dict[str, int] = {}
        self.mutations: List[_Mutation] = []
        self.trickles: Dict[str, float] = {}
        self._lock = threading.Lock()

    def limit_page_size(self, pattern: str, limit: int = 200) -> "Quirks":
        self.page_size_limits[pattern] = limit
        return self

    def loop_cursor(self, pattern: str) -> "Quirks":
        self.looping.append(pattern)
        return self

    def runaway_pages(self, pattern: str) -> "Quirks":
        self.runaway.append(pattern)
        return self

    def fail_next(self, n: int, status: int = 503, pattern: Optional[str] = None) -> "Quirks":
        with self._lock:
            self.failures.append(_Failure(pattern, status, n))
        return self

    def refuse(self, pattern: str, status: int, params: Optional[Dict[str, str]] = None) -> "Quirks":
        self.refusals.append(_Refusal(pattern, status, dict(params or {})))
        return self

    def require_media_type(self, pattern: str, media_type: str) -> "Quirks":
        self.media_types[pattern] = media_type
        return self

    def serve_fewer(self, pattern: str, k: int) -> "Quirks":
        self.fewer[pattern] = k
        return self

    def insert_during_paging(self, pattern: str, n: int, times: int = 1) -> "Quirks":
        self.mutations.append(_Mutation(pattern, n, insert=True, left=times))
        return self

    def delete_during_paging(self, pattern: str, n: int, times: int = 1) -> "Quirks":
        self.mutations.append(_Mutation(pattern, n, insert=False, left=times))
        return self

    def trickle(self, pattern: str, bytes_per_second: float) -> "Quirks":
        self.trickles[pattern] = bytes_per_second
        return self

    def trickle_rate(self, route: Optional[Route], path: str) -> Optional[float]:
        """Bytes a second the transport sends the body of an answer to `path` at (None: at once)."""
        names = {path} | ({route.pattern} if route is not None else set())
        return next((rate for pattern, rate in self.trickles.items() if pattern in names), None)

    def apply(
        self,
        route: Optional[Route],
        path: str,
        params: Dict[str, str],
        answer: Answer,
        headers: Optional[Headers] = None,
        ws: Optional[SimulatedWorkspace] = None,
    ) -> Response:
        """The answer to a request for `path`; `answer(params)` asks the API itself. `headers` and the
        token's workspace `ws` serve the quirks that read the request or edit the workspace."""
        names = {path} | ({route.pattern} if route is not None else set())
        with self._lock:
            for failure in self.failures:
                if failure.left > 0 and (failure.pattern is None or failure.pattern in names):
                    failure.left -= 1
                    return error_status(failure.status, f"Scripted failure ({failure.status})")
        for refusal in self.refusals:
            if refusal.pattern in names and refusal.params.items() <= params.items():
                return error_status(refusal.status, f"Scripted refusal ({refusal.status})")
        for pattern, media_type in self.media_types.items():
            if pattern in names and (headers.get("Accept", "") if headers else "") != media_type:
                return error(406, "NotAcceptable", f"this endpoint only serves {media_type}")
        count = PAGINATION.read(params).count
        for pattern, k in self.fewer.items():
            if pattern in names and count is not None:
                params = dict(params, **{"pagination[count]": str(min(k, count))})
                params.pop("pagination.count", None)
        for pattern, limit in self.page_size_limits.items():
            if pattern in names and count is not None and count > limit:
                return error(
                    422, "ValidationError", f"pagination.count must be between 1 and {limit}", field="pagination.count"
                )
        if names.intersection(self.runaway) and count is not None:
            return self._runaway_page(params, count, answer)
        response = answer(params)
        if names.intersection(self.looping) and _has_pagination(response):
            pagination = response.body["data"]["pagination"]
            pagination["next"] = pagination["current"]
        if ws is not None and _has_pagination(response) and "next" in response.body["data"]["pagination"]:
            first_page = not {"pagination[cursor]", "pagination.cursor"} & set(params)
            for mutation in self.mutations:
                if first_page and mutation.pattern in names and mutation.left > 0:
                    mutation.left -= 1
                    _mutate(ws, mutation.pattern.strip("/").split("/")[0].replace("-", "_"), mutation)
        return response

    @staticmethod
    def _runaway_page(params: Dict[str, str], count: int, answer: Answer) -> Response:
        offset = PAGINATION.read(params).offset
        if offset is None:
            return answer(params)  # the API's own 422
        response = answer(PAGINATION.without_cursor(params))
        if _has_pagination(response):
            total = response.body["data"]["pagination"].get("totalEntries")
            response.body["data"]["pagination"] = pagination(offset, count, total, more=True)
        return response


def _mutate(ws: SimulatedWorkspace, kind: str, mutation: _Mutation) -> None:
    """Insert `mutation.n` objects of `kind` at the front of its listing, or delete its first n."""
    if not mutation.insert:
        for item_id in ws.ids(kind)[: mutation.n]:
            ws.delete(kind, item_id)
        return
    added = [ws.add(kind)["id"] for _ in range(mutation.n)]
    with ws._lock:  # the listing is in creation order: move the new ones to its front
        items = ws.items[kind]
        ws.items[kind] = {**{i: items[i] for i in added}, **{i: v for i, v in items.items() if i not in added}}


def _has_pagination(response: Response) -> bool:
    return response.status == 200 and "pagination" in response.body.get("data", {})
