"""`tapio replay / collect kubeapi`: recordings and a live cluster into JetStream.

Fed by: the command line (recording files and folders, a stream range, a kubeconfig).
Feeds: `app.demo.publish_recordings` (files to JetStream), `app.stream_replay` through
`app.cli.ranges` (a range of the live stream into an isolated dataflow) and
`app.collect.run_kubeapi_collector` (list + watch a cluster until interrupted).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import UTC, datetime

import click

from app.cli.ranges import bounds, range_options, replay_range
from app.cli.settings import settings_of


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.option("--shift-to", "shift_to", metavar="TIME|now", default=None,
              help="Move the recording so its newest event is at TIME (RFC 3339) or now: matching runs in "
                   "event time, and a dataflow that has seen newer events treats old ones as late.")
@range_options
@click.option("--keep", is_flag=True, help="Leave the isolated worker running after a stream replay.")
@click.pass_context
def replay(ctx: click.Context, paths: tuple[str, ...], shift_to: str | None, since: str | None, until: str | None,
           from_seq: int, to_seq: int, subject: str, speed: float, into: str | None, keep: bool) -> None:
    """Publish recordings (files or folders), or replay a range of the live stream into an isolated dataflow.

    With PATHS: publish them to JetStream, snapshots first, then by event time.
    Without: copy a range of the EVENTS stream (--since/--from-seq ... or all of it) into a
    dataflow of its own (stream, topics, tables, graph named after --into), run a worker on it
    to the end, and summarize; live processing and its graph are untouched.
    """
    from app.demo import publish_recordings
    from core.kube.objects import parse_time

    settings = settings_of(ctx)
    if not paths:
        name = into or f"replay-{datetime.now(UTC):%Y%m%d%H%M%S}"
        result = replay_range(settings, name, bounds(since, until, from_seq, to_seq, subject, speed), keep=keep)
        copied = result.detail
        click.echo(f"{copied.copied} events (stream seq {copied.first_seq}..{copied.last_seq}) replayed into "
                   f"{name}: {result.in_graph} in its graph {result.settings.graph.name!r}, "
                   f"{len(result.predictions)} predictions")
        for p in result.predictions[:20]:
            click.echo(f"  {p.score:.2f} {p.at:%Y-%m-%d %H:%M:%S}Z [{p.pattern}] {p.scope}: {p.message}")
        click.echo(f"inspect it: TAPIO_GRAPH_NAME={result.settings.graph.name} tapio predictions")
        return
    target = None
    if shift_to is not None:
        target = datetime.now(UTC) if shift_to == "now" else parse_time(shift_to)
        if target is None:
            raise click.BadParameter(f"expected an RFC 3339 time or 'now', got {shift_to!r}", param_hint="--shift-to")
    summary = asyncio.run(publish_recordings(settings, list(paths), shift_to=target))
    click.echo(f"{summary.events} events from {summary.files} file(s) published "
               f"({summary.duplicates} already in the stream); {len(summary.errors)} error(s)")
    for error in summary.errors:
        click.echo(f"  {error}", err=True)
    if summary.errors and not summary.events:
        sys.exit(1)


@click.group()
def collect() -> None:
    """Run a collector until interrupted."""


@collect.command(name="kubeapi")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None,
              help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then the in-cluster service account).")
@click.option("--context", "kube_context", default=None, help="kubeconfig context (default: the current one).")
@click.option("--kinds", default=None, help="Comma-separated kinds to watch (default: all 21, see docker/rbac.yaml).")
@click.pass_context
def collect_kubeapi(ctx: click.Context, kubeconfig: str | None, kube_context: str | None, kinds: str | None) -> None:
    """List and watch the Kubernetes API and publish every object change and Event to JetStream."""
    from app.collect import run_kubeapi_collector
    from app.jetstream import JetStreamError
    from collectors.kubeapi import KubeConfigError, UnknownKindError

    settings = settings_of(ctx)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_kubeapi_collector(settings, kubeconfig=kubeconfig, context=kube_context, stop=stop,
                                    kinds=[k.strip() for k in kinds.split(",") if k.strip()] if kinds else None)

    try:
        asyncio.run(main())
    except (KubeConfigError, UnknownKindError, JetStreamError) as e:
        raise click.ClickException(str(e)) from e


COMMANDS = [replay, collect]
