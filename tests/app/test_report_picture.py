"""The incident picture (app.report.picture): which resources and edges a root cause is drawn with, its
timeline lanes; and the topology among a recording's objects (topology.surroundings). Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from agents.diagnosis import Diagnosis, ObjectKey
from app.analyze import analyze
from app.hypotheses import CausalLink, Evidence, RootCause, combine, told
from app.report.picture import picture, since
from topology.predictions import EvidenceEvent, story
from topology.surroundings import TopologyLink, surroundings

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = str(ROOT / "patterns" / "scenarios" / "configmap-crashloop")
T0 = datetime(2026, 11, 30, 14, tzinfo=UTC)


def _obj(kind: str, name: str, *, uid: str, owner: tuple[str, str, str] | None = None, **spec: object) -> dict:
    meta: dict = {"name": name, "namespace": "shop", "uid": uid}
    if owner:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "uid": owner[2], "controller": True}]
    return {"kind": kind, "apiVersion": "v1", "metadata": meta, "spec": spec}


def test_the_topology_of_a_recording_is_named_by_resource_and_keeps_objects_it_lacks() -> None:
    links = surroundings([
        _obj("Deployment", "web", uid="d1"),
        _obj("ReplicaSet", "web-5f", uid="r1", owner=("Deployment", "web", "d1")),
        _obj("Pod", "web-5f-a", uid="p1", owner=("ReplicaSet", "web-5f", "r1"), nodeName="node-a",
             volumes=[{"name": "conf", "configMap": {"name": "web-config"}}]),
    ])
    assert set(links) == {
        TopologyLink(type="OWNS", source="Deployment/shop/web", target="ReplicaSet/shop/web-5f"),
        TopologyLink(type="OWNS", source="ReplicaSet/shop/web-5f", target="Pod/shop/web-5f-a"),
        TopologyLink(type="RUNS_ON", source="Pod/shop/web-5f-a", target="Node/node-a"),
        # the ConfigMap was not captured: its edge ends at its name
        TopologyLink(type="MOUNTS", source="Pod/shop/web-5f-a", target="ConfigMap/shop/web-config"),
    }


def test_the_bundled_incident_is_drawn_from_the_edited_configmap_to_the_pods_and_around_them() -> None:
    analysis = analyze([BUNDLED])
    top = analysis.hypotheses[0]
    assert top.root == "ConfigMap/shop/nginx-config"
    drawn = picture(top, analysis.topology)
    roles = {n.id: n.role for n in drawn.nodes}
    assert roles["ConfigMap/shop/nginx-config"] == "root"
    assert roles["Pod/shop/nginx-7c9d8f6b5d-4xk2p"] == "impacted"
    edges = {(e.type, e.source, e.target): e for e in drawn.edges}
    caused = edges[("CAUSED", "ConfigMap/shop/nginx-config", "Pod/shop/nginx-7c9d8f6b5d-4xk2p")]
    assert caused.label == "CAUSED +40s"  # the edit at 10:00:00, the first probe failure at 10:00:40
    preceded = edges[("PRECEDED", "ConfigMap/shop/nginx-config", "Pod/shop/nginx-7c9d8f6b5d-b7mfd")]
    assert preceded.label == "PRECEDED +50s"
    # the topology around them: the owner chain up to the Deployment, the nodes, the Service, the mounts
    assert ("OWNS", "Deployment/shop/nginx", "ReplicaSet/shop/nginx-7c9d8f6b5d") in edges
    assert ("OWNS", "ReplicaSet/shop/nginx-7c9d8f6b5d", "Pod/shop/nginx-7c9d8f6b5d-4xk2p") in edges
    assert ("RUNS_ON", "Pod/shop/nginx-7c9d8f6b5d-4xk2p", "Node/node-a") in edges
    assert ("SELECTS", "Service/shop/frontend", "Pod/shop/nginx-7c9d8f6b5d-4xk2p") in edges
    mounts = edges[("MOUNTS", "Pod/shop/nginx-7c9d8f6b5d-4xk2p", "ConfigMap/shop/nginx-config")]
    assert mounts.backwards  # laid out from the root: the ConfigMap left of the pod that mounts it
    assert not caused.backwards
    # the CA bundle every pod mounts would tie every pod to every other: left out
    assert not any("kube-root-ca.crt" in n.id for n in drawn.nodes)
    assert {e.source for e in drawn.edges} | {e.target for e in drawn.edges} <= set(roles)


def test_the_timeline_has_the_root_lane_first_and_the_predicted_failure_at_its_due_time() -> None:
    analysis = analyze([BUNDLED])
    top = analysis.hypotheses[0]
    drawn = picture(top, analysis.topology)
    assert drawn.lanes[0].resource == "ConfigMap/shop/nginx-config"
    assert drawn.lanes[0].marks[0].role == "root" and drawn.lanes[0].marks[0].offset == 0.0
    [predicted] = [m for lane in drawn.lanes for m in lane.marks if m.role == "predicted"]
    assert top.due is not None and predicted.at == top.due == drawn.end and predicted.offset == 1.0
    assert all(0.0 <= m.offset <= 1.0 for lane in drawn.lanes for m in lane.marks)
    marks = [m for lane in drawn.lanes for m in lane.marks if m.role != "predicted"]
    assert len(marks) == len([e for e in top.evidence if e.at is not None])
    assert all(m.source for m in marks)  # every evidence mark says where it was read


def test_a_diagnosis_is_drawn_from_the_object_behind_its_cause() -> None:
    pod, secret = ObjectKey("Pod", "shop", "web-0"), ObjectKey("Secret", "shop", "db")
    d = Diagnosis(family="volumes", cause="missing-secret", subject=pod, message="web-0 mounts a missing Secret",
                  confidence=0.9, remediation="create it", at=T0, ongoing=True, caused_by=secret,
                  members=[ObjectKey("Pod", "shop", "web-1")])
    [cause] = combine([d], [])
    assert cause.root == "Secret/shop/db"
    assert cause.links == [CausalLink(cause="Secret/shop/db", effect="Pod/shop/web-0"),
                           CausalLink(cause="Secret/shop/db", effect="Pod/shop/web-1")]
    drawn = picture(cause, [])
    assert {(e.type, e.source, e.target, e.label) for e in drawn.edges} == {
        ("CAUSED", "Secret/shop/db", "Pod/shop/web-0", "CAUSED"),
        ("CAUSED", "Secret/shop/db", "Pod/shop/web-1", "CAUSED")}
    assert drawn.lanes == [] and drawn.start is None


def test_the_story_links_resources_once_with_the_shortest_delay_and_not_to_themselves() -> None:
    def ev(i: str, name: str, minute: int) -> EvidenceEvent:
        return EvidenceEvent(id=i, at=T0 + timedelta(minutes=minute), text=i, kind="Pod", namespace="shop", name=name)
    cm = EvidenceEvent(id="cm", at=T0, text="edit", kind="ConfigMap", namespace="shop", name="conf")
    got = told(story([cm, ev("a", "web-0", 2), ev("b", "web-0", 1), ev("c", "web-0", 3)],
                     [("cm", "a"), ("cm", "b"), ("b", "c")]))
    assert got.root == "ConfigMap/shop/conf"
    assert got.links == [CausalLink(cause="ConfigMap/shop/conf", effect="Pod/shop/web-0", delay_s=60.0)]


def test_the_picture_stays_within_its_limit_nearest_first() -> None:
    pods = [f"Pod/shop/web-{i}" for i in range(3)]
    cause = RootCause(rank=1, pattern="p", scope="owner:Deployment/shop/web", confidence=0.9, score=0.9, message="m",
                      remediation="", at=T0, ongoing=True, chain=[], affected=pods, evidence=[
                          Evidence(at=T0, source="f#1", text="t", resource=pods[0], severity="warning")],
                      root=pods[0])
    topology = [TopologyLink(type="RUNS_ON", source=p, target=f"Node/n{i}") for i, p in enumerate(pods)] + [
        TopologyLink(type="OWNS", source="ReplicaSet/shop/web-5f", target=p) for p in pods] + [
        TopologyLink(type="OWNS", source="Deployment/shop/web", target="ReplicaSet/shop/web-5f")]
    drawn = picture(cause, topology, limit=5)
    assert len(drawn.nodes) == 5
    # owners come first: the ReplicaSet, then its Deployment, before any node
    assert {n.id for n in drawn.nodes if n.role == "context"} == {"ReplicaSet/shop/web-5f", "Deployment/shop/web"}


def test_delays_read_as_a_person_says_them() -> None:
    assert [since(s) for s in (None, 40, 125, 3780, -5)] == ["", "+40s", "+2m05s", "+1h03m", "-5s"]
