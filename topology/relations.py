"""Kubernetes objects -> topology nodes and edges, kept current as objects change. Pure: no I/O.

Fed by: `topology.index`, whose ObjectIndex calls the functions here for each object (a kubeapi
RawEvent's `data`, with its watch action: ADDED / MODIFIED / SNAPSHOT -> `ObjectIndex.add(obj)`,
DELETED -> `ObjectIndex.remove(obj)`).
Feeds: a graph writer, which applies each TopologyChange (see below), and pattern matching, which
reads the edges (OWNS, RUNS_ON, SELECTS, MOUNTS, USES_SECRET, CLAIMS, BOUND_TO, USES, ROUTES_TO,
APPLIES_TO, SCALES) from the graph.

Keys. A node's key (its `uid` property) is the object's uid, else the synthetic key of
`topology.rows.resource_key`: `f"{kind}:{namespace}/{name}"` (namespace "" for cluster-scoped kinds).
An edge endpoint known only by name (a ConfigMap a Pod mounts, not seen yet) gets the synthetic key
and a *placeholder* node; an endpoint named with its uid (ownerReferences, PV claimRef) keeps that uid.
When the real object is first seen, the index re-resolves every object that names it, so the change
removes the edges on the synthetic key and adds them on the uid, and lists an Alias
(synthetic key -> uid) so the writer can move what else hangs on the synthetic node (events written
by `topology.rows` without a uid) to the real node and drop it. A deleted object's edges are all
removed; objects that still name it by name point again at its synthetic key (a dangling reference:
"mounts a ConfigMap that does not exist"); references by uid to a deleted object are dropped.

Applying a TopologyChange idempotently, in this order:
  1. `upsert`: MERGE on (label, uid) and SET the props; `placeholders`: MERGE, set kind/name/namespace
     ON CREATE only; `deleted`: MERGE, mark deleted (the node stays: events keep their history).
  2. `remove_edges`: MATCH ()-[r:TYPE {id: edge.id}]->() DELETE r.
  3. `add_edges`: MATCH both ends by key, MERGE (a)-[r:TYPE {id: edge.id}]->(b) SET r += props.
  4. `aliases`: move the synthetic node's remaining relationships to the real node, DETACH DELETE it.
Edge ids are deterministic (`Edge.id`), so replaying a change is a no-op.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

import msgspec

from core.events import K8sContext
from core.kube.changes import REVISION_ANNOTATION
from core.kube.owners import WORKLOAD_KINDS
from core.kube.refs import VOLUME, PodSpec, pod_refs
from core.kube.selectors import LabelSelector
from topology.model import CLUSTER_SCOPED
from topology.rows import kind_of, resource_key

Prop = str | int | bool | list[str] | None
EdgeProp = str | int | None
ObjId = tuple[str, str, str]  # (kind as stored, namespace, name)


class ObjectNode(msgspec.Struct, frozen=True, kw_only=True):
    """One Kubernetes object as a graph node; `uid` is the node key. Props are flat (no maps)."""

    kind: str
    uid: str
    name: str
    namespace: str = ""
    props: dict[str, Prop] = {}


class Edge(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    src_kind: str
    src_key: str
    dst_kind: str
    dst_key: str
    props: dict[str, EdgeProp] = {}

    @property
    def id(self) -> str:
        """Deterministic identity: type, ends and props (two MOUNTS via different keys are two edges)."""
        base = f"{self.src_key}-{self.type}->{self.dst_key}"
        if not self.props:
            return base
        digest = hashlib.blake2b(msgspec.json.encode(self.props, order="sorted"), digest_size=6).hexdigest()
        return f"{base}#{digest}"


class Alias(msgspec.Struct, frozen=True, kw_only=True):
    """The node keyed `synthetic_key` is the object now known as `uid`."""

    kind: str
    namespace: str
    name: str
    synthetic_key: str
    uid: str


class TopologyChange(msgspec.Struct, frozen=True, kw_only=True):
    """What one object change does to the graph; every list sorted, every item keyed."""

    upsert: list[ObjectNode] = []
    placeholders: list[ObjectNode] = []
    deleted: list[ObjectNode] = []
    add_edges: list[Edge] = []
    remove_edges: list[Edge] = []
    aliases: list[Alias] = []

    @property
    def empty(self) -> bool:
        return not (self.upsert or self.placeholders or self.deleted or self.add_edges
                    or self.remove_edges or self.aliases)


def normalize_kind(kind: str) -> str:
    return kind_of(K8sContext(kind=kind, name=""))


def synthetic_key(kind: str, namespace: str, name: str) -> str:
    return resource_key(K8sContext(kind=kind, name=name, namespace=namespace))


def identity(obj: dict) -> tuple[ObjId, str]:
    """((kind, namespace, name), uid) of an object; namespace "" for cluster-scoped kinds."""
    meta = obj.get("metadata") or {}
    kind = normalize_kind(obj.get("kind") or "")
    namespace = "" if kind in CLUSTER_SCOPED else (meta.get("namespace") or "")
    return (kind, namespace, meta.get("name") or ""), meta.get("uid") or ""


def node_key(oid: ObjId, uid: str) -> str:
    """A node's key: the object's uid, else its synthetic key (see the module doc)."""
    return uid or synthetic_key(*oid)


# -- node properties ----------------------------------------------------------------------


def _pairs(mapping: Any) -> list[str]:
    return sorted(f"{k}={v}" for k, v in mapping.items()) if isinstance(mapping, dict) else []


def _template_spec(kind: str, spec: dict) -> dict:
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return (spec.get("template") or {}).get("spec") or {}


def _images(pod_spec: dict) -> list[str]:
    seen = [c.get("image") for group in ("initContainers", "containers") for c in pod_spec.get(group) or []]
    return list(dict.fromkeys(i for i in seen if i))


def _node_props(kind: str, obj: dict) -> dict[str, Any]:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    annotations = meta.get("annotations") or {}
    p: dict[str, Any] = {"labels": _pairs(meta.get("labels")), "resource_version": meta.get("resourceVersion"),
                         "created": meta.get("creationTimestamp")}
    if kind == "Pod":
        statuses = [s for g in ("initContainerStatuses", "containerStatuses") for s in status.get(g) or []]
        ready = [c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"]
        p.update(phase=status.get("phase"), node=spec.get("nodeName"), qos=status.get("qosClass"),
                 restart_count=sum(int(s.get("restartCount") or 0) for s in statuses),
                 images=_images(spec), service_account=spec.get("serviceAccountName"),
                 reason=status.get("reason"), ready=(ready[0] == "True") if ready else None,
                 states=[f"{s.get('name')}={_state(s.get('state') or {})}" for s in statuses])
    elif kind in WORKLOAD_KINDS:
        p.update(replicas=spec.get("replicas"), ready_replicas=status.get("readyReplicas"),
                 revision=annotations.get(REVISION_ANNOTATION) or status.get("updateRevision"),
                 images=_images(_template_spec(kind, spec)))
        if kind == "CronJob":
            p.update(schedule=spec.get("schedule"), suspend=spec.get("suspend"))
        if kind == "Job":
            p.update(active=status.get("active"), succeeded=status.get("succeeded"), failed=status.get("failed"))
    elif kind == "ConfigMap":
        p["data_keys"] = sorted({*(obj.get("data") or {}), *(obj.get("binaryData") or {})})
    elif kind == "Secret":  # key NAMES only, never values
        p.update(type=obj.get("type"), data_keys=sorted({*(obj.get("data") or {}), *(obj.get("stringData") or {})}))
    elif kind == "Service":
        p.update(type=spec.get("type"), selector=_pairs(spec.get("selector")), cluster_ip=spec.get("clusterIP"),
                 ports=[f"{x.get('port')}/{x.get('protocol', 'TCP')}" for x in spec.get("ports") or []])
    elif kind == "Node":
        capacity = status.get("capacity") or {}
        p.update(conditions=[f"{c.get('type')}={c.get('status')}" for c in status.get("conditions") or []],
                 cpu=capacity.get("cpu"), memory=capacity.get("memory"), unschedulable=spec.get("unschedulable"),
                 kubelet_version=(status.get("nodeInfo") or {}).get("kubeletVersion"))
    elif kind in ("PersistentVolumeClaim", "PersistentVolume"):
        storage = ((spec.get("resources") or {}).get("requests") or spec.get("capacity") or {}).get("storage")
        p.update(phase=status.get("phase"), storage_class=spec.get("storageClassName"), storage=storage,
                 access_modes=list(spec.get("accessModes") or []), volume_name=spec.get("volumeName"),
                 reclaim_policy=spec.get("persistentVolumeReclaimPolicy"))
    elif kind == "StorageClass":
        p.update(provisioner=obj.get("provisioner"), reclaim_policy=obj.get("reclaimPolicy"),
                 binding_mode=obj.get("volumeBindingMode"))
    elif kind == "Ingress":
        p.update(ingress_class=spec.get("ingressClassName") or annotations.get("kubernetes.io/ingress.class"),
                 hosts=sorted({r.get("host") for r in spec.get("rules") or [] if r.get("host")}))
    elif kind == "NetworkPolicy":
        p["policy_types"] = list(spec.get("policyTypes") or [])
    elif kind == "HorizontalPodAutoscaler":
        target = spec.get("scaleTargetRef") or {}
        p.update(min_replicas=spec.get("minReplicas"), max_replicas=spec.get("maxReplicas"),
                 current_replicas=status.get("currentReplicas"), desired_replicas=status.get("desiredReplicas"),
                 target=f"{target.get('kind')}/{target.get('name')}")
    elif kind == "Namespace":
        p["phase"] = status.get("phase")
    return {k: v for k, v in p.items() if v is not None and v != "" and v != []}


def _state(state: dict) -> str:
    for phase in ("waiting", "terminated", "running"):
        if phase in state:
            reason = (state[phase] or {}).get("reason")
            return f"{phase}:{reason}" if reason else phase
    return "unknown"


def object_node(obj: dict) -> ObjectNode:
    oid, uid = identity(obj)
    return ObjectNode(kind=oid[0], uid=node_key(oid, uid), name=oid[2], namespace=oid[1],
                      props=_node_props(oid[0], obj))


# -- declarations: what an object says about others ---------------------------------------


class Reference(NamedTuple):
    """An edge the object declares to another object named by (kind, namespace, name[, uid])."""

    type: str
    outgoing: bool  # True: obj -> target; False: target -> obj (OWNS from ownerReferences)
    kind: str
    namespace: str
    name: str
    uid: str = ""
    props: tuple[tuple[str, EdgeProp], ...] = ()


class Selection(NamedTuple):
    """The edge an object draws to every pod of its namespace its selector matches."""

    type: str  # SELECTS (Service, equality only) or APPLIES_TO (NetworkPolicy podSelector)
    selector: LabelSelector


def _p(**props: EdgeProp) -> tuple[tuple[str, EdgeProp], ...]:
    return tuple(sorted((k, v) for k, v in props.items() if v is not None and v != ""))


def _to(type_: str, kind: str, ns: str, name: Any, **props: EdgeProp) -> list[Reference]:
    return [Reference(type_, True, kind, ns, name, "", _p(**props))] if isinstance(name, str) and name else []


#: the edge each kind of pod reference draws: (Pod)-[:MOUNTS]->(ConfigMap), -[:USES_SECRET]->(Secret),
#: -[:CLAIMS]->(PersistentVolumeClaim)
_POD_REF_EDGES = {"ConfigMap": "MOUNTS", "Secret": "USES_SECRET", "PersistentVolumeClaim": "CLAIMS"}


def _pod_refs(spec: dict, ns: str, pod_name: str) -> list[Reference]:
    refs = _to("RUNS_ON", "Node", "", spec.get("nodeName"))
    for ref in pod_refs(msgspec.convert(spec, PodSpec), pod_name=pod_name):
        # a persistentVolumeClaim volume's CLAIMS edge has never carried `via`: edge ids hash the
        # props, so adding it would re-key every such edge already in a graph
        via = None if ref.kind == "PersistentVolumeClaim" and ref.via == VOLUME else ref.via
        refs += _to(_POD_REF_EDGES[ref.kind], ref.kind, ns, ref.name, key=ref.key, via=via, volume=ref.volume)
    return refs


def _backend_refs(backend: dict, ns: str, **props: EdgeProp) -> list[Reference]:
    service = backend.get("service")
    if service:  # networking.k8s.io/v1
        port = service.get("port") or {}
        number_or_name = port.get("number") or port.get("name")
        return _to("ROUTES_TO", "Service", ns, service.get("name"), port=number_or_name, **props)
    return _to("ROUTES_TO", "Service", ns, backend.get("serviceName"), port=backend.get("servicePort"), **props)


def declarations(kind: str, ns: str, obj: dict) -> tuple[list[Reference], Selection | None]:
    """What `obj` (of `kind`, in namespace `ns`) says about other objects: the edges it declares to
    objects it names, and the selection it makes among the pods of its namespace (or None)."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    refs = []
    for owner in meta.get("ownerReferences") or []:
        owner_kind = normalize_kind(owner.get("kind") or "")
        if owner.get("name"):
            refs.append(Reference("OWNS", False, owner_kind, "" if owner_kind in CLUSTER_SCOPED else ns,
                             owner["name"], owner.get("uid") or ""))
    selector = None
    if kind == "Pod":
        refs += _pod_refs(spec, ns, meta.get("name") or "")
    elif kind == "Service":
        selector = Selection("SELECTS", LabelSelector.of_map(spec.get("selector")))
    elif kind == "NetworkPolicy":
        selector = Selection("APPLIES_TO", LabelSelector.of(spec.get("podSelector"), empty_selects_all=True))
    elif kind == "Ingress":
        default = spec.get("defaultBackend") or spec.get("backend")
        refs += _backend_refs(default, ns, via="defaultBackend") if default else []
        for rule in spec.get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                refs += _backend_refs(path.get("backend") or {}, ns, host=rule.get("host"), path=path.get("path"))
        for tls in spec.get("tls") or []:
            refs += _to("USES_SECRET", "Secret", ns, tls.get("secretName"), via="tls")
    elif kind == "HorizontalPodAutoscaler":
        target = spec.get("scaleTargetRef") or {}
        refs += _to("SCALES", normalize_kind(target.get("kind") or ""), ns, target.get("name"))
    elif kind == "PersistentVolumeClaim":
        refs += _to("BOUND_TO", "PersistentVolume", "", spec.get("volumeName"))
        refs += _to("USES", "StorageClass", "", spec.get("storageClassName"))
    elif kind == "PersistentVolume":
        claim = spec.get("claimRef") or {}
        if claim.get("name"):
            refs.append(Reference("BOUND_TO", False, "PersistentVolumeClaim", claim.get("namespace") or "",
                             claim["name"], claim.get("uid") or ""))
        refs += _to("USES", "StorageClass", "", spec.get("storageClassName"))
    return refs, selector
