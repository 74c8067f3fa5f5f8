"""The wire format, the bottom layer of the simulator: what goes over HTTP, for both simulated APIs.

Nothing here knows a workspace or a route (see `__init__.py` for the layers):
- `Response`, and `bearer_token()`: the token of `Authorization: Bearer <token>`;
- `ApiError`, raised by every layer above for an error answer, and `error()`: the Public API's
  error shape `{"errors": [{"type", "message", "status", "field"?}]}`;
- the cursor codec: a cursor is an opaque base64 offset (`encode_cursor` / `decode_cursor`);
- the page parameters: a `Paging` names where an API puts them (the Public API's
  `pagination[count]` / `pagination.count` and `pagination[cursor]` / `pagination.cursor`, the
  Config API's `page_size` / `page_token`); `Paging.read(params)` is the one parser of them;
- `page()`: one page of a Public API list, `{"data": {<items key>: [...], "pagination": {...}}}`:
  count 1..`max_count`, default 200, no `next` on the last page, 422 for a bad count or cursor.
"""

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Protocol, Tuple

DEFAULT_PAGE_SIZE = 200
MAX_PAGE_SIZE = 1000


@dataclass
class Response:
    status: int
    body: Dict[str, Any]
    headers: Dict[str, str] = field(default_factory=dict)


class Headers(Protocol):
    """Request headers: a plain mapping, or the case-insensitive `email.message.Message` of `http.server`."""

    def get(self, name: str, default: str, /) -> str: ...


def bearer_token(headers: Headers) -> str:
    """The token of `Authorization: Bearer <token>`; "" without one."""
    auth = headers.get("Authorization", "")
    return auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""


def error(status: int, type_: str, message: str, **extra: Any) -> Response:
    """An error answer in the Public API's shape."""
    return Response(status, {"errors": [dict(type=type_, message=message, status=status, **extra)]})


class ApiError(Exception):
    """An error answer, raised where it is found and shaped by the simulator that answers."""

    def __init__(self, status: int, type_: str, message: str, field: Optional[str] = None) -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.field = status, type_, message, field

    def response(self) -> Response:
        return error(self.status, self.type, self.message, **({"field": self.field} if self.field else {}))


def encode_cursor(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode()


def decode_cursor(cursor: str) -> int:
    """The offset of a cursor; `ValueError` if it is not one."""
    try:
        offset = int(base64.b64decode(cursor, validate=True).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValueError(cursor) from None
    if offset < 0:
        raise ValueError(cursor)
    return offset


@dataclass(frozen=True)
class Paging:
    """Where an API puts its page parameters (the first name given wins) and its default page size."""

    count_params: Tuple[str, ...]
    cursor_params: Tuple[str, ...]
    default_count: int

    def read(self, params: Mapping[str, str]) -> "PageRequest":
        return PageRequest(self.default_count, _first(params, self.count_params), _first(params, self.cursor_params))

    def without_cursor(self, params: Mapping[str, str]) -> Dict[str, str]:
        """The parameters that ask for the first page."""
        return {name: value for name, value in params.items() if name not in self.cursor_params}


@dataclass(frozen=True)
class PageRequest:
    """The page a request asks for, as sent; the properties say what it means."""

    default_count: int
    raw_count: Optional[str]
    cursor: Optional[str]

    @property
    def asked_count(self) -> Optional[int]:
        """The page size asked for: None if none was, or not a whole number."""
        return int(self.raw_count) if self.raw_count and self.raw_count.isascii() and self.raw_count.isdigit() else None

    @property
    def count(self) -> Optional[int]:
        """The page size: the default if none was asked for, None if not a whole number."""
        return self.default_count if self.raw_count is None else self.asked_count

    @property
    def offset(self) -> Optional[int]:
        """Where the page starts: 0 without a cursor (or an empty one), None if the cursor is not one."""
        if not self.cursor:
            return 0
        try:
            return decode_cursor(self.cursor)
        except ValueError:
            return None


PAGINATION = Paging(
    ("pagination[count]", "pagination.count"), ("pagination[cursor]", "pagination.cursor"), DEFAULT_PAGE_SIZE
)
"""The Public API's page parameters."""


def page(items_key: str, items: List[Any], params: Mapping[str, str], max_count: int = MAX_PAGE_SIZE) -> Response:
    """The page of `items` that `params` ask for, in the Public API's envelope; `ApiError` 422 for a
    page size outside 1..`max_count` or a cursor that is not one of this list's."""
    asked = PAGINATION.read(params)
    count, offset = asked.count, asked.offset
    if count is None or not 1 <= count <= max_count:
        raise ApiError(
            422,
            "ValidationError",
            f"pagination.count must be an integer between 1 and {max_count}, got {asked.raw_count!r}",
            field="pagination.count",
        )
    if offset is None or offset > len(items):
        problem = "is not valid" if offset is None else "is out of range"
        raise ApiError(
            422, "ValidationError", f"pagination.cursor {asked.cursor!r} {problem}", field="pagination.cursor"
        )
    more = offset + count < len(items)
    return Response(
        200,
        {
            "data": {
                items_key: items[offset : offset + count],
                "pagination": pagination(offset, count, len(items), more),
            }
        },
    )


def pagination(offset: int, count: int, total: Optional[int], more: bool) -> Dict[str, Any]:
    """The `pagination` object of the page of `count` items at `offset`: `next` only if there are `more`."""
    cursors: Dict[str, Any] = {
        "current": encode_cursor(offset),
        "previous": encode_cursor(max(0, offset - count)) if offset > 0 else None,
        "totalEntries": total,
    }
    if more:
        cursors["next"] = encode_cursor(offset + count)
    return cursors


def _first(params: Mapping[str, str], names: Tuple[str, ...]) -> Optional[str]:
    return next((params[name] for name in names if name in params), None)
