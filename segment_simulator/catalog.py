"""Catalog entries the simulated workspace draws from: a bottom layer of the simulator, like `wire.py`.

Each entry carries the shape Segment embeds in list responses (`metadata` on sources,
destinations and warehouses) and a settings template. Settings templates mark the values that
are secrets; the generator fills them with fresh random strings and records each one, so tests
can prove that none reaches a loaded table. Names and setting keys follow real integrations.

The metadata objects are built once (`SOURCE_METADATA`, ...): items embed these very objects, and
`GET /catalog/...` serves them. Also here: the actions of Actions destinations, the roles Segment
offers, and the function templates (code that embeds secrets the way people write them).
"""

import hashlib
import string
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple


@dataclass(frozen=True)
class Secret:
    """A fresh plaintext secret, served inside `text` at `{}` (e.g. `Secret("Bearer {}")`)."""

    text: str = "{}"


# A setting value in a template:
#   SECRET        a fresh plaintext secret, served as is (Secret("...{}...") to serve it inside a text)
#   MASKED        a secret Segment itself masks in responses ("••••••••••" + last 4 chars)
#   anything else served verbatim
SECRET = Secret()
MASKED = object()

SettingsTemplate = Dict[str, Any]

SOURCE_CATALOG: List[Tuple[str, str, str, List[str], SettingsTemplate]] = [
    # (catalog id, name, slug, categories, settings template)
    ("IqDTy1TpoU", "Javascript", "javascript", ["Website"], {}),
    ("UBrsG9RVzw", "iOS", "ios", ["Mobile"], {}),
    ("V6ynUvQgbc", "Android", "android", ["Mobile"], {}),
    ("xqegKCQA0W", "HTTP API", "http-api", ["Server"], {}),
    ("yM9y4hgbxh", "Node.js", "nodejs", ["Server"], {}),
    ("XRksQPCr7X", "Python", "python", ["Server"], {}),
    (
        "RMkDqqaPd9",
        "Stripe",
        "stripe",
        ["Payments"],
        {"apiKey": SECRET, "syncHistory": True},
    ),
    (
        "YHz7EwzNxB",
        "Salesforce",
        "salesforce",
        ["CRM"],
        {"instanceUrl": "https://example.my.salesforce.com", "refreshToken": SECRET},
    ),
]

DESTINATION_CATALOG: List[Tuple[str, str, str, List[str], SettingsTemplate]] = [
    (
        "54521fd525e721e32a72ee8f",
        "Amplitude",
        "amplitude",
        ["Analytics"],
        {"apiKey": SECRET, "secretKey": SECRET, "trackAllPages": False, "useLogRevenueV2": True},
    ),
    (
        "54521fd925e721e32a72eee1",
        "Mixpanel",
        "mixpanel",
        ["Analytics"],
        {"token": SECRET, "apiSecret": SECRET, "people": True, "setAllTraitsByDefault": True},
    ),
    (
        "57da359580412f644ff33fb9",
        "Amazon Kinesis",
        "amazon-kinesis",
        ["Analytics", "Raw Data"],
        {
            "region": "us-west-2",
            "roleAddress": "arn:aws:iam::874699288871:role/segment-kinesis",
            "secretId": SECRET,
            "stream": "segment-events",
        },
    ),
    (
        "54521fd525e721e32a72ee91",
        "Webhooks",
        "webhooks",
        ["Raw Data"],
        {
            "hooks": [
                {
                    "hook": "https://hooks.example.com/segment",
                    "headers": [
                        {"key": "Authorization", "value": SECRET},
                        {"key": "X-Team", "value": "data"},
                    ],
                }
            ],
            "sharedSecret": SECRET,
        },
    ),
    (
        "5d2d8f56f159f30001b3c3a9",
        "Braze",
        "braze",
        ["Email Marketing"],
        {"apiKey": MASKED, "appId": "b3a3f0d2-9f5e-4a36-8d3b-7c0b1d1c9f10", "datacenter": "us-03"},
    ),
    (
        "54521fd725e721e32a72eec6",
        "HubSpot",
        "hubspot",
        ["CRM"],
        {"apiKey": MASKED, "portalId": "4213312"},
    ),
    (
        "5b90c2a5e4c33f000128c3e0",
        "Amazon S3",
        "amazon-s3",
        ["Raw Data"],
        {
            "bucket": "acme-segment-archive",
            "region": "us-east-1",
            "credentials": {"accessKeyId": SECRET, "secretAccessKey": SECRET},
        },
    ),
    (
        "54521fd625e721e32a72eea8",
        "Google Analytics 4 Cloud",
        "actions-google-analytics-4",
        ["Analytics"],
        {"measurementId": "G-4DX8QB1XJ7", "apiSecret": SECRET},
    ),
    (
        "54521fda25e721e32a72eee8",
        "Slack",
        "slack",
        ["Raw Data"],
        {"webhook": SECRET, "channels": ["#data-alerts"]},
    ),
    (
        "54521fd525e721e32a72ee99",
        "Salesforce",
        "salesforce",
        ["CRM"],
        {"username": "ops@example.com", "password": MASKED, "securityToken": SECRET},
    ),
    (
        "614a3c7d791c91c41bae7599",
        "Webhooks (Actions)",
        "actions-webhook",
        ["Raw Data"],
        {"sharedSecret": SECRET},
    ),
    (
        "5f7dd6d21ad74f3842b1fc47",
        "Actions Amplitude",
        "actions-amplitude",
        ["Analytics"],
        {"apiKey": SECRET, "secretKey": SECRET, "endpoint": "north_america"},
    ),
    (
        "60f9d0d048950c356be2e4da",
        "Braze Cloud Mode (Actions)",
        "actions-braze-cloud",
        ["Email Marketing"],
        {
            "api_key": MASKED,
            "app_id": "0c7e8a9c-5a5e-4f0e-9d83-0a3e1b2c4d5f",
            "endpoint": "https://rest.iad-03.braze.com",
        },
    ),
]

# The actions of Actions destinations, by catalog id: (slug, name, default trigger, the settings
# template of a subscription to it). Every other destination has no actions, hence no subscriptions.
ACTIONS: Dict[str, List[Tuple[str, str, str, SettingsTemplate]]] = {
    "54521fd625e721e32a72eea8": [  # Google Analytics 4 Cloud
        (
            "customEvent",
            "Custom Event",
            'type = "track"',
            {"name": {"@path": "$.event"}, "clientId": {"@path": "$.anonymousId"}, "params": {"@path": "$.properties"}},
        ),
        (
            "purchase",
            "Purchase",
            'type = "track" and event = "Order Completed"',
            {
                "transaction_id": {"@path": "$.properties.order_id"},
                "value": {"@path": "$.properties.total"},
                "currency": {"@path": "$.properties.currency"},
            },
        ),
    ],
    "5f7dd6d21ad74f3842b1fc47": [  # Actions Amplitude
        (
            "logEvent",
            "Log Event",
            'type = "track"',
            {
                "user_id": {"@path": "$.userId"},
                "event_type": {"@path": "$.event"},
                "event_properties": {"@path": "$.properties"},
                "use_batch_endpoint": False,
            },
        ),
        (
            "identifyUser",
            "Identify User",
            'type = "identify"',
            {"user_id": {"@path": "$.userId"}, "user_properties": {"@path": "$.traits"}},
        ),
    ],
    "614a3c7d791c91c41bae7599": [  # Webhooks (Actions): the endpoint's credentials live in each subscription
        (
            "send",
            "Send",
            'type = "track" or type = "identify"',
            {
                "url": "https://hooks.example.com/segment/ingest",
                "method": "POST",
                "headers": {"Authorization": Secret("Bearer {}"), "X-Source": "segment"},
                "data": {"@path": "$."},
                "enable_batching": False,
            },
        ),
    ],
    "60f9d0d048950c356be2e4da": [  # Braze Cloud Mode (Actions)
        (
            "updateUserProfile",
            "Update User Profile",
            'type = "identify"',
            {"external_id": {"@path": "$.userId"}, "email": {"@path": "$.traits.email"}},
        ),
        (
            "trackEvent",
            "Track Event",
            'type = "track"',
            {
                "external_id": {"@path": "$.userId"},
                "name": {"@path": "$.event"},
                "properties": {"@path": "$.properties"},
            },
        ),
    ],
}

WAREHOUSE_CATALOG: List[Tuple[str, str, str, SettingsTemplate]] = [
    (
        "55d3d3aea3c",
        "Postgres",
        "postgres",
        {
            "hostname": "pg.internal.example.com",
            "port": 5432,
            "database": "segment",
            "username": "segment",
            "password": SECRET,
        },
    ),
    (
        "JYTmASYX3m",
        "Snowflake",
        "snowflake",
        {
            "account": "acme-xy12345",
            "database": "SEGMENT",
            "warehouse": "LOADING",
            "username": "SEGMENT_USER",
            "privateKey": SECRET,
        },
    ),
    (
        "ckEGMzcFZG",
        "BigQuery",
        "bigquery",
        {
            "project": "acme-analytics",
            "location": "US",
            "credentials": {
                "type": "service_account",
                "private_key_id": SECRET,
                "private_key": SECRET,
                "client_email": "segment@acme-analytics.iam.gserviceaccount.com",
            },
        },
    ),
    (
        "vwTJxfzX1x",
        "Redshift",
        "redshift",
        {
            "hostname": "acme.abc123.us-east-1.redshift.amazonaws.com",
            "port": 5439,
            "database": "segment",
            "username": "segment",
            "password": MASKED,
        },
    ),
]


def source_metadata(catalog_id: str, name: str, slug: str, categories: List[str]) -> Dict[str, Any]:
    """The `SourceMetadataV1` object Segment embeds in every source."""
    return {
        "id": catalog_id,
        "name": name,
        "slug": slug,
        "description": f"Send data from {name} to Segment.",
        "logos": {"default": f"https://cdn.filepicker.io/api/file/{slug}", "mark": None, "alt": None},
        "options": [
            {
                "name": "example option",
                "type": "string",
                "required": False,
                "description": "",
                "defaultValue": {},
                "label": "Option",
            }
        ],
        "categories": categories,
        "isCloudEventSource": name in ("Stripe", "Salesforce"),
        "status": "PUBLIC",
        "partnerOwned": False,
    }


def destination_metadata(catalog_id: str, name: str, slug: str, categories: List[str]) -> Dict[str, Any]:
    """The `DestinationMetadataV1` object Segment embeds, in full, in every destination.

    It is large on purpose: the loader must reduce it to id, slug and name. Only Actions
    destinations (those in `ACTIONS`) have a non-empty `actions` list.
    """
    return {
        "id": catalog_id,
        "name": name,
        "description": f"{name} helps you understand your users. " * 8,
        "slug": slug,
        "logos": {
            "default": f"https://cdn.filepicker.io/api/file/{slug}",
            "mark": f"https://cdn.filepicker.io/api/file/{slug}-mark",
            "alt": None,
        },
        "options": [
            {
                "name": f"option{i}",
                "type": "string",
                "required": i == 0,
                "description": f"Option {i} of {name}",
                "defaultValue": "",
                "label": f"Option {i}",
            }
            for i in range(12)
        ],
        "status": "PUBLIC",
        "previousNames": [name],
        "categories": categories,
        "website": f"https://www.{slug}.example.com",
        "components": [
            {
                "type": "SERVER",
                "code": f"https://github.com/segmentio/integrations/tree/master/integrations/{slug}",
                "owner": "SEGMENT",
            }
        ],
        "supportedFeatures": {
            "cloudModeInstances": "0",
            "deviceModeInstances": "0",
            "replay": True,
            "browserUnbundling": False,
            "browserUnbundlingPublic": True,
        },
        "supportedMethods": {"pageview": True, "identify": True, "alias": True, "track": True, "group": True},
        "supportedPlatforms": {
            "browser": True,
            "server": True,
            "mobile": True,
            "warehouse": False,
            "cloudAppObject": False,
            "linkedAudiences": False,
        },
        "actions": [action_metadata(catalog_id, *action) for action in ACTIONS.get(catalog_id, [])],
        "presets": [
            {"actionId": action_id(catalog_id, slug), "name": name, "fields": {}, "trigger": trigger}
            for slug, name, trigger, _ in ACTIONS.get(catalog_id, [])
        ],
        "contacts": [
            {"name": "Partner Support", "email": "partners@example.com", "role": "support", "isPrimary": True}
        ],
        "partnerOwned": False,
        "supportedRegions": ["us-west-2", "eu-west-1"],
        "regionEndpoints": ["US", "EU"],
        "multiInstanceSupportedVersion": "SUPPORTED",
    }


def warehouse_metadata(catalog_id: str, name: str, slug: str) -> Dict[str, Any]:
    """The `WarehouseMetadataV1` object Segment embeds in every warehouse."""
    return {
        "id": catalog_id,
        "name": name,
        "slug": slug,
        "description": f"{name} data warehouse",
        "logos": {"default": f"https://d3hotuclm6if1r.cloudfront.net/logos/{slug}-default.svg", "mark": "", "alt": ""},
        "options": [
            {"name": "port", "type": "string", "required": True, "description": "", "defaultValue": {}, "label": "Port"}
        ],
    }


# `TrackingPlanV1.type`, the values of the `type` filter of `GET /tracking-plans`
TRACKING_PLAN_TYPES = ("ENGAGE", "LIVE", "PROPERTY_LIBRARY", "RULE_LIBRARY", "TEMPLATE")

# The roles Segment offers: (name, the resource type a permission with it applies to, description).
ROLES: List[Tuple[str, str, str]] = [
    (
        "Workspace Owner",
        "WORKSPACE",
        "Owners have full read and edit access to everything in the workspace, including Sources,"
        " Destinations, add-on products, and settings.",
    ),
    (
        "Workspace Member",
        "WORKSPACE",
        "Members have read access to the workspace; what else they can do comes from their other roles.",
    ),
    ("Source Admin", "SOURCE", "Edit access to the Source, its settings, Destinations, Functions and Tracking Plan."),
    ("Source Read-only", "SOURCE", "Read access to the Source, its Destinations and Tracking Plan."),
    ("Warehouse Admin", "WAREHOUSE", "Edit access to the Warehouse and its settings."),
    ("Warehouse Read-only", "WAREHOUSE", "Read access to the Warehouse and its settings."),
    ("Engage Admin", "SPACE", "Edit access to the Engage space: audiences, computed traits, journeys."),
    ("Engage User", "SPACE", "Create and edit audiences and computed traits in the Engage space."),
    ("Engage Read-only", "SPACE", "Read access to the Engage space."),
    ("Tracking Plan Admin", "WORKSPACE", "Edit access to every Tracking Plan."),
    ("Tracking Plan Read-only", "WORKSPACE", "Read access to every Tracking Plan."),
    ("Functions Admin", "WORKSPACE", "Create, edit and deploy Functions."),
    ("Functions Read-only", "WORKSPACE", "Read access to Functions and their code."),
    ("Identity Admin", "WORKSPACE", "Edit access to identity resolution settings."),
]


@dataclass(frozen=True)
class FunctionTemplate:
    """How the functions of one `resourceType` look. Each `<secret>` in `code` becomes a fresh
    secret: people hard-code keys in function code, however much the docs say `settings`."""

    resource_type: str
    id_prefix: str
    noun: str
    """What the audit trail calls the function ("Source Function Modified")."""
    names: Tuple[str, ...]
    description: str
    code: str
    settings: Tuple[Dict[str, Any], ...]
    """`FunctionSettingV1` definitions (names and types, never values)."""


def _setting(
    name: str, label: str, type_: str = "STRING", required: bool = False, sensitive: bool = False
) -> Dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "description": f"{label} used by the function",
        "type": type_,
        "required": required,
        "sensitive": sensitive,
    }


FUNCTION_TEMPLATES: Dict[str, FunctionTemplate] = {
    t.resource_type: t
    for t in (
        FunctionTemplate(
            "SOURCE",
            "sfnc_",
            "Source Function",
            ("Orders API", "Zendesk Tickets", "Typeform Answers", "Billing Webhook"),
            "Turns webhook calls into track events",
            """// Learn more about source functions API at https://segment.com/docs/connections/sources/source-functions
const API_KEY = '<secret>'

async function onRequest(request, settings) {
  const body = request.json()
  const response = await fetch('https://api.example.com/v1/orders?since=' + body.since + '&token=<secret>', {
    headers: { Authorization: `Bearer ${API_KEY}`, 'X-Region': settings.region }
  })
  const orders = await response.json()
  for (const order of orders) {
    Segment.track({ event: 'Order Synced', userId: order.customerId, properties: order })
  }
}
""",
            (_setting("region", "Region"), _setting("apiKey", "API Key", required=True, sensitive=True)),
        ),
        FunctionTemplate(
            "DESTINATION",
            "dfnc_",
            "Destination Function",
            ("CRM Sync", "Internal Events API", "Support Desk", "Loyalty Points"),
            "Sends events to an internal API",
            """// Learn more about destination functions API at https://segment.com/docs/connections/destinations/destination-functions
async function onTrack(event, settings) {
  const response = await fetch('https://api.example.com/v1/events', {
    method: 'POST',
    headers: { Authorization: 'Bearer <secret>', 'Content-Type': 'application/json', 'X-Api-Key': settings.apiKey },
    body: JSON.stringify(event)
  })
  if (response.status >= 500) {
    throw new RetryError(`Failed with ${response.status}`)
  }
}

async function onIdentify(event, settings) {
  const body = JSON.stringify(event.traits)
  await fetch('https://crm.example.com/v2/contacts?token=<secret>', { method: 'PUT', body })
}
""",
            (
                _setting("apiKey", "API Key", required=True, sensitive=True),
                _setting("eventNames", "Event names", "ARRAY"),
            ),
        ),
        FunctionTemplate(
            "INSERT_DESTINATION",
            "ifnd_",
            "Destination Insert Function",
            ("Hash Emails", "Drop Internal Traffic", "Currency Normaliser"),
            "Runs before the destination: hashes emails",
            """// Insert functions return the event to send it on, or throw DropEvent to drop it
const SALT = '<secret>'

async function onTrack(event, settings) {
  if (settings.dropInternal && event.context.ip && event.context.ip.startsWith('10.')) {
    throw new DropEvent('internal traffic')
  }
  if (event.properties.email) {
    event.properties.email_sha256 = crypto.createHash('sha256').update(SALT + event.properties.email).digest('hex')
    delete event.properties.email
  }
  return event
}
""",
            (_setting("dropInternal", "Drop internal traffic", "BOOLEAN"),),
        ),
        FunctionTemplate(
            "INSERT_SOURCE",
            "ifns_",
            "Source Insert Function",
            ("Company Enrichment", "Bot Filter", "Consent Check"),
            "Runs after the source: enriches identify calls",
            """const LOOKUP_TOKEN = '<secret>'

async function onIdentify(event, settings) {
  const response = await fetch(`https://enrich.example.com/v1/people?email=${event.traits.email}`, {
    headers: { Authorization: 'Bearer ' + LOOKUP_TOKEN }
  })
  event.traits.company = (await response.json()).company
  return event
}
""",
            (_setting("fields", "Fields to add", "ARRAY"),),
        ),
        FunctionTemplate(
            "INSERT_TRANSFORMATION",
            "ifnt_",
            "Transformation Insert Function",
            ("Geo Lookup", "Event Renamer", "Property Cleaner"),
            "Adds a geo lookup to every track call",
            """async function onTrack(event, settings) {
  event.context.geo = await lookup(event.context.ip)
  if (settings.currency && event.event === 'Order Completed') {
    event.properties.currency = settings.currency
  }
  return event
}

async function lookup(ip) {
  const response = await fetch('https://geo.example.com/v1/' + ip + '?key=<secret>')
  return response.json()
}
""",
            (_setting("currency", "Default currency"),),
        ),
    )
}


def action_id(catalog_id: str, slug: str) -> str:
    """An action's id: fixed in the catalog, the same in every workspace."""
    return stable_id(catalog_id, slug)


def action_metadata(catalog_id: str, slug: str, name: str, trigger: str, settings: SettingsTemplate) -> Dict[str, Any]:
    """The `DestinationMetadataActionV1` object: one field per setting a subscription maps."""
    return {
        "id": action_id(catalog_id, slug),
        "slug": slug,
        "name": name,
        "description": f"{name} for every event that matches the trigger",
        "platform": "CLOUD",
        "hidden": False,
        "defaultTrigger": trigger,
        "fields": [
            {
                "id": stable_id(catalog_id, slug, key),
                "sortOrder": i,
                "fieldKey": key,
                "label": key.replace("_", " ").capitalize(),
                "type": "BOOLEAN" if isinstance(value, bool) else "OBJECT" if isinstance(value, dict) else "STRING",
                "description": "",
                "placeholder": "",
                "defaultValue": {},
                "required": i == 0,
                "multiple": False,
                "choices": {},
                "dynamic": False,
                "allowNull": False,
                "hidden": False,
            }
            for i, (key, value) in enumerate(settings.items())
        ],
    }


def stable_id(*parts: str, length: int = 22) -> str:
    """A random-looking id derived from `parts`, for catalog objects that have the same id everywhere."""
    number = int.from_bytes(hashlib.sha256("/".join(parts).encode()).digest(), "big")
    alphabet = string.ascii_letters + string.digits
    chars = []
    for _ in range(length):
        number, digit = divmod(number, len(alphabet))
        chars.append(alphabet[digit])
    return "".join(chars)


# Built once: every item of a catalog entry embeds the same (read-only) object.
SOURCE_METADATA: Dict[str, Dict[str, Any]] = {entry[0]: source_metadata(*entry[:4]) for entry in SOURCE_CATALOG}
DESTINATION_METADATA: Dict[str, Dict[str, Any]] = {
    entry[0]: destination_metadata(*entry[:4]) for entry in DESTINATION_CATALOG
}
WAREHOUSE_METADATA: Dict[str, Dict[str, Any]] = {
    entry[0]: warehouse_metadata(*entry[:3]) for entry in WAREHOUSE_CATALOG
}
