"""Send rows to Segment as events: a dlt destination for the Tracking API's `POST /v1/batch`.

    import dlt
    from segment_source.tracking import segment_call, segment_tracking, tracking_summary

    pipeline = dlt.pipeline("to_segment", destination=segment_tracking())
    info = pipeline.run(segment_call(traits_resource, "identify"))
    print(tracking_summary(pipeline, info))

Configuration, `[destination.segment_tracking]`: `write_key` (secrets.toml, or
DESTINATION__SEGMENT_TRACKING__WRITE_KEY), `region` (us/eu), `base_url` (https, or http to
127.0.0.1/localhost), `batch_size` (rows dlt hands over per call, default 5,000),
`max_concurrency`, `max_attempts`, `timeout`.

A row becomes one event (`row_to_event`):
- call type: the row's `type` column, else the resource's setting (`segment_call`), else the table
  name when it is a call type (`identify`, `track`, `page`, `screen`, `group`, `alias`);
- `user_id`, `anonymous_id`, `message_id`, `group_id`, `previous_id` become the spec's camelCase
  names; `event`, `name`, `category`, `traits`, `properties`, `context`, `integrations`, `timestamp`
  are kept; a column flattened by dlt (`traits__plan`) is nested again (`traits.plan`); any other
  column goes into `traits` (identify, group) or `properties` (the others); empty values are left out;
- a `messageId`, when the row has none, is a hash of the event, so a resend carries the same id
  and Segment drops the duplicate.
A row that cannot be an event (no userId or anonymousId, a `track` without `event`, a `group`
without `groupId`, an `alias` without `previousId`, no call type, over 32 KB) is not sent: it is
counted with its reason and key in the summary and logged as a warning.

Why dlt's pieces and where not: `@dlt.destination` hands this module `batch_size` rows at a time
and records, in the load package state, how many rows of each file are done once a call returns,
so a rerun after a crash resumes at the first unfinished call and a completed load is never sent
again. dlt's batches count rows, Segment's limit is bytes: each call packs its rows into requests of
at most 500 KB. dlt's `RESTClient` retries with its own policy and no bounded fan-out, so sending
uses `requests` with the retry policy below (429, 5xx, timeouts, honouring `Retry-After`; never a
4xx). The summary is kept in the same load package state, written with each call's progress, so it
covers a load resumed across processes.
"""

import base64
import hashlib
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import dlt
import orjson
import requests
from dlt.common.configuration import configspec
from dlt.common.destination.exceptions import DestinationTerminalException, DestinationTransientException
from dlt.common.json import custom_encode, json
from dlt.common.pipeline import LoadInfo
from dlt.common.schema import TTableSchema
from dlt.common.storages.load_package import destination_state
from dlt.common.typing import TDataItems, TSecretStrValue
from dlt.destinations.impl.destination.configuration import CustomDestinationClientConfiguration
from dlt.destinations.impl.destination.factory import destination as CustomDestination
from dlt.extract import DltResource

from segment_source.errors import ConfigurationError, SegmentSourceError
from segment_source.settings import check_base_url

logger = logging.getLogger("segment_source")

REGIONS = {"us": "https://api.segment.io", "eu": "https://events.eu1.segmentapis.com"}
BATCH_PATH = "/v1/batch"
MAX_BATCH_BYTES = 500 * 1024
MAX_EVENT_BYTES = 32 * 1024
CALL_TYPES = ("identify", "track", "page", "screen", "group", "alias")
CALL_TYPE_HINT = "x-segment-call"
ROW_KEY_HINT = "x-segment-row-key"
SNAKE_CASE_FIELDS = {
    "user_id": "userId",
    "anonymous_id": "anonymousId",
    "message_id": "messageId",
    "group_id": "groupId",
    "previous_id": "previousId",
}
SPEC_FIELDS = {
    "type",
    "userId",
    "anonymousId",
    "messageId",
    "groupId",
    "previousId",
    "event",
    "name",
    "category",
    "traits",
    "properties",
    "context",
    "integrations",
    "timestamp",
}
ID_FIELDS = ("userId", "anonymousId", "messageId", "groupId", "previousId")
EXTRA_COLUMNS_GO_TO = {"identify": "traits", "group": "traits"}  # every other type: "properties"
REQUIRED_FIELD = {"track": "event", "group": "groupId", "alias": "previousId"}
REJECTED_KEYS_KEPT = 100  # per reason, in the summary; the counts are exact
STATE_KEY = "segment_tracking"
_BODY_START, _BODY_END = b'{"batch":[', b"]}"
_state_lock = threading.Lock()


class TrackingApiError(SegmentSourceError, DestinationTerminalException):
    """Segment refused a batch (400, 401, 403 or another 4xx): retrying cannot help, the job fails."""


class TrackingApiUnreachable(SegmentSourceError, DestinationTransientException):
    """No 200 after every attempt: the job is retried by dlt, and the next run resumes it."""


@configspec
class SegmentTrackingConfiguration(CustomDestinationClientConfiguration):
    write_key: TSecretStrValue = None  # type: ignore[assignment]  # required: dlt asks for it when missing
    batch_size: int = 5000  # rows per call: what a crash can make Segment receive twice (and drop as duplicates)
    region: str = "us"
    base_url: Optional[str] = None
    max_concurrency: int = 4
    max_attempts: int = 6
    backoff_seconds: float = 0.5
    max_wait_seconds: float = 60.0
    timeout: float = 30.0

    def on_resolved(self) -> None:
        batch_url(self.region, self.base_url)  # raises a ConfigurationError for a bad region or URL


def batch_url(region: str, base_url: Optional[str]) -> str:
    """`POST /v1/batch` of the region, or of `base_url` (https, or http to this machine only)."""
    section = "[destination.segment_tracking] in .dlt/config.toml (or DESTINATION__SEGMENT_TRACKING__"
    if not base_url:
        try:
            return REGIONS[str(region).strip().lower()] + BATCH_PATH
        except KeyError:
            raise ConfigurationError(
                f'region {region!r} is not a Segment region. Set region in {section}REGION) to "us" or "eu".'
            ) from None
    setting = f"base_url in {section}BASE_URL)"
    otherwise = "or remove it and set region instead"
    return check_base_url(base_url, setting, otherwise, secret="the write key") + BATCH_PATH


def segment_call(
    resource: DltResource, call_type: Optional[str] = None, key: Optional[Sequence[str]] = None
) -> DltResource:
    """Send every row of `resource` as a `call_type` call (unless a row has its own `type` column);
    `key`: the columns that name a row in the report of rows not sent (default: the primary key)."""
    if call_type is not None and call_type not in CALL_TYPES:
        raise ConfigurationError(f"{call_type!r} is not a Segment call type: use one of {', '.join(CALL_TYPES)}.")
    hints = {CALL_TYPE_HINT: call_type, ROW_KEY_HINT: list(key) if key else None}
    resource.apply_hints(additional_table_hints={k: v for k, v in hints.items() if v})
    return resource


# ---- rows to events ------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    type: str
    data: bytes  # compact JSON


@dataclass(frozen=True)
class Rejected:
    reason: str
    key: Dict[str, Any]


def row_to_event(row: Mapping[str, Any], table: TTableSchema) -> Union[Event, Rejected]:
    """The row as a Tracking API event, or why it cannot be one (and which row it was)."""
    event: Dict[str, Any] = {}
    for column, value in row.items():
        if value is None:
            continue
        path = column.split("__")
        path[0] = SNAKE_CASE_FIELDS.get(path[0], path[0])
        _put(event, path, value)
    call_type = str(event.pop("type", None) or table.get(CALL_TYPE_HINT) or table["name"])
    extras_to = EXTRA_COLUMNS_GO_TO.get(call_type, "properties")
    for name in [name for name in event if name not in SPEC_FIELDS]:
        nested = event.setdefault(extras_to, {})
        if isinstance(nested, dict):
            nested.setdefault(name, event.pop(name))
    for name in ID_FIELDS:
        if name in event:
            event[name] = str(event[name])
    event = {"type": call_type, **event}
    if "messageId" not in event:
        event["messageId"] = "dlt-" + hashlib.sha256(_dumpb(event, sort_keys=True)).hexdigest()[:32]
    problem = _problem(event)
    encoded = _dumpb(event)
    if problem is None and len(encoded) > MAX_EVENT_BYTES:
        problem = f"event over 32 KB ({len(encoded) // 1024} KB)"
    if problem is not None:
        return Rejected(problem, _row_key(row, event, table))
    return Event(call_type, encoded)


def _problem(event: Mapping[str, Any]) -> Optional[str]:
    if event["type"] not in CALL_TYPES:
        return "no call type (a type column, segment_call() or a table named after a call type)"
    if not event.get("userId") and not event.get("anonymousId"):
        return "neither userId nor anonymousId"
    required = REQUIRED_FIELD.get(event["type"])
    if required and not event.get(required):
        return f"{event['type']} without {required}"
    return None


def _put(target: Dict[str, Any], path: Sequence[str], value: Any) -> None:
    for name in path[:-1]:
        child = target.get(name)
        if not isinstance(child, dict):
            child = target[name] = {}
        target = child
    existing = target.get(path[-1])
    if isinstance(existing, dict) and isinstance(value, dict):
        existing.update(value)  # a json column and its flattened children: one object
    else:
        target[path[-1]] = value


def _encode(value: Any) -> Any:
    """JSON numbers for decimals (a warehouse's NUMERIC revenue is a number to Segment); dlt's encoding
    (ISO 8601 dates and times...) for the rest."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return custom_encode(value)


def _dumpb(event: Mapping[str, Any], sort_keys: bool = False) -> bytes:
    options = orjson.OPT_NON_STR_KEYS | (orjson.OPT_SORT_KEYS if sort_keys else 0)
    return orjson.dumps(event, default=_encode, option=options)


def _row_key(row: Mapping[str, Any], event: Mapping[str, Any], table: TTableSchema) -> Dict[str, Any]:
    """The row's key columns (`segment_call(key=...)`, else the primary key), else its ids (a messageId at least)."""
    columns: List[str] = list(table.get(ROW_KEY_HINT) or ()) or [  # type: ignore[call-overload]  # our own hint
        name for name, column in table.get("columns", {}).items() if column.get("primary_key")
    ]
    if columns:
        return {name: row.get(name) for name in columns}
    return {name: event[name] for name in ("messageId", "userId", "anonymousId", "event") if name in event}


def pack(events: Iterable[bytes], max_bytes: int = MAX_BATCH_BYTES) -> List[bytes]:
    """Request bodies `{"batch": [...]}` of at most `max_bytes`, filled in order."""
    bodies: List[bytes] = []
    current: List[bytes] = []
    size = len(_BODY_START) + len(_BODY_END)
    for event in events:
        added = len(event) + (1 if current else 0)
        if current and size + added > max_bytes:
            bodies.append(_BODY_START + b",".join(current) + _BODY_END)
            current, size, added = [], len(_BODY_START) + len(_BODY_END), len(event)
        current.append(event)
        size += added
    if current:
        bodies.append(_BODY_START + b",".join(current) + _BODY_END)
    return bodies


# ---- sending -------------------------------------------------------------------------------


class BatchSender:
    """POSTs bodies to the batch endpoint, `max_concurrency` at a time, retrying 429, 5xx and timeouts."""

    def __init__(self, config: SegmentTrackingConfiguration) -> None:
        self.url = batch_url(config.region, config.base_url)
        self.config = config
        token = base64.b64encode(f"{config.write_key}:".encode()).decode()
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=max(1, config.max_concurrency))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Authorization": f"Basic {token}", "Content-Type": "application/json"})

    def send_all(self, bodies: Sequence[bytes]) -> int:
        """Send every body; returns the retries it took. Raises on a refused batch or when out of attempts."""
        if len(bodies) == 1 or self.config.max_concurrency <= 1:
            return sum(self.send(body) for body in bodies)
        with ThreadPoolExecutor(max_workers=self.config.max_concurrency, thread_name_prefix="segment-batch") as pool:
            return sum(pool.map(self.send, bodies))

    def send(self, body: bytes) -> int:
        config = self.config
        for attempt in range(config.max_attempts):
            retry_after: Optional[str] = None
            try:
                response = self.session.post(self.url, data=body, timeout=config.timeout)
            except (requests.Timeout, requests.ConnectionError) as ex:
                problem = f"no answer ({type(ex).__name__})"
            else:
                if response.status_code == 200:
                    return attempt
                if response.status_code != 429 and response.status_code < 500:
                    raise TrackingApiError(_refusal(response, len(body), self.url))
                problem, retry_after = f"status {response.status_code}", response.headers.get("Retry-After")
            if attempt + 1 < config.max_attempts:
                time.sleep(self.wait_seconds(attempt, retry_after))
        raise TrackingApiUnreachable(
            f"Segment's Tracking API at {self.url} gave no 200 after {config.max_attempts} attempts (last:"
            f" {problem}). Nothing is lost: the rows not yet confirmed are sent again, with the same messageIds,"
            " when the load is retried or the pipeline runs again."
        )

    def wait_seconds(self, attempt: int, retry_after: Optional[str]) -> float:
        """Segment's `Retry-After` when it sends one (capped at `max_wait_seconds`), else exponential backoff."""
        if retry_after is not None:
            try:
                return min(max(0.0, float(retry_after)), self.config.max_wait_seconds)
            except ValueError:
                pass  # an HTTP date: rare for this API; back off instead
        backoff = self.config.backoff_seconds * 2**attempt
        return min(backoff * (0.5 + random.random() / 2), self.config.max_wait_seconds)  # jitter spreads retries

    def close(self) -> None:
        self.session.close()


def _refusal(response: requests.Response, size: int, url: str) -> str:
    status = response.status_code
    try:
        said = str(response.json().get("message", ""))[:200]
    except ValueError:
        said = response.text[:200]
    if status in (401, 403):
        return (
            f"Segment's Tracking API at {url} refused the write key ({status}: {said}). Copy the write key of"
            " the source to send to (Segment: Connections > Sources > <source> > Settings > API Keys) into"
            ' .dlt/secrets.toml as [destination.segment_tracking] write_key = "<write key>", or set'
            " DESTINATION__SEGMENT_TRACKING__WRITE_KEY."
        )
    return (
        f"Segment's Tracking API at {url} refused a batch of {size} bytes with {status} ({said}). A refused"
        " batch is not retried; the events sent before it stay sent. Check the rows of this table against"
        " the Tracking API spec, then run the pipeline again."
    )


# ---- the destination -----------------------------------------------------------------------


@dlt.destination(
    name="segment_tracking",
    spec=SegmentTrackingConfiguration,  # its batch_size default (5,000) applies unless configured
    loader_file_format="typed-jsonl",
    max_table_nesting=0,  # nested traits/properties stay objects, not child tables
    max_parallel_load_jobs=1,  # one table at a time: concurrency is bounded by max_concurrency alone
)
def send_events(
    items: TDataItems,
    table: TTableSchema,
    config: SegmentTrackingConfiguration = None,  # type: ignore[assignment]  # dlt passes the resolved configuration
) -> None:
    """Send one call's rows (`batch_size` of them) as Tracking API events; see the module docstring."""
    encoded: List[bytes] = []
    sent = TrackingSummary()
    for row in items:
        result = row_to_event(row, table)
        if isinstance(result, Rejected):
            sent.reject(result)
        else:
            encoded.append(result.data)
            sent.sent[result.type] = sent.sent.get(result.type, 0) + 1
    bodies = pack(encoded)
    sender = BatchSender(config)
    try:
        sent.retries = sender.send_all(bodies)
    finally:
        sender.close()
    sent.batches, sent.bytes = len(bodies), sum(len(body) for body in bodies)
    if sent.rejected:
        logger.warning(
            "%s: %s row(s) not sent to Segment: %s",
            table["name"],
            sum(sent.rejected.values()),
            sent.describe_rejected(),
        )
    with _state_lock:  # dlt commits this with the call's progress, once this function returns
        state = destination_state()
        state[STATE_KEY] = TrackingSummary.from_state(state.get(STATE_KEY)).add(sent).to_state()


def segment_tracking(**settings: Any) -> CustomDestination:
    """The destination, for `dlt.pipeline(destination=segment_tracking())`. Settings given here (`write_key`,
    `region`, `base_url`, `batch_size`, `max_concurrency`...) win over `[destination.segment_tracking]`."""
    return send_events(**settings)  # dlt's factory takes the spec's fields as keyword arguments


# ---- the summary ---------------------------------------------------------------------------


@dataclass
class TrackingSummary:
    """What a load sent: events per call type, rejected rows per reason (with their keys), batches, retries."""

    sent: Dict[str, int] = field(default_factory=dict)
    rejected: Dict[str, int] = field(default_factory=dict)
    rejected_keys: Dict[str, List[Dict[str, Any]]] = field(default_factory=dict)
    batches: int = 0
    retries: int = 0
    bytes: int = 0

    @property
    def events_sent(self) -> int:
        return sum(self.sent.values())

    def reject(self, rejected: Rejected) -> None:
        self.rejected[rejected.reason] = self.rejected.get(rejected.reason, 0) + 1
        keys = self.rejected_keys.setdefault(rejected.reason, [])
        if len(keys) < REJECTED_KEYS_KEPT:
            keys.append(rejected.key)

    def add(self, other: "TrackingSummary") -> "TrackingSummary":
        for name, count in other.sent.items():
            self.sent[name] = self.sent.get(name, 0) + count
        for reason, count in other.rejected.items():
            self.rejected[reason] = self.rejected.get(reason, 0) + count
            keys = self.rejected_keys.setdefault(reason, [])
            keys.extend(other.rejected_keys.get(reason, [])[: REJECTED_KEYS_KEPT - len(keys)])
        self.batches += other.batches
        self.retries += other.retries
        self.bytes += other.bytes
        return self

    def to_state(self) -> Dict[str, Any]:
        return {
            "sent": self.sent,
            "rejected": self.rejected,
            "rejected_keys": self.rejected_keys,
            "batches": self.batches,
            "retries": self.retries,
            "bytes": self.bytes,
        }

    @classmethod
    def from_state(cls, state: Optional[Mapping[str, Any]]) -> "TrackingSummary":
        return cls(**{k: v for k, v in dict(state or {}).items()})

    def describe_rejected(self) -> str:
        parts = []
        for reason, count in sorted(self.rejected.items()):
            keys = ", ".join(json.dumps(key) for key in self.rejected_keys.get(reason, [])[:3])
            parts.append(f"{count} {reason} (e.g. {keys}{', ...' if count > 3 else ''})")
        return "; ".join(parts)

    def __str__(self) -> str:
        per_type = ", ".join(f"{count} {name}" for name, count in sorted(self.sent.items())) or "none"
        text = (
            f"Segment Tracking API: {self.events_sent} events sent ({per_type}) in {self.batches} batches"
            f" ({self.bytes / 1024:.0f} KB), {self.retries} retries."
        )
        if self.rejected:
            text += f" Not sent: {sum(self.rejected.values())} row(s): {self.describe_rejected()}."
        return text


def tracking_summary(pipeline: dlt.Pipeline, info: Optional[LoadInfo] = None) -> TrackingSummary:
    """The summary of the loads in `info` (default: the pipeline's last run), read from their load packages."""
    if info is None:
        trace = pipeline.last_trace
        info = trace.last_load_info if trace else None
    total = TrackingSummary()
    for load_id in info.loads_ids if info else []:
        package_state = pipeline.get_load_package_state(load_id)
        total.add(TrackingSummary.from_state(package_state.get("destination_state", {}).get(STATE_KEY)))
    return total
