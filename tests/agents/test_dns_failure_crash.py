"""`dns-failure-crash` on its scenario recorded on the real node (DNS collector + API watches), through
the offline matcher (`agents.offline`, what `tapio backtest` runs). Pure: files in, matches out.

The match links the DNS collector's failure of the pod's lookups (cause) to the API's later report of
the same pod failing (effect): the links the graph sink writes as CAUSED edges. Its message names the
name that did not resolve (`{query}`).
"""

from __future__ import annotations

from pathlib import Path

from agents.catalog import Catalog
from agents.offline import match_events
from collectors.replayer import read_recordings

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "patterns" / "scenarios" / "dns-failure-crash"


def _run(case: str):
    events, unread = read_recordings([SCENARIO / case])
    assert unread == []
    return match_events(events, Catalog(ROOT / "patterns"))


def test_the_pods_dns_failure_is_linked_as_the_cause_of_the_apis_report_of_its_failure() -> None:
    result = _run("positive")
    [match] = [m for m in result.matches if m.pattern == "dns-failure-crash"]
    events = {e.id: e for e in match.evidence}
    pod = match.scope.rsplit("/", 1)[-1]
    assert match.scope == f"object:Pod/dns-lookup/{pod}" and match.links
    effects = []
    for link in match.links:
        cause, effect = events[link.cause], events[link.effect]
        assert (cause.type, cause.semantic.intent, cause.network.query) == ("dns", "dns-failure", "orders-db.test")
        assert (cause.k8s.kind, cause.k8s.name) == ("Pod", pod)
        assert cause.network.rcode == "NXDOMAIN"
        assert effect.type == "kubeapi" and link.delay_s > 0
        effects.append((effect.k8s.kind, effect.k8s.name, effect.semantic.intent))
    assert ("Pod", pod, "container-failure") in effects or ("Pod", pod, "crash-loop") in effects, effects
    assert ("Pod", pod, "crash-loop") in effects, effects
    [prediction] = [p for p in result.predictions if p.pattern == "dns-failure-crash"]
    assert prediction.message.startswith(f"Pod {pod}'s DNS lookups of orders-db.test failed, then the Kubernetes API "
                                         "reported the pod failing (DNS failure -> pod failure)"), prediction.message
    assert "dnsPolicy" in prediction.remediation and "resolv.conf" in prediction.remediation
    assert "kube-dns" in prediction.remediation


def test_the_healthy_twin_matches_nothing() -> None:
    result = _run("negative")
    assert result.matches == []
