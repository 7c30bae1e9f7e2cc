"""Kubernetes label selectors: which pods a Service, a NetworkPolicy or a workload selects. Pure.

Fed by: the selectors objects declare: a Service's `spec.selector` (a plain map, `of_map`) and a
`metav1.LabelSelector` (`matchLabels` and `matchExpressions`: a NetworkPolicy's `podSelector`,
`of`). Feeds: the match stage's membership (`agents.membership.services_of`: the Services of a
pod, for `service` scope keys) and the topology index (`topology.index`: SELECTS and APPLIES_TO
edges), so both select the same pods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple


class Requirement(NamedTuple):
    """One `matchExpressions` entry."""

    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist (any other selects nothing)
    values: tuple[str, ...]


class LabelSelector(NamedTuple):
    """`matchLabels` AND every requirement; an empty selector selects every pod or none, as declared."""

    match_labels: tuple[tuple[str, str], ...] = ()
    expressions: tuple[Requirement, ...] = ()
    empty_selects_all: bool = False

    @classmethod
    def of_map(cls, selector: Mapping[str, str] | None) -> LabelSelector:
        """A Service's selector: equality on every pair; an empty or absent one selects nothing."""
        return cls(tuple(sorted((selector or {}).items())))

    @classmethod
    def of(cls, selector: Any, *, empty_selects_all: bool) -> LabelSelector:
        """A `metav1.LabelSelector`; `empty_selects_all`: what `{}` means where it is used (a
        NetworkPolicy's podSelector `{}` selects every pod of its namespace)."""
        selector = selector if isinstance(selector, dict) else {}
        expressions = tuple(Requirement(e.get("key", ""), e.get("operator", ""), tuple(e.get("values") or []))
                            for e in selector.get("matchExpressions") or [])
        return cls(tuple(sorted((selector.get("matchLabels") or {}).items())), expressions, empty_selects_all)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Kubernetes label-selector semantics: matchLabels AND every matchExpression."""
        if not self.match_labels and not self.expressions:
            return self.empty_selects_all
        if any(labels.get(k) != v for k, v in self.match_labels):
            return False
        return all(_TESTS.get(op, _NOTHING)(labels, key, values) for key, op, values in self.expressions)


def _nothing(labels: Mapping[str, str], key: str, values: tuple[str, ...]) -> bool:
    return False


_NOTHING = _nothing
_TESTS = {
    "In": lambda labels, key, values: labels.get(key) in values,
    "NotIn": lambda labels, key, values: labels.get(key) not in values,
    "Exists": lambda labels, key, values: key in labels,
    "DoesNotExist": lambda labels, key, values: key not in labels,
}
