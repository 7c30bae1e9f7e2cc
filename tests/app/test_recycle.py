"""The recycle handshake (app.recycle) and the checkpoint it bridges again from (app.checkpoint),
against the real nats-server of the session's stack. The recycle itself, end to end, runs in
tests/test_kill_one_part.py (the stream with the topics recycled along it equals the baseline)."""

from __future__ import annotations

import asyncio
import time
import uuid

import msgspec
import pytest

from app import recycle
from app.checkpoint import StageProgress, lowest_mark, progress_bucket
from app.jetstream import connect
from core.settings import Settings


def test_a_request_is_claimable_once_the_workers_had_their_grace_and_a_run_once_its_runner_timed_out() -> None:
    asked = recycle.Recycle(state="requested", at=100.0, by="bridge@a/1")
    assert not recycle.claimable(asked, 101.9, grace_s=2.0, timeout_s=60.0)
    assert recycle.claimable(asked, 102.0, grace_s=2.0, timeout_s=60.0)
    running = recycle.Recycle(state="running", at=100.0, by="worker@a/2")
    assert not recycle.claimable(running, 150.0, grace_s=2.0, timeout_s=60.0)
    assert recycle.claimable(running, 160.0, grace_s=2.0, timeout_s=60.0)


def test_a_bridge_asks_once_it_has_bridged_the_configured_mib_and_never_when_off() -> None:
    assert not recycle.due(63 * 2**20, 64.0)
    assert recycle.due(64 * 2**20, 64.0)
    assert not recycle.due(10**12, 0.0)


@pytest.fixture
async def kv(settings: Settings):  # type: ignore[no-untyped-def]
    ns = msgspec.structs.replace(settings.nats, progress_bucket=f"test-recycle-{uuid.uuid4().hex[:8]}")
    nc = await connect(ns, name="test-recycle")
    js = nc.jetstream()
    bucket = await progress_bucket(js, ns)
    yield bucket
    await js.delete_key_value(ns.progress_bucket)
    await nc.close()


async def test_one_request_at_a_time_and_one_runner_among_many_waiting(kv) -> None:  # type: ignore[no-untyped-def]
    assert await recycle.request(kv, "bridge@a/1")
    assert not await recycle.request(kv, "bridge@b/2"), "a second request while one stands"
    runs: list[str] = []

    def runner(name: str):  # type: ignore[no-untyped-def]
        async def run() -> None:
            runs.append(name)
            await asyncio.sleep(0.2)
        return run

    # before the grace: nobody runs it; a bridge that does not wait returns at once, saying there is one
    assert await recycle.settle(kv, "bridge@a/1", runner("bridge"), grace_s=1.0, timeout_s=60.0, wait=False)
    assert runs == []
    # after it: three parts waiting, one runs it, all return once it is done and the key is gone
    started = time.monotonic()
    seen = await asyncio.gather(*(recycle.settle(kv, f"worker@{i}", runner(f"worker@{i}"), grace_s=1.0,
                                                 timeout_s=60.0) for i in range(3)))
    assert seen == [True, True, True]
    assert len(runs) == 1 and time.monotonic() - started >= 0.5
    assert await recycle.current(kv) is None
    assert await recycle.request(kv, "bridge@a/1"), "the next request is taken once the last recycle ended"


async def test_a_recycle_whose_runner_died_is_taken_over_after_the_timeout(kv) -> None:  # type: ignore[no-untyped-def]
    assert await recycle.request(kv, "bridge@a/1")
    found = await recycle.current(kv)
    assert found is not None
    assert await recycle.claim(kv, found[1], "worker@dead/9")
    assert not await recycle.claim(kv, found[1], "worker@late/3"), "claimed at a stale revision"
    runs: list[str] = []

    async def run() -> None:
        runs.append("worker@b/4")

    assert await recycle.settle(kv, "worker@b/4", run, grace_s=0.0, timeout_s=0.5)
    assert runs == ["worker@b/4"] and await recycle.current(kv) is None


async def test_a_value_written_by_hand_is_a_request_from_nobody(kv) -> None:  # type: ignore[no-untyped-def]
    await kv.put(recycle.KEY, b"please")
    found = await recycle.current(kv)
    assert found is not None and found[0].state == "requested" and found[0].by == "unknown"


async def test_the_checkpoint_is_the_lowest_mark_of_the_sink_and_the_windows_and_names_it(kv) -> None:  # type: ignore[no-untyped-def]
    marks = StageProgress(kv, every_s=0.0)
    assert await lowest_mark(kv, 2) == (0, "sink.p0"), "nothing recorded: nothing is held"
    for p in range(2):
        marks.written(p, 100 + p)
        for q in range(2):
            marks.absorbed(q, p, 90 + 10 * q + p)
    await marks.save()
    assert await lowest_mark(kv, 2) == (90, "windows.q0.p0")
    marks.absorbed(0, 0, 95)
    marks.absorbed(0, 0, 80)  # an older sequence never moves a mark back
    await marks.save()
    assert await lowest_mark(kv, 2) == (91, "windows.q0.p1")


async def _until_mark(kv, partitions: int, wanted: tuple[int, str]) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    got = await lowest_mark(kv, partitions)
    for _ in range(100):
        if got == wanted:
            break
        await asyncio.sleep(0.05)
        got = await lowest_mark(kv, partitions)
    return got


async def test_a_stage_saves_its_progress_behind_itself_and_a_stop_waits_for_the_newest(kv) -> None:  # type: ignore[no-untyped-def]
    marks = StageProgress(kv, every_s=0.0)
    marks.written(0, 7)
    marks.absorbed(0, 0, 5)
    assert marks.save_behind() is None  # not awaited: the stage goes on at once
    assert await _until_mark(kv, 1, (5, "windows.q0.p0")) == (5, "windows.q0.p0"), "the save ran behind the stage"
    marks.written(0, 12)
    marks.absorbed(0, 0, 11)
    marks.save_behind()
    marks.save_behind()  # one save at a time: the second call while the first runs adds none
    await marks.save(force=True)  # a stop: waits for the one running, then saves what is newest
    assert await lowest_mark(kv, 1) == (11, "windows.q0.p0")


class _RefusingOnce:
    """The real bucket, whose first write fails as a NATS timeout would."""

    def __init__(self, kv) -> None:  # type: ignore[no-untyped-def]
        self.kv, self.refused = kv, 0

    async def put(self, key: str, value: bytes) -> int:
        if not self.refused:
            self.refused += 1
            raise TimeoutError("refused by the test")
        return await self.kv.put(key, value)


async def test_a_save_behind_that_fails_is_logged_and_the_next_one_saves_the_marks(kv, caplog) -> None:  # type: ignore[no-untyped-def]
    marks = StageProgress(_RefusingOnce(kv), every_s=0.0)  # type: ignore[arg-type]
    marks.written(0, 3)
    marks.absorbed(0, 0, 3)
    with caplog.at_level("WARNING", logger="app.checkpoint"):
        marks.save_behind()
        for _ in range(100):
            if caplog.records:
                break
            await asyncio.sleep(0.01)
    assert "saving the stages' progress failed (refused by the test)" in caplog.text
    assert await lowest_mark(kv, 1) == (0, "sink.p0"), "nothing saved by the refused write"
    marks.save_behind()
    assert await _until_mark(kv, 1, (3, "sink.p0")) == (3, "sink.p0"), "the next save wrote both marks"
