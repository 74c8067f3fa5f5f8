"""Pacing requests to Segment's limits, so a run waits before a 429 rather than after.

Two signals, both from the Public API docs (shared/segment-api/notes.md 1.5):
- every answer carries `X-RateLimit-Remaining` and `X-RateLimit-Reset` (an RFC 5322 date) for
  the token's budget: when the remaining budget runs low, the rest of it is spread evenly until
  the reset, so it never runs out early;
- some endpoints have their own per-minute limits (rules 200, audiences 60, computed traits 25,
  warehouse syncs 2 per warehouse): a sliding window per endpoint (or per parent) holds a request
  back until it fits.
A 429 still happens when other clients share the token; then `RetryPolicy` waits exactly as long
as Segment says.
"""

import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Deque, Dict, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlsplit

MINUTE = 60.0
"""Length of the per-endpoint windows, in seconds (tests scale it down)."""
MARGIN = 0.02
"""Share of a window added to it: requests arrive a little after they leave, and Segment counts arrivals."""
LOW_WATER = 5
"""From this many remaining requests on, the remaining budget is spread until the reset."""


@dataclass(frozen=True)
class RateLimit:
    """An endpoint's own limit."""

    path: str
    """Path template, `{id}` for a parent's id (the full path under the base URL)."""
    per_minute: int
    per_parent: bool = False
    """Counted per concrete path (per warehouse for syncs), not for the endpoint as a whole."""


class RateLimiter:
    """Per-token pacing; one instance per `SegmentClient`."""

    def __init__(self, limits: Sequence[RateLimit] = ()) -> None:
        self._limits = [(template_regex(limit.path), limit) for limit in limits]
        self._windows: Dict[str, Deque[float]] = {}
        self._interval = 0.0
        """Seconds between two requests while the token's budget is low (0: no pacing)."""
        self._next_slot = 0.0
        """The earliest moment the next request may leave: requests in several threads take turns."""
        self._lock = threading.Lock()
        self.waited_seconds = 0.0

    def before(self, url: str) -> None:
        """Sleep until a request to `url` fits the token budget and the endpoint's own limit."""
        path = urlsplit(url).path
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
            delay = slot - now
            window = self._window(path)
            if window is not None:
                queue, per_minute = window
                span = MINUTE * (1 + MARGIN)
                now = time.monotonic() + delay
                while queue and queue[0] <= now - span:
                    queue.popleft()
                if len(queue) >= per_minute:
                    delay = max(delay, queue[0] + span - time.monotonic())
                queue.append(time.monotonic() + delay)
            self.waited_seconds += max(0.0, delay)
        if delay > 0:
            time.sleep(delay)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Read the token's remaining budget from an answer's `X-RateLimit-*` headers."""
        remaining, reset = headers.get("X-RateLimit-Remaining"), headers.get("X-RateLimit-Reset")
        if remaining is None or reset is None:
            return
        try:
            left = int(remaining)
            seconds_to_reset = parsedate_to_datetime(reset).timestamp() - time.time()
        except (TypeError, ValueError):
            return
        with self._lock:
            self._interval = seconds_to_reset / (left + 1) if left < LOW_WATER and seconds_to_reset > 0 else 0.0

    def _window(self, path: str) -> Optional[Tuple[Deque[float], int]]:
        for regex, limit in self._limits:
            if regex.match(path):
                key = path if limit.per_parent else limit.path
                return self._windows.setdefault(key, deque()), limit.per_minute
        return None


def template_regex(template: str) -> "re.Pattern[str]":
    """A regex for the concrete paths of a template: `/warehouses/{id}/syncs` matches `/warehouses/w1/syncs`."""
    return re.compile("^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template)) + "$")
