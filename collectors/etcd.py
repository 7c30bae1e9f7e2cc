"""The etcd collector: etcd's health from its metrics (leader, slow disk, slow applies, failed proposals, size),
and a watch of the keys that matter.

Fed by one etcd member: its Prometheus `/metrics` (read every `interval`), parsed with `prometheus_client`'s
parser, and its gRPC watch API (PyPI `aetcd`) on the configured `/registry/...` prefixes (nodes, the node
leases of `kube-node-lease`, configmaps by default). Feeds the agent (`collectors.node`):
- every interval, `EtcdMetrics` (debug) whose `metric.etcd.*` samples the `metric` condition reads: has_leader,
  is_leader, leader_changes (in the interval), wal_fsync_p99_seconds and backend_commit_p99_seconds (the 99th
  percentile of the interval, from the histograms' bucket deltas), slow_applies, proposals_failed (in the
  interval), proposals_pending, db_size_bytes, db_size_in_use_bytes, db_quota_fraction;
- when a threshold is crossed: `EtcdNoLeader`, `EtcdLeaderChanged`, `EtcdSlowFsync`, `EtcdSlowCommit`,
  `EtcdSlowApply`, `EtcdProposalsFailed`, `EtcdDatabaseNearQuota`;
- per watched key change, `EtcdKeyCreated`/`EtcdKeyUpdated`/`EtcdKeyDeleted` with the key, its revision and
  version (never the value: it may be a Secret), about the object the key names (`/registry/nodes/n1` is Node
  n1), timed when the collector read it (etcd keeps no time). A prefix can forward creations and deletions
  only (the leases, renewed every 10 s per node): its updates are counted in the `etcd.watch_updates_skipped`
  sample.

Pure: `parse_metrics`, `assess` (two readings -> samples and findings; the p99 of an interval from
`collectors.histograms`), `object_of_key`, `key_event`. `EtcdCollector` is the thin async shell: it resumes
each prefix's watch after the last revision it delivered when etcd comes back (from the oldest kept one past a
compaction, counting the loss), and speaks TLS with a client certificate where etcd asks for one (`TlsFiles`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import aetcd
import aetcd.exceptions
import grpc
import msgspec
from aetcd import rpc as aetcd_rpc
from aetcd import watcher as aetcd_watcher
from prometheus_client.parser import text_string_to_metric_families

from collectors.histograms import Histogram, histogram, p99_between
from collectors.node import Emit, SourceUnavailable, node_event
from collectors.nodebatches import Batches
from core.events import RawEvent

log = logging.getLogger(__name__)

FSYNC = "etcd_disk_wal_fsync_duration_seconds"
COMMIT = "etcd_disk_backend_commit_duration_seconds"
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 15.0


class EtcdReading(msgspec.Struct, frozen=True, kw_only=True):
    """What one read of etcd's /metrics says (counters as read: deltas come from two readings)."""

    has_leader: float | None = None
    is_leader: float | None = None
    leader_changes_total: float = 0.0
    slow_apply_total: float = 0.0
    proposals_failed_total: float = 0.0
    proposals_pending: float = 0.0
    heartbeat_failures_total: float = 0.0
    db_size_bytes: float = 0.0
    db_size_in_use_bytes: float = 0.0
    quota_bytes: float = 0.0
    started_at: float = 0.0  # process_start_time_seconds: another value means etcd restarted (counters reset)
    fsync: Histogram = Histogram()
    commit: Histogram = Histogram()


class Thresholds(msgspec.Struct, frozen=True, kw_only=True):
    """When a reading becomes an event (the etcd mixin's alert levels by default)."""

    fsync_p99_seconds: float = 0.5  # etcdHighFsyncDurations
    commit_p99_seconds: float = 0.25  # etcdHighCommitDurations
    db_quota_fraction: float = 0.8  # etcdDatabaseQuotaLowSpace is 95 %: warn before


DEFAULTS = Thresholds()


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    reason: str
    message: str
    intent: str
    category: str
    severity: str


class Assessment(msgspec.Struct, frozen=True, kw_only=True):
    samples: dict[str, float]
    findings: list[Finding]


class WatchedPrefix(msgspec.Struct, frozen=True):
    prefix: str
    updates: bool = True  # False: forward creations and deletions only, count the updates


DEFAULT_PREFIXES = (
    WatchedPrefix("/registry/nodes/"),
    WatchedPrefix("/registry/leases/kube-node-lease/", updates=False),
    WatchedPrefix("/registry/configmaps/"),
)


def parse_metrics(text: str) -> EtcdReading:
    """An etcd member's /metrics (Prometheus text format) read into an EtcdReading. Raises ValueError for text
    that is not the format."""
    flat: list[tuple[str, Mapping[str, str], float]] = []
    for family in text_string_to_metric_families(text):
        if family.name.startswith("etcd_") or family.name == "process_start_time_seconds":
            flat.extend((s.name, s.labels, s.value) for s in family.samples)
    value = {name: v for name, labels, v in flat if not labels}

    def get(name: str) -> float | None:
        return value.get(name)

    return EtcdReading(
        has_leader=get("etcd_server_has_leader"), is_leader=get("etcd_server_is_leader"),
        leader_changes_total=get("etcd_server_leader_changes_seen_total") or 0.0,
        slow_apply_total=get("etcd_server_slow_apply_total") or 0.0,
        proposals_failed_total=get("etcd_server_proposals_failed_total") or 0.0,
        proposals_pending=get("etcd_server_proposals_pending") or 0.0,
        heartbeat_failures_total=get("etcd_server_heartbeat_send_failures_total") or 0.0,
        db_size_bytes=(get("etcd_mvcc_db_total_size_in_bytes") or get("etcd_debugging_mvcc_db_total_size_in_bytes")
                       or 0.0),
        db_size_in_use_bytes=get("etcd_mvcc_db_total_size_in_use_in_bytes") or 0.0,
        quota_bytes=get("etcd_server_quota_backend_bytes") or 0.0,
        started_at=get("process_start_time_seconds") or 0.0,
        fsync=histogram(flat, FSYNC), commit=histogram(flat, COMMIT))


def increase(before: float, after: float, *, restarted: bool = False) -> float:
    """A counter's increase between two readings; a counter that went down, or whose process restarted, was
    reset and counts from zero, as Prometheus' increase() reads it."""
    return after - before if after >= before and not restarted else after


def assess(before: EtcdReading | None, after: EtcdReading, thresholds: Thresholds = DEFAULTS) -> Assessment:
    """The samples of an interval (the first reading alone: its gauges only) and what crossed a threshold."""
    samples: dict[str, float] = {"db_size_bytes": after.db_size_bytes, "proposals_pending": after.proposals_pending,
                                 "db_size_in_use_bytes": after.db_size_in_use_bytes}
    for name, value in (("has_leader", after.has_leader), ("is_leader", after.is_leader)):
        if value is not None:
            samples[name] = value
    if after.quota_bytes > 0:
        samples["db_quota_fraction"] = round(after.db_size_bytes / after.quota_bytes, 6)
    findings: list[Finding] = []
    if after.has_leader == 0:
        findings.append(Finding(reason="EtcdNoLeader", message="etcd member has no leader: the cluster cannot "
                                "commit writes (lost quorum or a partition)", intent="leader-loss",
                                category="infrastructure", severity="critical"))
    if before is not None:
        restarted = before.started_at != after.started_at
        changes = increase(before.leader_changes_total, after.leader_changes_total, restarted=restarted)
        slow = increase(before.slow_apply_total, after.slow_apply_total, restarted=restarted)
        failed = increase(before.proposals_failed_total, after.proposals_failed_total, restarted=restarted)
        samples.update(leader_changes=changes, slow_applies=slow, proposals_failed=failed,
                       heartbeat_failures=increase(before.heartbeat_failures_total, after.heartbeat_failures_total,
                                                   restarted=restarted))
        if restarted:
            before = EtcdReading()  # the histograms start over too
        if changes > 0:
            findings.append(Finding(reason="EtcdLeaderChanged", message=f"etcd leader changed {changes:g} time(s) "
                                    "in the interval (elections stall writes)", intent="leader-change",
                                    category="infrastructure", severity="warning"))
        if slow > 0:
            findings.append(Finding(reason="EtcdSlowApply", message=f"{slow:g} etcd applies took longer than "
                                    "expected (100 ms) in the interval: slow disk or overload",
                                    intent="slow-apply", category="infrastructure", severity="warning"))
        if failed > 0:
            findings.append(Finding(reason="EtcdProposalsFailed", message=f"{failed:g} etcd proposals failed in "
                                    "the interval (leader elections or lost quorum)", intent="consensus-failure",
                                    category="infrastructure", severity="warning"))
        for name, reason, what, histograms, limit in (
                ("wal_fsync_p99_seconds", "EtcdSlowFsync", "WAL fsync", (before.fsync, after.fsync),
                 thresholds.fsync_p99_seconds),
                ("backend_commit_p99_seconds", "EtcdSlowCommit", "backend commit", (before.commit, after.commit),
                 thresholds.commit_p99_seconds)):
            p99 = p99_between(*histograms)
            if p99 is None:
                continue
            samples[name] = round(p99, 6)
            if p99 > limit:
                findings.append(Finding(reason=reason, message=f"etcd {what} p99 {p99 * 1000:.0f} ms over the "
                                        f"interval (over {limit * 1000:.0f} ms): the disk is too slow for etcd",
                                        intent="disk-latency", category="infrastructure", severity="warning"))
    if "db_quota_fraction" in samples and samples["db_quota_fraction"] > thresholds.db_quota_fraction:
        findings.append(Finding(reason="EtcdDatabaseNearQuota", message=f"etcd database at "
                                f"{samples['db_quota_fraction']:.0%} of its quota: compact and defragment before "
                                "writes are refused", intent="resource-pressure", category="infrastructure",
                                severity="warning"))
    return Assessment(samples=samples, findings=findings)


#: resource folders under /registry whose keys are /registry/<resource>/<name> (cluster-scoped)
CLUSTER_SCOPED = {"nodes": "Node", "namespaces": "Namespace", "persistentvolumes": "PersistentVolume",
                  "clusterroles": "ClusterRole", "clusterrolebindings": "ClusterRoleBinding",
                  "priorityclasses": "PriorityClass", "storageclasses": "StorageClass",
                  "csinodes": "CSINode", "minions": "Node"}
NAMESPACED = {"pods": "Pod", "configmaps": "ConfigMap", "secrets": "Secret", "leases": "Lease",
              "deployments": "Deployment", "replicasets": "ReplicaSet", "statefulsets": "StatefulSet",
              "daemonsets": "DaemonSet", "jobs": "Job", "cronjobs": "CronJob", "events": "Event",
              "persistentvolumeclaims": "PersistentVolumeClaim", "serviceaccounts": "ServiceAccount",
              "endpointslices": "EndpointSlice", "roles": "Role", "rolebindings": "RoleBinding",
              "poddisruptionbudgets": "PodDisruptionBudget", "horizontalpodautoscalers": "HorizontalPodAutoscaler",
              "controllerrevisions": "ControllerRevision", "resourcequotas": "ResourceQuota",
              "limitranges": "LimitRange", "networkpolicies": "NetworkPolicy", "ingress": "Ingress"}


def object_of_key(key: str) -> dict[str, str]:
    """The Kubernetes object a kube-apiserver key in etcd names (`kind`, `namespace`, `name`), or {} for a key
    of another layout."""
    parts = key.split("/")
    if len(parts) < 4 or parts[0] != "" or parts[1] != "registry":
        return {}
    resource, rest = parts[2], parts[3:]
    if resource == "services" and len(rest) == 3 and rest[0] in ("specs", "endpoints"):
        return {"kind": "Service" if rest[0] == "specs" else "Endpoints", "namespace": rest[1], "name": rest[2]}
    if resource in CLUSTER_SCOPED and len(rest) == 1:
        return {"kind": CLUSTER_SCOPED[resource], "name": rest[0]}
    if resource in NAMESPACED and len(rest) == 2:
        return {"kind": NAMESPACED[resource], "namespace": rest[0], "name": rest[1]}
    return {}


class KeyChange(msgspec.Struct, frozen=True, kw_only=True):
    """One watch event: what happened to which key at which revision (the value is never kept)."""

    kind: str  # PUT | DELETE
    key: str
    revision: int  # the key's mod_revision: the store's revision of this change
    version: int = 0  # 1 on creation, 0 on deletion
    lease: int = 0


def key_event(change: KeyChange, *, node: str, endpoint: str, at: datetime) -> RawEvent:
    """The RawEvent of one watched change, about the object its key names (the node when it names none)."""
    if change.kind == "DELETE":
        reason, verb, meaning = "EtcdKeyDeleted", "deleted", ("deleted", "lifecycle", "info")
    elif change.version == 1:
        reason, verb, meaning = "EtcdKeyCreated", "created", ("created", "lifecycle", "info")
    else:
        reason, verb, meaning = "EtcdKeyUpdated", "updated", ("changed", "state", "debug")
    facts = {"etcd.key": change.key, "etcd.revision": str(change.revision), "etcd.type": change.kind,
             "etcd.version": str(change.version)}
    if change.lease:
        facts["etcd.lease"] = f"{change.lease:x}"
    intent, category, severity = meaning
    return node_event("etcd", node=node, at=at, reason=reason, message=f"{change.key} {verb} at revision "
                      f"{change.revision}", intent=intent, category=category, severity=severity,
                      about=object_of_key(change.key), facts=facts,
                      key=f"{endpoint}|{change.revision}|{change.kind}|{change.key}")


def finding_event(finding: Finding, samples: Mapping[str, float], *, node: str, endpoint: str,
                  at: datetime) -> RawEvent:
    return node_event("etcd", node=node, at=at, reason=finding.reason, message=finding.message,
                      intent=finding.intent, category=finding.category, severity=finding.severity,
                      facts={**_metric_facts(samples), "etcd.endpoint": endpoint})


def metrics_event(samples: Mapping[str, float], *, node: str, endpoint: str, at: datetime) -> RawEvent:
    summary = ", ".join(f"{k}={v:g}" for k, v in sorted(samples.items()) if k in (
        "has_leader", "leader_changes", "wal_fsync_p99_seconds", "backend_commit_p99_seconds", "db_size_bytes"))
    return node_event("etcd", node=node, at=at, reason="EtcdMetrics", message=f"etcd {endpoint}: {summary}",
                      intent="observed", category="state", severity="debug",
                      facts={**_metric_facts(samples), "etcd.endpoint": endpoint})


def _metric_facts(samples: Mapping[str, float]) -> dict[str, str]:
    return {f"metric.etcd.{k}": f"{v:g}" if not float(v).is_integer() else str(int(v)) for k, v in samples.items()}


class TlsFiles(msgspec.Struct, frozen=True, kw_only=True):
    """The client certificate etcd asks for (kubeadm: --client-cert-auth on 2379; the apiserver's
    `apiserver-etcd-client.crt` or a `healthcheck-client.crt` pair) and the CA that signed etcd's own."""

    ca: str
    cert: str
    key: str

    def pem(self) -> tuple[bytes, bytes, bytes]:
        """The CA, key and certificate files' bytes, as grpc takes them."""
        return Path(self.ca).read_bytes(), Path(self.key).read_bytes(), Path(self.cert).read_bytes()

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca)
        context.load_cert_chain(self.cert, self.key)
        return context


class _TlsClient(aetcd.Client):
    """aetcd 1.0.0 opens plaintext channels only: the same client over a TLS channel with a client certificate
    (`connect` sets what aetcd's own does; aetcd is pinned)."""

    def __init__(self, *, tls: TlsFiles, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._tls = tls

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        ca, key, cert = await asyncio.to_thread(self._tls.pem)
        credentials = grpc.ssl_channel_credentials(ca, key, cert)
        self.channel = grpc.aio.secure_channel(f"{self._host}:{self._port}", credentials)
        self.kvstub = aetcd_rpc.KVStub(self.channel)
        self.clusterstub = aetcd_rpc.ClusterStub(self.channel)
        self.leasestub = aetcd_rpc.LeaseStub(self.channel)
        self.maintenancestub = aetcd_rpc.MaintenanceStub(self.channel)
        self._watcher = aetcd_watcher.Watcher(aetcd_rpc.WatchStub(self.channel), timeout=self._timeout,
                                              metadata=self.metadata)
        self._connected.set()


def _range_end(prefix: bytes) -> bytes:
    return aetcd.utils.prefix_range_end(prefix)


class EtcdCollector:
    """One etcd member: `endpoint` host:port of its client (gRPC) API, `metrics_url` its /metrics (kubeadm
    serves it in plain HTTP on 127.0.0.1:2381), `tls` the client certificate when the member asks for one
    (the watch, and an https metrics URL, use it)."""

    name = "etcd"

    def __init__(self, *, node: str, endpoint: str = "127.0.0.1:2379",
                 metrics_url: str = "http://127.0.0.1:2381/metrics",
                 prefixes: Iterable[WatchedPrefix] = DEFAULT_PREFIXES, interval: float = 15.0,
                 thresholds: Thresholds = DEFAULTS, tls: TlsFiles | None = None, every: float = 1.0,
                 max_batch: int = 500) -> None:
        self.node, self.endpoint, self.metrics_url, self.tls = node, endpoint, metrics_url, tls
        self.prefixes = tuple(prefixes)
        self.interval, self.thresholds = interval, thresholds
        self._every, self._max_batch = every, max_batch
        self._batches: Batches | None = None
        self._lost = 0
        self._skipped = 0  # updates of prefixes that forward creations and deletions only
        self._next: dict[str, int] = {}  # per prefix, the revision its watch resumes from after a reconnect
        self.readings = 0  # /metrics reads that parsed
        self.watching = asyncio.Event()  # set while the watch is open

    def check(self) -> None:
        try:
            self._read_metrics()
        except (OSError, ValueError) as e:
            raise SourceUnavailable(f"etcd's metrics at {self.metrics_url} cannot be read ({e}): run the agent on "
                                    "a control-plane node, or give it etcd's --listen-metrics-urls") from None

    def lost(self) -> int:
        return self._lost + (self._batches.dropped if self._batches else 0)

    def _read_metrics(self) -> EtcdReading:
        context = self.tls.ssl_context() if self.tls and self.metrics_url.startswith("https") else None
        with urllib.request.urlopen(self.metrics_url, timeout=10, context=context) as response:
            return parse_metrics(response.read().decode())

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        self._batches = Batches(emit, every=self._every, max_batch=self._max_batch)
        pump = asyncio.create_task(self._batches.pump(stop))
        tasks = [asyncio.create_task(self._poll(stop))]
        if self.prefixes:
            tasks.append(asyncio.create_task(self._watch(stop)))
        try:
            await asyncio.gather(*tasks)
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await pump

    async def _poll(self, stop: asyncio.Event) -> None:
        assert self._batches is not None
        before: EtcdReading | None = None
        skipped_before = 0
        while not stop.is_set():
            try:
                reading = await asyncio.to_thread(self._read_metrics)
            except (OSError, ValueError) as e:
                log.warning("etcd: %s cannot be read (%s); trying again in %.0f s: check that etcd is running",
                            self.metrics_url, e, self.interval)
                reading = None
            if reading is not None:
                self.readings += 1
                now = datetime.now(UTC)
                result = assess(before, reading, self.thresholds)
                samples = {**result.samples, "watch_updates_skipped": float(self._skipped - skipped_before)}
                skipped_before = self._skipped
                self._batches.offer(metrics_event(samples, node=self.node, endpoint=self.endpoint, at=now))
                for finding in result.findings:
                    self._batches.offer(finding_event(finding, samples, node=self.node, endpoint=self.endpoint,
                                                      at=now))
                before = reading
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval)

    async def _watch(self, stop: asyncio.Event) -> None:
        backoff = BACKOFF_FIRST
        host, _, port = self.endpoint.rpartition(":")
        while not stop.is_set():
            try:
                client = (_TlsClient(tls=self.tls, host=host, port=int(port), timeout=10) if self.tls
                          else aetcd.Client(host=host, port=int(port), timeout=10))
                async with client:
                    await self._follow(client, stop)
                    return
            except aetcd.exceptions.RevisionCompactedError as e:
                log.warning("etcd: the watch's revisions before %d were compacted: resuming from there; the "
                            "changes in between are lost", e.compacted_revision)
                self._lost += 1
                self._next = {p: max(n, e.compacted_revision) for p, n in self._next.items()}
            except (aetcd.exceptions.ClientError, OSError) as e:
                self.watching.clear()
                if stop.is_set():
                    return
                log.warning("etcd: the watch of %s failed (%s: %s); resuming where it was in %.1f s: check "
                            "that etcd is running", self.endpoint, type(e).__name__, e, backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    async def _follow(self, client: aetcd.Client, stop: asyncio.Event) -> None:
        assert self._batches is not None
        if not self._next:  # from now: the store's revision, so that nothing between here and the watch is missed
            answer = await client.kvstub.Range(aetcd_rpc.RangeRequest(key=b"\0", count_only=True), timeout=10,
                                               metadata=client.metadata)
            self._next = {p.prefix: answer.header.revision + 1 for p in self.prefixes}
        queue: asyncio.Queue[tuple[WatchedPrefix, aetcd.rtypes.Event] | BaseException] = asyncio.Queue()

        async def one(prefix: WatchedPrefix, watch: aetcd.rtypes.Watch) -> None:
            try:
                async for event in watch:
                    await queue.put((prefix, event))
            except BaseException as e:  # delivered to the reader, which raises it
                await queue.put(e)
                raise

        watches = []
        for prefix in self.prefixes:  # all open before `watching` is set: nothing after it is missed
            key = prefix.prefix.encode()
            watches.append((prefix, await client.watch(key, range_end=_range_end(key),
                                                       start_revision=self._next[prefix.prefix])))
        readers = [asyncio.create_task(one(prefix, watch)) for prefix, watch in watches]
        stopping = asyncio.create_task(stop.wait())
        self.watching.set()
        try:
            while True:
                getting = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if getting not in done:
                    getting.cancel()
                    return
                item = getting.result()
                if isinstance(item, BaseException):
                    raise item
                prefix, event = item
                change = KeyChange(kind=str(event.kind), key=event.kv.key.decode(errors="replace"),
                                   revision=event.kv.mod_revision, version=event.kv.version, lease=event.kv.lease)
                self._next[prefix.prefix] = change.revision + 1
                if change.kind == "PUT" and change.version > 1 and not prefix.updates:
                    self._skipped += 1
                    continue
                self._batches.offer(key_event(change, node=self.node, endpoint=self.endpoint, at=datetime.now(UTC)))
        finally:
            self.watching.clear()
            stopping.cancel()
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
