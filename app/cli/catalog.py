"""`tapio patterns lint / list` and `tapio feedback`: the behavior-pattern catalog and the votes on it.

Fed by: the command line (a pattern folder, a prediction id and its vote), the catalog of
`match.patterns_dir` and the graph's predictions and feedback. Feeds: `agents.pattern_files.lint`
(file:line: field: problem), `app.learning.pattern_statistics` (confidence as feedback moved
it) and `topology.feedback.record_feedback` (the vote, as POST /api/v1/feedback stores it).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from app.cli.settings import on_graph, settings_of
from app.cli.terminal import echo_json


@click.group()
def patterns() -> None:
    """Behavior patterns (YAML, apiVersion behavior.tapio.io/v1)."""


@patterns.command(name="lint")
@click.argument("directory", type=click.Path(exists=True, file_okay=False), required=False)
@click.pass_context
def patterns_lint(ctx: click.Context, directory: str | None) -> None:
    """Check every pattern file of DIRECTORY; errors name file, line and field.

    DIRECTORY defaults to match.patterns_dir: the catalog shipped with Tapio unless configured.
    """
    from agents.pattern_files import lint

    if directory is None:
        directory = settings_of(ctx).match.patterns_dir
        if not Path(directory).is_dir():
            raise click.ClickException(f"pattern directory {directory} does not exist: set match.patterns_dir")
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

    settings = settings_of(ctx)
    logging.getLogger("agents.catalog").setLevel(logging.WARNING)
    try:
        catalog = Catalog(settings.match.patterns_dir)
    except FileNotFoundError as e:
        raise click.ClickException(str(e)) from e
    reports = on_graph(ctx, lambda graph: pattern_statistics(graph, catalog.patterns, rule_of(settings.feedback)))
    if output == "json":
        echo_json({"patterns": reports, "catalog_errors": catalog.errors})
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


@click.command()
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
        stored = on_graph(ctx, lambda graph: record_feedback(
            graph, prediction_id=vote.prediction_id, accurate=vote.accurate, rating=vote.rating,
            comment=vote.comment, source="cli"))
    except UnknownPrediction as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"{stored.id}: {'accurate' if stored.accurate else 'inaccurate'} vote on {stored.prediction_id} "
               f"({stored.pattern} {stored.version}); workers apply it within feedback.refresh_interval_s")


COMMANDS = [patterns, feedback]
