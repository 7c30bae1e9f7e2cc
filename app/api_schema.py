"""The HTTP API's messages and its OpenAPI document, declared once.

Fed by: the Structs of the domain (`topology.predictions`, `topology.feedback`, `topology.context`,
`agents.confidence`) and the bodies declared here. Feeds: `app.api` (which registers exactly the
routes of `ROUTES`, decodes requests into these Structs and encodes responses from them) and
`GET /api/v1/openapi.json` (`openapi()`, built with `msgspec.json.schema_components`).

Every request body and query string is a Struct: a value msgspec refuses is a 400 naming the
field (`field`), an unknown field or parameter too.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, NamedTuple

import msgspec
from msgspec import Meta

from agents.confidence import PatternReport
from topology.context import Context
from topology.feedback import Rating, StoredFeedback
from topology.predictions import EvidenceEvent, StoredPrediction

API_VERSION = "1.0.0"
MAX_LIMIT = 1000


class FeedbackRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A vote on one prediction: was it accurate? `rating` and `comment` are stored with it."""

    prediction_id: Annotated[str, Meta(min_length=1, max_length=256)]
    accurate: bool
    rating: Rating = 0
    comment: Annotated[str, Meta(max_length=4000)] = ""


class PredictionsQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Query string of GET /api/v1/predictions: RFC 3339 times with a zone, `since <= at < until`."""

    namespace: str | None = None
    pattern: str | None = None
    since: Annotated[datetime, Meta(tz=True)] | None = None
    until: Annotated[datetime, Meta(tz=True)] | None = None
    limit: Annotated[int, Meta(ge=1, le=MAX_LIMIT)] = 50


class Error(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What was refused and why; `field` names the body field or query parameter at fault."""

    error: str
    field: str | None = None


class PredictionList(msgspec.Struct, kw_only=True):
    count: int
    predictions: list[StoredPrediction]


class PredictionDetail(msgspec.Struct, kw_only=True):
    """One prediction with the events its match rests on, the causal chain, the context of its
    most telling event (`topology.context`) and that context as the tree `tapio explain` prints."""

    prediction: StoredPrediction
    evidence: list[EvidenceEvent]
    caused: list[list[str]]
    chain: list[str]
    context: Context | None = None
    narrative: list[str]
    feedback: list[StoredFeedback]


class PatternList(msgspec.Struct, kw_only=True):
    """Every loaded pattern with its statistics; `votes_refreshed` counts the worker's refreshes
    of the votes its predict stage applies (0: read now from the graph, this worker predicts nothing)."""

    patterns: list[PatternReport]
    catalog_errors: list[str]
    votes_refreshed: int


class Health(msgspec.Struct, kw_only=True):
    status: Literal["ok"]
    disabled_patterns: dict[str, str]  # pattern -> why feedback disabled it
    pattern_errors: list[str]


class Check(msgspec.Struct, kw_only=True):
    name: Literal["nats", "kafka", "graph", "patterns", "progress"]
    ok: bool
    detail: str = ""


class Readiness(msgspec.Struct, kw_only=True):
    ready: bool
    checks: list[Check]
    failed: list[str]
    disabled_patterns: dict[str, str]
    pattern_errors: list[str]


class Route(NamedTuple):
    method: str
    path: str
    name: str  # the handler's name in app.api.Api, and the operationId
    summary: str
    responses: dict[int, Any]
    body: type | None = None
    query: type | None = None
    write: bool = False  # requires the bearer token


_GRAPH_DOWN = {503: Error}
ROUTES: tuple[Route, ...] = (
    Route("GET", "/healthz", "healthz", "The process is alive.", {200: Health}),
    Route("GET", "/readyz", "readyz", "Ready when NATS, Kafka and the graph answer and patterns are loaded.",
          {200: Readiness, 503: Readiness}),
    Route("GET", "/api/v1/predictions", "list_predictions",
          "Predictions, best score first; filter by namespace, pattern and time.",
          {200: PredictionList, 400: Error, **_GRAPH_DOWN}, query=PredictionsQuery),
    Route("GET", "/api/v1/predictions/{id}", "get_prediction",
          "One prediction with its evidence, causal chain, context, narrative and feedback.",
          {200: PredictionDetail, 404: Error, **_GRAPH_DOWN}),
    Route("GET", "/api/v1/patterns", "list_patterns",
          "Every loaded pattern: enabled or not, base and adjusted confidence, predictions, feedback, accuracy.",
          {200: PatternList, **_GRAPH_DOWN}),
    Route("POST", "/api/v1/feedback", "post_feedback", "Vote on a prediction: accurate or not.",
          {201: StoredFeedback, 400: Error, 401: Error, 403: Error, 404: Error, 413: Error, **_GRAPH_DOWN},
          body=FeedbackRequest, write=True),
    Route("GET", "/api/v1/openapi.json", "openapi", "This document.", {200: dict}),
)

_DESCRIPTIONS = {200: "OK", 201: "Created", 400: "Bad request: `field` names the field or parameter at fault",
                 401: "Missing or wrong bearer token", 403: "Writes are off: no api.token is configured",
                 404: "Not found", 413: "Body larger than api.max_body_bytes", 503: "Not ready, or the graph is down"}

_AT = re.compile(r"at `\$\.([A-Za-z_][A-Za-z0-9_]*)")
_FIELD = re.compile(r"field `([^`]+)`")


def field_of(error: msgspec.ValidationError) -> str | None:
    """The field a msgspec ValidationError is about (`... - at `$.rating``, `missing required field `x``)."""
    text = str(error)
    found = _AT.search(text) or _FIELD.search(text)
    return found.group(1) if found else None


def _schema_types() -> list[type]:
    types: list[type] = []
    for route in ROUTES:
        for t in (route.body, route.query, *route.responses.values()):
            if t is not None and t is not dict and t not in types:
                types.append(t)
    return types


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of ROUTES (the server registers exactly these)."""
    types = _schema_types()
    schemas, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    ref = dict(zip(types, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        op: dict[str, Any] = {"operationId": route.name, "summary": route.summary, "responses": {}}
        for status, t in sorted(route.responses.items()):
            schema = {"type": "object"} if t is dict else ref[t]
            op["responses"][str(status)] = {"description": _DESCRIPTIONS[status],
                                            "content": {"application/json": {"schema": schema}}}
        params = []
        if "{id}" in route.path:
            params.append({"name": "id", "in": "path", "required": True, "schema": {"type": "string"}})
        if route.query is not None:
            props = components[route.query.__name__]["properties"]
            params += [{"name": f.name, "in": "query", "required": False, "schema": props[f.name]}
                       for f in msgspec.structs.fields(route.query)]
        if params:
            op["parameters"] = params
        if route.body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref[route.body]}}}
        if route.write:
            op["security"] = [{"bearer": []}]
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tapio API", "version": API_VERSION,
                 "description": "Predictions, patterns and feedback of a Tapio worker. Write endpoints need "
                                "`Authorization: Bearer <api.token>`."},
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
