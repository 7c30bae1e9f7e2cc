"""The context of an event as a tree an SRE reads top-down (pure).

Fed by: `topology.context.Context`. Feeds: `tapio context` (and later `tapio explain`).

Times are shown relative to the event ("40s before", "2m after"); the probable cause line is
the first chain of CAUSED edges when patterns have drawn one, otherwise the earliest
configuration change or rollout on a neighbouring resource within the window, labelled as a
correlation, not a proof.
"""

from __future__ import annotations

from topology.context import Context, EventSummary

CHANGE_INTENTS = ("config-change", "rollout", "changed")


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
    anchor = ctx.event.timestamp
    if ctx.causes:
        return "caused by the chain " + " -> ".join(ctx.causes[0])
    earlier = [c for c in ctx.correlated
               if c.event.intent in CHANGE_INTENTS and (c.event.timestamp or 0) <= (anchor or 0)]
    if earlier:
        first = min(earlier, key=lambda c: c.event.timestamp or 0)
        return f"correlated change {relative(first.event.timestamp, anchor)}: {first.on_label} {first.on_name} " \
               f"({first.event.reason or first.event.intent})"
    return None


def render_tree(ctx: Context) -> list[str]:
    anchor = ctx.event.timestamp
    lines = [f"{ctx.event.narrative or ctx.event.reason or ctx.event.id}  [{ctx.event.severity or '-'}]"]
    body: list[str] = []
    for r in ctx.affected:
        on = f" on node {r.node}" if r.node else ""
        body.append(f"affects {r.label} {r.namespace + '/' if r.namespace else ''}{r.name}{on}")
    if ctx.owners:
        body.append("owned by " + " <- ".join(f"{o.label} {o.name or o.uid}" for o in ctx.owners))
    by_label: dict[str, list[str]] = {}
    for d in ctx.dependencies:
        by_label.setdefault(d.label, []).append(d.name or d.uid)
    for label, names in sorted(by_label.items()):
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        body.append(f"related {label}: {shown}")
    cause = probable_cause(ctx)
    if cause:
        body.append(f"probable root cause: {cause}")
    for c in ctx.correlated[:10]:
        body.append(f"{_line(c.event, anchor)} ({c.on_label} {c.on_name})")
    if len(ctx.correlated) > 10:
        body.append(f"... {len(ctx.correlated) - 10} more events within 5 minutes")
    for e in ctx.consequences[:10]:
        body.append(f"led to: {_line(e, anchor)}")
    for i, text in enumerate(body):
        lines.append(("└─ " if i == len(body) - 1 else "├─ ") + text)
    return lines
