"""What `tapio agent` says about itself: each collector's state and counts, and whether the agent is ready.

Fed by: `app.agent`, which keeps one `CollectorStatus` per collector up to date as it runs them.
Feeds: the agent's `/healthz` and `/readyz` (JSON) and its last log lines. Pure.

`/healthz` answers 200 while the process serves (a source missing on this node is not a reason for the
kubelet to restart the agent); its `status` is `ok` when every enabled collector runs, `degraded`
otherwise. `/readyz` is 200 when JetStream is connected, at least one collector runs and none is in
a crash loop; `problems` says what is not.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import msgspec

State = Literal["disabled", "starting", "running", "unavailable", "crashed", "stopped"]


class CollectorStatus(msgspec.Struct, kw_only=True):
    """One collector as the agent runs it. `reason`: why it is disabled or unavailable; `last_error`: the
    last failure at run time (kept after a restart that worked); `sent`: events JetStream acknowledged;
    `waiting`: events of the batch being published, not acknowledged yet (held back while JetStream is
    away); `unsent`: events the agent gave up publishing (JetStream away at shutdown); `lost`: what the
    collector's source dropped (`lost()`)."""

    name: str
    enabled: bool
    state: State = "starting"
    reason: str = ""
    last_error: str = ""
    restarts: int = 0
    sent: int = 0
    batches: int = 0
    waiting: int = 0
    unsent: int = 0
    lost: int = 0
    last_event_at: datetime | None = None


class AgentHealth(msgspec.Struct, kw_only=True):
    node: str
    status: Literal["ok", "degraded"]
    ready: bool
    problems: list[str]
    jetstream: str
    collectors: list[CollectorStatus]


def problems(statuses: Sequence[CollectorStatus], *, jetstream_connected: bool) -> list[str]:
    """What keeps the agent from being ready; empty: ready."""
    out = [] if jetstream_connected else ["jetstream: not connected (the batches wait; see the agent's log)"]
    out += [f"{s.name}: crashed ({s.restarts} restart(s)): {s.last_error}" for s in statuses if s.state == "crashed"]
    if not any(s.state == "running" for s in statuses):
        out.append("no collector is running" + (": " + "; ".join(f"{s.name} {s.state}" + (f" ({s.reason})"
                                                                                          if s.reason else "")
                                                                  for s in statuses) if statuses else ""))
    return out


def health(node: str, statuses: Sequence[CollectorStatus], *, jetstream: str, jetstream_connected: bool) -> AgentHealth:
    """The document `/healthz` and `/readyz` serve."""
    found = problems(statuses, jetstream_connected=jetstream_connected)
    degraded = any(s.enabled and s.state != "running" for s in statuses)
    return AgentHealth(node=node, status="degraded" if degraded else "ok", ready=not found, problems=found,
                       jetstream=jetstream, collectors=[msgspec.structs.replace(s) for s in statuses])


def summary(status: CollectorStatus) -> str:
    """One line for the log when the agent stops: what the collector handed over, and what not."""
    if not status.enabled:
        return f"{status.name}: disabled ({status.reason})"
    if status.state == "unavailable":
        return f"{status.name}: unavailable ({status.reason})"
    return (f"{status.name}: {status.sent} event(s) published in {status.batches} batch(es), "
            f"{status.unsent} unsent, {status.lost} lost at the source, {status.restarts} restart(s)"
            + (f", last error: {status.last_error}" if status.last_error else ""))
