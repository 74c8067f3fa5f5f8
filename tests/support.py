"""What the tests expect and how they read it back: the oracle helpers shared by tests and benchmarks.

`SURFACE` says, for every table, which columns identify a row and what the simulator holds for
it; `expected(ws)` and `loaded(pipeline)` put both in the same shape.
"""

import uuid
from typing import Any, Callable, Dict, Iterable, List, Set, Tuple

import dlt

from segment_simulator import SimulatedWorkspace
from segment_source import segment_source

CORE_TABLES = ("workspace", "sources", "destinations", "warehouses", "warehouse_sources", "spaces", "segments")
"""The seven core tables: the workspace, its sources, destinations and warehouses, Engage audiences."""


DESTINATIONS = ["duckdb", "postgres"]
"""The real destinations a test of loading runs against (`real_destination`)."""


def real_destination(name: str, directory: Any, request: Any) -> Any:
    """A real destination by `name`: an embedded DuckDB file in `directory`, or the test PostgreSQL
    server (the `postgres` fixture, which `request` starts once per worker)."""
    if name == "duckdb":
        return dlt.destinations.duckdb(str(directory / "segment.duckdb"))
    return dlt.destinations.postgres(request.getfixturevalue("postgres").dsn)


def make_pipeline(destination: Any, tmp_path: Any, dataset_name: str = "segment_data") -> dlt.Pipeline:
    name = f"test_{uuid.uuid4().hex[:10]}"
    return dlt.pipeline(
        pipeline_name=name,
        destination=destination,
        dataset_name=f"{dataset_name}_{name}" if destination.destination_name == "postgres" else dataset_name,
        pipelines_dir=str(tmp_path / "pipelines"),
    )


def load(pipeline: dlt.Pipeline, sim: Any, *resources: str, **kwargs: Any) -> Any:
    source = segment_source(api_key=sim.token, base_url=sim.url, **kwargs)
    if resources:
        source = source.with_resources(*resources)
    info = pipeline.run(source)
    assert not info.has_failed_jobs
    return info


def rows(pipeline: dlt.Pipeline, sql: str, *args: Any) -> List[Tuple[Any, ...]]:
    """Run SQL with `{t}` placeholders for table names: `rows(p, "SELECT id FROM {sources}")`."""
    with pipeline.sql_client() as client:
        names = {t: client.make_qualified_table_name(t) for t in pipeline.default_schema.tables}
        return [tuple(r) for r in client.execute_sql(sql.format(**names), *args) or []]


def ids(pipeline: dlt.Pipeline, table: str, column: str = "id") -> List[str]:
    return sorted(r[0] for r in rows(pipeline, f"SELECT {column} FROM {{{table}}}"))


# table -> (the columns that identify a row, what the simulator holds for that table)
SURFACE: Dict[str, Tuple[str, Callable[[SimulatedWorkspace], Set[Any]]]] = {
    "workspace": ("id", lambda ws: {ws.id}),
    "sources": ("id", lambda ws: set(ws.ids("sources"))),
    "destinations": ("id", lambda ws: set(ws.ids("destinations"))),
    "warehouses": ("id", lambda ws: set(ws.ids("warehouses"))),
    "warehouse_sources": (
        "warehouse_id, source_id",
        lambda ws: {(w, s) for w, ss in ws.warehouse_sources.items() for s in ss},
    ),
    "spaces": ("id", lambda ws: set(ws.ids("spaces"))),
    "segments": ("id", lambda ws: set(ws.ids("audiences"))),
    "computed_traits": ("id", lambda ws: set(ws.ids("computed_traits"))),
    "tracking_plans": ("id", lambda ws: set(ws.ids("tracking_plans"))),
    "tracking_plan_rules": (
        "tracking_plan_id, type, key, version",
        lambda ws: {
            (p, r["type"], r.get("key") or "", r["version"]) for p in ws.ids("tracking_plans") for r in ws.rules(p)
        },
    ),
    "tracking_plan_sources": (
        "tracking_plan_id, source_id",
        lambda ws: {(p, s["id"]) for p in ws.ids("tracking_plans") for s in ws.tracking_plan_sources(p)},
    ),
    "functions": ("id", lambda ws: set(ws.ids("functions"))),
    "destination_filters": ("id", lambda ws: set(ws.ids("filters"))),
    "destination_subscriptions": ("id", lambda ws: set(ws.ids("subscriptions"))),
    "users": ("id", lambda ws: set(ws.ids("users"))),
    "user_groups": ("id", lambda ws: set(ws.ids("groups"))),
    "roles": ("id", lambda ws: set(ws.ids("roles"))),
    "labels": ("key, value", lambda ws: {(label["key"], label["value"]) for label in ws.labels}),
    "reverse_etl_models": ("id", lambda ws: set(ws.ids("reverse_etl_models"))),
    "transformations": ("id", lambda ws: set(ws.ids("transformations"))),
    "audit_events": ("id", lambda ws: {e["id"] for e in ws.audit_events()}),
    "regulations": ("id", lambda ws: {r["id"] for r in ws.regulations}),
    "credentials": ("id", lambda ws: {c["id"] for c in ws.credentials}),
}
CURRENT_TABLES = [t for t in SURFACE if t != "audit_events"]


def expected(ws: SimulatedWorkspace, tables: Iterable[str] = SURFACE) -> Dict[str, Set[Any]]:
    """What each table must hold after loading `ws`: ids (or key tuples for the other tables)."""
    return {table: SURFACE[table][1](ws) for table in tables}


def loaded(pipeline: dlt.Pipeline, tables: Iterable[str] = SURFACE) -> Dict[str, Set[Any]]:
    """What each table holds, in the shape of `expected`."""
    out = {}
    for table in tables:
        key = SURFACE[table][0]
        found = rows(pipeline, f"SELECT {key} FROM {{{table}}}") if table in pipeline.default_schema.tables else []
        out[table] = {r[0] if len(r) == 1 else r for r in found}
    return out


def minimal_requests(ws: SimulatedWorkspace) -> int:
    """The fewest requests that read `ws`: one per page of every list, at the largest page size."""
    pages = lambda n, size=1000: max(1, -(-n // size))  # noqa: E731 - ceil, and an empty list is one page
    top_level = (
        "sources",
        "destinations",
        "warehouses",
        "spaces",
        "tracking_plans",
        "users",
        "groups",
        "roles",
        "reverse_etl_models",
        "transformations",
    )
    return (
        1  # GET /
        + sum(pages(len(ws.ids(kind))) for kind in top_level)
        + sum(
            pages(len(ws.functions_of(t)))
            for t in ("DESTINATION", "INSERT_DESTINATION", "INSERT_SOURCE", "INSERT_TRANSFORMATION", "SOURCE")
        )
        + 1  # labels: one unpaginated answer
        + pages(len(ws.audit_events()))
        + pages(len(ws.regulations))
        + pages(len(ws.credentials))
        + sum(pages(len(connected)) for connected in ws.warehouse_sources.values())
        + sum(
            pages(len(ws.audiences_of(space)), 200) + pages(len(ws.computed_traits_of(space)))
            for space in ws.ids("spaces")
        )
        + sum(
            pages(len(ws.rules(plan))) + pages(len(ws.tracking_plan_sources(plan))) for plan in ws.ids("tracking_plans")
        )
        + sum(pages(len(ws.filters_of(d))) for d in ws.ids("destinations"))
        + sum(
            pages(len(ws.subscriptions_of(d)))
            for d in ws.ids("destinations")
            if ws.get("destinations", d)["metadata"].get("actions")
        )
    )
