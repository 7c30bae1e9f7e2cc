"""alerts family: Alertmanager payloads beside a describe."""
import json

from build import *  # noqa
from k8sfmt import describe_pod
from scen import *  # noqa

F = "alerts"


def crashlooping_alert():
    case, now = "kube-pod-crashlooping", "2026-11-22T06:48:19Z"
    for tw in (False, True):
        ctx = Ctx(1101 + tw, now, k8s="1.31")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        ns, app, h, sfx = "notifications", "push-gateway", "5c8d7b9f66", "vw2hq"
        pname = f"{app}-{h}-{sfx}"
        owner = ("apps/v1", "ReplicaSet", f"{app}-{h}", ctx.rnd.uid())
        lab = {"app.kubernetes.io/name": app, "app.kubernetes.io/instance": "push", "pod-template-hash": h}
        c = ctr("gateway", "ghcr.io/lanternbay/push-gateway:3.4.2", ports=[(8080, "http")],
                env=[env("REDIS_URL", "redis://push-redis-master.notifications.svc:6379/0"), env("NODE_ENV", "production")],
                resources=res("100m", "192Mi", None, "384Mi"))
        node_, nip, pip = "nodes-spot-c7gk", "10.33.4.19", "10.33.196.44"
        if not tw:
            p = crashloop(ctx, ns=ns, pod_name=pname, container=c, node=node_, node_ip=nip, pod_ip=pip,
                          created="2026-11-22T06:05:51Z", run_secs=1.6, exit_code=1, owner=owner, labels=lab)
            s, f = p["_attempts"][-1]
            write(d, "previous.log", (
                f'{{"level":"info","time":"{ts_log(add(s, 0.4))}","msg":"push-gateway 3.4.2 starting","pid":1}}\n'
                "[ioredis] Unhandled error event: Error: connect ECONNREFUSED 10.96.118.40:6379\n"
                "    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1610:16)\n"
                f'{{"level":"fatal","time":"{ts_log(add(s, 1.5))}","msg":"redis unavailable after 3 attempts, exiting","redis":"push-redis-master.notifications.svc:6379","err":"connect ECONNREFUSED 10.96.118.40:6379"}}\n'))
            status, ends, starts = "firing", "0001-01-01T00:00:00Z", "2026-11-22T06:21:49.118Z"
        else:
            p = healthy(ctx, ns=ns, pod_name=pname, containers=[c], node=node_, node_ip=nip, pod_ip=pip,
                        created="2026-11-22T06:05:51Z", owner=owner, labels=lab, restarts=4,
                        started_at="2026-11-22T06:24:37Z",
                        last_state=terminated(1, "Error", "2026-11-22T06:21:55Z", "2026-11-22T06:21:57Z"))
            fp_ = "spec.containers{gateway}"
            img = c["image"]
            ctx.scheduled(p, node_, "2026-11-22T06:05:51Z")
            ctx.ev.add(p, "Pulling", f'Pulling image "{img}"', host=node_, first="2026-11-22T06:05:52Z", field_path=fp_)
            ctx.ev.add(p, "Pulled", ctx.m_pulled_fresh(img, 2.7, 61_530_118), host=node_, first="2026-11-22T06:05:55Z", field_path=fp_)
            ctx.ev.add(p, "Created", ctx.m_created("gateway"), host=node_, first="2026-11-22T06:05:55Z", last="2026-11-22T06:24:37Z", count=5, field_path=fp_)
            ctx.ev.add(p, "Started", ctx.m_started("gateway"), host=node_, first="2026-11-22T06:05:55Z", last="2026-11-22T06:24:37Z", count=5, field_path=fp_)
            ctx.ev.add(p, "Pulled", ctx.m_present(img), host=node_, first="2026-11-22T06:06:08Z", last="2026-11-22T06:24:36Z", count=4, field_path=fp_)
            ctx.ev.add(p, "BackOff", ctx.m_backoff("gateway", p), type_="Warning", host=node_, first="2026-11-22T06:05:59Z",
                       last="2026-11-22T06:24:21Z", count=19, field_path=fp_)
            write(d, "current.log", (
                '{"level":"info","time":"2026-11-22T06:24:37.511Z","msg":"push-gateway 3.4.2 starting","pid":1}\n'
                '{"level":"info","time":"2026-11-22T06:24:37.902Z","msg":"redis connected","redis":"push-redis-master.notifications.svc:6379"}\n'
                '{"level":"info","time":"2026-11-22T06:24:38.004Z","msg":"listening","port":8080}\n'))
            status, ends, starts = "resolved", "2026-11-22T06:39:49.118Z", "2026-11-22T06:21:49.118Z"
        fp = "4c5b1a2f9e7d3c80"
        alert = {"status": status, "labels": {
            "alertname": "KubePodCrashLooping", "cluster": "prod-eu-1", "container": "gateway", "endpoint": "http",
            "instance": "10.33.128.7:8080", "job": "kube-state-metrics", "namespace": ns, "pod": pname,
            "prometheus": "monitoring/kube-prometheus-stack-prometheus", "reason": "CrashLoopBackOff",
            "service": "kube-prometheus-stack-kube-state-metrics", "severity": "warning", "uid": p["metadata"]["uid"]},
            "annotations": {"description": f'Pod {ns}/{pname} (gateway) is in waiting state (reason: "CrashLoopBackOff").',
                            "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping",
                            "summary": "Pod is crash looping."},
            "startsAt": starts, "endsAt": ends,
            "generatorURL": "https://prometheus.prod-eu-1.lanternbay.io/graph?g0.expr=max_over_time%28kube_pod_container_status_waiting_reason%7Bjob%3D%22kube-state-metrics%22%2Cnamespace%3D~%22.%2A%22%2Creason%3D%22CrashLoopBackOff%22%7D%5B5m%5D%29+%3E%3D+1&g0.tab=1",
            "fingerprint": fp}
        payload = {"receiver": "team-notifications-slack", "status": status, "alerts": [alert],
                   "groupLabels": {"alertname": "KubePodCrashLooping", "namespace": ns},
                   "commonLabels": alert["labels"], "commonAnnotations": alert["annotations"],
                   "externalURL": "https://alertmanager.prod-eu-1.lanternbay.io", "version": "4",
                   "groupKey": '{}/{severity=~"warning|critical"}:{alertname="KubePodCrashLooping", namespace="notifications"}',
                   "truncatedAlerts": 0}
        write(d, "alertmanager-webhook.json", json.dumps(payload, indent=2) + "\n")
        write(d, "describe-pod.txt", describe_pod(p, ctx.ev.for_object(pname, "Pod"), ctx.now))
        if not tw:
            case_labels(d, F, ["alertmanager", "describe-new", "log"], True, now, {
                "object": f"Pod/{ns}/{pname}", "cause": "dependency-unreachable",
                "mentions": ["6379", "ECONNREFUSED"]})
            readme(d, "KubePodCrashLooping for push-gateway: Redis refuses connections", """
Files: `alertmanager-webhook.json` (the webhook payload Alertmanager posted: one firing
`KubePodCrashLooping` alert), `describe-pod.txt` (kubectl 1.31) and `previous.log`.

The alert only says the pod is crash-looping. The previous container's log says why: the Redis
master Service has no ready endpoint (the Redis pod was evicted from a reclaimed spot node), every
connection to `10.96.118.40:6379` is refused (`ECONNREFUSED`), and the gateway exits 1 after three
attempts. Capture 06:48:19 (implied by the describe ages).
""")
        else:
            case_labels(d, F, ["alertmanager", "describe-new", "log"], False, now)
            readme(d, "KubePodCrashLooping resolved: push-gateway recovered (twin)", """
Files: `alertmanager-webhook.json` (the same alert, `status: resolved`), `describe-pod.txt` and
`current.log`. Redis came back at 06:24; the pod has run since then (4 earlier restarts, Ready).
The alert is resolved; at capture there is no incident.
""")


def oom_alert():
    case, now = "kube-container-oomkilled", "2026-11-28T20:17:45Z"
    for tw in (False, True):
        ctx = Ctx(1111 + tw, now, k8s="1.30")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        ns, app, h, sfx = "search", "query-planner", "69d8c7b5f4", "mk3sd"
        pname = f"{app}-{h}-{sfx}"
        owner = ("apps/v1", "ReplicaSet", f"{app}-{h}", ctx.rnd.uid())
        lab = {"app": app, "pod-template-hash": h}
        lim = "768Mi" if not tw else "1536Mi"
        c = ctr("planner", "docker.io/saltfen/query-planner:0.44.0", ports=[(7000, "grpc")],
                env=[env("PLANNER_CACHE_ENTRIES", "2000000"), env("GOMEMLIMIT", "700MiB" if not tw else "1400MiB")],
                resources=res("500m", lim, "2", lim))
        node_, nip, pip = "search-pool-n4x8v", "10.90.1.44", "10.90.34.17"
        if not tw:
            p = crashloop(ctx, ns=ns, pod_name=pname, container=c, node=node_, node_ip=nip, pod_ip=pip,
                          created="2026-11-28T19:21:10Z", run_secs=lambda i: 240 + 17 * (i % 3), exit_code=137,
                          reason="OOMKilled", owner=owner, labels=lab, force_waiting=False)
            state = "active"
            ends = "2026-11-28T20:21:15.000Z"
        else:
            p = healthy(ctx, ns=ns, pod_name=pname, containers=[c], node=node_, node_ip=nip, pod_ip=pip,
                        created="2026-11-27T11:02:40Z", owner=owner, labels=lab)
            state = "active"
            ends = "2026-11-28T20:21:15.000Z"
        alerts = [{"annotations": {
            "description": f"Container planner in pod {ns}/{pname} has been OOMKilled 3 times in the last 30 minutes.",
            "summary": "Container OOMKilled repeatedly"},
            "endsAt": ends, "fingerprint": "b2e81c07a5d64f93", "receivers": [{"name": "search-oncall-pagerduty"}],
            "startsAt": "2026-11-28T19:48:15.000Z", "status": {"inhibitedBy": [], "silencedBy": [], "state": state},
            "updatedAt": "2026-11-28T20:17:15.412Z",
            "generatorURL": "http://prometheus-k8s-0:9090/graph?g0.expr=increase%28kube_pod_container_status_restarts_total%5B30m%5D%29+%3E%3D+2+and+on%28namespace%2C+pod%2C+container%29+kube_pod_container_status_last_terminated_reason%7Breason%3D%22OOMKilled%22%7D+%3D%3D+1&g0.tab=1",
            "labels": {"alertname": "KubeContainerOOMKilled", "container": "planner", "namespace": ns, "pod": pname,
                       "reason": "OOMKilled", "severity": "critical", "team": "search"}}]
        if tw:
            alerts = []
        write(d, "amtool-alerts.json", json.dumps(alerts) + "\n")
        write(d, "describe-pod.txt", describe_pod(p, ctx.ev.for_object(pname, "Pod"), ctx.now))
        if not tw:
            case_labels(d, F, ["alertmanager", "describe-new"], True, now, {
                "object": f"Pod/{ns}/{pname}", "cause": "oom-killed", "mentions": ["OOMKilled", "768Mi"]})
            readme(d, "KubeContainerOOMKilled for query-planner: 768Mi limit too small for its cache", """
Files: `amtool-alerts.json` (`amtool alert query -o json`: one active alert from a custom
`KubeContainerOOMKilled` rule) and `describe-pod.txt` (kubectl 1.30).

`PLANNER_CACHE_ENTRIES` was raised to 2,000,000; the Go process outgrows the container's 768Mi
limit about four minutes after each start and is killed by the kernel (`Last State: Terminated,
Reason: OOMKilled, Exit Code: 137`). Capture 20:17:45 (implied).
""")
        else:
            case_labels(d, F, ["alertmanager", "describe-new"], False, now)
            readme(d, "no active alerts, query-planner healthy with a 1536Mi limit (twin)", """
Files: `amtool-alerts.json` (`[]`: no active alert) and `describe-pod.txt`: limit 1536Mi,
`GOMEMLIMIT` matched, running since yesterday. No incident.
""")


CASES = [crashlooping_alert, oom_alert]
