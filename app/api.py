"""The HTTP API on the worker's web server: thin handlers over the graph, the catalog and the learning loop.

Fed by: HTTP requests to worker.web_host:web_port (127.0.0.1 unless configured otherwise); the
routes, bodies and responses are declared in `app.api_schema` (`ROUTES`), and `register_api`
adds exactly those to Faust's aiohttp router. Feeds: the graph (feedback votes only) and JSON
responses.

    GET  /healthz                    the process is alive (and which patterns feedback disabled)
    GET  /readyz                     200 when NATS, Kafka and the graph answer, patterns are loaded and
                                     no part with work waiting has stalled (app.progress)
    GET  /api/v1/predictions         ?namespace=&pattern=&since=&until=&limit=
    GET  /api/v1/predictions/{id}    the prediction, its evidence, chain, context, narrative, feedback
    GET  /api/v1/patterns            statistics per pattern (agents.confidence.PatternReport)
    POST /api/v1/feedback            a vote (FeedbackRequest); needs `Authorization: Bearer <api.token>`
    GET  /api/v1/openapi.json        the OpenAPI document of the above

The pages for people (`/ui/...`) are `app.ui`'s, under the same rules: reading is open, a vote is this
API's POST /api/v1/feedback.

A write is checked in this order, and a refused one writes nothing: no api.token configured
(403, naming the setting), missing or wrong bearer token (401: `bearer_token_matches`, exactly and in
constant time), body larger than api.max_body_bytes (413: a Content-Length over it is
refused before reading, a chunked body as soon as it passes the limit), a body msgspec refuses
(400, naming the field), an unknown prediction (404). A graph that cannot be reached is a 503.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from aiohttp import web

from agents.catalog import Catalog
from app.api_schema import (
    ROUTES,
    Check,
    Error,
    FeedbackRequest,
    Health,
    PatternList,
    PredictionDetail,
    PredictionList,
    PredictionsQuery,
    Readiness,
    field_of,
    openapi,
)
from app.learning import Learning, pattern_statistics, rule_of
from app.progress import ProgressWatch, Sample
from core.ports import GraphError
from core.settings import Settings
from topology import feedback_queries
from topology.context import ContextError, reveal_context
from topology.feedback import UnknownPrediction, feedback_on, record_feedback
from topology.graph import GraphStore
from topology.narrative import render_tree
from topology.predictions import get_prediction, list_predictions, match_story

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.Response]]
_ENCODER = msgspec.json.Encoder()
_READ_CHUNK = 16 * 1024



def bearer_token_matches(authorization: str, token: str) -> bool:
    """Whether an Authorization header value is `Bearer <token>`, the token compared exactly (no
    stripping: one space after the scheme, not a character more or less) and in constant time.
    The scheme is case-insensitive (RFC 9110). An empty `token` matches nothing."""
    scheme, sep, given = authorization.partition(" ")
    if not token or not sep or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode("utf-8", "surrogateescape"))

class Refused(Exception):
    """A request the API refuses: status and the Error body."""

    def __init__(self, status: int, error: str, field: str | None = None) -> None:
        super().__init__(error)
        self.status, self.body = status, Error(error=error, field=field)


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_ENCODER.encode(value), status=status, content_type="application/json",
                        headers=headers)


class Api:
    """The handlers; `graph` and `nats` return the worker's connections (None while it starts)."""

    def __init__(self, settings: Settings, *, graph: Callable[[], GraphStore | None],
                 nats: Callable[[], Any] = lambda: None, catalog: Catalog | None = None,
                 learning: Learning | None = None,
                 progress: Callable[[], Awaitable[Mapping[str, Sample]]] | None = None) -> None:
        self.settings = settings
        self._graph, self._nats = graph, nats
        self._progress = progress  # what the worker's parts have taken and have waiting (app.progress)
        self._watch = ProgressWatch(settings.api.stall_after_s)
        self.catalog, self.learning = catalog, learning
        self._own_catalog = False
        self.rule = rule_of(settings.feedback)
        self._document = _ENCODER.encode(openapi())

    # --- helpers ------------------------------------------------------------------------

    def graph(self) -> GraphStore:
        graph = self._graph()
        if graph is None:
            raise Refused(503, "the worker is starting: its graph connection is not open yet")
        return graph

    def patterns(self) -> Catalog:
        if self.catalog is None:  # a worker without the match and predict stages reads the folder itself
            self.catalog, self._own_catalog = Catalog(self.settings.match.patterns_dir), True
        elif self._own_catalog:
            self.catalog.poll()  # (a worker's own catalog is polled by its reload timer)
        return self.catalog

    def _authorize(self, request: web.Request) -> None:
        token = self.settings.api.token
        if not token:
            raise Refused(403, "writes are off on this worker: set api.token in the configuration "
                               "(or TAPIO_API_TOKEN) and send it as `Authorization: Bearer <token>`")
        if not bearer_token_matches(request.headers.get("Authorization", ""), token):
            raise Refused(401, "missing or wrong bearer token (Authorization: Bearer <api.token>)")

    async def _body(self, request: web.Request) -> bytes:
        limit = self.settings.api.max_body_bytes
        too_large = Refused(413, f"the body is larger than {limit} bytes (api.max_body_bytes)")
        if request.content_length is not None and request.content_length > limit:
            raise too_large
        chunks, size = [], 0
        while True:
            chunk = await request.content.read(_READ_CHUNK)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)

    # --- handlers -----------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        catalog = self.catalog
        return _json(Health(status="ok", disabled_patterns=self.learning.disabled() if self.learning else {},
                            pattern_errors=catalog.errors if catalog else []))

    async def _probe(self, name: str, probe: Callable[[], Awaitable[str]]) -> Check:
        try:
            detail = await asyncio.wait_for(probe(), self.settings.api.probe_timeout_s)
            return Check(name=name, ok=True, detail=detail)  # type: ignore[arg-type]
        except TimeoutError:
            return Check(name=name, ok=False, detail=f"no answer within {self.settings.api.probe_timeout_s}s "  # type: ignore[arg-type]
                                                     f"(api.probe_timeout_s)")
        except Exception as e:  # any failure is a failed check, reported as such
            return Check(name=name, ok=False, detail=f"{type(e).__name__}: {e}")  # type: ignore[arg-type]

    async def _nats_probe(self) -> str:
        nc = self._nats()
        if nc is None or not nc.is_connected:
            raise ConnectionError(f"not connected to {', '.join(self.settings.nats.urls)}")
        await nc.flush()
        return f"connected to {nc.connected_url.netloc}"

    async def _kafka_probe(self) -> str:
        from aiokafka import AIOKafkaClient
        client = AIOKafkaClient(bootstrap_servers=self.settings.kafka.bootstrap_servers)
        try:
            await client.bootstrap()
            return f"{len(client.cluster.brokers())} broker(s) answered"
        finally:
            await client.close()

    async def _graph_probe(self) -> str:
        await self.graph().query(feedback_queries.PING)
        return f"{self.settings.graph.uri} answered"

    async def _patterns_probe(self) -> str:
        catalog = self.catalog
        if catalog is None:
            return "this worker runs no match or predict stage"
        if not catalog.patterns:
            raise LookupError(f"no pattern loaded from {catalog.directory}")
        if self.learning is not None and not self.learning.loaded.is_set():
            raise LookupError("the feedback statistics have not been read from the graph yet")
        return f"{len(catalog.patterns)} pattern(s) loaded"

    async def _progress_probe(self) -> str:
        if self._progress is None:
            return "this process runs no stage"
        return self._watch.check(await self._progress())

    async def readyz(self, request: web.Request) -> web.Response:
        checks = list(await asyncio.gather(self._probe("nats", self._nats_probe),
                                           self._probe("kafka", self._kafka_probe),
                                           self._probe("graph", self._graph_probe),
                                           self._probe("patterns", self._patterns_probe),
                                           self._probe("progress", self._progress_probe)))
        failed = [c.name for c in checks if not c.ok]
        body = Readiness(ready=not failed, checks=checks, failed=failed,
                         disabled_patterns=self.learning.disabled() if self.learning else {},
                         pattern_errors=self.catalog.errors if self.catalog else [])
        return _json(body, status=503 if failed else 200)

    async def list_predictions(self, request: web.Request) -> web.Response:
        try:
            q = msgspec.convert(dict(request.query), PredictionsQuery, strict=False)
        except msgspec.ValidationError as e:
            raise Refused(400, f"bad query parameter: {e}", field_of(e)) from e
        found = await list_predictions(self.graph(), namespace=q.namespace, pattern=q.pattern, since=q.since,
                                       until=q.until, limit=q.limit)
        return _json(PredictionList(count=len(found), predictions=found))

    async def get_prediction(self, request: web.Request) -> web.Response:
        from app.explain import pick_event
        graph, prediction_id = self.graph(), request.match_info["id"]
        prediction = await get_prediction(graph, prediction_id)
        if prediction is None:
            raise Refused(404, f"no prediction with id {prediction_id!r}", "id")
        story = await match_story(graph, prediction.match_id)
        context = None
        if story.evidence:
            telling = pick_event([{"id": e.id, "severity": e.severity,
                                   "timestamp": e.at.timestamp() if e.at else 0} for e in story.evidence])
            try:
                context = await reveal_context(graph, telling["id"])
            except ContextError:
                context = None
        return _json(PredictionDetail(prediction=prediction, evidence=story.evidence, caused=story.caused,
                                      chain=story.chain, context=context,
                                      narrative=render_tree(context) if context else story.chain,
                                      feedback=await feedback_on(graph, prediction_id)))

    async def list_patterns(self, request: web.Request) -> web.Response:
        catalog = self.patterns()
        learning = self.learning
        applied = learning is not None and learning.loaded.is_set()
        reports = await pattern_statistics(self.graph(), catalog.patterns, self.rule,
                                           votes=learning.votes if applied else None)  # type: ignore[union-attr]
        return _json(PatternList(patterns=reports, catalog_errors=catalog.errors,
                                 votes_refreshed=learning.refreshed if learning else 0))

    async def post_feedback(self, request: web.Request) -> web.Response:
        self._authorize(request)
        body = await self._body(request)
        try:
            vote = msgspec.json.decode(body, type=FeedbackRequest)
        except msgspec.ValidationError as e:
            raise Refused(400, f"invalid feedback: {e}", field_of(e)) from e
        except msgspec.DecodeError as e:
            raise Refused(400, f"the body is not JSON: {e}") from e
        try:
            stored = await record_feedback(self.graph(), prediction_id=vote.prediction_id, accurate=vote.accurate,
                                           rating=vote.rating, comment=vote.comment, source="api")
        except UnknownPrediction as e:
            raise Refused(404, str(e), "prediction_id") from e
        log.info("feedback %s on %s (%s %s): %s", stored.id, stored.prediction_id, stored.pattern, stored.version,
                 "accurate" if stored.accurate else "inaccurate")
        return _json(stored, status=201)

    async def openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=self._document, content_type="application/json")


def _guarded(handler: Handler) -> Handler:
    async def run(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except Refused as e:
            headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
            return _json(e.body, status=e.status, headers=headers)
        except GraphError as e:
            log.error("api %s %s: %s", request.method, request.path, e)
            return _json(Error(error=str(e)), status=503)
        except Exception as e:  # a bug: say so, keep serving
            log.exception("api %s %s failed", request.method, request.path)
            return _json(Error(error=f"internal error: {type(e).__name__}: {e}"), status=500)
    run.__name__ = handler.__name__
    return run


def register_api(router: web.UrlDispatcher, api: Api) -> None:
    """Add every route of `app.api_schema.ROUTES` (and only those) to an aiohttp router."""
    for route in ROUTES:
        router.add_route(route.method, route.path, _guarded(getattr(api, route.name)), name=route.name)
