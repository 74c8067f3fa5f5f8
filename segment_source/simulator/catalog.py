"""Catalog entries the simulated workspace draws from.

Each entry carries the shape Segment embeds in list responses (`metadata` on sources,
destinations and warehouses) and a settings template. Settings templates mark the values that
are secrets; the generator fills them with fresh random strings and records each one, so tests
can prove that none reaches a loaded table. Names and setting keys follow real integrations.
"""

from typing import Any, Dict, List, Tuple

# A setting value in a template:
#   SECRET        a fresh plaintext secret, served as is
#   MASKED        a secret Segment itself masks in responses ("••••••••••" + last 4 chars)
#   anything else served verbatim
SECRET = object()
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
]

WAREHOUSE_CATALOG: List[Tuple[str, str, str, SettingsTemplate]] = [
    (
        "55d3d3aea3c",
        "Postgres",
        "postgres",
        {"hostname": "pg.internal.example.com", "port": 5432, "database": "segment", "username": "segment", "password": SECRET},
    ),
    (
        "JYTmASYX3m",
        "Snowflake",
        "snowflake",
        {"account": "acme-xy12345", "database": "SEGMENT", "warehouse": "LOADING", "username": "SEGMENT_USER", "privateKey": SECRET},
    ),
    (
        "ckEGMzcFZG",
        "BigQuery",
        "bigquery",
        {
            "project": "acme-analytics",
            "location": "US",
            "credentials": {"type": "service_account", "private_key_id": SECRET, "private_key": SECRET, "client_email": "segment@acme-analytics.iam.gserviceaccount.com"},
        },
    ),
    (
        "vwTJxfzX1x",
        "Redshift",
        "redshift",
        {"hostname": "acme.abc123.us-east-1.redshift.amazonaws.com", "port": 5439, "database": "segment", "username": "segment", "password": MASKED},
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
            {"name": "example option", "type": "string", "required": False, "description": "", "defaultValue": {}, "label": "Option"}
        ],
        "categories": categories,
        "isCloudEventSource": name in ("Stripe", "Salesforce"),
        "status": "PUBLIC",
        "partnerOwned": False,
    }


def destination_metadata(catalog_id: str, name: str, slug: str, categories: List[str]) -> Dict[str, Any]:
    """The `DestinationMetadataV1` object Segment embeds, in full, in every destination.

    It is large on purpose: the loader must reduce it to id, slug and name.
    """
    return {
        "id": catalog_id,
        "name": name,
        "description": f"{name} helps you understand your users. " * 8,
        "slug": slug,
        "logos": {"default": f"https://cdn.filepicker.io/api/file/{slug}", "mark": f"https://cdn.filepicker.io/api/file/{slug}-mark", "alt": None},
        "options": [
            {"name": f"option{i}", "type": "string", "required": i == 0, "description": f"Option {i} of {name}", "defaultValue": "", "label": f"Option {i}"}
            for i in range(12)
        ],
        "status": "PUBLIC",
        "previousNames": [name],
        "categories": categories,
        "website": f"https://www.{slug}.example.com",
        "components": [{"type": "SERVER", "code": f"https://github.com/segmentio/integrations/tree/master/integrations/{slug}", "owner": "SEGMENT"}],
        "supportedFeatures": {"cloudModeInstances": "0", "deviceModeInstances": "0", "replay": True, "browserUnbundling": False, "browserUnbundlingPublic": True},
        "supportedMethods": {"pageview": True, "identify": True, "alias": True, "track": True, "group": True},
        "supportedPlatforms": {"browser": True, "server": True, "mobile": True, "warehouse": False, "cloudAppObject": False, "linkedAudiences": False},
        "actions": [
            {
                "id": f"{catalog_id[:10]}act{i}",
                "slug": f"action-{i}",
                "name": f"Action {i}",
                "description": "Send an event",
                "platform": "CLOUD",
                "hidden": False,
                "defaultTrigger": 'type = "track"',
                "fields": [
                    {"id": f"fld{i}{j}", "sortOrder": j, "fieldKey": f"field_{j}", "label": f"Field {j}", "type": "STRING", "description": "", "placeholder": "", "defaultValue": {}, "required": False, "multiple": False, "choices": {}, "dynamic": False, "allowNull": False, "hidden": False}
                    for j in range(4)
                ],
            }
            for i in range(3)
        ],
        "presets": [],
        "contacts": [{"name": "Partner Support", "email": "partners@example.com", "role": "support", "isPrimary": True}],
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
        "options": [{"name": "port", "type": "string", "required": True, "description": "", "defaultValue": {}, "label": "Port"}],
    }
