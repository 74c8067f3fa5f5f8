"""`load_segment`: one call for orchestrators, which sees every failure as an exception."""

import os

import dlt
import duckdb
import pytest

from segment_simulator import SegmentSimulator, generate_workspace
from segment_source import RunReport, load_segment, segment_source
from segment_source.errors import WorkspaceFailures
from segment_source.runner import HistoryDropRefused
from tests.support import make_pipeline, rows


def run_segment(pipeline, simulator, *resources, **kwargs):
    """`load_segment` on the simulator's workspace (only `resources`, if named): its `SegmentLoad`."""
    report = RunReport()
    source = segment_source(api_key=simulator.token, base_url=simulator.url, report=report)
    return load_segment(pipeline, source.with_resources(*resources) if resources else source, report, **kwargs)


@pytest.fixture
def duckdb_pipeline(tmp_path):
    return make_pipeline(dlt.destinations.duckdb(str(tmp_path / "segment.duckdb")), tmp_path)


def test_a_failed_workspace_raises_after_the_others_are_loaded(duckdb_pipeline, simulator):
    report = RunReport()
    source = segment_source(api_key=[simulator.token, "sgp_REVOKED_0042"], base_url=simulator.url, report=report)
    with pytest.raises(WorkspaceFailures) as failure:
        load_segment(duckdb_pipeline, source.with_resources("workspace", "sources"), report)
    assert list(failure.value.failed) == ["workspace 2 of 2"] and "401" in str(failure.value)
    assert "sgp_REVOKED_0042" not in str(failure.value)
    assert failure.value.info is not None and failure.value.report is report
    assert rows(duckdb_pipeline, "SELECT id FROM {workspace}") == [(simulator.workspace.id,)]
    assert len(rows(duckdb_pipeline, "SELECT id FROM {sources}")) == len(simulator.workspace.ids("sources"))


def test_a_successful_load_returns_the_load_info_and_the_report(duckdb_pipeline, simulator):
    simulator.workspace.disable("engage", 404)
    report = RunReport()
    source = segment_source(api_key=simulator.token, base_url=simulator.url, report=report)
    info, returned, changes = load_segment(duckdb_pipeline, source.with_resources("sources", "spaces"), report)
    assert not info.has_failed_jobs and returned is report
    assert changes.initial == len(simulator.workspace.ids("sources")), "a first load: every source, marked initial"
    assert len(report.skipped) == 1 and "spaces" in report.skipped[0]


def test_a_source_without_its_report_is_refused(duckdb_pipeline, simulator):
    with pytest.raises(TypeError, match="report=report"):
        load_segment(duckdb_pipeline, segment_source(api_key=simulator.token, base_url=simulator.url))


def test_a_full_refresh_that_would_drop_history_needs_drop_history(duckdb_pipeline, simulator):
    def load(**kwargs):
        return run_segment(duckdb_pipeline, simulator, "sources", **kwargs)

    load()
    simulator.workspace.rename("sources", simulator.workspace.ids("sources")[0], "Renamed")
    load()
    with pytest.raises(HistoryDropRefused) as refused:
        load(full_refresh=True)
    assert "sources_history" in refused.value.tables
    assert rows(duckdb_pipeline, "SELECT count(*) FROM {sources_history}") == [(7,)]
    load(full_refresh=True, drop_history=True)
    assert rows(duckdb_pipeline, "SELECT count(*) FROM {sources_history}") == [(6,)]


def record_calls(monkeypatch, owner, method, measure):
    """While the test runs, `owner.method` also appends `measure(self, *args)` of each call to the list returned."""
    seen = []
    original = getattr(owner, method)

    def recording(self, *args, **kwargs):
        seen.append(measure(self, *args))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(owner, method, recording)
    return seen


def statement_sizes(monkeypatch):
    """The size of every INSERT dlt sends to DuckDB during the test, in characters."""
    from dlt.destinations.impl.duckdb.sql_client import DuckDbSqlClient

    return record_calls(monkeypatch, DuckDbSqlClient, "execute_fragments", lambda _, f: sum(len(x) for x in f))


def test_into_duckdb_inserts_go_in_small_statements_unless_the_factory_sets_its_own(tmp_path, monkeypatch):
    """Where a factory chose INSERTs over parquet: DuckDB's parser holds a statement as many times
    its size, outside `memory_limit`, so the 2,600 destinations of the medium workspace go in
    statements of about 32 KiB, not one of MiBs."""
    from segment_source.run_settings import DUCKDB_STATEMENT_BYTES

    sizes = statement_sizes(monkeypatch)

    def load(factory, name):
        sizes.clear()
        run_segment(make_pipeline(factory, tmp_path / name), simulator, "destinations")
        return list(sizes)

    def inserts(name, **caps):
        path = str(tmp_path / f"{name}.duckdb")
        return dlt.destinations.duckdb(path, preferred_loader_file_format="insert_values", **caps)

    with SegmentSimulator(generate_workspace("medium")) as simulator:
        factory = inserts("ours")
        ours = load(factory, "ours")
        assert sum(ours) > 20 * DUCKDB_STATEMENT_BYTES and max(ours) <= DUCKDB_STATEMENT_BYTES
        assert "max_query_length" not in factory.caps_params, "the user's factory is left as it was"
        larger = load(inserts("own", max_query_length=2**25), "own")
    assert max(larger) > 10 * DUCKDB_STATEMENT_BYTES and len(larger) < len(ours) / 10


def duckdb_threads(monkeypatch):
    """DuckDB's `threads` setting in each load job of the test, as the job's connection sees it."""
    from dlt.destinations.impl.duckdb.sql_client import DuckDbSqlClient

    def threads(client, sql, *_):
        return client.native_connection.execute("SELECT current_setting('threads')").fetchone()[0]

    return record_calls(monkeypatch, DuckDbSqlClient, "execute_sql", threads)


def test_into_duckdb_each_query_runs_on_one_thread_unless_configured(tmp_path, monkeypatch):
    """Two load jobs run at once; within one, DuckDB's own threads each read a few of the file's
    small row groups and hold them at once (the change feed's first load of the large workspace:
    38 MiB more instead of 66)."""
    from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

    threads = duckdb_threads(monkeypatch)
    with SegmentSimulator(generate_workspace("small")) as simulator:
        pipeline = make_pipeline(dlt.destinations.duckdb(str(tmp_path / "ours.duckdb")), tmp_path / "ours")
        run_segment(pipeline, simulator, "sources")
        assert set(threads) == {1}
        assert "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG" not in os.environ, "the run leaves no setting behind"
        threads.clear()
        with pipeline.sql_client() as client:
            client.execute_sql("SELECT 1")
        default = duckdb.connect().execute("SELECT current_setting('threads')").fetchone()[0]
        assert set(threads) == {default}, "after the run, DuckDB's default"
        threads.clear()
        own = DuckDbCredentials(str(tmp_path / "own.duckdb"), global_config={"threads": 2})
        run_segment(make_pipeline(dlt.destinations.duckdb(own), tmp_path / "own"), simulator, "sources")
        assert set(threads) == {2}


def data_rows(pipeline):
    """Every data table's rows, without dlt's own columns and the run's timestamps (`valid_from`,
    `valid_to`, `changed_at`), sorted: what two loads of the same workspace must agree on."""
    schema = pipeline.default_schema
    skip = {"valid_from", "valid_to", "changed_at"}
    tables = {}
    for table in schema.data_table_names(seen_data_only=True):
        columns = sorted(c for c in schema.get_table_columns(table) if not c.startswith("_dlt") and c not in skip)
        listed = ", ".join(f'"{c}"' for c in columns)
        tables[table] = (columns, sorted(map(repr, rows(pipeline, f"SELECT {listed} FROM {{{table}}}"))))
    return tables


def load_files(info):
    """The formats of a load's data files (`parquet`, `insert_values`): not dlt's own tables, nor the
    `sql` jobs of its merges."""
    jobs = [job.job_file_info for package in info.load_packages for job in package.jobs["completed_jobs"]]
    return {job.file_format for job in jobs if not job.table_name.startswith("_dlt") and job.file_format != "sql"}


def test_into_duckdb_rows_go_as_parquet_files_and_load_what_inserts_load(tmp_path, simulator):
    """DuckDB reads parquet without parsing SQL; every default table of the workspace, its history
    and the change feed hold the same rows as with dlt's INSERTs, and the user's factory (or one
    that chose INSERTs) is left as it was."""

    def load(factory, name):
        pipeline = make_pipeline(factory, tmp_path / name)
        info, _, changes = run_segment(pipeline, simulator)
        return pipeline, info, changes

    default = dlt.destinations.duckdb(str(tmp_path / "default.duckdb"))
    parquet, info, changes = load(default, "default")
    assert load_files(info) == {"parquet"} and changes.initial > 0
    assert "preferred_loader_file_format" not in default.caps_params, "the user's factory is left as it was"
    chosen = dlt.destinations.duckdb(str(tmp_path / "inserts.duckdb"), preferred_loader_file_format="insert_values")
    inserts, info, _ = load(chosen, "inserts")
    assert load_files(info) == {"insert_values"}

    loaded = data_rows(parquet)
    assert loaded == data_rows(inserts)
    assert {"sources", "destinations", "sources_history", "changes"} <= set(loaded)
    assert len(loaded) > 40 and sum(len(table_rows) for _, table_rows in loaded.values()) > 400


def test_a_duckdb_pipeline_loaded_with_inserts_goes_on_with_parquet(tmp_path, simulator):
    """An upgrade: tables and history written by INSERTs take the next run's parquet files, and a
    rename (with a NUL character, which parquet keeps) is one new version and one `updated` change."""
    path = str(tmp_path / "segment.duckdb")

    def load(factory):
        pipeline = dlt.pipeline(
            "upgraded", destination=factory, dataset_name="segment_data", pipelines_dir=str(tmp_path)
        )
        info, _, changes = run_segment(pipeline, simulator, "sources", "destinations")
        return pipeline, info, changes

    _, info, first = load(dlt.destinations.duckdb(path, preferred_loader_file_format="insert_values"))
    assert load_files(info) == {"insert_values"} and first.initial > 0
    renamed = simulator.workspace.ids("sources")[0]
    simulator.workspace.rename("sources", renamed, "Renamed\x00 at midnight")
    pipeline, info, second = load(dlt.destinations.duckdb(path))
    assert load_files(info) == {"parquet"}
    assert [(c.change, c.object_id, c.fields_changed) for c in second.changes] == [("updated", renamed, ("name",))]
    versions = "SELECT name, valid_to IS NULL FROM {sources_history} WHERE id = %s ORDER BY valid_from"
    history = rows(pipeline, versions, renamed)
    assert history[-1] == ("Renamed\x00 at midnight", True) and len(history) == 2
    open_versions = "SELECT count(*), count(DISTINCT id) FROM {sources_history} WHERE valid_to IS NULL"
    assert rows(pipeline, open_versions) == rows(pipeline, "SELECT count(*), count(*) FROM {sources}")


def writer_buffers(monkeypatch):
    """The buffer size of every writer dlt writes rows with (extract's and normalize's), per row batch."""
    from dlt.common.data_writers.buffered import BufferedDataWriter

    return record_calls(monkeypatch, BufferedDataWriter, "write_data_item", lambda w, *_: w.buffer_max_items)


def test_extract_and_normalize_write_every_500_rows_unless_configured_and_the_run_leaves_no_setting_behind(
    duckdb_pipeline, simulator, monkeypatch
):
    from segment_source.run_settings import WRITER_BUFFER_ITEMS

    settings = ("SOURCES__DATA_WRITER__BUFFER_MAX_ITEMS", "NORMALIZE__DATA_WRITER__BUFFER_MAX_ITEMS", "LOAD__WORKERS")
    workspace = simulator.workspace

    def load(renamed):
        workspace.rename("sources", workspace.ids("sources")[0], renamed)
        sizes.clear()
        run_segment(duckdb_pipeline, simulator, "sources", "destinations")
        return set(sizes)

    sizes = writer_buffers(monkeypatch)
    assert load("First") == {WRITER_BUFFER_ITEMS} == {500}, "extract's and normalize's writers; dlt's default is 5,000"
    assert not any(k in os.environ for k in settings)

    # extract's writers are dlt's [sources.data_writer]; normalize's [normalize.data_writer]
    monkeypatch.setenv("SOURCES__DATA_WRITER__BUFFER_MAX_ITEMS", "40")
    monkeypatch.setenv("NORMALIZE__DATA_WRITER__BUFFER_MAX_ITEMS", "50")
    assert load("Second") == {40, 50}
    assert (
        os.environ["SOURCES__DATA_WRITER__BUFFER_MAX_ITEMS"],
        os.environ["NORMALIZE__DATA_WRITER__BUFFER_MAX_ITEMS"],
    ) == ("40", "50")

    # [data_writer] is both steps' own choice too
    for variable in settings[:2]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("DATA_WRITER__BUFFER_MAX_ITEMS", "70")
    assert load("Third") == {70}
    assert not any(k in os.environ for k in settings)
