"""What a Kubernetes reason, container state or object change means: intent, category, severity.

Fed by: `core/kube/vocabulary/semantics.yaml` (data: a new reason is a line there, not code; it also
lists what node collectors say their own events mean, so that patterns may name those intents) and
`core/kube/vocabulary/log_signals.yaml` (the intents container-log lines can have).
Feeds: the normalize stage (`agents.normalize`), and pattern lint (`agents.patterns`), which
accepts only intents named here.
"""

from __future__ import annotations

from functools import lru_cache

import msgspec
import yaml

from core.events import Severity
from core.kube.log_signals import signal_table
from core.kube.vocabulary import vocabulary_file


class Meaning(msgspec.Struct, frozen=True, array_like=True):
    intent: str
    category: str
    severity: Severity = "info"


class SemanticTable(msgspec.Struct, frozen=True):
    reasons: dict[str, Meaning]
    message_hints: dict[str, Meaning]
    changes: dict[str, Meaning]
    container_reasons: dict[str, Meaning]
    default: Meaning
    node_reasons: dict[str, Meaning] = {}  # what node collectors say of their own events (not read by normalize)


@lru_cache(maxsize=1)
def semantic_table() -> SemanticTable:
    text = vocabulary_file("semantics.yaml").read_text()
    return msgspec.convert(yaml.safe_load(text), SemanticTable)


_SEVERE = frozenset({"warning", "error", "critical"})


@lru_cache(maxsize=1)
def failure_intents() -> frozenset[str]:
    """The intents of failures the vocabulary names (an image that cannot be pulled, a crash loop, an
    OOM kill, a probe failing...): those of Event reasons, container reasons and message hints of
    severity warning or worse. A Warning whose reason the vocabulary does not know (a kubelet's
    MissingClusterDNS) is `observed`, not one of them."""
    table = semantic_table()
    return frozenset(m.intent for section in (table.reasons, table.container_reasons, table.message_hints)
                     for m in section.values() if m.severity in _SEVERE)


@lru_cache(maxsize=1)
def known_intents() -> frozenset[str]:
    """Every intent an event can have: semantics.yaml's (node collectors' own included), and the
    container-log signals'."""
    table = semantic_table()
    rows = [table.default, *(m for section in (table.reasons, table.message_hints, table.changes,
                                               table.container_reasons, table.node_reasons) for m in section.values())]
    return frozenset(row.intent for row in rows) | {s.intent for s in signal_table().signals}
