"""Rows sent to Segment through the Tracking API destination arrive exactly once, within the limits,
and never show the write key (`segment_source/tracking.py`, `pipelines/segment_tracking.py`)."""

import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import dlt
import duckdb
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from segment_simulator.tracking import MAX_BATCH_BYTES, TrackingFaults, TrackingSimulator
from segment_source.tracking import (
    CALL_TYPES,
    BatchSender,
    SegmentTrackingConfiguration,
    segment_call,
    segment_tracking,
    tracking_summary,
)

WRITE_KEY = "wk_5ecret7e11tale0f1ce"
SCRIPT = Path(__file__).resolve().parents[1] / "pipelines" / "segment_tracking.py"
PER_TYPE = 600
# what a valid row of each call type needs besides a user id
NEEDS = {"track": {"event": "Order Completed"}, "group": {"group_id": "acct_1"}, "alias": {"previous_id": "anon_1"}}
INVALID: Dict[str, Tuple[Dict[str, Any], str]] = {  # (the row, the reason it is reported with)
    "identify": ({"email": "no-id@example.com"}, "neither userId nor anonymousId"),
    "track": ({"user_id": "u_x", "revenue": 1}, "track without event"),
    "group": ({"user_id": "u_x"}, "group without groupId"),
    "alias": ({"user_id": "u_x"}, "alias without previousId"),
}


def rows_of(call_type: str, count: int = PER_TYPE, start: int = 0) -> List[Dict[str, Any]]:
    """Valid rows; every third uses anonymous_id instead of user_id, every row a nested object."""
    nested = "traits" if call_type in ("identify", "group") else "properties"
    rows = []
    for i in range(start, start + count):
        who = {"anonymous_id": f"anon_{call_type}_{i}"} if i % 3 == 0 else {"user_id": f"user_{call_type}_{i}"}
        rows.append({**who, **NEEDS.get(call_type, {}), "seq": i, nested: {"plan": "pro", "n": {"i": i}}})
    return rows


def valid_and_invalid() -> Tuple[Dict[str, List[Dict[str, Any]]], Counter]:
    """Per call type: its valid rows plus a few invalid ones; and the reasons expected for those."""
    tables: Dict[str, List[Dict[str, Any]]] = {}
    reasons: Counter = Counter()
    for call_type in CALL_TYPES:
        invalid = INVALID.get(call_type)
        tables[call_type] = rows_of(call_type) + ([dict(invalid[0], seq=-k) for k in range(1, 4)] if invalid else [])
        if invalid:
            reasons[invalid[1]] += 3
    return tables, reasons


def pipeline_to(sim: TrackingSimulator, tmp_path: Path, **settings: Any) -> dlt.Pipeline:
    return dlt.pipeline(
        pipeline_name=f"tracking_{uuid.uuid4().hex[:8]}",
        destination=segment_tracking(write_key=WRITE_KEY, base_url=sim.url, **settings),
        pipelines_dir=str(tmp_path / "pipelines"),
    )


def resources(tables: Dict[str, List[Dict[str, Any]]]) -> List[Any]:
    return [dlt.resource(rows, name=name) for name, rows in tables.items()]


def message_ids(events: List[Dict[str, Any]]) -> List[str]:
    return [e["messageId"] for e in events]


def test_every_valid_row_of_every_call_type_arrives_exactly_once_and_invalid_rows_are_reported(tmp_path):
    tables, reasons = valid_and_invalid()
    with TrackingSimulator(write_keys=[WRITE_KEY]) as sim:
        pipeline = pipeline_to(sim, tmp_path)
        info = pipeline.run(resources(tables))
        summary = tracking_summary(pipeline, info)
    assert not info.has_failed_jobs
    assert sim.accepted_by_type() == {call_type: PER_TYPE for call_type in CALL_TYPES}
    assert len(set(message_ids(sim.accepted))) == len(sim.accepted) == PER_TYPE * 6 and sim.duplicates == 0
    sent = {(e["type"], e.get("userId") or e["anonymousId"]) for e in sim.accepted}
    assert sent == {(t, r.get("user_id") or r["anonymous_id"]) for t in CALL_TYPES for r in rows_of(t)}
    assert all(r.status == 200 for r in sim.requests)
    assert summary.sent == {call_type: PER_TYPE for call_type in CALL_TYPES}
    assert summary.rejected == dict(reasons) and summary.batches == len(sim.requests) and summary.retries == 0
    # rejected rows are named by their key (here: the derived messageId) and none of them was sent
    rejected_ids = {key["messageId"] for keys in summary.rejected_keys.values() for key in keys}
    assert len(rejected_ids) == sum(reasons.values()) and not rejected_ids & set(message_ids(sim.accepted))


def test_columns_map_to_the_spec_names_and_nested_objects_survive_flattening(tmp_path):
    rows = [
        {  # a warehouse row as dlt loads it: nested traits flattened into traits__* columns
            "user_id": 42,
            "message_id": "m-42",
            "traits__plan": "pro",
            "traits__address__city": "Berlin",
            "email": "a@example.com",
            "timestamp": "2026-01-01T00:00:00Z",
        },
        {"type": "track", "anonymous_id": "a-1", "event": "Signed Up", "properties": {"a": {"b": [1, 2]}}, "x": None},
    ]
    with TrackingSimulator(write_keys=[WRITE_KEY]) as sim:
        pipeline_to(sim, tmp_path).run(dlt.resource(rows, name="identify"))
    by_type = {e["type"]: e for e in sim.accepted}
    assert by_type["identify"] == {
        "type": "identify",
        "userId": "42",
        "messageId": "m-42",
        "timestamp": "2026-01-01T00:00:00+00:00",  # dlt reads ISO timestamps as timestamps
        "traits": {"plan": "pro", "address": {"city": "Berlin"}, "email": "a@example.com"},
    }
    assert by_type["track"]["properties"] == {"a": {"b": [1, 2]}} and "x" not in by_type["track"]


def test_a_resource_setting_names_the_call_type_and_the_row_key_of_rows_not_sent(tmp_path):
    rows = [{"account": "acct_1", "user_id": "u1", "group_id": "g1"}, {"account": "acct_2", "user_id": "u2"}]
    with TrackingSimulator(write_keys=[WRITE_KEY]) as sim:
        pipeline = pipeline_to(sim, tmp_path)
        info = pipeline.run(segment_call(dlt.resource(rows, name="accounts"), "group", key=["account"]))
    assert [(e["type"], e["groupId"], e["traits"]) for e in sim.accepted] == [("group", "g1", {"account": "acct_1"})]
    assert tracking_summary(pipeline, info).rejected_keys == {"group without groupId": [{"account": "acct_2"}]}


def test_batches_are_packed_up_to_500_kb_and_an_event_over_32_kb_is_not_sent(tmp_path):
    filler = "x" * 9_000  # ~9 KB events: a fixed count per batch would either waste or overflow
    rows = [{"user_id": f"u{i}", "event": "Big", "blob": filler} for i in range(400)]
    rows.append({"user_id": "huge", "event": "Big", "blob": "y" * 40_000})
    with TrackingSimulator(write_keys=[WRITE_KEY]) as sim:
        pipeline = pipeline_to(sim, tmp_path, batch_size=10_000)
        info = pipeline.run(dlt.resource(rows, name="track"))
    sizes = [r.body_bytes for r in sim.requests]
    assert max(sizes) <= MAX_BATCH_BYTES and all(r.status == 200 for r in sim.requests)
    assert len(sizes) >= 7 and all(size > MAX_BATCH_BYTES - 10_000 for size in sorted(sizes)[1:])  # full, but one
    assert len(sim.accepted) == 400 and "huge" not in {e["userId"] for e in sim.accepted}
    assert list(tracking_summary(pipeline, info).rejected) == ["event over 32 KB (39 KB)"]


def test_429_5xx_and_dropped_connections_are_retried_until_every_row_arrives(tmp_path):
    faults = TrackingFaults(fail_next=[429, 503, 0, 500], rate=0.2, seed=7)
    with TrackingSimulator(write_keys=[WRITE_KEY], faults=faults) as sim:
        pipeline = pipeline_to(sim, tmp_path, backoff_seconds=0.01, max_attempts=10)
        info = pipeline.run(dlt.resource(rows_of("track", 3000), name="track"))
        summary = tracking_summary(pipeline, info)
    failed = [r for r in sim.requests if r.status != 200]
    assert len(failed) >= 4 and {r.status for r in failed} <= {0, 429, 500, 502, 503}
    assert summary.retries == len(failed) and summary.batches == len(sim.requests) - len(failed)
    assert len(sim.accepted) == 3000 and sim.duplicates == 0


def test_retry_after_is_honoured_and_without_it_the_wait_backs_off():
    sender = BatchSender(SegmentTrackingConfiguration(write_key=WRITE_KEY, backoff_seconds=1.0, max_wait_seconds=60))
    assert sender.wait_seconds(0, "7") == 7.0 and sender.wait_seconds(3, "0") == 0.0
    assert sender.wait_seconds(0, "3600") == 60.0  # capped
    assert 0.5 <= sender.wait_seconds(0, None) <= 1.0 and 4.0 <= sender.wait_seconds(3, None) <= 8.0


@pytest.mark.parametrize("status", [400, 401])
def test_a_refused_batch_is_not_retried_and_the_error_does_not_show_the_write_key(tmp_path, status):
    with TrackingSimulator(write_keys=[WRITE_KEY], faults=TrackingFaults(fail_next=[status])) as sim:
        pipeline = pipeline_to(sim, tmp_path, backoff_seconds=0.01)
        with pytest.raises(PipelineStepFailed) as failure:
            pipeline.run(dlt.resource(rows_of("identify", 10), name="identify"))
    assert [r.status for r in sim.requests] == [status]
    assert f"with {status}" in str(failure.value) or "refused the write key" in str(failure.value)
    assert WRITE_KEY not in str(failure.value) and WRITE_KEY not in repr(failure.value.__dict__)


def test_a_completed_load_is_not_sent_again(tmp_path):
    with TrackingSimulator(write_keys=[WRITE_KEY]) as sim:
        pipeline = pipeline_to(sim, tmp_path)
        pipeline.run(dlt.resource(rows_of("identify", 50), name="identify"))
        requests_after_first = len(sim.requests)
        second = pipeline.run(dlt.resource(rows_of("identify", 50, start=50), name="identify"))
    assert len(sim.accepted) == 100 and sim.duplicates == 0
    assert tracking_summary(pipeline, second).sent == {"identify": 50} and len(sim.requests) > requests_after_first


# ---- the script, run as a user runs it ------------------------------------------------------


def script(
    tmp_path: Path, *args: str, env: Optional[Dict[str, str]] = None, wait: bool = True
) -> Any:  # CompletedProcess, or the running Popen when wait=False
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    full_env.update(DLT_DATA_DIR=str(tmp_path / "dlt"), RUNTIME__DLTHUB_TELEMETRY="false", **(env or {}))
    command = [sys.executable, str(SCRIPT), *args]
    if not wait:
        return subprocess.Popen(command, cwd=tmp_path, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return subprocess.run(command, cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=600)


def sim_env(sim: TrackingSimulator, **more: str) -> Dict[str, str]:
    return {
        "DESTINATION__SEGMENT_TRACKING__WRITE_KEY": WRITE_KEY,
        "DESTINATION__SEGMENT_TRACKING__BASE_URL": sim.url,
        **more,
    }


def mixed_jsonl(path: Path, per_type: int) -> int:
    """Rows of every call type in one file (a `type` column), plus invalid ones; returns the valid count."""
    with path.open("w") as out:
        for call_type in CALL_TYPES:
            invalid = [INVALID[call_type][0]] * 4 if call_type in INVALID else []
            for row in rows_of(call_type, per_type) + invalid:
                out.write(json.dumps({"type": call_type, **row}) + "\n")
    return per_type * len(CALL_TYPES)


def files_containing(root: Path, secret: str) -> List[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_a_send_killed_with_sigkill_then_rerun_delivers_every_row_exactly_once(tmp_path):
    valid = mixed_jsonl(tmp_path / "events.jsonl", 1000)
    with TrackingSimulator(write_keys=[WRITE_KEY], faults=TrackingFaults(latency_ms=25)) as sim:
        env = sim_env(sim, DESTINATION__SEGMENT_TRACKING__BATCH_SIZE="300")
        process = script(tmp_path, "--jsonl", "events.jsonl", env=env, wait=False)
        while len(sim.requests) < 6 and process.poll() is None:
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        assert process.returncode == -signal.SIGKILL, process.stderr.read()
        before_kill = len(sim.accepted)
        assert 0 < before_kill < valid  # the kill landed while sending

        rerun = script(tmp_path, "--jsonl", "events.jsonl", env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert "interrupted" in rerun.stdout
    accepted = message_ids(sim.accepted)
    assert len(accepted) == len(set(accepted)) == valid
    assert Counter(e["type"] for e in sim.accepted) == {t: 1000 for t in CALL_TYPES}
    # only the rows of the calls in flight at the kill were sent twice, and Segment's dedupe dropped them
    print(f"accepted before the kill: {before_kill}, resent after it and dropped as duplicates: {sim.duplicates}")
    assert sim.duplicates <= 300


def test_the_write_key_appears_nowhere_in_output_logs_state_trace_or_files(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # requests, urllib3, dlt and this package, at their most verbose
    mixed_jsonl(tmp_path / "events.jsonl", 50)
    with TrackingSimulator(write_keys=[WRITE_KEY], faults=TrackingFaults(fail_next=[429])) as sim:
        ok = script(tmp_path, "--jsonl", "events.jsonl", env=sim_env(sim))
        sim.faults = TrackingFaults(fail_next=[400])
        refused = script(tmp_path, "--jsonl", "events.jsonl", "--call", "track", env=sim_env(sim))
        pipeline = pipeline_to(sim, tmp_path)  # the key given in code, not in the environment
        pipeline.run(dlt.resource(rows_of("page", 20), name="page"))
    assert ok.returncode == 0, ok.stderr
    assert refused.returncode == 1 and "refused a batch" in refused.stderr and "Traceback" not in refused.stderr
    for result in (ok, refused):
        assert WRITE_KEY not in result.stdout + result.stderr
    assert files_containing(tmp_path, WRITE_KEY) == []
    assert WRITE_KEY not in json.dumps(pipeline.state, default=str) + str(pipeline.last_trace)
    assert "POST /v1/batch" in caplog.text and WRITE_KEY not in caplog.text


def test_the_demo_sends_identify_traits_computed_in_duckdb(tmp_path):
    result = script(tmp_path, "--demo")
    assert result.returncode == 0, result.stderr
    assert "200 events sent (200 identify)" in result.stdout
    assert 'Not sent: 1 row(s): 1 neither userId nor anonymousId (e.g. {"user_id":null})' in result.stdout
    sample = json.loads(result.stdout.split("One of them: ", 1)[1].splitlines()[0])
    assert sample["type"] == "identify" and set(sample["traits"]) == {
        "email",
        "plan",
        "orders",
        "lifetime_value",
        "last_order_at",
    }


def test_a_warehouse_table_named_after_a_call_type_is_sent(tmp_path):
    database = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(database)) as db:
        db.sql("CREATE SCHEMA segment_data")
        db.sql("CREATE TABLE segment_data.identify AS SELECT 'u' || i AS user_id, i AS score FROM range(2500) t(i)")
    with TrackingSimulator(write_keys=[WRITE_KEY]) as sim:
        result = script(
            tmp_path, "--table", "identify", env=sim_env(sim, DESTINATION__DUCKDB__CREDENTIALS=str(database))
        )
    assert result.returncode == 0, result.stderr
    assert len(sim.accepted) == 2500 and {e["traits"]["score"] for e in sim.accepted} == set(range(2500))


def test_an_unknown_table_is_one_paragraph_and_nothing_is_sent(tmp_path):
    database = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(database)).close()
    with TrackingSimulator(write_keys=[WRITE_KEY]) as sim:
        env = sim_env(sim, DESTINATION__DUCKDB__CREDENTIALS=str(database))
        result = script(tmp_path, "--table", "user_traits", "--call", "identify", env=env)
        assert sim.requests == []
    assert result.returncode == 2 and "could not run the query" in result.stderr and "user_traits" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_write_key_says_where_to_put_it_before_reading_anything(tmp_path):
    result = script(tmp_path, "--jsonl", "missing.jsonl")
    assert result.returncode == 2
    assert (
        "[destination.segment_tracking]" in result.stderr
        and "DESTINATION__SEGMENT_TRACKING__WRITE_KEY" in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_plain_http_to_another_host_is_refused(tmp_path):
    env = {
        "DESTINATION__SEGMENT_TRACKING__WRITE_KEY": WRITE_KEY,
        "DESTINATION__SEGMENT_TRACKING__BASE_URL": "http://example.com",
    }
    result = script(tmp_path, "--jsonl", "missing.jsonl", env=env)
    assert result.returncode == 2 and "clear text" in result.stderr and WRITE_KEY not in result.stderr


def test_the_readme_example_sends_traits_computed_in_duckdb_as_identify_calls(tmp_path):
    from pipelines.segment_tracking import demo_warehouse

    readme = (SCRIPT.parents[1] / "README.md").read_text()
    section = readme.split("## Sending rows to Segment (the Tracking API destination)", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "example.py").write_text(example)
    demo_warehouse(tmp_path / "warehouse.duckdb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESTINATION__")}
    with TrackingSimulator(write_keys=[WRITE_KEY]) as sim:
        env.update(sim_env(sim), DLT_DATA_DIR=str(tmp_path / "dlt"), RUNTIME__DLTHUB_TELEMETRY="false")
        result = subprocess.run(
            [sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
    assert result.returncode == 0, result.stderr
    printed = " ".join(
        line.lstrip("# ") for line in example.splitlines() if line.startswith("# Segment") or line.startswith("# 1 row")
    )
    assert result.stdout.strip() == printed
    assert sim.accepted_by_type() == {"identify": 200}
    traits = {e["userId"]: e["traits"] for e in sim.accepted}["user_7"]
    assert set(traits) == {"email", "plan", "orders", "lifetime_value", "last_order_at"}
    assert traits["lifetime_value"] == 280.4 and traits["last_order_at"] == "2026-02-07T18:00:00+00:00"
    shown = '"userId": "user_7", "traits": ' + json.dumps(traits)[:-1].split(', "lifetime_value"')[0]
    assert shown in " ".join(section.split())  # the README shows the event as it arrives


def test_an_unreachable_api_ends_with_one_paragraph_and_the_next_run_sends_the_rows(tmp_path):
    mixed_jsonl(tmp_path / "events.jsonl", 10)
    unreachable = {
        "DESTINATION__SEGMENT_TRACKING__WRITE_KEY": WRITE_KEY,
        "DESTINATION__SEGMENT_TRACKING__BASE_URL": "http://127.0.0.1:9",  # nothing listens on the discard port
        "DESTINATION__SEGMENT_TRACKING__MAX_ATTEMPTS": "2",
        "DESTINATION__SEGMENT_TRACKING__BACKOFF_SECONDS": "0.01",
    }
    failed = script(tmp_path, "--jsonl", "events.jsonl", env=unreachable)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr and WRITE_KEY not in failed.stderr
    assert "gave no 200 after 2 attempts" in failed.stderr and "Nothing is lost" in failed.stderr
    with TrackingSimulator(write_keys=[WRITE_KEY]) as sim:
        resumed = script(tmp_path, "--jsonl", "events.jsonl", env=sim_env(sim))
    assert resumed.returncode == 0, resumed.stderr
    assert "interrupted" in resumed.stdout and len(sim.accepted) == 60 and sim.duplicates == 0
