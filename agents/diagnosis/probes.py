"""Probes that fail: readiness (not Ready, no traffic), liveness (restarts), startup (never starts).

Fed by: the kubelet's `Unhealthy` Events ("Readiness probe failed: ...", "Liveness probe failed:
...", "Startup probe failed: ..."), its `Killing` Events ("Container web failed liveness probe, will
be restarted"), and the pod's container statuses (ready, restarts). Feeds: Diagnoses of family
`probes`, naming the probe, its container and what the probe got (connection refused, a timeout,
an HTTP status, an exec exit code).

Failures only while a container starts, followed by it being ready, are a start-up transient.
"""

from __future__ import annotations

import re

from agents.diagnosis.model import Diagnosis, from_event, from_state, in_namespace
from agents.diagnosis.observed import KubeEvent, ObjectKey, Observed, Seen
from core.kube.status import containers

FAMILY = "probes"
_PROBE = re.compile(r"^(Readiness|Liveness|Startup) probe (?:failed|errored):?\s*(.*)", re.S | re.I)
_KILL = re.compile(r"failed (liveness|startup) probe", re.I)
_STATUS = re.compile(r"statuscode: (\d{3})|HTTP probe failed with statuscode: (\d{3})", re.I)
_TARGET = re.compile(r"(?:Get|Post|Head) \"?(https?://[^\"\s]+)\"?|dial tcp ([\d.]+:\d+)")


def probe_output(output: str) -> tuple[str, str]:
    """(what the probe got in a few words, its kind: http, tcp or exec)."""
    low = output.lower()
    status = _STATUS.search(output)
    target = _TARGET.search(output)
    where = f" from {target.group(1) or target.group(2)}" if target else ""
    if status:
        return f"HTTP status {status.group(1) or status.group(2)}{where}", "http"
    if "connection refused" in low:
        return f"connection refused{where}", "http" if "http" in low else "tcp"
    if "deadline exceeded" in low or "timeout" in low or "timed out" in low:
        return f"no answer in time (timeout){where}", "http" if "http" in low else "tcp"
    if "connection reset" in low:
        return f"connection reset{where}", "tcp"
    if "no route to host" in low:
        return f"no route to host{where}", "tcp"
    text = output.strip().splitlines()[0][:200] if output.strip() else "a non-zero exit"
    return f"its command failed: {text}", "exec"


def _probe_target(pod: dict, container: str, probe: str) -> str:
    """What the probe calls, from the pod spec: `GET :8080/readyz`, `TCP :5432`, `exec pg_isready ...`."""
    for c in (pod.get("spec") or {}).get("containers") or []:
        if not isinstance(c, dict) or (container and c.get("name") != container):
            continue
        spec = c.get(f"{probe}Probe") or {}
        if "httpGet" in spec:
            get = spec["httpGet"] or {}
            return f"{get.get('scheme', 'HTTP')} GET :{get.get('port', '')}{get.get('path', '/')}"
        if "tcpSocket" in spec:
            return f"TCP :{(spec['tcpSocket'] or {}).get('port', '')}"
        if "exec" in spec:
            return "exec " + " ".join(str(x) for x in (spec["exec"] or {}).get("command") or [])[:120]
        if "grpc" in spec:
            return f"gRPC :{(spec['grpc'] or {}).get('port', '')}"
    return ""


def _container_of(event: KubeEvent) -> str:
    if event.container:
        return event.container
    found = re.search(r"Container (\S+) failed", event.message)
    return found.group(1) if found else ""


def diagnose_pod(observed: Observed, pod: ObjectKey, seen: Seen | None) -> list[Diagnosis]:
    events = observed.events_of(pod)
    unhealthy = [(e, m) for e in events if e.reason == "Unhealthy" for m in [_PROBE.match(e.message)] if m]
    kills = [e for e in events if e.reason == "Killing" and _KILL.search(e.message)]
    if not unhealthy and not kills:
        return []
    views = {c.name: c for c in containers(seen.obj)} if seen else {}
    by_probe: dict[str, list[tuple[KubeEvent, str]]] = {}
    for event, found in unhealthy:
        by_probe.setdefault(found.group(1).lower(), []).append((event, found.group(2)))
    for kill in kills:
        which = _KILL.search(kill.message)
        by_probe.setdefault(which.group(1).lower() if which else "liveness", [])
    out: list[Diagnosis] = []
    for probe in ("liveness", "startup", "readiness"):
        if probe not in by_probe:
            continue
        failures = by_probe[probe]
        probe_kills = [k for k in kills if probe in k.message.lower()]
        last = max([e for e, _ in failures] + probe_kills, key=lambda e: e.at)
        container = _container_of(last) or next((_container_of(e) for e, _ in failures if _container_of(e)), "")
        view = views.get(container) or (next(iter(views.values())) if len(views) == 1 else None)
        if view is None and probe == "readiness":
            view = next((v for v in views.values() if not v.ready and not v.init), None)
        container = container or (view.name if view is not None else "")
        target = _probe_target(seen.obj, container, probe) if seen is not None else ""
        output = failures[-1][1] if failures else ""
        got, how = probe_output(output) if output else ("failures", "")
        count = sum(e.count for e, _ in failures) + sum(k.count for k in probe_kills)
        recent = observed.recent(last.at)
        if probe == "readiness":
            ongoing = (view is not None and not view.ready) or (view is None and recent)
        else:
            ongoing = recent and (view is None or not view.ready or view.restarts > 0)
        if view is not None and view.ready and view.restarts == 0 and count <= 3:
            continue  # failed while starting, ready since: a transient
        if probe != "readiness" and not probe_kills and count < 3 and (view is None or view.restarts == 0):
            continue  # below the default failureThreshold and nothing was killed: a blip
        cause = f"{probe}-probe-failure" if how != "exec" else "probe-exec-failure"
        effect = {"readiness": "the pod is not Ready and gets no traffic from its Services",
                  "liveness": "the kubelet restarts the container",
                  "startup": "the container is restarted before it finishes starting"}[probe]
        restarts = f", {view.restarts} restarts" if view is not None and view.restarts else ""
        probe_name = f"{probe.capitalize()} probe" + (f" ({target})" if target else "")
        message = (f"{probe_name} of container {container or '?'} in pod {pod.name}{in_namespace(pod)} fails: "
                   f"{got} ({count} failures{restarts}); {effect}")
        evidence = [from_event(e) for e, _ in failures[-2:]] + [from_event(k) for k in probe_kills[-1:]]
        if seen is not None and view is not None:
            evidence.insert(0, from_state(seen, f"container {container}: ready={view.ready}, "
                                                f"{view.restarts} restarts"))
        out.append(Diagnosis(
            family=FAMILY, cause=cause, subject=pod, message=message,
            confidence=0.85 if ongoing else 0.5, remediation=_remedy(probe, got),
            at=min(e.at for e in [e for e, _ in failures] + probe_kills), ongoing=ongoing,
            evidence=evidence, detail={"probe": probe, "container": container, "got": got},
            chain=[f"{pod}: {probe} probe fails ({got}): {effect}"]))
    return out


def _remedy(probe: str, got: str) -> str:
    base = (f"Check what the {probe} probe calls (`kubectl get pod -o yaml`, .spec.containers[].{probe}Probe): "
            "the path and port must be served by the app")
    if "refused" in got:
        base += "; nothing listens there yet: the app may listen on another port or take longer to start"
    elif "timeout" in got:
        base += "; it answers too slowly: raise timeoutSeconds, or make the health endpoint cheap"
    elif "HTTP status" in got:
        base += "; the app answers an error status: its logs say why it reports unhealthy (often a dependency)"
    if probe in ("liveness", "startup"):
        base += ". Give a slow start a startupProbe (or a longer initialDelaySeconds) rather than letting " \
                "liveness kill it."
    return base + "."
