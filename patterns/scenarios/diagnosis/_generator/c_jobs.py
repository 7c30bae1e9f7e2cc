"""jobs family."""
from build import *  # noqa
from scen import *  # noqa
from k8sfmt import describe_job, kubectl_get_events, kubectl_json_list

F = "jobs"


def job_obj(ctx, ns, name, tmpl_pod, *, created, backoff=6, deadline=None, owner=None, status=None, completions=1,
            ttl=None, labels=None):
    uid = ctx.rnd.uid()
    sel = {"batch.kubernetes.io/controller-uid": uid}
    tmpl = template_of(tmpl_pod)
    tmpl["metadata"]["labels"] = dict({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
                                       "controller-uid": uid, "job-name": name}, **(labels or {}))
    meta = {"name": name, "namespace": ns, "uid": uid, "resourceVersion": ctx.rnd.rv(), "generation": 1,
            "creationTimestamp": ts(created), "labels": dict({"batch.kubernetes.io/controller-uid": uid,
                                                              "batch.kubernetes.io/job-name": name, "controller-uid": uid,
                                                              "job-name": name}, **(labels or {}))}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "CronJob", "name": owner[0], "uid": owner[1],
                                    "controller": True, "blockOwnerDeletion": True}]
    spec = {"parallelism": 1, "completions": completions}
    if deadline:
        spec["activeDeadlineSeconds"] = deadline
    spec["backoffLimit"] = backoff
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    spec["selector"] = {"matchLabels": sel}
    spec["manualSelector"] = False
    spec["template"] = tmpl
    spec["completionMode"] = "NonIndexed"
    spec["suspend"] = False
    spec["podReplacementPolicy"] = "TerminatingOrFailed"
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec, "status": status or {}}


def backoff_limit():
    case, now = "job-backoff-limit", "2026-11-26T02:19:44Z"
    for tw in (False, True):
        ctx = Ctx(701 + tw, now, k8s="1.31")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        ns, cj, jname = "data-platform", "warehouse-etl", "warehouse-etl-29927640"
        cj_uid = ctx.rnd.uid()
        c = ctr("etl", "ghcr.io/brinewood/warehouse-etl:2026.11.24", command=["/app/run-etl.sh"],
                env=[env("PGHOST", "warehouse-db.data-platform.svc.cluster.local"), env("PGUSER", "etl"),
                     env("PGPASSWORD", secret=("warehouse-etl-db", "password")), env("ETL_DATE", "yesterday")],
                resources=res("500m", "512Mi", None, "1Gi"))
        tmpl = pod(ctx.rnd, ns, "x", [c], created="2026-11-26T02:00:00Z", restart_policy="Never", api_access=False)
        created = T("2026-11-26T02:00:00Z")
        job = job_obj(ctx, ns, jname, tmpl, created=created, backoff=3, owner=(cj, cj_uid), ttl=86400)
        juid = job["metadata"]["uid"]
        jl = {"batch.kubernetes.io/controller-uid": juid, "batch.kubernetes.io/job-name": jname, "controller-uid": juid,
              "job-name": jname}
        jowner = ("batch/v1", "Job", jname, juid)
        jo = ("Job", ns, jname, juid, "batch/v1")
        pods = []
        node_choices = [("dp-node-1", "10.3.0.11"), ("dp-node-2", "10.3.0.12"), ("dp-node-3", "10.3.0.13")]
        starts = [0, 13, 36, 78] if not tw else [0, 14]
        for i, off in enumerate(starts):
            sfx = ["4c7hz", "p9xqw", "tk2mv", "b8nls"][i]
            pname = f"{jname}-{sfx}"
            nd, nip = node_choices[i % 3]
            pc = ctr("etl", c["image"], command=c["command"], env=c["env"], resources=c["resources"])
            s0 = add(created, off + 2.1)
            ok = tw and i == len(starts) - 1
            dur = 1.3 if not ok else 742.0
            term = terminated(0 if ok else 2, "Completed" if ok else "Error", s0, add(s0, dur))
            term["terminated"]["containerID"] = f"containerd://{ctx.rnd.hex()}"
            st = cstatus(ctx.rnd, "etl", c["image"], state=term, ready=False, restarts=0, started=False)
            conds = [cond("PodReadyToStartContainers", "False", add(s0, dur + 1)),
                     cond("Initialized", "True", add(created, off)),
                     cond("Ready", "False", add(s0, dur), "PodCompleted" if ok else "PodFailed"),
                     cond("ContainersReady", "False", add(s0, dur), "PodCompleted" if ok else "PodFailed"),
                     cond("PodScheduled", "True", add(created, off))]
            p = pod(ctx.rnd, ns, pname, [pc], created=add(created, off), labels=jl, owner=jowner, node=nd, node_ip=nip,
                    pod_ip=f"10.244.{1 + i % 3}.{120 + i * 7}", phase="Succeeded" if ok else "Failed",
                    conditions=conds, statuses=[st], restart_policy="Never", generate_name=f"{jname}-",
                    annotations={"batch.kubernetes.io/job-tracking": ""})
            p["metadata"]["finalizers"] = [] if True else None
            p["metadata"].pop("finalizers")
            pods.append(p)
            ctx.ev.add(jo, "SuccessfulCreate", f"Created pod: {pname}", component="job-controller", first=add(created, off))
            ctx.scheduled(p, nd, add(created, off))
            fp = "spec.containers{etl}"
            ctx.ev.add(p, "Pulled", ctx.m_present(c["image"]) if i else ctx.m_pulled_fresh(c["image"], 1.4, 88_214_400),
                       host=nd, first=add(s0, -0.4), field_path=fp)
            ctx.ev.add(p, "Created", ctx.m_created("etl"), host=nd, first=add(s0, -0.2), field_path=fp)
            ctx.ev.add(p, "Started", ctx.m_started("etl"), host=nd, first=s0, field_path=fp)
            t = lambda x, s0=s0: ts_log(add(s0, x), "iso")
            if ok:
                log = (f"[{t(0.0)}] run-etl: date=2026-11-25 host=warehouse-db.data-platform.svc.cluster.local\n"
                       f"[{t(0.3)}] run-etl: extracting orders ... 1482213 rows\n"
                       f"[{t(741.6)}] run-etl: load complete, 14 tables refreshed\n")
            else:
                log = (f"[{t(0.0)}] run-etl: date=2026-11-25 host=warehouse-db.data-platform.svc.cluster.local\n"
                       "psql: error: connection to server at \"warehouse-db.data-platform.svc.cluster.local\" (10.96.14.3), port 5432 failed: "
                       "FATAL:  password authentication failed for user \"etl\"\n"
                       f"[{t(1.2)}] run-etl: cannot connect to the warehouse, giving up\n")
            write(d, f"logs/{pname}.log", log)
        if not tw:
            job["status"] = {"conditions": [
                {"type": "FailureTarget", "status": "True", "lastProbeTime": "2026-11-26T01:56:00Z" if False else "2026-11-26T02:01:21Z",
                 "lastTransitionTime": "2026-11-26T02:01:21Z", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"},
                {"type": "Failed", "status": "True", "lastProbeTime": "2026-11-26T02:01:21Z", "lastTransitionTime": "2026-11-26T02:01:21Z",
                 "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}],
                "startTime": "2026-11-26T02:00:00Z", "failed": 4, "terminating": 0, "ready": 0,
                "uncountedTerminatedPods": {}}
            ctx.ev.add(jo, "BackoffLimitExceeded", "Job has reached the specified backoff limit", type_="Warning",
                       component="job-controller", first="2026-11-26T02:01:21Z")
            # unrelated trouble in the same namespace: a dashboard whose image tag is wrong
            other = ctr("superset", "docker.io/apache/superset:4.1.1-dev", ports=[(8088, "http")], resources=res("250m", "1Gi"))
            op = pull_failing(ctx, ns=ns, pod_name="superset-6d9c7f5b84-8xq2j", container=other, node="dp-node-2",
                              node_ip="10.3.0.12", pod_ip="10.244.2.41", created="2026-11-26T01:40:12Z",
                              err='rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/apache/superset:4.1.1-dev": failed to resolve reference "docker.io/apache/superset:4.1.1-dev": docker.io/apache/superset:4.1.1-dev: not found',
                              attempts=8, owner=("apps/v1", "ReplicaSet", "superset-6d9c7f5b84", ctx.rnd.uid()),
                              labels={"app": "superset", "pod-template-hash": "6d9c7f5b84"})
            pods.append(op)
        else:
            job["status"] = {"conditions": [
                {"type": "SuccessCriteriaMet", "status": "True", "lastProbeTime": "2026-11-26T02:12:38Z", "lastTransitionTime": "2026-11-26T02:12:38Z",
                 "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods"},
                {"type": "Complete", "status": "True", "lastProbeTime": "2026-11-26T02:12:38Z", "lastTransitionTime": "2026-11-26T02:12:38Z",
                 "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods"}],
                "startTime": "2026-11-26T02:00:00Z", "completionTime": "2026-11-26T02:12:38Z", "succeeded": 1, "failed": 1,
                "terminating": 0, "ready": 0, "uncountedTerminatedPods": {}}
            ctx.ev.add(jo, "Completed", "Job completed", component="job-controller", first="2026-11-26T02:12:38Z")
        cjo = ("CronJob", ns, cj, cj_uid, "batch/v1")
        ctx.ev.add(cjo, "SuccessfulCreate", f"Created job {jname}", component="cronjob-controller", first=created)
        write(d, "jobs-and-pods.json", kubectl_json_list([job] + pods))
        write(d, "events.txt", kubectl_get_events(ctx.ev.items, ctx.now))
        if not tw:
            case_labels(d, F, ["json-list", "events-get", "log"], True, now, {
                "object": f"Job/{ns}/{jname}", "cause": "job-backoff-limit",
                "mentions": ["BackoffLimitExceeded", "password authentication failed"],
                "caused_by": f"Secret/{ns}/warehouse-etl-db"})
            readme(d, "nightly warehouse ETL Job failed: BackoffLimitExceeded, every pod hit a password error", """
Files: `jobs-and-pods.json` (`kubectl get jobs,pods -n data-platform -o json`), `events.txt`
(`kubectl get events -n data-platform`) and `logs/<pod>.log` (`kubectl logs` of each Job pod).

The database password was rotated but the `warehouse-etl-db` Secret kept the old value. Each pod
of Job `warehouse-etl-29927640` (created by CronJob `warehouse-etl`) exits 2 after psql reports
`FATAL:  password authentication failed for user "etl"`; after 4 failures (backoffLimit 3) the Job
is marked Failed with `BackoffLimitExceeded`. Unrelated: a `superset` pod in the same namespace is
in ImagePullBackOff (wrong tag), which is not what failed the Job. Capture 02:19:44.
""")
        else:
            case_labels(d, F, ["json-list", "events-get", "log"], False, now)
            readme(d, "warehouse ETL Job completed after one retry (twin)", """
Files: `jobs-and-pods.json`, `events.txt`, `logs/`. The first pod failed (the database restarted
at 02:00 for maintenance); the retry 14 s later succeeded and the Job is Complete. A retried
transient within the backoff limit, not an incident.
""")
            # adjust the first (failed) pod log of the twin to a transient reason
            first = pods[0]["metadata"]["name"]
            s0 = add(created, 2.1)
            write(d, f"logs/{first}.log", (
                f"[{ts_log(s0)}] run-etl: date=2026-11-25 host=warehouse-db.data-platform.svc.cluster.local\n"
                "psql: error: connection to server at \"warehouse-db.data-platform.svc.cluster.local\" (10.96.14.3), port 5432 failed: "
                "FATAL:  the database system is starting up\n"
                f"[{ts_log(add(s0, 1.2))}] run-etl: cannot connect to the warehouse, giving up\n"))


def deadline():
    case, now = "job-deadline", "2026-11-19T05:47:02Z"
    for tw in (False, True):
        ctx = Ctx(711 + tw, now, k8s="1.30")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        ns, jname = "search", "reindex-products-20261119"
        c = ctr("reindex", "docker.io/ashgrove/es-reindexer:1.7.2",
                args=["--source=products-v41", "--dest=products-v42", "--slices=auto", "--wait"],
                env=[env("ES_URL", "https://search-es-http.search.svc:9200"), env("ES_API_KEY", secret=("reindexer-api-key", "key"))],
                resources=res("100m", "128Mi", None, "256Mi"))
        tmpl = pod(ctx.rnd, ns, "x", [c], created="2026-11-19T05:00:00Z", restart_policy="Never", api_access=False,
                   sa="reindexer")
        job = job_obj(ctx, ns, jname, tmpl, created="2026-11-19T05:00:00Z", backoff=2, deadline=1800,
                      labels={"app": "reindex-products"})
        juid = job["metadata"]["uid"]
        jo = ("Job", ns, jname, juid, "batch/v1")
        pname = f"{jname}-x7w4d"
        ctx.ev.add(jo, "SuccessfulCreate", f"Created pod: {pname}", component="job-controller", first="2026-11-19T05:00:00Z")
        if not tw:
            job["status"] = {"conditions": [
                {"type": "FailureTarget", "status": "True", "lastProbeTime": "2026-11-19T05:30:00Z", "lastTransitionTime": "2026-11-19T05:30:00Z",
                 "reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline"},
                {"type": "Failed", "status": "True", "lastProbeTime": "2026-11-19T05:30:31Z", "lastTransitionTime": "2026-11-19T05:30:31Z",
                 "reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline"}],
                "startTime": "2026-11-19T05:00:00Z", "failed": 1, "terminating": 0, "ready": 0, "uncountedTerminatedPods": {}}
            ctx.ev.add(jo, "SuccessfulDelete", f"Deleted pod: {pname}", component="job-controller", first="2026-11-19T05:30:00Z")
            ctx.ev.add(jo, "DeadlineExceeded", "Job was active longer than specified deadline", type_="Warning",
                       component="job-controller", first="2026-11-19T05:30:31Z")
        else:
            job["spec"]["activeDeadlineSeconds"] = 5400
            job["status"] = {"conditions": [
                {"type": "Complete", "status": "True", "lastProbeTime": "2026-11-19T05:41:17Z", "lastTransitionTime": "2026-11-19T05:41:17Z",
                 "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods"}],
                "startTime": "2026-11-19T05:00:00Z", "completionTime": "2026-11-19T05:41:17Z", "succeeded": 1, "terminating": 0,
                "ready": 0, "uncountedTerminatedPods": {}}
            ctx.ev.add(jo, "Completed", "Job completed", component="job-controller", first="2026-11-19T05:41:17Z")
        job["kind"] = "Job"
        write(d, "describe-job.txt", describe_job(job, ctx.ev.for_object(jname, "Job"), ctx.now))
        if not tw:
            case_labels(d, F, ["describe-new"], True, now, {
                "object": f"Job/{ns}/{jname}", "cause": "job-deadline", "mentions": ["DeadlineExceeded", "1800s"]})
            readme(d, "product reindex Job killed at its 1800 s activeDeadlineSeconds", """
File: `describe-job.txt` (`kubectl describe job`, kubectl 1.30; `describe job` prints no
conditions, the reason is in the events).

The reindex of `products-v41` into `products-v42` grew with the catalogue and now needs about
40 minutes; the Job allows 1800 s. At 05:30 the job controller deleted the running pod and marked
the Job failed: `DeadlineExceeded: Job was active longer than specified deadline`. Capture 05:47:02.
""")
        else:
            case_labels(d, F, ["describe-new"], False, now)
            readme(d, "product reindex Job completed within a 5400 s deadline (twin)", """
File: `describe-job.txt`. Deadline raised to 5400 s; the reindex took 41 minutes and the Job is
complete. No incident.
""")


CASES = [backoff_limit, deadline]
