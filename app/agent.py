"""`tapio agent`: the node collectors of one node, side by side on one event loop, published to JetStream.

Fed by: the settings (`agent.*`, `nats.*`), the CLI (`--node`, `--only`, `--disable`) and each collector's
source (`collectors.node`'s contract). Feeds: JetStream `events.<collector>.<namespace>` (every batch a
collector emits, each event stamped with the W3C trace context of the batch's span) and the agent's
own `/healthz` and `/readyz` on agent.web_host:web_port (`app.agent_health`), and its `/metrics`
(`app.metrics.AgentCollector`).

Each selected collector (`app.node_registry`) is built and checked; one that cannot start here is
unavailable, said once with its reason, and the others go on. One that fails at run time is restarted
with exponential backoff (tenacity), its last error kept for `/healthz`. A batch JetStream does not take
is retried with backoff, holding that collector back (its source counts what it drops meanwhile), until
it is stored (`/healthz` shows it as `waiting`). On SIGTERM (`stop`) the collectors get agent.stop_grace_s
to hand over their last batch; every batch is either acknowledged by JetStream or counted as unsent, and
the connection is drained (closed, when NATS is away at that moment).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence

import msgspec
import nats.errors
from aiohttp import web
from nats.aio.client import Client as NATS
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_not_exception_type,
    wait_exponential_jitter,
)

from app.agent_health import AgentHealth, CollectorStatus, health, summary
from app.jetstream import DeadLetterPublisher, EventPublisher, PublishFailed, connect, ensure_streams
from app.metrics import AgentCollector, metrics_registry, register_metrics
from app.node_registry import CollectorUnavailable, build, registry_with, select
from collectors.node import Emit, NodeCollector, SourceUnavailable
from core.events import RawEvent
from core.settings import Settings

log = logging.getLogger(__name__)


class AgentError(Exception):
    """The agent cannot serve (its health port is taken...): the message says what to change."""


class CollectorReturned(RuntimeError):
    """A collector's run() returned while the agent was not stopping: it is restarted like a crash."""


class _RanLong(Exception):
    """A collector failed after running agent.restart_reset_s: its backoff starts over."""


def node_name(*, flag: str | None, configured: str, environ: Mapping[str, str], hostname: str) -> str:
    """The node the events are about: `--node`, then agent.node, then NODE_NAME (the DaemonSet sets it
    from spec.nodeName), then the hostname."""
    return flag or configured or environ.get("NODE_NAME", "") or hostname


def stamped(events: Sequence[RawEvent], *, trace_id: str, span_id: str) -> list[RawEvent]:
    """The events with the batch's trace context, where the collector did not set one of its own."""
    return [e if e.trace_id else msgspec.structs.replace(e, trace_id=trace_id, span_id=span_id) for e in events]


def interruptible(stop: asyncio.Event) -> Callable[[float], Awaitable[None]]:
    """A backoff sleep for tenacity that SIGTERM cuts short (tenacity then makes one last attempt)."""

    async def sleep(seconds: float) -> None:
        try:
            await asyncio.wait_for(stop.wait(), seconds)
        except TimeoutError:
            pass

    return sleep


def tracer_for(node: str) -> Tracer:
    """A tracer of the agent's own (no exporter: the ids travel in the events; none is set globally)."""
    provider = TracerProvider(resource=Resource.create({"service.name": "tapio-agent", "host.name": node}))
    return provider.get_tracer("tapio.agent")


class Agent:
    """The collectors of one run, their statuses, and the JetStream connection they publish through."""

    def __init__(self, settings: Settings, *, node: str, only: Sequence[str] = (),
                 disable: Sequence[str] = ()) -> None:
        self.settings = settings
        self.config = settings.agent
        self.node = node
        self.registry = registry_with(self.config.extra)
        chosen = select(self.registry, only=only or self.config.only, disable=[*self.config.disable, *disable])
        self.statuses = {name: CollectorStatus(name=name, enabled=name in chosen) for name in self.registry}
        for status in self.statuses.values():
            if not status.enabled:
                status.state, status.reason = "disabled", "switched off by --only/--disable or agent.only/agent.disable"
        self.collectors: dict[str, NodeCollector] = {}
        self.tracer = tracer_for(node)
        self.nc: NATS | None = None
        self.publisher: EventPublisher | None = None

    # --- start ----------------------------------------------------------------------------

    async def prepare(self, name: str) -> None:
        """Build and check one collector; unavailable (said once) when it cannot start here."""
        status = self.statuses[name]
        try:
            collector = build(name, self.registry[name], node=self.node, options=self.config.options.get(name, {}))
            await asyncio.wait_for(asyncio.to_thread(collector.check), self.config.check_timeout_s)
        except (CollectorUnavailable, SourceUnavailable) as e:
            reason = str(e)
        except TimeoutError:
            reason = f"check() did not finish within {self.config.check_timeout_s:g}s (agent.check_timeout_s)"
        except Exception as e:  # a collector's bug must not stop the others: said, and that one is off
            reason = f"check() failed: {type(e).__name__}: {e}"
        else:
            self.collectors[name] = collector
            return
        status.state, status.reason = "unavailable", reason
        log.warning("agent: %s collector unavailable on %s: %s", name, self.node, reason)

    async def check_all(self) -> dict[str, str]:
        """Build and check every enabled collector without running any (`tapio agent --check`): per collector,
        "available", or its state and why."""
        await asyncio.gather(*(self.prepare(name) for name, s in self.statuses.items() if s.enabled))
        return {name: "available" if name in self.collectors else f"{s.state}: {s.reason}"
                for name, s in self.statuses.items()}

    # --- publishing -----------------------------------------------------------------------

    def emitter(self, status: CollectorStatus, stop: asyncio.Event) -> Emit:
        """The `emit` a collector is given: a span per batch, its ids on every event, published with retries."""

        async def emit(batch: list[RawEvent]) -> None:
            if not batch:
                return
            with self.tracer.start_as_current_span(
                f"{status.name} batch", kind=SpanKind.PRODUCER,
                attributes={"tapio.collector": status.name, "tapio.node": self.node, "tapio.events": len(batch)},
            ) as span:
                context = span.get_span_context()
                events = stamped(batch, trace_id=format(context.trace_id, "032x"),
                                 span_id=format(context.span_id, "016x"))
                status.waiting += len(events)  # a collector may emit from several tasks at once
                try:
                    acked = await self.publish(status.name, events, stop)
                except PublishFailed as e:  # only once stopping: JetStream stayed away to the end
                    status.unsent += len(events)
                    span.set_status(Status(StatusCode.ERROR, str(e)))
                    log.error("agent: %s: a batch of %d event(s) was not published before stopping: %s",
                              status.name, len(events), e)
                    return
                except asyncio.CancelledError:  # past agent.stop_grace_s: counted, whatever part JetStream has
                    status.unsent += len(events)
                    raise
                finally:
                    status.waiting -= len(events)
                status.sent += acked
                status.batches += 1
                status.last_event_at = max(e.timestamp for e in events)

        return emit

    async def publish(self, name: str, events: list[RawEvent], stop: asyncio.Event) -> int:
        assert self.publisher is not None
        publisher = self.publisher
        acked = 0
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(PublishFailed), wait=wait_exponential_jitter(max=30),
            stop=lambda _: stop.is_set(), sleep=interruptible(stop), reraise=True,
            before_sleep=lambda state: log.error("agent: %s: %s; retrying the batch of %d", name,
                                                 state.outcome.exception() if state.outcome else "?", len(events)),
        ):
            with attempt:
                acked = await publisher.publish_many(events)
        return acked

    # --- running --------------------------------------------------------------------------

    async def supervise(self, name: str, stop: asyncio.Event) -> None:
        """Run one collector until `stop`, restarting it with backoff when it fails."""
        collector, status = self.collectors[name], self.statuses[name]
        emit = self.emitter(status, stop)

        def before_restart(state: RetryCallState) -> None:
            status.restarts += 1
            wait = state.next_action.sleep if state.next_action else 0.0
            log.error("agent: %s collector failed (%s); restart %d in %.1fs", name, status.last_error,
                      status.restarts, wait)

        initial, longest = self.config.restart_initial_s, self.config.restart_max_s
        while not stop.is_set():
            try:
                async for attempt in AsyncRetrying(
                    retry=retry_if_not_exception_type(_RanLong), stop=lambda _: stop.is_set(),
                    sleep=interruptible(stop),
                    wait=wait_exponential_jitter(multiplier=initial, max=longest, jitter=initial),
                    before_sleep=before_restart, reraise=True,
                ):
                    with attempt:
                        await self.run_once(collector, status, emit, stop)
            except _RanLong:
                status.restarts += 1
                log.error("agent: %s collector failed after running a while (%s); restarting it", name,
                          status.last_error)
                continue
            except Exception:  # failed while stopping: said in last_error
                break
        if status.state != "crashed":
            status.state = "stopped"

    async def run_once(self, collector: NodeCollector, status: CollectorStatus, emit: Emit,
                       stop: asyncio.Event) -> None:
        if stop.is_set():
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        status.state = "running"
        try:
            await collector.run(emit, stop)
            if not stop.is_set():
                raise CollectorReturned("run() returned while the agent was running")
        except Exception as e:
            status.state = "crashed"
            status.last_error = f"{type(e).__name__}: {e}"
            if loop.time() - started >= self.config.restart_reset_s:
                raise _RanLong() from e
            raise

    def document(self) -> AgentHealth:
        for name, collector in self.collectors.items():
            try:
                self.statuses[name].lost = collector.lost()
            except Exception as e:  # a count that cannot be read is shown as such, not a failed page
                self.statuses[name].last_error = f"lost() failed: {type(e).__name__}: {e}"
        nc = self.nc
        connected = nc is not None and nc.is_connected
        where = (f"connected to {nc.connected_url.netloc}" if connected and nc and nc.connected_url
                 else "not connected")
        return health(self.node, list(self.statuses.values()), jetstream=where, jetstream_connected=connected)

    async def serve(self) -> web.AppRunner:
        async def healthz(_: web.Request) -> web.Response:
            return web.Response(body=msgspec.json.encode(self.document()), content_type="application/json")

        async def readyz(_: web.Request) -> web.Response:
            doc = self.document()
            return web.Response(body=msgspec.json.encode(doc), content_type="application/json",
                                status=200 if doc.ready else 503)

        app = web.Application()
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz)
        register_metrics(app.router, metrics_registry(AgentCollector(lambda: self.document().collectors)))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.config.web_host, self.config.web_port).start()
        except OSError as e:
            await runner.cleanup()
            raise AgentError(f"cannot serve /healthz on {self.config.web_host}:{self.config.web_port}: {e}; "
                             f"set agent.web_port (TAPIO_AGENT_WEB_PORT) to a free port") from e
        return runner

    async def run(self, stop: asyncio.Event) -> list[CollectorStatus]:
        """Serve health, connect, start the collectors, and run them until `stop`; the final statuses."""
        runner = await self.serve()
        try:
            self.nc = await connect(self.settings.nats, name=f"tapio-agent-{self.node}")
            try:
                js = self.nc.jetstream()
                await ensure_streams(js, self.settings.nats)
                self.publisher = EventPublisher(js, self.settings.nats,
                                                deadletters=DeadLetterPublisher(js, self.settings.nats))
                enabled = [name for name, status in self.statuses.items() if status.enabled]
                await asyncio.gather(*(self.prepare(name) for name in enabled))
                log.info("agent on %s: running %s; unavailable: %s; health on http://%s:%d/healthz", self.node,
                         ", ".join(self.collectors) or "nothing",
                         ", ".join(n for n in enabled if n not in self.collectors) or "none",
                         self.config.web_host, self.config.web_port)
                tasks = {asyncio.create_task(self.supervise(name, stop), name=f"collector-{name}"): name
                         for name in self.collectors}
                await stop.wait()
                await self.finish(tasks)
            finally:
                await self.disconnect()
        finally:
            await runner.cleanup()
        self.document()  # the collectors' last lost() counts
        for status in self.statuses.values():
            log.info("agent stopped: %s", summary(status))
        return list(self.statuses.values())

    async def disconnect(self) -> None:
        """Drain the connection: every publish flushed; closed at once while NATS is away (nothing left to flush)."""
        assert self.nc is not None
        try:
            await self.nc.drain()
        except nats.errors.Error as e:
            log.warning("agent: NATS connection closed without draining (%r): JetStream was away at shutdown", e)
            with contextlib.suppress(nats.errors.Error, OSError):  # the socket is gone already
                await self.nc.close()

    async def finish(self, tasks: Mapping[asyncio.Task[None], str]) -> None:
        """Give the collectors stop_grace_s to return after their last batch; cancel what is left."""
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self.config.stop_grace_s)
        for task in pending:
            name = tasks[task]
            log.error("agent: %s collector did not stop within %gs (agent.stop_grace_s): cancelled; a batch it "
                      "was publishing is counted as unsent (a part may be in JetStream: its ids make a re-send a "
                      "duplicate)", name, self.config.stop_grace_s)
            self.statuses[name].state, self.statuses[name].last_error = "stopped", "cancelled at shutdown"
            task.cancel()
        if pending:
            await asyncio.wait(pending)


def local_hostname() -> str:
    return socket.gethostname()
