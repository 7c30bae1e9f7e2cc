"""Where the kubeapi collector stopped: per watched kind, the resourceVersion and what it knew.

Fed by: `collectors.kubeapi.collect` at its end (and after a batch was handed over, while nothing
else waits), from each `ResourceWatcher.resume_point()`. Feeds: the watchers of the next run
(`ResourceWatcher(resume=...)`), which watch from that resourceVersion instead of listing: the
server sends what changed while the collector was down (ADDED / MODIFIED / DELETED). When it no
longer has that history (410 Gone), the watcher lists and compares with what it knew: an object
deleted while the collector was down still comes out as DELETED, and an unchanged one not at all.

One JSON file per state dir (`<state_dir>/kubeapi-resume.json`), keyed by API server URL and
kind, written whole to a temporary file and renamed. An object is kept as a stub (apiVersion,
kind, name, namespace, uid, resourceVersion, creation time), so a DELETED found by a list after
a restart carries that much of the object. A file that cannot be read is said and ignored: the
collector then lists, as on its first run.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

VERSION = 1
_KEPT_META = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")


@dataclass(frozen=True, kw_only=True)
class ResumePoint:
    """One kind: the resourceVersion to watch from, and each object known then (key -> stub)."""

    resource_version: str
    known: dict[str, dict] = field(default_factory=dict)


def stub(obj: dict) -> dict:
    """What is kept of an object: enough to tell it changed (resourceVersion) or is gone (DELETED)."""
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
            "metadata": {k: meta[k] for k in _KEPT_META if meta.get(k)}}


class ResumeFile:
    """The resume points of every API server a collector with this state dir watched."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self, server: str) -> dict[str, ResumePoint]:
        """Kind name -> resume point for `server`; {} when there is none (or it cannot be read)."""
        try:
            doc = json.loads(self.path.read_text())
            kinds = doc["servers"].get(server, {}) if doc.get("version") == VERSION else {}
            return {name: ResumePoint(resource_version=str(p["resource_version"]), known=dict(p["known"]))
                    for name, p in kinds.items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("kubeapi: resume file %s cannot be used (%r): listing every kind again", self.path, exc)
            return {}

    def save(self, server: str, points: dict[str, ResumePoint]) -> None:
        try:
            doc = json.loads(self.path.read_text())
            servers = doc["servers"] if doc.get("version") == VERSION else {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            servers = {}
        servers[server] = {name: {"resource_version": p.resource_version, "known": p.known}
                           for name, p in points.items()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"version": VERSION, "servers": servers}, separators=(",", ":")))
        tmp.replace(self.path)
