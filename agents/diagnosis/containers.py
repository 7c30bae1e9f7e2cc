"""Containers that do not stay up: crash loops, non-zero exits, OOM kills, commands that cannot start.

Fed by: pods' container statuses (state, last state, exit codes, restart counts), the kubelet's
Events about them (BackOff, Failed, Killing) and the signal lines of their (previous) logs.
Feeds: Diagnoses of family `containers`, one per failing container, the cause read in this order:
1. the last termination's reason (OOMKilled) and the runtime's message (executable not found);
2. the previous run's log (a missing variable, a certificate, a syntax error, a host:port that
   refuses...: `agents.diagnosis.logs`);
3. the exit code and what it means (0 while restarting: the command ends; 137, 139, 143...).

A container that restarted during start-up and now runs ready is no incident; one that restarted
again and again and now runs is reported as recovered (not ongoing).
"""

from __future__ import annotations

from datetime import datetime

from agents.diagnosis.logs import classify, endpoint
from agents.diagnosis.model import Diagnosis, Evidence, excerpt, from_event, from_log, from_state, in_namespace
from agents.diagnosis.observed import KubeEvent, ObjectKey, Observed, Seen
from core.kube.objects import parse_time
from core.kube.status import EXIT_MEANINGS, ContainerView, Terminated, condition, containers, owner, phase

FAMILY = "containers"
CRASH_WAITING = frozenset({"CrashLoopBackOff", "RunContainerError", "CreateContainerError", "StartError"})
START_FAILURES = frozenset({"StartError", "ContainerCannotRun", "RunContainerError", "CreateContainerError"})
FAILED_REASONS = frozenset({"Error", "OOMKilled", "ContainerCannotRun", "StartError", "ContainerStatusUnknown"})
_NOT_FOUND = ("executable file not found", "no such file or directory", "not found in $PATH")

REMEDIES = {
    "oom-killed": "Raise resources.limits.memory of container {container} (compare with its real peak: "
                  "`kubectl top pod`, the memory working set), or make the process use less (heap size flags "
                  "such as -Xmx or GOMEMLIMIT below the limit, smaller caches or batches).",
    "missing-env-var": "Set {variable} in the container's env (or envFrom a ConfigMap/Secret that has it), "
                       "then let the Deployment roll the pods: `kubectl set env` or edit the manifest.",
    "shell-syntax-error": "Fix the quoting of the container's command/args (`kubectl get pod -o yaml` shows "
                          "what the shell gets); test it with `sh -n -c '...'`.",
    "unknown-command-or-flag": "The program does not accept its command or argument {argument}: compare "
                               "command/args with the image version's CLI (a renamed or removed flag after "
                               "an upgrade), or pin the previous image tag.",
    "command-not-found": "The image has no {command}: fix command/args (a typo, a path) or use an image that "
                         "contains it (slim and distroless images have no shell).",
    "exec-format-error": "Use an image built for the node's architecture (a multi-arch manifest, or amd64 vs "
                         "arm64), or pin the node selector kubernetes.io/arch.",
    "tls-certificate": "Renew or replace the certificate ({problem}); if it is a private CA, mount its bundle "
                       "into the container and point the client at it.",
    "permission-denied": "Give the container's user access to {path}: securityContext.runAsUser/fsGroup, "
                         "the volume's permissions, or an image that does not need root.",
    "dns-resolution": "{host} does not resolve from the pod: check the name (namespace suffix, typo), that the "
                      "Service exists, CoreDNS (`kubectl -n kube-system logs -l k8s-app=kube-dns`) and any "
                      "NetworkPolicy that blocks egress to port 53.",
    "dependency-unreachable": "{endpoint} is down or unreachable: check that the dependency runs and listens "
                              "there, its Service and endpoints, and NetworkPolicies between them; if it only "
                              "starts later, retry with backoff instead of exiting.",
    "app-panic": "The application crashes on start: read the stack trace in `kubectl logs --previous`, fix the "
                 "code or the input it chokes on, or roll back to the last good image.",
    "command-exits": "The command ends (exit 0) but restartPolicy Always restarts it: run a long-lived process "
                     "(not a script that returns or daemonizes), or use a Job for a one-off task.",
    "app-error-exit": "The process exits with an error: `kubectl logs {pod} -c {container} --previous` shows "
                      "why; check its configuration, arguments and dependencies.",
    "segfault": "The process crashes with SIGSEGV: a native bug or a binary/library mismatch; roll back the "
                "image or check its architecture and libc.",
    "killed": "Something killed the process with SIGKILL: a liveness probe, a preStop timeout or the kernel; "
              "see the Events and the node's kernel log.",
    "crash-loop": "Read `kubectl logs {pod} -c {container} --previous` and `kubectl describe pod {pod}` for "
                  "why the container stops.",
}


def _fill(template: str, values: dict[str, str]) -> str:
    class Missing(dict[str, str]):
        def __missing__(self, key: str) -> str:
            return f"the {key}"
    return template.format_map(Missing(values))


def _errored(term: Terminated | None) -> bool:
    """Ended in an error: a non-zero exit code, or (a `kubectl get pods` table shows no exit code)
    a reason the kubelet gives only to a failed run."""
    if term is None:
        return False
    return term.exit_code not in (None, 0) or (term.exit_code is None and term.reason in FAILED_REASONS)


def _failing(c: ContainerView, pod_phase: str) -> bool:
    if c.waiting_reason in CRASH_WAITING:
        return True
    if _errored(c.terminated) and not c.init and pod_phase != "Succeeded":
        return True
    if c.init and _errored(c.terminated):
        return True
    return False


def _recovered_loop(c: ContainerView) -> bool:
    """Restarted again and again, now running: a past incident, not an ongoing one."""
    return c.running and c.restarts >= 3 and c.last is not None and c.last.exit_code not in (None, 0)


def _cause_from_exit(term: Terminated | None, c: ContainerView) -> tuple[str, str, float]:
    if term is None or (not term.reason and term.exit_code is None):  # a table shows only when it ended
        return "crash-loop", "it keeps stopping (the reason is not recorded)", 0.5
    code = term.exit_code
    if term.reason == "OOMKilled":
        limit = f" (limit {c.memory_limit})" if c.memory_limit else ""
        return "oom-killed", f"it was OOM-killed: it used more memory than its limit{limit}", 0.9
    if term.reason in START_FAILURES or any(s in term.message for s in _NOT_FOUND):
        if any(s in term.message for s in _NOT_FOUND):
            return "command-not-found", f"its command cannot be started: {term.message.strip()[:300]}", 0.9
        return "start-failure", f"the runtime cannot start it: {term.message.strip()[:300]}", 0.8
    if code == 0:
        return "command-exits", "its command ends (exit code 0) and the pod restarts it", 0.7
    if code == 127:
        return "command-not-found", EXIT_MEANINGS[127], 0.75
    if code == 126:
        return "permission-denied", EXIT_MEANINGS[126], 0.7
    if code == 139:
        return "segfault", EXIT_MEANINGS[139], 0.7
    if code == 137:
        return "killed", EXIT_MEANINGS[137], 0.55
    if code is None and term.reason == "Error":  # a table shows the reason only
        return "app-error-exit", "it exited with an error (the exit code is not recorded)", 0.6
    meaning = EXIT_MEANINGS.get(code or -1) or (f"exited with code {code}" if code is not None else "stopped")
    return "app-error-exit", meaning, 0.6


def _events_for(observed: Observed, pod: ObjectKey, container: str) -> list[KubeEvent]:
    return [e for e in observed.events_of(pod) if e.type == "Warning" and (not e.container or e.container == container)
            and e.reason in ("BackOff", "Failed", "Killing", "OOMKilling", "Unhealthy")]


def _job_succeeded(observed: Observed, seen: Seen) -> bool:
    """A pod of a Job that completed: its failed attempts were retried until one succeeded."""
    found = owner(seen.obj)
    job = observed.get("Job", seen.key.namespace, found[1]) if found and found[0] == "Job" else None
    if job is None:
        return False
    complete = condition(job.obj, "Complete")
    return bool(complete and complete.get("status") == "True") or int((job.obj.get("status") or {})
                                                                     .get("succeeded") or 0) > 0


def diagnose_pod(observed: Observed, seen: Seen) -> list[Diagnosis]:
    out: list[Diagnosis] = []
    pod_phase = phase(seen.obj)
    if pod_phase == "Failed" and _job_succeeded(observed, seen):
        return out
    for c in containers(seen.obj):
        failing = _failing(c, pod_phase)
        if not failing and not _recovered_loop(c):
            continue
        # running again after many restarts, OOM-killed a few minutes before the end: memory grows
        # back under the same load, so it is between two kills of a loop, not recovered. After an
        # error exit, a container that started again and is ready has recovered (its dependency
        # came back, say).
        oom_loop = c.last is not None and c.last.reason == "OOMKilled" and not c.ready or (
            c.last is not None and c.last.reason == "OOMKilled"
            and (finished := parse_time(c.last.finished_at)) is not None and observed.recent(finished, 15 * 60))
        ongoing = failing or oom_loop
        out.append(_diagnose_container(observed, seen, c, ongoing=ongoing))
    return out


def _diagnose_container(observed: Observed, seen: Seen, c: ContainerView, *, ongoing: bool) -> Diagnosis:
    pod = seen.key
    term = c.last if c.last is not None else c.terminated
    if c.terminated is not None and c.last is not None and not c.last.reason and c.last.exit_code is None:
        term = c.terminated  # a table's last termination is only a time: the current one says more
    cause, meaning, confidence = _cause_from_exit(term, c)
    detail: dict[str, str] = {"container": c.name, "pod": pod.name}
    evidence: list[Evidence] = []
    state = c.waiting_reason or (f"terminated ({term.reason})" if term and term.reason else "restarting")
    code = f", exit code {term.exit_code}" if term and term.exit_code is not None else ""
    named = f"{c.name} " if c.name else ""  # a `kubectl get pods` row does not name its containers
    evidence.append(from_state(seen, f"container {named.strip()}".strip() + f": {state}{code}, {c.restarts} restarts"
                                     + (f": {term.message.strip()[:300]}" if term and term.message.strip() else "")))
    if cause not in ("oom-killed", "command-not-found"):
        found = classify(observed.logs_of(pod, c.name))
        if found is not None and cause == "segfault" and found.cause == "app-panic":
            detail["log"] = excerpt(found.line.text)
            evidence.append(from_log(found.line))
            found = None
        if found is not None and found.confidence >= confidence - 0.2:
            cause, meaning, confidence = found.cause, found.meaning, max(found.confidence, confidence)
            detail.update(found.detail)
            detail["log"] = excerpt(found.line.text)
            evidence.append(from_log(found.line))
            if found.cause in ("dependency-unreachable", "tls-certificate"):
                detail["endpoint"] = endpoint(found.detail)
    evidence += [from_event(e) for e in _events_for(observed, pod, c.name)[-3:]]
    if term is not None and term.exit_code is not None:
        detail["exit_code"] = str(term.exit_code)
    caused_by = None
    if cause == "tls-certificate" and (secret := _certificate_secret(seen.obj)):
        detail["secret"] = secret
        caused_by = ObjectKey("Secret", pod.namespace, secret)
    if cause == "oom-killed" and c.memory_limit:
        detail["limit"] = c.memory_limit
    what = "init container" if c.init else "container"
    if c.waiting_reason == "CrashLoopBackOff":
        status = "in CrashLoopBackOff"
    elif c.waiting_reason:
        status = f"waiting ({c.waiting_reason})"
    elif c.running:
        status = "running again after crashing" if ongoing else "restarted repeatedly, now running"
    else:
        status = "terminated"
    specific = _specific(cause, detail)
    message = (f"{what.capitalize()} {named}of pod {pod.name}{in_namespace(pod)} is {status}: "
               f"{meaning}{specific}")
    if "secret" in detail:
        message += f" (its certificate comes from Secret {detail['secret']})"
    if "log" in detail:
        message += f"; its log: \"{detail['log']}\""
    if term is not None and (term.reason or term.exit_code is not None):
        parts = [p for p in (term.reason, f"exit code {term.exit_code}" if term.exit_code is not None else "") if p]
        message += f"; last run: {', '.join(parts)}"
    if c.restarts:
        message += f", {c.restarts} restarts"
    return Diagnosis(
        family=FAMILY, cause=cause, subject=pod, message=message,
        confidence=round(confidence if ongoing else confidence * 0.6, 3),
        remediation=_fill(REMEDIES.get(cause, REMEDIES["crash-loop"]), detail),
        at=_first_failure(observed, pod, seen.at), ongoing=ongoing, evidence=evidence, detail=detail,
        caused_by=caused_by, chain=[f"{pod}: {what} {named}{status}: {meaning}{specific}"])


def _certificate_secret(pod: dict) -> str:
    """The Secret a pod mounts its certificates from (a TLS-named secret volume), if one."""
    names = [str((v.get("secret") or {}).get("secretName") or "") for v in (pod.get("spec") or {}).get("volumes") or []
             if isinstance(v, dict) and isinstance(v.get("secret"), dict)]
    found = [n for n in names if any(word in n.lower() for word in ("tls", "cert", "ssl", "ca"))]
    return found[0] if len(found) == 1 else ""


def _specific(cause: str, detail: dict[str, str]) -> str:
    if cause == "missing-env-var" and detail.get("variable"):
        return f" ({detail['variable']})"
    if cause in ("dependency-unreachable", "tls-certificate") and detail.get("endpoint"):
        extra = f", {detail['problem']}" if detail.get("problem") else ""
        return f" ({detail['endpoint']}{extra})"
    if cause == "tls-certificate" and detail.get("problem"):
        return f" ({detail['problem']})"
    if cause == "dns-resolution" and detail.get("host"):
        return f" ({detail['host']})"
    if cause == "permission-denied" and detail.get("path"):
        return f" ({detail['path']})"
    if cause == "unknown-command-or-flag" and detail.get("argument"):
        return f" ({detail['argument']})"
    if cause == "command-not-found" and detail.get("command"):
        return f" ({detail['command']})"
    if cause == "oom-killed" and detail.get("limit"):
        return ""
    return ""


def _first_failure(observed: Observed, pod: ObjectKey, fallback: datetime) -> datetime:
    warnings = observed.warnings_of(pod)
    return min((e.at for e in warnings), default=fallback)


def diagnose_events_only(observed: Observed, pod: ObjectKey) -> list[Diagnosis]:
    """A pod the input shows only through Events (an events table): a crash loop from BackOff."""
    events = observed.events_of(pod)
    backoff = [e for e in events if e.reason == "BackOff" and "restarting failed container" in e.message]
    if not backoff:
        return []
    last = max(backoff, key=lambda e: e.at)
    container = last.container or _container_in(last.message)
    found = classify(observed.logs_of(pod, container) or observed.logs_of(pod))
    cause, meaning, confidence = ("crash-loop", "it keeps crashing (the reason is not recorded)", 0.5)
    detail = {"container": container, "pod": pod.name}
    evidence = [from_event(last)]
    if found is not None:
        cause, meaning, confidence = found.cause, found.meaning, found.confidence
        detail.update(found.detail)
        if found.cause in ("dependency-unreachable", "tls-certificate"):
            detail["endpoint"] = endpoint(found.detail)
        evidence.append(from_log(found.line))
        detail["log"] = excerpt(found.line.text)
    ongoing = observed.recent(last.at)
    message = (f"Container {container or '?'} of pod {pod.name}{in_namespace(pod)} is in "
               f"CrashLoopBackOff: {meaning}{_specific(cause, detail)}")
    if "log" in detail:
        message += f"; its log: \"{detail['log']}\""
    return [Diagnosis(family=FAMILY, cause=cause, subject=pod, message=message, confidence=confidence,
                      remediation=_fill(REMEDIES.get(cause, REMEDIES["crash-loop"]), detail),
                      at=min(e.at for e in backoff), ongoing=ongoing, evidence=evidence, detail=detail,
                      chain=[f"{pod}: container {container} in CrashLoopBackOff: {meaning}"])]


def _container_in(message: str) -> str:
    # "Back-off restarting failed container web in pod web-0_shop(uid)" / "... container=web pod=..."
    for marker in ("container=", "failed container "):
        if marker in message:
            return message.split(marker, 1)[1].split()[0].strip("\"'")
    return ""
