"""Time of the change feed and of the map on a simulated workspace, after a first run, a run with
edits and a run without changes.

    .venv/bin/python -m benchmarks.change_feed [medium]

Loads into a fresh DuckDB file (the load's own time is not what is measured), edits objects of
several kinds between runs and prints, per run, how long `record_changes` took and what it found,
then the time and size of the map's page.
"""

import sys
import tempfile
import time
from pathlib import Path

import dlt

from segment_simulator import SegmentSimulator, SimulatedWorkspace, generate_workspace
from segment_source import segment_source
from segment_source.changes import record_changes
from segment_source.workspace_map import read_map, render_html


def edit(ws: SimulatedWorkspace) -> str:
    sources, destinations = ws.ids("sources"), ws.ids("destinations")
    for source in sources[:100]:
        ws.rename("sources", source, "renamed " + source)
    for destination in destinations[:50]:
        ws.update("destinations", destination, enabled=False)
    for destination in destinations[-20:]:
        ws.delete("destinations", destination)
    for _ in range(10):
        ws.add("warehouses")
    return "100 sources renamed, 50 destinations disabled, 20 deleted, 10 warehouses added"


def measure(size: str) -> None:
    with SegmentSimulator(generate_workspace(size)) as sim, tempfile.TemporaryDirectory() as tmp:
        pipeline = dlt.pipeline(
            "bench_changes",
            destination=dlt.destinations.duckdb(str(Path(tmp) / "bench.duckdb")),
            dataset_name="segment_data",
            pipelines_dir=str(Path(tmp) / "pipelines"),
        )
        for run, before in (("first run", None), ("edited", edit), ("no change", None)):
            what = before(sim.workspace) if before else ""
            pipeline.run(segment_source(api_key=sim.token, base_url=sim.url))
            started = time.perf_counter()
            summary = record_changes(pipeline)
            seconds = time.perf_counter() - started
            print(
                f"{size} {run:<10} record_changes {seconds:6.2f} s: {summary.created} created,"
                f" {summary.updated} updated, {summary.deleted} deleted, {summary.initial} initial  {what}"
            )
        started = time.perf_counter()
        page = render_html(read_map(pipeline))
        print(f"{size} map: {time.perf_counter() - started:.2f} s, {len(page.encode()) / 1024:.0f} kB")


if __name__ == "__main__":
    for size in sys.argv[1:] or ["medium"]:
        measure(size)
