"""A destination that cannot be opened ends in one paragraph that says what to fix, never a dlt traceback."""

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from segment_simulator import SegmentSimulator, generate_workspace
from tests import postgres_server
from tests.test_pipeline_script import run_script, simulator_env


@pytest.fixture(scope="module")
def sim():
    with SegmentSimulator(generate_workspace("small")) as simulator:
        yield simulator


def assert_one_paragraph(result, code, *words):
    assert result.returncode == code, result.stdout + result.stderr
    error = result.stderr[result.stderr.index("Error: ") :]
    for word in words:
        assert word in error, (word, error)
    assert "Traceback" not in result.stderr and "internet" not in result.stderr
    assert "\n\n" not in error.strip(), "one paragraph"


def duckdb_at(sim, path: Path):
    return {**simulator_env(sim), "DESTINATION__DUCKDB__CREDENTIALS": str(path)}


def test_a_missing_directory_for_the_duckdb_file_says_to_create_it(tmp_path, sim):
    target = tmp_path / "no" / "such" / "dir" / "segment.duckdb"
    result = run_script(tmp_path, "--resources", "sources", env=duckdb_at(sim, target))
    assert_one_paragraph(result, 2, str(target), "does not exist", "DESTINATION__DUCKDB__CREDENTIALS")


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory this user cannot write in; root ignores file modes, so as root it is made immutable."""
    path = tmp_path / "read-only"
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("running as root without chattr +i: no directory is read-only for root")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_read_only_directory_for_the_duckdb_file_says_to_make_it_writable(tmp_path, sim, read_only_dir):
    target = read_only_dir / "segment.duckdb"
    result = run_script(tmp_path, "--resources", "sources", env=duckdb_at(sim, target))
    assert_one_paragraph(result, 2, str(target), "read-only", "writable", "DESTINATION__DUCKDB__CREDENTIALS")


def test_a_duckdb_file_held_by_another_process_names_the_process(tmp_path, sim):
    target = tmp_path / "held.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(target)!r}); print('open', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        result = run_script(tmp_path, "--resources", "sources", env=duckdb_at(sim, target))
    finally:
        holder.kill()
        holder.wait()
    assert_one_paragraph(result, 1, str(target), "another program", f"process {holder.pid}", "run again")
    with duckdb.connect(str(target)) as db:  # the failed run left the file usable
        assert db.sql("SELECT 1").fetchone() == (1,)


def test_a_wrong_postgres_password_says_which_user_and_where_to_fix_it(tmp_path, sim, postgres):
    dsn = postgres.dsn.replace(postgres_server.PASSWORD, "not-the-password-77")
    env = {**simulator_env(sim), "DESTINATION__POSTGRES__CREDENTIALS": dsn}
    result = run_script(tmp_path, "--destination", "postgres", "--resources", "sources", env=env)
    assert_one_paragraph(
        result,
        2,
        f"127.0.0.1:{postgres.port}",
        "refused the password",
        "postgres",
        "DESTINATION__POSTGRES__CREDENTIALS",
    )
    assert "not-the-password-77" not in result.stdout + result.stderr


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_postgres_down_says_no_server_answers_and_exits_1(tmp_path, sim):
    port = closed_port()
    env = {
        **simulator_env(sim),
        "DESTINATION__POSTGRES__CREDENTIALS": f"postgresql://loader:secret-pw-31@127.0.0.1:{port}/analytics",
    }
    result = run_script(tmp_path, "--destination", "postgres", "--resources", "sources", env=env)
    assert_one_paragraph(result, 1, f"127.0.0.1:{port}", "cannot be reached", "Start the server")
    assert "secret-pw-31" not in result.stdout + result.stderr
