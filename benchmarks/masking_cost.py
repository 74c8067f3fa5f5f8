"""What deny-by-default masking costs: how many leaf values of settings-like objects are masked,
partly masked (a structured string that lost its secret part) or kept, and by which rule.

    .venv/bin/python -m benchmarks.masking_cost [small|medium|large]   (default medium)

Reads the simulated workspace's items as the API serves them and redacts them with the same call
the reader makes (`redaction.redact_item`), per table of the surface that has settings or code.
A leaf is a string, number, boolean or null of a settings object (an element of a list counts
once per element); a string literal of function code is a leaf too. `secrets` counts the leaves
that hold a secret the simulator planted: masked plus partly masked, minus that, is what masking
costs (non-secrets masked); a secret that would stay plain fails the tests, not this script.
"""

import sys
import time
from collections import Counter
from typing import Any, Dict, Iterator, List, Set

from segment_simulator import generate_workspace
from segment_simulator.workspace import SimulatedWorkspace
from segment_source.endpoints import BY_TABLE
from segment_source.redaction import Tally, redact_item, token_key

# table -> the simulator's kind whose items it loads
TABLES = {
    "sources": "sources",
    "destinations": "destinations",
    "warehouses": "warehouses",
    "destination_subscriptions": "subscriptions",
    "transformations": "transformations",
    "function_code": "functions",
}


def items(ws: SimulatedWorkspace, kind: str) -> List[Dict[str, object]]:
    return [ws.get(kind, i) for i in ws.ids(kind)]


def secret_leaves(value: Any, secrets: Set[str]) -> Iterator[bool]:
    """Each string leaf of settings: does it hold a planted secret?"""
    if isinstance(value, dict):
        for item in value.values():
            yield from secret_leaves(item, secrets)
    elif isinstance(value, list):
        for item in value:
            yield from secret_leaves(item, secrets)
    elif isinstance(value, str):
        yield any(secret in value for secret in secrets)


def main(size: str) -> None:
    ws = generate_workspace(size)
    key = token_key("benchmark-token")
    total: Tally = Counter()
    print(f"{size} workspace: leaf values of settings-like objects (and function code literals)\n")
    print(f"{'table':<28}{'objects':>8}{'leaves':>9}{'masked':>9}{'partly':>9}{'kept':>9}{'secrets':>9}{'seconds':>9}")
    for table, kind in TABLES.items():
        tally: Tally = Counter()
        objects = items(ws, kind)
        started = time.perf_counter()
        for item in objects:
            redact_item(item, BY_TABLE[table], key, tally=tally)
        seconds = time.perf_counter() - started
        endpoint = BY_TABLE[table]
        secrets = sum(
            sum(secret_leaves(item.get(f), ws.secrets)) for item in objects for f in endpoint.settings_fields
        ) + sum(str(item.get(f, "")).count(s) for item in objects for f in endpoint.code_fields for s in ws.secrets)
        by_outcome = Counter({o: 0 for o in ("masked", "partly masked", "kept")})
        for (outcome, _), n in tally.items():
            by_outcome[outcome] += n
        print(
            f"{table:<28}{len(objects):>8}{sum(tally.values()):>9}{by_outcome['masked']:>9}"
            f"{by_outcome['partly masked']:>9}{by_outcome['kept']:>9}{secrets:>9}{seconds:>9.3f}"
        )
        total.update(tally)
    leaves = sum(total.values())
    print(f"\nby rule ({leaves} leaves):")
    for (outcome, rule), n in sorted(total.items(), key=lambda kv: (kv[0][0], -kv[1])):
        print(f"  {outcome:<14}{rule:<28}{n:>8}  {100 * n / leaves:5.1f}%")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "medium")
