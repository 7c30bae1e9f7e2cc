"""/tapio/tasks/: what each task of a worker awaits, outermost first, down to the future it waits on."""

from __future__ import annotations

import asyncio

from app.task_view import tasks


async def _held(gate: asyncio.Event) -> None:
    await _deeper(gate)


async def _deeper(gate: asyncio.Event) -> None:
    await gate.wait()


async def test_a_task_held_in_a_nested_await_names_every_link_and_what_it_waits_on() -> None:
    gate = asyncio.Event()
    task = asyncio.create_task(_held(gate), name="held-task")
    await asyncio.sleep(0)  # let it reach the wait
    try:
        [found] = tasks("held-task")
        chain = found["chain"]
        assert [link.split(" ")[-1] for link in chain[:3]] == ["_held", "_deeper", "wait"], chain
        assert chain[0].startswith("app/test_task_view.py:") and chain[-1] == "waits on Future", chain
        assert tasks("no task is named like this") == []
    finally:
        gate.set()
        await task
    assert not tasks("held-task")  # done tasks are not listed
