"""The `tapio` command.

Fed by: the user's shell. Feeds: everything else; each subcommand is a thin shell over one
module (`app.stack`, `app.faust_app`, `app.bridge`, `collectors.replayer`, `app.demo`).

    tapio up / down / status      the embedded stack (nats-server, Tansu, FalkorDB) on loopback
    tapio worker [--no-bridge]    one worker of the group: the Faust agents (and the bridge)
    tapio bridge                  the JetStream -> Kafka bridge alone
    tapio replay FILE|DIR...      publish recordings (kubectl JSON/YAML, watch streams) to JetStream
    tapio collect kubeapi         list + watch a live cluster and publish to JetStream
    tapio deadletters             what was rejected, why and where
    tapio patterns lint [DIR]     validate behavior patterns (file:line: field: problem)
    tapio patterns list           every pattern: enabled, base/adjusted confidence, predictions, feedback
    tapio feedback ID --accurate|--inaccurate   vote on a prediction (as POST /api/v1/feedback does)
    tapio context EVENT_ID        what the graph knows around one event (tree or JSON)
    tapio explain KIND/NAME -n NS why a resource is in trouble, from the live graph
    tapio predictions [-n NS]     what the patterns predict, best score first
    tapio backtest [CORPUS...]    a pattern set against labelled recordings (--compare OTHER_DIR)
    tapio analyze PATH...         root cause from support bundles, must-gathers, kubectl output
    tapio demo                    everything above on a bundled incident, then what the graph knows
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

import click

from core.settings import ConfigError, Settings, load_settings, state_dir_from_env

T = TypeVar("T")


def _on_graph(ctx: click.Context, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(graph)` on the configured graph, closing the connection after."""
    from topology.graph import open_graph

    async def main() -> T:
        graph = open_graph(_settings(ctx).graph)
        try:
            return await work(graph)
        finally:
            await graph.close()

    return asyncio.run(main())


def _echo_json(value: object) -> None:
    import msgspec

    click.echo(msgspec.json.format(msgspec.json.encode(value).decode(), indent=2))


def _settings(ctx: click.Context) -> Settings:
    try:
        return load_settings(ctx.obj.get("config"))
    except ConfigError as e:
        raise click.ClickException(str(e)) from e


@click.group()
@click.option("--config", type=click.Path(dir_okay=False), envvar="TAPIO_CONFIG",
              help="YAML configuration (default: the running embedded stack, then built-in defaults).")
@click.option("--log-level", default="info", show_default=True)
@click.pass_context
def cli(ctx: click.Context, config: str | None, log_level: str) -> None:
    """Tapio: Kubernetes behavior research engine."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@cli.command()
@click.option("--state-dir", type=click.Path(file_okay=False), default=None,
              help="Where servers keep data, logs and stack.yaml (default $TAPIO_STATE_DIR or .tapio).")
@click.option("--nats-port", default=0, help="0 picks a free port.")
@click.option("--kafka-port", default=0, help="0 picks a free port.")
@click.option("--graph-port", default=0, help="0 picks a free port.")
@click.option("--bolt-port", type=int, default=None,
              help="Also open FalkorDB's experimental Bolt listener (0 picks a port); off by default.")
def up(state_dir: str | None, nats_port: int, kafka_port: int, graph_port: int, bolt_port: int | None) -> None:
    """Start the embedded stack in the background and record its endpoints."""
    from app.stack import EmbeddedStack, StackError

    stack = EmbeddedStack(state_dir or state_dir_from_env(), nats_port=nats_port, kafka_port=kafka_port,
                          graph_port=graph_port, bolt_port=bolt_port)
    try:
        settings = stack.start()
    except StackError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"embedded stack up ({stack.state_file}):")
    click.echo(f"  nats   {settings.nats.urls[0]}")
    click.echo(f"  kafka  {settings.kafka.bootstrap_servers[0]}")
    click.echo(f"  graph  {settings.graph.uri}")
    if stack.bolt_uri():
        click.echo(f"  bolt   {stack.bolt_uri()}  (FalkorDB's experimental Bolt listener)")
    click.echo("stop it with `tapio down`")


@cli.command()
@click.option("--state-dir", type=click.Path(file_okay=False), default=None)
def down(state_dir: str | None) -> None:
    """Stop the embedded stack that `tapio up` started."""
    from app.stack import StackError, stop_from_state

    try:
        stopped = stop_from_state(state_dir or state_dir_from_env())
    except StackError as e:
        raise click.ClickException(str(e)) from e
    for server in stopped:
        click.echo(f"stopped {server.name} (pid {server.pid})")


@cli.command()
@click.option("--bridge/--no-bridge", default=True, show_default=True,
              help="Also run the JetStream -> Kafka bridge in this process.")
@click.option("--stages", default=None,
              help="Comma-separated stages to run (enrich,normalize,match,predict,sink); default all.")
@click.pass_context
def worker(ctx: click.Context, bridge: bool, stages: str | None) -> None:
    """Run one worker of the group until interrupted."""
    import msgspec

    from app.faust_app import WorkerStartError, run_worker

    settings = _settings(ctx)
    if stages:
        chosen = [s.strip() for s in stages.split(",") if s.strip()]
        settings = msgspec.structs.replace(settings, worker=msgspec.structs.replace(settings.worker, stages=chosen))
    sys.argv = [sys.argv[0]]  # Faust's worker parses argv itself
    try:
        run_worker(settings, with_bridge=bridge)
    except (WorkerStartError, ValueError) as e:
        raise click.ClickException(str(e)) from e


@cli.command(name="bridge")
@click.pass_context
def bridge_cmd(ctx: click.Context) -> None:
    """Run the JetStream -> Kafka bridge alone until interrupted."""
    from app.bridge import Bridge

    settings = _settings(ctx)

    async def main() -> None:
        b = Bridge(settings)
        await b.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(b.stop()))
        try:
            await b.run()
        finally:
            await b.close()
            logging.getLogger("app.bridge").info("bridge stopped after %d events", b.bridged)

    asyncio.run(main())


@cli.group()
def patterns() -> None:
    """Behavior patterns (YAML, apiVersion behavior.tapio.io/v1)."""


@patterns.command(name="lint")
@click.argument("directory", type=click.Path(exists=True, file_okay=False), default="patterns")
def patterns_lint(directory: str) -> None:
    """Check every pattern file of DIRECTORY; errors name file, line and field."""
    from agents.pattern_files import lint

    errors = lint(directory)
    for error in errors:
        click.echo(str(error), err=True)
    count = len(list(Path(directory).glob("*.y*ml")))
    click.echo(f"{count} pattern file(s) in {directory}: {len(errors)} error(s)")
    if errors:
        sys.exit(1)


@patterns.command(name="list")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def patterns_list(ctx: click.Context, output: str) -> None:
    """Every pattern of match.patterns_dir with what feedback made of it, from the graph."""
    from agents.catalog import Catalog
    from app.learning import pattern_statistics, rule_of

    settings = _settings(ctx)
    logging.getLogger("agents.catalog").setLevel(logging.WARNING)
    try:
        catalog = Catalog(settings.match.patterns_dir)
    except FileNotFoundError as e:
        raise click.ClickException(str(e)) from e
    reports = _on_graph(ctx, lambda graph: pattern_statistics(graph, catalog.patterns, rule_of(settings.feedback)))
    if output == "json":
        _echo_json({"patterns": reports, "catalog_errors": catalog.errors})
        return
    click.echo(f"{'pattern':<26} {'version':<8} {'state':<8} {'confidence':<22} {'predictions':>11} "
               f"{'feedback':>8} {'accuracy':>8}")
    for r in reports:
        bases = "/".join(f"{b:.2f}" for b in r.base_confidence)
        now = "/".join(f"{c:.2f}" for c in r.confidence)
        confidence = bases if r.factor == 1.0 else f"{bases} -> {now}"
        accuracy = "-" if r.accuracy is None else f"{r.accuracy:.0%}"
        click.echo(f"{r.name:<26} {r.version:<8} {'enabled' if r.enabled else 'DISABLED':<8} {confidence:<22} "
                   f"{r.predictions:>11} {r.feedback:>8} {accuracy:>8}")
    for r in reports:
        if not r.enabled:
            click.echo(f"{r.name} is disabled: {r.disabled_reason}; accurate votes re-enable it, "
                       f"or a new metadata.version starts its count afresh")
    for error in catalog.errors:
        click.echo(f"warning: {error}", err=True)


@cli.command()
@click.argument("prediction_id")
@click.option("--accurate/--inaccurate", required=True, default=None, help="Was the prediction right?")
@click.option("--rating", type=click.IntRange(-1, 1), default=0, show_default=True,
              help="-1, 0 or 1 (stored with the vote; only --accurate/--inaccurate moves the confidence).")
@click.option("--comment", default="", help="Why (stored with the vote).")
@click.pass_context
def feedback(ctx: click.Context, prediction_id: str, accurate: bool, rating: int, comment: str) -> None:
    """Vote on a prediction, as POST /api/v1/feedback does: `tapio feedback ID --inaccurate --comment ...`."""
    import msgspec

    from app.api_schema import FeedbackRequest, field_of
    from topology.feedback import UnknownPrediction, record_feedback

    try:
        vote = msgspec.convert({"prediction_id": prediction_id, "accurate": accurate, "rating": rating,
                                "comment": comment}, FeedbackRequest)
    except msgspec.ValidationError as e:
        raise click.BadParameter(str(e), param_hint=field_of(e)) from e
    try:
        stored = _on_graph(ctx, lambda graph: record_feedback(
            graph, prediction_id=vote.prediction_id, accurate=vote.accurate, rating=vote.rating,
            comment=vote.comment, source="cli"))
    except UnknownPrediction as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"{stored.id}: {'accurate' if stored.accurate else 'inaccurate'} vote on {stored.prediction_id} "
               f"({stored.pattern} {stored.version}); workers apply it within feedback.refresh_interval_s")


@cli.group()
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

    settings = _settings(ctx)

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


def _range_options(func: Callable) -> Callable:
    """The options that pick a range of the live EVENTS stream (tapio replay, tapio backtest)."""
    for option in reversed([
        click.option("--since", default=None, metavar="TIME", help="Stream range: messages stored at or after TIME."),
        click.option("--until", default=None, metavar="TIME", help="Stream range: stored at or before TIME."),
        click.option("--from-seq", "from_seq", type=int, default=0, help="Stream range: from this sequence."),
        click.option("--to-seq", "to_seq", type=int, default=0, help="Stream range: up to this sequence."),
        click.option("--subject", default="", help="Stream range: only this subject (wildcards allowed)."),
        click.option("--speed", type=float, default=0.0,
                     help="Replay paced by event time, this many times faster (default: full speed)."),
        click.option("--into", "into", default=None, metavar="NAME",
                     help="The isolated dataflow's name (stream, topics, tables, graph); default replay-<time>."),
    ]):
        func = option(func)
    return func


def _bounds(since: str | None, until: str | None, from_seq: int, to_seq: int, subject: str, speed: float) -> dict:
    from collectors.replay import parse_time

    bounds: dict[str, Any] = {"from_seq": from_seq, "to_seq": to_seq, "subject": subject, "speed": speed}
    for name, text in (("since", since), ("until", until)):
        if text is not None:
            when = parse_time(text)
            if when is None:
                raise click.BadParameter(f"expected an RFC 3339 time, got {text!r}", param_hint=f"--{name}")
            bounds[name] = when
    return bounds


@contextlib.contextmanager
def _bars() -> Any:
    """Rich progress bars on stderr; yields `progress(what, done, total)` (events/s and time left)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    columns = [TextColumn("{task.description:<9}"), BarColumn(), TaskProgressColumn(),
               TextColumn("{task.completed:,.0f}/{task.total:,.0f}  {task.fields[rate]}"), TimeRemainingColumn()]
    with Progress(*columns, transient=False, console=Console(stderr=True)) as bars:
        tasks: dict[str, Any] = {}
        started = time.monotonic()

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bars.add_task(what, total=max(total, 1), rate="")
            rate = f"{done / max(time.monotonic() - started, 1e-3):,.0f} events/s"
            bars.update(tasks[what], completed=done, total=max(total, done, 1), rate=rate)

        yield progress


def _replay_range(settings: Settings, name: str, bounds: dict, *, patterns_dir: str | None = None,
                  keep: bool = False) -> Any:
    """Run app.stream_replay.replay_range with progress bars on the terminal."""
    from app.stream_replay import ReplayRangeError, replay_range

    with _bars() as progress:
        try:
            return asyncio.run(replay_range(settings, name, patterns_dir=patterns_dir, progress=progress,
                                            keep=keep, **bounds))
        except ReplayRangeError as e:
            raise click.ClickException(str(e)) from e


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.option("--shift-to", "shift_to", metavar="TIME|now", default=None,
              help="Move the recording so its newest event is at TIME (RFC 3339) or now: matching runs in "
                   "event time, and a dataflow that has seen newer events treats old ones as late.")
@_range_options
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
    from collectors.replay import parse_time

    settings = _settings(ctx)
    if not paths:
        name = into or f"replay-{datetime.now(timezone.utc):%Y%m%d%H%M%S}"
        result = _replay_range(settings, name, _bounds(since, until, from_seq, to_seq, subject, speed), keep=keep)
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
        target = datetime.now(timezone.utc) if shift_to == "now" else parse_time(shift_to)
        if target is None:
            raise click.BadParameter(f"expected an RFC 3339 time or 'now', got {shift_to!r}", param_hint="--shift-to")
    summary = asyncio.run(publish_recordings(settings, list(paths), shift_to=target))
    click.echo(f"{summary.events} events from {summary.files} file(s) published "
               f"({summary.duplicates} already in the stream); {len(summary.errors)} error(s)")
    for error in summary.errors:
        click.echo(f"  {error}", err=True)
    if summary.errors and not summary.events:
        sys.exit(1)


@cli.command()
@click.argument("event_id")
@click.option("-o", "--output", type=click.Choice(["tree", "json"]), default="tree", show_default=True)
@click.pass_context
def context(ctx: click.Context, event_id: str, output: str) -> None:
    """What the graph knows around one event: resources, owners, dependencies, correlated events, causes."""
    from topology.context import ContextError, reveal_context
    from topology.narrative import render_tree

    try:
        found = _on_graph(ctx, lambda graph: reveal_context(graph, event_id))
    except ContextError as e:
        raise click.ClickException(str(e)) from e
    if output == "json":
        _echo_json(found)
    else:
        click.echo("\n".join(render_tree(found)))


@cli.command()
@click.argument("target", nargs=-1, required=True)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-o", "--output", type=click.Choice(["tree", "json"]), default="tree", show_default=True)
@click.pass_context
def explain(ctx: click.Context, target: tuple[str, ...], namespace: str, output: str) -> None:
    """Why a resource is in trouble: `tapio explain pod/web-0 -n shop` (kubectl argument style)."""
    from app.explain import ExplainError, parse_target
    from app.explain import explain as explain_resource
    from topology.narrative import render_hypotheses, render_tree

    try:
        kind, name = parse_target(target)
    except ExplainError as e:
        raise click.UsageError(str(e)) from e

    try:
        found = _on_graph(ctx, lambda graph: explain_resource(graph, kind=kind, name=name, namespace=namespace))
    except ExplainError as e:
        raise click.ClickException(str(e)) from e
    if output == "json":
        _echo_json(found)
    else:
        where = f" -n {found.namespace}" if found.namespace else ""
        click.echo(f"{found.kind}/{found.name}{where}: {found.events} events in the graph; the most telling:")
        click.echo("\n".join(render_tree(found.context)))
        click.echo("")
        click.echo("\n".join(render_hypotheses(found.hypotheses)))


@cli.command()
@click.option("-n", "--namespace", default=None, help="Only predictions about this namespace.")
@click.option("--pattern", default=None, help="Only this pattern's predictions.")
@click.option("--since", default=None, metavar="TIME", help="Only matches at or after TIME (RFC 3339).")
@click.option("--limit", default=50, show_default=True)
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def predictions(ctx: click.Context, namespace: str | None, pattern: str | None, since: str | None, limit: int,
                output: str) -> None:
    """What the behavior patterns predict, from the live graph, best score first."""
    from collectors.replay import parse_time
    from topology.predictions import list_predictions

    start = None
    if since is not None and (start := parse_time(since)) is None:
        raise click.BadParameter(f"expected an RFC 3339 time, got {since!r}", param_hint="--since")
    found = _on_graph(ctx, lambda graph: list_predictions(graph, namespace=namespace, pattern=pattern,
                                                          since=start, limit=limit))
    if output == "json":
        _echo_json(found)
        return
    if not found:
        click.echo("no predictions" + (f" in namespace {namespace}" if namespace else ""))
    for p in found:
        click.echo(f"{p.score:.2f} {p.at:%Y-%m-%d %H:%M:%S}Z [{p.pattern}] {p.scope}: {p.message} "
                   f"(confidence {p.confidence:.0%}, {p.type} by {p.due:%H:%M:%S}Z)")


DEFAULT_CORPUS = Path(__file__).resolve().parent.parent / "patterns" / "scenarios"


@cli.command()
@click.argument("corpora", nargs=-1, type=click.Path(exists=True))
@click.option("--patterns", "patterns_dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="The pattern set to test (default: match.patterns_dir, the shipped catalog).")
@click.option("--compare", "compare_dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="A second pattern set, scored on the same corpora and shown side by side.")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--details", is_flag=True, help="Also list every incident found or missed and every false positive.")
@click.option("--stream", "from_stream", is_flag=True,
              help="Backtest over a replayed range of the live stream (--since/--from-seq ...) instead of files.")
@click.option("--labels", "labels_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="With --stream: the labels of the incidents in that range (the labels.yaml format).")
@_range_options
@click.pass_context
def backtest(ctx: click.Context, corpora: tuple[str, ...], patterns_dir: str | None, compare_dir: str | None,
             output: str, details: bool, from_stream: bool, labels_file: str | None, since: str | None,
             until: str | None, from_seq: int, to_seq: int, subject: str, speed: float, into: str | None) -> None:
    """Score a pattern set on labelled recordings: TP, FP, FN, precision, recall, F1, lead time.

    CORPUS is a folder holding a labels.yaml and recordings (or a folder of such folders);
    default: the labelled scenario suite, patterns/scenarios. With --stream and --labels, the
    corpus is a range of the live stream, replayed into an isolated dataflow per pattern set.
    """
    from rich.console import Console
    from rich.table import Table

    from app.backtest import (
        COLUMNS,
        Corpus,
        Fired,
        LabelError,
        find_corpora,
        pattern_names,
        read_labels,
        run_recordings,
        score,
        table_rows,
    )

    settings = _settings(ctx)
    chosen = patterns_dir or settings.match.patterns_dir
    logging.getLogger("agents.catalog").setLevel(logging.WARNING)  # one line per loaded pattern is noise here
    sets = [chosen] + ([compare_dir] if compare_dir else [])
    reports = []
    if from_stream:
        if not labels_file:
            raise click.UsageError("--stream needs --labels FILE: the incidents of that range")
        try:
            labels = read_labels(labels_file)
        except LabelError as e:
            raise click.ClickException(str(e)) from e
        corpus = Corpus(name=labels.scenario or labels_file, folder=str(Path(labels_file).parent), labels=labels)
        found = [corpus]
        base = into or f"backtest-{datetime.now(timezone.utc):%Y%m%d%H%M%S}"
        bounds = _bounds(since, until, from_seq, to_seq, subject, speed)
        for i, folder in enumerate(sets):
            result = _replay_range(settings, f"{base}-{'ab'[i]}", bounds, patterns_dir=str(Path(folder).resolve()))
            fired = [Fired(pattern=p.pattern, scope=p.scope, at=p.at) for p in result.predictions]
            reports.append(score([(corpus, fired)], pattern_names(folder)))
    else:
        try:
            found = find_corpora(corpora or [DEFAULT_CORPUS])
        except LabelError as e:
            raise click.ClickException(str(e)) from e
        if not found:
            raise click.ClickException(f"no labels.yaml under {', '.join(corpora)}: label a recording first "
                                       f"(see README)")
        for folder in sets:
            results, errors = run_recordings(found, folder)
            for error in errors:
                click.echo(f"warning: {error}", err=True)
            reports.append(score(results, pattern_names(folder)))
    if output == "json":
        _echo_json({"patterns": chosen, "report": reports[0].to_builtins(),
                    **({"compare": compare_dir, "compare_report": reports[1].to_builtins()} if compare_dir else {})})
        return
    title = f"{chosen} on {len(found)} labelled corpora" + (f"  (A -> B: B is {compare_dir})" if compare_dir else "")
    table = Table(title=title)
    for header in ["pattern", *(name for name, _, _ in COLUMNS)]:
        table.add_column(header, justify="left" if header == "pattern" else "right")
    for row in table_rows(reports[0], reports[1] if compare_dir else None):
        table.add_row(*(f"[bold yellow]{text}[/]" if differs else text for text, differs in row),
                      style="bold" if row[0][0] == "(all)" else None)
    console = Console()
    console.width = max(console.width, 132)  # the table is wider than a pipe's 80 columns
    console.print(table)
    if details:
        for finding in reports[0].findings:
            when = f" at {finding.at:%Y-%m-%d %H:%M:%S}Z" if finding.at else ""
            console.print(f"{finding.outcome:>4}  {finding.corpus}: {finding.pattern} in {finding.scope}{when}",
                          markup=False)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--now", "now_text", default=None, metavar="TIME",
              help="Resolve relative ages (kubectl describe, get events) against TIME; default: the newest "
                   "absolute time in the input.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--keep", is_flag=True, help="Leave the isolated worker running (to explore its graph).")
@click.pass_context
def analyze(ctx: click.Context, paths: tuple[str, ...], now_text: str | None, output: str, keep: bool) -> None:
    """What broke, why, and what else is affected: from a support bundle, a must-gather, kubectl output.

    Uses the running stack (`tapio up`) when there is one, else starts the embedded stack for the
    run. The input goes through the same dataflow, patterns and graph as live events, in a
    dataflow of its own.
    """
    import tempfile

    from app.analyze import analyze as run_analysis
    from app.analyze import render
    from app.stack import EmbeddedStack, StackError
    from collectors.replay import parse_time

    now = None
    if now_text is not None and (now := parse_time(now_text)) is None:
        raise click.BadParameter(f"expected an RFC 3339 time, got {now_text!r}", param_hint="--now")
    settings = _settings(ctx)
    stack = None
    if not (Path(settings.state_dir) / "stack.yaml").exists():
        stack = EmbeddedStack(Path(tempfile.mkdtemp(prefix="tapio-analyze-")), bolt_port=None)
        try:
            settings = stack.start()
        except StackError as e:
            raise click.ClickException(str(e)) from e
    from collectors.kubetext import MissingNowError
    from collectors.replay import ReplayFileError

    try:
        with _bars() as progress:
            result = asyncio.run(run_analysis(settings, list(paths), now=now, keep=keep, progress=progress))
    except (MissingNowError, ReplayFileError) as e:
        raise click.ClickException(str(e)) from e
    finally:
        if stack is not None:
            stack.stop()
    if output == "json":
        _echo_json(result)
    else:
        click.echo("\n".join(render(result)))


@cli.command()
@click.option("--limit", default=50, show_default=True)
@click.pass_context
def deadletters(ctx: click.Context, limit: int) -> None:
    """Show the newest dead letters: stage, where, reason."""
    from app.demo import list_deadletters

    for letter in asyncio.run(list_deadletters(_settings(ctx), limit=limit)):
        click.echo(f"{letter.at:%Y-%m-%d %H:%M:%S} [{letter.stage}] {letter.where}: {letter.reason}")


@cli.command()
@click.option("--state-dir", type=click.Path(file_okay=False), default=None,
              help="Where the demo's own stack lives (default: a fresh temporary folder).")
@click.option("--scenario", type=click.Path(exists=True, file_okay=False), default=None,
              help="A folder of recordings to replay instead of the bundled ConfigMap incident.")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for the dataflow to drain.")
def demo(state_dir: str | None, scenario: str | None, timeout: float) -> None:
    """Start the embedded stack and a worker, replay an incident, and show what the graph knows."""
    from app.demo import run_demo

    code = run_demo(state_dir=Path(state_dir) if state_dir else None,
                    scenario=Path(scenario) if scenario else None, timeout=timeout, echo=click.echo)
    sys.exit(code)


def main() -> None:
    from app.jetstream import JetStreamError
    from app.stack import StackError
    from core.ports import GraphError

    try:
        cli(obj={})
    except (GraphError, JetStreamError, StackError, ConfigError) as e:  # the message says what to do
        click.echo(f"Error: {e}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
