"""`segment-pipeline` (and `python pipelines/segment_pipeline.py`): what a user runs, run as a user runs it."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional

import duckdb

from segment_simulator import SegmentSimulator, generate_workspace
from tests import postgres_server
from tests.support import CORE_TABLES

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "pipelines" / "segment_pipeline.py"
COMMAND = Path(sys.executable).with_name("segment-pipeline")  # the console script pip installed
TABLES = list(CORE_TABLES)


def run_script(
    tmp_path: Path, *args: str, env: Optional[Dict[str, str]] = None, dlt_data_dir: bool = True
) -> subprocess.CompletedProcess:
    """Run the script in `tmp_path` (so files land there), with a private dlt data dir unless told not to."""
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__")) and k != "DLT_DATA_DIR"
    }
    if dlt_data_dir:
        full_env["DLT_DATA_DIR"] = str(tmp_path / "dlt")
    full_env.update(RUNTIME__DLTHUB_TELEMETRY="false", **(env or {}))
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=600
    )


def scalar(db: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = db.sql(sql).fetchone()
    assert row is not None
    return row[0]


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
            assert scalar(db, f"SELECT count(*) FROM segment_data.{table}") > 0, table


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
        assert scalar(db, "SELECT count(*) FROM segment_data.sources") == 6


def test_by_default_it_loads_your_workspace_into_segment_pipeline_duckdb(tmp_path):
    with SegmentSimulator(generate_workspace("small")) as sim:
        result = run_script(tmp_path, env=simulator_env(sim))
        ws = sim.workspace
    assert result.returncode == 0, result.stderr
    with duckdb.connect(str(tmp_path / "segment_pipeline.duckdb"), read_only=True) as db:
        assert db.sql("SELECT id FROM segment_data.workspace").fetchall() == [(ws.id,)]
        assert scalar(db, "SELECT count(*) FROM segment_data.destinations") == len(ws.ids("destinations"))


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
    assert result.stderr.count("rejected the API token") == 1, result.stderr
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
    assert result.stderr.count("Could not reach the Segment API at http://127.0.0.1:9") == 1, result.stderr
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


def history_rows(path: Path, table: str) -> int:
    with duckdb.connect(str(path), read_only=True) as db:
        return scalar(db, f"SELECT count(*) FROM segment_data.{table}")


def test_full_refresh_refuses_to_drop_history_and_says_what_it_would_drop(tmp_path):
    with SegmentSimulator(generate_workspace("small")) as sim:
        env = simulator_env(sim)
        assert run_script(tmp_path, "--resources", "sources,destinations", env=env).returncode == 0
        sim.workspace.rename("sources", sim.workspace.ids("sources")[0], "Renamed")
        assert run_script(tmp_path, "--resources", "sources,destinations", env=env).returncode == 0
        requests_before = len(sim.requests)
        result = run_script(tmp_path, "--resources", "sources", "--full-refresh", env=env)
        assert len(sim.requests) == requests_before, "nothing was requested"
    assert result.returncode == 2, result.stdout + result.stderr
    assert "sources_history" in result.stderr and "--drop-history" in result.stderr
    assert "sources__write_keys" in result.stderr and "destinations" not in result.stderr
    assert "Traceback" not in result.stderr
    assert history_rows(tmp_path / "segment_pipeline.duckdb", "sources_history") == 7, "nothing was dropped"


def test_full_refresh_reloads_only_the_named_resources_and_keeps_the_others_history(tmp_path):
    with SegmentSimulator(generate_workspace("small")) as sim:
        env = simulator_env(sim)
        ws = sim.workspace
        assert run_script(tmp_path, "--resources", "sources,destinations", env=env).returncode == 0
        ws.rename("sources", ws.ids("sources")[0], "Renamed")
        ws.rename("destinations", ws.ids("destinations")[0], "Renamed too")
        assert run_script(tmp_path, "--resources", "sources,destinations", env=env).returncode == 0
        database = tmp_path / "segment_pipeline.duckdb"
        destination_versions = history_rows(database, "destinations_history")
        assert destination_versions == len(ws.ids("destinations")) + 1
        assert history_rows(database, "sources_history") == len(ws.ids("sources")) + 1
        result = run_script(tmp_path, "--resources", "sources", "--full-refresh", "--drop-history", env=env)
    assert result.returncode == 0, result.stderr
    assert "Full refresh: dropping sources, " in result.stderr and "sources_history" in result.stderr
    assert "destinations" not in result.stderr
    assert history_rows(database, "sources_history") == len(ws.ids("sources")), "history starts again"
    assert history_rows(database, "destinations_history") == destination_versions, "other tables are kept"
    assert "segment_data.sources" in result.stdout  # the query it suggests runs on what is there


def test_drop_history_alone_is_a_usage_error(tmp_path):
    result = run_script(tmp_path, "--drop-history")
    assert result.returncode == 2 and "--drop-history only confirms a --full-refresh" in result.stderr


def test_two_checkouts_each_get_their_own_duckdb_file_and_state(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    with SegmentSimulator(generate_workspace("small")) as sim:
        env = simulator_env(sim)
        assert run_script(first, "--resources", "sources", env=env, dlt_data_dir=False).returncode == 0
        sim.workspace.rename("sources", sim.workspace.ids("sources")[0], "Renamed")
        result = run_script(second, "--resources", "sources", env=env, dlt_data_dir=False)
        assert result.returncode == 0, result.stderr
        for checkout in (first, second):
            assert (checkout / ".dlt" / "pipelines" / "segment_pipeline").is_dir(), "state under the checkout"
            assert history_rows(checkout / "segment_pipeline.duckdb", "sources_history") == 6, "a history of its own"
        # one pipelines dir for both, as dlt's per-user default would be: the file still lands where the run is
        shared = ["--resources", "sources", "--pipelines-dir", str(tmp_path / "shared")]
        assert run_script(first, *shared, env=env, dlt_data_dir=False).returncode == 0
        moved = run_script(second, *shared, env=env, dlt_data_dir=False)
    assert moved.returncode == 0, moved.stderr
    assert f"DuckDB file {second / 'segment_pipeline.duckdb'}" in result.stdout
    assert f"DuckDB file {second / 'segment_pipeline.duckdb'}" in moved.stdout


def test_the_console_command_is_installed_and_its_help_lists_every_option(tmp_path):
    result = subprocess.run([str(COMMAND), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for option in ("--destination", "--dataset-name", "--resources", "--full-refresh", "--drop-history"):
        assert option in result.stdout
    for option in ("--pipelines-dir", "--demo", "--config-api", "Exit codes"):
        assert option in result.stdout


def test_help_and_usage_errors_answer_before_dlt_is_imported():
    probe = (
        "import sys\n"
        "from segment_source import cli\n"
        "for argv in (['--help'], ['--destination', 'bigquery']):\n"
        "    try:\n"
        "        cli.main(argv)\n"
        "    except SystemExit as ex:\n"
        "        print('exit', ex.code)\n"
        "print('dlt imported' if 'dlt' in sys.modules else 'dlt not imported')\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stdout.splitlines()[-3:] == ["exit 0", "exit 2", "dlt not imported"], result.stdout + result.stderr
