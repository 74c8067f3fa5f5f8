"""Errors a user can act on. Each message is one paragraph: what happened, and what to do.

No message ever holds the API token: errors are built from the endpoint, the status and
Segment's own error text, never from request headers.
"""

import re
from typing import TYPE_CHECKING, Any, Optional

import requests

if TYPE_CHECKING:
    from segment_source.report import RunReport

SECRETS_HINT = (
    'put it in .dlt/secrets.toml as\n\n    [sources.segment_source]\n    api_key = "<your token>"\n\n'
    "or set the environment variable SOURCES__SEGMENT_SOURCE__API_KEY"
)


class SegmentSourceError(Exception):
    """Base class: the message is meant for the person running the pipeline."""


class ConfigurationError(SegmentSourceError):
    """The configuration is wrong; nothing was requested from Segment."""


class MissingTokenError(ConfigurationError):
    def __init__(self) -> None:
        super().__init__(
            "No Segment Public API token is configured. Create one in Segment under Settings >"
            " Workspace settings > Access Management > Tokens (a Public API token, read-only is"
            f" enough), then {SECRETS_HINT}. To try the loader without a token, run it with --demo."
        )


class SegmentApiError(SegmentSourceError, requests.HTTPError):
    """Segment answered with an error status.

    A subclass of `requests.HTTPError` carrying the response: what it means for the run (retry,
    skip, fail) is `client.STATUS_POLICY`'s to say, by the response's status.
    """

    def __init__(self, message: str, endpoint: str, response: Optional[requests.Response] = None) -> None:
        super().__init__(message, response=response)
        self.endpoint = endpoint

    @property
    def status(self) -> Optional[int]:
        return self.response.status_code if self.response is not None else None


class AuthenticationError(SegmentApiError):
    """401: the token is wrong, expired or revoked. Never retried."""


class PermissionDeniedError(SegmentApiError):
    """403: the token's role lacks a permission, or the plan lacks a feature."""


class NotFoundError(SegmentApiError):
    """404: the object or the feature does not exist in this workspace."""


class ApiUnreachableError(SegmentSourceError):
    """No answer from the API host after every retry."""


class UnexpectedResponseError(SegmentSourceError):
    """Segment answered, but not with the envelope the Public API documents."""


class PartialLoad(SegmentSourceError):
    """Part of the run failed; everything else was loaded. `failed` says what, `info` (dlt's
    `LoadInfo` of the load that did happen) and `report` are set when raised by
    `runner.load_segment`."""

    def __init__(self, message: str, failed: Any, info: Any = None, report: "Optional[RunReport]" = None) -> None:
        super().__init__(message)
        self.failed = failed
        self.info = info
        self.report = report


class WorkspaceFailures(PartialLoad):
    """Some workspaces failed; the others were loaded."""

    def __init__(self, failed: "dict[str, str]", info: Any = None, report: "Optional[RunReport]" = None) -> None:
        lines = "\n".join(f"  - {workspace}: {why}" for workspace, why in failed.items())
        message = (
            f"{len(failed)} workspace(s) could not be loaded; every other workspace was loaded,"
            f" and what was loaded before for these stays as it was:\n{lines}"
        )
        super().__init__(message, failed, info, report)


class RunInProgressError(SegmentSourceError):
    """Another run of the same pipeline and dataset holds the run lock (see `lock.py`); nothing was done."""

    exit_code = 3

    def __init__(self, pipeline_name: str, dataset_name: str, holder: str, waited_seconds: float = 0) -> None:
        waited = f" This run waited {waited_seconds:g} s for it to end." if waited_seconds > 0 else ""
        super().__init__(
            f"Another run of pipeline {pipeline_name} into dataset {dataset_name} is in progress: {holder}.{waited}"
            " This run did not start: nothing was read or loaded. Wait until that run ends, or run again with"
            " --wait SECONDS to wait up to SECONDS for it and then start. A run that dies releases the lock with"
            " its process, and the next run takes it over."
        )


class TableFailures(PartialLoad):
    """Some tables failed; every other table was loaded."""

    def __init__(self, failed: "list[str]", info: Any = None, report: "Optional[RunReport]" = None) -> None:
        lines = "\n".join(f"  - {line}" for line in failed)
        message = (
            f"{len(failed)} table(s) could not be loaded; every other table was loaded, and these keep"
            f" what they had. Rerun later; if one keeps failing, the reason below says what to fix:\n{lines}"
        )
        super().__init__(message, failed, info, report)


DESTINATION_CREDENTIALS_HINTS = {
    "postgres": (
        "PostgreSQL credentials are missing. Put them in .dlt/secrets.toml as\n\n"
        "    [destination.postgres]\n"
        '    credentials = "postgresql://loader:<password>@localhost:5432/analytics"\n\n'
        "or set DESTINATION__POSTGRES__CREDENTIALS to the same connection string."
    ),
    "snowflake": (
        "Snowflake credentials are missing. Put them in .dlt/secrets.toml as\n\n"
        "    [destination.snowflake.credentials]\n"
        '    database = "SEGMENT"\n'
        '    username = "LOADER"\n'
        '    password = "<password>"\n'
        '    host = "<account identifier, e.g. kgiotue-wn98412>"\n'
        '    warehouse = "COMPUTE_WH"\n'
        '    role = "LOADER"\n\n'
        "or set DESTINATION__SNOWFLAKE__CREDENTIALS to"
        " snowflake://LOADER:<password>@<account>/SEGMENT?warehouse=COMPUTE_WH&role=LOADER."
    ),
}


def explain(ex: BaseException) -> "tuple[str | None, int]":
    """One paragraph for a failure a user can fix, and the exit code; `(None, 1)` for a bug.

    dlt wraps what a resource raises (PipelineStepFailed -> ResourceExtractionError -> ...), so
    the whole chain is searched.
    """
    from dlt.common.configuration.exceptions import ConfigFieldMissingException, ConfigurationException
    from dlt.common.configuration.providers.toml import TomlProviderReadException

    for cause in causes(ex):
        if isinstance(cause, TomlProviderReadException):
            return (
                f"{str(cause).rstrip('.')}. Fix the file (it is TOML: strings in double quotes, one [section] per"
                " table; see .dlt/example.secrets.toml) and run again. Nothing was requested or loaded.",
                2,
            )
        if isinstance(cause, RunInProgressError):
            return str(cause), cause.exit_code
        if isinstance(cause, ConfigurationError):
            return str(cause), 2
        if isinstance(cause, SegmentSourceError):
            return str(cause), 1
        if isinstance(cause, ConfigFieldMissingException):
            if "api_key" in cause.fields:
                return str(MissingTokenError()), 2
            for destination, hint in DESTINATION_CREDENTIALS_HINTS.items():
                if cause.spec_name.lower().startswith(destination):
                    return hint, 2
            return (
                f"Configuration is missing: {', '.join(cause.fields)} ({cause.spec_name})."
                " See .dlt/example.secrets.toml.",
                2,
            )
        if isinstance(cause, ConfigurationException):
            return f"The configuration is not valid: {str(cause).rstrip('.')}. Nothing was requested or loaded.", 2
        explained = _explain_destination(cause)
        if explained is not None:
            return explained
    return None, 1


DUCKDB_PATH_HINT = (
    "Create the directory, or put the file elsewhere with [destination.duckdb] credentials ="
    ' "/path/to/segment.duckdb" in .dlt/config.toml or DESTINATION__DUCKDB__CREDENTIALS=/path/to/segment.duckdb.'
)
POSTGRES_HINT = "Check [destination.postgres] credentials in .dlt/secrets.toml or DESTINATION__POSTGRES__CREDENTIALS."


def _explain_destination(cause: BaseException) -> "tuple[str, int] | None":
    """DuckDB's and PostgreSQL's own errors when the database cannot be opened, read from their text.

    dlt wraps them in `DestinationConnectionError`, whose text ("check your credentials... the
    internet may be down") misleads for a local file, so the driver's error underneath is used.
    The drivers are matched by module and text: psycopg2 is an optional dependency, and
    DuckDB raises one `IOException` for every kind of file problem.
    """
    module, text = type(cause).__module__, str(cause)
    if module.lstrip("_").startswith("duckdb"):
        path_match = re.search(r'file "([^"]+)"', text)
        path = path_match.group(1) if path_match else "the DuckDB file"
        if "Could not set lock" in text or "Conflicting lock" in text:
            holder = re.search(r"\(PID (\d+)\)", text)
            who = f" (process {holder.group(1)})" if holder else ""
            return (
                f"The DuckDB file {path} is open in another program{who}: a DuckDB file has one writer at a"
                " time. Close the other program's connection (a notebook, the DuckDB CLI, a BI tool, another"
                " run of this pipeline) and run again; nothing was loaded.",
                1,
            )
        if "No such file or directory" in text:
            return f"The directory of the DuckDB file {path} does not exist. {DUCKDB_PATH_HINT} Nothing was loaded.", 2
        if any(why in text for why in ("Permission denied", "Operation not permitted", "Read-only file system")):
            return (
                f"The DuckDB file {path} cannot be written: its directory (or the file) is read-only for this"
                f" user. Make it writable, or choose a writable place. {DUCKDB_PATH_HINT} Nothing was loaded.",
                2,
            )
        return None
    if module.startswith("psycopg2"):
        server = re.search(r'server at "([^"]+)"(?: \([^)]*\))?, port (\d+)', text)
        where = f"{server.group(1)}:{server.group(2)}" if server else "the configured host"
        if "password authentication failed" in text or "no password supplied" in text:
            user = re.search(r'for user "([^"]+)"', text)
            return (
                f"PostgreSQL at {where} refused the password for user {user.group(1) if user else '?'}."
                f" {POSTGRES_HINT} Nothing was loaded.",
                2,
            )
        if "Connection refused" in text or "could not translate host name" in text or "timeout expired" in text:
            return (
                f"PostgreSQL at {where} cannot be reached: no server answers there. Start the server (or check"
                f" the network and the host and port). {POSTGRES_HINT} Nothing was loaded; run again when it is up.",
                1,
            )
        if "does not exist" in text and "database" in text:
            return f"{text.strip().splitlines()[0]} on PostgreSQL at {where}. {POSTGRES_HINT} Nothing was loaded.", 2
    return None


def causes(ex: BaseException) -> "list[BaseException]":
    """`ex` and what it wraps: dlt keeps the cause in `.exception` as well as in `__cause__`."""
    seen: "list[BaseException]" = []
    todo: "list[Any]" = [ex]
    while todo:
        current = todo.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        todo.extend([getattr(current, "exception", None), current.__cause__, current.__context__])
    return seen
