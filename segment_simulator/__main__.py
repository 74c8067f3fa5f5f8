"""Run the simulator in the foreground: `python -m segment_simulator --size medium`."""

import argparse
import time

from segment_simulator import SIZES, SegmentSimulator, generate_workspace


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a simulated Segment Public API on 127.0.0.1.")
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--token", default="sim-token")
    args = parser.parse_args()
    with SegmentSimulator(generate_workspace(args.size, seed=args.seed), token=args.token, port=args.port) as sim:
        print(f"Segment simulator at {sim.url} (token: {sim.token}); Ctrl+C stops it.", flush=True)
        print(f"  SOURCES__SEGMENT_SOURCE__BASE_URL={sim.url} SOURCES__SEGMENT_SOURCE__API_KEY={sim.token}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
