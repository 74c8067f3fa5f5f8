"""The rest of the configuration surface the simulator serves: Protocols, Functions, destination
filters and subscriptions, access management, labels, computed traits, Reverse ETL,
transformations, the audit trail, the catalog and warehouse syncs. Shapes follow the API 73.2.0
models (shared/segment-api/endpoints.json); edits show in the next response and in the audit trail."""

import base64
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List

import pytest
import requests

from segment_simulator import SegmentSimulator, SimulatedWorkspace, generate_workspace, routes

# (required fields, optional fields) of each item model, from endpoints.json
MODELS = {
    "TrackingPlanV1": ({"id", "type"}, {"name", "slug", "description", "updatedAt", "createdAt"}),
    "RuleV1": ({"type", "jsonSchema", "version"}, {"key", "createdAt", "updatedAt", "deprecatedAt"}),
    "SourceV1": ({"id", "slug", "metadata", "workspaceId", "enabled", "writeKeys", "labels"}, {"name", "settings"}),
    "ListFunctionItemV1": (
        set(),
        {"id", "resourceType", "createdAt", "createdBy", "displayName", "description", "logoUrl", "catalogId"},
    ),
    "DestinationFilterV1": (
        {"id", "sourceId", "destinationId", "if", "actions", "title", "enabled", "createdAt", "updatedAt"},
        {"description"},
    ),
    "DestinationSubscription": (
        {"id", "name", "actionId", "actionSlug", "destinationId", "enabled", "settings", "trigger"},
        {"modelId", "reverseETLSchedule"},
    ),
    "UserV1": ({"id", "name", "email"}, {"permissions"}),
    "UserGroupV1": ({"id", "name", "memberCount"}, {"permissions"}),
    "RoleV1": ({"id", "name", "description"}, set()),
    "LabelV1": ({"key", "value"}, {"description"}),
    "ComputedTraitSummary": (
        {"id", "spaceId", "name", "key", "enabled", "definition", "createdBy", "updatedBy", "createdAt", "updatedAt"},
        {"description", "status", "options"},
    ),
    "ReverseEtlModel": ({"id", "sourceId", "name", "description", "enabled", "query", "queryIdentifierColumn"}, set()),
    "TransformationV1": (
        {"id", "name", "sourceId", "enabled", "if"},
        {
            "destinationMetadataId",
            "drop",
            "newEventName",
            "propertyRenames",
            "propertyValueTransformations",
            "fqlDefinedProperties",
            "allowProperties",
            "hashPropertiesConfiguration",
        },
    ),
    "AuditEventV1": (
        {"id", "timestamp", "type", "actor", "resourceId", "resourceType", "resourceName"},
        {"actorEmail"},
    ),
    "SourceMetadataV1": (
        {"id", "name", "slug", "description", "logos", "options", "categories", "isCloudEventSource", "status"},
        {"partnerOwned"},
    ),
    "DestinationMetadataV1": (
        {
            "id",
            "name",
            "description",
            "slug",
            "logos",
            "options",
            "status",
            "previousNames",
            "categories",
            "website",
            "components",
            "supportedFeatures",
            "supportedMethods",
            "supportedPlatforms",
            "actions",
            "presets",
        },
        {"contacts", "partnerOwned", "supportedRegions", "regionEndpoints", "multiInstanceSupportedVersion"},
    ),
    "WarehouseMetadataV1": ({"id", "name", "slug", "description", "logos", "options"}, set()),
    "SyncV1": ({"sourceId", "start", "end", "status", "duration", "humanDuration", "count", "notices"}, set()),
    "FunctionV1": (
        set(),
        {
            "id",
            "resourceType",
            "createdAt",
            "createdBy",
            "code",
            "deployedAt",
            "settings",
            "displayName",
            "description",
            "logoUrl",
            "previewWebhookUrl",
            "batchMaxCount",
            "catalogId",
            "isLatestVersion",
        },
    ),
    "FunctionSettingV1": ({"name", "label", "description", "type", "required", "sensitive"}, set()),
    "DestinationFilterActionV1": ({"type"}, {"fields", "percent", "path"}),
    "PermissionV1": ({"roleName", "roleId", "resources"}, {"labels"}),
    "PermissionResourceV1": ({"id", "type"}, {"labels"}),
}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
RESOURCE_TYPES = ["DESTINATION", "INSERT_DESTINATION", "INSERT_SOURCE", "INSERT_TRANSFORMATION", "SOURCE"]


def get(sim: SegmentSimulator, path: str, **params: Any) -> requests.Response:
    return requests.get(sim.url + path, params=params, headers={"Authorization": f"Bearer {sim.token}"}, timeout=10)


def data(sim: SegmentSimulator, path: str, **params: object) -> Dict[str, Any]:
    response = get(sim, path, **params)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def read_all(
    sim: SegmentSimulator, path: str, items_key: str, count: int = 1000, **params: object
) -> List[Dict[str, Any]]:
    """Every item of a list, page by page, until `next` is absent."""
    items: List[Dict[str, Any]] = []
    cursor = None
    while True:
        page = data(
            sim, path, **params, **{"pagination[count]": count}, **({"pagination[cursor]": cursor} if cursor else {})
        )
        items += page[items_key]
        cursor = page["pagination"].get("next")
        if cursor is None:
            return items


def split(target: str) -> "tuple[str, Dict[str, str]]":
    """`/functions?resourceType=SOURCE` -> ("/functions", {"resourceType": "SOURCE"})."""
    path, _, query = target.partition("?")
    return path, dict(pair.split("=") for pair in query.split("&") if pair)


def assert_shape(item: Dict[str, Any], model: str) -> None:
    required, optional = MODELS[model]
    assert required <= set(item) <= required | optional, (model, sorted(set(item) ^ required))


def actions_destinations(ws: SimulatedWorkspace) -> List[str]:
    return [d["id"] for d in ws.listing("destinations") if d["metadata"]["actions"]]


def newest_event(ws: SimulatedWorkspace) -> Dict[str, Any]:
    return ws.audit_events()[0]


# ---- every list: shape, contents, pages -------------------------------------------------------

LISTS = [
    # (path, items key, model, what the workspace says it holds)
    ("/tracking-plans", "trackingPlans", "TrackingPlanV1", lambda ws, t: ws.listing("tracking_plans")),
    ("/tracking-plans/{plan}/rules", "rules", "RuleV1", lambda ws, t: ws.rules(t["plan"])),
    ("/tracking-plans/{plan}/sources", "sources", "SourceV1", lambda ws, t: ws.tracking_plan_sources(t["plan"])),
    ("/destination/{filtered}/filters", "filters", "DestinationFilterV1", lambda ws, t: ws.filters_of(t["filtered"])),
    (
        "/destinations/{actions}/subscriptions",
        "subscriptions",
        "DestinationSubscription",
        lambda ws, t: ws.subscriptions_of(t["actions"]),
    ),
    ("/users", "users", "UserV1", lambda ws, t: ws.listing("users")),
    ("/groups", "userGroups", "UserGroupV1", lambda ws, t: ws.listing("groups")),
    ("/roles", "roles", "RoleV1", lambda ws, t: ws.listing("roles")),
    (
        "/spaces/{space}/computed-traits",
        "computedTraits",
        "ComputedTraitSummary",
        lambda ws, t: ws.computed_traits_of(t["space"]),
    ),
    ("/reverse-etl-models", "models", "ReverseEtlModel", lambda ws, t: ws.listing("reverse_etl_models")),
    ("/transformations", "transformations", "TransformationV1", lambda ws, t: ws.listing("transformations")),
    ("/audit-events", "events", "AuditEventV1", lambda ws, t: ws.audit_events()),
    ("/catalog/sources", "sourcesCatalog", "SourceMetadataV1", None),
    ("/catalog/destinations", "destinationsCatalog", "DestinationMetadataV1", None),
    ("/catalog/warehouses", "warehousesCatalog", "WarehouseMetadataV1", None),
    ("/warehouses/{warehouse}/syncs", "reports", "SyncV1", lambda ws, t: ws.syncs_of(t["warehouse"])),
] + [
    (f"/functions?resourceType={t}", "functions", "ListFunctionItemV1", lambda ws, _, t=t: ws.functions_of(t))
    for t in RESOURCE_TYPES
]


@pytest.mark.parametrize("path, items_key, model, expected", LISTS, ids=[case[0] for case in LISTS])
def test_every_list_serves_the_workspace_in_the_model_shape_page_by_page(simulator, path, items_key, model, expected):
    ws = simulator.workspace
    targets = {
        "plan": next(p for p in ws.ids("tracking_plans") if ws.tracking_plan_sources(p)),
        "filtered": next(d for d in ws.ids("destinations") if len(ws.filters_of(d)) > 1),
        "actions": actions_destinations(ws)[0],
        "space": ws.ids("spaces")[0],
        "warehouse": ws.ids("warehouses")[0],
    }
    path, params = split(path.format(**targets))
    items = read_all(simulator, path, items_key, count=2, **params)
    assert len(items) > 1
    for item in items:
        assert_shape(item, model)
    if expected is not None:
        assert items == expected(ws, targets)


def test_the_small_workspace_holds_a_handful_of_each_kind(simulator):
    ws = simulator.workspace
    assert len(ws.ids("tracking_plans")) == 3
    assert all(3 <= len({(r["type"], r.get("key")) for r in ws.rules(p)}) <= 6 for p in ws.ids("tracking_plans"))
    assert {t: len(ws.functions_of(t)) for t in RESOURCE_TYPES} == {t: 2 for t in RESOURCE_TYPES}
    assert len(ws.ids("filters")) == 5
    assert actions_destinations(ws), "the small workspace has an Actions destination"
    assert all(len(ws.subscriptions_of(d)) == 2 for d in actions_destinations(ws))
    assert [len(ws.ids(kind)) for kind in ("users", "groups", "roles", "reverse_etl_models", "transformations")] == [
        4,
        2,
        3,
        2,
        3,
    ]
    assert all(len(ws.computed_traits_of(s)) == 2 for s in ws.ids("spaces"))
    assert len(ws.audit_events()) == 30
    assert all(len(ws.syncs_of(w)) == 3 for w in ws.ids("warehouses"))


def test_a_medium_workspace_pages_at_1000():
    with SegmentSimulator(generate_workspace("medium")) as sim:
        for path, key in (("/users", "users"), ("/audit-events", "events")):
            first = data(sim, path, **{"pagination[count]": 1000})
            assert len(first[key]) == 1000 and first["pagination"].get("next"), path
        assert len(read_all(sim, "/users", "users")) == len(sim.workspace.ids("users")) == 1200
        plans = sim.workspace.ids("tracking_plans")
        assert len(plans) == 150 and max(len(sim.workspace.rules(p)) for p in plans) >= 20


def test_the_new_kinds_are_generated_deterministically():
    one, two = generate_workspace("small", seed=3), generate_workspace("small", seed=3)
    for kind in (
        "tracking_plans",
        "functions",
        "filters",
        "subscriptions",
        "users",
        "groups",
        "roles",
        "computed_traits",
        "reverse_etl_models",
        "transformations",
    ):
        assert one.listing(kind) == two.listing(kind), kind
    assert [one.rules(p) for p in one.ids("tracking_plans")] == [two.rules(p) for p in two.ids("tracking_plans")]
    assert [(e["id"], e["type"], e["resourceId"]) for e in one.audit_events()] == [
        (e["id"], e["type"], e["resourceId"]) for e in two.audit_events()
    ]
    assert one.secrets == two.secrets


# ---- endpoint by endpoint ---------------------------------------------------------------------


def test_labels_come_whole_without_pagination_and_cover_every_source_label(simulator):
    body = data(simulator, "/labels")
    assert set(body) == {"labels"}
    labels = body["labels"]
    for label in labels:
        assert_shape(label, "LabelV1")
    for source in simulator.workspace.listing("sources"):
        for label in source["labels"]:
            assert label in labels


def test_tracking_plans_filter_by_type_and_refuse_an_unknown_type(simulator):
    ws = simulator.workspace
    templates = read_all(simulator, "/tracking-plans", "trackingPlans", type="TEMPLATE")
    assert templates and all(p["type"] == "TEMPLATE" for p in templates)
    assert len(templates) < len(ws.ids("tracking_plans"))
    response = get(simulator, "/tracking-plans", type="NOPE")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "type"


def test_rules_have_no_id_and_are_keyed_by_type_key_and_version(simulator):
    ws = simulator.workspace
    for plan in ws.ids("tracking_plans"):
        rules = ws.rules(plan)
        assert len({(r["type"], r.get("key"), r["version"]) for r in rules}) == len(rules)
        for rule in rules:
            assert "id" not in rule
            assert rule["jsonSchema"]["$schema"].startswith("http://json-schema.org/")
            assert rule["jsonSchema"]["type"] == "object"
            if rule["type"] == "TRACK":
                assert rule["key"]
            if rule["type"] in ("IDENTIFY", "COMMON"):
                assert "key" not in rule
    group_rules = [r for p in ws.ids("tracking_plans") for r in ws.rules(p) if r["type"] == "GROUP"]
    assert all(r["key"] is None for r in group_rules)


def test_functions_need_a_valid_resource_type(simulator):
    for params in ({}, {"resourceType": "WIDGET"}):
        response = get(simulator, "/functions", **params)
        assert response.status_code == 422, params
        problem = response.json()["errors"][0]
        assert (problem["type"], problem["field"]) == ("ValidationError", "resourceType")


def test_a_function_by_id_is_the_whole_function_with_its_code(simulator):
    ws = simulator.workspace
    for summary in ws.functions_of("DESTINATION"):
        function = data(simulator, f"/functions/{summary['id']}")["function"]
        assert_shape(function, "FunctionV1")
        assert {k: function[k] for k in summary} == summary
        assert function["code"] and "code" not in summary
        for setting in function["settings"]:
            assert_shape(setting, "FunctionSettingV1")
    assert get(simulator, "/functions/sfnc_nope").status_code == 404


def test_function_code_embeds_secrets_the_way_people_write_them_and_all_are_registered(simulator):
    ws = simulator.workspace
    code = {f["resourceType"]: f["code"] for f in ws.listing("functions")}
    assert re.search(r"const API_KEY = '\w{32}'", code["SOURCE"])
    assert re.search(r"Authorization: 'Bearer \w{32}'", code["DESTINATION"])
    assert re.search(r"fetch\('https://[^']*\?token=\w{32}'", code["DESTINATION"])
    assert "settings.apiKey" in code["DESTINATION"]
    for function in ws.listing("functions"):
        embedded = re.findall(
            r"(?<![\w])([A-Za-z0-9]{32})(?![\w])", function["code"] + " " + function["previewWebhookUrl"]
        )
        assert embedded, function["displayName"]
        assert set(embedded) <= ws.secrets


def test_filters_belong_to_their_destination_and_an_unknown_destination_is_a_404(simulator):
    ws = simulator.workspace
    for destination in ws.listing("destinations"):
        for item in read_all(simulator, f"/destination/{destination['id']}/filters", "filters"):
            assert (item["destinationId"], item["sourceId"]) == (destination["id"], destination["sourceId"])
            for action in item["actions"]:
                assert_shape(action, "DestinationFilterActionV1")
    response = get(simulator, "/destination/nope/filters")
    assert response.status_code == 404
    assert response.json()["errors"][0]["type"] == "NotFound"


def test_only_actions_destinations_have_subscriptions_and_their_secrets_are_registered(simulator):
    ws = simulator.workspace
    models = set(ws.ids("reverse_etl_models"))
    for destination in ws.listing("destinations"):
        subscriptions = read_all(simulator, f"/destinations/{destination['id']}/subscriptions", "subscriptions")
        actions = {a["id"]: a["slug"] for a in destination["metadata"]["actions"]}
        assert bool(subscriptions) == bool(actions)
        for subscription in subscriptions:
            assert actions[subscription["actionId"]] == subscription["actionSlug"]
            assert subscription.get("modelId") in models | {None}
    headers = [
        s["settings"]["headers"]["Authorization"] for s in ws.listing("subscriptions") if "headers" in s["settings"]
    ]
    assert headers and all(h.startswith("Bearer ") and h[len("Bearer ") :] in ws.secrets for h in headers)
    assert any("modelId" in s and "reverseETLSchedule" in s for s in ws.listing("subscriptions"))
    assert get(simulator, "/destinations/nope/subscriptions").status_code == 404


def test_users_and_groups_hold_permissions_on_existing_roles_and_resources(simulator):
    ws = simulator.workspace
    roles = {r["id"]: r["name"] for r in ws.listing("roles")}
    resources = {ws.id} | set(ws.ids("sources")) | set(ws.ids("warehouses")) | set(ws.ids("spaces"))
    for item in ws.listing("users") + ws.listing("groups"):
        for permission in item["permissions"]:
            assert_shape(permission, "PermissionV1")
            assert roles[permission["roleId"]] == permission["roleName"]
            for resource in permission["resources"]:
                assert_shape(resource, "PermissionResourceV1")
                assert resource["id"] in resources
    owner = ws.listing("users")[0]["permissions"][0]
    assert owner["roleName"] == "Workspace Owner" and owner["resources"] == [{"id": ws.id, "type": "WORKSPACE"}]


def test_the_catalog_lists_the_entries_the_items_embed(simulator):
    ws = simulator.workspace
    for kind, path, key in (
        ("sources", "/catalog/sources", "sourcesCatalog"),
        ("destinations", "/catalog/destinations", "destinationsCatalog"),
        ("warehouses", "/catalog/warehouses", "warehousesCatalog"),
    ):
        entries = {e["id"]: e for e in read_all(simulator, path, key)}
        for item in ws.listing(kind):
            assert entries[item["metadata"]["id"]] == item["metadata"]
    destinations = read_all(simulator, "/catalog/destinations", "destinationsCatalog")
    assert any(d["actions"] for d in destinations) and any(not d["actions"] for d in destinations)


def test_warehouse_syncs_come_newest_first_and_a_new_sync_comes_first(simulator):
    ws = simulator.workspace
    warehouse = ws.ids("warehouses")[0]
    reports = read_all(simulator, f"/warehouses/{warehouse}/syncs", "reports")
    assert [r["start"] for r in reports] == sorted((r["start"] for r in reports), reverse=True)
    assert any(r["end"] is None for w in ws.ids("warehouses") for r in ws.syncs_of(w)), "a sync still runs"
    added = ws.add_sync(warehouse, status="failed")
    assert read_all(simulator, f"/warehouses/{warehouse}/syncs", "reports")[0] == added
    assert get(simulator, "/warehouses/nope/syncs").status_code == 404


# ---- the audit trail --------------------------------------------------------------------------


def test_audit_events_come_newest_first_from_the_last_30_days(simulator):
    events = read_all(simulator, "/audit-events", "events", count=7)
    assert events == simulator.workspace.audit_events()
    stamps = [e["timestamp"] for e in events]
    assert all(TIMESTAMP.match(s) for s in stamps)
    assert stamps == sorted(stamps, reverse=True) and len(set(stamps)) == len(stamps)
    now = datetime.now(timezone.utc)
    assert (
        now - timedelta(days=30)
        < datetime.fromisoformat(stamps[-1].replace("Z", "+00:00"))
        < datetime.fromisoformat(stamps[0].replace("Z", "+00:00"))
        <= now
    )
    assert all(re.match(r"^events/\d+$", e["id"]) for e in events)
    assert all(re.match(r"^(user|public-api-token)/\w+$", e["actor"]) for e in events)


def test_audit_events_filter_strictly_by_time_and_by_resource(simulator):
    ws = simulator.workspace
    events = ws.audit_events()
    middle = events[10]
    after = read_all(simulator, "/audit-events", "events", startTime=middle["timestamp"])
    before = read_all(simulator, "/audit-events", "events", endTime=middle["timestamp"])
    assert after == events[:10] and before == events[11:]
    between = read_all(
        simulator, "/audit-events", "events", startTime=events[20]["timestamp"], endTime=events[5]["timestamp"]
    )
    assert between == events[6:20]
    by_resource = read_all(simulator, "/audit-events", "events", resourceId=middle["resourceId"])
    assert middle in by_resource and all(e["resourceId"] == middle["resourceId"] for e in by_resource)
    by_type = read_all(simulator, "/audit-events", "events", resourceType="source")
    assert by_type == [e for e in events if e["resourceType"] == "source"]
    for name in ("startTime", "endTime"):
        response = get(simulator, "/audit-events", **{name: "yesterday"})
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == name


def test_the_audit_cursor_pins_the_first_page_end_time_while_events_arrive(simulator):
    ws = simulator.workspace
    before = ws.audit_events()
    first = data(simulator, "/audit-events", **{"pagination[count]": 10})
    cursor = json.loads(base64.b64decode(first["pagination"]["next"]))
    assert set(cursor) == {"pageToken", "endTime"}
    for source in ws.ids("sources")[:3]:
        ws.rename("sources", source, "Renamed while paging")
    seen, next_cursor = first["events"], first["pagination"]["next"]
    while next_cursor:
        page = data(simulator, "/audit-events", **{"pagination[count]": 10, "pagination[cursor]": next_cursor})
        seen += page["events"]
        next_cursor = page["pagination"].get("next")
    assert seen == before
    assert [e["type"] for e in data(simulator, "/audit-events", **{"pagination[count]": 3})["events"]] == [
        "Source Modified"
    ] * 3
    assert get(simulator, "/audit-events", **{"pagination[cursor]": "MA=="}).status_code == 422


def test_every_edit_leaves_an_audit_event_on_top_of_the_trail(simulator):
    ws = simulator.workspace
    source, warehouse, plan = ws.ids("sources")[0], ws.ids("warehouses")[0], ws.ids("tracking_plans")[0]
    destination, group = ws.ids("destinations")[0], ws.ids("groups")[0]
    unconnected = next(s for s in ws.ids("sources") if s not in ws.warehouse_sources[warehouse])
    # (an edit that returns the id of the resource its event names, event type, resourceType)
    edits = [
        (lambda: ws.add("sources", name="New source")["id"], "Source Created", "source"),
        (
            lambda: ws.rename("destinations", destination, "Renamed") or destination,
            "Destination Modified",
            "destination",
        ),
        (lambda: ws.update("warehouses", warehouse, enabled=False) or warehouse, "Warehouse Modified", "warehouse"),
        (lambda: ws.connect(warehouse, unconnected) or warehouse, "Source Connected to Warehouse", "warehouse"),
        (lambda: ws.disconnect(warehouse, unconnected) or warehouse, "Source Disconnected From Warehouse", "warehouse"),
        (lambda: ws.add("tracking_plans", name="New plan")["id"], "Tracking Plan Created", "tracking_plan"),
        (lambda: ws.connect_tracking_plan(plan, source) or plan, "Source Connected to Tracking Plan", "tracking_plan"),
        (lambda: ws.add_rule(plan, "TRACK", "Order Refunded") and plan, "Tracking Plan Rule Created", "tracking_plan"),
        (
            lambda: ws.update_rule(plan, "TRACK", "Order Refunded", version=2) or plan,
            "Tracking Plan Rule Modified",
            "tracking_plan",
        ),
        (
            lambda: ws.delete_rule(plan, "TRACK", "Order Refunded") or plan,
            "Tracking Plan Rule Deleted",
            "tracking_plan",
        ),
        (lambda: ws.add("functions", resourceType="SOURCE")["id"], "Source Function Created", "function"),
        (
            lambda: ws.add("filters", destinationId=destination)["id"],
            "Destination Filter Created",
            "destination_filter",
        ),
        (lambda: ws.add("users", name="New User")["id"], "User Created", "user"),
        (lambda: ws.delete("groups", group) or group, "User Group Deleted", "user_group"),
        (lambda: ws.add_label("pii", "true", "Holds personal data") and "pii:true", "Label Created", "label"),
        (lambda: ws.add("reverse_etl_models")["id"], "Reverse ETL Model Created", "reverse_etl_model"),
    ]
    for edit, event_type, resource_type in edits:
        top = newest_event(ws)
        resource_id = edit()
        event = newest_event(ws)
        assert (event["type"], event["resourceType"]) == (event_type, resource_type)
        assert event["resourceId"] == resource_id
        assert event["timestamp"] > top["timestamp"] and int(event["id"].split("/")[1]) > int(top["id"].split("/")[1])
        assert event["actor"].startswith("public-api-token/")
        assert data(simulator, "/audit-events", **{"pagination[count]": 1})["events"] == [event]


def test_rule_edits_bump_the_plan_updated_at(simulator):
    ws = simulator.workspace
    plan = ws.ids("tracking_plans")[0]

    def served_plan() -> Dict[str, Any]:
        return next(p for p in read_all(simulator, "/tracking-plans", "trackingPlans") if p["id"] == plan)

    stamps = [served_plan()["updatedAt"]]
    ws.add_rule(plan, "TRACK", "Order Refunded")
    stamps.append(served_plan()["updatedAt"])
    ws.update_rule(plan, "TRACK", "Order Refunded", jsonSchema={"type": "object"})
    stamps.append(served_plan()["updatedAt"])
    rules = read_all(simulator, f"/tracking-plans/{plan}/rules", "rules")
    assert next(r for r in rules if r.get("key") == "Order Refunded")["jsonSchema"] == {"type": "object"}
    ws.delete_rule(plan, "TRACK", "Order Refunded")
    stamps.append(served_plan()["updatedAt"])
    ws.set_rules(plan, ws.rules(plan)[:1])
    stamps.append(served_plan()["updatedAt"])
    ws.rename("tracking_plans", plan, "Renamed plan")
    stamps.append(served_plan()["updatedAt"])
    assert stamps == sorted(set(stamps))
    assert len(read_all(simulator, f"/tracking-plans/{plan}/rules", "rules")) == 1
    with pytest.raises(KeyError):
        ws.update_rule(plan, "TRACK", "No Such Event", version=3)


# ---- edits and what goes with a delete --------------------------------------------------------


def test_added_and_renamed_objects_of_the_new_kinds_show_in_the_next_response(simulator):
    ws = simulator.workspace
    function = ws.add("functions", resourceType="INSERT_SOURCE")
    ws.rename("functions", function["id"], "Renamed function")
    assert [f["displayName"] for f in read_all(simulator, "/functions", "functions", resourceType="INSERT_SOURCE")][
        -1
    ] == "Renamed function"
    destination = ws.ids("destinations")[0]
    added = ws.add("filters", destinationId=destination, title="Drop everything")
    assert added in read_all(simulator, f"/destination/{destination}/filters", "filters")
    with pytest.raises(ValueError):
        ws.add(
            "subscriptions",
            destinationId=next(d["id"] for d in ws.listing("destinations") if not d["metadata"]["actions"]),
        )
    space = ws.ids("spaces")[0]
    trait = ws.add("computed_traits", spaceId=space)
    assert trait in read_all(simulator, f"/spaces/{space}/computed-traits", "computedTraits")
    ws.rename("warehouses", ws.ids("warehouses")[0], "Main warehouse")
    assert (
        ws.listing("warehouses")[0]["settings"]["name"] == "Main warehouse"
        and "name" not in ws.listing("warehouses")[0]
    )
    ws.add_label("pii", "true")
    ws.delete_label("environment", "prod")
    labels = data(simulator, "/labels")["labels"]
    assert {"key": "pii", "value": "true"} in labels and not any(label["value"] == "prod" for label in labels)
    assert not any(label["value"] == "prod" for s in ws.listing("sources") for label in s["labels"])


def test_deleting_a_tracking_plan_deletes_its_rules_and_source_links(simulator):
    ws = simulator.workspace
    plan = next(p for p in ws.ids("tracking_plans") if ws.tracking_plan_sources(p))
    ws.delete("tracking_plans", plan)
    assert get(simulator, f"/tracking-plans/{plan}/rules").status_code == 404
    assert get(simulator, f"/tracking-plans/{plan}/sources").status_code == 404
    assert plan not in ws.plan_rules and plan not in ws.plan_sources


def test_deleting_a_destination_deletes_its_filters_and_subscriptions(simulator):
    ws = simulator.workspace
    destination = actions_destinations(ws)[0]
    ws.add("filters", destinationId=destination)
    ws.delete("destinations", destination)
    assert all(f["destinationId"] != destination for f in ws.listing("filters"))
    assert all(s["destinationId"] != destination for s in ws.listing("subscriptions"))
    assert get(simulator, f"/destination/{destination}/filters").status_code == 404
    assert get(simulator, f"/destinations/{destination}/subscriptions").status_code == 404


def test_deleting_a_source_deletes_what_hangs_off_it(simulator):
    ws = simulator.workspace
    source = ws.listing("transformations")[0]["sourceId"]
    plan = ws.ids("tracking_plans")[0]
    ws.connect_tracking_plan(plan, source)
    ws.add("reverse_etl_models", sourceId=source)
    admin = next(r["id"] for r in ws.listing("roles") if r["name"] == "Source Admin")
    ws.add(
        "users",
        permissions=[{"roleName": "Source Admin", "roleId": admin, "resources": [{"id": source, "type": "SOURCE"}]}],
    )
    ws.delete("sources", source)
    for kind in ("destinations", "reverse_etl_models", "transformations", "filters"):
        assert all(item["sourceId"] != source for item in ws.listing(kind)), kind
    dependent_models = set(ws.ids("reverse_etl_models"))
    assert all(s.get("modelId") in dependent_models | {None} for s in ws.listing("subscriptions"))
    assert set(ws.ids("destinations")) >= {s["destinationId"] for s in ws.listing("subscriptions")}
    assert source not in [s["id"] for s in ws.tracking_plan_sources(plan)]
    granted = [
        r["id"]
        for item in ws.listing("users") + ws.listing("groups")
        for p in item["permissions"]
        for r in p["resources"]
    ]
    assert source not in granted


def test_deleting_a_role_takes_the_permissions_that_grant_it(simulator):
    ws = simulator.workspace
    role = ws.listing("users")[1]["permissions"][0]["roleId"]
    ws.delete("roles", role)
    assert all(p["roleId"] != role for item in ws.listing("users") + ws.listing("groups") for p in item["permissions"])


def test_routes_carry_the_api_rate_limits():
    assert routes.match("/warehouses/w1/syncs")[0].rate_limit == 2
    assert routes.match("/warehouses/w1/syncs")[0].rate_limit_per_path
    assert routes.match("/tracking-plans/tp1/rules")[0].rate_limit == 200
    assert routes.match("/spaces/s1/computed-traits")[0].rate_limit == 25


# ---- feature gates ----------------------------------------------------------------------------

GATED = [
    ("protocols", "/tracking-plans"),
    ("protocols", "/tracking-plans/{plan}/rules"),
    ("protocols", "/tracking-plans/{plan}/sources"),
    ("functions", "/functions?resourceType=SOURCE"),
    ("functions", "/functions/{function}"),
    ("destination_filters", "/destination/{destination}/filters"),
    ("iam", "/users"),
    ("iam", "/groups"),
    ("iam", "/roles"),
    ("engage", "/spaces/{space}/computed-traits"),
    ("reverse_etl", "/reverse-etl-models"),
    ("audit_trail", "/audit-events"),
]


@pytest.mark.parametrize("status", [403, 404])
@pytest.mark.parametrize("feature, path", GATED, ids=[f"{f}:{p}" for f, p in GATED])
def test_a_disabled_feature_answers_its_status_with_an_errors_body(simulator, feature, path, status):
    ws = simulator.workspace
    ws.disable(feature, status)
    targets = {
        "plan": ws.ids("tracking_plans")[0],
        "function": ws.ids("functions")[0],
        "destination": ws.ids("destinations")[0],
        "space": ws.ids("spaces")[0],
    }
    path, params = split(path.format(**targets))
    response = get(simulator, path, **params)
    assert response.status_code == status
    assert response.json()["errors"][0]["type"] == ("Forbidden" if status == 403 else "NotFound")
    ws.enable(feature)
    assert get(simulator, path, **params).status_code == 200
