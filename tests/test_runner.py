"""`load_segment`: one call for orchestrators, which sees every failure as an exception."""

import pytest

from segment_source import RunReport, load_segment, segment_source
from segment_source.errors import WorkspaceFailures
from segment_source.runner import HistoryDropRefused
from tests.support import make_pipeline, rows


@pytest.fixture
def duckdb_pipeline(tmp_path):
    import dlt

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
        report = RunReport()
        source = segment_source(api_key=simulator.token, base_url=simulator.url, report=report)
        return load_segment(duckdb_pipeline, source.with_resources("sources"), report, **kwargs)

    load()
    simulator.workspace.rename("sources", simulator.workspace.ids("sources")[0], "Renamed")
    load()
    with pytest.raises(HistoryDropRefused) as refused:
        load(full_refresh=True)
    assert "sources_history" in refused.value.tables
    assert rows(duckdb_pipeline, "SELECT count(*) FROM {sources_history}") == [(7,)]
    load(full_refresh=True, drop_history=True)
    assert rows(duckdb_pipeline, "SELECT count(*) FROM {sources_history}") == [(6,)]
