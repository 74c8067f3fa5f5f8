"""Shared fixtures: the simulator, real DuckDB and PostgreSQL destinations, and what to expect."""

import os

os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"

import uuid
from typing import Any, Dict, Iterator, List, Set, Tuple

import dlt
import pytest

from segment_source import segment_source
from segment_source.simulator import SegmentSimulator, SimulatedWorkspace, generate_workspace
from tests import postgres_server

DESTINATIONS = ["duckdb", "postgres"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[postgres_server.PostgresServer]:
    server = postgres_server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def simulator() -> Iterator[SegmentSimulator]:
    with SegmentSimulator(generate_workspace("small")) as sim:
        yield sim


@pytest.fixture(params=DESTINATIONS)
def destination(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    """A real destination: an embedded DuckDB file, or a schema in the test PostgreSQL server."""
    if request.param == "duckdb":
        return dlt.destinations.duckdb(str(tmp_path / "segment.duckdb"))
    server = request.getfixturevalue("postgres")
    return dlt.destinations.postgres(server.dsn)


def make_pipeline(destination: Any, tmp_path: Any, dataset_name: str = "segment_data") -> dlt.Pipeline:
    name = f"test_{uuid.uuid4().hex[:10]}"
    return dlt.pipeline(
        pipeline_name=name,
        destination=destination,
        dataset_name=f"{dataset_name}_{name}" if destination.destination_name == "postgres" else dataset_name,
        pipelines_dir=str(tmp_path / "pipelines"),
    )


@pytest.fixture
def pipeline(destination: Any, tmp_path: Any) -> dlt.Pipeline:
    return make_pipeline(destination, tmp_path)


def load(pipeline: dlt.Pipeline, sim: SegmentSimulator, *resources: str, **kwargs: Any) -> Any:
    source = segment_source(api_key=sim.token, base_url=sim.url, **kwargs)
    if resources:
        source = source.with_resources(*resources)
    info = pipeline.run(source)
    assert not info.has_failed_jobs
    return info


def rows(pipeline: dlt.Pipeline, sql: str, *args: Any) -> List[Tuple[Any, ...]]:
    """Run SQL with `{t}` placeholders for table names: `rows(p, "SELECT id FROM {sources}")`."""
    with pipeline.sql_client() as client:
        names = {t: client.make_qualified_table_name(t) for t in pipeline.default_schema.tables}
        return [tuple(r) for r in client.execute_sql(sql.format(**names), *args)]


def ids(pipeline: dlt.Pipeline, table: str, column: str = "id") -> List[str]:
    return sorted(r[0] for r in rows(pipeline, f"SELECT {column} FROM {{{table}}}"))


def expected(ws: SimulatedWorkspace) -> Dict[str, Set[Any]]:
    """What each table must hold after loading `ws`: ids (or id pairs for link tables)."""
    return {
        "workspace": {ws.id},
        "sources": set(ws.ids("sources")),
        "destinations": set(ws.ids("destinations")),
        "warehouses": set(ws.ids("warehouses")),
        "warehouse_sources": {(w, s) for w, sources in ws.warehouse_sources.items() for s in sources},
        "spaces": set(ws.ids("spaces")),
        "segments": set(ws.ids("audiences")),
    }


def minimal_requests(ws: SimulatedWorkspace) -> int:
    """The fewest requests that read `ws`: one per page of every list, at the largest page size."""
    pages = lambda n, size=1000: max(1, -(-n // size))  # noqa: E731 - ceil, and an empty list is one page
    return (
        1  # GET /
        + sum(pages(len(ws.ids(kind))) for kind in ("sources", "destinations", "warehouses", "spaces"))
        + sum(pages(len(connected)) for connected in ws.warehouse_sources.values())
        + sum(pages(len(ws.audiences_of(space)), 200) for space in ws.ids("spaces"))
    )


def loaded(pipeline: dlt.Pipeline) -> Dict[str, Set[Any]]:
    """What each table holds, in the shape of `expected`."""
    out = {t: set(ids(pipeline, t)) for t in ("workspace", "sources", "destinations", "warehouses", "spaces", "segments")}
    out["warehouse_sources"] = set(rows(pipeline, "SELECT warehouse_id, source_id FROM {warehouse_sources}"))
    return out
