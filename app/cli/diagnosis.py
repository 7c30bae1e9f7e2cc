"""`tapio analyze / backtest`: root causes from offline material, and a pattern set scored on labels.

Fed by: the command line (support bundles, must-gathers, kubectl output; labelled corpora or a
range of the live stream with its labels; one or two pattern folders). Feeds: `app.analyze`
(the input through the dataflow, on the running stack or one started for the run) and
`app.backtest` (TP/FP/FN, precision, recall, F1, lead time), rendered as text, a rich table
or JSON.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import click
import msgspec

from app.cli.ranges import bounds, range_options, replay_range
from app.cli.settings import settings_of
from app.cli.terminal import echo_json, progress_bars, write_page


@click.command()
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
@range_options
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
        DEFAULT_CORPUS,
        LabelError,
        find_corpora,
        labelled_range,
        score_recordings,
        score_replays,
        table_rows,
    )

    settings = settings_of(ctx)
    chosen = patterns_dir or settings.match.patterns_dir
    logging.getLogger("agents.catalog").setLevel(logging.WARNING)  # one line per loaded pattern is noise here
    sets = [chosen] + ([compare_dir] if compare_dir else [])
    if from_stream:
        if not labels_file:
            raise click.UsageError("--stream needs --labels FILE: the incidents of that range")
        try:
            corpus = labelled_range(labels_file)
        except LabelError as e:
            raise click.ClickException(str(e)) from e
        found = [corpus]
        stream_range = bounds(since, until, from_seq, to_seq, subject, speed)
        reports = score_replays(
            corpus, sets, name=into or f"backtest-{datetime.now(UTC):%Y%m%d%H%M%S}",
            replay=lambda name, folder: replay_range(settings, name, stream_range, patterns_dir=folder).predictions)
    else:
        try:
            found = find_corpora(corpora or [DEFAULT_CORPUS])
        except LabelError as e:
            raise click.ClickException(str(e)) from e
        if not found:
            raise click.ClickException(f"no labels.yaml under {', '.join(corpora)}: label a recording first "
                                       f"(see README)")
        reports, errors = score_recordings(found, sets)
        for error in errors:
            click.echo(f"warning: {error}", err=True)
    families = _diagnosis_scores(corpora or [DEFAULT_CORPUS], chosen) if not from_stream else []
    if output == "json":
        echo_json({"patterns": chosen, "report": reports[0].to_builtins(),
                   **({"compare": compare_dir, "compare_report": reports[1].to_builtins()} if compare_dir else {}),
                   **({"diagnosis": families} if families else {})})
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
    if families:
        table = Table(title=f"diagnosis, per family: the root cause named first ({len(families) - 1} families)")
        for header in ("family", "incidents", "named first", "healthy twins", "quiet"):
            table.add_column(header, justify="left" if header == "family" else "right")
        for f in families:
            table.add_row(f["family"], str(f["incidents"]), str(f["named_first"]), str(f["healthy"]), str(f["quiet"]),
                          style="bold" if f["family"] == "(all)" else None)
        console.print(table)
        if details:
            for miss in (m for f in families[-1:] for m in f.get("misses", [])):
                console.print(f"miss  {miss}", markup=False)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--now", "now_text", default=None, metavar="TIME",
              help="When the input was captured: relative ages (kubectl describe, get events, get pods...) count "
                   "back from "
                   "TIME. Default: the newest absolute time in the input, else the files' modification time.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--patterns", "patterns_dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="The behavior patterns to match (default: match.patterns_dir, the shipped catalog).")
@click.option("--dataflow", is_flag=True,
              help="Match the patterns in an isolated dataflow on the running stack (or one started for the "
                   "run) instead of in this process; the answer is the same, slower.")
@click.option("--keep", is_flag=True, help="With --dataflow: leave the isolated worker running (to explore its graph).")
@click.option("--html", "html_path", default=None, type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Also write the report as one HTML file a ticket can carry (opens offline): the verdict, each "
                   "root cause's causal graph with the topology around it, its timeline and evidence.")
@click.pass_context
def analyze(ctx: click.Context, paths: tuple[str, ...], now_text: str | None, output: str, patterns_dir: str | None,
            dataflow: bool, keep: bool, html_path: str | None) -> None:
    """What broke, why, and what else is affected: from a support bundle, a must-gather, kubectl
    describe or events output, `kubectl get` tables (pods, nodes, workloads, jobs), object lists,
    container logs.

    Every object that is not healthy is diagnosed from its own state, Events and logs, joined to
    what explains it (a rollout, a missing object, a NetworkPolicy, a node), and the behavior
    patterns are matched over the events, all in this process: no server is started.
    """
    from app.analyze import analyze as run_analysis
    from app.analyze import analyze_dataflow, render
    from app.stack import StackError, running_stack
    from collectors.kubetext import MissingNowError
    from collectors.replay import ReplayFileError
    from core.kube.objects import parse_time

    now = None
    if now_text is not None and (now := parse_time(now_text)) is None:
        raise click.BadParameter(f"expected an RFC 3339 time, got {now_text!r}", param_hint="--now")
    settings = settings_of(ctx)
    logging.getLogger("agents.catalog").setLevel(logging.WARNING)  # one line per loaded pattern is noise here
    try:
        if dataflow:
            with running_stack(settings, prefix="tapio-analyze-") as live, progress_bars() as progress:
                result = asyncio.run(analyze_dataflow(live, list(paths), now=now, keep=keep, progress=progress))
        else:
            result = run_analysis(list(paths), now=now, patterns_dir=patterns_dir or settings.match.patterns_dir)
    except (StackError, MissingNowError, ReplayFileError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from e
    if html_path is not None:
        from app.report.page import render_analysis
        write_page(html_path, render_analysis(result))
    if output == "json":
        echo_json(result)
    else:
        click.echo("\n".join(render(result)))


def _diagnosis_scores(corpora: list[str] | tuple[str, ...], patterns_dir: str) -> list[dict]:
    """The diagnosis cases under the corpora, scored per family (app.diagnosis_backtest)."""
    from app.diagnosis_backtest import find_cases, per_family, run_cases

    results = run_cases(find_cases(corpora), patterns_dir=patterns_dir)
    if not results:
        return []
    rows = [msgspec.to_builtins(f) for f in per_family(results)]
    rows[-1]["misses"] = [f"{r.case}: {r.why}" for r in results if not r.passed]
    return rows


COMMANDS = [analyze, backtest]
