"""Kubernetes recording files -> the documents inside them, each with the place it came from.

Fed by: `collectors.replay` (the bytes of a file a user handed Tapio: `kubectl get -o json|yaml`
lists, bare JSON arrays, multi-document YAML, `kubectl get -w -o json [--output-watch-events]`
streams, a single object). Feeds: `collectors.replay`, which turns every `Item` into a RawEvent.

The format is detected from the content, never from the file name. Nothing here raises on bad
content: each part that cannot be decoded becomes a `UnusableInput` carrying its line and column,
and every complete item before the damage (and after it, for watch streams and YAML documents)
is still yielded.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterator
from typing import Any

import msgspec
import yaml

from collectors.limits import MAX_DEPTH, RefusedYaml, SafeYamlLoader, deeper_than, skip_json_value, too_deep
from collectors.unusable import FRAGMENT_CHARS, UnusableInput
from core.kube.objects import SNAPSHOT

WATCH_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"})

_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\r\n]*")
_YAML_DOC_START = re.compile(r"^---(?=[ \t\r]|$)", re.MULTILINE)
_YAML_BLANK = re.compile(r"\A(?:[ \t]*(?:#[^\n]*)?(?:\r?\n|\Z))*\Z")


class Item(msgspec.Struct, frozen=True, kw_only=True):
    """One decoded document part, not yet checked: `value` may well not be a mapping."""

    value: Any
    position: str  # "items[3]", "[2]", "document", "document 2 items[0]", "line 40 (watch event 7)"
    action: str = SNAPSHOT  # or ADDED / MODIFIED / DELETED from a watch event
    list_kind: str = ""  # "PodList" when the item came out of a typed list (implies kind Pod)
    list_api_version: str = ""
    from_watch: bool = False  # value is the `object` of a watch event


class _YamlLoader(yaml.CSafeLoader):
    """Safe YAML without the timestamp resolver (times stay RFC3339 strings, as in JSON), all in C:
    only for documents that cannot nest deep nor hold aliases (`_load_yaml`)."""


_YamlLoader.yaml_implicit_resolvers = SafeYamlLoader.yaml_implicit_resolvers
_C_SAFE_DEPTH = 2000  # libyaml's C composer recurses per level (200,000 levels overflow the C stack)
_YAML_PREFIX = re.compile(r"^[ ?-]*", re.MULTILINE)


def fragment_of(text: str, start: int = 0, end: int | None = None) -> str:
    end = len(text) if end is None else end
    return text[max(0, start) : min(end, max(0, start) + FRAGMENT_CHARS)]


def split_recording(data: bytes, file: str) -> Iterator[Item | UnusableInput]:
    """Every Kubernetes document part in `data`, in file order, and an error for each bad part."""
    text = _decode_text(data)
    if isinstance(text, UnusableInput):
        yield UnusableInput(file=file, position=text.position, reason=text.reason, fragment=text.fragment)
        return
    start = _WS.match(text).end()
    if start == len(text):
        yield UnusableInput(file=file, position="file", reason="empty file: no Kubernetes objects")
    elif text[start] in "{[":
        yield from _split_json(text, file)
    else:
        yield from _split_yaml(text, file)


def _decode_text(data: bytes) -> str | UnusableInput:
    def binary(why: str) -> UnusableInput:
        return UnusableInput(file="", position="file", reason=f"not a text file: {why}", fragment=repr(data[:60]))

    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    nul = data.find(b"\x00")
    if nul >= 0:
        return binary(f"binary data (NUL byte at offset {nul})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return binary(f"binary data (invalid UTF-8 at byte {exc.start})")


# -- what a decoded value holds -------------------------------------------------------------


def is_watch_event(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("type"), str)  # a list or mapping there is no watch type (nor hashable)
        and value["type"] in WATCH_TYPES
        and "object" in value
        and "kind" not in value
        and "metadata" not in value
    )


def _is_list(value: dict) -> bool:
    kind = value.get("kind")
    if isinstance(kind, str) and kind.endswith("List"):
        return True
    return kind is None and "items" in value


def _join(base: str, path: str) -> str:
    return f"{base} {path}" if base else path


def expand(value: Any, base: str, file: str) -> Iterator[Item | UnusableInput]:
    """The items of one decoded document: list items, array elements, a watch event, an object."""
    here = base or "document"
    if isinstance(value, list):
        for index, element in enumerate(value):
            path = _join(base, f"[{index}]")
            if is_watch_event(element):
                yield from _watch_item(element, path, file)
            else:
                yield Item(value=element, position=path)
    elif isinstance(value, dict):
        if is_watch_event(value):
            yield from _watch_item(value, here, file)
        elif value.get("kind") == "Status" and value.get("status") == "Failure":
            yield UnusableInput(file=file, position=here, reason=f"API error Status: {_status_text(value)}",
                                fragment=json.dumps(value, sort_keys=True, default=str)[:FRAGMENT_CHARS])
        elif _is_list(value):
            yield from _list_items(value, base, file)
        else:
            yield Item(value=value, position=here)
    else:
        what = "plain text (a kubectl table or a log?)" if isinstance(value, str) else type(value).__name__
        yield UnusableInput(
            file=file,
            position=here,
            reason=f"not a Kubernetes object: expected a mapping or a list, got {what}",
            fragment=str(value)[:FRAGMENT_CHARS],
        )


def _list_items(value: dict, base: str, file: str) -> Iterator[Item | UnusableInput]:
    kind = value.get("kind") if isinstance(value.get("kind"), str) else ""
    api_version = value.get("apiVersion") if isinstance(value.get("apiVersion"), str) else ""
    items = value.get("items")
    if items is None:
        return
    if not isinstance(items, list):
        yield UnusableInput(
            file=file,
            position=base or "document",
            reason=f"items: expected a list, got {type(items).__name__}",
            fragment=str(items)[:FRAGMENT_CHARS],
        )
        return
    for index, element in enumerate(items):
        yield Item(
            value=element,
            position=_join(base, f"items[{index}]"),
            list_kind=kind,
            list_api_version=api_version,
        )


def _watch_item(event: dict, position: str, file: str) -> Iterator[Item | UnusableInput]:
    kind = event["type"]
    obj = event["object"]
    if kind == "BOOKMARK":
        return
    if kind == "ERROR":
        yield UnusableInput(
            file=file,
            position=position,
            reason=f"watch ERROR event: {_status_text(obj)}",
            fragment=json.dumps(obj, sort_keys=True, default=str)[:FRAGMENT_CHARS],
        )
        return
    yield Item(value=obj, position=position, action=kind, from_watch=True)


def _status_text(status: Any) -> str:
    if not isinstance(status, dict):
        return str(status)[:FRAGMENT_CHARS]
    message = status.get("message") or status.get("reason") or "no message"
    code = status.get("code")
    return f"{message} (code {code})" if code is not None else str(message)


# -- JSON: one document, a truncated document, or a stream of concatenated objects -----------


class _Lines:
    """Line and column of an offset, computed only when asked."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._newlines: list[int] | None = None

    def line(self, pos: int) -> int:
        if self._newlines is None:
            self._newlines = [m.start() for m in re.finditer("\n", self._text)]
        return bisect.bisect_left(self._newlines, pos) + 1

    def column(self, pos: int) -> int:
        return pos - self._text.rfind("\n", 0, pos)


def _split_json(text: str, file: str) -> Iterator[Item | UnusableInput]:
    try:
        whole = msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError):  # RecursionError: nested ~1,000 deep, read part by part
        pass
    else:
        if not deeper_than(whole, MAX_DEPTH + 2):  # a list's items sit two levels below it
            yield from expand(whole, "", file)
            return
    lines = _Lines(text)
    seen_uids: set[str] = set()
    pos = _WS.match(text).end()
    ordinal = 0
    while pos < len(text):
        ordinal += 1
        base = "" if ordinal == 1 else f"line {lines.line(pos)} (object {ordinal})"
        try:
            value, end = _decode_at(text, pos)
        except json.JSONDecodeError as exc:
            yield from _salvage(text, pos, base, file, lines)
            yield _json_error(text, exc, file, lines)
            pos = _resync(text, pos)
            continue
        except _TooDeep as exc:  # its complete items that are not too deep are still read
            yield from _salvage(text, pos, base, file, lines)
            if not _salvaged_list(text, pos):
                yield _deep_error(text, exc.at, file, lines)
            pos = _WS.match(text, exc.end).end()
            continue
        after = _WS.match(text, end).end()
        if ordinal == 1 and after == len(text):
            yield from expand(value, "", file)
            return
        word = "watch event" if is_watch_event(value) else "object"
        for part in expand(value, f"line {lines.line(pos)} ({word} {ordinal})", file):
            yield _stream_action(part, seen_uids)
        pos = after


def _stream_action(part: Item | UnusableInput, seen_uids: set[str]) -> Item | UnusableInput:
    """A bare object seen again in a `-w` stream (same uid) is a modification of the first."""
    if not isinstance(part, Item) or part.from_watch or not isinstance(part.value, dict):
        return part
    meta = part.value.get("metadata")
    uid = meta.get("uid") if isinstance(meta, dict) else None
    if not isinstance(uid, str) or not uid:
        return part
    if uid in seen_uids:
        return msgspec.structs.replace(part, action="MODIFIED")
    seen_uids.add(uid)
    return part


def _json_error(text: str, exc: json.JSONDecodeError, file: str, lines: _Lines) -> UnusableInput:
    data_end = len(text.rstrip())
    pos = exc.pos
    # strict JSON strings cannot hold a raw newline: an unterminated one ran into the end of data
    if pos >= data_end or exc.msg.startswith("Unterminated string"):
        pos = data_end
        reason = f"truncated JSON: unexpected end of data ({exc.msg})"
        frag = text[max(0, pos - FRAGMENT_CHARS) : pos]
    else:
        reason = f"invalid JSON: {exc.msg}"
        frag = fragment_of(text, pos - 80)
    position = f"line {lines.line(pos)}, column {lines.column(pos)}"
    return UnusableInput(file=file, position=position, reason=reason, fragment=frag)


class _TooDeep(Exception):
    """A JSON value nested deeper than MAX_DEPTH: `at` where it went too deep, `end` where it ends."""

    def __init__(self, at: int, end: int) -> None:
        super().__init__(at)
        self.at, self.end = at, end


def _decode_at(text: str, pos: int, limit: int = MAX_DEPTH + 2) -> tuple[Any, int]:
    """The JSON value at `pos` and its end; _TooDeep (never RecursionError) when it nests deeper
    than `limit`; json.JSONDecodeError when it is not JSON."""
    try:
        value, end = _DECODER.raw_decode(text, pos)
    except RecursionError:
        value, end = None, -1
    if end < 0 or deeper_than(value, limit):
        end, at = skip_json_value(text, pos, limit)
        raise _TooDeep(pos if at is None else at, end)
    return value, end


def _salvaged_list(text: str, pos: int) -> bool:
    """Is the value at `pos` an array or a list object, whose items `_salvage` read one by one?"""
    return text[pos] == "[" or _find_items(text, pos, {}) is not None


def _deep_error(text: str, at: int, file: str, lines: _Lines) -> UnusableInput:
    return UnusableInput(file=file, position=f"line {lines.line(at)}, column {lines.column(at)}",
                         reason=too_deep(), fragment=fragment_of(text, at - 40, at + 40))


def _resync(text: str, failed_at: int) -> int:
    """Where the next top-level object of a stream starts: the next line beginning with `{`."""
    found = text.find("\n{", failed_at)
    return len(text) if found < 0 else found + 1


def _salvage(text: str, pos: int, base: str, file: str, lines: _Lines) -> Iterator[Item | UnusableInput]:
    """The complete items of a damaged list or array at `pos`, read element by element; an item
    nested too deep is named and skipped."""
    header: dict[str, Any] = {}
    if text[pos] == "[":
        items_at = pos
    else:
        items_at = _find_items(text, pos, header)
        if items_at is None:
            return
    elements: list[Any] = []
    deep: list[UnusableInput] = []
    p = items_at + 1
    while True:
        p = _WS.match(text, p).end()
        if p >= len(text) or text[p] == "]":
            break
        try:
            element, p = _decode_at(text, p, MAX_DEPTH)
        except json.JSONDecodeError:
            break
        except _TooDeep as exc:
            deep.append(_deep_error(text, exc.at, file, lines))
            element, p = _TOO_DEEP, exc.end
        elements.append(element)
        p = _WS.match(text, p).end()
        if p < len(text) and text[p] == ",":
            p += 1
        else:
            break
    parts = expand(elements, base, file) if text[pos] == "[" else expand({**header, "items": elements}, base, file)
    for part in parts:
        if isinstance(part, Item) and part.value is _TOO_DEEP:
            error = deep.pop(0)
            yield msgspec.structs.replace(error, position=f"{part.position}, {error.position}")
        else:
            yield part


_TOO_DEEP = object()  # the place of an item nested too deep, among those salvaged


def _find_items(text: str, pos: int, header: dict[str, Any]) -> int | None:
    """Offset of the `[` of the "items" array of the object at `pos`; keys before it -> header."""
    p = pos + 1
    try:
        while True:
            p = _WS.match(text, p).end()
            key, p = _decode_at(text, p)
            p = _WS.match(text, p).end()
            if not isinstance(key, str) or text[p] != ":":
                return None
            p = _WS.match(text, p + 1).end()
            if key == "items":
                return p if text.startswith("[", p) else None
            header[key], p = _decode_at(text, p, MAX_DEPTH)
            p = _WS.match(text, p).end()
            if text[p] != ",":
                return None
            p += 1
    except (json.JSONDecodeError, IndexError, _TooDeep):
        return None


# -- YAML: one or more documents, each decoded on its own -----------------------------------


def _split_yaml(text: str, file: str) -> Iterator[Item | UnusableInput]:
    starts = [m.start() for m in _YAML_DOC_START.finditer(text)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    chunks = [(s, text[s:e]) for s, e in zip(starts, [*starts[1:], len(text)], strict=True)]
    chunks = [(s, c) for s, c in chunks if not _YAML_BLANK.match(c)]
    lines = _Lines(text)
    for number, (offset, chunk) in enumerate(chunks, start=1):
        base = f"document {number}" if len(chunks) > 1 else ""
        first_line = lines.line(offset)
        try:
            documents = _load_yaml(chunk)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {first_line + mark.line}, column {mark.column + 1}" if mark else f"line {first_line}"
            problem = getattr(exc, "problem", None) or str(exc)
            yield UnusableInput(
                file=file,
                position=f"{base or 'document'}, {where}",
                reason=f"{'YAML' if isinstance(exc, RefusedYaml) else 'invalid YAML'}: {problem}",
                fragment=fragment_of(chunk, _mark_offset(chunk, mark) - 80 if mark else 0),
            )
            continue
        for value in documents:
            if value is not None:
                yield from expand(value, base, file)


def _load_yaml(chunk: str) -> list[Any]:
    """The documents of one chunk. libyaml's C composer when the text can neither nest deep nor hold
    an alias (the usual case: twice as fast), else the limited composer (`collectors.limits`), which
    raises a YAMLError with the place of the excess."""
    flow = chunk.count("[") + chunk.count("{") - chunk.count("[]") - chunk.count("{}")
    if "&" not in chunk and flow + 2 * max(map(len, _YAML_PREFIX.findall(chunk)), default=0) + 4 <= _C_SAFE_DEPTH:
        documents = list(yaml.load_all(chunk, Loader=_YamlLoader))
        if not any(deeper_than(d, MAX_DEPTH) for d in documents):
            return documents
    return list(yaml.load_all(chunk, Loader=SafeYamlLoader))


def _mark_offset(chunk: str, mark: Any) -> int:
    index = getattr(mark, "index", None)
    return index if isinstance(index, int) else 0
