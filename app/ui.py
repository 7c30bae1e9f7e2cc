"""The worker's pages for people, next to its API: thin handlers that read the graph and render HTML.

Fed by: HTTP GETs to the worker's web server. Feeds: pages rendered by `app.report.page`.

    GET /ui/                       predictions and diagnoses, best first; ?namespace=&pattern=&since=&until=
                                   &show=all|patterns|diagnoses&limit=
    GET /ui/predictions/{id}       the incident page of one prediction: its causal graph, timeline and
                                   evidence, read from the graph (`app.report.live`), and its vote buttons
    GET /ui/patterns               the pattern catalog: confidence, votes, accuracy

The pages follow the API's access rules (`app.api`): reading is open, as GET /api/v1/... is; a vote is a
POST /api/v1/feedback from the page's script with the bearer token the person pastes (without api.token
on the worker the page says how to turn votes on). A filter the API would refuse is a 400 page naming
it; an unknown prediction a 404; a graph that cannot be reached a 503, as for the API.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from agents.diagnose import PATTERN_PREFIX as DIAGNOSIS_PREFIX
from app.api import Api, Refused
from app.api_schema import PredictionsQuery
from app.learning import pattern_statistics
from app.report.live import prediction_analysis
from app.report.page import (
    WORKER_POLICY,
    WorkerView,
    render_analysis,
    render_patterns,
    render_predictions,
    render_problem,
)
from core.ports import GraphError
from topology.feedback import feedback_on
from topology.predictions import get_prediction, list_predictions

log = logging.getLogger(__name__)

Page = Callable[[web.Request], Awaitable[web.Response]]
SHOW = ("all", "patterns", "diagnoses")


def _html(page: str, status: int = 200) -> web.Response:
    return web.Response(text=page, status=status, content_type="text/html", charset="utf-8",
                        headers={"Cache-Control": "no-store", "Content-Security-Policy": WORKER_POLICY,
                                 "X-Content-Type-Options": "nosniff"})


class PageProblem(Exception):
    """A page that cannot be shown: its status and what to say."""

    def __init__(self, status: int, title: str, problem: str) -> None:
        super().__init__(problem)
        self.status, self.title, self.problem = status, title, problem


class Pages:
    def __init__(self, api: Api) -> None:
        self.api = api

    async def predictions(self, request: web.Request) -> web.Response:
        query = {k: v for k, v in request.query.items() if k not in ("show",) and v != ""}
        show = request.query.get("show") or "all"
        shown = {"namespace": "", "pattern": "", "since": "", "until": "", "limit": 50, **query}
        if show not in SHOW:
            return _html(render_predictions([], query=shown, show="all", problem=(
                f"bad filter: show must be one of {', '.join(SHOW)}, got {show!r}")), status=400)
        try:
            q = msgspec.convert(query, PredictionsQuery, strict=False)
        except msgspec.ValidationError as e:
            return _html(render_predictions([], query=shown, show=show, problem=f"bad filter: {e}"), status=400)
        found = await list_predictions(self.api.graph(), namespace=q.namespace, pattern=q.pattern, since=q.since,
                                       until=q.until, limit=q.limit)
        if show != "all":
            found = [p for p in found if p.pattern.startswith(DIAGNOSIS_PREFIX) == (show == "diagnoses")]
        return _html(render_predictions(found, query=shown, show=show))

    async def prediction(self, request: web.Request) -> web.Response:
        graph, prediction_id = self.api.graph(), request.match_info["id"]
        found = await get_prediction(graph, prediction_id)
        if found is None:
            raise PageProblem(404, "No such prediction", f"the graph has no prediction with id {prediction_id!r}: "
                                                         f"the list at /ui/ has every one it holds")
        state = "resolved" if found.resolved_at else "provisional" if found.provisional else "ongoing"
        analysis = await prediction_analysis(
            graph, [found], verdict=f"{found.pattern} in {found.scope} ({found.confidence:.0%}, {state}): "
                                    f"{found.message}", events=0, where="this worker's graph")
        events = len(analysis.hypotheses[0].evidence) if analysis.hypotheses else 0
        view = WorkerView(prediction_ids={1: found.id}, feedback={found.id: await feedback_on(graph, found.id)},
                          writes_on=bool(self.api.settings.api.token))
        return _html(render_analysis(msgspec.structs.replace(analysis, events=events), worker=view))

    async def patterns(self, request: web.Request) -> web.Response:
        catalog, learning = self.api.patterns(), self.api.learning
        applied = learning is not None and learning.loaded.is_set()
        reports = await pattern_statistics(self.api.graph(), catalog.patterns, self.api.rule,
                                           votes=learning.votes if applied else None)  # type: ignore[union-attr]
        return _html(render_patterns(reports, errors=catalog.errors, refreshed=learning.refreshed if learning else 0))


def _guarded(page: Page) -> Page:
    async def run(request: web.Request) -> web.Response:
        try:
            return await page(request)
        except PageProblem as e:
            return _html(render_problem(e.title, e.problem), status=e.status)
        except Refused as e:  # the worker is starting: no graph yet
            return _html(render_problem("Not ready", e.body.error), status=e.status)
        except GraphError as e:
            log.error("ui %s: %s", request.path, e)
            return _html(render_problem("The graph cannot be reached", f"{e}: see /readyz"), status=503)
        except Exception as e:  # a bug: say so, keep serving
            log.exception("ui %s failed", request.path)
            return _html(render_problem("Internal error", f"{type(e).__name__}: {e}"), status=500)
    run.__name__ = page.__name__
    return run


def register_ui(router: web.UrlDispatcher, api: Api) -> None:
    """Add the pages to an aiohttp router (the worker's, beside `app.api.register_api`)."""
    pages = Pages(api)
    router.add_route("GET", "/ui/", _guarded(pages.predictions), name="ui_predictions")
    router.add_route("GET", "/ui/predictions/{id}", _guarded(pages.prediction), name="ui_prediction")
    router.add_route("GET", "/ui/patterns", _guarded(pages.patterns), name="ui_patterns")
