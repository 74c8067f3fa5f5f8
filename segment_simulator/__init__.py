"""A Segment Public API simulator: a real HTTP server on 127.0.0.1 for tests, demos and offline work.

    from segment_simulator import SegmentSimulator, generate_workspace

    with SegmentSimulator(generate_workspace("medium")) as sim:
        ...  # point the source at sim.url with sim.token; edit sim.workspace between runs

Rate limits, injected faults and scripted quirks are off by default; see `faults.py`:

    SegmentSimulator(ws, rate_limits=RateLimits(per_token=20, window=2.0), faults=Faults(rate=0.15, seed=1))

`ConfigApiSimulator` serves the legacy Config API (`<url>/v1beta`) from the same workspaces; see
`config_api.py`. `python -m segment_simulator --help` serves one from the command line.

The modules are a straight stack of layers, each importing only from the layers below it (no
import inside a function, none only for type checking; `tests/test_independence.py` checks it):

0. `loopback.py`: the HTTP server on 127.0.0.1 that both simulators stand on.
1. `wire.py`: the wire format: `Response`, `ApiError` and the error shape, the bearer token,
   the cursor codec, the one parser of page parameters, `page()`. `catalog.py`: Segment's
   catalog (sources, destinations, warehouses, actions, functions, roles) - no imports either.
2. `generate.py`: `Size` / `SIZES` and `ItemGenerator`, the abstract base that makes up items.
3. `workspace.py`: `SimulatedWorkspace` (the model, its edits and audit trail), `generate_workspace`.
4. `routes.py`: `Route`, `ROUTES` (path pattern -> what it serves), `match`.
5. `faults.py`: `RateLimits`, `Faults`, `Quirks` - the optional policies around the routes.
6. `server.py`: `SegmentSimulator`, the HTTP server and the one request handler, with hooks.
7. `config_api.py`: `ConfigApiSimulator`, the handler's hooks for the legacy Config API.
   `tracking.py`: `TrackingSimulator`, Segment's Tracking API (`POST /v1/batch`), on its own.
8. this module (the public names) and `__main__.py` (the command line).

The simulator never imports the product (`segment_source`), nor the product the simulator.
"""

from segment_simulator.config_api import ConfigApiSimulator
from segment_simulator.faults import FAULT_KINDS, Faults, InjectedFault, Quirks, RateLimits
from segment_simulator.generate import SIZES, Size
from segment_simulator.server import RecordedRequest, SegmentSimulator
from segment_simulator.tracking import TrackingFaults, TrackingSimulator
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
    "TrackingSimulator",
    "TrackingFaults",
]
