"""`tapio context / explain / predictions`: what the live graph knows, as a tree, a table or JSON.

Fed by: the command line (an event id, a kubectl-style KIND/NAME, filters) and the graph that
the settings name (`app.cli.settings.on_graph`). Feeds: `topology.context`, `app.explain`
and `topology.predictions`, rendered by `topology.narrative` or as JSON.
"""

from __future__ import annotations

import click

from app.cli.settings import on_graph, settings_of
from app.cli.terminal import echo_json, write_page


@click.command()
@click.argument("event_id")
@click.option("-o", "--output", type=click.Choice(["tree", "json"]), default="tree", show_default=True)
@click.pass_context
def context(ctx: click.Context, event_id: str, output: str) -> None:
    """What the graph knows around one event: resources, owners, dependencies, correlated events, causes."""
    from topology.context import ContextError, reveal_context
    from topology.narrative import render_tree

    try:
        found = on_graph(ctx, lambda graph: reveal_context(graph, event_id))
    except ContextError as e:
        raise click.ClickException(str(e)) from e
    if output == "json":
        echo_json(found)
    else:
        click.echo("\n".join(render_tree(found)))


@click.command()
@click.argument("target", nargs=-1, required=True)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-o", "--output", type=click.Choice(["tree", "json"]), default="tree", show_default=True)
@click.option("--html", "html_path", default=None, type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Also write the incident page (causal graph, timeline, evidence) to FILE: one file, opens offline.")
@click.pass_context
def explain(ctx: click.Context, target: tuple[str, ...], namespace: str, output: str, html_path: str | None) -> None:
    """Why a resource is in trouble: `tapio explain pod/web-0 -n shop` (kubectl argument style)."""
    from app.explain import ExplainError, Explanation, parse_target
    from app.explain import explain as explain_resource
    from app.report.live import explanation_analysis
    from app.report.page import render_analysis
    from topology.graph import GraphStore
    from topology.narrative import render_hypotheses, render_tree

    try:
        kind, name = parse_target(target)
    except ExplainError as e:
        raise click.UsageError(str(e)) from e

    async def work(graph: GraphStore) -> tuple[Explanation, str]:
        found = await explain_resource(graph, kind=kind, name=name, namespace=namespace)
        if html_path is None:
            return found, ""
        page = await explanation_analysis(graph, found, where=f"the graph {settings_of(ctx).graph.name}")
        return found, render_analysis(page)

    try:
        found, page = on_graph(ctx, work)
    except ExplainError as e:
        raise click.ClickException(str(e)) from e
    if html_path is not None:
        write_page(html_path, page)
    if output == "json":
        echo_json(found)
    else:
        where = f" -n {found.namespace}" if found.namespace else ""
        click.echo(f"{found.kind}/{found.name}{where}: {found.events} events in the graph; the most telling:")
        if found.recovery:
            click.echo(found.recovery)
        click.echo("\n".join(render_tree(found.context)))
        click.echo("")
        if found.recovery and found.hypotheses:
            click.echo("(said while it failed, before it recovered)")
        click.echo("\n".join(render_hypotheses(found.hypotheses)))


@click.command()
@click.option("-n", "--namespace", default=None, help="Only predictions about this namespace.")
@click.option("--pattern", default=None, help="Only this pattern's predictions.")
@click.option("--since", default=None, metavar="TIME", help="Only matches at or after TIME (RFC 3339).")
@click.option("--limit", default=50, show_default=True)
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def predictions(ctx: click.Context, namespace: str | None, pattern: str | None, since: str | None, limit: int,
                output: str) -> None:
    """What the behavior patterns predict, from the live graph, best score first."""
    from core.kube.objects import parse_time
    from topology.predictions import list_predictions

    start = None
    if since is not None and (start := parse_time(since)) is None:
        raise click.BadParameter(f"expected an RFC 3339 time, got {since!r}", param_hint="--since")
    found = on_graph(ctx, lambda graph: list_predictions(graph, namespace=namespace, pattern=pattern,
                                                         since=start, limit=limit))
    if output == "json":
        echo_json(found)
        return
    if not found:
        click.echo("no predictions" + (f" in namespace {namespace}" if namespace else ""))
    for p in found:
        stopped = f", resolved {p.resolved_at:%Y-%m-%d %H:%M:%S}Z" if p.resolved_at is not None else ""
        if p.provisional:  # sent ahead of event time (match.early_firing): confirmed or withdrawn soon
            stopped += ", provisional"
        click.echo(f"{p.score:.2f} {p.at:%Y-%m-%d %H:%M:%S}Z [{p.pattern}] {p.scope}: {p.message} "
                   f"(confidence {p.confidence:.0%}, {p.type} by {p.due:%H:%M:%S}Z{stopped})")


COMMANDS = [context, explain, predictions]
