"""A range of the live EVENTS stream on the command line, and its replay into an isolated dataflow.

Fed by: the options of `tapio replay` and `tapio backtest --stream` (--since/--until,
--from-seq/--to-seq, --subject, --speed, --into). Feeds: `app.stream_replay.replay_range`,
with progress bars on the terminal; a bad time or a range that cannot be replayed is a usage
error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import click

from app.cli.terminal import progress_bars
from core.settings import Settings


def range_options(func: Callable) -> Callable:
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


def bounds(since: str | None, until: str | None, from_seq: int, to_seq: int, subject: str, speed: float) -> dict:
    from core.kube.objects import parse_time

    found: dict[str, Any] = {"from_seq": from_seq, "to_seq": to_seq, "subject": subject, "speed": speed}
    for name, text in (("since", since), ("until", until)):
        if text is not None:
            when = parse_time(text)
            if when is None:
                raise click.BadParameter(f"expected an RFC 3339 time, got {text!r}", param_hint=f"--{name}")
            found[name] = when
    return found


def replay_range(settings: Settings, name: str, range_bounds: dict, *, patterns_dir: str | None = None,
                 keep: bool = False) -> Any:
    """Run app.stream_replay.replay_range with progress bars on the terminal."""
    from app.stream_replay import ReplayRangeError
    from app.stream_replay import replay_range as replay

    with progress_bars() as progress:
        try:
            return asyncio.run(replay(settings, name, patterns_dir=patterns_dir, progress=progress,
                                      keep=keep, **range_bounds))
        except ReplayRangeError as e:
            raise click.ClickException(str(e)) from e
