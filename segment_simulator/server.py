"""The server, the layer above the faults: an HTTP server on 127.0.0.1 that answers like the
Segment Public API.

What it reproduces, from `shared/segment-api` (endpoints.json and notes.md):
- `Authorization: Bearer <token>`; each token owns one workspace; 401 with an `errors` body.
- envelopes: `{"data": {<items key>: [...], "pagination": {...}}}` for lists, `{"data": {...}}`
  for objects, `{"errors": [...]}` for failures (the wire format is `wire.py`'s).
- cursor pagination with `pagination[count]` / `pagination[cursor]` (the dotted form
  `pagination.count` too): count 1..1000 (audiences 1..200), default 200, opaque base64 cursors,
  no `next` on the last page, 422 for a bad count or cursor.

`handle()` is pure request -> response, the one request handler of both simulated APIs: the
differences of the legacy Config API (`config_api.py`, the layer above) are three hooks,
`route_table()` (the endpoints), `answer()` (the envelope and paging shape) and `shape_errors()`
(the error shape). The optional policies of `faults.py` (all off by default, see that module) go
around it: `SegmentSimulator(ws, rate_limits=RateLimits(...), faults=Faults(...), quirks=Quirks()...)`,
or set `sim.rate_limits`, `sim.faults`, `sim.quirks` between runs. `respond()` is `handle()` inside
the rate limits and quirks; `_Handler` adds the faults and acts out those of the transport (latency,
a dropped connection, a slow, truncated or trickling answer). `stop()` closes every open connection and joins
every thread, also when a slow answer is pending.
"""

import json
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import parse_qsl, urlencode, urlsplit

from segment_simulator import routes
from segment_simulator.faults import Faults, Quirks, RateLimits
from segment_simulator.loopback import LoopbackServer
from segment_simulator.routes import Route
from segment_simulator.wire import PAGINATION, ApiError, Headers, Response, bearer_token, page
from segment_simulator.workspace import SimulatedWorkspace


@dataclass(frozen=True)
class RecordedRequest:
    """What the simulator saw: enough to count requests and check the page size asked for.

    `fault` is the injected fault kind, if any; `status` is 0 when the connection was dropped."""

    method: str
    path: str
    params: Dict[str, str]
    status: int
    workspace: Optional[str]
    fault: Optional[str] = None

    @property
    def page_size(self) -> Optional[int]:
        return PAGINATION.read(self.params).asked_count


class SegmentSimulator:
    """A Segment Public API on 127.0.0.1 serving one workspace per token.

    >>> with SegmentSimulator(generate_workspace("small")) as sim:
    ...     source = segment_source(api_key=sim.token, base_url=sim.url)
    """

    def __init__(
        self,
        workspaces: Union[SimulatedWorkspace, Mapping[str, SimulatedWorkspace]],
        *,
        token: str = "sim-token",
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limits: Optional[RateLimits] = None,
        faults: Optional[Faults] = None,
        quirks: Optional[Quirks] = None,
    ) -> None:
        if isinstance(workspaces, SimulatedWorkspace):
            workspaces = {token: workspaces}
        self.workspaces: Dict[str, SimulatedWorkspace] = dict(workspaces)
        self.token = next(iter(self.workspaces))
        self.requests: List[RecordedRequest] = []
        self._log_lock = threading.Lock()
        self.rate_limits, self.faults, self.quirks = rate_limits, faults, quirks
        self._host, self._port = host, port
        self._server: Optional[_Server] = None

    @property
    def workspace(self) -> SimulatedWorkspace:
        """The workspace of the first token (the only one, usually)."""
        return self.workspaces[self.token]

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not running: call start() or use it in a with block")
        return self._server.url

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> "SegmentSimulator":
        self._server = _Server((self._host, self._port), self)
        self._server.start("segment-simulator")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> "SegmentSimulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- request log -----------------------------------------------------------------------

    def clear_log(self) -> None:
        with self._log_lock:
            self.requests.clear()

    def requests_to(self, path: str, log: Optional[Sequence[RecordedRequest]] = None) -> List[RecordedRequest]:
        """The requests to `path` in the log (or in `log`, a copy of it taken earlier)."""
        return [r for r in (self.requests if log is None else log) if r.path == path]

    def secret_values(self) -> List[str]:
        """Every plaintext secret any workspace has served (write keys, settings)."""
        return sorted(set().union(*(ws.secrets for ws in self.workspaces.values())))

    # ---- the API ---------------------------------------------------------------------------

    unsupported_method_status = 405
    """The answer to a method the simulator does not serve (it serves reads only)."""

    def route_table(self) -> Sequence[Route]:
        """Hook: the endpoints served (`routes.ROUTES`, read at every request: a test may add some)."""
        return routes.ROUTES

    def answer(self, route: Route, data: Any, params: Dict[str, str]) -> Response:
        """Hook: the answer with what `route` fetched: the API's envelope and paging shape."""
        if route.items_key is None:
            return Response(200, {"data": data})
        if not route.paginated:
            return Response(200, {"data": {route.items_key: data}})
        return page(route.items_key, data, params, route.max_count)

    def shape_errors(self, response: Response) -> Response:
        """Hook: an answer in the API's error shape (the Public API's is `wire.error`'s)."""
        return response

    def handle(self, method: str, target: str, headers: Headers) -> Tuple[Response, Optional[SimulatedWorkspace]]:
        """Answer one request. Returns the response and the workspace it was for (if any)."""
        ws = None
        try:
            if method != "GET":
                status = self.unsupported_method_status
                raise ApiError(status, HTTPStatus(status).phrase.replace(" ", ""), f"{method} is not supported")
            ws = self.workspaces.get(bearer_token(headers))
            if ws is None:
                raise ApiError(401, "Unauthorized", "Unauthorized: the token is missing, invalid or expired")
            parts = urlsplit(target)
            params = dict(parse_qsl(parts.query, keep_blank_values=True))
            route, path_params = routes.match(parts.path, self.route_table())
            response = self.answer(route, route.serve(ws, path_params, params), params)
        except ApiError as ex:
            response = ex.response()
        except KeyError as missing:  # an unknown parent, or one deleted while the request was answered
            response = ApiError(404, "NotFound", f"Resource not found: {missing.args[0]}").response()
        return self.shape_errors(response), ws

    def respond(self, method: str, target: str, headers: Headers) -> Response:
        """`handle` inside the rate limits and the quirks, if they are on."""
        rate_limits, quirks = self.rate_limits, self.quirks
        token = bearer_token(headers)
        parts = urlsplit(target)
        found = routes.find(parts.path, self.route_table())
        route = found[0] if found else None
        rate_headers: Dict[str, str] = {}
        if rate_limits is not None and token in self.workspaces:
            rate_headers, refused = rate_limits.consume(token, route, parts.path)
            if refused is not None:
                return self.shape_errors(refused)
        if quirks is None:
            response = self.handle(method, target, headers)[0]
        else:
            params = dict(parse_qsl(parts.query, keep_blank_values=True))
            # `handle` shapes its own errors; this shapes the quirks' refusals
            response = self.shape_errors(
                quirks.apply(
                    route,
                    parts.path,
                    params,
                    lambda p: self.handle(method, f"{parts.path}?{urlencode(p)}", headers)[0],
                    headers,
                    self.workspaces.get(token),
                )
            )
        response.headers.update(rate_headers)
        return response

    def _record(
        self, method: str, target: str, status: int, ws: Optional[SimulatedWorkspace], fault: Optional[str] = None
    ) -> None:
        parts = urlsplit(target)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        entry = RecordedRequest(method, parts.path, params, status, ws.slug if ws else None, fault)
        with self._log_lock:
            self.requests.append(entry)


class _Server(LoopbackServer):
    def __init__(self, address: Tuple[str, int], simulator: SegmentSimulator) -> None:
        self.simulator = simulator
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server_version = "SegmentSimulator/1.0"
    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every keep-alive request
    disable_nagle_algorithm = True
    server: _Server

    def _serve(self) -> None:
        sim = self.server.simulator
        ws = sim.workspaces.get(bearer_token(self.headers))
        faults = sim.faults  # read once: a test may swap it between requests
        if faults is None:
            response = sim.respond(self.command, self.path, self.headers)
            sim._record(self.command, self.path, response.status, ws)
            return self._send(response)
        if faults.latency_ms and self.server.stopping.wait(faults.latency_ms / 1000):
            return self._drop()
        fault = faults.draw(self.command, self.path)
        if fault == "drop":
            sim._record(self.command, self.path, 0, ws, fault)
            return self._drop()
        response = faults.apply(fault, lambda: sim.respond(self.command, self.path, self.headers))
        sim._record(self.command, self.path, response.status, ws, fault)
        if fault == "slow" and self.server.stopping.wait(faults.slow_seconds):
            return self._drop()
        self._send(response, truncated=fault == "malformed")

    def _send(self, response: Response, truncated: bool = False) -> None:
        body = json.dumps(response.body, ensure_ascii=False).encode("utf-8")
        if truncated:
            body = body[: max(1, len(body) // 2)]
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        sim = self.server.simulator
        quirks, path = sim.quirks, urlsplit(self.path).path
        found = routes.find(path, sim.route_table())
        rate = quirks.trickle_rate(found[0] if found else None, path) if quirks else None
        if rate is None:
            self.wfile.write(body)
            return
        # a trickle: a tenth of a second's bytes at a time, until done or the server stops
        step = max(1, int(rate / 10))
        for start in range(0, len(body), step):
            if self.server.stopping.wait(0.1):
                return self._drop()
            self.wfile.write(body[start : start + step])

    def _drop(self) -> None:
        """Close the connection without an answer."""
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # the request log replaces stderr noise
