"""One scheduled run of the source, for an orchestrator (Dagster, Airflow): settings and the load.

Settings come from dlt's configuration, like the script's: `[sources.segment_source]` (the
token(s), `base_url`, `history`...), `[destination.<name>]`, and `[sources.segment_source.schedule]`
(environment: `SOURCES__SEGMENT_SOURCE__SCHEDULE__<KEY>`):

- `destination` (duckdb), `dataset_name` (segment_data), `cron` (hourly: "0 * * * *"),
  `resources` (the default tables);
- `workspaces`: names of the workspaces, one per token in the order of the tokens (default
  workspace_1, workspace_2...). With several tokens, each workspace runs on its own (a Dagster
  partition, an Airflow mapped task) with its own dlt pipeline `segment_pipeline_<name>` and so its
  own state, into the one dataset. The name, never the token, is what the orchestrator shows.

With one token the pipeline is `segment_pipeline`, the script's: its state (kept in the
destination) carries over from cron to an orchestrator and back.
"""

from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import dlt
from dlt.common.configuration import with_config

from segment_source.changes import CHANGES_TABLE
from segment_source.endpoints import DEFAULT_TABLES, ENDPOINTS
from segment_source.errors import ConfigurationError, explain
from segment_source.lock import create_pipeline
from segment_source.progress import Progress
from segment_source.report import RunReport
from segment_source.runner import load_segment
from segment_source.settings import SECTION, split_tokens
from segment_source.source import segment_source

PIPELINE_NAME = "segment_pipeline"


class RunFailed(Exception):
    """The run failed; the message is the script's one paragraph: what happened, what to do."""


@dataclass(frozen=True)
class Settings:
    destination: str
    dataset_name: str
    cron: str
    resources: Tuple[str, ...]
    history: bool
    workspaces: Tuple[str, ...]
    """Workspace names, one per token, when several tokens are configured (else empty)."""

    @property
    def pool(self) -> str:
        """The one lane of every run that writes the dataset (see the README on many workspaces)."""
        return f"segment_{self.dataset_name}"


@with_config(sections=("sources", SECTION, "schedule"))
def read_settings(
    destination: str = "duckdb",
    dataset_name: str = "segment_data",
    cron: str = "0 * * * *",
    resources: Optional[Sequence[str]] = None,
    workspaces: Optional[Sequence[str]] = None,
) -> Settings:
    """`[sources.segment_source.schedule]`, checked, with the names of the configured tokens' workspaces."""
    tokens = configured_tokens()
    names = tuple(workspaces) if workspaces else tuple(f"workspace_{i}" for i in range(1, len(tokens) + 1))
    if workspaces and len(names) != len(tokens):
        raise ConfigurationError(
            f"{len(names)} workspace name(s) for {len(tokens)} token(s). Set {where_scheduled('workspaces')}"
            " to one name per token, in the order of the tokens, or remove it to name them workspace_1,"
            " workspace_2..."
        )
    chosen = tuple(resources) if resources else tuple(DEFAULT_TABLES)
    unknown = sorted(set(chosen) - {e.table for e in ENDPOINTS})
    if unknown:
        raise ConfigurationError(
            f"Unknown resource(s) {', '.join(unknown)} in {where_scheduled('resources')}."
            f" Valid names: {', '.join(e.table for e in ENDPOINTS)}."
        )
    history = dlt.config.get(f"sources.{SECTION}.history", bool)  # the source's own setting
    return Settings(destination, dataset_name, cron, chosen, history is not False, names if len(tokens) > 1 else ())


def where_scheduled(key: str) -> str:
    env = f"SOURCES__{SECTION.upper()}__SCHEDULE__{key.upper()}"
    return f"[sources.{SECTION}.schedule] {key} in .dlt/config.toml (or {env})"


def configured_tokens() -> Tuple[str, ...]:
    return split_tokens(dlt.secrets.get(f"sources.{SECTION}.api_key") or "")


def run(settings: Settings, workspace: Optional[str], log: Any) -> Dict[str, int]:
    """Load every token, or the one of `workspace`, with `load_segment` (as the script does: the run
    lock, recovery, the change feed); return the rows written per table, `changes` included.

    Skipped resources go to `log` as warnings. Raises `RunFailed` (one paragraph, never a secret)
    when the load, a workspace or a table failed, or another run holds the lock, so the
    orchestrator's run fails; a bug keeps its trace."""
    report = RunReport()
    try:
        tokens = configured_tokens()
        if workspace is not None:
            tokens = (tokens[settings.workspaces.index(workspace)],)
        pipeline = create_pipeline(
            pipeline_name=PIPELINE_NAME + (f"_{workspace}" if workspace else ""),
            destination=settings.destination,
            dataset_name=settings.dataset_name,
            progress=Progress(report),
        )
        source = segment_source(api_key=list(tokens), report=report).with_resources(*settings.resources)
        info, _, changes = load_segment(pipeline, source, report)
    except Exception as ex:  # noqa: BLE001 - a user's error becomes one paragraph, a bug stays a trace
        message, _ = explain(ex)
        if message is None:
            raise
        raise RunFailed(message) from None
    finally:
        for line in report.skipped:
            log.warning(line)
    log.info(str(info))
    log.info(changes.describe())
    return {**report.rows_loaded, **({CHANGES_TABLE: changes.recorded} if changes.recorded else {})}
