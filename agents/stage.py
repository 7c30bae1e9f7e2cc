"""The loop every batch stage shares: read a batch, transform it, send it on, never die.

Fed by: one stage topic. Feeds: the next stage topic, and `deadletter.<stage>` for input the
stage could not use. Used by enrich, normalize, predict and diagnose (`apply_transform` also by the
windows agent's chained predict, agents/predict_chain.py; the sink and the front chain have their own loops).

No exception leaves the loop (a Faust agent that raises is restarted by its supervisor and
skips offsets): a record that does not decode, a transform that raises, and single events a
transform rejects all go to the dead-letter subject with the reason and `topic[partition]@offset`.
An output event that cannot be encoded (an integer beyond 64 bits, a string that is not UTF-8)
is dead-lettered alone, with the path of the bad value (`encode_output`); the rest of the batch
goes on. The output keeps the input's partition, so a namespace stays on one partition end to end.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import faust
import msgspec

from core.codec import Poison, msgpack_encoder, safe_payload, where_of, wire_problem
from core.log_context import bind as bind_log
from core.ports import StageRuntime
from core.records import batch_size
from core.trace_links import batch_events, stage_span, traced

log = logging.getLogger(__name__)

#: transform(batch) -> (output batch or None, [(rejected item, event id, reason)])
Transform = Callable[..., tuple[msgspec.Struct | None, list[tuple[msgspec.Struct, str, str]]]]


Rejected = tuple[msgspec.Struct, str, str]


def encode_output(out: msgspec.Struct) -> tuple[bytes, msgspec.Struct, list[Rejected]]:
    """Pure: a stage's output batch as MessagePack, the batch that encodes (`out`, or `out` without
    what failed), and the items that could not be encoded, each
    with its id and the reason (`core.codec.wire_problem` names the place). The batch is encoded
    once; only when that fails is each item of each list field tried alone, and the batch is
    encoded again without the items that failed. Raises only if what remains still fails."""
    try:
        return msgpack_encoder.encode(out), out, []
    except Exception:  # OverflowError, UnicodeEncodeError...: find the items at fault
        pass
    rejected: list[Rejected] = []
    kept: dict[str, list] = {}
    for name in out.__struct_fields__:
        value = getattr(out, name)
        if not isinstance(value, list):
            continue
        encoded, failed = encode_each(value)
        kept[name] = [item for item, _ in encoded]
        rejected += failed
    out = msgspec.structs.replace(out, **kept)
    return msgpack_encoder.encode(out), out, rejected


def encode_each(items: list[msgspec.Struct]) -> tuple[list[tuple[msgspec.Struct, bytes]], list[Rejected]]:
    """Pure: each item (an event, with an `id`) and its MessagePack; an item that cannot be encoded
    is rejected alone with the place at fault, as `encode_output` does for a batch."""
    encoded: list[tuple[msgspec.Struct, bytes]] = []
    rejected: list[Rejected] = []
    for item in items:
        try:
            encoded.append((item, msgpack_encoder.encode(item)))
        except Exception as e:  # OverflowError, UnicodeEncodeError...
            where = wire_problem(item) or f"{type(e).__name__}: {e}"
            rejected.append((item, str(getattr(item, "id", "")), f"cannot be encoded: {where}"))
    return encoded, rejected


async def dead_letter_rejects(runtime: StageRuntime, stage: str, where: str, rejected: list[Rejected]) -> None:
    """Each item a stage rejected to `deadletter.<stage>` alone: the reason, the batch's
    `topic[partition]@offset` with the event's id, and the item (MessagePack, or its repr)."""
    for item, event_id, reason in rejected:
        await runtime.dead_letter(stage=stage, reason=reason, where=f"{where} event {event_id}",
                                  payload=safe_payload(item), event_id=event_id)


async def apply_transform(runtime: StageRuntime, name: str, where: str, payload: bytes | Callable[[], bytes],
                          transform: Transform, *args: Any) -> tuple[bytes, msgspec.Struct | None] | None:
    """One batch through a stage's `transform(*args)`, encoded, each item it rejected or that does
    not encode dead-lettered alone: (the output's MessagePack, the output without what failed), or
    (b"", None) when it made no output. None when the transform raised or its output cannot be encoded
    as a batch: the whole input (`payload`, or what it returns: made only then) is dead-lettered under
    the stage's name."""
    def payload_of() -> bytes:
        return payload() if callable(payload) else payload
    try:
        out, rejected = transform(*args)
    except Exception as e:  # a bug or a case nobody foresaw: keep the batch, keep going
        log.exception("%s failed on %s; the batch is dead-lettered", name, where)
        await runtime.dead_letter(stage=name, reason=f"{type(e).__name__}: {e}", where=where, payload=payload_of())
        return None
    data = b""
    if out is not None:
        try:
            data, out, unencodable = encode_output(out)
        except Exception as e:  # not an item's fault: the batch itself
            log.exception("%s cannot encode its output for %s; the batch is dead-lettered", name, where)
            await runtime.dead_letter(stage=name, reason=f"output cannot be encoded: {type(e).__name__}: {e}",
                                      where=where, payload=payload_of())
            return None
        rejected = [*rejected, *unencodable]
    await dead_letter_rejects(runtime, name, where, rejected)
    return data, out


def register_stage(app: faust.App, *, name: str, source: faust.TopicT, target: faust.TopicT,
                   transform: Transform, runtime: StageRuntime,
                   before: Callable[[], Awaitable[Any]] | None = None, with_partition: bool = False) -> Any:
    """`before`: awaited after the runtime is ready, before the first record (the predict stage
    waits for its first read of the feedback statistics). `with_partition`: the transform is
    called as transform(batch, partition) (the diagnose stage keeps event time per partition)."""
    async def run(stream: faust.StreamT) -> None:
        await runtime.ready()
        if before is not None:
            await before()
        async for event in stream.events():
            message, value = event.message, event.value
            bind_log(stage=name, partition=message.partition, offset=message.offset)
            where = where_of(message)
            if isinstance(value, Poison):
                await runtime.dead_letter(stage=name, reason=value.reason, where=value.where, payload=value.payload)
                continue
            args = (value, message.partition) if with_partition else (value,)
            with stage_span(runtime.tracer, name, traced(batch_events(value)), limit=runtime.settings.otel.max_links,
                            partition=message.partition, offset=message.offset):
                done = await apply_transform(runtime, name, where, message.value or b"", transform, *args)
                if done is None:
                    continue
                data, out = done
                count = batch_size(out) if out is not None else 0
                # an empty batch still carries the event-time watermark (app.bridge.Watermark)
                # and its JetStream progress (app.checkpoint)
                if out is not None and (count or getattr(out, "watermark", 0) or getattr(out, "matches", None)
                                        or getattr(out, "progress", None)):
                    await target.send(value=data, partition=message.partition)  # bytes: sent as they are
            runtime.stats.add(name, count)

    run.__name__ = name
    return app.agent(source, name=f"tapio.{name}")(run)
