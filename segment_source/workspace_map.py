"""The map of a workspace: what the loaded dataset says flows where, as one self-contained HTML file.

`read_map(pipeline)` reads the current tables into a small JSON-able dict (sources, their
destinations, warehouses, tracking plans, filter and Actions mapping counts); `render_html(data)`
writes one HTML page (template: `workspace_map.html`) with the data, the CSS and about 140 lines
of vanilla JavaScript inline.

Why no graph library: a Segment workspace is a forest, not a general graph. Every destination
belongs to exactly one source, a source has at most one tracking plan, and only warehouses are
shared (a dozen of them against a thousand sources). A force-directed layout (vis-network,
Cytoscape, D3) turns 1,000 sources and their 2,600 destinations into a hairball, and adds hundreds
of kB of minified third-party script to every page. So each source is one row, with its
destinations and warehouses drawn as arrowed chips to its right, grouped (by source type,
tracking plan, warehouse or any label key) into collapsible groups with counts, filtered by a
search box. The page works offline, has no third-party code and no license to carry, and stays
readable and fast at the medium simulated workspace's size.
"""

import html
import json
from collections import defaultdict
from datetime import datetime, timezone
from importlib import resources
from typing import Any, Dict, List, Optional, Sequence

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from segment_source.changes import json_value

MapData = Dict[str, Any]


def read_map(pipeline: dlt.Pipeline) -> MapData:
    """Everything the map shows, from the current tables of the pipeline's dataset. Tables that are
    missing (not loaded, or a feature the token cannot see) count as empty."""
    with pipeline.sql_client() as client:

        def select(table: str, columns: Sequence[str]) -> List[Dict[str, Any]]:
            quoted = ", ".join(client.escape_column_name(c) for c in columns)
            try:
                found = client.execute_sql(f"SELECT {quoted} FROM {client.make_qualified_table_name(table)}") or []
            except DatabaseUndefinedRelation:
                return []
            return [dict(zip(columns, row, strict=True)) for row in found]

        workspaces = select("workspace", ["id", "name"])
        sources = select("sources", ["_dlt_id", "workspace_id", "id", "name", "slug", "enabled", "metadata__name"])
        labels = select("sources__labels", ["_dlt_parent_id", "key", "value"])
        destinations = select("destinations", ["id", "name", "enabled", "source_id", "metadata__name"])
        warehouses = select("warehouses", ["id", "enabled", "metadata__name", "settings"])
        warehouse_sources = select("warehouse_sources", ["warehouse_id", "source_id"])
        plans = select("tracking_plans", ["id", "name"])
        plan_sources = select("tracking_plan_sources", ["tracking_plan_id", "source_id"])
        filters = select("destination_filters", ["destination_id", "enabled"])
        mappings = select("destination_subscriptions", ["destination_id", "enabled"])

    labels_of: Dict[str, List[str]] = defaultdict(list)
    for label in labels:
        labels_of[label["_dlt_parent_id"]].append(f"{label['key']}:{label['value']}")
    plan_of = {link["source_id"]: link["tracking_plan_id"] for link in plan_sources}
    sources_of: Dict[str, List[str]] = defaultdict(list)
    for link in warehouse_sources:
        sources_of[link["warehouse_id"]].append(link["source_id"])
    filter_count = _count_by(filters, "destination_id")
    mapping_count = _count_by(mappings, "destination_id")
    return {
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "dataset": pipeline.dataset_name,
        "workspaces": [{"id": w["id"], "name": w["name"]} for w in workspaces],
        "sources": sorted(
            (
                {
                    "id": s["id"],
                    "name": s["name"] or s["slug"] or s["id"],
                    "type": s["metadata__name"] or "Unknown",
                    "enabled": bool(s["enabled"]),
                    "workspace": s["workspace_id"],
                    "plan": plan_of.get(s["id"]),
                    "labels": sorted(labels_of.get(s["_dlt_id"], [])),
                }
                for s in sources
            ),
            key=lambda s: (s["type"], s["name"].lower()),
        ),
        "destinations": sorted(
            (
                {
                    "id": d["id"],
                    "name": d["name"] or d["metadata__name"] or d["id"],
                    "type": d["metadata__name"] or "Unknown",
                    "enabled": bool(d["enabled"]),
                    "source": d["source_id"],
                    "filters": filter_count.get(d["id"], 0),
                    "mappings": mapping_count.get(d["id"], 0),
                }
                for d in destinations
            ),
            key=lambda d: d["name"].lower(),
        ),
        "warehouses": sorted(
            (
                {
                    "id": w["id"],
                    "name": _warehouse_name(w) or w["id"],
                    "type": w["metadata__name"] or "Unknown",
                    "enabled": bool(w["enabled"]),
                    "sources": sorted(sources_of.get(w["id"], [])),
                }
                for w in warehouses
            ),
            key=lambda w: w["name"].lower(),
        ),
        "plans": sorted(
            ({"id": p["id"], "name": p["name"] or p["id"]} for p in plans), key=lambda p: p["name"].lower()
        ),
    }


def render_html(data: MapData, title: Optional[str] = None) -> str:
    """One HTML page, no network needed to view it: the data, the style and the script are inline."""
    page = resources.files("segment_source").joinpath("workspace_map.html").read_text(encoding="utf-8")
    # "</" cannot end the inline script early once escaped; JSON reads "<\/" as "</"
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False).replace("</", "<\\/")
    title = title or "Segment workspace map: " + (", ".join(w["name"] for w in data["workspaces"]) or data["dataset"])
    return page.replace("__TITLE__", html.escape(title)).replace("__DATA__", payload)


def _count_by(rows: List[Dict[str, Any]], column: str) -> Dict[str, int]:
    counts: Dict[str, int] = defaultdict(int)
    for row in rows:
        counts[row[column]] += 1
    return counts


def _warehouse_name(warehouse: Dict[str, Any]) -> Optional[str]:
    settings = json_value(warehouse["settings"])
    return settings.get("name") if isinstance(settings, dict) else None
