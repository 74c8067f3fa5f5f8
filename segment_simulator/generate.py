"""Generation, the layer above `catalog.py`: how a simulated workspace's items are made up.

`Size` (and the `SIZES` small, medium, large) says how many objects of each kind a generated
workspace holds. `ItemGenerator._new_<kind>(**fields)` builds one item of a kind the way the Public
API serves it (camelCase, full shapes; `fields` override), and `populate` fills a workspace with as
many of each kind as a `Size` says. `ItemGenerator` is an abstract base: `SimulatedWorkspace`
(`workspace.py`, the layer above) inherits the builders (its `add(kind, ...)` calls `_new_<kind>`)
and defines the storing methods the base declares (`get`, `_insert`, `_record`). Every draw comes
from the workspace's seeded random generator, so the same seed gives the same ids, names and
secrets; each plaintext secret goes through `new_secret()`.
"""

import functools
import random
import re
import string
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional, Set, Tuple

from segment_simulator import catalog

_ID_ALPHABET = string.ascii_letters + string.digits

# The workspace's labels (`GET /labels`); sources carry some of them.
LABELS: List[Dict[str, str]] = [
    {"key": "environment", "value": "prod", "description": "Deployment environment"},
    {"key": "environment", "value": "staging", "description": "Deployment environment"},
    {"key": "environment", "value": "dev", "description": "Deployment environment"},
    {"key": "team", "value": "growth", "description": "Owning team"},
    {"key": "team", "value": "mobile", "description": "Owning team"},
    {"key": "team", "value": "data", "description": "Owning team"},
    {"key": "region", "value": "eu", "description": "Data residency"},
]

# Tracking plan rules: (type, key) -> the properties (traits, context) the rule's JSON Schema
# describes. IDENTIFY and COMMON rules have no key, GROUP rules a null one.
RULE_PROPERTIES: Dict[Tuple[str, Optional[str]], Dict[str, str]] = {
    ("IDENTIFY", None): {"email": "string", "name": "string", "plan": "string", "created_at": "string"},
    ("GROUP", None): {"name": "string", "industry": "string", "employees": "integer"},
    ("COMMON", None): {"app": "object", "locale": "string"},
    ("PAGE", "Home"): {"path": "string", "referrer": "string"},
    ("TRACK", "Order Completed"): {"order_id": "string", "total": "number", "currency": "string", "products": "array"},
    ("TRACK", "Product Viewed"): {"product_id": "string", "name": "string", "price": "number"},
    ("TRACK", "Product Added"): {"product_id": "string", "quantity": "integer", "price": "number"},
    ("TRACK", "Cart Viewed"): {"cart_id": "string"},
    ("TRACK", "Checkout Started"): {"order_id": "string", "value": "number"},
    ("TRACK", "Coupon Applied"): {"coupon_id": "string", "discount": "number"},
    ("TRACK", "Signed Up"): {"method": "string"},
    ("TRACK", "Signed In"): {"method": "string"},
    ("TRACK", "Subscription Started"): {"plan": "string", "interval": "string"},
    ("TRACK", "Subscription Cancelled"): {"plan": "string", "reason": "string"},
    ("TRACK", "Video Played"): {"video_id": "string", "position": "integer"},
    ("TRACK", "Search Performed"): {"query": "string", "results": "integer"},
    ("TRACK", "Invite Sent"): {"invitee_email": "string"},
    ("TRACK", "Feature Used"): {"feature": "string"},
    ("TRACK", "Payment Failed"): {"amount": "number", "code": "string"},
    ("TRACK", "Trial Started"): {"trial_days": "integer"},
}
_RULE_SECTIONS = {"IDENTIFY": "traits", "GROUP": "traits", "COMMON": "context"}  # else "properties"

PLAN_NAMES = [
    "Web App",
    "iOS App",
    "Android App",
    "Backend Events",
    "Marketing Site",
    "Checkout",
    "Growth Experiments",
    "Partner API",
]
# Most plans are live; the others show up now and then, so that the `type` filter has work to do.
PLAN_TYPES = ["LIVE", "LIVE", "TEMPLATE", "LIVE", "RULE_LIBRARY", "LIVE", "PROPERTY_LIBRARY", "LIVE", "ENGAGE"]

# Destination filters: (title, FQL condition, actions, description or None)
FILTERS: List[Tuple[str, str, List[Dict[str, Any]], Optional[str]]] = [
    ("Drop test events", 'event = "Test Event"', [{"type": "DROP"}], "Keeps QA traffic out of the destination."),
    (
        "Sample page calls",
        'type = "page"',
        [{"type": "SAMPLE", "percent": 0.1, "path": "userId"}],
        "Sends one page call in ten.",
    ),
    (
        "Strip PII",
        'type = "identify"',
        [{"type": "DROP_PROPERTIES", "fields": {"traits": ["email", "phone", "address"]}}],
        None,
    ),
    (
        "Only order fields",
        'event = "Order Completed"',
        [{"type": "ALLOW_PROPERTIES", "fields": {"properties": ["order_id", "total", "currency"]}}],
        "The destination only needs what identifies an order.",
    ),
]

# Transformations: the fields beyond id, name, sourceId, enabled and `if`
TRANSFORMATIONS: List[Tuple[str, str, Dict[str, Any]]] = [
    ("Rename checkout event", "event = 'Checkout Complete'", {"newEventName": "Order Completed"}),
    (
        "Hash emails",
        "type = 'identify'",
        {
            "hashPropertiesConfiguration": {
                "algorithm": "SHA256",
                "key": catalog.SECRET,
                "encoding": "HEX",
                "paths": ["traits.email"],
            }
        },
    ),
    (
        "Snake-case order properties",
        "event = 'Order Completed'",
        {
            "propertyRenames": [
                {"oldName": "orderId", "newName": "order_id"},
                {"oldName": "totalPrice", "newName": "total"},
            ]
        },
    ),
    ("Drop debug events", "event = 'Debug'", {"drop": True}),
    (
        "Normalise currency",
        "event = 'Order Completed'",
        {
            "propertyValueTransformations": [{"propertyPaths": ["properties.currency"], "propertyValue": "USD"}],
            "fqlDefinedProperties": [{"fql": "lowercase(properties.coupon)", "propertyName": "properties.coupon_code"}],
        },
    ),
    (
        "Keep product fields",
        "event = 'Product Viewed'",
        {"allowProperties": ["properties.product_id", "properties.name", "properties.price"]},
    ),
]

# Reverse ETL models: (name, SQL, identifier column)
REVERSE_ETL_MODELS = [
    ("Active users", "SELECT user_id, email, plan FROM analytics.users WHERE active", "user_id"),
    ("High value accounts", "SELECT account_id, name, arr FROM analytics.accounts WHERE arr > 100000", "account_id"),
    ("Churn risk", "SELECT user_id, churn_score FROM ml.churn_scores WHERE churn_score > 0.8", "user_id"),
]
REVERSE_ETL_SCHEDULES: List[Dict[str, Any]] = [
    {"strategy": "PERIODIC", "config": {"interval": "1h"}},
    {"strategy": "CRON", "config": {"spec": "0 */6 * * *", "timezone": "America/Los_Angeles"}},
    {"strategy": "SPECIFIC_DAYS", "config": {"days": [1, 3, 5], "hours": [6], "timezone": "Europe/Berlin"}},
    {"strategy": "MANUAL", "config": None},
]

# Computed traits: (name, key, query)
COMPUTED_TRAITS = [
    ("Lifetime value", "lifetime_value", "event('Order Completed').sum(properties.total)"),
    ("Orders in the last 30 days", "orders_30d", "event('Order Completed').within(30 days).count()"),
    ("Last product viewed", "last_product_viewed", "event('Product Viewed').last(properties.name)"),
    ("Favourite category", "favourite_category", "event('Product Viewed').mode(properties.category)"),
]

FIRST_NAMES = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Ken",
    "Margaret",
    "Linus",
    "Radia",
    "Dennis",
    "Frances",
    "Tim",
]
LAST_NAMES = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Thompson",
    "Hamilton",
    "Torvalds",
    "Perlman",
    "Ritchie",
    "Allen",
    "Berners-Lee",
]
GROUP_NAMES = ["Data Engineering", "Marketing", "Mobile Team", "Analytics", "Support", "Growth"]
REGULATION_TYPES = [
    "DELETE_ARCHIVE_ONLY",
    "DELETE_INTERNAL",
    "DELETE_ONLY",
    "SUPPRESS_ONLY",
    "SUPPRESS_WITH_DELETE",
    "SUPPRESS_WITH_DELETE_INTERNAL",
    "UNSUPPRESS",
]
ROLE_RESOURCE_TYPES = {name: resource_type for name, resource_type, _ in catalog.ROLES}


@dataclass(frozen=True)
class Size:
    """How many objects of each kind a generated workspace holds. The kinds after
    `sources_per_warehouse` default to none, so a Size written for the core kinds still works."""

    sources: int
    destinations: int
    warehouses: int
    spaces: int
    audiences: int
    sources_per_warehouse: int
    tracking_plans: int = 0
    rules_per_plan: Tuple[int, int] = (3, 6)
    """Fewest and most distinct rules of a plan (some events also keep a deprecated version)."""
    functions_per_type: int = 0
    """Functions of each of the five resource types."""
    filters: int = 0
    """Destination filters, two on every third destination."""
    subscriptions_per_destination: int = 0
    """Subscriptions of every Actions destination (other destinations have none)."""
    users: int = 0
    groups: int = 0
    roles: int = 0
    computed_traits_per_space: int = 0
    reverse_etl_models: int = 0
    transformations: int = 0
    audit_events: int = 0
    """Audit events of the last 30 days; edits add more."""
    syncs_per_warehouse: int = 0
    regulations: int = 0
    """Deletion and suppression requests of the last 90 days (the API keeps 90 days)."""
    suppressions: int = 0
    """Suppressed users."""
    credentials: int = 0


SIZES: Dict[str, Size] = {
    # every list fits in one page
    "small": Size(
        sources=6,
        destinations=10,
        warehouses=2,
        spaces=1,
        audiences=12,
        sources_per_warehouse=3,
        tracking_plans=3,
        rules_per_plan=(3, 6),
        functions_per_type=2,
        filters=5,
        subscriptions_per_destination=2,
        users=4,
        groups=2,
        roles=3,
        computed_traits_per_space=2,
        reverse_etl_models=2,
        transformations=3,
        audit_events=30,
        syncs_per_warehouse=3,
        regulations=8,
        suppressions=4,
        credentials=3,
    ),
    # sources, destinations, users, the audit trail and the first space's audiences span several pages
    "medium": Size(
        sources=1250,
        destinations=2600,
        warehouses=12,
        spaces=3,
        audiences=480,
        sources_per_warehouse=40,
        tracking_plans=150,
        rules_per_plan=(5, 20),
        functions_per_type=30,
        filters=800,
        subscriptions_per_destination=3,
        users=1200,
        groups=40,
        roles=14,
        computed_traits_per_space=30,
        reverse_etl_models=25,
        transformations=150,
        audit_events=1500,
        syncs_per_warehouse=20,
        regulations=300,
        suppressions=150,
        credentials=12,
    ),
    "large": Size(
        sources=5000,
        destinations=12000,
        warehouses=40,
        spaces=6,
        audiences=2400,
        sources_per_warehouse=150,
        tracking_plans=600,
        rules_per_plan=(5, 20),
        functions_per_type=100,
        filters=4000,
        subscriptions_per_destination=3,
        users=5000,
        groups=150,
        roles=14,
        computed_traits_per_space=100,
        reverse_etl_models=100,
        transformations=600,
        audit_events=10000,
        syncs_per_warehouse=50,
        regulations=2000,
        suppressions=1000,
    ),
}


def iso(moment: datetime) -> str:
    """A timestamp as the API writes it: ISO-8601, UTC, milliseconds, `Z`."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class ItemGenerator(ABC):
    """The item builders of a workspace: a base class that reads and draws from the workspace's
    state (the attributes below) and stores through the three methods a workspace must define."""

    # the state a workspace sets up in its __init__
    id: str
    items: Dict[str, Dict[str, Dict[str, Any]]]
    warehouse_sources: Dict[str, List[str]]
    plan_sources: Dict[str, List[str]]
    plan_rules: Dict[str, List[Dict[str, Any]]]
    syncs: Dict[str, List[Dict[str, Any]]]
    regulations: List[Dict[str, Any]]
    suppressions: List[Dict[str, Any]]
    labels: List[Dict[str, Any]]
    secrets: Set[str]
    token_actor: str
    _rng: random.Random
    _audit_rng: random.Random
    _privacy_rng: random.Random
    _engage_rng: random.Random
    _credentials_rng: random.Random
    credentials: List[Dict[str, Any]]
    insert_instances: Dict[str, List[Dict[str, Any]]]
    audience_destinations: Dict[str, List[str]]
    _clock: datetime

    @abstractmethod
    def get(self, kind: str, item_id: str) -> Dict[str, Any]:
        """The item of `kind` with this id; `KeyError` if there is none."""

    @abstractmethod
    def _insert(self, kind: str, **fields: Any) -> Dict[str, Any]:
        """Make up an item of `kind` (its `_new_<kind>(**fields)`), store it and return it."""

    @abstractmethod
    def _record(
        self,
        kind: str,
        item: Dict[str, Any],
        verb: str,
        at: Optional[datetime] = None,
        actor: Optional[Tuple[str, Optional[str]]] = None,
    ) -> None:
        """Add the audit event of `verb` ("Created", "Modified", "Deleted") done to `item`."""

    # ---- primitives ------------------------------------------------------------------------

    def new_id(self, length: int = 22, rng: Optional[random.Random] = None) -> str:
        return "".join((rng or self._rng).choice(_ID_ALPHABET) for _ in range(length))

    def new_secret(self, prefix: str = "", rng: Optional[random.Random] = None) -> str:
        value = prefix + self.new_id(32, rng)
        self.secrets.add(value)
        return value

    def _tick(self) -> str:
        """The next moment of the workspace's own clock: item timestamps are deterministic."""
        self._clock += timedelta(minutes=7)
        return iso(self._clock)

    def _settings(self, template: Any) -> Any:
        if isinstance(template, catalog.Secret):
            return template.text.format(self.new_secret())
        if template is catalog.MASKED:
            return "••••••••••" + self.new_id(4)
        if isinstance(template, dict):
            return {k: self._settings(v) for k, v in template.items()}
        if isinstance(template, list):
            return [self._settings(v) for v in template]
        return template

    def _pick(self, kind: str) -> Optional[str]:
        """The id of a random item of `kind`, if there is one."""
        ids = list(self.items[kind])
        return self._rng.choice(ids) if ids else None

    def _label(self, key: str, value: str) -> Dict[str, Any]:
        """The workspace label `key: value` (created if missing, so sources never carry an unknown label)."""
        for label in self.labels:
            if (label["key"], label["value"]) == (key, value):
                return label
        self.labels.append({"key": key, "value": value})
        return self.labels[-1]

    # ---- the core kinds --------------------------------------------------------------------

    def _new_sources(self, **fields: Any) -> Dict[str, Any]:
        n = len(self.items["sources"]) + 1
        catalog_id, cat_name, slug, _, template = self._rng.choice(catalog.SOURCE_CATALOG)
        labels = [self._label("environment", self._rng.choice(["prod", "staging", "dev"]))]
        if n % 3 == 0:
            labels.append(self._label("team", self._rng.choice(["growth", "mobile", "data"])))
        item = {
            "id": self.new_id(),
            "slug": f"{slug}-{n}",
            "name": f"{cat_name} {n}",
            "metadata": catalog.SOURCE_METADATA[catalog_id],
            "workspaceId": self.id,
            "enabled": n % 7 != 0,
            "writeKeys": [self.new_secret() for _ in range(1 + (n % 4 == 0))],
            "settings": self._settings(template),
            "labels": labels,
        }
        item.update(fields)
        return item

    def _new_destinations(self, **fields: Any) -> Dict[str, Any]:
        n = len(self.items["destinations"]) + 1
        catalog_id, cat_name, _, _, template = self._rng.choice(catalog.DESTINATION_CATALOG)
        item = {
            "id": self.new_id(),
            "name": f"{cat_name} {n}",
            "enabled": n % 5 != 0,
            "metadata": catalog.DESTINATION_METADATA[catalog_id],
            "sourceId": self._pick("sources"),
            "settings": self._settings(template),
        }
        item.update(fields)
        return item

    def _new_warehouses(self, **fields: Any) -> Dict[str, Any]:
        n = len(self.items["warehouses"]) + 1
        catalog_id, cat_name, _, template = catalog.WAREHOUSE_CATALOG[(n - 1) % len(catalog.WAREHOUSE_CATALOG)]
        item = {
            "id": self.new_id(),
            "metadata": catalog.WAREHOUSE_METADATA[catalog_id],
            "workspaceId": self.id,
            "enabled": True,
            "settings": dict(self._settings(template), name=f"{cat_name} {n}"),
        }
        item.update(fields)
        return item

    def _new_spaces(self, **fields: Any) -> Dict[str, Any]:
        n = len(self.items["spaces"]) + 1
        name = ["Production", "Staging", "EU Customers", "B2B Accounts", "Sandbox", "Mobile"][(n - 1) % 6]
        item = {"id": self.new_id(), "slug": f"{name.lower().replace(' ', '-')}-{n}", "name": f"{name}"}
        item.update(fields)
        return item

    def _new_audiences(self, space_id: Optional[str] = None, **fields: Any) -> Dict[str, Any]:
        n = len(self.items["audiences"]) + 1
        space_id = space_id or fields.pop("spaceId", None) or list(self.items["spaces"])[0]
        event = self._rng.choice(["Order Completed", "Product Viewed", "Signed Up", "Cart Abandoned"])
        created = self._tick()
        item = {
            "id": self.new_id(),
            "spaceId": space_id,
            "name": f"{event} x{n % 5 + 1}",
            "description": f"Users who did {event} at least {n % 5 + 1} times",
            "key": f"{event.lower().replace(' ', '_')}_{n}",
            "enabled": n % 6 != 0,
            "definition": {"query": f"event('{event}').count() >= {n % 5 + 1}", "targetEntity": None},
            "status": self._rng.choice(["Live", "Computing", "Disabled"]),
            "createdBy": "user_" + self.new_id(10),
            "updatedBy": "user_" + self.new_id(10),
            "createdAt": created,
            "updatedAt": created,
            "audienceType": "USERS",
            "computeCadence": {"type": "BATCH"},
            "size": {"count": self._rng.randint(0, 50000), "type": "USERS"},
            "options": {"filterByExternalIds": ["email"], "includeHistoricalData": True, "backfillEventDataDays": 90},
        }
        item.update(fields)
        return item

    # ---- Protocols ---------------------------------------------------------------------------

    def _new_tracking_plans(self, **fields: Any) -> Dict[str, Any]:
        n = len(self.items["tracking_plans"]) + 1
        base = PLAN_NAMES[(n - 1) % len(PLAN_NAMES)]
        created = self._tick()
        item = {
            "id": "tp_" + self.new_id(),
            "name": f"{base} {n}",
            "slug": f"{base.lower().replace(' ', '-')}-{n}",
            "description": f"Events the {base} sends",
            "type": PLAN_TYPES[(n - 1) % len(PLAN_TYPES)],
            "updatedAt": created,
            "createdAt": created,
        }
        item.update(fields)
        return item

    def _new_rule(self, type_: str, key: Optional[str] = None, **fields: Any) -> Dict[str, Any]:
        """A `RuleV1`: IDENTIFY and COMMON rules come without a key, GROUP rules with a null one."""
        created = self._tick()
        rule: Dict[str, Any] = {"type": type_}
        if key is not None or type_ == "GROUP":
            rule["key"] = key
        properties = RULE_PROPERTIES.get((type_, key), {"value": "string"})
        section = _RULE_SECTIONS.get(type_, "properties")
        rule["jsonSchema"] = {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                section: {
                    "type": "object",
                    "properties": {name: {"type": json_type} for name, json_type in properties.items()},
                    "required": [next(iter(properties))],
                }
            },
            "required": [section],
        }
        rule.update(version=1, createdAt=created, updatedAt=created)
        rule.update(fields)
        return rule

    def _new_rules(self, count: int) -> List[Dict[str, Any]]:
        """`count` distinct rules for a new plan, identify first; some events also keep an older,
        deprecated version (rules are keyed by type, key and version)."""
        candidates = list(RULE_PROPERTIES)
        chosen = candidates[:1] + self._rng.sample(candidates[1:], max(0, min(count, len(candidates)) - 1))
        rules = []
        for type_, key in sorted(chosen, key=candidates.index):
            if type_ == "TRACK" and self._rng.random() < 0.2:
                old = self._new_rule(type_, key)
                rules.append(dict(old, deprecatedAt=self._tick()))
                rules.append(self._new_rule(type_, key, version=2))
            else:
                rules.append(self._new_rule(type_, key))
        return rules

    # ---- Functions, destination filters and subscriptions, transformations ------------------

    def _new_functions(self, **fields: Any) -> Dict[str, Any]:
        resource_type = fields.get("resourceType") or self._rng.choice(sorted(catalog.FUNCTION_TEMPLATES))
        template = catalog.FUNCTION_TEMPLATES[resource_type]
        n = sum(f["resourceType"] == resource_type for f in self.items["functions"].values()) + 1
        catalog_id = self.new_id()
        created = self._tick()
        deployed = n % 4 != 0
        name = f"{template.names[(n - 1) % len(template.names)]} {n}"
        item = {
            "id": template.id_prefix + catalog_id,
            "resourceType": resource_type,
            "createdAt": created,
            "createdBy": self._pick("users") or self.new_id(),
            "code": re.sub("<secret>", lambda _: self.new_secret(), template.code),
            "deployedAt": self._tick() if deployed else None,
            "settings": list(template.settings),
            "displayName": name,
            "description": template.description,
            "logoUrl": f"https://cdn.example.com/functions/{name.lower().replace(' ', '-')}.svg",
            # a source function's webhook URL is its credential
            "previewWebhookUrl": "https://fn.segmentapis.com/?b=" + self.new_secret()
            if resource_type == "SOURCE"
            else "",
            "batchMaxCount": 20 if resource_type == "DESTINATION" and n % 2 else 0,
            "catalogId": catalog_id,
            "isLatestVersion": deployed and n % 3 != 0,
        }
        item.update(fields)
        return item

    def _new_filters(self, **fields: Any) -> Dict[str, Any]:
        destination_id = fields.get("destinationId") or self._pick("destinations")
        if destination_id is None:
            raise KeyError("a destination filter needs a destination: the workspace has none")
        destination = self.get("destinations", destination_id)
        n = len(self.items["filters"]) + 1
        title, condition, actions, description = FILTERS[(n - 1) % len(FILTERS)]
        created = self._tick()
        item = {
            "id": self.new_id(),
            "sourceId": destination["sourceId"],
            "destinationId": destination["id"],
            "if": condition,
            "actions": actions,
            "title": title,
            **({"description": description} if description else {}),
            "enabled": n % 4 != 0,
            "createdAt": created,
            "updatedAt": created,
        }
        item.update(fields)
        return item

    def _new_subscriptions(self, **fields: Any) -> Dict[str, Any]:
        destination_id = fields.get("destinationId") or self._rng.choice(
            [d["id"] for d in self.items["destinations"].values() if d["metadata"]["actions"]]
        )
        destination = self.get("destinations", destination_id)
        catalog_id = destination["metadata"]["id"]
        if catalog_id not in catalog.ACTIONS:
            raise ValueError(
                f"destination {destination_id} is not an Actions destination: it has no actions to subscribe to"
            )
        slug, name, trigger, template = self._rng.choice(catalog.ACTIONS[catalog_id])
        item = {
            "id": self.new_id(),
            "name": name,
            "actionId": catalog.action_id(catalog_id, slug),
            "actionSlug": slug,
            "destinationId": destination_id,
            "enabled": self._rng.random() < 0.8,
            "settings": self._settings(template),
            "trigger": trigger,
        }
        item.update(fields)
        return item

    def _new_transformations(self, **fields: Any) -> Dict[str, Any]:
        n = len(self.items["transformations"]) + 1
        name, condition, extra = TRANSFORMATIONS[(n - 1) % len(TRANSFORMATIONS)]
        destination_id = self._pick("destinations") if n % 2 == 0 else None
        item = {
            "id": self.new_id(27),
            "name": name,
            "sourceId": self._pick("sources"),
            # some transformations apply to one destination type only
            **(
                {"destinationMetadataId": self.items["destinations"][destination_id]["metadata"]["id"]}
                if destination_id
                else {}
            ),
            "enabled": n % 5 != 0,
            "if": condition,
            **self._settings(extra),  # the hashing key is a secret
        }
        item.update(fields)
        return item

    # ---- Access management --------------------------------------------------------------------

    def _new_roles(self, **fields: Any) -> Dict[str, Any]:
        name, _, description = catalog.ROLES[len(self.items["roles"]) % len(catalog.ROLES)]
        item = {"id": self.new_id(27), "name": name, "description": description}
        item.update(fields)
        return item

    def _new_users(self, **fields: Any) -> Dict[str, Any]:
        n = len(self.items["users"]) + 1
        first, last = self._rng.choice(FIRST_NAMES), self._rng.choice(LAST_NAMES)
        item = {
            "id": self.new_id(),
            "name": f"{first} {last}",
            "email": f"{first.lower()}.{last.lower()}.{n}@example.com",
            "permissions": self._permissions(owner=n == 1),
        }
        item.update(fields)
        return item

    def _new_groups(self, **fields: Any) -> Dict[str, Any]:
        n = len(self.items["groups"]) + 1
        item = {
            "id": self.new_id(),
            "name": f"{GROUP_NAMES[(n - 1) % len(GROUP_NAMES)]} {n}",
            "memberCount": self._rng.randint(0, max(len(self.items["users"]), 1)),
            "permissions": self._permissions(owner=False),
        }
        item.update(fields)
        return item

    def _permissions(self, owner: bool) -> List[Dict[str, Any]]:
        """One `PermissionV1`: the first role (Workspace Owner) for the owner, else a random role on
        resources of the type it applies to; workspace-wide ones are sometimes narrowed by a label."""
        roles = list(self.items["roles"].values())
        if not roles:
            return []
        role = roles[0] if owner else self._rng.choice(roles)
        resource_type = ROLE_RESOURCE_TYPES.get(role["name"], "WORKSPACE")
        kind = {"SOURCE": "sources", "WAREHOUSE": "warehouses", "SPACE": "spaces"}.get(resource_type)
        candidates = list(self.items[kind]) if kind else []
        permission: Dict[str, Any] = {"roleName": role["name"], "roleId": role["id"]}
        if candidates:
            ids = self._rng.sample(candidates, min(len(candidates), self._rng.randint(1, 2)))
            permission["resources"] = [{"id": resource_id, "type": resource_type} for resource_id in ids]
        elif owner or self._rng.random() < 0.5:
            permission["resources"] = [{"id": self.id, "type": "WORKSPACE"}]
        else:
            label = self._label("environment", "prod")
            permission["resources"] = [{"id": self.id, "type": "WORKSPACE", "labels": [label]}]
            permission["labels"] = [label]
        return [permission]

    # ---- Engage and Reverse ETL ---------------------------------------------------------------

    def _new_computed_traits(self, **fields: Any) -> Dict[str, Any]:
        n = len(self.items["computed_traits"]) + 1
        name, key, query = COMPUTED_TRAITS[(n - 1) % len(COMPUTED_TRAITS)]
        created = self._tick()
        author = self._pick("users") or self.new_id()
        item = {
            "id": self.new_id(),
            "spaceId": fields.get("spaceId") or list(self.items["spaces"])[0],
            "name": name,
            "description": f"{name} of every user",
            "key": f"{key}_{n}",
            "enabled": n % 5 != 0,
            "definition": {"query": query, "type": "USERS"},
            "status": self._rng.choice(["Live", "Computing", "Backfilling"]),
            "createdBy": author,
            "updatedBy": author,
            "createdAt": created,
            "updatedAt": created,
            "options": {"includeHistoricalData": True, "includeAnonymousUsers": n % 2 == 0, "backfillDurationDays": 90},
        }
        item.update(fields)
        return item

    def _new_reverse_etl_models(self, **fields: Any) -> Dict[str, Any]:
        n = len(self.items["reverse_etl_models"]) + 1
        name, query, column = REVERSE_ETL_MODELS[(n - 1) % len(REVERSE_ETL_MODELS)]
        item = {
            "id": self.new_id(),
            "sourceId": self._pick("sources"),
            "name": f"{name} {n}",
            "description": f"{name}, synced to the tools that need them",
            "enabled": n % 4 != 0,
            "query": query,
            "queryIdentifierColumn": column,
        }
        item.update(fields)
        return item

    # ---- warehouse syncs ---------------------------------------------------------------------

    def _new_sync(self, source_id: str, started: datetime, running: bool = False) -> Dict[str, Any]:
        """A `SyncV1` report; a running one has no end. Syncs are runs, dated in real time like the
        audit trail (a loader reads them from a start date that is relative to now)."""
        duration = self._rng.randint(20, 1800)
        failed = not running and self._rng.random() < 0.15
        end = iso(started + timedelta(seconds=duration))
        return {
            "sourceId": source_id,
            "start": iso(started),
            "end": None if running else end,
            "status": "running" if running else "failed" if failed else "completed",
            "duration": duration,
            "humanDuration": f"{duration // 60}m {duration % 60}s" if duration >= 60 else f"{duration}s",
            "count": 0 if failed else self._rng.randint(1, 250000),
            "notices": [
                {"level": "error", "message": "Warehouse connection refused: check the credentials", "createdAt": end}
            ]
            if failed
            else [],
        }

    # ---- privacy: deletion and suppression ----------------------------------------------------

    def _new_regulation(self, created: datetime, still_open: bool) -> Dict[str, Any]:
        """A `RegulationListEntryV1`: a request about one to three end users, open (initialized or
        running) or done. Drawn from the privacy generator."""
        rng = self._privacy_rng
        done = rng.choices(["FINISHED", "FAILED", "PARTIAL_SUCCESS", "NOT_SUPPORTED"], weights=[12, 2, 1, 1])[0]
        item = {
            "id": self.new_id(27, rng),
            "subjectType": rng.choice(["USER_ID", "USER_ID", "OBJECT_ID"]),
            "subjects": [f"user_{self.new_id(10, rng)}" for _ in range(rng.randint(1, 3))],
            "status": rng.choice(["INITIALIZED", "RUNNING"]) if still_open else done,
            "createdAt": iso(created),
            "regulationType": rng.choice(REGULATION_TYPES),
        }
        if not still_open:
            item["finishedAt"] = iso(created + timedelta(hours=rng.randint(1, 120)))
        return item

    def _new_suppression(self) -> Dict[str, Any]:
        """A `SuppressedInner`: a suppressed user (no id of its own)."""
        return {"subjectType": "userId", "subjectIds": [f"user_{self.new_id(10, self._privacy_rng)}"]}

    # ---- Engage activations ----------------------------------------------------------------------

    def _connect_audiences(self) -> None:
        """Every audience but one in four goes to one or two destinations (the engage generator's draws)."""
        destinations = list(self.items["destinations"])
        for n, audience_id in enumerate(self.items["audiences"]):
            if destinations and n % 4 != 3:
                picked = self._engage_rng.sample(destinations, min(len(destinations), 1 + n % 2))
                self.audience_destinations[audience_id] = picked

    # ---- credentials and insert function instances --------------------------------------------

    def _new_credential(self, n: int) -> Dict[str, Any]:
        """A `CredentialV1`: warehouse credentials shared by Reverse ETL and Profiles (the
        credentials generator's draws); its password or key is a secret."""
        rng = self._credentials_rng
        kind = ("Snowflake", "Redshift", "BigQuery")[n % 3]
        settings: Dict[str, Any] = {"type": kind}
        if kind == "BigQuery":
            settings.update(projectId=f"analytics-{n}", serviceAccountKey=self.new_secret("sa_", rng))
        else:
            settings.update(account=f"ab{n:05d}.us-east-1", user="SEGMENT_LOADER", password=self.new_secret("", rng))
        created = iso(datetime(2024, 6, 1, tzinfo=timezone.utc) + timedelta(days=n))
        return {
            "id": self.new_id(22, rng),
            "workspaceId": self.id,
            "name": f"{kind} credentials {n}",
            "settings": settings,
            "createdAt": created,
            "updatedAt": created,
        }

    def _new_insert_instance(self, function: Dict[str, Any], n: int) -> Dict[str, Any]:
        """An `InsertFunctionInstanceAlpha`: an insert function attached to a destination or source."""
        rng = self._credentials_rng
        kind = "sources" if function["resourceType"] == "INSERT_SOURCE" else "destinations"
        integrations = list(self.items[kind])
        created = iso(datetime(2024, 7, 1, tzinfo=timezone.utc) + timedelta(hours=n))
        return {
            "id": self.new_id(22, rng),
            "name": f"{function['displayName']} on {kind[:-1]} {n}",
            "integrationId": rng.choice(integrations) if integrations else self.new_id(22, rng),
            "classId": function["id"],
            "enabled": n % 3 != 0,
            "createdAt": created,
            "updatedAt": created,
            "settings": {"apiKey": self.new_secret("", rng), "region": "us-west-2"},
            "encryptedSettings": {},
        }

    # ---- a whole workspace -------------------------------------------------------------------

    def populate(self, counts: Size) -> None:
        """Fill an empty workspace with `counts` of every kind, and an audit trail of
        `counts.audit_events` over the last 30 days. Items go in directly: making up a workspace
        is no edit, so it adds no audit event of its own."""
        now = datetime.now(timezone.utc)
        for _ in range(counts.sources):
            self._insert("sources")
        for _ in range(counts.destinations):
            self._insert("destinations")
        source_ids = list(self.items["sources"])
        for w in range(counts.warehouses):
            warehouse = self._insert("warehouses")
            start = (w * counts.sources_per_warehouse) % max(len(source_ids), 1)
            self.warehouse_sources[warehouse["id"]] += _take_cyclic(
                source_ids, start, min(counts.sources_per_warehouse, len(source_ids))
            )
        for _ in range(counts.spaces):
            self._insert("spaces")
        space_ids = list(self.items["spaces"])
        for a in range(counts.audiences):
            # half of all audiences in the first space, so that one space spans several pages
            space = (
                space_ids[0] if a % 2 == 0 or len(space_ids) == 1 else space_ids[1 + (a // 2) % (len(space_ids) - 1)]
            )
            self._insert("audiences", space_id=space)
        # the kinds below draw after the core kinds, so that those stay as they were
        for _ in range(counts.roles):
            self._insert("roles")
        for _ in range(counts.users):
            self._insert("users")
        for _ in range(counts.groups):
            self._insert("groups")
        self._populate_protocols(counts, source_ids)
        for resource_type in sorted(catalog.FUNCTION_TEMPLATES):
            for _ in range(counts.functions_per_type):
                self._insert("functions", resourceType=resource_type)
        destination_ids = list(self.items["destinations"])
        for j in range(counts.filters if destination_ids else 0):
            # two filters on every third destination
            self._insert("filters", destinationId=destination_ids[(j // 2 * 3) % len(destination_ids)])
        for _ in range(counts.reverse_etl_models if source_ids else 0):
            self._insert("reverse_etl_models")
        self._populate_subscriptions(counts)
        for _ in range(counts.transformations if source_ids else 0):
            self._insert("transformations")
        for space_id in space_ids:
            for _ in range(counts.computed_traits_per_space):
                self._insert("computed_traits", spaceId=space_id)
        for w, (warehouse_id, connected) in enumerate(self.warehouse_sources.items()):
            for s in range(counts.syncs_per_warehouse if connected else 0):
                # the newest sync of every other warehouse is still running; one sync every 6 hours
                running = w % 2 == 0 and s == counts.syncs_per_warehouse - 1
                started = now - timedelta(hours=6 * (counts.syncs_per_warehouse - s))
                self.syncs[warehouse_id].append(self._new_sync(connected[s % len(connected)], started, running))
        self._made_up_audit_trail(counts.audit_events)
        for r in range(counts.regulations):
            # over the 90 days the API keeps, newest first; the two newest and every fourth still open
            age = timedelta(days=89.5 * r / counts.regulations, hours=1)
            self.regulations.append(self._new_regulation(now - age, still_open=r < 2 or r % 4 == 3))
        self.suppressions.extend(self._new_suppression() for _ in range(counts.suppressions))
        self._connect_audiences()
        self.credentials.extend(self._new_credential(n) for n in range(1, counts.credentials + 1))
        inserts = [f for f in self.items["functions"].values() if f["resourceType"].startswith("INSERT_")]
        for n, function in enumerate(inserts):
            self.insert_instances[function["id"]] = [
                self._new_insert_instance(function, 2 * n + i) for i in range(n % 3)
            ]

    def _populate_protocols(self, counts: Size, source_ids: List[str]) -> None:
        """Tracking plans with their rules; the first half of the sources feed the live plans."""
        for _ in range(counts.tracking_plans):
            plan = self._insert("tracking_plans")
            self.plan_rules[plan["id"]] = self._new_rules(self._rng.randint(*counts.rules_per_plan))
        live = [plan_id for plan_id, plan in self.items["tracking_plans"].items() if plan["type"] == "LIVE"]
        for i, source_id in enumerate(source_ids[: len(source_ids) // 2] if live else []):
            self.plan_sources[live[i % len(live)]].append(source_id)

    def _populate_subscriptions(self, counts: Size) -> None:
        """Subscriptions on every Actions destination; every third one maps a Reverse ETL model."""
        models = list(self.items["reverse_etl_models"])
        k = 0
        for destination in list(self.items["destinations"].values()):
            if not destination["metadata"]["actions"]:
                continue
            for _ in range(counts.subscriptions_per_destination):
                k += 1
                fields: Dict[str, Any] = {"destinationId": destination["id"]}
                if models and k % 3 == 0:
                    fields.update(
                        modelId=models[k % len(models)],
                        reverseETLSchedule=REVERSE_ETL_SCHEDULES[k % len(REVERSE_ETL_SCHEDULES)],
                    )
                self._insert("subscriptions", **fields)

    def _made_up_audit_trail(self, count: int) -> None:
        """`count` audit events over the last 30 days, by users (mostly) and API tokens, about
        objects of the workspace; one in ten deleted an object that is gone. The audit trail has
        its own random generator: real time makes its timestamps differ from run to run anyway."""
        rng = self._audit_rng
        pool = [(kind, item) for kind in _AUDITED_KINDS for item in self.items[kind].values()]
        users = list(self.items["users"].values())
        now = datetime.now(timezone.utc)
        for age in sorted((rng.uniform(60, 30 * 86400) for _ in range(count if pool else 0)), reverse=True):
            kind, item = rng.choice(pool)
            verb = rng.choices(["Created", "Modified", "Deleted"], weights=[2, 7, 1])[0]
            if verb == "Deleted":
                item = dict(item, id="".join(rng.choice(_ID_ALPHABET) for _ in range(22)))
            user = rng.choice(users) if users and rng.random() < 0.8 else None
            actor = (f"user/{user['id']}", user["email"]) if user else (self.token_actor, None)
            self._record(kind, item, verb, at=now - timedelta(seconds=age), actor=actor)


# what the made-up audit trail is about: configuration, not the Engage and IAM churn
_AUDITED_KINDS = (
    "sources",
    "destinations",
    "warehouses",
    "tracking_plans",
    "functions",
    "filters",
    "reverse_etl_models",
    "transformations",
)


def audience_schedules(audience: Dict[str, Any]) -> List[Dict[str, Any]]:
    """An audience's `AudienceSchedule`s (`include=schedules`): none for one in three audiences,
    else one. Derived from the audience id, so it costs the workspace's generators no draw."""
    rng = random.Random(audience["id"])
    kind = rng.randrange(3)
    if kind == 0:
        return []
    schedule_id = "sch_" + "".join(rng.choice(_ID_ALPHABET) for _ in range(18))
    if kind == 1:
        return [{"id": schedule_id, "strategy": "PERIODIC", "config": {"interval": rng.choice(["1h", "6h", "1d"])}}]
    days = sorted(rng.sample(range(7), 3))
    config = {"days": days, "hours": [rng.randrange(24)], "timezone": "Europe/Berlin"}
    return [{"id": schedule_id, "strategy": "SPECIFIC_DAYS", "config": config}]


def function_versions(function: Dict[str, Any]) -> List[Dict[str, Any]]:
    """A function's `Version`s, newest first: one to three saves of its code, the newest its current
    code (deployed if the function is), older ones earlier drafts with the same embedded credentials.
    Derived from the function, so they cost the workspace's generators no draw."""
    rng = random.Random(f"{function['id']}:versions")
    created = datetime.fromisoformat(function["createdAt"].replace("Z", "+00:00"))
    count = rng.randint(1, 3)
    versions = []
    for k in range(count, 0, -1):
        saved = iso(created + timedelta(hours=k))
        newest = k == count
        versions.append(
            {
                "id": "".join(rng.choice(_ID_ALPHABET) for _ in range(22)),
                "author": function["createdBy"],
                "code": function["code"] if newest else f"// draft {k}\n{function['code']}",
                "isDeployed": newest and function["deployedAt"] is not None,
                "createdAt": saved,
                "updatedAt": saved,
                **({"deployedAt": function["deployedAt"]} if newest and function["deployedAt"] else {}),
            }
        )
    return versions


ACTIVATION_TYPES = ("Audience Entered", "Audience Exited", "Audience Membership Changed")


def audience_activation(workspace_id: str, audience: Dict[str, Any], destination_id: str) -> Dict[str, Any]:
    """The `ActivationOutput` of an audience on one of its destinations: which event goes there when a
    profile enters or exits, with the traits it carries. Derived from the pair, so it costs the
    workspace's generators no draw."""
    rng = random.Random(f"{audience['id']}:{destination_id}:activation")
    kind = rng.choice(ACTIVATION_TYPES)
    return {
        "id": "".join(rng.choice(_ID_ALPHABET) for _ in range(22)),
        "enabled": rng.random() < 0.8,
        "workspaceId": workspace_id,
        "spaceId": audience["spaceId"],
        "audienceId": audience["id"],
        "connectionId": destination_id,
        "activationType": kind,
        "activationName": f"{audience['key']} {kind.lower()}",
        "displayName": None,
        "personalization": {
            "profile": {"properties": rng.sample(["email", "first_name", "plan", "country"], 2), "mapping": {}},
            "entities": [],
            "syncEntityPropertyChanges": False,
        },
        "destinationMapping": {"actionId": "".join(rng.choice(_ID_ALPHABET) for _ in range(22)), "settings": {}},
        "performResync": False,
    }


@functools.lru_cache(maxsize=1 << 20)  # every page of a listing asks again for the whole month
def daily_usage(source_id: str, day: datetime) -> Dict[str, int]:
    """A source's usage of one day: MTUs by kind and API calls. Derived from (source id, day), so
    every read of a past day sees the same numbers, and no generator draws for it."""
    rng = random.Random(f"{source_id}:{day.date().isoformat()}")
    return {
        "anonymous": rng.randint(0, 2000),
        "anonymousIdentified": rng.randint(0, 500),
        "identified": rng.randint(0, 5000),
        "neverIdentified": rng.randint(0, 300),
        "apiCalls": rng.randint(0, 200000),
    }


EVENT_TYPES = ("track", "identify", "page")


@functools.lru_cache(maxsize=1 << 20)
def _full_day_events(source_id: str, event_type: str, day: datetime) -> int:
    return random.Random(f"{source_id}:{event_type}:{day.date().isoformat()}").randint(0, 100000)


def daily_event_count(source_id: str, event_type: str, day: datetime, now: datetime) -> int:
    """Events of one source and type on one day, derived from them (today: the part of the day gone by)."""
    full = _full_day_events(source_id, event_type, day)
    elapsed = (now - day).total_seconds() / 86400
    return full if elapsed >= 1 else int(full * max(elapsed, 0.0))


def _take_cyclic(values: List[str], start: int, count: int) -> List[str]:
    return [values[(start + i) % len(values)] for i in range(count)]


@functools.lru_cache(maxsize=1 << 20)
def _full_day_deliveries(destination_id: str, day: datetime) -> Tuple[int, int, int, int, int, int]:
    """(successes, of them after a retry, retried, discarded, expired, mean ms to success) of one
    destination's day. One destination in three is troubled: it discards events (bad payloads) every
    day and lets some expire (its endpoint down past the retry window) one day in three; the others
    discard on one day in twenty."""
    troubled = random.Random(f"{destination_id}:delivery").random() < 1 / 3
    rng = random.Random(f"{destination_id}:delivery:{day.date().isoformat()}")
    successes = rng.randint(0, 50000)
    after_retry = rng.randint(0, successes // 50)
    trouble = rng.random()
    discarded = rng.randint(1, 500) if troubled or trouble < 0.05 else 0
    expired = rng.randint(1, 200) if troubled and trouble < 1 / 3 else 0
    return successes, after_retry, after_retry + expired, discarded, expired, rng.randint(80, 900)


def delivery_metrics(destination_id: str, days: List[datetime], now: datetime) -> List[Dict[str, Any]]:
    """A `DeliveryMetricsSummaryBeta`'s `metrics` over whole days (today: the part gone by), derived
    from (destination id, day): counts add up over the days, times are their mean."""
    counts = [0] * 5
    times = []
    for day in days:
        *daily, ms = _full_day_deliveries(destination_id, day)
        share = min(max((now - day).total_seconds() / 86400, 0.0), 1.0)
        counts = [c + int(d * share) for c, d in zip(counts, daily, strict=True)]
        times.append(ms)
    successes, after_retry, retried, discarded, expired = counts
    ms = sum(times) // len(times) if times else 0
    return [
        {
            "metricName": "successes",
            "total": successes,
            "breakdown": [
                {"metricName": "successes_on_first_attempt", "value": successes - after_retry},
                {"metricName": "successes_after_retry", "value": after_retry},
            ],
        },
        {"metricName": "expired", "total": expired},
        {"metricName": "discarded", "total": discarded},
        {"metricName": "retried", "total": retried},
        {
            "metricName": "time_to_success",
            "total": ms,
            "breakdown": [
                {"metricName": "time_to_success_average", "value": ms},
                {"metricName": "time_to_success_p95", "value": ms * 3},
            ],
        },
    ]
