"""The HTTP API of a real `tapio worker` (real NATS, Kafka and FalkorDB: the `embedded` stack).

One isolated dataflow runs three test patterns. Events make each fire; votes posted over HTTP
move `fb-learn`'s confidence as `agents.confidence` says (the expected value is computed by the
pure rule from the votes stored in the graph) and disable `fb-disable`; `fb-control` gets no vote
and keeps its confidence. Refused requests (bad, unauthenticated, oversized, unknown) leave no
Feedback node. Every response is decoded into the Struct the OpenAPI document names for its
status, and the routes the server registers are the document's.
"""

from __future__ import annotations

import http.client
import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from prediction_waits import settle
from scrape import scrape
from waiting import until, wait_worker_ready

from agents.confidence import LearningRule, Votes, adjusted, factor
from app.api_schema import ROUTES, openapi
from app.demo import publish_recordings
from app.stack import EmbeddedStack, free_port
from app.workers import start_worker, with_worker_port
from core.settings import Settings, isolated
from topology import insight_queries, queries
from topology.feedback import count_feedback, vote_counts
from topology.graph import open_graph
from topology.predictions import StoredPrediction

# with pytest-xdist, every test of this module runs on one worker process: they share its module-scoped worker
pytestmark = pytest.mark.xdist_group("api-flow")

TOKEN = "e2e-api-token"
BASE = datetime(2027, 3, 1, tzinfo=UTC)
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

PATTERN = """\
apiVersion: behavior.tapio.io/v1
kind: BehaviorPattern
metadata: {{name: {name}, version: "1.0.0"}}
spec:
  scope: object
  conditions:
    - type: count
      where:
        - {{field: kubernetes.reason, operator: equals, value: {reason}}}
      at_least: 2
      window: 5m
  predictions:
    - {{type: test, confidence_base: {base}, time_horizon: 5m, message: "{{count}} in {{scope}}"}}
"""
PATTERNS = {"fb-learn": ("E2eLearn", 0.6), "fb-disable": ("E2eDisable", 0.8), "fb-control": ("E2eControl", 0.7)}


def events(start: datetime, pod: str, reason: str, n: int = 2, every_s: int = 10) -> list[dict]:
    return [{"apiVersion": "v1", "kind": "Event",
             "metadata": {"name": f"{pod}.{i}", "namespace": "fb", "uid": f"fb-{pod}-{start.timestamp()}-{i}"},
             "involvedObject": {"kind": "Pod", "name": pod, "namespace": "fb", "uid": f"uid-{pod}"},
             "reason": reason, "message": f"occurrence {i}", "type": "Warning", "count": 1,
             "lastTimestamp": (start + timedelta(seconds=every_s * i)).isoformat().replace("+00:00", "Z")}
            for i in range(n)]


# --- HTTP, decoded the way the document says --------------------------------------------

_DOC_TYPES = {(r.method, r.path): r.responses for r in ROUTES}


def call(settings: Settings, method: str, path: str, template: str, *, body: bytes | None = None,
         headers: dict[str, str] | None = None, status: int | None) -> object:
    """One request; asserts the status (None: any the document lists for the route) and decodes
    the body into the Struct documented for that status."""
    conn = http.client.HTTPConnection("127.0.0.1", settings.worker.web_port, timeout=20)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    assert status is None or response.status == status, (method, path, response.status, data[:500])
    documented = _DOC_TYPES[(method, template)]
    assert response.status in documented, f"{method} {template} answered {response.status}, not documented"
    assert response.getheader("Content-Type", "").startswith("application/json")
    return msgspec.json.decode(data, type=documented[response.status])


def vote(settings: Settings, prediction_id: str, accurate: bool, **extra: object) -> object:
    body = json.dumps({"prediction_id": prediction_id, "accurate": accurate, **extra}).encode()
    return call(settings, "POST", "/api/v1/feedback", "/api/v1/feedback", body=body, headers=AUTH, status=201)


async def graph_read(settings: Settings, work):
    graph = open_graph(settings.graph)
    try:
        return await work(graph)
    finally:
        await graph.close()


async def publish(settings: Settings, folder: Path, name: str, items: list[dict]) -> None:
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"kind": "List", "items": items}))
    summary = await publish_recordings(settings, [path])
    assert summary.errors == []


# --- the worker -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def flow(embedded: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two workers of one isolated dataflow: `settings` runs every stage but predict (and the
    bridge) and takes the votes; `predictor` runs only the predict stage, so the worker that
    receives a vote is never the one that applies it."""
    patterns = tmp_path_factory.mktemp("api-patterns")
    for name, (reason, base) in PATTERNS.items():
        (patterns / f"{name}.yaml").write_text(PATTERN.format(name=name, reason=reason, base=base))
    base = isolated(with_worker_port(embedded.settings(), free_port(),
                                     data_dir=str(tmp_path_factory.mktemp("api-worker"))), "api-e2e")
    settings = msgspec.structs.replace(
        base, match=msgspec.structs.replace(base.match, patterns_dir=str(patterns), idle_advance_s=2.0,
                                       max_ahead_s=10 * 365 * 86400.0),  # BASE is in 2027: past the guard
        api=msgspec.structs.replace(base.api, token=TOKEN),
        feedback=msgspec.structs.replace(base.feedback, min_feedback=4, refresh_interval_s=1.0))
    predictor = with_worker_port(settings, free_port(), data_dir=str(tmp_path_factory.mktemp("api-predictor")))
    logs = tmp_path_factory.mktemp("api-logs")
    procs = []
    try:
        procs.append(start_worker(settings, log_dir=logs, stages=["enrich", "normalize", "match", "sink", "topology"]))
        procs.append(start_worker(predictor, log_dir=logs, name="predictor", with_bridge=False, stages=["predict"]))
        wait_worker_ready(settings.worker.web_port, procs[0])
        wait_worker_ready(predictor.worker.web_port, procs[1])
        yield {"settings": settings, "proc": procs[0], "predictor": predictor, "predictor_proc": procs[1],
               "folder": tmp_path_factory.mktemp("api-recordings")}
    finally:
        for proc in procs:
            proc.stop()


@pytest.fixture(scope="module")
async def first_round(flow: dict) -> list[StoredPrediction]:
    """fb-learn fires on a1, a2; fb-disable on d1..d4; fb-control on c1; all in namespace fb."""
    settings, t1 = flow["settings"], BASE
    items = [e for pod in ("a1", "a2") for e in events(t1, pod, "E2eLearn")]
    items += [e for pod in ("d1", "d2", "d3", "d4") for e in events(t1, pod, "E2eDisable")]
    items += events(t1, "c1", "E2eControl") + events(t1 + timedelta(minutes=15), "clock", "E2eClock", n=1)
    await publish(settings, flow["folder"], "first", items)
    found = await settle(settings, t1 - timedelta(minutes=1), t1 + timedelta(minutes=10),
                         [flow["proc"], flow["predictor_proc"]], at_least=7, through=t1 + timedelta(seconds=10))
    assert sorted(p.pattern for p in found) == ["fb-control"] + ["fb-disable"] * 4 + ["fb-learn"] * 2
    return found


# --- tests ------------------------------------------------------------------------------

def test_health_readiness_and_a_loopback_only_server(flow: dict) -> None:
    settings = flow["settings"]
    health = call(settings, "GET", "/healthz", "/healthz", status=200)
    assert health.status == "ok" and health.disabled_patterns == {}
    ready = call(settings, "GET", "/readyz", "/readyz", status=200)
    assert ready.ready and ready.failed == []
    assert {c.name: c.ok for c in ready.checks} == {"nats": True, "kafka": True, "graph": True, "patterns": True,
                                                    "progress": True}
    # the listening socket is bound to 127.0.0.1 (worker.web_host's default), nothing else
    port_hex = f"{settings.worker.web_port:04X}"
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and local.endswith(f":{port_hex}"):
                listening.add(local)
    assert listening == {f"0100007F:{port_hex}"}
    # and a non-loopback address of this machine (the one its default route uses) does not answer
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # no packet is sent: this only picks the source address
            address = probe.getsockname()[0]
        except OSError:
            address = "127.0.0.1"  # no route at all: the /proc check above is the whole proof
    if not address.startswith("127."):
        with pytest.raises(OSError):
            socket.create_connection((address, settings.worker.web_port), timeout=2).close()


async def test_feedback_round_trip_moves_the_confidence_as_the_rule_says(flow: dict,
                                                                         first_round: list[StoredPrediction]) -> None:
    settings, proc, predictor = flow["settings"], flow["proc"], flow["predictor"]
    by_pattern: dict[str, list[StoredPrediction]] = {}
    for p in first_round:
        by_pattern.setdefault(p.pattern, []).append(p)
    assert {p.confidence for p in first_round} == {0.6, 0.8, 0.7}  # no feedback yet: the bases
    learn, disable = by_pattern["fb-learn"], by_pattern["fb-disable"]
    stored = vote(settings, learn[0].id, False, rating=-1, comment="nothing crashed")
    assert (stored.prediction_id, stored.pattern, stored.accurate, stored.rating, stored.source) == (
        learn[0].id, "fb-learn", False, -1, "api")
    vote(settings, learn[1].id, False)
    vote(settings, learn[1].id, True, rating=1)
    for p in disable:
        vote(settings, p.id, False)

    counts = {(c.pattern, c.version): Votes(accurate=c.accurate, total=c.total)
              for c in await graph_read(settings, vote_counts)}
    assert counts == {("fb-learn", "1.0.0"): Votes(accurate=1, total=3),
                      ("fb-disable", "1.0.0"): Votes(accurate=0, total=4)}
    rule = LearningRule(prior_count=5, min_feedback=4, disable_below=0.3)
    expected = adjusted(0.6, factor(counts[("fb-learn", "1.0.0")], rule))
    # the voted-on worker predicts nothing: it reads the votes from the graph when asked
    read_now = call(settings, "GET", "/api/v1/patterns", "/api/v1/patterns", status=200)
    assert read_now.votes_refreshed == 0 and {r.name: r.feedback for r in read_now.patterns}["fb-learn"] == 3
    # the predict-only worker has read them once its pattern statistics (what it applies) show them
    seen: dict = {}

    def votes_applied() -> dict | None:
        listed = call(predictor, "GET", "/api/v1/patterns", "/api/v1/patterns", status=200)
        seen.update({r.name: r for r in listed.patterns})
        return dict(seen) if seen["fb-learn"].feedback == 3 and not seen["fb-disable"].enabled else None
    reports = await until(votes_applied, timeout=20, procs=[flow["predictor_proc"]],
                          what=lambda: f"the predict-only worker to apply the votes (its patterns: {seen})")
    assert reports["fb-learn"].confidence == [expected] and reports["fb-learn"].accuracy == round(1 / 3, 4)
    assert reports["fb-learn"].predictions == 2 and reports["fb-learn"].enabled
    assert "feedback.disable_below" in reports["fb-disable"].disabled_reason
    assert reports["fb-control"].factor == 1.0 and reports["fb-control"].feedback == 0
    assert "fb-disable" in call(predictor, "GET", "/healthz", "/healthz", status=200).disabled_patterns
    assert "fb-disable" in call(predictor, "GET", "/readyz", "/readyz", status=200).disabled_patterns
    assert "pattern fb-disable 1.0.0 disabled" in flow["predictor_proc"].log_tail(200_000)

    t2 = BASE + timedelta(hours=6)
    items = events(t2, "a3", "E2eLearn") + events(t2, "d5", "E2eDisable") + events(t2, "c2", "E2eControl")
    await publish(settings, flow["folder"], "second", items + events(t2 + timedelta(minutes=15), "clock", "E2eClock", n=1))
    found = await settle(settings, t2 - timedelta(minutes=1), t2 + timedelta(minutes=10),
                         [proc, flow["predictor_proc"]], at_least=2, through=t2 + timedelta(seconds=10))
    assert sorted((p.pattern, p.scope, p.confidence) for p in found) == [
        ("fb-control", "object:Pod/fb/c2", 0.7), ("fb-learn", "object:Pod/fb/a3", expected)]
    [learned] = [p for p in found if p.pattern == "fb-learn"]
    assert learned.score == round(expected * (0.5 + 50 / 100), 4)
    # fb-disable did match on d5 (the match is in the graph) but made no prediction
    matches = await graph_read(settings, lambda g: g.query(insight_queries.ALL_MATCHES))
    assert any(m["pattern"] == "fb-disable" and m["scope"] == "object:Pod/fb/d5" for m in matches)


async def test_bad_unauthenticated_and_oversized_requests_leave_nothing(flow: dict,
                                                                        first_round: list[StoredPrediction]) -> None:
    settings = flow["settings"]
    real = first_round[0].id
    before = await graph_read(settings, count_feedback)
    post = "/api/v1/feedback"

    def refused(status: int, body: bytes, headers: dict[str, str] | None = None):
        return call(settings, "POST", post, post, body=body, headers=AUTH if headers is None else headers,
                    status=status)

    good = json.dumps({"prediction_id": real, "accurate": False}).encode()
    assert "bearer" in refused(401, good, {"Content-Type": "application/json"}).error
    refused(401, good, {"Authorization": "Bearer wrong-token"})
    refused(401, good, {"Authorization": f"Basic {TOKEN}"})
    # compared exactly: nothing around the token is stripped (HTTP itself drops whitespace at the
    # ends of a header value, so "Bearer <token> " arrives as "Bearer <token>": see test_api_token)
    refused(401, good, {"Authorization": f"Bearer  {TOKEN}"})
    refused(401, good, {"Authorization": f"Bearer {TOKEN} x"})
    big = json.dumps({"prediction_id": real, "accurate": False, "comment": "x" * 70_000}).encode()
    assert "api.max_body_bytes" in refused(413, big).error
    # a chunked body has no Content-Length: refused once it passes the limit
    conn = http.client.HTTPConnection("127.0.0.1", settings.worker.web_port, timeout=20)
    try:
        conn.request("POST", post, body=iter([big[i:i + 8192] for i in range(0, len(big), 8192)]),
                     headers=AUTH, encode_chunked=True)
        response = conn.getresponse()
        assert response.status == 413, response.read()
    finally:
        conn.close()
    assert refused(400, b"{not json").field is None
    assert refused(400, json.dumps({"prediction_id": real, "accurate": False, "rating": 3}).encode()).field == "rating"
    assert refused(400, json.dumps({"accurate": False}).encode()).field == "prediction_id"
    assert refused(400, json.dumps({"prediction_id": real, "accurate": "no"}).encode()).field == "accurate"
    assert refused(400, json.dumps({"prediction_id": real, "accurate": False, "x": 1}).encode()).field == "x"
    assert refused(400, json.dumps({"prediction_id": real, "accurate": False,
                                    "comment": "y" * 5000}).encode()).field == "comment"
    missing = refused(404, json.dumps({"prediction_id": "no-such-prediction", "accurate": True}).encode())
    assert missing.field == "prediction_id" and "no-such-prediction" in missing.error
    assert await graph_read(settings, count_feedback) == before


async def test_read_api(flow: dict, first_round: list[StoredPrediction]) -> None:
    settings = flow["settings"]
    url = "/api/v1/predictions"
    everything = call(settings, "GET", f"{url}?limit=1000", url, status=200)
    assert {p.id for p in first_round} <= {p.id for p in everything.predictions}
    learn = call(settings, "GET", f"{url}?pattern=fb-learn&namespace=fb&limit=1000", url, status=200)
    assert learn.predictions and {(p.pattern, p.namespace) for p in learn.predictions} == {("fb-learn", "fb")}
    assert call(settings, "GET", f"{url}?namespace=elsewhere", url, status=200).count == 0
    since, until = (BASE - timedelta(minutes=1)).isoformat(), (BASE + timedelta(minutes=10)).isoformat()
    window = call(settings, "GET", f"{url}?since={since.replace('+', '%2B')}&until={until.replace('+', '%2B')}"
                                   f"&limit=1000", url, status=200)
    assert sorted(p.id for p in window.predictions) == sorted(p.id for p in first_round)
    assert call(settings, "GET", f"{url}?since=yesterday", url, status=400).field == "since"
    assert call(settings, "GET", f"{url}?until=2027-03-01T00:00:00", url, status=400).field == "until"  # no zone
    assert call(settings, "GET", f"{url}?limit=0", url, status=400).field == "limit"
    assert call(settings, "GET", f"{url}?colour=red", url, status=400).field == "colour"

    [one] = [p for p in first_round if p.pattern == "fb-control"]
    detail = call(settings, "GET", f"{url}/{one.id}", f"{url}/{{id}}", status=200)
    assert detail.prediction == one
    assert len(detail.evidence) == 2 and {e.name for e in detail.evidence} == {"c1"}
    assert detail.context is not None and detail.context.event.id in {e.id for e in detail.evidence}
    assert detail.narrative and detail.chain
    missing = call(settings, "GET", f"{url}/no-such-prediction", f"{url}/{{id}}", status=404)
    assert missing.field == "id"

    listed = call(settings, "GET", "/api/v1/patterns", "/api/v1/patterns", status=200)
    assert sorted(r.name for r in listed.patterns) == sorted(PATTERNS) and listed.catalog_errors == []
    assert listed.votes_refreshed == 0  # this worker predicts nothing: votes read at the request
    assert call(flow["predictor"], "GET", "/api/v1/patterns", "/api/v1/patterns", status=200).votes_refreshed > 0


async def test_metrics_count_what_reached_the_graph(flow: dict, first_round: list[StoredPrediction]) -> None:
    """GET /metrics (Prometheus text): the sink's event count is the graph's, its predictions per pattern
    are the graph's, and the windows, lag and process figures are there."""
    settings = flow["settings"]

    async def counted() -> tuple[float, int] | None:
        events = scrape(settings.worker.web_port)[("tapio_stage_events_total", (("stage", "sink"),))]
        in_graph = await graph_read(settings, lambda g: g.query(queries.COUNT_ALL_EVENTS))
        return (events, in_graph[0]["n"]) if events == in_graph[0]["n"] else None
    events, in_graph = await until(counted, timeout=60, what="the sink's count to be the graph's")
    assert events == in_graph >= 15  # the first round's events at least
    got = scrape(settings.worker.web_port)
    stored = await graph_read(settings, lambda g: g.query(insight_queries.COUNT_PREDICTIONS))
    made = {k[1][0][1]: v for k, v in got.items() if k[0] == "tapio_predictions_total"}
    assert set(made) == set(PATTERNS) and sum(made.values()) >= stored[0]["n"] >= len(first_round)
    assert ("tapio_window_states", ()) in got  # (0 by now: event time went past every window of the round)
    # (the consumer lag per partition: tests/test_dataflow.py; here the predictor's joining rebalanced the
    # group, and Faust's monitor learns a partition's end again only from records fetched after that)
    assert got[("tapio_match_latency_seconds_count", ())] > 0
    assert got[("process_resident_memory_bytes", ())] > 0
    # the predictor runs predict alone: it counts the batches it predicted, and no sink
    predictor = scrape(flow["predictor"].worker.web_port)
    assert predictor[("tapio_stage_batches_total", (("stage", "predict"),))] > 0
    assert ("tapio_stage_events_total", (("stage", "sink"),)) not in predictor


def test_the_openapi_document_is_what_the_server_does(flow: dict) -> None:
    from app.faust_app import create_app
    settings = flow["settings"]
    served = call(settings, "GET", "/api/v1/openapi.json", "/api/v1/openapi.json", status=200)
    assert served == json.loads(json.dumps(openapi()))
    documented = {(method.upper(), path) for path, ops in served["paths"].items() for method in ops}
    # the routes a worker registers (built as `tapio worker` builds it), outside the inspection
    # pages: /tapio/... and Faust's /table/... views (app.table_view serves them decoded), and the
    # HTML pages for people (/ui/..., app.ui; tests/test_ui_browser.py) and the Prometheus /metrics
    app, _ = create_app(msgspec.structs.replace(settings, worker=msgspec.structs.replace(
        settings.worker, data_dir=str(flow["folder"] / "introspect"))))
    registered = {(r.method, r.resource.canonical) for r in app.web.web_app.router.routes()
                  if not r.resource.canonical.startswith(("/tapio/", "/table/", "/ui/", "/metrics"))}
    assert registered == documented
    for method, path in sorted(documented):
        # the live server answers each with a status the document lists, and a body of its type
        # (`call` decodes it); no 404/405 from routing
        call(settings, method, path.replace("{id}", "no-such-prediction"), path,
             body=b"{}" if method == "POST" else None, status=None)
    assert served["paths"]["/api/v1/feedback"]["post"]["security"] == [{"bearer": []}]


async def test_no_token_configured_refuses_writes(settings: Settings, tmp_path: Path) -> None:
    """The same handlers in-process (aiohttp's test server) on the real graph, with api.token empty."""
    from aiohttp import ClientSession, web
    from aiohttp.test_utils import TestServer

    from app.api import Api, register_api
    from app.api_schema import Error
    graph = open_graph(msgspec.structs.replace(settings.graph, name="api-no-token"))
    app = web.Application()
    register_api(app.router, Api(settings, graph=lambda: graph))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with ClientSession() as session:
            async with session.post(server.make_url("/api/v1/feedback"), json={"prediction_id": "x", "accurate": True},
                                    headers={"Authorization": "Bearer anything"}) as response:
                assert response.status == 403
                error = msgspec.json.decode(await response.read(), type=Error)
        assert "api.token" in error.error and "TAPIO_API_TOKEN" in error.error
        assert await count_feedback(graph) == 0
    finally:
        await server.close()
        await graph.close()


async def test_not_ready_lists_what_failed_and_a_graph_down_is_a_503(settings: Settings, tmp_path: Path) -> None:
    """The same handlers in-process, pointed at ports nothing listens on and an empty pattern folder."""
    from aiohttp import ClientSession, web
    from aiohttp.test_utils import TestServer

    from agents.catalog import Catalog
    from app.api import Api, register_api
    from app.api_schema import Error, Health, Readiness
    dead = f"127.0.0.1:{free_port()}"
    broken = msgspec.structs.replace(
        settings, kafka=msgspec.structs.replace(settings.kafka, bootstrap_servers=[dead]),
        graph=msgspec.structs.replace(settings.graph, uri=f"falkordb://{dead}"),
        api=msgspec.structs.replace(settings.api, probe_timeout_s=1.0))
    graph = open_graph(broken.graph)
    (tmp_path / "empty").mkdir()
    app = web.Application()
    register_api(app.router, Api(broken, graph=lambda: graph, nats=lambda: None, catalog=Catalog(tmp_path / "empty")))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with ClientSession() as session:
            async with session.get(server.make_url("/readyz")) as response:
                assert response.status == 503
                ready = msgspec.json.decode(await response.read(), type=Readiness)
            async with session.get(server.make_url("/healthz")) as response:
                assert response.status == 200
                msgspec.json.decode(await response.read(), type=Health)
            async with session.get(server.make_url("/api/v1/predictions")) as response:
                assert response.status == 503
                down = msgspec.json.decode(await response.read(), type=Error)
        assert not ready.ready and ready.failed == ["nats", "kafka", "graph", "patterns"]
        details = {c.name: c.detail for c in ready.checks}
        assert "not connected" in details["nats"] and "no pattern loaded" in details["patterns"]
        assert "unreachable" in down.error and "graph.uri" in down.error
    finally:
        await server.close()
        await graph.close()
