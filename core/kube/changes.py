"""What changed in a Kubernetes object, in the terms Tapio reasons about. Pure: no I/O, no clock.

Fed by: the topology stage, with the previous and the new version of an object (a watch MODIFIED
against the last object it saw under that uid). Feeds: the graph (a change node on the object:
"ConfigMap shop/nginx-config: key nginx.conf modified" is the root cause the patterns look for) and
the explanations, which quote `summary` and the KeyChanges.

Tracked, everything else (status, managedFields, resourceVersion alone...) is ignored:
- ConfigMap `data` / `binaryData`: per key, old and new values (truncated to VALUE_CHARS;
  binary values as size and hash);
- Secret `data` / `stringData`: per key, value HASHES only (`secret_hash`), never a value;
- workloads (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob's jobTemplate, and a
  Pod's own spec): per container image, command, args, env (a value's hash unless its name is
  declared safe, `core.kube.redact`; or the valueFrom summary), envFrom,
  resources requests/limits, liveness/readiness/startup probes (compact strings), the pod
  volumes, the replica count, the rollout revision annotation and the pod template's restart stamp
  (`kubectl rollout restart` sets RESTARTED_AT_ANNOTATION: the template is otherwise the same, and
  the new pods read their ConfigMaps and Secrets anew). Keys read like
  `container[nginx].image`, `container[nginx].env.LOG_LEVEL`,
  `container[nginx].resources.limits.memory`, `initContainer[setup].args`, `volume[config]`,
  `replicas`, `revision`, `restartedAt`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any, Literal

import msgspec

from core.kube.owners import WORKLOAD_KINDS
from core.kube.redact import env_value, is_hash, secret_value, value_hash

VALUE_CHARS = 500
HASH_CHARS = 16
SUMMARY_VALUE_CHARS = 40
BINARY = "binary "  # prefix of a binaryData value's stand-in (size and hash)
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
#: the tracked key of the template's restart stamp
RESTARTED_AT = "restartedAt"
WORKLOADS = WORKLOAD_KINDS | {"Pod"}  # a Pod's own spec is tracked like a workload's template
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_PROBE_TIMINGS = (("initialDelaySeconds", "delay"), ("periodSeconds", "period"), ("timeoutSeconds", "timeout"),
                  ("failureThreshold", "failures"), ("successThreshold", "successes"))


class KeyChange(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One tracked key; `old` / `new` are values (truncated) or, for Secrets, `sha256:<prefix>` hashes."""

    key: str
    change: Literal["added", "removed", "modified"]
    old: str | None = None
    new: str | None = None


class ObjectChange(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    uid: str
    name: str
    namespace: str
    resource_version: str
    revision: str | None
    changes: list[KeyChange]
    summary: str


def secret_hash(value: bytes, *, salt: str) -> str:
    """`sha256:` + a hex prefix of sha256(salt NUL value); the salt is `namespace/name/key`, so equal
    values in different Secrets do not look alike. Compare old and new hashes, never values."""
    return value_hash(value, salt=salt)


def _truncate(value: str) -> str:
    return value if len(value) <= VALUE_CHARS else f"{value[:VALUE_CHARS]}... ({len(value)} chars)"


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


# -- flattening: object -> {key: value} of what is tracked ----------------------------------


def _configmap_values(obj: dict[str, Any]) -> dict[str, str]:
    values = {k: _truncate(_compact(v)) for k, v in (obj.get("data") or {}).items()}
    for key, encoded in (obj.get("binaryData") or {}).items():
        raw = _b64(encoded)
        values[key] = f"{BINARY}{len(raw)} bytes sha256:{hashlib.sha256(raw).hexdigest()[:HASH_CHARS]}"
    return values


def _secret_values(obj: dict[str, Any]) -> dict[str, str]:
    meta = obj.get("metadata") or {}
    prefix = f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"
    # a Secret a reader already redacted carries hashes of the same salt: they are kept as they are
    values = {k: secret_value(v, salt=f"{prefix}/{k}", encoded=True) for k, v in (obj.get("data") or {}).items()}
    values.update({k: secret_value(_compact(v), salt=f"{prefix}/{k}", encoded=False)
                   for k, v in (obj.get("stringData") or {}).items()})
    return values


def _b64(value: Any) -> bytes:
    text = _compact(value)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return text.encode()


def _probe(probe: dict[str, Any]) -> str:
    if "exec" in probe:
        how = "exec " + " ".join(map(str, (probe["exec"] or {}).get("command") or []))
    elif "httpGet" in probe:
        h = probe["httpGet"] or {}
        how = f"httpGet {h.get('scheme') or 'HTTP'} {h.get('host') or ''}:{h.get('port')}{h.get('path') or ''}"
    elif "tcpSocket" in probe:
        how = f"tcpSocket :{(probe['tcpSocket'] or {}).get('port')}"
    elif "grpc" in probe:
        g = probe["grpc"] or {}
        how = f"grpc :{g.get('port')}" + (f" {g['service']}" if g.get("service") else "")
    else:
        how = "none"
    timings = [f"{short}={probe[k]}" for k, short in _PROBE_TIMINGS if k in probe]
    return " ".join([how, *timings])


def _env_value(env: dict[str, Any], namespace: str) -> str:
    if "value" in env or "valueFrom" not in env:
        value = env.get("value")
        return env_value(str(env.get("name") or ""), value, namespace=namespace) if value not in (None, "") else ""
    source = env.get("valueFrom") or {}
    for field, inner in (("configMapKeyRef", ("name", "key")), ("secretKeyRef", ("name", "key")),
                         ("fieldRef", ("fieldPath",)), ("resourceFieldRef", ("containerName", "resource"))):
        if field in source:
            ref = source[field] or {}
            return f"{field} " + "/".join(str(ref.get(k)) for k in inner if ref.get(k))
    return _compact(source)


def _volume(volume: dict[str, Any]) -> str:
    for field, name_key in (("configMap", "name"), ("secret", "secretName"),
                            ("persistentVolumeClaim", "claimName"), ("hostPath", "path")):
        if field in volume:
            return f"{field}:{(volume[field] or {}).get(name_key)}"
    others = sorted(k for k in volume if k != "name")
    return others[0] if others else "none"


def _pod_spec(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return (spec.get("template") or {}).get("spec") or {}


def _template_meta(kind: str, spec: dict[str, Any]) -> Any:
    if kind == "Pod":
        return {}
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return (spec.get("template") or {}).get("metadata") or {}


def _workload_values(obj: dict[str, Any]) -> dict[str, str]:
    kind, meta, spec = obj.get("kind") or "", obj.get("metadata") or {}, obj.get("spec") or {}
    namespace = str(meta.get("namespace") or "")
    values: dict[str, str] = {}
    revision = (meta.get("annotations") or {}).get(REVISION_ANNOTATION)
    if revision is not None:
        values["revision"] = str(revision)
    if kind != "Pod" and spec.get("replicas") is not None:
        values["replicas"] = str(spec["replicas"])
    template = _template_meta(kind, spec)
    annotations = template.get("annotations") if isinstance(template, dict) else None
    restarted = annotations.get(RESTARTED_AT_ANNOTATION) if isinstance(annotations, dict) else None
    if restarted is not None:
        values[RESTARTED_AT] = str(restarted)
    pod_spec = _pod_spec(kind, spec)
    for group, prefix in (("initContainers", "initContainer"), ("containers", "container")):
        for container in pod_spec.get(group) or []:
            p = f"{prefix}[{container.get('name') or ''}]"
            for field in ("image", "command", "args"):
                if container.get(field) is not None:
                    values[f"{p}.{field}"] = _compact(container[field])
            for env in container.get("env") or []:
                values[f"{p}.env.{env.get('name')}"] = _env_value(env, namespace)
            if container.get("envFrom"):
                values[f"{p}.envFrom"] = ", ".join(
                    f"{(e.get('prefix') or '')}{field}:{(e.get(field) or {}).get('name')}"
                    for e in container["envFrom"] for field in ("configMapRef", "secretRef") if field in e)
            for level in ("requests", "limits"):
                for resource, amount in ((container.get("resources") or {}).get(level) or {}).items():
                    values[f"{p}.resources.{level}.{resource}"] = _compact(amount)
            for probe in PROBES:
                if container.get(probe):
                    values[f"{p}.{probe}"] = _probe(container[probe])
    for volume in pod_spec.get("volumes") or []:
        values[f"volume[{volume.get('name')}]"] = _volume(volume)
    return {k: _truncate(v) for k, v in values.items()}


def tracked_values(obj: dict[str, Any]) -> dict[str, str] | None:
    """The tracked keys of `obj` and their values (hashes for Secrets); None for untracked kinds."""
    kind = obj.get("kind") or ""
    if kind == "ConfigMap":
        return _configmap_values(obj)
    if kind == "Secret":
        return _secret_values(obj)
    if kind in WORKLOADS:
        return _workload_values(obj)
    return None


# -- diff ---------------------------------------------------------------------------------


REVERTED = "Reverted"
"""The reason of a change event whose object went back to the version it had before its previous
edit (`kubectl rollout undo`, a ConfigMap restored): a remediation, not a cause."""


def diff_objects(old: dict[str, Any] | None, new: dict[str, Any]) -> ObjectChange | None:
    """What Tapio tracks that changed from `old` to `new` (old None: everything is added), or None.

    `old` and `new` are one object's versions (same kind; the caller matches them by uid).
    """
    new_values = tracked_values(new)
    if new_values is None:
        return None
    old_values = (tracked_values(old) or {}) if old is not None else {}
    changes = []
    for key in sorted(old_values.keys() | new_values.keys()):
        before, after = old_values.get(key), new_values.get(key)
        if before == after:
            continue
        change: Literal["added", "removed", "modified"] = (
            "added" if before is None else "removed" if after is None else "modified")
        changes.append(KeyChange(key=key, change=change, old=before, new=after))
    if not changes:
        return None
    meta = new.get("metadata") or {}
    kind, name, namespace = new.get("kind") or "", meta.get("name") or "", meta.get("namespace") or ""
    annotations, status = meta.get("annotations") or {}, new.get("status") or {}
    revision = annotations.get(REVISION_ANNOTATION) or status.get("updateRevision")
    return ObjectChange(
        kind=kind, uid=meta.get("uid") or "", name=name, namespace=namespace,
        resource_version=str(meta.get("resourceVersion") or ""),
        revision=str(revision) if revision is not None else None,
        changes=changes, summary=summarize(kind, namespace, name, changes),
    )


def summarize(kind: str, namespace: str, name: str, changes: list[KeyChange], *, limit: int = 4) -> str:
    """One sentence: `Deployment shop/nginx: container[nginx].image modified (nginx:1.25 -> nginx:1.26)`.

    Values are quoted only when short, on one line, and not hashes (Secrets, binaryData, env values);
    past `limit` keys, `and N more`.
    """
    noun = "key " if kind in ("ConfigMap", "Secret") else ""
    parts = []
    for change in changes[:limit]:
        part = f"{noun}{change.key} {change.change}"
        shown = [v for v in (change.old, change.new) if v is not None]
        if kind != "Secret" and shown and all(len(v) <= SUMMARY_VALUE_CHARS and "\n" not in v
                                              and not v.startswith(BINARY) and not is_hash(v) for v in shown):
            part += f" ({change.old} -> {change.new})" if change.change == "modified" else f" ({shown[0]})"
        parts.append(part)
    if len(changes) > limit:
        parts.append(f"and {len(changes) - limit} more")
    where = f"{namespace}/{name}" if namespace else name
    return f"{kind} {where}: {', '.join(parts)}"
