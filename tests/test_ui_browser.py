"""The worker's pages (`/ui/`) in a real browser (Debian's headless Chromium, driven by Selenium), served by a
real `tapio worker` over the graph the bundled incident left (it went through an isolated dataflow on the
real servers first): the list with its filters, an incident page read from the graph, a vote that reaches
the graph, the pattern catalog. Each page: no console error, no request outside the worker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest
from nodesources.browser import browser, unavailable, wait_drawn
from scrape import get
from selenium.common.exceptions import StaleElementReferenceException
from waiting import until_sync, wait_worker_ready

from app.analyze import analyze_dataflow
from app.stack import EmbeddedStack, free_port
from app.workers import start_worker, with_worker_port
from core.settings import Settings, isolated
from topology.feedback import feedback_on
from topology.graph import open_graph
from topology.predictions import list_predictions

pytestmark = [pytest.mark.skipif(bool(unavailable()), reason=unavailable() or "the browser is here"),
              pytest.mark.xdist_group("ui-flow")]

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "patterns" / "scenarios" / "configmap-crashloop"
TOKEN = "ui-e2e-token"


@pytest.fixture(scope="module")
async def served(embedded: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A worker with an API token, serving the graph the bundled incident's isolated dataflow wrote."""
    run = await analyze_dataflow(embedded.settings(), [str(BUNDLED)])
    base = with_worker_port(isolated(embedded.settings(), "ui-e2e"), free_port(),
                            data_dir=str(tmp_path_factory.mktemp("ui-worker")))
    settings = msgspec.structs.replace(base, graph=msgspec.structs.replace(base.graph, name=run.graph),
                                       api=msgspec.structs.replace(base.api, token=TOKEN),
                                       # the votes as the worker applies them, read again every second
                                       feedback=msgspec.structs.replace(base.feedback, refresh_interval_s=1.0))
    proc = start_worker(settings, log_dir=tmp_path_factory.mktemp("ui-logs"))
    try:
        wait_worker_ready(settings.worker.web_port, proc)
        yield settings
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def chrome() -> Any:
    driver = browser()
    try:
        yield driver
    finally:
        driver.quit()


def _base(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.worker.web_port}"


def _visit(driver: Any, url: str) -> None:
    driver.get_log("performance")
    driver.get_log("browser")
    driver.get(url)


def _outside(driver: Any, settings: Settings) -> set[str]:
    """The requests the page made anywhere but the worker that served it."""
    sent = (json.loads(entry["message"])["message"] for entry in driver.get_log("performance"))
    urls = {m["params"]["request"]["url"] for m in sent if m["method"] == "Network.requestWillBeSent"}
    return {u for u in urls if urlsplit(u).netloc != f"127.0.0.1:{settings.worker.web_port}"}


def _problems(driver: Any) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]


def _rows(driver: Any) -> list[str]:
    return [tr.get_attribute("data-pattern") for tr in driver.find_elements("css selector", "#predictions tbody tr")]


def _rows_after(driver: Any, query: str) -> list[str] | None:
    """The rows once a click's page load with `query` in its URL is complete (None before: a row read
    while the old page goes is stale, or the old page's)."""
    if query not in driver.current_url or driver.execute_script("return document.readyState") != "complete":
        return None
    return _rows(driver) or None


async def test_the_list_shows_predictions_and_diagnoses_best_first_and_filters_them(served: Settings, chrome: Any,
                                                                                    tmp_path: Path) -> None:
    graph = open_graph(served.graph)
    try:
        stored = await list_predictions(graph, limit=50)
    finally:
        await graph.close()
    _visit(chrome, _base(served) + "/ui/")
    assert _rows(chrome) == [p.pattern for p in stored]  # the API's order: best score first
    assert "config-drift" in _rows(chrome) and any(r.startswith("diagnosis/") for r in _rows(chrome))
    chrome.save_screenshot(str(tmp_path / "list.png"))
    assert _problems(chrome) == [] and _outside(chrome, served) == set()

    chrome.find_element("css selector", "form.filters select[name=show] option[value=diagnoses]").click()
    chrome.find_element("css selector", "form.filters button[type=submit]").click()
    shown = until_sync(lambda: _rows_after(chrome, "show=diagnoses"), timeout=30, what="the filtered list",
                       ignoring=(StaleElementReferenceException,))
    assert all(r.startswith("diagnosis/") for r in shown), shown
    _visit(chrome, _base(served) + "/ui/?pattern=config-drift")
    assert _rows(chrome) == ["config-drift"]
    _visit(chrome, _base(served) + "/ui/?since=yesterday")
    assert "bad filter" in chrome.find_element("id", "problem").text and "since" in chrome.find_element(
        "id", "problem").text
    assert _rows(chrome) == []


async def test_an_incident_page_from_the_graph_and_a_vote_that_reaches_it(served: Settings, chrome: Any,
                                                                         tmp_path: Path) -> None:
    _visit(chrome, _base(served) + "/ui/?pattern=config-drift")
    chrome.find_element("css selector", "#predictions tbody tr a").click()
    wait_drawn(chrome, 1)
    assert chrome.find_element("id", "verdict").text.startswith("config-drift in configmap:ConfigMap/shop/nginx-config")
    roles = dict(chrome.execute_script("return tapio.graphs[1].nodes().map(n => [n.id(), n.data('role')])"))
    assert roles["ConfigMap/shop/nginx-config"] == "root"
    assert any(r == "impacted" for r in roles.values())
    assert chrome.find_elements("css selector", "#timeline-1 g.lane")
    panel = chrome.find_element("css selector", ".vote")
    prediction_id = panel.get_attribute("data-prediction")
    assert "no vote yet" in panel.text

    # no token pasted: the page says what to do, nothing is sent
    panel.find_element("css selector", "button[data-accurate=true]").click()
    assert "paste the worker's API token" in panel.find_element("css selector", ".vote-status").text
    # a wrong token: the API's refusal is shown
    chrome.find_element("id", "tapio-token").send_keys("not-the-token")
    panel.find_element("css selector", "button[data-accurate=true]").click()
    status = panel.find_element("css selector", ".vote-status")
    until_sync(lambda: "refused (401)" in status.text, timeout=20, what="the refusal of a wrong token")
    token = chrome.find_element("id", "tapio-token")
    token.clear()
    token.send_keys(TOKEN)
    panel.find_element("css selector", ".comment").send_keys("it was the proxy_pass typo")
    panel.find_element("css selector", "button[data-accurate=true]").click()
    until_sync(lambda: status.text.startswith("recorded: accurate"), timeout=20, what="the vote to be recorded")
    chrome.save_screenshot(str(tmp_path / "incident.png"))

    graph = open_graph(served.graph)
    try:
        votes = await feedback_on(graph, prediction_id)
    finally:
        await graph.close()
    assert [(v.accurate, v.comment, v.source) for v in votes] == [(True, "it was the proxy_pass typo", "api")]
    # the page shows it when read again
    chrome.refresh()
    assert "1 vote(s): 1 accurate" in chrome.find_element("css selector", ".vote").text
    assert [e for e in _problems(chrome) if "401" not in e["message"]] == []  # the refused vote is logged
    assert _outside(chrome, served) == set()


def test_the_pattern_catalog_shows_confidence_votes_and_accuracy(served: Settings, chrome: Any,
                                                                 tmp_path: Path) -> None:
    def drift() -> list[str]:
        _visit(chrome, _base(served) + "/ui/patterns")
        return [td.text for td in chrome.find_element("css selector", "#patterns tr[data-pattern=config-drift]")
                .find_elements("css selector", "td")]
    # the vote of the test before (1 vote, accurate), once the worker read the votes again (each second)
    cells = until_sync(lambda: (c := drift())[5:8] == ["1", "1", "100%"] and c, timeout=30,
                       what="the pattern page to count the vote")
    assert cells[0] == "config-drift" and cells[2] == "enabled" and cells[4] != "0"
    rows = {tr.get_attribute("data-pattern") for tr in chrome.find_elements("css selector", "#patterns tbody tr")}
    assert {p.stem for p in (ROOT / "patterns").glob("*.yaml")} <= rows
    chrome.save_screenshot(str(tmp_path / "patterns.png"))
    assert _problems(chrome) == [] and _outside(chrome, served) == set()


def test_an_unknown_prediction_is_a_404_page_that_says_where_to_look(served: Settings, chrome: Any) -> None:
    status, content_type, page = get(served.worker.web_port, "/ui/predictions/no-such-id")
    body = page.decode()
    assert status == 404 and content_type.startswith("text/html")
    assert "no prediction with id &#39;no-such-id&#39;" in body and "/ui/" in body
