"""One run at a time per pipeline and dataset: `run_lock`.

    with run_lock(pipeline, wait_seconds=0):
        recover_interrupted_load(pipeline)
        pipeline.run(segment_source())

Two runs of one pipeline share its working directory (extracted and normalized packages, state)
and its tables; run at once, they load one package twice and leave duplicate open versions in
history. The lock is held in two places:

- Locally, an OS lock (`fcntl.flock`) on `<pipelines dir>/<pipeline name>.lock`, beside the
  working directory rather than inside it: dlt wipes the working directory when the dataset was
  dropped from the destination, which would unlink a lock file under a running holder. The file
  records the holder (pid, host, start time, command line) so a refused run can say who holds it.
  The kernel releases the lock when its holder dies, however it dies, so a stale lock is simply
  taken over; a file that still names a holder when the lock is taken means that holder died.
- In PostgreSQL, a session-level advisory lock (`pg_try_advisory_lock`) keyed on (dataset name,
  pipeline name), held on a connection of its own for the whole run, so runs on two machines
  exclude each other too. PostgreSQL releases it when that session ends; TCP keepalives on the
  session bound how long a lost machine keeps it (about two minutes). The holder's record is the
  text of the session's last statement, which `pg_stat_activity` shows to other sessions.
- DuckDB needs no more than the local lock: its file is on the machine that runs the pipeline.
- Snowflake has no advisory or session-bound lock. A lock row in a table would outlive a killed
  run and block every later run until someone deleted it, so Snowflake runs rely on the local
  lock only: runs of one pipeline from two machines into one Snowflake dataset are not excluded.

dlt has no run lock of its own (its pipeline state is versioned, not locked), hence this module.
"""

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shlex
import socket
import sys
import textwrap
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Optional

import dlt

from segment_source.errors import RunInProgressError
from segment_source.redaction import redact_text

logger = logging.getLogger("segment_source")

POLL_SECONDS = 0.5
"""How often a run waiting for the lock (`wait_seconds > 0`) tries again."""

# A lost machine's session is dropped after idle 60 s + 6 unanswered probes 10 s apart. The same
# statement makes sure an administrator's idle_session_timeout (PostgreSQL 14+) cannot end the
# lock's session mid-run; pg_settings lists only the parameters this server knows.
_KEEP_SESSION_SQL = (
    "SELECT set_config(name, v.value, false) FROM pg_settings JOIN (VALUES ('tcp_keepalives_idle', '60'),"
    " ('tcp_keepalives_interval', '10'), ('tcp_keepalives_count', '6'), ('idle_session_timeout', '0'))"
    " AS v (name, value) USING (name)"
)
_TRY_LOCK_SQL = "SELECT pg_try_advisory_lock(%s) AS segment_source_run_lock, %s AS holder"
_HOLDER_IN_QUERY = re.compile(r"AS segment_source_run_lock, '([A-Za-z0-9+/=]+)' AS holder")
_HOLDER_SQL = (
    "SELECT a.query, a.client_addr::text, a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.classid = %s::oid AND l.objid = %s::oid"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


@dataclass(frozen=True)
class Holder:
    """Who holds a run lock: enough for the person at the other terminal to find that run."""

    pid: int
    host: str
    started: str  # ISO 8601, UTC
    command: str

    @classmethod
    def this_process(cls) -> "Holder":
        # a connection string typed on the command line keeps its host, never its password; one line, as
        # the refusal is one paragraph (a `python -c` program spans many)
        args = [redact_text(a) if "://" in a else a for a in sys.orig_argv]
        return cls(
            pid=os.getpid(),
            host=socket.gethostname(),
            started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            command=textwrap.shorten(shlex.join([os.path.basename(args[0]), *args[1:]]), 200, placeholder=" ..."),
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Optional["Holder"]:
        try:
            return cls(**json.loads(text))
        except (ValueError, TypeError):
            return None  # written at this very moment, or not by us

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host} (`{self.command}`), running since {self.started}"


@contextlib.contextmanager
def run_lock(pipeline: dlt.Pipeline, wait_seconds: float = 0) -> Iterator[None]:
    """Hold the run lock of `pipeline` and its dataset for the `with` block.

    Raises `RunInProgressError` at once when another run holds it, or, with `wait_seconds > 0`,
    when it is still held after that long. Take it before `recover_interrupted_load`: what looks
    interrupted may be the other run's package, still loading. The destination lock needs the
    destination on the pipeline (`dlt.pipeline(..., destination=...)`), not only on `run`.
    """
    me = Holder.this_process()
    started = time.monotonic()

    def refused(holder: str) -> RunInProgressError:
        waited = round(time.monotonic() - started) if wait_seconds > 0 else 0
        return RunInProgressError(pipeline.pipeline_name, pipeline.dataset_name, holder, waited)

    def poll(try_take: Callable[[], Optional[str]]) -> None:
        """Take a lock with `try_take` (None when taken, else who holds it) until the deadline."""
        while True:
            holder = try_take()
            if holder is None:
                return
            left = started + wait_seconds - time.monotonic()
            if left <= 0:
                raise refused(holder)
            time.sleep(min(POLL_SECONDS, left))

    with contextlib.ExitStack() as held:
        held.enter_context(_local_lock(pipeline.working_dir + ".lock", me, poll))
        if pipeline.destination is not None and pipeline.destination.destination_type == "dlt.destinations.postgres":
            held.enter_context(_postgres_lock(pipeline, me, poll))
        yield


def create_pipeline(**kwargs: Any) -> dlt.Pipeline:
    """`dlt.pipeline(**kwargs)`, one process at a time per pipeline name and directory.

    dlt creates a pipeline's working directory when it holds no state yet, and wipes what is there
    first: two runs of a new pipeline started within milliseconds of each other (two cron entries
    on one minute) make the second fail with `FileExistsError`, or wipe the first's directory,
    before either reaches `run_lock`. An OS lock on `<pipelines dir>/<name>.create.lock`, held only
    while dlt builds the pipeline, serializes that: the second process finds the first's state and
    attaches to it, then `run_lock` refuses it with its paragraph.
    """
    from dlt.common.pipeline import get_dlt_pipelines_dir

    name = kwargs.get("pipeline_name")
    if not name:  # dlt's default name, the script's; nothing of ours to serialize on
        return dlt.pipeline(**kwargs)
    fd = _open_lock_file(os.path.join(kwargs.get("pipelines_dir") or get_dlt_pipelines_dir(), f"{name}.create.lock"))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held for the milliseconds dlt takes to build the pipeline
        return dlt.pipeline(**kwargs)
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def _local_lock(path: str, me: Holder, poll: Callable[[Callable[[], Optional[str]]], None]) -> Iterator[None]:
    fd = _open_lock_file(path)
    try:

        def try_take() -> Optional[str]:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return None
            except BlockingIOError:
                holder = Holder.from_json(_read(fd))
                return holder.describe() if holder else "a process that has not recorded itself yet"

        poll(try_take)
        dead = Holder.from_json(_read(fd))
        if dead is not None:
            logger.warning(
                "The run lock %s names pid %s on host %s (`%s`, since %s), which ended without releasing it;"
                " this run takes it over.",
                path,
                dead.pid,
                dead.host,
                dead.command,
                dead.started,
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, me.to_json().encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # a clean release leaves no holder behind; the unlock is the close below
    finally:
        os.close(fd)


def _open_lock_file(path: str) -> int:
    """The lock file at `path`, created with its directory if missing. Never deleted: a process that
    opened the old file and one that created a new one would both hold "the" lock."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


def _read(fd: int) -> str:
    return os.pread(fd, 1 << 16, 0).decode(errors="replace")


@contextlib.contextmanager
def _postgres_lock(
    pipeline: dlt.Pipeline, me: Holder, poll: Callable[[Callable[[], Optional[str]]], None]
) -> Iterator[None]:
    """The advisory lock, on a connection dlt opens from its own resolved credentials."""
    key = advisory_key(pipeline.dataset_name, pipeline.pipeline_name)
    record = base64.b64encode(me.to_json().encode()).decode()
    with pipeline.sql_client() as client:
        client.execute_sql(_KEEP_SESSION_SQL)

        def try_take() -> Optional[str]:
            # the last statement this session runs: other sessions read the record from pg_stat_activity
            if client.execute_sql(_TRY_LOCK_SQL, key, record)[0][0]:  # type: ignore[index]  # a SELECT: rows
                return None
            found = client.execute_sql(_HOLDER_SQL, (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF)
            return _describe_session(*found[0]) if found else "a session that has just ended"

        poll(try_take)
        yield  # closing the session releases the lock, even when the run failed


def advisory_key(dataset_name: str, pipeline_name: str) -> int:
    """A signed 64-bit key, the same on every machine for one (dataset, pipeline)."""
    digest = hashlib.sha256(f"segment_source run lock\0{dataset_name}\0{pipeline_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _describe_session(query: Optional[str], client_addr: Optional[str], backend_start: Any) -> str:
    match = _HOLDER_IN_QUERY.search(query or "")
    holder = Holder.from_json(base64.b64decode(match.group(1)).decode()) if match else None
    if holder is not None:
        return holder.describe() + ", holding the PostgreSQL advisory lock"
    # the holder's query text is hidden from a role without pg_read_all_stats
    where = f"from {client_addr}" if client_addr else "of another database user"
    return f"a run whose PostgreSQL session {where} holds the advisory lock, connected since {backend_start}"
