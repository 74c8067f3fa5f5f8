"""The legacy Config API source: the simulated workspace, read over real HTTP through the Config API
simulator, lands in the Public API's tables on DuckDB and PostgreSQL."""

import json
import re
from collections import Counter
from typing import Any, Dict, Set

import dlt
import duckdb
import pytest
import requests
from dlt.pipeline.exceptions import PipelineStepFailed

from segment_simulator import (
    ConfigApiSimulator,
    Quirks,
    RateLimits,
    SegmentSimulator,
    SimulatedWorkspace,
    Size,
    demo_workspace,
    generate_workspace,
)
from segment_source import RunReport, ratelimit, segment_config_api
from segment_source.errors import explain
from tests.support import expected, load, make_pipeline, rows
from tests.test_pipeline_script import run_script
from tests.test_readme import QUERIES, load_twice_with_changes
from tests.test_secrets import TOKEN, all_loaded_text

TABLES = ["workspace", "sources", "destinations", "tracking_plans", "tracking_plan_rules"]
# sources over three pages of 100, tracking plans over two
PAGED = Size(
    sources=230,
    destinations=60,
    warehouses=0,
    spaces=0,
    audiences=0,
    sources_per_warehouse=0,
    tracking_plans=105,
    rules_per_plan=(2, 4),
)


def load_config_api(pipeline: dlt.Pipeline, sim: ConfigApiSimulator, **kwargs: Any) -> Any:
    info = pipeline.run(
        segment_config_api(access_token=sim.token, workspace=sim.workspace.slug, base_url=sim.url, **kwargs)
    )
    assert not info.has_failed_jobs
    return info


def source_name(ws: SimulatedWorkspace, source_id: str) -> str:
    return f"workspaces/{ws.slug}/sources/{ws.get('sources', source_id)['slug']}"


def destination_names(ws: SimulatedWorkspace) -> Dict[str, str]:
    """Public API id -> Config API name: `<source>/destinations/<catalog slug>`, and `~2`, `~3`...
    for a second, third destination of one type on a source (the Config API allows one)."""
    of_type: Counter = Counter()
    names = {}
    for d in ws.listing("destinations"):
        of_type[(d["sourceId"], d["metadata"]["slug"])] += 1
        n = of_type[(d["sourceId"], d["metadata"]["slug"])]
        names[d["id"]] = f"{source_name(ws, d['sourceId'])}/destinations/{d['metadata']['slug']}" + (
            f"~{n}" if n > 1 else ""
        )
    return names


def config_api_expected(ws: SimulatedWorkspace) -> Dict[str, Set[Any]]:
    """What each table must hold: the Public API's rows under Config API names (PAGE rules have no
    place in the Config API)."""
    plan = {p: f"workspaces/{ws.slug}/tracking-plans/{p}" for p in ws.ids("tracking_plans")}
    return {
        "workspace": {(ws.id, ws.slug, ws.name)},
        "sources": {
            (source_name(ws, s["id"]), s["slug"], s["name"], s["metadata"]["slug"]) for s in ws.listing("sources")
        },
        "destinations": {
            (name, source_name(ws, d["sourceId"]), d["name"], d["enabled"], name.rsplit("/", 1)[1])
            for d in ws.listing("destinations")
            for name in [destination_names(ws)[d["id"]]]
        },
        "tracking_plans": {(plan[p["id"]], p["name"]) for p in ws.listing("tracking_plans")},
        "tracking_plan_rules": {
            (plan[p], t, k, v)
            for p, t, k, v in expected(ws, ["tracking_plan_rules"])["tracking_plan_rules"]
            if t != "PAGE"
        },
    }


COLUMNS = {
    "workspace": "id, slug, name",
    "sources": "id, slug, name, metadata__slug",
    "destinations": "id, source_id, name, enabled, metadata__slug",
    "tracking_plans": "id, name",
    "tracking_plan_rules": "tracking_plan_id, type, key, version",
}


def test_every_table_holds_exactly_the_simulated_workspace_read_page_by_page(pipeline, monkeypatch):
    monkeypatch.setattr(ratelimit, "MINUTE", 1.0)  # the Config API's 200 requests a minute, a second long
    ws = generate_workspace(PAGED)
    first = ws.listing("destinations")[0]
    # two more of its type on its source
    added = [
        ws.add("destinations", sourceId=first["sourceId"], metadata=first["metadata"], settings=dict(first["settings"]))
        for _ in range(2)
    ]
    report = RunReport()
    with ConfigApiSimulator(ws, rate_limits=RateLimits(per_token=200, window=1.0)) as sim:
        load_config_api(pipeline, sim, report=report)
        requested = list(sim.requests)
    want = config_api_expected(ws)
    for table in TABLES:
        assert set(rows(pipeline, f"SELECT {COLUMNS[table]} FROM {{{table}}}")) == want[table], table
        assert rows(pipeline, f"SELECT count(*) FROM {{{table}}}") == [(len(want[table]),)], table
        assert rows(pipeline, f"SELECT DISTINCT workspace_id FROM {{{table}}}") == [(ws.id,)], table
    assert len(ws.ids("sources")) == 230 and len(want["destinations"]) == 62 and len(want["tracking_plans"]) == 105
    names = destination_names(ws)
    assert [names[d["id"]] for d in added] == [names[first["id"]] + "~2", names[first["id"]] + "~3"]
    write_keys = rows(
        pipeline, "SELECT s.id, k.value FROM {sources} s JOIN {sources__write_keys} k ON k._dlt_parent_id = s._dlt_id"
    )
    assert len(write_keys) == sum(len(s["writeKeys"]) for s in ws.listing("sources"))
    assert all(value.startswith("<redacted:") for _, value in write_keys)
    assert set(
        rows(
            pipeline,
            "SELECT s.slug, l.key, l.value FROM {sources} s JOIN {sources__labels} l ON l._dlt_parent_id = s._dlt_id",
        )
    ) == {(s["slug"], label["key"], label["value"]) for s in ws.listing("sources") for label in s["labels"]}

    # one request per page of each list, each asking for 100 items, and one per source for its destinations
    root = f"/v1beta/workspaces/{ws.slug}"
    assert [r.path for r in requested[:1]] == [root]
    assert len(requested) == 1 + 3 + 230 + 2
    assert all(r.status == 200 for r in requested)  # 236 requests against 200 a minute: paced, never refused
    for path, pages in ((f"{root}/sources", 3), (f"{root}/tracking-plans", 2)):
        asked = sim.requests_to(path)
        assert [r.params.get("page_size") for r in asked] == ["100"] * pages, path
        tokens = [r.params.get("page_token") for r in asked]
        assert tokens[0] is None and len(set(tokens[1:])) == pages - 1 and None not in tokens[1:], path
    assert {r.path for r in requested if r.path.endswith("/destinations")} == {
        f"/v1beta/{source_name(ws, s)}/destinations" for s in ws.ids("sources")
    }


def readme_queries_on(tables: Set[str]):
    for query in QUERIES:
        used = set(re.findall(r"segment_data\.(\w+)", query))
        if used <= tables:
            yield query


def test_the_readme_queries_on_these_tables_run_as_written(pipeline):
    config_tables = {name for t in TABLES for name in (t, t + "_history")} | {"sources__labels", "sources__write_keys"}
    with ConfigApiSimulator(demo_workspace()) as sim:
        load_twice_with_changes(sim.workspace, lambda: load_config_api(pipeline, sim))
    answered, refused = [], []
    queries = list(readme_queries_on(config_tables))
    for query in queries:
        sql = query.replace("segment_data.", pipeline.dataset_name + ".")
        try:
            with pipeline.sql_client() as client:
                result = client.execute_sql(sql)
        except Exception as ex:  # noqa: BLE001 - the README says which queries need the Public API
            refused.append(str(ex))
            continue
        assert result, f"no rows from:\n{query}"
        answered.append(query)
    # every query on these tables answers (destinations per source, production sources, rules per
    # plan, the history queries...) but the two the README names
    assert len(answered) == len(queries) - 2 and len(answered) >= 5
    # the README: "the two queries above that read a source's `enabled` or a destination's `metadata__name`"
    assert len(refused) == 2 and all("enabled" in why or "metadata__name" in why for why in refused)


def test_one_workspace_read_through_both_apis_gives_the_same_answers(pipeline, destination, tmp_path):
    ws = demo_workspace()
    public = make_pipeline(destination, tmp_path, "public_data")
    with SegmentSimulator(ws) as sim, ConfigApiSimulator(ws) as config_sim:
        ws.rename("destinations", ws.ids("destinations")[1], "Renamed in both APIs")
        load(public, sim, *TABLES)
        load_config_api(pipeline, config_sim)
    per_source = (
        "SELECT s.name, count(d.id) FROM {sources} s LEFT JOIN {destinations} d ON d.source_id = s.id GROUP BY s.name"
    )
    assert set(rows(pipeline, per_source)) == set(rows(public, per_source))
    # same names, flags and settings (masked with the same fingerprints)
    destinations = (
        "SELECT s.slug, d.name, d.enabled, d.settings FROM {destinations} d JOIN {sources} s ON s.id = d.source_id"
    )

    def as_json(found):
        return {(slug, name, enabled, json.dumps(_json(s), sort_keys=True)) for slug, name, enabled, s in found}

    assert as_json(rows(pipeline, destinations)) == as_json(rows(public, destinations))
    assert ("Renamed in both APIs",) in rows(pipeline, "SELECT name FROM {destinations}")
    rules = (
        "SELECT p.name, r.type, r.key, r.version, r.json_schema"
        " FROM {tracking_plan_rules} r JOIN {tracking_plans} p ON p.id = r.tracking_plan_id"
    )
    as_rules = lambda found: {(*r[:4], json.dumps(_json(r[4]), sort_keys=True)) for r in found if r[1] != "PAGE"}  # noqa: E731
    assert as_rules(rows(pipeline, rules)) == as_rules(rows(public, rules))


def _json(value: Any) -> Any:
    return value if isinstance(value, (dict, list)) or value is None else json.loads(value)


def test_no_secret_the_simulator_served_appears_in_any_loaded_table(pipeline, tmp_path):
    with ConfigApiSimulator(generate_workspace("small"), token=TOKEN) as sim:
        load_config_api(pipeline, sim)
        secrets = sim.secret_values()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        served = requests.get(f"{sim.url}/workspaces/acme/sources", headers=headers).text
        served += "".join(
            requests.get(f"{sim.url}/{s['name']}/destinations", headers=headers).text
            for s in json.loads(served)["sources"]
        )
    write_keys = {key for source in sim.workspace.listing("sources") for key in source["writeKeys"]}
    assert write_keys <= {secret for secret in secrets if secret in served}, "the write keys were served"
    assert len([secret for secret in secrets if secret in served]) > len(write_keys), "so were destination settings"
    text = all_loaded_text(pipeline)  # child tables and dlt's own tables included
    assert "<redacted:" in text
    assert [s for s in secrets if s in text] == []
    assert TOKEN not in text
    assert TOKEN not in json.dumps(pipeline.last_trace.asdict(), default=str) and TOKEN not in json.dumps(
        pipeline.state, default=str
    )
    assert [p for p in (tmp_path / "pipelines").rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()] == []


def test_a_renamed_source_shows_its_new_name_and_history_keeps_the_old_one(pipeline):
    with ConfigApiSimulator(generate_workspace("small")) as sim:
        ws = sim.workspace
        source, destination = ws.listing("sources")[0], ws.listing("destinations")[0]
        source_id, destination_id = source_name(ws, source["id"]), destination_names(ws)[destination["id"]]
        load_config_api(pipeline, sim)
        ws.rename("sources", source["id"], "Checkout (renamed)")
        ws.update("destinations", destination["id"], enabled=not destination["enabled"])
        load_config_api(pipeline, sim)
        load_config_api(pipeline, sim)  # nothing changed: no new version
    assert rows(pipeline, "SELECT name FROM {sources} WHERE id = %s", source_id) == [("Checkout (renamed)",)]
    history = "SELECT {column}, valid_to IS NULL FROM {{{table}_history}} WHERE id = %s ORDER BY valid_from"
    assert rows(pipeline, history.format(column="name", table="sources"), source_id) == [
        (source["name"], False),
        ("Checkout (renamed)", True),
    ]
    # a changed destination gets a new update_time and a new version
    versions = rows(pipeline, history.format(column="enabled, update_time", table="destinations"), destination_id)
    assert [(enabled, current) for enabled, _, current in versions] == [
        (destination["enabled"], False),
        (not destination["enabled"], True),
    ]
    assert versions[0][1] < versions[1][1]
    assert rows(pipeline, "SELECT count(*) FROM {sources_history}") == [(len(ws.ids("sources")) + 1,)]


def duckdb_pipeline(tmp_path) -> dlt.Pipeline:
    return make_pipeline(dlt.destinations.duckdb(str(tmp_path / "segment.duckdb")), tmp_path)


def test_a_rejected_token_gets_the_clear_token_error_without_the_token(tmp_path):
    wrong = "cfg_WRONG5d1e7a90c2b4f6TOKEN"
    with ConfigApiSimulator(generate_workspace("small"), token=TOKEN) as sim:
        with pytest.raises(PipelineStepFailed) as failed:
            duckdb_pipeline(tmp_path).run(segment_config_api(access_token=wrong, workspace="acme", base_url=sim.url))
        assert [(r.path, r.status) for r in sim.requests] == [("/v1beta/workspaces/acme", 401)], "a 401 is not retried"
    message, code = explain(failed.value)
    assert code == 1
    assert "rejected the API token (401 Unauthorized" in message
    assert "[sources.segment_config_api]" in message and "SOURCES__SEGMENT_CONFIG_API__ACCESS_TOKEN" in message
    assert wrong not in message and TOKEN not in message


def test_a_workspace_the_token_cannot_see_is_a_configuration_error(tmp_path):
    with ConfigApiSimulator(generate_workspace("small")) as sim:
        with pytest.raises(PipelineStepFailed) as failed:
            duckdb_pipeline(tmp_path).run(
                segment_config_api(access_token=sim.token, workspace="someone-else", base_url=sim.url)
            )
    message, code = explain(failed.value)
    assert code == 2
    assert (
        "'someone-else'" in message
        and "[sources.segment_config_api] workspace" in message
        and "SOURCES__SEGMENT_CONFIG_API__WORKSPACE" in message
    )


def test_a_rate_limited_request_waits_and_the_run_carries_on(tmp_path):
    pattern = "/v1beta/workspaces/acme/tracking-plans"
    with ConfigApiSimulator(
        generate_workspace("small"), quirks=Quirks().fail_next(1, status=429, pattern=pattern)
    ) as sim:
        pipeline = duckdb_pipeline(tmp_path)
        load_config_api(pipeline, sim)
        assert [r.status for r in sim.requests_to(pattern)] == [429, 200]
    assert rows(pipeline, "SELECT count(*) FROM {tracking_plans}") == [(3,)]


def test_the_simulator_answers_in_the_config_api_shape():
    ws = generate_workspace("small")
    with ConfigApiSimulator(ws, rate_limits=RateLimits(per_token=12, window=60.0)) as sim:
        get = lambda path, token=sim.token: requests.get(sim.url + path, headers={"Authorization": f"Bearer {token}"})  # noqa: E731
        source = ws.listing("sources")[0]
        answers = [
            get("/workspaces/acme", token="nope"),
            get("/workspaces/other/sources"),
            get("/workspaces/acme/sources/no-such-source/destinations"),
            get("/workspaces/acme/sources?page_size=101"),
            get("/workspaces/acme/sources?page_token=not-a-token"),
        ]
        assert [(a.status_code, a.json()["code"]) for a in answers] == [
            (401, 16),
            (404, 5),
            (404, 5),
            (400, 3),
            (400, 3),
        ]
        assert all(isinstance(a.json()["error"], str) for a in answers)
        first = get("/workspaces/acme/sources?page_size=4").json()
        rest = get(f"/workspaces/acme/sources?page_size=4&page_token={first['next_page_token']}").json()
        assert [s["name"] for s in first["sources"] + rest["sources"]] == [
            source_name(ws, s) for s in ws.ids("sources")
        ]
        assert rest["next_page_token"] == ""
        assert len(get("/workspaces/acme/sources").json()["sources"]) == 6  # default page size 10
        ws.rename("sources", source["id"], "Edited in the workspace")
        assert get("/workspaces/acme/sources").json()["sources"][0]["display_name"] == "Edited in the workspace"
        ws.disable("protocols")
        assert (
            get("/workspaces/acme/tracking-plans").status_code,
            get("/workspaces/acme/tracking-plans").json()["code"],
        ) == (403, 7)
        while (limited := get("/workspaces/acme")).status_code != 429:
            pass
        assert limited.json()["code"] == 8


def test_the_script_loads_the_demo_through_the_config_api(tmp_path):
    result = run_script(tmp_path, "--config-api", "--demo")
    assert result.returncode == 0, result.stderr
    assert "legacy Config API" in result.stdout and "SELECT" in result.stdout
    ws = demo_workspace()
    want = config_api_expected(ws)
    with duckdb.connect(str(tmp_path / "segment_demo_config_api.duckdb"), read_only=True) as db:
        for table in TABLES:
            assert db.sql(f"SELECT count(*) FROM segment_data.{table}").fetchone()[0] == len(want[table]), table


def test_the_script_without_a_workspace_says_where_to_set_it(tmp_path):
    with ConfigApiSimulator(generate_workspace("small"), token=TOKEN) as sim:
        env = {"SOURCES__SEGMENT_CONFIG_API__ACCESS_TOKEN": TOKEN, "SOURCES__SEGMENT_CONFIG_API__BASE_URL": sim.url}
        result = run_script(tmp_path, "--config-api", env=env)
        assert sim.requests == []
    assert result.returncode == 2
    for words in (
        "[sources.segment_config_api]",
        "workspace = ",
        "SOURCES__SEGMENT_CONFIG_API__WORKSPACE",
        "SOURCES__SEGMENT_CONFIG_API__ACCESS_TOKEN",
    ):
        assert words in result.stderr, words
    assert "Traceback" not in result.stderr and TOKEN not in result.stderr
