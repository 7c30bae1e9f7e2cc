"""Sonobuoy results (what `sonobuoy retrieve` saves): which file of them is what, and their object lists.

Fed by: `collectors.bundles`, with each file of an input that `collectors.bundlefiles.detect_input`
found in this layout (a `<time>_sonobuoy_<uuid>.tar.gz` read in place, or the folder it was
extracted into), by its path inside. Feeds: the same reader, with
- object lists: `resources/ns/<namespace>/<Kind plural>.json` (`Pods.json`, `Events.json`,
  `ReplicaSets.json`, `ConfigMaps.json`, ...) and `resources/cluster/<Kind plural>.json`
  (`Nodes.json`, `PersistentVolumes.json`, `Namespaces.json`, ...). An item that neither carries a
  kind nor comes from a typed list (`PodList`) takes the kind the file's name says; an object of
  `resources/ns/<namespace>/` that names no namespace is placed in that one (`objects`);
- container logs: `podlogs/<namespace>/<pod>/logs/<container>.txt`, the current logs (for a
  container waiting to restart, its last run's), tied to that pod and container;
- Sonobuoy's own files, which hold no Kubernetes object: `meta/` (config.json, query-time.json,
  run.log), `plugins/` (results, junit XML, sonobuoy_results.yaml), `hosts/`, `servergroups.json`,
  `serverversion.json`: not read, named once per input (`skipped_note`).
Sonobuoy writes no capture time where its documentation says, so times follow the reader's rules
(the newest absolute time of the input). The layout may start up to two folders down in an archive.

Pure: the caller reads the bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import PurePosixPath

from collectors.kubetables import kind_of
from collectors.loose import InputNote
from collectors.podlogs import LogSource
from collectors.replay import parse_recording
from collectors.unusable import UnusableInput
from core.events import RawEvent

_ROOT = r"^(?:[^/]+/){0,2}?"  # the folders above the results' root, in an archive
_LIST = re.compile(_ROOT + r"resources/(?:ns/([^/]+)|cluster)/([^/]+)\.json$", re.I)
_LOG = re.compile(_ROOT + r"podlogs/([^/]+)/([^/]+)/logs/([^/]+)\.txt$")
_OWN = re.compile(_ROOT + r"(?:(meta|plugins|hosts)/|((?:resources/cluster/)?(?:servergroups|serverversion)\.json)$)",
                  re.I)
_SERVER = re.compile(r"(?:^|/)(?:servergroups|serverversion)\.json$", re.I)
_ENDINGS = (("ies", "y"), ("sses", "ss"), ("ches", "ch"), ("shes", "sh"), ("xes", "x"))


def role(rel: str) -> tuple[str, LogSource | None] | None:
    """What a file of Sonobuoy results is: "listed" (an object list), "log" (with its source),
    "skip" (Sonobuoy's own) or None (anything else, passed over quietly)."""
    if _LIST.search(rel) and not _SERVER.search(rel):  # the server's version is no list, wherever it lies
        return "listed", None
    if m := _LOG.search(rel):
        return "log", LogSource(file="", namespace=m.group(1), pod=m.group(2), container=m.group(3))
    return ("skip", None) if _OWN.search(rel) else None


def file_kind(name: str) -> tuple[str, str]:
    """(Kind, apiVersion) a list file's name says: `Pods.json` -> Pod v1, `Events` -> Event;
    apiVersion "" when the kind is not one kubectl's common kinds (a custom resource's list)."""
    stem = PurePosixPath(name).name.removesuffix(".json").removesuffix(".JSON")
    candidates = [stem, *(stem[: -len(end)] + to for end, to in _ENDINGS if stem.endswith(end))]
    if stem.endswith("s") and not stem.endswith("ss"):
        candidates.append(stem[:-1])
    for candidate in candidates:
        kind, api_version, _ = kind_of(candidate)
        if api_version:
            return kind, api_version
    kind = candidates[1] if len(candidates) > 1 else stem
    return kind[:1].upper() + kind[1:], ""


def objects(data: bytes, file: str, rel: str) -> Iterator[RawEvent | UnusableInput]:
    """The objects of one list file, with the kind and namespace its path gives those that lack them."""
    m = _LIST.search(rel)
    namespace, name = (m.group(1) or "", m.group(2)) if m else ("", rel)
    kind, api_version = file_kind(name)
    yield from parse_recording(data, file, kind=kind, api_version=api_version, namespace=namespace)


def skipped_note(file: str, rels: list[str]) -> InputNote:
    """One note for the Sonobuoy files of an input that are not Kubernetes objects."""
    areas: dict[str, int] = {}
    for rel in rels:
        m = _OWN.search(rel)
        area = (f"{m.group(1)}/" if m.group(1) else m.group(2)) if m else rel
        areas[area] = areas.get(area, 0) + 1
    listed = ", ".join(f"{a} ({n} files)" if n > 1 else a for a, n in sorted(areas.items()))
    return InputNote(file=file, note=f"skipped Sonobuoy's own results, not Kubernetes objects: {listed}",
                     skipped=True)
