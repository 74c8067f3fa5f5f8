"""Progress on stderr: a few lines in a log, lines redrawn in place on a terminal, nothing with --quiet."""

import io
import re
from typing import List

import dlt

from segment_simulator import SegmentSimulator, generate_workspace
from segment_source import DEFAULT_TABLES, RunReport, segment_source
from segment_source.progress import Progress
from tests.support import CORE_TABLES
from tests.test_pipeline_script import run_script, simulator_env

PROGRESS_LINE = re.compile(r"^\[segment +\d+\.\ds\] (.*)$")


def test_a_medium_run_logs_a_few_dozen_lines_and_one_per_finished_table(tmp_path):
    with SegmentSimulator(generate_workspace("medium")) as sim:
        result = run_script(tmp_path, env=simulator_env(sim))  # pipes: stderr is not a terminal
    assert result.returncode == 0, result.stderr
    lines = [m.group(1) for m in map(PROGRESS_LINE.match, result.stderr.splitlines()) if m]
    assert 0 < len(lines) < 60, result.stderr
    assert len(result.stderr.splitlines()) == len(lines), "nothing else on stderr: " + result.stderr
    # one line per finished table, with the rows read, as many as the script's report counts
    finished = {
        m.group(1): int(m.group(2).replace(",", ""))
        for m in map(re.compile(r"^(\w+): ([\d,]+) rows").match, lines)
        if m
    }
    assert set(finished) == set(DEFAULT_TABLES)
    counted = {
        m.group(1): int(m.group(2))
        for m in map(re.compile(r"^  (\w+) +(\d+) / ").match, result.stdout.splitlines())
        if m
    }
    for table in DEFAULT_TABLES:
        assert finished[table] == counted[table], table
    assert any(
        line.startswith(f"workspace {sim.workspace.slug}: {len(DEFAULT_TABLES)}/{len(DEFAULT_TABLES)} tables")
        for line in lines
    )


def test_quiet_prints_no_progress(tmp_path):
    with SegmentSimulator(generate_workspace("small")) as sim:
        result = run_script(tmp_path, "--quiet", "--resources", "workspace,sources", env=simulator_env(sim))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def screen(output: str) -> List[str]:
    """What a terminal shows after `output`, written line by line with cursor-up (ESC[nF) and erase (ESC[K)."""
    shown: List[str] = []
    row = 0
    for token in re.split(r"(\x1b\[\d+F|\x1b\[K|\n)", output):
        if re.fullmatch(r"\x1b\[\d+F", token):
            row -= int(token[2:-1])
        elif token == "\n":
            row += 1
        elif token and token != "\x1b[K":
            shown.extend([""] * (row + 1 - len(shown)))
            shown[row] = token
    return shown


def test_on_a_terminal_each_workspace_keeps_one_line_that_is_redrawn(tmp_path):
    a, b = generate_workspace("small", slug="alpha"), generate_workspace("small", slug="beta")
    out = io.StringIO()
    report = RunReport()
    pipeline = dlt.pipeline(
        "progress_tty",
        destination=dlt.destinations.duckdb(str(tmp_path / "p.duckdb")),
        pipelines_dir=str(tmp_path / "pipelines"),
        progress=Progress(report, stream=out, tty=True),
    )
    with SegmentSimulator({"tok-a": a, "tok-b": b}) as sim:
        source = segment_source(api_key=["tok-a", "tok-b"], base_url=sim.url, report=report)
        pipeline.run(source.with_resources(*CORE_TABLES))
    written = out.getvalue()
    assert written.count("\x1b[2F") >= len(CORE_TABLES), "redrawn in place as tables finish"
    final = [line for line in screen(written) if line.startswith("workspace ")]
    total = len(CORE_TABLES)
    assert [line.split(":")[0] for line in final] == ["workspace alpha", "workspace beta"]
    assert all(f"{total}/{total} tables" in line for line in final), final
