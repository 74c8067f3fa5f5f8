"""Configuration values, checked before any request: regions and base URLs, tokens, dates.

Every check raises `ConfigurationError` with one paragraph that names the setting, where it goes
(`[sources.<section>] <key>` in `.dlt/config.toml` or `.dlt/secrets.toml`) and its environment
variable (`SOURCES__<SECTION>__<KEY>`), so the person at the terminal knows what to change.
"""

import ipaddress
import json
from datetime import datetime, timezone
from typing import Any, FrozenSet, Optional, Sequence, Tuple
from urllib.parse import urlsplit

from segment_source import redaction
from segment_source.endpoints import Endpoint, column_name
from segment_source.errors import ConfigurationError

SECTION = "segment_source"
"""The dlt configuration section of the Public API source."""
BASE_URLS = {"us": "https://api.segmentapis.com", "eu": "https://eu1.api.segmentapis.com"}
DEFAULT_CONCURRENCY = 8
"""Child listings in flight at once per workspace (see README "Speed"): measured, not guessed."""
MAX_CONCURRENCY = 32


def where(section: str, key: str, file: str = "config.toml") -> str:
    """How to set a value: "[sources.<section>] <key> in .dlt/<file> (or SOURCES__<SECTION>__<KEY>)"."""
    return f"[sources.{section}] {key} in .dlt/{file} (or SOURCES__{section.upper()}__{key.upper()})"


def resolve_base_url(region: str, base_url: Optional[str]) -> str:
    """The API root for `region`, or `base_url` when given (https, or http on loopback only)."""
    if base_url:
        otherwise = "e.g. https://api.segmentapis.com, or remove it and set region instead"
        return check_base_url(base_url, where(SECTION, "base_url"), otherwise)
    try:
        return BASE_URLS[str(region).strip().lower()]
    except KeyError:
        raise ConfigurationError(
            f'region {region!r} is not a Segment region. Set {where(SECTION, "region")} to "us" or "eu".'
        ) from None


def check_base_url(base_url: str, setting: str, otherwise: str, secret: str = "the API token") -> str:
    """`base_url` without a trailing slash, if it is https (or http to this machine only).
    Errors say how to set it (`setting`, e.g. `where(SECTION, "base_url")`), what else to do
    (`otherwise`) and which `secret` plain http would expose."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"base_url {base_url!r} is not an http(s) URL. Set {setting} to an https:// URL, {otherwise}."
        )
    try:
        port = parts.port  # raises on a port that is not a number or out of range
    except ValueError:
        port = -1
    if port == -1 or (parts.netloc.endswith(":") and port is None):
        raise ConfigurationError(
            f"base_url {base_url!r} has no valid port after its ':'. Set {setting} to a URL"
            " with a port from 1 to 65535 (e.g. http://127.0.0.1:8765), or without the colon."
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigurationError(
            f"base_url {base_url!r} uses plain http to a host that is not this machine, so"
            f" {secret} would travel in clear text. Use https:// (plain http is accepted"
            " only for 127.0.0.1/localhost, e.g. the simulator)."
        )
    return base_url.rstrip("/")


def is_loopback(host: Optional[str]) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def split_tokens(api_key: Any) -> Tuple[str, ...]:
    """One token, or several: a TOML list, a JSON list, or a comma-separated string."""
    if isinstance(api_key, str) and api_key.strip().startswith("["):
        try:
            api_key = json.loads(api_key)
        except ValueError:
            raise ConfigurationError(
                f"api_key looks like a list but is not valid JSON. Set {where(SECTION, 'api_key', 'secrets.toml')}"
                ' to one token, a TOML list ["tok1", "tok2"], or tok1,tok2 in the environment variable.'
            ) from None
    values = api_key if isinstance(api_key, (list, tuple)) else str(api_key).split(",")
    return tuple(dict.fromkeys(str(v).strip() for v in values if str(v).strip()))


def parse_start_date(value: Optional[str]) -> Optional[datetime]:
    """`start_date` as an aware datetime (UTC unless it says otherwise), or None when unset."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(
            f'start_date {value!r} is not an ISO 8601 date. Set {where(SECTION, "start_date")} to e.g. "2026-01-31".'
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def check_concurrency(value: Any) -> int:
    """`max_concurrency` as a number of requests in flight, 1 to `MAX_CONCURRENCY`."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if not 1 <= number <= MAX_CONCURRENCY:
        raise ConfigurationError(
            f"max_concurrency {value!r} is not a whole number from 1 to {MAX_CONCURRENCY}. Set"
            f" {where(SECTION, 'max_concurrency')} to e.g. {DEFAULT_CONCURRENCY} (1 reads one parent at a time)."
        )
    return number


def keep_paths(keep_settings: Any, endpoints: Sequence[Endpoint], section: str) -> FrozenSet[redaction.Path]:
    """`keep_settings` as paths (table, column, keys...); a path outside every settings column is refused."""
    columns = sorted(f"{e.table}.{column_name(f)}" for e in endpoints for f in e.settings_fields)
    paths = []
    for text in split_tokens(keep_settings or ()):
        path = tuple(text.split("."))
        if ".".join(path[:2]) not in columns or len(path) < 3 or not all(path):
            raise ConfigurationError(
                f"keep_settings names {text!r}, which is not a setting inside a settings column. Each entry is"
                " <table>.<column>.<key>[.<key>...], the keys as they appear in the JSON column, e.g."
                f" destinations.settings.region; the columns are {', '.join(columns)}. Fix"
                f" {where(section, 'keep_settings')}."
            )
        paths.append(path)
    return frozenset(paths)
