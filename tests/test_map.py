"""The workspace map: the loaded workspace as one HTML page, checked in a real headless browser.

The browser is Debian's chromium driven by Selenium through /usr/bin/chromedriver (`.ci/run`
installs both with apt). Nothing is downloaded, and the page is opened from a file with the
network disabled, so it shows that the map needs none.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, Set, Tuple

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

from segment_simulator import SimulatedWorkspace, demo_workspace, generate_workspace
from segment_source.workspace_map import read_map, render_html
from tests.support import load
from tests.test_pipeline_script import REPO, run_script

SCREENSHOT = REPO / "docs" / "workspace-map.png"
"""The README's picture: written by the browser test only with UPDATE_SCREENSHOT=1, so that running
the tests leaves the checkout as it was."""
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    with tempfile.TemporaryDirectory() as profile:
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def map_of(ws: SimulatedWorkspace) -> Dict[str, Dict[str, Any]]:
    """What the map must show for a simulated workspace: kind -> id -> item, from the simulator's own objects."""
    plan_of = {s["id"]: plan for plan in ws.ids("tracking_plans") for s in ws.tracking_plan_sources(plan)}
    return {
        "sources": {
            s["id"]: {
                "id": s["id"],
                "name": s["name"],
                "type": s["metadata"]["name"],
                "enabled": s["enabled"],
                "workspace": ws.id,
                "plan": plan_of.get(s["id"]),
                "labels": sorted(f"{label['key']}:{label['value']}" for label in s["labels"]),
            }
            for s in ws.listing("sources")
        },
        "destinations": {
            d["id"]: {
                "id": d["id"],
                "name": d["name"],
                "type": d["metadata"]["name"],
                "enabled": d["enabled"],
                "source": d["sourceId"],
                "filters": len(ws.filters_of(d["id"])),
                "mappings": len(ws.subscriptions_of(d["id"])) if d["metadata"].get("actions") else 0,
            }
            for d in ws.listing("destinations")
        },
        "warehouses": {
            w["id"]: {
                "id": w["id"],
                "name": w["settings"]["name"],
                "type": w["metadata"]["name"],
                "enabled": w["enabled"],
                "sources": sorted(ws.warehouse_sources[w["id"]]),
            }
            for w in ws.listing("warehouses")
        },
        "plans": {p["id"]: {"id": p["id"], "name": p["name"]} for p in ws.listing("tracking_plans")},
    }


def by_id(data: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {
        kind: {item["id"]: item for item in data[kind]} for kind in ("sources", "destinations", "warehouses", "plans")
    }


def open_map(browser: WebDriver, data: Dict[str, Any], path: Path) -> None:
    path.write_text(render_html(data), encoding="utf-8")
    browser.get(path.as_uri())


def edges(browser: WebDriver, kind: str, disabled: bool = False) -> Set[Tuple[Any, Any]]:
    selector = f".edge.{kind}" + (".disabled" if disabled else "")
    found = browser.find_elements(By.CSS_SELECTOR, selector)
    return {(e.get_attribute("data-from"), e.get_attribute("data-to")) for e in found if e.is_displayed()}


def shown_sources(browser: WebDriver) -> Set[Any]:
    return {
        e.get_attribute("data-id") for e in browser.find_elements(By.CSS_SELECTOR, ".node.source") if e.is_displayed()
    }


def search(browser: WebDriver, text: str) -> None:
    box = browser.find_element(By.ID, "search")
    box.clear()
    box.send_keys(text)


def test_the_map_reads_every_source_destination_warehouse_and_plan_of_the_loaded_dataset(pipeline, simulator):
    load(pipeline, simulator, "workspace", "sources", "destinations", "warehouses", "warehouse_sources",
         "tracking_plans", "tracking_plan_sources", "destination_filters", "destination_subscriptions")  # fmt: skip
    assert by_id(read_map(pipeline)) == map_of(simulator.workspace)


def test_tables_that_were_not_loaded_draw_as_empty(pipeline, simulator):
    load(pipeline, simulator, "sources")
    data = read_map(pipeline)
    # without tracking_plan_sources no source shows a plan
    sources = map_of(simulator.workspace)["sources"]
    assert by_id(data)["sources"] == {s: dict(item, plan=None) for s, item in sources.items()}
    assert data["destinations"] == data["warehouses"] == data["plans"] == data["workspaces"] == []


def test_the_demo_map_shows_the_workspace_in_a_real_browser_and_search_narrows_it(tmp_path, browser):
    loaded = run_script(tmp_path, "--demo")
    assert loaded.returncode == 0, loaded.stderr
    page = tmp_path / "map.html"
    drawn = subprocess.run(
        [sys.executable, str(REPO / "pipelines" / "segment_map.py"), "--demo", "--output", str(page)],
        cwd=tmp_path,
        env={"DLT_DATA_DIR": str(tmp_path / "dlt"), "RUNTIME__DLTHUB_TELEMETRY": "false", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert drawn.returncode == 0, drawn.stderr
    assert "6 sources, 10 destinations, 2 warehouses" in drawn.stdout
    html = page.read_text()
    assert "<script src" not in html and "<link" not in html and "@import" not in html, "the page must need no network"

    expected = map_of(demo_workspace())  # the demo is deterministic: the same ids as the one loaded
    browser.get(page.as_uri())
    assert shown_sources(browser) == set(expected["sources"])
    assert edges(browser, "destination") == {(d["source"], d["id"]) for d in expected["destinations"].values()}
    assert edges(browser, "destination", disabled=True) == {
        (d["source"], d["id"]) for d in expected["destinations"].values() if not d["enabled"]
    }
    assert edges(browser, "warehouse") == {(s, w["id"]) for w in expected["warehouses"].values() for s in w["sources"]}
    plans = browser.find_elements(By.CSS_SELECTOR, ".node.source .badge.plan")
    assert {
        (p.find_element(By.XPATH, "../..").get_attribute("data-id"), p.get_attribute("data-id")) for p in plans
    } == {(s["id"], s["plan"]) for s in expected["sources"].values() if s["plan"]}
    filtered = {
        e.get_attribute("data-to"): e.find_element(By.CSS_SELECTOR, ".badge.filter").text
        for e in browser.find_elements(By.CSS_SELECTOR, ".edge.destination")
        if e.find_elements(By.CSS_SELECTOR, ".badge.filter")
    }
    assert filtered == {
        d["id"]: f"{d['filters']} filter" + ("s" if d["filters"] > 1 else "")
        for d in expected["destinations"].values()
        if d["filters"]
    }
    assert len(browser.find_elements(By.CSS_SELECTOR, ".edge.destination .badge.actions")) == sum(
        1 for d in expected["destinations"].values() if d["mappings"]
    )
    assert browser.get_log("browser") == []
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        browser.save_screenshot(str(SCREENSHOT))

    source = next(s for s in expected["sources"].values() if s["name"] == "iOS 6")
    search(browser, "ios 6")
    assert shown_sources(browser) == {source["id"]}
    destination = next(d for d in expected["destinations"].values() if d["source"] != source["id"])
    search(browser, destination["name"])
    assert destination["source"] in shown_sources(browser) and source["id"] not in shown_sources(browser)
    search(browser, "no such thing")
    assert shown_sources(browser) == set()
    assert browser.find_element(By.ID, "empty").is_displayed()


def test_a_workspace_of_a_thousand_sources_opens_as_a_few_closed_groups(tmp_path, browser):
    ws = generate_workspace("medium")
    expected = map_of(ws)
    data = {
        "generated_at": "now",
        "dataset": "segment_data",
        "workspaces": [{"id": ws.id, "name": ws.name}],
        **{kind: list(items.values()) for kind, items in expected.items()},
    }
    open_map(browser, data, tmp_path / "medium.html")
    groups = browser.find_elements(By.CSS_SELECTOR, "details.group")
    assert len(expected["sources"]) > 1000 and 1 < len(groups) <= 30
    assert not any(g.get_attribute("open") for g in groups)
    assert shown_sources(browser) == set()  # closed: no source drawn until a group opens
    groups[0].find_element(By.TAG_NAME, "summary").click()
    count = int(groups[0].find_element(By.CSS_SELECTOR, "summary .n").text.split()[0])
    # a group is drawn on its `toggle` event, which the browser fires after the click returns
    assert len(WebDriverWait(browser, 10).until(shown_sources)) == count

    source = next(iter(expected["sources"].values()))
    search(browser, source["id"])
    assert shown_sources(browser) == {source["id"]}
    assert edges(browser, "destination") == {
        (source["id"], d["id"]) for d in expected["destinations"].values() if d["source"] == source["id"]
    }
