"""msgspec codecs for the wire: JSON on NATS subjects, MessagePack on Kafka topics.

Fed by: collectors (encode RawEvent for JetStream), the bridge, every Faust topic.
Feeds: `StructSchema`, the Faust schema that makes each topic carry one msgspec type.

A record that does not decode into its topic's type is not an exception inside Faust (an
exception there restarts the agent and skips offsets); it decodes into `Poison`, which the
agent sends to the dead-letter subject and acknowledges.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

import faust
import msgspec
from faust.types import AppT, Message

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
        module = msgspec.json if wire == "json" else msgspec.msgpack
        self._encoder = json_encoder if wire == "json" else msgpack_encoder
        self._decoder = module.Decoder(typ)

    def encode(self, value: T) -> bytes:
        return self._encoder.encode(value)

    def decode(self, data: bytes) -> T:
        return self._decoder.decode(data)


def where_of(message: Message) -> str:
    return f"{message.topic}[{message.partition}]@{message.offset}"


class StructSchema(faust.Schema):
    """A Faust schema whose values are one msgspec Struct type, encoded as MessagePack."""

    def __init__(self, typ: type[Any]) -> None:
        super().__init__(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
        self.codec = Codec(typ, "msgpack")

    def loads_value(self, app: AppT, message: Message, *, loads: Any = None, serializer: Any = None) -> Any:
        data = message.value or b""
        try:
            return self.codec.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            return Poison(reason=f"not a {self.codec.type.__name__}: {e}", where=where_of(message), payload=data)

    def loads_key(self, app: AppT, message: Message, *, loads: Any = None, serializer: Any = None) -> Any:
        return message.key

    def dumps_value(self, app: AppT, value: Any, *, serializer: Any = None, headers: Any) -> tuple[Any, Any]:
        if isinstance(value, bytes):
            return value, headers
        return self.codec.encode(value), headers

    def dumps_key(self, app: AppT, key: Any, *, serializer: Any = None, headers: Any) -> tuple[Any, Any]:
        if key is None or isinstance(key, bytes):
            return key, headers
        return str(key).encode(), headers
