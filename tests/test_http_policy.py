"""The HTTP layer's decision tables, pinned: what each status means, when to retry, how pages end."""

import json
from typing import Any, Dict, Optional

import pytest
import requests

from segment_source.client import (
    MAX_RATE_LIMIT_WAITS,
    Action,
    MediaTypes,
    RetryPolicy,
    SegmentCursorPaginator,
    rule_for,
)
from segment_source.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    SegmentApiError,
    UnexpectedResponseError,
)


def answer(status: int, body: Dict[str, Any], url: str = "https://api.segmentapis.com/sources") -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.url = url
    return response


def api_error(status: int, body: Optional[Dict[str, Any]] = None) -> SegmentApiError:
    return SegmentApiError("failed", "GET /sources", answer(status, body or {"errors": [{"type": "x"}]}))


@pytest.mark.parametrize(
    "status, action, error",
    [
        (401, Action.FATAL, AuthenticationError),
        (403, Action.SKIP, PermissionDeniedError),
        (404, Action.SKIP, NotFoundError),
        (406, Action.MEDIA_TYPE, SegmentApiError),
        (422, Action.PAGE_SIZE, SegmentApiError),
        (429, Action.WAIT, SegmentApiError),
        (500, Action.BACKOFF, SegmentApiError),
        (503, Action.BACKOFF, SegmentApiError),
        (400, Action.FAIL, SegmentApiError),
        (409, Action.FAIL, SegmentApiError),
    ],
)
def test_each_status_has_one_declared_action(status, action, error):
    assert rule_for(status).action is action
    assert rule_for(status).error is error


def test_a_429_waits_as_long_as_its_body_says_and_not_forever():
    policy = RetryPolicy(max_attempts=3, backoff_factor=1, max_delay=10)
    limited = api_error(429, {"errors": [{"type": "RequestError", "data": {"msBeforeNext": 2500}}]})
    assert policy.wait(limited, attempt=1, rate_limited=1) == pytest.approx(2.55)
    # 429 waits do not use up the retries of other failures, but are bounded themselves
    assert policy.wait(limited, attempt=99, rate_limited=MAX_RATE_LIMIT_WAITS) == pytest.approx(2.55)
    assert policy.wait(limited, attempt=1, rate_limited=MAX_RATE_LIMIT_WAITS + 1) is None


def test_server_errors_and_dropped_connections_back_off_until_the_attempts_run_out():
    policy = RetryPolicy(max_attempts=3, backoff_factor=1, max_delay=10)
    for failure in (api_error(503), requests.ConnectionError(), requests.Timeout()):
        delays = [policy.wait(failure, attempt, 0) for attempt in (1, 2, 3)]
        assert delays[2] is None, failure
        assert 0 <= delays[0] <= 1 and 0 <= delays[1] <= 2, failure  # full jitter under 2^(n-1)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 406, 422])
def test_client_errors_are_never_retried(status):
    assert RetryPolicy(5, 1, 10).wait(api_error(status), 1, 0) is None


def test_certificate_failures_are_never_retried():
    assert RetryPolicy(5, 1, 10).wait(requests.exceptions.SSLError(), 1, 0) is None


def page(items: int, next_cursor: Optional[str], total: Optional[int]) -> requests.Response:
    pagination: Dict[str, Any] = {"current": "MA==", "next": next_cursor}
    if total is not None:
        pagination["totalEntries"] = total
    return answer(200, {"data": {"sources": [{}] * items, "pagination": pagination}})


def test_the_paginator_asks_for_its_page_size_and_follows_the_next_cursor():
    paginator = SegmentCursorPaginator(1000)
    request = requests.Request("GET", "https://api.segmentapis.com/sources", params={"x": "1"})
    paginator.init_request(request)
    assert request.params == {"x": "1", "pagination[count]": 1000}
    paginator.update_state(page(1000, "MTAwMA==", 1500), [{}] * 1000)
    paginator.update_request(request)
    assert request.params["pagination[cursor]"] == "MTAwMA==" and paginator.has_next_page
    paginator.update_state(page(500, None, 1500), [{}] * 500)
    assert not paginator.has_next_page and paginator.served == 1500 and paginator.total == 1500


def test_a_repeated_cursor_stops_the_listing():
    paginator = SegmentCursorPaginator(2)
    paginator.update_state(page(2, "Mg==", 10), [{}] * 2)
    with pytest.raises(UnexpectedResponseError, match="twice"):
        paginator.update_state(page(2, "Mg==", 10), [{}] * 2)


def test_pages_beyond_the_announced_total_stop_the_listing():
    paginator = SegmentCursorPaginator(2)
    with pytest.raises(UnexpectedResponseError, match="kept returning a next page"):
        for n in range(10):
            paginator.update_state(page(2, f"c{n}", 4), [{}] * 2)


def test_a_server_serving_smaller_pages_than_asked_is_not_taken_for_a_runaway():
    paginator = SegmentCursorPaginator(1000)
    for n in range(9):  # 1000 items at 100 a page, although 1000 were asked for
        paginator.update_state(page(100, f"c{n}", 1000), [{}] * 100)
    paginator.update_state(page(100, None, 1000), [{}] * 100)
    assert paginator.served == 1000 and not paginator.has_next_page


def test_a_406_asks_the_endpoints_declared_media_type_once_and_remembers_it():
    types = MediaTypes([("/spaces", "application/vnd.segment.v1alpha+json"), ("/spaces/{id}/audiences", "v1")])
    assert types.chosen("/spaces") is None
    assert types.choose("/spaces") and types.chosen("/spaces") == "application/vnd.segment.v1alpha+json"
    assert types.chosen("/spaces/sp1/audiences") is None
    assert not types.choose("/unknown")
