"""`kernel-oom-restart` on its scenario recorded on the real node (kernel collector + API watches),
through the offline matcher (`agents.offline`, what `tapio backtest` runs). Pure: files in, matches out.

The match links the kernel's OOMKill of the pod (cause) to the API's later report of the same pod
(effect), and to the Service's Endpoints left with no ready address: the links the graph sink writes
as CAUSED edges. Its message says how long before (`{lead}`).
"""

from __future__ import annotations

import re
from pathlib import Path

from agents.catalog import Catalog
from agents.offline import match_events
from collectors.replayer import read_recordings

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "patterns" / "scenarios" / "kernel-oom-restart"


def _run(case: str):
    events, unread = read_recordings([SCENARIO / case])
    assert unread == []
    return match_events(events, Catalog(ROOT / "patterns"))


def test_the_kernels_kill_is_linked_as_the_cause_of_the_apis_report_of_the_same_pod() -> None:
    result = _run("positive")
    [match, *_] = [m for m in result.matches if m.pattern == "kernel-oom-restart"]
    events = {e.id: e for e in match.evidence}
    assert match.links
    effects = []
    for link in match.links:
        cause, effect = events[link.cause], events[link.effect]
        assert (cause.type, cause.semantic.intent, cause.kernel.comm) == ("kernel", "oom-kill", "tail")
        assert effect.type == "kubeapi" and link.delay_s > 0
        effects.append((effect.k8s.kind, effect.k8s.name, effect.semantic.intent, effect.kubernetes.ready_endpoints))
    pod = match.scope.rsplit("/", 1)[-1]
    # kernel OOM -> the pod's container OOMKilled (restarted) -> its Service with no ready endpoint
    assert ("Pod", pod, "oom-kill", -1) in effects, effects
    assert ("Endpoints", "hog", "changed", 0) in effects, effects
    [prediction] = [p for p in result.predictions if p.pattern == "kernel-oom-restart"]  # one of its two
    assert re.search(r"at its memory limit \d+\.\d s before the Kubernetes API reported it", prediction.message)
    assert "-> its Service left without a ready endpoint)" in prediction.message


def test_without_the_services_endpoints_the_message_does_not_claim_them() -> None:
    events, unread = read_recordings([SCENARIO / "positive"])
    assert unread == []
    no_service = [e for e in events if e.metadata.get("kind") not in ("Endpoints", "EndpointSlice")]
    result = match_events(no_service, Catalog(ROOT / "patterns"))
    [prediction] = [p for p in result.predictions if p.pattern == "kernel-oom-restart"]
    assert prediction.message.count("->") == 1 and "Service" not in prediction.message


def test_the_healthy_twin_matches_nothing() -> None:
    assert _run("negative").matches == []
