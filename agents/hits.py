"""Which events count for which pattern, and in which scope: the stateless half of matching.

Fed by: UnifiedEvents (the match stage, in stream order) and the compiled catalog.
Feeds: `Hit`s, one per (event, pattern condition, scope key), sent to the `hits` topic keyed by
pattern and scope so that one window partition sees every hit of one scope (a node's OOM kills
come from many namespaces, hence from many unified partitions).

Pure. The engine knows condition types, never pattern names: a pattern compiles into tests
(predicates over dotted UnifiedEvent fields) indexed by the intents they require, so an event
is only tested against the conditions that could want it.
"""

from __future__ import annotations

import operator
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from agents.membership import (CONTENT_KINDS, Store, learn, node_of, refs_of, services_of, workload_of)
from agents.patterns import (BehaviorPattern, CountCondition, EventCondition, MetricCondition, Predicate,
                             RateCondition, SequenceCondition, WINDOW_MAX_S)
from app.events import UnifiedEvent, content_id, epoch_ms
from app.records import Hit

Test = Callable[[UnifiedEvent, str], bool]  # (event, effective intent) -> passes

_NUMERIC = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


def getter(path: str) -> Callable[[UnifiedEvent, str], Any]:
    """A function reading a dotted UnifiedEvent path (`k8s.labels.app`); None when absent."""
    parts = path.split(".")
    if path == "semantic.intent":
        return lambda event, intent: intent

    def get(event: UnifiedEvent, intent: str) -> Any:
        value: Any = event
        for part in parts:
            if value is None:
                return None
            value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
        return value

    return get


def compile_test(field: str, op: str, value: Any) -> Test:
    get = getter(field)
    if op == "exists":
        want = value is not False
        return lambda e, i: (get(e, i) not in (None, "", [], {})) is want
    if op == "equals":
        return lambda e, i: get(e, i) == value
    if op == "not_equals":
        return lambda e, i: get(e, i) != value
    if op in ("in", "not_in"):
        choices = frozenset(value)
        inside = op == "in"
        return lambda e, i: (get(e, i) in choices) is inside
    if op == "contains":
        needle = str(value)
        return lambda e, i: (lambda v: v is not None and needle in (v if isinstance(v, (list, dict)) else str(v)))(
            get(e, i))
    compare = _NUMERIC[op]
    return lambda e, i: (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and compare(v, value))(
        get(e, i))


def _all(tests: list[Test]) -> Test:
    return lambda e, i: all(t(e, i) for t in tests)


def _intents(preds: Iterable[Predicate | EventCondition]) -> frozenset[str] | None:
    """The intents a list of tests requires (None: any intent may pass)."""
    for p in preds:
        if p.field == "semantic.intent" and p.operator == "equals":
            return frozenset([p.value])
        if p.field == "semantic.intent" and p.operator == "in":
            return frozenset(p.value)
    return None


class CompiledCondition(msgspec.Struct, kw_only=True):
    index: int
    spec: Any  # one of agents.patterns' condition structs
    fp: str  # fingerprint of the tests (thresholds excluded): window state survives a threshold edit
    roles: list[tuple[str, Test, frozenset[str] | None]]  # (role, test, required intents)
    window_ms: int
    distinct: Callable[[UnifiedEvent, str], Any] | None = None


class CompiledPattern(msgspec.Struct, kw_only=True):
    pattern: BehaviorPattern
    name: str
    version: str
    scope: str
    conditions: list[CompiledCondition]
    span_ms: int  # the longest window or sequence span: how long hits stay useful, and the quiet time


def _fingerprint(cond: Any) -> str:
    if isinstance(cond, EventCondition):
        tests: Any = [cond.field, cond.operator, cond.value]
    elif isinstance(cond, SequenceCondition):
        tests = [cond.first, cond.then]
    elif isinstance(cond, MetricCondition):
        tests = [cond.field]
    else:
        tests = [cond.where, getattr(cond, "distinct", "")]
    return content_id(type(cond).__name__, msgspec.json.encode(tests))[:12]


def compile_pattern(pattern: BehaviorPattern) -> CompiledPattern:
    conditions: list[CompiledCondition] = []
    for i, cond in enumerate(pattern.spec.conditions):
        distinct = None
        if isinstance(cond, EventCondition):
            roles = [("", compile_test(cond.field, cond.operator, cond.value), _intents([cond]))]
            window = WINDOW_MAX_S
        elif isinstance(cond, SequenceCondition):
            roles = [("first", _all([compile_test(p.field, p.operator, p.value) for p in cond.first]),
                      _intents(cond.first)),
                     ("then", _all([compile_test(p.field, p.operator, p.value) for p in cond.then]),
                      _intents(cond.then))]
            window = cond.within.seconds
        elif isinstance(cond, MetricCondition):
            name = cond.field
            roles = [("", lambda e, i, name=name: name in e.metrics, None)]
            window = cond.window.seconds
        else:  # count, rate
            assert isinstance(cond, (CountCondition, RateCondition))
            roles = [("", _all([compile_test(p.field, p.operator, p.value) for p in cond.where]), _intents(cond.where))]
            window = cond.window.seconds
            if isinstance(cond, CountCondition) and cond.distinct:
                distinct = getter(cond.distinct)
        conditions.append(CompiledCondition(index=i, spec=cond, fp=_fingerprint(cond), roles=roles,
                                            window_ms=int(window * 1000), distinct=distinct))
    span = max(c.window_ms for c in conditions)
    return CompiledPattern(pattern=pattern, name=pattern.metadata.name, version=pattern.metadata.version,
                           scope=pattern.spec.scope, conditions=conditions, span_ms=span)


class Selector:
    """The catalog, indexed by intent: `hits(event, store)` is what the match stage calls per event."""

    def __init__(self, patterns: Iterable[CompiledPattern]) -> None:
        self.patterns = [p for p in patterns if p.pattern.spec.enabled]
        self._by_intent: dict[str, list[tuple[CompiledPattern, CompiledCondition, str, Test]]] = defaultdict(list)
        self._always: list[tuple[CompiledPattern, CompiledCondition, str, Test]] = []
        for pattern in self.patterns:
            for cond in pattern.conditions:
                for role, test, intents in cond.roles:
                    entry = (pattern, cond, role, test)
                    if intents is None:
                        self._always.append(entry)
                    else:
                        for intent in intents:
                            self._by_intent[intent].append(entry)

    def hits(self, event: UnifiedEvent, store: Store) -> list[Hit]:
        changed = learn(store, event)
        intent = effective_intent(event, changed)
        candidates = self._by_intent.get(intent, ())
        if not candidates and not self._always:
            return []
        out: list[Hit] = []
        t = epoch_ms(event.timestamp)
        keys_cache: dict[str, list[str]] = {}
        for pattern, cond, role, test in (*candidates, *self._always):
            if not test(event, intent):
                continue
            keys = keys_cache.get(pattern.scope)
            if keys is None:
                keys = keys_cache[pattern.scope] = scope_keys(pattern.scope, event, store)
            if not keys:
                continue
            distinct = "" if cond.distinct is None else str(cond.distinct(event, intent) or "")
            series, count = series_of(event) if isinstance(cond.spec, (CountCondition, RateCondition)) else ("", 1)
            value = event.metrics.get(cond.spec.field, 0.0) if isinstance(cond.spec, MetricCondition) else 0.0
            for key in keys:
                out.append(Hit(pattern=pattern.name, key=key, cond=cond.fp, role=role, t=t, event=event,
                               distinct=distinct, series=series, count=count, value=value))
        return out


def effective_intent(event: UnifiedEvent, changed: bool) -> str:
    """The intent matching uses. An edit is only an edit when content changed: a MODIFIED ConfigMap,
    Secret or workload whose content is the same (a status or scale update) is `observed`. Change
    events (action CHANGE) restate an edit the MODIFIED observation already carried, later: they are
    `observed` too, so a replay at any speed counts each edit once, at its own time."""
    kube, k8s = event.kubernetes, event.k8s
    if kube is not None and k8s is not None:
        if kube.action == "CHANGE":
            return "observed"
        if kube.action == "MODIFIED" and k8s.kind in CONTENT_KINDS and not changed:
            return "observed"
    return event.semantic.intent


def series_of(event: UnifiedEvent) -> tuple[str, int]:
    """A repeated Kubernetes Event's identity (object, reason, message) and its `count`."""
    kube, k8s = event.kubernetes, event.k8s
    if kube is None or kube.action != "EVENT" or k8s is None:
        return "", 1
    ident = f"{k8s.kind}/{k8s.namespace}/{k8s.name}/{k8s.uid}\x1f{kube.reason}\x1f{kube.message}"
    return format(zlib.crc32(ident.encode()), "08x"), max(kube.count, 1)


def scope_keys(scope: str, event: UnifiedEvent, store: Store) -> list[str]:
    """The scope keys of an event (see the contract in agents/patterns.py); [] if it has none."""
    k8s = event.k8s
    if scope == "cluster":
        return ["cluster"]
    if k8s is None:
        return []
    ns = k8s.namespace
    if scope == "namespace":
        return [f"namespace:{ns}"] if ns else []
    if scope == "object":
        return [f"object:{k8s.kind}/{ns}/{k8s.name}" if ns else f"object:{k8s.kind}/{k8s.name}"]
    if scope == "node":
        node = node_of(store, event)
        return [f"node:{node}"] if node else []
    if scope == "owner":
        workload = workload_of(store, ns, k8s.kind, k8s.name)
        return [f"owner:{workload.split('/', 1)[0]}/{ns}/{workload.split('/', 1)[1]}"] if workload else []
    if scope == "configmap":
        return [f"configmap:{ref}" for ref in refs_of(store, event)]
    if scope == "service":
        return [f"service:{svc}" for svc in services_of(store, event)]
    return []
