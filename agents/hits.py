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
from typing import Any, get_args

import msgspec

from agents.membership import CONTENT_KINDS, ENDPOINT_KINDS, Store, learn, node_of, refs_of, services_of, workload_of
from agents.patterns import (
    WINDOW_MAX_S,
    BehaviorPattern,
    CountCondition,
    EventCondition,
    MetricCondition,
    Predicate,
    RateCondition,
    Scope,
    SequenceCondition,
)
from core.events import UnifiedEvent, content_id, epoch_ms
from core.kube.scopes import ScopeKey
from core.records import Hit

SCOPES = frozenset(get_args(Scope))

_ENCODER = msgspec.msgpack.Encoder()
Test = Callable[[UnifiedEvent, str], bool]  # (event, effective intent) -> passes

_NUMERIC = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


def getter(path: str) -> Callable[[UnifiedEvent, str], Any]:
    """A function reading a dotted UnifiedEvent path (`k8s.labels.app`); None when absent."""
    parts = path.split(".")
    if path == "semantic.intent":
        return lambda event, intent: intent
    head = ".".join(parts[:2])
    if len(parts) <= 2 and typing_leaf(path):  # a plain attribute path: one attrgetter call
        read = operator.attrgetter(head)

        def get_attr(event: UnifiedEvent, intent: str) -> Any:
            try:
                return read(event)
            except AttributeError:  # a layer that is None (no k8s, no kubernetes)
                return None

        return get_attr

    def get(event: UnifiedEvent, intent: str) -> Any:
        value: Any = event
        for part in parts:
            if value is None:
                return None
            value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
        return value

    return get


def typing_leaf(path: str) -> bool:
    """True when `path` names a field of a Struct (not a key inside a dict such as k8s.labels)."""
    from agents.patterns import EVENT_FIELDS
    return path in EVENT_FIELDS


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
    if op in ("contains", "not_contains"):
        needle = str(value)
        inside = op == "contains"
        return lambda e, i: (lambda v: v is not None and needle in (v if isinstance(v, (list, dict)) else str(v)))(
            get(e, i)) is inside
    compare = _NUMERIC[op]
    return lambda e, i: (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and compare(v, value))(
        get(e, i))


PredKey = tuple[str, str, Any]  # (field, operator, value made hashable)


def _key(p: Predicate | EventCondition) -> PredKey:
    value = tuple(p.value) if isinstance(p.value, list) else p.value
    return (p.field, p.operator, value)


def _test_of(key: PredKey) -> Test:
    field, op, value = key
    if op == "has_metric":
        return lambda e, i: field in e.metrics
    return compile_test(field, op, list(value) if isinstance(value, tuple) else value)


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
    roles: list[tuple[str, list[PredKey], frozenset[str] | None]]  # (role, tests, required intents)
    window_ms: int
    distinct: Callable[[UnifiedEvent, str], Any] | None = None
    distinct_scope: str = ""  # `distinct` names a scope: count distinct scope keys (see scope_keys)


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
        distinct, distinct_scope = None, ""
        if isinstance(cond, EventCondition):
            roles = [("", [_key(cond)], _intents([cond]))]
            window = WINDOW_MAX_S
        elif isinstance(cond, SequenceCondition):
            roles = [("first", [_key(p) for p in cond.first], _intents(cond.first)),
                     ("then", [_key(p) for p in cond.then], _intents(cond.then))]
            window = cond.within.seconds
        elif isinstance(cond, MetricCondition):
            roles = [("", [(cond.field, "has_metric", None)], None)]
            window = cond.window.seconds
        else:  # count, rate
            assert isinstance(cond, (CountCondition, RateCondition))
            roles = [("", [_key(p) for p in cond.where], _intents(cond.where))]
            window = cond.window.seconds
            if isinstance(cond, CountCondition) and cond.distinct in SCOPES:
                distinct_scope = cond.distinct
            elif isinstance(cond, CountCondition) and cond.distinct:
                distinct = getter(cond.distinct)
        conditions.append(CompiledCondition(index=i, spec=cond, fp=_fingerprint(cond), roles=roles,
                                            window_ms=int(window * 1000), distinct=distinct,
                                            distinct_scope=distinct_scope))
    span = max(c.window_ms for c in conditions)
    return CompiledPattern(pattern=pattern, name=pattern.metadata.name, version=pattern.metadata.version,
                           scope=pattern.spec.scope, conditions=conditions, span_ms=span)


#: fields whose equals/in tests index the catalog (most selective first)
INDEX_FIELDS = ("semantic.intent", "kubernetes.reason", "kubernetes.container_reason", "k8s.kind", "type")
METRICS = ("metrics", None)


class _Entry(msgspec.Struct, gc=False):
    pattern: CompiledPattern
    cond: CompiledCondition
    role: str
    tests: tuple[int, ...]  # indexes into Selector._tests
    series: bool  # count and rate conditions weigh repeated Events by their count
    metric: str


class Selector:
    """The catalog, indexed by intent: `hits(event, store)` is what the match stage calls per event.

    Every distinct test is compiled once and run at most once per event, however many
    conditions share it; the intent test that put a condition in the index is not run again.
    """

    def __init__(self, patterns: Iterable[CompiledPattern]) -> None:
        self.patterns = [p for p in patterns if p.pattern.spec.enabled]
        index: dict[PredKey, int] = {}
        self._tests: list[Test] = []
        # (field, value) -> entries whose tests require field == value; metric entries under METRICS
        self._index: dict[tuple[str, Any], list[_Entry]] = defaultdict(list)
        self._always: list[_Entry] = []

        def entry(pattern: CompiledPattern, cond: CompiledCondition, role: str, keys: list[PredKey]) -> _Entry:
            ids = []
            for key in keys:
                if key not in index:
                    index[key] = len(self._tests)
                    self._tests.append(_test_of(key))
                ids.append(index[key])
            return _Entry(pattern=pattern, cond=cond, role=role, tests=tuple(ids),
                          series=isinstance(cond.spec, (CountCondition, RateCondition)),
                          metric=cond.spec.field if isinstance(cond.spec, MetricCondition) else "")

        for pattern in self.patterns:
            for cond in pattern.conditions:
                for role, keys, _ in cond.roles:
                    if keys and keys[0][1] == "has_metric":
                        self._index[METRICS].append(entry(pattern, cond, role, keys))
                        continue
                    by = next((k for f in INDEX_FIELDS for k in keys if k[0] == f and k[1] in ("equals", "in")), None)
                    if by is None:
                        self._always.append(entry(pattern, cond, role, keys))
                        continue
                    rest = [k for k in keys if k != by]
                    for value in (by[2] if by[1] == "in" else (by[2],)):
                        self._index[(by[0], value)].append(entry(pattern, cond, role, rest))
        used = {field for field, _ in self._index if field != METRICS[0]}
        self._lookups = [(field, getter(field)) for field in INDEX_FIELDS if field in used]

    def candidates(self, event: UnifiedEvent, intent: str) -> list[_Entry]:
        found: list[_Entry] = []
        for field, get in self._lookups:
            value = get(event, intent)
            if value is not None:
                found.extend(self._index.get((field, value), ()))
        if event.metrics:
            found.extend(self._index.get(METRICS, ()))
        found.extend(self._always)
        return found

    def hits(self, event: UnifiedEvent, store: Store, raw: msgspec.Raw | None = None) -> list[Hit]:
        """The hits of one event; `raw` is its MessagePack encoding when the caller has it already."""
        changed = learn(store, event)
        intent = effective_intent(event, changed)
        candidates = self.candidates(event, intent)
        if not candidates:
            return []
        out: list[Hit] = []
        results: dict[int, bool] = {}
        tests = self._tests
        keys_cache: dict[str, list[str]] = {}
        emitted: set[tuple[str, str, str]] = set()  # two conditions with the same tests share entries
        t = 0
        for entry in candidates:
            passed = True
            for i in entry.tests:
                result = results.get(i)
                if result is None:
                    result = results[i] = bool(tests[i](event, intent))
                if not result:
                    passed = False
                    break
            if not passed:
                continue
            scope = entry.pattern.scope
            keys = keys_cache.get(scope)
            if keys is None:
                keys = keys_cache[scope] = scope_keys(scope, event, store)
            if not keys:
                continue
            once = (entry.pattern.name, entry.cond.fp, entry.role)
            if once in emitted:
                continue
            emitted.add(once)
            if not t:
                t = epoch_ms(event.timestamp)
                if raw is None:
                    raw = msgspec.Raw(_ENCODER.encode(event))
            cond = entry.cond
            if cond.distinct_scope:
                distinct = next(iter(scope_keys(cond.distinct_scope, event, store)), "")
            else:
                distinct = "" if cond.distinct is None else str(cond.distinct(event, intent) or "")
            series, count = series_of(event) if entry.series else ("", 1)
            value = event.metrics.get(entry.metric, 0.0) if entry.metric else 0.0
            for key in keys:
                out.append(Hit(pattern=entry.pattern.name, key=key, cond=cond.fp, role=entry.role, t=t, id=event.id,
                               event=raw, distinct=distinct, series=series, count=count, value=value))
        return out


#: intents a Pod's status reports from a terminated container: only news when restarts went up
TERMINATION_INTENTS = frozenset({"oom-kill", "container-failure"})


def effective_intent(event: UnifiedEvent, news: bool) -> str:
    """The intent matching uses (`news` from `membership.learn`). An edit is only an edit when
    content changed: a MODIFIED ConfigMap, Secret or workload whose content is the same (a status
    or scale update) is `observed`. A Pod status that shows the same terminated container again
    (restarts did not go up) is `observed`. Change events (action CHANGE) restate an edit the
    MODIFIED observation already carried, later: they are `observed` too, so a replay at any
    speed counts each edit once, at its own time."""
    kube, k8s = event.kubernetes, event.k8s
    if kube is not None and k8s is not None:
        if kube.action == "CHANGE":
            return "observed"
        if kube.action == "MODIFIED" and k8s.kind in CONTENT_KINDS and not news:
            return "observed"
        if k8s.kind == "Pod" and kube.action != "EVENT" and not news and \
                event.semantic.intent in TERMINATION_INTENTS:
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
    """The scope keys of an event (formats: `core.kube.scopes`); [] if it has none."""
    k8s = event.k8s
    if scope == "cluster":
        return [_CLUSTER]
    if k8s is None:
        return []
    ns = k8s.namespace
    if scope == "namespace":
        return [str(ScopeKey.of_namespace(ns))] if ns else []
    if scope == "object" and k8s.kind in ENDPOINT_KINDS:  # itself, and each pod it lists (ready or not)
        pods = sorted({ref.partition("/")[2] for ref in k8s.refs if ref.startswith("Pod/")})
        return [str(ScopeKey.of_object(k8s.kind, ns, k8s.name)), *(str(ScopeKey.of_object("Pod", ns, p)) for p in pods)]
    if scope == "object":
        return [str(ScopeKey.of_object(k8s.kind, ns, k8s.name))]
    if scope == "node":
        node = node_of(store, event)
        return [str(ScopeKey.of_node(node))] if node else []
    if scope == "owner" and k8s.kind in ENDPOINT_KINDS:  # the workloads of the pods behind a Service
        found = (workload_of(store, ns, "Pod", ref.partition("/")[2]) for ref in k8s.refs if ref.startswith("Pod/"))
        return sorted({str(ScopeKey.of_owner(w[0], ns, w[1])) for w in found if w})
    if scope == "owner":
        workload = workload_of(store, ns, k8s.kind, k8s.name)
        return [str(ScopeKey.of_owner(workload[0], ns, workload[1]))] if workload else []
    if scope == "configmap":
        return [str(ScopeKey.of_config(*ref)) for ref in refs_of(store, event)]
    if scope == "service":
        return [str(ScopeKey.of_service(*svc)) for svc in services_of(store, event)]
    return []


_CLUSTER = str(ScopeKey.cluster())
