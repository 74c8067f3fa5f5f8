"""A full run loads the workspace, every table with exactly the simulator's objects."""

import json

import dlt
import pytest

from segment_simulator import SegmentSimulator, generate_workspace
from tests.support import (
    CURRENT_TABLES,
    DESTINATIONS,
    SURFACE,
    expected,
    load,
    loaded,
    make_pipeline,
    minimal_requests,
    real_destination,
    rows,
)


@pytest.fixture(scope="module", params=DESTINATIONS)
def full_run(request, tmp_path_factory):
    """One full run of the small workspace into each destination: the tests marked `one_full_run`
    read what it loaded and what it asked for, and change neither (they run in one worker)."""
    tmp_path = tmp_path_factory.mktemp("full_run")
    destination = real_destination(request.param, tmp_path, request)
    with SegmentSimulator(generate_workspace("small")) as simulator:
        pipeline = make_pipeline(destination, tmp_path)
        load(pipeline, simulator)
        yield pipeline, simulator


one_full_run = pytest.mark.xdist_group("one_full_run")


@one_full_run
def test_a_full_run_loads_exactly_the_workspace_into_every_table(full_run):
    pipeline, simulator = full_run
    want = expected(simulator.workspace)
    assert loaded(pipeline) == want
    for table in SURFACE:
        assert want[table], f"the small workspace has {table}"
        assert rows(pipeline, f"SELECT count(*) FROM {{{table}}}")[0][0] == len(want[table]), table


@one_full_run
def test_every_row_carries_the_workspace_id(full_run):
    pipeline, simulator = full_run
    for table in list(SURFACE) + [t + "_history" for t in CURRENT_TABLES]:
        assert rows(pipeline, f"SELECT DISTINCT workspace_id FROM {{{table}}}") == [(simulator.workspace.id,)], table


@one_full_run
def test_destinations_carry_their_source_and_segments_their_space(full_run):
    pipeline, simulator = full_run
    ws = simulator.workspace
    assert set(rows(pipeline, "SELECT id, source_id FROM {destinations}")) == {
        (d["id"], d["sourceId"]) for d in ws.listing("destinations")
    }
    assert set(rows(pipeline, "SELECT id, space_id FROM {segments}")) == {
        (a["id"], a["spaceId"]) for a in ws.listing("audiences")
    }


@one_full_run
def test_catalog_metadata_is_reduced_to_id_slug_and_name(full_run):
    pipeline, simulator = full_run
    columns = set(pipeline.default_schema.get_table_columns("destinations"))
    assert {"metadata__id", "metadata__slug", "metadata__name"} <= columns
    assert not [
        c
        for c in columns
        if c.startswith("metadata__") and c not in {"metadata__id", "metadata__slug", "metadata__name"}
    ]
    catalog = {d["id"]: d["metadata"] for d in simulator.workspace.listing("destinations")}
    for dest_id, meta_id, slug, name in rows(
        pipeline, "SELECT id, metadata__id, metadata__slug, metadata__name FROM {destinations}"
    ):
        assert (meta_id, slug, name) == (catalog[dest_id]["id"], catalog[dest_id]["slug"], catalog[dest_id]["name"])


@one_full_run
def test_settings_land_as_one_json_column(full_run):
    pipeline, simulator = full_run
    for table in ("sources", "destinations", "warehouses"):
        columns = pipeline.default_schema.get_table_columns(table)
        assert columns["settings"]["data_type"] == "json"
        assert not [c for c in columns if c.startswith("settings__")], table
    kinesis = [d for d in simulator.workspace.listing("destinations") if d["metadata"]["slug"] == "amazon-kinesis"]
    assert kinesis, "the small workspace has an Amazon Kinesis destination"
    (settings,) = rows(pipeline, "SELECT settings FROM {destinations} WHERE id = %s", kinesis[0]["id"])[0]
    settings = settings if isinstance(settings, dict) else json.loads(settings)
    assert settings["region"] == "us-west-2"
    assert settings["secretId"].startswith("<redacted:")


@one_full_run
def test_a_small_workspace_costs_one_request_per_list(full_run):
    pipeline, simulator = full_run
    ws = simulator.workspace
    assert len(simulator.requests) == minimal_requests(ws)
    assert [r.path for r in simulator.requests].count("/") == 1
    assert all(r.status == 200 for r in simulator.requests)


@one_full_run
def test_every_list_asks_for_the_largest_page_the_endpoint_allows(full_run):
    pipeline, simulator = full_run
    sizes = {}
    for r in simulator.requests:
        endpoint = "/" + r.path.split("/")[-1] if r.path.count("/") > 1 else r.path
        sizes.setdefault(endpoint, set()).add(r.page_size)
    assert sizes.pop("/audiences") == {200}
    assert sizes.pop("/") == sizes.pop("/labels") == {None}  # not paginated
    assert set(sizes) >= {
        "/sources",
        "/connected-sources",
        "/rules",
        "/filters",
        "/subscriptions",
        "/functions",
        "/audit-events",
    }
    assert all(size == {1000} for size in sizes.values()), sizes


@pytest.fixture(scope="module")
def medium_run(tmp_path_factory):
    """The medium workspace loaded into DuckDB, and the requests that took: the tests marked
    `one_medium_run` start from it (the rerun's test loads it again, which changes nothing)."""
    tmp_path = tmp_path_factory.mktemp("medium")
    with SegmentSimulator(generate_workspace("medium")) as sim:
        pipeline = make_pipeline(dlt.destinations.duckdb(str(tmp_path / "medium.duckdb")), tmp_path)
        load(pipeline, sim)
        yield pipeline, sim, list(sim.requests)


one_medium_run = pytest.mark.xdist_group("one_medium_run")


@one_medium_run
def test_a_medium_workspace_is_paged_through_completely(medium_run):
    pipeline, sim, requests = medium_run
    ws = sim.workspace
    assert loaded(pipeline) == expected(ws)
    pages = {path: len(sim.requests_to(path, requests)) for path in ("/sources", "/destinations")}
    assert pages == {"/sources": 2, "/destinations": 3}  # 1250 and 2600 items at 1000 a page
    biggest_space = ws.ids("spaces")[0]
    audience_pages = sim.requests_to(f"/spaces/{biggest_space}/audiences", requests)
    assert len(audience_pages) == 2 and "pagination[cursor]" in audience_pages[1].params
    assert len(requests) == minimal_requests(ws)


@one_medium_run
def test_a_medium_no_change_rerun_skips_every_rules_request(medium_run):
    pipeline, sim, first = medium_run
    full_audit = len(sim.requests_to("/audit-events", first))
    sim.clear_log()
    load(pipeline, sim)
    rules_pages = sum(max(1, -(-len(sim.workspace.rules(p)) // 1000)) for p in sim.workspace.ids("tracking_plans"))
    # the audit trail starts at the newest loaded event: one page instead of all of them
    assert (full_audit, len(sim.requests_to("/audit-events"))) == (2, 1)
    assert len(sim.requests) == len(first) - rules_pages - (full_audit - 1)
    assert loaded(pipeline, CURRENT_TABLES) == expected(sim.workspace, CURRENT_TABLES)


@pytest.mark.parametrize("resource", ["sources", "warehouse_sources"])
def test_selecting_resources_loads_and_requests_only_those(tmp_path, simulator, resource):
    pipeline = make_pipeline(dlt.destinations.duckdb(str(tmp_path / "one.duckdb")), tmp_path)
    load(pipeline, simulator, resource)
    assert set(pipeline.default_schema.data_table_names()) >= {resource, resource + "_history"}
    assert "destinations" not in pipeline.default_schema.data_table_names()
    assert "/destinations" not in {r.path for r in simulator.requests}


def test_without_history_only_current_tables_are_loaded(tmp_path, simulator):
    pipeline = make_pipeline(dlt.destinations.duckdb(str(tmp_path / "nohist.duckdb")), tmp_path)
    load(pipeline, simulator, history=False)
    assert not [t for t in pipeline.default_schema.data_table_names() if "_history" in t]
    assert loaded(pipeline) == expected(simulator.workspace)


def test_functions_of_every_resource_type_are_loaded(pipeline, simulator):
    load(pipeline, simulator, "functions")
    types = ["DESTINATION", "INSERT_DESTINATION", "INSERT_SOURCE", "INSERT_TRANSFORMATION", "SOURCE"]
    assert sorted(r.params["resourceType"] for r in simulator.requests_to("/functions")) == types
    assert set(rows(pipeline, "SELECT id, resource_type FROM {functions}")) == {
        (f["id"], t) for t in types for f in simulator.workspace.functions_of(t)
    }
