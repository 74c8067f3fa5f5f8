"""`segment_source.dagster`: every table an asset, materialized in-process against the simulator.

Skipped only where Dagster is not installed (`pip install -e ".[dagster]"`; `.ci/run` installs it).
"""

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterator

import dlt
import pytest

from segment_simulator import Quirks, SegmentSimulator, generate_workspace
from tests.support import expected, loaded, rows

dg = pytest.importorskip("dagster")

from segment_source.dagster import build_definitions  # noqa: E402 - after the skip
from segment_source.errors import ConfigurationError  # noqa: E402
from segment_source.lock import run_lock  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """Set dlt's configuration as a user would, in environment variables; DuckDB and dlt's dir in tmp_path."""

    def configure(sim: SegmentSimulator, api_key: str, **dagster: str) -> None:
        monkeypatch.setenv("SOURCES__SEGMENT_SOURCE__API_KEY", api_key)
        monkeypatch.setenv("SOURCES__SEGMENT_SOURCE__BASE_URL", sim.url)
        for key, value in dagster.items():
            monkeypatch.setenv(f"SOURCES__SEGMENT_SOURCE__SCHEDULE__{key.upper()}", value)

    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(tmp_path / "segment.duckdb"))
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))
    yield configure


def attach(tmp_path: Path, name: str) -> dlt.Pipeline:
    return dlt.pipeline(
        name, destination=dlt.destinations.duckdb(str(tmp_path / "segment.duckdb")), dataset_name="segment_data"
    )


def materialized(result: Any) -> Dict[str, int]:
    """Table -> rows loaded, of every asset the run materialized."""
    return {
        event.asset_key.path[-1]: event.materialization.metadata["rows_loaded"].value
        for event in result.get_asset_materialization_events()
    }


def test_every_table_the_run_writes_is_an_asset_after_its_parent_holding_the_simulators_rows(configure, tmp_path):
    ws = generate_workspace("small")
    with SegmentSimulator(ws) as sim:
        configure(sim, sim.token)
        defs = build_definitions()
        result = defs.resolve_job_def("segment_job").execute_in_process()
    assert result.success
    pipeline = attach(tmp_path, "segment_pipeline")
    written = set(pipeline.default_schema.data_table_names(seen_data_only=True))
    assets = materialized(result)
    assert {key.path[-1] for key in defs.resolve_all_asset_keys()} == set(assets), "every asset materialized"
    assert written <= set(assets), "every table written is an asset"
    assert {"sources__labels", "sources_history__labels", "users__permissions"} <= set(assets)
    assert loaded(pipeline) == expected(ws)
    graph = defs.resolve_asset_graph()
    deps = {key.path[-1]: {p.path[-1] for p in graph.get(key).parent_keys} for key in graph.get_all_asset_keys()}
    assert deps["sources"] == set() and deps["sources_history"] == {"sources"}
    assert deps["changes"] == {table for table in assets if table.endswith("_history")}
    assert assets["changes"] == rows(pipeline, "SELECT count(*) FROM {changes}")[0][0] > 0
    children = {
        t["name"]: t["parent"] for t in pipeline.default_schema.data_tables(seen_data_only=True) if t.get("parent")
    }
    assert children, "child tables were written"
    assert {child: deps[child] for child in children} == {child: {parent} for child, parent in children.items()}
    assert assets["sources"] == len(ws.ids("sources")) and assets["sources_history"] == len(ws.ids("sources"))


def test_several_tokens_run_as_named_partitions_with_their_own_state_into_one_dataset(configure, tmp_path):
    a, b = generate_workspace("small", slug="alpha"), generate_workspace("small", slug="beta")
    with SegmentSimulator({"tok-a": a, "tok-b": b}) as sim:
        configure(sim, "tok-a,tok-b", workspaces='["alpha", "beta"]', cron="15 3 * * *")
        defs = build_definitions()
        job = defs.resolve_job_def("segment_job")
        assert job.partitions_def.get_partition_keys() == ["alpha", "beta"]
        for key in ("alpha", "beta"):
            assert job.execute_in_process(partition_key=key).success
    for name, ws in (("segment_pipeline_alpha", a), ("segment_pipeline_beta", b)):
        cursors = attach(tmp_path, name).state["sources"]["segment"]["resources"]["audit_events"]
        assert set(cursors) == {ws.id}, "each partition keeps its own workspace's state"
    pipeline = attach(tmp_path, "segment_pipeline_alpha")
    both = loaded(pipeline, ["sources", "destinations"])
    for table in ("sources", "destinations"):
        assert both[table] == expected(a)[table] | expected(b)[table], table
    schedule = defs.resolve_schedule_def("segment_schedule")
    assert schedule.cron_schedule == "15 3 * * *"
    when = datetime(2026, 11, 30, 3, 15, tzinfo=timezone.utc)
    tick = dg.build_schedule_context(scheduled_execution_time=when, repository_def=defs.get_repository_def())
    assert [r.partition_key for r in schedule.evaluate_tick(tick).run_requests] == ["alpha", "beta"]


def test_workspaces_of_one_dataset_share_one_pool_so_their_runs_never_overlap(configure):
    with SegmentSimulator(generate_workspace("small")) as sim:
        configure(sim, "tok-a,tok-b")
        defs = build_definitions()
        configure(sim, sim.token, dataset_name="other")
        other = build_definitions()
    assert defs.resolve_job_def("segment_job").partitions_def.get_partition_keys() == ["workspace_1", "workspace_2"]
    assert defs.get_assets_def(dg.AssetKey(["segment", "sources"])).op.pool == "segment_segment_data"
    assert other.get_assets_def(dg.AssetKey(["segment", "sources"])).op.pool == "segment_other"


def test_a_failed_workspace_fails_the_run_with_one_paragraph_and_no_token(configure):
    a = generate_workspace("small", slug="alpha")
    with SegmentSimulator({"tok-a": a}) as sim:
        configure(sim, "tok-a,tok-revoked", resources='["workspace", "sources"]')
        job = build_definitions().resolve_job_def("segment_job")
        assert job.execute_in_process(partition_key="workspace_1").success
        result = job.execute_in_process(partition_key="workspace_2", raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "401" in failure.message and "tok-revoked" not in str(failure)


def test_a_scheduled_run_records_the_change_feed_as_the_script_does(configure, tmp_path):
    ws = generate_workspace("small")
    with SegmentSimulator(ws) as sim:
        configure(sim, sim.token, resources='["workspace", "sources"]')
        job = build_definitions().resolve_job_def("segment_job")
        assert job.execute_in_process().success
        ws.rename("sources", ws.ids("sources")[0], "Renamed between runs")
        assert job.execute_in_process().success
    changed = rows(
        attach(tmp_path, "segment_pipeline"), "SELECT change, object_name FROM {changes} WHERE NOT initial_load"
    )
    assert changed == [("updated", "Renamed between runs")]


def test_a_failed_table_fails_the_scheduled_run_after_every_other_table_loads(configure, tmp_path):
    quirks = Quirks().refuse("/destinations", 422)
    with SegmentSimulator(generate_workspace("small"), quirks=quirks) as sim:
        configure(sim, sim.token, resources='["workspace", "sources", "destinations"]')
        job = build_definitions().resolve_job_def("segment_job")
        result = job.execute_in_process(raise_on_error=False)
        sources = set(sim.workspace.ids("sources"))
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "destinations" in failure and "422" in failure and sim.token not in failure
    assert {i for (i,) in rows(attach(tmp_path, "segment_pipeline"), "SELECT id FROM {sources}")} == sources


def test_a_scheduled_run_is_refused_while_another_run_of_its_pipeline_holds_the_lock(configure, tmp_path):
    with SegmentSimulator(generate_workspace("small")) as sim:
        configure(sim, sim.token, resources='["workspace", "sources"]')
        job = build_definitions().resolve_job_def("segment_job")
        with run_lock(attach(tmp_path, "segment_pipeline")):
            result = job.execute_in_process(raise_on_error=False)
        assert sim.requests == []
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "Another run of pipeline segment_pipeline into dataset segment_data is in progress" in failure


def test_dagster_loads_the_module_as_its_code_location(tmp_path):
    importing = subprocess.run(
        [sys.executable, "-c", "import sys, segment_source; assert 'dagster' not in sys.modules"], cwd=REPO
    )
    assert importing.returncode == 0, "importing segment_source must not import dagster"
    env = {"SOURCES__SEGMENT_SOURCE__API_KEY": "tok-a", "DAGSTER_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    dagster_cli = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster_cli), "definitions", "validate", "-m", "segment_source.dagster"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workspace_names_that_do_not_match_the_tokens_are_refused_naming_the_setting(monkeypatch):
    monkeypatch.setenv("SOURCES__SEGMENT_SOURCE__API_KEY", "tok-a,tok-b")
    monkeypatch.setenv("SOURCES__SEGMENT_SOURCE__SCHEDULE__WORKSPACES", '["alpha"]')
    with pytest.raises(ConfigurationError) as refused:
        build_definitions()
    assert "SOURCES__SEGMENT_SOURCE__SCHEDULE__WORKSPACES" in str(refused.value)
    assert "tok-a" not in str(refused.value)
