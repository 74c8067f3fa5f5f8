"""The dlt defaults `load_segment` changes for the length of a run, and why: each measured.

Each applies only where the user has not chosen: an environment variable or a config key of the
same name, or the destination factory's own capability, wins. Everything is put back after the
run, so a pipeline used afterwards for something else sees dlt's defaults again.
"""

import json
import os
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, Dict, Iterator, Union

import dlt

if TYPE_CHECKING:
    from dlt.common.destination.reference import AnyDestination

WRITER_BUFFER_ITEMS = 500
"""Rows each table's writer, in extract and in normalize, holds before it writes them to its file
(dlt's default: 5,000)."""
WRITER_SECTIONS = ("sources", "normalize")
"""Where dlt 1.31 reads the writers' settings (`[<section>.data_writer]`): extract's under `[sources]`,
not under the `[extract.data_writer]` its documentation names, which it does not read."""
STATEMENT_CAP = "max_query_length"
DUCKDB_STATEMENT_BYTES = 64 * 1024
"""dlt's `max_query_length` for DuckDB: each INSERT it sends carries half of this in VALUES."""
FILE_FORMAT_CAP = "preferred_loader_file_format"
DUCKDB_FILE_FORMAT = "parquet"
"""The load files normalize writes for DuckDB (dlt's default: `insert_values`, SQL INSERTs)."""
DUCKDB_GLOBAL_CONFIG = {"threads": 1}
"""DuckDB's settings for the run's connections (its default: a thread per CPU for each query)."""


@contextmanager
def run_settings(pipeline: "dlt.Pipeline") -> Iterator[None]:
    """Extract and normalize with small write buffers; into DuckDB, load parquet files with as many
    load threads as CPUs, each query on one DuckDB thread (and, where a factory chose INSERTs,
    INSERTs of 32 KiB).

    - Normalize, any destination: dlt buffers up to 5,000 rows per table before writing, and a
      workspace has dozens of tables; with 500, the large workspace's normalize peaks at 151 MiB
      instead of 203 (Python's own peak 78 MiB instead of 112), in no more CPU.
    - Extract, any destination: the same 5,000 rows per table wait in extract's writers, and a
      destination's row with its settings is kilobytes. With 500, whole runs of the large workspace
      (every default table, one simulator) peaked at 338-359 MiB in 4 runs against 357-383 in 7 of
      the code before; the medium workspace's, whose tables mostly hold fewer than 5,000 rows, at 287
      and 287 MiB against 281 and 290, in 28.2 and 29.4 CPU s against 27.6 and 31.5.
    DuckDB runs in this process, so its memory and CPU are the run's:
    - dlt writes INSERT statements for DuckDB by default, which DuckDB must parse; parquet files it
      reads directly. Every default table, replaying the same extracted large workspace: normalize
      and load took 19 CPU seconds instead of 45 (the change feed's first load 1.2 instead of 8.3),
      at the same peak (355 and 355 MiB against 329 and 359); the medium workspace's 74 data tables
      hold the same rows and types either way. A NUL character in a string is kept (INSERTs drop it).
    - dlt's default of 20 load threads only competes for the same CPUs, and each concurrent merge
      holds its table's rows in its transaction (large workspace on 2 CPUs, with dlt's 16 MiB
      statements: 1,276 MiB with 20 threads, 565 MiB with 2).
    - One DuckDB thread per query, not one per CPU: the load jobs already run side by side, and
      DuckDB's threads each read some of a parquet file's row groups (500 rows each, normalize's
      buffer) and hold them at once. The change feed's first load of the large workspace (61,719
      rows in one file) grew the process by 38 MiB instead of 66, the main load's peak fell by about
      15 MiB, in no more CPU. Credentials with their own `global_config` keep it.
    - dlt sends a load file to DuckDB as INSERT statements of up to 16 MiB of VALUES, and DuckDB's
      parser, which its `memory_limit` does not govern, holds such a statement as hundreds of MiB
      of expressions. With 32 KiB statements the large workspace's load peaks at about 320 MiB
      instead of 526, the change feed's first load at 282 instead of 814, and the load takes less
      CPU, not more.
    A remote warehouse (PostgreSQL, Snowflake) keeps dlt's load defaults: there the threads wait
    on the network and the server parses the statements."""
    with ExitStack() as stack:
        for section in WRITER_SECTIONS:
            stack.enter_context(env_default(f"{section}.data_writer.buffer_max_items", WRITER_BUFFER_ITEMS))
        destination = pipeline.destination
        if destination is not None and destination.destination_type.endswith(".duckdb"):
            stack.enter_context(env_default("load.workers", os.cpu_count() or 1))
            config = f"destination.{destination.destination_name}.credentials.global_config"
            stack.enter_context(env_default(config, DUCKDB_GLOBAL_CONFIG))
            stack.enter_context(_capability_default(destination, FILE_FORMAT_CAP, DUCKDB_FILE_FORMAT))
            stack.enter_context(_capability_default(destination, STATEMENT_CAP, DUCKDB_STATEMENT_BYTES))
        yield


@contextmanager
def env_default(key: str, value: Union[bool, int, Dict[str, Any]]) -> Iterator[None]:
    """dlt's config `key` (`section.name`) is `value` for the run, unless set in the environment or
    in dlt's config (a `[section]` of config.toml, or `[data_writer]` for a writer's setting)."""
    variable = key.upper().replace(".", "__")
    chosen = dlt.config.get(key) is not None  # dlt's providers: the environment, then config.toml
    if not chosen and ".data_writer." in key:
        chosen = dlt.config.get(key.split(".", 1)[1]) is not None
    if chosen:
        yield
        return
    os.environ[variable] = json.dumps(value) if isinstance(value, (bool, dict)) else str(value)
    try:
        yield
    finally:
        os.environ.pop(variable, None)


@contextmanager
def _capability_default(destination: "AnyDestination", name: str, value: object) -> Iterator[None]:
    """The destination's capability `name` is `value` for the run, unless its factory was given one."""
    if name in destination.caps_params:
        yield
        return
    destination.caps_params[name] = value
    try:
        yield
    finally:
        destination.caps_params.pop(name, None)
