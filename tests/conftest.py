"""Shared fixtures: the simulator, real DuckDB and PostgreSQL destinations (helpers: `tests/support.py`)."""

import os

os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"

from typing import Any, Iterator

import dlt
import pytest

from segment_simulator import SegmentSimulator, generate_workspace
from tests import postgres_server
from tests.support import make_pipeline

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


@pytest.fixture
def pipeline(destination: Any, tmp_path: Any) -> dlt.Pipeline:
    return make_pipeline(destination, tmp_path)
