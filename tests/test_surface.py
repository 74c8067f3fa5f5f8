"""The configuration surface beyond the core: rules of changed plans, the audit trail, features, opt-ins."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from segment_simulator import SegmentSimulator, generate_workspace
from segment_source import RunReport, segment_source
from tests.support import SURFACE, expected, load, loaded, rows


def as_json(value):
    """A JSON column's value, from DuckDB (text) or PostgreSQL (already decoded)."""
    return value if isinstance(value, (dict, list)) else json.loads(value)


def plan_rules(pipeline, plan):
    found = rows(
        pipeline, "SELECT type, key, version, json_schema FROM {tracking_plan_rules} WHERE tracking_plan_id = %s", plan
    )
    return {(t, k, v, json.dumps(as_json(schema), sort_keys=True)) for t, k, v, schema in found}


def rules_requests(sim):
    return sorted(r.path.split("/")[2] for r in sim.requests if r.path.endswith("/rules"))


# ---- tracking plan rules: fetched again only for plans that changed -------------------------

PROTOCOLS = ("tracking_plans", "tracking_plan_rules")
"""What a test of the rules alone loads; the tests of a rerun and of a deleted plan load every table."""


def test_a_rerun_without_changes_asks_for_no_rules(pipeline, simulator):
    load(pipeline, simulator)
    full = len(simulator.requests)
    simulator.clear_log()
    load(pipeline, simulator)
    assert rules_requests(simulator) == []
    plans = len(simulator.workspace.ids("tracking_plans"))
    assert len(simulator.requests) == full - plans
    assert loaded(pipeline) == expected(simulator.workspace)


def test_rules_are_fetched_again_only_for_the_plan_that_changed(pipeline, simulator):
    ws = simulator.workspace
    changed, unchanged = ws.ids("tracking_plans")[:2]
    load(pipeline, simulator, *PROTOCOLS)
    untouched = plan_rules(pipeline, unchanged)
    rule = ws.rules(changed)[0]
    ws.update_rule(changed, rule["type"], rule.get("key"), jsonSchema={"type": "object", "description": "changed"})
    ws.add_rule(changed, "TRACK", "Brand New Event")
    simulator.clear_log()
    load(pipeline, simulator, *PROTOCOLS)
    assert rules_requests(simulator) == [changed]
    assert loaded(pipeline, ["tracking_plan_rules"]) == expected(ws, ["tracking_plan_rules"])
    assert plan_rules(pipeline, unchanged) == untouched
    assert json.dumps({"description": "changed", "type": "object"}) in {
        schema for *_, schema in plan_rules(pipeline, changed)
    }


def test_rules_of_a_deleted_plan_leave_the_current_table_and_are_retired_in_history(pipeline, simulator):
    ws = simulator.workspace
    plan = ws.ids("tracking_plans")[0]
    load(pipeline, simulator)
    ws.delete("tracking_plans", plan)
    simulator.clear_log()
    load(pipeline, simulator)
    assert rules_requests(simulator) == []
    assert rows(pipeline, "SELECT count(*) FROM {tracking_plan_rules} WHERE tracking_plan_id = %s", plan) == [(0,)]
    assert rows(
        pipeline,
        "SELECT count(*) FROM {tracking_plan_rules_history} WHERE tracking_plan_id = %s AND valid_to IS NULL",
        plan,
    ) == [(0,)]
    assert loaded(pipeline) == expected(ws)


def test_a_rule_removed_from_a_plan_is_removed_from_the_table(pipeline, simulator):
    ws = simulator.workspace
    plan = ws.ids("tracking_plans")[0]
    load(pipeline, simulator, *PROTOCOLS)
    rule = ws.rules(plan)[-1]
    ws.delete_rule(plan, rule["type"], rule.get("key"))
    load(pipeline, simulator, *PROTOCOLS)
    assert loaded(pipeline, ["tracking_plan_rules"]) == expected(ws, ["tracking_plan_rules"])


# ---- the audit trail: incremental by timestamp ------------------------------------------------


def audit_params(sim):
    return [r.params for r in sim.requests if r.path == "/audit-events"]


def parse(ts):
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def test_the_audit_trail_is_read_incrementally_with_an_overlap_and_no_duplicates(pipeline, simulator):
    ws = simulator.workspace
    load(pipeline, simulator, "audit_events")
    (first,) = audit_params(simulator)
    assert parse(first["startTime"]) < datetime.now(timezone.utc) - timedelta(days=89)  # 90 days back by default
    newest = max(parse(e["timestamp"]) for e in ws.audit_events())

    ws.rename("sources", ws.ids("sources")[0], "Renamed for the audit trail")
    ws.delete("destinations", ws.ids("destinations")[0])
    simulator.clear_log()
    load(pipeline, simulator, "audit_events")
    (second,) = audit_params(simulator)
    assert parse(second["startTime"]) == newest - timedelta(minutes=15)
    assert parse(second["endTime"]) > parse(second["startTime"])

    ids = [i for (i,) in rows(pipeline, "SELECT id FROM {audit_events}")]
    assert len(ids) == len(set(ids)), "no duplicates, although the overlap was read twice"
    assert set(ids) == {e["id"] for e in ws.audit_events()}
    types = {t for (t,) in rows(pipeline, "SELECT type FROM {audit_events}")}
    assert {"Source Modified", "Destination Deleted"} <= types


def test_the_first_audit_run_starts_at_the_configured_date(pipeline, simulator):
    start = datetime.now(timezone.utc) - timedelta(days=10)
    load(pipeline, simulator, "audit_events", start_date=start.isoformat())
    assert parse(audit_params(simulator)[0]["startTime"]) == start.replace(microsecond=start.microsecond // 1000 * 1000)
    want = {e["id"] for e in simulator.workspace.audit_events() if parse(e["timestamp"]) > start}
    assert 0 < len(want) < len(simulator.workspace.audit_events())
    assert {i for (i,) in rows(pipeline, "SELECT id FROM {audit_events}")} == want


# ---- features a workspace may not have --------------------------------------------------------

FEATURES = {
    "engage": ["spaces", "segments", "computed_traits"],
    "protocols": ["tracking_plans", "tracking_plan_rules", "tracking_plan_sources"],
    "functions": ["functions"],
    "destination_filters": ["destination_filters"],
    "iam": ["users", "user_groups", "roles"],
    "reverse_etl": ["reverse_etl_models"],
    "audit_trail": ["audit_events"],
}


# A plan without one feature usually lacks others (Engage, Protocols, Reverse ETL): each workspace
# lacks every feature, alternately forbidden to the token (403) and not in the plan (404), and the
# second one the other way round.
@pytest.mark.parametrize("first_status", [403, 404])
def test_a_missing_feature_skips_its_tables_with_one_warning_each_and_loads_the_rest(tmp_path, first_status):
    import dlt

    from tests.support import make_pipeline

    other_status = 404 if first_status == 403 else 403
    statuses = {feature: (first_status, other_status)[i % 2] for i, feature in enumerate(sorted(FEATURES))}
    ws = generate_workspace("small")
    for feature, status in statuses.items():
        ws.disable(feature, status)
    with SegmentSimulator(ws) as sim:
        pipeline = make_pipeline(dlt.destinations.duckdb(str(tmp_path / "f.duckdb")), tmp_path)
        report = RunReport()
        info = pipeline.run(segment_source(api_key=sim.token, base_url=sim.url, report=report))
    assert not info.has_failed_jobs and report.failed == {}
    skipped = [line.split(": skipped ")[1].split(":")[0] for line in report.skipped]
    missing = [table for tables in FEATURES.values() for table in tables]
    assert sorted(skipped) == sorted(missing)  # each once
    for feature, status in statuses.items():
        said = [(t, line) for t, line in zip(skipped, report.skipped, strict=True) if t in FEATURES[feature]]
        assert [table for table, _ in said] == FEATURES[feature]
        assert all(("permission" if status == 403 else "does not have") in line for _, line in said), said
    others = [t for t in SURFACE if t not in missing]
    assert loaded(pipeline, others) == expected(ws, others)


# ---- opt-in resources -------------------------------------------------------------------------

OPT_IN = ("catalog_sources", "catalog_destinations", "catalog_warehouses", "warehouse_syncs", "function_code")


def test_heavy_resources_are_opt_in(pipeline, simulator):
    load(pipeline, simulator)
    assert not [r for r in simulator.requests if r.path.startswith("/catalog") or r.path.endswith("/syncs")]
    assert not [r for r in simulator.requests if r.path.startswith("/functions/")]
    assert not set(OPT_IN) & set(pipeline.default_schema.tables)


def test_opt_in_resources_load_when_selected(pipeline, simulator):
    ws = simulator.workspace
    load(pipeline, simulator, *OPT_IN)
    for table, path in (
        ("catalog_sources", "/catalog/sources"),
        ("catalog_destinations", "/catalog/destinations"),
        ("catalog_warehouses", "/catalog/warehouses"),
    ):
        served = {i["id"] for r in [simulator] for i in _served_catalog(r, path)}
        assert {i for (i,) in rows(pipeline, f"SELECT id FROM {{{table}}}")} == served and served
    assert {i for (i,) in rows(pipeline, "SELECT id FROM {function_code}")} == set(ws.ids("functions"))
    syncs = {(w, s["sourceId"], parse(s["start"])) for w in ws.ids("warehouses") for s in ws.syncs_of(w)}
    assert {
        (w, s, t.astimezone(timezone.utc))
        for w, s, t in rows(pipeline, "SELECT warehouse_id, source_id, start FROM {warehouse_syncs}")
    } == syncs


def _served_catalog(sim, path):
    import requests

    return requests.get(
        sim.url + path, params={"pagination[count]": 1000}, headers={"Authorization": f"Bearer {sim.token}"}, timeout=10
    ).json()["data"][
        {
            "/catalog/sources": "sourcesCatalog",
            "/catalog/destinations": "destinationsCatalog",
            "/catalog/warehouses": "warehousesCatalog",
        }[path]
    ]


def test_function_code_is_loaded_without_the_credentials_it_embeds(pipeline, simulator):
    load(pipeline, simulator, "function_code")
    code = "\n".join(c for (c,) in rows(pipeline, "SELECT code FROM {function_code}"))
    assert "onTrack" in code or "function" in code
    embedded = [
        s
        for s in simulator.secret_values()
        if any(
            s in f.get("code", "")
            for f in (simulator.workspace.get("functions", i) for i in simulator.workspace.ids("functions"))
        )
    ]
    assert embedded, "the simulated functions embed credentials"
    assert [s for s in embedded if s in code] == []
    assert "<redacted:" in code


def test_warehouse_syncs_are_read_incrementally(pipeline, simulator):
    ws = simulator.workspace
    load(pipeline, simulator, "warehouse_syncs")
    warehouse = ws.ids("warehouses")[0]
    ws.add_sync(warehouse)
    load(pipeline, simulator, "warehouse_syncs")
    keys = rows(pipeline, "SELECT warehouse_id, source_id, start FROM {warehouse_syncs}")
    assert len(keys) == len(set(keys)) == sum(len(ws.syncs_of(w)) for w in ws.ids("warehouses"))
