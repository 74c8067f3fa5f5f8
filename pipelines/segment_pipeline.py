"""The `segment-pipeline` command, runnable from a checkout: `python pipelines/segment_pipeline.py --demo`.

Everything lives in `segment_source/cli.py`; this file stays for scripts and CI that call it by path.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segment_source.cli import main  # noqa: E402 - after the checkout is on the path

if __name__ == "__main__":
    sys.exit(main())
