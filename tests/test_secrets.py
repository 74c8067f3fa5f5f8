"""No secret the API served, whatever its name or shape, and never the token or the fingerprint key,
lands in a table (dataset, staging, dlt's own), the state, the trace, a log or a file on disk."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import dlt
import pytest
from dlt.common.versioned_state import decompress_state

from segment_simulator import SegmentSimulator, demo_workspace, generate_workspace
from segment_simulator.canaries import plant_canaries
from segment_source import ENDPOINTS, segment_source
from segment_source.endpoints import BY_TABLE
from segment_source.errors import ConfigurationError
from segment_source.redaction import fingerprint, redact_item, token_key
from tests.support import DESTINATIONS, load, make_pipeline, real_destination, rows

TOKEN = "sgp_TEST9f3b2c71e04d4a5f8b6cTOKEN"
REPO = Path(__file__).resolve().parents[1]
ALL_TABLES = [e.table for e in ENDPOINTS]  # the default surface and the opt-in tables
SETTINGS_KINDS = ("sources", "destinations", "warehouses", "subscriptions", "transformations")


def all_loaded_text(pipeline) -> str:
    """Every value of every table of the pipeline's schema (child and dlt tables included), as text."""
    chunks = []
    for table in pipeline.default_schema.tables:
        for row in rows(pipeline, f"SELECT * FROM {{{table}}}"):
            chunks.append(json.dumps(row, default=str, ensure_ascii=False))
    return "\n".join(chunks)


def everything_stored(pipeline: dlt.Pipeline, tmp_path: Path) -> Dict[str, str]:
    """Where a run can leave text, by place: every table of the dataset and of `<dataset>_staging`
    (as the database lists them, dlt's `_dlt_*` tables included), the decoded pipeline state (as
    loaded and as kept locally), the trace, and every file under `tmp_path` (the pipelines
    directory with its load packages and the DuckDB file), gzip decompressed."""
    places = {}
    schemas = (pipeline.dataset_name, pipeline.dataset_name + "_staging")
    with pipeline.sql_client() as client:
        tables = client.execute_sql(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema IN (%s, %s)",
            *schemas,
        )
        for schema, table in tables or []:
            found = client.execute_sql(f'SELECT * FROM "{schema}"."{table}"') or []
            places[f"{schema}.{table}"] = "\n".join(json.dumps(list(r), default=str, ensure_ascii=False) for r in found)
    for (state,) in rows(pipeline, "SELECT state FROM {_dlt_pipeline_state}"):
        places["_dlt_pipeline_state (decoded)"] = json.dumps(decompress_state(state), default=str)
    places["pipeline.state"] = json.dumps(pipeline.state, default=str)
    trace = pipeline.last_trace
    assert trace is not None
    places["trace"] = json.dumps(trace.asdict(), default=str)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            gzipped = data[:2] == b"\x1f\x8b"
            text = (gzip.decompress(data) if gzipped else data).decode("utf-8", "replace")
            places[f"{path.relative_to(tmp_path)}{' (gzip)' if gzipped else ''}"] = text
    return places


def settings_of(value: Any) -> Any:
    return value if isinstance(value, (dict, list)) or value is None else json.loads(value)


@pytest.fixture(scope="module", params=DESTINATIONS)
def canaries_loaded(request, tmp_path_factory):
    """A small workspace with a canary planted in every place a secret can hide, every table loaded
    (the default surface and the opt-in ones) into each destination. The two tests below only read
    what it left (they run in one worker)."""
    tmp_path = tmp_path_factory.mktemp("canaries")
    destination = real_destination(request.param, tmp_path, request)
    pipeline = make_pipeline(destination, tmp_path)
    ws = generate_workspace("small")
    canaries = plant_canaries(ws)
    served = json.dumps(
        [ws.listing(kind) for kind in SETTINGS_KINDS] + [ws.get("functions", f) for f in ws.ids("functions")]
    )
    with SegmentSimulator(ws, token=TOKEN) as sim:
        load(pipeline, sim, *ALL_TABLES)
        secrets = sim.secret_values()  # the catalog's (write keys, settings, code) and the canaries
    return pipeline, tmp_path, ws, canaries, served, secrets


reads_canaries = pytest.mark.xdist_group("canaries_loaded")


@reads_canaries
def test_no_canary_of_any_name_or_shape_lands_anywhere(canaries_loaded):
    pipeline, tmp_path, _, canaries, served, secrets = canaries_loaded
    assert {c.value for c in canaries} <= set(secrets)
    assert [c.kind for c in canaries if c.value not in served] == [], "every canary is served"
    places = everything_stored(pipeline, tmp_path)
    # the scan reads what it should: masked rows, the staging dataset, the gzipped load packages
    assert any("<redacted:" in text for text in places.values())
    assert any(place.startswith(pipeline.dataset_name + "_staging.") for place in places)
    assert any(place.endswith("(gzip)") and "<redacted:" in text for place, text in places.items())
    leaked = sorted({(c.kind, c.where, place) for c in canaries for place, text in places.items() if c.value in text})
    assert leaked == []
    assert [place for place, text in places.items() if any(s in text for s in secrets)] == []
    key = token_key(TOKEN)
    assert [place for place, text in places.items() if TOKEN in text or key in text] == []


@reads_canaries
def test_the_non_secret_values_users_query_are_still_there(canaries_loaded):
    pipeline, _, ws, canaries, _, _ = canaries_loaded
    kept = ("region", "stream", "bucket", "roleAddress", "measurementId", "portalId", "appId", "endpoint", "channels")
    loaded = {i: settings_of(s) for i, s in rows(pipeline, "SELECT id, settings FROM {destinations}")}
    expected = [(d["id"], k, d["settings"][k]) for d in ws.listing("destinations") for k in kept if k in d["settings"]]
    assert {"region", "channels", "endpoint"} <= {k for _, k, _ in expected}
    assert [(i, k, loaded[i].get(k)) for i, k, _ in expected] == expected
    # around the canaries: the structure and its non-secret parts
    planted = loaded[ws.listing("destinations")[0]["id"]]
    assert planted["connections"][0]["region"] == "us-east-1" and planted["args"][:3] == [
        "--host",
        "db.internal",
        "--password",
    ]
    assert planted["dsn"].startswith("host=db.internal port=5432 dbname=app user=loader password=<redacted:")
    assert (
        planted["databaseUrl"].endswith("@db.example.com:5432/app")
        and planted["extraHeaders"]["Accept"] == "application/json"
    )
    assert [c for c in canaries if c.value in json.dumps(planted)] == []
    # the Actions mappings, the webhook URL (no credentials in it) and the method
    subscriptions = {
        i: settings_of(s) for i, s in rows(pipeline, "SELECT id, settings FROM {destination_subscriptions}")
    }
    for item in ws.listing("subscriptions"):
        for key, value in item["settings"].items():
            if isinstance(value, dict) and "@path" in value or key in ("url", "method"):
                assert subscriptions[item["id"]][key] == value, key
    # warehouse names and hosts, transformations' renames and allowed properties, ids
    for item in ws.listing("warehouses"):
        (settings,) = rows(pipeline, "SELECT settings FROM {warehouses} WHERE id = %s", item["id"])[0]
        names = ("name", "hostname", "database", "port", "account", "project")
        assert {k: v for k, v in settings_of(settings).items() if k in names} == {
            k: v for k, v in item["settings"].items() if k in names
        }
    transformations = rows(pipeline, "SELECT id, property_renames, allow_properties FROM {transformations}")
    loaded_renames = {i: (settings_of(r), settings_of(a)) for i, r, a in transformations}
    served = {t["id"]: (t.get("propertyRenames"), t.get("allowProperties")) for t in ws.listing("transformations")}
    assert loaded_renames == served and any(r for r, _ in served.values())
    code = "\n".join(c for (c,) in rows(pipeline, "SELECT code FROM {function_code}"))
    assert "event: 'Order Synced'" in code and "'https://api.example.com/v1/events'" in code
    assert {i for (i,) in rows(pipeline, "SELECT id FROM {sources}")} == set(ws.ids("sources"))


def test_a_weak_password_cannot_be_tested_against_its_fingerprint_from_the_warehouse_alone(tmp_path):
    pipeline = make_pipeline(dlt.destinations.duckdb(str(tmp_path / "w.duckdb")), tmp_path)
    ws = generate_workspace("small")
    warehouse = ws.listing("warehouses")[0]
    ws.update("warehouses", warehouse["id"], settings=dict(warehouse["settings"], password="hunter2"))
    with SegmentSimulator(ws, token=TOKEN) as sim:
        load(pipeline, sim)
    (settings,) = rows(pipeline, "SELECT settings FROM {warehouses} WHERE id = %s", warehouse["id"])[0]
    masked = settings_of(settings)["password"]
    # an attacker with the warehouse tries every value it holds as the key, with common passwords
    candidates = {ws.id, pipeline.dataset_name}
    for text in all_loaded_text(pipeline).splitlines():
        candidates.update(str(v) for v in json.loads(text) if v is not None)
    guesses = ("123456", "password", "qwerty", "letmein", "hunter2")
    assert [(g, k) for g in guesses for k in candidates if masked == f"<redacted:{fingerprint(g, k)}>"] == []
    assert masked == f"<redacted:{fingerprint('hunter2', token_key(TOKEN))}>", "the token's key does reproduce it"


def test_each_workspace_fingerprints_with_a_key_from_its_own_token(tmp_path):
    pipeline = make_pipeline(dlt.destinations.duckdb(str(tmp_path / "w.duckdb")), tmp_path)
    workspaces = {"sgp_token_one": generate_workspace("small", slug="one"), "sgp_token_two": demo_workspace()}
    for ws in workspaces.values():
        ws.update("sources", ws.ids("sources")[0], settings={"pwd": "same-password"})
    with SegmentSimulator(workspaces) as sim:
        pipeline.run(segment_source(api_key=list(workspaces), base_url=sim.url).with_resources("workspace", "sources"))
    for token, ws in workspaces.items():
        (settings,) = rows(pipeline, "SELECT settings FROM {sources} WHERE id = %s", ws.ids("sources")[0])[0]
        assert settings_of(settings)["pwd"] == f"<redacted:{fingerprint('same-password', token_key(token))}>"


def test_a_rotated_token_changes_each_fingerprint_once_unless_fingerprint_key_is_set(tmp_path):
    def history_versions(pipeline):
        return rows(pipeline, "SELECT count(*) FROM {destinations_history}")[0][0]

    for fingerprint_key, new_versions in ((None, "one per destination with secrets"), ("fixed-key", "none")):
        pipeline = make_pipeline(dlt.destinations.duckdb(str(tmp_path / f"{new_versions}.duckdb")), tmp_path)
        ws = generate_workspace("small")
        kwargs = {"fingerprint_key": fingerprint_key} if fingerprint_key else {}
        for token in ("sgp_old_token", "sgp_rotated_token"):
            with SegmentSimulator(ws, token=token) as sim:
                load(pipeline, sim, "destinations", **kwargs)
            if token == "sgp_old_token":
                before = history_versions(pipeline)
        with_masked = sum("<redacted:" in json.dumps(masked(d)) for d in ws.listing("destinations"))
        assert with_masked > 0
        assert history_versions(pipeline) - before == (with_masked if fingerprint_key is None else 0), new_versions


def masked(destination):
    return redact_item(destination, BY_TABLE["destinations"], "any key")["settings"]


def test_keep_settings_loads_the_listed_paths_unmasked_and_refuses_unknown_ones(tmp_path, monkeypatch):
    pipeline = make_pipeline(dlt.destinations.duckdb(str(tmp_path / "k.duckdb")), tmp_path)
    monkeypatch.setenv("SOURCES__SEGMENT_SOURCE__KEEP_SETTINGS", "destinations.settings.stream,sources.settings.pwd")
    ws = generate_workspace("small")
    kinesis = next(d for d in ws.listing("destinations") if "secretId" in d["settings"])
    ws.update("destinations", kinesis["id"], settings=dict(kinesis["settings"], stream="kept stream=1;x"))
    with SegmentSimulator(ws) as sim:
        load(pipeline, sim, "destinations")
        (settings,) = rows(pipeline, "SELECT settings FROM {destinations} WHERE id = %s", kinesis["id"])[0]
        assert settings_of(settings)["stream"] == "kept stream=1;x"
        assert settings_of(settings)["secretId"].startswith("<redacted:")
        monkeypatch.setenv("SOURCES__SEGMENT_SOURCE__KEEP_SETTINGS", "destinations.name")
        with pytest.raises(ConfigurationError, match="keep_settings names 'destinations.name'"):
            segment_source(api_key=sim.token, base_url=sim.url)


def test_the_token_canaries_and_the_fingerprint_key_are_not_logged_even_at_debug_level(tmp_path):
    ws = generate_workspace("small")
    canaries = plant_canaries(ws)
    with SegmentSimulator(ws, token=TOKEN) as sim:
        env = dict(
            os.environ,
            RUNTIME__LOG_LEVEL="DEBUG",
            SOURCES__SEGMENT_SOURCE__API_KEY=TOKEN,
            SOURCES__SEGMENT_SOURCE__BASE_URL=sim.url,
            DESTINATION__DUCKDB__CREDENTIALS=str(tmp_path / "debug.duckdb"),
            DLT_DATA_DIR=str(tmp_path / "dlt"),
        )
        result = subprocess.run(
            [
                sys.executable,
                str(REPO / "pipelines" / "segment_pipeline.py"),
                "--resources",
                "workspace,sources,destinations,warehouses,function_code",
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Making GET request" in output, "DEBUG logging was on"
    assert TOKEN not in output and token_key(TOKEN) not in output
    assert [c.kind for c in canaries if c.value in output] == []
