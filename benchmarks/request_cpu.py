"""CPU per request of each layer the client stands on, against the simulator over loopback.

    .venv/bin/python -m benchmarks.request_cpu [--requests 300] [--rounds 5]

The simulator runs in a child process; this process sends the same fan-out requests (one
destination's filters each, a small answer, as most of a run's requests are) through each layer
in turn, a round at a time, and prints the median CPU of the sending thread per request:
- `http.client`: one kept-alive connection and `json.loads`, the floor;
- `urllib3`: what requests sends with;
- `requests.Session`: `get(...).json()`, without reading the environment;
- `SegmentClient, as requests and dlt do it`: the client with requests' own `prepare_request` and
  `merge_environment_settings` and dlt's `_log_request` (what it used before it did these itself);
- `SegmentClient`: the client as it is (dlt's `RESTClient`, the paginator, pacing, envelope checks).
"""

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import time
from functools import partial
from typing import Callable, Dict, List
from urllib.parse import urlsplit

import requests
import urllib3
from dlt.sources.helpers.rest_client import RESTClient

from segment_source.client import SegmentClient, SegmentSession

TOKEN = "sim-token"


def start_simulator() -> "tuple[subprocess.Popen[str], str]":
    process = subprocess.Popen(
        [sys.executable, "-m", "segment_simulator", "--size", "small", "--port", "0", "--rate-limit", "1000000"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # "Segment Public API simulator at http://127.0.0.1:PORT (token: ...)"
    return process, line.split(" at ", 1)[1].split()[0]


def layers(base: str) -> Dict[str, Callable[[str], object]]:
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port)

    def raw(path: str) -> object:
        connection.request("GET", f"/{path}?pagination%5Bcount%5D=1000", headers=headers)
        response = connection.getresponse()
        assert response.status == 200, response.status
        return json.loads(response.read())

    pool = urllib3.PoolManager()
    count = {"pagination[count]": "1000"}
    session = requests.Session()
    session.trust_env = False
    ours = SegmentClient(base, TOKEN)
    theirs = SegmentClient(base, TOKEN)
    # requests' own preparation and merge, and dlt's log line, for this client only
    session_of_theirs = theirs._rest.session
    session_of_theirs.prepare_request = partial(requests.Session.prepare_request, session_of_theirs)  # type: ignore[method-assign]
    session_of_theirs.merge_environment_settings = partial(  # type: ignore[method-assign]
        requests.Session.merge_environment_settings, session_of_theirs
    )
    theirs._rest._log_request = partial(RESTClient._log_request, theirs._rest)  # type: ignore[method-assign]
    assert isinstance(ours._rest.session, SegmentSession)
    return {
        "http.client": raw,
        "urllib3": lambda p: pool.request("GET", f"{base}/{p}", fields=count, headers=headers).json(),
        "requests.Session": lambda p: session.get(f"{base}/{p}", params=count, headers=headers).json(),
        "SegmentClient, as requests and dlt do it": lambda p: list(theirs.pages(p, "filters", 1000)),
        "SegmentClient": lambda p: list(ours.pages(p, "filters", 1000)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per layer and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    process, base = start_simulator()
    try:
        listed = requests.get(f"{base}/destinations", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        ids = [d["id"] for d in listed.json()["data"]["destinations"]]
        paths = [f"destination/{ids[n % len(ids)]}/filters" for n in range(args.requests)]
        sends = layers(base)
        cpu: Dict[str, List[float]] = {name: [] for name in sends}
        for _ in range(args.rounds):
            for name, send in sends.items():
                started = time.thread_time()
                for path in paths:
                    send(path)
                cpu[name].append((time.thread_time() - started) / len(paths) * 1e6)
    finally:
        process.terminate()
        process.wait()
    floor = statistics.median(cpu["http.client"])
    print(f"{args.requests} requests a layer, {args.rounds} rounds; median CPU of the sending thread per request")
    print(f"{'layer':<42} {'µs':>6} {'÷ http.client':>14}  rounds")
    for name, values in cpu.items():
        median = statistics.median(values)
        print(f"{name:<42} {median:>6.0f} {median / floor:>14.1f}  {', '.join(f'{v:.0f}' for v in values)}")


if __name__ == "__main__":
    main()
