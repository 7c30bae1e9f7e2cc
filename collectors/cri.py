"""The CRI collector: containerd's own events (task start, exit with status, OOM, image and container changes).

Fed by containerd's gRPC API on its socket (`/run/containerd/containerd.sock`): the Events service's
`Subscribe` stream (envelopes of topic, namespace, time and an `Any` payload) and the Containers service, whose
CRI labels (`io.kubernetes.pod.name`, `.namespace`, `.uid`, `io.kubernetes.container.name`) say which pod and
container a container id is, and whose OCI spec gives its cgroup. The Python modules are vendored in
`collectors/containerd_api/` (generated from Debian's containerd sources by
`tests/support/containerd_protos.py`). Feeds the agent (`collectors.node`): `ContainerStart`, `ContainerExit`
(exit code, severity by code), `SandboxStart`/`SandboxExit` (a pod's sandbox), `ContainerOOM`, `ExecExit` (a
non-zero exec, such as a failing exec probe), `ContainerCreated`/`ContainerDeleted`, `TaskDeleted`,
`ImagePulled`/`ImageUpdated`/`ImageDeleted`, about the pod when the labels name one.

Pure: `decode` (envelope -> `CriEvent`), `identity_of` (labels, spec -> `ContainerIdentity`), `node_events`
(-> RawEvents, collapsing the repeated OOM notifications containerd sends for one kill). `CriCollector` is the
thin async shell: it subscribes, looks identities up (cached, pre-filled by listing the namespace's containers),
and reconnects with backoff when containerd restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket as socketlib
import stat
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import grpc
import msgspec
from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp

from collectors.containerd_api.events import container_pb2, image_pb2, task_pb2
from collectors.containerd_api.services.containers.v1 import containers_pb2, containers_pb2_grpc
from collectors.containerd_api.services.events.v1 import events_pb2, events_pb2_grpc
from collectors.node import Emit, SourceUnavailable, node_event
from collectors.nodebatches import Batches
from core.events import RawEvent

log = logging.getLogger(__name__)

SOCKET = "/run/containerd/containerd.sock"
NAMESPACE = "k8s.io"  # the containerd namespace the CRI plugin keeps Kubernetes' containers in
POD_NAME, POD_NAMESPACE, POD_UID = "io.kubernetes.pod.name", "io.kubernetes.pod.namespace", "io.kubernetes.pod.uid"
CONTAINER_NAME, CRI_KIND = "io.kubernetes.container.name", "io.cri-containerd.kind"  # kind: sandbox | container
#: the topics decoded (containerd also publishes snapshot, content, namespace and exec topics)
PAYLOADS: dict[str, type[Message]] = {
    "/tasks/start": task_pb2.TaskStart,
    "/tasks/exit": task_pb2.TaskExit,
    "/tasks/oom": task_pb2.TaskOOM,
    "/tasks/delete": task_pb2.TaskDelete,
    "/containers/create": container_pb2.ContainerCreate,
    "/containers/update": container_pb2.ContainerUpdate,
    "/containers/delete": container_pb2.ContainerDelete,
    "/images/create": image_pb2.ImageCreate,
    "/images/update": image_pb2.ImageUpdate,
    "/images/delete": image_pb2.ImageDelete,
}
SIGNALS = {1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 6: "SIGABRT", 9: "SIGKILL", 11: "SIGSEGV", 13: "SIGPIPE",
           15: "SIGTERM"}
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 15.0


class CriEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One containerd event this collector reads, decoded from its envelope."""

    topic: str
    namespace: str
    at: datetime  # the envelope's time (a TaskExit's own exited_at when set)
    container_id: str = ""
    exec_id: str = ""  # the exec process of a TaskExit/TaskDelete; "" or the container id for the init process
    pid: int = 0
    exit_status: int | None = None
    image: str = ""  # an image event's name, or a created container's image
    labels: dict[str, str] = {}
    key: str = ""  # what makes this envelope unique: topic, id and time in ns


class ContainerIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """Who a container is, from the labels the CRI plugin puts on it."""

    pod_name: str = ""
    pod_namespace: str = ""
    pod_uid: str = ""
    container: str = ""  # the Kubernetes container name; "" for a pod sandbox
    sandbox: bool = False
    image: str = ""
    cgroup: str = ""  # the OCI spec's linux.cgroupsPath (cgroupfs: /kubepods/.../<id>; systemd: slice:prefix:id)


class StreamEnded(ConnectionError):
    """containerd closed the event stream without an error (it is stopping)."""


class UnknownPayload(ValueError):
    """An envelope whose payload type is not the one its topic carries."""


def _time(stamp: Timestamp) -> datetime:
    return datetime.fromtimestamp(stamp.seconds, tz=UTC).replace(microsecond=stamp.nanos // 1000)


def decode(envelope: events_pb2.Envelope) -> CriEvent | None:
    """The event in an envelope, or None for a topic this collector does not read. Raises UnknownPayload when
    the `Any` holds another type than the topic's, and DecodeError for a payload that does not parse."""
    kind = PAYLOADS.get(envelope.topic)
    if kind is None:
        return None
    type_name = envelope.event.type_url.rsplit("/", 1)[-1]
    if type_name != kind.DESCRIPTOR.full_name:
        raise UnknownPayload(f"{envelope.topic}: payload {envelope.event.type_url!r}, "
                             f"expected {kind.DESCRIPTOR.full_name}")
    payload = kind.FromString(envelope.event.value)
    at = _time(envelope.timestamp)
    fields: dict[str, object] = {}
    if isinstance(payload, task_pb2.TaskExit | task_pb2.TaskDelete):
        fields = {"container_id": payload.container_id, "exec_id": payload.id, "pid": payload.pid,
                  "exit_status": payload.exit_status}
        if payload.HasField("exited_at") and payload.exited_at.seconds > 0:
            at = _time(payload.exited_at)
    elif isinstance(payload, task_pb2.TaskStart):
        fields = {"container_id": payload.container_id, "pid": payload.pid}
    elif isinstance(payload, task_pb2.TaskOOM | container_pb2.ContainerDelete):
        fields = {"container_id": getattr(payload, "container_id", "") or getattr(payload, "id", "")}
    elif isinstance(payload, container_pb2.ContainerCreate):
        fields = {"container_id": payload.id, "image": payload.image}
    elif isinstance(payload, container_pb2.ContainerUpdate):
        fields = {"container_id": payload.id, "image": payload.image, "labels": dict(payload.labels)}
    elif isinstance(payload, image_pb2.ImageCreate | image_pb2.ImageUpdate):
        fields = {"image": payload.name, "labels": dict(payload.labels)}
    elif isinstance(payload, image_pb2.ImageDelete):
        fields = {"image": payload.name}
    stamp = envelope.timestamp.seconds * 1_000_000_000 + envelope.timestamp.nanos
    ident = str(fields.get("container_id") or fields.get("image") or "")
    return CriEvent(topic=envelope.topic, namespace=envelope.namespace, at=at,
                    key=f"{envelope.namespace}|{envelope.topic}|{ident}|{fields.get('exec_id', '')}|{stamp}",
                    **fields)  # type: ignore[arg-type]


def identity_of(labels: Mapping[str, str], image: str = "", spec: bytes = b"") -> ContainerIdentity:
    """The pod and container a containerd container is, from its CRI labels (empty fields when absent), and
    its cgroup from its OCI runtime spec (JSON, as containerd stores it) when given."""
    return ContainerIdentity(pod_name=labels.get(POD_NAME, ""), pod_namespace=labels.get(POD_NAMESPACE, ""),
                             pod_uid=labels.get(POD_UID, ""), container=labels.get(CONTAINER_NAME, ""),
                             sandbox=labels.get(CRI_KIND) == "sandbox", image=image, cgroup=cgroup_of(spec))


class _Linux(msgspec.Struct, frozen=True):
    cgroupsPath: str = ""  # noqa: N815 (the OCI spec's name)


class _Spec(msgspec.Struct, frozen=True):
    linux: _Linux = _Linux()


def cgroup_of(spec: bytes) -> str:
    """`linux.cgroupsPath` of an OCI runtime spec (JSON); "" when absent or unreadable."""
    if not spec:
        return ""
    try:
        return msgspec.json.decode(spec, type=_Spec).linux.cgroupsPath
    except msgspec.DecodeError:
        return ""


def exit_meaning(code: int) -> tuple[str, str, str]:
    """(intent, category, severity) of a container's exit: 0 is a normal end; SIGTERM/SIGINT (143/130) a stop
    on request; SIGKILL (137) a kill (an OOM kill also sends its own ContainerOOM); anything else a failure."""
    if code == 0:
        return "lifecycle", "lifecycle", "info"
    if code in (128 + 15, 128 + 2):
        return "container-kill", "lifecycle", "info"
    if code == 128 + 9:
        return "container-kill", "lifecycle", "warning"
    return "container-failure", "availability", "warning"


def _about(identity: ContainerIdentity | None) -> dict[str, str]:
    if identity is None or not identity.pod_name:
        return {}
    return {"kind": "Pod", "namespace": identity.pod_namespace, "name": identity.pod_name, "uid": identity.pod_uid}


def _who(event: CriEvent, identity: ContainerIdentity | None) -> str:
    short = event.container_id[:12]
    if identity is None or not identity.pod_name:
        return f"container {short}"
    if identity.sandbox:
        return f"sandbox {short} of pod {identity.pod_namespace}/{identity.pod_name}"
    return f"container {identity.container or short} ({short})"


def node_event_of(event: CriEvent, identity: ContainerIdentity | None, *, node: str) -> RawEvent | None:
    """The RawEvent for one decoded event about a container of known (or unknown: None) identity, or None
    for what is not forwarded (the exec processes' starts and deletes, a zero-exit exec)."""
    facts: dict[str, str] = {}
    if event.container_id:
        facts["container_id"] = event.container_id
    if identity is not None and identity.cgroup:
        facts["kernel.cgroup"] = identity.cgroup
    if identity is not None and identity.container:
        facts["container"] = identity.container
    if event.pid:
        facts["pid"] = str(event.pid)
    if event.image or (identity is not None and identity.image):
        facts["image"] = event.image or (identity.image if identity else "")
    who = _who(event, identity)
    sandbox = identity is not None and identity.sandbox
    is_exec = bool(event.exec_id) and event.exec_id != event.container_id
    topic = event.topic
    if topic == "/tasks/exit" or (topic == "/tasks/delete" and not is_exec):
        code = event.exit_status or 0
        facts["kernel.exit_code"] = str(code)
        if code > 128 and code - 128 in SIGNALS:
            facts["kernel.signal"] = SIGNALS[code - 128]
        if topic == "/tasks/delete":
            return _event(event, node, identity, "TaskDeleted", f"{who}: task deleted (exit code {code})",
                          ("deleted", "lifecycle", "debug"), facts)
        if is_exec:
            if code == 0:
                return None
            facts["exec_id"] = event.exec_id
            return _event(event, node, identity, "ExecExit", f"{who}: exec {event.exec_id} exited with code {code}",
                          ("container-failure", "availability", "info"), facts)
        signal = f" ({facts['kernel.signal']})" if "kernel.signal" in facts else ""
        if sandbox:  # the CRI plugin SIGKILLs a pod's sandbox when the pod goes: its end, not a failure
            return _event(event, node, identity, "SandboxExit", f"{who} exited with code {code}{signal}",
                          ("lifecycle", "lifecycle", "info"), facts)
        return _event(event, node, identity, "ContainerExit", f"{who} exited with code {code}{signal}",
                      exit_meaning(code), facts)
    if topic == "/tasks/start":
        return _event(event, node, identity, "SandboxStart" if sandbox else "ContainerStart",
                      f"{who} started (pid {event.pid})", ("lifecycle", "lifecycle", "info"), facts)
    if topic == "/tasks/oom":
        return _event(event, node, identity, "ContainerOOM", f"{who}: a process was killed by the OOM killer",
                      ("oom-kill", "resources", "error"), facts)
    if topic == "/containers/create":
        return _event(event, node, identity, "ContainerCreated", f"{who} created from {event.image}",
                      ("created", "lifecycle", "info"), facts)
    if topic == "/containers/update":
        return _event(event, node, identity, "ContainerUpdated", f"{who} updated", ("changed", "state", "debug"),
                      facts)
    if topic == "/containers/delete":
        return _event(event, node, identity, "ContainerDeleted", f"{who} deleted", ("deleted", "lifecycle", "info"),
                      facts)
    if topic in ("/images/create", "/images/update", "/images/delete"):
        reason, verb, meaning = {
            "/images/create": ("ImagePulled", "pulled or imported", ("lifecycle", "lifecycle", "info")),
            "/images/update": ("ImageUpdated", "updated", ("changed", "state", "info")),
            "/images/delete": ("ImageDeleted", "deleted", ("deleted", "lifecycle", "info")),
        }[topic]
        return _event(event, node, None, reason, f"image {event.image} {verb}", meaning, facts)
    return None


def _event(event: CriEvent, node: str, identity: ContainerIdentity | None, reason: str, message: str,
           meaning: tuple[str, str, str], facts: dict[str, str]) -> RawEvent:
    intent, category, severity = meaning
    return node_event("cri", node=node, at=event.at, reason=reason, message=message, intent=intent,
                      category=category, severity=severity, about=_about(identity), facts=facts, key=event.key)


class OomRepeats:
    """containerd sends /tasks/oom once per OOM notification of the container's cgroup, often twice for one
    kill: a repeat before the container's next exit or start is not forwarded."""

    def __init__(self) -> None:
        self._oomed: set[str] = set()

    def keep(self, event: CriEvent) -> bool:
        if event.topic == "/tasks/oom":
            if event.container_id in self._oomed:
                return False
            self._oomed.add(event.container_id)
        elif event.topic in ("/tasks/exit", "/tasks/start", "/containers/delete") and (
                not event.exec_id or event.exec_id == event.container_id):
            self._oomed.discard(event.container_id)
        return True


def node_events(events: Iterable[CriEvent], identities: Mapping[str, ContainerIdentity], *, node: str,
                repeats: OomRepeats | None = None) -> list[RawEvent]:
    """The RawEvents for a run of decoded events, the repeated OOM notifications of one kill collapsed
    (`repeats` carries that across calls)."""
    repeats = repeats or OomRepeats()
    out = []
    for event in events:
        if not repeats.keep(event):
            continue
        raw = node_event_of(event, identities.get(event.container_id), node=node)
        if raw is not None:
            out.append(raw)
    return out


def subscribe_filters(namespace: str) -> list[str]:
    """containerd event filters (one per topic group, OR-ed) for the topics `decode` reads, in one namespace."""
    return [f'namespace=={namespace},topic~="^/(tasks/(start|exit|oom|delete)|containers/|images/)"']


class CriCollector:
    """containerd's events for the agent. `socket`: containerd's gRPC socket; `namespace`: the CRI's."""

    name = "cri"

    def __init__(self, *, node: str, socket: str = SOCKET, namespace: str = NAMESPACE,
                 every: float = 1.0, max_batch: int = 500) -> None:
        self.node, self.socket, self.namespace = node, socket, namespace
        self._every, self._max_batch = every, max_batch
        self._identities: dict[str, ContainerIdentity] = {}
        self._repeats = OomRepeats()
        self._lost = 0
        self._batches: Batches | None = None
        self.connected = asyncio.Event()  # set while a subscription is open (tests and /healthz read it)
        self.subscriptions = 0  # how many times it subscribed: more than one means containerd restarted

    def check(self) -> None:
        try:
            mode = os.stat(self.socket).st_mode
        except FileNotFoundError:
            raise SourceUnavailable(
                f"containerd's socket {self.socket} does not exist: run containerd on this node, or give the "
                f"agent its socket (mount the host's /run/containerd into the agent's pod)") from None
        except PermissionError:
            raise SourceUnavailable(f"containerd's socket {self.socket} cannot be read: run the agent as root"
                                    ) from None
        if not stat.S_ISSOCK(mode):
            raise SourceUnavailable(f"{self.socket} is not a socket: give the agent containerd's gRPC socket")
        probe = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
        try:
            probe.connect(self.socket)
        except OSError as e:
            raise SourceUnavailable(f"containerd's socket {self.socket} refuses connections ({e.strerror}): "
                                    f"is containerd running?") from None
        finally:
            probe.close()

    def lost(self) -> int:
        return self._lost + (self._batches.dropped if self._batches else 0)

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        self._batches = Batches(emit, every=self._every, max_batch=self._max_batch)
        pump = asyncio.create_task(self._batches.pump(stop))
        try:
            await self._follow(stop)
        finally:
            stop.set()
            await pump

    async def _follow(self, stop: asyncio.Event) -> None:
        backoff = BACKOFF_FIRST
        while not stop.is_set():
            try:
                async with grpc.aio.insecure_channel(f"unix://{self.socket}") as channel:
                    await self._subscribe(channel, stop)
                    backoff = BACKOFF_FIRST
            except (grpc.aio.AioRpcError, StreamEnded) as e:
                self.connected.clear()
                if stop.is_set():
                    return
                why = f"{e.code().name} ({e.details()})" if isinstance(e, grpc.aio.AioRpcError) else str(e)
                log.warning("cri: containerd at %s: %s; reconnecting in %.1f s: check that containerd is running",
                            self.socket, why, backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
        self.connected.clear()

    async def _subscribe(self, channel: grpc.aio.Channel, stop: asyncio.Event) -> None:
        events = events_pb2_grpc.EventsStub(channel)
        containers = containers_pb2_grpc.ContainersStub(channel)
        call = events.Subscribe(events_pb2.SubscribeRequest(filters=subscribe_filters(self.namespace)))
        stopping = asyncio.create_task(stop.wait())
        try:
            await self._fill(containers)  # after subscribing: a container created meanwhile is in one or the other
            self.connected.set()
            self.subscriptions += 1
            log.info("cri: following containerd's events at %s (namespace %s)", self.socket, self.namespace)
            reading = asyncio.ensure_future(self._read(call, containers))
            done, _ = await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if reading in done:
                reading.result()  # raises the stream's error (containerd went away)
                raise StreamEnded("containerd ended the event stream")
            call.cancel()
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await reading
        finally:
            stopping.cancel()
            call.cancel()

    async def _read(self, call: grpc.aio.UnaryStreamCall, containers: containers_pb2_grpc.ContainersStub) -> None:
        assert self._batches is not None
        async for envelope in call:
            try:
                event = decode(envelope)
            except (UnknownPayload, DecodeError) as e:
                self._lost += 1
                log.warning("cri: an event could not be read (%s); containerd's API may be newer than the vendored "
                            "one: regenerate collectors/containerd_api", e)
                continue
            if event is None or event.namespace != self.namespace:
                continue
            known = event.container_id in self._identities
            if event.container_id and (not known or event.topic == "/containers/update") and (
                    event.topic != "/containers/delete"):
                await self._lookup(containers, event.container_id)  # an update may change labels or spec
            for raw in node_events([event], self._identities, node=self.node, repeats=self._repeats):
                self._batches.offer(raw)
            if event.topic == "/containers/delete":
                self._identities.pop(event.container_id, None)

    async def _fill(self, containers: containers_pb2_grpc.ContainersStub) -> None:
        """Every container of the namespace, streamed one message each (List's single answer, with every
        container's OCI spec, passes gRPC's 4 MiB limit on a busy node)."""
        identities = {}
        async for message in containers.ListStream(containers_pb2.ListContainersRequest(), metadata=self._metadata(),
                                                   timeout=30):
            container = message.container
            identities[container.id] = identity_of(container.labels, container.image, container.spec.value)
        self._identities = identities

    async def _lookup(self, containers: containers_pb2_grpc.ContainersStub, container_id: str) -> None:
        try:
            found = await containers.Get(containers_pb2.GetContainerRequest(id=container_id),
                                         metadata=self._metadata(), timeout=5)
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return  # gone already: the event is about the node, with the container id
        container = found.container
        self._identities[container_id] = identity_of(container.labels, container.image, container.spec.value)

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return (("containerd-namespace", self.namespace),)
