"""How commands write to the terminal beyond plain lines: indented JSON, and progress bars.

Fed by: the commands' results (any msgspec-encodable value) and the progress callbacks of long
runs (`app.analyze`, `app.stream_replay`). Feeds: stdout (JSON) and stderr (bars).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import click


def echo_json(value: object) -> None:
    import msgspec

    click.echo(msgspec.json.format(msgspec.json.encode(value).decode(), indent=2))


def write_page(path: str, page: str) -> None:
    """Write an HTML page whole (a temporary file renamed over it) and say where, on stderr."""
    from pathlib import Path

    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    try:
        partial.write_text(page, encoding="utf-8")
        partial.replace(target)
    except OSError as e:
        partial.unlink(missing_ok=True)
        raise click.ClickException(f"could not write the page to {path}: {e.strerror or e}") from e
    click.echo(f"wrote {target} ({len(page.encode()) // 1024} KiB): open it in a browser, it needs no network",
               err=True)


@contextlib.contextmanager
def progress_bars() -> Any:
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
