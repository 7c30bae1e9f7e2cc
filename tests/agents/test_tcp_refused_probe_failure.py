"""`tcp-refused-probe-failure` on its scenario recorded on the real node (kernel collector + API watches),
through the offline matcher (`agents.offline`, what `tapio backtest` runs), and on small streams through
the functions the dataflow runs. Pure: files or events in, matches out.

The match links the kernel's refused connections of the client's pod (cause) to the kubelet's report of
the same pod's readiness probe failing (and, when it has happened by then, to its Service's Endpoints left
with no ready address): the links the graph sink writes as CAUSED edges. Its message says how long
before (`{lead}`) and to what (`{peer}`: the address and port of the first linked cause).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agents.catalog import Catalog
from agents.hits import Selector, compile_pattern
from agents.offline import match_events
from agents.pattern_files import load_pattern
from agents.predict import predictions_for
from agents.windows import WindowState, add_hits, advance
from collectors.replayer import read_recordings
from core.events import K8sContext, KubernetesData, NetworkData, SemanticContext, UnifiedEvent, content_id

ROOT = Path(__file__).resolve().parents[2]
PATTERN = "tcp-refused-probe-failure"
SCENARIO = ROOT / "patterns" / "scenarios" / PATTERN
T0 = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)
END = 2**62


def _run(case: str):
    events, unread = read_recordings([SCENARIO / case])
    assert unread == []
    return match_events(events, Catalog(ROOT / "patterns"))


def test_the_clients_refused_connections_are_linked_as_the_cause_of_its_probe_failure_and_service_loss() -> None:
    result = _run("positive")
    [match] = [m for m in result.matches if m.pattern == PATTERN]
    events = {e.id: e for e in match.evidence}
    pod = match.scope.rsplit("/", 1)[-1]
    assert match.scope == f"object:Pod/tcp-refused/{pod}" and match.links
    effects = []
    for link in match.links:
        cause, effect = events[link.cause], events[link.effect]
        assert (cause.type, cause.semantic.intent, cause.network.detail["kind"]) == (
            "kernel", "connection-failure", "connect-refused")
        assert (cause.k8s.kind, cause.k8s.name, cause.network.port) == ("Pod", pod, 8080)
        assert effect.type == "kubeapi" and link.delay_s > 0
        effects.append((effect.k8s.kind, effect.k8s.name, effect.semantic.intent, effect.kubernetes.ready_endpoints))
    # refused connections -> the pod's readiness probe failing; the match is made at that first failure, before
    # the pod's second one (failureThreshold 2) took it out of its Service: the message does not claim it
    assert effects == [("Pod", pod, "probe-failure", -1)], effects
    [prediction] = [p for p in result.predictions if p.pattern == PATTERN]  # one of its two
    peer = events[match.links[0].cause].network.dst
    assert re.search(rf"^Pod {pod}'s connections to {re.escape(peer)}:8080 were refused or failed \d+\.\d s before "
                     r"the kubelet reported its probe failing \(TCP connection failures -> probe failure\):",
                     prediction.message), prediction.message
    assert "kubectl get endpoints" in prediction.remediation and "networkpolicy" in prediction.remediation
    # the Service losing its last ready pod is probe-failure's story, of the client's Deployment
    assert [p.scope for p in result.predictions if p.pattern == "probe-failure"] == [
        "owner:Deployment/tcp-refused/client"]


def test_the_healthy_twin_matches_nothing() -> None:
    assert _run("negative").matches == []


# -- small streams ------------------------------------------------------------------------------------------

def kernel(sec: float, kind: str, *, pod: str, dst: str, port: int, intent: str = "connection-failure",
           reason: str = "TCPConnectFailed") -> UnifiedEvent:
    return UnifiedEvent(
        id=content_id(str(sec), kind, pod, dst), timestamp=T0 + timedelta(seconds=sec), type="kernel",
        source="kernel:node-1", semantic=SemanticContext(intent=intent, category="network", narrative=f"{reason} {dst}"),
        k8s=K8sContext(kind="Pod", name=pod, namespace="shop"),
        network=NetworkData(protocol="tcp", dst=dst, port=port, detail={"kind": kind, "count": "3"}))


def unhealthy(sec: float, pod: str) -> UnifiedEvent:
    return UnifiedEvent(
        id=content_id(str(sec), "unhealthy", pod), timestamp=T0 + timedelta(seconds=sec), type="kubeapi",
        source="test", semantic=SemanticContext(intent="probe-failure", category="availability", narrative=pod),
        k8s=K8sContext(kind="Pod", name=pod, namespace="shop"),
        kubernetes=KubernetesData(action="EVENT", reason="Unhealthy", message="Readiness probe failed: db down",
                                  event_type="Warning"))


def endpoints(sec: float, pod: str, ready: int) -> UnifiedEvent:
    return UnifiedEvent(
        id=content_id(str(sec), "endpoints", pod, str(ready)), timestamp=T0 + timedelta(seconds=sec), type="kubeapi",
        source="test", semantic=SemanticContext(intent="changed", category="state", narrative="Endpoints web"),
        k8s=K8sContext(kind="Endpoints", name="web", namespace="shop", refs=[f"Pod/{pod}"]),
        kubernetes=KubernetesData(action="MODIFIED", ready_endpoints=ready))


def messages(events: list[UnifiedEvent]) -> list[str]:
    pattern = compile_pattern(load_pattern(ROOT / "patterns" / f"{PATTERN}.yaml"))
    selector, store = Selector([pattern]), {}
    states: dict[str, WindowState] = {}
    for event in events:
        for hit in selector.hits(event, store):
            add_hits(states.setdefault(hit.key, WindowState()), [hit])
    matches = [m for key, state in states.items() for m in advance(pattern, key, state, END)]
    return [p.message for m in matches for p in predictions_for(m, pattern.pattern)]


def test_the_message_names_the_first_causes_peer_an_ipv6_one_in_brackets() -> None:
    [message] = messages([kernel(0, "connect-failed", pod="web-0", dst="fd00::7", port=5432),
                          kernel(1, "connect-refused", pod="web-0", dst="10.0.0.9", port=80),
                          unhealthy(4, "web-0")])
    assert message.startswith("Pod web-0's connections to [fd00::7]:5432 were refused or failed 4.0 s before"), message
    assert "until [fd00::7]:5432 accepts connections again" in message


def test_resets_a_pod_sent_or_another_pods_failures_are_not_its_story() -> None:
    # the pod's own port closed to someone (its kernel sent the resets): the kubelet probing a pod that does
    # not listen makes this; and another pod's refused connections before this pod's probe failure
    sent = kernel(0, "reset-sent", pod="web-0", dst="10.0.0.1", port=8080, intent="tcp-reset", reason="TCPReset")
    other = kernel(1, "connect-refused", pod="web-1", dst="10.0.0.9", port=80)
    assert messages([sent, other, unhealthy(4, "web-0")]) == []
    received = kernel(2, "reset-received", pod="web-0", dst="10.0.0.9", port=80, intent="tcp-reset", reason="TCPReset")
    assert len(messages([sent, received, unhealthy(4, "web-0")])) == 1


def test_a_service_left_without_a_ready_endpoint_by_then_is_told() -> None:
    # the pod's readiness lost at its first failure (failureThreshold 1): its Endpoints in the same second
    [message] = messages([kernel(0, "connect-refused", pod="web-0", dst="10.0.0.9", port=80),
                          endpoints(3, "web-0", 0), unhealthy(3, "web-0")])
    assert "(TCP connection failures -> probe failure -> its Service left without a ready endpoint)" in message
    [message] = messages([kernel(0, "connect-refused", pod="web-0", dst="10.0.0.9", port=80),
                          endpoints(3, "web-0", 1), unhealthy(3, "web-0")])
    assert "(TCP connection failures -> probe failure):" in message
