"""`tapio collect kubeapi`: the Kubernetes API collector wired to JetStream.

Fed by: the CLI with settings and a kubeconfig. Feeds: JetStream `events.kubeapi.<namespace>`
(every object and Event the watch sees, as RawEvents) and `deadletter.kubeapi` (objects that
cannot be used); `<state_dir>/kubeapi-resume.json`, where it stopped (collectors.resume). The
collector itself (`collectors.kubeapi`) knows only a sink and a reject callback; this module
gives it the real publisher, with retries while JetStream is away, and the resume file.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from app.jetstream import DeadLetterPublisher, EventPublisher, PublishFailed, connect, ensure_streams
from collectors.kubeapi import collect, load_api_client, resolve_kinds
from collectors.resume import ResumeFile
from collectors.unusable import UnusableInput
from collectors.watching import WatchOptions
from core.events import RawEvent
from core.kube.redact import use_safe_env_names
from core.settings import Settings

log = logging.getLogger(__name__)
RESUME_FILE = "kubeapi-resume.json"  # in the state dir: per API server and kind, where the collector stopped


async def run_kubeapi_collector(settings: Settings, *, kubeconfig: str | None = None, context: str | None = None,
                                kinds: Sequence[str] | None = None, stop: asyncio.Event | None = None,
                                options: WatchOptions | None = None) -> None:
    """Watch the cluster and publish to JetStream `events.kubeapi.<namespace>` until `stop` is set.

    Raises KubeConfigError / UnknownKindError at once, JetStreamError when NATS is unreachable.
    A batch JetStream does not take is retried with backoff (holding the watchers back) until it
    is stored or `stop` is set.
    """
    use_safe_env_names(settings.secrets.safe_env)
    specs = resolve_kinds(kinds)
    api_client = load_api_client(kubeconfig=kubeconfig, context=context, pool_size=len(specs) + 4)
    log.info("kubeapi collector: watching %d kind(s) at %s", len(specs), api_client.configuration.host)
    nc = await connect(settings.nats, name="tapio-kubeapi")
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings.nats)
        deadletters = DeadLetterPublisher(js, settings.nats)
        publisher = EventPublisher(js, settings.nats, deadletters=deadletters)  # one over max_payload: dead-lettered

        async def publish(events: list[RawEvent]) -> None:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(PublishFailed), wait=wait_exponential_jitter(max=30),
                stop=lambda _: stop is not None and stop.is_set(), reraise=True,
                before_sleep=lambda state: log.error("kubeapi collector: %s; retrying the batch of %d",
                                                     state.outcome.exception(), len(events)),
            ):
                with attempt:
                    await publisher.publish_many(events)

        async def dead_letter(error: UnusableInput) -> None:
            await deadletters.send(stage="kubeapi", reason=error.reason, where=f"{error.file}: {error.position}",
                                   payload=error.fragment.encode())

        resume = ResumeFile(Path(settings.state_dir) / RESUME_FILE)  # a restart goes on where this run stops
        total = await collect(api_client, sink=publish, reject=dead_letter, kinds=[s.name for s in specs],
                              stop=stop, options=options, resume=resume)
        log.info("kubeapi collector: stopped after %d event(s) (%d duplicate(s) dropped by JetStream)",
                 total, publisher.duplicates)
    finally:
        await nc.drain()
        api_client.close()
