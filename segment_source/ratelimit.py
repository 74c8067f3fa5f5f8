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
from email.utils import parsedate_to_datetime
from typing import Deque, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

MINUTE = 60.0
"""Length of the per-endpoint windows, in seconds (tests scale it down)."""
MARGIN = 0.02
"""Share of a window added to it: requests arrive a little after they leave, and Segment counts arrivals."""
LOW_WATER = 5
"""From this many remaining requests on, the remaining budget is spread until the reset."""


class RateLimiter:
    """Per-token pacing; one instance per `SegmentClient`."""

    def __init__(self, limits: List[Tuple[str, int, bool]]) -> None:
        """`limits`: (path template with `{id}`, requests per minute, counted per concrete path)."""
        self._limits = [(_template_regex(t), per_minute, per_path, t) for t, per_minute, per_path in limits]
        self._windows: Dict[str, Deque[float]] = {}
        self._budget_pause_until = 0.0
        self._lock = threading.Lock()
        self.waited_seconds = 0.0

    def before(self, url: str) -> None:
        """Sleep until a request to `url` fits the token budget and the endpoint's own limit."""
        path = urlsplit(url).path
        with self._lock:
            delay = max(0.0, self._budget_pause_until - time.monotonic())
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
            self._budget_pause_until = 0.0
        if delay > 0:
            self.waited_seconds += delay
            time.sleep(delay)

    def observe(self, headers: "dict | object") -> None:
        """Read the token's remaining budget from an answer's `X-RateLimit-*` headers."""
        remaining, reset = headers.get("X-RateLimit-Remaining"), headers.get("X-RateLimit-Reset")  # type: ignore[attr-defined]
        if remaining is None or reset is None:
            return
        try:
            left = int(remaining)
            seconds_to_reset = parsedate_to_datetime(reset).timestamp() - time.time()
        except (TypeError, ValueError):
            return
        if left < LOW_WATER and seconds_to_reset > 0:
            with self._lock:
                self._budget_pause_until = time.monotonic() + seconds_to_reset / (left + 1)

    def _window(self, path: str) -> Optional[Tuple[Deque[float], int]]:
        for regex, per_minute, per_path, template in self._limits:
            if regex.match(path):
                key = path if per_path else template
                return self._windows.setdefault(key, deque()), per_minute
        return None


def _template_regex(template: str) -> "re.Pattern[str]":
    return re.compile("^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template)) + "$")
