"""Ctrl-C or SIGTERM stops `segment-pipeline` with one line and exit 130 / 143; the next run completes the load."""

import signal
import subprocess
import sys
import time

import duckdb
import pytest

from segment_simulator import Faults, SegmentSimulator, generate_workspace
from tests.test_pipeline_script import REPO, SCRIPT, run_script, scalar, simulator_env


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_run_says_so_in_one_line_and_the_next_run_loads_everything(tmp_path, sig, code):
    slow = Faults(latency_ms=300)
    with SegmentSimulator(generate_workspace("small"), faults=slow) as sim:
        env = {**simulator_env(sim), "DLT_DATA_DIR": str(tmp_path / "dlt"), "RUNTIME__DLTHUB_TELEMETRY": "false"}
        process = subprocess.Popen(
            [sys.executable, str(SCRIPT)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while len(sim.requests) < 3 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        assert len(sim.requests) >= 3, "the run reached the Segment API"
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == code, stderr
        assert "Traceback" not in stderr
        # besides the progress lines (`[segment 2.1s] ...`, see segment_source/progress.py)
        lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("[segment")]
        assert len(lines) == 1 and lines[0].startswith(f"Interrupted ({signal.Signals(sig).name})"), stderr
        slow.latency_ms = 0
        rerun = run_script(tmp_path, env=simulator_env(sim))
        ws = sim.workspace
    assert rerun.returncode == 0, rerun.stderr
    with duckdb.connect(str(tmp_path / "segment_pipeline.duckdb"), read_only=True) as db:
        assert scalar(db, "SELECT count(*) FROM segment_data.destinations") == len(ws.ids("destinations"))
        assert scalar(db, "SELECT count(*) FROM segment_data.sources_history") == len(ws.ids("sources"))


@pytest.mark.parametrize(("sig", "code"), [("INT", 130), ("TERM", 143)])
def test_a_signal_as_the_load_ends_still_stops_the_run(simulator, tmp_path, sig, code):
    env = {
        **simulator_env(simulator),
        "DLT_DATA_DIR": str(tmp_path / "dlt"),
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "PYTHONPATH": str(REPO),
    }
    run = subprocess.run(
        [sys.executable, str(REPO / "tests" / "late_signal_run.py"), sig, "--"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == code, run.stderr[-2000:]
    lines = [line for line in run.stderr.splitlines() if line.strip() and not line.startswith("[segment")]
    assert len(lines) == 1 and lines[0].startswith(f"Interrupted (SIG{sig})"), run.stderr[-2000:]
    assert "Changes since the last run" not in run.stdout  # the change feed did not run after it
    rerun = run_script(tmp_path, env=simulator_env(simulator))
    assert rerun.returncode == 0, rerun.stderr
    with duckdb.connect(str(tmp_path / "segment_pipeline.duckdb"), read_only=True) as db:
        assert scalar(db, "SELECT count(*) FROM segment_data.destinations") == len(
            simulator.workspace.ids("destinations")
        )
    # the change feed the interrupted run did not reach records its load now, as a first load
    assert "0 created, 0 updated, 0 deleted (and" in rerun.stdout and "as a workspace's first load" in rerun.stdout
