"""The pipeline script, killed with SIGKILL at a chosen point; tests/test_interrupted.py drives it.

    python tests/interrupted_run.py [kill point] -- <pipeline script arguments>

Kill points (the process dies as `kill -9` would kill it, with no cleanup):
- normalize:  after the second extracted file was normalized
- load_jobs:  once the first load jobs completed, with others running
- merge:      right after the first merge SQL committed, before the other tables' merges
Extract is interrupted from outside (the test kills the process while pages are being read).
"""

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def after(owner: type, name: str, when, sig: signal.Signals = signal.SIGKILL) -> None:
    """`owner.name` sends the process `sig` once it returned, each time `when(args, result)` holds."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        if when(args, result):
            os.kill(os.getpid(), sig)
        return result

    setattr(owner, name, wrapper)


def install(point: str) -> None:
    if point == "normalize":
        from dlt.normalize.items_normalizers.jsonl import JsonLItemsNormalizer

        calls = [0]

        def second_file_normalized(args, result):
            calls[0] += 1
            return calls[0] >= 2

        after(JsonLItemsNormalizer, "__call__", second_file_normalized)
    elif point == "load_jobs":
        from dlt.load.load import Load

        after(Load, "complete_jobs", lambda args, result: bool(result[1]))  # (remaining, finalized, error)
    elif point == "merge":
        from dlt.destinations.sql_client import SqlClientBase

        after(SqlClientBase, "execute_many", lambda args, result: any("DELETE FROM" in s for s in args[1]))
    elif point != "none":
        raise SystemExit(f"unknown kill point {point!r}")


if __name__ == "__main__":
    install(sys.argv[1])
    from pipelines.segment_pipeline import main

    sys.exit(main(sys.argv[3:]))
