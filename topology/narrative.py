"""The context of an event as a tree an SRE reads top-down (pure).

Fed by: `topology.context.Context`. Feeds: `tapio context` (and later `tapio explain`).

Times are shown relative to the event ("40s before", "2m after"). Predicted impact appears
once patterns make predictions (the behavior-patterns work). The probable cause line is
the first chain of CAUSED edges when patterns have drawn one, otherwise the earliest
configuration change or rollout on a neighbouring resource within the window, labelled as a
correlation, not a proof. A routine status update (a Node's heartbeat, a controller's status-only
write: an object observation, not a CHANGE) is never a candidate.
"""

from __future__ import annotations

from core.kube.changes import REVERTED
from topology.context import ROUTINE_ACTIONS, Context, EventSummary, RelatedEvent

CHANGE_INTENTS = ("config-change", "rollout", "changed")


def is_routine(event: EventSummary) -> bool:
    """An object observation (MODIFIED, SNAPSHOT): a Node's heartbeat or a controller's status write
    looks like an edit; a real edit of a tracked object is the topology service's CHANGE event."""
    return event.action in ROUTINE_ACTIONS


def relative(ms: int | None, anchor: int | None) -> str:
    if ms is None or anchor is None:
        return "at an unknown time"
    delta = (ms - anchor) // 1000
    if delta == 0:
        return "at the same time"
    size = abs(delta)
    text = f"{size}s" if size < 120 else f"{size // 60}m" if size < 7200 else f"{size // 3600}h"
    return f"{text} {'before' if delta < 0 else 'after'}"


def _line(event: EventSummary, anchor: int | None) -> str:
    what = event.narrative or event.reason or event.intent or event.id
    return f"{relative(event.timestamp, anchor)}: {what}"


def probable_cause(ctx: Context) -> str | None:
    """The CAUSED chain patterns drew, else the newest change nearby before the event (a correlation)."""
    anchor = ctx.event.timestamp
    if ctx.causes:
        return "caused by the chain " + " -> ".join(ctx.causes[0])
    before = [c for c in ctx.changes if (c.event.timestamp or 0) <= (anchor or 0) and c.event.reason != REVERTED]
    if before:  # config edits and rollouts within 2 hops in the lookback, newest first; a revert is a remedy
        change = before[0]
        return f"{relative(change.event.timestamp, anchor)}: {change.event.narrative or change.event.intent} " \
               f"(a change on {change.on_label} {change.on_name}, correlated, not proven)"
    earlier = [c for c in ctx.correlated
               if c.event.intent in CHANGE_INTENTS and not is_routine(c.event) and c.event.reason != REVERTED
               and (c.event.timestamp or 0) <= (anchor or 0)]
    if earlier:
        first = min(earlier, key=lambda c: c.event.timestamp or 0)
        return f"correlated change {relative(first.event.timestamp, anchor)}: {first.on_label} {first.on_name} " \
               f"({first.event.reason or first.event.intent})"
    return None


def reverts(ctx: Context) -> list[RelatedEvent]:
    """The changes nearby that put an object back as it was before its previous edit (a rollout undo,
    a ConfigMap restored), newest first: remedies, never causes."""
    return [c for c in ctx.changes if c.event.reason == REVERTED]


def remedy(ctx: Context) -> str | None:
    """'2m after: <the revert> (a revert on Deployment web: a remedy, not a cause; the incident may be over)'."""
    found = reverts(ctx)
    if not found:
        return None
    newest = found[0]
    return (f"{relative(newest.event.timestamp, ctx.event.timestamp)}: {newest.event.narrative or newest.event.reason} "
            f"(a revert on {newest.on_label} {newest.on_name}: a remedy, not a cause; the incident may be over)")


def pods_around(ctx: Context) -> str | None:
    """'6 pods on 3 nodes (node-a, node-b, node-c): ...' over the affected and related pods."""
    pods = [r for r in ctx.affected + ctx.dependencies if r.label == "Pod"]
    if len(pods) < 2:
        return None
    nodes = sorted({p.node for p in pods if p.node})
    on = f" on {len(nodes)} node{'s' if len(nodes) != 1 else ''} ({', '.join(nodes)})" if nodes else ""
    names = sorted(p.name or p.uid for p in pods)
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    known = [p for p in pods if p.restarts is not None]
    restarted = f"; {sum(1 for p in known if p.restarts)} of {len(known)} restarted" if known else ""
    return f"{len(pods)} pods{on} share these dependencies{restarted}: {shown}"


def render_tree(ctx: Context) -> list[str]:
    anchor = ctx.event.timestamp
    lines = [f"{ctx.event.narrative or ctx.event.reason or ctx.event.id}  [{ctx.event.severity or '-'}]"]
    body: list[str] = []
    for r in ctx.affected:
        on = f" on node {r.node}" if r.node else ""
        body.append(f"affects {r.label} {r.namespace + '/' if r.namespace else ''}{r.name}{on}")
    if ctx.owners:
        body.append("owned by " + " <- ".join(f"{o.label} {o.name or o.uid}" for o in ctx.owners))
    cause = probable_cause(ctx)
    if cause:
        body.append(f"probable root cause: {cause}")
    remedied = remedy(ctx)
    if remedied:
        body.append(f"remediation: {remedied}")
    if ctx.previous is not None:
        body.append(f"previous occurrence: {relative(ctx.previous.event.timestamp, anchor)}: "
                    f"{ctx.previous.event.narrative or ctx.previous.event.reason}")
    around = pods_around(ctx)
    if around:
        body.append(around)
    by_label: dict[str, list[str]] = {}
    for d in ctx.dependencies:
        if d.label != "Pod":
            by_label.setdefault(d.label, []).append(d.name or d.uid)
    for label, names in sorted(by_label.items()):
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        body.append(f"related {label}: {shown}")
    for c in ctx.correlated[:10]:
        body.append(f"{_line(c.event, anchor)} ({c.on_label} {c.on_name})")
    if len(ctx.correlated) > 10:
        body.append(f"... {len(ctx.correlated) - 10} more events within 5 minutes")
    for e in ctx.consequences[:10]:
        body.append(f"led to: {_line(e, anchor)}")
    for i, text in enumerate(body):
        lines.append(("└─ " if i == len(body) - 1 else "├─ ") + text)
    return lines


def render_hypotheses(hypotheses: list) -> list[str]:
    """The ranked predictions that fit a resource (topology.predictions.Hypothesis), best first."""
    if not hypotheses:
        return ["no pattern has matched around it (yet): nothing predicted"]
    counted = f"{len(hypotheses)} {'hypotheses' if len(hypotheses) > 1 else 'hypothesis'}"
    lines = [f"what the patterns and the diagnosis say ({counted}, best first, what has stopped last):"]
    # what still holds first; a diagnosis retracted (its object recovered) keeps its place among those
    ordered = sorted(hypotheses, key=lambda h: h.prediction.resolved_at is not None)
    for rank, found in enumerate(ordered, 1):
        p = found.prediction
        resolved = p.resolved_at
        stopped = f"; resolved {resolved:%Y-%m-%d %H:%M:%S}Z" if resolved is not None else ""
        since = getattr(p, "since", None)
        first = f", first at {since:%H:%M:%S}Z" if since is not None else ""
        lines.append(f"  {rank}. [{p.pattern}] {p.message}")
        lines.append(f"     confidence {p.confidence:.0%}, {p.type} expected by {p.due:%Y-%m-%d %H:%M:%S}Z "
                     f"(matched {p.at:%H:%M:%S}Z{first} in {p.scope}){stopped}")
        if p.remediation:
            lines.append(f"     do: {' '.join(p.remediation.split())}")
    return lines
