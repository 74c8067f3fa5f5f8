"""The simulated endpoints: path pattern -> what it serves, its page limit, rate limit and feature.

Facts per endpoint (items keys, page limits, rate limits) follow `shared/segment-api/endpoints.json`.
A `fetch` gets the workspace, the path parameters and the query parameters; it returns the list
to page through (`items_key` set) or the `data` object, raises `KeyError` for an unknown parent
(404) and `ApiError` for any other error answer.
"""

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from segment_source.simulator.workspace import SimulatedWorkspace

MAX_PAGE_SIZE = 1000
AUDIENCES_MAX_PAGE_SIZE = 200


class ApiError(Exception):
    """An error answer: `{"errors": [{"type", "message", "field"?, "status"}]}`."""

    def __init__(self, status: int, type_: str, message: str, field: Optional[str] = None) -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.field = status, type_, message, field


Fetch = Callable[[SimulatedWorkspace, Dict[str, str], Dict[str, str]], Any]


@dataclass(frozen=True)
class Route:
    """One GET endpoint: a list (`items_key` set) or a single object."""

    pattern: str
    fetch: Fetch
    items_key: Optional[str] = None
    max_count: int = MAX_PAGE_SIZE
    paginated: bool = True
    """False for lists the API serves whole, without a `pagination` object (`/labels`)."""
    rate_limit: Optional[int] = None
    """The endpoint's own limit, requests per minute per token (endpoints.json)."""
    rate_limit_per_path: bool = False
    """True when the limit counts per concrete path (per warehouse for syncs), not per pattern."""
    feature: Optional[str] = None
    """The plan feature or permission group the endpoint belongs to (see SimulatedWorkspace.disable)."""
    regex: "re.Pattern[str]" = field(init=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.pattern)
        object.__setattr__(self, "regex", re.compile(f"^{regex}$"))


ROUTES: List[Route] = [
    Route("/", lambda ws, p, q: {"workspace": ws.info()}),
    Route("/sources", lambda ws, p, q: ws.listing("sources"), items_key="sources"),
    Route("/destinations", lambda ws, p, q: ws.listing("destinations"), items_key="destinations"),
    Route("/warehouses", lambda ws, p, q: ws.listing("warehouses"), items_key="warehouses"),
    Route(
        "/warehouses/{warehouseId}/connected-sources",
        lambda ws, p, q: ws.connected_sources(p["warehouseId"]),
        items_key="sources",
    ),
    Route("/spaces", lambda ws, p, q: ws.listing("spaces"), items_key="spaces", feature="engage"),
    Route(
        "/spaces/{spaceId}/audiences",
        lambda ws, p, q: ws.audiences_of(p["spaceId"]),
        items_key="audiences",
        max_count=AUDIENCES_MAX_PAGE_SIZE,
        rate_limit=60,
        feature="engage",
    ),
]


def match(path: str) -> "tuple[Route, Dict[str, str]] | None":
    for route in ROUTES:
        found = route.regex.match(path)
        if found:
            return route, found.groupdict()
    return None
