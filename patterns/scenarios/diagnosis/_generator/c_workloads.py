"""workloads family."""
import json

from build import *  # noqa
from k8sfmt import bundle_json, iso, kubectl_get_events, kubectl_json_list, kubectl_yaml_list, typed_list
from scen import *  # noqa

F = "workloads"


def bad_rollout_bundle():
    case, now = "bad-rollout", "2026-11-30T17:26:41Z"
    for tw in (False, True):
        ctx = Ctx(901 + tw, now, k8s="1.31")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        B = f"{d}/bundle"
        ns, app = "ledger", "tally-api"
        old_h, new_h = "6f7b9c8d54", "85c6d7f9b4"
        nodes = [("ip-10-42-1-21.ec2.internal", "10.42.1.21"), ("ip-10-42-2-37.ec2.internal", "10.42.2.37"),
                 ("ip-10-42-3-12.ec2.internal", "10.42.3.12")]

        def mk(tag):
            return ctr("tally", f"123456789012.dkr.ecr.us-east-1.amazonaws.com/ledger/tally:{tag}", args=["serve", "--port=8080"],
                       ports=[(8080, "http")], env=[env("TALLY_DB_URL", secret=("tally-db", "url"))],
                       resources=res("250m", "256Mi", None, "512Mi"), readiness=http_probe("/healthz", 8080, period=5))

        old_uid, new_uid = ctx.rnd.uid(), ctx.rnd.uid()
        pods = []
        logs = {}
        for i, sfx in enumerate(["2kx7b", "nq8fd", "v5cwm"]):
            c = mk("3.9.2")
            p = healthy(ctx, ns=ns, pod_name=f"{app}-{old_h}-{sfx}", containers=[c], node=nodes[i][0], node_ip=nodes[i][1],
                        pod_ip=f"10.42.{1 + i}.{100 + i * 17}", created="2026-11-24T10:02:11Z",
                        owner=("apps/v1", "ReplicaSet", f"{app}-{old_h}", old_uid), labels={"app": app, "pod-template-hash": old_h})
            pods.append(p)
            s = T(p["status"]["containerStatuses"][0]["state"]["running"]["startedAt"])
            logs[(p["metadata"]["name"], "tally.log")] = (
                f'time="{iso(add(s, 0.2))}" level=info msg="tally 3.9.2 serving" addr=":8080"\n'
                f'time="{iso(add(now, -31))}" level=info msg="POST /v1/entries" status=201 duration=8.1ms\n')
        if not tw:
            c = mk("4.0.0")
            bad = crashloop(ctx, ns=ns, pod_name=f"{app}-{new_h}-jr6tl", container=c, node=nodes[1][0], node_ip=nodes[1][1],
                            pod_ip="10.42.2.90", created="2026-11-30T17:03:28Z", run_secs=0.03, exit_code=1,
                            owner=("apps/v1", "ReplicaSet", f"{app}-{new_h}", new_uid), labels={"app": app, "pod-template-hash": new_h})
            pods.append(bad)
            err = ('Error: unknown command "serve" for "tally"\n\nDid you mean this?\n\tserver\n\n'
                   "Run 'tally --help' for usage.\n")
            logs[(bad["metadata"]["name"], "tally-previous.log")] = err
            logs[(bad["metadata"]["name"], "tally.log")] = err
            dep = deployment(ctx, ns, app, bad, 3, created="2025-02-17T08:00:00Z", revision=12, ready=3, updated=1, available=3,
                             status_replicas=4, unavailable=1,
                             strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                             conditions=[dep_cond("Available", "True", "2026-11-24T10:02:52Z", "2026-11-24T10:02:52Z",
                                                  "MinimumReplicasAvailable", "Deployment has minimum availability."),
                                         dep_cond("Progressing", "True", "2026-11-30T17:03:28Z", "2026-11-30T17:03:28Z",
                                                  "ReplicaSetUpdated", f'ReplicaSet "{app}-{new_h}" is progressing.')])
            dep["spec"]["progressDeadlineSeconds"] = 3600
            rs_new = replicaset(ctx, ns, f"{app}-{new_h}", dep, bad, 1, created="2026-11-30T17:03:28Z", revision=12, ready=0, available=0)
            rs_new["metadata"]["uid"] = new_uid
            rs_old = replicaset(ctx, ns, f"{app}-{old_h}", dep, pods[0], 3, created="2026-11-24T10:02:11Z", revision=11, ready=3, available=3)
            rs_old["metadata"]["uid"] = old_uid
            ctx.ev.add(("Deployment", ns, app, dep["metadata"]["uid"], "apps/v1"), "ScalingReplicaSet",
                       f"Scaled up replica set {app}-{new_h} from 0 to 1", component="deployment-controller", first="2026-11-30T17:03:28Z")
            ctx.ev.add(("ReplicaSet", ns, f"{app}-{new_h}", new_uid, "apps/v1"), "SuccessfulCreate",
                       f"Created pod: {bad['metadata']['name']}", component="replicaset-controller", first="2026-11-30T17:03:28Z")
        else:
            new_pods = []
            for i, sfx in enumerate(["jr6tl", "8hsk2", "tw4zq"]):
                c = mk("4.0.1")
                c["args"] = ["server", "--port=8080"]
                p = healthy(ctx, ns=ns, pod_name=f"{app}-{new_h}-{sfx}", containers=[c], node=nodes[i][0], node_ip=nodes[i][1],
                            pod_ip=f"10.42.{1 + i}.{140 + i * 3}", created=add("2026-11-30T17:03:28Z", i * 14),
                            owner=("apps/v1", "ReplicaSet", f"{app}-{new_h}", new_uid), labels={"app": app, "pod-template-hash": new_h},
                            with_events=True, pull_secs=3.3)
                s = T(p["status"]["containerStatuses"][0]["state"]["running"]["startedAt"])
                logs[(p["metadata"]["name"], "tally.log")] = f'time="{iso(add(s, 0.2))}" level=info msg="tally 4.0.1 serving" addr=":8080"\n'
                new_pods.append(p)
            logs = {k: v for k, v in logs.items() if new_h in k[0]}
            pods = new_pods
            dep = deployment(ctx, ns, app, pods[0], 3, created="2025-02-17T08:00:00Z", revision=12, ready=3, updated=3, available=3,
                             strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                             conditions=[dep_cond("Available", "True", "2026-11-24T10:02:52Z", "2026-11-24T10:02:52Z",
                                                  "MinimumReplicasAvailable", "Deployment has minimum availability."),
                                         dep_cond("Progressing", "True", "2026-11-30T17:04:19Z", "2026-11-30T17:03:28Z",
                                                  "NewReplicaSetAvailable", f'ReplicaSet "{app}-{new_h}" has successfully progressed.')])
            rs_new = replicaset(ctx, ns, f"{app}-{new_h}", dep, pods[0], 3, created="2026-11-30T17:03:28Z", revision=12, ready=3, available=3)
            rs_new["metadata"]["uid"] = new_uid
            rs_old = replicaset(ctx, ns, f"{app}-{old_h}", dep, pods[0], 0, created="2026-11-24T10:02:11Z", revision=11, ready=0, available=0)
            rs_old["metadata"]["uid"] = old_uid
            for k, (a, b, rs_, verb) in enumerate([(0, 1, new_h, "up"), (3, 2, old_h, "down"), (1, 2, new_h, "up"),
                                                   (2, 1, old_h, "down"), (2, 3, new_h, "up"), (1, 0, old_h, "down")]):
                ctx.ev.add(("Deployment", ns, app, dep["metadata"]["uid"], "apps/v1"), "ScalingReplicaSet",
                           f"Scaled {verb} replica set {app}-{rs_} from {a} to {b}", component="deployment-controller",
                           first=add("2026-11-30T17:03:28Z", k * 8))
        rv = ctx.rnd.rv
        write(B, "version.yaml", "apiVersion: troubleshoot.sh/v1beta2\nkind: SupportBundleVersion\nspec:\n  versionNumber: 0.107.2\n")
        write(B, "cluster-info/cluster_version.json", json.dumps({"info": {
            "major": "1", "minor": "31", "gitVersion": "v1.31.4-eks-2d5f260", "gitCommit": "0a8c1d6f34e12bb0e9d2a61b1c0f54fd6a3ea2c1",
            "gitTreeState": "clean", "buildDate": "2026-11-05T19:41:22Z", "goVersion": "go1.22.9", "compiler": "gc",
            "platform": "linux/amd64"}, "string": "v1.31.4-eks-2d5f260"}, indent=2) + "\n")
        write(B, f"cluster-resources/deployments/{ns}.json", bundle_json(typed_list("DeploymentList", "apps/v1", [dep], rv())))
        write(B, f"cluster-resources/replicasets/{ns}.json", bundle_json(typed_list("ReplicaSetList", "apps/v1", [rs_old, rs_new], rv())))
        write(B, f"cluster-resources/pods/{ns}.json", bundle_json(typed_list("PodList", "v1", pods, rv())))
        write(B, f"cluster-resources/events/{ns}.json", bundle_json(typed_list("EventList", "v1", ctx.ev.items, rv())))
        for (pn, fn), text in logs.items():
            write(B, f"cluster-resources/pods/logs/{ns}/{pn}/{fn}", text)
        if not tw:
            case_labels(d, F, ["bundle"], True, now, {
                "object": f"Deployment/{ns}/{app}", "cause": "bad-rollout", "mentions": ['unknown command "serve"', f"{app}-{new_h}"],
                "caused_by": f"ReplicaSet/{ns}/{app}-{new_h}"})
            readme(d, "tally-api rollout of 4.0.0 crash-loops: `serve` was renamed to `server`", """
Input: `bundle/`, a troubleshoot.sh-style support bundle: `cluster-resources/{deployments,replicasets,
pods,events}/ledger.json` (typed lists whose items carry no kind/apiVersion) and
`cluster-resources/pods/logs/ledger/<pod>/<container>.log` / `<container>-previous.log`. Two files
are tool metadata, not cluster objects, and should be skipped: `version.yaml` (the bundle tool's
version) and `cluster-info/cluster_version.json` (the server version).

Revision 12 moves the image to 4.0.0, whose CLI renamed the `serve` sub-command to `server`; the
pod template still passes `serve --port=8080`. The new ReplicaSet's only pod exits 1 at once with
cobra's `Error: unknown command "serve" for "tally"` and crash-loops. With `maxUnavailable: 0`
the rollout waits on it while the revision-11 ReplicaSet keeps serving with three Ready pods.
Capture 17:26:41.
""")
        else:
            case_labels(d, F, ["bundle"], False, now)
            readme(d, "tally-api rolled out 4.0.1 with the renamed sub-command (twin)", """
Input: `bundle/` with the same layout (and the same two tool-metadata files to skip). The template
passes `server --port=8080`; the rollout completed 20 minutes before the capture, the old
ReplicaSet is at 0. No incident.
""")


def progress_deadline():
    case, now = "progress-deadline", "2026-11-12T15:58:20Z"
    for tw in (False, True):
        ctx = Ctx(911 + tw, now, k8s="1.30")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        ns, app = "storefront", "checkout-web"
        old_h, new_h = "76d5b8c9f7", "5f8c7b6d49"
        path = "/health" if not tw else "/ready"

        def mk(tag, rpath):
            return ctr("web", f"ghcr.io/amberline/checkout-web:{tag}", ports=[(3000, "http")],
                       resources=res("200m", "256Mi", None, "512Mi"), readiness=http_probe(rpath, 3000, delay=5, period=10))

        old_uid, new_uid = ctx.rnd.uid(), ctx.rnd.uid()
        pods = []
        for i, sfx in enumerate(["f2mzq", "k8vts", "q4hbn", "x9lcd"]):
            pods.append(healthy(ctx, ns=ns, pod_name=f"{app}-{old_h}-{sfx}", containers=[mk("7.11.0", "/health")],
                                node=f"pool-web-{i % 2}", node_ip=f"10.8.0.{21 + i % 2}", pod_ip=f"10.8.{64 + i}.{12 + i}",
                                created="2026-11-09T13:11:40Z", owner=("apps/v1", "ReplicaSet", f"{app}-{old_h}", old_uid),
                                labels={"app": app, "pod-template-hash": old_h}))
        new = []
        created = "2026-11-12T15:36:05Z"
        for i, sfx in enumerate(["h7wjx", "c3rnk"]):
            c = mk("8.0.0", path)
            pname = f"{app}-{new_h}-{sfx}"
            cr = add(created, i * 0.05)
            start = add(cr, 4.1)
            ready = tw
            st = cstatus(ctx.rnd, "web", c["image"], state=running(start), ready=ready, restarts=0, started=True)
            conds = running_conditions(cr, cr, ready_at=add(start, 16)) if ready else \
                running_conditions(cr, cr, not_ready_since=cr, containers=["web"])
            p = pod(ctx.rnd, ns, pname, [c], created=cr, labels={"app": app, "pod-template-hash": new_h},
                    owner=("apps/v1", "ReplicaSet", f"{app}-{new_h}", new_uid), node=f"pool-web-{i}",
                    node_ip=f"10.8.0.{21 + i}", pod_ip=f"10.8.{70 + i}.{30 + i}", conditions=conds, statuses=[st])
            ctx.scheduled(p, f"pool-web-{i}", cr)
            fp = "spec.containers{web}"
            ctx.ev.add(p, "Pulling", f'Pulling image "{c["image"]}"', host=f"pool-web-{i}", first=add(cr, 1), field_path=fp)
            ctx.ev.add(p, "Pulled", ctx.m_pulled_fresh(c["image"], 2.6, 141_077_331), host=f"pool-web-{i}", first=add(cr, 3.8), field_path=fp)
            ctx.ev.add(p, "Created", ctx.m_created("web"), host=f"pool-web-{i}", first=add(cr, 3.9), field_path=fp)
            ctx.ev.add(p, "Started", ctx.m_started("web"), host=f"pool-web-{i}", first=start, field_path=fp)
            if not tw:
                n = int((ctx.now - add(start, 5)).total_seconds() // 10)
                ctx.ev.add(p, "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 404", type_="Warning",
                           host=f"pool-web-{i}", first=add(start, 6), last=add(now, -4 - i * 3), count=n, field_path=fp)
            new.append(p)
        if not tw:
            dep = deployment(ctx, ns, app, new[0], 4, created="2025-09-01T09:00:00Z", revision=23, ready=4, updated=2, available=4,
                             status_replicas=6, unavailable=2, progress_deadline=600,
                             conditions=[dep_cond("Available", "True", "2026-11-09T13:12:20Z", "2026-11-09T13:12:20Z",
                                                  "MinimumReplicasAvailable", "Deployment has minimum availability."),
                                         dep_cond("Progressing", "False", "2026-11-12T15:46:06Z", "2026-11-12T15:46:06Z",
                                                  "ProgressDeadlineExceeded", f'ReplicaSet "{app}-{new_h}" has timed out progressing.')])
            rs_new = replicaset(ctx, ns, f"{app}-{new_h}", dep, new[0], 2, created=created, revision=23, ready=0, available=0)
            rs_old = replicaset(ctx, ns, f"{app}-{old_h}", dep, pods[0], 4, created="2026-11-09T13:11:40Z", revision=22, ready=4, available=4)
            ctx.ev.add(("Deployment", ns, app, dep["metadata"]["uid"], "apps/v1"), "ScalingReplicaSet",
                       f"Scaled up replica set {app}-{new_h} from 0 to 2", component="deployment-controller", first=created)
            items = [dep, rs_old, rs_new] + pods + new
        else:
            dep = deployment(ctx, ns, app, new[0], 2, created="2025-09-01T09:00:00Z", revision=23, ready=2, updated=2, available=2,
                             progress_deadline=600,
                             conditions=[dep_cond("Available", "True", "2026-11-09T13:12:20Z", "2026-11-09T13:12:20Z",
                                                  "MinimumReplicasAvailable", "Deployment has minimum availability."),
                                         dep_cond("Progressing", "True", "2026-11-12T15:36:31Z", "2026-11-12T15:36:05Z",
                                                  "NewReplicaSetAvailable", f'ReplicaSet "{app}-{new_h}" has successfully progressed.')])
            rs_new = replicaset(ctx, ns, f"{app}-{new_h}", dep, new[0], 2, created=created, revision=23, ready=2, available=2)
            rs_old = replicaset(ctx, ns, f"{app}-{old_h}", dep, pods[0], 0, created="2026-11-09T13:11:40Z", revision=22, ready=0, available=0)
            items = [dep, rs_old, rs_new] + new
        rs_new["metadata"]["uid"] = new_uid
        rs_old["metadata"]["uid"] = old_uid
        write(d, "deploy-rs-pods.json", kubectl_json_list(items))
        write(d, "events.txt", kubectl_get_events(ctx.ev.items, ctx.now))
        if not tw:
            case_labels(d, F, ["json-list", "events-get"], True, now, {
                "object": f"Deployment/{ns}/{app}", "cause": "progress-deadline",
                "mentions": ["ProgressDeadlineExceeded", f"{app}-{new_h}"], "caused_by": f"ReplicaSet/{ns}/{app}-{new_h}"})
            readme(d, "checkout-web 8.0.0 rollout: ProgressDeadlineExceeded, new pods never Ready", """
Files: `deploy-rs-pods.json` (`kubectl get deploy,rs,pods -n storefront -o json`) and `events.txt`.

8.0.0 moved the health endpoint from `/health` to `/ready`; the pod template's readiness probe
still calls `/health`, which now answers 404. The two surge pods run but never become Ready, the
rollout cannot proceed, and after `progressDeadlineSeconds: 600` the Deployment condition
`Progressing` turns False with `ProgressDeadlineExceeded`. The four old pods keep serving.
Capture 15:58:20.
""")
        else:
            case_labels(d, F, ["json-list", "events-get"], False, now)
            readme(d, "checkout-web 8.0.0 rolled out with the new probe path (twin)", """
Files: `deploy-rs-pods.json` and `events.txt`. The probe calls `/ready`; the new pods were Ready
within 20 s, the rollout finished (`NewReplicaSetAvailable`). No incident.
""")


def sts_unavailable():
    case, now = "statefulset-unavailable-replicas", "2026-11-07T08:12:55Z"
    for tw in (False, True):
        ctx = Ctx(921 + tw, now, k8s="1.30")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        ns, name = "coordination", "zookeeper"
        ss_uid = ctx.rnd.uid()
        owner = ("apps/v1", "StatefulSet", name, ss_uid)
        pods, pvcs = [], []
        for i in range(3):
            pname = f"{name}-{i}"
            c = ctr("zookeeper", "docker.io/library/zookeeper:3.9.3", ports=[(2181, "client"), (2888, "server"), (3888, "leader-election")],
                    env=[env("ZOO_SERVERS", "server.1=zookeeper-0.zookeeper-headless:2888:3888;2181 server.2=zookeeper-1.zookeeper-headless:2888:3888;2181 server.3=zookeeper-2.zookeeper-headless:2888:3888;2181")],
                    resources=res("250m", "1Gi", None, "1Gi"), mounts=[{"name": "datadir", "mountPath": "/data"}],
                    readiness=exec_probe(["/bin/sh", "-c", "echo ruok | nc -w 2 127.0.0.1 2181 | grep imok"], delay=10, period=10))
            vols = [{"name": "datadir", "persistentVolumeClaim": {"claimName": f"datadir-{pname}"}}]
            lab = {"app": name, "apps.kubernetes.io/pod-index": str(i), "controller-revision-hash": f"{name}-8d6f5c9b7",
                   "statefulset.kubernetes.io/pod-name": pname}
            es = {"hostname": pname, "subdomain": "zookeeper-headless"}
            if i == 2 and not tw:
                msg = ("0/5 nodes are available: 2 node(s) didn't match pod anti-affinity rules, 3 node(s) had volume node affinity conflict."
                       " preemption: 0/5 nodes are available: 2 No preemption victims found for incoming pod, 3 Preemption is not helpful for scheduling.")
                p = pending(ctx, ns=ns, pod_name=pname, containers=[c], created="2026-11-07T07:31:18Z", message=msg, owner=owner,
                            labels=lab, volumes=vols, attempts=11, last="2026-11-07T08:09:02Z", pod_kwargs={"extra_spec": es})
            else:
                nd = f"ip-10-1-{16 * (i + 1)}-{30 + i}.ec2.internal"
                p = healthy(ctx, ns=ns, pod_name=pname, containers=[c], node=nd, node_ip=f"10.1.{16 * (i + 1)}.{30 + i}",
                            pod_ip=f"10.1.{16 * (i + 1) + 2}.{90 + i}", created="2026-11-01T02:20:00Z" if i < 2 else "2026-11-07T07:31:18Z",
                            owner=owner, labels=lab, volumes=vols, pod_kwargs={"extra_spec": es},
                            with_events=(i == 2), pull_secs=0.8)
            pods.append(p)
            pvc_uid = ctx.rnd.uid()
            pvcs.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {
                "name": f"datadir-{pname}", "namespace": ns, "uid": pvc_uid, "resourceVersion": ctx.rnd.rv(),
                "creationTimestamp": "2026-03-14T12:00:0%dZ" % i, "labels": {"app": name},
                "annotations": {"pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes",
                                "volume.beta.kubernetes.io/storage-provisioner": "ebs.csi.aws.com",
                                "volume.kubernetes.io/selected-node": f"ip-10-1-{16 * (i + 1)}-{40 + i}.ec2.internal",
                                "volume.kubernetes.io/storage-provisioner": "ebs.csi.aws.com"},
                "finalizers": ["kubernetes.io/pvc-protection"]},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}},
                         "storageClassName": "gp3", "volumeMode": "Filesystem", "volumeName": f"pvc-{pvc_uid}"},
                "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "10Gi"}}})
        tmpl = template_of(pods[0])
        ss = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {
            "name": name, "namespace": ns, "uid": ss_uid, "resourceVersion": ctx.rnd.rv(), "generation": 4,
            "creationTimestamp": "2026-03-14T12:00:00Z", "labels": {"app": name}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": name}}, "template": tmpl, "serviceName": "zookeeper-headless",
                     "podManagementPolicy": "Parallel", "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                     "revisionHistoryLimit": 10, "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                     "volumeClaimTemplates": [{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "datadir"},
                                               "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}},
                                                        "storageClassName": "gp3", "volumeMode": "Filesystem"},
                                               "status": {"phase": "Pending"}}]},
            "status": {"observedGeneration": 4, "replicas": 3, "readyReplicas": 2 if not tw else 3, "currentReplicas": 3,
                       "updatedReplicas": 3, "currentRevision": f"{name}-8d6f5c9b7", "updateRevision": f"{name}-8d6f5c9b7",
                       "collisionCount": 0, "availableReplicas": 2 if not tw else 3}}
        ss["spec"]["template"]["spec"]["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": name}}, "topologyKey": "kubernetes.io/hostname"}]}}
        for p in pods:
            p["spec"]["affinity"] = ss["spec"]["template"]["spec"]["affinity"]
        if not tw:
            ctx.ev.add(("StatefulSet", ns, name, ss_uid, "apps/v1"), "SuccessfulCreate",
                       "create Pod zookeeper-2 in StatefulSet zookeeper successful", component="statefulset-controller",
                       first="2026-11-07T07:31:18Z")
        write(d, "statefulset-pods-pvcs.yaml", kubectl_yaml_list([ss] + pods + pvcs))
        write(d, "events.txt", kubectl_get_events(ctx.ev.items, ctx.now))
        if not tw:
            case_labels(d, F, ["yaml-list", "events-get"], True, now, {
                "object": f"StatefulSet/{ns}/{name}", "cause": "unavailable-replicas",
                "mentions": ["zookeeper-2", "volume node affinity conflict"],
                "caused_by": f"PersistentVolumeClaim/{ns}/datadir-zookeeper-2"})
            readme(d, "zookeeper StatefulSet 2/3 ready: zookeeper-2 cannot be placed next to its volume", """
Files: `statefulset-pods-pvcs.yaml` (`kubectl get sts,pods,pvc -n coordination -o yaml`) and `events.txt`.

A node group change removed the only node in us-east-1c, where `zookeeper-2` ran. Its EBS
volume (`datadir-zookeeper-2`) can only attach in us-east-1c; the two nodes that run the other
members are excluded by the required pod anti-affinity, the three others are in the wrong zone:
`2 node(s) didn't match pod anti-affinity rules, 3 node(s) had volume node affinity conflict`.
The StatefulSet runs with 2 of 3 replicas ready (quorum kept, no redundancy). Capture 08:12:55.
""")
        else:
            case_labels(d, F, ["yaml-list", "events-get"], False, now)
            readme(d, "zookeeper 3/3 ready (twin)", """
Files: `statefulset-pods-pvcs.yaml` and `events.txt`. A us-east-1c node is back; `zookeeper-2` was
rescheduled 40 minutes before the capture and is Ready. No incident.
""")


CASES = [bad_rollout_bundle, progress_deadline, sts_unavailable]
