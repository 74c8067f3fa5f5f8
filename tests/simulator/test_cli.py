"""`python -m segment_simulator` serves a workspace over real HTTP until it is stopped, and says how
to point the loader at it."""

import re
import subprocess
import sys
from typing import Callable, Iterator, List

import pytest
import requests

OPTIONS = [
    "--size",
    "--seed",
    "--slug",
    "--port",
    "--token",
    "--config-api",
    "--fault-rate",
    "--fault-seed",
    "--latency-ms",
    "--rate-limit",
    "--rate-window",
]


@pytest.fixture
def serve() -> Iterator[Callable[..., List[str]]]:
    """Starts `python -m segment_simulator <args>` on a free port; stops every one it started."""
    started: List[subprocess.Popen] = []

    def start(*args: str) -> List[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "segment_simulator", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout is not None
        # a title, "Point the loader at it with:" and one line per setting
        return [process.stdout.readline().strip() for _ in range(2 + (3 if "--config-api" in args else 2))]

    yield start
    for process in started:
        process.terminate()
        assert process.wait(timeout=10) == 0, process.stderr.read() if process.stderr else ""


def url_in(line: str) -> str:
    found = re.search(r" at (http://127\.0\.0\.1:\d+(/v1beta)?) ", line)
    assert found, line
    return found.group(1)


def test_the_command_serves_the_public_api_and_prints_the_loader_settings(serve):
    lines = serve("--token", "my-token", "--slug", "shop", "--seed", "3")
    url = url_in(lines[0])
    assert f"export SOURCES__SEGMENT_SOURCE__BASE_URL={url}" in lines
    assert "export SOURCES__SEGMENT_SOURCE__API_KEY=my-token" in lines
    headers = {"Authorization": "Bearer my-token"}
    workspace = requests.get(url + "/", headers=headers, timeout=10).json()["data"]["workspace"]
    assert workspace["slug"] == "shop"
    sources = requests.get(url + "/sources", headers=headers, timeout=10).json()["data"]["sources"]
    assert len(sources) == 6  # the small workspace
    assert requests.get(url + "/sources", headers={"Authorization": "Bearer sim-token"}, timeout=10).status_code == 401


def test_the_command_serves_the_config_api_with_rate_limits(serve):
    lines = serve("--config-api", "--rate-limit", "2", "--rate-window", "60")
    url = url_in(lines[0])
    assert url.endswith("/v1beta")
    assert "export SOURCES__SEGMENT_CONFIG_API__WORKSPACE=acme" in lines
    headers = {"Authorization": "Bearer sim-token"}
    answers = [requests.get(url + "/workspaces/acme/sources", headers=headers, timeout=10) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert len(answers[0].json()["sources"]) == 6


def test_help_describes_every_option():
    result = subprocess.run(
        [sys.executable, "-m", "segment_simulator", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert [option for option in OPTIONS if option not in result.stdout] == []
