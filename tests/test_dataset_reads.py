"""`pipeline.dataset()` reads work with the default install, on DuckDB and PostgreSQL."""

from importlib.metadata import requires

from tests.support import load


def test_pyarrow_and_pandas_come_with_the_default_install():
    default = [r for r in requires("segment-source") or [] if "extra ==" not in r]
    assert any(r.startswith("pandas") for r in default), default
    assert any(r.startswith("dlt[") and "parquet" in r.split("]")[0] for r in default), default


def test_a_loaded_table_reads_as_a_dataframe_and_as_arrow(pipeline, simulator):
    load(pipeline, simulator, "sources")
    dataset = pipeline.dataset()
    expected = sorted(simulator.workspace.ids("sources"))
    assert sorted(dataset.sources.df()["id"]) == expected
    assert sorted(dataset.sources.arrow().column("id").to_pylist()) == expected
    assert sorted(dataset.query("SELECT id, name FROM sources").df()["id"]) == expected
    counts = dict(dataset.row_counts(table_names=["sources", "sources_history"]).fetchall())
    assert counts == {"sources": len(expected), "sources_history": len(expected)}
