"""Rate limits, faults and odd answers: each ends in exactly the workspace, or in one clear error."""

import logging

import dlt
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from segment_simulator import Faults, Quirks, RateLimits, SegmentSimulator, Size, generate_workspace
from segment_source import RunReport, ratelimit, segment_source
from segment_source.errors import explain
from tests.support import CORE_TABLES, expected, loaded, make_pipeline, rows

pytestmark = pytest.mark.usefixtures("quick_retries")


@pytest.fixture
def duck(tmp_path):
    return make_pipeline(dlt.destinations.duckdb(str(tmp_path / "r.duckdb")), tmp_path)


def run_core(pipeline, sim, report=None):
    source = segment_source(api_key=sim.token, base_url=sim.url, report=report).with_resources(*CORE_TABLES)
    info = pipeline.run(source)
    assert not info.has_failed_jobs
    return info


def duplicates(pipeline):
    """Rows sharing a key, in every current table."""
    found = {}
    for table, key in (
        ("sources", "id"),
        ("destinations", "id"),
        ("segments", "id"),
        ("warehouse_sources", "warehouse_id, source_id"),
    ):
        found[table] = rows(
            pipeline, f"SELECT count(*) FROM (SELECT {key} FROM {{{table}}} GROUP BY {key} HAVING count(*) > 1) d"
        )[0][0]
    return found


def test_a_429_waits_exactly_as_long_as_segment_says(duck):
    with SegmentSimulator(generate_workspace("small"), rate_limits=RateLimits(per_token=3, window=1.0)) as sim:
        report = RunReport()
        ratelimit_low_water, ratelimit.LOW_WATER = ratelimit.LOW_WATER, 0  # no pacing: meet the 429s
        try:
            run_core(duck, sim, report)
        finally:
            ratelimit.LOW_WATER = ratelimit_low_water
        refused = [r for r in sim.requests if r.status == 429]
        assert refused, "the tight limit refused some requests"
        assert report.stats["rate_limited"] == len(refused)
        # after each wait of msBeforeNext the retry got through: no request was refused twice in a row
        statuses = [r.status for r in sim.requests]
        assert all(not (a == 429 and b == 429) for a, b in zip(statuses, statuses[1:], strict=False))
        assert loaded(duck, CORE_TABLES) == expected(sim.workspace, CORE_TABLES)


def test_the_remaining_budget_is_paced_so_no_429_happens(duck):
    with SegmentSimulator(generate_workspace("small"), rate_limits=RateLimits(per_token=6, window=1.0)) as sim:
        run_core(duck, sim)
        assert [r for r in sim.requests if r.status == 429] == []
        assert len(sim.requests) > 6, "the run needed more than one window's budget"
        assert loaded(duck, CORE_TABLES) == expected(sim.workspace, CORE_TABLES)


def test_an_endpoint_limit_is_respected_without_waiting_for_a_429(duck, monkeypatch):
    monkeypatch.setattr(ratelimit, "MINUTE", 1.0)  # Segment's "60 audience requests a minute", a second long
    ws = generate_workspace(
        Size(sources=2, destinations=2, warehouses=0, spaces=70, audiences=70, sources_per_warehouse=0)
    )
    with SegmentSimulator(ws, rate_limits=RateLimits(per_token=10_000, window=1.0)) as sim:
        run_core(duck, sim)
        audience_requests = [r for r in sim.requests if r.path.endswith("/audiences")]
        assert len(audience_requests) == 70 > 60
        assert [r for r in sim.requests if r.status == 429] == []
        assert loaded(duck, CORE_TABLES) == expected(ws, CORE_TABLES)


def test_fifteen_percent_faults_and_a_tight_rate_limit_still_load_exactly_the_workspace(duck):
    faults = Faults(rate=0.15, seed=7, kinds=("500", "502", "503", "504", "drop", "slow"), slow_seconds=2.0)
    with SegmentSimulator(
        generate_workspace("medium"), rate_limits=RateLimits(per_token=8, window=1.0), faults=faults
    ) as sim:
        report = RunReport()
        run_core(duck, sim, report)
        assert len(faults.injected) >= 3
        assert report.stats["retries"] >= len(faults.injected)
        assert loaded(duck, CORE_TABLES) == expected(sim.workspace, CORE_TABLES)
        assert duplicates(duck) == {"sources": 0, "destinations": 0, "segments": 0, "warehouse_sources": 0}


def test_a_401_fails_fast_without_retrying(duck):
    with SegmentSimulator(generate_workspace("small")) as sim:
        with pytest.raises(PipelineStepFailed) as failure:
            duck.run(segment_source(api_key="sgp_REVOKED_d41d8cd98f", base_url=sim.url).with_resources(*CORE_TABLES))
        assert len(sim.requests) == 1
    message, code = explain(failure.value)
    assert "401" in message and code == 1 and "sgp_REVOKED_d41d8cd98f" not in message


def test_a_403_skips_that_feature_with_one_warning_and_loads_the_rest(duck, caplog):
    with SegmentSimulator(generate_workspace("small")) as sim:
        run_core(duck, sim)
        before = rows(duck, "SELECT count(*) FROM {spaces}")
        sim.workspace.disable("engage", 403)
        report = RunReport()
        with caplog.at_level(logging.WARNING, logger="segment_source"):
            run_core(duck, sim, report)
        assert [line.split(": skipped ")[1].split(":")[0] for line in report.skipped] == ["spaces", "segments"]
        assert all("permission" in line and "Engage" in line for line in report.skipped)
        assert len([r for r in caplog.records if "skipped" in r.getMessage()]) == 2
        assert rows(duck, "SELECT count(*) FROM {spaces}") == before, "what was loaded before stays"
        assert set(rows(duck, "SELECT id FROM {sources}")) == {(i,) for i in sim.workspace.ids("sources")}


def test_a_404_on_a_child_of_a_vanished_parent_skips_only_that_child(duck):
    quirks = Quirks().fail_next(1, status=404, pattern="/warehouses/{warehouseId}/connected-sources")
    with SegmentSimulator(generate_workspace("small"), quirks=quirks) as sim:
        report = RunReport()
        run_core(duck, sim, report)
        first, second = sim.workspace.ids("warehouses")
        links = set(rows(duck, "SELECT warehouse_id, source_id FROM {warehouse_sources}"))
        assert {w for w, _ in links} == {second}
        assert report.skipped == [] and report.failed == {}


def test_a_422_naming_the_page_size_falls_back_to_200_pages(duck):
    with SegmentSimulator(generate_workspace("medium"), quirks=Quirks().limit_page_size("/sources", 200)) as sim:
        pipeline = duck
        pipeline.run(segment_source(api_key=sim.token, base_url=sim.url).with_resources("sources"))
        pages = sim.requests_to("/sources")
        assert [r.status for r in pages] == [422] + [200] * 7  # 1250 sources at 200 a page
        assert [r.page_size for r in pages[1:]] == [200] * 7
        assert sorted(i for (i,) in rows(pipeline, "SELECT id FROM {sources}")) == sorted(sim.workspace.ids("sources"))


@pytest.mark.parametrize("quirk, words", [("loop_cursor", "twice"), ("runaway_pages", "kept returning a next page")])
def test_a_looping_or_runaway_cursor_stops_with_an_error(duck, quirk, words):
    with SegmentSimulator(generate_workspace("small"), quirks=getattr(Quirks(), quirk)("/sources")) as sim:
        with pytest.raises(PipelineStepFailed) as failure:
            duck.run(segment_source(api_key=sim.token, base_url=sim.url).with_resources("sources"))
        assert len(sim.requests_to("/sources")) < 10
    message, code = explain(failure.value)
    assert words in message and "GET /sources" in message and code == 1


def test_retries_that_run_out_end_in_one_error_naming_the_endpoint(duck):
    with SegmentSimulator(
        generate_workspace("small"), quirks=Quirks().fail_next(50, status=503, pattern="/destinations")
    ) as sim:
        with pytest.raises(PipelineStepFailed) as failure:
            duck.run(segment_source(api_key=sim.token, base_url=sim.url).with_resources("sources", "destinations"))
        assert len(sim.requests_to("/destinations")) == 6  # RUNTIME__REQUEST_MAX_ATTEMPTS
    message, _ = explain(failure.value)
    assert "503" in message and "GET /destinations" in message and "Gave up after 6 attempts" in message
    assert "Traceback" not in message


@pytest.mark.parametrize("kind, words", [("malformed", "not JSON"), ("envelope", "data envelope")])
def test_a_malformed_answer_is_a_clear_error_with_a_snippet(duck, kind, words):
    with SegmentSimulator(
        generate_workspace("small"), token="sgp_SNIPPET_TOKEN_123456", faults=Faults(rate=1.0, kinds=(kind,))
    ) as sim:
        with pytest.raises(PipelineStepFailed) as failure:
            duck.run(segment_source(api_key=sim.token, base_url=sim.url).with_resources("workspace"))
    message, code = explain(failure.value)
    assert words in message and "GET /" in message and code == 1
    assert "'{" in message, "a snippet of what came back"
    assert "sgp_SNIPPET_TOKEN_123456" not in message


def test_nothing_loaded_before_is_lost_when_a_run_fails(duck):
    with SegmentSimulator(generate_workspace("small")) as sim:
        run_core(duck, sim)
        before = loaded(duck, CORE_TABLES)
        sim.workspace.delete("sources", sim.workspace.ids("sources")[0])
        sim.quirks = Quirks().fail_next(50, status=500, pattern="/spaces")
        with pytest.raises(PipelineStepFailed):
            run_core(duck, sim)
        assert loaded(duck, CORE_TABLES) == before


def test_a_soak_run_over_a_medium_workspace_with_faults_limits_and_latency_loads_it_exactly(duck):
    faults = Faults(rate=0.05, seed=11, kinds=("500", "502", "503", "504", "drop"), latency_ms=1)
    ws = generate_workspace("medium")
    with SegmentSimulator(ws, rate_limits=RateLimits(per_token=400, window=1.0), faults=faults) as sim:
        report = RunReport()
        info = duck.run(segment_source(api_key=sim.token, base_url=sim.url, report=report))
        assert not info.has_failed_jobs and report.failed == {} and report.skipped == []
        assert len(faults.injected) > 100
        assert report.stats["retries"] >= len(faults.injected)
    assert loaded(duck) == expected(ws)
    assert duplicates(duck) == {"sources": 0, "destinations": 0, "segments": 0, "warehouse_sources": 0}
