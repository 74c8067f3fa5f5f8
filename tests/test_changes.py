"""The change feed: every created, updated and deleted object of a run, once, in `changes` and in its JSON."""

import http.server
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Dict, List, cast

import dlt
import pytest
import sqlglot
from dlt.common.schema.utils import get_nested_tables
from dlt.destinations.impl.snowflake.snowflake import SnowflakeMergeJob
from dlt.destinations.job_client_impl import SqlJobClientBase

from segment_simulator import SegmentSimulator, generate_workspace
from segment_source import segment_source
from segment_source.changes import (
    CHANGE_COLUMNS,
    CHANGE_KEY,
    CHANGES_TABLE,
    EPOCH,
    Change,
    ChangeFeed,
    history_endpoints,
    record_changes,
)
from segment_source.endpoints import BY_TABLE
from tests.support import CURRENT_TABLES, DESTINATIONS, load, make_pipeline, real_destination, rows
from tests.test_pipeline_script import REPO, run_script, simulator_env
from tests.test_readme import README
from tests.test_snowflake import FAKE_CREDENTIALS

FEED = "SELECT table_name, object_id, change, fields_changed FROM {changes} WHERE NOT initial_load"


def as_set(summary_json):
    return {
        (c["table_name"], c["object_id"], c["change"], ",".join(c["fields_changed"]) or None)
        for c in summary_json["changes"]
    }


def edit_workspace(ws):
    """Create, rename, change settings and delete objects of several kinds; return the changes a
    person would expect: (table, object id, change, fields changed)."""
    space = ws.add("spaces")
    source = ws.ids("sources")[0]
    ws.rename("sources", source, "Checkout (renamed)")
    function = ws.ids("functions")[0]
    ws.rename("functions", function, "Enrich orders v2")
    warehouse = ws.ids("warehouses")[0]
    ws.rename("warehouses", warehouse, "Analytics warehouse")
    destination = next(d for d in ws.listing("destinations") if "secretId" in d["settings"])
    ws.update("destinations", destination["id"], settings=dict(destination["settings"], secretId=ws.new_secret()))
    user = ws.ids("users")[0]
    ws.delete("users", user)
    plan = ws.ids("tracking_plans")[0]
    rule = next(r for r in ws.rules(plan) if r["type"] == "TRACK")
    deleted_rules = [r for r in ws.rules(plan) if r["type"] == "TRACK" and r["key"] == rule["key"]]
    ws.delete_rule(plan, "TRACK", rule["key"])
    return {
        ("spaces", space["id"], "created", None),
        ("sources", source, "updated", "name"),
        ("functions", function, "updated", "display_name"),
        ("warehouses", warehouse, "updated", "settings.name"),
        ("destinations", destination["id"], "updated", "settings.secretId"),
        ("users", user, "deleted", None),
        ("tracking_plans", plan, "updated", "updated_at"),
        *{("tracking_plan_rules", f"{plan}:TRACK:{r['key']}:{r['version']}", "deleted", None) for r in deleted_rules},
    }


def history_versions(pipeline):
    """Versions in all the history tables: what a first load records as initial changes."""
    return sum(rows(pipeline, f"SELECT count(*) FROM {{{t}_history}}")[0][0] for t in CURRENT_TABLES)


def test_the_first_load_is_recorded_as_initial_and_alerts_on_nothing(pipeline, simulator):
    load(pipeline, simulator)
    summary = record_changes(pipeline)
    assert (summary.created, summary.updated, summary.deleted) == (0, 0, 0)
    assert summary.to_json()["changes"] == []
    versions = history_versions(pipeline)
    assert summary.initial == versions > 100
    assert rows(pipeline, "SELECT change, initial_load, count(*) FROM {changes} GROUP BY change, initial_load") == [
        ("created", True, versions)
    ]


def test_a_feed_that_fails_halfway_records_nothing_and_the_next_call_records_it_all(pipeline, simulator, monkeypatch):
    load(pipeline, simulator)
    read, table_changes = [], ChangeFeed.table_changes

    def failing_third(feed, endpoint, *args):
        read.append(endpoint.table)
        if len(read) == 3:
            raise RuntimeError("the warehouse went away")
        return table_changes(feed, endpoint, *args)

    monkeypatch.setattr(ChangeFeed, "table_changes", failing_third)
    with pytest.raises(Exception, match="the warehouse went away"):
        record_changes(pipeline)
    assert len(read) == 3  # two tables' changes were already on their way to dlt
    assert CHANGES_TABLE not in pipeline.default_schema.data_table_names(seen_data_only=True)
    monkeypatch.undo()
    summary = record_changes(pipeline)
    versions = history_versions(pipeline)
    assert summary.initial == versions
    assert rows(pipeline, "SELECT count(*), count(DISTINCT _dlt_load_id) FROM {changes}") == [(versions, 1)]


@pytest.fixture(scope="module", params=DESTINATIONS)
def edited(request, tmp_path_factory):
    """Into each destination: a first load, edits in the workspace, a second load, each run's feed
    recorded. The pipeline, the simulator, the changes a person expects and the second run's summary;
    the tests of `edited` go on from there (they run in one worker)."""
    tmp_path = tmp_path_factory.mktemp("edited")
    pipeline = make_pipeline(real_destination(request.param, tmp_path, request), tmp_path)
    with SegmentSimulator(generate_workspace("small")) as simulator:
        load(pipeline, simulator)
        record_changes(pipeline)
        expected = edit_workspace(simulator.workspace)
        load(pipeline, simulator)
        yield pipeline, simulator, expected, record_changes(pipeline)


after_edits = pytest.mark.xdist_group("edited")


@after_edits
def test_edits_between_runs_are_found_exactly_in_the_feed_and_its_json(edited):
    pipeline, _, expected, summary = edited
    assert as_set(summary.to_json()) == expected
    assert set(rows(pipeline, FEED)) == expected  # a rerun without changes (below) adds nothing to it
    counts = {kind: sum(1 for e in expected if e[2] == kind) for kind in ("created", "updated", "deleted")}
    assert (summary.created, summary.updated, summary.deleted) == tuple(counts.values())
    assert summary.describe().startswith(
        f"Changes since the last run: {counts['created']} created, {counts['updated']} updated,"
        f" {counts['deleted']} deleted"
    )


@after_edits
def test_a_change_names_the_object_the_run_and_who_did_it(edited):
    pipeline, simulator, expected, _ = edited
    ws = simulator.workspace
    (source,) = [i for t, i, _, _ in expected if t == "sources"]  # renamed
    (user,) = [i for t, i, _, _ in expected if t == "users"]  # deleted
    ((name, changed_at, valid_from, actor, audit_type),) = rows(
        pipeline,
        "SELECT c.object_name, c.changed_at, h.valid_from, c.actor, c.audit_type"
        " FROM {changes} c JOIN {sources_history} h ON h.id = c.object_id AND h.valid_to IS NULL"
        " WHERE c.object_id = %s AND NOT c.initial_load",
        source,
    )
    assert (name, changed_at, actor, audit_type) == (
        "Checkout (renamed)",
        valid_from,
        ws.token_actor,
        "Source Modified",
    )
    assert rows(
        pipeline, "SELECT change, audit_type FROM {changes} WHERE object_id = %s AND NOT initial_load", user
    ) == [("deleted", "User Deleted")]


@after_edits
def test_a_rerun_without_changes_adds_nothing(edited):
    pipeline, simulator, _, _ = edited
    before = rows(pipeline, "SELECT count(*) FROM {changes}")
    load(pipeline, simulator)
    summary = record_changes(pipeline)
    assert summary.to_json() == {"created": 0, "updated": 0, "deleted": 0, "initial_load": 0, "changes": []}
    assert rows(pipeline, "SELECT count(*) FROM {changes}") == before


def test_runs_not_yet_recorded_are_recorded_each_at_its_own_time_and_never_twice(pipeline, simulator, monkeypatch):
    ws = simulator.workspace
    load(pipeline, simulator)
    ws.rename("sources", ws.ids("sources")[0], "First rename")
    load(pipeline, simulator)  # the feed was not recorded after these runs (a crash, say)
    ws.rename("sources", ws.ids("sources")[0], "Second rename")
    load(pipeline, simulator)
    summary = record_changes(pipeline)
    assert [(c.object_name, c.change) for c in summary.changes] == [
        ("First rename", "updated"),
        ("Second rename", "updated"),
    ]
    assert summary.changes[0].changed_at < summary.changes[1].changed_at
    assert summary.initial > 0
    # even a feed that forgot its watermark (reading every version again) doubles nothing
    before = rows(pipeline, "SELECT count(*) FROM {changes}")
    monkeypatch.setattr(ChangeFeed, "watermark", lambda self, endpoint, watermarks: EPOCH)
    record_changes(pipeline)
    assert rows(pipeline, "SELECT count(*) FROM {changes}") == before


def test_a_second_workspace_loaded_later_does_not_flood_the_feed(pipeline, simulator):
    load(pipeline, simulator)
    record_changes(pipeline)
    with SegmentSimulator(generate_workspace("small", slug="beta", seed=7)) as other:
        load(pipeline, other)
        summary = record_changes(pipeline)
    assert (summary.created, summary.updated, summary.deleted) == (0, 0, 0) and summary.initial > 100


def script_env(tmp_path: Path, env: Dict[str, str]) -> Dict[str, str]:
    """The environment `run_script` gives the script, for a shell that runs it."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    return {**inherited, "DLT_DATA_DIR": str(tmp_path / "dlt"), "RUNTIME__DLTHUB_TELEMETRY": "false", **env}


def nested_tables(tables: Dict[str, Any], table: str) -> List[str]:
    return [str(t["name"]) for t in get_nested_tables(tables, table, include_self=False)]


class Webhook(http.server.BaseHTTPRequestHandler):
    """A local alert endpoint that keeps what it is sent."""

    received: List[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        self.received.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_the_readme_alert_recipe_posts_the_run_s_changes_and_nothing_after_a_first_load(tmp_path):
    (recipe,) = [b for b in re.findall(r"```bash\n(.*?)```", README, flags=re.S) if "--changes-json" in b]
    recipe = recipe.replace(".venv/bin/python", sys.executable).replace("pipelines/", str(REPO / "pipelines") + "/")
    server = http.server.HTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Webhook.received = []
    try:
        with SegmentSimulator(generate_workspace("small")) as sim:
            env = {**simulator_env(sim), "CHANGES_WEBHOOK_URL": f"http://127.0.0.1:{server.server_port}/alerts"}
            first = run_script(tmp_path, "--changes-json", "changes.json", env=env)  # the first load
            assert first.returncode == 0, first.stderr
            assert "Changes since the last run: 0 created, 0 updated, 0 deleted" in first.stdout
            assert subprocess.run(["bash", "-c", recipe], cwd=tmp_path, env=script_env(tmp_path, env)).returncode == 0
            assert Webhook.received == []  # a rerun without changes: nothing to say
            expected = edit_workspace(sim.workspace)
            second = subprocess.run(
                ["bash", "-c", recipe], cwd=tmp_path, env=script_env(tmp_path, env), capture_output=True, text=True
            )
    finally:
        server.shutdown()
        server.server_close()
    assert second.returncode == 0, second.stderr
    (posted,) = Webhook.received
    written = json.loads(posted)
    assert written == json.loads((tmp_path / "changes.json").read_text())
    assert as_set(written) == expected and written["initial_load"] == 0
    summary = f"Changes since the last run: {written['created']} created, {written['updated']} updated"
    assert summary in second.stdout and "Checkout (renamed)" in second.stdout


def test_the_feed_reads_and_merges_with_sql_that_snowflake_parses(simulator, tmp_path, monkeypatch):
    pipeline = dlt.pipeline(
        "sf_changes", destination="snowflake", dataset_name="segment_data", pipelines_dir=str(tmp_path)
    )
    pipeline.extract(segment_source(api_key=simulator.token, base_url=simulator.url))
    change = Change("ws", "sources", "s1", "iOS", "updated", EPOCH, ("name",))
    pipeline.extract(
        [change.row()], table_name=CHANGES_TABLE, write_disposition="merge", primary_key=list(CHANGE_KEY),
        columns=CHANGE_COLUMNS, schema=pipeline.default_schema,
    )  # fmt: skip
    pipeline.normalize()
    monkeypatch.setenv("DESTINATION__SNOWFLAKE__CREDENTIALS", FAKE_CREDENTIALS)
    client = cast(SqlJobClientBase, pipeline.destination_client())
    feed = ChangeFeed(client.sql_client, pipeline.default_schema.tables, has_feed=True)
    queries = [feed.feed_state_sql("table_name", "max"), feed.audit_sql(2)]
    for endpoint in [e for e in history_endpoints() if e.table + "_history" in feed.tables]:
        history = endpoint.table + "_history"
        queries += [
            feed.new_versions_sql(endpoint),
            feed.deleted_versions_sql(endpoint),
            feed.first_loads_sql(endpoint),
        ]
        queries += [feed.rows_by_sql(history, "_dlt_id", 2)[1]]
        queries += [feed.rows_by_sql(child, "_dlt_parent_id", 2)[1] for child in nested_tables(feed.tables, history)]
    for sql in queries:
        sqlglot.parse_one(sql.replace("%s", "'2026-01-01'"), read="snowflake")
    sources = feed.new_versions_sql(BY_TABLE["sources"])
    assert 'FROM "SEGMENT_DATA"."SOURCES_HISTORY" n LEFT JOIN "SEGMENT_DATA"."SOURCES_HISTORY" o' in sources
    merge = SnowflakeMergeJob.gen_merge_sql([client.prepare_load_table(CHANGES_TABLE)], client.sql_client)
    for statement in merge:
        sqlglot.parse_one(statement, read="snowflake")
    assert any(s.startswith('DELETE FROM "SEGMENT_DATA"."CHANGES"') and '"CHANGED_AT"' in s for s in merge)
