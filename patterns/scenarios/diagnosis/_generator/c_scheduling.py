"""scheduling family: pods that stay Pending."""
import json

from build import *  # noqa
from k8sfmt import describe_pod, kubectl_get_events, kubectl_json_list
from scen import *  # noqa

F = "scheduling"
PRE = " preemption: 0/{n} nodes are available: {n} Preemption is not helpful for scheduling."


def node_selector_mismatch():
    case, now = "node-selector-mismatch", "2026-11-25T10:14:37Z"
    for tw in (False, True):
        ctx = Ctx(301 + tw, now, k8s="1.31")
        ctx.sched_instance = "default-scheduler-cp-2"
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        h, sfx = "7d5c9b68f4", "ldq8w"
        pname = f"var-calculator-{h}-{sfx}"
        lab = {"app": "var-calculator", "team": "risk-quant", "pod-template-hash": h}
        owner = ("apps/v1", "ReplicaSet", f"var-calculator-{h}", ctx.rnd.uid())
        c = ctr("calculator", "harbor.northbeam.io/risk/var-calculator:2026.47.1", ports=[(8080, "http")],
                env=[env("SIMULATIONS", "250000"), env("OMP_NUM_THREADS", "8")],
                resources=res("4", "24Gi", "8", "24Gi"))
        sel = {"workload-tier": "memory-optimized"}
        if not tw:
            msg = ("0/5 nodes are available: 2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
                   "3 node(s) didn't match Pod's node affinity/selector." + PRE.format(n=5))
            p = pending(ctx, ns="risk", pod_name=pname, containers=[c], created="2026-11-25T09:51:02Z", message=msg,
                        owner=owner, labels=lab, node_selector=sel, attempts=7, last="2026-11-25T10:11:20Z")
            rs = ("ReplicaSet", "risk", f"var-calculator-{h}", owner[3], "apps/v1")
            ctx.ev.add(rs, "SuccessfulCreate", f"Created pod: {pname}", component="replicaset-controller",
                       first="2026-11-25T09:51:02Z")
            dep = ("Deployment", "risk", "var-calculator", ctx.rnd.uid(), "apps/v1")
            ctx.ev.add(dep, "ScalingReplicaSet", f"Scaled up replica set var-calculator-{h} from 0 to 1",
                       component="deployment-controller", first="2026-11-25T09:51:02Z")
        else:
            p = healthy(ctx, ns="risk", pod_name=pname, containers=[c], node="mem-r7i-2xl-01", node_ip="10.40.12.21",
                        pod_ip="10.40.13.88", created="2026-11-25T09:51:02Z", owner=owner, labels=lab,
                        with_events=True, pull_secs=11.2, pod_kwargs={"node_selector": sel})
            rs = ("ReplicaSet", "risk", f"var-calculator-{h}", owner[3], "apps/v1")
            ctx.ev.add(rs, "SuccessfulCreate", f"Created pod: {pname}", component="replicaset-controller",
                       first="2026-11-25T09:51:02Z")
        emit(d, ctx, describe=p, get_events=True)
        if not tw:
            case_labels(d, F, ["describe-new", "events-get"], True, now, {
                "object": f"Pod/risk/{pname}", "cause": "node-selector-mismatch", "mentions": ["workload-tier"]})
            readme(d, "var-calculator Pending: no node carries workload-tier=memory-optimized", """
Files: `describe-pod.txt` (kubectl 1.31) and `events.txt` (`kubectl get events -n risk`).

The Deployment asks for `nodeSelector: workload-tier=memory-optimized`, but the memory-optimized node
group was never labelled (its nodes carry `node.kubernetes.io/instance-type` only). Of five nodes, two
are control-plane (tainted) and three do not match the selector, so the scheduler keeps reporting
`0/5 nodes are available ... didn't match Pod's node affinity/selector`. Pending for 23 minutes at
capture 10:14:37 (implied by the ages).
""")
        else:
            case_labels(d, F, ["describe-new", "events-get"], False, now)
            readme(d, "var-calculator scheduled on the labelled memory-optimized node (twin)", """
Files: `describe-pod.txt` and `events.txt`. The node group now has `workload-tier=memory-optimized`;
the pod was scheduled at once and runs. No incident.
""")


def untolerated_taint():
    case, now = "untolerated-taint", "2026-11-19T02:33:51Z"
    for tw in (False, True):
        ctx = Ctx(311 + tw, now, k8s="1.30")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        pods = []
        h = "5b8d7f9c6"
        owner = ("apps/v1", "ReplicaSet", f"ch-loader-{h}", ctx.rnd.uid())
        tol = [{"key": "dedicated", "operator": "Equal", "value": "ingest", "effect": "NoSchedule"}]
        for i, sfx in enumerate(["8nqzt", "v2kxp"]):
            pname = f"ch-loader-{h}-{sfx}"
            c = ctr("loader", "docker.io/stonecrop/ch-loader:0.18.2", ports=[(9363, "metrics")],
                    env=[env("CLICKHOUSE_DSN", secret=("ch-loader", "dsn")), env("KAFKA_TOPICS", "events.raw,events.enriched")],
                    resources=res("500m", "1Gi", None, "2Gi"))
            lab = {"app.kubernetes.io/name": "ch-loader", "pod-template-hash": h}
            base_tols = [dict(t) for t in DEFAULT_TOLERATIONS]
            if not tw:
                msg = "0/3 nodes are available: 3 node(s) had untolerated taint {dedicated: ingest}." + PRE.format(n=3)
                p = pending(ctx, ns="ingest", pod_name=pname, containers=[c], created=add("2026-11-19T02:02:40Z", i * 0.04),
                            message=msg, owner=owner, labels=lab, attempts=9 - i, last=add(now, -40 - i * 13))
            else:
                p = healthy(ctx, ns="ingest", pod_name=pname, containers=[c], node=f"ingest-pool-{['a1', 'a2'][i]}",
                            node_ip=f"10.88.4.{31 + i}", pod_ip=f"10.88.64.{19 + 7 * i}", created="2026-11-17T13:20:05Z",
                            owner=owner, labels=lab, pod_kwargs={"tolerations": tol + base_tols})
            pods.append(p)
        if not tw:
            ctx.ev.add(("ReplicaSet", "ingest", f"ch-loader-{h}", owner[3], "apps/v1"), "SuccessfulCreate",
                       f"Created pod: {pods[0]['metadata']['name']}", component="replicaset-controller", first="2026-11-19T02:02:40Z")
            ctx.ev.add(("ReplicaSet", "ingest", f"ch-loader-{h}", owner[3], "apps/v1"), "SuccessfulCreate",
                       f"Created pod: {pods[1]['metadata']['name']}", component="replicaset-controller", first="2026-11-19T02:02:40Z")
            emit(d, ctx, yaml_pods=pods, get_events=True)
            case_labels(d, F, ["yaml-list", "events-get"], True, now, {
                "object": f"Pod/ingest/{pods[0]['metadata']['name']}", "cause": "untolerated-taint",
                "mentions": ["dedicated"]})
            readme(d, "ch-loader Pending: every node is tainted dedicated=ingest:NoSchedule", """
Files: `pods.yaml` (`kubectl get pods -n ingest -o yaml`, two pods) and `events.txt`
(`kubectl get events -n ingest`).

The cluster was moved to a dedicated node pool whose three nodes carry the taint
`dedicated=ingest:NoSchedule`. The ch-loader pod template has no matching toleration, so both replicas
stay Pending: `3 node(s) had untolerated taint {dedicated: ingest}`. Either pod is the symptom; the
label names the first. Capture 02:33:51; the YAML has absolute times.
""")
        else:
            write(d, "events.txt", "No resources found in ingest namespace.\n")
            emit(d, ctx, yaml_pods=pods)
            case_labels(d, F, ["yaml-list", "events-get"], False, now)
            readme(d, "ch-loader running on the dedicated pool (twin)", """
Files: `pods.yaml` and `events.txt` (no events in the last hour). The pod template tolerates
`dedicated=ingest:NoSchedule`; both replicas run. No incident.
""")


def insufficient_cpu_old():
    case, now = "insufficient-cpu-old-describe", "2017-06-14T16:42:10Z"
    for tw in (False, True):
        ctx = Ctx(321 + tw, now, k8s="1.6")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        h = "3046384512" if not tw else "3046384512"
        sfx = "8kq1x"
        pname = f"api-gateway-{h}-{sfx}"
        rs_uid = ctx.rnd.uid()
        created_by = json.dumps({"kind": "SerializedReference", "apiVersion": "v1", "reference": {
            "kind": "ReplicaSet", "namespace": "default", "name": f"api-gateway-{h}", "uid": rs_uid,
            "apiVersion": "extensions", "resourceVersion": "4471829"}}, separators=(",", ":")) + "\n"
        ann = {"kubernetes.io/created-by": created_by}
        lab = {"app": "api-gateway", "pod-template-hash": h, "tier": "edge"}
        c = ctr("gateway", "quay.io/brambleco/api-gateway:1.14.2", ports=[8080],
                env=[env("UPSTREAMS", "orders:8080,users:8080,search:9200")], resources=res("1500m", "512Mi", "2", "1Gi"))
        c["resources"] = {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "1500m", "memory": "512Mi"}}
        tols = [{"key": "node.alpha.kubernetes.io/notReady", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.alpha.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
        owner = ("extensions/v1beta1", "ReplicaSet", f"api-gateway-{h}", rs_uid)
        if not tw:
            msg = "No nodes are available that match all of the following predicates:: Insufficient cpu (3)."
            p = pending(ctx, ns="default", pod_name=pname, containers=[c], created="2017-06-14T16:08:52Z", message=msg,
                        owner=owner, labels=lab, annotations=ann, attempts=27, last="2017-06-14T16:41:58Z",
                        old_api=True, tolerations=tols, pod_kwargs={"api_access": False},
                        volumes=[{"name": "default-token-x7q2d", "secret": {"secretName": "default-token-x7q2d", "defaultMode": 420}}])
            c["volumeMounts"] = [{"name": "default-token-x7q2d", "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]
            p["status"]["conditions"][0]["reason"] = "Unschedulable"
            p["status"]["conditions"][0]["message"] = msg
            write(d, "describe-pod.txt", describe_pod(p, ctx.ev.for_object(pname), ctx.now, version="1.6"))
            case_labels(d, F, ["describe-old"], True, now, {
                "object": f"Pod/default/{pname}", "cause": "insufficient-resource", "mentions": ["Insufficient cpu"]})
            readme(d, "api-gateway Pending: Insufficient cpu on all three nodes (kubectl 1.6 describe)", """
File: `describe-pod.txt`, `kubectl describe pod` from kubectl 1.6: tab-aligned, `Controllers:` from
the `kubernetes.io/created-by` annotation, events as a `FirstSeen LastSeen Count From SubObjectPath
Type Reason Message` table, tolerations as `key=value:Operator:Effect`.

The gateway was scaled from 3 to 6 replicas; each replica requests 1500m CPU and the three
4-core nodes already carry the others plus system pods. The scheduler (1.6 predicates) reports
`No nodes are available that match all of the following predicates:: Insufficient cpu (3).`,
retried 27 times over 33 minutes. Capture 16:42:10 (implied by the ages).
""")
        else:
            node_ = "ip-172-20-51-77.ec2.internal"
            p = pod(ctx.rnd, "default", pname, [c], created="2017-06-14T16:30:41Z", labels=lab, annotations=ann,
                    owner=owner, node=node_, node_ip="172.20.51.77", pod_ip="100.96.2.14",
                    conditions=[cond("Initialized", "True", "2017-06-14T16:30:41Z"),
                                cond("Ready", "True", "2017-06-14T16:30:49Z"),
                                cond("PodScheduled", "True", "2017-06-14T16:30:41Z")],
                    statuses=[cstatus(ctx.rnd, "gateway", c["image"], state=running("2017-06-14T16:30:48Z"), ready=True,
                                      runtime="docker")],
                    tolerations=tols, api_access=False,
                    volumes=[{"name": "default-token-x7q2d", "secret": {"secretName": "default-token-x7q2d", "defaultMode": 420}}])
            c["volumeMounts"] = [{"name": "default-token-x7q2d", "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]
            p["status"]["containerStatuses"][0]["imageID"] = "docker-pullable://quay.io/brambleco/api-gateway@sha256:" + ctx.rnd.hex()
            p["status"]["containerStatuses"][0]["image"] = "quay.io/brambleco/api-gateway:1.14.2"
            fp = "spec.containers{gateway}"
            cid = p["status"]["containerStatuses"][0]["containerID"][len("docker://"):][:12]
            ev = ctx.ev
            ev.add(p, "Scheduled", f"Successfully assigned {pname} to {node_}", component="default-scheduler",
                   first="2017-06-14T16:30:41Z")
            ev.add(p, "SuccessfulMountVolume", 'MountVolume.SetUp succeeded for volume "default-token-x7q2d" ',
                   host=node_, first="2017-06-14T16:30:42Z")
            ev.add(p, "Pulling", 'pulling image "quay.io/brambleco/api-gateway:1.14.2"', host=node_,
                   first="2017-06-14T16:30:43Z", field_path=fp)
            ev.add(p, "Pulled", 'Successfully pulled image "quay.io/brambleco/api-gateway:1.14.2"', host=node_,
                   first="2017-06-14T16:30:47Z", field_path=fp)
            ev.add(p, "Created", f"Created container with id {cid}", host=node_, first="2017-06-14T16:30:47Z", field_path=fp)
            ev.add(p, "Started", f"Started container with id {cid}", host=node_, first="2017-06-14T16:30:48Z", field_path=fp)
            write(d, "describe-pod.txt", describe_pod(p, ctx.ev.for_object(pname), ctx.now, version="1.6"))
            case_labels(d, F, ["describe-old"], False, now)
            readme(d, "api-gateway replica scheduled and running (kubectl 1.6 describe, twin)", """
File: `describe-pod.txt` in the kubectl 1.6 layout. After a fourth node joined, the replica was
scheduled and started within seconds. No incident.
""")


CASES = [node_selector_mismatch, untolerated_taint, insufficient_cpu_old]


def insufficient_gpu():
    case, now = "insufficient-gpu", "2026-11-29T18:05:12Z"
    for tw in (False, True):
        ctx = Ctx(331 + tw, now, k8s="1.31")
        ctx.sched_instance = "gke-control-plane"
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        pname = "ft-mistral-7b-run42-0-b9tmz"
        job_uid = ctx.rnd.uid()
        owner = ("batch/v1", "Job", "ft-mistral-7b-run42", job_uid)
        lab = {"batch.kubernetes.io/controller-uid": job_uid, "batch.kubernetes.io/job-name": "ft-mistral-7b-run42",
               "controller-uid": job_uid, "job-name": "ft-mistral-7b-run42", "batch.kubernetes.io/job-completion-index": "0"}
        c = ctr("trainer", "us-docker.pkg.dev/fernleaf-ml/train/llm-finetune:cu124-2026.11",
                command=["torchrun", "--nproc_per_node=4", "train.py"], args=["--config=/configs/mistral-7b-lora.yaml"],
                env=[env("NCCL_DEBUG", "WARN"), env("HF_HOME", "/cache/hf")],
                resources=res("16", "96Gi", None, "96Gi", extra_req={"nvidia.com/gpu": "4"}, extra_lim={"nvidia.com/gpu": "4"}))
        sel = {"cloud.google.com/gke-accelerator": "nvidia-l4"}
        tols = [dict(t) for t in DEFAULT_TOLERATIONS] + [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        ann = {"batch.kubernetes.io/job-completion-index": "0"}
        if not tw:
            msg = ("0/7 nodes are available: 2 Insufficient nvidia.com/gpu, 5 node(s) didn't match Pod's node affinity/selector. "
                   "preemption: 0/7 nodes are available: 2 No preemption victims found for incoming pod, 5 Preemption is not helpful for scheduling.")
            p = pending(ctx, ns="research", pod_name=pname, containers=[c], created="2026-11-29T17:12:40Z", message=msg,
                        owner=owner, labels=lab, annotations=ann, node_selector=sel, tolerations=tols, attempts=14,
                        last="2026-11-29T18:03:31Z", pod_kwargs={"restart_policy": "Never"})
            ctx.ev.add(p, "NotTriggerScaleUp",
                       "pod didn't trigger scale-up: 1 max node group size reached, 3 node(s) didn't match Pod's node affinity/selector",
                       component="cluster-autoscaler", first="2026-11-29T17:12:51Z", last="2026-11-29T18:04:02Z", count=298)
        else:
            p = healthy(ctx, ns="research", pod_name=pname, containers=[c], node="gke-fernleaf-l4-pool-5c0e1f7a-2hbq",
                        node_ip="10.140.0.61", pod_ip="10.112.7.5", created="2026-11-29T17:52:40Z", owner=owner,
                        labels=lab, annotations=ann, with_events=True, pull_secs=74.8,
                        pod_kwargs={"node_selector": sel, "tolerations": tols, "restart_policy": "Never"})
            # near miss: one FailedScheduling 2 s before a GPU freed up
            msg = ("0/7 nodes are available: 2 Insufficient nvidia.com/gpu, 5 node(s) didn't match Pod's node affinity/selector. "
                   "preemption: 0/7 nodes are available: 2 No preemption victims found for incoming pod, 5 Preemption is not helpful for scheduling.")
            ctx.ev.add(p, "FailedScheduling", msg, type_="Warning", component="default-scheduler",
                       first=add("2026-11-29T17:52:40Z", -2), new_api=True, instance="gke-control-plane")
            for e in ctx.ev.items:
                if e["reason"] == "Scheduled":
                    e["eventTime"] = "2026-11-29T17:52:40.418331Z"
        emit(d, ctx, describe=p)
        if not tw:
            case_labels(d, F, ["describe-new"], True, now, {
                "object": f"Pod/research/{pname}", "cause": "insufficient-resource", "mentions": ["nvidia.com/gpu"]})
            readme(d, "fine-tuning pod Pending: Insufficient nvidia.com/gpu on the L4 pool", """
File: `describe-pod.txt` (kubectl 1.31, GKE).

The Job's pod asks for 4 `nvidia.com/gpu` on `nvidia-l4` nodes. Both L4 nodes are fully allocated
to other training runs and the node pool is at its maximum size, so the scheduler reports
`2 Insufficient nvidia.com/gpu` and the cluster autoscaler `max node group size reached`.
Pending for 52 minutes at capture 18:05:12 (implied).
""")
        else:
            case_labels(d, F, ["describe-new"], False, now)
            readme(d, "fine-tuning pod waited 2 s for a GPU, then ran (twin)", """
File: `describe-pod.txt`. One `FailedScheduling` (Insufficient nvidia.com/gpu) two seconds before
another run released its GPUs; the pod was then scheduled, pulled its image and runs. A transient,
not an incident.
""")


def unbound_pvc():
    case, now = "unbound-pvc", "2026-11-11T09:27:44Z"
    for tw in (False, True):
        ctx = Ctx(341 + tw, now, k8s="1.29")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        h, sfx = "6fcb94d7d5", "gq2nm"
        pname = f"wiki-{h}-{sfx}"
        owner = ("apps/v1", "ReplicaSet", f"wiki-{h}", ctx.rnd.uid())
        lab = {"app": "wiki", "pod-template-hash": h}
        c = ctr("wiki", "docker.io/requarks/wiki:2.5", ports=[(3000, "http")],
                env=[env("DB_TYPE", "postgres"), env("DB_HOST", "wiki-pg"), env("DB_PASS", secret=("wiki-pg", "password"))],
                resources=res("100m", "256Mi", None, "512Mi"), mounts=[{"name": "uploads", "mountPath": "/wiki/data/uploads"}])
        vols = [{"name": "uploads", "persistentVolumeClaim": {"claimName": "wiki-uploads"}}]
        pvc_uid = ctx.rnd.uid()
        pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {
            "name": "wiki-uploads", "namespace": "docs", "uid": pvc_uid, "resourceVersion": ctx.rnd.rv(),
            "creationTimestamp": "2026-11-11T08:58:19Z",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": '{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"annotations":{},"name":"wiki-uploads","namespace":"docs"},"spec":{"accessModes":["ReadWriteMany"],"resources":{"requests":{"storage":"20Gi"}},"storageClassName":"","volumeName":""}}\n'},
            "finalizers": ["kubernetes.io/pvc-protection"]},
            "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "20Gi"}},
                     "storageClassName": "", "volumeMode": "Filesystem"},
            "status": {"phase": "Pending"}}
        if not tw:
            msg = "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims." + PRE.format(n=3)
            p = pending(ctx, ns="docs", pod_name=pname, containers=[c], created="2026-11-11T08:58:20Z", message=msg,
                        owner=owner, labels=lab, volumes=vols, attempts=6, last="2026-11-11T09:23:40Z")
            ctx.ev.add(("PersistentVolumeClaim", "docs", "wiki-uploads", pvc_uid, "v1"), "FailedBinding",
                       "no persistent volumes available for this claim and no storage class is set",
                       component="persistentvolume-controller", first="2026-11-11T08:58:19Z", last=add(now, -4), count=117)
            items = [p, pvc]
        else:
            pvc["spec"]["volumeName"] = "nfs-wiki-uploads"
            pvc["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] = "yes"
            pvc["status"] = {"phase": "Bound", "accessModes": ["ReadWriteMany"], "capacity": {"storage": "20Gi"}}
            p = healthy(ctx, ns="docs", pod_name=pname, containers=[c], node="worker-2", node_ip="192.168.10.32",
                        pod_ip="10.244.2.81", created="2026-11-08T14:10:03Z", owner=owner, labels=lab, volumes=vols)
            items = [p, pvc]
        emit(d, ctx, json_pods=items, json_name="pods-and-pvcs.json", get_events=True)
        if not tw:
            case_labels(d, F, ["json-list", "events-get"], True, now, {
                "object": f"Pod/docs/{pname}", "cause": "unbound-pvc", "mentions": ["wiki-uploads"],
                "caused_by": "PersistentVolumeClaim/docs/wiki-uploads"})
            readme(d, "wiki Pending: its PVC wiki-uploads never binds", """
Files: `pods-and-pvcs.json` (`kubectl get pod,pvc -n docs -o json`) and `events.txt`
(`kubectl get events -n docs`).

The claim `wiki-uploads` sets `storageClassName: ""` (static binding) and asks for 20Gi
ReadWriteMany, but the NFS PersistentVolume meant for it was never created. The PV controller keeps
reporting `no persistent volumes available for this claim and no storage class is set`; the
scheduler: `pod has unbound immediate PersistentVolumeClaims`. Capture 09:27:44.
""")
        else:
            case_labels(d, F, ["json-list", "events-get"], False, now)
            write(d, "events.txt", "No resources found in docs namespace.\n")
            readme(d, "wiki running with its claim bound (twin)", """
Files: `pods-and-pvcs.json` and `events.txt` (empty). The claim is Bound to `nfs-wiki-uploads`; the
pod runs. No incident.
""")


def too_many_pods():
    case, now = "too-many-pods", "2026-11-03T13:50:09Z"
    for tw in (False, True):
        ctx = Ctx(351 + tw, now, k8s="1.30")
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        pname = "runner-t8xq2mzk-project-4471-concurrent-3-9f1bw0ch"
        lab = {"pod": pname, "job.runner.gitlab.com/id": "913377421", "project.runner.gitlab.com/id": "4471"}
        c = ctr("build", "docker.io/library/golang:1.23-bookworm", command=["sh", "-c", "if [ -x /usr/local/bin/bash ]; then\n\texec /usr/local/bin/bash \nelif [ -x /usr/bin/bash ]; then\n\texec /usr/bin/bash \nelif [ -x /bin/bash ]; then\n\texec /bin/bash \nelse\n\techo shell not found\n\texit 1\nfi\n"],
                resources=res("500m", "1Gi"))
        h = ctr("helper", "registry.gitlab.com/gitlab-org/gitlab-runner/gitlab-runner-helper:x86_64-v17.5.3",
                command=["sh", "-c", "while true; do sleep 3600; done"], resources=res("50m", "64Mi"))
        if not tw:
            msg = "0/2 nodes are available: 2 Too many pods. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
            p = pending(ctx, ns="gitlab-runners", pod_name=pname, containers=[c, h], created="2026-11-03T13:41:27Z",
                        message=msg, labels=lab, attempts=5, last="2026-11-03T13:48:55Z")
        else:
            p = healthy(ctx, ns="gitlab-runners", pod_name=pname, containers=[c, h], node="ci-edge-02",
                        node_ip="10.9.0.12", pod_ip="10.42.1.201", created="2026-11-03T13:49:41Z", labels=lab,
                        with_events=True, pull_secs=0.9)
        emit(d, ctx, describe=p)
        if not tw:
            case_labels(d, F, ["describe-new"], True, now, {
                "object": f"Pod/gitlab-runners/{pname}", "cause": "too-many-pods", "mentions": ["Too many pods"]})
            readme(d, "CI job pod Pending: both nodes are at their pod limit", """
File: `describe-pod.txt` (kubectl 1.30, k3s).

The two CI nodes run k3s with `--max-pods=40`; leaked build pods from cancelled pipelines fill
both. The scheduler reports `2 Too many pods` and nothing can be preempted. The build has waited
nine minutes at capture 13:50:09 (implied).
""")
        else:
            case_labels(d, F, ["describe-new"], False, now)
            readme(d, "CI job pod scheduled and running (twin)", """
File: `describe-pod.txt`. After the leaked pods were cleaned up, the job pod was scheduled at once
and both containers run. No incident.
""")


def node_not_ready_bootstrap():
    case, now = "nodes-not-ready-bootstrap", "2026-10-21T11:06:30Z"
    for tw in (False, True):
        ctx = Ctx(361 + tw, now, k8s="1.31")
        ctx.sched_instance = "default-scheduler-lab-cp-1"
        d = f"{F}/{case}" + ("-healthy" if tw else "")
        names_ = [("lab-cp-1", "10.77.0.10", True), ("lab-w-1", "10.77.0.21", False), ("lab-w-2", "10.77.0.22", False)]
        nodes = []
        cni_msg = ("container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
                   "message:Network plugin returns error: cni plugin not initialized")
        for n, ip, cp in names_:
            lab = {"node-role.kubernetes.io/control-plane": ""} if cp else {}
            taints = [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}] if cp else []
            created = "2026-10-21T10:41:12Z" if cp else "2026-10-21T10:44:5%dZ" % (3 if n.endswith("1") else 8)
            if not tw:
                taints = taints + [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]
                nodes.append(node(ctx.rnd, n, ip, created=created, labels=lab, taints=taints, ready=False,
                                  ready_msg=cni_msg, heartbeat=add(now, -ctx.rnd.randint(3, 40)), kubelet="v1.31.2",
                                  runtime="containerd://1.7.22", pod_cidr=f"10.244.{names_.index((n, ip, cp))}.0/24"))
            else:
                nodes.append(node(ctx.rnd, n, ip, created=created, labels=lab, taints=taints, ready=True,
                                  ready_since="2026-10-21T10:58:44Z", heartbeat=add(now, -ctx.rnd.randint(3, 40)),
                                  kubelet="v1.31.2", runtime="containerd://1.7.22",
                                  pod_cidr=f"10.244.{names_.index((n, ip, cp))}.0/24"))
        cd_pods = []
        h = "7c65d6cfc9"
        rs_uid = ctx.rnd.uid()
        for sfx in ("5xq8z", "kkp4d"):
            pname = f"coredns-{h}-{sfx}"
            c = ctr("coredns", "registry.k8s.io/coredns/coredns:v1.11.3", args=["-conf", "/etc/coredns/Corefile"],
                    ports=[(53, "dns"), (9153, "metrics")], resources=res("100m", "70Mi", None, "170Mi"),
                    liveness=http_probe("/health", 8080, delay=60, timeout=5, period=10, failure=5),
                    readiness=http_probe("/ready", 8181, period=10))
            c["ports"] = [{"containerPort": 53, "name": "dns", "protocol": "UDP"},
                          {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"},
                          {"containerPort": 9153, "name": "metrics", "protocol": "TCP"}]
            tols = [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                    {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}] + [dict(t) for t in DEFAULT_TOLERATIONS]
            lab = {"k8s-app": "kube-dns", "pod-template-hash": h}
            owner = ("apps/v1", "ReplicaSet", f"coredns-{h}", rs_uid)
            if not tw:
                msg = ("0/3 nodes are available: 3 node(s) had untolerated taint {node.kubernetes.io/not-ready: }."
                       + PRE.format(n=3))
                p = pending(ctx, ns="kube-system", pod_name=pname, containers=[c], created="2026-10-21T10:41:30Z",
                            message=msg, owner=owner, labels=lab, tolerations=tols, attempts=5,
                            last=add("2026-10-21T10:58:10Z", ctx.rnd.randint(0, 30)), sa="coredns",
                            priority=2000000000, pod_kwargs={"priority_class": "system-cluster-critical"})
            else:
                p = healthy(ctx, ns="kube-system", pod_name=pname, containers=[c], node="lab-w-1" if sfx == "5xq8z" else "lab-w-2",
                            node_ip="10.77.0.21" if sfx == "5xq8z" else "10.77.0.22", pod_ip=f"10.244.{1 if sfx == '5xq8z' else 2}.2",
                            created="2026-10-21T10:41:30Z", owner=owner, labels=lab, sa="coredns",
                            started_at="2026-10-21T10:59:02Z",
                            pod_kwargs={"tolerations": tols, "priority": 2000000000, "priority_class": "system-cluster-critical"})
                msg = ("0/3 nodes are available: 3 node(s) had untolerated taint {node.kubernetes.io/not-ready: }."
                       + PRE.format(n=3))
                ctx.ev.add(p, "FailedScheduling", msg, type_="Warning", component="default-scheduler",
                           first="2026-10-21T10:41:30Z", last="2026-10-21T10:58:10Z", count=5, new_api=True,
                           instance=ctx.sched_instance)
                nd = p["spec"]["nodeName"]
                ctx.ev.add(p, "Scheduled", ctx.m_assigned(p, nd), component="default-scheduler",
                           first="2026-10-21T10:58:46Z", new_api=True, instance=ctx.sched_instance)
                fp = "spec.containers{coredns}"
                ctx.ev.add(p, "Pulled", ctx.m_present(c["image"]), host=nd, first="2026-10-21T10:59:01Z", field_path=fp)
                ctx.ev.add(p, "Created", ctx.m_created("coredns"), host=nd, first="2026-10-21T10:59:01Z", field_path=fp)
                ctx.ev.add(p, "Started", ctx.m_started("coredns"), host=nd, first="2026-10-21T10:59:02Z", field_path=fp)
            cd_pods.append(p)
        for n_ in nodes:
            nm = n_["metadata"]["name"]
            obj = ("Node", None, nm, n_["metadata"]["uid"], "v1")
            ctx.ev.add(obj, "NodeHasSufficientMemory", f"Node {nm} status is now: NodeHasSufficientMemory", host=nm,
                       first=n_["metadata"]["creationTimestamp"])
            ctx.ev.add(obj, "RegisteredNode", f"Node {nm} event: Registered Node {nm} in Controller",
                       component="node-controller", first=add(n_["metadata"]["creationTimestamp"], 5))
            if tw:
                ctx.ev.add(obj, "NodeReady", f"Node {nm} status is now: NodeReady", host=nm,
                           first=add("2026-10-21T10:58:44Z", ctx.rnd.randint(-2, 2)))
        for e in ctx.ev.items:
            if e["involvedObject"]["kind"] == "Node":
                e["metadata"]["namespace"] = "default"
        write(d, "nodes.json", kubectl_json_list(nodes))
        write(d, "events.txt", kubectl_get_events(ctx.ev.items, ctx.now, all_namespaces=True))
        if not tw:
            case_labels(d, F, ["json-list", "events-get"], True, now, {
                "object": f"Pod/kube-system/{cd_pods[0]['metadata']['name']}", "cause": "node-not-ready",
                "mentions": ["node.kubernetes.io/not-ready", "cni plugin not initialized"]})
            readme(d, "fresh kubeadm cluster: coredns Pending because every node is NotReady (no CNI)", """
Files: `nodes.json` (`kubectl get nodes -o json`) and `events.txt` (`kubectl get events -A`).

A new three-node kubeadm cluster: no CNI plugin was installed, so every kubelet reports
`Ready=False` with `cni plugin not initialized` and carries the `node.kubernetes.io/not-ready:NoSchedule`
taint. The coredns pods do not tolerate it and stay Pending. Capture 11:06:30.
""")
        else:
            case_labels(d, F, ["json-list", "events-get"], False, now)
            readme(d, "same cluster after the CNI was installed (twin)", """
Files: `nodes.json` and `events.txt`. Nodes turned Ready at 10:58:44 once the CNI DaemonSet ran;
coredns had five FailedScheduling events during bootstrap and was then scheduled and started. The
cluster is healthy at capture: a finished bootstrap transient, not an incident.
""")


CASES += [insufficient_gpu, unbound_pvc, too_many_pods, node_not_ready_bootstrap]
