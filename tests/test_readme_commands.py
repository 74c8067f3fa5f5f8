"""Every shell command of the README's ```bash blocks works as written, from a fresh clone.

How: the committed branch is cloned into a temporary directory, and each command runs there
with bash, as written, in the README's order. The others are accounted for in `ELSEWHERE`, each
with the test that runs it or why it cannot run here: the install (pip would rebuild this very
environment), the test run (this test is part of it), recipes that need what only a user has
(their own table, an orchestrator installed from the internet) and commands that serve until
stopped. Instead
of installing, the clone's `.venv` is a symlink to the virtual environment running this test,
so `.venv/bin/segment-pipeline` and `.venv/bin/python` exist as after the install; with
`PYTHONPATH=<clone>` they import the clone's code, not this checkout's (checked first). Commands
that load a real workspace get a simulator's token and URL in the environment, as a user's
`.dlt/secrets.toml` would give them; `--destination postgres` gets the test PostgreSQL server.
Uncommitted changes are not in the clone: commit, then run this test.
"""

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

from segment_simulator import ConfigApiSimulator, SegmentSimulator, generate_workspace

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
COMMANDS = [
    line.strip()
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    for line in block.splitlines()
    if line.strip() and not line.strip().startswith("#")
]
ELSEWHERE = {
    'python3 -m venv .venv && .venv/bin/pip install -e ".[dev]"': ".ci/run installs exactly this on a fresh clone",
    ".venv/bin/python -m pytest": "the command running this test",
    # the alert recipe is one shell block: tests/test_changes.py runs it whole, under bash, against a webhook
    ".venv/bin/python pipelines/segment_pipeline.py --changes-json changes.json": "tests/test_changes.py",
    'if .venv/bin/python -c \'import json, sys; s = json.load(open("changes.json")); sys.exit(not (s["created"] or'
    ' s["updated"] or s["deleted"]))\'; then': "tests/test_changes.py",
    "curl -sS -X POST -H 'Content-Type: application/json' --data @changes.json \"$CHANGES_WEBHOOK_URL\"": (
        "tests/test_changes.py"
    ),
    "fi": "tests/test_changes.py",
    # orchestrators, installed from package indexes a user reaches
    'pip install "segment-source[dagster]"     # dagster 1.13.27 and dagster-webserver, pinned': (
        ".ci/run installs the dagster extra; tests/test_dagster.py"
    ),
    "dagster dev -m segment_source.dagster": "serves until stopped; tests/test_dagster.py validates the module",
    'pip install "apache-airflow==3.3.2" --constraint \\': "benchmarks/airflow_check.sh (too slow for CI)",
    '"https://raw.githubusercontent.com/apache/airflow/constraints-3.3.2/constraints-3.11.txt"': (
        "benchmarks/airflow_check.sh"
    ),
    'pip install "segment-source[postgres]==0.1.0"': "benchmarks/airflow_check.sh",
    'cp pipelines/airflow_segment_dag.py "$AIRFLOW_HOME/dags/"': "benchmarks/airflow_check.sh",
    # the user's own table, query or file
    ".venv/bin/python pipelines/segment_tracking.py --table user_traits --call identify --key user_id": (
        "tests/test_tracking.py sends a table"
    ),
    '.venv/bin/python pipelines/segment_tracking.py --query "SELECT ... FROM analytics.orders" --call track': (
        "tests/test_tracking.py sends a query"
    ),
    ".venv/bin/python pipelines/segment_tracking.py --jsonl events.jsonl   # a type column says the call": (
        "tests/test_tracking.py"
    ),
    ".venv/bin/python -m segment_simulator --size medium --port 8765 --fault-rate 0.05 --latency-ms 50"
    " --rate-limit 600": "serves until stopped; tests/simulator/test_cli.py starts it and asks it",
}
SKIPPED = list(ELSEWHERE)
# what each command must print (stdout): its promise, in its own words
EXPECTED = {
    ".venv/bin/segment-pipeline --demo": "Your data: DuckDB file {clone}/segment_demo.duckdb",
    ".venv/bin/segment-pipeline                          # into ./segment_pipeline.duckdb": (
        "Your data: DuckDB file {clone}/segment_pipeline.duckdb"
    ),
    ".venv/bin/segment-pipeline --destination postgres   # or snowflake": "Your data: PostgreSQL database postgres",
    ".venv/bin/segment-pipeline --config-api          # into ./segment_pipeline_config_api.duckdb": (
        "Your data: DuckDB file {clone}/segment_pipeline_config_api.duckdb"
    ),
    ".venv/bin/segment-pipeline --config-api --demo   # the simulator serves this API too": (
        "Your data: DuckDB file {clone}/segment_demo_config_api.duckdb"
    ),
    ".venv/bin/python -c \"import duckdb; print(duckdb.connect('segment_demo.duckdb', read_only=True)"
    ".sql('SELECT name, enabled FROM segment_data.sources LIMIT 5'))\"": "enabled",
    ".venv/bin/python pipelines/segment_map.py --output map.html        # what segment_pipeline.py loaded": (
        "Wrote map.html"
    ),
    ".venv/bin/python pipelines/segment_map.py --destination postgres --dataset-name segment_data --output map.html": (
        "Wrote map.html"
    ),
    ".venv/bin/python pipelines/segment_map.py --demo --output map.html  # after segment_pipeline.py --demo": (
        "Wrote map.html"
    ),
    ".venv/bin/python pipelines/segment_tracking.py --demo   # the example above, into a simulator: no write key"
    " needed": "Demo: traits of 200 shop users",
}


def test_the_readme_commands_are_all_accounted_for():
    assert all(command in COMMANDS for command in SKIPPED), "the skipped commands are still in the README"
    assert sorted(set(COMMANDS) - set(SKIPPED)) == sorted(EXPECTED), "a README command without an expectation"


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    branch = subprocess.run(
        ["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    target = tmp_path_factory.mktemp("fresh") / "segment-source"
    subprocess.run(["git", "clone", "-q", "--branch", branch, str(REPO), str(target)], check=True)
    (target / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    return target


def environment(clone: Path, extra: Dict[str, str]) -> Dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SOURCES__", "DESTINATION__", "PYTEST_", "VIRTUAL_ENV")) and k != "DLT_DATA_DIR"
    }
    env.update(PYTHONPATH=str(clone), RUNTIME__DLTHUB_TELEMETRY="false", **extra)
    return env


def test_the_clone_runs_its_own_code(clone):
    probe = '.venv/bin/python -c "import segment_source; print(segment_source.__file__)"'
    result = subprocess.run(
        ["bash", "-c", probe], cwd=clone, env=environment(clone, {}), capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == str(clone / "segment_source" / "__init__.py")


def test_every_readme_command_works_from_a_fresh_clone(clone, postgres):
    with SegmentSimulator(generate_workspace("small")) as sim, ConfigApiSimulator(generate_workspace("small")) as old:
        workspace = {
            "SOURCES__SEGMENT_SOURCE__API_KEY": sim.token,
            "SOURCES__SEGMENT_SOURCE__BASE_URL": sim.url,
            "SOURCES__SEGMENT_CONFIG_API__ACCESS_TOKEN": old.token,
            "SOURCES__SEGMENT_CONFIG_API__WORKSPACE": old.workspace.slug,
            "SOURCES__SEGMENT_CONFIG_API__BASE_URL": old.url,
            "DESTINATION__POSTGRES__CREDENTIALS": postgres.dsn,
        }
        for command in COMMANDS:
            if command in SKIPPED:
                continue
            result = subprocess.run(
                ["bash", "-c", command],
                cwd=clone,
                env=environment(clone, workspace),
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])
            assert EXPECTED[command].format(clone=clone) in result.stdout, (command, result.stdout[-2000:])
            assert "Traceback" not in result.stderr, (command, result.stderr)
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    written = [line for line in status.stdout.splitlines() if line != "?? .venv"]  # the symlink above
    assert written == [], "every file a run writes is git-ignored"
