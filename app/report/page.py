"""The incident pages as HTML: the report file `tapio analyze --html` writes, and the worker's `/ui/` pages.

Fed by: an `Analysis` (`app.analyze`: the verdict, the ranked root causes, the topology among the input's
objects; `app.report.live` builds one from the live graph), and for the worker's pages the predictions,
the votes and the pattern statistics. Feeds: a file a support engineer attaches to a ticket and opens
offline, and the worker's HTTP answers (`app.ui`).

Every page inlines its styles, its script and the vendored drawing libraries (`assets/`, Cytoscape.js with
the dagre layout), and its Content-Security-Policy forbids every request (a worker's page may also POST
its votes to the worker that served it). An incident page has, at the top, the answer (the verdict), then
each root cause, best first: its message and what to do, its causal graph with the topology around it
(`app.report.picture`), the timeline of its evidence by resource, and the evidence lines with their
`file#position`; the chain in words and the notes on the inputs are one click away. Templates are Jinja2,
autoescaped, under `templates/`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import jinja2
import msgspec

from agents.confidence import PatternReport
from app.analyze import Analysis
from app.report.picture import Picture, picture, since
from topology.feedback import StoredFeedback
from topology.predictions import StoredPrediction

__all__ = ["LIBRARIES", "WorkerView", "render_analysis", "render_patterns", "render_predictions", "render_problem"]

#: the vendored files an incident page inlines, in load order (versions and licences: assets/README.md)
LIBRARIES = ("cytoscape.min.js", "cytoscape-dagre.min.js")
#: a file: no request at all; a worker's page: its votes go to the worker that served it
FILE_POLICY = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"
WORKER_POLICY = FILE_POLICY + "; connect-src 'self'; form-action 'self'"


class WorkerView(msgspec.Struct, frozen=True, kw_only=True):
    """What a worker's incident page adds to a report: the vote panel of each root cause."""

    prediction_ids: dict[int, str]  # rank -> the prediction voted on
    feedback: dict[str, list[StoredFeedback]]  # prediction id -> its votes, oldest first
    writes_on: bool  # api.token is set: votes can be sent


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("app.report", "templates"),
                             autoescape=jinja2.select_autoescape(default=True), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["since"] = since
    env.filters["when"] = lambda at: f"{at:%Y-%m-%d %H:%M:%S}Z" if at else ""
    return env


_ENV = _environment()


@functools.cache
def _asset(name: str) -> str:
    """A packaged file, read once a process (a worker serves it with every page)."""
    return resources.files("app.report").joinpath("assets", name).read_text(encoding="utf-8")


def _common(generated: datetime | None, *, worker: bool) -> dict[str, Any]:
    return {"generated": generated or datetime.now(UTC), "style": _asset("incident.css"),
            "csp": WORKER_POLICY if worker else FILE_POLICY}


def _elements(drawn: Picture) -> list[dict[str, Any]]:
    """Cytoscape.js elements: a node per resource, an edge per relation (ids the tests can name)."""
    nodes = [{"data": {"id": n.id, "label": f"{n.kind}\n{n.name}", "kind": n.kind, "role": n.role}}
             for n in drawn.nodes]
    edges = [{"data": {"id": f"{e.type}:{e.source}->{e.target}", "type": e.type, "label": e.label,
                       "source": e.target if e.backwards else e.source,
                       "target": e.source if e.backwards else e.target},
              "classes": "backwards" if e.backwards else ""} for e in drawn.edges]
    return nodes + edges


def render_analysis(analysis: Analysis, *, generated: datetime | None = None, worker: WorkerView | None = None) -> str:
    """An incident page: the report file, or with `worker` the worker's page of one prediction."""
    common = _common(generated, worker=worker is not None)
    drawn = {cause.rank: picture(cause, analysis.topology) for cause in analysis.hypotheses}
    ui = None if worker is None else {**msgspec.structs.asdict(worker), "script": _asset("vote.js")}
    return _ENV.get_template("incident.html.j2").render(
        **common, analysis=analysis, pictures=drawn, ui=ui,
        elements={rank: _elements(p) for rank, p in drawn.items()},
        evidence={c.rank: sorted(c.evidence, key=lambda e: (e.at is None, e.at or common["generated"]))
                  for c in analysis.hypotheses},
        libraries=[_asset(name) for name in LIBRARIES], script=_asset("incident.js"))


def render_predictions(predictions: list[StoredPrediction], *, query: Mapping[str, Any], show: str,
                       problem: str = "", generated: datetime | None = None) -> str:
    """The worker's list of predictions and diagnoses, best first, with the filters that chose them."""
    filtered = any(query.get(k) for k in ("namespace", "pattern", "since", "until")) or show != "all"
    return _ENV.get_template("predictions.html.j2").render(
        **_common(generated, worker=True), ui=True, predictions=predictions, query=query, show=show,
        problem=problem, filtered=filtered)


def render_patterns(reports: list[PatternReport], *, errors: list[str], refreshed: float,
                    generated: datetime | None = None) -> str:
    """The worker's pattern catalog: each pattern's confidence (adjusted by votes), votes and accuracy."""
    return _ENV.get_template("patterns.html.j2").render(
        **_common(generated, worker=True), ui=True, reports=sorted(reports, key=lambda r: r.name), errors=errors,
        refreshed=refreshed)


def render_problem(title: str, problem: str, *, generated: datetime | None = None) -> str:
    """A page that says what went wrong (an unknown prediction, a bad filter, the graph down)."""
    return _ENV.get_template("problem.html.j2").render(**_common(generated, worker=True), ui=True, title=title,
                                                      problem=problem)
