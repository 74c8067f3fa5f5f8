"""Keep secrets out of the warehouse: pure functions, no I/O.

A redacted value becomes `<redacted:1a2b3c4d>`: a marker plus a short keyed fingerprint
(HMAC-SHA256, 8 hex characters) so a history table still shows *that* a secret changed, never
*what* it is. Values Segment already masks (they contain "•") are kept as they are.

What counts as a secret:
- a whole field the endpoint catalogue marks as secret (a source's `writeKeys`);
- inside settings objects, at any depth and inside lists: any value whose name looks secret
  (see `is_secret_name`), any `{"key"|"name": <secret-looking name>, "value": ...}` pair (HTTP
  headers, legacy Config API settings), and the password or secret query parameters of a URL;
- inside source code (functions) and free text (error snippets): string literals assigned to a
  secret-looking name, `Bearer`/`Basic` credentials, URL secrets, and literals that look like
  keys (long, mixed letters and digits, no spaces).
"""

import hashlib
import hmac
import json
import re
from typing import Any, Iterable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK_CHAR = "•"

# Normalised (lower case, letters and digits only) name fragments that mark a secret.
_SECRET_PARTS = (
    "secret",
    "password",
    "passwd",
    "passphrase",
    "token",
    "credential",
    "apikey",
    "accesskey",
    "privatekey",
    "writekey",
    "ciphertext",
    "signingkey",
    "authorization",
    "connectionstring",
    "webhook",
)
# Names ending in "key" are secrets (appKey, restKey, serverKey...), except these.
_NOT_SECRET_KEYS = {"key", "keys", "primarykey", "partitionkey", "sortkey", "distkey", "foreignkey"}
_PAIR_NAME_FIELDS = ("key", "name")


def is_secret_name(name: str) -> bool:
    """True for setting names such as apiKey, secret_id, clientSecret, password, accessKeyId."""
    norm = re.sub(r"[^a-z0-9]", "", name.rsplit("/", 1)[-1].lower())
    if norm in _NOT_SECRET_KEYS:
        return False
    return any(part in norm for part in _SECRET_PARTS) or norm.endswith(("key", "keys"))


def is_masked(value: Any) -> bool:
    """Segment masks some settings itself, e.g. "••••••••••dada"."""
    return isinstance(value, str) and MASK_CHAR in value


def fingerprint(value: Any, key: str) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()[:8]


def mask(value: Any, key: str) -> Any:
    """Replace a secret with its marker; keep what carries no secret (null, "", booleans, masks)."""
    if value is None or value == "" or isinstance(value, bool) or is_masked(value):
        return value
    if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        return [mask(v, key) for v in value]
    return f"<redacted:{fingerprint(value, key)}>"


def redact_settings(value: Any, key: str) -> Any:
    """Return a copy of a settings object with every secret-looking value masked, at any depth."""
    if isinstance(value, Mapping):
        pair_name = next((value[f] for f in _PAIR_NAME_FIELDS if isinstance(value.get(f), str)), None)
        pair_is_secret = "value" in value and pair_name is not None and is_secret_name(pair_name)
        out = {}
        for name, item in value.items():
            if is_secret_name(name) or (pair_is_secret and name == "value"):
                out[name] = mask(item, key)
            else:
                out[name] = redact_settings(item, key)
        return out
    if isinstance(value, list):
        return [redact_settings(v, key) for v in value]
    if isinstance(value, str) and "://" in value:
        return redact_url(value, key)
    return value


def redact_url(url: str, key: str) -> str:
    """Mask the password and the secret-looking query parameters of a URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if parts.password:
        netloc = netloc.replace(f":{parts.password}@", f":{mask(parts.password, key)}@", 1)
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_secret_name(k) for k, _ in pairs):
            query = urlencode([(k, mask(v, key) if is_secret_name(k) else v) for k, v in pairs], safe="<>:")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


_NAME = r"[A-Za-z_$][\w$.-]*"
_ASSIGNED_LITERAL = re.compile(r"""(?P<name>["']?%s["']?\s*[:=]\s*)(?P<q>["'`])(?P<value>[^"'`\n]*)(?P=q)""" % _NAME)
_AUTH_SCHEME = re.compile(r"\b(?P<scheme>Bearer|Basic|Token)\s+(?P<value>[A-Za-z0-9._~+/=-]{8,})")
_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s'\"`<>]+", re.I)
_KEY_LIKE = re.compile(r"(?<![\w<:])[A-Za-z0-9_+/=-]{20,}(?![\w>])")


def _looks_like_key(text: str) -> bool:
    return sum(c.isdigit() for c in text) >= 2 and sum(c.isalpha() for c in text) >= 2


def redact_text(text: str, key: str) -> str:
    """Mask credentials in source code or free text (see the module docstring)."""

    def assigned(m: "re.Match[str]") -> str:
        name = m.group("name").strip(" \t:='\"").rsplit(".", 1)[-1]
        if is_secret_name(name) and m.group("value"):
            return f"{m.group('name')}{m.group('q')}{mask(m.group('value'), key)}{m.group('q')}"
        return m.group(0)

    text = _ASSIGNED_LITERAL.sub(assigned, text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group('scheme')} {mask(m.group('value'), key)}", text)
    text = _URL.sub(lambda m: redact_url(m.group(0), key), text)
    return _KEY_LIKE.sub(lambda m: mask(m.group(0), key) if _looks_like_key(m.group(0)) else m.group(0), text)


def _mask_path(value: Any, path: str, key: str) -> Any:
    """Mask the field at a dotted `path` of an object, copying only what lies on the path."""
    head, _, rest = path.partition(".")
    if not isinstance(value, dict) or head not in value:
        return value
    return dict(value, **{head: _mask_path(value[head], rest, key) if rest else mask(value[head], key)})


def redact_item(
    item: dict, secret_fields: Iterable[str], settings_fields: Iterable[str], key: str, code_fields: Iterable[str] = ()
) -> dict:
    """Mask whole secret fields, the secrets inside settings fields and in code of one API item."""
    out = dict(item)
    for name in secret_fields:
        out = _mask_path(out, name, key)
    for name in settings_fields:
        if name in out:
            out[name] = redact_settings(out[name], key)
    for name in code_fields:
        if isinstance(out.get(name), str):
            out[name] = redact_text(out[name], key)
    return out
