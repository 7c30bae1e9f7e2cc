"""What a journal entry means (`collectors.journallines`, `collectors.cnierrors`). Pure: the lines are as
systemd 252, Linux 6.x, kubelet 1.20 and containerd 1.6 print them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import msgspec
import pytest

from collectors.cnierrors import plugin_error
from collectors.journallines import Classifier, JournalEntry

CONTAINER = "3f4e" * 16


def entry(identifier: str, message: str, **more: str) -> JournalEntry:
    return JournalEntry(cursor="c", realtime_us="1796441870490953", message=message, identifier=identifier, **more)


@pytest.mark.parametrize(("identifier", "line", "reason", "intent", "severity", "facts"), [
    ("systemd", "kubelet.service: Failed with result 'exit-code'.", "UnitFailed", "unit-failure", "error",
     {"unit": "kubelet.service", "unit.result": "exit-code"}),
    ("systemd", "containerd.service: Scheduled restart job, restart counter is at 5.", "UnitRestart", "unit-restart",
     "warning", {"unit": "containerd.service", "metric.unit.restarts": "5"}),
    ("systemd", "kubelet.service: Main process exited, code=exited, status=255/EXCEPTION", "UnitProcessExit",
     "process-exit", "warning", {"unit": "kubelet.service", "unit.exit_code": "exited", "kernel.exit_code": "255"}),
    ("systemd", "etcd.service: Main process exited, code=killed, status=9/KILL", "UnitProcessExit", "process-exit",
     "warning", {"unit": "etcd.service", "unit.exit_code": "killed", "kernel.signal": "SIGKILL"}),
    ("kernel", "Out of memory: Killed process 4242 (java) total-vm:4194304kB, anon-rss:2097152kB, file-rss:0kB",
     "OOMKill", "oom-kill", "error", {"pid": "4242", "kernel.comm": "java", "kernel.oom_scope": "system"}),
    ("kernel", "INFO: task kworker/0:1:117 blocked for more than 122 seconds.", "HungTask", "hung-task", "warning",
     {"pid": "117", "kernel.comm": "kworker/0:1", "kernel.blocked_seconds": "122"}),
    ("kubelet", "E1205 03:37:58.123456    1234 kubelet.go:1870] skipping pod synchronization - PLEG is not healthy: "
     "pleg was last seen active 3m5s ago; threshold is 3m0s", "PLEGNotHealthy", "node-not-ready", "error", {}),
    ("kubelet", "W1205 03:40:01.000001    1234 eviction_manager.go:344] eviction manager: attempting to reclaim memory",
     "EvictionThresholdMet", "resource-pressure", "warning", {"eviction.resource": "memory"}),
    ("kubelet", 'E1205 03:41:00.5    1234 kuberuntime_manager.go:755] "Failed to pull image" '
     'image="registry.shop/web:v9" pod="shop/web-0" err="rpc error: code = NotFound"', "ErrImagePull",
     "image-pull-failure", "warning", {"image": "registry.shop/web:v9"}),
    ("kubelet", "E1205 03:42:00.1    1234 kubelet.go:2184] Container runtime network not ready: NetworkReady=false "
     "reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized",
     "NetworkPluginNotReady", "network-failure", "error", {}),
])
def test_a_line_that_matters_is_a_finding(identifier: str, line: str, reason: str, intent: str, severity: str,
                                          facts: dict[str, str]) -> None:
    finding = Classifier().classify(entry(identifier, line))
    assert finding is not None
    assert (finding.reason, finding.intent, finding.severity, finding.facts) == (reason, intent, severity, facts)


def test_a_cgroup_oom_kill_takes_the_container_from_the_oom_kill_line_before_it() -> None:
    classifier = Classifier()
    context = (f"oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,"
               f"oom_memcg=/kubepods/burstable/pod1/{CONTAINER},task_memcg=/kubepods/burstable/pod1/{CONTAINER},"
               f"task=tail,pid=999,uid=0")
    assert classifier.classify(entry("kernel", context)) is None
    finding = classifier.classify(entry("kernel", "Memory cgroup out of memory: Killed process 999 (tail) "
                                                  "total-vm:1000kB, anon-rss:900kB"))
    assert finding is not None and finding.reason == "OOMKill"
    assert finding.facts["container_id"] == CONTAINER and finding.facts["kernel.oom_scope"] == "cgroup"
    assert finding.facts["kernel.cgroup"] == f"/kubepods/burstable/pod1/{CONTAINER}"


def test_kubelet_and_containerd_errors_name_the_pod_and_ipam_exhaustion_is_its_own_reason() -> None:
    classifier = Classifier()
    containerd = ('time="2026-12-05T03:45:00Z" level=error msg="RunPodSandbox for &PodSandboxMetadata{Name:web-0,'
                  'Uid:0b7e3b1c-1111-2222-3333-444455556666,Namespace:shop,Attempt:0,} failed, error" '
                  'error="failed to setup network for sandbox \\"abc\\": plugin type=\\"bridge\\" name=\\"podnet\\" '
                  'failed (add): failed to allocate for range 0: no IP addresses available in range set: '
                  '10.1.0.1-10.1.0.2"')
    finding = classifier.classify(entry("containerd", containerd))
    assert finding is not None and finding.reason == "CNIIPAMExhausted" and finding.severity == "error"
    assert finding.intent == "ip-exhaustion"  # not a network cut: network-partition does not count it
    assert finding.about == {"kind": "Pod", "namespace": "shop", "name": "web-0",
                             "uid": "0b7e3b1c-1111-2222-3333-444455556666"}
    assert finding.facts == {"net.cni_plugin": "bridge", "net.cni_network": "podnet",
                             "net.ipam_range": "10.1.0.1-10.1.0.2"}
    kubelet = ('E1205 03:45:00.2    1234 pod_workers.go:191] Error syncing pod 0b7e3b1c-1111-2222-3333-444455556666 '
               '("web-0_shop(0b7e3b1c-1111-2222-3333-444455556666)"), skipping: failed to "CreatePodSandbox" for '
               '"web-0_shop(0b7e3b1c-1111-2222-3333-444455556666)" with CreatePodSandboxError: "CreatePodSandbox for '
               'pod \\"web-0_shop(0b7e3b1c-1111-2222-3333-444455556666)\\" failed: rpc error: code = Unknown"')
    finding = classifier.classify(entry("kubelet", kubelet))
    assert finding is not None and finding.reason == "FailedCreatePodSandBox"
    assert (finding.about["namespace"], finding.about["name"]) == ("shop", "web-0")
    evicted = "I1205 03:46:00.0    1234 eviction_manager.go:206] eviction manager: pod " \
              "hog-1_shop(0b7e3b1c-1111-2222-3333-444455556666) is evicted successfully"
    finding = classifier.classify(entry("kubelet", evicted))
    assert finding is not None and (finding.reason, finding.about["name"]) == ("Evicted", "hog-1")


@pytest.mark.parametrize(("identifier", "line"), [
    ("systemd", "Started kubelet.service - Kubernetes Kubelet."),
    ("systemd", "kubelet.service: Main process exited, code=exited, status=0/SUCCESS"),
    ("kubelet", 'I1205 03:37:58.1    1234 kubelet.go:1900] "SyncLoop ADD" source="api" pods=[shop/web-0]'),
    ("kubelet", "E1205 03:37:58.1    1234 reflector.go:138] failed to list *v1.Service: connection refused"),
    ("containerd", 'time="2026-12-05T03:45:00Z" level=info msg="StartContainer for \\"abc\\" returns successfully"'),
    ("kernel", "eth0: renamed from veth1234"),
    ("sshd", "Failed with result 'exit-code'."),
])
def test_routine_lines_are_not_findings(identifier: str, line: str) -> None:
    assert Classifier().classify(entry(identifier, line)) is None


def test_journald_drops_are_counted_and_odd_messages_decode() -> None:
    classifier = Classifier()
    classifier.classify(entry("systemd-journald", "Suppressed 1234 messages from kubelet.service"))
    classifier.classify(entry("systemd-journald", "Missed 7 kernel messages"))
    assert classifier.dropped == 1241
    raw = b'{"__CURSOR":"s=1","__REALTIME_TIMESTAMP":"1796441870490953","MESSAGE":[79,117,116,255],' \
          b'"SYSLOG_IDENTIFIER":"kernel"}'
    decoded = msgspec.json.decode(raw, type=JournalEntry)
    assert decoded.text == "Out\ufffd" and decoded.at.year == 2026
    assert msgspec.json.decode(b'{"__CURSOR":"s=2","MESSAGE":null}', type=JournalEntry).text == ""


def test_a_plugin_error_result_is_recognized() -> None:
    exhausted = plugin_error(b'{"code": 999, "msg": "failed to allocate for range 0: no IP addresses available in '
                             b'range set: 10.251.7.1-10.251.7.2"}')
    assert exhausted is not None and (exhausted.reason, exhausted.code, exhausted.range) == (
        "CNIIPAMExhausted", 999, "10.251.7.1-10.251.7.2")
    other = plugin_error(b'{"cniVersion":"0.4.0","code":7,"msg":"invalid network config"}')
    assert other is not None and (other.reason, other.code) == ("CNIError", 7)
    assert plugin_error(b'{"cniVersion":"0.4.0","ips":[]}') is None and plugin_error(b"not json") is None


def test_a_failed_image_pull_as_the_real_kubelet_and_containerd_logged_it() -> None:
    """`data/journal-1.20/image-pull.tsv`: every line the real 1.20 kubelet and containerd 1.6 of
    `tests/support/realcluster` logged about a pod whose image no registry serves (four pull attempts)."""
    classifier = Classifier()
    found = Counter()
    for row in (Path(__file__).parent / "data" / "journal-1.20" / "image-pull.tsv").read_text().splitlines():
        identifier, line = row.split("\t", 1)
        finding = classifier.classify(entry(identifier, line, priority="6"))
        if finding is not None:
            assert finding.facts["image"] == "tapio.invalid/absent:1"
            assert (finding.about.get("namespace"), finding.about.get("name")) in ((None, None),
                                                                                  ("tapio-real", "absent-image"))
            found[(identifier, finding.reason, finding.about.get("kind", "Node"))] += 1
    # one per attempt from each: the kubelet's "Error syncing pod" (its other lines repeat it without the
    # pod, or dump the container spec), containerd's "PullImage ... failed" (no pod: about the node)
    assert found == {("kubelet", "ErrImagePull", "Pod"): 4, ("containerd", "ErrImagePull", "Node"): 4}


def test_a_finding_as_a_node_event_reads_into_the_kernel_layer() -> None:
    from datetime import UTC, datetime

    from agents.enrich import enrich_event
    from agents.normalize import normalize_event
    from collectors.node import node_event

    finding = Classifier().classify(entry("kernel", "Out of memory: Killed process 4242 (java) total-vm:1kB"))
    assert finding is not None
    raw = node_event("journald", node="node-1", at=datetime(2026, 12, 5, tzinfo=UTC), reason=finding.reason,
                     message=finding.message, intent=finding.intent, category=finding.category,
                     severity=finding.severity, about=finding.about, facts=finding.facts, key="s=1;i=2")
    event = normalize_event(enrich_event(raw))
    assert (event.k8s.kind, event.semantic.intent, event.kernel.pid, event.kernel.comm) == ("Node", "oom-kill", 4242,
                                                                                           "java")
