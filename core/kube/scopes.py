"""Scope keys: where a pattern match holds ("owner:Deployment/shop/web"), built and read in one place. Pure.

Fed by: the match stage (`agents.hits.scope_keys`: an event's keys, from what `agents.membership`
learned), `tapio explain` (`app.explain.scope_keys_of`: the keys a resource belongs to, from its
graph context). Read back by the graph writer (`topology.insight_rows`: a prediction's namespace)
and the predict stage (`agents.predict`: the scope named in messages).
Feeds: `Hit.key` (hits partitioning and window table keys), `PatternMatch.scope` and
`Prediction.scope` (graph properties), the scope lookups of explain.

The strings are table keys and graph values: their format never changes.

    cluster
    namespace:<namespace>
    node:<node>
    object:<Kind>/<namespace>/<name>      object:<Kind>/<name> for a cluster-scoped object
    owner:<Kind>/<namespace>/<name>       the workload (`core.kube.owners.workload_of`)
    configmap:<Kind>/<namespace>/<name>   Kind is ConfigMap or Secret
    service:<namespace>/<name>

Not scope keys: the enrich stage's `correlation_hints` (`agents.normalize`), which look alike
(`namespace:`, `node:`, `owner:<uid>`) but name an event's own object, node and direct owner.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Scope = Literal["object", "owner", "node", "namespace", "configmap", "service", "cluster"]

_PATH_SCOPES = frozenset({"object", "owner", "configmap"})  # <scope>:<Kind>/<namespace>/<name>


class ScopeKey(msgspec.Struct, frozen=True, gc=False):
    """One scope key, typed; `str()` gives its wire form, `ScopeKey.parse` reads it back."""

    scope: Scope
    kind: str = ""  # object, owner, configmap
    namespace: str = ""  # all but cluster and node
    name: str = ""  # all but cluster and namespace (a node scope: the node's name)

    @classmethod
    def cluster(cls) -> ScopeKey:
        return cls("cluster")

    @classmethod
    def of_namespace(cls, namespace: str) -> ScopeKey:
        return cls("namespace", namespace=namespace)

    @classmethod
    def of_node(cls, node: str) -> ScopeKey:
        return cls("node", name=node)

    @classmethod
    def of_object(cls, kind: str, namespace: str, name: str) -> ScopeKey:
        return cls("object", kind, namespace, name)

    @classmethod
    def of_owner(cls, kind: str, namespace: str, name: str) -> ScopeKey:
        return cls("owner", kind, namespace, name)

    @classmethod
    def of_config(cls, kind: str, namespace: str, name: str) -> ScopeKey:
        """A ConfigMap or a Secret."""
        return cls("configmap", kind, namespace, name)

    @classmethod
    def of_service(cls, namespace: str, name: str) -> ScopeKey:
        return cls("service", namespace=namespace, name=name)

    def __str__(self) -> str:
        scope = self.scope
        if scope == "cluster":
            return "cluster"
        if scope == "namespace":
            return f"namespace:{self.namespace}"
        if scope == "node":
            return f"node:{self.name}"
        if scope == "service":
            return f"service:{self.namespace}/{self.name}"
        if scope == "object" and not self.namespace:
            return f"object:{self.kind}/{self.name}"
        return f"{scope}:{self.kind}/{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> ScopeKey | None:
        """The key `text` spells, or None if it is not a scope key."""
        scope, colon, rest = text.partition(":")
        if not colon:
            return cls.cluster() if text == "cluster" else None
        if scope == "namespace":
            return cls.of_namespace(rest)
        if scope == "node":
            return cls.of_node(rest)
        parts = rest.split("/")
        if scope == "service" and len(parts) == 2:
            return cls.of_service(parts[0], parts[1])
        if scope in _PATH_SCOPES and len(parts) == 3:
            return cls(scope, parts[0], parts[1], parts[2])  # type: ignore[arg-type]
        if scope == "object" and len(parts) == 2:
            return cls.of_object(parts[0], "", parts[1])
        return None


def scope_namespace(text: str) -> str | None:
    """The namespace a scope key names, if any (`node:` and `cluster` keys name none)."""
    key = ScopeKey.parse(text)
    return (key.namespace if key is not None else "") or None


def scope_label(text: str) -> str:
    """A key as a message names it: `node:node-a` -> `node-a`, `owner:Deployment/shop/web` ->
    `Deployment/shop/web`, `cluster` -> `cluster`."""
    return text.split(":", 1)[1] if ":" in text else text
