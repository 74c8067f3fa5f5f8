"""An HTTP server on 127.0.0.1 that answers like the Segment Public API.

What it reproduces, from `shared/segment-api` (endpoints.json and notes.md):
- `Authorization: Bearer <token>`; each token owns one workspace; 401 with an `errors` body.
- envelopes: `{"data": {<items key>: [...], "pagination": {...}}}` for lists, `{"data": {...}}`
  for objects, `{"errors": [...]}` for failures.
- cursor pagination with `pagination[count]` / `pagination[cursor]` (the dotted form
  `pagination.count` too): count 1..1000 (audiences 1..200), default 200, opaque base64 cursors,
  no `next` on the last page, 422 for a bad count or cursor.

`handle()` is pure request -> response. The optional policies of `faults.py` (all off by default,
see that module) go around it: `SegmentSimulator(ws, rate_limits=RateLimits(...), faults=Faults(...),
quirks=Quirks()...)`, or set `sim.rate_limits`, `sim.faults`, `sim.quirks` between runs.
`respond()` is `handle()` inside the rate limits and quirks; `_Handler` adds the faults and acts out
those of the transport (latency, a dropped connection, a slow or truncated answer, a body that
trickles). `stop()` closes every open connection and joins every thread, also when a slow answer is
pending.
"""

import base64
import binascii
import json
import socket
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Set, Tuple, Union
from urllib.parse import parse_qsl, urlencode, urlsplit

from segment_simulator import routes
from segment_simulator.routes import ApiError, Route
from segment_simulator.workspace import SimulatedWorkspace

if TYPE_CHECKING:
    from segment_simulator.faults import Faults, Quirks, RateLimits

DEFAULT_PAGE_SIZE = 200


@dataclass
class Response:
    status: int
    body: Dict[str, Any]
    headers: Dict[str, str] = field(default_factory=dict)


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
        value = self.params.get("pagination[count]", self.params.get("pagination.count"))
        return int(value) if value is not None and value.isdigit() else None


def error(status: int, type_: str, message: str, **extra: Any) -> Response:
    return Response(status, {"errors": [dict(type=type_, message=message, status=status, **extra)]})


def encode_cursor(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode()


def decode_cursor(cursor: str) -> int:
    try:
        offset = int(base64.b64decode(cursor, validate=True).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValueError(cursor) from None
    if offset < 0:
        raise ValueError(cursor)
    return offset


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
        rate_limits: Optional["RateLimits"] = None,
        faults: Optional["Faults"] = None,
        quirks: Optional["Quirks"] = None,
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
        self._thread: Optional[threading.Thread] = None

    @property
    def workspace(self) -> SimulatedWorkspace:
        """The workspace of the first token (the only one, usually)."""
        return self.workspaces[self.token]

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not running: call start() or use it in a with block")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> "SegmentSimulator":
        self._server = _Server((self._host, self._port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="segment-simulator", daemon=True
        )  # a short poll interval: stop() waits for one
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()  # no new connections
            self._server.stop_handlers()
            self._server.server_close()  # closes the port
            self._thread.join(timeout=10)  # type: ignore[union-attr]
            self._server = None

    def __enter__(self) -> "SegmentSimulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- request log -----------------------------------------------------------------------

    def clear_log(self) -> None:
        with self._log_lock:
            self.requests.clear()

    def requests_to(self, path: str) -> List[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def secret_values(self) -> List[str]:
        """Every plaintext secret any workspace has served (write keys, settings)."""
        return sorted(set().union(*(ws.secrets for ws in self.workspaces.values())))

    # ---- the API ---------------------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: Mapping[str, str]
    ) -> Tuple[Response, Optional[SimulatedWorkspace]]:
        """Answer one request. Returns the response and the workspace it was for (if any)."""
        if method != "GET":
            return error(405, "MethodNotAllowed", f"{method} is not supported by the simulator"), None
        ws = self.workspaces.get(_bearer_token(headers))
        if ws is None:
            return error(401, "Unauthorized", "Unauthorized: the token is missing, invalid or expired"), None

        parts = urlsplit(target)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        found = routes.match(parts.path)
        if found is None:
            return error(404, "NotFound", f"no resource at {parts.path}"), ws
        route, path_params = found
        try:
            ws.check_feature(route.feature)
            data = route.fetch(ws, path_params, params)
        except ApiError as ex:
            extra = {"field": ex.field} if ex.field else {}
            return error(ex.status, ex.type, ex.message, **extra), ws
        except KeyError as missing:
            return error(404, "NotFound", f"Resource not found: {missing.args[0]}"), ws
        if route.items_key is None:
            return Response(200, {"data": data}), ws
        if not route.paginated:
            return Response(200, {"data": {route.items_key: data}}), ws
        return self._page(route, data, params), ws

    def respond(self, method: str, target: str, headers: Mapping[str, str]) -> Response:
        """`handle` inside the rate limits and the quirks, if they are on."""
        rate_limits, quirks = self.rate_limits, self.quirks
        token = _bearer_token(headers)
        parts = urlsplit(target)
        found = routes.match(parts.path)
        route = found[0] if found else None
        rate_headers: Dict[str, str] = {}
        if rate_limits is not None and token in self.workspaces:
            rate_headers, refused = rate_limits.consume(token, route, parts.path)
            if refused is not None:
                return refused
        if quirks is None:
            response = self.handle(method, target, headers)[0]
        else:
            params = dict(parse_qsl(parts.query, keep_blank_values=True))
            response = quirks.apply(
                route,
                parts.path,
                params,
                lambda p: self.handle(method, f"{parts.path}?{urlencode(p)}", headers)[0],
                headers,
                self.workspaces.get(token),
            )
        response.headers.update(rate_headers)
        return response

    @staticmethod
    def _page(route: Route, items: List[Any], params: Dict[str, str]) -> Response:
        raw_count = params.get("pagination[count]", params.get("pagination.count"))
        raw_cursor = params.get("pagination[cursor]", params.get("pagination.cursor"))
        count = DEFAULT_PAGE_SIZE if raw_count is None else _int_or_none(raw_count)
        if count is None or not 1 <= count <= route.max_count:
            return error(
                422,
                "ValidationError",
                f"pagination.count must be an integer between 1 and {route.max_count}, got {raw_count!r}",
                field="pagination.count",
            )
        try:
            offset = 0 if raw_cursor is None else decode_cursor(raw_cursor)
        except ValueError:
            return error(
                422, "ValidationError", f"pagination.cursor {raw_cursor!r} is not valid", field="pagination.cursor"
            )
        if offset > len(items):
            return error(
                422, "ValidationError", f"pagination.cursor {raw_cursor!r} is out of range", field="pagination.cursor"
            )
        pagination: Dict[str, Any] = {
            "current": encode_cursor(offset),
            "previous": encode_cursor(max(0, offset - count)) if offset > 0 else None,
            "totalEntries": len(items),
        }
        if offset + count < len(items):
            pagination["next"] = encode_cursor(offset + count)
        return Response(200, {"data": {route.items_key: items[offset : offset + count], "pagination": pagination}})

    def _record(
        self, method: str, target: str, status: int, ws: Optional[SimulatedWorkspace], fault: Optional[str] = None
    ) -> None:
        parts = urlsplit(target)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        entry = RecordedRequest(method, parts.path, params, status, ws.slug if ws else None, fault)
        with self._log_lock:
            self.requests.append(entry)


def _bearer_token(headers: Mapping[str, str]) -> str:
    auth = headers.get("Authorization", "")
    return auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""


def _int_or_none(value: str) -> Optional[int]:
    try:
        return int(value)
    except ValueError:
        return None


class _Server(ThreadingHTTPServer):
    """A threaded HTTP server that knows its connections and handler threads, so stopping it can
    wake and join every handler (one may wait on a keep-alive client or a fault's delay). The
    threads are daemons all the same: a simulator never stopped does not hold the interpreter."""

    def __init__(self, address: Tuple[str, int], simulator: SegmentSimulator) -> None:
        self.simulator = simulator
        self.stopping = threading.Event()
        self._connections: Set[socket.socket] = set()
        self._handler_threads: List[threading.Thread] = []
        self._handlers_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self.process_request_thread, args=(request, client_address), daemon=True)
        with self._handlers_lock:
            self._connections.add(request)
            self._handler_threads = [t for t in self._handler_threads if t.is_alive()] + [thread]
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._handlers_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def stop_handlers(self) -> None:
        """Close every open connection, wake the handlers and join them; call after shutdown()."""
        self.stopping.set()
        with self._handlers_lock:
            for connection in self._connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed by the client
            threads = list(self._handler_threads)
        for thread in threads:
            thread.join()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client gone away is no error
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server_version = "SegmentSimulator/1.0"
    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every keep-alive request
    disable_nagle_algorithm = True
    server: _Server

    def _serve(self) -> None:
        sim = self.server.simulator
        ws = sim.workspaces.get(_bearer_token(self.headers))
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
        quirks, path = self.server.simulator.quirks, urlsplit(self.path).path
        found = routes.match(path)
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
