"""The README's SQL runs as written and answers something, on DuckDB and PostgreSQL."""

import re
from pathlib import Path

from segment_simulator import SegmentSimulator, demo_workspace
from segment_source.changes import record_changes
from segment_source.endpoints import DEFAULT_TABLES
from tests.support import load

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
QUERIES = re.findall(r"```sql\n(.*?)```", README, flags=re.S)
OPT_IN_QUERIED = (
    "audience_destinations",
    "mtu_usage_daily",
    "insert_function_instances",
    "suppressions",
    "event_volume",
    "destination_delivery_metrics",
)
"""Opt-in tables the README's queries use (each says so)."""


def load_twice_with_changes(ws, load_once) -> None:
    """Load the demo workspace, rename a source and a destination, delete a destination, load
    again, as a user's second run sees it: every README query has an answer."""
    load_once()
    ws.rename("sources", next(s["id"] for s in ws.listing("sources") if s["slug"] == "ios-6"), "iOS app (renamed)")
    ws.rename("destinations", ws.ids("destinations")[1], "Renamed destination")
    ws.delete("destinations", ws.ids("destinations")[0])
    load_once()


def test_the_readme_has_the_queries_it_promises():
    assert len(QUERIES) >= 8
    assert any("sources_history" in q and "valid_to >" in q for q in QUERIES), "the point-in-time query"


def test_the_command_suggests_a_query_from_the_readme():
    from segment_source.cli import JOIN_QUERY

    assert JOIN_QUERY.format(dataset="segment_data") in README


def test_the_history_queries_answer_on_a_first_load_as_the_readme_says(pipeline):
    """Point in time: the first load's version; changes: none yet (versions of a first load are not changes)."""
    point_in_time, changed = [q for q in QUERIES if "_history h" in q][:2]
    with SegmentSimulator(demo_workspace()) as sim:
        load(pipeline, sim)
    with pipeline.sql_client() as client:
        assert len(client.execute_sql(point_in_time.replace("segment_data.", pipeline.dataset_name + "."))) == 1
        assert client.execute_sql(changed.replace("segment_data.", pipeline.dataset_name + ".")) == []


def test_every_readme_query_runs_and_returns_rows(pipeline):
    with SegmentSimulator(demo_workspace()) as sim:
        load_twice_with_changes(
            sim.workspace, lambda: (load(pipeline, sim, *DEFAULT_TABLES, *OPT_IN_QUERIED), record_changes(pipeline))
        )
    for query in QUERIES:
        sql = query.replace("segment_data.", pipeline.dataset_name + ".")
        with pipeline.sql_client() as client:
            result = client.execute_sql(sql)
        assert result, f"no rows from:\n{query}"
