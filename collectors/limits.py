"""How much of a hostile input a reader takes: file size, nesting depth, YAML alias expansion.

Fed by: the readers of files users hand Tapio (`collectors.kubefiles` for JSON and YAML documents,
`collectors.bundles`, `collectors.loose`, `collectors.alerts` for their own JSON probes). Feeds: the
same readers, which report what is refused as an UnusableInput naming the file, the place and why.

A recording is data a user got from somewhere; it may have been made to hurt the reader:
- size: a file is read whole only up to MAX_FILE_BYTES (`read_capped`; archive members and their
  total: `collectors.bundlefiles`), so a 500 MiB member or `/dev/zero` is refused, not read;
- nesting: Python's parsers recurse (json raises RecursionError near 1,000 levels, libyaml's C
  composer overflows the C stack and kills the process). Kubernetes objects nest about 10 levels
  (a CRD's schema 40), so a document part nested deeper than MAX_DEPTH levels is refused, found
  without recursion: `deeper_than` on decoded values, `skip_json_value` on text, and the YAML
  loader's composer, which counts levels as it goes;
- YAML aliases: `*a` repeats what `&a` anchors; nine levels of ten aliases are a billion nodes
  (PyYAML shares them in memory, but JSON encoding expands them: 8 GB measured). The loader adds up
  what aliases expand to and refuses a document where they add more than `alias_budget(size)`, and
  an alias inside the collection it names (`&a [*a]`: a cycle, which every walk after would follow).
Pure: no I/O.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import yaml
from yaml.composer import Composer, ComposerError
from yaml.events import AliasEvent, ScalarEvent
from yaml.nodes import Node

from core.codec import MAX_DEPTH

MAX_FILE_BYTES = 128 << 20  # a file (or archive member) read whole: a larger one is refused, not read
# MAX_DEPTH: levels of nesting a document part may have, the limit of what travels (core.codec)
ALIAS_MIN_BUDGET = 1 << 20  # what YAML aliases may add to a document, at least (about a MiB of text)

_JSON_TOKEN = re.compile(r'[\[\]{}"]')
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def too_large(size: int, *, growing: bool = False, limit: int | None = None) -> str:
    more = "more than " if growing else ""
    return (f"too large to read: {more}{size} bytes, over the {limit or MAX_FILE_BYTES} bytes a file or archive "
            "member may have (read whole): skipped")


def read_capped(path: str, limit: int | None = None) -> tuple[bytes, str]:
    """The bytes of the file at `path`, or (b"", why not) when it has more than `limit` (MAX_FILE_BYTES):
    its size is looked at first, and no more than `limit` + 1 bytes are read (it may grow, or be no
    regular file). Raises OSError when it cannot be opened or read."""
    limit = MAX_FILE_BYTES if limit is None else limit
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            return b"", too_large(size, limit=limit)
        data = f.read(limit + 1)
    return (b"", too_large(limit, growing=True, limit=limit)) if len(data) > limit else (data, "")


def too_deep(limit: int = MAX_DEPTH) -> str:
    return f"nested deeper than {limit} levels: refused (a Kubernetes object nests about 10)"


def deeper_than(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Is `value` (decoded JSON/YAML) nested more than `limit` levels deep (a scalar is 0, `[]` 1)?
    Level by level, no recursion."""
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(limit):
        if not level:
            return False
        level = [x for node in level for x in (node.values() if type(node) is dict else node)
                 if isinstance(x, dict | list)]
    return bool(level)


def skip_json_value(text: str, pos: int, limit: int = MAX_DEPTH) -> tuple[int, int | None]:
    """(end of the JSON value starting at `pos`, offset where it first went deeper than `limit`, or
    None), by counting brackets outside strings: no recursion, however deep. A value that never
    closes ends at the end of `text`. Only brackets are checked, not the JSON between them."""
    if pos >= len(text) or text[pos] not in "[{":
        return pos, None
    depth = 0
    deepest: int | None = None
    p = pos
    while (m := _JSON_TOKEN.search(text, p)) is not None:
        char, p = m.group(), m.end()
        if char == '"':
            s = _JSON_STRING.match(text, m.start())
            if s is None:
                return len(text), deepest
            p = s.end()
        elif char in "[{":
            depth += 1
            if depth > limit and deepest is None:
                deepest = m.start()
        else:
            depth -= 1
            if depth == 0:
                return p, deepest
    return len(text), deepest


def json_loads(text: str | bytes) -> Any:
    """`json.loads` that raises ValueError (never RecursionError) for a document nested too deep."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(too_deep()) from None


def alias_budget(size: int) -> int:
    """How much (in characters of scalars, plus one per node) aliases may add to a document of `size`."""
    return max(ALIAS_MIN_BUDGET, size)


class RefusedYaml(ComposerError):
    """A YAML document refused for what it would cost (nesting, alias expansion), with its place."""


class LimitedComposer(Composer):
    """PyYAML's composer (iterative event reading, Python recursion per level: bounded by MAX_DEPTH)
    with the nesting depth and what aliases expand to counted, instead of libyaml's C composer."""

    alias_limit = ALIAS_MIN_BUDGET

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0
        self._weights: dict[int, int] = {}  # id(node) -> its size expanded, aliases included
        self._expanded = 0  # of the current document
        self._aliased = 0  # what aliases added to it

    def compose_document(self) -> Node | None:
        self._weights, self._expanded, self._aliased = {}, 0, 0
        return super().compose_document()  # type: ignore[no-any-return]

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            node = super().compose_node(parent, index)
            if id(node) not in self._weights:  # anchored on a collection still being composed: a cycle
                raise RefusedYaml(None, None, "an alias inside what it names (a recursive structure): refused",
                                  event.start_mark)
            weight = self._weights[id(node)]
            self._expanded += weight
            self._aliased += weight
            if self._aliased > self.alias_limit:
                raise RefusedYaml(None, None, f"aliases expand to more than {self.alias_limit} characters "
                                  "(an alias bomb?): refused", event.start_mark)
            return node  # type: ignore[no-any-return]
        if self._depth >= MAX_DEPTH:
            raise RefusedYaml(None, None, too_deep(), self.peek_event().start_mark)
        self._depth += 1
        before = self._expanded
        if self.check_event(ScalarEvent):
            self._expanded += len(self.peek_event().value) + 1
        else:
            self._expanded += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._weights[id(node)] = self._expanded - before
        return node  # type: ignore[no-any-return]


class SafeYamlLoader(LimitedComposer, yaml.CSafeLoader):
    """Safe YAML, libyaml's scanner and parser, the limited composer above; without the timestamp
    resolver: times stay RFC3339 strings, as in JSON."""

    def __init__(self, stream: str) -> None:
        yaml.CSafeLoader.__init__(self, stream)
        LimitedComposer.__init__(self)
        self.alias_limit = alias_budget(len(stream))


SafeYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
}
