"""What every task of the worker is waiting on now: `/tapio/tasks/`.

Fed by: the worker's event loop (`asyncio.all_tasks`). Feeds: an operator (or a test's evidence)
asking why a stage or service stopped moving without logging anything: each task's await chain,
outermost first, down to the future it waits for (a graph reply, a Kafka fetch, a sleep). `?match=`
keeps the tasks whose chain names it (`?match=topology_service`). A stack dump of a live worker
without a debugger or py-spy; Python 3.14's `asyncio.capture_call_graph` does the same.
"""

from __future__ import annotations

import asyncio
from typing import Any

#: frames kept per task: the chain of a Faust agent is about 12 deep
DEPTH = 24


def _where(frame: Any) -> str:
    path = frame.f_code.co_filename
    parts = path.split("/")
    short = "/".join(parts[-2:]) if "site-packages" not in path else "/".join(parts[parts.index("site-packages") + 1:])
    return f"{short}:{frame.f_lineno} {frame.f_code.co_name}"


def await_chain(awaitable: Any, depth: int = DEPTH) -> list[str]:
    """Pure over a suspended coroutine (or generator, async generator): where each link of its
    await chain stands, outermost first; the last line names what the innermost one waits for."""
    chain: list[str] = []
    current = awaitable
    while current is not None and len(chain) < depth:
        frame = (getattr(current, "cr_frame", None) or getattr(current, "gi_frame", None)
                 or getattr(current, "ag_frame", None))
        if frame is not None:
            chain.append(_where(frame))
        following = (getattr(current, "cr_await", None) or getattr(current, "gi_yieldfrom", None)
                     or getattr(current, "ag_await", None))
        if following is None and frame is None:
            name = type(current).__name__  # awaiting a Future awaits its iterator (C `FutureIter`)
            chain.append(f"waits on {'Future' if name == 'FutureIter' else name}")
        current = following
    return chain


def tasks(match: str = "") -> list[dict[str, Any]]:
    """Every pending task of the running loop with its await chain, those naming `match` only."""
    found = []
    for task in asyncio.all_tasks():
        if task.done():
            continue
        chain = await_chain(task.get_coro())
        if match and not any(match in link for link in chain) and match not in task.get_name():
            continue
        found.append({"name": task.get_name(), "chain": chain})
    return sorted(found, key=lambda t: t["name"])


def register_task_view(app: Any) -> None:
    @app.page("/tapio/tasks/")
    async def task_view(web: Any, request: Any) -> Any:
        found = tasks(request.query.get("match", ""))
        return web.json({"count": len(found), "tasks": found})
