"""`tapio agent`: the node collectors of this node, run until SIGTERM (or only checked: `--check`).

Fed by: the command line (`--node`, `--only`, `--disable`) and the settings' `agent` section.
Feeds: `app.agent.Agent`, which publishes to JetStream and serves `/healthz` / `/readyz`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import click

from app.cli.settings import settings_of


def _names(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


@click.command()
@click.option("--node", default=None, help="The node's name (default: agent.node, then $NODE_NAME, then the hostname).")
@click.option("--only", default=None, metavar="NAMES",
              help="Comma-separated collectors to run (default: agent.only, else every one).")
@click.option("--disable", default=None, metavar="NAMES", help="Comma-separated collectors not to run.")
@click.option("--check", is_flag=True, help="Say which collectors can start on this node, and why not, then exit "
                                            "(1 when none can).")
@click.pass_context
def agent(ctx: click.Context, node: str | None, only: str | None, disable: str | None, check: bool) -> None:
    """Run this node's collectors (procfs, kernel, dns, cri, etcd, apiserver, journald, kubelet, cni) and publish their
    events to JetStream until interrupted; /healthz on agent.web_host:web_port lists them."""
    from app.agent import Agent, AgentError, local_hostname, node_name
    from app.jetstream import JetStreamError
    from app.node_registry import UnknownCollector

    settings = settings_of(ctx)
    name = node_name(flag=node, configured=settings.agent.node, environ=os.environ, hostname=local_hostname())
    try:
        runner = Agent(settings, node=name, only=_names(only), disable=_names(disable))
    except UnknownCollector as e:
        raise click.UsageError(str(e)) from e

    if check:
        found = asyncio.run(runner.check_all())
        for name, verdict in found.items():
            click.echo(f"{name}: {verdict}")
        if "available" not in found.values():
            sys.exit(1)
        return

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await runner.run(stop)

    try:
        asyncio.run(main())
    except (AgentError, JetStreamError) as e:
        raise click.ClickException(str(e)) from e


COMMANDS = [agent]
