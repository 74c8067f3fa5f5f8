"""Where one run's CPU and memory go: each dlt step of the package's run, against its simulator.

    .venv/bin/python -m benchmarks.steps [--size large] [--core]

One simulator (this process, no latency, no rate limit) serves one run in a fresh child process,
which loads every default table (`--core`: the seven core tables) into its own DuckDB file, as
`load_segment` does. For each step dlt runs (extract, normalize and load, then the change feed's
own three; each extract is followed by a short one of dlt's pipeline state) the child prints its
CPU seconds (every thread's), its resident memory (RSS) as it starts and as it ends, and its peak:
the kernel's high-water mark, reset as the step starts (`/proc/self/clear_refs`: Linux only).
The first line is the process once dlt, DuckDB and the package are imported and the pipeline is
set up; the first extract starts higher, after the run's own setup (the lock, the destination's
schema). A step's peak minus its start is what the step itself adds; what it leaves (end minus
start) stays for the steps after it, since Python keeps the memory its objects freed for its next
objects.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from typing import Optional

from dlt.common.runtime.collector import Collector

from benchmarks.machine import describe

HEADER = f"{'step':<24} {'cpu s':>7} {'start MiB':>10} {'peak MiB':>9} {'end MiB':>8}"


def _status_mib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) // 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak() -> None:
    """The kernel's high-water mark of this process's RSS (VmHWM) starts again from its RSS."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


class StepMeter(Collector):
    """A dlt collector that prints each step's CPU seconds and memory as the step ends."""

    def __init__(self) -> None:
        self.loaded = False
        """Whether the main run's load has ended: the steps after it are the change feed's."""
        self.peak = 0
        self._step: Optional[str] = None
        self._cpu = 0.0
        self._rss = 0

    def update(self, *args: object, **kwargs: object) -> None:
        pass  # counters (rows, tables) are not what this measures

    def _start(self, step: str) -> None:
        self._step = step.split()[0].lower()  # dlt's "Extract segment", "Load segment in <load id>"
        self.peak = max(self.peak, _status_mib("VmHWM"))  # what the time between two steps reached
        _reset_peak()
        self._cpu, self._rss = time.process_time(), _status_mib("VmRSS")

    def _stop(self) -> None:
        step = f"{self._step} ({'change feed' if self.loaded else 'main'})"
        cpu, peak = time.process_time() - self._cpu, _status_mib("VmHWM")
        self.peak = max(self.peak, peak)
        self.loaded = self.loaded or self._step == "load"
        print(f"{step:<24} {cpu:>7.1f} {self._rss:>10} {peak:>9} {_status_mib('VmRSS'):>8}", flush=True)


def child(base_url: str, token: str, work: str, tables: str) -> None:
    """One run; `tables`: the tables to load, comma-separated (empty: every default table)."""
    import dlt

    from segment_source import RunReport, load_segment, segment_source

    meter = StepMeter()
    pipeline = dlt.pipeline(
        "steps",
        destination=dlt.destinations.duckdb(work + ".duckdb"),
        dataset_name="segment_data",
        pipelines_dir=work,
        progress=meter,
    )
    report = RunReport()
    source = segment_source(api_key=token, base_url=base_url, report=report)
    if tables:
        source = source.with_resources(*tables.split(","))
    print(HEADER)
    imported = f"{'imported, set up':<24} {time.process_time():>7.1f} {'':>10}"
    print(f"{imported} {_status_mib('VmHWM'):>9} {_status_mib('VmRSS'):>8}", flush=True)
    load_segment(pipeline, source, report)
    peak = max(meter.peak, _status_mib("VmHWM"))
    print(f"{'the whole run':<24} {time.process_time():>7.1f} {'':>10} {peak:>9}")


def main() -> None:
    from benchmarks.side_by_side import CORE
    from segment_simulator import SegmentSimulator, generate_workspace

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="large", choices=["small", "medium", "large"])
    parser.add_argument("--core", action="store_true", help="the seven core tables, not every default table")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, SegmentSimulator(generate_workspace(args.size)) as sim:
        env = dict(os.environ, RUNTIME__DLTHUB_TELEMETRY="false")
        work = os.path.join(tmp, "run")
        argv = [sys.executable, "-m", "benchmarks.steps", "--child", sim.url, sim.token, work]
        tables = ",".join(CORE) if args.core else ""
        process = subprocess.Popen([*argv, tables], env=env, stderr=subprocess.PIPE, text=True)
        _, err = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"the run failed:\n{err[-3000:]}")
        print(
            f"\n{args.size} workspace, {'the seven core tables' if args.core else 'every default table'},"
            f" {len(sim.requests)} requests;"
            f" {describe()}"
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:6])
    else:
        main()
