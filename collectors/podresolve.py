"""Which pod a process belongs to: pid -> container id (its cgroup) -> pod (the kubelet's pod list).

Fed by: `/proc/<pid>/cgroup` and the kubelet's read-only `/pods` (a PodList, e.g.
`http://127.0.0.1:10255/pods`), cached for a TTL; also a socket's local address -> the pod whose IP
it is. Feeds: the node collectors (`collectors/kernel.py`) that name the object an event is about:
a pod (`about()` gives node_event's `about`), or the Node when the process is in no pod (an empty
`about`).

The cgroup path shapes a container's process has, under any controller line (v1) or `0::` (v2):
- containerd's own namespace: `/k8s.io/<id>`;
- kubelet cgroupfs driver: `/kubepods/<qos>/pod<uid>/<id>` (`/kubepods/pod<uid>/<id>` for Guaranteed);
- kubelet systemd driver: `/kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_with_underscores>.slice/
  cri-containerd-<id>.scope` (`docker-<id>.scope`, `crio-<id>.scope` for other runtimes).
The parsers are pure; `PodResolver` does the I/O.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import msgspec

log = logging.getLogger(__name__)

_CONTAINER_RE = re.compile(r"(?:^|[/-])([0-9a-f]{64})(?:\.scope)?$")
_POD_UID_RE = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")


class Cgroup(msgspec.Struct, frozen=True):
    """Where a process sits: its cgroup path (the memory controller's, else the first), and the
    container id and pod uid that path names ("" when it names none)."""
    path: str
    container_id: str = ""
    pod_uid: str = ""


class PodRef(msgspec.Struct, frozen=True):
    namespace: str
    name: str
    uid: str
    container: str = ""  # the container's name in the pod, when known


def cgroup_at(path: str) -> Cgroup:
    """The Cgroup one cgroup path names (a memory cgroup an OOM kill was counted in, say)."""
    found = _CONTAINER_RE.search(path.rstrip("/"))
    if not found:
        return Cgroup(path=path)
    uid = _POD_UID_RE.search(path)
    return Cgroup(path=path, container_id=found.group(1), pod_uid=uid.group(1).replace("_", "-") if uid else "")


def parse_cgroup(text: str) -> Cgroup:
    """The `/proc/<pid>/cgroup` text of a process -> its Cgroup. The first line whose path names a
    container wins; else the memory controller's path (the one an OOM kill is about), else the first."""
    paths: list[tuple[str, str]] = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            paths.append((parts[1], parts[2].strip()))
    for _, path in paths:
        found = cgroup_at(path)
        if found.container_id:
            return found
    for controllers, path in paths:
        if "memory" in controllers.split(","):
            return Cgroup(path=path)
    return Cgroup(path=paths[0][1] if paths else "")


class _Meta(msgspec.Struct, frozen=True):
    name: str = ""
    namespace: str = ""
    uid: str = ""


class _ContainerStatus(msgspec.Struct):
    name: str = ""
    container_id: str = msgspec.field(default="", name="containerID")  # not camel case's "containerId"


class _PodIP(msgspec.Struct, frozen=True):
    ip: str = ""


class _Spec(msgspec.Struct, frozen=True, rename="camel"):
    host_network: bool = False


class _Status(msgspec.Struct, frozen=True, rename="camel"):
    pod_ip: str = msgspec.field(default="", name="podIP")
    pod_ips: list[_PodIP] = msgspec.field(default=[], name="podIPs")
    container_statuses: list[_ContainerStatus] = []
    init_container_statuses: list[_ContainerStatus] = []
    ephemeral_container_statuses: list[_ContainerStatus] = []


class _Pod(msgspec.Struct):
    metadata: _Meta = _Meta()
    spec: _Spec = _Spec()
    status: _Status = _Status()


class _PodList(msgspec.Struct):
    items: list[_Pod] | None = None  # a kubelet with no pod says `"items": null`


class PodIndex(msgspec.Struct, frozen=True):
    """The kubelet's pods by container id, by pod uid and by pod IP (not a hostNetwork pod's: that
    is the node's)."""
    by_container: dict[str, PodRef] = {}
    by_uid: dict[str, PodRef] = {}
    by_ip: dict[str, PodRef] = {}

    def find(self, cgroup: Cgroup) -> PodRef | None:
        if cgroup.container_id and cgroup.container_id in self.by_container:
            return self.by_container[cgroup.container_id]
        return self.by_uid.get(cgroup.pod_uid) if cgroup.pod_uid else None


def pod_index(podlist: bytes) -> PodIndex:
    """A PodList (the kubelet's `/pods` body) -> PodIndex. Container ids lose their runtime prefix
    (`containerd://`). Raises msgspec.DecodeError for a body that is not a PodList."""
    pods = msgspec.json.decode(podlist, type=_PodList)
    by_container: dict[str, PodRef] = {}
    by_uid: dict[str, PodRef] = {}
    by_ip: dict[str, PodRef] = {}
    for pod in pods.items or []:
        meta = pod.metadata
        if not meta.uid:
            continue
        by_uid[meta.uid] = PodRef(namespace=meta.namespace, name=meta.name, uid=meta.uid)
        status = pod.status
        if not pod.spec.host_network:
            for ip in {status.pod_ip, *(p.ip for p in status.pod_ips)} - {""}:
                by_ip[ip] = by_uid[meta.uid]
        for container in (*status.container_statuses, *status.init_container_statuses,
                          *status.ephemeral_container_statuses):
            if container.container_id:
                cid = container.container_id.split("://", 1)[-1]
                by_container[cid] = PodRef(namespace=meta.namespace, name=meta.name, uid=meta.uid,
                                           container=container.name)
    return PodIndex(by_container=by_container, by_uid=by_uid, by_ip=by_ip)


def about(pod: PodRef | None) -> dict[str, str]:
    """node_event's `about` for a pod; empty (the Node) when there is none."""
    if pod is None:
        return {}
    return {"kind": "Pod", "namespace": pod.namespace, "name": pod.name, "uid": pod.uid}


class PodResolver:
    """pid -> Cgroup (a read of /proc right away, else what the last scan() saw) and
    Cgroup -> PodRef through the kubelet's pod list, fetched again when older than `ttl` seconds, or
    when a container is not in it (a new pod) and the last fetch is older than `min_refresh`.
    `kubelet_url` None: no kubelet (every process is about the Node, its container id still given)."""

    def __init__(self, kubelet_url: str | None = "http://127.0.0.1:10255/pods", *, ttl: float = 30.0,
                 min_refresh: float = 2.0, proc: Path = Path("/proc"), timeout: float = 3.0) -> None:
        self.kubelet_url = kubelet_url
        self.ttl, self.min_refresh, self.proc, self.timeout = ttl, min_refresh, proc, timeout
        self._index = PodIndex()
        self._fetched = float("-inf")
        self._warned = False
        self._session: aiohttp.ClientSession | None = None
        self._seen: dict[int, Cgroup] = {}

    def _read(self, pid: int) -> Cgroup | None:
        try:
            return parse_cgroup((self.proc / str(pid) / "cgroup").read_text())
        except OSError:
            return None

    def cgroup_of(self, pid: int) -> Cgroup | None:
        """The process's Cgroup, None when it is gone. A process that is exiting shows `/` on a v1
        hierarchy (and nothing once reaped): then the container it was seen in by the last scan()."""
        found = self._read(pid)
        if found is not None and found.container_id:
            return found
        return self._seen.get(pid, found)

    def seen(self) -> dict[int, Cgroup]:
        """What the last scan() found: pid -> Cgroup, processes in a container only."""
        return dict(self._seen)

    def scan(self) -> int:
        """Remember the container of every process in one now (`/proc/*/cgroup`), for cgroup_of() to
        name it when the process has exited by the time an event about it is read. Returns how many."""
        seen: dict[int, Cgroup] = {}
        for entry in self.proc.iterdir():
            if entry.name.isdigit():
                found = self._read(int(entry.name))
                if found is not None and found.container_id:
                    seen[int(entry.name)] = found
        self._seen = seen
        return len(seen)

    async def pod_of(self, cgroup: Cgroup | None) -> PodRef | None:
        if cgroup is None or not (cgroup.container_id or cgroup.pod_uid):
            return None
        return await self._find(lambda index: index.find(cgroup))

    async def pod_at(self, ip: str) -> PodRef | None:
        """The pod whose IP this is (a socket's local address), None for the node's own addresses."""
        return await self._find(lambda index: index.by_ip.get(ip)) if ip else None

    async def _find(self, look: Callable[[PodIndex], PodRef | None]) -> PodRef | None:
        """`look` in the pod list, fetched again when older than the TTL, or when `look` finds nothing
        and the list is older than `min_refresh`."""
        if not self.kubelet_url:
            return None
        age = time.monotonic() - self._fetched
        found = look(self._index)
        if age > self.ttl or (found is None and age > self.min_refresh):
            await self._refresh()
            found = look(self._index)
        return found

    async def _refresh(self) -> None:
        assert self.kubelet_url
        self._fetched = time.monotonic()
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        try:
            async with self._session.get(self.kubelet_url) as response:
                response.raise_for_status()
                self._index = pod_index(await response.read())
            self._warned = False
        except (aiohttp.ClientError, TimeoutError, msgspec.DecodeError) as e:
            if not self._warned:
                log.warning("podresolve: cannot read the kubelet's pods at %s (%s): events name the container id "
                            "and the Node; enable the kubelet's read-only port (readOnlyPort: 10255) or set the "
                            "agent's kubelet URL", self.kubelet_url, e)
                self._warned = True

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
