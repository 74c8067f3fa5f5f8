"""Send rows from your warehouse (or a JSON lines file) to Segment as Tracking API events.

    python pipelines/segment_tracking.py --demo      # traits computed in DuckDB -> the tracking simulator
    python pipelines/segment_tracking.py --table user_traits --call identify --key user_id
    python pipelines/segment_tracking.py --query "SELECT user_id, plan FROM segment_data.users" --call identify
    python pipelines/segment_tracking.py --jsonl events.jsonl --call track
    python pipelines/segment_tracking.py --warehouse postgres --table orders --call track

The warehouse is the one this package loads, found through dlt's configuration ([destination.duckdb]
or [destination.postgres] credentials; default ./segment_pipeline.duckdb). The write key comes from
[destination.segment_tracking] in .dlt/secrets.toml or DESTINATION__SEGMENT_TRACKING__WRITE_KEY. A
run that was killed is finished by the next run, which then stops: the rows the killed run had not
confirmed are sent with the same messageIds, nothing else. Exit code 0 on success, 1 when sending
failed, 2 for a configuration or usage error; failures print one paragraph, never the write key.
"""

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

import dlt
from dlt.common.configuration import resolve_configuration
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.json import json
from dlt.common.pipeline import LoadInfo
from dlt.destinations.exceptions import DatabaseException

from segment_source.cli import open_pipeline
from segment_source.errors import ConfigurationError, SegmentSourceError, explain
from segment_source.tracking import (
    CALL_TYPES,
    SegmentTrackingConfiguration,
    segment_call,
    segment_tracking,
    tracking_summary,
)

PIPELINE_NAME = "segment_tracking"
DEMO_PIPELINE_NAME = "segment_tracking_demo"
WAREHOUSE_PIPELINE = "segment_pipeline"  # the loader's name: its DuckDB file is the default warehouse
WAREHOUSES = ("duckdb", "postgres")
FETCH_ROWS = 5000
DEMO_WRITE_KEY = "wk_demo_simulator"
DEMO_DATABASE = "segment_tracking_demo.duckdb"
DEMO_TRAITS_QUERY = """
SELECT u.user_id, u.email, u.plan,
       count(o.order_id) AS orders,
       coalesce(sum(o.amount), 0) AS lifetime_value,
       max(o.ordered_at) AS last_order_at
  FROM shop.users u LEFT JOIN shop.orders o ON o.user_id = u.user_id
 GROUP BY ALL
"""
WRITE_KEY_HINT = (
    "No Segment write key is configured. Copy the write key of the source to send to (Segment: Connections >"
    " Sources > <source> > Settings > API Keys) into .dlt/secrets.toml as\n\n"
    '    [destination.segment_tracking]\n    write_key = "<write key>"\n\n'
    "or set DESTINATION__SEGMENT_TRACKING__WRITE_KEY. To try it without a key, run with --demo."
)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--table", help="a table of the warehouse dataset (--dataset-name) to send")
    what.add_argument("--query", help="a SQL query on the warehouse whose rows to send")
    what.add_argument("--jsonl", type=Path, help="a JSON lines file, one row per line")
    what.add_argument("--demo", action="store_true", help="demo traits computed in DuckDB, sent to a simulator")
    parser.add_argument("--warehouse", choices=WAREHOUSES, default="duckdb", help="where --table/--query read")
    parser.add_argument("--dataset-name", default="segment_data", help="the dataset of --table (default segment_data)")
    parser.add_argument(
        "--call", choices=CALL_TYPES, help="call type of every row (default: a type column, else the table name)"
    )
    parser.add_argument("--key", help="comma-separated columns that identify a row (shown for rows not sent)")
    return parser.parse_args(argv)


def check_write_key() -> None:
    """Fail before reading anything when the write key, region or base_url is missing or wrong."""
    try:
        resolve_configuration(SegmentTrackingConfiguration(), sections=("destination", "segment_tracking"))
    except ConfigFieldMissingException as ex:
        if "write_key" in ex.fields:
            raise ConfigurationError(WRITE_KEY_HINT) from None
        raise


def warehouse_rows(
    warehouse: Any, dataset_name: str, sql: str, stack: contextlib.ExitStack
) -> Iterator[Dict[str, Any]]:
    """Rows of `sql` on the warehouse dlt's configuration names, streamed. The query runs now: a dlt
    pipeline cannot be opened while another one extracts."""
    reader = open_pipeline(WAREHOUSE_PIPELINE, warehouse, dataset_name)
    client: Any = stack.enter_context(reader.sql_client())  # type: ignore[arg-type]  # a context manager
    try:
        cursor = stack.enter_context(client.execute_query(sql))
    except DatabaseException as ex:
        raise ConfigurationError(
            f"The warehouse could not run the query ({str(ex).strip().splitlines()[0]}). Check --table or --query"
            " and --dataset-name; table names are those of the warehouse. Nothing was sent."
        ) from None
    columns = [c[0] for c in cursor.description]

    def rows() -> Iterator[Dict[str, Any]]:
        while batch := cursor.fetchmany(FETCH_ROWS):
            yield from (dict(zip(columns, row, strict=True)) for row in batch)

    return rows()


def jsonl_rows(path: Path) -> Iterator[Dict[str, Any]]:
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    yield json.loadb(line)
                except ValueError:
                    raise ConfigurationError(
                        f"{path} line {number} is not JSON: fix or remove it, then run again."
                    ) from None


def rows_to_send(args: argparse.Namespace, stack: contextlib.ExitStack) -> Any:
    """The dlt resource of the rows to send, named after the table (so a table named `identify` is identify)."""
    if args.jsonl:
        if not args.jsonl.is_file():
            raise ConfigurationError(f"--jsonl {args.jsonl}: no such file.")
        name, rows = args.jsonl.stem, jsonl_rows(args.jsonl)
    elif args.table:
        table = args.table.replace('"', "")
        name, rows = (
            table,
            warehouse_rows(args.warehouse, args.dataset_name, f'SELECT * FROM {args.dataset_name}."{table}"', stack),
        )
    else:
        name, rows = "query", warehouse_rows(args.warehouse, args.dataset_name, args.query, stack)
    keys = [k.strip() for k in args.key.split(",")] if args.key else None
    return segment_call(dlt.resource(rows, name=name), args.call, key=keys)


def demo_warehouse(path: Path) -> None:
    """A small shop in DuckDB: 200 users, their orders, and one user without an id (it cannot be sent)."""
    import duckdb

    with duckdb.connect(str(path)) as db:
        db.sql("DROP SCHEMA IF EXISTS shop CASCADE; CREATE SCHEMA shop")
        db.sql(
            "CREATE TABLE shop.users AS SELECT 'user_' || i AS user_id, 'user' || i || '@example.com' AS email,"
            " CASE WHEN i % 3 = 0 THEN 'pro' ELSE 'free' END AS plan FROM range(1, 201) t(i)"
            " UNION ALL SELECT NULL, 'no-id@example.com', 'free'"
        )
        db.sql(
            "CREATE TABLE shop.orders AS SELECT i AS order_id, 'user_' || (i % 150 + 1) AS user_id,"
            " round(10 + (i * 37 % 500) / 10, 2)::DECIMAL(10, 2) AS amount,"
            " TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_hours(i) AS ordered_at FROM range(1, 1001) t(i)"
        )


@contextlib.contextmanager
def destination_for(demo: bool) -> Iterator[Any]:
    if not demo:
        check_write_key()
        yield segment_tracking()
        return
    from segment_simulator import TrackingSimulator

    with TrackingSimulator(write_keys=[DEMO_WRITE_KEY]) as sim:
        print(f"Demo: a simulated Segment Tracking API is listening at {sim.url}.")
        yield segment_tracking(write_key=DEMO_WRITE_KEY, base_url=sim.url)
        print(f"The simulator accepted {len(sim.accepted)} events in {len(sim.requests)} requests.")
        if sim.accepted:
            print(f"One of them: {json.dumps(sim.accepted[0])}")


def run(args: argparse.Namespace) -> LoadInfo:
    if args.demo:
        demo_warehouse(Path(DEMO_DATABASE))
        args.query, args.call, args.key = DEMO_TRAITS_QUERY, "identify", "user_id"
        args.warehouse = dlt.destinations.duckdb(DEMO_DATABASE)
        print(f"Demo: traits of 200 shop users computed in DuckDB ({DEMO_DATABASE}), sent as identify calls.")
    with contextlib.ExitStack() as stack:
        destination = stack.enter_context(destination_for(args.demo))
        pipeline = open_pipeline(DEMO_PIPELINE_NAME if args.demo else PIPELINE_NAME, destination)
        resumed = pipeline.has_pending_data
        if resumed:
            print("A previous run was interrupted: finishing it (same rows, same messageIds); nothing new is read.")
        info = pipeline.run(None if resumed else rows_to_send(args, stack))
    print(tracking_summary(pipeline, info))
    return info


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    # a failed job is explained below in one paragraph; dlt would log it again with a traceback
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "CRITICAL")
    try:
        run(args)
    except Exception as ex:  # noqa: BLE001 - every failure gets one readable paragraph
        message, code = explain(_client_exception(ex))
        if message is None:
            raise
        print(f"\nError: {message}", file=sys.stderr)
        return code
    return 0


def _client_exception(ex: BaseException) -> BaseException:
    """What a load job raised: dlt keeps it on `client_exception`, outside the cause chain `explain` follows."""
    todo: List[Optional[BaseException]] = [ex]
    while todo:
        current = todo.pop()
        if isinstance(current, SegmentSourceError):
            return current
        if current is not None:
            todo += [getattr(current, "client_exception", None), getattr(current, "exception", None), current.__cause__]
    return ex


if __name__ == "__main__":
    sys.exit(main())
