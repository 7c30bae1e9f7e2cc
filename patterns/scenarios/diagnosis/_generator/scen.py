"""Scenario helpers: a pod's life (scheduled, pulled, started, crashing, backing off) as the kubelet,
scheduler and controllers record it."""
from __future__ import annotations

import copy
import datetime as dt

from build import (
    Events,
    Rand,
    T,
    add,
    cond,
    cstatus,
    labels_yaml,
    pod,
    running,
    running_conditions,
    terminated,
    ts,
    waiting,
    write,
)


def go_dur(seconds):
    ms = int(round(seconds * 1000))
    if ms < 1000:
        return f"{ms}ms"
    if ms < 60000:
        s = f"{ms / 1000:.3f}".rstrip("0").rstrip(".")
        return s + "s"
    m, rest = divmod(ms, 60000)
    s = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    return f"{m}m{s}s"


def go_dur_int(sec):
    m, s_ = divmod(int(sec), 60)
    h, m = divmod(m, 60)
    if h:
        return f"{h}h{m}m{s_}s"
    if m:
        return f"{m}m{s_}s"
    return f"{s_}s"


class Ctx:
    def __init__(self, seed, now, k8s="1.31", runtime="containerd"):
        self.rnd = Rand(seed)
        self.now = T(now)
        self.k8s = k8s
        self.runtime = runtime
        self.ev = Events(self.rnd)
        self.sched_instance = None
        self.render_now = None  # the clock of the machine that ran kubectl, when it differs

    # version-specific kubelet messages
    def m_created(self, c):
        return f"Created container: {c}" if self.k8s >= "1.32" else f"Created container {c}"

    def m_started(self, c):
        return f"Started container {c}"

    def m_pulled_fresh(self, img, secs, size):
        if self.k8s >= "1.30":
            return f'Successfully pulled image "{img}" in {go_dur(secs)} ({go_dur(secs + 0.3 * secs)} including waiting). Image size: {size} bytes.'
        if self.k8s >= "1.28":
            return f'Successfully pulled image "{img}" in {go_dur(secs)} ({go_dur(secs + 0.3 * secs)} including waiting)'
        if self.k8s >= "1.19":
            frac = self.rnd.randint(100000000, 999999999)
            return f'Successfully pulled image "{img}" in {int(secs)}.{frac}s'
        return f'Successfully pulled image "{img}"'

    def m_present(self, img):
        return f'Container image "{img}" already present on machine'

    def m_backoff(self, c, p):
        if self.k8s >= "1.26":
            return f"Back-off restarting failed container {c} in pod {p['metadata']['name']}_{p['metadata']['namespace']}({p['metadata']['uid']})"
        return "Back-off restarting failed container"

    def m_assigned(self, p, node):
        return f"Successfully assigned {p['metadata']['namespace']}/{p['metadata']['name']} to {node}"

    def scheduled(self, p, node, t):
        old = self.k8s < "1.16"
        if self.k8s < "1.20" and self.k8s >= "1.16":
            # kubectl 1.16-1.19 shows the scheduler's events.k8s.io event with <unknown> age
            e = self.ev.add(p, "Scheduled", self.m_assigned(p, node), component="default-scheduler", first=t,
                            new_api=True, instance=self.sched_instance)
            return e
        return self.ev.add(p, "Scheduled", self.m_assigned(p, node), component="default-scheduler", first=t,
                           new_api=not old, instance=self.sched_instance)


def names(rnd, app):
    h = rnd.hash10()
    return f"{app}-{h}", f"{app}-{h}-{rnd.suffix(5)}", h


def crash_attempts(first_start, now, run_secs, cap=300):
    attempts = []
    start = T(first_start)
    i = 0
    while start < now:
        rs = run_secs(i) if callable(run_secs) else run_secs
        fin = start + dt.timedelta(seconds=rs)
        attempts.append((start, fin))
        if fin >= now:
            break
        delay = min(10 * 2 ** i, cap)
        start = fin + dt.timedelta(seconds=delay + 1)
        i += 1
    return attempts


def crashloop(ctx: Ctx, *, ns, pod_name, container, node, node_ip, pod_ip, created, run_secs=2.0,
              exit_code=1, reason="Error", owner=None, labels=None, annotations=None, extra_containers=(),
              volumes=None, sa="default", image_size=None, pull_secs=None, message=None, signal=None,
              pod_kwargs=None, force_waiting=True, liveness_kill=None):
    """A pod whose container keeps exiting; returns the pod. Events go into ctx.ev."""
    rnd = ctx.rnd
    c = container
    img = c["image"]
    sched = T(created)
    pull_start = add(sched, 1)
    pull_secs = pull_secs if pull_secs is not None else round(1.5 + rnd.random() * 6, 3)
    first_start = add(pull_start, pull_secs + 0.6)
    now = ctx.now
    attempts = crash_attempts(first_start, now, run_secs)
    if force_waiting and attempts[-1][1] >= now:
        attempts = attempts[:-1] if len(attempts) > 1 else attempts
    last_s, last_f = attempts[-1]
    in_backoff = last_f < now
    restarts = len(attempts) - 1
    if in_backoff:
        delay = min(10 * 2 ** (len(attempts) - 1), 300)
        state = waiting("CrashLoopBackOff", f"back-off {go_dur_int(delay)} restarting failed container={c['name']} pod={pod_name}_{ns}(UID)")
        last = terminated(exit_code, reason, last_s, last_f, message=message, signal=signal)
    else:
        state = running(last_s)
        ps, pf = attempts[-2]
        last = terminated(exit_code, reason, ps, pf, message=message, signal=signal)
    rp = c.get("readinessProbe")
    ready_now = (not in_backoff) and (rp is None or (now - last_s).total_seconds() > rp.get("initialDelaySeconds", 0) + rp.get("periodSeconds", 10))
    cs = cstatus(rnd, c["name"], img, state=state, last=last, ready=ready_now, restarts=restarts,
                 started=not in_backoff, runtime=ctx.runtime)
    if "terminated" in last:
        last["terminated"]["containerID"] = f"{ctx.runtime}://{rnd.hex()}"
    statuses = [cs]
    extra_status = []
    for ec in extra_containers:
        extra_status.append(cstatus(rnd, ec["name"], ec["image"], state=running(add(first_start, 0.2)), ready=True,
                                    restarts=0, started=True, runtime=ctx.runtime))
    statuses += extra_status
    names_nr = [c["name"]]
    if ready_now:
        conds = running_conditions(created, sched, ready_at=add(last_s, 1 if rp is None else rp.get("initialDelaySeconds", 0) + 1), k8s=ctx.k8s)
    else:
        conds = running_conditions(created, sched, not_ready_since=attempts[0][1] if in_backoff else attempts[-2][1], containers=names_nr, k8s=ctx.k8s)
    if ctx.k8s < "1.29":
        conds = [x for x in conds if x["type"] != "PodReadyToStartContainers"]
    p = pod(rnd, ns, pod_name, [c] + list(extra_containers), created=created, labels=labels, annotations=annotations,
            owner=owner, node=node, node_ip=node_ip, pod_ip=pod_ip, conditions=conds, statuses=statuses,
            volumes=volumes, sa=sa, start_time=sched, **(pod_kwargs or {}))
    uid = p["metadata"]["uid"]
    cs["state"].get("waiting", {}).get("message") and cs["state"]["waiting"].update(
        message=cs["state"]["waiting"]["message"].replace("(UID)", f"({uid})"))
    # events
    ev = ctx.ev
    fp = f"spec.containers{{{c['name']}}}"
    ctx.scheduled(p, node, sched)
    ev.add(p, "Pulling", f'Pulling image "{img}"', host=node, first=pull_start, field_path=fp)
    ev.add(p, "Pulled", ctx.m_pulled_fresh(img, pull_secs, image_size or rnd.randint(18_000_000, 420_000_000)),
           host=node, first=add(first_start, -0.5), field_path=fp)
    ev.add(p, "Created", ctx.m_created(c["name"]), host=node, first=attempts[0][0], last=attempts[-1][0],
           count=len(attempts), field_path=fp)
    ev.add(p, "Started", ctx.m_started(c["name"]), host=node, first=attempts[0][0], last=attempts[-1][0],
           count=len(attempts), field_path=fp)
    for ec in extra_containers:
        efp = f"spec.containers{{{ec['name']}}}"
        ev.add(p, "Pulled", ctx.m_present(ec["image"]), host=node, first=add(first_start, -0.1), field_path=efp)
        ev.add(p, "Created", ctx.m_created(ec["name"]), host=node, first=add(first_start, 0.1), field_path=efp)
        ev.add(p, "Started", ctx.m_started(ec["name"]), host=node, first=add(first_start, 0.2), field_path=efp)
    if len(attempts) > 1:
        ev.add(p, "Pulled", ctx.m_present(img), host=node, first=add(attempts[1][0], -0.2),
               last=add(attempts[-1][0], -0.2), count=len(attempts) - 1, field_path=fp)
    if liveness_kill:
        liveness_kill(p, attempts)
    waits = []
    for i, (_s, f) in enumerate(attempts):
        nxt = attempts[i + 1][0] if i + 1 < len(attempts) else (now if in_backoff else None)
        if nxt is not None:
            waits.append((f, nxt))
    if waits:
        total = sum((b - a).total_seconds() for a, b in waits)
        count = max(1, int(total / 12) + len(waits))
        first_b = add(waits[0][0], 1)
        last_b = add(now, -rnd.randint(2, 14)) if in_backoff else add(waits[-1][1], -1)
        if last_b < first_b:
            last_b = first_b
        ev.add(p, "BackOff", ctx.m_backoff(c["name"], p), type_="Warning", host=node, first=first_b, last=last_b,
               count=count, field_path=fp)
    p["_attempts"] = attempts
    p["_in_backoff"] = in_backoff
    return p


def healthy(ctx: Ctx, *, ns, pod_name, containers, node, node_ip, pod_ip, created, owner=None, labels=None,
            annotations=None, volumes=None, sa="default", restarts=0, last_state=None, with_events=None,
            image_sizes=None, pull_secs=2.4, pod_kwargs=None, ready_delay=3, started_at=None):
    """A healthy Running/Ready pod. Events are recorded only if with_events (events expire after 1h)."""
    rnd = ctx.rnd
    sched = T(created)
    start = T(started_at) if started_at else add(sched, pull_secs + 2)
    statuses = []
    for i, c in enumerate(containers):
        ls = None
        if i == 0 and last_state:
            ls = last_state
        statuses.append(cstatus(rnd, c["name"], c["image"], state=running(start), last=ls, ready=True,
                                restarts=restarts if i == 0 else 0, started=True, runtime=ctx.runtime))
    conds = running_conditions(created, sched, ready_at=add(start, ready_delay), k8s=ctx.k8s)
    if ctx.k8s < "1.29":
        conds = [x for x in conds if x["type"] != "PodReadyToStartContainers"]
    p = pod(rnd, ns, pod_name, containers, created=created, labels=labels, annotations=annotations, owner=owner,
            node=node, node_ip=node_ip, pod_ip=pod_ip, conditions=conds, statuses=statuses, volumes=volumes, sa=sa,
            start_time=sched, **(pod_kwargs or {}))
    if with_events:
        ev = ctx.ev
        ctx.scheduled(p, node, sched)
        for i, c in enumerate(containers):
            fp = f"spec.containers{{{c['name']}}}"
            if i == 0:
                ev.add(p, "Pulling", f'Pulling image "{c["image"]}"', host=node, first=add(sched, 1), field_path=fp)
                ev.add(p, "Pulled", ctx.m_pulled_fresh(c["image"], pull_secs, (image_sizes or [rnd.randint(20_000_000, 300_000_000)])[0]),
                       host=node, first=add(sched, 1 + pull_secs), field_path=fp)
            else:
                ev.add(p, "Pulled", ctx.m_present(c["image"]), host=node, first=add(start, -0.3), field_path=fp)
            ev.add(p, "Created", ctx.m_created(c["name"]), host=node, first=add(start, -0.2), field_path=fp)
            ev.add(p, "Started", ctx.m_started(c["name"]), host=node, first=start, field_path=fp)
    return p


def ts_log(t, fmt="iso"):
    t = T(t)
    if fmt == "iso":
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    if fmt == "iso_us":
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if fmt == "py":
        return t.strftime("%Y-%m-%d %H:%M:%S,") + f"{t.microsecond // 1000:03d}"
    if fmt == "go":
        return t.strftime("%Y/%m/%d %H:%M:%S")
    if fmt == "spring":
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    if fmt == "klog":
        return t.strftime("%m%d %H:%M:%S.%f")
    raise ValueError(fmt)


def readme(case_dir, title, body):
    write(case_dir, "README.md", f"# {title}\n\n{body.strip()}\n")


def deployment(ctx, ns, name, template_pod, replicas, *, created, revision, ready, updated, available,
               conditions, observed_gen=None, generation=None, labels=None, progress_deadline=600, strategy=None,
               annotations=None, unavailable=None, status_replicas=None):
    rnd = ctx.rnd
    tmpl = template_of(template_pod)
    gen = generation or revision + 1
    meta = {"name": name, "namespace": ns, "uid": rnd.uid(), "resourceVersion": rnd.rv(), "generation": gen,
            "creationTimestamp": ts(created), "labels": labels or {"app.kubernetes.io/name": name},
            "annotations": dict({"deployment.kubernetes.io/revision": str(revision)}, **(annotations or {}))}
    spec = {"replicas": replicas, "selector": {"matchLabels": {k: v for k, v in tmpl["metadata"]["labels"].items()
                                                              if k != "pod-template-hash"}},
            "template": tmpl,
            "strategy": strategy or {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10, "progressDeadlineSeconds": progress_deadline}
    st = {"observedGeneration": observed_gen or gen, "replicas": status_replicas if status_replicas is not None else max(replicas, updated),
          "updatedReplicas": updated}
    if ready:
        st["readyReplicas"] = ready
    if available:
        st["availableReplicas"] = available
    if unavailable:
        st["unavailableReplicas"] = unavailable
    st["conditions"] = conditions
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec, "status": st}


def dep_cond(type_, status, update, transition, reason, message):
    return {"type": type_, "status": status, "lastUpdateTime": ts(update), "lastTransitionTime": ts(transition),
            "reason": reason, "message": message}


def template_of(p):
    spec = copy.deepcopy(p["spec"])
    for k in ("nodeName", "serviceAccount", "priority", "enableServiceLinks", "preemptionPolicy"):
        spec.pop(k, None)
    spec["volumes"] = [v for v in spec.get("volumes", []) if not v["name"].startswith("kube-api-access-")]
    if not spec["volumes"]:
        spec.pop("volumes")
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        c["volumeMounts"] = [m for m in c.get("volumeMounts", []) if not m["name"].startswith("kube-api-access-")]
        if not c["volumeMounts"]:
            c.pop("volumeMounts")
    spec.pop("tolerations", None) if spec.get("tolerations") and all(
        t["key"].startswith("node.kubernetes.io/") for t in spec["tolerations"]) else None
    labels = dict(p["metadata"].get("labels", {}))
    return {"metadata": {"creationTimestamp": None, "labels": labels}, "spec": spec}


def replicaset(ctx, ns, name, dep, template_pod, replicas, *, created, revision, ready, available,
               fully_labeled=None, hash_=None):
    rnd = ctx.rnd
    tmpl = template_of(template_pod)
    labels = dict(tmpl["metadata"]["labels"])
    meta = {"name": name, "namespace": ns, "uid": rnd.uid(), "resourceVersion": rnd.rv(), "generation": 2 if replicas == 0 else 1,
            "creationTimestamp": ts(created), "labels": labels,
            "annotations": {"deployment.kubernetes.io/desired-replicas": str(dep["spec"]["replicas"]),
                            "deployment.kubernetes.io/max-replicas": str(dep["spec"]["replicas"] + max(1, -(-dep["spec"]["replicas"] * 25 // 100))),
                            "deployment.kubernetes.io/revision": str(revision)},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": dep["metadata"]["name"],
                                 "uid": dep["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]}
    sel = dict(dep["spec"]["selector"]["matchLabels"])
    if "pod-template-hash" in labels:
        sel["pod-template-hash"] = labels["pod-template-hash"]
    spec = {"replicas": replicas, "selector": {"matchLabels": sel}, "template": tmpl}
    st = {"replicas": replicas if fully_labeled is None else fully_labeled, "fullyLabeledReplicas": replicas if fully_labeled is None else fully_labeled}
    if ready:
        st["readyReplicas"] = ready
    if available:
        st["availableReplicas"] = available
    st["observedGeneration"] = meta["generation"]
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta, "spec": spec, "status": st}


def emit(d, ctx, *, describe=None, describe_version="new", describe_name="describe-pod.txt", json_pods=None,
         yaml_pods=None, get_events=False, kubectl_events_tbl=False, events_all_ns=False, events_name=None,
         json_name="pods.json", yaml_name="pods.yaml", events_filter=None, tz=None):
    import datetime as _dt

    from k8sfmt import describe_pod, kubectl_events, kubectl_get_events, kubectl_json_list, kubectl_yaml_list
    evs = ctx.ev.items if events_filter is None else [e for e in ctx.ev.items if events_filter(e)]
    rnow = ctx.render_now or ctx.now
    if describe is not None:
        name = describe["metadata"]["name"]
        write(d, describe_name, describe_pod(describe, ctx.ev.for_object(name, "Pod"), rnow, version=describe_version,
                                             tz=tz or _dt.UTC))
    if json_pods is not None:
        write(d, json_name, kubectl_json_list(json_pods))
    if yaml_pods is not None:
        write(d, yaml_name, kubectl_yaml_list(yaml_pods))
    if get_events:
        write(d, events_name or "events.txt", kubectl_get_events(evs, rnow, all_namespaces=events_all_ns))
    if kubectl_events_tbl:
        write(d, events_name or "events.txt", kubectl_events(evs, rnow, all_namespaces=events_all_ns))


def case_labels(d, family, formats, incident, now, rc=None):
    write(d, "labels.yaml", labels_yaml(d, family, formats, incident, now, rc))


def pending(ctx, *, ns, pod_name, containers, created, message, owner=None, labels=None, annotations=None,
            attempts=None, last=None, node_selector=None, tolerations=None, affinity=None, volumes=None,
            sa="default", priority=0, pod_kwargs=None, old_api=False, instance=None):
    rnd = ctx.rnd
    last = last or add(ctx.now, -rnd.randint(5, 70))
    p = pod(rnd, ns, pod_name, containers, created=created, labels=labels, annotations=annotations, owner=owner,
            phase="Pending", conditions=[cond("PodScheduled", "False", created, "Unschedulable", message)],
            node_selector=node_selector, tolerations=tolerations, affinity=affinity, volumes=volumes, sa=sa,
            priority=priority, **(pod_kwargs or {}))
    n = attempts or 1
    ctx.ev.add(p, "FailedScheduling", message, type_="Warning", component="default-scheduler", first=created,
               last=last, count=n, new_api=not old_api, instance=instance or ctx.sched_instance)
    return p


def pull_failing(ctx, *, ns, pod_name, container, node, node_ip, pod_ip, created, err, attempts, owner=None,
                 labels=None, sa="default", volumes=None, pod_kwargs=None, phase_reason="ImagePullBackOff",
                 pull_secrets=None):
    rnd = ctx.rnd
    c = container
    img = c["image"]
    sched = T(created)
    if phase_reason == "ImagePullBackOff":
        wmsg = f'Back-off pulling image "{img}": ErrImagePull: {err}' if ctx.k8s >= "1.30" else f'Back-off pulling image "{img}"'
    else:
        wmsg = err
    st = cstatus(rnd, c["name"], img, state=waiting(phase_reason, wmsg), ready=False, restarts=0, started=False,
                 runtime=ctx.runtime, with_id=False)
    st["imageID"] = ""
    conds = [cond("PodReadyToStartContainers", "True", add(sched, 2))] if ctx.k8s >= "1.29" else []
    conds += [cond("Initialized", "True", sched),
              cond("Ready", "False", sched, "ContainersNotReady", f"containers with unready status: [{c['name']}]"),
              cond("ContainersReady", "False", sched, "ContainersNotReady", f"containers with unready status: [{c['name']}]"),
              cond("PodScheduled", "True", sched)]
    kw = dict(pod_kwargs or {})
    if pull_secrets:
        kw.setdefault("extra_spec", {})["imagePullSecrets"] = [{"name": s_} for s_ in pull_secrets]
    p = pod(rnd, ns, pod_name, [c], created=created, labels=labels, owner=owner, node=node, node_ip=node_ip,
            pod_ip=pod_ip, phase="Pending", conditions=conds, statuses=[st], sa=sa, volumes=volumes,
            start_time=sched, **kw)
    ev = ctx.ev
    fp = f"spec.containers{{{c['name']}}}"
    ctx.scheduled(p, node, sched)
    # pull attempts back off 10s, 20s, 40s ... 300s
    times = []
    t = add(sched, 1)
    i = 0
    while t < ctx.now and len(times) < attempts:
        times.append(t)
        t = add(t, min(10 * 2 ** i, 300) + rnd.randint(1, 4))
        i += 1
    last_try = times[-1]
    ev.add(p, "Pulling", f'Pulling image "{img}"', host=node, first=times[0], last=last_try, count=len(times), field_path=fp)
    ev.add(p, "Failed", f'Failed to pull image "{img}": {err}', type_="Warning", host=node, first=add(times[0], 1.2),
           last=add(last_try, 1.2), count=len(times), field_path=fp)
    ev.add(p, "Failed", "Error: ErrImagePull", type_="Warning", host=node, first=add(times[0], 1.2),
           last=add(last_try, 1.2), count=len(times), field_path=fp)
    bo_first = add(times[0], 2)
    bo_last = add(ctx.now, -rnd.randint(3, 20))
    n = max(len(times), int((bo_last - bo_first).total_seconds() / 14))
    ev.add(p, "BackOff", f'Back-off pulling image "{img}"', host=node, first=bo_first, last=bo_last, count=n, field_path=fp)
    ev.add(p, "Failed", "Error: ImagePullBackOff", type_="Warning", host=node, first=bo_first, last=bo_last, count=n,
           field_path=fp)
    return p


def container_creating(ctx, *, ns, pod_name, containers, node, node_ip, created, owner=None, labels=None,
                       volumes=None, sa="default", pod_kwargs=None, waiting_reason="ContainerCreating",
                       waiting_msg=None, pod_ip=None, sandbox_ready=False):
    rnd = ctx.rnd
    sched = T(created)
    sts = [cstatus(rnd, c["name"], c["image"], state=waiting(waiting_reason, waiting_msg), ready=False, restarts=0,
                   started=False, runtime=ctx.runtime, with_id=False) for c in containers]
    for s_ in sts:
        s_["imageID"] = ""
    names_ = ", ".join(c["name"] for c in containers)
    conds = [cond("PodReadyToStartContainers", "True" if sandbox_ready else "False", sched)] if ctx.k8s >= "1.29" else []
    conds += [cond("Initialized", "True", sched),
              cond("Ready", "False", sched, "ContainersNotReady", f"containers with unready status: [{names_}]"),
              cond("ContainersReady", "False", sched, "ContainersNotReady", f"containers with unready status: [{names_}]"),
              cond("PodScheduled", "True", sched)]
    p = pod(rnd, ns, pod_name, containers, created=created, labels=labels, owner=owner, node=node, node_ip=node_ip,
            pod_ip=pod_ip, phase="Pending", conditions=conds, statuses=sts, sa=sa, volumes=volumes, start_time=sched,
            **(pod_kwargs or {}))
    ctx.scheduled(p, node, sched)
    return p
