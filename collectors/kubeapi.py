"""KubeAPI collector: list + watch of the cluster's objects and Events -> RawEvents (type "kubeapi").

Fed by: a Kubernetes API server, found the way kubectl finds it (`--kubeconfig`, `--context`,
`KUBECONFIG`, `~/.kube/config`, else the pod's service account), read with the synchronous
`kubernetes` client (read-only; `docker/rbac.yaml` is the ClusterRole it needs).
Feeds: JetStream `events.kubeapi.<namespace>` through `app.collect.run_kubeapi_collector`,
`deadletter.kubeapi` for objects that cannot be used; or any async callback (`collect`) or
async iteration (`watch_cluster`), which is what the tests use without NATS.

Every object becomes a RawEvent through `core.kube.objects.raw_event_from_object`, so a live
event and the same object replayed from a `kubectl get -o json` file share id and metadata.
Objects are the API's own JSON (read with `_preload_content=False`: camelCase field names, as
kubectl prints them), never the client's models. Secrets leave the collector with their
metadata and key names only: every value of `data` / `stringData` (and kubectl's
last-applied-configuration annotation, which repeats them) becomes "sha256:<hex>".

Why threads and not `kubernetes.watch.Watch().stream`: `Watch.stream` deserializes into models,
retries a 410 once on its own with the same stale resourceVersion and resumes silently, which
hides exactly the events the relist logic needs; `collectors.watching` calls the list functions
with `watch=True` itself and reads the lines in a pool thread (one per watched kind, so a quiet
watch never starves another), handing them to the loop through a queue.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config

from collectors.resume import ResumeFile
from collectors.unusable import UnusableInput
from collectors.watching import Resource, ResourceWatcher, WatchOptions
from core.events import RawEvent
from core.kube.redact import LAST_APPLIED, redact_object

log = logging.getLogger(__name__)
RESUME_EVERY_S = 10.0

__all__ = ["KINDS", "ClusterWatch", "KindSpec", "KubeConfigError", "UnknownKindError", "WatchOptions", "collect",
           "LAST_APPLIED", "load_api_client", "redact_secret", "resolve_kinds", "watch_cluster"]



class KubeConfigError(Exception):
    """No usable cluster configuration: name a kubeconfig (--kubeconfig / KUBECONFIG) or run in a pod."""


class UnknownKindError(ValueError):
    """A kind the collector does not watch was asked for."""


@dataclass(frozen=True, kw_only=True)
class KindSpec:
    """One watched resource: how to call it (client class + method) and how RBAC names it."""

    name: str  # what `kinds=` takes and logs print: the plural, or plural.group when plural is ambiguous
    kind: str
    group: str  # "" for the core group
    version: str
    plural: str
    api: str  # kubernetes.client class
    method: str  # its cluster-wide list function

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def _spec(row: tuple[str, str, str, str, str]) -> KindSpec:
    name, kind, group_version, api, method = row
    group, _, version = group_version.rpartition("/")
    return KindSpec(name=name, kind=kind, group=group, version=version, plural=name.split(".")[0], api=api,
                    method=method)


_ALL = "_for_all_namespaces"
KINDS: tuple[KindSpec, ...] = tuple(map(_spec, (
    # name, Kind, apiVersion, kubernetes.client class, its cluster-wide list function
    ("nodes", "Node", "v1", "CoreV1Api", "list_node"),
    ("namespaces", "Namespace", "v1", "CoreV1Api", "list_namespace"),
    ("pods", "Pod", "v1", "CoreV1Api", "list_pod" + _ALL),
    ("services", "Service", "v1", "CoreV1Api", "list_service" + _ALL),
    ("endpointslices", "EndpointSlice", "discovery.k8s.io/v1", "DiscoveryV1Api", "list_endpoint_slice" + _ALL),
    ("configmaps", "ConfigMap", "v1", "CoreV1Api", "list_config_map" + _ALL),
    ("secrets", "Secret", "v1", "CoreV1Api", "list_secret" + _ALL),
    ("deployments", "Deployment", "apps/v1", "AppsV1Api", "list_deployment" + _ALL),
    ("replicasets", "ReplicaSet", "apps/v1", "AppsV1Api", "list_replica_set" + _ALL),
    ("statefulsets", "StatefulSet", "apps/v1", "AppsV1Api", "list_stateful_set" + _ALL),
    ("daemonsets", "DaemonSet", "apps/v1", "AppsV1Api", "list_daemon_set" + _ALL),
    ("jobs", "Job", "batch/v1", "BatchV1Api", "list_job" + _ALL),
    ("cronjobs", "CronJob", "batch/v1", "BatchV1Api", "list_cron_job" + _ALL),
    ("persistentvolumeclaims", "PersistentVolumeClaim", "v1", "CoreV1Api", "list_persistent_volume_claim" + _ALL),
    ("persistentvolumes", "PersistentVolume", "v1", "CoreV1Api", "list_persistent_volume"),
    ("storageclasses", "StorageClass", "storage.k8s.io/v1", "StorageV1Api", "list_storage_class"),
    ("ingresses", "Ingress", "networking.k8s.io/v1", "NetworkingV1Api", "list_ingress" + _ALL),
    ("networkpolicies", "NetworkPolicy", "networking.k8s.io/v1", "NetworkingV1Api", "list_network_policy" + _ALL),
    ("horizontalpodautoscalers", "HorizontalPodAutoscaler", "autoscaling/v2", "AutoscalingV2Api",
     "list_horizontal_pod_autoscaler" + _ALL),
    ("events", "Event", "v1", "CoreV1Api", "list_event" + _ALL),
    ("events.events.k8s.io", "Event", "events.k8s.io/v1", "EventsV1Api", "list_event" + _ALL),
)))


def resolve_kinds(kinds: Sequence[str] | None) -> list[KindSpec]:
    """The specs for `kinds` (all when None), in KINDS order. A name is the plural ("pods"),
    plural.group ("deployments.apps", "events.events.k8s.io") or the Kind ("Pod"; "Event" is core/v1)."""
    if kinds is None:
        return list(KINDS)
    index: dict[str, KindSpec] = {}
    for spec in reversed(KINDS):  # the first spec wins a shared Kind: "Event" is core/v1
        index[spec.kind.lower()] = spec
        index[f"{spec.plural}.{spec.group}" if spec.group else spec.plural] = spec
        index[spec.name] = spec
    wanted: set[str] = set()
    for name in kinds:
        spec = index.get(name.strip()) or index.get(name.strip().lower())
        if spec is None:
            raise UnknownKindError(f"unknown kind {name!r}; known: {', '.join(s.name for s in KINDS)}")
        wanted.add(spec.name)
    if not wanted:
        raise UnknownKindError(f"no kinds asked for; known: {', '.join(s.name for s in KINDS)}")
    return [spec for spec in KINDS if spec.name in wanted]


# -- the cluster --------------------------------------------------------------------------


def load_api_client(*, kubeconfig: str | None = None, context: str | None = None,
                    pool_size: int = len(KINDS) + 4) -> client.ApiClient:
    """An ApiClient found as kubectl finds the cluster; its pool holds `pool_size` connections
    (one per watch, so none is discarded and reopened). Raises KubeConfigError."""
    configuration = client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG") or ""
    if not path and Path("~/.kube/config").expanduser().is_file():
        path = str(Path("~/.kube/config").expanduser())
    if kubeconfig and not Path(kubeconfig).is_file():
        raise KubeConfigError(f"kubeconfig {kubeconfig} does not exist or is not a file")
    try:
        if path:
            config.load_kube_config(config_file=path, context=context, client_configuration=configuration,
                                    persist_config=False)
        elif context:
            raise KubeConfigError(f"context {context!r} asked for, but no kubeconfig found "
                                  "(--kubeconfig, KUBECONFIG, ~/.kube/config)")
        else:
            config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException as exc:
        where = f"kubeconfig {path}" + (f", context {context!r}" if context else "") if path else (
            "in-cluster service account (no --kubeconfig, KUBECONFIG or ~/.kube/config either)")
        raise KubeConfigError(f"cannot use {where}: {exc}") from exc
    configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, pool_size)
    return client.ApiClient(configuration)


def redact_secret(obj: dict) -> dict:
    """The Secret with metadata and key names only: each value of `data` / `stringData` becomes
    "sha256:<hex>" (of the decoded bytes; `data` and `stringData` hash alike), keys sorted; the
    last-applied-configuration annotation (which repeats the values) is redacted the same way.
    The hashes are those of `core.kube.redact`, so a live Secret and the same Secret replayed from a
    file share id (raw_event_from_object redacts every object again: it keeps what is hashed)."""
    out = redact_object(obj)
    out = out if out is not obj else dict(obj)
    for field in ("data", "stringData"):
        if isinstance(out.get(field), dict):
            out[field] = {key: out[field][key] for key in sorted(out[field])}
    return out


def build_resources(api_client: client.ApiClient, specs: Sequence[KindSpec]) -> list[Resource]:
    return [Resource(name=spec.name, kind=spec.kind, api_version=spec.api_version,
                     list_fn=getattr(getattr(client, spec.api)(api_client), spec.method),
                     redact=redact_secret if spec.kind == "Secret" else None)
            for spec in specs]


# -- many kinds at once ------------------------------------------------------------------------


class _Finished:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class ClusterWatch:
    """All watchers' output as one stream of `RawEvent | UnusableInput`, until `stop` is set.

    Use as `async with watch_cluster(api, kinds=[...], stop=stop) as events: async for e in events`.
    Leaving the block (or `aclose`) cancels every watcher, which closes its connection. A watcher
    that fails with an unexpected error (a bug, not a network or API error) ends the stream
    with that error.
    """

    def __init__(self, api_client: client.ApiClient, *, kinds: Sequence[str] | None = None,
                 stop: asyncio.Event | None = None, options: WatchOptions | None = None,
                 queue_size: int = 10_000, resume: ResumeFile | None = None) -> None:
        self.specs = resolve_kinds(kinds)
        self.api_client = api_client
        self.stop = stop
        self.options = options or WatchOptions()
        self._out: asyncio.Queue = asyncio.Queue(maxsize=queue_size)
        self._executor = ThreadPoolExecutor(max_workers=2 * len(self.specs) + 2,  # a closing watch may
                                            thread_name_prefix="kubeapi")           # overlap the next call
        server = self.server = str(api_client.configuration.host or "")
        self.resume = resume
        points = resume.load(server) if resume is not None else {}
        self.watchers = [ResourceWatcher(resource, out=self._out, executor=self._executor, options=self.options,
                                         server=server, resume=points.get(resource.name))
                         for resource in build_resources(api_client, self.specs)]
        self._tasks: list[asyncio.Task] = []
        self._supervisor: asyncio.Task | None = None
        self._finished: _Finished | None = None

    async def __aenter__(self) -> ClusterWatch:
        self._tasks = [asyncio.create_task(w.run(), name=f"kubeapi-{w.resource.name}") for w in self.watchers]
        self._supervisor = asyncio.create_task(self._supervise(), name="kubeapi-supervisor")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _supervise(self) -> None:
        waiters: set[asyncio.Future] = set(self._tasks)
        if self.stop is not None:
            waiters.add(asyncio.ensure_future(self.stop.wait()))
        done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        error = next((t.exception() for t in done if t in self._tasks and not t.cancelled() and t.exception()), None)
        for future in pending:
            future.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self._out.put(_Finished(error))

    def __aiter__(self) -> AsyncIterator[RawEvent | UnusableInput]:
        return self

    async def __anext__(self) -> RawEvent | UnusableInput:
        if self._finished is None:
            item = await self._out.get()
            if not isinstance(item, _Finished):
                return item
            self._finished = item
        if self._finished.error is not None:
            raise self._finished.error
        raise StopAsyncIteration

    async def next_batch(self, limit: int) -> list[RawEvent | UnusableInput]:
        """Waits for one item, then takes whatever else is ready (up to `limit`); [] once finished."""
        try:
            batch = [await self.__anext__()]
        except StopAsyncIteration:
            return []
        while len(batch) < limit and not self._out.empty():
            item = self._out.get_nowait()
            if isinstance(item, _Finished):
                self._finished = item
                break
            batch.append(item)
        return batch

    def save_resume_points(self) -> None:
        """Write where each watcher is to the resume file. Only when everything taken from the stream
        has been handed on and nothing waits in it: a resume point then names nothing not handed on."""
        if self.resume is not None and self._out.empty():
            self.resume.save(self.server, {w.resource.name: p for w in self.watchers if (p := w.resume_point())})

    async def aclose(self) -> None:
        pending = [t for t in [*self._tasks, self._supervisor] if t is not None and not t.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._executor.shutdown(wait=False, cancel_futures=True)


def watch_cluster(api_client: client.ApiClient, *, kinds: Sequence[str] | None = None,
                  stop: asyncio.Event | None = None, options: WatchOptions | None = None,
                  resume: ResumeFile | None = None) -> ClusterWatch:
    """List + watch `kinds` (all of KINDS by default) as one async stream; see ClusterWatch.
    With `resume`, each kind goes on from where the last run stopped (collectors.resume)."""
    return ClusterWatch(api_client, kinds=kinds, stop=stop, options=options, resume=resume)


async def collect(api_client: client.ApiClient, *, sink: Callable[[list[RawEvent]], Awaitable[object]],
                  reject: Callable[[UnusableInput], Awaitable[object]] | None = None,
                  kinds: Sequence[str] | None = None, stop: asyncio.Event | None = None,
                  options: WatchOptions | None = None, batch_max: int = 1000,
                  resume: ResumeFile | None = None) -> int:
    """Hand RawEvents to `sink` in batches of what has arrived, until `stop`; returns how many.

    An object that cannot be used goes to `reject` (logged only when None). With `resume`, the
    watch goes on from where the last run stopped, and where this one is is written there after
    a batch (at most every RESUME_EVERY_S) and at the end.
    """
    handed = 0
    saved = time.monotonic()
    async with watch_cluster(api_client, kinds=kinds, stop=stop, options=options, resume=resume) as stream:
        while batch := await stream.next_batch(batch_max):
            events = [item for item in batch if isinstance(item, RawEvent)]
            for item in batch:
                if isinstance(item, UnusableInput) and reject is not None:
                    await reject(item)
            if events:
                await sink(events)
                handed += len(events)
            if resume is not None and time.monotonic() - saved >= RESUME_EVERY_S:
                stream.save_resume_points()
                saved = time.monotonic()
        stream.save_resume_points()
    return handed
