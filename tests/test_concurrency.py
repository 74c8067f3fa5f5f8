"""Child listings run concurrently inside Segment's budget, and load exactly what a sequential run loads."""

import threading
import time
from typing import Any, Callable

import dlt
import pytest

from segment_simulator import Faults, RateLimits, SegmentSimulator, Size, generate_workspace
from segment_source import RunReport, segment_source
from segment_source.errors import ConfigurationError
from tests.support import SURFACE, expected, loaded, make_pipeline

FAN_OUT = Size(
    sources=40, destinations=150, warehouses=6, spaces=3, audiences=30, sources_per_warehouse=8,
    tracking_plans=12, functions_per_type=2, filters=60, subscriptions_per_destination=2,
    users=10, groups=3, roles=4, computed_traits_per_space=3, reverse_etl_models=3, transformations=4, audit_events=40,
)  # fmt: skip


pytestmark = pytest.mark.usefixtures("quick_retries")


class InFlight:
    """Counts how many requests for destination filters the simulator is answering at once."""

    def __init__(self, answer: Callable[..., Any]) -> None:
        self.answer, self.now, self.most = answer, 0, 0
        self._lock = threading.Lock()

    def __call__(self, *args: Any) -> Any:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            time.sleep(0.01)  # long enough for requests sent together to overlap
            return self.answer(*args)
        finally:
            with self._lock:
                self.now -= 1


def run(tmp_path, name, concurrency, faults=None, rate_limits=None):
    ws = generate_workspace(FAN_OUT, seed=7)
    counter = InFlight(ws.filters_of)
    ws.filters_of = counter  # instrumented, same answers
    pipeline = make_pipeline(dlt.destinations.duckdb(str(tmp_path / f"{name}.duckdb")), tmp_path / name)
    report = RunReport()
    with SegmentSimulator(ws, faults=faults, rate_limits=rate_limits) as sim:
        source = segment_source(api_key=sim.token, base_url=sim.url, max_concurrency=concurrency, report=report)
        pipeline.run(source)
        requests = len(sim.requests)
    assert not report.failed
    return pipeline, ws, counter.most, requests


def test_a_concurrent_run_loads_exactly_what_a_sequential_run_loads(tmp_path):
    sequential, ws, most_at_once, requests_one = run(tmp_path, "one", concurrency=1)
    concurrent, _, most_at_once_eight, requests_eight = run(tmp_path, "eight", concurrency=8)
    assert loaded(concurrent) == loaded(sequential) == expected(ws)
    assert requests_eight == requests_one, "concurrency changes when requests go, not how many"
    assert most_at_once == 1 and 1 < most_at_once_eight <= 8


def test_under_faults_and_429s_a_concurrent_run_still_loads_exactly_the_workspace(tmp_path):
    faults = Faults(rate=0.1, seed=3, kinds=("500", "503", "drop"))
    limits = RateLimits(per_token=60, window=1.0)
    pipeline, ws, most_at_once, _ = run(tmp_path, "faulty", 8, faults=faults, rate_limits=limits)
    assert loaded(pipeline) == expected(ws)
    assert most_at_once > 1
    assert faults.counts and sum(limits.refused.values()) + sum(faults.counts.values()) > 0
    keys = {table: SURFACE[table][0] for table in SURFACE}
    with pipeline.sql_client() as client:
        for table, key in keys.items():
            sql = f"SELECT count(*) FROM (SELECT {key} FROM {client.make_qualified_table_name(table)}"
            assert client.execute_sql(sql + f" GROUP BY {key} HAVING count(*) > 1) d")[0][0] == 0, table


@pytest.mark.parametrize("value", [0, -1, 33, "many"])
def test_a_max_concurrency_out_of_range_is_refused_before_any_request(value):
    with pytest.raises(ConfigurationError, match="max_concurrency"):
        segment_source(api_key="t", base_url="http://127.0.0.1:9", max_concurrency=value)
