"""Behavior patterns as data: the `behavior.tapio.io/v1` BehaviorPattern schema and its checks.

Fed by: `patterns/*.yaml` (one pattern per file) and `core/kube/vocabulary/semantics.yaml` (the intents the
normalize stage really produces, so a pattern cannot wait for an intent that never comes).
Feeds: the match stage (a windowed matcher evaluates `spec.conditions` over UnifiedEvents,
grouped by a topology scope) and the predict stage (`spec.predictions` become `Prediction`s).

Pure: msgspec Structs validated on load, no Faust, no I/O but `core/kube/vocabulary/semantics.yaml`. The engine
knows condition TYPES (event, count, rate, sequence, metric), never pattern names. Reading
files, with errors that name file, line and field, is `agents.pattern_files`.

What the matcher does with a pattern (agents/hits.py, agents/windows.py, agents/match.py):
`spec.scope` is the join. Each event is keyed to the scopes it belongs to: `object`
(the object itself), `owner` (its workload: a pod's ReplicaSet resolved to its Deployment),
`node`, `namespace`, `configmap` (a ConfigMap/Secret, or every one a pod uses), `service` (every
Service selecting the pod) or `cluster` (key formats: `core.kube.scopes`); so "pods that mount the
changed ConfigMap" are the `then` events keyed to that ConfigMap. Every condition's `group_by` must therefore equal
`spec.scope`, and a sequence's `join` must name the relation the scope stands for (JOIN_SCOPE).
With `match: all` every required condition holds at the same event time t in one scope key
(with `any`, one); a condition looks at (t - window, t], a sequence at a `first` event and its
`then` events within `within`; optional conditions add `boost` to the confidence. `count` and
`rate` count occurrences: a repeated Kubernetes Event adds the increase of its `count` (a
recording that holds only the last observation, x37, counts 37), and `distinct` counts distinct
values instead. Windows are at most 5m unless a condition sets `long_window: true`. A prediction
applies when its `when` tests pass on an event of the match and its `unless` tests pass on none;
its message fills `{scope}` (the scope key without its type), `{count}` (what the first required
condition counted), `{pods}` (the distinct pods among the events it counted), `{namespace}` and
`{name}` (of the newest matched event), `{lead}` (how long the first link of a sequence's cause came
before its effect: "4.2 s", event time; empty without a sequence), `{query}` (the DNS name the first
linked cause asked for, else of the first matched event that has one; empty without), `{peer}` (the
address and port the first linked cause connected to, "10.0.0.7:8080", else of the first matched
event that has one; empty without); `{count:one/many}` and
`{pods:one/many}` write the words that agree with the number.
"""

from __future__ import annotations

import re
import string
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from core.events import UnifiedEvent
from core.kube.scopes import Scope
from core.kube.semantics import known_intents

WINDOW_MAX_S = 300.0
"""The dataflow's windows hold 5 minutes of event time; longer needs `long_window: true`."""
LONG_WINDOW_MAX_S = 86400.0
PLACEHOLDERS = frozenset({"scope", "count", "pods", "namespace", "name", "lead", "query", "peer"})
NUMBERS = frozenset({"count", "pods"})
"""Placeholders that hold a number: `{pods:pod/pods}` writes the word that agrees with it."""

Operator = Literal["equals", "not_equals", "in", "not_in", "contains", "not_contains",
                   "gt", "gte", "lt", "lte", "exists"]
Comparison = Literal["gt", "gte", "lt", "lte"]
Join = Literal["mounts", "owns", "same_node", "same_owner", "same_namespace", "selected_by_same_service"]
JOINS: dict[str, str] = {
    "mounts": "B's pod mounts (volume, envFrom, key ref) the ConfigMap or Secret A is about",
    "owns": "A is a workload (Deployment, StatefulSet...) that owns B's pod, through a ReplicaSet or not",
    "same_node": "A and B run on the same node (k8s.node, or A is the Node itself)",
    "same_owner": "A and B share their controlling owner (ReplicaSet, StatefulSet, Job...)",
    "same_namespace": "A and B are in the same namespace",
    "selected_by_same_service": "a Service selects both A's pod and B's pod",
}
JOIN_SCOPE: dict[str, tuple[str, ...]] = {
    "mounts": ("configmap",), "owns": ("owner",), "same_owner": ("owner",), "same_node": ("node",),
    "same_namespace": ("namespace",), "selected_by_same_service": ("service",),
}
NUMERIC_OPS = frozenset({"gt", "gte", "lt", "lte"})
Scalar = str | int | float | bool
Name = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
SemVer = Annotated[str, msgspec.Meta(pattern=r"^\d+\.\d+\.\d+$")]
Snake = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]*$")]
Confidence = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
_METRIC = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class PatternError(Exception):
    """A pattern file that cannot be used: `file:line: field: message`."""

    def __init__(self, file: str | Path, line: int, *, field: str = "", message: str) -> None:
        self.file, self.line, self.field, self.message = str(file), line, field, message
        super().__init__(f"{self.file}:{line}: {field + ': ' if field else ''}{message}")


class _Text:
    """A string with meaning, kept as written (so a pattern round-trips) and checked on load."""

    __slots__ = ("text",)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.text!r})"


class Duration(_Text):
    """A duration written `30s`, `5m`, `1h` (or `500ms`); `.seconds` is what a matcher uses."""

    __slots__ = ("seconds",)

    def __init__(self, text: str) -> None:
        found = _DURATION.match(text) if isinstance(text, str) else None
        if not found or float(found[1]) <= 0:
            raise ValueError(f"expected a duration like 30s, 5m or 1h, got {text!r}")
        self.text, self.seconds = text, float(found[1]) * _UNIT_S[found[2]]


class Template(_Text):
    """A message that may use only the `{scope}`, `{count}`, `{pods}`, `{namespace}`, `{name}`, `{lead}`,
    `{query}`, `{peer}` placeholders.

    A number's placeholder with `singular/plural` after a colon writes the words that agree with the
    number instead of the number: "{pods} failing {pods:pod mounts/pods mount} it" reads "1 failing
    pod mounts it" or "3 failing pods mount it".
    """

    __slots__ = ("parts",)

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise ValueError(f"expected a string, got {type(text).__name__}")
        try:
            parts = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise ValueError(f"bad template: {exc}") from None
        for _, field, spec, conv in parts:
            if field is None:
                continue
            if field not in PLACEHOLDERS or conv:
                raise ValueError(f"unknown placeholder {{{field}}}: use {choices_text(PLACEHOLDERS)}")
            if spec and (field not in NUMBERS or spec.count("/") != 1):
                raise ValueError(f"{{{field}:{spec}}}: only {choices_text(NUMBERS)} take a form, "
                                 f"written singular/plural ({{pods:pod is/pods are}})")
        self.text, self.parts = text, parts

    def render(self, **values: object) -> str:
        out: list[str] = []
        for literal, field, spec, _ in self.parts:
            out.append(literal)
            if field is None:
                continue
            value = values.get(field, "")
            if spec:
                one, _, many = spec.partition("/")
                out.append(one if value == 1 else many)
            else:
                out.append(str(value))
        return "".join(out)


class _Base(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    pass


class Predicate(_Base, kw_only=True):
    """One test on one UnifiedEvent field (dotted path, e.g. `kubernetes.reason`, `k8s.labels.app`)."""

    field: str
    operator: Operator
    value: Scalar | list[Scalar] | None = None


class _Condition(_Base, tag_field="type", kw_only=True):
    """`required: false` does not gate the match; when it holds, `boost` is added to each confidence."""

    required: bool = True
    boost: Annotated[float, msgspec.Meta(ge=0.0, le=0.5)] = 0.0


class EventCondition(_Condition, tag="event", kw_only=True):
    """At least one event in the scope's window satisfies field/operator/value."""

    field: str
    operator: Operator
    value: Scalar | list[Scalar] | None = None


class CountCondition(_Condition, tag="count", kw_only=True):
    """At least `at_least` events matching every `where` test within `window`, per `group_by` scope.

    With `distinct` (a field path), count distinct values of that field instead (3 pods, not 3 events);
    `distinct` may also name a scope (`owner`, `node`, ...): distinct scope keys, so `distinct: owner`
    counts workloads as membership resolves them (a Job's retries are one, a bare pod its own).
    """

    where: Annotated[list[Predicate], msgspec.Meta(min_length=1)]
    at_least: PositiveInt
    window: Duration = Duration("5m")
    group_by: Scope | None = None  # the pattern's scope; when given it must equal spec.scope
    distinct: str = ""
    long_window: bool = False


class RateCondition(_Condition, tag="rate", kw_only=True):
    """Events matching `where`, per minute averaged over `window`, compared with `per_minute`."""

    where: Annotated[list[Predicate], msgspec.Meta(min_length=1)]
    operator: Comparison
    per_minute: Annotated[float, msgspec.Meta(gt=0)]
    window: Duration = Duration("5m")
    group_by: Scope | None = None  # the pattern's scope; when given it must equal spec.scope
    long_window: bool = False


class SequenceCondition(_Condition, tag="sequence", kw_only=True):
    """An event matching `first`, then at least `at_least` events matching `then` within `within`,
    the later ones related to the first through the topology when `join` is set (see JOINS)."""

    first: Annotated[list[Predicate], msgspec.Meta(min_length=1)]
    then: Annotated[list[Predicate], msgspec.Meta(min_length=1)]
    within: Duration
    join: Join | None = None
    at_least: PositiveInt = 1
    long_window: bool = False


class MetricCondition(_Condition, tag="metric", kw_only=True):
    """A metric sample (`memory.usage_percent`) compared with `value` for all of `window`, per scope."""

    field: str
    operator: Comparison
    value: float
    window: Duration = Duration("5m")
    group_by: Scope | None = None  # the pattern's scope; when given it must equal spec.scope
    long_window: bool = False


Condition = EventCondition | CountCondition | RateCondition | SequenceCondition | MetricCondition
CONDITION_TYPES = ("event", "count", "rate", "sequence", "metric")


class PredictionSpec(_Base, kw_only=True):
    type: Snake
    confidence_base: Confidence
    time_horizon: Duration
    message: Template
    impact: list[Snake] = []
    remediation: Template = Template("")
    when: list[Predicate] = []  # applies only if an event of the match passes every test
    unless: list[Predicate] = []  # applies only if no event of the match passes every test


class Metadata(_Base, kw_only=True):
    name: Name
    version: SemVer
    description: str = ""
    labels: dict[str, str] = {}


class Spec(_Base, kw_only=True):
    enabled: bool = True
    priority: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 50
    scope: Scope = "namespace"
    match: Literal["all", "any"] = "all"
    conditions: Annotated[list[Condition], msgspec.Meta(min_length=1)]
    predictions: Annotated[list[PredictionSpec], msgspec.Meta(min_length=1)]


class BehaviorPattern(_Base, kw_only=True):
    """One pattern file. `spec.scope` keys a match (and fills `{scope}`); `spec.match` says whether
    all conditions or any one must hold in the same scope's window."""

    apiVersion: Literal["behavior.tapio.io/v1"]
    kind: Literal["BehaviorPattern"]
    metadata: Metadata
    spec: Spec


CHOICES = {"operator": Operator, "group_by": Scope, "scope": Scope, "join": Join, "match": Literal["all", "any"],
            "apiVersion": Literal["behavior.tapio.io/v1"], "kind": Literal["BehaviorPattern"]}


def choices_text(values: Any) -> str:
    return ", ".join(sorted(values) if isinstance(values, (set, frozenset)) else values)


def dec_hook(type_: type, obj: Any) -> Any:
    if type_ in (Duration, Template):
        return type_(obj)
    raise NotImplementedError(f"cannot decode {type_}")


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, (Duration, Template)):
        return obj.text
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


def to_builtins(pattern: BehaviorPattern) -> dict[str, Any]:
    """The pattern as plain data (durations and templates as written), ready for `yaml.safe_dump`."""
    return msgspec.to_builtins(pattern, enc_hook=_enc_hook)


# --- event fields ------------------------------------------------------------------------


def _event_fields(root: type = UnifiedEvent, prefix: str = "") -> Iterator[tuple[str, type]]:
    """(dotted path, leaf type) of every UnifiedEvent field; a dict field yields `path.*`."""
    for name, hint in typing.get_type_hints(root).items():
        args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        leaf = args[0] if len(args) == 1 else hint
        path = f"{prefix}{name}"
        if isinstance(leaf, type) and issubclass(leaf, msgspec.Struct):
            yield from _event_fields(leaf, path + ".")
        elif typing.get_origin(leaf) is dict:
            yield f"{path}.*", str
        else:
            yield path, leaf


EVENT_FIELDS: dict[str, Any] = dict(_event_fields())


def field_type(path: str) -> Any | None:
    """The type of a UnifiedEvent field path, None if the path does not exist."""
    if path in EVENT_FIELDS:
        return EVENT_FIELDS[path]
    head, _, key = path.rpartition(".")
    return EVENT_FIELDS.get(f"{head}.*") if key else None


# --- checks msgspec cannot express -------------------------------------------------------


def _check_predicate(p: Predicate | EventCondition, at: str, *, intents: frozenset[str]) -> Iterator[tuple[str, str]]:
    ftype = field_type(p.field)
    if ftype is None:
        yield f"{at}.field", (f"not a UnifiedEvent field: {p.field!r} "
                              "(e.g. semantic.intent, kubernetes.reason, k8s.kind)")
        return
    op, value = p.operator, p.value
    if op == "exists":
        if value not in (None, True, False):
            yield f"{at}.value", "exists takes no value (or true/false)"
    elif value is None:
        yield f"{at}.value", f"{op} needs a value"
    elif op in ("in", "not_in") and (not isinstance(value, list) or not value):
        yield f"{at}.value", f"{op} needs a non-empty list, got {value!r}"
    elif op not in ("in", "not_in") and isinstance(value, list):
        yield f"{at}.value", f"{op} needs one value, not a list (use in / not_in)"
    elif op in NUMERIC_OPS and ftype not in (int, float):
        yield f"{at}.operator", f"{op} compares numbers; {p.field} is not numeric"
    elif op in NUMERIC_OPS and (isinstance(value, bool) or not isinstance(value, (int, float))):
        yield f"{at}.value", f"{op} needs a number, got {value!r}"
    elif p.field == "semantic.intent" and op in ("equals", "not_equals", "in", "not_in"):
        for intent in value if isinstance(value, list) else [value]:
            if intent not in intents:
                yield f"{at}.value", (f"unknown intent {intent!r} "
                                      f"(core/kube/vocabulary/semantics.yaml has {choices_text(intents)})")


def check(pattern: BehaviorPattern, *, intents: frozenset[str] | None = None) -> list[tuple[str, str]]:
    """Semantic errors as (field path, message): fields, operator/value pairs, intents, windows."""
    intents = known_intents() if intents is None else intents
    errors: list[tuple[str, str]] = []
    for i, cond in enumerate(pattern.spec.conditions):
        at = f"spec.conditions[{i}]"
        if isinstance(cond, EventCondition):
            errors += _check_predicate(cond, at, intents=intents)
            continue
        if isinstance(cond, MetricCondition):
            if not _METRIC.match(cond.field):
                errors.append((f"{at}.field", f"expected a metric name like memory.usage_percent, got {cond.field!r}"))
        lists = {"where": getattr(cond, "where", [])} if not isinstance(cond, SequenceCondition) \
            else {"first": cond.first, "then": cond.then}
        for key, preds in lists.items():
            for j, pred in enumerate(preds):
                errors += _check_predicate(pred, f"{at}.{key}[{j}]", intents=intents)
        if isinstance(cond, CountCondition) and cond.distinct and field_type(cond.distinct) is None \
                and cond.distinct not in typing.get_args(Scope):
            errors.append((f"{at}.distinct", f"not a UnifiedEvent field nor a scope: {cond.distinct!r}"))
        group_by = getattr(cond, "group_by", None)
        if group_by is not None and group_by != pattern.spec.scope:
            errors.append((f"{at}.group_by", f"{group_by} differs from spec.scope {pattern.spec.scope}: a pattern's "
                                             f"conditions meet in its scope (drop group_by, or change spec.scope)"))
        if isinstance(cond, SequenceCondition) and cond.join and pattern.spec.scope not in JOIN_SCOPE[cond.join]:
            errors.append((f"{at}.join", f"{cond.join} joins through scope {JOIN_SCOPE[cond.join][0]}, "
                                         f"but spec.scope is {pattern.spec.scope}"))
        key = "within" if isinstance(cond, SequenceCondition) else "window"
        window, limit = getattr(cond, key), LONG_WINDOW_MAX_S if cond.long_window else WINDOW_MAX_S
        if window.seconds > limit:
            hint = "" if cond.long_window else " (the dataflow's windows are 5m of event time; set long_window: true)"
            errors.append((f"{at}.{key}", f"{window.text} is longer than {limit:g}s{hint}"))
    if not any(cond.required for cond in pattern.spec.conditions):
        errors.append(("spec.conditions", "at least one condition must be required"))
    for i, pred in enumerate(pattern.spec.predictions):
        for key in ("when", "unless"):
            for j, test in enumerate(getattr(pred, key)):
                errors += _check_predicate(test, f"spec.predictions[{i}].{key}[{j}]", intents=intents)
        if pred.time_horizon.seconds > LONG_WINDOW_MAX_S:
            errors.append((f"spec.predictions[{i}].time_horizon", f"{pred.time_horizon.text} is longer than 24h"))
    return errors
