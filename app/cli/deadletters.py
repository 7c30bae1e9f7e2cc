"""`tapio deadletters`: the newest records a stage rejected, with the stage, where and why.

Fed by: the command line (how many) and JetStream's DEADLETTER stream (`app.demo.list_deadletters`).
Feeds: the terminal, one line per dead letter (or one saying there are none, and where it looked).
"""

from __future__ import annotations

import asyncio

import click

from app.cli.settings import settings_of


@click.command()
@click.option("--limit", default=50, show_default=True)
@click.pass_context
def deadletters(ctx: click.Context, limit: int) -> None:
    """Show the newest dead letters: stage, where, reason."""
    from app.demo import list_deadletters

    settings = settings_of(ctx)
    letters = asyncio.run(list_deadletters(settings, limit=limit))
    if not letters:
        click.echo(f"no dead letters: JetStream stream {settings.nats.deadletter_stream} at "
                   f"{', '.join(settings.nats.urls)} holds none (nothing was rejected)")
    for letter in letters:
        click.echo(f"{letter.at:%Y-%m-%d %H:%M:%S} [{letter.stage}] {letter.where}: {letter.reason}")


COMMANDS = [deadletters]
