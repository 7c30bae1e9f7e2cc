"""The incident report as one self-contained HTML file: what `tapio analyze --html` writes.

Fed by: an `Analysis` (`app.analyze`: the verdict, the ranked root causes, the topology among the input's
objects). Feeds: a file a support engineer attaches to a ticket and opens offline: the page inlines
its styles, its script and the vendored drawing libraries (`assets/`, Cytoscape.js with the dagre
layout), and its Content-Security-Policy forbids every request, so nothing is fetched when it is viewed.

At the top the answer (the verdict), then each root cause, best first: its message and what to do,
its causal graph with the topology around it (`app.report.picture`), the timeline of its evidence by
resource, and the evidence lines with their `file#position`; the chain in words and the notes on the
inputs are one click away. The template is `templates/incident.html.j2` (Jinja2, autoescaped).
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from typing import Any

import jinja2

from app.analyze import Analysis
from app.report.picture import Picture, picture, since

__all__ = ["render_analysis", "LIBRARIES"]

#: the vendored files the page inlines, in load order (versions and licences: assets/README.md)
LIBRARIES = ("cytoscape.min.js", "cytoscape-dagre.min.js")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("app.report", "templates"),
                             autoescape=jinja2.select_autoescape(default=True), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["since"] = since
    env.filters["when"] = lambda at: f"{at:%Y-%m-%d %H:%M:%S}Z" if at else ""
    return env


def _asset(name: str) -> str:
    return resources.files("app.report").joinpath("assets", name).read_text(encoding="utf-8")


def _elements(drawn: Picture) -> list[dict[str, Any]]:
    """Cytoscape.js elements: a node per resource, an edge per relation (ids the tests can name)."""
    nodes = [{"data": {"id": n.id, "label": f"{n.kind}\n{n.name}", "kind": n.kind, "role": n.role}}
             for n in drawn.nodes]
    edges = [{"data": {"id": f"{e.type}:{e.source}->{e.target}", "type": e.type, "label": e.label,
                       "source": e.target if e.backwards else e.source,
                       "target": e.source if e.backwards else e.target},
              "classes": "backwards" if e.backwards else ""} for e in drawn.edges]
    return nodes + edges


def render_analysis(analysis: Analysis, *, generated: datetime | None = None) -> str:
    """The page for one analysis (no I/O but reading the packaged template and libraries)."""
    generated = generated or datetime.now(UTC)
    drawn = {cause.rank: picture(cause, analysis.topology) for cause in analysis.hypotheses}
    template = _environment().get_template("incident.html.j2")
    return template.render(
        analysis=analysis, pictures=drawn, generated=generated,
        elements={rank: _elements(p) for rank, p in drawn.items()},
        evidence={c.rank: sorted(c.evidence, key=lambda e: (e.at is None, e.at or generated))
                  for c in analysis.hypotheses},
        libraries=[_asset(name) for name in LIBRARIES], script=_asset("incident.js"),
        style=_asset("incident.css"))
