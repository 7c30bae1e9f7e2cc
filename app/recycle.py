"""Recycling the embedded broker: the dataflow's topics dropped and rebuilt on purpose, to bound its memory.

Tansu, the embedded Kafka, keeps every record in memory: no retention, no compaction, and
DeleteRecords panics (shared/notes/stack.md). Only deleting a topic frees what it holds. JetStream
is the dataflow's durable log and the graph's checkpoint says what the graph holds
(`app.checkpoint`), so the topics can be dropped and rebuilt from JetStream: the path of a Kafka
that lost its data (`app.bridge.Bridge.recover`), here taken on purpose and in an order that keeps
every Faust consumer off the topics while they are rebuilt:

1. A bridge that has bridged `kafka.recycle_after_mib` since it started (or since the last
   recycle) stops bridging until the graph and the windows hold everything it bridged (at most
   `kafka.recycle_drain_s`), so that the recycle drops nothing the workers would have to redo,
   then asks for one: the key `kafka.recycle` in the progress bucket, created only where absent,
   so one recycle runs at a time.
2. While the key is there, no bridge bridges, and every worker restarts itself (`app.restart`,
   it polls the key every `POLL_S`) and waits before it starts Faust (`settle`).
3. `kafka.recycle_grace_s` after the request, the first bridge or waiting worker to claim the key
   runs the recycle: every dataflow topic recreated (a new epoch), what JetStream delivered after
   the graph's checkpoint bridged again, the epoch recorded, the key deleted.
4. The workers recreate their changelogs (their RocksDB tables keep the state) and start; they
   read the new topics from their start. The bridges go on.

A runner that dies leaves the key "running"; `kafka.recycle_timeout_s` after its claim another
one claims it. Each recycle stops the dataflow for about a worker's restart; JetStream holds what
arrives meanwhile, and the workers catch up afterwards.

Off (0) by default: a real Kafka trims its topics by retention. The embedded stack turns it on
(`app.stack`).

A Kafka that lost the dataflow's data (`app.kafka_epoch`) is rebuilt the same way, whatever the
setting (`why` = KAFKA_LOST): the bridge that notices asks, and the recovery runs once every
worker is off the topics. A worker still reading them would take the records bridged again from
its old positions, skip those below, and move event time past them, so they would be late.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import msgspec
import nats.js.errors
from nats.js.kv import KeyValue

from core.codec import Codec

log = logging.getLogger(__name__)

KEY = "kafka.recycle"
POLL_S = 0.25  # how often a worker looks for a request, and a waiting part for the end of a recycle


#: why a recycle is asked for: the broker's memory (`kafka.recycle_after_mib`), or Kafka lost the
#: dataflow's data (`app.bridge.Bridge.check_epoch`: the topics must be rebuilt anyway, and the
#: workers must be off them first)
MEMORY = "the embedded broker's memory"
KAFKA_LOST = "Kafka lost the dataflow's data"


class Recycle(msgspec.Struct, frozen=True, kw_only=True):
    """The key's value: a recycle asked for (`requested`) or being run (`running`), since `at`
    (wall-clock seconds), by whom, and why."""

    state: Literal["requested", "running"]
    at: float
    by: str
    why: str = MEMORY


CODEC = Codec(Recycle, "json")


def part_name(kind: str) -> str:
    """Who asks or runs, for the key and the logs: `<kind>@<host>/<pid>`."""
    return f"{kind}@{socket.gethostname()}/{os.getpid()}"


def claimable(recycle: Recycle, now: float, *, grace_s: float, timeout_s: float) -> bool:
    """Pure: may a waiting part run this recycle now? A request once the workers have had
    `grace_s` to stop reading; a run whose runner has not finished in `timeout_s` (it died)."""
    if recycle.state == "requested":
        return now - recycle.at >= grace_s
    return now - recycle.at >= timeout_s


def due(bridged_bytes: int, after_mib: float) -> bool:
    """Pure: has a bridge bridged enough since the last recycle to ask for one? (0: never)"""
    return after_mib > 0 and bridged_bytes >= after_mib * 1024 * 1024


async def current(kv: KeyValue) -> tuple[Recycle, int] | None:
    """The recycle asked for or running, with the key's revision; None when there is none.
    A value that is not a Recycle (written by hand) counts as a request from nobody."""
    try:
        entry = await kv.get(KEY)
    except nats.js.errors.KeyNotFoundError:
        return None
    if not entry.value:  # a delete marker
        return None
    try:
        return CODEC.decode(entry.value), entry.revision or 0
    except (msgspec.DecodeError, msgspec.ValidationError):
        log.warning("recycle: %s holds %r, not a recycle; taking it for a request", KEY, entry.value[:80])
        return Recycle(state="requested", at=0.0, by="unknown"), entry.revision or 0


async def request(kv: KeyValue, by: str, why: str = MEMORY) -> bool:
    """Ask for a recycle; False when one is already asked for or running."""
    try:
        await kv.create(KEY, CODEC.encode(Recycle(state="requested", at=time.time(), by=by, why=why)))
    except nats.js.errors.KeyWrongLastSequenceError:
        return False
    log.warning("recycle: %s asks for the dataflow's topics to be rebuilt (%s); the dataflow pauses "
                "while the workers restart", by, why)
    return True


async def claim(kv: KeyValue, revision: int, by: str, why: str = MEMORY) -> bool:
    """Take the run of the recycle at `revision`; False when somebody else changed the key first."""
    try:
        await kv.update(KEY, CODEC.encode(Recycle(state="running", at=time.time(), by=by, why=why)),
                        last=revision)
    except nats.js.errors.KeyWrongLastSequenceError:
        return False
    return True


async def done(kv: KeyValue) -> None:
    await kv.delete(KEY)


async def settle(kv: KeyValue, by: str, run: Callable[[], Awaitable[None]], *, grace_s: float,
                 timeout_s: float, wait: bool = True) -> bool:
    """While a recycle is asked for or running: claim and `run` it when it is claimable, else wait
    for it (or, with `wait=False`, return at once). Returns whether there was one."""
    seen = False
    while True:
        found = await current(kv)
        if found is None:
            return seen
        seen = True
        recycle, revision = found
        if claimable(recycle, time.time(), grace_s=grace_s, timeout_s=timeout_s) and \
                await claim(kv, revision, by, recycle.why):
            if recycle.state == "running":
                log.warning("recycle: %s did not finish the recycle it claimed %.0f s ago; %s runs it",
                            recycle.by, time.time() - recycle.at, by)
            started = time.monotonic()
            await run()
            await done(kv)
            log.warning("recycle: %s rebuilt the dataflow's topics in %.1f s (asked for by %s: %s)",
                        by, time.monotonic() - started, recycle.by, recycle.why)
            return True
        if not wait:
            return True
        await asyncio.sleep(POLL_S)
