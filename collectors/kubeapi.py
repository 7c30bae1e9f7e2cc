"""KubeAPI collector: list + watch of the cluster's objects and Events -> RawEvents (type "kubeapi").

Fed by: a Kubernetes API server, found the way kubectl finds it (`--kubeconfig`, `--context`,
`KUBECONFIG`, `~/.kube/config`, else the pod's service account), read with the synchronous
`kubernetes` client (read-only; `docker/rbac.yaml` is the ClusterRole it needs).
Feeds: JetStream `events.kubeapi.<namespace>` through `app.collect.run_kubeapi_collector`,
`deadletter.kubeapi` for objects that cannot be used; or any async callback (`collect`) or
async iteration (`watch_cluster`), which is what the tests use without NATS.

Versions: each kind is watched at the newest of its group versions the API server serves, as its
discovery says at start (`discover`, `collectors.discovery`): a 1.20 cluster serves EndpointSlices in
discovery.k8s.io/v1beta1, CronJobs in batch/v1beta1, HorizontalPodAutoscalers in autoscaling/v2beta2.
Endpoints are watched where EndpointSlices are not served; a kind served in none of its versions is
said once and left out, never retried (restart the collector once the cluster serves it).

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
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import urllib3.exceptions
from kubernetes import client, config
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from collectors.discovery import list_function, served_resources
from collectors.resume import ResumeFile
from collectors.unusable import UnusableInput
from collectors.watching import RETRIABLE, Resource, ResourceWatcher, WatchOptions
from core.events import RawEvent
from core.kube.redact import LAST_APPLIED, redact_object

log = logging.getLogger(__name__)
RESUME_EVERY_S = 10.0

__all__ = ["KINDS", "ClusterWatch", "KindSpec", "KubeConfigError", "UnknownKindError", "WatchOptions",
           "choose_versions", "collect", "discover", "LAST_APPLIED", "load_api_client", "redact_secret",
           "resolve_kinds", "watch_cluster", "with_stand_ins"]



class KubeConfigError(Exception):
    """No usable cluster configuration: name a kubeconfig (--kubeconfig / KUBECONFIG) or run in a pod."""


class UnknownKindError(ValueError):
    """A kind the collector does not watch was asked for."""


@dataclass(frozen=True, kw_only=True)
class KindSpec:
    """One watched resource: its group versions, newest first, and how RBAC names it.

    `group` / `version` are the version watched: the newest one until discovery (`choose_versions`)
    picks the newest one the API server serves. `instead_of` names a kind this one stands in for
    where the server does not serve it (Endpoints for EndpointSlices); it is watched only then.
    """

    name: str  # what `kinds=` takes and logs print: the plural, or plural.group when plural is ambiguous
    kind: str
    group: str  # "" for the core group
    version: str
    plural: str
    namespaced: bool
    versions: tuple[str, ...]  # group versions that serve it, newest first
    instead_of: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def at(self, group_version: str) -> KindSpec:
        group, _, version = group_version.rpartition("/")
        return replace(self, group=group, version=version)


def _spec(name: str, kind: str, group_versions: str, namespaced: bool, instead_of: str = "") -> KindSpec:
    versions = tuple(group_versions.split())
    group, _, version = versions[0].rpartition("/")
    return KindSpec(name=name, kind=kind, group=group, version=version, plural=name.split(".")[0],
                    namespaced=namespaced, versions=versions, instead_of=instead_of)


KINDS: tuple[KindSpec, ...] = tuple(_spec(*row) for row in (
    # name, Kind, its group versions (newest first), namespaced[, the kind it stands in for]
    ("nodes", "Node", "v1", False),
    ("namespaces", "Namespace", "v1", False),
    ("pods", "Pod", "v1", True),
    ("services", "Service", "v1", True),
    ("endpointslices", "EndpointSlice", "discovery.k8s.io/v1 discovery.k8s.io/v1beta1", True),
    ("endpoints", "Endpoints", "v1", True, "endpointslices"),  # before 1.17 / without EndpointSlices
    ("configmaps", "ConfigMap", "v1", True),
    ("secrets", "Secret", "v1", True),
    ("deployments", "Deployment", "apps/v1", True),
    ("replicasets", "ReplicaSet", "apps/v1", True),
    ("statefulsets", "StatefulSet", "apps/v1", True),
    ("daemonsets", "DaemonSet", "apps/v1", True),
    ("jobs", "Job", "batch/v1", True),
    ("cronjobs", "CronJob", "batch/v1 batch/v1beta1", True),
    ("persistentvolumeclaims", "PersistentVolumeClaim", "v1", True),
    ("persistentvolumes", "PersistentVolume", "v1", False),
    ("storageclasses", "StorageClass", "storage.k8s.io/v1", False),
    ("ingresses", "Ingress", "networking.k8s.io/v1", True),
    ("networkpolicies", "NetworkPolicy", "networking.k8s.io/v1", True),
    ("horizontalpodautoscalers", "HorizontalPodAutoscaler", "autoscaling/v2 autoscaling/v2beta2 autoscaling/v1",
     True),
    ("poddisruptionbudgets", "PodDisruptionBudget", "policy/v1 policy/v1beta1", True),
    ("events", "Event", "v1", True),
    ("events.events.k8s.io", "Event", "events.k8s.io/v1 events.k8s.io/v1beta1", True),
))


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
    if not configuration.verify_ssl:
        _unverified(configuration.host, path or "the in-cluster configuration", context)
    return client.ApiClient(configuration)


def _unverified(host: str, where: str, context: str | None) -> None:
    """Said once, here, instead of urllib3's InsecureRequestWarning on every request (two per call)."""
    warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
    log.warning("kubeapi: the connection to %s is not verified (insecure-skip-tls-verify in %s%s): anyone on the "
                "network path can read or change what the collector sees; give the cluster's CA instead "
                "(certificate-authority-data, or `kubectl config set-cluster <name> --certificate-authority=<ca.crt> "
                "--embed-certs`)", host, where, f", context {context!r}" if context else "")


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


# -- which versions -----------------------------------------------------------------------


def choose_versions(specs: Sequence[KindSpec], served: Mapping[str, frozenset[str] | None]
                    ) -> tuple[list[KindSpec], list[str]]:
    """Pure: each kind at the newest of its group versions whose discovery (`served`: group version
    -> its resources, None when not served) lists it, and why the others are left out.

    A kind no version of which is served is left out (said once, not retried); a kind standing in
    for another (`instead_of`) is watched only where that one is not served, or when asked for alone.
    """
    chosen: dict[str, KindSpec] = {}
    skipped: list[str] = []
    for spec in specs:
        version = next((gv for gv in spec.versions if spec.plural in (served.get(gv) or ())), None)
        if version is None:
            skipped.append(f"{spec.name} ({spec.kind}) is served in none of {', '.join(spec.versions)}: not watched "
                           "(said once, not retried; restart the collector once the cluster serves it)")
        else:
            chosen[spec.name] = spec.at(version)
    names = {spec.name for spec in specs}
    for spec in specs:
        stand_in = chosen.get(spec.name)
        if stand_in is None or not spec.instead_of or spec.instead_of not in names:
            continue
        if spec.instead_of in chosen:
            del chosen[spec.name]  # the kind it stands in for is served: that one is watched
        else:
            skipped.append(f"{spec.name} ({stand_in.api_version}) watched in place of {spec.instead_of}")
    return [chosen[spec.name] for spec in specs if spec.name in chosen], skipped


def with_stand_ins(specs: Sequence[KindSpec]) -> list[KindSpec]:
    """`specs` and the kinds that stand in for them where they are not served, in KINDS order."""
    names = {spec.name for spec in specs}
    return [spec for spec in KINDS if spec.name in names or spec.instead_of in names]


def discover(api_client: client.ApiClient, specs: Sequence[KindSpec], *, timeout: float = 10.0
             ) -> tuple[list[KindSpec], list[str]]:
    """Blocking: `choose_versions` on what the API server's discovery says of every candidate group
    version. Raises what discovery raises (ApiException other than 404, urllib3 and OS errors)."""
    group_versions = dict.fromkeys(gv for spec in specs for gv in spec.versions)
    served = {gv: served_resources(api_client, gv, timeout=timeout) for gv in group_versions}
    return choose_versions(specs, served)


def build_resources(api_client: client.ApiClient, specs: Sequence[KindSpec]) -> list[Resource]:
    return [Resource(name=spec.name, kind=spec.kind, api_version=spec.api_version,
                     list_fn=list_function(api_client, group_version=spec.api_version, plural=spec.plural),
                     redact=redact_secret if spec.kind == "Secret" else None)
            for spec in specs]


# -- many kinds at once ------------------------------------------------------------------------


class _Finished:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class ClusterWatch:
    """All watchers' output as one stream of `RawEvent | UnusableInput`, until `stop` is set.

    Use as `async with watch_cluster(api, kinds=[...], stop=stop) as events: async for e in events`.
    First the API server's discovery picks each kind's version (`discover`; retried with backoff
    while the server cannot be reached); `served` holds the kinds watched once it has. Leaving the
    block (or `aclose`) cancels every watcher, which closes its connection. A watcher that fails
    with an unexpected error (a bug, not a network or API error) ends the stream with that error.
    """

    def __init__(self, api_client: client.ApiClient, *, kinds: Sequence[str] | None = None,
                 stop: asyncio.Event | None = None, options: WatchOptions | None = None,
                 queue_size: int = 10_000, resume: ResumeFile | None = None) -> None:
        self.specs = resolve_kinds(kinds)
        self.api_client = api_client
        self.stop = stop
        self.options = options or WatchOptions()
        self._out: asyncio.Queue = asyncio.Queue(maxsize=queue_size)
        candidates = with_stand_ins(self.specs)
        self._executor = ThreadPoolExecutor(max_workers=2 * len(candidates) + 2,  # a closing watch may
                                            thread_name_prefix="kubeapi")           # overlap the next call
        self.server = str(api_client.configuration.host or "")
        self.resume = resume
        self._points = resume.load(self.server) if resume is not None else {}
        self.served: list[KindSpec] = []
        self.discovered = asyncio.Event()
        self.watchers: list[ResourceWatcher] = []
        self._tasks: list[asyncio.Task] = []
        self._supervisor: asyncio.Task | None = None
        self._finished: _Finished | None = None

    async def __aenter__(self) -> ClusterWatch:
        self._supervisor = asyncio.create_task(self._supervise(), name="kubeapi-supervisor")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _discover(self) -> list[KindSpec]:
        loop = asyncio.get_running_loop()
        candidates = with_stand_ins(self.specs)
        timeout = self.options.connect_timeout_s
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(RETRIABLE), reraise=True, before_sleep=self._log_retry,
            wait=wait_exponential_jitter(multiplier=self.options.backoff_initial_s, max=self.options.backoff_max_s,
                                         jitter=self.options.backoff_initial_s),
        ):
            with attempt:
                served, notes = await loop.run_in_executor(
                    self._executor, lambda: discover(self.api_client, candidates, timeout=timeout))
        for note in notes:
            log.warning("kubeapi at %s: %s", self.server, note)
        for spec in served:
            if spec.api_version != spec.versions[0]:
                log.info("kubeapi %s: watching %s, the newest version the API server at %s serves", spec.name,
                         spec.api_version, self.server)
        return served

    def _log_retry(self, state: RetryCallState) -> None:
        log.warning("kubeapi: cannot read the API server's discovery at %s: %r; retrying in %.1fs (check the network "
                    "path to it, the kubeconfig and the credentials)", self.server,
                    state.outcome.exception() if state.outcome else None,
                    state.next_action.sleep if state.next_action else 0.0)

    async def _supervise(self) -> None:
        waiters: set[asyncio.Future] = set()
        if self.stop is not None:
            waiters.add(asyncio.ensure_future(self.stop.wait()))
        error: BaseException | None = None
        discovery = asyncio.ensure_future(self._discover())
        done, _ = await asyncio.wait(waiters | {discovery}, return_when=asyncio.FIRST_COMPLETED)
        if discovery in done and not discovery.cancelled() and discovery.exception() is not None:
            error = discovery.exception()  # not an API or network error: a bug
        elif discovery in done:
            self.served = discovery.result()
            if not self.served:
                log.error("kubeapi: the API server at %s serves none of the kinds asked for (%s): nothing to watch",
                          self.server, ", ".join(s.name for s in self.specs))
            self.watchers = [ResourceWatcher(resource, out=self._out, executor=self._executor, options=self.options,
                                             server=self.server, resume=self._points.get(resource.name))
                             for resource in build_resources(self.api_client, self.served)]
            self._tasks = [asyncio.create_task(w.run(), name=f"kubeapi-{w.resource.name}") for w in self.watchers]
            self.discovered.set()
            if self._tasks:
                done, _ = await asyncio.wait(waiters | set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
                error = next((t.exception() for t in done if t in self._tasks and not t.cancelled() and t.exception()),
                             None)
        self.discovered.set()
        pending = [f for f in (*waiters, discovery, *self._tasks) if not f.done()]
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
