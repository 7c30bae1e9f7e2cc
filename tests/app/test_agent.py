"""`tapio agent` on the session's real JetStream: as a child process with the real procfs collector and
one that cannot start, its events on `events.procfs._cluster` with the node and a trace context, its
/healthz and /readyz, and a clean stop on SIGTERM (every event it counts as published is in the stream,
nothing else); in process, a collector that fails at run time restarted with backoff, its error shown,
and batches held back while a NATS of the test's own is killed, all stored once it is back."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import nats.js.errors
import pytest
from scrape import scrape
from waiting import until

from app.agent import Agent
from app.jetstream import RAW_CODEC, connect, events_in
from app.node_registry import REGISTRY
from app.stack import EmbeddedStack, free_port, start_nats
from app.workers import ChildProcess
from collectors.node import SourceUnavailable
from collectors.procfs import ProcfsCollector
from core.events import RawEvent
from core.settings import AgentSettings, NatsSettings, Settings, isolated

NODE = "node-agent-e2e"


def _procfs_here() -> str:
    try:
        ProcfsCollector(node="probe").check()
    except SourceUnavailable as e:
        return str(e)
    return ""


def _agent_settings(embedded: EmbeddedStack, name: str, **agent: Any) -> tuple[Settings, int]:
    settings = isolated(embedded.settings(), f"{name}-{uuid.uuid4().hex[:6]}")
    port = free_port()
    return msgspec.structs.replace(settings, agent=msgspec.structs.replace(settings.agent, web_port=port,
                                                                           **agent)), port


async def _page(port: int, path: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        async with http.get(f"http://127.0.0.1:{port}{path}") as response:
            return response.status, await response.json()


async def _stored(settings: Settings) -> list[tuple[str, RawEvent]]:
    """Every message of the run's EVENTS stream, with its subject (none before the agent made it)."""
    nc = await connect(settings.nats, name="test-agent-reader")
    try:
        js = nc.jetstream()
        try:
            info = await js.stream_info(settings.nats.stream)
        except nats.js.errors.NotFoundError:
            return []
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1) if info.state.messages else ():
            msg = await js.get_msg(settings.nats.stream, seq)
            out.extend((msg.subject, RAW_CODEC.decode(part)) for part in events_in(msg.data))  # one or a batch
        return out
    finally:
        await nc.drain()


async def _drop_streams(settings: Settings) -> None:
    nc = await connect(settings.nats, name="test-agent-cleanup")
    try:
        js = nc.jetstream()
        for stream in (settings.nats.stream, settings.nats.deadletter_stream):
            try:
                await js.delete_stream(stream)
            except nats.js.errors.NotFoundError:
                pass
    finally:
        await nc.drain()


def _collectors(doc: dict) -> dict[str, dict]:
    return {c["name"]: c for c in doc["collectors"]}


@pytest.mark.skipif(bool(_procfs_here()), reason=f"procfs collector unavailable here: {_procfs_here()}")
async def test_the_agent_publishes_procfs_events_says_why_another_cannot_start_and_stops_cleanly(
        embedded: EmbeddedStack, tmp_path: Path) -> None:
    settings, port = _agent_settings(embedded, "agent-e2e", extra={"ghost": "collectors.ghost_source:GhostCollector"},
                                     options={"procfs": {"interval_s": 0.2}})
    agent = ChildProcess(settings, ["agent", "--node", NODE, "--only", "procfs,ghost"], name="agent", log_dir=tmp_path)
    try:
        async def three_batches() -> dict | None:
            _, doc = await _page(port, "/healthz")
            return doc if _collectors(doc)["procfs"]["batches"] >= 3 else None

        doc = await until(three_batches, timeout=60, what="/healthz showing 3 procfs batches published",
                          ignoring=(aiohttp.ClientError,), procs=[agent])
        found = _collectors(doc)
        assert list(found) == [*REGISTRY, "ghost"]  # every collector, the ones switched off too
        procfs, ghost = found["procfs"], found["ghost"]
        assert (procfs["enabled"], procfs["state"], procfs["lost"], procfs["restarts"]) == (True, "running", 0, 0)
        assert procfs["sent"] >= 3 and procfs["last_event_at"]
        assert (ghost["enabled"], ghost["state"]) == (True, "unavailable")
        assert ghost["reason"].startswith("module collectors.ghost_source is not in this build of tapio")
        assert {found[name]["state"] for name in REGISTRY if name != "procfs"} == {"disabled"}
        assert (doc["node"], doc["status"], doc["ready"]) == (NODE, "degraded", True)
        status, ready = await _page(port, "/readyz")
        assert status == 200 and ready["problems"] == [] and ready["jetstream"].startswith("connected to")
        # /metrics (Prometheus text) says the same per collector: what was sent, in how many batches, running
        metrics = await asyncio.to_thread(scrape, port)
        assert metrics[("tapio_agent_batches_total", (("collector", "procfs"),))] >= 3
        assert metrics[("tapio_agent_events_sent_total", (("collector", "procfs"),))] >= 3
        assert metrics[("tapio_agent_collector_running", (("collector", "procfs"),))] == 1
        assert metrics[("tapio_agent_collector_running", (("collector", "ghost"),))] == 0
        assert ("tapio_agent_batches_total", (("collector", "dns"),)) not in metrics  # switched off: not shown

        stored = await until(lambda: _stored(settings), timeout=30, what="the agent's events in JetStream")
        prefix = settings.nats.subject_prefix
        assert {subject for subject, _ in stored} == {f"{prefix}.procfs._cluster"}
        for _, event in stored:
            assert (event.type, event.metadata["node"], event.metadata["kind"]) == ("procfs", NODE, "Node")
            assert re.fullmatch("[0-9a-f]{32}", event.trace_id) and int(event.trace_id, 16)
            assert re.fullmatch("[0-9a-f]{16}", event.span_id) and int(event.span_id, 16)
            assert "metric.psi.memory.some_avg10" in event.metadata
        assert len({e.span_id for _, e in stored}) == len(stored)  # one span per batch (procfs: one event each)
        assert agent.alive()
    finally:
        code = await asyncio.to_thread(agent.stop)  # SIGTERM, and wait for the exit
    try:
        log = agent.log_path.read_text()
        assert code == 0, agent.log_tail()
        published = re.search(r"agent stopped: procfs: (\d+) event\(s\) published in \d+ batch\(es\), 0 unsent", log)
        assert published, log[-3000:]
        assert len(await _stored(settings)) == int(published[1])  # what it counts as published, all of it, no more
        assert log.count("ghost collector unavailable") == 1 and "agent stopped: ghost: unavailable (module" in log
    finally:
        agent.kill()
        await _drop_streams(settings)


async def test_a_collector_that_fails_at_run_time_is_restarted_with_backoff_and_its_error_shown(
        embedded: EmbeddedStack) -> None:
    settings, port = _agent_settings(embedded, "agent-crash", restart_initial_s=0.05, restart_max_s=0.2,
                                     extra={"crashing": "crashing_collector:CrashingCollector"})
    agent = Agent(settings, node="node-crash", only=["crashing"])
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    try:
        async def restarted() -> dict | None:
            _, doc = await _page(port, "/healthz")
            crashing = _collectors(doc)["crashing"]
            return crashing if crashing["restarts"] >= 3 else None

        crashing = await until(restarted, timeout=60, what="3 restarts of the crashing collector",
                               ignoring=(aiohttp.ClientError,))
        assert re.fullmatch(r"SourceBroke: the source went away \(start \d+\)", crashing["last_error"])

        async def crash_shown() -> dict | None:
            status, doc = await _page(port, "/readyz")
            return doc if status == 503 and any(p.startswith("crashing: crashed (") for p in doc["problems"]) else None

        await until(crash_shown, timeout=30, what="/readyz 503 naming the crash loop")
        assert not running.done()  # the agent goes on
    finally:
        stop.set()
        statuses = await asyncio.wait_for(running, 30)
    try:
        [status] = [s for s in statuses if s.name == "crashing"]
        starts = agent.collectors["crashing"].starts  # type: ignore[attr-defined]
        assert status.restarts >= 3 and status.sent == starts  # each start handed over its one event first
        assert len(await _stored(settings)) == starts
    finally:
        await _drop_streams(settings)


@pytest.mark.skipif(bool(_procfs_here()), reason=f"procfs collector unavailable here: {_procfs_here()}")
async def test_batches_wait_while_jetstream_is_away_and_are_all_stored_once_it_is_back(tmp_path: Path) -> None:
    port = free_port()
    server = await asyncio.to_thread(start_nats, tmp_path, port)  # a NATS of its own, to kill
    settings = Settings(state_dir=str(tmp_path), nats=NatsSettings(urls=[f"nats://127.0.0.1:{port}"]),
                        agent=AgentSettings(web_port=free_port(), options={"procfs": {"interval_s": 0.1}}))
    web = settings.agent.web_port
    agent = Agent(settings, node="node-away", only=["procfs"])
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    status = agent.statuses["procfs"]
    try:
        await until(lambda: status.sent >= 2, timeout=60, what="2 procfs events published")
        _kill_group(server.pid)

        async def not_ready() -> dict | None:
            code, doc = await _page(web, "/readyz")
            return doc if code == 503 and doc["jetstream"] == "not connected" else None

        doc = await until(not_ready, timeout=30, what="/readyz 503 while JetStream is away")
        assert doc["problems"] == ["jetstream: not connected (the batches wait; see the agent's log)"]

        async def held_back() -> int:
            _, doc = await _page(web, "/healthz")
            return _collectors(doc)["procfs"]["waiting"]

        held = await until(held_back, timeout=30, what="/healthz showing a procfs batch held back")
        before = status.sent
        server = await asyncio.to_thread(start_nats, tmp_path, port)  # the same store, the same port
        await until(lambda: status.sent >= before + 3, timeout=120, what="procfs events published again")
        code, _ = await _page(web, "/readyz")
        assert code == 200
    finally:
        stop.set()
        await asyncio.wait_for(running, 60)
        _kill_group(server.pid)
    assert held == 1 and (status.unsent, status.waiting, status.restarts) == (0, 0, 0)
    server = await asyncio.to_thread(start_nats, tmp_path, port)
    try:
        assert len(await _stored(settings)) == status.sent  # every batch it held back, stored once
    finally:
        _kill_group(server.pid)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


@pytest.mark.skipif(bool(_procfs_here()), reason=f"procfs collector unavailable here: {_procfs_here()}")
async def test_stopping_while_jetstream_is_away_counts_the_batch_it_could_not_publish(tmp_path: Path) -> None:
    port = free_port()
    server = await asyncio.to_thread(start_nats, tmp_path, port)
    settings = Settings(state_dir=str(tmp_path), nats=NatsSettings(urls=[f"nats://127.0.0.1:{port}"]),
                        agent=AgentSettings(web_port=free_port(), stop_grace_s=1.0,
                                            options={"procfs": {"interval_s": 0.1}}))
    agent = Agent(settings, node="node-gone", only=["procfs"])
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    status = agent.statuses["procfs"]
    try:
        await until(lambda: status.sent >= 1, timeout=60, what="a procfs event published")
        _kill_group(server.pid)
        held = await until(lambda: status.waiting, timeout=30, what="a procfs batch held back")
    finally:
        stop.set()
        await asyncio.wait_for(running, 60)
        _kill_group(server.pid)
    assert (status.unsent, status.waiting, status.state, status.last_error) == (held, 0, "stopped", "cancelled at shutdown")
