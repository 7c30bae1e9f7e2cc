"""No secret value leaves a reader: Secret data and environment values become hashes. Pure: no I/O, no clock.

Fed by: `core.kube.objects.raw_event_from_object`, the one place every reader of Kubernetes objects
(the live watchers, `tapio replay`, `tapio analyze`'s bundles, kubectl text and loose files) builds
its RawEvents, and the readers' dead letters (`redact_fragment`). Feeds: everything downstream
(JetStream, Kafka, the graph, change records): it only ever sees what this module left.

What is replaced, keys and names kept, values by `sha256:<16 hex>` (`value_hash`):
- a Secret's `data` and `stringData` values (of the decoded bytes: `data` and `stringData` of the same
  value hash alike, salted with `namespace/name/key`), so "the Secret changed" still shows;
- every `env` entry's `value` (a list of `{name, value}` anywhere in the object: Pod specs, workload
  and CronJob templates, custom resources alike), salted with `namespace/env/<name>`, so a Deployment,
  its ReplicaSets and its Pods hash a value alike and an edit still shows as modified; unless the
  variable's name is declared safe (`secrets.safe_env` in the settings, `use_safe_env_names`).
  `valueFrom` references (a secretKeyRef's Secret and key names) are not secret and stay;
- the `kubectl.kubernetes.io/last-applied-configuration` annotation, which repeats the object as it
  was applied: read as JSON and redacted the same way (a Secret's is hashed whole if unreadable).

A value that already is such a hash is kept (the live collector redacts before it keeps objects, and
the choke point sees them again), so redacting twice changes nothing. The hash is not keyed: a short,
guessable value (a 4-digit PIN) can be found by trying them all; what it prevents is reading a value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

HASH_CHARS = 16
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
#: variable names whose values are shown as they are by default (`secrets.safe_env` replaces the list)
DEFAULT_SAFE_ENV = ("LOG_LEVEL", "LOG_FORMAT", "TZ", "LANG", "NODE_ENV", "GOMAXPROCS")
_HASHED = re.compile(r"sha256:[0-9a-f]{16,64}")

_safe_env: frozenset[str] = frozenset(DEFAULT_SAFE_ENV)


def use_safe_env_names(names: Iterable[str]) -> None:
    """The environment variables whose values are not secret, for every reader of this process
    (the app wires `secrets.safe_env` here when it loads the settings)."""
    global _safe_env
    _safe_env = frozenset(str(n) for n in names)


def safe_env_names() -> frozenset[str]:
    return _safe_env


def value_hash(value: bytes, *, salt: str) -> str:
    """`sha256:` + a hex prefix of sha256(salt NUL value). Compare hashes, never values."""
    return "sha256:" + hashlib.sha256(salt.encode() + b"\x00" + value).hexdigest()[:HASH_CHARS]


def is_hash(value: object) -> bool:
    return isinstance(value, str) and _HASHED.fullmatch(value) is not None


def env_value(name: str, value: object, *, namespace: str) -> str:
    """What an env var's value may show: itself when `name` is safe, else its hash."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if name in _safe_env or is_hash(text):
        return text
    return value_hash(text.encode(), salt=f"{namespace}/env/{name}")


def secret_value(value: object, *, salt: str, encoded: bool) -> str:
    """The hash of one Secret value: of its decoded bytes when `encoded` (`data`), else of its text."""
    if is_hash(value):
        return str(value)
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    raw = text.encode()
    if encoded:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            pass  # not base64: hash the text as it is
    return value_hash(raw, salt=salt)


def redact_object(obj: Any, *, namespace: str | None = None) -> Any:
    """`obj` with no secret value (see the module docstring); `obj` itself when nothing needed it.

    Never raises, whatever the shape; the input is not modified (changed parts are copies).
    `namespace` salts the hashes when the object does not name its own (a last-applied annotation).
    """
    if not isinstance(obj, dict):
        return _walk(obj, namespace or "")
    if obj.get("kind") == "Event":
        return obj  # the bulk of most inputs: an Event names objects, it holds no env nor data
    meta: dict[str, Any] = obj["metadata"] if isinstance(obj.get("metadata"), dict) else {}
    own_ns = meta.get("namespace") if isinstance(meta.get("namespace"), str) else ""
    ns = own_ns or namespace or ""
    out = obj
    for key, value in obj.items():  # metadata and status hold no env list: not walked (a Pod's status is long)
        if key not in ("metadata", "status") and (new := _walk(value, ns)) is not value:
            out = out if out is not obj else dict(obj)
            out[key] = new
    if obj.get("kind") == "Secret":
        out = _secret(out if out is not obj else dict(obj), ns, meta)
    annotations = meta.get("annotations")
    if isinstance(annotations, dict) and isinstance(annotations.get(LAST_APPLIED), str):
        applied = _last_applied(annotations[LAST_APPLIED], ns, secret=obj.get("kind") == "Secret",
                                salt=f"{ns}/{meta.get('name') or ''}")
        if applied != annotations[LAST_APPLIED]:
            out = out if out is not obj else dict(obj)
            out_meta: dict[str, Any] = out["metadata"] if isinstance(out.get("metadata"), dict) else meta
            out["metadata"] = {**out_meta, "annotations": {**annotations, LAST_APPLIED: applied}}
    return out


def redact_fragment(value: Any) -> Any:
    """What a dead letter may quote of an unusable object: the object redacted."""
    return redact_object(value)


def _secret(obj: dict[str, Any], ns: str, meta: dict[str, Any]) -> dict[str, Any]:
    prefix = f"{ns}/{meta.get('name') or ''}"
    for field in ("data", "stringData"):
        values = obj.get(field)
        if isinstance(values, dict):
            obj[field] = {str(k): secret_value(v, salt=f"{prefix}/{k}", encoded=field == "data")
                          for k, v in values.items()}
        elif values is not None:  # not a mapping: nothing of it is kept
            obj[field] = secret_value(values, salt=f"{prefix}/{field}", encoded=False)
    return obj


def _last_applied(text: str, ns: str, *, secret: bool, salt: str) -> str:
    try:
        applied = json.loads(text)
    except ValueError:
        return secret_value(text, salt=f"{salt}/{LAST_APPLIED}", encoded=False) if secret else text
    if secret and not isinstance(applied, dict):
        return secret_value(text, salt=f"{salt}/{LAST_APPLIED}", encoded=False)
    redacted = redact_object(applied, namespace=ns)
    if redacted is applied:
        return text
    return json.dumps(redacted, separators=(",", ":"), sort_keys=True)


def _walk(node: Any, ns: str) -> Any:
    """`node` with every env list's values hashed; the same object when there was none to hash."""
    if isinstance(node, dict):
        out: dict[str, Any] | None = None
        for key, value in node.items():
            new = _env_list(value, ns) if key == "env" and isinstance(value, list) else _walk(value, ns)
            if new is not value:
                if out is None:
                    out = dict(node)
                out[key] = new
        return node if out is None else out
    if isinstance(node, list):
        items: list[Any] | None = None
        for i, value in enumerate(node):
            new = _walk(value, ns)
            if new is not value:
                if items is None:
                    items = list(node)
                items[i] = new
        return node if items is None else items
    return node


def _env_list(entries: list[Any], ns: str) -> list[Any]:
    out: list[Any] | None = None
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "value" not in entry or entry["value"] is None:
            continue
        name = str(entry.get("name") or "")
        if name in _safe_env:
            continue
        hashed = env_value(name, entry["value"], namespace=ns)
        if hashed != entry["value"]:
            if out is None:
                out = list(entries)
            out[i] = {**entry, "value": hashed}
    return entries if out is None else out
