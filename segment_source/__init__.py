"""Load a Segment workspace's configuration into your warehouse with dlt.

    import dlt
    from segment_source import segment_source

    pipeline = dlt.pipeline("segment_pipeline", destination="duckdb", dataset_name="segment_data")
    pipeline.run(segment_source())
"""

from segment_source.endpoints import DEFAULT_TABLES, ENDPOINTS
from segment_source.report import RunReport
from segment_source.source import segment_source

__all__ = ["segment_source", "RunReport", "ENDPOINTS", "DEFAULT_TABLES"]
