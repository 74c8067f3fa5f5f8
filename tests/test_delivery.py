"""Delivery health: each destination's delivery metrics per day, read back exactly as the simulator serves them."""

import json
from datetime import datetime, timedelta, timezone

import dlt
import pytest

from segment_simulator import SegmentSimulator, generate_workspace
from segment_source import RunReport, segment_source
from tests.support import load, make_pipeline, rows

PATH = "/delivery-metrics"


def moment(value):
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def metric_rows(pipeline):
    found = rows(
        pipeline,
        "SELECT workspace_id, destination_id, source_id, time, metric_name, total, destination_metadata_id, breakdown"
        " FROM {destination_delivery_metrics}",
    )
    keyed = {
        (w, d, s, moment(t), m): (total, meta, json.loads(b) if isinstance(b, str) else b)
        for w, d, s, t, m, total, meta, b in found
    }
    assert len(keyed) == len(found), "a key loaded twice: a re-read day counted twice"
    return keyed


def served(ws, days):
    """What the simulator serves for each destination and whole day, keyed like `metric_rows`."""
    out = {}
    for d in ws.listing("destinations"):
        for day in days:
            summary = ws.delivery_metrics(d["id"], d["sourceId"], day, day + timedelta(days=1))
            for m in summary["metrics"]:
                out[(ws.id, d["id"], d["sourceId"], day, m["metricName"])] = (
                    m["total"],
                    summary["destinationMetadataId"],
                    m.get("breakdown"),
                )
    return out


def requests_by_destination(sim):
    asked = {}
    for r in sim.requests:
        if r.path.endswith(PATH):
            asked.setdefault(r.path.split("/")[2], []).append(r.params)
    return asked


def test_delivery_metrics_load_per_destination_and_day_and_a_rerun_reads_only_the_open_day(pipeline, simulator):
    ws = simulator.workspace
    now = datetime.now(timezone.utc)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    load(pipeline, simulator)
    assert (
        not requests_by_destination(simulator) and "destination_delivery_metrics" not in pipeline.default_schema.tables
    )

    load(pipeline, simulator, "destination_delivery_metrics")
    days = [today - timedelta(days=n) for n in range(7, 0, -1)]  # a week back on the first run, and today
    asked = requests_by_destination(simulator)
    assert sorted(asked) == sorted(ws.ids("destinations"))
    for destination, params in asked.items():
        source = ws.get("destinations", destination)["sourceId"]
        assert [moment(p["startTime"]) for p in params] == [*days, today]
        assert all(p["sourceId"] == source and p["granularity"] == "DAY" for p in params)
        assert [moment(p["endTime"]) for p in params[:-1]] == [d + timedelta(days=1) for d in days]
    first = metric_rows(pipeline)
    complete = {k: v for k, v in first.items() if k[3] < today}
    assert complete == served(ws, days)
    assert {k[:3] + k[4:] for k in first if k[3] == today} == {k[:3] + k[4:] for k in complete if k[3] == days[-1]}
    assert {k[4] for k in first} == {"successes", "expired", "discarded", "retried", "time_to_success"}
    assert any(total for (*_, metric), (total, _, _) in complete.items() if metric == "discarded")

    simulator.clear_log()
    load(pipeline, simulator, "destination_delivery_metrics")
    again = requests_by_destination(simulator)
    assert sorted(again) == sorted(ws.ids("destinations"))
    assert all([moment(p["startTime"]) for p in params] == [today] for params in again.values())
    second = metric_rows(pipeline)
    assert set(second) == set(first)  # today's rows replaced by key: nothing counted twice
    assert {k: v for k, v in second.items() if k[3] < today} == complete
    assert all(second[k][0] >= first[k][0] for k in first if k[3] == today and k[4] != "time_to_success")


@pytest.mark.parametrize("status", [403, 404, 406])
def test_without_delivery_metrics_the_table_is_skipped_with_one_warning(tmp_path, status):
    ws = generate_workspace("small")
    ws.disable("delivery_metrics", status)
    with SegmentSimulator(ws) as sim:
        pipeline = make_pipeline(dlt.destinations.duckdb(str(tmp_path / "d.duckdb")), tmp_path)
        report = RunReport()
        source = segment_source(api_key=sim.token, base_url=sim.url, report=report)
        info = pipeline.run(source.with_resources("destinations", "destination_delivery_metrics"))
        asked = [r for r in sim.requests if r.path.endswith(PATH)]
    assert not info.has_failed_jobs and report.failed == {} and report.failed_tables == []
    assert [line.split(": skipped ")[1].split(":")[0] for line in report.skipped] == ["destination_delivery_metrics"]
    assert f"answered {status}" in report.skipped[0]
    assert len(asked) <= 3 if status != 406 else len(asked) == 2  # a 406 is asked once more, in v1beta
    assert len(rows(pipeline, "SELECT id FROM {destinations}")) == len(ws.ids("destinations"))


class Tomorrow(datetime):
    """The reader's clock a day ahead: its next run is tomorrow's."""

    @classmethod
    def now(cls, tz=None):
        return datetime.now(tz) + timedelta(days=1)


def test_the_next_days_run_reads_the_day_that_was_partial_and_the_new_day(pipeline, simulator, monkeypatch):
    ws = simulator.workspace
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    load(pipeline, simulator, "destination_delivery_metrics")
    partial = {k: v for k, v in metric_rows(pipeline).items() if k[3] == today}

    monkeypatch.setattr("segment_source.reader.datetime", Tomorrow)
    simulator.clear_log()
    load(pipeline, simulator, "destination_delivery_metrics")
    asked = requests_by_destination(simulator)
    assert sorted(asked) == sorted(ws.ids("destinations"))
    assert all(
        [moment(p["startTime"]) for p in params] == [today, today + timedelta(days=1)] for params in asked.values()
    )
    assert all(moment(params[0]["endTime"]) == today + timedelta(days=1) for params in asked.values())
    found = metric_rows(pipeline)
    # today's rows replaced by key (the simulator's today is still going on: its counts only grew)
    assert {k for k in found if k[3] == today} == set(partial)
    assert all(found[k][0] >= partial[k][0] for k in partial if k[4] != "time_to_success")
    tomorrow = {k[:3] + k[4:] for k in found if k[3] == today + timedelta(days=1)}
    assert tomorrow == {k[:3] + k[4:] for k in partial}
