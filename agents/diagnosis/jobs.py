"""Jobs that fail: the backoff limit reached because their pods fail, or the deadline passed.

Fed by: a Job's Failed condition (reason BackoffLimitExceeded / DeadlineExceeded /
PodFailurePolicy), the job controller's Events of the same reasons, and its pods (owner Job):
their exits and logs, which `agents.diagnosis.containers` has diagnosed. Feeds: Diagnoses of family
`jobs`, whose message carries the pods' cause and whose members are the failed pods.
"""

from __future__ import annotations

from agents.diagnosis.model import Diagnosis, from_event, from_state, in_namespace
from agents.diagnosis.observed import ObjectKey, Observed, Seen
from core.kube.status import condition, owner

FAMILY = "jobs"
#: a Job's failure is final, its pods stopped retrying before it: one that failed this close to the
#: end of the input is the incident at hand, an older one a past failure
JOB_RECENT_S = 1800
_REASONS = {"BackoffLimitExceeded": ("job-backoff-limit", "it reached its backoff limit: its pods keep failing"),
            "DeadlineExceeded": ("job-deadline", "it ran longer than its activeDeadlineSeconds"),
            "PodFailurePolicy": ("job-pod-failure-policy", "a pod failure matched its podFailurePolicy (FailJob)")}


def job_pods(observed: Observed, job: ObjectKey) -> list[ObjectKey]:
    return sorted(key for key, seen in observed.objects.items() if key.kind == "Pod" and key.namespace == job.namespace
                  and (owner(seen.obj) == ("Job", job.name)
                       or (seen.obj.get("metadata") or {}).get("labels", {}).get("job-name") == job.name))


def diagnose_job(observed: Observed, job: ObjectKey, seen: Seen | None, pod_causes: dict[ObjectKey, Diagnosis]
                 ) -> list[Diagnosis]:
    cond = condition(seen.obj, "Failed") if seen else None
    events = [e for e in observed.events_of(job) if e.reason in _REASONS]
    reason = str(cond.get("reason") or "") if cond and cond.get("status") == "True" else ""
    if not reason and events:
        reason = max(events, key=lambda e: e.at).reason
    if reason not in _REASONS:
        return []
    cause, meaning = _REASONS[reason]
    pods = job_pods(observed, job)
    causes = [pod_causes[p] for p in pods if p in pod_causes]
    detail: dict[str, str] = {"reason": reason, "failed_pods": str(len(pods))}
    spec = (seen.obj.get("spec") or {}) if seen else {}
    limits = [f"{k} {spec[k]}" + ("s" if k == "activeDeadlineSeconds" else "")
              for k in ("backoffLimit", "activeDeadlineSeconds") if spec.get(k) is not None]
    text = f"Job {job.name}{in_namespace(job)} failed ({reason}): {meaning}"
    if limits:
        text += f" ({', '.join(limits)})"
    chain = [f"{job}: Failed ({reason})"]
    confidence = 0.85
    if causes:
        top = max(causes, key=lambda d: d.confidence)
        text += f"; its pods fail because {top.message[0].lower() + top.message[1:]}"
        detail.update({f"pod_{k}": v for k, v in top.detail.items()})
        if "log" in top.detail:
            detail["log"] = top.detail["log"]
        detail["pod_cause"] = top.cause
        chain = top.chain + chain
        confidence = max(confidence, top.confidence)
    evidence = []
    if seen is not None and cond:
        evidence.append(from_state(seen, f"condition Failed=True ({reason}): {cond.get('message', '')}"))
    evidence += [from_event(e) for e in events[-1:]]
    for d in causes[:2]:
        evidence += d.evidence[:2]
    at = min([e.at for e in events] + [d.at for d in causes], default=seen.at if seen else observed.end)
    failed_at = max([e.at for e in events], default=None) or (seen.at if seen else None)
    ongoing = failed_at is None or observed.recent(failed_at, JOB_RECENT_S)
    return [Diagnosis(family=FAMILY, cause=cause, subject=job, message=text, confidence=confidence,
                      remediation=_remedy(reason, causes), at=at,  # type: ignore[arg-type]
                      ongoing=ongoing, evidence=evidence, detail=detail,
                      members=[d.subject for d in causes], chain=chain)]


def _remedy(reason: str, causes: list[Diagnosis]) -> str:
    if reason == "DeadlineExceeded":
        return "The job did not finish in activeDeadlineSeconds: raise it, speed the work up, or split it."
    first = causes[0].remediation if causes else "read the failed pods' logs (`kubectl logs job/NAME`)"
    return f"Fix why its pods fail ({first}); then delete and recreate the Job (its pod template is immutable)."
