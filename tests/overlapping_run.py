"""One full run under the run lock, as a scheduler would start it; tests/test_overlapping_runs.py drives it.

    python tests/overlapping_run.py <pipeline name> <destination> <dataset name> [wait seconds]

The token, the simulator's URL and the destination's credentials come from dlt's configuration
(environment variables), never from the command line: the lock records the command line. Prints
"locked" once it holds the lock, then "loaded" at the end; exit 3 with the one paragraph when
another run holds the lock.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(pipeline_name: str, destination: str, dataset_name: str, wait_seconds: str = "0") -> int:
    from segment_source import segment_source
    from segment_source.cli import open_pipeline
    from segment_source.errors import RunInProgressError, explain
    from segment_source.lock import run_lock
    from segment_source.recovery import recover_interrupted_load

    pipeline = open_pipeline(pipeline_name, destination, dataset_name)  # as the script opens it
    try:
        with run_lock(pipeline, float(wait_seconds)):
            print("locked", flush=True)
            recover_interrupted_load(pipeline)
            pipeline.run(segment_source())
    except RunInProgressError as ex:
        message, code = explain(ex)
        print(message, file=sys.stderr)
        return code
    print("loaded", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
