"""A pod stuck in ContainerCreating because its node cannot make its sandbox (`agents.diagnosis.sandboxes`),
on the real node's recordings: the CNI pool exhausted by leaked reservations
(`patterns/scenarios/cni-ipam-exhausted/`) and a RuntimeClass whose handler containerd lacks
(`patterns/scenarios/diagnosis/real-k8s-1.20/runtime-class/`, judged with the rest of the corpus by
test_diagnosis_cases)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

from agents.diagnosis import diagnose_events
from app.analyze import analyze
from collectors.replay import read_recording

ROOT = Path(__file__).resolve().parents[2]
EXHAUSTED = ROOT / "patterns" / "scenarios" / "cni-ipam-exhausted"
RUNTIME_CLASS = ROOT / "patterns" / "scenarios" / "diagnosis" / "real-k8s-1.20" / "runtime-class"


def _events(folder: Path) -> list:
    return [e for f in sorted(folder.glob("*-watch.json")) for e in read_recording(str(f))]


def test_a_pod_on_a_node_whose_address_pool_is_used_up_is_diagnosed_with_the_node_as_its_root() -> None:
    [top, *_] = diagnose_events(_events(EXHAUSTED / "positive"))
    assert (top.family, top.cause, top.ongoing) == ("network", "pod-ip-exhausted", True)
    assert top.subject.kind == "Pod" and top.subject.namespace == "cni-stuck"
    assert top.caused_by is not None and (top.caused_by.kind, top.caused_by.name) == ("Node", "localhost")
    assert top.chain[0] == "Node/localhost: no pod address left", top.chain  # the node first, the workload last
    assert top.chain[-1].startswith("Deployment/cni-stuck/stuck"), top.chain
    assert "ContainerCreating" in top.message and top.detail["range"].endswith(".254"), (top.message, top.detail)
    assert "cordon" in top.remediation and "/var/lib/cni/networks" in top.remediation


def test_the_pod_that_got_an_address_and_the_one_whose_sandbox_came_up_later_are_quiet(tmp_path: Path) -> None:
    assert [d for d in diagnose_events(_events(EXHAUSTED / "negative")) if d.ongoing] == []
    # the stuck pod after the leak was cleaned up: the kubelet's retry made its sandbox, the pod runs
    shutil.copytree(EXHAUSTED / "positive", tmp_path / "healed")
    pods = tmp_path / "healed" / "pods-watch.json"
    lines = pods.read_text().splitlines()
    last = json.loads(lines[-1])
    running = copy.deepcopy(last)
    pod = running["object"]
    pod["metadata"]["resourceVersion"] = str(int(pod["metadata"]["resourceVersion"]) + 1000)
    pod["status"]["phase"] = "Running"
    for status in pod["status"]["containerStatuses"]:
        status.update(ready=True, started=True, state={"running": {"startedAt": "2026-12-05T06:31:20Z"}})
    running["type"] = "MODIFIED"
    pods.write_text("\n".join([*lines, json.dumps(running)]) + "\n")
    healed = diagnose_events(_events(tmp_path / "healed"))
    assert not [d for d in healed if d.cause == "pod-ip-exhausted"], [d.message for d in healed]


def test_a_runtime_class_handler_the_runtime_lacks_names_the_runtime_class_not_the_network() -> None:
    result = analyze([str(p) for p in sorted(RUNTIME_CLASS.iterdir()) if p.name not in ("labels.yaml", "README.md")])
    top = result.hypotheses[0]
    assert "runtime-handler-missing" in top.causes and "RuntimeClass/gvisor" in top.affected, top
    assert 'handler runsc' in top.message and top.chain[0].startswith("RuntimeClass/gvisor"), top.chain
    # containerd's "failed to get sandbox runtime" is not a network failure: no network-partition on the node
    assert "network-partition" not in top.patterns and not [h for h in result.hypotheses
                                                            if h.pattern == "network-partition"]


def test_a_cni_plugin_error_that_is_not_exhaustion_is_the_plugins() -> None:
    from agents.diagnosis.sandboxes import _cause  # pure: one message, its cause

    message = ('Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox '
               '"0123": plugin type="bridge" failed (add): failed to set bridge addr: could not add IP address to '
               '"cni0": permission denied')
    assert _cause(message) == ("cni-failure", "network", {"plugin": "bridge"})
    assert _cause("Failed to create pod sandbox: rpc error: code = DeadlineExceeded desc = context deadline exceeded") \
        == ("sandbox-failure", "containers", {})
