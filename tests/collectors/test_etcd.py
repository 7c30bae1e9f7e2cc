"""The etcd collector (`collectors.etcd`): etcd's /metrics read into samples and threshold events, the p99 of
an interval from histogram bucket deltas, watched keys named as the objects they hold (pure); then the
collector against a real Debian `etcd-server` 3.4 started by the test on private loopback ports
(`nodesources.etcd`): a put/update/delete seen by the watch, the metrics read into samples, a restart read as a
leader change with the watch resumed after it, a member without quorum read as no leader, a slow apply (a
100,000-key delete), a slow fsync (etcd's writes throttled by a cgroup v1 blkio group: needs root), the watch
over TLS with a client certificate, and a watch resumed past a compaction."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from waiting import until

from agents.enrich import enrich_event
from agents.normalize import normalize_event
from collectors.etcd import (
    EtcdCollector,
    EtcdReading,
    KeyChange,
    Thresholds,
    WatchedPrefix,
    assess,
    increase,
    key_event,
    metrics_event,
    object_of_key,
    parse_metrics,
)
from collectors.histograms import Histogram, p99_between, quantile_between
from collectors.node import SourceUnavailable
from core.events import RawEvent

AT = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
BOUNDS = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192)


def histogram_text(name: str, counts: dict[float, int], total: float) -> str:
    """Prometheus text of an etcd histogram with `counts` observations per bucket (cumulated here)."""
    lines, cumulative = [f"# TYPE {name} histogram"], 0
    for le in BOUNDS:
        cumulative += counts.get(le, 0)
        lines.append(f'{name}_bucket{{le="{le}"}} {cumulative}')
    lines += [f'{name}_bucket{{le="+Inf"}} {cumulative}', f"{name}_sum {total}", f"{name}_count {cumulative}"]
    return "\n".join(lines)


def metrics_text(*, leader_changes: int = 1, has_leader: int = 1, slow_apply: int = 0, failed: int = 0,
                 fsync: dict[float, int] | None = None, started: float = 1.7e9, db: float = 20480) -> str:
    return "\n".join([
        "# TYPE etcd_server_has_leader gauge", f"etcd_server_has_leader {has_leader}",
        "# TYPE etcd_server_is_leader gauge", f"etcd_server_is_leader {has_leader}",
        "# TYPE etcd_server_leader_changes_seen_total counter", f"etcd_server_leader_changes_seen_total {leader_changes}",
        "# TYPE etcd_server_slow_apply_total counter", f"etcd_server_slow_apply_total {slow_apply}",
        "# TYPE etcd_server_proposals_failed_total counter", f"etcd_server_proposals_failed_total {failed}",
        "# TYPE etcd_server_proposals_pending gauge", "etcd_server_proposals_pending 0",
        "# TYPE etcd_mvcc_db_total_size_in_bytes gauge", f"etcd_mvcc_db_total_size_in_bytes {db}",
        "# TYPE etcd_mvcc_db_total_size_in_use_in_bytes gauge", "etcd_mvcc_db_total_size_in_use_in_bytes 16384",
        "# TYPE etcd_server_quota_backend_bytes gauge", "etcd_server_quota_backend_bytes 2.147483648e+09",
        "# TYPE process_start_time_seconds gauge", f"process_start_time_seconds {started}",
        histogram_text("etcd_disk_wal_fsync_duration_seconds", fsync or {0.001: 3, 0.008: 3}, 0.0178),
        histogram_text("etcd_disk_backend_commit_duration_seconds", {0.002: 6}, 0.0169),
    ]) + "\n"


# pure: metrics text -> readings -> samples and findings


def test_the_metrics_text_is_read_into_a_reading() -> None:
    reading = parse_metrics(metrics_text(leader_changes=2, db=40960))
    assert (reading.has_leader, reading.leader_changes_total, reading.db_size_bytes) == (1, 2, 40960)
    assert reading.quota_bytes == 2147483648 and reading.started_at == 1.7e9
    assert reading.fsync.count == 6 and reading.fsync.buckets[0] == (0.001, 3) and reading.fsync.buckets[-1][1] == 6
    assert reading.commit.buckets[1] == (0.002, 6)


def test_p99_of_an_interval_comes_from_the_bucket_deltas() -> None:
    before = parse_metrics(metrics_text(fsync={0.001: 1000})).fsync
    # 100 new fsyncs: 98 fast, 2 between 0.512 and 1.024 s: the 99th lands halfway into that bucket
    after = parse_metrics(metrics_text(fsync={0.001: 1098, 1.024: 2})).fsync
    assert p99_between(before, after) == pytest.approx(0.512 + (1.024 - 0.512) * 0.5)
    assert quantile_between(before, after, 0.5) == pytest.approx(0.001 * 50 / 98)  # the 50th of 98 in (0, 1 ms]
    assert p99_between(after, after) is None  # nothing observed in the interval
    # over the whole life the slow ones are drowned: the interval is what tells
    assert p99_between(Histogram(), after) == pytest.approx(0.001 * (0.99 * 1100) / 1098)
    # a reset histogram (etcd restarted): the new one alone is the interval
    assert p99_between(after, parse_metrics(metrics_text(fsync={0.004: 10})).fsync) == pytest.approx(0.002 + 0.002 * 0.99)
    inf = Histogram(buckets=((0.5, 0.0), (float("inf"), 5.0)), count=5)
    assert p99_between(Histogram(buckets=((0.5, 0.0), (float("inf"), 0.0))), inf) == 0.5  # the highest finite bound


def test_counters_are_read_as_increases_and_a_restart_starts_them_over() -> None:
    assert increase(3, 5) == 2 and increase(5, 1) == 1 and increase(1, 1, restarted=True) == 1
    first = parse_metrics(metrics_text(leader_changes=1, started=1.7e9))
    same = assess(first, parse_metrics(metrics_text(leader_changes=1, started=1.7e9)))
    assert same.samples["leader_changes"] == 0 and same.findings == []
    again = assess(first, parse_metrics(metrics_text(leader_changes=1, started=1.7e9 + 60)))
    assert again.samples["leader_changes"] == 1
    assert [f.reason for f in again.findings] == ["EtcdLeaderChanged"]


def test_findings_when_thresholds_are_crossed() -> None:
    before = parse_metrics(metrics_text(fsync={0.001: 1000}))
    after = parse_metrics(metrics_text(leader_changes=3, has_leader=0, slow_apply=4, failed=2,
                                       fsync={0.001: 1000, 1.024: 10}, db=2e9))
    result = assess(before, after)
    reasons = {f.reason: f for f in result.findings}
    assert set(reasons) == {"EtcdNoLeader", "EtcdLeaderChanged", "EtcdSlowApply", "EtcdProposalsFailed",
                            "EtcdSlowFsync", "EtcdDatabaseNearQuota"}
    assert reasons["EtcdNoLeader"].severity == "critical" and reasons["EtcdSlowFsync"].intent == "disk-latency"
    assert reasons["EtcdSlowFsync"].message.startswith("etcd WAL fsync p99 1019 ms over the interval (over 500 ms)")
    assert result.samples["leader_changes"] == 2 and result.samples["slow_applies"] == 4
    assert result.samples["db_quota_fraction"] == pytest.approx(2e9 / 2147483648, abs=1e-6)
    relaxed = assess(before, after, Thresholds(fsync_p99_seconds=2.0, db_quota_fraction=0.99))
    assert {"EtcdSlowFsync", "EtcdDatabaseNearQuota"}.isdisjoint(f.reason for f in relaxed.findings)
    assert assess(None, after).samples.keys() >= {"has_leader", "db_size_bytes"}  # first reading: gauges only
    assert "leader_changes" not in assess(None, after).samples


def test_the_samples_reach_the_metric_layer() -> None:
    samples = assess(EtcdReading(), parse_metrics(metrics_text())).samples
    event = normalize_event(enrich_event(metrics_event(samples, node="cp-1", endpoint="127.0.0.1:2379", at=AT)))
    assert event.metrics["etcd.has_leader"] == 1 and event.metrics["etcd.db_size_bytes"] == 20480
    assert event.metrics["etcd.wal_fsync_p99_seconds"] == pytest.approx(0.00792)
    assert (event.k8s.kind, event.k8s.name, event.semantic.severity) == ("Node", "cp-1", "debug")


def test_keys_name_the_objects_they_hold() -> None:
    assert object_of_key("/registry/nodes/node-1") == {"kind": "Node", "name": "node-1"}
    assert object_of_key("/registry/leases/kube-node-lease/node-1") == {"kind": "Lease", "namespace": "kube-node-lease",
                                                                        "name": "node-1"}
    assert object_of_key("/registry/configmaps/shop/app") == {"kind": "ConfigMap", "namespace": "shop", "name": "app"}
    assert object_of_key("/registry/services/specs/shop/api") == {"kind": "Service", "namespace": "shop", "name": "api"}
    assert object_of_key("/registry/apiregistration.k8s.io/apiservices/v1.") == {}
    assert object_of_key("/other/x") == {}
    created = key_event(KeyChange(kind="PUT", key="/registry/configmaps/shop/app", revision=7, version=1), node="cp-1",
                        endpoint="e", at=AT)
    md = created.metadata
    assert (md["reason"], md["kind"], md["namespace"], md["name"]) == ("EtcdKeyCreated", "ConfigMap", "shop", "app")
    assert (md["etcd.revision"], md["etcd.type"], md["message"]) == ("7", "PUT", "/registry/configmaps/shop/app created at revision 7")
    gone = key_event(KeyChange(kind="DELETE", key="/registry/x", revision=9), node="cp-1", endpoint="e", at=AT)
    assert (gone.metadata["reason"], gone.metadata["kind"], gone.metadata["name"]) == ("EtcdKeyDeleted", "Node", "cp-1")


def test_unreadable_metrics_say_where_and_what_to_do(tmp_path: Path) -> None:
    from app.stack import free_port

    url = f"http://127.0.0.1:{free_port()}/metrics"
    with pytest.raises(SourceUnavailable, match=f"etcd's metrics at {url} cannot be read .*--listen-metrics-urls"):
        EtcdCollector(node="n", metrics_url=url).check()


# a real etcd


@pytest.fixture
def etcd():
    from nodesources.etcd import PrivateEtcd, unavailable

    why = unavailable()
    if why:
        pytest.skip(why)
    started = None
    try:
        started = PrivateEtcd(Path(tempfile.mkdtemp(prefix="tapio-etcd-")))
        yield started
    finally:
        if started is not None:
            started.stop()


def _find(events: list[RawEvent], **want: str):
    def look() -> RawEvent | None:
        return next((e for e in events if all(e.metadata.get(k) == v for k, v in want.items())), None)
    return look


async def test_watched_keys_metrics_and_a_restart_of_a_real_etcd(etcd) -> None:
    events: list[RawEvent] = []

    async def emit(batch: list[RawEvent]) -> None:
        events.extend(batch)

    collector = EtcdCollector(node="cp-1", endpoint=etcd.endpoint, metrics_url=etcd.metrics_url, interval=0.3,
                              every=0.1, prefixes=(WatchedPrefix("/registry/configmaps/"),
                                                   WatchedPrefix("/registry/leases/kube-node-lease/", updates=False)))
    collector.check()
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(emit, stop))
    try:
        await asyncio.wait_for(collector.watching.wait(), timeout=20)
        put = await asyncio.to_thread(etcd.put, "/registry/configmaps/shop/app", "v1")
        update = await asyncio.to_thread(etcd.put, "/registry/configmaps/shop/app", "v2")
        await asyncio.to_thread(etcd.put, "/registry/secrets/shop/token", "not watched")
        lease = await asyncio.to_thread(etcd.put, "/registry/leases/kube-node-lease/node-1", "renew 1")
        await asyncio.to_thread(etcd.put, "/registry/leases/kube-node-lease/node-1", "renew 2")
        gone = await asyncio.to_thread(etcd.delete, "/registry/configmaps/shop/app")

        created = await until(_find(events, reason="EtcdKeyCreated", **{"etcd.revision": str(put)}), timeout=20,
                              what="the put seen by the watch")
        assert (created.metadata["kind"], created.metadata["namespace"], created.metadata["name"]) == (
            "ConfigMap", "shop", "app")
        await until(_find(events, reason="EtcdKeyUpdated", **{"etcd.revision": str(update)}), timeout=20,
                    what="the update")
        deleted = await until(_find(events, reason="EtcdKeyDeleted", **{"etcd.revision": str(gone)}), timeout=20,
                              what="the delete")
        assert deleted.metadata["etcd.key"] == "/registry/configmaps/shop/app"
        await until(_find(events, reason="EtcdKeyCreated", **{"etcd.revision": str(lease)}), timeout=20,
                    what="the lease's creation")
        keys = [e.metadata["etcd.key"] for e in events if "etcd.key" in e.metadata]
        assert "/registry/secrets/shop/token" not in keys and keys.count("/registry/leases/kube-node-lease/node-1") == 1

        # the metrics: samples every interval, the fsync p99 of an interval with writes in it, and the lease
        # renewal skipped counted once over the intervals (the renewal's fsync and its watch delivery may fall
        # in two intervals on a loaded machine: CI once waited for both in one)
        def metrics() -> list[RawEvent]:
            return [e for e in events if e.metadata["reason"] == "EtcdMetrics"]

        def skipped() -> float:
            return sum(float(e.metadata["metric.etcd.watch_updates_skipped"]) for e in metrics())

        sampled = await until(lambda: skipped() >= 1 and [e for e in metrics()
                                                          if "metric.etcd.wal_fsync_p99_seconds" in e.metadata],
                              timeout=20, what="metrics events with an interval's fsync p99 and the skipped lease renewal")
        assert skipped() == 1
        md = sampled[0].metadata
        assert md["metric.etcd.has_leader"] == "1" and int(md["metric.etcd.db_size_bytes"]) > 0
        assert 0 < float(md["metric.etcd.wal_fsync_p99_seconds"]) < 10
        unified = normalize_event(enrich_event(sampled[0]))
        assert unified.metrics["etcd.has_leader"] == 1

        # a restart: the one member elects itself again (a leader change); the watch resumes where it was
        readings = collector.readings
        await asyncio.to_thread(etcd.restart)
        changed = await until(_find(events, reason="EtcdLeaderChanged"), timeout=30, what="a leader change after the restart")
        assert changed.metadata["metric.etcd.leader_changes"] == "1" and collector.readings > readings
        after = await asyncio.to_thread(etcd.put, "/registry/configmaps/shop/later", "v1")
        await until(_find(events, reason="EtcdKeyCreated", **{"etcd.revision": str(after)}), timeout=30,
                    what="a put after the restart, seen by the resumed watch")
        revisions = [(e.metadata["etcd.revision"], e.metadata["etcd.type"]) for e in events if "etcd.revision" in e.metadata]
        assert len(revisions) == len(set(revisions))  # resumed after the last revision: nothing twice
        assert len({e.id for e in events}) == len(events) and collector.lost() == 0
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)


async def test_a_member_without_quorum_reads_as_no_leader() -> None:
    from nodesources.etcd import PrivateEtcd, unavailable

    why = unavailable()
    if why:
        pytest.skip(why)
    etcd = PrivateEtcd(Path(tempfile.mkdtemp(prefix="tapio-etcd-")), alone=True)
    events: list[RawEvent] = []

    async def emit(batch: list[RawEvent]) -> None:
        events.extend(batch)

    collector = EtcdCollector(node="cp-1", endpoint=etcd.endpoint, metrics_url=etcd.metrics_url, interval=0.3,
                              every=0.1, prefixes=())
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(emit, stop))
    try:
        collector.check()
        found = await until(_find(events, reason="EtcdNoLeader"), timeout=20, what="EtcdNoLeader")
        assert (found.metadata["severity"], found.metadata["metric.etcd.has_leader"]) == ("critical", "0")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)
        etcd.stop()


async def test_the_watch_over_tls_with_a_client_certificate_as_kubeadms_etcd_asks() -> None:
    from nodesources.etcd import PrivateEtcd, unavailable

    from collectors.etcd import TlsFiles

    why = unavailable()
    if why:
        pytest.skip(why)
    etcd = PrivateEtcd(Path(tempfile.mkdtemp(prefix="tapio-etcd-")), tls=True)
    events: list[RawEvent] = []

    async def emit(batch: list[RawEvent]) -> None:
        events.extend(batch)

    assert etcd.tls is not None
    tls = TlsFiles(ca=str(etcd.tls.ca), cert=str(etcd.tls.client_cert), key=str(etcd.tls.client_key))
    collector = EtcdCollector(node="cp-1", endpoint=etcd.endpoint, metrics_url=etcd.metrics_url, interval=5,
                              every=0.1, tls=tls, prefixes=(WatchedPrefix("/registry/nodes/"),))
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(emit, stop))
    try:
        await asyncio.wait_for(collector.watching.wait(), timeout=20)
        revision = await asyncio.to_thread(etcd.put, "/registry/nodes/node-7", "x")
        found = await until(_find(events, reason="EtcdKeyCreated", **{"etcd.revision": str(revision)}), timeout=20,
                            what="the put seen by the TLS watch")
        assert (found.metadata["kind"], found.metadata["name"]) == ("Node", "node-7")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)
        etcd.stop()


async def test_a_watch_resumes_what_it_missed_and_past_a_compaction_starts_from_now_counting_the_loss(etcd) -> None:
    events: list[RawEvent] = []

    async def emit(batch: list[RawEvent]) -> None:
        events.extend(batch)

    def revisions() -> set[str]:
        return {e.metadata["etcd.revision"] for e in events if "etcd.revision" in e.metadata}

    collector = EtcdCollector(node="cp-1", endpoint=etcd.endpoint, metrics_url=etcd.metrics_url, interval=60,
                              every=0.1, prefixes=(WatchedPrefix("/registry/configmaps/"),))

    async def run_until(revision: int) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(emit, stop))
        try:
            await asyncio.wait_for(collector.watching.wait(), timeout=20)
            seen = await asyncio.to_thread(etcd.put, "/registry/configmaps/a/now", str(revision))
            await until(lambda: {str(revision), str(seen)} <= revisions() if revision else str(seen) in revisions(),
                        timeout=20, what=f"revisions {revision} and {seen}")
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=20)

    await run_until(0)
    away = await asyncio.to_thread(etcd.put, "/registry/configmaps/a/away", "1")
    await run_until(away)  # resumed after what the first run saw: the put made while away is seen
    assert collector.lost() == 0
    compacted_away = await asyncio.to_thread(etcd.put, "/registry/configmaps/a/away", "2")
    await asyncio.to_thread(etcd.compact, await asyncio.to_thread(etcd.put, "/registry/other", "x"))
    await run_until(0)
    assert collector.lost() == 1 and str(compacted_away) not in revisions()  # compacted: lost, and counted


async def test_a_slow_apply_of_a_real_etcd_becomes_an_event(etcd) -> None:
    """One request deleting 100,000 keys takes etcd about 0.6 s to apply here (its slow-apply mark is 100 ms)."""
    import aetcd

    events: list[RawEvent] = []

    async def emit(batch: list[RawEvent]) -> None:
        events.extend(batch)

    collector = EtcdCollector(node="cp-1", endpoint=etcd.endpoint, metrics_url=etcd.metrics_url, interval=0.3,
                              every=0.1, prefixes=())
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(emit, stop))
    try:
        await until(lambda: collector.readings >= 1, timeout=20, what="a first reading")
        host, _, port = etcd.endpoint.rpartition(":")
        async with aetcd.Client(host=host, port=int(port), timeout=60) as client:
            for batch in range(800):  # etcd's --max-txn-ops is 128
                await client.transaction(compare=[], success=[client.transactions.put(
                    f"/bulk/{batch:04d}/{n:03d}".encode(), b"x" * 100) for n in range(128)], failure=[])
            await client.delete_prefix(b"/bulk/")
        slow = await until(_find(events, reason="EtcdSlowApply"), timeout=20, what="EtcdSlowApply")
        assert slow.metadata["intent"] == "slow-apply" and int(slow.metadata["metric.etcd.slow_applies"]) >= 1
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)


async def test_a_slow_disk_under_a_real_etcd_becomes_a_slow_fsync_event(etcd) -> None:
    """etcd's writes throttled to 4 a second (cgroup v1 blkio on its data dir's device): every WAL fsync waits."""
    from nodesources.etcd import SlowDiskUnavailable

    events: list[RawEvent] = []

    async def emit(batch: list[RawEvent]) -> None:
        events.extend(batch)

    collector = EtcdCollector(node="cp-1", endpoint=etcd.endpoint, metrics_url=etcd.metrics_url, interval=0.3,
                              every=0.1, prefixes=())
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(emit, stop))
    try:
        await until(lambda: collector.readings >= 1, timeout=20, what="a first reading")
        try:
            with etcd.slow_disk(iops=4):
                for n in range(2):
                    await asyncio.to_thread(etcd.put, f"/slow/{n}", "v")
                slow = await until(_find(events, reason="EtcdSlowFsync"), timeout=30, what="EtcdSlowFsync")
        except SlowDiskUnavailable as e:
            pytest.skip(str(e))
        assert float(slow.metadata["metric.etcd.wal_fsync_p99_seconds"]) > 0.5
        assert slow.metadata["message"].startswith("etcd WAL fsync p99 ")
        # the disk back to speed: the next intervals' p99 drop under the mark again. A put every half
        # second, so that an interval has an fsync in it even when one fsync of a loaded machine is slow
        fast = lambda: any(float(e.metadata.get("metric.etcd.wal_fsync_p99_seconds", "9")) < 0.5  # noqa: E731
                           for e in events[events.index(slow):])
        for n in range(120):
            await asyncio.to_thread(etcd.put, f"/fast/{n}", "v")
            if fast():
                break
            await asyncio.sleep(0.5)
        assert fast(), "no interval with a fast fsync within 120 puts after the throttle was lifted"
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)
