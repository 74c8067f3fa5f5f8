"""Snowflake: everything up to the network load is produced and checked here.

Snowflake cannot be reached from the test machine, so the test extracts and normalizes with
`destination="snowflake"` and generates, offline, the merge SQL the loader would run.
"""

import dlt
from dlt.destinations.impl.snowflake.snowflake import SnowflakeMergeJob

from segment_source import segment_source
from tests.support import CURRENT_TABLES, SURFACE

FAKE_CREDENTIALS = "snowflake://LOADER:not-a-real-password@kgiotue-wn98412/SEGMENT?warehouse=COMPUTE_WH&role=LOADER"


def test_a_snowflake_load_package_holds_every_table(simulator, tmp_path, monkeypatch):
    pipeline = dlt.pipeline(
        "sf_package", destination="snowflake", dataset_name="segment_data", pipelines_dir=str(tmp_path)
    )
    pipeline.extract(segment_source(api_key=simulator.token, base_url=simulator.url))
    pipeline.normalize()

    (load_id,) = pipeline.list_normalized_load_packages()
    jobs = pipeline.get_load_package_info(load_id).jobs["new_jobs"]
    tables = {job.job_file_info.table_name for job in jobs}
    assert set(SURFACE) <= tables
    assert {table + "_history" for table in CURRENT_TABLES} <= tables
    assert {"sources__write_keys", "sources_history__labels"} <= tables
    assert {job.job_file_info.file_format for job in jobs} == {"jsonl"}  # Snowflake's preferred staging format

    # the merge that will run in Snowflake replaces exactly this workspace's rows
    monkeypatch.setenv("DESTINATION__SNOWFLAKE__CREDENTIALS", FAKE_CREDENTIALS)
    client = pipeline.destination_client()
    chain = [client.prepare_load_table(t) for t in ("sources", "sources__labels", "sources__write_keys")]
    sql = "\n".join(SnowflakeMergeJob.gen_merge_sql(chain, client.sql_client))
    scope = f"(workspace_id = '{simulator.workspace.id}')"
    assert f'DELETE FROM "SEGMENT_DATA"."SOURCES" WHERE {scope}' in sql
    assert (
        'DELETE FROM "SEGMENT_DATA"."SOURCES__LABELS"'
        f' WHERE "_DLT_ROOT_ID" IN (SELECT "_DLT_ID" FROM "SEGMENT_DATA"."SOURCES" WHERE {scope})' in sql
    )
    # only staged rows of workspaces read completely are merged (the source filter)
    assert f'FROM "SEGMENT_DATA_STAGING"."SOURCES" WHERE {scope}' in sql
    assert '"WORKSPACE_ID"' in sql  # unquoted workspace_id in the scope folds to this column
