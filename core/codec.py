"""msgspec codecs for the wire: JSON on NATS subjects, MessagePack on Kafka topics.

Fed by: collectors (encode RawEvent for JetStream), the bridge, every Faust topic.
Feeds: `app.topics.StructSchema`, the Faust schema that makes each topic carry one msgspec type.

A record that does not decode into its topic's type is not an exception inside Faust (an
exception there restarts the agent and skips offsets); it decodes into `Poison`, which the
agent sends to the dead-letter subject and acknowledges.

What one event may carry on the wire (`wire_problem`): integers in 64 bits (MessagePack stops
at 2**64 - 1, the graph stores signed 64-bit), finite floats, strings that are UTF-8 (no lone
surrogates), at most `MAX_DEPTH` levels of nesting. Decoders bound what they read with `Int64`;
a stage that still holds an event it cannot encode drops that one event (agents.stage), never
its batch.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Generic, Literal, Protocol, TypeVar

import msgspec

T = TypeVar("T")

json_encoder = msgspec.json.Encoder()
msgpack_encoder = msgspec.msgpack.Encoder()


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: an integer field as the graph stores it: a decoder reading a larger one rejects the record
Int64 = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]
MAX_DEPTH = 64  # nesting a record may have; Kubernetes objects as Tapio reads them stay below 20


def _int_text(value: int) -> str:
    return str(value) if value.bit_length() <= 128 else f"an integer of {value.bit_length()} bits"


def wire_problem(value: Any, path: str = "$", depth: int = 0) -> str | None:
    """Pure: the first thing in `value` (a Struct, or what it holds) that cannot travel, as
    "<path>: <what is wrong>" (`$.kubernetes.count: 1000000000000000000000000000000 is out of the
    64-bit integer range`), or None."""
    if depth > MAX_DEPTH:
        return f"{path}: nested deeper than {MAX_DEPTH} levels"
    if value is None or isinstance(value, bool | bytes | msgspec.Raw):
        return None
    if isinstance(value, int):
        if INT64_MIN <= value <= INT64_MAX:
            return None
        return f"{path}: {_int_text(value)} is out of the 64-bit integer range"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path}: {value} is not a finite number"
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError as e:
            return f"{path}: not valid UTF-8 (a lone surrogate at character {e.start})"
        return None
    if isinstance(value, msgspec.Struct):
        items: Any = ((f"{path}.{name}", getattr(value, name)) for name in value.__struct_fields__)
    elif isinstance(value, dict):
        items = ((f"{path}[{k!r}]", v) for k, v in value.items())
        for key in value:
            if (problem := wire_problem(key, f"{path} key", depth + 1)) is not None:
                return problem
    elif isinstance(value, list | tuple | set | frozenset):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for where, item in items:
        if (problem := wire_problem(item, where, depth + 1)) is not None:
            return problem
    return None


def utf8_problem(error: UnicodeDecodeError) -> str:
    """Where a decoder met invalid UTF-8: the string it was reading (a window of it around the bad
    byte) and the byte's position in that string, e.g.
    `invalid UTF-8 in the string b'bad-input\\xff' (byte 9: invalid start byte)`."""
    data = bytes(error.object)
    start = max(0, error.start - 40)
    window = data[start:error.end + 40]
    before, after = "..." if start else "", "..." if error.end + 40 < len(data) else ""
    return f"invalid UTF-8 in the string {before}{window!r}{after} (byte {error.start}: {error.reason})"


def safe_payload(value: Any) -> bytes:
    """A dead letter's payload: `value` as MessagePack, or, when it cannot be encoded (that may
    be why it is dead-lettered), its repr with anything not UTF-8 escaped."""
    try:
        return msgpack_encoder.encode(value)
    except Exception:  # any encoding failure: the repr still says what it was
        return repr(value).encode("utf-8", "backslashreplace")


def safe_text(text: str) -> str:
    """`text` with lone surrogates escaped, so a reason or a place always encodes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


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
