"""msgspec codecs for the wire: JSON on NATS subjects, MessagePack on Kafka topics.

Fed by: collectors (encode RawEvent for JetStream), the bridge, every Faust topic.
Feeds: `app.topics.StructSchema`, the Faust schema that makes each topic carry one msgspec type.

A record that does not decode into its topic's type is not an exception inside Faust (an
exception there restarts the agent and skips offsets); it decodes into `Poison`, which the
agent sends to the dead-letter subject and acknowledges.
"""

from __future__ import annotations

from typing import Generic, Literal, Protocol, TypeVar

import msgspec

T = TypeVar("T")

json_encoder = msgspec.json.Encoder()
msgpack_encoder = msgspec.msgpack.Encoder()


class Poison(msgspec.Struct, frozen=True, kw_only=True):
    """A record that failed to decode: where it came from, why, and its bytes."""

    reason: str
    where: str
    payload: bytes


class Codec(Generic[T]):
    """One msgspec type on the wire: `Codec(RawEvent, "json")` for NATS, `"msgpack"` for Kafka."""

    def __init__(self, typ: type[T], wire: Literal["json", "msgpack"]) -> None:
        self.type = typ
        self._encoder: msgspec.json.Encoder | msgspec.msgpack.Encoder = (
            json_encoder if wire == "json" else msgpack_encoder)
        self._decoder: msgspec.json.Decoder[T] | msgspec.msgpack.Decoder[T] = (
            msgspec.json.Decoder(typ) if wire == "json" else msgspec.msgpack.Decoder(typ))

    def encode(self, value: T) -> bytes:
        return self._encoder.encode(value)

    def decode(self, data: bytes) -> T:
        return self._decoder.decode(data)


class Located(Protocol):
    """A consumed record's position (a Faust/aiokafka message)."""

    topic: str
    partition: int
    offset: int


def where_of(message: Located) -> str:
    """`topic[partition]@offset`: where a rejected record sits, for the dead-letter reason."""
    return f"{message.topic}[{message.partition}]@{message.offset}"
