"""Canary secrets: plaintext secrets hidden in a workspace under the names and shapes real settings
use, for tests that prove none of them lands anywhere.

`plant_canaries(ws)` edits the workspace through its public edit API (`ws.update`), so each edit
also lands in the audit trail like any other, registers every canary in `ws.secrets` (so
`sim.secret_values()` includes them) and returns them with where and how each one hides.

Each canary is unique (`cnry` and random characters) so a scan finds it in any text. Half of them
are key-like (letters and digits), half look like a weak password (lower-case letters only), so
that a rule recognising keys by their looks cannot be what keeps them out.
"""

import json
import random
import string
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Tuple

from segment_simulator.workspace import SimulatedWorkspace

PREFIX = "cnry"


@dataclass(frozen=True)
class Canary:
    kind: str
    """How it hides: "libpq DSN", "header list [[name, value]]", "short name: pwd"..."""
    where: str
    """The object and setting: "destinations <id> settings.dsn"."""
    value: str


# Settings shapes: (kind, setting name, the value built around a canary `c`).
Shape = Tuple[str, str, Callable[[str], Any]]

SHORT_NAMES = ("pass", "pwd", "passcode", "auth", "bearer", "key", "sig", "refresh", "cookie")
"""Names that leaked under the old name-based rule (issue 9)."""
ADDED_NAMES = ("pin", "otp", "salt", "jwt", "session", "dbPw", "sas", "x")
"""More names no list of secret-looking names would hold."""

SETTINGS_SHAPES: Tuple[Shape, ...] = (
    *((f"short name: {n}", n, lambda c: c) for n in SHORT_NAMES + ADDED_NAMES),
    (
        "JSON string: service account",
        "serviceAccountJson",
        lambda c: json.dumps(
            {
                "type": "service_account",
                "project_id": "acme-analytics",
                "private_key": f"-----BEGIN PRIVATE KEY-----\n{c}\n-----END PRIVATE KEY-----\n",
                "client_email": "segment@acme-analytics.iam.gserviceaccount.com",
            }
        ),
    ),
    ("JSON string: config", "config", lambda c: json.dumps({"host": "db.internal", "password": c})),
    ("JSON string: nested list", "extra", lambda c: json.dumps({"hosts": [{"name": "a", "secret": c}]})),
    (
        "libpq DSN",
        "dsn",
        lambda c: f"host=db.internal port=5432 dbname=app user=loader password={c} sslmode=require",
    ),
    ("libpq DSN, quoted", "conninfo", lambda c: f"host=db.internal password='{c}' dbname=app"),
    (
        "JDBC string ;password=",
        "jdbcUrl",
        lambda c: f"jdbc:sqlserver://db.example.com:1433;databaseName=app;user=loader;password={c};",
    ),
    (
        "JDBC URL ?password=",
        "jdbc",
        lambda c: f"jdbc:postgresql://db.example.com:5432/app?user=loader&password={c}&ssl=true",
    ),
    ("JDBC Oracle user/password@", "oracle", lambda c: f"jdbc:oracle:thin:loader/{c}@//db.example.com:1521/svc"),
    (
        "ODBC string",
        "odbc",
        lambda c: f"Driver={{ODBC Driver 18 for SQL Server}};Server=tcp:db.example.com,1433;Uid=loader;Pwd={{{c}}};",
    ),
    (
        "ADO.NET string",
        "connection",
        lambda c: f"Data Source=db.example.com;Initial Catalog=app;User ID=loader;Password={c};",
    ),
    ("URL user:password@", "databaseUrl", lambda c: f"postgresql://loader:{c}@db.example.com:5432/app"),
    ("URL key as user", "apiUrl", lambda c: f"https://{c}:@api.example.com/v1"),
    ("URL secret query parameter", "callback", lambda c: f"https://hooks.example.com/in?sig={c}&team=data"),
    ("URL odd query parameter", "target", lambda c: f"https://hooks.example.com/in?k={c}"),
    ("URL fragment", "redirect", lambda c: f"https://app.example.com/cb#access_token={c}"),
    ("header line", "authHeader", lambda c: f"Authorization: Bearer {c}"),
    ("header lines", "rawHeaders", lambda c: f"X-Team: data\nCookie: session={c}; theme=dark"),
    ("Bearer credential", "authorization", lambda c: f"Bearer {c}"),
    ("Basic credential", "basic", lambda c: f"Basic {c}"),
    ("header list {key, value}", "headerList", lambda c: [{"key": "X-Api-Key", "value": c}]),
    ("header list {header, value}", "headerObjects", lambda c: [{"header": "Authorization", "value": f"Bearer {c}"}]),
    ("header list {name: X-Auth, value}", "customHeaders", lambda c: [{"name": "X-Auth", "value": c}]),
    ("header list [[name, value]]", "headerPairs", lambda c: [["Authorization", f"Bearer {c}"], ["X-Team", "data"]]),
    ("header object", "extraHeaders", lambda c: {"X-Auth": c, "Accept": "application/json"}),
    ("argument list --password x", "args", lambda c: ["--host", "db.internal", "--password", c]),
    ("argument list --token=x", "argv", lambda c: ["--token=" + c]),
    ("argument list -p x", "cli", lambda c: ["-p", c]),
    ("argument line", "command", lambda c: f"pg_dump --user loader --password {c}"),
    ("free text", "notes", lambda c: f"our api token is {c}"),
    ("free text under a descriptive name", "description", lambda c: f"Rotate monthly. The password is {c}."),
    ("nested lists and objects", "connections", lambda c: [{"extra": [{"auth": c}], "region": "us-east-1"}]),
    ("list of plain secrets", "tokens", lambda c: ["", c]),
    ("Actions @template", "headerTemplate", lambda c: {"@template": f"Bearer {c}"}),
)

CODE_SHAPES: Tuple[Tuple[str, Callable[[str], str]], ...] = (
    ("code: literal under a short name", lambda c: f"const pwd = '{c}'"),
    ("code: object literal", lambda c: f'const auth = {{ pass: "{c}", region: "us-east-1" }}'),
    ("code: header pairs", lambda c: f"const headers = [['Authorization', 'Bearer {c}']]"),
    ("code: comment", lambda c: f"// our api token is {c}"),
    ("code: DSN literal", lambda c: f"const dsn = 'host=db.internal password={c}'"),
    ("code: argument list", lambda c: f"spawn('pg_dump', ['--password', '{c}'])"),
    ("code: JDBC literal", lambda c: f"const conn = 'jdbc:sqlserver://db:1433;user=loader;password={c};'"),
    ("code: URL with password", lambda c: f"const hook = `https://loader:{c}@hooks.example.com/in`"),
    ("code: JSON literal", lambda c: f'const config = JSON.parse(\'{{"password": "{c}"}}\')'),
    ("code: bare argument", lambda c: f"sign(event, '{c}')"),
)


class _Planter:
    def __init__(self, ws: SimulatedWorkspace) -> None:
        self.ws = ws
        self.rng = random.Random(f"canaries:{ws.id}")
        self.planted: List[Canary] = []

    def canary(self, kind: str, where: str) -> str:
        if len(self.planted) % 2:
            tail = "".join(self.rng.choice(string.ascii_lowercase) for _ in range(14))  # a weak password's looks
        else:
            tail = "".join(self.rng.choice(string.ascii_letters + string.digits) for _ in range(28))
        value = PREFIX + tail
        self.ws.secrets.add(value)
        self.planted.append(Canary(kind, where, value))
        return value

    def settings(self, kind: str, item_id: str, field: str = "settings") -> Dict[str, Any]:
        planted = {}
        for shape, name, build in SETTINGS_SHAPES:
            planted[name] = build(self.canary(shape, f"{kind} {item_id} {field}.{name}"))
        return planted


def plant_canaries(ws: SimulatedWorkspace) -> List[Canary]:
    """Hide canaries in the first source, destination, warehouse, subscription, transformation
    and function of `ws` (which must have one of each); return them."""
    planter = _Planter(ws)
    for kind in ("sources", "destinations", "warehouses", "subscriptions"):
        item = ws.listing(kind)[0]
        ws.update(kind, item["id"], settings=dict(item.get("settings") or {}, **planter.settings(kind, item["id"])))

    transformation = ws.listing("transformations")[0]["id"]
    where = f"transformations {transformation}"
    ws.update(
        "transformations",
        transformation,
        hashPropertiesConfiguration={
            "algorithm": "SHA256",
            "key": planter.canary("hashing key", f"{where} hashPropertiesConfiguration.key"),
            "encoding": "HEX",
            "paths": ["traits.email"],
        },
        propertyValueTransformations=[
            {
                "propertyPaths": ["context.auth"],
                "propertyValue": planter.canary("property value", f"{where} propertyValueTransformations"),
            }
        ],
        fqlDefinedProperties=[
            {
                "fql": f"properties.token = '{planter.canary('FQL literal', f'{where} fqlDefinedProperties')}'",
                "propertyName": "properties.has_token",
            }
        ],
    )

    function = ws.listing("functions")[0]
    where = f"functions {function['id']}"
    lines = [build(planter.canary(kind, f"{where} code")) for kind, build in CODE_SHAPES]
    old_token = planter.canary("function setting text", f"{where} settings")
    settings = list(function["settings"]) + [
        {
            "name": "legacyToken",
            "label": "Legacy token",
            "description": f"Leave empty; the old token was {old_token}",
            "type": "STRING",
            "required": False,
            "sensitive": True,
        },
        {
            "name": "headers",
            "label": "Headers",
            "description": "Sent with every call",
            "type": "TEXT_MAP",
            "required": False,
            "sensitive": False,
            "value": planter.canary("function setting value", f"{where} settings"),
        },
    ]
    ws.update("functions", function["id"], code=function["code"] + "\n" + "\n".join(lines) + "\n", settings=settings)
    return planter.planted
