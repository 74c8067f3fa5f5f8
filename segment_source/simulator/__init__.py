"""A Segment Public API simulator: a real HTTP server on 127.0.0.1 for tests, demos and offline work.

    from segment_source.simulator import SegmentSimulator, generate_workspace

    with SegmentSimulator(generate_workspace("medium")) as sim:
        ...  # point the source at sim.url with sim.token; edit sim.workspace between runs
"""

from segment_source.simulator.server import RecordedRequest, SegmentSimulator
from segment_source.simulator.workspace import SIZES, SimulatedWorkspace, Size, demo_workspace, generate_workspace

__all__ = ["SegmentSimulator", "SimulatedWorkspace", "RecordedRequest", "Size", "SIZES", "demo_workspace", "generate_workspace"]
