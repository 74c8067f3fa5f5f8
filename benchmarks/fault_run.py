"""A full run through faults and a tight rate limit: what was injected, retried and loaded.

    .venv/bin/python -m benchmarks.fault_run [size] [fault rate] [seed]

Defaults: the medium workspace, 15% of requests failing (5xx, dropped connections, answers
slower than the client's timeout), a rate limit of 300 requests per 2-second window and a 2 s
"minute" for the endpoints' own limits. Prints faults injected by kind, retries and 429s, rows
expected vs loaded per table, and duplicates.
"""

import os
import sys
import tempfile
import time
from collections import Counter

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("RUNTIME__REQUEST_TIMEOUT", "1")
os.environ.setdefault("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.05")
os.environ.setdefault("RUNTIME__REQUEST_MAX_RETRY_DELAY", "1")
os.environ.setdefault("RUNTIME__REQUEST_MAX_ATTEMPTS", "8")

import dlt  # noqa: E402

from segment_simulator import Faults, RateLimits, SegmentSimulator, generate_workspace  # noqa: E402
from segment_source import RunReport, ratelimit, segment_source  # noqa: E402
from tests.support import SURFACE, expected, loaded, rows


def main(size: str = "medium", rate: float = 0.15, seed: int = 1) -> None:
    ratelimit.MINUTE = 2.0
    ws = generate_workspace(size)
    faults = Faults(rate=rate, seed=seed, kinds=("500", "502", "503", "504", "drop", "slow"), slow_seconds=1.5)
    limits = RateLimits(per_token=300, window=2.0)
    with (
        SegmentSimulator(ws, rate_limits=limits, faults=faults) as sim,
        tempfile.TemporaryDirectory() as tmp,
    ):
        pipeline = dlt.pipeline(
            "fault_run",
            destination=dlt.destinations.duckdb(os.path.join(tmp, "f.duckdb")),
            dataset_name="segment_data",
            pipelines_dir=tmp,
        )
        report = RunReport()
        started = time.perf_counter()
        pipeline.run(segment_source(api_key=sim.token, base_url=sim.url, report=report))
        seconds = time.perf_counter() - started
        want, got = expected(ws), loaded(pipeline)
        statuses = Counter(r.status for r in sim.requests)
        print(f"{size} workspace, fault rate {rate:.0%}, seed {seed}: {seconds:.1f} s")
        print(f"  requests served: {len(sim.requests)} by status {dict(sorted(statuses.items()))}")
        print(f"  faults injected: {len(faults.injected)} {dict(sorted(faults.counts.items()))}")
        print(
            f"  429s: {sum(limits.refused.values())}; client retries: {report.stats['retries']},"
            f" rate-limit waits: {report.stats['rate_limited']}, paced: {report.stats['waited_seconds']:.1f} s"
        )
        mismatched = [t for t in SURFACE if want[t] != got[t]]
        print(
            f"  rows expected / loaded: {sum(len(v) for v in want.values())} / {sum(len(v) for v in got.values())}"
            f" over {len(SURFACE)} tables; tables that differ: {mismatched or 'none'}"
        )
        dupes = sum(
            rows(
                pipeline,
                f"SELECT count(*) FROM (SELECT {SURFACE[t][0]} FROM {{{t}}}"
                f" GROUP BY {SURFACE[t][0]} HAVING count(*) > 1) d",
            )[0][0]
            for t in SURFACE
        )
        print(f"  duplicate keys: {dupes}; skipped: {report.skipped or 'none'}; failed: {report.failed or 'none'}")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0] if args else "medium", float(args[1]) if len(args) > 1 else 0.15, int(args[2]) if len(args) > 2 else 1)
