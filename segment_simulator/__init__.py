"""A Segment Public API simulator: a real HTTP server on 127.0.0.1 for tests, demos and offline work.

    from segment_simulator import SegmentSimulator, generate_workspace

    with SegmentSimulator(generate_workspace("medium")) as sim:
        ...  # point the source at sim.url with sim.token; edit sim.workspace between runs

Rate limits, injected faults and scripted quirks are off by default; see `faults.py`:

    SegmentSimulator(ws, rate_limits=RateLimits(per_token=20, window=2.0), faults=Faults(rate=0.15, seed=1))

`ConfigApiSimulator` serves the legacy Config API (`<url>/v1beta`) from the same workspaces; see
`config_api.py`.
"""

from segment_simulator.config_api import ConfigApiSimulator
from segment_simulator.faults import FAULT_KINDS, Faults, InjectedFault, Quirks, RateLimits
from segment_simulator.generate import SIZES, Size
from segment_simulator.server import RecordedRequest, SegmentSimulator
from segment_simulator.workspace import SimulatedWorkspace, demo_workspace, generate_workspace

__all__ = [
    "SegmentSimulator",
    "ConfigApiSimulator",
    "SimulatedWorkspace",
    "RecordedRequest",
    "RateLimits",
    "Faults",
    "FAULT_KINDS",
    "InjectedFault",
    "Quirks",
    "Size",
    "SIZES",
    "demo_workspace",
    "generate_workspace",
]
