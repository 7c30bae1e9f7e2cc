"""Pattern files: read one BehaviorPattern (or a folder of them) with errors that name file, line and field.

Fed by: `patterns/*.yaml` (and any folder `tapio patterns lint` is given). Feeds: the live
catalog (`agents.catalog`), `tapio patterns lint`, the offline runner.

Line numbers come from PyYAML's node marks: the document is composed to nodes once, a
path -> line map is kept, and msgspec's `$.spec.conditions[1].operator` path is mapped onto it,
so `patterns/x.yaml:14: spec.conditions[1].operator: expected one of ...`. The schema and the
checks msgspec cannot express live in `agents.patterns`.
"""

from __future__ import annotations

import hashlib
import re
import typing
from pathlib import Path

import msgspec
import yaml

from agents.patterns import (
    CHOICES,
    CONDITION_TYPES,
    BehaviorPattern,
    PatternError,
    check,
    choices_text,
    dec_hook,
    known_intents,
)


def _line_map(node: yaml.Node, *, file: str, path: tuple = (), lines: dict | None = None) -> dict[tuple, int]:
    """path -> 1-based line of every key and item; duplicate mapping keys are an error."""
    lines = {(): node.start_mark.line + 1} if lines is None else lines
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = path + (key.value if isinstance(key, yaml.ScalarNode) else "?",)
            if sub in lines:
                raise PatternError(file, key.start_mark.line + 1, field=_dotted(sub), message="duplicate key")
            lines[sub] = key.start_mark.line + 1
            _line_map(value, file=file, path=sub, lines=lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[path + (i,)] = item.start_mark.line + 1
            _line_map(item, file=file, path=path + (i,), lines=lines)
    return lines


def _dotted(path: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _parse_path(text: str) -> tuple:
    return tuple(int(p[1:-1]) if p.startswith("[") else p for p in re.findall(r"\[\d+\]|[^.\[\]]+", text))


def _line_of(lines: dict[tuple, int], path: tuple) -> int:
    while path not in lines:
        path = path[:-1]
    return lines[path]


_MSGSPEC_ERROR = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)


def _from_validation(exc: msgspec.ValidationError, *, file: str, lines: dict[tuple, int]) -> PatternError:
    found = _MSGSPEC_ERROR.match(str(exc))
    msg, path = found["msg"], _parse_path(found["path"] or "")
    if extra := re.match(r"Object (?:missing required|contains unknown) field `([^`]+)`", msg):
        path += (extra[1],)
        msg = "required field is missing" if "missing" in msg else "unknown field"
    elif (bad := re.match(r"Invalid (?:enum )?value (.+)$", msg)) and path:
        key = path[-1]
        allowed = CONDITION_TYPES if key == "type" and "conditions" in path else \
            typing.get_args(CHOICES[key]) if key in CHOICES else None
        if allowed:
            msg = f"expected one of {choices_text(allowed)}, got {bad[1]}"
    return PatternError(file, _line_of(lines, path), field=_dotted(path), message=msg)


def load_pattern(path: str | Path, *, intents: frozenset[str] | None = None) -> BehaviorPattern:
    """Read, validate and return one pattern; raise PatternError naming file, line and field."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PatternError(file, 0, message=f"cannot read: {exc}") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise PatternError(file, 1, message="empty file: expected one BehaviorPattern")
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = ", ".join(filter(None, (exc.context, exc.problem))) or str(exc)
        raise PatternError(file, mark.line + 1 if mark else 0, message=f"YAML: {problem}") from None
    finally:
        loader.dispose()
    lines = _line_map(node, file=file)
    try:
        pattern = msgspec.convert(data, BehaviorPattern, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        raise _from_validation(exc, file=file, lines=lines) from None
    for field, message in check(pattern, intents=intents):
        raise PatternError(file, _line_of(lines, _parse_path(field)), field=field, message=message)
    return pattern


def catalog_files(directory: str | Path) -> list[Path]:
    """The files a catalog loads: every `*.yaml` / `*.yml` in `directory`, sorted by name."""
    return sorted(p for p in Path(directory).iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def catalog_digest(directory: str | Path) -> str:
    """A digest of the catalog's files (names and contents): an edit of any pattern changes it."""
    digest = hashlib.sha256()
    for file in catalog_files(directory):
        digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def load_patterns(directory: str | Path, *, intents: frozenset[str] | None = None
                  ) -> tuple[list[BehaviorPattern], list[PatternError]]:
    """Every `*.yaml` / `*.yml` in `directory`, sorted by name; one bad file does not stop the others.

    A metadata.name already used by an earlier file is an error on the later file.
    """
    intents = known_intents() if intents is None else intents
    patterns: list[BehaviorPattern] = []
    errors: list[PatternError] = []
    seen: dict[str, str] = {}
    for file in catalog_files(directory):
        try:
            pattern = load_pattern(file, intents=intents)
        except PatternError as exc:
            errors.append(exc)
            continue
        name = pattern.metadata.name
        if name in seen:
            lines = _line_map(yaml.compose(file.read_text(encoding="utf-8")), file=str(file))
            errors.append(PatternError(file, _line_of(lines, ("metadata", "name")), field="metadata.name",
                                       message=f"duplicate name {name!r} (also in {seen[name]})"))
            continue
        seen[name] = str(file)
        patterns.append(pattern)
    return patterns, errors


def lint(directory: str | Path) -> list[PatternError]:
    """Every error in a pattern directory; empty when the catalog is usable."""
    return load_patterns(directory)[1]

