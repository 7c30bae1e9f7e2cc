"""What a command needs from the root group: the settings `--config` names, and the graph they point at.

Fed by: the root group's context (`ctx.obj["config"]`). Feeds: every command that reads the
configuration or queries the graph; an unusable configuration becomes a usage error that
names the file or variable. Loading them also declares `secrets.safe_env` to `core.kube.redact`
(the env values every reader of this process may show).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from core.kube.redact import use_safe_env_names
from core.settings import ConfigError, Settings, load_settings

T = TypeVar("T")


def settings_of(ctx: click.Context) -> Settings:
    """The settings; the env variables they declare safe apply to every reader of this process."""
    try:
        settings = load_settings(ctx.obj.get("config"))
    except ConfigError as e:
        raise click.ClickException(str(e)) from e
    use_safe_env_names(settings.secrets.safe_env)
    return settings


def on_graph(ctx: click.Context, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(graph)` on the configured graph, closing the connection after."""
    from topology.graph import open_graph

    async def main() -> T:
        graph = open_graph(settings_of(ctx).graph)
        try:
            return await work(graph)
        finally:
            await graph.close()

    return asyncio.run(main())
