"""The dlt source of the Segment Public API: one resource per endpoint of `endpoints.ENDPOINTS`,
each filling a current-state table and its history (see `tables.py`)."""

from typing import List, Optional, Union

import dlt
from dlt.common.typing import TSecretValue
from dlt.extract.resource import DltResource

from segment_source import redaction
from segment_source.client import SegmentClient
from segment_source.endpoints import ENDPOINTS, media_types, rate_limits
from segment_source.errors import MissingTokenError
from segment_source.reader import WorkspaceReader
from segment_source.report import RunReport
from segment_source.settings import (
    DEFAULT_CONCURRENCY,
    SECTION,
    check_concurrency,
    keep_paths,
    parse_start_date,
    resolve_base_url,
    split_tokens,
)
from segment_source.tables import endpoint_resource


@dlt.source(name="segment", section=SECTION)
def segment_source(
    api_key: TSecretValue = dlt.secrets.value,
    region: str = "us",
    base_url: Optional[str] = None,
    history: bool = True,
    fingerprint_key: Optional[TSecretValue] = None,
    start_date: Optional[str] = None,
    max_concurrency: int = DEFAULT_CONCURRENCY,
    keep_settings: Optional[Union[str, List[str]]] = None,
    report: Optional[RunReport] = None,
) -> List[DltResource]:
    """A Segment workspace's configuration (or several workspaces'), one resource per object type.

    Args:
        api_key: a Public API token, or several (a list, or comma-separated), one per workspace.
        region: "us" (api.segmentapis.com) or "eu" (eu1.api.segmentapis.com).
        base_url: overrides the region's URL, e.g. the simulator's http://127.0.0.1:<port>.
        history: also keep every version of every object in `<table>_history`.
        fingerprint_key: key of the fingerprints of masked secrets; by default each workspace's key
            is derived from its own token (`redaction.token_key`).
        start_date: where the first run of the audit trail (and sync reports) starts, ISO 8601;
            defaults to 90 days ago, the audit trail's retention.
        max_concurrency: child listings (one per parent: filters per destination...) in flight at
            once per workspace; every request still waits its turn in the token's budget.
        keep_settings: settings paths to load unmasked, e.g. `["destinations.settings.region"]`
            (a list, or comma-separated).
        report: collects skipped resources, failed workspaces and tables and warnings, for the
            caller to show. With one, a table that fails costs only itself (see
            `RunReport.failed_tables`); without one, it fails the run.
    """
    tokens = split_tokens(api_key)
    if not tokens:
        raise MissingTokenError()
    url = resolve_base_url(region, base_url)
    start = parse_start_date(start_date)
    limits, versions = rate_limits(ENDPOINTS), media_types(ENDPOINTS)
    concurrency = check_concurrency(max_concurrency)
    keep = keep_paths(keep_settings, ENDPOINTS, SECTION)
    readers = [
        WorkspaceReader(
            SegmentClient(url, token, limits, versions, max_concurrency=concurrency),
            f"workspace {i} of {len(tokens)}",
            fingerprint_key or redaction.token_key(token),
            start,
            max_concurrency=concurrency,
            keep_settings=keep,
        )
        for i, token in enumerate(tokens, 1)
    ]
    report = report if report is not None else RunReport(isolate_tables=False)
    report.readers = readers
    return [endpoint_resource(endpoint, readers, history, report) for endpoint in ENDPOINTS]
