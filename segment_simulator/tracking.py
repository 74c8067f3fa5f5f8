"""A Segment Tracking API on 127.0.0.1: `POST /v1/batch`, as the destination in `segment_source/tracking.py` sees it.

    with TrackingSimulator(write_keys=["wk_demo"]) as sim:
        ...  # send to sim.url with write key "wk_demo"
        sim.accepted  # every event accepted, once per messageId
        sim.requests  # every request: status, body size, events, duplicates, injected fault

What it reproduces (the issue's facts about the Tracking API):
- HTTP Basic auth with a known write key as the username and an empty password; 401 otherwise.
- A body `{"batch": [event, ...]}` of at most 500 KB (512,000 bytes), each event below 32 KB (32,768
  bytes, measured as compact JSON); a bigger body or event, a body that is not that JSON, or a
  malformed event (unknown `type`, neither `userId` nor `anonymousId`, a `track` without `event`, a
  `group` without `groupId`, an `alias` without `previousId`) gets 400 and nothing of the batch is kept.
- `{"success": true}` on 200. Segment deduplicates on `messageId`: an event whose id was accepted
  before is dropped and counted in `duplicates` (an event without one gets a fresh id, as Segment does).

Faults, off by default: `TrackingFaults(rate=0.1, seed=1)` answers that share of requests with a 429
(with `Retry-After: 0`) or a 5xx before reading the batch, reproducibly; `fail_next=[429, 503, 0, 400]`
answers the next requests with those statuses, in order (0: the connection closes without an answer);
`latency_ms` delays every answer.
"""

import base64
import binascii
import json
import random
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from segment_simulator.loopback import LoopbackServer

MAX_BATCH_BYTES = 500 * 1024
MAX_EVENT_BYTES = 32 * 1024
CALL_TYPES = ("identify", "track", "page", "screen", "group", "alias")
REQUIRED_FIELD = {"track": "event", "group": "groupId", "alias": "previousId"}


@dataclass
class TrackingFaults:
    """Injected failures: `rate` of requests get one of `statuses` (seeded), `fail_next` scripts the next ones
    (status 0: no answer at all)."""

    rate: float = 0.0
    statuses: Tuple[int, ...] = (429, 500, 502, 503)
    seed: int = 0
    fail_next: List[int] = field(default_factory=list)
    retry_after: Optional[str] = "0"
    latency_ms: int = 0

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()

    def draw(self) -> Optional[int]:
        with self._lock:
            if self.fail_next:
                return self.fail_next.pop(0)
            if self.rate and self._random.random() < self.rate:
                return self._random.choice(self.statuses)
        return None


@dataclass(frozen=True)
class TrackingRequest:
    """One request as the simulator saw it: `events` counts the batch, `duplicates` those dropped as seen."""

    status: int
    body_bytes: int
    events: int = 0
    duplicates: int = 0
    fault: Optional[int] = None


class TrackingSimulator:
    """`POST /v1/batch` on 127.0.0.1 for the given write keys; see the module docstring."""

    def __init__(
        self,
        write_keys: Iterable[str] = ("wk_simulator",),
        *,
        faults: Optional[TrackingFaults] = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.write_keys: Set[str] = set(write_keys)
        self.faults = faults
        self.accepted: List[Dict[str, Any]] = []
        self.requests: List[TrackingRequest] = []
        self.duplicates = 0
        self._seen: Set[str] = set()
        self._lock = threading.Lock()
        self._address = (host, port)
        self._server: Optional[_Server] = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the tracking simulator is not running: call start() or use it in a with block")
        return self._server.url

    def accepted_by_type(self) -> Counter:
        return Counter(event["type"] for event in self.accepted)

    def start(self) -> "TrackingSimulator":
        self._server = _Server(self._address, self)
        self._server.start("tracking-simulator")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> "TrackingSimulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def handle(self, authorization: str, body: bytes) -> Tuple[int, Dict[str, Any], Dict[str, str]]:
        """Answer one `POST /v1/batch`: (status, JSON body, headers). Records the request."""
        if _write_key(authorization) not in self.write_keys:
            return self._answer(401, "Invalid write key", len(body))
        faults = self.faults  # read once: a test may swap it between requests
        fault = faults.draw() if faults else None
        if faults and fault is not None:
            headers = {"Retry-After": faults.retry_after} if fault == 429 and faults.retry_after else {}
            return self._answer(fault, "injected fault", len(body), fault=fault, headers=headers)
        if len(body) > MAX_BATCH_BYTES:
            return self._answer(400, f"batch of {len(body)} bytes is over the 500 KB limit", len(body))
        try:
            batch = json.loads(body)["batch"]
            if not isinstance(batch, list):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return self._answer(400, 'the body is not {"batch": [...]}', len(body))
        for index, event in enumerate(batch):
            problem = event_problem(event)
            if problem:
                return self._answer(400, f"event {index}: {problem}", len(body))
        with self._lock:
            duplicates = 0
            for event in batch:
                message_id = str(event.setdefault("messageId", str(uuid.uuid4())))
                if message_id in self._seen:
                    duplicates += 1
                    continue
                self._seen.add(message_id)
                self.accepted.append(event)
            self.duplicates += duplicates
            self.requests.append(TrackingRequest(200, len(body), len(batch), duplicates))
        return 200, {"success": True}, {}

    def _answer(
        self,
        status: int,
        message: str,
        size: int,
        fault: Optional[int] = None,
        headers: Optional[Dict[str, str]] = None,
    ) -> Tuple[int, Dict[str, Any], Dict[str, str]]:
        with self._lock:
            self.requests.append(TrackingRequest(status, size, fault=fault))
        return status, {"success": False, "message": message}, headers or {}


def event_problem(event: Any) -> Optional[str]:
    """Why `event` is not a Tracking API event, or None."""
    if not isinstance(event, dict):
        return "not an object"
    if event.get("type") not in CALL_TYPES:
        return f"type {event.get('type')!r} is not one of {', '.join(CALL_TYPES)}"
    if not event.get("userId") and not event.get("anonymousId"):
        return "neither userId nor anonymousId"
    required = REQUIRED_FIELD.get(event["type"])
    if required and not event.get(required):
        return f"{event['type']} without {required}"
    size = len(json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > MAX_EVENT_BYTES:
        return f"event of {size} bytes is over the 32 KB limit"
    return None


def _write_key(authorization: str) -> Optional[str]:
    if not authorization.startswith("Basic "):
        return None
    try:
        user, _, _password = base64.b64decode(authorization[len("Basic ") :], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user


class _Server(LoopbackServer):
    def __init__(self, address: Tuple[str, int], simulator: TrackingSimulator) -> None:
        self.simulator = simulator
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server_version = "TrackingSimulator/1.0"
    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes: without TCP_NODELAY each request waits ~40 ms
    # for the client's delayed ACK
    disable_nagle_algorithm = True
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        faults = self.server.simulator.faults
        if faults and faults.latency_ms and self.server.stopping.wait(faults.latency_ms / 1000):
            self.close_connection = True
            return
        status, payload, headers = (
            self.server.simulator.handle(self.headers.get("Authorization", ""), body)
            if self.path.split("?")[0] == "/v1/batch"
            else (404, {"success": False, "message": f"no endpoint at {self.path}"}, {})
        )
        if status == 0:
            self.close_connection = True  # the client sees the connection drop
            return
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # `requests` replaces stderr noise
