"""The simulator's teeth, seen by a real HTTP client: rate limits, injected faults, scripted quirks."""

import socket
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Any, Iterator, List, Tuple

import pytest
import requests

from segment_simulator import Faults, Quirks, RateLimits, SegmentSimulator, generate_workspace, routes
from segment_simulator.routes import Route

BY_PATTERN = "/limited/{id}/by-pattern"
BY_PATH = "/limited/{id}/by-path"


def get(sim: SegmentSimulator, path: str, timeout: float = 10, **params: Any) -> requests.Response:
    return requests.get(
        sim.url + path, params=params, headers={"Authorization": f"Bearer {sim.token}"}, timeout=timeout
    )


def serve(**policies: Any) -> SegmentSimulator:
    return SegmentSimulator(generate_workspace("small"), **policies)


@pytest.fixture
def limited_routes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Two test-only endpoints with 2 requests per window: one counted per pattern, one per path."""
    extra = [
        Route(BY_PATTERN, lambda ws, p, q: {"id": p["id"]}, rate_limit=2),
        Route(BY_PATH, lambda ws, p, q: {"id": p["id"]}, rate_limit=2, rate_limit_per_path=True),
    ]
    monkeypatch.setattr(routes, "ROUTES", extra + routes.ROUTES)
    yield


# ---- rate limits -----------------------------------------------------------------------------


def test_a_rate_limited_request_gets_segments_429_body_and_no_retry_after():
    with serve(rate_limits=RateLimits(per_token=3, window=2.0)) as sim:
        assert [get(sim, "/sources").status_code for _ in range(3)] == [200, 200, 200]
        refused = get(sim, "/sources")
        assert refused.status_code == 429
        assert "Retry-After" not in refused.headers
        body = refused.json()
        data = body["errors"][0].pop("data")
        assert body == {"errors": [{"type": "RequestError", "message": "Too many requests"}]}
        assert data["remainingPoints"] == 0 and data["consumedPoints"] == 4
        assert 0 < data["msBeforeNext"] <= 2000
        assert [r.status for r in sim.requests] == [200, 200, 200, 429]
        assert sim.rate_limits is not None
        assert sim.rate_limits.refused == {"token": 1}


def test_answers_carry_the_rate_limit_headers_of_the_token_budget():
    with serve(rate_limits=RateLimits(per_token=5, window=2.0)) as sim:
        answers = [get(sim, "/sources") for _ in range(3)]
        assert [a.headers["X-RateLimit-Consumed"] for a in answers] == ["1", "2", "3"]
        assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["4", "3", "2"]
        reset = parsedate_to_datetime(answers[-1].headers["X-RateLimit-Reset"]).timestamp()
        assert time.time() <= reset <= time.time() + 3
        unknown = requests.get(sim.url + "/sources", headers={"Authorization": "Bearer nope"}, timeout=10)
        assert unknown.status_code == 401 and "X-RateLimit-Remaining" not in unknown.headers


def test_waiting_ms_before_next_is_enough_and_the_window_does_not_move():
    with serve(rate_limits=RateLimits(per_token=2, window=1.5)) as sim:
        get(sim, "/sources"), get(sim, "/sources")
        first = get(sim, "/sources").json()["errors"][0]["data"]
        again = get(sim, "/sources").json()["errors"][0]["data"]
        assert again["consumedPoints"] == first["consumedPoints"] + 1 == 4  # refusals count too
        assert again["msBeforeNext"] <= first["msBeforeNext"]  # ... but do not push the window back
        time.sleep(again["msBeforeNext"] / 1000)
        after = get(sim, "/sources")
        assert after.status_code == 200 and after.headers["X-RateLimit-Consumed"] == "1"


def test_route_limits_count_per_pattern_or_per_path(limited_routes):
    with serve(rate_limits=RateLimits(per_token=100, window=2.0)) as sim:
        assert [get(sim, f"/limited/{i}/by-pattern").status_code for i in "abc"] == [200, 200, 429]
        assert [get(sim, "/limited/a/by-path").status_code for _ in range(3)] == [200, 200, 429]
        assert get(sim, "/limited/b/by-path").status_code == 200  # another warehouse, its own budget
        assert sim.rate_limits is not None
        assert sim.rate_limits.refused == {BY_PATTERN: 1, "/limited/a/by-path": 1}
    with serve(rate_limits=RateLimits(per_token=100, window=2.0, per_route=False)) as sim:
        assert {get(sim, "/limited/a/by-path").status_code for _ in range(3)} == {200}


def test_a_real_route_limit_applies_per_token_window():
    # a window of a minute, as Segment's: the 61 requests must fit in it on a loaded machine too
    with serve(rate_limits=RateLimits(per_token=1000, window=60.0)) as sim:
        path = f"/spaces/{sim.workspace.ids('spaces')[0]}/audiences"
        limit = routes.match(path)[0].rate_limit
        assert limit is not None
        assert {get(sim, path).status_code for _ in range(limit)} == {200}
        refused = get(sim, path)
        assert refused.status_code == 429
        assert refused.json()["errors"][0]["data"]["consumedPoints"] == limit + 1
        assert get(sim, "/sources").status_code == 200  # other endpoints still answer


# ---- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["500", "502", "503", "504"])
def test_server_error_faults_have_an_errors_body(kind):
    with serve(faults=Faults(rate=1.0, kinds=[kind])) as sim:
        answer = get(sim, "/sources")
        assert answer.status_code == int(kind)
        assert answer.json()["errors"][0]["status"] == int(kind)
        assert [(r.status, r.fault) for r in sim.requests] == [(int(kind), kind)]
        assert sim.faults is not None
        assert sim.faults.counts == {kind: 1}


def test_a_dropped_connection_is_a_connection_error_and_the_server_lives_on():
    with serve(faults=Faults(rate=1.0, kinds=["drop"])) as sim:
        with pytest.raises(requests.ConnectionError):
            get(sim, "/sources")
        sim.faults = None
        assert get(sim, "/sources").status_code == 200
        assert [(r.status, r.fault) for r in sim.requests] == [(0, "drop"), (200, None)]


def test_a_slow_answer_times_out_a_shorter_client_timeout_and_arrives_for_a_patient_one():
    with serve(faults=Faults(rate=1.0, kinds=["slow"], slow_seconds=0.5)) as sim:
        with pytest.raises(requests.Timeout):
            get(sim, "/sources", timeout=0.1)
        started = time.monotonic()
        assert get(sim, "/sources", timeout=5).status_code == 200
        assert time.monotonic() - started >= 0.5
        assert sim.faults is not None
        assert sim.faults.counts == {"slow": 2}


def test_malformed_and_unexpected_envelope_answers_are_200s():
    with serve(faults=Faults(rate=1.0, kinds=["malformed"])) as sim:
        answer = get(sim, "/sources")
        assert answer.status_code == 200
        with pytest.raises(ValueError):
            answer.json()
        sim.faults = Faults(rate=1.0, kinds=["envelope"])
        answer = get(sim, "/sources")
        assert answer.status_code == 200 and "data" not in answer.json()


def test_fixed_latency_delays_every_answer_without_faults():
    with serve(faults=Faults(latency_ms=200)) as sim:
        started = time.monotonic()
        assert get(sim, "/").status_code == 200
        assert time.monotonic() - started >= 0.2
        assert sim.faults is not None
        assert sim.faults.injected == []


def run(faults: Faults, paths: List[str]) -> List[Tuple[str, int]]:
    with serve(faults=faults) as sim:
        for path in paths:
            get(sim, path)
        return [(r.path, r.status) for r in sim.requests]


def test_faults_are_reproducible_with_a_seed_whatever_the_interleaving():
    kinds = ["500", "503", "envelope"]
    paths = ["/sources"] * 20 + ["/destinations"] * 20
    one = run(Faults(rate=0.3, seed=7, kinds=kinds), paths)
    assert one == run(Faults(rate=0.3, seed=7, kinds=kinds), paths)
    assert one != run(Faults(rate=0.3, seed=8, kinds=kinds), paths)
    assert 0 < sum(status != 200 for _, status in one) < 40
    interleaved = run(Faults(rate=0.3, seed=7, kinds=kinds), ["/sources", "/destinations"] * 20)
    for path in ("/sources", "/destinations"):
        assert [s for p, s in interleaved if p == path] == [s for p, s in one if p == path]


def test_stop_closes_keep_alive_connections_and_pending_slow_answers():
    sim = serve(faults=Faults(rate=1.0, kinds=["slow"], slow_seconds=30)).start()
    port = int(sim.url.rsplit(":", 1)[1])
    with requests.Session() as keep_alive:
        sim.faults = None
        keep_alive.get(sim.url + "/", headers={"Authorization": f"Bearer {sim.token}"}, timeout=10)
        sim.faults = Faults(rate=1.0, kinds=["slow"], slow_seconds=30)
        with pytest.raises(requests.Timeout):
            get(sim, "/sources", timeout=0.2)
        started = time.monotonic()
        sim.stop()
        assert time.monotonic() - started < 2
    assert not [t for t in threading.enumerate() if "process_request_thread" in t.name]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


# ---- quirks ----------------------------------------------------------------------------------


def test_a_page_size_above_the_quirk_limit_is_a_422_naming_the_page_size():
    with serve(quirks=Quirks().limit_page_size("/sources", 200)) as sim:
        refused = get(sim, "/sources", **{"pagination[count]": 1000})
        assert refused.status_code == 422
        error = refused.json()["errors"][0]
        assert (error["message"], error["field"]) == ("pagination.count must be between 1 and 200", "pagination.count")
        assert get(sim, "/sources", **{"pagination[count]": 200}).status_code == 200
        assert get(sim, "/destinations", **{"pagination[count]": 1000}).status_code == 200


def test_a_looping_cursor_repeats_forever():
    with serve(quirks=Quirks().loop_cursor("/sources")) as sim:
        cursor = get(sim, "/sources", **{"pagination[count]": 2}).json()["data"]["pagination"]["next"]
        for _ in range(3):
            page = get(sim, "/sources", **{"pagination[count]": 2, "pagination[cursor]": cursor}).json()["data"]
            assert page["pagination"]["next"] == cursor


def test_runaway_pagination_always_has_a_new_next():
    with serve(quirks=Quirks().runaway_pages("/sources")) as sim:
        cursors, cursor = [], None
        for _ in range(20):
            params = {"pagination[count]": 4, **({"pagination[cursor]": cursor} if cursor else {})}
            page = get(sim, "/sources", **params).json()["data"]
            assert len(page["sources"]) == 4
            cursor = page["pagination"]["next"]
            cursors.append(cursor)
        assert len(set(cursors)) == 20  # 80 "sources" from a workspace of 6


def test_fail_next_fails_exactly_n_requests_matching_a_pattern():
    quirks = Quirks().fail_next(2, 503)
    with serve(quirks=quirks) as sim:
        assert [get(sim, "/sources").status_code for _ in range(3)] == [503, 503, 200]
        warehouse = sim.workspace.ids("warehouses")[0]
        quirks.fail_next(1, 500, pattern="/warehouses/{warehouseId}/connected-sources")
        assert get(sim, "/sources").status_code == 200
        assert get(sim, f"/warehouses/{warehouse}/connected-sources").status_code == 500
        assert get(sim, f"/warehouses/{warehouse}/connected-sources").status_code == 200
        quirks.fail_next(1, 429)
        assert get(sim, "/").json()["errors"][0]["data"]["msBeforeNext"] == 0
