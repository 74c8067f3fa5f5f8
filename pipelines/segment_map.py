"""Draw the loaded workspace as one self-contained HTML page: sources, their destinations and warehouses.

    python pipelines/segment_map.py --output map.html                         # ./segment_pipeline.duckdb
    python pipelines/segment_map.py --destination postgres --dataset-name segment_data --output map.html
    python pipelines/segment_map.py --demo --output map.html                  # after segment_pipeline.py --demo

It reads what `segment_pipeline.py` loaded, with the same dlt configuration (.dlt/secrets.toml or
environment variables), and makes no request to Segment. The page needs no network to be viewed.
Exit code 0 on success, 1 when the dataset cannot be read, 2 for a usage error.
"""

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from segment_source.cli import open_pipeline
from segment_source.errors import explain
from segment_source.workspace_map import read_map, render_html

# the pipeline script's names: the same DuckDB file and dataset
PIPELINE_NAME = "segment_pipeline"
DEMO_PIPELINE_NAME = "segment_demo"
DATASET_NAME = "segment_data"


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--destination", choices=("duckdb", "postgres"), default="duckdb", help="default: duckdb")
    parser.add_argument("--dataset-name", default=DATASET_NAME, help=f"default: {DATASET_NAME}")
    parser.add_argument("--output", required=True, metavar="FILE.html", help="the HTML file to write")
    parser.add_argument("--demo", action="store_true", help="read what `segment_pipeline.py --demo` loaded")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        pipeline = open_pipeline(
            DEMO_PIPELINE_NAME if args.demo else PIPELINE_NAME, args.destination, args.dataset_name
        )
        data = read_map(pipeline)
    except Exception as ex:  # noqa: BLE001 - every failure gets one readable paragraph
        message, code = explain(ex)
        if message is None:
            raise
        print(f"\nError: {message}", file=sys.stderr)
        return code
    if not data["sources"]:
        print(
            f"Error: no sources in dataset {args.dataset_name!r} on {args.destination}. Load the workspace first"
            " (python pipelines/segment_pipeline.py), with the same --destination and --dataset-name.",
            file=sys.stderr,
        )
        return 1
    Path(args.output).write_text(render_html(data), encoding="utf-8")
    print(
        f"Wrote {args.output}: {len(data['sources'])} sources, {len(data['destinations'])} destinations,"
        f" {len(data['warehouses'])} warehouses, {len(data['plans'])} tracking plans. Open it in a browser."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
