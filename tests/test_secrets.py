"""No secret the API served, and never the token, lands in a table, a log, a trace or the state."""

import json
import os
import subprocess
import sys
from pathlib import Path

from segment_simulator import SegmentSimulator, generate_workspace
from segment_source import ENDPOINTS
from tests.support import load, rows

TOKEN = "sgp_TEST9f3b2c71e04d4a5f8b6cTOKEN"
REPO = Path(__file__).resolve().parents[1]


def all_loaded_text(pipeline) -> str:
    """Every value of every table (child and dlt tables included), as text."""
    chunks = []
    for table in pipeline.default_schema.tables:
        for row in rows(pipeline, f"SELECT * FROM {{{table}}}"):
            chunks.append(json.dumps(row, default=str, ensure_ascii=False))
    return "\n".join(chunks)


def test_no_secret_the_api_served_appears_in_any_loaded_table(pipeline, tmp_path):
    with SegmentSimulator(generate_workspace("small"), token=TOKEN) as sim:
        load(pipeline, sim, *(e.table for e in ENDPOINTS))  # every resource, the opt-in ones too
        secrets = sim.secret_values()
        kinds = ("sources", "destinations", "warehouses", "subscriptions", "transformations")
        served = {kind: json.dumps(sim.workspace.listing(kind)) for kind in kinds}
        served["function code"] = json.dumps(
            [sim.workspace.get("functions", f) for f in sim.workspace.ids("functions")]
        )
    # the secrets hide everywhere the API puts them: write keys, settings, hashing keys, code
    for kind, listing in served.items():
        assert any(secret in listing for secret in secrets), kind
    text = all_loaded_text(pipeline)
    assert "<redacted:" in text
    leaked = [s for s in secrets if s in text]
    assert leaked == []
    assert TOKEN not in text


def test_the_token_never_reaches_the_trace_the_state_or_the_load_packages(pipeline, tmp_path):
    with SegmentSimulator(generate_workspace("small"), token=TOKEN) as sim:
        load(pipeline, sim)
    assert TOKEN not in json.dumps(pipeline.last_trace.asdict(), default=str)
    assert TOKEN not in json.dumps(pipeline.state, default=str)
    on_disk = [p for p in (tmp_path / "pipelines").rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert on_disk == []


def test_the_token_is_not_logged_even_at_debug_level(tmp_path):
    with SegmentSimulator(generate_workspace("small"), token=TOKEN) as sim:
        env = dict(
            os.environ,
            RUNTIME__LOG_LEVEL="DEBUG",
            SOURCES__SEGMENT_SOURCE__API_KEY=TOKEN,
            SOURCES__SEGMENT_SOURCE__BASE_URL=sim.url,
            DESTINATION__DUCKDB__CREDENTIALS=str(tmp_path / "debug.duckdb"),
            DLT_DATA_DIR=str(tmp_path / "dlt"),
        )
        result = subprocess.run(
            [sys.executable, str(REPO / "pipelines" / "segment_pipeline.py"), "--resources", "workspace,sources"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Making GET request" in output, "DEBUG logging was on"
    assert TOKEN not in output
