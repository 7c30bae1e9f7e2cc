"""Waiting on conditions, never on time, for the tests (not a test module).

Importable from any test (`pythonpath = ["tests/support"]` in pyproject.toml):

    from waiting import until, until_sync

    found = await until(lambda: graph_count(settings, ids), timeout=60, what="every event in the graph")

`condition` is called (a coroutine function or a plain one; an awaitable result is awaited)
until it returns something truthy, which is returned. On timeout an AssertionError names
`what` and shows the last value seen, so a failure says what was expected and what was there.
An exception listed in `ignoring` (a web server not answering yet: OSError) counts as "not yet"
and is shown as the last value. Child processes in `procs` (anything with `alive()`, `name`
and `log_tail()`, e.g. `app.workers.ChildProcess`) must stay alive: one that died fails the
wait at once, with its log.

`until_sync` is the same for synchronous tests (it blocks: never call it from async code).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Iterable
from typing import Any

EVERY = 0.05  # seconds between two looks: conditions here are cheap loopback reads


def _describe(what: str | Callable[[], str]) -> str:
    return what() if callable(what) else what


def _short(value: object, limit: int = 2000) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def _check_alive(procs: Iterable[Any], what: str | Callable[[], str]) -> None:
    for proc in procs:
        if not proc.alive():
            raise AssertionError(f"{proc.name} died while waiting for {_describe(what)}:\n{proc.log_tail()}")


def _failure(what: str | Callable[[], str], timeout: float, last: object, procs: Iterable[Any]) -> AssertionError:
    logs = "".join(f"\n--- {p.name}\n{p.log_tail(2000)}" for p in procs)
    return AssertionError(f"timed out after {timeout:g}s waiting for {_describe(what)} (last: {_short(last)}){logs}")


# ASYNC109: the deadline belongs to the condition (and goes into the failure message), as in until_sync
async def until(condition: Callable[[], Any], *, timeout: float, what: str | Callable[[], str],  # noqa: ASYNC109
                every: float = EVERY, ignoring: tuple[type[BaseException], ...] = (),
                procs: Iterable[Any] = ()) -> Any:
    """Poll `condition()` until it returns something truthy; return it (see the module docstring)."""
    procs = list(procs)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: object = None
    while True:
        _check_alive(procs, what)
        try:
            last = condition()
            if inspect.isawaitable(last):
                last = await last
        except ignoring as e:
            last = e
        else:
            if last:
                return last
        if loop.time() >= deadline:
            raise _failure(what, timeout, last, procs)
        await asyncio.sleep(every)


def until_sync(condition: Callable[[], Any], *, timeout: float, what: str | Callable[[], str],
               every: float = EVERY, ignoring: tuple[type[BaseException], ...] = (),
               procs: Iterable[Any] = ()) -> Any:
    """`until` for synchronous tests: blocks between looks."""
    procs = list(procs)
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        _check_alive(procs, what)
        try:
            last = condition()
        except ignoring as e:
            last = e
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise _failure(what, timeout, last, procs)
        time.sleep(every)


def worker_ready(port: int) -> bool:
    """Whether the worker serving on 127.0.0.1:`port` answers /readyz with 200 (OSError: not up yet)."""
    from scrape import get

    return get(port, "/readyz", timeout=5)[0] == 200


def wait_worker_ready(port: int, proc: Any, *, timeout: float = 90) -> None:
    """Until the worker `proc` (serving on `port`) answers /readyz with 200."""
    until_sync(lambda: worker_ready(port), timeout=timeout, what=f"{proc.name} to answer /readyz with 200",
               ignoring=(OSError,), procs=[proc])
