"""core.kube.scopes: the wire form of every scope key, read back; the namespace a key names."""

from __future__ import annotations

import pytest

from core.kube.scopes import ScopeKey, scope_label, scope_namespace

WIRE = [
    (ScopeKey.cluster(), "cluster"),
    (ScopeKey.of_namespace("shop"), "namespace:shop"),
    (ScopeKey.of_node("node-a"), "node:node-a"),
    (ScopeKey.of_object("Pod", "shop", "web-1"), "object:Pod/shop/web-1"),
    (ScopeKey.of_object("Node", "", "node-a"), "object:Node/node-a"),  # cluster-scoped: no namespace part
    (ScopeKey.of_owner("Deployment", "shop", "web"), "owner:Deployment/shop/web"),
    (ScopeKey.of_owner("Pod", "", "bare"), "owner:Pod//bare"),  # the namespace part is always there
    (ScopeKey.of_config("Secret", "shop", "tls"), "configmap:Secret/shop/tls"),
    (ScopeKey.of_service("shop", "front"), "service:shop/front"),
]


@pytest.mark.parametrize("key, text", WIRE, ids=[t for _, t in WIRE])
def test_wire_form_and_back(key: ScopeKey, text: str) -> None:
    assert str(key) == f"{key}" == text
    assert ScopeKey.parse(text) == key


@pytest.mark.parametrize("text", ["weird:a/b/c", "owner:Deployment/web", "service:a/b/c", "cluster:x", "clusters",
                                  "configmap:a/b/c/d"])
def test_what_is_not_a_scope_key(text: str) -> None:
    assert ScopeKey.parse(text) is None


@pytest.mark.parametrize("scope, namespace", [
    ("namespace:shop", "shop"), ("owner:Deployment/shop/nginx", "shop"), ("configmap:ConfigMap/shop/cfg", "shop"),
    ("service:shop/frontend", "shop"), ("object:Pod/shop/web-1", "shop"), ("object:Node/node-a", None),
    ("node:node-a", None), ("cluster", None), ("namespace:", None), ("weird:a/b/c", None),
])
def test_scope_namespace(scope: str, namespace: str | None) -> None:
    assert scope_namespace(scope) == namespace


def test_scope_label() -> None:
    assert [scope_label(t) for t in ("node:node-a", "owner:Deployment/shop/web", "cluster")] == [
        "node-a", "Deployment/shop/web", "cluster"]
