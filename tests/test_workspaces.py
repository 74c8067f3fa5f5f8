"""Several workspaces (one token each) load into one dataset in one run."""

from segment_simulator import SegmentSimulator, generate_workspace
from segment_source import RunReport, segment_source
from tests.support import CORE_TABLES, expected, rows
from tests.test_pipeline_script import run_script


def by_workspace(pipeline, table):
    out = {}
    for workspace_id, object_id in rows(pipeline, f"SELECT workspace_id, id FROM {{{table}}}"):
        out.setdefault(workspace_id, set()).add(object_id)
    return out


def run(pipeline, sim, tokens, report=None):
    source = segment_source(api_key=tokens, base_url=sim.url, report=report).with_resources(*CORE_TABLES)
    return pipeline.run(source)


def test_two_workspaces_load_into_one_dataset_distinguished_by_workspace_id(pipeline):
    a, b = generate_workspace("small", slug="alpha"), generate_workspace("small", slug="beta")
    with SegmentSimulator({"tok-a": a, "tok-b": b}) as sim:
        run(pipeline, sim, ["tok-a", "tok-b"])
    for table in ("sources", "destinations", "warehouses", "spaces", "segments"):
        assert by_workspace(pipeline, table) == {a.id: expected(a)[table], b.id: expected(b)[table]}, table
    assert sorted(rows(pipeline, "SELECT id, slug FROM {workspace}")) == sorted([(a.id, "alpha"), (b.id, "beta")])


def test_one_workspace_failing_loses_neither_the_others_nor_its_own_earlier_rows(pipeline):
    a, b = generate_workspace("small", slug="alpha"), generate_workspace("small", slug="beta")
    with SegmentSimulator({"tok-a": a, "tok-b": b}) as sim:
        run(pipeline, sim, ["tok-a", "tok-b"])
        b_before = by_workspace(pipeline, "sources")[b.id]
        a.delete("sources", a.ids("sources")[0])
        b.delete("sources", b.ids("sources")[0])
        del sim.workspaces["tok-b"]  # beta's token is revoked
        report = RunReport()
        info = run(pipeline, sim, ["tok-a", "tok-b"], report)
    assert not info.has_failed_jobs
    assert list(report.failed) == ["workspace 2 of 2"] and "401" in report.failed["workspace 2 of 2"]
    sources = by_workspace(pipeline, "sources")
    assert sources[a.id] == set(a.ids("sources")), "alpha is up to date"
    assert sources[b.id] == b_before, "beta keeps what was loaded before"
    assert rows(
        pipeline, "SELECT count(*) FROM {sources_history} WHERE workspace_id = %s AND valid_to IS NOT NULL", b.id
    ) == [(0,)]


def test_the_script_takes_several_tokens_and_exits_1_naming_the_failed_one(tmp_path):
    a, b = generate_workspace("small", slug="alpha"), generate_workspace("small", slug="beta")
    with SegmentSimulator({"tok-a": a, "tok-b": b}) as sim:
        env = {"SOURCES__SEGMENT_SOURCE__API_KEY": "tok-a, tok-b", "SOURCES__SEGMENT_SOURCE__BASE_URL": sim.url}
        ok = run_script(tmp_path, "--resources", "workspace,sources", env=env)
        env["SOURCES__SEGMENT_SOURCE__API_KEY"] = "tok-a,tok-wrong"
        partial = run_script(tmp_path, "--resources", "workspace,sources", env=env)
    assert ok.returncode == 0, ok.stderr
    assert partial.returncode == 1
    assert (
        "workspace 2 of 2" in partial.stderr
        and "401" in partial.stderr
        and "every other workspace was loaded" in partial.stderr
    )
    assert "tok-wrong" not in partial.stderr + partial.stdout
    assert "Traceback" not in partial.stderr
    import duckdb

    with duckdb.connect(str(tmp_path / "segment_pipeline.duckdb"), read_only=True) as db:
        assert {r[0] for r in db.sql("SELECT slug FROM segment_data.workspace").fetchall()} == {"alpha", "beta"}
