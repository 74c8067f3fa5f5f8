"""The pipeline script, sent SIGINT or SIGTERM by itself as a load step's last round of jobs ends;
tests/test_interrupt.py drives it.

    python tests/late_signal_run.py INT|TERM -- <pipeline script arguments>

dlt holds these signals back during normalize and load and looks for one between rounds of jobs;
this one arrives after the last look, as a Ctrl-C or an orchestrator's SIGTERM can.
"""

import os
import signal
import sys
from pathlib import Path
from typing import List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    from dlt.load.load import Load

    from segment_source.cli import main as script

    sig = signal.Signals[f"SIG{sys.argv[1]}"]
    complete_package = Load.complete_package
    sent: List[signal.Signals] = []

    def complete_and_signal(*args, **kwargs):
        result = complete_package(*args, **kwargs)
        if not sent:  # the first load step only: the main one
            sent.append(sig)
            os.kill(os.getpid(), sig)
        return result

    Load.complete_package = complete_and_signal  # type: ignore[method-assign]
    return script(sys.argv[sys.argv.index("--") + 1 :])


if __name__ == "__main__":
    sys.exit(main())
