"""What every node collector is and what its RawEvents say: the contract `tapio agent` runs them by.

Fed by: nothing (a contract). Feeds: the node collectors (`collectors/kernel.py`, `dns.py`, `cri.py`,
`kubelet.py`, `cni.py`, `etcd.py`, `apiserver.py`, `journald.py`), which implement `NodeCollector`, and the agent that
runs them side by side, each with its own `emit`.

A collector:
- `check()` raises `SourceUnavailable` naming what is missing and what to do (no BPF, no socket, no
  journal): the agent says it once and runs the others;
- `run(emit, stop)` watches its source until `stop` is set, handing RawEvents to `emit` in batches
  (what it saw in about a second, or `max_batch`), never one call per kernel event;
- filters and aggregates at the source (in the kernel, per destination, per pod) so it forwards what
  matters, and counts what it lost (`lost()`), which the agent reports.

The agent finds a collector by name in `app.node_registry.REGISTRY` (`<name>` -> `collectors.<name>:<Name>Collector`,
e.g. `collectors.cri:CriCollector`), imports its module only when it runs it, and builds it as
`<Class>(node=<node name>, **agent.options[<name>])`: every other argument has a default that finds the
source where a node has it.

Every RawEvent a node collector makes (`node_event`) has `type` = the collector's name and, in
`metadata` (all strings), the keys the enrich and normalize stages read (`agents.enrich`,
`agents.normalize`):
- `node`: the node name; `container_id` and `pid` when the event is about a process;
- `kind` `Pod`, `namespace`, `name`, `uid` when the pod is known (`collectors.podresolve`), else
  `kind` `Node`, `name` = the node: an event is always about an object;
- `reason` (a short CamelCase code: `OOMKill`, `ProcessExit`, `TCPRetransmit`, `DNSNXDomain`...),
  `message` (one line a person reads), `intent`, `category`, `severity` (debug, info, warning,
  error, critical): what the event means, as the vocabulary says it for Kubernetes Events;
- kernel facts as `kernel.<field>` (`kernel.comm`, `kernel.exit_code`, `kernel.signal`...), network
  facts as `net.<field>` (`net.protocol`, `net.src`, `net.dst`, `net.port`, `net.query`, `net.rcode`),
  metric samples as `metric.<name>` (numbers as text: the `metric` condition reads them).
Pure: no I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Protocol

from core.events import RawEvent, content_id

#: hands a batch of RawEvents to the agent's publisher
Emit = Callable[[list[RawEvent]], Awaitable[None]]

SEVERITIES = ("debug", "info", "warning", "error", "critical")


class SourceUnavailable(RuntimeError):
    """A collector's source is not on this node (no BPF, no socket, no journal); the message says
    which and what to do. The agent logs it once and runs the other collectors."""


class NodeCollector(Protocol):
    name: str  # the RawEvent type it makes: kernel, dns, cri, kubelet, cni, etcd, apiserver, journald

    def check(self) -> None:
        """Raise SourceUnavailable when the source cannot be used here."""

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        """Watch the source and emit batches until `stop` is set."""

    def lost(self) -> int:
        """Events the source dropped or the collector could not read, since start."""


def node_event(source: str, *, node: str, at: datetime, reason: str, message: str, intent: str, category: str,
               severity: str, about: Mapping[str, str] | None = None, facts: Mapping[str, str] | None = None,
               data: bytes = b"", key: str = "") -> RawEvent:
    """A node collector's RawEvent in the contract's terms. `about` names the object (`kind`,
    `namespace`, `name`, `uid`; the node when None or empty), `facts` the `kernel.*`, `net.*`,
    `metric.*`, `container_id`, `pid` keys. The id is a hash of what makes the observation unique:
    `key` when given (the source's own sequence or cursor), else source, node, time, reason and
    facts. Raises ValueError for a severity outside SEVERITIES."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    metadata = {"node": node, "kind": "Node", "name": node}
    if about and about.get("kind") and about.get("name"):
        metadata = {"node": node, **{k: v for k, v in about.items() if v}}
    metadata.update(facts or {})
    metadata.update(reason=reason, message=message, intent=intent, category=category, severity=severity,
                    source=f"{source}:{node}")
    ident = key or "|".join([at.isoformat(), reason, *(f"{k}={v}" for k, v in sorted((facts or {}).items()))])
    return RawEvent(id=content_id(source, node, ident), timestamp=at, type=source, data=data, metadata=metadata)
