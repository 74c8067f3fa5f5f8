"""What a nightly schedule meets sooner or later (issue 10), each end to end against the simulator:
odd values, items without a key, lists that change while paged, slow bodies, short pages, refused
endpoints and versioned media types. Each run ends loaded, or with exactly the failed table kept."""

import json
import logging

import dlt
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from segment_simulator import Quirks, SegmentSimulator, Size, generate_workspace
from segment_source import RunReport, segment_source
from segment_source.errors import ConfigurationError, explain
from tests.support import CORE_TABLES, make_pipeline, rows
from tests.test_pipeline_script import run_script, simulator_env


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    """Real retry logic on a short clock; a 1 s timeout, so the request deadline is 3 s."""
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.02")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_RETRY_DELAY", "0.2")
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "1")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")


@pytest.fixture
def duck(tmp_path):
    return make_pipeline(dlt.destinations.duckdb(str(tmp_path / "h.duckdb")), tmp_path)


def run(pipeline, sim, *resources, report=None):
    """One run with a report (tables isolated); the report."""
    report = report if report is not None else RunReport()
    source = segment_source(api_key=sim.token, base_url=sim.url, report=report)
    info = pipeline.run(source.with_resources(*(resources or CORE_TABLES)))
    assert not info.has_failed_jobs
    return report


def ids(pipeline, table="sources"):
    return {r[0] for r in rows(pipeline, f"SELECT id FROM {{{table}}}")}


def open_versions(pipeline, table="sources_history"):
    """id -> how many open versions it has."""
    return dict(rows(pipeline, f"SELECT id, count(*) FROM {{{table}}} WHERE valid_to IS NULL GROUP BY id"))


def nothing_pending(pipeline):
    return not pipeline.list_extracted_load_packages() and not pipeline.list_normalized_load_packages()


# ---- case 2: integers beyond 64 bits -------------------------------------------------------


def test_an_integer_beyond_64_bits_is_kept_exactly_as_text_with_one_warning_per_field(duck, caplog):
    ws = generate_workspace("small")
    destination, source = ws.ids("destinations")[0], ws.ids("sources")[0]
    huge, negative = 2**64 + 7, -(2**70)
    ws.update("destinations", destination, settings=dict(ws.get("destinations", destination)["settings"], cap=huge))
    ws.update("sources", source, quota=negative)
    with SegmentSimulator(ws) as sim:
        with caplog.at_level(logging.WARNING, logger="segment_source"):
            report = run(duck, sim, "sources", "destinations")
            run(duck, sim, "sources", "destinations")  # and every later run
    [(settings,)] = rows(duck, "SELECT settings FROM {destinations} WHERE id = %s", destination)
    assert json.loads(settings)["cap"] == str(huge)
    assert rows(duck, "SELECT quota FROM {sources} WHERE id = %s", source) == [(str(negative),)]
    assert ids(duck, "destinations") == set(ws.ids("destinations")) and ids(duck) == set(ws.ids("sources"))
    assert report.warnings == [
        "workspace acme: sources.quota holds an integer beyond 64 bits: kept exactly, as text.",
        "workspace acme: destinations.settings.cap holds an integer beyond 64 bits: kept exactly, as text.",
    ]
    assert report.failed_tables == [] and nothing_pending(duck)


# ---- case 3: an item without its key ------------------------------------------------------


@pytest.mark.parametrize("broken", ["missing", "null"])
def test_an_item_without_its_key_is_left_out_and_reported_and_blocks_nothing(duck, broken):
    ws = generate_workspace("small")
    keyless = ws.add("sources")["id"]  # a source of no warehouse (else the link would be left out too)
    position = len(ws.ids("sources"))
    item = {k: v for k, v in ws.get("sources", keyless).items() if k != "id"}
    ws.items["sources"][keyless] = item if broken == "missing" else dict(item, id=None)
    with SegmentSimulator(ws) as sim:
        report = run(duck, sim)
        assert report.warnings == [
            f"workspace acme: left out item {position} of GET /sources in sources: it has no id."
        ]
        assert ids(duck) == set(ws.ids("sources")) - {keyless}
        assert ids(duck, "destinations") == set(ws.ids("destinations"))
        assert report.failed_tables == [] and report.failed == {} and nothing_pending(duck)
        ws.items["sources"][keyless] = dict(item, id=keyless)  # fixed in Segment: the next run loads it
        report = run(duck, sim)
    assert ids(duck) == set(ws.ids("sources")) and report.warnings == []


# ---- case 4: lists that change while they are paged -----------------------------------------


def paged_workspace(sources=1010):
    """More sources than one page of 1000 holds."""
    return generate_workspace(
        Size(sources=sources, destinations=2, warehouses=0, spaces=0, audiences=0, sources_per_warehouse=0)
    )


@pytest.mark.parametrize("change", ["insert_during_paging", "delete_during_paging"])
def test_a_list_that_changes_between_pages_is_read_again_and_loaded_exactly(pipeline, change):
    ws = paged_workspace()
    with SegmentSimulator(ws) as sim:
        run(pipeline, sim, "sources")
        sim.quirks = getattr(Quirks(), change)("/sources", 5)
        sim.clear_log()
        report = run(pipeline, sim, "sources")
        assert len(sim.requests_to("/sources")) == 4, "the listing was read twice, two pages each"
    assert report.warnings == [] and report.failed_tables == []
    assert ids(pipeline) == set(ws.ids("sources"))
    assert open_versions(pipeline) == {i: 1 for i in ws.ids("sources")}


def test_front_inserts_on_every_read_never_give_two_open_versions_and_keep_every_row(pipeline):
    ws = paged_workspace()
    with SegmentSimulator(ws) as sim:
        run(pipeline, sim, "sources")
        before = ids(pipeline)
        sim.quirks = Quirks().insert_during_paging("/sources", 5, times=3)
        report = run(pipeline, sim, "sources")
        assert len(sim.requests_to("/sources")) == 2 + 3 * 2
    [warning] = report.warnings
    assert warning.startswith("workspace acme: sources: GET /sources changed while it was paged, in each of 3 reads")
    assert "5 repeated" in warning and "are kept" in warning
    assert before <= ids(pipeline) <= set(ws.ids("sources"))
    assert set(open_versions(pipeline).values()) == {1}, "no key has two open versions"
    assert set(open_versions(pipeline)) == ids(pipeline)


def test_front_deletes_on_every_read_keep_the_rows_of_every_source_not_confirmed(pipeline):
    ws = paged_workspace(1030)  # still two pages after three reads that each delete five
    with SegmentSimulator(ws) as sim:
        run(pipeline, sim, "sources")
        before = ids(pipeline)
        sim.quirks = Quirks().delete_during_paging("/sources", 5, times=3)
        report = run(pipeline, sim, "sources")
    [warning] = report.warnings
    assert "sources: GET /sources changed while it was paged" in warning and "1015, 1020 announced" in warning
    assert ids(pipeline) == before, "no live source went missing, and none was deleted unconfirmed"
    assert set(ws.ids("sources")) < ids(pipeline)
    assert open_versions(pipeline) == {i: 1 for i in before}, "no version of an unconfirmed source was retired"


# ---- case 5: a body that trickles --------------------------------------------------------


def test_a_trickling_body_fails_only_its_table_by_the_request_deadline(duck):
    with SegmentSimulator(generate_workspace("small"), quirks=Quirks().trickle("/sources", 200)) as sim:
        report = run(duck, sim, "sources", "destinations", "warehouses")
        assert len(sim.requests_to("/sources")) == 2  # RUNTIME__REQUEST_MAX_ATTEMPTS
        ws = sim.workspace
    [failure] = report.failed_tables
    assert failure.startswith("workspace acme: sources: GET /sources sent its body too slowly")
    assert "deadline of 3 s" in failure and "request_timeout" in failure
    assert "sources" not in duck.default_schema.data_table_names(seen_data_only=True)
    assert ids(duck, "destinations") == set(ws.ids("destinations")) and ids(duck, "warehouses") == set(
        ws.ids("warehouses")
    )


# ---- case 6: pages smaller than asked -----------------------------------------------------


def test_a_server_serving_fewer_items_than_asked_is_paged_to_the_end(duck):
    ws = paged_workspace()
    with SegmentSimulator(ws, quirks=Quirks().serve_fewer("/sources", 100)) as sim:
        report = run(duck, sim, "sources")
        assert [r.page_size for r in sim.requests_to("/sources")] == [1000] * 11
    assert report.failed_tables == [] and report.warnings == []
    assert ids(duck) == set(ws.ids("sources"))


# ---- case 7: failure isolation per table ----------------------------------------------------

REFUSED = {"resourceType": "INSERT_DESTINATION"}
ACCESS = ("functions", "users", "user_groups", "roles", "labels", "audit_events")


def functions_by_type(pipeline):
    found = rows(pipeline, "SELECT resource_type, id, display_name FROM {functions}")
    return {(t, i, n) for t, i, n in found}


def test_a_refused_function_type_keeps_its_rows_and_everything_else_loads(duck):
    ws = generate_workspace("small")
    with SegmentSimulator(ws) as sim:
        run(duck, sim, *ACCESS)
        before = functions_by_type(duck)
        refused, other = ws.functions_of("INSERT_DESTINATION")[0]["id"], ws.functions_of("SOURCE")[0]["id"]
        ws.rename("functions", refused, "Renamed while refused")
        ws.rename("functions", other, "Renamed and read")
        sim.quirks = Quirks().refuse("/functions", 422, REFUSED)
        report = run(duck, sim, *ACCESS)
    [failure] = report.failed_tables
    assert failure.startswith("workspace acme: functions (resourceType=INSERT_DESTINATION): Segment answered 422")
    after = functions_by_type(duck)
    assert {f for f in after if f[0] == "INSERT_DESTINATION"} == {f for f in before if f[0] == "INSERT_DESTINATION"}
    assert ("SOURCE", other, "Renamed and read") in after
    assert {f[1] for f in after} == set(ws.ids("functions"))
    assert ids(duck, "users") == set(ws.ids("users")) and ids(duck, "roles") == set(ws.ids("roles"))
    assert ids(duck, "audit_events") == {e["id"] for e in ws.audit_events()}


def test_the_script_exits_1_naming_the_failed_table_having_loaded_the_rest(tmp_path):
    with SegmentSimulator(generate_workspace("small"), quirks=Quirks().refuse("/functions", 422, REFUSED)) as sim:
        result = run_script(tmp_path, "--resources", "functions,users,roles", env=simulator_env(sim))
        users = len(sim.workspace.ids("users"))
    assert result.returncode == 1, result.stderr
    assert "1 table(s) could not be loaded" in result.stderr
    assert "functions (resourceType=INSERT_DESTINATION): Segment answered 422" in result.stderr
    assert "Traceback" not in result.stderr
    assert any(line.split()[:2] == ["users", str(users)] for line in result.stdout.splitlines()), result.stdout


def test_a_failed_parent_listing_is_asked_once_and_fails_only_its_family(duck):
    with SegmentSimulator(generate_workspace("small"), quirks=Quirks().refuse("/spaces", 400)) as sim:
        report = run(duck, sim, *CORE_TABLES, "computed_traits")
        assert len(sim.requests_to("/spaces")) == 1
        ws = sim.workspace
    assert [line.split(": ")[1] for line in report.failed_tables] == ["spaces", "segments", "computed_traits"]
    assert all("Segment answered 400 to GET /spaces" in line for line in report.failed_tables)
    assert ids(duck) == set(ws.ids("sources")) and ids(duck, "warehouses") == set(ws.ids("warehouses"))
    assert report.failed == {}


@pytest.mark.parametrize("quirk, words", [("loop_cursor", "twice"), ("runaway_pages", "kept returning a next page")])
def test_a_looping_cursor_costs_only_its_table(duck, quirk, words):
    with SegmentSimulator(generate_workspace("small"), quirks=getattr(Quirks(), quirk)("/destinations")) as sim:
        report = run(duck, sim, "sources", "destinations")
        ws = sim.workspace
    [failure] = report.failed_tables
    assert failure.startswith("workspace acme: destinations: ") and words in failure
    assert ids(duck) == set(ws.ids("sources"))


def test_a_401_still_stops_the_whole_workspace(duck):
    with SegmentSimulator(generate_workspace("small"), quirks=Quirks().refuse("/destinations", 401)) as sim:
        report = RunReport()
        with pytest.raises(PipelineStepFailed) as failure:
            duck.run(segment_source(api_key=sim.token, base_url=sim.url, report=report).with_resources(*CORE_TABLES))
        assert sim.requests_to("/warehouses") == [], "nothing after the 401 was asked"
    assert list(report.failed) == ["workspace acme"] and report.failed_tables == []
    assert explain(failure.value)[1] == 1


# ---- case 8: versioned media types, booleans as text, a URL without a port --------------------


def test_a_406_asks_the_versioned_media_type_once_per_endpoint_and_remembers_it(duck):
    ws = generate_workspace(
        Size(
            sources=1,
            destinations=1,
            warehouses=0,
            spaces=4,
            audiences=0,
            sources_per_warehouse=0,
            computed_traits_per_space=1,
        )
    )
    quirks = Quirks().require_media_type("/spaces/{spaceId}/computed-traits", "application/vnd.segment.v1alpha+json")
    with SegmentSimulator(ws, quirks=quirks) as sim:
        report = run(duck, sim, "spaces", "computed_traits")
        assert [r.status for r in sim.requests if "computed-traits" in r.path] == [406, 200, 200, 200, 200]
    assert report.failed_tables == []
    assert ids(duck, "computed_traits") == set(ws.ids("computed_traits"))


def test_a_boolean_that_arrives_as_text_keeps_the_column_boolean_and_warns(duck):
    ws = generate_workspace("small")
    paused, textual = ws.ids("sources")[:2]
    ws.update("sources", paused, enabled="PAUSED")
    ws.update("sources", textual, enabled="true")
    with SegmentSimulator(ws) as sim:
        report = run(duck, sim, "sources", "destinations")
    assert rows(duck, "SELECT enabled, enabled__raw FROM {sources} WHERE id = %s", paused) == [(None, "PAUSED")]
    assert rows(duck, "SELECT enabled, enabled__raw FROM {sources} WHERE id = %s", textual) == [(True, None)]
    columns = duck.default_schema.tables["sources"]["columns"]
    assert columns["enabled"]["data_type"] == "bool" and "enabled__v_text" not in columns
    assert report.warnings == [
        "workspace acme: sources.enabled arrived as text ('PAUSED'), not a boolean:"
        " enabled is NULL, the text in enabled__raw."
    ]
    enabled = [s for s in ws.listing("sources") if s["enabled"] is True]
    assert len(rows(duck, "SELECT id FROM {sources} WHERE enabled")) == len(enabled) + 1  # the README's filter


def test_a_base_url_without_a_port_is_a_configuration_error_before_any_request():
    with pytest.raises(ConfigurationError) as failure:
        segment_source(api_key="tok", base_url="http://127.0.0.1:")
    message, code = explain(failure.value)
    assert code == 2 and "no valid port" in message and "SOURCES__SEGMENT_SOURCE__BASE_URL" in message
