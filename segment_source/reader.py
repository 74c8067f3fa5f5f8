"""Reads one workspace's endpoints into loadable rows.

Rows are the API's items, shaped by their endpoint (catalog metadata reduced, links built),
with secrets masked and `workspaceId` set. Parent lists (warehouses, spaces) are fetched once
per run and shared with their children, so a run costs one request series per list.
"""

import re
from typing import Dict, Iterator, List, Optional

from segment_source import redaction
from segment_source.client import SegmentClient
from segment_source.endpoints import BY_TABLE, PARENT_TABLES, Endpoint, Row
from segment_source.errors import UnexpectedResponseError

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
WORKSPACE = BY_TABLE["workspace"]


class WorkspaceReader:
    """One workspace, reached with one token."""

    def __init__(self, client: SegmentClient, fingerprint_key: Optional[str] = None) -> None:
        self.client = client
        self._fingerprint_key = fingerprint_key
        self._info: Optional[Row] = None
        self._parents: Dict[str, List[Row]] = {}

    @property
    def info(self) -> Row:
        """The workspace object (`GET /`), fetched once."""
        if self._info is None:
            info = self.client.get(WORKSPACE.path, WORKSPACE.data_key)
            if not isinstance(info, dict) or not _SAFE_ID.match(str(info.get("id", ""))):
                raise UnexpectedResponseError(
                    "GET / answered with a workspace whose id is missing or not a plain identifier;"
                    " the Public API may have changed; please report this."
                )
            self._info = info
        return self._info

    @property
    def workspace_id(self) -> str:
        return str(self.info["id"])

    def pages(self, endpoint: Endpoint) -> Iterator[List[Row]]:
        """The endpoint's rows, a page at a time."""
        if endpoint is WORKSPACE:
            yield [self._row(endpoint, self.info, {})]
        elif endpoint.table in PARENT_TABLES:
            yield self._parent_rows(endpoint)
        else:
            yield from self._fetch(endpoint)

    def _parent_rows(self, endpoint: Endpoint) -> List[Row]:
        if endpoint.table not in self._parents:
            self._parents[endpoint.table] = [row for page in self._fetch(endpoint) for row in page]
        return self._parents[endpoint.table]

    def _fetch(self, endpoint: Endpoint) -> Iterator[List[Row]]:
        if endpoint.parent is None:
            for items in self.client.pages(endpoint.path, endpoint.data_key, endpoint.page_size):
                yield [self._row(endpoint, item, {}) for item in items]
            return
        for parent in self._parent_rows(BY_TABLE[endpoint.parent]):
            path = endpoint.path.format(id=parent["id"])
            for items in self.client.pages(path, endpoint.data_key, endpoint.page_size):
                yield [self._row(endpoint, item, parent) for item in items]

    def _row(self, endpoint: Endpoint, item: Row, parent: Row) -> Row:
        if endpoint.shape is not None:
            item = endpoint.shape(item, parent)
        key = self._fingerprint_key or self.workspace_id
        row = redaction.redact_item(item, endpoint.secret_fields, endpoint.settings_fields, key)
        row.setdefault("workspaceId", self.workspace_id)
        return row
