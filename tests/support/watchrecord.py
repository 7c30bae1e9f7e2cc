"""What the chain recorders save of the API: `kubectl get <kind> -n NS -w -o json --output-watch-events`
per namespace and kind, opened before the workload exists, saved one watch event a line; and a node
collector's RawEvents as JSON lines (`collectors.rawlines` reads them back).

Fed by: the recording scripts (`benchmarks/record_kernel_oom.py`, `record_dns_crash.py`, `record_tcp_refused.py`,
`record_cni_exhaustion.py`) with a running real cluster. Feeds: a scenario folder under
`patterns/scenarios/<pattern>/<case>/` (`<kind>-watch.json`, `<source>.rawevents.jsonl`).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import msgspec

from core.events import RawEvent

KUBECTL = "/usr/bin/kubectl"


def watch_lines(text: str) -> list[dict]:
    """kubectl's concatenated, indented JSON documents, one dict each."""
    decoder, out, i = json.JSONDecoder(), [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        doc, i = decoder.raw_decode(text, i)
        out.append(doc)


class Watches:
    """One kubectl watch per (case, namespace, kind) into `tmp`; `with` stops them all."""

    def __init__(self, kubeconfig: Path, tmp: Path, cases: dict[str, str], kinds: Iterable[str]) -> None:
        self.kubeconfig, self.tmp, self.cases, self.kinds = kubeconfig, tmp, cases, tuple(kinds)
        self._open: list[tuple[IO[bytes], subprocess.Popen[bytes]]] = []

    def __enter__(self) -> Watches:
        self.tmp.mkdir(parents=True, exist_ok=True)
        for case, namespace in self.cases.items():
            for kind in self.kinds:
                f = (self.tmp / f"{case}-{kind}").open("wb")
                self._open.append((f, subprocess.Popen(
                    [KUBECTL, "--kubeconfig", str(self.kubeconfig), "get", kind, "-n", namespace, "-w", "-o", "json",
                     "--output-watch-events"], stdout=f, stderr=subprocess.DEVNULL)))
        time.sleep(2)  # the watches are open before anything they watch exists: every ADDED is seen
        return self

    def __exit__(self, *exc: object) -> None:
        for f, proc in self._open:
            proc.terminate()
            proc.wait(10)
            f.close()

    def save(self, case: str, folder: Path) -> None:
        """The case's watches into `folder/<kind>-watch.json` (older ones removed), one event a line."""
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*-watch.json"):
            old.unlink()
        for kind in self.kinds:
            docs = watch_lines((self.tmp / f"{case}-{kind}").read_text())
            (folder / f"{kind}-watch.json").write_text("".join(json.dumps(d, sort_keys=True) + "\n" for d in docs))


def save_rawevents(path: Path, events: list[RawEvent]) -> None:
    """A collector's RawEvents, one JSON object a line, as emitted."""
    encoder = msgspec.json.Encoder()
    path.write_bytes(b"".join(encoder.encode(e) + b"\n" for e in events))
