"""The `tapio` command: the root group, its options, and the command groups hung on it.

Fed by: the user's shell (`tapio` is `app.cli:main`; `python -m app.cli` runs the same).
Feeds: one module per command group, each a thin shell (arguments in, text out) over the use
cases in `app`:

    app.cli.stack        tapio up / down / worker / bridge / demo: the embedded stack and the dataflow's processes
    app.cli.ingest       tapio replay / collect kubeapi: recordings and a live cluster into JetStream
    app.cli.agent        tapio agent: the node collectors of one node into JetStream
    app.cli.diagnosis    tapio analyze / backtest: root causes from bundles; a pattern set scored on labels
    app.cli.queries      tapio context / explain / predictions: what the live graph knows
    app.cli.catalog      tapio patterns lint / list, tapio feedback: the pattern catalog and votes on it
    app.cli.deadletters  tapio deadletters: what was rejected, why and where

Shared by the groups: `app.cli.settings` (the settings of --config, a graph connection),
`app.cli.terminal` (JSON and progress bars), `app.cli.ranges` (a range of the live stream).
"""

from __future__ import annotations

import logging
import logging.config
import sys

import click

from app.cli import agent, catalog, deadletters, diagnosis, ingest, queries, stack
from app.log_format import FORMATS, logging_config
from core.settings import ConfigError


@click.group()
@click.option("--config", type=click.Path(dir_okay=False), envvar="TAPIO_CONFIG",
              help="YAML configuration (default: the running embedded stack, then built-in defaults).")
@click.option("--log-level", default="info", show_default=True)
@click.option("--log-format", type=click.Choice(FORMATS), default="text", show_default=True, envvar="TAPIO_LOG_FORMAT",
              help="json: one JSON object a line (time, level, logger, message; stage, partition, offset and "
                   "event_id where known), for a log pipeline.")
@click.pass_context
def cli(ctx: click.Context, config: str | None, log_level: str, log_format: str) -> None:
    """Tapio: Kubernetes behavior research engine."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config
    ctx.obj["log_format"] = log_format
    if not logging.root.handlers:  # as logging.basicConfig: a host that configured logging (a test) keeps it
        logging.config.dictConfig(logging_config(log_format, log_level))


for group in (stack, ingest, agent, diagnosis, queries, catalog, deadletters):
    for command in group.COMMANDS:
        cli.add_command(command)


def main() -> None:
    from app.jetstream import JetStreamError
    from app.stack import StackError
    from core.ports import GraphError

    try:
        cli(obj={})
    except (GraphError, JetStreamError, StackError, ConfigError) as e:  # the message says what to do
        click.echo(f"Error: {e}", err=True)
        sys.exit(1)


__all__ = ["cli", "main"]
