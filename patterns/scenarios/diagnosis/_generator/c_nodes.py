"""nodes family."""
import json

from build import *  # noqa
from k8sfmt import describe_pod, kubectl_events, kubectl_get_events, kubectl_json_list, kubectl_yaml_list, typed_list
from scen import *  # noqa

F = "nodes"


def node_not_ready():
    case, now = "node-not-ready", "2026-11-27T16:31:09Z"
    for tw in (False, True):
        ctx = Ctx(801 + tw, now, k8s="1.30")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        bad = "wk-prod-07"
        nodes = []
        for n, ip in ([("wk-prod-05", "10.16.2.15"), ("wk-prod-06", "10.16.2.16"), (bad, "10.16.2.17")]):
            if n == bad and not tw:
                nodes.append(node(ctx.rnd, n, ip, created="2026-08-02T11:20:00Z", ready="Unknown",
                                  ready_since="2026-11-27T16:12:48Z", heartbeat="2026-11-27T16:12:05Z", kubelet="v1.30.6",
                                  runtime="containerd://1.7.23", cpu="8", mem_ki=32868472,
                                  taints=[{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-11-27T16:12:53Z"},
                                          {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule", "timeAdded": "2026-11-27T16:12:48Z"}]))
            else:
                nodes.append(node(ctx.rnd, n, ip, created="2026-08-02T11:20:00Z", ready=True, ready_since="2026-10-30T04:11:19Z",
                                  heartbeat=add(now, -ctx.rnd.randint(5, 50)), kubelet="v1.30.6", runtime="containerd://1.7.23",
                                  cpu="8", mem_ki=32868472))
        bn = nodes[2]
        pods = []
        specs = [("payments-api", "7f9c6d5b8b", "mq2xh", "harbor.corp-east.net/pay/payments-api:8.2.1", 8080, "payments"),
                 ("fraud-scorer", "65b4c8d7f9", "8zkvn", "harbor.corp-east.net/pay/fraud-scorer:3.0.9", 9000, "payments"),
                 ("node-exporter", None, "l4tbq", "quay.io/prometheus/node-exporter:v1.8.2", 9100, "monitoring")]
        for app, h, sfx, img, port, ns in specs:
            pname = f"{app}-{h}-{sfx}" if h else f"{app}-{sfx}"
            owner = ("apps/v1", "ReplicaSet", f"{app}-{h}", ctx.rnd.uid()) if h else ("apps/v1", "DaemonSet", app, ctx.rnd.uid())
            lab = {"app": app, "pod-template-hash": h} if h else {"app": app, "controller-revision-hash": "6d8c9b7f54", "pod-template-generation": "3"}
            c = ctr(app, img, ports=[(port, "http")], resources=res("100m", "128Mi"))
            p = healthy(ctx, ns=ns, pod_name=pname, containers=[c], node=bad, node_ip="10.16.2.17",
                        pod_ip=f"10.244.7.{30 + len(pods) * 11}" if h else "10.16.2.17", created="2026-11-20T09:14:22Z",
                        owner=owner, labels=lab)
            if not tw:
                for cc in p["status"]["conditions"]:
                    if cc["type"] == "Ready":
                        cc["status"] = "False"
                        cc["lastTransitionTime"] = "2026-11-27T16:12:48Z"
                        cc.pop("reason", None)
                if h:
                    p["metadata"]["deletionTimestamp"] = "2026-11-27T16:17:53Z"
                    p["metadata"]["deletionGracePeriodSeconds"] = 30
                    p["status"]["conditions"].insert(0, cond("DisruptionTarget", "True", "2026-11-27T16:17:53Z",
                                                             "DeletionByTaintManager", "Taint manager: deleting due to NoExecute taint"))
                    ctx.ev.add(p, "TaintManagerEviction", f"Marking for deletion Pod {ns}/{pname}",
                               component="taint-eviction-controller", first="2026-11-27T16:17:53Z")
                ctx.ev.add(p, "NodeNotReady", "Node is not ready", type_="Warning", component="node-controller",
                           first="2026-11-27T16:12:48Z")
            pods.append(p)
        if not tw:
            no = ("Node", None, bad, bn["metadata"]["uid"], "v1")
            ctx.ev.add(no, "NodeNotReady", f"Node {bad} status is now: NodeNotReady", component="node-controller",
                       first="2026-11-27T16:12:48Z")
            for e in ctx.ev.items:
                if e["involvedObject"]["kind"] == "Node":
                    e["metadata"]["namespace"] = "default"
        write(d, "nodes.json", kubectl_json_list(nodes))
        # `kubectl get --raw "/api/v1/pods?fieldSelector=spec.nodeName%3Dwk-prod-07"`: the API's own PodList,
        # compact JSON on one line, items without kind/apiVersion
        write(d, f"pods-on-{bad}.json", json.dumps(typed_list("PodList", "v1", pods, ctx.rnd.rv()), separators=(",", ":")) + "\n")
        vers = {"clientVersion": {"major": "1", "minor": "31", "gitVersion": "v1.31.3", "gitCommit": "c83cbee114ec3d1d8d2e7b1c4a7e0f6d2b9a8c11",
                                  "gitTreeState": "clean", "buildDate": "2026-11-12T10:21:37Z", "goVersion": "go1.22.9",
                                  "compiler": "gc", "platform": "darwin/arm64"},
                "kustomizeVersion": "v5.4.2",
                "serverVersion": {"major": "1", "minor": "30", "gitVersion": "v1.30.6", "gitCommit": "00f20d443ba0cd2a7b5a4e9e84ce5b1a4f21d9ae",
                                  "gitTreeState": "clean", "buildDate": "2026-10-22T20:02:11Z", "goVersion": "go1.22.8",
                                  "compiler": "gc", "platform": "linux/amd64"}}
        write(d, "kubectl-version.json", json.dumps(vers, indent=2) + "\n")
        if not tw:
            write(d, "events.txt", kubectl_get_events(ctx.ev.items, ctx.now, all_namespaces=True))
            case_labels(d, F, ["json-list", "events-get"], True, now, {
                "object": f"Node/{bad}", "cause": "node-not-ready",
                "mentions": [bad, "Kubelet stopped posting node status"]})
            readme(d, "wk-prod-07 NotReady: the kubelet stopped posting status, its pods are being evicted", """
Files: `nodes.json` (`kubectl get nodes -o json`), `pods-on-wk-prod-07.json` (`kubectl get --raw
"/api/v1/pods?fieldSelector=spec.nodeName%3Dwk-prod-07"`: a compact `PodList` whose items carry no
kind/apiVersion), `events.txt` (`kubectl get events -A`) and
`kubectl-version.json` (`kubectl version -o json`: client/server versions, not cluster objects; a
reader should skip it).

At 16:12 the hypervisor host of `wk-prod-07` lost its storage path and the VM froze. The node
lifecycle controller set every condition to `Unknown` (`Kubelet stopped posting node status.`),
added the `node.kubernetes.io/unreachable` taints and marked the pods NotReady; five minutes later
the taint-eviction controller marked the Deployment pods for deletion, but they stay Terminating
because no kubelet confirms it. The DaemonSet pod tolerates the taint. Capture 16:31:09.
""")
        else:
            write(d, "events.txt", "No resources found\n")
            case_labels(d, F, ["json-list", "events-get"], False, now)
            readme(d, "all three workers Ready (twin)", """
Files: `nodes.json`, `pods-on-wk-prod-07.json`, `events.txt` (no events in any namespace within the
hour: `No resources found`) and `kubectl-version.json` (tool output, not cluster data). All nodes
are Ready and the pods run. No incident.
""")


def evicted_pod(ctx, *, ns, pname, c, node_, nip, pip, created, evicted_at, msg, owner, lab, exit_code=137):
    s0 = add(created, 3)
    term = terminated(exit_code, "Error", s0, add(evicted_at, 2))
    term["terminated"]["containerID"] = f"containerd://{ctx.rnd.hex()}"
    st = cstatus(ctx.rnd, c["name"], c["image"], state=term, ready=False, restarts=0, started=False)
    conds = [cond("DisruptionTarget", "True", evicted_at, "TerminationByKubelet", msg),
             cond("PodReadyToStartContainers", "False", add(evicted_at, 3)),
             cond("Initialized", "True", created),
             cond("Ready", "False", add(evicted_at, 2), "PodFailed"),
             cond("ContainersReady", "False", add(evicted_at, 2), "PodFailed"),
             cond("PodScheduled", "True", created)]
    p = pod(ctx.rnd, ns, pname, [c], created=created, labels=lab, owner=owner, node=node_, node_ip=nip, pod_ip=pip,
            phase="Failed", reason="Evicted", message=msg, conditions=conds, statuses=[st])
    fp = f"spec.containers{{{c['name']}}}"
    ctx.ev.add(p, "Evicted", msg, type_="Warning", host=node_, first=evicted_at)
    ctx.ev.add(p, "Killing", f"Stopping container {c['name']}", host=node_, first=add(evicted_at, 0.1), field_path=fp)
    return p


def disk_pressure():
    case, now = "node-disk-pressure", "2026-11-16T03:27:51Z"
    for tw in (False, True):
        ctx = Ctx(811 + tw, now, k8s="1.31")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        node_, nip = "gke-logs-pool-1-4f0a9c2e-5nfx", "10.132.0.37"
        h, sfx = "6c8f7d9b45", "dz4kq"
        pname = f"ingest-api-{h}-{sfx}"
        owner = ("apps/v1", "ReplicaSet", f"ingest-api-{h}", ctx.rnd.uid())
        lab = {"app": "ingest-api", "pod-template-hash": h}
        c = ctr("ingest-api", "europe-docker.pkg.dev/tallyhall/ingest/ingest-api:5.9.0", ports=[(8080, "http")],
                env=[env("LOG_LEVEL", "debug"), env("SPOOL_DIR", "/var/spool/ingest")],
                resources=res("500m", "512Mi", None, "1Gi"))
        msg = ("The node was low on resource: ephemeral-storage. Threshold quantity: 10182397542, available: 9418276Ki. "
               "Container ingest-api was using 61408344Ki, request is 0, has larger consumption of ephemeral-storage. ")
        if not tw:
            created = "2026-11-15T22:04:18Z"
            p = evicted_pod(ctx, ns="ingest", pname=pname, c=c, node_=node_, nip=nip, pip="10.96.4.22", created=created,
                            evicted_at="2026-11-16T03:05:42Z", msg=msg, owner=owner, lab=lab)
            no = ("Node", None, node_, ctx.rnd.uid(), "v1")
            ctx.ev.add(no, "NodeHasDiskPressure", f"Node {node_} status is now: NodeHasDiskPressure", host=node_,
                       first="2026-11-16T03:04:57Z")
            ctx.ev.add(no, "EvictionThresholdMet", "Attempting to reclaim ephemeral-storage", type_="Warning", host=node_,
                       first="2026-11-16T03:05:02Z", last="2026-11-16T03:05:40Z", count=3)
            ctx.ev.add(no, "FreeDiskSpaceFailed",
                       "Failed to garbage collect required amount of images. Attempted to free 9728183910 bytes, but only found 1422131200 bytes eligible to free.",
                       type_="Warning", host=node_, first="2026-11-16T03:05:12Z")
            ctx.ev.add(no, "NodeHasNoDiskPressure", f"Node {node_} status is now: NodeHasNoDiskPressure", host=node_,
                       first="2026-11-16T03:11:09Z")
            for e in ctx.ev.items:
                if e["involvedObject"]["kind"] == "Node":
                    e["metadata"]["namespace"] = "default"
            write(d, "describe-pod.txt", describe_pod(p, ctx.ev.for_object(pname, "Pod"), ctx.now))
            write(d, "events.txt", kubectl_get_events(ctx.ev.items, ctx.now, all_namespaces=True))
            case_labels(d, F, ["describe-new", "events-get"], True, now, {
                "object": f"Pod/ingest/{pname}", "cause": "node-disk-pressure", "mentions": ["ephemeral-storage"],
                "caused_by": f"Node/{node_}"})
            readme(d, "ingest-api evicted: the node ran out of ephemeral-storage", """
Files: `describe-pod.txt` (kubectl 1.31) and `events.txt` (`kubectl get events -A`).

`LOG_LEVEL=debug` was left on after an investigation; ingest-api spooled request bodies and debug
logs into its writable layer (no ephemeral-storage request or limit) until the node's disk crossed
the `nodefs.available` eviction threshold. The kubelet reported DiskPressure, failed to free enough
by image GC, and evicted the biggest consumer: `The node was low on resource: ephemeral-storage ...
Container ingest-api was using 61408344Ki`. Capture 03:27:51.
""")
        else:
            p = healthy(ctx, ns="ingest", pod_name=pname, containers=[c], node=node_, node_ip=nip, pod_ip="10.96.4.22",
                        created="2026-11-14T08:40:11Z", owner=owner, labels=lab)
            c["env"][0]["value"] = "info"
            write(d, "describe-pod.txt", describe_pod(p, [], ctx.now))
            write(d, "events.txt", "No resources found\n")
            case_labels(d, F, ["describe-new", "events-get"], False, now)
            readme(d, "ingest-api running, disk fine (twin)", """
Files: `describe-pod.txt` and `events.txt` (none). `LOG_LEVEL=info`, no disk pressure. No incident.
""")


def memory_pressure():
    case, now = "node-memory-pressure", "2026-11-02T22:14:36Z"
    for tw in (False, True):
        ctx = Ctx(821 + tw, now, k8s="1.29")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        node_, nip = "bm-r640-14", "172.24.9.14"
        pods = []
        specs = [("session-cache", "5b7d9c8f64", "w9g2c", "docker.io/library/memcached:1.6.32", 11211,
                  res("250m", "1Gi", None, None), "Container memcached was using 5312044Ki, request is 1Gi, has larger consumption of memory. ", "memcached"),
                 ("thumb-worker", "84f6c9d7b5", "k7p3x", "ghcr.io/marlpit/thumb-worker:2.2.0", 8080,
                  res("100m", "256Mi", None, None), "Container worker was using 1833220Ki, request is 256Mi, has larger consumption of memory. ", "worker")]
        for i, (app, h, sfx, img, port, r, cmsg, cname) in enumerate(specs):
            pname = f"{app}-{h}-{sfx}"
            owner = ("apps/v1", "ReplicaSet", f"{app}-{h}", ctx.rnd.uid())
            lab = {"app": app, "pod-template-hash": h}
            c = ctr(cname, img, ports=[(port, "tcp")], resources=r)
            if not tw:
                msg = f"The node was low on resource: memory. Threshold quantity: 100Mi, available: {[87040, 96212][i]}Ki. " + cmsg
                p = evicted_pod(ctx, ns="web", pname=pname, c=c, node_=node_, nip=nip, pip=f"10.233.88.{40 + i * 3}",
                                created="2026-11-01T06:50:00Z", evicted_at=["2026-11-02T21:58:14Z", "2026-11-02T21:58:44Z"][i],
                                msg=msg, owner=owner, lab=lab)
                p["status"]["conditions"] = [x for x in p["status"]["conditions"] if x["type"] != "PodReadyToStartContainers"]
            else:
                p = healthy(ctx, ns="web", pod_name=pname, containers=[c], node=node_, node_ip=nip,
                            pod_ip=f"10.233.88.{40 + i * 3}", created="2026-11-01T06:50:00Z", owner=owner, labels=lab)
            pods.append(p)
        # the replacement for the evicted cache, running elsewhere
        c = ctr("memcached", "docker.io/library/memcached:1.6.32", ports=[(11211, "tcp")], resources=res("250m", "1Gi"))
        if not tw:
            pods.append(healthy(ctx, ns="web", pod_name="session-cache-5b7d9c8f64-q2nfh", containers=[c], node="bm-r640-11",
                                node_ip="172.24.9.11", pod_ip="10.233.71.9", created="2026-11-02T21:58:14Z",
                                owner=("apps/v1", "ReplicaSet", "session-cache-5b7d9c8f64", ctx.rnd.uid()),
                                labels={"app": "session-cache", "pod-template-hash": "5b7d9c8f64"}))
            no = ("Node", None, node_, ctx.rnd.uid(), "v1")
            ctx.ev.add(no, "NodeHasInsufficientMemory", f"Node {node_} status is now: NodeHasInsufficientMemory", host=node_,
                       first="2026-11-02T21:57:52Z")
            ctx.ev.add(no, "EvictionThresholdMet", "Attempting to reclaim memory", type_="Warning", host=node_,
                       first="2026-11-02T21:58:02Z", last="2026-11-02T21:58:40Z", count=4)
            ctx.ev.add(no, "NodeHasSufficientMemory", f"Node {node_} status is now: NodeHasSufficientMemory", host=node_,
                       first="2026-11-02T22:03:27Z")
            for e in ctx.ev.items:
                if e["involvedObject"]["kind"] == "Node":
                    e["metadata"]["namespace"] = "default"
            write(d, "events.txt", kubectl_get_events(ctx.ev.items, ctx.now, all_namespaces=True))
        else:
            write(d, "events.txt", "No resources found\n")
        write(d, "pods.yaml", kubectl_yaml_list(pods))
        if not tw:
            case_labels(d, F, ["yaml-list", "events-get"], True, now, {
                "object": f"Pod/web/{pods[0]['metadata']['name']}", "cause": "node-memory-pressure",
                "mentions": [node_, "memory"], "caused_by": f"Node/{node_}"})
            readme(d, "pods evicted from bm-r640-14 under memory pressure", """
Files: `pods.yaml` (`kubectl get pods -n web -o yaml`) and `events.txt` (`kubectl get events -A`).

The memcached container was started without a memory limit and grew to ~5 GiB with a new
`-m` setting; together with thumb-worker it pushed `memory.available` on `bm-r640-14` below the
100Mi hard eviction threshold. The kubelet reported MemoryPressure and evicted the pods using the
most memory above their requests (`The node was low on resource: memory ...`). The cache's
replacement runs on another node. Capture 22:14:36.
""")
        else:
            case_labels(d, F, ["yaml-list", "events-get"], False, now)
            readme(d, "web pods running on bm-r640-14 (twin)", """
Files: `pods.yaml` and `events.txt` (none). No pressure, no evictions. No incident.
""")


def pid_pressure():
    case, now = "node-pid-pressure", "2026-11-25T13:40:27Z"
    for tw in (False, True):
        ctx = Ctx(831 + tw, now, k8s="1.32")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        node_, nip = "pool-render-m2k9d", "10.110.0.8"
        h, sfx = "7d9f8b6c5d", "xb2tn"
        pname = f"pdf-render-{h}-{sfx}"
        owner = ("apps/v1", "ReplicaSet", f"pdf-render-{h}", ctx.rnd.uid())
        lab = {"app": "pdf-render", "pod-template-hash": h}
        c = ctr("renderer", "registry.digitalocean.com/quayside/pdf-render:1.15.0", ports=[(3000, "http")],
                env=[env("CHROME_POOL_SIZE", "0"), env("CHROME_ARGS", "--no-sandbox --disable-gpu")],
                resources=res("1", "2Gi", None, "4Gi"))
        msg = "The node was low on resource: pids. Threshold quantity: 3276, available: 2871. "
        if not tw:
            p = evicted_pod(ctx, ns="documents", pname=pname, c=c, node_=node_, nip=nip, pip="10.244.6.52",
                            created="2026-11-25T09:17:33Z", evicted_at="2026-11-25T13:22:08Z", msg=msg, owner=owner, lab=lab)
            no = ("Node", None, node_, ctx.rnd.uid(), "v1")
            ctx.ev.add(no, "NodeHasInsufficientPID", f"Node {node_} status is now: NodeHasInsufficientPID", host=node_,
                       first="2026-11-25T13:21:51Z")
            ctx.ev.add(no, "EvictionThresholdMet", "Attempting to reclaim pids", type_="Warning", host=node_,
                       first="2026-11-25T13:21:58Z", last="2026-11-25T13:22:06Z", count=2)
            ctx.ev.add(no, "NodeHasSufficientPID", f"Node {node_} status is now: NodeHasSufficientPID", host=node_,
                       first="2026-11-25T13:27:11Z")
            for e in ctx.ev.items:
                if e["involvedObject"]["kind"] == "Node":
                    e["metadata"]["namespace"] = "default"
            write(d, "describe-pod.txt", describe_pod(p, ctx.ev.for_object(pname, "Pod"), ctx.now))
            write(d, "events.txt", kubectl_events(ctx.ev.items, ctx.now, all_namespaces=True))
            write(d, f"{pname}.log", (
                f"{ts_log('2026-11-25T13:21:40.118Z')} [pool] spawning chromium for job 88213 (active browsers: 611)\n"
                f"{ts_log('2026-11-25T13:21:44.902Z')} [pool] spawning chromium for job 88214 (active browsers: 612)\n"
                f"{ts_log('2026-11-25T13:21:47.310Z')} [render] job 88190 failed: Error: Failed to launch the browser process!\n"
                "[0100/000000.000000:FATAL:zygote_host_impl_linux.cc(201)] Check failed: . : Resource temporarily unavailable (11)\n"
                f"{ts_log('2026-11-25T13:21:49.007Z')} [render] job 88191 failed: Error: spawn /usr/bin/chromium EAGAIN\n"))
            case_labels(d, F, ["describe-new", "events-kubectl", "log"], True, now, {
                "object": f"Pod/documents/{pname}", "cause": "node-pid-pressure", "mentions": ["pid"],
                "caused_by": f"Node/{node_}"})
            readme(d, "pdf-render evicted under PID pressure (leaked chromium processes)", """
Files: `describe-pod.txt` (kubectl 1.32), `events.txt` (`kubectl events -A`) and the pod's log.

`CHROME_POOL_SIZE=0` disabled the browser pool's cap; each render job started a new chromium and
crashed jobs left zombies. Process count on the node neared the kernel limit; the kubelet's
`pid.available` signal crossed its threshold, the node reported PIDPressure and the kubelet
evicted the pod (`The node was low on resource: pids`). Capture 13:40:27.
""")
        else:
            c["env"][0]["value"] = "8"
            p = healthy(ctx, ns="documents", pod_name=pname, containers=[c], node=node_, node_ip=nip, pod_ip="10.244.6.52",
                        created="2026-11-24T16:02:10Z", owner=owner, labels=lab)
            write(d, "describe-pod.txt", describe_pod(p, [], ctx.now))
            write(d, "events.txt", "No events found.\n")
            write(d, f"{pname}.log", f"{ts_log('2026-11-25T13:39:58.771Z')} [pool] job 90412 rendered in 812ms (active browsers: 8)\n")
            case_labels(d, F, ["describe-new", "events-kubectl", "log"], False, now)
            readme(d, "pdf-render with a bounded browser pool (twin)", """
Files: `describe-pod.txt`, `events.txt` (none) and the log. Pool capped at 8 browsers. No incident.
""")


CASES = [node_not_ready, disk_pressure, memory_pressure, pid_pressure]
