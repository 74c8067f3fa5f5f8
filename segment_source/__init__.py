"""Load a Segment workspace's configuration into your warehouse with dlt.

    import dlt
    from segment_source import segment_source

    pipeline = dlt.pipeline("segment_pipeline", destination="duckdb", dataset_name="segment_data")
    pipeline.run(segment_source())

A workspace that still holds a legacy Config API token loads into the same tables with
`segment_config_api` (see `config_api.py`).
"""

from segment_source.config_api import segment_config_api
from segment_source.endpoints import DEFAULT_TABLES, ENDPOINTS
from segment_source.report import RunReport
from segment_source.source import segment_source

__all__ = ["segment_source", "segment_config_api", "RunReport", "ENDPOINTS", "DEFAULT_TABLES"]
