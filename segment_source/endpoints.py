"""The Segment Public API surface this package loads: one `Endpoint` per table.

Facts (paths, items keys, page limits, secret fields) come from `shared/segment-api`
(endpoints.json, notes.md), API version 73.2.0. Adding a table is adding one entry here.
"""

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Tuple

MAX_PAGE_SIZE = 1000  # PaginationInput.count: 1..1000 since API 73
AUDIENCES_MAX_PAGE_SIZE = 200  # ListAudiencesPaginationInput.count: 1..200

Row = Dict[str, object]


@dataclass(frozen=True)
class Endpoint:
    """One Public API list (or object) endpoint and the table it loads into."""

    table: str
    path: str
    """Path under the base URL. `{id}` is the id of the parent row, for child endpoints."""
    data_key: str
    """Key under `data` that holds the items (or, for object endpoints, the object)."""
    primary_key: Tuple[str, ...] = ("id",)
    parent: Optional[str] = None
    """Table whose rows this endpoint is requested for, one request (series) per parent row."""
    page_size: Optional[int] = MAX_PAGE_SIZE
    """The largest page the endpoint allows; `None` for endpoints that are not paginated."""
    secret_fields: Tuple[str, ...] = ()
    """Fields that are secrets in full (masked element by element)."""
    settings_fields: Tuple[str, ...] = ()
    """Objects whose secret-looking keys are masked; each lands as one JSON column."""
    shape: Optional[Callable[[Row, Row], Row]] = None
    """Turns an API item (and its parent row) into the row to load."""
    column_types: Mapping[str, str] = field(default_factory=dict)
    """dlt data types of columns that are JSON or may be null in every row of a run."""

    @property
    def columns(self) -> Dict[str, Dict[str, str]]:
        types = {**{name: "json" for name in self.settings_fields}, **self.column_types}
        return {name: {"data_type": data_type} for name, data_type in types.items()}


def catalog_reference(item: Row, parent: Row) -> Row:
    """Keep only the catalog id, slug and name of the embedded (large) catalog `metadata`."""
    metadata = item.get("metadata")
    if isinstance(metadata, dict):
        item = dict(item, metadata={k: metadata.get(k) for k in ("id", "slug", "name")})
    return item


def warehouse_source_link(item: Row, parent: Row) -> Row:
    return {"warehouseId": parent["id"], "sourceId": item["id"]}


ENDPOINTS: List[Endpoint] = [
    Endpoint("workspace", "/", "workspace", page_size=None),
    Endpoint(
        "sources",
        "/sources",
        "sources",
        secret_fields=("writeKeys",),
        settings_fields=("settings",),
        shape=catalog_reference,
    ),
    Endpoint("destinations", "/destinations", "destinations", settings_fields=("settings",), shape=catalog_reference),
    Endpoint("warehouses", "/warehouses", "warehouses", settings_fields=("settings",), shape=catalog_reference),
    Endpoint(
        "warehouse_sources",
        "/warehouses/{id}/connected-sources",
        "sources",
        primary_key=("warehouse_id", "source_id"),
        parent="warehouses",
        shape=warehouse_source_link,
    ),
    Endpoint("spaces", "/spaces", "spaces"),
    Endpoint(
        "segments",
        "/spaces/{id}/audiences",
        "audiences",
        parent="spaces",
        page_size=AUDIENCES_MAX_PAGE_SIZE,
        column_types={"definition__target_entity": "text"},
    ),
]

BY_TABLE: Dict[str, Endpoint] = {e.table: e for e in ENDPOINTS}
PARENT_TABLES = frozenset(e.parent for e in ENDPOINTS if e.parent)
