"""Current tables show the workspace as it is now; `_history` tables keep every version."""

import json
from datetime import datetime, timezone

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from segment_source import segment_source
from tests.support import CORE_TABLES, CURRENT_TABLES, ids, rows
from tests.support import expected as expected_all
from tests.support import load as load_all
from tests.support import loaded as loaded_all

# these promises are about the core tables; loading the rest as well only costs time


def load(pipeline, simulator):
    return load_all(pipeline, simulator, *CORE_TABLES)


def expected(ws):
    return expected_all(ws, CORE_TABLES)


def loaded(pipeline):
    return loaded_all(pipeline, CORE_TABLES)


def versions(pipeline, table, object_id, column="name"):
    """(value, is_current) of each version of an object, oldest first."""
    return rows(
        pipeline,
        f"SELECT {column}, valid_to IS NULL FROM {{{table}_history}} WHERE id = %s ORDER BY valid_from",
        object_id,
    )


def test_a_renamed_object_shows_its_new_name_and_history_keeps_the_old_one(pipeline, simulator):
    ws = simulator.workspace
    source = ws.ids("sources")[0]
    old_name = ws.get("sources", source)["name"]
    load(pipeline, simulator)
    ws.rename("sources", source, "Checkout (renamed)")
    load(pipeline, simulator)
    assert rows(pipeline, "SELECT name FROM {sources} WHERE id = %s", source) == [("Checkout (renamed)",)]
    assert versions(pipeline, "sources", source) == [(old_name, False), ("Checkout (renamed)", True)]
    ((old_to, new_from),) = rows(
        pipeline,
        "SELECT o.valid_to, n.valid_from FROM {sources_history} o JOIN {sources_history} n ON o.id = n.id"
        " WHERE o.id = %s AND o.valid_to IS NOT NULL AND n.valid_to IS NULL",
        source,
    )
    assert old_to == new_from


def test_a_deleted_object_is_gone_from_the_current_table_and_retired_in_history(pipeline, simulator):
    ws = simulator.workspace
    destination = ws.ids("destinations")[0]
    load(pipeline, simulator)
    ws.delete("destinations", destination)
    load(pipeline, simulator)
    assert destination not in ids(pipeline, "destinations")
    assert [current for _, current in versions(pipeline, "destinations", destination)] == [False]
    assert loaded(pipeline) == expected(ws)


def test_an_added_object_appears_in_both_tables(pipeline, simulator):
    ws = simulator.workspace
    load(pipeline, simulator)
    warehouse = ws.add("warehouses")
    ws.connect(warehouse["id"], ws.ids("sources")[2])
    load(pipeline, simulator)
    assert loaded(pipeline) == expected(ws)
    assert versions(pipeline, "warehouses", warehouse["id"], "id") == [(warehouse["id"], True)]


def test_an_unchanged_workspace_adds_no_versions(pipeline, simulator):
    load_all(pipeline, simulator)
    before = {t: rows(pipeline, f"SELECT count(*) FROM {{{t}_history}}") for t in CURRENT_TABLES}
    load_all(pipeline, simulator)
    after = {t: rows(pipeline, f"SELECT count(*) FROM {{{t}_history}}") for t in CURRENT_TABLES}
    assert before == after


def test_a_rotated_secret_makes_a_new_version_with_a_new_fingerprint(pipeline, simulator):
    ws = simulator.workspace
    destination = next(d for d in ws.listing("destinations") if "secretId" in d["settings"])
    load(pipeline, simulator)
    ws.update("destinations", destination["id"], settings=dict(destination["settings"], secretId=ws.new_secret()))
    load(pipeline, simulator)
    fingerprints = [
        json.loads(s)["secretId"] if isinstance(s, str) else s["secretId"]
        for s, _ in versions(pipeline, "destinations", destination["id"], "settings")
    ]
    assert len(fingerprints) == 2 and fingerprints[0] != fingerprints[1]
    assert all(f.startswith("<redacted:") for f in fingerprints)


def test_a_disconnected_warehouse_source_link_is_retired(pipeline, simulator):
    ws = simulator.workspace
    warehouse = ws.ids("warehouses")[0]
    source = ws.warehouse_sources[warehouse][0]
    load(pipeline, simulator)
    ws.disconnect(warehouse, source)
    load(pipeline, simulator)
    assert (warehouse, source) not in set(rows(pipeline, "SELECT warehouse_id, source_id FROM {warehouse_sources}"))
    assert rows(
        pipeline,
        "SELECT valid_to IS NULL FROM {warehouse_sources_history} WHERE warehouse_id = %s AND source_id = %s",
        warehouse,
        source,
    ) == [(False,)]


def test_a_kind_with_no_objects_left_empties_its_tables(pipeline, simulator):
    ws = simulator.workspace
    load(pipeline, simulator)
    for space in ws.ids("spaces"):
        ws.delete("spaces", space)
    load(pipeline, simulator)
    assert ids(pipeline, "spaces") == [] and ids(pipeline, "segments") == []
    assert rows(pipeline, "SELECT count(*) FROM {segments_history} WHERE valid_to IS NULL") == [(0,)]
    assert ids(pipeline, "sources") == sorted(ws.ids("sources"))


def test_a_failed_run_keeps_what_was_loaded(pipeline, simulator):
    load(pipeline, simulator)
    before = loaded(pipeline)
    simulator.workspace.delete("sources", simulator.workspace.ids("sources")[0])
    with pytest.raises(PipelineStepFailed):
        pipeline.run(segment_source(api_key="revoked-token", base_url=simulator.url).with_resources(*CORE_TABLES))
    assert loaded(pipeline) == before
    assert rows(pipeline, "SELECT count(*) FROM {sources_history} WHERE valid_to IS NOT NULL") == [(0,)]


def test_history_answers_what_an_object_looked_like_at_a_point_in_time(pipeline, simulator):
    ws = simulator.workspace
    source = ws.ids("sources")[0]
    load(pipeline, simulator)
    between = datetime.now(timezone.utc)
    old_name = ws.get("sources", source)["name"]
    ws.rename("sources", source, "Later name")
    load(pipeline, simulator)
    as_of = (
        "SELECT name FROM {sources_history} WHERE id = %s AND valid_from <= %s AND (valid_to IS NULL OR valid_to > %s)"
    )
    assert rows(pipeline, as_of, source, between, between) == [(old_name,)]
    now = datetime.now(timezone.utc)
    assert rows(pipeline, as_of, source, now, now) == [("Later name",)]
