"""The line a benchmark prints about the machine its figures come from."""

import importlib.util
import os
import sys


def bytecode_cached() -> bool:
    """Whether dlt's and pandas' compiled bytecode is on disk for a child process to load. Where it
    is not (`pip install --no-compile`, and `PYTHONDONTWRITEBYTECODE` set, as on the machine these
    figures were measured on), every run compiles them again: 8 of a medium run's 25 CPU seconds."""
    for module in ("dlt.pipeline.pipeline", "pandas.core.frame"):
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            continue
        if not os.path.exists(importlib.util.cache_from_source(spec.origin)):
            return False
    return True


def describe() -> str:
    """CPUs, Python, and whether the runs' CPU seconds include compiling their imports."""
    line = f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    if bytecode_cached():
        return line
    return (
        line + "\nbytecode of dlt and pandas is not compiled: every run compiles it again, and its CPU"
        " seconds include that; `.venv/bin/python -m compileall -q .venv/lib` first to measure as"
        " installed with pip's defaults"
    )
