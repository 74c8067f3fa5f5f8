"""The pipeline script, sent SIGINT or SIGTERM by itself as a load step's last round of jobs ends;
tests/test_interrupt.py drives it.

    python tests/late_signal_run.py INT|TERM -- <pipeline script arguments>

dlt holds these signals back during normalize and load and looks for one between rounds of jobs;
this one arrives after the last look, as a Ctrl-C or an orchestrator's SIGTERM can.
"""

import signal
import sys
from pathlib import Path
from typing import List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    from dlt.load.load import Load

    from segment_source.cli import main as script
    from tests.interrupted_run import after

    calls: List[object] = []

    def first_package(args, result) -> bool:  # the first load step only: the main one
        calls.append(args[0])
        return len(calls) == 1

    after(Load, "complete_package", first_package, signal.Signals[f"SIG{sys.argv[1]}"])
    return script(sys.argv[sys.argv.index("--") + 1 :])


if __name__ == "__main__":
    sys.exit(main())
