"""Keep secrets out of the warehouse: pure functions, no I/O.

A masked value becomes `<redacted:1a2b3c4d>`: a marker plus a short keyed fingerprint
(HMAC-SHA256, 8 hex characters), so a history table still shows *that* a secret changed, never
*what* it is. The default key is derived from the API token (`token_key`), never from anything
the warehouse holds: nobody with warehouse access alone can test guesses against a fingerprint.

**The rule: deny by default.** Settings are written by hundreds of integrations, each naming its
fields as it likes, so a name cannot say what is secret. In every settings-like object (the
`settings_fields` and `code_fields` of the surface table) a string is masked unless it is known
to be safe. Tried in this order (the rule names are what `benchmarks/masking_cost` counts):

1. Values that cannot hold a secret: booleans, numbers and null (`boolean`, `number`, `null`),
   the empty string (`empty`), values Segment itself masks, which contain "•" (`segment-mask`),
   our own markers (`redacted`), and a value that is one template placeholder, `${settings.key}`
   or `{{properties.email}}`: a reference to a value, not a value (`reference`).
2. A path the user listed in `keep_settings` (`keep-settings`): their decision, per path.
3. Free text under a descriptive name (`TEXT_NAMES`: name, label, description, FQL...) is kept
   with the secrets inside it masked (`text`, see `Redactor.text`).
4. A string with structure is opened and each part judged by these same rules, under the name
   the structure gives it, keeping the structure (`structure:<kind>`): JSON, URLs (user and
   password, query values, fragment, key-like path segments), JDBC/ODBC/ADO.NET connection
   strings, libpq DSNs, Oracle `user/password@`, header lines (`Authorization: Bearer ...`),
   `Bearer ...` credentials, command lines. Lists of headers (`{key|name|header, value}`,
   `[["Authorization", "Bearer ..."]]`) and argument lists (`["--password", "x"]`) likewise.
5. A value under a name of `SAFE_NAMES` whose value has that class's shape (`name:<class>`).
   Each class says why its values are not secrets; the shape keeps a secret in an odd form
   (`host: "user:pw@db"`) from riding on a safe name.
6. Anything else is masked (`deny`).

Why names, and so few: an integration option's catalog `type` is `string` for secrets and for
non-secrets alike (`apiKey`, `password`, `ciphertext`, `region`, `hostname`, `trackingId` in the
catalog examples of shared/segment-api), so types cannot decide. Actions fields have a
`PASSWORD` type and function settings a `sensitive` flag, but the values we read carry neither.

Outside settings: whole fields the surface table marks as secret (`writeKeys`) are masked
element by element, and function code keeps its text with each string literal judged like a
settings value (`Redactor.code`).
"""

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any, Callable, Counter, Dict, FrozenSet, List, Mapping, Optional, Pattern, Tuple
from urllib.parse import unquote, urlsplit

from segment_source.endpoints import Endpoint, column_name

MASK_CHAR = "•"
TOKEN_KEY_LABEL = b"segment-source fingerprint key v1"

Path = Tuple[str, ...]
"""Where a value sits: table, column, then the keys down to it (list positions left out)."""
Tally = Counter[Tuple[str, str]]
"""(outcome, rule) -> how many leaf values: outcome is "kept", "masked" or "partly masked"."""


@dataclass(frozen=True)
class SafeNames:
    """Setting names whose values are not secrets, when the value has `shape`."""

    rule: str
    names: FrozenSet[str]
    """Normalised: lower case, letters, digits and `@` only (`apiHost` -> `apihost`)."""
    shape: Pattern[str]
    why: str


SAFE_NAMES = (
    SafeNames(
        "place",
        frozenset(
            "region regions location datacenter datacentre zone endpoint host hostname server datasource port"
            " database databasename dbname initialcatalog catalog schema schemaname warehouse account accountname"
            " project dataset bucket bucketname prefix folder stream streamname topic queue table tablename cluster"
            " channel channels driver domain subdomain apihost instanceurl url baseurl hook website".split()
        ),
        re.compile(r"[\w.,:/{}()\[\]#+ -]{1,255}"),
        "Where data goes or comes from: regions, hosts, databases, buckets, streams, channels. Queried to"
        " audit where data flows; a place is reachable, not secret. No '@', '=', ';', '?', '&' or quotes.",
    ),
    SafeNames(
        "identity",
        frozenset(
            "username user userid uid login email clientemail serviceaccount accountid projectid appid applicationid"
            " portalid measurementid trackingid pixelid propertyid containerid advertiserid customerid organizationid"
            " orgid siteid listid sourceid destinationid modelid spaceid workspaceid audienceid roleaddress rolearn"
            " arn".split()
        ),
        re.compile(r"[\w.+@:/-]{1,255}"),
        "Who or which account: user names, e-mails, account and property ids, role ARNs. They name an"
        " account and grant nothing without the credential beside them (which is masked). One token.",
    ),
    SafeNames(
        "enum",
        frozenset(
            "type method algorithm encoding strategy mode format compression timezone version apiversion environment"
            " level loglevel sslmode ssl encrypt trustservercertificate protocol contenttype accept currency language"
            " locale connectionmode status".split()
        ),
        re.compile(r"[\w.:/+ -]{1,64}"),
        "Values from a closed list the integration or the API defines (an option's choices, the API"
        " models' enums: HashPropertiesConfiguration.encoding, FunctionSettingV1.type...). Short.",
    ),
    SafeNames(
        "mapping",
        frozenset(
            "@path @arraypath event events eventname eventtype newname oldname propertyname propertypaths paths"
            " allowproperties properties traits fieldkey".split()
        ),
        re.compile(r"[\w$.\[\]*@:/ -]{1,255}"),
        "Event, property and trait names and paths into an event ($.properties.total): what the"
        " mappings and transformations act on, named by the user's tracking plan.",
    ),
)
TEXT_NAMES = frozenset("name displayname label title description @template fql".split())
"""Free text that describes (names, labels, FQL conditions): kept, with the secrets inside masked."""

_SAFE_BY_NAME: Dict[str, SafeNames] = {name: safe for safe in SAFE_NAMES for name in safe.names}

# ---- shapes --------------------------------------------------------------------------------

_REDACTED = re.compile(r"<redacted:[0-9a-f]{8}>")
_REFERENCE = re.compile(r"\$\{[^{}\s]+\}|\{\{[^{}]+\}\}")
_NAME_SHAPE = re.compile(r"[A-Za-z][\w .:/-]{0,63}")
"""The name half of a pair (a header name, a setting name)."""
_URL = re.compile(r"(?i)(?:jdbc:)?[a-z][a-z0-9+.-]*://\S*")
_URL_IN_TEXT = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s'\"`<>]+")
_ORACLE = re.compile(r"(?i)(?P<head>jdbc:oracle:\w+:)(?P<user>[^/@\s]+)/(?P<password>[^@\s]+)@(?P<rest>\S+)")
_CONN_SEGMENT = re.compile(r"(?:\{[^}]*\}?|[^;{])+")
_CONN_KEY = re.compile(r"\s*[A-Za-z][\w .-]{0,63}")
_DSN_PAIR = re.compile(r"(?P<k>[A-Za-z_][\w.-]*)\s*=\s*(?P<v>'(?:[^'\\]|\\.)*'|[^\s']*)")
_DSN = re.compile(r"\s*{p}(?:\s+{p})+\s*".format(p=_DSN_PAIR.pattern.replace("?P<k>", "").replace("?P<v>", "")))
_AUTH_SCHEMES = r"Bearer|Basic|Token|Bot|Digest|Negotiate|ApiKey|Api-Key|SSWS|OAuth|Splunk|GenieKey"
_AUTH = re.compile(r"(?i)(?P<scheme>%s)(?P<sp>\s+)(?P<cred>.*)" % _AUTH_SCHEMES, re.S)
_AUTH_IN_TEXT = re.compile(r"\b(?P<scheme>%s)(?P<sp>\s+)(?P<cred>[A-Za-z0-9._~+/=:-]{3,})" % _AUTH_SCHEMES)
_HEADER_LINE = re.compile(r"(?P<head>(?P<name>[A-Za-z][A-Za-z0-9-]{0,63}):[ \t]+)(?P<value>\S.*)")
_FLAG = re.compile(r"(?P<flag>--?(?P<name>[A-Za-z][\w.-]*))(?:=(?P<value>.*))?", re.S)
_ASSIGNED = re.compile(
    r"""(?P<head>(?P<name>[A-Za-z_$][\w$.-]*)["']?\s*[:=]\s*)(?P<q>["'`])(?P<value>[^"'`\n]*)(?P=q)"""
)
_SECRET_PHRASE = re.compile(
    r"(?i)(?P<head>\b(?:password|passwd|passphrase|passcode|pass|pwd|pin|secret|token|api[ _-]?key|key|auth"
    r"|bearer|sig|signature|cookie|session|credentials?)\b(?:\s+(?:is|was|are)\s+|\s*[:=]\s*)[\"'`]?)"
    r"(?P<value>[^\s\"'`,;<>]*[^\s\"'`,;<>.!?)])"
)
_KEY_LIKE = re.compile(r"(?<![\w<:])[A-Za-z0-9_+/=-]{20,}(?![\w>])")
_CODE_TOKEN = re.compile(r"//[^\n]*|/\*.*?\*/|(?P<q>['\"`])(?P<body>(?:\\.|(?!(?P=q))[^\\])*)(?P=q)", re.S)
_CODE_NAME_BEFORE = re.compile(r"""(?P<quote>['"]?)(?P<name>[A-Za-z_$][\w$-]*)(?P=quote)\s*[:=]\s*$""")
_CODE_KEY_BEFORE = re.compile(r"[{,]\s*$")
_CODE_KEY_AFTER = re.compile(r"\s*:")


def normalise(name: str) -> str:
    """`api_key`, `apiKey`, `API-Key` -> `apikey`; a Config API name `.../config/apiKey` too."""
    return re.sub(r"[^a-z0-9@]", "", name.rsplit("/", 1)[-1].lower())


def _looks_like_key(text: str) -> bool:
    return sum(c.isdigit() for c in text) >= 2 and sum(c.isalpha() for c in text) >= 2


def _looks_like_key_segment(segment: str) -> bool:
    """A URL path segment that may be a credential (Slack's /services/T0/B0/<secret>)."""
    return len(segment) >= 16 and (_looks_like_key(segment) or (len(segment) >= 20 and segment.isalnum()))


def _trivial(value: str) -> Optional[str]:
    """The rule that keeps a string that cannot hold a secret, if one does."""
    if not value.strip():
        return "empty"
    if MASK_CHAR in value:
        return "segment-mask"
    if _REDACTED.fullmatch(value):
        return "redacted"
    if _REFERENCE.fullmatch(value.strip()):
        return "reference"
    return None


# ---- fingerprints ----------------------------------------------------------------------------


def token_key(token: str) -> str:
    """The default fingerprint key: HMAC-SHA256 of a fixed label, keyed with the API token. The
    same token gives the same key on every machine; nothing in the warehouse gives it."""
    return hmac.new(token.encode(), TOKEN_KEY_LABEL, hashlib.sha256).hexdigest()


def fingerprint(value: Any, key: str) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()[:8]


def is_masked(value: Any) -> bool:
    """Segment masks some settings itself, e.g. "••••••••••dada"."""
    return isinstance(value, str) and MASK_CHAR in value


def mask(value: Any, key: str) -> Any:
    """A whole secret field's marker; keeps what carries no secret (null, "", booleans, masks)."""
    if value is None or value == "" or isinstance(value, bool) or is_masked(value):
        return value
    if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        return [mask(v, key) for v in value]
    return f"<redacted:{fingerprint(value, key)}>"


# ---- the rule --------------------------------------------------------------------------------


class Redactor:
    """Applies the rule (module docstring) to the settings-like values of one object.

    `keep`: the `keep_settings` paths; `tally`: counts each leaf value's outcome and rule.
    """

    def __init__(self, key: str, keep: FrozenSet[Path] = frozenset(), tally: Optional[Tally] = None) -> None:
        self._key = key
        self._keep = keep
        self._tally = tally
        self._depth = 0
        """> 0 while judging the parts of a structured string: they are not leaves of their own."""

    def _count(self, outcome: str, rule: str) -> None:
        if self._tally is not None and self._depth == 0:
            self._tally[(outcome, rule)] += 1

    def _deny(self, value: str) -> str:
        return f"<redacted:{fingerprint(value, self._key)}>"

    # ---- objects and lists --------------------------------------------------------------------

    def value(self, value: Any, name: Optional[str], path: Path) -> Any:
        """`value` with every secret in it masked; `name` is the key it sits under."""
        if path in self._keep:
            self._count("kept", "keep-settings")
            return value
        if isinstance(value, Mapping):
            return self._object(value, path)
        if isinstance(value, list):
            return self._list(value, name, path)
        if isinstance(value, str):
            return self.string(value, name, path)
        self._count("kept", "null" if value is None else "boolean" if isinstance(value, bool) else "number")
        return value

    def _object(self, obj: Mapping[str, Any], path: Path) -> Dict[str, Any]:
        pair = _pair_name_field(obj)
        out = {}
        for key, item in obj.items():
            if pair is not None and key == pair:
                out[key] = self._pair_name(item)
            elif pair is not None and key == "value":
                out[key] = self.value(item, obj[pair], path + (key,))  # judged under the header's name
            else:
                out[key] = self.value(item, key, path + (key,))
        return out

    def _pair_name(self, name: str) -> str:
        if _NAME_SHAPE.fullmatch(name) and not _looks_like_key(name):
            self._count("kept", "structure:pair-name")
            return name
        self._count("masked", "deny")
        return self._deny(name)

    def _list(self, values: List[Any], name: Optional[str], path: Path) -> List[Any]:
        if values and all(isinstance(v, str) for v in values) and any(_FLAG.fullmatch(v) for v in values):
            return self._arguments(values, name, path)
        if values and all(
            isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and _NAME_SHAPE.fullmatch(v[0])
            for v in values
        ):  # [["Authorization", "Bearer ..."], ...]
            return [[self._pair_name(n), self.value(v, n, path + (n,))] for n, v in values]
        return [self.value(v, name, path) for v in values]

    def _arguments(self, tokens: List[str], name: Optional[str], path: Path) -> List[str]:
        """`["--user", "x", "--password=y", "-p", "z"]`: flags kept, each value judged under its flag."""
        out, flag = [], None
        for token in tokens:
            m = _FLAG.fullmatch(token)
            if m and m["value"] is not None:
                out.append(f"{m['flag']}={self.string(m['value'], m['name'], path + (m['name'],))}")
                flag = None
            elif m:
                self._count("kept", "structure:argument-flag")
                out.append(token)
                flag = m["name"]
            else:
                out.append(self.string(token, flag or name, path + ((flag,) if flag else ())))
                flag = None
        return out

    # ---- strings ------------------------------------------------------------------------------

    def string(self, value: str, name: Optional[str], path: Path, prose: bool = False) -> str:
        """Judge one string under `name`. `prose`: free text when nothing else applies (code literals)."""
        if path in self._keep:
            self._count("kept", "keep-settings")
            return value
        trivial = _trivial(value)
        if trivial:
            self._count("kept", trivial)
            return value
        norm = normalise(name) if name else ""
        if norm in TEXT_NAMES:
            return self._opened("text", value, lambda: self.text(value, path))
        for kind, opener in self._openers:
            opened = self._try(kind, opener, value, name, path)
            if opened is not None:
                return opened
        safe = _SAFE_BY_NAME.get(norm)
        if safe is not None and safe.shape.fullmatch(value):
            self._count("kept", f"name:{safe.rule}")
            return value
        if prose and re.search(r"\s", value):
            return self._opened("text", value, lambda: self.text(value, path))
        self._count("masked", "deny")
        return self._deny(value)

    def _part(self, raw: str, name: Optional[str], path: Path) -> str:
        """A part of a structured string: `raw` if it is kept, its marker if not."""
        judged = self.string(unquote(raw), name, path + ((name,) if name else ()))
        return raw if judged == unquote(raw) else judged

    def _opened(self, kind: str, value: str, open_: Callable[[], str]) -> str:
        self._depth += 1
        try:
            out = open_()
        finally:
            self._depth -= 1
        self._count("kept" if out == value else "partly masked", kind)
        return out

    def _try(
        self, kind: str, opener: Callable[["Redactor", str, Optional[str], Path], Optional[str]], *args: Any
    ) -> Optional[str]:
        self._depth += 1
        try:
            out = opener(self, *args)
        finally:
            self._depth -= 1
        if out is not None:
            self._count("kept" if out == args[0] else "partly masked", f"structure:{kind}")
        return out

    def _json(self, value: str, name: Optional[str], path: Path) -> Optional[str]:
        if value.strip()[:1] not in ("{", "["):
            return None
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        if not isinstance(parsed, (dict, list)):
            return None
        out = self.value(parsed, name, path)
        return value if out == parsed else json.dumps(out, ensure_ascii=False)

    def _url(self, value: str, name: Optional[str], path: Path) -> Optional[str]:
        return self.url(value, path) if _URL.fullmatch(value.strip()) else None

    def url(self, url: str, path: Path) -> str:
        """Keep scheme, host, port and path; judge the user (kept only beside a password), the
        password, each query value under its parameter's name, the fragment and key-like path segments."""
        prefix, rest = (url[:5], url[5:]) if url.lower().startswith("jdbc:") else ("", url)
        try:
            parts = urlsplit(rest)
        except ValueError:
            return self._deny(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            user, colon, password = userinfo.partition(":")
            if password:  # user:password@
                userinfo = f"{self._part(user, 'user', path)}:{self._part(password, 'password', path)}"
            else:  # a key sent as the user name (https://<key>@host, https://<key>:@host)
                userinfo = self._part(user, None, path) + colon
            netloc = f"{userinfo}@{host}"
        segments = parts.path.split("/")
        url_path = "/".join(self._deny(s) if _looks_like_key_segment(unquote(s)) else s for s in segments)
        query = self._query(parts.query, path)
        fragment = (
            self._query(parts.fragment, path) if "=" in parts.fragment else self._part(parts.fragment, None, path)
        )
        out = f"{parts.scheme}://{netloc}{url_path}" if parts.scheme else netloc + url_path
        return prefix + out + (f"?{query}" if parts.query else "") + (f"#{fragment}" if parts.fragment else "")

    def _query(self, query: str, path: Path) -> str:
        pairs = []
        for pair in query.split("&"):
            name, eq, value = pair.partition("=")
            pairs.append(f"{name}={self._part(value, unquote(name), path)}" if eq else self._part(name, None, path))
        return "&".join(pairs)

    def _oracle(self, value: str, name: Optional[str], path: Path) -> Optional[str]:
        m = _ORACLE.fullmatch(value.strip())
        if m is None:
            return None
        user, password = self._part(m["user"], "user", path), self._part(m["password"], "password", path)
        return f"{m['head']}{user}/{password}@{m['rest']}"

    def _connection_string(self, value: str, name: Optional[str], path: Path) -> Optional[str]:
        """`Server=...;Uid=...;Pwd={...};` (ODBC, ADO.NET) and `jdbc:sqlserver://host;user=...;password=...`."""
        segments = _CONN_SEGMENT.findall(value)
        pairs = [s for s in segments if "=" in s and _CONN_KEY.fullmatch(s.partition("=")[0])]
        if ";" not in value or not (len(pairs) >= 2 or value.lower().startswith(("jdbc:", "odbc:"))):
            return None

        def segment(m: "re.Match[str]") -> str:
            text = m.group(0)
            key, eq, raw = text.partition("=")
            if eq and _CONN_KEY.fullmatch(key):
                inner = raw.strip()
                braced = inner.startswith("{") and inner.endswith("}")
                judged = self._part(inner[1:-1] if braced else inner, key.strip(), path)
                return f"{key}={{{judged}}}" if braced else f"{key}={judged}"
            if "://" in text:
                return self.url(text.strip(), path)
            return self._part(text, None, path)

        return _CONN_SEGMENT.sub(segment, value)

    def _dsn(self, value: str, name: Optional[str], path: Path) -> Optional[str]:
        """libpq `host=db port=5432 password='...'`."""
        if not _DSN.fullmatch(value):
            return None

        def pair(m: "re.Match[str]") -> str:
            raw = m["v"]
            quoted = raw.startswith("'") and raw.endswith("'") and len(raw) >= 2
            judged = self._part(raw[1:-1] if quoted else raw, m["k"], path)
            return f"{m['k']}={raw}" if judged == (raw[1:-1] if quoted else raw) else f"{m['k']}={judged}"

        return _DSN_PAIR.sub(pair, value)

    def _auth(self, value: str, name: Optional[str], path: Path) -> Optional[str]:
        """`Bearer <credential>`: the scheme stays."""
        if re.fullmatch(_AUTH_SCHEMES, value.strip(), re.I):
            return value  # the scheme alone, before a credential added in code: 'Bearer ' + TOKEN
        m = _AUTH.fullmatch(value.strip())
        if m is None:
            return None
        return m["scheme"] + m["sp"] + (self._part(m["cred"], None, path) if m["cred"] else "")

    def _header_lines(self, value: str, name: Optional[str], path: Path) -> Optional[str]:
        """`Authorization: Bearer ...`, one header a line: each value judged under its header's name."""
        lines = value.splitlines()
        matches = [_HEADER_LINE.fullmatch(line) for line in lines if line.strip()]
        if not matches or not all(matches):
            return None
        out = []
        for line in lines:
            m = _HEADER_LINE.fullmatch(line)
            out.append(m["head"] + self._part(m["value"], m["name"], path) if m else line)
        return "\n".join(out)

    def _argument_line(self, value: str, name: Optional[str], path: Path) -> Optional[str]:
        """`pg_dump --user x --password y`: a command line, one line, with at least one flag."""
        tokens = value.split()
        if len(tokens) < 2 or "\n" in value or not any(_FLAG.fullmatch(t) for t in tokens):
            return None
        return " ".join(self._arguments(tokens, name, path))

    _openers: Tuple[Tuple[str, Callable[["Redactor", str, Optional[str], Path], Optional[str]]], ...] = (
        ("json", _json),
        ("oracle", _oracle),
        ("connection-string", _connection_string),  # before URLs: jdbc:sqlserver://host;password=...
        ("url", _url),
        ("dsn", _dsn),
        ("auth-scheme", _auth),
        ("header-line", _header_lines),
        ("arguments", _argument_line),
    )

    # ---- free text and code -----------------------------------------------------------------

    def text(self, text: str, path: Path) -> str:
        """Free text with credentials masked: literals assigned to a name (judged under it), URLs,
        `Bearer ...`, a value after a secret noun ("the token is ...", "pwd: ..."), key-like words."""
        text = _ASSIGNED.sub(
            lambda m: m["head"] + m["q"] + self._part(m["value"], m["name"].rsplit(".", 1)[-1], path) + m["q"], text
        )
        text = _URL_IN_TEXT.sub(lambda m: self.url(m.group(0), path), text)
        text = _SECRET_PHRASE.sub(lambda m: m["head"] + self._part(m["value"], None, path), text)
        text = _AUTH_IN_TEXT.sub(lambda m: m["scheme"] + m["sp"] + self._part(m["cred"], None, path), text)
        return self._key_like(text)

    def _key_like(self, text: str) -> str:
        return _KEY_LIKE.sub(lambda m: self._deny(m.group(0)) if _looks_like_key(m.group(0)) else m.group(0), text)

    def code(self, code: str, path: Path) -> str:
        """Source code: every string literal is judged like a settings value, under the name it is
        assigned to (`const API_KEY = '...'`, `method: 'POST'`); an object key (`'X-Api-Key':`) is
        a name and stays; an unassigned literal is free text if it has spaces and masked if not.
        Comments are free text."""
        out, last = [], 0
        for m in _CODE_TOKEN.finditer(code):
            out.append(self._key_like(code[last : m.start()]))
            last = m.end()
            if m["q"] is None:
                out.append(self.text(m.group(0), path))
                continue
            before = code[max(0, m.start() - 120) : m.start()]
            if _CODE_KEY_BEFORE.search(before) and _CODE_KEY_AFTER.match(code, m.end()):
                self._count("kept", "code:object-key")
                out.append(m.group(0))
                continue
            assigned = _CODE_NAME_BEFORE.search(before)
            name = assigned["name"] if assigned else None
            body = self.string(m["body"], name, path + ((name,) if name else ()), prose=name is None)
            out.append(m["q"] + body + m["q"])
        out.append(self._key_like(code[last:]))
        return "".join(out)


def _pair_name_field(obj: Mapping[str, Any]) -> Optional[str]:
    """The field naming a `{key|name|header: <name>, value: ...}` pair (an HTTP header, a setting)."""
    if "value" not in obj or len(obj) > 4:
        return None
    return next((f for f in ("key", "name", "header") if isinstance(obj.get(f), str)), None)


# ---- one API item --------------------------------------------------------------------------


def _mask_path(value: Any, path: str, key: str) -> Any:
    """Mask the field at a dotted `path` of an object, copying only what lies on the path."""
    head, _, rest = path.partition(".")
    if not isinstance(value, dict) or head not in value:
        return value
    return dict(value, **{head: _mask_path(value[head], rest, key) if rest else mask(value[head], key)})


def redact_item(
    item: Dict[str, Any],
    endpoint: Endpoint,
    key: str,
    keep: FrozenSet[Path] = frozenset(),
    tally: Optional[Tally] = None,
) -> Dict[str, Any]:
    """One API item with its secret fields masked and its settings-like fields and code redacted."""
    redactor = Redactor(key, keep, tally)
    out = dict(item)
    for name in endpoint.secret_fields:
        out = _mask_path(out, name, key)
    for name in endpoint.settings_fields:
        if name in out:
            out[name] = redactor.value(out[name], name, (endpoint.table, column_name(name)))
    for name in endpoint.code_fields:
        if isinstance(out.get(name), str):
            out[name] = redactor.code(out[name], (endpoint.table, column_name(name)))
    return out


_SNIPPET_KEY = secrets.token_hex(16)
"""Error snippets need no stable fingerprint: a key of this process only, so none can be tested."""


def redact_text(text: str, key: Optional[str] = None) -> str:
    """Free text (an error snippet) with credentials masked."""
    return Redactor(key or _SNIPPET_KEY).text(text, ())
