"""Requests, rows, time and peak memory of full runs against simulated workspaces.

    .venv/bin/python -m benchmarks.requests_per_run [small medium large]

For each size: a first run into a fresh DuckDB file, then a rerun with no change. The simulator
runs in this process and counts requests; each load runs in a child process, which reports its
own wall time and peak RSS (so the simulator's memory is not counted).
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter

from segment_simulator import SegmentSimulator, generate_workspace


def child(base_url: str, token: str, duckdb_path: str, pipelines_dir: str) -> None:
    import dlt

    from segment_source import segment_source

    started = time.perf_counter()
    pipeline = dlt.pipeline(
        "bench",
        destination=dlt.destinations.duckdb(duckdb_path),
        dataset_name="segment_data",
        pipelines_dir=pipelines_dir,
    )
    pipeline.run(segment_source(api_key=token, base_url=base_url))
    trace = pipeline.last_trace
    assert trace is not None and trace.last_normalize_info is not None
    rows = sum(int(v) for k, v in trace.last_normalize_info.row_counts.items() if not k.startswith("_dlt"))
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "rows": rows,
            }
        )
    )


def measure(size: str) -> None:
    with SegmentSimulator(generate_workspace(size)) as sim, tempfile.TemporaryDirectory() as tmp:
        args = [
            sys.executable,
            __file__,
            "--child",
            sim.url,
            sim.token,
            os.path.join(tmp, "bench.duckdb"),
            os.path.join(tmp, "pipelines"),
        ]
        env = dict(os.environ, RUNTIME__DLTHUB_TELEMETRY="false")
        for run in ("full run", "no-change rerun"):
            sim.clear_log()
            result = json.loads(
                subprocess.run(args, env=env, capture_output=True, text=True, check=True)
                .stdout.strip()
                .splitlines()[-1]
            )
            by_endpoint = Counter(
                r.path if r.path.count("/") <= 1 else "/" + r.path.split("/")[1] + "/{id}/" + r.path.split("/")[-1]
                for r in sim.requests
            )
            print(
                f"{size:<7} {run:<16} requests={len(sim.requests):<4} rows={result['rows']:<7}"
                f" seconds={result['seconds']:.2f} peak_rss_mb={result['peak_rss_mb']:.0f}"
            )
            print("        " + ", ".join(f"{path}: {n}" for path, n in sorted(by_endpoint.items())))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:6])
    else:
        for size in sys.argv[1:] or ["small", "medium"]:
            measure(size)
