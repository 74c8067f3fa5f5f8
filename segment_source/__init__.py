"""Load a Segment workspace's configuration into your warehouse with dlt.

    import dlt
    from segment_source import load_segment, segment_source

    pipeline = dlt.pipeline("segment_pipeline", destination="duckdb", dataset_name="segment_data")
    info, report, changes = load_segment(pipeline)  # locks, recovers, loads, raises if a workspace failed

A workspace that still holds a legacy Config API token loads into the same tables with
`segment_config_api` (see `config_api.py`).

The names below are imported on first use: `segment-pipeline --help` (segment_source.cli)
answers without waiting for dlt to import.
"""

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

if TYPE_CHECKING:
    from segment_source.config_api import segment_config_api
    from segment_source.endpoints import DEFAULT_TABLES, ENDPOINTS
    from segment_source.report import RunReport
    from segment_source.runner import SegmentLoad, load_segment
    from segment_source.source import segment_source

_EXPORTS = {
    "segment_source": "segment_source.source",
    "segment_config_api": "segment_source.config_api",
    "load_segment": "segment_source.runner",
    "SegmentLoad": "segment_source.runner",
    "RunReport": "segment_source.report",
    "ENDPOINTS": "segment_source.endpoints",
    "DEFAULT_TABLES": "segment_source.endpoints",
}

__all__ = [
    "__version__",
    "segment_source",
    "segment_config_api",
    "load_segment",
    "SegmentLoad",
    "RunReport",
    "ENDPOINTS",
    "DEFAULT_TABLES",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'segment_source' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
