"""The simulator answers like the Segment Public API (envelopes, cursors, limits, auth)."""

from typing import Union

import requests

from segment_simulator import SegmentSimulator, generate_workspace


def get(
    sim: SegmentSimulator, path: str, token: Union[str, int] = "sim-token", **params: Union[str, int]
) -> requests.Response:
    """GET `path` with query `params`. `token` is typed like them: a `**dict` argument may fill it."""
    return requests.get(sim.url + path, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_workspace_is_served_at_the_root_path(simulator):
    body = get(simulator, "/").json()
    assert body == {"data": {"workspace": simulator.workspace.info()}}


def test_lists_page_with_opaque_cursors_until_next_is_absent(simulator):
    seen, cursor, pages = [], None, 0
    while True:
        params = {"pagination[count]": 4}
        if cursor:
            params["pagination[cursor]"] = cursor
        data = get(simulator, "/sources", **params).json()["data"]
        seen += [s["id"] for s in data["sources"]]
        pages += 1
        cursor = data["pagination"].get("next")
        if cursor is None:
            break
    assert pages == 2
    assert seen == simulator.workspace.ids("sources")
    assert data["pagination"]["totalEntries"] == 6


def test_page_size_defaults_to_200_and_accepts_the_dotted_form():
    with SegmentSimulator(generate_workspace("medium")) as sim:
        assert len(get(sim, "/sources").json()["data"]["sources"]) == 200
        assert len(get(sim, "/sources", **{"pagination.count": 1000}).json()["data"]["sources"]) == 1000


def test_bad_count_or_cursor_is_a_422_with_an_errors_body(simulator):
    for params in (
        {"pagination[count]": 0},
        {"pagination[count]": 1001},
        {"pagination[count]": "x"},
        {"pagination[cursor]": "%%%"},
    ):
        response = get(simulator, "/sources", **params)
        assert response.status_code == 422, params
        assert response.json()["errors"][0]["type"] == "ValidationError"


def test_audiences_allow_at_most_200_per_page(simulator):
    space = simulator.workspace.ids("spaces")[0]
    assert get(simulator, f"/spaces/{space}/audiences", **{"pagination[count]": 200}).status_code == 200
    assert get(simulator, f"/spaces/{space}/audiences", **{"pagination[count]": 201}).status_code == 422


def test_a_wrong_or_missing_token_is_a_401_with_an_errors_body(simulator):
    assert get(simulator, "/sources", token="wrong").status_code == 401
    response = requests.get(simulator.url + "/sources", timeout=10)
    assert response.status_code == 401
    assert response.json()["errors"][0]["type"] == "Unauthorized"


def test_each_token_sees_its_own_workspace():
    a, b = generate_workspace("small", slug="a"), generate_workspace("small", slug="b")
    with SegmentSimulator({"tok-a": a, "tok-b": b}) as sim:
        assert get(sim, "/", token="tok-a").json()["data"]["workspace"]["id"] == a.id
        assert get(sim, "/", token="tok-b").json()["data"]["workspace"]["id"] == b.id


def test_generation_is_deterministic():
    one, two = generate_workspace("small", seed=3), generate_workspace("small", seed=3)
    assert one.listing("destinations") == two.listing("destinations")
    assert generate_workspace("small", seed=4).id != one.id


def test_edits_show_in_the_next_response(simulator):
    ws = simulator.workspace
    source = ws.ids("sources")[0]
    ws.rename("sources", source, "Renamed")
    added = ws.add("sources", name="Brand new")
    ws.delete("sources", ws.ids("sources")[1])
    listed = {s["id"]: s["name"] for s in get(simulator, "/sources").json()["data"]["sources"]}
    assert listed[source] == "Renamed"
    assert listed[added["id"]] == "Brand new"
    assert len(listed) == 6


def test_deleting_a_source_deletes_its_destinations_and_warehouse_links(simulator):
    ws = simulator.workspace
    warehouse = ws.ids("warehouses")[0]
    source = ws.warehouse_sources[warehouse][0]
    ws.delete("sources", source)
    assert all(d["sourceId"] != source for d in ws.listing("destinations"))
    connected = get(simulator, f"/warehouses/{warehouse}/connected-sources").json()["data"]["sources"]
    assert source not in [s["id"] for s in connected]


def test_an_unknown_parent_is_a_404(simulator):
    assert get(simulator, "/warehouses/nope/connected-sources").status_code == 404


def test_requests_are_logged_with_the_page_size_asked_for(simulator):
    get(simulator, "/destinations", **{"pagination[count]": 1000})
    assert [(r.path, r.page_size, r.status) for r in simulator.requests] == [("/destinations", 1000, 200)]
