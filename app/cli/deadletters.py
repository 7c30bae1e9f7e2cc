"""`tapio deadletters`: the newest records a stage rejected, with the stage, where and why.

Fed by: the command line (how many) and JetStream's DEADLETTER stream (`app.demo.list_deadletters`).
Feeds: the terminal, one line per dead letter.
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

    for letter in asyncio.run(list_deadletters(settings_of(ctx), limit=limit)):
        click.echo(f"{letter.at:%Y-%m-%d %H:%M:%S} [{letter.stage}] {letter.where}: {letter.reason}")


COMMANDS = [deadletters]
