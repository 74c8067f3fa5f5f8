"""Progress of a run on stderr, fit for a terminal and for a log file.

- On a terminal: one compact line per workspace, redrawn in place while the source reads
  (`workspace acme: 14/21 tables, 312 requests, 48,210 rows, waited 2.1 s`).
- In a log (stderr is not a terminal): one line every `interval` seconds (default 10) for all
  workspaces together, one line per finished table, one per workspace at the end of the extract
  and one per dlt step: a medium workspace writes a few dozen lines, never thousands.

`Progress` is a dlt collector, passed as `dlt.pipeline(..., progress=Progress(report))`: dlt tells
it when its steps start and stop and how many resources the extract runs; the source tells it
each page and each finished table through `RunReport.progress` (see `tables.py`), and the
readers' clients know the requests and waits. Why not dlt's own collectors: `"log"` writes a line
per counter per table and step (~1,000 for a medium workspace), `tqdm` fills a log with escape
sequences, `enlighten` shows nothing without a terminal, and none knows workspaces, requests or
rate-limit waits.
"""

import shutil
import sys
import threading
import time
from typing import Dict, List, Optional, TextIO

from dlt.common.runtime.collector import Collector

from segment_source.endpoints import Endpoint
from segment_source.reader import WorkspaceReader
from segment_source.report import RunReport

LOG_INTERVAL = 10.0
"""Seconds between two progress lines in a log."""
REDRAW_INTERVAL = 0.5
"""Seconds between two redraws on a terminal, while nothing else redraws."""
EXTRACT = "Extract"


class Progress(Collector):
    """Shows the run of the source that fills `report` (and attaches itself to it)."""

    def __init__(
        self,
        report: RunReport,
        stream: Optional[TextIO] = None,
        interval: float = LOG_INTERVAL,
        tty: Optional[bool] = None,
    ) -> None:
        self.report = report
        report.progress = self
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = REDRAW_INTERVAL if self.tty else interval
        self.step = ""
        self.total_tables = 0
        self.finished_tables: List[str] = []
        self.rows_by_table: Dict[str, int] = {}
        self.rows_by_reader: Dict[int, int] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._ticker: Optional[threading.Thread] = None
        self._started = time.monotonic()
        self._drawn = 0  # lines of the last redraw on a terminal

    # ---- what the source tells -------------------------------------------------------------

    def page(self, reader: WorkspaceReader, endpoint: Endpoint, rows: int) -> None:
        with self._lock:
            self.rows_by_reader[id(reader)] = self.rows_by_reader.get(id(reader), 0) + rows
            self.rows_by_table[endpoint.table] = self.rows_by_table.get(endpoint.table, 0) + rows

    def finished(self, endpoint: Endpoint) -> None:
        with self._lock:
            self.finished_tables.append(endpoint.table)
            if self.tty:
                self._redraw()
            else:
                rows = self.rows_by_table.get(endpoint.table, 0)
                self._write(f"{endpoint.table}: {rows:,} rows ({self._tables()} tables done)")

    # ---- what dlt tells (dlt.common.runtime.collector.Collector) -----------------------------

    def update(
        self,
        name: str,
        inc: int = 1,
        total: Optional[int] = None,
        inc_total: Optional[int] = None,
        message: Optional[str] = None,
        label: Optional[str] = None,
    ) -> None:
        # rows per table come from the source (per workspace too); dlt counts the resources to run
        if name == "Resources" and total is not None and self._ticker is not None:
            self.total_tables = total

    def _start(self, step: str) -> None:
        if not step.startswith(EXTRACT):
            self._write(f"{step.split()[0].lower()}...")  # "Normalize segment in <load id>"
            return
        if self.finished_tables:
            return  # dlt extracts the pipeline state after the source: nothing to show
        self._stopped.clear()
        self._ticker = threading.Thread(target=self._tick, name="segment-progress", daemon=True)
        self._ticker.start()

    def _stop(self) -> None:
        if self._ticker is None:
            return
        self._stopped.set()
        self._ticker.join()
        self._ticker = None
        with self._lock:
            if self.tty:
                self._redraw()
                self._drawn = 0  # what follows goes below the final lines
            else:
                for line in self._workspace_lines():
                    self._write(line)

    # ---- output ------------------------------------------------------------------------------

    def _tick(self) -> None:
        while not self._stopped.wait(self.interval):
            with self._lock:
                if self.tty:
                    self._redraw()
                else:
                    self._write(self._summary_line())

    def _tables(self) -> str:
        return f"{len(self.finished_tables)}/{self.total_tables or '?'}"

    def _workspace_lines(self) -> List[str]:
        lines = []
        for reader in self.report.readers:
            stats = reader.client.stats
            waited = stats.waited_seconds + reader.client.limiter.waited_seconds
            line = (
                f"{reader.label}: {self._tables()} tables, {stats.requests:,} requests,"
                f" {self.rows_by_reader.get(id(reader), 0):,} rows, {_waits(waited, stats.rate_limited)}"
            )
            lines.append(line + (", failed" if reader.failure is not None else ""))
        return lines

    def _summary_line(self) -> str:
        readers = self.report.readers
        stats = self.report.stats
        who = readers[0].label if len(readers) == 1 else f"{len(readers)} workspaces"
        return (
            f"{who}: {self._tables()} tables, {stats['requests']:,} requests,"
            f" {sum(self.rows_by_reader.values()):,} rows, {_waits(stats['waited_seconds'], stats['rate_limited'])}"
        )

    def _redraw(self) -> None:
        lines = self._workspace_lines()
        width = shutil.get_terminal_size().columns - 1  # a wrapped line would break the cursor moves
        up = f"\x1b[{self._drawn}F" if self._drawn else ""  # back to the first line of the last drawing
        self.stream.write(up + "".join(f"{line[:width]}\x1b[K\n" for line in lines))
        self.stream.flush()
        self._drawn = len(lines)

    def _write(self, line: str) -> None:
        if self.tty:
            self._drawn = 0
            self.stream.write(line + "\n")
        else:
            self.stream.write(f"[segment {time.monotonic() - self._started:6.1f}s] {line}\n")
        self.stream.flush()


def _waits(seconds: float, rate_limited: int) -> str:
    return f"waited {seconds:.1f} s" + (f" ({rate_limited} x 429)" if rate_limited else "")
