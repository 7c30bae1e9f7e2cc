"""Generated hostile inputs for the readers (`tapio replay`, `tapio analyze`), and the check of what
comes out: shared by `tests/collectors/test_fuzz_readers.py` (a few hundred examples in the suite) and
`benchmarks/fuzz_readers.py` (100,000, with crash, hang and peak-RSS counts).

An input is a case: a few files (JSON or YAML recordings, kubectl text, container logs) laid out for
one reader: a folder given to `tapio replay` (`collectors.replayer.read_recordings`), a folder given
to `tapio analyze` (`app.analyze.read`: every reader of loose files), or a support bundle `.tar.gz`
(its members at the paths troubleshoot writes, the archive sometimes cut short). Each file is a real
recording of the scenarios (`patterns/scenarios/`) mutated (spans cut, repeated or replaced, bytes
and tokens inserted: brackets, anchors and aliases, NUL, invalid UTF-8, huge numbers, long lines,
document separators, kubectl headers), or a generated Kubernetes-like object dumped as JSON or YAML,
or, now and then, an amplifier: 200,000 levels of nesting, a billion-laughs YAML, a 2 MB string.

What must hold (`check`): the reader returns; what it could not read comes out as its own error
strings ("<file>: <position>: <reason>", none empty), and the only exceptions are the readers' own
(`ReplayFileError`, `MissingNowError`: what the CLI reports as a user error).
"""

from __future__ import annotations

import io
import json
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from app.analyze import read
from collectors.kubetext import MissingNowError
from collectors.replay import ReplayFileError
from collectors.replayer import read_recordings

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 21, 14, 12, tzinfo=UTC)
SEED_BYTES = 12_000  # seeds are cut to this, so one example stays fast


def _seeds() -> dict[str, list[tuple[str, bytes]]]:
    found: dict[str, list[tuple[str, bytes]]] = {"json": [], "yaml": [], "text": [], "log": []}
    kinds = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".txt": "text", ".log": "log"}
    for path in sorted((ROOT / "patterns" / "scenarios").rglob("*")):
        kind = kinds.get(path.suffix)
        if kind and path.is_file() and path.name != "labels.yaml":
            found[kind].append((path.name, path.read_bytes()[:SEED_BYTES]))
    return found


SEEDS = _seeds()

TOKENS = [b"[", b"]", b"{", b"}", b'"', b"'", b",", b":", b"\n", b"\t", b"\x00", b"\xff\xfe", b"\xc3",
          b"&a ", b"*a", b"&b [*a, *a, *a]", b"<<: *a\n", b"---\n", b"...\n", b"- ", b"? ", b"!!binary ",
          b"!!python/object/apply:os.system ['true']", b"%YAML 1.1\n", b"items:", b'"kind": "List",',
          b'{"type": "MODIFIED", "object": ', b'"metadata": null', b'"items": 3', b"9" * 400, b"1e999", b"NaN",
          b"-1", b"2026-13-45T99:99:99Z", b"0001-01-01T00:00:00Z", b"9999-12-31T23:59:59Z", b'"\\ud800"',
          b"[" * 300, b"{\"a\":" * 200, b"- " * 200, b"x" * 70_000, b"Name:         web-0\n",
          b"LAST SEEN   TYPE      REASON   OBJECT   MESSAGE\n", b"Events:\n  Type  Reason  Age  From  Message\n",
          b"==== START logs for container c of pod ns/p ====\n", b"==== END logs for container c of pod ns/p ====\n",
          b"  Warning  BackOff  3m (x12 over 10m)  kubelet  Back-off\n", b"panic: runtime error\n",
          b'{"level":"error","msg":"x","ts":"2026-11-21T14:00:00Z"}\n']

KINDS = ["Pod", "Event", "ConfigMap", "Secret", "Deployment", "ReplicaSet", "Node", "Job", "Service",
         "PersistentVolumeClaim", "NetworkPolicy", "List", "EventList", "PodList", "Status", ""]


_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(max_size=30) | st.sampled_from(["2026-11-20T10:00:00Z", "Running", "OOMKilled", "137"]))
_KEYS = st.text(max_size=12) | st.sampled_from(["status", "spec", "containers", "state", "terminated", "reason",
                                                "exitCode", "data", "env", "name", "value", "conditions", "type",
                                                "lastTimestamp", "count"])
_JSON_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                            | st.dictionaries(_KEYS, inner, max_size=5), max_leaves=12)


def _json_values() -> st.SearchStrategy[Any]:
    return _JSON_VALUES  # built once: building strategies is most of what drawing them costs


@st.composite
def kube_objects(draw: st.DrawFn) -> dict[str, Any]:
    """A Kubernetes-like object: kind, metadata and times right or wrong, the rest generated."""
    obj: dict[str, Any] = draw(st.dictionaries(st.text(max_size=10), _json_values(), max_size=4))
    obj["kind"] = draw(st.sampled_from(KINDS) | _json_values())
    obj["apiVersion"] = draw(st.sampled_from(["v1", "apps/v1", "events.k8s.io/v1", ""]))
    obj["metadata"] = draw(st.fixed_dictionaries(
        {"name": st.text(max_size=20) | st.integers()},
        optional={"namespace": st.sampled_from(["shop", "", "kube-system"]) | st.text(max_size=8),
                  "uid": st.text(max_size=8), "creationTimestamp": st.sampled_from(
                      ["2026-11-20T10:00:00Z", "yesterday", "9999-12-31T23:59:59Z"]) | _json_values(),
                  "labels": _json_values(), "annotations": _json_values()}) | _json_values())
    for key in draw(st.lists(st.sampled_from(["status", "spec", "data", "items", "involvedObject", "reason",
                                              "message", "count", "lastTimestamp", "type", "object"]), max_size=4)):
        obj[key] = draw(_json_values())
    return obj


def _dump(value: Any, as_yaml: bool) -> bytes:
    if as_yaml:
        return yaml.safe_dump(value, allow_unicode=True).encode("utf-8", "surrogatepass")
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with a few mutations: a span cut, repeated, replaced, a token inserted, truncated."""
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["cut", "repeat", "replace", "token", "token", "truncate"]))
        span = draw(st.integers(0, 200))
        if op == "cut":
            data = data[:at] + data[at + span:]
        elif op == "repeat":
            data = data[:at + span] + data[at:at + span] * draw(st.integers(1, 20)) + data[at + span:]
        elif op == "replace":
            data = data[:at] + draw(st.binary(max_size=24)) + data[at + span:]
        elif op == "token":
            data = data[:at] + draw(st.sampled_from(TOKENS)) + data[at:]
        else:
            data = data[:at]
    return data


AMPLIFIERS = {
    "deep.json": b"[" * 200_000 + b"]" * 200_000,
    "deep-object.json": b'{"kind":"Pod","metadata":' * 20_000 + b"1" + b"}" * 20_000,
    "deep.yaml": b"kind: Pod\nmetadata: " + b"[" * 200_000 + b"]" * 200_000 + b"\n",
    "bomb.yaml": b"l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + b"".join(
        f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n".encode() for i in range(1, 10)),
    "long.json": b'[{"kind":"ConfigMap","metadata":{"name":"x","creationTimestamp":"2026-11-20T10:00:00Z"},'
                 b'"data":{"k":"' + b"v" * (2 << 20) + b'"}}]',
    "long-line.log": b"E" * (3 << 20) + b"\npanic: boom\n",
}


@st.composite
def files(draw: st.DrawFn) -> tuple[str, bytes]:
    """(file name, content) of one input file."""
    source = draw(st.sampled_from(["seed"] * 9 + ["generated"] * 5 + ["amplifier"]))  # amplifiers are slow
    if source == "amplifier":
        name = draw(st.sampled_from(sorted(AMPLIFIERS)))
        return name, draw(mutated(AMPLIFIERS[name])) if draw(st.booleans()) else AMPLIFIERS[name]
    if source == "generated":
        as_yaml = draw(st.booleans())
        objects = draw(st.lists(kube_objects(), max_size=4))
        shape = draw(st.sampled_from(["list", "array", "one", "stream"]))
        if shape == "list":
            value: Any = {"apiVersion": "v1", "kind": draw(st.sampled_from(["List", "EventList", "PodList"])),
                          "items": objects}
        elif shape == "one" and objects:
            value = objects[0]
        else:
            value = objects
        if shape == "stream" and not as_yaml:
            data = b"\n".join(_dump(o, False) for o in objects)
        else:
            data = _dump(value, as_yaml)
        return ("objects.yaml" if as_yaml else "objects.json"), draw(mutated(data))
    kind = draw(st.sampled_from(sorted(SEEDS)))
    name, data = draw(st.sampled_from(SEEDS[kind]))
    return name, draw(mutated(data))


BUNDLE_PATHS = ["cluster-resources/events/shop.json", "cluster-resources/pods/shop.json",
                "cluster-resources/deployments/shop.json", "cluster-resources/nodes.json",
                "cluster-resources/pods/logs/shop/web-0/web.log", "cluster-resources/pods/logs/shop/web-0/web-previous.log",
                "cluster-resources/configmaps/shop.yaml", "cluster-resources/pods-errors.json", "version.yaml",
                "cluster-resources/describe.txt", "../escape.json", "/abs.json"]


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, list[tuple[str, bytes]], bool]:
    """(reader, files, cut): reader "replay", "analyze" or "bundle"; `cut`: the archive is truncated."""
    reader = draw(st.sampled_from(["replay", "analyze", "bundle"]))
    inputs = draw(st.lists(files(), min_size=1, max_size=3))
    if reader == "bundle":
        inputs = [(draw(st.sampled_from(BUNDLE_PATHS)), data) for _, data in inputs]
    else:
        inputs = [(f"{i}-{name}", data) for i, (name, data) in enumerate(inputs)]
    return reader, inputs, draw(st.booleans()) and reader == "bundle"


def write_case(folder: Path, inputs: list[tuple[str, bytes]], bundle: bool, cut: bool) -> Path:
    """The case's files in `folder` (a fresh one), or its bundle `.tar.gz`; the path to hand the reader."""
    if not bundle:
        for name, data in inputs:
            (folder / name).write_bytes(data)
        return folder
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tf:
        for name, data in inputs:
            info = tarfile.TarInfo(name if name.startswith("/") else f"bundle/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    data = buffer.getvalue()
    target = folder / "bundle.tar.gz"
    target.write_bytes(data[: len(data) * 2 // 3] if cut else data)
    return target


class Broken(AssertionError):
    """A reader broke its promise: an exception of another type, or an error that names nothing."""


def run_case(folder: Path, reader: str, inputs: list[tuple[str, bytes]], cut: bool, *,
             now: datetime | None = NOW) -> tuple[int, list[str]]:
    """Hand the case to its reader; (events read, errors) or Broken. The readers' own errors
    (ReplayFileError, MissingNowError) are errors, as the CLI reports them."""
    path = write_case(folder, inputs, reader == "bundle", cut)
    try:
        if reader == "replay":
            events, errors = read_recordings([path])
            count = len(events)
        else:
            got = read([str(path)], now=now)
            count, errors = len(got.events), got.errors
            for note in got.notes:
                note.encode()
    except (ReplayFileError, MissingNowError) as e:
        return 0, [str(e)]
    for error in errors:
        error.encode()  # printed and dead-lettered: it must encode, whatever the input held
        parts = error.split(": ", 2)
        if len(parts) < 3 or not all(p.strip() for p in parts):
            raise Broken(f"an error without file, position and reason: {error!r}")
    return count, errors
