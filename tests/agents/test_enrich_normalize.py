"""enrich and normalize, pure, on real recordings from ../shared/realdata."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from agents.enrich import EnrichError, enrich_event, enrich_stage
from agents.normalize import normalize_event, normalize_stage
from collectors.replay import read_recording
from core.events import RawEvent
from core.records import RawBatch

REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata"

TROUBLESHOOT = REALDATA / "troubleshoot" / "pkg" / "analyze" / "files"


def unified(path):
    return [normalize_event(enrich_event(e)) for e in read_recording(path)]


def test_oomkilled_pod_object_carries_exit_code_owner_and_node() -> None:
    [event] = unified(TROUBLESHOOT / "pods" / "message-oomkill-pod.json")
    assert (event.k8s.kind, event.k8s.name, event.k8s.namespace) == ("Pod", "oom-kill-job3-gbb89", "message-oomkill-pod")
    assert event.k8s.node == "minikube"
    assert event.k8s.owner.kind == "Job" and event.k8s.owner.name == "oom-kill-job3"
    assert event.kubernetes.exit_code == 137 and event.kubernetes.container_reason == "OOMKilled"
    assert (event.semantic.intent, event.semantic.severity) == ("oom-kill", "error")


def test_pod_status_says_why_it_is_not_scheduled_and_what_the_runtime_said() -> None:
    """PodScheduled=False gives its reason and the scheduler's message; a container that cannot
    start gives the runtime's message, which says more than the PodInitializing of its neighbour."""
    [pending] = unified(TROUBLESHOOT / "pods" / "message-pending-pod-resources.json")
    assert (pending.kubernetes.reason, pending.kubernetes.container_reason) == ("Unschedulable", "")
    assert pending.kubernetes.message.startswith("0/1 nodes are available: 1 Insufficient nvidia.com/gpu.")
    assert pending.semantic.intent == "scheduling-failure" and "Insufficient nvidia.com/gpu" in pending.semantic.narrative
    [init] = unified(TROUBLESHOOT / "pods" / "message-pod-init-crashloop-backoff.json")
    assert init.kubernetes.container_reason == "PodInitializing" and init.kubernetes.restart_count == 1
    assert 'exec: "wge": executable file not found in $PATH' in init.kubernetes.message
    assert (init.semantic.intent, init.semantic.severity) == ("container-failure", "error")
    [creating] = unified(TROUBLESHOOT / "pods" / "message-container-creating-failed-mount.json")
    assert (creating.kubernetes.container_reason, creating.kubernetes.message) == ("ContainerCreating", "")
    assert creating.semantic.intent == "observed"  # nothing in a lone ContainerCreating says why


def test_image_pull_events_are_understood() -> None:
    events = unified(TROUBLESHOOT / "events" / "message-image-pull-fail.json")
    assert len(events) == 17
    intents = Counter(e.semantic.intent for e in events)
    # Failed x3 (ErrImagePull, x509) and the kubelet's "Back-off pulling image" BackOff: not a crash loop
    assert intents["image-pull-failure"] == 4 and intents["scheduling-failure"] == 2 and intents["crash-loop"] == 0
    pull = next(e for e in events if e.semantic.intent == "image-pull-failure")
    assert pull.k8s.kind == "Pod" and pull.k8s.uid == "209076ce-26d6-4836-981b-8c05cb0081eb"
    assert pull.kubernetes.reason == "Failed" and pull.kubernetes.count == 4
    assert pull.semantic.severity == "warning" and "x509" in pull.semantic.narrative
    assert "node:minikube" in pull.correlation_hints


def test_every_event_of_the_mixed_incident_file_enriches() -> None:
    raws = list(read_recording(TROUBLESHOOT / "events" / "message-container-creating-failed-mount.json"))
    out, rejected = enrich_stage(RawBatch(events=raws))
    assert len(out.events) == 76 and rejected == []
    assert all(e.raw.data == b"" for e in out.events)  # payload dropped once read
    unified_batch, rejected = normalize_stage(out)
    assert len(unified_batch.events) == 76 and rejected == []
    assert {e.k8s.kind for e in unified_batch.events} == {"Pod", "ReplicaSet", "Deployment"}


def test_bad_payload_is_rejected_with_reason_and_the_rest_goes_on() -> None:
    good = next(iter(read_recording(TROUBLESHOOT / "events" / "message-image-pull-fail.json")))
    bad = RawEvent(id="bad", timestamp=datetime(2026, 1, 1, tzinfo=UTC), type="kubeapi",
                   data=b'{"kind": "Event", "metadata": {"name": 5}}', metadata={"action": "EVENT"})
    no_ref = msgspec.structs.replace(bad, id="noref", data=b'{"kind": "Event", "metadata": {"name": "x"}}')
    out, rejected = enrich_stage(RawBatch(events=[bad, good, no_ref]))
    assert [e.raw.id for e in out.events] == [good.id]
    assert [(r.id, i) for r, i, _ in rejected] == [("bad", "bad"), ("noref", "noref")]
    assert "not a Kubernetes object" in rejected[0][2] and "$.metadata.name" in rejected[0][2]
    assert "involvedObject" in rejected[1][2]


def test_other_collectors_take_context_from_metadata() -> None:
    raw = RawEvent(id="k1", timestamp=datetime(2026, 1, 1, tzinfo=UTC), type="kernel", data=b"\x00",
                   metadata={"kind": "Pod", "name": "api-0", "namespace": "prod", "uid": "u1", "node": "n1"})
    event = normalize_event(enrich_event(raw))
    assert event.k8s.uid == "u1" and event.k8s.node == "n1" and event.type == "kernel"
    try:
        enrich_event(msgspec.structs.replace(raw, type="kubeapi", data=b"not json"))
    except EnrichError as e:
        assert "not a Kubernetes object" in str(e)
    else:
        raise AssertionError("a kubeapi payload that is not JSON must be rejected")


def test_a_log_line_gets_the_meaning_its_signal_gave_it() -> None:
    raw = RawEvent(id="log-1", timestamp=datetime(2026, 11, 20, tzinfo=UTC), type="logs",
                   data=b"KeyError: 'DATABASE_URL'",
                   metadata={"kind": "Pod", "name": "web-1", "namespace": "shop", "container": "app",
                             "previous": "true", "signal": "missing-env", "intent": "config-error",
                             "category": "configuration", "severity": "error",
                             "message": "KeyError: 'DATABASE_URL'", "source": "logs/app-previous.log#line 12"})
    event = normalize_event(enrich_event(raw))
    assert (event.semantic.intent, event.semantic.severity) == ("config-error", "error")
    assert event.semantic.narrative == "Pod shop/web-1 (container app, previous): missing-env: KeyError: 'DATABASE_URL'"
    assert event.k8s.kind == "Pod" and event.source == "logs/app-previous.log#line 12"
    odd = RawEvent(id="log-2", timestamp=raw.timestamp, type="logs", data=b"x",
                   metadata={**raw.metadata, "severity": "loud"})
    assert normalize_event(enrich_event(odd)).semantic.severity == "warning"
