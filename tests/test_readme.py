"""The README's SQL runs as written and answers something, on DuckDB and PostgreSQL."""

import re
from datetime import datetime, timezone
from pathlib import Path

from segment_simulator import SegmentSimulator, demo_workspace
from segment_source.endpoints import DEFAULT_TABLES
from tests.support import load

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
QUERIES = re.findall(r"```sql\n(.*?)```", README, flags=re.S)
DATE_D = "2026-11-01 00:00:00+00"
OPT_IN_QUERIED = (
    "audience_destinations",
    "mtu_usage_daily",
    "insert_function_instances",
    "suppressions",
    "event_volume",
)
"""Opt-in tables the README's queries use (each says so)."""


def load_twice_with_changes(ws, load_once) -> str:
    """Load the demo workspace, rename a source and delete a destination, load again; return a
    moment between the two loads (the README's date D), so every README query has an answer."""
    load_once()
    between_runs = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f+00")
    ws.rename("sources", next(s["id"] for s in ws.listing("sources") if s["slug"] == "ios-6"), "iOS app (renamed)")
    ws.delete("destinations", ws.ids("destinations")[0])
    load_once()
    return between_runs


def as_run(query: str, dataset_name: str, between_runs: str) -> str:
    """A README query for a test dataset, with date D between the test's two loads."""
    return query.replace("segment_data.", dataset_name + ".").replace(DATE_D, between_runs)


def test_the_readme_has_the_queries_it_promises():
    assert len(QUERIES) >= 8
    assert any("sources_history" in q and DATE_D in q for q in QUERIES), "the point-in-time query"


def test_the_script_suggests_a_query_from_the_readme():
    from pipelines.segment_pipeline import TRY_QUERY

    assert TRY_QUERY.format(dataset="segment_data") in README


def test_every_readme_query_runs_and_returns_rows(pipeline):
    with SegmentSimulator(demo_workspace()) as sim:
        between_runs = load_twice_with_changes(
            sim.workspace, lambda: load(pipeline, sim, *DEFAULT_TABLES, *OPT_IN_QUERIED)
        )
    for query in QUERIES:
        sql = as_run(query, pipeline.dataset_name, between_runs)
        with pipeline.sql_client() as client:
            result = client.execute_sql(sql)
        assert result, f"no rows from:\n{query}"
