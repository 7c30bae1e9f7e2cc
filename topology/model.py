"""The graph model, declared once: node labels, their key properties, relationship names.

Fed by: nothing (constants). Feeds: `topology.queries`, which generates every per-label
Cypher text from these fixed names (labels cannot be Cypher parameters, so they must never
come from user strings), and `topology.rows`, which maps an event's Kubernetes kind to a label.
"""

from __future__ import annotations

from typing import Final

#: Kubernetes kinds Tapio knows, each a node label of its own, keyed by `uid`.
RESOURCE_LABELS: Final[tuple[str, ...]] = (
    "Pod", "Node", "Namespace", "Service", "EndpointSlice", "ConfigMap", "Secret",
    "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob",
    "PersistentVolumeClaim", "PersistentVolume", "StorageClass", "Ingress", "NetworkPolicy",
    "HorizontalPodAutoscaler", "ServiceAccount",
)

#: Kinds that live outside namespaces (their namespace is "" in keys and queries).
CLUSTER_SCOPED: Final[frozenset[str]] = frozenset({
    "Node", "Namespace", "PersistentVolume", "StorageClass", "ClusterRole", "ClusterRoleBinding",
    "CustomResourceDefinition", "PriorityClass", "IngressClass", "CSIDriver", "VolumeAttachment",
})

#: Kinds an event without a uid joins by name when the graph knows the real object (its uid-keyed
#: node): the kubelet's Node Events name the Node with its name as uid (the kubelet does not know the
#: Node's uid), and a second Node keyed by that name would collect them. Few nodes: a name scan is cheap.
JOINED_BY_NAME: Final[frozenset[str]] = frozenset({"Node"})

#: Label of any other kind; the original kind is kept in its `kind` property.
GENERIC_LABEL: Final = "Resource"
#: Label of an observation (a UnifiedEvent), keyed by `id`.
EVENT_LABEL: Final = "Event"
#: Label of a behavior pattern, keyed by its `name` (props: version, priority, last_matched).
PATTERN_LABEL: Final = "Pattern"
#: Label of a prediction a pattern match made, keyed by `id`.
PREDICTION_LABEL: Final = "Prediction"
#: Label of one feedback vote on a prediction, keyed by `id` (props: accurate, rating, comment, at, source).
FEEDBACK_LABEL: Final = "Feedback"
#: Label of the graph's retention record, keyed by `id` ("events"; props: pruned = Event nodes
#: deleted by `topology.retention` so far, so every event stays accounted for).
RETENTION_LABEL: Final = "Retention"

RESOURCE_KEY: Final = "uid"
EVENT_KEY: Final = "id"
PATTERN_KEY: Final = "name"
PREDICTION_KEY: Final = "id"
FEEDBACK_KEY: Final = "id"
RETENTION_KEY: Final = "id"

#: Every label a resource node can carry: the known kinds, then the generic one.
ALL_RESOURCE_LABELS: Final[tuple[str, ...]] = RESOURCE_LABELS + (GENERIC_LABEL,)

#: Label -> key property, for every node label of the model (schema generation reads this).
NODE_KEYS: Final[dict[str, str]] = {
    **{label: RESOURCE_KEY for label in ALL_RESOURCE_LABELS},
    EVENT_LABEL: EVENT_KEY,
    PATTERN_LABEL: PATTERN_KEY,
    PREDICTION_LABEL: PREDICTION_KEY,
    FEEDBACK_LABEL: FEEDBACK_KEY,
    RETENTION_LABEL: RETENTION_KEY,
}
#: (label, property) indexes besides the keys: a hypothesis finds the predictions of a match;
#: retention finds the oldest events by the time the sink wrote them.
SECONDARY_INDEXES: Final[tuple[tuple[str, str], ...]] = ((PREDICTION_LABEL, "match_id"), (EVENT_LABEL, "ingested_at"))

# Relationship types. AFFECTED (Event -> resource) is written by the graph sink.
AFFECTED: Final = "AFFECTED"

#: Between resources, the live topology (source -> target):
#: (owner)-[:OWNS]->(owned), (Pod)-[:RUNS_ON]->(Node), (Service)-[:SELECTS]->(Pod),
#: (Pod)-[:MOUNTS]->(ConfigMap), (Pod)-[:USES_SECRET]->(Secret), (Pod)-[:CLAIMS]->(PVC),
#: (PVC)-[:BOUND_TO]->(PV), (PVC|PV)-[:USES]->(StorageClass), (Ingress)-[:ROUTES_TO]->(Service),
#: (NetworkPolicy)-[:APPLIES_TO]->(Pod), (HPA)-[:SCALES]->(target).
TOPOLOGY_RELATIONS: Final[tuple[str, ...]] = (
    "OWNS", "RUNS_ON", "SELECTS", "MOUNTS", "USES_SECRET", "CLAIMS", "BOUND_TO", "USES",
    "ROUTES_TO", "APPLIES_TO", "SCALES",
)
#: Relations a context walks to find what a resource depends on or what depends on it
#: (ownership is walked on its own; RUNS_ON is left out: a Node joins hundreds of pods).
DEPENDENCY_RELATIONS: Final[tuple[str, ...]] = (
    "MOUNTS", "USES_SECRET", "SELECTS", "CLAIMS", "BOUND_TO", "USES", "ROUTES_TO", "APPLIES_TO", "SCALES",
)
#: Between events: (cause)-[:CAUSED]->(effect), (earlier)-[:PRECEDED {delay_s}]->(later).
CAUSED: Final = "CAUSED"
PRECEDED: Final = "PRECEDED"
#: Pattern matches and predictions (written by the graph sink from `insights`):
#: (Event)-[:MATCHES {match_id, scope, ...}]->(Pattern), (Pattern)-[:PREDICTED]->(Prediction),
#: (Prediction)-[:IMPACTS]->(resource).
MATCHES: Final = "MATCHES"
PREDICTED: Final = "PREDICTED"
IMPACTS: Final = "IMPACTS"
#: Feedback (written by `tapio feedback` and POST /api/v1/feedback): (Feedback)-[:VALIDATES]->(Prediction).
VALIDATES: Final = "VALIDATES"


_BY_LOWER: Final[dict[str, str]] = {label.lower(): label for label in RESOURCE_LABELS}


def label_for(kind: str) -> str:
    """The node label of a Kubernetes kind: the known label (case-insensitive), else `Resource`."""
    return _BY_LOWER.get(kind.lower(), GENERIC_LABEL)
