"""Errors a user can act on. Each message is one paragraph: what happened, and what to do.

No message ever holds the API token: errors are built from the endpoint, the status and
Segment's own error text, never from request headers.
"""

from typing import Optional

import requests

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


class WorkspaceFailures(SegmentSourceError):
    """Some workspaces failed; the others were loaded."""

    def __init__(self, failed: "dict[str, str]") -> None:
        lines = "\n".join(f"  - {workspace}: {why}" for workspace, why in failed.items())
        super().__init__(
            f"{len(failed)} workspace(s) could not be loaded; every other workspace was loaded,"
            f" and what was loaded before for these stays as it was:\n{lines}"
        )


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


class TableFailures(SegmentSourceError):
    """Some tables failed; every other table was loaded."""

    def __init__(self, failed: "list[str]") -> None:
        lines = "\n".join(f"  - {line}" for line in failed)
        super().__init__(
            f"{len(failed)} table(s) could not be loaded; every other table was loaded, and these keep"
            f" what they had. Rerun later; if one keeps failing, the reason below says what to fix:\n{lines}"
        )


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

    for cause in _chain(ex):
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
    return None, 1


def _chain(ex: BaseException) -> "list[BaseException]":
    seen: "list[BaseException]" = []
    todo: "list[BaseException | None]" = [ex]
    while todo:
        current = todo.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        todo.extend([getattr(current, "exception", None), current.__cause__, current.__context__])
    return seen
