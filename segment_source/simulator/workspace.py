"""A simulated Segment workspace: deterministic generation and the edits tests make between runs.

Items are stored exactly as the Public API serves them (camelCase, full embedded `metadata`), so
the server only pages through them. Items are copy-on-write: an edit replaces an item's dict, so
a listing handed to the server is a consistent snapshot without copying every item. Every plaintext secret put into an item is recorded in
`secrets`, which lets a test prove that none of them reaches a loaded table.
"""

import copy
import random
import string
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterable, List, Optional, Set

from segment_source.simulator import catalog

KINDS = ("sources", "destinations", "warehouses", "spaces", "audiences")
_ID_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Size:
    """How many objects of each kind a generated workspace holds."""

    sources: int
    destinations: int
    warehouses: int
    spaces: int
    audiences: int
    sources_per_warehouse: int


SIZES: Dict[str, Size] = {
    # every list fits in one page
    "small": Size(sources=6, destinations=10, warehouses=2, spaces=1, audiences=12, sources_per_warehouse=3),
    # sources, destinations and the first space's audiences span several pages
    "medium": Size(sources=1250, destinations=2600, warehouses=12, spaces=3, audiences=480, sources_per_warehouse=40),
    "large": Size(sources=5000, destinations=12000, warehouses=40, spaces=6, audiences=2400, sources_per_warehouse=150),
}


class SimulatedWorkspace:
    """One workspace's configuration, as Segment would serve it to the token that owns it."""

    def __init__(self, slug: str = "acme", name: Optional[str] = None, seed: int = 0) -> None:
        self._rng = random.Random(f"{seed}:{slug}")
        self._lock = threading.RLock()
        self._clock = datetime(2024, 1, 1, tzinfo=timezone.utc)
        self.secrets: Set[str] = set()
        self.id = self.new_id()
        self.slug = slug
        self.name = name or slug.replace("-", " ").title()
        self.items: Dict[str, Dict[str, Dict[str, Any]]] = {kind: {} for kind in KINDS}
        # warehouse id -> ids of the sources connected to it, in connection order
        self.warehouse_sources: Dict[str, List[str]] = {}
        # feature (plan feature or permission group) -> the status its endpoints answer with
        self.disabled: Dict[str, int] = {}

    # ---- features --------------------------------------------------------------------------

    def disable(self, feature: str, status: int = 403) -> None:
        """Make the endpoints of `feature` answer `status` (403: the token lacks a permission,
        404: the plan lacks the feature), e.g. `ws.disable("engage", 404)`."""
        self.disabled[feature] = status

    def enable(self, feature: str) -> None:
        self.disabled.pop(feature, None)

    def check_feature(self, feature: Optional[str]) -> None:
        from segment_source.simulator.routes import ApiError

        if feature in self.disabled:
            status = self.disabled[feature]
            kind = "Forbidden" if status == 403 else "NotFound"
            raise ApiError(status, kind, f"{feature} is not available to this token in this workspace")

    # ---- reading ---------------------------------------------------------------------------

    def info(self) -> Dict[str, Any]:
        return {"id": self.id, "slug": self.slug, "name": self.name}

    def listing(self, kind: str) -> List[Dict[str, Any]]:
        """The items of `kind`, in creation order. Treat them as read-only."""
        with self._lock:
            return list(self.items[kind].values())

    def get(self, kind: str, item_id: str) -> Dict[str, Any]:
        try:
            return self.items[kind][item_id]
        except KeyError:
            raise KeyError(f"{kind} has no item {item_id!r}") from None

    def connected_sources(self, warehouse_id: str) -> List[Dict[str, Any]]:
        with self._lock:
            self.get("warehouses", warehouse_id)
            return [self.items["sources"][sid] for sid in self.warehouse_sources[warehouse_id]]

    def audiences_of(self, space_id: str) -> List[Dict[str, Any]]:
        with self._lock:
            self.get("spaces", space_id)
            return [a for a in self.items["audiences"].values() if a["spaceId"] == space_id]

    def ids(self, kind: str) -> List[str]:
        return list(self.items[kind])

    # ---- editing ---------------------------------------------------------------------------

    def add(self, kind: str, **fields: Any) -> Dict[str, Any]:
        """Create an object of `kind` (generated like the others, `fields` override) and return it."""
        with self._lock:
            item = getattr(self, f"_new_{kind}")(**fields)
            self.items[kind][item["id"]] = item
            if kind == "warehouses":
                self.warehouse_sources[item["id"]] = []
            return copy.deepcopy(item)

    def rename(self, kind: str, item_id: str, name: str) -> None:
        self.update(kind, item_id, name=name)

    def update(self, kind: str, item_id: str, **fields: Any) -> None:
        with self._lock:
            item = dict(self.get(kind, item_id), **fields)
            if "updatedAt" in item:
                item["updatedAt"] = self._tick()
            self.items[kind][item_id] = item

    def delete(self, kind: str, item_id: str) -> None:
        """Delete an object and what Segment deletes with it."""
        with self._lock:
            self.get(kind, item_id)
            del self.items[kind][item_id]
            if kind == "sources":
                for dest_id in [d["id"] for d in self.items["destinations"].values() if d["sourceId"] == item_id]:
                    del self.items["destinations"][dest_id]
                for connected in self.warehouse_sources.values():
                    if item_id in connected:
                        connected.remove(item_id)
            elif kind == "warehouses":
                del self.warehouse_sources[item_id]
            elif kind == "spaces":
                for aud_id in [a["id"] for a in self.items["audiences"].values() if a["spaceId"] == item_id]:
                    del self.items["audiences"][aud_id]

    def connect(self, warehouse_id: str, source_id: str) -> None:
        with self._lock:
            self.get("warehouses", warehouse_id)
            self.get("sources", source_id)
            if source_id not in self.warehouse_sources[warehouse_id]:
                self.warehouse_sources[warehouse_id].append(source_id)

    def disconnect(self, warehouse_id: str, source_id: str) -> None:
        with self._lock:
            self.warehouse_sources[warehouse_id].remove(source_id)

    # ---- generation ------------------------------------------------------------------------

    def new_id(self, length: int = 22) -> str:
        return "".join(self._rng.choice(_ID_ALPHABET) for _ in range(length))

    def new_secret(self, prefix: str = "") -> str:
        value = prefix + self.new_id(32)
        self.secrets.add(value)
        return value

    def _tick(self) -> str:
        self._clock += timedelta(minutes=7)
        return self._clock.strftime("%Y-%m-%dT%H:%M:%S.000Z")

    def _settings(self, template: Any) -> Any:
        if template is catalog.SECRET:
            return self.new_secret()
        if template is catalog.MASKED:
            return "••••••••••" + self.new_id(4)
        if isinstance(template, dict):
            return {k: self._settings(v) for k, v in template.items()}
        if isinstance(template, list):
            return [self._settings(v) for v in template]
        return template

    def _new_sources(self, **fields: Any) -> Dict[str, Any]:
        n = len(self.items["sources"]) + 1
        catalog_id, cat_name, slug, categories, template = self._rng.choice(catalog.SOURCE_CATALOG)
        labels = [{"key": "environment", "value": self._rng.choice(["prod", "staging", "dev"]), "description": "Deployment environment"}]
        if n % 3 == 0:
            labels.append({"key": "team", "value": self._rng.choice(["growth", "mobile", "data"])})
        item = {
            "id": self.new_id(),
            "slug": f"{slug}-{n}",
            "name": f"{cat_name} {n}",
            "metadata": catalog.source_metadata(catalog_id, cat_name, slug, categories),
            "workspaceId": self.id,
            "enabled": n % 7 != 0,
            "writeKeys": [self.new_secret() for _ in range(1 + (n % 4 == 0))],
            "settings": self._settings(template),
            "labels": labels,
        }
        item.update(fields)
        return item

    def _new_destinations(self, **fields: Any) -> Dict[str, Any]:
        n = len(self.items["destinations"]) + 1
        catalog_id, cat_name, slug, categories, template = self._rng.choice(catalog.DESTINATION_CATALOG)
        source_ids = self.ids("sources")
        item = {
            "id": self.new_id(),
            "name": f"{cat_name} {n}",
            "enabled": n % 5 != 0,
            "metadata": catalog.destination_metadata(catalog_id, cat_name, slug, categories),
            "sourceId": self._rng.choice(source_ids) if source_ids else None,
            "settings": self._settings(template),
        }
        item.update(fields)
        return item

    def _new_warehouses(self, **fields: Any) -> Dict[str, Any]:
        n = len(self.items["warehouses"]) + 1
        catalog_id, cat_name, slug, template = catalog.WAREHOUSE_CATALOG[(n - 1) % len(catalog.WAREHOUSE_CATALOG)]
        item = {
            "id": self.new_id(),
            "metadata": catalog.warehouse_metadata(catalog_id, cat_name, slug),
            "workspaceId": self.id,
            "enabled": True,
            "settings": dict(self._settings(template), name=f"{cat_name} {n}"),
        }
        item.update(fields)
        return item

    def _new_spaces(self, **fields: Any) -> Dict[str, Any]:
        n = len(self.items["spaces"]) + 1
        name = ["Production", "Staging", "EU Customers", "B2B Accounts", "Sandbox", "Mobile"][(n - 1) % 6]
        item = {"id": self.new_id(), "slug": f"{name.lower().replace(' ', '-')}-{n}", "name": f"{name}"}
        item.update(fields)
        return item

    def _new_audiences(self, space_id: Optional[str] = None, **fields: Any) -> Dict[str, Any]:
        n = len(self.items["audiences"]) + 1
        space_id = space_id or fields.pop("spaceId", None) or self.ids("spaces")[0]
        event = self._rng.choice(["Order Completed", "Product Viewed", "Signed Up", "Cart Abandoned"])
        created = self._tick()
        item = {
            "id": self.new_id(),
            "spaceId": space_id,
            "name": f"{event} x{n % 5 + 1}",
            "description": f"Users who did {event} at least {n % 5 + 1} times",
            "key": f"{event.lower().replace(' ', '_')}_{n}",
            "enabled": n % 6 != 0,
            "definition": {"query": f"event('{event}').count() >= {n % 5 + 1}", "targetEntity": None},
            "status": self._rng.choice(["Live", "Computing", "Disabled"]),
            "createdBy": "user_" + self.new_id(10),
            "updatedBy": "user_" + self.new_id(10),
            "createdAt": created,
            "updatedAt": created,
            "audienceType": "USERS",
            "computeCadence": {"type": "BATCH"},
            "size": {"count": self._rng.randint(0, 50000), "type": "USERS"},
            "options": {"filterByExternalIds": ["email"], "includeHistoricalData": True, "backfillEventDataDays": 90},
        }
        item.update(fields)
        return item


def generate_workspace(size: "str | Size" = "small", slug: str = "acme", seed: int = 0, name: Optional[str] = None) -> SimulatedWorkspace:
    """A deterministic workspace: the same arguments always give the same ids, names and secrets."""
    counts = SIZES[size] if isinstance(size, str) else size
    ws = SimulatedWorkspace(slug=slug, name=name, seed=seed)
    for _ in range(counts.sources):
        ws.add("sources")
    for _ in range(counts.destinations):
        ws.add("destinations")
    source_ids = ws.ids("sources")
    for w in range(counts.warehouses):
        wh = ws.add("warehouses")
        start = (w * counts.sources_per_warehouse) % max(len(source_ids), 1)
        for sid in _take_cyclic(source_ids, start, min(counts.sources_per_warehouse, len(source_ids))):
            ws.connect(wh["id"], sid)
    for _ in range(counts.spaces):
        ws.add("spaces")
    space_ids = ws.ids("spaces")
    for a in range(counts.audiences):
        # half of all audiences in the first space, so that one space spans several pages
        space = space_ids[0] if a % 2 == 0 or len(space_ids) == 1 else space_ids[1 + (a // 2) % (len(space_ids) - 1)]
        ws.add("audiences", space_id=space)
    return ws


def demo_workspace() -> SimulatedWorkspace:
    """The workspace `--demo` serves and the README's sample queries are written against."""
    return generate_workspace("small", slug="demo-workspace", name="Demo Workspace")


def _take_cyclic(values: List[str], start: int, count: int) -> Iterable[str]:
    return (values[(start + i) % len(values)] for i in range(count))
