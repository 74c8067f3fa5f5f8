"""The GitHub Actions workflow's load, run as a fresh runner runs it: dlt's state comes back from PostgreSQL."""

import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Dict

import psycopg2
import yaml  # type: ignore[import-untyped]  # PyYAML ships no types

from segment_simulator import SegmentSimulator, generate_workspace

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / "pipelines" / "github-actions-segment.yml"
OVERLAP = timedelta(minutes=15)  # endpoints.Incremental.overlap: the audit trail is re-read that far back


def workflow_steps() -> Dict[str, Dict[str, Any]]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    return {step["name"]: step for step in workflow["jobs"]["load"]["steps"] if "name" in step}


def run_on_fresh_runner(command: str, env: Dict[str, str], runner: Path) -> subprocess.CompletedProcess:
    """The step's command in bash, `python` being this venv's, with an empty dlt working dir."""
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    full_env = {"PATH": path, "HOME": str(runner), "DLT_DATA_DIR": str(runner / "dlt"), **env}
    return subprocess.run(["bash", "-c", command], cwd=REPO, env=full_env, capture_output=True, text=True, timeout=600)


def test_the_workflow_pins_the_package_and_takes_secrets_only_from_github_secrets():
    steps = workflow_steps()
    assert '"segment-source[postgres]==' in steps["Install segment-source (pinned)"]["run"]
    load = steps["Load Segment into PostgreSQL"]
    assert "--destination postgres" in load["run"]
    assert load["env"]["SOURCES__SEGMENT_SOURCE__API_KEY"] == "${{ secrets.SEGMENT_API_TOKEN }}"
    assert load["env"]["DESTINATION__POSTGRES__CREDENTIALS"] == "${{ secrets.SEGMENT_POSTGRES_CREDENTIALS }}"


def test_a_runner_with_an_empty_working_dir_goes_on_from_the_state_kept_in_postgresql(tmp_path, postgres):
    database = f"wf_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(postgres.dsn)
    admin.autocommit = True  # CREATE DATABASE runs outside a transaction
    admin.cursor().execute(f"CREATE DATABASE {database}")
    admin.close()
    dsn = postgres.dsn.rsplit("/", 1)[0] + "/" + database
    load = workflow_steps()["Load Segment into PostgreSQL"]
    ws = generate_workspace("small")
    with SegmentSimulator(ws) as sim:
        env = {
            **{k: v for k, v in load["env"].items() if not v.startswith("${{")},
            "SOURCES__SEGMENT_SOURCE__API_KEY": sim.token,
            "SOURCES__SEGMENT_SOURCE__BASE_URL": sim.url,
            "DESTINATION__POSTGRES__CREDENTIALS": dsn,
        }
        first = run_on_fresh_runner(load["run"], env, tmp_path / "runner-1")
        assert first.returncode == 0, first.stderr
        loaded_newest = max(parse(e["timestamp"]) for e in ws.audit_events())
        renamed = ws.ids("sources")[0]
        ws.rename("sources", renamed, "renamed between runs")  # a new version and a new audit event
        sim.requests.clear()
        second = run_on_fresh_runner(load["run"], env, tmp_path / "runner-2")
        assert second.returncode == 0, second.stderr
        audit_requests = sim.requests_to("/audit-events")
    with psycopg2.connect(dsn) as db, db.cursor() as cursor:

        def one(sql: str) -> Any:
            cursor.execute(sql)
            return cursor.fetchone()

        events = len(ws.audit_events())
        assert one("SELECT count(*), count(DISTINCT id) FROM segment_data.audit_events") == (events, events)
        sources = len(ws.ids("sources"))
        assert one("SELECT count(*), count(valid_to) FROM segment_data.sources_history") == (sources + 1, 1), (
            "one new version of the renamed source, no duplicate of the others"
        )
    # without the state restored, the audit trail would be read again from 90 days ago
    starts = [parse(r.params["startTime"]) for r in audit_requests]
    assert starts and all(start >= loaded_newest - OVERLAP for start in starts), "the audit trail's cursor came back"


def parse(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
