"""One run at a time per pipeline and dataset: a second run is refused with one paragraph, or waits.

The lock itself (`segment_source/lock.py`) is tried first, in this process and in killed child
processes; then two full runs of one pipeline are started at several offsets, as a cron run that
outlives its interval meets the next one, through `tests/overlapping_run.py` and the CLI script.
"""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, List, Tuple

import dlt
import pytest

from segment_simulator import Faults, SegmentSimulator, generate_workspace
from segment_source.errors import RunInProgressError, explain
from segment_source.lock import run_lock
from tests import postgres_server
from tests.support import CURRENT_TABLES, SURFACE, expected, loaded, rows
from tests.test_pipeline_script import run_script, simulator_env

RUNNER = Path(__file__).with_name("overlapping_run.py")
REPO = RUNNER.parents[1]

# The first run must still hold the lock when the second arrives 2 s after it, on any machine: the
# small workspace is 41 sequential requests, so at least 4 s of answers.
LATENCY_MS = 100


def make(tmp_path: Path, destination: Any, pipelines_dir: str = "pipelines", dataset: str = "overlap") -> dlt.Pipeline:
    """The same pipeline name every time: what makes two runs "the same pipeline" is its name and dataset."""
    return dlt.pipeline(
        "overlap", destination=destination, dataset_name=dataset, pipelines_dir=str(tmp_path / pipelines_dir)
    )


def duckdb_at(tmp_path: Path) -> Any:
    return dlt.destinations.duckdb(str(tmp_path / "segment.duckdb"))


def assert_refusal(message: str, holder_pid: int) -> None:
    """The one paragraph: who holds the lock, since when, what to do."""
    assert "\n" not in message.strip() and "Traceback" not in message
    assert f"pid {holder_pid} on host {socket.gethostname()}" in message
    assert "running since 20" in message and "Another run of pipeline overlap into dataset" in message
    assert "--wait SECONDS" in message and "nothing was read or loaded" in message


def test_a_second_run_is_refused_at_once_saying_who_holds_the_lock_and_since_when(tmp_path):
    with run_lock(make(tmp_path, duckdb_at(tmp_path))):
        with pytest.raises(RunInProgressError) as refused:
            with run_lock(make(tmp_path, duckdb_at(tmp_path))):
                pytest.fail("two runs held the lock at once")
    assert_refusal(str(refused.value), os.getpid())
    assert explain(refused.value) == (str(refused.value), 3)
    with run_lock(make(tmp_path, duckdb_at(tmp_path))):  # released with the first run's block
        pass


def test_another_pipeline_or_another_dataset_runs_alongside(tmp_path, postgres):
    """The lock is per pipeline (its working directory) and, in PostgreSQL, per pipeline and dataset."""
    destination = dlt.destinations.postgres(postgres.dsn)
    with run_lock(make(tmp_path, destination)):
        another_pipeline = dlt.pipeline(
            "overlap_other", destination=destination, dataset_name="overlap", pipelines_dir=str(tmp_path / "pipelines")
        )
        with run_lock(another_pipeline), run_lock(make(tmp_path, destination, "machine_b", dataset="overlap_other")):
            pass


def test_a_waiting_run_starts_as_soon_as_the_first_run_ends(tmp_path):
    held, release, released = threading.Event(), threading.Event(), threading.Event()

    def first_run() -> None:
        with run_lock(make(tmp_path, duckdb_at(tmp_path))):
            held.set()
            release.wait(60)
            released.set()

    thread = threading.Thread(target=first_run)
    thread.start()
    held.wait(60)
    threading.Timer(1.0, release.set).start()
    with run_lock(make(tmp_path, duckdb_at(tmp_path)), wait_seconds=120):
        assert released.is_set()
    thread.join()


def test_a_run_that_waited_in_vain_is_refused_with_the_same_paragraph(tmp_path):
    with run_lock(make(tmp_path, duckdb_at(tmp_path))):
        with pytest.raises(RunInProgressError) as refused:
            with run_lock(make(tmp_path, duckdb_at(tmp_path)), wait_seconds=1):
                pytest.fail("two runs held the lock at once")
    assert_refusal(str(refused.value), os.getpid())
    assert "This run waited 1 s for it to end." in str(refused.value)


HOLDER = textwrap.dedent(
    """
    import sys, time
    import dlt
    from segment_source.lock import run_lock

    destination = dlt.destinations.postgres(sys.argv[3]) if len(sys.argv) > 3 else "duckdb"
    pipeline = dlt.pipeline("overlap", destination=destination, dataset_name="overlap", pipelines_dir=sys.argv[1])
    with run_lock(pipeline):
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
    """
)


def start_holder(tmp_path: Path, pipelines_dir: str, *dsn: str) -> subprocess.Popen:
    """A process that takes the lock and sleeps with it; returns once it holds it."""
    env = dict(
        os.environ, RUNTIME__DLTHUB_TELEMETRY="false", DESTINATION__DUCKDB__CREDENTIALS=str(tmp_path / "x.duckdb")
    )
    args = [sys.executable, "-c", HOLDER, str(tmp_path / pipelines_dir), "600", *dsn]
    holder = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    return holder


@pytest.mark.parametrize("destination_name", ["duckdb", "postgres"])
def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path, request, caplog, destination_name):
    dsn = [request.getfixturevalue("postgres").dsn] if destination_name == "postgres" else []
    destination = dlt.destinations.postgres(dsn[0]) if dsn else duckdb_at(tmp_path)
    holder = start_holder(tmp_path, "pipelines", *dsn)
    try:
        with pytest.raises(RunInProgressError) as refused:
            with run_lock(make(tmp_path, destination)):
                pytest.fail("two runs held the lock at once")
        assert_refusal(str(refused.value), holder.pid)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # PostgreSQL ends the killed run's session as soon as it sees the socket closed
    with run_lock(make(tmp_path, destination), wait_seconds=60):
        pass
    assert f"names pid {holder.pid} on host {socket.gethostname()}" in caplog.text
    assert "ended without releasing it; this run takes it over" in caplog.text


def test_the_postgres_advisory_lock_excludes_a_run_on_another_machine(tmp_path, postgres):
    """Another machine: another pipelines dir, so another local lock; the same dataset in PostgreSQL."""
    holder = start_holder(tmp_path, "machine_a", postgres.dsn)
    try:
        elsewhere = make(tmp_path, dlt.destinations.postgres(postgres.dsn), pipelines_dir="machine_b")
        with pytest.raises(RunInProgressError) as refused:
            with run_lock(elsewhere):
                pytest.fail("two machines held the lock at once")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert_refusal(str(refused.value), holder.pid)
    assert "holding the PostgreSQL advisory lock" in str(refused.value)
    assert postgres_server.PASSWORD not in str(refused.value)


def start_run(
    sim: SegmentSimulator, tmp_path: Path, destination: str, dataset: str, credentials: str
) -> subprocess.Popen:
    env = dict(
        os.environ,
        **simulator_env(sim),
        **{f"DESTINATION__{destination.upper()}__CREDENTIALS": credentials},
        DLT_DATA_DIR=str(tmp_path / "dlt"),
        RUNTIME__DLTHUB_TELEMETRY="false",
    )
    args = [sys.executable, str(RUNNER), "overlap", destination, dataset]
    return subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def outcomes(*processes: subprocess.Popen) -> List[Tuple[int, int, str, str]]:
    """(exit code, pid, stdout, stderr) of each process, the one that succeeded first."""
    done = []
    for process in processes:
        out, err = process.communicate(timeout=600)
        done.append((process.returncode, process.pid, out, err))
    return sorted(done)


def assert_loaded_once(pipeline: dlt.Pipeline, sim: SegmentSimulator) -> None:
    """No key twice in a current table, no object with two open versions, and the workspace as it is."""
    for table in CURRENT_TABLES:
        key = SURFACE[table][0]
        duplicated = f"SELECT {key} FROM {{{table}}} GROUP BY {key} HAVING count(*) > 1"
        assert rows(pipeline, duplicated) == [], table
        open_twice = f"SELECT {key} FROM {{{table}_history}} WHERE valid_to IS NULL GROUP BY {key} HAVING count(*) > 1"
        assert rows(pipeline, open_twice) == [], table
    assert loaded(pipeline) == expected(sim.workspace)


@pytest.mark.parametrize("offset", [0, 0.5, 2])
@pytest.mark.parametrize("destination_name", ["duckdb", "postgres"])
def test_two_overlapping_runs_load_once_and_the_second_is_refused_with_one_paragraph(
    tmp_path, request, destination_name, offset
):
    if destination_name == "postgres":
        credentials = request.getfixturevalue("postgres").dsn
        dataset = f"overlap_{request.node.callspec.id.replace('-', '_').replace('.', '_')}"
        target: Any = dlt.destinations.postgres(credentials)
    else:
        credentials, dataset = str(tmp_path / "segment.duckdb"), "overlap"
        target = duckdb_at(tmp_path)
    with SegmentSimulator(generate_workspace("small"), faults=Faults(latency_ms=LATENCY_MS)) as sim:
        first = start_run(sim, tmp_path, destination_name, dataset, credentials)
        time.sleep(offset)
        second = start_run(sim, tmp_path, destination_name, dataset, credentials)
        (ok, _, ok_out, ok_err), (code, _, out, err) = outcomes(first, second)
        assert (ok, code) == (0, 3), ok_err + err
        winner = first.pid if first.returncode == 0 else second.pid
        assert ok_out.endswith("loaded\n") and out == ""
        assert_refusal(err, winner)
        assert sim.token not in err
        pipeline = make(tmp_path, target, pipelines_dir="dlt/pipelines", dataset=dataset)
        assert_loaded_once(pipeline, sim)


def test_runs_of_a_new_pipeline_started_at_the_same_instant_all_open_it(tmp_path):
    """dlt builds a new pipeline's directory unlocked: of 40 processes opening one new pipeline with
    `dlt.pipeline` four at a time, 7 failed with FileExistsError (one CI run met it). Here a slow
    disk (0.5 s after dlt clears the directory) makes every unserialized pair meet it."""
    code = textwrap.dedent(
        """
        import sys, time
        from dlt.pipeline.pipeline import Pipeline
        from segment_source.cli import open_pipeline

        wipe = Pipeline._wipe_working_folder
        Pipeline._wipe_working_folder = lambda self: (wipe(self), time.sleep(0.5))[0]
        time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
        print(open_pipeline("overlap", "duckdb", "overlap").pipeline_name)
        """
    )
    env = dict(
        os.environ,
        RUNTIME__DLTHUB_TELEMETRY="false",
        DESTINATION__DUCKDB__CREDENTIALS=str(tmp_path / "x.duckdb"),
        DLT_DATA_DIR=str(tmp_path / "dlt"),
    )
    at = str(time.time() + 8)  # every process has imported the package by then
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", code, at],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert (run.returncode, out) == (0, "overlap\n"), err
    assert Path(env["DLT_DATA_DIR"], "pipelines", "overlap", "state.json").exists()


def test_the_script_run_twice_at_once_refuses_the_second_with_exit_3(tmp_path):
    """The CLI: exit 0 for the run that holds the lock, 3 and the paragraph for the other."""
    with SegmentSimulator(generate_workspace("small"), faults=Faults(latency_ms=LATENCY_MS)) as sim:
        runs: List[subprocess.CompletedProcess] = []
        threads = [
            threading.Thread(target=lambda: runs.append(run_script(tmp_path, env=simulator_env(sim)))) for _ in "12"
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    done, refused = sorted(runs, key=lambda r: r.returncode)
    assert (done.returncode, refused.returncode) == (0, 3), done.stderr + refused.stderr
    message = refused.stderr.strip().removeprefix("Error: ")
    assert "\n" not in message and "Traceback" not in refused.stderr
    assert "Another run of pipeline segment_pipeline into dataset segment_data is in progress: pid" in message
    assert "segment_pipeline.py`), running since 20" in message and "--wait SECONDS" in message
    assert sim.token not in refused.stdout + refused.stderr
