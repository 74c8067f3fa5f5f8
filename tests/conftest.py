"""Shared fixtures: the simulator, real DuckDB and PostgreSQL destinations (helpers: `tests/support.py`)."""

import os

os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"

from typing import Any, Iterator

import dlt
import pytest

from segment_simulator import SegmentSimulator, generate_workspace
from tests import postgres_server
from tests.support import DESTINATIONS, make_pipeline, real_destination


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
    return real_destination(request.param, tmp_path, request)


@pytest.fixture
def pipeline(destination: Any, tmp_path: Any) -> dlt.Pipeline:
    return make_pipeline(destination, tmp_path)


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real retry logic on a short clock: small backoff, a 1 s read timeout for slow answers."""
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.02")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_RETRY_DELAY", "0.2")
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "1")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "6")
