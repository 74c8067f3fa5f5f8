"""Rows through the Tracking API destination into the tracking simulator: events per second and batches.

    .venv/bin/python -m benchmarks.tracking_throughput [events] [fault rate]

Defaults: 60,000 events, an even mix of the six call types, each with a few traits or properties
(~250 bytes), no faults. Prints events per second for the whole run (extract, normalize, send) and
for the send alone (dlt's load step), batches per 10,000 events with their average size, and what
the simulator accepted. With a fault rate, that share of requests gets a 429 or a 5xx.
"""

import os
import sys
import tempfile
import time
from typing import Any, Dict, Iterator

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt  # noqa: E402

from segment_simulator.tracking import CALL_TYPES, TrackingFaults, TrackingSimulator  # noqa: E402
from segment_source.tracking import segment_tracking, tracking_summary  # noqa: E402

WRITE_KEY = "wk_benchmark"
NEEDS = {"track": "event", "group": "group_id", "alias": "previous_id", "page": "name", "screen": "name"}


def rows(count: int) -> Iterator[Dict[str, Any]]:
    for i in range(count):
        call_type = CALL_TYPES[i % len(CALL_TYPES)]
        nested = "traits" if call_type in ("identify", "group") else "properties"
        row = {"type": call_type, "user_id": f"user_{i}", nested: {"plan": "pro", "seats": i % 50, "country": "DE"}}
        if call_type in NEEDS:
            row[NEEDS[call_type]] = f"{NEEDS[call_type]}_{i % 100}"
        yield row


def main(events: int = 60_000, rate: float = 0.0) -> None:
    faults = TrackingFaults(rate=rate, seed=1) if rate else None
    with TrackingSimulator(write_keys=[WRITE_KEY], faults=faults) as sim, tempfile.TemporaryDirectory() as tmp:
        pipeline = dlt.pipeline(
            "tracking_throughput",
            destination=segment_tracking(write_key=WRITE_KEY, base_url=sim.url, backoff_seconds=0.01),
            pipelines_dir=tmp,
        )
        started = time.perf_counter()
        info = pipeline.run(dlt.resource(rows(events), name="events"))
        elapsed = time.perf_counter() - started
        load_step = next(s for s in pipeline.last_trace.steps if s.step == "load")  # type: ignore[union-attr]  # ran
        send_seconds = (load_step.finished_at - load_step.started_at).total_seconds()
        summary = tracking_summary(pipeline, info)
    print(summary)
    print(f"events: {events}, accepted by the simulator: {len(sim.accepted)}, duplicates dropped: {sim.duplicates}")
    print(f"whole run: {elapsed:.2f} s, {events / elapsed:,.0f} events/s")
    print(f"send (load step): {send_seconds:.2f} s, {events / send_seconds:,.0f} events/s")
    print(
        f"batches: {summary.batches} ({summary.batches * 10_000 / events:.1f} per 10,000 events),"
        f" {summary.bytes / summary.batches / 1024:.0f} KB on average, {summary.retries} retries,"
        f" {len(sim.requests)} requests"
    )


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args[0]) if args else 60_000, float(args[1]) if len(args) > 1 else 0.0)
