"""The incident pages in a real browser (Debian's headless Chromium, driven by Selenium): the report
`tapio analyze --html` writes for the bundled incident, and the page `tapio explain --html` writes from a
live graph. Each test asserts the DOM and the drawn graph, no console error and no request beyond the
page itself, and saves a screenshot beside its output (the test's tmp_path)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from nodesources.browser import browser, unavailable, wait_drawn

from app.analyze import analyze_dataflow
from app.stack import EmbeddedStack
from core.settings import to_yaml

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "patterns" / "scenarios" / "configmap-crashloop"
EDITED = "ConfigMap/shop/nginx-config"
FIRST_POD = "Pod/shop/nginx-7c9d8f6b5d-4xk2p"

pytestmark = pytest.mark.skipif(bool(unavailable()), reason=unavailable() or "the browser is here")


@pytest.fixture(scope="module")
def chrome() -> Iterator[Any]:
    driver = browser()
    try:
        yield driver
    finally:
        driver.quit()


def _open(driver: Any, page: Path) -> None:
    driver.get_log("performance")  # what earlier pages requested is not this page's
    driver.get_log("browser")
    driver.get(page.as_uri())
    wait_drawn(driver, 1)


def _requests(driver: Any) -> set[str]:
    sent = (json.loads(entry["message"])["message"] for entry in driver.get_log("performance"))
    return {m["params"]["request"]["url"] for m in sent if m["method"] == "Network.requestWillBeSent"}


def _console_problems(driver: Any) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]


def _graph(driver: Any, rank: int) -> tuple[dict[str, str], list[tuple[str, str, str]], dict[str, float]]:
    """The drawn graph of one root cause: role per node, (type, label, id) per edge, x per node."""
    nodes = driver.execute_script(f"return tapio.graphs[{rank}].nodes().map(n => [n.id(), n.data('role')])")
    edges = driver.execute_script(f"return tapio.graphs[{rank}].edges().map(e => [e.data('type'), e.data('label'), "
                                  "e.id()])")
    xs = driver.execute_script(f"return tapio.graphs[{rank}].nodes().map(n => [n.id(), n.position('x')])")
    return dict(nodes), [tuple(e) for e in edges], dict(xs)


def test_the_report_of_the_bundled_incident_opens_offline_with_its_graph_timeline_and_evidence(
        chrome: Any, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    # the path as a user in the checkout types it (the README's picture is this test's screenshot)
    done = subprocess.run([sys.executable, "-m", "app.cli", "analyze", str(BUNDLED.relative_to(ROOT)), "--html",
                           str(page)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert f"wrote {page}" in done.stderr
    _open(chrome, page)

    verdict = chrome.find_element("id", "verdict").text
    assert verdict.startswith("most likely: config-drift in configmap:ConfigMap/shop/nginx-config")
    roles, edges, xs = _graph(chrome, 1)
    assert roles[EDITED] == "root" and roles[FIRST_POD] == "impacted"
    assert roles["Deployment/shop/nginx"] == "impacted" and roles["Node/node-a"] == "context"
    ids = {e[2] for e in edges}
    assert f"CAUSED:{EDITED}->{FIRST_POD}" in ids
    assert "OWNS:Deployment/shop/nginx->ReplicaSet/shop/nginx-7c9d8f6b5d" in ids
    assert f"RUNS_ON:{FIRST_POD}->Node/node-a" in ids
    assert ("CAUSED", "CAUSED +40s") in {(e[0], e[1]) for e in edges}
    # laid out in layers from the root cause: the edited ConfigMap left of every pod
    assert all(xs[EDITED] < x for node, x in xs.items() if node.startswith("Pod/"))

    lanes = [g.get_attribute("data-resource") for g in chrome.find_elements("css selector", "#timeline-1 g.lane")]
    assert lanes[0] == EDITED and FIRST_POD in lanes
    assert len(chrome.find_elements("css selector", "#timeline-1 [data-role=root]")) == 1
    assert len(chrome.find_elements("css selector", "#timeline-1 [data-role=predicted]")) == 1
    sources = [td.text for td in chrome.find_elements("css selector", "#cause-1 table.evidence td.source")]
    assert any(s.endswith("configmap-watch.json#line 35 (watch event 2)") for s in sources)
    assert "Revert the edit" in chrome.find_element("css selector", "#cause-1 .todo").text

    # the next root cause is folded; opening it draws its graph
    assert not chrome.execute_script("return !!tapio.graphs[2]")
    chrome.find_element("css selector", "#cause-2 > summary").click()
    wait_drawn(chrome, 2)
    roles2, _, _ = _graph(chrome, 2)
    assert "root" in roles2.values()

    chrome.save_screenshot(str(tmp_path / "report.png"))
    assert _console_problems(chrome) == []
    assert _requests(chrome) == {page.as_uri()}


def test_a_report_with_no_incident_says_so_and_draws_nothing(chrome: Any, tmp_path: Path) -> None:
    healthy = ROOT / "patterns" / "scenarios" / "diagnosis" / "containers" / "oom-killed-healthy"
    page = tmp_path / "healthy.html"
    done = subprocess.run([sys.executable, "-m", "app.cli", "analyze", str(healthy), "--html", str(page)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    chrome.get_log("browser")
    chrome.get(page.as_uri())
    assert chrome.find_element("id", "verdict").text.startswith("no incident found")
    assert chrome.find_elements("css selector", "details.cause") == []
    assert _console_problems(chrome) == []


async def test_explain_html_draws_a_pod_of_the_live_graph_back_to_the_configmap_edit(
        chrome: Any, embedded: EmbeddedStack, tmp_path: Path) -> None:
    """The bundled incident through an isolated dataflow on the real servers, then `tapio explain --html` of
    one of its pods on that graph: the same picture as the report's, from the graph's own edges."""
    settings = embedded.settings()
    run = await analyze_dataflow(settings, [str(BUNDLED)])
    config = tmp_path / "tapio.yaml"
    config.write_text(to_yaml(msgspec.structs.replace(settings, graph=msgspec.structs.replace(
        settings.graph, name=run.graph))))
    page = tmp_path / "pod.html"
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "app.cli", "--config", str(config), "explain",
                         "pod/" + FIRST_POD.rsplit("/", 1)[1], "-n", "shop", "--html", str(page)],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "probable root cause:" in done.stdout  # the terminal tree as without --html
    _open(chrome, page)
    assert chrome.find_element("id", "verdict").text.startswith(f"{FIRST_POD}: most likely config-drift")
    roles, edges, _ = _graph(chrome, 1)
    assert roles[EDITED] == "root" and roles[FIRST_POD] == "impacted"
    ids = {e[2] for e in edges}
    assert f"CAUSED:{EDITED}->{FIRST_POD}" in ids
    # the topology read from the graph: the pod's owners up to the Deployment, its node, what it mounts
    assert {f"OWNS:ReplicaSet/shop/nginx-7c9d8f6b5d->{FIRST_POD}", "OWNS:Deployment/shop/nginx->ReplicaSet/shop/"
            "nginx-7c9d8f6b5d", f"RUNS_ON:{FIRST_POD}->Node/node-a", f"MOUNTS:{FIRST_POD}->{EDITED}"} <= ids
    assert len(chrome.find_elements("css selector", "#timeline-1 g.lane")) >= 2
    chrome.save_screenshot(str(tmp_path / "explain.png"))
    assert _console_problems(chrome) == []
    assert _requests(chrome) == {page.as_uri()}
