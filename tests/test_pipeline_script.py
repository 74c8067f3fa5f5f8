"""`python pipelines/segment_pipeline.py`: what a user runs, run as a user runs it."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import duckdb

from segment_simulator import SegmentSimulator, generate_workspace
from tests import postgres_server
from tests.support import CORE_TABLES

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "pipelines" / "segment_pipeline.py"
TABLES = list(CORE_TABLES)


def run_script(tmp_path: Path, *args: str, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Run the script in `tmp_path` (so files land there) with a private dlt data dir."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    full_env.update(DLT_DATA_DIR=str(tmp_path / "dlt"), RUNTIME__DLTHUB_TELEMETRY="false", **(env or {}))
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=600
    )


def simulator_env(sim: SegmentSimulator) -> Dict[str, str]:
    return {"SOURCES__SEGMENT_SOURCE__API_KEY": sim.token, "SOURCES__SEGMENT_SOURCE__BASE_URL": sim.url}


def test_the_demo_loads_all_seven_tables_without_a_token(tmp_path):
    result = run_script(tmp_path, "--demo")
    assert result.returncode == 0, result.stderr
    for table in TABLES:
        assert any(line.split()[:1] == [table] for line in result.stdout.splitlines()), table
    assert "segment_demo.duckdb" in result.stdout and "SELECT" in result.stdout
    with duckdb.connect(str(tmp_path / "segment_demo.duckdb"), read_only=True) as db:
        for table in TABLES:
            assert db.sql(f"SELECT count(*) FROM segment_data.{table}").fetchone()[0] > 0, table


def test_the_duckdb_file_goes_where_dlt_configuration_says(tmp_path):
    target = tmp_path / "elsewhere" / "mine.duckdb"
    target.parent.mkdir()
    with SegmentSimulator(generate_workspace("small")) as sim:
        result = run_script(
            tmp_path,
            "--resources",
            "sources",
            env={**simulator_env(sim), "DESTINATION__DUCKDB__CREDENTIALS": str(target)},
        )
    assert result.returncode == 0, result.stderr
    assert str(target) in result.stdout
    assert not (tmp_path / "segment_pipeline.duckdb").exists()
    with duckdb.connect(str(target), read_only=True) as db:
        assert db.sql("SELECT count(*) FROM segment_data.sources").fetchone()[0] == 6


def test_by_default_it_loads_your_workspace_into_segment_pipeline_duckdb(tmp_path):
    with SegmentSimulator(generate_workspace("small")) as sim:
        result = run_script(tmp_path, env=simulator_env(sim))
        ws = sim.workspace
    assert result.returncode == 0, result.stderr
    with duckdb.connect(str(tmp_path / "segment_pipeline.duckdb"), read_only=True) as db:
        assert db.sql("SELECT id FROM segment_data.workspace").fetchall() == [(ws.id,)]
        assert db.sql("SELECT count(*) FROM segment_data.destinations").fetchone()[0] == len(ws.ids("destinations"))


def test_unknown_resources_are_refused_with_the_valid_names_before_any_request(tmp_path):
    with SegmentSimulator(generate_workspace("small")) as sim:
        result = run_script(tmp_path, "--resources", "sources,audiences", env=simulator_env(sim))
        assert sim.requests == []
    assert result.returncode == 2
    assert "audiences" in result.stderr and "Valid names: " + ", ".join(TABLES) in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_token_says_exactly_where_to_put_it(tmp_path):
    result = run_script(tmp_path)
    assert result.returncode == 2
    assert "[sources.segment_source]" in result.stderr and ".dlt/secrets.toml" in result.stderr
    assert "SOURCES__SEGMENT_SOURCE__API_KEY" in result.stderr and "--demo" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_rejected_token_fails_fast_without_showing_the_token(tmp_path):
    with SegmentSimulator(generate_workspace("small")) as sim:
        wrong = "sgp_WRONG8c1d55a0bd0e4f6aTOKEN"
        result = run_script(tmp_path, env={**simulator_env(sim), "SOURCES__SEGMENT_SOURCE__API_KEY": wrong})
        assert len(sim.requests) == 1  # 401 is never retried
    assert result.returncode == 1
    assert "401" in result.stderr and "api_key" in result.stderr
    assert wrong not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_host_ends_with_one_clear_paragraph(tmp_path):
    env = {
        "SOURCES__SEGMENT_SOURCE__API_KEY": "sgp_unreachable",
        "SOURCES__SEGMENT_SOURCE__BASE_URL": "http://127.0.0.1:9",  # nothing listens on the discard port
        "RUNTIME__REQUEST_MAX_ATTEMPTS": "2",
        "RUNTIME__REQUEST_BACKOFF_FACTOR": "0.1",
    }
    result = run_script(tmp_path, env=env)
    assert result.returncode == 1
    assert "Could not reach the Segment API at http://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr and "sgp_unreachable" not in result.stderr


def test_it_loads_into_postgres_and_shows_where_without_the_password(tmp_path, postgres):
    with SegmentSimulator(generate_workspace("small")) as sim:
        env = {**simulator_env(sim), "DESTINATION__POSTGRES__CREDENTIALS": postgres.dsn}
        result = run_script(tmp_path, "--destination", "postgres", "--dataset-name", "script_pg", env=env)
    assert result.returncode == 0, result.stderr
    assert f"127.0.0.1:{postgres.port}" in result.stdout
    assert postgres_server.PASSWORD not in result.stdout + result.stderr


def test_missing_postgres_credentials_say_what_to_set(tmp_path):
    result = run_script(tmp_path, "--destination", "postgres", env={"SOURCES__SEGMENT_SOURCE__API_KEY": "tok"})
    assert result.returncode == 2
    assert "[destination.postgres]" in result.stderr and "DESTINATION__POSTGRES__CREDENTIALS" in result.stderr
    assert "Traceback" not in result.stderr


def test_full_refresh_reloads_from_scratch(tmp_path):
    with SegmentSimulator(generate_workspace("small")) as sim:
        env = simulator_env(sim)
        assert run_script(tmp_path, "--resources", "sources", env=env).returncode == 0
        sim.workspace.rename("sources", sim.workspace.ids("sources")[0], "Renamed")
        assert run_script(tmp_path, "--resources", "sources", env=env).returncode == 0
        with duckdb.connect(str(tmp_path / "segment_pipeline.duckdb"), read_only=True) as db:
            assert db.sql("SELECT count(*) FROM segment_data.sources_history").fetchone()[0] == 7
        result = run_script(tmp_path, "--resources", "sources", "--full-refresh", env=env)
    assert result.returncode == 0, result.stderr
    with duckdb.connect(str(tmp_path / "segment_pipeline.duckdb"), read_only=True) as db:
        assert db.sql("SELECT count(*) FROM segment_data.sources_history").fetchone()[0] == 6
