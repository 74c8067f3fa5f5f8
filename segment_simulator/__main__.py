"""Serve a simulated Segment workspace on 127.0.0.1 until Ctrl+C (or SIGTERM), for your own tests:

    python -m segment_simulator --size medium --port 8765

It prints the URL, the token and the environment variables that point the loader at it. Options:

  --size small|medium|large  how big the generated workspace is (`SIZES`): small fits every list in
                             one page; medium and large span many pages (default small)
  --seed N                   the workspace's random seed: the same seed, the same ids, names and
                             secrets (default 0)
  --slug SLUG                the workspace's slug (default acme; the Config API's paths carry it)
  --port PORT                the port to listen on; 0 picks a free one (default 8765)
  --token TOKEN              the API token the workspace answers to (default sim-token)
  --config-api               serve the legacy Config API (`<url>/v1beta`) instead of the Public API
  --fault-rate RATE          the share of requests, 0..1, that get a random fault: a 5xx, a dropped
                             connection, a slow, truncated or unexpected answer (default 0: none)
  --fault-seed N             the seed of the faults: the same seed, the same faults (default 0)
  --latency-ms MS            a fixed delay before every answer (default 0)
  --rate-limit N             allow N requests per token per window, then answer 429 as Segment does
                             (with the endpoints' own limits too); default: no rate limits
  --rate-window SECONDS      the length of a rate-limit window (default 60, Segment's minute)

Faults and rate limits are those of `faults.py` (`Faults`, `RateLimits`).
"""

import argparse
import signal
import sys
import time
from typing import List, Optional

from segment_simulator import (
    SIZES,
    ConfigApiSimulator,
    Faults,
    RateLimits,
    SegmentSimulator,
    generate_workspace,
)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m segment_simulator",
        description="Serve a simulated Segment workspace (Public API, or the legacy Config API) on 127.0.0.1; "
        "print the environment variables that point the loader at it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--size", choices=list(SIZES), default="small", help="how big the generated workspace is")
    parser.add_argument("--seed", type=int, default=0, help="the workspace's random seed")
    parser.add_argument("--slug", default="acme", help="the workspace's slug")
    parser.add_argument("--port", type=int, default=8765, help="the port to listen on; 0 picks a free one")
    parser.add_argument("--token", default="sim-token", help="the API token the workspace answers to")
    parser.add_argument("--config-api", action="store_true", help="serve the legacy Config API instead")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests (0..1) with a random fault")
    parser.add_argument("--fault-seed", type=int, default=0, help="the seed of the random faults")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="a fixed delay before every answer")
    parser.add_argument(
        "--rate-limit", type=int, metavar="N", help="requests per token per window; None: no rate limits"
    )
    parser.add_argument("--rate-window", type=float, default=60.0, metavar="SECONDS", help="a rate-limit window")
    args = parser.parse_args(argv)
    if not 0 <= args.fault_rate <= 1:
        parser.error(f"--fault-rate must be between 0 and 1, got {args.fault_rate}")
    return args


def loader_settings(sim: SegmentSimulator, config_api: bool) -> List[str]:
    """The environment variables that point the loader (`segment_source` / `segment_config_api`) at `sim`."""
    if config_api:
        section = "SOURCES__SEGMENT_CONFIG_API__"
        values = {"BASE_URL": sim.url, "ACCESS_TOKEN": sim.token, "WORKSPACE": sim.workspace.slug}
    else:
        section = "SOURCES__SEGMENT_SOURCE__"
        values = {"BASE_URL": sim.url, "API_KEY": sim.token}
    return [f"{section}{name}={value}" for name, value in values.items()]


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)  # before generating: --help and mistakes answer at once
    simulator = ConfigApiSimulator if args.config_api else SegmentSimulator
    faults = Faults(args.fault_rate, seed=args.fault_seed, latency_ms=args.latency_ms)
    rate_limits = RateLimits(args.rate_limit, window=args.rate_window) if args.rate_limit else None
    workspace = generate_workspace(args.size, slug=args.slug, seed=args.seed)
    # SIGTERM stops the server like Ctrl+C: the `with` block closes the port and joins its threads
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with simulator(
        workspace,
        token=args.token,
        port=args.port,
        rate_limits=rate_limits,
        faults=faults if args.fault_rate or args.latency_ms else None,
    ) as sim:
        api = "legacy Config API" if args.config_api else "Public API"
        print(f"Segment {api} simulator at {sim.url} (token: {sim.token}); Ctrl+C stops it.", flush=True)
        print("Point the loader at it with:", flush=True)
        for setting in loader_settings(sim, args.config_api):
            print(f"  export {setting}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
