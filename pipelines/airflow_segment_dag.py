"""Airflow 3 DAG: load Segment every hour, one mapped task per workspace, into one dataset.

Install beside Airflow (constrained, as Airflow asks), then put this file in the dags folder:

    pip install "apache-airflow==3.3.2" --constraint \\
        "https://raw.githubusercontent.com/apache/airflow/constraints-3.3.2/constraints-3.11.txt"
    pip install "segment-source[postgres]==0.1.0"

Configured like the script and the Dagster definitions (`segment_source/scheduled.py`): the
token(s) in `[sources.segment_source] api_key` (or `SOURCES__SEGMENT_SOURCE__API_KEY`), the
destination's credentials in `[destination.<name>]`, and `[sources.segment_source.schedule]`
`destination`, `dataset_name`, `cron` (hourly) and `workspaces` (names, one per token).

Why a plain task calling the source, not dlt's `PipelineTasksGroup` (dlt.helpers.airflow_helper):
- a failed workspace must fail its task with the script's one-paragraph error; the group runs
  `pipeline.run` and never sees the source's `RunReport` (failed workspaces, skipped features);
- the group needs a source instance when the DAG file is parsed, so a token on every scheduler
  parse; here the token is read only when the task runs;
- its decompositions split a source into tasks per resource, which this source must not do (the
  resources of a workspace share one client, its rate limits and its failure), and it cannot be
  mapped over workspaces, which Airflow's dynamic task mapping does in one line.
It runs the same code as the Dagster assets (`scheduled.run`, which is `load_segment`): per
workspace its own dlt pipeline and state (kept in the destination, so any worker can run it), the
run lock, recovery of an interrupted load, and the change feed.

Many workspaces: one mapped task instance per workspace, `max_active_tis_per_dag=1` so they run
one after another (two at once would merge into the same tables of the one dataset), and
`max_active_runs=1` so a slow run is not overtaken by the next.
"""

import logging
from datetime import timedelta
from typing import Dict, List, Optional

import pendulum
from airflow.sdk import dag, task  # type: ignore[import-not-found]  # not a dependency of this package

from segment_source.scheduled import read_settings, run

SETTINGS = read_settings()  # dlt's configuration; no request is made while the scheduler parses


@dag(
    dag_id="segment_source",
    schedule=SETTINGS.cron,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["segment", "dlt"],
)
def segment_source_dag() -> None:
    @task(max_active_tis_per_dag=1)
    def load(workspace: Optional[str]) -> Dict[str, int]:
        """Rows written per table; fails (RunFailed, one paragraph) when the workspace or a table
        failed, or another run of its pipeline holds the lock."""
        return run(read_settings(), workspace, logging.getLogger("airflow.task"))

    workspaces: List[Optional[str]] = [*SETTINGS.workspaces] or [None]  # None: every token in one task
    load.expand(workspace=workspaces)


dag_object = segment_source_dag()
