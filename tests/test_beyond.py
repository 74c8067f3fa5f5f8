"""Beyond configuration: privacy requests (deletion and suppression), read back exactly as the simulator holds them."""

import json
from datetime import datetime, timedelta, timezone

import dlt
import pytest

from segment_simulator import SegmentSimulator, generate_workspace
from segment_source import RunReport, segment_source
from segment_source.redaction import mask, token_key
from tests.support import load, make_pipeline, rows


def as_json(value):
    """A JSON column's value, from DuckDB (text) or PostgreSQL (already decoded)."""
    return value if isinstance(value, (dict, list)) else json.loads(value)


def moment(value):
    """A loaded timestamp (naive from DuckDB, aware from PostgreSQL) or an API one, in UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


# ---- privacy ---------------------------------------------------------------------------------


def test_regulations_load_by_default_with_status_type_times_and_subjects_as_fingerprints(pipeline, simulator):
    ws = simulator.workspace
    load(pipeline, simulator)
    found = rows(
        pipeline,
        "SELECT workspace_id, id, subject_type, subjects, status, regulation_type, created_at, finished_at"
        " FROM {regulations}",
    )
    assert {(w, i, t, tuple(as_json(s)), st, rt, moment(c), moment(f)) for w, i, t, s, st, rt, c, f in found} == {
        (
            ws.id,
            r["id"],
            r["subjectType"],
            tuple(mask(subject, token_key(simulator.token)) for subject in r["subjects"]),
            r["status"],
            r["regulationType"],
            moment(r["createdAt"]),
            moment(r.get("finishedAt")),
        )
        for r in ws.regulations
    }
    assert len(simulator.requests_to("/regulations")) == 1


def test_open_deletion_requests_older_than_30_days_exist_in_the_small_workspace(simulator):
    month_ago = datetime.now(timezone.utc) - timedelta(days=30)
    stuck = [
        r
        for r in simulator.workspace.regulations
        if r["status"] in ("INITIALIZED", "RUNNING") and moment(r["createdAt"]) < month_ago
    ]
    assert stuck and all("finishedAt" not in r for r in stuck)


def test_a_finished_request_updates_its_row_and_keeps_the_open_version_in_history(pipeline, simulator):
    ws = simulator.workspace
    load(pipeline, simulator)
    running = ws.regulations[0]
    assert running["status"] == "RUNNING"
    ws.regulations[0] = dict(running, status="FINISHED", finishedAt="2026-01-01T00:00:00.000Z")
    load(pipeline, simulator)
    assert rows(pipeline, "SELECT status FROM {regulations} WHERE id = %s", running["id"]) == [("FINISHED",)]
    versions = rows(pipeline, "SELECT status, valid_to IS NULL FROM {regulations_history} WHERE id = %s", running["id"])
    assert sorted(versions) == [("FINISHED", True), ("RUNNING", False)]


def test_suppressions_hold_user_ids_and_load_only_when_selected(pipeline, simulator):
    ws = simulator.workspace
    load(pipeline, simulator)
    assert not simulator.requests_to("/suppressions")
    assert "suppressions" not in pipeline.default_schema.tables
    load(pipeline, simulator, "suppressions")
    found = rows(pipeline, "SELECT workspace_id, subject_type, subject_key, subject_ids FROM {suppressions}")
    assert {(w, t, k, tuple(as_json(i))) for w, t, k, i in found} == {
        (ws.id, s["subjectType"], ",".join(sorted(s["subjectIds"])), tuple(s["subjectIds"])) for s in ws.suppressions
    }
    assert len(found) == 4


def test_without_the_privacy_permission_regulations_are_skipped_with_one_warning(tmp_path):
    ws = generate_workspace("small")
    ws.disable("privacy", 403)
    with SegmentSimulator(ws) as sim:
        pipeline = make_pipeline(dlt.destinations.duckdb(str(tmp_path / "p.duckdb")), tmp_path)
        report = RunReport()
        source = segment_source(api_key=sim.token, base_url=sim.url, report=report)
        info = pipeline.run(source.with_resources("sources", "regulations", "suppressions"))
    assert not info.has_failed_jobs and report.failed == {}
    assert [line.split(": skipped ")[1].split(":")[0] for line in report.skipped] == ["regulations", "suppressions"]
    assert len(rows(pipeline, "SELECT id FROM {sources}")) == len(ws.ids("sources"))


# ---- Engage wiring: where each audience goes, how often -------------------------------------------


def test_audiences_carry_their_schedules(pipeline, simulator):
    ws = simulator.workspace
    load(pipeline, simulator, "spaces", "segments")
    found = rows(
        pipeline,
        "SELECT s.workspace_id, s.id, c.id, c.strategy FROM {segments__schedules} c"
        " JOIN {segments} s ON c._dlt_parent_id = s._dlt_id",
    )
    want = {
        (ws.id, a["id"], schedule["id"], schedule["strategy"])
        for space in ws.ids("spaces")
        for a in ws.audiences_with_schedules(space)
        for schedule in a["schedules"]
    }
    assert set(found) == want and want
    assert all(r.params.get("include") == "schedules" for r in simulator.requests if r.path.endswith("/audiences"))


def load_only_when_selected(pipeline, simulator, table, path_end):
    """Load the default tables, which neither ask for `path_end` nor make `table`, then `table` alone."""
    load(pipeline, simulator)
    assert table not in pipeline.default_schema.tables
    assert not [r for r in simulator.requests if r.path.endswith(path_end)]
    simulator.clear_log()
    load(pipeline, simulator, table)


def test_audience_destinations_load_when_selected_one_request_per_audience_with_settings_masked(pipeline, simulator):
    ws = simulator.workspace
    load_only_when_selected(pipeline, simulator, "audience_destinations", "/destination-connections")
    found = rows(
        pipeline,
        "SELECT workspace_id, audience_id, id, source_id, enabled, metadata__slug, settings"
        " FROM {audience_destinations}",
    )
    assert {r[:6] for r in found} == {
        (
            ws.id,
            a,
            d,
            ws.get("destinations", d)["sourceId"],
            ws.get("destinations", d)["enabled"],
            ws.get("destinations", d)["metadata"]["slug"],
        )
        for a, connected in ws.audience_destinations.items()
        for d in connected
    }
    assert len(found) > len(ws.ids("audiences")) // 2
    assert len([r for r in simulator.requests if r.path.endswith("/destination-connections")]) == len(
        ws.ids("audiences")
    )
    loaded_settings = " ".join(json.dumps(as_json(r[6])) for r in found)
    assert not [secret for secret in ws.secrets if secret in loaded_settings]


@pytest.mark.parametrize("table", ["audience_destinations", "audience_activations"])
def test_without_engage_the_audience_wiring_is_skipped_with_one_warning(tmp_path, table):
    ws = generate_workspace("small")
    ws.disable("engage", 404)
    with SegmentSimulator(ws) as sim:
        pipeline = make_pipeline(dlt.destinations.duckdb(str(tmp_path / "e.duckdb")), tmp_path)
        report = RunReport()
        source = segment_source(api_key=sim.token, base_url=sim.url, report=report)
        info = pipeline.run(source.with_resources("sources", table))
    assert not info.has_failed_jobs and report.failed == {}
    assert [line.split(": skipped ")[1].split(":")[0] for line in report.skipped] == [table]


def test_audience_activations_load_when_selected_one_request_per_audience(pipeline, simulator):
    ws = simulator.workspace
    load_only_when_selected(pipeline, simulator, "audience_activations", "/activations")
    found = rows(
        pipeline,
        "SELECT workspace_id, space_id, audience_id, id, connection_id, activation_type, activation_name, enabled,"
        " personalization, action_id FROM {audience_activations}",
    )
    want = {
        (
            ws.id,
            a["spaceId"],
            a["audienceId"],
            a["id"],
            a["connectionId"],
            a["activationType"],
            a["activationName"],
            a["enabled"],
            json.dumps(a["personalization"], sort_keys=True),
            a["destinationMapping"]["actionId"],
        )
        for audience in ws.ids("audiences")
        for a in ws.audience_activations(ws.get("audiences", audience)["spaceId"], audience)
    }
    assert {(*r[:8], json.dumps(as_json(r[8]), sort_keys=True), r[9]) for r in found} == want
    assert len(want) == sum(len(d) for d in ws.audience_destinations.values())
    assert len([r for r in simulator.requests if r.path.endswith("/activations")]) == len(ws.ids("audiences"))


# ---- usage: incremental by month --------------------------------------------------------------


def month_starts(since, until):
    month = since.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    while month <= until:
        yield month
        month = (month + timedelta(days=32)).replace(day=1)


def open_months(now):
    """The months a rerun reads again: the current one, and the previous one until day 3 of this one."""
    return [
        m
        for m in month_starts(now - timedelta(days=40), now)
        if now < (m + timedelta(days=32)).replace(day=1) + timedelta(days=3)
    ]


def periods(sim, path):
    return [moment(r.params["period"]) for r in sim.requests_to(path)]


def usage_rows(pipeline):
    return rows(
        pipeline,
        "SELECT m.workspace_id, m.source_id, m.timestamp, m.anonymous, m.anonymous_identified, m.identified,"
        " m.never_identified, a.api_calls FROM {mtu_usage_daily} m"
        " JOIN {api_calls_usage_daily} a ON a.source_id = m.source_id AND a.timestamp = m.timestamp",
    )


def expected_usage(ws, months):
    return {
        (
            ws.id,
            m["sourceId"],
            moment(m["timestamp"]),
            int(m["anonymous"]),
            int(m["anonymousIdentified"]),
            int(m["identified"]),
            int(m["neverIdentified"]),
            int(a["apiCalls"]),
        )
        for month in months
        for m, a in zip(ws.mtu_usage(month), ws.api_calls_usage(month), strict=True)
    }


def test_usage_loads_per_source_per_day_from_the_start_month_and_a_rerun_reads_only_the_open_month(pipeline, simulator):
    ws = simulator.workspace
    now = datetime.now(timezone.utc)
    start = now - timedelta(days=45)
    months = list(month_starts(start, now))
    load(pipeline, simulator, "mtu_usage_daily", "api_calls_usage_daily", start_date=start.isoformat())
    assert periods(simulator, "/usage/mtu/sources/daily") == months
    assert periods(simulator, "/usage/api-calls/sources/daily") == months
    first = {(w, s, moment(t), *v) for w, s, t, *v in usage_rows(pipeline)}
    assert first == expected_usage(ws, months) and len(first) > len(ws.ids("sources")) * 30

    added = ws.add("sources")  # shows in the months read again, not in the final ones
    simulator.clear_log()
    load(pipeline, simulator, "mtu_usage_daily", "api_calls_usage_daily", start_date=start.isoformat())
    assert periods(simulator, "/usage/mtu/sources/daily") == open_months(now)
    assert periods(simulator, "/usage/api-calls/sources/daily") == open_months(now)
    second = {(w, s, moment(t), *v) for w, s, t, *v in usage_rows(pipeline)}
    kept = {r for r in first if r[2].replace(day=1) not in open_months(now)}  # final months: as first loaded
    assert second == expected_usage(ws, open_months(now)) | kept
    assert added["id"] in {r[1] for r in second} and added["id"] not in {r[1] for r in kept}
    assert len(usage_rows(pipeline)) == len(second)  # nothing counted twice


def workspace_usage_rows(pipeline):
    found = rows(
        pipeline,
        "SELECT m.workspace_id, m.timestamp, m.anonymous, m.anonymous_identified, m.identified, m.never_identified,"
        " a.api_calls FROM {workspace_mtu_usage_daily} m"
        " JOIN {workspace_api_calls_usage_daily} a ON a.timestamp = m.timestamp",
    )
    return {(w, moment(t), *v) for w, t, *v in found}


def expected_workspace_usage(ws, months):
    kinds = ("anonymous", "anonymousIdentified", "identified", "neverIdentified")
    return {
        (ws.id, moment(m["timestamp"]), *(int(m[k]) for k in kinds), int(a["apiCalls"]))
        for month in months
        for m, a in zip(ws.workspace_mtu_usage(month), ws.workspace_api_calls_usage(month), strict=True)
    }


def test_workspace_usage_totals_load_per_day_in_their_own_tables_and_a_rerun_reads_only_the_open_month(
    pipeline, simulator
):
    ws = simulator.workspace
    now = datetime.now(timezone.utc)
    start = now - timedelta(days=45)
    months = list(month_starts(start, now))
    tables = ("workspace_mtu_usage_daily", "workspace_api_calls_usage_daily", "api_calls_usage_daily")
    load(pipeline, simulator, *tables, start_date=start.isoformat())
    assert periods(simulator, "/usage/mtu/daily") == months
    assert periods(simulator, "/usage/api-calls/daily") == months
    first = workspace_usage_rows(pipeline)
    assert first == expected_workspace_usage(ws, months) and len(first) > 30
    # the workspace's API calls of a day are its sources' calls of that day
    assert not rows(
        pipeline,
        "SELECT w.timestamp FROM {workspace_api_calls_usage_daily} w"
        " JOIN {api_calls_usage_daily} s ON s.timestamp = w.timestamp"
        " GROUP BY w.timestamp, w.api_calls HAVING sum(s.api_calls) <> w.api_calls",
    )

    ws.add("sources")  # more users and calls in the months read again
    simulator.clear_log()
    load(pipeline, simulator, *tables, start_date=start.isoformat())
    assert periods(simulator, "/usage/mtu/daily") == open_months(now)
    assert periods(simulator, "/usage/api-calls/daily") == open_months(now)
    kept = {r for r in first if r[1].replace(day=1) not in open_months(now)}
    assert workspace_usage_rows(pipeline) == expected_workspace_usage(ws, open_months(now)) | kept
    assert rows(pipeline, "SELECT count(*) FROM {workspace_mtu_usage_daily}") == [(len(first),)]


# ---- credentials and insert function instances: settings masked -------------------------------


def loaded_text(pipeline, table):
    return " ".join(json.dumps(as_json(s)) for (s,) in rows(pipeline, f"SELECT settings FROM {{{table}}}"))


def test_credentials_load_by_default_with_their_settings_masked(pipeline, simulator):
    ws = simulator.workspace
    load(pipeline, simulator)
    found = rows(pipeline, "SELECT workspace_id, id, name, created_at FROM {credentials}")
    assert {(w, i, n, moment(t)) for w, i, n, t in found} == {
        (ws.id, c["id"], c["name"], moment(c["createdAt"])) for c in ws.credentials
    }
    assert len(found) == 3
    text = loaded_text(pipeline, "credentials")
    assert "SEGMENT_LOADER" in text and "<redacted:" in text
    assert not [secret for secret in ws.secrets if secret in text]


def test_insert_function_instances_load_when_selected_one_request_per_insert_function(pipeline, simulator):
    ws = simulator.workspace
    load(pipeline, simulator, "insert_function_instances")
    found = rows(
        pipeline, "SELECT workspace_id, class_id, id, integration_id, enabled FROM {insert_function_instances}"
    )
    want = {
        (ws.id, f, i["id"], i["integrationId"], i["enabled"])
        for f, instances in ws.insert_instances.items()
        for i in instances
    }
    assert set(found) == want and want
    inserts = {f["id"] for f in ws.listing("functions") if f["resourceType"].startswith("INSERT_")}
    asked = [r.params["functionId"] for r in simulator.requests_to("/insert-function-instances")]
    assert sorted(asked) == sorted(inserts)
    text = loaded_text(pipeline, "insert_function_instances")
    assert "us-west-2" in text and not [secret for secret in ws.secrets if secret in text]


def test_function_versions_load_when_selected_with_the_credentials_their_code_embeds_masked(pipeline, simulator):
    ws = simulator.workspace
    load_only_when_selected(pipeline, simulator, "function_versions", "/versions")
    found = rows(
        pipeline,
        "SELECT workspace_id, function_id, id, author, is_deployed, created_at, deployed_at, code"
        " FROM {function_versions}",
    )
    want = {
        (ws.id, f, v["id"], v["author"], v["isDeployed"], moment(v["createdAt"]), moment(v.get("deployedAt")))
        for f in ws.ids("functions")
        for v in ws.function_versions(f)
    }
    assert {(*r[:5], moment(r[5]), moment(r[6])) for r in found} == want and len(want) > len(ws.ids("functions"))
    assert sorted(r.path.split("/")[2] for r in simulator.requests if r.path.endswith("/versions")) == sorted(
        ws.ids("functions")
    )
    code = "\n".join(r[7] for r in found)
    embedded = [
        s for s in ws.secrets if any(s in v["code"] for f in ws.ids("functions") for v in ws.function_versions(f))
    ]
    assert embedded and not [s for s in embedded if s in code]
    assert "<redacted:" in code and "// draft" in code


# ---- event volume: incremental by day ---------------------------------------------------------


def volume_rows(pipeline):
    found = rows(pipeline, "SELECT workspace_id, source_id, event_type, time, count FROM {event_volume}")
    return {(w, s, e, moment(t)): c for w, s, e, t, c in found}


def test_event_volume_loads_per_source_event_type_and_day_and_a_rerun_reads_only_from_the_last_day(pipeline, simulator):
    ws = simulator.workspace
    now = datetime.now(timezone.utc)
    start = now - timedelta(days=5)
    load(pipeline, simulator, "event_volume", start_date=start.isoformat())
    (first_request,) = simulator.requests_to("/events/volume")
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    assert moment(first_request.params["startTime"]) == day
    assert first_request.params["granularity"] == "DAY" and first_request.params["groupBy"] == "source,eventType"
    assert now - timedelta(minutes=1) <= moment(first_request.params["endTime"]) < datetime.now(timezone.utc)
    served = {
        (ws.id, item["source"]["id"], item["eventType"], moment(point["time"])): point["count"]
        for item in ws.event_volume(day, now, ["source", "eventType"])
        for point in item["series"]
    }
    first = volume_rows(pipeline)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    assert set(first) == set(served) and len(first) == len(ws.ids("sources")) * 3 * 6
    assert {k: v for k, v in first.items() if k[3] < today} == {k: v for k, v in served.items() if k[3] < today}

    simulator.clear_log()
    load(pipeline, simulator, "event_volume", start_date=start.isoformat())
    (second_request,) = simulator.requests_to("/events/volume")
    assert moment(second_request.params["startTime"]) == today - timedelta(days=1)
    second = volume_rows(pipeline)
    assert set(second) == set(first)  # the re-read days replaced their rows: nothing counted twice
    assert all(second[k] >= first[k] for k in first if k[3] == today)
