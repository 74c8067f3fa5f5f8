"""This package against the configuration a user would copy from dltHub's Segment page, side by side.

    .venv/bin/python -m benchmarks.side_by_side [--size medium] [--latency-ms 100] [--rate-limit 600]
                                                 [--rate-window 60] [--skip-full]

One simulator (this process) with a fixed latency per request and a per-token rate limit serves
every run; each run is a fresh child process loading into its own DuckDB file:
- `package, core`: `segment_source` with the seven core tables (workspace ... segments);
- `package, full`: `segment_source` with every default table;
- `rest_api, core`: dlt's `rest_api_source` as dltHub's page suggests for Segment: a cursor
  paginator (`cursor_path` `data.pagination.next`, `cursor_param` `pagination[cursor]`),
  `data_selector` `data.<key>`, `pagination[count]` 200 (the API's documented default), the seven
  core tables as resources and children.
For each: requests served, wall seconds, CPU seconds (user + system of the child), peak RSS, rows,
the lower bounds of its wall time (requests × latency ÷ concurrency, and requests ÷ rate limit ×
window), and its wall time against the same requests sent one after another (requests × latency).
Ratios are against `rest_api, core`.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict

from benchmarks.machine import describe
from segment_simulator import Faults, RateLimits, SegmentSimulator, generate_workspace
from segment_source.settings import DEFAULT_CONCURRENCY

CORE = ["workspace", "sources", "destinations", "warehouses", "warehouse_sources", "spaces", "segments"]
RUNS = ("package, core", "package, full", "rest_api, core")


def rest_api_config(base_url: str, token: str) -> Dict[str, Any]:
    """What a user would write from dltHub's Segment page, with the real API's paths."""

    def listing(name: str, path: str, key: str, **extra: Any) -> Dict[str, Any]:
        return {"name": name, "endpoint": {"path": path, "data_selector": f"data.{key}"}, **extra}

    return {
        "client": {
            "base_url": base_url + "/",
            "auth": {"type": "bearer", "token": token},
            "paginator": {
                "type": "cursor",
                "cursor_path": "data.pagination.next",
                "cursor_param": "pagination[cursor]",
            },
        },
        "resource_defaults": {
            "primary_key": "id",
            "write_disposition": "merge",
            "endpoint": {"params": {"pagination[count]": 200}},
        },
        "resources": [
            {
                "name": "workspace",
                "endpoint": {"path": "", "data_selector": "data.workspace", "paginator": "single_page", "params": {}},
            },
            listing("sources", "sources", "sources"),
            listing("destinations", "destinations", "destinations"),
            listing("warehouses", "warehouses", "warehouses"),
            listing(
                "warehouse_sources",
                "warehouses/{resources.warehouses.id}/connected-sources",
                "sources",
                include_from_parent=["id"],
                primary_key=["_warehouses_id", "id"],
            ),
            listing("spaces", "spaces", "spaces"),
            listing("segments", "spaces/{resources.spaces.id}/audiences", "audiences"),
        ],
    }


def child(kind: str, base_url: str, token: str, duckdb_path: str, pipelines_dir: str) -> None:
    import dlt

    pipeline = dlt.pipeline(
        "bench",
        destination=dlt.destinations.duckdb(duckdb_path),
        dataset_name="segment_data",
        pipelines_dir=pipelines_dir,
    )
    if kind == "rest_api, core":
        from dlt.sources.rest_api import rest_api_source

        source = rest_api_source(rest_api_config(base_url, token))  # type: ignore[arg-type]  # a typed literal
        pipeline.run(source)
    else:
        from segment_source import RunReport, load_segment, segment_source

        report = RunReport()
        source = segment_source(api_key=token, base_url=base_url, report=report)
        if kind == "package, core":
            source = source.with_resources(*CORE)
        load_segment(pipeline, source, report)  # how the package's command and orchestrators run it


def loaded_rows(duckdb_path: str) -> int:
    """The configuration's rows a run loaded: current tables, not history, change feed or dlt's own.

    Counted here, after the child ended, so that the child's peak memory and CPU are the run's own."""
    import duckdb

    with duckdb.connect(duckdb_path, read_only=True) as db:
        found = db.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'segment_data'")
        tables = [t for (t,) in found.fetchall()]
        return sum(
            db.execute(f'SELECT count(*) FROM segment_data."{table}"').fetchone()[0]  # type: ignore[index]
            for table in tables
            if not table.startswith("_dlt") and not table.endswith("_history") and table != "changes"
        )


def measure(kind: str, sim: SegmentSimulator, tmp: str) -> Dict[str, Any]:
    sim.clear_log()
    work = os.path.join(tmp, kind.replace(", ", "-"))
    args = [
        sys.executable,
        "-m",
        "benchmarks.side_by_side",
        "--child",
        kind,
        sim.url,
        sim.token,
        work + ".duckdb",
        work,
    ]
    env = dict(os.environ, RUNTIME__DLTHUB_TELEMETRY="false")
    started = time.perf_counter()
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    _, err = process.communicate()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{kind} failed:\n{err[-3000:]}")
    return {
        "requests": len(sim.requests),
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "rows": loaded_rows(work + ".duckdb"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="medium", choices=["small", "medium", "large"])
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--rate-limit", type=int, default=600, help="requests per window per token")
    parser.add_argument("--rate-window", type=float, default=60.0, help="seconds")
    parser.add_argument(
        "--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="this package's max_concurrency, for the bound"
    )
    parser.add_argument("--skip-full", action="store_true", help="leave out the package's full-surface run")
    args = parser.parse_args()
    runs = [r for r in RUNS if not (args.skip_full and r == "package, full")]
    faults = Faults(latency_ms=args.latency_ms)
    limits = RateLimits(per_token=args.rate_limit, window=args.rate_window)
    results: Dict[str, Dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        with SegmentSimulator(generate_workspace(args.size), faults=faults, rate_limits=limits) as sim:
            for kind in runs:
                results[kind] = measure(kind, sim, tmp)
    print(
        f"{args.size} workspace, {args.latency_ms:.0f} ms latency, {args.rate_limit} requests per"
        f" {args.rate_window:.0f} s; {describe()}"
    )
    header = f"{'run':<16} {'requests':>9} {'wall s':>8} {'cpu s':>7} {'peak MiB':>9} {'rows':>7}"
    header += f" {'bound: latency s':>17} {'bound: rate s':>14} {'wall ÷ sequential':>18}"
    print(header)
    for kind, r in results.items():
        concurrency = args.concurrency if kind.startswith("package") else 1
        latency_bound = r["requests"] * args.latency_ms / 1000 / concurrency
        rate_bound = max(0, r["requests"] - args.rate_limit) / args.rate_limit * args.rate_window
        print(
            f"{kind:<16} {r['requests']:>9} {r['wall_s']:>8.1f} {r['cpu_s']:>7.1f} {r['peak_rss_mib']:>9.0f}"
            f" {r['rows']:>7} {latency_bound:>17.1f} {rate_bound:>14.1f}"
            f" {r['wall_s'] / (r['requests'] * args.latency_ms / 1000):>18.2f}"
        )
    base = results["rest_api, core"]
    ours = results["package, core"]
    print("\npackage, core ÷ rest_api, core (lower is better, same seven tables):")
    for name in ("requests", "wall_s", "cpu_s", "peak_rss_mib"):
        print(f"  {name:<13} {ours[name] / base[name]:.2f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:7])
    else:
        main()
