"""What a finished run tells its user: rows per table and where the data is."""

from typing import List, Tuple

import dlt

from segment_source.source import HISTORY_SUFFIX


def table_counts(pipeline: dlt.Pipeline, tables: List[str]) -> List[Tuple[str, int, int]]:
    """(table, rows in the current-state table, rows in its history) for each loaded table."""
    existing = set(pipeline.default_schema.data_table_names(seen_data_only=True))
    counts = []
    with pipeline.sql_client() as client:
        for table in tables:
            current = _count(client, table) if table in existing else 0
            history = table + HISTORY_SUFFIX
            versions = _count(client, history) if history in existing else 0
            counts.append((table, current, versions))
    return counts


def _count(client, table: str) -> int:
    return client.execute_sql(f"SELECT count(*) FROM {client.make_qualified_table_name(table)}")[0][0]


def describe_location(pipeline: dlt.Pipeline) -> str:
    """Where the loaded tables are, without any password."""
    credentials = pipeline.destination_client().config.credentials
    name = pipeline.destination.destination_name
    dataset = pipeline.dataset_name
    if name == "duckdb":
        return f"DuckDB file {credentials.database}, schema {dataset}"
    if name == "postgres":
        return f"PostgreSQL database {credentials.database} on {credentials.host}:{credentials.port}, schema {dataset}"
    if name == "snowflake":
        return f"Snowflake database {credentials.database} (account {credentials.host}), schema {dataset.upper()}"
    return f"{name}, dataset {dataset}"
