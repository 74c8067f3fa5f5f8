"""A run killed with SIGKILL at any point, then run again, ends exactly like a run never killed."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from segment_simulator import Faults, SegmentSimulator, generate_workspace

RUNNER = Path(__file__).with_name("interrupted_run.py")


def run(sim, tmp_path, name, kill_point="none"):
    """The pipeline script in a child process, loading `tmp_path/<name>.duckdb`."""
    env = dict(
        os.environ,
        SOURCES__SEGMENT_SOURCE__API_KEY=sim.token,
        SOURCES__SEGMENT_SOURCE__BASE_URL=sim.url,
        DESTINATION__DUCKDB__CREDENTIALS=str(tmp_path / f"{name}.duckdb"),
        DLT_DATA_DIR=str(tmp_path / f"{name}_dlt"),
        RUNTIME__DLTHUB_TELEMETRY="false",
    )
    args = [sys.executable, str(RUNNER), kill_point, "--"]
    return subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process):
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return out


def snapshot(tmp_path, name):
    """Every table's rows without dlt's bookkeeping columns (load ids, row ids, validity times) and
    the change feed's run time (`changed_at`, a run's time like `valid_from`)."""
    import duckdb

    with duckdb.connect(str(tmp_path / f"{name}.duckdb"), read_only=True) as db:
        tables = [
            t
            for (t,) in db.sql(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'segment_data'"
            ).fetchall()
            if not t.startswith("_dlt")
        ]
        out = {}
        for table in tables:
            columns = [
                c
                for (c,) in db.sql(
                    "SELECT column_name FROM information_schema.columns"
                    f" WHERE table_schema = 'segment_data' AND table_name = '{table}'"
                ).fetchall()
            ]
            kept = [
                f'"{c}"'
                for c in columns
                if not c.startswith("_dlt") and c not in ("valid_from", "valid_to", "changed_at")
            ]
            if "valid_to" in columns:
                kept.append("valid_to IS NULL")
            rows = db.sql(f"SELECT {', '.join(kept)} FROM segment_data.{table}").fetchall()
            out[table] = sorted(json.dumps(r, default=str) for r in rows)
        return out


def change(ws):
    ws.rename("sources", ws.ids("sources")[0], "Renamed before the interrupted run")
    ws.delete("destinations", ws.ids("destinations")[0])
    ws.add("sources", name="Added before the interrupted run")


KILL_POINTS = ["extract", "normalize", "load_jobs", "merge"]


def copy_pipeline(directory, source, target):
    """The pipeline `source` (its DuckDB file and dlt's working directory) copied as `target`, as if
    `target` had made the runs `source` made."""
    shutil.copyfile(directory / f"{source}.duckdb", directory / f"{target}.duckdb")
    shutil.copytree(directory / f"{source}_dlt", directory / f"{target}_dlt")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """A simulator and, in one directory, a pipeline per kill point that loaded its workspace once
    (copies of one run), and `reference`, which loaded it again after the workspace changed:
    what every interrupted pipeline must end with."""
    directory = tmp_path_factory.mktemp("killed")
    with SegmentSimulator(generate_workspace("small")) as sim:
        finish(run(sim, directory, "reference"))
        for kill_point in KILL_POINTS:
            copy_pipeline(directory, "reference", kill_point)
        change(sim.workspace)
        finish(run(sim, directory, "reference"))
        yield sim, directory


# one worker runs them all: they share `loaded`'s runs (`--dist loadgroup` in pyproject.toml)
@pytest.mark.xdist_group("killed_runs")
@pytest.mark.parametrize("kill_point", KILL_POINTS)
def test_a_killed_run_then_a_rerun_equals_an_uninterrupted_run(loaded, kill_point):
    sim, directory = loaded
    if kill_point == "extract":
        sim.faults = Faults(latency_ms=40)  # slow pages, so the kill lands mid-extract
        try:
            sim.clear_log()
            process = run(sim, directory, kill_point)
            while len(sim.requests) < 8 and process.poll() is None:
                time.sleep(0.01)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
        finally:
            sim.faults = None
    else:
        process = run(sim, directory, kill_point, kill_point)
        process.wait(timeout=300)
    assert process.returncode == -signal.SIGKILL, process.stderr.read()

    finish(run(sim, directory, kill_point))
    reference, interrupted = snapshot(directory, "reference"), snapshot(directory, kill_point)
    assert sorted(interrupted) == sorted(reference)
    for table in reference:
        extra = sorted(set(interrupted[table]) - set(reference[table]))
        missing = sorted(set(reference[table]) - set(interrupted[table]))
        assert interrupted[table] == reference[table], (table, "extra:", extra, "missing:", missing)
    assert any("Renamed before the interrupted run" in r for r in reference["sources"])
