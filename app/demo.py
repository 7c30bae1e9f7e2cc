"""`tapio demo` and the small async jobs behind `tapio replay` and `tapio deadletters`.

Fed by: the CLI. Feeds: the terminal.

The demo is what a person runs first: it starts the embedded stack and one worker (agents and
bridge), replays the bundled incident (a ConfigMap edit followed by crash-looping pods, in
several kubectl formats), waits until every replayed event is in the graph, prints what the
graph now holds about the affected namespace and `tapio explain` of the worst pod, and stops
everything it started.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from app.explain import explain
from app.jetstream import DeadLetterPublisher, EventPublisher, connect, ensure_streams, read_deadletters
from app.stack import EmbeddedStack, StackError, free_port
from app.workers import start_worker, with_worker_port
from collectors.replayer import ReplaySummary, replay_files
from core.kube.redact import use_safe_env_names
from core.records import DeadLetter
from core.settings import Settings
from patterns import DEMO_SCENARIO
from topology import queries
from topology.graph import open_graph
from topology.narrative import render_hypotheses, render_tree

DEFAULT_SCENARIO = DEMO_SCENARIO


async def publish_recordings(settings: Settings, paths: Sequence[str | Path], *,
                             shift_to: datetime | None = None) -> ReplaySummary:
    use_safe_env_names(settings.secrets.safe_env)
    nc = await connect(settings.nats, name="tapio-replay")
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings.nats)
        deadletters = DeadLetterPublisher(js, settings.nats)
        return await replay_files(paths, publisher=EventPublisher(js, settings.nats, deadletters=deadletters),
                                  deadletters=deadletters, shift_to=shift_to)
    finally:
        await nc.drain()


async def list_deadletters(settings: Settings, *, limit: int) -> list[DeadLetter]:
    nc = await connect(settings.nats, name="tapio-deadletters")
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings.nats)
        return await read_deadletters(js, settings.nats, limit=limit)
    finally:
        await nc.drain()


POLL_S = 0.1  # between two looks at the graph while waiting for the dataflow
SETTLED_S = 3.0  # the hypotheses of the explained pod unchanged this long: the dataflow has said its piece


async def wait_for_events(settings: Settings, ids: Sequence[str], *, timeout: float,
                          alive: Callable[[], bool] = lambda: True) -> int:
    """Poll the graph until every id is an Event node; return how many are there at the end."""
    graph = open_graph(settings.graph)
    unique = sorted(set(ids))
    found = 0
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive():
            rows = await graph.query(queries.COUNT_EVENTS, ids=unique)
            found = rows[0]["n"] if rows else 0
            if found >= len(unique):
                break
            await asyncio.sleep(POLL_S)
        return found
    finally:
        await graph.close()


async def namespace_report(settings: Settings, namespace: str) -> list[dict]:
    graph = open_graph(settings.graph)
    try:
        return await graph.query(queries.NAMESPACE_SUMMARY, namespace=namespace)
    finally:
        await graph.close()


async def explain_lines(settings: Settings, pod: str, namespace: str, *, timeout: float) -> list[str]:
    """`tapio explain` of one pod, once the topology's change events have gone round the flow."""
    graph = open_graph(settings.graph)
    try:
        deadline = time.monotonic() + min(timeout, 30.0)
        seen, since = None, time.monotonic()
        while time.monotonic() < deadline:  # change events take one more trip through the dataflow
            found = await explain(graph, kind="Pod", name=pod, namespace=namespace)
            # the diagnose stage's findings come first (fewer hops); the patterns' follow their windows,
            # those resting on the change events (config drift) last: wait until they stop changing
            now = sorted((h.prediction.id, h.prediction.message) for h in found.hypotheses)
            if now != seen:
                seen, since = now, time.monotonic()
            elif found.context.changes and any(not h.prediction.pattern.startswith("diagnosis/")
                                               for h in found.hypotheses) and time.monotonic() - since >= SETTLED_S:
                break
            await asyncio.sleep(POLL_S)
        return render_tree(found.context) + [""] + render_hypotheses(found.hypotheses)
    finally:
        await graph.close()


def render_report(namespace: str, rows: Sequence[dict]) -> list[str]:
    """Pure: the terminal lines for a namespace summary, worst resources first."""
    if not rows:
        return [f"the graph holds nothing about namespace {namespace!r}"]
    lines = [f"namespace {namespace}: {len(rows)} resources with events, "
             f"{sum(r['events'] for r in rows)} events"]
    ranked = sorted(rows, key=lambda r: (-r["warnings"], r["kind"], r["name"]))
    width = max(len(f"{r['kind']}/{r['name']}") for r in ranked)
    nodes = sorted({r["node"] for r in ranked if r["kind"] == "Pod" and r.get("node")})
    if nodes:
        lines.append(f"  pods run on {len(nodes)} node(s): {', '.join(nodes)}")
    for r in ranked:
        name = f"{r['kind']}/{r['name']}"
        where = f"on {r['node']}" if r.get("node") and r["kind"] == "Pod" else ""
        last = r["last_reason"] or r.get("last_intent") or "-"
        lines.append(f"  {name:<{width}}  {r['events']:>3} events  {r['warnings']:>3} warnings  "
                     f"last: {last:<18} {where}".rstrip())
    return lines


def run_demo(*, state_dir: Path | None, scenario: Path | None, timeout: float,
             echo: Callable[[str], None] = print, namespace: str = "shop") -> int:
    scenario = scenario or DEFAULT_SCENARIO
    root = state_dir or Path(tempfile.mkdtemp(prefix="tapio-demo-"))
    echo(f"starting the embedded stack in {root} ...")
    stack = EmbeddedStack(root, bolt_port=None)
    try:
        settings = stack.start()
    except StackError as e:
        echo(f"error: {e}")
        return 2
    worker = None
    try:
        settings = with_worker_port(settings, free_port())
        worker = start_worker(settings, with_bridge=True)
        echo(f"worker pid {worker.pid} (log {worker.log_path}); replaying {scenario} ...")
        summary = asyncio.run(publish_recordings(settings, [scenario]))
        echo(f"published {summary.events} events from {summary.files} files "
             f"({len(summary.errors)} parse errors)")
        for error in summary.errors:
            echo(f"  {error}")
        found = asyncio.run(wait_for_events(settings, summary.event_ids, timeout=timeout, alive=worker.alive))
        expected = len(set(summary.event_ids))
        echo(f"{found}/{expected} events in the graph")
        if found < expected:
            echo("the dataflow did not drain in time; the worker log ends:\n" + worker.log_tail())
            return 1
        rows = asyncio.run(namespace_report(settings, namespace))
        for line in render_report(namespace, rows):
            echo(line)
        worst = max((r for r in rows if r["kind"] == "Pod"), key=lambda r: (r["warnings"], r["name"]), default=None)
        if worst is not None:
            echo("")
            echo(f"$ tapio explain pod/{worst['name']} -n {namespace}")
            for line in asyncio.run(explain_lines(settings, worst["name"], namespace, timeout=timeout)):
                echo(line)
        return 0
    finally:
        if worker is not None:
            worker.stop()
        stack.stop()
